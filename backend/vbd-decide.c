/* The vbd state machine's decision: one function per phase, each a row
 * group of the state table in vbd.c's head comment, from what xenstore
 * said and what the vbd holds to one action. Pure: vbd.c gathers the
 * input and carries the action out; tests/unit/check-vbd-decide.c walks
 * the table. */
#include "config.h"

#include <xen/io/xenbus.h>

#include "util.h"
#include "vbd-decide.h"

static struct vbd_decision act(enum vbd_action action)
{
	return (struct vbd_decision){ .action = action };
}

static struct vbd_decision release_then(enum vbd_action action)
{
	return (struct vbd_decision){ .action = action, .release = true };
}

/* The toolstack wants the vbd closed: online = 0, blkback-ctl detach, or
 * backend state 5 written over ours while we are NEW, InitWait or
 * Connected (in Closing and Closed, 5 is what we wrote ourselves). */
static bool is_toolstack_close(const struct vbd_input *in, const struct vbd_facts *f)
{
	if (in->online == 0 || f->detach)
		return true;
	return in->be_state == XenbusStateClosing &&
	       (f->phase == VBD_NEW || f->phase == VBD_INITWAIT || f->phase == VBD_CONNECTED);
}

/* The frontend is closing or gone: 5, 6, out of range, or Unknown after it
 * was once something (its dir or its domain vanished). */
static bool is_fe_closing(const struct vbd_input *in, const struct vbd_facts *f)
{
	return in->fe_state == XenbusStateClosing || in->fe_state == XenbusStateClosed ||
	       in->fe_state > XenbusStateReconfigured ||
	       (f->fe_seen && in->fe_state == XenbusStateUnknown);
}

/* Drained and released in Closing: the frontend let go of the ring (it is
 * Closed, gone, or started over from Initialising), so Closed is due.
 * Until then we stay Closing, as Linux does: OVMF and a kdump kernel's
 * xenbus_reset_frontend wait for exactly that state before their Closed. */
static bool is_fe_done(const struct vbd_input *in)
{
	return in->fe_state == XenbusStateClosed || in->fe_state == XenbusStateUnknown ||
	       in->fe_state == XenbusStateInitialising || in->fe_state == XenbusStateInitWait ||
	       in->fe_state > XenbusStateReconfigured;
}

static bool is_fe_ready(const struct vbd_input *in)
{
	return in->fe_state == XenbusStateInitialised || in->fe_state == XenbusStateConnected;
}

static struct vbd_decision decide_removed(const struct vbd_facts *f)
{
	/* Rings running, or still starting their engines: drain first. */
	if (f->phase == VBD_CONNECTED || (f->phase == VBD_INITWAIT && f->has_rings))
		return act(VBD_DO_STOP);
	if (f->phase == VBD_CLOSING) {
		if (!f->rings_stopped)
			return act(VBD_DO_NOTHING);
		return release_then(VBD_DO_FORGET);
	}
	return act(VBD_DO_FORGET);
}

/* After a restart the backend may read 4 or 5: an earlier blkbackd served
 * it. Its rings are taken over even when the toolstack is detaching, so
 * that what was in flight when that process died is answered before the
 * ring closes; unless the frontend let go meanwhile (orphaned). */
static struct vbd_decision decide_new(const struct vbd_input *in, const struct vbd_facts *f,
				      bool toolstack_close)
{
	bool was_serving = in->be_state == XenbusStateConnected ||
			   in->be_state == XenbusStateClosing;
	/* An unreadable frontend path is no evidence of an orphan: the
	 * takeover then fails (and says why) and is tried again. */
	bool orphaned = was_serving && in->fe_path_ok && in->fe_state != XenbusStateConnected;

	if (was_serving && !orphaned)
		return act(VBD_DO_TAKE_OVER);
	if (was_serving && in->be_state == XenbusStateClosing && in->online && !f->detach)
		return act(VBD_DO_KEEP_CLOSING);
	if (was_serving)
		return act(VBD_DO_CLOSE_ORPHAN);
	if (toolstack_close)
		return act(VBD_DO_CLOSE);
	return act(VBD_DO_CONFIGURE);
}

/* Taking over and asked to close: recover and answer what was in flight
 * first, then close the normal way. */
static struct vbd_decision decide_takeover_close(const struct vbd_input *in,
						 const struct vbd_facts *f)
{
	if (in->hotplug_ok && in->fe_state == XenbusStateConnected)
		return act(f->has_backing ? VBD_DO_TAKEOVER_START : VBD_DO_TAKEOVER_OPEN);
	if (f->has_rings)
		return act(VBD_DO_STOP);
	return act(VBD_DO_TAKEOVER_ABANDON);
}

static struct vbd_decision decide_initwait(const struct vbd_input *in, const struct vbd_facts *f,
					   bool toolstack_close)
{
	bool close = toolstack_close || is_fe_closing(in, f);

	if (close && f->takeover)
		return decide_takeover_close(in, f);
	/* Linux answers a frontend's Closing with Closing, and Closed only
	 * once the frontend is Closed. */
	if (close && !toolstack_close && in->fe_state == XenbusStateClosing)
		return act(VBD_DO_STOP);
	/* Rings still starting their engines: they drain like any. */
	if (close && f->has_rings)
		return act(VBD_DO_STOP);
	/* Never connected: nothing is mapped and nothing is owed, so the
	 * toolstack or a detach need not wait for a frontend that may never
	 * answer. */
	if (close)
		return act(VBD_DO_CLOSE);
	/* The frontend moved on while its rings started. */
	if (f->has_rings && !is_fe_ready(in))
		return act(VBD_DO_STOP);
	if (!in->hotplug_ok)
		return act(VBD_DO_NOTHING);	/* the script has not accepted the target */
	if (!f->has_backing)
		return act(VBD_DO_OPEN);
	/* A refused start is tried again when the frontend starts over,
	 * not at every event: its ring would be refused the same way. */
	if (is_fe_ready(in) && !f->start_refused)
		return act(VBD_DO_START);
	return act(VBD_DO_NOTHING);
}

static struct vbd_decision decide_connected(const struct vbd_input *in,
					    const struct vbd_facts *f, bool toolstack_close)
{
	if (toolstack_close || is_fe_closing(in, f) ||
	    in->fe_state == XenbusStateInitialising || in->fe_state == XenbusStateInitWait)
		return act(VBD_DO_DISCONNECT);
	return act(VBD_DO_NOTHING);
}

static struct vbd_decision decide_closing(const struct vbd_input *in, const struct vbd_facts *f)
{
	struct vbd_decision d;

	if (!f->rings_stopped)
		return act(VBD_DO_NOTHING);	/* the ring threads wake us */
	if (in->online == 0 || f->detach || is_fe_done(in))
		d = act(VBD_DO_FINISH_CLOSE);
	else if (in->be_state != XenbusStateClosing)
		d = act(VBD_DO_REWRITE_CLOSING);
	else
		d = act(VBD_DO_NOTHING);
	d.release = f->has_rings;
	return d;
}

/* A frontend that claims Connected while we are Closed stays Closed
 * until it starts over from Initialising. */
static struct vbd_decision decide_closed(const struct vbd_input *in, const struct vbd_facts *f,
					 bool toolstack_close)
{
	if (in->online && !toolstack_close &&
	    (in->fe_state == XenbusStateInitialising || in->fe_state == XenbusStateInitWait ||
	     in->fe_state == XenbusStateInitialised))
		return act(VBD_DO_CONFIGURE);
	if (in->be_state != XenbusStateClosed)
		return act(VBD_DO_REWRITE_CLOSED);
	return act(VBD_DO_NOTHING);
}

struct vbd_decision vbd_decide(const struct vbd_input *in, const struct vbd_facts *f)
{
	bool toolstack_close;

	if (!in->exists || f->be_dir_removed)
		return decide_removed(f);
	toolstack_close = is_toolstack_close(in, f);
	switch (f->phase) {
	case VBD_FOREIGN:
		return act(in->script_matches ? VBD_DO_CLAIM : VBD_DO_NOTHING);
	case VBD_NEW:
		return decide_new(in, f, toolstack_close);
	case VBD_INITWAIT:
		return decide_initwait(in, f, toolstack_close);
	case VBD_CONNECTED:
		return decide_connected(in, f, toolstack_close);
	case VBD_CLOSING:
		return decide_closing(in, f);
	case VBD_CLOSED:
		return decide_closed(in, f, toolstack_close);
	}
	return act(VBD_DO_NOTHING);
}

const char *vbd_action_name(enum vbd_action action)
{
	static const char *const names[] = {
		[VBD_DO_NOTHING] = "nothing",
		[VBD_DO_CLAIM] = "claim",
		[VBD_DO_TAKE_OVER] = "take-over",
		[VBD_DO_KEEP_CLOSING] = "keep-closing",
		[VBD_DO_CLOSE_ORPHAN] = "close-orphan",
		[VBD_DO_CLOSE] = "close",
		[VBD_DO_CONFIGURE] = "configure",
		[VBD_DO_TAKEOVER_OPEN] = "takeover-open",
		[VBD_DO_TAKEOVER_START] = "takeover-start",
		[VBD_DO_TAKEOVER_ABANDON] = "takeover-abandon",
		[VBD_DO_OPEN] = "open",
		[VBD_DO_START] = "start",
		[VBD_DO_STOP] = "stop",
		[VBD_DO_DISCONNECT] = "disconnect",
		[VBD_DO_FINISH_CLOSE] = "finish-close",
		[VBD_DO_REWRITE_CLOSING] = "rewrite-closing",
		[VBD_DO_REWRITE_CLOSED] = "rewrite-closed",
		[VBD_DO_FORGET] = "forget",
	};

	if ((unsigned int)action < ARRAY_SIZE(names) && names[action])
		return names[action];
	return "invalid";
}
