/*
 * hisp_xdr_meta.c — reads an ITI-41 Provide and Register Document Set-b request for the XDR Document Recipient
 * without the database: the ebRS 3.0 metadata (only as much ebRIM as a Direct message needs: the
 * SubmissionSet's uniqueId, title, author telecom and intendedRecipient, each DocumentEntry's id, uniqueId,
 * mimeType, hash and size), the Direct addressing SOAP headers (XDR and XDM for Direct Messaging: direct:from,
 * direct:to, direct:metadata-level, also inside direct:addressBlock), and the xdsb:Document bytes (inline
 * base64 or MTOM/XOP).
 *
 * Entry points: hisp_xdr_read / hisp_xdr_sub_free.
 * Errors: what the peer got wrong in the metadata or documents is collected as RegistryErrors (row P of the
 * NIST TransactionDefinedErrorCodes: XDSMissingDocument, XDSMissingDocumentMetadata, InvalidDocumentContent,
 * XDSRepositoryMetadataError, and the Partial*NotProcessed warnings for Folders, RPLC, APND, XFRM, XFRM_RPLC);
 * a body that is no ITI-41 at all is HIE_EPARSE (the handler answers a Sender fault).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>
#include <openssl/evp.h>

#include "core/core_xml.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_xdr_int.h"

#define UUID_SS "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"        /* SubmissionSet classification node */
#define UUID_FOLDER "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"    /* Folder classification node */
#define UUID_SS_UNIQUEID "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
#define UUID_SS_AUTHOR "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
#define UUID_DE_UNIQUEID "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

/* --- small ebRIM readers ------------------------------------------------------------------------------- */

struct priv {
	char **strs;
	size_t n, cap;
};

/* A copy of s kept until hisp_xdr_sub_free; NULL on ENOMEM. */
static const char *keep(struct hisp_xdr_sub *s, const char *v)
{
	struct priv *p = s->priv;
	if (p->n == p->cap) {
		size_t nc = p->cap ? 2 * p->cap : 16;
		char **ns = realloc(p->strs, nc * sizeof *ns);
		if (!ns)
			return NULL;
		p->strs = ns;
		p->cap = nc;
	}
	char *c = strdup(v ? v : "");
	if (c)
		p->strs[p->n++] = c;
	return c;
}

/* Attribute value copied into out (cut to fit); "" when absent. */
static void attr_copy(const xmlNode *n, const char *name, char *out, size_t outlen)
{
	xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);
	snprintf(out, outlen, "%s", v ? (const char *)v : "");
	xmlFree(v);
}

static bool attr_eq(const xmlNode *n, const char *name, const char *val)
{
	xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);
	bool eq = v && val && strcmp((const char *)v, val) == 0;
	xmlFree(v);
	return eq;
}

/* Trimmed text content of n into out (cut to fit). */
static void text_copy(const xmlNode *n, char *out, size_t outlen)
{
	xmlChar *v = xmlNodeGetContent(n);
	const char *t = v ? (const char *)v : "";
	size_t len = strlen(t);
	while (len && strchr(" \t\r\n", t[len - 1]))
		len--;
	while (len && strchr(" \t\r\n", *t))
		t++, len--;
	snprintf(out, outlen, "%.*s", (int)(len < outlen ? len : outlen - 1), t);
	xmlFree(v);
}

/* The rim:Slot of obj called name, or NULL. */
static const xmlNode *slot(const xmlNode *obj, const char *name)
{
	const xmlNode *sl;
	HIE_XML_FOREACH(sl, obj, HISP_NS_RIM3, "Slot")
		if (attr_eq(sl, "name", name))
			return sl;
	return NULL;
}

/* First rim:Value of slot name of obj into out; false when there is none. */
static bool slot_value(const xmlNode *obj, const char *name, char *out, size_t outlen)
{
	const xmlNode *sl = slot(obj, name);
	const xmlNode *vl = sl ? hie_xml_child(sl, HISP_NS_RIM3, "ValueList") : NULL;
	const xmlNode *v = vl ? hie_xml_child(vl, HISP_NS_RIM3, "Value") : NULL;
	if (!v)
		return false;
	text_copy(v, out, outlen);
	return true;
}

/* Value of the rim:ExternalIdentifier of obj with identificationScheme scheme into out. */
static bool ext_id(const xmlNode *obj, const char *scheme, char *out, size_t outlen)
{
	const xmlNode *x;
	HIE_XML_FOREACH(x, obj, HISP_NS_RIM3, "ExternalIdentifier")
		if (attr_eq(x, "identificationScheme", scheme)) {
			attr_copy(x, "value", out, outlen);
			return out[0] != 0;
		}
	return false;
}

/* True when package pkg (id pkg_id) is classified under node: a nested rim:Classification, or a top-level one
 * in the RegistryObjectList rol that names pkg as classifiedObject (both forms are valid ebRIM 3.0). */
static bool classified_as(const xmlNode *rol, const xmlNode *pkg, const char *pkg_id, const char *node)
{
	const xmlNode *c;
	HIE_XML_FOREACH(c, pkg, HISP_NS_RIM3, "Classification")
		if (attr_eq(c, "classificationNode", node))
			return true;
	HIE_XML_FOREACH(c, rol, HISP_NS_RIM3, "Classification")
		if (attr_eq(c, "classificationNode", node) && attr_eq(c, "classifiedObject", pkg_id))
			return true;
	return false;
}

/* The address of an XTN "^^Internet^addr" (the 4th component when the 3rd is Internet) into out. */
static bool xtn_address(const char *xtn, size_t len, char *out, size_t outlen)
{
	const char *p = xtn, *end = xtn + len;
	int comp = 0;
	const char *c3 = NULL, *c4 = NULL;
	for (const char *q = p; q <= end; q++) {
		if (q == end || *q == '^') {
			if (comp == 2)
				c3 = p;
			if (comp == 3) {
				c4 = p;
				break;
			}
			comp++;
			p = q + 1;
		}
	}
	if (!c3 || !c4 || strncasecmp(c3, "Internet^", 9) != 0)
		return false;
	size_t n = strcspn(c4, "^");
	if ((size_t)(end - c4) < n)
		n = (size_t)(end - c4);
	if (n == 0 || n >= outlen)
		return false;
	memcpy(out, c4, n);
	out[n] = 0;
	return true;
}

/* --- the parts of the request -------------------------------------------------------------------------- */

static const char *strip_mailto(const char *a)
{
	return strncasecmp(a, "mailto:", 7) == 0 ? a + 7 : a;
}

/* Adds a recipient (normalized, deduplicated). */
static void add_rcpt(struct hisp_xdr_sub *s, const char *raw, const char *what, struct hisp_xdr_errors *e)
{
	char a[HISP_XDR_ADDR_MAX];
	if (hisp_addr_normalize(strip_mailto(raw), false, a, sizeof a) != HIE_OK) {
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, what, "%s: recipient %zu is not a Direct address",
				   what, s->nto + 1);
		return;
	}
	for (size_t i = 0; i < s->nto; i++)
		if (strcmp(s->to[i], a) == 0)
			return;
	if (s->nto >= HISP_XDR_MAX_RCPTS) {
		hisp_xdr_error_add(e, XDR_ERR_RESOURCES, false, what, "more than %d recipients", HISP_XDR_MAX_RCPTS);
		return;
	}
	snprintf(s->to[s->nto++], HISP_XDR_ADDR_MAX, "%s", a);
}

static void direct_header(struct hisp_xdr_sub *s, const xmlNode *el, int *nfrom, struct hisp_xdr_errors *e)
{
	char v[512];
	if (hie_xml_is(el, HISP_DIRECT_NS, "addressBlock")) {
		const xmlNode *c;
		HIE_XML_FOREACH(c, el, HISP_DIRECT_NS, NULL)
			if (!hie_xml_is(c, HISP_DIRECT_NS, "addressBlock")) /* no nesting */
				direct_header(s, c, nfrom, e);
		return;
	}
	text_copy(el, v, sizeof v);
	if (hie_xml_is(el, HISP_DIRECT_NS, "from")) {
		if ((*nfrom)++) {
			hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "direct:from", "more than one direct:from header");
		} else if (hisp_addr_normalize(strip_mailto(v), false, s->from, sizeof s->from) != HIE_OK) {
			s->from[0] = 0;
			hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "direct:from",
					   "direct:from is not a Direct address");
		}
		s->from_header = true;
	} else if (hie_xml_is(el, HISP_DIRECT_NS, "to")) {
		s->to_header = true;
		add_rcpt(s, v, "direct:to", e);
	} else if (hie_xml_is(el, HISP_DIRECT_NS, "metadata-level")) {
		if (strcasecmp(v, "minimal") == 0)
			snprintf(s->metadata_level, sizeof s->metadata_level, "minimal");
		else if (strcasecmp(v, "XDS") == 0)
			snprintf(s->metadata_level, sizeof s->metadata_level, "XDS");
		else
			hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "direct:metadata-level",
					   "direct:metadata-level must be minimal or XDS");
	}
}

static void read_headers(const struct hie_soap_msg *req, struct hisp_xdr_sub *s, struct hisp_xdr_errors *e)
{
	int nfrom = 0;
	const xmlNode *el;
	if (!req->header)
		return;
	HIE_XML_FOREACH(el, req->header, HISP_DIRECT_NS, NULL)
		direct_header(s, el, &nfrom, e);
}

/* The SubmissionSet: uniqueId, title, and (when the headers did not say) sender and recipients. */
static void read_submission_set(struct hisp_xdr_sub *s, const xmlNode *ss, struct hisp_xdr_errors *e)
{
	char id[128];
	attr_copy(ss, "id", id, sizeof id);
	if (!ext_id(ss, UUID_SS_UNIQUEID, s->ss_unique_id, sizeof s->ss_unique_id))
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, id, "the SubmissionSet has no uniqueId");
	const xmlNode *name = hie_xml_child(ss, HISP_NS_RIM3, "Name");
	const xmlNode *ls = name ? hie_xml_child(name, HISP_NS_RIM3, "LocalizedString") : NULL;
	if (ls)
		attr_copy(ls, "value", s->title, sizeof s->title);
	if (!s->from_header) {
		const xmlNode *c;
		char xtn[512];
		HIE_XML_FOREACH(c, ss, HISP_NS_RIM3, "Classification") {
			if (!attr_eq(c, "classificationScheme", UUID_SS_AUTHOR) ||
			    !slot_value(c, "authorTelecommunication", xtn, sizeof xtn))
				continue;
			char a[HISP_XDR_ADDR_MAX];
			if (xtn_address(xtn, strlen(xtn), a, sizeof a) &&
			    hisp_addr_normalize(a, false, s->from, sizeof s->from) == HIE_OK)
				break;
			s->from[0] = 0;
		}
	}
	if (!s->to_header) {
		const xmlNode *sl = slot(ss, "intendedRecipient");
		const xmlNode *vl = sl ? hie_xml_child(sl, HISP_NS_RIM3, "ValueList") : NULL;
		const xmlNode *v;
		size_t i = 0;
		if (vl)
			HIE_XML_FOREACH(v, vl, HISP_NS_RIM3, "Value") {
				char val[1024], a[HISP_XDR_ADDR_MAX];
				bool found = false;
				text_copy(v, val, sizeof val);
				i++;
				/* XON|XCN|XTN: the Direct address is the field that is an XTN of type Internet */
				for (const char *f = val;;) {
					size_t l = strcspn(f, "|");
					found = xtn_address(f, l, a, sizeof a);
					if (found || !f[l])
						break;
					f += l + 1;
				}
				if (found)
					add_rcpt(s, a, "intendedRecipient", e);
				else
					hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "intendedRecipient",
							   "intendedRecipient value %zu has no Direct address"
							   " (XTN ^^Internet^address)",
							   i);
			}
	}
}

/* One DocumentEntry of the metadata. */
struct entry {
	const xmlNode *node;
	char id[128];
	char unique_id[128];
	char mime[128];
	char hash[64];
	char size[32];
	bool has_hash, has_size, matched;
};

/* Warnings for what a Document Recipient that makes a Direct message does not process. */
static void read_associations(const xmlNode *rol, const char *const *folders, size_t nfolders,
			      struct hisp_xdr_errors *e)
{
	static const struct {
		const char *type, *code, *what;
	} not_processed[] = {
		{"RPLC", XDR_WARN_REPLACE, "replacement (RPLC)"},
		{"APND", XDR_WARN_APPEND, "append (APND)"},
		{"XFRM", XDR_WARN_XFRM, "transformation (XFRM)"},
		{"XFRM_RPLC", XDR_WARN_XFRM_RPLC, "transformation with replacement (XFRM_RPLC)"},
	};
	bool seen[sizeof not_processed / sizeof not_processed[0]] = {false};
	const xmlNode *a;
	HIE_XML_FOREACH(a, rol, HISP_NS_RIM3, "Association") {
		char type[160], src[128];
		attr_copy(a, "associationType", type, sizeof type);
		attr_copy(a, "sourceObject", src, sizeof src);
		const char *colon = strrchr(type, ':');
		const char *t = colon ? colon + 1 : type;
		for (size_t i = 0; i < sizeof not_processed / sizeof not_processed[0]; i++)
			if (!seen[i] && strcmp(t, not_processed[i].type) == 0) {
				seen[i] = true;
				hisp_xdr_error_add(e, not_processed[i].code, true, src,
						   "the %s semantics are not processed: the documents are sent as a"
						   " Direct message",
						   not_processed[i].what);
			}
	}
	if (nfolders)
		hisp_xdr_error_add(e, XDR_WARN_FOLDER, true, folders[0],
				   "%zu Folder(s) not processed: the documents are sent as a Direct message", nfolders);
}

static bool entry_read(struct entry *en, const xmlNode *eo)
{
	en->node = eo;
	attr_copy(eo, "id", en->id, sizeof en->id);
	attr_copy(eo, "mimeType", en->mime, sizeof en->mime);
	ext_id(eo, UUID_DE_UNIQUEID, en->unique_id, sizeof en->unique_id);
	en->has_hash = slot_value(eo, "hash", en->hash, sizeof en->hash);
	en->has_size = slot_value(eo, "size", en->size, sizeof en->size);
	return en->id[0] != 0;
}

/* The metadata: objects, the one SubmissionSet, folders, associations, DocumentEntries (into *entries). */
static hie_err_t read_metadata(struct hisp_xdr_sub *s, const xmlNode *rol, struct entry **entries, size_t *nent,
			       struct hisp_xdr_errors *e)
{
	const xmlNode *o, *ss = NULL;
	const char *folders[8];
	char fid[8][128];
	size_t nss = 0, nfolders = 0, neo = 0;
	HIE_XML_FOREACH(o, rol, HISP_NS_RIM3, "ExtrinsicObject")
		neo++;
	if (neo > HISP_XDM_MAX_DOCS) {
		hisp_xdr_error_add(e, XDR_ERR_RESOURCES, false, "", "%zu DocumentEntries; at most %d", neo,
				   HISP_XDM_MAX_DOCS);
		return HIE_OK;
	}
	s->nobjects = neo;
	*entries = neo ? calloc(neo, sizeof **entries) : NULL;
	if (neo && !*entries)
		return HIE_ENOMEM;
	HIE_XML_FOREACH(o, rol, HISP_NS_RIM3, "ExtrinsicObject") {
		struct entry *en = &(*entries)[*nent];
		if (!entry_read(en, o)) {
			hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "", "an ExtrinsicObject has no id");
			continue;
		}
		for (size_t i = 0; i < *nent; i++)
			if (strcmp((*entries)[i].id, en->id) == 0)
				hisp_xdr_error_add(e, XDR_ERR_METADATA, false, en->id,
						   "two ExtrinsicObjects have the id '%s'", en->id);
		(*nent)++;
	}
	HIE_XML_FOREACH(o, rol, HISP_NS_RIM3, "RegistryPackage") {
		char id[128];
		attr_copy(o, "id", id, sizeof id);
		if (classified_as(rol, o, id, UUID_SS)) {
			ss = o;
			nss++;
		} else if (classified_as(rol, o, id, UUID_FOLDER) && nfolders < 8) {
			snprintf(fid[nfolders], sizeof fid[nfolders], "%s", id);
			folders[nfolders] = fid[nfolders];
			nfolders++;
		}
	}
	if (nss != 1) {
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "",
				   nss ? "more than one SubmissionSet" : "no SubmissionSet (a RegistryPackage classified"
									 " as " UUID_SS ")");
		return HIE_OK;
	}
	read_submission_set(s, ss, e);
	read_associations(rol, folders, nfolders, e);
	return HIE_OK;
}

static void sha1_hex(const void *data, size_t len, char out[41])
{
	unsigned char md[20];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";
	if (!EVP_Digest(data, len, md, &n, EVP_sha1(), NULL) || n != sizeof md) {
		out[0] = 0;
		return;
	}
	for (size_t i = 0; i < sizeof md; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[40] = 0;
}

/* hash / size supplied in the metadata must describe the bytes received (InvalidDocumentContent). */
static void check_content(const struct entry *en, const char *data, size_t len, struct hisp_xdr_errors *e)
{
	if (en->has_hash) {
		char h[41];
		sha1_hex(data, len, h);
		if (strcasecmp(h, en->hash) != 0)
			hisp_xdr_error_add(e, XDR_ERR_CONTENT, false, en->id,
					   "Document '%s': the hash in the metadata does not match the document", en->id);
	}
	if (en->has_size) {
		char *end = NULL;
		unsigned long long v = strtoull(en->size, &end, 10);
		if (!en->size[0] || !end || *end || en->size[0] == '-' || v != (unsigned long long)len)
			hisp_xdr_error_add(e, XDR_ERR_CONTENT, false, en->id,
					   "Document '%s': the size in the metadata (%s) is not the document's (%zu)",
					   en->id, en->size, len);
	}
}

/* Every xdsb:Document with its bytes, matched with the DocumentEntries. */
static hie_err_t read_documents(const struct hie_soap_msg *req, struct hisp_xdr_sub *s, struct entry *ent,
				size_t nent, struct hisp_xdr_errors *e)
{
	const xmlNode *el;
	size_t n = 0;
	HIE_XML_FOREACH(el, req->payload, HISP_NS_XDSB, "Document")
		n++;
	if (n > HISP_XDM_MAX_DOCS) {
		hisp_xdr_error_add(e, XDR_ERR_RESOURCES, false, "", "%zu documents; at most %d", n, HISP_XDM_MAX_DOCS);
		return HIE_OK;
	}
	s->docs = n ? calloc(n, sizeof *s->docs) : NULL;
	size_t *off = n ? calloc(n, sizeof *off) : NULL;
	bool *is_inline = n ? calloc(n, sizeof *is_inline) : NULL;
	hie_err_t err = HIE_OK;
	if (n && (!s->docs || !off || !is_inline)) {
		err = HIE_ENOMEM;
		goto out;
	}
	HIE_XML_FOREACH(el, req->payload, HISP_NS_XDSB, "Document") {
		char id[128];
		attr_copy(el, "id", id, sizeof id);
		if (!id[0]) {
			hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "", "an xdsb:Document has no id");
			continue;
		}
		struct entry *en = NULL;
		for (size_t i = 0; i < nent && !en; i++)
			if (strcmp(ent[i].id, id) == 0)
				en = &ent[i];
		if (!en) {
			hisp_xdr_error_add(e, XDR_ERR_MISSING_META, false, id,
					   "Document '%s' has no ExtrinsicObject in the metadata", id);
			continue;
		}
		if (en->matched) {
			hisp_xdr_error_add(e, XDR_ERR_METADATA, false, id, "two xdsb:Documents have the id '%s'", id);
			continue;
		}
		en->matched = true;
		const char *data = NULL;
		size_t len = 0, at = s->scratch.len;
		hie_err_t b = hie_soap_binary(req, el, &data, &len, &s->scratch);
		if (b == HIE_ENOTFOUND) {
			hisp_xdr_error_add(e, XDR_ERR_MISSING_DOC, false, id,
					   "Document '%s': its xop:Include names no MIME part", id);
			continue;
		} else if (b == HIE_EPARSE) {
			hisp_xdr_error_add(e, XDR_ERR_METADATA, false, id,
					   "Document '%s': neither base64 nor an xop:Include", id);
			continue;
		} else if (b == HIE_ETOOBIG) {
			hisp_xdr_error_add(e, XDR_ERR_RESOURCES, false, id,
					   "Document '%s': inline documents too large; send them as MTOM", id);
			continue;
		} else if (b) {
			err = b;
			goto out;
		}
		check_content(en, data, len, e);
		struct hisp_xdm_doc *d = &s->docs[s->ndocs];
		is_inline[s->ndocs] = hie_xml_child(el, HIE_XOP_NS, "Include") == NULL;
		off[s->ndocs] = at;
		d->entry_id = keep(s, en->id);
		d->unique_id = keep(s, en->unique_id);
		d->mime_type = keep(s, en->mime[0] ? en->mime : "application/octet-stream");
		d->path = "";
		d->data = (const unsigned char *)data;
		d->len = len;
		if (!d->entry_id || !d->unique_id || !d->mime_type) {
			err = HIE_ENOMEM;
			goto out;
		}
		s->ndocs++;
	}
	for (size_t i = 0; i < nent; i++)
		if (!ent[i].matched)
			hisp_xdr_error_add(e, XDR_ERR_MISSING_DOC, false, ent[i].id,
					   "DocumentEntry '%s' has no xdsb:Document", ent[i].id);
	/* inline bytes were appended to scratch, which may have moved since: point at them only now */
	for (size_t i = 0; i < s->ndocs; i++)
		if (is_inline[i])
			s->docs[i].data = (const unsigned char *)(s->scratch.data ? s->scratch.data + off[i] : "");
out:
	free(off);
	free(is_inline);
	return err;
}

hie_err_t hisp_xdr_read(const struct hie_soap_msg *req, size_t inline_max, struct hisp_xdr_sub *s,
			struct hisp_xdr_errors *e, char *why, size_t whylen)
{
	struct entry *ent = NULL;
	size_t nent = 0;
	hie_buf_init(&s->scratch, inline_max);
	s->priv = calloc(1, sizeof(struct priv));
	s->to = calloc(HISP_XDR_MAX_RCPTS, sizeof *s->to);
	if (!s->priv || !s->to)
		return HIE_ENOMEM;
	if (!req->payload || !hie_xml_is(req->payload, HISP_NS_XDSB, "ProvideAndRegisterDocumentSetRequest")) {
		snprintf(why, whylen, "the body is not an xdsb:ProvideAndRegisterDocumentSetRequest");
		return HIE_EPARSE;
	}
	const xmlNode *sor = hie_xml_child(req->payload, HISP_NS_LCM3, "SubmitObjectsRequest");
	const xmlNode *rol = sor ? hie_xml_child(sor, HISP_NS_RIM3, "RegistryObjectList") : NULL;
	if (!rol) {
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "",
				   "ITI-41 carries ebRS 3.0: an lcm:SubmitObjectsRequest (" HISP_NS_LCM3
				   ") with a rim:RegistryObjectList (" HISP_NS_RIM3 ")");
		return HIE_OK;
	}
	s->sor = sor;
	read_headers(req, s, e);
	hie_err_t err = read_metadata(s, rol, &ent, &nent, e);
	if (!err)
		err = read_documents(req, s, ent, nent, e);
	if (!err && !s->from[0] && !e->nerrors)
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "",
				   "no sender: neither a direct:from header nor the SubmissionSet author's"
				   " authorTelecommunication (^^Internet^address)");
	if (!err && !s->nto && !e->nerrors)
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "intendedRecipient",
				   "no intendedRecipient: no direct:to header and no intendedRecipient slot with a"
				   " Direct address");
	if (!err && !s->ndocs && !e->nerrors)
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "", "the submission has no document");
	free(ent);
	return err;
}

void hisp_xdr_sub_free(struct hisp_xdr_sub *s)
{
	if (!s)
		return;
	struct priv *p = s->priv;
	if (p) {
		for (size_t i = 0; i < p->n; i++)
			free(p->strs[i]);
		free(p->strs);
		free(p);
	}
	free(s->docs);
	free(s->to);
	hie_buf_free(&s->scratch);
	memset(s, 0, sizeof *s);
}
