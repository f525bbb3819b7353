/* Domains: create writes /local/domain/<id>, /vm/<uuid> and /libxl/<id>
 * as libxl__domain_make and libxl__build_post do; destroy force-removes
 * the devices, destroys the domain and removes those trees; list and
 * name/id resolution read the names back. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simctl.h"
#include "xensim.h"

#define DOM0_NAME	"Domain-0"
#define NAME_MAX_LEN	128
#define MAX_DOMAINS	4096
/* Simulated RAM is a lazily allocated memfd; xensimd caps it at 4 GiB. */
#define MEMORY_DEFAULT_MIB	256
#define MEMORY_MAX_MIB		4096

/* Live domain ids, ascending, dom0 included. Free *ret_ids. */
static int domain_ids(struct xensim *x, uint32_t **ret_ids, size_t *ret_n)
{
	struct simctl *sc;
	uint32_t *ids;
	size_t n;
	int r;

	r = xensim_simctl(x, &sc);
	if (r < 0)
		return r;
	ids = calloc(MAX_DOMAINS, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	r = simctl_domain_list(sc, ids, MAX_DOMAINS, &n);
	if (r < 0) {
		xensim_err("cannot list domains: %s", strerror(-r));
		free(ids);
		return r;
	}
	*ret_ids = ids;
	*ret_n = n;
	return 0;
}

/* The name node of domid, or NULL; dom0 is Domain-0 even unnamed. */
static char *domain_name(struct xs_handle *xs, xs_transaction_t t, uint32_t domid)
{
	char path[64];
	char *name;

	snprintf(path, sizeof(path), "/local/domain/%u/" XK_NAME, domid);
	name = xsim_read(xs, t, path);
	if (!name && domid == 0)
		name = strdup(DOM0_NAME);
	return name;
}

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static int domain_resolve(struct xensim *x, const char *arg, bool quiet,
			  uint32_t *ret_domid)
{
	struct xs_handle *xs;
	uint32_t *ids = NULL, want;
	size_t n, i;
	char *name, *end;
	int r;

	r = domain_ids(x, &ids, &n);
	if (r < 0)
		return r;
	if (is_number(arg)) {
		errno = 0;
		want = (uint32_t)strtoul(arg, &end, 10);
		r = -ENOENT;
		for (i = 0; !errno && strlen(arg) <= 10 && i < n; i++)
			if (ids[i] == want)
				r = 0;
		if (r < 0 && !quiet)
			xensim_err("no domain with id %s", arg);
		goto out;
	}
	r = xensim_xs(x, &xs);
	if (r < 0)
		goto out;
	r = -ENOENT;
	for (i = 0; i < n && r < 0; i++) {
		name = domain_name(xs, XBT_NULL, ids[i]);
		if (name && strcmp(name, arg) == 0) {
			want = ids[i];
			r = 0;
		}
		free(name);
	}
	if (r < 0 && !quiet)
		xensim_err("no domain named '%s'", arg);
out:
	if (r == 0)
		*ret_domid = want;
	free(ids);
	return r;
}

int xensim_domain_resolve(struct xensim *x, const char *arg, uint32_t *ret_domid)
{
	return domain_resolve(x, arg, false, ret_domid);
}

static int name_check(const char *name)
{
	const char *p;

	if (!*name || strlen(name) > NAME_MAX_LEN) {
		xensim_err("domain name must be 1 to %d characters", NAME_MAX_LEN);
		return -EINVAL;
	}
	if (is_number(name)) {
		xensim_err("domain name '%s' is a number, which names a domid", name);
		return -EINVAL;
	}
	for (p = name; *p; p++) {
		if (!isgraph((unsigned char)*p) || *p == '/') {
			xensim_err("domain name '%s' has a space, '/' or a "
				   "non-printable character", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* 8-4-4-4-12 hex digits, as libxl prints a domain's uuid. */
static bool uuid_valid(const char *u)
{
	size_t i;

	for (i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (!u[i] || (dash ? u[i] != '-' : !isxdigit((unsigned char)u[i])))
			return false;
	}
	return u[36] == '\0';
}

static int uuid_new(char *buf, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/uuid", "re");
	int r = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		r = -EIO;
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return r;
}

struct create_ctx {
	struct xensim *x;
	const char *name;
	uint32_t domid;
	uint32_t memory_mib;
	const char *uuid;
	const uint32_t *ids;		/* live domains, for the name check */
	size_t nids;
};

#define PATHF(buf, ...) snprintf(buf, sizeof(buf), __VA_ARGS__)

static int create_txn(struct xs_handle *xs, xs_transaction_t t, void *opaque)
{
	struct create_ctx *c = opaque;
	struct xs_permissions noperm[1] = { { 0, XS_PERM_NONE } };
	struct xs_permissions roperm[2] = {
		{ 0, XS_PERM_NONE }, { c->domid, XS_PERM_READ }
	};
	struct xs_permissions rwperm[1] = { { c->domid, XS_PERM_NONE } };
	static const char *const ro_dirs[] = { "cpu", "memory", "device", "control" };
	static const char *const rw_dirs[] = {
		"control/shutdown", "control/feature-poweroff",
		"control/feature-reboot", "control/feature-suspend",
		"control/sysrq", "device/suspend/event-channel", "data",
		"drivers", "feature", "attr", "error",
	};
	char dom[64], vm[96], lx[64], p[192] = "", v[32];
	char *other;
	size_t i;
	int r;

	PATHF(dom, "/local/domain/%u", c->domid);
	PATHF(vm, "/vm/%s", c->uuid);
	PATHF(lx, "/libxl/%u", c->domid);

	/* libxl__domain_rename: the name is unique among live domains,
	 * checked inside the same transaction that claims it. */
	for (i = 0; i < c->nids; i++) {
		if (c->ids[i] == c->domid)
			continue;
		other = domain_name(xs, t, c->ids[i]);
		r = other && strcmp(other, c->name) == 0;
		free(other);
		if (r) {
			xensim_err("domain name '%s' is already used by domain %u",
				   c->name, c->ids[i]);
			return -EEXIST;
		}
	}

	if ((r = xsim_rm(xs, t, dom)) < 0 ||
	    (r = xsim_mknod(xs, t, dom, roperm, 2)) < 0 ||
	    (r = xsim_rm(xs, t, vm)) < 0 ||
	    (r = xsim_mknod(xs, t, vm, roperm, 2)) < 0 ||
	    (r = xsim_rm(xs, t, lx)) < 0 ||
	    (r = xsim_mknod(xs, t, lx, noperm, 1)) < 0)
		goto fail;
	PATHF(p, "%s/device", lx);
	if ((r = xsim_mknod(xs, t, p, noperm, 1)) < 0)
		goto fail;
	PATHF(p, "%s/vm", dom);
	if ((r = xsim_write(xs, t, p, vm)) < 0)
		goto fail;
	PATHF(p, "%s/" XK_NAME, dom);
	if ((r = xsim_write(xs, t, p, c->name)) < 0)
		goto fail;
	for (i = 0; i < sizeof(ro_dirs) / sizeof(ro_dirs[0]); i++) {
		PATHF(p, "%s/%s", dom, ro_dirs[i]);
		if ((r = xsim_mknod(xs, t, p, roperm, 2)) < 0)
			goto fail;
	}
	for (i = 0; i < sizeof(rw_dirs) / sizeof(rw_dirs[0]); i++) {
		PATHF(p, "%s/%s", dom, rw_dirs[i]);
		if ((r = xsim_mknod(xs, t, p, rwperm, 1)) < 0)
			goto fail;
	}
	PATHF(p, "%s/uuid", vm);
	if ((r = xsim_write(xs, t, p, c->uuid)) < 0)
		goto fail;
	PATHF(p, "%s/" XK_NAME, vm);
	if ((r = xsim_write(xs, t, p, c->name)) < 0)
		goto fail;
	PATHF(p, "%s/control/platform-feature-multiprocessor-suspend", dom);
	if ((r = xsim_write(xs, t, p, "1")) < 0)
		goto fail;
	PATHF(p, "%s/control/platform-feature-xs_reset_watches", dom);
	if ((r = xsim_write(xs, t, p, "1")) < 0)
		goto fail;
	PATHF(p, "%s/" XK_TYPE, lx);
	if ((r = xsim_write(xs, t, p, "pv")) < 0)
		goto fail;
	/* libxl__build_post's share: domid and the memory sizes (KiB). */
	PATHF(p, "%s/" XK_DOMID, dom);
	PATHF(v, "%u", c->domid);
	if ((r = xsim_write(xs, t, p, v)) < 0)
		goto fail;
	PATHF(v, "%llu", (unsigned long long)c->memory_mib * 1024);
	PATHF(p, "%s/memory/static-max", dom);
	if ((r = xsim_write(xs, t, p, v)) < 0)
		goto fail;
	PATHF(p, "%s/memory/target", dom);
	if ((r = xsim_write(xs, t, p, v)) < 0)
		goto fail;
	return 0;
fail:
	xensim_err("cannot write %s: %s", p[0] ? p : dom, strerror(-r));
	return r;
}

/* Removes what create wrote. The vm path comes from the domain's own vm
 * node, taken only if it really is under /vm/. */
static int domain_paths_rm(struct xs_handle *xs, xs_transaction_t t, void *opaque)
{
	uint32_t domid = *(uint32_t *)opaque;
	char dom[64], lx[64], p[96];
	char *vm;
	int r;

	PATHF(dom, "/local/domain/%u", domid);
	PATHF(lx, "/libxl/%u", domid);
	PATHF(p, "%s/vm", dom);
	vm = xsim_read(xs, t, p);
	r = 0;
	if (vm && strncmp(vm, "/vm/", 4) == 0 && !strchr(vm + 4, '/') && vm[4])
		r = xsim_rm(xs, t, vm);
	free(vm);
	if (r == 0)
		r = xsim_rm(xs, t, dom);
	if (r == 0)
		r = xsim_rm(xs, t, lx);
	return r;
}

int xensim_cmd_create(struct xensim *x, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "memory", required_argument, NULL, 'm' },
		{ "uuid", required_argument, NULL, 'u' },
		{ 0 }
	};
	struct create_ctx c = { .x = x, .memory_mib = MEMORY_DEFAULT_MIB };
	const char *want_uuid = NULL;
	struct simctl *sc;
	struct xs_handle *xs;
	uint32_t *ids = NULL, domid;
	char uuid[64];
	bool created = false;
	unsigned long mib;
	char *end;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "m:u:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			errno = 0;
			mib = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || mib == 0 ||
			    mib > MEMORY_MAX_MIB) {
				xensim_err("create: bad --memory '%s' (MiB, 1 to %d)",
					   optarg, MEMORY_MAX_MIB);
				return -EINVAL;
			}
			c.memory_mib = (uint32_t)mib;
			break;
		case 'u':
			if (!uuid_valid(optarg)) {
				xensim_err("create: bad --uuid '%s' (want "
					   "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex)", optarg);
				return -EINVAL;
			}
			want_uuid = optarg;
			break;
		default:
			xensim_err("usage: create NAME [--memory MiB] [--uuid UUID]");
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		xensim_err("usage: create NAME [--memory MiB] [--uuid UUID]");
		return -EINVAL;
	}
	c.name = argv[optind];
	if ((r = name_check(c.name)) < 0)
		return r;
	if (strcmp(c.name, DOM0_NAME) == 0) {
		xensim_err("domain name '%s' is already used by domain 0", c.name);
		return -EEXIST;
	}
	if ((r = xensim_simctl(x, &sc)) < 0 || (r = xensim_xs(x, &xs)) < 0)
		return r;
	/* Refuse a known duplicate before creating anything; the check
	 * inside the transaction below catches a racing create. */
	if (domain_resolve(x, c.name, true, &domid) == 0) {
		xensim_err("domain name '%s' is already used by domain %u",
			   c.name, domid);
		return -EEXIST;
	}
	if (want_uuid)
		snprintf(uuid, sizeof(uuid), "%s", want_uuid);
	else if ((r = uuid_new(uuid, sizeof(uuid))) < 0) {
		xensim_err("cannot make a uuid: %s", strerror(-r));
		return r;
	}
	c.uuid = uuid;

	r = simctl_domain_create(sc, c.memory_mib * 256u, &c.domid);
	if (r < 0) {
		xensim_err("cannot create domain: %s", strerror(-r));
		return r;
	}
	created = true;
	r = domain_ids(x, &ids, &c.nids);
	if (r < 0)
		goto fail;
	c.ids = ids;
	r = xsim_transact(xs, create_txn, &c);
	if (r < 0)
		goto fail;
	printf("%u\n", c.domid);
	free(ids);
	return 0;

fail:
	free(ids);
	if (created) {
		xsim_transact(xs, domain_paths_rm, &c.domid);
		if (simctl_domain_destroy(sc, c.domid) < 0)
			xensim_err("could not destroy half-made domain %u", c.domid);
	}
	return r;
}

int xensim_cmd_destroy(struct xensim *x, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ 0 }
	};
	struct simctl *sc;
	struct xs_handle *xs;
	int timeout = XENSIM_DESTROY_TIMEOUT;
	uint32_t domid;
	int opt, r, rdev;

	while ((opt = getopt_long(argc, argv, "t:", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (xensim_parse_seconds(optarg, &timeout) < 0) {
				xensim_err("destroy: bad --timeout '%s'", optarg);
				return -EINVAL;
			}
			break;
		default:
			xensim_err("usage: destroy DOMAIN [--timeout S]");
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		xensim_err("usage: destroy DOMAIN [--timeout S]");
		return -EINVAL;
	}
	if ((r = xensim_simctl(x, &sc)) < 0 || (r = xensim_xs(x, &xs)) < 0)
		return r;
	if ((r = xensim_domain_resolve(x, argv[optind], &domid)) < 0)
		return r;
	if (domid == 0) {
		xensim_err("refusing to destroy Domain-0");
		return -EINVAL;
	}
	/* Like libxl, a device whose backend does not close still goes: the
	 * domain is going away whatever the backend thinks. */
	rdev = xensim_vbd_remove_all(x, domid, timeout);
	r = simctl_domain_destroy(sc, domid);
	if (r < 0) {
		xensim_err("cannot destroy domain %u: %s", domid, strerror(-r));
		return r;
	}
	r = xsim_transact(xs, domain_paths_rm, &domid);
	if (r < 0) {
		xensim_err("domain %u destroyed, but removing its xenstore "
			   "trees failed: %s", domid, strerror(-r));
		return r;
	}
	return rdev < 0 && rdev != -ETIMEDOUT ? rdev : 0;
}

int xensim_cmd_list(struct xensim *x, int argc, char **argv)
{
	struct xs_handle *xs;
	uint32_t *ids;
	size_t n, i;
	char *name;
	int r;

	if (argc != 1) {
		xensim_err("usage: list");
		return -EINVAL;
	}
	if ((r = xensim_xs(x, &xs)) < 0 || (r = domain_ids(x, &ids, &n)) < 0)
		return r;
	printf("%-40s %5s\n", "Name", "ID");
	for (i = 0; i < n; i++) {
		name = domain_name(xs, XBT_NULL, ids[i]);
		printf("%-40s %5u\n", name ? name : "-", ids[i]);
		free(name);
	}
	free(ids);
	return 0;
}
