/* The xenstore server's sockets: DIR/socket for dom0 (privileged) and
 * DIR/domain/<id>/socket per introduced domain (acting as that domain).
 * Non-blocking connections on xensimd's loop read whole messages for
 * xs-wire.c and queue replies and events in a bounded queue; a connection
 * breaking the protocol or overflowing it is dropped (freed later). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#include "log.h"
#include "xensimd.h"

struct xs_buf {
	struct xs_buf *next;
	size_t len, off;
	uint8_t data[];
};

/* A listening socket: dom0's or one introduced domain's. */
struct xs_domain {
	uint32_t domid;
	bool privileged;
	int fd;
	char *sock_path;
	char *dir_path;			/* DIR/domain/<id>, NULL for dom0 */
	struct xs_domain *next;
};

static struct {
	struct loop *loop;
	char *dir;
	struct xs_tree *tree;
	struct xs_domain *dom0;
	struct xs_domain *domains;
	struct xs_conn *conns;
	struct xs_perms special_introduce, special_release;
	int busy;			/* nesting depth of our callbacks */
} xs;

struct xs_tree *xs_server_tree(void)
{
	return xs.tree;
}

struct xs_perms *xs_server_special_perms(const char *name)
{
	if (strcmp(name, "@introduceDomain") == 0)
		return &xs.special_introduce;
	if (strcmp(name, "@releaseDomain") == 0)
		return &xs.special_release;
	return NULL;
}

void xs_conn_reset(struct xs_conn *conn)
{
	while (conn->watches) {
		struct xs_watch *w = conn->watches;

		conn->watches = w->next;
		xs_watch_free(w);
	}
	/* A transaction of a vanished or reset client is simply discarded. */
	while (conn->txs) {
		struct xs_tx *tx = conn->txs;

		conn->txs = tx->next;
		xs_tx_free(tx);
	}
}

static void xs_conn_out_free(struct xs_conn *conn)
{
	while (conn->out_head) {
		struct xs_buf *b = conn->out_head;

		conn->out_head = b->next;
		free(b);
	}
	conn->out_tail = NULL;
	conn->out_bytes = 0;
}

/* Closes the socket now; watches, transactions and the struct go at the
 * next reap, since a caller up the stack may still be walking them. */
static void xs_conn_kill(struct xs_conn *conn, const char *why)
{
	if (conn->dead)
		return;
	log_info("xenstore: dropping d%u connection: %s", conn->caller.domid, why);
	conn->dead = true;
	loop_del(xs.loop, conn->fd);
	close(conn->fd);
	conn->fd = -1;
	xs_conn_out_free(conn);
}

static void xs_server_reap(void)
{
	struct xs_conn **pp = &xs.conns;

	if (xs.busy)
		return;
	while (*pp) {
		struct xs_conn *conn = *pp;

		if (!conn->dead) {
			pp = &conn->next;
			continue;
		}
		*pp = conn->next;
		xs_conn_reset(conn);
		free(conn);
	}
}

static void xs_conn_event(void *opaque, uint32_t events);

static void xs_conn_flush(struct xs_conn *conn)
{
	while (conn->out_head) {
		struct xs_buf *b = conn->out_head;
		ssize_t n = send(conn->fd, b->data + b->off, b->len - b->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			xs_conn_kill(conn, strerror(errno));
			return;
		}
		b->off += n;
		conn->out_bytes -= n;
		if (b->off < b->len)
			continue;
		conn->out_head = b->next;
		if (!conn->out_head)
			conn->out_tail = NULL;
		free(b);
	}
	/* Ask for EPOLLOUT only while something is waiting. */
	if (conn->want_out != !!conn->out_head) {
		conn->want_out = !!conn->out_head;
		loop_mod(xs.loop, conn->fd, conn->want_out ? EPOLLIN | EPOLLOUT : EPOLLIN,
			 xs_conn_event, conn);
	}
}

void xs_conn_send(struct xs_conn *conn, uint32_t type, uint32_t req_id,
		  uint32_t tx_id, const void *data, size_t len)
{
	struct xsd_sockmsg hdr = { .type = type, .req_id = req_id, .tx_id = tx_id,
				   .len = len };
	struct xs_buf *b;
	bool idle;

	if (conn->dead)
		return;
	if (conn->out_bytes + sizeof(hdr) + len > XS_CONN_OUT_MAX) {
		xs_conn_kill(conn, "output queue full (client not reading)");
		return;
	}
	b = malloc(sizeof(*b) + sizeof(hdr) + len);
	if (!b) {
		xs_conn_kill(conn, "out of memory");
		return;
	}
	b->next = NULL;
	b->off = 0;
	b->len = sizeof(hdr) + len;
	memcpy(b->data, &hdr, sizeof(hdr));
	if (len)
		memcpy(b->data + sizeof(hdr), data, len);
	idle = !conn->out_head;
	if (conn->out_tail)
		conn->out_tail->next = b;
	else
		conn->out_head = b;
	conn->out_tail = b;
	conn->out_bytes += b->len;
	if (idle)
		xs_conn_flush(conn);
}

/* Reads and answers what the client sent; a bounded number of messages
 * per wakeup so one busy client cannot starve the others. */
static void xs_conn_input(struct xs_conn *conn)
{
	struct xsd_sockmsg hdr;
	int budget = 64;

	while (!conn->dead && budget > 0) {
		size_t need = sizeof(hdr);
		ssize_t n;

		if (conn->in_len >= sizeof(hdr)) {
			memcpy(&hdr, conn->in, sizeof(hdr));
			need += hdr.len;
		}
		n = read(conn->fd, conn->in + conn->in_len, need - conn->in_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				xs_conn_kill(conn, strerror(errno));
			return;
		}
		if (n == 0) {
			/* Half a message at EOF is just dropped with the rest. */
			xs_conn_kill(conn, conn->in_len ? "closed mid-message" : "closed");
			return;
		}
		conn->in_len += n;
		if (conn->in_len < sizeof(hdr))
			continue;
		memcpy(&hdr, conn->in, sizeof(hdr));
		if (hdr.len > XENSTORE_PAYLOAD_MAX) {
			/* No way to resync after a bogus length: answer and drop,
			 * as xenstored drops such a connection. */
			xs_conn_send(conn, XS_ERROR, hdr.req_id, hdr.tx_id, "E2BIG", 6);
			xs_conn_kill(conn, "oversized message");
			return;
		}
		if (conn->in_len < sizeof(hdr) + hdr.len)
			continue;
		conn->in_len = 0;
		xs_wire_handle(conn, conn->in, (const char *)conn->in + sizeof(hdr));
		budget--;
	}
}

static void xs_conn_event(void *opaque, uint32_t events)
{
	struct xs_conn *conn = opaque;

	xs.busy++;
	if (events & EPOLLOUT)
		xs_conn_flush(conn);
	if (!conn->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		xs_conn_input(conn);
	xs.busy--;
	xs_server_reap();
}

static unsigned int xs_domain_conns(uint32_t domid)
{
	const struct xs_conn *conn;
	unsigned int n = 0;

	for (conn = xs.conns; conn; conn = conn->next)
		if (!conn->dead && !conn->caller.privileged && conn->caller.domid == domid)
			n++;
	return n;
}

static void xs_listener_event(void *opaque, uint32_t events)
{
	struct xs_domain *dom = opaque;

	for (;;) {
		struct xs_conn *conn;
		int fd = accept4(dom->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_errno(LOG_LEVEL_WARN, errno, "xenstore: accept on %s",
					  dom->sock_path);
			return;
		}
		if (!dom->privileged && xs_domain_conns(dom->domid) >= XS_QUOTA_CONNS) {
			log_warn("xenstore: d%u has too many connections", dom->domid);
			close(fd);
			continue;
		}
		conn = calloc(1, sizeof(*conn));
		if (!conn || loop_add(xs.loop, fd, EPOLLIN, xs_conn_event, conn) < 0) {
			log_warn("xenstore: cannot take a d%u connection", dom->domid);
			free(conn);
			close(fd);
			continue;
		}
		conn->fd = fd;
		conn->caller.domid = dom->domid;
		conn->caller.privileged = dom->privileged;
		conn->next = xs.conns;
		xs.conns = conn;
		log_debug("xenstore: d%u connected", dom->domid);
	}
}

static void xs_domain_free(struct xs_domain *dom)
{
	if (!dom)
		return;
	if (dom->fd >= 0) {
		loop_del(xs.loop, dom->fd);
		close(dom->fd);
		unlink(dom->sock_path);
	}
	if (dom->dir_path)
		rmdir(dom->dir_path);	/* fails harmlessly while others' files remain */
	free(dom->sock_path);
	free(dom->dir_path);
	free(dom);
}

static int xs_domain_listen(struct xs_domain *dom)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	if (strlen(dom->sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, dom->sock_path);
	dom->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (dom->fd < 0)
		return -errno;
	/* A socket file left by a killed daemon would make bind fail; one a
	 * live daemon still answers on is not ours to take. */
	if (connect(dom->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
	    errno == EAGAIN || errno == EINPROGRESS) {
		r = -EADDRINUSE;
		goto fail;
	}
	close(dom->fd);
	dom->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (dom->fd < 0)
		return -errno;
	if (unlink(dom->sock_path) < 0 && errno != ENOENT) {
		r = -errno;
		goto fail;
	}
	if (bind(dom->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(dom->fd, 64) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	r = loop_add(xs.loop, dom->fd, EPOLLIN, xs_listener_event, dom);
	if (r < 0)
		goto fail_unlink;
	return 0;

fail_unlink:
	unlink(dom->sock_path);
fail:
	close(dom->fd);
	dom->fd = -1;
	return r;
}

static struct xs_domain *xs_domain_find(uint32_t domid)
{
	struct xs_domain *dom;

	for (dom = xs.domains; dom; dom = dom->next)
		if (dom->domid == domid)
			return dom;
	return NULL;
}

bool xs_server_domain_is_introduced(uint32_t domid)
{
	return domid == 0 || xs_domain_find(domid);
}

unsigned int xs_server_count_watches(uint32_t domid)
{
	const struct xs_conn *conn;
	const struct xs_watch *w;
	unsigned int n = 0;

	for (conn = xs.conns; conn; conn = conn->next) {
		if (conn->dead || conn->caller.privileged || conn->caller.domid != domid)
			continue;
		for (w = conn->watches; w; w = w->next)
			n++;
	}
	return n;
}

unsigned int xs_server_count_txs(uint32_t domid)
{
	const struct xs_conn *conn;
	const struct xs_tx *tx;
	unsigned int n = 0;

	for (conn = xs.conns; conn; conn = conn->next) {
		if (conn->dead || conn->caller.privileged || conn->caller.domid != domid)
			continue;
		for (tx = conn->txs; tx; tx = tx->next)
			n++;
	}
	return n;
}

void xs_server_fire(const char *path, const struct xs_perms *perms, bool exact)
{
	struct xs_conn *conn;

	if (path[0] == '@')
		perms = xs_server_special_perms(path);
	for (conn = xs.conns; conn; conn = conn->next) {
		struct xs_watch *w;

		if (conn->dead)
			continue;
		/* A guest only hears about nodes it may read. */
		if (!conn->caller.privileged &&
		    (!perms || !(xs_perms_for(perms, &conn->caller) & XS_PERM_READ)))
			continue;
		for (w = conn->watches; w && !conn->dead; w = w->next) {
			const char *epath = xs_watch_match(w, path, exact);

			if (epath)
				xs_watch_send(conn, w, epath);
		}
	}
}

int xs_server_domain_introduce(uint32_t domid)
{
	struct xs_domain *dom;
	char *top = NULL;
	int r = -ENOMEM;

	if (!xs.tree)
		return -ENODEV;
	if (domid == 0 || xs_domain_find(domid))
		return -EEXIST;
	dom = calloc(1, sizeof(*dom));
	if (!dom)
		return -ENOMEM;
	dom->fd = -1;
	dom->domid = domid;
	if (asprintf(&top, "%s/domain", xs.dir) < 0) {
		top = NULL;
		goto fail;
	}
	if (asprintf(&dom->dir_path, "%s/%u", top, domid) < 0) {
		dom->dir_path = NULL;
		goto fail;
	}
	if (asprintf(&dom->sock_path, "%s/socket", dom->dir_path) < 0) {
		dom->sock_path = NULL;
		goto fail;
	}
	/* dom-server.c keeps its files in the same directory. */
	if ((mkdir(top, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(dom->dir_path, 0755) < 0 && errno != EEXIST)) {
		r = -errno;
		goto fail;
	}
	r = xs_domain_listen(dom);
	if (r < 0)
		goto fail;
	dom->next = xs.domains;
	xs.domains = dom;
	free(top);
	log_info("xenstore: domain %u introduced", domid);
	xs_server_fire("@introduceDomain", NULL, false);
	xs_server_reap();
	return 0;

fail:
	log_errno(LOG_LEVEL_WARN, r, "xenstore: cannot introduce domain %u", domid);
	free(top);
	xs_domain_free(dom);
	return r;
}

int xs_server_domain_release(uint32_t domid)
{
	struct xs_domain **pp, *dom;
	struct xs_conn *conn;

	for (pp = &xs.domains; *pp && (*pp)->domid != domid; pp = &(*pp)->next)
		;
	dom = *pp;
	if (!dom)
		return -ENOENT;
	*pp = dom->next;
	for (conn = xs.conns; conn; conn = conn->next)
		if (!conn->caller.privileged && conn->caller.domid == domid)
			xs_conn_kill(conn, "domain released");
	xs_domain_free(dom);
	log_info("xenstore: domain %u released", domid);
	xs_server_fire("@releaseDomain", NULL, false);
	xs_server_reap();
	return 0;
}

static int xs_special_init(struct xs_perms *p)
{
	p->v = calloc(1, sizeof(*p->v));
	if (!p->v)
		return -ENOMEM;
	p->nr = 1;		/* "n0": dom0 only, as xenstored starts them */
	return 0;
}

int xs_server_start(struct loop *loop, const char *dir)
{
	int r = -ENOMEM;

	xs.loop = loop;
	xs.dir = strdup(dir);
	xs.dom0 = calloc(1, sizeof(*xs.dom0));
	if (!xs.dir || !xs.dom0)
		goto fail;
	xs.dom0->fd = -1;
	xs.dom0->privileged = true;
	if (asprintf(&xs.dom0->sock_path, "%s/socket", dir) < 0) {
		xs.dom0->sock_path = NULL;
		goto fail;
	}
	r = xs_special_init(&xs.special_introduce);
	if (r < 0)
		goto fail;
	r = xs_special_init(&xs.special_release);
	if (r < 0)
		goto fail;
	r = xs_tree_new(&xs.tree);
	if (r < 0)
		goto fail;
	r = xs_domain_listen(xs.dom0);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "xenstore: cannot listen on %s", xs.dom0->sock_path);
		goto fail;
	}
	log_info("xenstore: listening on %s", xs.dom0->sock_path);
	return 0;

fail:
	xs_server_stop();
	return r;
}

void xs_server_stop(void)
{
	struct xs_conn *conn;

	for (conn = xs.conns; conn; conn = conn->next)
		xs_conn_kill(conn, "server stopping");
	xs.busy = 0;
	xs_server_reap();
	while (xs.domains) {
		struct xs_domain *dom = xs.domains;

		xs.domains = dom->next;
		xs_domain_free(dom);
	}
	xs_domain_free(xs.dom0);
	xs.dom0 = NULL;
	if (xs.dir) {
		char *top;

		/* Only if empty: dom-server.c may still have files there. */
		if (asprintf(&top, "%s/domain", xs.dir) >= 0) {
			rmdir(top);
			free(top);
		}
	}
	xs_tree_free(xs.tree);
	xs.tree = NULL;
	xs_perms_done(&xs.special_introduce);
	xs_perms_done(&xs.special_release);
	free(xs.dir);
	xs.dir = NULL;
}
