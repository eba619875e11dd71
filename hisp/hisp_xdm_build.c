/*
 * hisp_xdm_build.c — writes an XDM package (IHE ITI TF-1 16, Direct "XDR and XDM for Direct Messaging") in memory
 * with libzip:
 *
 *   INDEX.HTM                         XHTML 1.0: the sender, the documents (file name, type, title) with links
 *   README.TXT                        who made the package (the sender and this product)
 *   IHE_XDM/SUBSET01/METADATA.xml     the caller's SubmitObjectsRequest, each document's URI, hash, size set
 *   IHE_XDM/SUBSET01/DOC0001.XML ...  the documents, 8.3 names (the media profile allows ISO 9660 media)
 *
 * Entries are deflated and written in that order. Entry point: hisp_xdm_build (hisp_edge.h).
 * Errors: HIE_EINVAL (bad arguments, a document naming no ExtrinsicObject, metadata that is no
 * SubmitObjectsRequest), HIE_ETOOBIG (caps of hisp_edge.h, or out's cap), HIE_ENOMEM, HIE_EIO (libzip failed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zip.h>

#include "core/core_log.h"
#include "core/core_xml.h"
#include "hisp/hisp_edge.h"
#include "core/core_digest.h"
#include "hisp/hisp_xdm_int.h"

#define NAME_MAX_XDM 64
#define META_MAX (HIE_XML_DEFAULT_MAX_BYTES)
#define TEXT_MAX (1u << 20)

struct built {
	xmlDoc *meta_doc;
	char (*names)[NAME_MAX_XDM]; /* DOC0001.XML ... */
	struct hie_buf meta, index, readme;
};

static hie_err_t check_args(const xmlNode *sor, const struct hisp_xdm_doc *docs, size_t ndocs)
{
	if (!sor || sor->type != XML_ELEMENT_NODE || !hisp_xdm_rim_ns(sor) || (!docs && ndocs) || ndocs == 0)
		return HIE_EINVAL;
	if (ndocs > HISP_XDM_MAX_DOCS)
		return HIE_ETOOBIG;
	size_t total = 0;
	for (size_t i = 0; i < ndocs; i++) {
		if (!docs[i].entry_id || !docs[i].entry_id[0] || (!docs[i].data && docs[i].len))
			return HIE_EINVAL;
		if (docs[i].len > HISP_XDM_MAX_ENTRY || docs[i].len > HISP_XDM_MAX_TOTAL - total)
			return HIE_ETOOBIG;
		total += docs[i].len;
		for (size_t j = 0; j < i; j++)
			if (strcmp(docs[i].entry_id, docs[j].entry_id) == 0)
				return HIE_EINVAL;
	}
	return HIE_OK;
}

/* A stand-alone copy of sor: serialized (namespaces of its ancestors re-declared) and parsed back safely. */
static hie_err_t copy_sor(const xmlNode *sor, xmlDoc **out)
{
	struct hie_buf b;
	hie_buf_init(&b, META_MAX);
	hie_err_t err = hie_xml_serialize_node(sor, &b);
	if (!err)
		err = hie_xml_parse(b.data, b.len, NULL, out, NULL);
	if (err == HIE_EPARSE)
		err = HIE_EINVAL;
	hie_buf_free(&b);
	return err;
}

static hie_err_t set_doc_slots(xmlNode *eo, const struct hisp_xdm_doc *d, const char *name)
{
	char hash[41], size[32];
	hie_digest_sha1_hex(d->data, d->len, hash);
	snprintf(size, sizeof size, "%zu", d->len);
	hie_err_t err = hisp_xdm_slot_set(eo, "URI", name);
	if (!err)
		err = hisp_xdm_slot_set(eo, "hash", hash);
	if (!err)
		err = hisp_xdm_slot_set(eo, "size", size);
	if (!err && d->mime_type && d->mime_type[0] && !xmlHasProp(eo, (const xmlChar *)"mimeType") &&
	    !xmlSetProp(eo, (const xmlChar *)"mimeType", (const xmlChar *)d->mime_type))
		err = HIE_ENOMEM;
	return err;
}

static hie_err_t make_metadata(const xmlNode *sor, const struct hisp_xdm_doc *docs, size_t ndocs, struct built *b)
{
	hie_err_t err = copy_sor(sor, &b->meta_doc);
	if (err)
		return err;
	xmlNode *root = xmlDocGetRootElement(b->meta_doc);
	const char *rim = hisp_xdm_rim_ns(root);
	for (size_t i = 0; i < ndocs; i++) {
		xmlNode *eo = hisp_xdm_find_extrinsic(root, rim, docs[i].entry_id);
		if (!eo)
			return HIE_EINVAL;
		snprintf(b->names[i], NAME_MAX_XDM, "DOC%04zu.%s", i + 1, hisp_xdm_ext(docs[i].mime_type));
		err = set_doc_slots(eo, &docs[i], b->names[i]);
		if (err)
			return err;
	}
	return hie_xml_serialize_doc(b->meta_doc, true, &b->meta);
}

/* The document's title: ExtrinsicObject/Name/LocalizedString/@value (appended to out, "" when none). */
static void doc_title(xmlNode *eo, const char *rim, struct hie_buf *out)
{
	xmlNode *name = hie_xml_child(eo, rim, "Name");
	xmlNode *ls = name ? hie_xml_child(name, rim, "LocalizedString") : NULL;
	if (ls)
		(void)hie_xml_attr(ls, NULL, "value", out);
}

/* Escaped text; bytes XML 1.0 does not allow (C0 controls but tab, CR, LF) are left out, so the page stays
 * well-formed whatever a caller passes. */
static hie_err_t add_text_xml(struct hie_buf *b, const char *s)
{
	hie_err_t err = HIE_OK;
	while (*s && !err) {
		size_t n = 0;
		while (s[n] && ((unsigned char)s[n] >= 0x20 || s[n] == '\t' || s[n] == '\r' || s[n] == '\n'))
			n++;
		err = hie_buf_add_xml(b, s, n);
		s += n;
		if (*s)
			s++;
	}
	return err;
}

static hie_err_t make_index(const struct hisp_xdm_doc *docs, size_t ndocs, const char *sender, struct built *b)
{
	struct hie_buf *o = &b->index;
	xmlNode *root = xmlDocGetRootElement(b->meta_doc);
	const char *rim = hisp_xdm_rim_ns(root);
	struct hie_buf title;
	hie_buf_init(&title, 4096);
	hie_err_t err = hie_buf_addstr(
		o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
		   "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
		   "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n"
		   "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\r\n"
		   "<head><title>XDM package</title></head>\r\n<body>\r\n<h1>XDM package</h1>\r\n<p>From: ");
	if (!err)
		err = add_text_xml(o, sender);
	if (!err)
		err = hie_buf_addstr(o, "</p>\r\n<p>Submission set: <a href=\"" XDM_DIR "/" XDM_SUBSET "/" XDM_METADATA
					"\">" XDM_METADATA "</a></p>\r\n<table>\r\n"
					"<tr><th>Document</th><th>Type</th><th>Title</th></tr>\r\n");
	for (size_t i = 0; i < ndocs && !err; i++) {
		hie_buf_reset(&title);
		doc_title(hisp_xdm_find_extrinsic(root, rim, docs[i].entry_id), rim, &title);
		err = hie_buf_addf(o, "<tr><td><a href=\"" XDM_DIR "/" XDM_SUBSET "/%s\">%s</a></td><td>", b->names[i],
				   b->names[i]);
		if (!err)
			err = add_text_xml(o, docs[i].mime_type ? docs[i].mime_type : "");
		if (!err)
			err = hie_buf_addstr(o, "</td><td>");
		if (!err)
			err = add_text_xml(o, hie_buf_str(&title));
		if (!err)
			err = hie_buf_addstr(o, "</td></tr>\r\n");
	}
	if (!err)
		err = hie_buf_addstr(o, "</table>\r\n<p>Made by " XDM_PRODUCT ".</p>\r\n</body>\r\n</html>\r\n");
	hie_buf_free(&title);
	return err;
}

static hie_err_t make_readme(const char *sender, size_t ndocs, struct built *b)
{
	/* The sender is an address we checked, but README.TXT is plain text: keep it to one printable line. */
	char who[512];
	hie_log_printable(who, sizeof who, sender, strlen(sender));
	return hie_buf_addf(&b->readme,
			    "XDM package (IHE ITI XDM media interchange, Direct XDR and XDM for Direct Messaging)\r\n"
			    "\r\n"
			    "Sender: %s\r\n"
			    "Made by: " XDM_PRODUCT " (a regional health information exchange node)\r\n"
			    "Documents: %zu, in " XDM_DIR "/" XDM_SUBSET "/ (metadata in " XDM_METADATA ")\r\n"
			    "Open INDEX.HTM in a web browser to see the list of documents.\r\n",
			    who, ndocs);
}

static hie_err_t add_entry(zip_t *za, const char *name, const void *data, size_t len, time_t mtime)
{
	zip_source_t *s = zip_source_buffer(za, data, len, 0);
	if (!s)
		return HIE_ENOMEM;
	zip_int64_t i = zip_file_add(za, name, s, ZIP_FL_ENC_UTF_8);
	if (i < 0) {
		zip_source_free(s);
		return HIE_EIO;
	}
	if (zip_set_file_compression(za, (zip_uint64_t)i, ZIP_CM_DEFLATE, 9) < 0 ||
	    zip_file_set_mtime(za, (zip_uint64_t)i, mtime, 0) < 0)
		return HIE_EIO;
	return HIE_OK;
}

/* Copies the finished archive out of the buffer source (it survived zip_close thanks to zip_source_keep). */
static hie_err_t source_to_buf(zip_source_t *src, struct hie_buf *out)
{
	if (zip_source_open(src) < 0)
		return HIE_EIO;
	hie_err_t err = HIE_OK;
	zip_int64_t size = -1;
	if (zip_source_seek(src, 0, SEEK_END) < 0 || (size = zip_source_tell(src)) < 0 ||
	    zip_source_seek(src, 0, SEEK_SET) < 0) {
		err = HIE_EIO;
		goto out;
	}
	err = hie_buf_reserve(out, (size_t)size);
	if (err)
		goto out;
	size_t got = 0;
	while (got < (size_t)size) {
		zip_int64_t n = zip_source_read(src, out->data + out->len + got, (zip_uint64_t)size - got);
		if (n <= 0) {
			err = HIE_EIO;
			goto out;
		}
		got += (size_t)n;
	}
	out->len += got;
	out->data[out->len] = '\0';
out:
	zip_source_close(src);
	return err;
}

static hie_err_t write_zip(const struct hisp_xdm_doc *docs, size_t ndocs, struct built *b, struct hie_buf *out)
{
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
	zip_t *za = NULL;
	hie_err_t err = HIE_OK;
	time_t now = time(NULL);
	char path[NAME_MAX_XDM + 32];

	if (!src) {
		err = HIE_ENOMEM;
		goto out;
	}
	zip_source_keep(src);
	za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
	if (!za) {
		err = HIE_EIO;
		goto out;
	}
	err = add_entry(za, XDM_INDEX, b->index.data, b->index.len, now);
	if (!err)
		err = add_entry(za, XDM_README, b->readme.data, b->readme.len, now);
	if (!err)
		err = add_entry(za, XDM_DIR "/" XDM_SUBSET "/" XDM_METADATA, b->meta.data, b->meta.len, now);
	for (size_t i = 0; i < ndocs && !err; i++) {
		snprintf(path, sizeof path, XDM_DIR "/" XDM_SUBSET "/%s", b->names[i]);
		err = add_entry(za, path, docs[i].data, docs[i].len, now);
	}
	if (err)
		goto out;
	if (zip_close(za) < 0) {
		hie_log(HIE_LOG_ERR, "xdm: zip_close failed: %s", zip_strerror(za));
		err = HIE_EIO;
		goto out;
	}
	za = NULL;
	err = source_to_buf(src, out);
out:
	if (za)
		zip_discard(za);
	if (src)
		zip_source_free(src);
	zip_error_fini(&ze);
	return err;
}

hie_err_t hisp_xdm_build(const xmlNode *sor, const struct hisp_xdm_doc *docs, size_t ndocs, const char *sender,
			 struct hie_buf *out)
{
	struct built b = {0};
	hie_buf_init(&b.meta, META_MAX);
	hie_buf_init(&b.index, TEXT_MAX);
	hie_buf_init(&b.readme, TEXT_MAX);
	size_t start = out->len;
	hie_err_t err = check_args(sor, docs, ndocs);
	if (err)
		goto out;
	if (!sender)
		sender = "";
	b.names = calloc(ndocs, sizeof *b.names);
	if (!b.names) {
		err = HIE_ENOMEM;
		goto out;
	}
	err = make_metadata(sor, docs, ndocs, &b);
	if (!err)
		err = make_index(docs, ndocs, sender, &b);
	if (!err)
		err = make_readme(sender, ndocs, &b);
	if (!err)
		err = write_zip(docs, ndocs, &b, out);
out:
	if (err && out->len > start) { /* leave out as it was */
		out->len = start;
		out->data[start] = '\0';
	}
	if (b.meta_doc)
		xmlFreeDoc(b.meta_doc);
	free(b.names);
	hie_buf_free(&b.meta);
	hie_buf_free(&b.index);
	hie_buf_free(&b.readme);
	return err;
}
