/* Frontend personalities: the xenbus rules of frontends other than Linux's
 * xen-blkfront, each as strict as that frontend's own code. The small
 * connect-time differences (keys read or written) sit beside Linux's in
 * blkfront-xenbus.c; this file holds the dances that differ as a whole:
 * the kdump kernel's reset of a crashed kernel's connection, and the
 * shutdowns of OVMF and Mini-OS, each after their cache sync.
 *
 *   ovmf     XenPvBlkDxe waits for an exact backend state and fails on a
 *            later one: Closing, then Closed, then anything <= InitWait
 *            or >= Closed after its Initialising.
 *   kdump    xenbus_reset_frontend waits 5 s for exactly Closing, Closed,
 *            InitWait in turn; a miss costs those 5 s (we count it).
 *   minios   Closing, Closed compared with <; after Initialising it waits,
 *            without a limit, for the backend to come back to InitWait. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <xen/io/xenbus.h>

#include "blkfront.h"
#include "log.h"

/* Ids of the sync requests: outside the workload's (sequence << 16 | slot). */
#define SYNC_ID_BARRIER	0xffffffff0001ull
#define SYNC_ID_FLUSH	0xffffffff0002ull

int bf_personality_parse(const char *name, enum bf_personality *ret)
{
	unsigned int i;

	for (i = 0; i < BF_PERS_MAX; i++)
		if (strcmp(name, bf_personality_name((enum bf_personality)i)) == 0) {
			*ret = (enum bf_personality)i;
			return 0;
		}
	return -EINVAL;
}

/* A guest's vCPU may be descheduled between writing its state and
 * reading the backend's (OVMF under TCG, a kdump kernel on a loaded
 * host): the pause makes the backend's answer decide, not who wins the
 * race to xenstore. */
static void vcpu_pause(void)
{
	struct timespec ts = { 0, 200 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static bool st_is_closing(int st) { return st == XenbusStateClosing; }
static bool st_is_closed(int st) { return st == XenbusStateClosed; }
static bool st_is_initwait(int st) { return st == XenbusStateInitWait; }
static bool st_closing_or_later(int st) { return st == 0 || st >= XenbusStateClosing; }
static bool st_closed_or_later(int st) { return st == 0 || st >= XenbusStateClosed; }
static bool st_ovmf_reopened(int st)
{
	return st <= XenbusStateInitWait || st >= XenbusStateClosed;
}
static bool st_minios_reopened(int st)
{
	return st == 0 || (st >= XenbusStateInitWait && st < XenbusStateClosed);
}

int bf_personality_kdump_reset(struct bf_dev *dev)
{
	int fe = bf_xenbus_fe_state_get(dev), be = bf_xenbus_be_state_get(dev);
	static const struct {
		int write;
		bf_state_pred *pred;
		const char *want;
	} steps[] = {
		{ XenbusStateClosing, st_is_closing, "Closing" },
		{ XenbusStateClosed, st_is_closed, "Closed" },
		{ XenbusStateInitialising, st_is_initwait, "InitWait" },
	};
	unsigned int i;
	int ret;

	/* xenbus_check_frontend resets only a frontend Connected or Closed
	 * whose backend is still Connected: the crashed kernel's disk. */
	if ((fe != XenbusStateConnected && fe != XenbusStateClosed) ||
	    be != XenbusStateConnected)
		return 0;
	log_info("kdump: resetting the crashed kernel's connection (frontend %s)",
		 xenbus_state_name(fe));
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		ret = bf_xenbus_fe_state_set(dev, steps[i].write);
		if (ret < 0)
			return ret;
		vcpu_pause();
		ret = bf_xenbus_wait_state(dev, steps[i].pred, 5.0, steps[i].want);
		if (ret == -ETIMEDOUT)
			bf_fail(dev, "kdump: the backend never showed %s (now %s): "
				"xenbus_reset_frontend loses 5 s on this disk", steps[i].want,
				xenbus_state_name(dev->be_state));
		else if (ret < 0)
			return ret;
	}
	return 0;
}

struct sync_wait {
	unsigned int left;
};

static void sync_on_rsp(struct bf_dev *dev, struct bf_slot *slot,
			const struct blkif_rsp *rsp, void *opaque)
{
	struct sync_wait *w = opaque;

	if (slot || (rsp->id != SYNC_ID_BARRIER && rsp->id != SYNC_ID_FLUSH)) {
		bf_fail(dev, "sync: unexpected response id %#" PRIx64, rsp->id);
		return;
	}
	if (rsp->status != BLKIF_RSP_OKAY)
		bf_fail(dev, "sync: %s answered %d: the guest's cache may not be on disk",
			rsp->id == SYNC_ID_BARRIER ? "barrier" : "flush", rsp->status);
	if (w->left)
		w->left--;
}

static int sync_push(struct bf_dev *dev, uint8_t op, uint64_t id)
{
	struct blkif_req req;

	memset(&req, 0, sizeof(req));
	req.operation = op;
	req.nr_segments = 0;
	req.handle = (uint16_t)dev->devid;
	req.id = id;
	req.sector_number = 0;
	return bf_ring_submit_raw(dev, &req);
}

/* OVMF's XenPvBlockSync and Mini-OS's blkfront_sync: on a writable disk a
 * barrier and a flush without data, as the backend offers them, then
 * wait for the ring to be empty. */
static void personality_sync(struct bf_dev *dev)
{
	struct sync_wait w = { 0 };
	uint64_t deadline;

	if (!dev->connected || dev->be_closing || dev->be.info & VDISK_READONLY)
		return;
	if (dev->be.feature_barrier && sync_push(dev, BLKIF_OP_WRITE_BARRIER, SYNC_ID_BARRIER) == 0)
		w.left++;
	if (dev->be.feature_flush && sync_push(dev, BLKIF_OP_FLUSH_DISKCACHE, SYNC_ID_FLUSH) == 0)
		w.left++;
	if (!w.left)
		return;
	bf_ring_push(dev);
	deadline = bf_now_ns() + (uint64_t)(dev->opts->timeout * 1e9);
	while (w.left && !dev->be_closing && bf_now_ns() < deadline) {
		bf_ring_consume(dev, sync_on_rsp, &w);
		if (w.left)
			bf_ring_wait(dev, 50);
	}
	if (w.left)
		bf_fail(dev, "sync: %u of the barrier and flush unanswered", w.left);
}

static void ovmf_close(struct bf_dev *dev)
{
	int st;

	personality_sync(dev);
	dev->connected = false;
	if (bf_xenbus_fe_state_set(dev, XenbusStateClosing) < 0)
		goto out;
	vcpu_pause();
	/* XenPvBlkWaitForBackendState(Closing): a later state is FAIL. */
	st = bf_xenbus_wait_state(dev, st_closing_or_later, dev->opts->timeout, "follow Closing");
	if (st != XenbusStateClosing) {
		bf_fail(dev, "ovmf: backend is %s where XenPvBlkDxe waits for exactly Closing: "
			"its shutdown fails and leaves the disk half closed for the OS",
			st < 0 ? "not answering" : xenbus_state_name(st));
		goto out;
	}
	if (bf_xenbus_fe_state_set(dev, XenbusStateClosed) < 0)
		goto out;
	st = bf_xenbus_wait_state(dev, st_closed_or_later, dev->opts->timeout, "close");
	if (st != XenbusStateClosed) {
		bf_fail(dev, "ovmf: backend is %s, not Closed",
			st < 0 ? "not answering" : xenbus_state_name(st));
		goto out;
	}
	if (bf_xenbus_fe_state_set(dev, XenbusStateInitialising) < 0)
		goto out;
	bf_xenbus_wait_state(dev, st_ovmf_reopened, dev->opts->timeout, "reopen");
out:
	bf_xenbus_fe_key_rm(dev, XK_RING_REF);
	bf_xenbus_fe_key_rm(dev, XK_EVENT_CHANNEL);
	bf_xenbus_fe_key_rm(dev, XK_PROTOCOL);
}

static void minios_close(struct bf_dev *dev)
{
	int st;

	personality_sync(dev);
	dev->connected = false;
	if (bf_xenbus_fe_state_set(dev, XenbusStateClosing) < 0)
		goto out;
	st = bf_xenbus_wait_state(dev, st_closing_or_later, dev->opts->timeout, "follow Closing");
	if (st == -ETIMEDOUT)
		bf_fail(dev, "minios: backend did not follow Closing (Mini-OS waits for ever)");
	if (bf_xenbus_fe_state_set(dev, XenbusStateClosed) < 0)
		goto out;
	st = bf_xenbus_wait_state(dev, st_closed_or_later, dev->opts->timeout, "close");
	if (st == -ETIMEDOUT)
		bf_fail(dev, "minios: backend did not reach Closed (Mini-OS waits for ever)");
	if (bf_xenbus_fe_state_set(dev, XenbusStateInitialising) < 0)
		goto out;
	/* Mini-OS's shutdown_blkfront returns only once the backend is
	 * ready again: a backend that stays Closed hangs the unikernel. */
	st = bf_xenbus_wait_state(dev, st_minios_reopened, dev->opts->timeout, "go InitWait");
	if (st == -ETIMEDOUT)
		bf_fail(dev, "minios: backend stayed %s after our Initialising: "
			"shutdown_blkfront would wait for ever", xenbus_state_name(dev->be_state));
out:
	bf_xenbus_fe_key_rm(dev, XK_RING_REF);
	bf_xenbus_fe_key_rm(dev, XK_EVENT_CHANNEL);
}

bool bf_personality_close(struct bf_dev *dev)
{
	int fe;

	if (dev->opts->personality != BF_PERS_OVMF && dev->opts->personality != BF_PERS_MINIOS)
		return false;
	fe = bf_xenbus_fe_state_get(dev);
	/* Never got as far as a ring: nothing to close. */
	if (fe != XenbusStateInitialised && fe != XenbusStateConnected)
		return true;
	dev->stop = false;	/* a signal must not cut the close short */
	if (dev->opts->personality == BF_PERS_OVMF)
		ovmf_close(dev);
	else
		minios_close(dev);
	return true;
}
