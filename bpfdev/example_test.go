package bpfdev_test

import (
	"encoding/binary"
	"fmt"
	"log"
	"time"

	"github.com/bpffs/bpffs/bpfdev"
	"github.com/gopacket/gopacket"
	"golang.org/x/net/bpf"
)

// record builds one capture record as the device lays it out: a 26-byte
// struct bpf_hdr (seconds, microseconds, caplen, datalen, hdrlen) followed
// by the packet, padded so the next record starts at a multiple of 8.
func record(buf []byte, sec, usec int64, packet []byte) []byte {
	for len(buf)%8 != 0 {
		buf = append(buf, 0)
	}
	hdr := make([]byte, 26)
	binary.NativeEndian.PutUint64(hdr[0:], uint64(sec))
	binary.NativeEndian.PutUint64(hdr[8:], uint64(usec))
	binary.NativeEndian.PutUint32(hdr[16:], uint32(len(packet)))
	binary.NativeEndian.PutUint32(hdr[20:], uint32(len(packet)))
	binary.NativeEndian.PutUint16(hdr[24:], 26)
	return append(append(buf, hdr...), packet...)
}

// Walk a buffer of records, such as one read(2) of a BPF device returns.
func ExampleParseRecords() {
	var buf []byte
	buf = record(buf, 1700000000, 250000, []byte("first packet"))
	buf = record(buf, 1700000001, 500000, []byte("second"))

	it := bpfdev.ParseRecords(buf, bpfdev.TimestampMicro)
	for it.Next() {
		r := it.Record()
		fmt.Printf("%s %d/%d %q\n", r.Timestamp.UTC().Format(time.StampMicro), r.CaptureLength, r.Length, r.Data)
	}
	if err := it.Err(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// Nov 14 22:13:20.250000 12/12 "first packet"
	// Nov 14 22:13:21.500000 6/6 "second"
}

// Capture UDP on an interface served by bpffs and decode it with gopacket.
func ExampleNewReader() {
	dev, err := bpfdev.OpenFirst()
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	if _, err := dev.SetBufferSize(1 << 20); err != nil {
		log.Fatal(err)
	}
	if err := dev.Attach("bpf0tap"); err != nil {
		log.Fatal(err)
	}
	// udp: EtherType IPv4 and IP protocol 17, whole packets.
	err = dev.SetFilter([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 23, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 17, SkipTrue: 1},
		bpf.RetConstant{Val: 262144},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := dev.SetImmediate(true); err != nil {
		log.Fatal(err)
	}
	r, err := bpfdev.NewReader(dev)
	if err != nil {
		log.Fatal(err)
	}
	for p := range gopacket.NewPacketSource(r, r.LinkType()).Packets() {
		fmt.Println(p)
	}
}

// Read packets without copying them, from buffers the device fills in
// place.
func ExampleNewZeroCopyReader() {
	dev, err := bpfdev.Open("/run/bpffs/bpf")
	if err != nil {
		log.Fatal(err)
	}
	z, err := bpfdev.NewZeroCopyReader(dev, 1<<20) // before Attach
	if err != nil {
		log.Fatal(err)
	}
	defer z.Close()
	if err := dev.Attach("bpf0tap"); err != nil {
		log.Fatal(err)
	}
	if err := dev.SetTimeout(100 * time.Millisecond); err != nil {
		log.Fatal(err)
	}
	for {
		data, ci, err := z.Next() // data is valid until the next call
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ci.Timestamp, ci.Length, len(data))
	}
}
