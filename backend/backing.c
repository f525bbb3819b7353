/* Local storage behind a vbd, shared by every local engine: opening a
 * regular file or a block device, learning what the guest is told (size,
 * sector sizes, discard support), re-reading the size for online resize,
 * and telling whether a path names the same storage. The open touches
 * nothing but the backing, so it may run on any thread; the engines only
 * use the fd and the capability flags. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "io.h"
#include "util.h"

/* Reads one unsigned number from a sysfs attribute; -errno when absent. */
static int sysfs_read_u64(const char *dir, const char *name, uint64_t *ret_val)
{
	char path[PATH_MAX], buf[64], *end;
	unsigned long long v;
	ssize_t n;
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	buf[n] = '\0';
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || (*end != '\n' && *end != '\0'))
		return -EINVAL;
	*ret_val = v;
	return 0;
}

/* Discard of a block device. The ioctls check support before they look at
 * the range, so a misaligned empty range answers EOPNOTSUPP (unsupported)
 * or EINVAL (supported) without touching any data. This is the only way
 * to learn about secure erase: sysfs does not show it. */
static bool bdev_ioctl_is_supported(int fd, unsigned long req)
{
	uint64_t range[2] = { 1, 0 };

	return ioctl(fd, req, range) < 0 && errno == EINVAL;
}

static void bdev_probe_discard(struct io_backing *b, const struct stat *st)
{
	char dir[PATH_MAX], real[PATH_MAX], queue[PATH_MAX + 16];
	uint64_t gran = 0, align = 0, part;

	if (b->read_only)
		return;
	b->can_discard = bdev_ioctl_is_supported(b->fd, BLKDISCARD);
	b->can_secure_discard = b->can_discard &&
		bdev_ioctl_is_supported(b->fd, BLKSECDISCARD);
	if (!b->can_discard)
		return;

	/* A partition's sysfs dir has no queue/: its disk's is the parent. */
	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u", major(st->st_rdev),
		 minor(st->st_rdev));
	if (!realpath(dir, real))
		goto defaults;
	if (sysfs_read_u64(real, "partition", &part) == 0)
		snprintf(queue, sizeof(queue), "%s/../queue", real);
	else
		snprintf(queue, sizeof(queue), "%s/queue", real);
	if (sysfs_read_u64(queue, "discard_granularity", &gran) < 0)
		gran = 0;
	if (sysfs_read_u64(real, "discard_alignment", &align) < 0)
		align = 0;
defaults:
	if (!is_pow2(gran) || gran > UINT32_MAX)
		gran = b->physical_sector_size;
	b->discard_granularity = (uint32_t)gran;
	b->discard_alignment = (uint32_t)(align % gran);
}

static int bdev_probe(struct io_backing *b, const struct stat *st)
{
	unsigned int pbs;
	uint64_t size;
	int lbs;

	if (ioctl(b->fd, BLKGETSIZE64, &size) < 0)
		return -errno;
	if (ioctl(b->fd, BLKSSZGET, &lbs) < 0)
		return -errno;
	if (ioctl(b->fd, BLKPBSZGET, &pbs) < 0)
		pbs = (unsigned int)lbs;
	if (lbs < 512 || !is_pow2((uint64_t)lbs))
		return -EINVAL;
	if (!is_pow2(pbs) || pbs < (unsigned int)lbs)
		pbs = (unsigned int)lbs;

	b->size = size;
	b->logical_sector_size = (uint32_t)lbs;
	b->physical_sector_size = pbs;
	/* O_DIRECT on a block device needs logical-block alignment. */
	b->dio_align = b->direct ? (uint32_t)lbs : 1;
	bdev_probe_discard(b, st);
	return 0;
}

/* O_DIRECT alignment of a file, from statx where the kernel reports it
 * (Linux 6.1+); the page size is always safe otherwise. */
static uint32_t file_dio_align(int fd)
{
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		uint32_t a = stx.stx_dio_offset_align;

		if (stx.stx_dio_mem_align > a)
			a = stx.stx_dio_mem_align;
		return a;
	}
#endif
	return (uint32_t)sysconf(_SC_PAGESIZE);
}

static int file_probe(struct io_backing *b, const struct stat *st, unsigned int flags)
{
	uint32_t lbs = flags & IO_BACKING_SECTOR_4K ? 4096 : 512;
	uint32_t pbs = 4096;

	b->size = (uint64_t)st->st_size;
	if (b->direct) {
		b->dio_align = file_dio_align(b->fd);
		/* The guest must not be told a sector size the storage cannot
		 * do directly. */
		if (b->dio_align > lbs) {
			if (b->dio_align > 4096 || !is_pow2(b->dio_align))
				return -EINVAL;
			lbs = b->dio_align;
		}
	} else {
		b->dio_align = 1;
	}
	if (is_pow2((uint64_t)st->st_blksize) && st->st_blksize >= 512 &&
	    st->st_blksize <= 65536)
		pbs = (uint32_t)st->st_blksize;
	if (pbs < lbs)
		pbs = lbs;
	b->logical_sector_size = lbs;
	b->physical_sector_size = pbs;

	/* Punching beyond the end with KEEP_SIZE changes nothing but fails
	 * with EOPNOTSUPP where the filesystem cannot punch holes. */
	if (!b->read_only &&
	    fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      st->st_size, 1) == 0) {
		b->can_discard = true;
		b->discard_granularity = pbs;
		b->discard_alignment = 0;
	}
	return 0;
}

static const char *file_type_name(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISDIR(mode))
		return "a directory";
	return "of an unknown type";
}

int io_local_open(struct io_backing *b, unsigned int flags, struct io_error *err)
{
	struct stat st;
	int oflags;

	/* O_NONBLOCK: a FIFO (or a device that waits for a carrier) opens
	 * at once and is refused by its type below instead of holding the
	 * caller until a writer comes. On a regular file or a block device
	 * it means nothing, and it is cleared before any I/O all the same. */
	oflags = (b->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	if (b->direct)
		oflags |= O_DIRECT;
	b->fd = open(b->path, oflags);
	if (b->fd < 0)
		return -errno;
	if (fstat(b->fd, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		io_error_set(err, "%s, not a regular file or block device",
			     file_type_name(st.st_mode));
		return -EINVAL;
	}
	io_target_id_of_stat(&st, &b->id);
	if (fcntl(b->fd, F_SETFL, oflags & ~O_NONBLOCK) < 0)	/* keeps O_DIRECT */
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		b->is_blockdev = true;
		return bdev_probe(b, &st);
	}
	return file_probe(b, &st, flags);
}

/* Also undoes a failed open: fd is -1 until it is open. */
void io_local_close(struct io_backing *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

int io_local_refresh_size(struct io_backing *b)
{
	struct stat st;
	uint64_t size;

	if (b->is_blockdev) {
		if (ioctl(b->fd, BLKGETSIZE64, &size) < 0)
			return -errno;
	} else {
		if (fstat(b->fd, &st) < 0)
			return -errno;
		size = (uint64_t)st.st_size;
	}
	if (size == b->size)
		return 0;
	b->size = size;
	return 1;
}

/* Same inode, or same device number for block devices: two paths (or a
 * symlink) of one file are one target. Both identities were taken where
 * a stat may block: at the open, and by whoever asks. */
bool io_local_is_target(const struct io_backing *b, const char *target,
			const struct io_target_id *id)
{
	(void)target;
	if (!id || !id->known || !b->id.known || id->block != b->id.block || id->dev != b->id.dev)
		return false;
	return id->block || id->ino == b->id.ino;
}
