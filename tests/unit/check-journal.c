/* Unit tests for backend/journal.c: what a restarted blkbackd concludes
 * from a journal and the shared indices. Each case plays the ring thread's
 * calls up to the moment it "dies" (the journal is closed without any
 * cleanup), reopens the file as the next process would and checks the
 * plan: where to resume, what to publish again, what to issue again and in
 * which order, and the refusals of indices a guest scribbled on. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"
#include "util.h"

#define NR_ENTS 32u
#define MAX_STEPS 16
#define MAX_SEQS 8

static char dir[] = "/tmp/check-journal.XXXXXX";

enum step_kind { END, CONSUME, RESPOND, RETIRE };

/* CONSUME: slot, seq. RESPOND: idx (response ring index), seq. RETIRE: slot. */
struct step {
	enum step_kind kind;
	unsigned int a;
	uint32_t b;
};

struct plan_case {
	const char *name;
	uint32_t start;			/* rsp_prod when the ring connected */
	struct step steps[MAX_STEPS];
	uint32_t rsp_prod, req_prod;	/* shared indices the new process reads */
	int rc;
	uint32_t req_cons, rsp_written;
	unsigned int nr_replay;
	uint32_t replay_seq[MAX_SEQS];	/* in the order they must be issued */
	unsigned int nr_answered;
};

static const struct plan_case plan_cases[] = {
	{ "nothing happened", 100, { { END, 0, 0 } }, 100, 100, 0, 100, 100, 0, { 0 }, 0 },
	{ "three in flight, none answered", 100,
	  { { CONSUME, 0, 100 }, { CONSUME, 1, 101 }, { CONSUME, 2, 102 }, { END, 0, 0 } },
	  100, 105, 0, 103, 100, 3, { 100, 101, 102 }, 0 },
	{ "answered and published: nothing to redo", 100,
	  { { CONSUME, 0, 100 }, { RESPOND, 100, 100 }, { RETIRE, 0, 0 }, { END, 0, 0 } },
	  101, 101, 0, 101, 101, 0, { 0 }, 0 },
	{ "answered, not published: republish, do not issue again", 100,
	  { { CONSUME, 0, 100 }, { CONSUME, 1, 101 }, { RESPOND, 100, 101 }, { RETIRE, 1, 0 },
	    { END, 0, 0 } },
	  100, 102, 0, 102, 101, 1, { 100 }, 0 },
	{ "died between response and retire, unpublished", 100,
	  { { CONSUME, 0, 100 }, { CONSUME, 1, 101 }, { RESPOND, 100, 101 }, { END, 0, 0 } },
	  100, 102, 0, 102, 101, 1, { 100 }, 1 },
	{ "died between response and retire, published", 100,
	  { { CONSUME, 0, 100 }, { RESPOND, 100, 100 }, { END, 0, 0 } },
	  101, 101, 0, 101, 101, 0, { 0 }, 1 },
	{ "out-of-order answers: replay in ring order, not slot order", 100,
	  { { CONSUME, 3, 100 }, { CONSUME, 1, 101 }, { CONSUME, 0, 102 }, { CONSUME, 2, 103 },
	    { RESPOND, 100, 102 }, { RETIRE, 0, 0 }, { END, 0, 0 } },
	  101, 104, 0, 104, 101, 3, { 100, 101, 103 }, 0 },
	{ "indices wrap at 2^32", 0xfffffffeu,
	  { { CONSUME, 0, 0xfffffffeu }, { CONSUME, 1, 0xffffffffu }, { CONSUME, 2, 0 },
	    { RESPOND, 0xfffffffeu, 0xffffffffu }, { RETIRE, 1, 0 }, { END, 0, 0 } },
	  0xfffffffeu, 1, 0, 1, 0xffffffffu, 2, { 0xfffffffeu, 0 }, 0 },
	{ "guest moved rsp_prod past what we wrote", 100,
	  { { CONSUME, 0, 100 }, { END, 0, 0 } }, 105, 105, -EPROTO, 0, 0, 0, { 0 }, 0 },
	{ "guest moved rsp_prod far behind", 100,
	  { { CONSUME, 0, 100 }, { RESPOND, 100, 100 }, { RETIRE, 0, 0 }, { END, 0, 0 } },
	  100 - NR_ENTS, 101, -EPROTO, 0, 0, 0, { 0 }, 0 },
	{ "guest's req_prod more than a ring ahead", 100,
	  { { CONSUME, 0, 100 }, { END, 0, 0 } }, 100, 101 + NR_ENTS + 1, -EPROTO, 0, 0, 0,
	  { 0 }, 0 },
};

static struct journal_ring_id ring_id(uint32_t start)
{
	struct journal_ring_id id = { .fe_domid = 5, .devid = 51712, .queue = 0, .order = 0,
				      .abi = 1, .remote_port = 7, .start = start };

	id.refs[0] = 8;
	return id;
}

static void play(struct journal *j, const struct step *steps)
{
	struct blkif_req req;
	unsigned int i;

	for (i = 0; i < MAX_STEPS && steps[i].kind != END; i++) {
		switch (steps[i].kind) {
		case CONSUME:
			memset(&req, 0, sizeof(req));
			req.operation = BLKIF_OP_WRITE;
			req.id = 0x1000 + steps[i].b;
			req.sector_number = steps[i].b;
			journal_consume(j, steps[i].a, steps[i].b, &req);
			break;
		case RESPOND:
			journal_respond(j, steps[i].a, steps[i].b, 0x1000 + steps[i].b,
					BLKIF_OP_WRITE, BLKIF_RSP_OKAY);
			break;
		case RETIRE:
			journal_retire(j, steps[i].a);
			break;
		case END:
			break;
		}
	}
}

START_TEST(test_plan_table)
{
	struct plan_case c = plan_cases[_i];
	struct journal_ring_id id;
	struct journal_plan *plan = malloc(sizeof(*plan));
	struct journal *j;
	unsigned int k;
	int r;

	id = ring_id(c.start);
	ck_assert_ptr_nonnull(plan);
	ck_assert_int_eq(journal_create(dir, &id, NR_ENTS, &j), 0);
	play(j, c.steps);
	journal_close(j);	/* the process dies: the file stays */

	id.start = 0;		/* the next process does not know it */
	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS, &j), 0);
	r = journal_plan(j, c.rsp_prod, c.req_prod, plan);
	ck_assert_msg(r == c.rc, "%s: plan %d, wanted %d", c.name, r, c.rc);
	if (r == 0) {
		ck_assert_msg(plan->req_cons == c.req_cons, "%s: req_cons %u, wanted %u", c.name,
			      plan->req_cons, c.req_cons);
		ck_assert_uint_eq(plan->rsp_written, c.rsp_written);
		ck_assert_uint_eq(plan->rsp_published, c.rsp_prod);
		ck_assert_msg(plan->nr_replay == c.nr_replay, "%s: %u to replay, wanted %u",
			      c.name, plan->nr_replay, c.nr_replay);
		for (k = 0; k < plan->nr_replay; k++) {
			struct blkif_req req;
			uint32_t seq;

			journal_req(j, plan->replay[k], &seq, &req);
			ck_assert_msg(seq == c.replay_seq[k], "%s: replay %u is seq %u, wanted %u",
				      c.name, k, seq, c.replay_seq[k]);
			/* The private copy comes back whole. */
			ck_assert_uint_eq(req.id, 0x1000 + seq);
			ck_assert_uint_eq(req.sector_number, seq);
			ck_assert_ptr_null(req.indirect_segs);
		}
		ck_assert_uint_eq(plan->nr_answered, c.nr_answered);
	}
	journal_remove(j);
	free(plan);
}
END_TEST

/* A slow request (a flush, say) stays in flight while many ring's worth
 * of others come and go: it is still found, and issued again first. */
START_TEST(test_old_request)
{
	struct journal_ring_id id = ring_id(10);
	struct journal_plan *plan = malloc(sizeof(*plan));
	struct blkif_req req = { .operation = BLKIF_OP_FLUSH_DISKCACHE };
	struct blkif_req back;
	struct journal *j;
	uint32_t seq;

	ck_assert_ptr_nonnull(plan);
	ck_assert_int_eq(journal_create(dir, &id, NR_ENTS, &j), 0);
	journal_consume(j, 5, 10, &req);
	req.operation = BLKIF_OP_READ;
	for (seq = 11; seq < 11 + 4 * NR_ENTS; seq++) {
		journal_consume(j, seq % 4, seq, &req);
		journal_respond(j, seq - 1, seq, seq, BLKIF_OP_READ, BLKIF_RSP_OKAY);
		journal_retire(j, seq % 4);
	}
	journal_consume(j, 6, seq, &req);
	journal_close(j);

	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS, &j), 0);
	ck_assert_int_eq(journal_plan(j, seq - 1, seq + 1, plan), 0);
	ck_assert_uint_eq(plan->req_cons, seq + 1);
	ck_assert_uint_eq(plan->rsp_written, seq - 1);
	ck_assert_uint_eq(plan->nr_replay, 2);
	ck_assert_uint_eq(plan->nr_answered, 0);
	journal_req(j, plan->replay[0], &seq, &back);
	ck_assert_int_eq(back.operation, BLKIF_OP_FLUSH_DISKCACHE);
	ck_assert_uint_eq(seq, 10);
	journal_remove(j);
	free(plan);
}
END_TEST

/* The response log gives back the very response, and nothing it lacks. */
START_TEST(test_rsp_log)
{
	struct journal_ring_id id = ring_id(7);
	struct blkif_rsp rsp;
	struct journal *j;
	uint32_t i;

	ck_assert_int_eq(journal_create(dir, &id, NR_ENTS, &j), 0);
	ck_assert_int_eq(journal_rsp(j, 7, &rsp), -ENOENT);
	for (i = 7; i < 7 + 2 * NR_ENTS; i++)
		journal_respond(j, i, i + 1000, i * 3, BLKIF_OP_READ, (int16_t)-(i % 3));
	/* The oldest ring's worth was overwritten. */
	ck_assert_int_eq(journal_rsp(j, 7, &rsp), -ENOENT);
	ck_assert_int_eq(journal_rsp(j, 7 + 2 * NR_ENTS - 1, &rsp), 0);
	ck_assert_uint_eq(rsp.id, (7 + 2 * NR_ENTS - 1) * 3);
	ck_assert_uint_eq(rsp.operation, BLKIF_OP_READ);
	ck_assert_int_eq(rsp.status, -(int)((7 + 2 * NR_ENTS - 1) % 3));
	journal_remove(j);
}
END_TEST

/* Every field of a request survives the record, at its extremes: the
 * record is the journal's own, so a field it forgot would be lost. */
static const struct blkif_req record_cases[] = {
	{ .operation = BLKIF_OP_WRITE, .nr_segments = 11, .handle = 0xffff,
	  .id = UINT64_MAX, .sector_number = UINT64_MAX - 7,
	  .seg = { { 1, 0, 7 }, { 2, 1, 6 }, { 3, 2, 5 }, { 4, 3, 4 }, { 5, 7, 7 },
		   { 0xffffffffu, 0, 0 }, { 7, 0, 7 }, { 8, 0, 7 }, { 9, 0, 7 },
		   { 10, 0, 7 }, { 0xfffffffeu, 255, 255 } } },
	{ .operation = BLKIF_OP_INDIRECT, .indirect_op = BLKIF_OP_READ, .nr_segments = 4096,
	  .handle = 1, .id = 0x8000000000000001ull, .sector_number = 1,
	  .indirect_grefs = { 11, 12, 13, 14, 15, 16, 17, 0xffffffffu } },
	{ .operation = BLKIF_OP_DISCARD, .discard_flag = BLKIF_DISCARD_SECURE,
	  .id = 3, .sector_number = 64, .discard_nr_sectors = UINT64_MAX },
	{ .operation = 0xff, .nr_segments = 0xffff, .id = 0 },	/* unknown op: kept as is */
};

START_TEST(test_record_roundtrip)
{
	const struct blkif_req *in = &record_cases[_i];
	struct journal_ring_id id = ring_id(40);
	struct blkif_req out;
	struct journal *j;
	uint32_t seq;
	unsigned int k;

	ck_assert_int_eq(journal_create(dir, &id, NR_ENTS, &j), 0);
	journal_consume(j, 3, 40, in);
	journal_close(j);
	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS, &j), 0);
	memset(&out, 0xa5, sizeof(out));
	journal_req(j, 3, &seq, &out);
	ck_assert_uint_eq(seq, 40);
	ck_assert_uint_eq(out.operation, in->operation);
	ck_assert_uint_eq(out.indirect_op, in->indirect_op);
	ck_assert_uint_eq(out.discard_flag, in->discard_flag);
	ck_assert_uint_eq(out.nr_segments, in->nr_segments);
	ck_assert_uint_eq(out.handle, in->handle);
	ck_assert_uint_eq(out.id, in->id);
	ck_assert_uint_eq(out.sector_number, in->sector_number);
	ck_assert_uint_eq(out.discard_nr_sectors, in->discard_nr_sectors);
	for (k = 0; k < BLKIF_MAX_SEGMENTS_PER_REQUEST; k++) {
		ck_assert_uint_eq(out.seg[k].gref, in->seg[k].gref);
		ck_assert_uint_eq(out.seg[k].first_sect, in->seg[k].first_sect);
		ck_assert_uint_eq(out.seg[k].last_sect, in->seg[k].last_sect);
	}
	for (k = 0; k < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; k++)
		ck_assert_uint_eq(out.indirect_grefs[k], in->indirect_grefs[k]);
	ck_assert_ptr_null(out.indirect_segs);
	journal_remove(j);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
	char buf[4096];
	FILE *in = fopen(from, "rb"), *out;
	size_t n;

	ck_assert_msg(in != NULL, "%s: %s", from, strerror(errno));
	out = fopen(to, "wb");
	ck_assert_ptr_nonnull(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
}

/* A journal of format 1 (struct blkif_req stored raw), as blkbackd 0.1.0
 * left it when killed, 4 slots: slot 0 a write at 100 answered and
 * published, slot 1 an indirect read at 101 in flight, slot 2 a secure
 * discard at 102 answered (response 101) but not published, slot 3 a flush
 * at 103 in flight. A new binary reads it as the old one would have. */
START_TEST(test_upgrade_v1)
{
	const char *srcdir = getenv("top_srcdir");
	struct journal_ring_id id = ring_id(100);
	struct journal_plan *plan = malloc(sizeof(*plan));
	char fixture[4096], path[128], tmp[160];
	struct blkif_req req;
	struct blkif_rsp rsp;
	struct journal *j;
	uint32_t seq;

	ck_assert_ptr_nonnull(plan);
	snprintf(fixture, sizeof(fixture), "%s/tests/unit/data/journal-v1.bin",
		 srcdir ? srcdir : "..");
	snprintf(path, sizeof(path), "%s/d5-51712-q0" JOURNAL_SUFFIX, dir);
	copy_file(fixture, path);

	ck_assert_int_eq(journal_open(dir, &id, 4, &j), 0);
	ck_assert_int_eq(journal_plan(j, 101, 104, plan), 0);
	ck_assert_uint_eq(plan->req_cons, 104);
	ck_assert_uint_eq(plan->rsp_written, 102);
	ck_assert_uint_eq(plan->rsp_published, 101);
	ck_assert_uint_eq(plan->nr_answered, 0);
	ck_assert_uint_eq(plan->nr_replay, 2);
	journal_req(j, plan->replay[0], &seq, &req);
	ck_assert_uint_eq(seq, 101);
	ck_assert_uint_eq(req.operation, BLKIF_OP_INDIRECT);
	ck_assert_uint_eq(req.indirect_op, BLKIF_OP_READ);
	ck_assert_uint_eq(req.nr_segments, 600);
	ck_assert_uint_eq(req.handle, 3);
	ck_assert_uint_eq(req.id, 0x1101);
	ck_assert_uint_eq(req.sector_number, 4096);
	ck_assert_uint_eq(req.indirect_grefs[0], 90);
	ck_assert_uint_eq(req.indirect_grefs[1], 91);
	journal_req(j, plan->replay[1], &seq, &req);
	ck_assert_uint_eq(seq, 103);
	ck_assert_uint_eq(req.operation, BLKIF_OP_FLUSH_DISKCACHE);
	ck_assert_uint_eq(req.id, 0x1103);
	ck_assert_int_eq(journal_rsp(j, 101, &rsp), 0);
	ck_assert_uint_eq(rsp.id, 0x1102);
	ck_assert_uint_eq(rsp.operation, BLKIF_OP_DISCARD);
	ck_assert_int_eq(rsp.status, BLKIF_RSP_OKAY);
	/* The ring goes on writing it in the new format. */
	journal_consume(j, 0, 104, &req);
	journal_close(j);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(journal_open(dir, &id, 4, &j), 0);
	journal_req(j, 0, &seq, &req);
	ck_assert_uint_eq(seq, 104);
	ck_assert_uint_eq(req.id, 0x1103);
	journal_remove(j);

	/* A format 1 journal of another ring is still another ring's. */
	copy_file(fixture, path);
	id.remote_port = 8;
	ck_assert_int_eq(journal_open(dir, &id, 4, &j), -ESTALE);
	unlink(path);
	free(plan);
}
END_TEST

/* A journal of a format this binary does not know (a newer one) is not
 * guessed at. */
START_TEST(test_unknown_format)
{
	struct journal_ring_id id = ring_id(0);
	struct journal *j;
	uint32_t version = 99;
	char path[128];
	int fd;

	ck_assert_int_eq(journal_create(dir, &id, NR_ENTS, &j), 0);
	journal_close(j);
	snprintf(path, sizeof(path), "%s/d5-51712-q0" JOURNAL_SUFFIX, dir);
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &version, sizeof(version), 4), sizeof(version));
	close(fd);
	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS, &j), -EPROTONOSUPPORT);
	unlink(path);
}
END_TEST

/* Only the journal of the very same ring is taken. */
START_TEST(test_open_refusals)
{
	struct journal_ring_id id = ring_id(0), other;
	struct journal *j, *j2;
	char path[128];
	FILE *f;

	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS, &j2), -ENOENT);
	ck_assert_int_eq(journal_create(dir, &id, NR_ENTS, &j), 0);
	other = id;
	other.refs[0] = 9;		/* the frontend granted a new ring */
	ck_assert_int_eq(journal_open(dir, &other, NR_ENTS, &j2), -ESTALE);
	other = id;
	other.remote_port = 8;
	ck_assert_int_eq(journal_open(dir, &other, NR_ENTS, &j2), -ESTALE);
	other = id;
	other.abi = 2;
	ck_assert_int_eq(journal_open(dir, &other, NR_ENTS, &j2), -ESTALE);
	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS * 2, &j2), -ESTALE);
	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS, &j2), 0);
	journal_close(j2);
	journal_close(j);

	/* A truncated file is not a journal. */
	snprintf(path, sizeof(path), "%s/d5-51712-q0" JOURNAL_SUFFIX, dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("garbage", f);
	fclose(f);
	ck_assert_int_eq(journal_open(dir, &id, NR_ENTS, &j2), -ESTALE);
	unlink(path);
	ck_assert_int_eq(journal_create(dir, &id, 0, &j), -EINVAL);
	ck_assert_int_eq(journal_create(dir, &id, JOURNAL_MAX_ENTS + 1, &j), -EINVAL);
}
END_TEST

static bool keep_dom5(void *opaque, uint32_t fe_domid, uint32_t devid, uint32_t queue)
{
	(void)opaque;
	(void)devid;
	(void)queue;
	return fe_domid == 5;
}

START_TEST(test_sweep)
{
	struct journal_ring_id a = ring_id(0), b = ring_id(0);
	struct journal *ja, *jb;
	unsigned int removed = 99;
	char path[128];
	FILE *f;

	b.fe_domid = 6;
	ck_assert_int_eq(journal_create(dir, &a, NR_ENTS, &ja), 0);
	ck_assert_int_eq(journal_create(dir, &b, NR_ENTS, &jb), 0);
	journal_close(ja);
	journal_close(jb);
	/* Not ours: left alone whatever keep() says. */
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(journal_sweep(dir, keep_dom5, NULL, &removed), 0);
	ck_assert_uint_eq(removed, 1);
	ck_assert_int_eq(journal_open(dir, &a, NR_ENTS, &ja), 0);
	journal_remove(ja);
	ck_assert_int_eq(journal_open(dir, &b, NR_ENTS, &jb), -ENOENT);
	ck_assert_int_eq(access(path, F_OK), 0);
	unlink(path);
	ck_assert_int_eq(journal_sweep("/nonexistent/journals", keep_dom5, NULL, &removed), 0);
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("plan");

	tcase_add_loop_test(tc, test_plan_table, 0, ARRAY_SIZE(plan_cases));
	tcase_add_test(tc, test_old_request);
	tcase_add_test(tc, test_rsp_log);
	tcase_add_test(tc, test_open_refusals);
	tcase_add_loop_test(tc, test_record_roundtrip, 0, ARRAY_SIZE(record_cases));
	tcase_add_test(tc, test_upgrade_v1);
	tcase_add_test(tc, test_unknown_format);
	tcase_add_test(tc, test_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (!mkdtemp(dir))
		return EXIT_FAILURE;
	sr = srunner_create(journal_suite());
	/* One process: the table's journals share the directory. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	rmdir(dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
