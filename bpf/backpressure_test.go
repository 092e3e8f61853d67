package bpf

import (
	"context"
	"testing"
)

// Room counts exactly the largest frames that fit before a drop: that many
// go in without one, the next is dropped, and a read makes room again.
func TestRoomIsExact(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	big := ethFrame(1514, 1) // 14 + MTU 1500
	// A 1514-byte frame takes a 1544-byte record slot (26 + 1514, word
	// aligned, plus room for a 4-byte VLAN tag): 2 per buffer, 2 buffers.
	if least, most := tb.ifp.Room(100); least != 4 || most != 4 {
		t.Fatalf("Room = %d, %d with both buffers empty, want 4, 4", least, most)
	}
	for i := range 4 {
		tb.ifp.Input(big, int64(i))
	}
	if s := d.Stats(); s.Drop != 0 {
		t.Fatalf("%d drops within the room Room promised", s.Drop)
	}
	if least, most := tb.ifp.Room(100); least != 0 || most != 0 {
		t.Fatalf("Room = %d, %d with both buffers full, want 0, 0", least, most)
	}
	tb.ifp.Input(big, 5)
	if s := d.Stats(); s.Drop != 1 {
		t.Fatalf("Drop = %d after a frame with Room 0, want 1", s.Drop)
	}
	if _, err := d.Read(context.Background(), 4096, true, func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if least, most := tb.ifp.Room(100); least != 2 || most != 2 {
		t.Errorf("Room = %d, %d after the hold buffer was read, want 2, 2", least, most)
	}
	if least, most := tb.ifp.Room(1); least != 1 || most != 1 {
		t.Errorf("Room(1) = %d, %d, want the limit 1, 1", least, most)
	}
}

// Room reports both the fullest and the roomiest descriptor (the reader
// holds back for the first only while its ring has depth to spare for the
// others); descriptors that take no incoming frames do not count, and
// without any taker the answer is the limit.
func TestRoomOfSeveralDescriptors(t *testing.T) {
	tb := newTestBed(t)
	if least, most := tb.ifp.Room(64); least != 64 || most != 64 {
		t.Fatalf("Room = %d, %d with no descriptor, want the limit", least, most)
	}
	out, _ := tb.attached(4096)
	if err := out.SetDirection(DirectionOut); err != nil {
		t.Fatal(err)
	}
	if least, most := tb.ifp.Room(64); least != 64 || most != 64 {
		t.Fatalf("Room = %d, %d with an outgoing-only descriptor, want the limit", least, most)
	}
	full, _ := tb.attached(4096)
	for i := range 4 {
		tb.ifp.Input(ethFrame(1514, 1), int64(i))
	}
	if least, most := tb.ifp.Room(64); least != 0 || most != 0 {
		t.Fatalf("Room = %d, %d with the only taker full, want 0, 0", least, most)
	}
	roomy, _ := tb.attached(32768)
	if least, most := tb.ifp.Room(64); least != 0 || most != 42 {
		t.Fatalf("Room = %d, %d with a 32 KiB taker beside a full one, want 0, 42", least, most)
	}
	if least, most := tb.ifp.Room(10); least != 0 || most != 10 {
		t.Fatalf("Room(10) = %d, %d beside a full one, want 0, 10", least, most)
	}

	tb.ifp.HeldBackDrops(7)
	if s := full.Stats(); s.Recv != 4+7 || s.Drop != 7 {
		t.Errorf("full descriptor: recv %d drop %d, want 11 and 7", s.Recv, s.Drop)
	}
	if s := roomy.Stats(); s.Recv != 7 || s.Drop != 7 {
		t.Errorf("roomy descriptor: recv %d drop %d, want 7 and 7", s.Recv, s.Drop)
	}
	if s := out.Stats(); s.Recv != 0 || s.Drop != 0 {
		t.Errorf("outgoing-only descriptor: recv %d drop %d, want none", s.Recv, s.Drop)
	}
}

// Frames that arrive while a read is still handing the hold buffer over
// find both buffers full and are dropped; the store they filled is then
// rotated as soon as the read ends, so that a program waiting for the next
// buffer gets it even if no further frame comes.
func TestReadRotatesStoreFilledDuringDelivery(t *testing.T) {
	tb := newTestBed(t)
	d, w := tb.attached(4096)
	small := ethFrame(142, 1) // 168-byte records: 24 per buffer
	for i := range 25 {
		tb.ifp.Input(small, int64(i)) // the 25th rotates
	}
	tb.ifp.EndBatch()
	deliver := func([]byte) error {
		for i := range 30 { // 1 in the store already, 23 more fit, 7 dropped
			tb.ifp.Input(small, int64(100+i))
		}
		return nil
	}
	before := w.count()
	if n, err := d.Read(context.Background(), 4096, true, deliver); err != nil || n != 24*168 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if s := d.Stats(); s.Drop != 7 {
		t.Fatalf("Drop = %d, want 7", s.Drop)
	}
	if w.count() == before {
		t.Error("no wake-up for the buffer rotated at the end of the read")
	}
	if d.Poll(PollIn)&PollIn == 0 {
		t.Error("not readable after the rotation")
	}
	n, err := d.Read(context.Background(), 4096, true, func([]byte) error { return nil })
	if err != nil || n != 24*168 {
		t.Fatalf("the store filled during the read was not handed over: Read = %d, %v", n, err)
	}
}
