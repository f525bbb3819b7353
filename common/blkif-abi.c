/* The blkif ring ABIs: byte layouts of requests and responses in x86_32,
 * x86_64 and this host's native ABI, ring geometry, the single private
 * copy that turns a slot into a struct blkif_req, and the reverse
 * encodings the frontend simulator and the response path use. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <xen/io/protocols.h>

#include "blkif.h"

/* The layouts, written from blkif.h's struct definitions and each ABI's
 * alignment of uint64_t: 4 bytes on i386, 8 on x86_64 (and Arm). A
 * typedef may lower alignment, which is exactly the i386 rule. */
typedef uint64_t blkif_u64_a4 __attribute__((aligned(4)));
typedef uint64_t blkif_u64_a8 __attribute__((aligned(8)));

struct blkif_wire_seg {
	uint32_t gref;
	uint8_t first_sect;
	uint8_t last_sect;
};

#define BLKIF_WIRE_RW(u64)						\
	uint8_t operation;						\
	uint8_t nr_segments;						\
	uint16_t handle;						\
	u64 id;								\
	u64 sector_number;						\
	struct blkif_wire_seg seg[BLKIF_MAX_SEGMENTS_PER_REQUEST]

#define BLKIF_WIRE_DISCARD(u64)						\
	uint8_t operation;						\
	uint8_t flag;							\
	uint16_t handle;						\
	u64 id;								\
	u64 sector_number;						\
	u64 nr_sectors

#define BLKIF_WIRE_INDIRECT(u64)					\
	uint8_t operation;						\
	uint8_t indirect_op;						\
	uint16_t nr_segments;						\
	u64 id;								\
	u64 sector_number;						\
	uint16_t handle;						\
	uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST]

#define BLKIF_WIRE_RSP(u64)						\
	u64 id;								\
	uint8_t operation;						\
	int16_t status

struct blkif_x86_32_rw { BLKIF_WIRE_RW(blkif_u64_a4); };
struct blkif_x86_32_discard { BLKIF_WIRE_DISCARD(blkif_u64_a4); };
/* blkif.h pads the i386 indirect request to 64 bytes explicitly. */
struct blkif_x86_32_indirect { BLKIF_WIRE_INDIRECT(blkif_u64_a4); blkif_u64_a4 pad; };
struct blkif_x86_32_rsp { BLKIF_WIRE_RSP(blkif_u64_a4); };

struct blkif_x86_64_rw { BLKIF_WIRE_RW(blkif_u64_a8); };
struct blkif_x86_64_discard { BLKIF_WIRE_DISCARD(blkif_u64_a8); };
struct blkif_x86_64_indirect { BLKIF_WIRE_INDIRECT(blkif_u64_a8); };
struct blkif_x86_64_rsp { BLKIF_WIRE_RSP(blkif_u64_a8); };

#define SA(cond) _Static_assert(cond, #cond)
SA(sizeof(struct blkif_wire_seg) == 8);
SA(sizeof(struct blkif_wire_seg) == sizeof(struct blkif_request_segment));
SA(BLKIF_SEGS_PER_INDIRECT_PAGE * sizeof(struct blkif_wire_seg) == BLKIF_RING_PAGE_SIZE);
SA(BLKIF_MAX_INDIRECT_SEGMENTS == 4096);

SA(sizeof(struct blkif_x86_32_rw) == 108);
SA(offsetof(struct blkif_x86_32_rw, id) == 4);
SA(offsetof(struct blkif_x86_32_rw, sector_number) == 12);
SA(offsetof(struct blkif_x86_32_rw, seg) == 20);
SA(sizeof(struct blkif_x86_32_discard) == 28);
SA(offsetof(struct blkif_x86_32_discard, nr_sectors) == 20);
SA(sizeof(struct blkif_x86_32_indirect) == 64);
SA(offsetof(struct blkif_x86_32_indirect, handle) == 20);
SA(offsetof(struct blkif_x86_32_indirect, indirect_grefs) == 24);
SA(sizeof(struct blkif_x86_32_rsp) == 12);
SA(offsetof(struct blkif_x86_32_rsp, operation) == 8);
SA(offsetof(struct blkif_x86_32_rsp, status) == 10);

SA(sizeof(struct blkif_x86_64_rw) == 112);
SA(offsetof(struct blkif_x86_64_rw, id) == 8);
SA(offsetof(struct blkif_x86_64_rw, sector_number) == 16);
SA(offsetof(struct blkif_x86_64_rw, seg) == 24);
SA(sizeof(struct blkif_x86_64_discard) == 32);
SA(offsetof(struct blkif_x86_64_discard, nr_sectors) == 24);
SA(sizeof(struct blkif_x86_64_indirect) == 64);
SA(offsetof(struct blkif_x86_64_indirect, handle) == 24);
SA(offsetof(struct blkif_x86_64_indirect, indirect_grefs) == 28);
SA(sizeof(struct blkif_x86_64_rsp) == 16);
SA(offsetof(struct blkif_x86_64_rsp, operation) == 8);
SA(offsetof(struct blkif_x86_64_rsp, status) == 10);

/* The sring header ring.h puts before ring[0]. */
SA(offsetof(struct blkif_sring, ring) == BLKIF_RING_HEADER_SIZE);

/* NATIVE must be the layout this host's compiler gives blkif.h. */
#if defined(__i386__)
#define BLKIF_NATIVE_RW struct blkif_x86_32_rw
#define BLKIF_NATIVE_RSP struct blkif_x86_32_rsp
#define BLKIF_NATIVE_IND struct blkif_x86_32_indirect
#else
#define BLKIF_NATIVE_RW struct blkif_x86_64_rw
#define BLKIF_NATIVE_RSP struct blkif_x86_64_rsp
#define BLKIF_NATIVE_IND struct blkif_x86_64_indirect
#endif
SA(sizeof(struct blkif_request) == sizeof(BLKIF_NATIVE_RW));
SA(offsetof(struct blkif_request, id) == offsetof(BLKIF_NATIVE_RW, id));
SA(offsetof(struct blkif_request, sector_number) == offsetof(BLKIF_NATIVE_RW, sector_number));
SA(offsetof(struct blkif_request, seg) == offsetof(BLKIF_NATIVE_RW, seg));
SA(sizeof(struct blkif_response) == sizeof(BLKIF_NATIVE_RSP));
SA(offsetof(struct blkif_response, status) == offsetof(BLKIF_NATIVE_RSP, status));
SA(sizeof(struct blkif_request_indirect) == sizeof(BLKIF_NATIVE_IND));
SA(offsetof(struct blkif_request_indirect, indirect_grefs) ==
   offsetof(BLKIF_NATIVE_IND, indirect_grefs));
SA(offsetof(struct blkif_request_discard, nr_sectors) ==
   offsetof(struct blkif_x86_64_discard, nr_sectors) ||
   offsetof(struct blkif_request_discard, nr_sectors) ==
   offsetof(struct blkif_x86_32_discard, nr_sectors));
SA(sizeof(union blkif_sring_entry) == sizeof(BLKIF_NATIVE_RW));

/* Field offsets per ABI, so one decoder and one encoder serve all. The
 * first four bytes (operation, nr_segments/flag/indirect_op, handle or
 * the indirect u16 count) sit at the same offsets in every layout. */
struct blkif_abi_desc {
	const char *name;
	size_t req_size;	/* read/write request = largest request */
	size_t rsp_size;
	size_t slot_size;
	size_t id, sector, seg;			/* read/write */
	size_t discard_nr_sectors;
	size_t ind_handle, ind_grefs;
	size_t rsp_id, rsp_op, rsp_status;
};

#define BLKIF_ABI_DESC(abi, protoname) {				\
	.name = protoname,						\
	.req_size = sizeof(struct blkif_##abi##_rw),			\
	.rsp_size = sizeof(struct blkif_##abi##_rsp),			\
	.slot_size = sizeof(struct blkif_##abi##_rw) >			\
		sizeof(struct blkif_##abi##_rsp) ?			\
		sizeof(struct blkif_##abi##_rw) :			\
		sizeof(struct blkif_##abi##_rsp),			\
	.id = offsetof(struct blkif_##abi##_rw, id),			\
	.sector = offsetof(struct blkif_##abi##_rw, sector_number),	\
	.seg = offsetof(struct blkif_##abi##_rw, seg),			\
	.discard_nr_sectors =						\
		offsetof(struct blkif_##abi##_discard, nr_sectors),	\
	.ind_handle = offsetof(struct blkif_##abi##_indirect, handle),	\
	.ind_grefs =							\
		offsetof(struct blkif_##abi##_indirect, indirect_grefs), \
	.rsp_id = offsetof(struct blkif_##abi##_rsp, id),		\
	.rsp_op = offsetof(struct blkif_##abi##_rsp, operation),	\
	.rsp_status = offsetof(struct blkif_##abi##_rsp, status),	\
}

static const struct blkif_abi_desc blkif_abi_x86_32 =
	BLKIF_ABI_DESC(x86_32, XEN_IO_PROTO_ABI_X86_32);
static const struct blkif_abi_desc blkif_abi_x86_64 =
	BLKIF_ABI_DESC(x86_64, XEN_IO_PROTO_ABI_X86_64);
#if defined(__i386__)
static const struct blkif_abi_desc blkif_abi_native =
	BLKIF_ABI_DESC(x86_32, XEN_IO_PROTO_ABI_NATIVE);
#else
static const struct blkif_abi_desc blkif_abi_native =
	BLKIF_ABI_DESC(x86_64, XEN_IO_PROTO_ABI_NATIVE);
#endif

/* Every request layout fits the private buffer the decoder copies into. */
#define BLKIF_SLOT_MAX 112
SA(sizeof(struct blkif_x86_64_rw) <= BLKIF_SLOT_MAX);
SA(sizeof(struct blkif_x86_32_indirect) <= sizeof(struct blkif_x86_32_rw));
SA(sizeof(struct blkif_x86_64_indirect) <= sizeof(struct blkif_x86_64_rw));
SA(sizeof(struct blkif_x86_64_discard) <= sizeof(struct blkif_x86_64_rw));

static const struct blkif_abi_desc *blkif_abi_desc_get(enum blkif_abi abi)
{
	switch (abi) {
	case BLKIF_ABI_NATIVE:
		return &blkif_abi_native;
	case BLKIF_ABI_X86_32:
		return &blkif_abi_x86_32;
	case BLKIF_ABI_X86_64:
		return &blkif_abi_x86_64;
	}
	return NULL;
}

/* Ring contents are in the guest's byte order; every ABI we speak is
 * little-endian, like every host we build for. */
static uint16_t blkif_ld16(const unsigned char *b, size_t off)
{
	uint16_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static uint32_t blkif_ld32(const unsigned char *b, size_t off)
{
	uint32_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static uint64_t blkif_ld64(const unsigned char *b, size_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static void blkif_st16(unsigned char *b, size_t off, uint16_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

static void blkif_st32(unsigned char *b, size_t off, uint32_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

static void blkif_st64(unsigned char *b, size_t off, uint64_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

static void blkif_seg_load(const unsigned char *b, struct blkif_seg *seg)
{
	seg->gref = blkif_ld32(b, offsetof(struct blkif_wire_seg, gref));
	seg->first_sect = b[offsetof(struct blkif_wire_seg, first_sect)];
	seg->last_sect = b[offsetof(struct blkif_wire_seg, last_sect)];
}

static void blkif_seg_store(unsigned char *b, const struct blkif_seg *seg)
{
	blkif_st32(b, offsetof(struct blkif_wire_seg, gref), seg->gref);
	b[offsetof(struct blkif_wire_seg, first_sect)] = seg->first_sect;
	b[offsetof(struct blkif_wire_seg, last_sect)] = seg->last_sect;
}

/* The guest may rewrite its slot while we copy it (T1). After the memcpy
 * into a private buffer this barrier stops the compiler from satisfying
 * later field reads from the shared slot instead of the copy: the buffer
 * escapes into the asm, which "may change memory", so it must be read
 * back from our copy. */
static void blkif_private_copy(void *dst, const void *shared, size_t len)
{
	memcpy(dst, shared, len);
	__asm__ __volatile__("" : : "r"(dst) : "memory");
}

int blkif_abi_parse(const char *protocol, enum blkif_abi *ret_abi)
{
	enum blkif_abi abi;

	if (!protocol || !*protocol) {
#if defined(__i386__) || defined(__x86_64__)
		/* Frontends older than the protocol node were 32-bit PV
		 * guests; Linux, QEMU and tapback assume x86_32 too. */
		abi = BLKIF_ABI_X86_32;
#else
		abi = BLKIF_ABI_NATIVE;
#endif
	} else if (!strcmp(protocol, XEN_IO_PROTO_ABI_X86_32)) {
		abi = BLKIF_ABI_X86_32;
	} else if (!strcmp(protocol, XEN_IO_PROTO_ABI_X86_64)) {
		abi = BLKIF_ABI_X86_64;
	} else if (!strcmp(protocol, XEN_IO_PROTO_ABI_NATIVE)) {
		abi = BLKIF_ABI_NATIVE;
	} else {
		return -EINVAL;
	}
	*ret_abi = abi;
	return 0;
}

const char *blkif_abi_name(enum blkif_abi abi)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);

	return d ? d->name : NULL;
}

size_t blkif_abi_req_size(enum blkif_abi abi)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);

	return d ? d->req_size : 0;
}

size_t blkif_abi_rsp_size(enum blkif_abi abi)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);

	return d ? d->rsp_size : 0;
}

size_t blkif_abi_slot_size(enum blkif_abi abi)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);

	return d ? d->slot_size : 0;
}

/* Beyond 2^16 pages (256 MiB) the arithmetic stays exact but no ring is
 * that large; refusing keeps callers from passing guest values blindly. */
#define BLKIF_RING_ORDER_LIMIT 16

int blkif_ring_layout_init(struct blkif_ring_layout *ret_layout,
			   enum blkif_abi abi, unsigned int order)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);
	size_t fit;
	unsigned int n;

	if (!d || order > BLKIF_RING_ORDER_LIMIT)
		return -EINVAL;
	fit = (((size_t)BLKIF_RING_PAGE_SIZE << order) - BLKIF_RING_HEADER_SIZE) /
	      d->slot_size;
	/* Round down to a power of two so indices can be masked. */
	for (n = 1; (size_t)n * 2 <= fit; n *= 2)
		;
	ret_layout->abi = abi;
	ret_layout->order = order;
	ret_layout->nr_ents = n;
	ret_layout->slot_size = d->slot_size;
	return 0;
}

void *blkif_ring_slot(const struct blkif_ring_layout *layout, void *sring,
		      RING_IDX idx)
{
	size_t i = idx & (layout->nr_ents - 1);

	return (unsigned char *)sring + BLKIF_RING_HEADER_SIZE +
	       i * layout->slot_size;
}

int blkif_req_decode(enum blkif_abi abi, const void *slot,
		     struct blkif_req *ret_req)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);
	unsigned char b[BLKIF_SLOT_MAX];
	struct blkif_req *req = ret_req;	/* the one failure comes first */
	unsigned int i, n;

	if (!d)
		return -EINVAL;
	blkif_private_copy(b, slot, d->req_size);

	memset(req, 0, sizeof(*req));
	req->operation = b[0];
	req->id = blkif_ld64(b, d->id);
	req->sector_number = blkif_ld64(b, d->sector);
	switch (req->operation) {
	case BLKIF_OP_DISCARD:
		req->discard_flag = b[1];
		req->handle = blkif_ld16(b, 2);
		req->discard_nr_sectors = blkif_ld64(b, d->discard_nr_sectors);
		break;
	case BLKIF_OP_INDIRECT:
		req->indirect_op = b[1];
		req->nr_segments = blkif_ld16(b, 2);
		req->handle = blkif_ld16(b, d->ind_handle);
		for (i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
			req->indirect_grefs[i] =
				blkif_ld32(b, d->ind_grefs + 4 * i);
		break;
	default:
		/* Read, write, barrier, flush, and unknown ops, which only
		 * need operation and id to be answered. */
		req->nr_segments = b[1];
		req->handle = blkif_ld16(b, 2);
		/* Segments past nr_segments mean nothing (and stay zero):
		 * decoding them cost a tenth of a 4 KiB request's cycles. */
		n = req->nr_segments < BLKIF_MAX_SEGMENTS_PER_REQUEST ? req->nr_segments :
		    BLKIF_MAX_SEGMENTS_PER_REQUEST;
		for (i = 0; i < n; i++)
			blkif_seg_load(b + d->seg +
				       i * sizeof(struct blkif_wire_seg),
				       &req->seg[i]);
		break;
	}
	return 0;
}

unsigned int blkif_req_nr_indirect_pages(const struct blkif_req *req)
{
	if (req->operation != BLKIF_OP_INDIRECT)
		return 0;
	return ((unsigned int)req->nr_segments + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) /
	       BLKIF_SEGS_PER_INDIRECT_PAGE;
}

int blkif_req_indirect_decode(struct blkif_req *req,
			      const void *const *pages, unsigned int nr_pages,
			      struct blkif_seg *segs, size_t max_segs)
{
	unsigned int i;

	if (req->operation != BLKIF_OP_INDIRECT ||
	    req->nr_segments > BLKIF_MAX_INDIRECT_SEGMENTS ||
	    nr_pages != blkif_req_nr_indirect_pages(req) ||
	    max_segs < req->nr_segments)
		return -EINVAL;
	for (i = 0; i < req->nr_segments; i++) {
		const unsigned char *page =
			pages[i / BLKIF_SEGS_PER_INDIRECT_PAGE];

		blkif_seg_load(page + (i % BLKIF_SEGS_PER_INDIRECT_PAGE) *
			       sizeof(struct blkif_wire_seg), &segs[i]);
	}
	req->indirect_segs = segs;
	return 0;
}

uint8_t blkif_req_data_op(const struct blkif_req *req)
{
	return req->operation == BLKIF_OP_INDIRECT ? req->indirect_op :
						      req->operation;
}

const struct blkif_seg *blkif_req_segs(const struct blkif_req *req)
{
	return req->operation == BLKIF_OP_INDIRECT ? req->indirect_segs :
						      req->seg;
}

bool blkif_req_is_write(const struct blkif_req *req)
{
	switch (req->operation) {
	case BLKIF_OP_WRITE:
		return true;
	case BLKIF_OP_WRITE_BARRIER:
	case BLKIF_OP_FLUSH_DISKCACHE:
		return req->nr_segments > 0;
	case BLKIF_OP_INDIRECT:
		return req->indirect_op == BLKIF_OP_WRITE;
	default:
		return false;
	}
}

int blkif_req_length(const struct blkif_req *req, uint64_t *ret_bytes)
{
	const struct blkif_seg *segs = blkif_req_segs(req);
	uint64_t bytes = 0;
	unsigned int i, max;

	max = req->operation == BLKIF_OP_INDIRECT ? BLKIF_MAX_INDIRECT_SEGMENTS :
						     BLKIF_MAX_SEGMENTS_PER_REQUEST;
	if (req->operation == BLKIF_OP_DISCARD || req->nr_segments > max ||
	    (req->nr_segments && !segs))
		return -EINVAL;
	for (i = 0; i < req->nr_segments; i++) {
		if (segs[i].first_sect > segs[i].last_sect ||
		    segs[i].last_sect >= BLKIF_RING_PAGE_SIZE / 512)
			return -EINVAL;
		bytes += blkif_seg_len(&segs[i]);
	}
	*ret_bytes = bytes;
	return 0;
}

int blkif_req_encode(enum blkif_abi abi, void *slot,
		     const struct blkif_req *req)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);
	unsigned char b[BLKIF_SLOT_MAX];
	unsigned int i, n;

	if (!d)
		return -EINVAL;
	memset(b, 0, sizeof(b));
	b[0] = req->operation;
	blkif_st64(b, d->id, req->id);
	blkif_st64(b, d->sector, req->sector_number);
	switch (req->operation) {
	case BLKIF_OP_DISCARD:
		b[1] = req->discard_flag;
		blkif_st16(b, 2, req->handle);
		blkif_st64(b, d->discard_nr_sectors, req->discard_nr_sectors);
		break;
	case BLKIF_OP_INDIRECT:
		b[1] = req->indirect_op;
		blkif_st16(b, 2, req->nr_segments);
		blkif_st16(b, d->ind_handle, req->handle);
		for (i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
			blkif_st32(b, d->ind_grefs + 4 * i,
				   req->indirect_grefs[i]);
		break;
	default:
		if (req->nr_segments > UINT8_MAX)
			return -EINVAL;
		b[1] = (uint8_t)req->nr_segments;
		blkif_st16(b, 2, req->handle);
		n = req->nr_segments < BLKIF_MAX_SEGMENTS_PER_REQUEST ?
		    req->nr_segments : BLKIF_MAX_SEGMENTS_PER_REQUEST;
		for (i = 0; i < n; i++)
			blkif_seg_store(b + d->seg +
					i * sizeof(struct blkif_wire_seg),
					&req->seg[i]);
		break;
	}
	memcpy(slot, b, d->req_size);
	return 0;
}

int blkif_indirect_pages_encode(void *const *pages, unsigned int nr_pages,
				const struct blkif_seg *segs,
				unsigned int nr_segs)
{
	unsigned int i;

	if (nr_segs > (size_t)nr_pages * BLKIF_SEGS_PER_INDIRECT_PAGE)
		return -EINVAL;
	for (i = 0; i < nr_pages; i++)
		memset(pages[i], 0, BLKIF_RING_PAGE_SIZE);
	for (i = 0; i < nr_segs; i++) {
		unsigned char *page = pages[i / BLKIF_SEGS_PER_INDIRECT_PAGE];

		blkif_seg_store(page + (i % BLKIF_SEGS_PER_INDIRECT_PAGE) *
				sizeof(struct blkif_wire_seg), &segs[i]);
	}
	return 0;
}

int blkif_rsp_encode(enum blkif_abi abi, void *slot,
		     const struct blkif_rsp *rsp)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);
	unsigned char b[sizeof(struct blkif_x86_64_rsp)];

	if (!d)
		return -EINVAL;
	/* Built privately, padding zeroed, then stored in one go: the
	 * guest never sees our stack or a half-written response. */
	memset(b, 0, sizeof(b));
	blkif_st64(b, d->rsp_id, rsp->id);
	b[d->rsp_op] = rsp->operation;
	blkif_st16(b, d->rsp_status, (uint16_t)rsp->status);
	memcpy(slot, b, d->rsp_size);
	return 0;
}

int blkif_rsp_decode(enum blkif_abi abi, const void *slot,
		     struct blkif_rsp *ret_rsp)
{
	const struct blkif_abi_desc *d = blkif_abi_desc_get(abi);
	unsigned char b[sizeof(struct blkif_x86_64_rsp)];

	if (!d)
		return -EINVAL;
	blkif_private_copy(b, slot, d->rsp_size);
	ret_rsp->id = blkif_ld64(b, d->rsp_id);
	ret_rsp->operation = b[d->rsp_op];
	ret_rsp->status = (int16_t)blkif_ld16(b, d->rsp_status);
	return 0;
}

const char *blkif_rsp_status_name(int16_t status)
{
	switch (status) {
	case BLKIF_RSP_OKAY:
		return "OKAY";
	case BLKIF_RSP_ERROR:
		return "ERROR";
	case BLKIF_RSP_EOPNOTSUPP:
		return "EOPNOTSUPP";
	default:
		return "invalid";
	}
}
