/* The xl DISKSPEC (xl-disk-configuration(5)) as far as a phy backend with
 * a hotplug script uses it, and libxl's vdev -> devid numbering. Pure
 * functions, no xenstore, so a unit test can drive them with hostile
 * strings. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xensim.h"

/* Drive letters decode as bijective base 26 ("a" 0, "z" 25, "aa" 26), an
 * optional partition follows without leading zeroes. Returns 1 on match. */
static int vdev_letters_match(const char *s, const char *prefix, long max_disk,
			      long max_part, long *ret_disk, long *ret_part)
{
	size_t plen = strlen(prefix);
	const char *p;
	long disk = -1, part;
	char *end;

	if (strncmp(s, prefix, plen) != 0)
		return 0;
	for (p = s + plen; *p >= 'a' && *p <= 'z'; p++) {
		disk = (disk + 1) * 26 + (*p - 'a');
		if (disk > max_disk)
			return 0;
	}
	/* libxl lets a bare "xvd" through as disk -1; nobody means that. */
	if (disk < 0)
		return 0;
	if (*p == '\0') {
		part = 0;
	} else {
		if (*p < '1' || *p > '9')
			return 0;
		errno = 0;
		part = strtol(p, &end, 10);
		if (errno || *end || part > max_part)
			return 0;
	}
	*ret_disk = disk;
	*ret_part = part;
	return 1;
}

/* "d<disk>p<part>", decimal digits only. */
static int vdev_dp_match(const char *s, long *ret_disk, long *ret_part)
{
	unsigned long disk, part;
	char *end;

	if (s[0] != 'd' || !isdigit((unsigned char)s[1]))
		return 0;
	errno = 0;
	disk = strtoul(s + 1, &end, 10);
	if (errno || *end != 'p' || !isdigit((unsigned char)end[1]))
		return 0;
	part = strtoul(end + 1, &end, 10);
	if (errno || *end || disk >= (1UL << 20) || part >= 256)
		return 0;
	*ret_disk = (long)disk;
	*ret_part = (long)part;
	return 1;
}

int xensim_vdev_to_devid(const char *vdev, uint32_t *ret)
{
	long disk, part;
	unsigned long ul;
	char *end;

	if (!vdev || !*vdev)
		return -EINVAL;
	if (vdev_dp_match(vdev, &disk, &part) ||
	    vdev_letters_match(vdev, "xvd", (1L << 20) - 1, 255, &disk, &part)) {
		if (disk <= 15 && part <= 15)
			*ret = (202u << 8) | (uint32_t)(disk << 4) | (uint32_t)part;
		else
			*ret = (1u << 28) | (uint32_t)(disk << 8) | (uint32_t)part;
		return 0;
	}
	/* A plain number is taken as the devid itself (any base strtoul knows). */
	if (isdigit((unsigned char)vdev[0])) {
		errno = 0;
		ul = strtoul(vdev, &end, 0);
		if (errno || *end || ul > INT_MAX)
			return -EINVAL;
		*ret = (uint32_t)ul;
		return 0;
	}
	if (vdev_letters_match(vdev, "hd", 3, 63, &disk, &part)) {
		*ret = ((disk < 2 ? 3u : 22u) << 8) | (uint32_t)((disk & 1) << 6) |
		       (uint32_t)part;
		return 0;
	}
	if (vdev_letters_match(vdev, "sd", 15, 15, &disk, &part)) {
		*ret = (8u << 8) | (uint32_t)(disk << 4) | (uint32_t)part;
		return 0;
	}
	return -EINVAL;
}

/* Positional parameters, in the order xl assigns bare words to them. */
enum disk_pos { POS_TARGET, POS_FORMAT, POS_VDEV, POS_ACCESS, POS_COUNT };
static const char *const pos_names[POS_COUNT] = {
	"target", "format", "vdev", "access"
};

struct disk_parse {
	struct xensim_disk *d;
	bool pos_set[POS_COUNT];
	bool devtype_set, script_set, discard_set, trusted_set, backend_set;
	bool backendtype_set, specification_set, dio_set;
	char *err;
	size_t errlen;
};

static int disk_err(struct disk_parse *dp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int disk_err(struct disk_parse *dp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dp->err, dp->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int disk_once(struct disk_parse *dp, bool *set, const char *name)
{
	if (*set)
		return disk_err(dp, "'%s' given more than once", name);
	*set = true;
	return 0;
}

static int disk_strdup(struct disk_parse *dp, char **dst, const char *val)
{
	char *s = strdup(val);

	if (!s)
		return disk_err(dp, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

/* Only raw images reach a phy backend; the deprecated "fmt:" prefixes on a
 * target name the format too. */
static int disk_format(struct disk_parse *dp, const char *val)
{
	if (*val == '\0' || strcmp(val, "raw") == 0)
		return 0;
	return disk_err(dp, "format '%s' is not supported: a script= disk uses "
			"the phy backend, which takes raw only", val);
}

static int disk_target(struct disk_parse *dp, const char *val)
{
	static const char *const raw_prefixes[] = {
		"tap:aio:", "phy:", "file:", "raw:", "aio:",
	};
	static const char *const other_prefixes[] = {
		"tap:", "qcow:", "qcow2:", "vhd:", "qed:", "tapdisk:", "ioemu:",
	};
	size_t i, n;

	for (i = 0; i < sizeof(raw_prefixes) / sizeof(raw_prefixes[0]); i++) {
		n = strlen(raw_prefixes[i]);
		if (strncmp(val, raw_prefixes[i], n) == 0) {
			/* The prefix stands in for the format positional. */
			if (!dp->pos_set[POS_FORMAT])
				dp->pos_set[POS_FORMAT] = true;
			val += n;
			break;
		}
	}
	for (i = 0; i < sizeof(other_prefixes) / sizeof(other_prefixes[0]); i++) {
		n = strlen(other_prefixes[i]);
		if (strncmp(val, other_prefixes[i], n) == 0)
			return disk_err(dp, "target prefix '%.*s' is not supported "
					"(raw images only)", (int)n, val);
	}
	return disk_strdup(dp, &dp->d->target, val);
}

static int disk_vdev(struct disk_parse *dp, const char *val)
{
	uint32_t devid;
	const char *colon = strchr(val, ':');
	char *v;
	int r;

	v = strdup(val);
	if (!v)
		return disk_err(dp, "out of memory");
	/* Deprecated "hdc:cdrom" / "xvda:disk". */
	if (colon) {
		v[colon - val] = '\0';
		if (strcmp(colon + 1, "cdrom") == 0)
			dp->d->cdrom = true;
		else if (strcmp(colon + 1, "disk") != 0) {
			free(v);
			return disk_err(dp, "bad vdev suffix in '%s' (only :cdrom "
					"or :disk)", val);
		}
	}
	r = xensim_vdev_to_devid(v, &devid);
	if (r < 0) {
		r = disk_err(dp, "invalid vdev '%s' (want xvdX[N], hdX[N], "
			     "sdX[N], dNpM or a device number)", v);
		free(v);
		return r;
	}
	free(dp->d->vdev);
	dp->d->vdev = v;
	return 0;
}

static int disk_access(struct disk_parse *dp, const char *val)
{
	if (strcmp(val, "r") == 0 || strcmp(val, "ro") == 0)
		dp->d->readwrite = false;
	else if (strcmp(val, "w") == 0 || strcmp(val, "rw") == 0 || *val == '\0')
		dp->d->readwrite = true;
	else
		return disk_err(dp, "bad access '%s' (want r, ro, w or rw)", val);
	return 0;
}

static int disk_positional(struct disk_parse *dp, enum disk_pos pos,
			   const char *val)
{
	if (dp->pos_set[pos])
		return disk_err(dp, "'%s' given more than once (bare words "
				"fill target, format, vdev, access in that "
				"order)", pos_names[pos]);
	dp->pos_set[pos] = true;
	switch (pos) {
	case POS_TARGET: return disk_target(dp, val);
	case POS_FORMAT: return disk_format(dp, val);
	case POS_VDEV: return *val ? disk_vdev(dp, val) : 0;
	case POS_ACCESS: return disk_access(dp, val);
	default: return disk_err(dp, "internal error");
	}
}

/* colo, colo-host=, colo-port=, colo-export=, active-disk=, hidden-disk= */
static bool is_colo(const char *word)
{
	return strcmp(word, "colo") == 0 || strncmp(word, "colo-", 5) == 0 ||
	       strcmp(word, "active-disk") == 0 ||
	       strcmp(word, "hidden-disk") == 0;
}

/* Bare keywords; returns 1 if word was one. */
static int disk_flag(struct disk_parse *dp, const char *word)
{
	struct xensim_disk *d = dp->d;
	int r = 0;

	if (strcmp(word, "cdrom") == 0) {
		r = disk_once(dp, &dp->devtype_set, "devtype");
		d->cdrom = true;
	} else if (strcmp(word, "direct-io-safe") == 0) {
		r = disk_once(dp, &dp->dio_set, word);
		d->direct_io_safe = true;
	} else if (strcmp(word, "discard") == 0 || strcmp(word, "no-discard") == 0) {
		r = disk_once(dp, &dp->discard_set, "discard");
		d->discard = word[0] == 'd';
	} else if (strcmp(word, "trusted") == 0 || strcmp(word, "untrusted") == 0) {
		r = disk_once(dp, &dp->trusted_set, "trusted");
		d->trusted = word[0] == 't';
	} else if (is_colo(word)) {
		return disk_err(dp, "COLO disks are not supported");
	} else {
		return 0;
	}
	return r < 0 ? r : 1;
}

static int disk_keyword(struct disk_parse *dp, const char *key, const char *val)
{
	struct xensim_disk *d = dp->d;
	int r;

	if (strcmp(key, "format") == 0)
		return disk_positional(dp, POS_FORMAT, val);
	if (strcmp(key, "vdev") == 0) {
		if (!*val)
			return disk_err(dp, "empty vdev");
		return disk_positional(dp, POS_VDEV, val);
	}
	if (strcmp(key, "access") == 0)
		return disk_positional(dp, POS_ACCESS, val);
	if (strcmp(key, "devtype") == 0) {
		r = disk_once(dp, &dp->devtype_set, "devtype");
		if (r < 0)
			return r;
		if (strcmp(val, "cdrom") == 0)
			d->cdrom = true;
		else if (strcmp(val, "disk") != 0)
			return disk_err(dp, "bad devtype '%s' (want disk or cdrom)", val);
		return 0;
	}
	if (strcmp(key, "script") == 0) {
		r = disk_once(dp, &dp->script_set, "script");
		if (r < 0)
			return r;
		if (!*val)
			return disk_err(dp, "empty script");
		return disk_strdup(dp, &d->script, val);
	}
	if (strcmp(key, "backendtype") == 0) {
		r = disk_once(dp, &dp->backendtype_set, key);
		if (r < 0)
			return r;
		if (strcmp(val, "phy") != 0)
			return disk_err(dp, "backendtype '%s' is not supported "
					"(xensim only attaches phy disks)", val);
		return 0;
	}
	if (strcmp(key, "backend") == 0) {
		r = disk_once(dp, &dp->backend_set, key);
		if (r < 0)
			return r;
		if (strcmp(val, "0") != 0 && strcmp(val, "Domain-0") != 0)
			return disk_err(dp, "backend '%s' is not supported "
					"(driver domains are not simulated)", val);
		return 0;
	}
	if (strcmp(key, "specification") == 0) {
		r = disk_once(dp, &dp->specification_set, key);
		if (r < 0)
			return r;
		if (strcmp(val, "xen") != 0)
			return disk_err(dp, "specification '%s' is not supported "
					"(xen only)", val);
		return 0;
	}
	if (is_colo(key))
		return disk_err(dp, "COLO disks are not supported");
	if (strcmp(key, "discard") == 0 || strcmp(key, "direct-io-safe") == 0 ||
	    strcmp(key, "trusted") == 0 || strcmp(key, "cdrom") == 0)
		return disk_err(dp, "'%s' is a flag and takes no value", key);
	return disk_err(dp, "unknown disk parameter '%s'", key);
}

/* xl gives target= the rest of the spec. A rest that reads like more
 * parameters ("/img, access=rw") is a misplaced target=, not a file name:
 * refuse it rather than silently attach "/img, access=rw". */
static bool target_swallows_keys(const char *rest)
{
	static const char *const keys[] = {
		"vdev=", "access=", "script=", "devtype=", "format=",
		"backendtype=", "backend=", "specification=",
	};
	const char *c, *w;
	size_t i;

	for (c = strchr(rest, ','); c; c = strchr(c + 1, ',')) {
		for (w = c + 1; isspace((unsigned char)*w); w++)
			;
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strncmp(w, keys[i], strlen(keys[i])) == 0)
				return true;
	}
	return false;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int xensim_disk_parse(const char *spec, struct xensim_disk *d, char *err,
		      size_t errlen)
{
	struct disk_parse dp = { .d = d, .err = err, .errlen = errlen };
	char *copy, *tok, *next, *eq, *word;
	int r = 0, pos;

	memset(d, 0, sizeof(*d));
	d->readwrite = true;
	d->discard = -1;
	d->trusted = -1;
	if (errlen)
		err[0] = '\0';

	copy = strdup(spec);
	if (!copy)
		return disk_err(&dp, "out of memory");
	for (tok = copy; tok; tok = next) {
		next = strchr(tok, ',');
		/* "target=" swallows the rest of the spec, commas included. */
		word = tok;
		while (isspace((unsigned char)*word))
			word++;
		if (strncmp(word, "target=", 7) == 0) {
			if (target_swallows_keys(word + 7)) {
				r = disk_err(&dp, "target= must come last: it takes "
					     "the rest of the spec, commas "
					     "included, so here it would be "
					     "'%s'", word + 7);
				goto out;
			}
			/* xl takes target=VALUE as it is: the deprecated
			 * "fmt:" prefixes are read on a positional target
			 * only, so "target=qcow2:/img" reaches the hotplug
			 * script whole. */
			if (dp.pos_set[POS_TARGET]) {
				r = disk_err(&dp, "'target' given more than once (bare "
					     "words fill target, format, vdev, access in "
					     "that order)");
				goto out;
			}
			dp.pos_set[POS_TARGET] = true;
			r = disk_strdup(&dp, &d->target, word + 7);
			if (r < 0)
				goto out;
			break;
		}
		if (next)
			*next++ = '\0';
		word = trim(tok);
		eq = strchr(word, '=');
		if (eq) {
			*eq = '\0';
			r = disk_keyword(&dp, trim(word), trim(eq + 1));
			if (r < 0)
				goto out;
			continue;
		}
		r = disk_flag(&dp, word);
		if (r < 0)
			goto out;
		if (r == 1)
			continue;
		for (pos = 0; pos < POS_COUNT && dp.pos_set[pos]; pos++)
			;
		if (pos == POS_COUNT) {
			r = disk_err(&dp, "unexpected '%s': target, format, vdev "
				     "and access are all given already", word);
			goto out;
		}
		r = disk_positional(&dp, pos, word);
		if (r < 0)
			goto out;
	}

	/* What xlu_disk_parse and libxl__device_disk_setdefault settle. */
	if (d->cdrom) {
		d->removable = true;
		d->readwrite = false;
	}
	if (!d->vdev) {
		r = disk_err(&dp, "no vdev specified");
		goto out;
	}
	if ((!d->target || !*d->target) && !d->cdrom) {
		r = disk_err(&dp, "no target specified (and device not removable)");
		goto out;
	}
	if (!d->target && (r = disk_strdup(&dp, &d->target, "")) < 0)
		goto out;
	if (d->discard < 0)
		d->discard = d->readwrite;
	r = 0;
out:
	free(copy);
	if (r < 0)
		xensim_disk_done(d);
	return r;
}

void xensim_disk_done(struct xensim_disk *d)
{
	if (!d)
		return;
	free(d->target);
	free(d->vdev);
	free(d->script);
	d->target = d->vdev = d->script = NULL;
}
