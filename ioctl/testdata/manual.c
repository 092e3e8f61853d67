/*
 * A capture program written from the bpf(4) manual, unchanged from what it
 * would be on FreeBSD.  Compiled by the tests; it runs only when given an
 * interface name (and needs a bpffs mount then).
 */
#include <sys/types.h>
#include <sys/time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <net/bpf.h>

#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ip and udp, accept 96 bytes */
static struct bpf_insn udp_filter[] = {
	BPF_STMT(BPF_LD + BPF_H + BPF_ABS, 12),
	BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, 0x0800, 0, 3),
	BPF_STMT(BPF_LD + BPF_B + BPF_ABS, 23),
	BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, 17, 0, 1),
	BPF_STMT(BPF_RET + BPF_K, 96),
	BPF_STMT(BPF_RET + BPF_K, 0),
};

int
main(int argc, char **argv)
{
	struct bpf_program prog = { sizeof(udp_filter) / sizeof(udp_filter[0]), udp_filter };
	struct bpf_version bv;
	struct bpf_stat st;
	struct ifreq ifr;
	struct timeval timeout = { 1, 0 };
	u_int blen, on = 1, dlt, dir = BPF_D_IN;
	char *buf, *p;
	ssize_t n;
	int fd, navail = 0;

	if (argc < 2)
		return 0;
	if ((fd = open("/dev/bpf", O_RDWR)) < 0)
		err(1, "/dev/bpf");
	if (ioctl(fd, BIOCVERSION, &bv) < 0)
		err(1, "BIOCVERSION");
	if (bv.bv_major != BPF_MAJOR_VERSION || bv.bv_minor < BPF_MINOR_VERSION)
		errx(1, "filter language version %u.%u", bv.bv_major, bv.bv_minor);
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, argv[1], sizeof(ifr.ifr_name) - 1);
	if (ioctl(fd, BIOCSETIF, &ifr) < 0)
		err(1, "BIOCSETIF %s", argv[1]);
	if (ioctl(fd, BIOCGDLT, &dlt) < 0 || dlt != DLT_EN10MB)
		errx(1, "not Ethernet");
	if (ioctl(fd, BIOCIMMEDIATE, &on) < 0 || ioctl(fd, BIOCSDIRECTION, &dir) < 0 ||
	    ioctl(fd, BIOCSRTIMEOUT, &timeout) < 0 || ioctl(fd, BIOCSETF, &prog) < 0)
		err(1, "configuring");
	if (ioctl(fd, BIOCGBLEN, &blen) < 0)
		err(1, "BIOCGBLEN");
	if ((buf = malloc(blen)) == NULL)
		err(1, "malloc");
	if (ioctl(fd, BIOCGFIONREAD, &navail) < 0)
		err(1, "BIOCGFIONREAD");
	if ((n = read(fd, buf, blen)) < 0)
		err(1, "read");
	for (p = buf; p < buf + n;) {
		struct bpf_hdr *bh = (struct bpf_hdr *)(void *)p;

		printf("%ld.%06ld caplen %u len %u\n", (long)bh->bh_tstamp.tv_sec,
		    (long)bh->bh_tstamp.tv_usec, bh->bh_caplen, bh->bh_datalen);
		p += BPF_WORDALIGN(bh->bh_hdrlen + bh->bh_caplen);
	}
	if (ioctl(fd, BIOCGSTATS, &st) < 0)
		err(1, "BIOCGSTATS");
	printf("%u received, %u dropped, %d were readable\n", st.bs_recv, st.bs_drop, navail);
	free(buf);
	close(fd);
	return 0;
}
