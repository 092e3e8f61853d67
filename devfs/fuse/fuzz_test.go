package fuse

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newUnmountedServer is a Server that answers into /dev/null: enough to
// run the request decoder and the handlers without a kernel.
func newUnmountedServer(t testing.TB) *Server {
	fd, err := unix.Open(os.DevNull, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	s := &Server{
		opts:      Options{Name: "fuzz", DirMode: 0o755, MaxWrite: 128 * 1024, MaxReaders: 4},
		fd:        fd,
		start:     time.Unix(0, 0),
		maxPages:  256,
		files:     map[uint64]*openFile{},
		serveDone: make(chan struct{}),
		initDone:  make(chan struct{}),
	}
	s.bufSize = s.opts.MaxWrite + 4096
	s.bufPool.New = func() any { b := make([]byte, s.bufSize); return &b }
	for i, n := range []*Node{
		{Name: "dev", Mode: 0o600, Open: func(*OpenRequest) (Handle, error) { return instantHandle{}, nil }},
		{Name: "snap", Mode: 0o400, Seekable: true, Open: func(*OpenRequest) (Handle, error) { return instantHandle{}, nil }},
	} {
		s.nodes = append(s.nodes, &nodeState{Node: *n, ino: uint64(i) + 2})
	}
	return s
}

func fuzzMsg(opcode uint32, unique, nodeid uint64, body []byte) []byte {
	msg := make([]byte, inHeaderSize+len(body))
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint32(msg[4:], opcode)
	le.PutUint64(msg[8:], unique)
	le.PutUint64(msg[16:], nodeid)
	le.PutUint32(msg[32:], uint32(os.Getpid()))
	copy(msg[inHeaderSize:], body)
	return msg
}

// FuzzRequest feeds arbitrary requests, as a kernel with a bug (or a
// malicious one) might send them, to the decoder: lengths that lie, short
// bodies, unknown opcodes, handles that do not exist. Nothing may panic.
func FuzzRequest(f *testing.F) {
	open := make([]byte, openInSize)
	read := make([]byte, readInSize)
	binary.LittleEndian.PutUint64(read[0:], 1)
	binary.LittleEndian.PutUint32(read[16:], 100)
	ioctl := make([]byte, ioctlInSize+8)
	binary.LittleEndian.PutUint64(ioctl[0:], 1)
	binary.LittleEndian.PutUint32(ioctl[12:], 2<<30|8<<16|'Q'<<8|2)
	binary.LittleEndian.PutUint32(ioctl[28:], 8)
	init := make([]byte, 64)
	binary.LittleEndian.PutUint32(init[0:], 7)
	binary.LittleEndian.PutUint32(init[4:], 45)
	for _, seed := range [][]byte{
		fuzzMsg(opInit, 1, 0, init),
		fuzzMsg(opLookup, 2, rootID, []byte("dev\x00")),
		fuzzMsg(opOpen, 3, 2, open),
		fuzzMsg(opRead, 4, 2, read),
		fuzzMsg(opIoctl, 5, 2, ioctl),
		fuzzMsg(opReaddirplus, 6, rootID, read),
		fuzzMsg(opSetattr, 7, 2, make([]byte, setattrInSize)),
		fuzzMsg(opInterrupt, 9, 0, make([]byte, 8)),
		fuzzMsg(opBatchForget, 10, 0, make([]byte, 24)),
		fuzzMsg(opPoll, 11, 2, make([]byte, pollInSize)),
		fuzzMsg(opWrite, 12, 2, append(make([]byte, writeInSize), 1, 2, 3)),
		fuzzMsg(opRelease, 13, 2, make([]byte, releaseInSize)),
		{1, 2, 3},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := newUnmountedServer(t)
		// Open a file first so that handle numbers in the input can hit it.
		s.handle(fuzzMsg(opOpen, 100, 2, open), nil)
		s.handle(msg, nil)
		// The same bytes as a body of every opcode, with a truthful length.
		for _, op := range []uint32{opInit, opLookup, opGetattr, opSetattr, opOpen, opRead, opWrite,
			opStatfs, opRelease, opFlush, opReaddir, opReaddirplus, opInterrupt, opIoctl, opPoll, opBatchForget, 99} {
			for _, node := range []uint64{rootID, 2, 3, 1 << 40} {
				s.handle(fuzzMsg(op, 200, node, msg), nil)
			}
		}
	})
}
