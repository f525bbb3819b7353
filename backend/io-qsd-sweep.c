/* Daemons nobody serves any more: a blkbackd that died leaves its
 * qemu-storage-daemons running, each holding its image's lock; once the
 * successor's takeovers have adopted theirs, the rest are stopped. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io-qsd.h"

/* How long after the takeover scan the sweep waits: the opens that scan
 * started adopt their daemons meanwhile (each is bounded by the start
 * timeout), so the sweep sees only the daemons no vbd took. */
#define QSD_SWEEP_DELAY_MS (QSD_START_TIMEOUT_MS + 5000)

/* Whether a daemon of this process serves sock (registry lock held). */
static bool sock_in_use(const char *sock)
{
	const struct qsd_daemon *d;

	for (d = qsd_registry; d; d = d->next)
		if (strcmp(d->sock, sock) == 0)
			return true;
	return false;
}

/* Stops the daemon whose pid file is dir/name, unless a vbd of ours uses
 * it. The decision and the SIGTERM are taken under the registry lock: an
 * open arriving later adopts the stopping daemon, and its supervisor
 * restarts it once it has exited, so the open never meets a second
 * daemon that cannot get the image's lock. */
static void sweep_one(const char *dir, const char *name)
{
	struct qsd_daemon t = { .pid = -1, .pidfd = -1 };
	size_t len = strlen(name) - strlen(".pid");
	struct pollfd pfd;
	pid_t pid;
	int pidfd = -1;

	if (snprintf(t.sock, sizeof(t.sock), "%s/%.*s.sock", dir, (int)len, name) >=
	    (int)sizeof(t.sock))
		return;
	snprintf(t.pidfile, sizeof(t.pidfile), "%s/%s", dir, name);
	snprintf(t.logfile, sizeof(t.logfile), "%s/%.*s.log", dir, (int)len, name);
	pthread_mutex_lock(&qsd_registry_lock);
	if (sock_in_use(t.sock)) {
		pthread_mutex_unlock(&qsd_registry_lock);
		return;
	}
	pid = qsd_daemon_running(&t);
	if (pid > 0) {
		pidfd = qsd_pidfd_open(pid);
		if (pidfd >= 0) {
			fprintf(stderr, "blkbackd: stopping qemu-storage-daemon (pid %d, %s): "
				"no vbd uses it\n", (int)pid, t.sock);
			qsd_pidfd_kill(pidfd, SIGTERM);
		}
	}
	pthread_mutex_unlock(&qsd_registry_lock);
	if (pidfd >= 0) {
		pfd.fd = pidfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, QSD_STOP_TIMEOUT_MS) <= 0) {
			fprintf(stderr, "blkbackd: qemu-storage-daemon (pid %d) did not stop; "
				"killing it\n", (int)pid);
			qsd_pidfd_kill(pidfd, SIGKILL);
			poll(&pfd, 1, QSD_STOP_TIMEOUT_MS);
		}
		close(pidfd);
	} else if (pid > 0) {
		return;		/* gone meanwhile, or not ours to signal */
	}
	pthread_mutex_lock(&qsd_registry_lock);
	if (!sock_in_use(t.sock)) {
		unlink(t.sock);
		unlink(t.pidfile);
		unlink(t.logfile);
	}
	pthread_mutex_unlock(&qsd_registry_lock);
}

static bool is_pid_file(const char *name)
{
	size_t n = strlen(name);

	return n > strlen(".pid") && strcmp(name + n - strlen(".pid"), ".pid") == 0;
}

/* The daemons' directory, or NULL when it is not one we would use. */
static const char *sweep_dir(void)
{
	const char *dir = getenv(QSD_ENV_DIR);

	if (!dir || !*dir)
		dir = QSD_DIR_DEFAULT;
	return qsd_dir_is_plain(dir) ? dir : NULL;
}

/* Whether an earlier process left a pid file: a listing of our own
 * runtime directory, cheap enough for the main thread at start. */
static bool sweep_has_work(const char *dir)
{
	struct dirent *de;
	bool found = false;
	DIR *dp;

	dp = opendir(dir);
	if (!dp)
		return false;	/* no daemon ever ran here */
	while (!found && (de = readdir(dp)))
		found = is_pid_file(de->d_name);
	closedir(dp);
	return found;
}

static void *sweep_thread(void *arg)
{
	const char *dir = arg;
	struct timespec ts = {
		.tv_sec = QSD_SWEEP_DELAY_MS / 1000,
		.tv_nsec = (QSD_SWEEP_DELAY_MS % 1000) * 1000000L,
	};
	struct dirent *de;
	DIR *dp;

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	dp = opendir(dir);
	if (!dp)
		return NULL;
	while ((de = readdir(dp)))
		if (is_pid_file(de->d_name))
			sweep_one(dir, de->d_name);
	closedir(dp);
	return NULL;
}

/* A blkbackd that died leaves its daemons running, and each keeps its
 * image's lock: those of vbds that are gone (the guest left before a
 * successor started) would never be stopped. On a thread of its own, as
 * each stop may take the stop timeout; none when nothing was left. */
void qsd_sweep(void)
{
	const char *dir = sweep_dir();
	pthread_attr_t attr;
	pthread_t thread;

	if (!dir || !sweep_has_work(dir))
		return;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, sweep_thread, (void *)dir) != 0)
		fprintf(stderr, "blkbackd: cannot start the qemu-storage-daemon sweep\n");
	pthread_attr_destroy(&attr);
}
