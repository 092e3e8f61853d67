package fuse

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/bpffs/bpffs/internal/testenv"
)

// instantHandle answers every read with one byte and every ioctl at once,
// so a benchmark measures the transport's round trip and nothing else.
type instantHandle struct{}

var oneByte = []byte{'x'}

func (instantHandle) Read(req *ReadRequest) error { return req.Reply(oneByte) }
func (instantHandle) Write(req *WriteRequest) (int, error) {
	return len(req.Data), nil
}
func (instantHandle) Ioctl(req *IoctlRequest) (int32, error) {
	// Like any handler, trust only what the request carries.
	if len(req.Out) < 8 {
		return 0, unix.EINVAL
	}
	binary.LittleEndian.PutUint64(req.Out, 0x1122334455667788)
	return 0, nil
}
func (instantHandle) Poll(req *PollRequest) uint32 { return req.Events }
func (instantHandle) Release()                     {}

// The same device on go-fuse, the baseline: the library the project would
// otherwise have used.
type gfRoot struct{ gofs.Inode }

func (r *gfRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, &gfFile{}, gofs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild("dev", ch, false)
}

type gfFile struct{ gofs.Inode }

func (f *gfFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &gfHandle{}, gofuse.FOPEN_DIRECT_IO | gofuse.FOPEN_NONSEEKABLE, 0
}

func (f *gfFile) Getattr(ctx context.Context, fh gofs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	return 0
}

type gfHandle struct{}

func (h *gfHandle) Read(ctx context.Context, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	return gofuse.ReadResultData(oneByte), 0
}

func (h *gfHandle) Ioctl(ctx context.Context, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	binary.LittleEndian.PutUint64(output, 0x1122334455667788)
	return 0, 0
}

func mountBenchServers(b *testing.B) (ours, theirs string) {
	testenv.RequireFUSE(b)
	dir := b.TempDir()
	m1, m2 := filepath.Join(dir, "bpffs"), filepath.Join(dir, "gofuse")
	os.Mkdir(m2, 0o755)
	srv, err := Mount(Options{MountPoint: m1, Name: "devfsbench", Nodes: []*Node{{Name: "dev", Mode: 0o600,
		Open: func(*OpenRequest) (Handle, error) { return instantHandle{}, nil }}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	gsrv, err := gofs.Mount(m2, &gfRoot{}, &gofs.Options{MountOptions: gofuse.MountOptions{
		DirectMount: true, FsName: "gofusebench", Name: "gofusebench"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := gsrv.Unmount(); err != nil {
			unix.Unmount(m2, unix.MNT_DETACH)
		}
	})
	return filepath.Join(m1, "dev"), filepath.Join(m2, "dev")
}

// BenchmarkRoundTrip measures ioctl(2) and 1-byte read(2) round trips
// through a real mount, for this transport and for go-fuse, interleaved in
// chunks so both see the same machine, and reports the ratio.
func BenchmarkRoundTrip(b *testing.B) {
	ours, theirs := mountBenchServers(b)
	open := func(p string) int {
		fd, err := unix.Open(p, unix.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	fdOurs, fdTheirs := open(ours), open(theirs)
	cmd := uint32(2<<30 | 8<<16 | 'Q'<<8 | 2) // _IOR('Q', 2, uint64)
	var v uint64
	ops := map[string]func(fd int) error{
		"ioctl": func(fd int) error {
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(unsafe.Pointer(&v)))
			if e != 0 {
				return e
			}
			return nil
		},
		"read1": func(fd int) error {
			var buf [1]byte
			n, err := unix.Read(fd, buf[:])
			if err == nil && n != 1 {
				err = fmt.Errorf("read %d bytes", n)
			}
			return err
		},
	}
	for _, name := range []string{"ioctl", "read1"} {
		op := ops[name]
		b.Run(name, func(b *testing.B) {
			var tOurs, tTheirs time.Duration
			const chunk = 500
			for done := 0; done < b.N; done += chunk {
				n := min(chunk, b.N-done)
				for _, side := range []struct {
					fd  int
					acc *time.Duration
				}{{fdOurs, &tOurs}, {fdTheirs, &tTheirs}} {
					start := time.Now()
					for i := 0; i < n; i++ {
						if err := op(side.fd); err != nil {
							b.Fatal(err)
						}
					}
					*side.acc += time.Since(start)
				}
			}
			b.ReportMetric(float64(b.N)/tOurs.Seconds(), "bpffs-ops/s")
			b.ReportMetric(float64(b.N)/tTheirs.Seconds(), "gofuse-ops/s")
			b.ReportMetric(tTheirs.Seconds()/tOurs.Seconds(), "speedup-vs-gofuse")
		})
	}
}
