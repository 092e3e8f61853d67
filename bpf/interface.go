package bpf

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
)

// Transmitter is the tap's injection writer. Transmit sends one Ethernet frame
// so that the Linux stack receives it; it must not keep frame after it
// returns (the caller reuses that memory).
type Transmitter interface {
	Transmit(frame []byte) error
}

// attachMu serialises every change of which descriptor is attached where
// (attach, detach, interface gone, close), like FreeBSD's global BPF lock.
// These are rare; the packet path never takes it.
var attachMu sync.Mutex

// Interface is an emulated network interface backed by a tap: what the Linux
// stack transmits on the tap arrives here as incoming traffic, what a
// descriptor writes leaves here as outgoing traffic.
type Interface struct {
	name string
	addr [6]byte
	tx   Transmitter
	mtu  atomic.Int64

	clock *bootClock

	// listeners are the attached descriptors that can read. The slice is
	// never modified once published: attach and detach publish a new one.
	listeners atomic.Pointer[[]*Descriptor]
	// members are all attached descriptors, writer-only ones included; only
	// touched under attachMu.
	members map[*Descriptor]struct{}
	gone    bool // under attachMu

	// direct is the descriptor DirectBuffer locked for the tap reader and
	// directStart where its record begins; only the reader's thread
	// touches them, between DirectBuffer and DirectEnd.
	direct      *Descriptor
	directStart int
}

// NewInterface creates an emulated Ethernet interface. addr is its own
// hardware address, written as the source of frames sent without
// header-complete; an address that is not 6 bytes long is truncated or padded
// with zeros to 6. A negative mtu counts as 0. tx may be nil for an interface
// that cannot send (writes then fail with ENETDOWN).
func NewInterface(name string, mtu int, addr net.HardwareAddr, tx Transmitter) *Interface {
	ifp := &Interface{
		name:    name,
		tx:      tx,
		clock:   newBootClock(),
		members: make(map[*Descriptor]struct{}),
	}
	copy(ifp.addr[:], addr)
	ifp.SetMTU(mtu)
	empty := []*Descriptor{}
	ifp.listeners.Store(&empty)
	return ifp
}

// Name is the interface name descriptors attach to.
func (ifp *Interface) Name() string { return ifp.name }

// MTU bounds write(2): at most 14 + MTU bytes.
func (ifp *Interface) MTU() int { return int(ifp.mtu.Load()) }

// SetMTU follows an MTU change of the tap. A negative value counts as 0.
func (ifp *Interface) SetMTU(mtu int) { ifp.mtu.Store(int64(max(mtu, 0))) }

// HardwareAddr returns a copy of the interface's Ethernet address.
func (ifp *Interface) HardwareAddr() net.HardwareAddr {
	return slices.Clone(ifp.addr[:])
}

// Input delivers one frame that the Linux stack transmitted on the tap: an
// incoming packet on the emulated interface. frame is only used during the
// call. Wake-ups are deferred to EndBatch. Input may run concurrently with
// writes (which tap their frames from the writer's goroutine) and with every
// Descriptor method.
func (ifp *Interface) Input(frame []byte, wallNanos int64) {
	ifp.clock.refresh(wallNanos)
	for _, d := range *ifp.listeners.Load() {
		d.tap(ifp, frame, wallNanos, false)
	}
}

// InputBatch delivers n frames that the Linux stack transmitted on the tap,
// as n calls of Input would, but visits each descriptor once for the whole
// batch: one lock, one direction check and one fault guard per descriptor
// instead of one per frame, and the descriptor's buffer stays warm while its
// records go in one after another. frame(i) gives the i-th frame and its
// CLOCK_REALTIME time; the frames are only used during the call. Wake-ups
// are deferred to EndBatch.
func (ifp *Interface) InputBatch(n int, frame func(i int) (data []byte, wallNanos int64)) {
	if n <= 0 {
		return
	}
	_, last := frame(n - 1)
	ifp.clock.refresh(last)
	for _, d := range *ifp.listeners.Load() {
		d.tapFrames(ifp, false, n, frame)
	}
}

// output shows a frame this interface sent to its listeners as outgoing.
func (ifp *Interface) output(frame []byte, wallNanos int64) {
	for _, d := range *ifp.listeners.Load() {
		d.tap(ifp, frame, wallNanos, true)
	}
}

// EndBatch performs the wake-ups that Input (or a write) noted since the last
// call: at most one per descriptor, with no lock held.
func (ifp *Interface) EndBatch() {
	for _, d := range *ifp.listeners.Load() {
		if d.wakePending.Load() && d.wakePending.CompareAndSwap(true, false) {
			d.wakeUp()
		}
	}
}

// Gone marks the interface destroyed: every attached descriptor is detached
// and woken; reads then return what was already buffered and ENXIO after it,
// as on FreeBSD. Later attaches to this Interface fail with ENXIO.
func (ifp *Interface) Gone() {
	attachMu.Lock()
	ifp.gone = true
	detached := make([]*Descriptor, 0, len(ifp.members))
	for d := range ifp.members {
		d.mu.Lock()
		if d.ifp == ifp {
			d.ifp = nil
			d.promisc = false
		}
		d.mu.Unlock()
		detached = append(detached, d)
	}
	clear(ifp.members)
	empty := []*Descriptor{}
	ifp.listeners.Store(&empty)
	attachMu.Unlock()
	for _, d := range detached {
		d.wakePending.Store(false)
		d.wakeUp()
	}
}

// addLocked and removeLocked change the membership; attachMu must be held.
func (ifp *Interface) addLocked(d *Descriptor) {
	ifp.members[d] = struct{}{}
	if d.owner.CanRead {
		old := *ifp.listeners.Load()
		next := make([]*Descriptor, 0, len(old)+1)
		next = append(append(next, old...), d)
		ifp.listeners.Store(&next)
	}
}

func (ifp *Interface) removeLocked(d *Descriptor) {
	delete(ifp.members, d)
	old := *ifp.listeners.Load()
	if i := slices.Index(old, d); i >= 0 {
		next := slices.Concat(old[:i], old[i+1:])
		ifp.listeners.Store(&next)
	}
}

// Registry is the set of interfaces this daemon serves; BIOCSETIF attaches
// only to these.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]*Interface
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: make(map[string]*Interface)}
}

// ErrDuplicateInterface is returned by Add for a name already registered.
var ErrDuplicateInterface = errors.New("bpf: interface name already registered")

// Add registers ifp under its name.
func (r *Registry) Add(ifp *Interface) error {
	if ifp == nil {
		return errors.New("bpf: cannot register a nil interface")
	}
	if ifp.name == "" {
		return errors.New("bpf: cannot register an interface without a name")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[ifp.name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateInterface, ifp.name)
	}
	r.byName[ifp.name] = ifp
	return nil
}

// Remove unregisters and returns the named interface (nil if unknown). It does
// not detach anyone; call Gone for that.
func (r *Registry) Remove(name string) *Interface {
	r.mu.Lock()
	defer r.mu.Unlock()
	ifp := r.byName[name]
	delete(r.byName, name)
	return ifp
}

// Lookup returns the named interface or nil.
func (r *Registry) Lookup(name string) *Interface {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byName[name]
}

// Interfaces lists the registered interfaces sorted by name.
func (r *Registry) Interfaces() []*Interface {
	r.mu.RLock()
	list := make([]*Interface, 0, len(r.byName))
	for _, ifp := range r.byName {
		list = append(list, ifp)
	}
	r.mu.RUnlock()
	slices.SortFunc(list, func(a, b *Interface) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return list
}
