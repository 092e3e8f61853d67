/*
 * libpcap's <pcap/pcap.h> first, then <net/bpf.h>.  The first part stands
 * in for libpcap's <pcap/bpf.h> and <pcap/dlt.h>: their guards and their
 * own spelling of the definitions both headers share.  <net/bpf.h> must
 * skip what is already there, so nothing is defined twice, and still make
 * records long-aligned.  Exits 0 when that holds.
 */
#define _DEFAULT_SOURCE
#include <sys/types.h>

#define lib_pcap_dlt_h
#define DLT_EN10MB	1	/* Ethernet */
#define DLT_MATCHING_MAX	292

#define lib_pcap_bpf_h
#define BPF_RELEASE 199606
typedef	int bpf_int32;
typedef	u_int bpf_u_int32;
#define BPF_ALIGNMENT sizeof(bpf_int32)
#define BPF_WORDALIGN(x) (((x)+(BPF_ALIGNMENT-1))&~(BPF_ALIGNMENT-1))
struct bpf_program {
	u_int bf_len;
	struct bpf_insn *bf_insns;
};
struct bpf_insn {
	u_short	code;
	u_char	jt;
	u_char	jf;
	bpf_u_int32 k;
};
#define		BPF_RET		0x06
#define		BPF_K		0x00
#define BPF_STMT(code, k) { (u_short)(code), 0, 0, k }

#include <net/bpf.h>

int
main(void)
{
	static struct bpf_insn accept[] = { BPF_STMT(BPF_RET | BPF_K, 96) };
	struct bpf_program prog;

	prog.bf_len = 1;
	prog.bf_insns = accept;
	return BPF_WORDALIGN(1) != 8 || BPF_WORDALIGN(26) != 32 || prog.bf_insns[0].k != 96 ||
	    DLT_EN10MB != 1 || BIOCSETIF != 0x4028426cu || sizeof(struct bpf_hdr) != 32;
}
