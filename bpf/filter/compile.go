package filter

import "sync/atomic"

// opKind is an operation of the pre-decoded program. The values are dense,
// starting at zero, so that the interpreter's switch compiles to a jump
// table. opRetK is zero on purpose: a zero op is "ret #0", which makes the
// unused tail of Program.ops reject rather than run off the end.
type opKind uint8

const (
	opRetK opKind = iota
	opRetA

	opLdImm
	opLdxImm
	opLdLen
	opLdxLen
	opLdMem
	opLdxMem
	opSt
	opStx
	opTax
	opTxa

	opLdAbsW
	opLdAbsH
	opLdAbsB
	opLdIndW
	opLdIndH
	opLdIndB
	opLdxMsh

	opAddK
	opSubK
	opMulK
	opDivK
	opModK
	opOrK
	opAndK
	opXorK
	opLshK
	opRshK
	opAddX
	opSubX
	opMulX
	opDivX
	opModX
	opOrX
	opAndX
	opXorX
	opLshX
	opRshX
	opNeg

	opJa
	opJeqK
	opJgtK
	opJgeK
	opJsetK
	opJeqX
	opJgtX
	opJgeX
	opJsetX

	// Fused operations. Each is a packet load at k followed by a
	// conditional jump on the constant k2 with targets jt and jf; the
	// Msh forms first run "ldxb 4*([k3]&0xf)". They exist because tcpdump
	// emits these sequences constantly and every dispatch saved is a large
	// share of a short filter's cost. The original instructions keep their
	// own slots, so jumps that land in the middle of a fused sequence still
	// run exactly what the program says. fusedKind, mshFusedKind and
	// retFusedKind rely on the order of the groups and, within each group,
	// of the conditions (Jeq, Jgt, Jge, Jset).
	// Fused: load, then jump on a constant.
	opLdAbsWJeq
	opLdAbsWJgt
	opLdAbsWJge
	opLdAbsWJset
	opLdAbsHJeq
	opLdAbsHJgt
	opLdAbsHJge
	opLdAbsHJset
	opLdAbsBJeq
	opLdAbsBJgt
	opLdAbsBJge
	opLdAbsBJset
	opLdIndWJeq
	opLdIndWJgt
	opLdIndWJge
	opLdIndWJset
	opLdIndHJeq
	opLdIndHJgt
	opLdIndHJge
	opLdIndHJset
	opLdIndBJeq
	opLdIndBJgt
	opLdIndBJge
	opLdIndBJset
	opLdMshIndWJeq
	opLdMshIndWJgt
	opLdMshIndWJge
	opLdMshIndWJset
	opLdMshIndHJeq
	opLdMshIndHJgt
	opLdMshIndHJge
	opLdMshIndHJset
	opLdMshIndBJeq
	opLdMshIndBJgt
	opLdMshIndBJge
	opLdMshIndBJset

	// Fused, and both jump targets are "ret #k": return without dispatching.
	opLdAbsWJeqRet
	opLdAbsWJgtRet
	opLdAbsWJgeRet
	opLdAbsWJsetRet
	opLdAbsHJeqRet
	opLdAbsHJgtRet
	opLdAbsHJgeRet
	opLdAbsHJsetRet
	opLdAbsBJeqRet
	opLdAbsBJgtRet
	opLdAbsBJgeRet
	opLdAbsBJsetRet
	opLdIndWJeqRet
	opLdIndWJgtRet
	opLdIndWJgeRet
	opLdIndWJsetRet
	opLdIndHJeqRet
	opLdIndHJgtRet
	opLdIndHJgeRet
	opLdIndHJsetRet
	opLdIndBJeqRet
	opLdIndBJgtRet
	opLdIndBJgeRet
	opLdIndBJsetRet
	opLdMshIndWJeqRet
	opLdMshIndWJgtRet
	opLdMshIndWJgeRet
	opLdMshIndWJsetRet
	opLdMshIndHJeqRet
	opLdMshIndHJgtRet
	opLdMshIndHJgeRet
	opLdMshIndHJsetRet
	opLdMshIndBJeqRet
	opLdMshIndBJgtRet
	opLdMshIndBJgeRet
	opLdMshIndBJsetRet

	// Fused Jeq whose false target is another plain "jeq #k2" on the same A,
	// the shape of tcpdump's IPv6-or-IPv4 EtherType test.
	opLdAbsWJeqJeq
	opLdAbsHJeqJeq
	opLdAbsBJeqJeq
	opLdIndWJeqJeq
	opLdIndHJeqJeq
	opLdIndBJeqJeq

	// opInvalid is 255 so that Run's switch covers every value of the
	// type and its jump table needs no range check.
	opInvalid opKind = 255
)

// op is one pre-decoded operation. Jump targets are absolute indices into
// Program.ops, resolved once so that Run never adds offsets.
type op struct {
	kind   opKind
	jt, jf uint16
	k3     uint16
	k, k2  uint32
}

// fusedKind returns the fused operation for a load followed by a conditional
// jump on a constant, or opInvalid when the pair has no fused form.
func fusedKind(load, jump opKind) opKind {
	var group opKind
	switch load {
	case opLdAbsW:
		group = opLdAbsWJeq
	case opLdAbsH:
		group = opLdAbsHJeq
	case opLdAbsB:
		group = opLdAbsBJeq
	case opLdIndW:
		group = opLdIndWJeq
	case opLdIndH:
		group = opLdIndHJeq
	case opLdIndB:
		group = opLdIndBJeq
	default:
		return opInvalid
	}
	switch jump {
	case opJeqK:
		return group
	case opJgtK:
		return group + 1
	case opJgeK:
		return group + 2
	case opJsetK:
		return group + 3
	}
	return opInvalid
}

// mshFusedKind returns the form of an already fused indirect load that first
// runs ldxb 4*([k3]&0xf), or opInvalid.
func mshFusedKind(next opKind) opKind {
	if next >= opLdIndWJeq && next <= opLdIndBJset {
		return next - opLdIndWJeq + opLdMshIndWJeq
	}
	return opInvalid
}

// retFusedKind returns the form of a fused operation that returns the
// constant of the RET it jumps to, or opInvalid.
func retFusedKind(fused opKind) opKind {
	if fused >= opLdAbsWJeq && fused <= opLdMshIndBJset {
		return fused - opLdAbsWJeq + opLdAbsWJeqRet
	}
	return opInvalid
}

// jeqJeqKind returns the form of a fused load and jeq that also evaluates
// the plain jeq its false branch lands on, or opInvalid.
func jeqJeqKind(fused opKind) opKind {
	switch fused {
	case opLdAbsWJeq:
		return opLdAbsWJeqJeq
	case opLdAbsHJeq:
		return opLdAbsHJeqJeq
	case opLdAbsBJeq:
		return opLdAbsBJeqJeq
	case opLdIndWJeq:
		return opLdIndWJeqJeq
	case opLdIndHJeq:
		return opLdIndHJeqJeq
	case opLdIndBJeq:
		return opLdIndBJeqJeq
	}
	return opInvalid
}

// Program is a validated, prepared program. It is immutable and safe for
// concurrent use by any number of goroutines calling Run.
type Program struct {
	insns []Instruction
	// ops always has MaxInstructions slots so that Run can index it with a
	// masked program counter instead of a bounds check; slots past the
	// program are zero, which is "ret #0". nil for the empty program.
	ops *[MaxInstructions]op
	// jit is the program translated to machine code (amd64), which Run
	// prefers; nil where there is none or SetJIT turned it off.
	jit *jitCode
	// usesScratch tells whether the program reads or writes the scratch
	// memory, which the machine code then needs zeroed.
	usesScratch bool
}

// jitEnabled is SetJIT's switch.
var jitEnabled atomic.Bool

func init() { jitEnabled.Store(true) }

// SetJIT chooses whether programs compiled from now on also get a machine
// code translation (on amd64; elsewhere there is none). It is on by
// default; the interpreter gives the same results, more slowly.
func SetJIT(enabled bool) { jitEnabled.Store(enabled) }

// Compile validates insns and prepares them for Run. An empty program is
// valid and accepts every packet whole.
func Compile(insns []Instruction) (*Program, error) {
	p, err := compile(insns, true)
	if err == nil && p.ops != nil && jitEnabled.Load() {
		p.jit = newJIT(insns)
	}
	return p, err
}

// compile is Compile with fusion optional, so that tests can check every
// fused operation against the plain ones it replaces.
func compile(insns []Instruction, fuse bool) (*Program, error) {
	if err := Validate(insns); err != nil {
		return nil, err
	}
	p := &Program{insns: append([]Instruction(nil), insns...)}
	if len(insns) == 0 {
		return p, nil
	}
	ops := new([MaxInstructions]op)
	for i, insn := range insns {
		o := op{kind: kindOf[insn.Code], k: insn.K}
		next := uint32(i + 1)
		switch o.kind {
		case opLshK, opRshK:
			o.k &= 31
		case opJa:
			// Validate bounded k below the program length, so the sum
			// fits in 16 bits.
			o.jt = uint16(next + insn.K)
		case opJeqK, opJgtK, opJgeK, opJsetK, opJeqX, opJgtX, opJgeX, opJsetX:
			o.jt = uint16(next + uint32(insn.Jt))
			o.jf = uint16(next + uint32(insn.Jf))
		}
		ops[i] = o
		switch o.kind {
		case opLdMem, opLdxMem, opSt, opStx:
			p.usesScratch = true
		}
	}
	if fuse {
		fuseOps(ops, len(insns))
	}
	p.ops = ops
	return p, nil
}

// fuseOps rewrites the first n ops in place into fused forms.
func fuseOps(ops *[MaxInstructions]op, n int) {
	// The last instruction is a RET, so a load always has a successor.
	for i := 0; i+1 < n; i++ {
		jump := ops[i+1]
		if fused := fusedKind(ops[i].kind, jump.kind); fused != opInvalid {
			ops[i] = op{kind: fused, k: ops[i].k, k2: jump.k, jt: jump.jt, jf: jump.jf}
		}
	}
	for i := 0; i+1 < n; i++ {
		if ops[i].kind != opLdxMsh || ops[i].k > 0xffff {
			continue
		}
		if fused := mshFusedKind(ops[i+1].kind); fused != opInvalid {
			next := ops[i+1]
			next.kind = fused
			next.k3 = uint16(ops[i].k)
			ops[i] = next
		}
	}
	// Jump targets are forward and inside the program, so they index
	// instructions that are already decoded.
	for i := 0; i < n; i++ {
		o := &ops[i]
		if k := retFusedKind(o.kind); k != opInvalid && ops[o.jt].kind == opRetK && ops[o.jf].kind == opRetK {
			o.kind = k
		} else if k := jeqJeqKind(o.kind); k != opInvalid && ops[o.jf].kind == opJeqK {
			o.kind = k
		}
	}
}

// Len returns the number of instructions; 0 for a nil Program.
func (p *Program) Len() int {
	if p == nil {
		return 0
	}
	return len(p.insns)
}

// Instructions returns a copy of the program's instructions.
func (p *Program) Instructions() []Instruction {
	if p == nil {
		return nil
	}
	return append([]Instruction(nil), p.insns...)
}
