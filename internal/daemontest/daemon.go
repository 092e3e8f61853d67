package daemontest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

const (
	HostIP = "198.18.0.1" // the Linux side of the first tap
	FarIP  = "198.18.0.2" // the emulated interface behind it
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/bpffs once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "bpffs-bin")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "bpffs")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/bpffs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/bpffs: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Daemon is one running bpffs serving taps in a test network namespace.
type Daemon struct {
	t      testing.TB
	NS     string
	Taps   []string
	Mnt    string
	Cmd    *exec.Cmd
	log    *syncBuilder
	exited chan error
}

type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) add(line string) {
	s.mu.Lock()
	s.b.WriteString(line + "\n")
	s.mu.Unlock()
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start creates a netns and starts bpffs serving ntaps new taps there with
// the extra flags. The first tap gets HostIP/24 on the Linux side and a
// static neighbour FarIP at the emulated interface's address; IPv6 is off
// in the namespace so the kernel's own chatter does not disturb counts.
func Start(t testing.TB, ntaps int, extra ...string) *Daemon {
	t.Helper()
	testenv.RequireFUSE(t)
	testenv.RequireTUN(t)
	d := &Daemon{t: t, NS: testenv.NewNetns(t), Mnt: t.TempDir()}
	os.Chmod(d.Mnt, 0o755)
	testenv.InNetns(t, d.NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	for i := 0; i < ntaps; i++ {
		d.Taps = append(d.Taps, testenv.UniqueName("bt"))
	}
	args := append([]string{"-netns", d.NS, "-tap", strings.Join(d.Taps, ",")}, extra...)
	d.StartProcess(nil, append(args, d.Mnt))
	for i, tap := range d.Taps {
		testenv.MustRun(t, "ip", "-n", d.NS, "link", "set", tap, "up")
		if i == 0 {
			testenv.MustRun(t, "ip", "-n", d.NS, "addr", "add", HostIP+"/24", "dev", tap)
			testenv.MustRun(t, "ip", "-n", d.NS, "neigh", "replace", FarIP, "lladdr", d.EmulatedMAC(tap).String(), "dev", tap, "nud", "permanent")
		}
	}
	return d
}

// New describes a daemon to be started by hand with StartProcess in an
// existing namespace (for tests of start-up itself).
func New(t testing.TB, ns, mnt string, taps ...string) *Daemon {
	return &Daemon{t: t, NS: ns, Mnt: mnt, Taps: taps}
}

// StartProcess runs the daemon (under wrapper, e.g. unshare, if given) and
// waits until it serves. It is stopped and unmounted when the test ends.
func (d *Daemon) StartProcess(wrapper []string, args []string) {
	t := d.t
	t.Helper()
	d.log = &syncBuilder{}
	argv := append(append(append([]string{}, wrapper...), Binary(t)), args...)
	d.Cmd = exec.Command(argv[0], argv[1:]...)
	pr, pw, _ := os.Pipe()
	d.Cmd.Stderr = pw
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.log.add(sc.Text())
			// The daemon's start-up line; an error such as "another daemon
			// is serving …" must not count.
			if strings.HasPrefix(sc.Text(), "bpffs: serving ") {
				ready <- true
			}
		}
		close(ready)
	}()
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.Cmd.Wait() }()
	t.Cleanup(func() {
		d.Stop()
		if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), " "+d.Mnt+" ") {
			unix.Unmount(d.Mnt, unix.MNT_DETACH)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("bpffs exited before serving:\n%s", d.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("bpffs did not start within 20s:\n%s", d.log.String())
	}
}

// Log returns what the daemon wrote to stderr so far.
func (d *Daemon) Log() string { return d.log.String() }

// Stop sends SIGTERM and waits (SIGKILL after 20s); it returns the exit.
func (d *Daemon) Stop() error {
	if d.Cmd == nil || d.Cmd.ProcessState != nil {
		return nil
	}
	d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		return err
	case <-time.After(20 * time.Second):
		d.Cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("bpffs ignored SIGTERM")
	}
}

// Kill sends SIGKILL and waits for the process.
func (d *Daemon) Kill() {
	d.Cmd.Process.Kill()
	<-d.exited
}

// Node is the path of a node of the mount.
func (d *Daemon) Node(name string) string { return filepath.Join(d.Mnt, name) }

func (d *Daemon) link(tap string) string {
	return testenv.MustRun(d.t, "ip", "-n", d.NS, "-o", "link", "show", tap)
}

// TapMAC is the Linux side's address of a tap.
func (d *Daemon) TapMAC(tap string) net.HardwareAddr {
	out := d.link(tap)
	f := strings.Fields(out[strings.Index(out, "link/ether"):])
	mac, err := net.ParseMAC(f[1])
	if err != nil {
		d.t.Fatal(err)
	}
	return mac
}

// EmulatedMAC is the address of the emulated interface behind a tap.
func (d *Daemon) EmulatedMAC(tap string) net.HardwareAddr {
	var idx int
	fmt.Sscanf(d.link(tap), "%d:", &idx)
	return net.HardwareAddr{0x02, 0x62, 0x70, 0x66, byte(idx >> 8), byte(idx)}
}

// SendUDP sends count datagrams from the Linux side to FarIP:9; datagram i
// starts with "bpffs-NNNN" and is size bytes long. It returns the payloads.
func (d *Daemon) SendUDP(count, size int) [][]byte {
	d.t.Helper()
	c, err := testenv.UDPConnInNetns(d.NS, FarIP+":9")
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	var sent [][]byte
	for i := 0; i < count; i++ {
		p := make([]byte, size)
		copy(p, fmt.Sprintf("bpffs-%04d", i))
		if _, err := c.Write(p); err != nil {
			d.t.Fatal(err)
		}
		sent = append(sent, p)
	}
	return sent
}

// StatsLines returns the descriptor lines of the stats file.
func (d *Daemon) StatsLines() []string {
	descriptors, _ := d.statsTables()
	return descriptors
}

// SourceLines returns the interface lines of the stats file (the table
// after the descriptors').
func (d *Daemon) SourceLines() []string {
	_, sources := d.statsTables()
	return sources
}

func (d *Daemon) statsTables() (descriptors, sources []string) {
	b, err := os.ReadFile(d.Node("stats"))
	if err != nil {
		d.t.Fatal(err)
	}
	first, second, _ := strings.Cut(string(b), "\n\n")
	descriptors = strings.Split(strings.TrimSpace(first), "\n")[1:]
	if second = strings.TrimSpace(second); second != "" {
		sources = strings.Split(second, "\n")[1:]
	}
	return descriptors, sources
}
