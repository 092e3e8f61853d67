package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// kind is what reads the traffic in a configuration.
type kind int

const (
	kindCeiling kind = iota // tapread on the plain tap
	kindTcpdump             // tcpdump on the plain tap while tapread drains it
	kindDrain               // drain processes on a bpffs node
)

// config is one line of the table.
type config struct {
	Name     string `json:"name"`
	kind     kind
	ZeroCopy bool `json:"zero_copy,omitempty"`
	BufSize  int  `json:"buffer_bytes,omitempty"`
	Readers  int  `json:"readers"`
}

var allConfigs = []config{
	{Name: "ceiling", kind: kindCeiling, Readers: 1},
	{Name: "tcpdump", kind: kindTcpdump, Readers: 1},
	{Name: "buffered-4k", kind: kindDrain, BufSize: 4096, Readers: 1},
	{Name: "buffered-512k", kind: kindDrain, BufSize: 512 << 10, Readers: 1},
	{Name: "zerocopy-2m", kind: kindDrain, ZeroCopy: true, BufSize: 2 << 20, Readers: 1},
	{Name: "zerocopy-2m-x4", kind: kindDrain, ZeroCopy: true, BufSize: 2 << 20, Readers: 4},
	{Name: "zerocopy-2m-x16", kind: kindDrain, ZeroCopy: true, BufSize: 2 << 20, Readers: 16},
}

// trial is one burst of traffic at one requested rate.
type trial struct {
	RequestedPPS float64 `json:"requested_pps"` // 0 = as fast as the generator goes
	Sent         uint64  `json:"sent"`
	OfferedPPS   float64 `json:"offered_pps"`
	// Captured is the least any reader got.
	Captured    uint64  `json:"captured"`
	CapturedPPS float64 `json:"captured_pps"`
	// BPFDrops sums the readers' BIOCGSTATS drops; TapDrops is the tap's
	// tx_dropped delta; KernelDrops is what tcpdump reports.
	BPFDrops    uint64 `json:"bpf_drops"`
	TapDrops    uint64 `json:"tap_drops"`
	KernelDrops uint64 `json:"kernel_drops"`
	// DaemonCPUns is the reading process's CPU time per packet sent: the
	// daemon's, or tapread's for the ceiling.
	DaemonCPUns float64 `json:"reader_cpu_ns_per_packet,omitempty"`
	LossFree    bool    `json:"loss_free"`
}

// step is the trials at one requested rate.
type step struct {
	RequestedPPS float64 `json:"requested_pps"`
	Trials       []trial `json:"trials"`
	Pass         bool    `json:"pass"`
}

// result is one configuration at one frame size.
type result struct {
	Config   string `json:"config"`
	FrameLen int    `json:"frame_len"`
	// Saturation: medians of the trials at the generator's full speed.
	SatOfferedPPS  float64 `json:"saturation_offered_pps"`
	SatCapturedPPS float64 `json:"saturation_captured_pps"`
	SatDropShare   float64 `json:"saturation_drop_share"`
	SatCPUns       float64 `json:"saturation_daemon_cpu_ns_per_packet,omitempty"`
	// LossFreePPS is the highest rate whose step passed (median offered
	// rate of its trials); LossFreeCPUns the daemon's CPU per packet there.
	LossFreePPS   float64 `json:"loss_free_pps"`
	LossFreeCPUns float64 `json:"loss_free_daemon_cpu_ns_per_packet,omitempty"`
	Saturation    step    `json:"saturation"`
	Search        []step  `json:"search"`
	Error         string  `json:"error,omitempty"`
}

type plan struct {
	trials   int           // per step, majority decides
	steps    int           // binary search steps after saturation
	duration time.Duration // traffic per trial below saturation
	satCount map[int]int   // packets per saturation trial, by frame length
	idle     time.Duration // reader's quiet time before it reports
}

// bench runs the configurations on an env.
type bench struct {
	e       *env
	p       plan
	ctx     context.Context
	tapread *child // reader of the ceiling tap, kept for the whole run
	logf    func(format string, args ...any)
}

// startTapread attaches the ceiling reader, then brings the tap up: a tap
// that has a reader before it goes up has its carrier and queue at once.
func (b *bench) startTapread() error {
	c, err := b.e.start(false, "ip", "netns", "exec", b.e.ns, b.e.bin["tapread"], b.e.ceilTap)
	if err != nil {
		return err
	}
	if _, err := c.expect("ready", 5*time.Second); err != nil {
		c.stop()
		return err
	}
	b.tapread = c
	if err := run("ip", "-n", b.e.ns, "link", "set", b.e.ceilTap, "up"); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	return nil
}

// tapreadCount asks the ceiling reader for its running total.
func (b *bench) tapreadCount() (uint64, error) {
	b.tapread.signal(syscall.SIGUSR1)
	line, err := b.tapread.expect("tapread ", 3*time.Second)
	if err != nil {
		return 0, err
	}
	return uint64(keyValues(line)["packets"]), nil
}

// generate runs pktgen on tap and returns what it sent and how fast.
func (b *bench) generate(tap string, frameLen int, pps float64, count int) (uint64, float64, error) {
	args := []string{"netns", "exec", b.e.ns, b.e.bin["pktgen"], "-i", tap, "-n", strconv.Itoa(count),
		"-s", strconv.Itoa(frameLen), "-b", "64", "-d", b.e.mac}
	if pps > 0 {
		args = append(args, "-r", strconv.FormatFloat(pps, 'f', 0, 64))
	}
	c, err := b.e.start(false, "ip", args...)
	if err != nil {
		return 0, 0, err
	}
	line, err := c.expect("sent=", 60*time.Second)
	c.stop()
	if err != nil {
		return 0, 0, err
	}
	kv := keyValues(line)
	return uint64(kv["sent"]), kv["pps"], nil
}

func (b *bench) count(frameLen int, pps float64) int {
	if pps == 0 {
		return b.p.satCount[frameLen]
	}
	return max(int(pps*b.p.duration.Seconds()), 5000)
}

// runTrial offers one burst to cfg and measures it.
func (b *bench) runTrial(cfg config, frameLen int, pps float64) (trial, error) {
	if err := b.ctx.Err(); err != nil {
		return trial{}, err
	}
	t := trial{RequestedPPS: pps}
	n := b.count(frameLen, pps)
	switch cfg.kind {
	case kindCeiling:
		return b.ceilingTrial(t, frameLen, pps, n)
	case kindTcpdump:
		return b.tcpdumpTrial(t, frameLen, pps, n)
	default:
		return b.drainTrial(cfg, t, frameLen, pps, n)
	}
}

func (b *bench) ceilingTrial(t trial, frameLen int, pps float64, n int) (trial, error) {
	before, err := b.tapreadCount()
	if err != nil {
		return t, err
	}
	dropsBefore, err := b.e.txDropped(b.e.ceilTap)
	if err != nil {
		return t, err
	}
	// `ip netns exec` execs the reader itself, so this pid is tapread's.
	cpuBefore, err := processCPU(b.tapread.cmd.Process.Pid)
	if err != nil {
		return t, err
	}
	if t.Sent, t.OfferedPPS, err = b.generate(b.e.ceilTap, frameLen, pps, n); err != nil {
		return t, err
	}
	time.Sleep(100 * time.Millisecond) // let the reader empty the queue
	cpuAfter, err := processCPU(b.tapread.cmd.Process.Pid)
	if err != nil {
		return t, err
	}
	if t.Sent > 0 {
		t.DaemonCPUns = (cpuAfter - cpuBefore) * 1e9 / float64(t.Sent)
	}
	after, err := b.tapreadCount()
	if err != nil {
		return t, err
	}
	dropsAfter, err := b.e.txDropped(b.e.ceilTap)
	if err != nil {
		return t, err
	}
	t.Captured, t.TapDrops = after-before, dropsAfter-dropsBefore
	return finish(t, true), nil
}

var tcpdumpCounts = regexp.MustCompile(`^(\d+) packets (captured|dropped by kernel)`)

func (b *bench) tcpdumpTrial(t trial, frameLen int, pps float64, n int) (trial, error) {
	c, err := b.e.start(true, "ip", "netns", "exec", b.e.ns, "tcpdump", "-n", "-i", b.e.ceilTap, "-w", "/dev/null", "-B", "65536")
	if err != nil {
		return t, err
	}
	defer c.stop()
	if _, err := c.expect("tcpdump: listening on", 10*time.Second); err != nil {
		return t, err
	}
	if t.Sent, t.OfferedPPS, err = b.generate(b.e.ceilTap, frameLen, pps, n); err != nil {
		return t, err
	}
	// libpcap asks TPACKET_V3 to retire a partly filled block after
	// tcpdump's 1 s timeout; frames in it count as captured only then.
	time.Sleep(1200 * time.Millisecond)
	c.signal(syscall.SIGINT)
	got := 0
	for got < 2 {
		line, err := c.expect("", 10*time.Second)
		if err != nil {
			return t, fmt.Errorf("tcpdump statistics: %w", err)
		}
		if m := tcpdumpCounts.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			if m[2] == "captured" {
				t.Captured = v
			} else {
				t.KernelDrops = v
			}
			got++
		}
	}
	return finish(t, false), nil
}

func (b *bench) drainTrial(cfg config, t trial, frameLen int, pps float64, n int) (trial, error) {
	args := []string{filepath.Join(b.e.mnt, "bpf"), b.e.bpfTap, "-b", strconv.Itoa(cfg.BufSize),
		"-q", strconv.Itoa(int(b.p.idle / time.Millisecond))}
	if cfg.ZeroCopy {
		args = append(args, "-z")
	}
	var readers []*child
	defer func() {
		for _, r := range readers {
			r.stop()
		}
	}()
	for range cfg.Readers {
		r, err := b.e.start(false, b.e.bin["drain"], args...)
		if err != nil {
			return t, err
		}
		readers = append(readers, r)
		if _, err := r.expect("ready", 5*time.Second); err != nil {
			return t, err
		}
	}
	dropsBefore, err := b.e.txDropped(b.e.bpfTap)
	if err != nil {
		return t, err
	}
	cpuBefore, err := b.e.daemonCPU()
	if err != nil {
		return t, err
	}
	if t.Sent, t.OfferedPPS, err = b.generate(b.e.bpfTap, frameLen, pps, n); err != nil {
		return t, err
	}
	t.Captured = t.Sent
	// A reader that got nothing never becomes idle; it is stopped and
	// counted as having captured nothing. One that keeps getting frames
	// after the generator stopped is draining what the daemon held back
	// for it: with 4 KiB buffers (two full-size frames a read) that takes
	// seconds, and cutting it short counted such a reader as 0.
	// One deadline for all: each silent reader must see it, not only the
	// first.
	deadline := time.Now().Add(b.p.idle + 15*time.Second)
	for _, r := range readers {
		select {
		case line, ok := <-waitLine(r, "drain "):
			if !ok {
				t.Captured = 0
				continue
			}
			kv := keyValues(line)
			t.Captured = min(t.Captured, uint64(kv["packets"]))
			t.BPFDrops += uint64(kv["drop"])
		case <-time.After(time.Until(deadline)):
			t.Captured = 0
		}
	}
	cpuAfter, err := b.e.daemonCPU()
	if err != nil {
		return t, err
	}
	dropsAfter, err := b.e.txDropped(b.e.bpfTap)
	if err != nil {
		return t, err
	}
	t.TapDrops = dropsAfter - dropsBefore
	if t.Sent > 0 {
		t.DaemonCPUns = (cpuAfter - cpuBefore) * 1e9 / float64(t.Sent)
	}
	// A ring- or egress-fed daemon has captured every frame before the tap's queue,
	// which then drops them all on purpose; its own losses show as frames
	// missing at the readers.
	return finish(t, b.e.source == "read"), nil
}

// waitLine delivers the first line with prefix, or closes without one.
func waitLine(c *child, prefix string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		defer close(ch)
		if line, err := c.expect(prefix, time.Hour); err == nil {
			ch <- line
		}
	}()
	return ch
}

func finish(t trial, countTapDrops bool) trial {
	if t.OfferedPPS > 0 && t.Sent > 0 {
		t.CapturedPPS = t.OfferedPPS * float64(min(t.Captured, t.Sent)) / float64(t.Sent)
	}
	t.LossFree = t.Captured >= t.Sent && t.BPFDrops == 0 && t.KernelDrops == 0 && (!countTapDrops || t.TapDrops == 0)
	return t
}

// runStep runs up to p.trials trials at one rate and stops as soon as the
// majority is known.
func (b *bench) runStep(cfg config, frameLen int, pps float64) (step, error) {
	s := step{RequestedPPS: pps}
	pass, fail := 0, 0
	need := b.p.trials/2 + 1
	for pass < need && fail < need {
		t, err := b.runTrial(cfg, frameLen, pps)
		if err != nil {
			return s, err
		}
		s.Trials = append(s.Trials, t)
		if t.LossFree {
			pass++
		} else {
			fail++
		}
	}
	s.Pass = pass >= need
	return s, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func collect(ts []trial, f func(trial) float64) []float64 {
	out := make([]float64, 0, len(ts))
	for _, t := range ts {
		out = append(out, f(t))
	}
	return out
}

// measure finds cfg's saturation figures and its highest loss-free rate.
func (b *bench) measure(cfg config, frameLen int) (result, error) {
	r := result{Config: cfg.Name, FrameLen: frameLen}
	sat := step{RequestedPPS: 0}
	for range b.p.trials {
		t, err := b.runTrial(cfg, frameLen, 0)
		if err != nil {
			return r, err
		}
		sat.Trials = append(sat.Trials, t)
		b.logf("  %-16s %4d B  saturation: offered %7.0f kpps, captured %7.0f kpps, tap drops %d, bpf drops %d, kernel drops %d",
			cfg.Name, frameLen, t.OfferedPPS/1e3, t.CapturedPPS/1e3, t.TapDrops, t.BPFDrops, t.KernelDrops)
	}
	sat.Pass = len(filter(sat.Trials, func(t trial) bool { return t.LossFree })) > len(sat.Trials)/2
	r.Saturation = sat
	r.SatOfferedPPS = median(collect(sat.Trials, func(t trial) float64 { return t.OfferedPPS }))
	r.SatCapturedPPS = median(collect(sat.Trials, func(t trial) float64 { return t.CapturedPPS }))
	r.SatDropShare = median(collect(sat.Trials, func(t trial) float64 {
		return 1 - float64(min(t.Captured, t.Sent))/float64(max(t.Sent, 1))
	}))
	r.SatCPUns = median(collect(sat.Trials, func(t trial) float64 { return t.DaemonCPUns }))
	if sat.Pass {
		r.LossFreePPS, r.LossFreeCPUns = r.SatOfferedPPS, r.SatCPUns
		return r, nil
	}
	// Binary search between nothing (trivially loss-free) and saturation.
	lo, hi := 0.0, r.SatOfferedPPS
	for range b.p.steps {
		mid := (lo + hi) / 2
		s, err := b.runStep(cfg, frameLen, mid)
		if err != nil {
			return r, err
		}
		r.Search = append(r.Search, s)
		offered := median(collect(s.Trials, func(t trial) float64 { return t.OfferedPPS }))
		captured := median(collect(s.Trials, func(t trial) float64 { return t.CapturedPPS }))
		last := s.Trials[len(s.Trials)-1]
		b.logf("  %-16s %4d B  %7.0f kpps: captured %7.0f kpps, %s (last trial: tap drops %d, bpf drops %d, kernel drops %d)",
			cfg.Name, frameLen, offered/1e3, captured/1e3, passWord(s.Pass), last.TapDrops, last.BPFDrops, last.KernelDrops)
		if s.Pass {
			lo = mid
			r.LossFreePPS = offered
			r.LossFreeCPUns = median(collect(s.Trials, func(t trial) float64 { return t.DaemonCPUns }))
		} else {
			hi = mid
		}
	}
	return r, nil
}

func passWord(ok bool) string {
	if ok {
		return "loss-free"
	}
	return "losses"
}

func filter[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

var errInterrupted = errors.New("interrupted")
