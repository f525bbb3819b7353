/* xenstore helpers for xensim, on common/xenbus.c's -errno calls: path
 * based reads and writes, permissions, libxl's transaction retry and path
 * cleanup, and waiting for a xenbus state with a watch (never by polling
 * the node). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "xensim.h"

/* libxl retries forever; a toolstack that loses to another writer a
 * thousand times in a row has a bigger problem to report. */
#define XSIM_TXN_RETRIES	1000

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

/* NULL with errno set, as libxenstore's own calls. */
char *xsim_read(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
	char *val;
	int r = xenstore_read(xs, t, path, NULL, &val);

	if (r < 0) {
		errno = -r;
		return NULL;
	}
	return val;
}

int xsim_read_int(struct xs_handle *xs, xs_transaction_t t, const char *path,
		  long *ret)
{
	char *v = xsim_read(xs, t, path), *end;
	long n;
	int r;

	if (!v)
		return neg_errno();
	errno = 0;
	n = strtol(v, &end, 10);
	r = (errno || end == v || *end) ? -EINVAL : 0;
	free(v);
	if (r == 0)
		*ret = n;
	return r;
}

int xsim_write(struct xs_handle *xs, xs_transaction_t t, const char *path,
	       const char *value)
{
	return xenstore_write(xs, t, path, NULL, value);
}

int xsim_set_perms(struct xs_handle *xs, xs_transaction_t t, const char *path,
		   struct xs_permissions *perms, unsigned int n)
{
	return xs_set_permissions(xs, t, path, perms, n) ? 0 : neg_errno();
}

int xsim_mknod(struct xs_handle *xs, xs_transaction_t t, const char *path,
	       struct xs_permissions *perms, unsigned int n)
{
	int r = xsim_write(xs, t, path, "");

	return r < 0 ? r : xsim_set_perms(xs, t, path, perms, n);
}

int xsim_rm(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
	return xenstore_rm(xs, t, path, NULL);
}

int xsim_directory(struct xs_handle *xs, xs_transaction_t t, const char *path,
		   char ***ret_names, unsigned int *ret_count)
{
	unsigned int n = 0;
	char **names = xs_directory(xs, t, path, &n);

	if (!names) {
		if (errno != ENOENT)
			return neg_errno();
		n = 0;
	}
	*ret_names = names;
	*ret_count = n;
	return 0;
}

int xsim_path_cleanup(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
	char *p = strdup(path), *slash, *val, **kids = NULL;
	unsigned int n;
	int r;

	if (!p)
		return -ENOMEM;
	r = xsim_rm(xs, t, p);
	while (r == 0 && (slash = strrchr(p, '/')) && slash != p) {
		*slash = '\0';
		val = xsim_read(xs, t, p);
		if (!val)
			break;
		n = *val != '\0';
		free(val);
		if (n)
			break;
		r = xsim_directory(xs, t, p, &kids, &n);
		free(kids);
		if (r < 0 || n)
			break;
		r = xsim_rm(xs, t, p);
	}
	free(p);
	return r;
}

int xsim_transact(struct xs_handle *xs, xsim_txn_fn *fn, void *opaque)
{
	xs_transaction_t t;
	int r, tries;

	for (tries = 0; tries < XSIM_TXN_RETRIES; tries++) {
		t = xs_transaction_start(xs);
		if (t == XBT_NULL)
			return neg_errno();
		r = fn(xs, t, opaque);
		if (r < 0) {
			xs_transaction_end(xs, t, true);
			return r;
		}
		if (xs_transaction_end(xs, t, false))
			return r;
		if (errno != EAGAIN)
			return neg_errno();
	}
	return -EAGAIN;
}

int64_t xsim_now_ms(void)
{
	return (int64_t)clock_mono_ms();
}

/* Drains every queued watch event; xenstore may coalesce events, so the
 * caller re-reads the node instead of counting them. */
static void watch_drain(struct xs_handle *xs)
{
	char **ev;

	while ((ev = xs_check_watch(xs)))
		free(ev);
}

int xsim_wait_state(struct xs_handle *xs, const char *path, long want,
		    int64_t deadline_ms, long *ret_last)
{
	struct pollfd pfd;
	char token[32];
	long cur = -1;
	int64_t left;
	int r, fd;

	snprintf(token, sizeof(token), "xensim-%p", (void *)&pfd);
	if (!xs_watch(xs, path, token))
		return neg_errno();
	fd = xs_fileno(xs);
	if (fd < 0) {
		r = -EIO;
		goto out;
	}
	for (;;) {
		/* Level-triggered: the node's value decides, not the event. */
		r = xsim_read_int(xs, XBT_NULL, path, &cur);
		if (r < 0 && r != -EINVAL)
			goto out;	/* -ENOENT: the node vanished */
		if (r == 0 && cur == want)
			goto out;
		left = deadline_ms - xsim_now_ms();
		if (left <= 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR) {
			r = -errno;
			goto out;
		}
		if (r > 0)
			watch_drain(xs);
	}
out:
	xs_unwatch(xs, path, token);
	watch_drain(xs);
	if (ret_last)
		*ret_last = cur;
	return r < 0 ? r : 0;
}
