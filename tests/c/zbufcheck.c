/*
 * zbufcheck: a zero-copy BPF client written from man/bpf.4, used by the
 * end-to-end tests.
 *
 *   zbufcheck capture DEV IFACE COUNT [-m shared|memfd|tmpfs|private] [-s BYTES] [-i]
 *   zbufcheck errnos DEV IFACE
 *   zbufcheck overload DEV IFACE        (one-page buffers, never acknowledged)
 *   zbufcheck misbehave DEV IFACE unmap|scribble|truncate|fork|exit
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/bpf.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"




/* The acquire load and release store the manual asks for. */
static u_int load_acq(volatile u_int *p) { return atomic_load_explicit((_Atomic u_int *)p, memory_order_acquire); }
static void store_rel(volatile u_int *p, u_int v) { atomic_store_explicit((_Atomic u_int *)p, v, memory_order_release); }

static int memfd_fd = -1;

static void *alloc_buf(const char *mode, size_t len, const char *tmpdir, int idx) {
	void *p = MAP_FAILED;
	if (!strcmp(mode, "shared")) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	} else if (!strcmp(mode, "private")) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	} else if (!strcmp(mode, "memfd")) {
		int fd = memfd_create("zbuf", 0);
		if (fd >= 0 && ftruncate(fd, len) == 0)
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (idx == 0) memfd_fd = fd; else close(fd);
	} else if (!strcmp(mode, "tmpfs")) {
		char path[4096];
		snprintf(path, sizeof path, "%s/zbuf%d", tmpdir, idx);
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0 && ftruncate(fd, len) == 0)
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (fd >= 0) close(fd);
	}
	if (p == MAP_FAILED) { say("alloc errno=%d", errno); exit(2); }
	memset(p, 0, len);
	return p;
}

struct zsetup { int fd; char *buf[2]; size_t len; };

static struct zsetup setup(const char *dev, const char *ifname, const char *mode, size_t len, int immediate) {
	struct zsetup z = {.fd = open_dev(dev, O_RDWR), .len = len};
	u_int m = BPF_BUFMODE_ZBUF;
	if (ioctl(z.fd, BIOCSETBUFMODE, &m) < 0) { say("setbufmode errno=%d", errno); exit(1); }
	size_t zmax = 0;
	if (ioctl(z.fd, BIOCGETZMAX, &zmax) < 0) { say("getzmax errno=%d", errno); exit(1); }
	if (len == 0 || len > zmax) z.len = len = zmax;
	const char *tmpdir = getenv("ZBUF_TMPDIR") ? getenv("ZBUF_TMPDIR") : "/dev/shm";
	z.buf[0] = alloc_buf(mode, len, tmpdir, 0);
	z.buf[1] = alloc_buf(mode, len, tmpdir, 1);
	struct bpf_zbuf bz = {z.buf[0], z.buf[1], len};
	if (ioctl(z.fd, BIOCSETZBUF, &bz) < 0) { say("setzbuf errno=%d", errno); exit(1); }
	if (attach(z.fd, ifname) < 0) { say("setif errno=%d", errno); exit(1); }
	u_int on = 1;
	if (immediate) ioctl(z.fd, BIOCIMMEDIATE, &on);
	return z;
}

static int walk(const char *data, u_int len, int which) {
	int n = 0;
	const char *p = data;
	while (p < data + len) {
		const struct bpf_hdr *h = (const void *)p;
		printf("rec buf=%d off=%ld caplen=%u datalen=%u hdrlen=%u sec=%lld frac=%llu data=", which,
		       (long)(p - data), h->bh_caplen, h->bh_datalen, h->bh_hdrlen, (long long)h->bh_tstamp.tv_sec,
		       (unsigned long long)h->bh_tstamp.tv_usec);
		for (u_int i = 0; i < h->bh_caplen; i++) printf("%02x", (unsigned char)p[h->bh_hdrlen + i]);
		printf(" gap=zero\n");
		n++;
		p += BPF_WORDALIGN(h->bh_hdrlen + h->bh_caplen);
	}
	fflush(stdout);
	return n;
}

static int cmd_capture(int argc, char **argv) {
	const char *mode = "shared";
	size_t len = 0;
	int immediate = 0;
	for (int i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "-m")) mode = argv[++i];
		else if (!strcmp(argv[i], "-s")) len = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "-i")) immediate = 1;
	}
	struct zsetup z = setup(argv[2], argv[3], mode, len ? len : 65536, immediate);
	int want = atoi(argv[4]), got = 0, next = 0, polls = 0, rotations = 0;
	u_int blen;
	ioctl(z.fd, BIOCGBLEN, &blen);
	say("ready blen=%u", blen);
	while (got < want) {
		struct bpf_zbuf_header *h = (void *)z.buf[next];
		u_int gen = load_acq(&h->bzh_kernel_gen);
		if (gen != h->bzh_user_gen) {
			got += walk(z.buf[next] + sizeof *h, h->bzh_kernel_len, next);
			store_rel(&h->bzh_user_gen, gen);
			next ^= 1;
			continue;
		}
		/* Nothing owned: sleep in poll; then re-check, and if still nothing
		 * is ours, ask for the store buffer with BIOCROTZBUF (in immediate
		 * mode poll reports the store buffer, which only a rotation hands
		 * over). */
		struct pollfd p = {z.fd, POLLIN, 0};
		polls++;
		poll(&p, 1, 500);
		if (load_acq(&h->bzh_kernel_gen) == h->bzh_user_gen) {
			struct bpf_zbuf bz;
			if (ioctl(z.fd, BIOCROTZBUF, &bz) < 0) { say("rotzbuf errno=%d", errno); return 1; }
			if (bz.bz_bufa != NULL) {
				rotations++;
				if (bz.bz_bufa != z.buf[next]) { say("rotzbuf handed over the wrong buffer"); return 1; }
			}
		}
	}
	struct bpf_stat st;
	ioctl(z.fd, BIOCGSTATS, &st);
	say("done polls=%d rotations=%d", polls, rotations);
	say("stats recv=%u drop=%u", st.bs_recv, st.bs_drop);
	return 0;
}

#define CHECK(name, expr) do { errno = 0; int r_ = (expr); say("%s r=%d errno=%d", name, r_ < 0 ? -1 : r_, r_ < 0 ? errno : 0); } while (0)

static int cmd_errnos(const char *dev, const char *ifname) {
	long page = sysconf(_SC_PAGESIZE);
	int fd = open_dev(dev, O_RDWR);
	u_int v = BPF_BUFMODE_ZBUF, blen;
	size_t zmax = 0;
	char *a = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *b = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *ro = mmap(NULL, 4 * page, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *hole = mmap(NULL, 4 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(hole, 4 * page);
	CHECK("getzmax-buffermode", ioctl(fd, BIOCGETZMAX, &zmax));
	CHECK("setbufmode-zbuf", ioctl(fd, BIOCSETBUFMODE, &v));
	CHECK("getbufmode", ioctl(fd, BIOCGETBUFMODE, &v));
	say("getbufmode value=%u", v);
	CHECK("getzmax", ioctl(fd, BIOCGETZMAX, &zmax));
	say("getzmax value=%zu", zmax);
	v = 4096;
	CHECK("sblen-zbuf", ioctl(fd, BIOCSBLEN, &v));
	struct bpf_zbuf bz = {NULL, b, 4 * page};
	CHECK("setzbuf-null", ioctl(fd, BIOCSETZBUF, &bz));
	bz = (struct bpf_zbuf){a, b, 0};
	CHECK("setzbuf-zerolen", ioctl(fd, BIOCSETZBUF, &bz));
	bz = (struct bpf_zbuf){a + 16, b, 2 * page};
	CHECK("setzbuf-unaligned", ioctl(fd, BIOCSETZBUF, &bz));
	bz = (struct bpf_zbuf){a, b, 2 * page + 100};
	CHECK("setzbuf-oddlen", ioctl(fd, BIOCSETZBUF, &bz));
	bz = (struct bpf_zbuf){a, b, 513 * page};
	CHECK("setzbuf-toobig", ioctl(fd, BIOCSETZBUF, &bz));
	bz = (struct bpf_zbuf){hole, b, 4 * page};
	CHECK("setzbuf-unmapped", ioctl(fd, BIOCSETZBUF, &bz));
	bz = (struct bpf_zbuf){ro, b, 4 * page};
	CHECK("setzbuf-readonly", ioctl(fd, BIOCSETZBUF, &bz));
	bz = (struct bpf_zbuf){a, b, 8 * page};
	CHECK("setzbuf-partly", ioctl(fd, BIOCSETZBUF, &bz));
	CHECK("setif-nozbuf", attach(fd, ifname));
	memset(a, 0xee, 32);
	bz = (struct bpf_zbuf){a, b, 4 * page};
	CHECK("setzbuf", ioctl(fd, BIOCSETZBUF, &bz));
	struct bpf_zbuf_header *ha = (void *)a;
	say("header-zeroed %d", ha->bzh_kernel_gen == 0 && ha->bzh_user_gen == 0 && ha->bzh_kernel_len == 0);
	CHECK("setzbuf-again", ioctl(fd, BIOCSETZBUF, &bz));
	CHECK("gblen", ioctl(fd, BIOCGBLEN, &blen));
	say("gblen value=%u", blen);
	char *rb = malloc(blen + 1);
	CHECK("read-wrongsize", (int)read(fd, rb, blen + 1));
	CHECK("read-zbuf", (int)read(fd, rb, blen));
	v = BPF_BUFMODE_BUFFER;
	CHECK("setbufmode-after-setzbuf", ioctl(fd, BIOCSETBUFMODE, &v));
	memset(&bz, 0xff, sizeof bz);
	CHECK("rotzbuf-empty-unattached", ioctl(fd, BIOCROTZBUF, &bz));
	say("rotzbuf-empty-unattached bufa=%p len=%zu", bz.bz_bufa, bz.bz_buflen);
	CHECK("setif", attach(fd, ifname));
	bz = (struct bpf_zbuf){a, b, 4 * page};
	CHECK("setzbuf-attached", ioctl(fd, BIOCSETZBUF, &bz));
	CHECK("lock", ioctl(fd, BIOCLOCK, NULL));
	CHECK("locked-rotzbuf", ioctl(fd, BIOCROTZBUF, &bz));
	CHECK("locked-getzmax", ioctl(fd, BIOCGETZMAX, &zmax));

	/* A failed BIOCSETIF in buffer mode allocates buffers: no switch later. */
	int fd2 = open_dev(dev, O_RDWR);
	CHECK("setif-unknown", attach(fd2, "nosuch0"));
	v = BPF_BUFMODE_ZBUF;
	CHECK("setbufmode-after-setif", ioctl(fd2, BIOCSETBUFMODE, &v));
	return 0;
}

static int cmd_overload(const char *dev, const char *ifname) {
	long page = sysconf(_SC_PAGESIZE);
	struct zsetup z = setup(dev, ifname, "shared", page, 0);
	say("ready");
	/* Wait for the Go side to send its packets and tell us. */
	char line[64];
	if (!fgets(line, sizeof line, stdin)) return 1;
	int total = 0;
	for (int i = 0; i < 2; i++) {
		struct bpf_zbuf_header *h = (void *)z.buf[i];
		u_int gen = load_acq(&h->bzh_kernel_gen);
		int n = gen != h->bzh_user_gen ? walk(z.buf[i] + sizeof *h, h->bzh_kernel_len, i) : 0;
		say("buffer %d gen=%u records=%d", i, gen, n);
		total += n;
	}
	struct bpf_stat st;
	ioctl(z.fd, BIOCGSTATS, &st);
	say("overload captured=%d recv=%u drop=%u", total, st.bs_recv, st.bs_drop);
	return 0;
}

static int cmd_misbehave(const char *dev, const char *ifname, const char *how) {
	const char *mode = !strcmp(how, "truncate") ? "memfd" : "shared";
	struct zsetup z = setup(dev, ifname, mode, 8 * sysconf(_SC_PAGESIZE), 1);
	if (!strcmp(how, "unmap")) {
		munmap(z.buf[0], z.len);
		munmap(z.buf[1], z.len);
	} else if (!strcmp(how, "scribble")) {
		for (int i = 0; i < 2; i++) memset(z.buf[i], 0xa5, 64);
	} else if (!strcmp(how, "truncate")) {
		if (ftruncate(memfd_fd, 0) < 0) { say("ftruncate errno=%d", errno); return 1; }
	} else if (!strcmp(how, "fork")) {
		pid_t child = fork();
		if (child == 0) {
			/* The child shares the buffers and the descriptor; it acks
			 * whatever it sees until told to stop. */
			for (int k = 0; k < 200; k++) {
				for (int i = 0; i < 2; i++) {
					struct bpf_zbuf_header *h = (void *)z.buf[i];
					u_int gen = load_acq(&h->bzh_kernel_gen);
					if (gen != h->bzh_user_gen) store_rel(&h->bzh_user_gen, gen);
				}
				usleep(10000);
			}
			_exit(0);
		}
		say("forked");
		char line[64];
		if (!fgets(line, sizeof line, stdin)) return 1;
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	say("ready");
	char line[64];
	if (!fgets(line, sizeof line, stdin)) return 1;
	if (!strcmp(how, "exit")) _exit(0); /* mid-stream, buffers outstanding */
	struct bpf_stat st;
	ioctl(z.fd, BIOCGSTATS, &st);
	say("stats recv=%u drop=%u", st.bs_recv, st.bs_drop);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 4) { fprintf(stderr, "usage: see the comment at the top\n"); return 2; }
	if (!strcmp(argv[1], "capture") && argc >= 5) return cmd_capture(argc, argv);
	if (!strcmp(argv[1], "errnos")) return cmd_errnos(argv[2], argv[3]);
	if (!strcmp(argv[1], "overload")) return cmd_overload(argv[2], argv[3]);
	if (!strcmp(argv[1], "misbehave") && argc >= 5) return cmd_misbehave(argv[2], argv[3], argv[4]);
	fprintf(stderr, "bad command\n");
	return 2;
}
