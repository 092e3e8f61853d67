package ioctl

import (
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
	local := []unix.Iovec{{Base: &dst[0], Len: uint64(len(dst))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(dst)}}
	n, err := unix.ProcessVMReadv(m.tid, local, remote, 0)
	return vmResult(n, len(dst), err)
}

func (m callerMemory) write(addr uint64, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if m.tid <= 0 {
		return errNoCaller
	}
	local := []unix.Iovec{{Base: &src[0], Len: uint64(len(src))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(src)}}
	n, err := unix.ProcessVMWritev(m.tid, local, remote, 0)
	return vmResult(n, len(src), err)
}

// vmResult maps process_vm_* outcomes to what bpf(4) promises: a bad or
// partly mapped address is EFAULT.
func vmResult(n, want int, err error) error {
	switch {
	case err == unix.ESRCH:
		return errNoCaller
	case err != nil:
		return unix.EFAULT
	case n != want:
		return unix.EFAULT
	}
	return nil
}
