/* End-to-end tests of the simulated platform: each test starts the built
 * xensimd in a temporary directory, then drives domains, grant tables and
 * event channels through platform_open("sim") and the simctl client, as
 * blkbackd (dom0) and a guest frontend (domU) would, plus hostile clients
 * of the control socket. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/event_channel.h>
#include <xen/xen.h>

#include "platform.h"
#include "simctl.h"
#include "simshm.h"
#include "util.h"

#define PG PLAT_PAGE_SIZE

static char basedir[32];	/* removed by main(), whatever the tests did */
static char tmpdir[48];
static char simdir[64];
static pid_t daemon_pid = -1;
static struct simctl *ctl0;	/* dom0's control connection */
static uint32_t guest;		/* a domain created for the test */
static struct platform *p0, *pg;

static int daemon_status = -1;

static void daemon_stop(void)
{
	char cmd[600];

	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, &daemon_status, 0);
		daemon_pid = -1;
	}
	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpdir);
		tmpdir[0] = 0;
	}
}

static void daemon_start(void)
{
	const char *bd = getenv("top_builddir");
	char bin[4096], sock[400];
	int i;

	snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", basedir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(simdir, sizeof(simdir), "%s/sim", tmpdir);
	snprintf(bin, sizeof(bin), "%s/frontend-sim/xensimd", bd ? bd : "..");
	/* Failed checks exit the test process without teardown. */
	atexit(daemon_stop);
	daemon_pid = fork();
	ck_assert_int_ge(daemon_pid, 0);
	if (daemon_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (!getenv("CHECK_SIM_VERBOSE"))
			freopen("/dev/null", "w", stderr);
		execl(bin, "xensimd", "-d", "--dir", simdir, (char *)NULL);
		_exit(127);
	}
	snprintf(sock, sizeof(sock), "%s/sim", simdir);
	for (i = 0; i < 500; i++) {
		struct stat st;

		if (stat(sock, &st) == 0)
			break;
		ck_assert_msg(waitpid(daemon_pid, NULL, WNOHANG) == 0, "xensimd (%s) died", bin);
		usleep(10000);
	}
	ck_assert_msg(i < 500, "xensimd did not start");
}

static struct platform *plat_as(uint32_t domid)
{
	struct platform_config cfg = { .name = "sim", .sim_dir = simdir, .sim_domid = domid };
	struct platform *p = NULL;

	ck_assert_int_eq(platform_open(&cfg, &p), 0);
	ck_assert_str_eq(platform_name(p), "sim");
	return p;
}

static void setup(void)
{
	daemon_start();
	ck_assert_int_eq(simctl_connect(simdir, 0, &ctl0), 0);
	ck_assert_int_eq(simctl_domain_create(ctl0, 1024, &guest), 0);
	p0 = plat_as(0);
	pg = plat_as(guest);
}

static void teardown(void)
{
	platform_close(pg);
	platform_close(p0);
	simctl_close(ctl0);
	daemon_stop();
	/* A clean exit: no crash, and no leak under the sanitizers. */
	ck_assert_msg(WIFEXITED(daemon_status) && WEXITSTATUS(daemon_status) == 0,
		      "xensimd exit status 0x%x", daemon_status);
}

/* The test process's view of the guest's grant table, for hostile edits
 * and for checking the in-use bits. */
static struct simshm_gref *guest_gnttab(uint32_t domid)
{
	struct simshm_fds fds;
	uint32_t pages, nr;
	void *gt;

	ck_assert_int_eq(simctl_domain_mem(ctl0, domid, &fds, &pages, &nr), 0);
	ck_assert_int_ge(fds.active, 0);
	ck_assert_int_eq(simshm_map(fds.gnttab, simshm_gnttab_size(), &gt), 0);
	simshm_fds_close(&fds);
	return gt;
}

static uint16_t flags_of(struct simshm_gref *gt, uint32_t ref)
{
	union simshm_combo c = { .word = __atomic_load_n(&gt[ref].combo, __ATOMIC_SEQ_CST) };

	return c.s.flags;
}

/* ---- domains ---- */

START_TEST(test_domain_lifecycle)
{
	uint32_t ids[8], d2, d3;
	size_t n;
	struct stat st;
	char path[512];

	ck_assert_int_eq(simctl_domain_list(ctl0, ids, 8, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ids[0], 0);
	ck_assert_uint_eq(ids[1], guest);
	ck_assert_int_eq(simctl_domain_create(ctl0, 0, &d2), 0);
	ck_assert_uint_gt(d2, guest);
	snprintf(path, sizeof(path), "%s/domain/%u/sim", simdir, d2);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(simctl_domain_destroy(ctl0, d2), 0);
	ck_assert_int_ne(stat(path, &st), 0);
	/* Not reused right away: stale references must not hit a new domain. */
	ck_assert_int_eq(simctl_domain_create(ctl0, 0, &d3), 0);
	ck_assert_uint_gt(d3, d2);
	ck_assert_int_eq(simctl_domain_list(ctl0, ids, 8, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(ids[2], d3);
	/* Truncated listing. */
	ck_assert_int_eq(simctl_domain_list(ctl0, ids, 1, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(ids[0], 0);
}
END_TEST

START_TEST(test_domain_list_many)
{
	uint32_t ids[200], d;
	size_t n;

	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(simctl_domain_create(ctl0, 1, &d), 0);
	ck_assert_int_eq(simctl_domain_list(ctl0, ids, 200, &n), 0);
	ck_assert_uint_eq(n, 102);
	for (size_t i = 1; i < n; i++)
		ck_assert_uint_gt(ids[i], ids[i - 1]);
	ck_assert_uint_eq(ids[101], d);
}
END_TEST

#define THE_GUEST 0xfffffff0u

struct ctl_case {
	const char *what;
	bool as_guest;
	int op;		/* 0 create, 1 destroy, 2 mem */
	uint32_t arg;	/* ram_pages or domid; THE_GUEST = the test's guest */
	int err;
};

static const struct ctl_case ctl_cases[] = {
	{ "guest creates", true, 0, 0, -EPERM },
	{ "guest destroys itself", true, 1, THE_GUEST, -EPERM },
	{ "guest destroys dom0", true, 1, 0, -EPERM },
	{ "guest reads dom0 memory", true, 2, 0, -EPERM },
	{ "dom0 destroys dom0", false, 1, 0, -EPERM },
	{ "dom0 destroys unknown", false, 1, 4242, -ESRCH },
	{ "dom0 destroys DOMID_SELF", false, 1, DOMID_SELF, -ESRCH },
	{ "dom0 destroys 0xffffffff", false, 1, 0xffffffffu, -ESRCH },
	{ "huge RAM", false, 0, SIMSHM_RAM_PAGES_MAX + 1, -EINVAL },
	{ "RAM 0xffffffff", false, 0, 0xffffffffu, -EINVAL },
	{ "memory of unknown domain", false, 2, 4242, -ESRCH },
	{ "memory of 0xffffffff", false, 2, 0xffffffffu, -ESRCH },
};

START_TEST(test_ctl_denied)
{
	const struct ctl_case *c = &ctl_cases[_i];
	struct simctl *sc = ctl0;
	struct simshm_fds fds;
	uint32_t arg = c->arg == THE_GUEST ? guest : c->arg, out, nr;
	int r;

	if (c->as_guest)
		ck_assert_int_eq(simctl_connect(simdir, guest, &sc), 0);
	switch (c->op) {
	case 0: r = simctl_domain_create(sc, arg, &out); break;
	case 1: r = simctl_domain_destroy(sc, arg); break;
	default: r = simctl_domain_mem(sc, arg, &fds, &out, &nr); break;
	}
	ck_assert_msg(r == c->err, "%s: %d, expected %d", c->what, r, c->err);
	if (sc != ctl0)
		simctl_close(sc);
}
END_TEST

/* A guest gets its own memory but never the pin table. */
START_TEST(test_guest_mem)
{
	struct simshm_fds fds;
	struct simctl *sc;
	uint32_t pages, nr;

	ck_assert_int_eq(simctl_connect(simdir, guest, &sc), 0);
	ck_assert_int_eq(simctl_domain_mem(sc, DOMID_SELF, &fds, &pages, &nr), 0);
	ck_assert_int_eq(fds.active, -1);
	ck_assert_uint_eq(pages, 1024);
	ck_assert_uint_eq(nr, SIMSHM_NR_GRANTS);
	/* Sealed: the guest cannot shrink RAM under the backend's mapping. */
	ck_assert_int_eq(ftruncate(fds.ram, 0), -1);
	simshm_fds_close(&fds);
	simctl_close(sc);
}
END_TEST

/* Malformed requests drop the connection, never the daemon. */
START_TEST(test_ctl_garbage)
{
	static const size_t sizes[] = { 0, 1, sizeof(struct simctl_req) - 1,
					sizeof(struct simctl_req) + 1, 4000 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4000], rsp[512];
	uint32_t ids[4];
	size_t n;

	memset(buf, 0xa5, sizeof(buf));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sim", simdir);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_ge(send(fd, buf, sizes[i], MSG_NOSIGNAL), 0);
		/* An empty datagram reads as EOF too: either way, closed. */
		ck_assert_int_eq(recv(fd, rsp, sizeof(rsp), 0), 0);
		close(fd);
	}
	/* An unknown op gets an error, not a drop. */
	{
		struct simctl_req req = { .op = 999 };
		struct simctl_rsp r;
		int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_eq(send(fd, &req, sizeof(req), 0), sizeof(req));
		ck_assert_int_eq(recv(fd, &r, sizeof(r), 0), sizeof(r));
		ck_assert_int_eq(r.err, -EOPNOTSUPP);
		close(fd);
	}
	/* Sending fds to xensimd gets them closed and the sender dropped. */
	{
		struct simctl_req req = { .op = SIMCTL_OP_DOMAIN_LIST };
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } cm;
		struct iovec iov = { &req, sizeof(req) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
		struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
		int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0), one = 0;

		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &one, sizeof(int));
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_eq(sendmsg(fd, &msg, 0), sizeof(req));
		ck_assert_int_eq(recv(fd, rsp, sizeof(rsp), 0), 0);
		close(fd);
	}
	ck_assert_int_eq(simctl_domain_list(ctl0, ids, 4, &n), 0);
	ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(test_platform_open_errors)
{
	struct platform_config cfg = { .name = "nope", .sim_dir = simdir };
	struct platform *p;

	ck_assert_int_eq(platform_open(&cfg, &p), -ENOENT);
	cfg.name = "sim";
	cfg.sim_dir = "/nonexistent/dir";
	ck_assert_int_eq(platform_open(&cfg, &p), -ENOENT);
	cfg.sim_dir = simdir;
	cfg.sim_domid = 4242;	/* no such domain: no socket */
	ck_assert_int_eq(platform_open(&cfg, &p), -ENOENT);
	cfg.sim_domid = -1;
	ck_assert_int_eq(platform_open(&cfg, &p), -EINVAL);
	/* $XENSIM_DIR is the fallback. */
	setenv("XENSIM_DIR", simdir, 1);
	cfg.sim_dir = NULL;
	cfg.sim_domid = 0;
	ck_assert_int_eq(platform_open(&cfg, &p), 0);
	platform_close(p);
}
END_TEST

/* ---- grant tables ---- */

struct grants {
	struct plat_gntshr *gs;
	struct plat_gnttab *gt;
	uint32_t refs[4];
	uint8_t *gaddr;
};

static void grants_open(struct grants *g, uint32_t count, bool writable)
{
	ck_assert_int_eq(plat_gntshr_open(pg, &g->gs), 0);
	ck_assert_int_eq(plat_gnttab_open(p0, &g->gt), 0);
	ck_assert_int_eq(plat_gntshr_share(g->gs, 0, count, writable, g->refs, (void **)&g->gaddr), 0);
}

static void grants_close(struct grants *g)
{
	plat_gnttab_close(g->gt);
	plat_gntshr_close(g->gs);
}

START_TEST(test_map_data)
{
	struct grants g;
	uint8_t *b;

	grants_open(&g, 3, true);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_ge(g.refs[i], SIMSHM_NR_RESERVED);
		ck_assert_uint_eq(g.gaddr[i * PG], 0);	/* zeroed */
		memset(g.gaddr + i * PG, 'a' + i, PG);
	}
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 3, g.refs, true, (void **)&b), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(b[i * PG], 'a' + i);
		ck_assert_uint_eq(b[i * PG + PG - 1], 'a' + i);
	}
	/* Shared both ways. */
	b[PG + 5] = 'Z';
	ck_assert_uint_eq(g.gaddr[PG + 5], 'Z');
	/* Any order of refs, repeated refs. */
	{
		uint32_t refs[3] = { g.refs[2], g.refs[0], g.refs[2] };
		uint8_t *c;

		ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 3, refs, false, (void **)&c), 0);
		ck_assert_uint_eq(c[0], 'c');
		ck_assert_uint_eq(c[PG], 'a');
		ck_assert_uint_eq(c[2 * PG], 'c');
		ck_assert_int_eq(plat_gnttab_unmap(g.gt, c, 3), 0);
	}
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, b, 3), 0);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 3), 0);
	grants_close(&g);
}
END_TEST

struct map_case {
	const char *what;
	uint16_t flags;
	int domid;		/* -1: the test's backend (0) */
	uint32_t frame;
	uint32_t ref;		/* 0: use ref 100 */
	bool writable;
	int err;
};

static const struct map_case map_cases[] = {
	{ "rw grant, rw map", GTF_permit_access, -1, 5, 0, true, 0 },
	{ "ro grant, ro map", GTF_permit_access | GTF_readonly, -1, 5, 0, false, 0 },
	{ "ro grant, rw map", GTF_permit_access | GTF_readonly, -1, 5, 0, true, -EPERM },
	{ "other domain's grant", GTF_permit_access, 3, 5, 0, false, -EPERM },
	{ "no permit flag", 0, -1, 5, 0, false, -EPERM },
	{ "transfer grant", GTF_accept_transfer, -1, 5, 0, false, -EPERM },
	{ "sub-page grant", GTF_permit_access | GTF_sub_page, -1, 5, 0, false, -EPERM },
	{ "frame past RAM", GTF_permit_access, -1, 1024, 0, false, -EINVAL },
	{ "ref past the table", GTF_permit_access, -1, 5, SIMSHM_NR_GRANTS, false, -EINVAL },
	{ "ref 0xffffffff", GTF_permit_access, -1, 5, 0xffffffffu, false, -EINVAL },
};

START_TEST(test_map_table)
{
	const struct map_case *c = &map_cases[_i];
	struct simshm_gref *gt = guest_gnttab(guest);
	uint32_t refs[2] = { 99, c->ref ? c->ref : 100 };
	union simshm_combo combo = { .s = { .flags = c->flags,
					    .domid = c->domid < 0 ? 0 : c->domid } };
	struct plat_gnttab *h;
	void *addr = NULL;
	int r;

	/* Ref 99 is good, so a bad second ref must undo the first pin. */
	simshm_grant_set(gt, 99, 0, 4, false);
	if (refs[1] < SIMSHM_NR_GRANTS) {
		gt[refs[1]].frame = c->frame;
		gt[refs[1]].combo = combo.word;
	}
	ck_assert_int_eq(plat_gnttab_open(p0, &h), 0);
	r = plat_gnttab_map(h, guest, 2, refs, c->writable, &addr);
	ck_assert_msg(r == c->err, "%s: %d, expected %d", c->what, r, c->err);
	if (r == 0) {
		ck_assert(flags_of(gt, 100) & GTF_reading);
		ck_assert_int_eq(!!(flags_of(gt, 100) & GTF_writing), c->writable);
		ck_assert_int_eq(plat_gnttab_unmap(h, addr, 2), 0);
	}
	ck_assert_uint_eq(flags_of(gt, 99), GTF_permit_access);
	if (refs[1] < SIMSHM_NR_GRANTS)
		ck_assert_uint_eq(flags_of(gt, 100), c->flags);
	plat_gnttab_close(h);
	munmap(gt, simshm_gnttab_size());
}
END_TEST

START_TEST(test_map_bad_args)
{
	struct grants g;
	void *a;
	uint32_t ref;

	grants_open(&g, 1, true);
	ref = g.refs[0];
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 0, &ref, true, &a), -EINVAL);
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, NULL, true, &a), -EINVAL);
	ck_assert_int_eq(plat_gnttab_map(g.gt, 4242, 1, &ref, true, &a), -ESRCH);
	ck_assert_int_eq(plat_gnttab_map(g.gt, 0xffffffffu, 1, &ref, true, &a), -EINVAL);
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, &ref, true, &a), 0);
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, a, 2), -EINVAL);
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, (uint8_t *)a + PG, 1), -EINVAL);
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, NULL, 1), -EINVAL);
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, a, 1), 0);
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, a, 1), -EINVAL);	/* twice */
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), -EINVAL);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, NULL, 1), -EINVAL);
	ck_assert_int_eq(plat_gntshr_share(g.gs, 0, 0, true, &ref, &a), -EINVAL);
	ck_assert_int_eq(plat_gntshr_share(g.gs, DOMID_FIRST_RESERVED, 1, true, &ref, &a), -EINVAL);
	grants_close(&g);
}
END_TEST

static void segv_exit(int sig)
{
	_exit(42);
}

/* A read-only mapping really is: writing through it faults. */
START_TEST(test_map_readonly_faults)
{
	struct grants g;
	volatile uint8_t *b;
	pid_t pid;
	int status;

	grants_open(&g, 1, false);
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, g.refs, false, (void **)&b), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Our own handler, so sanitizers do not turn it into a report. */
		struct sigaction sa = { .sa_handler = segv_exit };

		sigaction(SIGSEGV, &sa, NULL);
		b[0] = 1;
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 42);
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, (void *)b, 1), 0);
	grants_close(&g);
}
END_TEST

/* Xen's in-use bits: the guest cannot revoke a mapped grant; two mappings
 * pin twice; the pages stay shared after a refused unshare. */
START_TEST(test_in_use)
{
	struct simshm_gref *gt = guest_gnttab(guest);
	struct grants g;
	uint8_t *b1, *b2;

	grants_open(&g, 2, true);
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 2, g.refs, true, (void **)&b1), 0);
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, &g.refs[1], false, (void **)&b2), 0);
	ck_assert_uint_eq(flags_of(gt, g.refs[1]), GTF_permit_access | GTF_reading | GTF_writing);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), -EBUSY);
	/* Refused means nothing changed: still granted, still shared. */
	ck_assert_uint_eq(flags_of(gt, g.refs[0]), GTF_permit_access | GTF_reading | GTF_writing);
	g.gaddr[PG] = 'q';
	ck_assert_uint_eq(b2[0], 'q');
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, b1, 2), 0);
	/* The read-only mapping still holds ref 1 for reading. */
	ck_assert_uint_eq(flags_of(gt, g.refs[0]), GTF_permit_access);
	ck_assert_uint_eq(flags_of(gt, g.refs[1]), GTF_permit_access | GTF_reading);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), -EBUSY);
	ck_assert_uint_eq(flags_of(gt, g.refs[0]), GTF_permit_access);
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, b2, 1), 0);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), 0);
	ck_assert_uint_eq(flags_of(gt, g.refs[0]), 0);
	ck_assert_uint_eq(flags_of(gt, g.refs[1]), 0);
	/* Ended grants map no more. */
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, g.refs, false, (void **)&b1), -EPERM);
	grants_close(&g);
	munmap(gt, simshm_gnttab_size());
}
END_TEST

/* Closing the gnttab handle unmaps what it still maps, as gntdev does. */
START_TEST(test_gnttab_close_unpins)
{
	struct simshm_gref *gt = guest_gnttab(guest);
	struct grants g;
	void *b;

	grants_open(&g, 1, true);
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, g.refs, true, &b), 0);
	plat_gnttab_close(g.gt);
	ck_assert_uint_eq(flags_of(gt, g.refs[0]), GTF_permit_access);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 1), 0);
	plat_gntshr_close(g.gs);
	munmap(gt, simshm_gnttab_size());
}
END_TEST

/* A backend killed while mapping: xensimd drops its pins when its
 * connection closes (as the kernel does when a gntdev user dies), so the
 * guest can end access afterwards. */
START_TEST(test_mapper_dies)
{
	struct simshm_gref *gt = guest_gnttab(guest);
	struct grants g;
	int pfd[2];
	pid_t pid;
	char c;

	grants_open(&g, 2, true);
	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct platform *p = plat_as(0);
		struct plat_gnttab *h;
		void *a, *b;

		if (plat_gnttab_open(p, &h) < 0 ||
		    plat_gnttab_map(h, guest, 2, g.refs, true, &a) < 0 ||
		    plat_gnttab_map(h, guest, 1, g.refs, false, &b) < 0 ||
		    write(pfd[1], "m", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &c, 1), 1);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), -EBUSY);
	/* Our own mapping of ref 1 must survive the other's recovery. */
	{
		void *mine;

		ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, &g.refs[1], false, &mine), 0);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		for (int i = 0; i < 200 && (flags_of(gt, g.refs[0]) & GTF_reading); i++)
			usleep(5000);
		ck_assert_uint_eq(flags_of(gt, g.refs[0]), GTF_permit_access);
		ck_assert_uint_eq(flags_of(gt, g.refs[1]), GTF_permit_access | GTF_reading);
		ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), -EBUSY);
		ck_assert_int_eq(plat_gnttab_unmap(g.gt, mine, 1), 0);
	}
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), 0);
	close(pfd[0]);
	grants_close(&g);
	munmap(gt, simshm_gnttab_size());
}
END_TEST

/* Two processes of one guest allocate without colliding. */
START_TEST(test_share_two_handles)
{
	struct plat_gntshr *a, *b;
	uint32_t ra[16], rb[16];
	uint8_t *pa, *pb;

	ck_assert_int_eq(plat_gntshr_open(pg, &a), 0);
	ck_assert_int_eq(plat_gntshr_open(pg, &b), 0);
	ck_assert_int_eq(plat_gntshr_share(a, 0, 16, true, ra, (void **)&pa), 0);
	ck_assert_int_eq(plat_gntshr_share(b, 0, 16, true, rb, (void **)&pb), 0);
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			ck_assert_uint_ne(ra[i], rb[j]);
	memset(pa, 1, 16 * PG);
	for (int i = 0; i < 16 * (int)PG; i++)
		ck_assert_uint_eq(pb[i], 0);
	plat_gntshr_close(a);
	plat_gntshr_close(b);
}
END_TEST

/* RAM runs out cleanly. */
START_TEST(test_share_exhaust)
{
	struct plat_gntshr *a;
	uint32_t *refs = calloc(1025, sizeof(uint32_t));
	void *p;

	ck_assert_int_eq(plat_gntshr_open(pg, &a), 0);
	ck_assert_int_eq(plat_gntshr_share(a, 0, 1025, true, refs, &p), -ENOSPC);
	ck_assert_int_eq(plat_gntshr_share(a, 0, 1024, true, refs, &p), 0);
	ck_assert_int_eq(plat_gntshr_share(a, 0, 1, true, refs, &p), -ENOSPC);
	plat_gntshr_close(a);
	free(refs);
}
END_TEST

enum { SRC, DST };

struct copy_case {
	const char *what;
	int dir;		/* SRC: guest page -> local, DST: local -> guest page */
	bool grant_ro;
	uint32_t ref;		/* 0: the granted ref */
	int domid;		/* -1: the test's guest */
	uint16_t offset, len;
	int16_t status;
};

static const struct copy_case copy_cases[] = {
	{ "from guest", SRC, false, 0, -1, 100, 200, GNTST_okay },
	{ "to guest", DST, false, 0, -1, 0, 4096, GNTST_okay },
	{ "from read-only grant", SRC, true, 0, -1, 0, 16, GNTST_okay },
	{ "to read-only grant", DST, true, 0, -1, 0, 16, GNTST_general_error },
	{ "bad ref", SRC, false, SIMSHM_NR_GRANTS, -1, 0, 16, GNTST_bad_gntref },
	{ "ungranted ref", SRC, false, 4000, -1, 0, 16, GNTST_general_error },
	{ "offset+len past page", SRC, false, 0, -1, 4000, 97, GNTST_bad_copy_arg },
	{ "len past page", DST, false, 0, -1, 0, 4097, GNTST_bad_copy_arg },
	{ "offset past page", DST, false, 0, -1, 4096, 1, GNTST_bad_copy_arg },
	{ "unknown domain", SRC, false, 0, 4242, 0, 16, GNTST_bad_domain },
	{ "DOMID_SELF", SRC, false, 0, DOMID_SELF, 0, 16, GNTST_bad_domain },
	{ "zero length", SRC, false, 0, -1, 4096, 0, GNTST_okay },
};

START_TEST(test_copy_table)
{
	const struct copy_case *c = &copy_cases[_i];
	struct simshm_gref *gt = guest_gnttab(guest);
	xengnttab_grant_copy_segment_t segs[2];
	static uint8_t local[2 * 4096];
	struct grants g;
	uint32_t ref;

	grants_open(&g, 2, !c->grant_ro);
	ref = c->ref ? c->ref : g.refs[0];
	memset(g.gaddr, 'g', PG);
	memset(local, 'l', sizeof(local));
	memset(segs, 0, sizeof(segs));
	/* Segment 1 is always good: per-segment status, no early stop. */
	segs[1].flags = GNTCOPY_source_gref;
	segs[1].source.foreign.ref = g.refs[1];
	segs[1].source.foreign.domid = guest;
	segs[1].dest.virt = local + 4096;
	segs[1].len = 8;
	segs[0].len = c->len;
	if (c->dir == SRC) {
		segs[0].flags = GNTCOPY_source_gref;
		segs[0].source.foreign.ref = ref;
		segs[0].source.foreign.domid = c->domid < 0 ? guest : c->domid;
		segs[0].source.foreign.offset = c->offset;
		segs[0].dest.virt = local;
	} else {
		segs[0].flags = GNTCOPY_dest_gref;
		segs[0].dest.foreign.ref = ref;
		segs[0].dest.foreign.domid = c->domid < 0 ? guest : c->domid;
		segs[0].dest.foreign.offset = c->offset;
		segs[0].source.virt = local;
	}
	segs[0].status = 99;
	ck_assert_int_eq(plat_gnttab_copy(g.gt, 2, segs), 0);
	ck_assert_msg(segs[0].status == c->status, "%s: status %d, expected %d", c->what,
		      segs[0].status, c->status);
	ck_assert_int_eq(segs[1].status, GNTST_okay);
	if (c->status == GNTST_okay && c->len) {
		if (c->dir == SRC)
			ck_assert_uint_eq(local[c->len - 1], 'g');
		else
			ck_assert_uint_eq(g.gaddr[c->offset + c->len - 1], 'l');
	} else {
		ck_assert_uint_eq(local[0], 'l');
		ck_assert_uint_eq(g.gaddr[0], 'g');
	}
	/* The in-use bits were held only for the copy. */
	ck_assert_uint_eq(flags_of(gt, g.refs[0]) & (GTF_reading | GTF_writing), 0);
	ck_assert_int_eq(plat_gntshr_unshare(g.gs, g.gaddr, 2), 0);
	grants_close(&g);
	munmap(gt, simshm_gnttab_size());
}
END_TEST

START_TEST(test_copy_bad_call)
{
	xengnttab_grant_copy_segment_t seg = { .len = 1, .status = 99 };
	uint8_t a, b;
	struct plat_gnttab *h;

	seg.source.virt = &a;
	seg.dest.virt = &b;
	ck_assert_int_eq(plat_gnttab_open(p0, &h), 0);
	/* Local to local is refused outright, like gntdev does. */
	ck_assert_int_eq(plat_gnttab_copy(h, 1, &seg), -EINVAL);
	ck_assert_int_eq(seg.status, 99);
	ck_assert_int_eq(plat_gnttab_copy(h, 0, NULL), 0);
	plat_gnttab_close(h);
}
END_TEST

/* A guest cannot map grants (only dom0 holds pin counts here). */
START_TEST(test_guest_cannot_map)
{
	struct plat_gnttab *h;
	uint32_t ref = 10;
	void *a;

	ck_assert_int_eq(plat_gnttab_open(pg, &h), 0);
	ck_assert_int_eq(plat_gnttab_map(h, 0, 1, &ref, false, &a), -EPERM);
	ck_assert_int_eq(plat_gnttab_map(h, guest, 1, &ref, false, &a), -EPERM);
	plat_gnttab_close(h);
}
END_TEST

/* As in Xen, a destroyed domain's pages stay valid while mapped. */
START_TEST(test_destroyed_pages_stay)
{
	struct grants g;
	uint8_t *b;
	uint32_t ids[4];
	size_t n;

	grants_open(&g, 2, true);
	memset(g.gaddr, 'x', 2 * PG);
	ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 2, g.refs, true, (void **)&b), 0);
	plat_gntshr_close(g.gs);	/* the guest's process goes away */
	ck_assert_int_eq(simctl_domain_destroy(ctl0, guest), 0);
	ck_assert_int_eq(simctl_domain_list(ctl0, ids, 4, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(b[2 * PG - 1], 'x');
	b[0] = 'y';
	ck_assert_uint_eq(b[0], 'y');
	/* But nothing new maps from it. */
	{
		void *c;

		ck_assert_int_eq(plat_gnttab_map(g.gt, guest, 1, g.refs, false, &c), -ESRCH);
	}
	ck_assert_int_eq(plat_gnttab_unmap(g.gt, b, 2), 0);
	plat_gnttab_close(g.gt);
}
END_TEST

/* ---- event channels ---- */

static int pending_port(struct plat_evtchn *ev)
{
	uint32_t port;
	int r = plat_evtchn_pending(ev, &port);

	return r < 0 ? r : (int)port;
}

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

static void status_of(uint32_t domid, uint32_t port, uint32_t state, uint32_t rdom)
{
	struct simctl_evtchn_status st;

	ck_assert_int_eq(simctl_evtchn_status(ctl0, domid, port, &st), 0);
	ck_assert_uint_eq(st.state, state);
	if (state != EVTCHNSTAT_closed)
		ck_assert_uint_eq(st.remote_domid, rdom);
}

/* xensimd notices a closed connection asynchronously. */
static void status_wait_closed(uint32_t domid, uint32_t port)
{
	for (int i = 0; i < 200; i++) {
		struct simctl_evtchn_status st;

		ck_assert_int_eq(simctl_evtchn_status(ctl0, domid, port, &st), 0);
		if (st.state == EVTCHNSTAT_closed)
			return;
		usleep(5000);
	}
	ck_abort_msg("d%u port %u still open", domid, port);
}

/* The guest offers a port, the backend binds it; Xen's handshake. */
static void channel_open(struct plat_evtchn **be, struct plat_evtchn **fe,
			 uint32_t *bport, uint32_t *fport)
{
	ck_assert_int_eq(plat_evtchn_open(p0, be), 0);
	ck_assert_int_eq(plat_evtchn_open(pg, fe), 0);
	ck_assert_int_eq(plat_evtchn_bind_unbound(*fe, 0, fport), 0);
	status_of(guest, *fport, EVTCHNSTAT_unbound, 0);
	ck_assert_int_eq(plat_evtchn_bind_interdomain(*be, guest, *fport, bport), 0);
	/* Xen marks the binder pending once: consume and unmask it. */
	ck_assert(fd_readable(plat_evtchn_fd(*be), 1000));
	ck_assert_int_eq(pending_port(*be), (int)*bport);
	ck_assert_int_eq(plat_evtchn_unmask(*be, *bport), 0);
	ck_assert_int_eq(pending_port(*be), -EAGAIN);
}

START_TEST(test_evtchn_notify)
{
	struct plat_evtchn *be, *fe;
	uint32_t bport, fport;

	channel_open(&be, &fe, &bport, &fport);
	status_of(guest, fport, EVTCHNSTAT_interdomain, 0);
	status_of(0, bport, EVTCHNSTAT_interdomain, guest);
	ck_assert_int_eq(pending_port(fe), -EAGAIN);
	ck_assert(!fd_readable(plat_evtchn_fd(fe), 0));

	ck_assert_int_eq(plat_evtchn_notify(fe, fport), 0);
	ck_assert(fd_readable(plat_evtchn_fd(be), 1000));
	ck_assert_int_eq(pending_port(be), (int)bport);
	/* Masked until unmask; what arrives meanwhile is kept. */
	ck_assert_int_eq(plat_evtchn_notify(fe, fport), 0);
	ck_assert_int_eq(pending_port(be), -EAGAIN);
	ck_assert(!fd_readable(plat_evtchn_fd(be), 50));
	ck_assert_int_eq(plat_evtchn_unmask(be, bport), 0);
	ck_assert(fd_readable(plat_evtchn_fd(be), 1000));
	ck_assert_int_eq(pending_port(be), (int)bport);
	ck_assert_int_eq(plat_evtchn_unmask(be, bport), 0);
	ck_assert_int_eq(plat_evtchn_unmask(be, bport), 0);	/* twice is fine */
	ck_assert_int_eq(pending_port(be), -EAGAIN);

	/* Several notifications before anyone looks: one event. */
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(plat_evtchn_notify(be, bport), 0);
	ck_assert_int_eq(pending_port(fe), (int)fport);
	ck_assert_int_eq(plat_evtchn_unmask(fe, fport), 0);
	ck_assert_int_eq(pending_port(fe), -EAGAIN);

	ck_assert_int_eq(plat_evtchn_unbind(be, bport), 0);
	status_of(0, bport, EVTCHNSTAT_closed, 0);
	ck_assert_int_eq(plat_evtchn_notify(be, bport), -ENOTCONN);
	ck_assert_int_eq(plat_evtchn_unbind(be, bport), -ENOTCONN);
	plat_evtchn_close(be);
	plat_evtchn_close(fe);
}
END_TEST

/* Several ports on one handle each report themselves. */
START_TEST(test_evtchn_many_ports)
{
	struct plat_evtchn *be, *fe;
	uint32_t bp[8], fp[8];
	bool seen[8] = { 0 };

	ck_assert_int_eq(plat_evtchn_open(p0, &be), 0);
	ck_assert_int_eq(plat_evtchn_open(pg, &fe), 0);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(plat_evtchn_bind_unbound(fe, 0, &fp[i]), 0);
		ck_assert_int_eq(plat_evtchn_bind_interdomain(be, guest, fp[i], &bp[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		int port = pending_port(be);

		ck_assert_int_gt(port, 0);
		for (int j = 0; j < 8; j++)
			if (bp[j] == (uint32_t)port) {
				ck_assert(!seen[j]);
				seen[j] = true;
			}
	}
	ck_assert_int_eq(pending_port(be), -EAGAIN);
	for (int i = 0; i < 8; i++)
		ck_assert(seen[i]);
	plat_evtchn_close(be);
	plat_evtchn_close(fe);
}
END_TEST

struct bind_case {
	const char *what;
	uint32_t offer_to;	/* remote domain the guest's port accepts */
	int port;		/* -1: the offered port */
	int domid;		/* -1: the test's guest */
	int err;
};

static const struct bind_case bind_cases[] = {
	{ "offered to someone else", 7, -1, -1, -EINVAL },
	{ "port 0", 0, 0, -1, -EINVAL },
	{ "port never allocated", 0, 500, -1, -EINVAL },
	{ "port 0xffffffff", 0, 0x7fffffff, -1, -EINVAL },
	{ "unknown domain", 0, -1, 4242, -ESRCH },
	{ "domain 0xffffffff", 0, -1, 0x7fffffff, -ESRCH },
	{ "good", 0, -1, -1, 0 },
};

START_TEST(test_evtchn_bind_table)
{
	const struct bind_case *c = &bind_cases[_i];
	struct plat_evtchn *be, *fe;
	uint32_t fport, bport;
	int r;

	ck_assert_int_eq(plat_evtchn_open(p0, &be), 0);
	ck_assert_int_eq(plat_evtchn_open(pg, &fe), 0);
	ck_assert_int_eq(plat_evtchn_bind_unbound(fe, c->offer_to, &fport), 0);
	r = plat_evtchn_bind_interdomain(be, c->domid < 0 ? guest : (uint32_t)c->domid,
					 c->port < 0 ? fport : (uint32_t)c->port, &bport);
	ck_assert_msg(r == c->err, "%s: %d, expected %d", c->what, r, c->err);
	if (r == 0) {
		/* Now interdomain: a second bind to it fails. */
		struct plat_evtchn *other;
		uint32_t p;

		ck_assert_int_eq(plat_evtchn_open(p0, &other), 0);
		ck_assert_int_eq(plat_evtchn_bind_interdomain(other, guest, fport, &p), -EINVAL);
		plat_evtchn_close(other);
	} else {
		status_of(guest, fport, EVTCHNSTAT_unbound, c->offer_to);
	}
	plat_evtchn_close(be);
	plat_evtchn_close(fe);
}
END_TEST

/* The restart story: the backend's end closes, the guest's returns to
 * unbound accepting dom0, and a fresh handle rebinds and works. */
START_TEST(test_evtchn_rebind)
{
	struct plat_evtchn *be, *fe, *be2;
	uint32_t bport, fport, bport2;

	channel_open(&be, &fe, &bport, &fport);
	plat_evtchn_close(be);	/* like a backend that died */
	status_of(guest, fport, EVTCHNSTAT_unbound, 0);
	status_of(0, bport, EVTCHNSTAT_closed, 0);
	/* Notifying an unbound port is not an error (Xen drops it). */
	ck_assert_int_eq(plat_evtchn_notify(fe, fport), 0);

	ck_assert_int_eq(plat_evtchn_open(p0, &be2), 0);
	ck_assert_int_eq(plat_evtchn_bind_interdomain(be2, guest, fport, &bport2), 0);
	ck_assert_int_eq(pending_port(be2), (int)bport2);
	ck_assert_int_eq(plat_evtchn_unmask(be2, bport2), 0);
	ck_assert_int_eq(pending_port(be2), -EAGAIN);
	ck_assert_int_eq(plat_evtchn_notify(fe, fport), 0);
	ck_assert(fd_readable(plat_evtchn_fd(be2), 1000));
	ck_assert_int_eq(pending_port(be2), (int)bport2);
	ck_assert_int_eq(plat_evtchn_notify(be2, bport2), 0);
	ck_assert_int_eq(pending_port(fe), (int)fport);

	/* And the other way: the guest's end closes. */
	ck_assert_int_eq(plat_evtchn_unbind(fe, fport), 0);
	status_of(0, bport2, EVTCHNSTAT_unbound, guest);
	plat_evtchn_close(be2);
	plat_evtchn_close(fe);
}
END_TEST

/* A process that dies mid-channel (its connection closes) closes its
 * ports, exactly as closing /dev/xen/evtchn does. */
START_TEST(test_evtchn_process_dies)
{
	struct plat_evtchn *be;
	uint32_t bport, fport;
	int pfd[2];
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct platform *p = plat_as(guest);
		struct plat_evtchn *fe;
		uint32_t port;

		if (plat_evtchn_open(p, &fe) < 0 || plat_evtchn_bind_unbound(fe, 0, &port) < 0)
			_exit(1);
		if (write(pfd[1], &port, sizeof(port)) != sizeof(port))
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &fport, sizeof(fport)), sizeof(fport));
	ck_assert_int_eq(plat_evtchn_open(p0, &be), 0);
	ck_assert_int_eq(plat_evtchn_bind_interdomain(be, guest, fport, &bport), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	status_wait_closed(guest, fport);
	status_of(0, bport, EVTCHNSTAT_unbound, guest);
	close(pfd[0]);
	plat_evtchn_close(be);
}
END_TEST

/* Destroying a domain closes its ports; dom0's ends wait, unbound. */
START_TEST(test_evtchn_domain_destroyed)
{
	struct plat_evtchn *be, *fe;
	uint32_t bport, fport;

	channel_open(&be, &fe, &bport, &fport);
	ck_assert_int_eq(simctl_domain_destroy(ctl0, guest), 0);
	status_of(0, bport, EVTCHNSTAT_unbound, guest);
	/* The guest's handle lost its connection: its calls fail cleanly. */
	ck_assert_int_lt(plat_evtchn_unbind(fe, fport), 0);
	{
		uint32_t p;

		ck_assert_int_lt(plat_evtchn_bind_unbound(fe, 0, &p), 0);
	}
	ck_assert_int_eq(plat_evtchn_notify(be, bport), 0);
	plat_evtchn_close(fe);
	plat_evtchn_close(be);
}
END_TEST

START_TEST(test_evtchn_status_denied)
{
	struct simctl *sc;
	struct simctl_evtchn_status st;

	ck_assert_int_eq(simctl_connect(simdir, guest, &sc), 0);
	ck_assert_int_eq(simctl_evtchn_status(sc, 0, 1, &st), -EPERM);
	ck_assert_int_eq(simctl_evtchn_status(sc, DOMID_SELF, 1, &st), 0);
	ck_assert_uint_eq(st.state, EVTCHNSTAT_closed);
	ck_assert_int_eq(simctl_evtchn_status(sc, DOMID_SELF, 0, &st), -EINVAL);
	ck_assert_int_eq(simctl_evtchn_status(sc, DOMID_SELF, 0x7fffffff, &st), -EINVAL);
	ck_assert_int_eq(simctl_evtchn_unbind(sc, 1), -EINVAL);
	simctl_close(sc);
}
END_TEST

/* A guest cannot hoard ports (and xensimd's fds) without bound. */
START_TEST(test_evtchn_guest_limit)
{
	struct simctl *sc;
	uint32_t port;
	int i, r = 0, in, out;

	/* Raw client: the ports stay in xensimd, our copies of the fds go. */
	ck_assert_int_eq(simctl_connect(simdir, guest, &sc), 0);
	for (i = 0; i < 2000; i++) {
		r = simctl_evtchn_alloc_unbound(sc, 0, &port, &in, &out);
		if (r < 0)
			break;
		close(in);
		close(out);
	}
	ck_assert_int_eq(r, -ENOSPC);
	ck_assert_int_eq(i, 1023);
	/* A freed port is reused, lowest first; loopback (DOMID_SELF) is
	 * allowed as in Xen. */
	ck_assert_int_eq(simctl_evtchn_unbind(sc, 1), 0);
	ck_assert_int_eq(simctl_evtchn_alloc_unbound(sc, DOMID_SELF, &port, &in, &out), 0);
	close(in);
	close(out);
	ck_assert_uint_eq(port, 1);
	status_of(guest, 1, EVTCHNSTAT_unbound, guest);
	simctl_close(sc);
	/* All closed with the connection. */
	status_wait_closed(guest, 1);
	status_wait_closed(guest, 1023);
}
END_TEST

START_TEST(test_evtchn_bad_remote)
{
	struct plat_evtchn *fe;
	uint32_t port;

	ck_assert_int_eq(plat_evtchn_open(pg, &fe), 0);
	ck_assert_int_eq(plat_evtchn_bind_unbound(fe, DOMID_FIRST_RESERVED + 1, &port), -EINVAL);
	ck_assert_int_eq(plat_evtchn_bind_unbound(fe, 0xffffffffu, &port), -EINVAL);
	ck_assert_int_eq(plat_evtchn_unmask(fe, 3), -ENOTCONN);
	ck_assert_int_eq(plat_evtchn_notify(fe, 0xffffffffu), -ENOTCONN);
	plat_evtchn_close(fe);
}
END_TEST

static Suite *sim_suite(void)
{
	Suite *s = suite_create("sim");
	TCase *dom = tcase_create("domains");
	TCase *gnt = tcase_create("grants");
	TCase *evt = tcase_create("evtchn");

	tcase_add_checked_fixture(dom, setup, teardown);
	tcase_add_test(dom, test_domain_lifecycle);
	tcase_add_test(dom, test_domain_list_many);
	tcase_add_loop_test(dom, test_ctl_denied, 0, ARRAY_SIZE(ctl_cases));
	tcase_add_test(dom, test_guest_mem);
	tcase_add_test(dom, test_ctl_garbage);
	tcase_add_test(dom, test_platform_open_errors);
	suite_add_tcase(s, dom);

	tcase_add_checked_fixture(gnt, setup, teardown);
	tcase_add_test(gnt, test_map_data);
	tcase_add_loop_test(gnt, test_map_table, 0, ARRAY_SIZE(map_cases));
	tcase_add_test(gnt, test_map_bad_args);
	tcase_add_test(gnt, test_map_readonly_faults);
	tcase_add_test(gnt, test_in_use);
	tcase_add_test(gnt, test_gnttab_close_unpins);
	tcase_add_test(gnt, test_mapper_dies);
	tcase_add_test(gnt, test_share_two_handles);
	tcase_add_test(gnt, test_share_exhaust);
	tcase_add_loop_test(gnt, test_copy_table, 0, ARRAY_SIZE(copy_cases));
	tcase_add_test(gnt, test_copy_bad_call);
	tcase_add_test(gnt, test_guest_cannot_map);
	tcase_add_test(gnt, test_destroyed_pages_stay);
	suite_add_tcase(s, gnt);

	tcase_add_checked_fixture(evt, setup, teardown);
	tcase_add_test(evt, test_evtchn_notify);
	tcase_add_test(evt, test_evtchn_many_ports);
	tcase_add_loop_test(evt, test_evtchn_bind_table, 0, ARRAY_SIZE(bind_cases));
	tcase_add_test(evt, test_evtchn_rebind);
	tcase_add_test(evt, test_evtchn_process_dies);
	tcase_add_test(evt, test_evtchn_domain_destroyed);
	tcase_add_test(evt, test_evtchn_status_denied);
	tcase_add_test(evt, test_evtchn_guest_limit);
	tcase_add_test(evt, test_evtchn_bad_remote);
	suite_add_tcase(s, evt);
	return s;
}

int main(void)
{
	SRunner *sr;
	char cmd[64];
	int failed;

	/* A failed check ends its forked test without cleanup: the per-test
	 * directories live under one that this process removes. */
	snprintf(basedir, sizeof(basedir), "/tmp/check-sim.XXXXXX");
	if (!mkdtemp(basedir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	sr = srunner_create(sim_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", basedir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", basedir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
