//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/ebpf"
	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

// egressUnderTest is the egress program loaded on its own, run by the
// kernel's BPF_PROG_TEST_RUN instead of a tap.
type egressUnderTest struct {
	prog, counts int
	rb           *ebpf.RingBuffer
}

func loadEgress(t *testing.T, ringBytes, maxFrame int) *egressUnderTest {
	t.Helper()
	testenv.RequireRoot(t)
	ring, err := ebpf.NewRingBuffer(ringBytes)
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("CI=true and no BPF ring buffer (the default source needs one): %v", err)
		}
		t.Skipf("no BPF ring buffer: %v", err)
	}
	t.Cleanup(func() { unix.Close(ring) })
	e := &egressUnderTest{}
	if e.counts, err = ebpf.NewCounters(egressCounters); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(e.counts) })
	insns, err := egressProgram(ring, e.counts, maxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if e.prog, err = ebpf.LoadSchedCLS("egress_test", insns, unix.BPF_TCX_EGRESS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(e.prog) })
	if e.rb, err = ebpf.OpenRingBuffer(ring, ringBytes); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.rb.Close)
	return e
}

func (e *egressUnderTest) run(t *testing.T, frame []byte) {
	t.Helper()
	ret, err := ebpf.TestRun(e.prog, frame)
	if err != nil {
		t.Fatal(err)
	}
	if ret != tcxNext {
		t.Fatalf("program returned %d, want %d (let the frame go on)", ret, tcxNext)
	}
}

func (e *egressUnderTest) counters(t *testing.T) [egressCounters]uint64 {
	t.Helper()
	var c [egressCounters]uint64
	if err := ebpf.ReadCounters(e.counts, c[:]); err != nil {
		t.Fatal(err)
	}
	return c
}

// Every frame length lands in the smallest record class that holds it,
// with its length, its time and its bytes; a frame longer than the largest
// class is counted, not written.
func TestEgressProgramRecords(t *testing.T) {
	const maxFrame = 1518
	e := loadEgress(t, 1<<20, maxFrame)
	largest := (egressHeader + maxFrame + 7) &^ 7
	cases := []struct{ length, class int }{
		{14, 128}, {60, 128}, {112, 128}, {113, 512}, {496, 512}, {497, largest}, {maxFrame, largest},
	}
	var m unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	before := m.Nano()
	for i, c := range cases {
		frame := make([]byte, c.length)
		for j := range frame {
			frame[j] = byte(i + j)
		}
		e.run(t, frame)
	}
	e.run(t, make([]byte, largest-egressHeader+1)) // the class rounds up to 8 bytes
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	after := m.Nano()

	pos := e.rb.Consumed()
	for i, c := range cases {
		body, next, ready := e.rb.Record(pos)
		if !ready || body == nil {
			t.Fatalf("record %d (%d bytes) missing or busy", i, c.length)
		}
		pos = next
		if len(body) != c.class {
			t.Errorf("%d-byte frame in a %d-byte record, want %d", c.length, len(body), c.class)
		}
		if n := binary.NativeEndian.Uint32(body[egressLengthOff:]); int(n) != c.length {
			t.Errorf("record says %d bytes, want %d", n, c.length)
		}
		if at := int64(binary.NativeEndian.Uint64(body[egressTimeOff:])); at < before || at > after {
			t.Errorf("record time %d outside the runs' %d..%d", at, before, after)
		}
		want := make([]byte, c.length)
		for j := range want {
			want[j] = byte(i + j)
		}
		if !bytes.Equal(body[egressHeader:egressHeader+c.length], want) {
			t.Errorf("%d-byte frame's bytes differ", c.length)
		}
	}
	if pos != e.rb.Produced() {
		t.Errorf("more records than frames within the largest class")
	}
	if c := e.counters(t); c[egressCountOversize] != 1 || c[egressCountLost] != 0 {
		t.Errorf("counters %v: want 1 oversize, 0 lost", c)
	}
}

// A full ring buffer costs frames, each counted; the frames that fit are
// intact.
func TestEgressProgramCountsLost(t *testing.T) {
	const maxFrame = 1518
	e := loadEgress(t, 1<<16, maxFrame)
	const runs = 60 // 64 KiB hold 42 records of the largest class
	for range runs {
		e.run(t, make([]byte, maxFrame))
	}
	written := 0
	for pos := e.rb.Consumed(); pos < e.rb.Produced(); written++ {
		_, next, ready := e.rb.Record(pos)
		if !ready {
			t.Fatal("busy record")
		}
		pos = next
	}
	lost := e.counters(t)[egressCountLost]
	if written+int(lost) != runs || lost == 0 {
		t.Fatalf("%d written + %d lost, want %d with some lost", written, lost, runs)
	}
}

// The reader turns the program's monotonic time into real time, sampling
// the clocks again only for frames newer than the last sample.
func TestEgressWallClock(t *testing.T) {
	var e egressRing
	var m unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	got := time.Unix(0, e.wallClock(m.Nano()))
	if d := time.Since(got); d < 0 || d > time.Second {
		t.Fatalf("wall clock %v is %v from now", got, d)
	}
	sample := e.clockSample
	held := m.Nano() - int64(40*time.Millisecond) // a frame held back in the ring
	if w := e.wallClock(held); e.clockSample != sample || w != got.UnixNano()-int64(40*time.Millisecond) {
		t.Fatalf("an older frame resampled the clocks (%d → %d) or moved: %d", sample, e.clockSample, w)
	}
	e.wallClock(sample + int64(11*time.Millisecond))
	if e.clockSample == sample {
		t.Fatal("a frame 11 ms newer than the sample did not resample")
	}
}
