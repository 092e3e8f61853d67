package zerocopy

import (
	"errors"
	"github.com/bpffs/bpffs/internal/procmem"
	"os"
	"runtime/debug"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HeaderSize is sizeof(struct bpf_zbuf_header): records start after it.
const HeaderSize = 32

// MaxPages is the most pages one buffer may have (FreeBSD's BPF_MAX_PAGES).
const MaxPages = 512

// Offsets in struct bpf_zbuf_header.
const (
	offKernelGen = 0
	offKernelLen = 4
	offUserGen   = 8
)

// MaxSize is BIOCGETZMAX: the largest buffer, in bytes.
func MaxSize() int { return MaxPages * os.Getpagesize() }

// buffer is one of the client's two buffers.
type buffer struct {
	userAddr uint64
	// mem is the whole buffer, header included: the client's own pages
	// when shared, else the daemon's staging copy.
	mem []byte
	// gen is bzh_kernel_gen as the daemon last published it; the daemon
	// trusts its own copy, never what the client may have scribbled.
	gen uint32
	// handedOver: the buffer belongs to the client until it acknowledges
	// (FreeBSD's ZBUF_FLAG_ASSIGNED).
	handedOver bool
	// length is the bzh_kernel_len of the last hand-over.
	length int
}

// Buffers is one descriptor's pair of zero-copy buffers. All methods are
// called with the descriptor's lock held.
type Buffers struct {
	bufs               [2]buffer
	store, hold, free  *buffer
	storeLen           int
	size               int // usable bytes per buffer: length − HeaderSize
	shared             bool
	proc               *process // the copy path's client
	broken             bool
	faults             uint64
	scratch            []byte
	sharedMappingBytes int
}

// ErrBroken is recorded when the client made its buffers unusable.
var ErrBroken = errors.New("zerocopy: the client's buffers became unusable")

// Attach validates and attaches the client's two buffers as BIOCSETZBUF
// describes them; tid is the calling thread as the kernel named it. Errors
// are bpf(4)'s: EINVAL for a NULL address, a zero or unaligned length, an
// unaligned address or more than MaxPages pages; EFAULT for memory that is
// not mapped readable and writable; EPERM when the caller is not visible.
func Attach(tid int, bufA, bufB, length uint64) (*Buffers, error) {
	page := uint64(os.Getpagesize())
	if bufA == 0 || bufB == 0 || length == 0 {
		return nil, unix.EINVAL
	}
	if bufA%page != 0 || bufB%page != 0 || length%page != 0 || length/page > MaxPages {
		return nil, unix.EINVAL
	}
	if bufA+length < bufA || bufB+length < bufB {
		return nil, unix.EINVAL
	}
	if tid <= 0 {
		return nil, unix.EPERM
	}
	pid, err := threadGroup(tid)
	if err != nil {
		return nil, unix.EPERM
	}
	z := &Buffers{size: int(length) - HeaderSize}
	vmasA, errA := findVMAs(pid, bufA, length)
	vmasB, errB := findVMAs(pid, bufB, length)
	if errA != nil || errB != nil {
		return nil, unix.EFAULT
	}
	for _, v := range append(vmasA, vmasB...) {
		if !v.readable() || !v.writable() {
			return nil, unix.EFAULT
		}
	}
	// Share only when each buffer lies in one shared mapping; anything
	// else (private memory, a buffer spanning mappings) takes the copy path.
	if len(vmasA) == 1 && len(vmasB) == 1 && vmasA[0].shared() && vmasB[0].shared() {
		memA, err := mapShared(pid, vmasA[0], bufA, length)
		if err == nil {
			memB, err := mapShared(pid, vmasB[0], bufB, length)
			if err == nil {
				z.shared = true
				z.bufs[0] = buffer{userAddr: bufA, mem: memA}
				z.bufs[1] = buffer{userAddr: bufB, mem: memB}
				z.sharedMappingBytes = 2 * int(length)
			} else {
				unix.Munmap(memA)
			}
		}
	}
	if !z.shared {
		if z.proc, err = openProcess(pid); err != nil {
			return nil, unix.EPERM
		}
		z.bufs[0] = buffer{userAddr: bufA, mem: make([]byte, length)}
		z.bufs[1] = buffer{userAddr: bufB, mem: make([]byte, length)}
	}
	// Both headers start zeroed, as FreeBSD does at BIOCSETZBUF.
	for i := range z.bufs {
		if err := z.publishHeader(&z.bufs[i], true); err != nil {
			z.Release()
			return nil, unix.EFAULT
		}
	}
	z.store, z.free = &z.bufs[0], &z.bufs[1]
	return z, nil
}

// Shared reports whether the buffers are the client's own pages (true) or
// reached by copying (false).
func (z *Buffers) Shared() bool { return z.shared }

// Broken reports whether the client made the buffers unusable.
func (z *Buffers) Broken() bool { return z.broken }

// Release unmaps the daemon's mappings and forgets the process. The
// client's memory is its own and stays as it is.
func (z *Buffers) Release() {
	if z.shared {
		for i := range z.bufs {
			if z.bufs[i].mem != nil {
				unix.Munmap(z.bufs[i].mem)
				z.bufs[i].mem = nil
			}
		}
	}
	if z.proc != nil {
		z.proc.close()
	}
	z.store, z.hold, z.free = nil, nil, nil
	z.broken = true
}

// guard runs fn, turning a fault on the shared pages (the client truncated
// the file behind them) into a broken state instead of a crash.
func (z *Buffers) guard(fn func()) (ok bool) {
	if !z.shared {
		fn()
		return !z.broken
	}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, isErr := r.(interface{ Addr() uintptr }); !isErr {
				panic(r)
			}
			z.faults++
			z.broken = true
			ok = false
		}
	}()
	fn()
	return true
}

func word(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

// publishHeader writes bzh_kernel_len, then bzh_kernel_gen with release
// semantics (Go's atomics are sequentially consistent), so a client that
// loads the generation with acquire semantics sees the data and the length.
// zero also clears bzh_user_gen (set-up only).
func (z *Buffers) publishHeader(b *buffer, zero bool) error {
	if z.shared {
		if !z.guard(func() {
			if zero {
				clear(b.mem[:HeaderSize])
			}
			atomic.StoreUint32(word(b.mem, offKernelLen), uint32(b.length))
			atomic.StoreUint32(word(b.mem, offKernelGen), b.gen)
		}) {
			return ErrBroken
		}
		return nil
	}
	// The copy path: data and length in one call, the generation after it,
	// so the generation never becomes visible before what it announces.
	var lenb, genb [4]byte
	put32(lenb[:], uint32(b.length))
	put32(genb[:], b.gen)
	parts := []procmem.Part{{Addr: b.userAddr + offKernelLen, Data: lenb[:]}}
	if zero {
		var hdr [HeaderSize]byte
		parts = []procmem.Part{{Addr: b.userAddr, Data: hdr[:]}}
	} else if b.length > 0 {
		parts = append(parts, procmem.Part{Addr: b.userAddr + HeaderSize, Data: b.mem[HeaderSize : HeaderSize+b.length]})
	}
	if err := z.proc.write(parts...); err != nil {
		z.broken = true
		return err
	}
	if zero {
		return nil
	}
	if err := z.proc.write(procmem.Part{Addr: b.userAddr + offKernelGen, Data: genb[:]}); err != nil {
		z.broken = true
		return err
	}
	return nil
}

func put32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// acknowledged reports whether the client has given b back: bzh_user_gen
// equals the generation the daemon published (loaded with acquire
// semantics). A client that never acknowledges keeps the buffer.
func (z *Buffers) acknowledged(b *buffer) bool {
	if z.broken {
		return false
	}
	var user uint32
	if z.shared {
		if !z.guard(func() { user = atomic.LoadUint32(word(b.mem, offUserGen)) }) {
			return false
		}
	} else {
		v, err := z.proc.readUint32(b.userAddr + offUserGen)
		if err != nil {
			z.broken = true
			return false
		}
		user = v
	}
	return user == b.gen
}

// handOver gives the store buffer to the client with its current length.
func (z *Buffers) handOver(b *buffer, length int) {
	b.length = length
	b.gen++
	b.handedOver = true
	z.publishHeader(b, false)
}

// Size is the usable capacity of a buffer (BIOCGBLEN: length − 32).
func (z *Buffers) Size() int { return z.size }

// Store is the store buffer's record area. A broken pair offers a
// harmless scratch area of its own so stray writes go nowhere.
func (z *Buffers) Store() []byte {
	if z.broken || z.store == nil {
		if z.scratch == nil {
			z.scratch = make([]byte, z.size)
		}
		return z.scratch
	}
	return z.store.mem[HeaderSize:]
}

// Faulted is called by the catch path when writing a record into the
// shared pages faulted: the buffers are unusable from now on.
func (z *Buffers) Faulted() {
	z.faults++
	z.broken = true
}

func (z *Buffers) StoreLen() int { return z.storeLen }

func (z *Buffers) SetStoreLen(n int) { z.storeLen = min(max(n, 0), z.size) }

// StoreWritable is false once the store buffer was handed over (both
// buffers the client's), and for a broken pair.
func (z *Buffers) StoreWritable() bool {
	return !z.broken && z.store != nil && !z.store.handedOver
}

func (z *Buffers) HasFree() bool { return !z.broken && z.free != nil }

func (z *Buffers) HoldLen() int {
	if z.hold == nil {
		return 0
	}
	return z.hold.length
}

// HoldReadable: a handed-over buffer the client has not acknowledged yet —
// the hold buffer, or the store buffer handed over when both filled.
func (z *Buffers) HoldReadable() bool {
	if z.broken {
		return false
	}
	if z.hold != nil && !z.acknowledged(z.hold) {
		return true
	}
	return z.store != nil && z.store.handedOver && !z.acknowledged(z.store)
}

// ReclaimHold takes back an acknowledged hold buffer as the free buffer.
func (z *Buffers) ReclaimHold() {
	if z.free == nil && z.hold != nil && z.acknowledged(z.hold) {
		z.hold.handedOver = false
		z.free, z.hold = z.hold, nil
	}
}

// Rotate hands the store buffer over (unless that already happened when
// both filled: then it becomes the hold buffer without a second
// generation) and makes the free buffer the store.
func (z *Buffers) Rotate() bool {
	if z.broken || z.free == nil {
		return false
	}
	if !z.store.handedOver {
		z.handOver(z.store, z.storeLen)
	}
	z.hold, z.store, z.free = z.store, z.free, nil
	z.storeLen = 0
	return true
}

// BufferFull hands the store buffer over too when a packet must be dropped
// for lack of room, so the client gets what was captured so far.
func (z *Buffers) BufferFull() {
	if !z.broken && z.store != nil && !z.store.handedOver {
		z.handOver(z.store, z.storeLen)
	}
}

// Reset is BIOCFLUSH: an acknowledged hold buffer is taken back, and the
// store buffer is emptied only if the client does not own it.
func (z *Buffers) Reset() {
	if z.broken {
		return
	}
	z.ReclaimHold()
	if z.store != nil && !z.store.handedOver {
		z.storeLen = 0
	}
}

// RotateForUser is BIOCROTZBUF. Unlike FreeBSD, which takes back an
// acknowledged hold buffer only when the next packet arrives (stranding the
// last packets of a burst), it first reclaims one, then hands over a store
// buffer that has data when no hold buffer is out. It returns the client's
// address of the buffer handed over and its length, or zeros.
func (z *Buffers) RotateForUser() (addr uint64, length int) {
	if z.broken {
		return 0, 0
	}
	z.ReclaimHold()
	if z.hold != nil || z.storeLen == 0 || z.store.handedOver {
		return 0, 0
	}
	b, n := z.store, z.storeLen
	if !z.Rotate() {
		return 0, 0
	}
	return b.userAddr, n
}

// Faults counts faults caught on the shared pages.
func (z *Buffers) Faults() uint64 { return z.faults }
