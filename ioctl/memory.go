package ioctl

import (
	"github.com/bpffs/bpffs/internal/procmem"
	"golang.org/x/sys/unix"
)

// callerMemory reads and writes the memory of the thread that issued the
// request, identified by the pid the kernel put in the FUSE request header —
// never by anything the client says. The caller is blocked in its ioctl(2)
// while we work, so its thread id cannot be reused underneath us.
type callerMemory struct{ tid int }

// errNoCaller is the answer when the kernel could not name the caller (pid
// 0: it lives in a pid namespace the daemon cannot see), so its memory
// cannot be reached.
const errNoCaller = unix.EPERM

func (m callerMemory) read(addr uint64, dst []byte) error {
	if len(dst) == 0 {
		return nil
	}
	if m.tid <= 0 {
		return errNoCaller
	}
	return vmResult(procmem.Read(m.tid, addr, dst))
}

func (m callerMemory) write(addr uint64, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if m.tid <= 0 {
		return errNoCaller
	}
	return vmResult(procmem.Write(m.tid, procmem.Part{Addr: addr, Data: src}))
}

// vmResult maps process_vm_* outcomes to what bpf(4) promises: a bad or
// partly mapped address is EFAULT; a caller that is gone cannot be reached.
func vmResult(err error) error {
	switch {
	case err == nil:
		return nil
	case err == unix.ESRCH:
		return errNoCaller
	}
	return unix.EFAULT
}
