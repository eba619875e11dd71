/*
 * core_log.h — one line per event, key=value fields (STYLE.md "Logs").
 *
 *   hie_log(HIE_LOG_INFO, "event=http.request id=%s status=%d", id, status);
 * writes
 *   ts=2026-11-22T03:05:47.123Z level=info event=http.request id=... status=200
 * to the log fd (stderr by default) with one write(2), so lines from threads never interleave.
 * Lines longer than HIE_LOG_LINE_MAX are cut. Never pass payloads or patient data.
 *
 * Text from a peer goes through hie_log_printable() first. hie_panic() is for broken invariants: it logs
 * level=panic and calls the panic hook (abort() unless a test replaced it). The sink hook lets tests
 * capture lines (Postfix msg_* style).
 */
#ifndef HIENODE_CORE_LOG_H
#define HIENODE_CORE_LOG_H

#include <stddef.h>

#define HIE_LOG_LINE_MAX 2048

enum hie_log_level {
	HIE_LOG_DEBUG = 0,
	HIE_LOG_INFO,
	HIE_LOG_NOTICE,
	HIE_LOG_WARN,
	HIE_LOG_ERR,
	HIE_LOG_ALERT,  /* needs an operator now; tests fail on it */
	HIE_LOG_PANIC,  /* a bug; only through hie_panic() */
};

typedef void (*hie_log_sink_fn)(enum hie_log_level level, const char *line, size_t len);
typedef void (*hie_panic_fn)(void);

void hie_log(enum hie_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void hie_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void hie_log_set_level(enum hie_log_level level);
enum hie_log_level hie_log_get_level(void);
/* Parses "debug" … "alert"; returns -1 for an unknown name. */
int hie_log_level_parse(const char *name);
const char *hie_log_level_name(enum hie_log_level level);
/* Lines go to fd (default 2). */
void hie_log_set_fd(int fd);
/* A sink sees every line at or above the level instead of the fd; NULL restores the fd. */
void hie_log_set_sink(hie_log_sink_fn sink);
/* Called by hie_panic() after logging; it must not return (it may longjmp). NULL restores abort(). */
void hie_log_set_panic_hook(hie_panic_fn fn);

/*
 * Copies at most dstlen-1 bytes of src[0..n) into dst, replacing control characters, bytes >= 0x7f,
 * spaces, '"' and '=' with '?', so that peer text cannot forge fields or lines. Appends "..." when cut.
 * Returns dst.
 */
char *hie_log_printable(char *dst, size_t dstlen, const char *src, size_t n);

#endif
