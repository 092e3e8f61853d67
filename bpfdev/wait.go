package bpfdev

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "bpfdev: read timeout expired with no packets" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// ErrTimeout is returned by a reader told to report timeouts (see
// Reader.SetTimeoutError) when the device's read timeout expires and no
// packet arrived. It is a net.Error whose Timeout method is true, so
// gopacket's PacketSource retries.
var ErrTimeout error = timeoutError{}

var (
	errDeadline = os.ErrDeadlineExceeded
	// errLimit: the wait ended because the device's read timeout expired.
	errLimit = errors.New("bpfdev: read timeout expired")
	// errRetry: the wait ended for a deadline that has since moved.
	errRetry = errors.New("bpfdev: wait again")
)

// waiter parks a reader's goroutine in the netpoller until the device is
// readable, combining three things that end a wait: the caller's read
// deadline, the device's read timeout, and a context's cancellation. All
// three become the one read deadline of the file.
type waiter struct {
	dev *Device

	mu           sync.Mutex
	userDeadline time.Time
	fileDeadline time.Time // what the file has now
	limit        time.Time // the device timeout's end for the current wait
	waiting      bool
	cancelled    bool   // the current wait's context was cancelled
	seq          uint64 // counts waits, so a late cancellation is ignored
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// longAgo is a deadline in the past: setting it ends a wait at once.
var longAgo = time.Unix(1, 0)

func (w *waiter) applyLocked() {
	want := earliest(w.userDeadline, w.limit)
	if w.cancelled {
		want = longAgo
	}
	if !want.Equal(w.fileDeadline) {
		w.dev.file.SetReadDeadline(want)
		w.fileDeadline = want
	}
}

func (w *waiter) setDeadline(t time.Time) error {
	if !w.dev.pollable {
		return os.ErrNoDeadline
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.userDeadline = t
	if w.waiting {
		w.applyLocked()
	}
	return nil
}

func (w *waiter) deadlinePassed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.userDeadline.IsZero() && !time.Now().Before(w.userDeadline)
}

func (w *waiter) cancel(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting && w.seq == seq {
		w.cancelled = true
		w.applyLocked()
	}
}

// wait runs fn through the netpoller until it returns true. It returns nil
// then, errLimit when timeout (if not 0) expired first, errRetry when the
// caller should simply call again, os.ErrDeadlineExceeded, ctx's error, or
// ErrClosed.
func (w *waiter) wait(ctx context.Context, fn func(uintptr) bool, timeout time.Duration) error {
	if ctx != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if w.dev.closed.Load() {
		return ErrClosed
	}
	if !w.dev.pollable {
		// A blocking file: fn blocks in read(2) itself.
		if err := w.dev.conn.Read(fn); err != nil {
			if w.dev.closed.Load() || errors.Is(err, os.ErrClosed) {
				return ErrClosed
			}
			return &Error{Op: "read", Path: w.dev.path, Err: err}
		}
		return nil
	}
	w.mu.Lock()
	w.limit = time.Time{}
	if timeout > 0 {
		w.limit = time.Now().Add(timeout)
	}
	limit := w.limit
	w.waiting, w.cancelled = true, false
	seq := w.seq
	w.applyLocked()
	w.mu.Unlock()

	var stop func() bool
	if ctx != nil && ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { w.cancel(seq) })
	}
	err := w.dev.conn.Read(fn)
	if stop != nil {
		stop()
	}

	w.mu.Lock()
	w.waiting = false
	w.seq++
	cancelled := w.cancelled
	w.cancelled = false
	user := w.userDeadline
	w.mu.Unlock()

	switch {
	case err == nil:
		return nil
	case w.dev.closed.Load():
		return ErrClosed
	case !errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{Op: "read", Path: w.dev.path, Err: err}
	case cancelled:
		return ctx.Err()
	}
	now := time.Now()
	switch {
	case !user.IsZero() && !now.Before(user):
		return os.ErrDeadlineExceeded
	case !limit.IsZero() && !now.Before(limit):
		return errLimit
	}
	return errRetry
}

// asSourceError turns the errors that end a capture for good into io.EOF,
// which is how gopacket's PacketSource learns that a source is done.
func asSourceError(err error) error {
	if errors.Is(err, ErrClosed) || errors.Is(err, unix.ENXIO) {
		return io.EOF
	}
	return err
}

// LinkType is the gopacket link type of the attached interface's DLT.
func (d *Device) LinkType() (layers.LinkType, error) {
	dlt, err := d.DLT()
	if err != nil {
		return 0, err
	}
	return LinkTypeOf(dlt), nil
}

// LinkTypeOf maps a BPF DLT_ value to the LINKTYPE_ value of capture files
// and gopacket. They agree except for a few historical values; a DLT
// gopacket cannot represent (above 255) gives LinkTypeNull.
func LinkTypeOf(dlt uint32) layers.LinkType {
	switch {
	case dlt == 12 || dlt == 14: // DLT_RAW on BSD and on other systems
		return layers.LinkTypeRaw
	case dlt > 255:
		return layers.LinkTypeNull
	}
	return layers.LinkType(dlt)
}
