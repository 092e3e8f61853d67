/*
 * <machine/atomic.h> for Linux programs that talk to bpffs.
 *
 * FreeBSD programs that use zero-copy BPF (bpf(4), BIOCSETZBUF) hand the
 * two buffer headers over with atomic_load_acq_int() and
 * atomic_store_rel_int() from this header; libpcap's pcap-bpf.c is the
 * best-known one.  Here they are built on GCC's __atomic builtins with the
 * same memory orders FreeBSD gives them: a load with acquire semantics (no
 * later access moves before it) and a store with release semantics (no
 * earlier access moves after it).  Only the part of FreeBSD's interface
 * that BPF clients need is provided: acquire loads and release stores of
 * int, 32-, 64-bit, long and pointer width, plus the thread fences.
 *
 * THE mmap() FIX-UP
 *
 * A zero-copy client allocates its buffers like this (pcap-bpf.c does):
 *
 *	mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANON, -1, 0);
 *
 * FreeBSD reads a missing sharing type as MAP_PRIVATE; Linux insists on
 * MAP_SHARED, MAP_PRIVATE or MAP_SHARED_VALIDATE and fails the call with
 * EINVAL, so the client never gets its buffers.  Including this header
 * therefore also turns mmap() into a wrapper that adds MAP_SHARED to an
 * anonymous mapping that names no sharing type, and to nothing else: every
 * call that Linux accepts reaches mmap() unchanged, and a file mapping
 * without a sharing type still fails as Linux wants.  pcap-bpf.c includes
 * <sys/mman.h> and then this header, in that order, only in its zero-copy
 * code, and its two buffer allocations are its only mmap() calls.
 *
 * Why MAP_SHARED rather than FreeBSD's private memory: bpffs can map shared
 * anonymous pages of its client (through /proc/PID/map_files) and then
 * writes packets straight into them, which is real zero-copy with the
 * acquire/release hand-over above working across the two processes.
 * Private pages cannot be mapped by another process; bpffs then falls back
 * to copying each buffer into the client with process_vm_writev(), which
 * works too, just not zero-copy (the stats file shows such a descriptor as
 * zbuf-copy instead of zbuf-shm).  The one difference a program can see:
 * after fork() parent and child share the buffers instead of each getting a
 * copy-on-write copy.
 *
 * Knobs, to be defined before the first #include of this header:
 *
 *	BPF_COMPAT_ZBUF_MAP_PRIVATE	add MAP_PRIVATE instead (FreeBSD's
 *					semantics; bpffs then copies)
 *	BPF_COMPAT_NO_MMAP_FIXUP	leave mmap() alone
 *
 * The fix-up is a function-like macro named mmap, which is a hack with two
 * limits: it only reaches calls in files that include this header, and a
 * declaration of mmap() seen after it would be mangled.  <sys/mman.h> is
 * included first so that its own declaration is never affected, whichever
 * order a program includes the two in.
 */
#ifndef _MACHINE_ATOMIC_H_
#define _MACHINE_ATOMIC_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/mman.h>

#define BPF_COMPAT_ATOMIC_LOAD_ACQ(name, type)				\
	static __inline type						\
	atomic_load_acq_##name(volatile type *p)			\
	{								\
		return (__atomic_load_n(p, __ATOMIC_ACQUIRE));		\
	}
#define BPF_COMPAT_ATOMIC_STORE_REL(name, type)				\
	static __inline void						\
	atomic_store_rel_##name(volatile type *p, type v)		\
	{								\
		__atomic_store_n(p, v, __ATOMIC_RELEASE);		\
	}

BPF_COMPAT_ATOMIC_LOAD_ACQ(int, unsigned int)
BPF_COMPAT_ATOMIC_STORE_REL(int, unsigned int)
BPF_COMPAT_ATOMIC_LOAD_ACQ(32, uint32_t)
BPF_COMPAT_ATOMIC_STORE_REL(32, uint32_t)
BPF_COMPAT_ATOMIC_LOAD_ACQ(64, uint64_t)
BPF_COMPAT_ATOMIC_STORE_REL(64, uint64_t)
BPF_COMPAT_ATOMIC_LOAD_ACQ(long, unsigned long)
BPF_COMPAT_ATOMIC_STORE_REL(long, unsigned long)
BPF_COMPAT_ATOMIC_LOAD_ACQ(ptr, uintptr_t)
BPF_COMPAT_ATOMIC_STORE_REL(ptr, uintptr_t)

#undef BPF_COMPAT_ATOMIC_LOAD_ACQ
#undef BPF_COMPAT_ATOMIC_STORE_REL

static __inline void
atomic_thread_fence_acq(void)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
}

static __inline void
atomic_thread_fence_rel(void)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static __inline void
atomic_thread_fence_acq_rel(void)
{
	__atomic_thread_fence(__ATOMIC_ACQ_REL);
}

static __inline void
atomic_thread_fence_seq_cst(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#ifndef BPF_COMPAT_NO_MMAP_FIXUP

#ifdef BPF_COMPAT_ZBUF_MAP_PRIVATE
#define BPF_COMPAT_ZBUF_SHARING MAP_PRIVATE
#else
#define BPF_COMPAT_ZBUF_SHARING MAP_SHARED
#endif

/* MAP_SHARED_VALIDATE is both bits, so this mask covers all three types. */
#define BPF_COMPAT_MAP_TYPE_BITS (MAP_SHARED | MAP_PRIVATE)

static __inline void *
bpf_compat_mmap(void *addr, size_t len, int prot, int flags, int fd,
    off_t offset)
{
	if ((flags & BPF_COMPAT_MAP_TYPE_BITS) == 0 &&
	    (flags & MAP_ANONYMOUS) != 0)
		flags |= BPF_COMPAT_ZBUF_SHARING;
	/* The parentheses keep the macro below from expanding again. */
	return ((mmap)(addr, len, prot, flags, fd, offset));
}

#define mmap(addr, len, prot, flags, fd, offset)			\
	bpf_compat_mmap((addr), (len), (prot), (flags), (fd), (offset))

#endif /* !BPF_COMPAT_NO_MMAP_FIXUP */

#endif /* !_MACHINE_ATOMIC_H_ */
