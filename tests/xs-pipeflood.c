/* A guest that floods xenstore as fast as the wire allows: writes and
 * removes of distinct child nodes under one node, many requests in flight
 * at once (libxenstore waits for each reply, so it cannot do this). Every
 * write fires the watches on that node and its ancestors, such as a
 * backend's watch on the frontend's state node.
 * Usage: xs-pipeflood SOCKET NODE SECONDS; prints how many requests the
 * server answered; exits non-zero when the server drops us. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

#define FLOOD_IN_FLIGHT	256	/* requests sent before their replies */
#define FLOOD_NAMES	256	/* distinct children, under the node quota */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends one request to buf; returns its length. */
static size_t put_request(char *buf, uint32_t type, uint32_t req_id, const char *path,
			  const char *val)
{
	struct xsd_sockmsg hdr = { .type = type, .req_id = req_id };
	size_t plen = strlen(path) + 1, vlen = val ? strlen(val) : 0;

	hdr.len = (uint32_t)(plen + vlen);
	memcpy(buf, &hdr, sizeof(hdr));
	memcpy(buf + sizeof(hdr), path, plen);
	if (vlen)
		memcpy(buf + sizeof(hdr) + plen, val, vlen);
	return sizeof(hdr) + hdr.len;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char out[FLOOD_IN_FLIGHT * 1200], in[65536], path[1100];
	unsigned long long sent = 0, answered = 0, errors = 0;
	size_t in_len = 0;
	double deadline;
	int fd;

	if (argc != 4 || strlen(argv[1]) >= sizeof(sa.sun_path) || strlen(argv[2]) > 1000) {
		fprintf(stderr, "usage: xs-pipeflood SOCKET NODE SECONDS\n");
		return 2;
	}
	deadline = now_s() + atof(argv[3]);
	memcpy(sa.sun_path, argv[1], strlen(argv[1]));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "xs-pipeflood: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while (now_s() < deadline || answered < sent) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		size_t olen = 0;

		/* Top the window up: a write of a new child, then its removal
		 * half a round later, so the node count stays bounded. */
		while (now_s() < deadline && sent - answered < FLOOD_IN_FLIGHT &&
		       olen + 1200 < sizeof(out)) {
			unsigned int name = (unsigned int)(sent / 2 % FLOOD_NAMES);

			snprintf(path, sizeof(path), "%s/f%u", argv[2], name);
			olen += put_request(out + olen, sent & 1 ? XS_RM : XS_WRITE,
					    (uint32_t)sent, path, sent & 1 ? NULL : "x");
			sent++;
		}
		if (olen && send(fd, out, olen, MSG_NOSIGNAL) != (ssize_t)olen) {
			fprintf(stderr, "xs-pipeflood: send: %s\n", strerror(errno));
			return 1;
		}
		if (poll(&pfd, 1, 3000) != 1) {
			fprintf(stderr, "xs-pipeflood: no reply for 3 s\n");
			return 1;
		}
		ssize_t n = recv(fd, in + in_len, sizeof(in) - in_len, 0);

		if (n <= 0) {
			fprintf(stderr, "xs-pipeflood: the server dropped us\n");
			return 1;
		}
		in_len += (size_t)n;
		for (;;) {
			struct xsd_sockmsg hdr;

			if (in_len < sizeof(hdr))
				break;
			memcpy(&hdr, in, sizeof(hdr));
			if (hdr.len > XENSTORE_PAYLOAD_MAX) {
				fprintf(stderr, "xs-pipeflood: bad reply length %u\n", hdr.len);
				return 1;
			}
			if (in_len < sizeof(hdr) + hdr.len)
				break;
			if (hdr.type == XS_ERROR)
				errors++;
			if (hdr.type != XS_WATCH_EVENT)
				answered++;
			in_len -= sizeof(hdr) + hdr.len;
			memmove(in, in + sizeof(hdr) + hdr.len, in_len);
		}
	}
	printf("xs-pipeflood: %llu requests answered (%llu errors)\n", answered, errors);
	close(fd);
	return 0;
}
