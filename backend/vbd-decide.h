/* The vbd state machine's decision, apart from everything it acts on:
 * what both ends of xenstore said and what the vbd holds go in, one
 * action comes out. Pure (no xenstore, no rings, no logging), so that the
 * table in vbd.c's head comment is tested row by row in tests/unit. */
#ifndef BLKBACKD_VBD_DECIDE_H
#define BLKBACKD_VBD_DECIDE_H

#include <stdbool.h>

enum vbd_phase {
	VBD_NEW,	/* claimed, storage closed, nothing published */
	VBD_INITWAIT,	/* storage open, probe keys written, state 2 */
	VBD_CONNECTED,	/* rings running, state 4 */
	VBD_CLOSING,	/* state 5: rings draining, then released; waits
			 * for the frontend's Closed (or the toolstack) */
	VBD_CLOSED,	/* rings released, state 6; may reconnect */
	VBD_FOREIGN,	/* not ours (script names another handler) */
};

/* What xenstore said, read afresh on every step. */
struct vbd_input {
	bool exists;			/* the backend dir */
	unsigned long long online;	/* absent or garbage: 1 */
	unsigned int be_state;		/* absent or garbage: Unknown */
	unsigned int fe_state;		/* absent, garbage or no frontend: Unknown */
	bool hotplug_ok;		/* hotplug-status is "connected" */
	bool script_matches;		/* the script node names us (read when FOREIGN) */
	/* the backend's frontend node names a dir of the frontend domain
	 * (read when NEW finds the backend Connected or Closing) */
	bool fe_path_ok;
};

/* What the vbd holds. */
struct vbd_facts {
	enum vbd_phase phase;
	bool be_dir_removed;	/* seen removed before (a write found it gone) */
	bool detach;		/* blkback-ctl detach */
	bool takeover;		/* configured to take an earlier process's rings over */
	bool fe_seen;		/* the frontend's state read as something once */
	bool has_backing;	/* the storage is open */
	bool has_rings;		/* rings are mapped */
	bool rings_stopped;	/* every mapped ring has drained (true with none) */
	bool start_refused;	/* the rings were refused in the frontend's current state */
};

enum vbd_action {
	VBD_DO_NOTHING,
	VBD_DO_CLAIM,		/* FOREIGN -> NEW */
	VBD_DO_TAKE_OVER,	/* configure without a state write -> INITWAIT */
	VBD_DO_KEEP_CLOSING,	/* -> CLOSING: an earlier process's Closing goes on */
	VBD_DO_CLOSE_ORPHAN,	/* served before a restart, frontend let go: write 6 */
	VBD_DO_CLOSE,		/* never connected: write 6 -> CLOSED */
	VBD_DO_CONFIGURE,	/* probe keys, write 2 -> INITWAIT */
	VBD_DO_TAKEOVER_OPEN,	/* taking over: open the storage first */
	VBD_DO_TAKEOVER_START,	/* taking over: recover the rings -> CONNECTED */
	VBD_DO_TAKEOVER_ABANDON, /* closing, the rings cannot be taken over */
	VBD_DO_OPEN,		/* open the storage (off the main thread) */
	VBD_DO_START,		/* map the rings, publish Connected */
	VBD_DO_STOP,		/* stop the rings, write 5 -> CLOSING */
	VBD_DO_DISCONNECT,	/* as STOP, from CONNECTED, said in the log */
	VBD_DO_FINISH_CLOSE,	/* drained: write 6 -> CLOSED */
	VBD_DO_REWRITE_CLOSING,	/* the toolstack overwrote our 5 */
	VBD_DO_REWRITE_CLOSED,	/* the toolstack overwrote our 6 */
	VBD_DO_FORGET,		/* backend dir removed: close storage, drop the vbd */
};

struct vbd_decision {
	enum vbd_action action;
	bool release;		/* unbind and unmap the drained rings first */
};

struct vbd_decision vbd_decide(const struct vbd_input *in, const struct vbd_facts *f);
const char *vbd_action_name(enum vbd_action action);

#endif
