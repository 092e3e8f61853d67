/*
 * Prints what <net/bpf.h> says about the ABI, one "name value" pair per
 * line (values in decimal), for abi_test.go to compare with the Go side.
 */
#define _DEFAULT_SOURCE
#include <net/bpf.h>

#include <stdint.h>
#include <stdio.h>

#define VALUE(x) printf("%s %llu\n", #x, (unsigned long long)(x))
#define SIZE(name, type) printf("sizeof.%s %zu\n", name, sizeof(type))
#define OFFSET(name, type, field) printf("offsetof.%s.%s %zu\n", name, #field, offsetof(type, field))

int
main(void)
{
	VALUE(BIOCGBLEN);
	VALUE(BIOCSBLEN);
	VALUE(BIOCSETF);
	VALUE(BIOCFLUSH);
	VALUE(BIOCPROMISC);
	VALUE(BIOCGDLT);
	VALUE(BIOCGETIF);
	VALUE(BIOCSETIF);
	VALUE(BIOCSRTIMEOUT);
	VALUE(BIOCGRTIMEOUT);
	VALUE(BIOCGSTATS);
	VALUE(BIOCIMMEDIATE);
	VALUE(BIOCVERSION);
	VALUE(BIOCGRSIG);
	VALUE(BIOCSRSIG);
	VALUE(BIOCGHDRCMPLT);
	VALUE(BIOCSHDRCMPLT);
	VALUE(BIOCGDIRECTION);
	VALUE(BIOCSDIRECTION);
	VALUE(BIOCGSEESENT);
	VALUE(BIOCSSEESENT);
	VALUE(BIOCSDLT);
	VALUE(BIOCGDLTLIST);
	VALUE(BIOCLOCK);
	VALUE(BIOCSETWF);
	VALUE(BIOCFEEDBACK);
	VALUE(BIOCGETBUFMODE);
	VALUE(BIOCSETBUFMODE);
	VALUE(BIOCGETZMAX);
	VALUE(BIOCROTZBUF);
	VALUE(BIOCSETZBUF);
	VALUE(BIOCSETFNR);
	VALUE(BIOCGTSTAMP);
	VALUE(BIOCSTSTAMP);
	VALUE(BIOCSETVLANPCP);
	VALUE(BIOCGFIONREAD);

	VALUE(BPF_ALIGNMENT);
	VALUE(SIZEOF_BPF_HDR);
	VALUE(BPF_WORDALIGN(1));
	VALUE(BPF_WORDALIGN(26));
	VALUE(BPF_WORDALIGN(40));
	VALUE(BPF_MAXINSNS);
	VALUE(BPF_MAXBUFSIZE);
	VALUE(BPF_MINBUFSIZE);
	VALUE(BPF_MEMWORDS);
	VALUE(BPF_MAJOR_VERSION);
	VALUE(BPF_MINOR_VERSION);
	VALUE(BPF_RELEASE);
	VALUE(BPF_BUFMODE_BUFFER);
	VALUE(BPF_BUFMODE_ZBUF);
	VALUE(BPF_D_IN);
	VALUE(BPF_D_INOUT);
	VALUE(BPF_D_OUT);
	VALUE(BPF_T_MICROTIME);
	VALUE(BPF_T_NANOTIME);
	VALUE(BPF_T_BINTIME);
	VALUE(BPF_T_NONE);
	VALUE(BPF_T_FORMAT_MASK);
	VALUE(BPF_T_NORMAL);
	VALUE(BPF_T_FAST);
	VALUE(BPF_T_MONOTONIC);
	VALUE(BPF_T_MONOTONIC_FAST);
	VALUE(BPF_T_FLAG_MASK);
	VALUE(BPF_T_MICROTIME_FAST);
	VALUE(BPF_T_NANOTIME_FAST);
	VALUE(BPF_T_BINTIME_FAST);
	VALUE(BPF_T_MICROTIME_MONOTONIC);
	VALUE(BPF_T_NANOTIME_MONOTONIC);
	VALUE(BPF_T_BINTIME_MONOTONIC);
	VALUE(BPF_T_MICROTIME_MONOTONIC_FAST);
	VALUE(BPF_T_NANOTIME_MONOTONIC_FAST);
	VALUE(BPF_T_BINTIME_MONOTONIC_FAST);
	VALUE(DLT_NULL);
	VALUE(DLT_EN10MB);
	VALUE(DLT_RAW);
	VALUE(IFNAMSIZ);

	/* Opcodes, checked against golang.org/x/net/bpf's encoding. */
	VALUE(BPF_LD | BPF_H | BPF_ABS);
	VALUE(BPF_LDX | BPF_B | BPF_MSH);
	VALUE(BPF_ALU | BPF_MOD | BPF_K);
	VALUE(BPF_ALU | BPF_XOR | BPF_X);
	VALUE(BPF_JMP | BPF_JSET | BPF_K);
	VALUE(BPF_RET | BPF_A);
	VALUE(BPF_MISC | BPF_TXA);

	SIZE("int", int);
	SIZE("u_int", u_int);
	SIZE("size_t", size_t);
	SIZE("ifreq", struct ifreq);
	SIZE("bpf_program", struct bpf_program);
	SIZE("bpf_insn", struct bpf_insn);
	SIZE("timeval", struct timeval);
	SIZE("bpf_stat", struct bpf_stat);
	SIZE("bpf_version", struct bpf_version);
	SIZE("bpf_dltlist", struct bpf_dltlist);
	SIZE("bpf_zbuf", struct bpf_zbuf);
	SIZE("bpf_zbuf_header", struct bpf_zbuf_header);
	SIZE("bpf_hdr", struct bpf_hdr);
	SIZE("bpf_xhdr", struct bpf_xhdr);
	SIZE("bpf_ts", struct bpf_ts);

	OFFSET("bpf_program", struct bpf_program, bf_len);
	OFFSET("bpf_program", struct bpf_program, bf_insns);
	OFFSET("bpf_insn", struct bpf_insn, code);
	OFFSET("bpf_insn", struct bpf_insn, jt);
	OFFSET("bpf_insn", struct bpf_insn, jf);
	OFFSET("bpf_insn", struct bpf_insn, k);
	OFFSET("timeval", struct timeval, tv_sec);
	OFFSET("timeval", struct timeval, tv_usec);
	OFFSET("bpf_stat", struct bpf_stat, bs_recv);
	OFFSET("bpf_stat", struct bpf_stat, bs_drop);
	OFFSET("bpf_version", struct bpf_version, bv_major);
	OFFSET("bpf_version", struct bpf_version, bv_minor);
	OFFSET("bpf_dltlist", struct bpf_dltlist, bfl_len);
	OFFSET("bpf_dltlist", struct bpf_dltlist, bfl_list);
	OFFSET("bpf_zbuf", struct bpf_zbuf, bz_bufa);
	OFFSET("bpf_zbuf", struct bpf_zbuf, bz_bufb);
	OFFSET("bpf_zbuf", struct bpf_zbuf, bz_buflen);
	OFFSET("bpf_zbuf_header", struct bpf_zbuf_header, bzh_kernel_gen);
	OFFSET("bpf_zbuf_header", struct bpf_zbuf_header, bzh_kernel_len);
	OFFSET("bpf_zbuf_header", struct bpf_zbuf_header, bzh_user_gen);
	OFFSET("bpf_hdr", struct bpf_hdr, bh_tstamp);
	OFFSET("bpf_hdr", struct bpf_hdr, bh_caplen);
	OFFSET("bpf_hdr", struct bpf_hdr, bh_datalen);
	OFFSET("bpf_hdr", struct bpf_hdr, bh_hdrlen);
	OFFSET("bpf_xhdr", struct bpf_xhdr, bh_tstamp);
	OFFSET("bpf_xhdr", struct bpf_xhdr, bh_caplen);
	OFFSET("bpf_xhdr", struct bpf_xhdr, bh_datalen);
	OFFSET("bpf_xhdr", struct bpf_xhdr, bh_hdrlen);
	OFFSET("bpf_ts", struct bpf_ts, bt_sec);
	OFFSET("bpf_ts", struct bpf_ts, bt_frac);
	OFFSET("ifreq", struct ifreq, ifr_name);

	/* Every timestamp type BPF_T_VALID accepts in 0..0xfff. */
	for (unsigned int t = 0; t <= 0xfff; t++)
		if (BPF_T_VALID(t))
			printf("tstamp_valid.%u 1\n", t);

	/* The inline bintime conversions on a few exact fractions. */
	{
		static const struct { uint64_t frac; const char *name; } cases[] = {
			{ 0, "zero" },
			{ UINT64_C(1) << 63, "half" },
			{ UINT64_C(1) << 62, "quarter" },
			{ UINT64_MAX, "max" },
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct bintime bt = { 7, cases[i].frac };
			struct timeval tv;
			struct timespec ts;
			bintime2timeval(&bt, &tv);
			bintime2timespec(&bt, &ts);
			printf("bintime.%s.sec %lld\n", cases[i].name, (long long)tv.tv_sec);
			printf("bintime.%s.usec %ld\n", cases[i].name, (long)tv.tv_usec);
			printf("bintime.%s.nsec %ld\n", cases[i].name, (long)ts.tv_nsec);
		}
	}
	return 0;
}
