/*
 * hisp_xdm_read.c — reads and checks an XDM package received from a peer (a zip in memory, libzip).
 *
 * The zip is hostile until proven otherwise. Before any byte is inflated: at most HISP_XDM_MAX_FILES entries,
 * every entry name a plain relative path (no "..", no absolute path, no backslash, no drive, no control byte),
 * no encrypted entry, only stored or deflated entries, no two entries with the same name (case-insensitively),
 * every declared size within HISP_XDM_MAX_ENTRY and their sum within HISP_XDM_MAX_TOTAL. While inflating, the
 * bytes are counted and reading stops one byte past the declared size (a zip bomb lies in its headers: libzip
 * itself would only notice at the end of the stream). Only the files the package needs are inflated.
 *
 * Then the layout of ITI TF-1 16: INDEX.HTM (well-formed XHTML, html root in the XHTML namespace) and README.TXT
 * at the root, exactly one IHE_XDM/<subset>/METADATA.xml: an ebRS 3.0 or 2.1 SubmitObjectsRequest parsed with
 * core_xml's safe parser; every DocumentEntry (ExtrinsicObject) has a URI naming a file of the subset, whose
 * size and SHA-1 match the size and hash slots when they are present.
 *
 * Entry point: hisp_xdm_read (hisp_edge.h). Failures: HIE_EPARSE / HIE_ETOOBIG with a short reason for
 * operators in why (no document content in it; names from the zip are made printable), HIE_ENOMEM.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zip.h>

#include "core/core_log.h"
#include "core/core_xml.h"
#include "hisp/hisp_edge.h"
#include "core/core_digest.h"
#include "hisp/hisp_xdm_int.h"

#define SHOWN 80 /* bytes of a peer-chosen name quoted in a reason */

struct entry {
	const char *name; /* owned by the zip_t */
	zip_uint64_t index;
	zip_uint64_t size; /* declared (central directory) */
};

struct rd {
	zip_t *za;
	struct entry *e; /* sorted case-insensitively by name */
	size_t n;
	const struct entry *index, *readme, *meta;
	char subset[64];
	struct hisp_xdm *x;
	char *why;
	size_t whylen;
};

__attribute__((format(printf, 3, 4))) static hie_err_t fail(struct rd *r, hie_err_t err, const char *fmt, ...)
{
	if (r->why && r->whylen && !r->why[0]) { /* the first reason wins */
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->why, r->whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

static const char *shown(char *dst, size_t dstlen, const char *s)
{
	return hie_log_printable(dst, dstlen, s, strlen(s));
}

/* NULL when name is a plain relative path, else why not. */
static const char *bad_path(const char *name)
{
	if (!name[0])
		return "empty name";
	if (name[0] == '/')
		return "absolute path";
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\\')
			return "backslash";
		if (c < 0x20 || c == 0x7f)
			return "control character";
		if (c == ':')
			return "drive or stream name";
	}
	for (const char *p = name; *p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if ((n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.'))
			return "\"..\" or \".\" in the path";
		if (n == 0 && slash)
			return "empty path component";
		p += n + (slash ? 1 : 0);
	}
	return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return strcasecmp(x->name, y->name);
}

static const struct entry *find(const struct rd *r, const char *name)
{
	struct entry key = {.name = name};
	return bsearch(&key, r->e, r->n, sizeof *r->e, cmp_entry);
}

static hie_err_t stat_entry(struct rd *r, zip_uint64_t i, zip_uint64_t *total)
{
	char s[SHOWN];
	zip_stat_t st;
	zip_stat_init(&st);
	if (zip_stat_index(r->za, i, 0, &st) < 0 || !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE))
		return fail(r, HIE_EPARSE, "zip entry %llu cannot be read", (unsigned long long)i);
	const char *why = bad_path(st.name);
	if (why)
		return fail(r, HIE_EPARSE, "zip entry \"%s\" refused: %s", shown(s, sizeof s, st.name), why);
	if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
		return fail(r, HIE_EPARSE, "zip entry %s is encrypted", shown(s, sizeof s, st.name));
	if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
		return fail(r, HIE_EPARSE, "zip entry %s: compression method %u not supported",
			    shown(s, sizeof s, st.name), (unsigned)st.comp_method);
	if (st.size > HISP_XDM_MAX_ENTRY)
		return fail(r, HIE_ETOOBIG, "zip entry %s is larger than %u MiB", shown(s, sizeof s, st.name),
			    HISP_XDM_MAX_ENTRY >> 20);
	*total += st.size;
	if (*total > HISP_XDM_MAX_TOTAL)
		return fail(r, HIE_ETOOBIG, "the package holds more than %u MiB uncompressed", HISP_XDM_MAX_TOTAL >> 20);
	size_t nl = strlen(st.name);
	if (st.name[nl - 1] == '/') { /* a directory entry: nothing to read */
		if (st.size != 0)
			return fail(r, HIE_EPARSE, "zip directory entry %s has data", shown(s, sizeof s, st.name));
		return HIE_OK;
	}
	r->e[r->n++] = (struct entry){.name = st.name, .index = i, .size = st.size};
	return HIE_OK;
}

static hie_err_t scan(struct rd *r)
{
	zip_int64_t n = zip_get_num_entries(r->za, 0);
	zip_uint64_t total = 0;
	char s[SHOWN];
	if (n <= 0)
		return fail(r, HIE_EPARSE, "the zip archive is empty");
	if (n > HISP_XDM_MAX_FILES)
		return fail(r, HIE_ETOOBIG, "the zip archive has more than %d entries", HISP_XDM_MAX_FILES);
	r->e = calloc((size_t)n, sizeof *r->e);
	if (!r->e)
		return HIE_ENOMEM;
	for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
		hie_err_t err = stat_entry(r, i, &total);
		if (err)
			return err;
	}
	qsort(r->e, r->n, sizeof *r->e, cmp_entry);
	for (size_t i = 1; i < r->n; i++)
		if (strcasecmp(r->e[i - 1].name, r->e[i].name) == 0)
			return fail(r, HIE_EPARSE, "zip entry %s appears twice", shown(s, sizeof s, r->e[i].name));
	return HIE_OK;
}

/* Finds INDEX.HTM, README.TXT and the one IHE_XDM/<subset>/METADATA.xml. */
static hie_err_t layout(struct rd *r)
{
	static const size_t dl = sizeof XDM_DIR; /* "IHE_XDM/" */
	for (size_t i = 0; i < r->n; i++) {
		const char *name = r->e[i].name;
		if (strncasecmp(name, XDM_DIR "/", dl) != 0)
			continue;
		const char *sub = name + dl, *slash = strchr(sub, '/');
		if (!slash || strcasecmp(slash + 1, XDM_METADATA) != 0)
			continue;
		if (r->meta)
			return fail(r, HIE_EPARSE, "more than one submission set under " XDM_DIR "/ (not supported)");
		if ((size_t)(slash - sub) >= sizeof r->subset)
			return fail(r, HIE_EPARSE, XDM_DIR "/ subset directory name too long");
		r->meta = &r->e[i];
		memcpy(r->subset, sub, (size_t)(slash - sub));
		r->subset[slash - sub] = '\0';
	}
	r->index = find(r, XDM_INDEX);
	r->readme = find(r, XDM_README);
	if (!r->index)
		return fail(r, HIE_EPARSE, XDM_INDEX " missing");
	if (!r->readme)
		return fail(r, HIE_EPARSE, XDM_README " missing");
	if (!r->meta)
		return fail(r, HIE_EPARSE, XDM_DIR "/" XDM_SUBSET "/" XDM_METADATA " missing");
	return HIE_OK;
}

/* Inflates one entry, counting: at most its declared size, which must be what it holds. */
static hie_err_t read_entry(struct rd *r, const struct entry *e, unsigned char **data, size_t *len)
{
	char s[SHOWN];
	size_t cap = (size_t)e->size, got = 0;
	unsigned char *buf = malloc(cap + 2);
	hie_err_t err = HIE_OK;
	zip_file_t *f = NULL;
	if (!buf)
		return HIE_ENOMEM;
	f = zip_fopen_index(r->za, e->index, 0);
	if (!f) {
		err = fail(r, HIE_EPARSE, "zip entry %s cannot be opened (%s)", shown(s, sizeof s, e->name),
			   zip_strerror(r->za));
		goto out;
	}
	for (;;) {
		/* Ask for one byte more than declared: getting it means the headers lied. */
		zip_int64_t n = zip_fread(f, buf + got, cap + 1 - got);
		if (n < 0) {
			err = fail(r, HIE_EPARSE, "zip entry %s is damaged (%s)", shown(s, sizeof s, e->name),
				   zip_file_strerror(f));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > cap) {
			err = fail(r, HIE_ETOOBIG, "zip entry %s inflates past its declared size %zu",
				   shown(s, sizeof s, e->name), cap);
			goto out;
		}
	}
	if (got != cap) {
		err = fail(r, HIE_EPARSE, "zip entry %s is shorter than its declared size", shown(s, sizeof s, e->name));
		goto out;
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
	buf = NULL;
out:
	if (f)
		zip_fclose(f);
	free(buf);
	return err;
}

/*
 * An XHTML 1.0 file normally starts with a DOCTYPE naming the external DTD, which the safe parser refuses on
 * principle. A DOCTYPE without an internal subset declares nothing (the DTD is never loaded), so it is blanked
 * out before parsing; one with an internal subset ('[') could declare entities and is refused.
 */
static char *find_str(char *p, size_t n, const char *s)
{
	size_t k = strlen(s);
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(p + i, s, k) == 0)
			return p + i;
	return NULL;
}

static bool blank_doctype(char *p, size_t n)
{
	size_t i = 0;
	if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	while (i < n) {
		if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n') {
			i++;
		} else if (n - i >= 2 && memcmp(p + i, "<?", 2) == 0) {
			char *e = find_str(p + i, n - i, "?>");
			if (!e)
				return true; /* let the parser say what is wrong */
			i = (size_t)(e - p) + 2;
		} else if (n - i >= 4 && memcmp(p + i, "<!--", 4) == 0) {
			char *e = find_str(p + i, n - i, "-->");
			if (!e)
				return true;
			i = (size_t)(e - p) + 3;
		} else {
			break;
		}
	}
	if (n - i < 9 || memcmp(p + i, "<!DOCTYPE", 9) != 0)
		return true;
	char quote = 0;
	for (size_t j = i + 9; j < n; j++) {
		if (quote) {
			if (p[j] == quote)
				quote = 0;
		} else if (p[j] == '"' || p[j] == '\'') {
			quote = p[j];
		} else if (p[j] == '[') {
			return false;
		} else if (p[j] == '>') {
			memset(p + i, ' ', j + 1 - i);
			return true;
		}
	}
	return true;
}

static hie_err_t check_index(struct rd *r)
{
	unsigned char *data = NULL;
	size_t len = 0;
	xmlDoc *doc = NULL;
	hie_err_t err = read_entry(r, r->index, &data, &len);
	if (err)
		return err;
	if (!blank_doctype((char *)data, len)) {
		err = fail(r, HIE_EPARSE, XDM_INDEX " is not well-formed XHTML (DOCTYPE with an internal subset)");
		goto out;
	}
	if (hie_xml_parse((const char *)data, len, NULL, &doc, NULL) != HIE_OK) {
		err = fail(r, HIE_EPARSE, XDM_INDEX " is not well-formed XHTML");
		goto out;
	}
	if (!hie_xml_is(xmlDocGetRootElement(doc), XDM_NS_XHTML, "html"))
		err = fail(r, HIE_EPARSE, XDM_INDEX " is not XHTML (the root is not html in the XHTML namespace)");
out:
	if (doc)
		xmlFreeDoc(doc);
	free(data);
	return err;
}

static hie_err_t read_metadata(struct rd *r)
{
	unsigned char *data = NULL;
	size_t len = 0;
	hie_err_t err = read_entry(r, r->meta, &data, &len);
	if (err)
		return err;
	r->x->metadata = (char *)data;
	r->x->metadata_len = len;
	err = hie_xml_parse((const char *)data, len, NULL, &r->x->metadata_doc, NULL);
	if (err == HIE_ENOMEM)
		return err;
	if (err == HIE_ETOOBIG)
		return fail(r, HIE_ETOOBIG, XDM_METADATA " is too large or too deeply nested");
	if (err)
		return fail(r, HIE_EPARSE, XDM_METADATA " is not well-formed XML or has a DOCTYPE");
	if (!hisp_xdm_rim_ns(xmlDocGetRootElement(r->x->metadata_doc)))
		return fail(r, HIE_EPARSE, XDM_METADATA " is not an ebRS 3.0 or 2.1 SubmitObjectsRequest");
	return HIE_OK;
}

static hie_err_t dup_str(const char **dst, const char *s)
{
	*dst = strdup(s ? s : "");
	return *dst ? HIE_OK : HIE_ENOMEM;
}

/* Where the URI of a DocumentEntry leads: a file of the subset (or, leniently, a full IHE_XDM/ path). */
static const struct entry *resolve(struct rd *r, const char *uri)
{
	char full[1024];
	int n = snprintf(full, sizeof full, XDM_DIR "/%s/%s", r->subset, uri);
	const struct entry *e = n > 0 && (size_t)n < sizeof full ? find(r, full) : NULL;
	if (!e && strncasecmp(uri, XDM_DIR "/", sizeof XDM_DIR) == 0)
		e = find(r, uri);
	return e;
}

/* Checks the hash and size slots of eo (when present) against the file's bytes. */
static hie_err_t check_slots(struct rd *r, xmlNode *eo, const char *rim, const char *uri, const unsigned char *data,
			     size_t len)
{
	char s[SHOWN], hash[41];
	struct hie_buf v;
	hie_buf_init(&v, 256);
	hie_err_t err = HIE_OK;
	if (hisp_xdm_slot(eo, rim, "size", &v) == HIE_OK) {
		char *end = NULL;
		const char *t = hie_buf_str(&v);
		unsigned long long sz = strtoull(t, &end, 10);
		if (end == t || *end || t[0] == '-' || sz != len)
			err = fail(r, HIE_EPARSE, XDM_METADATA ": size of %s does not match the file (%zu bytes)",
				   shown(s, sizeof s, uri), len);
	}
	hie_buf_reset(&v);
	if (!err && hisp_xdm_slot(eo, rim, "hash", &v) == HIE_OK) {
		hie_digest_sha1_hex(data, len, hash);
		if (strcasecmp(hie_buf_str(&v), hash) != 0)
			err = fail(r, HIE_EPARSE, XDM_METADATA ": hash of %s does not match the file (SHA-1)",
				   shown(s, sizeof s, uri));
	}
	hie_buf_free(&v);
	return err;
}

static hie_err_t read_doc(struct rd *r, xmlNode *eo, const char *rim, struct hisp_xdm_doc *d)
{
	char s[SHOWN];
	struct hie_buf id, uid, mime, uri;
	hie_buf_init(&id, 256);
	hie_buf_init(&uid, 256);
	hie_buf_init(&mime, 256);
	hie_buf_init(&uri, 1024);
	const struct entry *e = NULL;
	unsigned char *data = NULL;
	size_t len = 0;
	hie_err_t err = HIE_OK;

	if (hie_xml_attr(eo, NULL, "id", &id) != HIE_OK || !id.len) {
		err = fail(r, HIE_EPARSE, XDM_METADATA ": an ExtrinsicObject has no id");
		goto out;
	}
	(void)hisp_xdm_external_id(eo, rim, XDM_UUID_DOC_UNIQUEID, &uid);
	if (hie_xml_attr(eo, NULL, "mimeType", &mime) != HIE_OK || !mime.len)
		(void)hie_buf_addstr(&mime, "application/octet-stream");
	if (hisp_xdm_uri(eo, rim, &uri) != HIE_OK || !uri.len) {
		err = fail(r, HIE_EPARSE, XDM_METADATA ": document %s has no URI", shown(s, sizeof s, id.data));
		goto out;
	}
	if (bad_path(uri.data)) {
		err = fail(r, HIE_EPARSE, XDM_METADATA ": URI %s is not a plain relative path",
			   shown(s, sizeof s, uri.data));
		goto out;
	}
	e = resolve(r, uri.data);
	if (!e) {
		err = fail(r, HIE_EPARSE, XDM_METADATA ": document %s missing", shown(s, sizeof s, uri.data));
		goto out;
	}
	err = read_entry(r, e, &data, &len);
	if (!err)
		err = check_slots(r, eo, rim, uri.data, data, len);
	if (err)
		goto out;
	d->data = data;
	d->len = len;
	data = NULL;
	err = dup_str(&d->entry_id, id.data);
	if (!err)
		err = dup_str(&d->unique_id, uid.data);
	if (!err)
		err = dup_str(&d->mime_type, mime.data);
	if (!err)
		err = dup_str(&d->path, e->name);
out:
	free(data);
	hie_buf_free(&id);
	hie_buf_free(&uid);
	hie_buf_free(&mime);
	hie_buf_free(&uri);
	return err;
}

static hie_err_t read_docs(struct rd *r)
{
	xmlNode *root = xmlDocGetRootElement(r->x->metadata_doc);
	const char *rim = hisp_xdm_rim_ns(root);
	xmlNode *eos[HISP_XDM_MAX_DOCS];
	size_t n = hisp_xdm_extrinsics(root, rim, eos, HISP_XDM_MAX_DOCS);
	if (n == 0)
		return fail(r, HIE_EPARSE, XDM_METADATA " has no DocumentEntry");
	if (n > HISP_XDM_MAX_DOCS)
		return fail(r, HIE_ETOOBIG, XDM_METADATA " has more than %d documents", HISP_XDM_MAX_DOCS);
	r->x->docs = calloc(n, sizeof *r->x->docs);
	if (!r->x->docs)
		return HIE_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		/* Counted before filling, so hisp_xdm_free releases a half-filled entry too. */
		r->x->ndocs++;
		hie_err_t err = read_doc(r, eos[i], rim, &r->x->docs[i]);
		if (err)
			return err;
	}
	return HIE_OK;
}

static hie_err_t open_zip(struct rd *r, const void *zip, size_t len)
{
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *src = zip_source_buffer_create(zip, len, 0, &ze);
	hie_err_t err = HIE_OK;
	if (!src) {
		err = HIE_ENOMEM;
		goto out;
	}
	/* ZIP_CHECKCONS: the local headers must agree with the central directory. */
	r->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
	if (!r->za) {
		zip_source_free(src);
		err = zip_error_code_zip(&ze) == ZIP_ER_MEMORY
			      ? HIE_ENOMEM
			      : fail(r, HIE_EPARSE, "not a readable zip archive (%s)", zip_error_strerror(&ze));
	}
out:
	zip_error_fini(&ze);
	return err;
}

hie_err_t hisp_xdm_read(const void *zip, size_t len, struct hisp_xdm **out, char *why, size_t whylen)
{
	struct rd r = {.why = why, .whylen = whylen};
	hie_err_t err = HIE_OK;
	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (!hisp_xdm_is_zip(zip, len))
		return fail(&r, HIE_EPARSE, "not a zip file");
	r.x = calloc(1, sizeof *r.x);
	if (!r.x)
		return HIE_ENOMEM;
	err = open_zip(&r, zip, len);
	if (!err)
		err = scan(&r);
	if (!err)
		err = layout(&r);
	if (!err)
		err = check_index(&r);
	if (!err)
		err = read_metadata(&r);
	if (!err)
		err = read_docs(&r);
	if (!err) {
		snprintf(r.x->subset, sizeof r.x->subset, "%s", r.subset);
		*out = r.x;
		r.x = NULL;
	} else if (err == HIE_ENOMEM) {
		(void)fail(&r, err, "out of memory");
	}
	hisp_xdm_free(r.x);
	if (r.za)
		zip_discard(r.za);
	free(r.e);
	return err;
}
