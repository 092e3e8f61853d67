package ioctl

import (
	"encoding/binary"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzDispatch sends arbitrary commands and argument bytes through the
// dispatcher, in a sequence, on one descriptor. Nothing may panic, and every
// refusal must be an errno. Pointers inside arguments are followed into a
// sacrificial process, never into this one.
func FuzzDispatch(f *testing.F) {
	victim := exec.Command("sleep", "3600")
	if err := victim.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	tid := uint32(victim.Process.Pid)
	known := make([]uint32, 0, len(commands))
	for _, c := range commands {
		known = append(known, c.cmd)
	}
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(append([]byte{11, 0, 0, 0}, []byte("tap0\x00")...))
	f.Fuzz(func(t *testing.T, script []byte) {
		d := newDescriptor(t)
		for len(script) >= 4 {
			pick := binary.LittleEndian.Uint32(script)
			script = script[4:]
			cmd := pick
			if pick>>24 == 0 {
				cmd = known[int(pick)%len(known)]
			}
			n := min(len(script), int(Size(cmd)))
			in := make([]byte, inSize(cmd))
			copy(in, script[:n])
			script = script[n:]
			out := make([]byte, outSize(cmd))
			_, err := Do(d, &Request{Cmd: cmd, Arg: uint64(pick), In: in, Out: out, Tid: tid})
			if err != nil {
				if _, ok := err.(unix.Errno); !ok {
					t.Fatalf("%s: error %v is not an errno", Name(cmd), err)
				}
			}
		}
	})
}
