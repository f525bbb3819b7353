/* blkfront-sim: a guest's block frontend in the simulator. main() parses
 * the options and reads as the script of a guest driver: find the vbd,
 * connect like Linux xen-blkfront, run a workload or one raw request,
 * close, end foreign access, report. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "blkfront.h"
#include "log.h"
#include "util.h"

uint64_t bf_now_ns(void)
{
	return clock_mono_ns();
}

void bf_fail(struct bf_dev *dev, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, 0, fmt, ap);
	va_end(ap);
	dev->failures++;
}

enum {
	OPT_DIR = 256, OPT_DOMAIN, OPT_VDEV, OPT_RING_ORDER, OPT_QUEUES, OPT_ABI, OPT_TIMEOUT,
	OPT_WORKLOAD, OPT_BS, OPT_QD, OPT_SECONDS, OPT_OPS, OPT_FLUSH_EVERY,
	OPT_DISCARD_EVERY, OPT_BARRIER_EVERY, OPT_OFFSET, OPT_SIZE, OPT_RWMIX,
	OPT_INDIRECT, OPT_VERIFY, OPT_NO_READBACK, OPT_STATE, OPT_EXPECT_RO,
	OPT_JSON, OPT_PROGRESS, OPT_SEED, OPT_RAW, OPT_OP, OPT_NR_SEGS, OPT_SECTOR,
	OPT_ID, OPT_HANDLE, OPT_SEG, OPT_SEG_AUTO, OPT_IND_OP, OPT_IND_PAGES,
	OPT_IND_GREF, OPT_DISC_SECTORS, OPT_DISC_FLAG, OPT_EXPECT_STATUS, OPT_WAIT,
	OPT_VERSION, OPT_PERSISTENT, OPT_INDIRECT_RO, OPT_HOSTILE, OPT_RING_START, OPT_PLATFORM,
	OPT_TIME_LIMIT, OPT_PERSONALITY,
};

static const struct option long_opts[] = {
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "vdev", required_argument, NULL, OPT_VDEV },
	{ "ring-order", required_argument, NULL, OPT_RING_ORDER },
	{ "queues", required_argument, NULL, OPT_QUEUES },
	{ "abi", required_argument, NULL, OPT_ABI },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "time-limit", required_argument, NULL, OPT_TIME_LIMIT },
	{ "personality", required_argument, NULL, OPT_PERSONALITY },
	{ "verbose", no_argument, NULL, 'v' },
	{ "workload", required_argument, NULL, OPT_WORKLOAD },
	{ "bs", required_argument, NULL, OPT_BS },
	{ "qd", required_argument, NULL, OPT_QD },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "ops", required_argument, NULL, OPT_OPS },
	{ "flush-every", required_argument, NULL, OPT_FLUSH_EVERY },
	{ "discard-every", required_argument, NULL, OPT_DISCARD_EVERY },
	{ "barrier-every", required_argument, NULL, OPT_BARRIER_EVERY },
	{ "offset", required_argument, NULL, OPT_OFFSET },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "rwmix", required_argument, NULL, OPT_RWMIX },
	{ "indirect", no_argument, NULL, OPT_INDIRECT },
	{ "persistent", no_argument, NULL, OPT_PERSISTENT },
	{ "indirect-readonly", no_argument, NULL, OPT_INDIRECT_RO },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "no-readback", no_argument, NULL, OPT_NO_READBACK },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "expect-readonly", no_argument, NULL, OPT_EXPECT_RO },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "raw", no_argument, NULL, OPT_RAW },
	{ "op", required_argument, NULL, OPT_OP },
	{ "nr-segments", required_argument, NULL, OPT_NR_SEGS },
	{ "sector", required_argument, NULL, OPT_SECTOR },
	{ "id", required_argument, NULL, OPT_ID },
	{ "handle", required_argument, NULL, OPT_HANDLE },
	{ "seg", required_argument, NULL, OPT_SEG },
	{ "seg-auto", no_argument, NULL, OPT_SEG_AUTO },
	{ "indirect-op", required_argument, NULL, OPT_IND_OP },
	{ "indirect-pages", required_argument, NULL, OPT_IND_PAGES },
	{ "indirect-gref", required_argument, NULL, OPT_IND_GREF },
	{ "discard-sectors", required_argument, NULL, OPT_DISC_SECTORS },
	{ "discard-flag", required_argument, NULL, OPT_DISC_FLAG },
	{ "expect-status", required_argument, NULL, OPT_EXPECT_STATUS },
	{ "wait", required_argument, NULL, OPT_WAIT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "hostile", required_argument, NULL, OPT_HOSTILE },
	{ "ring-start", required_argument, NULL, OPT_RING_START },
	{ NULL, 0, NULL, 0 },
};

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

#define BAD(...) do { fprintf(stderr, "blkfront-sim: " __VA_ARGS__); \
	fputc('\n', stderr); return -EINVAL; } while (0)

static int opts_parse(struct bf_opts *o, int argc, char **argv)
{
	const char *env;
	uint64_t v;
	int c;

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
	env = getenv("BLKFRONT_SIM_TIME_LIMIT");
	if (env && *env && parse_seconds(env, &o->time_limit) < 0)
		BAD("BLKFRONT_SIM_TIME_LIMIT: seconds (0: none)");

	while ((c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_PLATFORM:
			if (strcmp(optarg, "xen") == 0)
				o->platform_xen = true;
			else if (strcmp(optarg, "sim") == 0)
				o->platform_xen = false;
			else
				BAD("--platform: sim or xen");
			break;
		case OPT_DIR:
			o->dir = optarg;
			break;
		case OPT_DOMAIN:
			o->domain = optarg;
			break;
		case OPT_VDEV:
			o->vdev = optarg;
			break;
		case OPT_RING_ORDER:
			if (parse_u64(optarg, BF_MAX_RING_ORDER, &v) < 0)
				BAD("--ring-order: 0..%d", BF_MAX_RING_ORDER);
			o->ring_order = (int)v;
			break;
		case OPT_QUEUES:
			if (parse_u64(optarg, BF_MAX_QUEUES, &v) < 0 || v < 1)
				BAD("--queues: 1..%d", BF_MAX_QUEUES);
			o->queues = (unsigned int)v;
			break;
		case OPT_ABI:
			if (strcmp(optarg, "x86_32") == 0 || strcmp(optarg, "x86_32-abi") == 0)
				o->abi = BLKIF_ABI_X86_32;
			else if (strcmp(optarg, "x86_64") == 0 ||
				 strcmp(optarg, "x86_64-abi") == 0)
				o->abi = BLKIF_ABI_X86_64;
			else
				BAD("--abi: x86_32 or x86_64");
			break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, &o->timeout) < 0 || o->timeout <= 0)
				BAD("--timeout: seconds > 0");
			break;
		case OPT_TIME_LIMIT:
			if (parse_seconds(optarg, &o->time_limit) < 0)
				BAD("--time-limit: seconds (0: none)");
			break;
		case 'v':
			o->verbose = true;
			break;
		case OPT_PERSONALITY:
			if (bf_personality_parse(optarg, &o->personality) < 0)
				BAD("--personality: linux ovmf kdump windows bsd minios");
			break;
		case OPT_WORKLOAD:
			if (parse_workload(optarg, &o->workload) < 0)
				BAD("--workload: randrw randread randwrite seqread seqwrite readback");
			break;
		case OPT_BS:
			if (parse_size(optarg, &v) < 0 || v < 512 || v % 512 ||
			    v > (uint64_t)BLKIF_MAX_INDIRECT_SEGMENTS * PLAT_PAGE_SIZE)
				BAD("--bs: a multiple of 512 up to 16m");
			o->bs = (uint32_t)v;
			break;
		case OPT_QD:
			if (parse_u64(optarg, 4096, &v) < 0 || v == 0)
				BAD("--qd: 1..4096 (and at most the ring's entries)");
			o->qd = (unsigned int)v;
			break;
		case OPT_SECONDS:
			if (parse_seconds(optarg, &o->seconds) < 0)
				BAD("--seconds: a number");
			break;
		case OPT_OPS:
			if (parse_u64(optarg, UINT64_MAX, &o->ops) < 0)
				BAD("--ops: a count");
			break;
		case OPT_FLUSH_EVERY:
			if (parse_u64(optarg, UINT64_MAX, &o->flush_every) < 0)
				BAD("--flush-every: a count");
			break;
		case OPT_DISCARD_EVERY:
			if (parse_u64(optarg, UINT64_MAX, &o->discard_every) < 0)
				BAD("--discard-every: a count");
			break;
		case OPT_BARRIER_EVERY:
			if (parse_u64(optarg, UINT64_MAX, &o->barrier_every) < 0)
				BAD("--barrier-every: a count");
			break;
		case OPT_OFFSET:
			if (parse_size(optarg, &o->offset) < 0)
				BAD("--offset: a size");
			break;
		case OPT_SIZE:
			if (parse_size(optarg, &o->size) < 0)
				BAD("--size: a size");
			break;
		case OPT_RWMIX:
			if (parse_u64(optarg, 100, &v) < 0)
				BAD("--rwmix: 0..100");
			o->rwmix = (int)v;
			break;
		case OPT_INDIRECT:
			o->indirect = true;
			break;
		case OPT_PERSISTENT:
			o->persistent = true;
			break;
		case OPT_INDIRECT_RO:
			o->indirect_ro = true;
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_NO_READBACK:
			o->readback = false;
			break;
		case OPT_STATE:
			o->state_file = optarg;
			break;
		case OPT_EXPECT_RO:
			o->expect_readonly = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_PROGRESS:
			o->progress = true;
			break;
		case OPT_SEED:
			if (parse_u64(optarg, UINT64_MAX, &o->seed) < 0)
				BAD("--seed: a number");
			break;
		case OPT_RAW:
			o->raw = true;
			break;
		case OPT_OP:
			if (parse_u64(optarg, UINT8_MAX, &v) < 0)
				BAD("--op: 0..255");
			o->raw_op = (int)v;
			break;
		case OPT_NR_SEGS:
			if (parse_u64(optarg, UINT16_MAX, &v) < 0)
				BAD("--nr-segments: 0..65535");
			o->raw_nr_segments = (int)v;
			break;
		case OPT_SECTOR:
			if (parse_u64(optarg, UINT64_MAX, &o->raw_sector) < 0)
				BAD("--sector: a number");
			break;
		case OPT_ID:
			if (parse_u64(optarg, UINT64_MAX, &o->raw_id) < 0)
				BAD("--id: a number");
			break;
		case OPT_HANDLE:
			if (parse_u64(optarg, UINT16_MAX, &v) < 0)
				BAD("--handle: 0..65535");
			o->raw_handle = (int)v;
			break;
		case OPT_SEG: {
			struct bf_raw_seg *n;

			if (o->raw_nr_segs >= BF_MAX_RAW_SEGS)
				BAD("--seg: at most %u", BF_MAX_RAW_SEGS);
			n = realloc(o->raw_segs, (o->raw_nr_segs + 1) * sizeof(*n));
			if (!n)
				BAD("out of memory");
			o->raw_segs = n;
			if (parse_seg(optarg, &n[o->raw_nr_segs]) < 0)
				BAD("--seg: GREF:FIRST:LAST (GREF a number or 'new')");
			o->raw_nr_segs++;
			break;
		}
		case OPT_SEG_AUTO:
			o->raw_seg_auto = true;
			break;
		case OPT_IND_OP:
			if (parse_u64(optarg, UINT8_MAX, &v) < 0)
				BAD("--indirect-op: 0..255");
			o->raw_indirect_op = (int)v;
			break;
		case OPT_IND_PAGES:
			if (parse_u64(optarg, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, &v) < 0)
				BAD("--indirect-pages: 0..%u (grefs past them: --indirect-gref)",
				    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
			o->raw_indirect_pages = (int)v;
			break;
		case OPT_IND_GREF:
			if (o->raw_nr_indirect_grefs >= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST ||
			    parse_u64(optarg, UINT32_MAX, &v) < 0)
				BAD("--indirect-gref: up to %u grant refs",
				    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
			o->raw_indirect_grefs[o->raw_nr_indirect_grefs++] = (uint32_t)v;
			break;
		case OPT_DISC_SECTORS:
			if (parse_u64(optarg, UINT64_MAX, &o->raw_discard_sectors) < 0)
				BAD("--discard-sectors: a number");
			break;
		case OPT_DISC_FLAG:
			if (parse_u64(optarg, UINT8_MAX, &v) < 0)
				BAD("--discard-flag: 0..255");
			o->raw_discard_flag = (int)v;
			break;
		case OPT_EXPECT_STATUS: {
			char *end;
			long s = strtol(optarg, &end, 10);

			if (!*optarg || *end || s < INT16_MIN || s > INT16_MAX)
				BAD("--expect-status: a number (0 OKAY, -1 ERROR, -2 EOPNOTSUPP)");
			o->raw_expect_status = (int)s;
			o->raw_expect_status_set = true;
			break;
		}
		case OPT_WAIT:
			if (parse_seconds(optarg, &o->raw_wait) < 0)
				BAD("--wait: seconds");
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_HOSTILE:
			if (bf_hostile_parse(optarg, &o->hostile) < 0)
				BAD("--hostile: rewrite prod-overflow prod-backwards event-storm "
				    "xs-flood rsp-check dup-ids");
			break;
		case OPT_RING_START: {
			uint64_t req, rsp;
			char buf[64], *colon;

			if (strlen(optarg) >= sizeof(buf))
				BAD("--ring-start: REQ[:RSP]");
			strcpy(buf, optarg);
			colon = strchr(buf, ':');
			if (colon)
				*colon++ = '\0';
			if (parse_u64(buf, UINT32_MAX, &req) < 0 ||
			    parse_u64(colon ? colon : buf, UINT32_MAX, &rsp) < 0)
				BAD("--ring-start: REQ[:RSP], each 0..4294967295");
			o->ring_start_set = true;
			o->ring_start_req = (uint32_t)req;
			o->ring_start_rsp = (uint32_t)rsp;
			break;
		}
		case OPT_VERSION:
			printf("blkfront-sim %s\n", PACKAGE_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc)
		BAD("unexpected argument '%s'", argv[optind]);
	if (!o->domain || !o->vdev)
		BAD("--domain and --vdev are required (see --help)");
	if (o->workload == BF_WL_READBACK && !o->verify)
		BAD("--workload readback needs --verify (and usually --state)");
	if (o->raw_seg_auto && o->raw_nr_segments < 0 && !o->raw_nr_segs)
		BAD("--seg-auto needs --nr-segments");
	/* What the real frontends never send. */
	if (o->personality == BF_PERS_WINDOWS && o->barrier_every)
		BAD("--personality windows sends no barriers (flush only)");
	if (o->personality == BF_PERS_OVMF && (o->ring_order > 0 || o->queues > 1 || o->indirect))
		BAD("--personality ovmf uses one one-page ring, no indirect requests");
	return 0;
}

/* Written by time_limit_arm(), read by the handler: the handler may only
 * call async-signal-safe functions, so the message is ready beforehand. */
static char time_limit_msg[160];
static size_t time_limit_len;

static void time_limit_expire(int sig)
{
	ssize_t n;

	(void)sig;
	n = write(STDERR_FILENO, time_limit_msg, time_limit_len);
	(void)n;
	_exit(BF_EXIT_TIME_LIMIT);
}

/* A frontend whose test died, or whose backend stopped answering a wait
 * that has no limit of its own, would otherwise run for ever. SIGALRM is
 * not blocked in any thread (the hostile flipper inherits main's mask),
 * and the process exits from the handler: it cannot trust its own state
 * any more, and exit releases its grants and event channels like a
 * guest's crash does. */
static int time_limit_arm(double seconds)
{
	struct itimerval it = { 0 };
	struct sigaction sa = { 0 };
	int n;

	if (seconds <= 0)
		return 0;
	n = snprintf(time_limit_msg, sizeof(time_limit_msg),
		     "blkfront-sim: time limit of %g s passed (--time-limit or "
		     "BLKFRONT_SIM_TIME_LIMIT): giving up, pid %ld\n",
		     seconds, (long)getpid());
	time_limit_len = n < 0 ? 0 : (size_t)n < sizeof(time_limit_msg) ?
		(size_t)n : sizeof(time_limit_msg) - 1;
	sa.sa_handler = time_limit_expire;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		return -errno;
	it.it_value.tv_sec = (time_t)seconds;
	it.it_value.tv_usec = (suseconds_t)((seconds - (double)it.it_value.tv_sec) * 1e6);
	if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
		it.it_value.tv_usec = 1;
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		return -errno;
	return 0;
}

static int signals_block(void)
{
	sigset_t set;
	int fd;

	/* Signals arrive through a signalfd in the event loop, so a close
	 * in progress is finished properly instead of cut short. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

static int dev_connect(struct bf_dev *dev)
{
	const struct bf_opts *o = dev->opts;
	struct platform_config pc = { .name = o->platform_xen ? "xen" : "sim" };
	unsigned int order, nq;
	int ret;

	ret = bf_xenbus_open(dev);
	if (ret < 0)
		return ret;
	pc.sim_dir = dev->dir;
	pc.sim_domid = (int)dev->domid;
	ret = platform_open(&pc, &dev->plat);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot open the %s platform as domain %u",
			  pc.name, dev->domid);
		dev->plat = NULL;
		return ret;
	}
	if (o->personality == BF_PERS_KDUMP) {
		ret = bf_personality_kdump_reset(dev);
		if (ret < 0)
			return ret;
	}
	if (o->personality == BF_PERS_OVMF) {
		/* It reads no backend limit: one page, one queue. */
		dev->be.max_ring_order = 0;
		dev->be.max_queues = 1;
	} else {
		ret = bf_xenbus_wait_initwait(dev);
		if (ret < 0)
			return ret;
	}
	order = o->ring_order < 0 ? 0 : (unsigned int)o->ring_order;
	if (order > dev->be.max_ring_order) {
		log_err("--ring-order %u: the backend allows at most %u%s", order,
			dev->be.max_ring_order, o->personality == BF_PERS_BSD ?
			" (in " XK_MAX_RING_PAGES ")" : "");
		return -EINVAL;
	}
	nq = o->queues;
	if (nq > dev->be.max_queues) {
		/* As Linux blkfront: use what the backend offers. */
		log_info("--queues %u: the backend offers %u, using %u", nq,
			 dev->be.max_queues, dev->be.max_queues);
		nq = dev->be.max_queues;
	}
	ret = bf_ring_setup(dev, order, nq);
	if (ret < 0)
		return ret;
	ret = bf_xenbus_publish(dev);
	if (ret < 0)
		return ret;
	return bf_xenbus_wait_connected(dev);
}

int main(int argc, char **argv)
{
	struct bf_opts opts;
	struct bf_stats st;
	struct bf_dev dev;
	const char *dir;
	int ret, result = BF_EXIT_SETUP;

	if (opts_parse(&opts, argc, argv) < 0)
		return BF_EXIT_SETUP;
	log_init("blkfront-sim", true, opts.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	memset(&dev, 0, sizeof(dev));
	dev.opts = &opts;
	dev.sigfd = -1;
	/* On Xen, libxenstore finds xenstored itself and there is no
	 * simulator directory. */
	dir = opts.dir ? opts.dir : getenv("XENSIM_DIR");
	if (!opts.platform_xen && (!dir || !*dir)) {
		log_err("no simulator directory: use --dir or set XENSIM_DIR");
		goto out;
	}
	if (!opts.platform_xen) {
		dev.dir = strdup(dir);
		if (!dev.dir)
			goto out;
	}
	ret = time_limit_arm(opts.time_limit);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot arm the time limit");
		goto out;
	}
	ret = signals_block();
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "signalfd");
		goto out;
	}
	dev.sigfd = ret;

	ret = dev_connect(&dev);
	if (ret < 0) {
		if (ret == -EINTR)
			log_info("interrupted while connecting");
		goto out_close;
	}
	log_debug("connected: %" PRIu64 " 512-byte sectors, sector-size %u, info %#x", dev.be.sectors,
		  dev.be.sector_size, dev.be.info);

	bf_stats_init(&st);
	if (opts.hostile)
		result = bf_hostile_run(&dev);
	else if (opts.raw)
		result = bf_raw_run(&dev);
	else
		result = bf_workload_run(&dev, &st);
out_close:
	bf_xenbus_close(&dev);
	/* The backend unmapped the ring when it reached Closed: nothing may
	 * appear there after that. */
	if (dev.nr_queues && dev.rsp_prod_snapped &&
	    bf_ring_rsp_prod(&dev) != dev.rsp_prod_closed) {
		bf_fail(&dev, "backend wrote responses after it closed the device");
		result = BF_EXIT_FAIL;
	}
	bf_ring_teardown(&dev);
	if (dev.failures && result == BF_EXIT_OK)
		result = BF_EXIT_FAIL;
	if (dev.failures && result == BF_EXIT_CLOSED)
		result = BF_EXIT_FAIL;
	platform_close(dev.plat);
	bf_xenbus_free(&dev);
out:
	if (dev.sigfd >= 0)
		close(dev.sigfd);
	free(dev.dir);
	free(opts.raw_segs);
	return result;
}
