/* The ring's journal and recovery: opening or creating the journal at
 * start, and from what an earlier process left, the responses to publish
 * again and the requests to issue again (in ring order, before anything
 * new is read). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RING_INTERNAL
#include "ring-int.h"

/* Recovered requests go first, in ring order, before anything new is
 * read: a barrier among them still orders what follows it. They were
 * consumed by the process that died, so they are taken even while the
 * ring stops, and failed when it halted. */
bool ring_replay(struct ring *r)
{
	bool took = false;

	while (r->replay_pos < r->nr_replay && !r->barrier && !r->indirect_pending) {
		struct rreq *q = r->replay[r->replay_pos++];
		struct blkif_req req = q->req;

		took = true;
		if (r->halted || r->cfg.recover_fail) {
			q->refused = true;
			rreq_finish(r, q, BLKIF_RSP_ERROR);
			continue;
		}
		ring_take_req(r, q, &req);
	}
	if (took) {
		ring_copy_flush(r);
		ring_barrier_check(r);
	}
	return took;
}

bool ring_replay_pending(const struct ring *r)
{
	return r->replay_pos < r->nr_replay;
}

/* Takes request slot k off the free list and holds it. */
static struct rreq *ring_hold_slot(struct ring *r, unsigned int k)
{
	struct rreq **pp, *q = &r->reqs[k];

	for (pp = &r->free; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			rreq_hold(r, q);
			return q;
		}
	}
	return NULL;
}

/* Resumes from the journal an earlier process left: publishes again the
 * responses it wrote but did not publish (the same bytes in the same
 * slots), retires what it answered, and queues what it did not answer
 * for the thread to issue again, in ring order. The ring is mapped; the
 * thread has not started. */
static int ring_recover(struct ring *r, const struct journal_ring_id *id, RING_IDX rsp_prod,
			RING_IDX req_prod)
{
	struct journal_plan *plan;
	struct journal *j = NULL;
	unsigned int i;
	RING_IDX idx;
	int err;

	plan = malloc(sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	err = journal_open(r->cfg.journal_dir, id, r->layout.nr_ents, &j);
	if (err < 0)
		goto out;
	err = journal_plan(j, rsp_prod, req_prod, plan);
	if (err < 0) {
		ring_log(r, LOG_LEVEL_ERR, err, "the journal does not fit the ring (req_prod %u "
			 "rsp_prod %u)", req_prod, rsp_prod);
		goto out;
	}
	for (idx = plan->rsp_published; idx != plan->rsp_written; idx++) {
		struct blkif_rsp rsp;

		err = journal_rsp(j, idx, &rsp);
		if (err < 0) {
			ring_log(r, LOG_LEVEL_ERR, 0, "the journal lacks response %u", idx);
			goto out;
		}
		blkif_rsp_encode(r->cfg.abi, blkif_ring_slot(&r->layout, r->sring, idx), &rsp);
	}
	r->replay = calloc(plan->nr_replay ? plan->nr_replay : 1, sizeof(*r->replay));
	if (!r->replay) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < plan->nr_replay; i++) {
		struct rreq *q = ring_hold_slot(r, plan->replay[i]);

		if (!q) {
			err = -EUCLEAN;
			goto out;
		}
		journal_req(j, plan->replay[i], &q->seq, &q->req);
		r->replay[r->nr_replay++] = q;
	}
	for (i = 0; i < plan->nr_answered; i++)
		journal_retire(j, plan->answered[i]);
	r->req_cons = plan->req_cons;
	r->rsp_prod_pvt = plan->rsp_written;
	r->rsp_pushed = plan->rsp_published;
	r->nr_republished = plan->rsp_written - plan->rsp_published;
	r->journal = j;
	j = NULL;
	r->recovered = true;
	r->notify_once = true;
	ring_log(r, LOG_LEVEL_INFO, 0, "recovered: resuming at req_cons %u, %u response%s "
		 "published again, %u request%s to %s", r->req_cons, r->nr_republished,
		 r->nr_republished == 1 ? "" : "s", r->nr_replay, r->nr_replay == 1 ? "" : "s",
		 r->cfg.recover_fail ? "fail" : "issue again");
out:
	journal_close(j);
	free(plan);
	return err;
}

/* The journal of a new connection, or of the one an earlier process left
 * (recover): without one, a restarted process resumes at rsp_prod, which
 * is right only after a clean stop. */
int ring_journal_open(struct ring *r, RING_IDX rsp_prod, RING_IDX req_prod)
{
	struct journal_ring_id id = {
		.fe_domid = r->cfg.fe_domid,
		.devid = r->cfg.devid,
		.queue = r->index,
		.order = r->cfg.order,
		.abi = (uint32_t)r->cfg.abi,
		.remote_port = r->cfg.remote_port,
		.start = rsp_prod,
	};
	int err;

	memcpy(id.refs, r->cfg.refs, sizeof(id.refs));
	if (r->cfg.recover) {
		err = ring_recover(r, &id, rsp_prod, req_prod);
		if (err == 0)
			return 0;
		if (err != -ENOENT && err != -ESTALE && err != -EPROTONOSUPPORT)
			return err;
		ring_log(r, LOG_LEVEL_WARN, 0, "no journal of this ring (%s): resuming at "
			 "rsp_prod %u", err == -ENOENT ? "none left" :
			 err == -ESTALE ? "another ring's" : "a format this blkbackd does not read",
			 rsp_prod);
	}
	return journal_create(r->cfg.journal_dir, &id, r->layout.nr_ents, &r->journal);
}
