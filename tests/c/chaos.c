/*
 * chaos: a hostile BPF client for the soak test. It performs a random
 * sequence of operations on a bpffs mount, valid and invalid alike, and
 * misbehaves with zero-copy buffers, for a bounded time:
 *
 *   chaos -m MOUNT -i IFACE -s SEED -t SECONDS [-u UNITS]
 *
 * Every call that may block (read, poll) runs under a one-shot interval
 * timer, so a daemon that answers FUSE_INTERRUPT lets it return with EINTR;
 * a client that never returns is therefore a request the daemon left
 * unanswered. Forked children die with their parent (PR_SET_PDEATHSIG) and
 * live for a few operations only.
 *
 * Faults the program causes to itself (it scribbles on, unmaps and
 * truncates its own buffers) are caught and end the current operation only.
 *
 * Prints, at most every 200 ms and at the end, the cumulative counts:
 *   ops open=N ioctl=N read=N write=N poll=N fork=N close=N zbuf=N stats=N
 *       dup=N setup=N fcntl=N eintr=N selffault=N
 * and "done" when it ends on its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/bpf.h>
#include <net/if.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { OP_OPEN, OP_IOCTL, OP_READ, OP_WRITE, OP_POLL, OP_FORK, OP_CLOSE, OP_ZBUF, OP_STATS, OP_DUP, OP_SETUP,
       OP_FCNTL, N_OPS };
static const char *op_names[N_OPS] = {"open", "ioctl", "read", "write", "poll", "fork",
                                      "close", "zbuf", "stats", "dup", "setup", "fcntl"};
static long op_count[N_OPS], eintr_count, selffault_count, children_count;

static uint64_t rng_state;
static uint64_t rnd(void) {
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int chance(int percent) { return (int)below(100) < percent; }

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *mnt, *ifname;
static int units = 16, is_child;
static long page;

/* Memory the operations point into. */
static char *scratch;        /* SCRATCH bytes, followed by an inaccessible page */
#define SCRATCH (2 << 20)
static char *noaccess;       /* a PROT_NONE page */
static char *readonly;       /* a read-only page of random bytes */
static char *unmapped;       /* an address with nothing mapped */

/* Open descriptors: buffered or zero-copy. */
#define SLOTS 8
struct slot {
	int fd;
	int zbuf;      /* zero-copy buffers installed */
	char *zb[2];   /* NULL once unmapped */
	size_t zlen;
	int memfd;     /* backing memfd, -1 if anonymous */
	int truncated; /* the memfd was shrunk: touching the buffers faults */
	u_int blen;
};
static struct slot slots[SLOTS];

static sigjmp_buf fault_jump;
static volatile sig_atomic_t in_op;

static void on_fault(int sig) {
	(void)sig;
	if (in_op) siglongjmp(fault_jump, 1);
	_exit(3);
}
static void on_alarm(int sig) { (void)sig; }

/* arm_timer bounds the next blocking call: the signal interrupts it. */
static void arm_timer(long max_ms) {
	struct itimerval it = {{0, 0}, {0, 0}};
	long ms = 1 + (long)below(max_ms);
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	setitimer(ITIMER_REAL, &it, NULL);
}
static void disarm_timer(void) {
	struct itimerval it = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &it, NULL);
}

static void note_errno(long r) {
	if (r < 0 && errno == EINTR) eintr_count++;
}

/* random_pointer returns an address for an argument of size bytes: valid
 * scratch memory most of the time, otherwise something hostile. */
static void *random_pointer(size_t size) {
	switch (below(10)) {
	case 0: return NULL;
	case 1: return unmapped;
	case 2: return noaccess;
	case 3: return readonly;
	case 4: return scratch + SCRATCH - (size / 2 ? size / 2 : 1); /* runs into the guard page */
	case 5: return (void *)(uintptr_t)rnd();
	case 6: return (void *)0xffff800000000000ull;
	case 7: return scratch + 1 + below(15);
	default: return scratch + below(SCRATCH - (size < SCRATCH ? size : 0) + 1);
	}
}

static void fill_random(char *p, size_t n) {
	for (size_t i = 0; i < n; i++) p[i] = (char)rnd();
}

static struct slot *random_slot(void) { return &slots[below(SLOTS)]; }

static struct slot *free_slot(void) {
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].fd < 0) return &slots[i];
	return NULL;
}

static void release_slot(struct slot *s) {
	if (s->fd >= 0) close(s->fd);
	for (int i = 0; i < 2; i++)
		if (s->zb[i]) munmap(s->zb[i], s->zlen);
	if (s->memfd >= 0) close(s->memfd);
	memset(s, 0, sizeof *s);
	s->fd = s->memfd = -1;
}

static void random_node(char *path, size_t len) {
	switch (below(10)) {
	case 0: case 1: case 2: case 3: case 4: snprintf(path, len, "%s/bpf", mnt); break;
	case 5: snprintf(path, len, "%s/stats", mnt); break;
	case 6: snprintf(path, len, "%s/nosuch", mnt); break;
	default: snprintf(path, len, "%s/bpf%d", mnt, (int)below(units + 1)); break;
	}
}

static void op_open(void) {
	struct slot *s = free_slot();
	if (!s) s = random_slot(), release_slot(s);
	char path[4096];
	random_node(path, sizeof path);
	static const int modes[] = {O_RDWR, O_RDONLY, O_WRONLY, O_RDWR | O_NONBLOCK, O_RDONLY | O_NONBLOCK};
	int flags = modes[below(5)];
	if (chance(5)) flags |= O_CREAT | O_TRUNC;
	s->fd = open(path, flags | O_CLOEXEC * (int)below(2), 0600);
	op_count[OP_OPEN]++;
	if (chance(10)) {
		struct stat st;
		stat(path, &st);
	}
}

static void set_ifreq(struct ifreq *ifr) {
	memset(ifr, 0, sizeof *ifr);
	switch (below(6)) {
	case 0: strcpy(ifr->ifr_name, "lo"); break;
	case 1: fill_random(ifr->ifr_name, sizeof ifr->ifr_name); break; /* no terminator */
	case 2: break;                                                      /* empty name */
	default: strncpy(ifr->ifr_name, ifname, sizeof ifr->ifr_name - 1);
	}
}

/* A filter program: accept all, reject all, or random instructions. */
static void set_program(struct bpf_program *bp) {
	struct bpf_insn *insns = (struct bpf_insn *)scratch;
	u_int n = 1;
	switch (below(5)) {
	case 0: insns[0] = (struct bpf_insn)BPF_STMT(BPF_RET | BPF_K, (u_int)-1); break;
	case 1: insns[0] = (struct bpf_insn)BPF_STMT(BPF_RET | BPF_K, 0); break;
	case 2: insns[0] = (struct bpf_insn)BPF_STMT(BPF_RET | BPF_K, (u_int)below(200)); break;
	case 3:
		n = 1 + (u_int)below(600);
		fill_random((char *)insns, n * sizeof *insns);
		break;
	default:
		n = (u_int)rnd();
		if (chance(50)) n %= 5000;
	}
	bp->bf_len = n;
	bp->bf_insns = chance(80) ? insns : random_pointer(n * sizeof *insns);
}

/* Commands with an argument structure worth getting right sometimes. */
static const unsigned long bpf_cmds[] = {
	BIOCGBLEN, BIOCSBLEN, BIOCSETF, BIOCFLUSH, BIOCPROMISC, BIOCGDLT, BIOCGETIF, BIOCSETIF, BIOCSRTIMEOUT,
	BIOCGRTIMEOUT, BIOCGSTATS, BIOCIMMEDIATE, BIOCVERSION, BIOCGRSIG, BIOCSRSIG, BIOCGHDRCMPLT, BIOCSHDRCMPLT,
	BIOCGDIRECTION, BIOCSDIRECTION, BIOCSDLT, BIOCGDLTLIST, BIOCLOCK, BIOCSETWF, BIOCFEEDBACK, BIOCGETBUFMODE,
	BIOCSETBUFMODE, BIOCGETZMAX, BIOCROTZBUF, BIOCSETZBUF, BIOCSETFNR, BIOCGTSTAMP, BIOCSTSTAMP, BIOCSETVLANPCP,
	BIOCGFIONREAD, FIONREAD, FIONBIO, FIOASYNC, TCGETS, TIOCGWINSZ,
};

static unsigned long random_command(void) {
	if (chance(70)) return bpf_cmds[below(sizeof bpf_cmds / sizeof bpf_cmds[0])];
	unsigned long dir = below(4), nr = below(256), size = below(1 << 14);
	if (chance(50)) size = below(64);
	unsigned long type = 'B';
	if (chance(40)) {
		/* Another group, but none the VFS acts on by itself (freeze,
		 * clone, inode flags, FIBMAP and friends). */
		do type = below(256); while (type == 'X' || type == 'f' || type == 0x94 || type == 0 || type == 'T');
	}
	return dir << 30 | size << 16 | type << 8 | nr;
}

static void do_ioctl(int fd) {
	unsigned long cmd = random_command();
	void *arg = scratch + below(4096);
	if (chance(25)) arg = random_pointer(64);
	else if (chance(50)) {
		/* A plausible argument. */
		arg = scratch;
		if (cmd == BIOCSETIF) set_ifreq((struct ifreq *)scratch);
		else if (cmd == BIOCSETF || cmd == BIOCSETWF || cmd == BIOCSETFNR) {
			struct bpf_program *bp = (void *)(scratch + SCRATCH / 2);
			set_program(bp);
			arg = bp;
		} else if (cmd == BIOCSRTIMEOUT) {
			struct timeval *tv = (void *)scratch;
			tv->tv_sec = chance(80) ? (long)below(2) : (long)rnd();
			tv->tv_usec = chance(80) ? (long)below(1000000) : (long)rnd();
		} else if (cmd == BIOCSETZBUF) {
			struct bpf_zbuf *z = (void *)scratch;
			z->bz_bufa = random_pointer(page);
			z->bz_bufb = random_pointer(page);
			z->bz_buflen = chance(50) ? (size_t)page * (1 + below(8)) : (size_t)rnd();
		} else if (cmd == BIOCGDLTLIST) {
			struct bpf_dltlist *l = (void *)scratch;
			l->bfl_len = chance(70) ? (u_int)below(4) : (u_int)rnd();
			l->bfl_list = random_pointer(l->bfl_len * 4);
		} else if (cmd == BIOCSBLEN) {
			static const u_int sizes[] = {0, 1, 32, 4096, 65536, 524288, 0x80000000u};
			*(u_int *)scratch = chance(80) ? sizes[below(7)] : (u_int)rnd();
		} else if (cmd == BIOCLOCK) {
			/* Locking makes the rest of this descriptor's life dull: rarely. */
			if (!chance(5)) return;
		} else {
			*(u_int *)scratch = chance(70) ? (u_int)below(4) : (u_int)rnd();
		}
	}
	long r = ioctl(fd, cmd, arg);
	note_errno(r);
	op_count[OP_IOCTL]++;
}

static void op_ioctl(void) {
	struct slot *s = random_slot();
	if (s->fd < 0 && chance(80)) return op_open();
	do_ioctl(s->fd);
}

static u_int query_blen(struct slot *s) {
	u_int blen = 0;
	if (ioctl(s->fd, BIOCGBLEN, &blen) == 0) s->blen = blen;
	return blen;
}

static void op_read(void) {
	struct slot *s = random_slot();
	if (s->fd < 0) return op_open();
	u_int blen = s->blen ? s->blen : query_blen(s);
	size_t size;
	switch (below(8)) {
	case 0: size = 0; break;
	case 1: size = 1; break;
	case 2: size = blen + 1; break;
	case 3: size = SCRATCH; break;
	case 4: size = below(SCRATCH); break;
	default: size = blen;
	}
	char *buf = scratch + (chance(30) ? below(16) : 0);
	if (buf + size > scratch + SCRATCH) buf = scratch;
	if (chance(10)) buf = random_pointer(size);
	arm_timer(300);
	long r = read(s->fd, buf, size);
	note_errno(r);
	disarm_timer();
	op_count[OP_READ]++;
}

static void op_write(void) {
	struct slot *s = random_slot();
	if (s->fd < 0) return op_open();
	static const size_t sizes[] = {0, 1, 13, 14, 15, 60, 64, 1514, 1515, 1518, 9000, 65535, 65536, 70000};
	size_t size = chance(70) ? sizes[below(sizeof sizes / sizeof sizes[0])] : below(70001);
	char *buf = scratch;
	fill_random(buf, size < 2048 ? size : 2048);
	if (size >= 14 && chance(50)) {
		/* To the tap's side, as IPv4: the Linux stack drops the garbage. */
		memset(buf, 0xff, 6);
		buf[12] = 0x08;
		buf[13] = 0x00;
	}
	if (chance(10)) buf = random_pointer(size);
	arm_timer(300);
	long r = write(s->fd, buf, size);
	note_errno(r);
	disarm_timer();
	op_count[OP_WRITE]++;
}

static void op_poll(void) {
	struct pollfd p[3];
	int n = 1 + (int)below(3);
	for (int i = 0; i < n; i++) {
		static const short evs[] = {POLLIN, POLLOUT, POLLIN | POLLOUT, POLLPRI, POLLRDNORM, 0};
		p[i].fd = random_slot()->fd;
		p[i].events = chance(80) ? evs[below(6)] : (short)rnd();
	}
	int timeout = chance(20) ? 0 : chance(20) ? -1 : (int)below(200);
	arm_timer(300);
	int r = poll(p, n, timeout);
	note_errno(r);
	disarm_timer();
	op_count[OP_POLL]++;
}

static void op_close(void) {
	struct slot *s = random_slot();
	if (s->fd < 0) return;
	release_slot(s);
	op_count[OP_CLOSE]++;
}

static void op_dup(void) {
	struct slot *s = random_slot(), *t = free_slot();
	if (s->fd < 0 || !t) return;
	t->fd = dup(s->fd);
	op_count[OP_DUP]++;
}

static void op_fcntl(void) {
	struct slot *s = random_slot();
	if (s->fd < 0) return;
	int fl = fcntl(s->fd, F_GETFL);
	if (fl >= 0) fcntl(s->fd, F_SETFL, fl ^ O_NONBLOCK);
	op_count[OP_FCNTL]++;
}

/* op_setup makes a descriptor that really captures, so reads, polls and
 * hand-overs see traffic. */
static void op_setup(void) {
	struct slot *s = free_slot();
	if (!s) return;
	char path[4096];
	snprintf(path, sizeof path, "%s/bpf", mnt);
	s->fd = open(path, O_RDWR);
	op_count[OP_SETUP]++;
	if (s->fd < 0) return;
	static const u_int sizes[] = {4096, 32768, 524288};
	u_int blen = sizes[below(3)];
	ioctl(s->fd, BIOCSBLEN, &blen);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, ifname, sizeof ifr.ifr_name - 1);
	ioctl(s->fd, BIOCSETIF, &ifr);
	struct bpf_insn all = BPF_STMT(BPF_RET | BPF_K, (u_int)-1);
	struct bpf_program bp = {1, &all};
	ioctl(s->fd, BIOCSETF, &bp);
	u_int on = (u_int)below(2);
	ioctl(s->fd, BIOCIMMEDIATE, &on);
	struct timeval tv = {0, 10000 + (long)below(90000)};
	ioctl(s->fd, BIOCSRTIMEOUT, &tv);
	query_blen(s);
}

static void *zero_copy_buffer(struct slot *s, size_t len, int kind) {
	void *p = MAP_FAILED;
	if (kind == 0) p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	else if (kind == 1) p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else {
		if (s->memfd < 0) {
			s->memfd = memfd_create("chaos", MFD_CLOEXEC);
			if (s->memfd < 0 || ftruncate(s->memfd, 2 * len) < 0) return NULL;
		}
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, s->zb[0] ? len : 0);
	}
	return p == MAP_FAILED ? NULL : p;
}

static void zbuf_install(void) {
	struct slot *s = free_slot();
	if (!s) return;
	char path[4096];
	snprintf(path, sizeof path, "%s/bpf", mnt);
	s->fd = open(path, O_RDWR);
	if (s->fd < 0) return;
	u_int mode = BPF_BUFMODE_ZBUF;
	if (ioctl(s->fd, BIOCSETBUFMODE, &mode) < 0) return;
	s->zlen = page * (1 + below(16));
	int kind = (int)below(3);
	s->zb[0] = zero_copy_buffer(s, s->zlen, kind);
	s->zb[1] = zero_copy_buffer(s, s->zlen, kind);
	if (!s->zb[0] || !s->zb[1]) return;
	struct bpf_zbuf z = {s->zb[0], s->zb[1], s->zlen};
	if (ioctl(s->fd, BIOCSETZBUF, &z) < 0) return;
	s->zbuf = 1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, ifname, sizeof ifr.ifr_name - 1);
	ioctl(s->fd, BIOCSETIF, &ifr);
	u_int on = (u_int)below(2);
	ioctl(s->fd, BIOCIMMEDIATE, &on);
}

/* zbuf_consume reads what the daemon handed over, walking records only
 * within the buffer whatever the header says, and acknowledges it. */
static void zbuf_consume(struct slot *s) {
	for (int i = 0; i < 2; i++) {
		if (!s->zb[i]) continue;
		struct bpf_zbuf_header *h = (void *)s->zb[i];
		u_int gen = atomic_load_explicit((_Atomic u_int *)&h->bzh_kernel_gen, memory_order_acquire);
		if (gen == h->bzh_user_gen) continue;
		u_int len = h->bzh_kernel_len, off = 0;
		size_t room = s->zlen - sizeof *h;
		const char *data = s->zb[i] + sizeof *h;
		while (off + sizeof(struct bpf_hdr) <= len && off + sizeof(struct bpf_hdr) <= room) {
			const struct bpf_hdr *bh = (const void *)(data + off);
			u_int step = BPF_WORDALIGN(bh->bh_hdrlen + bh->bh_caplen);
			if (step == 0) break;
			off += step;
		}
		atomic_store_explicit((_Atomic u_int *)&h->bzh_user_gen, gen, memory_order_release);
	}
}

static void op_zbuf(void) {
	op_count[OP_ZBUF]++;
	struct slot *s = NULL;
	for (int i = 0, k = (int)below(SLOTS); i < SLOTS; i++)
		if (slots[(k + i) % SLOTS].zbuf) { s = &slots[(k + i) % SLOTS]; break; }
	if (!s || chance(15)) return zbuf_install();
	int touchable = !s->truncated;
	switch (below(9)) {
	case 0: case 1: case 2:
		if (touchable) zbuf_consume(s);
		break;
	case 3: {
		struct bpf_zbuf z;
		ioctl(s->fd, BIOCROTZBUF, &z);
		break;
	}
	case 4: /* scribble on a header */
		if (touchable) {
			int i = (int)below(2);
			if (s->zb[i]) fill_random(s->zb[i], chance(50) ? 4 * (1 + below(8)) : s->zlen);
		}
		break;
	case 5: { /* unmap a buffer the daemon may be writing */
		int i = (int)below(2);
		if (s->zb[i]) munmap(s->zb[i], s->zlen), s->zb[i] = NULL;
		break;
	}
	case 6: /* truncate the memfd behind the buffers */
		if (s->memfd >= 0) {
			if (ftruncate(s->memfd, chance(50) ? 0 : (off_t)s->zlen / 2) == 0) s->truncated = 1;
		}
		break;
	case 7: /* make a buffer read-only for us; the daemon's view stays writable */
		if (s->zb[0]) mprotect(s->zb[0], s->zlen, PROT_READ);
		s->truncated = 1;
		break;
	default: { /* a child that acknowledges for a while, then dies mid-hand-over */
		if (!touchable || is_child) break;
		pid_t pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			is_child = 1;
			for (int k = (int)below(20); k > 0; k--) {
				zbuf_consume(s);
				usleep(1000);
			}
			raise(SIGKILL);
		}
		if (pid > 0) children_count++;
	}
	}
}

static void op_stats(void) {
	char path[4096];
	snprintf(path, sizeof path, "%s/stats", mnt);
	int fd = open(path, O_RDONLY);
	op_count[OP_STATS]++;
	if (fd < 0) return;
	size_t size = chance(50) ? 4096 : 1 + below(SCRATCH);
	while (read(fd, scratch, size) > 0)
		if (chance(20)) break;
	close(fd);
}

static void random_op(void);

static void op_fork(void) {
	if (is_child || children_count > 64) return;
	op_count[OP_FORK]++;
	pid_t pid = fork();
	if (pid != 0) {
		if (pid > 0) children_count++;
		return;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	is_child = 1;
	for (int k = (int)below(30); k > 0; k--) random_op();
	switch (below(3)) {
	case 0: _exit(0);
	case 1: raise(SIGKILL);
	default: exit(0);
	}
}

static void report(void) {
	if (is_child) return;
	printf("ops");
	for (int i = 0; i < N_OPS; i++) printf(" %s=%ld", op_names[i], op_count[i]);
	printf(" eintr=%ld selffault=%ld\n", eintr_count, selffault_count);
	fflush(stdout);
}

static void random_op(void) {
	in_op = 1;
	if (sigsetjmp(fault_jump, 1)) {
		selffault_count++;
		in_op = 0;
		return;
	}
	unsigned w = (unsigned)below(100);
	if (w < 8) op_open();
	else if (w < 30) op_ioctl();
	else if (w < 45) op_read();
	else if (w < 53) op_write();
	else if (w < 63) op_poll();
	else if (w < 65) op_fork();
	else if (w < 71) op_close();
	else if (w < 83) op_zbuf();
	else if (w < 86) op_stats();
	else if (w < 88) op_dup();
	else if (w < 96) op_setup();
	else op_fcntl();
	in_op = 0;
}

static void reap_children(int block) {
	while (children_count > 0) {
		pid_t p = waitpid(-1, NULL, block ? 0 : WNOHANG);
		if (p <= 0) break;
		children_count--;
	}
}

int main(int argc, char **argv) {
	double seconds = 5;
	uint64_t seed = 1;
	int opt;
	while ((opt = getopt(argc, argv, "m:i:s:t:u:")) != -1) {
		switch (opt) {
		case 'm': mnt = optarg; break;
		case 'i': ifname = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 't': seconds = atof(optarg); break;
		case 'u': units = atoi(optarg); break;
		default: return 2;
		}
	}
	if (!mnt || !ifname) {
		fprintf(stderr, "usage: chaos -m MOUNT -i IFACE -s SEED -t SECONDS [-u UNITS]\n");
		return 2;
	}
	rng_state = seed * 0x9e3779b97f4a7c15ull | 1;
	page = sysconf(_SC_PAGESIZE);
	for (int i = 0; i < SLOTS; i++) slots[i].fd = slots[i].memfd = -1;

	scratch = mmap(NULL, SCRATCH + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	noaccess = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	readonly = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch == MAP_FAILED || noaccess == MAP_FAILED || readonly == MAP_FAILED) { perror("mmap"); return 1; }
	mprotect(scratch + SCRATCH, page, PROT_NONE);
	fill_random(readonly, page);
	mprotect(readonly, page, PROT_READ);
	unsigned char vec;
	for (uintptr_t a = 0x200000000000ull;; a += 0x1000000000ull) {
		if (mincore((void *)a, page, &vec) < 0 && errno == ENOMEM) { unmapped = (char *)a; break; }
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fault;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sa.sa_handler = on_alarm;
	sa.sa_flags = 0; /* no SA_RESTART: the timer must end the call */
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	double end = now() + seconds, last_report = 0;
	while (now() < end) {
		random_op();
		reap_children(0);
		if (now() - last_report > 0.2) {
			report();
			last_report = now();
		}
		if (chance(1) && below(20) == 0) {
			/* Leave abruptly with everything open. */
			report();
			printf("exit\n");
			fflush(stdout);
			_exit(0);
		}
	}
	/* Children still alive die with us; wait so none outlives the run. */
	signal(SIGALRM, SIG_IGN);
	reap_children(1);
	report();
	printf("done\n");
	return 0;
}
