//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

// recordingTarget is a DirectTarget that takes frames into its own arena
// while it has room for one more largest frame, and records the order in
// which frames arrived by either path.
type recordingTarget struct {
	arena   []byte
	used    int
	open    bool
	order   []uint16 // IPv4 ids, direct and batch frames together
	bursts  int
	misuses int
}

func (rt *recordingTarget) DirectBuffer(need int) []byte {
	if rt.open {
		rt.misuses++
	}
	if len(rt.arena)-rt.used < need {
		return nil
	}
	rt.open = true
	return rt.arena[rt.used : rt.used+need]
}

func (rt *recordingTarget) DirectEnd(n int, _ int64, _ error) {
	if !rt.open {
		rt.misuses++
	}
	rt.open = false
	if n > 0 {
		rt.order = append(rt.order, frameID(rt.arena[rt.used:rt.used+n]))
		rt.used += n
	}
}

func (rt *recordingTarget) DirectBurstEnd() { rt.bursts++ }

func frameID(f []byte) uint16 { return binary.BigEndian.Uint16(f[14+4 : 14+6]) }

// TestReaderDirectTarget sends numbered frames; the first go straight into
// the target until its arena is nearly full, the rest through batches. All
// arrive once, in order, and the counters say which path each took.
func TestReaderDirectTarget(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapd"), Netns: ns, TxQueueLen: 10000})
	sender := packetSender(t, ns, d.Index())
	target := &recordingTarget{arena: make([]byte, MaxFrameLen+20*100)}
	r := d.NewReader(ReaderOptions{Direct: target}, func(b *Batch) {
		for _, f := range b.Frames {
			target.order = append(target.order, frameID(f.Data))
		}
	})
	t.Cleanup(func() { r.Stop() }) // never Run: readBatch is driven below

	const total = 60
	for id := uint16(1); id <= total; id++ {
		if _, err := unix.Write(sender, udpFrame(t, 100, id)); err != nil {
			t.Fatal(err)
		}
	}
	for len(target.order) < total {
		if err := r.readBatch(); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range target.order {
		if id != uint16(i+1) {
			t.Fatalf("frames arrived as %v, want 1..%d in order", target.order, total)
		}
	}
	s := r.Stats()
	if s.DirectFrames == 0 || s.DirectFrames >= total || s.Frames != total || target.bursts == 0 || target.misuses != 0 {
		t.Fatalf("stats %+v, bursts %d, misuses %d: want some but not all frames direct, every frame counted once",
			s, target.bursts, target.misuses)
	}
	if !bytes.Equal(target.arena[:2], peerMAC[:2]) {
		t.Fatalf("the first direct frame does not start at the offered memory: % x", target.arena[:14])
	}
}

func TestReaderDirectDoesNotAllocate(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapz"), Netns: ns, TxQueueLen: 10000})
	sender := packetSender(t, ns, d.Index())
	frame := udpFrame(t, 64, 1)
	target := &recordingTarget{arena: make([]byte, 2*MaxFrameLen), order: make([]uint16, 0, 1<<16)}
	var got int
	r := d.NewReader(ReaderOptions{Direct: target}, func(b *Batch) { got += len(b.Frames) })
	t.Cleanup(func() { r.Stop() })
	const perRun = 16
	allocs := testing.AllocsPerRun(200, func() {
		target.used = 0
		target.order = target.order[:0]
		for range perRun {
			if _, err := unix.Write(sender, frame); err != nil {
				t.Fatal(err)
			}
		}
		want := got + perRun
		for got+len(target.order) < want {
			if err := r.readBatch(); err != nil {
				t.Fatal(err)
			}
		}
		got += len(target.order)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per %d frames, want 0", allocs, perRun)
	}
	if s := r.Stats(); s.DirectFrames == 0 {
		t.Errorf("no frame took the direct path: %+v", s)
	}
}
