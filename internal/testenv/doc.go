// Package testenv holds what the project's privileged tests share: checks
// for root, /dev/fuse and /dev/net/tun that fail (never skip) under CI=true,
// and network namespaces that a test creates and always removes.
package testenv
