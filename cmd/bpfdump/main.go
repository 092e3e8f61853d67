package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bpffs/bpffs/bpfdev"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// snapLength is what capture files announce; the device captures whole
// frames unless a filter says otherwise.
const snapLength = 262144

type options struct {
	device     string
	iface      string
	count      int
	output     string
	zeroCopy   bool
	filterFile string
	filterAsm  string
	bufSize    int
	immediate  bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bpfdump:", err)
		os.Exit(2)
	}
	if err := run(ctx, o, os.Stdout, os.Stderr, isTerminal(os.Stderr)); err != nil {
		fmt.Fprintln(os.Stderr, "bpfdump:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bpfdump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.device, "d", "", "BPF device node (default: the first of "+strings.Join(bpfdev.DefaultPaths, ", ")+")")
	fs.StringVar(&o.iface, "i", "", "interface to capture on (required)")
	fs.IntVar(&o.count, "c", 0, "stop after this many packets (0: until interrupted)")
	fs.StringVar(&o.output, "w", "", "write packets to this file: pcap, or pcapng if it ends in .pcapng; - is standard output")
	fs.BoolVar(&o.zeroCopy, "z", false, "use zero-copy buffer mode")
	fs.StringVar(&o.filterFile, "f", "", "read the filter from this file (tcpdump -dd, -ddd or -d output)")
	fs.StringVar(&o.filterAsm, "e", "", "filter in tcpdump -d assembly, instructions separated by ';' or newlines")
	fs.IntVar(&o.bufSize, "B", 1<<20, "buffer size in bytes")
	fs.BoolVar(&o.immediate, "immediate", false, "immediate mode: deliver every packet at once instead of filling buffers")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bpfdump [-d DEVICE] -i IFACE [-c COUNT] [-w FILE] [-z] [-f FILTERFILE | -e 'asm text'] [-B bufsize] [-immediate]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() != 0:
		return nil, fmt.Errorf("unexpected arguments %q (a filter goes in -f or -e)", fs.Args())
	case o.iface == "":
		return nil, errors.New("-i IFACE is required")
	case o.count < 0:
		return nil, fmt.Errorf("-c %d: want a count ≥ 0", o.count)
	case o.bufSize <= 0:
		return nil, fmt.Errorf("-B %d: want a positive size", o.bufSize)
	case o.filterFile != "" && o.filterAsm != "":
		return nil, errors.New("-f and -e both give a filter; choose one")
	}
	return o, nil
}

func isTerminal(f *os.File) bool {
	conn, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var terr error
	conn.Control(func(fd uintptr) { _, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
	return terr == nil
}

// source is what both readers offer.
type source interface {
	NextContext(ctx context.Context) ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// packetWriter is a pcap or pcapng writer.
type packetWriter interface {
	WritePacket(ci gopacket.CaptureInfo, data []byte) error
}

func loadFilter(o *options) ([]bpf.RawInstruction, error) {
	text := o.filterAsm
	if o.filterFile != "" {
		b, err := os.ReadFile(o.filterFile)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	if text == "" {
		return nil, nil
	}
	prog, err := parseFilter(text)
	if err != nil {
		return nil, err
	}
	// Check it here, for a clearer message than the device's EINVAL.
	// Unknown opcodes stay RawInstructions, which NewVM rejects.
	insns, _ := bpf.Disassemble(prog)
	if _, err := bpf.NewVM(insns); err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return prog, nil
}

func openSource(o *options, filter []bpf.RawInstruction) (*bpfdev.Device, source, error) {
	var dev *bpfdev.Device
	var err error
	if o.device != "" {
		dev, err = bpfdev.Open(o.device)
	} else {
		dev, err = bpfdev.OpenFirst()
	}
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*bpfdev.Device, source, error) {
		dev.Close()
		return nil, nil, err
	}
	var z *bpfdev.ZeroCopyReader
	if o.zeroCopy {
		if z, err = bpfdev.NewZeroCopyReader(dev, o.bufSize); err != nil {
			return fail(err)
		}
	} else if _, err := dev.SetBufferSize(o.bufSize); err != nil {
		return fail(err)
	}
	// Nanoseconds, since the capture files are written with them.
	if err := dev.SetTimestamp(bpfdev.TimestampNano); err != nil {
		return fail(err)
	}
	if o.immediate {
		err = dev.SetImmediate(true)
	} else {
		err = dev.SetTimeout(time.Second) // tcpdump's default
	}
	if err != nil {
		return fail(err)
	}
	// The filter goes in before attaching, so no packet escapes it.
	if filter != nil {
		if err := dev.SetFilterRaw(filter); err != nil {
			return fail(err)
		}
	}
	if err := dev.Attach(o.iface); err != nil {
		return fail(err)
	}
	if z != nil {
		return dev, z, nil
	}
	r, err := bpfdev.NewReader(dev)
	if err != nil {
		return fail(err)
	}
	return dev, r, nil
}

func openOutput(o *options, stdout io.Writer, link layers.LinkType) (packetWriter, func() error, error) {
	var out io.Writer = stdout
	closeFile := func() error { return nil }
	if o.output != "-" {
		f, err := os.Create(o.output)
		if err != nil {
			return nil, nil, err
		}
		out, closeFile = f, f.Close
	}
	bw := bufio.NewWriterSize(out, 1<<16)
	if strings.HasSuffix(o.output, ".pcapng") {
		intf := pcapgo.DefaultNgInterface
		intf.Name, intf.LinkType, intf.SnapLength = o.iface, link, snapLength
		w, err := pcapgo.NewNgWriterInterface(bw, intf, pcapgo.DefaultNgWriterOptions)
		if err != nil {
			closeFile()
			return nil, nil, err
		}
		return w, func() error { return errors.Join(w.Flush(), bw.Flush(), closeFile()) }, nil
	}
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(snapLength, link); err != nil {
		closeFile()
		return nil, nil, err
	}
	return w, func() error { return errors.Join(bw.Flush(), closeFile()) }, nil
}

// counters are shared with the status line.
type counters struct {
	mu      sync.Mutex
	packets uint64
}

func run(ctx context.Context, o *options, stdout, stderr io.Writer, status bool) (err error) {
	filter, err := loadFilter(o)
	if err != nil {
		return err
	}
	dev, src, err := openSource(o, filter)
	if err != nil {
		return err
	}
	defer dev.Close()
	var pw packetWriter
	if o.output != "" {
		w, finish, err := openOutput(o, stdout, src.LinkType())
		if err != nil {
			return err
		}
		pw = w
		defer func() { err = errors.Join(err, finish()) }()
	}
	var c counters
	if status {
		stopStatus := startStatus(dev, &c, stderr)
		defer stopStatus()
	}
	printer := bufio.NewWriter(stdout)
	defer printer.Flush()
	link := src.LinkType()
	for o.count == 0 || c.packets < uint64(o.count) {
		data, ci, err := src.NextContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		if pw != nil {
			if err := pw.WritePacket(ci, data); err != nil {
				return err
			}
		} else {
			// A line at a time: a reader watching the output sees each
			// packet when it arrives.
			printer.WriteString(describe(data, ci, link))
			printer.WriteByte('\n')
			if err := printer.Flush(); err != nil {
				return err
			}
		}
		c.mu.Lock()
		c.packets++
		c.mu.Unlock()
	}
	printer.Flush()
	recv, drop, serr := dev.Stats()
	if serr != nil {
		return serr
	}
	fmt.Fprintf(stderr, "%d packets captured\n%d packets received by filter\n%d packets dropped by kernel\n", c.packets, recv, drop)
	return nil
}

// startStatus refreshes a status line on stderr a few times a second.
func startStatus(dev *bpfdev.Device, c *counters, stderr io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(stderr, "\r\033[K")
				return
			case now := <-tick.C:
				c.mu.Lock()
				n := c.packets
				c.mu.Unlock()
				recv, drop, err := dev.Stats()
				if err != nil {
					continue
				}
				rate := float64(n) / now.Sub(start).Seconds()
				fmt.Fprintf(stderr, "\r\033[K%d packets, %d received, %d dropped, %.0f pkt/s", n, recv, drop, rate)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// describe is one line about a packet: time, addresses, protocol, length.
func describe(data []byte, ci gopacket.CaptureInfo, link layers.LinkType) string {
	p := gopacket.NewPacket(data, link, gopacket.DecodeOptions{NoCopy: true, Lazy: true})
	src, dst, proto := "?", "?", "?"
	if eth, ok := p.LinkLayer().(*layers.Ethernet); ok {
		src, dst, proto = eth.SrcMAC.String(), eth.DstMAC.String(), eth.EthernetType.String()
	}
	if nl := p.NetworkLayer(); nl != nil {
		f := nl.NetworkFlow()
		src, dst, proto = f.Src().String(), f.Dst().String(), nl.LayerType().String()
		if tl := p.TransportLayer(); tl != nil {
			tf := tl.TransportFlow()
			src += "." + tf.Src().String()
			dst += "." + tf.Dst().String()
			proto = tl.LayerType().String()
		} else if l := p.Layer(layers.LayerTypeICMPv4); l != nil {
			proto = l.(*layers.ICMPv4).TypeCode.String()
		}
	} else if arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		proto = fmt.Sprintf("ARP op %d", arp.Operation)
	}
	return fmt.Sprintf("%s %s > %s %s length %d", ci.Timestamp.Format("15:04:05.000000"), src, dst, proto, ci.Length)
}
