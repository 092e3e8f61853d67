// Package ebpf is the little of bpf(2) that the daemon needs to capture on a
// tap's egress without the socket layer: maps (a ring buffer and a counter
// array), a program given as instructions, a tcx link that attaches it to
// an interface and detaches it when the link's descriptor closes, and a
// consumer of the ring buffer that reads records in place.
//
// Programs are small and written by hand (Asm); no compiler, object file or
// BTF is involved, so the package depends on nothing but x/sys/unix.
package ebpf
