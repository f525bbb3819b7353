/* The xenstore node store: nodes with value, permissions and a generation
 * (bumped when the node or its child list changes; transactions compare it,
 * DIRECTORY_PART reports it). Operations apply xenstored's permission rules
 * and guest quotas, note touched paths for transactions and report changes
 * for watches. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#include "xensimd.h"

struct xs_node {
	char *name;			/* last component; "" for the root */
	char *value;
	size_t len;
	struct xs_perms perms;
	struct xs_node *parent;
	struct xs_node **kids;		/* in creation order, like xenstored */
	unsigned int nr_kids, cap_kids;
	uint64_t gen;
};

struct xs_owner {
	uint32_t domid;
	unsigned int nodes;
};

struct xs_tree {
	struct xs_node *root;
	struct xs_owner *owners;
	unsigned int nr_owners;
};

/* Shared by all trees so a generation never repeats, even across copies. */
static uint64_t xs_gen_last;

static uint64_t xs_gen_next(void)
{
	return ++xs_gen_last;
}

static bool xs_path_char_is_valid(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '/' || c == '_' || c == '@';
}

int xs_path_canonical(const struct xs_caller *c, const char *in, char **ret)
{
	size_t inlen = strlen(in);
	unsigned int domid, off = 0;
	char *p;
	size_t i, len;

	if (in[0] == '/') {
		if (inlen > XENSTORE_ABS_PATH_MAX)
			return -EINVAL;
		p = strdup(in);
	} else {
		if (inlen > XENSTORE_REL_PATH_MAX)
			return -EINVAL;
		if (asprintf(&p, "/local/domain/%u/%s", c->domid, in) < 0)
			p = NULL;
	}
	if (!p)
		return -ENOMEM;
	len = strlen(p);
	for (i = 0; i < len; i++)
		if (!xs_path_char_is_valid(p[i]))
			goto inval;
	if (strstr(p, "//") || (len > 1 && p[len - 1] == '/'))
		goto inval;
	/* A guest's own subtree is limited like xenstored's path quota. */
	if (!c->privileged && sscanf(p, "/local/domain/%5u/%n", &domid, &off) == 1 &&
	    off && len - off > XENSTORE_REL_PATH_MAX)
		goto inval;
	*ret = p;
	return 0;

inval:
	free(p);
	return -EINVAL;
}

bool xs_path_is_below(const char *path, const char *parent)
{
	size_t n = strlen(parent);

	if (strcmp(parent, "/") == 0)
		return path[0] == '/';
	return strncmp(path, parent, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Ownership counts back the node quota. */
static struct xs_owner *xs_tree_owner(struct xs_tree *t, uint32_t domid, bool add)
{
	struct xs_owner *o;
	unsigned int i;

	for (i = 0; i < t->nr_owners; i++)
		if (t->owners[i].domid == domid)
			return &t->owners[i];
	if (!add)
		return NULL;
	o = realloc(t->owners, (t->nr_owners + 1) * sizeof(*o));
	if (!o)
		return NULL;
	t->owners = o;
	o = &t->owners[t->nr_owners++];
	o->domid = domid;
	o->nodes = 0;
	return o;
}

unsigned int xs_tree_owned(const struct xs_tree *t, uint32_t domid)
{
	struct xs_owner *o = xs_tree_owner((struct xs_tree *)t, domid, false);

	return o ? o->nodes : 0;
}

static int xs_tree_account(struct xs_tree *t, uint32_t domid, int delta)
{
	struct xs_owner *o = xs_tree_owner(t, domid, delta > 0);

	if (!o)
		return delta > 0 ? -ENOMEM : 0;
	o->nodes += delta;
	return 0;
}

static void xs_node_free(struct xs_node *n)
{
	unsigned int i;

	if (!n)
		return;
	for (i = 0; i < n->nr_kids; i++)
		xs_node_free(n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n->value);
	xs_perms_done(&n->perms);
	free(n);
}

static struct xs_node *xs_node_new(const char *name, size_t namelen,
				   const struct xs_perms *perms)
{
	struct xs_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = strndup(name, namelen);
	if (!n->name || xs_perms_copy(perms, &n->perms) < 0) {
		xs_node_free(n);
		return NULL;
	}
	n->gen = xs_gen_next();
	return n;
}

static int xs_node_add_kid(struct xs_node *parent, struct xs_node *kid)
{
	if (parent->nr_kids == parent->cap_kids) {
		unsigned int cap = parent->cap_kids ? 2 * parent->cap_kids : 4;
		struct xs_node **k = realloc(parent->kids, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		parent->kids = k;
		parent->cap_kids = cap;
	}
	parent->kids[parent->nr_kids++] = kid;
	kid->parent = parent;
	parent->gen = xs_gen_next();
	return 0;
}

static void xs_node_del_kid(struct xs_node *parent, struct xs_node *kid)
{
	unsigned int i;

	for (i = 0; i < parent->nr_kids; i++)
		if (parent->kids[i] == kid)
			break;
	if (i == parent->nr_kids)
		return;
	memmove(&parent->kids[i], &parent->kids[i + 1],
		(parent->nr_kids - i - 1) * sizeof(*parent->kids));
	parent->nr_kids--;
	parent->gen = xs_gen_next();
}

static struct xs_node *xs_node_kid(const struct xs_node *n, const char *name, size_t len)
{
	unsigned int i;

	for (i = 0; i < n->nr_kids; i++)
		if (strncmp(n->kids[i]->name, name, len) == 0 && n->kids[i]->name[len] == '\0')
			return n->kids[i];
	return NULL;
}

/* Walks path as far as nodes exist; *ret_end is where in path the deepest
 * existing node's name ends (1 for the root). */
static struct xs_node *xs_tree_walk(const struct xs_tree *t, const char *path, size_t *ret_end)
{
	struct xs_node *n = t->root;
	const char *p = path + 1;
	size_t end = 1;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		struct xs_node *k = xs_node_kid(n, p, len);

		if (!k)
			break;
		n = k;
		end = p + len - path;
		p += len;
		if (*p == '/')
			p++;
	}
	if (ret_end)
		*ret_end = end;
	return n;
}

static struct xs_node *xs_tree_lookup(const struct xs_tree *t, const char *path)
{
	size_t end;
	struct xs_node *n = xs_tree_walk(t, path, &end);

	return end == strlen(path) || strcmp(path, "/") == 0 ? n : NULL;
}

uint64_t xs_tree_gen(const struct xs_tree *t, const char *path)
{
	struct xs_node *n = xs_tree_lookup(t, path);

	return n ? n->gen : 0;
}

static void xs_op_note(const struct xs_op *op, const char *path, const struct xs_node *n)
{
	if (op->note)
		op->note(op->note_opaque, path, n ? n->gen : 0);
}

/* Same as note, for a path given by its length within a longer one. */
static void xs_op_note_prefix(const struct xs_op *op, const char *path, size_t len,
			      const struct xs_node *n)
{
	char *p;

	if (!op->note)
		return;
	p = strndup(path, len);
	if (p)
		op->note(op->note_opaque, p, n ? n->gen : 0);
	free(p);
}

static void xs_op_change(const struct xs_op *op, const char *path,
			 const struct xs_perms *perms, bool exact)
{
	if (op->change)
		op->change(op->change_opaque, path, perms, exact);
}

static bool xs_op_checks(const struct xs_op *op)
{
	return !op->replay && !op->caller.privileged;
}

/* xenstored hides whether a node exists from callers that may not see its
 * nearest existing ancestor: then the answer is EACCES, not ENOENT. */
static int xs_tree_missing_errno(const struct xs_op *op, const struct xs_node *ancestor,
				 unsigned int perm)
{
	if (op->replay || (xs_perms_for(&ancestor->perms, &op->caller) & perm))
		return -ENOENT;
	return -EACCES;
}

/* Finds path and checks perm on it; notes it for a transaction. */
static int xs_tree_get(struct xs_tree *t, const struct xs_op *op, const char *path,
		       unsigned int perm, struct xs_node **ret)
{
	struct xs_node *n = xs_tree_lookup(t, path);

	xs_op_note(op, path, n);
	if (!n)
		return xs_tree_missing_errno(op, xs_tree_walk(t, path, NULL), perm);
	if (!op->replay && (xs_perms_for(&n->perms, &op->caller) & perm) != perm)
		return -EACCES;
	*ret = n;
	return 0;
}

int xs_tree_read(struct xs_tree *t, const struct xs_op *op, const char *path,
		 const char **ret_val, size_t *ret_len)
{
	struct xs_node *n;
	int r = xs_tree_get(t, op, path, XS_PERM_READ, &n);

	if (r < 0)
		return r;
	*ret_val = n->value ? n->value : "";
	*ret_len = n->len;
	return 0;
}

/* Creates the missing nodes of path below its deepest existing ancestor,
 * with that ancestor's permissions (owned by an unprivileged creator). */
static int xs_tree_create(struct xs_tree *t, const struct xs_op *op, const char *path,
			  struct xs_node **ret)
{
	struct xs_node *anc, *n, *first = NULL;
	struct xs_perms perms = { 0 };
	unsigned int nr_new = 0;
	const char *p, *rest;
	size_t end;
	int r;

	anc = xs_tree_walk(t, path, &end);
	xs_op_note_prefix(op, path, end, anc);
	if (!op->replay && !(xs_perms_for(&anc->perms, &op->caller) & XS_PERM_WRITE))
		return -EACCES;
	/* rest: "/name/name..." of the nodes to create; a transaction must
	 * know each was absent, or it would later see its own creation. */
	rest = anc == t->root ? path : path + end;
	for (p = rest; *p; p++) {
		if (*p != '/')
			continue;
		nr_new++;
		if (p != rest)
			xs_op_note_prefix(op, path, p - path, NULL);
	}
	xs_op_note(op, path, NULL);
	if (xs_op_checks(op) &&
	    xs_tree_owned(t, op->caller.domid) + nr_new > XS_QUOTA_NODES)
		return -ENOSPC;
	r = xs_perms_copy(&anc->perms, &perms);
	if (r < 0)
		return r;
	if (!op->caller.privileged)
		perms.v[0].domid = op->caller.domid;
	r = xs_tree_account(t, perms.v[0].domid, 0);
	if (r < 0)
		goto out;

	/* Build the chain off-tree first, so a failure leaves t untouched. */
	n = NULL;
	p = rest;
	while (*p == '/') {
		const char *name = p + 1;
		const char *slash = strchr(name, '/');
		size_t len = slash ? (size_t)(slash - name) : strlen(name);
		struct xs_node *k = xs_node_new(name, len, &perms);

		if (!k || (n && xs_node_add_kid(n, k) < 0)) {
			xs_node_free(k);
			r = -ENOMEM;
			goto fail;
		}
		if (!first)
			first = k;
		n = k;
		p = name + len;
	}
	r = xs_node_add_kid(anc, first);
	if (r < 0)
		goto fail;
	xs_tree_account(t, perms.v[0].domid, nr_new);
	*ret = n;
	goto out;

fail:
	xs_node_free(first);
out:
	xs_perms_done(&perms);
	return r;
}

int xs_tree_write(struct xs_tree *t, const struct xs_op *op, const char *path,
		  const void *val, size_t len)
{
	struct xs_node *n = xs_tree_lookup(t, path);
	char *copy;
	int r;

	if (xs_op_checks(op) && len > XS_QUOTA_VALUE)
		return -ENOSPC;
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, val, len);
	copy[len] = '\0';
	if (n) {
		r = xs_tree_get(t, op, path, XS_PERM_WRITE, &n);
	} else {
		r = xs_tree_create(t, op, path, &n);
	}
	if (r < 0) {
		free(copy);
		return r;
	}
	free(n->value);
	n->value = copy;
	n->len = len;
	n->gen = xs_gen_next();
	xs_op_change(op, path, &n->perms, false);
	return 0;
}

int xs_tree_mkdir(struct xs_tree *t, const struct xs_op *op, const char *path)
{
	struct xs_node *n = xs_tree_lookup(t, path);
	int r;

	if (n)
		return xs_tree_get(t, op, path, XS_PERM_WRITE, &n);
	r = xs_tree_create(t, op, path, &n);
	if (r < 0)
		return r;
	xs_op_change(op, path, &n->perms, false);
	return 0;
}

static void xs_tree_note_subtree(const struct xs_op *op, struct xs_node *n, char *buf,
				 size_t len, size_t size)
{
	unsigned int i;

	xs_op_note(op, buf, n);
	for (i = 0; i < n->nr_kids; i++) {
		size_t nl = strlen(n->kids[i]->name);

		if (len + 1 + nl + 1 > size)
			continue;
		buf[len] = '/';
		memcpy(buf + len + 1, n->kids[i]->name, nl + 1);
		xs_tree_note_subtree(op, n->kids[i], buf, len + 1 + nl, size);
		buf[len] = '\0';
	}
}

/* Fires an exact event for each node below n, then frees the subtree. */
static void xs_tree_drop_subtree(struct xs_tree *t, const struct xs_op *op,
				 struct xs_node *n, char *buf, size_t len, size_t size,
				 bool top)
{
	unsigned int i;

	for (i = 0; i < n->nr_kids; i++) {
		size_t nl = strlen(n->kids[i]->name);

		if (len + 1 + nl + 1 > size)
			continue;
		buf[len] = '/';
		memcpy(buf + len + 1, n->kids[i]->name, nl + 1);
		xs_tree_drop_subtree(t, op, n->kids[i], buf, len + 1 + nl, size, false);
		buf[len] = '\0';
	}
	if (!top)
		xs_op_change(op, buf, &n->perms, true);
	xs_tree_account(t, n->perms.v[0].domid, -1);
	n->nr_kids = 0;		/* kids already freed above */
	xs_node_free(n);
}

int xs_tree_rm(struct xs_tree *t, const struct xs_op *op, const char *path)
{
	/* Canonical paths are at most XENSTORE_ABS_PATH_MAX; deeper node
	 * names cannot exist. */
	char buf[XENSTORE_ABS_PATH_MAX + 2];
	struct xs_node *n = xs_tree_lookup(t, path);
	struct xs_node *parent;
	size_t end, len = strlen(path);
	int r;

	if (strcmp(path, "/") == 0 || len >= sizeof(buf))
		return -EINVAL;
	if (!n) {
		struct xs_node *anc = xs_tree_walk(t, path, &end);
		const char *last = strrchr(path, '/');

		xs_op_note(op, path, NULL);
		r = xs_tree_missing_errno(op, anc, XS_PERM_WRITE);
		if (r != -ENOENT)
			return r;
		/* Removing what is not there is fine if its parent is. */
		return end == (size_t)(last - path) || (last == path && end == 1) ? 0 : -ENOENT;
	}
	r = xs_tree_get(t, op, path, XS_PERM_WRITE, &n);
	if (r < 0)
		return r;
	parent = n->parent;
	memcpy(buf, path, len + 1);
	if (op->note) {
		xs_op_note_prefix(op, path, strrchr(path, '/') == path ? 1 :
				  (size_t)(strrchr(path, '/') - path), parent);
		xs_tree_note_subtree(op, n, buf, len, sizeof(buf));
	}
	xs_node_del_kid(parent, n);
	/* The removed root fires watches on it and above; its perms go with
	 * it, so report them before it is freed. */
	xs_op_change(op, path, &n->perms, false);
	xs_tree_drop_subtree(t, op, n, buf, len, sizeof(buf), true);
	return 0;
}

int xs_tree_directory(struct xs_tree *t, const struct xs_op *op, const char *path,
		      char **ret_buf, size_t *ret_len, uint64_t *ret_gen)
{
	struct xs_node *n;
	size_t len = 0, off = 0;
	unsigned int i;
	char *buf;
	int r = xs_tree_get(t, op, path, XS_PERM_READ, &n);

	if (r < 0)
		return r;
	for (i = 0; i < n->nr_kids; i++)
		len += strlen(n->kids[i]->name) + 1;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < n->nr_kids; i++) {
		size_t nl = strlen(n->kids[i]->name) + 1;

		memcpy(buf + off, n->kids[i]->name, nl);
		off += nl;
	}
	*ret_buf = buf;
	*ret_len = len;
	*ret_gen = n->gen;
	return 0;
}

int xs_tree_get_perms(struct xs_tree *t, const struct xs_op *op, const char *path,
		      const struct xs_perms **ret)
{
	struct xs_node *n;
	int r = xs_tree_get(t, op, path, XS_PERM_READ, &n);

	if (r < 0)
		return r;
	*ret = &n->perms;
	return 0;
}

int xs_tree_set_perms(struct xs_tree *t, const struct xs_op *op, const char *path,
		      const struct xs_perms *perms)
{
	struct xs_perms copy;
	struct xs_node *n;
	int r;

	if (xs_op_checks(op) && perms->nr > XS_QUOTA_PERMS)
		return -ENOSPC;
	r = xs_tree_get(t, op, path, XS_PERM_WRITE | XS_PERM_OWNER, &n);
	if (r < 0)
		return r;
	if (xs_op_checks(op) && perms->v[0].domid != n->perms.v[0].domid)
		return -EPERM;
	r = xs_perms_copy(perms, &copy);
	if (r < 0)
		return r;
	r = xs_tree_account(t, copy.v[0].domid, 1);
	if (r < 0) {
		xs_perms_done(&copy);
		return r;
	}
	xs_tree_account(t, n->perms.v[0].domid, -1);
	xs_perms_done(&n->perms);
	n->perms = copy;
	n->gen = xs_gen_next();
	xs_op_change(op, path, &n->perms, false);
	return 0;
}

static struct xs_node *xs_node_clone(const struct xs_node *src)
{
	struct xs_node *n = calloc(1, sizeof(*n));
	unsigned int i;

	if (!n)
		return NULL;
	n->name = strdup(src->name);
	if (!n->name || xs_perms_copy(&src->perms, &n->perms) < 0)
		goto fail;
	if (src->value) {
		n->value = malloc(src->len + 1);
		if (!n->value)
			goto fail;
		memcpy(n->value, src->value, src->len + 1);
		n->len = src->len;
	}
	if (src->nr_kids) {
		n->kids = calloc(src->nr_kids, sizeof(*n->kids));
		if (!n->kids)
			goto fail;
		n->cap_kids = src->nr_kids;
	}
	for (i = 0; i < src->nr_kids; i++) {
		struct xs_node *k = xs_node_clone(src->kids[i]);

		if (!k)
			goto fail;
		k->parent = n;
		n->kids[n->nr_kids++] = k;
	}
	n->gen = src->gen;
	return n;

fail:
	xs_node_free(n);
	return NULL;
}

int xs_tree_clone(const struct xs_tree *t, struct xs_tree **ret)
{
	struct xs_tree *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->root = xs_node_clone(t->root);
	if (t->nr_owners)
		c->owners = malloc(t->nr_owners * sizeof(*c->owners));
	if (!c->root || (t->nr_owners && !c->owners)) {
		xs_tree_free(c);
		return -ENOMEM;
	}
	memcpy(c->owners, t->owners, t->nr_owners * sizeof(*c->owners));
	c->nr_owners = t->nr_owners;
	*ret = c;
	return 0;
}

void xs_tree_free(struct xs_tree *t)
{
	if (!t)
		return;
	xs_node_free(t->root);
	free(t->owners);
	free(t);
}

int xs_tree_new(struct xs_tree **ret)
{
	/* What xenstored and xen-init-dom0 leave behind on a booted dom0. */
	static const struct { const char *path, *value; } boot[] = {
		{ "/tool/xenstored", "" },
		{ "/local/domain/0/domid", "0" },
		{ "/local/domain/0/name", "Domain-0" },
	};
	struct xs_perm dom0 = { .domid = 0, .mode = 0 };
	struct xs_perms perms = { .nr = 1, .v = &dom0 };
	struct xs_op op = { .caller = { .domid = 0, .privileged = true } };
	struct xs_tree *t = calloc(1, sizeof(*t));
	unsigned int i;
	int r = -ENOMEM;

	if (!t)
		return -ENOMEM;
	t->root = xs_node_new("", 0, &perms);
	if (!t->root)
		goto fail;
	r = xs_tree_account(t, 0, 1);
	if (r < 0)
		goto fail;
	for (i = 0; i < sizeof(boot) / sizeof(boot[0]); i++) {
		r = xs_tree_write(t, &op, boot[i].path, boot[i].value, strlen(boot[i].value));
		if (r < 0)
			goto fail;
	}
	*ret = t;
	return 0;

fail:
	xs_tree_free(t);
	return r;
}
