//go:build amd64 && linux

package filter

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hasJIT tells whether programs must get machine code here: hosts whose
// policy forbids executable memory (SELinux deny_execmem, PaX) interpret
// them, as Compile then quietly does.
var hasJIT = func() bool {
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false
	}
	defer unix.Munmap(mem)
	return unix.Mprotect(mem, unix.PROT_READ|unix.PROT_EXEC) == nil
}()

// mapping returns the /proc/self/maps line of the mapping holding addr.
func mapping(t *testing.T, addr uintptr) string {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && lo <= addr && addr < hi {
			return line
		}
	}
	return ""
}

// The machine code is never writable, and its memory goes with the program.
func TestJITMemory(t *testing.T) {
	requireJIT(t)
	p := mustCompile(t, typicalFilter)
	entry := p.jit.entry
	line := mapping(t, entry)
	if fields := strings.Fields(line); len(fields) < 2 || fields[1] != "r-xp" {
		t.Fatalf("machine code mapped as %q, want r-xp", line)
	}
	p = nil
	for deadline := time.Now().Add(5 * time.Second); mapping(t, entry) != ""; {
		if time.Now().After(deadline) {
			t.Fatalf("machine code still mapped after its program was collected: %q", mapping(t, entry))
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// SetJIT(false) leaves programs to the interpreter.
func TestSetJIT(t *testing.T) {
	requireJIT(t)
	SetJIT(false)
	p := mustCompile(t, typicalFilter)
	SetJIT(true)
	if p.jit != nil {
		t.Fatal("machine code with SetJIT(false)")
	}
	if q := mustCompile(t, typicalFilter); q.jit == nil {
		t.Fatal("no machine code with SetJIT(true)")
	}
	pkt := udp4Frame(9, 5, 0, 8)
	if got := p.Run(pkt, uint32(len(pkt))); got != typicalSnap {
		t.Fatalf("interpreted Run = %d", got)
	}
}

// Machine code beyond jitLimit is not mapped: such programs are interpreted,
// and the room comes back once the programs holding it are collected.
func TestJITLimit(t *testing.T) {
	requireJIT(t)
	defer jitLimit.Store(jitLimit.Load())
	page := int64(os.Getpagesize())
	jitLimit.Store(jitMapped.Load() + page)
	first := mustCompile(t, typicalFilter)
	if first.jit == nil {
		t.Fatal("no machine code within the limit")
	}
	second := mustCompile(t, typicalFilter)
	if second.jit != nil {
		t.Fatal("machine code beyond the limit")
	}
	pkt := udp4Frame(9, 5, 0, 8)
	if got := second.Run(pkt, uint32(len(pkt))); got != typicalSnap {
		t.Fatalf("Run beyond the limit = %d", got)
	}
	first = nil
	for deadline := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		if p := mustCompile(t, typicalFilter); p.jit != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collected program's code never gave its room back (mapped %d, limit %d)", jitMapped.Load(), jitLimit.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// A load from a client's shared page that faults (its file was truncated)
// must become a recoverable panic in the machine code as in the
// interpreter: the zero-copy catch path relies on it (bpf/direct.go).
func TestJITFaultIsRecoverable(t *testing.T) {
	requireJIT(t)
	fd, err := unix.MemfdCreate("jitfault", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	page := os.Getpagesize()
	if err := unix.Ftruncate(fd, int64(2*page)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Ftruncate(fd, 0); err != nil {
		t.Fatal(err)
	}
	run := func(p *Program) (faulted bool) {
		defer func(old bool) {
			debug.SetPanicOnFault(old)
			faulted = recover() != nil
		}(debug.SetPanicOnFault(true))
		p.Run(mem[:page], uint32(page))
		return false
	}
	for _, prog := range [][]Instruction{
		{stmt(classLD|sizeB|modeABS, 100), retAReg},
		{ldxImm(3), stmt(classLD|sizeW|modeIND, 100), retAReg},
	} {
		p := mustCompile(t, prog)
		if p.jit == nil {
			t.Fatal("no machine code")
		}
		for range 3 {
			if !run(p) {
				t.Fatalf("no fault reading a truncated page: %v", prog)
			}
		}
	}
}

func requireJIT(t *testing.T) {
	if !hasJIT {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI host forbids executable memory: the machine code is untested")
		}
		t.Skip("this host forbids executable memory: programs are interpreted")
	}
}
