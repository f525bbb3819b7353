/* xenstore watches: registration (relative paths are reported back
 * relative, "@..." names are the special domain events) and matching. A
 * change at a node fires watches on it and on its ancestors; the nodes
 * below a removed one fire only watches registered exactly on them. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#include "log.h"
#include "xensimd.h"

int xs_watch_new(const struct xs_caller *c, const char *path, const char *token,
		 struct xs_watch **ret)
{
	struct xs_watch *w = calloc(1, sizeof(*w));
	int r = -ENOMEM;

	if (!w)
		return -ENOMEM;
	if (path[0] == '@') {
		r = -EINVAL;
		if (strlen(path) > XENSTORE_REL_PATH_MAX)
			goto fail;
		r = -ENOMEM;
		w->path = strdup(path);
		if (!w->path)
			goto fail;
	} else {
		r = xs_path_canonical(c, path, &w->path);
		if (r < 0)
			goto fail;
		if (path[0] != '/')
			w->strip = strlen(w->path) - strlen(path);
	}
	r = -ENOMEM;
	w->token = strdup(token);
	if (!w->token)
		goto fail;
	*ret = w;
	return 0;

fail:
	xs_watch_free(w);
	return r;
}

void xs_watch_free(struct xs_watch *w)
{
	if (!w)
		return;
	free(w->path);
	free(w->token);
	free(w);
}

const char *xs_watch_match(const struct xs_watch *w, const char *path, bool exact)
{
	if (path[0] == '@' || w->path[0] == '@' || exact) {
		if (strcmp(path, w->path) != 0)
			return NULL;
	} else if (!xs_path_is_below(path, w->path)) {
		return NULL;
	}
	return path + w->strip;
}

void xs_watch_send(struct xs_conn *conn, const struct xs_watch *w, const char *epath)
{
	size_t plen = strlen(epath) + 1, tlen = strlen(w->token) + 1;
	char buf[XENSTORE_PAYLOAD_MAX];

	/* A long token on a deep node could exceed what a client accepts. */
	if (plen + tlen > sizeof(buf)) {
		log_warn("xenstore: event %s too long for watch token, dropped", epath);
		return;
	}
	memcpy(buf, epath, plen);
	memcpy(buf + plen, w->token, tlen);
	xs_conn_send(conn, XS_WATCH_EVENT, 0, 0, buf, plen + tlen);
}
