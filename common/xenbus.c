/* The xenbus vocabulary's code: state names, the strict number parser,
 * and libxenstore's bool/NULL + errno turned into -errno. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xenbus.h>

#include "util.h"
#include "xenbus.h"

const char *xenbus_state_name(unsigned int state)
{
	static const char *const names[] = {
		[XenbusStateUnknown] = "Unknown",
		[XenbusStateInitialising] = "Initialising",
		[XenbusStateInitWait] = "InitWait",
		[XenbusStateInitialised] = "Initialised",
		[XenbusStateConnected] = "Connected",
		[XenbusStateClosing] = "Closing",
		[XenbusStateClosed] = "Closed",
		[XenbusStateReconfiguring] = "Reconfiguring",
		[XenbusStateReconfigured] = "Reconfigured",
	};

	if (state >= ARRAY_SIZE(names))
		return "Invalid";
	return names[state];
}

int xenbus_parse_uint(const char *s, unsigned long long max, unsigned long long *ret_val)
{
	unsigned long long v = 0;
	const char *p;

	if (!*s || strlen(s) > 20)
		return -EINVAL;
	for (p = s; *p; p++) {
		unsigned int digit;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		digit = (unsigned int)(*p - '0');
		if (v > max / 10 || (v == max / 10 && digit > max % 10))
			return -ERANGE;
		v = v * 10 + digit;
	}
	*ret_val = v;
	return 0;
}

static int xenstore_errno(void)
{
	return errno ? -errno : -EIO;
}

static char *xenstore_join(const char *dir, const char *key)
{
	char *p;

	if (!key)
		return strdup(dir);
	if (asprintf(&p, "%s/%s", dir, key) < 0)
		return NULL;
	return p;
}

int xenstore_read(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		  const char *key, char **ret_val)
{
	unsigned int len;
	char *path, *val;
	int r = 0;

	path = xenstore_join(dir, key);
	if (!path)
		return -ENOMEM;
	/* libxenstore NUL-terminates what it returns. */
	val = xs_read(xs, t, path, &len);
	if (!val) {
		r = xenstore_errno();
		goto out;
	}
	if (strlen(val) != len) {	/* embedded NUL: garbage */
		free(val);
		r = -EINVAL;
		goto out;
	}
	*ret_val = val;
out:
	free(path);
	return r;
}

int xenstore_read_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		       const char *key, unsigned long long max, unsigned long long *ret_val)
{
	char *val;
	int r;

	r = xenstore_read(xs, t, dir, key, &val);
	if (r < 0)
		return r;
	r = xenbus_parse_uint(val, max, ret_val);
	free(val);
	return r;
}

int xenstore_write(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		   const char *key, const char *val)
{
	char *path;
	int r = 0;

	path = xenstore_join(dir, key);
	if (!path)
		return -ENOMEM;
	if (!xs_write(xs, t, path, val, strlen(val)))
		r = xenstore_errno();
	free(path);
	return r;
}

int xenstore_vprintf(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		     const char *key, const char *fmt, va_list ap)
{
	char *val;
	int r;

	if (vasprintf(&val, fmt, ap) < 0)
		return -ENOMEM;
	r = xenstore_write(xs, t, dir, key, val);
	free(val);
	return r;
}

int xenstore_printf(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		    const char *key, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = xenstore_vprintf(xs, t, dir, key, fmt, ap);
	va_end(ap);
	return r;
}

int xenstore_rm(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key)
{
	char *path;
	int r = 0;

	path = xenstore_join(dir, key);
	if (!path)
		return -ENOMEM;
	if (!xs_rm(xs, t, path) && errno != ENOENT)
		r = xenstore_errno();
	free(path);
	return r;
}
