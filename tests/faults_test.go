package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/daemontest"
	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

// blockerEnd is how blocker's blocking call ended, and its probes after.
type blockerEnd struct {
	line   string // the "end ..." line
	R      int
	Errno  unix.Errno
	Events int // poll's revents
	Probes map[string]string
}

// finish reads the end line and the three probes of a blocker.
func (c *client) finish() blockerEnd {
	c.t.Helper()
	var end blockerEnd
	for {
		l := c.expect("")
		if strings.HasPrefix(l, "end ") {
			end.line = l
			break
		}
	}
	for _, kv := range strings.Fields(end.line)[2:] {
		k, v, _ := strings.Cut(kv, "=")
		var n int
		fmt.Sscan(v, &n)
		switch k {
		case "r":
			end.R = n
		case "errno":
			end.Errno = unix.Errno(n)
		case "revents":
			fmt.Sscanf(v, "0x%x", &end.Events)
		}
	}
	end.Probes = map[string]string{}
	for _, name := range []string{"read", "getif", "stats"} {
		l := c.expect("probe " + name + " ")
		end.Probes[name] = strings.TrimPrefix(l, "probe "+name+" ")
	}
	return end
}

// waitBlocked waits until a process sleeps in the kernel (in a FUSE request
// or in poll), so the fault hits a call in progress.
func waitBlocked(t *testing.T, pid int, where ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("pid %d to block in %v", pid, where), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		if err != nil {
			return false
		}
		for _, w := range where {
			if strings.Contains(string(b), w) {
				return true
			}
		}
		return false
	})
}

func errnoName(e unix.Errno) string {
	if e == 0 {
		return "0"
	}
	return fmt.Sprintf("%s (%d)", unix.ErrnoName(e), int(e))
}

// A tap deleted while traffic flows and readers of both modes are attached:
// the blocked buffered read returns ENXIO, the zero-copy reader's poll
// reports POLLHUP, both descriptors show as detached, attaching to the name
// fails with ENXIO, and the daemon keeps serving its other tap.
func TestFaultTapDeletedUnderLoad(t *testing.T) {
	blocker := reliabilityProgram(t, "blocker")
	pktgenBin := reliabilityProgram(t, "pktgen")
	e := startDaemon(t, 2)
	doomed, survivor := e.Taps[0], e.Taps[1]
	startInNetns(t, e.NS, pktgenBin, "-i", doomed, "-n", "1000000000000", "-s", "200", "-r", "50000")
	startInNetns(t, e.NS, pktgenBin, "-i", survivor, "-n", "1000000000000", "-s", "200", "-r", "2000")

	reader := startProgram(t, blocker, nil, e.Node("bpf"), doomed, "read", "-w")
	poller := startProgram(t, blocker, nil, e.Node("bpf"), doomed, "poll", "-w")
	for _, c := range []*client{reader, poller} {
		c.expect("ready")
		c.expect("receiving")
	}
	testenv.MustRun(t, "ip", "-n", e.NS, "link", "del", doomed)

	readEnd, pollEnd := reader.finish(), poller.finish()
	t.Logf("buffered reader: %s; probes %v", readEnd.line, readEnd.Probes)
	t.Logf("zero-copy reader: %s; probes %v", pollEnd.line, pollEnd.Probes)
	if readEnd.R != -1 || readEnd.Errno != unix.ENXIO {
		t.Errorf("the blocked read ended with r=%d errno %s, want ENXIO", readEnd.R, errnoName(readEnd.Errno))
	}
	if pollEnd.R != 1 || pollEnd.Events&unix.POLLHUP == 0 {
		t.Errorf("the zero-copy reader's poll ended with r=%d revents %#x, want POLLHUP", pollEnd.R, pollEnd.Events)
	}
	if want := fmt.Sprintf("r=-1 errno=%d", unix.ENXIO); readEnd.Probes["read"] != want {
		t.Errorf("buffered read after the detach: %q, want %q", readEnd.Probes["read"], want)
	}
	// Both descriptors are still open, and detached.
	counters := e.countersByPid()
	for _, c := range []*client{reader, poller} {
		if got, ok := counters[c.cmd.Process.Pid]; !ok || got.Interface != "-" {
			t.Errorf("pid %d after the tap went: %+v, want a detached descriptor", c.cmd.Process.Pid, got)
		}
	}
	e.client("capture", e.Node("bpf"), doomed, "1").expect(fmt.Sprintf("setif errno=%d", unix.ENXIO))

	// The other tap is still served (capture stops after the read that
	// brings it to at least 20 records).
	capture := e.client("capture", e.Node("bpf"), survivor, "20", "-i")
	if recs, _ := parseRecords(t, capture.all()); len(recs) < 20 {
		t.Fatalf("the surviving tap gave %d records, want at least 20", len(recs))
	}
	for _, c := range []*client{reader, poller} {
		c.tell()
		c.all()
	}
	if e.Cmd.ProcessState != nil {
		t.Fatalf("the daemon exited: %v\n%s", e.Cmd.ProcessState, e.Log())
	}
	if !strings.Contains(e.Log(), "tap "+doomed) {
		t.Errorf("the daemon did not log the tap's loss:\n%s", e.Log())
	}
}

// The daemon SIGKILLed while one client blocks in read and a zero-copy
// client blocks in poll: both calls end with an error at once (none hangs),
// later calls fail, and a new daemon on the same mount point clears the
// dead mount even though those clients still hold files open on it.
func TestFaultDaemonKilledWhileClientsBlock(t *testing.T) {
	e := startDaemon(t, 1)
	reader, poller := startBlocked(t, e)

	// Whatever the clients did, a supervisor restarting the daemon at once
	// finds the root's attributes still in the kernel's cache (attr_valid
	// is 1 s); looking at the mount makes that certain.
	var st unix.Stat_t
	unix.Stat(e.Mnt, &st)
	e.Kill()
	readEnd, pollEnd := reader.finish(), poller.finish()
	t.Logf("blocked read after SIGKILL of the daemon: %s; probes %v", readEnd.line, readEnd.Probes)
	t.Logf("blocked poll after SIGKILL of the daemon: %s; probes %v", pollEnd.line, pollEnd.Probes)
	if readEnd.R != -1 || (readEnd.Errno != unix.ECONNABORTED && readEnd.Errno != unix.ENOTCONN) {
		t.Errorf("the blocked read ended with r=%d errno %s, want ECONNABORTED or ENOTCONN", readEnd.R, errnoName(readEnd.Errno))
	}
	if !(pollEnd.R == -1 || pollEnd.R == 1 && pollEnd.Events&(unix.POLLERR|unix.POLLHUP) != 0) {
		t.Errorf("the blocked poll ended with r=%d errno %s revents %#x, want an error", pollEnd.R, errnoName(pollEnd.Errno), pollEnd.Events)
	}
	// The probes follow the blocked call at once. Requests the kernel ends
	// while it tears the connection down fail with ECONNABORTED, those
	// made after it with ENOTCONN; a probe can still catch the first (seen
	// once on CI, with the daemon's larger exit since the egress source).
	enotconn := fmt.Sprintf("r=-1 errno=%d", unix.ENOTCONN)
	aborted := fmt.Sprintf("r=-1 errno=%d", unix.ECONNABORTED)
	for _, end := range []blockerEnd{readEnd, pollEnd} {
		for _, p := range []string{"read", "getif"} {
			if end.Probes[p] != enotconn && end.Probes[p] != aborted {
				t.Errorf("%s on the dead mount: %q, want %q (or %q while the exit is under way)", p, end.Probes[p], enotconn, aborted)
			}
		}
	}
	// The kernel may answer stat from its attribute cache; an open always
	// asks the (dead) server.
	if fd, err := unix.Open(e.Node("stats"), unix.O_RDONLY, 0); err != unix.ENOTCONN {
		unix.Close(fd)
		t.Fatalf("open on the dead mount: %v, want ENOTCONN", err)
	}

	tap := testenv.UniqueName("bt")
	e2 := &env{daemontest.New(t, e.NS, e.Mnt, tap), t}
	// A daemon that refused the stale mount fails StartProcess with its log.
	e2.StartProcess(nil, []string{"-netns", e.NS, "-tap", tap, e.Mnt})
	e2.client("version", e2.Node("bpf")).expect("version 1.1")
	for _, c := range []*client{reader, poller} {
		c.tell()
		c.all()
	}
}

// SIGTERM while readers block: the blocked read returns ENXIO, the
// zero-copy poll reports the detach, the mount goes away and the daemon
// exits 0 although the clients still hold their files open.
func TestFaultSIGTERMWhileReadersBlock(t *testing.T) {
	e := startDaemon(t, 1)
	reader, poller := startBlocked(t, e)

	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop() }()
	readEnd, pollEnd := reader.finish(), poller.finish()
	t.Logf("blocked read after SIGTERM: %s; probes %v", readEnd.line, readEnd.Probes)
	t.Logf("blocked poll after SIGTERM: %s; probes %v", pollEnd.line, pollEnd.Probes)
	if readEnd.R != -1 || readEnd.Errno != unix.ENXIO {
		t.Errorf("the blocked read ended with r=%d errno %s, want ENXIO", readEnd.R, errnoName(readEnd.Errno))
	}
	if pollEnd.R != 1 || pollEnd.Events&(unix.POLLHUP|unix.POLLERR) == 0 {
		t.Errorf("the blocked poll ended with r=%d errno %s revents %#x, want POLLHUP", pollEnd.R, errnoName(pollEnd.Errno), pollEnd.Events)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("the daemon after SIGTERM: %v\n%s", err, e.Log())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not exit after SIGTERM")
	}
	if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), " "+e.Mnt+" ") {
		t.Error("still mounted after SIGTERM")
	}
	for _, c := range []*client{reader, poller} {
		c.tell()
		c.all()
	}
}

// startBlocked starts two blocker clients on the first tap, one blocked in
// a buffered read and one in a zero-copy poll, and waits until the kernel
// has them asleep there.
func startBlocked(t *testing.T, e *env) (reader, poller *client) {
	t.Helper()
	blocker := reliabilityProgram(t, "blocker")
	reader = startProgram(t, blocker, nil, e.Node("bpf"), e.Taps[0], "read", "-w")
	poller = startProgram(t, blocker, nil, e.Node("bpf"), e.Taps[0], "poll", "-w")
	reader.expect("ready")
	poller.expect("ready")
	waitBlocked(t, reader.cmd.Process.Pid, "request_wait_answer", "fuse")
	waitBlocked(t, poller.cmd.Process.Pid, "poll")
	return reader, poller
}
