package bpf

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestBudgetBoundsBufferMemory(t *testing.T) {
	tb := newTestBed(t)
	tb.cfg.Budget = NewBudget(3 * 8192) // room for one descriptor of 8 KiB buffers, not two
	a, _ := tb.open(true)
	if _, err := a.SetBufLen(8192); err != nil {
		t.Fatal(err)
	}
	b, _ := tb.open(true)
	if _, err := b.SetBufLen(8192); err != unix.ENOBUFS {
		t.Fatalf("second 2×8 KiB: %v, want ENOBUFS", err)
	}
	// The refusal changed nothing: b still has its default size and can
	// attach with smaller buffers.
	if b.BufLen() != 4096 {
		t.Fatalf("BufLen after refusal = %d, want the default 4096", b.BufLen())
	}
	if _, err := b.SetBufLen(2048); err != nil {
		t.Fatalf("2×2 KiB within the budget: %v", err)
	}
	// Shrinking and growing move only the difference.
	if _, err := a.SetBufLen(4096); err != nil {
		t.Fatal(err)
	}
	if got := tb.cfg.Budget.Used(); got != 2*4096+2*2048 {
		t.Fatalf("used %d, want %d", got, 2*4096+2*2048)
	}
	a.Close()
	b.Close()
	if got := tb.cfg.Budget.Used(); got != 0 {
		t.Fatalf("used %d after closing everything", got)
	}
}
