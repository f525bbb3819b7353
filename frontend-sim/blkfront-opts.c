/* blkfront-sim's command line: one table names every option, where its
 * value goes, how it is parsed and what is said when it is wrong; then
 * the checks across options. Errors return -EINVAL with one line on
 * standard error; --help and --version print and exit. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkfront.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
"Usage: blkfront-sim [--platform sim|xen] [--dir DIR] --domain D --vdev NAME [options]\n"
"A guest block frontend for the xensimd simulator, or for real Xen in dom0.\n"
"\n"
"Connection:\n"
"  --platform sim|xen    sim (default): a guest of xensimd; xen: this domain\n"
"                        (dom0) is the frontend, with real grants (gntalloc),\n"
"                        event channels and xenstored\n"
"  --dir DIR             simulator directory (default $XENSIM_DIR)\n"
"  --domain D            guest domain id, or name (looked up as dom0);\n"
"                        with --platform xen, the domain we run in (0)\n"
"  --vdev NAME           xvda, hdb, sdc1, d0p1, or a devid number\n"
"  --ring-order N        ring of 2^N pages, 0..4 (default 0)\n"
"  --queues N            N rings (multi-queue), 1..16, at most what the\n"
"                        backend advertises (default 1)\n"
"  --abi x86_32|x86_64   request layout and protocol key (default x86_64)\n"
"  --timeout S           each xenbus wait and the final drain (default 10)\n"
"  --time-limit S        give up, exit 4, when the whole run takes longer\n"
"                        (default $BLKFRONT_SIM_TIME_LIMIT, else none)\n"
"  --personality P       whose xenbus rules to follow: linux (default), ovmf,\n"
"                        kdump, windows, bsd, minios (see blkfront-sim(1))\n"
"  -v, --verbose         debug messages\n"
"Workload:\n"
"  --workload W          randrw randread randwrite seqread seqwrite readback\n"
"  --bs SIZE             request size (default 4k; k, m suffixes)\n"
"  --qd N                requests in flight (default 32, <= ring entries)\n"
"  --seconds S | --ops N run time or request count (default 10 s)\n"
"  --rwmix PCT           reads in percent for randrw (default 50)\n"
"  --flush-every N       every Nth request is FLUSH_DISKCACHE\n"
"  --barrier-every N     every Nth request is WRITE_BARRIER with data\n"
"  --discard-every N     every Nth request is DISCARD\n"
"  --offset SIZE --size SIZE   limit I/O to this area of the disk\n"
"  --indirect            use INDIRECT requests for all reads and writes\n"
"  --persistent          offer feature-persistent (data pages are reused)\n"
"  --indirect-readonly   grant indirect pages read-only even with --persistent\n"
"  --verify              stamp writes, check reads, read back at the end\n"
"  --no-readback         skip the final read-back\n"
"  --state FILE          load and save the verify map across runs\n"
"  --expect-readonly     writes and discards must be refused with ERROR\n"
"  --seed N              random seed\n"
"  --progress            a progress line every second (stderr)\n"
"  --json                report as one JSON object\n"
"  --ring-start REQ[:RSP] start the ring's indices there (attach form)\n"
"Hostile modes (--hostile MODE, for --seconds, default 2):\n"
"  rewrite               a thread rewrites request slots, indirect and data\n"
"                        pages while the backend reads them\n"
"  prod-overflow         req_prod more than a ring ahead of the responses\n"
"  prod-backwards        req_prod moves back after a few requests\n"
"  event-storm           notify in a tight loop with an empty ring\n"
"  xs-flood              rewrite our own xenstore keys and make nodes\n"
"  rsp-check             check response slots byte for byte\n"
"  dup-ids               a full ring of requests that all carry one id\n"
"Raw mode (--raw), fields are not checked:\n"
"  --op N --nr-segments N --sector N --id N --handle N\n"
"  --seg GREF:FIRST:LAST (repeat; GREF 'new' grants a fresh page, 'ro' one\n"
"                        read-only, 'revoked' one whose grant is ended,\n"
"                        'other' one granted to another domain, 'dup' the\n"
"                        previous segment's ref)\n"
"  --seg-auto            fresh pages 0:7 up to --nr-segments\n"
"  --indirect-op N --indirect-pages N --indirect-gref G (repeat)\n"
"  --discard-sectors N --discard-flag N\n"
"  --wait S              how long to wait for the response (default 5)\n"
"  --expect-status S     exit 1 unless the status is S\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end || errno || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (tolower((unsigned char)*end)) {
	case 'k':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
		mul = 1ull << 30;
		end++;
		break;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*ret = v * mul;
	return 0;
}

static int parse_seconds(const char *s, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= 0) || v > 1e7)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_seg(const char *s, struct bf_raw_seg *seg)
{
	uint64_t g, f, l;
	char buf[64], *a, *b;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	a = strchr(buf, ':');
	b = a ? strchr(a + 1, ':') : NULL;
	if (!a || !b)
		return -EINVAL;
	*a++ = '\0';
	*b++ = '\0';
	memset(seg, 0, sizeof(*seg));
	if (strcmp(buf, "new") == 0)
		seg->kind = BF_GREF_NEW;
	else if (strcmp(buf, "ro") == 0)
		seg->kind = BF_GREF_RO;
	else if (strcmp(buf, "revoked") == 0)
		seg->kind = BF_GREF_REVOKED;
	else if (strcmp(buf, "other") == 0)
		seg->kind = BF_GREF_OTHER;
	else if (strcmp(buf, "dup") == 0)
		seg->kind = BF_GREF_DUP;
	else if (parse_u64(buf, UINT32_MAX, &g) < 0)
		return -EINVAL;
	else
		seg->gref = (uint32_t)g;
	if (parse_u64(a, UINT8_MAX, &f) < 0 || parse_u64(b, UINT8_MAX, &l) < 0)
		return -EINVAL;
	seg->gref_new = seg->kind != BF_GREF_GIVEN && seg->kind != BF_GREF_DUP;
	seg->first_sect = (uint8_t)f;
	seg->last_sect = (uint8_t)l;
	return 0;
}

static int parse_workload(const char *s, enum bf_workload *ret)
{
	static const char *const names[] = {
		[BF_WL_RANDRW] = "randrw", [BF_WL_RANDREAD] = "randread",
		[BF_WL_RANDWRITE] = "randwrite", [BF_WL_SEQREAD] = "seqread",
		[BF_WL_SEQWRITE] = "seqwrite", [BF_WL_READBACK] = "readback",
	};
	unsigned int i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*ret = (enum bf_workload)i;
			return 0;
		}
	return -EINVAL;
}


/* One line on standard error; the value to return for a bad option. */
static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fputs("blkfront-sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

/* ---- options whose values need more than a number or a size ---- */

static int opt_platform(struct bf_opts *o, const char *arg)
{
	if (strcmp(arg, "xen") == 0)
		o->platform_xen = true;
	else if (strcmp(arg, "sim") == 0)
		o->platform_xen = false;
	else
		return bad("--platform: sim or xen");
	return 0;
}

static int opt_ring_order(struct bf_opts *o, const char *arg)
{
	uint64_t v;

	if (parse_u64(arg, BF_MAX_RING_ORDER, &v) < 0)
		return bad("--ring-order: 0..%d", BF_MAX_RING_ORDER);
	o->ring_order = (int)v;
	return 0;
}

static int opt_queues(struct bf_opts *o, const char *arg)
{
	uint64_t v;

	if (parse_u64(arg, BF_MAX_QUEUES, &v) < 0 || v < 1)
		return bad("--queues: 1..%d", BF_MAX_QUEUES);
	o->queues = (unsigned int)v;
	return 0;
}

static int opt_abi(struct bf_opts *o, const char *arg)
{
	if (strcmp(arg, "x86_32") == 0 || strcmp(arg, "x86_32-abi") == 0)
		o->abi = BLKIF_ABI_X86_32;
	else if (strcmp(arg, "x86_64") == 0 || strcmp(arg, "x86_64-abi") == 0)
		o->abi = BLKIF_ABI_X86_64;
	else
		return bad("--abi: x86_32 or x86_64");
	return 0;
}

static int opt_timeout(struct bf_opts *o, const char *arg)
{
	if (parse_seconds(arg, &o->timeout) < 0 || o->timeout <= 0)
		return bad("--timeout: seconds > 0");
	return 0;
}

static int opt_personality(struct bf_opts *o, const char *arg)
{
	if (bf_personality_parse(arg, &o->personality) < 0)
		return bad("--personality: linux ovmf kdump windows bsd minios");
	return 0;
}

static int opt_workload(struct bf_opts *o, const char *arg)
{
	if (parse_workload(arg, &o->workload) < 0)
		return bad("--workload: randrw randread randwrite seqread seqwrite readback");
	return 0;
}

static int opt_bs(struct bf_opts *o, const char *arg)
{
	uint64_t v;

	if (parse_size(arg, &v) < 0 || v < 512 || v % 512 ||
	    v > (uint64_t)BLKIF_MAX_INDIRECT_SEGMENTS * PLAT_PAGE_SIZE)
		return bad("--bs: a multiple of 512 up to 16m");
	o->bs = (uint32_t)v;
	return 0;
}

static int opt_seg(struct bf_opts *o, const char *arg)
{
	struct bf_raw_seg *n;

	if (o->raw_nr_segs >= BF_MAX_RAW_SEGS)
		return bad("--seg: at most %u", BF_MAX_RAW_SEGS);
	n = realloc(o->raw_segs, (o->raw_nr_segs + 1) * sizeof(*n));
	if (!n)
		return bad("out of memory");
	o->raw_segs = n;
	if (parse_seg(arg, &n[o->raw_nr_segs]) < 0)
		return bad("--seg: GREF:FIRST:LAST (GREF a number or 'new')");
	o->raw_nr_segs++;
	return 0;
}

static int opt_indirect_pages(struct bf_opts *o, const char *arg)
{
	uint64_t v;

	if (parse_u64(arg, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, &v) < 0)
		return bad("--indirect-pages: 0..%u (grefs past them: --indirect-gref)",
			   BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
	o->raw_indirect_pages = (int)v;
	return 0;
}

static int opt_indirect_gref(struct bf_opts *o, const char *arg)
{
	uint64_t v;

	if (o->raw_nr_indirect_grefs >= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST ||
	    parse_u64(arg, UINT32_MAX, &v) < 0)
		return bad("--indirect-gref: up to %u grant refs",
			   BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
	o->raw_indirect_grefs[o->raw_nr_indirect_grefs++] = (uint32_t)v;
	return 0;
}

static int opt_expect_status(struct bf_opts *o, const char *arg)
{
	char *end;
	long s = strtol(arg, &end, 10);

	if (!*arg || *end || s < INT16_MIN || s > INT16_MAX)
		return bad("--expect-status: a number (0 OKAY, -1 ERROR, -2 EOPNOTSUPP)");
	o->raw_expect_status = (int)s;
	o->raw_expect_status_set = true;
	return 0;
}

static int opt_hostile(struct bf_opts *o, const char *arg)
{
	if (bf_hostile_parse(arg, &o->hostile) < 0)
		return bad("--hostile: rewrite prod-overflow prod-backwards event-storm "
			   "xs-flood rsp-check dup-ids");
	return 0;
}

static int opt_ring_start(struct bf_opts *o, const char *arg)
{
	uint64_t req, rsp;
	char buf[64], *colon;

	if (strlen(arg) >= sizeof(buf))
		return bad("--ring-start: REQ[:RSP]");
	strcpy(buf, arg);
	colon = strchr(buf, ':');
	if (colon)
		*colon++ = '\0';
	if (parse_u64(buf, UINT32_MAX, &req) < 0 ||
	    parse_u64(colon ? colon : buf, UINT32_MAX, &rsp) < 0)
		return bad("--ring-start: REQ[:RSP], each 0..4294967295");
	o->ring_start_set = true;
	o->ring_start_req = (uint32_t)req;
	o->ring_start_rsp = (uint32_t)rsp;
	return 0;
}

static int opt_qd(struct bf_opts *o, const char *arg)
{
	uint64_t v;

	if (parse_u64(arg, 4096, &v) < 0 || v == 0)
		return bad("--qd: 1..4096 (and at most the ring's entries)");
	o->qd = (unsigned int)v;
	return 0;
}

/* ---- the table ---- */

enum opt_kind {
	OPT_SET,	/* bool = true */
	OPT_CLEAR,	/* bool = false */
	OPT_STRING,	/* const char * = the argument */
	OPT_U64,	/* uint64_t, 0..max */
	OPT_INT,	/* int, 0..max */
	OPT_SECONDS,	/* double, seconds >= 0 */
	OPT_SIZE,	/* uint64_t bytes, k/m/g suffixes */
	OPT_HELP,
	OPT_VERSION,
	OPT_FUNC,	/* parse() does it all */
};

struct opt_spec {
	const char *name;
	char short_name;		/* 0: none */
	enum opt_kind kind;
	size_t off;			/* the field in struct bf_opts */
	uint64_t max;			/* OPT_U64, OPT_INT */
	int (*parse)(struct bf_opts *o, const char *arg);
	const char *err;		/* said when the argument is wrong */
};

#define F(field)	offsetof(struct bf_opts, field)
#define FLAG(n, field)	{ n, 0, OPT_SET, F(field), 0, NULL, NULL }
#define STR(n, field)	{ n, 0, OPT_STRING, F(field), 0, NULL, NULL }
#define U64(n, field, e) { n, 0, OPT_U64, F(field), UINT64_MAX, NULL, e }
#define INT(n, field, m, e) { n, 0, OPT_INT, F(field), m, NULL, e }
#define SECS(n, field, e) { n, 0, OPT_SECONDS, F(field), 0, NULL, e }
#define SIZE(n, field, e) { n, 0, OPT_SIZE, F(field), 0, NULL, e }
#define FUNC(n, fn)	{ n, 0, OPT_FUNC, 0, 0, fn, NULL }

static const struct opt_spec opt_specs[] = {
	FUNC("platform", opt_platform),
	STR("dir", dir),
	STR("domain", domain),
	STR("vdev", vdev),
	FUNC("ring-order", opt_ring_order),
	FUNC("queues", opt_queues),
	FUNC("abi", opt_abi),
	FUNC("timeout", opt_timeout),
	SECS("time-limit", time_limit, "--time-limit: seconds (0: none)"),
	FUNC("personality", opt_personality),
	{ "verbose", 'v', OPT_SET, F(verbose), 0, NULL, NULL },
	FUNC("workload", opt_workload),
	FUNC("bs", opt_bs),
	FUNC("qd", opt_qd),
	SECS("seconds", seconds, "--seconds: a number"),
	U64("ops", ops, "--ops: a count"),
	U64("flush-every", flush_every, "--flush-every: a count"),
	U64("discard-every", discard_every, "--discard-every: a count"),
	U64("barrier-every", barrier_every, "--barrier-every: a count"),
	SIZE("offset", offset, "--offset: a size"),
	SIZE("size", size, "--size: a size"),
	INT("rwmix", rwmix, 100, "--rwmix: 0..100"),
	FLAG("indirect", indirect),
	FLAG("persistent", persistent),
	FLAG("indirect-readonly", indirect_ro),
	FLAG("verify", verify),
	{ "no-readback", 0, OPT_CLEAR, F(readback), 0, NULL, NULL },
	STR("state", state_file),
	FLAG("expect-readonly", expect_readonly),
	FLAG("json", json),
	FLAG("progress", progress),
	U64("seed", seed, "--seed: a number"),
	FLAG("raw", raw),
	INT("op", raw_op, UINT8_MAX, "--op: 0..255"),
	INT("nr-segments", raw_nr_segments, UINT16_MAX, "--nr-segments: 0..65535"),
	U64("sector", raw_sector, "--sector: a number"),
	U64("id", raw_id, "--id: a number"),
	INT("handle", raw_handle, UINT16_MAX, "--handle: 0..65535"),
	FUNC("seg", opt_seg),
	FLAG("seg-auto", raw_seg_auto),
	INT("indirect-op", raw_indirect_op, UINT8_MAX, "--indirect-op: 0..255"),
	FUNC("indirect-pages", opt_indirect_pages),
	FUNC("indirect-gref", opt_indirect_gref),
	U64("discard-sectors", raw_discard_sectors, "--discard-sectors: a number"),
	INT("discard-flag", raw_discard_flag, UINT8_MAX, "--discard-flag: 0..255"),
	FUNC("expect-status", opt_expect_status),
	SECS("wait", raw_wait, "--wait: seconds"),
	{ "help", 'h', OPT_HELP, 0, 0, NULL, NULL },
	{ "version", 0, OPT_VERSION, 0, 0, NULL, NULL },
	FUNC("hostile", opt_hostile),
	FUNC("ring-start", opt_ring_start),
};

static bool opt_takes_arg(const struct opt_spec *s)
{
	return s->kind != OPT_SET && s->kind != OPT_CLEAR && s->kind != OPT_HELP &&
	       s->kind != OPT_VERSION;
}

/* Applies one option; 0, -EINVAL (said why), or 1: exit 0 (--help). */
static int opt_apply(struct bf_opts *o, const struct opt_spec *s, const char *arg)
{
	char *field = (char *)o + s->off;
	uint64_t v;
	double secs;

	switch (s->kind) {
	case OPT_SET:
	case OPT_CLEAR:
		*(bool *)field = s->kind == OPT_SET;
		return 0;
	case OPT_STRING:
		*(const char **)field = arg;
		return 0;
	case OPT_U64:
		if (parse_u64(arg, s->max, &v) < 0)
			return bad("%s", s->err);
		*(uint64_t *)field = v;
		return 0;
	case OPT_INT:
		if (parse_u64(arg, s->max, &v) < 0)
			return bad("%s", s->err);
		*(int *)field = (int)v;
		return 0;
	case OPT_SECONDS:
		if (parse_seconds(arg, &secs) < 0)
			return bad("%s", s->err);
		*(double *)field = secs;
		return 0;
	case OPT_SIZE:
		if (parse_size(arg, &v) < 0)
			return bad("%s", s->err);
		*(uint64_t *)field = v;
		return 0;
	case OPT_HELP:
		usage(stdout);
		return 1;
	case OPT_VERSION:
		printf("blkfront-sim %s\n", PACKAGE_VERSION);
		return 1;
	case OPT_FUNC:
		return s->parse(o, arg);
	}
	return -EINVAL;
}

static void opts_defaults(struct bf_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->ring_order = -1;
	o->queues = 1;
	o->abi = BLKIF_ABI_X86_64;
	o->timeout = 10;
	o->workload = BF_WL_RANDRW;
	o->bs = 4096;
	o->qd = 32;
	o->rwmix = 50;
	o->readback = true;
	o->raw_nr_segments = -1;
	o->raw_id = 1;
	o->raw_handle = -1;
	o->raw_indirect_pages = -1;
	o->raw_wait = 5;
}

/* What holds across options, and what the real frontends never send. */
static int opts_check(const struct bf_opts *o)
{
	if (!o->domain || !o->vdev)
		return bad("--domain and --vdev are required (see --help)");
	if (o->workload == BF_WL_READBACK && !o->verify)
		return bad("--workload readback needs --verify (and usually --state)");
	if (o->raw_seg_auto && o->raw_nr_segments < 0 && !o->raw_nr_segs)
		return bad("--seg-auto needs --nr-segments");
	if (o->personality == BF_PERS_WINDOWS && o->barrier_every)
		return bad("--personality windows sends no barriers (flush only)");
	if (o->personality == BF_PERS_OVMF && (o->ring_order > 0 || o->queues > 1 || o->indirect))
		return bad("--personality ovmf uses one one-page ring, no indirect requests");
	return 0;
}

int bf_opts_parse(struct bf_opts *o, int argc, char **argv)
{
	struct option long_opts[ARRAY_SIZE(opt_specs) + 1];
	const char *env;
	size_t i;
	int c, r;

	opts_defaults(o);
	env = getenv("BLKFRONT_SIM_TIME_LIMIT");
	if (env && *env && parse_seconds(env, &o->time_limit) < 0)
		return bad("BLKFRONT_SIM_TIME_LIMIT: seconds (0: none)");
	/* getopt_long answers a long option with 256 + its index here. */
	for (i = 0; i < ARRAY_SIZE(opt_specs); i++)
		long_opts[i] = (struct option){ opt_specs[i].name,
			opt_takes_arg(&opt_specs[i]) ? required_argument : no_argument,
			NULL, 256 + (int)i };
	long_opts[i] = (struct option){ NULL, 0, NULL, 0 };

	while ((c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
		const struct opt_spec *s = NULL;

		if (c >= 256)
			s = &opt_specs[c - 256];
		for (i = 0; !s && c < 256 && i < ARRAY_SIZE(opt_specs); i++)
			if (opt_specs[i].short_name && opt_specs[i].short_name == c)
				s = &opt_specs[i];
		if (!s) {
			usage(stderr);
			return -EINVAL;
		}
		r = opt_apply(o, s, optarg);
		if (r > 0)
			exit(0);
		if (r < 0)
			return r;
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	return opts_check(o);
}
