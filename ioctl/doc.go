// Package ioctl is the ioctl(2) side of the emulated /dev/bpf: it knows the
// BIOC* commands in the encoding Linux programs actually send, lays their
// argument structs out byte for byte, follows the pointers some of those
// structs carry into the caller's memory, and hands each request to the
// matching method of a bpf descriptor.
//
// The command numbers are FreeBSD's group, number and argument type encoded
// with Linux's _IOC layout and Linux struct sizes. FreeBSD's own encoding
// cannot be used: for a FUSE file the kernel decodes direction and size
// from the number with the Linux layout before the daemon sees anything,
// and FreeBSD's read and write bits are the other way round. The C header
// include/net/bpf.h builds the same numbers with Linux's macros, and this
// package's tests compile it and compare every number, size and offset, so
// the two cannot drift apart.
//
// Arguments arrive as the bytes FUSE copied in (and leave as the bytes it
// copies out), exactly as many as the command's size field says. They are
// host byte order; bpffs supports only little-endian LP64 callers (amd64
// and arm64). Every decoder checks its input length and returns an error
// instead of panicking, so a malformed request can be refused cleanly.
package ioctl
