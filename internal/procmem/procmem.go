package procmem

import "golang.org/x/sys/unix"

// Part is one range of the other process's memory and the local bytes that
// go to it (Write) or come from it (Read).
type Part struct {
	Addr uint64
	Data []byte
}

// Read copies len(dst) bytes at addr in process pid into dst. A transfer
// that stops short (part of the range is not mapped) is EFAULT; other
// failures are the system call's errno (ESRCH: no such process).
func Read(pid int, addr uint64, dst []byte) error {
	if len(dst) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &dst[0], Len: uint64(len(dst))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(dst)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	return result(n, len(dst), err)
}

// Write copies every part into process pid with one system call, in order,
// so a later part never lands before an earlier one. Empty parts are
// skipped. Errors are as for Read.
func Write(pid int, parts ...Part) error {
	local := make([]unix.Iovec, 0, len(parts))
	remote := make([]unix.RemoteIovec, 0, len(parts))
	total := 0
	for _, p := range parts {
		if len(p.Data) == 0 {
			continue
		}
		local = append(local, unix.Iovec{Base: &p.Data[0], Len: uint64(len(p.Data))})
		remote = append(remote, unix.RemoteIovec{Base: uintptr(p.Addr), Len: len(p.Data)})
		total += len(p.Data)
	}
	if total == 0 {
		return nil
	}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	return result(n, total, err)
}

func result(n, want int, err error) error {
	switch {
	case err != nil:
		return err
	case n != want:
		return unix.EFAULT
	}
	return nil
}
