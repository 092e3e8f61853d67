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

#endif
