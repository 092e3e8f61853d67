package filter

// acceptAll is what a missing or empty program returns: keep the whole
// packet, like the kernel's NULL filter.
const acceptAll = 0xFFFFFFFF

// The load helpers take a 64-bit offset so that X+k can never wrap: any
// offset past 2^32 is simply out of range, which is the overflow check the
// kernel spells out by hand. Their comparisons are written in the shapes for
// which the Go compiler proves the indexing safe and drops its own bounds
// checks (checked with -d=ssa/check_bce); the first comparison also makes
// int(off) safe where int has 32 bits.

func loadWord(pkt []byte, off uint64) (uint32, bool) {
	if off >= uint64(len(pkt)) {
		return 0, false
	}
	b := pkt[off:]
	if len(b) < 4 {
		return 0, false
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

func loadHalf(pkt []byte, off uint64) (uint32, bool) {
	if off >= uint64(len(pkt)) || int(off)+1 >= len(pkt) {
		return 0, false
	}
	i := int(off)
	return uint32(pkt[i])<<8 | uint32(pkt[i+1]), true
}

func loadByte(pkt []byte, off uint64) (uint32, bool) {
	if off >= uint64(len(pkt)) {
		return 0, false
	}
	return uint32(pkt[off]), true
}

func branch(cond bool, jt, jf uint16) int {
	if cond {
		return int(jt)
	}
	return int(jf)
}

// Run executes the program over pkt, the captured bytes, with wireLen the
// packet's original length (what BPF_LD|BPF_LEN loads). It returns the
// number of bytes to keep, 0 meaning reject, unclamped. A load reaching
// beyond len(pkt) rejects the packet. A nil or empty Program accepts
// everything and returns 0xFFFFFFFF. Run does not allocate.
func (p *Program) Run(pkt []byte, wireLen uint32) uint32 {
	if p == nil || p.ops == nil {
		return acceptAll
	}
	if p.jit != nil && len(pkt) <= maxJITPacket {
		return p.runJIT(pkt, wireLen)
	}
	return p.interpret(pkt, wireLen)
}

// interpret is Run without machine code.
func (p *Program) interpret(pkt []byte, wireLen uint32) uint32 {
	ops := p.ops
	// Dropping the spare capacity spares loadWord's re-slicing a masking
	// step against cap and the loop a register shuffle per dispatch.
	pkt = pkt[:len(pkt):len(pkt)]
	var (
		a, x uint32
		mem  [MemWords]uint32
		ok   bool
	)
	pc := 0
	for {
		// The mask replaces a bounds check; targets are always in range
		// and the slots past the program hold "ret #0" anyway.
		in := &ops[pc&(MaxInstructions-1)]
		pc++
		switch in.kind {
		case opRetK:
			return in.k
		case opRetA:
			return a

		case opLdImm:
			a = in.k
		case opLdxImm:
			x = in.k
		case opLdLen:
			a = wireLen
		case opLdxLen:
			x = wireLen
		case opLdMem:
			a = mem[in.k&(MemWords-1)]
		case opLdxMem:
			x = mem[in.k&(MemWords-1)]
		case opSt:
			mem[in.k&(MemWords-1)] = a
		case opStx:
			mem[in.k&(MemWords-1)] = x
		case opTax:
			x = a
		case opTxa:
			a = x

		case opLdAbsW:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
		case opLdAbsH:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
		case opLdAbsB:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
		case opLdIndW:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
		case opLdIndH:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
		case opLdIndB:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
		case opLdxMsh:
			var v uint32
			if v, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			x = (v & 0xf) << 2

		case opAddK:
			a += in.k
		case opSubK:
			a -= in.k
		case opMulK:
			a *= in.k
		case opDivK:
			a /= in.k
		case opModK:
			a %= in.k
		case opOrK:
			a |= in.k
		case opAndK:
			a &= in.k
		case opXorK:
			a ^= in.k
		case opLshK:
			a <<= in.k // masked to 0..31 by Compile
		case opRshK:
			a >>= in.k
		case opAddX:
			a += x
		case opSubX:
			a -= x
		case opMulX:
			a *= x
		case opDivX:
			if x == 0 {
				return 0
			}
			a /= x
		case opModX:
			if x == 0 {
				return 0
			}
			a %= x
		case opOrX:
			a |= x
		case opAndX:
			a &= x
		case opXorX:
			a ^= x
		case opLshX:
			a <<= x & 31
		case opRshX:
			a >>= x & 31
		case opNeg:
			a = -a

		case opJa:
			pc = int(in.jt)
		case opJeqK:
			pc = branch(a == in.k, in.jt, in.jf)
		case opJgtK:
			pc = branch(a > in.k, in.jt, in.jf)
		case opJgeK:
			pc = branch(a >= in.k, in.jt, in.jf)
		case opJsetK:
			pc = branch(a&in.k != 0, in.jt, in.jf)
		case opJeqX:
			pc = branch(a == x, in.jt, in.jf)
		case opJgtX:
			pc = branch(a > x, in.jt, in.jf)
		case opJgeX:
			pc = branch(a >= x, in.jt, in.jf)
		case opJsetX:
			pc = branch(a&x != 0, in.jt, in.jf)

		case opLdAbsWJeq:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdAbsWJgt:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdAbsWJge:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdAbsWJset:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdAbsHJeq:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdAbsHJgt:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdAbsHJge:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdAbsHJset:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdAbsBJeq:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdAbsBJgt:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdAbsBJge:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdAbsBJset:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdIndWJeq:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdIndWJgt:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdIndWJge:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdIndWJset:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdIndHJeq:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdIndHJgt:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdIndHJge:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdIndHJset:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdIndBJeq:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdIndBJgt:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdIndBJge:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdIndBJset:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdMshIndWJeq:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdMshIndWJgt:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdMshIndWJge:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdMshIndWJset:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdMshIndHJeq:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdMshIndHJgt:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdMshIndHJge:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdMshIndHJset:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)
		case opLdMshIndBJeq:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a == in.k2, in.jt, in.jf)
		case opLdMshIndBJgt:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a > in.k2, in.jt, in.jf)
		case opLdMshIndBJge:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a >= in.k2, in.jt, in.jf)
		case opLdMshIndBJset:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			pc = branch(a&in.k2 != 0, in.jt, in.jf)

		case opLdAbsWJeqRet:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsWJgtRet:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsWJgeRet:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsWJsetRet:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsHJeqRet:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsHJgtRet:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsHJgeRet:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsHJsetRet:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsBJeqRet:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsBJgtRet:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsBJgeRet:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdAbsBJsetRet:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndWJeqRet:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndWJgtRet:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndWJgeRet:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndWJsetRet:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndHJeqRet:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndHJgtRet:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndHJgeRet:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndHJsetRet:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndBJeqRet:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndBJgtRet:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndBJgeRet:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdIndBJsetRet:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndWJeqRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndWJgtRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndWJgeRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndWJsetRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndHJeqRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndHJgtRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndHJgeRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndHJsetRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndBJeqRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a == in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndBJgtRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a > in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndBJgeRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a >= in.k2, in.jt, in.jf)&(MaxInstructions-1)].k
		case opLdMshIndBJsetRet:
			if x, ok = loadByte(pkt, uint64(in.k3)); !ok {
				return 0
			}
			x = (x & 0xf) << 2
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			return ops[branch(a&in.k2 != 0, in.jt, in.jf)&(MaxInstructions-1)].k

		case opLdAbsWJeqJeq:
			if a, ok = loadWord(pkt, uint64(in.k)); !ok {
				return 0
			}
			if a == in.k2 {
				pc = int(in.jt)
			} else {
				next := &ops[in.jf&(MaxInstructions-1)]
				pc = branch(a == next.k, next.jt, next.jf)
			}
		case opLdAbsHJeqJeq:
			if a, ok = loadHalf(pkt, uint64(in.k)); !ok {
				return 0
			}
			if a == in.k2 {
				pc = int(in.jt)
			} else {
				next := &ops[in.jf&(MaxInstructions-1)]
				pc = branch(a == next.k, next.jt, next.jf)
			}
		case opLdAbsBJeqJeq:
			if a, ok = loadByte(pkt, uint64(in.k)); !ok {
				return 0
			}
			if a == in.k2 {
				pc = int(in.jt)
			} else {
				next := &ops[in.jf&(MaxInstructions-1)]
				pc = branch(a == next.k, next.jt, next.jf)
			}
		case opLdIndWJeqJeq:
			if a, ok = loadWord(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			if a == in.k2 {
				pc = int(in.jt)
			} else {
				next := &ops[in.jf&(MaxInstructions-1)]
				pc = branch(a == next.k, next.jt, next.jf)
			}
		case opLdIndHJeqJeq:
			if a, ok = loadHalf(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			if a == in.k2 {
				pc = int(in.jt)
			} else {
				next := &ops[in.jf&(MaxInstructions-1)]
				pc = branch(a == next.k, next.jt, next.jf)
			}
		case opLdIndBJeqJeq:
			if a, ok = loadByte(pkt, uint64(x)+uint64(in.k)); !ok {
				return 0
			}
			if a == in.k2 {
				pc = int(in.jt)
			} else {
				next := &ops[in.jf&(MaxInstructions-1)]
				pc = branch(a == next.k, next.jt, next.jf)
			}

		case opInvalid:
			// Never emitted; the case exists so that the switch spans the
			// whole uint8 range (see opInvalid).
			return 0
		default:
			return 0
		}
	}
}
