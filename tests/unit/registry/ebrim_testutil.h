/*
 * ebrim_testutil.h — shared helpers of the registry ebRIM unit tests: NIST testkit files (templates filled
 * with fixed patient and unique ids), parsing into a submission, text mutation.
 */
#ifndef HIENODE_TEST_EBRIM_TESTUTIL_H
#define HIENODE_TEST_EBRIM_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_xml.h"
#include "registry/registry_ebrim.h"

#define TU_PID "P1^^^&amp;1.2.3&amp;ISO"
#define TU_PID_TEXT "P1^^^&1.2.3&ISO"

/* Whole file under the NIST testkit, or NULL when the corpus is not there. Caller frees. */
static char *tu_testkit_file(const char *rel)
{
	const char *src = getenv("HIENODE_SRC");
	char path[1024];
	snprintf(path, sizeof(path), "%s/../shared/corpus/nist-toolkit/toolkitx/testkit/%s", src ? src : ".", rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct hie_buf b;
	hie_buf_init(&b, 8u << 20);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (hie_buf_add(&b, chunk, n)) {
			fclose(f);
			hie_buf_free(&b);
			return NULL;
		}
	fclose(f);
	return hie_buf_steal(&b, NULL);
}

/* Replaces every occurrence (all = true) or the first one of `from` by `to`; frees s; caller frees. */
static char *tu_replace(char *s, const char *from, const char *to, int all)
{
	struct hie_buf b;
	hie_buf_init(&b, 16u << 20);
	const char *p = s, *hit;
	size_t fl = strlen(from);
	int done = 0;
	while ((hit = strstr(p, from)) && (all || !done)) {
		hie_buf_add(&b, p, (size_t)(hit - p));
		hie_buf_addstr(&b, to);
		p = hit + fl;
		done = 1;
	}
	hie_buf_addstr(&b, p);
	free(s);
	return hie_buf_steal(&b, NULL);
}

/* The runner's template variables and placeholder uniqueIds, filled with fixed values. */
static char *tu_fill(char *s)
{
	s = tu_replace(s, "$basePatientId$", TU_PID, 1);
	s = tu_replace(s, "$baseSourcePatientId$", "S1^^^&amp;1.2.4&amp;ISO", 1);
	s = tu_replace(s, "value=\"Document01\"", "value=\"1.2.3.4.1\"", 1);
	s = tu_replace(s, "value=\"Document02\"", "value=\"1.2.3.4.2\"", 1);
	s = tu_replace(s, "value=\"SubmissionSet01\"", "value=\"1.2.3.4.3\"", 1);
	s = tu_replace(s, "value=\"folder_uniqueid\"", "value=\"1.2.3.4.4\"", 1);
	return s;
}

/* The SubmitObjectsRequest of a document: the root or a child of the root (PnR wrapper). */
static xmlNode *tu_request(xmlDoc *doc)
{
	xmlNode *root = xmlDocGetRootElement(doc);
	if (hie_xml_is(root, REGISTRY_NS_LCM, "SubmitObjectsRequest"))
		return root;
	return hie_xml_child(root, REGISTRY_NS_LCM, "SubmitObjectsRequest");
}

/* Parses XML text into a submission; returns the parse error (HIE_EPARSE also for bad XML). */
static hie_err_t tu_parse(const char *xml, struct registry_ebrim_submission **out)
{
	xmlDoc *doc = NULL;
	*out = NULL;
	hie_err_t err = hie_xml_parse(xml, strlen(xml), NULL, &doc, NULL);
	if (err)
		return err;
	err = registry_ebrim_parse(tu_request(doc), out);
	xmlFreeDoc(doc); /* the submission holds its own copy */
	return err;
}

/*
 * A testkit submission, templates filled, parsed (the parse must succeed); NULL when the corpus is not there.
 * Needs cmocka included before this header. Free with registry_ebrim_free.
 */
static inline struct registry_ebrim_submission *tu_load(const char *rel)
{
	char *xml = tu_testkit_file(rel);
	if (!xml)
		return NULL;
	xml = tu_fill(xml);
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(xml, &s), HIE_OK);
	free(xml);
	return s;
}

#endif
