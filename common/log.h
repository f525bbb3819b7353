/* Logging for every program in the tree: stderr under -d, syslog (journald)
 * otherwise. Library code in common/ logs at debug level only. */
#ifndef BLKBACK_LOG_H
#define BLKBACK_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* ident: program name; foreground: log to stderr instead of syslog. */
void log_init(const char *ident, bool foreground, enum log_level max_level);
void log_set_level(enum log_level max_level);
bool log_is_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like log_msg, appending ": <strerror(errnum)>"; errnum may be negative. */
void log_errno(enum log_level level, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, int errnum, const char *fmt, va_list ap);
/* Like log_vmsg with "<prefix>: " in front: one per object (a vbd's
 * "d5/51712", a ring's "d5/51712/q0") so every line names what it is about. */
void log_vprefixed(enum log_level level, int errnum, const char *prefix,
		   const char *fmt, va_list ap);

#define log_err(...)   log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_is_enabled(LOG_LEVEL_DEBUG)) \
	log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
