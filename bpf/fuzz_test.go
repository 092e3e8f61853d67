package bpf

import (
	"bytes"
	"testing"
)

// FuzzCatch feeds arbitrary frames, snap lengths and buffer sizes through the
// catch path (Input and InputBatch) and checks that every buffer read back parses, with each record
// holding a prefix of its frame.
func FuzzCatch(f *testing.F) {
	f.Add([]byte{}, uint32(0), uint32(32), uint8(3))
	f.Add(ethFrame(13, 0), uint32(1), uint32(33), uint8(5))
	f.Add(ethFrame(60, 0), uint32(0xffffffff), uint32(4096), uint8(40))
	f.Add(ethFrame(1514, 0), uint32(96), uint32(100), uint8(7))
	f.Fuzz(func(t *testing.T, frame []byte, snaplen, bufLen uint32, count uint8) {
		tb := newTestBed(t)
		d, _ := tb.attached(bufLen % 70000)
		if snaplen != 0xffffffff {
			d.SetReadFilter(retK(t, snaplen), true)
		}
		// Half one by one, the rest as one batch: the two paths must
		// agree record for record.
		for range count / 2 {
			tb.ifp.Input(frame, wall1)
		}
		tb.ifp.InputBatch(int(count-count/2), func(int) ([]byte, int64) { return frame, wall1 })
		s := d.Stats()
		checkInvariant(t, s)
		if s.Recv != uint64(count) {
			t.Fatalf("Recv %d for %d frames", s.Recv, count)
		}
		var records uint64
		for d.ReadableBytes() > 0 {
			for _, r := range parseRecords(t, readNow(t, d)) {
				records++
				if int(r.datalen) != len(frame) || !bytes.Equal(r.data, frame[:r.caplen]) {
					t.Fatalf("record %+v does not match the frame", r)
				}
			}
		}
		if records != s.Captured {
			t.Fatalf("read %d records, %d captured", records, s.Captured)
		}
	})
}
