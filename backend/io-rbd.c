/* Storage on a Ceph RBD image, through librbd: the backing opened from an
 * rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:id=USER][:conf=FILE][:mon_host=HOSTS]
 * target (QEMU's spelling), and the engine that serves a ring with an
 * image handle of its own. librbd does the I/O on its own threads; it
 * signals finished requests on an eventfd, which is the engine's fd, and
 * the ring thread collects them with rbd_poll_io_events(), so no callback
 * of ours ever runs on a librbd thread. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/features.h>
#include <rbd/librbd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io.h"

#define RBD_PREFIX "rbd:"

/* How long an open waits for the monitors (librados' client_mount_timeout,
 * in seconds): a cluster nobody answers for fails the open, as an NBD
 * server that never completes its handshake does. */
#define RBD_CONNECT_TIMEOUT_S "5"

/* How long one request may wait for the OSDs or the monitors before
 * librados fails it with ETIMEDOUT (rados_osd_op_timeout and
 * rados_mon_op_timeout, in seconds), where the Ceph configuration leaves
 * them unset (0: wait for ever). Without a bound, a cluster that is gone
 * keeps the guest's requests in the ring for ever. librados gives up on
 * the op itself, so librbd completes the request and no longer touches
 * its buffers: the ring answers with an error then, never before. */
#define RBD_OP_TIMEOUT_S "30"

/* Where a format 2 image keeps its exclusive lock: a cls_lock of this name
 * on its header object (Ceph's include/rbd_types.h, not installed). */
#define RBD_HEADER_PREFIX "rbd_header."
#define RBD_LOCK_NAME "rbd_lock"
#define RBD_ID_MAX 64
/* Lockers of one image: an exclusive lock has one, a broken-down
 * hand-over may leave a few; the lists are NUL-separated strings. */
#define RBD_LOCKERS_BUF 1024

/* Bounds on what the toolstack may write into a target, well above what
 * Ceph allows for pool and image names. */
#define RBD_NAME_MAX 256
#define RBD_TARGET_MAX 4096

/* Exclusive-lock owners read at most (there is one in practice). */
#define RBD_LOCK_OWNERS_MAX 8

/* Completions collected per rbd_poll_io_events() call. */
#define RBD_POLL_BATCH 64

static bool rbd_claims(const char *target)
{
	return strncmp(target, RBD_PREFIX, strlen(RBD_PREFIX)) == 0;
}

/* ---- the target ---- */

struct rbd_spec {
	char *pool, *nspace, *image, *snap;	/* nspace, snap: NULL if absent */
	char *id, *conf, *mon_host;		/* NULL if absent */
};

static void rbd_spec_free(struct rbd_spec *s)
{
	free(s->pool);
	free(s->nspace);
	free(s->image);
	free(s->snap);
	free(s->id);
	free(s->conf);
	free(s->mon_host);
	memset(s, 0, sizeof(*s));
}

/* Copies from *p up to the first unescaped character of stops (or the
 * end), dropping the backslash of each "\c", into a new string; *p is
 * left on the stop character. NULL on a trailing backslash or no memory. */
static char *rbd_take(const char **p, const char *stops)
{
	const char *s = *p;
	char *out, *o;

	out = o = malloc(strlen(s) + 1);
	if (!out)
		return NULL;
	while (*s && !strchr(stops, *s)) {
		if (*s == '\\') {
			if (!s[1]) {
				free(out);
				return NULL;
			}
			s++;
		}
		*o++ = *s++;
	}
	*o = '\0';
	*p = s;
	return out;
}

static bool rbd_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > RBD_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Parses target into s (freed by the caller, also on failure). QEMU's
 * syntax: ':' separates options, '@' the snapshot, '/' pool, namespace
 * and image; a backslash makes the next character plain. Unknown options
 * are refused rather than handed to librados as configuration: the
 * target comes from a guest's config, and the daemon's Ceph settings are
 * the operator's. */
static int rbd_spec_parse(const char *target, struct rbd_spec *s, struct io_error *err)
{
	const char *p = target + strlen(RBD_PREFIX);
	char *a = NULL, *b = NULL, *key = NULL, *val = NULL, **slot;
	int r = -EINVAL;

	memset(s, 0, sizeof(*s));
	if (strlen(target) > RBD_TARGET_MAX) {
		io_error_set(err, "the rbd target is longer than %d bytes", RBD_TARGET_MAX);
		return -EINVAL;
	}
	a = rbd_take(&p, "/@:");
	if (!a || *p != '/')
		goto bad_name;
	p++;
	b = rbd_take(&p, "/@:");
	if (!b)
		goto bad_name;
	if (*p == '/') {
		p++;
		s->nspace = b;
		b = NULL;
		s->image = rbd_take(&p, "/@:");
		if (!s->image || *p == '/')
			goto bad_name;
	} else {
		s->image = b;
		b = NULL;
	}
	s->pool = a;
	a = NULL;
	if (*p == '@') {
		p++;
		s->snap = rbd_take(&p, ":");
		if (!s->snap || !rbd_name_ok(s->snap))
			goto bad_name;
	}
	if (!rbd_name_ok(s->pool) || !rbd_name_ok(s->image) ||
	    (s->nspace && !rbd_name_ok(s->nspace)))
		goto bad_name;
	while (*p == ':') {
		p++;
		key = rbd_take(&p, "=:");
		if (!key || *p != '=') {
			io_error_set(err, "rbd option '%s' has no value", key ? key : "");
			goto out;
		}
		p++;
		val = rbd_take(&p, ":");
		if (!val || !rbd_name_ok(val)) {
			io_error_set(err, "rbd option %s has a bad value", key);
			goto out;
		}
		if (strcmp(key, "id") == 0) {
			slot = &s->id;
		} else if (strcmp(key, "conf") == 0) {
			slot = &s->conf;
			if (val[0] != '/') {
				io_error_set(err, "rbd conf=%s is not an absolute path", val);
				goto out;
			}
		} else if (strcmp(key, "mon_host") == 0) {
			slot = &s->mon_host;
		} else {
			io_error_set(err, "unknown rbd option '%s' (id, conf, mon_host)", key);
			goto out;
		}
		if (*slot) {
			io_error_set(err, "rbd option %s given twice", key);
			goto out;
		}
		*slot = val;
		val = NULL;
		free(key);
		key = NULL;
	}
	if (*p) {
		io_error_set(err, "unexpected '%c' in the rbd target", *p);
		goto out;
	}
	r = 0;
	goto out;

bad_name:
	io_error_set(err, "not rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:id=..][:conf=..][:mon_host=..]");
out:
	free(a);
	free(b);
	free(key);
	free(val);
	return r;
}

/* ---- clusters: one connection per cluster and user, shared ---- */

/* Every vbd on the same cluster as the same user shares one rados_t: each
 * connection has its own messenger threads and monitor session. Counted
 * by the backings that use it; the last one out shuts it down. */
struct rbd_cluster {
	struct rbd_cluster *next;
	char *key;			/* conf, id and mon_host, as given */
	rados_t rados;
	unsigned int users;
	/* The images rings have open for writing on this connection: while
	 * one has, a lock of this client on the image is alive. */
	pthread_mutex_t writers_lock;
	struct rbd_writers *writers;
};

/* Ring handles open for writing on one image, one connection. */
struct rbd_writers {
	struct rbd_writers *next;
	char *image;			/* pool/namespace/image */
	unsigned int handles;
};

static pthread_mutex_t clusters_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rbd_cluster *clusters;

static char *rbd_cluster_key(const struct rbd_spec *s)
{
	char *key;

	if (asprintf(&key, "%s\n%s\n%s", s->conf ? s->conf : "", s->id ? s->id : "",
		     s->mon_host ? s->mon_host : "") < 0)
		return NULL;
	return key;
}

/* Sets a duration option of librados to dflt where the configuration read
 * so far leaves it 0 (no bound): the operator's own value, from the
 * Ceph configuration file, wins. */
static int rbd_conf_default(rados_t r, const char *option, const char *dflt)
{
	char val[32];
	int rc;

	rc = rados_conf_get(r, option, val, sizeof(val));
	if (rc < 0)
		return rc;
	if (strtod(val, NULL) > 0)
		return 0;
	return rados_conf_set(r, option, dflt);
}

static int rbd_cluster_connect(const struct rbd_spec *s, rados_t *ret, struct io_error *err)
{
	char user[RBD_NAME_MAX + 8];
	rados_t r;
	int rc;

	snprintf(user, sizeof(user), "client.%s", s->id ? s->id : "admin");
	rc = rados_create2(&r, "ceph", user, 0);
	if (rc < 0) {
		io_error_set(err, "cannot create a Ceph client for %s", user);
		return rc;
	}
	/* Without conf=, the default search (CEPH_CONF, /etc/ceph/ceph.conf);
	 * a named file must be readable. */
	rc = rados_conf_read_file(r, s->conf);
	if (rc < 0 && s->conf) {
		io_error_set(err, "cannot read %s", s->conf);
		goto fail;
	}
	if (s->mon_host && (rc = rados_conf_set(r, "mon_host", s->mon_host)) < 0) {
		io_error_set(err, "bad mon_host '%s'", s->mon_host);
		goto fail;
	}
	/* librbd's cache lives in this process: a write it acknowledged
	 * would die with blkbackd (kill -9, a crash) although the guest was
	 * told it was done, and the recovery journal only replays requests
	 * the guest has not been answered. Writes are acknowledged once the
	 * OSDs have them, as a file's are once the page cache has them. */
	if ((rc = rados_conf_set(r, "rbd_cache", "false")) < 0 ||
	    (rc = rados_conf_set(r, "client_mount_timeout", RBD_CONNECT_TIMEOUT_S)) < 0 ||
	    (rc = rbd_conf_default(r, "rados_osd_op_timeout", RBD_OP_TIMEOUT_S)) < 0 ||
	    (rc = rbd_conf_default(r, "rados_mon_op_timeout", RBD_OP_TIMEOUT_S)) < 0) {
		io_error_set(err, "cannot configure the Ceph client");
		goto fail;
	}
	rc = rados_connect(r);
	if (rc < 0) {
		io_error_set(err, "cannot connect to the Ceph cluster as %s", user);
		goto fail;
	}
	*ret = r;
	return 0;
fail:
	rados_shutdown(r);
	return rc;
}

static int rbd_cluster_get(const struct rbd_spec *s, struct rbd_cluster **ret,
			   struct io_error *err)
{
	struct rbd_cluster *c;
	char *key;
	int r = 0;

	key = rbd_cluster_key(s);
	if (!key)
		return -ENOMEM;
	/* Connecting under the lock: two vbds of one cluster arriving at
	 * once share one connection instead of racing to make two. */
	pthread_mutex_lock(&clusters_lock);
	for (c = clusters; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			break;
	if (c) {
		free(key);
	} else {
		c = calloc(1, sizeof(*c));
		if (!c) {
			free(key);
			r = -ENOMEM;
			goto out;
		}
		c->key = key;
		pthread_mutex_init(&c->writers_lock, NULL);
		r = rbd_cluster_connect(s, &c->rados, err);
		if (r < 0) {
			pthread_mutex_destroy(&c->writers_lock);
			free(c->key);
			free(c);
			goto out;
		}
		c->next = clusters;
		clusters = c;
	}
	c->users++;
	*ret = c;
out:
	pthread_mutex_unlock(&clusters_lock);
	return r;
}

static void rbd_cluster_put(struct rbd_cluster *c)
{
	struct rbd_cluster **pp;

	if (!c)
		return;
	pthread_mutex_lock(&clusters_lock);
	if (--c->users == 0) {
		for (pp = &clusters; *pp != c; pp = &(*pp)->next)
			;
		*pp = c->next;
	} else {
		c = NULL;
	}
	pthread_mutex_unlock(&clusters_lock);
	if (c) {
		rados_shutdown(c->rados);
		pthread_mutex_destroy(&c->writers_lock);
		free(c->key);
		free(c);
	}
}

/* ---- the backing ---- */

struct rbd_backing {
	struct rbd_spec spec;
	struct rbd_cluster *cluster;
	rados_ioctx_t ioctx;		/* the pool (and namespace); NULL if not open */
	/* Held open for the size: librbd refreshes it when the image's
	 * header changes, and tells us through the update watch. */
	rbd_image_t image;		/* NULL if not open */
	bool watching;
	uint64_t watch;
	atomic_bool header_changed;	/* set on a librbd thread, */
	_Atomic uint64_t size_seen;	/* ... after this */
	uint64_t features;
	uint64_t object_size;
	char *writers_key;		/* pool/namespace/image */
	char *header_oid;		/* carries the exclusive lock; NULL: none */
};

static struct rbd_backing *rbd_backing_of(const struct io_backing *b)
{
	return b->priv;
}

/* Opens the image as the backing's mode says: read-only for mode=r and
 * for every snapshot (a snapshot cannot be written). */
static int rbd_image_open(const struct io_backing *b, rbd_image_t *ret)
{
	const struct rbd_backing *rb = rbd_backing_of(b);

	if (b->read_only || rb->spec.snap)
		return rbd_open_read_only(rb->ioctx, rb->spec.image, ret, rb->spec.snap);
	return rbd_open(rb->ioctx, rb->spec.image, ret, NULL);
}

/* The image's header object, which carries its exclusive lock, and the
 * key its writers are counted under. */
static int rbd_name_lock_object(struct rbd_backing *rb)
{
	char id[RBD_ID_MAX];
	int r;

	if (asprintf(&rb->writers_key, "%s/%s/%s", rb->spec.pool,
		     rb->spec.nspace ? rb->spec.nspace : "", rb->spec.image) < 0) {
		rb->writers_key = NULL;
		return -ENOMEM;
	}
	if (!(rb->features & RBD_FEATURE_EXCLUSIVE_LOCK))
		return 0;
	r = rbd_get_id(rb->image, id, sizeof(id));
	if (r < 0)
		return r;
	if (asprintf(&rb->header_oid, "%s%s", RBD_HEADER_PREFIX, id) < 0) {
		rb->header_oid = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* On a librbd thread, when the image's header changed: the size is read
 * here (rbd-nbd does the same in its notification), so that the owner's
 * resize check, on its main thread, never waits for the cluster. */
static void rbd_header_update(void *arg)
{
	struct rbd_backing *rb = arg;
	uint64_t size;

	if (rbd_get_size(rb->image, &size) < 0)
		return;
	atomic_store(&rb->size_seen, size);
	atomic_store(&rb->header_changed, true);
}

static int rbd_open_backing(struct io_backing *b, unsigned int flags, struct io_error *err)
{
	struct rbd_backing *rb;
	rbd_image_info_t info;
	uint32_t lbs = flags & IO_BACKING_SECTOR_4K ? 4096 : 512;
	uint64_t size;
	int r;

	b->direct = false;
	rb = calloc(1, sizeof(*rb));
	if (!rb)
		return -ENOMEM;
	b->priv = rb;
	r = rbd_spec_parse(b->path, &rb->spec, err);
	if (r < 0)
		return r;
	if (rb->spec.snap && !b->read_only) {
		io_error_set(err, "snapshot %s is read-only", rb->spec.snap);
		return -EROFS;
	}
	r = rbd_cluster_get(&rb->spec, &rb->cluster, err);
	if (r < 0)
		return r;
	r = rados_ioctx_create(rb->cluster->rados, rb->spec.pool, &rb->ioctx);
	if (r < 0) {
		rb->ioctx = NULL;
		io_error_set(err, "pool %s", rb->spec.pool);
		return r;
	}
	if (rb->spec.nspace)
		rados_ioctx_set_namespace(rb->ioctx, rb->spec.nspace);
	r = rbd_image_open(b, &rb->image);
	if (r < 0) {
		rb->image = NULL;
		io_error_set(err, "image %s%s%s", rb->spec.image, rb->spec.snap ? "@" : "",
			     rb->spec.snap ? rb->spec.snap : "");
		return r;
	}
	if ((r = rbd_get_size(rb->image, &size)) < 0 ||
	    (r = rbd_stat(rb->image, &info, sizeof(info))) < 0 ||
	    (r = rbd_get_features(rb->image, &rb->features)) < 0) {
		io_error_set(err, "cannot read the image's size and features");
		return r;
	}
	rb->object_size = info.obj_size;
	r = rbd_name_lock_object(rb);
	if (r < 0) {
		io_error_set(err, "cannot read the image's id");
		return r;
	}
	if (rbd_update_watch(rb->image, &rb->watch, rbd_header_update, rb) == 0)
		rb->watching = true;
	b->size = size;
	b->logical_sector_size = lbs;
	b->physical_sector_size = 4096;
	b->dio_align = 1;
	/* A discard frees space only for whole objects (librbd skips the
	 * parts of others by default): the granule is the object. */
	if (!b->read_only) {
		b->can_discard = true;
		b->discard_granularity = rb->object_size >= 4096 && rb->object_size <= UINT32_MAX / 2 ?
			(uint32_t)rb->object_size : 4096;
		b->discard_alignment = 0;
	}
	return 0;
}

/* Also undoes a failed open. */
static void rbd_close_backing(struct io_backing *b)
{
	struct rbd_backing *rb = b->priv;

	if (!rb)
		return;
	if (rb->watching)
		rbd_update_unwatch(rb->image, rb->watch);
	if (rb->image)
		rbd_close(rb->image);
	if (rb->ioctx)
		rados_ioctx_destroy(rb->ioctx);
	rbd_cluster_put(rb->cluster);
	rbd_spec_free(&rb->spec);
	free(rb->writers_key);
	free(rb->header_oid);
	free(rb);
	b->priv = NULL;
}

/* The size the header notification read: no call into librbd here, which
 * may wait for the cluster. Without the notification (librbd refused the
 * watch) a resize is not noticed. */
static int rbd_refresh_size(struct io_backing *b)
{
	struct rbd_backing *rb = rbd_backing_of(b);
	uint64_t size;

	if (!rb->watching || !atomic_exchange(&rb->header_changed, false))
		return 0;
	size = atomic_load(&rb->size_seen);
	if (size == b->size)
		return 0;
	b->size = size;
	return 1;
}

/* Two spellings of one image (another conf=, a namespace given as the
 * default) are not recognised as one. */
static bool rbd_is_target(const struct io_backing *b, const char *target,
			  const struct io_target_id *id)
{
	(void)id;
	return strcmp(b->path, target) == 0;
}

/* One ring for an image that is written: each ring writes through an
 * image handle of its own, and librbd's exclusive lock moves between the
 * handles of one process whenever another ring writes. With two rings a
 * 4 KiB random write ran at 0.34-0.43x of one ring's rate; reads (a
 * snapshot, mode=r) take no lock and gain from more rings. */
static unsigned int rbd_max_queues(const char *target, bool read_only)
{
	return read_only || strchr(target, '@') ? 0 : 1;
}

/* Every exclusive-lock owner other than our own connection is another
 * client writing the image: another host, or an rbd map. Ours (a vbd of
 * this daemon on the same cluster connection) is left to the caller's
 * own sharing rules. A snapshot never changes, so it is anyone's to read. */
static int rbd_check_foreign(const struct io_backing *b, struct io_error *err)
{
	const struct rbd_backing *rb = rbd_backing_of(b);
	char *owners[RBD_LOCK_OWNERS_MAX], *ours = NULL;
	size_t n = RBD_LOCK_OWNERS_MAX, i;
	rbd_lock_mode_t mode;
	int r;

	if (rb->spec.snap || !(rb->features & RBD_FEATURE_EXCLUSIVE_LOCK))
		return 0;
	r = rbd_lock_get_owners(rb->image, &mode, owners, &n);
	if (r == -ENOENT)
		return 0;	/* nobody holds it */
	if (r < 0) {
		io_error_set(err, "cannot read the image's lock owners");
		return r;
	}
	if (rados_getaddrs(rb->cluster->rados, &ours) < 0)
		ours = NULL;
	r = 0;
	for (i = 0; i < n && r == 0; i++) {
		if (ours && strcmp(owners[i], ours) == 0)
			continue;
		io_error_set(err, "image locked for writing by another Ceph client (%s)", owners[i]);
		r = -EBUSY;
	}
	if (ours)
		rados_buffer_free(ours);
	rbd_lock_get_owners_cleanup(owners, n);
	return r;
}

/* ---- the engine ---- */

struct rbd_engine {
	rbd_image_t image;		/* this ring's own handle; NULL if not open */
	struct rbd_writers *writers;	/* counted there while open for writing */
	int evfd;			/* librbd's notification, the engine fd */
	unsigned int outstanding;	/* handed to librbd, not yet polled */
	struct io_op *batch, **batch_tail;
	struct io_op *failed, **failed_tail;	/* refused by librbd at issue */
};

static void op_list_add(struct io_op ***tail, struct io_op *op)
{
	op->next = NULL;
	**tail = op;
	*tail = &op->next;
}

/* Breaks every lock this very connection holds on the image. Only called
 * when none of its handles has the image open for writing, so each such
 * lock is stale: a handle closed while the cluster was unreachable could
 * not release it. librbd would otherwise try to break it itself, refuse
 * to blocklist its own client, and fail every write with EINVAL for as
 * long as this connection lives. No blocklisting is needed: the holder is
 * this process, and it holds nothing of the image now. */
static void rbd_break_own_locks(const struct rbd_backing *rb)
{
	char tag[RBD_LOCKERS_BUF], clients[RBD_LOCKERS_BUF], cookies[RBD_LOCKERS_BUF];
	char addrs[RBD_LOCKERS_BUF], me[32];
	size_t tag_len = sizeof(tag), clients_len = sizeof(clients);
	size_t cookies_len = sizeof(cookies), addrs_len = sizeof(addrs);
	const char *client = clients, *cookie = cookies;
	int exclusive;
	ssize_t n, i;

	if (!rb->header_oid)
		return;
	n = rados_list_lockers(rb->ioctx, rb->header_oid, RBD_LOCK_NAME, &exclusive, tag, &tag_len,
			       clients, &clients_len, cookies, &cookies_len, addrs, &addrs_len);
	snprintf(me, sizeof(me), "client.%" PRIu64, rados_get_instance_id(rb->cluster->rados));
	for (i = 0; i < n; i++) {
		if (strcmp(client, me) == 0)
			rados_break_lock(rb->ioctx, rb->header_oid, RBD_LOCK_NAME, client, cookie);
		client += strlen(client) + 1;
		cookie += strlen(cookie) + 1;
	}
}

/* Counts a ring handle about to open for writing; the first one breaks
 * what stale locks of this connection it finds. */
static int rbd_writers_enter(const struct rbd_backing *rb, struct rbd_writers **ret)
{
	struct rbd_cluster *c = rb->cluster;
	struct rbd_writers *w;
	int r = 0;

	pthread_mutex_lock(&c->writers_lock);
	for (w = c->writers; w && strcmp(w->image, rb->writers_key) != 0; w = w->next)
		;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w || !(w->image = strdup(rb->writers_key))) {
			free(w);
			r = -ENOMEM;
			goto out;
		}
		w->next = c->writers;
		c->writers = w;
	}
	if (w->handles++ == 0)
		rbd_break_own_locks(rb);
	*ret = w;
out:
	pthread_mutex_unlock(&c->writers_lock);
	return r;
}

static void rbd_writers_leave(struct rbd_cluster *c, struct rbd_writers *w)
{
	struct rbd_writers **pp;

	pthread_mutex_lock(&c->writers_lock);
	if (--w->handles == 0) {
		for (pp = &c->writers; *pp != w; pp = &(*pp)->next)
			;
		*pp = w->next;
		free(w->image);
		free(w);
	}
	pthread_mutex_unlock(&c->writers_lock);
}

static int rbd_engine_init(struct io_engine *e, struct io_error *err)
{
	struct rbd_engine *n;
	int r;

	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->evfd = -1;
	n->batch_tail = &n->batch;
	n->failed_tail = &n->failed;
	e->priv = n;
	n->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->evfd < 0)
		return -errno;
	if (!e->backing->read_only && !rbd_backing_of(e->backing)->spec.snap) {
		r = rbd_writers_enter(rbd_backing_of(e->backing), &n->writers);
		if (r < 0)
			return r;
	}
	r = rbd_image_open(e->backing, &n->image);
	if (r < 0) {
		n->image = NULL;
		io_error_set(err, "cannot open the image for a ring");
		return r;
	}
	r = rbd_set_image_notification(n->image, n->evfd, EVENT_TYPE_EVENTFD);
	if (r < 0) {
		io_error_set(err, "cannot register the completion eventfd");
		return r;
	}
	return 0;
}

static void rbd_signal(struct rbd_engine *n)
{
	uint64_t one = 1;

	if (write(n->evfd, &one, sizeof(one)) < 0) {
		/* Only fails when the counter is full: it is readable then. */
	}
}

/* Releases what librbd has finished, without telling anyone; returns how
 * many. */
static unsigned int rbd_drain_quietly(struct rbd_engine *n)
{
	rbd_completion_t comps[RBD_POLL_BATCH];
	unsigned int total = 0;
	int got, i;

	while ((got = rbd_poll_io_events(n->image, comps, RBD_POLL_BATCH)) > 0) {
		for (i = 0; i < got; i++)
			rbd_aio_release(comps[i]);
		total += (unsigned int)got;
	}
	return total;
}

/* Also undoes a failed init. Requests still at librbd are waited for
 * (their callbacks not run): their buffers are the caller's to free once
 * we return. */
static void rbd_engine_done(struct io_engine *e)
{
	struct rbd_engine *n = e->priv;
	struct pollfd pfd;
	uint64_t cnt;

	if (!n)
		return;
	if (n->image) {
		while (n->outstanding) {
			pfd.fd = n->evfd;
			pfd.events = POLLIN;
			if (poll(&pfd, 1, 1000) > 0 && read(n->evfd, &cnt, sizeof(cnt)) < 0) {
				/* Empty: the completions are polled below anyway. */
			}
			n->outstanding -= rbd_drain_quietly(n);
		}
		rbd_close(n->image);
	}
	if (n->writers)
		rbd_writers_leave(rbd_backing_of(e->backing)->cluster, n->writers);
	if (n->evfd >= 0)
		close(n->evfd);
	free(n);
	e->priv = NULL;
}

static void rbd_engine_queue(struct io_engine *e, struct io_op *op)
{
	struct rbd_engine *n = e->priv;

	op_list_add(&n->batch_tail, op);
}

/* Hands one op to librbd; 0 or -errno (then librbd does not have it). */
static int rbd_issue(struct rbd_engine *n, struct io_op *op)
{
	rbd_completion_t c;
	int r;

	r = rbd_aio_create_completion(op, NULL, &c);
	if (r < 0)
		return r;
	switch (op->type) {
	case IO_OP_READ:
		r = rbd_aio_readv(n->image, op->iov, (int)op->iovcnt, op->offset + op->done, c);
		break;
	case IO_OP_WRITE:
		r = rbd_aio_writev(n->image, op->iov, (int)op->iovcnt, op->offset + op->done, c);
		break;
	case IO_OP_FLUSH:
		r = rbd_aio_flush(n->image, c);
		break;
	case IO_OP_DISCARD:
		r = rbd_aio_discard(n->image, op->offset, op->len, c);
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0) {
		rbd_aio_release(c);
		return r;
	}
	n->outstanding++;
	return 0;
}

static int rbd_engine_submit(struct io_engine *e)
{
	struct rbd_engine *n = e->priv;
	struct io_op *op, *next;
	int count = 0, r;

	op = n->batch;
	n->batch = NULL;
	n->batch_tail = &n->batch;
	for (; op; op = next) {
		next = op->next;
		r = rbd_issue(n, op);
		if (r < 0) {
			op->result = r;
			op_list_add(&n->failed_tail, op);
		}
		count++;
	}
	if (n->failed)
		rbd_signal(n);
	return count;
}

/* librbd's result as io_op_finish() wants it: the bytes that remained for
 * reads and writes (librbd does a request in full or fails it), 0 for
 * flush and discard. */
static int rbd_result(const struct io_op *op, ssize_t r)
{
	if (r < 0)
		return (int)r;
	if (op->type == IO_OP_READ || op->type == IO_OP_WRITE)
		return (int)(op->len - op->done);
	return 0;
}

static int rbd_engine_reap(struct io_engine *e)
{
	struct rbd_engine *n = e->priv;
	rbd_completion_t comps[RBD_POLL_BATCH];
	struct io_op *list, *op;
	uint64_t cnt;
	int got, i, total = 0;
	ssize_t res;

	/* Read first: a completion that lands after the poll below writes
	 * the eventfd again, so none is left unseen. */
	if (read(n->evfd, &cnt, sizeof(cnt)) < 0) {
		/* Empty: nothing new, or another reap took it. */
	}
	while ((got = rbd_poll_io_events(n->image, comps, RBD_POLL_BATCH)) > 0) {
		for (i = 0; i < got; i++) {
			op = rbd_aio_get_arg(comps[i]);
			res = rbd_aio_get_return_value(comps[i]);
			rbd_aio_release(comps[i]);
			n->outstanding--;
			io_op_finish(e, op, rbd_result(op, res));
		}
		total += got;
		if (got < RBD_POLL_BATCH)
			break;
	}
	if (got < 0)
		return got;
	list = n->failed;
	n->failed = NULL;
	n->failed_tail = &n->failed;
	return total + io_op_finish_list(e, list);
}

static int rbd_engine_fd(const struct io_engine *e)
{
	const struct rbd_engine *n = e->priv;

	return n->evfd;
}

const struct io_provider io_provider_rbd = {
	.name = "rbd",
	.claims = rbd_claims,
	.max_queues = rbd_max_queues,
	.open = rbd_open_backing,
	.close = rbd_close_backing,
	.refresh_size = rbd_refresh_size,
	.is_target = rbd_is_target,
	.check_foreign = rbd_check_foreign,
	.init = rbd_engine_init,
	.done = rbd_engine_done,
	.queue = rbd_engine_queue,
	.submit = rbd_engine_submit,
	.reap = rbd_engine_reap,
	.fd = rbd_engine_fd,
};
