//go:build linux

package tap

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors callers are expected to tell apart; the errors returned wrap them
// with the interface and namespace involved.
var (
	// ErrNotTap: an interface of that name exists but is not a tap (a
	// dummy, a veth, a tun-mode device, ...). It is left untouched.
	ErrNotTap = errors.New("interface exists but is not a tap")
	// ErrBusy: the tap exists and another file already holds it (the
	// kernel answers TUNSETIFF with EBUSY).
	ErrBusy = errors.New("tap is already attached by another process")
	// ErrNoNetns: Config.Netns names no network namespace.
	ErrNoNetns = errors.New("no such network namespace")
	// ErrGone: the tap was deleted (e.g. `ip link del`) while open. On Linux
	// the detached file then fails every read, write and ioctl with EBADFD.
	ErrGone = errors.New("tap was deleted")
	// ErrClosed: the Device was closed.
	ErrClosed = errors.New("tap device is closed")
	// ErrInvalid: a Config field or an argument is malformed; nothing was
	// changed.
	ErrInvalid = errors.New("invalid argument")
)

// Config says which tap to open and where.
type Config struct {
	Name       string // interface name, e.g. "bpf0tap"
	Netns      string // "" = the caller's own network namespace; otherwise a name under /run/netns or an absolute path
	TxQueueLen int    // 0 = leave as is; the daemon passes e.g. 10000 so wake-up delays do not drop frames
}

// Device is one open tap. Its methods are safe for concurrent use.
type Device struct {
	name    string
	netns   string
	index   int
	created bool

	// fdMu guards the file descriptors against Close: WriteFrame and the
	// queries hold it shared, Close exclusively.
	fdMu  sync.RWMutex
	tapFD int // -1 once closed
	ctlFD int // AF_INET socket created inside the tap's namespace

	mu      sync.Mutex // guards readers and closed
	readers []*Reader
	closed  bool
}

// ethernetHeaderLen is the smallest frame a tap accepts.
const ethernetHeaderLen = 14

// ifreq mirrors struct ifreq; the union is read per request.
type ifreq struct {
	name [unix.IFNAMSIZ]byte
	data [24]byte
}

func newIfreq(name string) *ifreq {
	var ifr ifreq
	copy(ifr.name[:unix.IFNAMSIZ-1], name)
	return &ifr
}

func (ifr *ifreq) ifName() string {
	n := 0
	for n < len(ifr.name) && ifr.name[n] != 0 {
		n++
	}
	return string(ifr.name[:n])
}

func (ifr *ifreq) uint16() uint16     { return *(*uint16)(unsafe.Pointer(&ifr.data[0])) }
func (ifr *ifreq) setUint16(v uint16) { *(*uint16)(unsafe.Pointer(&ifr.data[0])) = v }
func (ifr *ifreq) int32() int32       { return *(*int32)(unsafe.Pointer(&ifr.data[0])) }
func (ifr *ifreq) setInt32(v int32)   { *(*int32)(unsafe.Pointer(&ifr.data[0])) = v }

func ioctlIfreq(fd int, req uint, ifr *ifreq) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

// validName applies the kernel's rules for interface names (dev_valid_name)
// and refuses "%d" templates, whose result could not be checked beforehand.
func validName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("tap: empty interface name: %w", ErrInvalid)
	case len(name) >= unix.IFNAMSIZ:
		return fmt.Errorf("tap: interface name %q is longer than %d bytes: %w", name, unix.IFNAMSIZ-1, ErrInvalid)
	case name == "." || name == "..":
		return fmt.Errorf("tap: interface name %q is reserved: %w", name, ErrInvalid)
	case strings.ContainsAny(name, "/:% \t\n\v\f\r\x00"):
		return fmt.Errorf("tap: interface name %q contains '/', ':', '%%', a space or NUL: %w", name, ErrInvalid)
	}
	return nil
}

// Open attaches to the tap cfg.Name inside cfg.Netns, creating it if it does
// not exist.
//
// A tap that Open creates is not persistent: it is brought up (IFF_UP) and
// disappears when the Device is closed. An existing persistent tap is
// attached as it is (its up/down state is the administrator's) and stays
// after Close. A non-zero TxQueueLen is applied in both cases and not
// restored. Attaching sets the tap's frame format to bare Ethernet (no
// packet-info or virtio-net header); the kernel keeps that after Close.
// Multi-queue taps are refused.
//
// An existing tap that was already up before it had a reader has no
// carrier; Linux activates its transmit queue only when its link watcher
// handles the carrier change (up to about a second after the attach), and
// drops what the stack transmits on it until then.
//
// Open fails with an error wrapping ErrNotTap, ErrBusy, ErrNoNetns or
// ErrInvalid for those cases and leaves the system as it found it.
func Open(cfg Config) (*Device, error) {
	if err := validName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.TxQueueLen < 0 || int64(cfg.TxQueueLen) > int64(^uint32(0)>>1) {
		return nil, fmt.Errorf("tap: TxQueueLen %d out of range: %w", cfg.TxQueueLen, ErrInvalid)
	}
	nsFD, err := openNetns(cfg.Netns)
	if err != nil {
		return nil, err
	}
	if nsFD >= 0 {
		defer unix.Close(nsFD)
	}

	d := &Device{name: cfg.Name, netns: cfg.Netns, tapFD: -1, ctlFD: -1}
	err = inNetns(nsFD, func() error { return d.attach(cfg) })
	if err != nil {
		d.closeFDs()
		return nil, err
	}
	return d, nil
}

// attach runs inside the target namespace.
func (d *Device) attach(cfg Config) error {
	where := d.describe()
	ctl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tap: control socket in %s: %w", where, err)
	}
	d.ctlFD = ctl

	// The existence check and IFF_TUN_EXCL together make Created exact:
	// if someone creates the name between the two, TUNSETIFF refuses and
	// we look again.
	for attempt := 0; ; attempt++ {
		exists, err := d.checkExisting()
		if err != nil {
			return err
		}
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("tap: open /dev/net/tun: %w", err)
		}
		ifr := newIfreq(d.name)
		flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if !exists {
			flags |= unix.IFF_TUN_EXCL
		}
		ifr.setUint16(flags)
		err = ioctlIfreq(fd, unix.TUNSETIFF, ifr)
		if err == nil {
			d.tapFD = fd
			d.created = !exists
			d.name = ifr.ifName()
			break
		}
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EBUSY) && exists:
			return fmt.Errorf("tap: %s: %w", where, ErrBusy)
		case errors.Is(err, unix.EBUSY) && attempt < 3:
			continue // created by someone else meanwhile
		case errors.Is(err, unix.EINVAL) && exists:
			return fmt.Errorf("tap: %s exists as a tap but cannot be attached (multi-queue or other incompatible flags): TUNSETIFF: %w", where, err)
		default:
			return fmt.Errorf("tap: TUNSETIFF %s: %w", where, err)
		}
	}

	if cfg.TxQueueLen > 0 {
		ifr := newIfreq(d.name)
		ifr.setInt32(int32(cfg.TxQueueLen))
		if err := ioctlIfreq(d.ctlFD, unix.SIOCSIFTXQLEN, ifr); err != nil {
			return fmt.Errorf("tap: set txqueuelen %d on %s: %w", cfg.TxQueueLen, where, err)
		}
	}
	if d.created {
		ifr := newIfreq(d.name)
		if err := ioctlIfreq(d.ctlFD, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("tap: get flags of %s: %w", where, err)
		}
		ifr.setUint16(ifr.uint16() | unix.IFF_UP)
		if err := ioctlIfreq(d.ctlFD, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("tap: bring %s up: %w", where, err)
		}
	}
	ifr := newIfreq(d.name)
	if err := ioctlIfreq(d.ctlFD, unix.SIOCGIFINDEX, ifr); err != nil {
		return fmt.Errorf("tap: ifindex of %s: %w", where, err)
	}
	d.index = int(ifr.int32())
	return nil
}

// checkExisting reports whether the name is taken, and refuses it when the
// holder is not a tap. The tun driver answers ethtool's driver query with
// driver "tun" and bus "tap" or "tun"; other drivers answer differently or
// not at all, which makes this independent of sysfs (whose view follows the
// mount, not the namespace).
func (d *Device) checkExisting() (bool, error) {
	where := d.describe()
	ifr := newIfreq(d.name)
	if err := ioctlIfreq(d.ctlFD, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return false, nil
		}
		return false, fmt.Errorf("tap: look up %s: %w", where, err)
	}
	info, err := unix.IoctlGetEthtoolDrvinfo(d.ctlFD, d.name)
	if errors.Is(err, unix.ENODEV) {
		return false, nil // deleted in between
	}
	if err != nil {
		return false, fmt.Errorf("tap: %s (no driver information: %v): %w", where, err, ErrNotTap)
	}
	driver, bus := cString(info.Driver[:]), cString(info.Bus_info[:])
	if driver != "tun" || bus != "tap" {
		return false, fmt.Errorf("tap: %s has driver %q bus %q: %w", where, driver, bus, ErrNotTap)
	}
	return true, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (d *Device) describe() string {
	if d.netns == "" {
		return fmt.Sprintf("%q", d.name)
	}
	return fmt.Sprintf("%q in netns %q", d.name, d.netns)
}

// Name is the interface name as it was at Open (queries such as MTU follow
// later renames on their own).
func (d *Device) Name() string { return d.name }

// Created reports whether Open created the tap (and Close will remove it).
func (d *Device) Created() bool { return d.created }

// Index is the interface index inside the tap's namespace.
func (d *Device) Index() int { return d.index }

// currentName asks the tap itself, so queries keep working after a rename.
// Callers hold fdMu.
func (d *Device) currentName() (string, error) {
	if d.tapFD < 0 {
		return "", fmt.Errorf("tap: %s: %w", d.describe(), ErrClosed)
	}
	ifr := newIfreq("")
	if err := ioctlIfreq(d.tapFD, unix.TUNGETIFF, ifr); err != nil {
		return "", d.wrapErr("TUNGETIFF", err)
	}
	return ifr.ifName(), nil
}

func (d *Device) wrapErr(op string, err error) error {
	if errors.Is(err, unix.EBADFD) {
		return fmt.Errorf("tap: %s %s: %w", op, d.describe(), ErrGone)
	}
	return fmt.Errorf("tap: %s %s: %w", op, d.describe(), err)
}

// MTU is the tap's current MTU, asked from the kernel.
func (d *Device) MTU() (int, error) {
	d.fdMu.RLock()
	defer d.fdMu.RUnlock()
	name, err := d.currentName()
	if err != nil {
		return 0, err
	}
	ifr := newIfreq(name)
	if err := ioctlIfreq(d.ctlFD, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, d.wrapErr("SIOCGIFMTU", err)
	}
	return int(ifr.int32()), nil
}

// HardwareAddr is the MAC address of the Linux side of the tap: the source
// of frames the stack sends, the destination for frames written to it.
func (d *Device) HardwareAddr() (net.HardwareAddr, error) {
	d.fdMu.RLock()
	defer d.fdMu.RUnlock()
	name, err := d.currentName()
	if err != nil {
		return nil, err
	}
	ifr := newIfreq(name)
	if err := ioctlIfreq(d.ctlFD, unix.SIOCGIFHWADDR, ifr); err != nil {
		return nil, d.wrapErr("SIOCGIFHWADDR", err)
	}
	// data holds a struct sockaddr: 2 bytes of family, then the address.
	return net.HardwareAddr(append([]byte(nil), ifr.data[2:8]...)), nil
}

// WriteFrame hands one Ethernet frame to the Linux stack, which receives it
// as if it had arrived on the wire. One write(2); safe for concurrent use;
// no allocation unless it fails.
func (d *Device) WriteFrame(frame []byte) error {
	if len(frame) < ethernetHeaderLen {
		return fmt.Errorf("tap: frame of %d bytes is shorter than an Ethernet header: %w", len(frame), ErrInvalid)
	}
	d.fdMu.RLock()
	defer d.fdMu.RUnlock()
	if d.tapFD < 0 {
		return fmt.Errorf("tap: write %s: %w", d.describe(), ErrClosed)
	}
	for {
		n, err := unix.Write(d.tapFD, frame)
		switch err {
		case nil:
			if n != len(frame) {
				return fmt.Errorf("tap: write %s: short write %d of %d bytes", d.describe(), n, len(frame))
			}
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// The fd is non-blocking for the reader's sake; a full
			// socket buffer is the only way a tap write can wait.
			if err := d.waitWritable(); err != nil {
				return err
			}
			continue
		default:
			return d.wrapErr("write", err)
		}
	}
}

func (d *Device) waitWritable() error {
	fds := []unix.PollFd{{Fd: int32(d.tapFD), Events: unix.POLLOUT}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return d.wrapErr("poll", err)
		}
		return nil
	}
}

// Close stops every Reader of the device, then closes the tap. A tap Open
// created disappears; an existing persistent tap stays. Close is idempotent.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	readers := d.readers
	d.readers = nil
	d.mu.Unlock()

	for _, r := range readers {
		r.Stop()
		r.closeWake()
	}
	return d.closeFDs()
}

func (d *Device) closeFDs() error {
	d.fdMu.Lock()
	defer d.fdMu.Unlock()
	var errs []error
	if d.tapFD >= 0 {
		if err := unix.Close(d.tapFD); err != nil {
			errs = append(errs, fmt.Errorf("tap: close %s: %w", d.describe(), err))
		}
		d.tapFD = -1
	}
	if d.ctlFD >= 0 {
		if err := unix.Close(d.ctlFD); err != nil {
			errs = append(errs, fmt.Errorf("tap: close control socket: %w", err))
		}
		d.ctlFD = -1
	}
	return errors.Join(errs...)
}

// forget drops a reader whose Run has finished.
func (d *Device) forget(r *Reader) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range d.readers {
		if x == r {
			d.readers = append(d.readers[:i], d.readers[i+1:]...)
			return
		}
	}
}
