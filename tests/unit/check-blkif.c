/* Unit tests for common/blkif: layouts checked byte by byte against the
 * offsets in PROTOCOL.md §3 and against Xen's own native structs, round
 * trips for every op in every ABI, protocol strings, ring geometry, and
 * one failing and one passing case for every validation rule (T4-T8,
 * T10, T19). Table-driven; hostile values on purpose. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xen/io/protocols.h>

#include "blkif.h"
#include "util.h"


static const enum blkif_abi all_abis[] = {
	BLKIF_ABI_NATIVE, BLKIF_ABI_X86_32, BLKIF_ABI_X86_64,
};

/* An enum value outside the three, as a corrupted caller might pass. */
#define BAD_ABI ((enum blkif_abi)99)

/* --- Layouts ----------------------------------------------------------- */

/* Offsets as PROTOCOL.md §3 and blkif.h's field order give them, written
 * down independently of blkif-abi.c's structs. */
struct layout_expect {
	enum blkif_abi abi;
	size_t req, rsp, slot;
	size_t id, sector, seg, discard_nr, ind_handle, ind_grefs;
};

static const struct layout_expect layouts[] = {
	{ BLKIF_ABI_X86_32, 108, 12, 108, 4, 12, 20, 20, 20, 24 },
	{ BLKIF_ABI_X86_64, 112, 16, 112, 8, 16, 24, 24, 24, 28 },
#if defined(__x86_64__) || defined(__aarch64__) || defined(__arm__)
	{ BLKIF_ABI_NATIVE, 112, 16, 112, 8, 16, 24, 24, 24, 28 },
#elif defined(__i386__)
	{ BLKIF_ABI_NATIVE, 108, 12, 108, 4, 12, 20, 20, 20, 24 },
#endif
};

static uint64_t ld64(const unsigned char *b, size_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static uint32_t ld32(const unsigned char *b, size_t off)
{
	uint32_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static uint16_t ld16(const unsigned char *b, size_t off)
{
	uint16_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

START_TEST(test_layout_sizes)
{
	const struct layout_expect *e = &layouts[_i];

	ck_assert_uint_eq(blkif_abi_req_size(e->abi), e->req);
	ck_assert_uint_eq(blkif_abi_rsp_size(e->abi), e->rsp);
	ck_assert_uint_eq(blkif_abi_slot_size(e->abi), e->slot);
}
END_TEST

START_TEST(test_layout_rw_offsets)
{
	const struct layout_expect *e = &layouts[_i];
	unsigned char slot[128];
	struct blkif_req req = {
		.operation = BLKIF_OP_WRITE, .nr_segments = 11,
		.handle = 0xbeef, .id = 0x1122334455667788ull,
		.sector_number = 0x0102030405060708ull,
	};
	unsigned int i;

	for (i = 0; i < 11; i++)
		req.seg[i] = (struct blkif_seg){ 0xa0000000u + i, i % 8, 7 };
	memset(slot, 0xee, sizeof(slot));
	ck_assert_int_eq(blkif_req_encode(e->abi, slot, &req), 0);
	ck_assert_uint_eq(slot[0], BLKIF_OP_WRITE);
	ck_assert_uint_eq(slot[1], 11);
	ck_assert_uint_eq(ld16(slot, 2), 0xbeef);
	ck_assert_uint_eq(ld64(slot, e->id), req.id);
	ck_assert_uint_eq(ld64(slot, e->sector), req.sector_number);
	for (i = 0; i < 11; i++) {
		ck_assert_uint_eq(ld32(slot, e->seg + 8 * i), 0xa0000000u + i);
		ck_assert_uint_eq(slot[e->seg + 8 * i + 4], i % 8);
		ck_assert_uint_eq(slot[e->seg + 8 * i + 5], 7);
		/* segment padding zeroed, not left from the buffer */
		ck_assert_uint_eq(ld16(slot, e->seg + 8 * i + 6), 0);
	}
	/* Exactly req bytes written. */
	ck_assert_uint_eq(slot[e->req], 0xee);
	ck_assert_uint_eq(slot[e->req - 1], 0);
}
END_TEST

START_TEST(test_layout_discard_indirect_offsets)
{
	const struct layout_expect *e = &layouts[_i];
	unsigned char slot[128];
	struct blkif_req d = {
		.operation = BLKIF_OP_DISCARD, .discard_flag = 1,
		.handle = 0x5a5a, .id = 7, .sector_number = 0x100,
		.discard_nr_sectors = 0xdeadbeefcafeull,
	};
	struct blkif_req ind = {
		.operation = BLKIF_OP_INDIRECT, .indirect_op = BLKIF_OP_READ,
		.nr_segments = 0x1234, .handle = 0x4321, .id = 9,
		.sector_number = 0x200,
	};
	unsigned int i;

	ck_assert_int_eq(blkif_req_encode(e->abi, slot, &d), 0);
	ck_assert_uint_eq(slot[0], BLKIF_OP_DISCARD);
	ck_assert_uint_eq(slot[1], 1);
	ck_assert_uint_eq(ld16(slot, 2), 0x5a5a);
	ck_assert_uint_eq(ld64(slot, e->id), 7);
	ck_assert_uint_eq(ld64(slot, e->sector), 0x100);
	ck_assert_uint_eq(ld64(slot, e->discard_nr), 0xdeadbeefcafeull);

	for (i = 0; i < 8; i++)
		ind.indirect_grefs[i] = 0x300 + i;
	ck_assert_int_eq(blkif_req_encode(e->abi, slot, &ind), 0);
	ck_assert_uint_eq(slot[0], BLKIF_OP_INDIRECT);
	ck_assert_uint_eq(slot[1], BLKIF_OP_READ);
	ck_assert_uint_eq(ld16(slot, 2), 0x1234);
	ck_assert_uint_eq(ld64(slot, e->id), 9);
	ck_assert_uint_eq(ld64(slot, e->sector), 0x200);
	ck_assert_uint_eq(ld16(slot, e->ind_handle), 0x4321);
	for (i = 0; i < 8; i++)
		ck_assert_uint_eq(ld32(slot, e->ind_grefs + 4 * i), 0x300 + i);
}
END_TEST

START_TEST(test_layout_rsp_offsets)
{
	const struct layout_expect *e = &layouts[_i];
	unsigned char slot[128];
	struct blkif_rsp rsp = {
		.id = 0xfedcba9876543210ull, .operation = BLKIF_OP_INDIRECT,
		.status = BLKIF_RSP_EOPNOTSUPP,
	};

	ck_assert_int_eq(blkif_rsp_encode(e->abi, slot, &rsp), 0);
	ck_assert_uint_eq(ld64(slot, 0), rsp.id);
	ck_assert_uint_eq(slot[8], BLKIF_OP_INDIRECT);
	ck_assert_int_eq((int16_t)ld16(slot, 10), BLKIF_RSP_EOPNOTSUPP);
}
END_TEST

/* NATIVE must read what Xen's own header structs write on this host. */
START_TEST(test_layout_native_matches_xen)
{
	union blkif_sring_entry ent;
	struct blkif_request_discard *xd;
	struct blkif_request_indirect *xi;
	struct blkif_req req;
	struct blkif_rsp rsp;
	unsigned int i;

	memset(&ent, 0, sizeof(ent));
	ent.req.operation = BLKIF_OP_READ;
	/* All 11 segments in use, so every segment offset is checked. */
	ent.req.nr_segments = 11;
	ent.req.handle = 51712;
	ent.req.id = 0xabcdef0123456789ull;
	ent.req.sector_number = 123456789;
	for (i = 0; i < 11; i++) {
		ent.req.seg[i].gref = 1000 + i;
		ent.req.seg[i].first_sect = 1;
		ent.req.seg[i].last_sect = 6;
	}
	ck_assert_int_eq(blkif_req_decode(BLKIF_ABI_NATIVE, &ent, &req), 0);
	ck_assert_uint_eq(req.operation, BLKIF_OP_READ);
	ck_assert_uint_eq(req.nr_segments, 11);
	ck_assert_uint_eq(req.handle, 51712);
	ck_assert_uint_eq(req.id, 0xabcdef0123456789ull);
	ck_assert_uint_eq(req.sector_number, 123456789);
	for (i = 0; i < 11; i++) {
		ck_assert_uint_eq(req.seg[i].gref, 1000 + i);
		ck_assert_uint_eq(req.seg[i].first_sect, 1);
		ck_assert_uint_eq(req.seg[i].last_sect, 6);
	}
	/* Segments past nr_segments are not decoded: they read as zero. */
	ent.req.nr_segments = 3;
	ck_assert_int_eq(blkif_req_decode(BLKIF_ABI_NATIVE, &ent, &req), 0);
	ck_assert_uint_eq(req.seg[2].gref, 1002);
	ck_assert_uint_eq(req.seg[3].gref, 0);
	ck_assert_uint_eq(req.seg[10].last_sect, 0);

	memset(&ent, 0, sizeof(ent));
	xd = (struct blkif_request_discard *)&ent;
	xd->operation = BLKIF_OP_DISCARD;
	xd->flag = BLKIF_DISCARD_SECURE;
	xd->id = 42;
	xd->sector_number = 64;
	xd->nr_sectors = 4096;
	ck_assert_int_eq(blkif_req_decode(BLKIF_ABI_NATIVE, &ent, &req), 0);
	ck_assert_uint_eq(req.discard_flag, BLKIF_DISCARD_SECURE);
	ck_assert_uint_eq(req.id, 42);
	ck_assert_uint_eq(req.sector_number, 64);
	ck_assert_uint_eq(req.discard_nr_sectors, 4096);
	ck_assert_uint_eq(req.nr_segments, 0);

	memset(&ent, 0, sizeof(ent));
	xi = (struct blkif_request_indirect *)&ent;
	xi->operation = BLKIF_OP_INDIRECT;
	xi->indirect_op = BLKIF_OP_WRITE;
	xi->nr_segments = 1025;
	xi->id = 43;
	xi->sector_number = 8;
	xi->handle = 768;
	for (i = 0; i < 8; i++)
		xi->indirect_grefs[i] = 77 + i;
	ck_assert_int_eq(blkif_req_decode(BLKIF_ABI_NATIVE, &ent, &req), 0);
	ck_assert_uint_eq(req.indirect_op, BLKIF_OP_WRITE);
	ck_assert_uint_eq(req.nr_segments, 1025);
	ck_assert_uint_eq(req.handle, 768);
	ck_assert_uint_eq(req.id, 43);
	for (i = 0; i < 8; i++)
		ck_assert_uint_eq(req.indirect_grefs[i], 77 + i);
	ck_assert_ptr_null(req.indirect_segs);

	memset(&ent, 0xAA, sizeof(ent));
	ck_assert_int_eq(blkif_rsp_encode(BLKIF_ABI_NATIVE, &ent,
					  &(struct blkif_rsp){ 5, 1, -1 }), 0);
	ck_assert_uint_eq(ent.rsp.id, 5);
	ck_assert_uint_eq(ent.rsp.operation, 1);
	ck_assert_int_eq(ent.rsp.status, -1);
	ck_assert_int_eq(blkif_rsp_decode(BLKIF_ABI_NATIVE, &ent, &rsp), 0);
	ck_assert_uint_eq(rsp.id, 5);
	ck_assert_int_eq(rsp.status, -1);
}
END_TEST

START_TEST(test_bad_abi)
{
	unsigned char slot[128] = { 0 };
	struct blkif_req req = { .operation = BLKIF_OP_READ };
	struct blkif_rsp rsp = { 0 };
	struct blkif_ring_layout l;

	ck_assert_uint_eq(blkif_abi_req_size(BAD_ABI), 0);
	ck_assert_uint_eq(blkif_abi_rsp_size(BAD_ABI), 0);
	ck_assert_uint_eq(blkif_abi_slot_size(BAD_ABI), 0);
	ck_assert_ptr_null(blkif_abi_name(BAD_ABI));
	ck_assert_int_eq(blkif_req_decode(BAD_ABI, slot, &req), -EINVAL);
	ck_assert_int_eq(blkif_req_encode(BAD_ABI, slot, &req), -EINVAL);
	ck_assert_int_eq(blkif_rsp_encode(BAD_ABI, slot, &rsp), -EINVAL);
	ck_assert_int_eq(blkif_rsp_decode(BAD_ABI, slot, &rsp), -EINVAL);
	ck_assert_int_eq(blkif_ring_layout_init(&l, BAD_ABI, 0), -EINVAL);
}
END_TEST

/* The decoder must read the slot's bytes and nothing past them: an x86_32
 * slot can end exactly where a mapping ends. */
START_TEST(test_decode_stays_in_slot)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *map;
	unsigned int i;

	map = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(map, MAP_FAILED);
	ck_assert_int_eq(mprotect(map + pg, pg, PROT_NONE), 0);
	for (i = 0; i < ARRAY_SIZE(all_abis); i++) {
		size_t sz = blkif_abi_req_size(all_abis[i]);
		unsigned char *slot = map + pg - sz;
		struct blkif_req req;
		struct blkif_rsp rsp;
		unsigned int op;

		for (op = 0; op < 256; op++) {
			memset(slot, 0xff, sz);
			slot[0] = (uint8_t)op;
			ck_assert_int_eq(blkif_req_decode(all_abis[i], slot,
							  &req), 0);
			ck_assert_uint_eq(req.operation, op);
			ck_assert_uint_eq(req.id, UINT64_MAX);
		}
		slot = map + pg - blkif_abi_rsp_size(all_abis[i]);
		ck_assert_int_eq(blkif_rsp_encode(all_abis[i], slot,
				 &(struct blkif_rsp){ 1, 2, 0 }), 0);
		ck_assert_int_eq(blkif_rsp_decode(all_abis[i], slot, &rsp), 0);
		ck_assert_uint_eq(rsp.id, 1);
	}
	munmap(map, 2 * pg);
}
END_TEST

/* --- Round trips --------------------------------------------------------- */

static struct blkif_req sample_req(uint8_t op)
{
	struct blkif_req r;
	unsigned int i;

	memset(&r, 0, sizeof(r));
	r.operation = op;
	r.handle = 0x1234;
	r.id = 0x8000000000000001ull ^ op;
	r.sector_number = 0x7fffffff00ull + op;
	switch (op) {
	case BLKIF_OP_DISCARD:
		r.discard_flag = BLKIF_DISCARD_SECURE;
		r.discard_nr_sectors = 1ull << 40;
		break;
	case BLKIF_OP_INDIRECT:
		r.indirect_op = BLKIF_OP_WRITE;
		r.nr_segments = 4096;
		for (i = 0; i < 8; i++)
			r.indirect_grefs[i] = 0xffff0000u + i;
		break;
	default:
		/* Every op without a layout of its own uses read/write's,
		 * and a raw frontend may claim any count. */
		r.nr_segments = op == BLKIF_OP_FLUSH_DISKCACHE ? 0 :
				op > BLKIF_OP_INDIRECT ? op : 11;
		/* Encoding writes only the segments the count covers. */
		for (i = 0; i < 11 && i < r.nr_segments; i++)
			r.seg[i] = (struct blkif_seg){ 0xfffffff0u + i, i % 8,
						       7 };
		break;
	}
	return r;
}

static void assert_req_eq(const struct blkif_req *a, const struct blkif_req *b)
{
	unsigned int i;

	ck_assert_uint_eq(a->operation, b->operation);
	ck_assert_uint_eq(a->indirect_op, b->indirect_op);
	ck_assert_uint_eq(a->discard_flag, b->discard_flag);
	ck_assert_uint_eq(a->nr_segments, b->nr_segments);
	ck_assert_uint_eq(a->handle, b->handle);
	ck_assert_uint_eq(a->id, b->id);
	ck_assert_uint_eq(a->sector_number, b->sector_number);
	ck_assert_uint_eq(a->discard_nr_sectors, b->discard_nr_sectors);
	for (i = 0; i < 11; i++) {
		ck_assert_uint_eq(a->seg[i].gref, b->seg[i].gref);
		ck_assert_uint_eq(a->seg[i].first_sect, b->seg[i].first_sect);
		ck_assert_uint_eq(a->seg[i].last_sect, b->seg[i].last_sect);
	}
	for (i = 0; i < 8; i++)
		ck_assert_uint_eq(a->indirect_grefs[i], b->indirect_grefs[i]);
}

static const uint8_t roundtrip_ops[] = {
	BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER,
	BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_RESERVED_1, BLKIF_OP_DISCARD,
	BLKIF_OP_INDIRECT, 7, 128, 255,
};

START_TEST(test_roundtrip)
{
	enum blkif_abi abi = all_abis[_i % ARRAY_SIZE(all_abis)];
	uint8_t op = roundtrip_ops[_i / ARRAY_SIZE(all_abis)];
	struct blkif_req in = sample_req(op), out;
	unsigned char slot[128];

	memset(slot, 0x55, sizeof(slot));
	ck_assert_int_eq(blkif_req_encode(abi, slot, &in), 0);
	memset(&out, 0xcc, sizeof(out));
	ck_assert_int_eq(blkif_req_decode(abi, slot, &out), 0);
	assert_req_eq(&in, &out);
	ck_assert_ptr_null(out.indirect_segs);
}
END_TEST

START_TEST(test_encode_direct_count_limit)
{
	struct blkif_req r = sample_req(BLKIF_OP_READ), out;
	unsigned char slot[128];

	r.nr_segments = 255;
	ck_assert_int_eq(blkif_req_encode(BLKIF_ABI_X86_32, slot, &r), 0);
	ck_assert_int_eq(blkif_req_decode(BLKIF_ABI_X86_32, slot, &out), 0);
	ck_assert_uint_eq(out.nr_segments, 255);
	r.nr_segments = 256;
	ck_assert_int_eq(blkif_req_encode(BLKIF_ABI_X86_32, slot, &r), -EINVAL);
}
END_TEST

/* --- Responses (T10) ----------------------------------------------------- */

START_TEST(test_rsp_no_stale_bytes)
{
	enum blkif_abi abi = all_abis[_i];
	size_t rsz = blkif_abi_rsp_size(abi), ssz = blkif_abi_slot_size(abi);
	static const int16_t statuses[] = {
		BLKIF_RSP_OKAY, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP,
	};
	unsigned char slot[128];
	unsigned int s;
	size_t i;

	for (s = 0; s < ARRAY_SIZE(statuses); s++) {
		struct blkif_rsp in = { UINT64_MAX, 0xff, statuses[s] }, out;

		memset(slot, 0xAA, sizeof(slot));
		ck_assert_int_eq(blkif_rsp_encode(abi, slot, &in), 0);
		for (i = 0; i < 9; i++)		/* id, operation */
			ck_assert_uint_eq(slot[i], 0xff);
		ck_assert_int_eq((int16_t)ld16(slot, 10), statuses[s]);
		/* Padding: byte 9 and, in x86_64, 12..15. */
		ck_assert_msg(slot[9] == 0, "byte 9 stale: %#x", slot[9]);
		for (i = 12; i < rsz; i++)
			ck_assert_msg(slot[i] == 0, "byte %zu stale: %#x", i,
				      slot[i]);
		/* The rest of the slot is the guest's request: untouched. */
		for (i = rsz; i < ssz; i++)
			ck_assert_uint_eq(slot[i], 0xAA);
		ck_assert_int_eq(blkif_rsp_decode(abi, slot, &out), 0);
		ck_assert_int_eq(out.status, statuses[s]);
		ck_assert_uint_eq(out.id, UINT64_MAX);
		ck_assert_uint_eq(out.operation, 0xff);
	}
}
END_TEST

START_TEST(test_rsp_roundtrip)
{
	enum blkif_abi abi = all_abis[_i];
	static const struct blkif_rsp rsps[] = {
		{ 0, 0, 0 },
		{ UINT64_MAX, 255, INT16_MIN },
		{ 0x0123456789abcdefull, BLKIF_OP_INDIRECT, INT16_MAX },
		{ 1, BLKIF_OP_DISCARD, BLKIF_RSP_EOPNOTSUPP },
	};
	unsigned char slot[128];
	unsigned int k;

	for (k = 0; k < ARRAY_SIZE(rsps); k++) {
		struct blkif_rsp out;

		memset(slot, 0xAA, sizeof(slot));
		ck_assert_int_eq(blkif_rsp_encode(abi, slot, &rsps[k]), 0);
		ck_assert_int_eq(blkif_rsp_decode(abi, slot, &out), 0);
		ck_assert_uint_eq(out.id, rsps[k].id);
		ck_assert_uint_eq(out.operation, rsps[k].operation);
		ck_assert_int_eq(out.status, rsps[k].status);
		/* Padding after operation is zero, whatever was there. */
		ck_assert_uint_eq(slot[9], 0);
	}
}
END_TEST

/* --- Protocol strings (T13) ---------------------------------------------- */

static char long_proto[1001];

struct proto_case {
	const char *s;
	int ret;
	enum blkif_abi abi;
};

static const struct proto_case proto_cases[] = {
#if defined(__i386__) || defined(__x86_64__)
	{ NULL, 0, BLKIF_ABI_X86_32 },
	{ "", 0, BLKIF_ABI_X86_32 },
	{ "arm-abi", -EINVAL, 0 },
#endif
	{ "x86_32-abi", 0, BLKIF_ABI_X86_32 },
	{ "x86_64-abi", 0, BLKIF_ABI_X86_64 },
	{ "x86_64-abi ", -EINVAL, 0 },
	{ " x86_64-abi", -EINVAL, 0 },
	{ "X86_64-ABI", -EINVAL, 0 },
	{ "x86_64", -EINVAL, 0 },
	{ "x86_32-abi\n", -EINVAL, 0 },
	{ "native", -EINVAL, 0 },
	{ "\xff\xfe", -EINVAL, 0 },
	{ "garbage", -EINVAL, 0 },
	{ long_proto, -EINVAL, 0 },
};

START_TEST(test_protocol_parse)
{
	const struct proto_case *c = &proto_cases[_i];
	enum blkif_abi abi = BAD_ABI;

	memset(long_proto, 'a', sizeof(long_proto) - 1);
	memcpy(long_proto, "x86_64-abi", 10);
	ck_assert_int_eq(blkif_abi_parse(c->s, &abi), c->ret);
	if (c->ret == 0)
		ck_assert_int_eq(abi, c->abi);
	else
		ck_assert_int_eq(abi, BAD_ABI);	/* untouched on failure */
}
END_TEST

START_TEST(test_protocol_native_names)
{
	enum blkif_abi abi = BAD_ABI;
	unsigned int i;

	ck_assert_int_eq(blkif_abi_parse(XEN_IO_PROTO_ABI_NATIVE, &abi), 0);
	ck_assert_uint_eq(blkif_abi_req_size(abi),
			  blkif_abi_req_size(BLKIF_ABI_NATIVE));
	/* Names parse back to an ABI with the same layout. */
	for (i = 0; i < ARRAY_SIZE(all_abis); i++) {
		const char *name = blkif_abi_name(all_abis[i]);

		ck_assert_ptr_nonnull(name);
		ck_assert_int_eq(blkif_abi_parse(name, &abi), 0);
		ck_assert_uint_eq(blkif_abi_req_size(abi),
				  blkif_abi_req_size(all_abis[i]));
	}
}
END_TEST

/* --- Ring geometry ------------------------------------------------------- */

START_TEST(test_ring_entries)
{
	static const unsigned int expect[] = { 32, 64, 128, 256, 512 };
	enum blkif_abi abi = all_abis[_i];
	struct blkif_ring_layout l;
	unsigned int order;

	for (order = 0; order <= 4; order++) {
		ck_assert_int_eq(blkif_ring_layout_init(&l, abi, order), 0);
		ck_assert_uint_eq(l.nr_ents, expect[order]);
		ck_assert_uint_eq(l.order, order);
		ck_assert_uint_eq(l.slot_size, blkif_abi_slot_size(abi));
		ck_assert_int_eq(l.abi, abi);
		/* The ring must fit its pages. */
		ck_assert_uint_le(BLKIF_RING_HEADER_SIZE +
				  l.nr_ents * l.slot_size, 4096u << order);
	}
	ck_assert_int_eq(blkif_ring_layout_init(&l, abi, 16), 0);
	ck_assert_int_eq(blkif_ring_layout_init(&l, abi, 17), -EINVAL);
	ck_assert_int_eq(blkif_ring_layout_init(&l, abi, UINT32_MAX), -EINVAL);
}
END_TEST

/* Same numbers and addresses as ring.h's own macros for the native ABI. */
START_TEST(test_ring_matches_ring_h)
{
	unsigned int order = _i;
	size_t sz = 4096u << order;
	void *mem = aligned_alloc(4096, sz);
	blkif_back_ring_t back;
	struct blkif_ring_layout l;
	static const RING_IDX idxs[] = {
		0, 1, 31, 32, 33, 511, 512, 0x7fffffff, 0xfffffffe, 0xffffffff,
	};
	unsigned int i;

	ck_assert_ptr_nonnull(mem);
	ck_assert_int_eq(blkif_ring_layout_init(&l, BLKIF_ABI_NATIVE, order), 0);
	ck_assert_uint_eq(l.nr_ents, __CONST_RING_SIZE(blkif, sz));
	BACK_RING_ATTACH(&back, (blkif_sring_t *)mem, 0, sz);
	ck_assert_uint_eq(l.nr_ents, RING_SIZE(&back));
	for (i = 0; i < ARRAY_SIZE(idxs); i++) {
		ck_assert_ptr_eq(blkif_ring_slot(&l, mem, idxs[i]),
				 (void *)RING_GET_REQUEST(&back, idxs[i]));
		ck_assert_ptr_eq(blkif_ring_slot(&l, mem, idxs[i]),
				 (void *)RING_GET_RESPONSE(&back, idxs[i]));
	}
	free(mem);
}
END_TEST

START_TEST(test_ring_slot_x86_32)
{
	struct blkif_ring_layout l;
	unsigned char base[4096];
	unsigned int order;

	for (order = 0; order <= 4; order++) {
		ck_assert_int_eq(blkif_ring_layout_init(&l, BLKIF_ABI_X86_32,
							order), 0);
		ck_assert_ptr_eq(blkif_ring_slot(&l, base, 0), base + 64);
		ck_assert_ptr_eq(blkif_ring_slot(&l, base, 1), base + 64 + 108);
		ck_assert_ptr_eq(blkif_ring_slot(&l, base, l.nr_ents), base + 64);
		ck_assert_ptr_eq(blkif_ring_slot(&l, base, UINT32_MAX),
				 base + 64 + (l.nr_ents - 1) * 108);
	}
}
END_TEST

/* --- Validation (T4-T8, T19) ------------------------------------------- */

enum vbd_kind { VBD_RW, VBD_RO, VBD_NOFEAT, VBD_4K, VBD_BIGINDIRECT,
		VBD_HUGE, VBD_BADSS };

static struct blkif_vbd_desc vbd_of(enum vbd_kind k)
{
	struct blkif_vbd_desc v = {
		.nr_sectors = 1u << 20, .sector_size = 512,
		.feature_flush = true, .feature_barrier = true,
		.feature_discard = true, .feature_discard_secure = true,
		.max_indirect_segments = 256,
	};

	switch (k) {
	case VBD_RW:
		break;
	case VBD_RO:
		v.read_only = true;
		break;
	case VBD_NOFEAT:
		v.feature_flush = v.feature_barrier = false;
		v.feature_discard = v.feature_discard_secure = false;
		v.max_indirect_segments = 0;
		break;
	case VBD_4K:
		v.sector_size = 4096;
		break;
	case VBD_BIGINDIRECT:
		/* misconfigured above the 8-page protocol limit */
		v.max_indirect_segments = 65535;
		break;
	case VBD_HUGE:
		v.nr_sectors = UINT64_MAX;
		break;
	case VBD_BADSS:
		v.sector_size = 1000;
		break;
	}
	return v;
}

#define S(g, f, l) { g, f, l }
#define FULL S(1, 0, 7)

struct vcase {
	const char *name;
	enum vbd_kind vbd;
	struct blkif_req req;
	int16_t expect;
};

#define OK BLKIF_RSP_OKAY
#define ERR BLKIF_RSP_ERROR
#define NOTSUP BLKIF_RSP_EOPNOTSUPP
#define RW(op, n, sec, ...) { .operation = op, .nr_segments = n, \
	.sector_number = sec, .seg = { __VA_ARGS__ } }
#define DISC(flag, sec, n) { .operation = BLKIF_OP_DISCARD, \
	.discard_flag = flag, .sector_number = sec, .discard_nr_sectors = n }
#define IND(iop, n, sec) { .operation = BLKIF_OP_INDIRECT, \
	.indirect_op = iop, .nr_segments = n, .sector_number = sec }

static const struct vcase vcases[] = {
	/* plain passing cases */
	{ "read 1 seg", VBD_RW, RW(BLKIF_OP_READ, 1, 0, FULL), OK },
	{ "write 11 segs", VBD_RW, RW(BLKIF_OP_WRITE, 11, 100, FULL, FULL,
	  FULL, FULL, FULL, FULL, FULL, FULL, FULL, FULL, FULL), OK },
	{ "read partial segs", VBD_RW, RW(BLKIF_OP_READ, 2, 5, S(1, 3, 3),
	  S(2, 0, 7)), OK },
	/* T4: segment counts */
	{ "read 0 segs", VBD_RW, RW(BLKIF_OP_READ, 0, 0), ERR },
	{ "write 0 segs", VBD_RW, RW(BLKIF_OP_WRITE, 0, 0), ERR },
	{ "read 12 segs", VBD_RW, RW(BLKIF_OP_READ, 12, 0), ERR },
	{ "write 255 segs", VBD_RW, RW(BLKIF_OP_WRITE, 255, 0), ERR },
	{ "flush 12 segs", VBD_RW, RW(BLKIF_OP_FLUSH_DISKCACHE, 12, 0), ERR },
	{ "barrier 200 segs", VBD_RW, RW(BLKIF_OP_WRITE_BARRIER, 200, 0), ERR },
	{ "indirect 0 segs", VBD_RW, IND(BLKIF_OP_READ, 0, 0), ERR },
	{ "indirect 1 seg", VBD_RW, IND(BLKIF_OP_READ, 1, 0), OK },
	{ "indirect at max", VBD_RW, IND(BLKIF_OP_WRITE, 256, 0), OK },
	{ "indirect above max", VBD_RW, IND(BLKIF_OP_WRITE, 257, 0), ERR },
	{ "indirect 65535", VBD_RW, IND(BLKIF_OP_READ, 65535, 0), ERR },
	{ "indirect 8 pages", VBD_BIGINDIRECT, IND(BLKIF_OP_READ, 4096, 0), OK },
	{ "indirect 9 pages", VBD_BIGINDIRECT, IND(BLKIF_OP_READ, 4097, 0), ERR },
	{ "indirect 128 pages", VBD_BIGINDIRECT, IND(BLKIF_OP_READ, 65535, 0), ERR },
	{ "indirect op flush", VBD_RW, IND(BLKIF_OP_FLUSH_DISKCACHE, 1, 0), ERR },
	{ "indirect op indirect", VBD_RW, IND(BLKIF_OP_INDIRECT, 1, 0), ERR },
	{ "indirect op discard", VBD_RW, IND(BLKIF_OP_DISCARD, 1, 0), ERR },
	{ "indirect op 200", VBD_RW, IND(200, 1, 0), ERR },
	/* T5: segment geometry */
	{ "first > last", VBD_RW, RW(BLKIF_OP_READ, 1, 0, S(1, 5, 4)), ERR },
	{ "first = last", VBD_RW, RW(BLKIF_OP_READ, 1, 0, S(1, 4, 4)), OK },
	{ "last 7", VBD_RW, RW(BLKIF_OP_READ, 1, 0, S(1, 7, 7)), OK },
	{ "last 8", VBD_RW, RW(BLKIF_OP_READ, 1, 0, S(1, 0, 8)), ERR },
	{ "last 255", VBD_RW, RW(BLKIF_OP_WRITE, 1, 0, S(1, 0, 255)), ERR },
	{ "first 255", VBD_RW, RW(BLKIF_OP_WRITE, 1, 0, S(1, 255, 255)), ERR },
	{ "bad seg after good", VBD_RW, RW(BLKIF_OP_READ, 3, 0, FULL, FULL,
	  S(1, 6, 2)), ERR },
	{ "bad seg beyond count ignored", VBD_RW, RW(BLKIF_OP_READ, 1, 0, FULL,
	  S(1, 6, 2)), OK },
	/* T6: sector arithmetic */
	{ "ends at device end", VBD_RW, RW(BLKIF_OP_READ, 1, (1u << 20) - 8,
	  FULL), OK },
	{ "one past end", VBD_RW, RW(BLKIF_OP_READ, 1, (1u << 20) - 7, FULL),
	  ERR },
	{ "starts at end", VBD_RW, RW(BLKIF_OP_WRITE, 1, 1u << 20, S(1, 0, 0)),
	  ERR },
	{ "sector UINT64_MAX", VBD_RW, RW(BLKIF_OP_READ, 1, UINT64_MAX, FULL),
	  ERR },
	{ "wraps to 0", VBD_HUGE, RW(BLKIF_OP_READ, 1, UINT64_MAX - 7, FULL),
	  ERR },
	{ "wraps past 0", VBD_HUGE, RW(BLKIF_OP_READ, 2, UINT64_MAX - 8, FULL,
	  FULL), ERR },
	{ "huge dev, byte offset overflow", VBD_HUGE,
	  RW(BLKIF_OP_READ, 1, UINT64_MAX >> 9, S(1, 0, 0)), ERR },
	{ "huge dev, last byte-addressable", VBD_HUGE,
	  RW(BLKIF_OP_READ, 1, (UINT64_MAX >> 9) - 1, S(1, 0, 0)), OK },
	/* T7: ops */
	{ "reserved op 4", VBD_RW, RW(BLKIF_OP_RESERVED_1, 1, 0, FULL), NOTSUP },
	{ "op 7", VBD_RW, RW(7, 1, 0, FULL), NOTSUP },
	{ "op 255", VBD_RW, RW(255, 0, 0), NOTSUP },
	{ "flush unadvertised", VBD_NOFEAT, RW(BLKIF_OP_FLUSH_DISKCACHE, 0, 0),
	  NOTSUP },
	{ "flush", VBD_RW, RW(BLKIF_OP_FLUSH_DISKCACHE, 0, 0), OK },
	{ "flush with garbage sector", VBD_RW,
	  RW(BLKIF_OP_FLUSH_DISKCACHE, 0, UINT64_MAX), OK },
	{ "flush with data", VBD_RW, RW(BLKIF_OP_FLUSH_DISKCACHE, 1, 8, FULL),
	  OK },
	{ "flush with bad data", VBD_RW,
	  RW(BLKIF_OP_FLUSH_DISKCACHE, 1, 8, S(1, 0, 9)), ERR },
	{ "barrier unadvertised", VBD_NOFEAT, RW(BLKIF_OP_WRITE_BARRIER, 0, 0),
	  NOTSUP },
	{ "barrier", VBD_RW, RW(BLKIF_OP_WRITE_BARRIER, 0, 0), OK },
	{ "barrier with data past end", VBD_RW,
	  RW(BLKIF_OP_WRITE_BARRIER, 1, 1u << 20, FULL), ERR },
	{ "discard unadvertised", VBD_NOFEAT, DISC(0, 0, 8), NOTSUP },
	{ "discard", VBD_RW, DISC(0, 0, 8), OK },
	{ "secure discard", VBD_RW, DISC(BLKIF_DISCARD_SECURE, 0, 8), OK },
	{ "indirect unadvertised", VBD_NOFEAT, IND(BLKIF_OP_READ, 1, 0), NOTSUP },
	{ "unsupported beats malformed", VBD_NOFEAT,
	  RW(BLKIF_OP_FLUSH_DISKCACHE, 255, UINT64_MAX), NOTSUP },
	/* discard details */
	{ "discard whole device", VBD_RW, DISC(0, 0, 1u << 20), OK },
	{ "discard past end", VBD_RW, DISC(0, 1, 1u << 20), ERR },
	{ "discard wraps", VBD_HUGE, DISC(0, UINT64_MAX - 1, 4), ERR },
	{ "discard 0 sectors", VBD_RW, DISC(0, 100, 0), OK },
	{ "discard 0 sectors beyond end", VBD_RW, DISC(0, (1u << 20) + 1, 0),
	  ERR },
	{ "discard unknown flag", VBD_RW, DISC(0x80, 0, 8), NOTSUP },
	/* T8: read-only */
	{ "ro read", VBD_RO, RW(BLKIF_OP_READ, 1, 0, FULL), OK },
	{ "ro write", VBD_RO, RW(BLKIF_OP_WRITE, 1, 0, FULL), ERR },
	{ "ro write bad count", VBD_RO, RW(BLKIF_OP_WRITE, 0, 0), ERR },
	{ "ro barrier with data", VBD_RO, RW(BLKIF_OP_WRITE_BARRIER, 1, 0,
	  FULL), ERR },
	{ "ro barrier no data", VBD_RO, RW(BLKIF_OP_WRITE_BARRIER, 0, 0), OK },
	{ "ro flush with data", VBD_RO, RW(BLKIF_OP_FLUSH_DISKCACHE, 1, 0,
	  FULL), ERR },
	{ "ro flush no data", VBD_RO, RW(BLKIF_OP_FLUSH_DISKCACHE, 0, 0), OK },
	{ "ro discard", VBD_RO, DISC(0, 0, 8), ERR },
	{ "ro indirect write", VBD_RO, IND(BLKIF_OP_WRITE, 1, 0), ERR },
	{ "ro indirect read", VBD_RO, IND(BLKIF_OP_READ, 1, 0), OK },
	/* T19: 4 KiB logical sectors, 512-byte units on the ring */
	{ "4k aligned", VBD_4K, RW(BLKIF_OP_READ, 2, 8, FULL, FULL), OK },
	{ "4k sector unaligned", VBD_4K, RW(BLKIF_OP_READ, 1, 4, FULL), ERR },
	{ "4k first unaligned", VBD_4K, RW(BLKIF_OP_WRITE, 1, 8, S(1, 1, 7)),
	  ERR },
	{ "4k last unaligned", VBD_4K, RW(BLKIF_OP_WRITE, 1, 8, S(1, 0, 3)),
	  ERR },
	{ "4k half segment", VBD_4K, RW(BLKIF_OP_READ, 1, 0, S(1, 4, 7)), ERR },
	{ "4k flush with unaligned data", VBD_4K,
	  RW(BLKIF_OP_FLUSH_DISKCACHE, 1, 0, S(1, 0, 0)), ERR },
	{ "4k discard aligned", VBD_4K, DISC(0, 16, 64), OK },
	{ "4k discard start unaligned", VBD_4K, DISC(0, 1, 8), ERR },
	{ "4k discard length unaligned", VBD_4K, DISC(0, 8, 4), ERR },
	{ "4k end of device", VBD_4K, RW(BLKIF_OP_READ, 1, (1u << 20) - 8,
	  FULL), OK },
	/* a vbd we cannot describe rejects data, answers no-data ops */
	{ "bad sector size", VBD_BADSS, RW(BLKIF_OP_READ, 1, 0, FULL), ERR },
	{ "bad sector size discard", VBD_BADSS, DISC(0, 0, 8), ERR },
};

START_TEST(test_validate_table)
{
	const struct vcase *c = &vcases[_i];
	struct blkif_vbd_desc vbd = vbd_of(c->vbd);
	const char *reason = NULL;
	int16_t st;

	st = blkif_req_validate(&c->req, &vbd, &reason);
	ck_assert_msg(st == c->expect, "%s: got %d want %d (%s)", c->name,
		      st, c->expect, reason ? reason : "(null)");
	ck_assert_ptr_nonnull(reason);
	if (st == BLKIF_RSP_OKAY)
		ck_assert_str_eq(reason, "");
	else
		ck_assert_msg(strlen(reason) > 0, "%s: no reason", c->name);
	/* NULL reason pointer is allowed and gives the same answer. */
	ck_assert_int_eq(blkif_req_validate(&c->req, &vbd, NULL), st);
}
END_TEST

/* T4/T7 exhaustively: every direct count and every op byte. */
START_TEST(test_validate_all_counts_and_ops)
{
	struct blkif_vbd_desc vbd = vbd_of(VBD_RW);
	unsigned int n, op;

	for (n = 0; n < 256; n++) {
		struct blkif_req r = RW(BLKIF_OP_READ, 0, 0);
		unsigned int i;

		r.nr_segments = n;
		for (i = 0; i < 11; i++)
			r.seg[i] = (struct blkif_seg)FULL;
		ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL),
				 n >= 1 && n <= 11 ? OK : ERR);
		r.operation = BLKIF_OP_WRITE;
		ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL),
				 n >= 1 && n <= 11 ? OK : ERR);
		r.operation = BLKIF_OP_FLUSH_DISKCACHE;
		ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL),
				 n <= 11 ? OK : ERR);
	}
	for (op = 7; op < 256; op++) {
		struct blkif_req r = RW(op, 1, 0, FULL);

		ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL), NOTSUP);
	}
}
END_TEST

/* The same request decoded from every ABI validates the same way. */
START_TEST(test_validate_through_ring)
{
	struct blkif_vbd_desc vbd = vbd_of(VBD_RW);
	unsigned int i, k;

	for (k = 0; k < ARRAY_SIZE(vcases); k++) {
		if (vcases[k].vbd != VBD_RW)
			continue;
		for (i = 0; i < ARRAY_SIZE(all_abis); i++) {
			unsigned char slot[128];
			struct blkif_req r;

			ck_assert_int_eq(blkif_req_encode(all_abis[i], slot,
							  &vcases[k].req), 0);
			ck_assert_int_eq(blkif_req_decode(all_abis[i], slot,
							  &r), 0);
			ck_assert_msg(blkif_req_validate(&r, &vbd, NULL) ==
				      vcases[k].expect, "%s", vcases[k].name);
		}
	}
}
END_TEST

/* --- Indirect segments --------------------------------------------------- */

static unsigned char ind_pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST][4096];
static struct blkif_seg ind_in[BLKIF_MAX_INDIRECT_SEGMENTS];
static struct blkif_seg ind_out[BLKIF_MAX_INDIRECT_SEGMENTS];

static unsigned int make_indirect(struct blkif_req *r, uint8_t iop,
				  unsigned int nr, uint64_t sector)
{
	void *pp[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	unsigned int i, pages = (nr + 511) / 512;

	memset(r, 0, sizeof(*r));
	r->operation = BLKIF_OP_INDIRECT;
	r->indirect_op = iop;
	r->nr_segments = nr;
	r->sector_number = sector;
	for (i = 0; i < nr; i++)
		ind_in[i] = (struct blkif_seg){ 5000 + i, 0, 7 };
	for (i = 0; i < pages; i++)
		pp[i] = ind_pages[i];
	ck_assert_int_eq(blkif_indirect_pages_encode(pp, pages, ind_in, nr), 0);
	return pages;
}

static const void *const ind_cpages[] = {
	ind_pages[0], ind_pages[1], ind_pages[2], ind_pages[3],
	ind_pages[4], ind_pages[5], ind_pages[6], ind_pages[7],
};

START_TEST(test_indirect_decode)
{
	static const unsigned int counts[] = { 1, 11, 12, 511, 512, 513, 4096 };
	struct blkif_vbd_desc vbd = vbd_of(VBD_BIGINDIRECT);
	unsigned int k;

	for (k = 0; k < ARRAY_SIZE(counts); k++) {
		unsigned int nr = counts[k], pages, i;
		struct blkif_req r;
		uint64_t bytes = 0;

		pages = make_indirect(&r, BLKIF_OP_WRITE, nr, 64);
		ck_assert_uint_eq(blkif_req_nr_indirect_pages(&r), pages);
		ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL), OK);
		ck_assert_ptr_null(blkif_req_segs(&r));
		ck_assert_int_eq(blkif_req_length(&r, &bytes), -EINVAL);
		ck_assert_int_eq(blkif_req_validate_segments(&r, &vbd, NULL),
				 ERR);
		ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages,
				 pages, ind_out, nr), 0);
		ck_assert_ptr_eq(blkif_req_segs(&r), ind_out);
		for (i = 0; i < nr; i++) {
			ck_assert_uint_eq(ind_out[i].gref, 5000 + i);
			ck_assert_uint_eq(ind_out[i].first_sect, 0);
			ck_assert_uint_eq(ind_out[i].last_sect, 7);
		}
		ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL), OK);
		ck_assert_int_eq(blkif_req_validate_segments(&r, &vbd, NULL),
				 OK);
		ck_assert_int_eq(blkif_req_length(&r, &bytes), 0);
		ck_assert_uint_eq(bytes, (uint64_t)nr * 4096);
		ck_assert(blkif_req_is_write(&r));
		ck_assert_uint_eq(blkif_req_data_op(&r), BLKIF_OP_WRITE);
	}
}
END_TEST

START_TEST(test_indirect_decode_errors)
{
	struct blkif_req r, direct = RW(BLKIF_OP_READ, 1, 0, FULL);

	make_indirect(&r, BLKIF_OP_READ, 513, 0);
	/* wrong page count either way */
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 1, ind_out,
						   4096), -EINVAL);
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 3, ind_out,
						   4096), -EINVAL);
	/* output too small */
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 2, ind_out,
						   512), -EINVAL);
	ck_assert_ptr_null(r.indirect_segs);
	/* not indirect */
	ck_assert_int_eq(blkif_req_indirect_decode(&direct, ind_cpages, 0,
						   ind_out, 4096), -EINVAL);
	ck_assert_uint_eq(blkif_req_nr_indirect_pages(&direct), 0);
	/* beyond the protocol's 8 pages, even with room */
	r.nr_segments = 4097;
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 9, ind_out,
						   4096), -EINVAL);
	/* encoding more segments than pages hold */
	ck_assert_int_eq(blkif_indirect_pages_encode((void *const *)ind_cpages,
						     1, ind_in, 513), -EINVAL);
}
END_TEST

/* T5/T6 for segments that arrive through indirect pages. */
START_TEST(test_indirect_bad_segments)
{
	struct blkif_vbd_desc vbd = vbd_of(VBD_BIGINDIRECT);
	struct blkif_vbd_desc vbd4k = vbd_of(VBD_4K);
	struct blkif_req r;
	const char *why = NULL;

	/* a bad segment in the last page */
	make_indirect(&r, BLKIF_OP_READ, 1500, 0);
	ind_pages[2][(1499 - 1024) * 8 + 5] = 8;	/* last_sect of seg 1499 */
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 3, ind_out,
						   4096), 0);
	ck_assert_int_eq(blkif_req_validate(&r, &vbd, &why), ERR);
	ck_assert_str_eq(why, "segment last_sect beyond page");
	uint64_t bytes;
	ck_assert_int_eq(blkif_req_length(&r, &bytes), -EINVAL);

	/* first > last in the first page */
	make_indirect(&r, BLKIF_OP_READ, 2, 0);
	ind_pages[0][4] = 3;
	ind_pages[0][5] = 2;
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 1, ind_out,
						   4096), 0);
	ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL), ERR);

	/* range past the end via many segments */
	make_indirect(&r, BLKIF_OP_READ, 4096, (1u << 20) - 4096 * 8 + 1);
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 8, ind_out,
						   4096), 0);
	ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL), ERR);
	r.sector_number -= 1;
	ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL), OK);
	r.sector_number = UINT64_MAX - 100;
	ck_assert_int_eq(blkif_req_validate(&r, &vbd, NULL), ERR);

	/* 4 KiB device: misaligned segment in page */
	make_indirect(&r, BLKIF_OP_READ, 100, 8);
	ind_pages[0][50 * 8 + 5] = 3;
	ck_assert_int_eq(blkif_req_indirect_decode(&r, ind_cpages, 1, ind_out,
						   4096), 0);
	ck_assert_int_eq(blkif_req_validate(&r, &vbd4k, NULL), ERR);
	ind_out[50].last_sect = 7;
	ck_assert_int_eq(blkif_req_validate(&r, &vbd4k, NULL), OK);
}
END_TEST

/* --- Helpers ------------------------------------------------------------- */

START_TEST(test_lengths)
{
	struct blkif_req r = RW(BLKIF_OP_READ, 3, 0, S(1, 0, 7), S(2, 3, 3),
				S(3, 1, 6));
	uint64_t bytes = 1;

	ck_assert_uint_eq(blkif_seg_offset(&r.seg[0]), 0);
	ck_assert_uint_eq(blkif_seg_len(&r.seg[0]), 4096);
	ck_assert_uint_eq(blkif_seg_offset(&r.seg[1]), 1536);
	ck_assert_uint_eq(blkif_seg_len(&r.seg[1]), 512);
	ck_assert_uint_eq(blkif_seg_offset(&r.seg[2]), 512);
	ck_assert_uint_eq(blkif_seg_len(&r.seg[2]), 3072);
	ck_assert_int_eq(blkif_req_length(&r, &bytes), 0);
	ck_assert_uint_eq(bytes, 4096 + 512 + 3072);

	r.nr_segments = 0;
	ck_assert_int_eq(blkif_req_length(&r, &bytes), 0);
	ck_assert_uint_eq(bytes, 0);
	r.nr_segments = 12;
	bytes = 1;
	ck_assert_int_eq(blkif_req_length(&r, &bytes), -EINVAL);
	ck_assert_uint_eq(bytes, 1);	/* untouched on failure */
	r.nr_segments = 1;
	r.seg[0].last_sect = 8;
	ck_assert_int_eq(blkif_req_length(&r, &bytes), -EINVAL);
	r.seg[0] = (struct blkif_seg)S(1, 5, 4);
	ck_assert_int_eq(blkif_req_length(&r, &bytes), -EINVAL);
	r = (struct blkif_req)DISC(0, 0, 8);
	ck_assert_int_eq(blkif_req_length(&r, &bytes), -EINVAL);
}
END_TEST

START_TEST(test_is_write)
{
	static const struct {
		struct blkif_req r;
		bool write;
		uint8_t data_op;
	} t[] = {
		{ RW(BLKIF_OP_READ, 1, 0), false, BLKIF_OP_READ },
		{ RW(BLKIF_OP_WRITE, 1, 0), true, BLKIF_OP_WRITE },
		{ RW(BLKIF_OP_FLUSH_DISKCACHE, 0, 0), false,
		  BLKIF_OP_FLUSH_DISKCACHE },
		{ RW(BLKIF_OP_FLUSH_DISKCACHE, 1, 0), true,
		  BLKIF_OP_FLUSH_DISKCACHE },
		{ RW(BLKIF_OP_WRITE_BARRIER, 0, 0), false,
		  BLKIF_OP_WRITE_BARRIER },
		{ RW(BLKIF_OP_WRITE_BARRIER, 2, 0), true,
		  BLKIF_OP_WRITE_BARRIER },
		{ DISC(0, 0, 8), false, BLKIF_OP_DISCARD },
		{ IND(BLKIF_OP_READ, 1, 0), false, BLKIF_OP_READ },
		{ IND(BLKIF_OP_WRITE, 1, 0), true, BLKIF_OP_WRITE },
		{ RW(9, 1, 0), false, 9 },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		ck_assert_msg(blkif_req_is_write(&t[i].r) == t[i].write,
			      "case %u", i);
		ck_assert_uint_eq(blkif_req_data_op(&t[i].r), t[i].data_op);
	}
}
END_TEST

static Suite *blkif_suite(void)
{
	Suite *s = suite_create("blkif");
	TCase *tc;

	tc = tcase_create("layout");
	tcase_add_loop_test(tc, test_layout_sizes, 0, ARRAY_SIZE(layouts));
	tcase_add_loop_test(tc, test_layout_rw_offsets, 0, ARRAY_SIZE(layouts));
	tcase_add_loop_test(tc, test_layout_discard_indirect_offsets, 0,
			    ARRAY_SIZE(layouts));
	tcase_add_loop_test(tc, test_layout_rsp_offsets, 0, ARRAY_SIZE(layouts));
	tcase_add_test(tc, test_layout_native_matches_xen);
	tcase_add_test(tc, test_bad_abi);
	tcase_add_test(tc, test_decode_stays_in_slot);
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_add_loop_test(tc, test_roundtrip, 0,
			    ARRAY_SIZE(all_abis) * ARRAY_SIZE(roundtrip_ops));
	tcase_add_test(tc, test_encode_direct_count_limit);
	tcase_add_loop_test(tc, test_rsp_no_stale_bytes, 0, ARRAY_SIZE(all_abis));
	tcase_add_loop_test(tc, test_rsp_roundtrip, 0, ARRAY_SIZE(all_abis));
	suite_add_tcase(s, tc);

	tc = tcase_create("protocol");
	tcase_add_loop_test(tc, test_protocol_parse, 0, ARRAY_SIZE(proto_cases));
	tcase_add_test(tc, test_protocol_native_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("ring");
	tcase_add_loop_test(tc, test_ring_entries, 0, ARRAY_SIZE(all_abis));
	tcase_add_loop_test(tc, test_ring_matches_ring_h, 0, 5);
	tcase_add_test(tc, test_ring_slot_x86_32);
	suite_add_tcase(s, tc);

	tc = tcase_create("validate");
	tcase_add_loop_test(tc, test_validate_table, 0, ARRAY_SIZE(vcases));
	tcase_add_test(tc, test_validate_all_counts_and_ops);
	tcase_add_test(tc, test_validate_through_ring);
	tcase_add_test(tc, test_indirect_decode);
	tcase_add_test(tc, test_indirect_decode_errors);
	tcase_add_test(tc, test_indirect_bad_segments);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_is_write);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(blkif_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
