/* Fuzz target: xensimd's xenstore server (frontend-sim/xs-*.c) reading an
 * arbitrary byte stream from one client, in process: a fresh server per
 * input on its own loop and temporary DIR, a real connection to DIR/socket
 * (dom0) or to an introduced guest's socket, the input written then
 * half-closed, the loop run until the server hangs up. Every reply must be
 * a well-formed message no larger than the protocol allows. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

#include "log.h"
#include "xensimd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct fuzz_client {
	struct loop *loop;
	int fd;
	const uint8_t *data;
	size_t size, sent;
	uint8_t rx[sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX];
	size_t rx_len;
};

static char fuzz_dir[64];

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	log_init("fuzz-xs-wire", true, LOG_LEVEL_ERR);
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%.40s/fuzz-xs.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(fuzz_dir))
		abort();
	return 0;
}

/* Replies: whole messages, each header sane. */
static void fuzz_client_consume(struct fuzz_client *c)
{
	for (;;) {
		struct xsd_sockmsg hdr;

		if (c->rx_len < sizeof(hdr))
			return;
		memcpy(&hdr, c->rx, sizeof(hdr));
		fuzz_check(hdr.len <= XENSTORE_PAYLOAD_MAX);
		fuzz_check(hdr.type < XS_TYPE_COUNT || hdr.type == XS_ERROR ||
			   hdr.type == XS_WATCH_EVENT);
		if (c->rx_len < sizeof(hdr) + hdr.len)
			return;
		c->rx_len -= sizeof(hdr) + hdr.len;
		memmove(c->rx, c->rx + sizeof(hdr) + hdr.len, c->rx_len);
	}
}

static void fuzz_client_event(void *opaque, uint32_t events)
{
	struct fuzz_client *c = opaque;

	if (c->sent < c->size && (events & EPOLLOUT)) {
		ssize_t n = send(c->fd, c->data + c->sent, c->size - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			c->sent = c->size;	/* server hung up: stop writing */
		} else if (n > 0) {
			c->sent += (size_t)n;
		}
		if (c->sent == c->size) {
			shutdown(c->fd, SHUT_WR);
			loop_mod(c->loop, c->fd, EPOLLIN, fuzz_client_event, c);
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n = recv(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len,
					 MSG_DONTWAIT);

			if (n > 0) {
				c->rx_len += (size_t)n;
				fuzz_client_consume(c);
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			loop_quit(c->loop);	/* EOF or reset: the server is done */
			break;
		}
	}
}

static int fuzz_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		abort();
	if (strlen(path) >= sizeof(sa.sun_path))
		abort();
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_client c;
	struct loop *loop;
	char path[128];

	/* The first byte: odd = a guest's connection (domain 1..4). */
	if (size < 1 || size > 256 * 1024)
		return 0;
	if (loop_new(&loop) < 0 || xs_server_start(loop, fuzz_dir) < 0)
		abort();
	if (data[0] & 1) {
		unsigned int domid = 1 + (data[0] >> 1) % 4;

		fuzz_check(xs_server_domain_introduce(domid) == 0);
		snprintf(path, sizeof(path), "%s/domain/%u/socket", fuzz_dir, domid);
	} else {
		snprintf(path, sizeof(path), "%s/socket", fuzz_dir);
	}
	memset(&c, 0, offsetof(struct fuzz_client, rx));
	c.rx_len = 0;
	c.loop = loop;
	c.fd = fuzz_connect(path);
	c.data = data + 1;
	c.size = size - 1;
	if (c.size == 0)
		shutdown(c.fd, SHUT_WR);
	if (loop_add(loop, c.fd, c.size ? EPOLLIN | EPOLLOUT : EPOLLIN, fuzz_client_event, &c) < 0)
		abort();
	fuzz_check(loop_run(loop) == 0);
	loop_del(loop, c.fd);
	close(c.fd);
	xs_server_stop();
	loop_free(loop);
	return 0;
}
