/*
 * pktgen: sends UDP/IPv4 frames out of an interface with AF_PACKET and
 * sendmmsg, as fast as asked. Run it inside the test's network namespace on
 * the Linux side of a tap: what Linux transmits there arrives at bpffs.
 *
 *   pktgen -i IF -n COUNT [-s FRAMELEN] [-r PPS] [-b BATCH] [-p PORTS] [-d DSTMAC]
 *
 * Frame k carries the sequence number k (big-endian, first 4 payload bytes)
 * and goes to UDP port 9 + k % PORTS, so filters can select a known share.
 * IPv4 and UDP checksums are correct, so a reader can verify every capture.
 * Prints: sent=N elapsed=SECONDS pps=RATE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t csum_add(uint32_t sum, const uint8_t *p, size_t len) {
	for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
	if (len & 1) sum += p[len - 1] << 8;
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Builds frame k in f (flen bytes). */
static void build(uint8_t *f, int flen, const uint8_t dst[6], const uint8_t src[6], uint32_t k, int ports) {
	memset(f, 0, flen);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	uint8_t *ip = f + 14, *udp = ip + 20, *pl = udp + 8;
	int iplen = flen - 14, udplen = iplen - 20;
	ip[0] = 0x45; ip[2] = iplen >> 8; ip[3] = iplen & 0xff; ip[8] = 64; ip[9] = 17;
	ip[12] = 198; ip[13] = 18; ip[14] = 0; ip[15] = 1;
	ip[16] = 198; ip[17] = 18; ip[18] = 0; ip[19] = 2;
	uint16_t c = ~csum_add(0, ip, 20);
	ip[10] = c >> 8; ip[11] = c & 0xff;
	uint16_t dport = 9 + k % ports;
	udp[0] = 0xc0; udp[1] = 0x00; udp[2] = dport >> 8; udp[3] = dport & 0xff;
	udp[4] = udplen >> 8; udp[5] = udplen & 0xff;
	pl[0] = k >> 24; pl[1] = k >> 16; pl[2] = k >> 8; pl[3] = k;
	for (int i = 4; i < udplen - 8; i++) pl[i] = (uint8_t)(k + i);
	/* UDP checksum over the pseudo-header and the datagram. */
	uint8_t pseudo[12] = {198, 18, 0, 1, 198, 18, 0, 2, 0, 17, udplen >> 8, udplen & 0xff};
	uint32_t sum = csum_add(0, pseudo, 12);
	c = ~csum_add(sum, udp, udplen);
	if (c == 0) c = 0xffff;
	udp[6] = c >> 8; udp[7] = c & 0xff;
}

int main(int argc, char **argv) {
	const char *ifname = NULL, *dstmac = "02:62:70:66:00:00";
	long count = 1000, flen = 64, batch = 64, ports = 1;
	double pps = 0;
	int opt;
	while ((opt = getopt(argc, argv, "i:n:s:r:b:p:d:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'n': count = atol(optarg); break;
		case 's': flen = atol(optarg); break;
		case 'r': pps = atof(optarg); break;
		case 'b': batch = atol(optarg); break;
		case 'p': ports = atol(optarg); break;
		case 'd': dstmac = optarg; break;
		default: return 2;
		}
	}
	if (!ifname || flen < 60 || flen > 1514 || batch < 1 || batch > 1024 || ports < 1) {
		fprintf(stderr, "usage: pktgen -i IF -n COUNT [-s 60..1514] [-r PPS] [-b 1..1024] [-p PORTS] [-d MAC]\n");
		return 2;
	}
	uint8_t dst[6], src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
	if (sscanf(dstmac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &dst[0], &dst[1], &dst[2], &dst[3], &dst[4], &dst[5]) != 6) return 2;
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) { perror("socket"); return 1; }
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(ifname), .sll_halen = 6};
	if (!sll.sll_ifindex) { perror(ifname); return 1; }
	memcpy(sll.sll_addr, dst, 6);
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); return 1; }
	int sndbuf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

	uint8_t *frames = malloc(batch * flen);
	struct mmsghdr *msgs = calloc(batch, sizeof *msgs);
	struct iovec *iov = calloc(batch, sizeof *iov);
	long sent = 0;
	double start = now();
	while (sent < count) {
		int n = count - sent < batch ? (int)(count - sent) : (int)batch;
		for (int i = 0; i < n; i++) {
			build(frames + i * flen, flen, dst, src, (uint32_t)(sent + i), ports);
			iov[i] = (struct iovec){frames + i * flen, flen};
			msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
		}
		int done = 0;
		while (done < n) {
			int r = sendmmsg(fd, msgs + done, n - done, 0);
			if (r < 0) {
				if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) { usleep(50); continue; }
				perror("sendmmsg");
				return 1;
			}
			done += r;
		}
		sent += n;
		if (pps > 0) {
			double due = start + sent / pps;
			while (now() < due) {
				double left = due - now();
				if (left > 0.0002) usleep((useconds_t)(left * 1e6 / 2));
			}
		}
	}
	double el = now() - start;
	printf("sent=%ld elapsed=%.6f pps=%.0f\n", sent, el, sent / el);
	return 0;
}
