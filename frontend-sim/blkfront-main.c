/* blkfront-sim: a guest's block frontend in the simulator. main() takes
 * the options (blkfront-opts.c) and reads as the script of a guest driver: find the vbd,
 * connect like Linux xen-blkfront, run a workload or one raw request,
 * close, end foreign access, report. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "blkfront.h"
#include "log.h"
#include "util.h"

uint64_t bf_now_ns(void)
{
	return clock_mono_ns();
}

void bf_fail(struct bf_dev *dev, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, 0, fmt, ap);
	va_end(ap);
	dev->failures++;
}

/* Written by time_limit_arm(), read by the handler: the handler may only
 * call async-signal-safe functions, so the message is ready beforehand. */
static char time_limit_msg[160];
static size_t time_limit_len;

static void time_limit_expire(int sig)
{
	ssize_t n;

	(void)sig;
	n = write(STDERR_FILENO, time_limit_msg, time_limit_len);
	(void)n;
	_exit(BF_EXIT_TIME_LIMIT);
}

/* A frontend whose test died, or whose backend stopped answering a wait
 * that has no limit of its own, would otherwise run for ever. SIGALRM is
 * not blocked in any thread (the hostile flipper inherits main's mask),
 * and the process exits from the handler: it cannot trust its own state
 * any more, and exit releases its grants and event channels like a
 * guest's crash does. */
static int time_limit_arm(double seconds)
{
	struct itimerval it = { 0 };
	struct sigaction sa = { 0 };
	int n;

	if (seconds <= 0)
		return 0;
	n = snprintf(time_limit_msg, sizeof(time_limit_msg),
		     "blkfront-sim: time limit of %g s passed (--time-limit or "
		     "BLKFRONT_SIM_TIME_LIMIT): giving up, pid %ld\n",
		     seconds, (long)getpid());
	time_limit_len = n < 0 ? 0 : (size_t)n < sizeof(time_limit_msg) ?
		(size_t)n : sizeof(time_limit_msg) - 1;
	sa.sa_handler = time_limit_expire;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		return -errno;
	it.it_value.tv_sec = (time_t)seconds;
	it.it_value.tv_usec = (suseconds_t)((seconds - (double)it.it_value.tv_sec) * 1e6);
	if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
		it.it_value.tv_usec = 1;
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		return -errno;
	return 0;
}

static int signals_block(void)
{
	sigset_t set;
	int fd;

	/* Signals arrive through a signalfd in the event loop, so a close
	 * in progress is finished properly instead of cut short. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

static int dev_connect(struct bf_dev *dev)
{
	const struct bf_opts *o = dev->opts;
	struct platform_config pc = { .name = o->platform_xen ? "xen" : "sim" };
	unsigned int order, nq;
	int ret;

	ret = bf_xenbus_open(dev);
	if (ret < 0)
		return ret;
	pc.sim_dir = dev->dir;
	pc.sim_domid = (int)dev->domid;
	ret = platform_open(&pc, &dev->plat);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot open the %s platform as domain %u",
			  pc.name, dev->domid);
		dev->plat = NULL;
		return ret;
	}
	if (o->personality == BF_PERS_KDUMP) {
		ret = bf_personality_kdump_reset(dev);
		if (ret < 0)
			return ret;
	}
	if (o->personality == BF_PERS_OVMF) {
		/* It reads no backend limit: one page, one queue. */
		dev->be.max_ring_order = 0;
		dev->be.max_queues = 1;
	} else {
		ret = bf_xenbus_wait_initwait(dev);
		if (ret < 0)
			return ret;
	}
	order = o->ring_order < 0 ? 0 : (unsigned int)o->ring_order;
	if (order > dev->be.max_ring_order) {
		log_err("--ring-order %u: the backend allows at most %u%s", order,
			dev->be.max_ring_order, o->personality == BF_PERS_BSD ?
			" (in " XK_MAX_RING_PAGES ")" : "");
		return -EINVAL;
	}
	nq = o->queues;
	if (nq > dev->be.max_queues) {
		/* As Linux blkfront: use what the backend offers. */
		log_info("--queues %u: the backend offers %u, using %u", nq,
			 dev->be.max_queues, dev->be.max_queues);
		nq = dev->be.max_queues;
	}
	ret = bf_ring_setup(dev, order, nq);
	if (ret < 0)
		return ret;
	ret = bf_xenbus_publish(dev);
	if (ret < 0)
		return ret;
	return bf_xenbus_wait_connected(dev);
}

int main(int argc, char **argv)
{
	struct bf_opts opts;
	struct bf_stats st;
	struct bf_dev dev;
	const char *dir;
	int ret, result = BF_EXIT_SETUP;

	if (bf_opts_parse(&opts, argc, argv) < 0)
		return BF_EXIT_SETUP;
	log_init("blkfront-sim", true, opts.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	memset(&dev, 0, sizeof(dev));
	dev.opts = &opts;
	dev.sigfd = -1;
	/* On Xen, libxenstore finds xenstored itself and there is no
	 * simulator directory. */
	dir = opts.dir ? opts.dir : getenv("XENSIM_DIR");
	if (!opts.platform_xen && (!dir || !*dir)) {
		log_err("no simulator directory: use --dir or set XENSIM_DIR");
		goto out;
	}
	if (!opts.platform_xen) {
		dev.dir = strdup(dir);
		if (!dev.dir)
			goto out;
	}
	ret = time_limit_arm(opts.time_limit);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot arm the time limit");
		goto out;
	}
	ret = signals_block();
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "signalfd");
		goto out;
	}
	dev.sigfd = ret;

	ret = dev_connect(&dev);
	if (ret < 0) {
		if (ret == -EINTR)
			log_info("interrupted while connecting");
		goto out_close;
	}
	log_debug("connected: %" PRIu64 " 512-byte sectors, sector-size %u, info %#x", dev.be.sectors,
		  dev.be.sector_size, dev.be.info);

	bf_stats_init(&st);
	if (opts.hostile)
		result = bf_hostile_run(&dev);
	else if (opts.raw)
		result = bf_raw_run(&dev);
	else
		result = bf_workload_run(&dev, &st);
out_close:
	bf_xenbus_close(&dev);
	/* The backend unmapped the ring when it reached Closed: nothing may
	 * appear there after that. */
	if (dev.nr_queues && dev.rsp_prod_snapped &&
	    bf_ring_rsp_prod(&dev) != dev.rsp_prod_closed) {
		bf_fail(&dev, "backend wrote responses after it closed the device");
		result = BF_EXIT_FAIL;
	}
	bf_ring_teardown(&dev);
	if (dev.failures && result == BF_EXIT_OK)
		result = BF_EXIT_FAIL;
	if (dev.failures && result == BF_EXIT_CLOSED)
		result = BF_EXIT_FAIL;
	platform_close(dev.plat);
	bf_xenbus_free(&dev);
out:
	if (dev.sigfd >= 0)
		close(dev.sigfd);
	free(dev.dir);
	free(opts.raw_segs);
	return result;
}
