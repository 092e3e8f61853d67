package bpf

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wall1 is a fixed wall-clock instant with every sub-second digit in use.
const wall1 = int64(1_700_000_000)*nanosPerSecond + 123_456_789

func TestRecordLayoutByteByByte(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	f1 := ethFrame(60, 1)
	f2 := ethFrame(61, 2)
	f3 := ethFrame(14, 3)
	tb.ifp.Input(f1, wall1)
	tb.ifp.Input(f2, wall1+1000)
	tb.ifp.Input(f3, wall1+2000)
	buf := readNow(t, d)

	// Record 1 at 0: the header written field by field, then the frame at 26.
	want := make([]byte, 26)
	binary.NativeEndian.PutUint64(want[0:], 1_700_000_000)
	binary.NativeEndian.PutUint64(want[8:], 123_456)
	binary.NativeEndian.PutUint32(want[16:], 60)
	binary.NativeEndian.PutUint32(want[20:], 60)
	binary.NativeEndian.PutUint16(want[24:], 26)
	want = append(want, f1...)
	// 26+60 = 86 → next record at 88, gap of 2 zero bytes.
	want = append(want, 0, 0)
	h2 := make([]byte, 26)
	binary.NativeEndian.PutUint64(h2[0:], 1_700_000_000)
	binary.NativeEndian.PutUint64(h2[8:], 123_457)
	binary.NativeEndian.PutUint32(h2[16:], 61)
	binary.NativeEndian.PutUint32(h2[20:], 61)
	binary.NativeEndian.PutUint16(h2[24:], 26)
	want = append(append(want, h2...), f2...)
	// 88+26+61 = 175 → 176, one zero byte.
	want = append(want, 0)
	h3 := make([]byte, 26)
	binary.NativeEndian.PutUint64(h3[0:], 1_700_000_000)
	binary.NativeEndian.PutUint64(h3[8:], 123_458)
	binary.NativeEndian.PutUint32(h3[16:], 14)
	binary.NativeEndian.PutUint32(h3[20:], 14)
	binary.NativeEndian.PutUint16(h3[24:], 26)
	want = append(append(want, h3...), f3...)
	// The reported length is the unaligned end: 176+26+14 = 216.
	if !bytes.Equal(buf, want) {
		t.Fatalf("buffer differs\n got %x\nwant %x", buf, want)
	}
	if len(buf) != 216 {
		t.Fatalf("length %d, want 216", len(buf))
	}
}

func TestRecordHeaderLength(t *testing.T) {
	if recordHdrLen != 26 {
		t.Fatalf("bh_hdrlen for Ethernet = %d, want 26", recordHdrLen)
	}
	// The network header of a record at an aligned start is aligned too.
	if (recordHdrLen+ethHdrLen)%Alignment != 0 {
		t.Fatal("network header not aligned")
	}
}

func TestGapsAreZeroedInReusedBuffers(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(512)
	// Frames full of 0xff leave stale non-zero bytes everywhere; records of
	// changing lengths then put alignment gaps over them.
	for round := range 20 {
		for i := range 4 {
			f := bytes.Repeat([]byte{0xff}, 14+(round*7+i*13)%90)
			tb.ifp.Input(f, wall1)
		}
		buf := readNow(t, d)
		for _, r := range parseRecords(t, buf) {
			if r.caplen != r.datalen {
				t.Fatalf("round %d: caplen %d != datalen %d", round, r.caplen, r.datalen)
			}
		}
		// Drain the store buffer too.
		if d.ReadableBytes() > 0 {
			parseRecords(t, readNow(t, d))
		}
	}
}

func TestCaplenFromFilterSnaplen(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	f := ethFrame(100, 9)

	d.SetReadFilter(retK(t, 20), true)
	tb.ifp.Input(f, wall1)
	d.SetReadFilter(retK(t, 1000), false) // larger than the packet
	tb.ifp.Input(f, wall1)
	d.SetReadFilter(retK(t, 2), false) // data shorter than the header pad
	tb.ifp.Input(f, wall1)
	d.SetReadFilter(nil, false) // no filter: 0xffffffff
	tb.ifp.Input(f, wall1)

	buf := readNow(t, d)
	recs := parseRecords(t, buf)
	wantCap := []uint32{20, 100, 2, 100}
	if len(recs) != len(wantCap) {
		t.Fatalf("%d records, want %d", len(recs), len(wantCap))
	}
	for i, r := range recs {
		if r.caplen != wantCap[i] || r.datalen != 100 {
			t.Errorf("record %d: caplen %d datalen %d, want %d and 100", i, r.caplen, r.datalen, wantCap[i])
		}
		if !bytes.Equal(r.data, f[:r.caplen]) {
			t.Errorf("record %d: data differs from the frame's first %d bytes", i, r.caplen)
		}
	}
	// The 2-byte record ends at 28 (unaligned); its header's pad bytes
	// 28..31 must be zero before the next record at its aligned start.
	r := recs[2]
	for i := r.offset + 28; i < recs[3].offset; i++ {
		if buf[i] != 0 {
			t.Fatalf("byte %d = %#x after a 2-byte capture, want 0", i, buf[i])
		}
	}
}

func TestCaplenTruncatedToBuffer(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(64)
	f := ethFrame(100, 4)
	tb.ifp.Input(f, wall1)
	tb.ifp.Input(f, wall1) // does not fit after the first: rotation
	s := d.Stats()
	if s.Captured != 2 || s.Drop != 0 {
		t.Fatalf("stats %+v, want 2 captured", s)
	}
	for range 2 {
		buf := readNow(t, d)
		if len(buf) != 64 {
			t.Fatalf("buffer length %d, want 64 (26 + 38 captured)", len(buf))
		}
		recs := parseRecords(t, buf)
		if len(recs) != 1 || recs[0].caplen != 38 || recs[0].datalen != 100 {
			t.Fatalf("records %+v, want one with caplen 38, datalen 100", recs)
		}
		if !bytes.Equal(recs[0].data, f[:38]) {
			t.Fatal("truncated data differs from the frame")
		}
	}
}

func TestMinimumBufferStillCaptures(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(1) // clamped to 32
	if d.BufLen() != MinBufSize {
		t.Fatalf("BufLen %d, want %d", d.BufLen(), MinBufSize)
	}
	tb.ifp.Input(ethFrame(60, 0), wall1)
	recs := parseRecords(t, readNow(t, d))
	if len(recs) != 1 || recs[0].caplen != 6 || recs[0].datalen != 60 {
		t.Fatalf("records %+v, want one with 6 bytes captured", recs)
	}
}

// bintimeFrac computes ceil(ns · 2^32 / 10^9) · 2^32 with big integers:
// the fraction whose truncating conversions give back ns and ns/1000.
func bintimeFrac(ns int64) uint64 {
	v := new(big.Int).Lsh(big.NewInt(ns), 32)
	q, r := new(big.Int).QuoRem(v, big.NewInt(nanosPerSecond), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return new(big.Int).Lsh(q, 32).Uint64()
}

func TestBinaryFraction(t *testing.T) {
	for _, ns := range []int64{0, 1, 2, 999, 1000, 123_456_789, 250_000_000, 500_000_000, 999_999_999} {
		if got, want := binaryFraction(uint64(ns)), bintimeFrac(ns); got != want {
			t.Errorf("binaryFraction(%d) = %#x, want %#x", ns, got, want)
		}
	}
	if binaryFraction(500_000_000) != 1<<63 || binaryFraction(250_000_000) != 1<<62 {
		t.Error("half and quarter seconds are not exact powers of two")
	}
}

// FreeBSD's bintime2timeval and bintime2timespec (which libpcap uses on
// BPF_T_BINTIME records) truncate the top 32 bits of the fraction; every
// nanosecond and microsecond must come back exactly.
func TestBinaryFractionRoundTrips(t *testing.T) {
	for ns := uint64(0); ns < nanosPerSecond; ns += 999_983 {
		for _, v := range []uint64{ns, ns / 1000 * 1000} {
			frac := binaryFraction(v)
			if back := (nanosPerSecond * (frac >> 32)) >> 32; back != v {
				t.Fatalf("%d ns → frac %#x → %d ns", v, frac, back)
			}
			if back := (1_000_000 * (frac >> 32)) >> 32; back != v/1000 {
				t.Fatalf("%d ns → frac %#x → %d µs, want %d", v, frac, back, v/1000)
			}
		}
	}
}

func TestTimestampWordsNegativeTime(t *testing.T) {
	sec, sub := timestampWords(TstampMicro, -1)
	if sec != -1 || sub != 999_999 {
		t.Fatalf("(-1 ns) → %d s %d µs, want -1 s 999999 µs", sec, sub)
	}
	sec, sub = timestampWords(TstampNano, -nanosPerSecond)
	if sec != -1 || sub != 0 {
		t.Fatalf("(-1 s) → %d s %d ns", sec, sub)
	}
}

func TestTimestampTypes(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	// Frames stamped within a second of the clock's last sample never make
	// it re-sample, so the boot offset below stays the one in use.
	wall := tb.ifp.clock.sampledAt.Load()
	mono := wall - tb.ifp.clock.bootWall.Load()
	monoSec, monoNs := mono/nanosPerSecond, mono%nanosPerSecond
	wallSec, wallNs := wall/nanosPerSecond, wall%nanosPerSecond
	cases := []struct {
		tstype uint32
		sec    int64
		sub    uint64
	}{
		{TstampMicro, wallSec, uint64(wallNs / 1000)},
		{TstampMicro | TstampFast, wallSec, uint64(wallNs / 1000)},
		{TstampNano, wallSec, uint64(wallNs)},
		{TstampNano | TstampFast, wallSec, uint64(wallNs)},
		{TstampBin, wallSec, bintimeFrac(wallNs)},
		{TstampNone, 0, 0},
		{TstampMicro | TstampMonotonic, monoSec, uint64(monoNs / 1000)},
		{TstampNano | TstampMonotonic, monoSec, uint64(monoNs)},
		{TstampBin | TstampMonotonic, monoSec, bintimeFrac(monoNs)},
		{TstampNano | TstampMonotonic | TstampFast, monoSec, uint64(monoNs)},
	}
	for _, c := range cases {
		if err := d.SetTimestampType(c.tstype); err != nil {
			t.Fatalf("SetTimestampType(%#x): %v", c.tstype, err)
		}
		if got := d.TimestampType(); got != c.tstype {
			t.Fatalf("TimestampType = %#x, want %#x", got, c.tstype)
		}
		tb.ifp.Input(ethFrame(60, 0), wall)
		recs := parseRecords(t, readNow(t, d))
		if len(recs) != 1 {
			t.Fatalf("type %#x: %d records", c.tstype, len(recs))
		}
		if recs[0].sec != c.sec || recs[0].sub != c.sub {
			t.Errorf("type %#x: timestamp (%d, %d), want (%d, %d)", c.tstype, recs[0].sec, recs[0].sub, c.sec, c.sub)
		}
	}
}

func TestMonotonicMatchesBoottime(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.attached(4096)
	if err := d.SetTimestampType(TstampNano | TstampMonotonic); err != nil {
		t.Fatal(err)
	}
	tb.ifp.Input(ethFrame(60, 0), time.Now().UnixNano())
	var boot unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		t.Fatal(err)
	}
	r := parseRecords(t, readNow(t, d))[0]
	got := r.sec*nanosPerSecond + int64(r.sub)
	// Correctness, not speed: a wrong clock would be off by decades; the
	// millisecond of slack absorbs the pairing of two separate clock reads.
	if diff := boot.Nano() - got; diff < -int64(time.Millisecond) || diff > int64(time.Minute) {
		t.Fatalf("monotonic stamp %d ns, CLOCK_BOOTTIME afterwards %d ns", got, boot.Nano())
	}
}

func TestInvalidTimestampTypes(t *testing.T) {
	tb := newTestBed(t)
	d, _ := tb.open(true)
	if err := d.SetTimestampType(TstampNano); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []uint32{0x103, 0x203, 0x303, 4, 0x400, 0x1000, 0x301 | 0x10000, 0xffffffff} {
		wantErrno(t, "SetTimestampType", d.SetTimestampType(bad), unix.EINVAL)
	}
	if d.TimestampType() != TstampNano {
		t.Fatal("a rejected type changed the setting")
	}
	for _, good := range []uint32{0, 1, 2, 3, 0x100, 0x101, 0x102, 0x200, 0x202, 0x300, 0x302} {
		if err := d.SetTimestampType(good); err != nil {
			t.Errorf("SetTimestampType(%#x): %v", good, err)
		}
	}
}

func TestClockRefresh(t *testing.T) {
	c := newBootClock()
	last := c.sampledAt.Load()
	c.bootWall.Store(12345)
	c.refresh(last + clockRefreshInterval/2)
	if c.bootWall.Load() != 12345 {
		t.Fatal("re-sampled within a second")
	}
	c.refresh(last + 2*clockRefreshInterval)
	if c.bootWall.Load() == 12345 {
		t.Fatal("not re-sampled after a second")
	}
	c.bootWall.Store(12345)
	c.refresh(last - clockRefreshInterval) // wall clock stepped back
	if c.bootWall.Load() == 12345 {
		t.Fatal("not re-sampled after a backwards step")
	}
}
