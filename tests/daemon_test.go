package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/daemontest"
	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestDaemonNodesVersionAndCleanStop(t *testing.T) {
	e := startDaemon(t, 1)
	for _, n := range []string{"bpf", "bpf0", "bpf15", "stats"} {
		st, err := os.Stat(e.Node(n))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if n == "stats" {
			want = 0o400
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", n, st.Mode().Perm(), want)
		}
	}
	if _, err := os.Stat(e.Node("bpf16")); err == nil {
		t.Error("bpf16 exists with -units 16")
	}
	c := e.client("version", e.Node("bpf"))
	c.expect("version 1.1")
	c.expect(fmt.Sprintf("unknown-bpf r=-1 errno=%d", unix.EINVAL))
	c.expect(fmt.Sprintf("tcgets r=-1 errno=%d", unix.ENOTTY))
	c.expect("isatty 0")

	if err := e.Stop(); err != nil {
		t.Fatalf("bpffs after SIGTERM: %v\n%s", err, e.Log())
	}
	if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), " "+e.Mnt+" ") {
		t.Fatal("still mounted after SIGTERM")
	}
	// The tap the daemon created is gone with it.
	if out, err := exec.Command("ip", "-n", e.NS, "link", "show", e.Taps[0]).CombinedOutput(); err == nil {
		t.Fatalf("tap %s still exists: %s", e.Taps[0], out)
	}
}

func TestNumberedUnitsAreExclusive(t *testing.T) {
	e := startDaemon(t, 1)
	f, err := os.OpenFile(e.Node("bpf0"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.OpenFile(e.Node("bpf0"), os.O_RDWR, 0); !errorsIs(err, unix.EBUSY) {
		t.Fatalf("second open of bpf0: %v, want EBUSY", err)
	}
	f.Close()
	waitFor(t, "bpf0 to be free", func() bool {
		g, err := os.OpenFile(e.Node("bpf0"), os.O_RDWR, 0)
		if err == nil {
			g.Close()
		}
		return err == nil
	})
	// The cloning node never is.
	a, err1 := os.OpenFile(e.Node("bpf"), os.O_RDWR, 0)
	b, err2 := os.OpenFile(e.Node("bpf"), os.O_RDWR, 0)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	a.Close()
	b.Close()
}

func errorsIs(err error, errno unix.Errno) bool {
	var pe *os.PathError
	if e, ok := err.(*os.PathError); ok {
		pe = e
		return pe.Err == errno
	}
	return false
}

func TestUnprivilegedUserDenied(t *testing.T) {
	e := startDaemon(t, 1)
	c := startClient(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "version", e.Node("bpf"))
	c.expect(fmt.Sprintf("open-failed errno=%d", unix.EACCES))
}

func TestKilledReaderLeavesNoDescriptor(t *testing.T) {
	e := startDaemon(t, 1)
	c := e.client("hold", e.Node("bpf"), e.Taps[0])
	c.expect("attached")
	if n := len(e.StatsLines()); n != 1 {
		t.Fatalf("stats lists %d descriptors, want 1", n)
	}
	c.cmd.Process.Kill()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatal("a SIGKILLed reader was not reaped")
	}
	waitFor(t, "the descriptor to go", func() bool { return len(e.StatsLines()) == 0 })
}

func TestStatsFileAndCommand(t *testing.T) {
	e := startDaemon(t, 1)
	c := e.client("hold", e.Node("bpf"), e.Taps[0])
	c.expect("attached")
	out, err := exec.Command(daemontest.Binary(t), "stat", e.Mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("bpffs stat: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "recv") || lines[2] != "" || !strings.Contains(lines[3], "oversize") {
		t.Fatalf("bpffs stat output:\n%s", out)
	}
	if src := strings.Fields(lines[4]); src[0] != e.Taps[0] || src[1] != "egress" {
		t.Fatalf("interface line %q: want %s with source egress (the default)", lines[4], e.Taps[0])
	}
	f := strings.Fields(lines[1])
	if f[1] != fmt.Sprint(c.cmd.Process.Pid) || f[2] != e.Taps[0] || f[3] != "buffer" {
		t.Fatalf("descriptor line %q: want pid %d, interface %s, mode buffer", lines[1], c.cmd.Process.Pid, e.Taps[0])
	}
}

func TestLinksCreatedAndRemoved(t *testing.T) {
	dir := t.TempDir()
	e := startDaemon(t, 1, "-link", dir, "-units", "2")
	for _, n := range []string{"bpf", "bpf0", "bpf1"} {
		target, err := os.Readlink(filepath.Join(dir, n))
		if err != nil || target != e.Node(n) {
			t.Fatalf("link %s -> %q (%v)", n, target, err)
		}
	}
	c := e.client("version", filepath.Join(dir, "bpf"))
	c.expect("version 1.1")
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("links left behind: %v", entries)
	}
}

func TestStaleMountClearedAtStart(t *testing.T) {
	e := startDaemon(t, 1)
	e.Kill()
	// The mount is dead now; a new daemon on the same mount point clears it.
	var st unix.Statfs_t
	if err := unix.Statfs(e.Mnt, &st); err != unix.ENOTCONN {
		t.Fatalf("statfs of the dead mount: %v, want ENOTCONN", err)
	}
	tap := testenv.UniqueName("bt")
	e2 := &env{daemontest.New(t, e.NS, e.Mnt, tap), t}
	e2.StartProcess(nil, []string{"-netns", e.NS, "-tap", tap, e.Mnt})
	c := e2.client("version", e2.Node("bpf"))
	c.expect("version 1.1")
}

func TestDaemonStartErrors(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.RequireTUN(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	ns := testenv.NewNetns(t)
	testenv.MustRun(t, "ip", "-n", ns, "link", "add", "dum0", "type", "veth", "peer", "name", "dum1")
	run := func(args ...string) string {
		cmd := exec.Command(daemontest.Binary(t), args...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("bpffs %v did not exit", args)
		}
		if err == nil {
			t.Fatalf("bpffs %v succeeded", args)
		}
		return string(out)
	}
	if out := run("-netns", ns, "-tap", "dum0", t.TempDir()); !strings.Contains(out, "not a tap") {
		t.Errorf("dummy interface: %s", out)
	}
	// A veth is not a tap; a tap held by another daemon is busy.
	e := startDaemon(t, 1)
	if out := run("-netns", e.NS, "-tap", e.Taps[0], t.TempDir()); !strings.Contains(out, "busy") {
		t.Errorf("busy tap: %s", out)
	}
	// The mount point of a live daemon is busy.
	if out := run("-netns", e.NS, "-tap", testenv.UniqueName("bt"), e.Mnt); !strings.Contains(out, "busy") {
		t.Errorf("busy mount point: %s", out)
	}
	if out := run("-netns", e.NS, "-maxbufsize", "2097152", t.TempDir()); !strings.Contains(out, "one FUSE request") {
		t.Errorf("-maxbufsize beyond one READ: %s", out)
	}
	nobody := exec.Command(daemontest.Binary(t), "-tap", "x", t.TempDir())
	nobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := nobody.CombinedOutput(); err == nil || !strings.Contains(string(out), "root") {
		t.Errorf("as uid 65534: %v %s", err, out)
	}
}

// A daemon in a child PID namespace cannot name callers outside it (the
// kernel sends pid 0): commands that need the caller's memory fail with
// EPERM and touch nothing; the others still work.
func TestCallerInvisibleToDaemon(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.RequireTUN(t)
	ns := testenv.NewNetns(t)
	tap := testenv.UniqueName("bt")
	e := &env{daemontest.New(t, ns, t.TempDir(), tap), t}
	os.Chmod(e.Mnt, 0o755)
	e.StartProcess([]string{"unshare", "--pid", "--fork", "--kill-child"}, []string{"-netns", ns, "-tap", tap, e.Mnt})
	got := e.client("errnos", e.Node("bpf"), tap).results()
	eperm := fmt.Sprintf("r=-1 errno=%d", unix.EPERM)
	for _, name := range []string{"setf-512", "setf-badptr"} {
		if got[name] != eperm {
			t.Errorf("%s: %q, want %q", name, got[name], eperm)
		}
	}
	if got["setif"] != "r=0 errno=0" || got["gdltlist-count"] != "len=1" {
		t.Errorf("commands without pointers must still work: setif %q, gdltlist-count %q", got["setif"], got["gdltlist-count"])
	}
	if want := fmt.Sprintf("r=-1 errno=%d", unix.EPERM); got["gdltlist"] != want && !strings.HasPrefix(got["gdltlist"], "len=") {
		t.Errorf("gdltlist: %q", got["gdltlist"])
	}
}

// A kernel that refuses the egress program (here: bpf(2) fails, as without
// BPF) does not stop the daemon: the tap is served through the packet
// ring, the log says why, and the stats file names the source in use.
func TestEgressFallsBackToRing(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.RequireTUN(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	nobpf := reliabilityProgram(t, "nobpf")
	ns := testenv.NewNetns(t)
	mnt := t.TempDir()
	tap := testenv.UniqueName("bt")
	e := &env{daemontest.New(t, ns, mnt, tap), t}
	e.StartProcess([]string{nobpf}, []string{"-netns", ns, "-tap", tap, mnt})
	if !strings.Contains(e.Log(), "no egress capture") || !strings.Contains(e.Log(), "using -source ring") {
		t.Fatalf("no word of the fallback in the log:\n%s", e.Log())
	}
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", tap, "up")
	testenv.MustRun(t, "ip", "-n", ns, "addr", "add", daemontest.HostIP+"/24", "dev", tap)
	testenv.MustRun(t, "ip", "-n", ns, "neigh", "replace", daemontest.FarIP, "lladdr", e.EmulatedMAC(tap).String(), "dev", tap, "nud", "permanent")
	e.SendUDP(20, 100)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines := e.SourceLines()
		if len(lines) == 1 {
			f := strings.Fields(lines[0])
			if f[1] != "ring" {
				t.Fatalf("interface line %q: want source ring", lines[0])
			}
			if n, _ := strconv.Atoi(f[2]); n >= 20 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames never reached the ring: %q", lines)
		}
	}
}
