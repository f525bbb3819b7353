/* Every rendering of the ring counters, each a walk over the lists in
 * stats.h: adding rings up, the control socket's JSON (daemon side), and
 * blkback-ctl's human and Prometheus output from that JSON. */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include <json-c/json.h>

#include "stats.h"
#include "util.h"

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Called on the main thread, which alone writes dst. */
static void stat_add(_Atomic uint64_t *dst, uint64_t v)
{
	atomic_store_explicit(dst, LD(*dst) + v, memory_order_relaxed);
}

static void stat_add32(_Atomic uint32_t *dst, uint32_t v)
{
	atomic_store_explicit(dst, LD(*dst) + v, memory_order_relaxed);
}

#define stat_add_any(dst, v) _Generic((dst), _Atomic uint32_t *: stat_add32, \
	default: stat_add)(dst, v)

void ring_stats_add(struct ring_stats *dst, const struct ring_stats *src)
{
	unsigned int i;

	for (i = 0; i < RING_OP_CLASSES; i++)
		stat_add(&dst->ops[i], LD(src->ops[i]));
	for (i = 0; i < RING_LAT_BUCKETS; i++)
		stat_add(&dst->lat[i], LD(src->lat[i]));
	stat_add(&dst->lat_sum_us, LD(src->lat_sum_us));
	if (LD(src->lat_max_us) > LD(dst->lat_max_us))
		atomic_store_explicit(&dst->lat_max_us, LD(src->lat_max_us), memory_order_relaxed);
#define ADD_COUNTER(f, type, merge, ...) \
	if (merge == STAT_COUNTER) \
		stat_add_any(&dst->f, LD(src->f));
	RING_STATS_LIST(ADD_COUNTER)
#undef ADD_COUNTER
}

void ring_stats_add_gauges(struct ring_stats *dst, const struct ring_stats *src)
{
#define ADD_GAUGE(f, type, merge, ...) \
	if (merge == STAT_GAUGE) \
		stat_add_any(&dst->f, LD(src->f));
	RING_STATS_LIST(ADD_GAUGE)
#undef ADD_GAUGE
}

/* ---- the control socket's JSON ---- */

static const char *const ring_op_names[RING_OP_CLASSES] = {
#define RING_OP_NAME(e, name) name,
	RING_OP_CLASS_LIST(RING_OP_NAME)
#undef RING_OP_NAME
};

/* The object at key in o, made if missing; o itself when key is NULL. */
static struct json_object *json_sub(struct json_object *o, const char *key)
{
	struct json_object *sub;

	if (!key)
		return o;
	if (!json_object_object_get_ex(o, key, &sub)) {
		sub = json_object_new_object();
		json_object_object_add(o, key, sub);
	}
	return sub;
}

/* The latency quantile q (0..1) as the upper bound of its log2 bucket. */
static uint64_t lat_quantile(const uint64_t *b, uint64_t total, double q, uint64_t max)
{
	uint64_t want, seen = 0;
	unsigned int i;

	if (!total)
		return 0;
	want = (uint64_t)(q * (double)total);
	if (want < 1)
		want = 1;
	for (i = 0; i < RING_LAT_BUCKETS; i++) {
		seen += b[i];
		if (seen >= want) {
			uint64_t bound = i ? (1ull << i) : 1;

			return bound < max ? bound : max;
		}
	}
	return max;
}

static struct json_object *lat_to_json(const struct ring_stats *s)
{
	struct json_object *lat = json_object_new_object(), *bk = json_object_new_array();
	uint64_t b[RING_LAT_BUCKETS], total = 0, max = LD(s->lat_max_us);
	unsigned int i;

	for (i = 0; i < RING_LAT_BUCKETS; i++) {
		b[i] = LD(s->lat[i]);
		total += b[i];
		json_object_array_add(bk, json_object_new_uint64(b[i]));
	}
	json_object_object_add(lat, "count", json_object_new_uint64(total));
	json_object_object_add(lat, "sum", json_object_new_uint64(LD(s->lat_sum_us)));
	json_object_object_add(lat, "p50", json_object_new_uint64(lat_quantile(b, total, 0.50, max)));
	json_object_object_add(lat, "p90", json_object_new_uint64(lat_quantile(b, total, 0.90, max)));
	json_object_object_add(lat, "p99", json_object_new_uint64(lat_quantile(b, total, 0.99, max)));
	json_object_object_add(lat, "max", json_object_new_uint64(max));
	json_object_object_add(lat, "buckets", bk);
	return lat;
}

struct json_object *ring_stats_to_json(const struct ring_stats *s)
{
	struct json_object *o = json_object_new_object(), *ops = json_object_new_object();
	unsigned int i;

	for (i = 0; i < RING_OP_CLASSES; i++)
		json_object_object_add(ops, ring_op_names[i], json_object_new_uint64(LD(s->ops[i])));
	json_object_object_add(o, "requests", ops);
#define TO_JSON(f, type, merge, unit, obj, key, ...) \
	if (merge != STAT_INDEX) \
		json_object_object_add(json_sub(o, obj), key, json_object_new_uint64(LD(s->f)));
	RING_STATS_LIST(TO_JSON)
#undef TO_JSON
	json_object_object_add(o, "latency_us", lat_to_json(s));
	return o;
}

void ring_stats_indexes_to_json(struct json_object *o, const struct ring_stats *s)
{
#define INDEX_TO_JSON(f, type, merge, unit, obj, key, ...) \
	if (merge == STAT_INDEX) \
		json_object_object_add(json_sub(o, obj), key, json_object_new_uint64(LD(s->f)));
	RING_STATS_LIST(INDEX_TO_JSON)
#undef INDEX_TO_JSON
}

/* ---- blkback-ctl: from the JSON back to text ---- */

struct stat_row {
	enum stat_merge merge;
	enum stat_unit unit;
	const char *json_obj, *json_key, *line, *label, *prom, *prom_label, *help;
};

static const struct stat_row stat_rows[] = {
#define ROW(f, type, merge, unit, obj, key, line, label, prom, plabel, help) \
	{ merge, unit, obj, key, line, label, prom, plabel, help },
	RING_STATS_LIST(ROW)
#undef ROW
};

static struct json_object *json_get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (o && key)
		json_object_object_get_ex(o, key, &v);
	return v;
}

static uint64_t json_u64(struct json_object *o, const char *key)
{
	struct json_object *v = json_get(o, key);

	return v ? json_object_get_uint64(v) : 0;
}

static uint64_t row_value(const struct stat_row *r, struct json_object *counters)
{
	return json_u64(r->json_obj ? json_get(counters, r->json_obj) : counters, r->json_key);
}

void stats_print_human(FILE *f, struct json_object *counters, const char *indent)
{
	struct json_object *req = json_get(counters, "requests"), *lat = json_get(counters, "latency_us");
	const char *line = NULL;
	unsigned int i;

	fprintf(f, "%srequests:", indent);
	for (i = 0; i < RING_OP_CLASSES; i++)
		fprintf(f, " %s %" PRIu64, ring_op_names[i], json_u64(req, ring_op_names[i]));
	for (i = 0; i < ARRAY_SIZE(stat_rows); i++) {
		const struct stat_row *r = &stat_rows[i];

		if (!r->line)
			continue;
		if (!line || strcmp(line, r->line) != 0) {
			line = r->line;
			fprintf(f, "\n%s%s:", indent, line);
		}
		fprintf(f, " %s %" PRIu64, r->label, row_value(r, counters));
	}
	fprintf(f, "\n%slatency (us, log2 buckets): p50 %" PRIu64 " p90 %" PRIu64 " p99 %" PRIu64
		" max %" PRIu64 " over %" PRIu64 " requests\n", indent, json_u64(lat, "p50"),
		json_u64(lat, "p90"), json_u64(lat, "p99"), json_u64(lat, "max"),
		json_u64(lat, "count"));
}

/* A label value: backslash, double quote and newline escaped. */
static void prom_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* name{domid="5",domain="g1",devid="51712",vdev="xvda"[,extra] */
static void prom_series(FILE *f, const char *name, const char *suffix, struct json_object *v)
{
	const char *s;

	fprintf(f, "%s%s{domid=\"%" PRIu64 "\",domain=\"", name, suffix, json_u64(v, "domid"));
	s = json_object_get_string(json_get(v, "domain"));
	prom_escape(f, s ? s : "");
	fprintf(f, "\",devid=\"%" PRIu64 "\",vdev=\"", json_u64(v, "devid"));
	s = json_object_get_string(json_get(v, "vdev"));
	prom_escape(f, s ? s : "");
	fputc('"', f);
}

static void prom_header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The log2 buckets as a histogram: bucket b is "below 2^b us", so its
 * cumulative count is that of le=2^b us; the last bucket also holds
 * everything slower and so is only counted in +Inf. */
static void prom_latency(FILE *f, struct json_object *v)
{
	struct json_object *lat = json_get(json_get(v, "total"), "latency_us");
	struct json_object *bk = json_get(lat, "buckets");
	uint64_t cum = 0;
	unsigned int b;

	for (b = 0; b + 1 < RING_LAT_BUCKETS; b++) {
		struct json_object *e = bk ? json_object_array_get_idx(bk, b) : NULL;

		cum += e ? json_object_get_uint64(e) : 0;
		prom_series(f, RING_LAT_PROM, "_bucket", v);
		fprintf(f, ",le=\"%.6f\"} %" PRIu64 "\n", (double)(1ull << b) / 1e6, cum);
	}
	prom_series(f, RING_LAT_PROM, "_bucket", v);
	fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n", json_u64(lat, "count"));
	prom_series(f, RING_LAT_PROM, "_sum", v);
	fprintf(f, "} %.6f\n", (double)json_u64(lat, "sum") / 1e6);
	prom_series(f, RING_LAT_PROM, "_count", v);
	fprintf(f, "} %" PRIu64 "\n", json_u64(lat, "count"));
}

void stats_print_prometheus(FILE *f, struct json_object *reply)
{
	struct json_object *vbds = json_get(reply, "vbds");
	size_t n = vbds ? json_object_array_length(vbds) : 0, i;
	const char *family = NULL;
	unsigned int k;

	/* Per vbd totals: they survive reconnections, so counters only
	 * ever grow. */
	prom_header(f, RING_OPS_PROM, "counter", RING_OPS_HELP);
	for (i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vbds, i);
		struct json_object *req = json_get(json_get(v, "total"), "requests");

		for (k = 0; k < RING_OP_CLASSES; k++) {
			prom_series(f, RING_OPS_PROM, "", v);
			fprintf(f, ",op=\"%s\"} %" PRIu64 "\n", ring_op_names[k],
				json_u64(req, ring_op_names[k]));
		}
	}
	for (k = 0; k < ARRAY_SIZE(stat_rows); k++) {
		const struct stat_row *r = &stat_rows[k];

		if (!r->prom)
			continue;
		if (!family || strcmp(family, r->prom) != 0) {
			family = r->prom;
			prom_header(f, r->prom, r->merge == STAT_COUNTER ? "counter" : "gauge",
				    r->help);
		}
		for (i = 0; i < n; i++) {
			struct json_object *v = json_object_array_get_idx(vbds, i);
			uint64_t val = row_value(r, json_get(v, "total"));

			prom_series(f, r->prom, "", v);
			if (r->prom_label)
				fprintf(f, ",%s", r->prom_label);
			fprintf(f, "} %" PRIu64 "\n", r->unit == STAT_UNIT_SECTOR ? val * 512 : val);
		}
	}
	prom_header(f, RING_LAT_PROM, "histogram", RING_LAT_HELP);
	for (i = 0; i < n; i++)
		prom_latency(f, json_object_array_get_idx(vbds, i));
}
