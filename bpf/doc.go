// Package bpf is the core of the emulated FreeBSD bpf(4) device, after
// FreeBSD's sys/net/bpf.c: interfaces that frames arrive on, descriptors that
// attach to them, the catch path that filters a frame and writes a record
// (header, timestamp, captured bytes) into the descriptor's buffer, the
// statistics, readiness and wake-ups, and the read(2), write(2) and poll
// semantics. It knows nothing of FUSE or of the ioctl encoding: the transport
// and the ioctl dispatcher call the methods of Descriptor, and every error
// they return is a golang.org/x/sys/unix.Errno with the errno bpf(4) gives.
//
// One batch's path: the tap reader calls Interface.InputBatch (or Input for
// one frame); it walks the interface's listener list (an immutable slice
// behind an atomic pointer, so the packet path takes no interface lock) and
// hands the frames to each descriptor in turn; the descriptor, under its own
// mutex taken once per batch, checks the direction, runs its read filter and
// catches each frame into its BufferMode (catch.go). Wake-ups are
// only noted there; Interface.EndBatch performs them, at most one per
// descriptor per batch, without holding any lock. Before a batch the reader
// may ask Interface.Room how many frames can come before the first and the
// last descriptor would drop one, and leave the rest in its ring
// (backpressure.go).
//
// Time: frames carry a CLOCK_REALTIME timestamp in nanoseconds. Time since
// boot (BPF_T_MONOTONIC) is derived by subtracting the boot instant expressed
// in wall time, sampled when the Interface is created and refreshed at most
// once a second from the packet path. BPF_T_FAST selects the same clock: the
// frame's timestamp (the kernel's, from the packet ring) already costs
// nothing per packet, so there is no cheaper, coarser clock to offer.
package bpf
