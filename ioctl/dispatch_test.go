package ioctl

import (
	"os"
	"testing"

	"github.com/bpffs/bpffs/bpf"
	"golang.org/x/sys/unix"
)

func newDescriptor(t *testing.T) *bpf.Descriptor {
	t.Helper()
	reg := bpf.NewRegistry()
	reg.Add(bpf.NewInterface("tap0", 1500, []byte{2, 0, 0, 0, 0, 1}, nil))
	d := bpf.NewDescriptor(&bpf.Config{Registry: reg, DefaultBufSize: 4096, MaxBufSize: 524288},
		bpf.Owner{Pid: os.Getpid(), CanRead: true}, func() {})
	t.Cleanup(d.Close)
	return d
}

func do(d *bpf.Descriptor, cmd uint32, in []byte) ([]byte, error) {
	out := make([]byte, outSize(cmd))
	_, err := Do(d, &Request{Cmd: cmd, In: in, Out: out, Tid: uint32(unix.Gettid())})
	return out, err
}

func TestCompatCallersRefused(t *testing.T) {
	d := newDescriptor(t)
	out := make([]byte, 4)
	if _, err := Do(d, &Request{Cmd: BIOCVERSION, Out: out, Compat: true}); err != unix.EOPNOTSUPP {
		t.Fatalf("32-bit BIOCVERSION: %v, want EOPNOTSUPP", err)
	}
}

func TestOtherGroupsAreNotTTY(t *testing.T) {
	d := newDescriptor(t)
	for _, cmd := range []uint32{0x5401 /* TCGETS */, 0x541B /* FIONREAD */, 0x80086601 /* FS_IOC_GETFLAGS */} {
		if _, err := do(d, cmd, nil); err != unix.ENOTTY {
			t.Errorf("%#x: %v, want ENOTTY", cmd, err)
		}
	}
	if _, err := do(d, ior(groupBPF, 240, 4), nil); err != unix.EINVAL {
		t.Errorf("unknown BPF command: %v, want EINVAL", err)
	}
}

func TestShortArgumentsRejected(t *testing.T) {
	d := newDescriptor(t)
	// The kernel always sends _IOC_SIZE bytes; anything shorter is refused
	// rather than read past.
	if _, err := Do(d, &Request{Cmd: BIOCSBLEN, In: []byte{1}, Out: make([]byte, 4)}); err != unix.EINVAL {
		t.Fatalf("short BIOCSBLEN: %v", err)
	}
	if _, err := Do(d, &Request{Cmd: BIOCGBLEN, Out: make([]byte, 2)}); err != unix.EINVAL {
		t.Fatalf("short BIOCGBLEN output: %v", err)
	}
}

func TestFilterFromCallerMemory(t *testing.T) {
	d := newDescriptor(t)
	// ret #0x40: read by process_vm_readv from this very process.
	insns := []byte{0x06, 0, 0, 0, 0x40, 0, 0, 0}
	prog := make([]byte, SizeofProgram)
	EncodeUint32(prog, 1)
	EncodeUint64(prog[8:], uint64(addressOf(insns)))
	if _, err := do(d, BIOCSETF, prog); err != nil {
		t.Fatalf("BIOCSETF: %v", err)
	}
	// A bad pointer is EFAULT and leaves the descriptor as it was.
	EncodeUint64(prog[8:], 8)
	if _, err := do(d, BIOCSETF, prog); err != unix.EFAULT {
		t.Fatalf("bad pointer: %v, want EFAULT", err)
	}
	// Without a visible caller, nothing is read.
	if _, err := Do(d, &Request{Cmd: BIOCSETF, In: prog, Tid: 0}); err != unix.EPERM {
		t.Fatalf("pid 0: %v, want EPERM", err)
	}
}

func TestLockedAllowList(t *testing.T) {
	d := newDescriptor(t)
	if _, err := do(d, BIOCLOCK, nil); err != nil {
		t.Fatal(err)
	}
	v := make([]byte, 4)
	EncodeUint32(v, 1)
	for cmd, want := range map[uint32]error{
		BIOCGBLEN: nil, BIOCIMMEDIATE: nil, BIOCVERSION: nil, BIOCGSTATS: nil,
		BIOCSDIRECTION: unix.EPERM, BIOCGETBUFMODE: unix.EPERM, BIOCSHDRCMPLT: unix.EPERM, BIOCGTSTAMP: unix.EPERM,
	} {
		in := []byte(nil)
		if inSize(cmd) > 0 {
			in = v
		}
		if _, err := do(d, cmd, in); err != want {
			t.Errorf("locked %s: %v, want %v", Name(cmd), err, want)
		}
	}
}
