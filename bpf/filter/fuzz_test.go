package filter

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
)

// Scratch words the x/net translation borrows; programs for the
// differential test use only the others.
const (
	xnetSpareX = MemWords - 2
	xnetSpareA = MemWords - 1
)

// programFromFuzz turns fuzz bytes into a program that usually passes
// Validate, plus a packet: data[0] sets the length, each following 8 bytes
// one instruction (opcode picked from the accepted set, jumps folded into
// range, loads mostly near the packet), and the rest is the packet. The
// last instruction is always "ret a". With spareScratch the scratch
// indices avoid the words the x/net translation needs.
func programFromFuzz(data []byte, spareScratch bool) ([]Instruction, []byte) {
	if len(data) == 0 {
		return []Instruction{retAReg}, nil
	}
	n := int(data[0]%32) + 1
	data = data[1:]
	if n > len(data)/8+1 {
		n = len(data)/8 + 1
	}
	prog := make([]Instruction, n)
	for i := 0; i < n-1; i++ {
		rec := data[i*8 : i*8+8]
		c := acceptedCodes[int(rec[0])%len(acceptedCodes)]
		insn := Instruction{Code: uint16(c.code), Jt: rec[1], Jf: rec[2], K: binary.LittleEndian.Uint32(rec[4:])}
		after := uint32(n - i - 1)
		flags := rec[3]
		switch c.kind {
		case opJa:
			insn.K %= after
		case opJeqK, opJgtK, opJgeK, opJsetK, opJeqX, opJgtX, opJgeX, opJsetX:
			insn.Jt = uint8(uint32(insn.Jt) % after)
			insn.Jf = uint8(uint32(insn.Jf) % after)
			if flags&1 == 0 {
				insn.K %= 256
			}
		case opLdMem, opLdxMem, opSt, opStx:
			if spareScratch {
				insn.K %= xnetSpareX
			} else {
				insn.K %= MemWords
			}
		case opDivK, opModK:
			if insn.K == 0 {
				insn.K = 1
			}
		case opLdAbsW, opLdAbsH, opLdAbsB, opLdIndW, opLdIndH, opLdIndB, opLdxMsh:
			if flags&1 == 0 {
				insn.K %= 80
			}
		case opLdxImm:
			if flags&1 == 0 {
				insn.K %= 64
			}
		}
		prog[i] = insn
	}
	prog[n-1] = retAReg
	return prog, data[(n-1)*8:]
}

// toXnetProgram translates a valid program for golang.org/x/net/bpf
// (v0.62.0), rewriting what that VM does differently from FreeBSD:
//   - shifts: Go's << and >> give 0 for counts of 32 and more, the kernel
//     masks the count to 5 bits; constant counts are masked here, X counts
//     get an inline "X &= 31" that saves and restores A and X in the two
//     spare scratch words;
//   - NEG: x/net decodes it but its VM reports an unknown instruction; it
//     becomes "xor #0xffffffff; add #1";
//   - LDX LEN: x/net decodes BPF_LDX|BPF_LEN as the A-loading length
//     extension; it becomes a load into A moved to X, A preserved;
//   - absolute loads at k > 0xffffefff: x/net treats them as Linux
//     extensions (its NewVM rejects all but one); for the kernel they are
//     out of range for any packet, so they become "ret #0".
//
// Jump offsets are recomputed for the longer program; ok is false when a
// conditional offset no longer fits in 8 bits.
func toXnetProgram(insns []Instruction) (out []bpf.Instruction, ok bool) {
	type jumpFix struct{ at, from int }
	start := make([]int, len(insns)+1)
	var fixes []jumpFix
	for i, insn := range insns {
		start[i] = len(out)
		raw := bpf.RawInstruction{Op: insn.Code, Jt: insn.Jt, Jf: insn.Jf, K: insn.K}
		switch kind := kindOf[insn.Code]; kind {
		case opLshK, opRshK:
			op := bpf.ALUOpShiftLeft
			if kind == opRshK {
				op = bpf.ALUOpShiftRight
			}
			out = append(out, bpf.ALUOpConstant{Op: op, Val: insn.K & 31})
		case opLshX, opRshX:
			op := bpf.ALUOpShiftLeft
			if kind == opRshX {
				op = bpf.ALUOpShiftRight
			}
			out = append(out,
				bpf.StoreScratch{Src: bpf.RegX, N: xnetSpareX},
				bpf.StoreScratch{Src: bpf.RegA, N: xnetSpareA},
				bpf.TXA{},
				bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 31},
				bpf.TAX{},
				bpf.LoadScratch{Dst: bpf.RegA, N: xnetSpareA},
				bpf.ALUOpX{Op: op},
				bpf.LoadScratch{Dst: bpf.RegX, N: xnetSpareX},
			)
		case opNeg:
			out = append(out,
				bpf.ALUOpConstant{Op: bpf.ALUOpXor, Val: 0xffffffff},
				bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1},
			)
		case opLdxLen:
			out = append(out,
				bpf.StoreScratch{Src: bpf.RegA, N: xnetSpareA},
				bpf.LoadExtension{Num: bpf.ExtLen},
				bpf.TAX{},
				bpf.LoadScratch{Dst: bpf.RegA, N: xnetSpareA},
			)
		case opLdAbsW, opLdAbsH, opLdAbsB:
			if insn.K > 0xffffefff {
				out = append(out, bpf.RetConstant{Val: 0})
			} else {
				out = append(out, raw.Disassemble())
			}
		case opJa, opJeqK, opJgtK, opJgeK, opJsetK, opJeqX, opJgtX, opJgeX, opJsetX:
			fixes = append(fixes, jumpFix{at: len(out), from: i})
			out = append(out, nil) // filled in below, once targets are known
		default:
			out = append(out, raw.Disassemble())
		}
	}
	start[len(insns)] = len(out)
	for _, f := range fixes {
		insn := insns[f.from]
		next := f.from + 1
		if kindOf[insn.Code] == opJa {
			skip := start[next+int(insn.K)] - f.at - 1
			out[f.at] = bpf.Jump{Skip: uint32(skip)}
			continue
		}
		jt := start[next+int(insn.Jt)] - f.at - 1
		jf := start[next+int(insn.Jf)] - f.at - 1
		if jt > 255 || jf > 255 {
			return nil, false
		}
		out[f.at] = bpf.RawInstruction{Op: insn.Code, Jt: uint8(jt), Jf: uint8(jf), K: insn.K}.Disassemble()
	}
	return out, true
}

func addSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0, 0, 5, 0, 0, 0, 0x20, 0, 0, 0, 1, 0, 0, 0, 0x45, 0, 0x11})
	// One of each accepted opcode with small operands.
	for i := range acceptedCodes {
		f.Add([]byte{2, byte(i), 1, 0, 0, 3, 0, 0, 0, 0x45, 0, 0, 0x1c, 0x11, 0x22, 0x33, 0x44})
	}
	// The typical filter's shape over a matching frame.
	seed := []byte{byte(len(typicalFilter))}
	for _, insn := range typicalFilter {
		idx := 0
		for j, c := range acceptedCodes {
			if uint16(c.code) == insn.Code {
				idx = j
			}
		}
		rec := []byte{byte(idx), insn.Jt, insn.Jf, 0, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(rec[4:], insn.K)
		seed = append(seed, rec...)
	}
	f.Add(append(seed, udp4Frame(9, 5, 0, 8)...))
}

// FuzzDifferential runs programs both this package and golang.org/x/net/bpf
// accept on both machines and requires the same result. x/net v0.62.0's
// VM.Run returns A or k unclamped, 0 for out-of-range loads and for division
// by X == 0, like the kernel, so results are compared exactly; its length
// extension returns len(pkt), so wireLen is len(pkt). The semantic
// differences are rewritten by toXnetProgram.
func FuzzDifferential(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		insns, pkt := programFromFuzz(data, true)
		if Validate(insns) != nil {
			return
		}
		xprog, ok := toXnetProgram(insns)
		if !ok {
			return
		}
		vm, err := bpf.NewVM(xprog)
		if err != nil {
			t.Fatalf("x/net rejects a program this package accepts: %v\n%v", err, insns)
		}
		want, err := vm.Run(pkt)
		if err != nil {
			t.Fatalf("x/net Run: %v\n%v", err, insns)
		}
		for _, e := range engines(t, insns) {
			if got := e.p.Run(pkt, uint32(len(pkt))); uint64(got) != uint64(want) {
				t.Fatalf("%s: Run = %#x, x/net = %#x\nprogram %v\npacket %x", e.name, got, want, insns, pkt)
			}
		}
	})
}

// FuzzRun checks that valid programs never panic, never read the bytes
// between len(pkt) and cap(pkt), and give the same result fused and plain.
func FuzzRun(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		insns, pkt := programFromFuzz(data, false)
		if len(pkt) > 0 && pkt[0]&1 == 1 {
			// Sometimes use raw k values everywhere.
			for i := range insns[:len(insns)-1] {
				insns[i].K ^= uint32(pkt[0]) << 24
			}
		}
		fused, err := compile(insns, true)
		if err != nil {
			return
		}
		plain, err := compile(insns, false)
		if err != nil {
			t.Fatal(err)
		}
		exact := append([]byte(nil), pkt...)
		padded := append(append([]byte(nil), pkt...), bytes.Repeat([]byte{0xa5}, 64)...)[:len(pkt)]
		wireLen := uint32(len(pkt))
		if len(data) > 0 {
			wireLen += uint32(data[len(data)-1]) << 8
		}
		want := plain.Run(exact, wireLen)
		if got := plain.Run(padded, wireLen); got != want {
			t.Fatalf("plain Run read past len(pkt): %#x with spare capacity, %#x without", got, want)
		}
		if got := fused.Run(exact, wireLen); got != want {
			t.Fatalf("fused Run = %#x, plain %#x\nprogram %v\npacket %x", got, want, insns, pkt)
		}
		if got := fused.Run(padded, wireLen); got != want {
			t.Fatalf("fused Run read past len(pkt): %#x, want %#x", got, want)
		}
		if jit := mustCompile(t, insns); jit.jit != nil {
			if got := jit.Run(exact, wireLen); got != want {
				t.Fatalf("machine code Run = %#x, plain %#x\nprogram %v\npacket %x", got, want, insns, pkt)
			}
			if got := jit.Run(padded, wireLen); got != want {
				t.Fatalf("machine code Run read past len(pkt): %#x, want %#x", got, want)
			}
		} else if hasJIT && len(insns) > 0 {
			t.Fatal("Compile gave no machine code")
		}
	})
}

// FuzzValidate feeds raw bytes to Decode, Validate and Compile, which must
// never panic; whatever Compile accepts must run without panicking.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{})
	f.Add(Encode(typicalFilter))
	f.Add(Encode([]Instruction{stmt(classJMP|jmpJA, 0xffffffff), retConst(1)}))
	f.Add(Encode([]Instruction{stmt(classST, 16), retAReg}))
	f.Add(Encode([]Instruction{aluK(aluDIV, 0), retAReg}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		insns, err := Decode(raw)
		if err != nil {
			if len(raw)%8 == 0 && len(raw) <= MaxInstructions*8 {
				t.Fatalf("Decode rejected %d bytes: %v", len(raw), err)
			}
			return
		}
		if !bytes.Equal(Encode(insns), raw) {
			t.Fatal("Encode(Decode(raw)) != raw")
		}
		verr := Validate(insns)
		p, cerr := Compile(insns)
		if (verr == nil) != (cerr == nil) {
			t.Fatalf("Validate = %v but Compile = %v", verr, cerr)
		}
		if cerr != nil {
			return
		}
		for _, pkt := range [][]byte{nil, udp4Frame(9, 5, 0, 0), raw} {
			p.Run(pkt, uint32(len(pkt)))
		}
	})
}
