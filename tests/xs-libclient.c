/* A real libxenstore client driving xensimd's xenstore server: transaction
 * conflicts and retries, watch semantics, DIRECTORY_PART on a big
 * directory, domain introduce/release, a guest's permissions and quotas.
 * Usage: xs-libclient DIR SCENARIO; DIR is xensimd's --dir. Prints one line
 * per check; exits 1 on the first failure. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xenstore.h>

static const char *dir;
static int checks;

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	checks++;
	va_start(ap, fmt);
	printf("%s %d - ", ok ? "ok" : "not ok", checks);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!ok)
		exit(1);
}

/* Opens a handle as dom0 (domid 0) or as an introduced domain. */
static struct xs_handle *open_as(unsigned int domid)
{
	char path[4096];
	struct xs_handle *h;

	if (domid)
		snprintf(path, sizeof(path), "%s/domain/%u/socket", dir, domid);
	else
		snprintf(path, sizeof(path), "%s/socket", dir);
	/* libxenstore reads XENSTORED_PATH on every xs_open. */
	setenv("XENSTORED_PATH", path, 1);
	h = xs_open(0);
	check(h != NULL, "xs_open %s", path);
	return h;
}

static char *read_str(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	unsigned int len;

	return xs_read(h, t, path, &len);
}

static bool value_is(struct xs_handle *h, const char *path, const char *want)
{
	char *v = read_str(h, XBT_NULL, path);
	bool ok = v && strcmp(v, want) == 0;

	free(v);
	return ok;
}

static bool write_str(struct xs_handle *h, xs_transaction_t t, const char *path,
		      const char *val)
{
	return xs_write(h, t, path, val, strlen(val));
}

/* Waits up to ms for one watch event; returns path and token or false. */
static bool next_event(struct xs_handle *h, int ms, char *path, size_t psize,
		       char *token, size_t tsize)
{
	struct pollfd pfd = { .fd = xs_fileno(h), .events = POLLIN };
	char **ev;

	for (;;) {
		ev = xs_check_watch(h);
		if (ev)
			break;
		if (errno != EAGAIN)
			return false;
		if (poll(&pfd, 1, ms) <= 0)
			return false;
	}
	snprintf(path, psize, "%s", ev[XS_WATCH_PATH]);
	snprintf(token, tsize, "%s", ev[XS_WATCH_TOKEN]);
	free(ev);
	return true;
}

static bool expect_event(struct xs_handle *h, const char *want_path, const char *want_token)
{
	char path[4096], token[256];

	if (!next_event(h, 2000, path, sizeof(path), token, sizeof(token))) {
		printf("# no event (wanted %s %s)\n", want_path, want_token);
		return false;
	}
	if (strcmp(path, want_path) || strcmp(token, want_token)) {
		printf("# event %s %s (wanted %s %s)\n", path, token, want_path, want_token);
		return false;
	}
	return true;
}

static bool expect_no_event(struct xs_handle *h, int ms)
{
	char path[4096], token[256];

	if (next_event(h, ms, path, sizeof(path), token, sizeof(token))) {
		printf("# unexpected event %s %s\n", path, token);
		return false;
	}
	return true;
}

static int scenario_transactions(void)
{
	struct xs_handle *a = open_as(0), *b = open_as(0);
	xs_transaction_t t, t2;
	bool ok;
	char *v;
	int tries;

	check(write_str(a, XBT_NULL, "/tx/x", "0"), "setup /tx/x");

	/* A's transaction reads x; B changes x meanwhile; A's commit fails. */
	t = xs_transaction_start(a);
	check(t != XBT_NULL, "transaction start");
	v = read_str(a, t, "/tx/x");
	check(v && strcmp(v, "0") == 0, "read inside transaction");
	free(v);
	check(write_str(b, XBT_NULL, "/tx/x", "other"), "B writes /tx/x outside");
	v = read_str(a, t, "/tx/x");
	check(v && strcmp(v, "0") == 0, "transaction still sees its snapshot");
	free(v);
	check(write_str(a, t, "/tx/x", "mine"), "A writes inside transaction");
	check(value_is(b, "/tx/x", "other"), "B does not see A's uncommitted write");
	ok = xs_transaction_end(a, t, false);
	check(!ok && errno == EAGAIN, "conflicting commit fails with EAGAIN (errno %d)", errno);
	check(value_is(b, "/tx/x", "other"), "failed commit changed nothing");

	/* The client's retry loop then succeeds. */
	for (tries = 0; tries < 5; tries++) {
		t = xs_transaction_start(a);
		v = read_str(a, t, "/tx/x");
		free(v);
		write_str(a, t, "/tx/x", "mine");
		if (xs_transaction_end(a, t, false))
			break;
		check(errno == EAGAIN, "retry fails only with EAGAIN");
	}
	check(tries == 0, "retry commits at once (tries %d)", tries);
	check(value_is(b, "/tx/x", "mine"), "retried write is visible");

	/* A node the transaction created, created by someone else meanwhile. */
	t = xs_transaction_start(a);
	check(write_str(a, t, "/tx/new/leaf", "a"), "create inside transaction");
	check(write_str(b, XBT_NULL, "/tx/new", "b"), "B creates the parent outside");
	check(!xs_transaction_end(a, t, false) && errno == EAGAIN,
	      "creation conflict gives EAGAIN");

	/* Two transactions on disjoint subtrees both commit. */
	check(write_str(a, XBT_NULL, "/tx/p/x", "0") && write_str(a, XBT_NULL, "/tx/q/x", "0"),
	      "setup disjoint nodes");
	t = xs_transaction_start(a);
	t2 = xs_transaction_start(b);
	check(write_str(a, t, "/tx/p/x", "1") && write_str(b, t2, "/tx/q/x", "1"),
	      "writes in two transactions");
	check(xs_transaction_end(a, t, false), "first disjoint commit");
	check(xs_transaction_end(b, t2, false), "second disjoint commit");
	check(value_is(a, "/tx/p/x", "1") && value_is(a, "/tx/q/x", "1"), "both committed");

	/* Abort discards; rm inside a transaction conflicts with a write below. */
	t = xs_transaction_start(a);
	check(write_str(a, t, "/tx/abort", "x"), "write before abort");
	check(xs_transaction_end(a, t, true), "abort");
	v = read_str(a, XBT_NULL, "/tx/abort");
	check(!v && errno == ENOENT, "aborted write is gone");
	t = xs_transaction_start(a);
	check(xs_rm(a, t, "/tx/p"), "rm subtree inside transaction");
	check(write_str(b, XBT_NULL, "/tx/p/x", "changed"), "B writes below it");
	check(!xs_transaction_end(a, t, false) && errno == EAGAIN, "rm conflict gives EAGAIN");

	/* Several transactions per connection; unknown ids are refused. */
	t = xs_transaction_start(a);
	t2 = xs_transaction_start(a);
	check(t != XBT_NULL && t2 != XBT_NULL && t != t2, "two open transactions on one handle");
	check(xs_transaction_end(a, t, true) && xs_transaction_end(a, t2, true), "both ended");
	check(!xs_transaction_end(a, t, false) && errno == ENOENT, "ending it twice: ENOENT");

	/* Watches fire on commit, not before. */
	check(xs_watch(b, "/tx/w", "tw"), "watch /tx/w");
	check(expect_event(b, "/tx/w", "tw"), "initial event");
	t = xs_transaction_start(a);
	check(write_str(a, t, "/tx/w/x", "1"), "write inside transaction");
	check(expect_no_event(b, 200), "no event before commit");
	check(xs_transaction_end(a, t, false), "commit");
	check(expect_event(b, "/tx/w/x", "tw"), "event on commit");

	xs_close(a);
	xs_close(b);
	return 0;
}

static int scenario_watches(void)
{
	struct xs_handle *a = open_as(0), *w = open_as(0);

	check(xs_watch(w, "/wt", "top"), "watch /wt");
	check(expect_event(w, "/wt", "top"), "initial event carries the watched path");
	check(!xs_watch(w, "/wt", "top") && errno == EEXIST, "duplicate watch: EEXIST");
	check(write_str(a, XBT_NULL, "/wt/a/b", "1"), "write /wt/a/b");
	check(expect_event(w, "/wt/a/b", "top"), "ancestor watch fires with the changed path");
	check(write_str(a, XBT_NULL, "/wtx", "1"), "write /wtx");
	check(expect_no_event(w, 200), "prefix only on a '/' boundary");

	check(xs_watch(w, "/wt/a/b", "exact"), "watch /wt/a/b");
	check(expect_event(w, "/wt/a/b", "exact"), "initial event");
	check(xs_rm(a, XBT_NULL, "/wt/a"), "rm /wt/a");
	/* The removed root fires watches above it; the removed child fires
	 * the watch registered exactly on it. Order is not promised. */
	{
		char p1[256], t1[64], p2[256], t2[64];
		bool got1 = next_event(w, 2000, p1, sizeof(p1), t1, sizeof(t1));
		bool got2 = next_event(w, 2000, p2, sizeof(p2), t2, sizeof(t2));
		bool top = false, exact = false;

		if (got1 && !strcmp(p1, "/wt/a") && !strcmp(t1, "top"))
			top = true;
		if (got2 && !strcmp(p2, "/wt/a") && !strcmp(t2, "top"))
			top = true;
		if (got1 && !strcmp(p1, "/wt/a/b") && !strcmp(t1, "exact"))
			exact = true;
		if (got2 && !strcmp(p2, "/wt/a/b") && !strcmp(t2, "exact"))
			exact = true;
		check(top && exact, "rm fires root on ancestors and descendants exactly");
	}
	check(expect_no_event(w, 200), "and nothing else");

	check(xs_mkdir(a, XBT_NULL, "/wt/m"), "mkdir /wt/m");
	check(expect_event(w, "/wt/m", "top"), "mkdir fires");
	check(xs_mkdir(a, XBT_NULL, "/wt/m"), "mkdir existing is fine");
	check(expect_no_event(w, 200), "mkdir of an existing node does not fire");
	{
		struct xs_permissions p[2] = { { 0, XS_PERM_NONE }, { 7, XS_PERM_READ } };

		check(xs_set_permissions(a, XBT_NULL, "/wt/m", p, 2), "set perms");
		check(expect_event(w, "/wt/m", "top"), "set perms fires");
	}
	check(xs_rm(a, XBT_NULL, "/wt/none"), "rm of a missing node with a parent");
	check(expect_no_event(w, 200), "does not fire");

	/* Relative watch: the event comes back relative. */
	check(xs_watch(w, "rel", "r"), "watch relative 'rel'");
	check(expect_event(w, "rel", "r"), "initial relative event");
	check(write_str(a, XBT_NULL, "/local/domain/0/rel/x", "1"), "write below it");
	check(expect_event(w, "rel/x", "r"), "event path is relative");

	check(xs_unwatch(w, "/wt", "top"), "unwatch /wt");
	check(!xs_unwatch(w, "/wt", "top") && errno == ENOENT, "unwatch again: ENOENT");
	check(write_str(a, XBT_NULL, "/wt/after", "1"), "write after unwatch");
	check(expect_no_event(w, 200), "no event after unwatch");

	/* RESET_WATCHES (libxenstore has no call for it) is in xs-rawclient. */
	xs_close(a);
	xs_close(w);
	return 0;
}

static int scenario_dirpart(void)
{
	struct xs_handle *a = open_as(0);
	xs_transaction_t t;
	unsigned int i, n = 0;
	char **list;
	char path[256];
	bool seen[600] = { 0 }, all = true;

	/* 600 names of ~30 bytes: ~18 KiB, four DIRECTORY_PART rounds. */
	t = xs_transaction_start(a);
	for (i = 0; i < 600; i++) {
		snprintf(path, sizeof(path), "/big/child-with-a-long-name-%04u", i);
		if (!write_str(a, t, path, "v"))
			break;
	}
	check(i == 600, "600 children written");
	check(xs_transaction_end(a, t, false), "committed");
	list = xs_directory(a, XBT_NULL, "/big", &n);
	check(list != NULL, "xs_directory on a directory larger than one reply");
	check(n == 600, "all 600 names returned (got %u)", n);
	for (i = 0; i < n; i++) {
		unsigned int k;

		if (sscanf(list[i], "child-with-a-long-name-%04u", &k) != 1 || k >= 600 || seen[k])
			all = false;
		else
			seen[k] = true;
	}
	free(list);
	check(all, "each name once");

	/* Inside a transaction too. */
	t = xs_transaction_start(a);
	list = xs_directory(a, t, "/big", &n);
	check(list && n == 600, "xs_directory on it inside a transaction");
	free(list);
	xs_transaction_end(a, t, true);

	list = xs_directory(a, XBT_NULL, "/tool", &n);
	check(list && n == 1 && !strcmp(list[0], "xenstored"), "small directory: /tool (%u)", n);
	free(list);
	xs_close(a);
	return 0;
}

static bool socket_exists(unsigned int domid)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/domain/%u/socket", dir, domid);
	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* dom0 sets up /local/domain/<id> the way libxl does: the domain may read
 * its home, and owns data/ below it. */
static void domain_home(struct xs_handle *h, unsigned int domid)
{
	struct xs_permissions ro[2] = { { 0, XS_PERM_NONE }, { domid, XS_PERM_READ } };
	struct xs_permissions rw[1] = { { domid, XS_PERM_NONE } };
	char path[128];

	snprintf(path, sizeof(path), "/local/domain/%u", domid);
	check(xs_mkdir(h, XBT_NULL, path) && xs_set_permissions(h, XBT_NULL, path, ro, 2),
	      "dom0 creates %s readable by the domain", path);
	snprintf(path, sizeof(path), "/local/domain/%u/data", domid);
	check(xs_mkdir(h, XBT_NULL, path) && xs_set_permissions(h, XBT_NULL, path, rw, 1),
	      "dom0 creates %s owned by the domain", path);
}

static int scenario_domain(void)
{
	const unsigned int id = 42;
	struct xs_handle *d0 = open_as(0), *g, *g2;
	struct xs_permissions *perms;
	unsigned int n;
	char *v;

	check(xs_watch(d0, "@introduceDomain", "intro"), "watch @introduceDomain");
	check(expect_event(d0, "@introduceDomain", "intro"), "initial event");
	check(xs_watch(d0, "@releaseDomain", "rel"), "watch @releaseDomain");
	check(expect_event(d0, "@releaseDomain", "rel"), "initial event");
	check(!xs_is_domain_introduced(d0, id), "domain %u not introduced yet", id);
	check(xs_introduce_domain(d0, id, 0, 0), "introduce domain %u", id);
	check(expect_event(d0, "@introduceDomain", "intro"), "@introduceDomain fires");
	check(xs_is_domain_introduced(d0, id), "domain %u introduced", id);
	check(xs_is_domain_introduced(d0, 0), "dom0 is introduced");
	check(socket_exists(id), "its socket exists");
	domain_home(d0, id);

	g = open_as(id);
	v = xs_get_domain_path(g, id);
	check(v && strcmp(v, "/local/domain/42") == 0, "guest: get_domain_path");
	free(v);
	check(write_str(g, XBT_NULL, "data/x", "hello"), "guest writes relative data/x");
	check(value_is(d0, "/local/domain/42/data/x", "hello"), "dom0 reads it absolute");
	v = read_str(g, XBT_NULL, "data/x");
	check(v && !strcmp(v, "hello"), "guest reads it relative");
	free(v);
	perms = xs_get_permissions(g, XBT_NULL, "data/x", &n);
	check(perms && n == 1 && perms[0].id == id, "guest owns what it created");
	free(perms);
	check(write_str(g, XBT_NULL, "data/deep/er/node", "1"), "guest creates parents");
	perms = xs_get_permissions(d0, XBT_NULL, "/local/domain/42/data/deep", &n);
	check(perms && perms[0].id == id, "created parent owned by the guest");
	free(perms);

	/* Permission denials. */
	v = read_str(g, XBT_NULL, "/local/domain/0/name");
	check(!v && errno == EACCES, "guest cannot read dom0's nodes (errno %d)", errno);
	check(!write_str(g, XBT_NULL, "/local/domain/0/evil", "1") && errno == EACCES,
	      "guest cannot create under dom0's nodes");
	check(!write_str(g, XBT_NULL, "name", "evil") && errno == EACCES,
	      "guest cannot create in its read-only home");
	v = read_str(g, XBT_NULL, "/local/domain/0/nonexistent/x");
	check(!v && errno == EACCES, "missing node below unreadable parent: EACCES, not ENOENT");
	v = read_str(g, XBT_NULL, "data/missing");
	check(!v && errno == ENOENT, "missing node below readable parent: ENOENT");
	check(!xs_rm(g, XBT_NULL, "/local/domain/0/name") && errno == EACCES,
	      "guest cannot remove dom0's nodes");
	{
		struct xs_permissions p[2] = { { 0, XS_PERM_NONE }, { id, XS_PERM_READ | XS_PERM_WRITE } };
		struct xs_permissions steal[1] = { { id, XS_PERM_NONE } };
		struct xs_permissions give[1] = { { 0, XS_PERM_NONE } };

		check(write_str(d0, XBT_NULL, "/shared/x", "1") &&
		      xs_set_permissions(d0, XBT_NULL, "/shared/x", p, 2),
		      "dom0 grants b42 on /shared/x");
		check(write_str(g, XBT_NULL, "/shared/x", "2"), "guest writes a granted node");
		check(!xs_set_permissions(g, XBT_NULL, "/shared/x", steal, 1) && errno == EACCES,
		      "guest cannot set perms on a node it does not own");
		check(!xs_set_permissions(g, XBT_NULL, "data/x", give, 1) && errno == EPERM,
		      "guest cannot give its node away (EPERM)");
	}
	check(!xs_introduce_domain(g, 43, 0, 0) && errno == EACCES, "guest cannot introduce");
	check(!xs_is_domain_introduced(g, 0), "guest cannot ask is_domain_introduced");

	/* Watches: a guest hears only about what it may read. */
	check(xs_watch(g, "/local/domain/0", "spy"), "guest may watch dom0's nodes");
	check(expect_event(g, "/local/domain/0", "spy"), "gets the initial event");
	check(write_str(d0, XBT_NULL, "/local/domain/0/secret", "s"), "dom0 writes a secret");
	check(expect_no_event(g, 300), "guest does not see it");
	check(xs_watch(g, "data", "mine"), "guest watches relative 'data'");
	check(expect_event(g, "data", "mine"), "initial relative event");
	check(write_str(d0, XBT_NULL, "/local/domain/42/data/y", "1"), "dom0 writes data/y");
	check(expect_event(g, "data/y", "mine"), "guest gets a relative event");
	check(xs_watch(g, "@introduceDomain", "gi"), "guest may watch @introduceDomain");
	check(expect_event(g, "@introduceDomain", "gi"), "initial special event");
	check(xs_introduce_domain(d0, id + 1, 0, 0), "introduce domain %u", id + 1);
	check(expect_event(d0, "@introduceDomain", "intro"), "dom0 hears of it");
	check(expect_no_event(g, 300), "the guest does not (n0 on the special node)");
	check(xs_release_domain(d0, id + 1), "release domain %u", id + 1);
	check(expect_event(d0, "@releaseDomain", "rel"), "@releaseDomain fires");

	/* Quotas. */
	{
		char big[2050], path[64];
		unsigned int i;
		xs_transaction_t t[11];
		struct xs_permissions six[6] = { { id, 0 }, { 1, 1 }, { 2, 1 }, { 3, 1 }, { 4, 1 }, { 5, 1 } };

		memset(big, 'x', sizeof(big));
		check(xs_write(g, XBT_NULL, "data/v", big, 2048), "2048-byte value accepted");
		check(!xs_write(g, XBT_NULL, "data/v", big, 2049) && errno == ENOSPC,
		      "2049-byte value: ENOSPC (errno %d)", errno);
		check(xs_write(d0, XBT_NULL, "/local/domain/42/data/v0", big, 2049),
		      "dom0 has no value quota");
		check(!xs_set_permissions(g, XBT_NULL, "data/x", six, 6) && errno == ENOSPC,
		      "6 perms on a node: ENOSPC");
		check(xs_set_permissions(g, XBT_NULL, "data/x", six, 5), "5 perms accepted");
		for (i = 0; i < 10; i++)
			t[i] = xs_transaction_start(g);
		check(t[9] != XBT_NULL, "10 open transactions");
		t[10] = xs_transaction_start(g);
		check(t[10] == XBT_NULL && errno == ENOSPC, "11th transaction: ENOSPC");
		g2 = open_as(id);
		check(xs_transaction_start(g2) == XBT_NULL && errno == ENOSPC,
		      "the quota is per domain, not per connection");
		xs_close(g2);
		for (i = 0; i < 10; i++)
			xs_transaction_end(g, t[i], true);
		t[0] = xs_transaction_start(g);
		check(t[0] != XBT_NULL, "a transaction again once they ended");
		xs_transaction_end(g, t[0], true);

		/* Watch quota counts the whole domain, across connections. */
		g2 = open_as(id);
		for (i = 0; i < 200; i++) {
			snprintf(path, sizeof(path), "data/w%u", i);
			if (!xs_watch(i < 100 ? g : g2, path, "q"))
				break;
		}
		/* The guest already holds 3 watches (spy, mine, @introduceDomain). */
		check(i == 125 && errno == E2BIG, "watch quota 128 per domain: E2BIG at %u", i);
		xs_close(g2);

		t[0] = xs_transaction_start(g);
		for (i = 0; i < 1100; i++) {
			snprintf(path, sizeof(path), "data/n%u", i);
			if (!write_str(g, t[0], path, "1"))
				break;
		}
		check(i < 1000 && errno == ENOSPC, "node quota: ENOSPC after %u new nodes", i);
		xs_transaction_end(g, t[0], true);
	}

	/* Connections per domain are bounded too. */
	{
		struct xs_handle *hs[70];
		unsigned int i, good = 0;

		for (i = 0; i < 70; i++) {
			hs[i] = open_as(id);
			v = read_str(hs[i], XBT_NULL, "data/x");
			if (v)
				good++;
			free(v);
		}
		/* g is one of the 64; a just-closed one may not be reaped yet. */
		check(good >= 60 && good <= 63, "at most 64 guest connections served (%u more)", good);
		for (i = 0; i < 70; i++)
			xs_close(hs[i]);
		usleep(200 * 1000);
		hs[0] = open_as(id);
		v = read_str(hs[0], XBT_NULL, "data/x");
		check(v != NULL, "served again once they closed");
		free(v);
		xs_close(hs[0]);
	}

	/* Release: the guest's connection goes, events fire, nodes stay. */
	check(xs_release_domain(d0, id), "release domain %u", id);
	check(expect_event(d0, "@releaseDomain", "rel"), "@releaseDomain fires");
	check(!xs_is_domain_introduced(d0, id), "no longer introduced");
	check(!socket_exists(id), "its socket is gone");
	v = read_str(g, XBT_NULL, "data/x");
	check(!v, "the guest's connection was closed");
	free(v);
	check(value_is(d0, "/local/domain/42/data/x", "hello"), "its nodes stay");
	check(!xs_release_domain(d0, id) && errno == ENOENT, "release again: ENOENT");
	xs_close(g);
	xs_close(d0);
	return 0;
}

/* A client vanishing inside a transaction: its changes never land. */
static int scenario_disconnect(void)
{
	struct xs_handle *a = open_as(0), *b;
	xs_transaction_t t = xs_transaction_start(a);
	char *v;

	check(write_str(a, t, "/dc/x", "1"), "write inside a transaction");
	xs_close(a);
	b = open_as(0);
	v = read_str(b, XBT_NULL, "/dc/x");
	check(!v && errno == ENOENT, "transaction discarded on disconnect");
	check(value_is(b, "/local/domain/0/name", "Domain-0"), "server still answers");
	xs_close(b);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(void);
	} scenarios[] = {
		{ "transactions", scenario_transactions },
		{ "watches", scenario_watches },
		{ "dirpart", scenario_dirpart },
		{ "domain", scenario_domain },
		{ "disconnect", scenario_disconnect },
	};
	size_t i;

	if (argc == 4 && (!strcmp(argv[2], "introduce") || !strcmp(argv[2], "release"))) {
		/* For the shell tests: act on a domain through dom0's socket. */
		struct xs_handle *h;
		unsigned int id = strtoul(argv[3], NULL, 10);

		dir = argv[1];
		h = open_as(0);
		if (argv[2][0] == 'i')
			check(xs_introduce_domain(h, id, 0, 0), "introduce domain %u", id);
		else
			check(xs_release_domain(h, id), "release domain %u", id);
		xs_close(h);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: xs-libclient DIR SCENARIO | DIR introduce|release DOMID\n");
		return 2;
	}
	dir = argv[1];
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (strcmp(argv[2], scenarios[i].name) == 0)
			return scenarios[i].fn();
	fprintf(stderr, "xs-libclient: unknown scenario %s\n", argv[2]);
	return 2;
}
