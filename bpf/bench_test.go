package bpf

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bpffs/bpffs/bpf/filter"
)

// inputRig is an interface with n attached descriptors that a benchmark or
// an allocation test feeds frames through, draining the buffers as a reader
// would so that every packet is really captured (drops are cheaper).
type inputRig struct {
	ifp   *Interface
	descs []*Descriptor
	frame []byte
	wall  int64
	sent  int
}

const rigBufSize = 1 << 19

func newInputRig(tb testing.TB, n int, prog *filter.Program) *inputRig {
	tb.Helper()
	ifp := NewInterface("tap0", 1500, testAddr, &fakeTx{})
	reg := NewRegistry()
	if err := reg.Add(ifp); err != nil {
		tb.Fatal(err)
	}
	rig := &inputRig{ifp: ifp, frame: udpFrame(64, 9), wall: time.Now().UnixNano()}
	for range n {
		d := NewDescriptor(&Config{Registry: reg, MaxBufSize: rigBufSize}, Owner{CanRead: true}, func() {})
		tb.Cleanup(d.Close)
		if _, err := d.SetBufLen(rigBufSize); err != nil {
			tb.Fatal(err)
		}
		if err := d.Attach("tap0"); err != nil {
			tb.Fatal(err)
		}
		d.SetReadFilter(prog, true)
		rig.descs = append(rig.descs, d)
	}
	return rig
}

func discard([]byte) error { return nil }

// packet delivers one frame; every 256 frames it ends the batch, and before
// the buffers can fill it reads them out (the hold buffer would otherwise
// turn every later packet into a drop).
func (r *inputRig) packet() {
	r.ifp.Input(r.frame, r.wall)
	r.sent++
	if r.sent%256 == 0 {
		r.ifp.EndBatch()
	}
	r.drainEvery4096(1)
}

// drainEvery4096 reads every descriptor empty when the last n frames crossed
// a multiple of 4096.
func (r *inputRig) drainEvery4096(n int) {
	if r.sent/4096 == (r.sent-n)/4096 {
		return
	}
	for _, d := range r.descs {
		for {
			if _, err := d.Read(context.Background(), rigBufSize, true, discard); err != nil {
				break
			}
		}
	}
}

// batch delivers rigBatch frames with InputBatch, as the daemon's tap
// handler does, and drains like packet.
func (r *inputRig) batch() {
	frame, wall := r.frame, r.wall
	r.ifp.InputBatch(rigBatch, func(int) ([]byte, int64) { return frame, wall })
	r.ifp.EndBatch()
	r.sent += rigBatch
	r.drainEvery4096(rigBatch)
}

const rigBatch = 64

func TestInputDoesNotAllocate(t *testing.T) {
	prog := mustCompile(t, udpPort9)
	for _, n := range []int{1, 16} {
		for _, p := range []*filter.Program{nil, prog} {
			rig := newInputRig(t, n, p)
			for range 8192 { // warm up: every buffer rotated and read once
				rig.packet()
			}
			allocs := testing.AllocsPerRun(20000, rig.packet)
			if allocs != 0 {
				t.Errorf("%d descriptors, filter %v: %.3f allocations per packet, want 0", n, p != nil, allocs)
			}
			if allocs := testing.AllocsPerRun(2000, rig.batch); allocs != 0 {
				t.Errorf("%d descriptors, filter %v: %.3f allocations per batch of %d, want 0", n, p != nil, allocs, rigBatch)
			}
			for _, d := range rig.descs {
				s := d.Stats()
				checkInvariant(t, s)
				if s.Drop != 0 || s.Captured == 0 {
					t.Fatalf("rig did not capture cleanly: %+v", s)
				}
			}
		}
	}
}

func TestWriteDoesNotAllocate(t *testing.T) {
	tb := newTestBed(t)
	listener, _ := tb.attached(rigBufSize)
	w, _ := tb.open(false)
	if err := w.Attach("tap0"); err != nil {
		t.Fatal(err)
	}
	tx := &countingTx{}
	tb.ifp.tx = tx
	f := udpFrame(64, 9)
	write := func() {
		if _, err := w.Write(f); err != nil {
			t.Fatal(err)
		}
		if listener.ReadableBytes() > rigBufSize/2 {
			listener.Flush()
		}
	}
	write()
	if allocs := testing.AllocsPerRun(1000, write); allocs != 0 {
		t.Fatalf("%.3f allocations per write, want 0", allocs)
	}
}

type countingTx struct{ n int }

func (c *countingTx) Transmit([]byte) error { c.n++; return nil }

// baselineNs is the per-packet cost of the irreducible work, measured first
// in the same run: writing a 32-byte header and copying the frame into a
// buffer once per descriptor.
var baselineNs = map[int]float64{}

func benchBaseline(b *testing.B, n int) {
	frame := udpFrame(64, 9)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, rigBufSize)
	}
	var hdr [HdrSize]byte
	off := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if off+128 > rigBufSize {
			off = 0
		}
		for _, buf := range bufs {
			copy(buf[off:], hdr[:])
			copy(buf[off+recordHdrLen:], frame)
		}
		off += 96
	}
	b.StopTimer()
	baselineNs[n] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}

// benchRig feeds b.N frames, perStep per call of step, through a rig of n
// descriptors and reports the time per descriptor and packet.
func benchRig(b *testing.B, n int, p *filter.Program, perStep int, step func(*inputRig)) {
	rig := newInputRig(b, n, p)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perStep {
		step(rig)
	}
	b.StopTimer()
	perPacket := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perPacket/float64(n), "ns/desc-pkt")
	if base := baselineNs[n]; base > 0 {
		b.ReportMetric(perPacket/base, "x-baseline")
	}
	for _, d := range rig.descs {
		if s := d.Stats(); s.Drop != 0 {
			b.Fatalf("drops in the benchmark: %+v", s)
		}
	}
}

// BenchmarkInput measures Interface.Input per packet (64-byte UDP frames,
// every packet captured by every descriptor), and reports the ratio to the
// copy-only baseline of the same descriptor count.
func BenchmarkInput(b *testing.B) {
	prog, err := filter.Compile(udpPort9)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("baseline-copy/%ddesc", n), func(b *testing.B) { benchBaseline(b, n) })
		for _, withFilter := range []bool{false, true} {
			name := fmt.Sprintf("%ddesc", n)
			p := (*filter.Program)(nil)
			if withFilter {
				name += "/filter"
				p = prog
			}
			b.Run(name+"/batch", func(b *testing.B) { benchRig(b, n, p, rigBatch, (*inputRig).batch) })
			b.Run(name, func(b *testing.B) { benchRig(b, n, p, 1, (*inputRig).packet) })
		}
	}
}
