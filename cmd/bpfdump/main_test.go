package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpffs/bpffs/bpfdev"
	"github.com/bpffs/bpffs/internal/daemontest"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseFilterForms(t *testing.T) {
	dd, err := parseFilter(readTestdata(t, "udp.dd"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dd) != 12 || dd[0] != (bpf.RawInstruction{Op: 0x28, K: 12}) || dd[10] != (bpf.RawInstruction{Op: 6, K: 262144}) {
		t.Fatalf("udp.dd parsed as %v", dd)
	}
	for _, name := range []string{"udp.ddd", "udp.d"} {
		got, err := parseFilter(readTestdata(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, dd) {
			t.Fatalf("%s differs from udp.dd:\n%v\n%v", name, got, dd)
		}
	}
	asm := "ldh [12]; jeq #0x800 jt 2 jf 5; ldb [23]; jeq #17 jt 4 jf 5; ret #262144; ret #0"
	want := []bpf.RawInstruction{{Op: 0x28, K: 12}, {Op: 0x15, Jf: 3, K: 0x800}, {Op: 0x30, K: 23}, {Op: 0x15, Jf: 1, K: 17}, {Op: 6, K: 262144}, {Op: 6}}
	if got, err := parseFilter(asm); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("-e assembly: %v, %v", got, err)
	}
}

func TestParseFilterRejects(t *testing.T) {
	for _, text := range []string{
		"",
		"{ 0x28, 0, 0 },",
		"{ 0x28, 0, 0, 0x1ffffffff },",
		"3\n6 0 0 0",
		"1\n6 0 0",
		"ldh [12]; jeq #1 jt 0 jf 1", // backwards jump
		"frobnicate #1",
		"(001) ret #0", // wrong line number
		"ldb #4",
		"jeq #1 jf 2",
	} {
		if prog, err := parseFilter(text); err == nil {
			t.Errorf("%q accepted as %v", text, prog)
		}
	}
	o := &options{filterAsm: "ldh [12]; ja 5"}
	if _, err := loadFilter(o); err == nil {
		t.Error("a program jumping past its end was accepted")
	}
}

// The three forms tcpdump prints of the same compiled program must parse
// to the same instructions.
func TestParseFilterAgainstTcpdump(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump is not installed")
	}
	for _, expr := range []string{
		"udp",
		"udp port 53 or (tcp[tcpflags] & tcp-syn != 0)",
		"len > 100 and ether[0] & 1 = 1",
		"ip[2:2] - ((ip[0]&0xf)<<2) > 40 and not arp",
		"ip and (ip[8] * 3) / 2 % 7 = 1 or (ip[9] ^ 3) >> 1 = 2",
		"ether host 02:62:70:66:00:01",
	} {
		var progs [][]bpf.RawInstruction
		for _, form := range []string{"-dd", "-ddd", "-d"} {
			out, err := exec.Command("tcpdump", "-y", "EN10MB", form, expr).Output()
			if err != nil {
				t.Fatalf("tcpdump %s %q: %v", form, expr, err)
			}
			prog, err := parseFilter(string(out))
			if err != nil {
				t.Fatalf("%s of %q: %v\n%s", form, expr, err, out)
			}
			progs = append(progs, normalize(t, prog))
		}
		if !reflect.DeepEqual(progs[0], progs[1]) || !reflect.DeepEqual(progs[0], progs[2]) {
			t.Fatalf("%q: the forms disagree:\n%v\n%v\n%v", expr, progs[0], progs[1], progs[2])
		}
	}
}

// normalize clears the fields an instruction does not use (libpcap
// leaves a stale k in tax, for one), which the assembly form cannot show.
func normalize(t *testing.T, prog []bpf.RawInstruction) []bpf.RawInstruction {
	insns, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatalf("cannot disassemble %v", prog)
	}
	out, err := bpf.Assemble(insns)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// capture runs bpfdump in-process on the daemon's first tap with args,
// calls traffic once the capture is attached, and returns its output.
func capture(t *testing.T, d *daemontest.Daemon, traffic func(), args ...string) (stdout, stderr string) {
	t.Helper()
	o, err := parseFlags(append([]string{"-d", d.Node("bpf"), "-i", d.Taps[0]}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := attachedTo(d)
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, &out, &errOut, false) }()
	waitAttached(t, d, before, done)
	traffic()
	if err := <-done; err != nil {
		t.Fatalf("bpfdump %q: %v\n%s", args, err, errOut.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("bpfdump %q did not finish: %s", args, errOut.String())
	}
	return out.String(), errOut.String()
}

// attachedTo counts the descriptors the daemon lists on the first tap.
func attachedTo(d *daemontest.Daemon) int {
	n := 0
	for _, line := range d.StatsLines() {
		if strings.Contains(line, " "+d.Taps[0]+" ") {
			n++
		}
	}
	return n
}

// waitAttached waits until the daemon lists one more descriptor on the tap
// than before bpfdump started (a test may have attached others already).
func waitAttached(t *testing.T, d *daemontest.Daemon, before int, done chan error) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("bpfdump ended before attaching: %v", err)
		default:
		}
		if attachedTo(d) > before {
			return
		}
	}
	t.Fatal("bpfdump did not attach")
}

type capturedPacket struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func readCaptureFile(t *testing.T, path string) []capturedPacket {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	if strings.HasSuffix(path, ".pcapng") {
		src, err = pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	} else {
		src, err = pcapgo.NewReader(f)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var pkts []capturedPacket
	for {
		data, ci, err := src.ReadPacketData()
		if err == io.EOF {
			return pkts
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pkts = append(pkts, capturedPacket{ci, data})
	}
}

func requireTcpdump(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tcpdump is not installed (apt-get install -y tcpdump)")
		}
		t.Skip("tcpdump is not installed")
	}
}

// bpfdump -w writes pcap and pcapng files that tcpdump reads back with the
// same packets.
func TestWriteFilesReadByTcpdump(t *testing.T) {
	requireTcpdump(t)
	for _, tc := range []struct{ file, mode string }{
		{"out.pcap", "-immediate"},
		{"out.pcapng", "-immediate"},
		{"zc.pcap", "-z"},
		{"zc.pcapng", "-z"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d := daemontest.Start(t, 1)
			path := filepath.Join(t.TempDir(), tc.file)
			var sent [][]byte
			capture(t, d, func() { sent = d.SendUDP(20, 400) }, "-c", "20", "-w", path, tc.mode)
			ours := readCaptureFile(t, path)
			if len(ours) != len(sent) {
				t.Fatalf("%d packets in the file, %d sent", len(ours), len(sent))
			}
			for i, p := range ours {
				udp, ok := gopacket.NewPacket(p.data, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeUDP).(*layers.UDP)
				if !ok || !bytes.Equal(udp.Payload, sent[i]) || p.ci.CaptureLength != len(p.data) || p.ci.Length != len(p.data) {
					t.Fatalf("packet %d is not datagram %d", i, i)
				}
			}
			// tcpdump re-writes the file as pcap (microseconds).
			copyPath := filepath.Join(t.TempDir(), "tcpdump.pcap")
			out, err := exec.Command("tcpdump", "-r", path, "-w", copyPath).CombinedOutput()
			if err != nil {
				t.Fatalf("tcpdump -r %s -w: %v\n%s", path, err, out)
			}
			theirs := readCaptureFile(t, copyPath)
			if len(theirs) != len(ours) {
				t.Fatalf("tcpdump read %d packets of %d", len(theirs), len(ours))
			}
			for i := range ours {
				if !bytes.Equal(theirs[i].data, ours[i].data) || theirs[i].ci.Length != ours[i].ci.Length ||
					!theirs[i].ci.Timestamp.Equal(ours[i].ci.Timestamp.Truncate(time.Microsecond)) {
					t.Fatalf("packet %d differs after tcpdump: %v vs %v", i, theirs[i].ci, ours[i].ci)
				}
			}
			text, err := exec.Command("tcpdump", "-nn", "-r", path).Output()
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Split(strings.TrimSpace(string(text)), "\n"); len(lines) != len(sent) ||
				!strings.Contains(lines[0], daemontest.HostIP) || !strings.Contains(lines[0], daemontest.FarIP+".9: UDP, length 400") {
				t.Fatalf("tcpdump -r prints:\n%s", text)
			}
		})
	}
}

// Frames of another protocol, written through a second descriptor (so the
// capture sees them as outgoing), must not pass bpfdump's udp filter.
func TestFilterFileCapturesOnlyMatches(t *testing.T) {
	for _, form := range []string{"udp.dd", "udp.ddd", "udp.d"} {
		t.Run(form, func(t *testing.T) {
			d := daemontest.Start(t, 1)
			writer, err := bpfdev.Open(d.Node("bpf"))
			if err != nil {
				t.Fatal(err)
			}
			defer writer.Close()
			if err := writer.Attach(d.Taps[0]); err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, 60)
			copy(junk, d.TapMAC(d.Taps[0]))
			junk[12], junk[13] = 0x88, 0xb5
			out, _ := capture(t, d, func() {
				for i := 0; i < 5; i++ {
					if err := writer.WritePacket(junk); err != nil {
						t.Error(err)
					}
				}
				d.SendUDP(5, 100)
			}, "-c", "5", "-immediate", "-f", filepath.Join("testdata", form))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 5 {
				t.Fatalf("%d lines:\n%s", len(lines), out)
			}
			for _, line := range lines {
				if !strings.Contains(line, daemontest.FarIP+".9 UDP length 142") {
					t.Fatalf("a packet other than the datagrams passed: %q", line)
				}
			}
		})
	}
}

// SIGINT stops a capture cleanly with the counts printed.
func TestInterruptPrintsStats(t *testing.T) {
	d := daemontest.Start(t, 1)
	bin := filepath.Join(t.TempDir(), "bpfdump")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	before := attachedTo(d)
	cmd := exec.Command(bin, "-d", d.Node("bpf"), "-i", d.Taps[0], "-z")
	stdout, stderr := tempFile(t), tempFile(t)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitAttached(t, d, before, exited)
	d.SendUDP(3, 50)
	// Without -immediate, packets show within the one-second timeout.
	for deadline := time.Now().Add(20 * time.Second); strings.Count(contents(t, stdout), "\n") < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("bpfdump exited with %v:\n%s", err, contents(t, stderr))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bpfdump ignored SIGINT")
	}
	if !strings.Contains(contents(t, stderr), "3 packets captured\n3 packets received by filter\n0 packets dropped by kernel") {
		t.Fatalf("stderr:\n%s\nstdout:\n%s", contents(t, stderr), contents(t, stdout))
	}
}

func tempFile(t *testing.T) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func contents(t *testing.T, f *os.File) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-i", "x", "extra"},
		{"-i", "x", "-c", "-1"},
		{"-i", "x", "-B", "0"},
		{"-i", "x", "-f", "a", "-e", "ret #0"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
