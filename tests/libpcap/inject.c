/*
 * inject: sends one ICMP echo request with pcap_inject() and waits for the
 * echo reply, both through libpcap.  Built against the libpcap.a of
 * run.sh, so on bpffs the request leaves through the daemon's emulated
 * interface (a write(2) on the BPF device) and the reply is captured from
 * it.
 *
 * usage: inject IFACE SRC_MAC DST_MAC SRC_IP DST_IP
 * Prints "injected N" and then "reply ID SEQ" and exits 0, or exits 1 when
 * no reply came within a few seconds.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pcap.h>

#define ETHER_LEN 14
#define IP_LEN 20
#define ICMP_LEN 8
static const char payload[] = "bpffs-inject-echo";

static int
parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -1;
	for (i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			return -1;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

static uint16_t
checksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len == 1)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

/* echo_request lays out Ethernet, IPv4 and ICMP in frame; returns its length. */
static size_t
echo_request(uint8_t *frame, const uint8_t src_mac[6], const uint8_t dst_mac[6],
    struct in_addr src, struct in_addr dst, uint16_t id, uint16_t seq)
{
	uint8_t *ip = frame + ETHER_LEN, *icmp = ip + IP_LEN;
	size_t icmp_len = ICMP_LEN + sizeof(payload);

	memcpy(frame, dst_mac, 6);
	memcpy(frame + 6, src_mac, 6);
	put16(frame + 12, 0x0800);

	memset(ip, 0, IP_LEN);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(IP_LEN + icmp_len));
	put16(ip + 4, id);
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	put16(ip + 10, checksum(ip, IP_LEN));

	memset(icmp, 0, ICMP_LEN);
	icmp[0] = 8;
	put16(icmp + 4, id);
	put16(icmp + 6, seq);
	memcpy(icmp + ICMP_LEN, payload, sizeof(payload));
	put16(icmp + 2, checksum(icmp, icmp_len));
	return ETHER_LEN + IP_LEN + icmp_len;
}

int
main(int argc, char **argv)
{
	char errbuf[PCAP_ERRBUF_SIZE], filter[128];
	uint8_t src_mac[6], dst_mac[6], frame[128];
	struct in_addr src, dst;
	struct bpf_program prog;
	uint16_t id = (uint16_t)getpid(), seq;
	pcap_t *p;
	int status;

	if (argc != 6 || parse_mac(argv[2], src_mac) < 0 || parse_mac(argv[3], dst_mac) < 0 ||
	    inet_pton(AF_INET, argv[4], &src) != 1 || inet_pton(AF_INET, argv[5], &dst) != 1) {
		fprintf(stderr, "usage: inject IFACE SRC_MAC DST_MAC SRC_IP DST_IP\n");
		return 2;
	}
	p = pcap_create(argv[1], errbuf);
	if (p == NULL) {
		fprintf(stderr, "pcap_create: %s\n", errbuf);
		return 2;
	}
	pcap_set_snaplen(p, 65535);
	pcap_set_immediate_mode(p, 1);
	pcap_set_timeout(p, 100);
	status = pcap_activate(p);
	if (status < 0) {
		fprintf(stderr, "pcap_activate: %s: %s\n", pcap_statustostr(status), pcap_geterr(p));
		return 2;
	}
	snprintf(filter, sizeof(filter),
	    "icmp[icmptype] == icmp-echoreply and src host %s and dst host %s", argv[5], argv[4]);
	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0 || pcap_setfilter(p, &prog) < 0) {
		fprintf(stderr, "filter: %s\n", pcap_geterr(p));
		return 2;
	}
	pcap_freecode(&prog);

	/* One request a second, for at most five: the first normally suffices. */
	for (seq = 1; seq <= 5; seq++) {
		size_t len = echo_request(frame, src_mac, dst_mac, src, dst, id, seq);
		time_t until = time(NULL) + 1;
		int n = pcap_inject(p, frame, len);

		if (n < 0) {
			fprintf(stderr, "pcap_inject: %s\n", pcap_geterr(p));
			return 2;
		}
		printf("injected %d\n", n);
		fflush(stdout);
		while (time(NULL) <= until) {
			struct pcap_pkthdr *h;
			const u_char *pkt;
			const uint8_t *icmp;

			status = pcap_next_ex(p, &h, &pkt);
			if (status < 0) {
				fprintf(stderr, "pcap_next_ex: %s\n", pcap_geterr(p));
				return 2;
			}
			if (status == 0 || h->caplen < ETHER_LEN + IP_LEN + ICMP_LEN)
				continue;
			icmp = pkt + ETHER_LEN + (pkt[ETHER_LEN] & 0x0f) * 4;
			if (icmp + ICMP_LEN > pkt + h->caplen)
				continue;
			if ((icmp[4] << 8 | icmp[5]) == id) {
				printf("reply %u %u\n", icmp[4] << 8 | icmp[5], icmp[6] << 8 | icmp[7]);
				pcap_close(p);
				return 0;
			}
		}
	}
	printf("no reply\n");
	pcap_close(p);
	return 1;
}
