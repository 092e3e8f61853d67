//go:build linux

package tap

import (
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

var (
	hostIP   = net.IPv4(198, 18, 0, 1).To4() // the Linux side of the tap
	peerIP   = net.IPv4(198, 18, 0, 2).To4() // the emulated station behind the tap
	peerMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
)

// quietNetns is a fresh namespace without IPv6, so the only frames on its
// taps are the ones a test causes (no router solicitations, no MLD).
func quietNetns(t testing.TB) string {
	t.Helper()
	ns := testenv.NewNetns(t)
	testenv.InNetns(t, ns, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

func openTap(t testing.TB, cfg Config) *Device {
	t.Helper()
	d, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// linkShow returns `ip -o link show` for name in ns, and whether it exists.
func linkShow(ns, name string) (string, bool) {
	args := []string{"-o", "link", "show", "dev", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err == nil
}

// addressTap gives the tap 198.18.0.1/24 and a permanent neighbour
// 198.18.0.2 at 02:00:00:00:00:02, so the stack sends to the peer at once.
func addressTap(t testing.TB, ns, name string) {
	t.Helper()
	testenv.MustRun(t, "ip", "-n", ns, "addr", "add", "198.18.0.1/24", "dev", name)
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "up")
	testenv.MustRun(t, "ip", "-n", ns, "neigh", "replace", "198.18.0.2",
		"lladdr", peerMAC.String(), "dev", name, "nud", "permanent")
}

// socketIn creates a socket inside ns (a socket keeps the namespace it was
// created in) and closes it at cleanup.
func socketIn(t testing.TB, ns string, domain, typ, proto int) int {
	t.Helper()
	nsFD, err := openNetns(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsFD)
	fd := -1
	err = inNetns(nsFD, func() error {
		var err error
		fd, err = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		t.Fatalf("socket in %s: %v", ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// packetSender is an AF_PACKET socket that transmits frames out of the tap
// from the Linux side, so they arrive on the tap's fd. Protocol 0 keeps it
// from receiving anything.
func packetSender(t testing.TB, ns string, ifindex int) int {
	t.Helper()
	fd := socketIn(t, ns, unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		t.Fatalf("bind packet socket to ifindex %d: %v", ifindex, err)
	}
	return fd
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// udpFrame is a minimal Ethernet/IPv4/UDP frame padded to size bytes.
func udpFrame(t testing.TB, size int, seq uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: otherMAC, DstMAC: peerMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: seq, Protocol: layers.IPProtocolUDP, SrcIP: hostIP, DstIP: peerIP}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, max(0, size-14-20-8))
	return serialize(t, eth, ip, udp, gopacket.Payload(payload))
}

// collector runs a Reader and copies every frame to a channel.
type collector struct {
	r       *Reader
	frames  chan []byte
	dropped atomic.Uint64
	runErr  chan error
}

func startCollector(t testing.TB, d *Device, opts ReaderOptions) *collector {
	t.Helper()
	c := &collector{frames: make(chan []byte, 4096), runErr: make(chan error, 1)}
	c.r = d.NewReader(opts, func(b *Batch) {
		for _, f := range b.Frames {
			select {
			case c.frames <- append([]byte(nil), f.Data...):
			default:
				c.dropped.Add(1)
			}
		}
	})
	go func() { c.runErr <- c.r.Run() }()
	t.Cleanup(func() {
		c.r.Stop()
		select {
		case err := <-c.runErr:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after Stop")
		}
	})
	return c
}

// waitPacket returns the first collected frame that match accepts. The
// deadline only guards against a hang; nothing here measures time.
func (c *collector) waitPacket(t testing.TB, what string, match func(gopacket.Packet) bool) gopacket.Packet {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case data := <-c.frames:
			p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
			if match(p) {
				return p
			}
		case <-deadline:
			t.Fatalf("no frame with %s arrived", what)
		}
	}
}

func mustContain(t testing.TB, haystack, needle, what string) {
	t.Helper()
	if !strings.Contains(haystack, needle) {
		t.Errorf("%s: %q does not contain %q", what, haystack, needle)
	}
}

// forEachSource runs a reader test once per Source.
func forEachSource(t *testing.T, test func(*testing.T, Source)) {
	for _, src := range []Source{SourceRead, SourceRing, SourceEgress} {
		t.Run(src.String(), func(t *testing.T) { test(t, src) })
	}
}

// runUntilCleanup runs r and stops it at cleanup, failing on a Run error.
func runUntilCleanup(t *testing.T, r *Reader) {
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run() }()
	t.Cleanup(func() {
		r.Stop()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
