package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpffs/bpffs/bpf/filter"
)

// fakeTx records what the emulated interface transmits on its tap.
type fakeTx struct {
	mu     sync.Mutex
	frames [][]byte
	err    error
}

func (tx *fakeTx) Transmit(frame []byte) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.err != nil {
		return tx.err
	}
	tx.frames = append(tx.frames, append([]byte(nil), frame...))
	return nil
}

func (tx *fakeTx) sent() [][]byte {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return append([][]byte(nil), tx.frames...)
}

var testAddr = net.HardwareAddr{0x02, 0xbf, 0xf5, 0x00, 0x00, 0x01}

// testBed is one interface in a registry plus a config to open descriptors.
type testBed struct {
	t   *testing.T
	ifp *Interface
	tx  *fakeTx
	cfg *Config
}

func newTestBed(t *testing.T) *testBed {
	t.Helper()
	tx := &fakeTx{}
	ifp := NewInterface("tap0", 1500, testAddr, tx)
	reg := NewRegistry()
	if err := reg.Add(ifp); err != nil {
		t.Fatal(err)
	}
	return &testBed{t: t, ifp: ifp, tx: tx, cfg: &Config{Registry: reg}}
}

// open returns a descriptor closed at the end of the test; wakes counts the
// wake callbacks.
func (tb *testBed) open(canRead bool) (*Descriptor, *wakeCounter) {
	tb.t.Helper()
	w := &wakeCounter{ch: make(chan struct{}, 1024)}
	d := NewDescriptor(tb.cfg, Owner{Pid: 42, CanRead: canRead}, w.wake)
	tb.t.Cleanup(d.Close)
	return d, w
}

// attached opens a readable descriptor attached to tap0 with size-byte
// buffers.
func (tb *testBed) attached(size uint32) (*Descriptor, *wakeCounter) {
	tb.t.Helper()
	d, w := tb.open(true)
	if _, err := d.SetBufLen(size); err != nil {
		tb.t.Fatalf("SetBufLen(%d): %v", size, err)
	}
	if err := d.Attach("tap0"); err != nil {
		tb.t.Fatalf("Attach: %v", err)
	}
	return d, w
}

type wakeCounter struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func (w *wakeCounter) wake() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (w *wakeCounter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// waitWake waits for one wake callback; the bound only turns a hang into a
// failure, it asserts nothing about speed.
func (w *wakeCounter) waitWake(t *testing.T) {
	t.Helper()
	select {
	case <-w.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up arrived")
	}
}

// ethFrame builds an n-byte Ethernet frame (n >= 14) whose payload bytes
// follow a pattern starting at seed, so that every frame is recognisable.
func ethFrame(n int, seed byte) []byte {
	f := make([]byte, n)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0xaa})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0xbb})
	if n >= 14 {
		binary.BigEndian.PutUint16(f[12:14], 0x88b5) // local experimental
	}
	for i := 14; i < n; i++ {
		f[i] = seed + byte(i)
	}
	return f
}

// udpFrame is a minimal Ethernet/IPv4/UDP frame to port dport, n bytes long.
func udpFrame(n int, dport uint16) []byte {
	f := make([]byte, n)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0xaa})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0xbb})
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(n-14))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], []byte{198, 18, 0, 1})
	copy(ip[16:20], []byte{198, 18, 0, 2})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:2], 40000)
	binary.BigEndian.PutUint16(udp[2:4], dport)
	binary.BigEndian.PutUint16(udp[4:6], uint16(n-34))
	return f
}

// udpPort9 is `tcpdump -dd udp and dst port 9` for Ethernet.
var udpPort9 = []filter.Instruction{
	insn(0x28, 0, 0, 0x0000000c),
	insn(0x15, 0, 4, 0x000086dd),
	insn(0x30, 0, 0, 0x00000014),
	insn(0x15, 0, 11, 0x00000011),
	insn(0x28, 0, 0, 0x00000038),
	insn(0x15, 8, 9, 0x00000009),
	insn(0x15, 0, 8, 0x00000800),
	insn(0x30, 0, 0, 0x00000017),
	insn(0x15, 0, 6, 0x00000011),
	insn(0x28, 0, 0, 0x00000014),
	insn(0x45, 4, 0, 0x00001fff),
	insn(0xb1, 0, 0, 0x0000000e),
	insn(0x48, 0, 0, 0x00000010),
	insn(0x15, 0, 1, 0x00000009),
	insn(0x6, 0, 0, 0x00040000),
	insn(0x6, 0, 0, 0x00000000),
}

func insn(code uint16, jt, jf uint8, k uint32) filter.Instruction {
	return filter.Instruction{Code: code, Jt: jt, Jf: jf, K: k}
}

func mustCompile(tb testing.TB, insns []filter.Instruction) *filter.Program {
	tb.Helper()
	p, err := filter.Compile(insns)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return p
}

// retK is the one-instruction program "ret #k".
func retK(tb testing.TB, k uint32) *filter.Program {
	return mustCompile(tb, []filter.Instruction{{Code: 0x06, K: k}})
}

// record is one parsed capture record.
type record struct {
	offset  int
	sec     int64
	sub     uint64
	caplen  uint32
	datalen uint32
	hdrlen  uint16
	data    []byte
}

// parseRecords walks a buffer as a bpf(4) consumer does and checks the
// invariants of the layout on the way: 8-byte aligned starts, zero bytes in
// the gaps, the last record ending exactly at the end of the data.
func parseRecords(t *testing.T, buf []byte) []record {
	t.Helper()
	var recs []record
	off := 0
	for off < len(buf) {
		if len(buf)-off < recordHdrLen {
			t.Fatalf("record at %d: only %d bytes left for a header", off, len(buf)-off)
		}
		h := buf[off:]
		r := record{
			offset:  off,
			sec:     int64(binary.NativeEndian.Uint64(h[0:8])),
			sub:     binary.NativeEndian.Uint64(h[8:16]),
			caplen:  binary.NativeEndian.Uint32(h[16:20]),
			datalen: binary.NativeEndian.Uint32(h[20:24]),
			hdrlen:  binary.NativeEndian.Uint16(h[24:26]),
		}
		if r.hdrlen != 26 {
			t.Fatalf("record at %d: bh_hdrlen %d, want 26", off, r.hdrlen)
		}
		end := off + int(r.hdrlen) + int(r.caplen)
		if end > len(buf) {
			t.Fatalf("record at %d: caplen %d runs past the data end %d", off, r.caplen, len(buf))
		}
		r.data = buf[off+int(r.hdrlen) : end]
		recs = append(recs, r)
		next := wordAlign(end)
		if next >= len(buf) {
			if end != len(buf) {
				t.Fatalf("last record ends at %d, data length %d (must be the unaligned end)", end, len(buf))
			}
			break
		}
		for i := end; i < next; i++ {
			if buf[i] != 0 {
				t.Fatalf("gap byte %d after record at %d is %#x, want 0", i, off, buf[i])
			}
		}
		off = next
	}
	return recs
}

// readNow does a non-blocking read and returns a copy of the buffer.
func readNow(t *testing.T, d *Descriptor) []byte {
	t.Helper()
	data, err := readWith(d, context.Background(), true)
	if err != nil {
		t.Fatalf("non-blocking Read: %v", err)
	}
	return data
}

func readWith(d *Descriptor, ctx context.Context, nonblock bool) ([]byte, error) {
	var got []byte
	calls := 0
	n, err := d.Read(ctx, int(d.BufLen()), nonblock, func(data []byte) error {
		calls++
		got = append([]byte(nil), data...)
		return nil
	})
	if err != nil {
		if calls != 0 {
			return nil, errors.New("deliver called on a failed read")
		}
		return nil, err
	}
	if n > 0 && (calls != 1 || n != len(got)) {
		return nil, errors.New("deliver not called exactly once with n bytes")
	}
	return got, nil
}

func wantErrno(t *testing.T, what string, err error, want unix.Errno) {
	t.Helper()
	if err != want {
		t.Fatalf("%s: got error %v, want %v (%d)", what, err, want, int(want))
	}
}

// checkInvariant asserts Recv == Rejected + Captured + Drop.
func checkInvariant(t *testing.T, s Stats) {
	t.Helper()
	if s.Recv != s.Rejected+s.Captured+s.Drop {
		t.Fatalf("stats %+v: Recv != Rejected + Captured + Drop", s)
	}
}
