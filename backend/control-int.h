/* Shared by the control socket's files: control.c (the socket server),
 * control-json.c (replies and the views of vbds and rings) and
 * control-cmd.c (the command handlers). */
#ifndef BLKBACK_CONTROL_INT_H
#define BLKBACK_CONTROL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "blkbackd.h"
#include "control-proto.h"

/* ---- control.c: the server ---- */

/* Who asked, and how to answer later: a request's client (by its epoll
 * tag, never reused) and the peer's credentials as it connected. */
struct control_call {
	struct control *c;		/* NULL: no socket (a harness) */
	uint64_t client_id;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;		/* supplementary, for a non-root peer */
	unsigned int nr_groups;
};

struct control_worker *control_worker(struct control *c);
/* A deferred reply: sent to the client, or dropped when it left. */
void control_answer(struct blkbackd *d, uint64_t client_id, struct json_object *rep);

/* ---- control-worker.c: replies that come later ---- */

/* run on a worker thread (touches no daemon state), then finish on the
 * main thread (the reply), then release (frees arg) in every case. */
struct control_work {
	void (*run)(void *arg);
	struct json_object *(*finish)(struct blkbackd *d, void *arg);
	void (*release)(void *arg);
};

struct control_worker;
struct control_worker *control_worker_new(void);
/* Readable when a job finished: control_worker_collect. */
int control_worker_fd(const struct control_worker *w);
void control_worker_collect(struct blkbackd *d, struct control_worker *w);
void control_worker_free(struct control_worker *w);
/* For a handler: NULL (the reply comes later) or the reply now (work
 * done inline without a socket, or refused). arg is released either way. */
struct json_object *control_defer(struct blkbackd *d, const struct control_call *call,
				  const struct control_work *work, void *arg);

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
