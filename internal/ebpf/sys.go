//go:build linux

package ebpf

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpf calls bpf(2) with attr, a prefix of union bpf_attr; the kernel reads
// the rest as zero.
func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

type mapCreateAttr struct {
	mapType, keySize, valueSize, maxEntries, flags uint32
}

// NewRingBuffer creates a BPF ring buffer of size bytes (a power of two and
// a multiple of the page size).
func NewRingBuffer(size int) (int, error) {
	attr := mapCreateAttr{mapType: unix.BPF_MAP_TYPE_RINGBUF, maxEntries: uint32(size)}
	fd, err := bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, fmt.Errorf("ebpf: ring buffer of %d bytes: %w", size, err)
	}
	return fd, nil
}

// NewCounters creates an array map with one value of n 64-bit counters,
// which programs update with atomic adds (LoadMapValue, AtomicAddDW).
func NewCounters(n int) (int, error) {
	attr := mapCreateAttr{mapType: unix.BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: uint32(8 * n), maxEntries: 1}
	fd, err := bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, fmt.Errorf("ebpf: counter array: %w", err)
	}
	return fd, nil
}

type mapElemAttr struct {
	fd    uint32
	_     uint32
	key   ptr
	value ptr
	flags uint64
}

// ReadCounters copies the counters of a NewCounters map into out.
func ReadCounters(fd int, out []uint64) error {
	var key uint32
	attr := mapElemAttr{fd: uint32(fd), key: ptr{p: unsafe.Pointer(&key)}, value: ptr{p: unsafe.Pointer(&out[0])}}
	_, err := bpf(unix.BPF_MAP_LOOKUP_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(&key)
	runtime.KeepAlive(out)
	if err != nil {
		return fmt.Errorf("ebpf: read counters: %w", err)
	}
	return nil
}

type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              ptr
	license            ptr
	logLevel           uint32
	logSize            uint32
	logBuf             ptr
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// LoadSchedCLS loads prog as a BPF_PROG_TYPE_SCHED_CLS program for
// attachType (unix.BPF_TCX_INGRESS or BPF_TCX_EGRESS). When the verifier
// refuses it, the error carries the end of its log.
func LoadSchedCLS(name string, prog []Insn, attachType uint32) (int, error) {
	code := encode(prog)
	license := []byte("GPL\x00") // the ring buffer and skb helpers are GPL-only
	attr := progLoadAttr{
		progType:           unix.BPF_PROG_TYPE_SCHED_CLS,
		insnCnt:            uint32(len(prog)),
		insns:              ptr{p: unsafe.Pointer(&code[0])},
		license:            ptr{p: unsafe.Pointer(&license[0])},
		expectedAttachType: attachType,
	}
	copy(attr.progName[:15], name)
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == nil {
		runtime.KeepAlive(code)
		runtime.KeepAlive(license)
		return fd, nil
	}
	// Again with the verifier's log, to say why.
	logBuf := make([]byte, 1<<16)
	attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(logBuf)), ptr{p: unsafe.Pointer(&logBuf[0])}
	fd, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if err2 == nil {
		return fd, nil
	}
	log := logBuf
	if i := bytes.IndexByte(log, 0); i >= 0 {
		log = log[:i]
	}
	log = bytes.TrimSpace(log)
	if len(log) > 2000 {
		log = log[len(log)-2000:]
	}
	return -1, fmt.Errorf("ebpf: load %s: %w\n%s", name, err, log)
}

type linkCreateAttr struct {
	progFD        uint32
	targetIfindex uint32
	attachType    uint32
	flags         uint32
	relative      uint32
	_             uint32
	expectedRev   uint64
}

// AttachTCX attaches a program to an interface of the calling thread's
// network namespace through a tcx link. The program runs until the
// returned descriptor is closed (or its process exits): nothing is left
// behind on the interface by a crash.
func AttachTCX(progFD, ifindex int, attachType uint32) (int, error) {
	attr := linkCreateAttr{progFD: uint32(progFD), targetIfindex: uint32(ifindex), attachType: attachType}
	fd, err := bpf(unix.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w (a kernel without tcx, before 6.6?)", err)
		}
		return -1, fmt.Errorf("ebpf: attach to ifindex %d: %w", ifindex, err)
	}
	return fd, nil
}

type testRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      ptr
	dataOut     ptr
	repeat      uint32
	duration    uint32
}

// TestRun runs a loaded program once on data as the kernel's
// BPF_PROG_TEST_RUN does (for SCHED_CLS: a socket buffer holding data) and
// returns what the program returned.
func TestRun(progFD int, data []byte) (int32, error) {
	attr := testRunAttr{progFD: uint32(progFD), dataSizeIn: uint32(len(data)), dataIn: ptr{p: unsafe.Pointer(&data[0])}, repeat: 1}
	_, err := bpf(unix.BPF_PROG_TEST_RUN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(data)
	if err != nil {
		return 0, fmt.Errorf("ebpf: test run: %w", err)
	}
	return int32(attr.retval), nil
}
