package bpf

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Budget bounds the buffer memory all descriptors together may hold, so no
// client (or crowd of clients) can make the daemon grow without bound.
// Zero-copy buffers that are the clients' own shared pages cost the daemon
// nothing and are not counted; the copy path's staging buffers are.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget allows limit bytes in all (limit ≤ 0: no limit).
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// reserve takes n bytes or fails with ENOBUFS, changing nothing.
func (b *Budget) reserve(n int64) error {
	if b == nil || n <= 0 {
		return nil
	}
	for {
		used := b.used.Load()
		if b.limit > 0 && used+n > b.limit {
			return unix.ENOBUFS
		}
		if b.used.CompareAndSwap(used, used+n) {
			return nil
		}
	}
}

func (b *Budget) release(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}

// Used reports the bytes reserved now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}
