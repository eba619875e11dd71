/*
 * registry_cda_test.c — the CDA header reader of the push-to-pull bridge (registry_cda.c): the NIST testkit's
 * C-CDA Ambulatory and Inpatient samples (header fields, recordTarget ids and demographics, authors, service
 * times with a time zone), HL7 TS → UTC DTM conversion (table), C-CDA 2.1 / 1.1 / generic formatCode and
 * nonXMLBody, missing fields, and hostile input (DOCTYPE with entities, not a CDA, wrong namespace, not XML,
 * over the size cap, too deep, over-long values dropped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_buf.h"
#include "registry/registry_cda.h"

#define XDR "testdata-xdr/"

static char *corpus_file(const char *rel, size_t *len)
{
	const char *src = getenv("HIENODE_SRC");
	char path[1024];
	snprintf(path, sizeof path, "%s/../shared/corpus/nist-toolkit/toolkitx/testkit/%s", src ? src : ".", rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct hie_buf b;
	hie_buf_init(&b, 8u << 20);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		hie_buf_add(&b, chunk, n);
	fclose(f);
	return hie_buf_steal(&b, len);
}

static hie_err_t read_str(const char *xml, struct registry_cda *c)
{
	return registry_cda_read(xml, strlen(xml), c);
}

static void test_ambulatory(void **state)
{
	(void)state;
	size_t len;
	char *xml = corpus_file(XDR "CCDA_Ambulatory_full_metadata/CCDA_Ambulatory.xml", &len);
	if (!xml)
		skip();
	struct registry_cda *c = calloc(1, sizeof *c);
	assert_int_equal(registry_cda_read(xml, len, c), HIE_OK);
	assert_string_equal(c->id.root, "1.1.1.1.1.1.1.1.1");
	assert_string_equal(c->id.extension, "Test CCDA");
	assert_string_equal(c->code.code, "34133-9");
	assert_string_equal(c->code.scheme, "2.16.840.1.113883.6.1");
	assert_string_equal(c->code.display, "Summarization of Episode Note");
	assert_string_equal(c->title, "Get Well Clinic: Health Summary");
	assert_string_equal(c->effective_time, "20120806");
	assert_string_equal(c->confidentiality.code, "N");
	assert_string_equal(c->confidentiality.scheme, "2.16.840.1.113883.5.25");
	assert_string_equal(c->language_code, "en-US");
	/* US Realm Header templateId without extension: C-CDA 1.1 */
	assert_string_equal(c->format.code, "urn:hl7-org:sdwg:ccda-structuredBody:1.1");
	assert_string_equal(c->format.scheme, REGISTRY_CDA_FORMAT_SCHEME);
	/* 201208060028+0500 .. 201208060058+0500 in UTC */
	assert_string_equal(c->service_start, "201208051928");
	assert_string_equal(c->service_stop, "201208051958");
	assert_int_equal(c->nauthors, 1);
	assert_string_equal(c->authors[0], "^Seven^Henry^^^");
	assert_int_equal(c->npids, 2);
	assert_string_equal(c->pids[0].root, "2.16.840.1.113883.4.6");
	assert_string_equal(c->pids[0].extension, "1");
	assert_string_equal(c->pids[1].extension, "123-101-5231");
	assert_string_equal(c->family, "Jones");
	assert_string_equal(c->given, "Isabella");
	assert_string_equal(c->birth_date, "19470501");
	assert_string_equal(c->gender, "F");
	free(c);
	free(xml);
}

static void test_inpatient(void **state)
{
	(void)state;
	size_t len;
	char *xml = corpus_file(XDR "CCDA_Inpatient_full_metadata/CCDA_Inpatient.xml", &len);
	if (!xml)
		skip();
	struct registry_cda *c = calloc(1, sizeof *c);
	assert_int_equal(registry_cda_read(xml, len, c), HIE_OK);
	assert_true(c->id.root[0] != '\0');
	assert_true(c->code.code[0] != '\0');
	assert_string_equal(c->code.scheme, "2.16.840.1.113883.6.1");
	assert_true(c->effective_time[0] != '\0');
	assert_true(c->npids >= 1);
	assert_true(c->family[0] != '\0');
	assert_int_equal(strlen(c->birth_date), 8);
	free(c);
	free(xml);
}

static void test_ts_table(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out; /* out NULL = refused */
	} cases[] = {
		{.in = "2012", .out = "2012"},
		{.in = "20120806", .out = "20120806"},
		{.in = "201208061230", .out = "201208061230"},
		{.in = "20120806123045", .out = "20120806123045"},
		{.in = "20120806123045.123", .out = "20120806123045"},
		{.in = "20120806123045.123+0000", .out = "20120806123045"},
		{.in = "201208060028+0500", .out = "201208051928"},
		{.in = "20200101003000-0130", .out = "20200101020000"},
		{.in = "20201231230000-0200", .out = "20210101010000"},
		{.in = "2012080600+0530", .out = "201208051830"},
		{.in = "2012080600+0500", .out = "2012080519"},
		{.in = "20120806+0500", .out = "20120806"},      /* a date: no hour to shift */
		{.in = "20160229", .out = "20160229"},
		{.in = "", .out = NULL},
		{.in = "20121", .out = NULL},
		{.in = "20121301", .out = NULL},
		{.in = "20120832", .out = NULL},
		{.in = "2012080625", .out = NULL},
		{.in = "20120806.5", .out = NULL},
		{.in = "20120806+05", .out = NULL},
		{.in = "20120806+1500x", .out = NULL},
		{.in = "201208061200+2400", .out = NULL},
		{.in = "2012-08-06", .out = NULL},
		{.in = " 20120806", .out = NULL},
		{.in = "201208061200123456789", .out = NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[15] = "x";
		bool ok = registry_cda_ts_to_dtm(cases[i].in, out);
		if (cases[i].out) {
			if (!ok || strcmp(out, cases[i].out) != 0)
				fail_msg("case %zu '%s': got %d '%s', want '%s'", i, cases[i].in, ok, out, cases[i].out);
		} else if (ok || out[0]) {
			fail_msg("case %zu '%s': accepted as '%s'", i, cases[i].in, out);
		}
	}
	char out[15];
	assert_false(registry_cda_ts_to_dtm(NULL, out));
}

static void test_format_codes(void **state)
{
	(void)state;
	static const struct {
		const char *xml, *format;
	} cases[] = {
		{"<ClinicalDocument xmlns='urn:hl7-org:v3'><templateId root='2.16.840.1.113883.10.20.22.1.1'"
		 " extension='2015-08-01'/><component><structuredBody/></component></ClinicalDocument>",
		 "urn:hl7-org:sdwg:ccda-structuredBody:2.1"},
		{"<ClinicalDocument xmlns='urn:hl7-org:v3'><templateId root='2.16.840.1.113883.10.20.22.1.1'/>"
		 "<templateId root='2.16.840.1.113883.10.20.22.1.1' extension='2015-08-01'/>"
		 "<component><nonXMLBody/></component></ClinicalDocument>",
		 "urn:hl7-org:sdwg:ccda-nonXMLBody:2.1"},
		{"<ClinicalDocument xmlns='urn:hl7-org:v3'><templateId root='2.16.840.1.113883.10.20.22.1.1'/>"
		 "</ClinicalDocument>",
		 "urn:hl7-org:sdwg:ccda-structuredBody:1.1"},
		{"<ClinicalDocument xmlns='urn:hl7-org:v3'><templateId root='1.3.6.1.4.1.19376.1.5.3.1.1.1'/>"
		 "</ClinicalDocument>",
		 "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
	};
	struct registry_cda c;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(read_str(cases[i].xml, &c), HIE_OK);
		assert_string_equal(c.format.code, cases[i].format);
		assert_string_equal(c.format.scheme, REGISTRY_CDA_FORMAT_SCHEME);
	}
}

static void test_missing_fields(void **state)
{
	(void)state;
	struct registry_cda c;
	assert_int_equal(read_str("<ClinicalDocument xmlns='urn:hl7-org:v3'/>", &c), HIE_OK);
	assert_string_equal(c.id.root, "");
	assert_string_equal(c.code.code, "");
	assert_string_equal(c.title, "");
	assert_string_equal(c.effective_time, "");
	assert_string_equal(c.confidentiality.code, "");
	assert_string_equal(c.language_code, "");
	assert_string_equal(c.service_start, "");
	assert_int_equal(c.nauthors, 0);
	assert_int_equal(c.npids, 0);
	assert_string_equal(c.family, "");
	assert_string_equal(c.birth_date, "");
	assert_string_equal(c.gender, "");
	assert_string_equal(c.format.code, "urn:ihe:iti:xds:2017:mimeTypeSufficient");

	/* Malformed values are dropped, not passed on: bad times, a bad birth date, an unknown gender, a code
	 * without a code attribute keeps no scheme, an author without a name is skipped. */
	assert_int_equal(read_str("<ClinicalDocument xmlns='urn:hl7-org:v3'><code codeSystem='2.16.840.1.113883.6.1'/>"
				  "<effectiveTime value='2012-08-06'/>"
				  "<author><assignedAuthor><id root='1.2'/></assignedAuthor></author>"
				  "<author><assignedAuthor><assignedPerson><name><given>A^B</given><family>C|D</family>"
				  "<prefix>Dr</prefix></name></assignedPerson></assignedAuthor></author>"
				  "<documentationOf><serviceEvent><effectiveTime value='20120806'/></serviceEvent>"
				  "</documentationOf>"
				  "<recordTarget><patientRole><id extension='x'/><id root='1.2.3' extension='P1'/>"
				  "<patient><name><given> Ann \n Marie </given><family>Doe</family></name>"
				  "<administrativeGenderCode code='X'/><birthTime value='1970'/></patient>"
				  "</patientRole></recordTarget></ClinicalDocument>",
				  &c),
			 HIE_OK);
	assert_string_equal(c.code.code, "");
	assert_string_equal(c.code.scheme, "");
	assert_string_equal(c.effective_time, "");
	assert_int_equal(c.nauthors, 1);
	assert_string_equal(c.authors[0], "^C D^A B^^^Dr"); /* HL7 delimiters cannot change the XCN */
	assert_string_equal(c.service_start, "20120806");
	assert_string_equal(c.service_stop, "");
	assert_int_equal(c.npids, 1); /* an id without root is no identifier */
	assert_string_equal(c.pids[0].root, "1.2.3");
	assert_string_equal(c.given, "Ann Marie");
	assert_string_equal(c.gender, "");
	assert_string_equal(c.birth_date, "");
}

static void test_hostile(void **state)
{
	(void)state;
	struct registry_cda c;
	/* A DOCTYPE (billion laughs / XXE) is refused before any entity is read. */
	assert_int_equal(read_str("<?xml version='1.0'?><!DOCTYPE ClinicalDocument [<!ENTITY a 'aaaa'>"
				  "<!ENTITY b '&a;&a;&a;&a;'>]><ClinicalDocument xmlns='urn:hl7-org:v3'>"
				  "<title>&b;</title></ClinicalDocument>",
				  &c),
			 HIE_EPARSE);
	assert_int_equal(read_str("<!DOCTYPE x SYSTEM 'file:///etc/passwd'><ClinicalDocument "
				  "xmlns='urn:hl7-org:v3'/>",
				  &c),
			 HIE_EPARSE);
	assert_int_equal(read_str("<ClinicalDocument/>", &c), HIE_EPARSE);              /* no namespace */
	assert_int_equal(read_str("<ClinicalDocument xmlns='urn:hl7-org:v2'/>", &c), HIE_EPARSE);
	assert_int_equal(read_str("<html xmlns='urn:hl7-org:v3'/>", &c), HIE_EPARSE);
	assert_int_equal(read_str("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", &c), HIE_EPARSE);
	assert_int_equal(read_str("<ClinicalDocument xmlns='urn:hl7-org:v3'>", &c), HIE_EPARSE);
	assert_int_equal(registry_cda_read(NULL, 0, &c), HIE_EPARSE);
	assert_int_equal(registry_cda_read("", 0, &c), HIE_EPARSE);

	/* Over the size cap: refused before parsing. */
	size_t big = REGISTRY_CDA_MAX_BYTES + 1;
	char *huge = malloc(big);
	assert_non_null(huge);
	memset(huge, ' ', big);
	memcpy(huge, "<ClinicalDocument xmlns='urn:hl7-org:v3'>", 41);
	assert_int_equal(registry_cda_read(huge, big, &c), HIE_ETOOBIG);
	free(huge);

	/* Too deep. */
	struct hie_buf b;
	hie_buf_init(&b, 1u << 20);
	hie_buf_addstr(&b, "<ClinicalDocument xmlns='urn:hl7-org:v3'>");
	for (int i = 0; i < 300; i++)
		hie_buf_addstr(&b, "<x>");
	for (int i = 0; i < 300; i++)
		hie_buf_addstr(&b, "</x>");
	hie_buf_addstr(&b, "</ClinicalDocument>");
	hie_err_t err = registry_cda_read(b.data, b.len, &c);
	assert_true(err == HIE_ETOOBIG || err == HIE_EPARSE);
	hie_buf_free(&b);

	/* A value longer than its field is dropped rather than cut. */
	hie_buf_init(&b, 1u << 20);
	hie_buf_addstr(&b, "<ClinicalDocument xmlns='urn:hl7-org:v3'><id root='");
	for (int i = 0; i < 200; i++)
		hie_buf_addstr(&b, "1.");
	hie_buf_addstr(&b, "1'/><title>ok</title></ClinicalDocument>");
	assert_int_equal(registry_cda_read(b.data, b.len, &c), HIE_OK);
	assert_string_equal(c.id.root, "");
	assert_string_equal(c.title, "ok");
	hie_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ambulatory),     cmocka_unit_test(test_inpatient), cmocka_unit_test(test_ts_table),
		cmocka_unit_test(test_format_codes),   cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
