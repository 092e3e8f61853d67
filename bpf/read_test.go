package bpf

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type readResult struct {
	data []byte
	err  error
}

// readAsync starts a blocking read; the returned channel gets its result.
func readAsync(d *Descriptor, ctx context.Context) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		data, err := readWith(d, ctx, false)
		ch <- readResult{data, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan readResult) readResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("read did not return")
		return readResult{}
	}
}

// notReturned checks that a blocked read is still blocked after the
// descriptor had every chance to (wrongly) wake it.
func notReturned(t *testing.T, ch <-chan readResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("read returned early: %d bytes, %v", len(r.data), r.err)
	case <-time.After(20 * time.Millisecond):
	}
}

// waitBlocked waits until a reader holds the read slot, which it keeps
// while it sleeps.
func waitBlocked(t *testing.T, d *Descriptor) {
	t.Helper()
	for i := 0; len(d.readSem) == 0; i++ {
		if i > 10000 {
			t.Fatal("reader never started")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadSizeCheckedFirst(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.open(true)
	noDeliver := func([]byte) error { t.Fatal("deliver called"); return nil }
	_, err := d.Read(context.Background(), 4095, true, noDeliver)
	wantErrno(t, "wrong size before attach", err, unix.EINVAL)
	_, err = d.Read(context.Background(), 4096, true, noDeliver)
	wantErrno(t, "right size before attach", err, unix.ENXIO)
	_, err = d.Read(context.Background(), 4096, false, noDeliver)
	wantErrno(t, "blocking read before attach", err, unix.ENXIO)
	if err := d.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	_, err = d.Read(context.Background(), 8192, true, noDeliver)
	wantErrno(t, "wrong size after attach", err, unix.EINVAL)
	_, err = d.Read(context.Background(), 4096, true, noDeliver)
	wantErrno(t, "non-blocking read with nothing", err, unix.EAGAIN)
}

func TestReadTimeoutWithNothingReturnsZero(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	d.SetReadTimeout(5 * time.Millisecond)
	called := false
	n, err := d.Read(context.Background(), 4096, false, func([]byte) error { called = true; return nil })
	if n != 0 || err != nil || called {
		t.Fatalf("Read = (%d, %v), deliver called %v; want (0, nil) without deliver", n, err, called)
	}
}

func TestReadTimeoutWithDataReturnsIt(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	d.SetReadTimeout(5 * time.Millisecond)
	f := ethFrame(60, 7)
	tb.ifp.Input(f, wall1)
	tb.ifp.EndBatch()
	data, err := readWith(d, context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	recs := parseRecords(t, data)
	if len(recs) != 1 || !bytes.Equal(recs[0].data, f) {
		t.Fatalf("got %d records, want the one frame", len(recs))
	}
}

func TestBlockingReadWaitsForAFullBuffer(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(256) // two 60-byte records per buffer
	ch := readAsync(d, context.Background())
	waitBlocked(t, d)
	tb.ifp.Input(ethFrame(60, 1), wall1)
	tb.ifp.Input(ethFrame(60, 2), wall1)
	tb.ifp.EndBatch()
	notReturned(t, ch) // no immediate mode, no timeout: a full buffer is needed
	tb.ifp.Input(ethFrame(60, 3), wall1)
	tb.ifp.EndBatch()
	r := await(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if recs := parseRecords(t, r.data); len(recs) != 2 {
		t.Fatalf("%d records, want the 2 of the rotated buffer", len(recs))
	}
}

func TestImmediateMode(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	d.SetImmediate(true)
	ch := readAsync(d, context.Background())
	waitBlocked(t, d)
	f := ethFrame(70, 3)
	tb.ifp.Input(f, wall1)
	tb.ifp.EndBatch()
	r := await(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	recs := parseRecords(t, r.data)
	if len(recs) != 1 || !bytes.Equal(recs[0].data, f) {
		t.Fatalf("got %d records, want the frame", len(recs))
	}
	// With data already stored, an immediate blocking read returns at once.
	tb.ifp.Input(f, wall1)
	if data, err := readWith(d, context.Background(), false); err != nil || len(parseRecords(t, data)) != 1 {
		t.Fatalf("second read: %v", err)
	}
}

func TestOneBufferPerRead(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(256)
	for i := range 4 { // 2 in hold, 2 in store
		tb.ifp.Input(ethFrame(60, byte(i)), wall1)
	}
	if got := d.ReadableBytes(); got != 2*174 {
		t.Fatalf("ReadableBytes %d, want %d (store + hold)", got, 2*174)
	}
	first := parseRecords(t, readNow(t, d))
	second := parseRecords(t, readNow(t, d))
	if len(first) != 2 || len(second) != 2 {
		t.Fatalf("reads gave %d and %d records, want 2 and 2", len(first), len(second))
	}
	if first[0].data[14] != 14 || second[0].data[14] != 2+14 {
		t.Fatal("buffers returned out of order")
	}
	_, err := readWith(d, context.Background(), true)
	wantErrno(t, "third read", err, unix.EAGAIN)
	if d.Info().Reads != 2 {
		t.Fatalf("Reads = %d, want 2", d.Info().Reads)
	}
}

func TestReadCancelledGivesEINTR(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	ctx, cancel := context.WithCancel(context.Background())
	ch := readAsync(d, ctx)
	waitBlocked(t, d)
	cancel()
	r := await(t, ch)
	wantErrno(t, "cancelled read", r.err, unix.EINTR)
	// A reader queued behind another one is cancellable too.
	ch1 := readAsync(d, context.Background())
	waitBlocked(t, d)
	ctx2, cancel2 := context.WithCancel(context.Background())
	ch2 := readAsync(d, ctx2)
	cancel2()
	wantErrno(t, "queued read", await(t, ch2).err, unix.EINTR)
	d.SetImmediate(true)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	tb.ifp.EndBatch()
	if r := await(t, ch1); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestConcurrentReadsAreSerialised(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	d.SetImmediate(true)
	a := readAsync(d, context.Background())
	b := readAsync(d, context.Background())
	waitBlocked(t, d)
	seen := map[byte]bool{}
	for i := range 2 {
		tb.ifp.Input(ethFrame(60, byte(10*i)), wall1)
		tb.ifp.EndBatch()
		var r readResult
		select {
		case r = <-a:
			a = nil
		case r = <-b:
			b = nil
		case <-time.After(10 * time.Second):
			t.Fatal("no reader returned")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		recs := parseRecords(t, r.data)
		if len(recs) != 1 {
			t.Fatalf("%d records in one read, want 1", len(recs))
		}
		seen[recs[0].data[14]] = true
	}
	if len(seen) != 2 {
		t.Fatal("both readers got the same buffer")
	}
}

func TestDeliverErrorFreesTheBuffer(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	_, err := d.Read(context.Background(), 4096, true, func([]byte) error { return unix.EFAULT })
	wantErrno(t, "deliver EFAULT", err, unix.EFAULT)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	_, err = d.Read(context.Background(), 4096, true, func([]byte) error { return errors.New("opaque") })
	wantErrno(t, "deliver without errno", err, unix.EFAULT)
	if d.ReadableBytes() != 0 {
		t.Fatal("the hold buffer was not freed")
	}
}

func TestReadAfterCloseAndWhileClosing(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	ch := readAsync(d, context.Background())
	waitBlocked(t, d)
	d.Close()
	wantErrno(t, "read blocked across Close", await(t, ch).err, unix.ENXIO)
	d.Close() // idempotent
	_, err := readWith(d, context.Background(), true)
	wantErrno(t, "read after Close", err, unix.ENXIO)
}

func TestPollNotAttached(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.open(true)
	all := uint32(PollIn | PollRdNorm | PollOut | PollWrNorm | PollHup | PollErr)
	if got := d.Poll(all); got != all&^PollErr {
		t.Fatalf("Poll = %#x, want %#x", got, all&^PollErr)
	}
	if got := d.Poll(PollIn); got != PollIn {
		t.Fatalf("Poll(In) = %#x", got)
	}
}

func TestPollReadiness(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(256)
	in := uint32(PollIn | PollRdNorm)
	if got := d.Poll(in | PollOut | PollWrNorm); got != PollOut|PollWrNorm {
		t.Fatalf("empty: Poll = %#x, want writable only", got)
	}
	tb.ifp.Input(ethFrame(60, 0), wall1)
	if got := d.Poll(in); got != 0 {
		t.Fatalf("store data without immediate: Poll = %#x, want 0", got)
	}
	d.SetImmediate(true)
	if got := d.Poll(in); got != in {
		t.Fatalf("store data in immediate mode: Poll = %#x, want %#x", got, in)
	}
	d.SetImmediate(false)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	tb.ifp.Input(ethFrame(60, 0), wall1) // rotates: hold buffer
	if got := d.Poll(in); got != in {
		t.Fatalf("hold buffer: Poll = %#x, want %#x", got, in)
	}
	readNow(t, d)
	if got := d.Poll(in); got != 0 {
		t.Fatalf("after reading the hold buffer: Poll = %#x, want 0", got)
	}
}

func pollStateOf(d *Descriptor) pollState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pollState
}

func TestPollTimerWithData(t *testing.T) {
	tb := newTestBed(t)
	d, w := tb.attached(4096)
	d.SetReadTimeout(2 * time.Millisecond)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	in := uint32(PollIn | PollRdNorm)
	if got := d.Poll(in); got != 0 {
		t.Fatalf("Poll = %#x before the timer", got)
	}
	w.waitWake(t)
	if got := d.Poll(in); got != in {
		t.Fatalf("after the timer: Poll = %#x, want %#x", got, in)
	}
	// The timed-out state lets a blocking read take the store buffer at once.
	data, err := readWith(d, context.Background(), false)
	if err != nil || len(parseRecords(t, data)) != 1 {
		t.Fatalf("read after timeout: %v", err)
	}
	if pollStateOf(d) != pollIdle {
		t.Fatal("read did not reset the timeout state")
	}
}

func TestPollTimerWithoutDataWakesOnNextPacket(t *testing.T) {
	tb := newTestBed(t)
	d, w := tb.attached(4096)
	d.SetReadTimeout(time.Millisecond)
	d.Poll(PollIn)
	for i := 0; pollStateOf(d) != pollTimedOut; i++ {
		if i > 10000 {
			t.Fatal("timer never fired")
		}
		time.Sleep(time.Millisecond)
	}
	if w.count() != 0 {
		t.Fatal("the timer woke a descriptor with an empty store")
	}
	tb.ifp.Input(ethFrame(60, 0), wall1)
	tb.ifp.EndBatch()
	if w.count() != 1 {
		t.Fatalf("%d wakes after a packet in the timed-out state, want 1", w.count())
	}
	if got := d.Poll(PollIn); got != PollIn {
		t.Fatalf("Poll = %#x, want readable", got)
	}
}

func TestCancelPollTimeout(t *testing.T) {
	tb := newTestBed(t)
	d, w := tb.attached(4096)
	d.SetReadTimeout(time.Millisecond)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	d.Poll(PollIn)
	if pollStateOf(d) != pollWaiting {
		t.Fatal("poll did not arm the timer")
	}
	d.CancelPollTimeout()
	time.Sleep(20 * time.Millisecond) // give a wrongly live timer the chance to fire
	if pollStateOf(d) != pollIdle || w.count() != 0 {
		t.Fatalf("cancelled timer still acted: state %d, %d wakes", pollStateOf(d), w.count())
	}
	// Without a read timeout poll never arms anything.
	d.SetReadTimeout(0)
	d.Poll(PollIn)
	if pollStateOf(d) != pollIdle {
		t.Fatal("poll armed a timer without a read timeout")
	}
}

func TestWakeCoalescedPerBatch(t *testing.T) {
	tb := newTestBed(t)
	imm, wImm := tb.attached(65536)
	imm.SetImmediate(true)
	_, wSmall := tb.attached(256) // rotates several times per batch
	for range 100 {
		tb.ifp.Input(ethFrame(60, 0), wall1)
	}
	if wImm.count() != 0 || wSmall.count() != 0 {
		t.Fatal("Input woke before EndBatch")
	}
	tb.ifp.EndBatch()
	tb.ifp.EndBatch()
	if wImm.count() != 1 || wSmall.count() != 1 {
		t.Fatalf("wakes immediate=%d rotating=%d, want 1 each", wImm.count(), wSmall.count())
	}
	tb.ifp.Input(ethFrame(60, 0), wall1)
	tb.ifp.EndBatch()
	if wImm.count() != 2 || wSmall.count() != 1 {
		t.Fatalf("second batch: wakes immediate=%d rotating=%d, want 2 and 1 (no rotation, no immediate)", wImm.count(), wSmall.count())
	}
}

func TestWakeCoalescedSixteenDescriptors(t *testing.T) {
	tb := newTestBed(t)
	var ws []*wakeCounter
	for range 16 {
		d, w := tb.attached(4096)
		d.SetImmediate(true)
		ws = append(ws, w)
	}
	for range 32 {
		tb.ifp.Input(ethFrame(60, 0), wall1)
	}
	tb.ifp.EndBatch()
	for i, w := range ws {
		if w.count() != 1 {
			t.Fatalf("descriptor %d woken %d times, want 1", i, w.count())
		}
	}
}
