package zerocopy

import (
	"bufio"
	"fmt"
	"github.com/bpffs/bpffs/internal/procmem"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// vma is one line of /proc/PID/maps.
type vma struct {
	start, end uint64
	perms      string
	offset     uint64
	path       string
}

func (v vma) shared() bool   { return len(v.perms) == 4 && v.perms[3] == 's' }
func (v vma) readable() bool { return len(v.perms) == 4 && v.perms[0] == 'r' }
func (v vma) writable() bool { return len(v.perms) == 4 && v.perms[1] == 'w' }

// findVMAs returns the mappings of process pid that cover [addr, addr+n),
// in order, or EFAULT if any byte of the range is not mapped.
func findVMAs(pid int, addr, n uint64) ([]vma, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, unix.ESRCH
	}
	defer f.Close()
	var out []vma
	next := addr
	end := addr + n
	sc := bufio.NewScanner(f)
	for sc.Scan() && next < end {
		v, ok := parseVMA(sc.Text())
		if !ok || v.end <= next {
			continue
		}
		if v.start > next {
			return nil, unix.EFAULT // a hole in the range
		}
		out = append(out, v)
		next = v.end
	}
	if next < end {
		return nil, unix.EFAULT
	}
	return out, nil
}

func parseVMA(line string) (vma, bool) {
	// start-end perms offset dev inode [path]
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return vma{}, false
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return vma{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	off, err3 := strconv.ParseUint(fields[2], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return vma{}, false
	}
	v := vma{start: start, end: end, perms: fields[1], offset: off}
	if len(fields) > 5 {
		v.path = strings.Join(fields[5:], " ")
	}
	return v, true
}

// threadGroup is the process (thread group) a thread belongs to: remote
// accesses name the process, which outlives the thread that set things up.
func threadGroup(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0, unix.ESRCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, unix.ESRCH
}

// mapShared maps the caller's shared buffer [addr, addr+n), which lies in
// mapping v, into the daemon: the same pages, not a copy.
func mapShared(pid int, v vma, addr, n uint64) ([]byte, error) {
	path := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, v.start, v.end)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, int64(v.offset+(addr-v.start)), int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return mem, nil
}

// process is a client process reached with process_vm_readv/writev. The
// pidfd tells whether the process is still the one that set the buffers
// up: once it exits, its pid may be reused by a stranger, whose memory must
// never be touched.
type process struct {
	pid   int
	pidfd int
}

func openProcess(pid int) (*process, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, unix.ESRCH
	}
	return &process{pid: pid, pidfd: fd}, nil
}

// alive reports whether the process has not exited (a pidfd becomes
// readable when it does).
func (p *process) alive() bool {
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

func (p *process) close() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

// write copies the parts into the process in one call, unless it exited.
func (p *process) write(parts ...procmem.Part) error {
	if !p.alive() {
		return unix.ESRCH
	}
	return procmem.Write(p.pid, parts...)
}

func (p *process) readUint32(addr uint64) (uint32, error) {
	if !p.alive() {
		return 0, unix.ESRCH
	}
	var b [4]byte
	if err := procmem.Read(p.pid, addr, b[:]); err != nil {
		return 0, err
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, nil
}
