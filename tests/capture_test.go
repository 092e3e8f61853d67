package tests

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// record is one capture record as bpfcheck printed it.
type record struct {
	off, caplen, datalen, hdrlen int
	sec                          int64
	frac                         uint64
	data                         []byte
	gapZero                      bool
}

func parseRecords(t *testing.T, lines []string) (recs []record, bufLens []int) {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, "buffer len=") {
			n, _ := strconv.Atoi(strings.TrimPrefix(l, "buffer len="))
			bufLens = append(bufLens, n)
		}
		if !strings.HasPrefix(l, "rec ") {
			continue
		}
		var r record
		var data, gap string
		if _, err := fmt.Sscanf(l, "rec off=%d caplen=%d datalen=%d hdrlen=%d sec=%d frac=%d data=%s gap=%s",
			&r.off, &r.caplen, &r.datalen, &r.hdrlen, &r.sec, &r.frac, &data, &gap); err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
		r.data, _ = hex.DecodeString(data)
		r.gapZero = gap == "zero"
		recs = append(recs, r)
	}
	return recs, bufLens
}

func udpPayload(t *testing.T, frame []byte) []byte {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		t.Fatalf("captured frame is not UDP: %s", p)
	}
	return u.Payload
}

func TestCaptureRecordsByteByByte(t *testing.T) {
	e := startDaemon(t, 1)
	c := e.client("capture", e.Node("bpf"), e.Taps[0], "5", "-i", "-b", "8192")
	c.expect("ready blen=8192")
	before := time.Now()
	sent := e.SendUDP(5, 100)
	recs, bufLens := parseRecords(t, c.all())
	if len(recs) != 5 {
		t.Fatalf("got %d records, want 5", len(recs))
	}
	tapMAC := e.TapMAC(e.Taps[0])
	for i, r := range recs {
		if r.hdrlen != 26 {
			t.Errorf("record %d: hdrlen %d, want 26 (IP header 8-byte aligned)", i, r.hdrlen)
		}
		if r.off%8 != 0 {
			t.Errorf("record %d at offset %d: not 8-byte aligned", i, r.off)
		}
		if (r.off+r.hdrlen+14)%8 != 0 {
			t.Errorf("record %d: network header not aligned", i)
		}
		wantLen := 14 + 20 + 8 + 100
		if r.caplen != wantLen || r.datalen != wantLen || len(r.data) != wantLen {
			t.Errorf("record %d: caplen %d datalen %d, want %d", i, r.caplen, r.datalen, wantLen)
		}
		if !r.gapZero {
			t.Errorf("record %d: padding before the next record is not zero", i)
		}
		if !bytes.Equal(r.data[6:12], tapMAC) || !bytes.Equal(r.data[0:6], e.EmulatedMAC(e.Taps[0])) {
			t.Errorf("record %d: src %x dst %x", i, r.data[6:12], r.data[0:6])
		}
		if got := udpPayload(t, r.data); !bytes.Equal(got, sent[i]) {
			t.Errorf("record %d payload %q, want %q", i, got, sent[i])
		}
		ts := time.Unix(r.sec, int64(r.frac)*1000)
		if ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
			t.Errorf("record %d timestamp %v is not the capture time (~%v)", i, ts, before)
		}
	}
	// The length read(2) reports ends at the last record, unpadded.
	total := 0
	for _, n := range bufLens {
		total += n
	}
	last := recs[len(recs)-1]
	if bufLens[len(bufLens)-1] != last.off+last.hdrlen+last.caplen {
		t.Errorf("last buffer length %d, want the unaligned end of the last record %d", bufLens[len(bufLens)-1], last.off+last.hdrlen+last.caplen)
	}
}

// The filter's result sets the snap length, with the program translated to
// machine code (the default) and interpreted (-jit=false).
func TestCaptureSnaplenFromFilter(t *testing.T) {
	for _, jit := range []string{"true", "false"} {
		t.Run("jit="+jit, func(t *testing.T) {
			e := startDaemon(t, 1, "-jit="+jit)
			c := e.client("capture", e.Node("bpf"), e.Taps[0], "2", "-i", "-f", "snap64")
			c.expect("ready")
			e.SendUDP(2, 500)
			recs, _ := parseRecords(t, c.all())
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2", len(recs))
			}
			for _, r := range recs {
				if r.caplen != 64 || r.datalen != 14+20+8+500 {
					t.Errorf("caplen %d datalen %d, want 64 and %d", r.caplen, r.datalen, 14+20+8+500)
				}
			}
		})
	}
}

// Every timestamp format the header documents.
func TestCaptureTimestampFormats(t *testing.T) {
	e := startDaemon(t, 1)
	cases := []struct {
		name  string
		ts    int
		check func(sec int64, frac uint64) time.Time
	}{
		{"micro", 0, func(s int64, f uint64) time.Time { return time.Unix(s, int64(f)*1000) }},
		{"nano", 1, func(s int64, f uint64) time.Time { return time.Unix(s, int64(f)) }},
		{"bin", 2, func(s int64, f uint64) time.Time {
			ns := (f >> 32) * 1e9 >> 32
			return time.Unix(s, int64(ns))
		}},
		{"none", 3, nil},
		{"micro-monotonic", 0x200, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client("capture", e.Node("bpf"), e.Taps[0], "1", "-i", "-s", strconv.Itoa(tc.ts))
			c.expect("ready")
			now := time.Now()
			e.SendUDP(1, 10)
			recs, _ := parseRecords(t, c.all())
			r := recs[0]
			switch {
			case tc.ts == 3:
				if r.sec != 0 || r.frac != 0 {
					t.Fatalf("BPF_T_NONE: %d.%d, want zero", r.sec, r.frac)
				}
			case tc.ts == 0x200:
				var ts unix.Timespec
				unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
				if d := ts.Sec - r.sec; d < -2 || d > 2 {
					t.Fatalf("monotonic %d s, time since boot is %d s", r.sec, ts.Sec)
				}
			default:
				got := tc.check(r.sec, r.frac)
				if d := got.Sub(now); d < -2*time.Second || d > 2*time.Second {
					t.Fatalf("timestamp %v, now %v", got, now)
				}
			}
		})
	}
}

func TestErrnoMatrix(t *testing.T) {
	e := startDaemon(t, 1)
	got := e.client("errnos", e.Node("bpf"), e.Taps[0]).results()
	ok := "r=0 errno=0"
	fail := func(errno unix.Errno) string { return fmt.Sprintf("r=-1 errno=%d", errno) }
	want := map[string]string{
		"read-wrong-size":          fail(unix.EINVAL),
		"read-unattached":          fail(unix.ENXIO),
		"write-unattached":         fail(unix.ENXIO),
		"gdlt-unattached":          fail(unix.EINVAL),
		"getif-unattached":         fail(unix.EINVAL),
		"gdltlist-unattached":      fail(unix.EINVAL),
		"promisc-unattached":       fail(unix.EINVAL),
		"sdlt-unattached":          fail(unix.EINVAL),
		"setif-unknown":            fail(unix.ENXIO),
		"setif-unterminated":       fail(unix.ENXIO),
		"sblen-small":              "value=32",
		"sblen-huge":               "value=524288",
		"setf-513":                 fail(unix.EINVAL),
		"setf-512":                 ok,
		"setf-badop":               fail(unix.EINVAL),
		"setf-noret":               fail(unix.EINVAL),
		"setf-divzero":             fail(unix.EINVAL),
		"setf-farjump":             fail(unix.EINVAL),
		"setf-scratch16":           fail(unix.EINVAL),
		"setf-null":                fail(unix.EINVAL),
		"setf-badptr":              fail(unix.EFAULT),
		"setf-remove":              ok,
		"srtimeout-usec":           fail(unix.EINVAL),
		"srtimeout-neg":            fail(unix.EINVAL),
		"srtimeout-ok":             ok,
		"grtimeout":                "1.000500",
		"sdirection-3":             fail(unix.EINVAL),
		"ststamp-0x103":            fail(unix.EINVAL),
		"srsig-32":                 fail(unix.EINVAL),
		"svlanpcp-8":               fail(unix.EINVAL),
		"setbufmode-3":             fail(unix.EINVAL),
		"getzmax-buffer":           fail(unix.EOPNOTSUPP),
		"rotzbuf-buffer":           fail(unix.EOPNOTSUPP),
		"setzbuf-buffer":           fail(unix.EOPNOTSUPP),
		"unknown-bpf":              fail(unix.EINVAL),
		"read-nonblock-unattached": fail(unix.ENXIO),
		"setif":                    ok,
		"sblen-attached":           fail(unix.EINVAL),
		"setbufmode-attached":      fail(unix.EBUSY),
		"gdlt":                     "value=1",
		"getif":                    "name=" + e.Taps[0],
		"gdltlist-count":           "len=1",
		"gdltlist-short":           fail(unix.ENOMEM),
		"gdltlist":                 "len=1 first=1",
		"gdltlist-badptr":          fail(unix.EFAULT),
		"sdlt-other":               fail(unix.EINVAL),
		"sdlt-same":                ok,
		"promisc":                  ok,
		"write-empty":              ok,
		"write-short":              fail(unix.EMSGSIZE),
		"write-1515":               fail(unix.EMSGSIZE),
		"setwf":                    ok,
		"write-filtered":           fail(unix.EPERM),
		"setwf-remove":             ok,
		"read-nonblock":            fail(unix.EAGAIN),
		"fionread":                 "value=0",
		"read-timeout":             ok,
		"lock":                     ok,
		"locked-setf":              fail(unix.EPERM),
		"locked-sdirection":        fail(unix.EPERM),
		"locked-getbufmode":        fail(unix.EPERM),
		"locked-gblen":             ok,
		"locked-immediate":         ok,
		"locked-setif":             fail(unix.EPERM),
		"locked-flush":             ok,
		"locked-gstats":            ok,
	}
	checkResults(t, got, want)
}

func TestReadTimeoutAndImmediate(t *testing.T) {
	e := startDaemon(t, 1)
	// A timeout with nothing captured returns 0 bytes.
	c := e.client("capture", e.Node("bpf"), e.Taps[0], "0", "-t", "200")
	c.expect("ready")
	c.expect("buffer len=0")
	c.expect("timeout")
	// Without immediate mode, data waits for the timeout and then comes in
	// one buffer.
	c = e.client("capture", e.Node("bpf"), e.Taps[0], "3", "-t", "300")
	c.expect("ready")
	e.SendUDP(3, 20)
	recs, bufLens := parseRecords(t, c.all())
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	nonEmpty := 0
	for _, n := range bufLens {
		if n > 0 {
			nonEmpty++
		}
	}
	if nonEmpty != 1 {
		t.Errorf("3 small packets came in %d buffers (%v), want 1: a timed-out read returns the whole store buffer", nonEmpty, bufLens)
	}
	// Without immediate mode and without a timeout, a read returns only
	// when a buffer fills: 4096-byte buffers hold 24 records of 168 bytes
	// (26 + 142, aligned). The 25th packet rotates the first buffer to the
	// reader; the rest stay in the store buffer until it fills too (packets
	// arriving while both are full would be dropped, so the second burst
	// waits for the first read).
	c = e.client("capture", e.Node("bpf"), e.Taps[0], "48", "-b", "4096")
	c.expect("ready")
	e.SendUDP(30, 100)
	c.expect(fmt.Sprintf("buffer len=%d", 24*168))
	e.SendUDP(30, 100)
	recs, bufLens = parseRecords(t, c.all())
	if len(recs) != 48 || len(bufLens) != 1 || bufLens[0] != 24*168 {
		t.Fatalf("%d records in buffers of %v bytes, want 24 more in one of %d", len(recs), bufLens, 24*168)
	}
}

func TestPollBlocksAndWakes(t *testing.T) {
	e := startDaemon(t, 1)
	for _, mode := range []string{"immediate", "timeout"} {
		t.Run(mode, func(t *testing.T) {
			c := e.client("poll", e.Node("bpf"), e.Taps[0], mode)
			c.expect("idle r=0")
			c.expect("blocking")
			time.Sleep(100 * time.Millisecond) // not needed for correctness: poll must not return before data
			e.SendUDP(1, 10)
			c.expect("ready r=1 revents=1")
			l := c.expect("read r=")
			if l == "read r=0" || strings.HasPrefix(l, "read r=-") {
				t.Fatalf("after poll: %s", l)
			}
		})
	}
}

func TestInjectedEchoRequestIsAnswered(t *testing.T) {
	e := startDaemon(t, 1)
	tap := e.Taps[0]
	c := e.client("inject", e.Node("bpf"), tap, e.TapMAC(tap).String())
	c.expect("write r=98 errno=0")
	l := c.expect("reply ok")
	// The host answered the emulated interface's address, which the daemon
	// put in as the source (header-complete was off).
	if want := "dst=" + e.EmulatedMAC(tap).String(); !strings.Contains(l, want) {
		t.Fatalf("%s: want %s", l, want)
	}
}

func TestDescriptorsWithDirectionsAndFilters(t *testing.T) {
	e := startDaemon(t, 1)
	tap := e.Taps[0]
	// Incoming (what Linux sends), outgoing (what a writer injects), both,
	// and a filter that takes nothing we send.
	in := e.client("capture", e.Node("bpf"), tap, "3", "-i", "-d", "in")
	out := e.client("capture", e.Node("bpf"), tap, "4", "-i", "-d", "out")
	both := e.client("capture", e.Node("bpf"), tap, "7", "-i", "-d", "inout")
	for _, c := range []*client{in, out, both} {
		c.expect("ready")
	}
	e.SendUDP(3, 30)
	w := e.client("write", e.Node("bpf"), tap, "4")
	w.expect("wrote 4")
	check := func(c *client, want int, wantOut bool) {
		t.Helper()
		recs, _ := parseRecords(t, c.all())
		if len(recs) != want {
			t.Fatalf("%d records, want %d", len(recs), want)
		}
		outgoing := 0
		for _, r := range recs {
			if bytes.Equal(r.data[6:12], []byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}) {
				outgoing++
			}
		}
		if wantOut && outgoing != 4 || !wantOut && outgoing != 0 {
			t.Fatalf("%d outgoing records", outgoing)
		}
	}
	check(in, 3, false)
	check(out, 4, true)
	check(both, 7, true)
}

func TestTapDeletedWhileAttached(t *testing.T) {
	e := startDaemon(t, 2)
	gone, kept := e.Taps[0], e.Taps[1]
	c := e.client("hold", e.Node("bpf"), gone)
	c.expect("attached")
	testenv.MustRun(t, "ip", "-n", e.NS, "link", "del", gone)
	c.expect(fmt.Sprintf("read r=-1 errno=%d", unix.ENXIO))
	// The daemon keeps serving the other tap, and refuses the gone one.
	v := e.client("errnos", e.Node("bpf"), kept)
	lines := v.all()
	if !contains(lines, "setif r=0 errno=0") {
		t.Fatalf("attaching to the remaining tap failed:\n%s", strings.Join(lines, "\n"))
	}
	h := e.client("hold", e.Node("bpf"), gone)
	h.expect(fmt.Sprintf("setif errno=%d", unix.ENXIO))
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
