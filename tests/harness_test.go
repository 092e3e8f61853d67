package tests

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/daemontest"
	"github.com/bpffs/bpffs/internal/testenv"
)

var (
	bpfcheckBin  string
	zbufcheckBin string
	buildErr     error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bpffs-e2e")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	bpfcheckBin = filepath.Join(dir, "bpfcheck")
	zbufcheckBin = filepath.Join(dir, "zbufcheck")
	if out, err := exec.Command("gcc", "-Wall", "-Werror", "-O2", "-I", "../include", "-o", bpfcheckBin, "c/bpfcheck.c").CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("gcc c/bpfcheck.c: %v\n%s", err, out)
	} else if out, err := exec.Command("gcc", "-std=gnu11", "-Wall", "-Werror", "-O2", "-I", "../include", "-o", zbufcheckBin, "c/zbufcheck.c").CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("gcc c/zbufcheck.c: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a running daemon (internal/daemontest) plus the test it serves.
type env struct {
	*daemontest.Daemon
	t *testing.T
}

const (
	hostIP = daemontest.HostIP
	farIP  = daemontest.FarIP
)

func startDaemon(t *testing.T, ntaps int, extra ...string) *env {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return &env{daemontest.Start(t, ntaps, extra...), t}
}

// client runs bpfcheck and gives its stdout line by line.
type client struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error
}

func (e *env) client(args ...string) *client {
	if buildErr != nil {
		e.t.Fatal(buildErr)
	}
	return startClient(e.t, nil, args...)
}

func startClient(t *testing.T, attr *syscall.SysProcAttr, args ...string) *client {
	return startProgram(t, bpfcheckBin, attr, args...)
}

// zclient runs the zero-copy client zbufcheck.
func (e *env) zclient(args ...string) *client {
	if buildErr != nil {
		e.t.Fatal(buildErr)
	}
	return startProgram(e.t, zbufcheckBin, nil, args...)
}

func startProgram(t *testing.T, bin string, attr *syscall.SysProcAttr, args ...string) *client {
	t.Helper()
	c := &client{t: t, cmd: exec.Command(bin, args...), lines: make(chan string, 4096), done: make(chan error, 1)}
	c.cmd.SysProcAttr = attr
	c.cmd.Stderr = os.Stderr
	c.stdin, _ = c.cmd.StdinPipe()
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

func waitFor(t *testing.T, what string, cond func() bool) { testenv.WaitFor(t, what, cond) }

// tell sends a line to the client's stdin (it waits for one at sync points).
func (c *client) tell() {
	io.WriteString(c.stdin, "go\n")
}

// results collects the "NAME RESULT" lines of a client that checks many
// calls (bpfcheck errnos, zbufcheck errnos) by name. A call that returns a
// value prints two lines with its name (the r= line, then the value); the
// map keeps the last, the value.
func (c *client) results() map[string]string {
	got := map[string]string{}
	for _, l := range c.all() {
		name, rest, _ := strings.Cut(l, " ")
		got[name] = rest
	}
	return got
}

// checkResults reports every expected result that is missing or different.
func checkResults(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if g, found := got[name]; !found {
			t.Errorf("%s: no result", name)
		} else if g != w {
			t.Errorf("%s: got %q, want %q", name, g, w)
		}
	}
}
