// Package buffered holds the kernel-side buffers of bpf(4)'s default buffer
// mode (BPF_BUFMODE_BUFFER): a store buffer the catch path fills, a hold
// buffer waiting for read(2), and a free spare, with FreeBSD's rotation rules
// (sys/net/bpf_buffer.c and the ROTATE_BUFFERS step of bpf.c).
//
// The package only moves bytes and ownership between the three slots. The
// record format, the decision to rotate or drop, statistics and wake-ups
// belong to the core (package bpf), which drives a Buffers through the same
// small set of hooks a zero-copy buffer mode implements. Two allocations back
// the three slots: whenever a hold buffer exists there is no free one, which
// is why a full store buffer with an unread hold buffer means a drop.
//
// A Buffers is not safe for concurrent use; the owning descriptor's mutex
// serialises every call. The bytes returned by BeginRead may be used without
// that mutex until EndRead, because no other method writes to the hold
// buffer while it is marked in use.
package buffered
