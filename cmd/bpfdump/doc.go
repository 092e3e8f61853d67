// Command bpfdump captures packets from a BPF device served by bpffs and
// prints a line per packet or writes a capture file. It is a small
// tcpdump built on package bpfdev, for checking a daemon and as an example
// of the package.
//
// Usage:
//
//	bpfdump [-d DEVICE] -i IFACE [-c COUNT] [-w FILE] [-z]
//	        [-f FILTERFILE | -e 'asm text'] [-B bufsize] [-immediate]
//
// -w writes a pcap file with nanosecond timestamps, or pcapng when FILE
// ends in .pcapng ("-" is standard output). -z reads in zero-copy buffer
// mode. A filter file holds the output of tcpdump -dd (C initialisers),
// tcpdump -ddd (decimal, count first) or tcpdump -d (assembly); which one
// is recognised by its look. -e takes the assembly form on the command
// line, instructions separated by ';' or newlines, jump targets as
// absolute instruction numbers:
//
//	bpfdump -i bpf0tap -e 'ldh [12]; jeq #0x800 jt 2 jf 5; ldb [23]; jeq #17 jt 4 jf 5; ret #262144; ret #0'
//
// When standard error is a terminal, a status line there shows packets
// captured, the device's received and dropped counts, and the rate.
// SIGINT or SIGTERM stops the capture; the counts are printed at the end
// as tcpdump does.
package main
