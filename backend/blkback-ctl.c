/* blkback-ctl: the operator's view into blkbackd through its control
 * socket. Sends one JSON request per line (json-c), reads one reply per
 * line, and prints it as a table, as JSON or in the Prometheus text
 * format. The protocol is described in blkback-ctl(8) and control-proto.h. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control-proto.h"
#include "stats.h"
#include "util.h"

#define REPLY_MAX		(64u << 20)
#define REPLY_TIMEOUT_MS	30000
#define DETACH_POLL_MS		200
#define DETACH_TIMEOUT_S	30
#define UPGRADE_POLL_MS		20

/* Exit codes, documented in blkback-ctl(8). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,	/* the daemon refused or the command failed */
	EXIT_USAGE = 2,
	EXIT_NOT_RUNNING = 3,
	EXIT_TIMEOUT = 4,	/* detach did not finish in time */
	EXIT_COMM = 5,		/* no permission, or a broken conversation */
};

static const char usage_text[] =
	"Usage: blkback-ctl [--control PATH] COMMAND [ARGS]\n"
	"Look into and steer a running blkbackd.\n\n"
	"Commands:\n"
	"  list [--json]                       one line per vbd\n"
	"  show DOMAIN DEVID|VDEV [--json]     everything about one vbd\n"
	"  stats [--json|--prometheus]         counters and latency of every ring\n"
	"  detach DOMAIN DEVID|VDEV [--force] [--timeout S]\n"
	"                                      close a vbd gracefully (default 30 s)\n"
	"  check-target --mode r|w [--domain N] TARGET\n"
	"                                      may TARGET back a new vbd (of domain N)?\n"
	"  status [--json]                     the daemon: pid, version, instance\n"
	"  upgrade [--timeout S]               hand every vbd over to the binary now\n"
	"                                      installed, without an I/O error (30 s)\n\n"
	"Options:\n"
	"  -c, --control PATH   control socket (default: $BLKBACK_CTL_SOCKET, else\n"
	"                       $XENSIM_DIR/" CONTROL_SIM_NAME " when XENSIM_DIR is set,\n"
	"                       else " CONTROL_PATH_DEFAULT ")\n"
	"  -j, --json           JSON output (one object, the daemon's reply)\n"
	"  -P, --prometheus     stats in the Prometheus text format\n"
	"  -f, --force          detach: do not wait for the frontend\n"
	"  -t, --timeout S      detach, upgrade: give up after S seconds\n"
	"  -m, --mode r|w       check-target: the access wanted\n"
	"  -D, --domain N       check-target: the domain the vbd is for; another\n"
	"                       domain of the same VM may share a read-write target\n"
	"  -h, --help           this text\n"
	"  -V, --version        print the version\n"
	"DOMAIN is a domain id or name, as xl takes it.\n";

struct ctl {
	const char *path;
	int fd;
	bool quiet;		/* connect failures are expected: say nothing */
	char *buf;		/* bytes received past the last reply */
	size_t len;
	size_t cap;
};

/* ---- talking to the daemon ---- */

static int ctl_connect(struct ctl *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int e;

	if (strlen(c->path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "blkback-ctl: control path too long: %s\n", c->path);
		return EXIT_USAGE;
	}
	strcpy(sa.sun_path, c->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		perror("blkback-ctl: socket");
		return EXIT_COMM;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return EXIT_OK;
	e = errno;
	close(c->fd);
	c->fd = -1;
	if (c->quiet)
		return e == ENOENT || e == ENOTDIR || e == ECONNREFUSED ? EXIT_NOT_RUNNING : EXIT_COMM;
	if (e == ENOENT || e == ENOTDIR) {
		fprintf(stderr, "blkback-ctl: blkbackd is not running (no socket at %s)\n", c->path);
		return EXIT_NOT_RUNNING;
	}
	if (e == ECONNREFUSED) {
		fprintf(stderr, "blkback-ctl: blkbackd is not running (nobody listens at %s)\n",
			c->path);
		return EXIT_NOT_RUNNING;
	}
	fprintf(stderr, "blkback-ctl: cannot connect to %s: %s\n", c->path, strerror(e));
	return EXIT_COMM;
}

/* Sends req, waits for one reply line; *ret is the parsed reply. */
static int ctl_call(struct ctl *c, struct json_object *req, struct json_object **ret)
{
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s), off = 0;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	char *nl;
	ssize_t k;

	while (off <= n) {
		k = off < n ? send(c->fd, s + off, n - off, MSG_NOSIGNAL) :
			      send(c->fd, "\n", 1, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			/* The daemon may have answered (a refusal) and hung up
			 * before reading: its reply is still there to read. */
			if (errno == EPIPE || errno == ECONNRESET)
				break;
			fprintf(stderr, "blkback-ctl: sending to %s: %s\n", c->path, strerror(errno));
			return EXIT_COMM;
		}
		off += (size_t)k;
	}
	while (!(nl = c->len ? memchr(c->buf, '\n', c->len) : NULL)) {
		if (c->len == c->cap) {
			char *b;

			if (c->cap >= REPLY_MAX) {
				fprintf(stderr, "blkback-ctl: reply larger than %u bytes\n", REPLY_MAX);
				return EXIT_COMM;
			}
			b = realloc(c->buf, c->cap ? c->cap * 2 : 65536);
			if (!b) {
				fprintf(stderr, "blkback-ctl: out of memory\n");
				return EXIT_COMM;
			}
			c->buf = b;
			c->cap = c->cap ? c->cap * 2 : 65536;
		}
		k = poll(&pfd, 1, REPLY_TIMEOUT_MS);
		if (k == 0) {
			fprintf(stderr, "blkback-ctl: no reply from blkbackd within %d s\n",
				REPLY_TIMEOUT_MS / 1000);
			return EXIT_COMM;
		}
		k = k < 0 ? -1 : recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "blkback-ctl: blkbackd closed the connection\n");
			return EXIT_COMM;
		}
		c->len += (size_t)k;
	}
	*nl = '\0';
	*ret = json_tokener_parse(c->buf);
	c->len -= (size_t)(nl + 1 - c->buf);
	memmove(c->buf, nl + 1, c->len);
	if (!*ret || !json_object_is_type(*ret, json_type_object)) {
		json_object_put(*ret);
		*ret = NULL;
		fprintf(stderr, "blkback-ctl: unreadable reply from blkbackd\n");
		return EXIT_COMM;
	}
	return EXIT_OK;
}

static struct json_object *reply_get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static const char *reply_str(struct json_object *o, const char *key)
{
	struct json_object *v = reply_get(o, key);

	return v ? json_object_get_string(v) : "";
}

static uint64_t reply_u64(struct json_object *o, const char *key)
{
	struct json_object *v = reply_get(o, key);

	return v ? json_object_get_uint64(v) : 0;
}

static enum control_error reply_code(struct json_object *rep)
{
	struct json_object *v = reply_get(rep, CONTROL_KEY_CODE);

	return control_error_parse(v ? json_object_get_string(v) : NULL);
}

/* The daemon said no: print its reason. */
static int reply_check(struct json_object *rep)
{
	if (json_object_get_boolean(reply_get(rep, CONTROL_KEY_OK)))
		return EXIT_OK;
	fprintf(stderr, "blkback-ctl: %s\n", reply_str(rep, CONTROL_KEY_ERROR));
	/* A refused peer is not a failed command: say so distinctly. */
	if (reply_code(rep) == CONTROL_E_PERMISSION)
		return EXIT_COMM;
	return EXIT_FAILED;
}

static struct json_object *request(const char *cmd)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, CONTROL_KEY_VERSION, json_object_new_int(CONTROL_VERSION));
	json_object_object_add(o, CONTROL_KEY_COMMAND, json_object_new_string(cmd));
	return o;
}

static void print_json(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- human output ---- */

static const char *human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "BKMGTP";
	double v = (double)bytes;
	unsigned int u = 0;

	while (v >= 1024 && u < sizeof(units) - 2) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 "B", bytes);
	else
		snprintf(buf, len, "%.*f%c", v < 10 ? 1 : 0, v, units[u]);
	return buf;
}

static const char *dash(const char *s)
{
	return s && *s ? s : "-";
}

static void print_list(struct json_object *rep)
{
	struct json_object *vbds = reply_get(rep, "vbds");
	size_t n = vbds ? json_object_array_length(vbds) : 0, i;
	int wname = 4, wtarget = 6, wvdev = 4, w;
	char size[16], state[64], rings[16];

	for (i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vbds, i);

		w = (int)strlen(reply_str(v, "domain"));
		wname = w > wname ? w : wname;
		w = (int)strlen(reply_str(v, "target"));
		wtarget = w > wtarget ? w : wtarget;
		w = (int)strlen(reply_str(v, "vdev"));
		wvdev = w > wvdev ? w : wvdev;
	}
	printf("%-5s %-*s %-6s %-*s %-21s %-*s %7s %-4s %-5s %8s %8s\n", "DOMID", wname, "NAME",
	       "DEVID", wvdev, "VDEV", "STATE(BACK/FRONT)", wtarget, "TARGET", "SIZE", "MODE",
	       "RINGS", "INFLIGHT", "IOPS");
	for (i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vbds, i);

		snprintf(state, sizeof(state), "%s/%s", reply_str(v, "backend_state"),
			 reply_str(v, "frontend_state"));
		snprintf(rings, sizeof(rings), "%" PRIu64 "x%" PRIu64, reply_u64(v, "rings"),
			 reply_u64(v, "ring_order"));
		printf("%-5" PRIu64 " %-*s %-6" PRIu64 " %-*s %-21s %-*s %7s %-4s %-5s %8" PRIu64
		       " %8.0f\n", reply_u64(v, "domid"), wname, dash(reply_str(v, "domain")),
		       reply_u64(v, "devid"), wvdev, dash(reply_str(v, "vdev")), state, wtarget,
		       dash(reply_str(v, "target")),
		       *reply_str(v, "target") ? human_size(reply_u64(v, "size"), size, sizeof(size)) : "-",
		       dash(reply_str(v, "mode")), rings, reply_u64(v, "inflight"),
		       json_object_get_double(reply_get(v, "iops")));
	}
}

/* Restarts this vbd lived through, and what each had to do again. */
static void print_recovery(struct json_object *rec)
{
	time_t last = (time_t)reply_u64(rec, "last");
	char when[32] = "never";
	struct tm tm;

	if (last && localtime_r(&last, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf("  recoveries: %" PRIu64 " (last %s), requests issued again %" PRIu64
	       ", responses published again %" PRIu64 ", policy %s\n", reply_u64(rec, "count"), when,
	       reply_u64(rec, "reissued"), reply_u64(rec, "republished"), dash(reply_str(rec, "policy")));
}

static void print_show(struct json_object *rep)
{
	struct json_object *v = reply_get(rep, "vbd"), *rings = reply_get(v, "ring_list");
	size_t n = rings ? json_object_array_length(rings) : 0, i;
	char size[16];

	printf("vbd %" PRIu64 "/%" PRIu64 " (domain %s, %s)\n", reply_u64(v, "domid"), reply_u64(v, "devid"),
	       dash(reply_str(v, "domain")), dash(reply_str(v, "vdev")));
	printf("  phase: %s  backend: %s  frontend: %s%s\n", reply_str(v, "phase"),
	       reply_str(v, "backend_state"), reply_str(v, "frontend_state"),
	       json_object_get_boolean(reply_get(v, "detach_requested")) ? "  (detach requested)" : "");
	printf("  target: %s  size: %s (%" PRIu64 " sectors)  mode: %s\n", dash(reply_str(v, "target")),
	       human_size(reply_u64(v, "size"), size, sizeof(size)), reply_u64(v, "sectors"),
	       dash(reply_str(v, "mode")));
	printf("  backend: %s\n  frontend: %s\n", dash(reply_str(v, "backend_path")),
	       dash(reply_str(v, "frontend_path")));
	printf("  hotplug connected: %s  in-flight: %" PRIu64 "  iops: %.0f\n",
	       json_object_get_boolean(reply_get(v, "hotplug_connected")) ? "yes" : "no",
	       reply_u64(v, "inflight"), json_object_get_double(reply_get(v, "iops")));
	if (*reply_str(v, "error"))
		printf("  error: %s\n", reply_str(v, "error"));
	print_recovery(reply_get(v, "recovery"));
	for (i = 0; i < n; i++) {
		struct json_object *r = json_object_array_get_idx(rings, i), *f = reply_get(r, "features");

		printf("  ring %" PRIu64 ": %s, order %" PRIu64 " (%" PRIu64 " entries), %s, "
		       "port %" PRIu64 " <- %" PRIu64 "\n", reply_u64(r, "index"), reply_str(r, "step"),
		       reply_u64(r, "order"), reply_u64(r, "entries"), reply_str(r, "abi"), reply_u64(r, "port"),
		       reply_u64(r, "remote_port"));
		printf("    req_cons %" PRIu64 " rsp_prod %" PRIu64 "\n", reply_u64(r, "req_cons"),
		       reply_u64(r, "rsp_prod"));
		printf("    features: flush barrier%s%s%s indirect-segments %" PRIu64 "\n",
		       json_object_get_boolean(reply_get(f, "discard")) ? " discard" : "",
		       json_object_get_boolean(reply_get(f, "discard_secure")) ? " secure-discard" : "",
		       json_object_get_boolean(reply_get(f, "persistent")) ? " persistent" : "",
		       reply_u64(f, "max_indirect_segments"));
		stats_print_human(stdout, reply_get(r, "counters"), "    ");
	}
}

static void print_stats(struct json_object *rep)
{
	struct json_object *vbds = reply_get(rep, "vbds");
	size_t n = vbds ? json_object_array_length(vbds) : 0, i, j;

	for (i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vbds, i), *rings = reply_get(v, "ring_list");
		size_t nr = rings ? json_object_array_length(rings) : 0;

		printf("vbd %" PRIu64 "/%" PRIu64 " (%s, %s): %zu ring%s now\n", reply_u64(v, "domid"),
		       reply_u64(v, "devid"), dash(reply_str(v, "domain")), dash(reply_str(v, "vdev")), nr,
		       nr == 1 ? "" : "s");
		printf("  total:\n");
		stats_print_human(stdout, reply_get(v, "total"), "    ");
		for (j = 0; j < nr; j++) {
			struct json_object *r = json_object_array_get_idx(rings, j);

			printf("  ring %" PRIu64 ":\n", reply_u64(r, "index"));
			stats_print_human(stdout, r, "    ");
		}
	}
}

/* ---- commands ---- */

static int parse_uint(const char *s, const char *what, unsigned long max, unsigned long *ret)
{
	char *end;

	errno = 0;
	*ret = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || *ret > max) {
		fprintf(stderr, "blkback-ctl: bad %s '%s'\n", what, s);
		return -EINVAL;
	}
	return 0;
}

/* A domain as xl takes it: digits are an id, anything else a name. */
static bool domain_is_id(const char *dom)
{
	return *dom && strspn(dom, "0123456789") == strlen(dom);
}

/* The request for DOMAIN DEVID|VDEV; a name is filled in later by
 * domain_resolve, once the daemon can be asked. */
static struct json_object *vbd_request(const char *cmd, const char *dom, const char *dev)
{
	struct json_object *req;
	unsigned long domid = 0;

	if (!*dom || (domain_is_id(dom) && parse_uint(dom, "domain id", 0x7fef, &domid) < 0)) {
		if (!*dom)
			fprintf(stderr, "blkback-ctl: empty domain\n");
		return NULL;
	}
	req = request(cmd);
	if (domain_is_id(dom))
		json_object_object_add(req, CONTROL_KEY_DOMID, json_object_new_int64((int64_t)domid));
	json_object_object_add(req, CONTROL_KEY_DEVICE, json_object_new_string(dev));
	return req;
}

/* A domain name becomes the id of the domain of that name among the vbds
 * the daemon serves (its list carries each domain's name, read from
 * xenstore): the only domains show and detach can mean. */
static int domain_resolve(struct ctl *c, struct json_object *req, const char *dom)
{
	struct json_object *list = request(CONTROL_CMD_LIST), *rep = NULL, *vbds;
	uint64_t domid = 0;
	size_t n, i;
	bool found = false;
	int r;

	if (domain_is_id(dom)) {
		json_object_put(list);
		return EXIT_OK;
	}
	r = ctl_call(c, list, &rep);
	if (r != EXIT_OK)
		goto out;
	r = reply_check(rep);
	if (r != EXIT_OK)
		goto out;
	vbds = reply_get(rep, "vbds");
	n = vbds ? json_object_array_length(vbds) : 0;
	for (i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vbds, i);

		if (strcmp(reply_str(v, "domain"), dom) != 0)
			continue;
		if (found && reply_u64(v, "domid") != domid) {
			fprintf(stderr, "blkback-ctl: domains %" PRIu64 " and %" PRIu64
				" are both named '%s': give the id\n", domid,
				reply_u64(v, "domid"), dom);
			r = EXIT_FAILED;
			goto out;
		}
		domid = reply_u64(v, "domid");
		found = true;
	}
	if (!found) {
		fprintf(stderr, "blkback-ctl: no vbd of a domain named '%s'\n", dom);
		r = EXIT_FAILED;
		goto out;
	}
	json_object_object_add(req, CONTROL_KEY_DOMID, json_object_new_int64((int64_t)domid));
out:
	json_object_put(list);
	json_object_put(rep);
	return r;
}

static long ms_since(uint64_t t0_ms)
{
	return (long)(clock_mono_ms() - t0_ms);
}

/* Repeats the detach request (it is idempotent and reports progress)
 * until the daemon says done, or the time is up. */
static int cmd_detach(struct ctl *c, struct json_object *req, bool json, unsigned long timeout_s)
{
	struct json_object *rep = NULL;
	struct timespec ts = { 0, DETACH_POLL_MS * 1000000L };
	uint64_t t0 = clock_mono_ms();
	long last_inflight = -1;
	bool first = true;
	int r;

	for (;;) {
		json_object_put(rep);
		rep = NULL;
		r = ctl_call(c, req, &rep);
		if (r != EXIT_OK)
			goto out;
		if (!json_object_get_boolean(reply_get(rep, CONTROL_KEY_OK))) {
			/* Gone after we asked: the toolstack removed it. */
			if (!first && reply_code(rep) == CONTROL_E_NO_VBD) {
				if (!json)
					printf("detached: the vbd was removed\n");
				r = EXIT_OK;
				goto out;
			}
			r = reply_check(rep);
			goto out;
		}
		first = false;
		/* What was in flight when the rings were told to stop. */
		if (!json && reply_get(rep, "inflight_at_request"))
			printf("stopping: %" PRIu64 " request%s in flight\n",
			       reply_u64(rep, "inflight_at_request"),
			       reply_u64(rep, "inflight_at_request") == 1 ? "" : "s");
		if (!json && (long)reply_u64(rep, "inflight") != last_inflight) {
			last_inflight = (long)reply_u64(rep, "inflight");
			printf("%s: %ld request%s in flight\n", reply_str(rep, "phase"), last_inflight,
			       last_inflight == 1 ? "" : "s");
			fflush(stdout);
		}
		if (json_object_get_boolean(reply_get(rep, "done"))) {
			if (json)
				print_json(rep);
			else
				printf("detached: backend %s, frontend %s\n", reply_str(rep, "phase"),
				       dash(reply_str(rep, "frontend_state")));
			r = EXIT_OK;
			goto out;
		}
		if (ms_since(t0) >= (long)timeout_s * 1000) {
			if (json)
				print_json(rep);
			fprintf(stderr, "blkback-ctl: detach timed out after %lu s: backend %s, "
				"frontend %s, %" PRIu64 " requests in flight%s\n", timeout_s,
				reply_str(rep, "phase"), dash(reply_str(rep, "frontend_state")),
				reply_u64(rep, "inflight"),
				strcmp(reply_str(rep, "phase"), "closed") == 0 ?
				" (try --force for a frontend that does not answer)" : "");
			r = EXIT_TIMEOUT;
			goto out;
		}
		nanosleep(&ts, NULL);
	}
out:
	json_object_put(rep);
	return r;
}

static void print_status(struct json_object *rep)
{
	time_t started = (time_t)reply_u64(rep, "started");
	char when[32] = "?";
	struct tm tm;

	if (localtime_r(&started, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf("blkbackd %s, pid %" PRIu64 ", instance %s, started %s, %" PRIu64 " vbd%s\n",
	       reply_str(rep, "daemon_version"), reply_u64(rep, "pid"), reply_str(rep, "instance"),
	       when, reply_u64(rep, "vbds"), reply_u64(rep, "vbds") == 1 ? "" : "s");
	if (*reply_str(rep, "journal_dir"))
		printf("recovery journals in %s\n", reply_str(rep, "journal_dir"));
	else
		printf("recovery journals off: a restart cannot resume rings\n");
}

/* Asks for the upgrade, then waits until a daemon with another instance
 * answers on the socket: the new program, done with its takeover scan
 * (it listens only after that). */
static int cmd_upgrade(struct ctl *c, struct json_object *req, bool json,
		       unsigned long timeout_s)
{
	struct json_object *rep = NULL, *st = NULL;
	struct timespec ts = { 0, UPGRADE_POLL_MS * 1000000L };
	uint64_t t0 = clock_mono_ms();
	char *old = NULL;
	int r;

	r = ctl_call(c, req, &rep);
	if (r != EXIT_OK)
		goto out;
	r = reply_check(rep);
	if (r != EXIT_OK)
		goto out;
	old = strdup(reply_str(rep, "instance"));
	if (!json)
		printf("upgrading blkbackd %s (pid %" PRIu64 ", instance %s): exec %s\n",
		       reply_str(rep, "daemon_version"), reply_u64(rep, "pid"), dash(old),
		       reply_str(rep, "exec"));
	fflush(stdout);
	for (;;) {
		struct json_object *sreq = request(CONTROL_CMD_STATUS);
		/* Not listening yet is expected here: no message for that. */
		struct ctl probe = { .path = c->path, .fd = -1, .quiet = true };

		json_object_put(st);
		st = NULL;
		r = ctl_connect(&probe);
		if (r == EXIT_OK)
			r = ctl_call(&probe, sreq, &st);
		json_object_put(sreq);
		free(probe.buf);
		if (probe.fd >= 0)
			close(probe.fd);
		if (r == EXIT_OK && json_object_get_boolean(reply_get(st, CONTROL_KEY_OK)) &&
		    strcmp(reply_str(st, "instance"), old ? old : "") != 0)
			break;
		if (ms_since(t0) >= (long)timeout_s * 1000) {
			fprintf(stderr, "blkback-ctl: no upgraded blkbackd answered within %lu s\n",
				timeout_s);
			r = EXIT_TIMEOUT;
			goto out;
		}
		nanosleep(&ts, NULL);
	}
	if (json)
		print_json(st);
	else
		printf("upgraded: blkbackd %s, pid %" PRIu64 ", instance %s, serving %" PRIu64
		       " vbd%s, after %ld ms\n", reply_str(st, "daemon_version"),
		       reply_u64(st, "pid"), reply_str(st, "instance"), reply_u64(st, "vbds"),
		       reply_u64(st, "vbds") == 1 ? "" : "s", ms_since(t0));
	r = EXIT_OK;
out:
	free(old);
	json_object_put(rep);
	json_object_put(st);
	return r;
}

/* scheme "://" with a scheme of letters, digits, '+', '-', '.' (RFC 3986),
 * a Ceph image in QEMU's spelling (rbd:POOL/IMAGE...), or an image in a
 * named format (qcow2:/path: lowercase letters and digits, then ":/";
 * the daemon refuses a relative path there itself). */
static bool target_is_uri(const char *t)
{
	const char *p = t;

	if (strncmp(t, "rbd:", 4) == 0)
		return true;
	while ((*p >= 'a' && *p <= 'z') || (p > t && *p >= '0' && *p <= '9'))
		p++;
	if (p > t && p[0] == ':' && p[1] == '/')
		return true;
	p = t;

	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	       (p > t && ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')))
		p++;
	return p > t && strncmp(p, "://", 3) == 0;
}

/* What the command line asked for, besides the command and its words. */
struct ctl_opts {
	bool json;
	bool prom;
	bool force;
	unsigned long timeout_s;
	const char *mode;
	bool have_domid;
	unsigned long for_domid;
};

/* ---- one function per command: its request, then its conversation ---- */

/* The command's words (args) -> its request; EXIT_OK or why not. */
typedef int build_fn(const struct ctl_opts *o, char **args, struct json_object **ret_req);
/* Connected: send it, print the outcome. */
typedef int run_fn(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		   char **args);

static int build_list(const struct ctl_opts *o, char **args, struct json_object **ret_req)
{
	(void)o;
	(void)args;
	*ret_req = request(CONTROL_CMD_LIST);
	return EXIT_OK;
}

static int build_status(const struct ctl_opts *o, char **args, struct json_object **ret_req)
{
	(void)o;
	(void)args;
	*ret_req = request(CONTROL_CMD_STATUS);
	return EXIT_OK;
}

static int build_upgrade(const struct ctl_opts *o, char **args, struct json_object **ret_req)
{
	(void)o;
	(void)args;
	*ret_req = request(CONTROL_CMD_UPGRADE);
	return EXIT_OK;
}

static int build_stats(const struct ctl_opts *o, char **args, struct json_object **ret_req)
{
	(void)args;
	if (o->json && o->prom) {
		fprintf(stderr, "blkback-ctl: stats: --json or --prometheus, not both\n");
		return EXIT_USAGE;
	}
	*ret_req = request(CONTROL_CMD_STATS);
	return EXIT_OK;
}

/* show and detach: DOMAIN DEVID|VDEV. */
static int build_vbd(const char *cmd, const struct ctl_opts *o, char **args,
		     struct json_object **ret_req)
{
	*ret_req = vbd_request(cmd, args[0], args[1]);
	if (!*ret_req)
		return EXIT_USAGE;
	if (o->force)
		json_object_object_add(*ret_req, CONTROL_KEY_FORCE, json_object_new_boolean(true));
	return EXIT_OK;
}

static int build_show(const struct ctl_opts *o, char **args, struct json_object **ret_req)
{
	return build_vbd(CONTROL_CMD_SHOW, o, args, ret_req);
}

static int build_detach(const struct ctl_opts *o, char **args, struct json_object **ret_req)
{
	return build_vbd(CONTROL_CMD_DETACH, o, args, ret_req);
}

static int build_check_target(const struct ctl_opts *o, char **args,
			      struct json_object **ret_req)
{
	char *abs = NULL, cwd[PATH_MAX];
	struct json_object *req;

	if (!o->mode || (strcmp(o->mode, "r") != 0 && strcmp(o->mode, "w") != 0)) {
		fprintf(stderr, "blkback-ctl: check-target needs --mode r or --mode w\n");
		return EXIT_USAGE;
	}
	/* The daemon runs elsewhere: hand it an absolute path. A URI (an
	 * NBD export: scheme, then "://"; an rbd: image) goes as it is. */
	if (args[0][0] != '/' && !target_is_uri(args[0])) {
		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, args[0]) < 0) {
			fprintf(stderr, "blkback-ctl: cannot make %s absolute\n", args[0]);
			return EXIT_FAILED;
		}
	}
	req = request(CONTROL_CMD_CHECK_TARGET);
	json_object_object_add(req, CONTROL_KEY_TARGET, json_object_new_string(abs ? abs : args[0]));
	json_object_object_add(req, CONTROL_KEY_MODE, json_object_new_string(o->mode));
	if (o->have_domid)
		json_object_object_add(req, CONTROL_KEY_DOMID,
				       json_object_new_int64((int64_t)o->for_domid));
	free(abs);
	*ret_req = req;
	return EXIT_OK;
}

/* One request, one reply, printed by print (NULL: nothing to print but
 * the refusal) or as JSON with --json. */
static int run_once(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		    void (*print)(struct json_object *rep))
{
	struct json_object *rep = NULL;
	int r;

	r = ctl_call(c, req, &rep);
	if (r == EXIT_OK)
		r = reply_check(rep);
	if (r == EXIT_OK && o->json)
		print_json(rep);
	else if (r == EXIT_OK && print)
		print(rep);
	json_object_put(rep);
	return r;
}

static void print_prometheus(struct json_object *rep)
{
	stats_print_prometheus(stdout, rep);
}

static int run_list(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		    char **args)
{
	(void)args;
	return run_once(c, req, o, print_list);
}

static int run_stats(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		     char **args)
{
	(void)args;
	return run_once(c, req, o, o->prom ? print_prometheus : print_stats);
}

static int run_status(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		      char **args)
{
	(void)args;
	return run_once(c, req, o, print_status);
}

static int run_check_target(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
			    char **args)
{
	(void)args;
	return run_once(c, req, o, NULL);
}

static int run_show(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		    char **args)
{
	int r = domain_resolve(c, req, args[0]);

	return r != EXIT_OK ? r : run_once(c, req, o, print_show);
}

static int run_detach(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		      char **args)
{
	int r = domain_resolve(c, req, args[0]);

	return r != EXIT_OK ? r : cmd_detach(c, req, o->json, o->timeout_s);
}

static int run_upgrade(struct ctl *c, struct json_object *req, const struct ctl_opts *o,
		       char **args)
{
	(void)args;
	return cmd_upgrade(c, req, o->json, o->timeout_s);
}

static const struct ctl_command {
	const char *name;
	int nargs;
	build_fn *build;
	run_fn *run;
} ctl_commands[] = {
	{ "list", 0, build_list, run_list },
	{ "stats", 0, build_stats, run_stats },
	{ "show", 2, build_show, run_show },
	{ "detach", 2, build_detach, run_detach },
	{ "check-target", 1, build_check_target, run_check_target },
	{ "status", 0, build_status, run_status },
	{ "upgrade", 0, build_upgrade, run_upgrade },
};

/* ---- the command line ---- */

/* The socket, unless --control names one: $BLKBACK_CTL_SOCKET, else the
 * simulator's when XENSIM_DIR is set, else the default. *ret_buf is
 * what the caller frees. */
static const char *default_socket(char **ret_buf)
{
	const char *path = getenv("BLKBACK_CTL_SOCKET"), *dir;

	*ret_buf = NULL;
	if (path && *path)
		return path;
	dir = getenv("XENSIM_DIR");
	/* blkbackd on the simulator keeps its socket in the DIR. */
	if (dir && *dir && asprintf(ret_buf, "%s/%s", dir, CONTROL_SIM_NAME) > 0)
		return *ret_buf;
	*ret_buf = NULL;
	return CONTROL_PATH_DEFAULT;
}

/* Options into o and c->path; -1 to go on with the command at optind,
 * else the exit status (--help, --version, bad usage). */
static int parse_options(int argc, char **argv, struct ctl *c, struct ctl_opts *o)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'P' },
		{ "force", no_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "domain", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:jPft:m:D:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			c->path = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'P':
			o->prom = true;
			break;
		case 'f':
			o->force = true;
			break;
		case 't':
			if (parse_uint(optarg, "timeout", 86400, &o->timeout_s) < 0)
				return EXIT_USAGE;
			break;
		case 'm':
			o->mode = optarg;
			break;
		case 'D':
			if (parse_uint(optarg, "domain", UINT32_MAX, &o->for_domid) < 0)
				return EXIT_USAGE;
			o->have_domid = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		case 'V':
			printf("blkback-ctl %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	return -1;
}

/* The command named argv[0] with exactly its number of words, or NULL. */
static const struct ctl_command *find_command(const char *name, int nargs)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ctl_commands); i++)
		if (strcmp(name, ctl_commands[i].name) == 0 && nargs == ctl_commands[i].nargs)
			return &ctl_commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { .timeout_s = DETACH_TIMEOUT_S };
	struct ctl c = { .fd = -1 };
	const struct ctl_command *cmd;
	struct json_object *req = NULL;
	/* Freed on every exit: on the sanitizer build a leak at exit turns
	 * even --help into status 23 and loses its buffered stdout. */
	char *sim_path;
	char **args;
	int r;

	c.path = default_socket(&sim_path);
	r = parse_options(argc, argv, &c, &o);
	if (r >= 0)
		goto out;
	args = argv + optind + 1;
	cmd = find_command(argv[optind], argc - optind - 1);
	if (!cmd) {
		fprintf(stderr, "blkback-ctl: unknown command or wrong arguments: %s\n",
			argv[optind]);
		fputs(usage_text, stderr);
		r = EXIT_USAGE;
		goto out;
	}
	r = cmd->build(&o, args, &req);
	if (r == EXIT_OK)
		r = ctl_connect(&c);
	if (r == EXIT_OK)
		r = cmd->run(&c, req, &o, args);
out:
	json_object_put(req);
	free(c.buf);
	free(sim_path);
	if (c.fd >= 0)
		close(c.fd);
	return r;
}
