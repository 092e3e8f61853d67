package bpf

import "github.com/bpffs/bpffs/bufmode/buffered"

// BufferMode is the boundary between the catch path and a buffer mode: the
// core decides where a record goes and writes it; the mode owns the buffers
// and what a rotation or a drop means for them. Buffer mode
// (bufmode/buffered) keeps plain daemon memory behind read(2); zero-copy mode
// will keep the user's shared pages, where Rotate is the hand-over (write
// bzh_kernel_len, then release-increment bzh_kernel_gen), StoreWritable is
// false once the store buffer was handed over, ReclaimHold moves an
// acknowledged hold buffer back to the free slot, and BufferFull hands the
// store buffer over when the packet must be dropped.
//
// Every method is called with the descriptor's mutex held.
type BufferMode interface {
	// Size is the usable capacity of one buffer (BIOCGBLEN).
	Size() int
	// Store is the store buffer, Size bytes long.
	Store() []byte
	// StoreLen is the unaligned end of the last record in the store buffer.
	StoreLen() int
	// SetStoreLen records a new end after an append.
	SetStoreLen(n int)
	// StoreWritable reports whether records may still be appended to the
	// store buffer.
	StoreWritable() bool
	// HasFree reports whether a rotation is possible.
	HasFree() bool
	// HoldLen is the number of bytes in the hold buffer (0 without one).
	HoldLen() int
	// HoldReadable reports whether a hold buffer with data is waiting for
	// the user (readiness for poll).
	HoldReadable() bool
	// ReclaimHold gives the mode a chance, before each packet, to take back a
	// hold buffer the user is done with.
	ReclaimHold()
	// Rotate moves store to hold and free to store; false if no free buffer.
	Rotate() bool
	// BufferFull is called just before a packet is dropped for lack of room.
	BufferFull()
	// Reset empties the buffers (BIOCFLUSH) as far as the mode allows.
	Reset()
}

var _ BufferMode = (*buffered.Buffers)(nil)
