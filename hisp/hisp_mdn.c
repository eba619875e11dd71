/*
 * hisp_mdn.c — MDNs (RFC 3798) and DSNs (RFC 3464) as Direct uses them (Implementation Guide for Delivery
 * Notification in Direct), plus the small header and address-list readers the receive path needs.
 *
 * Entry points:
 *   hisp_notice_parse / hisp_notice_parse_nth   recognize an incoming notice: multipart/report with
 *        report-type=disposition-notification (message/disposition-notification part) or
 *        report-type=delivery-status (message/delivery-status part, one call per recipient group).
 *        Lenient where real senders are (the Direct RI's MDNs: Final-Recipient without "rfc822;", MDN fields
 *        in the part's header block, a missing close delimiter); strict on what we copy out (message ids and
 *        addresses must be printable ASCII and fit). The original message id of a DSN comes from the
 *        per-message field X-Original-Message-ID (or any "*-Original-Message-ID"), else the Message-ID of a
 *        text/rfc822-headers part, else the report's In-Reply-To.
 *   hisp_mdn_build    processed / dispatched / failed MDN (no Disposition-Notification-To/-Options on it:
 *        never ask for a notice about a notice); X-DIRECT-FINAL-DESTINATION-DELIVERY when final_delivery.
 *   hisp_dsn_build    failure DSN from MAILER-DAEMON@<domain of the sender> with X-Original-Message-ID,
 *        In-Reply-To and a text/rfc822-headers part naming the original.
 *   hisp_msg_header, hisp_addrlist_each, hisp_notice_wants_final   header helpers.
 *
 * Errors: HIE_EPARSE (malformed report), HIE_EINVAL (a build field missing or holding CR/LF, non-ASCII,
 * angle brackets in an id), HIE_ETOOBIG (out's cap), HIE_ENOMEM.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/core_mime.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_util.h"

#define REPORT_BOUNDARY "=_hienode_report_0"
#define FIELD_MAX 4096 /* one unfolded field value we look at */

/* --- field blocks (RFC 5322 header blocks, and the field groups of a report body) ------------------------ */

struct fields {
	const char *p;
	size_t len, pos;
};

struct fld {
	const char *name, *val;
	size_t nlen, vlen;
};

static size_t line_end(const struct fields *it, size_t from, size_t *next)
{
	size_t i = from;
	while (i < it->len && it->p[i] != '\n')
		i++;
	*next = i < it->len ? i + 1 : i;
	if (i > from && it->p[i - 1] == '\r')
		i--;
	return i;
}

/* 1: a field; 0: a blank line (end of a header block or of a field group); -1: end of data. Lines that are not
 * "name: value" are skipped (reports in the wild carry junk); continuation lines belong to the field above. */
static int next_field(struct fields *it, struct fld *f)
{
	while (it->pos < it->len) {
		size_t next, start = it->pos;
		size_t end = line_end(it, start, &next);
		it->pos = next;
		if (end == start)
			return 0;
		char c0 = it->p[start];
		if (c0 == ' ' || c0 == '\t')
			continue;
		const char *colon = memchr(it->p + start, ':', end - start);
		if (!colon)
			continue;
		size_t nlen = (size_t)(colon - (it->p + start));
		while (nlen > 0 && (it->p[start + nlen - 1] == ' ' || it->p[start + nlen - 1] == '\t'))
			nlen--;
		if (nlen == 0)
			continue;
		size_t vend = end;
		while (it->pos < it->len && (it->p[it->pos] == ' ' || it->p[it->pos] == '\t')) {
			vend = line_end(it, it->pos, &next);
			it->pos = next;
		}
		f->name = it->p + start;
		f->nlen = nlen;
		f->val = colon + 1;
		f->vlen = (size_t)(it->p + vend - f->val);
		return 1;
	}
	return -1;
}

static bool name_is(const struct fld *f, const char *name)
{
	size_t n = strlen(name);
	return f->nlen == n && strncasecmp(f->name, name, n) == 0;
}

static bool name_ends(const struct fld *f, const char *suffix)
{
	size_t n = strlen(suffix);
	return f->nlen >= n && strncasecmp(f->name + f->nlen - n, suffix, n) == 0;
}

/* Unfolds (drops CR/LF) and trims a value into out (reset first). */
static hie_err_t unfold(const char *v, size_t vlen, struct hie_buf *out)
{
	hie_buf_reset(out);
	size_t a = 0, b = vlen;
	while (a < b && (v[a] == ' ' || v[a] == '\t' || v[a] == '\r' || v[a] == '\n'))
		a++;
	while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t' || v[b - 1] == '\r' || v[b - 1] == '\n'))
		b--;
	for (size_t i = a; i < b;) {
		size_t j = i;
		while (j < b && v[j] != '\r' && v[j] != '\n')
			j++;
		hie_err_t err = hie_buf_add(out, v + i, j - i);
		if (err)
			return err;
		while (j < b && (v[j] == '\r' || v[j] == '\n'))
			j++;
		i = j;
	}
	return hie_buf_add(out, "", 0);
}

hie_err_t hisp_msg_header(const char *msg, size_t len, const char *name, unsigned nth, struct hie_buf *out)
{
	struct fields it = {.p = msg, .len = len};
	struct fld f;
	unsigned seen = 0;
	if (!msg || !name || !out)
		return HIE_EINVAL;
	while (next_field(&it, &f) == 1) {
		if (name_is(&f, name) && seen++ == nth)
			return unfold(f.val, f.vlen, out);
	}
	return HIE_ENOTFOUND;
}

/* --- address lists --------------------------------------------------------------------------------------- */

/* One list element (between top-level commas): the <addr-spec> when there is one, else the element without
 * comments and quoted display text. */
static int element(const char *v, size_t len, int (*fn)(const char *, void *), void *arg)
{
	char tmp[300];
	size_t n = 0;
	const char *lt = NULL;
	for (size_t i = 0; i < len; i++)
		if (v[i] == '<')
			lt = v + i;
	if (lt) {
		const char *gt = memchr(lt, '>', (size_t)(v + len - lt));
		if (!gt)
			return 0;
		v = lt + 1;
		len = (size_t)(gt - v);
	}
	int depth = 0;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
		else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			if (n + 1 >= sizeof tmp)
				return 0;
			tmp[n++] = c;
		}
	}
	tmp[n] = '\0';
	char addr[256];
	if (n == 0 || hisp_addr_normalize(tmp, false, addr, sizeof addr) != HIE_OK)
		return 0;
	return fn(addr, arg);
}

hie_err_t hisp_addrlist_each(const char *v, size_t len, int (*fn)(const char *addr, void *arg), void *arg)
{
	size_t start = 0;
	int depth = 0;
	bool quoted = false, angle = false;
	if (!v || !fn)
		return HIE_EINVAL;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? v[i] : ',';
		if (quoted) {
			if (c == '\\')
				i++;
			else if (c == '"')
				quoted = false;
			if (i >= len)
				return HIE_EPARSE;
			continue;
		}
		if (depth > 0) {
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			if (i >= len && depth > 0)
				return HIE_EPARSE;
			continue;
		}
		if (c == '"') {
			quoted = true;
		} else if (c == '(') {
			depth = 1;
		} else if (c == '<') {
			angle = true;
		} else if (c == '>') {
			angle = false;
		} else if (!angle && (c == ',' || c == ';' || c == ':')) {
			/* ':' ends a group's display name, ';' the group */
			if (c != ':' && element(v + start, i - start, fn, arg))
				return HIE_OK;
			start = i + 1;
		}
		if (i == len && angle)
			return HIE_EPARSE;
	}
	return HIE_OK;
}

bool hisp_notice_wants_final(const char *value, size_t len)
{
	static const char key[] = "x-direct-final-destination-delivery";
	size_t kl = sizeof key - 1;
	for (size_t i = 0; value && i + kl <= len; i++) {
		if (strncasecmp(value + i, key, kl) != 0)
			continue;
		size_t j = i + kl;
		while (j < len && (value[j] == ' ' || value[j] == '\t'))
			j++;
		if (j >= len || value[j] != '=')
			continue;
		/* importance "," value: the value must be true (RFC 3798 §2.2) */
		const char *comma = memchr(value + j, ',', len - j);
		if (!comma)
			continue;
		size_t k = (size_t)(comma - value) + 1;
		while (k < len && (value[k] == ' ' || value[k] == '\t'))
			k++;
		if (k + 4 <= len && strncasecmp(value + k, "true", 4) == 0)
			return true;
	}
	return false;
}

/* --- parsing notices ------------------------------------------------------------------------------------- */

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* A msg-id value, without <>; "" when empty. */
static hie_err_t copy_msgid(const char *v, size_t vlen, char *out, size_t outlen)
{
	struct hie_buf b;
	hie_buf_init(&b, FIELD_MAX);
	hie_err_t err = unfold(v, vlen, &b);
	if (err) {
		hie_buf_free(&b);
		return HIE_EPARSE;
	}
	const char *s = hie_buf_str(&b);
	size_t n = b.len;
	const char *lt = memchr(s, '<', n);
	if (lt) {
		const char *gt = memchr(lt, '>', (size_t)(s + n - lt));
		if (!gt) {
			hie_buf_free(&b);
			return HIE_EPARSE;
		}
		s = lt + 1;
		n = (size_t)(gt - s);
	}
	if (n >= outlen || !printable(s, n) || memchr(s, '<', n) || memchr(s, '>', n))
		err = HIE_EPARSE;
	else {
		memcpy(out, s, n);
		out[n] = '\0';
	}
	hie_buf_free(&b);
	return err;
}

/* "rfc822; a@b" or a bare address → normalized address; "" when it is not one. */
static void copy_recipient(const char *v, size_t vlen, char *out, size_t outlen)
{
	struct hie_buf b;
	out[0] = '\0';
	hie_buf_init(&b, FIELD_MAX);
	if (unfold(v, vlen, &b) == HIE_OK) {
		const char *s = hie_buf_str(&b);
		const char *semi = strchr(s, ';');
		if (semi)
			s = semi + 1;
		while (*s == ' ' || *s == '\t')
			s++;
		char tmp[300];
		size_t n = strlen(s);
		if (n > 1 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		if (n < sizeof tmp) {
			memcpy(tmp, s, n);
			tmp[n] = '\0';
			if (hisp_addr_normalize(tmp, false, out, outlen) != HIE_OK)
				out[0] = '\0';
		}
	}
	hie_buf_free(&b);
}

/* "automatic-action/MDN-sent-automatically; processed/error" → "failed" for error modifiers, else the type. */
static void copy_disposition(const char *v, size_t vlen, char *out, size_t outlen)
{
	const char *semi = memchr(v, ';', vlen);
	out[0] = '\0';
	if (!semi)
		return;
	size_t i = (size_t)(semi - v) + 1, n = 0;
	while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'))
		i++;
	while (i < vlen && n + 1 < outlen) {
		char c = v[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (!((c >= 'a' && c <= 'z') || c == '-'))
			break;
		out[n++] = c;
		i++;
	}
	out[n] = '\0';
	/* RFC 3798 modifiers "/error" (and RFC 2298's "/failure") turn any disposition into a failure. */
	if (i < vlen && v[i] == '/') {
		for (size_t k = i; k + 5 <= vlen; k++)
			if (strncasecmp(v + k, "error", 5) == 0 || (k + 7 <= vlen && strncasecmp(v + k, "failure", 7) == 0))
				snprintf(out, outlen, "failed");
	}
}

static hie_err_t mdn_field(struct hisp_notice_info *o, const struct fld *f, bool *have_disp)
{
	if (name_is(f, "Disposition")) {
		copy_disposition(f->val, f->vlen, o->disposition, sizeof o->disposition);
		*have_disp = o->disposition[0] != '\0';
	} else if (name_is(f, "Original-Message-ID")) {
		return copy_msgid(f->val, f->vlen, o->original_message_id, sizeof o->original_message_id);
	} else if (name_is(f, "Final-Recipient")) {
		copy_recipient(f->val, f->vlen, o->final_recipient, sizeof o->final_recipient);
	} else if (name_is(f, "X-DIRECT-FINAL-DESTINATION-DELIVERY")) {
		o->final_delivery = true;
	}
	return HIE_OK;
}

static const struct hie_mime_part *child_of_type(const struct hie_mime_part *top, const char *type)
{
	for (size_t i = 0; i < top->nchildren; i++)
		if (strcmp(top->children[i].type, type) == 0)
			return &top->children[i];
	return NULL;
}

/* The decoded body of top's first child of type into *body, initialised with cap (the caller frees it whatever
 * happens). HIE_EPARSE when there is no such child or it does not decode. */
static hie_err_t child_body(const struct hie_mime_part *top, const char *type, size_t cap,
			    const struct hie_mime_part **part, struct hie_buf *body)
{
	hie_buf_init(body, cap);
	*part = child_of_type(top, type);
	if (!*part || hie_mime_decode(*part, body) != HIE_OK)
		return HIE_EPARSE;
	return HIE_OK;
}

static hie_err_t parse_mdn(const struct hie_mime_part *top, struct hisp_notice_info *o)
{
	const struct hie_mime_part *p;
	struct hie_buf body;
	bool have_disp = false;
	hie_err_t err = child_body(top, "message/disposition-notification", 64 * 1024, &p, &body);
	if (err)
		goto out;
	struct fields it = {.p = body.data, .len = body.len};
	struct fld f;
	int r;
	while ((r = next_field(&it, &f)) >= 0 && !err)
		if (r == 1)
			err = mdn_field(o, &f, &have_disp);
	/* The Direct RI has sent the fields inside the part's header block (no blank line before them). */
	for (size_t i = 0; i < p->nheaders && !err; i++) {
		struct fld hf = {.name = p->headers[i].name,
				 .nlen = p->headers[i].name_len,
				 .val = p->headers[i].value,
				 .vlen = p->headers[i].value_len};
		err = mdn_field(o, &hf, &have_disp);
	}
	if (!err && !have_disp)
		err = HIE_EPARSE;
out:
	hie_buf_free(&body);
	return err;
}

static hie_err_t dsn_original_id(const struct hie_mime_part *top, struct hisp_notice_info *o)
{
	const struct hie_mime_part *h = child_of_type(top, "text/rfc822-headers");
	struct hie_buf v;
	hie_err_t err = HIE_OK;
	if (!h)
		h = child_of_type(top, "message/rfc822");
	hie_buf_init(&v, FIELD_MAX);
	if (h && hisp_msg_header(h->body, h->body_len, "Message-ID", 0, &v) == HIE_OK)
		err = copy_msgid(v.data, v.len, o->original_message_id, sizeof o->original_message_id);
	else if (hie_mime_header_value(top, "In-Reply-To", &v) == HIE_OK)
		err = copy_msgid(v.data, v.len, o->original_message_id, sizeof o->original_message_id);
	hie_buf_free(&v);
	return err;
}

static hie_err_t parse_dsn(const struct hie_mime_part *top, unsigned nth, struct hisp_notice_info *o)
{
	const struct hie_mime_part *p;
	struct hie_buf body;
	hie_err_t err = child_body(top, "message/delivery-status", 256 * 1024, &p, &body);
	if (err)
		goto out;
	struct fields it = {.p = body.data, .len = body.len};
	struct fld f;
	unsigned group = 0, rcpt = 0;
	bool in_group = false, found = false, have_rcpt = false, failed = false;
	char addr[256] = "";
	for (;;) {
		int r = next_field(&it, &f);
		if (r == 1) {
			in_group = true;
			if (group == 0) {
				if (name_ends(&f, "Original-Message-ID"))
					err = copy_msgid(f.val, f.vlen, o->original_message_id, sizeof o->original_message_id);
			} else if (name_is(&f, "Final-Recipient")) {
				have_rcpt = true;
				copy_recipient(f.val, f.vlen, addr, sizeof addr);
			} else if (name_is(&f, "Action")) {
				struct hie_buf a;
				hie_buf_init(&a, 64);
				failed = unfold(f.val, f.vlen, &a) == HIE_OK && strcasecmp(hie_buf_str(&a), "failed") == 0;
				hie_buf_free(&a);
			}
			if (err)
				goto out;
			continue;
		}
		if (in_group && group > 0 && have_rcpt) {
			if (rcpt++ == nth) {
				snprintf(o->final_recipient, sizeof o->final_recipient, "%s", addr);
				o->dsn_failed = failed;
				found = true;
			}
		}
		if (in_group)
			group++;
		in_group = have_rcpt = failed = false;
		addr[0] = '\0';
		if (r < 0)
			break;
	}
	if (rcpt == 0)
		err = HIE_EPARSE; /* no recipient group at all */
	else if (!found)
		err = HIE_ENOTFOUND;
	else if (!o->original_message_id[0])
		err = dsn_original_id(top, o);
out:
	hie_buf_free(&body);
	return err;
}

hie_err_t hisp_notice_parse_nth(const char *msg, size_t len, unsigned nth, struct hisp_notice_info *out)
{
	struct hie_buf ct, rt;
	struct hie_mime_part *top = NULL;
	char type[128];
	hie_err_t err = HIE_OK;
	if (!msg || !out)
		return HIE_EINVAL;
	memset(out, 0, sizeof *out);
	hie_buf_init(&ct, FIELD_MAX);
	hie_buf_init(&rt, 256);
	/* Only the top Content-Type decides; an ordinary message is never parsed further here. */
	if (hisp_msg_header(msg, len, "Content-Type", 0, &ct) != HIE_OK ||
	    hie_mime_media_type(ct.data, ct.len, type, sizeof type) != HIE_OK || strcmp(type, "multipart/report") != 0)
		goto out;
	if (hie_mime_param(ct.data, ct.len, "report-type", &rt) != HIE_OK)
		goto out;
	if (strcasecmp(hie_buf_str(&rt), "disposition-notification") == 0)
		out->kind = HISP_NOTICE_MDN;
	else if (strcasecmp(hie_buf_str(&rt), "delivery-status") == 0)
		out->kind = HISP_NOTICE_DSN;
	else
		goto out;
	if (out->kind == HISP_NOTICE_MDN && nth > 0) {
		err = HIE_ENOTFOUND;
		goto out;
	}
	if (hie_mime_parse_ex(msg, len, NULL, HIE_MIME_LENIENT_CLOSE, &top) != HIE_OK) {
		err = HIE_EPARSE;
		goto out;
	}
	err = out->kind == HISP_NOTICE_MDN ? parse_mdn(top, out) : parse_dsn(top, nth, out);
out:
	hie_mime_free(top);
	hie_buf_free(&ct);
	hie_buf_free(&rt);
	return err;
}

hie_err_t hisp_notice_parse(const char *msg, size_t len, struct hisp_notice_info *out)
{
	return hisp_notice_parse_nth(msg, len, 0, out);
}

/* --- building -------------------------------------------------------------------------------------------- */

/* Text we put in a header or field line: printable ASCII, no CR/LF, bounded. */
static bool line_ok(const char *s, size_t max)
{
	if (!s || !s[0])
		return false;
	size_t n = strlen(s);
	return n <= max && printable(s, n);
}

static bool id_ok(const char *s)
{
	/* Spaces are tolerated: real senders use them (the Direct RI's test messages) and inside <> they are harmless. */
	return line_ok(s, 250) && !strchr(s, '<') && !strchr(s, '>');
}

static const char *subject_word(const char *disp)
{
	if (strcmp(disp, "dispatched") == 0)
		return "Dispatched";
	if (strcmp(disp, "failed") == 0)
		return "Failed";
	return "Processed";
}

hie_err_t hisp_mdn_build(const struct hisp_mdn_req *r, struct hie_buf *out)
{
	if (!r || !out || !line_ok(r->from, 254) || !line_ok(r->to, 254) || !id_ok(r->original_message_id) ||
	    !id_ok(r->message_id) || !r->disposition)
		return HIE_EINVAL;
	if (strcmp(r->disposition, "processed") != 0 && strcmp(r->disposition, "dispatched") != 0 &&
	    strcmp(r->disposition, "failed") != 0)
		return HIE_EINVAL;
	const char *ua = r->reporting_ua && r->reporting_ua[0] ? r->reporting_ua : "hienode";
	if (!line_ok(ua, 300))
		return HIE_EINVAL;
	const char *word = subject_word(r->disposition);
	size_t start = out->len;
	hie_err_t err = hie_buf_addf(out, "From: %s\r\nTo: %s\r\n", r->from, r->to);
	/* A peer's subject goes back only when it cannot break the header (printable ASCII, one line). */
	if (!err && r->original_subject && line_ok(r->original_subject, 400))
		err = hie_buf_addf(out, "Subject: %s: %s\r\n", word, r->original_subject);
	else if (!err)
		err = hie_buf_addf(out, "Subject: %s\r\n", word);
	if (!err)
		err = hisp_add_date(out);
	if (!err)
		err = hie_buf_addf(out,
				   "Message-ID: <%s>\r\nIn-Reply-To: <%s>\r\nMIME-Version: 1.0\r\n"
				   "Content-Type: multipart/report; report-type=disposition-notification;\r\n"
				   "\tboundary=\"" REPORT_BOUNDARY "\"\r\n\r\n"
				   "--" REPORT_BOUNDARY "\r\n"
				   "Content-Type: text/plain; charset=us-ascii\r\n"
				   "Content-Transfer-Encoding: 7bit\r\n\r\n",
				   r->message_id, r->original_message_id);
	if (!err) {
		if (strcmp(r->disposition, "processed") == 0)
			err = hie_buf_addf(out, "Your message was successfully processed for %s.\r\n", r->from);
		else if (strcmp(r->disposition, "dispatched") == 0)
			err = hie_buf_addf(out, "Your message was delivered to its final destination for %s.\r\n",
					   r->from);
		else
			err = hie_buf_addf(out, "Your message could not be delivered to %s.\r\n", r->from);
	}
	if (!err)
		err = hie_buf_addf(out,
				   "--" REPORT_BOUNDARY "\r\n"
				   "Content-Type: message/disposition-notification\r\n"
				   "Content-Transfer-Encoding: 7bit\r\n\r\n"
				   "Reporting-UA: %s\r\n"
				   "Original-Recipient: rfc822;%s\r\n"
				   "Final-Recipient: rfc822;%s\r\n"
				   "Original-Message-ID: <%s>\r\n"
				   "Disposition: automatic-action/MDN-sent-automatically;%s\r\n",
				   ua, r->from, r->from, r->original_message_id, r->disposition);
	if (!err && r->final_delivery)
		err = hie_buf_addstr(out, "X-DIRECT-FINAL-DESTINATION-DELIVERY: \r\n");
	if (!err && strcmp(r->disposition, "failed") == 0)
		err = hie_buf_addstr(out, "Failure: the message could not be delivered to the final destination\r\n");
	if (!err)
		err = hie_buf_addstr(out, "\r\n--" REPORT_BOUNDARY "--\r\n");
	if (err) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return err;
}

/* Status d.d.d with class 4 or 5 (a failure report). */
static bool status_ok(const char *s)
{
	if (!s || (s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	size_t i = 2, d = 0;
	for (int part = 0; part < 2; part++) {
		d = 0;
		while (s[i] >= '0' && s[i] <= '9' && d < 3) {
			i++;
			d++;
		}
		if (d == 0 || s[i] != (part == 0 ? '.' : '\0'))
			return false;
		if (part == 0)
			i++;
	}
	return true;
}

/* Diagnostic text may come from a remote SMTP reply: made printable and cut, never rejected. */
static void clean_text(const char *s, char *out, size_t outlen)
{
	hisp_printable(s, out, outlen, ' ');
	if (!out[0])
		snprintf(out, outlen, "delivery failed");
}

static hie_err_t dsn_rcpts(const struct hisp_dsn_req *r, struct hie_buf *out, bool fields)
{
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < r->nrcpts && !err; i++) {
		char diag[200];
		clean_text(r->rcpts[i].diagnostic, diag, sizeof diag);
		if (fields)
			err = hie_buf_addf(out,
					   "\r\nFinal-Recipient: rfc822;%s\r\nAction: failed\r\nStatus: %s\r\n"
					   "Diagnostic-Code: smtp; %s\r\n",
					   r->rcpts[i].address, r->rcpts[i].status, diag);
		else
			err = hie_buf_addf(out, "  %s: %s (%s)\r\n", r->rcpts[i].address, diag, r->rcpts[i].status);
	}
	return err;
}

hie_err_t hisp_dsn_build(const struct hisp_dsn_req *r, struct hie_buf *out)
{
	if (!r || !out || !line_ok(r->reporting_mta, 253) || !line_ok(r->to, 254) || !strchr(r->to, '@') ||
	    (r->from && (!line_ok(r->from, 254) || !strchr(r->from, '@'))) || !id_ok(r->original_message_id) || !id_ok(r->message_id) || r->nrcpts == 0 || !r->rcpts)
		return HIE_EINVAL;
	for (size_t i = 0; i < r->nrcpts; i++)
		if (!line_ok(r->rcpts[i].address, 254) || !status_ok(r->rcpts[i].status))
			return HIE_EINVAL;
	size_t start = out->len;
	hie_err_t err = r->from ? hie_buf_addf(out, "From: %s\r\n", r->from)
				: hie_buf_addf(out, "From: MAILER-DAEMON@%s\r\n", hisp_addr_domain(r->to));
	if (!err)
		err = hie_buf_addf(out, "To: %s\r\nSubject: Delivery Status Notification (Failure)\r\n", r->to);
	if (!err)
		err = hisp_add_date(out);
	if (!err)
		err = hie_buf_addf(out,
				   "Message-ID: <%s>\r\nIn-Reply-To: <%s>\r\nAuto-Submitted: auto-replied\r\n"
				   "MIME-Version: 1.0\r\n"
				   "Content-Type: multipart/report; report-type=delivery-status;\r\n"
				   "\tboundary=\"" REPORT_BOUNDARY "\"\r\n\r\n"
				   "--" REPORT_BOUNDARY "\r\n"
				   "Content-Type: text/plain; charset=us-ascii\r\n"
				   "Content-Transfer-Encoding: 7bit\r\n\r\n"
				   "Your message <%s> could not be delivered to:\r\n",
				   r->message_id, r->original_message_id, r->original_message_id);
	if (!err)
		err = dsn_rcpts(r, out, false);
	if (!err)
		err = hie_buf_addf(out,
				   "--" REPORT_BOUNDARY "\r\n"
				   "Content-Type: message/delivery-status\r\n"
				   "Content-Transfer-Encoding: 7bit\r\n\r\n"
				   "Reporting-MTA: dns;%s\r\n"
				   "X-Original-Message-ID: <%s>\r\n",
				   r->reporting_mta, r->original_message_id);
	if (!err)
		err = dsn_rcpts(r, out, true);
	if (!err)
		err = hie_buf_addf(out,
				   "\r\n--" REPORT_BOUNDARY "\r\n"
				   "Content-Type: text/rfc822-headers\r\n"
				   "Content-Transfer-Encoding: 7bit\r\n\r\n"
				   "Message-ID: <%s>\r\n\r\n"
				   "--" REPORT_BOUNDARY "--\r\n",
				   r->original_message_id);
	if (err) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return err;
}
