/* The counters a ring keeps, each named once with its unit and help text:
 * struct ring_stats, the control socket's JSON, blkback-ctl's table and its
 * Prometheus text are all produced from the lists below. The daemon and
 * blkback-ctl both include this header, so the two cannot drift apart. */
#ifndef BLKBACK_STATS_H
#define BLKBACK_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;

/* Answered requests are counted by operation: X(ENUM, name). */
#define RING_OP_CLASS_LIST(X) \
	X(READ, "read") X(WRITE, "write") X(BARRIER, "barrier") \
	X(FLUSH, "flush") X(DISCARD, "discard") X(OTHER, "other")

enum ring_op_class {
#define RING_OP_ENUM(e, name) RING_OP_##e,
	RING_OP_CLASS_LIST(RING_OP_ENUM)
#undef RING_OP_ENUM
	RING_OP_CLASSES,
};

/* How totals combine a ring's value: counters add up over the rings a vbd
 * has had (released ones too); gauges over the rings running now; an
 * index is one ring's position and has no total. */
enum stat_merge { STAT_COUNTER, STAT_GAUGE, STAT_INDEX };
/* What one unit of the field is; Prometheus gets base units (bytes). */
enum stat_unit { STAT_UNIT_ONE, STAT_UNIT_SECTOR };

/* Every scalar counter:
 * X(field, type, merge, unit, json_obj, json_key, line, label, prom, prom_label, help)
 *   field, type	the struct ring_stats member and its width
 *   json_obj, json_key	where it is in a ring's "counters" object (json_obj
 *			NULL: at the top)
 *   line, label	blkback-ctl's human output: the line it is on, its name
 *   prom, prom_label	the Prometheus metric, and the label telling this
 *			row from others of the same metric (rows of one
 *			metric are adjacent; the first carries the help), or
 *			NULL when not exported
 *   help		the metric's HELP line */
#define RING_STATS_LIST(X) \
	X(sectors_read, uint64_t, STAT_COUNTER, STAT_UNIT_SECTOR, NULL, "sectors_read", \
	  "sectors", "read", "blkbackd_read_bytes_total", NULL, \
	  "Bytes read by successful requests.") \
	X(sectors_written, uint64_t, STAT_COUNTER, STAT_UNIT_SECTOR, NULL, "sectors_written", \
	  "sectors", "written", "blkbackd_written_bytes_total", NULL, \
	  "Bytes written by successful requests.") \
	X(err_validation, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, "errors", "validation", \
	  "errors", "validation", "blkbackd_errors_total", "kind=\"validation\"", \
	  "Requests failed, by kind: refused by the request checks (validation), " \
	  "a bad grant or failed copy (grant), the backing failed (storage).") \
	X(err_grant, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, "errors", "grant", \
	  "errors", "grant", "blkbackd_errors_total", "kind=\"grant\"", NULL) \
	X(err_storage, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, "errors", "storage", \
	  "errors", "storage", "blkbackd_errors_total", "kind=\"storage\"", NULL) \
	X(flushes, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, NULL, "flushes", \
	  "storage", "flushes", "blkbackd_flushes_total", NULL, "Flushes sent to storage.") \
	X(discards, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, NULL, "discards", \
	  "storage", "discards", "blkbackd_discards_total", NULL, "Discards sent to storage.") \
	X(out_of_slot, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, NULL, "out_of_slot", \
	  "slots", "out-of-slot", "blkbackd_out_of_slot_total", NULL, \
	  "Times requests were left on the ring because every slot was busy.") \
	X(buffer_releases, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, NULL, "buffer_releases", \
	  "slots", "idle-releases", "blkbackd_idle_buffer_releases_total", NULL, \
	  "Times a ring gave its bounce and indirect buffers back after an idle second.") \
	X(inflight, uint32_t, STAT_GAUGE, STAT_UNIT_ONE, NULL, "inflight", \
	  "slots", "in-flight", "blkbackd_inflight_requests", NULL, \
	  "Requests taken from the ring and not yet answered.") \
	X(pgrant_mapped, uint32_t, STAT_GAUGE, STAT_UNIT_ONE, NULL, "persistent_mapped", \
	  "persistent grants", "mapped", "blkbackd_persistent_grants_mapped", NULL, \
	  "Persistent grants mapped now.") \
	X(pgrant_maps, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, NULL, "persistent_maps", \
	  "persistent grants", "maps", "blkbackd_persistent_grant_maps_total", NULL, \
	  "Persistent grants mapped.") \
	X(pgrant_hits, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, NULL, "persistent_segments", \
	  "persistent grants", "segments", "blkbackd_persistent_segments_total", NULL, \
	  "Data segments copied through a mapped persistent grant.") \
	X(pgrant_indirect, uint64_t, STAT_COUNTER, STAT_UNIT_ONE, NULL, \
	  "persistent_indirect_pages", "persistent grants", "indirect-pages", \
	  "blkbackd_persistent_indirect_pages_total", NULL, \
	  "Indirect descriptor pages read through a mapped persistent grant.") \
	X(req_cons, uint32_t, STAT_INDEX, STAT_UNIT_ONE, NULL, "req_cons", \
	  NULL, NULL, NULL, NULL, NULL) \
	X(rsp_prod, uint32_t, STAT_INDEX, STAT_UNIT_ONE, NULL, "rsp_prod", \
	  NULL, NULL, NULL, NULL, NULL)

/* Latency, from taking a request off the ring to answering it, of answered
 * requests that had a slot: bucket b counts latencies below 2^b us; the
 * last bucket also holds everything slower. */
#define RING_LAT_BUCKETS	32
#define RING_LAT_PROM		"blkbackd_request_latency_seconds"
#define RING_LAT_HELP		"Request latency from taking a request off the ring to answering it."
#define RING_OPS_PROM		"blkbackd_requests_total"
#define RING_OPS_HELP		"Requests answered, by operation."

/* One writer (the ring thread: relaxed load + store, no locked
 * instructions on the data path), any number of readers (the main
 * thread). */
struct ring_stats {
	_Atomic uint64_t ops[RING_OP_CLASSES];	/* answered, by operation */
#define RING_STATS_FIELD(f, type, ...) _Atomic type f;
	RING_STATS_LIST(RING_STATS_FIELD)
#undef RING_STATS_FIELD
	_Atomic uint64_t lat[RING_LAT_BUCKETS];
	_Atomic uint64_t lat_sum_us;
	_Atomic uint64_t lat_max_us;
};

/* Adds src's counters (and its maximum latency) into dst, which only this
 * thread writes: for the totals of a vbd, released rings included. */
void ring_stats_add(struct ring_stats *dst, const struct ring_stats *src);
/* Adds src's gauges into dst: for the rings running now. */
void ring_stats_add_gauges(struct ring_stats *dst, const struct ring_stats *src);
/* A ring's "counters" object for the control socket. */
struct json_object *ring_stats_to_json(const struct ring_stats *s);
/* A ring's indexes, added to its object o. */
void ring_stats_indexes_to_json(struct json_object *o, const struct ring_stats *s);

/* blkback-ctl: one "counters" object as text lines, each under indent. */
void stats_print_human(FILE *f, struct json_object *counters, const char *indent);
/* blkback-ctl: the stats reply's per-vbd totals in the Prometheus text
 * format. */
void stats_print_prometheus(FILE *f, struct json_object *reply);

#endif
