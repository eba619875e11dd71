/*
 * hisp_util.h — small private helpers every part of the Direct module uses (not part of the module's contract):
 *
 *   hisp_reason     printf into a caller's reason buffer (NULL or empty buffer: nothing)
 *   hisp_add_date   the RFC 5322 Date: header line, now, in UTC
 *   hisp_printable  peer or stored text made printable ASCII and bounded for a reason or an operator's line
 *
 * Addresses (hisp_addr_normalize, hisp_addr_domain) are in hisp_addr.c, declared in hisp_trust.h.
 */
#ifndef HIENODE_HISP_UTIL_H
#define HIENODE_HISP_UTIL_H

#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"

/* vsnprintf into reason[0..rlen); does nothing when reason is NULL or rlen is 0. */
void hisp_reason(char *reason, size_t rlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Appends "Date: Www, DD Mon YYYY HH:MM:SS +0000\r\n" (RFC 5322 §3.3, English names whatever the locale).
 * HIE_ETOOBIG (b's cap), HIE_ESYS (no calendar time). */
hie_err_t hisp_add_date(struct hie_buf *b);

/* Copies s (NULL: "") into out[0..outlen), outlen >= 1, cut to fit, every byte outside 0x20..0x7e replaced
 * by repl. */
void hisp_printable(const char *s, char *out, size_t outlen, char repl);

#endif
