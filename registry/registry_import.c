/*
 * registry_import.c — the registry side of the push-to-pull bridge: a document received over Direct (a plain
 * CDA attachment, or a document of an XDM package with its METADATA.xml) registered into this node's registry
 * and stored in its repository as an ITI-41 would be (registry.h has the contract).
 *
 * Entry points: registry_import, registry_bridge_config.
 *
 * One import = one document. A fresh ebRIM 3.0 SubmitObjectsRequest is built with libxml2: the ExtrinsicObject
 * named entry_id and the SubmissionSet copied from the metadata (ebRS 3.0 or 2.1: both are copied element by
 * element into the rim 3.0 namespace, children in the 3.0 order, ObjectRefs, VersionInfo, status and lid
 * dropped), top-level Classifications/ExternalIdentifiers of those two nested into them, and one new HasMember.
 * Folders and other associations are dropped: they name objects this registry does not have. Without metadata
 * the two objects start empty. Top-level ids become symbolic (the registry assigns urn:uuids), nested ids go.
 * Then the patient is resolved (metadata patientId, sourcePatientId, the CDA's recordTarget ids, the CDA's
 * demographics), patientIds are rewritten to the local id, and what is missing is filled from the CDA header
 * (registry_cda.c) or from [bridge]. The SubmissionSet always gets a new uniqueId: the documents of one XDM
 * package are imported one by one, each in a SubmissionSet of its own.
 *
 * Registration is registry_repository_register (the second half of ITI-41: hash, size, repositoryUniqueId,
 * bytes stored in the registration's transaction). Idempotence: a DocumentEntry uniqueId already registered
 * with the same hash and size is REGISTERED without a new entry (the bridge job may run twice).
 *
 * Outcomes go in the result; only a database that is down or busy (and HIE_ENOMEM) is a return value: the
 * caller retries. Reasons never carry names or ids; nothing of the document is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>
#include <openssl/evp.h>

#include "core/core_digest.h"
#include "core/core_log.h"
#include "core/core_soap.h"
#include "core/core_xml.h"
#include "registry/registry.h"
#include "registry/registry_cda.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_repository.h"
#include "registry/registry_store.h"
#include "registry/registry_validate.h"

#define NS_RIM2 "urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1"
#define NS_RS2 "urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1"
#define LIMITED_DE "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"
#define LIMITED_SS "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707"
#define OT_PREFIX "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:"
#define CONF_SCHEME "2.16.840.1.113883.5.25"
#define DE_ID "Document01"
#define SS_ID "SubmissionSet01"
#define AS_ID "Association01"
#define MAX_METADATA (16u * 1024u * 1024u)

/* A coded value from the configuration or the CDA. */
struct code {
	char code[128];
	char scheme[128];
	char display[256];
};

struct imp {
	struct registry_service *svc;
	const struct registry_import *in;
	struct registry_import_result *res;
	struct registry_cda *cda;   /* NULL when the document is not a CDA */
	xmlDoc *doc;                /* the submission being built */
	xmlNs *rim;
	xmlNode *list, *de, *ss;
	char sender_pid[REGISTRY_PID_TEXT_MAX];   /* the metadata's DocumentEntry patientId, when a valid CX */
	char cda_pid[REGISTRY_PID_TEXT_MAX];      /* the CDA recordTarget id used (or the first valid one) */
	struct registry_pid local;                /* the resolved patient */
	char local_text[REGISTRY_PID_TEXT_MAX];
	struct code type;                         /* typeCode given to the entry (for contentTypeCode) */
};

/* Configuration ---------------------------------------------------------------------------------------- */

void registry_bridge_config(struct registry_bridge_cfg *b, const struct hie_cfg *cfg)
{
	memset(b, 0, sizeof *b);
	snprintf(b->source_id, sizeof b->source_id, "%s", hie_cfg_str(cfg, "bridge", "source_id"));
	snprintf(b->hcft_code, sizeof b->hcft_code, "%s", hie_cfg_str(cfg, "bridge", "healthcare_facility_type_code"));
	snprintf(b->practice_code, sizeof b->practice_code, "%s", hie_cfg_str(cfg, "bridge", "practice_setting_code"));
	snprintf(b->class_code, sizeof b->class_code, "%s", hie_cfg_str(cfg, "bridge", "class_code"));
	snprintf(b->type_code, sizeof b->type_code, "%s", hie_cfg_str(cfg, "bridge", "type_code"));
	snprintf(b->confidentiality_code, sizeof b->confidentiality_code, "%s",
		 hie_cfg_str(cfg, "bridge", "confidentiality_code"));
	snprintf(b->language_code, sizeof b->language_code, "%s", hie_cfg_str(cfg, "bridge", "language_code"));
}

/* "code^^scheme[^display]" → c. false when code or scheme is empty. */
static bool parse_code(const char *text, struct code *c)
{
	memset(c, 0, sizeof *c);
	const char *sep = text ? strstr(text, "^^") : NULL;
	if (!sep || sep == text || (size_t)(sep - text) >= sizeof c->code)
		return false;
	memcpy(c->code, text, (size_t)(sep - text));
	const char *scheme = sep + 2, *end = strchr(scheme, '^');
	size_t sl = end ? (size_t)(end - scheme) : strlen(scheme);
	if (sl == 0 || sl >= sizeof c->scheme)
		return false;
	memcpy(c->scheme, scheme, sl);
	if (end)
		snprintf(c->display, sizeof c->display, "%s", end + 1);
	return true;
}

/* The configured code, or the built-in default when unset or malformed. */
static void cfg_code(const char *value, const char *def, struct code *c)
{
	if (value && *value && parse_code(value, c))
		return;
	if (value && *value)
		hie_log(HIE_LOG_WARN, "event=registry.import.config reason=bad_code_using_default");
	parse_code(def, c);
}

static const char *cfg_text(const char *value, const char *def)
{
	return value && *value ? value : def;
}

static void from_cda(struct code *c, const struct registry_cda_code *x)
{
	snprintf(c->code, sizeof c->code, "%s", x->code);
	snprintf(c->scheme, sizeof c->scheme, "%s", x->scheme);
	snprintf(c->display, sizeof c->display, "%s", x->display);
}

/* Ids ---------------------------------------------------------------------------------------------------- */

/* "2.25." + the 128-bit big-endian number in decimal (ITI TF-3 / ISO 9834-8 UUID-derived OID). */
static void oid_2_25(const unsigned char u[16], char *out, size_t outlen)
{
	unsigned char n[16];
	memcpy(n, u, 16);
	char dec[48];
	size_t k = 0;
	bool zero;
	do {
		unsigned rem = 0;
		zero = true;
		for (size_t i = 0; i < 16; i++) {
			unsigned cur = rem * 256u + n[i];
			n[i] = (unsigned char)(cur / 10u);
			rem = cur % 10u;
			if (n[i])
				zero = false;
		}
		dec[k++] = (char)('0' + rem);
	} while (!zero && k < sizeof dec - 1);
	size_t o = (size_t)snprintf(out, outlen, "2.25.");
	for (size_t i = 0; i < k && o + 1 < outlen; i++)
		out[o++] = dec[k - 1 - i];
	out[o < outlen ? o : outlen - 1] = '\0';
}

/* A name-based (SHA-1, version 5 layout) UUID OID of text: the same text gives the same uniqueId. */
static hie_err_t oid_from_text(const void *text, size_t len, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!EVP_Digest(text, len, md, &mdlen, EVP_sha1(), NULL) || mdlen < 16)
		return HIE_ENOMEM;
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	oid_2_25(md, out, outlen);
	return HIE_OK;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A new random uniqueId (2.25.<uuid>). */
static hie_err_t oid_random(char *out, size_t outlen)
{
	char urn[64];
	hie_err_t err = hie_soap_new_uuid_urn(urn, sizeof urn);
	if (err)
		return err;
	unsigned char u[16];
	size_t k = 0;
	for (const char *p = urn + strlen("urn:uuid:"); *p && k < 32; p++) {
		int v = hexval(*p);
		if (v < 0)
			continue;
		if (k % 2 == 0)
			u[k / 2] = (unsigned char)(v << 4);
		else
			u[k / 2] |= (unsigned char)v;
		k++;
	}
	if (k != 32)
		return HIE_ESYS;
	oid_2_25(u, out, outlen);
	return HIE_OK;
}

/* The DocumentEntry uniqueId of a CDA: its id when that is a valid XDS uniqueId, else one derived from it. */
static hie_err_t cda_unique_id(const struct imp *m, char *out, size_t outlen)
{
	const struct registry_cda_ii *id = &m->cda->id;
	char uid[300];
	if (id->extension[0])
		snprintf(uid, sizeof uid, "%s^%s", id->root, id->extension);
	else
		snprintf(uid, sizeof uid, "%s", id->root);
	size_t n = strlen(uid);
	if (registry_validate_uid(uid) && n < outlen) {
		memcpy(out, uid, n + 1);
		return HIE_OK;
	}
	if (id->root[0])
		return oid_from_text(uid, strlen(uid), out, outlen);
	return oid_from_text(m->in->data, m->in->len, out, outlen);
}

/* DOM helpers over the rim 3.0 submission --------------------------------------------------------------- */

static bool is_rim(const xmlNode *n, const char *local)
{
	return n && n->type == XML_ELEMENT_NODE && n->ns &&
	       (strcmp((const char *)n->ns->href, REGISTRY_NS_RIM) == 0 || strcmp((const char *)n->ns->href, NS_RIM2) == 0) &&
	       (!local || strcmp((const char *)n->name, local) == 0);
}

static bool attr_is(const xmlNode *n, const char *name, const char *value)
{
	xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);
	bool eq = v && value && strcmp((const char *)v, value) == 0;
	xmlFree(v);
	return eq;
}

/* Inserts el into obj before its first child element named in stop (NULL-terminated), else at the end. */
static void insert_before(xmlNode *obj, xmlNode *el, const char *const *stop)
{
	for (xmlNode *c = obj->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		for (size_t i = 0; stop[i]; i++)
			if (strcmp((const char *)c->name, stop[i]) == 0) {
				xmlAddPrevSibling(c, el);
				return;
			}
	}
	xmlAddChild(obj, el);
}

static const char *const AFTER_SLOT[] = {"Name", "Description", "VersionInfo", "Classification",
					 "ExternalIdentifier", "ContentVersionInfo", NULL};
static const char *const AFTER_NAME[] = {"Description", "VersionInfo", "Classification", "ExternalIdentifier",
					 "ContentVersionInfo", NULL};
static const char *const AFTER_CLS[] = {"ExternalIdentifier", "ContentVersionInfo", NULL};
static const char *const AFTER_EXTID[] = {"ContentVersionInfo", NULL};

static xmlNode *new_el(struct imp *m, const char *local)
{
	xmlNode *el = xmlNewDocNode(m->doc, m->rim, BAD_CAST local, NULL);
	if (!el)
		hie_panic("registry_import: out of memory building metadata");
	return el;
}

static void add_text(struct imp *m, xmlNode *el, const char *text)
{
	xmlNode *t = xmlNewDocText(m->doc, BAD_CAST text);
	if (!t || !xmlAddChild(el, t))
		hie_panic("registry_import: out of memory building metadata");
}

static void set_attr(xmlNode *el, const char *name, const char *value)
{
	if (!xmlSetProp(el, BAD_CAST name, BAD_CAST value))
		hie_panic("registry_import: out of memory building metadata");
}

/* <rim:Name><rim:LocalizedString value=".."/></rim:Name> */
static xmlNode *new_name(struct imp *m, const char *value)
{
	xmlNode *name = new_el(m, "Name"), *ls = new_el(m, "LocalizedString");
	set_attr(ls, "value", value);
	xmlAddChild(name, ls);
	return name;
}

static xmlNode *new_slot(struct imp *m, const char *name, const char *const *values, size_t n)
{
	xmlNode *slot = new_el(m, "Slot"), *vl = new_el(m, "ValueList");
	set_attr(slot, "name", name);
	xmlAddChild(slot, vl);
	for (size_t i = 0; i < n; i++) {
		xmlNode *v = new_el(m, "Value");
		add_text(m, v, values[i]);
		xmlAddChild(vl, v);
	}
	return slot;
}

static xmlNode *find_child(xmlNode *obj, const char *local, const char *attr, const char *value)
{
	for (xmlNode *c = obj ? obj->children : NULL; c; c = c->next)
		if (is_rim(c, local) && (!attr || attr_is(c, attr, value)))
			return c;
	return NULL;
}

/* First value of slot `name` of obj (caller frees with xmlFree), or NULL. */
static xmlChar *slot_value(xmlNode *obj, const char *name)
{
	xmlNode *slot = find_child(obj, "Slot", "name", name);
	xmlNode *vl = find_child(slot, "ValueList", NULL, NULL);
	xmlNode *v = find_child(vl, "Value", NULL, NULL);
	return v ? xmlNodeGetContent(v) : NULL;
}

static void set_slot(struct imp *m, xmlNode *obj, const char *name, const char *value)
{
	xmlNode *old = find_child(obj, "Slot", "name", name);
	if (old) {
		xmlUnlinkNode(old);
		xmlFreeNode(old);
	}
	insert_before(obj, new_slot(m, name, &value, 1), AFTER_SLOT);
}

static bool has_slot(xmlNode *obj, const char *name)
{
	xmlChar *v = slot_value(obj, name);
	bool has = v && v[0];
	xmlFree(v);
	return has;
}

static bool has_cls(xmlNode *obj, const char *scheme)
{
	return find_child(obj, "Classification", "classificationScheme", scheme) != NULL;
}

static void add_cls(struct imp *m, xmlNode *obj, const char *obj_id, const char *scheme, const struct code *c)
{
	xmlNode *cl = new_el(m, "Classification");
	set_attr(cl, "classificationScheme", scheme);
	set_attr(cl, "classifiedObject", obj_id);
	set_attr(cl, "nodeRepresentation", c->code);
	set_attr(cl, "objectType", OT_PREFIX "Classification");
	const char *cs = c->scheme;
	xmlAddChild(cl, new_slot(m, "codingScheme", &cs, 1));
	if (c->display[0])
		xmlAddChild(cl, new_name(m, c->display));
	insert_before(obj, cl, AFTER_CLS);
}

static void add_author(struct imp *m, xmlNode *obj, const char *obj_id, const char *scheme, const char *slot,
		       const char *value)
{
	xmlNode *cl = new_el(m, "Classification");
	set_attr(cl, "classificationScheme", scheme);
	set_attr(cl, "classifiedObject", obj_id);
	set_attr(cl, "nodeRepresentation", "");
	set_attr(cl, "objectType", OT_PREFIX "Classification");
	xmlAddChild(cl, new_slot(m, slot, &value, 1));
	insert_before(obj, cl, AFTER_CLS);
}

/* The value of obj's ExternalIdentifier with this scheme (caller frees), or NULL. */
static xmlChar *extid_value(xmlNode *obj, const char *scheme)
{
	xmlNode *x = find_child(obj, "ExternalIdentifier", "identificationScheme", scheme);
	return x ? xmlGetNoNsProp(x, BAD_CAST "value") : NULL;
}

static void set_extid(struct imp *m, xmlNode *obj, const char *obj_id, const char *scheme, const char *value,
		      const char *label)
{
	xmlNode *x = find_child(obj, "ExternalIdentifier", "identificationScheme", scheme);
	if (x) {
		set_attr(x, "value", value);
		return;
	}
	x = new_el(m, "ExternalIdentifier");
	set_attr(x, "identificationScheme", scheme);
	set_attr(x, "registryObject", obj_id);
	set_attr(x, "value", value);
	set_attr(x, "objectType", OT_PREFIX "ExternalIdentifier");
	xmlAddChild(x, new_name(m, label));
	insert_before(obj, x, AFTER_EXTID);
}

/* Copy of metadata (ebRIM 2.1 or 3.0) into the rim 3.0 submission -------------------------------------- */

struct copy_ctx {
	struct imp *m;
	xmlNode *src_list;          /* the metadata's object list (for top-level Classifications/ExternalIdentifiers) */
	const char *de_src, *ss_src;
};

static const char *map_ref(const struct copy_ctx *c, const char *ref)
{
	if (ref && c->de_src && strcmp(ref, c->de_src) == 0)
		return DE_ID;
	if (ref && c->ss_src && strcmp(ref, c->ss_src) == 0)
		return SS_ID;
	return ref;
}

static bool is_limited(const xmlNode *n)
{
	return is_rim(n, "Classification") && (attr_is(n, "classificationNode", LIMITED_DE) ||
					       attr_is(n, "classificationNode", LIMITED_SS));
}

static xmlNode *copy_el(struct copy_ctx *c, const xmlNode *src, const char *new_id, const char *parent_id);

static void copy_attrs(struct copy_ctx *c, const xmlNode *src, xmlNode *to, const char *new_id)
{
	static const char *const skip[] = {"id", "lid", "status", "home", "minorVersion", "majorVersion", NULL};
	for (const xmlAttr *a = src->properties; a; a = a->next) {
		const char *name = (const char *)a->name;
		xmlChar *v = xmlNodeListGetString(src->doc, a->children, 1);
		if (a->ns) {
			/* xml:lang survives; other namespaced attributes (xsi:...) are not ebRIM's. */
			if (strcmp(name, "lang") == 0 && a->ns->href && strcmp((const char *)a->ns->href, REGISTRY_NS_XML) == 0) {
				xmlNs *xml = xmlSearchNsByHref(c->m->doc, to, BAD_CAST REGISTRY_NS_XML);
				if (xml)
					xmlSetNsProp(to, xml, BAD_CAST "lang", v ? v : BAD_CAST "");
			}
			xmlFree(v);
			continue;
		}
		bool skipped = false;
		for (size_t i = 0; skip[i]; i++)
			skipped = skipped || strcmp(name, skip[i]) == 0;
		if (!skipped) {
			const char *val = v ? (const char *)v : "";
			if (strcmp(name, "classifiedObject") == 0 || strcmp(name, "registryObject") == 0)
				val = map_ref(c, val);
			set_attr(to, name, val);
		}
		xmlFree(v);
	}
	if (new_id)
		set_attr(to, "id", new_id);
}

/* Children in the ebRIM 3.0 order; top-level Classifications/ExternalIdentifiers of the object nested. */
static void copy_children(struct copy_ctx *c, const xmlNode *src, xmlNode *to, const char *src_id, const char *new_id)
{
	static const char *const order[] = {"Slot", "Name", "Description", "Classification", "ExternalIdentifier", NULL};
	bool object = new_id != NULL;
	for (size_t k = 0; order[k]; k++) {
		for (const xmlNode *ch = src->children; ch; ch = ch->next)
			if (is_rim(ch, order[k]) && !is_limited(ch))
				xmlAddChild(to, copy_el(c, ch, NULL, new_id));
		if (!object || !src_id || !c->src_list)
			continue;
		bool cls = strcmp(order[k], "Classification") == 0, ext = strcmp(order[k], "ExternalIdentifier") == 0;
		if (!cls && !ext)
			continue;
		for (const xmlNode *o = c->src_list->children; o; o = o->next)
			if (is_rim(o, order[k]) && !is_limited(o) &&
			    attr_is(o, cls ? "classifiedObject" : "registryObject", src_id))
				xmlAddChild(to, copy_el(c, o, NULL, new_id));
	}
	for (const xmlNode *ch = src->children; ch; ch = ch->next) {
		if (ch->type != XML_ELEMENT_NODE || is_rim(ch, "ObjectRef") || is_rim(ch, "VersionInfo"))
			continue;
		bool ordered = false;
		for (size_t k = 0; order[k]; k++)
			ordered = ordered || is_rim(ch, order[k]);
		if (!ordered && is_rim(ch, NULL))
			xmlAddChild(to, copy_el(c, ch, NULL, new_id));
	}
}

static xmlNode *copy_el(struct copy_ctx *c, const xmlNode *src, const char *new_id, const char *parent_id)
{
	xmlNode *to = new_el(c->m, (const char *)src->name);
	copy_attrs(c, src, to, new_id);
	bool cls = is_rim(src, "Classification"), ext = is_rim(src, "ExternalIdentifier");
	/* ebRIM 2.1 ExternalIdentifiers have no registryObject; a nested object refers to its parent. */
	if (parent_id && cls && !xmlHasProp(to, BAD_CAST "classifiedObject"))
		set_attr(to, "classifiedObject", parent_id);
	if (parent_id && ext)
		set_attr(to, "registryObject", parent_id);
	if ((cls || ext) && !xmlHasProp(to, BAD_CAST "objectType"))
		set_attr(to, "objectType", cls ? OT_PREFIX "Classification" : OT_PREFIX "ExternalIdentifier");
	bool elements = false;
	for (const xmlNode *ch = src->children; ch && !elements; ch = ch->next)
		elements = ch->type == XML_ELEMENT_NODE;
	if (elements) {
		xmlChar *sid = xmlGetNoNsProp(src, BAD_CAST "id");
		copy_children(c, src, to, (const char *)sid, new_id ? new_id : parent_id);
		xmlFree(sid);
	} else {
		xmlChar *t = xmlNodeGetContent(src);
		if (t && t[0])
			add_text(c->m, to, (const char *)t);
		xmlFree(t);
	}
	return to;
}

/* The RegistryPackage of the list classified as SubmissionSet (nested or top-level), or NULL. */
static const xmlNode *find_ss(const xmlNode *list)
{
	for (const xmlNode *o = list->children; o; o = o->next) {
		if (!is_rim(o, "RegistryPackage"))
			continue;
		xmlChar *id = xmlGetNoNsProp(o, BAD_CAST "id");
		bool ss = find_child((xmlNode *)o, "Classification", "classificationNode", REGISTRY_UUID_SS_NODE) ||
			  find_child((xmlNode *)o, "ExternalIdentifier", "identificationScheme", REGISTRY_UUID_SS_UNIQUEID);
		for (const xmlNode *k = list->children; k && !ss && id; k = k->next)
			ss = is_rim(k, "Classification") && attr_is(k, "classifiedObject", (const char *)id) &&
			     attr_is(k, "classificationNode", REGISTRY_UUID_SS_NODE);
		xmlFree(id);
		if (ss)
			return o;
	}
	return NULL;
}

static const xmlNode *object_list(const xmlNode *root)
{
	if (hie_xml_is(root, REGISTRY_NS_LCM, "SubmitObjectsRequest"))
		return hie_xml_child(root, REGISTRY_NS_RIM, "RegistryObjectList");
	if (hie_xml_is(root, NS_RS2, "SubmitObjectsRequest")) {
		const xmlNode *l = hie_xml_child(root, NS_RIM2, "LeafRegistryObjectList");
		return l ? l : hie_xml_child(root, NS_RIM2, "RegistryObjectList");
	}
	return NULL;
}

static void refuse(struct imp *m, const char *code, const char *text)
{
	m->res->outcome = REGISTRY_IMPORT_REFUSED;
	snprintf(m->res->reason, sizeof m->res->reason, "%s: %s", code, text);
}

static void park(struct imp *m, const char *text)
{
	m->res->outcome = REGISTRY_IMPORT_PARKED;
	snprintf(m->res->reason, sizeof m->res->reason, "%s", text);
}

/* Skeleton: the submission document, an empty DocumentEntry and SubmissionSet, their HasMember. */
static void skeleton(struct imp *m)
{
	m->doc = xmlNewDoc(BAD_CAST "1.0");
	xmlNode *root = m->doc ? xmlNewDocNode(m->doc, NULL, BAD_CAST "SubmitObjectsRequest", NULL) : NULL;
	if (!root)
		hie_panic("registry_import: out of memory building metadata");
	xmlDocSetRootElement(m->doc, root);
	xmlNs *lcm = xmlNewNs(root, BAD_CAST REGISTRY_NS_LCM, BAD_CAST "lcm");
	m->rim = xmlNewNs(root, BAD_CAST REGISTRY_NS_RIM, BAD_CAST "rim");
	if (!lcm || !m->rim)
		hie_panic("registry_import: out of memory building metadata");
	xmlSetNs(root, lcm);
	m->list = new_el(m, "RegistryObjectList");
	xmlAddChild(root, m->list);
}

static void add_ss_and_assoc(struct imp *m)
{
	if (!m->ss) {
		m->ss = new_el(m, "RegistryPackage");
		set_attr(m->ss, "id", SS_ID);
		xmlAddChild(m->list, m->ss);
	}
	set_attr(m->ss, "objectType", OT_PREFIX "RegistryPackage");
	if (!find_child(m->ss, "Classification", "classificationNode", REGISTRY_UUID_SS_NODE)) {
		xmlNode *cl = new_el(m, "Classification");
		set_attr(cl, "classificationNode", REGISTRY_UUID_SS_NODE);
		set_attr(cl, "classifiedObject", SS_ID);
		set_attr(cl, "objectType", OT_PREFIX "Classification");
		insert_before(m->ss, cl, AFTER_CLS);
	}
	xmlNode *a = new_el(m, "Association");
	set_attr(a, "id", AS_ID);
	set_attr(a, "associationType", REGISTRY_ASSOC_HASMEMBER);
	set_attr(a, "sourceObject", SS_ID);
	set_attr(a, "targetObject", DE_ID);
	set_attr(a, "objectType", OT_PREFIX "Association");
	const char *orig = "Original";
	xmlAddChild(a, new_slot(m, "SubmissionSetStatus", &orig, 1));
	xmlAddChild(m->list, a);
}

/* Builds the submission from the metadata. false with res filled (REFUSED) when it cannot be used. */
static bool from_metadata(struct imp *m)
{
	xmlDoc *md = NULL;
	const struct hie_xml_limits lim = {.max_bytes = MAX_METADATA};
	hie_err_t err = hie_xml_parse(m->in->metadata, m->in->metadata_len, &lim, &md, NULL);
	const xmlNode *list = err ? NULL : object_list(xmlDocGetRootElement(md));
	if (!list) {
		refuse(m, REGISTRY_ERR_METADATA, "the XDM metadata is not an ebRS SubmitObjectsRequest");
		xmlFreeDoc(md);
		return false;
	}
	const xmlNode *eo = NULL;
	size_t neo = 0;
	for (const xmlNode *o = list->children; o; o = o->next) {
		if (!is_rim(o, "ExtrinsicObject"))
			continue;
		neo++;
		if (m->in->entry_id ? attr_is(o, "id", m->in->entry_id) : !eo)
			eo = eo ? eo : o;
	}
	if (!eo || (!m->in->entry_id && neo != 1)) {
		refuse(m, REGISTRY_ERR_METADATA, "the XDM metadata has no ExtrinsicObject for this document");
		xmlFreeDoc(md);
		return false;
	}
	const xmlNode *ss = find_ss(list);
	xmlChar *de_id = xmlGetNoNsProp(eo, BAD_CAST "id");
	xmlChar *ss_id = ss ? xmlGetNoNsProp(ss, BAD_CAST "id") : NULL;
	struct copy_ctx c = {.m = m, .src_list = (xmlNode *)list, .de_src = (const char *)de_id,
			     .ss_src = (const char *)ss_id};
	m->de = copy_el(&c, eo, DE_ID, NULL);
	xmlAddChild(m->list, m->de);
	if (ss) {
		m->ss = copy_el(&c, ss, SS_ID, NULL);
		xmlAddChild(m->list, m->ss);
	}
	xmlFree(de_id);
	xmlFree(ss_id);
	xmlFreeDoc(md);
	return true;
}

/* Patient resolution ----------------------------------------------------------------------------------- */

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYYMMDD naming a real day: PostgreSQL's ::date must not fail on it (that would look like a DB error). */
static bool real_date(const char *d)
{
	if (strlen(d) != 8)
		return false;
	for (int i = 0; i < 8; i++)
		if (d[i] < '0' || d[i] > '9')
			return false;
	int y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
	int mo = (d[4] - '0') * 10 + (d[5] - '0'), day = (d[6] - '0') * 10 + (d[7] - '0');
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1000 || mo < 1 || mo > 12 || day < 1)
		return false;
	return day <= mdays[mo - 1] + (mo == 2 && leap(y));
}

/* pid known: *found and out = the active patient (a merged id followed to its survivor). */
static hie_err_t lookup_pid(PGconn *conn, const struct registry_pid *pid, bool *found, struct registry_pid *out)
{
	struct registry_patient p;
	*found = false;
	hie_err_t err = registry_patient_get(conn, pid, &p);
	if (err == HIE_ENOTFOUND || err == HIE_EINVAL)
		return HIE_OK;
	if (err)
		return err;
	const struct registry_pid *active = p.merged ? &p.merged_into : &p.pid;
	bool known = false;
	err = registry_patient_known(conn, active, &known);
	if (!err && known) {
		*found = true;
		*out = *active;
	}
	return err;
}

static hie_err_t lookup_cx(PGconn *conn, const char *cx, bool *found, struct registry_pid *out)
{
	struct registry_pid pid;
	*found = false;
	if (!cx || !*cx || registry_pid_parse(cx, strlen(cx), &pid))
		return HIE_OK;
	return lookup_pid(conn, &pid, found, out);
}

/* Exactly one active patient with these demographics (family/given case-insensitive). */
static hie_err_t lookup_demographics(PGconn *conn, const struct registry_cda *cda, bool *found,
				     struct registry_pid *out)
{
	*found = false;
	if (!cda->family[0] || !cda->given[0] || !cda->gender[0] || !real_date(cda->birth_date))
		return HIE_OK;
	const char *p[] = {cda->family, cda->given, cda->birth_date, cda->gender};
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(conn,
				    "SELECT oid, id FROM patients WHERE merged_into_oid IS NULL"
				    " AND lower(family) = lower($1) AND lower(given) = lower($2)"
				    " AND birth_date = $3::date AND gender = $4 LIMIT 2",
				    4, p, &res);
	if (!err && PQntuples(res) == 1) {
		snprintf(out->oid, sizeof out->oid, "%s", PQgetvalue(res, 0, 0));
		snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, 0, 1));
		*found = true;
	}
	PQclear(res);
	return err;
}

/* The CDA's recordTarget id i as a CX, or "" when it cannot be one. */
static void cda_pid_text(const struct registry_cda *cda, size_t i, char *out, size_t outlen)
{
	struct registry_pid pid;
	out[0] = '\0';
	if (snprintf(pid.id, sizeof pid.id, "%s", cda->pids[i].extension) >= (int)sizeof pid.id ||
	    snprintf(pid.oid, sizeof pid.oid, "%s", cda->pids[i].root) >= (int)sizeof pid.oid || !pid.id[0])
		return;
	char text[REGISTRY_PID_TEXT_MAX];
	registry_pid_format(&pid, text, sizeof text);
	struct registry_pid check;
	if (registry_pid_parse(text, strlen(text), &check) == HIE_OK)
		snprintf(out, outlen, "%s", text);
}

static hie_err_t resolve(struct imp *m, PGconn *conn, bool *found)
{
	*found = false;
	hie_err_t err = HIE_OK;
	if (m->de) {
		xmlChar *pid = extid_value(m->de, REGISTRY_UUID_DE_PATIENTID);
		if (!pid && m->ss)
			pid = extid_value(m->ss, REGISTRY_UUID_SS_PATIENTID);
		if (pid && registry_validate_cx((const char *)pid))
			snprintf(m->sender_pid, sizeof m->sender_pid, "%s", (const char *)pid);
		err = lookup_cx(conn, (const char *)pid, found, &m->local);
		xmlFree(pid);
		if (!err && !*found) {
			xmlChar *spid = slot_value(m->de, "sourcePatientId");
			err = lookup_cx(conn, (const char *)spid, found, &m->local);
			xmlFree(spid);
		}
	}
	for (size_t i = 0; m->cda && !err && i < m->cda->npids; i++) {
		char cx[REGISTRY_PID_TEXT_MAX];
		cda_pid_text(m->cda, i, cx, sizeof cx);
		if (!cx[0])
			continue;
		if (!m->cda_pid[0])
			snprintf(m->cda_pid, sizeof m->cda_pid, "%s", cx);
		if (*found)
			continue;
		err = lookup_cx(conn, cx, found, &m->local);
		if (!err && *found)
			snprintf(m->cda_pid, sizeof m->cda_pid, "%s", cx);
	}
	if (!err && !*found && m->cda)
		err = lookup_demographics(conn, m->cda, found, &m->local);
	if (!err && *found)
		registry_pid_format(&m->local, m->local_text, sizeof m->local_text);
	return err;
}

/* Filling --------------------------------------------------------------------------------------------- */

static void fill_code(struct imp *m, xmlNode *obj, const char *id, const char *scheme, const struct code *c)
{
	if (!has_cls(obj, scheme) && c->code[0] && c->scheme[0])
		add_cls(m, obj, id, scheme, c);
}

static hie_err_t fill_de(struct imp *m)
{
	const struct registry_bridge_cfg *b = &m->svc->bridge;
	const struct registry_cda *cda = m->cda;
	xmlNode *de = m->de;
	char now[15];
	registry_store_now(now);
	if (!xmlHasProp(de, BAD_CAST "objectType"))
		set_attr(de, "objectType", REGISTRY_UUID_DE_STABLE);
	if (!xmlHasProp(de, BAD_CAST "mimeType"))
		set_attr(de, "mimeType", m->in->mime_type && *m->in->mime_type ? m->in->mime_type
									  : cda ? "text/xml" : "application/octet-stream");

	/* Identity: the local patient everywhere; the sender's id kept as sourcePatientId. */
	set_extid(m, de, DE_ID, REGISTRY_UUID_DE_PATIENTID, m->local_text, "XDSDocumentEntry.patientId");
	xmlChar *spid = slot_value(de, "sourcePatientId");
	if (!spid || !registry_validate_cx((const char *)spid))
		set_slot(m, de, "sourcePatientId",
			 m->sender_pid[0] ? m->sender_pid : m->cda_pid[0] ? m->cda_pid : m->local_text);
	xmlFree(spid);
	xmlChar *uid = extid_value(de, REGISTRY_UUID_DE_UNIQUEID);
	if (!uid || !uid[0]) {
		char u[129];
		hie_err_t err = cda ? cda_unique_id(m, u, sizeof u) : oid_from_text(m->in->data, m->in->len, u, sizeof u);
		if (err) {
			xmlFree(uid);
			return err;
		}
		set_extid(m, de, DE_ID, REGISTRY_UUID_DE_UNIQUEID, u, "XDSDocumentEntry.uniqueId");
	}
	xmlFree(uid);

	if (!has_slot(de, "creationTime"))
		set_slot(m, de, "creationTime", cda && cda->effective_time[0] ? cda->effective_time : now);
	if (!has_slot(de, "languageCode"))
		set_slot(m, de, "languageCode",
			 cda && cda->language_code[0] ? cda->language_code
						      : cfg_text(b->language_code, REGISTRY_BRIDGE_DEF_LANGUAGE));
	if (cda && cda->service_start[0] && !has_slot(de, "serviceStartTime"))
		set_slot(m, de, "serviceStartTime", cda->service_start);
	if (cda && cda->service_stop[0] && !has_slot(de, "serviceStopTime"))
		set_slot(m, de, "serviceStopTime", cda->service_stop);
	if (cda && cda->title[0] && !find_child(de, "Name", NULL, NULL))
		insert_before(de, new_name(m, cda->title), AFTER_NAME);

	struct code type, cls, fmt, conf, c;
	if (cda && cda->code.code[0] && cda->code.scheme[0])
		from_cda(&type, &cda->code);
	else
		cfg_code(b->type_code, REGISTRY_BRIDGE_DEF_TYPE, &type);
	if (b->class_code[0])
		cfg_code(b->class_code, REGISTRY_BRIDGE_DEF_TYPE, &cls);
	else
		cls = type;
	if (cda)
		from_cda(&fmt, &cda->format);
	else
		parse_code("urn:ihe:iti:xds:2017:mimeTypeSufficient^^" REGISTRY_CDA_FORMAT_SCHEME "^mimeType Sufficient",
			   &fmt);
	if (cda && cda->confidentiality.code[0]) {
		from_cda(&conf, &cda->confidentiality);
		if (!conf.scheme[0])
			snprintf(conf.scheme, sizeof conf.scheme, "%s", CONF_SCHEME);
	} else {
		cfg_code(b->confidentiality_code, REGISTRY_BRIDGE_DEF_CONF, &conf);
	}
	fill_code(m, de, DE_ID, REGISTRY_UUID_DE_CLASSCODE, &cls);
	fill_code(m, de, DE_ID, REGISTRY_UUID_DE_TYPECODE, &type);
	fill_code(m, de, DE_ID, REGISTRY_UUID_DE_FORMATCODE, &fmt);
	fill_code(m, de, DE_ID, REGISTRY_UUID_DE_CONFCODE, &conf);
	cfg_code(b->hcft_code, REGISTRY_BRIDGE_DEF_HCFT, &c);
	fill_code(m, de, DE_ID, REGISTRY_UUID_DE_HCFTCODE, &c);
	cfg_code(b->practice_code, REGISTRY_BRIDGE_DEF_PRACTICE, &c);
	fill_code(m, de, DE_ID, REGISTRY_UUID_DE_PRACTICECODE, &c);
	if (cda && !has_cls(de, REGISTRY_UUID_DE_AUTHOR))
		for (size_t i = 0; i < cda->nauthors; i++)
			add_author(m, de, DE_ID, REGISTRY_UUID_DE_AUTHOR, "authorPerson", cda->authors[i]);
	m->type = type;
	return HIE_OK;
}

/* "^^Internet^addr" for a Direct address that can be one (no HL7 delimiters, printable). */
static bool telecom(const char *addr, char *out, size_t outlen)
{
	if (!addr || !*addr || !strchr(addr, '@') || strlen(addr) > 254)
		return false;
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("^&~\\|", *p))
			return false;
	snprintf(out, outlen, "^^Internet^%s", addr);
	return true;
}

static hie_err_t fill_ss(struct imp *m)
{
	const struct registry_bridge_cfg *b = &m->svc->bridge;
	xmlNode *ss = m->ss;
	char now[15], uid[64];
	registry_store_now(now);
	/* Always a new uniqueId: each document of an XDM package is registered in a SubmissionSet of its own. */
	hie_err_t err = oid_random(uid, sizeof uid);
	if (err)
		return err;
	set_extid(m, ss, SS_ID, REGISTRY_UUID_SS_UNIQUEID, uid, "XDSSubmissionSet.uniqueId");
	set_extid(m, ss, SS_ID, REGISTRY_UUID_SS_PATIENTID, m->local_text, "XDSSubmissionSet.patientId");
	xmlChar *src = extid_value(ss, REGISTRY_UUID_SS_SOURCEID);
	if (!src || !registry_validate_oid((const char *)src))
		set_extid(m, ss, SS_ID, REGISTRY_UUID_SS_SOURCEID, cfg_text(b->source_id, REGISTRY_BRIDGE_DEF_SOURCE_ID),
			  "XDSSubmissionSet.sourceId");
	xmlFree(src);
	xmlChar *st = slot_value(ss, "submissionTime");
	if (!st || !registry_validate_dtm((const char *)st))
		set_slot(m, ss, "submissionTime", now);
	xmlFree(st);
	fill_code(m, ss, SS_ID, REGISTRY_UUID_SS_CONTENTTYPE, &m->type);
	char tel[300];
	if (!has_cls(ss, REGISTRY_UUID_SS_AUTHOR) && telecom(m->in->source, tel, sizeof tel))
		add_author(m, ss, SS_ID, REGISTRY_UUID_SS_AUTHOR, "authorTelecommunication", tel);
	return HIE_OK;
}

/* Registration ---------------------------------------------------------------------------------------- */

/* The same uniqueId already registered with these bytes' hash and size: *same. */
static hie_err_t already_registered(PGconn *conn, const char *uid, const char *hash, size_t len, bool *same)
{
	*same = false;
	const char *p[] = {uid};
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(conn,
				    "SELECT hash, size::text FROM reg_documents WHERE unique_id = $1"
				    " ORDER BY version DESC LIMIT 1",
				    1, p, &res);
	if (!err && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1)) {
		char size[24];
		snprintf(size, sizeof size, "%zu", len);
		*same = strcasecmp(PQgetvalue(res, 0, 0), hash) == 0 && strcmp(PQgetvalue(res, 0, 1), size) == 0;
	}
	PQclear(res);
	return err;
}

/* Short reasons per code: the registry's own texts may quote patient ids. */
static const char *refusal_text(const char *code)
{
	static const struct {
		const char *code, *text;
	} t[] = {
		{REGISTRY_ERR_NONIDENT_HASH, "the uniqueId is registered with other content"},
		{REGISTRY_ERR_NONIDENT_SIZE, "the uniqueId is registered with another size"},
		{REGISTRY_ERR_UNKNOWN_PID, "the patient is not known to the registry"},
		{REGISTRY_ERR_PID_MISMATCH, "the uniqueId is registered for another patient"},
		{REGISTRY_ERR_DUP_UID_REG, "a uniqueId is already registered"},
		{REGISTRY_ERR_DUP_UID_MSG, "a uniqueId is used twice in the metadata"},
		{REGISTRY_ERR_DEPRECATED, "the document refers to a deprecated document"},
		{REGISTRY_ERR_OUT_OF_RESOURCES, "the document exceeds the registry's limits"},
		{REPO_ERR_OUT_OF_RESOURCES, "the document exceeds the repository's limits"},
		{REPO_ERR_METADATA, "the metadata's hash or size does not match the document"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strcmp(code, t[i].code) == 0)
			return t[i].text;
	return "the registry refused the metadata";
}

static bool mentions_patient(const char *text)
{
	for (const char *p = text; *p; p++)
		if (strncasecmp(p, "patient", 7) == 0)
			return true;
	return false;
}

static hie_err_t outcome_of(struct imp *m, const struct registry_response *r)
{
	if (!r->nerrors) {
		m->res->outcome = REGISTRY_IMPORT_REGISTERED;
		return HIE_OK;
	}
	const struct registry_error *e = NULL;
	for (size_t i = 0; i < r->n && !e; i++)
		if (r->errs[i].severity == REGISTRY_SEV_ERROR)
			e = &r->errs[i];
	const char *code = e ? e->code : REGISTRY_ERR_REGISTRY;
	/* The registration reports a database that failed as these two: the caller tries again later. */
	if (strcmp(code, REGISTRY_ERR_BUSY) == 0)
		return HIE_EBUSY;
	if (strcmp(code, REGISTRY_ERR_REGISTRY) == 0)
		return HIE_EDB;
	if (strcmp(code, REGISTRY_ERR_METADATA) == 0 && e->context && !mentions_patient(e->context)) {
		/* Which attribute is wrong helps the operator; the validator's texts name attributes, not people. */
		m->res->outcome = REGISTRY_IMPORT_REFUSED;
		snprintf(m->res->reason, sizeof m->res->reason, "%s: %.160s", code, e->context);
		return HIE_OK;
	}
	refuse(m, code, refusal_text(code));
	return HIE_OK;
}

static hie_err_t register_doc(struct imp *m, PGconn **conn)
{
	struct registry_ebrim_submission *s = NULL;
	struct registry_response r;
	registry_response_init(&r, 0);
	hie_err_t err = registry_ebrim_parse(xmlDocGetRootElement(m->doc), &s);
	if (err == HIE_EPARSE || err == HIE_ETOOBIG) {
		refuse(m, REGISTRY_ERR_METADATA, "the metadata could not be read");
		err = HIE_OK;
		goto out;
	}
	if (err)
		goto out;
	if (s->ndocs != 1 || !s->docs[0].unique_id) {
		refuse(m, REGISTRY_ERR_METADATA, "the DocumentEntry has no uniqueId");
		goto out;
	}
	snprintf(m->res->unique_id, sizeof m->res->unique_id, "%s", s->docs[0].unique_id);
	char hash[41];
	bool same = false;
	err = hie_digest_sha1_hex(m->in->data, m->in->len, hash);
	if (!err)
		err = already_registered(*conn, s->docs[0].unique_id, hash, m->in->len, &same);
	/* Registration takes connections of its own; do not hold one across it (a pool of 1 would deadlock). */
	hie_db_release(m->svc->pool, *conn, err != HIE_OK);
	*conn = NULL;
	if (err || same) {
		if (same)
			m->res->outcome = REGISTRY_IMPORT_REGISTERED;
		goto out;
	}
	struct registry_repo_doc d = {.de = s->docs[0].obj, .data = (const char *)m->in->data, .len = m->in->len};
	err = registry_repository_register(m->svc, s, &d, 1, &r);
	if (!err)
		err = outcome_of(m, &r);
out:
	registry_response_free(&r);
	registry_ebrim_free(s);
	return err;
}

static const char *outcome_name(enum registry_import_outcome o)
{
	return o == REGISTRY_IMPORT_REGISTERED ? "registered" : o == REGISTRY_IMPORT_PARKED ? "parked" : "refused";
}

hie_err_t registry_import(struct registry_service *svc, const struct registry_import *in,
			  struct registry_import_result *res)
{
	memset(res, 0, sizeof *res);
	if (!svc || !svc->pool || !in || (!in->data && in->len))
		return HIE_EINVAL;
	struct registry_cda cda;
	struct imp m = {.svc = svc, .in = in, .res = res};
	PGconn *conn = NULL;
	hie_err_t err = registry_cda_read(in->data, in->len, &cda);
	if (err == HIE_ENOMEM)
		return err;
	m.cda = err ? NULL : &cda;
	err = HIE_OK;
	bool has_md = in->metadata && in->metadata_len;
	if (!has_md && !m.cda) {
		park(&m, "no metadata and not a CDA document");
		goto done;
	}
	skeleton(&m);
	if (has_md && !from_metadata(&m))
		goto done;
	if (!m.de) {
		m.de = new_el(&m, "ExtrinsicObject");
		set_attr(m.de, "id", DE_ID);
		xmlAddChild(m.list, m.de);
	}
	add_ss_and_assoc(&m);

	err = hie_db_acquire(svc->pool, -1, &conn);
	if (err)
		goto done;
	bool found = false;
	err = resolve(&m, conn, &found);
	if (err)
		goto done;
	if (!found) {
		park(&m, "no patient matched");
		goto done;
	}
	err = fill_de(&m);
	if (!err)
		err = fill_ss(&m);
	if (!err)
		err = register_doc(&m, &conn);
done:
	if (conn)
		hie_db_release(svc->pool, conn, err == HIE_EDB);
	xmlFreeDoc(m.doc);
	if (!err)
		hie_log(res->outcome == REGISTRY_IMPORT_REGISTERED ? HIE_LOG_INFO : HIE_LOG_NOTICE,
			"event=registry.import outcome=%s cda=%s metadata=%s bytes=%zu", outcome_name(res->outcome),
			m.cda ? "yes" : "no", has_md ? "yes" : "no", in->len);
	else
		hie_log(HIE_LOG_WARN, "event=registry.import.retry err=%s", hie_errname(err));
	return err;
}
