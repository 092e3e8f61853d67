// Package procmem reads and writes another process's memory with
// process_vm_readv and process_vm_writev. Callers decide which process may
// be touched (the daemon names it only from what the kernel tells it) and
// what an error means to their own clients; this package only moves bytes
// and reports a partial transfer as EFAULT.
package procmem
