/*
 * core_log.c — key=value log lines, panic hook. See core_log.h.
 */
#include "core/core_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = HIE_LOG_INFO;
static _Atomic int log_fd = 2;
static hie_log_sink_fn log_sink;
static hie_panic_fn panic_hook;

static const char *const level_names[] = {
	[HIE_LOG_DEBUG] = "debug", [HIE_LOG_INFO] = "info", [HIE_LOG_NOTICE] = "notice",
	[HIE_LOG_WARN] = "warn",   [HIE_LOG_ERR] = "error", [HIE_LOG_ALERT] = "alert",
	[HIE_LOG_PANIC] = "panic",
};

void hie_log_set_level(enum hie_log_level level) { log_level = (int)level; }
enum hie_log_level hie_log_get_level(void) { return (enum hie_log_level)log_level; }
void hie_log_set_fd(int fd) { log_fd = fd; }
void hie_log_set_sink(hie_log_sink_fn sink) { log_sink = sink; }
void hie_log_set_panic_hook(hie_panic_fn fn) { panic_hook = fn; }

const char *hie_log_level_name(enum hie_log_level level)
{
	if ((unsigned)level > HIE_LOG_PANIC)
		return "unknown";
	return level_names[level];
}

int hie_log_level_parse(const char *name)
{
	for (int i = HIE_LOG_DEBUG; i <= HIE_LOG_ALERT; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

static void log_emit(enum hie_log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void log_emit(enum hie_log_level level, const char *fmt, va_list ap)
{
	char line[HIE_LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	int saved = errno;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 ts.tv_nsec / 1000000, level_names[level]);
	if (n < 0)
		n = 0;
	size_t used = (size_t)n;
	int m = vsnprintf(line + used, sizeof line - used - 1, fmt, ap);
	if (m > 0)
		used += (size_t)m < sizeof line - used - 1 ? (size_t)m : sizeof line - used - 2;
	/* A format argument may carry a newline; one event is one line. */
	for (size_t i = 0; i < used; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[used++] = '\n';

	hie_log_sink_fn sink = log_sink;
	if (sink) {
		sink(level, line, used);
	} else {
		ssize_t w = write(log_fd, line, used);
		(void)w;
	}
	errno = saved;
}

void hie_log(enum hie_log_level level, const char *fmt, ...)
{
	if ((int)level < log_level || (unsigned)level > HIE_LOG_ALERT)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_emit(level, fmt, ap);
	va_end(ap);
}

void hie_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(HIE_LOG_PANIC, fmt, ap);
	va_end(ap);
	if (panic_hook)
		panic_hook();
	abort();
}

char *hie_log_printable(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t o = 0;
	if (dstlen == 0)
		return dst;
	for (size_t i = 0; i < n; i++) {
		if (o + 1 >= dstlen) {
			if (dstlen >= 4)
				memcpy(dst + dstlen - 4, "...", 3), o = dstlen - 1;
			break;
		}
		unsigned char c = (unsigned char)src[i];
		dst[o++] = (c < 0x21 || c >= 0x7f || c == '"' || c == '=') ? '?' : (char)c;
	}
	dst[o] = '\0';
	return dst;
}
