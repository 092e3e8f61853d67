module github.com/bpffs/bpffs

go 1.26.0

require (
	github.com/gopacket/gopacket v1.7.7 // indirect
	github.com/hanwen/go-fuse/v2 v2.12.1 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
