//go:build linux

package ebpf

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestAsmResolvesLabels(t *testing.T) {
	var a Asm
	a.JumpIf(JEQ, R1, 0, "end")
	a.Goto("end")
	a.Emit(MovImm(R0, 1))
	a.Label("end")
	a.Emit(Exit())
	p, err := a.Program()
	if err != nil {
		t.Fatal(err)
	}
	if p[0].Off != 2 || p[1].Off != 1 {
		t.Fatalf("offsets %d, %d; want 2, 1", p[0].Off, p[1].Off)
	}
	a.Goto("nowhere")
	if _, err := a.Program(); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("missing label: %v", err)
	}
}

func TestEncodeLayout(t *testing.T) {
	b := encode([]Insn{StoreW(R8, -4, R7), LoadMapValue(R1, 9, 16)[0], LoadMapValue(R1, 9, 16)[1]})
	want := []byte{
		0x63, 0x78, 0xfc, 0xff, 0, 0, 0, 0, // stxw [r8-4], r7
		0x18, 0x21, 0, 0, 9, 0, 0, 0, // lddw r1, map value (fd 9) ...
		0, 0, 0, 0, 16, 0, 0, 0, // ... + 16
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded\n%x\nwant\n%x", b, want)
	}
}

// requireBPF fails under CI (the daemon's default source needs bpf(2)) and
// skips elsewhere when the kernel refuses ring buffers.
func requireBPF(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	fd, err := NewRingBuffer(os.Getpagesize())
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("CI=true but bpf(2) ring buffers are not available: %v", err)
		}
		t.Skipf("no BPF ring buffers: %v", err)
	}
	unix.Close(fd)
}

// A program that writes its packet's length into a ring buffer record and
// counts itself: loading, the test run, the counters and the consumer's
// view of the record (including one the program discarded).
func TestRingBufferRoundTrip(t *testing.T) {
	requireBPF(t)
	const size = 1 << 16
	ring, err := NewRingBuffer(size)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ring)
	counts, err := NewCounters(2)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(counts)
	var a Asm
	a.Emit(MovReg(R6, R1), LoadW(R7, R6, 0))
	a.Emit2(LoadMapValue(R1, counts, 8))
	a.Emit(MovImm(R2, 1), AtomicAddDW(R1, 0, R2))
	a.Emit2(LoadMapFD(R1, ring))
	a.Emit(MovImm(R2, 16), MovImm(R3, 0), Call(FuncRingbufReserve))
	a.JumpIf(JEQ, R0, 0, "out")
	a.Emit(StoreW(R0, 0, R7), MovReg(R1, R0), MovImm(R2, 0))
	a.JumpIf(JGT, R7, 100, "discard")
	a.Emit(Call(FuncRingbufSubmit))
	a.Goto("out")
	a.Label("discard")
	a.Emit(Call(FuncRingbufDiscard))
	a.Label("out")
	a.Emit(MovImm(R0, 7), Exit())
	insns, err := a.Program()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := LoadSchedCLS("roundtrip", insns, unix.BPF_TCX_EGRESS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(prog)
	rb, err := OpenRingBuffer(ring, size)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	for _, n := range []int{60, 200, 90} {
		if ret, err := TestRun(prog, make([]byte, n)); err != nil || ret != 7 {
			t.Fatalf("test run of %d bytes: %d, %v", n, ret, err)
		}
	}
	var got []uint32
	pos := rb.Consumed()
	for pos < rb.Produced() {
		body, next, ready := rb.Record(pos)
		if !ready {
			t.Fatal("a record still busy after the runs ended")
		}
		if body != nil {
			if len(body) != 16 {
				t.Fatalf("record of %d bytes, want 16", len(body))
			}
			got = append(got, binary.NativeEndian.Uint32(body))
		}
		pos = next
	}
	rb.Release(pos)
	if len(got) != 2 || got[0] != 60 || got[1] != 90 {
		t.Fatalf("records %v, want [60 90] (200 discarded)", got)
	}
	if rb.Consumed() != rb.Produced() {
		t.Fatal("release did not reach the producer")
	}
	c := make([]uint64, 2)
	if err := ReadCounters(counts, c); err != nil || c[0] != 0 || c[1] != 3 {
		t.Fatalf("counters %v, %v; want [0 3]", c, err)
	}
}

// The verifier's refusal comes back with its reason.
func TestLoadErrorCarriesVerifierLog(t *testing.T) {
	requireBPF(t)
	_, err := LoadSchedCLS("bad", []Insn{MovReg(R0, R5), Exit()}, unix.BPF_TCX_EGRESS)
	if err == nil || !strings.Contains(err.Error(), "R5 !read_ok") {
		t.Fatalf("load of a program reading an unset register: %v", err)
	}
}

// The attribute structs are prefixes of union bpf_attr: their layout is the
// kernel's, whatever Go would choose.
func TestAttrLayouts(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"map create", unsafe.Sizeof(mapCreateAttr{}), 20},
		{"map element", unsafe.Sizeof(mapElemAttr{}), 32},
		{"prog load", unsafe.Sizeof(progLoadAttr{}), 72},
		{"prog load log_buf", unsafe.Offsetof(progLoadAttr{}.logBuf), 32},
		{"link create", unsafe.Sizeof(linkCreateAttr{}), 32},
		{"test run", unsafe.Sizeof(testRunAttr{}), 40},
		{"test run data_out", unsafe.Offsetof(testRunAttr{}.dataOut), 24},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
}
