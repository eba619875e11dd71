/*
 * core_mtom.h — MTOM/XOP packages (multipart/related; W3C XOP, SOAP MTOM) over core_mime.
 *
 * Parsing: the root part is the one named by the Content-Type `start` parameter, else the first part.
 * Each other part is found by its Content-ID (angle brackets stripped). A binary, 8bit or 7bit part's data
 * points into the request bytes (no copy); a base64 or quoted-printable part is decoded once into memory
 * the package owns. Errors: HIE_EPARSE for a body that is not multipart/related or is truncated or has no
 * boundary; HIE_EEXIST for a duplicate Content-ID; HIE_ENOTFOUND when `start` names no part; HIE_ETOOBIG
 * for caps.
 *
 * Building: hie_mtom_build() writes a multipart/related body with the SOAP envelope as the root part
 * (type application/xop+xml) followed by the binary parts, and returns the HTTP Content-Type to send.
 */
#ifndef HIENODE_CORE_MTOM_H
#define HIENODE_CORE_MTOM_H

#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_mime.h"

struct hie_mtom_part {
	const char *cid;          /* Content-ID without <>, NUL-terminated, owned by the package */
	const char *content_type; /* NUL-terminated, owned by the package; "" when absent */
	const char *data;         /* decoded bytes */
	size_t len;
};

struct hie_mtom {
	struct hie_mtom_part root;   /* the SOAP envelope part */
	struct hie_mtom_part *parts; /* every other part, in body order */
	size_t nparts;
	const char *type;            /* the HTTP Content-Type `type` parameter, lower-cased; "" when absent */
	void *priv;                  /* owned storage */
};

/*
 * http_content_type is the request's Content-Type header value; body/len are the request bytes, which must
 * outlive the package (binary parts point into them). lim NULL means hie_mime_default_limits. A non-root
 * part without a Content-ID is kept with cid "" and cannot be found. HIE_EUNSUPPORTED for a part with an
 * unknown Content-Transfer-Encoding. On success *out is the caller's, freed with hie_mtom_free().
 */
hie_err_t hie_mtom_parse(const char *http_content_type, const char *body, size_t len,
			 const struct hie_mime_limits *lim, struct hie_mtom **out);
void hie_mtom_free(struct hie_mtom *m);

/*
 * Non-root part by Content-ID; accepts "cid:" URLs (RFC 2392, %-escapes decoded; a bad escape finds
 * nothing) and bare ids (with or without <>, taken literally). O(log n). NULL when absent; the part belongs
 * to the package.
 */
const struct hie_mtom_part *hie_mtom_find(const struct hie_mtom *m, const char *cid, size_t cid_len);

struct hie_mtom_out_part {
	const char *cid;          /* without <> */
	const char *content_type; /* e.g. "application/octet-stream" */
	const void *data;
	size_t len;
};

/*
 * Writes the package into body and the matching HTTP Content-Type (multipart/related; type=
 * "application/xop+xml"; start=…; start-info="application/soap+xml"; action=…) into content_type.
 * Both buffers are reset first; their caps are the caller's (HIE_ETOOBIG past them, both left empty).
 * The boundary and the root Content-ID are random (RAND_bytes). Parts are sent binary.
 * soap_action may be NULL; a NULL or empty part content_type is sent as application/octet-stream.
 * HIE_EINVAL for an empty or duplicate part cid, or text that could break the header syntax: control
 * characters (CR, LF, …) anywhere; blanks, '"', '\\', '<' or '>' in a cid; '"' or '\\' in the action.
 */
hie_err_t hie_mtom_build(const char *envelope, size_t envelope_len, const char *soap_action,
			 const struct hie_mtom_out_part *parts, size_t nparts, struct hie_buf *body,
			 struct hie_buf *content_type);

#endif
