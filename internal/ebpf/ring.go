//go:build linux

package ebpf

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bits of a ring buffer record's length word.
const (
	recordBusy    = unix.BPF_RINGBUF_BUSY_BIT
	recordDiscard = unix.BPF_RINGBUF_DISCARD_BIT
	recordHeader  = unix.BPF_RINGBUF_HDR_SZ
)

// RingBuffer reads a BPF ring buffer in place. The kernel maps its data
// area twice in a row, so every record is contiguous even where it wraps.
// One goroutine consumes; positions only grow, and the ring is free up to
// whatever Release was last given.
type RingBuffer struct {
	consumer []byte // read-write: the consumer position
	producer []byte // read-only: the producer position, then the data twice
	data     []byte
	mask     uint64
}

// OpenRingBuffer maps the ring buffer map fd of size bytes.
func OpenRingBuffer(fd, size int) (*RingBuffer, error) {
	page := os.Getpagesize()
	cons, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("ebpf: map ring buffer consumer page: %w", err)
	}
	prod, err := unix.Mmap(fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(cons)
		return nil, fmt.Errorf("ebpf: map ring buffer data (%d bytes): %w", size, err)
	}
	return &RingBuffer{consumer: cons, producer: prod, data: prod[page:], mask: uint64(size - 1)}, nil
}

func (r *RingBuffer) word(b []byte) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&b[0])) }

// Produced is how far the kernel has reserved records.
func (r *RingBuffer) Produced() uint64 { return r.word(r.producer).Load() }

// Consumed is the position last given to Release.
func (r *RingBuffer) Consumed() uint64 { return r.word(r.consumer).Load() }

// Record looks at the record at pos (pos < Produced()). ready is false
// while the program is still writing it; a record the program discarded
// comes back with ready true and a nil body, to be skipped. next is the
// position of the record after it.
func (r *RingBuffer) Record(pos uint64) (body []byte, next uint64, ready bool) {
	off := pos & r.mask
	length := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[off]))) // acquire: the body is complete once busy clears
	if length&recordBusy != 0 {
		return nil, pos, false
	}
	n := uint64(length &^ (recordBusy | recordDiscard))
	next = pos + (recordHeader+n+7)&^7
	if length&recordDiscard != 0 {
		return nil, next, true
	}
	start := off + recordHeader
	return r.data[start : start+n : start+n], next, true
}

// Release gives the kernel back everything before pos.
func (r *RingBuffer) Release(pos uint64) { r.word(r.consumer).Store(pos) }

// Close unmaps the ring; no record body may be used afterwards.
func (r *RingBuffer) Close() {
	if r.consumer != nil {
		unix.Munmap(r.consumer)
		unix.Munmap(r.producer)
		r.consumer, r.producer, r.data = nil, nil, nil
	}
}
