//go:build linux

package tap

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxFrameLen bounds the frames a tap can hand up. A tap's MTU is at most
// 65521 (65535 minus the Ethernet header), so a frame is at most 65535 bytes
// plus a 4-byte VLAN tag the kernel may insert; the bound keeps 14 bytes of
// margin. Every read has this much room, so no frame is ever cut short,
// even if the MTU is raised while reading.
const MaxFrameLen = 65553

// Defaults of ReaderOptions.
const (
	DefaultBufferSize = 256 << 10
	DefaultMaxFrames  = 256
	DefaultPoolSize   = 4
)

// DefaultCoalesce is the reader's nap when the source runs dry under load.
// A reader blocked in poll(2) is woken by the sender for every frame, and on
// these VMs that wake-up (an IPI to the other vCPU) costs the sending CPU
// more than the frame itself; a reader that naps instead, like a NIC
// moderating its interrupts, is found by no wake-up at all and collects
// what queued meanwhile in one burst. It naps for up to napBudget in a row,
// then blocks as usual, so an idle tap costs nothing. The price is at most
// this much extra latency per burst.
const DefaultCoalesce = 50 * time.Microsecond

// napBudget bounds the time spent napping with nothing found before the
// reader blocks.
const napBudget = time.Millisecond

// ReaderOptions tune a Reader; zero values select the defaults.
type ReaderOptions struct {
	// BufferSize is bytes per batch buffer (default 256 KiB); frames never
	// straddle buffers. A batch ends when less than MaxFrameLen bytes are
	// left, so sizes below MaxFrameLen are raised to it.
	BufferSize int
	// MaxFrames is the most frames per batch (default 256).
	MaxFrames int
	// PoolSize is how many buffers are allocated up front and the most
	// kept idle for reuse (default 4). Batches retained by consumers
	// beyond that make the reader allocate (ReaderStats.PoolMisses).
	PoolSize int
	// Direct, if set, may take frames straight into its own memory (see
	// DirectTarget); frames it declines go through batches as usual.
	// SourceRing has no use for it: the kernel fills the ring itself.
	Direct DirectTarget
	// Source selects the tap's queue (SourceRead, the default), a packet
	// ring (SourceRing) or the egress program (SourceEgress).
	Source Source
	// Coalesce is how long the reader naps when it finds the source
	// empty soon after frames came (default DefaultCoalesce; negative:
	// never nap). See DefaultCoalesce.
	Coalesce time.Duration
	// RingBytes sizes the SourceRing ring (default DefaultRingBytes) or
	// the SourceEgress ring buffer (rounded up to a power of two; default
	// DefaultEgressBytes).
	RingBytes int
	// Gate, if set, lets a SourceRing or SourceEgress reader leave
	// frames in the ring while its consumer has no room for them (see
	// Gate), for at most MaxHold at a time (default DefaultMaxHold).
	Gate    Gate
	MaxHold time.Duration
}

func (o ReaderOptions) withDefaults() ReaderOptions {
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.BufferSize < MaxFrameLen {
		o.BufferSize = MaxFrameLen
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = DefaultMaxFrames
	}
	if o.PoolSize <= 0 {
		o.PoolSize = DefaultPoolSize
	}
	if o.Coalesce == 0 {
		o.Coalesce = DefaultCoalesce
	}
	return o
}

// ReaderStats are cumulative counters of one Reader.
type ReaderStats struct {
	Frames, Batches, Bytes, Reads uint64
	// PoolMisses counts buffers allocated because none was idle.
	PoolMisses uint64
	// Waits counts how often the reader found the tap empty and blocked;
	// Naps how often it napped instead (see DefaultCoalesce).
	Waits, Naps uint64
	// Holds counts the naps a SourceRing or SourceEgress reader took
	// because its Gate was blocked, leaving frames in the ring;
	// HoldEpisodes the times it began holding back; HoldsExpired the times
	// it gave up after MaxHold and let frames through to be dropped.
	Holds, HoldEpisodes, HoldsExpired uint64
	// HeldBackDrops counts the ring's drops (part of SourceDrops) that
	// happened while frames were held back and were reported to the Gate.
	HeldBackDrops uint64
	// RefcountErrors counts Retain/Release calls on batches that were
	// already fully released; they were ignored.
	RefcountErrors uint64
	// DirectFrames counts the frames (included in Frames) that were read
	// straight into ReaderOptions.Direct's memory; DirectFaults the direct
	// reads that failed with EFAULT (frames lost, reported to the target).
	DirectFrames, DirectFaults uint64
	// SourceRing and SourceEgress. SourceDrops counts frames the kernel
	// could not put into the ring because it was full; Oversize frames
	// longer than a ring slot or the largest record (sized from the MTU
	// when the reader started), dropped. SourceRing only: HeldStalls how
	// often the reader caught up with a slot that a retained batch still
	// held, and waited.
	SourceDrops, Oversize, HeldStalls uint64
}

// kernelSource is a source the kernel fills by itself, where frames can wait
// while the consumer has no room: SourceRing and SourceEgress.
type kernelSource interface {
	// takeFrame takes the next complete frame, if there is one, on behalf of
	// b. stalled: the source is full of frames retained batches hold.
	takeFrame(b *Batch) (frame []byte, wallNanos int64, ok, stalled bool)
	// seal ends taking frames into b (b has some).
	seal(b *Batch)
	// giveBack is called by b's last Release.
	giveBack(b *Batch)
	// backlogHalf tells whether half the source's room is taken.
	backlogHalf() bool
	sourceDrops() uint64
	oversizeFrames() uint64
	// pollFD is readable when frames wait.
	pollFD() int
	clearPollError()
	// close ends capture; the memory goes with the last batch's Release.
	close(*Device)
}

// Reader reads frames from a Device in batches and hands each batch to a
// handler. Create it with Device.NewReader; run it once.
type Reader struct {
	dev       *Device
	fd        int
	handle    func(*Batch)
	pool      *batchPool
	maxFrames int
	setupErr  error
	direct    DirectTarget

	wakeMu sync.Mutex // guards wakeFD against closeWake
	wakeFD int        // eventfd; readable once Stop was called

	pollFDs    []unix.PollFd // tap or ring, wake, [tap for its errors]
	lastYield  time.Time     // see maybeYield
	gate       Gate
	held       bool   // frames are being held back for the gate
	heldDrops  uint64 // ring drops when holding back began
	heldNaps   int
	heldSince  time.Time
	maxHold    time.Duration
	noHold     bool          // a hold ran out: no more until the consumer shows room
	othersWait bool          // holding back for one consumer while others have room
	nap        unix.Timespec // zero: never nap
	holdNap    unix.Timespec // first naps of a hold: nap, or DefaultCoalesce without one
	maxNaps    int
	naps       int          // naps in a row that found nothing
	kernel     kernelSource // SourceRing or SourceEgress
	ring       *packetRing  // SourceRing only
	queueEmpty bool         // the last read found nothing: block before reading again

	started  atomic.Bool
	stopping atomic.Bool
	runTID   atomic.Int32
	done     chan struct{}

	frames, batches, bytes, reads, waits atomic.Uint64
	holds, holdEpisodes, holdsExpired    atomic.Uint64
	heldBackDrops                        atomic.Uint64
	napCount                             atomic.Uint64
	directFrames, directFaults           atomic.Uint64
}

var errStopped = errors.New("reader stopped")

// NewReader prepares a reader that calls handle for every batch. handle runs
// on the reader's thread; it must not keep the batch or its frames after it
// returns unless it calls Retain (and later Release). Problems found here
// (a closed device, a nil handler, no eventfd) are returned by Run.
func (d *Device) NewReader(opts ReaderOptions, handle func(*Batch)) *Reader {
	opts = opts.withDefaults()
	r := &Reader{
		dev:       d,
		handle:    handle,
		maxFrames: opts.MaxFrames,
		direct:    opts.Direct,
		wakeFD:    -1,
		done:      make(chan struct{}),
	}
	r.holdNap = unix.NsecToTimespec(int64(DefaultCoalesce))
	if opts.Coalesce > 0 {
		r.nap = unix.NsecToTimespec(int64(opts.Coalesce))
		r.holdNap = r.nap
		r.maxNaps = max(1, int(napBudget/opts.Coalesce))
	}
	if handle == nil {
		r.setupErr = fmt.Errorf("tap: NewReader on %s without a handler: %w", d.describe(), ErrInvalid)
		return r
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		r.setupErr = fmt.Errorf("tap: NewReader on %s: %w", d.describe(), ErrClosed)
		return r
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		r.setupErr = fmt.Errorf("tap: reader eventfd: %w", err)
		return r
	}
	r.wakeFD = wake
	// The tap fd stays valid while the device is open, and Close stops
	// this reader before closing it.
	r.fd = d.tapFD
	switch opts.Source {
	case SourceRead:
		if err := d.dropTapQueue(false); err != nil {
			return r.failSetup(err)
		}
		r.pollFDs = []unix.PollFd{
			{Fd: int32(r.fd), Events: unix.POLLIN},
			{Fd: int32(wake), Events: unix.POLLIN},
		}
		r.pool = newBatchPool(opts.BufferSize, opts.MaxFrames, opts.PoolSize)
	case SourceRing, SourceEgress:
		var err error
		if opts.Source == SourceRing {
			r.ring, err = d.openRing(opts.RingBytes)
			r.kernel = r.ring
		} else {
			var e *egressRing
			e, err = d.openEgress(opts.RingBytes)
			r.kernel = e
		}
		if err == nil {
			// Frames captured before the tap's queue (and any that
			// slip past the capture) must not pile up there.
			if err = d.dropTapQueue(true); err != nil {
				r.kernel.close(d)
			}
		}
		if err != nil {
			r.kernel, r.ring = nil, nil
			return r.failSetup(err)
		}
		r.direct = nil
		r.gate = opts.Gate
		r.maxHold = opts.MaxHold
		if r.maxHold <= 0 {
			r.maxHold = DefaultMaxHold
		}
		// The tap fd is polled for its POLLERR, which tells that the
		// tap was deleted. POLLIN is asked for too: the deletion wakes
		// the tap's waiters as "readable", and a poll that asked for
		// errors only would not be woken by it.
		r.pollFDs = []unix.PollFd{
			{Fd: int32(r.kernel.pollFD()), Events: unix.POLLIN},
			{Fd: int32(wake), Events: unix.POLLIN},
			{Fd: int32(r.fd), Events: unix.POLLIN},
		}
		r.pool = newBatchPool(0, opts.MaxFrames, opts.PoolSize)
		r.pool.kernel = r.kernel
	default:
		return r.failSetup(fmt.Errorf("tap: reader source %v: %w", opts.Source, ErrInvalid))
	}
	d.readers = append(d.readers, r)
	return r
}

// failSetup records why the reader cannot run and closes its eventfd at
// once, so that a caller that sees Err and tries other options leaves
// nothing behind whether or not it runs this one.
func (r *Reader) failSetup(err error) *Reader {
	r.setupErr = err
	r.closeWake()
	return r
}

// Err reports what kept the reader from being set up (Run would return it),
// so that a caller can try other options first.
func (r *Reader) Err() error { return r.setupErr }

// Run reads until Stop, the device's Close, or an error. Call it on its own
// goroutine: it locks an OS thread, blocks for the first frame of a batch,
// then reads on without blocking until the tap is empty, the buffer is full
// or MaxFrames is reached, calls the handler and drops its own reference.
//
// Run returns nil after Stop, an error wrapping ErrGone if the tap was
// deleted, and an error if the Reader had already been run.
func (r *Reader) Run() error {
	if !r.started.CompareAndSwap(false, true) {
		return fmt.Errorf("tap: Reader.Run called twice: %w", ErrInvalid)
	}
	defer close(r.done)
	if r.setupErr != nil {
		return r.setupErr
	}
	defer func() {
		r.dev.forget(r)
		r.closeWake()
	}()
	if r.kernel != nil {
		defer func() {
			// The tap's own queue serves the next reader again.
			r.dev.dropTapQueue(false)
			r.kernel.close(r.dev)
		}()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r.runTID.Store(int32(unix.Gettid()))
	r.lastYield = time.Now()
	for !r.stopping.Load() {
		if err := r.readBatch(); err != nil {
			if err == errStopped {
				return nil
			}
			return err
		}
		r.maybeYield()
	}
	return nil
}

// readBatch is one turn of Run: the whole per-batch hot path.
func (r *Reader) readBatch() error {
	b := r.pool.get()
	var direct int
	var err error
	if r.kernel != nil {
		err = r.fillKernel(b)
	} else {
		direct, err = r.fill(b)
	}
	if direct > 0 || len(b.Frames) > 0 {
		r.naps = 0
	}
	if direct > 0 {
		r.direct.DirectBurstEnd()
	}
	if len(b.Frames) > 0 {
		r.handle(b)
	}
	b.Release()
	return err
}

// fill reads frames into b, or straight into the direct target while b is
// still empty, and returns how many went directly. Even when it fails, the
// frames already read are kept for the handler.
func (r *Reader) fill(b *Batch) (direct int, err error) {
	var (
		buf    = b.buf
		off    = 0
		frames = b.Frames[:0]
		reads  uint64
		faults uint64
		nbytes uint64
	)
	for len(frames)+direct < r.maxFrames && len(buf)-off >= MaxFrameLen {
		if r.queueEmpty {
			if len(frames) > 0 || direct > 0 {
				break
			}
			if err = r.idle(); err != nil {
				break
			}
			r.queueEmpty = false
		}
		if r.direct != nil && len(frames) == 0 {
			if dst := r.direct.DirectBuffer(MaxFrameLen); dst != nil {
				n, rerr := rawRead(r.fd, dst[:MaxFrameLen])
				reads++
				now := time.Now().UnixNano()
				switch {
				case rerr == nil && n > 0:
					r.direct.DirectEnd(n, now, nil)
					direct++
					nbytes += uint64(n)
					continue
				case rerr == nil || rerr == unix.EINTR:
					r.direct.DirectEnd(0, now, nil)
					continue
				case rerr == unix.EAGAIN:
					r.direct.DirectEnd(0, now, nil)
					r.queueEmpty = true
					continue
				case rerr == unix.EFAULT:
					// The target's memory went away under the read
					// (its owner unmapped or truncated it): the frame
					// is lost to it, the tap itself is fine.
					r.direct.DirectEnd(0, now, rerr)
					faults++
					continue
				default:
					r.direct.DirectEnd(0, now, rerr)
					err = r.dev.wrapErr("read", rerr)
				}
				break
			}
		}
		n, rerr := rawRead(r.fd, buf[off:])
		reads++
		if rerr != nil {
			if rerr == unix.EAGAIN {
				r.queueEmpty = true
				continue
			}
			if rerr == unix.EINTR {
				continue
			}
			err = r.dev.wrapErr("read", rerr)
			break
		}
		now := time.Now().UnixNano()
		if n <= 0 || n > len(buf)-off {
			continue // cannot happen with MaxFrameLen of room; never index past it
		}
		frames = append(frames, Frame{Data: buf[off : off+n : off+n], Time: now})
		off += n
	}
	b.Frames = frames
	if len(frames) > 0 {
		r.batches.Add(1)
	}
	if total := len(frames) + direct; total > 0 {
		r.frames.Add(uint64(total))
		r.bytes.Add(uint64(off) + nbytes)
	}
	if direct > 0 {
		r.directFrames.Add(uint64(direct))
	}
	if faults > 0 {
		r.directFaults.Add(faults)
	}
	r.reads.Add(reads)
	return direct, err
}

// rawRead is read(2) without the Go scheduler's system-call bookkeeping.
// The fd is non-blocking, so the call returns within the time of one frame
// copy; telling the scheduler about it (entersyscall/exitsyscall) would
// cost more than the copy and could hand this thread's P away mid-batch.
// Blocking happens only in wait, through the ordinary, scheduler-aware
// poll.
func rawRead(fd int, p []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// yieldEvery is how often the reader passes through the scheduler: well
// under the runtime's 10 ms preemption slice, and rare enough that the
// handover a yield costs a locked thread does not matter.
const yieldEvery = 4 * time.Millisecond

// maybeYield passes through the scheduler if yieldEvery has gone by. A
// goroutine that only runs or sits in system calls never does, and once
// it has gone 10 ms without, the runtime's monitor takes its P back in
// every system call it finds it in (each nap) and stays on a 20 µs tick
// to do so; the thread must then win a P back after every nap.
func (r *Reader) maybeYield() {
	if now := time.Now(); now.Sub(r.lastYield) >= yieldEvery {
		runtime.Gosched()
		r.lastYield = now
	}
}

// idle waits for the source to fill after it was found empty: a nap if
// frames came lately, else a blocking wait (see DefaultCoalesce). A nap
// listens only to the reader's own eventfd: not being on the source's wait
// queue is the point.
func (r *Reader) idle() error {
	if r.naps < r.maxNaps {
		r.naps++
		r.napCount.Add(1)
		return r.napFor(r.nap)
	}
	r.waits.Add(1) // published before blocking, so it shows a blocked reader
	err := r.wait()
	r.naps = 0
	return err
}

// napFor sleeps for ts (a copy: ppoll writes the time left back) or until
// Stop.
func (r *Reader) napFor(ts unix.Timespec) error {
	fds := r.pollFDs[1:2]
	for {
		_, err := unix.Ppoll(fds, &ts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return r.dev.wrapErr("ppoll", err)
		}
		// Holding frames back naps here for up to -maxhold in one batch.
		r.maybeYield()
		if fds[0].Revents != 0 || r.stopping.Load() {
			return errStopped
		}
		return nil
	}
}

// wait blocks until the tap has a frame (or an error to report) or Stop was
// called.
func (r *Reader) wait() error {
	for {
		if r.stopping.Load() {
			return errStopped
		}
		_, err := unix.Poll(r.pollFDs[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return r.dev.wrapErr("poll", err)
		}
		if r.pollFDs[1].Revents != 0 {
			return errStopped
		}
		if r.kernel != nil {
			if err := r.kernelPollErrors(); err != nil {
				return err
			}
		}
		if r.pollFDs[0].Revents != 0 {
			// Readable, or POLLERR after a deletion: the read tells which.
			return nil
		}
	}
}

// Stop makes Run return nil and waits until it has. It wakes a blocked Run
// at once; a Run busy with a batch finishes that batch first. Stop may be
// called at any time, more than once, before Run, and from the handler
// (then it does not wait, as Run cannot return before the handler does).
func (r *Reader) Stop() {
	r.stopping.Store(true)
	r.wakeMu.Lock()
	if r.wakeFD >= 0 {
		one := [8]byte{1} // eventfd counters are native-endian; 1 is non-zero either way
		unix.Write(r.wakeFD, one[:])
	}
	r.wakeMu.Unlock()
	if !r.started.Load() {
		return
	}
	if tid := r.runTID.Load(); tid != 0 && tid == int32(unix.Gettid()) {
		return // on Run's own locked thread, i.e. inside the handler
	}
	<-r.done
}

func (r *Reader) closeWake() {
	if r.kernel != nil && !r.started.Load() {
		// Never run: Run's own cleanup will not happen.
		r.dev.dropTapQueue(false)
		r.kernel.close(r.dev)
	}
	r.wakeMu.Lock()
	defer r.wakeMu.Unlock()
	if r.wakeFD >= 0 {
		unix.Close(r.wakeFD)
		r.wakeFD = -1
	}
}

// Stats returns the reader's counters; safe to call at any time.
func (r *Reader) Stats() ReaderStats {
	s := ReaderStats{
		Frames:  r.frames.Load(),
		Batches: r.batches.Load(),
		Bytes:   r.bytes.Load(),
		Reads:   r.reads.Load(),
		Waits:   r.waits.Load(),
		Naps:    r.napCount.Load(),
		Holds:   r.holds.Load(),

		HoldEpisodes: r.holdEpisodes.Load(),
		HoldsExpired: r.holdsExpired.Load(),

		HeldBackDrops: r.heldBackDrops.Load(),

		DirectFrames: r.directFrames.Load(),
		DirectFaults: r.directFaults.Load(),
	}
	if r.pool != nil {
		s.PoolMisses = r.pool.misses.Load()
		s.RefcountErrors = r.pool.refcountErrors.Load()
	}
	if r.kernel != nil {
		s.SourceDrops = r.kernel.sourceDrops()
		s.Oversize = r.kernel.oversizeFrames()
	}
	if r.ring != nil {
		s.HeldStalls = r.ring.heldStall.Load()
	}
	return s
}
