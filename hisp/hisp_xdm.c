/*
 * hisp_xdm.c — what the XDM builder and reader share: recognizing a zip, walking ebRIM metadata (3.0 and 2.1),
 * reading and setting slots, the SHA-1 "hash" value, file extensions, and freeing a package read back.
 *
 * Entry points: hisp_xdm_is_zip, hisp_xdm_free (hisp_edge.h); the helpers of hisp_xdm_int.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/core_xml.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_xdm_int.h"

bool hisp_xdm_is_zip(const void *data, size_t len)
{
	/* A local file header first (APPNOTE 4.3.7): an empty archive has none and is no package. */
	return data && len >= 30 && memcmp(data, "PK\x03\x04", 4) == 0;
}

const char *hisp_xdm_rim_ns(const xmlNode *sor)
{
	if (hie_xml_is(sor, XDM_NS_LCM3, "SubmitObjectsRequest"))
		return XDM_NS_RIM3;
	if (hie_xml_is(sor, XDM_NS_RS21, "SubmitObjectsRequest"))
		return XDM_NS_RIM21;
	return NULL;
}

static void collect(xmlNode *n, const char *rim, xmlNode **v, size_t max, size_t *count)
{
	for (xmlNode *c = n->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (hie_xml_is(c, rim, "ExtrinsicObject")) {
			if (*count < max)
				v[*count] = c;
			(*count)++;
			continue;
		}
		/* The depth is bounded by the safe parser's limit (or by our own builder). */
		collect(c, rim, v, max, count);
	}
}

size_t hisp_xdm_extrinsics(xmlNode *root, const char *rim, xmlNode **v, size_t max)
{
	size_t count = 0;
	if (root)
		collect(root, rim, v, max, &count);
	return count;
}

static bool attr_is(const xmlNode *n, const char *name, const char *value)
{
	xmlChar *a = xmlGetNoNsProp(n, (const xmlChar *)name);
	bool yes = a && strcmp((const char *)a, value) == 0;
	xmlFree(a);
	return yes;
}

static xmlNode *find_id(xmlNode *n, const char *rim, const char *id)
{
	for (xmlNode *c = n->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (hie_xml_is(c, rim, "ExtrinsicObject")) {
			if (attr_is(c, "id", id))
				return c;
			continue;
		}
		xmlNode *f = find_id(c, rim, id);
		if (f)
			return f;
	}
	return NULL;
}

xmlNode *hisp_xdm_find_extrinsic(xmlNode *root, const char *rim, const char *id)
{
	return root && id ? find_id(root, rim, id) : NULL;
}

static xmlNode *find_slot(const xmlNode *obj, const char *rim, const char *name)
{
	xmlNode *s;
	HIE_XML_FOREACH(s, obj, rim, "Slot")
	{
		if (attr_is(s, "name", name))
			return s;
	}
	return NULL;
}

hie_err_t hisp_xdm_slot(const xmlNode *obj, const char *rim, const char *name, struct hie_buf *out)
{
	xmlNode *s = find_slot(obj, rim, name);
	xmlNode *vl = s ? hie_xml_child(s, rim, "ValueList") : NULL;
	xmlNode *v = vl ? hie_xml_child(vl, rim, "Value") : NULL;
	if (!v)
		return HIE_ENOTFOUND;
	return hie_xml_text(v, out);
}

hie_err_t hisp_xdm_uri(const xmlNode *eo, const char *rim, struct hie_buf *out)
{
	xmlNode *s = find_slot(eo, rim, "URI");
	xmlNode *vl = s ? hie_xml_child(s, rim, "ValueList") : NULL;
	xmlNode *v;
	size_t n = 0;
	if (!vl)
		return HIE_ENOTFOUND;
	HIE_XML_FOREACH(v, vl, rim, "Value") n++;
	if (n == 0)
		return HIE_ENOTFOUND;
	if (n == 1)
		return hie_xml_text(hie_xml_child(vl, rim, "Value"), out);

	/* The long form: "k|text" for k = 1..n; values may come in any order. */
	struct hie_buf t;
	hie_buf_init(&t, 4096);
	hie_err_t err = HIE_OK;
	for (size_t k = 1; k <= n && !err; k++) {
		bool found = false;
		HIE_XML_FOREACH(v, vl, rim, "Value")
		{
			hie_buf_reset(&t);
			err = hie_xml_text(v, &t);
			if (err)
				break;
			char *end = NULL;
			long idx = strtol(hie_buf_str(&t), &end, 10);
			if (end && *end == '|' && end != hie_buf_str(&t) && idx == (long)k) {
				err = hie_buf_addstr(out, end + 1);
				found = true;
				break;
			}
		}
		if (!err && !found)
			err = HIE_EPARSE;
	}
	hie_buf_free(&t);
	return err;
}

hie_err_t hisp_xdm_external_id(const xmlNode *obj, const char *rim, const char *scheme, struct hie_buf *out)
{
	xmlNode *e;
	HIE_XML_FOREACH(e, obj, rim, "ExternalIdentifier")
	{
		if (attr_is(e, "identificationScheme", scheme))
			return hie_xml_attr(e, NULL, "value", out);
	}
	return HIE_ENOTFOUND;
}

static void drop_children(xmlNode *n)
{
	xmlNode *c = n->children;
	while (c) {
		xmlNode *next = c->next;
		xmlUnlinkNode(c);
		xmlFreeNode(c);
		c = next;
	}
}

hie_err_t hisp_xdm_slot_set(xmlNode *obj, const char *name, const char *value)
{
	xmlNs *ns = obj->ns;
	const char *rim = ns ? (const char *)ns->href : NULL;
	xmlNode *slot = NULL, *last_slot = NULL, *first_other = NULL;

	for (xmlNode *c = obj->children, *next; c; c = next) {
		next = c->next;
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (!hie_xml_is(c, rim, "Slot")) {
			if (!first_other)
				first_other = c;
			continue;
		}
		if (attr_is(c, "name", name)) {
			if (slot) { /* a second slot of the same name is invalid: keep one */
				xmlUnlinkNode(c);
				xmlFreeNode(c);
				continue;
			}
			slot = c;
		}
		last_slot = c;
	}
	if (slot) {
		drop_children(slot);
	} else {
		slot = xmlNewNode(ns, (const xmlChar *)"Slot");
		if (!slot)
			return HIE_ENOMEM;
		if (!xmlSetProp(slot, (const xmlChar *)"name", (const xmlChar *)name)) {
			xmlFreeNode(slot);
			return HIE_ENOMEM;
		}
		if (last_slot)
			xmlAddNextSibling(last_slot, slot);
		else if (first_other)
			xmlAddPrevSibling(first_other, slot);
		else
			xmlAddChild(obj, slot);
	}
	xmlNode *vl = xmlNewChild(slot, ns, (const xmlChar *)"ValueList", NULL);
	/* xmlNewTextChild escapes the value (xmlNewChild would take it as markup). */
	if (!vl || !xmlNewTextChild(vl, ns, (const xmlChar *)"Value", (const xmlChar *)value))
		return HIE_ENOMEM;
	return HIE_OK;
}

const char *hisp_xdm_ext(const char *mime_type)
{
	static const struct {
		const char *type;
		const char *ext;
	} map[] = {
		{"text/xml", "XML"},         {"application/xml", "XML"},     {"application/pdf", "PDF"},
		{"text/plain", "TXT"},       {"text/html", "HTM"},           {"image/jpeg", "JPG"},
		{"image/png", "PNG"},        {"image/tiff", "TIF"},          {"image/gif", "GIF"},
		{"application/rtf", "RTF"},  {"text/rtf", "RTF"},            {"application/dicom", "DCM"},
		{"application/x-hl7", "HL7"}, {"application/hl7-v2", "HL7"}, {"application/json", "JSN"},
	};
	if (!mime_type)
		return "BIN";
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcasecmp(mime_type, map[i].type) == 0)
			return map[i].ext;
	size_t n = strlen(mime_type);
	if (n > 4 && strcasecmp(mime_type + n - 4, "+xml") == 0)
		return "XML";
	return "BIN";
}

void hisp_xdm_free(struct hisp_xdm *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->ndocs; i++) {
		struct hisp_xdm_doc *d = &x->docs[i];
		free((void *)d->entry_id);
		free((void *)d->unique_id);
		free((void *)d->mime_type);
		free((void *)d->path);
		free((void *)d->data);
	}
	free(x->docs);
	if (x->metadata_doc)
		xmlFreeDoc(x->metadata_doc);
	free(x->metadata);
	free(x);
}
