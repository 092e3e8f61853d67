//go:build linux

package tap

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestOpenCreatesTapInNetns(t *testing.T) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapc")
	d, err := Open(Config{Name: name, Netns: ns, TxQueueLen: 10000})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			d.Close()
		}
	})

	if !d.Created() {
		t.Error("Created() = false for a new tap")
	}
	if d.Name() != name {
		t.Errorf("Name() = %q, want %q", d.Name(), name)
	}
	line, ok := linkShow(ns, name)
	if !ok {
		t.Fatalf("tap %s not visible in netns %s: %s", name, ns, line)
	}
	if _, inHost := linkShowHost(name); inHost {
		t.Errorf("tap %s appeared in the test's own namespace", name)
	}
	if !strings.HasPrefix(line, fmt.Sprintf("%d: %s:", d.Index(), name)) {
		t.Errorf("Index() = %d, ip link says %q", d.Index(), line)
	}
	mustContain(t, line, "qlen 10000", "txqueuelen")
	mustContain(t, line, ",UP", "a created tap is brought up")

	mac, err := d.HardwareAddr()
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, line, "link/ether "+mac.String(), "HardwareAddr")

	mtu, err := d.MTU()
	if err != nil || mtu != 1500 {
		t.Errorf("MTU() = %d, %v; want 1500", mtu, err)
	}
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "mtu", "1400")
	if mtu, err = d.MTU(); err != nil || mtu != 1400 {
		t.Errorf("after ip link set mtu 1400: MTU() = %d, %v", mtu, err)
	}

	// Queries follow the tap across a rename.
	renamed := testenv.UniqueName("tapr")
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "down")
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "name", renamed)
	if mtu, err = d.MTU(); err != nil || mtu != 1400 {
		t.Errorf("after rename: MTU() = %d, %v", mtu, err)
	}

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed = true
	if out, exists := linkShow(ns, renamed); exists {
		t.Errorf("created tap still exists after Close: %s", out)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := d.MTU(); !errors.Is(err, ErrClosed) {
		t.Errorf("MTU after Close: %v, want ErrClosed", err)
	}
	if err := d.WriteFrame(make([]byte, 60)); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteFrame after Close: %v, want ErrClosed", err)
	}
	if err := d.NewReader(ReaderOptions{}, func(*Batch) {}).Run(); !errors.Is(err, ErrClosed) {
		t.Errorf("Run of a reader made after Close: %v, want ErrClosed", err)
	}
}

func linkShowHost(name string) (string, bool) {
	return linkShow("", name)
}

func TestOpenNetnsByAbsolutePath(t *testing.T) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapp")
	openTap(t, Config{Name: name, Netns: filepath.Join("/run/netns", ns)})
	if out, ok := linkShow(ns, name); !ok {
		t.Fatalf("tap not in %s: %s", ns, out)
	}
}

// Netns "" means the caller's namespace. To keep the host's namespace free of
// test interfaces, the caller here is a thread moved into a test namespace.
func TestOpenInCallersNamespace(t *testing.T) {
	ns := quietNetns(t)
	nsFD, err := openNetns(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsFD)
	name := testenv.UniqueName("tapo")
	var d *Device
	if err := inNetns(nsFD, func() (err error) {
		d, err = Open(Config{Name: name})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !d.Created() {
		t.Error("Created() = false")
	}
	if out, ok := linkShow(ns, name); !ok {
		d.Close()
		t.Fatalf("tap not in the caller's namespace: %s", out)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := linkShow(ns, name); ok {
		t.Error("tap still exists after Close")
	}
}

func TestAttachPersistentTapLeavesItAtClose(t *testing.T) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapk")
	testenv.MustRun(t, "ip", "-n", ns, "tuntap", "add", "mode", "tap", "name", name)

	d, err := Open(Config{Name: name, Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	if d.Created() {
		t.Error("Created() = true for an existing persistent tap")
	}
	line, _ := linkShow(ns, name)
	if strings.Contains(line, ",UP") {
		t.Errorf("Open changed the admin state of an existing tap: %s", line)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if out, ok := linkShow(ns, name); !ok {
		t.Fatalf("persistent tap vanished at Close: %s", out)
	}
	// And it can be attached again.
	again := openTap(t, Config{Name: name, Netns: ns})
	if again.Created() {
		t.Error("Created() = true on re-attach")
	}
}

func TestOpenRefusesOtherInterfaces(t *testing.T) {
	ns := quietNetns(t)
	veth := testenv.UniqueName("veth")
	bridge := testenv.UniqueName("br")
	tun := testenv.UniqueName("tun")
	testenv.MustRun(t, "ip", "-n", ns, "link", "add", veth, "type", "veth", "peer", "name", veth+"p")
	testenv.MustRun(t, "ip", "-n", ns, "link", "add", bridge, "type", "bridge")
	testenv.MustRun(t, "ip", "-n", ns, "tuntap", "add", "mode", "tun", "name", tun)
	names := []string{veth, veth + "p", bridge, tun, "lo"}
	// Some kernels (this project's VM among them) are built without the
	// dummy driver; test it where it exists.
	dummy := testenv.UniqueName("dum")
	if out, err := exec.Command("ip", "-n", ns, "link", "add", dummy, "type", "dummy").CombinedOutput(); err == nil {
		names = append(names, dummy)
	} else {
		t.Logf("no dummy interface on this kernel (%s); veth, bridge, tun and lo cover the case", strings.TrimSpace(string(out)))
	}

	for _, name := range names {
		before, _ := linkShow(ns, name)
		d, err := Open(Config{Name: name, Netns: ns, TxQueueLen: 4242})
		if err == nil {
			d.Close()
			t.Errorf("Open(%s) succeeded", name)
			continue
		}
		if !errors.Is(err, ErrNotTap) {
			t.Errorf("Open(%s) = %v, want ErrNotTap", name, err)
		}
		if after, ok := linkShow(ns, name); !ok || after != before {
			t.Errorf("Open(%s) changed the interface:\nbefore %s\nafter  %s", name, before, after)
		}
	}
}

func TestOpenBusy(t *testing.T) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapb")
	first := openTap(t, Config{Name: name, Netns: ns})

	_, err := Open(Config{Name: name, Netns: ns})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second Open = %v, want ErrBusy", err)
	}
	if _, err := first.MTU(); err != nil {
		t.Errorf("the first Device suffered from the refused second Open: %v", err)
	}

	// A persistent tap held by another process (here another file) too.
	persistent := testenv.UniqueName("tapq")
	testenv.MustRun(t, "ip", "-n", ns, "tuntap", "add", "mode", "tap", "name", persistent)
	openTap(t, Config{Name: persistent, Netns: ns})
	if _, err := Open(Config{Name: persistent, Netns: ns}); !errors.Is(err, ErrBusy) {
		t.Errorf("Open of an attached persistent tap = %v, want ErrBusy", err)
	}
}

func TestOpenNoNetns(t *testing.T) {
	testenv.RequireTUN(t)
	for _, netns := range []string{
		testenv.UniqueName("nonens"),
		"/nonexistent/netns",
		"/etc/hostname",     // a file, not a namespace
		"/proc/self/ns/uts", // a namespace of another kind
		"a/b",               // neither a name nor an absolute path
		"..",
	} {
		d, err := Open(Config{Name: testenv.UniqueName("tapn"), Netns: netns})
		if err == nil {
			d.Close()
			t.Errorf("Open in netns %q succeeded", netns)
			continue
		}
		if !errors.Is(err, ErrNoNetns) {
			t.Errorf("Open in netns %q = %v, want ErrNoNetns", netns, err)
		}
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	testenv.RequireTUN(t)
	for _, cfg := range []Config{
		{Name: ""},
		{Name: "0123456789abcdef"},
		{Name: "a/b"},
		{Name: "a:b"},
		{Name: "tap%d"},
		{Name: "a b"},
		{Name: ".."},
		{Name: testenv.UniqueName("tapi"), TxQueueLen: -1},
	} {
		d, err := Open(cfg)
		if err == nil {
			d.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", cfg, err)
		}
		if cfg.Name != "" && !strings.ContainsAny(cfg.Name, "/ ") {
			if _, ok := linkShowHost(cfg.Name); ok {
				t.Errorf("Open(%+v) failed but left an interface behind", cfg)
			}
		}
	}
}

func TestWriteFrameRejectsRunt(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapw"), Netns: ns})
	for _, n := range []int{0, 1, 13} {
		if err := d.WriteFrame(make([]byte, n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("WriteFrame(%d bytes) = %v, want ErrInvalid", n, err)
		}
	}
}

// A multi-queue tap cannot be attached as a single queue: a clear error that
// is neither ErrNotTap nor ErrBusy, and the tap stays as it was.
func TestOpenRefusesMultiQueueTap(t *testing.T) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapm")
	testenv.MustRun(t, "ip", "-n", ns, "tuntap", "add", "mode", "tap", "multi_queue", "name", name)
	before, _ := linkShow(ns, name)
	d, err := Open(Config{Name: name, Netns: ns})
	if err == nil {
		d.Close()
		t.Fatal("Open of a multi-queue tap succeeded")
	}
	if errors.Is(err, ErrNotTap) || errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "multi-queue") {
		t.Errorf("Open = %v", err)
	}
	if after, ok := linkShow(ns, name); !ok || after != before {
		t.Errorf("tap changed:\nbefore %s\nafter  %s", before, after)
	}
}

// A persistent tap made with vnet_hdr is attached without it: frames arrive
// bare, exactly as sent.
func TestAttachVnetHdrTapReadsBareFrames(t *testing.T) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapv")
	testenv.MustRun(t, "ip", "-n", ns, "tuntap", "add", "mode", "tap", "vnet_hdr", "name", name)
	testenv.MustRun(t, "ip", "-n", ns, "link", "set", name, "up")
	d := openTap(t, Config{Name: name, Netns: ns})
	c := startCollector(t, d, ReaderOptions{})
	frame := udpFrame(t, 80, 3)
	sender := packetSender(t, ns, d.Index())
	// The tap was up before it had a carrier, so the kernel activates its
	// queue only when the link watcher gets to it (up to a second after
	// the attach); until then transmitted frames are dropped. Resend until
	// one gets through.
	resend := time.NewTicker(50 * time.Millisecond)
	defer resend.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := unix.Write(sender, frame); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-c.frames:
			if !bytes.Equal(got, frame) {
				t.Errorf("read %x\nsent %x", got, frame)
			}
			return
		case <-resend.C:
		case <-deadline:
			t.Fatal("frame never arrived")
		}
	}
}
