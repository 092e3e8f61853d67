package ioctl

import (
	"math"
	"time"

	"github.com/bpffs/bpffs/bpf"
	"github.com/bpffs/bpffs/bpf/filter"
	"github.com/bpffs/bpffs/bufmode/zerocopy"
	"golang.org/x/sys/unix"
)

// Request is one ioctl(2) as the transport received it in restricted mode:
// the kernel already copied Size(Cmd) bytes in and will copy Out back.
type Request struct {
	Cmd    uint32
	Arg    uint64 // the caller's pointer (or value for _IO commands)
	Compat bool   // a 32-bit caller
	Tid    uint32 // the calling thread as the kernel named it (0: not visible)
	In     []byte
	Out    []byte
}

// allowedWhenLocked is FreeBSD's list of what a BIOCLOCKed descriptor may
// still do; everything else gets EPERM.
var allowedWhenLocked = map[uint32]bool{
	BIOCGBLEN: true, BIOCFLUSH: true, BIOCGDLT: true, BIOCGDLTLIST: true,
	BIOCGETIF: true, BIOCGRTIMEOUT: true, BIOCGSTATS: true, BIOCVERSION: true,
	BIOCGRSIG: true, BIOCGHDRCMPLT: true, BIOCSTSTAMP: true, BIOCFEEDBACK: true,
	FIONREAD_BSD: true, BIOCGFIONREAD: true, BIOCLOCK: true, BIOCSRTIMEOUT: true,
	BIOCIMMEDIATE: true, TIOCGPGRP_BSD: true, BIOCROTZBUF: true,
}

// Do carries out one ioctl on a descriptor and returns ioctl(2)'s result.
// Errors are unix.Errno values with bpf(4)'s meaning; on error nothing about
// the descriptor has changed.
func Do(d *bpf.Descriptor, r *Request) (int32, error) {
	if r.Compat {
		// 32-bit callers use other command numbers and layouts (and a
		// 4-byte-aligned record format); they are refused, not half-served.
		return 0, unix.EOPNOTSUPP
	}
	if Group(r.Cmd) != 'B' && r.Cmd != FIONREAD_BSD && r.Cmd != TIOCGPGRP_BSD {
		// Not ours: TCGETS from isatty() and friends must see ENOTTY.
		return 0, unix.ENOTTY
	}
	if len(r.In) < int(inSize(r.Cmd)) || len(r.Out) < int(outSize(r.Cmd)) {
		return 0, unix.EINVAL
	}
	// Any ioctl stops a pending poll read-timeout (bpf(4)).
	d.CancelPollTimeout()
	if d.Locked() && !allowedWhenLocked[r.Cmd] {
		return 0, unix.EPERM
	}
	mem := callerMemory{tid: int(r.Tid)}
	switch r.Cmd {
	case BIOCVERSION:
		EncodeVersion(r.Out, 1, 1)
	case BIOCGBLEN:
		EncodeUint32(r.Out, d.BufLen())
	case BIOCSBLEN:
		n, _ := DecodeUint32(r.In)
		got, err := d.SetBufLen(n)
		if err != nil {
			return 0, err
		}
		EncodeUint32(r.Out, got)
	case BIOCSETF, BIOCSETFNR, BIOCSETWF:
		p, err := readProgram(mem, r.In)
		if err != nil {
			return 0, err
		}
		switch r.Cmd {
		case BIOCSETF:
			d.SetReadFilter(p, true)
		case BIOCSETFNR:
			d.SetReadFilter(p, false)
		default:
			d.SetWriteFilter(p)
		}
	case BIOCFLUSH:
		d.Flush()
	case BIOCPROMISC:
		return 0, d.Promisc()
	case BIOCGDLT:
		v, err := d.DLT()
		if err != nil {
			return 0, err
		}
		EncodeUint32(r.Out, v)
	case BIOCGDLTLIST:
		return 0, dltList(d, mem, r)
	case BIOCSDLT:
		v, _ := DecodeUint32(r.In)
		return 0, d.SetDLT(v)
	case BIOCGETIF:
		name, err := d.InterfaceName()
		if err != nil {
			return 0, err
		}
		EncodeIfreqName(r.Out, name)
	case BIOCSETIF:
		name, err := DecodeIfreqName(r.In)
		if err != nil {
			// No NUL within IFNAMSIZ, or empty: no such interface.
			return 0, unix.ENXIO
		}
		return 0, d.Attach(name)
	case BIOCSRTIMEOUT:
		tv, _ := DecodeTimeval(r.In)
		if tv.Sec < 0 || tv.Usec < 0 || tv.Usec >= 1000000 {
			return 0, unix.EINVAL
		}
		d.SetReadTimeout(timevalDuration(tv))
	case BIOCGRTIMEOUT:
		t := d.ReadTimeout()
		Timeval{Sec: int64(t / time.Second), Usec: int64(t%time.Second) / 1000}.Encode(r.Out)
	case BIOCGSTATS:
		st := d.Stats()
		// The ABI has 32-bit counters; they wrap as FreeBSD's do.
		EncodeStat(r.Out, uint32(st.Recv), uint32(st.Drop))
	case BIOCIMMEDIATE:
		v, _ := DecodeUint32(r.In)
		d.SetImmediate(v != 0)
	case BIOCGRSIG:
		EncodeUint32(r.Out, d.Signal())
	case BIOCSRSIG:
		v, _ := DecodeUint32(r.In)
		return 0, d.SetSignal(v)
	case BIOCGHDRCMPLT:
		EncodeUint32(r.Out, boolValue(d.HeaderComplete()))
	case BIOCSHDRCMPLT:
		v, _ := DecodeUint32(r.In)
		d.SetHeaderComplete(v != 0)
	case BIOCGDIRECTION:
		EncodeUint32(r.Out, d.Direction())
	case BIOCSDIRECTION:
		v, _ := DecodeUint32(r.In)
		return 0, d.SetDirection(v)
	case BIOCLOCK:
		d.Lock()
	case BIOCFEEDBACK:
		v, _ := DecodeUint32(r.In)
		d.SetFeedback(v != 0)
	case BIOCGETBUFMODE:
		EncodeUint32(r.Out, d.BufMode())
	case BIOCSETBUFMODE:
		v, _ := DecodeUint32(r.In)
		return 0, d.SetBufMode(v)
	case BIOCGETZMAX:
		n, err := d.ZeroCopyMax()
		if err != nil {
			return 0, err
		}
		// A size_t, as FreeBSD writes it (libpcap passes a u_int; the low
		// half carries the value on a little-endian machine).
		EncodeUint64(r.Out, uint64(n))
	case BIOCSETZBUF:
		return 0, setZeroCopy(d, r)
	case BIOCROTZBUF:
		addr, n, err := d.RotateZeroCopy()
		if err != nil {
			return 0, err
		}
		Zbuf{BufA: addr, BufLen: uint64(n)}.Encode(r.Out)
	case BIOCGTSTAMP:
		EncodeUint32(r.Out, d.TimestampType())
	case BIOCSTSTAMP:
		v, _ := DecodeUint32(r.In)
		return 0, d.SetTimestampType(v)
	case BIOCSETVLANPCP:
		v, _ := DecodeUint32(r.In)
		return 0, d.SetVLANPCP(v)
	case BIOCGFIONREAD, FIONREAD_BSD:
		EncodeUint32(r.Out, uint32(min(d.ReadableBytes(), math.MaxInt32)))
	case TIOCGPGRP_BSD:
		// Signal-driven I/O (FIOASYNC) is not offered, so there is no owner.
		EncodeUint32(r.Out, 0)
	default:
		return 0, unix.EINVAL // unknown BPF command, as on FreeBSD
	}
	return 0, nil
}

// inSize and outSize are what the command number says the kernel copies.
func inSize(cmd uint32) uint32 {
	if Dir(cmd)&DirWrite != 0 {
		return Size(cmd)
	}
	return 0
}

func outSize(cmd uint32) uint32 {
	if Dir(cmd)&DirRead != 0 {
		return Size(cmd)
	}
	return 0
}

func boolValue(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func timevalDuration(tv Timeval) time.Duration {
	const maxSec = int64(math.MaxInt64/int64(time.Second)) - 1
	if tv.Sec > maxSec {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(tv.Sec)*time.Second + time.Duration(tv.Usec)*time.Microsecond
}

// readProgram follows struct bpf_program's pointer into the caller's memory
// and validates the instructions with FreeBSD's rules.
func readProgram(mem callerMemory, in []byte) (*filter.Program, error) {
	prog, err := DecodeProgram(in)
	if err != nil {
		return nil, unix.EINVAL
	}
	if prog.Len == 0 {
		return nil, nil // no filter: whole packets
	}
	if prog.Len > filter.MaxInstructions || prog.Insns == 0 {
		return nil, unix.EINVAL
	}
	raw := make([]byte, int(prog.Len)*SizeofInsn)
	if err := mem.read(prog.Insns, raw); err != nil {
		return nil, err
	}
	insns, err := filter.Decode(raw)
	if err != nil {
		return nil, unix.EINVAL
	}
	p, err := filter.Compile(insns)
	if err != nil {
		return nil, unix.EINVAL
	}
	return p, nil
}

// setZeroCopy is BIOCSETZBUF: the order of the checks is FreeBSD's (mode,
// then the buffers themselves, then whether buffers or an interface are
// already there).
func setZeroCopy(d *bpf.Descriptor, r *Request) error {
	if d.BufMode() != bpf.BufModeZbuf {
		return unix.EOPNOTSUPP
	}
	zb, err := DecodeZbuf(r.In)
	if err != nil {
		return unix.EINVAL
	}
	z, err := zerocopy.Attach(int(r.Tid), zb.BufA, zb.BufB, zb.BufLen)
	if err != nil {
		return err
	}
	if err := d.SetZeroCopyBuffers(z); err != nil {
		z.Release()
		return err
	}
	return nil
}

func dltList(d *bpf.Descriptor, mem callerMemory, r *Request) error {
	list, err := d.DLTList()
	if err != nil {
		return err
	}
	req, err := DecodeDLTList(r.In)
	if err != nil {
		return unix.EINVAL
	}
	if req.List != 0 {
		if uint64(len(list)) > uint64(req.Len) {
			return unix.ENOMEM
		}
		raw := make([]byte, 4*len(list))
		for i, v := range list {
			EncodeUint32(raw[4*i:], v)
		}
		if err := mem.write(req.List, raw); err != nil {
			return err
		}
	}
	DLTList{Len: uint32(len(list)), List: req.List}.Encode(r.Out)
	return nil
}
