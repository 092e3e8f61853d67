//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ebpf

import "unsafe"

// ptr is an __aligned_u64 field of union bpf_attr that holds an address.
// It is a real pointer, not a number: the memory it points to may be on
// the caller's stack, and Go moves stacks (and adjusts the pointers into
// them) when they grow; an address kept as an integer would go stale.
type ptr struct{ p unsafe.Pointer }
