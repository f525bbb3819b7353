/* Validation of a decoded blkif request against what the backend
 * advertised and what the device is (PROTOCOL.md §4). The guest is
 * hostile: every field is checked here before anything acts on it, and
 * the answer is a ring status (BLKIF_RSP_*) plus a reason for the log. */
#include "config.h"

#include "blkif.h"

/* Sectors on the ring are 512-byte units whatever the logical sector
 * size, so a 4 KiB-sector device needs everything in multiples of 8. */
#define BLKIF_SECTOR_SHIFT 9
#define BLKIF_SECTORS_PER_PAGE (BLKIF_RING_PAGE_SIZE >> BLKIF_SECTOR_SHIFT)

static int16_t blkif_fail(int16_t status, const char *why,
			  const char **ret_reason)
{
	if (ret_reason)
		*ret_reason = why;
	return status;
}

static int16_t blkif_ok(const char **ret_reason)
{
	return blkif_fail(BLKIF_RSP_OKAY, "", ret_reason);
}

/* 512-byte sectors per logical sector, or 0 for a size we cannot serve. */
static unsigned int blkif_vbd_sector_ratio(const struct blkif_vbd_desc *vbd)
{
	uint32_t ss = vbd->sector_size;

	if (ss < 512 || ss > BLKIF_RING_PAGE_SIZE || (ss & (ss - 1)))
		return 0;
	return ss >> BLKIF_SECTOR_SHIFT;
}

/* start .. start + count must lie within the device, and its byte offset
 * must be representable, however the two are chosen. */
static bool blkif_range_is_valid(const struct blkif_vbd_desc *vbd,
				 uint64_t start, uint64_t count)
{
	uint64_t end;

	if (__builtin_add_overflow(start, count, &end))
		return false;
	return end <= vbd->nr_sectors && end <= (UINT64_MAX >> BLKIF_SECTOR_SHIFT);
}

int16_t blkif_req_validate_segments(const struct blkif_req *req,
				    const struct blkif_vbd_desc *vbd,
				    const char **ret_reason)
{
	const struct blkif_seg *segs = blkif_req_segs(req);
	unsigned int ratio = blkif_vbd_sector_ratio(vbd);
	unsigned int i, max;
	uint64_t sectors = 0;

	if (!ratio)
		return blkif_fail(BLKIF_RSP_ERROR, "vbd sector size unsupported",
				  ret_reason);
	max = req->operation == BLKIF_OP_INDIRECT ? BLKIF_MAX_INDIRECT_SEGMENTS :
						     BLKIF_MAX_SEGMENTS_PER_REQUEST;
	if (req->operation == BLKIF_OP_DISCARD)
		return blkif_fail(BLKIF_RSP_ERROR, "discard has no segments",
				  ret_reason);
	if (req->nr_segments > max)
		return blkif_fail(BLKIF_RSP_ERROR, "too many segments",
				  ret_reason);
	if (req->nr_segments == 0)
		return blkif_ok(ret_reason);
	if (!segs)
		return blkif_fail(BLKIF_RSP_ERROR,
				  "indirect segments not decoded", ret_reason);
	if (req->sector_number % ratio)
		return blkif_fail(BLKIF_RSP_ERROR,
				  "sector not aligned to logical sector size",
				  ret_reason);
	for (i = 0; i < req->nr_segments; i++) {
		const struct blkif_seg *s = &segs[i];

		if (s->first_sect > s->last_sect)
			return blkif_fail(BLKIF_RSP_ERROR,
					  "segment first_sect > last_sect",
					  ret_reason);
		if (s->last_sect >= BLKIF_SECTORS_PER_PAGE)
			return blkif_fail(BLKIF_RSP_ERROR,
					  "segment last_sect beyond page",
					  ret_reason);
		if (s->first_sect % ratio || (s->last_sect + 1u) % ratio)
			return blkif_fail(BLKIF_RSP_ERROR,
					  "segment not aligned to logical sector size",
					  ret_reason);
		sectors += s->last_sect - s->first_sect + 1u;
	}
	/* sectors <= 4096 * 8, so only the addition can wrap. */
	if (!blkif_range_is_valid(vbd, req->sector_number, sectors))
		return blkif_fail(BLKIF_RSP_ERROR, "sector range beyond device",
				  ret_reason);
	return blkif_ok(ret_reason);
}

/* WRITE_BARRIER and FLUSH_DISKCACHE: no segments is a pure barrier or
 * flush; with segments they also write, as Linux blkback and QEMU treat
 * them (the data is written, then flushed), so they get write checks. */
static int16_t blkif_validate_sync(const struct blkif_req *req,
				   const struct blkif_vbd_desc *vbd,
				   const char **ret_reason)
{
	if (req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
		return blkif_fail(BLKIF_RSP_ERROR, "bad segment count",
				  ret_reason);
	if (req->nr_segments == 0)
		return blkif_ok(ret_reason);
	if (vbd->read_only)
		return blkif_fail(BLKIF_RSP_ERROR, "write to read-only vbd",
				  ret_reason);
	return blkif_req_validate_segments(req, vbd, ret_reason);
}

static int16_t blkif_validate_discard(const struct blkif_req *req,
				      const struct blkif_vbd_desc *vbd,
				      const char **ret_reason)
{
	unsigned int ratio = blkif_vbd_sector_ratio(vbd);

	/* A frontend asking for more than we offered must not believe it
	 * got it: secure erase that was not done is not "okay". */
	if (req->discard_flag & ~BLKIF_DISCARD_SECURE)
		return blkif_fail(BLKIF_RSP_EOPNOTSUPP,
				  "discard flag bits unknown", ret_reason);
	if ((req->discard_flag & BLKIF_DISCARD_SECURE) &&
	    !vbd->feature_discard_secure)
		return blkif_fail(BLKIF_RSP_EOPNOTSUPP,
				  "secure discard not advertised", ret_reason);
	if (vbd->read_only)
		return blkif_fail(BLKIF_RSP_ERROR, "discard on read-only vbd",
				  ret_reason);
	if (!ratio)
		return blkif_fail(BLKIF_RSP_ERROR, "vbd sector size unsupported",
				  ret_reason);
	if (req->sector_number % ratio || req->discard_nr_sectors % ratio)
		return blkif_fail(BLKIF_RSP_ERROR,
				  "discard not aligned to logical sector size",
				  ret_reason);
	/* An empty range is a no-op (Linux accepts it too), but it must
	 * still start inside the device. */
	if (!blkif_range_is_valid(vbd, req->sector_number,
				  req->discard_nr_sectors))
		return blkif_fail(BLKIF_RSP_ERROR, "discard range beyond device",
				  ret_reason);
	return blkif_ok(ret_reason);
}

static int16_t blkif_validate_indirect(const struct blkif_req *req,
				       const struct blkif_vbd_desc *vbd,
				       const char **ret_reason)
{
	unsigned int pages;

	if (req->indirect_op != BLKIF_OP_READ &&
	    req->indirect_op != BLKIF_OP_WRITE)
		return blkif_fail(BLKIF_RSP_ERROR, "bad indirect_op",
				  ret_reason);
	if (req->indirect_op == BLKIF_OP_WRITE && vbd->read_only)
		return blkif_fail(BLKIF_RSP_ERROR, "write to read-only vbd",
				  ret_reason);
	if (req->nr_segments == 0 ||
	    req->nr_segments > vbd->max_indirect_segments)
		return blkif_fail(BLKIF_RSP_ERROR, "bad indirect segment count",
				  ret_reason);
	/* Also bounds a max_indirect_segments configured above 4096. */
	pages = blkif_req_nr_indirect_pages(req);
	if (pages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)
		return blkif_fail(BLKIF_RSP_ERROR, "too many indirect pages",
				  ret_reason);
	if (req->indirect_segs)
		return blkif_req_validate_segments(req, vbd, ret_reason);
	return blkif_ok(ret_reason);
}

int16_t blkif_req_validate(const struct blkif_req *req,
			   const struct blkif_vbd_desc *vbd,
			   const char **ret_reason)
{
	/* Unsupported beats malformed: an op we do not serve is answered
	 * EOPNOTSUPP whatever the rest of the slot holds. */
	switch (req->operation) {
	case BLKIF_OP_READ:
		break;
	case BLKIF_OP_WRITE:
		if (vbd->read_only)
			return blkif_fail(BLKIF_RSP_ERROR,
					  "write to read-only vbd", ret_reason);
		break;
	case BLKIF_OP_WRITE_BARRIER:
		if (!vbd->feature_barrier)
			return blkif_fail(BLKIF_RSP_EOPNOTSUPP,
					  "barrier not advertised", ret_reason);
		return blkif_validate_sync(req, vbd, ret_reason);
	case BLKIF_OP_FLUSH_DISKCACHE:
		if (!vbd->feature_flush)
			return blkif_fail(BLKIF_RSP_EOPNOTSUPP,
					  "flush not advertised", ret_reason);
		return blkif_validate_sync(req, vbd, ret_reason);
	case BLKIF_OP_RESERVED_1:
		return blkif_fail(BLKIF_RSP_EOPNOTSUPP, "reserved op",
				  ret_reason);
	case BLKIF_OP_DISCARD:
		if (!vbd->feature_discard)
			return blkif_fail(BLKIF_RSP_EOPNOTSUPP,
					  "discard not advertised", ret_reason);
		return blkif_validate_discard(req, vbd, ret_reason);
	case BLKIF_OP_INDIRECT:
		if (!vbd->max_indirect_segments)
			return blkif_fail(BLKIF_RSP_EOPNOTSUPP,
					  "indirect not advertised", ret_reason);
		return blkif_validate_indirect(req, vbd, ret_reason);
	default:
		return blkif_fail(BLKIF_RSP_EOPNOTSUPP, "unknown op",
				  ret_reason);
	}
	/* READ and WRITE. */
	if (req->nr_segments == 0 ||
	    req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
		return blkif_fail(BLKIF_RSP_ERROR, "bad segment count",
				  ret_reason);
	return blkif_req_validate_segments(req, vbd, ret_reason);
}
