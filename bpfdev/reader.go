package bpfdev

import (
	"context"
	"errors"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// Reader reads a device in buffered mode: one read(2) of exactly the
// device's buffer size fills one reused buffer, and Next walks its records.
// Next and its variants must not be called concurrently; SetReadDeadline
// may be called from any goroutine, to release a Next that waits.
type Reader struct {
	dev  *Device
	buf  []byte
	recs Records
	w    waiter

	timeoutErr bool

	// Results of the read the netpoller ran; readFn and readNowFn are
	// built once so that waiting does not allocate.
	n         int
	rerr      error
	nowait    bool
	readFn    func(uintptr) bool
	readNowFn func(uintptr)
}

var (
	_ gopacket.PacketDataSource         = (*Reader)(nil)
	_ gopacket.ZeroCopyPacketDataSource = (*Reader)(nil)
)

// NewReader returns a buffered-mode reader of dev with a buffer of the
// device's current size (BIOCGBLEN). Set the buffer size before creating
// the reader; should it change later anyway, the reader follows.
func NewReader(dev *Device) (*Reader, error) {
	size, err := dev.BufferSize()
	if err != nil {
		return nil, err
	}
	return newReader(dev, size), nil
}

func newReader(dev *Device, size int) *Reader {
	r := &Reader{dev: dev, buf: make([]byte, size)}
	r.w.dev = dev
	r.readFn = r.read
	r.readNowFn = func(fd uintptr) {
		r.nowait = true
		r.read(fd)
		r.nowait = false
	}
	return r
}

// read is one read(2). On a non-blocking file it reports false on EAGAIN
// so that the netpoller waits, unless nowait says to take EAGAIN as an
// empty read.
func (r *Reader) read(fd uintptr) bool {
	for {
		n, err := unix.Read(int(fd), r.buf)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if !r.nowait {
				return false
			}
			n, err = 0, nil
		}
		r.n, r.rerr = max(n, 0), err
		return true
	}
}

// SetTimeoutError chooses what Next does when the device's read timeout
// (Device.SetTimeout) expires and nothing arrived: try again (the default)
// or return ErrTimeout.
func (r *Reader) SetTimeoutError(on bool) { r.timeoutErr = on }

// SetReadDeadline makes a Next that needs to wait for packets return
// os.ErrDeadlineExceeded at t; a Next already waiting returns then too.
// The zero time means no deadline. Packets already read are still handed
// out after the deadline.
func (r *Reader) SetReadDeadline(t time.Time) error { return r.w.setDeadline(t) }

// Device is the device the reader reads.
func (r *Reader) Device() *Device { return r.dev }

// Next returns the next packet. data points into the reader's buffer and
// is valid until the next call; ci has the record's timestamp, captured
// length and length on the wire.
func (r *Reader) Next() (data []byte, ci gopacket.CaptureInfo, err error) {
	return r.next(nil)
}

// NextContext is Next that gives up with ctx's error when ctx is done
// while it waits.
func (r *Reader) NextContext(ctx context.Context) (data []byte, ci gopacket.CaptureInfo, err error) {
	return r.next(ctx)
}

func (r *Reader) next(ctx context.Context) ([]byte, gopacket.CaptureInfo, error) {
	for {
		if r.recs.Next() {
			rec := r.recs.Record()
			return rec.Data, gopacket.CaptureInfo{
				Timestamp:     rec.Timestamp,
				CaptureLength: rec.CaptureLength,
				Length:        rec.Length,
			}, nil
		}
		if err := r.recs.Err(); err != nil {
			r.recs.Reset(nil, 0) // the rest of this buffer cannot be trusted
			return nil, gopacket.CaptureInfo{}, err
		}
		if err := r.fill(ctx); err != nil {
			return nil, gopacket.CaptureInfo{}, err
		}
	}
}

// fill reads the next buffer that holds data.
func (r *Reader) fill(ctx context.Context) error {
	resized := false
	for {
		if r.w.deadlinePassed() {
			return errDeadline
		}
		timeout := time.Duration(r.dev.timeout.Load())
		err := r.w.wait(ctx, r.readFn, timeout)
		switch err {
		case nil:
		case errRetry:
			continue
		case errLimit:
			// The store buffer may hold packets that no wake-up announced:
			// a non-blocking read hands them over, or reports none.
			if cerr := r.dev.conn.Control(r.readNowFn); cerr != nil {
				return ErrClosed
			}
		default:
			return err
		}
		if r.rerr != nil {
			if errors.Is(r.rerr, unix.EINVAL) && !resized {
				// The buffer size changed after NewReader.
				if size, serr := r.dev.BufferSize(); serr == nil && size != len(r.buf) {
					r.buf = make([]byte, size)
					resized = true
					continue
				}
			}
			return &Error{Op: "read", Path: r.dev.path, Err: r.rerr}
		}
		if r.n == 0 {
			if r.timeoutErr {
				return ErrTimeout
			}
			continue
		}
		r.recs.Reset(r.buf[:r.n], TimestampType(r.dev.timestamp.Load()))
		return nil
	}
}

// ReadPacketData is gopacket.PacketDataSource: Next with the data copied.
// A closed device, or an interface that went away, gives io.EOF.
func (r *Reader) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := r.Next()
	if err != nil {
		return nil, ci, asSourceError(err)
	}
	return append([]byte(nil), data...), ci, nil
}

// ZeroCopyReadPacketData is gopacket.ZeroCopyPacketDataSource: Next, with
// io.EOF at the end as in ReadPacketData.
func (r *Reader) ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := r.Next()
	return data, ci, asSourceError(err)
}

// LinkType is the link type of the attached interface, for
// gopacket.NewPacketSource; Ethernet (the only type bpffs offers) if the
// device cannot say.
func (r *Reader) LinkType() layers.LinkType { return linkTypeOrEthernet(r.dev) }

// Close closes the device.
func (r *Reader) Close() error { return r.dev.Close() }

func linkTypeOrEthernet(d *Device) layers.LinkType {
	if lt, err := d.LinkType(); err == nil {
		return lt
	}
	return layers.LinkTypeEthernet
}
