//go:build linux

package tap

// DirectTarget lets a Reader read frames straight into its consumer's own
// memory instead of a batch buffer, so that the consumer copies nothing.
// bpf.Interface implements it for the case of exactly one zero-copy
// listener: the frame lands in that listener's shared buffer, behind the
// room kept for its record header.
//
// The Reader calls DirectBuffer before a non-blocking read, only while the
// current batch is still empty (so frames keep their order). A non-nil
// answer is followed by exactly one DirectEnd on the same thread; between
// the two the target keeps that memory valid and unchanged by anyone else
// (it holds its lock), which is why the Reader never blocks in between.
type DirectTarget interface {
	// DirectBuffer returns at least need bytes where the next frame may be
	// read, or nil when the frame must go through the batch as usual.
	DirectBuffer(need int) []byte
	// DirectEnd finishes what DirectBuffer began: n > 0 bytes of one
	// frame were read at wallNanos (CLOCK_REALTIME); n == 0 means nothing
	// arrived, and then err, if not nil, is why the read failed. EFAULT
	// means the memory could not be written (the frame is lost, and the
	// Reader carries on); other errors are the Reader's to report.
	DirectEnd(n int, wallNanos int64, err error)
	// DirectBurstEnd follows a run of frames taken directly, once per
	// batch: the moment for deferred work such as wake-ups.
	DirectBurstEnd()
}
