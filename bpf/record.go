package bpf

import (
	"encoding/binary"
	"math/bits"
)

// A record in a capture buffer is, at an Alignment boundary:
//
//	offset 0   timestamp: int64 seconds, then int64 microseconds (struct
//	           bpf_hdr) or uint64 bt_frac (struct bpf_xhdr)
//	offset 16  uint32 bh_caplen    bytes captured
//	offset 20  uint32 bh_datalen   length on the wire
//	offset 24  uint16 bh_hdrlen    26 for Ethernet
//	offset 26  the captured bytes (the struct's 6 tail-pad bytes lie under
//	           them; they read as zero only when fewer than 6 bytes follow)
//
// All header fields are in host byte order, as the C structs are.

const nanosPerSecond = 1_000_000_000

// timestampWords computes the two 64-bit timestamp words of a record for a
// BIOCSTSTAMP type from a nanosecond time (wall clock or since boot, already
// chosen by the caller).
func timestampWords(tstype uint32, nanos int64) (sec int64, sub uint64) {
	if tstype == TstampNone {
		return 0, 0
	}
	sec = nanos / nanosPerSecond
	rem := nanos % nanosPerSecond
	if rem < 0 { // floor, so that the fraction is never negative
		sec--
		rem += nanosPerSecond
	}
	switch tstype & tstampFormatMask {
	case TstampNano:
		return sec, uint64(rem)
	case TstampBin:
		return sec, binaryFraction(uint64(rem))
	default: // TstampMicro
		return sec, uint64(rem) / 1000
	}
}

// binaryFraction converts nanoseconds within a second into bintime's bt_frac,
// the fraction of a second in units of 2^-64 s. Readers convert it back by
// truncation (libpcap's and FreeBSD's bintime2timeval/bintime2timespec use
// the top 32 bits), which turns the exact value floor(ns·2^64/10^9) into one
// microsecond or nanosecond less for most values. Rounding the top 32 bits
// up instead, ceil(ns·2^32/10^9)·2^32, lands within 0.24 ns above the true
// instant, so both conversions give back exactly what was captured.
func binaryFraction(ns uint64) uint64 {
	q, r := bits.Div64(ns>>32, ns<<32, nanosPerSecond) // ns·2^32 / 10^9
	if r != 0 {
		q++
	}
	return q << 32
}

// putHeader writes a whole 32-byte record header, pad bytes zeroed.
func putHeader(h *[HdrSize]byte, sec int64, sub uint64, caplen, datalen uint32) {
	binary.NativeEndian.PutUint64(h[0:8], uint64(sec))
	binary.NativeEndian.PutUint64(h[8:16], sub)
	binary.NativeEndian.PutUint32(h[16:20], caplen)
	binary.NativeEndian.PutUint32(h[20:24], datalen)
	binary.NativeEndian.PutUint16(h[24:26], recordHdrLen)
	clear(h[26:])
}
