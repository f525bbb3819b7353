/* The control socket's commands: a request line in, its reply out. Each
 * command is a handler in the table at the end; they read the daemon's
 * state and, for detach and upgrade, ask it to act. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xen/io/xenbus.h>

#include "control-int.h"
#include "storage-admit.h"

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

/* The vbd a show or detach request names by "domid" and "device" (devid
 * number or vdev name); NULL with *ret_err the reply. */
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

static struct json_object *cmd_show(struct blkbackd *d, struct json_object *req,
					const struct control_call *call)
{
	struct json_object *o, *err;
	struct vbd *v = req_vbd(d, req, &err);

	(void)call;
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
static struct json_object *cmd_detach(struct blkbackd *d, struct json_object *req,
					const struct control_call *call)
{
	struct json_object *o, *jf, *err;
	bool force = false;
	struct vbd *v = req_vbd(d, req, &err);

	(void)call;
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

static struct json_object *reply_in_use(const char *target, const struct vbd *v)
{
	return reply_error("%s: in use %s by domain %" PRIu32 " device %" PRIu32, target,
			   v->props.readonly ? "read-only" : "read-write", v->fe_domid, v->devid);
}

/* check-target's question, carried to a worker thread and back. */
struct check_target {
	char *target;
	bool want_w;
	int64_t for_domid;
	uid_t uid;			/* who asks */
	gid_t gid;
	gid_t *groups;
	unsigned int nr_groups;
	int result;
	struct io_target_id id;		/* what the probe opened */
	char msg[512];
};

/* The slow part: the asker's view of the path, then the open. */
static void check_target_run(void *arg)
{
	struct check_target *ct = arg;

	ct->result = storage_admit_visible(ct->target, ct->uid, ct->gid, ct->groups,
					   ct->nr_groups, ct->msg, sizeof(ct->msg));
	if (ct->result >= 0)
		ct->result = storage_admit_probe(ct->target, ct->want_w, &ct->id, ct->msg,
						 sizeof(ct->msg));
}

/* The vbds are looked at on the main thread, as they are when it answers. */
static struct json_object *check_target_finish(struct blkbackd *d, void *arg)
{
	struct check_target *ct = arg;
	struct vbd *v;

	if (ct->result < 0)
		return reply_error("%s", ct->msg);
	v = storage_admit_conflict(d, ct->target, &ct->id, ct->want_w, ct->for_domid);
	return v ? reply_in_use(ct->target, v) : reply_ok();
}

static void check_target_release(void *arg)
{
	struct check_target *ct = arg;

	free(ct->target);
	free(ct->groups);
	free(ct);
}

static const struct control_work check_target_work = {
	.run = check_target_run,
	.finish = check_target_finish,
	.release = check_target_release,
};

static struct json_object *cmd_check_target(struct blkbackd *d, struct json_object *req,
					    const struct control_call *call)
{
	struct json_object *jt, *jm, *jd;
	const char *target, *mode;
	struct check_target *ct;

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
	ct = calloc(1, sizeof(*ct));
	if (!ct)
		return reply_error("out of memory");
	ct->want_w = mode[0] == 'w';
	ct->for_domid = -1;
	/* The domain the new vbd is for, when the caller knows it. */
	if (json_object_object_get_ex(req, CONTROL_KEY_DOMID, &jd)) {
		if (!json_object_is_type(jd, json_type_int) || json_object_get_int64(jd) < 0 ||
		    json_object_get_int64(jd) > UINT32_MAX) {
			free(ct);
			return reply_fail(CONTROL_E_BAD_REQUEST, "\"" CONTROL_KEY_DOMID
					  "\" is a domain number");
		}
		ct->for_domid = json_object_get_int64(jd);
	}
	ct->target = strdup(target);
	if (call && call->nr_groups) {
		ct->groups = calloc(call->nr_groups, sizeof(gid_t));
		if (ct->groups)
			memcpy(ct->groups, call->groups, call->nr_groups * sizeof(gid_t));
	}
	if (!ct->target || (call && call->nr_groups && !ct->groups)) {
		check_target_release(ct);
		return reply_error("out of memory");
	}
	/* A harness (no call) asks as root. */
	ct->uid = call ? call->uid : 0;
	ct->gid = call ? call->gid : 0;
	ct->nr_groups = call ? call->nr_groups : 0;
	return control_defer(d, call, &check_target_work, ct);
}

static struct json_object *cmd_status(struct blkbackd *d, struct json_object *req,
					const struct control_call *call)
{
	(void)req;
	(void)call;
	struct json_object *o = reply_ok();

	jadd_daemon(o, d);
	return o;
}

/* Live upgrade: stop taking requests, let what is in flight finish, keep
 * every ring's journal, and exec the binary at our own path (a package
 * upgrade put the new one there); the new program takes the vbds over as
 * after a restart. The reply goes out before we exec. */
static struct json_object *cmd_upgrade(struct blkbackd *d, struct json_object *req,
					const struct control_call *call)
{
	struct json_object *o;

	(void)req;
	(void)call;
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

static struct json_object *cmd_list_vbds(struct blkbackd *d, struct json_object *req,
					const struct control_call *call)
{
	(void)req;
	(void)call;
	return cmd_list(d, false);
}

static struct json_object *cmd_list_stats(struct blkbackd *d, struct json_object *req,
					const struct control_call *call)
{
	(void)req;
	(void)call;
	return cmd_list(d, true);
}

static const struct control_command {
	const char *name;
	struct json_object *(*handle)(struct blkbackd *d, struct json_object *req,
				     const struct control_call *call);
} commands[] = {
	{ CONTROL_CMD_LIST, cmd_list_vbds },
	{ CONTROL_CMD_STATS, cmd_list_stats },
	{ CONTROL_CMD_SHOW, cmd_show },
	{ CONTROL_CMD_DETACH, cmd_detach },
	{ CONTROL_CMD_CHECK_TARGET, cmd_check_target },
	{ CONTROL_CMD_STATUS, cmd_status },
	{ CONTROL_CMD_UPGRADE, cmd_upgrade },
};

struct json_object *control_handle(struct blkbackd *d, const char *line, size_t len,
				   const struct control_call *call)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *req = NULL, *jv, *jc, *rep;
	const char *cmd;
	size_t i;

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
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			break;
	if (i < sizeof(commands) / sizeof(commands[0]))
		rep = commands[i].handle(d, req, call);
	else
		rep = reply_fail(CONTROL_E_UNKNOWN_COMMAND, "unknown command '%.64s'", cmd);
out:
	json_object_put(req);
	json_tokener_free(tok);
	return rep;
}
