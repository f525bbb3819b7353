/* xensimd: a xenstored-compatible daemon plus simulated domains, grant
 * tables and event channels, so blkbackd runs and is tested without Xen.
 * main() parses options, starts both servers and runs the loop. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "xensimd.h"

struct options {
	const char *dir;
	const char *pidfile;
	bool foreground;
	int verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: xensimd [OPTIONS]\n"
		"Simulated Xen: a xenstored plus domains, grant tables and event channels.\n\n"
		"  --dir DIR, -D DIR  keep sockets and state under DIR (default $XENSIM_DIR)\n"
		"  -d, --foreground   stay in the foreground, log to stderr\n"
		"  -v, --verbose      log more (repeat for debug)\n"
		"  -p, --pidfile FILE write the daemon's pid to FILE\n"
		"  -h, --help         this text\n");
}

static int options_parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'D' },
		{ "foreground", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	o->dir = getenv("XENSIM_DIR");
	while ((c = getopt_long(argc, argv, "D:dvp:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'D': o->dir = optarg; break;
		case 'd': o->foreground = true; break;
		case 'v': o->verbose++; break;
		case 'p': o->pidfile = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "xensimd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->dir || !*o->dir) {
		fprintf(stderr, "xensimd: no directory: give --dir DIR or set XENSIM_DIR\n");
		return -EINVAL;
	}
	return 0;
}

static int pidfile_write(const char *path)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

static int signal_fd = -1;

static void on_signal(void *opaque, uint32_t events)
{
	struct loop *loop = opaque;
	struct signalfd_siginfo si;

	while (read(signal_fd, &si, sizeof(si)) == sizeof(si))
		log_info("signal %u: exiting", si.ssi_signo);
	loop_quit(loop);
}

static int signals_block(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	/* A client that vanishes mid-write must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	return signal_fd < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	struct options opts = { 0 };
	struct loop *loop = NULL;
	int r;

	if (options_parse(argc, argv, &opts) < 0)
		return 2;
	log_init("xensimd", opts.foreground,
		 opts.verbose >= 2 ? LOG_LEVEL_DEBUG :
		 opts.verbose ? LOG_LEVEL_INFO : LOG_LEVEL_WARN);

	if (mkdir(opts.dir, 0700) < 0 && errno != EEXIST) {
		log_errno(LOG_LEVEL_ERR, errno, "cannot create %s", opts.dir);
		return 1;
	}
	if (!opts.foreground && daemon(1, 0) < 0) {
		log_errno(LOG_LEVEL_ERR, errno, "daemon");
		return 1;
	}
	r = signals_block();
	if (r < 0)
		goto fail;
	r = loop_new(&loop);
	if (r < 0)
		goto fail;
	r = loop_add(loop, signal_fd, EPOLLIN, on_signal, loop);
	if (r < 0)
		goto fail;
	r = xs_server_start(loop, opts.dir);
	if (r < 0)
		goto fail;
	r = dom_server_start(loop, opts.dir);
	if (r < 0)
		goto fail_xs;
	if (opts.pidfile && (r = pidfile_write(opts.pidfile)) < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot write %s", opts.pidfile);
		goto fail_dom;
	}
	log_info("serving under %s", opts.dir);

	r = loop_run(loop);

fail_dom:
	dom_server_stop();
fail_xs:
	xs_server_stop();
fail:
	if (r < 0)
		log_errno(LOG_LEVEL_ERR, r, "xensimd failed");
	if (opts.pidfile)
		unlink(opts.pidfile);
	loop_free(loop);
	if (signal_fd >= 0)
		close(signal_fd);
	return r < 0 ? 1 : 0;
}
