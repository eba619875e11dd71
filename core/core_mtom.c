/*
 * core_mtom.c — MTOM/XOP packages (W3C XOP 1.0, SOAP 1.2 MTOM, RFC 2387 multipart/related). See core_mtom.h.
 *
 * Entry points: hie_mtom_parse() (HTTP Content-Type + body → root part and attachments indexed by
 * Content-ID), hie_mtom_find() (lookup by cid: URL or bare id), hie_mtom_free(), hie_mtom_build().
 *
 * The split into parts is core_mime's; this file only picks the root, decodes non-binary parts once and
 * keeps a sorted index of Content-IDs so that each xop:Include is a binary search.
 *
 * Errors: HIE_EPARSE (not multipart/related, no boundary, truncated), HIE_EEXIST (duplicate Content-ID),
 * HIE_ENOTFOUND (`start` names no part), HIE_ETOOBIG (caps), HIE_EINVAL (bad build input), HIE_ETLS (no
 * randomness), HIE_ENOMEM.
 */
#define _GNU_SOURCE /* memmem */
#include "core/core_mtom.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

/* A Content-ID or `start` longer than this is refused (they are a few dozen bytes in practice). */
#define CID_MAX 1024

struct slot {
	char *cid;
	char *ctype;
	char *decoded; /* NULL when the data points into the request */
};

struct idx {
	const char *cid;
	size_t len;
	size_t part; /* index into m->parts */
};

struct mtom_priv {
	struct slot *slots; /* slots[0] is the root's */
	size_t nslots;
	struct idx *index;  /* non-root parts with a Content-ID, sorted by (bytes, length) */
	size_t nindex;
	char *type;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims blanks and one pair of angle brackets: "<a@b>" → "a@b". */
static void strip_id(const char **s, size_t *n)
{
	const char *p = *s, *e = *s + *n;
	while (p < e && is_blank(*p))
		p++;
	while (e > p && is_blank(e[-1]))
		e--;
	if (e - p >= 2 && *p == '<' && e[-1] == '>') {
		p++;
		e--;
	}
	*s = p;
	*n = (size_t)(e - p);
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int cmp_idx(const void *a, const void *b)
{
	const struct idx *x = a, *y = b;
	return cmp_bytes(x->cid, x->len, y->cid, y->len);
}

static const struct idx *index_find(const struct mtom_priv *pv, const char *key, size_t len)
{
	size_t lo = 0, hi = pv->nindex;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_bytes(key, len, pv->index[mid].cid, pv->index[mid].len);
		if (c == 0)
			return &pv->index[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void hie_mtom_free(struct hie_mtom *m)
{
	if (!m)
		return;
	struct mtom_priv *pv = m->priv;
	if (pv) {
		for (size_t i = 0; i < pv->nslots; i++) {
			free(pv->slots[i].cid);
			free(pv->slots[i].ctype);
			free(pv->slots[i].decoded);
		}
		free(pv->slots);
		free(pv->index);
		free(pv->type);
		free(pv);
	}
	free(m->parts);
	free(m);
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* A header's unfolded value into a new string ("" when absent); a value over `cap` bytes is HIE_EPARSE. */
static hie_err_t header_dup(const struct hie_mime_part *mp, const char *name, size_t cap, bool id, char **out)
{
	struct hie_buf b;
	hie_buf_init(&b, cap);
	hie_err_t err = hie_mime_header_value(mp, name, &b);
	if (err == HIE_ENOTFOUND) {
		*out = dup_bytes("", 0);
	} else if (!err) {
		const char *s = b.data;
		size_t n = b.len;
		if (id)
			strip_id(&s, &n);
		*out = dup_bytes(s, n);
	}
	hie_buf_free(&b);
	if (err == HIE_ETOOBIG)
		return HIE_EPARSE;
	if (err && err != HIE_ENOTFOUND)
		return err;
	return *out ? HIE_OK : HIE_ENOMEM;
}

/* Fills one package part (and its slot) from a MIME body part. */
static hie_err_t load_part(const struct hie_mime_part *mp, struct slot *sl, struct hie_mtom_part *out)
{
	struct hie_buf b;
	hie_err_t err;

	err = header_dup(mp, "Content-ID", CID_MAX, true, &sl->cid);
	if (!err)
		err = header_dup(mp, "Content-Type", 4096, false, &sl->ctype);
	if (err)
		return err;
	out->cid = sl->cid;
	out->content_type = sl->ctype;
	if (!strcmp(mp->encoding, "binary") || !strcmp(mp->encoding, "8bit") || !strcmp(mp->encoding, "7bit")) {
		out->data = mp->body; /* zero copy: the request bytes */
		out->len = mp->body_len;
		return HIE_OK;
	}
	/* Decoded base64 and QP are never longer than their encoding, so the body length is the cap. */
	hie_buf_init(&b, mp->body_len + 1);
	err = hie_mime_decode(mp, &b);
	if (err) {
		hie_buf_free(&b);
		return err;
	}
	sl->decoded = hie_buf_steal(&b, &out->len);
	out->data = sl->decoded;
	return sl->decoded ? HIE_OK : HIE_ENOMEM;
}

/* The `start` parameter without <>, into *start (NULL when absent); the `type` parameter into pv->type. */
static hie_err_t read_params(const char *ct, size_t ct_len, struct mtom_priv *pv, char **start)
{
	struct hie_buf b;
	hie_err_t err;

	*start = NULL;
	hie_buf_init(&b, CID_MAX);
	err = hie_mime_param(ct, ct_len, "type", &b);
	if (err == HIE_ENOTFOUND) {
		pv->type = dup_bytes("", 0);
	} else if (err) {
		goto out;
	} else {
		for (size_t i = 0; i < b.len; i++)
			if (b.data[i] >= 'A' && b.data[i] <= 'Z')
				b.data[i] = (char)(b.data[i] - 'A' + 'a');
		pv->type = hie_buf_steal(&b, NULL);
	}
	if (!pv->type) {
		err = HIE_ENOMEM;
		goto out;
	}
	hie_buf_reset(&b);
	err = hie_mime_param(ct, ct_len, "start", &b);
	if (err == HIE_ENOTFOUND) {
		err = HIE_OK;
	} else if (!err) {
		const char *s = b.data;
		size_t n = b.len;
		strip_id(&s, &n);
		*start = dup_bytes(s, n);
		if (!*start)
			err = HIE_ENOMEM;
	}
out:
	hie_buf_free(&b);
	if (err == HIE_ETOOBIG)
		err = HIE_EPARSE;
	return err;
}

/* Picks the root, fills m->root and m->parts, and builds the Content-ID index. */
static hie_err_t load_parts(struct hie_mtom *m, struct mtom_priv *pv, const struct hie_mime_part *tree,
			    const char *start)
{
	size_t n = tree->nchildren, root = 0;
	hie_err_t err;

	pv->slots = calloc(n, sizeof(*pv->slots));
	m->parts = calloc(n > 1 ? n - 1 : 1, sizeof(*m->parts));
	pv->index = calloc(n > 1 ? n - 1 : 1, sizeof(*pv->index));
	if (!pv->slots || !m->parts || !pv->index)
		return HIE_ENOMEM;
	pv->nslots = n;
	/* Slot order: root first, then the others in body order. Load every part, then place them. */
	struct hie_mtom_part *tmp = calloc(n, sizeof(*tmp));
	if (!tmp)
		return HIE_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		err = load_part(&tree->children[i], &pv->slots[i], &tmp[i]);
		if (err)
			goto out;
	}
	if (start) {
		size_t slen = strlen(start);
		for (root = 0; root < n; root++)
			if (cmp_bytes(tmp[root].cid, strlen(tmp[root].cid), start, slen) == 0)
				break;
		if (root == n) {
			err = HIE_ENOTFOUND;
			goto out;
		}
	}
	m->root = tmp[root];
	for (size_t i = 0; i < n; i++) {
		if (i == root)
			continue;
		size_t k = m->nparts++;
		m->parts[k] = tmp[i];
		if (tmp[i].cid[0])
			pv->index[pv->nindex++] = (struct idx){ tmp[i].cid, strlen(tmp[i].cid), k };
	}
	qsort(pv->index, pv->nindex, sizeof(*pv->index), cmp_idx);
	err = HIE_OK;
	for (size_t i = 1; i < pv->nindex; i++)
		if (cmp_idx(&pv->index[i - 1], &pv->index[i]) == 0)
			err = HIE_EEXIST;
	if (m->root.cid[0] && index_find(pv, m->root.cid, strlen(m->root.cid)))
		err = HIE_EEXIST;
out:
	free(tmp);
	return err;
}

hie_err_t hie_mtom_parse(const char *http_content_type, const char *body, size_t len,
			 const struct hie_mime_limits *lim, struct hie_mtom **out)
{
	struct hie_mime_part *tree = NULL;
	struct hie_mtom *m = NULL;
	struct mtom_priv *pv;
	char *start = NULL, mt[64];
	hie_err_t err;

	*out = NULL;
	if (!http_content_type)
		return HIE_EPARSE;
	size_t ct_len = strlen(http_content_type);
	if (hie_mime_media_type(http_content_type, ct_len, mt, sizeof(mt)) != HIE_OK ||
	    strcmp(mt, "multipart/related") != 0)
		return HIE_EPARSE;
	err = hie_mime_parse_body(http_content_type, ct_len, body, len, lim, &tree);
	if (err)
		goto out;
	m = calloc(1, sizeof(*m));
	pv = calloc(1, sizeof(*pv));
	if (!m || !pv) {
		free(pv);
		err = HIE_ENOMEM;
		goto out;
	}
	m->priv = pv;
	err = read_params(http_content_type, ct_len, pv, &start);
	if (err)
		goto out;
	m->type = pv->type;
	err = load_parts(m, pv, tree, start);
	if (err)
		goto out;
	*out = m;
	m = NULL;
out:
	free(start);
	hie_mtom_free(m);
	hie_mime_free(tree);
	return err;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

const struct hie_mtom_part *hie_mtom_find(const struct hie_mtom *m, const char *cid, size_t cid_len)
{
	if (!m || !cid || !m->priv)
		return NULL;
	const struct mtom_priv *pv = m->priv;
	const char *s = cid;
	size_t n = cid_len;
	strip_id(&s, &n);
	if (n < 4 || strncasecmp(s, "cid:", 4) != 0) {
		const struct idx *hit = index_find(pv, s, n);
		return hit ? &m->parts[hit->part] : NULL;
	}
	/* RFC 2392: the URL form is the addr-spec with %hh escapes. */
	s += 4;
	n -= 4;
	if (n > CID_MAX)
		return NULL;
	char key[CID_MAX];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			key[k++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? unhex(s[i + 1]) : -1;
		int lo = hi >= 0 ? unhex(s[i + 2]) : -1;
		if (lo < 0)
			return NULL;
		key[k++] = (char)(hi << 4 | lo);
		i += 2;
	}
	const char *kp = key;
	strip_id(&kp, &k);
	const struct idx *hit = index_find(pv, kp, k);
	return hit ? &m->parts[hit->part] : NULL;
}

/* ---- building ---- */

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return true;
	return false;
}

static bool valid_cid(const char *s)
{
	if (!s || !*s || has_ctl(s) || strlen(s) > CID_MAX)
		return false;
	return strpbrk(s, " \"\\<>") == NULL;
}

static hie_err_t check_build_args(const char *action, const struct hie_mtom_out_part *parts, size_t nparts)
{
	if (action && (has_ctl(action) || strpbrk(action, "\"\\")))
		return HIE_EINVAL;
	for (size_t i = 0; i < nparts; i++) {
		const struct hie_mtom_out_part *p = &parts[i];
		if (!valid_cid(p->cid) || (p->content_type && has_ctl(p->content_type)) || (!p->data && p->len))
			return HIE_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(parts[j].cid, p->cid) == 0)
				return HIE_EINVAL;
	}
	return HIE_OK;
}

static bool contains(const char *hay, size_t n, const char *needle, size_t nlen)
{
	/* glibc's memmem (two-way) scans binary parts several times faster than memchr + memcmp on the first byte. */
	return hay && n >= nlen && memmem(hay, n, needle, nlen) != NULL;
}

static hie_err_t random_hex(char *out, size_t nbytes)
{
	unsigned char r[32];
	static const char hex[] = "0123456789abcdef";
	if (nbytes > sizeof(r) || RAND_bytes(r, (int)nbytes) != 1)
		return HIE_ETLS;
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * nbytes] = '\0';
	return HIE_OK;
}

/* A boundary that occurs nowhere in the content, so no part can end early. */
static hie_err_t pick_boundary(const char *env, size_t env_len, const struct hie_mtom_out_part *parts,
			       size_t nparts, char *bnd, size_t bnd_size)
{
	char hex[33];
	for (int attempt = 0; attempt < 8; attempt++) {
		hie_err_t err = random_hex(hex, 16);
		if (err)
			return err;
		snprintf(bnd, bnd_size, "MIMEBoundary_%s", hex);
		size_t blen = strlen(bnd);
		bool clash = contains(env, env_len, bnd, blen);
		for (size_t i = 0; i < nparts && !clash; i++)
			clash = contains(parts[i].data, parts[i].len, bnd, blen);
		if (!clash)
			return HIE_OK;
	}
	return HIE_EINVAL;
}

hie_err_t hie_mtom_build(const char *envelope, size_t envelope_len, const char *soap_action,
			 const struct hie_mtom_out_part *parts, size_t nparts, struct hie_buf *body,
			 struct hie_buf *content_type)
{
	static const char root_hdr[] = "Content-Type: application/xop+xml; charset=UTF-8; "
				       "type=\"application/soap+xml\"\r\n"
				       "Content-Transfer-Encoding: binary\r\n";
	char bnd[64], rhex[33], root_cid[64];
	hie_err_t err;

	hie_buf_reset(body);
	hie_buf_reset(content_type);
	if ((!envelope && envelope_len) || (!parts && nparts))
		return HIE_EINVAL;
	if (!envelope)
		envelope = "";
	err = check_build_args(soap_action, parts, nparts);
	if (err)
		return err;
	err = pick_boundary(envelope, envelope_len, parts, nparts, bnd, sizeof(bnd));
	if (err)
		return err;
	err = random_hex(rhex, 8);
	if (err)
		return err;
	snprintf(root_cid, sizeof(root_cid), "root.%s@hienode", rhex);

	/* Reserve the whole package once: a multi-MB document is copied exactly once, and the cap is
	 * checked before any copy. 256 bytes per part covers the delimiter and the fixed header text. */
	size_t blen = strlen(bnd), total = envelope_len + sizeof(root_hdr) + 64 + 3 * blen + 256;
	for (size_t i = 0; i < nparts; i++) {
		size_t extra = parts[i].len + strlen(parts[i].cid) + blen + 256 +
			       (parts[i].content_type ? strlen(parts[i].content_type) : 32);
		if (total > SIZE_MAX - extra)
			return HIE_ETOOBIG;
		total += extra;
	}
	size_t max = body->max;
	err = hie_buf_reserve(body, total < max ? total : max);
	if (err)
		goto out;

	err = hie_buf_addf(body, "--%s\r\n%sContent-ID: <%s>\r\n\r\n", bnd, root_hdr, root_cid);
	if (!err)
		err = hie_buf_add(body, envelope, envelope_len);
	for (size_t i = 0; !err && i < nparts; i++) {
		const char *ct = parts[i].content_type && *parts[i].content_type ? parts[i].content_type
										  : "application/octet-stream";
		err = hie_buf_addf(body,
				   "\r\n--%s\r\nContent-Type: %s\r\nContent-Transfer-Encoding: binary\r\n"
				   "Content-ID: <%s>\r\n\r\n",
				   bnd, ct, parts[i].cid);
		if (!err)
			err = hie_buf_add(body, parts[i].data, parts[i].len);
	}
	if (!err)
		err = hie_buf_addf(body, "\r\n--%s--\r\n", bnd);
	if (!err)
		err = hie_buf_addf(content_type,
				   "multipart/related; type=\"application/xop+xml\"; boundary=\"%s\"; "
				   "start=\"<%s>\"; start-info=\"application/soap+xml\"",
				   bnd, root_cid);
	if (!err && soap_action)
		err = hie_buf_addf(content_type, "; action=\"%s\"", soap_action);
out:
	if (err) {
		hie_buf_reset(body);
		hie_buf_reset(content_type);
	}
	return err;
}
