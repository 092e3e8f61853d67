package fuse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

var clientBin string

func TestMain(m *testing.M) {
	if path := os.Getenv("DEVFS_GO_CLIENT"); path != "" {
		os.Exit(goFileClient(path))
	}
	dir, err := os.MkdirTemp("", "fusetest")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the permission test runs the client as uid 65534
	clientBin = filepath.Join(dir, "client")
	if out, err := exec.Command("gcc", "-Wall", "-Werror", "-O2", "-o", clientBin, "testdata/client.c").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the C test client: %v\n%s", err, out)
		clientBin = ""
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fixture struct {
	srv *Server
	dev *queueDevice
	mnt string
}

// mountQueue mounts a filesystem with one queue device "q" (mode 0600) and
// unmounts it when the test ends, lazily if the test left files open.
func mountQueue(t *testing.T) *fixture {
	t.Helper()
	testenv.RequireFUSE(t)
	if clientBin == "" {
		t.Fatal("the C test client did not build (is gcc installed?)")
	}
	mnt := t.TempDir()
	dev := newQueueDevice()
	srv, err := Mount(Options{MountPoint: mnt, Name: "devfstest", Nodes: []*Node{dev.node("q", 0o600)},
		Logf: t.Logf})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return &fixture{srv: srv, dev: dev, mnt: mnt}
}

func (f *fixture) path() string { return filepath.Join(f.mnt, "q") }

// client starts the C client and returns a line reader over its stdout.
// The process is killed and reaped when the test ends.
func (f *fixture) client(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(clientBin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

func expectLine(t *testing.T, r *bufio.Reader, prefix string) string {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := r.ReadString('\n')
		ch <- result{strings.TrimSpace(l), err}
	}()
	select {
	case res := <-ch:
		if res.err != nil && res.line == "" {
			t.Fatalf("waiting for %q: %v", prefix, res.err)
		}
		if !strings.HasPrefix(res.line, prefix) {
			t.Fatalf("got %q, want a line starting with %q", res.line, prefix)
		}
		return res.line
	case <-time.After(20 * time.Second):
		t.Fatalf("no line %q from the client within 20s", prefix)
	}
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) { testenv.WaitFor(t, what, cond) }

func TestMountListsNodesWithModes(t *testing.T) {
	f := mountQueue(t)
	entries, err := os.ReadDir(f.mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "q" {
		t.Fatalf("entries = %v", entries)
	}
	st, err := os.Stat(f.path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || !st.Mode().IsRegular() {
		t.Fatalf("mode = %v", st.Mode())
	}
	if _, err := os.Stat(filepath.Join(f.mnt, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing node: %v", err)
	}
	// chmod and chown are kept for the life of the mount.
	if err := os.Chmod(f.path(), 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f.path(), 0, 65534); err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(f.path())
	if st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != 65534 {
		t.Fatalf("after chmod/chown: %v gid %d", st.Mode(), st.Sys().(*syscall.Stat_t).Gid)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(f.mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	// Streams are not seekable. (Plain system calls: an os.File would
	// register with this process's netpoller; see goFileClient.)
	fd, err := unix.Open(f.path(), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Seek(fd, 10, io.SeekStart); err == nil {
		t.Fatal("seek on a stream node succeeded")
	}
	// xattrs are unsupported, and asking does not break anything.
	if _, err := unix.Getxattr(f.path(), "user.x", nil); err == nil {
		t.Fatal("getxattr succeeded")
	}
}

func TestIoctlDirections(t *testing.T) {
	f := mountQueue(t)
	_, out := f.client(t, "ioctl", f.path())
	expectLine(t, out, "io=1234")
	expectLine(t, out, "ior=0 value=1122334455667788")
	expectLine(t, out, fmt.Sprintf("iow=%d", 136)) // 1+2+...+16
	expectLine(t, out, "iowr=0 a=1001 b=2000")
	expectLine(t, out, fmt.Sprintf("unknown=-1 errno=%d", unix.ENOTTY))
	// TCGETS reaches the server: answering ENOTTY keeps isatty() honest.
	expectLine(t, out, fmt.Sprintf("isatty=0 errno=%d", unix.ENOTTY))
	f.dev.mu.Lock()
	got := f.dev.lastIn
	f.dev.mu.Unlock()
	if len(got) != 16 || got[0] != 1 || got[15] != 16 {
		t.Fatalf("_IOW input = %v", got)
	}
}

func TestPollSelectEpollWakeOnData(t *testing.T) {
	for _, mode := range []string{"poll", "select", "epoll-lt", "epoll-et"} {
		t.Run(mode, func(t *testing.T) {
			f := mountQueue(t)
			_, out := f.client(t, "wait", f.path(), mode)
			expectLine(t, out, "blocking")
			// The waiter is queued once the kernel has asked us to notify.
			waitFor(t, "a POLL asking for notification", func() bool {
				return f.srv.Stats().Polls.Load() > 0 && f.dev.open.Load() == 1 && anyPollHandle(f.srv)
			})
			time.Sleep(50 * time.Millisecond) // let the waiter actually sleep; correctness does not depend on it
			f.dev.push([]byte("hello"))
			expectLine(t, out, "ready=1")
			if strings.HasPrefix(mode, "epoll") {
				want := "again=1"
				if mode == "epoll-et" {
					want = "again=0"
				}
				expectLine(t, out, want)
			}
			expectLine(t, out, "read=5 data=hello")
			expectLine(t, out, "after-drain=0")
		})
	}
}

func anyPollHandle(s *Server) bool {
	s.filesMu.RLock()
	defer s.filesMu.RUnlock()
	for _, f := range s.files {
		if f.waker.kh.Load() != 0 {
			return true
		}
	}
	return false
}

// Go's os.File registers a FUSE file with the netpoller (edge-triggered
// epoll); deadlines and wake-ups must both work.
//
// The client runs in a child process: epoll_ctl makes the kernel send a
// FUSE_POLL while the calling thread still holds its Go scheduler slot, and
// if a garbage collection stops the world at that moment, the server
// goroutines in the same process can never answer it. The daemon never
// opens its own files, so only a test can build that trap.
func TestGoFileReadWithDeadline(t *testing.T) {
	f := mountQueue(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DEVFS_GO_CLIENT="+f.path())
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(out)
	expectLine(t, r, "deadline exceeded")
	for i := 0; i < 3; i++ {
		expectLine(t, r, fmt.Sprintf("waiting %d", i))
		waitFor(t, "the client to poll", func() bool { return anyPollHandle(f.srv) })
		time.Sleep(50 * time.Millisecond) // let it sleep in epoll; correctness does not depend on it
		f.dev.push([]byte(fmt.Sprintf("packet-%d", i)))
		expectLine(t, r, fmt.Sprintf("got packet-%d", i))
	}
}

// goFileClient is the child side of TestGoFileReadWithDeadline.
func goFileClient(path string) int {
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer fd.Close()
	buf := make([]byte, 100)
	fd.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := fd.Read(buf); errors.Is(err, os.ErrDeadlineExceeded) {
		fmt.Println("deadline exceeded")
	} else {
		fmt.Println("read with nothing queued:", err)
		return 1
	}
	fd.SetReadDeadline(time.Time{})
	for i := 0; i < 3; i++ {
		fmt.Printf("waiting %d\n", i)
		n, err := fd.Read(buf)
		if err != nil {
			fmt.Println("read:", err)
			return 1
		}
		fmt.Printf("got %s\n", buf[:n])
	}
	return 0
}

func TestBlockedReadInterruptedBySignal(t *testing.T) {
	f := mountQueue(t)
	cmd, out := f.client(t, "readsig", f.path())
	expectLine(t, out, "blocking")
	waitFor(t, "the read to block", func() bool { return f.dev.blocked.Load() == 1 })
	cmd.Process.Signal(unix.SIGUSR1)
	// SA_RESTART cannot help: FUSE cannot restart a request.
	expectLine(t, out, fmt.Sprintf("read=-1 errno=%d", unix.EINTR))
	waitFor(t, "the handler to stop waiting", func() bool { return f.dev.blocked.Load() == 0 })
	if f.srv.Stats().Interrupts.Load() == 0 {
		t.Fatal("no FUSE_INTERRUPT was seen")
	}
}

func TestNonblockingReadGivesEAGAIN(t *testing.T) {
	f := mountQueue(t)
	_, out := f.client(t, "nonblock", f.path())
	expectLine(t, out, fmt.Sprintf("read=-1 errno=%d", unix.EAGAIN))
}

func TestManyDescriptorsBlockAtOnce(t *testing.T) {
	f := mountQueue(t)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		fd, err := unix.Open(f.path(), unix.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer unix.Close(fd)
			buf := make([]byte, 64)
			n, err := unix.Read(fd, buf)
			if err != nil || n != 3 {
				errs <- fmt.Errorf("read: %d %v", n, err)
			}
		}()
	}
	waitFor(t, "64 blocked reads", func() bool { return f.dev.blocked.Load() == n })
	// Other requests still get through while 64 reads are parked.
	if _, err := os.Stat(f.path()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		f.dev.push([]byte("msg"))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "all handles released", func() bool { return f.srv.OpenFiles() == 0 })
}

func TestKilledReaderLeavesNoHandle(t *testing.T) {
	f := mountQueue(t)
	cmd, out := f.client(t, "read", f.path())
	expectLine(t, out, "blocking")
	waitFor(t, "the read to block", func() bool { return f.dev.blocked.Load() == 1 })
	cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("SIGKILLed reader was not reaped: the daemon left it in state D")
	}
	waitFor(t, "the handle to be released", func() bool { return f.srv.OpenFiles() == 0 && f.dev.open.Load() == 0 })
}

func TestPermissionsEnforcedByKernel(t *testing.T) {
	f := mountQueue(t)
	cmd := exec.Command(clientBin, "open", f.path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	// The mount point is a TempDir (0700): let the unprivileged user through.
	os.Chmod(filepath.Dir(f.mnt), 0o755)
	os.Chmod(f.mnt, 0o755)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := fmt.Sprintf("open=-1 errno=%d", unix.EACCES); !strings.Contains(string(out), want) {
		t.Fatalf("uid 65534 opening a 0600 node: %s, want %s", out, want)
	}
}

// A 512 KiB read(2) into a buffer that is not page-aligned (as malloc
// gives) must reach the handle as one READ request.
func TestLargeReadIsOneRequest(t *testing.T) {
	f := mountQueue(t)
	const size = 512 * 1024
	if f.srv.MaxReadSize() < size+4096 {
		t.Fatalf("max read size %d is below 512 KiB + one page", f.srv.MaxReadSize())
	}
	fd, err := unix.Open(f.path(), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	raw := make([]byte, size+2*4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&raw[0]))%4096) + 16) % 4096
	buf := raw[off : off+size]
	f.dev.push(make([]byte, 100))
	n, err := unix.Read(fd, buf)
	if err != nil || n != 100 {
		t.Fatalf("read: %d %v", n, err)
	}
	f.dev.mu.Lock()
	sizes := append([]int(nil), f.dev.readSize...)
	f.dev.mu.Unlock()
	if len(sizes) != 1 || sizes[0] != size {
		t.Fatalf("READ sizes = %v, want one of %d", sizes, size)
	}
}

func TestCloseReleasesBlockedReaders(t *testing.T) {
	f := mountQueue(t)
	fd, err := unix.Open(f.path(), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	res := make(chan error, 1)
	go func() {
		_, err := unix.Read(fd, make([]byte, 16))
		res <- err
	}()
	waitFor(t, "the read to block", func() bool { return f.dev.blocked.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go f.srv.Close()
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("blocked read succeeded after Close")
		}
	case <-ctx.Done():
		t.Fatal("Close left a reader blocked")
	}
	<-f.srv.Done()
	if m, _ := findMount(f.mnt); m != nil {
		t.Fatal("still mounted after Close")
	}
}

// TestIdleReadersHoldNoThread checks that a server waiting for requests
// has no thread blocked in read(2) on /dev/fuse: such a thread keeps its
// P, and the runtime's monitor then wakes every few tens of microseconds to
// take it back (a sixth of a CPU under load, see the README's performance
// section). The readers wait in the runtime's poller instead.
func TestIdleReadersHoldNoThread(t *testing.T) {
	f := mountQueue(t)
	if _, err := os.Stat(f.path()); err != nil { // a request, so readers ran
		t.Fatal(err)
	}
	blockedInRead := func() []string {
		var tids []string
		tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
		seen := 0
		for _, p := range tasks {
			b, err := os.ReadFile(p)
			if err != nil {
				continue // the thread ended
			}
			seen++
			// "NR ARG0 ...": read(2) is 0 on amd64 and 63 on arm64.
			fields := strings.Fields(string(b))
			if len(fields) < 2 || fields[0] != fmt.Sprint(unix.SYS_READ) {
				continue
			}
			if fields[1] == fmt.Sprintf("0x%x", f.srv.fd) {
				tids = append(tids, filepath.Base(filepath.Dir(p)))
			}
		}
		if seen == 0 {
			t.Fatal("no /proc/self/task/*/syscall could be read: this test cannot see the threads")
		}
		return tids
	}
	waitFor(t, "no thread blocked in read(2) on /dev/fuse", func() bool { return len(blockedInRead()) == 0 })
	// And it stays so: a reader that blocked would show in one of these.
	for range 20 {
		time.Sleep(5 * time.Millisecond)
		if tids := blockedInRead(); len(tids) != 0 {
			t.Fatalf("threads %v are blocked in read(2) on /dev/fuse", tids)
		}
	}
	// The server still answers.
	if _, err := os.Stat(f.path()); err != nil {
		t.Fatal(err)
	}
}
