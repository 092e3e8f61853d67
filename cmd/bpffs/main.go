package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bpffs/bpffs/bpf"
	"github.com/bpffs/bpffs/bpf/filter"
	"github.com/bpffs/bpffs/devfs"
	"github.com/bpffs/bpffs/devfs/fuse"
	"github.com/bpffs/bpffs/tap"
)

const defaultMountPoint = "/run/bpffs"

type options struct {
	taps       []string
	netns      string
	units      int
	mode       uint32
	uid, gid   uint32
	zeroCopy   bool
	linkDir    string
	bufSize    int
	maxBufSize int
	txQueueLen int
	source     tap.Source
	ringBytes  int
	coalesce   time.Duration
	maxHold    time.Duration
	jit        bool
	maxOpen    int
	maxBufMem  int64
	mountPoint string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bpffs: ")
	if len(os.Args) > 1 && os.Args[1] == "stat" {
		os.Exit(statCommand(os.Args[2:], os.Stdout))
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Print(err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("bpffs", flag.ContinueOnError)
	o := &options{}
	taps := fs.String("tap", "bpf0tap", "comma-separated TAP interfaces to serve (created if missing)")
	fs.StringVar(&o.netns, "netns", "", "network namespace of the taps: a name under /run/netns or a path (default: the daemon's own)")
	fs.IntVar(&o.units, "units", 16, "number of numbered nodes bpf0 … bpfN-1")
	mode := fs.String("mode", "0600", "permission bits of the device nodes (octal)")
	uid := fs.Uint("uid", 0, "owner of the device nodes")
	gid := fs.Uint("gid", 0, "group of the device nodes")
	fs.BoolVar(&o.zeroCopy, "zerocopy", true, "allow zero-copy buffer mode (BIOCSETBUFMODE)")
	fs.StringVar(&o.linkDir, "link", "", "create DIR/bpf and DIR/bpfN symlinks to the nodes (e.g. /dev)")
	fs.IntVar(&o.bufSize, "bufsize", 4096, "default buffer size of a descriptor (net.bpf.bufsize)")
	fs.IntVar(&o.maxBufSize, "maxbufsize", 524288, "largest buffer size BIOCSBLEN grants (net.bpf.maxbufsize)")
	fs.IntVar(&o.txQueueLen, "txqueuelen", 10000, "transmit queue length set on the taps, so bursts wait instead of being dropped")
	source := fs.String("source", "egress", "how frames are taken from the taps: ring (an AF_PACKET ring on the tap: no system call per frame), egress (an eBPF program on the tap's egress filling a BPF ring buffer: no system call per frame, less work for the sender) or read (read(2) of the tap's own queue, one per frame)")
	fs.IntVar(&o.ringBytes, "ringsize", tap.DefaultRingBytes, "bytes of packet ring or ring buffer per tap with -source ring or egress")
	fs.DurationVar(&o.coalesce, "coalesce", tap.DefaultCoalesce, "how long a tap reader naps when the tap runs dry under load, instead of being woken per frame (0: never nap)")
	fs.DurationVar(&o.maxHold, "maxhold", tap.DefaultMaxHold, "with -source ring or egress, how long frames may wait in the ring while a descriptor is full (0: never; they are dropped at once)")
	fs.BoolVar(&o.jit, "jit", true, "translate filter programs to machine code (amd64; false: interpret them, as on other architectures)")
	fs.IntVar(&o.maxOpen, "maxdescriptors", 1024, "most files open at once on the mount; one more open fails with ENFILE (0: no limit)")
	fs.Int64Var(&o.maxBufMem, "maxbufmem", 256<<20, "most buffer memory all descriptors together may hold; beyond it BIOCSBLEN, BIOCSETIF and BIOCSETZBUF fail with ENOBUFS (0: no limit)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bpffs [flags] [MOUNTPOINT]   (default %s)\n       bpffs stat [MOUNTPOINT]\n", defaultMountPoint)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	src, err := tap.ParseSource(*source)
	if err != nil {
		return nil, fmt.Errorf("-source: %v", err)
	}
	o.source = src
	if o.maxHold < 0 || o.maxHold > time.Minute {
		return nil, fmt.Errorf("-maxhold %v: want 0 … 1m", o.maxHold)
	}
	if o.coalesce < 0 || o.coalesce > 10*time.Millisecond {
		return nil, fmt.Errorf("-coalesce %v: want 0 … 10ms", o.coalesce)
	}
	if o.ringBytes < 1<<20 || o.ringBytes > 1<<30 {
		return nil, fmt.Errorf("-ringsize %d: want 1 MiB … 1 GiB", o.ringBytes)
	}
	switch fs.NArg() {
	case 0:
		o.mountPoint = defaultMountPoint
	case 1:
		o.mountPoint = fs.Arg(0)
	default:
		return nil, fmt.Errorf("one mount point at most, got %q", fs.Args())
	}
	abs, err := filepath.Abs(o.mountPoint)
	if err != nil {
		return nil, err
	}
	o.mountPoint = abs
	m, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || m > 0o777 {
		return nil, fmt.Errorf("-mode %q: want octal permission bits such as 0600", *mode)
	}
	o.mode, o.uid, o.gid = uint32(m), uint32(*uid), uint32(*gid)
	for _, t := range strings.Split(*taps, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.taps = append(o.taps, t)
		}
	}
	if len(o.taps) == 0 {
		return nil, errors.New("-tap: at least one interface is needed")
	}
	if o.maxOpen < 0 || o.maxBufMem < 0 {
		return nil, errors.New("-maxdescriptors and -maxbufmem must not be negative")
	}
	if o.units < 0 || o.units > 1024 {
		return nil, fmt.Errorf("-units %d: want 0 … 1024", o.units)
	}
	if o.bufSize < bpf.MinBufSize || o.maxBufSize < o.bufSize {
		return nil, fmt.Errorf("-bufsize %d / -maxbufsize %d: want %d ≤ bufsize ≤ maxbufsize", o.bufSize, o.maxBufSize, bpf.MinBufSize)
	}
	// One read(2) returns one buffer, so a buffer must fit one FUSE READ.
	if limit := fuse.MaxSingleRead(); o.maxBufSize > limit {
		return nil, fmt.Errorf("-maxbufsize %d: one read must fit one FUSE request, at most %d bytes here (raise the sysctl fs.fuse.max_pages_limit for more)", o.maxBufSize, limit)
	}
	return o, nil
}

// served is one tap with its emulated interface and reader.
type served struct {
	dev    *tap.Device
	ifp    *bpf.Interface
	reader *tap.Reader
	source tap.Source // o.source, or SourceRing where egress capture was refused
	done   chan error
}

func run(o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it mounts a filesystem, owns taps and reaches clients' memory")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return errors.New("no /dev/fuse: load the fuse module (modprobe fuse)")
	}
	filter.SetJIT(o.jit)
	registry := bpf.NewRegistry()
	var taps []*served
	defer func() {
		for _, s := range taps {
			s.ifp.Gone()
			s.reader.Stop()
			s.dev.Close()
		}
	}()
	for _, name := range o.taps {
		s, err := serveTap(o, name)
		if err != nil {
			return err
		}
		taps = append(taps, s)
		if err := registry.Add(s.ifp); err != nil {
			return err
		}
	}
	table := devfs.New(devfs.Config{
		Units: o.units, Mode: o.mode, UID: o.uid, GID: o.gid, MaxOpen: o.maxOpen,
		Sources: func() []devfs.SourceStats { return sourceStats(taps) },
		BPF: &bpf.Config{Registry: registry, DefaultBufSize: o.bufSize, MaxBufSize: o.maxBufSize, ZeroCopy: o.zeroCopy,
			Budget: bpf.NewBudget(o.maxBufMem)},
	})
	readers := 4096
	if o.maxOpen > 0 {
		// Every open file may park one READ; keep a margin for the rest.
		readers = o.maxOpen + 64
	}
	srv, err := fuse.Mount(fuse.Options{MountPoint: o.mountPoint, Name: "bpffs", Nodes: table.Nodes(), Logf: log.Printf,
		MaxReaders: readers})
	if err != nil {
		if errors.Is(err, fuse.ErrMountBusy) {
			return fmt.Errorf("mount point %s is busy: %v", o.mountPoint, err)
		}
		return err
	}
	var links []string
	if o.linkDir != "" {
		links, err = makeLinks(o.linkDir, o.mountPoint, o.units)
		if err != nil {
			srv.Close()
			return err
		}
	}
	log.Printf("serving %s on %s (%d units, mode %04o)", strings.Join(o.taps, ","), o.mountPoint, o.units, o.mode)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	goneTaps := make(chan *served, len(taps))
	for _, s := range taps {
		go func() {
			if err := <-s.done; err != nil {
				log.Printf("tap %s: %v; its descriptors are detached, the others keep running", s.dev.Name(), err)
				registry.Remove(s.ifp.Name())
				s.ifp.Gone()
				goneTaps <- s
			}
		}()
	}
	mtuTick := time.NewTicker(2 * time.Second)
	defer mtuTick.Stop()
loop:
	for {
		select {
		case sig := <-sigs:
			log.Printf("%v: shutting down", sig)
			break loop
		case <-srv.Done():
			log.Printf("the mount went away (unmounted from outside?): shutting down")
			break loop
		case <-goneTaps:
		case <-mtuTick.C:
			// An administrator may change a tap's MTU; writes are bounded by it.
			for _, s := range taps {
				if mtu, err := s.dev.MTU(); err == nil {
					s.ifp.SetMTU(mtu)
				}
			}
		}
	}
	// Detach first so blocked readers return ENXIO, then unmount.
	for _, s := range taps {
		s.ifp.Gone()
	}
	removeLinks(links)
	if err := srv.Close(); err != nil {
		log.Printf("unmount: %v", err)
	}
	return nil
}

func serveTap(o *options, name string) (*served, error) {
	dev, err := tap.Open(tap.Config{Name: name, Netns: o.netns, TxQueueLen: o.txQueueLen})
	switch {
	case errors.Is(err, tap.ErrBusy):
		return nil, fmt.Errorf("tap %s is busy: another process has it open", name)
	case errors.Is(err, tap.ErrNotTap):
		return nil, fmt.Errorf("%s exists and is not a tap", name)
	case err != nil:
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	mtu, err := dev.MTU()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	ifp := bpf.NewInterface(name, mtu, emulatedAddress(dev.Index()), transmitter{dev})
	s := &served{dev: dev, ifp: ifp, done: make(chan error, 1)}
	// Direct: with exactly one zero-copy listener, frames are read straight
	// into its shared buffer (bpf/direct.go).
	opts := tap.ReaderOptions{Direct: ifp, Source: o.source, RingBytes: o.ringBytes,
		Coalesce: coalesceOption(o.coalesce), Gate: ifp, MaxHold: o.maxHold}
	if o.maxHold == 0 {
		opts.Gate = nil
	}
	handle := func(b *tap.Batch) {
		frames := b.Frames
		ifp.InputBatch(len(frames), func(i int) ([]byte, int64) { return frames[i].Data, frames[i].Time })
		ifp.EndBatch()
	}
	s.source = o.source
	s.reader = dev.NewReader(opts, handle)
	if err := s.reader.Err(); err != nil && o.source == tap.SourceEgress {
		// A kernel without tcx (before 6.6) or without BPF: the packet
		// ring does the same job a little slower.
		log.Printf("tap %s: no egress capture (%v); using -source ring", name, err)
		s.source, opts.Source = tap.SourceRing, tap.SourceRing
		s.reader = dev.NewReader(opts, handle)
	}
	go func() { s.done <- s.reader.Run() }()
	return s, nil
}

// sourceStats reports each tap's reader for the stats node.
func sourceStats(taps []*served) []devfs.SourceStats {
	out := make([]devfs.SourceStats, 0, len(taps))
	for _, s := range taps {
		st := s.reader.Stats()
		src := s.source
		row := devfs.SourceStats{Interface: s.ifp.Name(), Source: src.String(), Frames: st.Frames,
			Drops: -1, HeldDrops: -1, Oversize: -1, Holds: -1, Expired: -1}
		if src == tap.SourceRing || src == tap.SourceEgress {
			row.Drops, row.HeldDrops, row.Oversize = int64(st.SourceDrops), int64(st.HeldBackDrops), int64(st.Oversize)
			row.Holds, row.Expired = int64(st.HoldEpisodes), int64(st.HoldsExpired)
		}
		out = append(out, row)
	}
	return out
}

// coalesceOption maps the flag (0: never nap) to tap.ReaderOptions (0:
// default, negative: never nap).
func coalesceOption(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// emulatedAddress is the Ethernet address of the emulated interface (the
// far end of the tap): locally administered 02:62:70:66 ("bpf") followed by
// the tap's interface index. It is the source of written frames when
// header-complete is off.
func emulatedAddress(index int) []byte {
	return []byte{0x02, 0x62, 0x70, 0x66, byte(index >> 8), byte(index)}
}

type transmitter struct{ dev *tap.Device }

func (t transmitter) Transmit(frame []byte) error { return t.dev.WriteFrame(frame) }

// makeLinks creates DIR/bpf and DIR/bpfN pointing into the mount. An
// existing entry is replaced only if it is a symlink into this mount point
// (left by a crashed run); anything else is an error.
func makeLinks(dir, mnt string, units int) ([]string, error) {
	names := []string{"bpf"}
	for i := 0; i < units; i++ {
		names = append(names, fmt.Sprintf("bpf%d", i))
	}
	var made []string
	for _, n := range names {
		link, target := filepath.Join(dir, n), filepath.Join(mnt, n)
		if old, err := os.Readlink(link); err == nil && old == target {
			os.Remove(link)
		}
		if err := os.Symlink(target, link); err != nil {
			removeLinks(made)
			return nil, fmt.Errorf("-link: %w", err)
		}
		made = append(made, link)
	}
	return made, nil
}

func removeLinks(links []string) {
	for _, l := range links {
		os.Remove(l)
	}
}

func statCommand(args []string, out io.Writer) int {
	mnt := defaultMountPoint
	if len(args) > 0 {
		mnt = args[0]
	}
	b, err := os.ReadFile(filepath.Join(mnt, devfs.StatsFile))
	if err != nil {
		log.Printf("stat: %v", err)
		return 1
	}
	out.Write(b)
	return 0
}
