package bpf

import "runtime/debug"

// Holding frames back. When a descriptor that takes incoming frames has
// both buffers full, the next frame would be dropped by it; a tap reader
// with a deep kernel queue in front of it (the packet ring) can instead
// leave the frames there until the client hands a buffer back, the way a
// NIC leaves frames in its ring. The queue then adds its depth to the
// descriptors' buffers, which is what rides out a client that misses a
// scheduling slot or two (with 16 clients on two CPUs, a woken client can
// wait longer than its 2 MiB buffer lasts). While other descriptors still
// have room, the reader holds back only as long as the ring stays half
// empty, so that the slow one never costs them a frame. Frames the queue
// itself loses while held back are reported to the interface, which counts
// them as received and dropped by each descriptor that takes incoming
// frames: they were lost to all of them.
//
// Interface implements the tap package's Gate with these methods.

// Room tells how many frames of the largest size the interface allows can
// come now: least before the first descriptor that takes incoming frames
// would have to drop one, most before the roomiest would (0 means every
// such descriptor is full). Descriptors that see only outgoing traffic do
// not count; with none left, both are limit. Both are at most limit, so
// that the question costs little.
func (ifp *Interface) Room(limit int) (least, most int) {
	need := recordHdrLen + int(ifp.mtu.Load()) + 14 + 4
	least, most = limit, 0
	any := false
	for _, d := range *ifp.listeners.Load() {
		n, takes := d.roomFor(ifp, need)
		if !takes {
			continue
		}
		any = true
		least, most = min(least, n), max(most, n)
		if least == 0 && most >= limit {
			break
		}
	}
	if !any {
		return limit, limit
	}
	return least, min(most, limit)
}

// HeldBackDrops counts n frames that the source lost while frames were held
// back (some descriptor taking incoming frames was full) as received and
// dropped by each descriptor that takes incoming frames.
func (ifp *Interface) HeldBackDrops(n uint64) {
	for _, d := range *ifp.listeners.Load() {
		d.mu.Lock()
		if d.ifp == ifp && d.mode != nil && d.direction != DirectionOut {
			d.stats.Recv += n
			d.stats.Drop += n
		}
		d.mu.Unlock()
	}
}

// roomFor counts the records of need bytes (word-aligned) that fit the
// store buffer and, if a rotation is possible, a whole free buffer, taking
// back a hold buffer the client is done with first, as the catch would.
// takes is false for a descriptor that does not take incoming frames here.
func (d *Descriptor) roomFor(ifp *Interface, need int) (n int, takes bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifp != ifp || d.mode == nil || d.direction == DirectionOut {
		return 0, false
	}
	m := d.mode
	if d.zbuf != nil && d.zbuf.Shared() {
		if !d.reclaimGuarded() {
			return 1 << 20, true // broken buffers: let frames come and be counted
		}
	} else {
		m.ReclaimHold()
	}
	size := m.Size()
	need = wordAlign(min(need, size))
	if m.StoreWritable() {
		n = (size - wordAlign(m.StoreLen())) / need
	}
	if m.HasFree() {
		n += size / need
	}
	return n, true
}

// reclaimGuarded is ReclaimHold on a client's shared header with the fault
// guard on; false means the pages faulted and the buffers are now broken.
func (d *Descriptor) reclaimGuarded() (ok bool) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if isFault(recover()) {
			d.zbuf.Faulted()
			ok = false
		}
	}(debug.SetPanicOnFault(true))
	d.mode.ReclaimHold()
	return true
}
