/* xenstore transactions: a private copy of the tree taken at START, the
 * generation each touched node had then (0 = absent) and a log of changes.
 * Commit fails with EAGAIN if a touched node differs in the main tree now,
 * else replays the log there, firing watches. As in xenstored, a node's
 * child list is part of it, so creations under a listed node conflict. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xensimd.h"

struct xs_tx_note {
	char *path;
	uint64_t gen;
};

enum xs_tx_kind { XS_TX_WRITE, XS_TX_MKDIR, XS_TX_RM, XS_TX_SET_PERMS };

struct xs_tx_rec {
	enum xs_tx_kind kind;
	char *path;
	char *val;
	size_t len;
	struct xs_perms perms;
	struct xs_tx_rec *next;
};

int xs_tx_new(const struct xs_tree *main, uint32_t id, struct xs_tx **ret)
{
	struct xs_tx *tx = calloc(1, sizeof(*tx));
	int r;

	if (!tx)
		return -ENOMEM;
	r = xs_tree_clone(main, &tx->tree);
	if (r < 0) {
		free(tx);
		return r;
	}
	tx->id = id;
	*ret = tx;
	return 0;
}

void xs_tx_free(struct xs_tx *tx)
{
	size_t i;

	if (!tx)
		return;
	xs_tree_free(tx->tree);
	for (i = 0; i < tx->nr_notes; i++)
		free(tx->notes[i].path);
	free(tx->notes);
	while (tx->log) {
		struct xs_tx_rec *rec = tx->log;

		tx->log = rec->next;
		free(rec->path);
		free(rec->val);
		xs_perms_done(&rec->perms);
		free(rec);
	}
	free(tx);
}

static void xs_tx_note(void *opaque, const char *path, uint64_t gen)
{
	struct xs_tx *tx = opaque;
	size_t i;

	/* Only the first touch counts: later ones see the tx's own changes. */
	for (i = 0; i < tx->nr_notes; i++)
		if (strcmp(tx->notes[i].path, path) == 0)
			return;
	if (tx->nr_notes == tx->cap_notes) {
		size_t cap = tx->cap_notes ? 2 * tx->cap_notes : 16;
		struct xs_tx_note *n = realloc(tx->notes, cap * sizeof(*n));

		if (!n)
			goto fail;
		tx->notes = n;
		tx->cap_notes = cap;
	}
	tx->notes[tx->nr_notes].path = strdup(path);
	if (!tx->notes[tx->nr_notes].path)
		goto fail;
	tx->notes[tx->nr_notes++].gen = gen;
	return;

fail:
	/* Without the note a conflict could go unseen: fail the commit. */
	tx->failed = true;
}

void xs_tx_op(struct xs_tx *tx, struct xs_op *op)
{
	op->note = xs_tx_note;
	op->note_opaque = tx;
	op->change = NULL;
	op->change_opaque = NULL;
}

static struct xs_tx_rec *xs_tx_log(struct xs_tx *tx, enum xs_tx_kind kind, const char *path)
{
	struct xs_tx_rec *rec = calloc(1, sizeof(*rec));

	if (!rec || !(rec->path = strdup(path))) {
		free(rec);
		tx->failed = true;
		return NULL;
	}
	rec->kind = kind;
	if (tx->log_tail)
		tx->log_tail->next = rec;
	else
		tx->log = rec;
	tx->log_tail = rec;
	return rec;
}

void xs_tx_log_write(struct xs_tx *tx, const char *path, const void *val, size_t len)
{
	struct xs_tx_rec *rec = xs_tx_log(tx, XS_TX_WRITE, path);

	if (!rec)
		return;
	rec->val = malloc(len ? len : 1);
	if (!rec->val) {
		tx->failed = true;
		return;
	}
	memcpy(rec->val, val, len);
	rec->len = len;
}

void xs_tx_log_mkdir(struct xs_tx *tx, const char *path)
{
	xs_tx_log(tx, XS_TX_MKDIR, path);
}

void xs_tx_log_rm(struct xs_tx *tx, const char *path)
{
	xs_tx_log(tx, XS_TX_RM, path);
}

void xs_tx_log_set_perms(struct xs_tx *tx, const char *path, const struct xs_perms *p)
{
	struct xs_tx_rec *rec = xs_tx_log(tx, XS_TX_SET_PERMS, path);

	if (rec && xs_perms_copy(p, &rec->perms) < 0)
		tx->failed = true;
}

int xs_tx_commit(struct xs_tx *tx, struct xs_tree *main, const struct xs_op *op)
{
	struct xs_op replay = *op;
	struct xs_tx_rec *rec;
	size_t i;

	if (tx->failed)
		return -ENOMEM;
	for (i = 0; i < tx->nr_notes; i++)
		if (xs_tree_gen(main, tx->notes[i].path) != tx->notes[i].gen) {
			log_debug("xenstore: tx %u conflict on %s", tx->id, tx->notes[i].path);
			return -EAGAIN;
		}
	/* Nothing the tx saw has changed, so each logged change applies to
	 * the same state it was checked against: no checks again. */
	replay.replay = true;
	replay.note = NULL;
	for (rec = tx->log; rec; rec = rec->next) {
		int r = 0;

		switch (rec->kind) {
		case XS_TX_WRITE:
			r = xs_tree_write(main, &replay, rec->path, rec->val, rec->len);
			break;
		case XS_TX_MKDIR:
			r = xs_tree_mkdir(main, &replay, rec->path);
			break;
		case XS_TX_RM:
			r = xs_tree_rm(main, &replay, rec->path);
			break;
		case XS_TX_SET_PERMS:
			r = xs_tree_set_perms(main, &replay, rec->path, &rec->perms);
			break;
		}
		if (r < 0)
			log_errno(LOG_LEVEL_WARN, r, "xenstore: commit of %s", rec->path);
	}
	return 0;
}
