// Package tests holds the end-to-end tests: the bpffs daemon built from
// source, a real FUSE mount, TAP devices in network namespaces the tests
// create, real traffic, and C clients (tests/c) written from man/bpf.4.
package tests
