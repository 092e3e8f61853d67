//go:build linux

package tap

import (
	"sync"
	"sync/atomic"
)

// Frame is one Ethernet frame as the Linux stack transmitted it on the tap.
type Frame struct {
	Data []byte // view into the batch buffer; valid until the batch is released
	Time int64  // CLOCK_REALTIME nanoseconds, taken right after the read returned
}

// Batch is the frames of one buffer. All frames share the buffer and one
// reference count: the reader holds the first reference while it fills the
// buffer and runs the handler; whoever wants frames after the handler
// returns calls Retain and later Release. The last Release returns the
// buffer to its reader's pool.
type Batch struct {
	Frames []Frame

	buf        []byte
	frameStore []Frame      // Frames is re-sliced from here, whatever a handler did to it
	slots      []int32      // SourceRing: the ring slots the frames live in
	egressSeq  uint64       // SourceEgress: the batch's place in the order records are freed
	egressHeld bool         // SourceEgress: the batch holds records
	refs       atomic.Int32 // 0 while the batch sits in the pool
	pool       *batchPool
}

// Retain adds one user. Retaining a batch that was already fully released
// does nothing (it may be refilled at any moment) and is counted in
// ReaderStats.RefcountErrors.
func (b *Batch) Retain() {
	for {
		n := b.refs.Load()
		if n <= 0 {
			b.pool.refcountError()
			return
		}
		if b.refs.CompareAndSwap(n, n+1) {
			return
		}
	}
}

// Release drops one user; the last one returns the buffer to the pool.
//
// Releasing more often than retaining never panics and never puts a buffer
// into the pool twice: a Release that finds the count already at zero is
// ignored and counted in ReaderStats.RefcountErrors. The check can only see
// the mistake while the buffer is still idle in the pool: once the reader
// has reused it, a stale Release cannot be told apart from a valid one, so
// frames must not be touched after one's own Release.
func (b *Batch) Release() {
	for {
		n := b.refs.Load()
		if n <= 0 {
			b.pool.refcountError()
			return
		}
		if b.refs.CompareAndSwap(n, n-1) {
			if n == 1 {
				b.pool.put(b)
			}
			return
		}
	}
}

// batchPool recycles batches of one reader. A mutex-guarded LIFO list: the
// most recently released buffer is the warmest in cache, and contention is
// one lock per batch at most.
type batchPool struct {
	kernel     kernelSource // SourceRing, SourceEgress: batches hold the source's memory, not a buffer
	bufferSize int
	maxFrames  int
	maxIdle    int

	mu   sync.Mutex
	idle []*Batch

	misses         atomic.Uint64
	refcountErrors atomic.Uint64
}

func newBatchPool(bufferSize, maxFrames, size int) *batchPool {
	p := &batchPool{bufferSize: bufferSize, maxFrames: maxFrames, maxIdle: size}
	p.idle = make([]*Batch, 0, size)
	for range size {
		p.idle = append(p.idle, p.newBatch())
	}
	return p
}

func (p *batchPool) newBatch() *Batch {
	b := &Batch{buf: make([]byte, p.bufferSize), frameStore: make([]Frame, p.maxFrames), pool: p}
	if _, ok := p.kernel.(*packetRing); ok {
		b.slots = make([]int32, 0, p.maxFrames)
	}
	b.Frames = b.frameStore[:0]
	return b
}

// get hands out an empty batch holding one reference. It allocates only when
// every buffer is still held by someone (counted as a pool miss).
func (p *batchPool) get() *Batch {
	var b *Batch
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		b = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	if b == nil {
		p.misses.Add(1)
		b = p.newBatch()
	}
	b.Frames = b.frameStore[:0]
	b.slots = b.slots[:0]
	b.refs.Store(1)
	return b
}

// put takes back a batch whose count just reached zero. Beyond maxIdle the
// buffer is left to the garbage collector so that a burst of retained
// batches does not pin memory forever.
func (p *batchPool) put(b *Batch) {
	b.Frames = nil
	if p.kernel != nil {
		p.kernel.giveBack(b)
	}
	p.mu.Lock()
	if len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, b)
	}
	p.mu.Unlock()
}

func (p *batchPool) refcountError() {
	if p != nil {
		p.refcountErrors.Add(1)
	}
}
