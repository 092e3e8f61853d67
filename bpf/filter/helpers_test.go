package filter

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
)

// typicalFilter is what `tcpdump -dd 'udp and dst port 9'` prints for an
// Ethernet interface.
var typicalFilter = []Instruction{
	{0x28, 0, 0, 0x0000000c},  // ldh [12]
	{0x15, 0, 4, 0x000086dd},  // jeq #0x86dd, jt 2 jf 6
	{0x30, 0, 0, 0x00000014},  // ldb [20]
	{0x15, 0, 11, 0x00000011}, // jeq #17, jt 4 jf 15
	{0x28, 0, 0, 0x00000038},  // ldh [56]
	{0x15, 8, 9, 0x00000009},  // jeq #9, jt 14 jf 15
	{0x15, 0, 8, 0x00000800},  // jeq #0x800, jt 7 jf 15
	{0x30, 0, 0, 0x00000017},  // ldb [23]
	{0x15, 0, 6, 0x00000011},  // jeq #17, jt 9 jf 15
	{0x28, 0, 0, 0x00000014},  // ldh [20]
	{0x45, 4, 0, 0x00001fff},  // jset #0x1fff, jt 15 jf 11
	{0xb1, 0, 0, 0x0000000e},  // ldxb 4*([14]&0xf)
	{0x48, 0, 0, 0x00000010},  // ldh [x + 16]
	{0x15, 0, 1, 0x00000009},  // jeq #9, jt 14 jf 15
	{0x06, 0, 0, 0x00040000},  // ret #262144
	{0x06, 0, 0, 0x00000000},  // ret #0
}

const typicalSnap = 262144

// udp4Frame builds an Ethernet/IPv4/UDP frame from 198.18.0.1 to
// 198.18.0.2 with the given destination port, IPv4 header length (in
// 32-bit words) and fragment field.
func udp4Frame(dstPort uint16, ihl int, fragment uint16, payload int) []byte {
	ipLen := ihl*4 + 8 + payload
	frame := make([]byte, 14+ipLen)
	copy(frame[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	ip := frame[14:]
	ip[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	binary.BigEndian.PutUint16(ip[6:], fragment)
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], []byte{198, 18, 0, 1})
	copy(ip[16:20], []byte{198, 18, 0, 2})
	udp := ip[ihl*4:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], dstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+payload))
	return frame
}

// udp6Frame builds an Ethernet/IPv6/UDP frame with the given destination port.
func udp6Frame(dstPort uint16, payload int) []byte {
	frame := make([]byte, 14+40+8+payload)
	binary.BigEndian.PutUint16(frame[12:], 0x86dd)
	ip := frame[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(8+payload))
	ip[6] = 17
	ip[7] = 64
	udp := ip[40:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], dstPort)
	return frame
}

func mustCompile(tb testing.TB, insns []Instruction) *Program {
	tb.Helper()
	p, err := Compile(insns)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return p
}

func toXnet(insns []Instruction) []bpf.Instruction {
	out := make([]bpf.Instruction, len(insns))
	for i, insn := range insns {
		out[i] = bpf.RawInstruction{Op: insn.Code, Jt: insn.Jt, Jf: insn.Jf, K: insn.K}.Disassemble()
	}
	return out
}

func mustXnetVM(tb testing.TB, insns []Instruction) *bpf.VM {
	tb.Helper()
	vm, err := bpf.NewVM(toXnet(insns))
	if err != nil {
		tb.Fatalf("bpf.NewVM: %v", err)
	}
	return vm
}

// engine is one way of running a program.
type engine struct {
	name string
	p    *Program
}

// engines compiles prog for each way Run can execute it: the interpreter
// with and without fused operations, and the machine code where the
// architecture has it (required there, so that a failed translation cannot
// hide behind the interpreter).
func engines(tb testing.TB, prog []Instruction) []engine {
	tb.Helper()
	var out []engine
	for _, fuse := range []bool{true, false} {
		p, err := compile(prog, fuse)
		if err != nil {
			tb.Fatalf("compile(fuse=%v): %v", fuse, err)
		}
		name := "plain"
		if fuse {
			name = "fused"
		}
		out = append(out, engine{name, p})
	}
	if p := mustCompile(tb, prog); hasJIT && len(prog) > 0 {
		if p.jit == nil {
			tb.Fatal("Compile gave no machine code")
		}
		out = append(out, engine{"jit", p})
	}
	return out
}
