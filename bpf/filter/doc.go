// Package filter validates and runs classic BPF programs the way FreeBSD's
// bpf(4) does.
//
// Validate applies the kernel's acceptance rules: the exact opcode set of
// FreeBSD's validator (MOD and XOR included, no Linux extensions), at most
// MaxInstructions instructions, forward jumps that stay inside the program,
// scratch indices below MemWords, no division or modulo by a constant zero,
// and a RET as the last instruction. An empty program is valid and means
// "no filter".
//
// Compile turns a valid program into a Program whose Run is a single dense
// switch over pre-decoded operations with absolute jump targets. Common
// tcpdump idioms are fused into single operations: a packet load followed by
// a conditional jump on a constant, the same after "ldxb 4*([k]&0xf)", such a
// pair whose targets are both RETs (it returns directly), and a load-and-jeq
// whose false branch is another jeq. A typical filter then needs about a
// third of the dispatches. Run never allocates.
//
// On amd64, Compile also translates the program into machine code (the
// way FreeBSD's bpf_jitter does) in a mapping of its own that is never
// writable and executable at once and goes when the Program is collected;
// Run then calls that instead, through a small assembly trampoline. The
// translation keeps A and X in registers, checks every packet load against
// the captured length as the interpreter does, and uses no stack beyond its
// return address, so the Go runtime never sees it. At most 64 MiB of such
// code is mapped at once; programs beyond that are interpreted. The interpreter's results are the reference:
// the tests and fuzz targets run every program both ways. SetJIT turns the
// translation off for programs compiled afterwards.
//
// Execution follows FreeBSD's interpreter: A, X and the scratch memory start
// at zero, arithmetic is unsigned 32-bit with wrap-around, half-word and word
// loads are big-endian, any load that reaches past the captured bytes
// rejects the packet (returns 0), and so does division or modulo by an X of
// zero. Shift counts are taken modulo 32, which is what the C statement
// "A <<= k" does on amd64 and arm64 (the hardware masks the count), for the
// kernel's interpreter and its JIT alike; Go's own operator would instead
// give 0 for counts of 32 and more. Run returns the program's raw result;
// clamping it to the captured length is the caller's business.
package filter
