/* Fuzz target: raw ring-slot bytes in every ABI, plus indirect pages,
 * through blkif_req_decode, blkif_req_validate and (INDIRECT) the indirect
 * decode and segment validation, against a vbd described by the input.
 * The slot ends a page followed by a PROT_NONE page, so a read past the
 * slot faults even without ASan. Invariants of an OKAY answer abort. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blkif.h"

#define FUZZ_PAGE	4096u
/* abi, flags, sector-size shift, max_indirect (2), nr_sectors (8) */
#define FUZZ_HDR	13u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *fuzz_guard_page(void)
{
	static uint8_t *page;

	if (!page) {
		page = mmap(NULL, 2 * FUZZ_PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED ||
		    mprotect(page + FUZZ_PAGE, FUZZ_PAGE, PROT_NONE) < 0)
			abort();
	}
	return page;
}

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

/* What an OKAY request promises the I/O path. */
static void fuzz_check_okay(const struct blkif_req *req,
			    const struct blkif_vbd_desc *vbd)
{
	uint64_t bytes;
	uint8_t op = blkif_req_data_op(req);

	if (req->operation == BLKIF_OP_DISCARD) {
		fuzz_check(vbd->feature_discard && !vbd->read_only);
		fuzz_check(req->sector_number + req->discard_nr_sectors >= req->sector_number);
		fuzz_check(req->sector_number + req->discard_nr_sectors <= vbd->nr_sectors);
		return;
	}
	if (req->operation == BLKIF_OP_INDIRECT && !req->indirect_segs)
		return;	/* header only: segments not decoded yet */
	fuzz_check(blkif_req_length(req, &bytes) == 0);
	fuzz_check(bytes % 512 == 0);
	if (vbd->read_only)
		fuzz_check(!blkif_req_is_write(req));
	if (req->nr_segments) {
		const struct blkif_seg *segs = blkif_req_segs(req);

		fuzz_check(segs != NULL);
		fuzz_check(op == BLKIF_OP_READ || op == BLKIF_OP_WRITE ||
			   op == BLKIF_OP_WRITE_BARRIER || op == BLKIF_OP_FLUSH_DISKCACHE);
		fuzz_check(req->sector_number <= vbd->nr_sectors);
		fuzz_check(bytes / 512 <= vbd->nr_sectors - req->sector_number);
		for (unsigned int i = 0; i < req->nr_segments; i++)
			fuzz_check(blkif_seg_offset(&segs[i]) + blkif_seg_len(&segs[i]) <=
				   FUZZ_PAGE);
	}
}

/* A request that passed re-encodes to a slot that decodes the same. */
static void fuzz_check_roundtrip(enum blkif_abi abi, const struct blkif_req *req)
{
	uint8_t slot[128];
	struct blkif_req again;

	if (req->operation == BLKIF_OP_INDIRECT)
		return;
	fuzz_check(blkif_req_encode(abi, slot, req) == 0);
	fuzz_check(blkif_req_decode(abi, slot, &again) == 0);
	fuzz_check(again.operation == req->operation && again.id == req->id &&
		   again.sector_number == req->sector_number &&
		   again.nr_segments == req->nr_segments);
	if (req->operation == BLKIF_OP_DISCARD)
		fuzz_check(again.discard_nr_sectors == req->discard_nr_sectors &&
			   again.discard_flag == req->discard_flag);
	else
		fuzz_check(memcmp(again.seg, req->seg,
				  req->nr_segments * sizeof(req->seg[0])) == 0);
}

static void fuzz_indirect(struct blkif_req *req, const struct blkif_vbd_desc *vbd,
			  const uint8_t *data, size_t size)
{
	static struct blkif_seg segs[BLKIF_MAX_INDIRECT_SEGMENTS];
	const void *pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	unsigned int n = blkif_req_nr_indirect_pages(req), i;
	const char *reason;
	int16_t st;

	fuzz_check(n >= 1 && n <= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
	/* Each page its own exact-size allocation: ASan sees any overrun. */
	for (i = 0; i < n; i++) {
		uint8_t *p = calloc(1, FUZZ_PAGE);
		size_t off = (size_t)i * FUZZ_PAGE;

		if (!p)
			abort();
		if (off < size)
			memcpy(p, data + off, size - off < FUZZ_PAGE ? size - off : FUZZ_PAGE);
		pages[i] = p;
	}
	/* Wrong page count and too small a buffer are refused. */
	fuzz_check(blkif_req_indirect_decode(req, pages, n - 1, segs,
					     BLKIF_MAX_INDIRECT_SEGMENTS) == -EINVAL);
	fuzz_check(blkif_req_indirect_decode(req, pages, n, segs,
					     req->nr_segments - 1u) == -EINVAL);
	fuzz_check(blkif_req_indirect_decode(req, pages, n, segs,
					     BLKIF_MAX_INDIRECT_SEGMENTS) == 0);
	fuzz_check(req->indirect_segs == segs);
	st = blkif_req_validate(req, vbd, &reason);
	fuzz_check(reason != NULL);
	fuzz_check(st == blkif_req_validate_segments(req, vbd, NULL));
	if (st == BLKIF_RSP_OKAY)
		fuzz_check_okay(req, vbd);
	for (i = 0; i < n; i++)
		free((void *)pages[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blkif_vbd_desc vbd = { 0 };
	struct blkif_req req;
	enum blkif_abi abi;
	const char *reason = NULL;
	uint8_t *slot;
	size_t slot_size, n;
	int16_t st;

	if (size < FUZZ_HDR)
		return 0;
	abi = (enum blkif_abi)(data[0] % 3);
	vbd.read_only = data[1] & 1;
	vbd.feature_flush = data[1] & 2;
	vbd.feature_barrier = data[1] & 4;
	vbd.feature_discard = data[1] & 8;
	vbd.feature_discard_secure = data[1] & 16;
	/* Mostly valid sizes, sometimes not. */
	vbd.sector_size = data[1] & 32 ? (uint32_t)data[2] << 4 : 512u << (data[2] % 4);
	vbd.max_indirect_segments = (uint32_t)data[3] | (uint32_t)data[4] << 8;
	memcpy(&vbd.nr_sectors, data + 5, 8);
	if (!(data[1] & 64))
		vbd.nr_sectors &= 0xffffff;	/* a device size blkbackd could see */
	data += FUZZ_HDR;
	size -= FUZZ_HDR;

	slot_size = blkif_abi_slot_size(abi);
	fuzz_check(slot_size >= blkif_abi_req_size(abi) && slot_size <= 128);
	slot = fuzz_guard_page() + FUZZ_PAGE - slot_size;
	n = size < slot_size ? size : slot_size;
	memset(slot, 0, slot_size);
	memcpy(slot, data, n);
	data += n;
	size -= n;

	fuzz_check(blkif_req_decode(abi, slot, &req) == 0);
	fuzz_check(req.operation == slot[0]);
	st = blkif_req_validate(&req, &vbd, &reason);
	fuzz_check(reason != NULL);
	fuzz_check(st == BLKIF_RSP_OKAY || st == BLKIF_RSP_ERROR ||
		   st == BLKIF_RSP_EOPNOTSUPP);
	fuzz_check((st == BLKIF_RSP_OKAY) == (reason[0] == '\0'));
	if (st != BLKIF_RSP_OKAY)
		return 0;
	fuzz_check_okay(&req, &vbd);
	fuzz_check_roundtrip(abi, &req);
	if (req.operation == BLKIF_OP_INDIRECT)
		fuzz_indirect(&req, &vbd, data, size);
	return 0;
}
