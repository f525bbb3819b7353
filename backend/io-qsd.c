/* Disk image formats (qcow2, vmdk, vhdx, vdi, vpc...) through
 * qemu-storage-daemon: a target FORMAT:/path names the format, never
 * probed (a guest could plant a qcow2 header in a raw image). This file
 * holds the formats and the provider: the backing is the NBD export of
 * the image's daemon (io-qsd-daemon.c), and the NBD engine serves the
 * rings from there, waiting for a daemon that died and is restarted. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io-qsd.h"
#include "util.h"

/* The formats QEMU writes and reads; they are named in the target. The
 * read-only ones (dmg, cloop, bochs) need mode=r. */
static const char *const qsd_formats[] = {
	"qcow2", "qcow", "qed", "vmdk", "vhdx", "vdi", "vpc", "parallels",
	"dmg", "cloop", "bochs",
};

#define QSD_FORMATS_NR (sizeof(qsd_formats) / sizeof(qsd_formats[0]))

/* The format a target names ("qcow2:/path" -> "qcow2"), or NULL. */
const char *qsd_format_of(const char *target)
{
	size_t i, n;

	for (i = 0; i < QSD_FORMATS_NR; i++) {
		n = strlen(qsd_formats[i]);
		if (strncmp(target, qsd_formats[i], n) == 0 && target[n] == ':')
			return qsd_formats[i];
	}
	return NULL;
}

static bool qsd_claims(const char *target)
{
	return qsd_format_of(target) != NULL;
}

/* ---- the backing: the daemon's NBD export ---- */

struct qsd_backing {
	struct qsd_daemon *daemon;
	struct io_backing *nbd;		/* the export, opened by the NBD provider */
};

static int qsd_open(struct io_backing *b, unsigned int flags, struct io_error *err)
{
	struct qsd_backing *qb;
	struct io_backing *n;
	int r;

	b->direct = false;
	qb = calloc(1, sizeof(*qb));
	if (!qb)
		return -ENOMEM;
	b->priv = qb;
	r = qsd_daemon_get(b->path, b->read_only, &qb->daemon, err);
	if (r < 0)
		return r;
	r = io_backing_open(qb->daemon->uri, flags, &qb->nbd, err);
	if (r < 0)
		return r;
	n = qb->nbd;
	b->size = n->size;
	b->logical_sector_size = n->logical_sector_size;
	b->physical_sector_size = n->physical_sector_size;
	b->dio_align = n->dio_align;
	b->can_discard = n->can_discard;
	b->discard_granularity = n->discard_granularity;
	b->discard_alignment = n->discard_alignment;
	return 0;
}

/* Also undoes a failed open. */
static void qsd_close(struct io_backing *b)
{
	struct qsd_backing *qb = b->priv;

	if (!qb)
		return;
	io_backing_close(qb->nbd);
	if (qb->daemon)
		qsd_daemon_put(qb->daemon);
	free(qb);
	b->priv = NULL;
}

/* The image file a format target names. */
static void qsd_identify(const char *target, struct io_target_id *ret)
{
	const char *format = qsd_format_of(target);
	struct stat st;

	if (format && target[strlen(format) + 1] == '/' &&
	    stat(target + strlen(format) + 1, &st) == 0 && S_ISREG(st.st_mode))
		io_target_id_of_stat(&st, ret);
}

static int qsd_local_path(const char *target, char *buf, size_t len)
{
	const char *format = qsd_format_of(target);

	if (!format)
		return 0;
	if ((size_t)snprintf(buf, len, "%s", target + strlen(format) + 1) >= len)
		return -ENAMETOOLONG;
	return 1;
}

/* One image, whichever path names it, in the same format. */
static bool qsd_is_target(const struct io_backing *b, const char *target,
			  const struct io_target_id *id)
{
	const struct qsd_backing *qb = b->priv;

	return qsd_format_of(target) == qb->daemon->format && id && id->known && !id->block &&
	       id->dev == qb->daemon->dev && id->ino == qb->daemon->ino;
}

/* ---- the engine: NBD's, on the export ---- */

/* The ring is served by the NBD engine on the export's backing: it takes
 * its URI and limits from there, and the owner's reconnect bound. */
static int qsd_engine_init(struct io_engine *e, struct io_error *err)
{
	const struct qsd_backing *qb = e->backing->priv;

	qb->nbd->reconnect_ms = e->backing->reconnect_ms;
	e->backing = qb->nbd;
	return io_provider_nbd.init(e, err);
}

static void qsd_engine_done(struct io_engine *e)
{
	io_provider_nbd.done(e);
}

static void qsd_engine_queue(struct io_engine *e, struct io_op *op)
{
	io_provider_nbd.queue(e, op);
}

static int qsd_engine_submit(struct io_engine *e)
{
	return io_provider_nbd.submit(e);
}

static int qsd_engine_reap(struct io_engine *e)
{
	return io_provider_nbd.reap(e);
}

static int qsd_engine_fd(const struct io_engine *e)
{
	return io_provider_nbd.fd(e);
}

const struct io_provider io_provider_qsd = {
	.name = "qsd",
	.claims = qsd_claims,
	.open = qsd_open,
	.close = qsd_close,
	.is_target = qsd_is_target,
	.identify = qsd_identify,
	.local_path = qsd_local_path,
	.sweep = qsd_sweep,
	.init = qsd_engine_init,
	.done = qsd_engine_done,
	.queue = qsd_engine_queue,
	.submit = qsd_engine_submit,
	.reap = qsd_engine_reap,
	.fd = qsd_engine_fd,
};
