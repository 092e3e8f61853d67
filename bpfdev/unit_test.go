package bpfdev

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bpffs/bpffs/ioctl"
	"github.com/gopacket/gopacket"
)

func TestParseRecordsFormats(t *testing.T) {
	ts := time.Unix(1700000123, 456789123)
	for _, tc := range []struct {
		format TimestampType
		want   time.Time
	}{
		{TimestampMicro, ts.Truncate(time.Microsecond)},
		{TimestampMicro | TimestampMonotonic, ts.Truncate(time.Microsecond)},
		{TimestampNano, ts},
		{TimestampNano | TimestampFast, ts},
		{TimestampBintime, ts},
		{TimestampNone, time.Time{}},
	} {
		var buf []byte
		frames := [][]byte{syntheticFrame(0, 60), syntheticFrame(1, 1), syntheticFrame(2, 1514), syntheticFrame(3, 7)}
		for i, f := range frames {
			buf = appendRecord(buf, tc.format, ts, f, len(f)+i)
		}
		it := ParseRecords(buf, tc.format)
		for i, f := range frames {
			if !it.Next() {
				t.Fatalf("%#x: record %d missing: %v", tc.format, i, it.Err())
			}
			r := it.Record()
			if !bytes.Equal(r.Data, f) || r.CaptureLength != len(f) || r.Length != len(f)+i {
				t.Fatalf("%#x: record %d: caplen %d len %d data %q", tc.format, i, r.CaptureLength, r.Length, r.Data[:min(len(r.Data), 12)])
			}
			if !r.Timestamp.Equal(tc.want) {
				t.Fatalf("%#x: record %d: timestamp %v, want %v", tc.format, i, r.Timestamp, tc.want)
			}
			if cap(r.Data) != len(r.Data) {
				t.Fatalf("record data can be appended into the next record (cap %d)", cap(r.Data))
			}
		}
		if it.Next() || it.Err() != nil || it.Remaining() != 0 {
			t.Fatalf("%#x: after the last record: more=%v err=%v remaining=%d", tc.format, it.Next(), it.Err(), it.Remaining())
		}
	}
}

func TestParseRecordsEmpty(t *testing.T) {
	var zero Records
	if zero.Next() || zero.Err() != nil {
		t.Fatal("the zero Records walked something")
	}
	it := ParseRecords(nil, TimestampMicro)
	if it.Next() || it.Err() != nil {
		t.Fatal("an empty buffer has records")
	}
}

func TestParseRecordsRejectsMalformed(t *testing.T) {
	good := appendRecord(nil, TimestampMicro, time.Unix(1, 0), syntheticFrame(0, 64), 64)
	good = appendRecord(good, TimestampMicro, time.Unix(2, 0), syntheticFrame(1, 64), 64)
	second := wordAlign(ethernetHdrlen + 64)
	put16 := func(b []byte, off int, v uint16) []byte {
		b = bytes.Clone(b)
		binary.NativeEndian.PutUint16(b[off:], v)
		return b
	}
	put32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.NativeEndian.PutUint32(b[off:], v)
		return b
	}
	for name, buf := range map[string][]byte{
		"truncated header":      good[:second+20],
		"truncated packet":      good[:len(good)-1],
		"hdrlen below 26":       put16(good, second+ioctl.OffsetofHdrHdrlen, 25),
		"hdrlen past the end":   put16(good, second+ioctl.OffsetofHdrHdrlen, 0xffff),
		"caplen past the end":   put32(good, second+ioctl.OffsetofHdrCaplen, 0xffffffff),
		"caplen beyond datalen": put32(good, second+ioctl.OffsetofHdrDatalen, 63),
	} {
		it := ParseRecords(buf, TimestampMicro)
		if !it.Next() {
			t.Fatalf("%s: the first, intact record was not returned: %v", name, it.Err())
		}
		if it.Next() {
			t.Fatalf("%s: the malformed record was returned: %+v", name, it.Record())
		}
		if !errors.Is(it.Err(), ErrBadRecord) {
			t.Fatalf("%s: error %v, want ErrBadRecord", name, it.Err())
		}
		if it.Next() {
			t.Fatalf("%s: the walk went on after an error", name)
		}
	}
}

func FuzzParseRecords(f *testing.F) {
	buf, _ := syntheticBuffer(0, 5, 60, 4096, TimestampMicro)
	f.Add(buf)
	f.Add(buf[:33])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		it := ParseRecords(buf, TimestampNano)
		for it.Next() {
			r := it.Record()
			if len(r.Data) != r.CaptureLength || r.CaptureLength > r.Length {
				t.Fatalf("inconsistent record %+v", r)
			}
		}
	})
}

func TestReaderOverPipe(t *testing.T) {
	d, w := pipeDevice(t)
	r := newReader(d, 4096)
	first, n1 := syntheticBuffer(0, 100, 100, 4096, TimestampMicro)
	second, n2 := syntheticBuffer(n1, 3, 300, 4096, TimestampMicro)
	w.Write(first)
	for i := 0; i < n1+n2; i++ {
		if i == n1 {
			go func() {
				time.Sleep(20 * time.Millisecond) // let the reader wait in the netpoller
				w.Write(second)
			}()
		}
		data, ci, err := r.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		size := 100
		if i >= n1 {
			size = 300
		}
		if !bytes.Equal(data, syntheticFrame(i, size)) || ci.CaptureLength != size || ci.Length != size+4 {
			t.Fatalf("packet %d: %d bytes (ci %+v)", i, len(data), ci)
		}
	}
}

// A blocked Next must be released by a deadline set from elsewhere, by
// a deadline set before, and by a cancelled context; afterwards the reader
// still works.
func TestReaderReleasedByDeadlineAndContext(t *testing.T) {
	d, w := pipeDevice(t)
	r := newReader(d, 4096)
	testRelease(t, r)
	buf, _ := syntheticBuffer(7, 1, 60, 4096, TimestampMicro)
	w.Write(buf)
	r.SetReadDeadline(time.Time{})
	data, _, err := r.Next()
	if err != nil || !bytes.Equal(data, syntheticFrame(7, 60)) {
		t.Fatalf("after the releases: %q, %v", data, err)
	}
}

// nexter is what both readers offer.
type nexter interface {
	NextContext(ctx context.Context) ([]byte, gopacket.CaptureInfo, error)
	SetReadDeadline(t time.Time) error
}

func testRelease(t *testing.T, r nexter) {
	t.Helper()
	released := func(what string, next func() error, release func()) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- next() }()
		time.Sleep(20 * time.Millisecond) // usually enough to be waiting
		release()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Next is still blocked", what)
			return nil
		}
	}
	err := released("deadline set while waiting", func() error {
		_, _, err := r.NextContext(context.Background())
		return err
	}, func() { r.SetReadDeadline(time.Now()) })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline set while waiting: %v", err)
	}
	r.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, _, err := r.NextContext(context.Background()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline set before: %v", err)
	}
	r.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	err = released("context", func() error {
		_, _, err := r.NextContext(ctx)
		return err
	}, cancel)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if _, _, err := r.NextContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("already cancelled context: %v", err)
	}
}

func TestReaderClosedWhileWaiting(t *testing.T) {
	d, _ := pipeDevice(t)
	r := newReader(d, 4096)
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Next()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release Next")
	}
	if _, _, err := r.ReadPacketData(); err == nil || err.Error() != "EOF" {
		t.Fatalf("ReadPacketData after Close: %v, want io.EOF", err)
	}
}

func TestReaderAllocatesNothingPerPacket(t *testing.T) {
	d, w := pipeDevice(t)
	buf, n := syntheticBuffer(0, 1000, 60, 4096, TimestampNano)
	r := newReader(d, len(buf))
	d.timestamp.Store(uint32(TimestampNano))
	stop := make(chan struct{})
	defer close(stop)
	go feedPipe(w, buf, stop)
	r.Next() // warm up
	allocs := testing.AllocsPerRun(20*n, func() {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}

// feedPipe writes buf again and again. Each write is at most PIPE_BUF
// bytes, so one read returns exactly one.
func feedPipe(w *os.File, buf []byte, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

func TestZeroCopyWalkAndAcknowledge(t *testing.T) {
	s := newZeroCopySim(t, 2*os.Getpagesize())
	z := s.z
	// Start the generations just below the wrap: ownership must be
	// decided with !=, not <.
	for i := 0; i < 2; i++ {
		*s.word(i, ioctl.OffsetofZbufKernelGen) = 0xffffffff
		*s.word(i, ioctl.OffsetofZbufUserGen) = 0xffffffff
	}
	next := 0
	for round := 0; round < 6; round++ {
		buf, n := syntheticBuffer(next, 3, 100+round, 4096, TimestampMicro)
		which := s.next
		s.handOver(buf)
		for i := 0; i < n; i++ {
			data, ci, err := z.Next()
			if err != nil {
				t.Fatalf("round %d packet %d: %v", round, i, err)
			}
			if !bytes.Equal(data, syntheticFrame(next, 100+round)) || ci.Length != 104+round {
				t.Fatalf("round %d packet %d: wrong packet (%d bytes)", round, i, len(data))
			}
			next++
			// The buffer stays the reader's while its packets are in use.
			if s.userGen(which) == s.kernelGen(which) {
				t.Fatalf("round %d: buffer %d acknowledged while packet %d is still in use", round, which, i)
			}
		}
		// Moving past the last packet gives the buffer back; with nothing
		// else handed over, Next then waits: let a deadline end that.
		z.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, _, err := z.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round %d: Next with nothing handed over: %v", round, err)
		}
		z.SetReadDeadline(time.Time{})
		if s.userGen(which) != s.kernelGen(which) {
			t.Fatalf("round %d: buffer %d not acknowledged (user %d kernel %d)", round, which, s.userGen(which), s.kernelGen(which))
		}
	}
	if s.kernelGen(0) != 2 || s.kernelGen(1) != 2 {
		t.Fatalf("generations %d, %d after three hand-overs each from 0xffffffff", s.kernelGen(0), s.kernelGen(1))
	}
}

// Both buffers handed over at once (the device ran out of room): the
// reader walks them in order, A then B, acknowledging A before B.
func TestZeroCopyBothBuffersOwned(t *testing.T) {
	s := newZeroCopySim(t, os.Getpagesize())
	a, na := syntheticBuffer(0, 10, 60, 4000, TimestampMicro)
	b, nb := syntheticBuffer(na, 10, 60, 4000, TimestampMicro)
	s.handOver(a)
	s.handOver(b)
	for i := 0; i < na+nb; i++ {
		data, _, err := s.z.Next()
		if err != nil || !bytes.Equal(data, syntheticFrame(i, 60)) {
			t.Fatalf("packet %d: %v", i, err)
		}
		if i >= na && s.userGen(0) != s.kernelGen(0) {
			t.Fatal("buffer A not acknowledged while B is walked")
		}
	}
}

func TestZeroCopyWaitsForHandOver(t *testing.T) {
	s := newZeroCopySim(t, os.Getpagesize())
	buf, _ := syntheticBuffer(42, 1, 80, 4000, TimestampMicro)
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.handOver(buf)
	}()
	data, _, err := s.z.NextContext(context.Background())
	if err != nil || !bytes.Equal(data, syntheticFrame(42, 80)) {
		t.Fatalf("Next: %v", err)
	}
	testRelease(t, s.z)
}

func TestZeroCopyRejectsBadLength(t *testing.T) {
	s := newZeroCopySim(t, os.Getpagesize())
	atomic.StoreUint32(s.word(0, ioctl.OffsetofZbufKernelLen), uint32(os.Getpagesize()))
	atomic.AddUint32(s.word(0, ioctl.OffsetofZbufKernelGen), 1)
	if _, _, err := s.z.Next(); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("kernel_len beyond the buffer: %v", err)
	}
	if s.userGen(0) != s.kernelGen(0) {
		t.Fatal("the bad buffer was not given back")
	}
}

func TestZeroCopyAllocatesNothingPerPacket(t *testing.T) {
	s := newZeroCopySim(t, 64<<10)
	buf, n := syntheticBuffer(0, 10000, 60, 64<<10-32, TimestampMicro)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		simulateDevice(s, buf, stop)
	}()
	defer func() { close(stop); <-done }()
	s.z.Next()
	allocs := testing.AllocsPerRun(5*n, func() {
		if _, _, err := s.z.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}

// simulateDevice hands buf over in every buffer the reader gave back.
func simulateDevice(s *zeroCopySim, buf []byte, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if s.free() {
			s.handOver(buf)
		} else {
			runtime.Gosched()
		}
	}
}
