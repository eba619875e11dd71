/*
 * hisp_edge_api_int.h — private to the mailbox API (hisp_edge_api.c, hisp_edge_json.c): a stored message
 * turned into the JSON the API returns.
 */
#ifndef HIENODE_HISP_EDGE_API_INT_H
#define HIENODE_HISP_EDGE_API_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/core_err.h"

/* A JSON string made of peer text: valid UTF-8 kept, control bytes and invalid sequences become '?'.
 * New reference (NULL only when out of memory). */
json_t *hisp_edge_jtext(const char *s, size_t n);

/* True when (s, n) is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool hisp_edge_utf8_ok(const unsigned char *s, size_t n);

/* The "from" address (first of From, normalized; else the printable header; "" when absent) and the Subject
 * as it is (printable), of the top header block of msg. Set into obj as "from" and "subject". */
hie_err_t hisp_edge_json_summary(const char *msg, size_t len, json_t *obj);

/*
 * Adds "headers", "parts" and "xdm" (see hisp_edge_api.c) for msg to obj. content = false leaves out every
 * content_base64. max_bytes caps the decoded parts. HIE_EPARSE for a message that cannot be split (the caller
 * still answers with what it has), HIE_ENOMEM.
 */
hie_err_t hisp_edge_json_message(const char *msg, size_t len, size_t max_bytes, bool content, json_t *obj);

#endif
