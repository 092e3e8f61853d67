//go:build linux

package tap

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// The stack pings the peer; the reader sees the echo requests as frames.
func TestReaderSeesStackTraffic(t *testing.T) { forEachSource(t, testReaderSeesStackTraffic) }

func testReaderSeesStackTraffic(t *testing.T, src Source) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapt")
	d := openTap(t, Config{Name: name, Netns: ns, TxQueueLen: 10000})
	addressTap(t, ns, name)
	tapMAC, err := d.HardwareAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, d, ReaderOptions{Source: src})

	icmp := socketIn(t, ns, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	const id = 0x4242
	for seq := uint16(1); seq <= 3; seq++ {
		echo := serialize(t, &layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0),
			Id:       id, Seq: seq,
		}, gopacket.Payload("bpffs tap test"))
		if err := unix.Sendto(icmp, echo, 0, &unix.SockaddrInet4{Addr: [4]byte(peerIP)}); err != nil {
			t.Fatalf("send echo %d: %v", seq, err)
		}
	}
	for seq := uint16(1); seq <= 3; seq++ {
		p := c.waitPacket(t, "ICMP echo request", func(p gopacket.Packet) bool {
			e, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			return ok && e.TypeCode.Type() == layers.ICMPv4TypeEchoRequest && e.Id == id && e.Seq == seq
		})
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !bytes.Equal(eth.SrcMAC, tapMAC) || !bytes.Equal(eth.DstMAC, peerMAC) || eth.EthernetType != layers.EthernetTypeIPv4 {
			t.Errorf("seq %d: Ethernet %s > %s type %s; want %s > %s IPv4", seq, eth.SrcMAC, eth.DstMAC, eth.EthernetType, tapMAC, peerMAC)
		}
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ip.SrcIP.Equal(hostIP) || !ip.DstIP.Equal(peerIP) {
			t.Errorf("seq %d: IPv4 %s > %s, want %s > %s", seq, ip.SrcIP, ip.DstIP, hostIP, peerIP)
		}
		if string(p.Layer(layers.LayerTypeICMPv4).LayerPayload()) != "bpffs tap test" {
			t.Errorf("seq %d: payload %q", seq, p.Layer(layers.LayerTypeICMPv4).LayerPayload())
		}
		if p.ErrorLayer() != nil {
			t.Errorf("seq %d: decode error %v", seq, p.ErrorLayer().Error())
		}
	}
	s := c.r.Stats()
	if s.Frames < 3 || s.Batches == 0 || s.Bytes < 3*42 || (src == SourceRead && s.Reads < s.Frames) {
		t.Errorf("stats do not add up: %+v", s)
	}
}

// A frame written to the tap reaches the stack, which answers it. The
// written frame is received by the stack, not transmitted on the tap, so
// neither source hands it up (the daemon reports written frames itself, as
// outgoing); the answer it does.
func TestWriteFrameReachesStack(t *testing.T) { forEachSource(t, testWriteFrameReachesStack) }

func testWriteFrameReachesStack(t *testing.T, src Source) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapj")
	d := openTap(t, Config{Name: name, Netns: ns})
	addressTap(t, ns, name)
	tapMAC, err := d.HardwareAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, d, ReaderOptions{Source: src})

	const id, seq = 0x5151, 7
	request := serialize(t,
		&layers.Ethernet{SrcMAC: peerMAC, DstMAC: tapMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: peerIP, DstIP: hostIP},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq},
		gopacket.Payload("injected"),
	)
	if err := d.WriteFrame(request); err != nil {
		t.Fatal(err)
	}
	p := c.waitPacket(t, "ICMP echo reply", func(p gopacket.Packet) bool {
		e, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ok && e.TypeCode.Type() == layers.ICMPv4TypeEchoRequest && e.Id == id {
			t.Fatal("the reader handed up the frame written to the tap")
		}
		return ok && e.TypeCode.Type() == layers.ICMPv4TypeEchoReply && e.Id == id && e.Seq == seq
	})
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !bytes.Equal(eth.DstMAC, peerMAC) || !ip.SrcIP.Equal(hostIP) || !ip.DstIP.Equal(peerIP) {
		t.Errorf("reply %s > %s, %s > %s", eth.SrcMAC, eth.DstMAC, ip.SrcIP, ip.DstIP)
	}
	if string(p.Layer(layers.LayerTypeICMPv4).LayerPayload()) != "injected" {
		t.Errorf("reply payload %q", p.Layer(layers.LayerTypeICMPv4).LayerPayload())
	}
}

// `ip link del` while Run is blocked: Run ends with ErrGone, and so does
// everything else that touches the tap; Close still works.
func TestRunReturnsErrGoneWhenTapDeleted(t *testing.T) {
	forEachSource(t, testRunReturnsErrGoneWhenTapDeleted)
}

func testRunReturnsErrGoneWhenTapDeleted(t *testing.T, src Source) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapg")
	d := openTap(t, Config{Name: name, Netns: ns})
	r := d.NewReader(ReaderOptions{Source: src}, func(*Batch) {})
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run() }()
	t.Cleanup(r.Stop)
	waitBlocked(t, r)

	testenv.MustRun(t, "ip", "-n", ns, "link", "del", name)
	select {
	case err := <-runErr:
		if !errors.Is(err, ErrGone) {
			t.Fatalf("Run = %v, want ErrGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still blocked after the tap was deleted")
	}
	if err := d.WriteFrame(make([]byte, 60)); !errors.Is(err, ErrGone) {
		t.Errorf("WriteFrame = %v, want ErrGone", err)
	}
	if _, err := d.MTU(); !errors.Is(err, ErrGone) {
		t.Errorf("MTU = %v, want ErrGone", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close after deletion: %v", err)
	}
}

// waitBlocked waits until Run has found the tap empty and is polling.
func waitBlocked(t *testing.T, r *Reader) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.Stats().Waits == 0; {
		if time.Now().After(deadline) {
			t.Fatal("reader never blocked")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStopWakesBlockedRun(t *testing.T) { forEachSource(t, testStopWakesBlockedRun) }

func testStopWakesBlockedRun(t *testing.T, src Source) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("taps"), Netns: ns})
	r := d.NewReader(ReaderOptions{Source: src}, func(*Batch) {})
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run() }()
	waitBlocked(t, r)

	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	// Run's deferred bookkeeping is done once Stop returns; its result
	// reaches the channel a moment later.
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run after Stop = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	r.Stop() // again: no effect, no hang
	if err := r.Run(); !errors.Is(err, ErrInvalid) {
		t.Errorf("second Run = %v, want ErrInvalid", err)
	}
}

func TestStopBeforeRunAndCloseStopsReaders(t *testing.T) {
	forEachSource(t, testStopBeforeRunAndCloseStopsReaders)
}

func testStopBeforeRunAndCloseStopsReaders(t *testing.T, src Source) {
	ns := quietNetns(t)
	d, err := Open(Config{Name: testenv.UniqueName("tapx"), Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })

	early := d.NewReader(ReaderOptions{Source: src}, func(*Batch) {})
	early.Stop()
	if err := early.Run(); err != nil {
		t.Errorf("Run after an early Stop = %v, want nil", err)
	}

	running := d.NewReader(ReaderOptions{Source: src}, func(*Batch) {})
	runErr := make(chan error, 1)
	go func() { runErr <- running.Run() }()
	waitBlocked(t, running)
	idle := d.NewReader(ReaderOptions{Source: src}, func(*Batch) {}) // never run

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run ended by Close = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end at Close")
	}
	if err := idle.Run(); err != nil {
		t.Errorf("Run of a reader whose device closed = %v, want nil (stopped)", err)
	}
	if err := d.NewReader(ReaderOptions{Source: src}, nil).Run(); err == nil {
		t.Error("Run with a nil handler succeeded")
	}
}

// Stop and even Close from inside the handler must not deadlock.
func TestCloseFromHandler(t *testing.T) { forEachSource(t, testCloseFromHandler) }

func testCloseFromHandler(t *testing.T, src Source) {
	ns := quietNetns(t)
	d, err := Open(Config{Name: testenv.UniqueName("tahh"), Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	sender := packetSender(t, ns, d.Index())
	r := d.NewReader(ReaderOptions{Source: src}, func(*Batch) {
		if err := d.Close(); err != nil {
			t.Errorf("Close in handler: %v", err)
		}
	})
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run() }()
	if _, err := unix.Write(sender, udpFrame(t, 64, 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end after Close in its handler")
	}
}

// A retained batch keeps its buffer out of the pool, its bytes intact, and
// the buffer returns to service once released.
func TestRetainedBatchKeepsBuffer(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapr"), Netns: ns})
	sender := packetSender(t, ns, d.Index())

	type seen struct {
		batch  *Batch
		buffer *byte
		data   []byte
	}
	seenCh := make(chan seen, 16)
	var retain bool
	retainCh := make(chan bool, 1)
	r := d.NewReader(ReaderOptions{MaxFrames: 1, PoolSize: 2}, func(b *Batch) {
		select {
		case retain = <-retainCh:
		default:
			retain = false
		}
		if retain {
			b.Retain()
		}
		seenCh <- seen{b, &b.buf[0], append([]byte(nil), b.Frames[0].Data...)}
	})
	runUntilCleanup(t, r)
	next := func(seq uint16, keep bool) seen {
		t.Helper()
		retainCh <- keep
		if _, err := unix.Write(sender, udpFrame(t, 100, seq)); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-seenCh:
			return s
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d never handled", seq)
			return seen{}
		}
	}

	kept := next(1, true)
	for seq := uint16(2); seq < 20; seq++ {
		s := next(seq, false)
		if s.buffer == kept.buffer {
			t.Fatalf("frame %d was read into the buffer of a retained batch", seq)
		}
	}
	if !bytes.Equal(kept.batch.Frames[0].Data, kept.data) {
		t.Fatal("retained frame changed while held")
	}
	if misses := r.Stats().PoolMisses; misses != 0 {
		t.Errorf("PoolMisses = %d with one batch retained and two pooled buffers", misses)
	}

	// The reader now waits for the next frame in the other buffer, so the
	// released one sits idle in the pool: a second Release is detected.
	kept.batch.Release()
	kept.batch.Release()
	if s := r.Stats(); s.RefcountErrors != 1 {
		t.Errorf("RefcountErrors = %d after a double release, want 1", s.RefcountErrors)
	}

	// Holding both buffers: the released one is back in service exactly
	// once, and the reader must allocate a third.
	first, second := next(20, true), next(21, true)
	if first.buffer == second.buffer {
		t.Fatal("two retained batches share a buffer")
	}
	if first.buffer != kept.buffer && second.buffer != kept.buffer {
		t.Error("released buffer was not reused")
	}
	if r.Stats().PoolMisses == 0 {
		t.Error("two retained batches with a pool of two caused no pool miss")
	}
	first.batch.Release()
	second.batch.Release()
}

// The per-batch hot path (read, timestamp, handler, release) allocates
// nothing once the pool is warm.
func TestReadBatchDoesNotAllocate(t *testing.T) { forEachSource(t, testReadBatchDoesNotAllocate) }

func testReadBatchDoesNotAllocate(t *testing.T, src Source) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapa"), Netns: ns, TxQueueLen: 10000})
	sender := packetSender(t, ns, d.Index())
	frame := udpFrame(t, 64, 1)
	var got int
	r := d.NewReader(ReaderOptions{Source: src}, func(b *Batch) { got += len(b.Frames) })
	t.Cleanup(func() { r.Stop() }) // never Run: readBatch is driven below

	const perRun = 16
	allocs := testing.AllocsPerRun(200, func() {
		for range perRun {
			if _, err := unix.Write(sender, frame); err != nil {
				t.Fatal(err)
			}
		}
		want := got + perRun
		for got < want {
			if err := r.readBatch(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per %d frames, want 0", allocs, perRun)
	}
	if s := r.Stats(); s.PoolMisses != 0 {
		t.Errorf("PoolMisses = %d", s.PoolMisses)
	}
}

// Concurrent writers: every frame reaches the stack (a UDP socket in the
// namespace receives them all), WriteFrame allocates nothing, and Close in
// the middle of writes only turns them into ErrClosed.
func TestWriteFrameConcurrent(t *testing.T) {
	ns := quietNetns(t)
	name := testenv.UniqueName("tapcw")
	d, err := Open(Config{Name: name, Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	addressTap(t, ns, name)
	tapMAC, err := d.HardwareAddr()
	if err != nil {
		t.Fatal(err)
	}
	sink := socketIn(t, ns, unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err := unix.SetsockoptInt(sink, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(sink, &unix.SockaddrInet4{Port: 9999, Addr: [4]byte(hostIP)}); err != nil {
		t.Fatal(err)
	}
	frame := func(seq uint16) []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: seq, Protocol: layers.IPProtocolUDP, SrcIP: peerIP, DstIP: hostIP}
		udp := &layers.UDP{SrcPort: 5555, DstPort: 9999}
		udp.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: peerMAC, DstMAC: tapMAC, EthernetType: layers.EthernetTypeIPv4},
			ip, udp, gopacket.Payload("x"))
	}

	const writers, each = 4, 50
	errs := make(chan error, writers)
	for w := range writers {
		f := frame(uint16(w))
		go func() {
			for range each {
				if err := d.WriteFrame(f); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	unix.SetsockoptTimeval(sink, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	for i := range writers * each {
		if _, _, err := unix.Recvfrom(sink, buf, 0); err != nil {
			t.Fatalf("stack received %d of %d injected datagrams: %v", i, writers*each, err)
		}
	}

	f := frame(99)
	if allocs := testing.AllocsPerRun(100, func() { d.WriteFrame(f) }); allocs != 0 {
		t.Errorf("WriteFrame allocates %v times per frame", allocs)
	}

	for range writers {
		go func() {
			for {
				if err := d.WriteFrame(f); err != nil {
					if !errors.Is(err, ErrClosed) {
						errs <- err
					} else {
						errs <- nil
					}
					return
				}
			}
		}()
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("writer racing Close got %v, want ErrClosed", err)
		}
	}
}

// A reader that cannot be set up says why at once (Err) and holds no
// eventfd, so that a caller trying another source need not run it.
func TestFailedSetupHoldsNothing(t *testing.T) {
	ns := quietNetns(t)
	d := openTap(t, Config{Name: testenv.UniqueName("tapf"), Netns: ns})
	r := d.NewReader(ReaderOptions{Source: Source(99)}, func(*Batch) {})
	if err := r.Err(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Err = %v, want ErrInvalid", err)
	}
	if r.wakeFD != -1 {
		t.Fatal("a reader that failed its set-up keeps its eventfd")
	}
	if err := r.Run(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Run = %v, want the set-up error", err)
	}
}
