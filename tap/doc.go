// Package tap owns the far end of Linux TAP interfaces (IFF_TAP|IFF_NO_PI):
// it opens or creates a tap inside a chosen network namespace, takes the
// frames the Linux stack transmits on it, and injects frames that the stack
// then receives.
//
// Reading follows the shape of the Linux zero-copy skb work: a Reader hands
// frames up in batches that live in large shared buffers, each Frame is a
// view into one, and the whole Batch shares a single reference count. The
// last Release gives the memory back, so in steady state nothing is
// allocated per frame or per batch. There are three sources (Source):
//
//   - SourceEgress: an eBPF program on the tap's egress (a tcx link) copies
//     each frame into a BPF ring buffer in the sender's context; a Batch is
//     a run of records, and the buffer is freed up to the oldest batch not
//     yet released. The cheapest for the sender; needs Linux 6.6.
//   - SourceRing: an AF_PACKET TPACKET_V2 ring bound to the tap. The kernel
//     copies each frame into a ring slot as the stack transmits it, in the
//     sender's context; a Batch is a run of slots, returned to the kernel
//     by the last Release.
//   - SourceRead: read(2) of the tap's own queue, one per frame, into a
//     pooled buffer, or straight into a DirectTarget's memory.
//
// The first two need no system call per frame, and with either a Gate lets
// the reader leave frames in the kernel's memory while its consumer has no
// room. Whatever the source, the reader runs on a dedicated, locked OS thread and, when the
// source runs dry under load, naps briefly instead of asking to be woken
// for every frame (ReaderOptions.Coalesce).
//
// The package knows nothing of BPF; it moves frames and ownership only.
package tap
