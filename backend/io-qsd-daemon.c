/* One qemu-storage-daemon per image: started with the image opened by
 * QEMU's own format driver and exported over NBD on a private UNIX
 * socket, or adopted when an earlier blkbackd left it running (through
 * its pid file, so a takeover never kills it under a guest); a supervisor
 * thread restarts it when it dies and stops it when the last backing on
 * the image closes. Before each start the image's backing chain is
 * checked (io-qsd-chain.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io-qsd.h"
#include "util.h"

int qsd_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int qsd_pidfd_kill(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* The registry (io-qsd.h). */
pthread_mutex_t qsd_registry_lock = PTHREAD_MUTEX_INITIALIZER;
struct qsd_daemon *qsd_registry;

/* 64-bit FNV-1a: a short name for the image in the daemon's file names,
 * stable across blkbackd restarts so that the next one finds it. */
static uint64_t name_hash(const char *format, const char *file)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *parts[2] = { format, file };
	size_t i;
	const char *p;

	for (i = 0; i < 2; i++) {
		for (p = parts[i]; *p; p++) {
			h ^= (unsigned char)*p;
			h *= 0x100000001b3ull;
		}
		h ^= ':';
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The directory holds only names a URI takes as they are. */
bool qsd_dir_is_plain(const char *dir)
{
	const char *p;

	for (p = dir; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/._-", *p)))
			return false;
	return dir[0] == '/';
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int daemon_names(struct qsd_daemon *d, struct io_error *err)
{
	const char *dir = getenv(QSD_ENV_DIR);
	uint64_t h = name_hash(d->format, d->file);
	int r;

	if (!dir || !*dir)
		dir = QSD_DIR_DEFAULT;
	if (!qsd_dir_is_plain(dir)) {
		io_error_set(err, "%s must be an absolute path of letters, digits and /._-",
			     QSD_ENV_DIR);
		return -EINVAL;
	}
	r = mkdir_p(dir);
	if (r < 0) {
		io_error_set(err, "cannot create %s", dir);
		return r;
	}
	if (snprintf(d->sock, sizeof(d->sock), "%s/%016" PRIx64 ".sock", dir, h) >=
	    (int)sizeof(d->sock)) {
		io_error_set(err, "%s is too long for a UNIX socket path", dir);
		return -ENAMETOOLONG;
	}
	snprintf(d->pidfile, sizeof(d->pidfile), "%s/%016" PRIx64 ".pid", dir, h);
	snprintf(d->logfile, sizeof(d->logfile), "%s/%016" PRIx64 ".log", dir, h);
	snprintf(d->uri, sizeof(d->uri), "nbd+unix:///disk?socket=%s", d->sock);
	return 0;
}

/* QEMU's option syntax: a comma in a value is written twice. */
static char *keyval_escape(const char *s)
{
	size_t n = 0;
	const char *p;
	char *out, *q;

	for (p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	for (p = s, q = out; *p; p++) {
		*q++ = *p;
		if (*p == ',')
			*q++ = ',';
	}
	*q = '\0';
	return out;
}

/* The pid in d's pid file, when it is a daemon serving d's socket. */
pid_t qsd_daemon_running(const struct qsd_daemon *d)
{
	char buf[64], path[64], cmd[8192];
	ssize_t n;
	pid_t pid;
	int fd;

	fd = open(d->pidfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	pid = (pid_t)strtol(buf, NULL, 10);
	if (pid <= 1)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	cmd[n] = '\0';
	/* The arguments are NUL-separated: look through all of them. */
	for (ssize_t i = 0; i < n; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	return strstr(cmd, d->sock) ? pid : -1;
}

/* The last line the daemon wrote, for the error a caller shows. */
static void daemon_log_tail(const struct qsd_daemon *d, struct io_error *err)
{
	char buf[4096], *line, *end;
	ssize_t n;
	int fd;

	fd = open(d->logfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	/* QEMU says "prog: option: what failed" then sometimes a hint. */
	line = buf;
	while ((end = strchr(line, '\n')) && end[1] && !strstr(line, "Failed to get"))
		line = end + 1;
	if ((end = strchr(line, '\n')))
		*end = '\0';
	io_error_set(err, "%s", line);
}

/* Starts the daemon and waits until it has written its pid file, which it
 * does once the image is open and exported. */
static int daemon_spawn(struct qsd_daemon *d, struct io_error *err)
{
	const char *prog = getenv(QSD_ENV_PROGRAM);
	char *file = NULL, *argv[16];
	char filearg[PATH_MAX * 2 + 128], fmtarg[128], srvarg[PATH_MAX + 64], exparg[160];
	const char *ro = d->read_only ? "on" : "off";
	uint64_t deadline;
	int logfd, status, r;
	pid_t pid;

	if (!prog || !*prog)
		prog = QSD_PROGRAM_DEFAULT;
	/* Checked at every start, restarts included: the chain is what the
	 * daemon opens now. An adopted daemon has its chain open already. */
	r = qsd_chain_check(d->format, d->file, err);
	if (r < 0)
		return r;
	file = keyval_escape(d->file);
	if (!file)
		return -ENOMEM;
	/* The host's page cache stays (cache.direct=off) and flushes reach
	 * the file (cache.no-flush=off); the export is write-through, so a
	 * write is on the file before it is answered and a daemon killed
	 * between two guest flushes loses nothing it acknowledged. */
	snprintf(filearg, sizeof(filearg),
		 "driver=file,node-name=file,filename=%s,locking=on,read-only=%s,"
		 "cache.direct=off,cache.no-flush=off", file, ro);
	free(file);
	snprintf(fmtarg, sizeof(fmtarg),
		 "driver=%s,node-name=disk,file=file,read-only=%s,discard=unmap", d->format, ro);
	snprintf(srvarg, sizeof(srvarg), "addr.type=unix,addr.path=%s", d->sock);
	snprintf(exparg, sizeof(exparg),
		 "type=nbd,id=export,node-name=disk,name=disk,writable=%s,writethrough=on",
		 d->read_only ? "off" : "on");
	argv[0] = (char *)prog;
	argv[1] = (char *)"--blockdev";
	argv[2] = filearg;
	argv[3] = (char *)"--blockdev";
	argv[4] = fmtarg;
	argv[5] = (char *)"--nbd-server";
	argv[6] = srvarg;
	argv[7] = (char *)"--export";
	argv[8] = exparg;
	argv[9] = (char *)"--pidfile";
	argv[10] = d->pidfile;
	argv[11] = NULL;

	unlink(d->sock);
	unlink(d->pidfile);
	logfd = open(d->logfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		io_error_set(err, "cannot create %s", d->logfile);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(logfd);
		return r;
	}
	if (pid == 0) {
		int nullfd = open("/dev/null", O_RDONLY);
		sigset_t none;
		int sig;

		/* blkbackd's blocked and ignored signals are not the
		 * daemon's: it must stop on SIGTERM. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		/* Its own session: a terminal's ^C for blkbackd is not its. */
		setsid();
		if (nullfd >= 0)
			dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execvp(prog, argv);
		_exit(127);
	}
	close(logfd);

	deadline = clock_mono_ms() + QSD_START_TIMEOUT_MS;
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			struct io_error why = { "" };

			daemon_log_tail(d, &why);
			if (!why.msg[0])
				io_error_set(&why, "%s exited at start (status %d)", prog, status);
			io_error_set(err, "%s", why.msg);
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
				return -ENOENT;
			/* Another process has the image: QEMU's locking. */
			return strstr(why.msg, "Failed to get") ? -EBUSY : -EIO;
		}
		if (qsd_daemon_running(d) == pid)
			break;
		if (clock_mono_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			io_error_set(err, "qemu-storage-daemon did not export %s within %d ms",
				     d->file, QSD_START_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		usleep(10000);
	}
	d->pidfd = qsd_pidfd_open(pid);
	if (d->pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return r;
	}
	d->pid = pid;
	return 0;
}

/* A daemon a blkbackd before us started (it died, or executed a new
 * program) and that still serves the image: taken over as it is. */
static bool daemon_adopt(struct qsd_daemon *d)
{
	pid_t pid = qsd_daemon_running(d);

	if (pid < 0)
		return false;
	d->pidfd = qsd_pidfd_open(pid);
	if (d->pidfd < 0)
		return false;
	d->pid = pid;
	return true;
}

/* Collects d's dead daemon: waits for it when it is our child (ECHILD
 * when it was adopted from another process: init reaps it). */
static void daemon_reap(struct qsd_daemon *d)
{
	int status;

	waitpid(d->pid, &status, WNOHANG);
	close(d->pidfd);
	d->pidfd = -1;
	d->pid = -1;
}

static bool stop_requested(struct qsd_daemon *d, int timeout_ms)
{
	struct pollfd pfd = { .fd = d->stop_pipe[0], .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) > 0;
}

/* Restarts the daemon whenever it dies, until it is asked to stop. */
static void *daemon_supervise(void *arg)
{
	struct qsd_daemon *d = arg;
	struct io_error err;
	int r;

	for (;;) {
		struct pollfd pfds[2] = {
			{ .fd = d->stop_pipe[0], .events = POLLIN },
			{ .fd = d->pidfd, .events = POLLIN },
		};

		if (poll(pfds, 2, -1) < 0)
			continue;
		if (pfds[0].revents)
			return NULL;
		if (!pfds[1].revents)
			continue;
		fprintf(stderr, "blkbackd: qemu-storage-daemon (pid %d) for %s:%s died; "
			"restarting it\n", (int)d->pid, d->format, d->file);
		daemon_reap(d);
		for (;;) {
			err.msg[0] = '\0';
			r = daemon_spawn(d, &err);
			if (r == 0)
				break;
			fprintf(stderr, "blkbackd: cannot restart qemu-storage-daemon for %s:%s: "
				"%s%s%s\n", d->format, d->file, strerror(-r), err.msg[0] ? ": " : "",
				err.msg);
			if (stop_requested(d, QSD_RESTART_DELAY_MS))
				return NULL;
		}
	}
}

/* Asks the daemon to finish (it flushes the image and exits on SIGTERM),
 * kills it if it does not, and removes its files. */
static void daemon_stop(struct qsd_daemon *d)
{
	struct pollfd pfd;

	fprintf(stderr, "blkbackd: stopping qemu-storage-daemon (pid %d) for %s:%s\n",
		(int)d->pid, d->format, d->file);
	if (d->thread_started) {
		if (write(d->stop_pipe[1], "x", 1) < 0) {
			/* A pipe with room; cannot fail. */
		}
		pthread_join(d->thread, NULL);
	}
	if (d->pidfd >= 0) {
		qsd_pidfd_kill(d->pidfd, SIGTERM);
		pfd.fd = d->pidfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, QSD_STOP_TIMEOUT_MS) <= 0) {
			fprintf(stderr, "blkbackd: qemu-storage-daemon for %s:%s did not stop; "
				"killing it\n", d->format, d->file);
			qsd_pidfd_kill(d->pidfd, SIGKILL);
			poll(&pfd, 1, QSD_STOP_TIMEOUT_MS);
		}
		daemon_reap(d);
	}
	unlink(d->sock);
	unlink(d->pidfile);
	unlink(d->logfile);
}

static void daemon_free(struct qsd_daemon *d)
{
	if (d->stop_pipe[0] >= 0)
		close(d->stop_pipe[0]);
	if (d->stop_pipe[1] >= 0)
		close(d->stop_pipe[1]);
	free(d->file);
	free(d);
}

/* The image a target names: a regular file, given by absolute path. */
static int image_resolve(const char *target, const char **ret_format, char **ret_file,
			 struct stat *st, struct io_error *err)
{
	const char *format = qsd_format_of(target);
	const char *path = target + strlen(format) + 1;
	char *file;

	if (path[0] != '/') {
		io_error_set(err, "%s: the image is not an absolute path", path);
		return -EINVAL;
	}
	file = realpath(path, NULL);
	if (!file) {
		io_error_set(err, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (stat(file, st) < 0 || !S_ISREG(st->st_mode)) {
		io_error_set(err, "%s: not a regular file", path);
		free(file);
		return -EINVAL;
	}
	*ret_format = format;
	*ret_file = file;
	return 0;
}

/* The daemon serving target, started or adopted if there is none; one
 * reference more. */
int qsd_daemon_get(const char *target, bool read_only, struct qsd_daemon **ret_d,
		   struct io_error *err)
{
	const char *format = NULL;
	struct qsd_daemon *d;
	struct stat st;
	char *file = NULL;
	int r;

	r = image_resolve(target, &format, &file, &st, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&qsd_registry_lock);
	for (d = qsd_registry; d; d = d->next)
		if (d->format == format && d->dev == st.st_dev && d->ino == st.st_ino)
			break;
	if (d) {
		free(file);
		if (d->read_only && !read_only) {
			io_error_set(err, "the image is served read-only already");
			r = -EBUSY;
			goto out;
		}
		d->refs++;
		*ret_d = d;
		r = 0;
		goto out;
	}

	d = calloc(1, sizeof(*d));
	if (!d) {
		free(file);
		r = -ENOMEM;
		goto out;
	}
	d->format = format;
	d->file = file;
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	d->read_only = read_only;
	d->pid = -1;
	d->pidfd = -1;
	d->stop_pipe[0] = d->stop_pipe[1] = -1;
	r = daemon_names(d, err);
	if (r < 0)
		goto fail;
	if (pipe2(d->stop_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	if (!daemon_adopt(d)) {
		r = daemon_spawn(d, err);
		if (r < 0)
			goto fail;
	}
	r = pthread_create(&d->thread, NULL, daemon_supervise, d);
	if (r) {
		r = -r;
		daemon_stop(d);
		goto fail;
	}
	d->thread_started = true;
	d->refs = 1;
	d->next = qsd_registry;
	qsd_registry = d;
	*ret_d = d;
	r = 0;
	goto out;
fail:
	daemon_free(d);
out:
	pthread_mutex_unlock(&qsd_registry_lock);
	return r;
}

void qsd_daemon_put(struct qsd_daemon *d)
{
	struct qsd_daemon **pp;
	bool last;

	pthread_mutex_lock(&qsd_registry_lock);
	last = --d->refs == 0;
	if (last)
		for (pp = &qsd_registry; *pp; pp = &(*pp)->next)
			if (*pp == d) {
				*pp = d->next;
				break;
			}
	pthread_mutex_unlock(&qsd_registry_lock);
	if (!last)
		return;
	daemon_stop(d);
	daemon_free(d);
}
