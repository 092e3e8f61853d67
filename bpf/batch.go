package bpf

import "runtime/debug"

// InputBatch delivers n frames that the Linux stack transmitted on the tap,
// as n calls of Input would, but visits each descriptor once for the whole
// batch: one lock, one direction check and one fault guard per descriptor
// instead of one per frame, and the descriptor's buffer stays warm while its
// records go in one after another. frame(i) gives the i-th frame and its
// CLOCK_REALTIME time; the frames are only used during the call. Wake-ups
// are deferred to EndBatch.
func (ifp *Interface) InputBatch(n int, frame func(i int) (data []byte, wallNanos int64)) {
	if n <= 0 {
		return
	}
	_, last := frame(n - 1)
	ifp.clock.refresh(last)
	for _, d := range *ifp.listeners.Load() {
		d.tapBatch(ifp, n, frame)
	}
}

func (d *Descriptor) tapBatch(ifp *Interface, n int, frame func(int) ([]byte, int64)) {
	d.mu.Lock()
	if d.ifp != ifp || d.mode == nil || d.direction == DirectionOut {
		d.mu.Unlock()
		return
	}
	var wake bool
	for next := 0; next < n; {
		if d.zbuf != nil && d.zbuf.Shared() {
			w, faulted := d.catchRunGuarded(ifp, &next, n, frame)
			wake = wake || w
			if faulted {
				continue // the buffers are broken now: the rest goes unguarded
			}
			break
		}
		wake = d.catchRun(ifp, &next, n, frame) || wake
	}
	d.mu.Unlock()
	if wake && !d.wakePending.Load() {
		d.wakePending.Store(true)
	}
}

// catchRun is tap's filter and catch for frames *next … n-1. *next moves
// past each frame before it is caught, so that after a fault it names the
// first frame not yet offered.
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

// catchRunGuarded is catchRun into a client's shared pages with the fault
// guard on, as catchGuarded is for one frame: a fault breaks the buffers and
// counts the frame that hit it as a drop.
func (d *Descriptor) catchRunGuarded(ifp *Interface, next *int, n int, frame func(int) ([]byte, int64)) (wake, faulted bool) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if isFault(recover()) {
			d.zbuf.Faulted()
			d.stats.Drop++
			faulted = true
		}
	}(debug.SetPanicOnFault(true))
	return d.catchRun(ifp, next, n, frame), false
}
