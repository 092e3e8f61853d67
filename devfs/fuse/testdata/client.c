/* Test client for the devfs/fuse transport: each subcommand exercises one
 * behaviour through the real kernel and prints a line the Go test parses. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

struct pair { uint32_t a, b; };
#define T_IO    _IO('Q', 1)
#define T_IOR   _IOR('Q', 2, uint64_t)
#define T_IOW   _IOW('Q', 3, char[16])
#define T_IOWR  _IOWR('Q', 4, struct pair)

static void on_usr1(int s) { (void)s; }

static int open_or_die(const char *path, int flags) {
	int fd = open(path, flags);
	if (fd < 0) { printf("open errno=%d %s\n", errno, strerror(errno)); fflush(stdout); exit(2); }
	return fd;
}

static void say(const char *s) { printf("%s\n", s); fflush(stdout); }

static int do_read(int fd) {
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n < 0) { printf("read=-1 errno=%d\n", errno); fflush(stdout); return 1; }
	printf("read=%zd data=%.*s\n", n, (int)n, buf);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage: client CMD PATH [MODE]\n"); return 2; }
	const char *cmd = argv[1], *path = argv[2];
	if (!strcmp(cmd, "open")) {
		int fd = open(path, O_RDWR);
		printf("open=%d errno=%d\n", fd < 0 ? -1 : 0, fd < 0 ? errno : 0);
		return 0;
	}
	if (!strcmp(cmd, "ioctl")) {
		int fd = open_or_die(path, O_RDWR);
		int r = ioctl(fd, T_IO, 1234);
		printf("io=%d\n", r);
		uint64_t v = 0;
		r = ioctl(fd, T_IOR, &v);
		printf("ior=%d value=%llx\n", r, (unsigned long long)v);
		char in[16];
		for (int i = 0; i < 16; i++) in[i] = (char)(i + 1);
		r = ioctl(fd, T_IOW, in);
		printf("iow=%d\n", r);
		struct pair p = {1, 2};
		r = ioctl(fd, T_IOWR, &p);
		printf("iowr=%d a=%u b=%u\n", r, p.a, p.b);
		r = ioctl(fd, _IOR('Q', 99, int), &r);
		printf("unknown=%d errno=%d\n", r, errno);
		errno = 0;
		int tty = isatty(fd);
		printf("isatty=%d errno=%d\n", tty, errno);
		fflush(stdout);
		return 0;
	}
	if (!strcmp(cmd, "wait")) {
		const char *mode = argc > 3 ? argv[3] : "poll";
		int fd = open_or_die(path, O_RDWR);
		if (!strcmp(mode, "poll")) {
			struct pollfd p = {fd, POLLIN, 0};
			say("blocking");
			int r = poll(&p, 1, -1);
			printf("ready=%d revents=%x\n", r, p.revents);
			do_read(fd);
			p.revents = 0;
			r = poll(&p, 1, 200);
			printf("after-drain=%d\n", r);
		} else if (!strcmp(mode, "select")) {
			fd_set rs; FD_ZERO(&rs); FD_SET(fd, &rs);
			say("blocking");
			int r = select(fd + 1, &rs, NULL, NULL, NULL);
			printf("ready=%d isset=%d\n", r, FD_ISSET(fd, &rs));
			do_read(fd);
			struct timeval tv = {0, 200000};
			FD_ZERO(&rs); FD_SET(fd, &rs);
			r = select(fd + 1, &rs, NULL, NULL, &tv);
			printf("after-drain=%d\n", r);
		} else {
			int et = !strcmp(mode, "epoll-et");
			int ep = epoll_create1(0);
			struct epoll_event ev = {.events = EPOLLIN | (et ? EPOLLET : 0), .data.fd = fd};
			if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) { printf("epoll_ctl errno=%d\n", errno); return 1; }
			say("blocking");
			struct epoll_event out;
			int r = epoll_wait(ep, &out, 1, -1);
			printf("ready=%d events=%x\n", r, out.events);
			/* Before reading: level-triggered reports again, edge-triggered does not. */
			r = epoll_wait(ep, &out, 1, 200);
			printf("again=%d\n", r);
			do_read(fd);
			r = epoll_wait(ep, &out, 1, 200);
			printf("after-drain=%d\n", r);
		}
		return 0;
	}
	if (!strcmp(cmd, "readsig")) {
		struct sigaction sa; memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_usr1; sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR1, &sa, NULL);
		int fd = open_or_die(path, O_RDWR);
		say("blocking");
		return do_read(fd);
	}
	if (!strcmp(cmd, "read")) {
		int fd = open_or_die(path, O_RDWR);
		say("blocking");
		return do_read(fd);
	}
	if (!strcmp(cmd, "nonblock")) {
		int fd = open_or_die(path, O_RDWR);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		char b[16];
		ssize_t n = read(fd, b, sizeof b);
		printf("read=%zd errno=%d\n", n, n < 0 ? errno : 0);
		return 0;
	}
	fprintf(stderr, "unknown command %s\n", cmd);
	return 2;
}
