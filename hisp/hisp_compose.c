/*
 * hisp_compose.c — builds the plain RFC 5322 message that `hienode send` (and later the edge) submits:
 * From, To, Cc (never Bcc: Direct forbids it), Subject, Date, Message-ID, MIME-Version and the request for
 * final-destination delivery notification (Implementation Guide for Delivery Notification in Direct §3);
 * the body is text/plain (7bit, or quoted-printable when it is not 7-bit short-line text) or, with
 * attachments, multipart/mixed with the text and each attachment in base64. Every line ends in CRLF.
 *
 * Header injection: every value that goes into a header is refused (HIE_EINVAL) when it holds CR, LF or
 * another control character; addresses must pass hisp_addr_normalize (and are written lower-cased);
 * a non-ASCII subject becomes RFC 2047 encoded-words (UTF-8, B), split on character boundaries; a
 * non-ASCII file name becomes an RFC 2231 parameter.
 *
 * Entry point: hisp_compose. Errors: HIE_EINVAL (a bad value; out is left as it was), HIE_ETOOBIG (out's
 * cap), HIE_ESYS (no randomness for the Message-ID).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "core/core_mime.h"
#include "core/core_text.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_util.h"

#define TRY(x)                                                                                                     \
	do {                                                                                                       \
		err = (x);                                                                                         \
		if (err)                                                                                           \
			goto out;                                                                                  \
	} while (0)

static hie_err_t random_hex(char *out, size_t nbytes)
{
	unsigned char r[32];
	if (nbytes > sizeof r)
		return HIE_EINVAL;
	size_t got = 0;
	while (got < nbytes) {
		ssize_t n = getrandom(r + got, nbytes - got, 0);
		if (n <= 0)
			return HIE_ESYS;
		got += (size_t)n;
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * nbytes] = 0;
	return HIE_OK;
}

/* No control characters at all (CR and LF included); DEL refused too. */
static bool header_safe(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static bool is_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

/* Subject: as is when short printable ASCII; otherwise encoded-words of at most 75 characters, folded. */
static hie_err_t add_subject(struct hie_buf *b, const char *s)
{
	size_t n = strlen(s);
	hie_err_t err;
	if (!header_safe(s, n) || !hie_text_utf8_valid(s, n))
		return HIE_EINVAL;
	if (is_ascii(s, n) && n <= 900 && strstr(s, "=?") == NULL)
		return hie_buf_addf(b, "Subject: %s\r\n", s);
	err = hie_buf_addstr(b, "Subject:");
	struct hie_buf enc;
	hie_buf_init(&enc, 256);
	for (size_t i = 0; i < n && !err;) {
		/* 42 input bytes → 56 base64 characters + 12 for "=?UTF-8?B?" "?=" = 68 ≤ 75 (RFC 2047 §2), and
		 * "Subject: " + 68 ≤ 78;
		 * never split a character (§5). */
		size_t j = i;
		while (j < n) {
			size_t l = hie_text_utf8_len((const unsigned char *)s + j, n - j);
			if (j + l - i > 42)
				break;
			j += l;
		}
		hie_buf_reset(&enc);
		err = hie_mime_base64_encode(s + i, j - i, false, &enc);
		if (!err)
			err = hie_buf_addf(b, "%s=?UTF-8?B?%s?=", i ? "\r\n " : " ", hie_buf_str(&enc));
		i = j;
	}
	hie_buf_free(&enc);
	if (!err)
		err = hie_buf_addstr(b, "\r\n");
	return err;
}

/* "To: a@x,\r\n b@y\r\n" with every address normalized. */
static hie_err_t add_addrs(struct hie_buf *b, const char *name, const char *const *a, size_t n)
{
	hie_err_t err = hie_buf_addf(b, "%s: ", name);
	for (size_t i = 0; i < n && !err; i++) {
		char norm[256];
		if (!a[i] || hisp_addr_normalize(a[i], false, norm, sizeof norm) != HIE_OK)
			return HIE_EINVAL;
		err = hie_buf_addf(b, "%s%s", i ? ",\r\n " : "", norm);
	}
	if (!err)
		err = hie_buf_addstr(b, "\r\n");
	return err;
}

/* 7bit: no NUL, no 8-bit byte, CR only before LF, lines ≤ 998 bytes. */
static bool is_7bit(const char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || c >= 0x80)
			return false;
		if (c == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n')
				return false;
			continue;
		}
		if (c == '\n') {
			col = 0;
			continue;
		}
		if (++col > 998)
			return false;
	}
	return true;
}

/* Text with every line end (CRLF, bare LF) written as CRLF, and a final CRLF. */
static hie_err_t add_text_crlf(struct hie_buf *b, const char *s, size_t n)
{
	hie_err_t err = HIE_OK;
	size_t i = 0;
	while (i < n && !err) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t e = nl ? (size_t)(nl - s) : n;
		size_t le = e;
		if (le > i && s[le - 1] == '\r')
			le--;
		err = hie_buf_add(b, s + i, le - i);
		if (!err && (nl || le > i))
			err = hie_buf_add(b, "\r\n", 2);
		i = nl ? e + 1 : n;
	}
	return err;
}

/* Quoted-printable (RFC 2045 §6.7) of text: line ends become hard CRLF breaks; lines ≤ 76. */
static hie_err_t add_qp(struct hie_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	hie_err_t err = HIE_OK;
	size_t col = 0;
	for (size_t i = 0; i < n && !err; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' || (c == '\r' && i + 1 < n && s[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			err = hie_buf_add(b, "\r\n", 2);
			col = 0;
			continue;
		}
		bool at_eol = i + 1 == n || s[i + 1] == '\n' || (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n');
		char tok[3];
		size_t tl;
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol)) {
			tok[0] = (char)c;
			tl = 1;
		} else {
			tok[0] = '=';
			tok[1] = hex[c >> 4];
			tok[2] = hex[c & 15];
			tl = 3;
		}
		if (col + tl > 75) {
			err = hie_buf_add(b, "=\r\n", 3);
			col = 0;
		}
		if (!err)
			err = hie_buf_add(b, tok, tl);
		col += tl;
	}
	if (!err && col)
		err = hie_buf_add(b, "\r\n", 2);
	return err;
}

static hie_err_t add_text_part(struct hie_buf *b, const char *body, size_t len)
{
	hie_err_t err;
	bool plain = is_7bit(body, len);
	err = hie_buf_addf(b, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n",
			   plain ? "7bit" : "quoted-printable");
	if (!err)
		err = plain ? add_text_crlf(b, body, len) : add_qp(b, body, len);
	return err;
}

static const char *guess_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".xml", "application/xml"}, {".pdf", "application/pdf"},   {".txt", "text/plain"},
		{".zip", "application/zip"}, {".html", "text/html"},        {".htm", "text/html"},
		{".json", "application/json"}, {".jpg", "image/jpeg"},     {".jpeg", "image/jpeg"},
		{".png", "image/png"},       {".hl7", "application/hl7-v2"},
	};
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		size_t e = strlen(types[i].ext);
		if (n > e && strcasecmp(name + n - e, types[i].ext) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/* A type/subtype token pair without parameters (a caller's content_type). */
static bool media_type_ok(const char *t)
{
	size_t slash = 0, n = strlen(t);
	if (n == 0 || n > 127)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == '/') {
			if (slash || i == 0 || i + 1 == n)
				return false;
			slash = i;
		} else if (!(c > 0x20 && c < 0x7f) || strchr("()<>@,;:\\\"[]?=", c)) {
			return false;
		}
	}
	return slash != 0;
}

/* name="…" (ASCII: quoted-string) or name*=UTF-8''%XX (RFC 2231) for param. */
static hie_err_t add_filename_param(struct hie_buf *b, const char *param, const char *name)
{
	size_t n = strlen(name);
	hie_err_t err;
	if (is_ascii(name, n)) {
		err = hie_buf_addf(b, "; %s=\"", param);
		for (size_t i = 0; i < n && !err; i++) {
			if (name[i] == '"' || name[i] == '\\')
				err = hie_buf_add(b, "\\", 1);
			if (!err)
				err = hie_buf_add(b, name + i, 1);
		}
		return err ? err : hie_buf_add(b, "\"", 1);
	}
	err = hie_buf_addf(b, "; %s*=UTF-8''", param);
	for (size_t i = 0; i < n && !err; i++) {
		unsigned char c = (unsigned char)name[i];
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr("-._~", c))
			err = hie_buf_add(b, name + i, 1);
		else
			err = hie_buf_addf(b, "%%%02X", c);
	}
	return err;
}

static hie_err_t add_attachment(struct hie_buf *b, const struct hisp_attachment *a)
{
	hie_err_t err;
	const char *type = a->content_type ? a->content_type : guess_type(a->name);
	if (!media_type_ok(type))
		return HIE_EINVAL;
	err = hie_buf_addf(b, "Content-Type: %s", type);
	if (!err)
		err = add_filename_param(b, "name", a->name);
	if (!err)
		err = hie_buf_addstr(b, "\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment");
	if (!err)
		err = add_filename_param(b, "filename", a->name);
	if (!err)
		err = hie_buf_addstr(b, "\r\n\r\n");
	if (!err && a->len)
		err = hie_mime_base64_encode(a->data, a->len, true, b);
	if (!err)
		err = hie_buf_addstr(b, "\r\n");
	return err;
}

static hie_err_t check_request(const struct hisp_compose_req *r)
{
	if (!r || !r->from || !r->host || !r->subject || (!r->to && r->nto) || (!r->cc && r->ncc) ||
	    r->nto + r->ncc == 0 || (r->natt && !r->att) || (r->body_len && !r->body))
		return HIE_EINVAL;
	size_t hl = strlen(r->host);
	if (hl == 0 || hl > 200 || !header_safe(r->host, hl) || strpbrk(r->host, " \t<>@\"()[]\\,;:"))
		return HIE_EINVAL;
	for (size_t i = 0; i < r->natt; i++) {
		const char *nm = r->att[i].name;
		if (!nm || !nm[0] || strlen(nm) > 255 || !header_safe(nm, strlen(nm)) ||
		    !hie_text_utf8_valid(nm, strlen(nm)) || (r->att[i].len && !r->att[i].data))
			return HIE_EINVAL;
	}
	return HIE_OK;
}

hie_err_t hisp_compose(const struct hisp_compose_req *r, struct hie_buf *out, char *message_id, size_t idlen)
{
	hie_err_t err = check_request(r);
	if (err)
		return err;
	size_t start = out->len;
	char from[256], rnd[33], boundary[64];
	if (hisp_addr_normalize(r->from, false, from, sizeof from) != HIE_OK)
		return HIE_EINVAL;
	if (!message_id || idlen < 32 + 2 + strlen(r->host))
		return HIE_EINVAL;
	TRY(random_hex(rnd, 16));
	snprintf(message_id, idlen, "%s@%s", rnd, r->host);

	TRY(hie_buf_addf(out, "From: %s\r\n", from));
	if (r->nto)
		TRY(add_addrs(out, "To", r->to, r->nto));
	if (r->ncc)
		TRY(add_addrs(out, "Cc", r->cc, r->ncc));
	TRY(add_subject(out, r->subject));
	TRY(hisp_add_date(out));
	TRY(hie_buf_addf(out, "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n", message_id));
	TRY(hie_buf_addstr(out, "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n"));
	const char *body = r->body ? r->body : "";
	if (r->natt == 0) {
		TRY(add_text_part(out, body, r->body_len));
		goto out;
	}
	TRY(random_hex(rnd, 12));
	snprintf(boundary, sizeof boundary, "=_hienode_%s", rnd); /* "=_" cannot occur in base64 or QP text */
	TRY(hie_buf_addf(out, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
			      "This is a MIME-formatted message.\r\n",
			 boundary));
	if (r->body) {
		TRY(hie_buf_addf(out, "\r\n--%s\r\n", boundary));
		TRY(add_text_part(out, body, r->body_len));
	}
	for (size_t i = 0; i < r->natt; i++) {
		TRY(hie_buf_addf(out, "\r\n--%s\r\n", boundary));
		TRY(add_attachment(out, &r->att[i]));
	}
	TRY(hie_buf_addf(out, "\r\n--%s--\r\n", boundary));
out:
	if (err) {
		out->len = start;
		if (out->data)
			out->data[start] = 0;
		if (message_id && idlen)
			message_id[0] = 0;
	}
	return err;
}
