//go:build linux && mips

package ebpf

import "unsafe"

// ptr: see ptr64.go; the pointer is the low half of the 64-bit field.
type ptr struct {
	_ uint32
	p unsafe.Pointer
}
