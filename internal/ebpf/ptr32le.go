//go:build linux && (386 || arm || mipsle)

package ebpf

import "unsafe"

// ptr: see ptr64.go; the pointer is the low half of the 64-bit field.
type ptr struct {
	p unsafe.Pointer
	_ uint32
}
