package bpf

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
)

// Read implements read(2) in buffer mode (bpf(4) §3.5). size must equal
// BufLen (EINVAL, checked first); zero-copy mode gives EOPNOTSUPP. Without a
// hold buffer it returns the store buffer at once when it has data and the
// descriptor is immediate, the read is non-blocking, or poll's timer already
// fired; otherwise a detached descriptor gives ENXIO, a non-blocking read
// EAGAIN, and a blocking read waits for a rotation, an immediate-mode packet,
// detach, ctx's cancellation (EINTR) or the read timeout. The timeout counts
// from the start of the call (FreeBSD restarts it after every wake-up); when
// it expires an empty store gives (0, nil), a non-empty one is returned.
//
// deliver is called exactly once with the hold buffer's bytes (not copied;
// valid only during the call); the buffer is then freed whatever deliver
// returns, and Read returns len(data), or deliver's errno (EFAULT if it
// carries none). Concurrent reads are serialised.
func (d *Descriptor) Read(ctx context.Context, size int, nonblock bool, deliver func(data []byte) error) (int, error) {
	d.mu.Lock()
	if size != d.bufSize {
		d.mu.Unlock()
		return 0, unix.EINVAL
	}
	if d.bufMode != BufModeBuffer {
		d.mu.Unlock()
		return 0, unix.EOPNOTSUPP
	}
	d.mu.Unlock()

	select {
	case d.readSem <- struct{}{}:
	case <-ctx.Done():
		return 0, unix.EINTR
	}
	defer func() { <-d.readSem }()

	d.mu.Lock()
	timedOut := d.pollState == pollTimedOut
	d.stopPollTimerLocked()
	var deadline time.Time
	if d.rtimeout > 0 {
		deadline = time.Now().Add(d.rtimeout)
	}
	for {
		b := d.buffers
		if b != nil && b.HasHold() {
			break
		}
		if b != nil && b.StoreLen() != 0 && (d.immediate || nonblock || timedOut) {
			b.Rotate()
			break
		}
		if d.ifp == nil {
			d.mu.Unlock()
			return 0, unix.ENXIO
		}
		if nonblock {
			d.mu.Unlock()
			return 0, unix.EAGAIN
		}
		d.mu.Unlock()
		expired, err := d.waitReadable(ctx, deadline)
		d.mu.Lock()
		if err != nil {
			d.mu.Unlock()
			return 0, err
		}
		if expired {
			b = d.buffers
			if b == nil || !b.HasHold() && b.StoreLen() == 0 {
				d.mu.Unlock()
				return 0, nil
			}
			if !b.HasHold() {
				b.Rotate()
			}
			break
		}
	}
	b := d.buffers
	data := b.BeginRead()
	dropsBefore := d.stats.Drop
	d.mu.Unlock()

	err := deliver(data)

	d.mu.Lock()
	// If a concurrent SetBufLen (on a descriptor detached meanwhile) replaced
	// the buffers, b is an orphan and EndRead on it is harmless.
	b.EndRead()
	if err == nil {
		d.reads++
	}
	// The reply wakes the program inside deliver, before the hold buffer is
	// free again; frames arriving in that gap found both buffers full (on
	// FreeBSD the copy-out and the release are one step). The store then
	// holds what filled it, and if no frame follows nothing would rotate
	// it: hand it over now, as the first frame that did not fit would have.
	rotated := d.stats.Drop != dropsBefore && b == d.buffers && b.StoreLen() != 0 && !b.HasHold() && b.Rotate()
	d.mu.Unlock()
	if rotated {
		d.wakeUp()
	}
	if err != nil {
		return 0, asErrno(err, unix.EFAULT)
	}
	return len(data), nil
}

// waitReadable sleeps until a wake-up, the deadline (zero: none) or ctx's
// cancellation. The caller holds readSem, which owns readTimer.
func (d *Descriptor) waitReadable(ctx context.Context, deadline time.Time) (expired bool, err error) {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		left := time.Until(deadline)
		if left <= 0 {
			return true, nil
		}
		d.readTimer.Reset(left)
		defer d.readTimer.Stop()
		timeout = d.readTimer.C
	}
	select {
	case <-d.readyCh:
		return false, nil
	case <-timeout:
		return true, nil
	case <-ctx.Done():
		return false, unix.EINTR
	}
}

// readableLocked is FreeBSD's bpf_ready.
func (d *Descriptor) readableLocked() bool {
	if d.mode == nil {
		return false
	}
	if d.mode.HoldReadable() {
		return true
	}
	return (d.immediate || d.pollState == pollTimedOut) && d.mode.StoreLen() != 0
}

// Poll answers FUSE_POLL (bpf(4) §3.6) with the subset of events that is
// ready. A detached descriptor is ready for everything it is asked (the read
// that follows gets ENXIO). An attached one is always writable, and readable
// when a hold buffer waits or, in immediate mode or after the poll timer
// fired, the store buffer has data. When it is not readable and a read
// timeout is set, the one-shot timer is armed: when it fires the descriptor
// enters the timed-out state and is woken, but only if the store buffer has
// data then.
func (d *Descriptor) Poll(events uint32) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifp == nil {
		return events & (PollIn | PollRdNorm | PollOut | PollWrNorm | PollHup)
	}
	revents := events & (PollOut | PollWrNorm)
	if events&(PollIn|PollRdNorm) != 0 {
		if d.readableLocked() {
			revents |= events & (PollIn | PollRdNorm)
		} else if d.rtimeout > 0 && d.pollState == pollIdle {
			d.armPollTimerLocked()
		}
	}
	return revents
}

// CancelPollTimeout is called by the dispatcher at the start of every ioctl:
// it stops the poll timer and forgets a timed-out state.
func (d *Descriptor) CancelPollTimeout() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopPollTimerLocked()
}

func (d *Descriptor) armPollTimerLocked() {
	d.pollState = pollWaiting
	d.pollDeadline = time.Now().Add(d.rtimeout)
	if d.pollTimer == nil {
		d.pollTimer = time.AfterFunc(d.rtimeout, d.pollTimerFired)
	} else {
		d.pollTimer.Reset(d.rtimeout)
	}
}

func (d *Descriptor) stopPollTimerLocked() {
	if d.pollTimer != nil {
		d.pollTimer.Stop()
	}
	d.pollState = pollIdle
}

// pollTimerFired is FreeBSD's bpf_timed_out.
func (d *Descriptor) pollTimerFired() {
	d.mu.Lock()
	// A cancel racing with the firing leaves the state idle; a cancel and
	// re-arm leaves a later deadline: both make this firing stale.
	if d.pollState != pollWaiting || time.Now().Before(d.pollDeadline) {
		d.mu.Unlock()
		return
	}
	d.pollState = pollTimedOut
	wake := d.mode != nil && d.mode.StoreLen() != 0
	d.mu.Unlock()
	if wake {
		d.wakeUp()
	}
}
