/*
 * blocker: a reader that sits in the call the fault tests interrupt, and
 * reports exactly how that call ended. Written from man/bpf.4.
 *
 *   blocker DEV IFACE read|poll [-w]
 *
 *   read  buffered mode, 64 KiB buffers, no read timeout: it loops in
 *         blocking read(2) and consumes whatever arrives
 *   poll  zero-copy mode, two 64 KiB shared buffers: it loops in poll(2)
 *         with an infinite timeout, acknowledging every buffer handed over
 *   -w    after the end, wait for a line on stdin before exiting, so the
 *         descriptor stays open while the test looks at it
 *
 * Prints "ready" once attached, "receiving" at the first packet, then
 *   end op=read r=R errno=E packets=P            (read failed or returned 0)
 *   end op=poll r=R errno=E revents=0xRR packets=P  (poll failed or reported
 *                                                    POLLHUP/POLLERR/POLLNVAL)
 * followed by probes of the descriptor after the end:
 *   probe read r=R errno=E
 *   probe getif r=R errno=E
 *   probe stats r=R errno=E recv=N drop=N
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/bpf.h>
#include <net/if.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

#define BUFLEN 65536


static long packets;

static void count_records(const char *buf, u_int len) {
	const char *p = buf;
	if (len && !packets) say("receiving");
	while (p < buf + len) {
		const struct bpf_hdr *h = (const void *)p;
		packets++;
		p += BPF_WORDALIGN(h->bh_hdrlen + h->bh_caplen);
	}
}

static void probe(int fd, char *buf, u_int blen) {
	ssize_t n = read(fd, buf, blen);
	say("probe read r=%zd errno=%d", n, n < 0 ? errno : 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	int r = ioctl(fd, BIOCGETIF, &ifr);
	say("probe getif r=%d errno=%d", r, r < 0 ? errno : 0);
	struct bpf_stat st = {0, 0};
	r = ioctl(fd, BIOCGSTATS, &st);
	say("probe stats r=%d errno=%d recv=%u drop=%u", r, r < 0 ? errno : 0, st.bs_recv, st.bs_drop);
}


static void block_in_read(int fd, const char *ifname) {
	u_int blen = BUFLEN;
	if (ioctl(fd, BIOCSBLEN, &blen) < 0) { say("sblen errno=%d", errno); exit(1); }
	if (attach(fd, ifname) < 0) { say("setif errno=%d", errno); exit(1); }
	char *buf = malloc(blen);
	say("ready");
	for (;;) {
		ssize_t n = read(fd, buf, blen);
		if (n <= 0) {
			say("end op=read r=%zd errno=%d packets=%ld", n, n < 0 ? errno : 0, packets);
			break;
		}
		count_records(buf, (u_int)n);
	}
	probe(fd, buf, blen);
}

static void block_in_poll(int fd, const char *ifname) {
	u_int mode = BPF_BUFMODE_ZBUF;
	if (ioctl(fd, BIOCSETBUFMODE, &mode) < 0) { say("setbufmode errno=%d", errno); exit(1); }
	char *zb[2];
	for (int i = 0; i < 2; i++) {
		zb[i] = mmap(NULL, BUFLEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (zb[i] == MAP_FAILED) { say("mmap errno=%d", errno); exit(1); }
	}
	struct bpf_zbuf z = {zb[0], zb[1], BUFLEN};
	if (ioctl(fd, BIOCSETZBUF, &z) < 0) { say("setzbuf errno=%d", errno); exit(1); }
	if (attach(fd, ifname) < 0) { say("setif errno=%d", errno); exit(1); }
	say("ready");
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int r = poll(&p, 1, -1);
		if (r < 0 || (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
			/* Whatever was handed over before the end is still ours to read. */
			for (int i = 0; i < 2; i++) {
				struct bpf_zbuf_header *h = (void *)zb[i];
				u_int gen = atomic_load_explicit((_Atomic u_int *)&h->bzh_kernel_gen, memory_order_acquire);
				if (gen != h->bzh_user_gen) count_records(zb[i] + sizeof *h, h->bzh_kernel_len);
			}
			say("end op=poll r=%d errno=%d revents=0x%x packets=%ld", r, r < 0 ? errno : 0, p.revents, packets);
			break;
		}
		int handed = 0;
		for (int i = 0; i < 2; i++) {
			struct bpf_zbuf_header *h = (void *)zb[i];
			u_int gen = atomic_load_explicit((_Atomic u_int *)&h->bzh_kernel_gen, memory_order_acquire);
			if (gen != h->bzh_user_gen) {
				count_records(zb[i] + sizeof *h, h->bzh_kernel_len);
				atomic_store_explicit((_Atomic u_int *)&h->bzh_user_gen, gen, memory_order_release);
				handed = 1;
			}
		}
		if (!handed) {
			/* Readable without a buffer handed over: the store buffer has data. */
			struct bpf_zbuf rz;
			ioctl(fd, BIOCROTZBUF, &rz);
		}
	}
	probe(fd, zb[0], BUFLEN);
}

int main(int argc, char **argv) {
	if (argc < 4) { fprintf(stderr, "usage: blocker DEV IFACE read|poll [-w]\n"); return 2; }
	int wait_stdin = argc > 4 && !strcmp(argv[4], "-w");
	int fd = open(argv[1], O_RDWR);
	if (fd < 0) { say("open errno=%d", errno); return 1; }
	if (!strcmp(argv[3], "read")) block_in_read(fd, argv[2]);
	else if (!strcmp(argv[3], "poll")) block_in_poll(fd, argv[2]);
	else { fprintf(stderr, "bad mode %s\n", argv[3]); return 2; }
	if (wait_stdin) {
		char line[64];
		if (!fgets(line, sizeof line, stdin)) return 0;
	}
	return 0;
}
