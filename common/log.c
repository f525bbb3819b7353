/* One small log module: errno-aware and plain variants, stderr when running
 * in the foreground, syslog (which journald collects) when daemonised. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static const char *log_ident = "blkbackd";
static bool log_foreground = true;
static enum log_level log_max_level = LOG_LEVEL_INFO;

void log_init(const char *ident, bool foreground, enum log_level max_level)
{
	log_ident = ident;
	log_foreground = foreground;
	log_max_level = max_level;
	if (!foreground)
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

/* Control characters (a newline in a value a guest wrote, say) become
 * \xNN, so that no text can end a line and forge the next one, or drive
 * a terminal. In place; the result may be cut to size. */
static void log_escape(char *buf, size_t size)
{
	char tmp[1024];
	size_t i, o = 0;

	for (i = 0; buf[i] && o + 5 < sizeof(tmp); i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "\\x%02x", c);
		else
			tmp[o++] = (char)c;
	}
	if (!buf[i] && o == i)
		return;		/* nothing to escape: the common case */
	tmp[o] = '\0';
	snprintf(buf, size, "%s", tmp);
}

void log_vmsg(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char buf[1024];
	int n;

	if (!log_is_enabled(level))
		return;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (errnum && n >= 0 && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(abs(errnum)));
	log_escape(buf, sizeof(buf));

	if (log_foreground) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		/* One fprintf per line so lines from threads do not interleave. */
		fprintf(stderr, "%s[%ld.%03ld] %s: %s\n", log_ident, (long)ts.tv_sec,
			ts.tv_nsec / 1000000, names[level], buf);
	} else {
		syslog(syslog_prio[level], "%s", buf);
	}
}

void log_vprefixed(enum log_level level, int errnum, const char *prefix,
		   const char *fmt, va_list ap)
{
	char buf[768];

	if (!log_is_enabled(level))
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (errnum)
		log_errno(level, errnum, "%s: %s", prefix, buf);
	else
		log_msg(level, "%s: %s", prefix, buf);
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
