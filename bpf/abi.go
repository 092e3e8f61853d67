package bpf

// Directions (enum bpf_direction): note that INOUT is 1, not 2.
const (
	DirectionIn    = 0
	DirectionInOut = 1
	DirectionOut   = 2
)

// Buffer modes (BIOCGETBUFMODE / BIOCSETBUFMODE).
const (
	BufModeBuffer = 1
	BufModeZbuf   = 2
)

// DLTEN10MB is the only link type an emulated interface offers: Ethernet.
const DLTEN10MB = 1

// Timestamp types (BIOCSTSTAMP): a format in the low two bits and flags.
const (
	TstampMicro     = 0
	TstampNano      = 1
	TstampBin       = 2
	TstampNone      = 3
	TstampFast      = 0x100
	TstampMonotonic = 0x200
)

const (
	tstampFormatMask = 0x3
	tstampFlagMask   = 0x300
)

// Alignment is BPF_ALIGNMENT on LP64: records start on this boundary.
const Alignment = 8

// HdrSize is sizeof(struct bpf_hdr) == sizeof(struct bpf_xhdr) on LP64.
const HdrSize = 32

// MinBufSize is BPF_MINBUFSIZE: BIOCSBLEN never goes below it.
const MinBufSize = 32

// Linux poll bits, as FUSE_POLL carries them.
const (
	PollIn     = 0x1
	PollOut    = 0x4
	PollErr    = 0x8
	PollHup    = 0x10
	PollRdNorm = 0x40
	PollWrNorm = 0x100
)

const (
	defaultBufSize = 4096
	defaultMaxBuf  = 524288
	// defaultSignal is SIGIO on Linux (FreeBSD's is 23; the signal is sent by
	// the Linux transport, so the Linux number is the meaningful default).
	defaultSignal = 29
	// numSignals is NSIG as bpf(4) checks it: BIOCSRSIG rejects >= 32.
	numSignals = 32

	// ethHdrLen is the link header length of DLT_EN10MB.
	ethHdrLen = 14
	// hdrFieldsEnd is offsetof(bpf_hdr, bh_hdrlen) + sizeof(u_short): the
	// header bytes that carry information, before the tail padding.
	hdrFieldsEnd = 26
	// recordHdrLen is bh_hdrlen for Ethernet: the header is padded so that
	// the network-layer header after the 14-byte Ethernet header lands on an
	// Alignment boundary (WORDALIGN(14+26)-14 = 26).
	recordHdrLen = (ethHdrLen+hdrFieldsEnd+Alignment-1)&^(Alignment-1) - ethHdrLen
)

// wordAlign is BPF_WORDALIGN.
func wordAlign(n int) int { return (n + Alignment - 1) &^ (Alignment - 1) }

// validTimestampType is BPF_T_VALID: NONE exactly, or another format with no
// bits outside the format and flag masks.
func validTimestampType(t uint32) bool {
	if t == TstampNone {
		return true
	}
	return t&tstampFormatMask != TstampNone && t&^(tstampFormatMask|tstampFlagMask) == 0
}
