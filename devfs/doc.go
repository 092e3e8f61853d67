// Package devfs is the device table of a bpffs mount: the cloning node
// "bpf" (every open is a new BPF descriptor), the numbered units bpf0 …
// bpfN-1 (busy while open, for programs that scan units), and a read-only
// "stats" file listing every descriptor for operators. It glues FUSE
// operations to bpf descriptors and the ioctl dispatcher; it knows nothing
// of the FUSE wire format.
package devfs
