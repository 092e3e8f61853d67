package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// DoInNetns runs fn on an OS thread switched into the network namespace ns
// (a name under /run/netns or a path). Sockets fn creates stay in ns after
// it returns, so they can be used from any goroutine.
func DoInNetns(ns string, fn func() error) error {
	path := ns
	if !filepath.IsAbs(path) {
		path = filepath.Join("/run/netns", ns)
	}
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer unix.Close(target)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: Go discards it when the goroutine ends.
			errc <- fmt.Errorf("restoring the namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// UDPConnInNetns opens a UDP socket inside ns connected to dst (host:port).
func UDPConnInNetns(ns, dst string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := DoInNetns(ns, func() error {
		conn, err := net.Dial("udp4", dst)
		if err != nil {
			return err
		}
		c = conn.(*net.UDPConn)
		return nil
	})
	return c, err
}
