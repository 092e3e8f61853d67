package fuse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var errAlreadyReplied = errors.New("fuse: request already answered")

// Options configures a mount.
type Options struct {
	MountPoint string
	// Name is the filesystem type suffix and source shown in /proc/mounts
	// ("fuse.NAME").
	Name string
	// DirMode is the permission of the mount's root directory (default 0755).
	DirMode uint32
	Nodes   []*Node
	// MaxWrite bounds one WRITE request (default 128 KiB). Every reader
	// goroutine holds a buffer of this size, so it is kept small: device
	// writes are single frames.
	MaxWrite int
	// MaxReaders bounds the goroutines reading /dev/fuse, i.e. the requests
	// in service at once, blocked reads included (default 4096).
	MaxReaders int
	// Logf receives diagnostics (nil: silent).
	Logf func(format string, args ...any)
}

// Server is one mounted FUSE filesystem.
type Server struct {
	opts    Options
	fd      int
	devFile *os.File        // fd, for waiting in the runtime's poller
	conn    syscall.RawConn // file's, for reads that wait there
	// fdMu keeps replies and notifications off fd once it is closed: its
	// number may belong to another file by then.
	fdMu      sync.RWMutex
	fdClosed  bool
	dev       uint64
	fstype    string
	start     time.Time
	maxPages  int
	bufSize   int
	bufPool   sync.Pool
	nodes     []*nodeState // index = nodeid - 2
	nodeMu    sync.Mutex   // guards node attributes changed by SETATTR
	filesMu   sync.RWMutex
	files     map[uint64]*openFile
	nextFH    uint64
	inflight  sync.Map // unique -> context.CancelFunc, for INTERRUPT
	idle      atomic.Int32
	readers   atomic.Int32
	wg        sync.WaitGroup
	closing   atomic.Bool
	serveDone chan struct{}
	serveErr  error
	initDone  chan struct{}
	initOnce  sync.Once
	minor     uint32
	stats     Stats
}

// Stats counts what the server did (for tests and benchmarks).
type Stats struct {
	Requests      atomic.Uint64
	Interrupts    atomic.Uint64
	Notifications atomic.Uint64
	Polls         atomic.Uint64
}

type nodeState struct {
	Node
	ino uint64
}

type openFile struct {
	fh     uint64
	node   *nodeState
	handle Handle
	waker  *Waker
}

const rootID = 1

// Mount opens /dev/fuse, mounts it on opts.MountPoint and starts serving.
// A stale mount of the same type left by a crashed daemon is cleared first.
func Mount(opts Options) (*Server, error) {
	if opts.Name == "" {
		opts.Name = "devfs"
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o755
	}
	if opts.MaxWrite <= 0 {
		opts.MaxWrite = 128 * 1024
	}
	if opts.MaxReaders <= 0 {
		opts.MaxReaders = 4096
	}
	if err := checkRequestTimeout(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:      opts,
		fstype:    "fuse." + opts.Name,
		start:     time.Now(),
		maxPages:  kernelMaxPages(),
		files:     make(map[uint64]*openFile),
		serveDone: make(chan struct{}),
		initDone:  make(chan struct{}),
	}
	seen := map[string]bool{}
	for i, n := range opts.Nodes {
		if n.Name == "" || n.Name == "." || n.Name == ".." || seen[n.Name] {
			return nil, fmt.Errorf("fuse: bad or duplicate node name %q", n.Name)
		}
		seen[n.Name] = true
		s.nodes = append(s.nodes, &nodeState{Node: *n, ino: uint64(i) + 2})
	}
	// A read of /dev/fuse must have room for the largest WRITE.
	s.bufSize = opts.MaxWrite + 4096
	s.bufPool.New = func() any { b := make([]byte, s.bufSize); return &b }

	// Clear a dead mount first: the mount point cannot even be stat'ed
	// (ENOTCONN) until it is gone.
	if err := clearStaleMount(opts.MountPoint, s.fstype); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.MountPoint, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	s.fd = fd
	data := fmt.Sprintf("fd=%d,rootmode=%o,user_id=0,group_id=0,allow_other,default_permissions",
		fd, modeDir|opts.DirMode)
	if err := unix.Mount(opts.Name, opts.MountPoint, s.fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mount %s: %w", opts.MountPoint, err)
	}
	var st unix.Stat_t
	if m, err := findMount(opts.MountPoint); err == nil && m != nil {
		s.dev = m.dev
	} else if unix.Fstat(fd, &st) == nil {
		s.dev = st.Dev
	}
	// Readers wait for requests in the runtime's poller rather than in a
	// blocking read: a thread blocked in a system call holds its P, and the
	// runtime's monitor keeps taking Ps back from such threads every few
	// tens of microseconds, which cost the daemon a sixth of a CPU under
	// load. (The file lets one reader at a time wait in the poller; the
	// other idle readers queue behind it.) Only after the mount: polling
	// /dev/fuse before it belongs to a connection reports an error and
	// never waits, so a file registered with the poller then is never
	// woken.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Unmount(opts.MountPoint, unix.MNT_DETACH)
		unix.Close(fd)
		return nil, err
	}
	s.devFile = os.NewFile(uintptr(fd), "/dev/fuse")
	if s.conn, err = s.devFile.SyscallConn(); err != nil {
		unix.Unmount(opts.MountPoint, unix.MNT_DETACH)
		s.devFile.Close()
		return nil, err
	}
	s.idle.Store(1)
	s.readers.Store(1)
	s.wg.Add(1)
	go s.reader()
	go func() {
		s.wg.Wait()
		close(s.serveDone)
	}()
	select {
	case <-s.initDone:
	case <-s.serveDone:
		unix.Unmount(opts.MountPoint, unix.MNT_DETACH)
		s.closeDev()
		return nil, fmt.Errorf("fuse: connection ended before INIT: %v", s.serveErr)
	case <-time.After(10 * time.Second):
		s.Close()
		return nil, errors.New("fuse: the kernel sent no INIT within 10s")
	}
	return s, nil
}

// Done is closed when the server stopped serving (unmounted or closed).
func (s *Server) Done() <-chan struct{} { return s.serveDone }

// Err returns why serving stopped (nil for an unmount or Close).
func (s *Server) Err() error {
	select {
	case <-s.serveDone:
		return s.serveErr
	default:
		return nil
	}
}

// MountPoint returns where the filesystem is mounted.
func (s *Server) MountPoint() string { return s.opts.MountPoint }

// MaxReadSize is the largest read(2) that reaches a handle as one READ
// request when the caller's buffer is page-aligned (unaligned buffers lose
// one page): max_pages (the kernel's fs.fuse.max_pages_limit) pages.
func (s *Server) MaxReadSize() int { return s.maxPages * os.Getpagesize() }

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Close unmounts the filesystem, fails every request still waiting (so no
// client stays blocked on a dead mount) and waits for the readers to stop.
func (s *Server) Close() error {
	if s.closing.Swap(true) {
		<-s.serveDone
		return nil
	}
	s.inflight.Range(func(_, v any) bool {
		v.(context.CancelFunc)()
		return true
	})
	err := unix.Unmount(s.opts.MountPoint, 0)
	if err != nil {
		err = unix.Unmount(s.opts.MountPoint, unix.MNT_DETACH)
	}
	// With clients still holding files open the connection outlives a lazy
	// unmount; abort it so the readers (and those clients) return.
	select {
	case <-s.serveDone:
	case <-time.After(200 * time.Millisecond):
		if s.dev != 0 {
			if aerr := abortConnection(s.dev); aerr != nil {
				s.logf("abort connection: %v", aerr)
			}
		}
		<-s.serveDone
	}
	s.closeDev()
	if err == unix.EINVAL || err == unix.ENOENT {
		err = nil // already unmounted (e.g. by fusermount -u or umount)
	}
	return err
}

// closeDev closes /dev/fuse once no reply or notification is being
// written to it, and keeps later ones from writing.
func (s *Server) closeDev() {
	s.fdMu.Lock()
	defer s.fdMu.Unlock()
	if !s.fdClosed {
		s.fdClosed = true
		s.devFile.Close()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// requestRead is one reader's read of /dev/fuse, shaped for RawConn.Read
// (a method value made once, so waiting allocates nothing).
type requestRead struct {
	buf []byte
	n   int
	err error
}

func (r *requestRead) try(fd uintptr) (done bool) {
	r.n, r.err = unix.Read(int(fd), r.buf)
	return r.err != unix.EAGAIN
}

// reader reads and serves requests until the connection ends. When it takes
// the last idle slot it starts another reader first, so a handler that
// blocks never leaves the kernel without a reader.
func (s *Server) reader() {
	defer s.wg.Done()
	var rd requestRead
	wait := rd.try
	for {
		bp := s.bufPool.Get().(*[]byte)
		rd.buf, rd.n, rd.err = *bp, 0, nil
		if err := s.conn.Read(wait); err != nil {
			// The poller's own failure: the last read, if any, said
			// EAGAIN, which must not send the loop round again.
			rd.err = err
		}
		buf, n, err := rd.buf, rd.n, rd.err
		if err != nil {
			s.bufPool.Put(bp)
			switch err {
			case unix.EINTR, unix.EAGAIN, unix.ENOENT:
				// ENOENT: the request was interrupted before we read it.
				continue
			case unix.ENODEV:
				// Unmounted (or aborted): normal end.
			default:
				s.serveErr = fmt.Errorf("read /dev/fuse: %w", err)
			}
			s.idle.Add(-1)
			s.readers.Add(-1)
			return
		}
		if s.idle.Add(-1) == 0 && s.readers.Load() < int32(s.opts.MaxReaders) {
			s.readers.Add(1)
			s.idle.Add(1)
			s.wg.Add(1)
			go s.reader()
		}
		s.handle(buf[:n], bp)
		// Keep a couple of readers idle; let the extra ones go.
		if s.idle.Load() >= 2 {
			s.readers.Add(-1)
			return
		}
		s.idle.Add(1)
	}
}

// request is a decoded fuse_in_header with its body.
type request struct {
	opcode uint32
	unique uint64
	nodeid uint64
	caller Caller
	body   []byte
}

func (s *Server) handle(msg []byte, bp *[]byte) {
	release := func() {
		if bp != nil {
			s.bufPool.Put(bp)
			bp = nil
		}
	}
	defer release()
	if len(msg) < inHeaderSize {
		s.logf("short request (%d bytes)", len(msg))
		return
	}
	le := binary.LittleEndian
	length := le.Uint32(msg[0:])
	if int(length) != len(msg) {
		s.logf("request length %d does not match read %d", length, len(msg))
		if int(length) > len(msg) || length < inHeaderSize {
			// Cannot trust the body; answer EIO if we can identify it.
			s.replyErr(le.Uint64(msg[8:]), unix.EIO)
			return
		}
		msg = msg[:length]
	}
	r := request{
		opcode: le.Uint32(msg[4:]),
		unique: le.Uint64(msg[8:]),
		nodeid: le.Uint64(msg[16:]),
		caller: Caller{Uid: le.Uint32(msg[24:]), Gid: le.Uint32(msg[28:]), Pid: le.Uint32(msg[32:])},
		body:   msg[inHeaderSize:],
	}
	s.stats.Requests.Add(1)
	switch r.opcode {
	case opInit:
		s.doInit(&r)
	case opDestroy:
		s.replyErr(r.unique, 0)
	case opLookup:
		s.doLookup(&r)
	case opForget, opBatchForget:
		// Nodes are static; the kernel's lookup counts do not matter. No reply.
	case opGetattr:
		s.doGetattr(&r)
	case opSetattr:
		s.doSetattr(&r)
	case opOpendir:
		if r.nodeid != rootID {
			s.replyErr(r.unique, unix.ENOTDIR)
			return
		}
		var out [openOutSize]byte
		s.reply(r.unique, 0, out[:])
	case opReaddir, opReaddirplus:
		s.doReaddir(&r)
	case opReleasedir, opFsyncdir, opFsync, opAccess:
		s.replyErr(r.unique, 0)
	case opStatfs:
		var out [statfsOutSize]byte
		le.PutUint32(out[40:], 4096) // bsize
		le.PutUint32(out[44:], 255)  // namelen
		le.PutUint32(out[48:], 4096) // frsize
		s.reply(r.unique, 0, out[:])
	case opOpen:
		s.doOpen(&r)
	case opRead:
		// The body is copied into the request; release the big buffer
		// before a possibly long wait.
		s.doRead(&r, release)
	case opWrite:
		s.doWrite(&r)
	case opIoctl:
		s.doIoctl(&r)
	case opPoll:
		s.doPoll(&r)
	case opFlush:
		s.replyErr(r.unique, 0)
	case opRelease:
		s.doRelease(&r)
	case opInterrupt:
		s.doInterrupt(&r)
	case opSetxattr, opGetxattr, opListxattr, opRemovexattr:
		// ENOSYS makes the kernel remember that xattrs are unsupported and
		// stop asking (it would otherwise ask for security.capability on
		// every write).
		s.replyErr(r.unique, unix.ENOSYS)
	default:
		s.replyErr(r.unique, unix.ENOSYS)
	}
}

func (s *Server) doInit(r *request) {
	le := binary.LittleEndian
	if len(r.body) < initInSize {
		s.replyErr(r.unique, unix.EINVAL)
		return
	}
	major, minor := le.Uint32(r.body[0:]), le.Uint32(r.body[4:])
	readahead, flags := le.Uint32(r.body[8:]), le.Uint32(r.body[12:])
	if major != protoMajor || minor < minKernelMinor {
		s.logf("unsupported FUSE protocol %d.%d", major, minor)
		s.serveErr = fmt.Errorf("fuse: kernel protocol %d.%d is not supported (need 7.%d or newer)", major, minor, minKernelMinor)
		s.replyErr(r.unique, unix.EPROTO)
		return
	}
	s.minor = min(minor, protoMinor)
	var out [initOutSize]byte
	le.PutUint32(out[0:], protoMajor)
	le.PutUint32(out[4:], s.minor)
	le.PutUint32(out[8:], readahead)
	// No INIT_EXT: flags2 (and with it FUSE_REQUEST_TIMEOUT and
	// FUSE_OVER_IO_URING) is never negotiated.
	want := uint32(initBigWrites | initMaxPages | initDoReaddirplus)
	le.PutUint32(out[12:], want&flags)
	le.PutUint16(out[16:], 64)                      // max_background
	le.PutUint16(out[18:], 48)                      // congestion_threshold
	le.PutUint32(out[20:], uint32(s.opts.MaxWrite)) // max_write
	le.PutUint32(out[24:], 1)                       // time_gran
	le.PutUint16(out[28:], uint16(s.maxPages))      // max_pages
	s.reply(r.unique, 0, out[:])
	s.initOnce.Do(func() { close(s.initDone) })
}

func (s *Server) node(id uint64) *nodeState {
	if id < 2 || id-2 >= uint64(len(s.nodes)) {
		return nil
	}
	return s.nodes[id-2]
}

func (s *Server) fillAttr(b []byte, id uint64) {
	le := binary.LittleEndian
	t := uint64(s.start.Unix())
	le.PutUint64(b[0:], id)
	le.PutUint64(b[24:], t)
	le.PutUint64(b[32:], t)
	le.PutUint64(b[40:], t)
	le.PutUint32(b[76:], 4096) // blksize
	if id == rootID {
		le.PutUint32(b[60:], modeDir|s.opts.DirMode)
		le.PutUint32(b[64:], 2)
		return
	}
	n := s.node(id)
	s.nodeMu.Lock()
	le.PutUint32(b[60:], modeRegular|n.Mode&0o7777)
	le.PutUint32(b[64:], 1)
	le.PutUint32(b[68:], n.UID)
	le.PutUint32(b[72:], n.GID)
	s.nodeMu.Unlock()
}

func (s *Server) fillEntry(b []byte, id uint64) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], id)
	le.PutUint64(b[8:], 1)  // generation
	le.PutUint64(b[16:], 1) // entry_valid (s)
	le.PutUint64(b[24:], 1) // attr_valid (s)
	s.fillAttr(b[40:], id)
}

func (s *Server) doLookup(r *request) {
	if r.nodeid != rootID {
		s.replyErr(r.unique, unix.ENOTDIR)
		return
	}
	name := r.body
	if i := indexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	for _, n := range s.nodes {
		if n.Name == string(name) {
			var out [entryOutSize]byte
			s.fillEntry(out[:], n.ino)
			s.reply(r.unique, 0, out[:])
			return
		}
	}
	s.replyErr(r.unique, unix.ENOENT)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (s *Server) doGetattr(r *request) {
	if r.nodeid != rootID && s.node(r.nodeid) == nil {
		s.replyErr(r.unique, unix.ENOENT)
		return
	}
	var out [attrOutSize]byte
	binary.LittleEndian.PutUint64(out[0:], 1) // attr_valid (s)
	s.fillAttr(out[16:], r.nodeid)
	s.reply(r.unique, 0, out[:])
}

// doSetattr applies chmod and chown to nodes (the kernel has already checked
// that the caller may: only the owner or root may chmod, only root may
// chown) and accepts but ignores size and time changes, as a device does.
func (s *Server) doSetattr(r *request) {
	if len(r.body) < setattrInSize {
		s.replyErr(r.unique, unix.EINVAL)
		return
	}
	n := s.node(r.nodeid)
	if n == nil {
		if r.nodeid == rootID {
			s.replyErr(r.unique, unix.EPERM)
		} else {
			s.replyErr(r.unique, unix.ENOENT)
		}
		return
	}
	le := binary.LittleEndian
	valid := le.Uint32(r.body[0:])
	s.nodeMu.Lock()
	if valid&fattrMode != 0 {
		n.Mode = le.Uint32(r.body[68:]) & 0o7777
	}
	if valid&fattrUID != 0 {
		n.UID = le.Uint32(r.body[76:])
	}
	if valid&fattrGID != 0 {
		n.GID = le.Uint32(r.body[80:])
	}
	s.nodeMu.Unlock()
	var out [attrOutSize]byte
	le.PutUint64(out[0:], 1)
	s.fillAttr(out[16:], r.nodeid)
	s.reply(r.unique, 0, out[:])
}

func (s *Server) doReaddir(r *request) {
	if len(r.body) < readInSize || r.nodeid != rootID {
		s.replyErr(r.unique, unix.EINVAL)
		return
	}
	le := binary.LittleEndian
	offset := le.Uint64(r.body[8:])
	size := int(le.Uint32(r.body[16:]))
	plus := r.opcode == opReaddirplus
	out := make([]byte, 0, min(size, 64*1024))
	for i := offset; i < uint64(len(s.nodes))+2; i++ {
		var name string
		var ino uint64
		typ := uint32(dtReg)
		switch i {
		case 0:
			name, ino, typ = ".", rootID, dtDir
		case 1:
			name, ino, typ = "..", rootID, dtDir
		default:
			n := s.nodes[i-2]
			name, ino = n.Name, n.ino
		}
		entLen := direntSize + (len(name)+7)&^7
		if plus {
			entLen += entryOutSize
		}
		if len(out)+entLen > size {
			break
		}
		start := len(out)
		out = out[:start+entLen]
		clear(out[start:])
		d := out[start:]
		if plus {
			if i >= 2 {
				s.fillEntry(d, ino)
			}
			d = d[entryOutSize:]
		}
		le.PutUint64(d[0:], ino)
		le.PutUint64(d[8:], i+1)
		le.PutUint32(d[16:], uint32(len(name)))
		le.PutUint32(d[20:], typ)
		copy(d[24:], name)
	}
	s.reply(r.unique, 0, out)
}

func (s *Server) doOpen(r *request) {
	n := s.node(r.nodeid)
	if n == nil {
		s.replyErr(r.unique, unix.EISDIR)
		return
	}
	if len(r.body) < openInSize {
		s.replyErr(r.unique, unix.EINVAL)
		return
	}
	flags := binary.LittleEndian.Uint32(r.body[0:])
	f := &openFile{node: n, waker: &Waker{srv: s}}
	h, err := n.Open(&OpenRequest{Caller: r.caller, Flags: flags, Waker: f.waker})
	if err != nil {
		s.replyErr(r.unique, errnoOf(err))
		return
	}
	f.handle = h
	s.filesMu.Lock()
	s.nextFH++
	f.fh = s.nextFH
	s.files[f.fh] = f
	s.filesMu.Unlock()
	var out [openOutSize]byte
	binary.LittleEndian.PutUint64(out[0:], f.fh)
	of := uint32(fopenDirectIO)
	if !n.Seekable {
		of |= fopenNonseekable | fopenStream
	}
	binary.LittleEndian.PutUint32(out[8:], of)
	if s.reply(r.unique, 0, out[:]) != nil {
		// The open was interrupted and the kernel forgot it: no RELEASE
		// will come, so release here.
		s.dropFile(f.fh)
	}
}

// openFileFor checks that a request on an open file carries at least size
// bytes of body and names a file handle that exists (the handle is the
// first field of every such body). Otherwise it answers the request itself
// (EINVAL, EBADF) and returns nil.
func (s *Server) openFileFor(r *request, size int) *openFile {
	if len(r.body) < size {
		s.replyErr(r.unique, unix.EINVAL)
		return nil
	}
	f := s.file(binary.LittleEndian.Uint64(r.body[0:]))
	if f == nil {
		s.replyErr(r.unique, unix.EBADF)
	}
	return f
}

func (s *Server) file(fh uint64) *openFile {
	s.filesMu.RLock()
	f := s.files[fh]
	s.filesMu.RUnlock()
	return f
}

func (s *Server) dropFile(fh uint64) {
	s.filesMu.Lock()
	f := s.files[fh]
	delete(s.files, fh)
	s.filesMu.Unlock()
	if f != nil {
		f.waker.kh.Store(0)
		f.handle.Release()
	}
}

// OpenFiles reports how many open files the server holds handles for.
func (s *Server) OpenFiles() int {
	s.filesMu.RLock()
	defer s.filesMu.RUnlock()
	return len(s.files)
}

// interruptible registers a request so that FUSE_INTERRUPT can cancel it.
func (s *Server) interruptible(unique uint64) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s.inflight.Store(unique, cancel)
	if s.closing.Load() {
		cancel()
	}
	return ctx, func() {
		s.inflight.Delete(unique)
		cancel()
	}
}

func (s *Server) doRead(r *request, releaseBuf func()) {
	f := s.openFileFor(r, readInSize)
	if f == nil {
		return
	}
	le := binary.LittleEndian
	req := &ReadRequest{
		Caller: r.caller,
		Offset: le.Uint64(r.body[8:]),
		Size:   int(le.Uint32(r.body[16:])),
		Flags:  le.Uint32(r.body[32:]),
	}
	unique := r.unique
	releaseBuf()
	ctx, done := s.interruptible(unique)
	defer done()
	req.Context = ctx
	req.reply = func(data []byte) error { return s.reply(unique, 0, data) }
	err := f.handle.Read(req)
	if req.done {
		return
	}
	if err != nil {
		s.replyErr(unique, errnoOf(err))
		return
	}
	s.reply(unique, 0, nil)
}

func (s *Server) doWrite(r *request) {
	f := s.openFileFor(r, writeInSize)
	if f == nil {
		return
	}
	le := binary.LittleEndian
	size := le.Uint32(r.body[16:])
	data := r.body[writeInSize:]
	if uint32(len(data)) < size {
		s.replyErr(r.unique, unix.EINVAL)
		return
	}
	ctx, done := s.interruptible(r.unique)
	defer done()
	n, err := f.handle.Write(&WriteRequest{
		Caller: r.caller, Context: ctx,
		Offset: le.Uint64(r.body[8:]), Data: data[:size], Flags: le.Uint32(r.body[32:]),
	})
	if err != nil {
		s.replyErr(r.unique, errnoOf(err))
		return
	}
	var out [writeOutSize]byte
	le.PutUint32(out[0:], uint32(n))
	s.reply(r.unique, 0, out[:])
}

func (s *Server) doIoctl(r *request) {
	f := s.openFileFor(r, ioctlInSize)
	if f == nil {
		return
	}
	le := binary.LittleEndian
	flags, cmd := le.Uint32(r.body[8:]), le.Uint32(r.body[12:])
	arg, inSize, outSize := le.Uint64(r.body[16:]), le.Uint32(r.body[24:]), le.Uint32(r.body[28:])
	in := r.body[ioctlInSize:]
	if flags&IoctlUnrestricted != 0 || uint32(len(in)) < inSize || outSize > 1<<14 {
		s.replyErr(r.unique, unix.EINVAL)
		return
	}
	in = in[:inSize]
	var stack [ioctlOutSize + 256]byte
	var out []byte
	if int(outSize) <= len(stack)-ioctlOutSize {
		out = stack[:ioctlOutSize+int(outSize)]
	} else {
		out = make([]byte, ioctlOutSize+int(outSize))
	}
	ctx, done := s.interruptible(r.unique)
	defer done()
	res, err := f.handle.Ioctl(&IoctlRequest{
		Caller: r.caller, Context: ctx, Cmd: cmd, Arg: arg, Flags: flags,
		In: in, Out: out[ioctlOutSize:],
	})
	if err != nil {
		s.replyErr(r.unique, errnoOf(err))
		return
	}
	le.PutUint32(out[0:], uint32(res))
	s.reply(r.unique, 0, out)
}

func (s *Server) doPoll(r *request) {
	f := s.openFileFor(r, pollInSize)
	if f == nil {
		return
	}
	le := binary.LittleEndian
	s.stats.Polls.Add(1)
	if le.Uint32(r.body[16:])&pollScheduleNotify != 0 {
		// Remember the handle before asking the handle for readiness, so a
		// wake-up that races with this POLL is never lost.
		f.waker.kh.Store(le.Uint64(r.body[8:]))
	}
	revents := f.handle.Poll(&PollRequest{Caller: r.caller, Events: le.Uint32(r.body[20:])})
	var out [pollOutSize]byte
	le.PutUint32(out[0:], revents)
	s.reply(r.unique, 0, out[:])
}

func (s *Server) doRelease(r *request) {
	if len(r.body) < releaseInSize {
		s.replyErr(r.unique, unix.EINVAL)
		return
	}
	s.dropFile(binary.LittleEndian.Uint64(r.body[0:]))
	s.replyErr(r.unique, 0)
}

// doInterrupt cancels the request the kernel wants to interrupt; its handler
// then answers (EINTR), which is what releases the caller. If the request is
// not registered yet (or is a short one that is not interruptible), EAGAIN
// asks the kernel to send the interrupt again.
func (s *Server) doInterrupt(r *request) {
	if len(r.body) < interruptInLen {
		return
	}
	s.stats.Interrupts.Add(1)
	target := binary.LittleEndian.Uint64(r.body[0:])
	if v, ok := s.inflight.Load(target); ok {
		v.(context.CancelFunc)()
		return
	}
	s.replyErr(r.unique, unix.EAGAIN)
}

func (s *Server) notifyPoll(kh uint64) {
	var msg [outHeaderSize + 8]byte
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint32(msg[4:], notifyPoll) // error field carries the notify code
	le.PutUint64(msg[outHeaderSize:], kh)
	s.stats.Notifications.Add(1)
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	if s.fdClosed {
		return
	}
	if _, err := unix.Write(s.fd, msg[:]); err != nil && err != unix.ENOENT {
		s.logf("poll notification: %v", err)
	}
}

func (s *Server) replyErr(unique uint64, errno unix.Errno) {
	s.reply(unique, errno, nil)
}

// reply writes fuse_out_header and data with one writev, so data is never
// copied. An error from the kernel (ENOENT: the caller was interrupted and
// gave up) is returned but needs no handling beyond that.
func (s *Server) reply(unique uint64, errno unix.Errno, data []byte) error {
	var hdr [outHeaderSize]byte
	le := binary.LittleEndian
	if errno != 0 {
		data = nil
	}
	le.PutUint32(hdr[0:], uint32(outHeaderSize+len(data)))
	le.PutUint32(hdr[4:], uint32(-int32(errno)))
	le.PutUint64(hdr[8:], unique)
	iov := [2]unix.Iovec{{Base: &hdr[0], Len: outHeaderSize}}
	cnt := 1
	if len(data) > 0 {
		iov[1] = unix.Iovec{Base: &data[0], Len: uint64(len(data))}
		cnt = 2
	}
	s.fdMu.RLock()
	if s.fdClosed {
		s.fdMu.RUnlock()
		return unix.ENODEV
	}
	_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(s.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
	s.fdMu.RUnlock()
	if e != 0 {
		if e != unix.ENOENT {
			s.logf("reply to %d: %v", unique, e)
		}
		return e
	}
	return nil
}

// errnoOf turns a handler's error into the errno sent to the caller.
func errnoOf(err error) unix.Errno {
	var en unix.Errno
	if errors.As(err, &en) {
		return en
	}
	if errors.Is(err, context.Canceled) {
		return unix.EINTR
	}
	return unix.EIO
}
