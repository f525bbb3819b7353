/* Client of xensimd's simulator control socket: one synchronous request
 * and response per call on a SOCK_SEQPACKET connection, fds arriving with
 * SCM_RIGHTS. Not thread-safe: callers serialise use of one connection. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "simctl.h"
#include "simshm.h"

struct simctl {
	int fd;
	uint32_t domid;
};

const char *simctl_dir_resolve(const char *dir)
{
	if (dir && *dir)
		return dir;
	dir = getenv("XENSIM_DIR");
	return dir && *dir ? dir : NULL;
}

int simctl_connect(const char *dir, uint32_t domid, struct simctl **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct simctl *sc;
	int n, r;

	dir = simctl_dir_resolve(dir);
	if (!dir)
		return -ENOENT;
	if (domid == 0)
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sim", dir);
	else
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/domain/%u/sim", dir, domid);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->domid = domid;
	sc->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sc->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (connect(sc->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto fail;
	}
	*ret = sc;
	return 0;
fail:
	simctl_close(sc);
	return r;
}

void simctl_close(struct simctl *sc)
{
	if (!sc)
		return;
	if (sc->fd >= 0)
		close(sc->fd);
	free(sc);
}

uint32_t simctl_domid(const struct simctl *sc)
{
	return sc->domid;
}

static void fds_close(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Sends req, receives the response and exactly nr_fds fds into fds[]
 * (all closed on any failure). Returns the daemon's err. */
static int simctl_call(struct simctl *sc, const struct simctl_req *req,
		       struct simctl_rsp *rsp, int *fds, size_t nr_fds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * SIMCTL_MAX_FDS)];
	} cm;
	struct iovec iov = { .iov_base = rsp, .iov_len = sizeof(*rsp) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
	};
	int got[SIMCTL_MAX_FDS];
	size_t nr_got = 0;
	struct cmsghdr *c;
	ssize_t n;
	int r;

	do
		n = send(sc->fd, req, sizeof(*req), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	do
		n = recvmsg(sc->fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nr_got < SIMCTL_MAX_FDS)
				got[nr_got++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0) {
		r = -ECONNRESET;	/* xensimd went away */
		goto fail;
	}
	if ((size_t)n != sizeof(*rsp) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    rsp->op != req->op) {
		r = -EPROTO;
		goto fail;
	}
	if (rsp->err < 0) {
		r = rsp->err;
		goto fail;
	}
	if (nr_got != nr_fds) {
		r = -EPROTO;
		goto fail;
	}
	if (nr_fds)
		memcpy(fds, got, nr_fds * sizeof(int));
	return 0;
fail:
	fds_close(got, nr_got);
	return r;
}

int simctl_domain_create(struct simctl *sc, uint32_t ram_pages, uint32_t *ret_domid)
{
	struct simctl_req req = { .op = SIMCTL_OP_DOMAIN_CREATE, .arg = ram_pages };
	struct simctl_rsp rsp;
	int r = simctl_call(sc, &req, &rsp, NULL, 0);

	if (r < 0)
		return r;
	*ret_domid = rsp.domid;
	return 0;
}

int simctl_domain_destroy(struct simctl *sc, uint32_t domid)
{
	struct simctl_req req = { .op = SIMCTL_OP_DOMAIN_DESTROY, .domid = domid };
	struct simctl_rsp rsp;

	return simctl_call(sc, &req, &rsp, NULL, 0);
}

int simctl_domain_list(struct simctl *sc, uint32_t *domids, size_t max, size_t *ret_count)
{
	struct simctl_req req = { .op = SIMCTL_OP_DOMAIN_LIST };
	struct simctl_rsp rsp;
	size_t filled = 0;
	int r;

	/* Page through with the next domid to start from. */
	while (filled < max) {
		r = simctl_call(sc, &req, &rsp, NULL, 0);
		if (r < 0)
			return r;
		if (rsp.nr_domids > SIMCTL_LIST_MAX)
			return -EPROTO;
		for (uint32_t i = 0; i < rsp.nr_domids && filled < max; i++)
			domids[filled++] = rsp.domids[i];
		if (rsp.nr_domids < SIMCTL_LIST_MAX)
			break;
		req.arg = rsp.domids[SIMCTL_LIST_MAX - 1] + 1;
	}
	*ret_count = filled;
	return 0;
}

int simctl_domain_mem(struct simctl *sc, uint32_t domid, struct simshm_fds *ret_fds,
		      uint32_t *ret_ram_pages, uint32_t *ret_nr_grants)
{
	struct simctl_req req = { .op = SIMCTL_OP_DOMAIN_MEM, .domid = domid };
	struct simctl_rsp rsp;
	int fds[SIMCTL_MAX_FDS];
	size_t nr = sc->domid == 0 ? 4 : 3;
	int r;

	r = simctl_call(sc, &req, &rsp, fds, nr);
	if (r < 0)
		return r;
	if (rsp.val[0] == 0 || rsp.val[0] > SIMSHM_RAM_PAGES_MAX ||
	    rsp.val[1] != SIMSHM_NR_GRANTS) {
		fds_close(fds, nr);
		return -EPROTO;
	}
	ret_fds->ram = fds[0];
	ret_fds->gnttab = fds[1];
	ret_fds->meta = fds[2];
	ret_fds->active = nr == 4 ? fds[3] : -1;
	*ret_ram_pages = rsp.val[0];
	*ret_nr_grants = rsp.val[1];
	return 0;
}

int simctl_pinlog_open(struct simctl *sc, int *ret_fd)
{
	struct simctl_req req = { .op = SIMCTL_OP_PINLOG_OPEN };
	struct simctl_rsp rsp;

	return simctl_call(sc, &req, &rsp, ret_fd, 1);
}

static int evtchn_call(struct simctl *sc, struct simctl_req *req,
		       uint32_t *ret_port, int *ret_fd_in, int *ret_fd_out)
{
	struct simctl_rsp rsp;
	int fds[2];
	int r = simctl_call(sc, req, &rsp, fds, 2);

	if (r < 0)
		return r;
	*ret_port = rsp.port;
	*ret_fd_in = fds[0];
	*ret_fd_out = fds[1];
	return 0;
}

int simctl_evtchn_alloc_unbound(struct simctl *sc, uint32_t remote_domid,
				uint32_t *ret_port, int *ret_fd_in, int *ret_fd_out)
{
	struct simctl_req req = { .op = SIMCTL_OP_EVTCHN_ALLOC_UNBOUND, .domid = remote_domid };

	return evtchn_call(sc, &req, ret_port, ret_fd_in, ret_fd_out);
}

int simctl_evtchn_bind_interdomain(struct simctl *sc, uint32_t remote_domid,
				   uint32_t remote_port, uint32_t *ret_port,
				   int *ret_fd_in, int *ret_fd_out)
{
	struct simctl_req req = {
		.op = SIMCTL_OP_EVTCHN_BIND_INTERDOMAIN,
		.domid = remote_domid, .port = remote_port,
	};

	return evtchn_call(sc, &req, ret_port, ret_fd_in, ret_fd_out);
}

int simctl_evtchn_unbind(struct simctl *sc, uint32_t port)
{
	struct simctl_req req = { .op = SIMCTL_OP_EVTCHN_UNBIND, .port = port };
	struct simctl_rsp rsp;

	return simctl_call(sc, &req, &rsp, NULL, 0);
}

int simctl_evtchn_status(struct simctl *sc, uint32_t domid, uint32_t port,
			 struct simctl_evtchn_status *ret)
{
	struct simctl_req req = { .op = SIMCTL_OP_EVTCHN_STATUS, .domid = domid, .port = port };
	struct simctl_rsp rsp;
	int r = simctl_call(sc, &req, &rsp, NULL, 0);

	if (r < 0)
		return r;
	ret->state = rsp.val[0];
	ret->remote_domid = rsp.val[1];
	ret->remote_port = rsp.val[2];
	return 0;
}
