package buffered

// Buffers is one descriptor's store/hold/free triple. The zero value is
// unusable; create one with New.
type Buffers struct {
	size     int
	store    []byte
	hold     []byte
	free     []byte
	storeLen int
	holdLen  int
	// holdInUse is set while read(2) copies the hold buffer out without the
	// descriptor lock: the hold buffer must then stay where it is.
	holdInUse bool
}

// MinSize is the smallest buffer New accepts (BPF_MINBUFSIZE): one record
// header must always fit.
const MinSize = 32

// New allocates the two buffers of size bytes each that back the three slots.
// A size below MinSize is raised to MinSize: the caller clamps user input, so
// this only keeps a programming error from producing an unusable buffer.
func New(size int) *Buffers {
	if size < MinSize {
		size = MinSize
	}
	return &Buffers{
		size:  size,
		store: make([]byte, size),
		free:  make([]byte, size),
	}
}

// Size is the capacity of each buffer (BIOCGBLEN).
func (b *Buffers) Size() int { return b.size }

// Store is the whole store buffer, Size bytes long, for the core to write
// records into at offsets of its choosing.
func (b *Buffers) Store() []byte { return b.store }

// StoreLen is the number of meaningful bytes in the store buffer: the
// unaligned end of its last record.
func (b *Buffers) StoreLen() int { return b.storeLen }

// SetStoreLen records the new end of the store buffer after an append.
// Values outside [0, Size] are clamped so a caller's arithmetic slip cannot
// later expose bytes beyond the buffer.
func (b *Buffers) SetStoreLen(n int) {
	b.storeLen = min(max(n, 0), b.size)
}

// StoreWritable is always true here: the store buffer never leaves the
// daemon's ownership in buffer mode (in zero-copy mode it may already be
// handed to the user).
func (b *Buffers) StoreWritable() bool { return true }

// HasFree reports whether a spare buffer is available for a rotation.
func (b *Buffers) HasFree() bool { return b.free != nil }

// HasHold reports whether a hold buffer is waiting (or being read).
func (b *Buffers) HasHold() bool { return b.hold != nil }

// HoldLen is the number of bytes in the hold buffer, 0 without one.
func (b *Buffers) HoldLen() int { return b.holdLen }

// HoldReadable reports whether the hold buffer holds data that read(2) has
// not consumed yet.
func (b *Buffers) HoldReadable() bool { return b.hold != nil && b.holdLen != 0 }

// ReclaimHold does nothing in buffer mode: the hold buffer returns to the
// free slot at the end of the read that consumed it (EndRead), never lazily.
func (b *Buffers) ReclaimHold() {}

// Rotate makes the store buffer the hold buffer and the free buffer the new,
// empty store buffer. It reports false and changes nothing when no free
// buffer exists (a hold buffer is still unread).
func (b *Buffers) Rotate() bool {
	if b.free == nil {
		return false
	}
	b.hold, b.holdLen = b.store, b.storeLen
	b.store, b.storeLen = b.free, 0
	b.free = nil
	return true
}

// BufferFull is called when a packet is dropped for lack of room. Buffer mode
// has nothing to hand over; the drop itself is counted by the core.
func (b *Buffers) BufferFull() {}

// Reset empties the buffers for BIOCFLUSH and the commands that imply it: the
// hold buffer returns to the free slot unless a read is copying it right now
// (that read frees it when it finishes, so the flush then looks as if it had
// happened just after the read), and the store buffer becomes empty.
func (b *Buffers) Reset() {
	if b.hold != nil && !b.holdInUse {
		b.free, b.hold, b.holdLen = b.hold, nil, 0
	}
	b.storeLen = 0
}

// BeginRead marks the hold buffer in use and returns its bytes, or nil when
// there is no hold buffer. The slice stays valid and unchanged until EndRead.
func (b *Buffers) BeginRead() []byte {
	if b.hold == nil || b.holdInUse {
		return nil
	}
	b.holdInUse = true
	return b.hold[:b.holdLen]
}

// EndRead returns the hold buffer marked by BeginRead to the free slot.
func (b *Buffers) EndRead() {
	if !b.holdInUse {
		return
	}
	b.holdInUse = false
	b.free, b.hold, b.holdLen = b.hold, nil, 0
}

// slotsConsistent states the two-allocation invariant (a store buffer always
// exists, and exactly one of hold and free does) for the tests.
func (b *Buffers) slotsConsistent() bool {
	return b.store != nil && (b.hold == nil) == (b.free != nil)
}
