// Command bpffs mounts a FUSE filesystem whose files behave like FreeBSD's
// BPF devices, fed by TAP interfaces it owns.
//
//	bpffs [-tap NAME[,NAME...]] [-netns NAME|PATH] [-units N] [-mode 0600]
//	      [-uid 0] [-gid 0] [-zerocopy=true] [-link DIR] [MOUNTPOINT]
//	bpffs stat [MOUNTPOINT]
//
// It runs in the foreground, logs to stderr, and exits 0 after SIGINT or
// SIGTERM with the mount gone. See man/bpf.4 for the device itself.
package main
