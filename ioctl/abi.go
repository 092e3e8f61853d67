package ioctl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Linux _IOC layout (asm-generic, used by amd64 and arm64):
// dir<<30 | size<<16 | group<<8 | number, with a 14-bit size.
const (
	DirNone      = 0
	DirWrite     = 1 // the caller passes data in
	DirRead      = 2 // the caller gets data back
	DirReadWrite = DirRead | DirWrite

	numberBits = 8
	groupBits  = 8
	sizeBits   = 14
	dirBits    = 2

	groupShift = numberBits
	sizeShift  = groupShift + groupBits
	dirShift   = sizeShift + sizeBits
)

// Go constants cannot call functions, so the command table below spells the
// layout out with these; ior, iow, iowr and io compute the same from
// arguments, and the tests check that both agree for every command.
// The groups are plain integers, not rune literals: an untyped rune constant
// would make every command a rune, which overflows at 0x80000000.
const (
	groupBPF  = 0x42 // 'B'
	groupFile = 0x66 // 'f'
	groupTTY  = 0x74 // 't'

	readB      = DirRead<<dirShift | groupBPF<<groupShift
	writeB     = DirWrite<<dirShift | groupBPF<<groupShift
	readWriteB = DirReadWrite<<dirShift | groupBPF<<groupShift
	noneB      = DirNone<<dirShift | groupBPF<<groupShift
)

func ioc(dir, group, number, size uint32) uint32 {
	return dir<<dirShift | size<<sizeShift | group<<groupShift | number
}

func ior(group, number, size uint32) uint32  { return ioc(DirRead, group, number, size) }
func iow(group, number, size uint32) uint32  { return ioc(DirWrite, group, number, size) }
func iowr(group, number, size uint32) uint32 { return ioc(DirReadWrite, group, number, size) }
func io(group, number uint32) uint32         { return ioc(DirNone, group, number, 0) }

// Dir returns the direction bits of cmd: DirNone, DirWrite, DirRead or
// DirReadWrite.
func Dir(cmd uint32) uint32 { return cmd >> dirShift & (1<<dirBits - 1) }

// Size returns the argument size encoded in cmd, in bytes.
func Size(cmd uint32) uint32 { return cmd >> sizeShift & (1<<sizeBits - 1) }

// Group returns the group byte of cmd ('B' for bpf).
func Group(cmd uint32) uint32 { return cmd >> groupShift & (1<<groupBits - 1) }

// Number returns the number of cmd within its group.
func Number(cmd uint32) uint32 { return cmd & (1<<numberBits - 1) }

// Argument sizes in bytes on LP64 Linux.
const (
	SizeofInt        = 4  // int, u_int
	SizeofSizeT      = 8  // size_t (BIOCGETZMAX)
	SizeofIfreq      = 40 // glibc struct ifreq (FreeBSD's is 32)
	IFNAMSIZ         = 16 // interface name field of struct ifreq, NUL included
	SizeofProgram    = 16 // struct bpf_program
	SizeofInsn       = 8  // struct bpf_insn
	SizeofTimeval    = 16 // struct timeval
	SizeofStat       = 8  // struct bpf_stat
	SizeofVersion    = 4  // struct bpf_version
	SizeofDLTList    = 16 // struct bpf_dltlist
	SizeofZbuf       = 24 // struct bpf_zbuf
	SizeofZbufHeader = 32 // struct bpf_zbuf_header; packet data follows it
	SizeofHdr        = 32 // struct bpf_hdr and struct bpf_xhdr
)

// Field offsets that the record writer and the zero-copy protocol rely on.
const (
	OffsetofHdrCaplen  = 16 // bh_caplen in bpf_hdr and bpf_xhdr
	OffsetofHdrDatalen = 20 // bh_datalen
	OffsetofHdrHdrlen  = 24 // bh_hdrlen (u_short)

	OffsetofZbufKernelGen = 0 // bzh_kernel_gen
	OffsetofZbufKernelLen = 4 // bzh_kernel_len
	OffsetofZbufUserGen   = 8 // bzh_user_gen
)

// Constants of <net/bpf.h>, under their C names so that C and Go grep alike.
const (
	// BPF_ALIGNMENT is sizeof(long): records and the network header after
	// the link header start on this boundary.
	BPF_ALIGNMENT = 8
	// SIZEOF_BPF_HDR is the meaningful part of a record header, without the
	// struct's tail padding; bh_hdrlen is derived from it.
	SIZEOF_BPF_HDR = OffsetofHdrHdrlen + 2

	BPF_MAXINSNS   = 512
	BPF_MAXBUFSIZE = 0x80000
	BPF_MINBUFSIZE = 32
	BPF_MEMWORDS   = 16

	BPF_MAJOR_VERSION = 1
	BPF_MINOR_VERSION = 1

	BPF_BUFMODE_BUFFER = 1
	BPF_BUFMODE_ZBUF   = 2

	BPF_D_IN    = 0
	BPF_D_INOUT = 1
	BPF_D_OUT   = 2

	BPF_T_MICROTIME   = 0x0000
	BPF_T_NANOTIME    = 0x0001
	BPF_T_BINTIME     = 0x0002
	BPF_T_NONE        = 0x0003
	BPF_T_FORMAT_MASK = 0x0003
	BPF_T_NORMAL      = 0x0000
	BPF_T_FAST        = 0x0100
	BPF_T_MONOTONIC   = 0x0200
	BPF_T_FLAG_MASK   = 0x0300

	BPF_T_MONOTONIC_FAST           = BPF_T_FAST | BPF_T_MONOTONIC
	BPF_T_MICROTIME_FAST           = BPF_T_MICROTIME | BPF_T_FAST
	BPF_T_NANOTIME_FAST            = BPF_T_NANOTIME | BPF_T_FAST
	BPF_T_BINTIME_FAST             = BPF_T_BINTIME | BPF_T_FAST
	BPF_T_MICROTIME_MONOTONIC      = BPF_T_MICROTIME | BPF_T_MONOTONIC
	BPF_T_NANOTIME_MONOTONIC       = BPF_T_NANOTIME | BPF_T_MONOTONIC
	BPF_T_BINTIME_MONOTONIC        = BPF_T_BINTIME | BPF_T_MONOTONIC
	BPF_T_MICROTIME_MONOTONIC_FAST = BPF_T_MICROTIME | BPF_T_MONOTONIC_FAST
	BPF_T_NANOTIME_MONOTONIC_FAST  = BPF_T_NANOTIME | BPF_T_MONOTONIC_FAST
	BPF_T_BINTIME_MONOTONIC_FAST   = BPF_T_BINTIME | BPF_T_MONOTONIC_FAST

	DLT_NULL   = 0
	DLT_EN10MB = 1
	DLT_RAW    = 12
)

// ValidTimestampType reports whether t is accepted by BIOCSTSTAMP, as the C
// macro BPF_T_VALID does: BPF_T_NONE alone, or any other format with any
// combination of flags and no other bits.
func ValidTimestampType(t uint32) bool {
	if t == BPF_T_NONE {
		return true
	}
	return t&BPF_T_FORMAT_MASK != BPF_T_NONE && t&^(BPF_T_FORMAT_MASK|BPF_T_FLAG_MASK) == 0
}

// BIOC* commands, named as in C. The comment gives the argument and its
// direction from the caller's point of view.
const (
	BIOCGBLEN      = readB | SizeofInt<<sizeShift | 102          // out u_int
	BIOCSBLEN      = readWriteB | SizeofInt<<sizeShift | 102     // in/out u_int
	BIOCSETF       = writeB | SizeofProgram<<sizeShift | 103     // in bpf_program (points to insns)
	BIOCFLUSH      = noneB | 104                                 // none
	BIOCPROMISC    = noneB | 105                                 // none
	BIOCGDLT       = readB | SizeofInt<<sizeShift | 106          // out u_int
	BIOCGETIF      = readB | SizeofIfreq<<sizeShift | 107        // out ifreq (name only)
	BIOCSETIF      = writeB | SizeofIfreq<<sizeShift | 108       // in ifreq (name only)
	BIOCSRTIMEOUT  = writeB | SizeofTimeval<<sizeShift | 109     // in timeval
	BIOCGRTIMEOUT  = readB | SizeofTimeval<<sizeShift | 110      // out timeval
	BIOCGSTATS     = readB | SizeofStat<<sizeShift | 111         // out bpf_stat
	BIOCIMMEDIATE  = writeB | SizeofInt<<sizeShift | 112         // in u_int
	BIOCVERSION    = readB | SizeofVersion<<sizeShift | 113      // out bpf_version
	BIOCGRSIG      = readB | SizeofInt<<sizeShift | 114          // out u_int
	BIOCSRSIG      = writeB | SizeofInt<<sizeShift | 115         // in u_int
	BIOCGHDRCMPLT  = readB | SizeofInt<<sizeShift | 116          // out u_int
	BIOCSHDRCMPLT  = writeB | SizeofInt<<sizeShift | 117         // in u_int
	BIOCGDIRECTION = readB | SizeofInt<<sizeShift | 118          // out u_int (BPF_D_*)
	BIOCSDIRECTION = writeB | SizeofInt<<sizeShift | 119         // in u_int (BPF_D_*)
	BIOCSDLT       = writeB | SizeofInt<<sizeShift | 120         // in u_int
	BIOCGDLTLIST   = readWriteB | SizeofDLTList<<sizeShift | 121 // in/out bpf_dltlist (points to u_int[])
	BIOCLOCK       = noneB | 122                                 // none
	BIOCSETWF      = writeB | SizeofProgram<<sizeShift | 123     // in bpf_program (points to insns)
	BIOCFEEDBACK   = writeB | SizeofInt<<sizeShift | 124         // in u_int
	BIOCGETBUFMODE = readB | SizeofInt<<sizeShift | 125          // out u_int (BPF_BUFMODE_*)
	BIOCSETBUFMODE = writeB | SizeofInt<<sizeShift | 126         // in u_int (BPF_BUFMODE_*)
	BIOCGETZMAX    = readB | SizeofSizeT<<sizeShift | 127        // out size_t
	BIOCROTZBUF    = readB | SizeofZbuf<<sizeShift | 128         // out bpf_zbuf
	BIOCSETZBUF    = writeB | SizeofZbuf<<sizeShift | 129        // in bpf_zbuf (caller addresses)
	BIOCSETFNR     = writeB | SizeofProgram<<sizeShift | 130     // in bpf_program (points to insns)
	BIOCGTSTAMP    = readB | SizeofInt<<sizeShift | 131          // out u_int (BPF_T_*)
	BIOCSTSTAMP    = writeB | SizeofInt<<sizeShift | 132         // in u_int (BPF_T_*)
	BIOCSETVLANPCP = writeB | SizeofInt<<sizeShift | 133         // in u_int (0..7)

	// Older names of the direction commands.
	BIOCGSEESENT = BIOCGDIRECTION
	BIOCSSEESENT = BIOCSDIRECTION

	// BIOCGFIONREAD is bpffs's own: the bytes a read(2) would return now,
	// as an int. FIONREAD cannot serve, because Linux answers it (0x541B)
	// in the VFS and never passes it to a FUSE file.
	BIOCGFIONREAD = readB | SizeofInt<<sizeShift | 200 // out int
)

// Other numbers a caller may send to the device.
const (
	// TCGETS is what isatty(3) sends; the answer must be ENOTTY.
	TCGETS = 0x5401

	// FreeBSD's generic file and tty commands, encoded the Linux way, as a
	// program ported from FreeBSD source would build them.
	FIONREAD_BSD  = readF | SizeofInt<<sizeShift | 127  // out int
	FIONBIO_BSD   = writeF | SizeofInt<<sizeShift | 126 // in int
	FIOASYNC_BSD  = writeF | SizeofInt<<sizeShift | 125 // in int
	FIOSETOWN_BSD = writeF | SizeofInt<<sizeShift | 124 // in int
	FIOGETOWN_BSD = readF | SizeofInt<<sizeShift | 123  // out int
	TIOCSPGRP_BSD = writeT | SizeofInt<<sizeShift | 118 // in int
	TIOCGPGRP_BSD = readT | SizeofInt<<sizeShift | 119  // out int

	readF  = DirRead<<dirShift | groupFile<<groupShift
	writeF = DirWrite<<dirShift | groupFile<<groupShift
	readT  = DirRead<<dirShift | groupTTY<<groupShift
	writeT = DirWrite<<dirShift | groupTTY<<groupShift
)

type namedCommand struct {
	name string
	cmd  uint32
}

// commands lists every number above under its C name, aliases excluded.
var commands = [...]namedCommand{
	{"BIOCGBLEN", BIOCGBLEN},
	{"BIOCSBLEN", BIOCSBLEN},
	{"BIOCSETF", BIOCSETF},
	{"BIOCFLUSH", BIOCFLUSH},
	{"BIOCPROMISC", BIOCPROMISC},
	{"BIOCGDLT", BIOCGDLT},
	{"BIOCGETIF", BIOCGETIF},
	{"BIOCSETIF", BIOCSETIF},
	{"BIOCSRTIMEOUT", BIOCSRTIMEOUT},
	{"BIOCGRTIMEOUT", BIOCGRTIMEOUT},
	{"BIOCGSTATS", BIOCGSTATS},
	{"BIOCIMMEDIATE", BIOCIMMEDIATE},
	{"BIOCVERSION", BIOCVERSION},
	{"BIOCGRSIG", BIOCGRSIG},
	{"BIOCSRSIG", BIOCSRSIG},
	{"BIOCGHDRCMPLT", BIOCGHDRCMPLT},
	{"BIOCSHDRCMPLT", BIOCSHDRCMPLT},
	{"BIOCGDIRECTION", BIOCGDIRECTION},
	{"BIOCSDIRECTION", BIOCSDIRECTION},
	{"BIOCSDLT", BIOCSDLT},
	{"BIOCGDLTLIST", BIOCGDLTLIST},
	{"BIOCLOCK", BIOCLOCK},
	{"BIOCSETWF", BIOCSETWF},
	{"BIOCFEEDBACK", BIOCFEEDBACK},
	{"BIOCGETBUFMODE", BIOCGETBUFMODE},
	{"BIOCSETBUFMODE", BIOCSETBUFMODE},
	{"BIOCGETZMAX", BIOCGETZMAX},
	{"BIOCROTZBUF", BIOCROTZBUF},
	{"BIOCSETZBUF", BIOCSETZBUF},
	{"BIOCSETFNR", BIOCSETFNR},
	{"BIOCGTSTAMP", BIOCGTSTAMP},
	{"BIOCSTSTAMP", BIOCSTSTAMP},
	{"BIOCSETVLANPCP", BIOCSETVLANPCP},
	{"BIOCGFIONREAD", BIOCGFIONREAD},
	{"TCGETS", TCGETS},
	{"FIONREAD_BSD", FIONREAD_BSD},
	{"FIONBIO_BSD", FIONBIO_BSD},
	{"FIOASYNC_BSD", FIOASYNC_BSD},
	{"FIOSETOWN_BSD", FIOSETOWN_BSD},
	{"FIOGETOWN_BSD", FIOGETOWN_BSD},
	{"TIOCSPGRP_BSD", TIOCSPGRP_BSD},
	{"TIOCGPGRP_BSD", TIOCGPGRP_BSD},
}

// Name returns the C name of cmd, or "" for a number this package does not
// know; for logs and error messages.
func Name(cmd uint32) string {
	for _, c := range commands {
		if c.cmd == cmd {
			return c.name
		}
	}
	return ""
}

// ErrShortBuffer is wrapped by every error about an argument buffer that is
// smaller than the struct it should hold.
var ErrShortBuffer = errors.New("ioctl: argument buffer too short")

// Errors about the interface name of a struct ifreq.
var (
	ErrNameEmpty        = errors.New("ioctl: interface name is empty")
	ErrNameUnterminated = errors.New("ioctl: interface name has no NUL within IFNAMSIZ (16) bytes")
	ErrNameTooLong      = errors.New("ioctl: interface name longer than IFNAMSIZ-1 (15) bytes")
	ErrNameHasNUL       = errors.New("ioctl: interface name contains a NUL byte")
)

// ShortBufferError says which struct did not fit. It matches ErrShortBuffer
// under errors.Is.
type ShortBufferError struct {
	What string // C type, e.g. "struct bpf_program"
	Need int
	Have int
}

func (e *ShortBufferError) Error() string {
	return fmt.Sprintf("ioctl: %s needs %d bytes, buffer has %d", e.What, e.Need, e.Have)
}

func (e *ShortBufferError) Unwrap() error { return ErrShortBuffer }

func need(b []byte, n int, what string) error {
	if len(b) < n {
		return &ShortBufferError{What: what, Need: n, Have: len(b)}
	}
	return nil
}

var hostOrder = binary.LittleEndian

// Program is struct bpf_program. Insns is an address in the caller's
// memory, where Len struct bpf_insn follow.
type Program struct {
	Len   uint32
	Insns uint64
}

// DecodeProgram reads a struct bpf_program (16 bytes).
func DecodeProgram(b []byte) (Program, error) {
	if err := need(b, SizeofProgram, "struct bpf_program"); err != nil {
		return Program{}, err
	}
	return Program{Len: hostOrder.Uint32(b[0:]), Insns: hostOrder.Uint64(b[8:])}, nil
}

// Timeval is struct timeval (BIOCSRTIMEOUT, BIOCGRTIMEOUT).
type Timeval struct {
	Sec  int64
	Usec int64
}

// DecodeTimeval reads a struct timeval (16 bytes). Range checks belong to
// the command that uses it.
func DecodeTimeval(b []byte) (Timeval, error) {
	if err := need(b, SizeofTimeval, "struct timeval"); err != nil {
		return Timeval{}, err
	}
	return Timeval{Sec: int64(hostOrder.Uint64(b[0:])), Usec: int64(hostOrder.Uint64(b[8:]))}, nil
}

// Encode writes tv as a struct timeval into the first 16 bytes of b.
func (tv Timeval) Encode(b []byte) error {
	if err := need(b, SizeofTimeval, "struct timeval"); err != nil {
		return err
	}
	hostOrder.PutUint64(b[0:], uint64(tv.Sec))
	hostOrder.PutUint64(b[8:], uint64(tv.Usec))
	return nil
}

// DecodeIfreqName returns the interface name of a struct ifreq: the bytes
// before the first NUL in the 16-byte name field. Only the name field is
// read, so b needs IFNAMSIZ bytes, not the whole struct.
func DecodeIfreqName(b []byte) (string, error) {
	if err := need(b, IFNAMSIZ, "struct ifreq name"); err != nil {
		return "", err
	}
	for i, c := range b[:IFNAMSIZ] {
		if c == 0 {
			if i == 0 {
				return "", ErrNameEmpty
			}
			return string(b[:i]), nil
		}
	}
	return "", ErrNameUnterminated
}

// EncodeIfreqName fills b as a struct ifreq holding only name: all 40 bytes
// are zeroed, then the name is written. On error b is left untouched.
func EncodeIfreqName(b []byte, name string) error {
	if err := need(b, SizeofIfreq, "struct ifreq"); err != nil {
		return err
	}
	switch {
	case name == "":
		return ErrNameEmpty
	case len(name) >= IFNAMSIZ:
		return ErrNameTooLong
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return ErrNameHasNUL
		}
	}
	clear(b[:SizeofIfreq])
	copy(b, name)
	return nil
}

// DLTList is struct bpf_dltlist. List is an address in the caller's memory
// of Len u_ints, or 0 when the caller only asks for the count.
type DLTList struct {
	Len  uint32
	List uint64
}

// DecodeDLTList reads a struct bpf_dltlist (16 bytes).
func DecodeDLTList(b []byte) (DLTList, error) {
	if err := need(b, SizeofDLTList, "struct bpf_dltlist"); err != nil {
		return DLTList{}, err
	}
	return DLTList{Len: hostOrder.Uint32(b[0:]), List: hostOrder.Uint64(b[8:])}, nil
}

// Encode writes l as a struct bpf_dltlist, padding zeroed.
func (l DLTList) Encode(b []byte) error {
	if err := need(b, SizeofDLTList, "struct bpf_dltlist"); err != nil {
		return err
	}
	hostOrder.PutUint32(b[0:], l.Len)
	hostOrder.PutUint32(b[4:], 0)
	hostOrder.PutUint64(b[8:], l.List)
	return nil
}

// Zbuf is struct bpf_zbuf: two buffer addresses in the caller's memory and
// the length of each.
type Zbuf struct {
	BufA, BufB, BufLen uint64
}

// DecodeZbuf reads a struct bpf_zbuf (24 bytes).
func DecodeZbuf(b []byte) (Zbuf, error) {
	if err := need(b, SizeofZbuf, "struct bpf_zbuf"); err != nil {
		return Zbuf{}, err
	}
	return Zbuf{
		BufA:   hostOrder.Uint64(b[0:]),
		BufB:   hostOrder.Uint64(b[8:]),
		BufLen: hostOrder.Uint64(b[16:]),
	}, nil
}

// Encode writes z as a struct bpf_zbuf.
func (z Zbuf) Encode(b []byte) error {
	if err := need(b, SizeofZbuf, "struct bpf_zbuf"); err != nil {
		return err
	}
	hostOrder.PutUint64(b[0:], z.BufA)
	hostOrder.PutUint64(b[8:], z.BufB)
	hostOrder.PutUint64(b[16:], z.BufLen)
	return nil
}

// DecodeUint32 reads a u_int or int argument.
func DecodeUint32(b []byte) (uint32, error) {
	if err := need(b, SizeofInt, "u_int"); err != nil {
		return 0, err
	}
	return hostOrder.Uint32(b), nil
}

// EncodeUint32 writes a u_int or int answer.
func EncodeUint32(b []byte, v uint32) error {
	if err := need(b, SizeofInt, "u_int"); err != nil {
		return err
	}
	hostOrder.PutUint32(b, v)
	return nil
}

// EncodeUint64 writes a size_t answer (BIOCGETZMAX).
func EncodeUint64(b []byte, v uint64) error {
	if err := need(b, SizeofSizeT, "size_t"); err != nil {
		return err
	}
	hostOrder.PutUint64(b, v)
	return nil
}

// EncodeStat writes a struct bpf_stat.
func EncodeStat(b []byte, recv, drop uint32) error {
	if err := need(b, SizeofStat, "struct bpf_stat"); err != nil {
		return err
	}
	hostOrder.PutUint32(b[0:], recv)
	hostOrder.PutUint32(b[4:], drop)
	return nil
}

// EncodeVersion writes a struct bpf_version.
func EncodeVersion(b []byte, major, minor uint16) error {
	if err := need(b, SizeofVersion, "struct bpf_version"); err != nil {
		return err
	}
	hostOrder.PutUint16(b[0:], major)
	hostOrder.PutUint16(b[2:], minor)
	return nil
}
