package fuse

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// queueDevice is a test node: every write(2) queues a message that one
// read(2) (on any open of the node) returns; reads block while the queue is
// empty; poll reports readable while it is not.
type queueDevice struct {
	mu       sync.Mutex
	queue    [][]byte
	changed  chan struct{} // closed and replaced on every queue change
	wakers   map[*Waker]bool
	open     atomic.Int32
	blocked  atomic.Int32 // reads currently waiting
	readSize []int        // sizes of READ requests seen (offset 0)
	lastIn   []byte
}

func newQueueDevice() *queueDevice {
	return &queueDevice{changed: make(chan struct{}), wakers: map[*Waker]bool{}}
}

func (q *queueDevice) node(name string, mode uint32) *Node {
	return &Node{Name: name, Mode: mode, Open: func(req *OpenRequest) (Handle, error) {
		q.mu.Lock()
		q.wakers[req.Waker] = true
		q.mu.Unlock()
		q.open.Add(1)
		return &queueHandle{q: q, waker: req.Waker}, nil
	}}
}

func (q *queueDevice) push(msg []byte) {
	q.mu.Lock()
	q.queue = append(q.queue, append([]byte(nil), msg...))
	close(q.changed)
	q.changed = make(chan struct{})
	var ws []*Waker
	for w := range q.wakers {
		ws = append(ws, w)
	}
	q.mu.Unlock()
	for _, w := range ws {
		w.Wake()
	}
}

type queueHandle struct {
	q     *queueDevice
	waker *Waker
}

var (
	testIO   = uint32('Q'<<8 | 1) // _IO('Q', 1); not 'T', where _IO('T',1) is TCGETS
	testIOR  = uint32(2<<30 | 8<<16 | 'Q'<<8 | 2)
	testIOW  = uint32(1<<30 | 16<<16 | 'Q'<<8 | 3)
	testIOWR = uint32(3<<30 | 8<<16 | 'Q'<<8 | 4)
)

func (h *queueHandle) Read(req *ReadRequest) error {
	if req.Offset > 0 {
		return nil
	}
	q := h.q
	q.mu.Lock()
	q.readSize = append(q.readSize, req.Size)
	q.mu.Unlock()
	for {
		q.mu.Lock()
		if len(q.queue) > 0 {
			msg := q.queue[0]
			q.queue = q.queue[1:]
			q.mu.Unlock()
			return req.Reply(msg)
		}
		ch := q.changed
		q.mu.Unlock()
		if req.Flags&unix.O_NONBLOCK != 0 {
			return unix.EAGAIN
		}
		q.blocked.Add(1)
		select {
		case <-ch:
			q.blocked.Add(-1)
		case <-req.Context.Done():
			q.blocked.Add(-1)
			return unix.EINTR
		}
	}
}

func (h *queueHandle) Write(req *WriteRequest) (int, error) {
	h.q.push(req.Data)
	return len(req.Data), nil
}

func (h *queueHandle) Ioctl(req *IoctlRequest) (int32, error) {
	switch req.Cmd {
	case testIO:
		return int32(req.Arg), nil
	case testIOR:
		binary.LittleEndian.PutUint64(req.Out, 0x1122334455667788)
		return 0, nil
	case testIOW:
		h.q.mu.Lock()
		h.q.lastIn = bytes.Clone(req.In)
		h.q.mu.Unlock()
		sum := 0
		for _, b := range req.In {
			sum += int(b)
		}
		return int32(sum), nil
	case testIOWR:
		a, b := binary.LittleEndian.Uint32(req.In[0:]), binary.LittleEndian.Uint32(req.In[4:])
		binary.LittleEndian.PutUint32(req.Out[0:], a+1000)
		binary.LittleEndian.PutUint32(req.Out[4:], b*1000)
		return 0, nil
	}
	return 0, unix.ENOTTY
}

func (h *queueHandle) Poll(req *PollRequest) uint32 {
	h.q.mu.Lock()
	defer h.q.mu.Unlock()
	ev := uint32(unix.POLLOUT | 0x100)
	if len(h.q.queue) > 0 {
		ev |= unix.POLLIN | 0x40
	}
	return ev & req.Events
}

func (h *queueHandle) Release() {
	h.q.mu.Lock()
	delete(h.q.wakers, h.waker)
	h.q.mu.Unlock()
	h.q.open.Add(-1)
}
