package bpf

// tap offers one frame of ifp to the descriptor: the direction check, the
// read filter and the catch, all under the descriptor's mutex so that the
// counters stay exactly consistent with a concurrent flush. A needed wake-up
// is only noted; the caller's EndBatch performs it.
func (d *Descriptor) tap(ifp *Interface, pkt []byte, wallNanos int64, outgoing bool) {
	d.mu.Lock()
	// The listener snapshot may predate a detach or a move to another
	// interface; such frames are not this descriptor's any more.
	if d.ifp != ifp || d.mode == nil {
		d.mu.Unlock()
		return
	}
	if outgoing && d.direction == DirectionIn || !outgoing && d.direction == DirectionOut {
		d.mu.Unlock()
		return
	}
	d.stats.Recv++
	snaplen := d.readFilter.Run(pkt, uint32(len(pkt)))
	if snaplen == 0 {
		d.stats.Rejected++
		d.mu.Unlock()
		return
	}
	nanos := wallNanos
	if d.tstamp&TstampMonotonic != 0 {
		nanos = ifp.clock.sinceBoot(wallNanos)
	}
	var wake bool
	if d.zbuf != nil && d.zbuf.Shared() {
		wake = d.catchGuarded(pkt, snaplen, nanos)
	} else {
		wake = d.catchLocked(pkt, snaplen, nanos)
	}
	d.mu.Unlock()
	if wake && !d.wakePending.Load() {
		d.wakePending.Store(true)
	}
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
