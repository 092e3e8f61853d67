package filter

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"
)

func TestInstructionLayout(t *testing.T) {
	var insn Instruction
	if unsafe.Sizeof(insn) != 8 || unsafe.Offsetof(insn.Jt) != 2 || unsafe.Offsetof(insn.Jf) != 3 || unsafe.Offsetof(insn.K) != 4 {
		t.Fatal("Instruction does not have the layout of struct bpf_insn")
	}
}

// kernelAcceptedCodes is FreeBSD's accepted opcode set as bpf-facts.md §2.2
// lists it, typed in independently of the package's own table.
var kernelAcceptedCodes = []uint16{
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0c, 0x14, 0x15, 0x16, 0x1c, 0x1d,
	0x20, 0x24, 0x25, 0x28, 0x2c, 0x2d, 0x30, 0x34, 0x35, 0x3c, 0x3d, 0x40, 0x44, 0x45,
	0x48, 0x4c, 0x4d, 0x50, 0x54, 0x5c, 0x60, 0x61, 0x64, 0x6c, 0x74, 0x7c, 0x80, 0x81,
	0x84, 0x87, 0x94, 0x9c, 0xa4, 0xac, 0xb1,
}

// programAround wraps insn into the smallest program Validate can accept
// apart from insn itself: jumps get two RETs to land on.
func programAround(insn Instruction) []Instruction {
	return []Instruction{insn, retConst(1), retConst(2)}
}

func TestValidateOpcodeSet(t *testing.T) {
	accepted := map[uint16]bool{}
	for _, c := range kernelAcceptedCodes {
		accepted[c] = true
	}
	for code := 0; code <= 0x1ff; code++ {
		// k = 1 keeps constant division legal and scratch indices and jumps
		// in range, so only the opcode decides.
		insn := Instruction{Code: uint16(code), K: 1}
		err := Validate(programAround(insn))
		if accepted[uint16(code)] && err != nil {
			t.Errorf("code %#04x rejected: %v", code, err)
		}
		if !accepted[uint16(code)] {
			if err == nil {
				t.Errorf("code %#04x accepted", code)
			} else if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "instruction 0") {
				t.Errorf("code %#04x: error %q does not wrap ErrInvalid or name the instruction", code, err)
			}
		}
	}
	for _, code := range []uint16{0x106, 0x8006, 0xffff} {
		if err := Validate(programAround(Instruction{Code: code})); err == nil {
			t.Errorf("code %#x above 0xff accepted", code)
		}
	}
}

func repeat(insn Instruction, n int) []Instruction {
	prog := make([]Instruction, n)
	for i := range prog {
		prog[i] = insn
	}
	return prog
}

func TestValidate(t *testing.T) {
	ldMem := func(k uint32) Instruction { return stmt(classLD|sizeW|modeMEM, k) }
	cases := []struct {
		name    string
		prog    []Instruction
		wantErr string // empty: valid
	}{
		{"empty program", nil, ""},
		{"single ret", []Instruction{retConst(0)}, ""},
		{"ret a last", []Instruction{ldImm(1), retAReg}, ""},
		{"512 instructions", append(repeat(ldImm(1), 511), retAReg), ""},
		{"513 instructions", append(repeat(ldImm(1), 512), retAReg), "more than the maximum of 512"},
		{"last not ret", []Instruction{retConst(0), ldImm(1)}, "instruction 1"},
		{"only a load", []Instruction{ldImm(1)}, "not a RET"},
		{"invalid opcode", []Instruction{stmt(0x0e, 0), retConst(0)}, "opcode"},
		{"ja to last", []Instruction{stmt(classJMP|jmpJA, 1), retConst(1), retConst(2)}, ""},
		{"ja past the end", []Instruction{stmt(classJMP|jmpJA, 2), retConst(1), retConst(2)}, "jump offset 2"},
		{"ja huge", []Instruction{stmt(classJMP|jmpJA, 0xffffffff), retConst(1)}, "jump offset"},
		{"ja as last instruction", []Instruction{retConst(1), stmt(classJMP|jmpJA, 0)}, "instruction 1"},
		{"jt to last", []Instruction{jump(classJMP|jmpJEQ|srcK, 0, 1, 0), retConst(1), retConst(2)}, ""},
		{"jt past the end", []Instruction{jump(classJMP|jmpJEQ|srcK, 0, 2, 0), retConst(1), retConst(2)}, "true-branch offset 2"},
		{"jf past the end", []Instruction{jump(classJMP|jmpJGT|srcX, 0, 0, 2), retConst(1), retConst(2)}, "false-branch offset 2"},
		{"jf 255 in short program", []Instruction{jump(classJMP|jmpJSET|srcK, 0, 0, 255), retConst(1)}, "false-branch"},
		{"jt 255 in long enough program", append([]Instruction{jump(classJMP|jmpJGE|srcK, 0, 255, 0)}, repeat(retConst(1), 256)...), ""},
		{"jt 255 one short", append([]Instruction{jump(classJMP|jmpJGE|srcK, 0, 255, 0)}, repeat(retConst(1), 255)...), "true-branch"},
		{"ld M[15]", []Instruction{ldMem(15), retAReg}, ""},
		{"ld M[16]", []Instruction{ldMem(16), retAReg}, "scratch memory index 16"},
		{"ldx M[16]", []Instruction{stmt(classLDX|sizeW|modeMEM, 16), retAReg}, "scratch"},
		{"st M[16]", []Instruction{stmt(classST, 16), retAReg}, "scratch"},
		{"stx M[16]", []Instruction{stmt(classSTX, 16), retAReg}, "scratch"},
		{"stx M[0xffffffff]", []Instruction{stmt(classSTX, 0xffffffff), retAReg}, "scratch"},
		{"div #0", []Instruction{aluK(aluDIV, 0), retAReg}, "division or modulo by constant zero"},
		{"mod #0", []Instruction{aluK(aluMOD, 0), retAReg}, "division or modulo by constant zero"},
		{"div #1", []Instruction{aluK(aluDIV, 1), retAReg}, ""},
		{"div x is checked at run time", []Instruction{aluX(aluDIV), aluX(aluMOD), retAReg}, ""},
		{"shift #33 is valid", []Instruction{aluK(aluLSH, 33), aluK(aluRSH, 0xffffffff), retAReg}, ""},
		{"error names the first bad instruction", []Instruction{ldImm(0), ldMem(16), stmt(0xff, 0), retAReg}, "instruction 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.prog)
			_, compileErr := Compile(tc.prog)
			if tc.wantErr == "" {
				if err != nil || compileErr != nil {
					t.Fatalf("Validate = %v, Compile = %v; want both nil", err, compileErr)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted; want error containing %q", tc.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if !errors.Is(compileErr, ErrInvalid) {
				t.Errorf("Compile error %v, want ErrInvalid", compileErr)
			}
		})
	}
}

func TestDecodeEncode(t *testing.T) {
	raw := []byte{
		0x28, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, // ldh [12]
		0x15, 0x00, 0x02, 0x05, 0xdd, 0x86, 0x00, 0x00, // jeq #0x86dd jt 2 jf 5
	}
	insns, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []Instruction{{0x28, 0, 0, 12}, {0x15, 2, 5, 0x86dd}}
	if len(insns) != len(want) || insns[0] != want[0] || insns[1] != want[1] {
		t.Fatalf("Decode = %v, want %v", insns, want)
	}
	if got := Encode(insns); !bytes.Equal(got, raw) {
		t.Fatalf("Encode = %x, want %x", got, raw)
	}
	round, err := Decode(Encode(typicalFilter))
	if err != nil || len(round) != len(typicalFilter) {
		t.Fatalf("round trip: %v, %d instructions", err, len(round))
	}
	for i := range round {
		if round[i] != typicalFilter[i] {
			t.Fatalf("round trip instruction %d = %v, want %v", i, round[i], typicalFilter[i])
		}
	}
	if insns, err := Decode(nil); err != nil || len(insns) != 0 {
		t.Fatalf("Decode(nil) = %v, %v", insns, err)
	}
	if _, err := Decode(make([]byte, MaxInstructions*8)); err != nil {
		t.Fatalf("Decode of %d instructions: %v", MaxInstructions, err)
	}
	for _, n := range []int{1, 7, 9, 15, (MaxInstructions + 1) * 8} {
		if _, err := Decode(make([]byte, n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode of %d bytes: %v, want ErrInvalid", n, err)
		}
	}
}
