package bpf

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRotationAndDropsWithExactCounters(t *testing.T) {
	tb := newTestBed(t)
	d, w := tb.attached(256) // a 60-byte frame takes 88 aligned bytes: 2 per buffer
	for i := range 6 {
		tb.ifp.Input(ethFrame(60, byte(i)), wall1)
	}
	// 1,2 → store; 3 rotates (hold = 1,2), store = 3,4; 5 and 6 find no free buffer.
	want := Stats{Recv: 6, Captured: 4, Drop: 2}
	if s := d.Stats(); s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
	tb.ifp.EndBatch()
	if w.count() != 1 {
		t.Fatalf("%d wakes, want 1 (the rotation)", w.count())
	}
	d.SetReadFilter(retK(t, 0), false)
	for range 3 {
		tb.ifp.Input(ethFrame(60, 0), wall1)
	}
	want = Stats{Recv: 9, Captured: 4, Drop: 2, Rejected: 3}
	if s := d.Stats(); s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
	checkInvariant(t, d.Stats())

	var firsts []byte
	for range 2 {
		for _, r := range parseRecords(t, readNow(t, d)) {
			firsts = append(firsts, r.data[14]-14)
		}
	}
	if !slices.Equal(firsts, []byte{0, 1, 2, 3}) {
		t.Fatalf("captured frames %v, want 0 1 2 3", firsts)
	}
	// Buffers are free again: capturing resumes.
	d.SetReadFilter(nil, false)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	if s := d.Stats(); s.Captured != 5 {
		t.Fatalf("stats %+v after draining, want 5 captured", s)
	}
	checkInvariant(t, d.Stats())
}

func TestFlush(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(256)
	for range 5 {
		tb.ifp.Input(ethFrame(60, 0), wall1)
	}
	if d.ReadableBytes() == 0 {
		t.Fatal("nothing buffered")
	}
	d.Flush()
	if d.ReadableBytes() != 0 || d.Stats() != (Stats{}) {
		t.Fatalf("after Flush: %d bytes, stats %+v", d.ReadableBytes(), d.Stats())
	}
	_, err := readWith(d, context.Background(), true)
	wantErrno(t, "read after Flush", err, unix.EAGAIN)
	// Both buffers are usable again.
	for range 4 {
		tb.ifp.Input(ethFrame(60, 0), wall1)
	}
	if s := d.Stats(); s.Captured != 4 || s.Drop != 0 {
		t.Fatalf("after Flush, stats %+v, want 4 captured", s)
	}
}

func TestSetReadFilterFlushOrNot(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	d.SetReadFilter(retK(t, 10), false) // BIOCSETFNR keeps data and counters
	if d.ReadableBytes() == 0 || d.Stats().Captured != 1 {
		t.Fatal("BIOCSETFNR flushed")
	}
	d.SetReadFilter(retK(t, 10), true) // BIOCSETF flushes
	if d.ReadableBytes() != 0 || d.Stats() != (Stats{}) {
		t.Fatal("BIOCSETF did not flush")
	}
}

func TestFlushWhileReading(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(256)
	for i := range 4 {
		tb.ifp.Input(ethFrame(60, byte(i)), wall1)
	}
	var got []byte
	_, err := d.Read(context.Background(), 256, true, func(data []byte) error {
		// A flush and new traffic while the hold buffer is being copied
		// must not touch it.
		d.Flush()
		tb.ifp.Input(ethFrame(60, 9), wall1)
		tb.ifp.Input(ethFrame(60, 9), wall1)
		tb.ifp.Input(ethFrame(60, 9), wall1)
		got = append(got, data...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := parseRecords(t, got)
	if len(recs) != 2 || recs[0].data[14] != 14 || recs[1].data[14] != 15 {
		t.Fatal("hold buffer changed during the read")
	}
	// The flush emptied the store; the two new frames then filled it and
	// the third was dropped (the hold buffer was still in use).
	if s := d.Stats(); s != (Stats{Recv: 3, Captured: 2, Drop: 1}) {
		t.Fatalf("stats %+v", s)
	}
	if recs := parseRecords(t, readNow(t, d)); len(recs) != 2 || recs[0].data[14] != 9+14 {
		t.Fatal("store buffer after the flush is wrong")
	}
}

func TestDefaultsAndSettings(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.open(true)
	if d.BufLen() != 4096 || d.BufMode() != BufModeBuffer || d.Direction() != DirectionInOut ||
		d.Signal() != 29 || d.TimestampType() != TstampMicro || d.HeaderComplete() || d.Feedback() ||
		d.Locked() || d.ReadTimeout() != 0 || d.VLANPCP() != 0 {
		t.Fatalf("defaults wrong: %+v", d.Info())
	}
	d2 := NewDescriptor(&Config{DefaultBufSize: 100000, MaxBufSize: 65536}, Owner{}, nil)
	t.Cleanup(d2.Close)
	if d2.BufLen() != 65536 {
		t.Fatalf("default above the maximum: BufLen %d, want 65536", d2.BufLen())
	}
	d3 := NewDescriptor(nil, Owner{}, nil)
	t.Cleanup(d3.Close)
	if d3.BufLen() != 4096 {
		t.Fatalf("nil config: BufLen %d", d3.BufLen())
	}
	wantErrno(t, "nil config Attach", d3.Attach("tap0"), unix.ENXIO)
	if d.ID() == d2.ID() || d2.ID() == d3.ID() {
		t.Fatal("IDs not unique")
	}

	wantErrno(t, "SetSignal(32)", d.SetSignal(32), unix.EINVAL)
	if err := d.SetSignal(31); err != nil || d.Signal() != 31 {
		t.Fatalf("SetSignal(31): %v, %d", err, d.Signal())
	}
	wantErrno(t, "SetDirection(3)", d.SetDirection(3), unix.EINVAL)
	for _, dir := range []uint32{DirectionIn, DirectionOut, DirectionInOut} {
		if err := d.SetDirection(dir); err != nil || d.Direction() != dir {
			t.Fatalf("SetDirection(%d): %v", dir, err)
		}
	}
	wantErrno(t, "SetVLANPCP(8)", d.SetVLANPCP(8), unix.EINVAL)
	if err := d.SetVLANPCP(7); err != nil || d.VLANPCP() != 7 {
		t.Fatalf("SetVLANPCP(7): %v", err)
	}
	for _, tv := range []time.Duration{1500 * time.Microsecond, 1234567 * time.Microsecond, time.Microsecond, 0} {
		d.SetReadTimeout(tv)
		if d.ReadTimeout() != tv {
			t.Fatalf("ReadTimeout %v, want %v exactly", d.ReadTimeout(), tv)
		}
	}
	d.SetReadTimeout(-time.Second)
	if d.ReadTimeout() != 0 {
		t.Fatal("a negative timeout was kept")
	}
	d.SetHeaderComplete(true)
	d.SetFeedback(true)
	d.Lock()
	if !d.HeaderComplete() || !d.Feedback() || !d.Locked() {
		t.Fatal("flags not stored")
	}
}

func TestBufModeAndBufLenOrdering(t *testing.T) {
	tb := newTestBed(t)
	tb.cfg.ZeroCopy = false // like FreeBSD's sysctl net.bpf.zerocopy_enable=0
	tb.cfg.MaxBufSize = 8192

	d, _ := tb.open(true)
	wantErrno(t, "SetBufMode(zbuf) with zero-copy off", d.SetBufMode(BufModeZbuf), unix.EINVAL)
	wantErrno(t, "SetBufMode(3)", d.SetBufMode(3), unix.EINVAL)
	wantErrno(t, "SetBufMode(0)", d.SetBufMode(0), unix.EINVAL)
	if err := d.SetBufMode(BufModeBuffer); err != nil {
		t.Fatalf("SetBufMode(buffer) on a fresh descriptor: %v", err)
	}
	for _, c := range []struct{ in, out uint32 }{{0, 32}, {31, 32}, {33, 33}, {5000, 5000}, {1 << 31, 8192}, {0xffffffff, 8192}} {
		got, err := d.SetBufLen(c.in)
		if err != nil || got != c.out || d.BufLen() != c.out {
			t.Fatalf("SetBufLen(%d) = %d, %v; want %d", c.in, got, err, c.out)
		}
	}
	// Buffers exist now: even the current mode is EBUSY.
	wantErrno(t, "SetBufMode after SetBufLen", d.SetBufMode(BufModeBuffer), unix.EBUSY)
	wantErrno(t, "SetBufMode(zbuf) after SetBufLen", d.SetBufMode(BufModeZbuf), unix.EINVAL)

	// A failed attach still allocates the buffers.
	d2, _ := tb.open(true)
	wantErrno(t, "Attach(unknown)", d2.Attach("nope0"), unix.ENXIO)
	wantErrno(t, "SetBufMode after a failed attach", d2.SetBufMode(BufModeBuffer), unix.EBUSY)
	if _, err := d2.SetBufLen(1024); err != nil {
		t.Fatalf("SetBufLen before a successful attach: %v", err)
	}
	if err := d2.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	_, err := d2.SetBufLen(2048)
	wantErrno(t, "SetBufLen after attach", err, unix.EINVAL)
	if d2.BufLen() != 1024 {
		t.Fatal("a refused SetBufLen changed the size")
	}
	wantErrno(t, "SetBufMode after attach", d2.SetBufMode(BufModeBuffer), unix.EBUSY)
}

func TestAttachmentQueries(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.open(true)
	_, err := d.DLT()
	wantErrno(t, "DLT", err, unix.EINVAL)
	_, err = d.DLTList()
	wantErrno(t, "DLTList", err, unix.EINVAL)
	_, err = d.InterfaceName()
	wantErrno(t, "InterfaceName", err, unix.EINVAL)
	wantErrno(t, "Promisc", d.Promisc(), unix.EINVAL)
	wantErrno(t, "SetDLT", d.SetDLT(DLTEN10MB), unix.EINVAL)

	if err := d.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	if dlt, err := d.DLT(); err != nil || dlt != DLTEN10MB {
		t.Fatalf("DLT = %d, %v", dlt, err)
	}
	if list, err := d.DLTList(); err != nil || !slices.Equal(list, []uint32{DLTEN10MB}) {
		t.Fatalf("DLTList = %v, %v", list, err)
	}
	if name, err := d.InterfaceName(); err != nil || name != "tap0" {
		t.Fatalf("InterfaceName = %q, %v", name, err)
	}
	if err := d.SetDLT(DLTEN10MB); err != nil {
		t.Fatalf("SetDLT(EN10MB): %v", err)
	}
	wantErrno(t, "SetDLT(DLT_RAW)", d.SetDLT(12), unix.EINVAL)
	if err := d.Promisc(); err != nil || !d.Info().Promisc {
		t.Fatalf("Promisc: %v", err)
	}
}

func TestReattach(t *testing.T) {
	tb := newTestBed(t)
	other := NewInterface("tap1", 1500, testAddr, &fakeTx{})
	if err := tb.cfg.Registry.Add(other); err != nil {
		t.Fatal(err)
	}
	d, _ := tb.attached(4096)
	if err := d.Promisc(); err != nil {
		t.Fatal(err)
	}
	tb.ifp.Input(ethFrame(60, 0), wall1)
	// Same interface: flush only, promiscuous mode stays.
	if err := d.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	if d.ReadableBytes() != 0 || d.Stats() != (Stats{}) || !d.Info().Promisc {
		t.Fatalf("re-attach to the same interface: %+v", d.Info())
	}
	tb.ifp.Input(ethFrame(60, 0), wall1)
	if err := d.Attach("tap1"); err != nil {
		t.Fatal(err)
	}
	if d.ReadableBytes() != 0 || d.Stats() != (Stats{}) || d.Info().Promisc || d.Info().Interface != "tap1" {
		t.Fatalf("move to another interface: %+v", d.Info())
	}
	tb.ifp.Input(ethFrame(60, 0), wall1)
	if d.Stats().Recv != 0 {
		t.Fatal("still sees the old interface")
	}
	other.Input(ethFrame(60, 0), wall1)
	if d.Stats().Captured != 1 {
		t.Fatal("does not see the new interface")
	}
	if n := len(*tb.ifp.listeners.Load()); n != 0 {
		t.Fatalf("old interface still lists %d listeners", n)
	}
}

func TestGoneDetachesAndWakes(t *testing.T) {
	tb := newTestBed(t)
	reader, wReader := tb.attached(4096)
	writer, wWriter := tb.open(false)
	if err := writer.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	ch := readAsync(reader, context.Background())
	waitBlocked(t, reader)
	tb.ifp.Gone()
	wantErrno(t, "blocked read across Gone", await(t, ch).err, unix.ENXIO)
	if wReader.count() != 1 || wWriter.count() != 1 {
		t.Fatalf("wakes reader=%d writer=%d, want 1 each", wReader.count(), wWriter.count())
	}
	_, err := readWith(reader, context.Background(), false)
	wantErrno(t, "read after Gone", err, unix.ENXIO)
	_, err = writer.Write(ethFrame(60, 0))
	wantErrno(t, "write after Gone", err, unix.ENXIO)
	if got := reader.Poll(PollIn | PollHup); got != PollIn|PollHup {
		t.Fatalf("Poll after Gone = %#x", got)
	}
	_, err = reader.InterfaceName()
	wantErrno(t, "InterfaceName after Gone", err, unix.EINVAL)
	wantErrno(t, "Attach to a gone interface", reader.Attach("tap0"), unix.ENXIO)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	if reader.Stats().Recv != 0 {
		t.Fatal("a gone interface still delivers")
	}
}

func TestGoneKeepsBufferedDataReadable(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	tb.ifp.Gone()
	// As on FreeBSD, what was captured before the interface vanished can
	// still be read (non-blocking or immediate); then ENXIO.
	if recs := parseRecords(t, readNow(t, d)); len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	_, err := readWith(d, context.Background(), true)
	wantErrno(t, "second read", err, unix.ENXIO)
}

func TestWriterOnlyNeverReceives(t *testing.T) {
	tb := newTestBed(t)
	w, _ := tb.open(false)
	if _, err := w.SetBufLen(4096); err != nil {
		t.Fatal(err)
	}
	if err := w.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	w.SetImmediate(true)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	if _, err := w.Write(ethFrame(60, 0)); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Recv != 0 || s.Captured != 0 || s.Written != 1 {
		t.Fatalf("writer-only stats %+v", s)
	}
	if got := w.Poll(PollIn | PollOut); got != PollOut {
		t.Fatalf("writer-only Poll = %#x, want PollOut", got)
	}
	if len(tb.tx.sent()) != 1 {
		t.Fatal("writer-only write not transmitted")
	}
}

// directionBed has one descriptor per direction plus a writer.
type directionBed struct {
	*testBed
	in, out, inout *Descriptor
}

func newDirectionBed(t *testing.T) *directionBed {
	tb := newTestBed(t)
	db := &directionBed{testBed: tb}
	db.in, _ = tb.attached(4096)
	db.out, _ = tb.attached(4096)
	db.inout, _ = tb.attached(4096)
	if err := db.in.SetDirection(DirectionIn); err != nil {
		t.Fatal(err)
	}
	if err := db.out.SetDirection(DirectionOut); err != nil {
		t.Fatal(err)
	}
	return db
}

// counts returns how many records each descriptor holds, draining them.
func (db *directionBed) counts(t *testing.T, ds ...*Descriptor) []int {
	t.Helper()
	var n []int
	for _, d := range ds {
		c := 0
		if d.ReadableBytes() > 0 {
			c = len(parseRecords(t, readNow(t, d)))
		}
		n = append(n, c)
	}
	return n
}

func TestDirections(t *testing.T) {
	db := newDirectionBed(t)
	writer, _ := db.attached(4096) // INOUT by default
	db.ifp.Input(ethFrame(60, 0), wall1)
	if got := db.counts(t, db.in, db.out, db.inout, writer); !slices.Equal(got, []int{1, 0, 1, 1}) {
		t.Fatalf("incoming seen by in/out/inout/writer = %v, want 1 0 1 1", got)
	}
	if _, err := writer.Write(ethFrame(60, 0)); err != nil {
		t.Fatal(err)
	}
	if got := db.counts(t, db.in, db.out, db.inout, writer); !slices.Equal(got, []int{0, 1, 1, 1}) {
		t.Fatalf("outgoing seen by in/out/inout/writer = %v, want 0 1 1 1", got)
	}
	for _, d := range []*Descriptor{db.in, db.out, db.inout, writer} {
		checkInvariant(t, d.Stats())
	}
}

func TestFeedbackFromAnInOutWriterIsSeenOnce(t *testing.T) {
	db := newDirectionBed(t)
	writer, _ := db.attached(4096)
	writer.SetFeedback(true)
	f := ethFrame(60, 0)
	if _, err := writer.Write(f); err != nil {
		t.Fatal(err)
	}
	if len(db.tx.sent()) != 1 {
		t.Fatal("feedback frame not transmitted")
	}
	// Outgoing copy suppressed: only the incoming one, seen by IN and INOUT.
	if got := db.counts(t, db.in, db.out, db.inout, writer); !slices.Equal(got, []int{1, 0, 1, 1}) {
		t.Fatalf("seen by in/out/inout/writer = %v, want 1 0 1 1", got)
	}
}

func TestFeedbackFromAnInWriter(t *testing.T) {
	db := newDirectionBed(t)
	writer, _ := db.attached(4096)
	if err := writer.SetDirection(DirectionIn); err != nil {
		t.Fatal(err)
	}
	writer.SetFeedback(true)
	if _, err := writer.Write(ethFrame(60, 0)); err != nil {
		t.Fatal(err)
	}
	// Outgoing for OUT/INOUT, then incoming for IN/INOUT: INOUT sees both.
	if got := db.counts(t, db.in, db.out, db.inout, writer); !slices.Equal(got, []int{1, 1, 2, 1}) {
		t.Fatalf("seen by in/out/inout/writer = %v, want 1 1 2 1", got)
	}
}

func TestWriteWakesListeners(t *testing.T) {
	tb := newTestBed(t)
	listener, w := tb.attached(4096)
	listener.SetImmediate(true)
	writer, _ := tb.open(false)
	if err := writer.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Write(ethFrame(60, 0)); err != nil {
		t.Fatal(err)
	}
	if w.count() != 1 {
		t.Fatalf("%d wakes after a write to an immediate listener, want 1", w.count())
	}
}

func TestHeaderCompleteAndSourceOverwrite(t *testing.T) {
	tb := newTestBed(t)
	listener, _ := tb.attached(4096)
	writer, _ := tb.open(false)
	if err := writer.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	f := ethFrame(60, 5)
	orig := slices.Clone(f)
	if n, err := writer.Write(f); err != nil || n != 60 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(f, orig) {
		t.Fatal("Write modified the caller's frame")
	}
	sent := tb.tx.sent()[0]
	want := slices.Clone(orig)
	copy(want[6:12], testAddr)
	if !bytes.Equal(sent, want) {
		t.Fatalf("sent %x, want the source replaced: %x", sent[:14], want[:14])
	}
	if recs := parseRecords(t, readNow(t, listener)); !bytes.Equal(recs[0].data, want) {
		t.Fatal("the captured outgoing frame is not what was sent")
	}

	writer.SetHeaderComplete(true)
	if _, err := writer.Write(f); err != nil {
		t.Fatal(err)
	}
	if sent := tb.tx.sent()[1]; !bytes.Equal(sent, orig) {
		t.Fatal("header-complete frame was changed")
	}
}

func TestWriteSizeLimits(t *testing.T) {
	tb := newTestBed(t)
	w, _ := tb.open(true)
	_, err := w.Write(nil)
	wantErrno(t, "empty write before attach", err, unix.ENXIO)
	_, err = w.Write(ethFrame(60, 0))
	wantErrno(t, "write before attach", err, unix.ENXIO)
	if err := w.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty write = %d, %v; want 0, nil", n, err)
	}
	for _, c := range []struct {
		n  int
		ok bool
	}{{13, false}, {14, true}, {1514, true}, {1515, false}, {9000, false}} {
		n, err := w.Write(ethFrame(c.n, 0))
		if c.ok && (err != nil || n != c.n) {
			t.Fatalf("Write(%d bytes) = %d, %v", c.n, n, err)
		}
		if !c.ok {
			wantErrno(t, "oversized or runt write", err, unix.EMSGSIZE)
		}
	}
	tb.ifp.SetMTU(1000)
	_, err = w.Write(ethFrame(1015, 0))
	wantErrno(t, "write above the new MTU", err, unix.EMSGSIZE)
	if len(tb.tx.sent()) != 2 {
		t.Fatalf("%d frames sent, want 2", len(tb.tx.sent()))
	}
}

func TestWriteFilter(t *testing.T) {
	tb := newTestBed(t)
	w, _ := tb.attached(4096)
	w.SetWriteFilter(mustCompile(t, udpPort9))
	_, err := w.Write(udpFrame(60, 53))
	wantErrno(t, "write refused by the filter", err, unix.EPERM)
	if _, err := w.Write(udpFrame(60, 9)); err != nil {
		t.Fatalf("write accepted by the filter: %v", err)
	}
	if s := w.Stats(); s.WriteRejected != 1 || s.Written != 1 {
		t.Fatalf("stats %+v", s)
	}
	if len(tb.tx.sent()) != 1 {
		t.Fatal("a refused frame was sent")
	}
}

func TestWriteTransmitErrors(t *testing.T) {
	tb := newTestBed(t)
	w, _ := tb.attached(4096)
	tb.tx.err = unix.ENOBUFS
	_, err := w.Write(ethFrame(60, 0))
	wantErrno(t, "transmit ENOBUFS", err, unix.ENOBUFS)
	tb.tx.err = errors.New("opaque")
	_, err = w.Write(ethFrame(60, 0))
	wantErrno(t, "transmit error without errno", err, unix.EIO)
	if w.Stats().Recv != 0 || w.Stats().Written != 0 {
		t.Fatal("a failed transmit was captured or counted")
	}

	reg := NewRegistry()
	if err := reg.Add(NewInterface("mute0", 1500, testAddr, nil)); err != nil {
		t.Fatal(err)
	}
	d := NewDescriptor(&Config{Registry: reg}, Owner{CanRead: true}, nil)
	t.Cleanup(d.Close)
	if err := d.Attach("mute0"); err != nil {
		t.Fatal(err)
	}
	_, err = d.Write(ethFrame(60, 0))
	wantErrno(t, "interface without transmitter", err, unix.ENETDOWN)
}

func TestInfo(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	d.SetImmediate(true)
	tb.ifp.Input(ethFrame(60, 0), wall1)
	info := d.Info()
	if info.ID != d.ID() || info.Pid != 42 || info.Interface != "tap0" || !info.Immediate ||
		info.Recv != 1 || info.Captured != 1 || info.StoreBytes != 86 || info.HoldBytes != 0 ||
		info.BufLen != 4096 || info.BufMode != BufModeBuffer || !info.CanRead {
		t.Fatalf("Info = %+v", info)
	}
	readNow(t, d)
	if info := d.Info(); info.Reads != 1 || info.StoreBytes != 0 {
		t.Fatalf("Info after a read = %+v", info)
	}
}

func TestCloseDetaches(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	d.Close()
	if n := len(*tb.ifp.listeners.Load()); n != 0 {
		t.Fatalf("%d listeners after Close", n)
	}
	tb.ifp.Input(ethFrame(60, 0), wall1) // must not touch freed state
	wantErrno(t, "Attach after Close", d.Attach("tap0"), unix.EBADF)
	_, err := d.SetBufLen(64)
	wantErrno(t, "SetBufLen after Close", err, unix.EBADF)
	if d.ReadableBytes() != 0 {
		t.Fatal("buffers not freed")
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	b := NewInterface("tapb", 1500, testAddr, nil)
	a := NewInterface("tapa", 1500, testAddr, nil)
	for _, ifp := range []*Interface{b, a} {
		if err := r.Add(ifp); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Add(NewInterface("tapa", 1500, nil, nil)); !errors.Is(err, ErrDuplicateInterface) {
		t.Fatalf("duplicate Add: %v", err)
	}
	if r.Add(nil) == nil || r.Add(NewInterface("", 1500, nil, nil)) == nil {
		t.Fatal("nil or nameless interface accepted")
	}
	if list := r.Interfaces(); len(list) != 2 || list[0] != a || list[1] != b {
		t.Fatal("Interfaces not sorted by name")
	}
	if r.Lookup("tapa") != a || r.Lookup("nope") != nil {
		t.Fatal("Lookup")
	}
	if r.Remove("tapa") != a || r.Lookup("tapa") != nil || r.Remove("tapa") != nil {
		t.Fatal("Remove")
	}
}

func TestInterfaceAccessors(t *testing.T) {
	ifp := NewInterface("tap9", -5, []byte{1, 2, 3}, nil)
	if ifp.Name() != "tap9" || ifp.MTU() != 0 {
		t.Fatalf("name %q mtu %d", ifp.Name(), ifp.MTU())
	}
	if !bytes.Equal(ifp.HardwareAddr(), []byte{1, 2, 3, 0, 0, 0}) {
		t.Fatalf("short address not padded: %v", ifp.HardwareAddr())
	}
	ifp.HardwareAddr()[0] = 0xff
	if ifp.HardwareAddr()[0] != 1 {
		t.Fatal("HardwareAddr exposes internal state")
	}
	ifp.SetMTU(9000)
	if ifp.MTU() != 9000 {
		t.Fatal("SetMTU")
	}
}

// TestConcurrentTraffic exercises the locking under -race: traffic, reads,
// flushes, stats and re-attaches at once, with the counter invariant checked
// throughout.
func TestConcurrentTraffic(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(2048)
	d.SetImmediate(true)
	writer, _ := tb.attached(4096)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { // tap reader
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tb.ifp.Input(ethFrame(60+i%200, byte(i)), time.Now().UnixNano())
			if i%8 == 7 {
				tb.ifp.EndBatch()
			}
		}
	}()
	go func() { // injector
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := writer.Write(ethFrame(100, 1)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // ioctls
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			checkInvariant(t, d.Stats())
			d.Poll(PollIn)
			d.ReadableBytes()
			if i%50 == 0 {
				d.Flush()
			}
			if i%200 == 0 {
				if err := writer.Attach("tap0"); err != nil {
					t.Error(err)
				}
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	reads := 0
	go func() { // reader
		defer wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { <-stop; cancel() }()
		for {
			data, err := readWith(d, ctx, false)
			if err == unix.EINTR {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			if len(data) > 0 {
				parseRecords(t, data)
				reads++
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	checkInvariant(t, d.Stats())
	if reads == 0 {
		t.Fatal("the reader never got a buffer")
	}
}
