package filter

import (
	"sync"
	"testing"
)

func stmt(code uint16, k uint32) Instruction { return Instruction{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) Instruction {
	return Instruction{Code: code, Jt: jt, Jf: jf, K: k}
}

var (
	retAReg      = stmt(classRET|retA, 0)
	tax          = stmt(classMISC|miscTAX, 0)
	txa          = stmt(classMISC|miscTXA, 0)
	ldImm        = func(k uint32) Instruction { return stmt(classLD|sizeW|modeIMM, k) }
	ldxImm       = func(k uint32) Instruction { return stmt(classLDX|sizeW|modeIMM, k) }
	retConst     = func(k uint32) Instruction { return stmt(classRET|retK, k) }
	aluK         = func(op uint16, k uint32) Instruction { return stmt(classALU|op|srcK, k) }
	aluX         = func(op uint16) Instruction { return stmt(classALU|op|srcX, 0) }
	eightBytes   = []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}
	ipv4IHL5Byte = []byte{0x45, 0xff}
)

type runCase struct {
	name    string
	prog    []Instruction
	pkt     []byte
	wireLen uint32
	want    uint32
}

// runCases covers every opcode the validator accepts and the edges of the
// execution rules. Several programs end in "ret #99" after an operation that
// must reject, so that a missing rejection shows as 99 instead of 0.
var runCases = []runCase{
	// Loads into A.
	{"ld #k", []Instruction{ldImm(0xdeadbeef), retAReg}, nil, 0, 0xdeadbeef},
	{"ld len", []Instruction{stmt(classLD|sizeW|modeLEN, 0), retAReg}, eightBytes, 1500, 1500},
	{"ld [0] word", []Instruction{stmt(classLD|sizeW|modeABS, 0), retAReg}, eightBytes, 8, 0x01020304},
	{"ld word ending exactly at the end", []Instruction{stmt(classLD|sizeW|modeABS, 4), retAReg}, eightBytes, 8, 0x05060708},
	{"ld word one byte past the end", []Instruction{stmt(classLD|sizeW|modeABS, 5), retConst(99)}, eightBytes, 8, 0},
	{"ld word at huge offset", []Instruction{stmt(classLD|sizeW|modeABS, 0xfffffffe), retConst(99)}, eightBytes, 8, 0},
	{"ld word of empty packet", []Instruction{stmt(classLD|sizeW|modeABS, 0), retConst(99)}, nil, 0, 0},
	{"ldh ending exactly at the end", []Instruction{stmt(classLD|sizeH|modeABS, 6), retAReg}, eightBytes, 8, 0x0708},
	{"ldh one byte past the end", []Instruction{stmt(classLD|sizeH|modeABS, 7), retConst(99)}, eightBytes, 8, 0},
	{"ldh at 0xffffffff", []Instruction{stmt(classLD|sizeH|modeABS, 0xffffffff), retConst(99)}, eightBytes, 8, 0},
	{"ldb last byte", []Instruction{stmt(classLD|sizeB|modeABS, 7), retAReg}, eightBytes, 8, 0x08},
	{"ldb just past the end", []Instruction{stmt(classLD|sizeB|modeABS, 8), retConst(99)}, eightBytes, 8, 0},
	{"ld [x+k] word", []Instruction{ldxImm(2), stmt(classLD|sizeW|modeIND, 2), retAReg}, eightBytes, 8, 0x05060708},
	{"ld [x+k] word past the end", []Instruction{ldxImm(2), stmt(classLD|sizeW|modeIND, 3), retConst(99)}, eightBytes, 8, 0},
	{"ldh [x+k]", []Instruction{ldxImm(2), stmt(classLD|sizeH|modeIND, 4), retAReg}, eightBytes, 8, 0x0708},
	{"ldh [x+k] past the end", []Instruction{ldxImm(2), stmt(classLD|sizeH|modeIND, 5), retConst(99)}, eightBytes, 8, 0},
	{"ldb [x+k]", []Instruction{ldxImm(2), stmt(classLD|sizeB|modeIND, 5), retAReg}, eightBytes, 8, 0x08},
	{"ldb [x+k] past the end", []Instruction{ldxImm(2), stmt(classLD|sizeB|modeIND, 6), retConst(99)}, eightBytes, 8, 0},
	// X+k wraps to 0 in 32 bits; the kernel checks the overflow and rejects.
	{"ldb [x+k] X+k overflows", []Instruction{ldxImm(0xffffffff), stmt(classLD|sizeB|modeIND, 1), retConst(99)}, eightBytes, 8, 0},
	{"ldb [x+k] k+X overflows", []Instruction{ldxImm(1), stmt(classLD|sizeB|modeIND, 0xffffffff), retConst(99)}, eightBytes, 8, 0},
	{"ld [x+k] word overflows", []Instruction{ldxImm(0xfffffffc), stmt(classLD|sizeW|modeIND, 4), retConst(99)}, eightBytes, 8, 0},
	{"ldh [x+k] overflows", []Instruction{ldxImm(0xfffffffe), stmt(classLD|sizeH|modeIND, 2), retConst(99)}, eightBytes, 8, 0},

	// Loads into X.
	{"ldx #k", []Instruction{ldxImm(77), txa, retAReg}, nil, 0, 77},
	{"ldx len", []Instruction{stmt(classLDX|sizeW|modeLEN, 0), txa, retAReg}, eightBytes, 9000, 9000},
	{"ldxb msh", []Instruction{stmt(classLDX|sizeB|modeMSH, 0), txa, retAReg}, ipv4IHL5Byte, 2, 20},
	{"ldxb msh ignores the high nibble", []Instruction{stmt(classLDX|sizeB|modeMSH, 1), txa, retAReg}, ipv4IHL5Byte, 2, 60},
	{"ldxb msh past the end", []Instruction{stmt(classLDX|sizeB|modeMSH, 2), retConst(99)}, ipv4IHL5Byte, 2, 0},

	// Scratch memory.
	{"scratch starts at zero", []Instruction{stmt(classLD|sizeW|modeMEM, 0), aluK(aluADD, 1), retAReg}, nil, 0, 1},
	{"ldx scratch starts at zero", []Instruction{ldxImm(5), stmt(classLDX|sizeW|modeMEM, 15), txa, aluK(aluADD, 1), retAReg}, nil, 0, 1},
	{"st then ld", []Instruction{ldImm(7), stmt(classST, 3), ldImm(0), stmt(classLD|sizeW|modeMEM, 3), retAReg}, nil, 0, 7},
	{"stx then ldx", []Instruction{ldxImm(9), stmt(classSTX, 15), ldxImm(0), stmt(classLDX|sizeW|modeMEM, 15), txa, retAReg}, nil, 0, 9},
	{"slots are separate", []Instruction{ldImm(1), stmt(classST, 0), ldImm(2), stmt(classST, 1), stmt(classLD|sizeW|modeMEM, 0), retAReg}, nil, 0, 1},

	// ALU with a constant.
	{"add #k", []Instruction{ldImm(40), aluK(aluADD, 2), retAReg}, nil, 0, 42},
	{"add #k wraps", []Instruction{ldImm(0xffffffff), aluK(aluADD, 3), retAReg}, nil, 0, 2},
	{"sub #k wraps", []Instruction{ldImm(1), aluK(aluSUB, 2), retAReg}, nil, 0, 0xffffffff},
	{"mul #k wraps", []Instruction{ldImm(0x80000001), aluK(aluMUL, 4), retAReg}, nil, 0, 4},
	{"div #k", []Instruction{ldImm(100), aluK(aluDIV, 7), retAReg}, nil, 0, 14},
	{"mod #k", []Instruction{ldImm(100), aluK(aluMOD, 7), retAReg}, nil, 0, 2},
	{"or #k", []Instruction{ldImm(0xf0), aluK(aluOR, 0x0f), retAReg}, nil, 0, 0xff},
	{"and #k", []Instruction{ldImm(0xf0f0), aluK(aluAND, 0xff), retAReg}, nil, 0, 0xf0},
	{"xor #k", []Instruction{ldImm(0xff00), aluK(aluXOR, 0x0ff0), retAReg}, nil, 0, 0xf0f0},
	{"lsh #k", []Instruction{ldImm(3), aluK(aluLSH, 4), retAReg}, nil, 0, 48},
	{"lsh #31", []Instruction{ldImm(3), aluK(aluLSH, 31), retAReg}, nil, 0, 0x80000000},
	// Counts of 32 and more are taken modulo 32, as amd64 and arm64 do.
	{"lsh #32 is lsh #0", []Instruction{ldImm(3), aluK(aluLSH, 32), retAReg}, nil, 0, 3},
	{"lsh #33 is lsh #1", []Instruction{ldImm(3), aluK(aluLSH, 33), retAReg}, nil, 0, 6},
	{"rsh #k", []Instruction{ldImm(0x80), aluK(aluRSH, 4), retAReg}, nil, 0, 8},
	{"rsh #36 is rsh #4", []Instruction{ldImm(0x80), aluK(aluRSH, 36), retAReg}, nil, 0, 8},
	{"neg", []Instruction{ldImm(1), stmt(classALU|aluNEG, 0), retAReg}, nil, 0, 0xffffffff},
	{"neg of zero", []Instruction{ldImm(0), stmt(classALU|aluNEG, 0), aluK(aluADD, 5), retAReg}, nil, 0, 5},

	// ALU with X.
	{"add x", []Instruction{ldxImm(2), ldImm(40), aluX(aluADD), retAReg}, nil, 0, 42},
	{"sub x", []Instruction{ldxImm(2), ldImm(1), aluX(aluSUB), retAReg}, nil, 0, 0xffffffff},
	{"mul x", []Instruction{ldxImm(6), ldImm(7), aluX(aluMUL), retAReg}, nil, 0, 42},
	{"div x", []Instruction{ldxImm(7), ldImm(100), aluX(aluDIV), retAReg}, nil, 0, 14},
	{"div x by zero rejects", []Instruction{ldxImm(0), ldImm(100), aluX(aluDIV), retConst(99)}, nil, 0, 0},
	{"mod x", []Instruction{ldxImm(7), ldImm(100), aluX(aluMOD), retAReg}, nil, 0, 2},
	{"mod x by zero rejects", []Instruction{ldxImm(0), ldImm(100), aluX(aluMOD), retConst(99)}, nil, 0, 0},
	{"or x", []Instruction{ldxImm(0x0f), ldImm(0xf0), aluX(aluOR), retAReg}, nil, 0, 0xff},
	{"and x", []Instruction{ldxImm(0xff), ldImm(0xf0f0), aluX(aluAND), retAReg}, nil, 0, 0xf0},
	{"xor x", []Instruction{ldxImm(0x0ff0), ldImm(0xff00), aluX(aluXOR), retAReg}, nil, 0, 0xf0f0},
	{"lsh x", []Instruction{ldxImm(4), ldImm(3), aluX(aluLSH), retAReg}, nil, 0, 48},
	{"lsh x by 33 is lsh 1", []Instruction{ldxImm(33), ldImm(3), aluX(aluLSH), retAReg}, nil, 0, 6},
	{"lsh x by 32 is lsh 0", []Instruction{ldxImm(32), ldImm(3), aluX(aluLSH), retAReg}, nil, 0, 3},
	{"rsh x", []Instruction{ldxImm(4), ldImm(0x80), aluX(aluRSH), retAReg}, nil, 0, 8},
	{"rsh x by 0xffffffff is rsh 31", []Instruction{ldxImm(0xffffffff), ldImm(0x80000000), aluX(aluRSH), retAReg}, nil, 0, 1},

	// Jumps.
	{"ja", []Instruction{stmt(classJMP|jmpJA, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"ja 0", []Instruction{stmt(classJMP|jmpJA, 0), retConst(1), retConst(2)}, nil, 0, 1},
	{"jeq #k true", []Instruction{ldImm(5), jump(classJMP|jmpJEQ|srcK, 5, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jeq #k false", []Instruction{ldImm(6), jump(classJMP|jmpJEQ|srcK, 5, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jgt #k is unsigned", []Instruction{ldImm(0x80000000), jump(classJMP|jmpJGT|srcK, 1, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jgt #k equal is false", []Instruction{ldImm(5), jump(classJMP|jmpJGT|srcK, 5, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jge #k equal", []Instruction{ldImm(5), jump(classJMP|jmpJGE|srcK, 5, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jge #k less", []Instruction{ldImm(4), jump(classJMP|jmpJGE|srcK, 5, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jset #k", []Instruction{ldImm(0x0100), jump(classJMP|jmpJSET|srcK, 0x1fff, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jset #k no common bit", []Instruction{ldImm(0x2000), jump(classJMP|jmpJSET|srcK, 0x1fff, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jeq x", []Instruction{ldxImm(5), ldImm(5), jump(classJMP|jmpJEQ|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jeq x false", []Instruction{ldxImm(5), ldImm(4), jump(classJMP|jmpJEQ|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jgt x is unsigned", []Instruction{ldxImm(1), ldImm(0xffffffff), jump(classJMP|jmpJGT|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jgt x equal is false", []Instruction{ldxImm(1), ldImm(1), jump(classJMP|jmpJGT|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jge x equal", []Instruction{ldxImm(1), ldImm(1), jump(classJMP|jmpJGE|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jge x less", []Instruction{ldxImm(2), ldImm(1), jump(classJMP|jmpJGE|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jset x", []Instruction{ldxImm(3), ldImm(2), jump(classJMP|jmpJSET|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 1},
	{"jset x no common bit", []Instruction{ldxImm(4), ldImm(3), jump(classJMP|jmpJSET|srcX, 0, 0, 1), retConst(1), retConst(2)}, nil, 0, 2},
	{"jump with both offsets", []Instruction{ldImm(1), jump(classJMP|jmpJEQ|srcK, 1, 2, 1), retConst(1), retConst(2), retConst(3)}, nil, 0, 3},
	// A jump that lands on a jeq the compiler fused with the load before it
	// must run the plain jeq, not the load.
	{"jump into a fused pair", []Instruction{
		ldImm(5), stmt(classJMP|jmpJA, 1), stmt(classLD|sizeH|modeABS, 0),
		jump(classJMP|jmpJEQ|srcK, 5, 0, 1), retConst(10), retConst(20)}, eightBytes, 8, 10},

	// Returns and register moves.
	{"ret #k", []Instruction{retConst(262144)}, nil, 0, 262144},
	{"ret #0", []Instruction{retConst(0)}, eightBytes, 8, 0},
	// Run does not clamp: the caller does.
	{"ret a beyond the packet", []Instruction{ldImm(100000), retAReg}, eightBytes, 8, 100000},
	{"ret a of 0xffffffff", []Instruction{ldImm(0xffffffff), retAReg}, eightBytes, 8, 0xffffffff},
	{"tax", []Instruction{ldImm(12), tax, ldImm(0), txa, retAReg}, nil, 0, 12},
	{"txa", []Instruction{ldxImm(13), txa, retAReg}, nil, 0, 13},
}

func TestRun(t *testing.T) {
	for _, tc := range runCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range engines(t, tc.prog) {
				if got := e.p.Run(tc.pkt, tc.wireLen); got != tc.want {
					t.Errorf("Run(%s) = %#x, want %#x", e.name, got, tc.want)
				}
			}
		})
	}
}

// TestRunCoversEveryOpcode makes sure runCases exercises the whole accepted
// opcode set, so that adding an opcode without a test fails.
func TestRunCoversEveryOpcode(t *testing.T) {
	seen := map[uint16]bool{}
	for _, tc := range runCases {
		for _, insn := range tc.prog {
			seen[insn.Code] = true
		}
	}
	for _, c := range acceptedCodes {
		if !seen[uint16(c.code)] {
			t.Errorf("no run case uses opcode %#04x", c.code)
		}
	}
}

func TestTypicalFilter(t *testing.T) {
	p := mustCompile(t, typicalFilter)
	plain, err := compile(typicalFilter, false)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		pkt  []byte
		want uint32
	}{
		{"udp4 to port 9", udp4Frame(9, 5, 0, 32), typicalSnap},
		{"udp4 to port 53", udp4Frame(53, 5, 0, 32), 0},
		{"udp4 with options to port 9", udp4Frame(9, 7, 0, 32), typicalSnap},
		{"udp4 later fragment", udp4Frame(9, 5, 0x0010, 32), 0},
		{"udp4 first fragment with MF", udp4Frame(9, 5, 0x2000, 32), typicalSnap},
		{"udp6 to port 9", udp6Frame(9, 16), typicalSnap},
		{"udp6 to port 10", udp6Frame(10, 16), 0},
		{"truncated before the port", udp4Frame(9, 5, 0, 0)[:36], 0},
		{"empty", nil, 0},
	}
	for _, tc := range cases {
		for name, prog := range map[string]*Program{"fused": p, "plain": plain} {
			if got := prog.Run(tc.pkt, uint32(len(tc.pkt))); got != tc.want {
				t.Errorf("%s %s: Run = %d, want %d", name, tc.name, got, tc.want)
			}
		}
	}
	// The fusions this filter is meant to get; a regression here is a
	// silent slowdown.
	wantKinds := map[int]opKind{0: opLdAbsHJeqJeq, 2: opLdAbsBJeq, 4: opLdAbsHJeqRet, 7: opLdAbsBJeq, 9: opLdAbsHJset, 11: opLdMshIndHJeqRet}
	for i, want := range wantKinds {
		if got := p.ops[i].kind; got != want {
			t.Errorf("ops[%d].kind = %d, want %d", i, got, want)
		}
	}
}

// TestFusedMatchesPlain runs every fused operation against the unfused
// instructions it stands for, over packets cut at every length, with both
// ordinary and RET targets.
func TestFusedMatchesPlain(t *testing.T) {
	loads := []struct {
		name   string
		prefix []Instruction
	}{
		{"ld", []Instruction{stmt(classLD|sizeW|modeABS, 3)}},
		{"ldh", []Instruction{stmt(classLD|sizeH|modeABS, 5)}},
		{"ldb", []Instruction{stmt(classLD|sizeB|modeABS, 6)}},
		{"ld ind", []Instruction{ldxImm(2), stmt(classLD|sizeW|modeIND, 1)}},
		{"ldh ind", []Instruction{ldxImm(2), stmt(classLD|sizeH|modeIND, 3)}},
		{"ldb ind", []Instruction{ldxImm(2), stmt(classLD|sizeB|modeIND, 4)}},
		{"msh ld ind", []Instruction{stmt(classLDX|sizeB|modeMSH, 0), stmt(classLD|sizeW|modeIND, 0)}},
		{"msh ldh ind", []Instruction{stmt(classLDX|sizeB|modeMSH, 0), stmt(classLD|sizeH|modeIND, 2)}},
		{"msh ldb ind", []Instruction{stmt(classLDX|sizeB|modeMSH, 1), stmt(classLD|sizeB|modeIND, 3)}},
	}
	conds := []uint16{jmpJEQ, jmpJGT, jmpJGE, jmpJSET}
	consts := []uint32{0, 1, 0x0304, 0x05060708, 0x08, 0xffffffff}
	// Byte 0 is 0x01 so that msh yields X = 4.
	full := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c}
	seenKinds := map[opKind]bool{}
	for _, load := range loads {
		for _, cond := range conds {
			for _, c := range consts {
				for _, toRet := range []bool{false, true} {
					prog := append([]Instruction(nil), load.prefix...)
					if toRet {
						prog = append(prog, jump(classJMP|cond|srcK, c, 0, 1), retConst(111), retConst(222))
					} else {
						prog = append(prog, jump(classJMP|cond|srcK, c, 0, 1), aluK(aluADD, 1000), retAReg)
					}
					fused, err := compile(prog, true)
					if err != nil {
						t.Fatal(err)
					}
					plain, err := compile(prog, false)
					if err != nil {
						t.Fatal(err)
					}
					for j := range prog {
						seenKinds[fused.ops[j].kind] = true
					}
					for n := 0; n <= len(full); n++ {
						pkt := full[:n:n]
						if got, want := fused.Run(pkt, 64), plain.Run(pkt, 64); got != want {
							t.Errorf("%s cond %#x k %#x ret %v len %d: fused %#x, plain %#x", load.name, cond, c, toRet, n, got, want)
						}
					}
				}
			}
		}
	}
	// Every kind between opLdAbsWJeq and the last Ret form, and nothing else.
	for k := opLdAbsWJeq; k <= opLdMshIndBJsetRet; k++ {
		if !seenKinds[k] {
			t.Errorf("fused kind %d never produced", k)
		}
	}
}

func TestJeqJeqMatchesPlain(t *testing.T) {
	loads := []Instruction{
		stmt(classLD|sizeW|modeABS, 0),
		stmt(classLD|sizeH|modeABS, 2),
		stmt(classLD|sizeB|modeABS, 3),
		stmt(classLD|sizeW|modeIND, 0),
		stmt(classLD|sizeH|modeIND, 2),
		stmt(classLD|sizeB|modeIND, 3),
	}
	pkts := [][]byte{{0x01, 0x02, 0x03, 0x04}, {0x05, 0x06, 0x07, 0x08}, {0xaa, 0xbb, 0xcc, 0xdd}, {0x01, 0x02, 0x03}, nil}
	seen := map[opKind]bool{}
	for _, load := range loads {
		for _, first := range []uint32{0x01020304, 0x0304, 0x04} {
			second := first + 0x04040404
			if load.K == 2 {
				second = first + 0x0404
			} else if load.K == 3 {
				second = first + 4
			}
			prog := []Instruction{
				ldxImm(0),
				load,
				jump(classJMP|jmpJEQ|srcK, first, 0, 1),
				retConst(1),
				jump(classJMP|jmpJEQ|srcK, second, 0, 1),
				retConst(2),
				retConst(3),
			}
			fused, err := compile(prog, true)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := compile(prog, false)
			if err != nil {
				t.Fatal(err)
			}
			seen[fused.ops[1].kind] = true
			for _, pkt := range pkts {
				if got, want := fused.Run(pkt, 4), plain.Run(pkt, 4); got != want {
					t.Errorf("load %#x first %#x pkt %x: fused %d, plain %d", load.Code, first, pkt, got, want)
				}
			}
		}
	}
	for k := opLdAbsWJeqJeq; k <= opLdIndBJeqJeq; k++ {
		if !seen[k] {
			t.Errorf("kind %d never produced", k)
		}
	}
}

func TestNilAndEmptyProgram(t *testing.T) {
	var nilProgram *Program
	if got := nilProgram.Run(eightBytes, 8); got != 0xFFFFFFFF {
		t.Errorf("nil Run = %#x, want 0xffffffff", got)
	}
	if got := nilProgram.Len(); got != 0 {
		t.Errorf("nil Len = %d", got)
	}
	if got := nilProgram.Instructions(); len(got) != 0 {
		t.Errorf("nil Instructions = %v", got)
	}
	empty := mustCompile(t, nil)
	if got := empty.Run(eightBytes, 8); got != 0xFFFFFFFF {
		t.Errorf("empty Run = %#x, want 0xffffffff", got)
	}
	if got := empty.Len(); got != 0 {
		t.Errorf("empty Len = %d", got)
	}
}

func TestInstructionsIsACopy(t *testing.T) {
	prog := []Instruction{ldImm(1), retAReg}
	p := mustCompile(t, prog)
	prog[0].K = 2 // the caller's slice must not reach the Program
	got := p.Instructions()
	if p.Len() != 2 || len(got) != 2 || got[0].K != 1 {
		t.Fatalf("Instructions = %v, Len = %d", got, p.Len())
	}
	got[0].K = 3
	if p.Instructions()[0].K != 1 || p.Run(nil, 0) != 1 {
		t.Fatal("modifying the returned slice changed the Program")
	}
}

func TestCompileRejectsInvalid(t *testing.T) {
	if p, err := Compile([]Instruction{ldImm(1)}); err == nil || p != nil {
		t.Fatalf("Compile of a program without RET = %v, %v", p, err)
	}
}

func TestRunDoesNotAllocate(t *testing.T) {
	p := mustCompile(t, typicalFilter)
	pkt := udp4Frame(9, 5, 0, 64)
	scratch := mustCompile(t, []Instruction{ldImm(7), stmt(classST, 3), stmt(classLD|sizeW|modeMEM, 3), retAReg})
	allocs := testing.AllocsPerRun(1000, func() {
		p.Run(pkt, uint32(len(pkt)))
		scratch.Run(pkt, uint32(len(pkt)))
	})
	if allocs != 0 {
		t.Fatalf("Run allocates %v times per call", allocs)
	}
}

func TestConcurrentRun(t *testing.T) {
	p := mustCompile(t, typicalFilter)
	match, nomatch := udp4Frame(9, 5, 0, 16), udp4Frame(10, 5, 0, 16)
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if p.Run(match, uint32(len(match))) != typicalSnap || p.Run(nomatch, uint32(len(nomatch))) != 0 {
					errs <- "wrong result under concurrency"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
