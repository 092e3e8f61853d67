package bpf

import (
	"bytes"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/bpffs/bpffs/bpf/filter"
	"github.com/bpffs/bpffs/bufmode/zerocopy"
	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

// directMaxFrame stands for tap.MaxFrameLen (bpf does not import tap).
const directMaxFrame = 65553

// zeroCopyListener attaches a descriptor with shared zero-copy buffers of
// pages pages each (the client is this process) to tb's interface and
// returns it with the client's two buffers.
func zeroCopyListener(t *testing.T, tb *testBed, pages int) (*Descriptor, [2][]byte) {
	t.Helper()
	testenv.RequireRoot(t) // map_files needs CAP_SYS_ADMIN
	cfg := *tb.cfg
	cfg.ZeroCopy = true
	d := NewDescriptor(&cfg, Owner{Pid: os.Getpid(), CanRead: true}, func() {})
	t.Cleanup(d.Close)
	if err := d.SetBufMode(BufModeZbuf); err != nil {
		t.Fatal(err)
	}
	n := pages * os.Getpagesize()
	var bufs [2][]byte
	for i := range bufs {
		b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Munmap(b) })
		bufs[i] = b
	}
	addr := func(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
	z, err := zerocopy.Attach(unix.Gettid(), addr(bufs[0]), addr(bufs[1]), uint64(n))
	if err != nil {
		t.Fatalf("zerocopy.Attach: %v", err)
	}
	if err := d.SetZeroCopyBuffers(z); err != nil {
		z.Release()
		t.Fatal(err)
	}
	if err := d.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	return d, bufs
}

// feedDirect plays the tap reader's direct path for one frame: it reads
// frame "into" the buffer DirectBuffer offers, or reports false when the
// interface declined.
func feedDirect(ifp *Interface, frame []byte, wall int64) bool {
	dst := ifp.DirectBuffer(directMaxFrame)
	if dst == nil {
		return false
	}
	ifp.DirectEnd(copy(dst, frame), wall, nil)
	return true
}

// storeRecords is what a client would find in the store buffer once it is
// handed over: the records area up to the current store length.
func storeRecords(d *Descriptor) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.zbuf.Store()[:d.zbuf.StoreLen()]...)
}

// TestDirectPathMatchesCatch feeds the same frames to one zero-copy
// listener through Input and to another through the direct path, with the
// same filter, snap length and timestamp type, and wants identical bytes in
// the client's buffer and identical counters.
func TestDirectPathMatchesCatch(t *testing.T) {
	snap := mustCompile(t, []filter.Instruction{insn(0x06, 0, 0, 20)}) // ret #20
	for _, tc := range []struct {
		name   string
		prog   *filter.Program
		tstamp uint32
	}{
		{"no filter", nil, TstampMicro},
		{"udp port 9", mustCompile(t, udpPort9), TstampNano},
		{"snap 20", snap, TstampBin}, // monotonic time differs per interface (own boot clock)
	} {
		t.Run(tc.name, func(t *testing.T) {
			viaInput, viaDirect := newTestBed(t), newTestBed(t)
			a, _ := zeroCopyListener(t, viaInput, 32)
			b, _ := zeroCopyListener(t, viaDirect, 32)
			for _, d := range []*Descriptor{a, b} {
				d.SetReadFilter(tc.prog, true)
				if err := d.SetTimestampType(tc.tstamp); err != nil {
					t.Fatal(err)
				}
			}
			wall := time.Now().UnixNano()
			for i := range 40 {
				frame := udpFrame(60+i*37, uint16(9+i%3))
				if i%7 == 3 {
					frame = ethFrame(14+i, byte(i)) // not IPv4; odd lengths
				}
				viaInput.ifp.Input(frame, wall+int64(i)*1001)
				if !feedDirect(viaDirect.ifp, frame, wall+int64(i)*1001) {
					t.Fatalf("frame %d: DirectBuffer declined with room to spare", i)
				}
			}
			want, got := storeRecords(a), storeRecords(b)
			if !bytes.Equal(want, got) {
				t.Fatalf("store buffers differ: Input wrote %d bytes, direct path %d", len(want), len(got))
			}
			parseRecords(t, got)
			if sa, sb := a.Stats(), b.Stats(); sa != sb {
				t.Fatalf("stats differ: Input %+v, direct %+v", sa, sb)
			}
			checkInvariant(t, b.Stats())
		})
	}
}

// TestDirectPathErasesRejected checks that a frame the filter refuses, or
// the part a snap length cuts off, leaves no trace in the client's pages.
func TestDirectPathErasesRejected(t *testing.T) {
	tb := newTestBed(t)
	d, bufs := zeroCopyListener(t, tb, 32)
	d.SetReadFilter(mustCompile(t, udpPort9), true)
	secret := udpFrame(200, 53)
	for i := 42; i < len(secret); i++ {
		secret[i] = 0xee
	}
	feedDirect(tb.ifp, secret, 1)
	feedDirect(tb.ifp, udpFrame(60, 9), 2)
	d.SetReadFilter(mustCompile(t, []filter.Instruction{insn(0x06, 0, 0, 42)}), true)
	feedDirect(tb.ifp, secret, 3)
	if bytes.Contains(bufs[0], []byte{0xee, 0xee, 0xee, 0xee}) {
		t.Fatal("bytes of a rejected frame, or beyond the snap length, are visible in the client's buffer")
	}
	checkInvariant(t, d.Stats())
}

// TestDirectPathDeclines lists when the frame must take the ordinary path.
func TestDirectPathDeclines(t *testing.T) {
	t.Run("buffer mode", func(t *testing.T) {
		tb := newTestBed(t)
		tb.attached(1 << 19)
		if feedDirect(tb.ifp, udpFrame(60, 9), 1) {
			t.Fatal("direct path taken for a buffer-mode listener")
		}
	})
	t.Run("two listeners", func(t *testing.T) {
		tb := newTestBed(t)
		zeroCopyListener(t, tb, 32)
		zeroCopyListener(t, tb, 32)
		if feedDirect(tb.ifp, udpFrame(60, 9), 1) {
			t.Fatal("direct path taken with two listeners")
		}
	})
	t.Run("direction out", func(t *testing.T) {
		tb := newTestBed(t)
		d, _ := zeroCopyListener(t, tb, 32)
		d.SetDirection(DirectionOut)
		if feedDirect(tb.ifp, udpFrame(60, 9), 1) {
			t.Fatal("direct path taken for an outgoing-only listener")
		}
	})
	t.Run("locked", func(t *testing.T) {
		// Its filter may be a boundary a privileged program set: no frame
		// may touch the client's pages before the filter ran.
		tb := newTestBed(t)
		d, _ := zeroCopyListener(t, tb, 32)
		d.Lock()
		if feedDirect(tb.ifp, udpFrame(60, 9), 1) {
			t.Fatal("direct path taken for a locked descriptor")
		}
	})
	t.Run("room for less than the largest frame", func(t *testing.T) {
		tb := newTestBed(t)
		d, _ := zeroCopyListener(t, tb, 16) // 64 KiB: less than one largest frame
		if feedDirect(tb.ifp, udpFrame(60, 9), 1) {
			t.Fatal("direct path taken without room for the largest frame")
		}
		// The ordinary path still captures, and rotates as bpf(4) says.
		tb.ifp.Input(udpFrame(60, 9), 1)
		if s := d.Stats(); s.Captured != 1 {
			t.Fatalf("stats %+v after Input", s)
		}
	})
}

// TestDirectPathRotationAndWake fills the buffers through the direct path
// with the ordinary path taking over where room runs out, as the tap
// reader does, and checks that hand-overs and wake-ups happen and that
// nothing is lost or counted twice.
func TestDirectPathRotationAndWake(t *testing.T) {
	tb := newTestBed(t)
	d, bufs := zeroCopyListener(t, tb, 32)
	var wakes atomic.Int32
	d.wake = func() { wakes.Add(1) }
	frame := udpFrame(1514, 9)
	direct, ordinary := 0, 0
	for i := 0; i < 200; i++ {
		if feedDirect(tb.ifp, frame, int64(i)) {
			direct++
		} else {
			tb.ifp.Input(frame, int64(i))
			ordinary++
		}
		tb.ifp.EndBatch()
		// The client takes every buffer handed over at once.
		for _, b := range bufs {
			gen := atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0])))
			atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[8])), gen)
		}
	}
	s := d.Stats()
	checkInvariant(t, s)
	if s.Recv != 200 || s.Drop != 0 || s.Captured != 200 {
		t.Fatalf("stats %+v, want 200 captured without drops", s)
	}
	if direct == 0 || ordinary == 0 || wakes.Load() == 0 {
		t.Fatalf("direct %d, ordinary %d, wake-ups %d: want all three non-zero", direct, ordinary, wakes.Load())
	}
}

func TestDirectPathDoesNotAllocate(t *testing.T) {
	tb := newTestBed(t)
	d, bufs := zeroCopyListener(t, tb, 64)
	d.SetReadFilter(mustCompile(t, udpPort9), true)
	frame := udpFrame(64, 9)
	step := func() {
		if !feedDirect(tb.ifp, frame, 1) {
			tb.ifp.Input(frame, 1)
		}
		tb.ifp.EndBatch()
		for _, b := range bufs {
			gen := atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0])))
			atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[8])), gen)
		}
	}
	for range 10000 {
		step()
	}
	if allocs := testing.AllocsPerRun(20000, step); allocs != 0 {
		t.Fatalf("%.3f allocations per frame on the direct path, want 0", allocs)
	}
	checkInvariant(t, d.Stats())
}

// BenchmarkZeroCopyInput compares, per 64- and 1514-byte frame, the
// ordinary path (copy from a batch buffer into the shared buffer) with the
// direct path (the frame is already there; here the reader's read(2) is
// stood in for by a copy, so the difference shown is the bookkeeping, not
// the saved copy of the real thing).
func BenchmarkZeroCopyInput(b *testing.B) {
	for _, size := range []int{64, 1514} {
		for _, direct := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dB/direct=%v", size, direct), func(b *testing.B) {
				benchZeroCopy(b, size, direct)
			})
		}
	}
}

func benchZeroCopy(b *testing.B, size int, direct bool) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (map_files)")
	}
	tx := &fakeTx{}
	ifp := NewInterface("tap0", 1500, testAddr, tx)
	reg := NewRegistry()
	reg.Add(ifp)
	d := NewDescriptor(&Config{Registry: reg, ZeroCopy: true}, Owner{Pid: os.Getpid(), CanRead: true}, func() {})
	defer d.Close()
	d.SetBufMode(BufModeZbuf)
	n := 512 * os.Getpagesize()
	var bufs [2][]byte
	for i := range bufs {
		m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Munmap(m)
		bufs[i] = m
	}
	z, err := zerocopy.Attach(unix.Gettid(), uint64(uintptr(unsafe.Pointer(&bufs[0][0]))), uint64(uintptr(unsafe.Pointer(&bufs[1][0]))), uint64(n))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.SetZeroCopyBuffers(z); err != nil {
		b.Fatal(err)
	}
	if err := d.Attach("tap0"); err != nil {
		b.Fatal(err)
	}
	frame := udpFrame(size, 9)
	wall := time.Now().UnixNano()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !direct || !feedDirect(ifp, frame, wall) {
			ifp.Input(frame, wall)
		}
		if i%256 == 255 {
			ifp.EndBatch()
			for _, m := range bufs {
				gen := atomic.LoadUint32((*uint32)(unsafe.Pointer(&m[0])))
				atomic.StoreUint32((*uint32)(unsafe.Pointer(&m[8])), gen)
			}
		}
	}
	b.StopTimer()
	if s := d.Stats(); s.Drop != 0 {
		b.Fatalf("drops in the benchmark: %+v", s)
	}
}
