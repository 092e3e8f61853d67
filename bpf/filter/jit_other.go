//go:build !amd64 || !linux

package filter

// Only amd64 Linux has a translation; elsewhere every program is
// interpreted.

const maxJITPacket = 0

type jitCode struct{}

func newJIT([]Instruction) *jitCode { return nil }

func (p *Program) runJIT([]byte, uint32) uint32 {
	panic("filter: no machine code on this architecture")
}
