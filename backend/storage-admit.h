/* The storage admission policy: whether a target may be given to a new
 * vbd (blkback-ctl check-target, the hotplug script's question). */
#ifndef BLKBACK_STORAGE_ADMIT_H
#define BLKBACK_STORAGE_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blkbackd;
struct vbd;

/* The part that may take seconds (an NBD handshake, an RBD open, a path
 * on a hung mount): opens target as a vbd would, for writing when
 * want_w, and closes it again. Reads no daemon state, so any thread may
 * run it. 0, or -errno with the reason, for a person, in msg. */
int storage_admit_probe(const char *target, bool want_w, char *msg, size_t len);

/* Main thread: the vbd whose use of target forbids this one (see
 * storage-admit.c), or NULL. for_domid is the domain asking, -1 when
 * unknown. */
struct vbd *storage_admit_conflict(struct blkbackd *d, const char *target, bool want_w,
				   int64_t for_domid);

#endif
