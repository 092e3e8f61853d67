package fuse

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrRequestTimeout is returned by Mount when the kernel would apply a
// request timeout to this mount: a READ parked longer than the timeout (a
// capture waiting for traffic) makes the kernel abort the whole connection.
var ErrRequestTimeout = errors.New("fs.fuse.default_request_timeout is not 0: the kernel would abort the mount while a read waits for packets (set it with: sysctl -w fs.fuse.default_request_timeout=0)")

// ErrMountBusy means something other than a stale FUSE mount of ours sits on
// the mount point (a live daemon, or another filesystem).
var ErrMountBusy = errors.New("mount point busy")

const requestTimeoutSysctl = "/proc/sys/fs/fuse/default_request_timeout"
const maxPagesSysctl = "/proc/sys/fs/fuse/max_pages_limit"

func checkRequestTimeout() error {
	b, err := os.ReadFile(requestTimeoutSysctl)
	if err != nil {
		return nil // older kernels have no request timeouts at all
	}
	if strings.TrimSpace(string(b)) != "0" {
		return ErrRequestTimeout
	}
	return nil
}

// kernelMaxPages is the most pages one FUSE request may carry on this
// kernel: the sysctl fs.fuse.max_pages_limit (256 by default, i.e. 1 MiB).
func kernelMaxPages() int {
	b, err := os.ReadFile(maxPagesSysctl)
	if err != nil {
		return 256
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 256
	}
	if n > 65535 {
		n = 65535
	}
	return n
}

// MaxSingleRead is the largest read(2) that reaches a handle as one READ
// request whatever the alignment of the caller's buffer: the kernel splits
// reads by page span, max_pages pages per request, and an unaligned buffer
// spans one page more than its size.
func MaxSingleRead() int {
	page := os.Getpagesize()
	return kernelMaxPages()*page - page
}

// mountEntry is one line of /proc/self/mountinfo that matters here.
type mountEntry struct {
	dev    uint64 // st_dev of the mount, as major:minor
	fstype string
}

func findMount(dir string) (*mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var found *mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || unescapeMountPath(fields[4]) != dir {
			continue
		}
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) {
			continue
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &major, &minor); err != nil {
			continue
		}
		// The last matching line is the one on top.
		found = &mountEntry{dev: unix.Mkdev(major, minor), fstype: fields[sep+1]}
	}
	return found, sc.Err()
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// abortConnection aborts the FUSE connection behind a mount through the
// fusectl filesystem, so that every request still waiting (and every
// process stuck on it) fails at once. It mounts fusectl if needed.
func abortConnection(dev uint64) error {
	const ctl = "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(ctl, ".")); err != nil {
		return err
	}
	if entries, _ := os.ReadDir(ctl); len(entries) == 0 {
		if err := unix.Mount("fusectl", ctl, "fusectl", 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount fusectl: %w", err)
		}
	}
	// The connection is named after the kernel's dev_t of the superblock.
	id := uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
	return os.WriteFile(filepath.Join(ctl, strconv.FormatUint(id, 10), "abort"), []byte("1"), 0)
}

// clearStaleMount removes a mount of this filesystem type left on dir by a
// daemon that died. A live mount (its daemon still answers) is ErrMountBusy.
func clearStaleMount(dir, fstype string) error {
	m, err := findMount(dir)
	if err != nil || m == nil {
		return err
	}
	if m.fstype != fstype {
		return fmt.Errorf("%w: %s is a %s mount", ErrMountBusy, dir, m.fstype)
	}
	// statfs always reaches the daemon (stat may be answered from the
	// kernel's attribute cache even after the daemon died).
	var st unix.Statfs_t
	err = unix.Statfs(dir, &st)
	if err == nil {
		return fmt.Errorf("%w: another daemon is serving %s", ErrMountBusy, dir)
	}
	if err != unix.ENOTCONN && err != unix.ECONNABORTED {
		return fmt.Errorf("%w: statfs %s: %v", ErrMountBusy, dir, err)
	}
	_ = abortConnection(m.dev)
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("clear stale mount on %s: %w", dir, err)
	}
	return nil
}
