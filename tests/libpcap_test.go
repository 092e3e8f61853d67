package tests

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/testenv"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The tests in this file run unmodified tcpdump 4.99.3 and programs linked
// against libpcap 1.10.3's own BPF backend (configure --with-pcap=bpf) on
// bpffs: libpcap/run.sh builds them from Debian's source packages, once
// as released (buffered mode) and once with compat/libpcap/zerocopy.patch
// (zero-copy mode). libpcap only ever opens /dev/bpf and /dev/bpfN; each
// program runs through libpcap/with-bpf-dev.sh, which shows it a /dev
// with the daemon's links on top, in a private mount namespace, so the
// machine's /dev is never touched.

const libpcapFilter = "icmp or udp port 9"

type libpcapVariant struct {
	name string // buffered or zerocopy
	dir  string // run.sh's build: bin/tcpdump, bin/inject, bin/pcapdrop
	mode string // the stats file's mode column while a capture runs
}

var (
	libpcapOnce     sync.Once
	libpcapVariants []libpcapVariant
	libpcapErr      error
)

// libpcapBuilds builds (or finds in run.sh's cache) both variants. It
// never skips: when the sources cannot be fetched or built the test fails
// with run.sh's explanation.
func libpcapBuilds(t *testing.T) []libpcapVariant {
	t.Helper()
	testenv.RequireRoot(t)
	libpcapOnce.Do(func() {
		var stderr bytes.Buffer
		cmd := exec.Command("bash", "libpcap/run.sh")
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			libpcapErr = fmt.Errorf("libpcap/run.sh (fetching and building libpcap and tcpdump) failed: %v\n%s", err, stderr.String())
			return
		}
		vars := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
		}
		if vars["BUFFERED_DIR"] == "" || vars["ZEROCOPY_DIR"] == "" {
			libpcapErr = fmt.Errorf("libpcap/run.sh printed no build directories:\n%s\n%s", out, stderr.String())
			return
		}
		libpcapVariants = []libpcapVariant{
			{"buffered", vars["BUFFERED_DIR"], "buffer"},
			{"zerocopy", vars["ZEROCOPY_DIR"], "zbuf-shm"},
		}
	})
	if libpcapErr != nil {
		t.Fatal(libpcapErr)
	}
	return libpcapVariants
}

// libpcapDaemon starts the daemon with its bpf, bpfN links in a fresh
// directory, which it returns.
func libpcapDaemon(t *testing.T, ntaps int) (*env, string) {
	t.Helper()
	links := t.TempDir()
	os.Chmod(links, 0o755)
	e := startDaemon(t, ntaps, "-link", links)
	return e, links
}

// pcapProcess is a libpcap program running inside the daemon's netns with
// the bpffs nodes at /dev/bpf*.
type pcapProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout chan string
	stderr chan string
	mu     sync.Mutex
	log    strings.Builder // everything it wrote, for failure messages
	done   chan error
}

func (e *env) startPcap(links, bin string, args ...string) *pcapProcess {
	e.t.Helper()
	withDev, err := filepath.Abs("libpcap/with-bpf-dev.sh")
	if err != nil {
		e.t.Fatal(err)
	}
	return startPcapCommand(e.t, testenv.NetnsCommand(e.NS, "bash", append([]string{withDev, links, bin}, args...)...))
}

func startPcapCommand(t *testing.T, cmd *exec.Cmd) *pcapProcess {
	t.Helper()
	p := &pcapProcess{t: t, cmd: cmd, stdout: make(chan string, 1024), stderr: make(chan string, 1024), done: make(chan error, 1)}
	p.stdin, _ = cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	errPipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	for _, r := range []struct {
		from io.Reader
		to   chan string
		tag  string
	}{{outPipe, p.stdout, ""}, {errPipe, p.stderr, "stderr: "}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(r.from)
			for sc.Scan() {
				p.mu.Lock()
				p.log.WriteString(r.tag + sc.Text() + "\n")
				p.mu.Unlock()
				select {
				case r.to <- sc.Text():
				default:
				}
			}
			close(r.to)
		}()
	}
	go func() {
		readers.Wait()
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *pcapProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// expectLine waits for a line on stdout or stderr (which) containing s.
func (p *pcapProcess) expectLine(which chan string, s string) string {
	p.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-which:
			if !ok {
				p.t.Fatalf("%s ended while waiting for %q:\n%s", p.cmd.Args, s, p.output())
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			p.t.Fatalf("%s: no %q within 30s:\n%s", p.cmd.Args, s, p.output())
		}
	}
}

// wait waits for the program to end and returns everything it wrote.
func (p *pcapProcess) wait() (string, error) {
	p.t.Helper()
	select {
	case err := <-p.done:
		return p.output(), err
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("%s did not end within 60s:\n%s", p.cmd.Args, p.output())
	}
	return "", nil
}

// descriptor returns the stats line fields of the descriptor opened by
// pid, or nil.
func (e *env) descriptor(pid int) []string {
	for _, l := range e.StatsLines() {
		if f := strings.Fields(l); len(f) > 6 && f[1] == strconv.Itoa(pid) {
			return f
		}
	}
	return nil
}

// sendEcho sends count ICMP echo requests from the Linux side to FarIP
// (the emulated interface, which does not answer).
func (e *env) sendEcho(count int) {
	e.t.Helper()
	var conn net.PacketConn
	if err := testenv.DoInNetns(e.NS, func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", hostIP)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	for seq := 1; seq <= count; seq++ {
		msg := make([]byte, 8+32)
		msg[0] = 8 // echo request
		binary.BigEndian.PutUint16(msg[4:], 0xbf00)
		binary.BigEndian.PutUint16(msg[6:], uint16(seq))
		copy(msg[8:], fmt.Sprintf("bpffs-echo-%04d", seq))
		binary.BigEndian.PutUint16(msg[2:], internetChecksum(msg))
		if _, err := conn.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(farIP)}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func internetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// sendUDPTo sends count datagrams to FarIP:port from the Linux side.
func (e *env) sendUDPTo(port, count int) {
	e.t.Helper()
	c, err := testenv.UDPConnInNetns(e.NS, fmt.Sprintf("%s:%d", farIP, port))
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < count; i++ {
		if _, err := c.Write([]byte(fmt.Sprintf("not-for-the-filter-%d", i))); err != nil {
			e.t.Fatal(err)
		}
	}
}

type pcapRecord struct {
	ts       time.Time
	caplen   int
	length   int
	data     []byte
	linkType layers.LinkType
}

func readPcap(t *testing.T, path string) []pcapRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var recs []pcapRecord
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatalf("%s: record %d: %v", path, len(recs), err)
		}
		recs = append(recs, pcapRecord{ts: ci.Timestamp, caplen: ci.CaptureLength, length: ci.Length, data: data, linkType: r.LinkType()})
	}
}

// TestLibpcapTcpdumpCapture runs our tcpdump on bpffs and Debian's own
// tcpdump (AF_PACKET) on the tap at the same time, with the same filter
// compiled by libpcap, and compares what they wrote.
func TestLibpcapTcpdumpCapture(t *testing.T) {
	variants := libpcapBuilds(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("Debian's tcpdump is needed as the reference capture (apt-get install tcpdump; test.sh installs it)")
	}
	const udpCount, echoCount = 20, 3
	want := udpCount + echoCount
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			e, links := libpcapDaemon(t, 1)
			tap := e.Taps[0]
			dir := t.TempDir()
			refFile, ourFile := filepath.Join(dir, "afpacket.pcap"), filepath.Join(dir, "bpffs.pcap")
			start := time.Now()
			ref := startPcapCommand(t, testenv.NetnsCommand(e.NS, "tcpdump", "-Z", "root", "-i", tap, "-nn", "-U",
				"--immediate-mode", "-c", strconv.Itoa(want), "-w", refFile, libpcapFilter))
			ours := e.startPcap(links, filepath.Join(v.dir, "bin/tcpdump"), "-i", tap, "-nn", "-U",
				"--immediate-mode", "-c", strconv.Itoa(want), "-w", ourFile, libpcapFilter)
			ref.expectLine(ref.stderr, "listening on "+tap)
			ours.expectLine(ours.stderr, "listening on "+tap)

			d := e.descriptor(ours.cmd.Process.Pid)
			if d == nil {
				t.Fatalf("no descriptor of tcpdump (pid %d) in the stats file:\n%s", ours.cmd.Process.Pid, strings.Join(e.StatsLines(), "\n"))
			}
			if d[2] != tap || d[3] != v.mode {
				t.Errorf("tcpdump's descriptor: interface %s mode %s, want %s %s", d[2], d[3], tap, v.mode)
			}

			e.sendUDPTo(10, 5) // not matched by the filter: neither capture may keep them
			e.SendUDP(udpCount, 100)
			e.sendEcho(echoCount)

			refOut, err := ref.wait()
			if err != nil {
				t.Fatalf("Debian's tcpdump: %v\n%s", err, refOut)
			}
			ourOut, err := ours.wait()
			if err != nil {
				t.Fatalf("tcpdump on bpffs: %v\n%s", err, ourOut)
			}
			end := time.Now()
			if !strings.Contains(ourOut, "0 packets dropped by kernel") {
				t.Errorf("tcpdump on bpffs reported drops:\n%s", ourOut)
			}

			refRecs, ourRecs := readPcap(t, refFile), readPcap(t, ourFile)
			if len(refRecs) != want || len(ourRecs) != want {
				t.Fatalf("captured %d packets on bpffs and %d with AF_PACKET, want %d each", len(ourRecs), len(refRecs), want)
			}
			for i := range refRecs {
				r, o := refRecs[i], ourRecs[i]
				if o.linkType != layers.LinkTypeEthernet {
					t.Fatalf("bpffs capture has link type %v, want Ethernet", o.linkType)
				}
				if o.caplen != r.caplen || o.length != r.length || !bytes.Equal(o.data, r.data) {
					t.Errorf("packet %d differs:\n bpffs    caplen %d len %d % x\n AF_PACKET caplen %d len %d % x",
						i, o.caplen, o.length, o.data, r.caplen, r.length, r.data)
				}
				// A wrong timestamp conversion (bintime, bpf_hdr) would land
				// far outside the run; this is not a timing assertion.
				if o.ts.Before(start.Add(-time.Minute)) || o.ts.After(end.Add(time.Minute)) {
					t.Errorf("packet %d: timestamp %v is outside the test run %v … %v", i, o.ts, start, end)
				}
			}
			for i, r := range ourRecs {
				if bytes.Contains(r.data, []byte("not-for-the-filter")) {
					t.Errorf("packet %d should have been filtered out", i)
				}
			}
		})
	}
}

// TestLibpcapInject sends an ICMP echo request with pcap_inject() from the
// emulated interface to the Linux side, which answers; the program
// captures the reply through libpcap.
func TestLibpcapInject(t *testing.T) {
	variants := libpcapBuilds(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			e, links := libpcapDaemon(t, 1)
			tap := e.Taps[0]
			p := e.startPcap(links, filepath.Join(v.dir, "bin/inject"), tap,
				e.EmulatedMAC(tap).String(), e.TapMAC(tap).String(), farIP, hostIP)
			out, err := p.wait()
			if err != nil || !strings.Contains(out, "reply ") {
				t.Fatalf("inject: %v\n%s", err, out)
			}
		})
	}
}

// TestLibpcapStatsDrops overflows a tiny buffer while the program does not
// read; pcap_stats() must report the drops, and they must agree with the
// daemon's count and with what was captured.
func TestLibpcapStatsDrops(t *testing.T) {
	variants := libpcapBuilds(t)
	const sent = 300
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			e, links := libpcapDaemon(t, 1)
			tap := e.Taps[0]
			p := e.startPcap(links, filepath.Join(v.dir, "bin/pcapdrop"), tap, "4096", "udp port 9")
			p.expectLine(p.stdout, "ready")
			pid := p.cmd.Process.Pid
			if d := e.descriptor(pid); d == nil || d[3] != v.mode {
				t.Fatalf("pcapdrop's descriptor %v, want mode %s", d, v.mode)
			}
			e.SendUDP(sent, 200)
			var daemonDrops int
			waitFor(t, "the daemon to see every packet", func() bool {
				d := e.descriptor(pid)
				if d == nil {
					t.Fatalf("pcapdrop's descriptor left the stats file:\n%s", p.output())
				}
				recv, _ := strconv.Atoi(d[5])
				daemonDrops, _ = strconv.Atoi(d[6])
				return recv >= sent
			})
			io.WriteString(p.stdin, "go\n")
			line := p.expectLine(p.stdout, "captured=")
			var captured, recv, drop int
			if _, err := fmt.Sscanf(line, "captured=%d recv=%d drop=%d", &captured, &recv, &drop); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if out, err := p.wait(); err != nil {
				t.Fatalf("pcapdrop: %v\n%s", err, out)
			}
			t.Logf("%s: %s (the daemon counted %d drops)", v.name, line, daemonDrops)
			if drop == 0 || captured == 0 {
				t.Errorf("%s: want both captures and drops", line)
			}
			if drop != daemonDrops {
				t.Errorf("pcap_stats drop=%d, the stats file says %d", drop, daemonDrops)
			}
			if captured+drop != sent || recv < sent {
				t.Errorf("%s: captured+drop should be the %d packets sent, recv at least that", line, sent)
			}
		})
	}
}

// TestLibpcapListInterfaces runs tcpdump -D inside the daemon's netns:
// pcap_findalldevs() probes every interface with BIOCSETIF, so the daemon's
// taps are listed and the interfaces it does not serve are not.
func TestLibpcapListInterfaces(t *testing.T) {
	variants := libpcapBuilds(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			e, links := libpcapDaemon(t, 2)
			p := e.startPcap(links, filepath.Join(v.dir, "bin/tcpdump"), "-D")
			out, err := p.wait()
			if err != nil {
				t.Fatalf("tcpdump -D: %v\n%s", err, out)
			}
			names := map[string]bool{}
			for _, line := range strings.Split(out, "\n") {
				// "1.name [Up, Running]"
				if _, rest, ok := strings.Cut(line, "."); ok && !strings.HasPrefix(line, "stderr: ") {
					names[strings.Fields(rest + " ")[0]] = true
				}
			}
			for _, tap := range e.Taps {
				if !names[tap] {
					t.Errorf("tcpdump -D does not list %s:\n%s", tap, out)
				}
			}
			if names["lo"] {
				t.Errorf("tcpdump -D lists lo, which bpffs does not serve:\n%s", out)
			}
		})
	}
}

// TestLibpcapAtomicHeader checks include/machine/atomic.h the way
// pcap-bpf.c uses it: atomics on the zbuf header, and the mmap() fix-up
// that gives the BSD-style MAP_ANON call a sharing type and leaves every
// other call alone (libpcap/atomic_check.c, linked with --wrap=mmap to see
// the flags each call passes).
func TestLibpcapAtomicHeader(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, define string }{
		{"default", ""},
		{"atomic.h-first", "-DATOMIC_FIRST"},
		{"map-private", "-DBPF_COMPAT_ZBUF_MAP_PRIVATE"},
		{"no-fixup", "-DBPF_COMPAT_NO_MMAP_FIXUP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := filepath.Join(dir, tc.name)
			args := []string{"-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", "-I", "../include", "-Wl,--wrap=mmap", "-o", bin, "libpcap/atomic_check.c"}
			if tc.define != "" {
				args = append([]string{tc.define}, args...)
			}
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			out, err := exec.Command(bin).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			t.Logf("\n%s", out)
		})
	}
}
