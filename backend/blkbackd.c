/* blkbackd: a Xen PV block backend in dom0 userspace. main() reads as a
 * script: options, logging, signals through a signalfd, xenstore, the
 * platform seam, then one epoll loop on the main thread that never blocks
 * on I/O (each connected ring has its own thread). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "blkbackd.h"
#include "control-proto.h"
#include "kernel-blkback.h"
#include "util.h"

#define DEFAULT_SCRIPT_NAME	"blkbackd"
#define DEFAULT_RESIZE_MS	1000
#define DEFAULT_JOURNAL_DIR	"/run/blkbackd/journal"
#define SIM_JOURNAL_NAME	"journal"		/* in the simulator DIR */

enum { EXIT_USAGE = 2 };

static const char usage_text[] =
	"Usage: blkbackd [OPTIONS]\n"
	"Serve Xen PV block devices (blkif) from userspace.\n\n"
	"  -d, --foreground          stay in the foreground and log to stderr\n"
	"  -v, --verbose             more log output (twice: debug)\n"
	"  -p, --pidfile FILE        write our pid to FILE\n"
	"  -t, --check-config        check the options and the platform, then exit\n"
	"      --platform NAME       xen or sim (default: xen if /dev/xen/gntdev exists)\n"
	"      --dir DIR             simulator directory (default: $XENSIM_DIR)\n"
	"      --io-engine NAME      auto, uring, thread, or null (benchmarks: no\n"
	"                            storage at all) (default: auto)\n"
	"      --script-name NAME    claim vbds whose script is NAME (default: blkbackd)\n"
	"      --direct-io           always open storage with O_DIRECT\n"
	"      --sector-size N       logical sector size of file storage: 512 or 4096\n"
	"      --resize-interval MS  check storage sizes every MS ms, 0: SIGHUP only\n"
	"      --max-indirect-segments N  advertise INDIRECT requests of up to N\n"
	"                            segments, 0..4096, 0: none (default: 256)\n"
	"      --max-persistent-grants N  map up to N persistent grants per ring,\n"
	"                            0: do not offer feature-persistent (default: 1056)\n"
	"      --nbd-reconnect S     requests on a lost NBD connection wait up to S\n"
	"                            seconds for it to come back, 0..3600 (default: 60)\n"
	"      --max-queues N        advertise up to N rings per vbd, 1..16\n"
	"                            (default: online CPUs, at most 16)\n"
	"      --max-domain-memory MIB  ring buffers of one guest's disks pin at most\n"
	"                            MIB MiB, 0: no limit (default: 1024)\n"
	"      --control PATH        control socket (default: " CONTROL_PATH_DEFAULT ",\n"
	"                            DIR/" CONTROL_SIM_NAME " on the simulator), none: off\n"
	"      --control-group GROUP members of GROUP may use the control socket too\n"
	"      --journal-dir DIR     recovery journals (default: " DEFAULT_JOURNAL_DIR ",\n"
	"                            DIR/" SIM_JOURNAL_NAME " on the simulator), none: off\n"
	"      --recovery POLICY     after a restart, requests in flight when the\n"
	"                            earlier process died are issued again (reissue,\n"
	"                            the default) or answered with an error (fail)\n"
	"  -h, --help                this text\n"
	"  -V, --version             print the version\n";

enum {
	OPT_PLATFORM = 256, OPT_DIR, OPT_IO_ENGINE, OPT_SCRIPT_NAME, OPT_DIRECT_IO,
	OPT_SECTOR_SIZE, OPT_RESIZE_INTERVAL, OPT_MAX_INDIRECT, OPT_CONTROL, OPT_CONTROL_GROUP,
	OPT_MAX_QUEUES, OPT_JOURNAL_DIR, OPT_RECOVERY, OPT_MAX_PGRANTS, OPT_NBD_RECONNECT,
	OPT_MAX_DOMAIN_MEMORY,
};

static const struct option long_options[] = {
	{ "foreground", no_argument, NULL, 'd' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "pidfile", required_argument, NULL, 'p' },
	{ "check-config", no_argument, NULL, 't' },
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "io-engine", required_argument, NULL, OPT_IO_ENGINE },
	{ "script-name", required_argument, NULL, OPT_SCRIPT_NAME },
	{ "direct-io", no_argument, NULL, OPT_DIRECT_IO },
	{ "sector-size", required_argument, NULL, OPT_SECTOR_SIZE },
	{ "resize-interval", required_argument, NULL, OPT_RESIZE_INTERVAL },
	{ "max-indirect-segments", required_argument, NULL, OPT_MAX_INDIRECT },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "max-queues", required_argument, NULL, OPT_MAX_QUEUES },
	{ "control-group", required_argument, NULL, OPT_CONTROL_GROUP },
	{ "journal-dir", required_argument, NULL, OPT_JOURNAL_DIR },
	{ "max-persistent-grants", required_argument, NULL, OPT_MAX_PGRANTS },
	{ "nbd-reconnect", required_argument, NULL, OPT_NBD_RECONNECT },
	{ "max-domain-memory", required_argument, NULL, OPT_MAX_DOMAIN_MEMORY },
	{ "recovery", required_argument, NULL, OPT_RECOVERY },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* The decimal value of --name, min..max, or a message and -EINVAL. */
static int option_number(const char *name, const char *arg, long min, long max, long *ret)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n < min || n > max) {
		fprintf(stderr, "blkbackd: bad --%s '%s' (%ld..%ld)\n", name, arg, min, max);
		return -EINVAL;
	}
	*ret = n;
	return 0;
}

/* Returns 0 to run, 1 to exit successfully (help, version), -EINVAL. */
static int options_parse(struct blkbackd *d, int argc, char **argv, int *verbose, bool *check)
{
	long n;
	int c;

	while ((c = getopt_long(argc, argv, "dvp:thV", long_options, NULL)) != -1) {
		switch (c) {
		case 'd':
			d->foreground = true;
			break;
		case 'v':
			(*verbose)++;
			break;
		case 'p':
			d->pidfile = optarg;
			break;
		case 't':
			*check = true;
			break;
		case OPT_PLATFORM:
			if (strcmp(optarg, "xen") != 0 && strcmp(optarg, "sim") != 0) {
				fprintf(stderr, "blkbackd: unknown platform '%s' (xen, sim)\n", optarg);
				return -EINVAL;
			}
			d->platform_name = optarg;
			break;
		case OPT_DIR:
			d->sim_dir = optarg;
			break;
		case OPT_IO_ENGINE:
			if (io_engine_kind_parse(optarg, &d->engine) < 0) {
				fprintf(stderr, "blkbackd: unknown io engine '%s' (auto, uring, "
					"thread, null)\n", optarg);
				return -EINVAL;
			}
			if (d->engine == IO_ENGINE_NULL)
				fprintf(stderr, "blkbackd: --io-engine null: nothing is read or "
					"written, every request succeeds (for benchmarks)\n");
			break;
		case OPT_SCRIPT_NAME:
			if (!*optarg || strchr(optarg, '/')) {
				fprintf(stderr, "blkbackd: --script-name takes a basename\n");
				return -EINVAL;
			}
			d->script_name = optarg;
			break;
		case OPT_DIRECT_IO:
			d->direct_io = true;
			break;
		case OPT_SECTOR_SIZE:
			if (strcmp(optarg, "512") == 0) {
				d->sector_4k = false;
			} else if (strcmp(optarg, "4096") == 0) {
				d->sector_4k = true;
			} else {
				fprintf(stderr, "blkbackd: --sector-size is 512 or 4096\n");
				return -EINVAL;
			}
			break;
		case OPT_RESIZE_INTERVAL:
			if (option_number("resize-interval", optarg, 0, 3600000, &n) < 0)
				return -EINVAL;
			d->resize_interval_ms = (int)n;
			break;
		case OPT_MAX_INDIRECT:
			if (option_number("max-indirect-segments", optarg, 0,
					  BLKIF_MAX_INDIRECT_SEGMENTS, &n) < 0)
				return -EINVAL;
			d->max_indirect_segs = (unsigned int)n;
			break;
		case OPT_MAX_QUEUES:
			if (option_number("max-queues", optarg, 1, BLKBACKD_MAX_QUEUES, &n) < 0)
				return -EINVAL;
			d->max_queues = (unsigned int)n;
			break;
		case OPT_MAX_PGRANTS:
			if (option_number("max-persistent-grants", optarg, 0, 65536, &n) < 0)
				return -EINVAL;
			d->max_pgrants = (unsigned int)n;
			break;
		case OPT_NBD_RECONNECT:
			if (option_number("nbd-reconnect", optarg, 0, 3600, &n) < 0)
				return -EINVAL;
			d->nbd_reconnect_s = (unsigned int)n;
			break;
		case OPT_MAX_DOMAIN_MEMORY:
			if (option_number("max-domain-memory", optarg, 0, 1L << 20, &n) < 0)
				return -EINVAL;
			d->max_domain_memory = (size_t)n << 20;
			break;
		case OPT_CONTROL:
			d->control_path = optarg;
			break;
		case OPT_CONTROL_GROUP:
			d->control_group = optarg;
			break;
		case OPT_JOURNAL_DIR:
			if (optarg[0] != '/' && strcmp(optarg, "none") != 0) {
				fprintf(stderr, "blkbackd: --journal-dir takes an absolute path or none\n");
				return -EINVAL;
			}
			d->journal_dir = optarg;
			break;
		case OPT_RECOVERY:
			if (strcmp(optarg, RECOVERY_REISSUE) == 0) {
				d->recover_fail = false;
			} else if (strcmp(optarg, RECOVERY_FAIL) == 0) {
				d->recover_fail = true;
			} else {
				fprintf(stderr, "blkbackd: --recovery is %s or %s\n", RECOVERY_REISSUE,
					RECOVERY_FAIL);
				return -EINVAL;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 1;
		case 'V':
			printf("blkbackd %s\n", PACKAGE_VERSION);
			return 1;
		default:
			fputs(usage_text, stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "blkbackd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int pidfile_write(const char *path)
{
	FILE *f;
	int r = 0;

	f = fopen(path, "we");
	if (!f)
		return -errno;
	if (fprintf(f, "%ld\n", (long)getpid()) < 0)
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

/* systemd (Type=notify): READY=1 once the initial scan is done, WATCHDOG=1
 * from the main loop, STOPPING=1 on the way out. Outside systemd
 * sd_notify() does nothing. */
static void notify(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		log_errno(LOG_LEVEL_DEBUG, r, "sd_notify %s", state);
}

/* STATUS= for systemctl status: how many vbds are served, when it changed
 * since the last call (after each event the main loop handled). */
static void notify_status(struct blkbackd *d)
{
	static unsigned int last_claimed = ~0u, last_connected = ~0u;
	unsigned int claimed = 0, connected = 0;
	struct vbd *v;

	for (v = d->vbds; v; v = v->next) {
		if (v->phase == VBD_FOREIGN)
			continue;
		claimed++;
		connected += v->phase == VBD_CONNECTED;
	}
	if (claimed == last_claimed && connected == last_connected)
		return;
	last_claimed = claimed;
	last_connected = connected;
	sd_notifyf(0, "STATUS=serving %u vbd%s, %u connected", claimed,
		   claimed == 1 ? "" : "s", connected);
}

/* A timerfd firing at half systemd's WatchdogSec (0: no watchdog wanted).
 * Pinging from the loop itself, not a thread, is the point: a wedged main
 * loop stops the pings and systemd restarts us. */
static int watchdog_open(void)
{
	struct itimerspec its = { 0 };
	uint64_t usec = 0;
	int fd;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	usec /= 2;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	its.it_interval.tv_sec = (time_t)(usec / 1000000);
	its.it_interval.tv_nsec = (long)(usec % 1000000) * 1000;
	if (its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 0)
		its.it_interval.tv_nsec = 1000;
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* Signals arrive through a signalfd; block them in every thread. */
static int signals_open(sigset_t *mask)
{
	int fd;

	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, mask, NULL) != 0)
		return -EINVAL;
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* One round of size checks over every vbd (the timer, SIGHUP). Local
 * storage is read a few vbds at a time on threads (storage_size_start):
 * when they are all taken the round stops at that vbd, and goes on from
 * there as answers come in (blkbackd_resize_continue), so each vbd gets
 * its turn however many there are. */
static void blkbackd_resize_from(struct blkbackd *d, struct vbd *v)
{
	for (; v; v = v->next) {
		if (vbd_check_resize(v) == -EAGAIN) {
			d->resize_next = v;
			return;
		}
	}
	d->resize_next = NULL;
}

static void blkbackd_check_resize(struct blkbackd *d)
{
	/* A round still going on just goes on. */
	if (!d->resize_next)
		blkbackd_resize_from(d, d->vbds);
}

/* After size answers came in: the round that stopped at resize_next goes
 * on from there, if that vbd is still on the list (else from the start:
 * nothing is lost but a few repeated checks). */
static void blkbackd_resize_continue(struct blkbackd *d)
{
	struct vbd *v;

	if (!d->resize_next)
		return;
	for (v = d->vbds; v && v != d->resize_next; v = v->next)
		;
	blkbackd_resize_from(d, v ? v : d->vbds);
}

static void blkbackd_poll_rings(struct blkbackd *d)
{
	struct vbd *v, *next;

	for (v = d->vbds; v; v = next) {
		next = v->next;
		if (vbd_is_busy(v))
			vbd_poll_rings(v);
	}
}

static void handle_signal(struct blkbackd *d, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("signal %u: shutting down", si.ssi_signo);
			d->quitting = true;
			break;
		case SIGHUP:
			log_info("SIGHUP: checking storage sizes");
			blkbackd_check_resize(d);
			break;
		}
	}
}

enum { EV_XENSTORE, EV_FRONTEND, EV_STORAGE, EV_SIGNAL, EV_WAKE, EV_TIMER, EV_CONTROL, EV_WATCHDOG };

static int epoll_add(int ep, int fd, uint32_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = tag };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* A journal is kept while a ring of its vbd runs from it, and while the
 * vbd still waits to be taken over (its storage did not open yet, say):
 * without it, that takeover could only guess. */
static bool journal_in_use(void *opaque, uint32_t fe_domid, uint32_t devid, uint32_t queue)
{
	struct vbd *v = vbd_find(opaque, fe_domid, devid);

	return v && (queue < v->nr_rings || v->takeover);
}

static void blkbackd_sweep_journals(struct blkbackd *d)
{
	unsigned int removed = 0;
	int r;

	if (!d->journal_dir)
		return;
	r = journal_sweep(d->journal_dir, journal_in_use, d, &removed);
	if (r < 0)
		log_errno(LOG_LEVEL_WARN, r, "cannot look through %s", d->journal_dir);
	else if (removed)
		log_info("removed %u journal%s of vbds no longer served", removed,
			 removed == 1 ? "" : "s");
}

/* The main loop: xenstore events, signals, ring threads, resize timer. */
static int blkbackd_run(struct blkbackd *d, int sfd)
{
	struct epoll_event evs[8];
	int ep, tfd = -1, wfd = -1, r, i, n;
	uint64_t val;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -errno;
	r = epoll_add(ep, xenbus_fd(d), EV_XENSTORE);
	if (r >= 0)
		r = epoll_add(ep, fewatch_fd(d), EV_FRONTEND);
	if (r >= 0)
		r = epoll_add(ep, storage_open_fd(d), EV_STORAGE);
	if (r >= 0)
		r = epoll_add(ep, sfd, EV_SIGNAL);
	if (r >= 0)
		r = epoll_add(ep, d->wake_fd, EV_WAKE);
	if (r >= 0 && d->ctl)
		r = epoll_add(ep, control_fd(d), EV_CONTROL);
	if (r >= 0 && d->resize_interval_ms > 0) {
		struct itimerspec its = { 0 };

		tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (tfd < 0) {
			r = -errno;
			goto out;
		}
		its.it_interval.tv_sec = d->resize_interval_ms / 1000;
		its.it_interval.tv_nsec = (long)(d->resize_interval_ms % 1000) * 1000000;
		its.it_value = its.it_interval;
		if (timerfd_settime(tfd, 0, &its, NULL) < 0) {
			r = -errno;
			goto out;
		}
		r = epoll_add(ep, tfd, EV_TIMER);
	}
	if (r >= 0) {
		wfd = watchdog_open();
		r = wfd > 0 ? epoll_add(ep, wfd, EV_WATCHDOG) : wfd;
	}
	if (r < 0)
		goto out;

	/* Catch up with what exists already (the initial watch event does
	 * this too; doing it here makes startup independent of it). Vbds an
	 * earlier process served are taken over here, from their journals;
	 * the journals nobody took are of vbds that went away meanwhile. */
	xenbus_scan(d);
	xenbus_dispatch(d);
	/* Every vbd stepped once before the sweep: one not yet looked at
	 * has not claimed its journal. */
	while (d->more_dirty && !d->quitting)
		xenbus_run_dirty(d);
	blkbackd_sweep_journals(d);
	io_providers_sweep();
	notify("READY=1");
	notify_status(d);

	while (!d->quitting) {
		n = epoll_wait(ep, evs, 8, d->more_dirty ? 0 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		for (i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case EV_XENSTORE:
				xenbus_dispatch(d);
				break;
			case EV_FRONTEND:
				fewatch_collect(d);
				xenbus_run_dirty(d);
				break;
			case EV_STORAGE:
				storage_open_collect(d);
				blkbackd_resize_continue(d);
				xenbus_run_dirty(d);
				break;
			case EV_SIGNAL:
				handle_signal(d, sfd);
				break;
			case EV_WAKE:
				if (read(d->wake_fd, &val, sizeof(val)) < 0) {
					/* EAGAIN: another wake was merged in */
				}
				blkbackd_poll_rings(d);
				break;
			case EV_TIMER:
				if (read(tfd, &val, sizeof(val)) < 0) {
					/* EAGAIN: nothing expired */
				}
				blkbackd_check_resize(d);
				break;
			case EV_CONTROL:
				control_dispatch(d);
				break;
			case EV_WATCHDOG:
				if (read(wfd, &val, sizeof(val)) < 0) {
					/* EAGAIN: nothing expired */
				}
				notify("WATCHDOG=1");
				break;
			}
		}
		if (d->more_dirty)
			xenbus_run_dirty(d);
		notify_status(d);
	}
	r = 0;
out:
	if (wfd > 0)
		close(wfd);
	if (tfd >= 0)
		close(tfd);
	close(ep);
	return r;
}

/* A path the options may leave unset (*path NULL): dflt on Xen, DIR/name
 * in the simulator, so each simulator DIR (each test) has its own.
 * "none" becomes NULL: off. */
static int blkbackd_default_path(struct blkbackd *d, const char **path, const char *dflt,
				 const char *name, char **ret_buf)
{
	const char *dir = d->sim_dir ? d->sim_dir : getenv("XENSIM_DIR");

	if (*path && strcmp(*path, "none") == 0) {
		*path = NULL;
		return 0;
	}
	if (*path)
		return 0;
	*path = dflt;
	if (strcmp(platform_name(d->plat), "sim") == 0 && dir) {
		if (asprintf(ret_buf, "%s/%s", dir, name) < 0)
			return -ENOMEM;
		*path = *ret_buf;
	}
	return 0;
}

static int blkbackd_control_open(struct blkbackd *d, char **ret_buf)
{
	int r = blkbackd_default_path(d, &d->control_path, CONTROL_PATH_DEFAULT, CONTROL_SIM_NAME,
				      ret_buf);

	return r < 0 || !d->control_path ? r : control_open(d);
}

/* Who we are, for blkback-ctl status and upgrade: the binary's path as it
 * is now (a package upgrade may replace the file later; exec then runs
 * the new one), a random instance and the start time. */
static void blkbackd_identity(struct blkbackd *d)
{
	char buf[PATH_MAX];
	ssize_t n;

	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		d->exe_path = strdup(buf);
	}
	if (getrandom(&d->instance, sizeof(d->instance), 0) != sizeof(d->instance))
		d->instance = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	d->started = time(NULL);
}

/* Live upgrade: everything is closed and every journal kept; the new
 * program re-parses the same arguments and takes the vbds over. Only
 * returns on failure (then we exit, and systemd's restart or the operator
 * brings a blkbackd back, which takes over the same way). */
static void blkbackd_exec(struct blkbackd *d, char **argv)
{
	notify("RELOADING=1");
	log_info("upgrade: exec %s", d->exe_path);
	execv(d->exe_path, argv);
	log_errno(LOG_LEVEL_ERR, -errno, "upgrade: cannot exec %s", d->exe_path);
}

/* In-flight requests are answered before we unmap; storage that never
 * completes would keep us here, so the drain has a bound. */
#define SHUTDOWN_DRAIN_MS	4000

/* Drains every vbd at once: all rings are told to stop, then each vbd is
 * finished as its rings report (through wake_fd) that they drained. */
static void blkbackd_shutdown(struct blkbackd *d)
{
	uint64_t now, deadline = clock_mono_ms() + SHUTDOWN_DRAIN_MS;
	struct pollfd pfd = { .fd = d->wake_fd, .events = POLLIN };
	struct vbd *v, *next;
	bool waiting;
	uint64_t val;

	xenbus_forget_dirty(d);
	for (v = d->vbds; v; v = v->next)
		vbd_shutdown_start(v);
	for (;;) {
		now = clock_mono_ms();
		waiting = false;
		for (v = d->vbds; v; v = next) {
			next = v->next;
			if (!vbd_shutdown_finish(v, now >= deadline))
				waiting = true;
		}
		if (!waiting)
			break;
		/* Read before the next look: a wake after it is not lost. */
		if (poll(&pfd, 1, (int)(deadline - now)) > 0 &&
		    read(d->wake_fd, &val, sizeof(val)) < 0) {
			/* EAGAIN: another reader took it; look anyway */
		}
	}
}

int main(int argc, char **argv)
{
	struct blkbackd d = {
		.script_name = DEFAULT_SCRIPT_NAME,
		.engine = IO_ENGINE_AUTO,
		.resize_interval_ms = DEFAULT_RESIZE_MS,
		.max_indirect_segs = BLKBACKD_DEFAULT_INDIRECT_SEGS,
		.max_pgrants = BLKBACKD_DEFAULT_PGRANTS,
		.nbd_reconnect_s = BLKBACKD_DEFAULT_NBD_RECONNECT_S,
		.max_domain_memory = (size_t)BLKBACKD_DEFAULT_DOMAIN_MEMORY_MIB << 20,
		.wake_fd = -1,
	};
	struct platform_config pc = { 0 };
	int verbose = 0, sfd = -1, r, status = EXIT_FAILURE;
	bool check = false;
	char *control_buf = NULL, *journal_buf = NULL;
	sigset_t mask;

	r = options_parse(&d, argc, argv, &verbose, &check);
	if (r == 0 && !d.max_queues) {
		/* One ring thread per CPU is what helps; more only share them. */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		d.max_queues = cpus < 1 ? 1 : cpus > (long)BLKBACKD_MAX_QUEUES ?
			       BLKBACKD_MAX_QUEUES : (unsigned int)cpus;
	}
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : EXIT_USAGE;
	blkbackd_identity(&d);
	log_init("blkbackd", d.foreground || check,
		 verbose >= 2 ? LOG_LEVEL_DEBUG : verbose ? LOG_LEVEL_INFO : LOG_LEVEL_WARN);
	if (verbose == 0 && d.foreground)
		log_set_level(LOG_LEVEL_INFO);

	sfd = signals_open(&mask);
	if (sfd < 0) {
		log_errno(LOG_LEVEL_ERR, sfd, "cannot set up signals");
		goto out;
	}
	d.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d.wake_fd < 0) {
		log_errno(LOG_LEVEL_ERR, -errno, "eventfd");
		goto out;
	}
	r = xenbus_open(&d);
	if (r < 0)
		goto out;
	r = fewatch_start(&d);
	if (r < 0)
		goto out;
	r = storage_open_init(&d);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot set up storage opens");
		goto out;
	}
	pc.name = d.platform_name;
	pc.sim_dir = d.sim_dir;
	pc.sim_domid = (int)d.domid;
	r = platform_open(&pc, &d.plat);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot open platform %s",
			  d.platform_name ? d.platform_name : "(default)");
		goto out;
	}
	log_info("platform %s, domain %u, io engine %s", platform_name(d.plat), d.domid,
		 io_engine_kind_name(d.engine));
	if (strcmp(platform_name(d.plat), "xen") == 0 && kernel_blkback_check("/sys") < 0)
		goto out;
	if (check) {
		status = EXIT_SUCCESS;
		goto out;
	}
	r = blkbackd_default_path(&d, &d.journal_dir, DEFAULT_JOURNAL_DIR, SIM_JOURNAL_NAME,
				  &journal_buf);
	if (r < 0)
		goto out;
	r = blkbackd_control_open(&d, &control_buf);
	if (r < 0)
		goto out;
	if (d.pidfile) {
		r = pidfile_write(d.pidfile);
		if (r < 0) {
			log_errno(LOG_LEVEL_ERR, r, "cannot write %s", d.pidfile);
			goto out;
		}
	}
	r = blkbackd_run(&d, sfd);
	if (r < 0)
		log_errno(LOG_LEVEL_ERR, r, "main loop");
	notify("STOPPING=1");
	blkbackd_shutdown(&d);
	if (r == 0 && !d.failed)
		status = EXIT_SUCCESS;
out:
	if (d.pidfile && !check)
		unlink(d.pidfile);
	control_close(&d);
	free(control_buf);
	free(journal_buf);
	platform_close(d.plat);
	storage_open_done(&d);
	fewatch_stop(&d);
	xenbus_close(&d);
	if (d.wake_fd >= 0)
		close(d.wake_fd);
	if (sfd >= 0)
		close(sfd);
	if (d.upgrade && status == EXIT_SUCCESS) {
		/* The signals we blocked stay blocked across exec; the new
		 * program sets up its signalfd the same way. */
		blkbackd_exec(&d, argv);
		status = EXIT_FAILURE;
	}
	free(d.exe_path);
	return status;
}
