/* The control socket's replies and its views of the daemon, its vbds
 * and their rings, built with json-c. Ring counters are read, never
 * written, here; the keys of the views are documented in blkback-ctl(8). */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xen/io/xenbus.h>

#include "control-int.h"

/* ---- what we know about vbds ---- */

const char *vbd_phase_name(enum vbd_phase p)
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

const char *vbd_vdev_name(struct vbd *v)
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

unsigned int vbd_inflight(const struct vbd *v)
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

void control_sample(struct blkbackd *d)
{
	struct vbd *v;

	for (v = d->vbds; v; v = v->next) {
		v->iops_done[v->iops_pos % CONTROL_IOPS_SAMPLES] = vbd_answered(v);
		v->iops_pos++;
	}
}

/* ---- views ---- */

void jadd(struct json_object *o, const char *key, struct json_object *val)
{
	json_object_object_add(o, key, val);
}

void jadd_str(struct json_object *o, const char *key, const char *val)
{
	jadd(o, key, json_object_new_string(val ? val : ""));
}

void jadd_u64(struct json_object *o, const char *key, uint64_t val)
{
	jadd(o, key, json_object_new_uint64(val));
}

/* The columns of list; show and stats start from these too. */
struct json_object *vbd_row(struct vbd *v)
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

struct json_object *vbd_detail(struct vbd *v)
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

struct json_object *vbd_stats(struct vbd *v)
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

/* ---- replies ---- */

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

struct json_object *reply_fail(enum control_error code, const char *fmt, ...)
{
	struct json_object *o;
	va_list ap;

	va_start(ap, fmt);
	o = reply_verror(code, fmt, ap);
	va_end(ap);
	return o;
}

struct json_object *reply_error(const char *fmt, ...)
{
	struct json_object *o;
	va_list ap;

	va_start(ap, fmt);
	o = reply_verror(CONTROL_E_FAILED, fmt, ap);
	va_end(ap);
	return o;
}

struct json_object *reply_ok(void)
{
	struct json_object *o = reply_new();

	jadd(o, CONTROL_KEY_OK, json_object_new_boolean(true));
	return o;
}

bool is_visible(const struct vbd *v)
{
	return v->phase != VBD_FOREIGN;
}


/* Which process answers: an upgrade keeps the pid (exec), so clients tell
 * the old from the new by the instance, drawn at random at start. */
void jadd_daemon(struct json_object *o, const struct blkbackd *d)
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

