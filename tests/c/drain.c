/*
 * drain: the fastest honest BPF reader, written from man/bpf.4. It reads
 * until the interface has been quiet for a while and reports what it got.
 *
 *   drain DEV IFACE [-z] [-b BYTES] [-f all|port9|none] [-s SNAPLEN] [-q IDLE_MS] [-v]
 *
 *   -z        zero-copy mode with two buffers of BYTES (default 2 MiB);
 *             otherwise buffered mode with BIOCSBLEN BYTES (default 512 KiB)
 *   -f        filter: all (no filter), port9 (UDP to port 9 only), none
 *             (rejects everything)
 *   -s        snap length returned by the filter (default: whole packet)
 *   -q        stop after IDLE_MS without a packet, once one was seen
 *   -v        verify the IPv4 and UDP checksums of every whole capture
 *
 * Prints "ready", then at the end:
 *   drain packets=N bad=B bytes=X recv=R drop=D elapsed=SECONDS
 * where elapsed runs from the first packet to the last.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/bpf.h>
#include <net/if.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long packets, bad, bytes;
static double first, last;
static int verify;

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum) {
	for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
	if (len & 1) sum += p[len - 1] << 8;
	return sum;
}
static uint16_t fold(uint32_t s) {
	while (s >> 16) s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static int frame_ok(const uint8_t *f, u_int len) {
	if (len < 42 || f[12] != 0x08 || f[13] != 0x00) return 1; /* not IPv4: nothing to check */
	const uint8_t *ip = f + 14;
	int ihl = (ip[0] & 0xf) * 4, iplen = (ip[2] << 8) | ip[3];
	if (14 + iplen > (int)len) return 0;
	if (fold(sum16(ip, ihl, 0)) != 0xffff) return 0;
	if (ip[9] != 17) return 1;
	const uint8_t *udp = ip + ihl;
	int udplen = iplen - ihl;
	uint8_t pseudo[12];
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0; pseudo[9] = 17; pseudo[10] = udplen >> 8; pseudo[11] = udplen & 0xff;
	return fold(sum16(udp, udplen, sum16(pseudo, 12, 0))) == 0xffff;
}

static void walk(const char *buf, u_int len) {
	const char *p = buf;
	if (len == 0) return;
	double t = now();
	if (!packets) first = t;
	last = t;
	while (p < buf + len) {
		const struct bpf_hdr *h = (const void *)p;
		packets++;
		bytes += h->bh_caplen;
		if (verify && h->bh_caplen == h->bh_datalen && !frame_ok((const uint8_t *)p + h->bh_hdrlen, h->bh_caplen))
			bad++;
		p += BPF_WORDALIGN(h->bh_hdrlen + h->bh_caplen);
	}
}

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage: drain DEV IFACE [options]\n"); return 2; }
	const char *dev = argv[1], *ifname = argv[2], *filter = "all";
	int zbuf = 0, idle_ms = 1000;
	u_int snaplen = (u_int)-1;
	size_t size = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "-z")) zbuf = 1;
		else if (!strcmp(argv[i], "-b")) size = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "-f")) filter = argv[++i];
		else if (!strcmp(argv[i], "-s")) snaplen = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "-q")) idle_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-v")) verify = 1;
	}
	int fd = open(dev, O_RDWR);
	if (fd < 0) { printf("open errno=%d\n", errno); return 1; }
	char *zb[2] = {NULL, NULL};
	char *rbuf = NULL;
	u_int blen;
	if (zbuf) {
		u_int mode = BPF_BUFMODE_ZBUF;
		size_t zmax;
		if (ioctl(fd, BIOCSETBUFMODE, &mode) < 0 || ioctl(fd, BIOCGETZMAX, &zmax) < 0) { printf("zbuf errno=%d\n", errno); return 1; }
		if (!size || size > zmax) size = zmax;
		for (int i = 0; i < 2; i++) {
			zb[i] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			if (zb[i] == MAP_FAILED) { printf("mmap errno=%d\n", errno); return 1; }
		}
		struct bpf_zbuf z = {zb[0], zb[1], size};
		if (ioctl(fd, BIOCSETZBUF, &z) < 0) { printf("setzbuf errno=%d\n", errno); return 1; }
	} else {
		blen = size ? size : 524288;
		if (ioctl(fd, BIOCSBLEN, &blen) < 0) { printf("sblen errno=%d\n", errno); return 1; }
	}
	struct bpf_insn prog[] = UDP_PORT9_FILTER(snaplen);
	struct bpf_insn all[] = {BPF_STMT(BPF_RET | BPF_K, snaplen)};
	struct bpf_insn none[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
	struct bpf_program bp = {1, all};
	if (!strcmp(filter, "port9")) bp = (struct bpf_program){sizeof prog / sizeof prog[0], prog};
	else if (!strcmp(filter, "none")) bp = (struct bpf_program){1, none};
	if (ioctl(fd, BIOCSETF, &bp) < 0) { printf("setf errno=%d\n", errno); return 1; }
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, ifname, sizeof ifr.ifr_name - 1);
	if (ioctl(fd, BIOCSETIF, &ifr) < 0) { printf("setif errno=%d\n", errno); return 1; }
	ioctl(fd, BIOCGBLEN, &blen);
	if (!zbuf) {
		/* A timeout lets a quiet interface end the run. */
		struct timeval tv = {0, 100000};
		ioctl(fd, BIOCSRTIMEOUT, &tv);
		rbuf = malloc(blen);
	}
	printf("ready blen=%u\n", blen);
	fflush(stdout);

	int next = 0;
	for (;;) {
		if (packets && (now() - last) * 1000 > idle_ms) break;
		if (zbuf) {
			struct bpf_zbuf_header *h = (void *)zb[next];
			u_int gen = atomic_load_explicit((_Atomic u_int *)&h->bzh_kernel_gen, memory_order_acquire);
			if (gen != h->bzh_user_gen) {
				walk(zb[next] + sizeof *h, h->bzh_kernel_len);
				atomic_store_explicit((_Atomic u_int *)&h->bzh_user_gen, gen, memory_order_release);
				next ^= 1;
				continue;
			}
			struct pollfd p = {fd, POLLIN, 0};
			poll(&p, 1, 100);
			if (atomic_load_explicit((_Atomic u_int *)&h->bzh_kernel_gen, memory_order_acquire) == h->bzh_user_gen) {
				struct bpf_zbuf z;
				ioctl(fd, BIOCROTZBUF, &z);
			}
		} else {
			ssize_t n = read(fd, rbuf, blen);
			/* A stop and continue (SIGSTOP, SIGCONT) interrupts the read
			 * (see BUGS in bpf.4); nothing was consumed, read again. */
			if (n < 0 && errno == EINTR) continue;
			if (n < 0) { printf("read errno=%d\n", errno); return 1; }
			walk(rbuf, (u_int)n);
		}
	}
	struct bpf_stat st;
	ioctl(fd, BIOCGSTATS, &st);
	printf("drain packets=%ld bad=%ld bytes=%ld recv=%u drop=%u elapsed=%.6f\n", packets, bad, bytes, st.bs_recv,
	       st.bs_drop, packets ? last - first : 0.0);
	return 0;
}
