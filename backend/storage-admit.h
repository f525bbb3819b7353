/* The storage admission policy: whether a target may be given to a new
 * vbd (blkback-ctl check-target, the hotplug script's question). */
#ifndef BLKBACK_STORAGE_ADMIT_H
#define BLKBACK_STORAGE_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct blkbackd;
struct io_target_id;
struct vbd;

/* The part that may take seconds (an NBD handshake, an RBD open, a path
 * on a hung mount): opens target as a vbd would, for writing when
 * want_w, and closes it again; ret_id is what it opened, for
 * storage_admit_conflict. Reads no daemon state, so any thread may run
 * it. 0, or -errno with the reason, for a person, in msg. */
int storage_admit_probe(const char *target, bool want_w, struct io_target_id *ret_id,
			char *msg, size_t len);

/* Whether the asker (uid, gid and its supplementary groups) may learn
 * about target: root may; anyone else only about a path it could stat
 * itself, checked with its own credentials on the calling thread (which
 * must be a thread of its own: its file system identity changes for a
 * moment). URIs name no local path: anyone may ask. 0, or -errno with
 * what the asker's own stat said in msg. */
int storage_admit_visible(const char *target, uid_t uid, gid_t gid, const gid_t *groups,
			  unsigned int nr_groups, char *msg, size_t len);

/* Main thread: the vbd whose use of target (id: what the probe opened)
 * forbids this one (see storage-admit.c), or NULL. for_domid is the
 * domain asking, -1 when unknown. No system call on the storage. */
struct vbd *storage_admit_conflict(struct blkbackd *d, const char *target,
				   const struct io_target_id *id, bool want_w, int64_t for_domid);

#endif
