package bpf

import (
	"runtime/debug"

	"github.com/bpffs/bpffs/bufmode/zerocopy"
	"golang.org/x/sys/unix"
)

// SetZeroCopyBuffers is the second half of BIOCSETZBUF: it installs buffers
// the ioctl layer attached (zerocopy.Attach). Buffer mode gives EOPNOTSUPP;
// buffers already installed or an attached descriptor EINVAL. On error the
// caller releases z.
func (d *Descriptor) SetZeroCopyBuffers(z *zerocopy.Buffers) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return unix.EBADF
	}
	if d.bufMode != BufModeZbuf {
		return unix.EOPNOTSUPP
	}
	if d.mode != nil || d.ifp != nil {
		return unix.EINVAL
	}
	if !z.Shared() {
		// The copy path stages both buffers in the daemon's memory.
		if err := d.reserveLocked(2 * int64(z.Size()+zerocopy.HeaderSize)); err != nil {
			return err
		}
	}
	d.zbuf = z
	d.mode = z
	d.bufSize = z.Size()
	return nil
}

// RotateZeroCopy is BIOCROTZBUF: it hands a store buffer with data to the
// client when no buffer is out (reclaiming an acknowledged one first) and
// returns the client's address of that buffer and its length, or zeros.
func (d *Descriptor) RotateZeroCopy() (addr uint64, length int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bufMode != BufModeZbuf {
		return 0, 0, unix.EOPNOTSUPP
	}
	if d.zbuf == nil {
		return 0, 0, nil
	}
	addr, length = d.zbuf.RotateForUser()
	return addr, length, nil
}

// catchRunGuarded is catchRun into zero-copy buffers that are the client's
// shared pages: if the client truncated the file behind them, writing a
// record faults; the fault is caught, the buffers are marked broken and the
// frame that hit it counts as a drop — a client must never crash the daemon.
func (d *Descriptor) catchRunGuarded(ifp *Interface, next *int, n int, frame func(int) ([]byte, int64)) (wake bool) {
	defer d.dropOnFault(debug.SetPanicOnFault(true), &wake)
	return d.catchRun(ifp, next, n, frame)
}

// dropOnFault is deferred around writes into a client's shared pages, with
// SetPanicOnFault on: a fault there (the client truncated the file behind
// them) breaks the buffers and counts the packet as a drop instead of
// crashing the daemon. Any other panic goes on.
func (d *Descriptor) dropOnFault(oldPanicOnFault bool, wake *bool) {
	debug.SetPanicOnFault(oldPanicOnFault)
	if isFault(recover()) {
		d.zbuf.Faulted()
		d.stats.Drop++
		*wake = false
	}
}

// isFault tells whether a recovered value is a memory fault that
// SetPanicOnFault turned into a panic; any other panic is raised again.
// (recover itself must be called by the deferred function.)
func isFault(r any) bool {
	if r == nil {
		return false
	}
	if _, fault := r.(interface{ Addr() uintptr }); !fault {
		panic(r)
	}
	return true
}

// ZeroCopyMax is BIOCGETZMAX: EOPNOTSUPP outside zero-copy mode.
func (d *Descriptor) ZeroCopyMax() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bufMode != BufModeZbuf {
		return 0, unix.EOPNOTSUPP
	}
	return zerocopy.MaxSize(), nil
}
