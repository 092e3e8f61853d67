package bpfdev

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/bpffs/bpffs/internal/daemontest"
	"github.com/bpffs/bpffs/internal/testenv"
)

// BenchmarkRecordsWalk walks a buffer of 60-byte frames; the baseline,
// measured in the same run, is copying the same buffer once (what a
// read(2) of it costs at the least).
func BenchmarkRecordsWalk(b *testing.B) {
	buf, n := syntheticBuffer(0, 1<<20, 60, 256<<10, TimestampMicro)
	dst := make([]byte, len(buf))
	b.ReportAllocs()
	b.ResetTimer()
	var walk, copying time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		copy(dst, buf)
		copying += time.Since(start)
		start = time.Now()
		it := ParseRecords(buf, TimestampMicro)
		for it.Next() {
		}
		walk += time.Since(start)
	}
	b.ReportMetric(float64(walk.Nanoseconds())/float64(b.N*n), "walk-ns/pkt")
	b.ReportMetric(float64(copying.Nanoseconds())/float64(b.N*n), "copy-ns/pkt")
	b.ReportMetric(float64(walk)/float64(copying), "walk/copy")
}

// BenchmarkReadersSynthetic runs both readers over synthetic traffic: the
// buffered one reading 4 KiB buffers from a pipe, the zero-copy one over
// 64 KiB buffers handed over by a simulated device. One op is one packet
// from each; the ratio compares them.
func BenchmarkReadersSynthetic(b *testing.B) {
	d, w := pipeDevice(b)
	pbuf, _ := syntheticBuffer(0, 1000, 60, 4096, TimestampMicro)
	r := newReader(d, len(pbuf))
	stop := make(chan struct{})
	defer close(stop)
	go feedPipe(w, pbuf, stop)

	s := newZeroCopySim(b, 64<<10)
	zbuf, _ := syntheticBuffer(0, 10000, 60, 64<<10-32, TimestampMicro)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		simulateDevice(s, zbuf, stop)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
	buffered := time.Since(start)
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.z.Next(); err != nil {
			b.Fatal(err)
		}
	}
	zeroCopy := time.Since(start)
	b.ReportMetric(float64(buffered.Nanoseconds())/float64(b.N), "buffered-ns/pkt")
	b.ReportMetric(float64(zeroCopy.Nanoseconds())/float64(b.N), "zerocopy-ns/pkt")
	b.ReportMetric(float64(zeroCopy)/float64(buffered), "zerocopy/buffered")
}

// BenchmarkDaemonCapture captures b.N datagrams sent as fast as a socket
// allows, with each reader in turn on a real daemon, and reports the
// packets per second each captured and the ratio of the two.
func BenchmarkDaemonCapture(b *testing.B) {
	d := daemontest.Start(b, 1)
	rates, lost := map[string]float64{}, map[string]int{}
	for _, kind := range []string{"buffered", "zerocopy"} {
		r := newReaders[kind](b, d, nil)
		conn, err := testenv.UDPConnInNetns(d.NS, daemontest.FarIP+":9")
		if err != nil {
			b.Fatal(err)
		}
		payload := make([]byte, 64)
		b.ResetTimer()
		start := time.Now()
		go func() {
			for i := 0; i < b.N; i++ {
				conn.Write(payload)
			}
		}()
		got, last := 0, start
		r.SetReadDeadline(time.Now().Add(time.Duration(b.N)*20*time.Microsecond + 2*time.Second))
		for got < b.N {
			if _, _, err := r.Next(); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				b.Fatal(err)
			}
			got++
			last = time.Now()
		}
		b.StopTimer()
		conn.Close()
		// Up to the last packet: lost ones would add the deadline's wait.
		rates[kind] = float64(got) / last.Sub(start).Seconds()
		lost[kind] = b.N - got
		r.(interface{ Close() error }).Close()
	}
	// ResetTimer forgets metrics, so they are all reported at the end.
	for kind, rate := range rates {
		b.ReportMetric(rate, kind+"-pkt/s")
		b.ReportMetric(float64(lost[kind]), kind+"-lost")
	}
	b.ReportMetric(rates["zerocopy"]/rates["buffered"], "zerocopy/buffered")
}
