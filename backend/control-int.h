/* Shared by the control socket's files: control.c (the socket server),
 * control-json.c (replies and the views of vbds and rings) and
 * control-cmd.c (the command handlers). */
#ifndef BLKBACK_CONTROL_INT_H
#define BLKBACK_CONTROL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "blkbackd.h"
#include "control-proto.h"

/* ---- control-json.c: replies ---- */

/* {"version": 1, "ok": true} */
struct json_object *reply_ok(void);
/* A failure that a client tells apart from others by its code. */
struct json_object *reply_fail(enum control_error code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The command failed (code "failed"). */
struct json_object *reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void jadd(struct json_object *o, const char *key, struct json_object *val);
void jadd_str(struct json_object *o, const char *key, const char *val);
void jadd_u64(struct json_object *o, const char *key, uint64_t val);

/* ---- control-json.c: what we know about vbds ---- */

/* Not one of ours (another backend's): hidden from every command. */
bool is_visible(const struct vbd *v);
const char *vbd_phase_name(enum vbd_phase p);
const char *vbd_vdev_name(struct vbd *v);
unsigned int vbd_inflight(const struct vbd *v);
/* Once a second: the samples vbd_iops averages. */
void control_sample(struct blkbackd *d);
/* list's row, show's detail, stats' counters. */
struct json_object *vbd_row(struct vbd *v);
struct json_object *vbd_detail(struct vbd *v);
struct json_object *vbd_stats(struct vbd *v);
/* status and upgrade: which process answers. */
void jadd_daemon(struct json_object *o, const struct blkbackd *d);

#endif
