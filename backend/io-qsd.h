/* Private to the qemu-storage-daemon provider: io-qsd.c (the formats,
 * the backing and the engine), io-qsd-daemon.c (one daemon per image, its
 * start, supervision and stop), io-qsd-sweep.c (daemons an earlier
 * process left that no vbd uses) and io-qsd-chain.c (the backing chain
 * check before a daemon starts). */
#ifndef BLKBACKD_IO_QSD_H
#define BLKBACKD_IO_QSD_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "io.h"

/* Where the daemons' sockets, pid files and logs live; the environment
 * variable moves it (tests, a second instance). */
#define QSD_DIR_DEFAULT "/run/blkbackd/qsd"
#define QSD_ENV_DIR "BLKBACKD_QSD_DIR"
/* The program, unless the environment names another. */
#define QSD_PROGRAM_DEFAULT "qemu-storage-daemon"
#define QSD_ENV_PROGRAM "BLKBACKD_QSD"

/* How long a daemon may take to open its image and export it. */
#define QSD_START_TIMEOUT_MS 10000
/* How long a stopping daemon may take to flush and exit before SIGKILL. */
#define QSD_STOP_TIMEOUT_MS 5000
/* Between restarts of a daemon that keeps dying. */
#define QSD_RESTART_DELAY_MS 1000

struct qsd_daemon {
	struct qsd_daemon *next;	/* the registry */
	unsigned int refs;		/* backings on it (registry lock) */
	const char *format;
	char *file;			/* the image, resolved */
	dev_t dev;
	ino_t ino;
	bool read_only;			/* exported read-only */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char pidfile[PATH_MAX];
	char logfile[PATH_MAX];
	char uri[PATH_MAX + 64];
	/* The running daemon; the supervisor owns them once it runs. */
	pid_t pid;
	int pidfd;
	bool thread_started;
	pthread_t thread;
	int stop_pipe[2];		/* written to stop the supervisor */
};

/* Every daemon of this process, by image, so that two vbds of one image
 * (or a check-target on a served image) share one daemon: a second would
 * not get the image's lock. */
extern pthread_mutex_t qsd_registry_lock;
extern struct qsd_daemon *qsd_registry;

/* io-qsd.c: the format a target names ("qcow2:/path" -> "qcow2"), or NULL. */
const char *qsd_format_of(const char *target);

/* io-qsd-daemon.c */
int qsd_pidfd_open(pid_t pid);
int qsd_pidfd_kill(int pidfd, int sig);
/* Whether dir is a path we would create the daemons' files in. */
bool qsd_dir_is_plain(const char *dir);
/* The pid of the daemon d's pid file names, if it runs and serves d's
 * socket; -1 otherwise. */
pid_t qsd_daemon_running(const struct qsd_daemon *d);
/* The daemon serving target, started or adopted if there is none; one
 * reference more. */
int qsd_daemon_get(const char *target, bool read_only, struct qsd_daemon **ret_d,
		   struct io_error *err);
/* One reference less; the last stops the daemon. */
void qsd_daemon_put(struct qsd_daemon *d);

/* io-qsd-sweep.c: stops, on a thread, the daemons an earlier process left
 * that no vbd of ours took over. */
void qsd_sweep(void);

/* io-qsd-chain.c: 0 when QEMU can open the image named format:file
 * without probing any backing file's format; -EPERM (a backing file
 * without a recorded format) or -EIO (qemu-img missing, failing or slow)
 * with err saying which. Runs qemu-img and waits for it: not on a thread
 * that must not block. */
int qsd_chain_check(const char *format, const char *file, struct io_error *err);

#endif
