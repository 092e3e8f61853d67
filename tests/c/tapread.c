/*
 * tapread: the ceiling of the capture benchmark. It attaches to an existing
 * persistent tap by name (run it inside the tap's network namespace) and
 * reads frames with one blocking read(2) each, counting them and nothing
 * else: no bpffs, no filter, no copy beyond the one the read makes.
 *
 *   tapread IFNAME
 *
 * Prints "ready" once attached. SIGUSR1 prints the running totals and
 * carries on; SIGINT or SIGTERM prints them and exits. Totals:
 *   tapread packets=N bytes=B
 * The signal handlers are installed without SA_RESTART so that a blocked
 * read returns EINTR and the totals are printed from the main loop, not
 * from the handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static volatile sig_atomic_t report_asked, stop_asked;

static void on_report(int sig) { (void)sig; report_asked = 1; }
static void on_stop(int sig) { (void)sig; stop_asked = 1; }

static void report(long long packets, long long bytes) {
	printf("tapread packets=%lld bytes=%lld\n", packets, bytes);
	fflush(stdout);
}

int main(int argc, char **argv) {
	if (argc != 2 || strlen(argv[1]) >= IFNAMSIZ) {
		fprintf(stderr, "usage: tapread IFNAME (inside the tap's network namespace)\n");
		return 2;
	}
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) { perror("open /dev/net/tun"); return 1; }
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); return 1; }

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_report;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("ready\n");
	fflush(stdout);

	static char frame[65536 + 64];
	long long packets = 0, bytes = 0;
	while (!stop_asked) {
		ssize_t n = read(fd, frame, sizeof frame);
		if (n > 0) {
			packets++;
			bytes += n;
		} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
			perror("read");
			break;
		}
		if (report_asked) {
			report_asked = 0;
			report(packets, bytes);
		}
	}
	report(packets, bytes);
	return 0;
}
