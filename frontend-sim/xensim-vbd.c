/* Block devices, the libxl way: attach writes the backend, frontend and
 * /libxl dirs in one transaction, waits for the backend's InitWait and
 * runs the hotplug script; detach asks the backend to close (online=0,
 * state=Closing), waits for Closed, runs "remove" and deletes the dirs;
 * a forced detach (and domain destroy) deletes the frontend first and
 * removes everything after the timeout anyway. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xen/io/xenbus.h>

#include "xensim.h"

extern char **environ;

#define BACKEND_DOMID	0	/* driver domains are not simulated */
#define DEFAULT_PROTOCOL "x86_64-abi"
#define KIND_LEN	16
#define MAX_DEVICES	1024

struct vbd {
	uint32_t domid;
	uint32_t devid;
	char kind[KIND_LEN];	/* "vbd" for disks */
	char be[128];		/* /local/domain/0/backend/<kind>/<domid>/<devid> */
	char fe[128];		/* /local/domain/<domid>/device/<kind>/<devid> */
	char lx[128];		/* /libxl/<domid>/device/<kind>/<devid> */
	/* state of a removal in progress (detach, destroy) */
	bool be_gone;
	bool closed;
};

static void vbd_init(struct vbd *v, const char *kind, uint32_t domid,
		     uint32_t devid)
{
	memset(v, 0, sizeof(*v));
	v->domid = domid;
	v->devid = devid;
	snprintf(v->kind, sizeof(v->kind), "%s", kind);
	snprintf(v->be, sizeof(v->be), "/local/domain/%u/backend/%s/%u/%u",
		 BACKEND_DOMID, kind, domid, devid);
	snprintf(v->fe, sizeof(v->fe), "/local/domain/%u/device/%s/%u",
		 domid, kind, devid);
	snprintf(v->lx, sizeof(v->lx), "/libxl/%u/device/%s/%u",
		 domid, kind, devid);
}

#define SUBPATH(buf, dir, key) snprintf(buf, sizeof(buf), "%s/%s", dir, key)

static char *vbd_read(struct xs_handle *xs, const char *dir, const char *key)
{
	char p[192];

	SUBPATH(p, dir, key);
	return xsim_read(xs, XBT_NULL, p);
}

/* A state for block-list: the number, or "-" when absent or junk. */
static const char *vbd_state_str(struct xs_handle *xs, const char *dir,
				 char *buf, size_t len)
{
	char p[192];
	long s;

	SUBPATH(p, dir, XK_STATE);
	if (xsim_read_int(xs, XBT_NULL, p, &s) < 0)
		return "-";
	snprintf(buf, len, "%ld", s);
	return buf;
}

/* --- hotplug scripts ---------------------------------------------------- */

/* environ plus the variables libxl's get_hotplug_env sets, built before
 * fork: the child of a threaded process (libxenstore's reader thread) may
 * only call async-signal-safe functions. */
static char **hotplug_env(const struct vbd *v, const char *script)
{
	static const char *const ours[] = {
		"script=", "XENBUS_TYPE=", "XENBUS_PATH=", "XENBUS_BASE_PATH=",
	};
	size_t n = 0, i, k, j;
	char **env;
	bool skip;

	while (environ[n])
		n++;
	env = calloc(n + 5, sizeof(*env));
	if (!env)
		return NULL;
	for (i = 0, k = 0; i < n; i++) {
		skip = false;
		for (j = 0; j < sizeof(ours) / sizeof(ours[0]); j++)
			if (strncmp(environ[i], ours[j], strlen(ours[j])) == 0)
				skip = true;
		if (!skip)
			env[k++] = environ[i];
	}
	if (asprintf(&env[k++], "script=%s", script) < 0 ||
	    asprintf(&env[k++], "XENBUS_TYPE=%s", v->kind) < 0 ||
	    asprintf(&env[k++], "XENBUS_PATH=backend/%s/%u/%u", v->kind,
		     v->domid, v->devid) < 0 ||
	    asprintf(&env[k++], "XENBUS_BASE_PATH=backend") < 0) {
		/* the strings we own are the last ones set; leak on ENOMEM
		 * is moot, the command is about to fail */
		free(env);
		return NULL;
	}
	return env;
}

static void hotplug_env_free(char **env)
{
	size_t n = 0;

	if (!env)
		return;
	while (env[n])
		n++;
	/* The last four entries are ours (see hotplug_env). */
	for (size_t i = n >= 4 ? n - 4 : 0; i < n; i++)
		free(env[i]);
	free(env);
}

/* Waits up to timeout_ms for pid; returns 0 with *status, or -ETIMEDOUT. */
static int child_wait(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = xsim_now_ms() + timeout_ms;
	struct pollfd pfd;
	int pidfd, r;

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			r = -errno;
			goto out;
		}
		if (xsim_now_ms() >= deadline) {
			r = -ETIMEDOUT;
			goto out;
		}
		if (pidfd >= 0) {
			pfd.fd = pidfd;
			pfd.events = POLLIN;
			poll(&pfd, 1, (int)(deadline - xsim_now_ms()));
		} else {
			/* No pidfd (old kernel): a short sleep keeps it cheap. */
			usleep(20000);
		}
	}
	r = 0;
out:
	if (pidfd >= 0)
		close(pidfd);
	return r;
}

/* Runs `script action` like libxl's device_hotplug: stdin /dev/null,
 * stdout to our stderr, its own process group (so a timeout kills its
 * children too). Returns 0 on exit status 0, else -EIO with why set. */
static int hotplug_run(const struct vbd *v, const char *script,
		       const char *action, int timeout_s, char *why, size_t whylen)
{
	char *argv[] = { (char *)script, (char *)action, NULL };
	char **env;
	int status, r, nullfd;
	pid_t pid;

	if (script[0] != '/') {
		snprintf(why, whylen, "script path '%s' is not absolute", script);
		return -EIO;
	}
	if (access(script, X_OK) < 0) {
		snprintf(why, whylen, "cannot execute %s: %s", script,
			 strerror(errno));
		return -EIO;
	}
	env = hotplug_env(v, script);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!env || nullfd < 0) {
		snprintf(why, whylen, "cannot prepare to run %s: %s", script,
			 strerror(errno));
		r = -EIO;
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		r = -EIO;
		goto out;
	}
	if (pid == 0) {
		sigset_t none;

		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(nullfd, 0) < 0 || dup2(2, 1) < 0)
			_exit(127);
		/* Our xenstore connection is not the script's business. */
		syscall(SYS_close_range, 3, ~0U, 0);
		execve(script, argv, env);
		_exit(127);
	}
	setpgid(pid, pid);	/* either side may win the race; both set it */
	r = child_wait(pid, timeout_s * 1000, &status);
	if (r == -ETIMEDOUT) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		snprintf(why, whylen, "%s %s timed out after %d s and was killed",
			 script, action, timeout_s);
		r = -EIO;
	} else if (r < 0) {
		snprintf(why, whylen, "waiting for %s: %s", script, strerror(-r));
		r = -EIO;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		r = 0;
	} else if (WIFEXITED(status)) {
		snprintf(why, whylen, "%s %s exited with status %d", script,
			 action, WEXITSTATUS(status));
		r = -EIO;
	} else {
		snprintf(why, whylen, "%s %s was killed by signal %d", script,
			 action, WTERMSIG(status));
		r = -EIO;
	}
out:
	hotplug_env_free(env);
	if (nullfd >= 0)
		close(nullfd);
	return r;
}

/* --- removal: libxl__initiate_device_generic_remove and friends -------- */

struct remove_ctx {
	struct vbd *v;
	bool force;
};

static int remove_start_txn(struct xs_handle *xs, xs_transaction_t t,
			    void *opaque)
{
	struct remove_ctx *c = opaque;
	struct vbd *v = c->v;
	char p[192];
	long state = -1;
	int r;

	v->be_gone = false;
	if (c->force && (r = xsim_path_cleanup(xs, t, v->fe)) < 0)
		return r;
	SUBPATH(p, v->be, XK_STATE);
	r = xsim_read_int(xs, t, p, &state);
	if (r == -ENOENT) {
		v->be_gone = true;
		return 0;
	}
	if (r < 0 && r != -EINVAL)
		return r;
	SUBPATH(p, v->be, XK_ONLINE);
	if ((r = xsim_write(xs, t, p, "0")) < 0)
		return r;
	/* The toolstack writes the backend's state: Closing asks it to
	 * disconnect. A backend already Closed is left alone. */
	if (state != XenbusStateClosed) {
		SUBPATH(p, v->be, XK_STATE);
		if ((r = xsim_write(xs, t, p, "5")) < 0)
			return r;
	}
	return 0;
}

static int remove_start(struct xs_handle *xs, struct vbd *v, bool force)
{
	struct remove_ctx c = { .v = v, .force = force };
	int r = xsim_transact(xs, remove_start_txn, &c);

	if (r < 0)
		xensim_err("cannot ask backend %s to close: %s", v->be, strerror(-r));
	return r;
}

/* libxl__device_destroy: frontend, /libxl copy and backend, each with the
 * parents it leaves empty. */
static int destroy_paths_txn(struct xs_handle *xs, xs_transaction_t t,
			     void *opaque)
{
	struct vbd *v = opaque;
	int r;

	if ((r = xsim_path_cleanup(xs, t, v->fe)) < 0 ||
	    (r = xsim_path_cleanup(xs, t, v->lx)) < 0 ||
	    (r = xsim_path_cleanup(xs, t, v->be)) < 0)
		return r;
	return 0;
}

static int destroy_paths(struct xs_handle *xs, struct vbd *v)
{
	int r = xsim_transact(xs, destroy_paths_txn, v);

	if (r < 0)
		xensim_err("cannot remove %s and its frontend: %s", v->be,
			   strerror(-r));
	return r;
}

/* The script for "remove": our private /libxl copy, which the backend
 * cannot rewrite, else the backend's node as libxl reads it. */
static char *remove_script(struct xs_handle *xs, const struct vbd *v)
{
	char *s = vbd_read(xs, v->lx, XK_SCRIPT);

	return s ? s : vbd_read(xs, v->be, XK_SCRIPT);
}

/* After the wait: run "remove" if the backend closed, then delete. */
static int remove_finish(struct xensim *x, struct xs_handle *xs, struct vbd *v,
			 int hotplug_timeout)
{
	char why[512];
	char *script;
	int r;

	if (v->closed && strcmp(v->kind, "vbd") == 0) {
		script = remove_script(xs, v);
		if (script) {
			r = hotplug_run(v, script, "remove", hotplug_timeout,
					why, sizeof(why));
			if (r < 0)
				xensim_err("warning: %s (ignored, as libxl does)", why);
			free(script);
		}
	}
	return destroy_paths(xs, v);
}

/* Waits for Closed; sets v->closed, or v->be_gone if the backend removed
 * its own dir. Returns 0 or -ETIMEDOUT (with *ret_last). */
static int remove_wait(struct xs_handle *xs, struct vbd *v, int64_t deadline,
		       long *ret_last)
{
	char p[192];
	int r;

	if (v->be_gone)
		return 0;
	SUBPATH(p, v->be, XK_STATE);
	r = xsim_wait_state(xs, p, XenbusStateClosed, deadline, ret_last);
	if (r == -ENOENT) {
		v->be_gone = true;
		return 0;
	}
	if (r == 0)
		v->closed = true;
	return r;
}

int xensim_vbd_remove_all(struct xensim *x, uint32_t domid, int timeout_s)
{
	struct xs_handle *xs;
	struct vbd *devs = NULL;
	size_t ndevs = 0, i, j;
	char **kinds = NULL, **ids = NULL;
	unsigned int nkinds, nids, k, d;
	char p[192], *end;
	unsigned long devid;
	int64_t deadline;
	long last;
	int r, rc = 0;

	if ((r = xensim_xs(x, &xs)) < 0)
		return r;
	devs = calloc(MAX_DEVICES, sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	/* Devices libxl knows (/libxl/<id>/device) and any backend dir for
	 * this domain (a device written by hand is removed too). */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0)
			snprintf(p, sizeof(p), "/libxl/%u/device", domid);
		else
			snprintf(p, sizeof(p), "/local/domain/%u/backend",
				 BACKEND_DOMID);
		if ((r = xsim_directory(xs, XBT_NULL, p, &kinds, &nkinds)) < 0)
			goto out;
		for (k = 0; k < nkinds; k++) {
			if (strlen(kinds[k]) >= KIND_LEN)
				continue;
			if (pass == 0)
				snprintf(p, sizeof(p), "/libxl/%u/device/%s",
					 domid, kinds[k]);
			else
				snprintf(p, sizeof(p),
					 "/local/domain/%u/backend/%s/%u",
					 BACKEND_DOMID, kinds[k], domid);
			if ((r = xsim_directory(xs, XBT_NULL, p, &ids, &nids)) < 0)
				goto out;
			for (d = 0; d < nids && ndevs < MAX_DEVICES; d++) {
				errno = 0;
				devid = strtoul(ids[d], &end, 10);
				if (errno || *end || end == ids[d] ||
				    devid > UINT32_MAX)
					continue;
				for (j = 0; j < ndevs; j++)
					if (devs[j].devid == devid &&
					    strcmp(devs[j].kind, kinds[k]) == 0)
						break;
				if (j == ndevs)
					vbd_init(&devs[ndevs++], kinds[k], domid,
						 (uint32_t)devid);
			}
			free(ids);
			ids = NULL;
		}
		free(kinds);
		kinds = NULL;
	}

	/* Start every removal first so all backends close in parallel and
	 * the whole destroy waits at most one timeout. */
	for (i = 0; i < ndevs; i++)
		if (remove_start(xs, &devs[i], true) < 0)
			rc = -EIO;
	deadline = xsim_now_ms() + (int64_t)timeout_s * 1000;
	for (i = 0; i < ndevs; i++) {
		r = remove_wait(xs, &devs[i], deadline, &last);
		if (r == -ETIMEDOUT) {
			xensim_err("warning: backend %s did not reach Closed "
				   "within %d s (state %ld); removing it anyway",
				   devs[i].be, timeout_s, last);
			rc = rc ? rc : r;
		}
	}
	for (i = 0; i < ndevs; i++)
		if (remove_finish(x, xs, &devs[i], XENSIM_HOTPLUG_TIMEOUT) < 0)
			rc = -EIO;
	r = rc;
out:
	free(ids);
	free(kinds);
	free(devs);
	return r;
}

/* --- block-attach -------------------------------------------------------- */

struct attach_ctx {
	struct vbd *v;
	const struct xensim_disk *d;
	const char *script;	/* absolute */
	const char *protocol;	/* NULL: no protocol node */
	bool trusted;
};

struct kv {
	const char *key;
	const char *val;
};

static int write_kvs(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		     const struct kv *kvs, size_t n,
		     struct xs_permissions *perms, unsigned int nperms)
{
	char p[192];
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		if (!kvs[i].val)
			continue;
		SUBPATH(p, dir, kvs[i].key);
		if ((r = xsim_write(xs, t, p, kvs[i].val)) < 0)
			return r;
		if (perms && (r = xsim_set_perms(xs, t, p, perms, nperms)) < 0)
			return r;
	}
	return 0;
}

static int attach_txn(struct xs_handle *xs, xs_transaction_t t, void *opaque)
{
	struct attach_ctx *c = opaque;
	struct vbd *v = c->v;
	const struct xensim_disk *d = c->d;
	struct xs_permissions fe_perms[2] = {
		{ v->domid, XS_PERM_NONE }, { BACKEND_DOMID, XS_PERM_READ }
	};
	struct xs_permissions be_perms[2] = {
		{ BACKEND_DOMID, XS_PERM_NONE }, { v->domid, XS_PERM_READ }
	};
	char domid_s[16], be_domid_s[16], devid_s[16], p[192];
	char *old;
	int r;

	snprintf(domid_s, sizeof(domid_s), "%u", v->domid);
	snprintf(be_domid_s, sizeof(be_domid_s), "%u", BACKEND_DOMID);
	snprintf(devid_s, sizeof(devid_s), "%u", v->devid);

	const struct kv back[] = {
		{ XK_PARAMS, d->target },
		{ XK_SCRIPT, c->script },
		{ XK_FRONTEND_ID, domid_s },
		{ XK_ONLINE, "1" },
		{ XK_REMOVABLE, d->removable ? "1" : "0" },
		{ XK_BOOTABLE, "1" },
		{ XK_STATE, "1" },
		{ XK_DEV, d->vdev },
		{ XK_TYPE, "phy" },
		{ XK_MODE, d->readwrite ? "w" : "r" },
		{ XK_DEVICE_TYPE, d->cdrom ? "cdrom" : "disk" },
		{ XK_DIRECT_IO_SAFE, d->direct_io_safe ? "1" : NULL },
		{ XK_DISCARD_ENABLE, d->discard ? "1" : "0" },
		{ XK_SPECIFICATION, "xen" },
	};
	const struct kv front[] = {
		{ XK_BACKEND_ID, be_domid_s },
		{ XK_STATE, "1" },
		{ XK_VIRTUAL_DEVICE, devid_s },
		{ XK_DEVICE_TYPE, d->cdrom ? "cdrom" : "disk" },
		{ XK_TRUSTED, c->trusted ? "1" : "0" },
		{ XK_PROTOCOL, c->protocol },
	};
#define NKV(a) (sizeof(a) / sizeof(a[0]))

	/* libxl__device_exists: the private copy says the vdev is taken. */
	old = xsim_read(xs, t, v->lx);
	if (old) {
		free(old);
		xensim_err("block-attach: %s (devid %u) is already attached to "
			   "domain %u", d->vdev, v->devid, v->domid);
		return -EEXIST;
	}
	if (errno != ENOENT)
		return -errno;

	/* libxl__device_generic_add, in its order. */
	SUBPATH(p, v->lx, XK_FRONTEND);
	if ((r = xsim_write(xs, t, p, v->fe)) < 0)
		return r;
	SUBPATH(p, v->lx, XK_BACKEND);
	if ((r = xsim_write(xs, t, p, v->be)) < 0)
		return r;

	if ((r = xsim_rm(xs, t, v->fe)) < 0 ||
	    (r = xsim_mknod(xs, t, v->fe, fe_perms, 2)) < 0)
		return r;
	SUBPATH(p, v->fe, XK_BACKEND);
	if ((r = xsim_write(xs, t, p, v->be)) < 0)
		return r;
	if ((r = write_kvs(xs, t, v->fe, front, NKV(front), fe_perms, 2)) < 0)
		return r;

	if ((r = xsim_rm(xs, t, v->be)) < 0 ||
	    (r = xsim_mknod(xs, t, v->be, be_perms, 2)) < 0)
		return r;
	SUBPATH(p, v->be, XK_FRONTEND);
	if ((r = xsim_write(xs, t, p, v->fe)) < 0)
		return r;
	/* Backend keys inherit the dir's permissions, as in libxl. */
	if ((r = write_kvs(xs, t, v->be, back, NKV(back), NULL, 0)) < 0)
		return r;
	return write_kvs(xs, t, v->lx, back, NKV(back), NULL, 0);
#undef NKV
}

/* After a failed add: tell whoever reads the backend why (unless the
 * script did), then take the device down like a forced detach. */
static void attach_fail_cleanup(struct xensim *x, struct xs_handle *xs,
				struct vbd *v, const char *why, int timeout_s,
				int hotplug_timeout)
{
	char p[192];
	char *err = vbd_read(xs, v->be, XK_HOTPLUG_ERROR);
	long last;

	if (!err) {
		SUBPATH(p, v->be, XK_HOTPLUG_ERROR);
		xsim_write(xs, XBT_NULL, p, why);
		SUBPATH(p, v->be, XK_HOTPLUG_STATUS);
		xsim_write(xs, XBT_NULL, p, "error");
	}
	free(err);
	if (remove_start(xs, v, true) == 0)
		remove_wait(xs, v, xsim_now_ms() + (int64_t)timeout_s * 1000,
			    &last);
	remove_finish(x, xs, v, hotplug_timeout);
}

static int protocol_check(const char *s, const char **ret)
{
	if (strcmp(s, "x86_32-abi") == 0 || strcmp(s, "x86_64-abi") == 0) {
		*ret = s;
		return 0;
	}
	if (strcmp(s, "none") == 0) {
		*ret = NULL;
		return 0;
	}
	return -EINVAL;
}

static char *script_resolve(const struct xensim *x, const char *script)
{
	char *abs;

	if (script[0] == '/')
		return strdup(script);
	if (asprintf(&abs, "%s/%s", x->script_dir, script) < 0)
		return NULL;
	return abs;
}

#define ATTACH_USAGE "usage: block-attach DOMAIN DISKSPEC... [--protocol " \
	"x86_32-abi|x86_64-abi|none] [--timeout S] [--hotplug-timeout S]"

int xensim_cmd_block_attach(struct xensim *x, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "protocol", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hotplug-timeout", required_argument, NULL, 'T' },
		{ 0 }
	};
	struct xensim_disk d = { 0 };
	struct attach_ctx c = { 0 };
	struct xs_handle *xs;
	struct vbd v;
	const char *protocol = DEFAULT_PROTOCOL, *untrusted;
	int timeout = XENSIM_INIT_TIMEOUT, hp_timeout = XENSIM_HOTPLUG_TIMEOUT;
	char err[256], why[512], p[192], *spec = NULL, *script = NULL, *herr;
	uint32_t domid, devid;
	size_t len = 0;
	long last;
	int opt, r, i;

	while ((opt = getopt_long(argc, argv, "p:t:T:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (protocol_check(optarg, &protocol) < 0) {
				xensim_err("block-attach: bad --protocol '%s' (want "
					   "x86_32-abi, x86_64-abi or none)", optarg);
				return -EINVAL;
			}
			break;
		case 't':
		case 'T':
			if (xensim_parse_seconds(optarg, opt == 't' ? &timeout :
						 &hp_timeout) < 0) {
				xensim_err("block-attach: bad timeout '%s' "
					   "(seconds, 1 to 3600)", optarg);
				return -EINVAL;
			}
			break;
		default:
			xensim_err(ATTACH_USAGE);
			return -EINVAL;
		}
	}
	if (argc - optind < 2) {
		xensim_err(ATTACH_USAGE);
		return -EINVAL;
	}
	/* Several spec words are one spec, as in xl block-attach. */
	for (i = optind + 1; i < argc; i++)
		len += strlen(argv[i]) + 1;
	spec = calloc(1, len + 1);
	if (!spec)
		return -ENOMEM;
	for (i = optind + 1; i < argc; i++) {
		if (i > optind + 1)
			strcat(spec, ",");
		strcat(spec, argv[i]);
	}
	r = xensim_disk_parse(spec, &d, err, sizeof(err));
	free(spec);
	if (r < 0) {
		xensim_err("block-attach: bad disk spec: %s", err);
		return r;
	}
	r = xensim_vdev_to_devid(d.vdev, &devid);
	if (r < 0)
		goto out;
	if ((r = xensim_xs(x, &xs)) < 0)
		goto out;
	if ((r = xensim_domain_resolve(x, argv[optind], &domid)) < 0)
		goto out;
	script = script_resolve(x, d.script ? d.script : XENSIM_DEFAULT_SCRIPT);
	if (!script) {
		r = -ENOMEM;
		goto out;
	}

	vbd_init(&v, "vbd", domid, devid);
	c.v = &v;
	c.d = &d;
	c.script = script;
	c.protocol = protocol;
	untrusted = getenv("LIBXL_DISK_BACKEND_UNTRUSTED");
	c.trusted = d.trusted >= 0 ? d.trusted :
		    (!untrusted || strcmp(untrusted, "0") == 0);
	r = xsim_transact(xs, attach_txn, &c);
	if (r < 0) {
		if (r != -EEXIST)
			xensim_err("block-attach: cannot write %s: %s", v.be,
				   strerror(-r));
		goto out;
	}

	/* libxl__wait_device_connection: the backend has LIBXL_INIT_TIMEOUT
	 * to claim the device and reach InitWait. */
	SUBPATH(p, v.be, XK_STATE);
	r = xsim_wait_state(xs, p, XenbusStateInitWait,
			    xsim_now_ms() + (int64_t)timeout * 1000, &last);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			xensim_err("block-attach: backend %s did not reach InitWait "
				   "(2) within %d s (state %ld: %s); is a backend "
				   "serving script=%s? Device removed.", v.be,
				   timeout, last, xenbus_state_name(last),
				   script);
		else if (r == -ENOENT)
			xensim_err("block-attach: backend %s vanished before "
				   "InitWait; device removed", v.be);
		else
			xensim_err("block-attach: waiting for %s: %s", p,
				   strerror(-r));
		/* Nobody answered: nothing to close, just delete. */
		destroy_paths(xs, &v);
		if (r == -ENOENT)
			r = -EIO;
		goto out;
	}

	r = hotplug_run(&v, script, "add", hp_timeout, why, sizeof(why));
	if (r < 0) {
		herr = vbd_read(xs, v.be, XK_HOTPLUG_ERROR);
		xensim_err("block-attach: hotplug script failed: %s%s%s", why,
			   herr ? ": " : "", herr ? herr : "");
		free(herr);
		attach_fail_cleanup(x, xs, &v, why, XENSIM_DESTROY_TIMEOUT,
				    hp_timeout);
		goto out;
	}
	printf("%u\n", devid);
	r = 0;
out:
	free(script);
	xensim_disk_done(&d);
	return r;
}

/* --- block-detach -------------------------------------------------------- */

#define DETACH_USAGE "usage: block-detach DOMAIN VDEV|DEVID [--force] " \
	"[--timeout S] [--hotplug-timeout S]"

int xensim_cmd_block_detach(struct xensim *x, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hotplug-timeout", required_argument, NULL, 'T' },
		{ 0 }
	};
	int timeout = XENSIM_DESTROY_TIMEOUT, hp_timeout = XENSIM_HOTPLUG_TIMEOUT;
	struct xs_handle *xs;
	struct vbd v;
	uint32_t domid, devid;
	char *lxbe, *be;
	bool force = false;
	long last;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "ft:T:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			force = true;
			break;
		case 't':
		case 'T':
			if (xensim_parse_seconds(optarg, opt == 't' ? &timeout :
						 &hp_timeout) < 0) {
				xensim_err("block-detach: bad timeout '%s' "
					   "(seconds, 1 to 3600)", optarg);
				return -EINVAL;
			}
			break;
		default:
			xensim_err(DETACH_USAGE);
			return -EINVAL;
		}
	}
	if (argc - optind != 2) {
		xensim_err(DETACH_USAGE);
		return -EINVAL;
	}
	if (xensim_vdev_to_devid(argv[optind + 1], &devid) < 0) {
		xensim_err("block-detach: invalid vdev '%s'", argv[optind + 1]);
		return -EINVAL;
	}
	if ((r = xensim_xs(x, &xs)) < 0)
		return r;
	if ((r = xensim_domain_resolve(x, argv[optind], &domid)) < 0)
		return r;
	vbd_init(&v, "vbd", domid, devid);

	/* libxl finds the device through its private copy; a backend dir
	 * without one (written by hand) is detached all the same. */
	lxbe = vbd_read(xs, v.lx, XK_BACKEND);
	be = xsim_read(xs, XBT_NULL, v.be);
	if (!lxbe && !be) {
		xensim_err("block-detach: domain %u has no disk %s (devid %u)",
			   domid, argv[optind + 1], devid);
		return -ENOENT;
	}
	if (lxbe && strcmp(lxbe, v.be) != 0)
		xensim_err("warning: %s/backend is '%s', expected %s; using %s",
			   v.lx, lxbe, v.be, v.be);
	free(lxbe);
	free(be);

	if ((r = remove_start(xs, &v, force)) < 0)
		return r;
	if (v.be_gone)
		xensim_err("note: backend %s already removed, cleaning up the "
			   "frontend only", v.be);
	r = remove_wait(xs, &v, xsim_now_ms() + (int64_t)timeout * 1000, &last);
	if (r == -ETIMEDOUT && !force) {
		/* FORCE_OFF: nothing is deleted; the backend keeps online=0
		 * and Closing and may still finish. */
		xensim_err("block-detach: backend %s did not reach Closed (6) "
			   "within %d s (state %ld: %s); device left in place "
			   "(online=0). Retry, or use --force.", v.be, timeout,
			   last, xenbus_state_name(last));
		return r;
	}
	if (r == -ETIMEDOUT) {
		/* FORCE_ON: removed anyway, without the remove script, and
		 * still reported as a failure, as xl block-detach -f does. */
		xensim_err("block-detach: backend %s did not reach Closed (6) "
			   "within %d s (state %ld: %s); removed it anyway "
			   "without running the remove script", v.be, timeout,
			   last, xenbus_state_name(last));
		destroy_paths(xs, &v);
		return r;
	}
	if (r < 0) {
		xensim_err("block-detach: waiting for %s: %s", v.be, strerror(-r));
		return r;
	}
	return remove_finish(x, xs, &v, hp_timeout);
}

/* --- block-list ---------------------------------------------------------- */

int xensim_cmd_block_list(struct xensim *x, int argc, char **argv)
{
	struct xs_handle *xs;
	char **ids = NULL, *vdev, *target, *mode, *end, p[192], bs[24], fs[24];
	unsigned int n, i;
	unsigned long devid;
	uint32_t domid;
	struct vbd v;
	int r;

	if (argc != 2) {
		xensim_err("usage: block-list DOMAIN");
		return -EINVAL;
	}
	if ((r = xensim_xs(x, &xs)) < 0)
		return r;
	if ((r = xensim_domain_resolve(x, argv[1], &domid)) < 0)
		return r;
	snprintf(p, sizeof(p), "/libxl/%u/device/vbd", domid);
	if ((r = xsim_directory(xs, XBT_NULL, p, &ids, &n)) < 0) {
		xensim_err("block-list: cannot list %s: %s", p, strerror(-r));
		return r;
	}
	printf("%-8s %10s %3s %3s %-4s %s\n", "Vdev", "DevId", "BE", "FE",
	       "Mode", "Target");
	for (i = 0; i < n; i++) {
		errno = 0;
		devid = strtoul(ids[i], &end, 10);
		if (errno || *end || end == ids[i] || devid > UINT32_MAX)
			continue;
		vbd_init(&v, "vbd", domid, (uint32_t)devid);
		vdev = vbd_read(xs, v.lx, XK_DEV);
		target = vbd_read(xs, v.lx, XK_PARAMS);
		mode = vbd_read(xs, v.lx, XK_MODE);
		printf("%-8s %10u %3s %3s %-4s %s\n", vdev ? vdev : "-",
		       v.devid, vbd_state_str(xs, v.be, bs, sizeof(bs)),
		       vbd_state_str(xs, v.fe, fs, sizeof(fs)),
		       mode ? mode : "-", target ? target : "-");
		free(vdev);
		free(target);
		free(mode);
	}
	free(ids);
	return 0;
}
