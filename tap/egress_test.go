//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"github.com/bpffs/bpffs/internal/ebpf"
	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

// egressUnderTest is the egress program loaded on its own, run by the
// kernel's BPF_PROG_TEST_RUN instead of a tap.
type egressUnderTest struct {
	prog, counts, ring int
	rb                 *ebpf.RingBuffer
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
	e := &egressUnderTest{ring: ring}
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

// While the egress program is attached the tap takes no multi-segment GSO
// packets (gso_max_segs 1); the limit is back as it was afterwards.
func TestEgressLimitsGSOSegments(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("taps"), Netns: ns})
	segs := func() uint32 {
		t.Helper()
		v, err := d.gsoMaxSegs()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := segs()
	if before == 1 {
		t.Fatal("a new tap already has gso_max_segs 1: nothing to test")
	}
	c := startCollector(t, d, ReaderOptions{Source: SourceEgress})
	waitBlocked(t, c.r) // running, so that Stop waits for its end
	if segs() != 1 {
		t.Errorf("gso_max_segs %d while the egress program is attached, want 1", segs())
	}
	c.r.Stop()
	if after := segs(); after != before {
		t.Errorf("gso_max_segs %d after the reader stopped, want %d again", after, before)
	}
}

// egressOnAddressedTap starts an egress reader on a new tap whose Linux
// side has an address (hostIP, with peerIP behind the tap), so that the
// stack sends traffic there.
func egressOnAddressedTap(t *testing.T) (ns string, c *collector) {
	ns = quietNetns(t)
	name := testenv.UniqueName("tapg")
	d := openTap(t, Config{Name: name, Netns: ns})
	addressTap(t, ns, name)
	c = startCollector(t, d, ReaderOptions{Source: SourceEgress})
	waitBlocked(t, c.r)
	return ns, c
}

// tcpBurst makes an established TCP connection from the tap's Linux side to
// the (absent) peer without a handshake (TCP_REPAIR) and queues n bytes:
// the stack sends what its window allows at once, as it would on a real
// connection.
func tcpBurst(t *testing.T, ns string, n int) {
	t.Helper()
	fd := socketIn(t, ns, unix.AF_INET, unix.SOCK_STREAM, 0)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, 1))
	must(unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, 2)) // TCP_SEND_QUEUE
	must(unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_QUEUE_SEQ, 1000))
	must(unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, 1)) // TCP_RECV_QUEUE
	must(unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_QUEUE_SEQ, 5000))
	must(unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, 0))
	local := &unix.SockaddrInet4{Port: 40001}
	copy(local.Addr[:], hostIP)
	must(unix.Bind(fd, local))
	peer := &unix.SockaddrInet4{Port: 9}
	copy(peer.Addr[:], peerIP)
	must(unix.Connect(fd, peer))
	// MSS 1460, window scaling 7 both ways (struct tcp_repair_opt).
	for _, opt := range [][2]uint32{{unix.TCPOPT_MAXSEG, 1460}, {unix.TCPOPT_WINDOW, 7 | 7<<16}} {
		if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_TCP, unix.TCP_REPAIR_OPTIONS, uintptr(unsafe.Pointer(&opt)), 8, 0); e != 0 {
			t.Fatalf("TCP_REPAIR_OPTIONS %v: %v", opt, e)
		}
	}
	// struct tcp_repair_window: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.
	window := [5]uint32{1000, 1 << 13, 1 << 13, 1 << 16, 5000}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_TCP, unix.TCP_REPAIR_WINDOW, uintptr(unsafe.Pointer(&window)), 20, 0); e != 0 {
		t.Fatalf("TCP_REPAIR_WINDOW: %v", e)
	}
	must(unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, 0))
	if _, err := unix.SendmsgN(fd, make([]byte, n), nil, nil, unix.MSG_DONTWAIT); err != nil {
		t.Fatal(err)
	}
}

// TCP builds GSO packets whatever the device offers; with the egress
// program they must still arrive as the frames the wire carries: none
// longer than the MTU allows, each with an IP length that matches it, and
// nothing counted as oversize.
func TestEgressCapturesTCPAsSegments(t *testing.T) {
	ns, c := egressOnAddressedTap(t)
	tcpBurst(t, ns, 60000)
	segments := 0
	for deadline := time.After(2 * time.Second); ; {
		select {
		case f := <-c.frames:
			if len(f) < 34 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != unix.IPPROTO_TCP {
				continue
			}
			if len(f) > 1514 || int(binary.BigEndian.Uint16(f[16:]))+14 != len(f) {
				t.Fatalf("a %d-byte TCP frame whose IP length says %d: a GSO train, not a segment", len(f), binary.BigEndian.Uint16(f[16:]))
			}
			segments++
			continue
		case <-deadline:
		}
		break
	}
	if segments < 2 {
		t.Fatalf("%d TCP segments captured, want the window's worth", segments)
	}
	if s := c.r.Stats(); s.Oversize != 0 {
		t.Fatalf("%d frames counted oversize", s.Oversize)
	}
}

// A UDP_SEGMENT train reaches the hook as one packet shorter than the
// largest record; it must be counted, not captured as a frame that never
// was on the wire.
func TestEgressCountsGSOTrains(t *testing.T) {
	ns, c := egressOnAddressedTap(t)
	fd := socketIn(t, ns, unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT, 400); err != nil {
		t.Fatal(err)
	}
	peer := &unix.SockaddrInet4{Port: 9}
	copy(peer.Addr[:], peerIP)
	if err := unix.Sendto(fd, make([]byte, 800), 0, peer); err != nil {
		t.Fatal(err)
	}
	waitForReader(t, c.r, "the train counted", func() bool { return c.r.Stats().Oversize == 1 })
	for len(c.frames) > 0 {
		if f := <-c.frames; len(f) > 400+42 {
			t.Fatalf("a %d-byte frame captured from a train of two 400-byte datagrams", len(f))
		}
	}
}

// Records the reader steps over (here: too short to be a frame) are freed
// even when no frame follows them, but never under frames of the batch
// being filled.
func TestEgressSkippedRecordsReleased(t *testing.T) {
	e := loadEgress(t, 1<<16, 1518)
	ring := &egressRing{rb: e.rb, size: 1 << 16}
	// A second program on the same ring buffer writes records whose length
	// says 5 bytes (the egress program never does: the kernel hands it
	// nothing shorter than an Ethernet header).
	var a ebpf.Asm
	a.Emit2(ebpf.LoadMapFD(ebpf.R1, e.ring))
	a.Emit(ebpf.MovImm(ebpf.R2, 128), ebpf.MovImm(ebpf.R3, 0), ebpf.Call(ebpf.FuncRingbufReserve))
	a.JumpIf(ebpf.JEQ, ebpf.R0, 0, "out")
	a.Emit(ebpf.MovImm(ebpf.R1, 5), ebpf.StoreW(ebpf.R0, egressLengthOff, ebpf.R1))
	a.Emit(ebpf.MovReg(ebpf.R1, ebpf.R0), ebpf.MovImm(ebpf.R2, 0), ebpf.Call(ebpf.FuncRingbufSubmit))
	a.Label("out")
	a.Emit(ebpf.MovImm(ebpf.R0, 0), ebpf.Exit())
	insns, err := a.Program()
	if err != nil {
		t.Fatal(err)
	}
	short, err := ebpf.LoadSchedCLS("short_record", insns, unix.BPF_TCX_EGRESS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(short)
	runShort := func() {
		t.Helper()
		if _, err := ebpf.TestRun(short, make([]byte, 60)); err != nil {
			t.Fatal(err)
		}
	}
	e.run(t, make([]byte, 60)) // a frame
	runShort()                 // too short for one: skipped
	b := &Batch{}
	if _, _, ok, _ := ring.takeFrame(b); !ok {
		t.Fatal("the frame was not taken")
	}
	if _, _, ok, _ := ring.takeFrame(b); ok {
		t.Fatal("a 5-byte record taken as a frame")
	}
	if e.rb.Consumed() != 0 {
		t.Fatal("the ring was released under a frame of the batch being filled")
	}
	ring.seal(b)
	ring.giveBack(b)
	if e.rb.Consumed() != e.rb.Produced() {
		t.Fatal("the batch's release did not cover the skipped record")
	}
	runShort()
	if _, _, ok, _ := ring.takeFrame(b); ok || e.rb.Consumed() != e.rb.Produced() {
		t.Fatalf("a skipped record with no frame after it stays in the ring (ok %v)", ok)
	}
	if n := ring.runts.Load(); n != 2 {
		t.Fatalf("%d short records counted, want 2", n)
	}
}
