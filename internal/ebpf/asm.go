//go:build linux

package ebpf

import "fmt"

// Asm collects instructions with named jump targets, so that hand-written
// programs need no counted offsets.
type Asm struct {
	insns  []Insn
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at    int
	label string
}

// Emit appends instructions.
func (a *Asm) Emit(in ...Insn) { a.insns = append(a.insns, in...) }

// Emit2 appends a two-slot instruction (LoadMapFD, LoadMapValue).
func (a *Asm) Emit2(in [2]Insn) { a.insns = append(a.insns, in[0], in[1]) }

// Label names the next instruction.
func (a *Asm) Label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
}

// JumpIf jumps to label when dst op imm; op is JEQ, JNE, JGT or JSGT.
func (a *Asm) JumpIf(op uint8, dst uint8, imm int32, label string) {
	a.fixups = append(a.fixups, fixup{len(a.insns), label})
	a.Emit(JumpImm(op, dst, imm, 0))
}

// Goto jumps to label.
func (a *Asm) Goto(label string) {
	a.fixups = append(a.fixups, fixup{len(a.insns), label})
	a.Emit(Ja(0))
}

// Program resolves the labels.
func (a *Asm) Program() ([]Insn, error) {
	out := append([]Insn(nil), a.insns...)
	for _, f := range a.fixups {
		to, ok := a.labels[f.label]
		if !ok {
			return nil, fmt.Errorf("ebpf: no label %q", f.label)
		}
		off := to - f.at - 1
		if off != int(int16(off)) {
			return nil, fmt.Errorf("ebpf: jump to %q too far", f.label)
		}
		out[f.at].Off = int16(off)
	}
	return out, nil
}
