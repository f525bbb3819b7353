/* A raw-socket xenstore client that sends what libxenstore never would:
 * unknown types, bad paths, payloads missing their NULs, truncated and
 * oversized messages, garbage, a client that never reads its events, one
 * that vanishes mid-transaction. After each, a fresh connection must still
 * be answered. Usage: xs-rawclient DIR (xensimd's --dir). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int checks;

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	checks++;
	va_start(ap, fmt);
	printf("%s %d - ", ok ? "ok" : "not ok", checks);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!ok)
		exit(1);
}

static int conn_open(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 3 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	check(fd >= 0, "socket");
	memcpy(sa.sun_path, sock_path, sizeof(sa.sun_path));
	check(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s", sock_path);
	/* A server that stops answering fails the test instead of hanging it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			check(false, "send (%s)", n < 0 ? strerror(errno) : "0");
		p += n;
		len -= n;
	}
}

static void send_msg(int fd, uint32_t type, uint32_t req_id, uint32_t tx_id,
		     const void *payload, size_t len)
{
	struct xsd_sockmsg hdr = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = len };
	char buf[sizeof(hdr) + 8192];

	memcpy(buf, &hdr, sizeof(hdr));
	memcpy(buf + sizeof(hdr), payload, len);
	send_all(fd, buf, sizeof(hdr) + len);
}

/* Reads n bytes; false on EOF, error or timeout. */
static bool recv_all(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = recv(fd, p, n, 0);

		if (r <= 0)
			return false;
		p += r;
		n -= r;
	}
	return true;
}

/* Next message that is not a watch event (unless want_events). */
static bool recv_msg(int fd, struct xsd_sockmsg *hdr, char *buf, size_t size, bool want_events)
{
	for (;;) {
		if (!recv_all(fd, hdr, sizeof(*hdr)) || hdr->len > size)
			return false;
		if (!recv_all(fd, buf, hdr->len))
			return false;
		if (want_events || hdr->type != XS_WATCH_EVENT)
			return true;
	}
}

/* Sends one request and checks the reply is XS_ERROR <name>. */
static void expect_error(int fd, uint32_t type, uint32_t tx_id, const void *payload,
			 size_t len, const char *name, const char *what)
{
	struct xsd_sockmsg hdr;
	char buf[8192];
	bool got;

	send_msg(fd, type, 0x5a5a, tx_id, payload, len);
	got = recv_msg(fd, &hdr, buf, sizeof(buf), false);
	check(got && hdr.type == XS_ERROR && hdr.req_id == 0x5a5a && hdr.tx_id == tx_id &&
	      hdr.len == strlen(name) + 1 && memcmp(buf, name, hdr.len) == 0,
	      "%s -> %s (got %s type %u %.*s)", what, name, got ? "reply" : "nothing",
	      got ? hdr.type : 0, got ? (int)hdr.len : 0, buf);
}

static void expect_reply(int fd, uint32_t type, uint32_t tx_id, const void *payload,
			 size_t len, const char *want, size_t wlen, const char *what)
{
	struct xsd_sockmsg hdr;
	char buf[8192];
	bool got;

	send_msg(fd, type, 0x77, tx_id, payload, len);
	got = recv_msg(fd, &hdr, buf, sizeof(buf), false);
	check(got && hdr.type == type && hdr.req_id == 0x77 && hdr.len == wlen &&
	      memcmp(buf, want, wlen) == 0, "%s (got type %u len %u)", what,
	      got ? hdr.type : 0, got ? hdr.len : 0);
}

#define S(lit) lit, sizeof(lit)		/* a string literal with its NUL */

static void expect_ok(int fd, uint32_t type, uint32_t tx_id, const void *payload,
		      size_t len, const char *what)
{
	expect_reply(fd, type, tx_id, payload, len, S("OK"), what);
}

/* The server still serves a brand-new client. */
static void alive(const char *after)
{
	int fd = conn_open();

	expect_reply(fd, XS_READ, 0, S("/local/domain/0/name"), "Domain-0", 8,
		     after);
	close(fd);
}

/* True if fd reaches EOF (or reset) within ms, draining what is queued. */
static bool reaches_eof(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[65536];

	for (;;) {
		ssize_t n;

		if (poll(&pfd, 1, ms) <= 0)
			return false;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return true;
	}
}

static uint32_t tx_start(int fd)
{
	struct xsd_sockmsg hdr;
	char buf[64];

	send_msg(fd, XS_TRANSACTION_START, 1, 0, S(""));
	check(recv_msg(fd, &hdr, buf, sizeof(buf) - 1, false) &&
	      hdr.type == XS_TRANSACTION_START, "transaction start");
	buf[hdr.len] = '\0';
	return strtoul(buf, NULL, 10);
}

static void test_types(void)
{
	static const uint32_t bad[] = { XS_WATCH_EVENT, XS_ERROR, 20, XS_TYPE_COUNT, 99,
					XS_INVALID, 0xffffffffu };
	int fd = conn_open();
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "type %u", bad[i]);
		expect_error(fd, bad[i], 0, S("/x"), "ENOSYS", what);
	}
	close(fd);
	alive("alive after unknown types");
}

static void test_paths(void)
{
	static const char *const bad[] = { "/a b", "/a//b", "/a/", "", "/a\x01", "/\xc3\xa9",
					   "rel/", "//", "/a/./b?" };
	char *longp = malloc(4200);
	int fd = conn_open();
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "READ bad path #%zu", i);
		expect_error(fd, XS_READ, 0, bad[i], strlen(bad[i]) + 1, "EINVAL", what);
		snprintf(what, sizeof(what), "WRITE bad path #%zu", i);
		expect_error(fd, XS_WRITE, 0, bad[i], strlen(bad[i]) + 1, "EINVAL", what);
	}
	expect_error(fd, XS_WATCH, 0, "/a//b\0tok", 10, "EINVAL", "WATCH on '//'");

	/* Length limits: absolute 3072, relative 2048. */
	longp[0] = '/';
	memset(longp + 1, 'x', 3071);
	longp[3072] = '\0';
	expect_ok(fd, XS_WRITE, 0, longp, 3073, "3072-byte absolute path accepted");
	expect_ok(fd, XS_RM, 0, longp, 3073, "and removed");
	memset(longp + 1, 'x', 3072);
	longp[3073] = '\0';
	expect_error(fd, XS_READ, 0, longp, 3074, "EINVAL", "3073-byte absolute path");
	memset(longp, 'y', 2049);
	longp[2049] = '\0';
	expect_error(fd, XS_READ, 0, longp, 2050, "EINVAL", "2049-byte relative path");
	longp[2048] = '\0';
	expect_error(fd, XS_READ, 0, longp, 2049, "ENOENT", "2048-byte relative path is valid");
	expect_error(fd, XS_RM, 0, S("/"), "EINVAL", "RM /");
	free(longp);
	close(fd);
	alive("alive after bad paths");
}

static void test_payloads(void)
{
	int fd = conn_open();
	uint32_t tx;

	expect_error(fd, XS_READ, 0, "/abc", 4, "EINVAL", "READ without NUL");
	expect_error(fd, XS_READ, 0, "", 0, "EINVAL", "READ with empty payload");
	expect_error(fd, XS_READ, 0, "/a\0/b", 6, "EINVAL", "READ with two strings");
	expect_error(fd, XS_WRITE, 0, "/abc", 4, "EINVAL", "WRITE without NUL");
	expect_error(fd, XS_WRITE, 0, "", 0, "EINVAL", "WRITE with empty payload");
	expect_error(fd, XS_MKDIR, 0, "/m", 2, "EINVAL", "MKDIR without NUL");
	expect_error(fd, XS_WATCH, 0, S("/x"), "EINVAL", "WATCH without token");
	expect_error(fd, XS_WATCH, 0, "/x\0tok", 6, "EINVAL", "WATCH token without NUL");
	expect_error(fd, XS_UNWATCH, 0, S("/x"), "EINVAL", "UNWATCH without token");
	expect_ok(fd, XS_WRITE, 0, "/p\0v", 4, "setup /p");
	expect_error(fd, XS_SET_PERMS, 0, S("/p"), "EINVAL", "SET_PERMS without perms");
	expect_error(fd, XS_SET_PERMS, 0, "/p\0q1", 6, "EINVAL", "SET_PERMS bad letter");
	expect_error(fd, XS_SET_PERMS, 0, "/p\0n0", 5, "EINVAL", "SET_PERMS without final NUL");
	expect_error(fd, XS_SET_PERMS, 0, "/p\0r\0", 5, "EINVAL", "SET_PERMS without domid");
	expect_error(fd, XS_SET_PERMS, 0, "/p\0r-1\0", 7, "EINVAL", "SET_PERMS negative domid");
	expect_error(fd, XS_SET_PERMS, 0, "/p\0r99999\0", 10, "EINVAL", "SET_PERMS huge domid");
	expect_ok(fd, XS_SET_PERMS, 0, "/p\0n0\0r5\0", 9, "SET_PERMS n0 r5");
	expect_reply(fd, XS_GET_PERMS, 0, S("/p"), "n0\0r5\0", 6, "GET_PERMS n0 r5");
	expect_error(fd, XS_GET_DOMAIN_PATH, 0, S("12x"), "EINVAL", "GET_DOMAIN_PATH 12x");
	expect_error(fd, XS_GET_DOMAIN_PATH, 0, S(""), "EINVAL", "GET_DOMAIN_PATH empty");
	expect_reply(fd, XS_GET_DOMAIN_PATH, 0, S("7"), S("/local/domain/7"), "GET_DOMAIN_PATH 7");
	expect_error(fd, XS_DIRECTORY_PART, 0, S("/"), "EINVAL", "DIRECTORY_PART without offset");
	expect_error(fd, XS_DIRECTORY_PART, 0, "/\0abc", 6, "EINVAL", "DIRECTORY_PART bad offset");
	expect_error(fd, XS_DIRECTORY_PART, 0, "/local\0" "1", 9, "EINVAL",
		     "DIRECTORY_PART offset inside a name");
	expect_error(fd, XS_INTRODUCE, 0, S("abc"), "EINVAL", "INTRODUCE garbage");
	expect_error(fd, XS_INTRODUCE, 0, "0\0" "0\0" "0", 6, "EINVAL", "INTRODUCE dom0");
	expect_error(fd, XS_RELEASE, 0, S("999"), "ENOENT", "RELEASE unknown domain");
	expect_error(fd, XS_RESUME, 0, S("999"), "ENOENT", "RESUME unknown domain");
	expect_error(fd, XS_CONTROL, 0, S("nonsense"), "EINVAL", "CONTROL unknown command");
	expect_ok(fd, XS_CONTROL, 0, "print\0hello from xs-rawclient", 30, "CONTROL print");
	expect_error(fd, XS_READ, 777, S("/p"), "ENOENT", "READ in unknown transaction");
	expect_error(fd, XS_TRANSACTION_END, 777, S("T"), "ENOENT", "END unknown transaction");
	expect_error(fd, XS_TRANSACTION_END, 0, S("T"), "ENOENT", "END without transaction");
	tx = tx_start(fd);
	check(tx != 0, "transaction id %u", tx);
	expect_error(fd, XS_TRANSACTION_START, tx, S(""), "EBUSY", "START inside a transaction");
	expect_error(fd, XS_TRANSACTION_END, tx, S("X"), "EINVAL", "END with X");
	expect_ok(fd, XS_TRANSACTION_END, tx, S("F"), "END F still works after a bad END");
	expect_ok(fd, XS_WRITE, 0, "/p\0v\0with\0nuls", 14, "WRITE value containing NULs");
	expect_reply(fd, XS_READ, 0, S("/p"), "v\0with\0nuls", 11, "READ gives it back raw");
	close(fd);
	alive("alive after malformed payloads");
}

static void test_framing(void)
{
	struct xsd_sockmsg hdr = { .type = XS_READ, .req_id = 9, .len = 21 };
	char msg[sizeof(hdr) + 21], buf[256];
	struct xsd_sockmsg r;
	int fd = conn_open();
	size_t i;

	memcpy(msg, &hdr, sizeof(hdr));
	memcpy(msg + sizeof(hdr), "/local/domain/0/name", 21);

	/* A header in two halves, with a pause: the server waits. */
	send_all(fd, msg, 8);
	usleep(300 * 1000);
	send_all(fd, msg + 8, sizeof(msg) - 8);
	check(recv_msg(fd, &r, buf, sizeof(buf), false) && r.type == XS_READ && r.req_id == 9 &&
	      r.len == 8 && !memcmp(buf, "Domain-0", 8), "split header answered");

	/* One byte at a time. */
	for (i = 0; i < sizeof(msg); i++)
		send_all(fd, msg + i, 1);
	check(recv_msg(fd, &r, buf, sizeof(buf), false) && r.req_id == 9 && r.len == 8,
	      "byte-by-byte message answered");

	/* Three requests in one write come back in order. */
	{
		char three[3 * sizeof(msg)];

		for (i = 0; i < 3; i++) {
			hdr.req_id = 100 + i;
			memcpy(msg, &hdr, sizeof(hdr));
			memcpy(three + i * sizeof(msg), msg, sizeof(msg));
		}
		send_all(fd, three, sizeof(three));
		for (i = 0; i < 3; i++)
			check(recv_msg(fd, &r, buf, sizeof(buf), false) && r.req_id == 100 + i,
			      "pipelined reply %zu in order", i);
	}
	close(fd);

	/* Closing mid-message just drops that connection. */
	fd = conn_open();
	hdr.len = 100;
	memcpy(msg, &hdr, sizeof(hdr));
	send_all(fd, msg, sizeof(hdr) + 10);
	close(fd);
	alive("alive after a client closed mid-message");
	fd = conn_open();
	send_all(fd, msg, 7);
	close(fd);
	alive("alive after a client closed mid-header");

	/* Oversized: an error, then the connection is dropped. */
	fd = conn_open();
	hdr.len = XENSTORE_PAYLOAD_MAX + 1;
	send_all(fd, &hdr, sizeof(hdr));
	check(recv_msg(fd, &r, buf, sizeof(buf), true) && r.type == XS_ERROR &&
	      !strcmp(buf, "E2BIG"), "oversized len gets E2BIG");
	check(reaches_eof(fd, 3000), "and the connection is dropped");
	close(fd);
	fd = conn_open();
	hdr.len = 0xffffffffu;
	send_all(fd, &hdr, sizeof(hdr));
	check(reaches_eof(fd, 3000), "len 0xffffffff: dropped");
	close(fd);
	alive("alive after oversized messages");

	/* The largest legal payload is fine. */
	fd = conn_open();
	{
		static char big[XENSTORE_PAYLOAD_MAX];

		memcpy(big, "/bigval", 8);
		memset(big + 8, 'z', sizeof(big) - 8);
		expect_ok(fd, XS_WRITE, 0, big, sizeof(big), "4096-byte payload accepted");
	}
	close(fd);
}

static void test_garbage(void)
{
	static char junk[65536];
	struct xsd_sockmsg r;
	char buf[8192];
	unsigned int seed = 12345, i, replies = 0, last = 0;
	bool in_order = true;
	int fd;

	/* Pure noise: whatever the server makes of it, it must survive. */
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = rand_r(&seed);
	fd = conn_open();
	send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
	reaches_eof(fd, 1000);
	close(fd);
	alive("alive after 64 KiB of noise");

	/* Well-framed noise: every message gets exactly one reply, in order,
	 * and the connection stays up. */
	fd = conn_open();
	for (i = 1; i <= 2000; i++) {
		uint32_t type = rand_r(&seed) % 32;
		size_t len = rand_r(&seed) % 64, k;
		char payload[64];

		/* Not these: they would change the daemon's domains. */
		if (type == XS_INTRODUCE || type == XS_RELEASE)
			type = XS_READ;
		for (k = 0; k < len; k++)
			payload[k] = rand_r(&seed) % 4 ? 'a' + rand_r(&seed) % 26 :
				     rand_r(&seed) % 3 ? '/' : '\0';
		send_msg(fd, type, i, 0, payload, len);
		while (replies < i && recv_msg(fd, &r, buf, sizeof(buf), false)) {
			replies++;
			if (r.req_id != last + 1)
				in_order = false;
			last = r.req_id;
		}
	}
	check(replies == 2000 && in_order, "2000 random well-framed requests: %u replies in order",
	      replies);
	close(fd);
	alive("alive after framed noise");
}

static void test_slow_reader(void)
{
	char name[300], buf[512];
	struct xsd_sockmsg r;
	int flood, gen, i;

	flood = conn_open();
	send_msg(flood, XS_WATCH, 1, 0, "/flood\0t", 9);
	check(recv_msg(flood, &r, buf, sizeof(buf), false) && r.type == XS_WATCH,
	      "flood watch set");
	check(recv_msg(flood, &r, buf, sizeof(buf), true) && r.type == XS_WATCH_EVENT,
	      "initial event read; from now on the client reads nothing");

	/* ~230-byte events; 5000 of them overrun queue and socket buffers. */
	snprintf(name, sizeof(name), "/flood/%0200d", 0);
	gen = conn_open();
	for (i = 0; i < 5000; i++) {
		size_t len = strlen(name) + 1;
		char msg[400];

		memcpy(msg, name, len);
		msg[len] = 'v';
		send_msg(gen, XS_WRITE, i, 0, msg, len + 1);
		if (!recv_msg(gen, &r, buf, sizeof(buf), false) || r.type != XS_WRITE)
			break;
	}
	check(i == 5000, "writer kept being answered (%d)", i);
	check(reaches_eof(flood, 5000), "the client that never reads was dropped");
	close(flood);
	close(gen);
	alive("alive after dropping a slow reader");
}

static void test_mid_transaction(void)
{
	int fd = conn_open();
	uint32_t tx = tx_start(fd);

	expect_ok(fd, XS_WRITE, tx, "/midtx/x\0" "1", 10, "write inside a transaction");
	close(fd);
	fd = conn_open();
	expect_error(fd, XS_READ, 0, S("/midtx/x"), "ENOENT", "vanished client's transaction discarded");
	close(fd);
}

static void test_reset_watches(void)
{
	struct xsd_sockmsg r;
	struct pollfd pfd;
	char buf[256];
	int fd = conn_open(), other = conn_open();
	uint32_t tx;

	send_msg(fd, XS_WATCH, 1, 0, "/rw\0tok", 8);
	check(recv_msg(fd, &r, buf, sizeof(buf), false) && r.type == XS_WATCH, "watch /rw");
	check(recv_msg(fd, &r, buf, sizeof(buf), true) && r.type == XS_WATCH_EVENT,
	      "initial event");
	tx = tx_start(fd);
	expect_ok(fd, XS_RESET_WATCHES, 0, S(""), "RESET_WATCHES");
	expect_ok(other, XS_WRITE, 0, "/rw/x\0" "1", 7, "write below the old watch");
	pfd.fd = fd;
	pfd.events = POLLIN;
	check(poll(&pfd, 1, 300) == 0, "no event after RESET_WATCHES");
	expect_error(fd, XS_READ, tx, S("/rw/x"), "ENOENT", "its transaction is gone too");
	close(fd);
	close(other);
}

static void test_many_connections(void)
{
	int fds[200], i;

	for (i = 0; i < 200; i++)
		fds[i] = conn_open();
	for (i = 0; i < 200; i++)
		close(fds[i]);
	alive("alive after 200 connections came and went");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: xs-rawclient DIR\n");
		return 2;
	}
	if ((size_t)snprintf(sock_path, sizeof(sock_path), "%s/socket", argv[1]) >=
	    sizeof(sock_path)) {
		fprintf(stderr, "xs-rawclient: %s: path too long for a socket\n", argv[1]);
		return 2;
	}
	alive("server answers");
	test_types();
	test_paths();
	test_payloads();
	test_framing();
	test_garbage();
	test_slow_reader();
	test_mid_transaction();
	test_reset_watches();
	test_many_connections();
	alive("server still answers at the end");
	return 0;
}
