package fuse

// Wire structures of the FUSE protocol (include/uapi/linux/fuse.h, 7.45),
// transcribed as offsets. Everything is host byte order; this package only
// supports little-endian 64-bit hosts, which is what bpffs runs on.

const (
	protoMajor = 7
	protoMinor = 45
	// minKernelMinor is the oldest protocol minor whose structure sizes this
	// package assumes (Linux 5.10 speaks 7.31).
	minKernelMinor = 31
)

// Opcodes.
const (
	opLookup      = 1
	opForget      = 2
	opGetattr     = 3
	opSetattr     = 4
	opOpen        = 14
	opRead        = 15
	opWrite       = 16
	opStatfs      = 17
	opRelease     = 18
	opFsync       = 20
	opSetxattr    = 21
	opGetxattr    = 22
	opListxattr   = 23
	opRemovexattr = 24
	opFlush       = 25
	opInit        = 26
	opOpendir     = 27
	opReaddir     = 28
	opReleasedir  = 29
	opFsyncdir    = 30
	opAccess      = 34
	opInterrupt   = 36
	opDestroy     = 38
	opIoctl       = 39
	opPoll        = 40
	opBatchForget = 42
	opReaddirplus = 44
)

// INIT flags.
const (
	initBigWrites      = 1 << 5
	initDoReaddirplus  = 1 << 13
	initMaxPages       = 1 << 22
	initRequestTimeout = 1 << 42 // never negotiated: a parked READ would abort the mount
)

// Open reply flags.
const (
	fopenDirectIO    = 1 << 0
	fopenNonseekable = 1 << 2
	fopenStream      = 1 << 4
)

// Ioctl flags.
const (
	IoctlCompat       = 1 << 0 // the caller is a 32-bit process (with IoctlCompat32)
	IoctlUnrestricted = 1 << 1
	IoctlCompat32     = 1 << 3
	IoctlDir          = 1 << 4
)

// SETATTR valid bits.
const (
	fattrMode = 1 << 0
	fattrUID  = 1 << 1
	fattrGID  = 1 << 2
)

const (
	pollScheduleNotify = 1 << 0
	notifyPoll         = 1
)

// Structure sizes.
const (
	inHeaderSize   = 40
	outHeaderSize  = 16
	initInSize     = 16 // the part of fuse_init_in this package reads (major, minor, max_readahead, flags)
	initOutSize    = 64
	attrSize       = 88
	entryOutSize   = 40 + attrSize
	attrOutSize    = 16 + attrSize
	openOutSize    = 16
	readInSize     = 40
	writeInSize    = 40
	writeOutSize   = 8
	releaseInSize  = 24
	ioctlInSize    = 32
	ioctlOutSize   = 16
	pollInSize     = 24
	pollOutSize    = 8
	setattrInSize  = 88
	statfsOutSize  = 80
	direntSize     = 24
	interruptInLen = 8
	openInSize     = 8
)

// File type bits of st_mode.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	dtDir       = 4
	dtReg       = 8
)
