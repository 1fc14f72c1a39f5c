/*
 * relay FD_A FD_B: the floor of a hop through any user-space process. It
 * copies every message between two SOCK_SEQPACKET sockets, both ways, as
 * they come: one epoll_wait, then recv until EAGAIN and send each message
 * on. No stack, no parsing, no queue. The benchmark harness compiles it
 * (cc -O2) and puts it where an nfpipe router would be in a chain.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 3)
		return 2;
	int a = atoi(argv[1]), b = atoi(argv[2]);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.fd = a;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) < 0)
		return 1;
	ev.data.fd = b;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev) < 0)
		return 1;
	static char buf[1 << 17];
	for (;;) {
		struct epoll_event evs[2];
		int n = epoll_wait(ep, evs, 2, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int from = evs[i].data.fd, to = from == a ? b : a;
			for (;;) {
				ssize_t r = recv(from, buf, sizeof buf, MSG_DONTWAIT);
				if (r == 0)
					return 0; /* the peer closed */
				if (r < 0 && errno == EAGAIN)
					break; /* wait again */
				if (r < 0)
					return 1;
				if (send(to, buf, r, 0) < 0 && errno != EAGAIN)
					return 0;
			}
		}
	}
}
