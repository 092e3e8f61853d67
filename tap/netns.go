//go:build linux

package tap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsPath maps Config.Netns to a file: names live under /run/netns (where
// `ip netns add` puts them), absolute paths are taken as given so callers can
// pass /proc/PID/ns/net.
func netnsPath(netns string) (string, error) {
	if filepath.IsAbs(netns) {
		return netns, nil
	}
	if netns == "." || netns == ".." || strings.ContainsRune(netns, '/') || strings.ContainsRune(netns, 0) {
		return "", fmt.Errorf("tap: netns %q is neither a name under /run/netns nor an absolute path: %w", netns, ErrNoNetns)
	}
	return filepath.Join("/run/netns", netns), nil
}

// openNetns returns an fd for the namespace, or -1 for the caller's own.
func openNetns(netns string) (int, error) {
	if netns == "" {
		return -1, nil
	}
	path, err := netnsPath(netns)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return -1, fmt.Errorf("tap: netns %q (%s) does not exist: %w", netns, path, ErrNoNetns)
		}
		return -1, fmt.Errorf("tap: open netns %s: %w", path, err)
	}
	return fd, nil
}

// inNetns runs fn with the calling thread inside the namespace nsFD (or
// directly when nsFD < 0). Sockets and tun files remember the namespace they
// were created in, so only their creation needs to happen here.
//
// fn runs on a fresh goroutine locked to its thread: if the thread cannot be
// moved back, the goroutine exits still locked and the Go runtime destroys
// the thread instead of letting other goroutines run in the wrong namespace.
func inNetns(nsFD int, fn func() error) error {
	if nsFD < 0 {
		return fn()
	}
	result := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			result <- fmt.Errorf("tap: remember current netns: %w", err)
			return
		}
		defer unix.Close(home)
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("tap: not a network namespace (%v): %w", err, ErrNoNetns)
			} else {
				err = fmt.Errorf("tap: enter netns: %w", err)
			}
			result <- err
			return
		}
		fnErr := fn()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			// Deliberately stay locked: see the function comment.
			result <- errors.Join(fnErr, fmt.Errorf("tap: return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		result <- fnErr
	}()
	return <-result
}

// inDeviceNetns runs fn inside the tap's namespace (see inNetns): for the
// sockets and links that must be made there.
func (d *Device) inDeviceNetns(fn func() error) error {
	nsFD, err := openNetns(d.netns)
	if err != nil {
		return err
	}
	if nsFD >= 0 {
		defer unix.Close(nsFD)
	}
	return inNetns(nsFD, fn)
}
