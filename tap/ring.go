//go:build linux

package tap

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Source selects how a Reader takes frames from the tap.
type Source int

const (
	// SourceRead reads the tap's own queue: one read(2) per frame. The
	// tap's TX counters stay meaningful (tx_dropped = frames lost to a
	// full queue), and a Direct target can receive frames with no copy.
	SourceRead Source = iota
	// SourceRing captures what the stack transmits on the tap through an
	// AF_PACKET socket with a TPACKET_V2 ring bound to it: the kernel
	// copies each frame into a ring slot shared with the daemon in the
	// sender's own context (as FreeBSD's bpf_mtap does in the driver), so
	// the reader spends no system call per frame and sleeps in poll(2)
	// only when the ring is empty. The tap's queue is then of no use and
	// its transmit filter empties it (dropTapQueue): every frame also
	// counts in the tap's tx_dropped, and losses are the ring's
	// (SourceDrops).
	SourceRing
	// SourceEgress captures with an eBPF program on the tap's egress
	// (tcx): it copies each frame into a BPF ring buffer shared with the
	// daemon, in the sender's context like SourceRing but without the skb
	// clone and the packet socket's work. Like SourceRing it needs no
	// system call per frame and can hold frames back, and the tap's
	// transmit filter empties its queue.
	SourceEgress
)

func (s Source) String() string {
	switch s {
	case SourceRead:
		return "read"
	case SourceRing:
		return "ring"
	case SourceEgress:
		return "egress"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// ParseSource maps "read", "ring" and "egress" to their Source.
func ParseSource(s string) (Source, error) {
	switch s {
	case "read":
		return SourceRead, nil
	case "ring":
		return SourceRing, nil
	case "egress":
		return SourceEgress, nil
	}
	return 0, fmt.Errorf("tap: source %q: want read, ring or egress: %w", s, ErrInvalid)
}

// DefaultRingBytes is the default size of a SourceRing ring: 16384 slots of
// 2 KiB for a 1500-byte MTU, about 14 ms of frames at 1.2 Mpps, which rides
// out the scheduling stalls these VMs show.
const DefaultRingBytes = 32 << 20

// Classic BPF ancillary load of skb->pkt_type (linux/filter.h).
const skfAdPkttype = 0xfffff000 + 4 // SKF_AD_OFF + SKF_AD_PKTTYPE

// packetRing is the AF_PACKET side of a SourceRing reader.
type packetRing struct {
	fd        int
	mem       []byte
	slotSize  int
	slots     int
	next      int           // the reader's position; only its thread touches it
	held      []atomic.Bool // slot handed to a batch that was not released yet
	statsMu   sync.Mutex    // guards fd against close and the totals below
	drops     uint64        // PACKET_STATISTICS drops, accumulated (the kernel resets them per read)
	oversize  atomic.Uint64 // frames larger than a slot, dropped
	heldStall atomic.Uint64 // times the reader caught up with a slot someone still held

	// The mapping outlives close while batches still hold slots: the
	// last giveBack unmaps it.
	outstanding atomic.Int64
	closed      atomic.Bool
}

// ringSlotSize fits the largest frame the MTU allows, a VLAN tag that the
// reader re-inserts, and the slot's own header and alignment (at most 96
// bytes before the frame), rounded up to a power of two so slots pack
// blocks exactly.
func ringSlotSize(mtu int) int {
	need := mtu + ethernetHeaderLen + 4 + 128
	size := 2048
	for size < need {
		size <<= 1
	}
	return size
}

// openRing makes the capture socket inside the tap's namespace. The filter
// is attached before the bind, so that frames the daemon writes to the tap
// (which the stack receives on it: PACKET_HOST and friends) are never
// copied into the ring: only PACKET_OUTGOING, what Linux transmits, is.
func (d *Device) openRing(ringBytes int) (*packetRing, error) {
	mtu, err := d.MTU()
	if err != nil {
		return nil, err
	}
	slotSize := ringSlotSize(mtu)
	blockSize := max(slotSize, 1<<20)
	if ringBytes <= 0 {
		ringBytes = DefaultRingBytes
	}
	blocks := max(ringBytes/blockSize, 2)
	req := unix.TpacketReq{
		Block_size: uint32(blockSize),
		Block_nr:   uint32(blocks),
		Frame_size: uint32(slotSize),
		Frame_nr:   uint32(blocks * (blockSize / slotSize)),
	}
	var fd int
	err = d.inDeviceNetns(func() error {
		var err error
		// Protocol 0: nothing is captured before the bind below.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tap: packet socket for %s: %w", d.describe(), err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, fmt.Errorf("tap: TPACKET_V2: %w", err)
	}
	outgoingOnly := []unix.SockFilter{
		{Code: 0x20, K: skfAdPkttype},                       // ld pkttype
		{Code: 0x15, Jt: 0, Jf: 1, K: unix.PACKET_OUTGOING}, // jeq OUTGOING
		{Code: 0x06, K: 0xffffffff},                         // ret whole frame
		{Code: 0x06, K: 0},                                  // ret 0: not captured
	}
	prog := unix.SockFprog{Len: uint16(len(outgoingOnly)), Filter: &outgoingOnly[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return nil, fmt.Errorf("tap: packet socket filter: %w", err)
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("tap: PACKET_RX_RING of %d×%d bytes: %w", req.Block_nr, req.Block_size, err)
	}
	size := int(req.Block_nr) * int(req.Block_size)
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("tap: map the packet ring (%d bytes): %w", size, err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: d.index}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("tap: bind packet socket to %s: %w", d.describe(), err)
	}
	ok = true
	n := int(req.Frame_nr)
	return &packetRing{fd: fd, mem: mem, slotSize: slotSize, slots: n, held: make([]atomic.Bool, n)}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (p *packetRing) header(slot int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&p.mem[slot*p.slotSize]))
}

// giveBack returns a batch's slots to the kernel.
func (p *packetRing) giveBack(b *Batch) {
	for _, slot := range b.slots {
		p.giveBackSlot(int(slot))
	}
	b.slots = b.slots[:0]
}

// giveBackSlot returns a slot to the kernel. The status store is an atomic
// (release) store, so every read of the frame happens before the kernel can
// see the slot free; held is cleared only afterwards, so the reader never
// takes the old contents for a new frame.
func (p *packetRing) giveBackSlot(slot int) {
	atomic.StoreUint32(&p.header(slot).Status, unix.TP_STATUS_KERNEL)
	p.held[slot].Store(false)
	if p.outstanding.Add(-1) == 0 && p.closed.Load() {
		p.unmap()
	}
}

// take looks at the reader's current slot. It returns the frame (with a
// VLAN tag the kernel had kept aside put back in place), its time, and
// whether there was one; a slot that holds no usable frame is given back
// and skipped. stalled reports that the slot is still held by a batch.
func (p *packetRing) take() (frame []byte, wallNanos int64, slot int, ok, stalled bool) {
	for {
		slot = p.next
		if p.held[slot].Load() {
			return nil, 0, slot, false, true
		}
		h := p.header(slot)
		status := atomic.LoadUint32(&h.Status) // acquire: the frame is complete once USER is seen
		if status&unix.TP_STATUS_USER == 0 {
			return nil, 0, slot, false, false
		}
		p.next++
		if p.next == p.slots {
			p.next = 0
		}
		base := slot * p.slotSize
		mac, snap := int(h.Mac), int(h.Snaplen)
		if snap != int(h.Len) || snap < ethernetHeaderLen || mac < 4+unix.SizeofTpacket2Hdr || mac+snap > p.slotSize {
			// Cut short by a slot sized for a smaller MTU: a BPF
			// record would claim a length it does not hold.
			p.oversize.Add(1)
			atomic.StoreUint32(&h.Status, unix.TP_STATUS_KERNEL)
			continue
		}
		start, end := base+mac, base+mac+snap
		if status&unix.TP_STATUS_VLAN_VALID != 0 {
			// The tap's own queue would carry the tag inline; so
			// must we. The slot has room before the frame (past
			// its header), so the addresses move back 4 bytes.
			tpid := uint16(unix.ETH_P_8021Q)
			if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && h.Vlan_tpid != 0 {
				tpid = h.Vlan_tpid
			}
			copy(p.mem[start-4:start+8], p.mem[start:start+12])
			binary.BigEndian.PutUint16(p.mem[start+8:], tpid)
			binary.BigEndian.PutUint16(p.mem[start+10:], h.Vlan_tci)
			start -= 4
		}
		p.held[slot].Store(true)
		p.outstanding.Add(1)
		return p.mem[start:end:end], int64(h.Sec)*1e9 + int64(h.Nsec), slot, true, false
	}
}

// takeFrame takes the frame in the reader's slot into b.
func (p *packetRing) takeFrame(b *Batch) (frame []byte, wallNanos int64, ok, stalled bool) {
	frame, wallNanos, slot, ok, stalled := p.take()
	if ok {
		b.slots = append(b.slots, int32(slot))
	}
	if stalled {
		p.heldStall.Add(1)
	}
	return frame, wallNanos, ok, stalled
}

// seal has nothing to do: each frame's slot went into the batch as it was
// taken.
func (p *packetRing) seal(*Batch) {}

func (p *packetRing) backlogHalf() bool      { return p.backlogAtLeast(p.slots / 2) }
func (p *packetRing) oversizeFrames() uint64 { return p.oversize.Load() }
func (p *packetRing) pollFD() int            { return p.fd }

// clearPollError reads the socket's pending error (ENETDOWN while the tap is
// down), or every later poll would return at once.
func (p *packetRing) clearPollError() { unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_ERROR) }

// backlogAtLeast tells whether at least n frames wait in the ring ahead of
// the reader. The kernel fills slots in order, so the n-th slot from the
// reader's position holding a frame means every slot before it does; a
// slot a batch still holds is behind the reader and means the ring has
// wrapped onto it, which is as full as it gets.
func (p *packetRing) backlogAtLeast(n int) bool {
	if n <= 0 {
		return true
	}
	slot := (p.next + min(n, p.slots) - 1) % p.slots
	return p.held[slot].Load() || atomic.LoadUint32(&p.header(slot).Status)&unix.TP_STATUS_USER != 0
}

// sourceDrops reads the kernel's drop counter (which resets on every read)
// into the running total.
func (p *packetRing) sourceDrops() uint64 {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	if p.fd >= 0 {
		if st, err := unix.GetsockoptTpacketStats(p.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			p.drops += uint64(st.Drops)
		}
	}
	return p.drops
}

// close ends capture; the ring's memory goes once no batch holds a slot.
func (p *packetRing) close(*Device) {
	p.sourceDrops() // keep the last count
	p.statsMu.Lock()
	if p.fd >= 0 {
		unix.Close(p.fd) // the mapping stays valid until munmap
		p.fd = -1
	}
	p.statsMu.Unlock()
	p.closed.Store(true)
	if p.outstanding.Load() == 0 {
		p.unmap()
	}
}

func (p *packetRing) unmap() {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	if p.mem != nil {
		unix.Munmap(p.mem)
		p.mem = nil
	}
}

// dropTapQueue makes the tap discard what would queue for its reader. With
// SourceRing the frames were already captured before the tap's queue, so
// the tap's transmit filter (TUNSETTXFILTER) is set to pass only frames for
// the all-zero address, which nothing sends to: each frame is freed at once
// instead of txqueuelen of them sitting in memory. The filter lives in the
// kernel and holds no pointer into this process (unlike TUNATTACHFILTER,
// whose program a persistent tap would re-read from a stale address after
// a crash); drop=false clears it, and a SourceRead reader clears one that a
// crashed daemon left on a persistent tap.
func (d *Device) dropTapQueue(drop bool) error {
	d.fdMu.RLock()
	defer d.fdMu.RUnlock()
	if d.tapFD < 0 {
		return fmt.Errorf("tap: %s: %w", d.describe(), ErrClosed)
	}
	// struct tun_filter: u16 flags, u16 count, then count addresses.
	var filter [4 + 6]byte
	if drop {
		binary.NativeEndian.PutUint16(filter[2:], 1)
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.tapFD), unix.TUNSETTXFILTER, uintptr(unsafe.Pointer(&filter[0]))); errno != 0 {
		return d.wrapErr("TUNSETTXFILTER", errno)
	}
	return nil
}

// fillKernel collects the frames waiting in a kernel-filled source into b,
// blocking only while the source is empty and b has none. The memory they
// live in stays the batch's until its last Release gives it back.
func (r *Reader) fillKernel(b *Batch) error {
	p := r.kernel
	frames := b.Frames[:0]
	var nbytes uint64
	var err error
	room := 0 // frames that may come before the gate is asked again
	for len(frames) < r.maxFrames {
		if r.gate != nil && room == 0 {
			if len(frames) > 0 {
				// The room counted before this batch is used up;
				// asking again now would not see these frames.
				break
			}
			if room = r.gateRoom(); room == 0 {
				if err = r.holdBack(); err != nil {
					break
				}
				continue
			}
		}
		frame, when, ok, stalled := p.takeFrame(b)
		if ok {
			room--
			frames = append(frames, Frame{Data: frame, Time: when})
			nbytes += uint64(len(frame))
			continue
		}
		if len(frames) > 0 {
			break
		}
		if stalled {
			// A consumer kept a whole ring's worth of batches: wait
			// for its Release (rare; poll would report the ring
			// readable at once and spin).
			if err = r.napFor(unix.NsecToTimespec(int64(time.Millisecond))); err != nil {
				break
			}
			continue
		}
		if err = r.idle(); err != nil {
			break
		}
		// Time passed: writes may have used room (outgoing records),
		// so the next frame asks again.
		room = 0
	}
	b.Frames = frames
	if n := len(frames); n > 0 {
		p.seal(b)
		r.batches.Add(1)
		r.frames.Add(uint64(n))
		r.bytes.Add(nbytes)
	}
	return err
}

// Gate lets a SourceRing or SourceEgress reader hold frames back in the ring instead of
// handing them to a consumer that has no room for them. bpf.Interface
// implements it.
type Gate interface {
	// Room tells how many frames (of the largest size) can be handed up
	// before the first consumer would drop one for lack of room (least)
	// and before the last would (most), each at most limit. The reader
	// asks again once it has handed up that many. least 0 holds frames
	// back; while most is not 0 (someone still has room) only as long
	// as the ring stays at least half empty.
	Room(limit int) (least, most int)
	// HeldBackDrops reports n frames that the ring dropped (it was full)
	// while frames were held back.
	HeldBackDrops(n uint64)
}

// DefaultMaxHold bounds how long frames are held back for a consumer with no
// room. It covers the scheduling stalls a client suffers on a busy VM (a
// 2 MiB buffer of full-size frames fills in under 10 ms at 300 kpps); a
// client that stays away longer has stopped reading, and its frames then go
// on to be dropped and counted by bpf(4)'s rules, so its statistics settle.
// Holding back resumes once the consumer has shown room again.
const DefaultMaxHold = 50 * time.Millisecond

// gateRoom asks the gate how many frames may come before it is asked again;
// 0 means hold frames back now.
func (r *Reader) gateRoom() int {
	least, most := r.gate.Room(r.maxFrames)
	switch {
	case least > 0:
		r.noHold = false
		if r.held {
			r.releaseHold()
		}
		return least
	case r.noHold:
	case r.held && time.Since(r.heldSince) > r.maxHold:
		r.releaseHold()
		r.holdsExpired.Add(1)
		r.noHold = true
	case most > 0 && r.kernel.backlogHalf():
		// Holding on for the full consumer would soon cost the others
		// frames the ring drops. Frames flow for now; the hold and its
		// clock go on, so that a consumer that stays full still runs
		// out of MaxHold.
	default:
		r.othersWait = most > 0
		return 0
	}
	if most > 0 {
		return most
	}
	return r.maxFrames
}

// holdBack naps while the gate is blocked: briefly at first, as a client
// that was woken takes a buffer back within microseconds, then a
// millisecond at a time so that a client that stopped reading costs
// little. While other consumers wait for the frames, the naps stay brief:
// the ring's backlog must be seen before it costs them frames.
func (r *Reader) holdBack() error {
	if !r.held {
		r.held = true
		r.heldDrops = r.kernel.sourceDrops()
		r.heldNaps = 0
		r.heldSince = time.Now()
		r.holdEpisodes.Add(1)
	}
	r.holds.Add(1)
	r.heldNaps++
	if r.heldNaps <= 20 || r.othersWait {
		return r.napFor(r.holdNap)
	}
	return r.napFor(unix.NsecToTimespec(int64(time.Millisecond)))
}

// releaseHold ends holding back and reports what the ring lost meanwhile.
func (r *Reader) releaseHold() {
	r.held = false
	if lost := r.kernel.sourceDrops() - r.heldDrops; lost > 0 {
		r.heldBackDrops.Add(lost)
		r.gate.HeldBackDrops(lost)
	}
}

// kernelPollErrors handles POLLERR on the source (the packet socket reports
// ENETDOWN there when the tap goes down and resumes by itself when it comes
// back up) and on the tap fd, whose read then tells whether the tap was
// deleted.
func (r *Reader) kernelPollErrors() error {
	const bad = unix.POLLERR | unix.POLLHUP | unix.POLLNVAL
	if r.pollFDs[0].Revents&bad != 0 {
		r.kernel.clearPollError()
	}
	if r.pollFDs[2].Revents == 0 && r.pollFDs[0].Revents&bad == 0 {
		return nil
	}
	// The tap's queue passes nothing (a frame that got through anyway is
	// read here and dropped), so the read finds it empty unless the tap is
	// gone (EBADFD).
	var scratch [64]byte
	_, err := rawRead(r.fd, scratch[:])
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		return r.dev.wrapErr("read", err)
	}
	if r.pollFDs[2].Revents&bad != 0 && err == unix.EAGAIN {
		// POLLERR without EBADFD: do not spin on it.
		return r.napFor(unix.NsecToTimespec(int64(10 * time.Millisecond)))
	}
	return nil
}
