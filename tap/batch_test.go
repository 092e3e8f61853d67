//go:build linux

package tap

import (
	"strings"
	"sync"
	"testing"
)

func TestBatchPoolRefcount(t *testing.T) {
	p := newBatchPool(1024, 8, 2)
	b := p.get()
	if got := b.refs.Load(); got != 1 {
		t.Fatalf("fresh batch holds %d references, want 1", got)
	}
	b.Retain()
	b.Release()
	if len(p.idle) != 1 {
		t.Fatalf("batch returned to the pool while still retained (idle %d)", len(p.idle))
	}
	b.Release()
	if len(p.idle) != 2 {
		t.Fatalf("last Release did not return the batch (idle %d)", len(p.idle))
	}

	// Misuse is counted and changes nothing.
	b.Release()
	b.Retain()
	if p.refcountErrors.Load() != 2 || len(p.idle) != 2 || b.refs.Load() != 0 {
		t.Fatalf("after misuse: errors %d, idle %d, refs %d", p.refcountErrors.Load(), len(p.idle), b.refs.Load())
	}
	if again := p.get(); again != b {
		t.Error("pool is not LIFO: the warmest buffer was not handed out first")
	}
	if p.misses.Load() != 0 {
		t.Errorf("misses = %d", p.misses.Load())
	}
}

func TestBatchPoolMissesAndCap(t *testing.T) {
	p := newBatchPool(1024, 8, 2)
	var held []*Batch
	for range 5 {
		held = append(held, p.get())
	}
	if p.misses.Load() != 3 {
		t.Errorf("misses = %d after 5 gets from a pool of 2, want 3", p.misses.Load())
	}
	for _, b := range held {
		b.Release()
	}
	if len(p.idle) != 2 {
		t.Errorf("pool keeps %d idle buffers, want its size 2", len(p.idle))
	}
}

// A handler may shrink or replace Frames; the next use starts clean.
func TestBatchFramesRestoredOnReuse(t *testing.T) {
	p := newBatchPool(1024, 8, 1)
	b := p.get()
	b.Frames = nil
	b.Release()
	b = p.get()
	if len(b.Frames) != 0 || cap(b.Frames) != 8 {
		t.Errorf("reused batch Frames len %d cap %d, want 0 and 8", len(b.Frames), cap(b.Frames))
	}
}

func TestZeroBatchDoesNotPanic(t *testing.T) {
	var b Batch
	b.Retain()
	b.Release()
}

// Concurrent Retain/Release from many goroutines: exactly one return to the
// pool, no errors.
func TestBatchConcurrentRelease(t *testing.T) {
	p := newBatchPool(1024, 8, 4)
	for range 100 {
		b := p.get()
		const users = 8
		for range users {
			b.Retain()
		}
		idleBefore := len(p.idle)
		var wg sync.WaitGroup
		for range users {
			wg.Go(b.Release)
		}
		wg.Wait()
		b.Release()
		if len(p.idle) != idleBefore+1 {
			t.Fatalf("idle %d -> %d, want one more", idleBefore, len(p.idle))
		}
	}
	if p.refcountErrors.Load() != 0 {
		t.Errorf("refcount errors %d", p.refcountErrors.Load())
	}
}

func TestReaderOptionsDefaults(t *testing.T) {
	o := ReaderOptions{}.withDefaults()
	if o.BufferSize != DefaultBufferSize || o.MaxFrames != DefaultMaxFrames || o.PoolSize != DefaultPoolSize {
		t.Errorf("defaults %+v", o)
	}
	if o := (ReaderOptions{BufferSize: 100}).withDefaults(); o.BufferSize != MaxFrameLen {
		t.Errorf("BufferSize 100 became %d, want MaxFrameLen %d", o.BufferSize, MaxFrameLen)
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"bpf0tap": true, "a": true, "123456789012345": true,
		"": false, "1234567890123456": false, ".": false, "..": false,
		"a/b": false, "a:b": false, "t%d": false, "a b": false, "a\x00": false, "a\n": false,
	} {
		if err := validName(name); (err == nil) != ok {
			t.Errorf("validName(%q) = %v", name, err)
		}
	}
}

// Whatever validName accepts obeys the kernel's rules for interface names.
func FuzzValidName(f *testing.F) {
	for _, seed := range []string{"bpf0tap", "a/b", "..", "tap%d", "123456789012345"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if validName(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/:% \t\n\v\f\r\x00") {
			t.Fatalf("accepted %q", name)
		}
	})
}
