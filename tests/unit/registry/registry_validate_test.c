/*
 * registry_validate_test.c — XDS.b registration rules on a real NIST submission (16102c: two
 * DocumentEntries, a SubmissionSet and a Folder), mutated once per rule; value checks; RegistryResponse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ebrim_testutil.h"
#include "registry/registry_validate.h"

#define TWO_DE_FD "tests/16102c/submit/two_de_fd.xml"
#define BOGUS "urn:uuid:00000000-0000-4000-8000-000000000000"

struct mutation {
	const char *from, *to;
};

struct rule_case {
	const char *name;
	struct mutation m[3];
	struct registry_validate_opts opts;
	const char *code;      /* NULL: must validate clean */
	const char *context;   /* substring the codeContext must hold */
};

static const struct rule_case rule_cases[] = {
	{ .name = "good" },
	{ .name = "classCode-missing", .m = { { "classificationScheme=\"urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a\"",
						 "classificationScheme=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "classCode is missing" },
	{ .name = "confidentialityCode-missing",
	  .m = { { "classificationScheme=\"urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f\"", "classificationScheme=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "confidentialityCode is missing" },
	{ .name = "formatCode-missing",
	  .m = { { "classificationScheme=\"urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d\"", "classificationScheme=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "formatCode is missing" },
	{ .name = "hcft-missing",
	  .m = { { "classificationScheme=\"urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1\"", "classificationScheme=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "healthcareFacilityTypeCode is missing" },
	{ .name = "practiceSetting-missing",
	  .m = { { "classificationScheme=\"urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead\"", "classificationScheme=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "practiceSettingCode is missing" },
	{ .name = "typeCode-twice",
	  .m = { { "classificationScheme=\"urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead\"",
		   "classificationScheme=\"urn:uuid:f0306f51-975f-434e-a61c-c59651d33983\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "typeCode appears 2 times" },
	{ .name = "code-without-scheme", .m = { { "<rim:Value>1.3.6.1.4.1.19376.1.2.6.1</rim:Value>", "" } },
	  .code = REGISTRY_ERR_METADATA, .context = "classCode 'REPORTS' needs" },
	{ .name = "creationTime-short", .m = { { "<rim:Value>20051224</rim:Value>", "<rim:Value>2005122</rim:Value>" } },
	  .code = REGISTRY_ERR_METADATA, .context = "creationTime '2005122'" },
	{ .name = "creationTime-month13", .m = { { "<rim:Value>20051224</rim:Value>", "<rim:Value>20051324</rim:Value>" } },
	  .code = REGISTRY_ERR_METADATA, .context = "creationTime '20051324'" },
	{ .name = "creationTime-two-values",
	  .m = { { "<rim:Value>20051224</rim:Value>", "<rim:Value>20051224</rim:Value><rim:Value>2006</rim:Value>" } },
	  .code = REGISTRY_ERR_METADATA, .context = "creationTime must have exactly one value" },
	{ .name = "serviceStartTime-bad", .m = { { "200412230800", "2004122308000" } },
	  .code = REGISTRY_ERR_METADATA, .context = "serviceStartTime" },
	{ .name = "languageCode-missing", .m = { { "name=\"languageCode\"", "name=\"languageCodeX\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "languageCode is missing" },
	{ .name = "sourcePatientId-bad", .m = { { "<rim:Value>LS1^^^&amp;1.2.4&amp;ISO</rim:Value>", "<rim:Value>LS1</rim:Value>" } },
	  .code = REGISTRY_ERR_METADATA, .context = "sourcePatientId 'LS1'" },
	{ .name = "uniqueId-bad", .m = { { "value=\"1.2.3.4.1\"", "value=\"abc\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "uniqueId 'abc'" },
	{ .name = "uniqueId-missing", .m = { { "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab", BOGUS } },
	  .code = REGISTRY_ERR_METADATA, .context = "uniqueId is missing" },
	{ .name = "mimeType-missing", .m = { { "mimeType=\"text/plain\"", "" } },
	  .code = REGISTRY_ERR_METADATA, .context = "mimeType is missing" },
	{ .name = "hash-bad", .m = { { "e543712c0e10501972de13a5bfcbe826c49feb75", "e543712c0e10501972de13a5bfcbe826c49feb7z" } },
	  .code = REGISTRY_ERR_METADATA, .context = "hash 'e543712c0e10501972de13a5bfcbe826c49feb7z'" },
	{ .name = "hash-missing-iti42", .m = { { "name=\"hash\"", "name=\"nohash\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "hash is missing" },
	{ .name = "hash-missing-iti41-ok", .m = { { "name=\"hash\"", "name=\"nohash\"" } },
	  .opts = { .provide_and_register = true } },
	{ .name = "size-bad", .m = { { "<rim:Value>4</rim:Value>", "<rim:Value>4a</rim:Value>" } },
	  .code = REGISTRY_ERR_METADATA, .context = "size '4a'" },
	{ .name = "repositoryUniqueId-missing", .m = { { "name=\"repositoryUniqueId\"", "name=\"x\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "repositoryUniqueId is missing" },
	{ .name = "duplicate-slot", .m = { { "name=\"URI\"", "name=\"hash\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "Slot hash appears more than once" },
	{ .name = "objectType-bad", .m = { { "objectType=\"urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1\"", "objectType=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "objectType" },
	{ .name = "patient-mismatch", .m = { { "value=\"" TU_PID "\"", "value=\"P2^^^&amp;1.2.3&amp;ISO\"" } },
	  .code = REGISTRY_ERR_PID_MISMATCH, .context = "patientId 'P2^^^&1.2.3&ISO'" },
	{ .name = "patientId-bad", .m = { { "value=\"" TU_PID "\"", "value=\"P1\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "patientId 'P1'" },
	{ .name = "duplicate-uniqueId", .m = { { "value=\"1.2.3.4.2\"", "value=\"1.2.3.4.1\"" } },
	  .code = REGISTRY_ERR_DUP_UID_MSG, .context = "uniqueId '1.2.3.4.1'" },
	{ .name = "duplicate-uniqueId-ss-folder", .m = { { "value=\"1.2.3.4.4\"", "value=\"1.2.3.4.3\"" } },
	  .code = REGISTRY_ERR_DUP_UID_MSG, .context = "uniqueId '1.2.3.4.3'" },
	{ .name = "no-submission-set",
	  .m = { { "classificationNode=\"urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd\"", "classificationNode=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "SubmissionSet: exactly one" },
	{ .name = "two-submission-sets",
	  .m = { { "classificationNode=\"urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2\"",
		   "classificationNode=\"urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "the submission has 2" },
	{ .name = "submissionTime-missing", .m = { { "name=\"submissionTime\"", "name=\"x\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "submissionTime is missing" },
	{ .name = "sourceId-missing", .m = { { "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", BOGUS } },
	  .code = REGISTRY_ERR_METADATA, .context = "sourceId is missing" },
	{ .name = "ss-uniqueId-ext", .m = { { "value=\"1.2.3.4.3\"", "value=\"1.2.3.4.3^x\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "uniqueId '1.2.3.4.3^x'" },
	{ .name = "contentTypeCode-optional",
	  .m = { { "classificationScheme=\"urn:uuid:aa543740-bdda-424e-8c96-df4873be8500\"", "classificationScheme=\"" BOGUS "\"" } } },
	{ .name = "contentTypeCode-required",
	  .m = { { "classificationScheme=\"urn:uuid:aa543740-bdda-424e-8c96-df4873be8500\"", "classificationScheme=\"" BOGUS "\"" } },
	  .opts = { .require_content_type = true }, .code = REGISTRY_ERR_METADATA, .context = "contentTypeCode is missing" },
	{ .name = "folder-codeList-missing",
	  .m = { { "classificationScheme=\"urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5\"", "classificationScheme=\"" BOGUS "\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "codeList is missing" },
	{ .name = "assoc-type-unknown",
	  .m = { { "AssociationType:HasMember", "AssociationType:Bogus" } },
	  .code = REGISTRY_ERR_METADATA, .context = "associationType 'urn:oasis:names:tc:ebxml-regrep:AssociationType:Bogus'" },
	{ .name = "assoc-type-2.1-short",
	  .m = { { "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember", "HasMember" } },
	  .code = REGISTRY_ERR_METADATA, .context = "associationType 'HasMember'" },
	{ .name = "assoc-update-type-iti42",
	  .m = { { "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember\"\n            id=\"ID_1795960102_5\"",
		   "urn:ihe:iti:2010:AssociationType:SubmitAssociation\" id=\"ID_1795960102_5\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "is not allowed" },
	{ .name = "ss-status-bad", .m = { { "<rim:Value>Original</rim:Value>", "<rim:Value>Copy</rim:Value>" } },
	  .code = REGISTRY_ERR_METADATA, .context = "SubmissionSetStatus 'Copy'" },
	{ .name = "ss-status-missing", .m = { { "name=\"SubmissionSetStatus\"", "name=\"x\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "SubmissionSetStatus slot is missing" },
	{ .name = "assoc-target-dangling", .m = { { "targetObject=\"Document02\"", "targetObject=\"Nowhere\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "targetObject 'Nowhere'" },
	{ .name = "assoc-source-missing", .m = { { "sourceObject=\"Folder\"", "" } },
	  .code = REGISTRY_ERR_METADATA, .context = "sourceObject is missing" },
	{ .name = "doc-not-member",
	  .m = { { "<rim:Association targetObject=\"Document01\" sourceObject=\"SubmissionSet01\"",
		   "<rim:Association targetObject=\"Document01\" sourceObject=\"Folder\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "no HasMember Association from the SubmissionSet" },
	{ .name = "rplc-source-not-doc",
	  .m = { { "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember\"\n            id=\"ID_1795960102_5\"",
		   "urn:ihe:iti:2007:AssociationType:RPLC\" id=\"ID_1795960102_5\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "sourceObject 'Folder' of RPLC" },
	{ .name = "duplicate-object-id", .m = { { "id=\"Folder\"", "id=\"Document02\"" } },
	  .code = REGISTRY_ERR_METADATA, .context = "id 'Document02' is used by more than one object" },
};

static char *good_xml(void)
{
	char *xml = tu_testkit_file(TWO_DE_FD);
	return xml ? tu_fill(xml) : NULL;
}

static void run_case(const struct rule_case *c, const char *base)
{
	char *xml = strdup(base);
	for (size_t k = 0; k < 3 && c->m[k].from; k++) {
		if (!strstr(xml, c->m[k].from))
			fail_msg("%s: mutation %zu does not apply", c->name, k);
		xml = tu_replace(xml, c->m[k].from, c->m[k].to, 0);
	}
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(xml, &s), HIE_OK);
	struct registry_response r;
	registry_response_init(&r, 0);
	assert_int_equal(registry_validate_submission(s, &c->opts, &r), HIE_OK);
	if (!c->code) {
		if (r.n)
			fail_msg("%s: unexpected %s: %s", c->name, r.errs[0].code, r.errs[0].context);
	} else {
		bool found = false;
		for (size_t i = 0; i < r.n && !found; i++)
			found = strcmp(r.errs[i].code, c->code) == 0 && strstr(r.errs[i].context, c->context);
		if (!found) {
			for (size_t i = 0; i < r.n; i++)
				print_message("  %s: %s\n", r.errs[i].code, r.errs[i].context);
			fail_msg("%s: no %s with context \"%s\" among %zu", c->name, c->code, c->context, r.n);
		}
	}
	registry_response_free(&r);
	registry_ebrim_free(s);
	free(xml);
}

static void test_rules(void **state)
{
	(void)state;
	char *base = good_xml();
	if (!base)
		skip();
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++)
		run_case(&rule_cases[i], base);
	free(base);
}

/* All errors are collected, and after assign_ids the submission still validates. */
static void test_collects_all_and_after_ids(void **state)
{
	(void)state;
	char *xml = good_xml();
	if (!xml)
		skip();
	char *bad = tu_replace(strdup(xml), "mimeType=\"text/plain\"", "", 1);          /* both DEs */
	bad = tu_replace(bad, "name=\"submissionTime\"", "name=\"x\"", 0);
	bad = tu_replace(bad, "<rim:Value>20051224</rim:Value>", "<rim:Value>x</rim:Value>", 1);
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(bad, &s), HIE_OK);
	struct registry_response r;
	registry_response_init(&r, 0);
	assert_int_equal(registry_validate_submission(s, NULL, &r), HIE_OK);
	assert_int_equal(r.n, 5);
	assert_int_equal(r.nerrors, 5);
	registry_response_free(&r);
	registry_ebrim_free(s);
	/* Capped: the rest is counted. */
	assert_int_equal(tu_parse(bad, &s), HIE_OK);
	registry_response_init(&r, 2);
	assert_int_equal(registry_validate_submission(s, NULL, &r), HIE_OK);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.dropped, 3);
	struct hie_buf b;
	hie_buf_init(&b, 1u << 20);
	assert_int_equal(registry_response_build(&r, REGISTRY_STATUS_AUTO, &b), HIE_OK);
	assert_non_null(strstr(hie_buf_str(&b), "3 further errors not listed"));
	hie_buf_free(&b);
	registry_response_free(&r);
	registry_ebrim_free(s);
	free(bad);

	assert_int_equal(tu_parse(xml, &s), HIE_OK);
	assert_int_equal(registry_ebrim_assign_ids(s, NULL, NULL, NULL), HIE_OK);
	registry_response_init(&r, 0);
	assert_int_equal(registry_validate_submission(s, NULL, &r), HIE_OK);
	assert_int_equal(r.n, 0);
	registry_response_free(&r);
	registry_ebrim_free(s);
	free(xml);
}

struct value_case {
	bool (*fn)(const char *);
	const char *v;
	bool ok;
};

static void test_values(void **state)
{
	(void)state;
	static const struct value_case cases[] = {
		{ registry_validate_dtm, "2005", true }, { registry_validate_dtm, "200512", true },
		{ registry_validate_dtm, "20051224", true }, { registry_validate_dtm, "20051224235959", true },
		{ registry_validate_dtm, "200", false }, { registry_validate_dtm, "2005122", false },
		{ registry_validate_dtm, "20051200", false }, { registry_validate_dtm, "2005122424", false },
		{ registry_validate_dtm, "200512242360", false }, { registry_validate_dtm, "2005-12-24", false },
		{ registry_validate_dtm, "200512242359591", false }, { registry_validate_dtm, "", false },
		{ registry_validate_oid, "1.2.3", true }, { registry_validate_oid, "2.16.840.1.113883.6.1", true },
		{ registry_validate_oid, "1..2", false }, { registry_validate_oid, "1.02", false },
		{ registry_validate_oid, "1.2.", false }, { registry_validate_oid, "a.b", false },
		{ registry_validate_oid, "1.0.3", true }, { registry_validate_oid, NULL, false },
		{ registry_validate_uid, "1.2.3^abc", true }, { registry_validate_uid, "1.2.3^", false },
		{ registry_validate_uid, "1.2.3^a^b", false }, { registry_validate_uid, "x^abc", false },
		{ registry_validate_cx, "P1^^^&1.2.3&ISO", true }, { registry_validate_cx, "P1^^^&1.2.3&ISOX", false },
		{ registry_validate_cx, "^^^&1.2.3&ISO", false }, { registry_validate_cx, "P 1^^^&1.2.3&ISO", false },
		{ registry_validate_cx, "P1^^^&&ISO", false }, { registry_validate_cx, "P1", false },
		{ registry_validate_hash, "e543712c0e10501972de13a5bfcbe826c49feb75", true },
		{ registry_validate_hash, "E543712C0E10501972DE13A5BFCBE826C49FEB75", true },
		{ registry_validate_hash, "e543712c0e10501972de13a5bfcbe826c49feb7", false },
		{ registry_validate_size, "0", true }, { registry_validate_size, "-1", false },
		{ registry_validate_size, "12345678901234567890", false }, { registry_validate_size, "", false },
	};
	char uid129[140];
	memset(uid129, '1', 129);
	uid129[129] = '\0';
	assert_false(registry_validate_uid(uid129));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (cases[i].fn(cases[i].v) != cases[i].ok)
			fail_msg("case %zu '%s': want %d", i, cases[i].v ? cases[i].v : "(null)", cases[i].ok);
}

static void test_response_build(void **state)
{
	(void)state;
	struct registry_response r;
	struct hie_buf b;
	registry_response_init(&r, 0);
	hie_buf_init(&b, 1u << 20);
	assert_int_equal(registry_response_build(&r, REGISTRY_STATUS_AUTO, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "<rs:RegistryResponse xmlns:rs=\"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0\" "
					     "status=\"urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success\"/>");
	hie_buf_reset(&b);
	assert_int_equal(registry_response_add(&r, REGISTRY_SEV_WARNING, REGISTRY_ERR_EXTRA_METADATA, NULL, "w"), HIE_OK);
	assert_int_equal(registry_response_build(&r, REGISTRY_STATUS_AUTO, &b), HIE_OK);
	assert_non_null(strstr(hie_buf_str(&b), "ResponseStatusType:Success"));
	assert_non_null(strstr(hie_buf_str(&b), "highestSeverity=\"urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning\""));
	hie_buf_reset(&b);
	assert_int_equal(registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_METADATA, "Doc<1>",
					       "bad \"<&>' \x01 value"), HIE_OK);
	assert_int_equal(registry_response_build(&r, REGISTRY_STATUS_AUTO, &b), HIE_OK);
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(b.data, b.len, NULL, &doc, NULL), HIE_OK);
	static const struct hie_xml_ns ns[] = { { "rs", REGISTRY_NS_RS }, { NULL, NULL } };
	struct hie_buf v;
	hie_buf_init(&v, 4096);
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "/rs:RegistryResponse/@status", ns, &v), HIE_OK);
	assert_string_equal(hie_buf_str(&v), REGISTRY_STATUS_FAILURE_URN);
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "//rs:RegistryError[2]/@codeContext", ns, &v), HIE_OK);
	assert_string_equal(hie_buf_str(&v), "bad \"<&>' ? value");
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "//rs:RegistryError[2]/@location", ns, &v), HIE_OK);
	assert_string_equal(hie_buf_str(&v), "Doc<1>");
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "//rs:RegistryError[2]/@severity", ns, &v), HIE_OK);
	assert_string_equal(hie_buf_str(&v), REGISTRY_SEVERITY_ERROR_URN);
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "//rs:RegistryErrorList/@highestSeverity", ns, &v), HIE_OK);
	assert_string_equal(hie_buf_str(&v), REGISTRY_SEVERITY_ERROR_URN);
	xmlFreeDoc(doc);
	hie_buf_free(&v);
	hie_buf_reset(&b);
	assert_int_equal(registry_response_build(&r, REGISTRY_STATUS_PARTIAL, &b), HIE_OK);
	assert_non_null(strstr(hie_buf_str(&b), REGISTRY_STATUS_PARTIAL_URN));
	assert_non_null(registry_response_find(&r, REGISTRY_ERR_METADATA));
	assert_null(registry_response_find(&r, REGISTRY_ERR_PID_MISMATCH));
	/* Output cap. */
	struct hie_buf small;
	hie_buf_init(&small, 64);
	assert_int_equal(registry_response_build(&r, REGISTRY_STATUS_AUTO, &small), HIE_ETOOBIG);
	hie_buf_free(&small);
	hie_buf_free(&b);
	registry_response_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_collects_all_and_after_ids),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_response_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
