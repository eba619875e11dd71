/*
 * hisp_parts.c — the leaf parts of a plain (already decrypted) Direct message, decoded.
 *
 * Entry points: hisp_parts_split() walks the core_mime tree of a message (multiparts recursed in document order,
 * a message/rfc822 body kept whole as one leaf), decodes every leaf body (base64, quoted-printable, 7bit/8bit/binary)
 * and tells the callers what each leaf is: its media type and charset, a printable file name, whether it is an
 * attachment, an XDM zip (hisp_xdm_is_zip) or an HL7 CDA document (root urn:hl7-org:v3 ClinicalDocument, sniffed
 * with core_xml's safe parser up to the root's start tag: whoever uses the document parses it whole). hisp_parts_free() releases the result.
 *
 * Errors: HIE_EPARSE for a malformed message or body encoding, HIE_ETOOBIG past HISP_PARTS_MAX leaves or the
 * caller's max_bytes of decoded data (or core_mime's caps), HIE_ENOMEM.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core_mime.h"
#include "core/core_xml.h"
#include "hisp/hisp_edge.h"

#define CDA_NS "urn:hl7-org:v3"
#define HDR_MAX 8192

struct walk {
	struct hisp_parts *out;
	size_t cap;            /* entries allocated in out->v */
	size_t left;           /* decoded bytes still allowed */
};

/* "a/xml" and "a/b+xml": the types a CDA document travels as. */
static bool is_xml_type(const char *t)
{
	size_t n = strlen(t);
	return (n > 4 && strcmp(t + n - 4, "/xml") == 0) || (n > 4 && strcmp(t + n - 4, "+xml") == 0);
}

static bool is_zip_type(const char *t)
{
	return strcmp(t, "application/zip") == 0 || strcmp(t, "application/octet-stream") == 0 ||
	       strcmp(t, "application/x-zip-compressed") == 0 || strcmp(t, "application/x-zip") == 0;
}

static bool detect_cda(const unsigned char *data, size_t len)
{
	return hie_xml_root_is((const char *)data, len, CDA_NS, "ClinicalDocument");
}

/*
 * A file name as a peer sent it, made safe to show and to save: the last path component only (a name is never
 * a path on our side), control bytes replaced by '_', "." and ".." dropped. UTF-8 bytes are kept.
 */
static void clean_filename(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++)
		if (src[i] == '/' || src[i] == '\\')
			start = i + 1;
	size_t o = 0;
	for (size_t i = start; i < n && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[o++] = (c < 0x20 || c == 0x7f) ? '_' : (char)c;
	}
	dst[o] = '\0';
	if (strcmp(dst, ".") == 0 || strcmp(dst, "..") == 0)
		dst[0] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 2231 extended value charset'lang'pct-encoded (the charset is not converted: UTF-8 and ASCII pass). */
static bool rfc2231_decode(const char *v, size_t n, struct hie_buf *out)
{
	const char *q1 = memchr(v, '\'', n);
	const char *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v)) : NULL;
	if (!q2)
		return false;
	for (const char *p = q2 + 1; p < v + n; p++) {
		char c = *p;
		if (c == '%') {
			if (v + n - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0)
				return false;
			c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
			p += 2;
		}
		if (hie_buf_add(out, &c, 1))
			return false;
	}
	return true;
}

/* Content-Disposition filename (plain or RFC 2231 filename*), else Content-Type name. */
static void find_filename(const struct hie_mime_part *p, const struct hie_buf *disp, const struct hie_buf *ctype,
			  struct hisp_part *leaf)
{
	struct hie_buf v, dec;
	hie_buf_init(&v, HDR_MAX);
	hie_buf_init(&dec, HDR_MAX);
	(void)p;
	bool found = false;
	if (disp->len && hie_mime_param(disp->data, disp->len, "filename", &v) == HIE_OK && v.len) {
		found = true;
	} else if (disp->len && hie_mime_param(disp->data, disp->len, "filename*", &v) == HIE_OK &&
		   rfc2231_decode(v.data, v.len, &dec) && dec.len) {
		hie_buf_reset(&v);
		found = hie_buf_add(&v, dec.data, dec.len) == HIE_OK;
	} else if (ctype->len && hie_mime_param(ctype->data, ctype->len, "name", &v) == HIE_OK && v.len) {
		found = true;
	}
	if (found)
		clean_filename(leaf->filename, sizeof leaf->filename, v.data, v.len);
	hie_buf_free(&v);
	hie_buf_free(&dec);
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static hie_err_t describe(const struct hie_mime_part *p, struct hisp_part *leaf)
{
	struct hie_buf ctype, disp, v;
	hie_buf_init(&ctype, HDR_MAX);
	hie_buf_init(&disp, HDR_MAX);
	hie_buf_init(&v, sizeof leaf->charset - 1);
	hie_err_t err = HIE_OK;

	snprintf(leaf->content_type, sizeof leaf->content_type, "%s", p->type);
	err = hie_mime_header_value(p, "Content-Type", &ctype);
	if (err && err != HIE_ENOTFOUND)
		goto out;
	err = hie_mime_header_value(p, "Content-Disposition", &disp);
	if (err && err != HIE_ENOTFOUND)
		goto out;
	err = HIE_OK;
	if (ctype.len && hie_mime_param(ctype.data, ctype.len, "charset", &v) == HIE_OK) {
		snprintf(leaf->charset, sizeof leaf->charset, "%s", hie_buf_str(&v));
		lower(leaf->charset);
	}
	find_filename(p, &disp, &ctype, leaf);
	bool disp_attachment = disp.len >= 10 && strncasecmp(disp.data, "attachment", 10) == 0 &&
			       (disp.len == 10 || disp.data[10] == ';' || disp.data[10] == ' ' || disp.data[10] == '\t');
	leaf->attachment = disp_attachment || leaf->filename[0] ||
			   (strcmp(leaf->content_type, "text/plain") != 0 && strcmp(leaf->content_type, "text/html") != 0);
out:
	hie_buf_free(&ctype);
	hie_buf_free(&disp);
	hie_buf_free(&v);
	return err;
}

static hie_err_t add_leaf(struct walk *w, const struct hie_mime_part *p)
{
	struct hisp_parts *o = w->out;
	if (o->n >= HISP_PARTS_MAX)
		return HIE_ETOOBIG;
	if (o->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 8;
		if (ncap > HISP_PARTS_MAX)
			ncap = HISP_PARTS_MAX;
		struct hisp_part *nv = realloc(o->v, ncap * sizeof *nv);
		if (!nv)
			return HIE_ENOMEM;
		o->v = nv;
		w->cap = ncap;
	}
	struct hisp_part *leaf = &o->v[o->n];
	memset(leaf, 0, sizeof *leaf);
	leaf->index = (unsigned)o->n;

	hie_err_t err = describe(p, leaf);
	if (err)
		return err;

	struct hie_buf body;
	hie_buf_init(&body, w->left);
	err = hie_mime_decode(p, &body);
	if (err == HIE_EUNSUPPORTED)
		err = HIE_EPARSE; /* an unknown transfer encoding cannot be read: malformed for us */
	if (err) {
		hie_buf_free(&body);
		return err;
	}
	w->left -= body.len;
	leaf->len = body.len;
	leaf->data = (unsigned char *)hie_buf_steal(&body, NULL);
	if (!leaf->data)
		return HIE_ENOMEM;
	o->n++; /* owned by out from here on, even if the checks below fail */

	leaf->is_xdm = is_zip_type(leaf->content_type) && hisp_xdm_is_zip(leaf->data, leaf->len);
	leaf->is_cda = is_xml_type(leaf->content_type) && detect_cda(leaf->data, leaf->len);
	return HIE_OK;
}

static hie_err_t walk_part(struct walk *w, const struct hie_mime_part *p)
{
	if (strncmp(p->type, "multipart/", 10) == 0) {
		for (size_t i = 0; i < p->nchildren; i++) {
			hie_err_t err = walk_part(w, &p->children[i]);
			if (err)
				return err;
		}
		return HIE_OK;
	}
	return add_leaf(w, p);
}

hie_err_t hisp_parts_split(const char *msg, size_t len, size_t max_bytes, struct hisp_parts *out)
{
	struct hie_mime_part *root = NULL;
	struct walk w = {.out = out, .cap = 0, .left = max_bytes};
	out->v = NULL;
	out->n = 0;
	if (!msg && len)
		return HIE_EINVAL;

	/* Real Direct senders leave out the close delimiter (JavaMail's default), so be lenient there only. */
	hie_err_t err = hie_mime_parse_ex(msg ? msg : "", len, NULL, HIE_MIME_LENIENT_CLOSE, &root);
	if (err)
		goto out;
	err = walk_part(&w, root);
out:
	hie_mime_free(root);
	if (err)
		hisp_parts_free(out);
	return err;
}

void hisp_parts_free(struct hisp_parts *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].data);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}
