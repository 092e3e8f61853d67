package filter

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

const hasJIT = true

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
