package bpfdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/bpffs/bpffs/ioctl"
)

// Record is one capture record: a packet and what the device said about it.
type Record struct {
	Timestamp     time.Time // zero when the timestamp type is TimestampNone
	CaptureLength int       // bytes captured: len(Data)
	Length        int       // length of the packet on the wire
	Data          []byte    // the captured bytes, inside the walked buffer
}

// ErrBadRecord is wrapped by the error Records returns for a buffer whose
// records do not add up: a header or packet running past the end of the
// data, or impossible lengths.
var ErrBadRecord = errors.New("bpfdev: malformed capture record")

// Records walks the records of a buffer returned by read(2), or of a
// zero-copy buffer's data, without copying or allocating:
//
//	it := bpfdev.ParseRecords(buf[:n], bpfdev.TimestampMicro)
//	for it.Next() {
//		r := it.Record()
//		...
//	}
//	if err := it.Err(); err != nil { ... }
//
// Records are found as bpf(4) says: each starts at a multiple of
// BPF_ALIGNMENT (8) from the start of the buffer, its packet bh_hdrlen
// bytes after its start. The zero value walks nothing.
type Records struct {
	buf    []byte
	off    int
	format TimestampType
	rec    Record
	err    error
}

// ParseRecords returns an iterator over the records in buf, which must be
// exactly the bytes the device returned (not the whole read buffer). The
// timestamp type tells how to read the timestamps (struct bpf_hdr for
// TimestampMicro and TimestampNone, struct bpf_xhdr for the others).
func ParseRecords(buf []byte, t TimestampType) Records {
	var r Records
	r.Reset(buf, t)
	return r
}

// Reset makes r walk buf from its start.
func (r *Records) Reset(buf []byte, t TimestampType) {
	r.buf, r.off, r.format, r.err = buf, 0, t.Format(), nil
	r.rec = Record{}
}

// Next advances to the next record and reports whether there is one. It
// returns false at the end of the buffer and at the first malformed record
// (then Err says why).
func (r *Records) Next() bool {
	if r.err != nil || r.off >= len(r.buf) {
		return false
	}
	rest := r.buf[r.off:]
	if len(rest) < ioctl.SIZEOF_BPF_HDR {
		return r.fail("%d bytes left, a header needs %d", len(rest), ioctl.SIZEOF_BPF_HDR)
	}
	caplen := int(binary.NativeEndian.Uint32(rest[ioctl.OffsetofHdrCaplen:]))
	datalen := int(binary.NativeEndian.Uint32(rest[ioctl.OffsetofHdrDatalen:]))
	hdrlen := int(binary.NativeEndian.Uint16(rest[ioctl.OffsetofHdrHdrlen:]))
	switch {
	case hdrlen < ioctl.SIZEOF_BPF_HDR:
		return r.fail("header length %d is below %d", hdrlen, ioctl.SIZEOF_BPF_HDR)
	case hdrlen+caplen > len(rest):
		return r.fail("header %d + capture %d bytes run past the %d bytes left", hdrlen, caplen, len(rest))
	case caplen > datalen:
		return r.fail("capture length %d exceeds packet length %d", caplen, datalen)
	}
	sec := int64(binary.NativeEndian.Uint64(rest[0:]))
	frac := binary.NativeEndian.Uint64(rest[8:])
	r.rec = Record{
		Timestamp:     recordTime(r.format, sec, frac),
		CaptureLength: caplen,
		Length:        datalen,
		Data:          rest[hdrlen : hdrlen+caplen : hdrlen+caplen],
	}
	r.off += wordAlign(hdrlen + caplen)
	return true
}

func (r *Records) fail(format string, args ...any) bool {
	r.err = fmt.Errorf("%w at offset %d: "+format, append([]any{ErrBadRecord, r.off}, args...)...)
	r.rec = Record{}
	return false
}

// Record is the record Next moved to. Its Data is valid as long as the
// buffer is.
func (r *Records) Record() Record { return r.rec }

// Err is the reason the walk stopped early, or nil.
func (r *Records) Err() error { return r.err }

// Remaining is how many bytes of the buffer are still unwalked.
func (r *Records) Remaining() int { return max(len(r.buf)-r.off, 0) }

func wordAlign(n int) int { return (n + ioctl.BPF_ALIGNMENT - 1) &^ (ioctl.BPF_ALIGNMENT - 1) }

// recordTime converts a record's timestamp: seconds plus a fraction whose
// unit the format gives.
func recordTime(format TimestampType, sec int64, frac uint64) time.Time {
	var nsec int64
	switch format {
	case TimestampMicro:
		nsec = int64(frac) * 1000
	case TimestampNano:
		nsec = int64(frac)
	case TimestampBintime:
		// frac is in units of 2^-64 s: nanoseconds are the high word of
		// frac * 1e9.
		hi, _ := bits.Mul64(frac, 1e9)
		nsec = int64(hi)
	default:
		return time.Time{}
	}
	return time.Unix(sec, nsec)
}
