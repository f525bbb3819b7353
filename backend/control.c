/* The control socket blkback-ctl talks to: a UNIX stream socket served by
 * the main thread's loop through one epoll set of its own. JSON, one object
 * per line each way (json-c builds and parses it), version 1; the protocol
 * is documented in blkback-ctl(8). A client can never stall the daemon:
 * non-blocking sockets, bounded request lines, bounded output, a client
 * limit and an idle timeout. This file is the server: it accepts, reads
 * request lines, hands them to control_handle (control-cmd.c) and writes
 * the replies back. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control-int.h"
#include "util.h"

#define CONTROL_MAX_LINE	4096		/* one request */
#define CONTROL_MAX_OUT		(32u << 20)	/* one reply */
#define CONTROL_MAX_CLIENTS	32
#define CONTROL_IDLE_SEC	10		/* no progress: dropped */

struct client {
	struct client *next;
	uint64_t id;			/* its epoll tag, never reused */
	int fd;
	char in[CONTROL_MAX_LINE];
	size_t in_len;
	char *out;			/* reply being sent */
	size_t out_len;
	size_t out_off;
	time_t last;			/* monotonic seconds of the last progress */
	bool close_after;		/* drop once out is sent */
	bool waiting;			/* its reply comes later (control-worker.c) */
	uid_t uid;			/* the peer, as it connected */
	gid_t gid;
	gid_t *groups;			/* supplementary, for a non-root peer */
	unsigned int nr_groups;
};

struct control {
	int ep;
	int lfd;
	int tfd;			/* 1 s: IOPS samples, idle clients */
	struct control_worker *worker;	/* deferred replies */
	char *path;
	struct client *clients;
	unsigned int nr_clients;
	bool have_gid;
	gid_t gid;
	/* epoll tags: numbers, never reused, rather than addresses: an event
	 * of a client dropped earlier in a batch must not reach a new client
	 * that malloc put at the same address. */
	uint64_t next_id;
};

#define CONTROL_TAG_LISTEN	1
#define CONTROL_TAG_TIMER	2
#define CONTROL_TAG_WORKER	3
#define CONTROL_TAG_FIRST_CLIENT 4

/* ---- socket set-up ---- */

/* A socket file at path that nobody answers is left over from a daemon
 * that died: remove it. One that answers belongs to a live daemon. */
static int control_claim_path(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r = 0;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		r = -EADDRINUSE;
	else if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		r = -errno;
	close(fd);
	return r;
}

static int control_epoll_add(struct control *c, int fd, uint64_t tag, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* The directory (/run/blkbackd) may be ours to create. */
static int control_make_dir(char *path)
{
	char *slash = strrchr(path, '/');
	int r = 0;

	if (slash == path)
		return 0;
	*slash = '\0';
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		log_errno(LOG_LEVEL_ERR, r, "cannot create %s", path);
	}
	*slash = '/';
	return r;
}

/* The timer and the worker, and every fd in the epoll set. */
static int control_start_loop(struct control *c)
{
	struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	int r;

	c->ep = epoll_create1(EPOLL_CLOEXEC);
	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (c->ep < 0 || c->tfd < 0 || timerfd_settime(c->tfd, 0, &its, NULL) < 0)
		return -errno;
	c->worker = control_worker_new();
	if (!c->worker)
		return -ENOMEM;
	r = control_epoll_add(c, c->lfd, CONTROL_TAG_LISTEN, EPOLLIN);
	if (r >= 0)
		r = control_epoll_add(c, c->tfd, CONTROL_TAG_TIMER, EPOLLIN);
	if (r >= 0)
		r = control_epoll_add(c, control_worker_fd(c->worker), CONTROL_TAG_WORKER, EPOLLIN);
	return r;
}

int control_open(struct blkbackd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *c;
	mode_t old;
	int r;

	if (strlen(d->control_path) >= sizeof(sa.sun_path) || d->control_path[0] != '/') {
		log_err("control socket %s: not an absolute path of at most %zu bytes",
			  d->control_path, sizeof(sa.sun_path) - 1);
		return -EINVAL;
	}
	strcpy(sa.sun_path, d->control_path);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ep = c->lfd = c->tfd = -1;
	c->path = strdup(d->control_path);
	if (!c->path) {
		r = -ENOMEM;
		goto fail;
	}
	if (d->control_group) {
		struct group *g = getgrnam(d->control_group);

		if (!g) {
			log_err("control group %s: no such group", d->control_group);
			r = -ENOENT;
			goto fail;
		}
		c->have_gid = true;
		c->gid = g->gr_gid;
	}
	r = control_make_dir(c->path);
	if (r < 0)
		goto fail;
	r = control_claim_path(&sa);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "control socket %s%s", c->path,
			  r == -EADDRINUSE ? ": another blkbackd serves it" : "");
		goto fail;
	}
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0) {
		r = -errno;
		goto fail_log;
	}
	/* Never reachable with looser permissions, not even for a moment. */
	old = umask(0177);
	r = bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0)
		goto fail_log;
	if (c->have_gid && (chown(c->path, (uid_t)-1, c->gid) < 0 || chmod(c->path, 0660) < 0)) {
		r = -errno;
		goto fail_log;
	}
	if (listen(c->lfd, 16) < 0) {
		r = -errno;
		goto fail_log;
	}
	c->next_id = CONTROL_TAG_FIRST_CLIENT;
	r = control_start_loop(c);
	if (r < 0)
		goto fail_log;
	d->ctl = c;
	log_info("control socket %s", c->path);
	return 0;
fail_log:
	log_errno(LOG_LEVEL_ERR, r, "control socket %s", c->path);
	if (c->lfd >= 0)
		unlink(c->path);
fail:
	control_worker_free(c->worker);
	if (c->tfd >= 0)
		close(c->tfd);
	if (c->ep >= 0)
		close(c->ep);
	if (c->lfd >= 0)
		close(c->lfd);
	free(c->path);
	free(c);
	return r;
}

int control_fd(const struct blkbackd *d)
{
	return d->ctl ? d->ctl->ep : -1;
}

static void client_drop(struct control *c, struct client *cl)
{
	struct client **pp;

	for (pp = &c->clients; *pp; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	c->nr_clients--;
	epoll_ctl(c->ep, EPOLL_CTL_DEL, cl->fd, NULL);
	close(cl->fd);
	free(cl->out);
	free(cl->groups);
	free(cl);
}

struct control_worker *control_worker(struct control *c)
{
	return c->worker;
}

void control_close(struct blkbackd *d)
{
	struct control *c = d->ctl;

	if (!c)
		return;
	/* A reply already made still goes out (an upgrade's, say); one try,
	 * as the socket buffer holds any reply of ours a client reads. */
	for (struct client *cl = c->clients; cl; cl = cl->next)
		if (cl->out && cl->out_off < cl->out_len)
			(void)!send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				    MSG_NOSIGNAL | MSG_DONTWAIT);
	while (c->clients)
		client_drop(c, c->clients);
	control_worker_free(c->worker);
	close(c->tfd);
	close(c->ep);
	close(c->lfd);
	unlink(c->path);
	free(c->path);
	free(c);
	d->ctl = NULL;
}

/* ---- client I/O ---- */

static void client_set_events(struct control *c, struct client *cl)
{
	struct epoll_event ev = { .data.u64 = cl->id };

	/* One request at a time: no reading while a reply is pending (a
	 * hang-up is reported all the same). */
	ev.events = cl->out ? EPOLLOUT : cl->waiting ? 0 : EPOLLIN;
	epoll_ctl(c->ep, EPOLL_CTL_MOD, cl->fd, &ev);
}

static void client_reply(struct control *c, struct client *cl, struct json_object *rep)
{
	const char *s = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);

	if (n + 1 > CONTROL_MAX_OUT) {
		json_object_put(rep);
		rep = reply_error("reply too large (%zu bytes)", n);
		s = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);
		n = strlen(s);
	}
	cl->out = malloc(n + 1);
	if (cl->out) {
		memcpy(cl->out, s, n);
		cl->out[n] = '\n';
		cl->out_len = n + 1;
		cl->out_off = 0;
	} else {
		cl->close_after = true;
	}
	json_object_put(rep);
	client_set_events(c, cl);
}

/* Returns false when the client is gone. */
static bool client_write(struct control *c, struct client *cl)
{
	ssize_t n;

	while (cl->out && cl->out_off < cl->out_len) {
		n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return true;
			client_drop(c, cl);
			return false;
		}
		cl->out_off += (size_t)n;
		cl->last = clock_mono_sec();
	}
	free(cl->out);
	cl->out = NULL;
	if (cl->close_after) {
		client_drop(c, cl);
		return false;
	}
	client_set_events(c, cl);
	return true;
}

/* Answers the requests already read, one at a time: a reply must be sent
 * before the next is handled. A client that sent several lines in one
 * write has them all here, and no new data will come to wake us. */
static void client_process(struct blkbackd *d, struct control *c, struct client *cl)
{
	struct control_call call = {
		.c = c, .client_id = cl->id, .uid = cl->uid, .gid = cl->gid,
		.groups = cl->groups, .nr_groups = cl->nr_groups,
	};
	struct json_object *rep;
	char *nl;

	while (!cl->out && !cl->waiting && (nl = memchr(cl->in, '\n', cl->in_len))) {
		*nl = '\0';
		rep = control_handle(d, cl->in, (size_t)(nl - cl->in), &call);
		cl->in_len -= (size_t)(nl + 1 - cl->in);
		memmove(cl->in, nl + 1, cl->in_len);
		if (!rep) {
			/* Answered later, by control_answer. */
			cl->waiting = true;
			client_set_events(c, cl);
			return;
		}
		client_reply(c, cl, rep);
		if (!client_write(c, cl))
			return;		/* dropped */
	}
}

void control_answer(struct blkbackd *d, uint64_t client_id, struct json_object *rep)
{
	struct control *c = d->ctl;
	struct client *cl;

	for (cl = c ? c->clients : NULL; cl && cl->id != client_id; cl = cl->next)
		;
	if (!cl || !cl->waiting) {
		/* It left while its answer was being worked out. */
		json_object_put(rep);
		return;
	}
	cl->waiting = false;
	cl->last = clock_mono_sec();
	client_reply(c, cl, rep);
	if (client_write(c, cl))
		client_process(d, c, cl);	/* lines sent behind it */
}

static void client_read(struct blkbackd *d, struct control *c, struct client *cl)
{
	ssize_t n;

	n = recv(cl->fd, cl->in + cl->in_len, sizeof(cl->in) - cl->in_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		client_drop(c, cl);
		return;
	}
	if (n < 0)
		return;
	cl->in_len += (size_t)n;
	cl->last = clock_mono_sec();
	if (!memchr(cl->in, '\n', cl->in_len)) {
		if (cl->in_len == sizeof(cl->in)) {
			/* No resynchronising inside a huge line: answer, hang up. */
			cl->close_after = true;
			client_reply(c, cl, reply_error("request longer than %d bytes",
							CONTROL_MAX_LINE - 1));
			client_write(c, cl);
		}
		return;
	}
	client_process(d, c, cl);
}

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS	59	/* Linux 4.13 */
#endif
#define CONTROL_MAX_PEER_GROUPS	1024

/* Peer credentials: root, or the configured group as the peer's primary
 * or (SO_PEERGROUPS) supplementary group, as it was when it connected.
 * A non-root peer's groups are kept: check-target looks at paths with
 * them (storage_admit_visible). */
static bool control_peer_ok(const struct control *c, struct client *cl, struct ucred *cred)
{
	gid_t groups[CONTROL_MAX_PEER_GROUPS];
	socklen_t len = sizeof(*cred);
	unsigned int i, n;
	bool member;

	memset(cred, 0, sizeof(*cred));
	if (getsockopt(cl->fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return false;
	cl->uid = cred->uid;
	cl->gid = cred->gid;
	if (cred->uid == 0)
		return true;
	if (!c->have_gid)
		return false;
	member = cred->gid == c->gid;
	len = sizeof(groups);
	/* ERANGE (more groups than we look at) refuses: fail closed. */
	if (getsockopt(cl->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return member;
	n = len / sizeof(groups[0]);
	for (i = 0; i < n; i++)
		member |= groups[i] == c->gid;
	if (member && n) {
		cl->groups = calloc(n, sizeof(groups[0]));
		if (!cl->groups)
			return false;
		memcpy(cl->groups, groups, n * sizeof(groups[0]));
		cl->nr_groups = n;
	}
	return member;
}

static void control_accept(struct control *c)
{
	struct client *cl;
	struct ucred cred;
	int fd;

	for (;;) {
		fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (c->nr_clients >= CONTROL_MAX_CLIENTS) {
			struct client *old = c->clients, *it;

			/* Idle connections must not lock operators out: the
			 * one without progress for longest makes room. */
			for (it = c->clients; it; it = it->next)
				if (it->last < old->last)
					old = it;
			log_debug("control socket: %u clients, dropping the least active one",
				 c->nr_clients);
			client_drop(c, old);
		}
		cl = calloc(1, sizeof(*cl));
		if (!cl) {
			close(fd);
			continue;
		}
		cl->fd = fd;
		cl->id = c->next_id++;
		cl->last = clock_mono_sec();
		cl->next = c->clients;
		c->clients = cl;
		c->nr_clients++;
		if (control_epoll_add(c, fd, cl->id, EPOLLIN) < 0) {
			client_drop(c, cl);
			continue;
		}
		if (!control_peer_ok(c, cl, &cred)) {
			log_warn("control socket: refused uid %u gid %u pid %d",
				 (unsigned int)cred.uid, (unsigned int)cred.gid, (int)cred.pid);
			cl->close_after = true;
			client_reply(c, cl, reply_fail(CONTROL_E_PERMISSION,
						       "permission denied: uid %u is not root%s",
						       (unsigned int)cred.uid,
						       c->have_gid ? " nor in the control group" : ""));
			client_write(c, cl);
		}
	}
}

static void control_expire(struct control *c)
{
	struct client *cl, *next;
	time_t now = clock_mono_sec();

	for (cl = c->clients; cl; cl = next) {
		next = cl->next;
		/* A client that neither sends nor reads for this long goes;
		 * one waiting for its answer is not idle. */
		if (!cl->waiting && now - cl->last > CONTROL_IDLE_SEC)
			client_drop(c, cl);
	}
}

void control_dispatch(struct blkbackd *d)
{
	struct control *c = d->ctl;
	struct epoll_event evs[16];
	uint64_t val;
	int n, i;

	if (!c)
		return;
	n = epoll_wait(c->ep, evs, 16, 0);
	for (i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		struct client *cl;

		if (tag == CONTROL_TAG_LISTEN) {
			control_accept(c);
		} else if (tag == CONTROL_TAG_WORKER) {
			control_worker_collect(d, c->worker);
		} else if (tag == CONTROL_TAG_TIMER) {
			if (read(c->tfd, &val, sizeof(val)) < 0) {
				/* EAGAIN: nothing expired */
			}
			control_sample(d);
			control_expire(c);
		} else {
			/* A client dropped earlier in this batch is not in the
			 * list any more: look it up before touching it. */
			for (cl = c->clients; cl && cl->id != tag; cl = cl->next)
				;
			if (!cl)
				continue;
			if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN))
				client_drop(c, cl);
			else if (!cl->out)
				client_read(d, c, cl);
			else if (client_write(c, cl))
				client_process(d, c, cl);	/* lines sent with the last */
		}
	}
}
