//go:build !amd64 || !linux

package filter

const hasJIT = false
