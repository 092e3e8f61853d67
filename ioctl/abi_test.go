package ioctl

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/bpffs/bpffs/internal/testenv"
)

// The Linux-encoded values as published in clients.md §3 and bpf-facts.md
// §1.2, written out independently of both the Go constants and the helpers.
type commandCase struct {
	name               string
	cmd                uint32 // the package's constant
	want               uint32 // the published value
	dir, group, nr, sz uint32
	byHelper           uint32 // ior/iow/iowr/io applied to the C macro's arguments
}

var wantCommands = []commandCase{
	{"BIOCGBLEN", BIOCGBLEN, 0x80044266, DirRead, 'B', 102, 4, ior('B', 102, 4)},
	{"BIOCSBLEN", BIOCSBLEN, 0xc0044266, DirReadWrite, 'B', 102, 4, iowr('B', 102, 4)},
	{"BIOCSETF", BIOCSETF, 0x40104267, DirWrite, 'B', 103, 16, iow('B', 103, 16)},
	{"BIOCFLUSH", BIOCFLUSH, 0x00004268, DirNone, 'B', 104, 0, io('B', 104)},
	{"BIOCPROMISC", BIOCPROMISC, 0x00004269, DirNone, 'B', 105, 0, io('B', 105)},
	{"BIOCGDLT", BIOCGDLT, 0x8004426a, DirRead, 'B', 106, 4, ior('B', 106, 4)},
	{"BIOCGETIF", BIOCGETIF, 0x8028426b, DirRead, 'B', 107, 40, ior('B', 107, 40)},
	{"BIOCSETIF", BIOCSETIF, 0x4028426c, DirWrite, 'B', 108, 40, iow('B', 108, 40)},
	{"BIOCSRTIMEOUT", BIOCSRTIMEOUT, 0x4010426d, DirWrite, 'B', 109, 16, iow('B', 109, 16)},
	{"BIOCGRTIMEOUT", BIOCGRTIMEOUT, 0x8010426e, DirRead, 'B', 110, 16, ior('B', 110, 16)},
	{"BIOCGSTATS", BIOCGSTATS, 0x8008426f, DirRead, 'B', 111, 8, ior('B', 111, 8)},
	{"BIOCIMMEDIATE", BIOCIMMEDIATE, 0x40044270, DirWrite, 'B', 112, 4, iow('B', 112, 4)},
	{"BIOCVERSION", BIOCVERSION, 0x80044271, DirRead, 'B', 113, 4, ior('B', 113, 4)},
	{"BIOCGRSIG", BIOCGRSIG, 0x80044272, DirRead, 'B', 114, 4, ior('B', 114, 4)},
	{"BIOCSRSIG", BIOCSRSIG, 0x40044273, DirWrite, 'B', 115, 4, iow('B', 115, 4)},
	{"BIOCGHDRCMPLT", BIOCGHDRCMPLT, 0x80044274, DirRead, 'B', 116, 4, ior('B', 116, 4)},
	{"BIOCSHDRCMPLT", BIOCSHDRCMPLT, 0x40044275, DirWrite, 'B', 117, 4, iow('B', 117, 4)},
	{"BIOCGDIRECTION", BIOCGDIRECTION, 0x80044276, DirRead, 'B', 118, 4, ior('B', 118, 4)},
	{"BIOCSDIRECTION", BIOCSDIRECTION, 0x40044277, DirWrite, 'B', 119, 4, iow('B', 119, 4)},
	{"BIOCGSEESENT", BIOCGSEESENT, 0x80044276, DirRead, 'B', 118, 4, ior('B', 118, 4)},
	{"BIOCSSEESENT", BIOCSSEESENT, 0x40044277, DirWrite, 'B', 119, 4, iow('B', 119, 4)},
	{"BIOCSDLT", BIOCSDLT, 0x40044278, DirWrite, 'B', 120, 4, iow('B', 120, 4)},
	{"BIOCGDLTLIST", BIOCGDLTLIST, 0xc0104279, DirReadWrite, 'B', 121, 16, iowr('B', 121, 16)},
	{"BIOCLOCK", BIOCLOCK, 0x0000427a, DirNone, 'B', 122, 0, io('B', 122)},
	{"BIOCSETWF", BIOCSETWF, 0x4010427b, DirWrite, 'B', 123, 16, iow('B', 123, 16)},
	{"BIOCFEEDBACK", BIOCFEEDBACK, 0x4004427c, DirWrite, 'B', 124, 4, iow('B', 124, 4)},
	{"BIOCGETBUFMODE", BIOCGETBUFMODE, 0x8004427d, DirRead, 'B', 125, 4, ior('B', 125, 4)},
	{"BIOCSETBUFMODE", BIOCSETBUFMODE, 0x4004427e, DirWrite, 'B', 126, 4, iow('B', 126, 4)},
	{"BIOCGETZMAX", BIOCGETZMAX, 0x8008427f, DirRead, 'B', 127, 8, ior('B', 127, 8)},
	{"BIOCROTZBUF", BIOCROTZBUF, 0x80184280, DirRead, 'B', 128, 24, ior('B', 128, 24)},
	{"BIOCSETZBUF", BIOCSETZBUF, 0x40184281, DirWrite, 'B', 129, 24, iow('B', 129, 24)},
	{"BIOCSETFNR", BIOCSETFNR, 0x40104282, DirWrite, 'B', 130, 16, iow('B', 130, 16)},
	{"BIOCGTSTAMP", BIOCGTSTAMP, 0x80044283, DirRead, 'B', 131, 4, ior('B', 131, 4)},
	{"BIOCSTSTAMP", BIOCSTSTAMP, 0x40044284, DirWrite, 'B', 132, 4, iow('B', 132, 4)},
	{"BIOCSETVLANPCP", BIOCSETVLANPCP, 0x40044285, DirWrite, 'B', 133, 4, iow('B', 133, 4)},
	{"BIOCGFIONREAD", BIOCGFIONREAD, 0x800442c8, DirRead, 'B', 200, 4, ior('B', 200, 4)},
	{"TCGETS", TCGETS, 0x00005401, DirNone, 'T', 1, 0, io('T', 1)},
	{"FIONREAD_BSD", FIONREAD_BSD, 0x8004667f, DirRead, 'f', 127, 4, ior('f', 127, 4)},
	{"FIONBIO_BSD", FIONBIO_BSD, 0x4004667e, DirWrite, 'f', 126, 4, iow('f', 126, 4)},
	{"FIOASYNC_BSD", FIOASYNC_BSD, 0x4004667d, DirWrite, 'f', 125, 4, iow('f', 125, 4)},
	{"FIOSETOWN_BSD", FIOSETOWN_BSD, 0x4004667c, DirWrite, 'f', 124, 4, iow('f', 124, 4)},
	{"FIOGETOWN_BSD", FIOGETOWN_BSD, 0x8004667b, DirRead, 'f', 123, 4, ior('f', 123, 4)},
	{"TIOCSPGRP_BSD", TIOCSPGRP_BSD, 0x40047476, DirWrite, 't', 118, 4, iow('t', 118, 4)},
	{"TIOCGPGRP_BSD", TIOCGPGRP_BSD, 0x80047477, DirRead, 't', 119, 4, ior('t', 119, 4)},
}

func TestCommandNumbers(t *testing.T) {
	for _, c := range wantCommands {
		if c.cmd != c.want {
			t.Errorf("%s = %#08x, want %#08x", c.name, c.cmd, c.want)
		}
		if c.byHelper != c.want {
			t.Errorf("helper for %s gives %#08x, want %#08x", c.name, c.byHelper, c.want)
		}
		if got := Dir(c.cmd); got != c.dir {
			t.Errorf("Dir(%s) = %d, want %d", c.name, got, c.dir)
		}
		if got := Group(c.cmd); got != c.group {
			t.Errorf("Group(%s) = %q, want %q", c.name, rune(got), rune(c.group))
		}
		if got := Number(c.cmd); got != c.nr {
			t.Errorf("Number(%s) = %d, want %d", c.name, got, c.nr)
		}
		if got := Size(c.cmd); got != c.sz {
			t.Errorf("Size(%s) = %d, want %d", c.name, got, c.sz)
		}
	}
}

func TestCommandsAreDistinct(t *testing.T) {
	seen := map[uint32]string{}
	for _, c := range commands {
		if other, dup := seen[c.cmd]; dup {
			t.Errorf("%s and %s share %#08x", c.name, other, c.cmd)
		}
		seen[c.cmd] = c.name
	}
}

func TestName(t *testing.T) {
	for _, c := range wantCommands {
		want := c.name
		switch want {
		case "BIOCGSEESENT":
			want = "BIOCGDIRECTION"
		case "BIOCSSEESENT":
			want = "BIOCSDIRECTION"
		}
		if got := Name(c.cmd); got != want {
			t.Errorf("Name(%#08x) = %q, want %q", c.cmd, got, want)
		}
	}
	for _, cmd := range []uint32{0, 0x541b, 0x8020426c, 0xffffffff} {
		if got := Name(cmd); got != "" {
			t.Errorf("Name(%#08x) = %q, want \"\"", cmd, got)
		}
	}
}

// Every command constant declared in abi.go must be in the commands table
// and in wantCommands, so that a new one cannot skip the checks above.
func TestEveryCommandIsTabled(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "abi.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	isCommand := regexp.MustCompile(`^(BIOC[A-Z]+|[A-Z]+_BSD|TCGETS)$`)
	aliases := map[string]bool{"BIOCGSEESENT": true, "BIOCSSEESENT": true}
	var declared []string
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			for _, id := range spec.(*ast.ValueSpec).Names {
				if isCommand.MatchString(id.Name) {
					declared = append(declared, id.Name)
				}
			}
		}
	}
	if len(declared) < 40 {
		t.Fatalf("found only %d command constants in abi.go: %v", len(declared), declared)
	}
	for _, name := range declared {
		if !aliases[name] && !slices.ContainsFunc(commands[:], func(c namedCommand) bool { return c.name == name }) {
			t.Errorf("%s is not in the commands table", name)
		}
		if !slices.ContainsFunc(wantCommands, func(c commandCase) bool { return c.name == name }) {
			t.Errorf("%s is not in wantCommands", name)
		}
	}
}

func TestValidTimestampType(t *testing.T) {
	valid := []uint32{0, 1, 2, 3, 0x100, 0x101, 0x102, 0x200, 0x201, 0x202, 0x300, 0x301, 0x302}
	for v := uint32(0); v <= 0x1000; v++ {
		if got, want := ValidTimestampType(v), slices.Contains(valid, v); got != want {
			t.Errorf("ValidTimestampType(%#x) = %v, want %v", v, got, want)
		}
	}
	if ValidTimestampType(0xffffffff) {
		t.Error("ValidTimestampType(0xffffffff) = true")
	}
}

// Opcodes in the header must be the ones x/net/bpf assembles, since the
// daemon runs client programs through it.
func TestOpcodesMatchXNetBPF(t *testing.T) {
	for _, c := range []struct {
		insn bpf.Instruction
		op   uint16
	}{
		{bpf.LoadAbsolute{Off: 12, Size: 2}, 0x28},
		{bpf.LoadMemShift{Off: 14}, 0xb1},
		{bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: 3}, 0x94},
		{bpf.ALUOpX{Op: bpf.ALUOpXor}, 0xac},
		{bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 1, SkipTrue: 1}, 0x45},
		{bpf.RetA{}, 0x16},
		{bpf.TXA{}, 0x87},
	} {
		raw, err := c.insn.Assemble()
		if err != nil {
			t.Fatalf("%#v: %v", c.insn, err)
		}
		if raw.Op != c.op {
			t.Errorf("%#v assembles to %#x, want %#x", c.insn, raw.Op, c.op)
		}
	}
}

// goSideABI is what the Go side says, keyed as testdata/abi.c prints it.
func goSideABI() map[string]uint64 {
	m := map[string]uint64{}
	for _, c := range wantCommands {
		if strings.HasPrefix(c.name, "BIOC") {
			m[c.name] = uint64(c.cmd)
		}
	}
	for k, v := range map[string]uint64{
		"BPF_ALIGNMENT":      BPF_ALIGNMENT,
		"SIZEOF_BPF_HDR":     SIZEOF_BPF_HDR,
		"BPF_WORDALIGN(1)":   8,
		"BPF_WORDALIGN(26)":  32,
		"BPF_WORDALIGN(40)":  40,
		"BPF_MAXINSNS":       BPF_MAXINSNS,
		"BPF_MAXBUFSIZE":     BPF_MAXBUFSIZE,
		"BPF_MINBUFSIZE":     BPF_MINBUFSIZE,
		"BPF_MEMWORDS":       BPF_MEMWORDS,
		"BPF_MAJOR_VERSION":  BPF_MAJOR_VERSION,
		"BPF_MINOR_VERSION":  BPF_MINOR_VERSION,
		"BPF_RELEASE":        199606,
		"BPF_BUFMODE_BUFFER": BPF_BUFMODE_BUFFER,
		"BPF_BUFMODE_ZBUF":   BPF_BUFMODE_ZBUF,
		"BPF_D_IN":           BPF_D_IN,
		"BPF_D_INOUT":        BPF_D_INOUT,
		"BPF_D_OUT":          BPF_D_OUT,

		"BPF_T_MICROTIME":                BPF_T_MICROTIME,
		"BPF_T_NANOTIME":                 BPF_T_NANOTIME,
		"BPF_T_BINTIME":                  BPF_T_BINTIME,
		"BPF_T_NONE":                     BPF_T_NONE,
		"BPF_T_FORMAT_MASK":              BPF_T_FORMAT_MASK,
		"BPF_T_NORMAL":                   BPF_T_NORMAL,
		"BPF_T_FAST":                     BPF_T_FAST,
		"BPF_T_MONOTONIC":                BPF_T_MONOTONIC,
		"BPF_T_MONOTONIC_FAST":           BPF_T_MONOTONIC_FAST,
		"BPF_T_FLAG_MASK":                BPF_T_FLAG_MASK,
		"BPF_T_MICROTIME_FAST":           BPF_T_MICROTIME_FAST,
		"BPF_T_NANOTIME_FAST":            BPF_T_NANOTIME_FAST,
		"BPF_T_BINTIME_FAST":             BPF_T_BINTIME_FAST,
		"BPF_T_MICROTIME_MONOTONIC":      BPF_T_MICROTIME_MONOTONIC,
		"BPF_T_NANOTIME_MONOTONIC":       BPF_T_NANOTIME_MONOTONIC,
		"BPF_T_BINTIME_MONOTONIC":        BPF_T_BINTIME_MONOTONIC,
		"BPF_T_MICROTIME_MONOTONIC_FAST": BPF_T_MICROTIME_MONOTONIC_FAST,
		"BPF_T_NANOTIME_MONOTONIC_FAST":  BPF_T_NANOTIME_MONOTONIC_FAST,
		"BPF_T_BINTIME_MONOTONIC_FAST":   BPF_T_BINTIME_MONOTONIC_FAST,

		"DLT_NULL":   DLT_NULL,
		"DLT_EN10MB": DLT_EN10MB,
		"DLT_RAW":    DLT_RAW,
		"IFNAMSIZ":   IFNAMSIZ,

		"BPF_LD | BPF_H | BPF_ABS":   0x28,
		"BPF_LDX | BPF_B | BPF_MSH":  0xb1,
		"BPF_ALU | BPF_MOD | BPF_K":  0x94,
		"BPF_ALU | BPF_XOR | BPF_X":  0xac,
		"BPF_JMP | BPF_JSET | BPF_K": 0x45,
		"BPF_RET | BPF_A":            0x16,
		"BPF_MISC | BPF_TXA":         0x87,

		"sizeof.int":             SizeofInt,
		"sizeof.u_int":           SizeofInt,
		"sizeof.size_t":          SizeofSizeT,
		"sizeof.ifreq":           SizeofIfreq,
		"sizeof.bpf_program":     SizeofProgram,
		"sizeof.bpf_insn":        SizeofInsn,
		"sizeof.timeval":         SizeofTimeval,
		"sizeof.bpf_stat":        SizeofStat,
		"sizeof.bpf_version":     SizeofVersion,
		"sizeof.bpf_dltlist":     SizeofDLTList,
		"sizeof.bpf_zbuf":        SizeofZbuf,
		"sizeof.bpf_zbuf_header": SizeofZbufHeader,
		"sizeof.bpf_hdr":         SizeofHdr,
		"sizeof.bpf_xhdr":        SizeofHdr,
		"sizeof.bpf_ts":          16,

		// Offsets the Go codecs hard-code.
		"offsetof.bpf_program.bf_len":             0,
		"offsetof.bpf_program.bf_insns":           8,
		"offsetof.bpf_insn.code":                  0,
		"offsetof.bpf_insn.jt":                    2,
		"offsetof.bpf_insn.jf":                    3,
		"offsetof.bpf_insn.k":                     4,
		"offsetof.timeval.tv_sec":                 0,
		"offsetof.timeval.tv_usec":                8,
		"offsetof.bpf_stat.bs_recv":               0,
		"offsetof.bpf_stat.bs_drop":               4,
		"offsetof.bpf_version.bv_major":           0,
		"offsetof.bpf_version.bv_minor":           2,
		"offsetof.bpf_dltlist.bfl_len":            0,
		"offsetof.bpf_dltlist.bfl_list":           8,
		"offsetof.bpf_zbuf.bz_bufa":               0,
		"offsetof.bpf_zbuf.bz_bufb":               8,
		"offsetof.bpf_zbuf.bz_buflen":             16,
		"offsetof.bpf_zbuf_header.bzh_kernel_gen": OffsetofZbufKernelGen,
		"offsetof.bpf_zbuf_header.bzh_kernel_len": OffsetofZbufKernelLen,
		"offsetof.bpf_zbuf_header.bzh_user_gen":   OffsetofZbufUserGen,
		"offsetof.bpf_hdr.bh_tstamp":              0,
		"offsetof.bpf_hdr.bh_caplen":              OffsetofHdrCaplen,
		"offsetof.bpf_hdr.bh_datalen":             OffsetofHdrDatalen,
		"offsetof.bpf_hdr.bh_hdrlen":              OffsetofHdrHdrlen,
		"offsetof.bpf_xhdr.bh_tstamp":             0,
		"offsetof.bpf_xhdr.bh_caplen":             OffsetofHdrCaplen,
		"offsetof.bpf_xhdr.bh_datalen":            OffsetofHdrDatalen,
		"offsetof.bpf_xhdr.bh_hdrlen":             OffsetofHdrHdrlen,
		"offsetof.bpf_ts.bt_sec":                  0,
		"offsetof.bpf_ts.bt_frac":                 8,
		"offsetof.ifreq.ifr_name":                 0,

		// bintime2timeval/bintime2timespec on exact fractions (sec 7).
		"bintime.zero.sec":     7,
		"bintime.zero.usec":    0,
		"bintime.zero.nsec":    0,
		"bintime.half.sec":     7,
		"bintime.half.usec":    500000,
		"bintime.half.nsec":    500000000,
		"bintime.quarter.sec":  7,
		"bintime.quarter.usec": 250000,
		"bintime.quarter.nsec": 250000000,
		"bintime.max.sec":      7,
		"bintime.max.usec":     999999,
		"bintime.max.nsec":     999999999,
	} {
		m[k] = v
	}
	for t := uint32(0); t <= 0xfff; t++ {
		if ValidTimestampType(t) {
			m["tstamp_valid."+strconv.Itoa(int(t))] = 1
		}
	}
	return m
}

func includeDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "include"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "net", "bpf.h")); err != nil {
		t.Fatalf("header not found: %v", err)
	}
	return dir
}

// requireCompiler skips (fails under CI) when a C or C++ compiler is
// missing, and refuses machines the header does not support.
func requireCompiler(t *testing.T, name string) string {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("the header supports amd64 and arm64 only, this is %s", runtime.GOARCH)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("CI=true and %s is not installed", name)
		}
		t.Skipf("skipping: %s not installed", name)
	}
	return path
}

func compile(t *testing.T, compiler string, args ...string) (output string, err error) {
	t.Helper()
	cmd := exec.Command(compiler, args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestHeaderMatchesGo(t *testing.T) {
	gcc := requireCompiler(t, "gcc")
	inc := includeDir(t)
	bin := filepath.Join(t.TempDir(), "abi")
	src, _ := filepath.Abs(filepath.Join("testdata", "abi.c"))
	if out, err := compile(t, gcc, "-std=c11", "-Wall", "-Werror", "-I", inc, "-o", bin, src); err != nil {
		t.Fatalf("gcc abi.c: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running abi: %v", err)
	}
	fromC := map[string]uint64{}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad line from abi.c: %q", line)
		}
		v, err := strconv.ParseUint(line[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("bad value from abi.c: %q", line)
		}
		fromC[line[:i]] = v
	}

	fromGo := goSideABI()
	for k, want := range fromGo {
		got, ok := fromC[k]
		switch {
		case !ok:
			t.Errorf("abi.c does not print %s", k)
		case got != want:
			t.Errorf("%s: C says %d (%#x), Go says %d (%#x)", k, got, got, want, want)
		}
	}
	for k, v := range fromC {
		if _, ok := fromGo[k]; !ok {
			t.Errorf("abi.c prints %s = %d, which the Go side does not check", k, v)
		}
	}

	// Every request, timestamp type and buffer mode the header defines is
	// printed, so a macro added to the header cannot escape the comparison.
	// (BPF_D_* are enumerators, which -dM cannot list; abi.c prints them.)
	macros := headerMacros(t, gcc, inc)
	watched := regexp.MustCompile(`^(BIOC[A-Z]+|BPF_T_[A-Z_]+|BPF_BUFMODE_[A-Z]+)$`)
	for _, name := range macros {
		if watched.MatchString(name) && name != "BPF_T_FORMAT" && name != "BPF_T_FLAG" && name != "BPF_T_VALID" {
			if _, ok := fromC[name]; !ok {
				t.Errorf("the header defines %s but abi.c does not print it", name)
			}
		}
	}
}

// headerMacros lists the macro names <net/bpf.h> defines.
func headerMacros(t *testing.T, gcc, inc string) []string {
	t.Helper()
	cmd := exec.Command(gcc, "-dM", "-E", "-D_DEFAULT_SOURCE", "-I", inc, "-x", "c", "-")
	cmd.Stdin = strings.NewReader("#include <net/bpf.h>\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gcc -dM: %v", err)
	}
	var names []string
	define := regexp.MustCompile(`(?m)^#define ([A-Za-z_][A-Za-z0-9_]*)`)
	for _, m := range define.FindAllSubmatch(out, -1) {
		names = append(names, string(m[1]))
	}
	return names
}

func TestHeaderCompiles(t *testing.T) {
	inc := includeDir(t)
	src := func(name string) string {
		p, _ := filepath.Abs(filepath.Join("testdata", name))
		return p
	}
	for _, c := range []struct {
		compiler string
		file     string
		flags    []string
	}{
		{"gcc", "include_only.c", []string{"-std=c99", "-pedantic", "-D_DEFAULT_SOURCE",
			"-Wconversion", "-Wsign-conversion", "-Wundef", "-Wshadow", "-Wredundant-decls",
			"-Wstrict-prototypes", "-Wmissing-prototypes", "-Wcast-qual"}},
		{"gcc", "include_only.c", []string{"-std=gnu89", "-pedantic", "-D_DEFAULT_SOURCE", "-Wno-long-long"}},
		{"gcc", "include_only.c", []string{"-std=c11", "-pedantic", "-D_DEFAULT_SOURCE"}},
		{"gcc", "include_only.c", []string{"-std=c89", "-D_DEFAULT_SOURCE"}},
		{"gcc", "include_only.c", nil},
		{"g++", "include_only.c", []string{"-x", "c++", "-std=c++11", "-pedantic"}},
		{"g++", "include_only.c", []string{"-x", "c++", "-std=c++98"}},
		{"g++", "include_only.c", []string{"-x", "c++"}},
		{"gcc", "pcap_includes.c", nil},
		{"g++", "pcap_includes.c", []string{"-x", "c++"}},
		{"gcc", "manual.c", nil},
		{"gcc", "manual.c", []string{"-std=c11", "-D_DEFAULT_SOURCE"}},
		{"gcc", "pcap_first.c", nil},
		{"g++", "pcap_first.c", []string{"-x", "c++"}},
	} {
		name := c.compiler + " " + strings.Join(c.flags, " ") + " " + c.file
		t.Run(name, func(t *testing.T) {
			cc := requireCompiler(t, c.compiler)
			args := append(slices.Clone(c.flags), "-Wall", "-Wextra", "-Werror", "-I", inc, "-o", "prog", src(c.file))
			dir := t.TempDir()
			cmd := exec.Command(cc, args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// Each program checks what it can at run time and exits 0.
			if out, err := exec.Command(filepath.Join(dir, "prog")).CombinedOutput(); err != nil {
				t.Fatalf("the program's own checks failed: %v\n%s", err, out)
			}
		})
	}
}

func TestHeaderRefuses(t *testing.T) {
	inc := includeDir(t)
	src, _ := filepath.Abs(filepath.Join("testdata", "include_only.c"))
	t.Run("strict mode without _DEFAULT_SOURCE", func(t *testing.T) {
		gcc := requireCompiler(t, "gcc")
		out, err := compile(t, gcc, "-std=c11", "-fsyntax-only", "-I", inc, src)
		if err == nil || !strings.Contains(out, "define _DEFAULT_SOURCE") {
			t.Fatalf("want a compile error naming _DEFAULT_SOURCE, got err=%v\n%s", err, out)
		}
	})
	t.Run("32-bit", func(t *testing.T) {
		gcc := requireCompiler(t, "gcc")
		if runtime.GOARCH != "amd64" {
			t.Skip("-m32 is an x86 option")
		}
		out, err := compile(t, gcc, "-m32", "-fsyntax-only", "-I", inc, src)
		if err == nil || !strings.Contains(out, "32-bit programs are not supported") {
			t.Fatalf("want the 32-bit #error, got err=%v\n%s", err, out)
		}
	})
}

func TestDecodeProgram(t *testing.T) {
	b := []byte{3, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0xff}
	p, err := DecodeProgram(b)
	if err != nil {
		t.Fatal(err)
	}
	if p != (Program{Len: 3, Insns: 0x8070605040302010}) {
		t.Fatalf("got %+v", p)
	}
	assertShort(t, func(b []byte) error { _, err := DecodeProgram(b); return err }, SizeofProgram)
}

func TestTimeval(t *testing.T) {
	tv := Timeval{Sec: 1700000000, Usec: 999999}
	b := make([]byte, SizeofTimeval)
	if err := tv.Encode(b); err != nil {
		t.Fatal(err)
	}
	want := []byte{0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0, 0x3f, 0x42, 0x0f, 0, 0, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	got, err := DecodeTimeval(b)
	if err != nil || got != tv {
		t.Fatalf("DecodeTimeval = %+v, %v", got, err)
	}
	neg, err := DecodeTimeval(bytes.Repeat([]byte{0xff}, 16))
	if err != nil || neg != (Timeval{-1, -1}) {
		t.Fatalf("negative timeval decoded as %+v, %v", neg, err)
	}
	assertShort(t, func(b []byte) error { _, err := DecodeTimeval(b); return err }, SizeofTimeval)
	assertShort(t, tv.Encode, SizeofTimeval)
}

func TestDecodeIfreqName(t *testing.T) {
	ifreq := func(name string, tail ...byte) []byte {
		b := make([]byte, SizeofIfreq)
		copy(b, name)
		copy(b[IFNAMSIZ:], tail)
		return b
	}
	for _, c := range []struct {
		in   []byte
		want string
		err  error
	}{
		{ifreq("tap0"), "tap0", nil},
		{ifreq("tap0\x00junk"), "tap0", nil},
		{ifreq("fifteen-chars-x"), "fifteen-chars-x", nil},
		{ifreq("tap0", 1, 2, 3), "tap0", nil},
		{ifreq("sixteen-chars-xx"), "", ErrNameUnterminated},
		{ifreq("sixteen-chars-xxand-beyond"), "", ErrNameUnterminated},
		{ifreq(""), "", ErrNameEmpty},
		{ifreq("\x00tap0"), "", ErrNameEmpty},
		{[]byte("eth0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "eth0", nil}, // name field only
	} {
		got, err := DecodeIfreqName(c.in)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("DecodeIfreqName(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
	assertShort(t, func(b []byte) error { _, err := DecodeIfreqName(b); return err }, IFNAMSIZ)
}

func TestEncodeIfreqName(t *testing.T) {
	b := bytes.Repeat([]byte{0xee}, SizeofIfreq+4)
	if err := EncodeIfreqName(b, "tap0"); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte("tap0"), make([]byte, SizeofIfreq-4)...), 0xee, 0xee, 0xee, 0xee)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x\nwant    % x", b, want)
	}
	if name, err := DecodeIfreqName(b); err != nil || name != "tap0" {
		t.Fatalf("round trip: %q, %v", name, err)
	}

	for _, c := range []struct {
		name string
		err  error
	}{
		{"", ErrNameEmpty},
		{"sixteen-chars-xx", ErrNameTooLong},
		{"ta\x00p0", ErrNameHasNUL},
	} {
		b := bytes.Repeat([]byte{0xee}, SizeofIfreq)
		if err := EncodeIfreqName(b, c.name); !errors.Is(err, c.err) {
			t.Errorf("EncodeIfreqName(%q) = %v, want %v", c.name, err, c.err)
		}
		if !bytes.Equal(b, bytes.Repeat([]byte{0xee}, SizeofIfreq)) {
			t.Errorf("EncodeIfreqName(%q) changed the buffer on error", c.name)
		}
	}
	if err := EncodeIfreqName(make([]byte, SizeofIfreq), "fifteen-chars-x"); err != nil {
		t.Errorf("15-byte name: %v", err)
	}
	assertShort(t, func(b []byte) error { return EncodeIfreqName(b, "tap0") }, SizeofIfreq)
}

func TestDLTList(t *testing.T) {
	b := bytes.Repeat([]byte{0xee}, SizeofDLTList)
	l := DLTList{Len: 2, List: 0x00007fff12345678}
	if err := l.Encode(b); err != nil {
		t.Fatal(err)
	}
	want := []byte{2, 0, 0, 0, 0, 0, 0, 0, 0x78, 0x56, 0x34, 0x12, 0xff, 0x7f, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	got, err := DecodeDLTList(b)
	if err != nil || got != l {
		t.Fatalf("DecodeDLTList = %+v, %v", got, err)
	}
	assertShort(t, func(b []byte) error { _, err := DecodeDLTList(b); return err }, SizeofDLTList)
	assertShort(t, l.Encode, SizeofDLTList)
}

func TestZbuf(t *testing.T) {
	z := Zbuf{BufA: 0x7f0000001000, BufB: 0x7f0000201000, BufLen: 0x200000}
	b := make([]byte, SizeofZbuf)
	if err := z.Encode(b); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x00, 0x10, 0, 0, 0x00, 0x7f, 0, 0,
		0x00, 0x10, 0x20, 0, 0x00, 0x7f, 0, 0,
		0, 0, 0x20, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	got, err := DecodeZbuf(b)
	if err != nil || got != z {
		t.Fatalf("DecodeZbuf = %+v, %v", got, err)
	}
	assertShort(t, func(b []byte) error { _, err := DecodeZbuf(b); return err }, SizeofZbuf)
	assertShort(t, z.Encode, SizeofZbuf)
}

func TestScalars(t *testing.T) {
	b := make([]byte, 8)
	if err := EncodeUint32(b, 0x01020304); err != nil || !bytes.Equal(b[:4], []byte{4, 3, 2, 1}) {
		t.Fatalf("EncodeUint32: % x, %v", b, err)
	}
	if v, err := DecodeUint32([]byte{0x66, 0x42, 0x04, 0x80, 0x99}); err != nil || v != 0x80044266 {
		t.Fatalf("DecodeUint32 = %#x, %v", v, err)
	}
	if err := EncodeUint64(b, 2<<20); err != nil || !bytes.Equal(b, []byte{0, 0, 0x20, 0, 0, 0, 0, 0}) {
		t.Fatalf("EncodeUint64: % x, %v", b, err)
	}
	if err := EncodeStat(b, 10, 0xfffffffe); err != nil || !bytes.Equal(b, []byte{10, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff}) {
		t.Fatalf("EncodeStat: % x, %v", b, err)
	}
	if err := EncodeVersion(b[:4], BPF_MAJOR_VERSION, BPF_MINOR_VERSION); err != nil || !bytes.Equal(b[:4], []byte{1, 0, 1, 0}) {
		t.Fatalf("EncodeVersion: % x, %v", b[:4], err)
	}
	assertShort(t, func(b []byte) error { _, err := DecodeUint32(b); return err }, SizeofInt)
	assertShort(t, func(b []byte) error { return EncodeUint32(b, 1) }, SizeofInt)
	assertShort(t, func(b []byte) error { return EncodeUint64(b, 1) }, SizeofSizeT)
	assertShort(t, func(b []byte) error { return EncodeStat(b, 1, 2) }, SizeofStat)
	assertShort(t, func(b []byte) error { return EncodeVersion(b, 1, 1) }, SizeofVersion)
}

// assertShort calls f with every buffer shorter than size (including nil)
// and expects a ShortBufferError, no panic, and the buffer left as it was.
func assertShort(t *testing.T, f func([]byte) error, size int) {
	t.Helper()
	for n := 0; n < size; n++ {
		var b []byte
		if n > 0 {
			b = bytes.Repeat([]byte{0xee}, n)
		}
		err := f(b)
		var short *ShortBufferError
		if !errors.Is(err, ErrShortBuffer) || !errors.As(err, &short) || short.Need != size || short.Have != n {
			t.Fatalf("%d-byte buffer: err = %v, want a ShortBufferError needing %d", n, err, size)
		}
		if !strings.Contains(err.Error(), strconv.Itoa(size)) {
			t.Fatalf("error %q does not say how many bytes were needed", err)
		}
		if !bytes.Equal(b, bytes.Repeat([]byte{0xee}, n)) {
			t.Fatalf("%d-byte buffer changed on error: % x", n, b)
		}
	}
}

func TestCodecsDoNotAllocate(t *testing.T) {
	buf := make([]byte, SizeofIfreq)
	for name, f := range hotCodecs(buf) {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
}

var sink uint64

// hotCodecs are the calls a dispatcher makes for every ioctl; none may
// allocate.
func hotCodecs(buf []byte) map[string]func() {
	return map[string]func(){
		"DecodeProgram": func() { p, _ := DecodeProgram(buf); sink += p.Insns },
		"DecodeTimeval": func() { tv, _ := DecodeTimeval(buf); sink += uint64(tv.Usec) },
		"Timeval.Encode": func() {
			_ = Timeval{Sec: 1, Usec: 2}.Encode(buf)
		},
		"DecodeDLTList":  func() { l, _ := DecodeDLTList(buf); sink += l.List },
		"DLTList.Encode": func() { _ = DLTList{Len: 1}.Encode(buf) },
		"DecodeZbuf":     func() { z, _ := DecodeZbuf(buf); sink += z.BufLen },
		"Zbuf.Encode":    func() { _ = Zbuf{BufLen: 4096}.Encode(buf) },
		"DecodeUint32":   func() { v, _ := DecodeUint32(buf); sink += uint64(v) },
		"EncodeUint32":   func() { _ = EncodeUint32(buf, 7) },
		"EncodeUint64":   func() { _ = EncodeUint64(buf, 7) },
		"EncodeStat":     func() { _ = EncodeStat(buf, 1, 2) },
		"EncodeVersion":  func() { _ = EncodeVersion(buf, 1, 1) },
		"EncodeIfreqName": func() {
			_ = EncodeIfreqName(buf, "tap0")
		},
		"Dir/Size/Group/Number": func() {
			sink += uint64(Dir(BIOCSETIF) + Size(BIOCSETIF) + Group(BIOCSETIF) + Number(BIOCSETIF))
		},
	}
}

// BenchmarkCodecs times each codec and reports it as a multiple of a bare
// binary.LittleEndian load of the same bytes, measured first in the same run.
func BenchmarkCodecs(b *testing.B) {
	buf := make([]byte, SizeofIfreq)
	// Called through a func value like the codecs, so the ratio shows the
	// codec's own cost (bounds check, field stores) and not the call.
	rawLoads := func() { sink += hostOrder.Uint64(buf[8:]) + uint64(hostOrder.Uint32(buf)) }
	var baseNs float64
	b.Run("baseline", func(b *testing.B) {
		for b.Loop() {
			rawLoads()
		}
		baseNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	codecs := hotCodecs(buf)
	names := make([]string, 0, len(codecs))
	for name := range codecs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := codecs[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f()
			}
			if baseNs > 0 {
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(ns/baseNs, "x-baseline")
			}
		})
	}
}

// FuzzDecoders feeds arbitrary argument bytes to every decoder: none may
// panic, and whatever decodes must survive an encode/decode round trip.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte("tap0\x00"))
	f.Add(make([]byte, SizeofIfreq))
	f.Add(bytes.Repeat([]byte{0xff}, SizeofZbuf))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := make([]byte, SizeofIfreq)
		if p, err := DecodeProgram(b); err == nil && (p.Len != hostOrder.Uint32(b) || p.Insns != hostOrder.Uint64(b[8:])) {
			t.Fatalf("DecodeProgram(% x) = %+v", b, p)
		}
		if tv, err := DecodeTimeval(b); err == nil {
			if err := tv.Encode(out); err != nil || !bytes.Equal(out[:SizeofTimeval], b[:SizeofTimeval]) {
				t.Fatalf("timeval round trip of % x: % x, %v", b, out[:SizeofTimeval], err)
			}
		}
		if l, err := DecodeDLTList(b); err == nil {
			if err := l.Encode(out); err != nil {
				t.Fatal(err)
			}
			if again, _ := DecodeDLTList(out); again != l {
				t.Fatalf("dltlist round trip: %+v became %+v", l, again)
			}
		}
		if z, err := DecodeZbuf(b); err == nil {
			if err := z.Encode(out); err != nil || !bytes.Equal(out[:SizeofZbuf], b[:SizeofZbuf]) {
				t.Fatalf("zbuf round trip of % x: % x, %v", b, out[:SizeofZbuf], err)
			}
		}
		if name, err := DecodeIfreqName(b); err == nil {
			if err := EncodeIfreqName(out, name); err != nil {
				t.Fatalf("name %q decoded but does not encode: %v", name, err)
			}
			if again, err := DecodeIfreqName(out); err != nil || again != name {
				t.Fatalf("name round trip: %q became %q, %v", name, again, err)
			}
		}
		if v, err := DecodeUint32(b); err == nil && v != hostOrder.Uint32(b) {
			t.Fatalf("DecodeUint32(% x) = %#x", b, v)
		}
		_ = Name(uint32(len(b)))
	})
}
