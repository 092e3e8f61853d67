package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI, where a missing privilege or
// kernel feature is a failure, not a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

func missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and %s: privileged tests must run in CI (run as root on a kernel with FUSE and TUN)", what)
	}
	t.Skipf("skipping: %s", what)
}

// RequireRoot fails under CI and skips elsewhere when not running as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "not running as root")
	}
}

// RequireFUSE needs root and a usable /dev/fuse.
func RequireFUSE(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		missing(t, "/dev/fuse cannot be opened: "+err.Error())
		return
	}
	f.Close()
}

// RequireTUN needs root, /dev/net/tun and the ip command.
func RequireTUN(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		missing(t, "/dev/net/tun cannot be opened: "+err.Error())
		return
	}
	f.Close()
	if _, err := exec.LookPath("ip"); err != nil {
		missing(t, "the ip command (iproute2) is not installed")
	}
}

// UniqueName returns prefix followed by random hex, short enough for an
// interface name (IFNAMSIZ-1 = 15 bytes) when prefix is at most 7 bytes.
func UniqueName(prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// NewNetns creates a named network namespace (/run/netns/NAME) with its
// loopback up and removes it when the test ends, whatever the outcome.
func NewNetns(t testing.TB) string {
	t.Helper()
	RequireTUN(t)
	name := UniqueName("bpffst")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	MustRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// MustRun runs a command and fails the test with its output if it fails.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// InNetns runs a command inside the named network namespace.
func InNetns(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	return MustRun(t, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// NetnsCommand builds (does not start) a command that runs inside ns.
func NetnsCommand(ns string, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// WaitFor polls cond until it holds or 20 seconds pass (then the test
// fails). It waits for a state, never asserts a duration.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
