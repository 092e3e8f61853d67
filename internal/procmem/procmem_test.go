package procmem

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

func TestReadWriteOwnMemory(t *testing.T) {
	pid := os.Getpid()
	src := []byte("hello, process")
	dst := make([]byte, len(src))
	if err := Read(pid, addr(src), dst); err != nil || string(dst) != string(src) {
		t.Fatalf("Read: %q, %v", dst, err)
	}
	a, b := make([]byte, 3), make([]byte, 2)
	if err := Write(pid, Part{addr(a), []byte("abc")}, Part{Addr: 0}, Part{addr(b), []byte("de")}); err != nil {
		t.Fatal(err)
	}
	if string(a) != "abc" || string(b) != "de" {
		t.Fatalf("Write: %q %q", a, b)
	}
	if err := Write(pid); err != nil {
		t.Fatalf("empty Write: %v", err)
	}
}

func TestBadAddressIsEFAULT(t *testing.T) {
	buf := make([]byte, 8)
	if err := Read(os.Getpid(), 8, buf); err != unix.EFAULT {
		t.Fatalf("Read of address 8: %v, want EFAULT", err)
	}
	if err := Write(os.Getpid(), Part{8, buf}); err != unix.EFAULT {
		t.Fatalf("Write to address 8: %v, want EFAULT", err)
	}
}
