// Package zerocopy is BPF's zero-copy buffer mode: the two buffers belong to
// the client process, and the daemon writes records straight into them and
// hands them over with the generation counters of struct bpf_zbuf_header.
//
// Where the client's buffers are shared memory (MAP_SHARED anonymous memory,
// a memfd, a file on tmpfs), the daemon maps the very same pages through
// /proc/PID/map_files and the hand-over is two stores to shared memory.
// Private memory (MAP_PRIVATE, malloc) cannot be shared; there the daemon
// stages records in its own copy of the buffer and writes each filled buffer
// into the process with process_vm_writev, then bzh_kernel_len, then
// bzh_kernel_gen — the same protocol, one system call per buffer, still no
// read(2).
//
// A client can unmap, truncate or scribble on its buffers, fork or exit at
// any moment: every access to shared pages is guarded so that a fault
// (a truncated file) marks the buffers broken instead of crashing the
// daemon, and from then on every packet is counted as a drop. The daemon
// never writes outside the two buffers it mapped or named.
package zerocopy
