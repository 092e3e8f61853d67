package bpfdev

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/bpffs/bpffs/ioctl"
	"golang.org/x/sys/unix"
)

// ethernetHdrlen is bh_hdrlen for Ethernet on LP64: 26 + 14 is a multiple
// of 8.
const ethernetHdrlen = 26

// appendRecord appends one record the way the device writes it: at the
// next multiple of 8, a header of the format's kind, the packet at
// bh_hdrlen.
func appendRecord(buf []byte, format TimestampType, ts time.Time, data []byte, wirelen int) []byte {
	for len(buf)%ioctl.BPF_ALIGNMENT != 0 {
		buf = append(buf, 0)
	}
	var hdr [ethernetHdrlen]byte
	sec, frac := ts.Unix(), uint64(0)
	switch format.Format() {
	case TimestampMicro:
		frac = uint64(ts.Nanosecond() / 1000)
	case TimestampNano:
		frac = uint64(ts.Nanosecond())
	case TimestampBintime:
		// ns * 2^64 / 1e9, plus one so that converting back (rounding
		// down) gives the same nanosecond.
		q, _ := bits.Div64(uint64(ts.Nanosecond()), 0, 1e9)
		frac = q + 1
	case TimestampNone:
		sec = 0
	}
	binary.NativeEndian.PutUint64(hdr[0:], uint64(sec))
	binary.NativeEndian.PutUint64(hdr[8:], frac)
	binary.NativeEndian.PutUint32(hdr[16:], uint32(len(data)))
	binary.NativeEndian.PutUint32(hdr[20:], uint32(wirelen))
	binary.NativeEndian.PutUint16(hdr[24:], ethernetHdrlen)
	buf = append(buf, hdr[:]...)
	return append(buf, data...)
}

// syntheticFrame is a frame of n bytes that says which one it is.
func syntheticFrame(i, n int) []byte {
	f := make([]byte, n)
	for j := range f {
		f[j] = byte(i + j)
	}
	copy(f, fmt.Sprintf("frame-%06d", i))
	return f
}

// syntheticBuffer is count records of frames of size bytes, no larger
// than limit bytes in all (it stops early).
func syntheticBuffer(first, count, size, limit int, format TimestampType) (buf []byte, n int) {
	base := time.Unix(1700000000, 0)
	for i := first; i < first+count; i++ {
		next := appendRecord(buf, format, base.Add(time.Duration(i)*time.Microsecond), syntheticFrame(i, size), size+4)
		if len(next) > limit {
			break
		}
		buf, n = next, n+1
	}
	return buf, n
}

// pipeDevice is a Device whose file is the read end of a pipe: the
// Reader's reads, waits, deadlines and cancellation work on it exactly as
// on a device, with the test writing the "device's" buffers.
func pipeDevice(t testing.TB) (*Device, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	d := &Device{file: r, conn: conn, path: "pipe", pollable: true}
	t.Cleanup(func() { d.Close(); w.Close() })
	return d, w
}

// zeroCopySim plays the device's side of the zero-copy protocol over two
// buffers mapped by the test, with an eventfd as the file the reader
// waits on (each write to it is an edge for the netpoller).
type zeroCopySim struct {
	z     *ZeroCopyReader
	event *os.File
	efd   int
	next  int // the buffer to hand over next
}

func newZeroCopySim(t testing.TB, size int) *zeroCopySim {
	t.Helper()
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(efd), "eventfd")
	conn, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	d := &Device{file: f, conn: conn, path: "eventfd", pollable: true}
	z := &ZeroCopyReader{dev: d, cur: -1}
	for i := range z.bufs {
		b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		z.bufs[i] = b
	}
	z.w.dev = d
	z.checkFn = z.check
	d.onClose = z.release
	t.Cleanup(func() { d.Close() })
	return &zeroCopySim{z: z, event: f, efd: efd}
}

func (s *zeroCopySim) word(i, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&s.z.bufs[i][off]))
}

func (s *zeroCopySim) kernelGen(i int) uint32 {
	return atomic.LoadUint32(s.word(i, ioctl.OffsetofZbufKernelGen))
}

func (s *zeroCopySim) userGen(i int) uint32 {
	return atomic.LoadUint32(s.word(i, ioctl.OffsetofZbufUserGen))
}

// free reports whether the next buffer to fill is back with the device.
func (s *zeroCopySim) free() bool { return s.kernelGen(s.next) == s.userGen(s.next) }

// handOver writes data as the next buffer's records, then its length,
// then increments the generation, and wakes the reader.
func (s *zeroCopySim) handOver(data []byte) {
	b := s.z.bufs[s.next]
	copy(b[ioctl.SizeofZbufHeader:], data)
	atomic.StoreUint32(s.word(s.next, ioctl.OffsetofZbufKernelLen), uint32(len(data)))
	atomic.AddUint32(s.word(s.next, ioctl.OffsetofZbufKernelGen), 1)
	s.next = 1 - s.next
	s.wake()
}

func (s *zeroCopySim) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(s.efd, one[:])
}
