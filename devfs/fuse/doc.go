// Package fuse is a small FUSE server for emulating character devices: a flat
// directory of nodes whose opens become independent handles with Read, Write,
// Ioctl and Poll, served straight from /dev/fuse.
//
// It exists because device emulation needs three things general-purpose Go
// FUSE libraries do not give together: restricted-mode ioctl, FUSE_POLL with
// FUSE_NOTIFY_POLL wake-ups (answering POLL with ENOSYS switches poll off for
// the whole mount, so every poll(2) then reports "readable"), and blocking
// reads that can park for minutes and still be interrupted promptly.
//
// The package knows nothing about BPF. A node table describes the files; each
// open calls Node.Open, which returns a Handle. A handle that becomes readable
// calls its Waker, which sends FUSE_NOTIFY_POLL to the kernel for every poll
// handle the kernel registered on that open file.
//
// Requests are served concurrently: a reader goroutine handles the request it
// read inline (the fast path for short requests) and, when it was the last
// idle reader, starts another first, so a READ parked for minutes never delays
// other requests, even other opcodes on the same file.
//
// A process must not be a Go client of its own mount through os.File: Go
// registers the file with its netpoller, the kernel turns that epoll_ctl
// into a FUSE_POLL while the thread still holds a Go scheduler slot, and a
// garbage collection starting then waits for that slot while the goroutine
// that would answer the POLL waits for the collection. Plain system calls
// (golang.org/x/sys/unix) release the slot and are safe; so is any client in
// another process, which is how a device is used.
package fuse
