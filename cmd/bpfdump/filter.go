package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Opcode parts of classic BPF (bpf(4)).
const (
	clsLD, clsLDX, clsST, clsSTX, clsALU, clsJMP, clsRET, clsMISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07

	sizeW, sizeH, sizeB = 0x00, 0x08, 0x10

	modeIMM, modeABS, modeIND, modeMEM, modeLEN, modeMSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xa0

	srcK, srcX = 0x00, 0x08
	retA       = 0x10

	miscTAX, miscTXA = 0x00, 0x80
)

var aluOps = map[string]uint16{
	"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50,
	"lsh": 0x60, "rsh": 0x70, "neg": 0x80, "mod": 0x90, "xor": 0xa0,
}

var jumpOps = map[string]uint16{"jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40}

// parseFilter reads a filter program in one of three forms, telling them
// apart by their look:
//
//   - tcpdump -dd: C initialisers, one per line: { 0x28, 0, 0, 0x0000000c },
//   - tcpdump -ddd: the instruction count on the first line, then one
//     "code jt jf k" line of decimal numbers per instruction;
//   - tcpdump -d: assembly, one instruction per line (or separated by
//     ';'), with or without the "(000)" line numbers, jump targets given
//     as absolute instruction numbers as tcpdump prints them.
func parseFilter(text string) ([]bpf.RawInstruction, error) {
	lines := filterLines(text)
	if len(lines) == 0 {
		return nil, errors.New("filter: no instructions")
	}
	switch {
	case strings.HasPrefix(lines[0], "{"):
		return parseDD(lines)
	case isDecimal(lines[0]):
		return parseDDD(lines)
	}
	return parseAssembly(lines)
}

// filterLines splits text into non-empty trimmed lines, ';' separating
// lines too, and drops # and // comments.
func filterLines(text string) []string {
	var out []string
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' }) {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func isDecimal(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

var ddLine = regexp.MustCompile(`^\{\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*\}\s*,?$`)

func parseDD(lines []string) ([]bpf.RawInstruction, error) {
	var prog []bpf.RawInstruction
	for i, line := range lines {
		m := ddLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("filter line %d: %q is not a { code, jt, jf, k } initialiser", i+1, line)
		}
		ins, err := rawFromFields(m[1:])
		if err != nil {
			return nil, fmt.Errorf("filter line %d: %w", i+1, err)
		}
		prog = append(prog, ins)
	}
	return prog, nil
}

func parseDDD(lines []string) ([]bpf.RawInstruction, error) {
	count, _ := strconv.Atoi(lines[0])
	if count != len(lines)-1 {
		return nil, fmt.Errorf("filter: the first line announces %d instructions, %d follow", count, len(lines)-1)
	}
	var prog []bpf.RawInstruction
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("filter line %d: %q is not \"code jt jf k\"", i+2, line)
		}
		ins, err := rawFromFields(f)
		if err != nil {
			return nil, fmt.Errorf("filter line %d: %w", i+2, err)
		}
		prog = append(prog, ins)
	}
	return prog, nil
}

func rawFromFields(f []string) (bpf.RawInstruction, error) {
	var v [4]uint64
	for i, bitsize := range []int{16, 8, 8, 32} {
		n, err := strconv.ParseUint(f[i], 0, bitsize)
		if err != nil {
			return bpf.RawInstruction{}, fmt.Errorf("field %q: %w", f[i], err)
		}
		v[i] = n
	}
	return bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}, nil
}

var lineNumber = regexp.MustCompile(`^\((\d+)\)\s*`)

func parseAssembly(lines []string) ([]bpf.RawInstruction, error) {
	prog := make([]bpf.RawInstruction, 0, len(lines))
	for i, line := range lines {
		if m := lineNumber.FindStringSubmatch(line); m != nil {
			if n, _ := strconv.Atoi(m[1]); n != i {
				return nil, fmt.Errorf("filter line %d: numbered (%s), expected (%03d)", i+1, m[1], i)
			}
			line = line[len(m[0]):]
		}
		ins, err := assembleLine(i, strings.Fields(line))
		if err != nil {
			return nil, fmt.Errorf("filter line %d: %q: %w", i+1, line, err)
		}
		prog = append(prog, ins)
	}
	return prog, nil
}

// number parses "#0x800", "0x800", "#17" or "17".
func number(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 0, 32)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return uint32(v), nil
}

var (
	absOperand = regexp.MustCompile(`^\[(\w+)\]$`)
	indOperand = regexp.MustCompile(`^\[x\s*\+\s*(\w+)\]$`)
	memOperand = regexp.MustCompile(`^M\[(\w+)\]$`)
	mshOperand = regexp.MustCompile(`^4\*\(\[(\w+)\]&0xf\)$`)
)

// assembleLine turns one tcpdump -d instruction into its encoding; pc is
// its index, for the absolute jump targets tcpdump prints.
func assembleLine(pc int, f []string) (bpf.RawInstruction, error) {
	if len(f) == 0 {
		return bpf.RawInstruction{}, errors.New("empty instruction")
	}
	op, args := f[0], f[1:]
	operand := strings.Join(args, "")
	k := func(s string) (bpf.RawInstruction, error) { return bpf.RawInstruction{}, errors.New(s) }
	switch op {
	case "ld", "ldh", "ldb", "ldx", "ldxb":
		size := map[string]uint16{"ld": sizeW, "ldh": sizeH, "ldb": sizeB, "ldx": sizeW, "ldxb": sizeB}[op]
		cls := uint16(clsLD)
		if strings.HasPrefix(op, "ldx") {
			cls = clsLDX
		}
		if m := mshOperand.FindStringSubmatch(operand); m != nil && cls == clsLDX {
			v, err := number(m[1])
			return bpf.RawInstruction{Op: clsLDX | sizeB | modeMSH, K: v}, err
		}
		if operand == "len" || operand == "#len" || operand == "#pktlen" {
			return bpf.RawInstruction{Op: cls | sizeW | modeLEN}, nil
		}
		if m := memOperand.FindStringSubmatch(operand); m != nil {
			v, err := number(m[1])
			return bpf.RawInstruction{Op: cls | sizeW | modeMEM, K: v}, err
		}
		if m := absOperand.FindStringSubmatch(operand); m != nil && cls == clsLD {
			v, err := number(m[1])
			return bpf.RawInstruction{Op: cls | size | modeABS, K: v}, err
		}
		if m := indOperand.FindStringSubmatch(operand); m != nil && cls == clsLD {
			v, err := number(m[1])
			return bpf.RawInstruction{Op: cls | size | modeIND, K: v}, err
		}
		if strings.HasPrefix(operand, "#") && size == sizeW {
			v, err := number(operand)
			return bpf.RawInstruction{Op: cls | sizeW | modeIMM, K: v}, err
		}
		return k("unknown operand for " + op)
	case "st", "stx":
		m := memOperand.FindStringSubmatch(operand)
		if m == nil {
			return k(op + " needs M[k]")
		}
		v, err := number(m[1])
		cls := uint16(clsST)
		if op == "stx" {
			cls = clsSTX
		}
		return bpf.RawInstruction{Op: cls, K: v}, err
	case "ret":
		if operand == "a" || operand == "A" {
			return bpf.RawInstruction{Op: clsRET | retA}, nil
		}
		v, err := number(operand)
		return bpf.RawInstruction{Op: clsRET, K: v}, err
	case "tax":
		return bpf.RawInstruction{Op: clsMISC | miscTAX}, nil
	case "txa":
		return bpf.RawInstruction{Op: clsMISC | miscTXA}, nil
	case "ja", "jmp":
		if len(args) != 1 {
			return k(op + " needs one target")
		}
		target, err := number(args[0])
		if err != nil {
			return bpf.RawInstruction{}, err
		}
		if int(target) <= pc {
			return k("jump target must lie ahead")
		}
		return bpf.RawInstruction{Op: clsJMP, K: target - uint32(pc) - 1}, nil
	}
	if code, ok := aluOps[op]; ok {
		if op == "neg" {
			return bpf.RawInstruction{Op: clsALU | code}, nil
		}
		if operand == "x" || operand == "X" {
			return bpf.RawInstruction{Op: clsALU | code | srcX}, nil
		}
		v, err := number(operand)
		return bpf.RawInstruction{Op: clsALU | code | srcK, K: v}, err
	}
	if code, ok := jumpOps[op]; ok {
		// jeq #k jt N jf M; "jf M" may be missing (then it falls through).
		if len(args) < 3 || args[1] != "jt" || len(args) != 3 && (len(args) != 5 || args[3] != "jf") {
			return k(op + " needs: #k|x jt N [jf M]")
		}
		ins := bpf.RawInstruction{Op: clsJMP | code}
		if args[0] == "x" || args[0] == "X" {
			ins.Op |= srcX
		} else {
			v, err := number(args[0])
			if err != nil {
				return ins, err
			}
			ins.K = v
		}
		jt, err := relative(pc, args[2])
		if err != nil {
			return ins, err
		}
		jf := uint8(0)
		if len(args) == 5 {
			if jf, err = relative(pc, args[4]); err != nil {
				return ins, err
			}
		}
		ins.Jt, ins.Jf = jt, jf
		return ins, nil
	}
	return k("unknown instruction " + op)
}

// relative turns an absolute target into a conditional jump's offset.
func relative(pc int, s string) (uint8, error) {
	target, err := number(s)
	if err != nil {
		return 0, err
	}
	off := int(target) - pc - 1
	if off < 0 || off > 255 {
		return 0, fmt.Errorf("jump target %d out of reach from %d", target, pc)
	}
	return uint8(off), nil
}
