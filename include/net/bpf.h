/*
 * <net/bpf.h> for Linux programs that talk to bpffs.
 *
 * bpffs serves files that behave like FreeBSD's /dev/bpf.  This header gives
 * C programs on Linux what FreeBSD's <net/bpf.h> gives them there, so that
 * code written from the bpf(4) manual, and libpcap's BPF backend
 * (configure --with-pcap=bpf), compile unchanged.
 *
 * Layouts and values are FreeBSD's, with two exceptions that come from Linux
 * itself and that the daemon expects:
 *
 *   - The BIOC* request numbers are built with Linux's _IOR/_IOW/_IOWR/_IO.
 *     The kernel hands a FUSE file's ioctl to the daemon only after decoding
 *     direction and size with Linux's _IOC layout, so FreeBSD's encoding
 *     (whose read and write bits are the other way round) cannot work.
 *   - struct ifreq is glibc's, which is 40 bytes, so BIOCGETIF and BIOCSETIF
 *     encode a size of 40 where FreeBSD has 32.
 *
 * The guard name is the one FreeBSD uses: libpcap's <pcap/bpf.h> checks for
 * it and then stays out of the way, so this header must be complete on its
 * own (filter program types, opcodes, DLT_* values).
 *
 * Needs the BSD/POSIX namespace of glibc (struct ifreq, u_int, struct
 * timespec).  That is the default; with -std=c99/c11 define _DEFAULT_SOURCE
 * before the first #include.
 */
#ifndef _NET_BPF_H_
#define _NET_BPF_H_

/*
 * Only LP64 programs.  A 32-bit program's ioctls reach a FUSE daemon flagged
 * FUSE_IOCTL_COMPAT, with pointers and struct layouts (bpf_program,
 * bpf_zbuf, timeval) of a different size; bpffs answers them EOPNOTSUPP
 * rather than guess.  Failing here is kinder than failing at run time.
 */
#if !defined(__LP64__) && !defined(_LP64)
#error "<net/bpf.h> (bpffs): 32-bit programs are not supported; the bpffs daemon answers ioctls from 32-bit callers (FUSE_IOCTL_COMPAT) with EOPNOTSUPP. Build this program for x86_64 or arm64."
#endif

/*
 * The daemon decodes request numbers with the asm-generic _IOC layout that
 * x86_64 and arm64 share; powerpc, mips and sparc lay the bits out
 * differently.
 */
#if !defined(__x86_64__) && !defined(__aarch64__)
#error "<net/bpf.h> (bpffs): only x86_64 and arm64 are supported (the daemon decodes ioctl numbers with their _IOC layout)."
#endif

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/time.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
/*
 * glibc's <net/if.h>, not <linux/if.h>: the two define the same structs and
 * cannot be included together, and libpcap includes <net/if.h> itself.
 */
#include <net/if.h>

#ifndef IFNAMSIZ
#error "<net/bpf.h> (bpffs): struct ifreq is hidden by a strict -std= mode; define _DEFAULT_SOURCE before the first #include."
#endif

#include <net/dlt.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The filter-program part below is also what libpcap's <pcap/bpf.h>
 * defines.  When that header came first (lib_pcap_bpf_h), its definitions
 * are used and these are skipped; the layouts are the same.
 */
#ifndef lib_pcap_bpf_h

/* Date-style release number; libpcap checks it before typedef'ing its own. */
#define BPF_RELEASE 199606

typedef int32_t  bpf_int32;
typedef uint32_t bpf_u_int32;

/* One filter instruction. */
struct bpf_insn {
	unsigned short code;
	unsigned char  jt; /* instructions to skip when the test holds */
	unsigned char  jf; /* ... and when it does not */
	bpf_u_int32    k;
};

/* Argument of BIOCSETF, BIOCSETFNR and BIOCSETWF.  bf_insns is read from the
 * caller's memory by the daemon. */
struct bpf_program {
	unsigned int     bf_len;
	struct bpf_insn *bf_insns;
};

/* Instruction classes. */
#define BPF_CLASS(code) ((code) & 0x07)
#define BPF_LD   0x00
#define BPF_LDX  0x01
#define BPF_ST   0x02
#define BPF_STX  0x03
#define BPF_ALU  0x04
#define BPF_JMP  0x05
#define BPF_RET  0x06
#define BPF_MISC 0x07

/* Load sizes. */
#define BPF_SIZE(code) ((code) & 0x18)
#define BPF_W 0x00
#define BPF_H 0x08
#define BPF_B 0x10

/* Load addressing modes. */
#define BPF_MODE(code) ((code) & 0xe0)
#define BPF_IMM 0x00
#define BPF_ABS 0x20
#define BPF_IND 0x40
#define BPF_MEM 0x60
#define BPF_LEN 0x80
#define BPF_MSH 0xa0

/* ALU operations and jump tests. */
#define BPF_OP(code) ((code) & 0xf0)
#define BPF_ADD  0x00
#define BPF_SUB  0x10
#define BPF_MUL  0x20
#define BPF_DIV  0x30
#define BPF_OR   0x40
#define BPF_AND  0x50
#define BPF_LSH  0x60
#define BPF_RSH  0x70
#define BPF_NEG  0x80
#define BPF_MOD  0x90
#define BPF_XOR  0xa0
#define BPF_JA   0x00
#define BPF_JEQ  0x10
#define BPF_JGT  0x20
#define BPF_JGE  0x30
#define BPF_JSET 0x40

/* Operand source: the constant k or the X register. */
#define BPF_SRC(code) ((code) & 0x08)
#define BPF_K 0x00
#define BPF_X 0x08

/* Return value source (BPF_K or BPF_X above, or the accumulator). */
#define BPF_RVAL(code) ((code) & 0x18)
#define BPF_A 0x10

/* Register moves. */
#define BPF_MISCOP(code) ((code) & 0xf8)
#define BPF_TAX 0x00
#define BPF_TXA 0x80

/* Initialisers for arrays of struct bpf_insn. */
#define BPF_STMT(code, k) { (unsigned short)(code), 0, 0, k }
#define BPF_JUMP(code, k, jt, jf) { (unsigned short)(code), jt, jf, k }

/* Scratch memory words (M[0..15]). */
#define BPF_MEMWORDS 16

#endif /* !lib_pcap_bpf_h */

typedef int64_t  bpf_int64;
typedef uint64_t bpf_u_int64;

/*
 * Records start on long boundaries, so the network header after a link
 * header lands aligned.  libpcap's header sizes these for its savefiles (4
 * bytes); the device's records need the long alignment, hence the #undef.
 */
#undef BPF_ALIGNMENT
#undef BPF_WORDALIGN
#define BPF_ALIGNMENT sizeof(long)
#define BPF_WORDALIGN(x) (((x) + (BPF_ALIGNMENT - 1)) & ~(BPF_ALIGNMENT - 1))

#define BPF_MAXINSNS   512
#define BPF_MAXBUFSIZE 0x80000
#define BPF_MINBUFSIZE 32

/* Answer of BIOCGSTATS. */
struct bpf_stat {
	unsigned int bs_recv; /* packets seen, before the filter */
	unsigned int bs_drop; /* packets accepted but lost for lack of room */
};

/* Answer of BIOCVERSION.  A program may use this header with a daemon whose
 * major number is equal and whose minor number is at least this one. */
struct bpf_version {
	unsigned short bv_major;
	unsigned short bv_minor;
};
#define BPF_MAJOR_VERSION 1
#define BPF_MINOR_VERSION 1

/* Argument of BIOCGDLTLIST.  With bfl_list NULL the daemon only reports the
 * count in bfl_len. */
struct bpf_dltlist {
	unsigned int  bfl_len;
	unsigned int *bfl_list;
};

/* Argument of BIOCSETZBUF (in) and BIOCROTZBUF (out): two buffers of the
 * caller's own memory, each starting with a struct bpf_zbuf_header. */
struct bpf_zbuf {
	void  *bz_bufa;
	void  *bz_bufb;
	size_t bz_buflen;
};

/*
 * First 32 bytes of each zero-copy buffer; packet records follow.  The
 * buffer is the program's to read while bzh_kernel_gen != bzh_user_gen
 * (load kernel_gen with acquire ordering); it hands it back by storing
 * kernel_gen into bzh_user_gen (release ordering).
 */
struct bpf_zbuf_header {
	volatile unsigned int bzh_kernel_gen;
	volatile unsigned int bzh_kernel_len; /* bytes of records after the header */
	volatile unsigned int bzh_user_gen;
	unsigned int          _bzh_pad[5];
};

#define BPF_BUFMODE_BUFFER 1 /* read(2) of exactly BIOCGBLEN bytes (default) */
#define BPF_BUFMODE_ZBUF   2 /* two shared buffers, see struct bpf_zbuf */

/* Which packets a descriptor sees (BIOCSDIRECTION).  INOUT is 1 so that the
 * old BIOCSSEESENT truth values keep their meaning. */
enum bpf_direction {
	BPF_D_IN,    /* received by the interface only */
	BPF_D_INOUT, /* received and sent (default) */
	BPF_D_OUT    /* sent only */
};

/*
 * Timestamp type (BIOCSTSTAMP): a format in the low two bits plus flags.
 * MICROTIME records carry struct bpf_hdr; the other formats carry struct
 * bpf_xhdr.
 */
#define BPF_T_MICROTIME   0x0000 /* struct timeval */
#define BPF_T_NANOTIME    0x0001 /* bt_frac in nanoseconds */
#define BPF_T_BINTIME     0x0002 /* bt_frac in 2^-64 s */
#define BPF_T_NONE        0x0003 /* no timestamp, fields are zero */
#define BPF_T_FORMAT_MASK 0x0003
#define BPF_T_NORMAL      0x0000
#define BPF_T_FAST        0x0100 /* cheaper, tick-precision clock */
#define BPF_T_MONOTONIC   0x0200 /* time since boot, not the wall clock */
#define BPF_T_MONOTONIC_FAST (BPF_T_FAST | BPF_T_MONOTONIC)
#define BPF_T_FLAG_MASK   0x0300
#define BPF_T_FORMAT(t)   ((t) & BPF_T_FORMAT_MASK)
#define BPF_T_FLAG(t)     ((t) & BPF_T_FLAG_MASK)
/* NONE takes no flags; any other format takes any flag combination. */
#define BPF_T_VALID(t) \
	((t) == BPF_T_NONE || \
	 (BPF_T_FORMAT(t) != BPF_T_NONE && \
	  ((t) & ~(BPF_T_FORMAT_MASK | BPF_T_FLAG_MASK)) == 0))

#define BPF_T_MICROTIME_FAST           (BPF_T_MICROTIME | BPF_T_FAST)
#define BPF_T_NANOTIME_FAST            (BPF_T_NANOTIME | BPF_T_FAST)
#define BPF_T_BINTIME_FAST             (BPF_T_BINTIME | BPF_T_FAST)
#define BPF_T_MICROTIME_MONOTONIC      (BPF_T_MICROTIME | BPF_T_MONOTONIC)
#define BPF_T_NANOTIME_MONOTONIC       (BPF_T_NANOTIME | BPF_T_MONOTONIC)
#define BPF_T_BINTIME_MONOTONIC        (BPF_T_BINTIME | BPF_T_MONOTONIC)
#define BPF_T_MICROTIME_MONOTONIC_FAST (BPF_T_MICROTIME | BPF_T_MONOTONIC_FAST)
#define BPF_T_NANOTIME_MONOTONIC_FAST  (BPF_T_NANOTIME | BPF_T_MONOTONIC_FAST)
#define BPF_T_BINTIME_MONOTONIC_FAST   (BPF_T_BINTIME | BPF_T_MONOTONIC_FAST)

/* Timestamp of struct bpf_xhdr; the unit of bt_frac depends on the format. */
struct bpf_ts {
	bpf_int64   bt_sec;
	bpf_u_int64 bt_frac;
};

/*
 * Header in front of every captured packet.  A record is bh_hdrlen bytes of
 * header (this struct plus padding) followed by bh_caplen bytes of packet;
 * the next record starts at BPF_WORDALIGN(bh_hdrlen + bh_caplen).  Walk
 * records with bh_hdrlen, never with sizeof.
 */
struct bpf_hdr {
	struct timeval bh_tstamp;
	bpf_u_int32    bh_caplen;  /* bytes captured */
	bpf_u_int32    bh_datalen; /* length of the packet on the wire */
	unsigned short bh_hdrlen;  /* header plus padding */
};

/* Same layout, for timestamp formats other than MICROTIME. */
struct bpf_xhdr {
	struct bpf_ts  bh_tstamp;
	bpf_u_int32    bh_caplen;
	bpf_u_int32    bh_datalen;
	unsigned short bh_hdrlen;
};

/* Meaningful header bytes, without the tail padding of the struct (26). */
#define SIZEOF_BPF_HDR \
	(offsetof(struct bpf_hdr, bh_hdrlen) + sizeof(((struct bpf_hdr *)0)->bh_hdrlen))

/*
 * FreeBSD's struct bintime and its two conversions come from its
 * <sys/time.h>; glibc has neither, and libpcap uses them to read bpf_xhdr
 * timestamps.  A program that has its own can define _BPF_HAVE_BINTIME
 * before including this header.
 */
#ifndef _BPF_HAVE_BINTIME
#define _BPF_HAVE_BINTIME 1
struct bintime {
	time_t   sec;
	uint64_t frac; /* 2^-64 s */
};

/* Only the top 32 bits of the fraction matter below a nanosecond. */
static __inline void
bintime2timeval(const struct bintime *bt, struct timeval *tv)
{
	tv->tv_sec = bt->sec;
	tv->tv_usec = (long)((UINT64_C(1000000) * (uint32_t)(bt->frac >> 32)) >> 32);
}

static __inline void
bintime2timespec(const struct bintime *bt, struct timespec *ts)
{
	ts->tv_sec = bt->sec;
	ts->tv_nsec = (long)((UINT64_C(1000000000) * (uint32_t)(bt->frac >> 32)) >> 32);
}
#endif /* _BPF_HAVE_BINTIME */

/*
 * Request numbers.  The group is 'B' and the numbers are FreeBSD's; the
 * encoding is Linux's (see the top of this file).
 */
#define BIOCGBLEN      _IOR('B', 102, unsigned int)
#define BIOCSBLEN      _IOWR('B', 102, unsigned int)
#define BIOCSETF       _IOW('B', 103, struct bpf_program)
#define BIOCFLUSH      _IO('B', 104)
#define BIOCPROMISC    _IO('B', 105)
#define BIOCGDLT       _IOR('B', 106, unsigned int)
#define BIOCGETIF      _IOR('B', 107, struct ifreq)
#define BIOCSETIF      _IOW('B', 108, struct ifreq)
#define BIOCSRTIMEOUT  _IOW('B', 109, struct timeval)
#define BIOCGRTIMEOUT  _IOR('B', 110, struct timeval)
#define BIOCGSTATS     _IOR('B', 111, struct bpf_stat)
#define BIOCIMMEDIATE  _IOW('B', 112, unsigned int)
#define BIOCVERSION    _IOR('B', 113, struct bpf_version)
#define BIOCGRSIG      _IOR('B', 114, unsigned int)
#define BIOCSRSIG      _IOW('B', 115, unsigned int)
#define BIOCGHDRCMPLT  _IOR('B', 116, unsigned int)
#define BIOCSHDRCMPLT  _IOW('B', 117, unsigned int)
#define BIOCGDIRECTION _IOR('B', 118, unsigned int)
#define BIOCSDIRECTION _IOW('B', 119, unsigned int)
#define BIOCSDLT       _IOW('B', 120, unsigned int)
#define BIOCGDLTLIST   _IOWR('B', 121, struct bpf_dltlist)
#define BIOCLOCK       _IO('B', 122)
#define BIOCSETWF      _IOW('B', 123, struct bpf_program)
#define BIOCFEEDBACK   _IOW('B', 124, unsigned int)
#define BIOCGETBUFMODE _IOR('B', 125, unsigned int)
#define BIOCSETBUFMODE _IOW('B', 126, unsigned int)
/* Writes a size_t (8 bytes): pass a size_t, not an unsigned int. */
#define BIOCGETZMAX    _IOR('B', 127, size_t)
#define BIOCROTZBUF    _IOR('B', 128, struct bpf_zbuf)
#define BIOCSETZBUF    _IOW('B', 129, struct bpf_zbuf)
#define BIOCSETFNR     _IOW('B', 130, struct bpf_program)
#define BIOCGTSTAMP    _IOR('B', 131, unsigned int)
#define BIOCSTSTAMP    _IOW('B', 132, unsigned int)
#define BIOCSETVLANPCP _IOW('B', 133, unsigned int)

/* Older names of the direction requests; 0 and 1 keep their meaning. */
#define BIOCGSEESENT BIOCGDIRECTION
#define BIOCSSEESENT BIOCSDIRECTION

/*
 * bpffs only: the number of bytes a read(2) would return now, as an int.
 * On FreeBSD one asks with FIONREAD, but Linux answers FIONREAD (0x541B) in
 * its VFS layer for every regular file, so the request never reaches the
 * daemon.  Use this number instead.
 */
#define BIOCGFIONREAD _IOR('B', 200, int)


#ifdef __cplusplus
}
#endif

/*
 * The daemon decodes these layouts byte by byte; a mismatch here would be a
 * silent misread there.
 */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define _BPF_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define _BPF_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#elif defined(__GNUC__) && !defined(__cplusplus) && !defined(_Static_assert)
/* Older C with GCC or Clang: the C11 keyword, without the -pedantic
 * warning.  (Under strict -std=c99 glibc turns _Static_assert into a macro
 * of its own that trips -Wredundant-decls; the checks are skipped then.) */
#define _BPF_STATIC_ASSERT(cond, msg) __extension__ _Static_assert(cond, msg)
#endif

#ifdef _BPF_STATIC_ASSERT
_BPF_STATIC_ASSERT(sizeof(struct bpf_hdr) == 32, "struct bpf_hdr must be 32 bytes");
_BPF_STATIC_ASSERT(sizeof(struct bpf_xhdr) == 32, "struct bpf_xhdr must be 32 bytes");
_BPF_STATIC_ASSERT(offsetof(struct bpf_hdr, bh_caplen) == 16, "bh_caplen must be at offset 16");
_BPF_STATIC_ASSERT(offsetof(struct bpf_hdr, bh_hdrlen) == 24, "bh_hdrlen must be at offset 24");
_BPF_STATIC_ASSERT(offsetof(struct bpf_xhdr, bh_caplen) == 16, "bpf_xhdr bh_caplen must be at offset 16");
_BPF_STATIC_ASSERT(offsetof(struct bpf_xhdr, bh_hdrlen) == 24, "bpf_xhdr bh_hdrlen must be at offset 24");
_BPF_STATIC_ASSERT(sizeof(struct bpf_program) == 16, "struct bpf_program must be 16 bytes");
_BPF_STATIC_ASSERT(sizeof(struct bpf_insn) == 8, "struct bpf_insn must be 8 bytes");
_BPF_STATIC_ASSERT(sizeof(struct bpf_stat) == 8, "struct bpf_stat must be 8 bytes");
_BPF_STATIC_ASSERT(sizeof(struct bpf_version) == 4, "struct bpf_version must be 4 bytes");
_BPF_STATIC_ASSERT(sizeof(struct bpf_zbuf) == 24, "struct bpf_zbuf must be 24 bytes");
_BPF_STATIC_ASSERT(sizeof(struct bpf_zbuf_header) == 32, "struct bpf_zbuf_header must be 32 bytes");
_BPF_STATIC_ASSERT(sizeof(struct bpf_dltlist) == 16, "struct bpf_dltlist must be 16 bytes");
_BPF_STATIC_ASSERT(sizeof(struct ifreq) == 40, "struct ifreq must be 40 bytes (glibc, LP64)");
_BPF_STATIC_ASSERT(sizeof(struct timeval) == 16, "struct timeval must be 16 bytes");
#endif

#endif /* _NET_BPF_H_ */
