/*
 * core_mime.h — one parser for RFC 5322 / RFC 2045 entities, shared by SOAP/MTOM and Direct.
 *
 * The parser works on (pointer, length) over the caller's raw bytes and never copies them: every part
 * records where its whole entity, its header block and its (still encoded) body lie in the input, so a
 * signed part can be handed on byte-exact (S/MIME needs the exact bytes of the first part of a
 * multipart/signed). Folded headers, parameters (quoted, RFC 2231 continuations not required), nested
 * multiparts, CRLF and bare-LF line ends are handled. Blanks before the first header name of an entity
 * are tolerated (seen in the wild); a header line without a colon is HIE_EPARSE. Caps on depth, part count, header count and header
 * bytes are enforced; going past one returns HIE_ETOOBIG, malformed structure HIE_EPARSE.
 *
 * Ownership: hie_mime_parse() returns a tree the caller frees with hie_mime_free(); the tree points into
 * the input, which must outlive it. Decoding (base64, quoted-printable) writes into a caller's hie_buf.
 */
#ifndef HIENODE_CORE_MIME_H
#define HIENODE_CORE_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"

struct hie_mime_limits {
	size_t max_depth;        /* nesting of multiparts; 0 = only the top entity */
	size_t max_parts;        /* total entities in the tree */
	size_t max_headers;      /* header fields per entity */
	size_t max_header_bytes; /* bytes of one entity's header block */
};

/* Defaults: depth 8, 1000 parts, 200 headers, 64 KiB header block. */
extern const struct hie_mime_limits hie_mime_default_limits;

struct hie_mime_header {
	const char *name;  /* points into the input; not NUL-terminated */
	size_t name_len;
	const char *value; /* raw value after the colon, leading blanks skipped, folding CRLFs kept */
	size_t value_len;
};

struct hie_mime_part {
	const char *raw;  /* the whole entity: header block, blank line, body */
	size_t raw_len;
	const char *body; /* the body as it is on the wire (still transfer-encoded) */
	size_t body_len;
	struct hie_mime_header *headers;
	size_t nheaders;
	char type[128];     /* lower-case "type/subtype"; "text/plain" when absent (RFC 2045 §5.2) */
	char encoding[32];  /* lower-case Content-Transfer-Encoding; "7bit" when absent */
	struct hie_mime_part *children; /* for multipart/ *: the body parts, in order */
	size_t nchildren;
	const char *preamble;
	size_t preamble_len;
	const char *epilogue;
	size_t epilogue_len;
	bool close_missing; /* HIE_MIME_LENIENT_CLOSE only: this multipart had no close delimiter */
};

/* Flags for hie_mime_parse_ex(). */
enum hie_mime_flags {
	/*
	 * A multipart whose close delimiter never comes is accepted: its last part runs to the end of the
	 * multipart's body and the multipart is marked close_missing (JavaMail's default
	 * mail.mime.multipart.ignoremissingendboundary; real Direct/MDN senders omit it). Without the flag
	 * such a body is HIE_EPARSE, as a truncated one must be. A body with no delimiter at all, or only a
	 * close delimiter, stays HIE_EPARSE.
	 */
	HIE_MIME_LENIENT_CLOSE = 1u << 0,
};

/*
 * Parses one entity (a whole message or a MIME body part). lim NULL means hie_mime_default_limits.
 * A message/rfc822 body is not descended into (parse its body again if needed).
 */
hie_err_t hie_mime_parse(const char *data, size_t len, const struct hie_mime_limits *lim,
			 struct hie_mime_part **out);
/* hie_mime_parse() with flags (enum hie_mime_flags); flags 0 is hie_mime_parse(). */
hie_err_t hie_mime_parse_ex(const char *data, size_t len, const struct hie_mime_limits *lim, unsigned flags,
			    struct hie_mime_part **out);
/*
 * Parses a body whose Content-Type travels outside it (an HTTP request): the returned top part has no
 * headers, raw == body == data, and its type and children come from content_type. Same caps and
 * errors as hie_mime_parse(); the caller frees the tree with hie_mime_free().
 */
hie_err_t hie_mime_parse_body(const char *content_type, size_t content_type_len, const char *data,
			      size_t len, const struct hie_mime_limits *lim, struct hie_mime_part **out);
void hie_mime_free(struct hie_mime_part *part);

/* First header with this name (case-insensitive); NULL when absent. */
const struct hie_mime_header *hie_mime_header_find(const struct hie_mime_part *part, const char *name);

/* The header's value unfolded (CRLF + WSP → WSP), trimmed, into out (reset first). HIE_ENOTFOUND when absent. */
hie_err_t hie_mime_header_value(const struct hie_mime_part *part, const char *name, struct hie_buf *out);

/*
 * A parameter of a structured header value such as Content-Type (`boundary`, `start`, `action`,
 * `charset`): name case-insensitive, quotes and backslash escapes removed, into out (reset first; the
 * first occurrence wins). HIE_ENOTFOUND when absent, HIE_EPARSE for an unterminated quoted-string.
 * Works on any header value text, so callers can use it on an HTTP Content-Type too.
 */
hie_err_t hie_mime_param(const char *value, size_t value_len, const char *param, struct hie_buf *out);

/* The "type/subtype" of a Content-Type value, lower-cased, into out (size outlen). HIE_EPARSE when it is
 * not token/token, HIE_ETOOBIG when it does not fit. */
hie_err_t hie_mime_media_type(const char *value, size_t value_len, char *out, size_t outlen);

/* Decodes the part's body per its Content-Transfer-Encoding and appends it to out. HIE_EUNSUPPORTED for
 * an unknown encoding, HIE_EPARSE for bad base64/QP, HIE_ETOOBIG past out's cap (out unchanged then). */
hie_err_t hie_mime_decode(const struct hie_mime_part *part, struct hie_buf *out);

/*
 * Stand-alone decoders, appending to out; invalid input is HIE_EPARSE and leaves out as it was.
 * base64: whitespace and line ends ignored, anything else outside the alphabet rejected, a missing final
 * padding tolerated, data after the padding rejected. QP (RFC 2045 §6.7): soft line breaks, =XX with
 * either case of hex, trailing blanks of a line dropped, hard line ends kept as they are in the input;
 * '=' followed by anything else is rejected.
 */
hie_err_t hie_mime_base64_decode(const char *in, size_t len, struct hie_buf *out);
hie_err_t hie_mime_qp_decode(const char *in, size_t len, struct hie_buf *out);
/* Base64 with CRLF every 76 characters (wrap = true; no CRLF after the last line) or on one line. */
hie_err_t hie_mime_base64_encode(const void *in, size_t len, bool wrap, struct hie_buf *out);

#endif
