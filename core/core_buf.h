/*
 * core_buf.h — a growable byte buffer with a hard cap (curl's dynbuf with "toobig").
 *
 * The data is always NUL-terminated so that text can be used as a C string; the NUL is not counted in len.
 * Appending past `max` bytes fails with HIE_ETOOBIG and leaves the buffer as it was. The buffer owns
 * its memory; hie_buf_free() releases it, hie_buf_steal() hands it to the caller (who must free() it).
 */
#ifndef HIENODE_CORE_BUF_H
#define HIENODE_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/core_err.h"

struct hie_buf {
	char *data;  /* NULL until the first append */
	size_t len;  /* bytes used, not counting the NUL */
	size_t cap;  /* bytes allocated */
	size_t max;  /* hard cap on len */
};

void hie_buf_init(struct hie_buf *b, size_t max);
void hie_buf_free(struct hie_buf *b);
void hie_buf_reset(struct hie_buf *b); /* len = 0, memory kept */
hie_err_t hie_buf_add(struct hie_buf *b, const void *p, size_t n);
hie_err_t hie_buf_addstr(struct hie_buf *b, const char *s);
hie_err_t hie_buf_addf(struct hie_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
hie_err_t hie_buf_vaddf(struct hie_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Adds XML-escaped text (&, <, >, ", ' escaped). */
hie_err_t hie_buf_add_xml(struct hie_buf *b, const char *s, size_t n);
/* Ensures room for n more bytes without changing len. */
hie_err_t hie_buf_reserve(struct hie_buf *b, size_t n);
/* Returns the data (never NULL: "" when empty) and gives up ownership; the buffer is reset to empty. */
char *hie_buf_steal(struct hie_buf *b, size_t *len);
/* Contents as a C string; "" when empty. Valid until the next append. */
const char *hie_buf_str(const struct hie_buf *b);

#endif
