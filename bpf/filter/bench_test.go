package filter

import (
	"testing"
	"time"
)

var benchSink uint32

type benchPacket struct {
	name string
	pkt  []byte
	want uint32
}

func typicalPackets() []benchPacket {
	return []benchPacket{
		{"match", udp4Frame(9, 5, 0, 64), typicalSnap},
		{"nomatch", udp4Frame(53, 5, 0, 64), 0},
	}
}

// BenchmarkTypicalFilter compares this package with golang.org/x/net/bpf on
// the filter tcpdump generates for 'udp and dst port 9'. The speedup
// sub-benchmark times both machines in the same run and reports the ratio
// of their per-packet costs as "xnet/bpffs".
func BenchmarkTypicalFilter(b *testing.B) {
	prog := mustCompile(b, typicalFilter)
	vm := mustXnetVM(b, typicalFilter)
	packets := typicalPackets()
	for _, bp := range packets {
		if got := prog.Run(bp.pkt, uint32(len(bp.pkt))); got != bp.want {
			b.Fatalf("bpffs %s: Run = %d, want %d", bp.name, got, bp.want)
		}
		if got, err := vm.Run(bp.pkt); err != nil || uint32(got) != bp.want {
			b.Fatalf("xnet %s: Run = %d, %v, want %d", bp.name, got, err, bp.want)
		}
	}

	b.Run("bpffs", func(b *testing.B) {
		for _, bp := range packets {
			b.Run(bp.name, func(b *testing.B) {
				b.ReportAllocs()
				wireLen := uint32(len(bp.pkt))
				var r uint32
				for b.Loop() {
					r += prog.Run(bp.pkt, wireLen)
				}
				benchSink = r
			})
		}
	})
	b.Run("xnet", func(b *testing.B) {
		for _, bp := range packets {
			b.Run(bp.name, func(b *testing.B) {
				b.ReportAllocs()
				var r int
				for b.Loop() {
					n, _ := vm.Run(bp.pkt)
					r += n
				}
				benchSink = uint32(r)
			})
		}
	})
	b.Run("speedup", func(b *testing.B) {
		b.ReportAllocs()
		match, nomatch := packets[0].pkt, packets[1].pkt
		wireMatch, wireNomatch := uint32(len(match)), uint32(len(nomatch))
		var ours, theirs time.Duration
		var r uint32
		for i := 0; i < b.N; i++ {
			start := time.Now()
			for range 64 {
				r += prog.Run(match, wireMatch)
				r += prog.Run(nomatch, wireNomatch)
			}
			mid := time.Now()
			for range 64 {
				n, _ := vm.Run(match)
				m, _ := vm.Run(nomatch)
				r += uint32(n + m)
			}
			end := time.Now()
			ours += mid.Sub(start)
			theirs += end.Sub(mid)
		}
		benchSink = r
		packetsRun := float64(b.N) * 128
		b.ReportMetric(float64(ours.Nanoseconds())/packetsRun, "bpffs-ns/pkt")
		b.ReportMetric(float64(theirs.Nanoseconds())/packetsRun, "xnet-ns/pkt")
		b.ReportMetric(float64(theirs)/float64(ours), "xnet/bpffs")
	})
}
