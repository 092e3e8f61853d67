//go:build linux

package ebpf

import "encoding/binary"

// Insn is one eBPF instruction (struct bpf_insn).
type Insn struct {
	Code     uint8
	Dst, Src uint8 // registers 0..10
	Off      int16
	Imm      int32
}

// Instruction classes, sizes, modes and operations (linux/bpf_common.h,
// linux/bpf.h).
const (
	classLDX   = 0x01
	classSTX   = 0x03
	classJMP   = 0x05
	classALU   = 0x04
	classALU64 = 0x07
	classLD    = 0x00

	sizeW  = 0x00
	sizeH  = 0x08
	sizeDW = 0x18

	modeIMM    = 0x00
	modeMEM    = 0x60
	modeATOMIC = 0xc0

	srcK = 0x00
	srcX = 0x08

	aluADD = 0x00
	aluMOV = 0xb0
	aluSUB = 0x10
	aluEND = 0xd0
	toBE   = 0x08

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJGT  = 0x20
	jmpJNE  = 0x50
	jmpJSGT = 0x60
	jmpCALL = 0x80
	jmpEXIT = 0x90

	pseudoMapFD    = 1
	pseudoMapValue = 2
)

// Registers.
const (
	R0 uint8 = iota
	R1
	R2
	R3
	R4
	R5
	R6
	R7
	R8
	R9
	R10 // frame pointer, read-only
)

// Helper function numbers (enum bpf_func_id).
const (
	FuncKtimeGetNs     = 5
	FuncSkbLoadBytes   = 26
	FuncRingbufReserve = 131
	FuncRingbufSubmit  = 132
	FuncRingbufDiscard = 133
)

// Builders for the instructions the daemon's programs use.

func MovImm(dst uint8, imm int32) Insn {
	return Insn{Code: classALU64 | aluMOV | srcK, Dst: dst, Imm: imm}
}
func MovReg(dst, src uint8) Insn { return Insn{Code: classALU64 | aluMOV | srcX, Dst: dst, Src: src} }
func AddImm(dst uint8, imm int32) Insn {
	return Insn{Code: classALU64 | aluADD | srcK, Dst: dst, Imm: imm}
}

func SubImm(dst uint8, imm int32) Insn {
	return Insn{Code: classALU64 | aluSUB | srcK, Dst: dst, Imm: imm}
}

// ToBE16 turns the low 16 bits of dst into network byte order (and clears
// the rest).
func ToBE16(dst uint8) Insn { return Insn{Code: classALU | aluEND | toBE, Dst: dst, Imm: 16} }

// LoadW loads the 32-bit word at src+off into dst.
func LoadW(dst, src uint8, off int16) Insn {
	return Insn{Code: classLDX | sizeW | modeMEM, Dst: dst, Src: src, Off: off}
}

// StoreDW and StoreW store a register at dst+off.
func StoreDW(dst uint8, off int16, src uint8) Insn {
	return Insn{Code: classSTX | sizeDW | modeMEM, Dst: dst, Src: src, Off: off}
}
func StoreW(dst uint8, off int16, src uint8) Insn {
	return Insn{Code: classSTX | sizeW | modeMEM, Dst: dst, Src: src, Off: off}
}
func StoreH(dst uint8, off int16, src uint8) Insn {
	return Insn{Code: classSTX | sizeH | modeMEM, Dst: dst, Src: src, Off: off}
}

// AtomicAddDW adds src to the 64-bit word at dst+off atomically.
func AtomicAddDW(dst uint8, off int16, src uint8) Insn {
	return Insn{Code: classSTX | sizeDW | modeATOMIC, Dst: dst, Src: src, Off: off, Imm: aluADD}
}

// JumpImm jumps off instructions ahead when dst op imm (op: JEQ, JGT, JNE).
func JumpImm(op uint8, dst uint8, imm int32, off int16) Insn {
	return Insn{Code: classJMP | op | srcK, Dst: dst, Off: off, Imm: imm}
}

// Jump operations for JumpImm.
const (
	JEQ  = jmpJEQ
	JGT  = jmpJGT
	JNE  = jmpJNE
	JSGT = jmpJSGT
)

func Ja(off int16) Insn  { return Insn{Code: classJMP | jmpJA, Off: off} }
func Call(fn int32) Insn { return Insn{Code: classJMP | jmpCALL, Imm: fn} }
func Exit() Insn         { return Insn{Code: classJMP | jmpEXIT} }

// LoadMapFD puts a map's address in dst; it takes two instruction slots.
func LoadMapFD(dst uint8, fd int) [2]Insn {
	return [2]Insn{{Code: classLD | sizeDW | modeIMM, Dst: dst, Src: pseudoMapFD, Imm: int32(fd)}, {}}
}

// LoadMapValue puts the address of byte off of an array map's first value
// in dst; two slots.
func LoadMapValue(dst uint8, fd int, off int32) [2]Insn {
	return [2]Insn{{Code: classLD | sizeDW | modeIMM, Dst: dst, Src: pseudoMapValue, Imm: int32(fd)}, {Imm: off}}
}

// encode lays instructions out as the kernel reads them.
func encode(prog []Insn) []byte {
	b := make([]byte, 8*len(prog))
	for i, in := range prog {
		p := b[8*i:]
		p[0] = in.Code
		p[1] = in.Dst&0xf | in.Src<<4
		binary.NativeEndian.PutUint16(p[2:], uint16(in.Off))
		binary.NativeEndian.PutUint32(p[4:], uint32(in.Imm))
	}
	return b
}
