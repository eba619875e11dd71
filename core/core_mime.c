/*
 * core_mime.c — RFC 5322 / RFC 2045 / RFC 2046 entity parser and transfer decoders. See core_mime.h.
 *
 * Entry points: hie_mime_parse(), hie_mime_parse_body(), hie_mime_free(), the header and parameter
 * accessors, and the base64 / quoted-printable codecs.
 *
 * The parser is an explicit loop over (pointer, length) and never copies the input: a part is a set of
 * slices of the caller's bytes. The header block is read line by line (memchr for the line end, memchr for
 * the colon); a multipart body is split by scanning for "\n--boundary" with memchr, so a multi-megabyte
 * attachment costs one pass of memchr and no per-byte calls. Recursion happens only for nested
 * multiparts and is bounded by lim->max_depth.
 *
 * Errors: HIE_EPARSE for malformed structure (header line without a colon, multipart without boundary,
 * without parts or without its close delimiter unless HIE_MIME_LENIENT_CLOSE), HIE_ETOOBIG when a cap in
 * struct hie_mime_limits is passed, HIE_ENOMEM.
 */
#include "core/core_mime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const struct hie_mime_limits hie_mime_default_limits = {
	.max_depth = 8,
	.max_parts = 1000,
	.max_headers = 200,
	.max_header_bytes = 64 * 1024,
};

/* RFC 2046 §5.1.1 allows 70 characters; peers that go a little past it are tolerated. */
#define BOUNDARY_MAX 200

struct parse_ctx {
	const struct hie_mime_limits *lim;
	size_t nparts;
	unsigned flags;
};

static hie_err_t parse_entity(struct parse_ctx *ctx, struct hie_mime_part *part, const char *data,
			      size_t len, size_t depth, const char *default_type, const char *ct_override,
			      size_t ct_override_len);

static inline bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static inline char to_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* RFC 2045 §5.1 token: printable US-ASCII except SP and tspecials. */
static bool is_token_char(char c)
{
	unsigned char u = (unsigned char)c;
	if (u <= 32 || u >= 127)
		return false;
	return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Skips blanks, line ends (folding) and RFC 5322 comments; an unterminated comment runs to the end. */
static size_t skip_cfws(const char *s, size_t n, size_t i)
{
	while (i < n) {
		char c = s[i];
		if (is_wsp(c) || c == '\r' || c == '\n') {
			i++;
		} else if (c == '(') {
			size_t depth = 0;
			for (; i < n; i++) {
				if (s[i] == '\\' && i + 1 < n)
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')' && --depth == 0)
					break;
			}
			if (i < n)
				i++;
		} else {
			break;
		}
	}
	return i;
}

/* Skips a quoted-string starting at s[i] == '"'; returns the index after the closing quote or n. */
static size_t skip_quoted(const char *s, size_t n, size_t i, bool *closed)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n) {
			i++;
		} else if (s[i] == '"') {
			*closed = true;
			return i + 1;
		}
	}
	*closed = false;
	return n;
}

static void free_contents(struct hie_mime_part *p)
{
	for (size_t i = 0; i < p->nchildren; i++)
		free_contents(&p->children[i]);
	free(p->children);
	free(p->headers);
	p->children = NULL;
	p->headers = NULL;
	p->nchildren = 0;
	p->nheaders = 0;
}

void hie_mime_free(struct hie_mime_part *part)
{
	if (!part)
		return;
	free_contents(part);
	free(part);
}

static hie_err_t add_header(const struct parse_ctx *ctx, struct hie_mime_part *part, size_t *cap,
			    const char *name, size_t name_len, const char *value, size_t value_len)
{
	if (part->nheaders >= ctx->lim->max_headers)
		return HIE_ETOOBIG;
	if (part->nheaders == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		if (ncap > ctx->lim->max_headers)
			ncap = ctx->lim->max_headers;
		struct hie_mime_header *h = realloc(part->headers, ncap * sizeof(*h));
		if (!h)
			return HIE_ENOMEM;
		part->headers = h;
		*cap = ncap;
	}
	part->headers[part->nheaders++] = (struct hie_mime_header){
		.name = name, .name_len = name_len, .value = value, .value_len = value_len,
	};
	return HIE_OK;
}

/*
 * Reads the header block of data[0..len) line by line. *body_off receives the offset just past the empty
 * line, or len when the entity has no empty line (then it is all headers and the body is empty).
 */
static hie_err_t parse_headers(const struct parse_ctx *ctx, struct hie_mime_part *part, const char *data,
			       size_t len, size_t *body_off)
{
	size_t max_bytes = ctx->lim->max_header_bytes;
	size_t cap = 0, pos = 0;
	hie_err_t err;

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - line) : len - pos;
		size_t next = nl ? pos + line_len + 1 : len;
		size_t content_len = line_len;
		if (content_len && line[content_len - 1] == '\r')
			content_len--;

		/* The cap covers the bytes read so far, so 10,000 short headers stop early too. */
		if (next > max_bytes)
			return HIE_ETOOBIG;
		if (content_len == 0) {
			*body_off = next;
			return HIE_OK;
		}
		if (is_wsp(line[0]) && part->nheaders > 0) {
			/* RFC 5322 §2.2.3 folding: the value runs on, its CRLF kept. */
			struct hie_mime_header *h = &part->headers[part->nheaders - 1];
			h->value_len = (size_t)(line + content_len - h->value);
			pos = next;
			continue;
		}
		/* Blanks before the first field name (a mangled first line) are skipped, not fatal. */
		while (content_len && is_wsp(line[0])) {
			line++;
			content_len--;
		}
		const char *colon = memchr(line, ':', content_len);
		if (!colon)
			return HIE_EPARSE;
		size_t name_len = (size_t)(colon - line);
		while (name_len && is_wsp(line[name_len - 1])) /* obs-optional: "Name :" */
			name_len--;
		if (name_len == 0)
			return HIE_EPARSE;
		for (size_t i = 0; i < name_len; i++) {
			unsigned char u = (unsigned char)line[i];
			if (u < 33 || u > 126)
				return HIE_EPARSE;
		}
		const char *v = colon + 1, *end = line + content_len;
		while (v < end && is_wsp(*v))
			v++;
		err = add_header(ctx, part, &cap, line, name_len, v, (size_t)(end - v));
		if (err)
			return err;
		pos = next;
	}
	*body_off = len;
	return HIE_OK;
}

const struct hie_mime_header *hie_mime_header_find(const struct hie_mime_part *part, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < part->nheaders; i++) {
		const struct hie_mime_header *h = &part->headers[i];
		if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
			return h;
	}
	return NULL;
}

hie_err_t hie_mime_header_value(const struct hie_mime_part *part, const char *name, struct hie_buf *out)
{
	const struct hie_mime_header *h = hie_mime_header_find(part, name);
	if (!h)
		return HIE_ENOTFOUND;
	hie_buf_reset(out);
	const char *s = h->value, *e = h->value + h->value_len;
	while (s < e && (is_wsp(*s) || *s == '\r' || *s == '\n'))
		s++;
	while (e > s && (is_wsp(e[-1]) || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	/* Unfolding removes the line ends and keeps the blank that follows them (RFC 5322 §2.2.3). */
	while (s < e) {
		const char *nl = memchr(s, '\n', (size_t)(e - s));
		const char *run_end = nl ? nl : e;
		if (run_end > s && run_end[-1] == '\r')
			run_end--;
		hie_err_t err = hie_buf_add(out, s, (size_t)(run_end - s));
		if (err)
			return err;
		s = nl ? nl + 1 : e;
	}
	if (!out->data)
		return hie_buf_add(out, "", 0);
	return HIE_OK;
}

hie_err_t hie_mime_media_type(const char *value, size_t value_len, char *out, size_t outlen)
{
	if (!out || outlen == 0)
		return HIE_EINVAL;
	out[0] = '\0';
	size_t i = skip_cfws(value, value_len, 0), t0 = i;
	while (i < value_len && is_token_char(value[i]))
		i++;
	size_t t1 = i;
	i = skip_cfws(value, value_len, i);
	if (t1 == t0 || i >= value_len || value[i] != '/')
		return HIE_EPARSE;
	i = skip_cfws(value, value_len, i + 1);
	size_t s0 = i;
	while (i < value_len && is_token_char(value[i]))
		i++;
	size_t s1 = i;
	i = skip_cfws(value, value_len, i);
	if (s1 == s0 || (i < value_len && value[i] != ';'))
		return HIE_EPARSE;
	size_t need = (t1 - t0) + 1 + (s1 - s0);
	if (need + 1 > outlen)
		return HIE_ETOOBIG;
	size_t o = 0;
	for (size_t k = t0; k < t1; k++)
		out[o++] = to_lower(value[k]);
	out[o++] = '/';
	for (size_t k = s0; k < s1; k++)
		out[o++] = to_lower(value[k]);
	out[o] = '\0';
	return HIE_OK;
}

/* Appends the content of the quoted-string value[i..] (i at the opening quote) to out, unescaped. */
static hie_err_t add_quoted(const char *s, size_t n, size_t i, struct hie_buf *out)
{
	hie_err_t err;
	size_t run = ++i;
	for (; i < n; i++) {
		char c = s[i];
		if (c != '\\' && c != '"' && c != '\r' && c != '\n')
			continue;
		err = hie_buf_add(out, s + run, i - run);
		if (err)
			return err;
		if (c == '"')
			return HIE_OK;
		if (c == '\\' && i + 1 < n)
			i++; /* the escaped character starts the next run */
		run = (c == '\\') ? i : i + 1;
	}
	return HIE_EPARSE;
}

hie_err_t hie_mime_param(const char *value, size_t value_len, const char *param, struct hie_buf *out)
{
	const char *s = value;
	size_t n = value_len, i = 0, plen = strlen(param);
	bool closed;

	/* Skip the leading value ("type/subtype", "attachment") up to the first ';' outside quotes. */
	while (i < n && s[i] != ';') {
		if (s[i] == '"')
			i = skip_quoted(s, n, i, &closed);
		else if (s[i] == '(')
			i = skip_cfws(s, n, i);
		else
			i++;
	}
	while (i < n) {
		i = skip_cfws(s, n, i + 1); /* past the ';' */
		if (i >= n)
			break;
		if (s[i] == ';')
			continue;
		size_t n0 = i;
		while (i < n && is_token_char(s[i]))
			i++;
		size_t n1 = i;
		i = skip_cfws(s, n, i);
		bool want = n1 - n0 == plen && strncasecmp(s + n0, param, plen) == 0;
		if (n1 > n0 && i < n && s[i] == '=') {
			i = skip_cfws(s, n, i + 1);
			if (i < n && s[i] == '"') {
				if (want) {
					hie_buf_reset(out);
					hie_err_t err = add_quoted(s, n, i, out);
					if (!err && !out->data)
						err = hie_buf_add(out, "", 0);
					return err;
				}
				i = skip_quoted(s, n, i, &closed);
				if (!closed)
					return HIE_EPARSE;
			} else {
				/* Lenient token: real peers send unquoted boundaries with '=' in them. */
				size_t v0 = i;
				while (i < n && s[i] != ';' && s[i] != '(' && s[i] != '"' &&
				       (unsigned char)s[i] > 32 && s[i] != 127)
					i++;
				if (want) {
					hie_buf_reset(out);
					return hie_buf_add(out, s + v0, i - v0);
				}
			}
		}
		/* Whatever junk follows up to the next ';' (outside quotes) is ignored. */
		while (i < n && s[i] != ';') {
			if (s[i] == '"') {
				i = skip_quoted(s, n, i, &closed);
				if (!closed)
					return HIE_EPARSE;
			} else if (s[i] == '(') {
				i = skip_cfws(s, n, i);
			} else {
				i++;
			}
		}
	}
	return HIE_ENOTFOUND;
}

/* Lower-case token of a Content-Transfer-Encoding value; "7bit" when absent or empty. */
static void parse_encoding(const struct hie_mime_part *part, char *out, size_t outlen)
{
	const struct hie_mime_header *h = hie_mime_header_find(part, "Content-Transfer-Encoding");
	snprintf(out, outlen, "%s", "7bit");
	if (!h)
		return;
	size_t i = skip_cfws(h->value, h->value_len, 0), t0 = i;
	while (i < h->value_len && is_token_char(h->value[i]))
		i++;
	if (i == t0)
		return;
	if (i - t0 >= outlen) {
		snprintf(out, outlen, "%s", "x-unknown");
		return;
	}
	for (size_t k = t0; k < i; k++)
		out[k - t0] = to_lower(h->value[k]);
	out[i - t0] = '\0';
}

struct delim {
	size_t start; /* offset of the "--" that begins the delimiter line */
	size_t next;  /* offset just past the delimiter line */
	bool close;   /* "--boundary--" */
};

/*
 * Is s[off..] "--boundary" [ "--" ] transport-padding (line end | end of data)? A boundary that is only
 * a prefix of the line's text is not a delimiter (RFC 2046 §5.1.1).
 */
static bool delim_at(const char *s, size_t n, size_t off, const char *bnd, size_t blen, struct delim *d)
{
	if (n - off < 2 + blen || s[off] != '-' || s[off + 1] != '-' || memcmp(s + off + 2, bnd, blen) != 0)
		return false;
	size_t t = off + 2 + blen;
	bool close = false;
	if (t + 1 < n && s[t] == '-' && s[t + 1] == '-') {
		close = true;
		t += 2;
	}
	while (t < n && is_wsp(s[t]))
		t++;
	if (t == n)
		d->next = n;
	else if (s[t] == '\n')
		d->next = t + 1;
	else if (s[t] == '\r' && (t + 1 == n || s[t + 1] == '\n'))
		d->next = t + 1 == n ? n : t + 2;
	else
		return false;
	d->start = off;
	d->close = close;
	return true;
}

/* First delimiter line beginning at or after `from` (at a line start). */
static bool find_delim(const char *s, size_t n, size_t from, const char *bnd, size_t blen, struct delim *d)
{
	if (from == 0) {
		if (delim_at(s, n, 0, bnd, blen, d))
			return true;
		from = 1;
	}
	/* A line start at `from` is preceded by '\n' at from - 1, so scanning LFs from there finds it. */
	size_t i = from - 1;
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		if (!nl)
			return false;
		size_t off = (size_t)(nl - s) + 1;
		if (off < n && s[off] == '-' && delim_at(s, n, off, bnd, blen, d))
			return true;
		i = off;
	}
	return false;
}

static hie_err_t add_child(struct parse_ctx *ctx, struct hie_mime_part *part, size_t *cap, const char *data,
			   size_t len, size_t depth, const char *default_type)
{
	if (part->nchildren == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct hie_mime_part *c = realloc(part->children, ncap * sizeof(*c));
		if (!c)
			return HIE_ENOMEM;
		part->children = c;
		*cap = ncap;
	}
	struct hie_mime_part *child = &part->children[part->nchildren];
	hie_err_t err = parse_entity(ctx, child, data, len, depth, default_type, NULL, 0);
	if (err) {
		free_contents(child);
		return err;
	}
	part->nchildren++;
	return HIE_OK;
}

/* Splits a multipart body into its parts (RFC 2046 §5.1.1) and parses each one at depth + 1. */
static hie_err_t parse_multipart(struct parse_ctx *ctx, struct hie_mime_part *part, const char *ct,
				 size_t ct_len, size_t depth)
{
	char bnd[BOUNDARY_MAX + 1];
	struct hie_buf b;
	struct delim d;
	size_t cap = 0, blen;
	hie_err_t err;

	hie_buf_init(&b, BOUNDARY_MAX);
	err = hie_mime_param(ct, ct_len, "boundary", &b);
	blen = b.len;
	if (!err && blen)
		memcpy(bnd, b.data, blen);
	hie_buf_free(&b);
	if (err == HIE_ENOMEM)
		return err;
	if (err || blen == 0)
		return HIE_EPARSE;
	if (depth >= ctx->lim->max_depth)
		return HIE_ETOOBIG;

	const char *s = part->body;
	size_t n = part->body_len;
	const char *child_type = strcmp(part->type, "multipart/digest") == 0 ? "message/rfc822" : "text/plain";

	if (!find_delim(s, n, 0, bnd, blen, &d) || d.close)
		return HIE_EPARSE; /* truncated, or no body part at all */
	part->preamble = s;
	part->preamble_len = d.start ? d.start - 1 : 0; /* the line end before "--" is the delimiter's */
	if (part->preamble_len && s[part->preamble_len - 1] == '\r')
		part->preamble_len--;
	for (;;) {
		size_t pstart = d.next;
		if (pstart >= n || !find_delim(s, n, pstart, bnd, blen, &d)) {
			/* The close delimiter never came: truncated, unless the caller accepts that. */
			if (!(ctx->flags & HIE_MIME_LENIENT_CLOSE))
				return HIE_EPARSE;
			if (pstart < n) {
				err = add_child(ctx, part, &cap, s + pstart, n - pstart, depth + 1, child_type);
				if (err)
					return err;
			}
			if (part->nchildren == 0)
				return HIE_EPARSE;
			part->close_missing = true;
			part->epilogue = s + n;
			part->epilogue_len = 0;
			return HIE_OK;
		}
		size_t pend = pstart;
		if (d.start > pstart) {
			pend = d.start - 1; /* the CRLF before the delimiter belongs to it */
			if (pend > pstart && s[pend - 1] == '\r')
				pend--;
		}
		err = add_child(ctx, part, &cap, s + pstart, pend - pstart, depth + 1, child_type);
		if (err)
			return err;
		if (d.close)
			break;
	}
	part->epilogue = s + d.next;
	part->epilogue_len = n - d.next;
	return HIE_OK;
}

static hie_err_t parse_entity(struct parse_ctx *ctx, struct hie_mime_part *part, const char *data,
			      size_t len, size_t depth, const char *default_type, const char *ct_override,
			      size_t ct_override_len)
{
	const char *ct = ct_override;
	size_t ct_len = ct_override_len, body_off = 0;
	hie_err_t err;

	memset(part, 0, sizeof(*part));
	part->raw = data;
	part->raw_len = len;
	if (++ctx->nparts > ctx->lim->max_parts)
		return HIE_ETOOBIG;
	if (!ct) {
		err = parse_headers(ctx, part, data, len, &body_off);
		if (err)
			return err;
		const struct hie_mime_header *h = hie_mime_header_find(part, "Content-Type");
		if (h) {
			ct = h->value;
			ct_len = h->value_len;
		}
	}
	part->body = data + body_off;
	part->body_len = len - body_off;
	/* RFC 2045 §5.2: an absent or invalid Content-Type means the default. */
	if (!ct || hie_mime_media_type(ct, ct_len, part->type, sizeof(part->type)) != HIE_OK)
		snprintf(part->type, sizeof(part->type), "%s", default_type);
	parse_encoding(part, part->encoding, sizeof(part->encoding));
	if (ct && strncmp(part->type, "multipart/", 10) == 0)
		return parse_multipart(ctx, part, ct, ct_len, depth);
	return HIE_OK;
}

static hie_err_t parse_top(const char *ct, size_t ct_len, const char *data, size_t len,
			   const struct hie_mime_limits *lim, unsigned flags, struct hie_mime_part **out)
{
	struct parse_ctx ctx = { .lim = lim ? lim : &hie_mime_default_limits, .nparts = 0, .flags = flags };
	*out = NULL;
	if (!data && len)
		return HIE_EINVAL;
	if (!data)
		data = "";
	struct hie_mime_part *p = malloc(sizeof(*p));
	if (!p)
		return HIE_ENOMEM;
	hie_err_t err = parse_entity(&ctx, p, data, len, 0, "text/plain", ct, ct_len);
	if (err) {
		hie_mime_free(p);
		return err;
	}
	*out = p;
	return HIE_OK;
}

hie_err_t hie_mime_parse(const char *data, size_t len, const struct hie_mime_limits *lim,
			 struct hie_mime_part **out)
{
	return parse_top(NULL, 0, data, len, lim, 0, out);
}

hie_err_t hie_mime_parse_ex(const char *data, size_t len, const struct hie_mime_limits *lim, unsigned flags,
			    struct hie_mime_part **out)
{
	return parse_top(NULL, 0, data, len, lim, flags, out);
}

hie_err_t hie_mime_parse_body(const char *content_type, size_t content_type_len, const char *data,
			      size_t len, const struct hie_mime_limits *lim, struct hie_mime_part **out)
{
	if (!content_type) {
		*out = NULL;
		return HIE_EINVAL;
	}
	return parse_top(content_type, content_type_len, data, len, lim, 0, out);
}

/* ---- transfer encodings ---- */

/* base64 alphabet value, -2 whitespace, -3 '=', -1 anything else */
static const signed char b64_val[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -2, -2, -1, -1, -2, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-2, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -3, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* Room for up to `want` more bytes, clipped to what the cap allows; *room receives the size reserved. */
static hie_err_t reserve_upto(struct hie_buf *out, size_t want, size_t *room)
{
	size_t avail = out->max > out->len ? out->max - out->len : 0;
	*room = want < avail ? want : avail;
	return hie_buf_reserve(out, *room);
}

hie_err_t hie_mime_base64_decode(const char *in, size_t len, struct hie_buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t room, w = 0;
	uint32_t acc = 0;
	unsigned nacc = 0, pad = 0;
	hie_err_t err = reserve_upto(out, len / 4 * 3 + 3, &room);
	if (err)
		return err;
	unsigned char *o = (unsigned char *)out->data + out->len;

	for (size_t i = 0; i < len; i++) {
		/* Whole quads between line ends take the short way (most of a 76-column body). */
		while (nacc == 0 && !pad && len - i >= 4) {
			int a = b64_val[p[i]], b = b64_val[p[i + 1]], c = b64_val[p[i + 2]], d = b64_val[p[i + 3]];
			if ((a | b | c | d) < 0)
				break;
			if (room - w < 3)
				return HIE_ETOOBIG;
			uint32_t q = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
			o[w] = (unsigned char)(q >> 16);
			o[w + 1] = (unsigned char)(q >> 8);
			o[w + 2] = (unsigned char)q;
			w += 3;
			i += 4;
		}
		if (i >= len)
			break;
		int v = b64_val[p[i]];
		if (v >= 0) {
			if (pad)
				return HIE_EPARSE; /* data after the padding */
			acc = acc << 6 | (uint32_t)v;
			if (++nacc == 4) {
				if (room - w < 3)
					return HIE_ETOOBIG;
				o[w++] = (unsigned char)(acc >> 16);
				o[w++] = (unsigned char)(acc >> 8);
				o[w++] = (unsigned char)acc;
				nacc = 0;
				acc = 0;
			}
		} else if (v == -3) {
			if (nacc < 2 || nacc + pad >= 4)
				return HIE_EPARSE;
			pad++;
		} else if (v != -2) {
			return HIE_EPARSE;
		}
	}
	if (nacc == 1 || (pad && nacc + pad != 4))
		return HIE_EPARSE;
	if (nacc) {
		/* 2 or 3 characters left: 1 or 2 bytes, padded or not. */
		acc <<= 6 * (4 - nacc);
		if (room - w < nacc - 1)
			return HIE_ETOOBIG;
		o[w++] = (unsigned char)(acc >> 16);
		if (nacc == 3)
			o[w++] = (unsigned char)(acc >> 8);
	}
	out->len += w;
	out->data[out->len] = '\0';
	return HIE_OK;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10; /* RFC 2045 §6.7 (1): accept lower case from robust peers */
	return -1;
}

hie_err_t hie_mime_qp_decode(const char *in, size_t len, struct hie_buf *out)
{
	const char *p = in, *end = in + len;
	size_t room, w = 0;
	hie_err_t err = reserve_upto(out, len, &room);
	if (err)
		return err;
	char *o = out->data + out->len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *ce;
		if (le > p && le[-1] == '\r')
			le--;
		/* §6.7 (3): trailing blanks were added in transport and are dropped. */
		for (ce = le; ce > p && is_wsp(ce[-1]); ce--)
			;
		bool soft = false;
		const char *q = p;
		while (q < ce) {
			const char *eq = memchr(q, '=', (size_t)(ce - q));
			const char *run_end = eq ? eq : ce;
			if (room - w < (size_t)(run_end - q))
				return HIE_ETOOBIG;
			memcpy(o + w, q, (size_t)(run_end - q));
			w += (size_t)(run_end - q);
			if (!eq)
				break;
			if (eq + 1 == ce) {
				soft = true; /* §6.7 (5) soft line break */
				break;
			}
			int hi = ce - eq >= 3 ? hex_val(eq[1]) : -1;
			int lo = hi >= 0 ? hex_val(eq[2]) : -1;
			if (lo < 0)
				return HIE_EPARSE;
			if (room == w)
				return HIE_ETOOBIG;
			o[w++] = (char)(hi << 4 | lo);
			q = eq + 3;
		}
		if (nl && !soft) {
			size_t tl = (size_t)(nl + 1 - le); /* the line end as it was: CRLF or LF */
			if (room - w < tl)
				return HIE_ETOOBIG;
			memcpy(o + w, le, tl);
			w += tl;
		}
		p = nl ? nl + 1 : end;
	}
	out->len += w;
	out->data[out->len] = '\0';
	return HIE_OK;
}

hie_err_t hie_mime_base64_encode(const void *in, size_t len, bool wrap, struct hie_buf *out)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = in;
	if (len > SIZE_MAX / 8 * 3)
		return HIE_ETOOBIG;
	size_t chars = (len + 2) / 3 * 4;
	size_t lines = wrap && chars ? (chars - 1) / 76 : 0;
	hie_err_t err = hie_buf_reserve(out, chars + 2 * lines);
	if (err)
		return err;
	char *o = out->data + out->len;
	size_t w = 0, col = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		if (wrap && col == 76) {
			o[w++] = '\r';
			o[w++] = '\n';
			col = 0;
		}
		o[w++] = alpha[v >> 18];
		o[w++] = alpha[(v >> 12) & 63];
		o[w++] = alpha[(v >> 6) & 63];
		o[w++] = alpha[v & 63];
		col += 4;
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
		if (wrap && col == 76) {
			o[w++] = '\r';
			o[w++] = '\n';
		}
		o[w++] = alpha[v >> 18];
		o[w++] = alpha[(v >> 12) & 63];
		o[w++] = i + 1 < len ? alpha[(v >> 6) & 63] : '=';
		o[w++] = '=';
	}
	out->len += w;
	out->data[out->len] = '\0';
	return HIE_OK;
}

hie_err_t hie_mime_decode(const struct hie_mime_part *part, struct hie_buf *out)
{
	const char *enc = part->encoding;
	if (strcmp(enc, "base64") == 0)
		return hie_mime_base64_decode(part->body, part->body_len, out);
	if (strcmp(enc, "quoted-printable") == 0)
		return hie_mime_qp_decode(part->body, part->body_len, out);
	if (strcmp(enc, "7bit") == 0 || strcmp(enc, "8bit") == 0 || strcmp(enc, "binary") == 0)
		return hie_buf_add(out, part->body, part->body_len);
	return HIE_EUNSUPPORTED;
}
