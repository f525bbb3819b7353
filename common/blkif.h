/* blkif requests and responses: the three ring ABIs, ring geometry, the
 * single private copy of a request slot into one native form, validation
 * against a vbd's properties (PROTOCOL.md §4), and encoding for the
 * frontend simulator. Pure functions: no logging, no allocation, no ring
 * indices or barriers (the ring owner supplies those). */
#ifndef BLKBACK_BLKIF_H
#define BLKBACK_BLKIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/io/blkif.h>	/* BLKIF_OP_*, BLKIF_RSP_*, RING_IDX, limits */

/* --- ABIs (blkif-abi.c) ------------------------------------------------ */

/* Layout of the ring entries. NATIVE is this build's own layout (the
 * same bytes as X86_64 on x86_64 and Arm, as X86_32 on i386). */
enum blkif_abi {
	BLKIF_ABI_NATIVE,
	BLKIF_ABI_X86_32,
	BLKIF_ABI_X86_64,
};

/* Frontend "protocol" node -> ABI. NULL or "" (node absent or empty)
 * gives X86_32 on x86 hosts, as Linux, QEMU and tapback assume for old
 * frontends, NATIVE elsewhere. "x86_32-abi", "x86_64-abi" and this host's
 * XEN_IO_PROTO_ABI_NATIVE are accepted; anything else is -EINVAL. */
int blkif_abi_parse(const char *protocol, enum blkif_abi *ret_abi);
/* The protocol string for an ABI, for logs and for the frontend to
 * write; NULL for a value outside the enum. */
const char *blkif_abi_name(enum blkif_abi abi);
/* "OKAY", "ERROR", "EOPNOTSUPP", or "invalid" for any other status. */
const char *blkif_rsp_status_name(int16_t status);
/* Byte sizes in an ABI; 0 for a value outside the enum. The slot is the
 * ring entry (union of request and response): x86_64 112, x86_32 108. */
size_t blkif_abi_req_size(enum blkif_abi abi);
size_t blkif_abi_rsp_size(enum blkif_abi abi);
size_t blkif_abi_slot_size(enum blkif_abi abi);

/* --- Ring geometry (blkif-abi.c) --------------------------------------- */

#define BLKIF_RING_PAGE_SIZE	4096u	/* ring pages are 4 KiB on every arch */
#define BLKIF_RING_HEADER_SIZE	64u	/* indices, pvt, pad before ring[0] */

struct blkif_ring_layout {
	enum blkif_abi abi;
	unsigned int order;	/* ring spans 2^order pages */
	unsigned int nr_ents;	/* entries; a power of two */
	size_t slot_size;	/* stride between entries */
};

/* Geometry of a ring of 2^order pages: entries = (pages * 4096 - 64) /
 * slot size, rounded down to a power of two (ring.h's __CONST_RING_SIZE).
 * -EINVAL for an unknown ABI or order > 16. */
int blkif_ring_layout_init(struct blkif_ring_layout *ret_layout,
			   enum blkif_abi abi, unsigned int order);
/* Address of the entry that index idx (free-running, masked here) uses,
 * inside a ring mapped contiguously at sring. Requests and responses
 * share entries, so this is both the request and the response slot. */
void *blkif_ring_slot(const struct blkif_ring_layout *layout, void *sring,
		      RING_IDX idx);

/* --- The native request (blkif-abi.c) ---------------------------------- */

/* Segments per indirect page: 4096 / sizeof(struct blkif_request_segment),
 * the same 8-byte segment in every ABI. */
#define BLKIF_SEGS_PER_INDIRECT_PAGE	512u
/* Hard protocol limit on indirect segments: 8 pages * 512 = 4096. */
#define BLKIF_MAX_INDIRECT_SEGMENTS \
	(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGS_PER_INDIRECT_PAGE)

struct blkif_seg {
	uint32_t gref;
	uint8_t first_sect;	/* 512-byte sectors within the 4 KiB page, */
	uint8_t last_sect;	/* both inclusive */
};

/* One request, decoded from a private copy of its slot. Which fields
 * mean something depends on operation:
 *  READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE and unknown ops (decoded
 *    with the read/write layout): nr_segments (the slot's u8), seg[];
 *  INDIRECT: indirect_op, nr_segments (the slot's u16), indirect_grefs[];
 *    the segments live in caller memory after blkif_req_indirect_decode;
 *  DISCARD: discard_flag, discard_nr_sectors (nr_segments is 0).
 * id is the guest's opaque value: echo it, never interpret it.
 * Sector numbers are always in 512-byte units (PROTOCOL.md §3). */
struct blkif_req {
	uint8_t operation;		/* BLKIF_OP_* exactly as in the slot */
	uint8_t indirect_op;
	uint8_t discard_flag;		/* BLKIF_DISCARD_SECURE or zero */
	uint16_t nr_segments;
	uint16_t handle;
	uint64_t id;
	uint64_t sector_number;
	uint64_t discard_nr_sectors;
	struct blkif_seg seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
	uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	/* INDIRECT only: nr_segments entries in caller memory, or NULL
	 * until blkif_req_indirect_decode. Copying the struct is safe. */
	const struct blkif_seg *indirect_segs;
};

/* Copy the slot once (slot_size bytes, then a compiler barrier so no
 * field is ever re-read from shared memory) and convert it. Never fails
 * on hostile contents: validation is separate. -EINVAL for a bad ABI. */
int blkif_req_decode(enum blkif_abi abi, const void *slot,
		     struct blkif_req *ret_req);

/* Indirect pages to fetch for a request that passed blkif_req_validate:
 * DIV_ROUND_UP(nr_segments, 512); 0 for a non-indirect request. */
unsigned int blkif_req_nr_indirect_pages(const struct blkif_req *req);

/* Decode an INDIRECT request's segments from its indirect pages, already
 * copied privately by the caller (pages[i] = copy of the page granted by
 * indirect_grefs[i], 4096 bytes each), into segs (capacity max_segs), and
 * point req->indirect_segs at them. The request must have passed
 * blkif_req_validate. -EINVAL if it is not INDIRECT, nr_pages is not
 * blkif_req_nr_indirect_pages(), or max_segs < nr_segments. */
int blkif_req_indirect_decode(struct blkif_req *req,
			      const void *const *pages, unsigned int nr_pages,
			      struct blkif_seg *segs, size_t max_segs);

/* The operation that moves data: indirect_op for INDIRECT, else
 * operation. */
uint8_t blkif_req_data_op(const struct blkif_req *req);
/* Segments of the request (seg[] or indirect_segs; may be NULL for an
 * INDIRECT request not yet decoded); nr_segments of them. */
const struct blkif_seg *blkif_req_segs(const struct blkif_req *req);
/* True when the request writes guest data to the disk: WRITE, BARRIER or
 * FLUSH with segments, INDIRECT with indirect_op WRITE. */
bool blkif_req_is_write(const struct blkif_req *req);

/* Per-segment byte offset in its page and byte length; meaningful only
 * for a segment that passed validation. */
static inline unsigned int blkif_seg_offset(const struct blkif_seg *seg)
{
	return (unsigned int)seg->first_sect << 9;
}

static inline unsigned int blkif_seg_len(const struct blkif_seg *seg)
{
	return ((unsigned int)seg->last_sect - seg->first_sect + 1) << 9;
}

/* Total bytes the request's segments transfer; -EINVAL if a segment has
 * first_sect > last_sect or last_sect > 7, or segments are missing. */
int blkif_req_length(const struct blkif_req *req, uint64_t *ret_bytes);

/* --- Validation (blkif-validate.c) ------------------------------------- */

/* What the backend advertised for a vbd and what the device is. */
struct blkif_vbd_desc {
	uint64_t nr_sectors;		/* device size in 512-byte sectors */
	uint32_t sector_size;		/* logical: power of two, 512..4096 */
	bool read_only;
	bool feature_flush;		/* feature-flush-cache */
	bool feature_barrier;		/* feature-barrier */
	bool feature_discard;		/* feature-discard */
	bool feature_discard_secure;	/* discard-secure */
	uint32_t max_indirect_segments;	/* 0: INDIRECT not advertised */
};

/* Validate everything the slot itself carries. Returns BLKIF_RSP_OKAY,
 * BLKIF_RSP_EOPNOTSUPP (unknown, reserved or unadvertised op) or
 * BLKIF_RSP_ERROR; *ret_reason (may be NULL) gets a short static string
 * for one log line ("" for OKAY). For every op except INDIRECT this is
 * the whole validation. For INDIRECT it checks the header (indirect_op,
 * counts, pages, read-only) and, only once indirect_segs is set, the
 * segments: so after blkif_req_indirect_decode the caller must run
 * blkif_req_validate (or blkif_req_validate_segments) again.
 * Decisions: FLUSH/BARRIER may carry 0..11 segments (with data they are
 * writes: read-only -> ERROR); DISCARD with BLKIF_DISCARD_SECURE when
 * discard-secure is not advertised, or unknown flag bits -> EOPNOTSUPP;
 * a DISCARD of 0 sectors inside the device is OKAY (a no-op). */
int16_t blkif_req_validate(const struct blkif_req *req,
			   const struct blkif_vbd_desc *vbd,
			   const char **ret_reason);

/* Segment geometry (first <= last <= 7, logical-sector alignment) and the
 * device range sector_number .. + length, with overflow checks. Same
 * return convention. blkif_req_validate calls it for direct requests. */
int16_t blkif_req_validate_segments(const struct blkif_req *req,
				    const struct blkif_vbd_desc *vbd,
				    const char **ret_reason);

/* --- Encoding, responses (blkif-abi.c) --------------------------------- */

/* Write a request into a slot in an ABI, padding zeroed (frontend side).
 * Faithful for malformed requests too (raw mode): a non-INDIRECT op
 * writes min(nr_segments, 11) segments and nr_segments must fit the
 * slot's u8; unknown ops use the read/write layout. -EINVAL for a bad
 * ABI or nr_segments > 255 on a direct request. */
int blkif_req_encode(enum blkif_abi abi, void *slot,
		     const struct blkif_req *req);

/* Fill indirect pages (4096 bytes each, zeroed first) with nr_segs
 * segments, 512 per page. -EINVAL if they do not fit in nr_pages. */
int blkif_indirect_pages_encode(void *const *pages, unsigned int nr_pages,
				const struct blkif_seg *segs,
				unsigned int nr_segs);

struct blkif_rsp {
	uint64_t id;
	uint8_t operation;
	int16_t status;		/* BLKIF_RSP_* */
};

/* Write the response struct of the ABI into a slot: its fields and its
 * padding (zero), never the request bytes beyond it, so no stale backend
 * memory reaches the guest (T10). One memcpy from a private buffer.
 * -EINVAL for a bad ABI. */
int blkif_rsp_encode(enum blkif_abi abi, void *slot,
		     const struct blkif_rsp *rsp);
/* Frontend side: copy a response slot once and decode it. */
int blkif_rsp_decode(enum blkif_abi abi, const void *slot,
		     struct blkif_rsp *ret_rsp);

#endif
