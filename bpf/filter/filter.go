package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Instruction is one classic BPF instruction with the layout of C's
// struct bpf_insn (8 bytes).
type Instruction struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// MaxInstructions is BPF_MAXINSNS, the longest program the kernel accepts.
const MaxInstructions = 512

// MemWords is BPF_MEMWORDS, the number of scratch memory words.
const MemWords = 16

// ErrInvalid is wrapped by every error that rejects a program.
var ErrInvalid = errors.New("filter: invalid program")

const instructionSize = 8

// Opcode fields as laid out in <net/bpf.h>.
const (
	classLD   = 0x00
	classLDX  = 0x01
	classST   = 0x02
	classSTX  = 0x03
	classALU  = 0x04
	classJMP  = 0x05
	classRET  = 0x06
	classMISC = 0x07

	sizeW = 0x00
	sizeH = 0x08
	sizeB = 0x10

	modeIMM = 0x00
	modeABS = 0x20
	modeIND = 0x40
	modeMEM = 0x60
	modeLEN = 0x80
	modeMSH = 0xa0

	aluADD = 0x00
	aluSUB = 0x10
	aluMUL = 0x20
	aluDIV = 0x30
	aluOR  = 0x40
	aluAND = 0x50
	aluLSH = 0x60
	aluRSH = 0x70
	aluNEG = 0x80
	aluMOD = 0x90
	aluXOR = 0xa0

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJGT  = 0x20
	jmpJGE  = 0x30
	jmpJSET = 0x40

	srcK = 0x00
	srcX = 0x08

	retK = 0x00
	retA = 0x10

	miscTAX = 0x00
	miscTXA = 0x80
)

// kindOf maps every opcode FreeBSD's validator accepts to the operation the
// interpreter runs and everything else to opInvalid. Codes above 0xff are
// always invalid.
var kindOf = func() (table [256]opKind) {
	for code := range table {
		table[code] = opInvalid
	}
	for _, c := range acceptedCodes {
		table[c.code] = c.kind
	}
	return table
}()

// acceptedCodes is the exact opcode set of FreeBSD's bpf_validate.
var acceptedCodes = []struct {
	code uint8
	kind opKind
}{
	{classLD | sizeW | modeIMM, opLdImm},
	{classLD | sizeW | modeABS, opLdAbsW},
	{classLD | sizeH | modeABS, opLdAbsH},
	{classLD | sizeB | modeABS, opLdAbsB},
	{classLD | sizeW | modeIND, opLdIndW},
	{classLD | sizeH | modeIND, opLdIndH},
	{classLD | sizeB | modeIND, opLdIndB},
	{classLD | sizeW | modeMEM, opLdMem},
	{classLD | sizeW | modeLEN, opLdLen},
	{classLDX | sizeW | modeIMM, opLdxImm},
	{classLDX | sizeW | modeMEM, opLdxMem},
	{classLDX | sizeW | modeLEN, opLdxLen},
	{classLDX | sizeB | modeMSH, opLdxMsh},
	{classST, opSt},
	{classSTX, opStx},
	{classALU | aluADD | srcK, opAddK},
	{classALU | aluSUB | srcK, opSubK},
	{classALU | aluMUL | srcK, opMulK},
	{classALU | aluDIV | srcK, opDivK},
	{classALU | aluMOD | srcK, opModK},
	{classALU | aluOR | srcK, opOrK},
	{classALU | aluAND | srcK, opAndK},
	{classALU | aluXOR | srcK, opXorK},
	{classALU | aluLSH | srcK, opLshK},
	{classALU | aluRSH | srcK, opRshK},
	{classALU | aluADD | srcX, opAddX},
	{classALU | aluSUB | srcX, opSubX},
	{classALU | aluMUL | srcX, opMulX},
	{classALU | aluDIV | srcX, opDivX},
	{classALU | aluMOD | srcX, opModX},
	{classALU | aluOR | srcX, opOrX},
	{classALU | aluAND | srcX, opAndX},
	{classALU | aluXOR | srcX, opXorX},
	{classALU | aluLSH | srcX, opLshX},
	{classALU | aluRSH | srcX, opRshX},
	{classALU | aluNEG, opNeg},
	{classJMP | jmpJA, opJa},
	{classJMP | jmpJEQ | srcK, opJeqK},
	{classJMP | jmpJGT | srcK, opJgtK},
	{classJMP | jmpJGE | srcK, opJgeK},
	{classJMP | jmpJSET | srcK, opJsetK},
	{classJMP | jmpJEQ | srcX, opJeqX},
	{classJMP | jmpJGT | srcX, opJgtX},
	{classJMP | jmpJGE | srcX, opJgeX},
	{classJMP | jmpJSET | srcX, opJsetX},
	{classRET | retK, opRetK},
	{classRET | retA, opRetA},
	{classMISC | miscTAX, opTax},
	{classMISC | miscTXA, opTxa},
}

func invalidf(index int, insn Instruction, format string, args ...any) error {
	return fmt.Errorf("%w: instruction %d (code %#04x jt %d jf %d k %#x): %s",
		ErrInvalid, index, insn.Code, insn.Jt, insn.Jf, insn.K, fmt.Sprintf(format, args...))
}

// Validate reports whether FreeBSD's bpf_validate would accept insns. The
// error names the first offending instruction and the rule it breaks.
func Validate(insns []Instruction) error {
	n := len(insns)
	if n > MaxInstructions {
		return fmt.Errorf("%w: %d instructions, more than the maximum of %d", ErrInvalid, n, MaxInstructions)
	}
	for i, insn := range insns {
		if insn.Code > 0xff || kindOf[insn.Code] == opInvalid {
			return invalidf(i, insn, "opcode not accepted by the kernel")
		}
		// Offsets are relative to the next instruction, so an offset is in
		// range when it is smaller than the number of instructions after i.
		after := uint32(n - i - 1)
		switch kindOf[insn.Code] {
		case opLdMem, opLdxMem, opSt, opStx:
			if insn.K >= MemWords {
				return invalidf(i, insn, "scratch memory index %d out of range 0..%d", insn.K, MemWords-1)
			}
		case opDivK, opModK:
			if insn.K == 0 {
				return invalidf(i, insn, "division or modulo by constant zero")
			}
		case opJa:
			if insn.K >= after {
				return invalidf(i, insn, "jump offset %d leaves the program (%d instructions follow)", insn.K, after)
			}
		case opJeqK, opJgtK, opJgeK, opJsetK, opJeqX, opJgtX, opJgeX, opJsetX:
			if uint32(insn.Jt) >= after {
				return invalidf(i, insn, "true-branch offset %d leaves the program (%d instructions follow)", insn.Jt, after)
			}
			if uint32(insn.Jf) >= after {
				return invalidf(i, insn, "false-branch offset %d leaves the program (%d instructions follow)", insn.Jf, after)
			}
		}
	}
	if n > 0 && insns[n-1].Code&0x07 != classRET {
		return invalidf(n-1, insns[n-1], "last instruction is not a RET")
	}
	return nil
}

// Decode reads len(raw)/8 little-endian struct bpf_insn records. It does not
// validate the program; it only rejects a length that is not a whole number
// of instructions or exceeds MaxInstructions.
func Decode(raw []byte) ([]Instruction, error) {
	if len(raw)%instructionSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of the %d-byte instruction size", ErrInvalid, len(raw), instructionSize)
	}
	n := len(raw) / instructionSize
	if n > MaxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, more than the maximum of %d", ErrInvalid, n, MaxInstructions)
	}
	insns := make([]Instruction, n)
	for i := range insns {
		rec := raw[i*instructionSize : (i+1)*instructionSize]
		insns[i] = Instruction{
			Code: binary.LittleEndian.Uint16(rec[0:2]),
			Jt:   rec[2],
			Jf:   rec[3],
			K:    binary.LittleEndian.Uint32(rec[4:8]),
		}
	}
	return insns, nil
}

// Encode writes insns as little-endian struct bpf_insn records, the inverse
// of Decode.
func Encode(insns []Instruction) []byte {
	raw := make([]byte, len(insns)*instructionSize)
	for i, insn := range insns {
		rec := raw[i*instructionSize : (i+1)*instructionSize]
		binary.LittleEndian.PutUint16(rec[0:2], insn.Code)
		rec[2] = insn.Jt
		rec[3] = insn.Jf
		binary.LittleEndian.PutUint32(rec[4:8], insn.K)
	}
	return raw
}
