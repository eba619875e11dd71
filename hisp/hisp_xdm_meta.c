/*
 * hisp_xdm_meta.c — minimal metadata (Direct "XDR and XDM for Direct Messaging" 1.0, §3.1 and ITI TF-3 4.2.5
 * "metadata-limited") for documents that arrived without any: an ebRS 3.0 lcm:SubmitObjectsRequest with
 *
 *   SubmissionSet01   RegistryPackage: submissionTime, intendedRecipient ("||^^Internet^<to>", one per
 *                     recipient), author with authorTelecommunication "^^Internet^<from>", uniqueId and sourceId
 *                     (OIDs), classified as a SubmissionSet and as limitedMetadata
 *   Document01 ...    ExtrinsicObject (DocumentEntry objectType, mimeType): hash, size, uniqueId, classified as
 *                     limitedMetadata; docs[i] becomes Document<i+1, two digits at least>
 *   HasMember         one Association per document, SubmissionSetStatus Original
 *
 * uniqueIds are 2.25.<decimal of a random UUID> (ITU-T X.667). The contract gives us no OID root, so sourceId is
 * 2.25.<decimal of a name-based UUID of the sender's domain>: stable for one sender, distinct between senders.
 *
 * Entry point: hisp_xdm_minimal_metadata (hisp_edge.h). Errors: HIE_EINVAL (no from, no recipient, no document,
 * an address with a character that would break the HL7 v2 encoding: | ^ & ~ \ or a control byte), HIE_ETOOBIG
 * (more than HISP_XDM_MAX_DOCS), HIE_ESYS (no randomness), HIE_ENOMEM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/core_soap.h"
#include "hisp/hisp_edge.h"
#include "core/core_digest.h"
#include "hisp/hisp_xdm_int.h"

#define XDM_OID_LEN 48 /* "2.25." and at most 39 digits */

struct mm {
	xmlDoc *doc;
	xmlNs *rim;
	bool oom;
};

/* "2.25." and the decimal value of a 128-bit big-endian number. */
static void oid_from_bytes(const unsigned char b[16], char *out, size_t outlen)
{
	unsigned char n[16];
	char digits[40];
	size_t nd = 0;
	memcpy(n, b, 16);
	for (;;) {
		unsigned rem = 0;
		bool zero = true;
		for (size_t i = 0; i < 16; i++) {
			unsigned cur = rem * 256 + n[i];
			n[i] = (unsigned char)(cur / 10);
			rem = cur % 10;
			if (n[i])
				zero = false;
		}
		digits[nd++] = (char)('0' + rem);
		if (zero || nd == sizeof digits)
			break;
	}
	size_t o = (size_t)snprintf(out, outlen, "2.25.");
	while (nd && o + 1 < outlen)
		out[o++] = digits[--nd];
	out[o < outlen ? o : outlen - 1] = '\0';
}

static int hexv(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static hie_err_t random_oid(char *out, size_t outlen)
{
	char urn[64];
	unsigned char b[16];
	size_t nb = 0;
	hie_err_t err = hie_soap_new_uuid_urn(urn, sizeof urn);
	if (err)
		return err;
	for (const char *p = urn + 9; *p && nb < 16; p++) { /* past "urn:uuid:" */
		if (*p == '-')
			continue;
		if (hexv(p[0]) < 0 || hexv(p[1]) < 0)
			return HIE_ESYS;
		b[nb++] = (unsigned char)(hexv(p[0]) * 16 + hexv(p[1]));
		p++;
	}
	if (nb != 16)
		return HIE_ESYS;
	oid_from_bytes(b, out, outlen);
	return HIE_OK;
}

/* A name-based (version 5 style: SHA-1, RFC 4122 §4.3) UUID of the sender's domain, as an OID. */
static void source_oid(const char *from, char *out, size_t outlen)
{
	static const char ns[] = "hienode XDM sourceId:";
	const char *at = strrchr(from, '@');
	const char *dom = at ? at + 1 : from;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || !EVP_DigestInit_ex(c, EVP_sha1(), NULL) || !EVP_DigestUpdate(c, ns, sizeof ns - 1) ||
	    !EVP_DigestUpdate(c, dom, strlen(dom)) || !EVP_DigestFinal_ex(c, md, &mdlen))
		memset(md, 0, sizeof md);
	EVP_MD_CTX_free(c);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	oid_from_bytes(md, out, outlen);
}

static bool hl7_safe(const char *s)
{
	if (!s || !s[0])
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || strchr("|^&~\\", *s))
			return false;
	return true;
}

static xmlNode *el(struct mm *m, xmlNode *parent, const char *name)
{
	xmlNode *n = parent ? xmlNewChild(parent, m->rim, (const xmlChar *)name, NULL) : NULL;
	if (!n)
		m->oom = true;
	return n;
}

static void attr(struct mm *m, xmlNode *n, const char *name, const char *value)
{
	if (n && !xmlSetProp(n, (const xmlChar *)name, (const xmlChar *)value))
		m->oom = true;
}

static void slot(struct mm *m, xmlNode *parent, const char *name, const char *const *values, size_t n)
{
	xmlNode *s = el(m, parent, "Slot");
	attr(m, s, "name", name);
	xmlNode *vl = el(m, s, "ValueList");
	for (size_t i = 0; i < n && vl; i++)
		if (!xmlNewTextChild(vl, m->rim, (const xmlChar *)"Value", (const xmlChar *)values[i]))
			m->oom = true;
}

static void slot1(struct mm *m, xmlNode *parent, const char *name, const char *value)
{
	slot(m, parent, name, &value, 1);
}

static void classification(struct mm *m, xmlNode *parent, const char *id, const char *object, const char *node)
{
	xmlNode *c = el(m, parent, "Classification");
	attr(m, c, "id", id);
	attr(m, c, "classifiedObject", object);
	attr(m, c, "classificationNode", node);
}

static void external_id(struct mm *m, xmlNode *parent, const char *id, const char *object, const char *scheme,
			const char *value, const char *label)
{
	xmlNode *e = el(m, parent, "ExternalIdentifier");
	attr(m, e, "id", id);
	attr(m, e, "registryObject", object);
	attr(m, e, "identificationScheme", scheme);
	attr(m, e, "value", value);
	xmlNode *ls = el(m, el(m, e, "Name"), "LocalizedString");
	attr(m, ls, "value", label);
}

static hie_err_t add_document(struct mm *m, xmlNode *list, const struct hisp_xdm_doc *d, size_t i)
{
	char id[32], cid[48], eid[48], oid[XDM_OID_LEN], hash[41], size[32];
	hie_err_t err = random_oid(oid, sizeof oid);
	if (err)
		return err;
	snprintf(id, sizeof id, "Document%02zu", i + 1);
	snprintf(cid, sizeof cid, "cl-%s-limited", id);
	snprintf(eid, sizeof eid, "ei-%s-uniqueId", id);
	hie_digest_sha1_hex(d->data, d->len, hash);
	snprintf(size, sizeof size, "%zu", d->len);

	xmlNode *eo = el(m, list, "ExtrinsicObject");
	attr(m, eo, "id", id);
	attr(m, eo, "mimeType", d->mime_type && d->mime_type[0] ? d->mime_type : "application/octet-stream");
	attr(m, eo, "objectType", XDM_UUID_DOC_ENTRY);
	slot1(m, eo, "hash", hash);
	slot1(m, eo, "size", size);
	classification(m, eo, cid, id, XDM_UUID_DOC_LIMITED);
	external_id(m, eo, eid, id, XDM_UUID_DOC_UNIQUEID, oid, "XDSDocumentEntry.uniqueId");
	return m->oom ? HIE_ENOMEM : HIE_OK;
}

static hie_err_t add_submission_set(struct mm *m, xmlNode *list, const char *from, const char *const *to, size_t nto)
{
	static const char ss[] = "SubmissionSet01";
	char when[32], uid[XDM_OID_LEN], src[XDM_OID_LEN], tel[300];
	char(*rcpt)[300] = calloc(nto, sizeof *rcpt);
	const char **vals = calloc(nto, sizeof *vals);
	hie_err_t err = rcpt && vals ? random_oid(uid, sizeof uid) : HIE_ENOMEM;
	if (err)
		goto out;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y%m%d%H%M%S", &tm);
	source_oid(from, src, sizeof src);
	for (size_t i = 0; i < nto; i++) {
		/* XON|XCN|XTN with only the telecommunication part (Direct XDR and XDM 1.0, intendedRecipient). */
		snprintf(rcpt[i], sizeof rcpt[i], "||^^Internet^%s", to[i]);
		vals[i] = rcpt[i];
	}
	snprintf(tel, sizeof tel, "^^Internet^%s", from);

	xmlNode *rp = el(m, list, "RegistryPackage");
	attr(m, rp, "id", ss);
	slot1(m, rp, "submissionTime", when);
	slot(m, rp, "intendedRecipient", vals, nto);
	xmlNode *author = el(m, rp, "Classification");
	attr(m, author, "id", "cl-SubmissionSet01-author");
	attr(m, author, "classificationScheme", XDM_UUID_SS_AUTHOR);
	attr(m, author, "classifiedObject", ss);
	attr(m, author, "nodeRepresentation", "");
	slot1(m, author, "authorTelecommunication", tel);
	classification(m, rp, "cl-SubmissionSet01-limited", ss, XDM_UUID_SS_LIMITED);
	external_id(m, rp, "ei-SubmissionSet01-uniqueId", ss, XDM_UUID_SS_UNIQUEID, uid, "XDSSubmissionSet.uniqueId");
	external_id(m, rp, "ei-SubmissionSet01-sourceId", ss, XDM_UUID_SS_SOURCEID, src, "XDSSubmissionSet.sourceId");
	classification(m, list, "cl-SubmissionSet01", ss, XDM_UUID_SS);
	err = m->oom ? HIE_ENOMEM : HIE_OK;
out:
	free(rcpt);
	free(vals);
	return err;
}

static void add_association(struct mm *m, xmlNode *list, size_t i)
{
	char id[32], doc[32];
	snprintf(id, sizeof id, "as-Document%02zu", i + 1);
	snprintf(doc, sizeof doc, "Document%02zu", i + 1);
	xmlNode *a = el(m, list, "Association");
	attr(m, a, "id", id);
	attr(m, a, "associationType", XDM_HAS_MEMBER);
	attr(m, a, "sourceObject", "SubmissionSet01");
	attr(m, a, "targetObject", doc);
	slot1(m, a, "SubmissionSetStatus", "Original");
}

hie_err_t hisp_xdm_minimal_metadata(const char *from, const char *const *to, size_t nto,
				    const struct hisp_xdm_doc *docs, size_t ndocs, xmlDoc **out)
{
	struct mm m = {0};
	hie_err_t err = HIE_OK;
	*out = NULL;
	if (!hl7_safe(from) || !to || nto == 0 || !docs || ndocs == 0)
		return HIE_EINVAL;
	for (size_t i = 0; i < nto; i++)
		if (!hl7_safe(to[i]) || strlen(to[i]) > 254)
			return HIE_EINVAL;
	if (strlen(from) > 254)
		return HIE_EINVAL;
	if (ndocs > HISP_XDM_MAX_DOCS)
		return HIE_ETOOBIG;
	for (size_t i = 0; i < ndocs; i++)
		if (!docs[i].data && docs[i].len)
			return HIE_EINVAL;

	m.doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNode *root = m.doc ? xmlNewDocNode(m.doc, NULL, (const xmlChar *)"SubmitObjectsRequest", NULL) : NULL;
	if (!root) {
		err = HIE_ENOMEM;
		goto out;
	}
	xmlDocSetRootElement(m.doc, root);
	xmlNs *lcm = xmlNewNs(root, (const xmlChar *)XDM_NS_LCM3, (const xmlChar *)"lcm");
	m.rim = xmlNewNs(root, (const xmlChar *)XDM_NS_RIM3, (const xmlChar *)"rim");
	if (!lcm || !m.rim) {
		err = HIE_ENOMEM;
		goto out;
	}
	xmlSetNs(root, lcm);
	xmlNode *list = el(&m, root, "RegistryObjectList");
	for (size_t i = 0; i < ndocs && !err; i++)
		err = add_document(&m, list, &docs[i], i);
	if (!err)
		err = add_submission_set(&m, list, from, to, nto);
	for (size_t i = 0; i < ndocs && !err; i++)
		add_association(&m, list, i);
	if (!err && m.oom)
		err = HIE_ENOMEM;
out:
	if (err) {
		xmlFreeDoc(m.doc);
		return err;
	}
	*out = m.doc;
	return HIE_OK;
}
