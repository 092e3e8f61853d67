package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// env is everything the benchmark made and must remove: a temp dir with the
// tools, a network namespace with its taps, a bpffs daemon and its mount.
type env struct {
	root    string // module root: tests/c and include live here
	tmp     string
	ns      string
	bin     map[string]string
	daemon  *exec.Cmd
	exited  chan error
	mnt     string
	ceilTap string
	bpfTap  string
	mac     string // destination of generated frames: the emulated interface
	source  string // the daemon's -source; with "ring" every frame counts in tx_dropped

	mu       sync.Mutex
	children map[*exec.Cmd]struct{}
	closed   sync.Once
}

// findRoot walks up from the working directory to this module's go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/bpffs/bpffs\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the bpffs module: run from the repository or pass -root")
		}
		dir = parent
	}
}

func randomSuffix() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newEnv(root string) (*env, error) {
	for _, tool := range []string{"ip", "gcc", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("must run as root (network namespace, taps, FUSE mount)")
	}
	tmp, err := os.MkdirTemp("", "bpfbench")
	if err != nil {
		return nil, err
	}
	os.Chmod(tmp, 0o755)
	id := randomSuffix()
	return &env{
		root: root, tmp: tmp, ns: "bpfbench-" + id, bin: map[string]string{},
		ceilTap: "bbc" + id, bpfTap: "bbd" + id, children: map[*exec.Cmd]struct{}{},
	}, nil
}

// buildTools compiles the C programs from tests/c into the temp dir.
func (e *env) buildTools() error {
	for _, name := range []string{"pktgen", "drain", "tapread"} {
		out := filepath.Join(e.tmp, name)
		src := filepath.Join(e.root, "tests", "c", name+".c")
		cmd := exec.Command("gcc", "-std=gnu11", "-O2", "-Wall", "-I", filepath.Join(e.root, "include"), "-o", out, src)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("gcc %s: %v\n%s", src, err, b)
		}
		e.bin[name] = out
	}
	return nil
}

// buildDaemon builds cmd/bpffs unless a path was given.
func (e *env) buildDaemon(path string) error {
	if path != "" {
		e.bin["bpffs"] = path
		return nil
	}
	out := filepath.Join(e.tmp, "bpffs")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/bpffs")
	cmd.Dir = e.root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/bpffs: %v\n%s", err, b)
	}
	e.bin["bpffs"] = out
	return nil
}

func run(name string, args ...string) error {
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

// setupNetns creates the namespace with IPv6 off (no chatter on the taps)
// and the persistent ceiling tap, left down until its reader is attached.
func (e *env) setupNetns(txQueueLen int) error {
	if err := run("ip", "netns", "add", e.ns); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "-n", e.ns, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", e.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "-n", e.ns, "tuntap", "add", "dev", e.ceilTap, "mode", "tap"},
		{"ip", "-n", e.ns, "link", "set", e.ceilTap, "txqueuelen", strconv.Itoa(txQueueLen)},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// startDaemon runs bpffs serving bpfTap and waits for its mount.
func (e *env) startDaemon(txQueueLen int) error {
	e.mnt = filepath.Join(e.tmp, "mnt")
	if err := os.Mkdir(e.mnt, 0o755); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(e.tmp, "bpffs.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(e.bin["bpffs"], "-netns", e.ns, "-tap", e.bpfTap, "-units", "4",
		"-txqueuelen", strconv.Itoa(txQueueLen), "-maxbufsize", "524288", "-source", e.source, e.mnt)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	e.daemon = cmd
	e.exited = make(chan error, 1)
	go func() { e.exited <- cmd.Wait(); log.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(e.mnt, "bpf")); err == nil {
			break
		}
		select {
		case err := <-e.exited:
			e.exited <- err
			b, _ := os.ReadFile(filepath.Join(e.tmp, "bpffs.log"))
			return fmt.Errorf("bpffs exited at start-up (%v): %s", err, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("bpffs did not mount within 15 s")
		}
	}
	if err := run("ip", "-n", e.ns, "link", "set", e.bpfTap, "up"); err != nil {
		return err
	}
	idx, err := e.ifindex(e.bpfTap)
	if err != nil {
		return err
	}
	e.mac = fmt.Sprintf("02:62:70:66:%02x:%02x", byte(idx>>8), byte(idx))
	return nil
}

type linkJSON struct {
	Index int `json:"ifindex"`
	Stats struct {
		TX struct {
			Packets uint64 `json:"packets"`
			Dropped uint64 `json:"dropped"`
		} `json:"tx"`
	} `json:"stats64"`
}

func (e *env) link(tap string) (linkJSON, error) {
	var l []linkJSON
	b, err := exec.Command("ip", "-n", e.ns, "-s", "-j", "link", "show", "dev", tap).Output()
	if err != nil {
		return linkJSON{}, fmt.Errorf("ip link show %s: %w", tap, err)
	}
	if err := json.Unmarshal(b, &l); err != nil || len(l) != 1 {
		return linkJSON{}, fmt.Errorf("ip -j link show %s: unexpected output %q", tap, b)
	}
	return l[0], nil
}

func (e *env) ifindex(tap string) (int, error) {
	l, err := e.link(tap)
	return l.Index, err
}

// txDropped is the tap's transmit-queue drop counter: frames the stack sent
// that the tap's reader never got.
func (e *env) txDropped(tap string) (uint64, error) {
	l, err := e.link(tap)
	return l.Stats.TX.Dropped, err
}

// daemonCPU is the daemon's user+system time so far, in seconds.
func (e *env) daemonCPU() (float64, error) { return processCPU(e.daemon.Process.Pid) }

// processCPU is a process's user+system time so far, in seconds.
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat %q", s)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat %q", s)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return float64(utime+stime) / ticksPerSecond, nil
}

// child is a started helper process whose output is read line by line.
type child struct {
	cmd    *exec.Cmd
	lines  chan string
	done   chan struct{}
	err    error
	stderr *strings.Builder
}

// start runs a helper in its own process group (a terminal's ^C then
// reaches only bpfbench, which stops everything in order). Lines of stdout
// (or of stderr when fromStderr) are delivered on lines.
func (e *env) start(fromStderr bool, name string, args ...string) (*child, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var pipe io.ReadCloser
	var err error
	c := &child{cmd: cmd, lines: make(chan string, 64), done: make(chan struct{}), stderr: &strings.Builder{}}
	if fromStderr {
		pipe, err = cmd.StderrPipe()
	} else {
		pipe, err = cmd.StdoutPipe()
		cmd.Stderr = &lockedWriter{b: c.stderr}
	}
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.children[cmd] = struct{}{}
	e.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		e.mu.Lock()
		delete(e.children, cmd)
		e.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// expect waits for a line starting with prefix and returns it.
func (c *child) expect(prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.done
				return "", fmt.Errorf("%s exited (%v) before printing %q: %s", filepath.Base(c.cmd.Path), c.err, prefix, c.stderr)
			}
			if strings.HasPrefix(line, prefix) {
				return line, nil
			}
		case <-deadline:
			return "", fmt.Errorf("%s printed no %q within %v", filepath.Base(c.cmd.Path), prefix, timeout)
		}
	}
}

func (c *child) signal(sig syscall.Signal) { c.cmd.Process.Signal(sig) }

// stop kills the helper and waits for it.
func (c *child) stop() {
	c.cmd.Process.Kill()
	for range c.lines {
	}
	<-c.done
}

// keyValues parses "word k=v k=v ..." lines.
func keyValues(line string) map[string]float64 {
	m := map[string]float64{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				m[k] = x
			}
		}
	}
	return m
}

// close stops every helper and the daemon, unmounts, deletes the namespace
// (with its taps) and the temp dir. Safe to call more than once and from
// the signal handler while the benchmark runs.
func (e *env) close() { e.closed.Do(e.teardown) }

func (e *env) teardown() {
	e.mu.Lock()
	for cmd := range e.children {
		cmd.Process.Kill()
	}
	e.mu.Unlock()
	if e.daemon != nil {
		e.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(5 * time.Second):
			e.daemon.Process.Kill()
			<-e.exited
		}
		e.daemon = nil
		// A daemon that died without unmounting leaves a dead mount behind.
		exec.Command("umount", "-l", e.mnt).Run()
	}
	if e.ns != "" {
		exec.Command("ip", "netns", "del", e.ns).Run()
		e.ns = ""
	}
	if e.tmp != "" {
		os.RemoveAll(e.tmp)
		e.tmp = ""
	}
}
