//go:build !amd64

package filter

const hasJIT = false
