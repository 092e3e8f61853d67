package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type report struct {
	Started  time.Time `json:"started"`
	Host     string    `json:"host"`
	CPUs     int       `json:"cpus"`
	Quick    bool      `json:"quick"`
	Source   string    `json:"source"` // the daemon's -source
	Configs  []config  `json:"configs"`
	Results  []result  `json:"results"`
	Duration string    `json:"duration"`
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bpfbench: ")
	var (
		quick      = flag.Bool("quick", false, "a run of a few seconds: 64-byte frames, fewer configurations, one trial per step")
		jsonPath   = flag.String("json", "", "write every trial as JSON to `FILE`")
		pngPath    = flag.String("png", "bpfbench.png", "draw captured versus offered rate to `FILE` (empty: no chart)")
		bpffsPath  = flag.String("bpffs", "", "bpffs binary to run (default: go build ./cmd/bpffs)")
		rootDir    = flag.String("root", "", "the bpffs module directory (default: found from the working directory)")
		configList = flag.String("configs", "", "comma-separated configurations (default: all; -quick: a subset)")
		sizeList   = flag.String("sizes", "", "comma-separated frame lengths (default 64,1514; -quick: 64)")
		trials     = flag.Int("trials", 0, "trials per rate step, majority decides (default 3; -quick: 1)")
		steps      = flag.Int("steps", 0, "binary-search steps below saturation (default 5; -quick: 2)")
		txQueueLen = flag.Int("txqueuelen", 10000, "transmit queue length of both taps (the daemon's default)")
		source     = flag.String("source", "egress", "the daemon's -source: ring, egress or read")
		replot     = flag.String("replot", "", "draw the chart (-png) from a JSON `FILE` of an earlier run, print its table, and exit")
	)
	flag.Parse()
	if *replot != "" {
		if err := replotReport(*replot, *pngPath); err != nil {
			log.Fatal(err)
		}
		return
	}
	p := plan{trials: 3, steps: 5, duration: 500 * time.Millisecond,
		satCount: map[int]int{64: 600000, 1514: 300000}, idle: 250 * time.Millisecond}
	configs := allConfigs
	sizes := []int{64, 1514}
	if *quick {
		p = plan{trials: 1, steps: 2, duration: 150 * time.Millisecond,
			satCount: map[int]int{64: 100000, 1514: 50000}, idle: 150 * time.Millisecond}
		configs = pick(allConfigs, "ceiling", "tcpdump", "buffered-512k", "zerocopy-2m", "zerocopy-2m-x4")
		sizes = []int{64}
	}
	if *trials > 0 {
		p.trials = *trials
	}
	if *steps > 0 {
		p.steps = *steps
	}
	if *configList != "" {
		names := strings.Split(*configList, ",")
		configs = pick(allConfigs, names...)
		if len(configs) != len(names) {
			log.Fatalf("-configs %q: known configurations are %s", *configList, configNames(allConfigs))
		}
	}
	if *sizeList != "" {
		sizes = nil
		for _, s := range strings.Split(*sizeList, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 60 || n > 1514 {
				log.Fatalf("-sizes %q: frame lengths are 60 … 1514", *sizeList)
			}
			sizes = append(sizes, n)
			if _, ok := p.satCount[n]; !ok {
				p.satCount[n] = p.satCount[64] * 64 / max(n, 64)
			}
		}
	}
	if *source != "ring" && *source != "egress" && *source != "read" {
		log.Fatal("-source: want ring, egress or read")
	}
	if *txQueueLen < 1 {
		log.Fatal("-txqueuelen must be positive")
	}
	root := *rootDir
	if root == "" {
		var err error
		if root, err = findRoot(); err != nil {
			log.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	e, err := newEnv(root)
	if err != nil {
		log.Fatal(err)
	}
	e.source = *source
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		log.Printf("%v: stopping and cleaning up", sig)
		cancel()
		e.close()
		os.Exit(130)
	}()
	rep, err := benchmark(ctx, e, p, configs, sizes, *bpffsPath, *txQueueLen)
	e.close()
	if err != nil {
		log.Fatal(err)
	}
	rep.Quick = *quick
	printReport(os.Stdout, rep, sizes)
	if *jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if *pngPath != "" {
		if err := writeChart(*pngPath, rep, sizes); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("chart: %s\n", *pngPath)
	}
}

// replotReport redraws the table and chart of an earlier run.
func replotReport(jsonPath, pngPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	var sizes []int
	for _, r := range rep.Results {
		if !slices.Contains(sizes, r.FrameLen) {
			sizes = append(sizes, r.FrameLen)
		}
	}
	printReport(os.Stdout, &rep, sizes)
	if pngPath == "" {
		return nil
	}
	return writeChart(pngPath, &rep, sizes)
}

func benchmark(ctx context.Context, e *env, p plan, configs []config, sizes []int, bpffsPath string, txQueueLen int) (*report, error) {
	began := time.Now()
	host, _ := os.Hostname()
	rep := &report{Started: began, Host: host, CPUs: runtime.NumCPU(), Configs: configs, Source: e.source}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	logf("building the tools and the daemon")
	if err := e.buildTools(); err != nil {
		return nil, err
	}
	if err := e.buildDaemon(bpffsPath); err != nil {
		return nil, err
	}
	if err := e.setupNetns(txQueueLen); err != nil {
		return nil, err
	}
	if err := e.startDaemon(txQueueLen); err != nil {
		return nil, err
	}
	b := &bench{e: e, p: p, ctx: ctx, logf: logf}
	if err := b.startTapread(); err != nil {
		return nil, err
	}
	// One short burst to each tap first, so that neither configuration
	// pays for first-use costs (page faults, queue set-up).
	for _, tap := range []string{e.ceilTap, e.bpfTap} {
		if _, _, err := b.generate(tap, 64, 0, 20000); err != nil {
			return nil, err
		}
	}
	for _, size := range sizes {
		for _, cfg := range configs {
			logf("%s, %d-byte frames", cfg.Name, size)
			r, err := b.measure(cfg, size)
			if err != nil {
				if ctx.Err() != nil {
					return nil, errInterrupted
				}
				r.Error = err.Error()
				logf("  %s: %v", cfg.Name, err)
			}
			rep.Results = append(rep.Results, r)
		}
	}
	rep.Duration = time.Since(began).Round(time.Second).String()
	return rep, nil
}

func pick(all []config, names ...string) []config {
	var out []config
	for _, n := range names {
		for _, c := range all {
			if c.Name == strings.TrimSpace(n) {
				out = append(out, c)
			}
		}
	}
	return out
}

func configNames(cs []config) string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

func find(rep *report, name string, size int) *result {
	for i := range rep.Results {
		if r := &rep.Results[i]; r.Config == name && r.FrameLen == size && r.Error == "" {
			return r
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "   -"
	}
	return fmt.Sprintf("%4.2f", a/b)
}

func printReport(w io.Writer, rep *report, sizes []int) {
	fmt.Fprintf(w, "\nbpfbench: %d CPUs, %s (rates in kpps; medians; cpu = user+system ns per offered packet of the daemon, or of tapread for the ceiling; cpu@lf at the loss-free rate)\n", rep.CPUs, rep.Duration)
	fmt.Fprintf(w, "%-16s %5s %10s %9s %9s %9s %10s %10s %7s %7s %7s\n",
		"config", "frame", "loss-free", "x ceil", "x tcpdump", "sat offer", "sat capt", "sat loss", "x ceil", "cpu ns", "cpu@lf")
	for _, size := range sizes {
		ceil, dump := find(rep, "ceiling", size), find(rep, "tcpdump", size)
		for _, r := range rep.Results {
			if r.FrameLen != size {
				continue
			}
			if r.Error != "" {
				fmt.Fprintf(w, "%-16s %5d  error: %s\n", r.Config, size, r.Error)
				continue
			}
			var cLF, cSat, dLF float64
			if ceil != nil {
				cLF, cSat = ceil.LossFreePPS, ceil.SatCapturedPPS
			}
			if dump != nil {
				dLF = dump.LossFreePPS
			}
			fmt.Fprintf(w, "%-16s %5d %10.0f %9s %9s %9.0f %10.0f %9.1f%% %7s %7s %7s\n",
				r.Config, size, r.LossFreePPS/1e3, ratio(r.LossFreePPS, cLF), ratio(r.LossFreePPS, dLF),
				r.SatOfferedPPS/1e3, r.SatCapturedPPS/1e3, 100*r.SatDropShare, ratio(r.SatCapturedPPS, cSat),
				cpu(r.SatCPUns), cpu(r.LossFreeCPUns))
		}
	}
	fmt.Fprintln(w)
	for _, size := range sizes {
		ceil, dump := find(rep, "ceiling", size), find(rep, "tcpdump", size)
		for _, r := range rep.Results {
			if r.FrameLen != size || r.Error != "" || r.Config == "ceiling" {
				continue
			}
			line := fmt.Sprintf("ratio %4d B %-16s loss-free", size, r.Config)
			if ceil != nil && ceil.LossFreePPS > 0 {
				line += fmt.Sprintf("  %.2fx ceiling", r.LossFreePPS/ceil.LossFreePPS)
			}
			if dump != nil && dump.LossFreePPS > 0 && r.Config != "tcpdump" {
				line += fmt.Sprintf("  %.2fx tcpdump", r.LossFreePPS/dump.LossFreePPS)
			}
			if ceil != nil && ceil.SatCapturedPPS > 0 {
				line += fmt.Sprintf("   saturation captured %.2fx ceiling", r.SatCapturedPPS/ceil.SatCapturedPPS)
			}
			fmt.Fprintln(w, line)
		}
	}
}

func cpu(ns float64) string {
	if ns <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", ns)
}
