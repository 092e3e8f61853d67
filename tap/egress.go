//go:build linux

package tap

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bpffs/bpffs/internal/ebpf"
	"golang.org/x/sys/unix"
)

// DefaultEgressBytes is the default size of a SourceEgress ring buffer. Its
// records are sized by class (128 bytes for a frame of up to 108, 512 up to
// 492, a full slot beyond), so 32 MiB hold ~260 000 minimum-size frames or
// ~21 000 full-size ones.
const DefaultEgressBytes = 32 << 20

// A record of the egress program: the frame follows a 16-byte header.
const (
	egressHeader    = 16
	egressTimeOff   = 0 // u64, CLOCK_MONOTONIC ns when the program ran
	egressLengthOff = 8 // u32, the frame's length (with a VLAN tag put back)

	egressCountLost     = 0 // the ring buffer had no room
	egressCountOversize = 1 // longer than the largest record class
	egressCounters      = 2
)

// tcxNext lets the frame go on (to later tcx programs, the qdisc and the
// tap, whose transmit filter discards it, as with SourceRing). tcx knows
// no "stolen": ending the frame here could only be TCX_DROP, which the
// sender sees as a drop (AF_PACKET returns ENOBUFS, TCP backs off).
const tcxNext = -1

// Offsets in struct __sk_buff (linux/bpf.h).
const (
	skbLenOff       = 0
	skbVlanTCIOff   = 24
	skbVlanProtoOff = 28
	skbGSOSegsOff   = 164
)

// egressProgram builds the tcx egress program. For every frame the stack
// transmits on the tap it reserves a ring buffer record of the smallest
// class that fits, writes the time, the length and the frame (a VLAN tag
// that the stack kept in the skb's metadata goes back inline, as the tap's
// own queue would carry it), submits it and lets the frame go on. Frames
// without room are counted as lost; frames too long, and GSO trains (which
// the hook sees before segmentation: UDP_SEGMENT, forwarded GRO packets),
// as oversize.
func egressProgram(ringFD, countFD, maxFrame int) ([]ebpf.Insn, error) {
	const (
		ctx, length, rec, vlan = ebpf.R6, ebpf.R7, ebpf.R8, ebpf.R9
		small, mid             = 128, 512
	)
	largest := int32(egressHeader+maxFrame+7) &^ 7
	var a ebpf.Asm
	a.Emit(
		ebpf.MovReg(ctx, ebpf.R1),
		ebpf.LoadW(length, ctx, skbLenOff),
		ebpf.LoadW(vlan, ctx, skbVlanProtoOff),
	)
	a.JumpIf(ebpf.JEQ, length, 0, "lost")
	a.Emit(ebpf.LoadW(ebpf.R2, ctx, skbGSOSegsOff))
	a.JumpIf(ebpf.JGT, ebpf.R2, 1, "oversize")
	a.JumpIf(ebpf.JEQ, vlan, 0, "sized")
	a.Emit(ebpf.AddImm(length, 4))
	a.Label("sized")
	a.JumpIf(ebpf.JGT, length, largest-egressHeader, "oversize")
	reserve := func(size int32) {
		a.Emit2(ebpf.LoadMapFD(ebpf.R1, ringFD))
		a.Emit(ebpf.MovImm(ebpf.R2, size), ebpf.MovImm(ebpf.R3, 0), ebpf.Call(ebpf.FuncRingbufReserve))
		a.Goto("reserved")
	}
	a.JumpIf(ebpf.JGT, length, small-egressHeader, "mid")
	reserve(small)
	a.Label("mid")
	a.JumpIf(ebpf.JGT, length, mid-egressHeader, "large")
	reserve(mid)
	a.Label("large")
	reserve(largest)

	a.Label("reserved")
	a.JumpIf(ebpf.JEQ, ebpf.R0, 0, "lost")
	a.Emit(
		ebpf.MovReg(rec, ebpf.R0),
		ebpf.Call(ebpf.FuncKtimeGetNs),
		ebpf.StoreDW(rec, egressTimeOff, ebpf.R0),
		ebpf.StoreW(rec, egressLengthOff, length),
		ebpf.MovReg(ebpf.R1, ctx),
		ebpf.MovImm(ebpf.R2, 0),
		ebpf.MovReg(ebpf.R3, rec),
		ebpf.AddImm(ebpf.R3, egressHeader),
	)
	a.JumpIf(ebpf.JNE, vlan, 0, "tagged")
	a.Emit(ebpf.MovReg(ebpf.R4, length), ebpf.Call(ebpf.FuncSkbLoadBytes))
	a.JumpIf(ebpf.JNE, ebpf.R0, 0, "discard")
	a.Goto("submit")

	// Addresses, the tag, then the rest from the EtherType on.
	a.Label("tagged")
	a.Emit(ebpf.MovImm(ebpf.R4, 12), ebpf.Call(ebpf.FuncSkbLoadBytes))
	a.JumpIf(ebpf.JNE, ebpf.R0, 0, "discard")
	a.Emit(
		ebpf.StoreH(rec, egressHeader+12, vlan), // vlan_proto is kept in network order
		ebpf.LoadW(ebpf.R1, ctx, skbVlanTCIOff),
		ebpf.ToBE16(ebpf.R1),
		ebpf.StoreH(rec, egressHeader+14, ebpf.R1),
		ebpf.MovReg(ebpf.R4, length),
		ebpf.SubImm(ebpf.R4, 16),
	)
	a.JumpIf(ebpf.JSGT, ebpf.R4, 0, "rest")
	a.Goto("discard")
	a.Label("rest")
	a.Emit(
		ebpf.MovReg(ebpf.R1, ctx),
		ebpf.MovImm(ebpf.R2, 12),
		ebpf.MovReg(ebpf.R3, rec),
		ebpf.AddImm(ebpf.R3, egressHeader+16),
		ebpf.Call(ebpf.FuncSkbLoadBytes),
	)
	a.JumpIf(ebpf.JNE, ebpf.R0, 0, "discard")

	a.Label("submit")
	a.Emit(ebpf.MovReg(ebpf.R1, rec), ebpf.MovImm(ebpf.R2, 0), ebpf.Call(ebpf.FuncRingbufSubmit))
	a.Emit(ebpf.MovImm(ebpf.R0, tcxNext), ebpf.Exit())

	a.Label("discard")
	a.Emit(ebpf.MovReg(ebpf.R1, rec), ebpf.MovImm(ebpf.R2, 0), ebpf.Call(ebpf.FuncRingbufDiscard))
	a.Label("lost")
	count := func(which int32) {
		a.Emit2(ebpf.LoadMapValue(ebpf.R1, countFD, 8*which))
		a.Emit(ebpf.MovImm(ebpf.R2, 1), ebpf.AtomicAddDW(ebpf.R1, 0, ebpf.R2))
		a.Emit(ebpf.MovImm(ebpf.R0, tcxNext), ebpf.Exit())
	}
	count(egressCountLost)
	a.Label("oversize")
	count(egressCountOversize)
	return a.Program()
}

// egressRing is the kernel side of a SourceEgress reader: the program, its
// link to the tap, the ring buffer it fills and the counters.
type egressRing struct {
	rb                       *ebpf.RingBuffer
	ringFD, countFD, linkFD  int
	size                     int
	pos, produced            uint64 // the reader's position and the producer's as last seen; only its thread touches them
	clockOffset, clockSample int64  // realtime - monotonic, and when it was taken (monotonic)

	// Batches may be released in any order but the ring is freed from
	// its start: spans lists the batches not yet given back, in the
	// order they were taken (seq), and the ring is released up to the
	// end of the oldest run of given-back ones.
	mu       sync.Mutex
	spans    []egressSpan
	firstSeq uint64 // seq of spans[0]
	nextSeq  uint64
	closed   bool // capture ended: the last giveBack unmaps the ring

	statsMu      sync.Mutex
	closedCounts [egressCounters]uint64
	outstanding  atomic.Int64
	segsWas      int64 // the tap's gso_max_segs before, -1 if unchanged

	runts    atomic.Uint64 // records too short for a frame, skipped (counted as oversize, as SourceRing does)
	skipped  bool          // records were skipped since the last batch was sealed
	unsealed int           // frames taken since the last batch was sealed
}

type egressSpan struct {
	end  uint64
	done bool
}

// openEgress loads the program and attaches it to the tap's egress. The
// hook runs before segmentation, and a frame must be seen as the tap's
// queue would carry it, not as a 64 KiB TCP train: TCP builds GSO packets
// whatever the device's offload settings, so the tap's gso_max_segs is 1
// for as long as the program is attached (sockets connected before keep
// the limit they cached), and restored when it is detached.
func (d *Device) openEgress(ringBytes int) (_ *egressRing, err error) {
	mtu, err := d.MTU()
	if err != nil {
		return nil, err
	}
	if ringBytes <= 0 {
		ringBytes = DefaultEgressBytes
	}
	size := 1 << 16
	for size < ringBytes {
		size <<= 1
	}
	// e is not the named result: the error returns below set that to nil
	// before this cleanup runs.
	e := &egressRing{ringFD: -1, countFD: -1, linkFD: -1, size: size, segsWas: -1}
	defer func() {
		if err != nil {
			e.closeFDs()
			e.restoreSegments(d)
			if e.rb != nil {
				e.rb.Close()
			}
		}
	}()
	if e.ringFD, err = ebpf.NewRingBuffer(size); err != nil {
		return nil, fmt.Errorf("tap: egress source for %s: %w", d.describe(), err)
	}
	if e.countFD, err = ebpf.NewCounters(egressCounters); err != nil {
		return nil, fmt.Errorf("tap: egress source for %s: %w", d.describe(), err)
	}
	// Room for two VLAN tags, as in a QinQ frame.
	insns, err := egressProgram(e.ringFD, e.countFD, mtu+ethernetHeaderLen+8)
	if err != nil {
		return nil, err
	}
	progFD, err := ebpf.LoadSchedCLS("bpffs_egress", insns, unix.BPF_TCX_EGRESS)
	if err != nil {
		return nil, fmt.Errorf("tap: egress source for %s: %w", d.describe(), err)
	}
	defer unix.Close(progFD) // the link keeps the program
	if e.rb, err = ebpf.OpenRingBuffer(e.ringFD, size); err != nil {
		return nil, err
	}
	if e.segsWas, err = d.oneSegment(); err != nil {
		return nil, err
	}
	err = d.inDeviceNetns(func() error {
		var err error
		e.linkFD, err = ebpf.AttachTCX(progFD, d.index, unix.BPF_TCX_EGRESS)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tap: egress source for %s: %w", d.describe(), err)
	}
	e.pos = e.rb.Consumed()
	return e, nil
}

// oneSegment makes the stack build no multi-segment (GSO) packets for the
// tap and returns the limit it had, or -1 if it was 1 already.
func (d *Device) oneSegment() (int64, error) {
	was, err := d.gsoMaxSegs()
	if err != nil {
		return -1, err
	}
	if was == 1 {
		return -1, nil
	}
	if err := d.setGSOMaxSegs(1); err != nil {
		return -1, err
	}
	return int64(was), nil
}

// restoreSegments gives the tap back the gso_max_segs oneSegment changed.
func (e *egressRing) restoreSegments(d *Device) {
	if e.segsWas >= 0 {
		d.setGSOMaxSegs(uint32(e.segsWas))
		e.segsWas = -1
	}
}

func (e *egressRing) closeFDs() {
	for _, fd := range []*int{&e.linkFD, &e.countFD, &e.ringFD} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// takeFrame returns the next frame in the ring, if a whole one is there.
// Records the program discarded are stepped over. The producer's position
// is read only when the reader has caught up with what it saw last: it is
// the line the program writes for every frame.
func (e *egressRing) takeFrame(*Batch) (frame []byte, wallNanos int64, ok, stalled bool) {
	if e.pos == e.produced {
		e.produced = e.rb.Produced()
	}
	for e.pos < e.produced {
		body, next, ready := e.rb.Record(e.pos)
		if !ready {
			return nil, 0, false, false
		}
		e.pos = next
		if body == nil {
			e.skipped = true
			continue
		}
		n := 0
		if len(body) >= egressHeader {
			n = int(binary.NativeEndian.Uint32(body[egressLengthOff:]))
		}
		if n < ethernetHeaderLen || n > len(body)-egressHeader {
			e.runts.Add(1)
			e.skipped = true
			continue
		}
		mono := int64(binary.NativeEndian.Uint64(body[egressTimeOff:]))
		e.unsealed++
		return body[egressHeader : egressHeader+n : egressHeader+n], e.wallClock(mono), true, false
	}
	if e.skipped && e.unsealed == 0 {
		e.releaseSkipped()
	}
	return nil, 0, false, false
}

// releaseSkipped frees records that were stepped over with no frame after
// them: no batch will ever cover them, and while they sit in the ring it
// polls readable. With batches still held, or frames taken for the batch
// being filled, the next batch to be sealed covers them instead.
func (e *egressRing) releaseSkipped() {
	e.mu.Lock()
	if len(e.spans) == 0 {
		e.rb.Release(e.pos)
		e.skipped = false
	}
	e.mu.Unlock()
}

// wallClock turns the program's monotonic time into CLOCK_REALTIME with an
// offset taken afresh once frames are 10 ms newer than the last sample, so
// that clock steps show within that. Frames older than the sample (held
// back, or a reader that fell behind) use it as it is: resampling for them
// would cost two system calls per frame exactly when the reader is late.
func (e *egressRing) wallClock(mono int64) int64 {
	if mono-e.clockSample > int64(10*time.Millisecond) {
		var m, r unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
		unix.ClockGettime(unix.CLOCK_REALTIME, &r)
		e.clockSample = m.Nano()
		e.clockOffset = r.Nano() - e.clockSample
	}
	return mono + e.clockOffset
}

// seal makes b the holder of the records up to the reader's position.
func (e *egressRing) seal(b *Batch) {
	e.outstanding.Add(1)
	e.mu.Lock()
	b.egressSeq, b.egressHeld = e.nextSeq, true
	e.nextSeq++
	e.skipped, e.unsealed = false, 0 // this batch's end covers them
	e.spans = append(e.spans, egressSpan{end: e.pos})
	e.mu.Unlock()
}

// giveBack ends a batch's claim on its records and frees the ring up to the
// oldest batch still held.
func (e *egressRing) giveBack(b *Batch) {
	if !b.egressHeld {
		return
	}
	b.egressHeld = false
	e.mu.Lock()
	i := int(b.egressSeq - e.firstSeq)
	if i >= 0 && i < len(e.spans) {
		e.spans[i].done = true
	}
	n := 0
	for n < len(e.spans) && e.spans[n].done {
		n++
	}
	if n > 0 {
		end := e.spans[n-1].end
		rest := copy(e.spans, e.spans[n:])
		e.spans = e.spans[:rest]
		e.firstSeq += uint64(n)
		if e.rb != nil && !e.closed {
			e.rb.Release(end)
		}
	}
	e.mu.Unlock()
	if e.outstanding.Add(-1) == 0 {
		e.unmapIfClosed()
	}
}

// backlogHalf tells whether half the ring is taken, by frames waiting or by
// batches not yet given back.
func (e *egressRing) backlogHalf() bool {
	return e.rb.Produced()-e.rb.Consumed() >= uint64(e.size/2)
}

// counts reads the program's counters.
func (e *egressRing) counts() [egressCounters]uint64 {
	e.statsMu.Lock()
	defer e.statsMu.Unlock()
	if e.countFD >= 0 {
		var c [egressCounters]uint64
		if ebpf.ReadCounters(e.countFD, c[:]) == nil {
			e.closedCounts = c
		}
	}
	return e.closedCounts
}

func (e *egressRing) sourceDrops() uint64 { return e.counts()[egressCountLost] }
func (e *egressRing) oversizeFrames() uint64 {
	return e.counts()[egressCountOversize] + e.runts.Load()
}
func (e *egressRing) pollFD() int     { return e.ringFD }
func (e *egressRing) clearPollError() {}

// close detaches the program (the link's descriptor is its only hold on the
// tap) and frees the ring once no batch holds records.
func (e *egressRing) close(d *Device) {
	e.counts() // keep the last figures
	e.statsMu.Lock()
	e.closeFDs()
	e.statsMu.Unlock()
	e.restoreSegments(d)
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	if e.outstanding.Load() == 0 {
		e.unmapIfClosed()
	}
}

func (e *egressRing) unmapIfClosed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed && e.rb != nil && e.outstanding.Load() == 0 {
		e.rb.Close()
		e.rb = nil
	}
}
