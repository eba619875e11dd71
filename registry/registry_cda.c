/*
 * registry_cda.c — reads the header of a CDA R2 document into DocumentEntry fields (registry_cda.h).
 *
 * Entry points: registry_cda_read, registry_cda_ts_to_dtm. Only direct header elements of ClinicalDocument
 * are read (no XPath over the body: a large document costs one parse). The parse is core_xml's (DOCTYPE
 * refused, no entity expansion, no network, capped). Text values are whitespace-collapsed; a value longer
 * than its field is dropped, not cut, so that a truncated code or id never reaches the registry.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "core/core_xml.h"
#include "registry/registry_cda.h"
#include "registry/registry_validate.h"

#define NS REGISTRY_CDA_NS

/* US Realm Header (C-CDA): without extension 1.1, with a dated extension R2.x. */
#define CCDA_US_REALM_HEADER "2.16.840.1.113883.10.20.22.1.1"

/* Copies s into out (whitespace runs collapsed to one space, trimmed); leaves out "" when it does not fit. */
static void put(char *out, size_t cap, const char *s)
{
	out[0] = '\0';
	if (!s)
		return;
	size_t n = 0;
	bool space = false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool ws = *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n';
		if (ws) {
			space = n > 0;
			continue;
		}
		if (*p < 0x20 || *p == 0x7f)
			continue;
		if (space) {
			if (n + 1 >= cap)
				goto too_long;
			out[n++] = ' ';
			space = false;
		}
		if (n + 1 >= cap)
			goto too_long;
		out[n++] = (char)*p;
	}
	out[n] = '\0';
	return;
too_long:
	out[0] = '\0';
}

static void attr(const xmlNode *el, const char *name, char *out, size_t cap)
{
	out[0] = '\0';
	if (!el)
		return;
	xmlChar *v = xmlGetNoNsProp(el, BAD_CAST name);
	put(out, cap, (const char *)v);
	xmlFree(v);
}

static void text(const xmlNode *el, char *out, size_t cap)
{
	out[0] = '\0';
	if (!el)
		return;
	xmlChar *v = xmlNodeGetContent(el);
	put(out, cap, (const char *)v);
	xmlFree(v);
}

static const xmlNode *child(const xmlNode *el, const char *local)
{
	return el ? hie_xml_child(el, NS, local) : NULL;
}

static void read_code(const xmlNode *el, struct registry_cda_code *c)
{
	attr(el, "code", c->code, sizeof c->code);
	attr(el, "codeSystem", c->scheme, sizeof c->scheme);
	attr(el, "displayName", c->display, sizeof c->display);
	if (!c->code[0])
		c->scheme[0] = c->display[0] = '\0';
}

static void read_ii(const xmlNode *el, struct registry_cda_ii *ii)
{
	attr(el, "root", ii->root, sizeof ii->root);
	attr(el, "extension", ii->extension, sizeof ii->extension);
}

static int num(const char *p, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

static size_t digits(const char *p)
{
	size_t n = 0;
	while (p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

bool registry_cda_ts_to_dtm(const char *ts, char out[15])
{
	out[0] = '\0';
	if (!ts)
		return false;
	size_t n = digits(ts);
	if (n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14)
		return false;
	const char *p = ts + n;
	if (*p == '.') { /* fractional seconds: only after the seconds */
		if (n != 14 || digits(p + 1) == 0)
			return false;
		p += 1 + digits(p + 1);
	}
	int sign = 0, off_h = 0, off_m = 0;
	if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (digits(p + 1) != 4)
			return false;
		off_h = num(p + 1, 2);
		off_m = num(p + 3, 2);
		if (off_h > 14 || off_m > 59)
			return false;
		p += 5;
	}
	if (*p)
		return false;
	char local[15];
	memcpy(local, ts, n);
	local[n] = '\0';
	if (!registry_validate_dtm(local))
		return false;
	if (!sign || n < 10) {
		memcpy(out, local, n + 1);
		return true;
	}
	struct tm tm = {
		.tm_year = num(local, 4) - 1900,
		.tm_mon = num(local + 4, 2) - 1,
		.tm_mday = num(local + 6, 2),
		.tm_hour = num(local + 8, 2),
		.tm_min = n >= 12 ? num(local + 10, 2) : 0,
		.tm_sec = n >= 14 ? num(local + 12, 2) : 0,
	};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	t -= (time_t)sign * ((time_t)off_h * 3600 + (time_t)off_m * 60);
	struct tm u;
	if (!gmtime_r(&t, &u) || u.tm_year + 1900 < 1000 || u.tm_year + 1900 > 9999)
		return false;
	char full[32];
	snprintf(full, sizeof full, "%04d%02d%02d%02d%02d%02d", u.tm_year + 1900, u.tm_mon + 1, u.tm_mday, u.tm_hour,
		 u.tm_min, u.tm_sec);
	size_t keep = n < 12 && off_m ? 12 : n;
	memcpy(out, full, keep);
	out[keep] = '\0';
	return true;
}

static void read_ts(const xmlNode *el, char out[15])
{
	char v[64];
	attr(el, "value", v, sizeof v);
	registry_cda_ts_to_dtm(v, out);
}

/* Name parts of an XCN / comparison: HL7 v2 delimiters would change the meaning of the text. */
static void clean_part(char *s)
{
	for (; *s; s++)
		if (*s == '^' || *s == '&' || *s == '~' || *s == '\\' || *s == '|')
			*s = ' ';
}

static void read_format(const xmlNode *root, struct registry_cda_code *f)
{
	const char *code = "urn:ihe:iti:xds:2017:mimeTypeSufficient", *display = "mimeType Sufficient";
	const xmlNode *el;
	int ccda = 0; /* 0 not C-CDA, 11, 21 */
	HIE_XML_FOREACH(el, root, NS, "templateId") {
		char r[128], ext[64];
		attr(el, "root", r, sizeof r);
		attr(el, "extension", ext, sizeof ext);
		if (strcmp(r, CCDA_US_REALM_HEADER) != 0)
			continue;
		int v = ext[0] ? 21 : 11;
		if (v > ccda)
			ccda = v;
	}
	const xmlNode *comp = child(root, "component");
	bool non_xml = comp && child(comp, "nonXMLBody") != NULL;
	if (ccda == 21) {
		code = non_xml ? "urn:hl7-org:sdwg:ccda-nonXMLBody:2.1" : "urn:hl7-org:sdwg:ccda-structuredBody:2.1";
		display = non_xml ? "C-CDA R2.1 unstructured document" : "C-CDA R2.1 structured document";
	} else if (ccda == 11) {
		code = non_xml ? "urn:hl7-org:sdwg:ccda-nonXMLBody:1.1" : "urn:hl7-org:sdwg:ccda-structuredBody:1.1";
		display = non_xml ? "C-CDA R1.1 unstructured document" : "C-CDA R1.1 structured document";
	}
	put(f->code, sizeof f->code, code);
	put(f->scheme, sizeof f->scheme, REGISTRY_CDA_FORMAT_SCHEME);
	put(f->display, sizeof f->display, display);
}

static void read_service(const xmlNode *root, struct registry_cda *c)
{
	const xmlNode *d;
	HIE_XML_FOREACH(d, root, NS, "documentationOf") {
		const xmlNode *et = child(child(d, "serviceEvent"), "effectiveTime");
		if (!et)
			continue;
		const xmlNode *low = child(et, "low"), *high = child(et, "high");
		if (low || high) {
			read_ts(low, c->service_start);
			read_ts(high, c->service_stop);
		} else {
			read_ts(et, c->service_start);
		}
		return;
	}
}

static void read_authors(const xmlNode *root, struct registry_cda *c)
{
	const xmlNode *a;
	HIE_XML_FOREACH(a, root, NS, "author") {
		if (c->nauthors >= REGISTRY_CDA_MAX_AUTHORS)
			return;
		const xmlNode *name = child(child(child(a, "assignedAuthor"), "assignedPerson"), "name");
		if (!name)
			continue;
		char family[100], given[100], prefix[40];
		text(child(name, "family"), family, sizeof family);
		text(child(name, "given"), given, sizeof given);
		text(child(name, "prefix"), prefix, sizeof prefix);
		clean_part(family);
		clean_part(given);
		clean_part(prefix);
		if (!family[0] && !given[0])
			continue;
		snprintf(c->authors[c->nauthors++], sizeof c->authors[0], "^%s^%s^^^%s", family, given, prefix);
	}
}

static void read_patient(const xmlNode *root, struct registry_cda *c)
{
	const xmlNode *role = child(child(root, "recordTarget"), "patientRole");
	if (!role)
		return;
	const xmlNode *el;
	HIE_XML_FOREACH(el, role, NS, "id") {
		if (c->npids >= REGISTRY_CDA_MAX_PIDS)
			break;
		struct registry_cda_ii *ii = &c->pids[c->npids];
		read_ii(el, ii);
		if (ii->root[0])
			c->npids++;
	}
	const xmlNode *pat = child(role, "patient");
	const xmlNode *name = child(pat, "name");
	text(child(name, "family"), c->family, sizeof c->family);
	text(child(name, "given"), c->given, sizeof c->given);
	char bt[64];
	attr(child(pat, "birthTime"), "value", bt, sizeof bt);
	if (digits(bt) >= 8) {
		memcpy(c->birth_date, bt, 8);
		c->birth_date[8] = '\0';
		if (!registry_validate_dtm(c->birth_date))
			c->birth_date[0] = '\0';
	}
	char g[8];
	attr(child(pat, "administrativeGenderCode"), "code", g, sizeof g);
	if (strcmp(g, "M") == 0 || strcmp(g, "F") == 0)
		put(c->gender, sizeof c->gender, g);
	else if (strcmp(g, "UN") == 0)
		put(c->gender, sizeof c->gender, "U");
}

hie_err_t registry_cda_read(const void *data, size_t len, struct registry_cda *out)
{
	memset(out, 0, sizeof *out);
	if (!data || !len)
		return HIE_EPARSE;
	const struct hie_xml_limits lim = {.max_bytes = REGISTRY_CDA_MAX_BYTES, .max_depth = 128};
	xmlDoc *doc = NULL;
	hie_err_t err = hie_xml_parse(data, len, &lim, &doc, NULL);
	if (err)
		return err;
	const xmlNode *root = xmlDocGetRootElement(doc);
	if (!hie_xml_is(root, NS, "ClinicalDocument")) {
		xmlFreeDoc(doc);
		return HIE_EPARSE;
	}
	read_ii(child(root, "id"), &out->id);
	read_code(child(root, "code"), &out->code);
	text(child(root, "title"), out->title, sizeof out->title);
	read_ts(child(root, "effectiveTime"), out->effective_time);
	read_code(child(root, "confidentialityCode"), &out->confidentiality);
	attr(child(root, "languageCode"), "code", out->language_code, sizeof out->language_code);
	read_format(root, &out->format);
	read_service(root, out);
	read_authors(root, out);
	read_patient(root, out);
	xmlFreeDoc(doc);
	return HIE_OK;
}
