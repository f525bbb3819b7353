/* Counters, a bounded latency histogram (log-linear buckets, about 6 %
 * resolution, fixed memory however long the run), the progress line and
 * the final report as text or JSON. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blkfront.h"

#define SUB_BITS 4
#define SUB (1u << SUB_BITS)

static const char *const kind_names[BF_KIND_MAX] = {
	[BF_KIND_READ] = "read",
	[BF_KIND_WRITE] = "write",
	[BF_KIND_BARRIER] = "barrier",
	[BF_KIND_FLUSH] = "flush",
	[BF_KIND_DISCARD] = "discard",
	[BF_KIND_VERIFY_READ] = "readback",
	[BF_KIND_RAW] = "raw",
};

static const char *const wl_names[] = {
	[BF_WL_RANDRW] = "randrw",
	[BF_WL_RANDREAD] = "randread",
	[BF_WL_RANDWRITE] = "randwrite",
	[BF_WL_SEQREAD] = "seqread",
	[BF_WL_SEQWRITE] = "seqwrite",
	[BF_WL_READBACK] = "readback",
};

void bf_stats_init(struct bf_stats *st)
{
	memset(st, 0, sizeof(*st));
}

static unsigned int hist_index(uint64_t v)
{
	unsigned int msb;

	if (v < SUB)
		return (unsigned int)v;
	msb = 63 - (unsigned int)__builtin_clzll(v);
	return (msb - SUB_BITS + 1) * SUB + (unsigned int)((v >> (msb - SUB_BITS)) & (SUB - 1));
}

/* The middle of the values that fall in bucket i. */
static uint64_t hist_value(unsigned int i)
{
	unsigned int major = i / SUB, sub = i % SUB, shift;

	if (major == 0)
		return sub;
	shift = major - 1;
	return ((uint64_t)(SUB + sub) << shift) + ((1ull << shift) >> 1);
}

void bf_stats_latency_add(struct bf_stats *st, uint64_t ns)
{
	unsigned int i = hist_index(ns);

	if (i >= sizeof(st->hist) / sizeof(st->hist[0]))
		i = sizeof(st->hist) / sizeof(st->hist[0]) - 1;
	st->hist[i]++;
	st->lat_count++;
	st->lat_sum += ns;
	if (ns > st->lat_max)
		st->lat_max = ns;
}

uint64_t bf_stats_percentile(const struct bf_stats *st, double pct)
{
	uint64_t want, seen = 0, v;
	unsigned int i;

	if (!st->lat_count)
		return 0;
	if (pct >= 100)
		return st->lat_max;
	want = (uint64_t)(pct / 100.0 * (double)st->lat_count + 0.999999);
	if (want == 0)
		want = 1;
	for (i = 0; i < sizeof(st->hist) / sizeof(st->hist[0]); i++) {
		seen += st->hist[i];
		if (seen >= want) {
			v = hist_value(i);
			return v > st->lat_max ? st->lat_max : v;
		}
	}
	return st->lat_max;
}

uint64_t bf_stats_total_ops(const struct bf_stats *st)
{
	uint64_t n = 0;
	int k;

	for (k = 0; k < BF_KIND_MAX; k++)
		if (k != BF_KIND_VERIFY_READ)
			n += st->ops[k];
	return n;
}

uint64_t bf_stats_total_bytes(const struct bf_stats *st)
{
	uint64_t n = 0;
	int k;

	for (k = 0; k < BF_KIND_MAX; k++)
		if (k != BF_KIND_VERIFY_READ)
			n += st->bytes[k];
	return n;
}

void bf_stats_progress(struct bf_stats *st, const struct bf_dev *dev)
{
	uint64_t now = bf_now_ns(), ops = bf_stats_total_ops(st);
	uint64_t bytes = bf_stats_total_bytes(st);
	double dt = (double)(now - st->last_t) / 1e9;

	if (dt <= 0)
		return;
	fprintf(stderr, "[%5.1fs] %8.0f IOPS %9.2f MiB/s  %u in flight  %" PRIu64
		" errors %" PRIu64 " mismatches\n", (double)(now - st->t_start) / 1e9,
		(double)(ops - st->last_ops) / dt,
		(double)(bytes - st->last_bytes) / dt / 1048576.0, dev->inflight,
		st->errors, st->mismatches);
	st->last_t = now;
	st->last_ops = ops;
	st->last_bytes = bytes;
}

static const char *result_name(int result)
{
	switch (result) {
	case BF_EXIT_OK:
		return "ok";
	case BF_EXIT_CLOSED:
		return "closed";
	case BF_EXIT_SETUP:
		return "setup-error";
	default:
		return "fail";
	}
}

void bf_stats_report(const struct bf_stats *st, const struct bf_dev *dev,
		     const struct bf_verify *v, int result)
{
	const struct bf_opts *o = dev->opts;
	double secs = (double)(st->t_end - st->t_start) / 1e9;
	uint64_t ops = bf_stats_total_ops(st), bytes = bf_stats_total_bytes(st);
	double iops = secs > 0 ? (double)ops / secs : 0;
	double mibs = secs > 0 ? (double)bytes / secs / 1048576.0 : 0;
	int k;

	if (o->json) {
		printf("{\"vdev\": \"%s\", \"devid\": %u, \"domid\": %u, \"backend\": \"%s\", "
		       "\"personality\": \"%s\", "
		       "\"ring_order\": %u, \"ring_entries\": %u, \"queues\": %u, \"abi\": \"%s\", "
		       "\"sector_size\": %u, \"sectors\": %" PRIu64 ", \"info\": %u, "
		       "\"feature_flush\": %d, \"feature_barrier\": %d, "
		       "\"feature_discard\": %d, \"max_indirect_segments\": %u, "
		       "\"workload\": \"%s\", \"bs\": %u, \"qd\": %u, \"seconds\": %.3f, "
		       "\"ops\": {", o->vdev, dev->devid, dev->domid,
		       dev->be_path ? dev->be_path : "", bf_personality_name(o->personality),
		       dev->ring_order,
		       dev->layout.nr_ents, dev->nr_queues, blkif_abi_name(o->abi), dev->be.sector_size,
		       dev->be.sectors, dev->be.info, dev->be.feature_flush,
		       dev->be.feature_barrier, dev->be.feature_discard,
		       dev->be.max_indirect_segments, wl_names[o->workload], o->bs,
		       o->qd, secs);
		for (k = 0; k < BF_KIND_MAX; k++)
			printf("%s\"%s\": %" PRIu64, k ? ", " : "", kind_names[k], st->ops[k]);
		printf("}, \"total_ops\": %" PRIu64 ", \"bytes\": %" PRIu64 ", "
		       "\"iops\": %.1f, \"mib_s\": %.2f, \"lat_us\": {\"p50\": %.1f, "
		       "\"p90\": %.1f, \"p99\": %.1f, \"max\": %.1f, \"mean\": %.1f}, "
		       "\"errors\": %" PRIu64 ", \"expected_errors\": %" PRIu64 ", "
		       "\"mismatches\": %" PRIu64 ", \"verified_sectors\": %" PRIu64 ", "
		       "\"unanswered\": %" PRIu64 ", \"failures\": %" PRIu64 ", "
		       "\"result\": \"%s\"}\n", ops, bytes, iops, mibs,
		       bf_stats_percentile(st, 50) / 1e3, bf_stats_percentile(st, 90) / 1e3,
		       bf_stats_percentile(st, 99) / 1e3, st->lat_max / 1e3,
		       st->lat_count ? (double)st->lat_sum / st->lat_count / 1e3 : 0.0,
		       st->errors, st->expected_errors, st->mismatches,
		       bf_verify_nr_checked(v), st->unanswered, dev->failures,
		       result_name(result));
		fflush(stdout);
		return;
	}
	printf("blkfront-sim: %s (devid %u) of domain %u, backend %s, as %s\n", o->vdev,
	       dev->devid, dev->domid, dev->be_path ? dev->be_path : "?",
	       bf_personality_name(o->personality));
	printf("  device:   %" PRIu64 " bytes, %u-byte sectors, info %#x%s%s%s\n",
	       dev->be.sectors * 512, dev->be.sector_size, dev->be.info,
	       dev->be.info & VDISK_READONLY ? " (read-only)" : "",
	       dev->be.info & VDISK_CDROM ? " (cdrom)" : "",
	       dev->be.info & VDISK_REMOVABLE ? " (removable)" : "");
	printf("  ring:     %u x order %u (%u entries), %s, indirect %u, flush %d, barrier %d, "
	       "discard %d\n", dev->nr_queues, dev->ring_order, dev->layout.nr_ents,
	       blkif_abi_name(o->abi), dev->be.max_indirect_segments,
	       dev->be.feature_flush, dev->be.feature_barrier, dev->be.feature_discard);
	printf("  workload: %s, bs %u, qd %u, %.2f s\n", wl_names[o->workload], o->bs,
	       o->qd, secs);
	printf("  ops:     ");
	for (k = 0; k < BF_KIND_MAX; k++)
		if (st->ops[k])
			printf(" %s %" PRIu64, kind_names[k], st->ops[k]);
	printf("\n");
	printf("  IOPS:     %.0f   MiB/s: %.2f\n", iops, mibs);
	printf("  latency:  p50 %.1f us  p90 %.1f us  p99 %.1f us  max %.1f us\n",
	       bf_stats_percentile(st, 50) / 1e3, bf_stats_percentile(st, 90) / 1e3,
	       bf_stats_percentile(st, 99) / 1e3, st->lat_max / 1e3);
	printf("  errors:   %" PRIu64 " unexpected, %" PRIu64 " expected, %" PRIu64
	       " mismatches, %" PRIu64 " unanswered\n", st->errors, st->expected_errors,
	       st->mismatches, st->unanswered);
	if (v)
		printf("  verify:   %" PRIu64 " sector reads checked\n", bf_verify_nr_checked(v));
	printf("  result:   %s\n", result_name(result));
	fflush(stdout);
}
