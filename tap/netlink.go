//go:build linux

package tap

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// linkRequest sends one rtnetlink request about the tap from inside its
// namespace, with attrs (already encoded) after the ifinfomsg, and returns
// the kernel's answer: the link's attributes for RTM_GETLINK, nothing for
// a request that asks for an acknowledgement.
func (d *Device) linkRequest(msgType uint16, flags uint16, attrs []byte) (map[uint16][]byte, error) {
	var fd int
	err := d.inDeviceNetns(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tap: netlink socket for %s: %w", d.describe(), err)
	}
	defer unix.Close(fd)

	req := make([]byte, unix.SizeofNlMsghdr+unix.SizeofIfInfomsg, unix.SizeofNlMsghdr+unix.SizeofIfInfomsg+len(attrs))
	req = append(req, attrs...)
	hdr := (*unix.NlMsghdr)(unsafe.Pointer(&req[0]))
	hdr.Len, hdr.Type, hdr.Flags, hdr.Seq = uint32(len(req)), msgType, unix.NLM_F_REQUEST|flags, 1
	info := (*unix.IfInfomsg)(unsafe.Pointer(&req[unix.SizeofNlMsghdr]))
	info.Family, info.Index = unix.AF_UNSPEC, int32(d.index)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("tap: netlink request for %s: %w", d.describe(), err)
	}
	buf := make([]byte, 1<<16)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: netlink answer for %s: %w", d.describe(), err)
	}
	buf = buf[:n]
	if len(buf) < unix.SizeofNlMsghdr {
		return nil, fmt.Errorf("tap: netlink answer for %s: %d bytes", d.describe(), len(buf))
	}
	reply := (*unix.NlMsghdr)(unsafe.Pointer(&buf[0]))
	if int(reply.Len) > len(buf) || reply.Len < unix.SizeofNlMsghdr {
		return nil, fmt.Errorf("tap: netlink answer for %s: bad length", d.describe())
	}
	body := buf[unix.SizeofNlMsghdr:reply.Len]
	switch reply.Type {
	case unix.NLMSG_ERROR:
		if len(body) < 4 {
			return nil, fmt.Errorf("tap: netlink error for %s: short", d.describe())
		}
		if errno := int32(binary.NativeEndian.Uint32(body)); errno != 0 {
			return nil, d.wrapErr("netlink", unix.Errno(-errno))
		}
		return nil, nil
	case unix.RTM_NEWLINK:
		if len(body) < unix.SizeofIfInfomsg {
			return nil, fmt.Errorf("tap: netlink link for %s: short", d.describe())
		}
		attrs := map[uint16][]byte{}
		for rest := body[unix.SizeofIfInfomsg:]; len(rest) >= unix.SizeofRtAttr; {
			l := int(binary.NativeEndian.Uint16(rest))
			if l < unix.SizeofRtAttr || l > len(rest) {
				break
			}
			attrs[binary.NativeEndian.Uint16(rest[2:])] = rest[unix.SizeofRtAttr:l]
			rest = rest[min((l+3)&^3, len(rest)):]
		}
		return attrs, nil
	}
	return nil, fmt.Errorf("tap: netlink answer for %s: type %d", d.describe(), reply.Type)
}

// gsoMaxSegs is the most segments the stack may put in one GSO packet for
// the tap (IFLA_GSO_MAX_SEGS).
func (d *Device) gsoMaxSegs() (uint32, error) {
	attrs, err := d.linkRequest(unix.RTM_GETLINK, 0, nil)
	if err != nil {
		return 0, err
	}
	v := attrs[unix.IFLA_GSO_MAX_SEGS]
	if len(v) != 4 {
		return 0, fmt.Errorf("tap: %s: no gso_max_segs in the link's attributes", d.describe())
	}
	return binary.NativeEndian.Uint32(v), nil
}

// setGSOMaxSegs changes it (as `ip link set dev TAP gso_max_segs n`).
func (d *Device) setGSOMaxSegs(n uint32) error {
	attr := make([]byte, 8)
	binary.NativeEndian.PutUint16(attr, 8)
	binary.NativeEndian.PutUint16(attr[2:], unix.IFLA_GSO_MAX_SEGS)
	binary.NativeEndian.PutUint32(attr[4:], n)
	_, err := d.linkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK, attr)
	return err
}
