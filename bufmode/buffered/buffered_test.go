package buffered

import (
	"bytes"
	"testing"
)

func fill(b *Buffers, n int, v byte) {
	copy(b.Store(), bytes.Repeat([]byte{v}, n))
	b.SetStoreLen(n)
}

func TestNewAllocatesTwoBuffers(t *testing.T) {
	b := New(100)
	if b.Size() != 100 || len(b.Store()) != 100 || !b.HasFree() || b.HasHold() || b.StoreLen() != 0 {
		t.Fatalf("fresh buffers wrong: size %d store %d free %v hold %v", b.Size(), len(b.Store()), b.HasFree(), b.HasHold())
	}
	if !b.slotsConsistent() {
		t.Fatal("inconsistent slots")
	}
	if New(0).Size() != MinSize || New(-5).Size() != MinSize {
		t.Fatal("sizes below the minimum not raised")
	}
}

func TestRotateMovesStoreToHold(t *testing.T) {
	b := New(64)
	fill(b, 40, 'a')
	first := &b.Store()[0]
	if !b.Rotate() {
		t.Fatal("first rotation refused")
	}
	if !b.HasHold() || b.HoldLen() != 40 || !b.HoldReadable() || b.StoreLen() != 0 || b.HasFree() {
		t.Fatal("state after rotation wrong")
	}
	if &b.Store()[0] == first {
		t.Fatal("the new store buffer is the old one")
	}
	fill(b, 10, 'b')
	if b.Rotate() {
		t.Fatal("rotated without a free buffer")
	}
	if b.StoreLen() != 10 || b.HoldLen() != 40 {
		t.Fatal("a refused rotation changed something")
	}
	if !b.slotsConsistent() {
		t.Fatal("inconsistent slots")
	}
}

func TestReadCycle(t *testing.T) {
	b := New(64)
	fill(b, 40, 'a')
	b.Rotate()
	data := b.BeginRead()
	if !bytes.Equal(data, bytes.Repeat([]byte{'a'}, 40)) {
		t.Fatalf("BeginRead = %q", data)
	}
	if b.BeginRead() != nil {
		t.Fatal("a second BeginRead got the buffer in use")
	}
	b.EndRead()
	if b.HasHold() || !b.HasFree() || b.HoldLen() != 0 || b.HoldReadable() {
		t.Fatal("EndRead did not free the hold buffer")
	}
	b.EndRead() // without BeginRead: nothing
	if !b.slotsConsistent() {
		t.Fatal("inconsistent slots")
	}
	if New(64).BeginRead() != nil {
		t.Fatal("BeginRead without a hold buffer")
	}
}

func TestResetKeepsAHoldBufferInUse(t *testing.T) {
	b := New(64)
	fill(b, 40, 'a')
	b.Rotate()
	data := b.BeginRead()
	fill(b, 20, 'b')
	b.Reset()
	if b.StoreLen() != 0 || !b.HasHold() || b.HasFree() {
		t.Fatal("Reset freed a hold buffer that is being read")
	}
	if !bytes.Equal(data, bytes.Repeat([]byte{'a'}, 40)) {
		t.Fatal("the data being read changed")
	}
	b.EndRead()
	if b.HasHold() || !b.HasFree() {
		t.Fatal("EndRead after Reset")
	}

	fill(b, 20, 'c')
	b.Rotate()
	b.Reset()
	if b.HasHold() || !b.HasFree() || b.StoreLen() != 0 {
		t.Fatal("Reset did not empty both slots")
	}
}

func TestSetStoreLenClamps(t *testing.T) {
	b := New(64)
	b.SetStoreLen(100)
	if b.StoreLen() != 64 {
		t.Fatalf("StoreLen %d after an oversized set", b.StoreLen())
	}
	b.SetStoreLen(-1)
	if b.StoreLen() != 0 {
		t.Fatalf("StoreLen %d after a negative set", b.StoreLen())
	}
	if !b.StoreWritable() {
		t.Fatal("buffer-mode store not writable")
	}
	b.BufferFull() // nothing to do in buffer mode
	b.ReclaimHold()
	if !b.slotsConsistent() {
		t.Fatal("no-op hooks changed the slots")
	}
}
