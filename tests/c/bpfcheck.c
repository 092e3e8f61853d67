/*
 * bpfcheck: a BPF client written from man/bpf.4, used by the end-to-end
 * tests. Each subcommand exercises one part of the contract against a real
 * bpffs mount and prints lines the Go tests parse.
 *
 *   bpfcheck version DEV
 *   bpfcheck capture DEV IFACE COUNT [-b buflen] [-i] [-f udp9|snap64|none]
 *                    [-d in|out|inout] [-s tstamp] [-t timeout_ms] [-n]
 *   bpfcheck errnos DEV IFACE
 *   bpfcheck inject DEV IFACE TAPMAC
 *   bpfcheck poll DEV IFACE immediate|timeout
 *   bpfcheck write DEV IFACE COUNT      (sends COUNT UDP frames to port 9)
 *   bpfcheck hold DEV IFACE             (attach, say "attached", block in read)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/bpf.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/termios.h>
#include <unistd.h>

#include "testutil.h"




static struct bpf_insn udp9[] = UDP_PORT9_FILTER((u_int)-1);
static struct bpf_insn snap64[] = UDP_PORT9_FILTER(64);
/* ICMP echo replies. */
static struct bpf_insn echoreply[] = {
	BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 5),
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 3),
	BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),
	BPF_STMT(BPF_LD | BPF_B | BPF_IND, 14),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
	BPF_STMT(BPF_RET | BPF_K, 0),
	BPF_STMT(BPF_RET | BPF_K, (u_int)-1),
};

static int set_filter(int fd, unsigned long cmd, struct bpf_insn *insns, u_int len) {
	struct bpf_program p = {len, insns};
	return ioctl(fd, cmd, &p);
}

static void print_records(const unsigned char *buf, ssize_t n, int xhdr, int *count) {
	const unsigned char *p = buf;
	while (p < buf + n) {
		const struct bpf_hdr *h = (const void *)p;
		long long sec;
		unsigned long long frac;
		if (xhdr) {
			const struct bpf_xhdr *x = (const void *)p;
			sec = x->bh_tstamp.bt_sec;
			frac = x->bh_tstamp.bt_frac;
		} else {
			sec = h->bh_tstamp.tv_sec;
			frac = h->bh_tstamp.tv_usec;
		}
		printf("rec off=%ld caplen=%u datalen=%u hdrlen=%u sec=%lld frac=%llu data=",
		       (long)(p - buf), h->bh_caplen, h->bh_datalen, h->bh_hdrlen, sec, frac);
		for (u_int i = 0; i < h->bh_caplen; i++)
			printf("%02x", p[h->bh_hdrlen + i]);
		/* The gap up to the next record must be zero. */
		const unsigned char *next = p + BPF_WORDALIGN(h->bh_hdrlen + h->bh_caplen);
		int gapok = 1;
		for (const unsigned char *q = p + h->bh_hdrlen + h->bh_caplen; q < next && q < buf + n; q++)
			if (*q)
				gapok = 0;
		printf(" gap=%s\n", gapok ? "zero" : "dirty");
		(*count)++;
		p = next;
	}
	fflush(stdout);
}

static int cmd_version(const char *dev) {
	int fd = open_dev(dev, O_RDWR);
	struct bpf_version bv;
	if (ioctl(fd, BIOCVERSION, &bv) < 0) {
		say("version errno=%d", errno);
		return 1;
	}
	say("version %u.%u", bv.bv_major, bv.bv_minor);
	int r = ioctl(fd, _IOR('B', 250, u_int), &r);
	say("unknown-bpf r=%d errno=%d", r, r < 0 ? errno : 0);
	struct termios t;
	r = ioctl(fd, TCGETS, &t);
	say("tcgets r=%d errno=%d", r, r < 0 ? errno : 0);
	say("isatty %d", isatty(fd));
	return 0;
}

static int cmd_capture(int argc, char **argv) {
	const char *dev = argv[2], *ifname = argv[3];
	int want = atoi(argv[4]);
	u_int blen = 0, imm = 0, tstamp = BPF_T_MICROTIME, dir = BPF_D_INOUT;
	int timeout_ms = 0, nonblock = 0;
	const char *filter = "udp9";
	for (int i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "-b")) blen = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-i")) imm = 1;
		else if (!strcmp(argv[i], "-f")) filter = argv[++i];
		else if (!strcmp(argv[i], "-s")) tstamp = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "-t")) timeout_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-n")) nonblock = 1;
		else if (!strcmp(argv[i], "-d")) {
			const char *d = argv[++i];
			dir = !strcmp(d, "in") ? BPF_D_IN : !strcmp(d, "out") ? BPF_D_OUT : BPF_D_INOUT;
		}
	}
	int fd = open_dev(dev, O_RDWR);
	if (blen && ioctl(fd, BIOCSBLEN, &blen) < 0) { say("sblen errno=%d", errno); return 1; }
	if (attach(fd, ifname) < 0) { say("setif errno=%d", errno); return 1; }
	if (ioctl(fd, BIOCGBLEN, &blen) < 0) { say("gblen errno=%d", errno); return 1; }
	if (imm && ioctl(fd, BIOCIMMEDIATE, &imm) < 0) { say("immediate errno=%d", errno); return 1; }
	if (ioctl(fd, BIOCSDIRECTION, &dir) < 0) { say("direction errno=%d", errno); return 1; }
	if (ioctl(fd, BIOCSTSTAMP, &tstamp) < 0) { say("tstamp errno=%d", errno); return 1; }
	if (!strcmp(filter, "udp9")) set_filter(fd, BIOCSETF, udp9, sizeof udp9 / sizeof udp9[0]);
	else if (!strcmp(filter, "snap64")) set_filter(fd, BIOCSETF, snap64, sizeof snap64 / sizeof snap64[0]);
	if (timeout_ms) {
		struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
		ioctl(fd, BIOCSRTIMEOUT, &tv);
	}
	if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int xhdr = (tstamp & BPF_T_FORMAT_MASK) == BPF_T_NANOTIME || (tstamp & BPF_T_FORMAT_MASK) == BPF_T_BINTIME;
	unsigned char *buf = malloc(blen);
	say("ready blen=%u", blen);
	int got = 0;
	/* COUNT 0: read once (to see a timeout). */
	for (int first = 1; got < want || (want == 0 && first); first = 0) {
		ssize_t n = read(fd, buf, blen);
		if (n < 0) {
			say("read errno=%d", errno);
			return 1;
		}
		printf("buffer len=%zd\n", n);
		print_records(buf, n, xhdr, &got);
		if (n == 0 && timeout_ms)
			say("timeout");
	}
	struct bpf_stat st;
	ioctl(fd, BIOCGSTATS, &st);
	say("stats recv=%u drop=%u", st.bs_recv, st.bs_drop);
	return 0;
}

#define CHECK(name, expr) do { errno = 0; int r_ = (expr); say("%s r=%d errno=%d", name, r_ < 0 ? -1 : r_, r_ < 0 ? errno : 0); } while (0)

static int cmd_errnos(const char *dev, const char *ifname) {
	int fd = open_dev(dev, O_RDWR);
	u_int v, blen;
	char small[8], *buf;
	struct ifreq ifr;
	ioctl(fd, BIOCGBLEN, &blen);
	buf = malloc(1 << 20);
	CHECK("read-wrong-size", (int)read(fd, small, sizeof small));
	CHECK("read-unattached", (int)read(fd, buf, blen));
	CHECK("write-unattached", (int)write(fd, buf, 60));
	CHECK("gdlt-unattached", ioctl(fd, BIOCGDLT, &v));
	CHECK("getif-unattached", ioctl(fd, BIOCGETIF, &ifr));
	struct bpf_dltlist dl = {0, NULL};
	CHECK("gdltlist-unattached", ioctl(fd, BIOCGDLTLIST, &dl));
	CHECK("promisc-unattached", ioctl(fd, BIOCPROMISC, NULL));
	v = DLT_EN10MB;
	CHECK("sdlt-unattached", ioctl(fd, BIOCSDLT, &v));
	CHECK("setif-unknown", attach(fd, "nosuch0"));
	memset(&ifr, 'x', sizeof ifr);
	CHECK("setif-unterminated", ioctl(fd, BIOCSETIF, &ifr));
	v = 10;
	CHECK("sblen-small", ioctl(fd, BIOCSBLEN, &v));
	say("sblen-small value=%u", v);
	v = 1u << 30;
	CHECK("sblen-huge", ioctl(fd, BIOCSBLEN, &v));
	say("sblen-huge value=%u", v);
	v = 4096;
	ioctl(fd, BIOCSBLEN, &v);
	static struct bpf_insn big[BPF_MAXINSNS + 1];
	for (int i = 0; i < BPF_MAXINSNS + 1; i++) big[i] = (struct bpf_insn)BPF_STMT(BPF_RET | BPF_K, 0);
	CHECK("setf-513", set_filter(fd, BIOCSETF, big, BPF_MAXINSNS + 1));
	CHECK("setf-512", set_filter(fd, BIOCSETF, big, BPF_MAXINSNS));
	struct bpf_insn badop[] = {{0xff, 0, 0, 0}, BPF_STMT(BPF_RET | BPF_K, 0)};
	CHECK("setf-badop", set_filter(fd, BIOCSETF, badop, 2));
	struct bpf_insn noret[] = {BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0)};
	CHECK("setf-noret", set_filter(fd, BIOCSETF, noret, 1));
	struct bpf_insn divzero[] = {BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), BPF_STMT(BPF_RET | BPF_A, 0)};
	CHECK("setf-divzero", set_filter(fd, BIOCSETF, divzero, 2));
	struct bpf_insn farjump[] = {BPF_JUMP(BPF_JMP | BPF_JA, 5, 0, 0), BPF_STMT(BPF_RET | BPF_K, 0)};
	CHECK("setf-farjump", set_filter(fd, BIOCSETF, farjump, 2));
	struct bpf_insn scratch[] = {BPF_STMT(BPF_ST, 16), BPF_STMT(BPF_RET | BPF_K, 0)};
	CHECK("setf-scratch16", set_filter(fd, BIOCSETF, scratch, 2));
	CHECK("setf-null", set_filter(fd, BIOCSETF, NULL, 1));
	CHECK("setf-badptr", set_filter(fd, BIOCSETF, (struct bpf_insn *)8, 1));
	CHECK("setf-remove", set_filter(fd, BIOCSETF, NULL, 0));
	struct timeval tv = {0, 1000000};
	CHECK("srtimeout-usec", ioctl(fd, BIOCSRTIMEOUT, &tv));
	tv = (struct timeval){-1, 0};
	CHECK("srtimeout-neg", ioctl(fd, BIOCSRTIMEOUT, &tv));
	tv = (struct timeval){1, 500};
	CHECK("srtimeout-ok", ioctl(fd, BIOCSRTIMEOUT, &tv));
	memset(&tv, 0, sizeof tv);
	ioctl(fd, BIOCGRTIMEOUT, &tv);
	say("grtimeout %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
	tv = (struct timeval){0, 0};
	ioctl(fd, BIOCSRTIMEOUT, &tv);
	v = 3;
	CHECK("sdirection-3", ioctl(fd, BIOCSDIRECTION, &v));
	v = 0x103;
	CHECK("ststamp-0x103", ioctl(fd, BIOCSTSTAMP, &v));
	v = 32;
	CHECK("srsig-32", ioctl(fd, BIOCSRSIG, &v));
	v = 8;
	CHECK("svlanpcp-8", ioctl(fd, BIOCSETVLANPCP, &v));
	v = 3;
	CHECK("setbufmode-3", ioctl(fd, BIOCSETBUFMODE, &v));
	size_t zmax;
	CHECK("getzmax-buffer", ioctl(fd, BIOCGETZMAX, &zmax));
	struct bpf_zbuf zb;
	memset(&zb, 0, sizeof zb);
	CHECK("rotzbuf-buffer", ioctl(fd, BIOCROTZBUF, &zb));
	CHECK("setzbuf-buffer", ioctl(fd, BIOCSETZBUF, &zb));
	CHECK("unknown-bpf", ioctl(fd, _IO('B', 251)));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	CHECK("read-nonblock-unattached", (int)read(fd, buf, 4096));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);

	CHECK("setif", attach(fd, ifname));
	v = 8192;
	CHECK("sblen-attached", ioctl(fd, BIOCSBLEN, &v));
	v = BPF_BUFMODE_BUFFER;
	CHECK("setbufmode-attached", ioctl(fd, BIOCSETBUFMODE, &v));
	CHECK("gdlt", ioctl(fd, BIOCGDLT, &v));
	say("gdlt value=%u", v);
	memset(&ifr, 0, sizeof ifr);
	CHECK("getif", ioctl(fd, BIOCGETIF, &ifr));
	say("getif name=%s", ifr.ifr_name);
	dl = (struct bpf_dltlist){0, NULL};
	CHECK("gdltlist-count", ioctl(fd, BIOCGDLTLIST, &dl));
	say("gdltlist-count len=%u", dl.bfl_len);
	u_int list[4] = {0};
	dl = (struct bpf_dltlist){0, list};
	CHECK("gdltlist-short", ioctl(fd, BIOCGDLTLIST, &dl));
	dl = (struct bpf_dltlist){4, list};
	CHECK("gdltlist", ioctl(fd, BIOCGDLTLIST, &dl));
	say("gdltlist len=%u first=%u", dl.bfl_len, list[0]);
	dl = (struct bpf_dltlist){4, (u_int *)8};
	CHECK("gdltlist-badptr", ioctl(fd, BIOCGDLTLIST, &dl));
	v = 105;
	CHECK("sdlt-other", ioctl(fd, BIOCSDLT, &v));
	v = DLT_EN10MB;
	CHECK("sdlt-same", ioctl(fd, BIOCSDLT, &v));
	CHECK("promisc", ioctl(fd, BIOCPROMISC, NULL));
	CHECK("write-empty", (int)write(fd, buf, 0));
	CHECK("write-short", (int)write(fd, buf, 13));
	memset(buf, 0, 2000);
	CHECK("write-1515", (int)write(fd, buf, 1515));
	struct bpf_insn reject[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
	CHECK("setwf", set_filter(fd, BIOCSETWF, reject, 1));
	memset(buf, 0xff, 6); /* broadcast destination */
	CHECK("write-filtered", (int)write(fd, buf, 60));
	CHECK("setwf-remove", set_filter(fd, BIOCSETWF, NULL, 0));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	CHECK("read-nonblock", (int)read(fd, buf, 4096));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	int nread = -1;
	CHECK("fionread", ioctl(fd, BIOCGFIONREAD, &nread));
	say("fionread value=%d", nread);
	tv = (struct timeval){0, 100000};
	ioctl(fd, BIOCSRTIMEOUT, &tv);
	CHECK("read-timeout", (int)read(fd, buf, 4096));

	CHECK("lock", ioctl(fd, BIOCLOCK, NULL));
	CHECK("locked-setf", set_filter(fd, BIOCSETF, reject, 1));
	v = BPF_D_IN;
	CHECK("locked-sdirection", ioctl(fd, BIOCSDIRECTION, &v));
	CHECK("locked-getbufmode", ioctl(fd, BIOCGETBUFMODE, &v));
	CHECK("locked-gblen", ioctl(fd, BIOCGBLEN, &v));
	v = 1;
	CHECK("locked-immediate", ioctl(fd, BIOCIMMEDIATE, &v));
	CHECK("locked-setif", attach(fd, ifname));
	CHECK("locked-flush", ioctl(fd, BIOCFLUSH, NULL));
	struct bpf_stat st;
	CHECK("locked-gstats", ioctl(fd, BIOCGSTATS, &st));
	return 0;
}

static uint16_t csum(const void *data, size_t len) {
	const uint8_t *p = data;
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
	if (len & 1) sum += p[len - 1] << 8;
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int parse_mac(const char *s, unsigned char mac[6]) {
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6 ? 0 : -1;
}

/* An ICMP echo request from 198.18.0.2 (the emulated interface) to
 * 198.18.0.1 (the Linux side of the tap). */
static size_t build_echo(unsigned char *f, const unsigned char dst[6], uint16_t id) {
	memset(f, 0, 98);
	memcpy(f, dst, 6);
	/* Source left zero: header-complete is off, so the daemon fills in the
	 * emulated interface's address. */
	f[12] = 0x08; f[13] = 0x00;
	unsigned char *ip = f + 14;
	ip[0] = 0x45; ip[3] = 84; ip[6] = 0x40; ip[8] = 64; ip[9] = 1;
	ip[12] = 198; ip[13] = 18; ip[14] = 0; ip[15] = 2;
	ip[16] = 198; ip[17] = 18; ip[18] = 0; ip[19] = 1;
	uint16_t c = csum(ip, 20); ip[10] = c >> 8; ip[11] = c & 0xff;
	unsigned char *icmp = ip + 20;
	icmp[0] = 8; icmp[4] = id >> 8; icmp[5] = id & 0xff; icmp[7] = 1;
	for (int i = 8; i < 64; i++) icmp[i] = (unsigned char)i;
	c = csum(icmp, 64); icmp[2] = c >> 8; icmp[3] = c & 0xff;
	return 98;
}

static int cmd_inject(const char *dev, const char *ifname, const char *tapmac) {
	unsigned char dst[6], frame[128], buf[4096];
	if (parse_mac(tapmac, dst) < 0) { say("bad mac"); return 2; }
	int fd = open_dev(dev, O_RDWR);
	if (attach(fd, ifname) < 0) { say("setif errno=%d", errno); return 1; }
	u_int on = 1, blen, dir = BPF_D_IN;
	ioctl(fd, BIOCIMMEDIATE, &on);
	ioctl(fd, BIOCSDIRECTION, &dir);
	set_filter(fd, BIOCSETF, echoreply, sizeof echoreply / sizeof echoreply[0]);
	ioctl(fd, BIOCGBLEN, &blen);
	struct timeval tv = {5, 0};
	ioctl(fd, BIOCSRTIMEOUT, &tv);
	size_t len = build_echo(frame, dst, 0x4242);
	ssize_t w = write(fd, frame, len);
	say("write r=%zd errno=%d", w, w < 0 ? errno : 0);
	for (int tries = 0; tries < 4; tries++) {
		ssize_t n = read(fd, buf, blen);
		if (n <= 0) continue;
		struct bpf_hdr *h = (void *)buf;
		unsigned char *p = buf + h->bh_hdrlen;
		unsigned char *icmp = p + 14 + (p[14] & 0xf) * 4;
		if (icmp[0] == 0 && icmp[4] == 0x42 && icmp[5] == 0x42) {
			say("reply ok src=%02x:%02x:%02x:%02x:%02x:%02x dst=%02x:%02x:%02x:%02x:%02x:%02x",
			    p[6], p[7], p[8], p[9], p[10], p[11], p[0], p[1], p[2], p[3], p[4], p[5]);
			return 0;
		}
	}
	say("no reply");
	return 1;
}

static int cmd_poll(const char *dev, const char *ifname, const char *mode) {
	int fd = open_dev(dev, O_RDWR);
	if (attach(fd, ifname) < 0) { say("setif errno=%d", errno); return 1; }
	set_filter(fd, BIOCSETF, udp9, sizeof udp9 / sizeof udp9[0]);
	if (!strcmp(mode, "immediate")) {
		u_int on = 1;
		ioctl(fd, BIOCIMMEDIATE, &on);
	} else {
		struct timeval tv = {0, 300000};
		ioctl(fd, BIOCSRTIMEOUT, &tv);
	}
	struct pollfd p = {fd, POLLIN, 0};
	int r = poll(&p, 1, 0);
	say("idle r=%d", r);
	say("blocking");
	r = poll(&p, 1, -1);
	say("ready r=%d revents=%x", r, p.revents);
	u_int blen;
	ioctl(fd, BIOCGBLEN, &blen);
	char *buf = malloc(blen);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ssize_t n = read(fd, buf, blen);
	say("read r=%zd", n);
	return 0;
}

static int cmd_write(const char *dev, const char *ifname, int count) {
	int fd = open_dev(dev, O_RDWR);
	if (attach(fd, ifname) < 0) { say("setif errno=%d", errno); return 1; }
	u_int on = 1;
	ioctl(fd, BIOCSHDRCMPLT, &on);
	unsigned char f[60];
	memset(f, 0, sizeof f);
	memset(f, 0xff, 6);
	f[6] = 0x02; f[7] = 0x11; f[8] = 0x22; f[9] = 0x33; f[10] = 0x44; f[11] = 0x55;
	f[12] = 0x08; f[13] = 0x00;
	unsigned char *ip = f + 14;
	/* IPv4 total length 46: 20 header + 8 UDP + 18 payload, a 60-byte frame. */
	ip[0] = 0x45; ip[3] = 46; ip[8] = 64; ip[9] = 17;
	ip[12] = 198; ip[13] = 18; ip[15] = 2; ip[16] = 198; ip[17] = 18; ip[19] = 1;
	uint16_t c = csum(ip, 20); ip[10] = c >> 8; ip[11] = c & 0xff;
	ip[22] = 0; ip[23] = 9; ip[24] = 0; ip[25] = 26;
	for (int i = 0; i < count; i++) {
		ip[28] = (unsigned char)i;
		if (write(fd, f, sizeof f) != sizeof f) { say("write errno=%d", errno); return 1; }
	}
	say("wrote %d", count);
	return 0;
}

static int cmd_hold(const char *dev, const char *ifname) {
	int fd = open_dev(dev, O_RDWR);
	if (attach(fd, ifname) < 0) { say("setif errno=%d", errno); return 1; }
	u_int blen;
	ioctl(fd, BIOCGBLEN, &blen);
	char *buf = malloc(blen);
	say("attached");
	ssize_t n = read(fd, buf, blen);
	say("read r=%zd errno=%d", n, n < 0 ? errno : 0);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage: see the comment at the top\n"); return 2; }
	const char *cmd = argv[1];
	if (!strcmp(cmd, "version")) return cmd_version(argv[2]);
	if (!strcmp(cmd, "capture") && argc >= 5) return cmd_capture(argc, argv);
	if (!strcmp(cmd, "errnos") && argc >= 4) return cmd_errnos(argv[2], argv[3]);
	if (!strcmp(cmd, "inject") && argc >= 5) return cmd_inject(argv[2], argv[3], argv[4]);
	if (!strcmp(cmd, "poll") && argc >= 5) return cmd_poll(argv[2], argv[3], argv[4]);
	if (!strcmp(cmd, "write") && argc >= 5) return cmd_write(argv[2], argv[3], atoi(argv[4]));
	if (!strcmp(cmd, "hold") && argc >= 4) return cmd_hold(argv[2], argv[3]);
	fprintf(stderr, "bad command\n");
	return 2;
}
