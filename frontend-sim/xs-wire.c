/* xenstore requests: checks each payload's shape, resolves its path and
 * transaction, runs it on the tree and queues the reply (or XS_ERROR with
 * the errno name) with the request's req_id and tx_id. Anything malformed
 * gets EINVAL; unknown or server-only types get ENOSYS. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#include "log.h"
#include "xensimd.h"

/* Domain ids from here up are Xen's reserved ones (DOMID_FIRST_RESERVED). */
#define XS_DOMID_RESERVED 0x7ff0u

struct xs_req {
	struct xs_conn *conn;
	struct xsd_sockmsg hdr;
	const char *payload;
	size_t len;
	struct xs_tx *tx;		/* the request's transaction, if any */
	struct xs_tree *tree;		/* tx's copy or the main tree */
	struct xs_op op;
};

static const char *xs_errno_name(int err)
{
	size_t i;

	for (i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
		if (xsd_errors[i].errnum == err)
			return xsd_errors[i].errstring;
	return "EINVAL";
}

static void xs_reply(struct xs_req *req, const void *data, size_t len)
{
	xs_conn_send(req->conn, req->hdr.type, req->hdr.req_id, req->hdr.tx_id, data, len);
}

static void xs_reply_error(struct xs_req *req, int r)
{
	const char *name = xs_errno_name(r < 0 ? -r : r);

	xs_conn_send(req->conn, XS_ERROR, req->hdr.req_id, req->hdr.tx_id,
		     name, strlen(name) + 1);
}

static void xs_reply_ok(struct xs_req *req)
{
	xs_reply(req, "OK", 3);
}

/* Splits the payload into NUL-terminated strings; all of it must be
 * strings (no trailing bytes). Returns their number, at most max. */
static int xs_req_strings(const struct xs_req *req, const char **vec, int max)
{
	size_t off = 0;
	int n = 0;

	while (off < req->len) {
		const char *nul = memchr(req->payload + off, '\0', req->len - off);

		if (!nul || n == max)
			return -EINVAL;
		vec[n++] = req->payload + off;
		off = nul - req->payload + 1;
	}
	return n;
}

/* Exactly n strings, or -EINVAL. */
static int xs_req_args(const struct xs_req *req, const char **vec, int n)
{
	return xs_req_strings(req, vec, n) == n ? 0 : -EINVAL;
}

static int xs_req_path(struct xs_req *req, char **ret)
{
	const char *arg;
	int r = xs_req_args(req, &arg, 1);

	return r < 0 ? r : xs_path_canonical(&req->conn->caller, arg, ret);
}

static int xs_parse_domid(const char *s, uint32_t *ret)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > UINT16_MAX)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int xs_do_read(struct xs_req *req)
{
	const char *val;
	char *path;
	size_t len;
	int r = xs_req_path(req, &path);

	if (r < 0)
		return r;
	r = xs_tree_read(req->tree, &req->op, path, &val, &len);
	if (r >= 0)
		xs_reply(req, val, len);
	free(path);
	return r;
}

static int xs_do_directory(struct xs_req *req)
{
	char *path, *buf = NULL;
	uint64_t gen;
	size_t len;
	int r = xs_req_path(req, &path);

	if (r < 0)
		return r;
	r = xs_tree_directory(req->tree, &req->op, path, &buf, &len, &gen);
	/* Too long for one reply: libxenstore then asks DIRECTORY_PART. */
	if (r >= 0 && len > XENSTORE_PAYLOAD_MAX)
		r = -E2BIG;
	if (r >= 0)
		xs_reply(req, buf, len);
	free(buf);
	free(path);
	return r;
}

/* Reply: "<gen>\0" then whole child names from byte offset <off> of the
 * child list, plus an extra "\0" once the list is complete. */
static int xs_do_directory_part(struct xs_req *req)
{
	char out[XENSTORE_PAYLOAD_MAX];
	const char *vec[2];
	char *path = NULL, *buf = NULL, *end;
	size_t len, off, pos, n;
	unsigned long v;
	uint64_t gen;
	int r;

	r = xs_req_args(req, vec, 2);
	if (r < 0)
		return r;
	if (vec[1][0] < '0' || vec[1][0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(vec[1], &end, 10);
	if (errno || *end)
		return -EINVAL;
	off = v;
	r = xs_path_canonical(&req->conn->caller, vec[0], &path);
	if (r < 0)
		return r;
	r = xs_tree_directory(req->tree, &req->op, path, &buf, &len, &gen);
	if (r < 0)
		goto out;
	n = snprintf(out, sizeof(out), "%" PRIu64, gen) + 1;
	if (off >= len) {
		out[n++] = '\0';
		xs_reply(req, out, n);
		goto out;
	}
	r = -EINVAL;
	if (off > 0 && buf[off - 1] != '\0')
		goto out;
	/* Whole names only, keeping one byte for the end marker. */
	for (pos = off; pos < len;) {
		size_t nl = strlen(buf + pos) + 1;

		if (n + (pos - off) + nl + 1 > sizeof(out))
			break;
		pos += nl;
	}
	memcpy(out + n, buf + off, pos - off);
	n += pos - off;
	if (pos == len)
		out[n++] = '\0';
	xs_reply(req, out, n);
	r = 0;
out:
	free(buf);
	free(path);
	return r;
}

static int xs_do_write(struct xs_req *req)
{
	const char *nul = memchr(req->payload, '\0', req->len);
	const char *val;
	char *path;
	size_t vlen;
	int r;

	if (!nul)
		return -EINVAL;
	val = nul + 1;
	vlen = req->len - (val - req->payload);
	r = xs_path_canonical(&req->conn->caller, req->payload, &path);
	if (r < 0)
		return r;
	r = xs_tree_write(req->tree, &req->op, path, val, vlen);
	if (r >= 0 && req->tx)
		xs_tx_log_write(req->tx, path, val, vlen);
	if (r >= 0)
		xs_reply_ok(req);
	free(path);
	return r;
}

static int xs_do_mkdir(struct xs_req *req)
{
	char *path;
	int r = xs_req_path(req, &path);

	if (r < 0)
		return r;
	r = xs_tree_mkdir(req->tree, &req->op, path);
	if (r >= 0 && req->tx)
		xs_tx_log_mkdir(req->tx, path);
	if (r >= 0)
		xs_reply_ok(req);
	free(path);
	return r;
}

static int xs_do_rm(struct xs_req *req)
{
	char *path;
	int r = xs_req_path(req, &path);

	if (r < 0)
		return r;
	r = xs_tree_rm(req->tree, &req->op, path);
	if (r >= 0 && req->tx)
		xs_tx_log_rm(req->tx, path);
	if (r >= 0)
		xs_reply_ok(req);
	free(path);
	return r;
}

static int xs_do_get_perms(struct xs_req *req)
{
	const struct xs_perms *perms;
	char buf[XENSTORE_PAYLOAD_MAX];
	const char *arg;
	char *path = NULL;
	size_t n;
	int r = xs_req_args(req, &arg, 1);

	if (r < 0)
		return r;
	if (arg[0] == '@') {
		perms = xs_server_special_perms(arg);
		if (!perms)
			return -ENOENT;
		if (!(xs_perms_for(perms, &req->conn->caller) & XS_PERM_READ))
			return -EACCES;
	} else {
		r = xs_path_canonical(&req->conn->caller, arg, &path);
		if (r < 0)
			return r;
		r = xs_tree_get_perms(req->tree, &req->op, path, &perms);
		if (r < 0)
			goto out;
	}
	n = xs_perms_format(perms, buf, sizeof(buf));
	if (n > sizeof(buf)) {
		r = -E2BIG;
		goto out;
	}
	xs_reply(req, buf, n);
out:
	free(path);
	return r;
}

static int xs_do_set_perms(struct xs_req *req)
{
	const char *nul = memchr(req->payload, '\0', req->len);
	struct xs_perms perms = { 0 }, *special;
	unsigned int nr = 0;
	const char *p, *list;
	char *path = NULL;
	int r;

	/* "<path>\0<perm>\0<perm>\0...": at least one perm, nothing else. */
	if (!nul || req->payload[req->len - 1] != '\0')
		return -EINVAL;
	list = nul + 1;
	for (p = list; p < req->payload + req->len; p++)
		if (*p == '\0')
			nr++;
	r = xs_perms_parse(list, req->payload + req->len - list, nr, &perms);
	if (r < 0)
		return r;
	if (req->payload[0] == '@') {
		special = xs_server_special_perms(req->payload);
		r = -ENOENT;
		if (!special)
			goto out;
		r = -EACCES;
		if ((xs_perms_for(special, &req->conn->caller) &
		     (XS_PERM_WRITE | XS_PERM_OWNER)) != (XS_PERM_WRITE | XS_PERM_OWNER))
			goto out;
		r = -ENOSPC;
		if (!req->conn->caller.privileged && nr > XS_QUOTA_PERMS)
			goto out;
		xs_perms_done(special);
		*special = perms;
		perms.v = NULL;
		xs_reply_ok(req);
		r = 0;
		goto out;
	}
	r = xs_path_canonical(&req->conn->caller, req->payload, &path);
	if (r < 0)
		goto out;
	r = xs_tree_set_perms(req->tree, &req->op, path, &perms);
	if (r >= 0 && req->tx)
		xs_tx_log_set_perms(req->tx, path, &perms);
	if (r >= 0)
		xs_reply_ok(req);
out:
	xs_perms_done(&perms);
	free(path);
	return r;
}

static int xs_do_watch(struct xs_req *req)
{
	struct xs_conn *conn = req->conn;
	struct xs_watch *w, *it;
	const char *vec[2];
	int r = xs_req_args(req, vec, 2);

	if (r < 0)
		return r;
	r = xs_watch_new(&conn->caller, vec[0], vec[1], &w);
	if (r < 0)
		return r;
	for (it = conn->watches; it; it = it->next) {
		if (strcmp(it->path, w->path) == 0 && strcmp(it->token, w->token) == 0) {
			xs_watch_free(w);
			return -EEXIST;
		}
	}
	if (!conn->caller.privileged &&
	    xs_server_count_watches(conn->caller.domid) >= XS_QUOTA_WATCHES) {
		xs_watch_free(w);
		return -E2BIG;
	}
	w->next = conn->watches;
	conn->watches = w;
	xs_reply_ok(req);
	/* xenstored fires once up front so clients need no special start. */
	xs_watch_send(conn, w, w->path + w->strip);
	return 0;
}

static int xs_do_unwatch(struct xs_req *req)
{
	struct xs_conn *conn = req->conn;
	struct xs_watch **pp, *key;
	const char *vec[2];
	int r = xs_req_args(req, vec, 2);

	if (r < 0)
		return r;
	r = xs_watch_new(&conn->caller, vec[0], vec[1], &key);
	if (r < 0)
		return r;
	r = -ENOENT;
	for (pp = &conn->watches; *pp; pp = &(*pp)->next) {
		struct xs_watch *w = *pp;

		if (strcmp(w->path, key->path) == 0 && strcmp(w->token, key->token) == 0) {
			*pp = w->next;
			xs_watch_free(w);
			r = 0;
			break;
		}
	}
	xs_watch_free(key);
	if (r >= 0)
		xs_reply_ok(req);
	return r;
}

static bool xs_conn_tx_id_used(const struct xs_conn *conn, uint32_t id)
{
	const struct xs_tx *tx;

	for (tx = conn->txs; tx; tx = tx->next)
		if (tx->id == id)
			return true;
	return false;
}

static int xs_do_transaction_start(struct xs_req *req)
{
	struct xs_conn *conn = req->conn;
	struct xs_tx *tx;
	char buf[16];
	uint32_t id;
	int r;

	if (req->tx)
		return -EBUSY;
	/* Each transaction copies the tree: the quota bounds what a guest
	 * can make us allocate. */
	if (!conn->caller.privileged &&
	    xs_server_count_txs(conn->caller.domid) >= XS_QUOTA_TRANSACTIONS)
		return -ENOSPC;
	do {
		id = ++conn->next_tx_id;
	} while (id == 0 || xs_conn_tx_id_used(conn, id));
	r = xs_tx_new(xs_server_tree(), id, &tx);
	if (r < 0)
		return r;
	tx->next = conn->txs;
	conn->txs = tx;
	xs_reply(req, buf, snprintf(buf, sizeof(buf), "%u", id) + 1);
	return 0;
}

static int xs_do_transaction_end(struct xs_req *req)
{
	struct xs_conn *conn = req->conn;
	struct xs_tx **pp;
	const char *arg;
	bool commit;
	int r = xs_req_args(req, &arg, 1);

	if (r < 0)
		return r;
	if (!req->tx)
		return -ENOENT;
	if (strcmp(arg, "T") == 0)
		commit = true;
	else if (strcmp(arg, "F") == 0)
		commit = false;
	else
		return -EINVAL;
	for (pp = &conn->txs; *pp != req->tx; pp = &(*pp)->next)
		;
	*pp = req->tx->next;
	if (commit)
		r = xs_tx_commit(req->tx, xs_server_tree(), &req->op);
	xs_tx_free(req->tx);
	req->tx = NULL;
	if (r >= 0)
		xs_reply_ok(req);
	return r;
}

static int xs_req_domid(struct xs_req *req, uint32_t *ret)
{
	const char *arg;
	int r = xs_req_args(req, &arg, 1);

	return r < 0 ? r : xs_parse_domid(arg, ret);
}

static int xs_do_get_domain_path(struct xs_req *req)
{
	char buf[32];
	uint32_t domid;
	int r = xs_req_domid(req, &domid);

	if (r < 0)
		return r;
	xs_reply(req, buf, snprintf(buf, sizeof(buf), "/local/domain/%u", domid) + 1);
	return 0;
}

static int xs_do_is_domain_introduced(struct xs_req *req)
{
	uint32_t domid;
	int r = xs_req_domid(req, &domid);

	if (r < 0)
		return r;
	xs_reply(req, domid == 0 || xs_server_domain_is_introduced(domid) ? "T" : "F", 2);
	return 0;
}

static int xs_do_introduce(struct xs_req *req)
{
	const char *vec[3];
	uint32_t domid;
	int r = xs_req_args(req, vec, 3);

	if (r < 0)
		return r;
	r = xs_parse_domid(vec[0], &domid);
	if (r < 0)
		return r;
	if (domid == 0 || domid >= XS_DOMID_RESERVED)
		return -EINVAL;
	/* No ring page or event channel here: the domain talks through its
	 * socket, so introducing it again is harmless. */
	r = xs_server_domain_introduce(domid);
	if (r < 0 && r != -EEXIST)
		return r;
	xs_reply_ok(req);
	return 0;
}

static int xs_do_release(struct xs_req *req)
{
	uint32_t domid;
	int r = xs_req_domid(req, &domid);

	if (r < 0)
		return r;
	if (domid == 0 || domid >= XS_DOMID_RESERVED)
		return -EINVAL;
	r = xs_server_domain_release(domid);
	if (r < 0)
		return r;
	xs_reply_ok(req);
	return 0;
}

static int xs_do_resume(struct xs_req *req)
{
	uint32_t domid;
	int r = xs_req_domid(req, &domid);

	if (r < 0)
		return r;
	if (!xs_server_domain_is_introduced(domid))
		return -ENOENT;
	xs_reply_ok(req);
	return 0;
}

static int xs_do_set_target(struct xs_req *req)
{
	const char *vec[2];
	uint32_t domid, target;
	int r = xs_req_args(req, vec, 2);

	if (r < 0)
		return r;
	if (xs_parse_domid(vec[0], &domid) < 0 || xs_parse_domid(vec[1], &target) < 0)
		return -EINVAL;
	if (!xs_server_domain_is_introduced(domid) || !xs_server_domain_is_introduced(target))
		return -ENOENT;
	/* Accepted but not modelled: no stub domains in the simulator. */
	xs_reply_ok(req);
	return 0;
}

static int xs_do_reset_watches(struct xs_req *req)
{
	xs_conn_reset(req->conn);
	xs_reply_ok(req);
	return 0;
}

static int xs_do_control(struct xs_req *req)
{
	const char *vec[2];
	int n = xs_req_strings(req, vec, 2);

	if (n < 1)
		return -EINVAL;
	if (strcmp(vec[0], "print") == 0 && n == 2) {
		log_info("xenstore control: %s", vec[1]);
		xs_reply_ok(req);
		return 0;
	}
	return -EINVAL;
}

struct xs_handler {
	int (*fn)(struct xs_req *req);
	bool priv;		/* dom0 only */
	bool tx;		/* honours tx_id */
};

static const struct xs_handler xs_handlers[XS_TYPE_COUNT] = {
	[XS_CONTROL] = { xs_do_control, true, false },
	[XS_DIRECTORY] = { xs_do_directory, false, true },
	[XS_READ] = { xs_do_read, false, true },
	[XS_GET_PERMS] = { xs_do_get_perms, false, true },
	[XS_WATCH] = { xs_do_watch, false, false },
	[XS_UNWATCH] = { xs_do_unwatch, false, false },
	[XS_TRANSACTION_START] = { xs_do_transaction_start, false, true },
	[XS_TRANSACTION_END] = { xs_do_transaction_end, false, true },
	[XS_INTRODUCE] = { xs_do_introduce, true, false },
	[XS_RELEASE] = { xs_do_release, true, false },
	[XS_GET_DOMAIN_PATH] = { xs_do_get_domain_path, false, false },
	[XS_WRITE] = { xs_do_write, false, true },
	[XS_MKDIR] = { xs_do_mkdir, false, true },
	[XS_RM] = { xs_do_rm, false, true },
	[XS_SET_PERMS] = { xs_do_set_perms, false, true },
	[XS_IS_DOMAIN_INTRODUCED] = { xs_do_is_domain_introduced, true, false },
	[XS_RESUME] = { xs_do_resume, true, false },
	[XS_SET_TARGET] = { xs_do_set_target, true, false },
	[XS_RESET_WATCHES] = { xs_do_reset_watches, false, false },
	[XS_DIRECTORY_PART] = { xs_do_directory_part, false, true },
};

static void xs_wire_fire(void *opaque, const char *path, const struct xs_perms *perms,
			 bool exact)
{
	xs_server_fire(path, perms, exact);
}

void xs_wire_handle(struct xs_conn *conn, const void *hdr, const char *payload)
{
	struct xs_req req = { .conn = conn, .payload = payload };
	const struct xs_handler *h = NULL;
	int r;

	memcpy(&req.hdr, hdr, sizeof(req.hdr));
	req.len = req.hdr.len;
	req.op.caller = conn->caller;
	req.op.change = xs_wire_fire;
	req.tree = xs_server_tree();
	if (req.hdr.type < XS_TYPE_COUNT)
		h = &xs_handlers[req.hdr.type];
	if (!h || !h->fn) {
		r = -ENOSYS;
		goto fail;
	}
	if (h->priv && !conn->caller.privileged) {
		r = -EACCES;
		goto fail;
	}
	if (h->tx && req.hdr.tx_id) {
		for (req.tx = conn->txs; req.tx; req.tx = req.tx->next)
			if (req.tx->id == req.hdr.tx_id)
				break;
		if (!req.tx) {
			r = -ENOENT;
			goto fail;
		}
		/* TRANSACTION_END commits to the main tree and fires. */
		if (req.hdr.type != XS_TRANSACTION_END) {
			xs_tx_op(req.tx, &req.op);
			req.tree = req.tx->tree;
		}
	}
	r = h->fn(&req);
	if (r >= 0)
		return;
fail:
	log_debug("xenstore: d%u request type %u: %s", conn->caller.domid,
		  req.hdr.type, xs_errno_name(-r));
	xs_reply_error(&req, r);
}
