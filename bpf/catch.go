package bpf

// tap offers one frame of ifp to the descriptor (see tapFrames).
func (d *Descriptor) tap(ifp *Interface, pkt []byte, wallNanos int64, outgoing bool) {
	d.tapFrames(ifp, outgoing, 1, func(int) ([]byte, int64) { return pkt, wallNanos })
}

// tapFrames offers n frames of ifp to the descriptor, frame(i) giving each:
// the direction check, then for each frame the read filter and the catch,
// all under the descriptor's mutex (taken once) so that the counters stay
// exactly consistent with a concurrent flush. A needed wake-up is only
// noted; the caller's EndBatch performs it.
func (d *Descriptor) tapFrames(ifp *Interface, outgoing bool, n int, frame func(int) ([]byte, int64)) {
	d.mu.Lock()
	// The listener snapshot may predate a detach or a move to another
	// interface; such frames are not this descriptor's any more.
	if d.ifp != ifp || d.mode == nil ||
		outgoing && d.direction == DirectionIn || !outgoing && d.direction == DirectionOut {
		d.mu.Unlock()
		return
	}
	var wake bool
	// A fault on a client's pages ends a guarded run early (the buffers
	// are broken then); the frames after it follow in a new run.
	for next := 0; next < n; {
		if d.zbuf != nil && d.zbuf.Shared() {
			wake = d.catchRunGuarded(ifp, &next, n, frame) || wake
		} else {
			wake = d.catchRun(ifp, &next, n, frame) || wake
		}
	}
	d.mu.Unlock()
	if wake && !d.wakePending.Load() {
		d.wakePending.Store(true)
	}
}

// catchRun filters and catches frames *next … n-1. *next moves past each
// frame before it is caught, so that after a fault it names the first frame
// not yet offered.
func (d *Descriptor) catchRun(ifp *Interface, next *int, n int, frame func(int) ([]byte, int64)) (wake bool) {
	for *next < n {
		pkt, wallNanos := frame(*next)
		*next++
		d.stats.Recv++
		snaplen := d.readFilter.Run(pkt, uint32(len(pkt)))
		if snaplen == 0 {
			d.stats.Rejected++
			continue
		}
		nanos := wallNanos
		if d.tstamp&TstampMonotonic != 0 {
			nanos = ifp.clock.sinceBoot(wallNanos)
		}
		if d.catchLocked(pkt, snaplen, nanos) {
			wake = true
		}
	}
	return wake
}

// catchLocked is FreeBSD's catchpacket: it appends one record for pkt, with
// at most snaplen bytes captured, rotating or dropping as the rules of
// bpf(4) say. It reports whether readers should be woken.
func (d *Descriptor) catchLocked(pkt []byte, snaplen uint32, nanos int64) (wake bool) {
	m := d.mode
	m.ReclaimHold()
	size := m.Size()

	caplen := len(pkt)
	if uint64(snaplen) < uint64(caplen) {
		caplen = int(snaplen)
	}
	total := min(recordHdrLen+caplen, size)
	caplen = total - recordHdrLen

	storeLen := m.StoreLen()
	start := wordAlign(storeLen)
	if start+total > size || !m.StoreWritable() {
		if !m.HasFree() {
			m.BufferFull()
			d.stats.Drop++
			return false
		}
		m.Rotate()
		wake = true
		storeLen, start = 0, 0
	} else if d.immediate || d.pollState == pollTimedOut {
		wake = true
	}

	buf := m.Store()
	// Old records of a reused buffer lie in the alignment gap: zero it.
	clear(buf[storeLen:start])
	var hdr [HdrSize]byte
	sec, sub := timestampWords(d.tstamp, nanos)
	putHeader(&hdr, sec, sub, uint32(caplen), uint32(len(pkt)))
	// The whole 32-byte header goes in first (cut at the buffer's end); the
	// captured bytes then cover its tail padding from offset 26.
	copy(buf[start:], hdr[:])
	copy(buf[start+recordHdrLen:start+total], pkt)
	m.SetStoreLen(start + total)
	d.stats.Captured++
	return wake
}
