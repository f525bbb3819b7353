/* One small log module: errno-aware and plain variants, the sink chosen
 * once at start (journal, stderr or syslog), and a rate limiter for what a
 * guest can make us repeat. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
/* CODE_FILE= and CODE_FUNC= would name log.c, never the caller. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log.h"
#include "util.h"

static const char *log_ident = "blkbackd";
static enum log_sink log_sink = LOG_SINK_STDERR;
static enum log_level log_max_level = LOG_LEVEL_INFO;

static const int log_syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
static const char *const log_level_names[] = { "error", "warning", "info", "debug" };

/* systemd sets $JOURNAL_STREAM to "<dev>:<inode>" of the stream it connects
 * stdout and stderr to; if stderr has been redirected since, it is no
 * longer the journal (systemd.exec(5)). */
static bool log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = 0;

	if (!env || sscanf(env, "%llu:%llu%n", &dev, &ino, &end) != 2 || env[end])
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, bool foreground, enum log_level max_level)
{
	log_ident = ident;
	log_max_level = max_level;
	if (log_stderr_is_journal())
		log_sink = LOG_SINK_JOURNAL;
	else if (foreground)
		log_sink = LOG_SINK_STDERR;
	else
		log_sink = LOG_SINK_SYSLOG;
	if (log_sink == LOG_SINK_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level max_level)
{
	log_max_level = max_level;
}

bool log_is_enabled(enum log_level level)
{
	return level <= log_max_level;
}

enum log_sink log_get_sink(void)
{
	return log_sink;
}

int log_prefix_format(char *buf, size_t len, unsigned int domid, unsigned int devid,
		      int queue)
{
	if (queue < 0)
		return snprintf(buf, len, "d%u/%u", domid, devid);
	return snprintf(buf, len, "d%u/%u/q%d", domid, devid, queue);
}

/* The object a prefix names, the inverse of log_prefix_format; fields it
 * does not name are left at -1. */
struct log_object {
	long domid, devid, queue;
};

static void log_prefix_parse(const char *prefix, struct log_object *ret)
{
	unsigned int domid, devid, queue;
	int end = 0;

	ret->domid = ret->devid = ret->queue = -1;
	if (!prefix)
		return;
	if (sscanf(prefix, "d%u/%u/q%u%n", &domid, &devid, &queue, &end) == 3 && !prefix[end]) {
		ret->queue = queue;
	} else {
		end = 0;
		if (sscanf(prefix, "d%u/%u%n", &domid, &devid, &end) != 2 || prefix[end])
			return;
	}
	ret->domid = domid;
	ret->devid = devid;
}

/* 2026-12-03T11:56:35.185+00:00: local time, milliseconds, the offset. */
static void log_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	char zone[8] = "";
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	/* %z is +hhmm; ISO 8601's extended form, like the date, has a colon. */
	snprintf(buf + n, len - n, ".%03ld%.3s:%s", ts.tv_nsec / 1000000, zone,
		 zone[0] ? zone + 3 : "");
}

/* One journal entry: the message and, if the prefix names a vbd or a ring,
 * which one, so that journalctl DOMID=5 finds them. */
static int log_journal(enum log_level level, const char *prefix, const char *msg)
{
	struct log_object obj;
	char f_msg[1100], f_prio[16], f_ident[80], f_dom[24], f_dev[24], f_q[24];
	struct iovec iov[6];
	int n = 0;

#define LOG_FIELD(buf, ...) do { \
		snprintf(buf, sizeof(buf), __VA_ARGS__); \
		iov[n].iov_base = buf; \
		iov[n++].iov_len = strlen(buf); \
	} while (0)
	log_prefix_parse(prefix, &obj);
	LOG_FIELD(f_msg, "MESSAGE=%s%s%s", prefix ? prefix : "", prefix ? ": " : "", msg);
	LOG_FIELD(f_prio, "PRIORITY=%d", log_syslog_prio[level]);
	LOG_FIELD(f_ident, "SYSLOG_IDENTIFIER=%s", log_ident);
	if (obj.domid >= 0) {
		LOG_FIELD(f_dom, "DOMID=%ld", obj.domid);
		LOG_FIELD(f_dev, "DEVID=%ld", obj.devid);
	}
	if (obj.queue >= 0)
		LOG_FIELD(f_q, "QUEUE=%ld", obj.queue);
#undef LOG_FIELD
	return sd_journal_sendv(iov, n);
}

static void log_emit(enum log_level level, const char *prefix, const char *msg)
{
	static const char *const sd_prefix[] = { SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG };
	char ts[48];

	switch (log_sink) {
	case LOG_SINK_JOURNAL:
		if (log_journal(level, prefix, msg) >= 0)
			break;
		/* No journal socket: stderr is still the journal's stream,
		 * which reads the priority from the sd-daemon prefix and
		 * stamps the time itself. */
		fprintf(stderr, "%s%s%s%s\n", sd_prefix[level], prefix ? prefix : "",
			prefix ? ": " : "", msg);
		break;
	case LOG_SINK_STDERR:
		log_timestamp(ts, sizeof(ts));
		/* One fprintf per line so lines from threads do not interleave. */
		fprintf(stderr, "%s %s[%ld]: %s: %s%s%s\n", ts, log_ident, (long)getpid(),
			log_level_names[level], prefix ? prefix : "", prefix ? ": " : "", msg);
		break;
	case LOG_SINK_SYSLOG:
		syslog(log_syslog_prio[level], "%s%s%s", prefix ? prefix : "", prefix ? ": " : "",
		       msg);
		break;
	}
}

static void log_vformat(enum log_level level, int errnum, const char *prefix, const char *fmt,
			va_list ap)
{
	char buf[1024];
	int n;

	if (!log_is_enabled(level))
		return;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (errnum && n >= 0 && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(abs(errnum)));
	log_emit(level, prefix, buf);
}

void log_vmsg(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	log_vformat(level, errnum, NULL, fmt, ap);
}

void log_vprefixed(enum log_level level, int errnum, const char *prefix,
		   const char *fmt, va_list ap)
{
	log_vformat(level, errnum, prefix, fmt, ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, 0, fmt, ap);
	va_end(ap);
}

void log_errno(enum log_level level, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, errnum, fmt, ap);
	va_end(ap);
}

bool log_ratelimit_at(struct log_ratelimit *rl, uint64_t now_ns, uint64_t *ret_suppressed)
{
	*ret_suppressed = 0;
	if (!rl->started || now_ns - rl->begin_ns >= rl->interval_ns) {
		*ret_suppressed = rl->suppressed;
		rl->started = true;
		rl->begin_ns = now_ns;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	rl->suppressed++;
	return false;
}

bool log_ratelimit(struct log_ratelimit *rl, uint64_t *ret_suppressed)
{
	return log_ratelimit_at(rl, clock_mono_ns(), ret_suppressed);
}
