/* The control socket blkback-ctl talks to: a UNIX stream socket served by
 * the main thread's loop through one epoll set of its own. JSON, one object
 * per line each way (json-c builds and parses it), version 1; the protocol
 * is documented in blkback-ctl(8). A client can never stall the daemon:
 * non-blocking sockets, bounded request lines, bounded output, a client
 * limit and an idle timeout. Ring counters are read, never written, here. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <xen/io/xenbus.h>

#include "blkbackd.h"
#include "control-proto.h"
#include "util.h"

#define CONTROL_MAX_LINE	4096		/* one request */
#define CONTROL_MAX_OUT		(32u << 20)	/* one reply */
#define CONTROL_MAX_CLIENTS	32
#define CONTROL_IDLE_SEC	10		/* no progress: dropped */

struct client {
	struct client *next;
	int fd;
	char in[CONTROL_MAX_LINE];
	size_t in_len;
	char *out;			/* reply being sent */
	size_t out_len;
	size_t out_off;
	time_t last;			/* monotonic seconds of the last progress */
	bool close_after;		/* drop once out is sent */
};

struct control {
	int ep;
	int lfd;
	int tfd;			/* 1 s: IOPS samples, idle clients */
	char *path;
	struct client *clients;
	unsigned int nr_clients;
	bool have_gid;
	gid_t gid;
	/* epoll tags for the two fds that are not clients */
	char tag_listen, tag_timer;
};

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

static int control_epoll_add(struct control *c, int fd, void *tag, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	return epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int control_open(struct blkbackd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	struct control *c;
	char *slash;
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
	/* The directory (/run/blkbackd) may be ours to create. */
	slash = strrchr(c->path, '/');
	if (slash != c->path) {
		*slash = '\0';
		if (mkdir(c->path, 0755) < 0 && errno != EEXIST) {
			r = -errno;
			log_errno(LOG_LEVEL_ERR, r, "cannot create %s", c->path);
			*slash = '/';
			goto fail;
		}
		*slash = '/';
	}
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
	c->ep = epoll_create1(EPOLL_CLOEXEC);
	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (c->ep < 0 || c->tfd < 0 || timerfd_settime(c->tfd, 0, &its, NULL) < 0) {
		r = -errno;
		goto fail_log;
	}
	r = control_epoll_add(c, c->lfd, &c->tag_listen, EPOLLIN);
	if (r >= 0)
		r = control_epoll_add(c, c->tfd, &c->tag_timer, EPOLLIN);
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
	free(cl);
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
	close(c->tfd);
	close(c->ep);
	close(c->lfd);
	unlink(c->path);
	free(c->path);
	free(c);
	d->ctl = NULL;
}

/* ---- what we know about vbds ---- */

static const char *vbd_phase_name(enum vbd_phase p)
{
	switch (p) {
	case VBD_NEW:
		return "new";
	case VBD_INITWAIT:
		return "initwait";
	case VBD_CONNECTED:
		return "connected";
	case VBD_CLOSING:
		return "closing";
	case VBD_CLOSED:
		return "closed";
	case VBD_FOREIGN:
		return "foreign";
	}
	return "?";
}

/* Names are read once per vbd and kept: list must not cost two xenstore
 * round trips per vbd each time. A name that is absent stays "". */
static const char *vbd_dom_name(struct vbd *v)
{
	char dir[40];

	if (!v->dom_name) {
		snprintf(dir, sizeof(dir), "/local/domain/%" PRIu32, v->fe_domid);
		if (xenbus_read(v->d, XBT_NULL, dir, XK_NAME, &v->dom_name) < 0)
			v->dom_name = strdup("");
	}
	return v->dom_name ? v->dom_name : "";
}

static const char *vbd_vdev_name(struct vbd *v)
{
	if (!v->vdev_name && xenbus_read(v->d, XBT_NULL, v->be_path, XK_DEV, &v->vdev_name) < 0)
		v->vdev_name = strdup("");
	return v->vdev_name ? v->vdev_name : "";
}

static uint64_t ring_answered(const struct ring_stats *s)
{
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < RING_OP_CLASSES; i++)
		n += atomic_load_explicit(&s->ops[i], memory_order_relaxed);
	return n;
}

static uint64_t vbd_answered(const struct vbd *v)
{
	uint64_t n = ring_answered(&v->released);
	unsigned int i;

	for (i = 0; i < v->nr_rings; i++)
		n += ring_answered(ring_get_stats(v->rings[i]));
	return n;
}

static unsigned int vbd_inflight(const struct vbd *v)
{
	unsigned int n = 0, i;

	for (i = 0; i < v->nr_rings; i++)
		n += atomic_load_explicit(&ring_get_stats(v->rings[i])->inflight,
					  memory_order_relaxed);
	return n;
}

/* Requests per second over the samples we have (up to five seconds). */
static double vbd_iops(const struct vbd *v)
{
	unsigned int n = v->iops_pos < CONTROL_IOPS_SAMPLES ? v->iops_pos : CONTROL_IOPS_SAMPLES;
	uint64_t newest, oldest;

	if (n < 2)
		return 0;
	newest = v->iops_done[(v->iops_pos - 1) % CONTROL_IOPS_SAMPLES];
	oldest = v->iops_done[(v->iops_pos - n) % CONTROL_IOPS_SAMPLES];
	/* Rings released and restarted count from zero again. */
	if (newest < oldest)
		return 0;
	return (double)(newest - oldest) / (n - 1);
}

static void control_sample(struct blkbackd *d)
{
	struct vbd *v;

	for (v = d->vbds; v; v = v->next) {
		v->iops_done[v->iops_pos % CONTROL_IOPS_SAMPLES] = vbd_answered(v);
		v->iops_pos++;
	}
}

/* ---- replies ---- */

static void jadd(struct json_object *o, const char *key, struct json_object *val)
{
	json_object_object_add(o, key, val);
}

static void jadd_str(struct json_object *o, const char *key, const char *val)
{
	jadd(o, key, json_object_new_string(val ? val : ""));
}

static void jadd_u64(struct json_object *o, const char *key, uint64_t val)
{
	jadd(o, key, json_object_new_uint64(val));
}

/* The columns of list; show and stats start from these too. */
static struct json_object *vbd_row(struct vbd *v)
{
	struct json_object *o = json_object_new_object();
	bool open = v->backing != NULL;

	jadd_u64(o, "domid", v->fe_domid);
	jadd_str(o, "domain", vbd_dom_name(v));
	jadd_u64(o, "devid", v->devid);
	jadd_str(o, "vdev", vbd_vdev_name(v));
	jadd_str(o, "phase", vbd_phase_name(v->phase));
	jadd_str(o, "backend_state", xenbus_state_name(v->seen_be_state));
	jadd_str(o, "frontend_state", xenbus_state_name(v->seen_fe_state));
	jadd_str(o, "target", open ? v->backing->path : "");
	jadd_u64(o, "sectors", open ? v->props.sectors : 0);
	jadd_u64(o, "size", open ? v->props.sectors << 9 : 0);
	jadd_str(o, "mode", !open ? "" : v->props.readonly ? "r" : "w");
	jadd_u64(o, "rings", v->nr_rings);
	if (v->nr_rings) {
		struct ring_info ri;

		ring_get_info(v->rings[0], &ri);
		jadd_u64(o, "ring_order", ri.order);
	} else {
		jadd_u64(o, "ring_order", 0);
	}
	jadd_u64(o, "inflight", vbd_inflight(v));
	jadd(o, "iops", json_object_new_double(vbd_iops(v)));
	return o;
}

static struct json_object *ring_detail(const struct vbd *v, const struct ring *r)
{
	const struct ring_stats *s = ring_get_stats(r);
	struct json_object *o = json_object_new_object(), *f;
	struct ring_info ri;
	const char *abi;

	ring_get_info(r, &ri);
	abi = blkif_abi_name(ri.abi);
	jadd_u64(o, "index", ri.index);
	jadd_u64(o, "order", ri.order);
	jadd_u64(o, "entries", ri.nr_ents);
	jadd_str(o, "abi", abi ? abi : "?");
	jadd_u64(o, "port", ri.port);
	jadd_u64(o, "remote_port", ri.remote_port);
	ring_stats_indexes_to_json(o, s);
	jadd_str(o, "step", ri.stopped ? "stopped" :
		 v->phase == VBD_CLOSING ? "draining" : "running");
	jadd(o, "journal", json_object_new_boolean(ri.journal));
	jadd(o, "recovered", json_object_new_boolean(ri.recovered));
	f = json_object_new_object();
	jadd(f, "flush", json_object_new_boolean(true));
	jadd(f, "barrier", json_object_new_boolean(true));
	jadd(f, "discard", json_object_new_boolean(v->props.discard));
	jadd(f, "discard_secure", json_object_new_boolean(v->props.discard_secure));
	jadd_u64(f, "max_indirect_segments", ri.max_indirect_segments);
	jadd(f, "persistent", json_object_new_boolean(ri.persistent));
	jadd(o, "features", f);
	jadd(o, "counters", ring_stats_to_json(s));
	return o;
}

static struct json_object *vbd_detail(struct vbd *v)
{
	struct json_object *o = vbd_row(v), *rings, *rec;
	unsigned int i;

	jadd_str(o, "backend_path", v->be_path);
	jadd_str(o, "frontend_path", v->fe_path);
	jadd_str(o, "error", v->last_error);
	jadd(o, "detach_requested", json_object_new_boolean(v->detach));
	jadd(o, "hotplug_connected", json_object_new_boolean(v->seen_hotplug_ok));
	rec = json_object_new_object();
	jadd_u64(rec, "count", v->recoveries);
	jadd_u64(rec, "last", (uint64_t)v->last_recovery);
	jadd_u64(rec, "reissued", v->reissued);
	jadd_u64(rec, "republished", v->republished);
	jadd_str(rec, "policy", v->recover_fail ? RECOVERY_FAIL : RECOVERY_REISSUE);
	jadd(o, "recovery", rec);
	if (v->backing) {
		jadd_u64(o, "sector_size", v->props.sector_size);
		jadd_u64(o, "physical_sector_size", v->props.phys_sector_size);
		jadd(o, "cdrom", json_object_new_boolean(v->props.cdrom));
		jadd(o, "direct_io", json_object_new_boolean(v->props.direct_io));
		jadd(o, "discard", json_object_new_boolean(v->props.discard));
	}
	rings = json_object_new_array();
	for (i = 0; i < v->nr_rings; i++)
		json_object_array_add(rings, ring_detail(v, v->rings[i]));
	jadd(o, "ring_list", rings);
	return o;
}

static struct json_object *vbd_stats(struct vbd *v)
{
	struct json_object *o = json_object_new_object(), *rings;
	struct ring_stats total;
	unsigned int i;

	/* Totals since the vbd appeared: they never go back when rings are
	 * released and started again (Prometheus counters must not). */
	memset(&total, 0, sizeof(total));
	ring_stats_add(&total, &v->released);
	for (i = 0; i < v->nr_rings; i++) {
		ring_stats_add(&total, ring_get_stats(v->rings[i]));
		ring_stats_add_gauges(&total, ring_get_stats(v->rings[i]));
	}

	jadd_u64(o, "domid", v->fe_domid);
	jadd_str(o, "domain", vbd_dom_name(v));
	jadd_u64(o, "devid", v->devid);
	jadd_str(o, "vdev", vbd_vdev_name(v));
	rings = json_object_new_array();
	for (i = 0; i < v->nr_rings; i++) {
		struct json_object *r = ring_stats_to_json(ring_get_stats(v->rings[i]));

		jadd_u64(r, "index", i);
		json_object_array_add(rings, r);
	}
	jadd(o, "ring_list", rings);
	jadd(o, "total", ring_stats_to_json(&total));
	return o;
}

/* ---- commands ---- */

static struct json_object *reply_new(void)
{
	struct json_object *o = json_object_new_object();

	jadd_u64(o, CONTROL_KEY_VERSION, CONTROL_VERSION);
	return o;
}

static struct json_object *reply_verror(enum control_error code, const char *fmt, va_list ap)
{
	struct json_object *o = reply_new();
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	jadd(o, CONTROL_KEY_OK, json_object_new_boolean(false));
	jadd_str(o, CONTROL_KEY_ERROR, msg);
	jadd_str(o, CONTROL_KEY_CODE, control_error_code(code));
	return o;
}

/* A failure that a client tells apart from others by its code. */
static struct json_object *reply_fail(enum control_error code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static struct json_object *reply_fail(enum control_error code, const char *fmt, ...)
{
	struct json_object *o;
	va_list ap;

	va_start(ap, fmt);
	o = reply_verror(code, fmt, ap);
	va_end(ap);
	return o;
}

/* The command failed (code "failed"). */
static struct json_object *reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct json_object *reply_error(const char *fmt, ...)
{
	struct json_object *o;
	va_list ap;

	va_start(ap, fmt);
	o = reply_verror(CONTROL_E_FAILED, fmt, ap);
	va_end(ap);
	return o;
}

static struct json_object *reply_ok(void)
{
	struct json_object *o = reply_new();

	jadd(o, CONTROL_KEY_OK, json_object_new_boolean(true));
	return o;
}

static bool is_visible(const struct vbd *v)
{
	return v->phase != VBD_FOREIGN;
}

static struct json_object *cmd_list(struct blkbackd *d, bool stats)
{
	struct json_object *o = reply_ok(), *arr = json_object_new_array();
	struct vbd *v;

	for (v = d->vbds; v; v = v->next)
		if (is_visible(v))
			json_object_array_add(arr, stats ? vbd_stats(v) : vbd_row(v));
	jadd(o, "vbds", arr);
	return o;
}

/* "domid" and "device" (devid number or vdev name) of a request. */
/* The vbd a show or detach request names; NULL with *ret_err the reply. */
static struct vbd *req_vbd(struct blkbackd *d, struct json_object *req,
			   struct json_object **ret_err)
{
	struct json_object *jd, *jv;
	const char *dev;
	struct vbd *v;
	int64_t domid;
	char *end;
	unsigned long devid = ULONG_MAX;

	if (!json_object_object_get_ex(req, CONTROL_KEY_DOMID, &jd) ||
	    !json_object_is_type(jd, json_type_int) ||
	    !json_object_object_get_ex(req, CONTROL_KEY_DEVICE, &jv) ||
	    !json_object_is_type(jv, json_type_string)) {
		*ret_err = reply_fail(CONTROL_E_BAD_REQUEST, "needs \"" CONTROL_KEY_DOMID
				      "\" (a number) and \"" CONTROL_KEY_DEVICE "\" (a string)");
		return NULL;
	}
	domid = json_object_get_int64(jd);
	dev = json_object_get_string(jv);
	if (*dev >= '0' && *dev <= '9') {
		errno = 0;
		devid = strtoul(dev, &end, 10);
		if (errno || *end)
			devid = ULONG_MAX;
	}
	for (v = d->vbds; v; v = v->next) {
		if (!is_visible(v) || (int64_t)v->fe_domid != domid)
			continue;
		if (devid != ULONG_MAX ? v->devid == devid : strcmp(vbd_vdev_name(v), dev) == 0)
			return v;
	}
	*ret_err = reply_fail(CONTROL_E_NO_VBD, "no vbd %" PRId64 "/%s", domid, dev);
	return NULL;
}

static struct json_object *cmd_show(struct blkbackd *d, struct json_object *req)
{
	struct json_object *o, *err;
	struct vbd *v = req_vbd(d, req, &err);

	if (!v)
		return err;
	o = reply_ok();
	jadd(o, "vbd", vbd_detail(v));
	return o;
}

/* The graceful path: the vbd closes as for online = 0 (stop, drain,
 * Closed); rings are released only once their in-flight I/O is answered.
 * Repeating the request reports progress; "done" says the vbd is Closed
 * and (unless force) the frontend has let go: it left Connected, or was
 * never connected in this round. */
static struct json_object *cmd_detach(struct blkbackd *d, struct json_object *req)
{
	struct json_object *o, *jf, *err;
	bool force = false;
	struct vbd *v = req_vbd(d, req, &err);

	if (!v)
		return err;
	if (json_object_object_get_ex(req, CONTROL_KEY_FORCE, &jf))
		force = json_object_get_boolean(jf);
	if (!v->detach) {
		unsigned int at_request = vbd_inflight(v);

		vbd_log(v, LOG_LEVEL_INFO, 0, "detach requested through the control socket%s, "
			"%u requests in flight", force ? " (force)" : "", at_request);
		v->detach = true;
		vbd_update(v);
		/* vbd_update may have released and forgotten it. */
		v = req_vbd(d, req, &err);
		if (!v) {
			json_object_put(err);
			o = reply_ok();
			jadd_u64(o, "inflight_at_request", at_request);
			jadd(o, "done", json_object_new_boolean(true));
			jadd_str(o, "phase", "released");
			jadd_u64(o, "inflight", 0);
			return o;
		}
		o = reply_ok();
		jadd_u64(o, "inflight_at_request", at_request);
	} else {
		o = reply_ok();
	}
	jadd(o, "done", json_object_new_boolean(vbd_is_detach_done(v, force)));
	jadd_str(o, "phase", vbd_phase_name(v->phase));
	jadd_str(o, "frontend_state", xenbus_state_name(v->seen_fe_state));
	jadd_u64(o, "inflight", vbd_inflight(v));
	return o;
}

/* The vbd that already has target read-write, or that has it at all when
 * we want it read-write (the storage decides what "the same" is: same
 * inode or device for files, same URI for exports). Only vbds past their
 * hotplug step count: the vbd being attached may have opened its storage
 * already. */
static struct vbd *target_conflict(struct blkbackd *d, const char *target, bool want_w)
{
	struct vbd *v;

	for (v = d->vbds; v; v = v->next) {
		if (!v->backing || !(v->seen_hotplug_ok || v->phase == VBD_CONNECTED ||
				     v->phase == VBD_CLOSING))
			continue;
		if (!io_backing_is_target(v->backing, target))
			continue;
		if (want_w || !v->props.readonly)
			return v;
	}
	return NULL;
}

static struct json_object *reply_in_use(const char *target, const struct vbd *v)
{
	return reply_error("%s: in use %s by domain %" PRIu32 " device %" PRIu32, target,
			   v->props.readonly ? "read-only" : "read-write", v->fe_domid, v->devid);
}

/* Remote storage is usable when it opens (an export answers the
 * handshake), for w is writable, and no client elsewhere writes it (a
 * Ceph image's lock owner); it closes again at once. */
static struct json_object *check_target_remote(struct blkbackd *d, const char *target,
					       bool want_w)
{
	struct io_backing *b;
	struct io_error err;
	struct vbd *v;
	int r;

	r = io_backing_open(target, want_w ? 0 : IO_BACKING_READ_ONLY, &b, &err);
	if (r < 0)
		return reply_error("%s: %s%s%s", target, strerror(-r), *err.msg ? ": " : "",
				   err.msg);
	r = io_backing_check_foreign(b, &err);
	io_backing_close(b);
	if (r < 0)
		return reply_error("%s: %s%s%s", target, strerror(-r), *err.msg ? ": " : "",
				   err.msg);
	v = target_conflict(d, target, want_w);
	return v ? reply_in_use(target, v) : reply_ok();
}

static struct json_object *cmd_check_target(struct blkbackd *d, struct json_object *req)
{
	struct json_object *jt, *jm;
	const char *target, *mode;
	bool want_w;
	struct stat st;
	struct vbd *v;
	int fd, ro = 0;

	if (!json_object_object_get_ex(req, CONTROL_KEY_TARGET, &jt) ||
	    !json_object_is_type(jt, json_type_string) ||
	    !json_object_object_get_ex(req, CONTROL_KEY_MODE, &jm) ||
	    !json_object_is_type(jm, json_type_string))
		return reply_fail(CONTROL_E_BAD_REQUEST, "needs \"" CONTROL_KEY_TARGET "\" and \""
				  CONTROL_KEY_MODE "\" strings");
	target = json_object_get_string(jt);
	mode = json_object_get_string(jm);
	if (strcmp(mode, "r") != 0 && strcmp(mode, "w") != 0)
		return reply_error("mode is r or w, not '%s'", mode);
	want_w = mode[0] == 'w';
	if (!io_target_is_local(target))
		return check_target_remote(d, target, want_w);
	if (target[0] != '/')
		return reply_error("%s: not an absolute path", target);
	if (stat(target, &st) < 0)
		return reply_error("%s: %s", target, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return reply_error("%s: not a regular file or block device", target);
	fd = open(target, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return reply_error("%s: not readable: %s", target, strerror(errno));
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKROGET, &ro) < 0)
		ro = 0;
	close(fd);
	if (want_w) {
		/* Root may write anything: a file nobody may write is meant
		 * to be read-only, so say so rather than open it rw. */
		if (ro)
			return reply_error("%s: block device is read-only", target);
		if (S_ISREG(st.st_mode) && !(st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)))
			return reply_error("%s: file is read-only (mode %03o)", target,
					   (unsigned int)(st.st_mode & 0777));
		fd = open(target, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return reply_error("%s: not writable: %s", target, strerror(errno));
		close(fd);
	}
	v = target_conflict(d, target, want_w);
	return v ? reply_in_use(target, v) : reply_ok();
}

/* Which process answers: an upgrade keeps the pid (exec), so clients tell
 * the old from the new by the instance, drawn at random at start. */
static void jadd_daemon(struct json_object *o, const struct blkbackd *d)
{
	char inst[20];
	unsigned int n = 0;
	const struct vbd *v;

	for (v = d->vbds; v; v = v->next)
		n += is_visible(v);
	snprintf(inst, sizeof(inst), "%016" PRIx64, d->instance);
	jadd_u64(o, "pid", (uint64_t)getpid());
	jadd_str(o, "daemon_version", PACKAGE_VERSION);
	jadd_str(o, "instance", inst);
	jadd_u64(o, "started", (uint64_t)d->started);
	jadd_u64(o, "vbds", n);
	jadd_str(o, "journal_dir", d->journal_dir ? d->journal_dir : "");
}

static struct json_object *cmd_status(struct blkbackd *d)
{
	struct json_object *o = reply_ok();

	jadd_daemon(o, d);
	return o;
}

/* Live upgrade: stop taking requests, let what is in flight finish, keep
 * every ring's journal, and exec the binary at our own path (a package
 * upgrade put the new one there); the new program takes the vbds over as
 * after a restart. The reply goes out before we exec. */
static struct json_object *cmd_upgrade(struct blkbackd *d)
{
	struct json_object *o;

	if (!d->exe_path)
		return reply_error("cannot upgrade: the path of the blkbackd binary is unknown");
	if (access(d->exe_path, X_OK) < 0)
		return reply_error("cannot upgrade: %s: %s", d->exe_path, strerror(errno));
	if (!d->journal_dir)
		return reply_error("cannot upgrade without journals (--journal-dir none)");
	log_info("upgrade requested through the control socket: exec %s", d->exe_path);
	d->upgrade = true;
	d->quitting = true;
	o = reply_ok();
	jadd_daemon(o, d);
	jadd_str(o, "exec", d->exe_path);
	return o;
}

struct json_object *control_handle(struct blkbackd *d, const char *line, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *req = NULL, *jv, *jc, *rep;
	const char *cmd;

	if (!tok)
		return reply_error("out of memory");
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (!req || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset != (int)len) {
		rep = reply_fail(CONTROL_E_BAD_REQUEST, "not a JSON object on one line");
		goto out;
	}
	if (!json_object_is_type(req, json_type_object)) {
		rep = reply_fail(CONTROL_E_BAD_REQUEST, "not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(req, CONTROL_KEY_VERSION, &jv) ||
	    !json_object_is_type(jv, json_type_int) ||
	    json_object_get_int64(jv) != CONTROL_VERSION) {
		rep = reply_fail(CONTROL_E_VERSION, "protocol version %d only", CONTROL_VERSION);
		goto out;
	}
	if (!json_object_object_get_ex(req, CONTROL_KEY_COMMAND, &jc) ||
	    !json_object_is_type(jc, json_type_string)) {
		rep = reply_fail(CONTROL_E_BAD_REQUEST, "no \"" CONTROL_KEY_COMMAND "\"");
		goto out;
	}
	cmd = json_object_get_string(jc);
	if (strcmp(cmd, CONTROL_CMD_LIST) == 0)
		rep = cmd_list(d, false);
	else if (strcmp(cmd, CONTROL_CMD_STATS) == 0)
		rep = cmd_list(d, true);
	else if (strcmp(cmd, CONTROL_CMD_SHOW) == 0)
		rep = cmd_show(d, req);
	else if (strcmp(cmd, CONTROL_CMD_DETACH) == 0)
		rep = cmd_detach(d, req);
	else if (strcmp(cmd, CONTROL_CMD_CHECK_TARGET) == 0)
		rep = cmd_check_target(d, req);
	else if (strcmp(cmd, CONTROL_CMD_STATUS) == 0)
		rep = cmd_status(d);
	else if (strcmp(cmd, CONTROL_CMD_UPGRADE) == 0)
		rep = cmd_upgrade(d);
	else
		rep = reply_fail(CONTROL_E_UNKNOWN_COMMAND, "unknown command '%.64s'", cmd);
out:
	json_object_put(req);
	json_tokener_free(tok);
	return rep;
}

/* ---- client I/O ---- */

static void client_set_events(struct control *c, struct client *cl)
{
	struct epoll_event ev = { .data.ptr = cl };

	/* One request at a time: no reading while a reply is pending. */
	ev.events = cl->out ? EPOLLOUT : EPOLLIN;
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

static void client_read(struct blkbackd *d, struct control *c, struct client *cl)
{
	char *nl;
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
	nl = memchr(cl->in, '\n', cl->in_len);
	if (!nl) {
		if (cl->in_len == sizeof(cl->in)) {
			/* No resynchronising inside a huge line: answer, hang up. */
			cl->close_after = true;
			client_reply(c, cl, reply_error("request longer than %d bytes",
							CONTROL_MAX_LINE - 1));
			client_write(c, cl);
		}
		return;
	}
	*nl = '\0';
	client_reply(c, cl, control_handle(d, cl->in, (size_t)(nl - cl->in)));
	/* What followed the line waits for the reply to be sent. */
	cl->in_len -= (size_t)(nl + 1 - cl->in);
	memmove(cl->in, nl + 1, cl->in_len);
	client_write(c, cl);
}

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS	59	/* Linux 4.13 */
#endif
#define CONTROL_MAX_PEER_GROUPS	1024

/* Peer credentials: root, or the configured group as the peer's primary
 * or (SO_PEERGROUPS) supplementary group, as it was when it connected. */
static bool control_peer_ok(const struct control *c, int fd, struct ucred *cred)
{
	gid_t groups[CONTROL_MAX_PEER_GROUPS];
	socklen_t len = sizeof(*cred);
	unsigned int i;

	memset(cred, 0, sizeof(*cred));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return false;
	if (cred->uid == 0)
		return true;
	if (!c->have_gid)
		return false;
	if (cred->gid == c->gid)
		return true;
	len = sizeof(groups);
	/* ERANGE (more groups than we look at) refuses: fail closed. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (i = 0; i < len / sizeof(groups[0]); i++)
		if (groups[i] == c->gid)
			return true;
	return false;
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
		cl->last = clock_mono_sec();
		cl->next = c->clients;
		c->clients = cl;
		c->nr_clients++;
		if (control_epoll_add(c, fd, cl, EPOLLIN) < 0) {
			client_drop(c, cl);
			continue;
		}
		if (!control_peer_ok(c, fd, &cred)) {
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
		/* A client that neither sends nor reads for this long goes. */
		if (now - cl->last > CONTROL_IDLE_SEC)
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
		void *tag = evs[i].data.ptr;
		struct client *cl;

		if (tag == &c->tag_listen) {
			control_accept(c);
		} else if (tag == &c->tag_timer) {
			if (read(c->tfd, &val, sizeof(val)) < 0) {
				/* EAGAIN: nothing expired */
			}
			control_sample(d);
			control_expire(c);
		} else {
			/* A client dropped earlier in this batch is not in the
			 * list any more: look it up before touching it. */
			for (cl = c->clients; cl && cl != tag; cl = cl->next)
				;
			if (!cl)
				continue;
			if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN))
				client_drop(c, cl);
			else if (cl->out)
				client_write(c, cl);
			else
				client_read(d, c, cl);
		}
	}
}
