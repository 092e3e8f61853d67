package bpf

import (
	"bytes"
	"context"
	"testing"
)

// InputBatch leaves every descriptor exactly as the same frames given one by
// one to Input would: the same records, counters, drops and rotations, for
// filters, snap lengths, directions and buffers that overflow.
func TestInputBatchMatchesInput(t *testing.T) {
	type setup func(t *testing.T, d *Descriptor)
	setups := map[string]setup{
		"all":     func(*testing.T, *Descriptor) {},
		"port9":   func(t *testing.T, d *Descriptor) { d.SetReadFilter(mustCompile(t, udpPort9), true) },
		"out":     func(t *testing.T, d *Descriptor) { d.SetDirection(DirectionOut) },
		"instant": func(t *testing.T, d *Descriptor) { d.SetImmediate(true) },
	}
	frames := make([][]byte, 0, 100)
	for i := range 100 {
		switch i % 3 {
		case 0:
			frames = append(frames, udpFrame(60+i*7, 9))
		case 1:
			frames = append(frames, udpFrame(1514, 53))
		default:
			frames = append(frames, ethFrame(14+i, byte(i)))
		}
	}
	for name, prepare := range setups {
		t.Run(name, func(t *testing.T) {
			var got [2]struct {
				stats Stats
				data  [][]byte
			}
			for k := range 2 {
				tb := newTestBed(t)
				d, _ := tb.attached(4096) // overflows: drops and rotations
				prepare(t, d)
				if k == 0 {
					for i, f := range frames {
						tb.ifp.Input(f, int64(1e9+i))
					}
				} else {
					tb.ifp.InputBatch(len(frames), func(i int) ([]byte, int64) { return frames[i], int64(1e9 + i) })
				}
				got[k].stats = d.Stats()
				for {
					_, err := d.Read(context.Background(), 4096, true, func(b []byte) error {
						got[k].data = append(got[k].data, bytes.Clone(b))
						return nil
					})
					if err != nil {
						break
					}
				}
			}
			if got[0].stats != got[1].stats {
				t.Fatalf("stats: Input %+v, InputBatch %+v", got[0].stats, got[1].stats)
			}
			if len(got[0].data) != len(got[1].data) {
				t.Fatalf("%d buffers read after Input, %d after InputBatch", len(got[0].data), len(got[1].data))
			}
			for i := range got[0].data {
				if !bytes.Equal(got[0].data[i], got[1].data[i]) {
					t.Fatalf("buffer %d differs", i)
				}
			}
			if name != "out" && got[0].stats.Drop == 0 {
				t.Errorf("no drops: the buffers did not overflow, the test proves less")
			}
		})
	}
}
