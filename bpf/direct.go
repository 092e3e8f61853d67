package bpf

import "runtime/debug"

// The direct path: when exactly one descriptor listens on an interface and
// it has zero-copy buffers that are the client's own pages, the tap reader
// reads each frame straight into that descriptor's store buffer, behind the
// room kept for the record header, and the daemon copies nothing. The
// interface then finishes the record exactly as catchLocked would have:
// same direction rule, filter, snap length, counters, timestamps and
// wake-ups. Whenever any of that cannot be guaranteed (other listeners, a
// store buffer with less room than the largest frame, a buffer out with the
// client, a locked descriptor) DirectBuffer declines and the frame takes the
// ordinary path, which rotates or drops by bpf(4)'s rules.
//
// Interface implements the tap package's DirectTarget with these methods;
// the daemon passes the interface as tap.ReaderOptions.Direct.

// DirectBuffer returns room for a frame of up to need bytes in the only
// listener's shared store buffer, or nil. On success the listener's mutex
// stays locked until DirectEnd.
func (ifp *Interface) DirectBuffer(need int) []byte {
	ls := *ifp.listeners.Load()
	if len(ls) != 1 {
		return nil
	}
	d := ls[0]
	d.mu.Lock()
	z := d.zbuf
	// A locked descriptor declines: its filter may be a boundary set by a
	// privileged program, and a direct read puts the frame in the client's
	// pages before the filter runs (rejected bytes are erased at once, but a
	// client watching its store buffer could glimpse them). An unlocked
	// client could see the same frames by changing its own filter.
	if d.ifp != ifp || z == nil || d.mode == nil || !z.Shared() || d.direction == DirectionOut || d.locked || need < 0 {
		d.mu.Unlock()
		return nil
	}
	z.ReclaimHold()
	start := wordAlign(z.StoreLen())
	if !z.StoreWritable() || start+recordHdrLen+need > z.Size() {
		d.mu.Unlock()
		return nil
	}
	ifp.direct = d
	ifp.directStart = start
	return z.Store()[start+recordHdrLen : start+recordHdrLen+need]
}

// DirectEnd completes the record for the n bytes read (n == 0: nothing
// arrived; with a non-nil err the read faulted on the shared pages, the
// frame is lost and counted as this descriptor's drop) and unlocks.
func (ifp *Interface) DirectEnd(n int, wallNanos int64, err error) {
	d := ifp.direct
	if d == nil {
		return // DirectEnd without DirectBuffer: nothing is locked
	}
	ifp.direct = nil
	switch {
	case n > 0:
		ifp.clock.refresh(wallNanos)
		if d.finishDirect(ifp, ifp.directStart, n, wallNanos) && !d.wakePending.Load() {
			d.wakePending.Store(true)
		}
	case err != nil:
		d.zbuf.Faulted()
		d.stats.Recv++
		d.stats.Drop++
	}
	d.mu.Unlock()
}

// DirectBurstEnd performs the wake-ups noted by direct frames.
func (ifp *Interface) DirectBurstEnd() { ifp.EndBatch() }

// finishDirect turns n frame bytes already at start+recordHdrLen of the
// store buffer into a record, or erases them when the filter rejects the
// frame, so that the client's pages never show what it may not see. A fault
// on the shared pages breaks the buffers, as in catchRunGuarded.
func (d *Descriptor) finishDirect(ifp *Interface, start, n int, wallNanos int64) (wake bool) {
	defer d.dropOnFault(debug.SetPanicOnFault(true), &wake)
	m := d.zbuf
	buf := m.Store()
	pkt := buf[start+recordHdrLen : start+recordHdrLen+n]
	d.stats.Recv++
	snaplen := d.readFilter.Run(pkt, uint32(n))
	if snaplen == 0 {
		d.stats.Rejected++
		clear(pkt)
		return false
	}
	caplen := n
	if uint64(snaplen) < uint64(caplen) {
		caplen = int(snaplen)
		clear(pkt[caplen:])
	}
	nanos := wallNanos
	if d.tstamp&TstampMonotonic != 0 {
		nanos = ifp.clock.sinceBoot(wallNanos)
	}
	storeLen := m.StoreLen()
	clear(buf[storeLen:start])
	var hdr [HdrSize]byte
	sec, sub := timestampWords(d.tstamp, nanos)
	putHeader(&hdr, sec, sub, uint32(caplen), uint32(n))
	// Only the header's first 26 bytes: the frame already covers the rest.
	copy(buf[start:start+recordHdrLen], hdr[:recordHdrLen])
	m.SetStoreLen(start + recordHdrLen + caplen)
	d.stats.Captured++
	return d.immediate || d.pollState == pollTimedOut
}
