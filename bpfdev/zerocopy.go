package bpfdev

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bpffs/bpffs/ioctl"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// DefaultZeroCopySize is the size of each zero-copy buffer when
// NewZeroCopyReader is given 0 (libpcap's choice), capped at the device's
// maximum.
const DefaultZeroCopySize = 512 << 10

// ZeroCopyReader reads a device in zero-copy buffer mode. The device writes
// records straight into two buffers of this process's memory, shared with
// the daemon, and hands them over alternately (A, B, A, ...) by
// incrementing a generation counter in each buffer's header; the reader
// walks a buffer it owns in place and gives it back by copying that
// counter. A busy capture thus makes no system call at all.
//
// Next and its variants must not be called concurrently; SetReadDeadline
// may be called from any goroutine. Packets returned point into the shared
// buffers: valid until the next call, and never after Close.
type ZeroCopyReader struct {
	dev  *Device
	bufs [2][]byte // each starts with a struct bpf_zbuf_header

	mu       sync.Mutex // held by Next; Close waits for it before unmapping
	released bool
	next     int    // the buffer the device hands over next
	cur      int    // the buffer being walked, or -1
	curGen   uint32 // its kernel generation when it was taken
	recs     Records
	w        waiter

	timeoutErr bool

	woken    bool // the netpoller reported readiness since the wait began
	detached bool // a wake-up found the descriptor without an interface
	rotArg   [ioctl.SizeofZbuf]byte
	checkFn  func(uintptr) bool
}

var (
	_ gopacket.PacketDataSource         = (*ZeroCopyReader)(nil)
	_ gopacket.ZeroCopyPacketDataSource = (*ZeroCopyReader)(nil)
)

// NewZeroCopyReader switches a fresh, unattached device to zero-copy
// buffer mode (BIOCSETBUFMODE), maps two shared anonymous buffers of
// bufSize bytes each (rounded up to whole pages and capped at the device's
// BIOCGETZMAX; 0 means DefaultZeroCopySize) and installs them
// (BIOCSETZBUF). Attach the device afterwards. The buffers are unmapped
// when the device is closed.
//
// Each buffer's first 32 bytes are its header, so the device's buffer size
// (BIOCGBLEN) becomes bufSize - 32.
func NewZeroCopyReader(dev *Device, bufSize int) (*ZeroCopyReader, error) {
	if bufSize < 0 {
		return nil, fmt.Errorf("bpfdev: zero-copy buffer size %d is negative", bufSize)
	}
	if err := dev.setUint32(ioctl.BIOCSETBUFMODE, ioctl.BPF_BUFMODE_ZBUF); err != nil {
		return nil, err
	}
	var zmax uint64 // a size_t
	if err := dev.ioctl(ioctl.BIOCGETZMAX, unsafe.Pointer(&zmax)); err != nil {
		return nil, err
	}
	page := os.Getpagesize()
	if bufSize == 0 {
		bufSize = DefaultZeroCopySize
	}
	size := (bufSize + page - 1) / page * page
	if limit := int(min(zmax, 1<<40)) / page * page; size > limit {
		size = limit
	}
	if size <= ioctl.SizeofZbufHeader {
		return nil, fmt.Errorf("bpfdev: zero-copy buffers of %d bytes cannot hold a record (device maximum %d)", size, zmax)
	}
	z := &ZeroCopyReader{dev: dev, cur: -1}
	for i := range z.bufs {
		// Shared, so that the daemon can map the very same pages.
		b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			z.unmap()
			return nil, fmt.Errorf("bpfdev: mapping a zero-copy buffer of %d bytes: %w", size, err)
		}
		z.bufs[i] = b
	}
	var arg [ioctl.SizeofZbuf]byte
	ioctl.Zbuf{BufA: z.addr(0), BufB: z.addr(1), BufLen: uint64(size)}.Encode(arg[:])
	if err := dev.ioctl(ioctl.BIOCSETZBUF, unsafe.Pointer(&arg)); err != nil {
		z.unmap()
		return nil, err
	}
	z.w.dev = dev
	z.checkFn = z.check
	if !dev.pollable {
		z.checkFn = z.checkBlocking
	}
	dev.closeMu.Lock()
	defer dev.closeMu.Unlock()
	if dev.closed.Load() {
		z.unmap()
		return nil, ErrClosed
	}
	dev.onClose = z.release
	return z, nil
}

func (z *ZeroCopyReader) addr(i int) uint64 { return uint64(uintptr(unsafe.Pointer(&z.bufs[i][0]))) }

func (z *ZeroCopyReader) unmap() {
	for i, b := range z.bufs {
		if b != nil {
			unix.Munmap(b)
			z.bufs[i] = nil
		}
	}
}

// release unmaps the buffers once no Next is running; the device is
// already closed, so a waiting Next has returned or is about to.
func (z *ZeroCopyReader) release() {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.released = true
	z.recs.Reset(nil, 0)
	z.unmap()
}

// Header words of struct bpf_zbuf_header. The buffers are page-aligned,
// so the words are aligned for atomic access.
func (z *ZeroCopyReader) word(i, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&z.bufs[i][off]))
}

// owned reports whether buffer i is the reader's: the device handed it
// over and it was not given back. Generations wrap, so only != is right.
func (z *ZeroCopyReader) owned(i int) bool {
	return atomic.LoadUint32(z.word(i, ioctl.OffsetofZbufKernelGen)) != atomic.LoadUint32(z.word(i, ioctl.OffsetofZbufUserGen))
}

// take starts walking the next buffer, which the caller saw owned.
func (z *ZeroCopyReader) take() error {
	i := z.next
	gen := atomic.LoadUint32(z.word(i, ioctl.OffsetofZbufKernelGen))
	n := int(atomic.LoadUint32(z.word(i, ioctl.OffsetofZbufKernelLen)))
	z.cur, z.curGen, z.next = i, gen, 1-i
	data := z.bufs[i][ioctl.SizeofZbufHeader:]
	if n > len(data) {
		z.recs.Reset(nil, 0)
		z.acknowledge()
		return fmt.Errorf("%w: zero-copy buffer claims %d bytes of data, it has room for %d", ErrBadRecord, n, len(data))
	}
	z.recs.Reset(data[:n], TimestampType(z.dev.timestamp.Load()))
	return nil
}

// acknowledge gives the walked buffer back to the device.
func (z *ZeroCopyReader) acknowledge() {
	if z.cur >= 0 {
		atomic.StoreUint32(z.word(z.cur, ioctl.OffsetofZbufUserGen), z.curGen)
		z.cur = -1
	}
}

// rotate asks the device to hand over a store buffer that holds data
// (BIOCROTZBUF); whether it did shows in the generations.
func (z *ZeroCopyReader) rotate(fd uintptr) {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(ioctl.BIOCROTZBUF), uintptr(unsafe.Pointer(&z.rotArg)))
		if errno != unix.EINTR {
			return
		}
	}
}

// check runs in the netpoller: true once the next buffer is the reader's.
// When it is not, the store buffer may hold data the device will not hand
// over by itself (immediate mode, poll's timer, or packets that arrived
// before this wait, whose wake-up the netpoller has already forgotten), so
// ask for it: one BIOCROTZBUF per wait and per wake-up, never per packet.
func (z *ZeroCopyReader) check(fd uintptr) bool {
	if z.owned(z.next) {
		return true
	}
	z.rotate(fd)
	if z.owned(z.next) {
		return true
	}
	if z.woken {
		// A descriptor whose interface went away is woken and reported
		// readable for ever; once its last data is handed over, stop.
		var dlt uint32
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(ioctl.BIOCGDLT), uintptr(unsafe.Pointer(&dlt)))
		if errno == unix.EINVAL {
			z.detached = true
			return true
		}
	}
	z.woken = true
	return false
}

// checkBlocking is check for a file the netpoller refused: it waits in
// poll(2) itself.
func (z *ZeroCopyReader) checkBlocking(fd uintptr) bool {
	ms := -1
	if t := time.Duration(z.dev.timeout.Load()); t > 0 {
		ms = int(max(t/time.Millisecond, 1))
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for !z.owned(z.next) {
		if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
			return true
		}
		z.rotate(fd)
	}
	return true
}

// SetTimeoutError chooses what Next does when the device's read timeout
// expires and nothing arrived: try again (the default) or return
// ErrTimeout.
func (z *ZeroCopyReader) SetTimeoutError(on bool) { z.timeoutErr = on }

// SetReadDeadline makes a Next that needs to wait return
// os.ErrDeadlineExceeded at t; the zero time means no deadline.
func (z *ZeroCopyReader) SetReadDeadline(t time.Time) error { return z.w.setDeadline(t) }

// Device is the device the reader reads.
func (z *ZeroCopyReader) Device() *Device { return z.dev }

// BufferSize is the size of each of the two mapped buffers, header
// included.
func (z *ZeroCopyReader) BufferSize() int { return len(z.bufs[0]) }

// Next returns the next packet, pointing into the shared buffer: valid
// until the next call. The buffer is given back to the device when Next is
// called after its last packet.
func (z *ZeroCopyReader) Next() ([]byte, gopacket.CaptureInfo, error) { return z.nextPacket(nil) }

// NextContext is Next that gives up with ctx's error when ctx is done
// while it waits.
func (z *ZeroCopyReader) NextContext(ctx context.Context) ([]byte, gopacket.CaptureInfo, error) {
	return z.nextPacket(ctx)
}

func (z *ZeroCopyReader) nextPacket(ctx context.Context) ([]byte, gopacket.CaptureInfo, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for {
		if z.released {
			return nil, gopacket.CaptureInfo{}, ErrClosed
		}
		if z.recs.Next() {
			rec := z.recs.Record()
			return rec.Data, gopacket.CaptureInfo{
				Timestamp:     rec.Timestamp,
				CaptureLength: rec.CaptureLength,
				Length:        rec.Length,
			}, nil
		}
		if err := z.recs.Err(); err != nil {
			z.recs.Reset(nil, 0)
			z.acknowledge()
			return nil, gopacket.CaptureInfo{}, err
		}
		z.acknowledge()
		if z.owned(z.next) {
			if err := z.take(); err != nil {
				return nil, gopacket.CaptureInfo{}, err
			}
			continue
		}
		if err := z.wait(ctx); err != nil {
			return nil, gopacket.CaptureInfo{}, err
		}
	}
}

// wait returns when the next buffer may be the reader's.
func (z *ZeroCopyReader) wait(ctx context.Context) error {
	if z.w.deadlinePassed() {
		return errDeadline
	}
	z.woken, z.detached = false, false
	err := z.w.wait(ctx, z.checkFn, time.Duration(z.dev.timeout.Load()))
	switch err {
	case nil, errRetry:
		if z.detached && !z.owned(z.next) {
			return &Error{Op: "read", Path: z.dev.path, Err: unix.ENXIO}
		}
		return nil
	case errLimit:
		var cerr error
		if e := z.dev.conn.Control(z.rotate); e != nil {
			cerr = ErrClosed
		}
		if cerr == nil && !z.owned(z.next) && z.timeoutErr {
			return ErrTimeout
		}
		return cerr
	}
	return err
}

// ReadPacketData is gopacket.PacketDataSource: Next with the data copied.
// A closed device, or an interface that went away, gives io.EOF.
func (z *ZeroCopyReader) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := z.Next()
	if err != nil {
		return nil, ci, asSourceError(err)
	}
	return append([]byte(nil), data...), ci, nil
}

// ZeroCopyReadPacketData is gopacket.ZeroCopyPacketDataSource: Next, with
// io.EOF at the end as in ReadPacketData.
func (z *ZeroCopyReader) ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := z.Next()
	return data, ci, asSourceError(err)
}

// LinkType is the link type of the attached interface, for
// gopacket.NewPacketSource; Ethernet if the device cannot say.
func (z *ZeroCopyReader) LinkType() layers.LinkType { return linkTypeOrEthernet(z.dev) }

// Close closes the device and unmaps the buffers.
func (z *ZeroCopyReader) Close() error { return z.dev.Close() }
