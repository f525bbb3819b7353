/* xenstore node permissions: the wire's string form ("n0", "r5", "w3",
 * "b7") and xenstored's access rule: privileged callers and the owner get
 * everything; otherwise the first entry naming the caller decides, else
 * the first entry (owner and default for everyone else). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xensimd.h"

static int xs_perm_parse(const char *s, struct xs_perm *ret)
{
	unsigned long id;
	unsigned int mode;
	char *end;

	switch (s[0]) {
	case 'n': mode = 0; break;
	case 'r': mode = XS_PERM_READ; break;
	case 'w': mode = XS_PERM_WRITE; break;
	case 'b': mode = XS_PERM_READ | XS_PERM_WRITE; break;
	default: return -EINVAL;
	}
	/* strtoul would accept signs and blanks; the wire has digits only. */
	if (s[1] < '0' || s[1] > '9')
		return -EINVAL;
	errno = 0;
	id = strtoul(s + 1, &end, 10);
	if (errno || *end || id > UINT16_MAX)
		return -EINVAL;
	ret->domid = id;
	ret->mode = mode;
	return 0;
}

int xs_perms_parse(const char *buf, size_t len, unsigned int nr, struct xs_perms *ret)
{
	struct xs_perm *v;
	size_t off = 0;
	unsigned int i;
	int r = -EINVAL;

	if (nr == 0)
		return -EINVAL;
	v = calloc(nr, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < nr; i++) {
		const char *s = buf + off;
		const char *nul = memchr(s, '\0', len - off);

		if (!nul)
			goto fail;
		r = xs_perm_parse(s, &v[i]);
		if (r < 0)
			goto fail;
		off += nul - s + 1;
	}
	ret->nr = nr;
	ret->v = v;
	return 0;

fail:
	free(v);
	return r < 0 ? r : -EINVAL;
}

size_t xs_perms_format(const struct xs_perms *p, char *buf, size_t size)
{
	static const char letters[] = "nrwb";
	size_t need = 0;
	unsigned int i;

	for (i = 0; i < p->nr; i++) {
		char one[16];
		int n = snprintf(one, sizeof(one), "%c%u", letters[p->v[i].mode & 3],
				 p->v[i].domid);

		if (need + n + 1 <= size)
			memcpy(buf + need, one, n + 1);
		need += n + 1;
	}
	return need;
}

int xs_perms_copy(const struct xs_perms *src, struct xs_perms *ret)
{
	struct xs_perm *v = malloc(src->nr * sizeof(*v));

	if (!v)
		return -ENOMEM;
	memcpy(v, src->v, src->nr * sizeof(*v));
	ret->nr = src->nr;
	ret->v = v;
	return 0;
}

void xs_perms_done(struct xs_perms *p)
{
	if (!p)
		return;
	free(p->v);
	p->v = NULL;
	p->nr = 0;
}

unsigned int xs_perms_for(const struct xs_perms *p, const struct xs_caller *c)
{
	unsigned int i;

	if (c->privileged || p->v[0].domid == c->domid)
		return XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER;
	for (i = 1; i < p->nr; i++)
		if (p->v[i].domid == c->domid)
			return p->v[i].mode;
	return p->v[0].mode;
}
