/*
 * Helpers shared by the end-to-end test clients: one line of output per
 * event, flushed at once so the Go test reading the pipe sees it, and the
 * few calls every client makes.
 */
#ifndef BPFFS_TESTUTIL_H
#define BPFFS_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <net/bpf.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void say(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Opens a node or exits, saying why. */
static __attribute__((unused)) int open_dev(const char *path, int flags) {
	int fd = open(path, flags);
	if (fd < 0) {
		say("open-failed errno=%d", errno);
		exit(2);
	}
	return fd;
}

/* BIOCSETIF with a NUL-terminated name. */
static __attribute__((unused)) int attach(int fd, const char *ifname) {
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, ifname, sizeof ifr.ifr_name - 1);
	return ioctl(fd, BIOCSETIF, &ifr);
}

/*
 * The filter the tests use most: IPv4 UDP to destination port 9, keeping
 * SNAPLEN bytes (an initializer for a struct bpf_insn array).
 */
#define UDP_PORT9_FILTER(snaplen) {                                  \
	BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                      \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 5),           \
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),                      \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 3),               \
	BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),                     \
	BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),                      \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 9, 1, 0),                \
	BPF_STMT(BPF_RET | BPF_K, 0),                                \
	BPF_STMT(BPF_RET | BPF_K, (snaplen)),                        \
}

#endif
