//go:build amd64 && linux

package filter

import (
	"encoding/binary"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The amd64 translation. Register use inside generated code:
//
//	EAX  A (and the result)        RSI  packet base
//	ECX  X (CL is the shift count) RDI  captured length (64-bit)
//	EDX  DIV/MOD remainder         R8D  wire length
//	R10, R11  offsets and divisors  R9   scratch memory (16 words), or nil
//
// Every write to A or X is a 32-bit operation, so their upper halves are
// always zero and RCX can take part in 64-bit address arithmetic as is.
// Nothing else is touched: no R14 (Go's g), no X15, and no stack beyond the
// return address the CALL left. That last rule also keeps fault recovery
// working: a load from a client's shared page that faults (the file behind
// it was truncated) becomes a Go panic only because the runtime, finding
// that return address at SP, takes the fault for a call made from jitCall.

// jitCall runs generated code (jit_amd64.s).
//
//go:noescape
func jitCall(entry uintptr, pkt unsafe.Pointer, capLen uint64, wireLen uint32, mem unsafe.Pointer) uint32

// maxJITPacket bounds the captured length the generated code is used for:
// its load offsets are signed 32-bit displacements.
const maxJITPacket = 1<<31 - 1

// jitCode is a program's machine code in its own read-and-execute mapping,
// unmapped when the Program that owns it is collected.
type jitCode struct {
	mem   []byte
	entry uintptr
}

// runJIT is Run through the machine code.
func (p *Program) runJIT(pkt []byte, wireLen uint32) uint32 {
	if p.usesScratch {
		return p.runJITScratch(pkt, wireLen)
	}
	r := jitCall(p.jit.entry, unsafe.Pointer(unsafe.SliceData(pkt)), uint64(len(pkt)), wireLen, nil)
	// The mapping must outlive the call; it goes with jit's cleanup.
	runtime.KeepAlive(p.jit)
	return r
}

// runJITScratch is runJIT with zeroed scratch memory, on this frame's stack
// (jitCall does not keep the pointer).
func (p *Program) runJITScratch(pkt []byte, wireLen uint32) uint32 {
	var mem [MemWords]uint32
	r := jitCall(p.jit.entry, unsafe.Pointer(unsafe.SliceData(pkt)), uint64(len(pkt)), wireLen, unsafe.Pointer(&mem))
	runtime.KeepAlive(p.jit)
	return r
}

// jitLimit bounds the bytes of machine code mapped at once (jitMapped). The mappings are
// outside the Go heap, so the collector neither counts them nor hurries to
// free them: without a bound, a client replacing its filters in a loop
// could pile up megabytes of them between two collections. Programs
// compiled beyond it are interpreted. 1024 descriptors with a read and a
// write filter of the longest kind (4 pages each) need 32 MiB.
var jitMapped, jitLimit atomic.Int64

func init() { jitLimit.Store(64 << 20) }

// newJIT translates a valid program and maps the result executable. It
// returns nil (the interpreter then runs the program) if the memory cannot
// be had.
func newJIT(insns []Instruction) *jitCode {
	text := assemble(insns)
	size := (len(text) + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
	if jitMapped.Add(int64(size)) > jitLimit.Load() {
		jitMapped.Add(-int64(size))
		return nil
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		jitMapped.Add(-int64(size))
		return nil
	}
	copy(mem, text)
	// Never writable and executable at once.
	if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		unix.Munmap(mem)
		jitMapped.Add(-int64(size))
		return nil
	}
	code := &jitCode{mem: mem, entry: uintptr(unsafe.Pointer(&mem[0]))}
	runtime.AddCleanup(code, func(mem []byte) {
		unix.Munmap(mem)
		jitMapped.Add(-int64(len(mem)))
	}, mem)
	return code
}

// asm collects machine code and the jumps to patch once every
// instruction's address is known.
type asm struct {
	b      []byte
	starts []int // code offset of each BPF instruction
	fixups []fixup
	reject []int // rel32 fields that jump to the shared "return 0"
}

// fixup is a rel32 field at off that must reach BPF instruction target.
type fixup struct{ off, target int }

func (a *asm) emit(bs ...byte) { a.b = append(a.b, bs...) }

func (a *asm) imm32(v uint32) { a.b = binary.LittleEndian.AppendUint32(a.b, v) }

// jumpTo emits a jump opcode (E9, or 0F 8x) and a rel32 to instruction
// target.
func (a *asm) jumpTo(target int, opcode ...byte) {
	a.emit(opcode...)
	a.fixups = append(a.fixups, fixup{len(a.b), target})
	a.imm32(0)
}

// jumpReject emits a jump (opcode as in jumpTo) to "return 0".
func (a *asm) jumpReject(opcode ...byte) {
	a.emit(opcode...)
	a.reject = append(a.reject, len(a.b))
	a.imm32(0)
}

var (
	opJMP = []byte{0xe9}
	opJB  = []byte{0x0f, 0x82}
	opJAE = []byte{0x0f, 0x83}
	opJE  = []byte{0x0f, 0x84}
	opJNE = []byte{0x0f, 0x85}
	opJA  = []byte{0x0f, 0x87}
)

// checkAbs rejects the packet unless size bytes at the constant offset k
// were captured, and reports whether the load can happen at all.
func (a *asm) checkAbs(k uint32, size uint32) bool {
	end := uint64(k) + uint64(size)
	if end > maxJITPacket {
		a.jumpReject(opJMP...)
		return false
	}
	a.emit(0x48, 0x81, 0xff) // cmp rdi, imm32
	a.imm32(uint32(end))
	a.jumpReject(opJB...)
	return true
}

// checkInd leaves X+k in R10 and rejects the packet unless size bytes from
// there were captured.
func (a *asm) checkInd(k uint32, size byte) {
	a.emit(0x41, 0xba) // mov r10d, imm32
	a.imm32(k)
	a.emit(0x49, 0x01, 0xca)       // add r10, rcx
	a.emit(0x4d, 0x8d, 0x5a, size) // lea r11, [r10+size]
	a.emit(0x4c, 0x39, 0xdf)       // cmp rdi, r11
	a.jumpReject(opJB...)
}

// assemble translates a valid program. Jumps are forward only, so one pass
// emits everything and a second patches the jump displacements.
func assemble(insns []Instruction) []byte {
	a := &asm{b: make([]byte, 0, 16*len(insns)+16), starts: make([]int, len(insns)+1)}
	// endbr64: a valid target for an indirect call should indirect-branch
	// tracking ever be enforced for user space (a no-op otherwise).
	a.emit(0xf3, 0x0f, 0x1e, 0xfa)
	for i, insn := range insns {
		a.starts[i] = len(a.b)
		k := insn.K
		next := i + 1
		switch kindOf[insn.Code] {
		case opRetK:
			a.emit(0xb8) // mov eax, imm32
			a.imm32(k)
			a.emit(0xc3) // ret
		case opRetA:
			a.emit(0xc3)

		case opLdImm:
			a.emit(0xb8)
			a.imm32(k)
		case opLdxImm:
			a.emit(0xb9) // mov ecx, imm32
			a.imm32(k)
		case opLdLen:
			a.emit(0x44, 0x89, 0xc0) // mov eax, r8d
		case opLdxLen:
			a.emit(0x44, 0x89, 0xc1) // mov ecx, r8d
		case opLdMem:
			a.emit(0x41, 0x8b, 0x41, byte(k*4)) // mov eax, [r9+4k]
		case opLdxMem:
			a.emit(0x41, 0x8b, 0x49, byte(k*4)) // mov ecx, [r9+4k]
		case opSt:
			a.emit(0x41, 0x89, 0x41, byte(k*4)) // mov [r9+4k], eax
		case opStx:
			a.emit(0x41, 0x89, 0x49, byte(k*4)) // mov [r9+4k], ecx
		case opTax:
			a.emit(0x89, 0xc1) // mov ecx, eax
		case opTxa:
			a.emit(0x89, 0xc8) // mov eax, ecx

		case opLdAbsW:
			if a.checkAbs(k, 4) {
				a.emit(0x8b, 0x86) // mov eax, [rsi+disp32]
				a.imm32(k)
				a.emit(0x0f, 0xc8) // bswap eax
			}
		case opLdAbsH:
			if a.checkAbs(k, 2) {
				a.emit(0x0f, 0xb7, 0x86) // movzx eax, word [rsi+disp32]
				a.imm32(k)
				a.emit(0x66, 0xc1, 0xc0, 0x08) // rol ax, 8
			}
		case opLdAbsB:
			if a.checkAbs(k, 1) {
				a.emit(0x0f, 0xb6, 0x86) // movzx eax, byte [rsi+disp32]
				a.imm32(k)
			}
		case opLdIndW:
			a.checkInd(k, 4)
			a.emit(0x42, 0x8b, 0x04, 0x16) // mov eax, [rsi+r10]
			a.emit(0x0f, 0xc8)
		case opLdIndH:
			a.checkInd(k, 2)
			a.emit(0x42, 0x0f, 0xb7, 0x04, 0x16) // movzx eax, word [rsi+r10]
			a.emit(0x66, 0xc1, 0xc0, 0x08)
		case opLdIndB:
			a.checkInd(k, 1)
			a.emit(0x42, 0x0f, 0xb6, 0x04, 0x16) // movzx eax, byte [rsi+r10]
		case opLdxMsh:
			if a.checkAbs(k, 1) {
				a.emit(0x0f, 0xb6, 0x8e) // movzx ecx, byte [rsi+disp32]
				a.imm32(k)
				a.emit(0x83, 0xe1, 0x0f) // and ecx, 15
				a.emit(0xc1, 0xe1, 0x02) // shl ecx, 2
			}

		case opAddK:
			a.emit(0x05)
			a.imm32(k)
		case opSubK:
			a.emit(0x2d)
			a.imm32(k)
		case opMulK:
			a.emit(0x69, 0xc0) // imul eax, eax, imm32: the low half is the unsigned product
			a.imm32(k)
		case opDivK, opModK:
			a.emit(0x41, 0xba) // mov r10d, imm32 (Validate refused k = 0)
			a.imm32(k)
			a.emit(0x31, 0xd2)       // xor edx, edx
			a.emit(0x41, 0xf7, 0xf2) // div r10d
			if kindOf[insn.Code] == opModK {
				a.emit(0x89, 0xd0) // mov eax, edx
			}
		case opOrK:
			a.emit(0x0d)
			a.imm32(k)
		case opAndK:
			a.emit(0x25)
			a.imm32(k)
		case opXorK:
			a.emit(0x35)
			a.imm32(k)
		case opLshK:
			a.emit(0xc1, 0xe0, byte(k&31)) // shl eax, imm8
		case opRshK:
			a.emit(0xc1, 0xe8, byte(k&31)) // shr eax, imm8
		case opAddX:
			a.emit(0x01, 0xc8)
		case opSubX:
			a.emit(0x29, 0xc8)
		case opMulX:
			a.emit(0x0f, 0xaf, 0xc1) // imul eax, ecx
		case opDivX, opModX:
			a.emit(0x85, 0xc9) // test ecx, ecx
			a.jumpReject(opJE...)
			a.emit(0x31, 0xd2) // xor edx, edx
			a.emit(0xf7, 0xf1) // div ecx
			if kindOf[insn.Code] == opModX {
				a.emit(0x89, 0xd0)
			}
		case opOrX:
			a.emit(0x09, 0xc8)
		case opAndX:
			a.emit(0x21, 0xc8)
		case opXorX:
			a.emit(0x31, 0xc8)
		case opLshX:
			a.emit(0xd3, 0xe0) // shl eax, cl: the CPU masks the count to 5 bits
		case opRshX:
			a.emit(0xd3, 0xe8) // shr eax, cl
		case opNeg:
			a.emit(0xf7, 0xd8)

		case opJa:
			if target := next + int(k); target != next {
				a.jumpTo(target, opJMP...)
			}
		case opJeqK, opJgtK, opJgeK, opJsetK, opJeqX, opJgtX, opJgeX, opJsetX:
			jt, jf := next+int(insn.Jt), next+int(insn.Jf)
			var cond []byte
			switch kindOf[insn.Code] {
			case opJeqK:
				a.emit(0x3d) // cmp eax, imm32
				a.imm32(k)
				cond = opJE
			case opJgtK:
				a.emit(0x3d)
				a.imm32(k)
				cond = opJA
			case opJgeK:
				a.emit(0x3d)
				a.imm32(k)
				cond = opJAE
			case opJsetK:
				a.emit(0xa9) // test eax, imm32
				a.imm32(k)
				cond = opJNE
			case opJeqX:
				a.emit(0x39, 0xc8) // cmp eax, ecx
				cond = opJE
			case opJgtX:
				a.emit(0x39, 0xc8)
				cond = opJA
			case opJgeX:
				a.emit(0x39, 0xc8)
				cond = opJAE
			case opJsetX:
				a.emit(0x85, 0xc8) // test eax, ecx
				cond = opJNE
			}
			switch {
			case jt == jf:
				if jt != next {
					a.jumpTo(jt, opJMP...)
				}
			case jt == next:
				a.jumpTo(jf, invert(cond)...)
			default:
				a.jumpTo(jt, cond...)
				if jf != next {
					a.jumpTo(jf, opJMP...)
				}
			}
		}
	}
	// Validate guarantees a RET last, so control never reaches here;
	// what follows is the shared "return 0".
	rejectAt := len(a.b)
	a.emit(0x31, 0xc0, 0xc3) // xor eax, eax; ret
	for _, f := range a.fixups {
		binary.LittleEndian.PutUint32(a.b[f.off:], uint32(int32(a.starts[f.target]-(f.off+4))))
	}
	for _, off := range a.reject {
		binary.LittleEndian.PutUint32(a.b[off:], uint32(int32(rejectAt-(off+4))))
	}
	return a.b
}

// invert gives the opposite condition of a 0F 8x jump.
func invert(cond []byte) []byte {
	return []byte{cond[0], cond[1] ^ 1}
}
