/* xensim: the simulator's toolstack, doing what xl/libxl do (create,
 * destroy, list domains; attach, detach, list disks) against xensimd's
 * xenstore and control sockets. main() parses the global options and hands
 * the rest of the command line to one command. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simctl.h"
#include "xensim.h"

struct command {
	const char *name;
	int (*fn)(struct xensim *x, int argc, char **argv);
	const char *usage;
};

static const struct command commands[] = {
	{ "create", xensim_cmd_create, "create NAME [--memory MiB]" },
	{ "destroy", xensim_cmd_destroy, "destroy DOMAIN [--timeout S]" },
	{ "list", xensim_cmd_list, "list" },
	{ "block-attach", xensim_cmd_block_attach,
	  "block-attach DOMAIN DISKSPEC... [--protocol P] [--timeout S] "
	  "[--hotplug-timeout S]" },
	{ "block-detach", xensim_cmd_block_detach,
	  "block-detach DOMAIN VDEV|DEVID [--force] [--timeout S] "
	  "[--hotplug-timeout S]" },
	{ "block-list", xensim_cmd_block_list, "block-list DOMAIN" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: xensim [--dir DIR] [--script-dir DIR] COMMAND [ARGS]\n"
		"The simulator's toolstack: does to xensimd what xl does to Xen.\n\n"
		"  --dir DIR, -D DIR   simulator directory (default $XENSIM_DIR)\n"
		"  --script-dir DIR    where relative script= names resolve\n"
		"                      (default $XENSIM_SCRIPT_DIR or "
		XENSIM_SCRIPT_DIR ")\n"
		"  -h, --help          this text\n\nCommands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f, "\nDOMAIN is a name or a domid. See xensim(1).\n");
}

void xensim_err(const char *fmt, ...)
{
	va_list ap;

	fputs("xensim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int xensim_parse_seconds(const char *s, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > 3600)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

int xensim_xs(struct xensim *x, struct xs_handle **ret)
{
	char path[PATH_MAX];

	if (!x->xs) {
		/* libxenstore reads XENSTORED_PATH at open time; the hotplug
		 * scripts we run inherit it and so reach the same daemon. */
		if (!getenv("XENSTORED_PATH") && x->dir) {
			if (snprintf(path, sizeof(path), "%s/socket", x->dir) >=
			    (int)sizeof(path))
				return -ENAMETOOLONG;
			if (setenv("XENSTORED_PATH", path, 1) < 0)
				return -errno;
		}
		x->xs = xs_open(0);
		if (!x->xs) {
			xensim_err("cannot connect to xenstore at %s: %s",
				   getenv("XENSTORED_PATH") ?: "(default)",
				   strerror(errno ? errno : EIO));
			/* not "no such domain": a distinct, generic failure */
			return -ENOTCONN;
		}
	}
	*ret = x->xs;
	return 0;
}

int xensim_simctl(struct xensim *x, struct simctl **ret)
{
	int r;

	if (!x->sc) {
		r = simctl_connect(x->dir, 0, &x->sc);
		if (r < 0) {
			xensim_err("cannot reach xensimd under %s: %s", x->dir,
				   strerror(-r));
			return -ENOTCONN;
		}
	}
	*ret = x->sc;
	return 0;
}

static int exit_status(int r)
{
	switch (r) {
	case 0: return XENSIM_EXIT_OK;
	case -EINVAL: return XENSIM_EXIT_USAGE;
	case -ENOENT: case -ESRCH: return XENSIM_EXIT_NOENT;
	case -EEXIST: return XENSIM_EXIT_EXISTS;
	case -ETIMEDOUT: return XENSIM_EXIT_TIMEOUT;
	default: return XENSIM_EXIT_FAIL;
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'D' },
		{ "script-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct xensim x = { 0 };
	const struct command *cmd = NULL;
	size_t i;
	int c, r;

	/* The hotplug script's output goes to our stderr; a closed pipe
	 * there must not kill us half-way through a transaction. */
	signal(SIGPIPE, SIG_IGN);

	x.dir = simctl_dir_resolve(NULL);
	x.script_dir = getenv("XENSIM_SCRIPT_DIR");
	/* "+": options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+D:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'D': x.dir = optarg; break;
		case 'S': x.script_dir = optarg; break;
		case 'h': usage(stdout); return XENSIM_EXIT_OK;
		default: usage(stderr); return XENSIM_EXIT_USAGE;
		}
	}
	if (x.dir && !*x.dir)
		x.dir = NULL;
	if (!x.script_dir || !*x.script_dir)
		x.script_dir = XENSIM_SCRIPT_DIR;
	if (optind >= argc) {
		usage(stderr);
		return XENSIM_EXIT_USAGE;
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd) {
		xensim_err("unknown command '%s' (try xensim --help)", argv[optind]);
		return XENSIM_EXIT_USAGE;
	}

	if (!x.dir) {
		xensim_err("no simulator directory: give --dir DIR or set "
			   "XENSIM_DIR");
		return XENSIM_EXIT_USAGE;
	}

	argc -= optind;
	argv += optind;
	optind = 0;	/* 0 re-initialises getopt for the command's own parse */
	r = cmd->fn(&x, argc, argv);
	if (x.xs)
		xs_close(x.xs);
	if (x.sc)
		simctl_close(x.sc);
	return exit_status(r);
}
