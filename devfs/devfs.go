package devfs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bpffs/bpffs/bpf"
	"github.com/bpffs/bpffs/devfs/fuse"
	"github.com/bpffs/bpffs/ioctl"
	"golang.org/x/sys/unix"
)

// Config describes the device table.
type Config struct {
	Units int // numbered units bpf0 … bpfUnits-1
	// MaxOpen bounds the files open at once on the mount (descriptors and
	// statistics snapshots together); one more open fails with ENFILE.
	// 0: no bound.
	MaxOpen  int
	Mode     uint32 // permission bits of the device nodes (default 0600)
	UID, GID uint32
	BPF      *bpf.Config
	// Sources, if set, reports how each interface takes frames from its
	// tap; the stats node lists it below the descriptors, so that frames
	// lost before any descriptor saw them are not lost silently.
	Sources func() []SourceStats
}

// SourceStats is one interface's frame source as the stats node shows it.
type SourceStats struct {
	Interface string
	Source    string // "read" or "ring"
	Frames    uint64 // frames taken from the tap
	// Drops counts frames lost before the daemon got them (a full ring),
	// HeldDrops those of them lost while frames were held back, which
	// every descriptor counts as received and dropped; Oversize frames
	// longer than the ring's slots. Negative: not known here (a read
	// source's losses are the tap's own tx_dropped).
	Drops, HeldDrops, Oversize int64
	// Holds counts the times frames were left in the ring because a
	// descriptor was full; Expired the holds that ran out (MaxHold).
	// Negative: not applicable.
	Holds, Expired int64
}

// StatsFile is the name of the operator statistics node.
const StatsFile = "stats"

// Table holds the nodes and the descriptors currently open through them.
type Table struct {
	cfg   Config
	mu    sync.Mutex
	open  map[*bpf.Descriptor]bool
	units []bool // unit i is open
	// handles counts every open file of the mount, for Config.MaxOpen.
	handles int
}

// New builds the device table.
func New(cfg Config) *Table {
	if cfg.Mode == 0 {
		cfg.Mode = 0o600
	}
	return &Table{cfg: cfg, open: map[*bpf.Descriptor]bool{}, units: make([]bool, cfg.Units)}
}

// Nodes returns the FUSE nodes: bpf, bpf0 … bpfN-1, stats.
func (t *Table) Nodes() []*fuse.Node {
	nodes := []*fuse.Node{t.deviceNode("bpf", -1)}
	for i := 0; i < t.cfg.Units; i++ {
		nodes = append(nodes, t.deviceNode(fmt.Sprintf("bpf%d", i), i))
	}
	// Whoever may use the devices may read the statistics; nobody writes them.
	nodes = append(nodes, &fuse.Node{Name: StatsFile, Mode: t.cfg.Mode &^ 0o222, UID: t.cfg.UID, GID: t.cfg.GID,
		Seekable: true, Open: t.openStats})
	return nodes
}

func (t *Table) deviceNode(name string, unit int) *fuse.Node {
	return &fuse.Node{Name: name, Mode: t.cfg.Mode, UID: t.cfg.UID, GID: t.cfg.GID,
		Open: func(req *fuse.OpenRequest) (fuse.Handle, error) { return t.openDevice(req, unit) }}
}

// takeHandle counts one more open file, or refuses it with ENFILE.
func (t *Table) takeHandleLocked() error {
	if t.cfg.MaxOpen > 0 && t.handles >= t.cfg.MaxOpen {
		return unix.ENFILE
	}
	t.handles++
	return nil
}

func (t *Table) releaseHandle() {
	t.mu.Lock()
	t.handles--
	t.mu.Unlock()
}

func (t *Table) openDevice(req *fuse.OpenRequest, unit int) (fuse.Handle, error) {
	t.mu.Lock()
	if unit >= 0 && t.units[unit] {
		t.mu.Unlock()
		// A numbered unit is exclusive, so scanners such as libpcap's
		// move on to the next one.
		return nil, unix.EBUSY
	}
	if err := t.takeHandleLocked(); err != nil {
		t.mu.Unlock()
		return nil, err
	}
	if unit >= 0 {
		t.units[unit] = true
	}
	t.mu.Unlock()
	h := &deviceHandle{table: t, unit: unit}
	owner := bpf.Owner{Pid: int(req.Pid), Uid: req.Uid, Gid: req.Gid, CanRead: req.Flags&unix.O_ACCMODE != unix.O_WRONLY}
	waker := req.Waker
	h.d = bpf.NewDescriptor(t.cfg.BPF, owner, waker.Wake)
	t.mu.Lock()
	t.open[h.d] = true
	t.mu.Unlock()
	return h, nil
}

// OpenDescriptors reports how many descriptors are open.
func (t *Table) OpenDescriptors() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

type deviceHandle struct {
	table *Table
	unit  int
	d     *bpf.Descriptor
}

func (h *deviceHandle) Read(req *fuse.ReadRequest) error {
	if req.Offset > 0 {
		// The continuation of a read(2) the kernel split: one read(2)
		// returns at most one buffer, already sent with the first part.
		return nil
	}
	_, err := h.d.Read(req.Context, req.Size, req.Flags&unix.O_NONBLOCK != 0, req.Reply)
	return err
}

func (h *deviceHandle) Write(req *fuse.WriteRequest) (int, error) {
	return h.d.Write(req.Data)
}

func (h *deviceHandle) Ioctl(req *fuse.IoctlRequest) (int32, error) {
	return ioctl.Do(h.d, &ioctl.Request{
		Cmd: req.Cmd, Arg: req.Arg, Compat: req.Flags&fuse.IoctlCompat != 0,
		Tid: req.Pid, In: req.In, Out: req.Out,
	})
}

func (h *deviceHandle) Poll(req *fuse.PollRequest) uint32 {
	return h.d.Poll(req.Events)
}

func (h *deviceHandle) Release() {
	h.d.Close()
	t := h.table
	t.mu.Lock()
	delete(t.open, h.d)
	if h.unit >= 0 {
		t.units[h.unit] = false
	}
	t.handles--
	t.mu.Unlock()
}

// Snapshot renders the statistics of every open descriptor, one line each,
// in the spirit of FreeBSD's netstat -B.
func (t *Table) Snapshot() string {
	t.mu.Lock()
	ds := make([]*bpf.Descriptor, 0, len(t.open))
	for d := range t.open {
		ds = append(ds, d)
	}
	t.mu.Unlock()
	infos := make([]bpf.Info, len(ds))
	for i, d := range ds {
		infos[i] = d.Info()
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].ID < infos[j].ID })
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %-7s %-16s %-11s %-9s %12s %12s %12s %12s %8s %8s %8s\n",
		"id", "pid", "interface", "mode", "flags", "recv", "drop", "captured", "rejected", "buflen", "store", "hold")
	for _, in := range infos {
		ifname := in.Interface
		if ifname == "" {
			ifname = "-"
		}
		fmt.Fprintf(&b, "%-6d %-7d %-16s %-11s %-9s %12d %12d %12d %12d %8d %8d %8d\n",
			in.ID, in.Pid, ifname, modeName(in), flagString(in), in.Recv, in.Drop, in.Captured,
			in.FilterRejected, in.BufLen, in.StoreBytes, in.HoldBytes)
	}
	if t.cfg.Sources != nil {
		fmt.Fprintf(&b, "\n%-16s %-6s %12s %12s %12s %12s %12s %12s\n", "interface", "source", "frames", "drops", "helddrops", "oversize", "holds", "expired")
		for _, s := range t.cfg.Sources() {
			fmt.Fprintf(&b, "%-16s %-6s %12d %12s %12s %12s %12s %12s\n", s.Interface, s.Source, s.Frames,
				count(s.Drops), count(s.HeldDrops), count(s.Oversize), count(s.Holds), count(s.Expired))
		}
	}
	return b.String()
}

func count(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// modeName names the buffer mode; zero-copy descriptors show which path
// they use: zbuf-shm (the client's shared pages), zbuf-copy (private memory,
// copied in), zbuf-broken, or plain zbuf before buffers are installed.
func modeName(in bpf.Info) string {
	switch {
	case in.BufMode == bpf.BufModeBuffer:
		return "buffer"
	case in.ZeroCopy != "":
		return "zbuf-" + in.ZeroCopy
	}
	return "zbuf"
}

// flagString abbreviates the descriptor's flags like netstat -B: p promisc,
// i immediate, f header-complete, s direction sees outgoing, b feedback,
// l locked.
func flagString(in bpf.Info) string {
	f := []byte("-------")
	if in.Promisc {
		f[0] = 'p'
	}
	if in.Immediate {
		f[1] = 'i'
	}
	if in.HeaderComplete {
		f[2] = 'f'
	}
	switch in.Direction {
	case bpf.DirectionIn:
		f[3] = 'I'
	case bpf.DirectionOut:
		f[3] = 'O'
	default:
		f[3] = 's'
	}
	if in.Feedback {
		f[4] = 'b'
	}
	if in.Locked {
		f[5] = 'l'
	}
	if !in.CanRead {
		f[6] = 'w'
	}
	return string(f)
}

type statsHandle struct {
	table *Table
	data  []byte
}

func (t *Table) openStats(req *fuse.OpenRequest) (fuse.Handle, error) {
	if req.Flags&unix.O_ACCMODE != unix.O_RDONLY {
		return nil, unix.EACCES
	}
	t.mu.Lock()
	err := t.takeHandleLocked()
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &statsHandle{table: t, data: []byte(t.Snapshot())}, nil
}

func (s *statsHandle) Read(req *fuse.ReadRequest) error {
	if req.Offset >= uint64(len(s.data)) {
		return nil
	}
	return req.Reply(s.data[req.Offset:])
}
func (s *statsHandle) Write(*fuse.WriteRequest) (int, error)   { return 0, unix.EBADF }
func (s *statsHandle) Ioctl(*fuse.IoctlRequest) (int32, error) { return 0, unix.ENOTTY }
func (s *statsHandle) Poll(req *fuse.PollRequest) uint32 {
	return req.Events & (unix.POLLIN | 0x40)
}
func (s *statsHandle) Release() { s.table.releaseHandle() }
