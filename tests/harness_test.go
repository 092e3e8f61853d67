package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

var (
	daemonBin   string
	bpfcheckBin string
	buildErr    error
	repoRoot    string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bpffs-e2e")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	repoRoot, _ = filepath.Abs("..")
	daemonBin = filepath.Join(dir, "bpffs")
	bpfcheckBin = filepath.Join(dir, "bpfcheck")
	if out, err := exec.Command("go", "build", "-o", daemonBin, "../cmd/bpffs").CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/bpffs: %v\n%s", err, out)
	} else if out, err := exec.Command("gcc", "-Wall", "-Werror", "-O2", "-I", "../include", "-o", bpfcheckBin, "c/bpfcheck.c").CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("gcc c/bpfcheck.c: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one running daemon serving one or more taps in a test netns.
type env struct {
	t      *testing.T
	ns     string
	taps   []string
	mnt    string
	cmd    *exec.Cmd
	log    *strings.Builder
	exited chan error
}

const (
	hostIP = "198.18.0.1" // the Linux side of the tap
	farIP  = "198.18.0.2" // the emulated interface
)

// startDaemon creates a netns, starts bpffs serving new taps there and
// configures the first tap: 198.18.0.1/24 on the Linux side, a static
// neighbour 198.18.0.2 at the emulated interface's address, IPv6 off so
// the kernel's own chatter does not disturb counts.
func startDaemon(t *testing.T, ntaps int, extra ...string) *env {
	t.Helper()
	testenv.RequireFUSE(t)
	testenv.RequireTUN(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	e := &env{t: t, ns: testenv.NewNetns(t), mnt: t.TempDir(), log: &strings.Builder{}}
	os.Chmod(e.mnt, 0o755)
	testenv.InNetns(t, e.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	for i := 0; i < ntaps; i++ {
		e.taps = append(e.taps, testenv.UniqueName("bt"))
	}
	args := append([]string{"-netns", e.ns, "-tap", strings.Join(e.taps, ",")}, extra...)
	args = append(args, e.mnt)
	e.start(args)
	for i, tap := range e.taps {
		testenv.MustRun(t, "ip", "-n", e.ns, "link", "set", tap, "up")
		if i == 0 {
			testenv.MustRun(t, "ip", "-n", e.ns, "addr", "add", hostIP+"/24", "dev", tap)
			testenv.MustRun(t, "ip", "-n", e.ns, "neigh", "replace", farIP, "lladdr", e.emulatedMAC(tap).String(), "dev", tap, "nud", "permanent")
		}
	}
	return e
}

func (e *env) start(args []string) {
	e.startWrapped(nil, args)
}

// startWrapped starts the daemon under a wrapper command (e.g. unshare).
func (e *env) startWrapped(wrapper []string, args []string) {
	t := e.t
	argv := append(append(append([]string{}, wrapper...), daemonBin), args...)
	e.cmd = exec.Command(argv[0], argv[1:]...)
	pr, pw, _ := os.Pipe()
	e.cmd.Stderr = pw
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			e.log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "serving ") {
				ready <- true
			}
		}
		close(ready)
	}()
	e.exited = make(chan error, 1)
	go func() { e.exited <- e.cmd.Wait() }()
	t.Cleanup(func() {
		e.stop()
		if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), " "+e.mnt+" ") {
			unix.Unmount(e.mnt, unix.MNT_DETACH)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.log.String())
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("bpffs exited before serving:\n%s", e.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("bpffs did not start within 20s:\n%s", e.log.String())
	}
}

// stop sends SIGTERM and waits; SIGKILL if it does not exit.
func (e *env) stop() error {
	if e.cmd.ProcessState != nil {
		return nil
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.exited:
		return err
	case <-time.After(20 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
		return fmt.Errorf("bpffs ignored SIGTERM")
	}
}

func (e *env) node(name string) string { return filepath.Join(e.mnt, name) }

func (e *env) tapMAC(tap string) net.HardwareAddr {
	out := testenv.MustRun(e.t, "ip", "-n", e.ns, "-o", "link", "show", tap)
	f := strings.Fields(out[strings.Index(out, "link/ether"):])
	mac, err := net.ParseMAC(f[1])
	if err != nil {
		e.t.Fatal(err)
	}
	return mac
}

func (e *env) tapIndex(tap string) int {
	out := testenv.MustRun(e.t, "ip", "-n", e.ns, "-o", "link", "show", tap)
	var idx int
	fmt.Sscanf(out, "%d:", &idx)
	return idx
}

func (e *env) emulatedMAC(tap string) net.HardwareAddr {
	i := e.tapIndex(tap)
	return net.HardwareAddr{0x02, 0x62, 0x70, 0x66, byte(i >> 8), byte(i)}
}

// sendUDP sends count datagrams from the Linux side to farIP:9; payload i
// is "bpffs-NNNN" padded to size bytes.
func (e *env) sendUDP(count, size int) [][]byte {
	e.t.Helper()
	c, err := testenv.UDPConnInNetns(e.ns, farIP+":9")
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	var sent [][]byte
	for i := 0; i < count; i++ {
		p := make([]byte, size)
		copy(p, fmt.Sprintf("bpffs-%04d", i))
		if _, err := c.Write(p); err != nil {
			e.t.Fatal(err)
		}
		sent = append(sent, p)
	}
	return sent
}

// client runs bpfcheck and gives its stdout line by line.
type client struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func (e *env) client(args ...string) *client {
	return startClient(e.t, nil, args...)
}

func startClient(t *testing.T, attr *syscall.SysProcAttr, args ...string) *client {
	t.Helper()
	c := &client{t: t, cmd: exec.Command(bpfcheckBin, args...), lines: make(chan string, 4096), done: make(chan error, 1)}
	c.cmd.SysProcAttr = attr
	c.cmd.Stderr = os.Stderr
	out, _ := c.cmd.StdoutPipe()
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- c.cmd.Wait()
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
		}
	})
	return c
}

// expect returns the next line starting with prefix, skipping nothing.
func (c *client) expect(prefix string) string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("client ended while waiting for %q", prefix)
		}
		if !strings.HasPrefix(l, prefix) {
			c.t.Fatalf("got %q, want a line starting with %q", l, prefix)
		}
		return l
	case <-time.After(30 * time.Second):
		c.t.Fatalf("no %q line within 30s", prefix)
	}
	return ""
}

// all collects every line until the client exits.
func (c *client) all() []string {
	c.t.Helper()
	var out []string
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				if err := <-c.done; err != nil {
					c.t.Fatalf("client failed: %v\n%s", err, strings.Join(out, "\n"))
				}
				return out
			}
			out = append(out, l)
		case <-timeout:
			c.t.Fatalf("client did not finish within 60s; so far:\n%s", strings.Join(out, "\n"))
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statsLines returns the descriptor lines of the stats file.
func (e *env) statsLines() []string {
	b, err := os.ReadFile(e.node("stats"))
	if err != nil {
		e.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[1:]
}
