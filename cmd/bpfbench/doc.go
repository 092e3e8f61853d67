// Command bpfbench measures how fast bpffs captures, side by side with the
// two references that matter on this machine: the ceiling (a plain C
// program reading the same kind of tap with one blocking read(2) per frame,
// no bpffs at all) and Linux's own capture (tcpdump on AF_PACKET).
//
//	bpfbench [-quick] [-json FILE] [-png FILE] [-bpffs PATH] [-configs LIST]
//	         [-sizes 64,1514] [-trials N] [-steps N] [-source ring|egress|read]
//
// It needs root, /dev/fuse, /dev/net/tun, gcc, ip and tcpdump. It makes its
// own network namespace with two taps: a persistent one read by
// tests/c/tapread.c (the ceiling, and the drainer behind tcpdump) and one
// served by a bpffs daemon it starts. The generator is tests/c/pktgen.c
// (AF_PACKET sendmmsg inside the namespace); bpffs is read by
// tests/c/drain.c. All of it is removed at the end, after SIGINT too.
//
// For every configuration and frame size it first offers traffic as fast as
// the generator goes (saturation), then searches the highest rate that
// every reader captures completely: nothing missing, no BPF drop, no
// tx_dropped on the tap (with the daemon's -source read; with -source ring
// the tap drops every frame on purpose after the ring has it, with -source
// egress frames never reach the tap's queue, and what either loses shows as
// frames missing at the readers). Each step takes up to three trials and keeps the
// majority; figures are medians, because the machine is noisy. The daemon's
// CPU time per packet comes from /proc/PID/stat. Results are printed as a
// table plus ratios against the ceiling and against tcpdump from the same
// run, written as JSON with -json, and drawn as a PNG chart (captured
// versus offered rate) with -png; the chart is drawn by this command with
// image/png alone.
package main
