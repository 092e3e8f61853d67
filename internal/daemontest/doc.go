// Package daemontest starts a real bpffs daemon for tests: it builds the
// command once, creates a network namespace with new taps served by the
// daemon, configures the Linux side of the first tap, and stops and
// unmounts everything when the test ends, even when it fails.
package daemontest
