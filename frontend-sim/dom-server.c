/* xensimd's simulated domains and their control sockets: DIR/sim acts as
 * dom0, DIR/domain/<id>/sim as domain <id>. Creates and destroys domains
 * (memory as sealed memfds, event channel tables), hands memory fds and
 * event channel eventfds to processes, and closes a connection's ports
 * when it goes away. The data path never comes through here. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xen/xen.h>

#include "log.h"
#include "simctl.h"
#include "simshm.h"
#include "xensimd.h"

/* A guest's processes may not exhaust xensimd's fds. */
#define DOM_CONNS_MAX_GUEST 256u

struct dom_conn;

struct dom_domain {
	uint32_t domid;
	uint32_t ram_pages;
	struct simshm_fds fds;
	struct simshm_active *active;	/* to mark it destroyed, drop dead pins */
	struct simshm_gref *gt;
	struct dom_evtchn_table *evtchn;
	int listen_fd;
	char *sock_path;
	struct dom_conn *conns;
	unsigned int nr_conns;
};

struct dom_conn {
	int fd;
	struct dom_domain *dom;
	struct simshm_pinrec *pinlog;	/* dom0 mappers only */
	struct dom_conn *next;
};

static struct {
	struct loop *loop;
	char *dir;
	struct dom_domain *doms[DOMID_FIRST_RESERVED];
	uint32_t next_domid;
} srv;

static struct dom_domain *dom_find(uint32_t domid)
{
	return domid < DOMID_FIRST_RESERVED ? srv.doms[domid] : NULL;
}

/* The mapper is gone: drop the pins it still held, as closing gntdev
 * unmaps everything. Pins of a destroyed domain no longer matter. */
static void pinlog_recover(struct dom_conn *c)
{
	uint32_t dropped = 0;
	uint32_t used = __atomic_load_n(&c->pinlog[0].ref, __ATOMIC_ACQUIRE);

	if (used > SIMSHM_PINLOG_RECS)
		used = SIMSHM_PINLOG_RECS;
	for (uint32_t i = 1; i < used; i++) {
		struct simshm_pinrec *rec = &c->pinlog[i];
		struct dom_domain *d;

		if (!__atomic_load_n(&rec->pinned, __ATOMIC_ACQUIRE))
			continue;
		d = dom_find(rec->domid);
		if (d && rec->ref < SIMSHM_NR_GRANTS) {
			simshm_grant_unpin(d->gt, d->active, rec->ref, rec->readonly, rec);
			dropped++;
		}
	}
	if (dropped)
		log_info("d%u: dropped %u grant pins of a closed mapper", c->dom->domid, dropped);
	munmap(c->pinlog, simshm_pinlog_size());
	c->pinlog = NULL;
}

static void conn_free(struct dom_conn *c)
{
	struct dom_conn **pp;

	for (pp = &c->dom->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->dom->nr_conns--;
	/* Like closing /dev/xen/evtchn: every port bound through it closes. */
	dom_evtchn_close_owned(c->dom->evtchn, c);
	if (c->pinlog)
		pinlog_recover(c);
	loop_del(srv.loop, c->fd);
	close(c->fd);
	free(c);
}

static int rsp_send(struct dom_conn *c, const struct simctl_rsp *rsp, const int *fds, size_t nr_fds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * SIMCTL_MAX_FDS)];
	} cm;
	struct iovec iov = { .iov_base = (void *)rsp, .iov_len = sizeof(*rsp) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nr_fds) {
		struct cmsghdr *h;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
		h = CMSG_FIRSTHDR(&msg);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
		memcpy(CMSG_DATA(h), fds, sizeof(int) * nr_fds);
	}
	/* A client that does not read its replies is dropped, never waited for. */
	if (sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(*rsp))
		return -EIO;
	return 0;
}

/* The socket appears at path only once it listens (bound under a
 * temporary name, then renamed), so whoever waits for the file to exist
 * never gets ECONNREFUSED. */
static int sock_listen(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, n, r;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.new", path);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);	/* left by an earlier run */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    rename(sa.sun_path, path) < 0) {
		r = -errno;
		unlink(sa.sun_path);
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static void dom_free(struct dom_domain *d)
{
	if (!d)
		return;
	while (d->conns)
		conn_free(d->conns);
	if (d->listen_fd >= 0) {
		loop_del(srv.loop, d->listen_fd);
		close(d->listen_fd);
	}
	if (d->sock_path) {
		unlink(d->sock_path);
		free(d->sock_path);
	}
	dom_evtchn_table_free(d->evtchn);
	if (d->active) {
		/* Backends still holding the memfds see it and map no more. */
		__atomic_store_n(&d->active->destroyed, 1, __ATOMIC_RELEASE);
		munmap(d->active, simshm_active_size());
	}
	if (d->gt)
		munmap(d->gt, simshm_gnttab_size());
	simshm_fds_close(&d->fds);
	free(d);
}

static void on_request(void *opaque, uint32_t events);

static void on_accept(void *opaque, uint32_t events)
{
	struct dom_domain *d = opaque;
	struct dom_conn *c;
	int fd;

	fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (d->domid != 0 && d->nr_conns >= DOM_CONNS_MAX_GUEST) {
		log_warn("d%u: too many simulator connections", d->domid);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || loop_add(srv.loop, fd, EPOLLIN, on_request, c) < 0) {
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->dom = d;
	c->next = d->conns;
	d->conns = c;
	d->nr_conns++;
}

static int dom_new(uint32_t domid, uint32_t ram_pages, struct dom_domain **ret)
{
	struct dom_domain *d = calloc(1, sizeof(*d));
	char path[4096];
	int r;

	if (!d)
		return -ENOMEM;
	d->domid = domid;
	d->ram_pages = ram_pages;
	d->listen_fd = -1;
	d->fds = (struct simshm_fds){ -1, -1, -1, -1 };
	r = simshm_domain_create(domid, ram_pages, &d->fds);
	if (r < 0)
		goto fail;
	r = simshm_map(d->fds.active, simshm_active_size(), (void **)&d->active);
	if (r < 0)
		goto fail;
	r = simshm_map(d->fds.gnttab, simshm_gnttab_size(), (void **)&d->gt);
	if (r < 0)
		goto fail;
	r = dom_evtchn_table_new(domid, domid ? DOM_EVTCHN_MAX_GUEST : DOM_EVTCHN_MAX_DOM0,
				 &d->evtchn);
	if (r < 0)
		goto fail;
	if (domid == 0) {
		snprintf(path, sizeof(path), "%s/sim", srv.dir);
	} else {
		snprintf(path, sizeof(path), "%s/domain", srv.dir);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			goto fail_errno;
		snprintf(path, sizeof(path), "%s/domain/%u", srv.dir, domid);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			goto fail_errno;
		snprintf(path, sizeof(path), "%s/domain/%u/sim", srv.dir, domid);
	}
	d->sock_path = strdup(path);
	if (!d->sock_path) {
		r = -ENOMEM;
		goto fail;
	}
	r = sock_listen(path, &d->listen_fd);
	if (r < 0)
		goto fail;
	r = loop_add(srv.loop, d->listen_fd, EPOLLIN, on_accept, d);
	if (r < 0)
		goto fail;
	*ret = d;
	return 0;
fail_errno:
	r = -errno;
fail:
	dom_free(d);
	return r;
}

static int domid_next(uint32_t *ret)
{
	/* Monotonic like libxl, so a recently destroyed domid is not handed
	 * out again while stale references to it may linger. */
	for (uint32_t i = 0; i < DOMID_FIRST_RESERVED - 1; i++) {
		uint32_t id = srv.next_domid;

		srv.next_domid = id + 1 < DOMID_FIRST_RESERVED ? id + 1 : 1;
		if (!srv.doms[id]) {
			*ret = id;
			return 0;
		}
	}
	return -ENOSPC;
}

static int op_domain_create(struct dom_conn *c, const struct simctl_req *req,
			    struct simctl_rsp *rsp)
{
	uint32_t ram_pages = req->arg ? req->arg : SIMSHM_RAM_PAGES_DEFAULT;
	struct dom_domain *d;
	uint32_t domid;
	int r;

	if (c->dom->domid != 0)
		return -EPERM;
	if (ram_pages > SIMSHM_RAM_PAGES_MAX)
		return -EINVAL;
	r = domid_next(&domid);
	if (r < 0)
		return r;
	r = dom_new(domid, ram_pages, &d);
	if (r < 0)
		return r;
	srv.doms[domid] = d;
	r = xs_server_domain_introduce(domid);
	if (r < 0) {
		srv.doms[domid] = NULL;
		dom_free(d);
		return r;
	}
	log_info("d%u: created, %u pages of RAM", domid, ram_pages);
	rsp->domid = domid;
	return 0;
}

static int op_domain_destroy(struct dom_conn *c, const struct simctl_req *req)
{
	struct dom_domain *d;
	char path[4096];
	int r;

	if (c->dom->domid != 0)
		return -EPERM;
	if (req->domid == 0)
		return -EPERM;
	d = dom_find(req->domid);
	if (!d)
		return -ESRCH;
	/* Xen closes a dying domain's event channels before @releaseDomain
	 * fires, so whoever reacts to it sees them closed already. */
	srv.doms[req->domid] = NULL;
	dom_free(d);
	r = xs_server_domain_release(req->domid);
	if (r < 0)
		log_errno(LOG_LEVEL_WARN, r, "d%u: xenstore release", req->domid);
	snprintf(path, sizeof(path), "%s/domain/%u", srv.dir, req->domid);
	rmdir(path);	/* fails harmlessly if someone left a file there */
	log_info("d%u: destroyed", req->domid);
	return 0;
}

static int op_domain_list(const struct simctl_req *req, struct simctl_rsp *rsp)
{
	for (uint32_t id = 0; id < DOMID_FIRST_RESERVED; id++) {
		if (!srv.doms[id])
			continue;
		rsp->count++;
		if (id >= req->arg && rsp->nr_domids < SIMCTL_LIST_MAX)
			rsp->domids[rsp->nr_domids++] = id;
	}
	return 0;
}

static int op_domain_mem(struct dom_conn *c, const struct simctl_req *req,
			 struct simctl_rsp *rsp, int *fds, size_t *nr_fds)
{
	uint32_t domid = req->domid == DOMID_SELF ? c->dom->domid : req->domid;
	struct dom_domain *d;

	if (c->dom->domid != 0 && domid != c->dom->domid)
		return -EPERM;
	d = dom_find(domid);
	if (!d)
		return -ESRCH;
	fds[0] = d->fds.ram;
	fds[1] = d->fds.gnttab;
	fds[2] = d->fds.meta;
	*nr_fds = 3;
	/* Pin counts are Xen's private state: never the guest's. */
	if (c->dom->domid == 0)
		fds[(*nr_fds)++] = d->fds.active;
	rsp->domid = domid;
	rsp->val[0] = d->ram_pages;
	rsp->val[1] = SIMSHM_NR_GRANTS;
	return 0;
}

static int op_pinlog_open(struct dom_conn *c, int *fds, size_t *nr_fds)
{
	int fd, r;

	if (c->dom->domid != 0)
		return -EPERM;	/* only dom0 maps grants */
	if (c->pinlog)
		return -EEXIST;
	r = simshm_pinlog_create(&fd);
	if (r < 0)
		return r;
	r = simshm_map(fd, simshm_pinlog_size(), (void **)&c->pinlog);
	if (r < 0) {
		close(fd);
		return r;
	}
	/* The conn's mapping keeps the memory; the client gets the only fd. */
	fds[0] = fd;
	*nr_fds = 1;
	return 0;
}

static int op_evtchn(struct dom_conn *c, const struct simctl_req *req,
		     struct simctl_rsp *rsp, int *fds, size_t *nr_fds)
{
	struct dom_domain *d = c->dom, *rd;
	uint32_t domid;
	int r;

	switch (req->op) {
	case SIMCTL_OP_EVTCHN_ALLOC_UNBOUND:
		r = dom_evtchn_alloc_unbound(d->evtchn, c, req->domid, &rsp->port, fds);
		break;
	case SIMCTL_OP_EVTCHN_BIND_INTERDOMAIN:
		domid = req->domid == DOMID_SELF ? d->domid : req->domid;
		rd = dom_find(domid);
		if (!rd)
			return -ESRCH;
		r = dom_evtchn_bind_interdomain(d->evtchn, c, rd->evtchn, req->port,
						&rsp->port, fds);
		break;
	case SIMCTL_OP_EVTCHN_UNBIND:
		return dom_evtchn_close(d->evtchn, req->port, c);
	case SIMCTL_OP_EVTCHN_STATUS:
		domid = req->domid == DOMID_SELF ? d->domid : req->domid;
		if (d->domid != 0 && domid != d->domid)
			return -EPERM;
		rd = dom_find(domid);
		if (!rd)
			return -ESRCH;
		rsp->domid = domid;
		rsp->port = req->port;
		return dom_evtchn_status(rd->evtchn, req->port, &rsp->val[0], &rsp->val[1],
					 &rsp->val[2]);
	default:
		return -EOPNOTSUPP;
	}
	if (r == 0)
		*nr_fds = 2;
	return r;
}

static int request_handle(struct dom_conn *c, const struct simctl_req *req,
			  struct simctl_rsp *rsp, int *fds, size_t *nr_fds)
{
	switch (req->op) {
	case SIMCTL_OP_DOMAIN_CREATE:
		return op_domain_create(c, req, rsp);
	case SIMCTL_OP_DOMAIN_DESTROY:
		return op_domain_destroy(c, req);
	case SIMCTL_OP_DOMAIN_LIST:
		return op_domain_list(req, rsp);
	case SIMCTL_OP_DOMAIN_MEM:
		return op_domain_mem(c, req, rsp, fds, nr_fds);
	case SIMCTL_OP_PINLOG_OPEN:
		return op_pinlog_open(c, fds, nr_fds);
	default:
		return op_evtchn(c, req, rsp, fds, nr_fds);
	}
}

static void on_request(void *opaque, uint32_t events)
{
	struct dom_conn *c = opaque;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} cm;
	struct simctl_req req;
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
	};
	struct simctl_rsp rsp;
	int fds[SIMCTL_MAX_FDS];
	size_t nr_fds = 0;
	bool bad = false;
	struct cmsghdr *h;
	ssize_t n;
	int r;

	n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* Nobody sends us fds: close any, and drop the sender. */
	for (h = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; h; h = CMSG_NXTHDR(&msg, h)) {
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
				close(fd);
			}
			bad = true;
		}
	}
	if (n <= 0 || bad || (size_t)n != sizeof(req) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (n > 0)
			log_warn("d%u: malformed simulator request, dropping the connection",
				 c->dom->domid);
		conn_free(c);
		return;
	}
	memset(&rsp, 0, sizeof(rsp));
	rsp.op = req.op;
	rsp.err = request_handle(c, &req, &rsp, fds, &nr_fds);
	if (rsp.err < 0)
		nr_fds = 0;
	log_debug("d%u: op %u domid %u port %u arg %u -> %d", c->dom->domid, req.op,
		  req.domid, req.port, req.arg, rsp.err);
	r = rsp_send(c, &rsp, fds, nr_fds);
	/* A pin log's fd is the client's alone. */
	if (req.op == SIMCTL_OP_PINLOG_OPEN && nr_fds)
		close(fds[0]);
	if (r < 0)
		conn_free(c);
}

static void nofile_raise(void)
{
	struct rlimit rl;

	/* Two eventfds per channel and one socket per evtchn handle add up
	 * with thousands of vbds. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int dom_server_start(struct loop *loop, const char *dir)
{
	struct dom_domain *d0;
	int r;

	srv.loop = loop;
	srv.next_domid = 1;
	srv.dir = strdup(dir);
	if (!srv.dir)
		return -ENOMEM;
	nofile_raise();
	/* dom0 has memory too, so a process in dom0 can play a frontend. */
	r = dom_new(0, SIMSHM_RAM_PAGES_DEFAULT, &d0);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot serve %s/sim", dir);
		free(srv.dir);
		srv.dir = NULL;
		return r;
	}
	srv.doms[0] = d0;
	return 0;
}

void dom_server_stop(void)
{
	/* Guests first: their channels to dom0 close while dom0 still exists. */
	for (uint32_t id = DOMID_FIRST_RESERVED; id-- > 0;) {
		dom_free(srv.doms[id]);
		srv.doms[id] = NULL;
	}
	free(srv.dir);
	srv.dir = NULL;
}
