package bpfdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/bpffs/bpffs/ioctl"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// DefaultPaths are the nodes OpenFirst tries, in order: the conventional
// /dev/bpf (bpffs -link /dev), then the daemon's default mount.
var DefaultPaths = []string{"/dev/bpf", "/run/bpffs/bpf"}

// Direction selects which packets a descriptor sees (BIOCSDIRECTION).
type Direction uint32

const (
	In    Direction = ioctl.BPF_D_IN    // received packets only
	InOut Direction = ioctl.BPF_D_INOUT // both directions (the default)
	Out   Direction = ioctl.BPF_D_OUT   // sent packets only
)

func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case InOut:
		return "inout"
	case Out:
		return "out"
	}
	return fmt.Sprintf("Direction(%d)", uint32(d))
}

// TimestampType is a BIOCSTSTAMP value: one format, optionally with flags.
type TimestampType uint32

const (
	TimestampMicro   TimestampType = ioctl.BPF_T_MICROTIME // struct bpf_hdr, microseconds (the default)
	TimestampNano    TimestampType = ioctl.BPF_T_NANOTIME  // struct bpf_xhdr, nanoseconds
	TimestampBintime TimestampType = ioctl.BPF_T_BINTIME   // struct bpf_xhdr, 1/2^64 s
	TimestampNone    TimestampType = ioctl.BPF_T_NONE      // no timestamps

	// Flags, or-ed onto a format other than TimestampNone.
	TimestampFast      TimestampType = ioctl.BPF_T_FAST      // coarser, cheaper clock
	TimestampMonotonic TimestampType = ioctl.BPF_T_MONOTONIC // time since boot, not wall time
)

func (t TimestampType) String() string {
	var s string
	switch t.Format() {
	case TimestampMicro:
		s = "micro"
	case TimestampNano:
		s = "nano"
	case TimestampBintime:
		s = "bintime"
	default:
		return "none"
	}
	if t&TimestampFast != 0 {
		s += "|fast"
	}
	if t&TimestampMonotonic != 0 {
		s += "|monotonic"
	}
	return s
}

// Format is t without its flags.
func (t TimestampType) Format() TimestampType { return t & ioctl.BPF_T_FORMAT_MASK }

// Valid reports whether the device accepts t.
func (t TimestampType) Valid() bool { return ioctl.ValidTimestampType(uint32(t)) }

// Error is a request the device refused. Err is the unix.Errno it answered,
// so errors.Is(err, unix.EINVAL) and errors.As(err, &errno) work.
type Error struct {
	Op   string // the request's C name ("BIOCSETIF"), or "read"/"write"
	Path string
	Err  error
}

func (e *Error) Error() string { return "bpfdev: " + e.Op + " " + e.Path + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// ErrClosed is returned by methods of a closed Device or reader.
var ErrClosed = fs.ErrClosed

// Device is one open BPF descriptor. Its configuration methods may be
// called from any goroutine; a reader should be used by one goroutine at a
// time.
type Device struct {
	file     *os.File
	conn     syscall.RawConn
	path     string
	pollable bool

	closed    atomic.Bool
	timestamp atomic.Uint32 // last TimestampType set: how records are read
	timeout   atomic.Int64  // last read timeout set, in nanoseconds

	closeMu  sync.Mutex
	onClose  func() // releases the zero-copy buffers after the file is closed
	closeErr error
}

// Open opens a BPF device node for reading and writing.
func Open(path string) (*Device, error) {
	// O_NONBLOCK lets os.NewFile register the descriptor with the netpoller;
	// the device answers poll requests, so waits can park goroutines.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	file := os.NewFile(uintptr(fd), path)
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	d := &Device{file: file, conn: conn, path: path, pollable: true}
	// A file the netpoller refused has no deadlines; it must then block in
	// read(2) itself, or reads would spin on EAGAIN.
	if file.SetReadDeadline(time.Time{}) != nil {
		d.pollable = false
		var serr error
		conn.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) })
		if serr != nil {
			file.Close()
			return nil, &os.PathError{Op: "open", Path: path, Err: serr}
		}
	}
	return d, nil
}

// OpenFirst opens the first of DefaultPaths that exists and opens. The
// error names every path tried.
func OpenFirst() (*Device, error) {
	var errs []error
	for _, p := range DefaultPaths {
		d, err := Open(p)
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("bpfdev: no BPF device could be opened: %w", errors.Join(errs...))
}

// Path is the node the device was opened from.
func (d *Device) Path() string { return d.path }

// Close closes the descriptor (detaching it) and releases zero-copy
// buffers. A reader blocked in Next returns ErrClosed. Packets returned by
// a zero-copy reader must not be used after Close.
func (d *Device) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed.Swap(true) {
		return d.closeErr
	}
	d.closeErr = d.file.Close()
	if d.onClose != nil {
		d.onClose()
		d.onClose = nil
	}
	return d.closeErr
}

func (d *Device) fail(cmd uint32, err error) error {
	if d.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return &Error{Op: ioctl.Name(cmd), Path: d.path, Err: err}
}

// ioctl sends cmd with arg, a pointer to the argument's memory (or nil).
// Go heap memory does not move, and the pointer conversion happens in the
// system call's argument list, which keeps arg alive for the call.
func (d *Device) ioctl(cmd uint32, arg unsafe.Pointer) error {
	var errno syscall.Errno
	err := d.conn.Control(func(fd uintptr) {
		for {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(cmd), uintptr(arg))
			if errno != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return d.fail(cmd, err)
	}
	if errno != 0 {
		return d.fail(cmd, errno)
	}
	return nil
}

func (d *Device) getUint32(cmd uint32) (uint32, error) {
	var v uint32
	err := d.ioctl(cmd, unsafe.Pointer(&v))
	return v, err
}

func (d *Device) setUint32(cmd uint32, v uint32) error {
	return d.ioctl(cmd, unsafe.Pointer(&v))
}

func boolUint32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Attach binds the descriptor to an interface (BIOCSETIF). Whatever was
// buffered is discarded and the counters are zeroed.
func (d *Device) Attach(ifname string) error {
	var ifr [ioctl.SizeofIfreq]byte
	if err := ioctl.EncodeIfreqName(ifr[:], ifname); err != nil {
		return fmt.Errorf("bpfdev: attach to %q: %w", ifname, err)
	}
	return d.ioctl(ioctl.BIOCSETIF, unsafe.Pointer(&ifr))
}

// Interface is the name of the attached interface (BIOCGETIF).
func (d *Device) Interface() (string, error) {
	var ifr [ioctl.SizeofIfreq]byte
	if err := d.ioctl(ioctl.BIOCGETIF, unsafe.Pointer(&ifr)); err != nil {
		return "", err
	}
	name, err := ioctl.DecodeIfreqName(ifr[:])
	if err != nil {
		return "", &Error{Op: "BIOCGETIF", Path: d.path, Err: err}
	}
	return name, nil
}

// BufferSize is the size of the device's buffers (BIOCGBLEN), which is the
// byte count every read(2) must ask for.
func (d *Device) BufferSize() (int, error) {
	v, err := d.getUint32(ioctl.BIOCGBLEN)
	return int(v), err
}

// SetBufferSize asks for buffers of n bytes (BIOCSBLEN) and returns the
// size granted: the device clamps n to its limits. It must precede Attach.
func (d *Device) SetBufferSize(n int) (int, error) {
	if n <= 0 || n > 1<<31-1 {
		return 0, fmt.Errorf("bpfdev: buffer size %d out of range", n)
	}
	v := uint32(n)
	if err := d.ioctl(ioctl.BIOCSBLEN, unsafe.Pointer(&v)); err != nil {
		return 0, err
	}
	return int(v), nil
}

// program is struct bpf_program. The instruction pointer is a real Go
// pointer so the collector sees it.
type program struct {
	length uint32
	_      uint32
	insns  *bpf.RawInstruction
}

func (d *Device) setProgram(cmd uint32, insns []bpf.RawInstruction) error {
	if len(insns) > ioctl.BPF_MAXINSNS {
		return fmt.Errorf("bpfdev: %s: %d instructions, at most %d allowed", ioctl.Name(cmd), len(insns), ioctl.BPF_MAXINSNS)
	}
	p := program{length: uint32(len(insns))}
	if len(insns) > 0 {
		p.insns = &insns[0]
	}
	err := d.ioctl(cmd, unsafe.Pointer(&p))
	runtime.KeepAlive(insns)
	return err
}

func assemble(what string, prog []bpf.Instruction) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("bpfdev: %s: %w", what, err)
	}
	return raw, nil
}

// SetFilter assembles and installs a read filter (BIOCSETF); it also
// discards what was buffered. An empty program removes the filter.
func (d *Device) SetFilter(prog []bpf.Instruction) error {
	raw, err := assemble("read filter", prog)
	if err != nil {
		return err
	}
	return d.setProgram(ioctl.BIOCSETF, raw)
}

// SetFilterRaw installs an assembled read filter (BIOCSETF), for example
// one compiled by tcpdump -dd.
func (d *Device) SetFilterRaw(prog []bpf.RawInstruction) error {
	return d.setProgram(ioctl.BIOCSETF, prog)
}

// SetWriteFilter installs a filter that every written frame must pass
// (BIOCSETWF); frames it rejects fail with EPERM.
func (d *Device) SetWriteFilter(prog []bpf.Instruction) error {
	raw, err := assemble("write filter", prog)
	if err != nil {
		return err
	}
	return d.setProgram(ioctl.BIOCSETWF, raw)
}

// SetWriteFilterRaw is SetWriteFilter for an assembled program.
func (d *Device) SetWriteFilterRaw(prog []bpf.RawInstruction) error {
	return d.setProgram(ioctl.BIOCSETWF, prog)
}

// SetImmediate turns immediate mode on or off (BIOCIMMEDIATE): with it, a
// packet completes a wait as soon as it is stored.
func (d *Device) SetImmediate(on bool) error {
	return d.setUint32(ioctl.BIOCIMMEDIATE, boolUint32(on))
}

// SetTimeout sets the read timeout (BIOCSRTIMEOUT), rounded down to
// microseconds; 0 means none. Readers wait at most this long before taking
// a partly filled buffer.
func (d *Device) SetTimeout(timeout time.Duration) error {
	if timeout < 0 {
		return fmt.Errorf("bpfdev: negative read timeout %v", timeout)
	}
	var tv [ioctl.SizeofTimeval]byte
	ioctl.Timeval{Sec: int64(timeout / time.Second), Usec: int64(timeout%time.Second) / 1000}.Encode(tv[:])
	if err := d.ioctl(ioctl.BIOCSRTIMEOUT, unsafe.Pointer(&tv)); err != nil {
		return err
	}
	d.timeout.Store(int64(timeout / time.Microsecond * time.Microsecond))
	return nil
}

// Timeout is the read timeout as the device reports it (BIOCGRTIMEOUT).
func (d *Device) Timeout() (time.Duration, error) {
	var b [ioctl.SizeofTimeval]byte
	if err := d.ioctl(ioctl.BIOCGRTIMEOUT, unsafe.Pointer(&b)); err != nil {
		return 0, err
	}
	tv, _ := ioctl.DecodeTimeval(b[:])
	return time.Duration(tv.Sec)*time.Second + time.Duration(tv.Usec)*time.Microsecond, nil
}

// SetDirection chooses which packets are seen (BIOCSDIRECTION).
func (d *Device) SetDirection(dir Direction) error {
	if dir > Out {
		return fmt.Errorf("bpfdev: invalid direction %d", uint32(dir))
	}
	return d.setUint32(ioctl.BIOCSDIRECTION, uint32(dir))
}

// Direction reports which packets are seen (BIOCGDIRECTION).
func (d *Device) Direction() (Direction, error) {
	v, err := d.getUint32(ioctl.BIOCGDIRECTION)
	return Direction(v), err
}

// SetTimestamp chooses the timestamp format of records (BIOCSTSTAMP).
// Change it before capturing: readers decode records with the type last
// set here.
func (d *Device) SetTimestamp(t TimestampType) error {
	if !t.Valid() {
		return fmt.Errorf("bpfdev: invalid timestamp type %#x", uint32(t))
	}
	if err := d.setUint32(ioctl.BIOCSTSTAMP, uint32(t)); err != nil {
		return err
	}
	d.timestamp.Store(uint32(t))
	return nil
}

// Timestamp reports the timestamp type (BIOCGTSTAMP).
func (d *Device) Timestamp() (TimestampType, error) {
	v, err := d.getUint32(ioctl.BIOCGTSTAMP)
	return TimestampType(v), err
}

// SetHeaderComplete says whether written frames carry their own source
// address (BIOCSHDRCMPLT); when off, the device fills in its own.
func (d *Device) SetHeaderComplete(on bool) error {
	return d.setUint32(ioctl.BIOCSHDRCMPLT, boolUint32(on))
}

// SetFeedback makes written frames also be received as incoming ones
// (BIOCFEEDBACK).
func (d *Device) SetFeedback(on bool) error {
	return d.setUint32(ioctl.BIOCFEEDBACK, boolUint32(on))
}

// Promisc asks for promiscuous mode on the attached interface (BIOCPROMISC).
func (d *Device) Promisc() error { return d.ioctl(ioctl.BIOCPROMISC, nil) }

// DLT is the link type of the attached interface (BIOCGDLT), e.g.
// DLT_EN10MB (1) for Ethernet.
func (d *Device) DLT() (uint32, error) { return d.getUint32(ioctl.BIOCGDLT) }

// dltList is struct bpf_dltlist.
type dltList struct {
	length uint32
	_      uint32
	list   *uint32
}

// DLTList is the link types the attached interface offers (BIOCGDLTLIST).
func (d *Device) DLTList() ([]uint32, error) {
	var q dltList
	if err := d.ioctl(ioctl.BIOCGDLTLIST, unsafe.Pointer(&q)); err != nil {
		return nil, err
	}
	if q.length == 0 {
		return nil, nil
	}
	list := make([]uint32, q.length)
	q.list = &list[0]
	err := d.ioctl(ioctl.BIOCGDLTLIST, unsafe.Pointer(&q))
	runtime.KeepAlive(list)
	if err != nil {
		return nil, err
	}
	return list[:min(int(q.length), len(list))], nil
}

// Stats returns the packets seen by the descriptor (before the filter)
// and those dropped for lack of buffer space since the last attach, filter
// change or flush (BIOCGSTATS). Both are 32-bit counters that wrap.
func (d *Device) Stats() (recv, drop uint32, err error) {
	var b [ioctl.SizeofStat]byte
	if err := d.ioctl(ioctl.BIOCGSTATS, unsafe.Pointer(&b)); err != nil {
		return 0, 0, err
	}
	return binary.NativeEndian.Uint32(b[0:]), binary.NativeEndian.Uint32(b[4:]), nil
}

// Flush discards buffered packets and zeroes the counters (BIOCFLUSH).
func (d *Device) Flush() error { return d.ioctl(ioctl.BIOCFLUSH, nil) }

// Version is the filter machine's version (BIOCVERSION); 1.1 here.
func (d *Device) Version() (major, minor int, err error) {
	var b [ioctl.SizeofVersion]byte
	if err := d.ioctl(ioctl.BIOCVERSION, unsafe.Pointer(&b)); err != nil {
		return 0, 0, err
	}
	return int(binary.NativeEndian.Uint16(b[0:])), int(binary.NativeEndian.Uint16(b[2:])), nil
}

// Lock forbids every further change of the descriptor's configuration
// (BIOCLOCK); it cannot be undone.
func (d *Device) Lock() error { return d.ioctl(ioctl.BIOCLOCK, nil) }

// ReadableBytes is how many bytes a read would return now
// (BIOCGFIONREAD).
func (d *Device) ReadableBytes() (int, error) {
	v, err := d.getUint32(ioctl.BIOCGFIONREAD)
	return int(int32(v)), err
}

// ErrEmptyFrame is returned by WritePacket for a frame of no bytes, which
// the device would silently ignore.
var ErrEmptyFrame = errors.New("bpfdev: empty frame")

// WritePacket sends one complete link-layer frame through the attached
// interface (write(2)).
func (d *Device) WritePacket(frame []byte) error {
	if len(frame) == 0 {
		return ErrEmptyFrame
	}
	n, err := d.file.Write(frame)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		return &Error{Op: "write", Path: d.path, Err: err}
	}
	if n != len(frame) {
		return &Error{Op: "write", Path: d.path, Err: fmt.Errorf("short write: %d of %d bytes", n, len(frame))}
	}
	return nil
}

// bufferMode reports BIOCGETBUFMODE.
func (d *Device) bufferMode() (uint32, error) { return d.getUint32(ioctl.BIOCGETBUFMODE) }
