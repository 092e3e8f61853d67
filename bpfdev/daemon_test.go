package bpfdev

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/daemontest"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// openAttached opens the daemon's cloning node, lets setup configure the
// device before it attaches to the first tap, and closes it at the end.
func openAttached(t testing.TB, d *daemontest.Daemon, setup func(*Device)) *Device {
	t.Helper()
	dev, err := Open(d.Node("bpf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if setup != nil {
		setup(dev)
	}
	if err := dev.Attach(d.Taps[0]); err != nil {
		t.Fatal(err)
	}
	return dev
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeviceConfiguration(t *testing.T) {
	d := daemontest.Start(t, 1)
	dev, err := Open(d.Node("bpf"))
	must(t, err)
	defer dev.Close()

	if major, minor, err := dev.Version(); err != nil || major != 1 || minor != 1 {
		t.Fatalf("Version: %d.%d, %v", major, minor, err)
	}
	if _, err := dev.DLT(); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("DLT before attaching: %v, want EINVAL", err)
	}
	err = dev.Attach("no-such-tap")
	var derr *Error
	if !errors.Is(err, unix.ENXIO) || !errors.As(err, &derr) || derr.Op != "BIOCSETIF" {
		t.Fatalf("Attach to an unknown interface: %v, want ENXIO from BIOCSETIF", err)
	}
	if err := dev.Attach("this-name-is-far-too-long"); err == nil {
		t.Fatal("Attach accepted a name longer than IFNAMSIZ")
	}
	granted, err := dev.SetBufferSize(65536)
	if err != nil || granted != 65536 {
		t.Fatalf("SetBufferSize: %d, %v", granted, err)
	}
	if n, err := dev.BufferSize(); err != nil || n != granted {
		t.Fatalf("BufferSize: %d, %v", n, err)
	}
	if _, err := dev.SetBufferSize(-1); err == nil {
		t.Fatal("SetBufferSize(-1) accepted")
	}
	must(t, dev.Attach(d.Taps[0]))
	if name, err := dev.Interface(); err != nil || name != d.Taps[0] {
		t.Fatalf("Interface: %q, %v", name, err)
	}
	if _, err := dev.SetBufferSize(4096); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("SetBufferSize after Attach: %v, want EINVAL", err)
	}
	if dlt, err := dev.DLT(); err != nil || dlt != 1 {
		t.Fatalf("DLT: %d, %v", dlt, err)
	}
	if lt, err := dev.LinkType(); err != nil || lt != layers.LinkTypeEthernet {
		t.Fatalf("LinkType: %v, %v", lt, err)
	}
	if list, err := dev.DLTList(); err != nil || !slices.Equal(list, []uint32{1}) {
		t.Fatalf("DLTList: %v, %v", list, err)
	}
	must(t, dev.SetTimeout(1500*time.Millisecond))
	if to, err := dev.Timeout(); err != nil || to != 1500*time.Millisecond {
		t.Fatalf("Timeout: %v, %v", to, err)
	}
	if err := dev.SetTimeout(-time.Second); err == nil {
		t.Fatal("a negative timeout was accepted")
	}
	must(t, dev.SetDirection(In))
	if dir, err := dev.Direction(); err != nil || dir != In {
		t.Fatalf("Direction: %v, %v", dir, err)
	}
	if err := dev.SetDirection(Direction(7)); err == nil {
		t.Fatal("direction 7 accepted")
	}
	must(t, dev.SetTimestamp(TimestampNano|TimestampMonotonic))
	if ts, err := dev.Timestamp(); err != nil || ts != TimestampNano|TimestampMonotonic {
		t.Fatalf("Timestamp: %#x, %v", ts, err)
	}
	if err := dev.SetTimestamp(TimestampNone | TimestampFast); err == nil {
		t.Fatal("an invalid timestamp type was accepted")
	}
	must(t, dev.SetImmediate(true))
	must(t, dev.SetHeaderComplete(true))
	must(t, dev.SetFeedback(false))
	must(t, dev.Promisc())
	must(t, dev.SetFilter([]bpf.Instruction{bpf.RetConstant{Val: 0xffff}}))
	if err := dev.SetFilter([]bpf.Instruction{bpf.Jump{Skip: 5}}); err == nil {
		t.Fatal("a program jumping out of itself was accepted")
	}
	if err := dev.SetFilterRaw(make([]bpf.RawInstruction, 513)); err == nil {
		t.Fatal("a program of 513 instructions was accepted")
	}
	must(t, dev.SetFilterRaw(nil))
	must(t, dev.SetWriteFilter([]bpf.Instruction{bpf.RetConstant{Val: 0xffffffff}}))
	must(t, dev.Flush())
	if recv, drop, err := dev.Stats(); err != nil || recv != 0 || drop != 0 {
		t.Fatalf("Stats after Flush: %d %d %v", recv, drop, err)
	}
	if n, err := dev.ReadableBytes(); err != nil || n != 0 {
		t.Fatalf("ReadableBytes: %d, %v", n, err)
	}
	if err := dev.WritePacket(nil); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("WritePacket(nil): %v", err)
	}
	must(t, dev.Lock())
	if err := dev.SetDirection(InOut); !errors.Is(err, unix.EPERM) {
		t.Fatalf("SetDirection when locked: %v, want EPERM", err)
	}
	must(t, dev.SetImmediate(false)) // allowed when locked
	must(t, dev.Close())
	if _, err := dev.BufferSize(); !errors.Is(err, ErrClosed) {
		t.Fatalf("BufferSize after Close: %v, want ErrClosed", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("/nonexistent/bpf"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a missing node: %v", err)
	}
	saved := DefaultPaths
	DefaultPaths = []string{"/nonexistent/a", "/nonexistent/b"}
	defer func() { DefaultPaths = saved }()
	if _, err := OpenFirst(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenFirst with no device: %v", err)
	}
}

// udpPayloads decodes every frame into UDP payloads sent to port 9.
func udpPayload(t testing.TB, frame []byte) []byte {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.NoCopy)
	udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok || udp.DstPort != 9 {
		return nil
	}
	return udp.Payload
}

type packetReader interface {
	Next() ([]byte, gopacket.CaptureInfo, error)
	NextContext(ctx context.Context) ([]byte, gopacket.CaptureInfo, error)
	SetReadDeadline(t time.Time) error
	gopacket.PacketDataSource
	LinkType() layers.LinkType
}

// newReaders opens a device of each kind on the daemon's first tap.
var newReaders = map[string]func(t testing.TB, d *daemontest.Daemon, setup func(*Device)) packetReader{
	"buffered": func(t testing.TB, d *daemontest.Daemon, setup func(*Device)) packetReader {
		dev := openAttached(t, d, func(dev *Device) {
			if _, err := dev.SetBufferSize(256 << 10); err != nil {
				t.Fatal(err)
			}
			if setup != nil {
				setup(dev)
			}
		})
		r, err := NewReader(dev)
		if err != nil {
			t.Fatal(err)
		}
		return r
	},
	"zerocopy": func(t testing.TB, d *daemontest.Daemon, setup func(*Device)) packetReader {
		var z *ZeroCopyReader
		openAttached(t, d, func(dev *Device) {
			var err error
			if z, err = NewZeroCopyReader(dev, 256<<10); err != nil {
				t.Fatal(err)
			}
			if setup != nil {
				setup(dev)
			}
		})
		return z
	},
}

func immediate(dev *Device) {
	if err := dev.SetImmediate(true); err != nil {
		panic(err)
	}
}

func TestCaptureUDP(t *testing.T) {
	for _, kind := range []string{"buffered", "zerocopy"} {
		for _, format := range []TimestampType{TimestampMicro, TimestampNano, TimestampBintime} {
			t.Run(kind+"/"+format.String(), func(t *testing.T) {
				d := daemontest.Start(t, 1)
				r := newReaders[kind](t, d, func(dev *Device) {
					immediate(dev)
					must(t, dev.SetTimestamp(format))
				})
				before := time.Now()
				sent := d.SendUDP(200, 700)
				after := time.Now()
				r.SetReadDeadline(time.Now().Add(20 * time.Second))
				for i := 0; i < len(sent); {
					frame, ci, err := r.Next()
					if err != nil {
						t.Fatalf("after %d datagrams: %v", i, err)
					}
					if ci.CaptureLength != len(frame) || ci.Length != len(frame) {
						t.Fatalf("capture info %+v for %d bytes", ci, len(frame))
					}
					if ci.Timestamp.Before(before.Add(-time.Second)) || ci.Timestamp.After(after.Add(time.Second)) {
						t.Fatalf("timestamp %v outside the sending time %v … %v", ci.Timestamp, before, after)
					}
					payload := udpPayload(t, frame)
					if payload == nil {
						continue
					}
					if !bytes.Equal(payload, sent[i]) {
						t.Fatalf("datagram %d differs: %q…", i, payload[:min(len(payload), 12)])
					}
					i++
				}
			})
		}
	}
}

func TestPacketSourceDecodesUDP(t *testing.T) {
	for kind, open := range newReaders {
		t.Run(kind, func(t *testing.T) {
			d := daemontest.Start(t, 1)
			r := open(t, d, immediate)
			sent := d.SendUDP(20, 100)
			src := gopacket.NewPacketSource(r, r.LinkType())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got := 0
			for p := range src.PacketsCtx(ctx) {
				udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if !ok {
					continue
				}
				ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if ip.SrcIP.String() != daemontest.HostIP || ip.DstIP.String() != daemontest.FarIP || udp.DstPort != 9 {
					t.Fatalf("unexpected datagram %v:%d > %v:%d", ip.SrcIP, udp.SrcPort, ip.DstIP, udp.DstPort)
				}
				if !bytes.Equal(udp.Payload, sent[got]) {
					t.Fatalf("datagram %d differs", got)
				}
				if got++; got == len(sent) {
					break
				}
			}
			if got != len(sent) {
				t.Fatalf("decoded %d of %d datagrams", got, len(sent))
			}
			// Closing ends the source: ReadPacketData says io.EOF.
			r.(io.Closer).Close()
			if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
				t.Fatalf("ReadPacketData after Close: %v", err)
			}
		})
	}
}

func TestNextReleasedOnDevice(t *testing.T) {
	for kind, open := range newReaders {
		t.Run(kind, func(t *testing.T) {
			d := daemontest.Start(t, 1)
			r := open(t, d, immediate)
			testRelease(t, r)
			// Still usable afterwards.
			r.SetReadDeadline(time.Now().Add(20 * time.Second))
			sent := d.SendUDP(1, 64)
			for {
				frame, _, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				if p := udpPayload(t, frame); p != nil {
					if !bytes.Equal(p, sent[0]) {
						t.Fatal("wrong datagram")
					}
					break
				}
			}
		})
	}
}

// Without immediate mode, the read timeout hands over a partly filled
// buffer, and with SetTimeoutError an empty one gives ErrTimeout.
func TestReadTimeout(t *testing.T) {
	for kind, open := range newReaders {
		t.Run(kind, func(t *testing.T) {
			d := daemontest.Start(t, 1)
			r := open(t, d, func(dev *Device) { must(t, dev.SetTimeout(50*time.Millisecond)) })
			r.(interface{ SetTimeoutError(bool) }).SetTimeoutError(true)
			r.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, _, err := r.Next(); !errors.Is(err, ErrTimeout) {
				t.Fatalf("Next on a quiet interface: %v, want ErrTimeout", err)
			}
			sent := d.SendUDP(3, 64)
			for i := 0; i < len(sent); {
				frame, _, err := r.Next()
				if errors.Is(err, ErrTimeout) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if p := udpPayload(t, frame); p != nil {
					if !bytes.Equal(p, sent[i]) {
						t.Fatalf("datagram %d differs", i)
					}
					i++
				}
			}
		})
	}
}

// A frame written through one descriptor is seen as outgoing by another.
func TestWritePacket(t *testing.T) {
	d := daemontest.Start(t, 1)
	watcher := openAttached(t, d, func(dev *Device) {
		immediate(dev)
		must(t, dev.SetDirection(Out))
	})
	r, err := NewReader(watcher)
	must(t, err)
	writer := openAttached(t, d, nil)
	must(t, writer.SetHeaderComplete(true))
	frame := make([]byte, 60)
	copy(frame[0:6], d.TapMAC(d.Taps[0]))
	copy(frame[6:12], d.EmulatedMAC(d.Taps[0]))
	frame[12], frame[13] = 0x88, 0xb5 // local experimental EtherType
	copy(frame[14:], "bpfdev write test")
	must(t, writer.WritePacket(frame))
	r.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, _, err := r.Next()
	if err != nil || !bytes.Equal(got, frame) {
		t.Fatalf("written frame seen as %x, %v", got, err)
	}
	must(t, writer.SetWriteFilter([]bpf.Instruction{bpf.RetConstant{Val: 0}}))
	if err := writer.WritePacket(frame); !errors.Is(err, unix.EPERM) {
		t.Fatalf("a frame the write filter rejects: %v, want EPERM", err)
	}
}

func TestZeroCopyConfiguration(t *testing.T) {
	d := daemontest.Start(t, 1)
	dev, err := Open(d.Node("bpf"))
	must(t, err)
	defer dev.Close()
	z, err := NewZeroCopyReader(dev, 10000)
	must(t, err)
	page := os.Getpagesize()
	if z.BufferSize()%page != 0 || z.BufferSize() < 10000 {
		t.Fatalf("buffer of %d bytes for 10000 asked", z.BufferSize())
	}
	if n, err := dev.BufferSize(); err != nil || n != z.BufferSize()-32 {
		t.Fatalf("BIOCGBLEN in zero-copy mode: %d, %v (buffers of %d)", n, err, z.BufferSize())
	}
	if mode, err := dev.bufferMode(); err != nil || mode != 2 {
		t.Fatalf("buffer mode %d, %v", mode, err)
	}
	// A second reader on the same descriptor is refused: buffers exist.
	if _, err := NewZeroCopyReader(dev, 0); err == nil {
		t.Fatal("a second set of zero-copy buffers was accepted")
	}
	if _, err := dev.SetBufferSize(4096); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("SetBufferSize in zero-copy mode: %v, want EOPNOTSUPP", err)
	}
	must(t, dev.Attach(d.Taps[0]))
	// The daemon maps the very pages of the buffers.
	if lines := d.StatsLines(); len(lines) != 1 || !strings.Contains(lines[0], "zbuf-shm") {
		t.Fatalf("stats: %q, want one zbuf-shm descriptor", lines)
	}
	must(t, z.Close())
	if _, _, err := z.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	// An attached device cannot switch modes.
	dev2 := openAttached(t, d, nil)
	if _, err := NewZeroCopyReader(dev2, 0); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("zero-copy after Attach: %v, want EBUSY", err)
	}
}
