package zerocopy

import (
	"os"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

// clientBuffers plays the client: two buffers of n pages in this process,
// shared or private, attached as BIOCSETZBUF would.
func clientBuffers(t *testing.T, pages int, flags int) ([2][]byte, *Buffers) {
	t.Helper()
	testenv.RequireRoot(t) // map_files needs CAP_SYS_ADMIN
	n := pages * os.Getpagesize()
	var bufs [2][]byte
	for i := range bufs {
		b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, flags|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Munmap(b) })
		bufs[i] = b
	}
	z, err := Attach(unix.Gettid(), addr(bufs[0]), addr(bufs[1]), uint64(n))
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(z.Release)
	return bufs, z
}

func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

func kernelGen(b []byte) uint32 { return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0]))) }
func kernelLen(b []byte) uint32 { return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[4]))) }
func ack(b []byte)              { atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[8])), kernelGen(b)) }

// fill appends n bytes to the store buffer as the core would.
func fill(z *Buffers, n int, v byte) {
	s := z.Store()
	start := z.StoreLen()
	for i := 0; i < n; i++ {
		s[start+i] = v
	}
	z.SetStoreLen(start + n)
}

func TestProtocolOnSharedPages(t *testing.T) {
	for _, kind := range []struct {
		name   string
		flags  int
		shared bool
	}{{"shared", unix.MAP_SHARED, true}, {"private", unix.MAP_PRIVATE, false}} {
		t.Run(kind.name, func(t *testing.T) {
			bufs, z := clientBuffers(t, 1, kind.flags)
			a, b := bufs[0], bufs[1]
			if z.Shared() != kind.shared {
				t.Fatalf("Shared() = %v", z.Shared())
			}
			if z.Size() != os.Getpagesize()-HeaderSize {
				t.Fatalf("Size %d", z.Size())
			}
			// A first: fill, rotate → A handed over with its length.
			fill(z, 100, 0xaa)
			if !z.Rotate() {
				t.Fatal("rotate failed with a free buffer")
			}
			if kernelGen(a) != 1 || kernelLen(a) != 100 || a[HeaderSize] != 0xaa {
				t.Fatalf("A after hand-over: gen %d len %d data %x", kernelGen(a), kernelLen(a), a[HeaderSize])
			}
			if !z.HoldReadable() || z.HoldLen() != 100 {
				t.Fatal("the handed-over buffer is not readable")
			}
			// B fills; no free buffer until A is acknowledged.
			fill(z, 50, 0xbb)
			if z.HasFree() {
				t.Fatal("free buffer while A is out")
			}
			z.ReclaimHold()
			if z.HasFree() {
				t.Fatal("reclaimed an unacknowledged buffer")
			}
			// Both full: BufferFull hands B over too.
			z.BufferFull()
			if kernelGen(b) != 1 || kernelLen(b) != 50 || z.StoreWritable() {
				t.Fatalf("B after BufferFull: gen %d len %d writable %v", kernelGen(b), kernelLen(b), z.StoreWritable())
			}
			// The client acknowledges A then B, in order.
			ack(a)
			z.ReclaimHold()
			if !z.HasFree() || z.HoldReadable() != true {
				// B (the handed-over store) is still the client's.
				t.Fatalf("after acking A: free %v, readable %v", z.HasFree(), z.HoldReadable())
			}
			// The next rotation makes B hold without a second generation and
			// A the store: strict A, B, A order.
			if !z.Rotate() || kernelGen(b) != 1 {
				t.Fatalf("rotation after BufferFull bumped B's generation to %d", kernelGen(b))
			}
			ack(b)
			fill(z, 10, 0xcc)
			addrGot, n := z.RotateForUser()
			if addrGot != addr(a) || n != 10 || kernelGen(a) != 2 {
				t.Fatalf("RotateForUser: %#x %d gen %d; want A (%#x), 10, gen 2", addrGot, n, kernelGen(a), addr(a))
			}
			// Nothing in the store and a buffer out: zeros.
			if addrGot, n := z.RotateForUser(); addrGot != 0 || n != 0 {
				t.Fatalf("RotateForUser with nothing to hand over: %#x %d", addrGot, n)
			}
		})
	}
}

// FreeBSD strands an acknowledged hold buffer until the next packet; here
// BIOCROTZBUF reclaims it and hands the store over at once.
func TestRotateReclaimsAcknowledgedHold(t *testing.T) {
	bufs, z := clientBuffers(t, 1, unix.MAP_SHARED)
	fill(z, 40, 1)
	z.Rotate()    // A out
	fill(z, 8, 2) // the last packets of a burst, in B
	ack(bufs[0])  // the client is done with A; no packet follows
	if got, n := z.RotateForUser(); got != addr(bufs[1]) || n != 8 {
		t.Fatalf("RotateForUser = %#x %d, want B with 8 bytes", got, n)
	}
}

func TestFlushKeepsClientOwnedBuffers(t *testing.T) {
	bufs, z := clientBuffers(t, 1, unix.MAP_SHARED)
	fill(z, 40, 1)
	z.Rotate()
	fill(z, 20, 2)
	z.Reset() // A not acknowledged: stays out; B still the daemon's: emptied
	if z.HoldLen() != 40 || z.StoreLen() != 0 {
		t.Fatalf("after flush: hold %d store %d", z.HoldLen(), z.StoreLen())
	}
	ack(bufs[0])
	z.Reset()
	if !z.HasFree() || z.HoldLen() != 0 {
		t.Fatal("flush did not reclaim the acknowledged buffer")
	}
}

func TestAttachRefusesBadBuffers(t *testing.T) {
	testenv.RequireRoot(t)
	page := uint64(os.Getpagesize())
	// Four usable shared pages followed by four inaccessible ones.
	area, err := unix.Mmap(-1, 0, int(8*page), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(area)
	a := addr(area)
	if _, _, e := unix.Syscall6(unix.SYS_MMAP, uintptr(a), uintptr(4*page), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_FIXED, ^uintptr(0), 0); e != 0 {
		t.Fatal(e)
	}
	tid := unix.Gettid()
	for _, c := range []struct {
		name    string
		a, b, n uint64
		tid     int
		want    error
	}{
		{"null", 0, a, page, tid, unix.EINVAL},
		{"zero length", a, a + page, 0, tid, unix.EINVAL},
		{"unaligned", a + 8, a + page, page, tid, unix.EINVAL},
		{"odd length", a, a + page, page + 1, tid, unix.EINVAL},
		{"too many pages", a, a, (MaxPages + 1) * page, tid, unix.EINVAL},
		{"into inaccessible pages", a, a + 2*page, 3 * page, tid, unix.EFAULT},
		{"invisible caller", a, a + page, page, 0, unix.EPERM},
		{"wrapping", ^uint64(0) - page + 1, a, page, tid, unix.EINVAL},
	} {
		if _, err := Attach(c.tid, c.a, c.b, c.n); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestReleaseUnmaps(t *testing.T) {
	_, z := clientBuffers(t, 2, unix.MAP_SHARED)
	before := sharedMappings(t)
	z.Release()
	if after := sharedMappings(t); after != before-2 {
		t.Fatalf("shared mappings %d → %d after Release, want −2", before, after)
	}
	if z.HasFree() || z.StoreWritable() {
		t.Fatal("released buffers still usable")
	}
}

func sharedMappings(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range splitLines(string(b)) {
		if v, ok := parseVMA(line); ok && v.shared() {
			n++
		}
	}
	return n
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
