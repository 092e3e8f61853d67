// Package tap owns the far end of Linux TAP interfaces (IFF_TAP|IFF_NO_PI):
// it opens or creates a tap inside a chosen network namespace, reads the
// frames the Linux stack transmits on it, and injects frames that the stack
// then receives.
//
// Reading follows the shape of the Linux zero-copy skb work: a Reader fills
// one large buffer with many frames, each Frame is a view into that buffer,
// and the whole Batch shares a single reference count. The last Release puts
// the buffer back into the reader's pool, so in steady state no memory is
// allocated per frame or per batch. The reader spends one read(2) per frame
// on a dedicated, locked OS thread: measurements on the target machines show
// that is the ceiling (io_uring and multi-queue taps were slower), so the
// design keeps that ceiling and avoids adding work around it.
//
// The package knows nothing of BPF; it moves frames and ownership only.
package tap
