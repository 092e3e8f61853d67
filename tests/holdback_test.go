package tests

import (
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
)

// A program that stops reading for a moment (SIGSTOP) while a burst far
// larger than its buffers arrives loses nothing: the frames wait in the
// packet ring until it reads again. With holding back off (-maxhold 0) the
// same burst overflows its buffers, which shows the burst is big enough.
func TestFullDescriptorHoldsFramesInRing(t *testing.T) {
	drainBin := reliabilityProgram(t, "drain")
	pktgenBin := reliabilityProgram(t, "pktgen")
	const burst = 3000 // 1514-byte frames; two 64 KiB buffers hold 84
	for _, tc := range []struct {
		maxHold   string
		wantDrops bool
	}{{"10s", false}, {"0", true}} {
		t.Run("maxhold="+tc.maxHold, func(t *testing.T) {
			e := startDaemon(t, 1, "-maxhold", tc.maxHold)
			c := startProgram(t, drainBin, nil, e.Node("bpf"), e.Taps[0], "-b", "65536", "-q", "1000", "-v")
			c.expect("ready blen=65536")
			resume := stopProgram(t, c)
			sendFullSize(t, e, pktgenBin, burst)
			// Let the daemon meet the full buffers (nothing asserts a time).
			time.Sleep(100 * time.Millisecond)
			resume()
			res := parseDrain(t, c.all())
			t.Logf("maxhold=%s: packets=%d recv=%d drop=%d bad=%d; %q", tc.maxHold, res.Packets, res.Recv, res.Drop, res.Bad, e.SourceLines())
			if res.Bad != 0 || res.Recv != burst || res.Packets+res.Drop != burst {
				t.Fatalf("drain: %+v, want %d frames received, each captured or dropped", res, burst)
			}
			if tc.wantDrops != (res.Drop > 0) {
				t.Fatalf("drop=%d with -maxhold %s", res.Drop, tc.maxHold)
			}
		})
	}
}

// A program that stops reading holds frames back for the others on its tap
// only for -maxhold (default 50ms): then they flow, the program that reads
// gets every one, and the stopped one counts the frames it missed as drops.
func TestStoppedReaderDelaysOthersOnly(t *testing.T) {
	drainBin := reliabilityProgram(t, "drain")
	pktgenBin := reliabilityProgram(t, "pktgen")
	// 1514-byte frames: the stopped reader's two 64 KiB buffers hold 84,
	// the other's two 2 MiB zero-copy buffers all of them.
	const burst = 2500
	e := startDaemon(t, 1)
	stoppedC := startProgram(t, drainBin, nil, e.Node("bpf"), e.Taps[0], "-b", "65536", "-q", "1000", "-v")
	stoppedC.expect("ready blen=65536")
	reading := startProgram(t, drainBin, nil, e.Node("bpf"), e.Taps[0], "-z", "-q", "1000", "-v")
	reading.expect("ready")
	resume := stopProgram(t, stoppedC)
	sendFullSize(t, e, pktgenBin, burst)
	got := parseDrain(t, reading.all())
	resume()
	missed := parseDrain(t, stoppedC.all())
	t.Logf("reading: %+v; stopped: %+v; %q", got, missed, e.SourceLines())
	if got.Bad != 0 || got.Packets != burst || got.Drop != 0 {
		t.Fatalf("the reading program: %+v, want all %d frames and no drop", got, burst)
	}
	if missed.Bad != 0 || missed.Recv != burst || missed.Packets+missed.Drop != burst || missed.Drop == 0 {
		t.Fatalf("the stopped program: %+v, want %d received, each captured or dropped, some dropped", missed, burst)
	}
}

// stopProgram stops c with SIGSTOP until the returned resume is called, or
// the test ends.
func stopProgram(t *testing.T, c *client) (resume func()) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { c.cmd.Process.Signal(syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
}

// sendFullSize sends n 1514-byte frames from the test's namespace through
// the daemon's first tap.
func sendFullSize(t *testing.T, e *env, pktgenBin string, n int) {
	t.Helper()
	gen := testenv.NetnsCommand(e.NS, pktgenBin, "-i", e.Taps[0], "-n", strconv.Itoa(n), "-s", "1514")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("pktgen: %v\n%s", err, out)
	}
}
