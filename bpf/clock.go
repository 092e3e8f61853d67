package bpf

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// bootClock converts CLOCK_REALTIME nanoseconds into time since boot without
// a system call per packet: it remembers where the boot instant lies on the
// wall clock and re-samples that offset at most once a second, which follows
// wall-clock steps (NTP, settimeofday) within a second.
type bootClock struct {
	// bootWall is CLOCK_REALTIME − CLOCK_BOOTTIME in nanoseconds.
	bootWall atomic.Int64
	// sampledAt is the wall time of the last sample; only the goroutine that
	// advances it re-samples, so concurrent callers never pile up syscalls.
	sampledAt atomic.Int64
}

const clockRefreshInterval = int64(time.Second)

func newBootClock() *bootClock {
	c := &bootClock{}
	now := c.sample()
	c.sampledAt.Store(now)
	return c
}

// sample reads the boot clock on both sides of the wall clock and pairs the
// wall reading with their midpoint, so the offset errs by at most half the
// time the reads took. It returns the wall time read.
func (c *bootClock) sample() int64 {
	var before, wall, after unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &before) != nil ||
		unix.ClockGettime(unix.CLOCK_REALTIME, &wall) != nil ||
		unix.ClockGettime(unix.CLOCK_BOOTTIME, &after) != nil {
		// Both clocks exist on every Linux this runs on; if they did not,
		// keep the last good offset rather than inventing one.
		return time.Now().UnixNano()
	}
	boot := before.Nano() + (after.Nano()-before.Nano())/2
	c.bootWall.Store(wall.Nano() - boot)
	return wall.Nano()
}

// refresh re-samples the offset when wallNanos is a second or more past the
// last sample, or as far before it (the wall clock was stepped back). Smaller
// backward differences are normal: a frame stamped by the reader may reach
// here after a write stamped later has refreshed the clock.
func (c *bootClock) refresh(wallNanos int64) {
	last := c.sampledAt.Load()
	if d := wallNanos - last; d > -clockRefreshInterval && d < clockRefreshInterval {
		return
	}
	if !c.sampledAt.CompareAndSwap(last, wallNanos) {
		return
	}
	c.sample()
}

// sinceBoot converts a wall-clock timestamp into nanoseconds since boot.
func (c *bootClock) sinceBoot(wallNanos int64) int64 {
	return wallNanos - c.bootWall.Load()
}
