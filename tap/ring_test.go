//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// A tagged frame that Linux forwards onto the tap keeps its tag beside the
// frame (the tap offloads VLAN insertion), so the ring gets it apart from
// the bytes. Both sources must hand up the same frame: the tag inline, as
// on a wire. (The kernel here has no 8021q; a bridge moves the tag: a
// frame received with a tag has it taken into the skb's metadata.)
func TestVLANTagInline(t *testing.T) {
	forEachSource(t, func(t *testing.T, src Source) {
		ns := quietNetns(t)
		d := openTap(t, Config{Name: testenv.UniqueName("tapv"), Netns: ns})
		in := openTap(t, Config{Name: testenv.UniqueName("tapi"), Netns: ns})
		br := testenv.UniqueName("br")
		testenv.MustRun(t, "ip", "-n", ns, "link", "add", br, "type", "bridge")
		for _, port := range []string{d.Name(), in.Name()} {
			testenv.MustRun(t, "ip", "-n", ns, "link", "set", port, "master", br, "up")
		}
		testenv.MustRun(t, "ip", "-n", ns, "link", "set", br, "up")
		c := startCollector(t, d, ReaderOptions{Source: src})

		frame := append([]byte{}, layers.EthernetBroadcast...)
		frame = append(frame, peerMAC...)
		frame = append(frame, 0x81, 0x00, 0x20, 0x07) // priority 1, VLAN 7
		frame = append(frame, 0x88, 0xb5)             // local experimental EtherType
		frame = append(frame, []byte("tagged frame through a bridge, padded to size")...)
		// The bridge's ports need a moment to forward; keep offering.
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				in.WriteFrame(frame)
				select {
				case <-done:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		p := c.waitPacket(t, "the tagged frame", func(p gopacket.Packet) bool {
			return bytes.Contains(p.Data(), []byte("tagged frame"))
		})
		if !bytes.Equal(p.Data(), frame) {
			t.Fatalf("handed up\n%x\nwant\n%x", p.Data(), frame)
		}
	})
}

// A ring that fills while the handler is stuck loses frames, but never
// silently: every frame sent is either handed up or counted in SourceDrops.
// And while the ring serves, the tap's own queue holds nothing.
func TestRingCountsEveryFrame(t *testing.T) { forEachKernelSource(t, testRingCountsEveryFrame) }

func testRingCountsEveryFrame(t *testing.T, k kernelCase) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapd"), Netns: ns, TxQueueLen: 10000})
	sender := packetSender(t, ns, d.Index())
	stuck := make(chan struct{})
	var handled int
	r := d.NewReader(ReaderOptions{Source: k.src, RingBytes: k.ringBytes}, func(b *Batch) {
		<-stuck
		handled += len(b.Frames)
	})
	runUntilCleanup(t, r)
	const sent = 5000 // several times what the ring holds
	frame := udpFrame(t, 64, 1)
	for range sent {
		if _, err := unix.Write(sender, frame); err != nil {
			t.Fatal(err)
		}
	}
	close(stuck)
	var s ReaderStats
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s = r.Stats()
		if s.Frames+s.SourceDrops >= sent || time.Now().After(deadline) {
			break
		}
	}
	if s.Frames+s.SourceDrops != sent || s.SourceDrops == 0 {
		t.Errorf("frames %d + ring drops %d, want %d with some drops", s.Frames, s.SourceDrops, sent)
	}
	// The tap's queue was emptied by its filter as frames came.
	buf := make([]byte, 2048)
	if n, err := unix.Read(int(r.fd), buf); err != unix.EAGAIN {
		t.Errorf("the tap's own queue held a frame (%d bytes, %v)", n, err)
	}
}

// When a ring reader stops, the tap's queue serves a reading reader again
// (the drop filter goes with the ring).
func TestRingStopRestoresTapQueue(t *testing.T) { forEachKernelSource(t, testRingStopRestoresTapQueue) }

func testRingStopRestoresTapQueue(t *testing.T, k kernelCase) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapq"), Netns: ns, TxQueueLen: 10000})
	sender := packetSender(t, ns, d.Index())
	ring := startCollector(t, d, ReaderOptions{Source: k.src})
	if _, err := unix.Write(sender, udpFrame(t, 80, 1)); err != nil {
		t.Fatal(err)
	}
	ring.waitPacket(t, "a frame through the ring", func(gopacket.Packet) bool { return true })
	ring.r.Stop()

	c := startCollector(t, d, ReaderOptions{Source: SourceRead})
	if _, err := unix.Write(sender, udpFrame(t, 90, 2)); err != nil {
		t.Fatal(err)
	}
	c.waitPacket(t, "a frame through the tap's queue", func(p gopacket.Packet) bool { return len(p.Data()) == 90 })
}

// Frames longer than a slot (the MTU grew after the ring was sized) are
// dropped and counted, not handed up cut short.
func TestRingOversizeCounted(t *testing.T) { forEachKernelSource(t, testRingOversizeCounted) }

func testRingOversizeCounted(t *testing.T, k kernelCase) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapo")
	d := openTap(t, Config{Name: name, Netns: ns})
	sender := packetSender(t, ns, d.Index())
	c := startCollector(t, d, ReaderOptions{Source: k.src})
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "mtu", "9000")
	if _, err := unix.Write(sender, udpFrame(t, 5000, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(sender, udpFrame(t, 100, 2)); err != nil {
		t.Fatal(err)
	}
	p := c.waitPacket(t, "the small frame", func(gopacket.Packet) bool { return true })
	if len(p.Data()) != 100 {
		t.Errorf("first frame handed up has %d bytes, want the 100-byte one", len(p.Data()))
	}
	if s := c.r.Stats(); s.Oversize != 1 {
		t.Errorf("Oversize = %d, want 1", s.Oversize)
	}
}

// A retained ring batch keeps its slots: the kernel cannot overwrite them,
// the bytes stay, and releasing them lets the reader go on.
func TestRingRetainedBatchKeepsSlots(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapk"), Netns: ns})
	sender := packetSender(t, ns, d.Index())
	kept := make(chan *Batch, 1)
	got := make(chan []byte, 4096)
	r := d.NewReader(ReaderOptions{Source: SourceRing, MaxFrames: 1, RingBytes: 1 << 20}, func(b *Batch) {
		if len(kept) == 0 && b.Frames[0].Data[len(b.Frames[0].Data)-1] == 0xaa {
			b.Retain()
			kept <- b
		}
		got <- append([]byte(nil), b.Frames[0].Data...)
	})
	runUntilCleanup(t, r)
	marked := udpFrame(t, 100, 1)
	marked[len(marked)-1] = 0xaa
	send := func(f []byte) {
		t.Helper()
		if _, err := unix.Write(sender, f); err != nil {
			t.Fatal(err)
		}
	}
	next := func(what string) []byte {
		t.Helper()
		select {
		case f := <-got:
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never handled", what)
			return nil
		}
	}
	send(marked)
	b := <-kept
	next("the marked frame")
	want := append([]byte(nil), b.Frames[0].Data...)
	// One frame at a time around the whole ring: the reader comes back to
	// the held slot and must wait there, not take it for a new frame (the
	// kernel, finding it taken, drops what comes meanwhile).
	for i := 1; i < r.ring.slots; i++ {
		send(udpFrame(t, 100, uint16(i+1)))
		next("a frame around the ring")
	}
	send(udpFrame(t, 100, 9999))
	for deadline := time.Now().Add(10 * time.Second); r.Stats().HeldStalls == 0 || r.Stats().SourceDrops == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the reader never met the held slot: %+v", r.Stats())
		}
	}
	if !bytes.Equal(b.Frames[0].Data, want) {
		t.Fatal("a retained frame changed")
	}
	b.Release()
	send(udpFrame(t, 120, 1))
	if f := next("the frame after the release"); len(f) != 120 {
		t.Fatalf("after the release got a %d-byte frame (the held one again?), want the 120-byte one", len(f))
	}
}

// kernelCase is a kernel-filled source sized to hold about slots 64-byte
// frames.
type kernelCase struct {
	src              Source
	ringBytes, slots int
}

// forEachKernelSource runs a test once per source that the kernel fills by
// itself: the packet ring (2 MiB of 2 KiB slots) and the egress program's
// ring buffer (128 KiB of 136-byte records: a 128-byte class and the
// buffer's own 8-byte header).
func forEachKernelSource(t *testing.T, test func(*testing.T, kernelCase)) {
	for _, k := range []kernelCase{
		{SourceRing, 2 << 20, 1024},
		{SourceEgress, 128 << 10, (128 << 10) / 136},
	} {
		t.Run(k.src.String(), func(t *testing.T) { test(t, k) })
	}
}

// gate is a Gate the test opens and closes. Closed, it has one full
// consumer; with others set, other consumers still have room.
type testGate struct {
	open     atomic.Bool
	others   atomic.Bool
	heldDrop atomic.Uint64
}

func (g *testGate) Room(limit int) (least, most int) {
	switch {
	case g.open.Load():
		return limit, limit
	case g.others.Load():
		return 0, limit
	}
	return 0, 0
}

func (g *testGate) HeldBackDrops(n uint64) { g.heldDrop.Add(n) }

// sendNumbered sends 64-byte frames whose IPv4 ids run from from to to-1.
func sendNumbered(t *testing.T, sender, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := unix.Write(sender, udpFrame(t, 64, uint16(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForReader waits up to 10 s for cond, failing with the reader's
// statistics.
func waitForReader(t *testing.T, r *Reader, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, r.Stats())
		}
	}
}

// A closed gate keeps frames in the ring: none is handed up, none is lost
// while the ring has room, and they all come, in order, once it opens. What
// the ring loses while frames are held back is reported to the gate.
func TestRingHoldsFramesBack(t *testing.T) { forEachKernelSource(t, testRingHoldsFramesBack) }

func testRingHoldsFramesBack(t *testing.T, k kernelCase) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("taph"), Netns: ns})
	sender := packetSender(t, ns, d.Index())
	g := &testGate{}
	var mu sync.Mutex
	var got []uint16
	gotLen := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	r := d.NewReader(ReaderOptions{Source: k.src, RingBytes: k.ringBytes, Gate: g, MaxHold: time.Hour}, func(b *Batch) {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range b.Frames {
			got = append(got, binary.BigEndian.Uint16(f.Data[18:20])) // the IPv4 id
		}
	})
	runUntilCleanup(t, r)
	send := func(from, to int) { sendNumbered(t, sender, from, to) }
	waitFor := func(what string, cond func() bool) { waitForReader(t, r, what, cond) }

	send(0, 500)
	waitFor("the reader to hold back", func() bool { return r.Stats().Holds > 20 })
	if gotLen() != 0 {
		t.Fatal("a frame was handed up through a closed gate")
	}
	g.open.Store(true)
	waitFor("the held frames", func() bool { return gotLen() == 500 })
	mu.Lock()
	for i, id := range got {
		if int(id) != i {
			mu.Unlock()
			t.Fatalf("frame %d has id %d: order lost", i, id)
		}
	}
	mu.Unlock()
	if g.heldDrop.Load() != 0 || r.Stats().SourceDrops != 0 {
		t.Fatalf("drops with a ring of room: gate %d, ring %d", g.heldDrop.Load(), r.Stats().SourceDrops)
	}

	// Now more than the ring holds. The reader may have gone to sleep
	// with the ring empty: one frame wakes it to find the gate closed.
	g.open.Store(false)
	send(500, 501)
	waitFor("the reader to hold back again", func() bool { return r.Stats().Holds > 40 })
	send(501, 3500)
	g.open.Store(true)
	waitFor("every frame accounted for", func() bool {
		s := r.Stats()
		return s.Frames+s.SourceDrops == 3500 && g.heldDrop.Load() == s.SourceDrops
	})
	if s := r.Stats(); s.SourceDrops == 0 || s.HeldBackDrops != g.heldDrop.Load() {
		t.Fatalf("ring drops with 3000 frames held back in %d slots: %+v, reported to the gate %d", k.slots, s, g.heldDrop.Load())
	}
}

// A full consumer beside others with room: frames wait in the ring only
// while it is less than half full, so that the others do not lose frames to
// the hold; once the full consumer has room again, everything arrives in
// order.
func TestRingHoldsBackForOneOfSeveral(t *testing.T) {
	forEachKernelSource(t, testRingHoldsBackForOneOfSeveral)
}

func testRingHoldsBackForOneOfSeveral(t *testing.T, k kernelCase) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapo"), Netns: ns})
	sender := packetSender(t, ns, d.Index())
	g := &testGate{}
	g.others.Store(true)
	var handedUp atomic.Int64
	var mu sync.Mutex
	var got []uint16
	r := d.NewReader(ReaderOptions{Source: k.src, RingBytes: k.ringBytes, Gate: g, MaxHold: time.Hour}, func(b *Batch) {
		mu.Lock()
		for _, f := range b.Frames {
			got = append(got, binary.BigEndian.Uint16(f.Data[18:20]))
		}
		mu.Unlock()
		handedUp.Add(int64(len(b.Frames)))
	})
	runUntilCleanup(t, r)
	slots := k.slots
	send := func(from, to int) { sendNumbered(t, sender, from, to) }
	waitFor := func(what string, cond func() bool) { waitForReader(t, r, what, cond) }

	send(0, slots/2-100)
	waitFor("the reader to hold back", func() bool { return r.Stats().Holds > 20 })
	if n := handedUp.Load(); n != 0 {
		t.Fatalf("%d frames handed up with the ring under half full", n)
	}
	// Twice the ring, at a pace the reader can see (a burst faster than
	// its naps could overflow any ring): without the half-full rule
	// most would be lost.
	for sent := slots/2 - 100; sent < 2*slots; sent += 64 {
		to := min(sent+64, 2*slots)
		send(sent, to)
		waitFor("frames to flow past the full consumer", func() bool { return handedUp.Load() >= int64(to-slots/2) })
	}
	if n := handedUp.Load(); n == int64(2*slots) {
		t.Fatalf("all %d frames handed up: nothing was held back", n)
	}
	if s := r.Stats(); s.SourceDrops != 0 || g.heldDrop.Load() != 0 {
		t.Fatalf("ring drops while holding for one consumer of several: %+v", s)
	}
	g.open.Store(true)
	waitFor("every frame", func() bool { return handedUp.Load() == int64(2*slots) })
	mu.Lock()
	defer mu.Unlock()
	for i, id := range got {
		if int(id) != i {
			t.Fatalf("frame %d has id %d: order lost", i, id)
		}
	}
}

// A consumer that stays away longer than MaxHold has stopped reading: the
// frames go on (to be dropped by its rules), and holding back resumes only
// after it has shown room again.
func TestRingHoldRunsOut(t *testing.T) { forEachKernelSource(t, testRingHoldRunsOut) }

func testRingHoldRunsOut(t *testing.T, k kernelCase) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tape"), Netns: ns})
	sender := packetSender(t, ns, d.Index())
	g := &testGate{}
	c := startCollector(t, d, ReaderOptions{Source: k.src, Gate: g, MaxHold: 20 * time.Millisecond})
	if _, err := unix.Write(sender, udpFrame(t, 64, 1)); err != nil {
		t.Fatal(err)
	}
	c.waitPacket(t, "the frame after the hold ran out", func(gopacket.Packet) bool { return true })
	if s := c.r.Stats(); s.HoldsExpired != 1 || s.Holds == 0 {
		t.Fatalf("holds %d, expired %d: want some and 1", s.Holds, s.HoldsExpired)
	}
	// Still closed: no new hold, frames flow at once.
	holds := c.r.Stats().Holds
	for i := range 50 {
		if _, err := unix.Write(sender, udpFrame(t, 64, uint16(i+2))); err != nil {
			t.Fatal(err)
		}
		c.waitPacket(t, "a frame with holding back off", func(gopacket.Packet) bool { return true })
	}
	if s := c.r.Stats(); s.Holds != holds || s.HoldsExpired != 1 {
		t.Fatalf("holding back resumed without room shown: %+v", s)
	}
	// Room shown, then gone again: holding back resumes.
	g.open.Store(true)
	unix.Write(sender, udpFrame(t, 64, 100))
	c.waitPacket(t, "a frame through the open gate", func(gopacket.Packet) bool { return true })
	g.open.Store(false)
	unix.Write(sender, udpFrame(t, 64, 101))
	c.waitPacket(t, "the frame after the second hold", func(gopacket.Packet) bool { return true })
	if s := c.r.Stats(); s.HoldsExpired != 2 {
		t.Fatalf("HoldsExpired = %d after a second hold, want 2", s.HoldsExpired)
	}
}

// Taking the tap down and up again: the packet socket reports ENETDOWN and
// stops capturing while down; the reader must neither spin nor stop, and
// frames sent after the tap is up again arrive.
func TestRingSurvivesLinkDownUp(t *testing.T) { forEachKernelSource(t, testRingSurvivesLinkDownUp) }

func testRingSurvivesLinkDownUp(t *testing.T, k kernelCase) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapu")
	d := openTap(t, Config{Name: name, Netns: ns})
	c := startCollector(t, d, ReaderOptions{Source: k.src})
	sender := packetSender(t, ns, d.Index())
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "down")
	waitBlocked(t, c.r)
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "up")
	// The carrier comes back with the link; keep offering until a frame
	// makes it through.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 0; ; i++ {
			unix.Write(sender, udpFrame(t, 64, uint16(i)))
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	c.waitPacket(t, "a frame after down and up", func(gopacket.Packet) bool { return true })
	if s := c.r.Stats(); s.Waits > 1000 {
		t.Errorf("the reader spun: %d waits", s.Waits)
	}
}

// A retained egress batch keeps its records: the ring buffer is freed only
// up to the oldest batch still held, so later batches released meanwhile
// free nothing, the program drops (and counts) what finds no room, and the
// retained bytes stay. Its release frees everything after it at once.
func TestEgressRetainedBatchKeepsRecords(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapk"), Netns: ns})
	sender := packetSender(t, ns, d.Index())
	kept := make(chan *Batch, 1)
	var handled atomic.Int64
	r := d.NewReader(ReaderOptions{Source: SourceEgress, MaxFrames: 1, RingBytes: 64 << 10}, func(b *Batch) {
		if len(kept) == 0 && b.Frames[0].Data[len(b.Frames[0].Data)-1] == 0xaa {
			b.Retain()
			kept <- b
		}
		handled.Add(1)
	})
	runUntilCleanup(t, r)
	marked := udpFrame(t, 100, 1)
	marked[len(marked)-1] = 0xaa
	if _, err := unix.Write(sender, marked); err != nil {
		t.Fatal(err)
	}
	b := <-kept
	want := append([]byte(nil), b.Frames[0].Data...)
	// 64 KiB hold 481 of these records; the held one pins the start.
	for i := 0; r.Stats().SourceDrops == 0; i++ {
		if i == 5000 {
			t.Fatalf("no drop with the ring's start held: %+v", r.Stats())
		}
		if _, err := unix.Write(sender, udpFrame(t, 100, uint16(i+2))); err != nil {
			t.Fatal(err)
		}
		waitForReader(t, r, "the frame handled or dropped", func() bool {
			s := r.Stats()
			return int(s.Frames+s.SourceDrops) == i+2
		})
	}
	if n := handled.Load(); n < 400 || n > 481 {
		t.Errorf("%d frames handed up before the ring was full, want about 481", n)
	}
	if !bytes.Equal(b.Frames[0].Data, want) {
		t.Fatal("a retained frame changed")
	}
	b.Release()
	drops := r.Stats().SourceDrops
	before := handled.Load()
	sendNumbered(t, sender, 0, 400)
	waitForReader(t, r, "frames after the release", func() bool { return handled.Load() == before+400 })
	if s := r.Stats(); s.SourceDrops != drops {
		t.Errorf("drops after the release: %d, want %d", s.SourceDrops, drops)
	}
}
