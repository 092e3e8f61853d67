package tests

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// daemonSharedMappings counts the daemon's shared writable mappings: the
// clients' zero-copy buffers are its only ones (Go's heap is private).
func (e *env) daemonSharedMappings() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", e.Cmd.Process.Pid))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Count(string(b), " rw-s ")
}

// waitRecv waits until the descriptors together have seen n packets.
func (e *env) waitRecv(n int) {
	e.t.Helper()
	waitFor(e.t, fmt.Sprintf("the daemon to see %d packets", n), func() bool {
		total := 0
		for _, l := range e.StatsLines() {
			var v int
			fmt.Sscan(strings.Fields(l)[5], &v)
			total += v
		}
		return total >= n
	})
}

func (e *env) statsModes() []string {
	var modes []string
	for _, l := range e.StatsLines() {
		modes = append(modes, strings.Fields(l)[3])
	}
	return modes
}

func TestZeroCopyCaptureEveryMemoryKind(t *testing.T) {
	e := startDaemon(t, 1)
	shm := t.TempDir()
	for _, tc := range []struct{ mode, stats string }{
		{"shared", "zbuf-shm"}, {"memfd", "zbuf-shm"}, {"tmpfs", "zbuf-shm"}, {"private", "zbuf-copy"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c := startProgram(t, zbufcheckBin, nil, "capture", e.Node("bpf"), e.Taps[0], "20", "-m", tc.mode, "-s", "16384")
			c.cmd.Env = append(os.Environ(), "ZBUF_TMPDIR="+shm)
			c.expect("ready blen=16352") // 16384 − the 32-byte header
			if modes := e.statsModes(); len(modes) != 1 || modes[0] != tc.stats {
				t.Errorf("stats mode %v, want %s", modes, tc.stats)
			}
			sent := e.SendUDP(20, 200)
			lines := c.all()
			recs, _ := parseRecords(t, zeroCopyRecords(lines))
			if len(recs) != 20 {
				t.Fatalf("%d records, want 20", len(recs))
			}
			for i, r := range recs {
				if r.hdrlen != 26 || r.off%8 != 0 || r.caplen != 14+20+8+200 {
					t.Errorf("record %d: hdrlen %d off %d caplen %d", i, r.hdrlen, r.off, r.caplen)
				}
				if got := udpPayload(t, r.data); !bytes.Equal(got, sent[i]) {
					t.Errorf("record %d: payload %q, want %q", i, got[:10], sent[i][:10])
				}
			}
			if !contains(lines, "stats recv=20 drop=0") {
				t.Errorf("statistics: %v", lines[len(lines)-1])
			}
		})
	}
}

// zeroCopyRecords turns zbufcheck's "rec buf=N ..." lines into bpfcheck's
// format for parseRecords.
func zeroCopyRecords(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "rec buf=") {
			l = "rec " + l[strings.Index(l, "off="):]
		}
		out = append(out, l)
	}
	return out
}

// Idle zero-copy readers sleep in poll: the daemon sees a handful of
// requests, not a spin.
func TestZeroCopyIdleReaderDoesNotSpin(t *testing.T) {
	e := startDaemon(t, 1)
	c := e.zclient("capture", e.Node("bpf"), e.Taps[0], "3")
	c.expect("ready")
	time.Sleep(2 * time.Second) // idle: the reader polls with 500 ms timeouts, then rotates
	e.SendUDP(3, 50)
	lines := c.all()
	var polls, rotations int
	for _, l := range lines {
		fmt.Sscanf(l, "done polls=%d rotations=%d", &polls, &rotations)
	}
	// About one poll per 500 ms of idleness plus a few for the packets; a
	// spinning reader would make thousands.
	if polls == 0 || polls > 20 {
		t.Fatalf("%d polls in ~2.5 s (lines %v)", polls, lines)
	}
	// Without immediate mode, the packets reached the reader through
	// BIOCROTZBUF after a poll timeout.
	if rotations == 0 {
		t.Fatalf("no BIOCROTZBUF hand-over: %v", lines)
	}
}

func TestZeroCopyImmediateWakesPoll(t *testing.T) {
	e := startDaemon(t, 1)
	c := e.zclient("capture", e.Node("bpf"), e.Taps[0], "5", "-i")
	c.expect("ready")
	e.SendUDP(5, 50)
	lines := c.all()
	recs, _ := parseRecords(t, zeroCopyRecords(lines))
	if len(recs) != 5 {
		t.Fatalf("%d records", len(recs))
	}
}

// One-page buffers never acknowledged: after both are handed over every
// further packet is a drop, and the statistics count each one.
func TestZeroCopyOverloadCountsEveryDrop(t *testing.T) {
	e := startDaemon(t, 1)
	c := e.zclient("overload", e.Node("bpf"), e.Taps[0])
	c.expect("ready")
	const n = 200
	e.SendUDP(n, 100)
	e.waitRecv(n)
	c.tell()
	lines := c.all()
	var captured, recv, drop int
	for _, l := range lines {
		fmt.Sscanf(l, "overload captured=%d recv=%d drop=%d", &captured, &recv, &drop)
	}
	// A 4096-byte buffer holds 4064 bytes of records: 24 of 168 bytes.
	if recv != n || captured != 2*24 || drop != n-captured {
		t.Fatalf("recv %d captured %d drop %d; want recv %d = captured %d + drop %d\n%s", recv, captured, drop, n, 48, n-48, strings.Join(lines, "\n"))
	}
}

func TestZeroCopyErrnos(t *testing.T) {
	e := startDaemon(t, 1)
	got := e.zclient("errnos", e.Node("bpf"), e.Taps[0]).results()
	ok := "r=0 errno=0"
	fail := func(errno unix.Errno) string { return fmt.Sprintf("r=-1 errno=%d", errno) }
	want := map[string]string{
		"getzmax-buffermode":       fail(unix.EOPNOTSUPP),
		"setbufmode-zbuf":          ok,
		"getbufmode":               "value=2",
		"getzmax":                  "value=2097152",
		"sblen-zbuf":               fail(unix.EOPNOTSUPP),
		"setzbuf-null":             fail(unix.EINVAL),
		"setzbuf-zerolen":          fail(unix.EINVAL),
		"setzbuf-unaligned":        fail(unix.EINVAL),
		"setzbuf-oddlen":           fail(unix.EINVAL),
		"setzbuf-toobig":           fail(unix.EINVAL),
		"setzbuf-unmapped":         fail(unix.EFAULT),
		"setzbuf-readonly":         fail(unix.EFAULT),
		"setzbuf-partly":           fail(unix.EFAULT),
		"setif-nozbuf":             fail(unix.EINVAL),
		"setzbuf":                  ok,
		"header-zeroed":            "1",
		"setzbuf-again":            fail(unix.EINVAL),
		"gblen":                    fmt.Sprintf("value=%d", 4*os.Getpagesize()-32),
		"read-wrongsize":           fail(unix.EINVAL),
		"read-zbuf":                fail(unix.EOPNOTSUPP),
		"setbufmode-after-setzbuf": fail(unix.EBUSY),
		"rotzbuf-empty-unattached": "bufa=(nil) len=0",
		"setif":                    ok,
		"setzbuf-attached":         fail(unix.EINVAL),
		"lock":                     ok,
		"locked-rotzbuf":           ok,
		"locked-getzmax":           fail(unix.EPERM),
		"setif-unknown":            fail(unix.ENXIO),
		"setbufmode-after-setif":   fail(unix.EBUSY),
	}
	checkResults(t, got, want)
}

// A client that misbehaves never crashes the daemon nor makes it write
// outside the buffers, and the daemon's mappings return to their count
// when the descriptor closes.
func TestZeroCopyMisbehavingClients(t *testing.T) {
	e := startDaemon(t, 1)
	base := e.daemonSharedMappings()
	for _, how := range []string{"unmap", "scribble", "truncate", "fork", "exit"} {
		t.Run(how, func(t *testing.T) {
			c := e.zclient("misbehave", e.Node("bpf"), e.Taps[0], how)
			if how == "fork" {
				c.expect("forked")
				e.SendUDP(50, 100)
				e.waitRecv(50)
				c.tell()
			}
			c.expect("ready")
			if got := e.daemonSharedMappings(); how != "fork" && got != base+2 {
				t.Errorf("daemon has %d shared mappings with buffers installed, want %d", got, base+2)
			}
			e.SendUDP(100, 100)
			e.waitRecv(100)
			if how == "truncate" {
				// Writing into the truncated memfd faulted; the daemon caught
				// it and dropped the buffers instead of dying of SIGBUS.
				if modes := e.statsModes(); len(modes) != 1 || modes[0] != "zbuf-broken" {
					t.Errorf("after truncation the descriptor is %v, want zbuf-broken", modes)
				}
			}
			c.tell()
			lines := c.all()
			if how != "exit" {
				var recv, drop int
				for _, l := range lines {
					fmt.Sscanf(l, "stats recv=%d drop=%d", &recv, &drop)
				}
				if recv == 0 {
					t.Fatalf("no packets seen: %v", lines)
				}
			}
			waitFor(t, "the descriptor to close", func() bool { return len(e.StatsLines()) == 0 })
			// The daemon is alive and serving.
			v := e.client("version", e.Node("bpf"))
			v.expect("version 1.1")
			if got := e.daemonSharedMappings(); got != base {
				t.Fatalf("daemon shared mappings %d after close, %d before", got, base)
			}
		})
	}
	if e.Cmd.ProcessState != nil {
		t.Fatalf("daemon exited: %v\n%s", e.Cmd.ProcessState, e.Log())
	}
}

func TestZeroCopyDisabledByFlag(t *testing.T) {
	e := startDaemon(t, 1, "-zerocopy=false")
	c := e.zclient("capture", e.Node("bpf"), e.Taps[0], "1")
	c.expect(fmt.Sprintf("setbufmode errno=%d", unix.EINVAL))
}
