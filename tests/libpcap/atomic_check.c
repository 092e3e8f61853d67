/*
 * atomic_check: tests include/machine/atomic.h.  It includes the headers in
 * the order libpcap's pcap-bpf.c does (or <machine/atomic.h> first, with
 * -DATOMIC_FIRST) and is linked with -Wl,--wrap=mmap, so every mmap() call
 * of this file reaches __wrap_mmap below, which records the flags the
 * kernel will be asked for.
 *
 * Build it three ways: plain (the BPF-style call must get MAP_SHARED),
 * -DBPF_COMPAT_ZBUF_MAP_PRIVATE (it must get MAP_PRIVATE) and
 * -DBPF_COMPAT_NO_MMAP_FIXUP (it must reach Linux unchanged and fail with
 * EINVAL).  In every build, calls that name a sharing type, and file
 * mappings, must pass through untouched.  Prints one line per check and
 * exits 1 if any failed.
 */
#include <sys/param.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>

#ifdef ATOMIC_FIRST
#include <machine/atomic.h>
#include <net/bpf.h>
#include <sys/mman.h>
#else
#include <net/bpf.h>
#include <sys/mman.h>
#include <machine/atomic.h>
#endif

void *__real_mmap(void *, size_t, int, int, int, off_t);

static int last_flags = -1;

void *
__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	last_flags = flags;
	return __real_mmap(addr, len, prot, flags, fd, off);
}

static int failed;

static void
check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	if (!ok)
		failed = 1;
}

/* sharing reads the mapping's flag from /proc/self/maps: 's' or 'p'. */
static char
sharing(void *p)
{
	char line[512];
	unsigned long lo, hi;
	char perms[8];
	char found = '?';
	FILE *f = fopen("/proc/self/maps", "r");

	if (f == NULL)
		return '?';
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
		    (unsigned long)p >= lo && (unsigned long)p < hi) {
			found = perms[3];
			break;
		}
	}
	fclose(f);
	return found;
}

/* child_write_seen: does a write by a forked child show in the parent? */
static int __attribute__((unused))
child_write_seen(volatile unsigned int *word)
{
	pid_t pid;
	int status;

	*word = 0;
	pid = fork();
	if (pid == 0) {
		atomic_store_rel_int(word, 42);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return atomic_load_acq_int(word) == 42;
}

static void
bpf_style_call(void)
{
	size_t len = (size_t)getpagesize();
	void *p;

	/* The exact call of pcap-bpf.c's zero-copy set-up. */
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANON, -1, 0);
#if defined(BPF_COMPAT_NO_MMAP_FIXUP)
	check(last_flags == MAP_ANON, "MAP_ANON alone reaches mmap unchanged");
	check(p == MAP_FAILED && errno == EINVAL, "and Linux refuses it with EINVAL");
#elif defined(BPF_COMPAT_ZBUF_MAP_PRIVATE)
	check(last_flags == (MAP_ANON | MAP_PRIVATE), "MAP_ANON alone gets MAP_PRIVATE");
	check(p != MAP_FAILED && sharing(p) == 'p', "the mapping is private");
	check(p != MAP_FAILED && child_write_seen(p) == 0, "a forked child's write stays in the child");
#else
	check(last_flags == (MAP_ANON | MAP_SHARED), "MAP_ANON alone gets MAP_SHARED");
	check(p != MAP_FAILED && sharing(p) == 's', "the mapping is shared");
	check(p != MAP_FAILED && child_write_seen(p) == 1, "a forked child's write reaches the parent");
#endif
	if (p != MAP_FAILED)
		munmap(p, len);
}

/* untouched: flags must reach mmap as they are; Linux may still refuse. */
static void
untouched(int flags, const char *what)
{
	size_t len = (size_t)getpagesize();
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);

	check(last_flags == flags, what);
	if (p != MAP_FAILED)
		munmap(p, len);
}

static void
file_mapping_untouched(void)
{
	char path[] = "/tmp/atomic_check.XXXXXX";
	size_t len = (size_t)getpagesize();
	int fd = mkstemp(path);
	void *p;

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
		check(0, "temporary file for the file-mapping checks");
		return;
	}
	unlink(path);
	p = mmap(NULL, len, PROT_READ, 0, fd, 0);
	check(last_flags == 0 && p == MAP_FAILED && errno == EINVAL,
	    "a file mapping without a sharing type is left to fail");
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	check(last_flags == MAP_PRIVATE && p != MAP_FAILED && sharing(p) == 'p',
	    "a MAP_PRIVATE file mapping is untouched");
	if (p != MAP_FAILED)
		munmap(p, len);
	close(fd);
}

static void
atomics(void)
{
	volatile unsigned int i = 0;
	volatile uint32_t u32 = 0;
	volatile uint64_t u64 = 0;
	volatile unsigned long l = 0;
	volatile uintptr_t ptr = 0;

	atomic_store_rel_int(&i, 0xfffffffeu);
	atomic_store_rel_32(&u32, 7);
	atomic_store_rel_64(&u64, 0x123456789abcdef0ull);
	atomic_store_rel_long(&l, ~0ul);
	atomic_store_rel_ptr(&ptr, (uintptr_t)&i);
	atomic_thread_fence_acq();
	atomic_thread_fence_rel();
	atomic_thread_fence_acq_rel();
	atomic_thread_fence_seq_cst();
	check(atomic_load_acq_int(&i) == 0xfffffffeu && atomic_load_acq_32(&u32) == 7 &&
	    atomic_load_acq_64(&u64) == 0x123456789abcdef0ull && atomic_load_acq_long(&l) == ~0ul &&
	    atomic_load_acq_ptr(&ptr) == (uintptr_t)&i,
	    "acquire loads return what release stores stored");
}

int
main(void)
{
	struct bpf_zbuf_header h;

	memset(&h, 0, sizeof(h));
	/* The hand-over as pcap-bpf.c does it, on the real header type. */
	atomic_store_rel_int(&h.bzh_user_gen, atomic_load_acq_int(&h.bzh_kernel_gen) + 1);
	check(h.bzh_user_gen == 1, "the bpf_zbuf_header fields take the atomics");

	atomics();
	bpf_style_call();
	untouched(MAP_ANON | MAP_PRIVATE, "MAP_ANON|MAP_PRIVATE is untouched");
	untouched(MAP_ANON | MAP_SHARED, "MAP_ANON|MAP_SHARED is untouched");
	untouched(MAP_ANONYMOUS | MAP_SHARED_VALIDATE, "MAP_ANONYMOUS|MAP_SHARED_VALIDATE is untouched (Linux refuses it for anonymous memory)");
	untouched(MAP_ANON | MAP_PRIVATE | MAP_NORESERVE, "MAP_PRIVATE with other flags is untouched");
	file_mapping_untouched();
	return failed;
}
