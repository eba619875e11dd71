/*
 * hisp_edge_json.c — a stored (decrypted, verified) Direct message as the mailbox API's JSON: the summary of
 * the list (from, subject), and for a fetch the headers, the leaf parts (hisp_parts_split) with text bodies
 * inline and attachments in base64, and every XDM attachment unpacked (hisp_xdm_read) with its metadata and
 * documents, or its reason for being invalid.
 *
 * Entry points: hisp_edge_jtext, hisp_edge_utf8_ok, hisp_edge_json_summary, hisp_edge_json_message
 * (hisp_edge_api_int.h). Errors: HIE_ENOMEM; a message that cannot be split is reported inside the JSON
 * ("parts_error"), not as an error. Everything taken from the message is peer text: made printable UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_mime.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_edge_api_int.h"
#include "hisp/hisp_notice.h"

#define HDR_MAX (64u * 1024)

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 table), 0 when there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t k;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else
		return 0;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k;
}

bool hisp_edge_utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(s + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

json_t *hisp_edge_jtext(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	char *o = malloc(n + 1);
	size_t w = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(u + i, n - i);
		if (k > 1) {
			memcpy(o + w, u + i, k);
			w += k;
			i += k;
			continue;
		}
		o[w++] = (k == 1 && u[i] >= 0x20 && u[i] != 0x7f) ? (char)u[i] : (u[i] == '\t' ? ' ' : '?');
		i++;
	}
	json_t *j = json_stringn_nocheck(o, w);
	free(o);
	return j;
}

/* Sets key to the sanitized text; false when out of memory. */
static bool set_text(json_t *obj, const char *key, const char *s, size_t n)
{
	json_t *v = hisp_edge_jtext(s, n);
	return v && json_object_set_new(obj, key, v) == 0;
}

static int first_addr(const char *addr, void *arg)
{
	struct hie_buf *b = arg;
	hie_buf_reset(b);
	hie_buf_addstr(b, addr);
	return 1;
}

static int push_addr(const char *addr, void *arg)
{
	json_t *arr = arg;
	json_array_append_new(arr, hisp_edge_jtext(addr, strlen(addr)));
	return 0;
}

/* obj[key] = header name's first value (sanitized), or null when absent. */
static bool set_header(json_t *obj, const char *key, const char *msg, size_t len, const char *name,
		       struct hie_buf *v)
{
	if (hisp_msg_header(msg, len, name, 0, v) != HIE_OK)
		return json_object_set_new(obj, key, json_null()) == 0;
	return set_text(obj, key, v->data, v->len);
}

/* "from": the first address of From, or the header as it is when it holds no address. */
static bool set_from(json_t *obj, const char *msg, size_t len, struct hie_buf *v)
{
	struct hie_buf a;
	bool ok;
	if (hisp_msg_header(msg, len, "From", 0, v) != HIE_OK)
		return json_object_set_new(obj, "from", json_null()) == 0;
	hie_buf_init(&a, 512);
	if (hisp_addrlist_each(v->data, v->len, first_addr, &a) == HIE_OK && a.len)
		ok = set_text(obj, "from", a.data, a.len);
	else
		ok = set_text(obj, "from", v->data, v->len);
	hie_buf_free(&a);
	return ok;
}

hie_err_t hisp_edge_json_summary(const char *msg, size_t len, json_t *obj)
{
	struct hie_buf v;
	hie_buf_init(&v, HDR_MAX);
	bool ok = set_from(obj, msg, len, &v) && set_header(obj, "subject", msg, len, "Subject", &v);
	hie_buf_free(&v);
	return ok ? HIE_OK : HIE_ENOMEM;
}

/* Every address of every occurrence of header name, as an array. */
static json_t *addr_array(const char *msg, size_t len, const char *name, struct hie_buf *v)
{
	json_t *arr = json_array();
	for (unsigned nth = 0; arr && nth < 100 && hisp_msg_header(msg, len, name, nth, v) == HIE_OK; nth++)
		hisp_addrlist_each(v->data, v->len, push_addr, arr);
	return arr;
}

static json_t *headers_json(const char *msg, size_t len)
{
	struct hie_buf v;
	json_t *h = json_object();
	bool ok = h != NULL;
	hie_buf_init(&v, HDR_MAX);
	ok = ok && set_from(h, msg, len, &v);
	ok = ok && json_object_set_new(h, "to", addr_array(msg, len, "To", &v)) == 0;
	ok = ok && json_object_set_new(h, "cc", addr_array(msg, len, "Cc", &v)) == 0;
	ok = ok && set_header(h, "subject", msg, len, "Subject", &v);
	ok = ok && set_header(h, "date", msg, len, "Date", &v);
	if (ok && hisp_msg_header(msg, len, "Message-ID", 0, &v) == HIE_OK) {
		const char *s = v.data;
		size_t n = v.len;
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
			s++, n -= 2;
		ok = set_text(h, "message_id", s, n);
	} else if (ok)
		ok = json_object_set_new(h, "message_id", json_null()) == 0;
	ok = ok && set_header(h, "disposition_notification_options", msg, len, "Disposition-Notification-Options", &v);
	hie_buf_free(&v);
	if (!ok) {
		json_decref(h);
		return NULL;
	}
	return h;
}

static json_t *base64_json(const void *data, size_t len)
{
	struct hie_buf b;
	json_t *j = NULL;
	hie_buf_init(&b, len / 3 * 4 + 16);
	if (hie_mime_base64_encode(data, len, false, &b) == HIE_OK)
		j = json_stringn_nocheck(b.len ? b.data : "", b.len);
	hie_buf_free(&b);
	return j;
}

/* A text body may be shown inline when it is UTF-8 (declared as such, or plain ASCII whatever the charset). */
static bool text_inline(const struct hisp_part *p)
{
	if (p->attachment || (strcmp(p->content_type, "text/plain") != 0 && strcmp(p->content_type, "text/html") != 0))
		return false;
	if (!p->charset[0] || strcmp(p->charset, "utf-8") == 0 || strcmp(p->charset, "utf8") == 0 ||
	    strcmp(p->charset, "us-ascii") == 0)
		return hisp_edge_utf8_ok(p->data, p->len);
	for (size_t i = 0; i < p->len; i++)
		if (p->data[i] >= 0x80)
			return false;
	return true;
}

static json_t *part_json(const struct hisp_part *p, bool content)
{
	json_t *o = json_object();
	bool ok = o != NULL;
	ok = ok && json_object_set_new(o, "index", json_integer(p->index)) == 0;
	ok = ok && set_text(o, "content_type", p->content_type, strlen(p->content_type));
	ok = ok && set_text(o, "charset", p->charset, strlen(p->charset));
	ok = ok && set_text(o, "filename", p->filename, strlen(p->filename));
	ok = ok && json_object_set_new(o, "size", json_integer((json_int_t)p->len)) == 0;
	ok = ok && json_object_set_new(o, "attachment", json_boolean(p->attachment)) == 0;
	ok = ok && json_object_set_new(o, "xdm", json_boolean(p->is_xdm)) == 0;
	ok = ok && json_object_set_new(o, "cda", json_boolean(p->is_cda)) == 0;
	if (ok && text_inline(p))
		ok = json_object_set_new(o, "text", json_stringn_nocheck(p->len ? (const char *)p->data : "", p->len)) ==
		     0;
	else if (ok && content)
		ok = json_object_set_new(o, "content_base64", base64_json(p->data, p->len)) == 0;
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *xdm_doc_json(const struct hisp_xdm_doc *d, bool content)
{
	json_t *o = json_object();
	bool ok = o != NULL;
	ok = ok && set_text(o, "path", d->path ? d->path : "", d->path ? strlen(d->path) : 0);
	ok = ok && set_text(o, "entry_id", d->entry_id ? d->entry_id : "", d->entry_id ? strlen(d->entry_id) : 0);
	ok = ok && set_text(o, "unique_id", d->unique_id ? d->unique_id : "", d->unique_id ? strlen(d->unique_id) : 0);
	ok = ok && set_text(o, "mime_type", d->mime_type ? d->mime_type : "", d->mime_type ? strlen(d->mime_type) : 0);
	ok = ok && json_object_set_new(o, "size", json_integer((json_int_t)d->len)) == 0;
	if (ok && content)
		ok = json_object_set_new(o, "content_base64", base64_json(d->data, d->len)) == 0;
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* One XDM attachment: valid with metadata and documents, or invalid with hisp_xdm_read's reason. */
static json_t *xdm_json(const struct hisp_part *p, bool content)
{
	struct hisp_xdm *x = NULL;
	char why[256] = "";
	json_t *o = json_object(), *docs = NULL;
	bool ok = o != NULL && json_object_set_new(o, "part", json_integer(p->index)) == 0;
	hie_err_t err = ok ? hisp_xdm_read(p->data, p->len, &x, why, sizeof why) : HIE_ENOMEM;
	if (err == HIE_ENOMEM)
		ok = false;
	else if (err) {
		const char *reason = why[0] ? why : (err == HIE_ETOOBIG ? "XDM package too large" : hie_strerror(err));
		ok = ok && json_object_set_new(o, "valid", json_false()) == 0 &&
		     set_text(o, "error", reason, strlen(reason));
	} else {
		ok = ok && json_object_set_new(o, "valid", json_true()) == 0;
		ok = ok && set_text(o, "subset", x->subset, strlen(x->subset));
		ok = ok && set_text(o, "metadata", x->metadata ? x->metadata : "", x->metadata ? x->metadata_len : 0);
		ok = ok && (docs = json_array()) != NULL && json_object_set_new(o, "documents", docs) == 0;
		for (size_t i = 0; ok && i < x->ndocs; i++)
			ok = json_array_append_new(docs, xdm_doc_json(&x->docs[i], content)) == 0;
	}
	if (x)
		hisp_xdm_free(x);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

hie_err_t hisp_edge_json_message(const char *msg, size_t len, size_t max_bytes, bool content, json_t *obj)
{
	struct hisp_parts parts = {0};
	json_t *parr = json_array(), *xarr = json_array();
	bool ok = parr && xarr;
	ok = ok && json_object_set_new(obj, "headers", headers_json(msg, len)) == 0;
	hie_err_t err = ok ? hisp_parts_split(msg, len, max_bytes, &parts) : HIE_ENOMEM;
	if (err == HIE_ENOMEM) {
		ok = false;
	} else if (err) {
		const char *why = err == HIE_ETOOBIG ? "message parts too large" : "malformed MIME structure";
		ok = ok && set_text(obj, "parts_error", why, strlen(why));
	} else {
		for (size_t i = 0; ok && i < parts.n; i++) {
			ok = json_array_append_new(parr, part_json(&parts.v[i], content)) == 0;
			if (ok && parts.v[i].is_xdm)
				ok = json_array_append_new(xarr, xdm_json(&parts.v[i], content)) == 0;
		}
	}
	hisp_parts_free(&parts);
	if (ok) {
		ok = json_object_set_new(obj, "parts", parr) == 0;
		parr = NULL;
		ok = ok && json_object_set_new(obj, "xdm", xarr) == 0;
		xarr = NULL;
	}
	json_decref(parr);
	json_decref(xarr);
	return ok ? HIE_OK : HIE_ENOMEM;
}
