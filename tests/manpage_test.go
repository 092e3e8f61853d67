package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// manPrograms returns the complete C programs (literal blocks with a main
// function) in man/bpf.4, with mdoc escapes undone.
func manPrograms(t *testing.T) []string {
	src, err := os.ReadFile("../man/bpf.4")
	if err != nil {
		t.Fatal(err)
	}
	var progs []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		switch {
		case strings.HasPrefix(line, ".Bd -literal"):
			in, cur = true, nil
		case in && line == ".Ed":
			in = false
			prog := strings.Join(cur, "\n")
			if strings.Contains(prog, "\nmain(") {
				progs = append(progs, strings.ReplaceAll(prog, `\e`, `\`))
			}
		case in:
			cur = append(cur, line)
		}
	}
	return progs
}

// Every example program in the manual compiles, warning-free, against the
// project's header: the manual is part of the product.
func TestManualExamplesCompile(t *testing.T) {
	progs := manPrograms(t)
	if len(progs) < 2 {
		t.Fatalf("found %d example programs in man/bpf.4, want the buffered and the zero-copy one", len(progs))
	}
	dir := t.TempDir()
	for i, p := range progs {
		src := filepath.Join(dir, "example.c")
		if err := os.WriteFile(src, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", "../include", "-o", filepath.Join(dir, "example"), src).CombinedOutput()
		if err != nil {
			t.Errorf("example %d does not compile: %v\n%s\n--- program ---\n%s", i, err, out, p)
		}
	}
}

// The manual's zero-copy reader, compiled as printed (only the mount point
// changed), captures real traffic.
func TestManualZeroCopyExampleCaptures(t *testing.T) {
	var prog string
	for _, p := range manPrograms(t) {
		if strings.Contains(p, "BIOCSETZBUF") {
			prog = p
		}
	}
	if prog == "" {
		t.Fatal("no zero-copy example in man/bpf.4")
	}
	e := startDaemon(t, 1, "-units", "1")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	src, bin := filepath.Join(dir, "zread.c"), filepath.Join(dir, "zread")
	os.WriteFile(src, []byte(strings.Replace(prog, `"/run/bpffs/bpf"`, `"`+e.Node("bpf")+`"`, 1)), 0o644)
	if out, err := exec.Command("gcc", "-std=gnu11", "-O2", "-I", "../include", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Line-buffered stdout: the program prints into a pipe here.
	c := startProgram(t, "stdbuf", nil, "-oL", bin, e.Taps[0])
	waitFor(t, "the reader to attach", func() bool { return len(e.StatsLines()) == 1 && strings.Contains(e.StatsLines()[0], e.Taps[0]) })
	e.SendUDP(3, 100)
	for i := 0; i < 3; i++ {
		c.expect("142 bytes")
	}
}
