/* The storage admission policy: may this target serve a new vbd? It
 * must open as a vbd would open it (exist, be a regular file, a block
 * device or an export that answers, be writable for w) and no vbd already
 * serving it may forbid the sharing. The open is the slow part and runs
 * wherever the caller likes (the control socket runs it on a worker);
 * the conflict check reads the vbds, on the main thread. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <xen/io/xenbus.h>

#include "blkbackd.h"
#include "storage-admit.h"

/* Domains a and b are one VM: their vm nodes (/vm/<uuid>) are present and
 * equal, as for the two domains of an xl migrate to the same host. */
static bool same_vm(struct blkbackd *d, uint32_t a, uint32_t b)
{
	char pa[64], pb[64], *va = NULL, *vb = NULL;
	bool same;

	snprintf(pa, sizeof(pa), "/local/domain/%" PRIu32 "/vm", a);
	snprintf(pb, sizeof(pb), "/local/domain/%" PRIu32 "/vm", b);
	same = xenbus_read(d, XBT_NULL, pa, NULL, &va) == 0 &&
	       xenbus_read(d, XBT_NULL, pb, NULL, &vb) == 0 && *va && strcmp(va, vb) == 0;
	free(va);
	free(vb);
	return same;
}

/* The vbd that already has target read-write, or that has it at all when
 * we want it read-write (the storage decides what "the same" is: same
 * inode or device for files, same URI for exports). Only vbds past their
 * hotplug step count: the vbd being attached may have opened its storage
 * already. A vbd of another domain of the requester's VM (for_domid, -1:
 * unknown) is no conflict: during a migration to the same host both
 * domains have the disk, one of them paused, as Xen's block script
 * allows. */
struct vbd *storage_admit_conflict(struct blkbackd *d, const char *target,
				   const struct io_target_id *id, bool want_w, int64_t for_domid)
{
	struct vbd *v;

	for (v = d->vbds; v; v = v->next) {
		if (!v->backing || !(v->seen_hotplug_ok || v->phase == VBD_CONNECTED ||
				     v->phase == VBD_CLOSING))
			continue;
		if (!io_backing_is_target(v->backing, target, id))
			continue;
		if (!want_w && v->props.readonly)
			continue;
		if (for_domid >= 0 && (uint32_t)for_domid != v->fe_domid &&
		    same_vm(d, (uint32_t)for_domid, v->fe_domid))
			continue;
		return v;
	}
	return NULL;
}

/* Remote storage is usable when it opens (an export answers the
 * handshake), for w is writable, and no client elsewhere writes it (a
 * Ceph image's lock owner); it closes again at once. */
static int probe_remote(const char *target, bool want_w, struct io_target_id *ret_id,
			char *msg, size_t len)
{
	struct io_backing *b;
	struct io_error err;
	int r;

	r = io_backing_open(target, want_w ? 0 : IO_BACKING_READ_ONLY, &b, &err);
	if (r >= 0) {
		r = io_backing_check_foreign(b, &err);
		io_backing_close(b);
	}
	if (r < 0)
		snprintf(msg, len, "%s: %s%s%s", target, strerror(-r), *err.msg ? ": " : "",
			 err.msg);
	else
		io_target_identify(target, ret_id);
	return r;
}

/* Root may write anything: a file nobody may write is meant to be
 * read-only, so say so rather than open it rw. The object opened as fd is
 * opened again for writing through /proc/self/fd, not through the path. */
static int probe_writable(const char *target, int fd, const struct stat *st, int ro,
			  char *msg, size_t len)
{
	char self[40];
	int wfd;

	if (ro) {
		snprintf(msg, len, "%s: block device is read-only", target);
		return -EROFS;
	}
	if (S_ISREG(st->st_mode) && !(st->st_mode & (S_IWUSR | S_IWGRP | S_IWOTH))) {
		snprintf(msg, len, "%s: file is read-only (mode %03o)", target,
			 (unsigned int)(st->st_mode & 0777));
		return -EROFS;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	wfd = open(self, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (wfd < 0) {
		snprintf(msg, len, "%s: not writable: %s", target, strerror(errno));
		return -EACCES;
	}
	close(wfd);
	return 0;
}

static int probe_local(const char *target, bool want_w, struct io_target_id *ret_id,
		       char *msg, size_t len)
{
	struct stat st;
	int fd, ro = 0, r = 0;

	if (target[0] != '/') {
		snprintf(msg, len, "%s: not an absolute path", target);
		return -EINVAL;
	}
	/* Opened first, then looked at: what is checked is what was opened,
	 * not what the path named a moment earlier. Non-blocking, so that a
	 * FIFO opens at once and is refused by its type. */
	fd = open(target, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, len, "%s: %s%s", target,
			 r == -EACCES || r == -EPERM ? "not readable: " : "", strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		close(fd);
		snprintf(msg, len, "%s: not a regular file or block device", target);
		return -EINVAL;
	}
	io_target_id_of_stat(&st, ret_id);
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKROGET, &ro) < 0)
		ro = 0;
	if (want_w)
		r = probe_writable(target, fd, &st, ro, msg, len);
	close(fd);
	return r;
}

int storage_admit_probe(const char *target, bool want_w, struct io_target_id *ret_id,
			char *msg, size_t len)
{
	*msg = '\0';
	*ret_id = (struct io_target_id){ .known = false };
	return io_target_is_local(target) ? probe_local(target, want_w, ret_id, msg, len)
					  : probe_remote(target, want_w, ret_id, msg, len);
}

/* The calling thread's file system identity, and only this thread's: the
 * raw system calls, as glibc's setgroups changes every thread. setfsuid
 * and setfsgid say no error: a second call returns what is in force. */
static int thread_fs_identity(uid_t uid, gid_t gid, const gid_t *groups, size_t nr_groups)
{
	if (syscall(SYS_setgroups, nr_groups, groups) < 0)
		return -errno;
	setfsgid(gid);
	if ((gid_t)setfsgid(gid) != gid)
		return -EPERM;
	setfsuid(uid);
	if ((uid_t)setfsuid(uid) != uid)
		return -EPERM;
	return 0;
}

int storage_admit_visible(const char *target, uid_t uid, gid_t gid, const gid_t *groups,
			  unsigned int nr_groups, char *msg, size_t len)
{
	gid_t own_groups[NGROUPS_MAX];
	char path[PATH_MAX];
	int nr_own, r, back;
	struct stat st;

	*msg = '\0';
	if (uid == 0)
		return 0;
	/* A URI's socket, an image format's file: what the target reaches on
	 * this host is what the asker must be able to see. */
	r = io_target_local_path(target, path, sizeof(path));
	if (r == -ENOTSUP) {
		snprintf(msg, len, "%s: only root may check a UNIX socket export", target);
		return -EPERM;
	}
	if (r < 0) {
		snprintf(msg, len, "%s: %s", target, strerror(-r));
		return r;
	}
	if (r == 0 || path[0] != '/')
		return 0;
	nr_own = getgroups(NGROUPS_MAX, own_groups);
	if (nr_own < 0) {
		r = -errno;
		snprintf(msg, len, "%s: cannot check as uid %u: %s", target, (unsigned int)uid,
			 strerror(-r));
		return r;
	}
	r = thread_fs_identity(uid, gid, groups, nr_groups);
	if (r < 0)
		snprintf(msg, len, "%s: cannot check as uid %u: %s", target, (unsigned int)uid,
			 strerror(-r));
	else if (stat(path, &st) < 0)
		r = -errno;
	/* Back to our own before anything else is done on this thread. */
	back = thread_fs_identity(geteuid(), getegid(), own_groups, (size_t)nr_own);
	if (back < 0) {
		snprintf(msg, len, "%s: cannot check as uid %u: %s", target, (unsigned int)uid,
			 strerror(-back));
		return back;
	}
	if (r < 0 && !*msg)
		snprintf(msg, len, "%s: %s (for uid %u)", target, strerror(-r), (unsigned int)uid);
	return r;
}
