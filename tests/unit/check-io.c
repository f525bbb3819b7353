/* Unit tests for the storage layer (backend/io.h): every storage test runs
 * once per real engine (uring, thread) through the same table, so both
 * behave the same; the null engine and the generic checks (bounds, hostile
 * arguments, auto selection) have their own cases, and so do NBD exports
 * (a real nbdkit on a socket). Files live in /var/tmp
 * (a disk filesystem, for O_DIRECT and hole punching). */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "util.h"

#define MAX_OPS 4096

static const enum io_engine_kind real_engines[] = { IO_ENGINE_URING, IO_ENGINE_THREAD };
static const enum io_engine_kind all_engines[] = {
	IO_ENGINE_URING, IO_ENGINE_THREAD, IO_ENGINE_NULL,
};

/* --- helpers ------------------------------------------------------------ */

static char test_dir[PATH_MAX];

static void dir_setup(void)
{
	const char *base = getenv("IO_TEST_DIR") ? getenv("IO_TEST_DIR") : "/var/tmp";

	snprintf(test_dir, sizeof(test_dir), "%s/check-io.XXXXXX", base);
	ck_assert_msg(mkdtemp(test_dir), "mkdtemp %s: %s", test_dir, strerror(errno));
}

static void dir_teardown(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", test_dir);
}

/* A file of size bytes; each 512-byte sector filled with fill ^ index. */
static char *file_make(const char *name, off_t size, int fill)
{
	static char path[PATH_MAX + 64];
	unsigned char sec[512];
	off_t off;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", test_dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	if (fill >= 0) {
		for (off = 0; off < size; off += (off_t)sizeof(sec)) {
			memset(sec, fill ^ (int)(off / 512), sizeof(sec));
			ck_assert_int_eq(pwrite(fd, sec, sizeof(sec), off), (ssize_t)sizeof(sec));
		}
	}
	ck_assert_int_eq(ftruncate(fd, size), 0);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	return path;
}

static bool engine_try_new(enum io_engine_kind kind, struct io_backing *b,
			   unsigned int depth, struct io_engine **ret)
{
	int r = io_engine_new(kind, b, depth, ret, NULL);

	if (r == -ENOSYS && kind == IO_ENGINE_URING) {
		fprintf(stderr, "SKIP: io_uring unavailable on this kernel\n");
		return false;
	}
	ck_assert_msg(r == 0, "io_engine_new(%s): %s", io_engine_kind_name(kind),
		      strerror(-r));
	ck_assert_str_eq(io_engine_name(*ret), io_engine_kind_name(kind));
	return true;
}

/* Results by cookie (an index); each must be reported exactly once. */
struct collect {
	unsigned int count;
	unsigned char seen[MAX_OPS];
	int res[MAX_OPS];
};

static void on_done(void *opaque, void *cookie, int result)
{
	struct collect *c = opaque;
	uintptr_t i = (uintptr_t)cookie;

	ck_assert_uint_lt(i, MAX_OPS);
	ck_assert_msg(!c->seen[i], "cookie %lu reported twice", (unsigned long)i);
	c->seen[i] = 1;
	c->res[i] = result;
	c->count++;
}

/* Polls the engine's fd like a ring thread until want callbacks ran. */
static void collect_wait(struct io_engine *e, struct collect *c, unsigned int want)
{
	struct pollfd pfd = { .fd = io_engine_fd(e), .events = POLLIN };
	time_t deadline = time(NULL) + 20;
	int r;

	while (c->count < want) {
		ck_assert_msg(time(NULL) < deadline, "timed out: %u of %u done",
			      c->count, want);
		r = poll(&pfd, 1, 1000);
		ck_assert_int_ge(r, 0);
		if (r == 0)
			continue;
		r = io_engine_reap(e, on_done, c);
		ck_assert_int_ge(r, 0);
	}
	ck_assert_uint_eq(c->count, want);
	ck_assert_uint_eq(io_engine_inflight(e), 0);
}

static unsigned char pattern(uint64_t off, unsigned int gen)
{
	return (unsigned char)((off * 7 + (off >> 9) * 13 + gen * 29) ^ 0x5a);
}

/* --- round trips ---------------------------------------------------------- */

/* Segment layouts of one op: odd and even splits, many segments. */
static const unsigned int seg_layouts[][6] = {
	{ 4096 },
	{ 512, 3584 },
	{ 1024, 1024, 1024, 1024 },
	{ 2048, 512, 512, 512, 512 },
	{ 512, 512, 512, 512, 512, 1536 },
};

static void roundtrip(enum io_engine_kind kind, unsigned int flags, unsigned int depth,
		      unsigned int nops)
{
	static struct iovec iovs[MAX_OPS][6];
	static struct collect c;
	struct io_backing *b;
	struct io_engine *e;
	unsigned char *buf, *check;
	const size_t opsz = 4096;
	unsigned int i, s, l;
	char *path;
	int fd, r;

	path = file_make("rt", (off_t)(nops * opsz), 0x11);
	r = io_backing_open(path, flags, &b, NULL);
	if (r == -EINVAL && (flags & IO_BACKING_DIRECT)) {
		fprintf(stderr, "SKIP: O_DIRECT not supported in %s\n", test_dir);
		return;
	}
	ck_assert_int_eq(r, 0);
	if (!engine_try_new(kind, b, depth, &e))
		goto out_backing;
	ck_assert_int_eq(posix_memalign((void **)&buf, 4096, nops * opsz), 0);
	for (i = 0; i < nops * opsz; i++)
		buf[i] = pattern(i, 1);

	/* Write all ops in batches of up to depth, one submit per batch. */
	memset(&c, 0, sizeof(c));
	for (i = 0; i < nops; i++) {
		const unsigned int *lay = seg_layouts[i % ARRAY_SIZE(seg_layouts)];
		size_t pos = i * opsz;

		for (s = 0; s < 6 && lay[s]; s++) {
			iovs[i][s].iov_base = buf + pos;
			iovs[i][s].iov_len = lay[s];
			pos += lay[s];
		}
		r = io_engine_writev(e, i * opsz, iovs[i], s, (void *)(uintptr_t)i);
		ck_assert_int_eq(r, 0);
		if (io_engine_inflight(e) == depth || i == nops - 1) {
			ck_assert_int_gt(io_engine_submit(e), 0);
			collect_wait(e, &c, i + 1);
		}
	}
	for (i = 0; i < nops; i++)
		ck_assert_int_eq(c.res[i], (int)opsz);

	/* The bytes are in the file, independently of the engine. */
	ck_assert_int_eq(posix_memalign((void **)&check, 4096, nops * opsz), 0);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, check, nops * opsz, 0), (ssize_t)(nops * opsz));
	close(fd);
	ck_assert_int_eq(memcmp(check, buf, nops * opsz), 0);

	/* Read back through the engine with a different segmentation. */
	memset(buf, 0, nops * opsz);
	memset(&c, 0, sizeof(c));
	for (i = 0; i < nops; i++) {
		const unsigned int *lay =
			seg_layouts[(i + 2) % ARRAY_SIZE(seg_layouts)];
		size_t pos = i * opsz;

		for (s = 0; s < 6 && lay[s]; s++) {
			iovs[i][s].iov_base = buf + pos;
			iovs[i][s].iov_len = lay[s];
			pos += lay[s];
		}
		ck_assert_int_eq(io_engine_readv(e, i * opsz, iovs[i], s,
						 (void *)(uintptr_t)i), 0);
		if (io_engine_inflight(e) == depth || i == nops - 1) {
			ck_assert_int_gt(io_engine_submit(e), 0);
			collect_wait(e, &c, i + 1);
		}
	}
	for (i = 0; i < nops; i++)
		ck_assert_int_eq(c.res[i], (int)opsz);
	for (l = 0; l < nops * opsz && buf[l] == pattern(l, 1); l++)
		;
	ck_assert_msg(l == nops * opsz, "byte %u differs", l);

	free(check);
	free(buf);
	io_engine_free(e);
out_backing:
	io_backing_close(b);
}

START_TEST(test_roundtrip_small)
{
	roundtrip(real_engines[_i], 0, 8, 40);
}
END_TEST

START_TEST(test_roundtrip_deep)
{
	/* Everything in one batch: depth and one submit of 1024 ops. */
	roundtrip(real_engines[_i], 0, 1024, 1024);
}
END_TEST

START_TEST(test_roundtrip_direct)
{
	roundtrip(real_engines[_i], IO_BACKING_DIRECT, 32, 128);
}
END_TEST

START_TEST(test_direct_reports_alignment)
{
	struct io_backing *b;
	char *path = file_make("d", 1 << 20, 0);
	int r = io_backing_open(path, IO_BACKING_DIRECT, &b, NULL);

	if (r == -EINVAL) {
		fprintf(stderr, "SKIP: O_DIRECT not supported in %s\n", test_dir);
		return;
	}
	ck_assert_int_eq(r, 0);
	ck_assert(b->direct);
	ck_assert_uint_ge(b->dio_align, 512);
	ck_assert_uint_le(b->dio_align, 4096);
	ck_assert_uint_ge(b->logical_sector_size, b->dio_align);
	ck_assert_int_eq(fcntl(b->fd, F_GETFL) & O_DIRECT, O_DIRECT);
	io_backing_close(b);

	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	ck_assert(!b->direct);
	ck_assert_uint_eq(b->dio_align, 1);
	ck_assert_int_eq(fcntl(b->fd, F_GETFL) & O_DIRECT, 0);
	io_backing_close(b);
}
END_TEST

/* --- flush, discard, read-only ------------------------------------------ */

START_TEST(test_flush)
{
	static struct collect c;
	unsigned char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("f", 1 << 20, 0);

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	if (!engine_try_new(real_engines[_i], b, 4, &e))
		goto out;
	memset(buf, 0xab, sizeof(buf));
	ck_assert_int_eq(io_engine_writev(e, 8192, &iov, 1, (void *)0), 0);
	ck_assert_int_eq(io_engine_submit(e), 1);
	collect_wait(e, &c, 1);
	ck_assert_int_eq(c.res[0], 4096);
	/* Flush after the write completed, and a flush batched with a write. */
	ck_assert_int_eq(io_engine_flush(e, (void *)1), 0);
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)2), 0);
	ck_assert_int_eq(io_engine_flush(e, (void *)3), 0);
	ck_assert_int_eq(io_engine_submit(e), 3);
	collect_wait(e, &c, 4);
	ck_assert_int_eq(c.res[1], 0);
	ck_assert_int_eq(c.res[2], 4096);
	ck_assert_int_eq(c.res[3], 0);
	io_engine_free(e);
out:
	io_backing_close(b);
}
END_TEST

static void discard_case(enum io_engine_kind kind, unsigned int flags)
{
	static struct collect c;
	static unsigned char buf[256 << 10] __attribute__((aligned(4096)));
	struct iovec iov = { buf, sizeof(buf) };
	const off_t size = 1 << 20, off = 256 << 10, len = 256 << 10;
	struct io_backing *b;
	struct io_engine *e;
	struct stat before, after;
	char *path = file_make("disc", size, 0x77);
	off_t i;
	int r;

	memset(&c, 0, sizeof(c));
	r = io_backing_open(path, flags, &b, NULL);
	if (r == -EINVAL && (flags & IO_BACKING_DIRECT)) {
		fprintf(stderr, "SKIP: O_DIRECT not supported in %s\n", test_dir);
		return;
	}
	ck_assert_int_eq(r, 0);
	if (!b->can_discard) {
		fprintf(stderr, "SKIP: %s cannot punch holes\n", test_dir);
		goto out_backing;
	}
	ck_assert(!b->can_secure_discard);
	ck_assert_uint_ge(b->discard_granularity, 512);
	if (!engine_try_new(kind, b, 4, &e))
		goto out_backing;
	ck_assert_int_eq(fstat(b->fd, &before), 0);

	ck_assert_int_eq(io_engine_discard(e, (uint64_t)off, (uint64_t)len, false,
					   (void *)0), 0);
	/* Files have no secure erase: refused before anything is queued. */
	ck_assert_int_eq(io_engine_discard(e, 0, 4096, true, (void *)1), -EOPNOTSUPP);
	ck_assert_uint_eq(io_engine_inflight(e), 1);
	ck_assert_int_eq(io_engine_submit(e), 1);
	collect_wait(e, &c, 1);
	ck_assert_int_eq(c.res[0], 0);
	ck_assert(!c.seen[1]);

	ck_assert_int_eq(fstat(b->fd, &after), 0);
	ck_assert_int_eq(after.st_size, size);		/* KEEP_SIZE */
	ck_assert_int_lt(after.st_blocks, before.st_blocks);

	/* The hole reads back as zeros; its neighbours are intact. */
	ck_assert_int_eq(io_engine_readv(e, (uint64_t)off, &iov, 1, (void *)2), 0);
	ck_assert_int_eq(io_engine_submit(e), 1);
	collect_wait(e, &c, 2);
	ck_assert_int_eq(c.res[2], (int)len);
	for (i = 0; i < len && buf[i] == 0; i++)
		;
	ck_assert_msg(i == len, "byte %ld of the hole is not zero", (long)i);
	ck_assert_int_eq(pread(b->fd, buf, 512, off - 512), 512);
	ck_assert_int_eq(buf[0], 0x77 ^ (int)((off - 512) / 512) % 256);
	ck_assert_int_eq(pread(b->fd, buf, 512, off + len), 512);
	ck_assert_int_eq(buf[0], (0x77 ^ (int)((off + len) / 512)) & 0xff);

	io_engine_free(e);
out_backing:
	io_backing_close(b);
}

START_TEST(test_discard)
{
	discard_case(real_engines[_i], 0);
}
END_TEST

START_TEST(test_discard_direct)
{
	discard_case(real_engines[_i], IO_BACKING_DIRECT);
}
END_TEST

/* Read-only backings refuse writes and discards with -EROFS before
 * anything is queued (decided: the op never reaches the kernel, which
 * would say EBADF); reads and flushes work. */
START_TEST(test_readonly)
{
	static struct collect c;
	unsigned char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("ro", 1 << 20, 0x33);

	memset(&c, 0, sizeof(c));
	/* valgrind cannot see io_uring's writes into buf; start it defined. */
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(io_backing_open(path, IO_BACKING_READ_ONLY, &b, NULL), 0);
	ck_assert(b->read_only);
	ck_assert(!b->can_discard);
	ck_assert_int_eq(fcntl(b->fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	if (!engine_try_new(all_engines[_i], b, 4, &e))
		goto out;
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)0), -EROFS);
	ck_assert_int_eq(io_engine_discard(e, 0, 4096, false, (void *)1), -EROFS);
	ck_assert_int_eq(io_engine_discard(e, 0, 4096, true, (void *)2), -EROFS);
	ck_assert_uint_eq(io_engine_inflight(e), 0);
	ck_assert_int_eq(io_engine_readv(e, 4096, &iov, 1, (void *)3), 0);
	ck_assert_int_eq(io_engine_flush(e, (void *)4), 0);
	ck_assert_int_eq(io_engine_submit(e), 2);
	collect_wait(e, &c, 2);
	ck_assert_int_eq(c.res[3], 4096);
	ck_assert_int_eq(c.res[4], 0);
	if (all_engines[_i] != IO_ENGINE_NULL)
		ck_assert_int_eq(buf[0], 0x33 ^ 8);
	ck_assert(!c.seen[0] && !c.seen[1] && !c.seen[2]);
	io_engine_free(e);
out:
	io_backing_close(b);
}
END_TEST

/* --- errors surface as -errno --------------------------------------------- */

/* A read crossing the end of the file gets a short read, then nothing:
 * reported as -EIO, never as a partial success. */
START_TEST(test_read_past_eof)
{
	static struct collect c;
	unsigned char buf[8192];
	struct iovec iov[2] = { { buf, 4096 }, { buf + 4096, 4096 } };
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("eof", 6144, 0x10);

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	if (!engine_try_new(real_engines[_i], b, 4, &e))
		goto out;
	ck_assert_int_eq(io_engine_readv(e, 0, iov, 2, (void *)0), 0);	/* short */
	ck_assert_int_eq(io_engine_readv(e, 8192, iov, 1, (void *)1), 0); /* beyond */
	ck_assert_int_eq(io_engine_readv(e, 2048, iov, 1, (void *)2), 0); /* fits */
	ck_assert_int_eq(io_engine_submit(e), 3);
	collect_wait(e, &c, 3);
	ck_assert_int_eq(c.res[0], -EIO);
	ck_assert_int_eq(c.res[1], -EIO);
	ck_assert_int_eq(c.res[2], 4096);
	io_engine_free(e);
out:
	io_backing_close(b);
}
END_TEST

/* A write the kernel refuses (file size limit) fails with its errno; a
 * write crossing the limit is a short write whose remainder then fails:
 * -EFBIG, not the partial count. */
START_TEST(test_write_error)
{
	static struct collect c;
	unsigned char buf[8192];
	struct iovec iov = { buf, sizeof(buf) };
	struct rlimit lim, old;
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("efbig", 1 << 20, 0);

	memset(&c, 0, sizeof(c));
	signal(SIGXFSZ, SIG_IGN);
	/* The soft limit only, so it can be restored (matters under
	 * CK_FORK=no, where later tests share the process). */
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim.rlim_cur = 1 << 20;
	lim.rlim_max = old.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	if (!engine_try_new(real_engines[_i], b, 4, &e))
		goto out;
	memset(buf, 1, sizeof(buf));
	ck_assert_int_eq(io_engine_writev(e, 1 << 20, &iov, 1, (void *)0), 0);
	ck_assert_int_eq(io_engine_writev(e, (1 << 20) - 4096, &iov, 1, (void *)1), 0);
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)2), 0);
	ck_assert_int_eq(io_engine_submit(e), 3);
	collect_wait(e, &c, 3);
	ck_assert_int_eq(c.res[0], -EFBIG);
	ck_assert_int_eq(c.res[1], -EFBIG);
	ck_assert_int_eq(c.res[2], 8192);
	io_engine_free(e);
out:
	io_backing_close(b);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
}
END_TEST

/* O_DIRECT with a misaligned buffer: the kernel's EINVAL is the result. */
START_TEST(test_direct_misaligned)
{
	static struct collect c;
	static unsigned char buf[8192 + 1] __attribute__((aligned(4096)));
	struct iovec iov = { buf + 1, 4096 };
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("dmis", 1 << 20, 0);
	int r = io_backing_open(path, IO_BACKING_DIRECT, &b, NULL);

	memset(&c, 0, sizeof(c));
	if (r == -EINVAL) {
		fprintf(stderr, "SKIP: O_DIRECT not supported in %s\n", test_dir);
		return;
	}
	ck_assert_int_eq(r, 0);
	if (!engine_try_new(real_engines[_i], b, 4, &e))
		goto out;
	ck_assert_int_eq(io_engine_readv(e, 0, &iov, 1, (void *)0), 0);
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)1), 0);
	ck_assert_int_eq(io_engine_submit(e), 2);
	collect_wait(e, &c, 2);
	ck_assert_int_eq(c.res[0], -EINVAL);
	ck_assert_int_eq(c.res[1], -EINVAL);
	io_engine_free(e);
out:
	io_backing_close(b);
}
END_TEST

/* --- bounds and the generic engine ------------------------------------- */

START_TEST(test_depth_bound)
{
	static struct collect c;
	unsigned char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("busy", 1 << 20, 0);
	uintptr_t i;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	if (!engine_try_new(all_engines[_i], b, 4, &e))
		goto out;
	ck_assert_uint_eq(io_engine_depth(e), 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(io_engine_readv(e, i * 4096, &iov, 1, (void *)i), 0);
	/* Full: every kind of op is refused, queued or submitted alike. */
	ck_assert_int_eq(io_engine_readv(e, 0, &iov, 1, (void *)10), -EBUSY);
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)11), -EBUSY);
	ck_assert_int_eq(io_engine_flush(e, (void *)12), -EBUSY);
	if (b->can_discard)
		ck_assert_int_eq(io_engine_discard(e, 0, 4096, false, (void *)13), -EBUSY);
	ck_assert_uint_eq(io_engine_inflight(e), 4);
	ck_assert_int_eq(io_engine_submit(e), 4);
	ck_assert_int_eq(io_engine_flush(e, (void *)14), -EBUSY);
	collect_wait(e, &c, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(c.res[i], 4096);
	for (i = 10; i <= 14; i++)
		ck_assert(!c.seen[i]);
	/* Slots are back. */
	ck_assert_int_eq(io_engine_flush(e, (void *)5), 0);
	ck_assert_int_eq(io_engine_submit(e), 1);
	collect_wait(e, &c, 5);
	ck_assert_int_eq(c.res[5], 0);
	io_engine_free(e);
out:
	io_backing_close(b);
}
END_TEST

/* Completions may queue more work from the callback: the slot of the op
 * being reported is already free (depth 1 proves it). */
struct chain {
	struct io_engine *e;
	struct iovec iov;
	unsigned int done, want;
	int last;
};

static void chain_next(void *opaque, void *cookie, int result)
{
	struct chain *ch = opaque;

	ck_assert_ptr_eq(cookie, ch);
	ck_assert_int_eq(result, (int)ch->iov.iov_len);
	ch->done++;
	if (ch->done < ch->want) {
		ck_assert_int_eq(io_engine_writev(ch->e, ch->done * 4096ULL, &ch->iov, 1, ch),
				 0);
		ck_assert_int_eq(io_engine_submit(ch->e), 1);
	}
}

START_TEST(test_requeue_from_callback)
{
	unsigned char buf[4096];
	struct chain ch = { .iov = { buf, sizeof(buf) }, .want = 50 };
	struct pollfd pfd;
	struct io_backing *b;
	char *path = file_make("chain", 1 << 20, 0);
	time_t deadline = time(NULL) + 20;

	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	if (!engine_try_new(all_engines[_i], b, 1, &ch.e))
		goto out;
	memset(buf, 9, sizeof(buf));
	ck_assert_int_eq(io_engine_writev(ch.e, 0, &ch.iov, 1, &ch), 0);
	ck_assert_int_eq(io_engine_writev(ch.e, 4096, &ch.iov, 1, &ch), -EBUSY);
	ck_assert_int_eq(io_engine_submit(ch.e), 1);
	pfd.fd = io_engine_fd(ch.e);
	pfd.events = POLLIN;
	while (ch.done < ch.want) {
		ck_assert(time(NULL) < deadline);
		if (poll(&pfd, 1, 1000) > 0)
			ck_assert_int_ge(io_engine_reap(ch.e, chain_next, &ch), 0);
	}
	ck_assert_uint_eq(ch.done, 50);
	ck_assert_uint_eq(io_engine_inflight(ch.e), 0);
	io_engine_free(ch.e);
out:
	io_backing_close(b);
}
END_TEST

/* io_engine_wait, the ring thread's one wait point: it submits what was
 * queued, ends on completions, on a caller's fd turning readable (its bit
 * set, others not) and on the timeout; nothing is lost across many waits
 * (the polls stay armed from one wait to the next). */
START_TEST(test_wait)
{
	static struct collect c;
	static unsigned char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("wait", 1 << 20, 0);
	unsigned int ready, i;
	time_t deadline;
	uint64_t one = 1, v;
	int fds[2], r;

	memset(&c, 0, sizeof(c));
	fds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	fds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert(fds[0] >= 0 && fds[1] >= 0);
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	if (!engine_try_new(all_engines[_i], b, 4, &e))
		goto out;
	/* Nothing to wait for: the timeout ends it, no bit set. */
	ck_assert_int_eq(io_engine_wait(e, fds, 2, 20, &ready), 0);
	ck_assert_uint_eq(ready, 0);
	/* A caller's fd: its bit alone. */
	ck_assert_int_eq(write(fds[1], &one, sizeof(one)), sizeof(one));
	ck_assert_int_eq(io_engine_wait(e, fds, 2, 5000, &ready), 1);
	ck_assert_uint_eq(ready, 2u);
	ck_assert_int_eq(read(fds[1], &v, sizeof(v)), sizeof(v));
	/* Queued ops go out with the wait (no io_engine_submit) and their
	 * completions end a wait; 100 rounds with the fds armed throughout. */
	for (i = 0; i < 100; i++) {
		c.seen[i % 2] = 0;
		ck_assert_int_eq(io_engine_writev(e, (uint64_t)i * 4096, &iov, 1,
						  (void *)(uintptr_t)(i % 2)), 0);
		deadline = time(NULL) + 20;
		while (c.count < i + 1) {
			ck_assert_msg(time(NULL) < deadline, "round %u: no completion", i);
			r = io_engine_wait(e, fds, 2, 1000, &ready);
			ck_assert_int_ge(r, 0);
			ck_assert_uint_eq(ready, 0);
			ck_assert_int_ge(io_engine_reap(e, on_done, &c), 0);
		}
		ck_assert_int_eq(c.res[i % 2], 4096);
	}
	/* The other fd, after all that. */
	ck_assert_int_eq(write(fds[0], &one, sizeof(one)), sizeof(one));
	ck_assert_int_eq(io_engine_wait(e, fds, 2, 5000, &ready), 1);
	ck_assert_uint_eq(ready, 1u);
	ck_assert_int_eq(io_engine_wait(e, fds, 3 + IO_WAIT_MAX_FDS, 0, &ready), -EINVAL);
	io_engine_free(e);
out:
	io_backing_close(b);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/* Freeing with ops in flight waits for the running ones and never calls
 * their callbacks; nothing crashes or leaks (the sanitizer runs see). */
START_TEST(test_free_inflight)
{
	static struct collect c;
	static unsigned char buf[64][4096];
	static struct iovec iov[64];
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("freeinfl", 1 << 20, 0);
	uintptr_t i;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	if (!engine_try_new(all_engines[_i], b, 64, &e))
		goto out;
	for (i = 0; i < 64; i++) {
		iov[i].iov_base = buf[i];
		iov[i].iov_len = 4096;
		ck_assert_int_eq(io_engine_writev(e, i * 4096, &iov[i], 1, (void *)i), 0);
		if (i == 40)
			ck_assert_int_eq(io_engine_submit(e), 41);
	}
	/* 41 submitted, 23 only queued. */
	ck_assert_uint_eq(io_engine_inflight(e), 64);
	io_engine_free(e);
	ck_assert_uint_eq(c.count, 0);
out:
	io_backing_close(b);
}
END_TEST

START_TEST(test_null_engine)
{
	static struct collect c;
	unsigned char buf[3][4096];
	struct iovec iov[3] = { { buf[0], 4096 }, { buf[1], 512 }, { buf[2], 1024 } };
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("null", 1 << 20, 0x44);
	unsigned char check[4096];
	int fd;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	ck_assert_int_eq(io_engine_new(IO_ENGINE_NULL, b, 8, &e, NULL), 0);
	ck_assert_str_eq(io_engine_name(e), "null");
	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(io_engine_writev(e, 0, iov, 3, (void *)0), 0);
	ck_assert_int_eq(io_engine_readv(e, 0, iov, 2, (void *)1), 0);
	ck_assert_int_eq(io_engine_flush(e, (void *)2), 0);
	/* Nothing completes before submit. */
	ck_assert_int_eq(io_engine_reap(e, on_done, &c), 0);
	ck_assert_int_eq(io_engine_submit(e), 3);
	collect_wait(e, &c, 3);
	ck_assert_int_eq(c.res[0], 4096 + 512 + 1024);
	ck_assert_int_eq(c.res[1], 4096 + 512);
	ck_assert_int_eq(c.res[2], 0);
	/* It touched neither the file nor the buffers. */
	ck_assert_int_eq(buf[0][0], 0xee);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, check, sizeof(check), 0), (ssize_t)sizeof(check));
	close(fd);
	ck_assert_int_eq(check[0], 0x44);
	io_engine_free(e);
	io_backing_close(b);
}
END_TEST

/* Hostile arguments: each refused with its errno, nothing queued. */
struct bad_op {
	const char *what;
	int op;			/* 0 readv, 1 writev, 2 discard */
	uint64_t offset;
	uint64_t len;		/* discard only */
	unsigned int iovcnt;
	bool null_iov;
	size_t seg_len;		/* every segment */
	int expect;
};

static const struct bad_op bad_ops[] = {
	{ "no segments", 0, 0, 0, 0, false, 4096, -EINVAL },
	{ "NULL iov", 1, 0, 0, 1, true, 4096, -EINVAL },
	{ "too many segments", 0, 0, 0, IOV_MAX + 1, false, 512, -EINVAL },
	{ "zero length", 1, 0, 0, 2, false, 0, -EINVAL },
	{ "length over INT_MAX", 0, 0, 0, 2, false, 1UL << 30, -EINVAL },
	{ "huge segment", 1, 0, 0, 1, false, SIZE_MAX, -EINVAL },
	{ "offset overflows", 0, UINT64_MAX - 100, 0, 1, false, 4096, -EINVAL },
	{ "offset beyond off_t", 1, 1ULL << 63, 0, 1, false, 4096, -EINVAL },
	{ "discard of nothing", 2, 0, 0, 0, false, 0, -EINVAL },
	{ "discard overflows", 2, UINT64_MAX - 10, 4096, 0, false, 0, -EINVAL },
	{ "discard beyond off_t", 2, INT64_MAX, 1, 0, false, 0, -EINVAL },
};

START_TEST(test_bad_args)
{
	static struct iovec iov[IOV_MAX + 1];
	const struct bad_op *t = &bad_ops[_i];
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("bad", 1 << 20, 0);
	unsigned int k, i;
	int r;

	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	for (k = 0; k < ARRAY_SIZE(all_engines); k++) {
		if (!engine_try_new(all_engines[k], b, 4, &e))
			continue;
		for (i = 0; i < ARRAY_SIZE(iov); i++) {
			iov[i].iov_base = NULL;	/* never touched */
			iov[i].iov_len = t->seg_len;
		}
		if (t->op == 2)
			r = io_engine_discard(e, t->offset, t->len, false, NULL);
		else if (t->op == 1)
			r = io_engine_writev(e, t->offset, t->null_iov ? NULL : iov,
					     t->iovcnt, NULL);
		else
			r = io_engine_readv(e, t->offset, t->null_iov ? NULL : iov,
					    t->iovcnt, NULL);
		ck_assert_msg(r == t->expect, "%s (%s): got %d want %d", t->what,
			      io_engine_kind_name(all_engines[k]), r, t->expect);
		ck_assert_uint_eq(io_engine_inflight(e), 0);
		io_engine_free(e);
	}
	io_backing_close(b);
}
END_TEST

START_TEST(test_engine_new_bad)
{
	struct io_backing *b;
	struct io_engine *e = NULL;
	enum io_engine_kind k;
	char *path = file_make("newbad", 4096, 0);

	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	ck_assert_int_eq(io_engine_new(IO_ENGINE_THREAD, b, 0, &e, NULL), -EINVAL);
	ck_assert_int_eq(io_engine_new(IO_ENGINE_THREAD, b, IO_ENGINE_MAX_DEPTH + 1, &e, NULL),
			 -EINVAL);
	ck_assert_int_eq(io_engine_new((enum io_engine_kind)42, b, 4, &e, NULL), -EINVAL);
	ck_assert_int_eq(io_engine_new(IO_ENGINE_THREAD, NULL, 4, &e, NULL), -EINVAL);
	ck_assert_ptr_null(e);
	io_engine_free(NULL);

	ck_assert_int_eq(io_engine_kind_parse("uring", &k), 0);
	ck_assert_int_eq(k, IO_ENGINE_URING);
	ck_assert_int_eq(io_engine_kind_parse("thread", &k), 0);
	ck_assert_int_eq(k, IO_ENGINE_THREAD);
	ck_assert_int_eq(io_engine_kind_parse("null", &k), 0);
	ck_assert_int_eq(k, IO_ENGINE_NULL);
	ck_assert_int_eq(io_engine_kind_parse("auto", &k), 0);
	ck_assert_int_eq(k, IO_ENGINE_AUTO);
	ck_assert_int_eq(io_engine_kind_parse("URING", &k), -EINVAL);
	ck_assert_int_eq(io_engine_kind_parse("", &k), -EINVAL);
	ck_assert_int_eq(io_engine_kind_parse("uring ", &k), -EINVAL);
	ck_assert_int_eq(io_engine_kind_parse(NULL, &k), -EINVAL);
	ck_assert_str_eq(io_engine_kind_name(IO_ENGINE_THREAD), "thread");
	ck_assert_str_eq(io_engine_kind_name((enum io_engine_kind)42), "unknown");
	io_backing_close(b);
}
END_TEST

/* Auto picks io_uring where it works and falls back to threads where the
 * probe fails (simulated); an explicit uring then fails, never silently
 * becomes something else. */
START_TEST(test_auto_selection)
{
	struct io_backing *b;
	struct io_engine *e;
	char *path = file_make("auto", 4096, 0);

	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	unsetenv(IO_ENV_NO_URING);
	ck_assert_int_eq(io_engine_new(IO_ENGINE_AUTO, b, 4, &e, NULL), 0);
	ck_assert_str_eq(io_engine_name(e), io_uring_is_available() ? "uring" : "thread");
	if (!io_uring_is_available())
		fprintf(stderr, "note: io_uring unavailable; auto chose thread\n");
	io_engine_free(e);

	setenv(IO_ENV_NO_URING, "1", 1);
	ck_assert(!io_uring_is_available());
	ck_assert_int_eq(io_engine_new(IO_ENGINE_AUTO, b, 4, &e, NULL), 0);
	ck_assert_str_eq(io_engine_name(e), "thread");
	io_engine_free(e);
	e = NULL;
	ck_assert_int_eq(io_engine_new(IO_ENGINE_URING, b, 4, &e, NULL), -ENOSYS);
	ck_assert_ptr_null(e);
	unsetenv(IO_ENV_NO_URING);
	io_backing_close(b);
}
END_TEST

/* --- backings --------------------------------------------------------- */

START_TEST(test_sector_sizes)
{
	struct io_backing *b;
	struct stat st;
	char *path = file_make("ss", 1 << 20, 0);

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	ck_assert(!b->is_blockdev);
	ck_assert_uint_eq(b->size, 1 << 20);
	ck_assert_uint_eq(b->logical_sector_size, 512);
	if (st.st_blksize >= 512 && st.st_blksize <= 65536 &&
	    !(st.st_blksize & (st.st_blksize - 1)))
		ck_assert_uint_eq(b->physical_sector_size, (uint32_t)st.st_blksize);
	else
		ck_assert_uint_eq(b->physical_sector_size, 4096);
	io_backing_close(b);

	ck_assert_int_eq(io_backing_open(path, IO_BACKING_SECTOR_4K, &b, NULL), 0);
	ck_assert_uint_eq(b->logical_sector_size, 4096);
	ck_assert_uint_ge(b->physical_sector_size, 4096);
	io_backing_close(b);
}
END_TEST

START_TEST(test_resize)
{
	struct io_backing *b;
	char *path = file_make("grow", 1 << 20, 0);

	ck_assert_int_eq(io_backing_open(path, 0, &b, NULL), 0);
	ck_assert_uint_eq(b->size, 1 << 20);
	ck_assert_int_eq(io_backing_refresh_size(b), 0);
	ck_assert_int_eq(truncate(path, 3 << 20), 0);
	ck_assert_int_eq(io_backing_refresh_size(b), 1);
	ck_assert_uint_eq(b->size, 3 << 20);
	ck_assert_int_eq(io_backing_refresh_size(b), 0);
	ck_assert_uint_eq(b->size, 3 << 20);
	ck_assert_int_eq(truncate(path, 2 << 20), 0);	/* shrinking is a change too */
	ck_assert_int_eq(io_backing_refresh_size(b), 1);
	ck_assert_uint_eq(b->size, 2 << 20);
	io_backing_close(b);
}
END_TEST

START_TEST(test_backing_open_bad)
{
	struct io_backing *b = NULL;
	char missing[PATH_MAX + 16];

	snprintf(missing, sizeof(missing), "%s/missing", test_dir);
	ck_assert_int_eq(io_backing_open(missing, 0, &b, NULL), -ENOENT);
	ck_assert_int_eq(io_backing_open(test_dir, IO_BACKING_READ_ONLY, &b, NULL), -EINVAL);
	ck_assert_int_eq(io_backing_open(test_dir, 0, &b, NULL), -EISDIR);
	ck_assert_int_eq(io_backing_open("/dev/null", 0, &b, NULL), -EINVAL);
	ck_assert_int_eq(io_backing_open("", 0, &b, NULL), -EINVAL);
	ck_assert_int_eq(io_backing_open(NULL, 0, &b, NULL), -EINVAL);
	ck_assert_int_eq(io_backing_open(file_make("flags", 4096, 0), 1u << 20, &b, NULL),
			 -EINVAL);
	ck_assert_ptr_null(b);
	io_backing_close(NULL);
}
END_TEST

/* --- block devices (loop devices; root only) ----------------------------- */

/* Made once per test case in the parent (unchecked fixture), so they are
 * removed even when a test fails. Empty names mean "not available". */
static char bdev_dir[PATH_MAX], bdev_img[PATH_MAX + 16], bdev_img4k[PATH_MAX + 16];
static char loop512[64], loop4k[64];

static void loop_attach(const char *img, const char *opts, char *ret, size_t len)
{
	char cmd[PATH_MAX + 128];
	FILE *f;

	ret[0] = '\0';
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s '%s' 2>/dev/null", opts, img);
	f = popen(cmd, "r");
	if (!f)
		return;
	if (!fgets(ret, (int)len, f))
		ret[0] = '\0';
	ret[strcspn(ret, "\n")] = '\0';
	if (pclose(f) != 0)
		ret[0] = '\0';
}

static void loop_detach(char *dev)
{
	char cmd[128];

	if (!dev[0])
		return;
	snprintf(cmd, sizeof(cmd), "losetup -d '%s'", dev);
	if (system(cmd) != 0)
		fprintf(stderr, "could not detach %s\n", dev);
	dev[0] = '\0';
}

static void bdev_setup(void)
{
	int fd;

	loop512[0] = loop4k[0] = '\0';
	if (geteuid() != 0)
		return;
	snprintf(bdev_dir, sizeof(bdev_dir), "/var/tmp/check-io-bdev.XXXXXX");
	if (!mkdtemp(bdev_dir))
		return;
	snprintf(bdev_img, sizeof(bdev_img), "%s/img", bdev_dir);
	snprintf(bdev_img4k, sizeof(bdev_img4k), "%s/img4k", bdev_dir);
	fd = open(bdev_img, O_RDWR | O_CREAT, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0)
		return;
	close(fd);
	fd = open(bdev_img4k, O_RDWR | O_CREAT, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0)
		return;
	close(fd);
	loop_attach(bdev_img, "", loop512, sizeof(loop512));
	loop_attach(bdev_img4k, "--sector-size 4096", loop4k, sizeof(loop4k));
}

static void bdev_teardown(void)
{
	char cmd[PATH_MAX + 16];

	loop_detach(loop512);
	loop_detach(loop4k);
	if (bdev_dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", bdev_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", bdev_dir);
	}
}

static bool bdev_have(const char *dev)
{
	if (!dev[0]) {
		fprintf(stderr, "SKIP: no loop device (needs root and losetup)\n");
		return false;
	}
	return true;
}

static uint64_t sysfs_queue_u64(const char *dev, const char *attr)
{
	char path[256];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/queue/%s", strrchr(dev, '/') + 1, attr);
	f = fopen(path, "r");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fscanf(f, "%llu", &v), 1);
	fclose(f);
	return v;
}

START_TEST(test_bdev_props)
{
	struct io_backing *b;

	if (!bdev_have(loop512) || !bdev_have(loop4k))
		return;
	ck_assert_int_eq(io_backing_open(loop512, 0, &b, NULL), 0);
	ck_assert(b->is_blockdev);
	ck_assert_uint_eq(b->size, 16 << 20);
	ck_assert_uint_eq(b->logical_sector_size, 512);
	ck_assert_uint_ge(b->physical_sector_size, 512);
	ck_assert_uint_eq(b->physical_sector_size & (b->physical_sector_size - 1), 0);
	ck_assert_int_eq(b->can_discard, sysfs_queue_u64(loop512, "discard_max_bytes") > 0);
	if (b->can_discard)
		ck_assert_uint_eq(b->discard_granularity,
				  sysfs_queue_u64(loop512, "discard_granularity"));
	/* Loop devices have no secure erase: the probe must say so. */
	ck_assert(!b->can_secure_discard);
	io_backing_close(b);

	ck_assert_int_eq(io_backing_open(loop512, IO_BACKING_READ_ONLY, &b, NULL), 0);
	ck_assert(b->read_only && !b->can_discard && !b->can_secure_discard);
	io_backing_close(b);

	/* The device's own 4096, not the file option; O_DIRECT follows it. */
	ck_assert_int_eq(io_backing_open(loop4k, IO_BACKING_DIRECT, &b, NULL), 0);
	ck_assert_uint_eq(b->logical_sector_size, 4096);
	ck_assert_uint_eq(b->physical_sector_size, 4096);
	ck_assert_uint_eq(b->dio_align, 4096);
	io_backing_close(b);
}
END_TEST

START_TEST(test_bdev_io)
{
	static struct collect c;
	static unsigned char buf[3][65536] __attribute__((aligned(4096)));
	struct iovec wiov[3] = { { buf[0], 4096 }, { buf[0] + 4096, 512 }, { buf[0] + 4608, 3584 } };
	struct iovec riov = { buf[1], 8192 }, ziov = { buf[2], 65536 };
	struct io_backing *b;
	struct io_engine *e;
	unsigned int i;

	memset(&c, 0, sizeof(c));
	if (!bdev_have(loop512))
		return;
	ck_assert_int_eq(io_backing_open(loop512, IO_BACKING_DIRECT, &b, NULL), 0);
	if (!engine_try_new(real_engines[_i], b, 8, &e))
		goto out;
	for (i = 0; i < 8192; i++)
		buf[0][i] = pattern(i, 3);
	ck_assert_int_eq(io_engine_writev(e, 1 << 20, wiov, 3, (void *)0), 0);
	ck_assert_int_eq(io_engine_submit(e), 1);
	collect_wait(e, &c, 1);
	ck_assert_int_eq(c.res[0], 8192);
	ck_assert_int_eq(io_engine_flush(e, (void *)1), 0);
	ck_assert_int_eq(io_engine_readv(e, 1 << 20, &riov, 1, (void *)2), 0);
	ck_assert_int_eq(io_engine_submit(e), 2);
	collect_wait(e, &c, 3);
	ck_assert_int_eq(c.res[1], 0);
	ck_assert_int_eq(c.res[2], 8192);
	ck_assert_int_eq(memcmp(buf[0], buf[1], 8192), 0);

	if (b->can_discard) {
		/* BLKDISCARD (a worker thread under io_uring too); a loop
		 * device punches its file, so the range reads back zeros. */
		memset(buf[2], 0xff, sizeof(buf[2]));
		ck_assert_int_eq(io_engine_discard(e, 1 << 20, 65536, false, (void *)3), 0);
		ck_assert_int_eq(io_engine_discard(e, 1 << 20, 65536, true, (void *)4),
				 -EOPNOTSUPP);
		ck_assert_int_eq(io_engine_submit(e), 1);
		collect_wait(e, &c, 4);
		ck_assert_int_eq(c.res[3], 0);
		ck_assert_int_eq(io_engine_readv(e, 1 << 20, &ziov, 1, (void *)5), 0);
		ck_assert_int_eq(io_engine_submit(e), 1);
		collect_wait(e, &c, 5);
		ck_assert_int_eq(c.res[5], 65536);
		for (i = 0; i < 65536 && buf[2][i] == 0; i++)
			;
		ck_assert_msg(i == 65536, "discarded byte %u is not zero", i);
		/* Misaligned for the block layer: its EINVAL is the result. */
		ck_assert_int_eq(io_engine_discard(e, 100, 512, false, (void *)6), 0);
		ck_assert_int_eq(io_engine_submit(e), 1);
		collect_wait(e, &c, 6);
		ck_assert_int_eq(c.res[6], -EINVAL);
	}
	io_engine_free(e);
out:
	io_backing_close(b);
}
END_TEST

/* A 4096-sector device refuses 512-byte direct I/O: the error surfaces. */
START_TEST(test_bdev_error)
{
	static struct collect c;
	static unsigned char buf[4096] __attribute__((aligned(4096)));
	struct iovec iov = { buf, 512 };
	struct io_backing *b;
	struct io_engine *e;

	memset(&c, 0, sizeof(c));
	if (!bdev_have(loop4k))
		return;
	ck_assert_int_eq(io_backing_open(loop4k, IO_BACKING_DIRECT, &b, NULL), 0);
	if (!engine_try_new(real_engines[_i], b, 4, &e))
		goto out;
	ck_assert_int_eq(io_engine_readv(e, 512, &iov, 1, (void *)0), 0);
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)1), 0);
	ck_assert_int_eq(io_engine_submit(e), 2);
	collect_wait(e, &c, 2);
	ck_assert_int_eq(c.res[0], -EINVAL);
	ck_assert_int_eq(c.res[1], -EINVAL);
	io_engine_free(e);
out:
	io_backing_close(b);
}
END_TEST

START_TEST(test_bdev_resize)
{
	struct io_backing *b;
	char cmd[128];

	if (!bdev_have(loop512))
		return;
	ck_assert_int_eq(io_backing_open(loop512, 0, &b, NULL), 0);
	ck_assert_int_eq(io_backing_refresh_size(b), 0);
	ck_assert_int_eq(truncate(bdev_img, 24 << 20), 0);
	snprintf(cmd, sizeof(cmd), "losetup -c '%s'", loop512);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(io_backing_refresh_size(b), 1);
	ck_assert_uint_eq(b->size, 24 << 20);
	ck_assert_int_eq(io_backing_refresh_size(b), 0);
	io_backing_close(b);
	ck_assert_int_eq(truncate(bdev_img, 16 << 20), 0);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* --- NBD exports (io-nbd.c), served by a real nbdkit ------------------- */

static char nbd_uri[PATH_MAX + 64], nbd_file[PATH_MAX + 64];
static pid_t nbd_pid;

/* nbdkit serving a 4 MiB file on a socket in test_dir; false (and a
 * SKIP line) where nbdkit is not installed. The blocksize-policy filter
 * advertises a 64 KiB maximum, so larger ops must be split. */
/* nbdkit in the foreground, our child: its pid is known at once (a
 * daemonized nbdkit writes its pidfile after its parent has returned). */
/* Whether a server accepts connections on the unix socket at path. */
static bool unix_accepts(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r == 0;
}

static void nbd_serve(const char *extra)
{
	char sock[PATH_MAX + 16];
	int i;

	snprintf(sock, sizeof(sock), "%s/nbd.sock", test_dir);
	snprintf(nbd_uri, sizeof(nbd_uri), "nbd+unix:///?socket=%s", sock);
	nbd_pid = fork();
	ck_assert_int_ge(nbd_pid, 0);
	if (nbd_pid == 0) {
		if (*extra)
			execlp("nbdkit", "nbdkit", "-f", extra, "-U", sock,
			       "--filter=blocksize-policy", "file", nbd_file,
			       "blocksize-maximum=65536", "blocksize-preferred=4096", (char *)NULL);
		else
			execlp("nbdkit", "nbdkit", "-f", "-U", sock,
			       "--filter=blocksize-policy", "file", nbd_file,
			       "blocksize-maximum=65536", "blocksize-preferred=4096", (char *)NULL);
		_exit(127);
	}
	/* nbdkit binds the socket before it listens: the file alone does not
	 * say it is ready (a connect in between is refused). */
	for (i = 0; i < 1000 && !unix_accepts(sock); i++)
		usleep(10 * 1000);
	ck_assert_msg(i < 1000, "nbdkit did not listen on %s", sock);
}

static bool nbd_start(const char *extra)
{
	if (system("command -v nbdkit >/dev/null 2>&1") != 0) {
		fprintf(stderr, "SKIP: nbdkit not installed\n");
		return false;
	}
	snprintf(nbd_file, sizeof(nbd_file), "%s", file_make("nbd.img", 4 << 20, 0x33));
	nbd_serve(extra);
	return true;
}

/* Kills the server and waits until it is gone, its socket with it. */
static void nbd_stop(void)
{
	char sock[PATH_MAX + 16];

	if (nbd_pid > 0) {
		kill(nbd_pid, SIGKILL);
		waitpid(nbd_pid, NULL, 0);
	}
	nbd_pid = 0;
	snprintf(sock, sizeof(sock), "%s/nbd.sock", test_dir);
	unlink(sock);
}

/* Reaps for ms milliseconds; how many callbacks ran. */
static unsigned int reap_for(struct io_engine *e, struct collect *c, int ms)
{
	struct pollfd pfd = { .fd = io_engine_fd(e), .events = POLLIN };
	unsigned int before = c->count;

	for (; ms > 0; ms -= 50)
		if (poll(&pfd, 1, 50) > 0)
			ck_assert_int_ge(io_engine_reap(e, on_done, c), 0);
	return c->count - before;
}

/* A failed test leaves no server behind. */
static void nbd_teardown(void)
{
	nbd_stop();
	dir_teardown();
}

START_TEST(test_nbd_roundtrip)
{
	static struct iovec iovs[8][6];
	static struct collect c;
	const size_t big = 1 << 20;
	unsigned char *buf, *check;
	struct io_backing *b;
	struct io_engine *e;
	struct iovec iov;
	unsigned int i, s;
	size_t pos;
	int fd;

	if (!nbd_start(""))
		return;
	ck_assert_int_eq(io_backing_open(nbd_uri, 0, &b, NULL), 0);
	ck_assert_str_eq(io_backing_kind(b), "nbd");
	ck_assert_int_eq(b->fd, -1);
	ck_assert_uint_eq(b->size, 4 << 20);
	ck_assert_uint_eq(b->logical_sector_size, 512);
	ck_assert(b->can_discard);
	/* Whatever file engine is asked for, an export gets its own. */
	ck_assert_int_eq(io_engine_new(IO_ENGINE_URING, b, 16, &e, NULL), 0);
	ck_assert_str_eq(io_engine_name(e), "nbd");
	ck_assert_int_eq(posix_memalign((void **)&buf, 4096, big + 8 * 4096), 0);
	ck_assert_int_eq(posix_memalign((void **)&check, 4096, big + 8 * 4096), 0);
	for (i = 0; i < big + 8 * 4096; i++)
		buf[i] = pattern(i, 3);

	/* One 1 MiB op (16 commands of 64 KiB) and eight 4 KiB ops in
	 * several pieces each (a bounce buffer), in one batch. */
	memset(&c, 0, sizeof(c));
	iov.iov_base = buf;
	iov.iov_len = big;
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)0), 0);
	for (i = 0; i < 8; i++) {
		const unsigned int *lay = seg_layouts[i % ARRAY_SIZE(seg_layouts)];

		pos = big + i * 4096;
		for (s = 0; s < 6 && lay[s]; s++) {
			iovs[i][s].iov_base = buf + pos;
			iovs[i][s].iov_len = lay[s];
			pos += lay[s];
		}
		ck_assert_int_eq(io_engine_writev(e, big + i * 4096, iovs[i], s,
						  (void *)(uintptr_t)(i + 1)), 0);
	}
	ck_assert_int_eq(io_engine_submit(e), 9);
	collect_wait(e, &c, 9);
	ck_assert_int_eq(c.res[0], (int)big);
	for (i = 1; i <= 8; i++)
		ck_assert_int_eq(c.res[i], 4096);

	/* In the file behind the export, independently of the engine. */
	fd = open(nbd_file, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, check, big + 8 * 4096, 0), (ssize_t)(big + 8 * 4096));
	close(fd);
	ck_assert_int_eq(memcmp(check, buf, big + 8 * 4096), 0);

	/* Back through the engine, again split and bounced. */
	memset(check, 0, big + 8 * 4096);
	memset(&c, 0, sizeof(c));
	iov.iov_base = check;
	ck_assert_int_eq(io_engine_readv(e, 0, &iov, 1, (void *)0), 0);
	for (i = 0; i < 8; i++) {
		const unsigned int *lay = seg_layouts[(i + 1) % ARRAY_SIZE(seg_layouts)];

		pos = big + i * 4096;
		for (s = 0; s < 6 && lay[s]; s++) {
			iovs[i][s].iov_base = check + pos;
			iovs[i][s].iov_len = lay[s];
			pos += lay[s];
		}
		ck_assert_int_eq(io_engine_readv(e, big + i * 4096, iovs[i], s,
						 (void *)(uintptr_t)(i + 1)), 0);
	}
	ck_assert_int_eq(io_engine_submit(e), 9);
	collect_wait(e, &c, 9);
	ck_assert_int_eq(memcmp(check, buf, big + 8 * 4096), 0);

	/* Flush, and a discard that reads back zeros. */
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_engine_flush(e, (void *)0), 0);
	ck_assert_int_eq(io_engine_discard(e, 65536, 131072, false, (void *)1), 0);
	ck_assert_int_eq(io_engine_discard(e, 0, 4096, true, (void *)2), -EOPNOTSUPP);
	ck_assert_int_eq(io_engine_submit(e), 2);
	collect_wait(e, &c, 2);
	ck_assert_int_eq(c.res[0], 0);
	ck_assert_int_eq(c.res[1], 0);
	memset(&c, 0, sizeof(c));
	iov.iov_len = 131072;
	ck_assert_int_eq(io_engine_readv(e, 65536, &iov, 1, (void *)0), 0);
	ck_assert_int_eq(io_engine_submit(e), 1);
	collect_wait(e, &c, 1);
	for (i = 0; i < 131072; i++)
		ck_assert_msg(check[i] == 0, "byte %u of the discarded range is %u", i, check[i]);

	free(check);
	free(buf);
	io_engine_free(e);
	io_backing_close(b);
	nbd_stop();
}
END_TEST

START_TEST(test_nbd_readonly)
{
	static struct collect c;
	unsigned char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_backing *b;
	struct io_engine *e;
	struct io_error err;

	if (!nbd_start("-r"))
		return;
	ck_assert_int_eq(io_backing_open(nbd_uri, 0, &b, &err), -EROFS);
	ck_assert_ptr_nonnull(strstr(err.msg, "read-only"));
	ck_assert_int_eq(io_backing_open(nbd_uri, IO_BACKING_READ_ONLY, &b, NULL), 0);
	ck_assert(!b->can_discard);
	ck_assert_int_eq(io_engine_new(IO_ENGINE_AUTO, b, 4, &e, NULL), 0);
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)0), -EROFS);
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_engine_readv(e, 512, &iov, 1, (void *)0), 0);
	ck_assert_int_eq(io_engine_submit(e), 1);
	collect_wait(e, &c, 1);
	ck_assert_int_eq(c.res[0], 4096);
	ck_assert_uint_eq(buf[0], 0x33 ^ 1);	/* file_make's fill of sector 1 */
	io_engine_free(e);
	io_backing_close(b);
	nbd_stop();
}
END_TEST

/* A server that dies: what was in flight and what comes after fail, each
 * exactly once; nothing blocks. */
START_TEST(test_nbd_server_dies)
{
	static struct collect c;
	unsigned char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_backing *b;
	struct io_engine *e;
	unsigned int i;

	if (!nbd_start(""))
		return;
	ck_assert_int_eq(io_backing_open(nbd_uri, 0, &b, NULL), 0);
	ck_assert_int_eq(io_engine_new(IO_ENGINE_AUTO, b, 8, &e, NULL), 0);
	nbd_stop();
	usleep(100 * 1000);
	memset(&c, 0, sizeof(c));
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(io_engine_readv(e, i * 4096, &iov, 1, (void *)(uintptr_t)i), 0);
	io_engine_submit(e);
	collect_wait(e, &c, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_lt(c.res[i], 0);
	ck_assert_int_eq(io_engine_writev(e, 0, &iov, 1, (void *)4), 0);
	io_engine_submit(e);
	collect_wait(e, &c, 5);
	ck_assert_int_lt(c.res[4], 0);
	io_engine_free(e);
	io_backing_close(b);
}
END_TEST

/* The server restarts: requests issued while it is away wait for the new
 * connection and complete there, with their data. */
START_TEST(test_nbd_reconnect)
{
	static struct collect c;
	static unsigned char a[4096], b[4096], back[4096];
	struct iovec ia = { a, sizeof(a) }, ib = { b, sizeof(b) }, ir = { back, sizeof(back) };
	struct io_backing *bk;
	struct io_engine *e;
	int fd;

	if (!nbd_start(""))
		return;
	ck_assert_int_eq(io_backing_open(nbd_uri, 0, &bk, NULL), 0);
	bk->reconnect_ms = 20000;
	ck_assert_int_eq(io_engine_new(IO_ENGINE_AUTO, bk, 8, &e, NULL), 0);
	memset(a, 0xa1, sizeof(a));
	memset(b, 0xb2, sizeof(b));
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_engine_writev(e, 0, &ia, 1, (void *)0), 0);
	io_engine_submit(e);
	collect_wait(e, &c, 1);
	ck_assert_int_eq(c.res[0], 4096);

	nbd_stop();
	ck_assert_int_eq(io_engine_writev(e, 8192, &ib, 1, (void *)1), 0);
	ck_assert_int_eq(io_engine_readv(e, 0, &ir, 1, (void *)2), 0);
	io_engine_submit(e);
	ck_assert_uint_eq(reap_for(e, &c, 1500), 0);	/* they wait */
	ck_assert_uint_eq(io_engine_inflight(e), 2);
	nbd_serve("");
	collect_wait(e, &c, 3);
	ck_assert_int_eq(c.res[1], 4096);
	ck_assert_int_eq(c.res[2], 4096);
	ck_assert_int_eq(memcmp(back, a, sizeof(a)), 0);
	fd = open(nbd_file, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, back, sizeof(back), 8192), 4096);
	close(fd);
	ck_assert_int_eq(memcmp(back, b, sizeof(b)), 0);
	io_engine_free(e);
	io_backing_close(bk);
	nbd_stop();
}
END_TEST

/* A server that stays away: requests fail once their wait is over, and a
 * server that comes back later serves new ones. */
START_TEST(test_nbd_reconnect_gives_up)
{
	static struct collect c;
	static unsigned char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct io_backing *bk;
	struct io_engine *e;

	if (!nbd_start(""))
		return;
	ck_assert_int_eq(io_backing_open(nbd_uri, 0, &bk, NULL), 0);
	bk->reconnect_ms = 500;
	ck_assert_int_eq(io_engine_new(IO_ENGINE_AUTO, bk, 8, &e, NULL), 0);
	nbd_stop();
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(io_engine_readv(e, 0, &iov, 1, (void *)0), 0);
	io_engine_submit(e);
	collect_wait(e, &c, 1);
	ck_assert_int_eq(c.res[0], -ENOTCONN);
	nbd_serve("");
	reap_for(e, &c, 1500);		/* the next attempt connects */
	ck_assert_int_eq(io_engine_readv(e, 0, &iov, 1, (void *)1), 0);
	io_engine_submit(e);
	collect_wait(e, &c, 2);
	ck_assert_int_eq(c.res[1], 4096);
	io_engine_free(e);
	io_backing_close(bk);
	nbd_stop();
}
END_TEST

/* Open fds of this process, to see that a failed start leaves none. */
static unsigned int fd_count(void)
{
	struct dirent *de;
	unsigned int n = 0;
	DIR *dir = opendir("/proc/self/fd");

	ck_assert_ptr_nonnull(dir);
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* A ring whose first connection fails gets an error that says why, and
 * the half-built engine leaves nothing behind (its epoll fd, eventfd and
 * timer were once kept open; valgrind sees the memory). */
START_TEST(test_nbd_engine_start_fails_clean)
{
	struct io_backing *b;
	struct io_engine *e = NULL;
	struct io_error err;
	unsigned int before;
	int r;

	if (!nbd_start(""))
		return;
	ck_assert_int_eq(io_backing_open(nbd_uri, 0, &b, NULL), 0);
	nbd_stop();
	before = fd_count();
	r = io_engine_new(IO_ENGINE_AUTO, b, 8, &e, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(e);
	ck_assert_msg(*err.msg, "no reason given for %s", strerror(-r));
	ck_assert_uint_eq(fd_count(), before);
	io_backing_close(b);
}
END_TEST

START_TEST(test_nbd_refusals)
{
	struct io_backing *b;
	struct io_engine *e;
	enum io_engine_kind k;
	char uri[PATH_MAX + 64];

	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/nobody.sock", test_dir);
	ck_assert_int_lt(io_backing_open(uri, 0, &b, NULL), 0);
	ck_assert_int_lt(io_backing_open("nbd://", 0, &b, NULL), 0);
	ck_assert(!io_target_is_local("nbds+unix:///x?socket=/s"));
	ck_assert(io_target_is_local("/srv/nbd://x"));
	ck_assert(io_target_is_local("nbdx://host"));
	/* nbd is not an engine to ask for: a file gets a file engine. */
	ck_assert_int_eq(io_engine_kind_parse("nbd", &k), -EINVAL);
	ck_assert_int_eq(io_backing_open(file_make("plain", 1 << 20, 0), 0, &b, NULL), 0);
	ck_assert_str_eq(io_backing_kind(b), "file");
	ck_assert_int_eq(io_engine_new(IO_ENGINE_THREAD, b, 4, &e, NULL), 0);
	ck_assert_str_eq(io_engine_name(e), "thread");
	io_engine_free(e);
	io_backing_close(b);
}
END_TEST

static Suite *io_suite(void)
{
	Suite *s = suite_create("io");
	TCase *tc;

	tc = tcase_create("engines");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_roundtrip_small, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_roundtrip_deep, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_roundtrip_direct, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_flush, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_discard, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_discard_direct, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_read_past_eof, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_write_error, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_direct_misaligned, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_readonly, 0, ARRAY_SIZE(all_engines));
	tcase_add_loop_test(tc, test_depth_bound, 0, ARRAY_SIZE(all_engines));
	tcase_add_loop_test(tc, test_requeue_from_callback, 0, ARRAY_SIZE(all_engines));
	tcase_add_loop_test(tc, test_free_inflight, 0, ARRAY_SIZE(all_engines));
	tcase_add_loop_test(tc, test_wait, 0, ARRAY_SIZE(all_engines));
	tcase_add_test(tc, test_null_engine);
	tcase_add_loop_test(tc, test_bad_args, 0, ARRAY_SIZE(bad_ops));
	tcase_add_test(tc, test_engine_new_bad);
	tcase_add_test(tc, test_auto_selection);
	suite_add_tcase(s, tc);

	tc = tcase_create("backing");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, test_direct_reports_alignment);
	tcase_add_test(tc, test_sector_sizes);
	tcase_add_test(tc, test_resize);
	tcase_add_test(tc, test_backing_open_bad);
	suite_add_tcase(s, tc);

	tc = tcase_create("blockdev");
	tcase_add_unchecked_fixture(tc, bdev_setup, bdev_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bdev_props);
	tcase_add_loop_test(tc, test_bdev_io, 0, ARRAY_SIZE(real_engines));
	tcase_add_loop_test(tc, test_bdev_error, 0, ARRAY_SIZE(real_engines));
	tcase_add_test(tc, test_bdev_resize);
	suite_add_tcase(s, tc);

	tc = tcase_create("nbd");
	tcase_add_checked_fixture(tc, dir_setup, nbd_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_nbd_roundtrip);
	tcase_add_test(tc, test_nbd_readonly);
	tcase_add_test(tc, test_nbd_server_dies);
	tcase_add_test(tc, test_nbd_reconnect);
	tcase_add_test(tc, test_nbd_reconnect_gives_up);
	tcase_add_test(tc, test_nbd_refusals);
	tcase_add_test(tc, test_nbd_engine_start_fails_clean);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(io_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
