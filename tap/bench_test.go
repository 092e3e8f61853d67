//go:build linux

package tap

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

// flooder transmits one prebuilt frame out of the tap as fast as it can, in
// sendmmsg batches from an AF_PACKET socket inside the tap's namespace. It
// allocates nothing while running, so allocs/op belong to the reader.
type flooder struct {
	fd   int
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
	keep []byte

	stop atomic.Bool
	done chan struct{}
	sent atomic.Uint64
}

func newFlooder(b *testing.B, ns string, ifindex int, frame []byte) *flooder {
	const batch = 64
	f := &flooder{
		fd:   packetSender(b, ns, ifindex),
		msgs: make([]unix.Mmsghdr, batch),
		iovs: make([]unix.Iovec, batch),
		keep: frame,
	}
	for i := range f.msgs {
		f.iovs[i].Base = &frame[0]
		f.iovs[i].SetLen(len(frame))
		f.msgs[i].Hdr.Iov = &f.iovs[i]
		f.msgs[i].Hdr.SetIovlen(1)
	}
	return f
}

func (f *flooder) start() {
	f.stop.Store(false)
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for !f.stop.Load() {
			// A full queue answers ENOBUFS; the point is only to keep
			// the tap busy, so failures are simply retried.
			n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(f.fd),
				uintptr(unsafe.Pointer(&f.msgs[0])), uintptr(len(f.msgs)), 0, 0, 0)
			if errno == 0 {
				f.sent.Add(uint64(n))
			}
		}
	}()
}

func (f *flooder) halt() {
	f.stop.Store(true)
	<-f.done
}

// drain empties the tap between runs so each starts from the same state.
func drain(fd int) {
	buf := make([]byte, MaxFrameLen)
	for {
		if _, err := unix.Read(fd, buf); err == unix.EAGAIN || err == unix.EBADFD {
			return
		}
	}
}

// plainRead is the ceiling: a bare blocking read(2) loop on a locked thread,
// no batching, no timestamps. It returns the time to read n flooded frames.
func plainRead(d *Device, flood *flooder, n int) time.Duration {
	fd := d.tapFD
	unix.SetNonblock(fd, false)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, MaxFrameLen)
	flood.start()
	begin := time.Now()
	for got := 0; got < n; {
		if _, err := unix.Read(fd, buf); err == nil {
			got++
		}
	}
	elapsed := time.Since(begin)
	flood.halt()
	unix.SetNonblock(fd, true)
	drain(fd)
	return elapsed
}

// readerRead reads n flooded frames with a Reader and returns the time and
// the reader's counters.
func readerRead(b *testing.B, d *Device, flood *flooder, n int, timed bool, src Source) (time.Duration, ReaderStats) {
	target := uint64(n)
	var count uint64
	reached := make(chan struct{})
	r := d.NewReader(ReaderOptions{Source: src}, func(batch *Batch) {
		before := count
		count += uint64(len(batch.Frames))
		if before < target && count >= target {
			close(reached)
		}
	})
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run() }()
	for r.Stats().Waits == 0 {
		time.Sleep(time.Millisecond)
	}
	flood.start()
	if timed {
		b.ResetTimer()
		b.StartTimer()
	}
	begin := time.Now()
	<-reached
	elapsed := time.Since(begin)
	if timed {
		b.StopTimer()
	}
	flood.halt()
	r.Stop()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	drain(d.tapFD)
	return elapsed, r.Stats()
}

// BenchmarkReader reads 64-byte frames that an AF_PACKET flooder inside the
// namespace transmits on the tap; one op is one frame.
//
// "baseline" is plainRead alone. "Reader" is this package's reader; for a
// ratio that means something on a noisy shared machine, every Reader run
// is paired with a plainRead of the same number of frames right before it,
// reported as x-baseline (Reader rate / plain rate, 1.0 = as fast as the
// bare loop).
func BenchmarkReader(b *testing.B) {
	ns := quietNetns(b)
	d := openTap(b, Config{Name: testenv.UniqueName("tapbm"), Netns: ns, TxQueueLen: 10000})
	flood := newFlooder(b, ns, d.Index(), udpFrame(b, 64, 1))

	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		elapsed := plainRead(d, flood, b.N)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	})

	for _, src := range []Source{SourceRead, SourceRing, SourceEgress} {
		b.Run("Reader-"+src.String(), func(b *testing.B) {
			b.StopTimer()
			plain := plainRead(d, flood, b.N)
			b.ReportAllocs()
			elapsed, s := readerRead(b, d, flood, b.N, true, src)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
			b.ReportMetric(plain.Seconds()/elapsed.Seconds(), "x-baseline")
			b.ReportMetric(float64(s.Frames)/float64(max(s.Batches, 1)), "frames/batch")
			if s.PoolMisses != 0 {
				b.Errorf("PoolMisses = %d in steady state", s.PoolMisses)
			}
		})
	}
}
