package bpf

import (
	"time"

	"golang.org/x/sys/unix"
)

// Write implements write(2) (bpf(4) §5) with the tap wire model: the frame is
// transmitted on the tap, so the Linux stack receives it, and this interface's
// OUT and INOUT listeners see it as outgoing. Errors: ENXIO before attach;
// a zero-length write returns (0, nil) and sends nothing; fewer than 14 bytes
// or more than 14 + MTU give EMSGSIZE; a write filter returning 0 gives EPERM;
// an interface without a transmitter gives ENETDOWN; a transmit error is
// returned as its errno (EIO if it carries none).
//
// Without header-complete the source address is replaced by the interface's,
// in a private copy (frame itself is never modified). With feedback the frame
// is also seen as incoming by IN and INOUT listeners, and if the writer's
// direction is INOUT its outgoing copy is suppressed for everyone, so that it
// is seen once.
func (d *Descriptor) Write(frame []byte) (int, error) {
	d.mu.Lock()
	ifp := d.ifp
	hdrComplete := d.hdrComplete
	feedback := d.feedback
	direction := d.direction
	writeFilter := d.writeFilter
	d.mu.Unlock()

	if ifp == nil {
		return 0, unix.ENXIO
	}
	if len(frame) == 0 {
		return 0, nil
	}
	if len(frame) < ethHdrLen || len(frame)-ethHdrLen > ifp.MTU() {
		return 0, unix.EMSGSIZE
	}
	if writeFilter.Run(frame, uint32(len(frame))) == 0 {
		d.mu.Lock()
		d.stats.WriteRejected++
		d.mu.Unlock()
		return 0, unix.EPERM
	}
	if ifp.tx == nil {
		return 0, unix.ENETDOWN
	}

	// writeMu keeps writeBuf stable until every listener has copied it; it
	// is released before the wake-ups, which must run with no lock held.
	d.writeMu.Lock()
	out := frame
	if !hdrComplete {
		if cap(d.writeBuf) < len(frame) {
			d.writeBuf = make([]byte, len(frame), max(len(frame), ethHdrLen+ifp.MTU()))
		}
		out = d.writeBuf[:len(frame)]
		copy(out, frame)
		copy(out[6:12], ifp.addr[:])
	}
	if err := ifp.tx.Transmit(out); err != nil {
		d.writeMu.Unlock()
		return 0, asErrno(err, unix.EIO)
	}
	d.mu.Lock()
	d.stats.Written++
	d.mu.Unlock()

	now := time.Now().UnixNano()
	if !(feedback && direction == DirectionInOut) {
		ifp.output(out, now)
	}
	if feedback {
		ifp.Input(out, now)
	}
	d.writeMu.Unlock()
	ifp.EndBatch()
	return len(frame), nil
}
