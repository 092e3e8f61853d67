/*
 * The headers libpcap's pcap-bpf.c includes, in its order, followed by
 * what it uses from <net/bpf.h> when BIOCSTSTAMP and zero-copy exist.
 */
#include <sys/types.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <net/bpf.h>

#include <string.h>

/* libpcap's own <pcap/bpf.h> and <pcap/dlt.h> must now stay out of the way. */
#ifndef _NET_BPF_H_
#error "_NET_BPF_H_ not defined"
#endif
#ifndef lib_pcap_dlt_h
#error "lib_pcap_dlt_h not defined: <pcap/dlt.h> would redefine the DLT_ values"
#endif
#if BPF_RELEASE - 0 < 199406
#error "BPF_RELEASE too old: <pcap/pcap.h> would typedef bpf_int32 again"
#endif
#if !defined(BIOCROTZBUF) || !defined(BPF_BUFMODE_ZBUF) || !defined(BIOCSTSTAMP) || !defined(BIOCGDLTLIST)
#error "a feature test of pcap-bpf.c would fail"
#endif

static unsigned int
walk(const unsigned char *buf, unsigned int len, int xhdr)
{
	const unsigned char *bp = buf, *ep = buf + len;
	unsigned int n = 0;

	while (bp < ep) {
		unsigned int caplen, hdrlen;
		struct timeval tv;

		if (xhdr) {
			const struct bpf_xhdr *h = (const struct bpf_xhdr *)(const void *)bp;
			struct bintime bt;
			struct timespec ts;

			bt.sec = h->bh_tstamp.bt_sec;
			bt.frac = h->bh_tstamp.bt_frac;
			bintime2timespec(&bt, &ts);
			bintime2timeval(&bt, &tv);
			caplen = h->bh_caplen;
			hdrlen = h->bh_hdrlen;
		} else {
			const struct bpf_hdr *h = (const struct bpf_hdr *)(const void *)bp;

			tv = h->bh_tstamp;
			caplen = h->bh_caplen;
			hdrlen = h->bh_hdrlen;
		}
		(void)tv;
		bp += BPF_WORDALIGN(caplen + hdrlen);
		n++;
	}
	return n;
}

int
main(void)
{
	struct ifreq ifr;
	struct bpf_version bv;
	struct bpf_dltlist bdl;
	struct bpf_zbuf bz;
	struct bpf_zbuf_header *zh = 0;
	struct bpf_insn total_insn;
	struct bpf_program total_prog;
	struct bpf_stat st;
	bpf_u_int32 dlts[4] = { DLT_EN10MB, DLT_DOCSIS, DLT_IEEE802_11_RADIO, DLT_PRISM_HEADER };
	unsigned int v = BPF_T_BINTIME;
	unsigned long requests[] = {
		BIOCSETIF, BIOCGDLTLIST, BIOCSETBUFMODE, BIOCGETZMAX, BIOCSETZBUF,
		BIOCROTZBUF, BIOCSTSTAMP, BIOCSHDRCMPLT, BIOCGHDRCMPLT, BIOCSRTIMEOUT,
		BIOCIMMEDIATE, BIOCPROMISC, BIOCGBLEN, BIOCSBLEN, BIOCSETF, BIOCGDLT,
		BIOCSDLT, BIOCGSTATS, BIOCVERSION, BIOCSDIRECTION, BIOCSSEESENT,
	};
	unsigned char buf[64];

	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, "tap0", sizeof ifr.ifr_name - 1);
	bv.bv_major = BPF_MAJOR_VERSION;
	bv.bv_minor = BPF_MINOR_VERSION;
	bdl.bfl_len = 4;
	bdl.bfl_list = dlts;
	bz.bz_bufa = bz.bz_bufb = 0;
	bz.bz_buflen = 0;
	total_insn.code = (u_short)(BPF_RET | BPF_K);
	total_insn.jt = total_insn.jf = 0;
	total_insn.k = 262144;
	total_prog.bf_len = 1;
	total_prog.bf_insns = &total_insn;
	st.bs_recv = st.bs_drop = 0;
	memset(buf, 0, sizeof buf);
	(void)zh;
	(void)v;
	(void)requests;
	return (int)(walk(buf, 0, 1) + walk(buf, 0, 0) + st.bs_recv + (bv.bv_major != 1) +
	    (bdl.bfl_list[0] != DLT_EN10MB) + (bz.bz_buflen != 0) + (total_prog.bf_len != 1) +
	    (ifr.ifr_name[0] != 't'));
}
