/* log-emit: logs one message through common/log.c as a program would, for
 * the log format tests. Usage: log-emit [-D] IDENT LEVEL PREFIX MESSAGE
 * (-D: not in the foreground; PREFIX "-": none; LEVEL err|warn|info|debug). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static void emit(enum log_level level, const char *prefix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (prefix)
		log_vprefixed(level, 0, prefix, fmt, ap);
	else
		log_vmsg(level, 0, fmt, ap);
	va_end(ap);
}

int main(int argc, char **argv)
{
	static const char *const levels[] = { "err", "warn", "info", "debug" };
	static const char *const sinks[] = { "stderr", "journal", "syslog" };
	bool foreground = true;
	unsigned int l;

	if (argc > 1 && strcmp(argv[1], "-D") == 0) {
		foreground = false;
		argv++;
		argc--;
	}
	if (argc != 5) {
		fprintf(stderr, "usage: log-emit [-D] IDENT LEVEL PREFIX MESSAGE\n");
		return 2;
	}
	for (l = 0; l < 4 && strcmp(levels[l], argv[2]) != 0; l++)
		;
	if (l == 4) {
		fprintf(stderr, "log-emit: bad level %s\n", argv[2]);
		return 2;
	}
	log_init(argv[1], foreground, LOG_LEVEL_DEBUG);
	emit((enum log_level)l, strcmp(argv[3], "-") ? argv[3] : NULL, "%s", argv[4]);
	/* On stdout, for the test to know which sink was picked. */
	printf("%s\n", sinks[log_get_sink()]);
	return 0;
}
