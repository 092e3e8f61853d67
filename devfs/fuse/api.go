package fuse

import (
	"context"
	"sync/atomic"
)

// Caller identifies the process behind a request, as the kernel saw it: Pid
// is the calling thread's id in the server's pid namespace, 0 when the caller
// lives in a namespace the server cannot see.
type Caller struct {
	Pid, Uid, Gid uint32
}

// Node is one file of the mount's single flat directory.
type Node struct {
	Name string
	// Mode holds the permission bits (e.g. 0o600); the kernel enforces them
	// (the mount uses default_permissions). Owner and mode can be changed with
	// chmod/chown like any file; the change lasts as long as the mount.
	Mode     uint32
	UID, GID uint32
	// Seekable nodes get positional reads (for snapshot files such as a
	// statistics view); others are non-seekable streams, like a device.
	Seekable bool
	// Open creates the state behind one open(2). An error (a unix.Errno)
	// fails the open with that errno.
	Open func(req *OpenRequest) (Handle, error)
}

// OpenRequest describes an open(2) of a node.
type OpenRequest struct {
	Caller
	Flags uint32 // open(2) flags, e.g. O_RDWR|O_NONBLOCK
	// Waker wakes pollers of this open file; keep it in the handle and call
	// Wake whenever the handle becomes readable (or hangs up).
	Waker *Waker
}

// Handle is the state behind one open file description. Methods may be
// called concurrently (a blocked Read does not stop an Ioctl or Poll).
type Handle interface {
	// Read answers read(2). It either calls req.Reply once, or returns an
	// error (a unix.Errno); returning nil without replying answers 0 bytes.
	Read(req *ReadRequest) error
	// Write answers write(2) with the number of bytes taken.
	Write(req *WriteRequest) (int, error)
	// Ioctl answers ioctl(2) in restricted mode: the kernel has copied
	// _IOC_SIZE bytes of input into req.In and copies req.Out (sized by the
	// command) back to the caller when the result is not an error.
	Ioctl(req *IoctlRequest) (int32, error)
	// Poll returns the ready subset of events (Linux POLL* bits). The server
	// has already remembered the kernel's poll handle when asked to.
	Poll(req *PollRequest) uint32
	// Release is called once when the last reference to the open file goes.
	Release()
}

// ReadRequest is a read(2) on an open file.
type ReadRequest struct {
	Caller
	// Context is cancelled when the caller is interrupted by a signal (the
	// kernel sent FUSE_INTERRUPT); the read should then fail with EINTR.
	Context context.Context
	Offset  uint64 // with streams, > 0 only for the continuation of one split read(2)
	Size    int
	Flags   uint32 // the file's current flags: O_NONBLOCK set later by fcntl shows here

	reply func(data []byte) error
	done  bool
}

// Reply sends data (at most Size bytes) as the answer, straight from the
// caller's slice without copying it.
func (r *ReadRequest) Reply(data []byte) error {
	if r.done {
		return errAlreadyReplied
	}
	r.done = true
	if len(data) > r.Size {
		data = data[:r.Size]
	}
	return r.reply(data)
}

// WriteRequest is a write(2); Data is only valid during the call.
type WriteRequest struct {
	Caller
	Context context.Context
	Offset  uint64
	Data    []byte
	Flags   uint32
}

// IoctlRequest is an ioctl(2) in restricted mode.
type IoctlRequest struct {
	Caller
	Context context.Context
	Cmd     uint32
	Arg     uint64 // the raw argument: a pointer in the caller's memory, or a value for _IO commands
	Flags   uint32 // IoctlCompat|IoctlCompat32 for 32-bit callers
	In      []byte // _IOC_SIZE bytes for _IOW/_IOWR commands; valid during the call
	Out     []byte // zeroed, _IOC_SIZE bytes for _IOR/_IOWR commands
}

// PollRequest is a poll/select/epoll readiness query.
type PollRequest struct {
	Caller
	Events uint32
}

// Waker sends poll wake-ups for one open file.
type Waker struct {
	srv *Server
	// kh is the kernel's poll handle for this open file (stable for its
	// life); 0 until the kernel first asks to be notified. It is kept until
	// release: answering "readable" to a POLL that asked for notification and
	// then forgetting the handle hangs edge-triggered waiters such as Go's
	// netpoller.
	kh atomic.Uint64
}

// Wake tells every poll(2), select(2) and epoll waiter on the file to
// re-poll. It is cheap when nobody ever polled the file.
func (w *Waker) Wake() {
	if w == nil {
		return
	}
	if kh := w.kh.Load(); kh != 0 {
		w.srv.notifyPoll(kh)
	}
}
