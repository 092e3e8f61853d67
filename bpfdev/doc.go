// Package bpfdev is a Go client for BPF character devices: FreeBSD's
// /dev/bpf semantics as bpffs serves them on Linux (see bpf(4) in the
// project's man directory).
//
// Neither golang.org/x/sys/unix (it has the BSD request numbers only) nor
// gopacket's bsdbpf (BSD build tags) can open such a device on Linux; this
// package can, with the request numbers and argument layouts of the
// project's ioctl package.
//
// # Opening and configuring
//
// [Open] opens a device node and [OpenFirst] tries /dev/bpf, then the
// daemon's default mount, /run/bpffs/bpf. The returned [Device] has one
// method per request: [Device.SetBufferSize], [Device.Attach],
// [Device.SetFilter], [Device.SetImmediate], [Device.SetTimeout],
// [Device.Stats] and so on. A request the device refuses returns an
// [*Error] that names the request and wraps the unix.Errno the device
// answered, so errors.Is(err, unix.ENXIO) works.
//
// The file is registered with Go's netpoller: waits for packets park the
// goroutine, not a thread, and read deadlines and context cancellation end
// them cleanly.
//
// # Reading packets
//
// [NewReader] reads the device the classic way: each read(2) returns one
// buffer of records, which [Reader.Next] walks without copying or
// allocating. [NewZeroCopyReader] uses zero-copy buffer mode instead: the
// device writes records straight into two buffers shared with this process
// and hands them over through generation counters, so a busy capture needs
// no system calls at all.
//
// Both readers implement gopacket.PacketDataSource and
// gopacket.ZeroCopyPacketDataSource, so gopacket.NewPacketSource decodes
// what they return. Programs that read buffers themselves can walk them
// with [ParseRecords].
//
// # Waiting and timeouts
//
// Reads through the netpoller are non-blocking, and a non-blocking read of
// a BPF device returns whatever the store buffer holds at once. A reader
// therefore hands out packets as soon as it asks for more and some are
// buffered; when nothing is buffered it waits until a buffer fills, until
// a packet arrives in immediate mode, or — emulated here, because an
// edge-triggered poller never re-polls the device — until the read timeout
// set with [Device.SetTimeout] expires, after which it takes what the store
// buffer holds. When that is nothing, Next tries again, or returns
// [ErrTimeout] if the reader was told to with SetTimeoutError.
//
// The zero-copy reader likewise asks for the store buffer (BIOCROTZBUF)
// whenever it has run out of handed-over buffers and is about to wait, and
// after every wake-up that did not hand one over; under load the buffers
// arrive full and no request is made.
package bpfdev
