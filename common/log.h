/* Logging for every program in the tree. Three sinks, picked once by
 * log_init: the systemd journal, with structured fields, when stderr is
 * the journal stream systemd gave us ($JOURNAL_STREAM); stderr with an ISO
 * 8601 timestamp and the pid in the foreground; syslog otherwise. Library
 * code in common/ logs at debug level only. */
#ifndef BLKBACK_LOG_H
#define BLKBACK_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

enum log_sink { LOG_SINK_STDERR, LOG_SINK_JOURNAL, LOG_SINK_SYSLOG };

/* ident: program name; foreground: stderr rather than syslog when stderr
 * is not the journal. */
void log_init(const char *ident, bool foreground, enum log_level max_level);
void log_set_level(enum log_level max_level);
bool log_is_enabled(enum log_level level);
enum log_sink log_get_sink(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like log_msg, appending ": <strerror(errnum)>"; errnum may be negative. */
void log_errno(enum log_level level, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, int errnum, const char *fmt, va_list ap);

/* Like log_vmsg with "<prefix>: " in front: one per object so every line
 * names what it is about. A prefix "d<domid>/<devid>" (a vbd) or
 * "d<domid>/<devid>/q<queue>" (one of its rings), as log_prefix_format
 * writes it, also becomes the journal fields DOMID=, DEVID= and QUEUE=. */
void log_vprefixed(enum log_level level, int errnum, const char *prefix,
		   const char *fmt, va_list ap);
/* queue < 0: the vbd's prefix. Returns what snprintf returns. */
int log_prefix_format(char *buf, size_t len, unsigned int domid, unsigned int devid,
		      int queue);

#define log_err(...)   log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_is_enabled(LOG_LEVEL_DEBUG)) \
	log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

/* A rate limiter for messages a guest or a failing disk can repeat without
 * end: at most burst messages per interval, then silence until the next
 * interval, which starts by telling how many were dropped. Not locked: one
 * thread uses each limiter (a ring's, say). */
struct log_ratelimit {
	uint64_t interval_ns;
	unsigned int burst;
	uint64_t begin_ns;		/* this interval's start */
	unsigned int printed;		/* in this interval */
	uint64_t suppressed;		/* in this interval */
	bool started;
};

#define LOG_RATELIMIT_INIT(interval_s, burst_) \
	{ .interval_ns = (uint64_t)(interval_s) * 1000000000u, .burst = (burst_) }

/* Whether to log one more message at now_ns (CLOCK_MONOTONIC). When an
 * interval that dropped messages is over, *ret_suppressed gets their
 * count (else 0), for the caller to say so in the message it now logs. */
bool log_ratelimit_at(struct log_ratelimit *rl, uint64_t now_ns, uint64_t *ret_suppressed);
bool log_ratelimit(struct log_ratelimit *rl, uint64_t *ret_suppressed);

#endif
