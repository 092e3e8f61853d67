package tests

import (
	"os"
	"testing"
	"unsafe"

	"github.com/bpffs/bpffs/ioctl"
	"golang.org/x/sys/unix"
)

func ioctlUint(fd int, cmd uint32, v *uint32) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(unsafe.Pointer(v)))
	if e != 0 {
		return e
	}
	return nil
}

// The daemon's limits: files open at once (ENFILE beyond) and buffer memory
// of all descriptors together (ENOBUFS beyond); a refusal changes nothing.
func TestLimitsOnDescriptorsAndBufferMemory(t *testing.T) {
	e := startDaemon(t, 1, "-maxdescriptors", "3", "-maxbufmem", "1048576")
	var fds []int
	for i := 0; i < 3; i++ {
		fd, err := unix.Open(e.Node("bpf"), unix.O_RDWR, 0)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		fds = append(fds, fd)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if _, err := unix.Open(e.Node("bpf"), unix.O_RDWR, 0); err != unix.ENFILE {
		t.Fatalf("fourth open: %v, want ENFILE", err)
	}
	if _, err := os.ReadFile(e.Node("stats")); err == nil {
		t.Fatal("the stats file opened beyond the limit")
	}
	// 2 × 512 KiB fills the 1 MiB budget; the next descriptor gets ENOBUFS
	// and keeps its default buffer size.
	v := uint32(524288)
	if err := ioctlUint(fds[0], ioctl.BIOCSBLEN, &v); err != nil {
		t.Fatal(err)
	}
	v = 524288
	if err := ioctlUint(fds[1], ioctl.BIOCSBLEN, &v); err != unix.ENOBUFS {
		t.Fatalf("BIOCSBLEN beyond the budget: %v, want ENOBUFS", err)
	}
	if err := ioctlUint(fds[1], ioctl.BIOCGBLEN, &v); err != nil || v != 4096 {
		t.Fatalf("after the refusal BIOCGBLEN = %d, %v; want 4096", v, err)
	}
	// Closing gives the memory back (once the daemon sees the release; the
	// stats file cannot be used to wait here: it would need a fourth slot).
	unix.Close(fds[0])
	fds = fds[1:]
	waitFor(t, "the memory of the closed descriptor to come back", func() bool {
		v := uint32(524288)
		return ioctlUint(fds[0], ioctl.BIOCSBLEN, &v) == nil
	})
}
