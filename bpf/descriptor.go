package bpf

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpffs/bpffs/bpf/filter"
	"github.com/bpffs/bpffs/bufmode/buffered"
	"github.com/bpffs/bpffs/bufmode/zerocopy"
)

// Config holds what FreeBSD keeps in sysctls: limits shared by every
// descriptor of one daemon.
type Config struct {
	// Registry is where Attach looks interfaces up. Nil: every Attach fails
	// with ENXIO.
	Registry *Registry
	// DefaultBufSize is the buffer size at open (net.bpf.bufsize); 0 means
	// 4096. It is clamped to [MinBufSize, MaxBufSize].
	DefaultBufSize int
	// MaxBufSize is the upper clamp of BIOCSBLEN (net.bpf.maxbufsize); 0
	// means 524288. It is raised to MinBufSize if smaller.
	MaxBufSize int
	// ZeroCopy is net.bpf.zerocopy_enable: without it
	// SetBufMode(BufModeZbuf) fails with EINVAL.
	ZeroCopy bool
	// Budget bounds the buffer memory of all descriptors (nil: unbounded).
	// An allocation beyond it fails with ENOBUFS.
	Budget *Budget
}

// Owner identifies who opened a descriptor.
type Owner struct {
	Pid      int
	Uid, Gid uint32
	// CanRead is false for a descriptor opened O_WRONLY: a writer-only
	// descriptor may attach and write but never receives packets.
	CanRead bool
}

// Stats are a descriptor's 64-bit counters; BIOCGSTATS truncates Recv and
// Drop to 32 bits. Recv counts packets seen after the direction check and
// before the filter; Rejected those the filter refused (it returned 0);
// Captured those stored; Drop those accepted but lost for lack of buffer
// space. Recv == Rejected + Captured + Drop always holds exactly. Written
// counts frames sent by write(2); WriteRejected those the write filter refused.
// A flush (BIOCFLUSH, BIOCSETF, BIOCSETIF) zeroes them all.
type Stats struct {
	Recv, Drop, Captured, Rejected, Written, WriteRejected uint64
}

// Info is a descriptor's state as the operator's statistics file shows it.
type Info struct {
	ID       uint64
	Pid      int
	Uid, Gid uint32
	CanRead  bool
	// Interface is empty when the descriptor is not attached.
	Interface      string
	BufMode        uint32
	BufLen         uint32
	Immediate      bool
	Promisc        bool
	HeaderComplete bool
	Feedback       bool
	Locked         bool
	Direction      uint32
	TimestampType  uint32
	ReadTimeout    time.Duration
	Signal         uint32
	VLANPCP        uint32
	Recv           uint64
	Drop           uint64
	Captured       uint64
	FilterRejected uint64
	Written        uint64
	WriteRejected  uint64
	StoreBytes     int
	HoldBytes      int
	// Reads counts read(2) calls that returned a buffer.
	Reads uint64
	// ZeroCopy tells how installed zero-copy buffers are reached: "shm"
	// (the client's own pages), "copy" (private memory, written with
	// process_vm_writev), "broken" (the client made them unusable; every
	// packet is now a drop), or "" (none installed).
	ZeroCopy string
}

type pollState uint8

const (
	pollIdle pollState = iota
	// pollWaiting: poll armed the read-timeout timer.
	pollWaiting
	// pollTimedOut: the timer fired; the store buffer is now readable.
	pollTimedOut
)

var lastDescriptorID atomic.Uint64

// Descriptor is one open of the device: FreeBSD's struct bpf_d.
type Descriptor struct {
	id       uint64
	owner    Owner
	wake     func()
	registry *Registry
	maxBuf   int
	zeroCopy bool
	budget   *Budget
	// reserved is what this descriptor holds of the budget.
	reserved int64

	// wakePending is set by the catch path and consumed by EndBatch, so a
	// burst of packets costs one wake-up.
	wakePending atomic.Bool
	// readyCh carries "something changed" to a reader blocked in Read.
	readyCh chan struct{}
	// readSem serialises Read calls; readTimer is owned by its holder.
	readSem   chan struct{}
	readTimer *time.Timer

	// writeMu guards writeBuf, the private copy a write edits.
	writeMu  sync.Mutex
	writeBuf []byte

	// mu guards everything below, including the buffers.
	mu      sync.Mutex
	ifp     *Interface
	closed  bool
	bufMode uint32
	bufSize int
	// mode is the active buffer mode, nil until buffers are allocated;
	// buffers is the same object when the mode is BufModeBuffer.
	mode    BufferMode
	buffers *buffered.Buffers
	// zbuf is the same object as mode once zero-copy buffers are installed.
	zbuf *zerocopy.Buffers

	readFilter  *filter.Program
	writeFilter *filter.Program
	immediate   bool
	promisc     bool
	hdrComplete bool
	feedback    bool
	locked      bool
	direction   uint32
	tstamp      uint32
	signal      uint32
	vlanPCP     uint32
	rtimeout    time.Duration

	pollState    pollState
	pollTimer    *time.Timer
	pollDeadline time.Time

	stats Stats
	reads uint64
}

// NewDescriptor opens a descriptor with bpf(4)'s defaults: buffer mode,
// cfg's default buffer size (no buffer allocated yet), direction INOUT,
// signal SIGIO, microsecond timestamps. wake is called, from any goroutine
// and never with a lock of this package held, when the descriptor becomes
// readable or is detached; it may be nil.
func NewDescriptor(cfg *Config, owner Owner, wake func()) *Descriptor {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	maxBuf := c.MaxBufSize
	if maxBuf <= 0 {
		maxBuf = defaultMaxBuf
	}
	maxBuf = max(maxBuf, MinBufSize)
	size := c.DefaultBufSize
	if size <= 0 {
		size = defaultBufSize
	}
	size = min(max(size, MinBufSize), maxBuf)
	readTimer := time.NewTimer(time.Hour)
	readTimer.Stop()
	return &Descriptor{
		id:        lastDescriptorID.Add(1),
		owner:     owner,
		wake:      wake,
		registry:  c.Registry,
		zeroCopy:  c.ZeroCopy,
		budget:    c.Budget,
		maxBuf:    maxBuf,
		readyCh:   make(chan struct{}, 1),
		readSem:   make(chan struct{}, 1),
		readTimer: readTimer,
		bufMode:   BufModeBuffer,
		bufSize:   size,
		direction: DirectionInOut,
		signal:    defaultSignal,
		tstamp:    TstampMicro,
	}
}

// ID is unique among the descriptors of this process.
func (d *Descriptor) ID() uint64 { return d.id }

// wakeUp tells a blocked reader and the transport that something changed.
func (d *Descriptor) wakeUp() {
	select {
	case d.readyCh <- struct{}{}:
	default:
	}
	if d.wake != nil {
		d.wake()
	}
}

// BufLen is BIOCGBLEN.
func (d *Descriptor) BufLen() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return uint32(d.bufSize)
}

// SetBufLen is BIOCSBLEN: it clamps n to [MinBufSize, MaxBufSize], allocates
// both buffers at once and returns the size chosen. Zero-copy mode gives
// EOPNOTSUPP, an attached descriptor EINVAL.
func (d *Descriptor) SetBufLen(n uint32) (uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, unix.EBADF
	}
	if d.bufMode != BufModeBuffer {
		return 0, unix.EOPNOTSUPP
	}
	if d.ifp != nil {
		return 0, unix.EINVAL
	}
	size := int(min(max(uint64(n), MinBufSize), uint64(d.maxBuf)))
	if err := d.allocateLocked(size); err != nil {
		return 0, err
	}
	return uint32(size), nil
}

// allocateLocked gives the descriptor two buffers of size bytes, within the
// daemon's budget (ENOBUFS beyond it; the old buffers then stay).
func (d *Descriptor) allocateLocked(size int) error {
	if err := d.reserveLocked(2 * int64(size)); err != nil {
		return err
	}
	d.bufSize = size
	d.buffers = buffered.New(size)
	d.mode = d.buffers
	return nil
}

// reserveLocked replaces this descriptor's share of the budget with n bytes.
func (d *Descriptor) reserveLocked(n int64) error {
	// Only the difference changes hands, so a refusal leaves the old share
	// exactly as it was.
	if delta := n - d.reserved; delta > 0 {
		if err := d.budget.reserve(delta); err != nil {
			return err
		}
	} else {
		d.budget.release(-delta)
	}
	d.reserved = n
	return nil
}

// resetLocked is FreeBSD's reset_d: empty the buffers, zero the counters.
func (d *Descriptor) resetLocked() {
	if d.mode != nil {
		d.mode.Reset()
	}
	d.stats = Stats{}
}

// SetReadFilter installs the read filter (nil accepts whole packets):
// BIOCSETF with flush, BIOCSETFNR without.
func (d *Descriptor) SetReadFilter(p *filter.Program, flush bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.readFilter = p
	if flush {
		d.resetLocked()
	}
}

// SetWriteFilter is BIOCSETWF (nil accepts every write).
func (d *Descriptor) SetWriteFilter(p *filter.Program) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeFilter = p
}

// Flush is BIOCFLUSH: buffered data is discarded and all counters zeroed.
func (d *Descriptor) Flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resetLocked()
}

// Promisc is BIOCPROMISC. A tap is a point-to-point wire: every frame the
// stack sends already arrives, so promiscuous mode changes nothing on the
// packet path. The flag is recorded (and shown by Info) and cleared when the
// descriptor detaches.
func (d *Descriptor) Promisc() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifp == nil {
		return unix.EINVAL
	}
	d.promisc = true
	return nil
}

// DLT is BIOCGDLT.
func (d *Descriptor) DLT() (uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifp == nil {
		return 0, unix.EINVAL
	}
	return DLTEN10MB, nil
}

// DLTList is BIOCGDLTLIST: the link types the attached interface offers.
func (d *Descriptor) DLTList() ([]uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifp == nil {
		return nil, unix.EINVAL
	}
	return []uint32{DLTEN10MB}, nil
}

// SetDLT is BIOCSDLT. Only DLT_EN10MB exists, so a valid request never
// changes anything (FreeBSD treats the same DLT as a no-op, without flush).
func (d *Descriptor) SetDLT(dlt uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifp == nil || dlt != DLTEN10MB {
		return unix.EINVAL
	}
	return nil
}

// InterfaceName is BIOCGETIF.
func (d *Descriptor) InterfaceName() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifp == nil {
		return "", unix.EINVAL
	}
	return d.ifp.name, nil
}

// Attach is BIOCSETIF. In buffer mode the buffers are allocated first, at the
// current size, even if the name turns out to be unknown (so a failed attach
// still makes a later SetBufMode fail with EBUSY, as on FreeBSD). Zero-copy
// mode without installed buffers gives EINVAL; an unknown or destroyed
// interface ENXIO. Attaching again moves the descriptor (clearing its
// promiscuous flag); the same interface only flushes. Every success flushes
// and zeroes the counters.
func (d *Descriptor) Attach(name string) error {
	attachMu.Lock()
	defer attachMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return unix.EBADF
	}
	if d.mode == nil {
		if d.bufMode != BufModeBuffer {
			d.mu.Unlock()
			return unix.EINVAL
		}
		if err := d.allocateLocked(d.bufSize); err != nil {
			d.mu.Unlock()
			return err
		}
	}
	d.mu.Unlock()

	var ifp *Interface
	if d.registry != nil {
		ifp = d.registry.Lookup(name)
	}
	if ifp == nil || ifp.gone {
		return unix.ENXIO
	}

	d.mu.Lock()
	old := d.ifp
	if old != ifp {
		d.ifp = ifp
		d.promisc = false
	}
	d.resetLocked()
	d.mu.Unlock()
	if old != ifp {
		if old != nil {
			old.removeLocked(d)
		}
		ifp.addLocked(d)
	}
	return nil
}

// SetReadTimeout is BIOCSRTIMEOUT; the caller has validated the timeval.
// 0 (or a negative value) means no timeout. The value is kept to the
// microsecond, not quantised to clock ticks as FreeBSD does.
func (d *Descriptor) SetReadTimeout(t time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rtimeout = max(t, 0).Truncate(time.Microsecond)
}

// ReadTimeout is BIOCGRTIMEOUT: exactly the value set, to the microsecond.
func (d *Descriptor) ReadTimeout() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rtimeout
}

// SetImmediate is BIOCIMMEDIATE.
func (d *Descriptor) SetImmediate(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.immediate = on
}

// Stats returns the counters (BIOCGSTATS reports Recv and Drop).
func (d *Descriptor) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// SetSignal is BIOCSRSIG; signals >= 32 give EINVAL.
func (d *Descriptor) SetSignal(sig uint32) error {
	if sig >= numSignals {
		return unix.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.signal = sig
	return nil
}

// Signal is BIOCGRSIG; default SIGIO (29 on Linux).
func (d *Descriptor) Signal() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.signal
}

// SetHeaderComplete is BIOCSHDRCMPLT: when off (the default) written frames
// get the interface's address as their source.
func (d *Descriptor) SetHeaderComplete(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hdrComplete = on
}

// HeaderComplete is BIOCGHDRCMPLT.
func (d *Descriptor) HeaderComplete() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hdrComplete
}

// SetDirection is BIOCSDIRECTION: DirectionIn, DirectionInOut or
// DirectionOut, else EINVAL.
func (d *Descriptor) SetDirection(dir uint32) error {
	switch dir {
	case DirectionIn, DirectionInOut, DirectionOut:
	default:
		return unix.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.direction = dir
	return nil
}

// Direction is BIOCGDIRECTION; default DirectionInOut.
func (d *Descriptor) Direction() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.direction
}

// SetTimestampType is BIOCSTSTAMP; types BPF_T_VALID rejects give EINVAL.
func (d *Descriptor) SetTimestampType(t uint32) error {
	if !validTimestampType(t) {
		return unix.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tstamp = t
	return nil
}

// TimestampType is BIOCGTSTAMP; default TstampMicro.
func (d *Descriptor) TimestampType() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tstamp
}

// SetFeedback is BIOCFEEDBACK: written frames are also seen as incoming.
func (d *Descriptor) SetFeedback(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.feedback = on
}

// Feedback reports the BIOCFEEDBACK setting.
func (d *Descriptor) Feedback() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.feedback
}

// Lock is BIOCLOCK; it cannot be undone. The dispatcher enforces the
// allow-list; the core only remembers the flag.
func (d *Descriptor) Lock() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.locked = true
}

// Locked reports whether BIOCLOCK was issued.
func (d *Descriptor) Locked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.locked
}

// BufMode is BIOCGETBUFMODE.
func (d *Descriptor) BufMode() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bufMode
}

// SetBufMode is BIOCSETBUFMODE. An unknown mode gives EINVAL, and so does
// BufModeZbuf when Config.ZeroCopy is off. Once buffers exist (BIOCSBLEN,
// BIOCSETZBUF, any BIOCSETIF attempt) or the descriptor is attached, EBUSY,
// even for the current mode.
func (d *Descriptor) SetBufMode(mode uint32) error {
	if mode != BufModeBuffer && (mode != BufModeZbuf || !d.zeroCopy) {
		return unix.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode != nil || d.ifp != nil {
		return unix.EBUSY
	}
	d.bufMode = mode
	return nil
}

// SetVLANPCP is BIOCSETVLANPCP (0..7, else EINVAL). A tap carries no
// priority metadata next to a frame, and inserting an 802.1Q tag would change
// what the program wrote, so the value is only stored and reported.
func (d *Descriptor) SetVLANPCP(pcp uint32) error {
	if pcp > 7 {
		return unix.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.vlanPCP = pcp
	return nil
}

// VLANPCP returns the value stored by SetVLANPCP.
func (d *Descriptor) VLANPCP() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vlanPCP
}

// ReadableBytes is FIONREAD: store plus hold bytes.
func (d *Descriptor) ReadableBytes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode == nil {
		return 0
	}
	return d.mode.StoreLen() + d.mode.HoldLen()
}

// Info snapshots the descriptor for the operator's statistics file.
func (d *Descriptor) Info() Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	info := Info{
		ID:             d.id,
		Pid:            d.owner.Pid,
		Uid:            d.owner.Uid,
		Gid:            d.owner.Gid,
		CanRead:        d.owner.CanRead,
		BufMode:        d.bufMode,
		BufLen:         uint32(d.bufSize),
		Immediate:      d.immediate,
		Promisc:        d.promisc,
		HeaderComplete: d.hdrComplete,
		Feedback:       d.feedback,
		Locked:         d.locked,
		Direction:      d.direction,
		TimestampType:  d.tstamp,
		ReadTimeout:    d.rtimeout,
		Signal:         d.signal,
		VLANPCP:        d.vlanPCP,
		Recv:           d.stats.Recv,
		Drop:           d.stats.Drop,
		Captured:       d.stats.Captured,
		FilterRejected: d.stats.Rejected,
		Written:        d.stats.Written,
		WriteRejected:  d.stats.WriteRejected,
		Reads:          d.reads,
	}
	if d.ifp != nil {
		info.Interface = d.ifp.name
	}
	if d.mode != nil {
		info.StoreBytes = d.mode.StoreLen()
		info.HoldBytes = d.mode.HoldLen()
	}
	if z := d.zbuf; z != nil {
		switch {
		case z.Broken():
			info.ZeroCopy = "broken"
		case z.Shared():
			info.ZeroCopy = "shm"
		default:
			info.ZeroCopy = "copy"
		}
	}
	return info
}

// Close detaches the descriptor, frees its buffers and stops its timers. A
// reader still blocked in Read returns ENXIO. Calling it again does nothing.
func (d *Descriptor) Close() {
	attachMu.Lock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		attachMu.Unlock()
		return
	}
	d.closed = true
	ifp := d.ifp
	d.ifp = nil
	d.promisc = false
	d.stopPollTimerLocked()
	if d.zbuf != nil {
		d.zbuf.Release()
	}
	d.mode, d.buffers, d.zbuf = nil, nil, nil
	d.budget.release(d.reserved)
	d.reserved = 0
	d.mu.Unlock()
	if ifp != nil {
		ifp.removeLocked(d)
	}
	attachMu.Unlock()
	d.wakePending.Store(false)
	select {
	case d.readyCh <- struct{}{}:
	default:
	}
}

// asErrno turns an error from a collaborator (transmitter, transport) into
// the errno the caller must see; fallback when it carries none.
func asErrno(err error, fallback unix.Errno) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return fallback
}
