/*
 * pcapdrop: opens a capture with a tiny buffer, stops reading until told
 * to go on, then drains what is left and prints what pcap_stats() says.
 * Traffic sent while it is not reading overflows the buffer, so the device
 * must count drops.
 *
 * usage: pcapdrop IFACE BUFSIZE FILTER
 * Prints "ready", waits for a line on stdin, reads until two ticks of a
 * 300 ms timer pass without a packet, then prints
 * "captured=N recv=N drop=N".
 *
 * The timer is there because in zero-copy mode libpcap 1.10's
 * pcap_dispatch() does not return when the read timeout expires (it only
 * rotates the buffers and waits again); pcap_breakloop() from the signal
 * handler ends the wait in both modes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <pcap.h>

static pcap_t *p;

static void
tick(int sig)
{
	(void)sig;
	pcap_breakloop(p);
}

static void
count(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	(void)h;
	(void)bytes;
	(*(long *)user)++;
}

int
main(int argc, char **argv)
{
	char errbuf[PCAP_ERRBUF_SIZE], line[64];
	struct bpf_program prog;
	struct pcap_stat st;
	struct itimerval every = { { 0, 300000 }, { 0, 300000 } };
	struct sigaction sa;
	long captured = 0;
	int idle = 0, status;

	if (argc != 4 || atoi(argv[2]) <= 0) {
		fprintf(stderr, "usage: pcapdrop IFACE BUFSIZE FILTER\n");
		return 2;
	}
	p = pcap_create(argv[1], errbuf);
	if (p == NULL) {
		fprintf(stderr, "pcap_create: %s\n", errbuf);
		return 2;
	}
	pcap_set_snaplen(p, 65535);
	pcap_set_buffer_size(p, atoi(argv[2]));
	pcap_set_timeout(p, 200);
	status = pcap_activate(p);
	if (status < 0) {
		fprintf(stderr, "pcap_activate: %s: %s\n", pcap_statustostr(status), pcap_geterr(p));
		return 2;
	}
	if (pcap_compile(p, &prog, argv[3], 1, PCAP_NETMASK_UNKNOWN) < 0 || pcap_setfilter(p, &prog) < 0) {
		fprintf(stderr, "filter: %s\n", pcap_geterr(p));
		return 2;
	}
	pcap_freecode(&prog);
	printf("ready\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tick;	/* no SA_RESTART: the wait must be interrupted */
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
	while (idle < 2) {
		long before = captured;
		int n = pcap_dispatch(p, -1, count, (u_char *)&captured);

		if (n < 0 && n != PCAP_ERROR_BREAK) {
			fprintf(stderr, "pcap_dispatch: %s\n", pcap_geterr(p));
			return 2;
		}
		idle = captured == before ? idle + 1 : 0;
	}
	setitimer(ITIMER_REAL, &(struct itimerval){ { 0, 0 }, { 0, 0 } }, NULL);
	if (pcap_stats(p, &st) < 0) {
		fprintf(stderr, "pcap_stats: %s\n", pcap_geterr(p));
		return 2;
	}
	printf("captured=%ld recv=%u drop=%u\n", captured, st.ps_recv, st.ps_drop);
	pcap_close(p);
	return 0;
}
