/*
 * registry_import_test.c — the push-to-pull bridge's registry side (registry_import.c) against a real
 * embedded PostgreSQL, with the NIST testkit's C-CDA samples and their ebRIM 2.1 XDM metadata:
 * plain CDA with its patient known by a recordTarget id (REGISTERED; FindDocuments finds it; the repository
 * holds identical bytes with the right hash), the same import again (REGISTERED, still one entry), unknown
 * patient (PARKED, no patient data in the reason), patient found by demographics, two patients with the same
 * demographics (PARKED), XDM 2.1 metadata + its CDA (REGISTERED under the local id, sender's sourcePatientId
 * kept), metadata whose patient is merged (the survivor), a PDF without metadata (PARKED), metadata naming a
 * uniqueId already registered with other bytes (REFUSED XDSNonIdenticalHash), unusable metadata (REFUSED).
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/core_jobs.h"
#include "registry/registry.h"
#include "registry/registry_query.h"

#define XDR "testdata-xdr/"
#define AMB XDR "CCDA_Ambulatory_full_metadata/"
#define INP XDR "CCDA_Inpatient_full_metadata/"
#define REPO_UID "1.3.6.1.4.1.21367.13.20.1000.1"
#define LOCAL_PID "1^^^&2.16.840.1.113883.4.6&ISO"

static struct pgtest T;
static struct hie_db_pool *P;
static struct registry_service SVC;
static char *AMB_CDA, *INP_CDA, *AMB_MD;
static size_t AMB_LEN, INP_LEN, AMB_MD_LEN;

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

/* Replaces every `from` by `to`; frees s. */
static char *replace(char *s, const char *from, const char *to)
{
	struct hie_buf b;
	hie_buf_init(&b, 16u << 20);
	const char *p = s, *hit;
	while ((hit = strstr(p, from))) {
		hie_buf_add(&b, p, (size_t)(hit - p));
		hie_buf_addstr(&b, to);
		p = hit + strlen(from);
	}
	hie_buf_addstr(&b, p);
	free(s);
	return hie_buf_steal(&b, NULL);
}

/* The NIST 2.1 metadata with the sender's patient id and a document uniqueId filled in. */
static char *metadata(const char *sender_pid_xml, const char *doc_uid)
{
	if (!AMB_MD)
		return NULL;
	char *s = strdup(AMB_MD);
	s = replace(s, "$patientid$", sender_pid_xml);
	s = replace(s, "value=\"Document01\"", doc_uid);
	return replace(s, "value=\"SubmissionSet01\"", "value=\"1.2.3.4.99.1\"");
}

static int group_setup(void **state)
{
	(void)state;
	AMB_CDA = corpus_file(AMB "CCDA_Ambulatory.xml", &AMB_LEN);
	INP_CDA = corpus_file(INP "CCDA_Inpatient.xml", &INP_LEN);
	AMB_MD = corpus_file(AMB "single_doc.xml", &AMB_MD_LEN);
	memset(&SVC, 0, sizeof SVC);
	snprintf(SVC.repository_uid, sizeof SVC.repository_uid, "%s", REPO_UID);
	SVC.max_query_results = 100;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {registry_migrations, registry_migrations_count}};
	int rc = pgtest_open(&T, 2, schema, 2, &P);
	SVC.pool = P;
	return rc;
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	free(AMB_CDA);
	free(INP_CDA);
	free(AMB_MD);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (T.skip || !P)
		return 0;
	return pgtest_exec(P, "TRUNCATE reg_documents, reg_packages, reg_associations, reg_extra, repo_documents,"
			      " patients") ? -1 : 0;
}

#define NEED()                                                                                                     \
	do {                                                                                                       \
		if (T.skip || !AMB_CDA || !INP_CDA || !AMB_MD)                                                     \
			skip();                                                                                    \
	} while (0)

static void sql(const char *q)
{
	assert_int_equal(pgtest_exec(P, q), HIE_OK);
}

static long long count(const char *q, const char *param)
{
	return pgtest_scalar(P, q, param);
}

static void sql_text(const char *q, const char *param, char *out, size_t outlen)
{
	PGconn *c;
	PGresult *r = NULL;
	out[0] = '\0';
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	const char *p[] = {param};
	hie_err_t err = hie_db_exec(c, q, param ? 1 : 0, p, &r);
	if (!err && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	hie_db_release(P, c, false);
	assert_int_equal(err, HIE_OK);
}

static struct registry_import_result import(const void *data, size_t len, const char *mime, const char *md)
{
	const struct registry_import in = {
		.data = data,
		.len = len,
		.mime_type = mime,
		.metadata = md,
		.metadata_len = md ? strlen(md) : 0,
		.entry_id = md ? "Document01" : NULL,
		.source = "doctor@direct.example.org",
	};
	struct registry_import_result r;
	assert_int_equal(registry_import(&SVC, &in, &r), HIE_OK);
	return r;
}

#define ASSERT_OUTCOME(r, o)                                                                                       \
	do {                                                                                                       \
		if ((r).outcome != (o))                                                                            \
			fail_msg("outcome %d, want %d (reason '%s')", (int)(r).outcome, (int)(o), (r).reason);     \
	} while (0)

/* FindDocuments for the patient: the response text (caller frees). */
static char *find_documents(const char *pid)
{
	char req[2048];
	snprintf(req, sizeof req,
		 "<query:AdhocQueryRequest xmlns:query='urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0'"
		 " xmlns:rim='urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0'>"
		 "<query:ResponseOption returnComposedObjects='true' returnType='LeafClass'/>"
		 "<rim:AdhocQuery id='urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d'>"
		 "<rim:Slot name='$XDSDocumentEntryPatientId'><rim:ValueList><rim:Value>'%s'</rim:Value>"
		 "</rim:ValueList></rim:Slot>"
		 "<rim:Slot name='$XDSDocumentEntryStatus'><rim:ValueList>"
		 "<rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value>"
		 "</rim:ValueList></rim:Slot></rim:AdhocQuery></query:AdhocQueryRequest>",
		 pid);
	char *escaped = replace(strdup(req), "&", "&amp;");
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(escaped, strlen(escaped), NULL, &doc, NULL), HIE_OK);
	struct hie_buf out;
	hie_buf_init(&out, 16u << 20);
	assert_int_equal(registry_query_run(P, 100, xmlDocGetRootElement(doc), &out), HIE_OK);
	xmlFreeDoc(doc);
	free(escaped);
	return hie_buf_steal(&out, NULL);
}

static size_t occurrences(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void sha1_hex(const void *data, size_t len, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n;
	assert_true(EVP_Digest(data, len, md, &n, EVP_sha1(), NULL));
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Tests ----------------------------------------------------------------------------------------------- */

static void test_plain_cda_registered_found_retrieved(void **state)
{
	(void)state;
	NEED();
	sql("INSERT INTO patients (oid, id) VALUES ('2.16.840.1.113883.4.6', '1')");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", NULL);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REGISTERED);
	/* ClinicalDocument/id extension "Test CCDA" is no XDS uniqueId: a 2.25 OID derived from it. */
	assert_true(strncmp(r.unique_id, "2.25.", 5) == 0);

	char *resp = find_documents(LOCAL_PID);
	assert_non_null(strstr(resp, "ResponseStatusType:Success"));
	assert_int_equal(occurrences(resp, r.unique_id), 1);
	assert_non_null(strstr(resp, "34133-9"));                                   /* typeCode from code */
	assert_non_null(strstr(resp, "urn:hl7-org:sdwg:ccda-structuredBody:1.1")); /* formatCode */
	assert_non_null(strstr(resp, "Get Well Clinic: Health Summary"));         /* title */
	assert_non_null(strstr(resp, "201208051928"));                            /* serviceStartTime, UTC */
	assert_non_null(strstr(resp, "^Seven^Henry^^^"));                        /* authorPerson */
	free(resp);

	char hash[41], got[64];
	sha1_hex(AMB_CDA, AMB_LEN, hash);
	sql_text("SELECT hash FROM repo_documents WHERE unique_id = $1", r.unique_id, got, sizeof got);
	assert_string_equal(got, hash);
	sql_text("SELECT hash FROM reg_documents WHERE unique_id = $1", r.unique_id, got, sizeof got);
	assert_string_equal(got, hash);
	sql_text("SELECT repository_unique_id FROM repo_documents WHERE unique_id = $1", r.unique_id, got, sizeof got);
	assert_string_equal(got, REPO_UID);
	/* Identical bytes in the repository. */
	PGconn *c;
	PGresult *res = NULL;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	const char *p[] = {r.unique_id};
	hie_err_t err = hie_db_exec_bin(c, "SELECT content FROM repo_documents WHERE unique_id = $1", 1, p, NULL, NULL,
					1, &res);
	bool same = !err && PQntuples(res) == 1 && (size_t)PQgetlength(res, 0, 0) == AMB_LEN &&
		    memcmp(PQgetvalue(res, 0, 0), AMB_CDA, AMB_LEN) == 0;
	PQclear(res);
	hie_db_release(P, c, false);
	assert_int_equal(err, HIE_OK);
	assert_true(same);

	/* The bridge job may run twice: same outcome, still one entry and one stored document. */
	struct registry_import_result again = import(AMB_CDA, AMB_LEN, "text/xml", NULL);
	ASSERT_OUTCOME(again, REGISTRY_IMPORT_REGISTERED);
	assert_string_equal(again.unique_id, r.unique_id);
	assert_int_equal(count("SELECT count(*) FROM reg_documents WHERE unique_id = $1", r.unique_id), 1);
	assert_int_equal(count("SELECT count(*) FROM repo_documents", NULL), 1);
	assert_int_equal(count("SELECT count(*) FROM reg_packages WHERE kind = 'SubmissionSet'", NULL), 1);
}

static void test_unknown_patient_parked(void **state)
{
	(void)state;
	NEED();
	sql("INSERT INTO patients (oid, id, family, given, birth_date, gender) VALUES"
	    " ('1.2.3.9', 'OTHER', 'Jones', 'Isabella', '1947-05-02', 'F')");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", NULL);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_PARKED);
	assert_string_equal(r.reason, "no patient matched");
	assert_null(strstr(r.reason, "Jones"));
	assert_int_equal(count("SELECT count(*) FROM reg_documents", NULL), 0);
	assert_int_equal(count("SELECT count(*) FROM repo_documents", NULL), 0);
}

static void test_demographics(void **state)
{
	(void)state;
	NEED();
	/* Exactly one match (family and given in another case): registered under that patient. */
	sql("INSERT INTO patients (oid, id, family, given, birth_date, gender) VALUES"
	    " ('1.2.3.9', 'DEMO1', 'JONES', 'isabella', '1947-05-01', 'F'),"
	    " ('1.2.3.9', 'DEMO2', 'Jones', 'Isabella', '1947-05-01', 'M')");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", NULL);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REGISTERED);
	char pid[200];
	sql_text("SELECT patient_id FROM reg_documents WHERE unique_id = $1", r.unique_id, pid, sizeof pid);
	assert_string_equal(pid, "DEMO1^^^&1.2.3.9&ISO");
	/* The CDA's own id is kept as sourcePatientId. */
	assert_int_equal(count("SELECT count(*) FROM reg_documents WHERE unique_id = $1"
			       " AND xml LIKE '%1^^^&amp;2.16.840.1.113883.4.6&amp;ISO%'",
			       r.unique_id),
			 1);
}

static void test_demographics_ambiguous(void **state)
{
	(void)state;
	NEED();
	sql("INSERT INTO patients (oid, id, family, given, birth_date, gender) VALUES"
	    " ('1.2.3.9', 'DEMO1', 'Jones', 'Isabella', '1947-05-01', 'F'),"
	    " ('1.2.3.8', 'DEMO9', 'Jones', 'Isabella', '1947-05-01', 'F')");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", NULL);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_PARKED);
	assert_string_equal(r.reason, "no patient matched");
	assert_int_equal(count("SELECT count(*) FROM reg_documents", NULL), 0);
}

static void test_xdm_metadata_21(void **state)
{
	(void)state;
	NEED();
	/* The sender's patient id is unknown here; the CDA's recordTarget id is ours. */
	sql("INSERT INTO patients (oid, id) VALUES ('2.16.840.1.113883.4.6', '1')");
	char *md = metadata("PX9^^^&amp;1.2.3.7&amp;ISO", "value=\"1.2.3.4.5.6.1\"");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", md);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REGISTERED);
	assert_string_equal(r.unique_id, "1.2.3.4.5.6.1");
	char got[200];
	sql_text("SELECT patient_id FROM reg_documents WHERE unique_id = $1", r.unique_id, got, sizeof got);
	assert_string_equal(got, LOCAL_PID);
	sql_text("SELECT patient_id FROM reg_packages WHERE kind = 'SubmissionSet'", NULL, got, sizeof got);
	assert_string_equal(got, LOCAL_PID);
	/* The metadata's own codes stay (classCode "History and Physical"), its sourcePatientId too. */
	sql_text("SELECT class_code FROM reg_documents WHERE unique_id = $1", r.unique_id, got, sizeof got);
	assert_string_equal(got, "History and Physical^^Connect-a-thon classCodes");
	assert_int_equal(count("SELECT count(*) FROM reg_documents WHERE unique_id = $1 AND xml LIKE '%89765a87b%'",
			       r.unique_id),
			 1);
	char *resp = find_documents(LOCAL_PID);
	assert_int_equal(occurrences(resp, "1.2.3.4.5.6.1"), 1);
	free(resp);
	assert_int_equal(count("SELECT count(*) FROM repo_documents WHERE unique_id = '1.2.3.4.5.6.1'", NULL), 1);
	free(md);
}

static void test_xdm_metadata_merged_patient(void **state)
{
	(void)state;
	NEED();
	sql("INSERT INTO patients (oid, id) VALUES ('1.2.3.7', 'SURV')");
	sql("INSERT INTO patients (oid, id, merged_into_oid, merged_into_id) VALUES ('1.2.3.7', 'OLD', '1.2.3.7', 'SURV')");
	char *md = metadata("OLD^^^&amp;1.2.3.7&amp;ISO", "value=\"1.2.3.4.5.6.2\"");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", md);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REGISTERED);
	char got[200];
	sql_text("SELECT patient_id FROM reg_documents WHERE unique_id = $1", r.unique_id, got, sizeof got);
	assert_string_equal(got, "SURV^^^&1.2.3.7&ISO");
	free(md);
}

static void test_pdf_without_metadata_parked(void **state)
{
	(void)state;
	NEED();
	sql("INSERT INTO patients (oid, id) VALUES ('2.16.840.1.113883.4.6', '1')");
	static const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
	struct registry_import_result r = import(pdf, sizeof pdf - 1, "application/pdf", NULL);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_PARKED);
	assert_string_equal(r.reason, "no metadata and not a CDA document");
	assert_int_equal(count("SELECT count(*) FROM reg_documents", NULL), 0);
}

static void test_pdf_with_metadata(void **state)
{
	(void)state;
	NEED();
	/* Not a CDA, but with metadata whose patient is known: registered, [bridge] defaults fill the rest. */
	sql("INSERT INTO patients (oid, id) VALUES ('1.2.3.7', 'PX9')");
	char *md = metadata("PX9^^^&amp;1.2.3.7&amp;ISO", "value=\"1.2.3.4.5.6.4\"");
	md = replace(md, "mimeType=\"text/xml\"", "mimeType=\"application/pdf\"");
	static const char pdf[] = "%PDF-1.4\n%%EOF\n";
	struct registry_import_result r = import(pdf, sizeof pdf - 1, "application/pdf", md);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REGISTERED);
	char got[200];
	sql_text("SELECT mime_type FROM repo_documents WHERE unique_id = $1", r.unique_id, got, sizeof got);
	assert_string_equal(got, "application/pdf");
	free(md);
}

static void test_non_identical_hash_refused(void **state)
{
	(void)state;
	NEED();
	sql("INSERT INTO patients (oid, id) VALUES ('2.16.840.1.113883.4.6', '1')");
	char *md = metadata("PX9^^^&amp;1.2.3.7&amp;ISO", "value=\"1.2.3.4.5.6.3\"");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", md);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REGISTERED);
	/* The same metadata (same uniqueId) with other bytes. */
	sql("INSERT INTO patients (oid, id) VALUES ('1.2.3.7', 'PX9')");
	r = import(INP_CDA, INP_LEN, "text/xml", md);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REFUSED);
	assert_true(strncmp(r.reason, "XDSNonIdenticalHash", strlen("XDSNonIdenticalHash")) == 0);
	assert_int_equal(count("SELECT count(*) FROM reg_documents", NULL), 1);
	assert_int_equal(count("SELECT count(*) FROM repo_documents", NULL), 1);
	free(md);
}

static void test_bad_metadata_refused(void **state)
{
	(void)state;
	NEED();
	sql("INSERT INTO patients (oid, id) VALUES ('2.16.840.1.113883.4.6', '1')");
	struct registry_import_result r = import(AMB_CDA, AMB_LEN, "text/xml", "<notmetadata/>");
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REFUSED);
	r = import(AMB_CDA, AMB_LEN, "text/xml", "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>");
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REFUSED);
	/* entry_id names no ExtrinsicObject */
	char *md = metadata("PX9^^^&amp;1.2.3.7&amp;ISO", "value=\"1.2.3.4.5.6.5\"");
	md = replace(md, "id=\"Document01\"", "id=\"Other\"");
	r = import(AMB_CDA, AMB_LEN, "text/xml", md);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REFUSED);
	free(md);
	/* a uniqueId that is not one: the registry's validation refuses it */
	md = metadata("PX9^^^&amp;1.2.3.7&amp;ISO", "value=\"not an oid\"");
	r = import(AMB_CDA, AMB_LEN, "text/xml", md);
	ASSERT_OUTCOME(r, REGISTRY_IMPORT_REFUSED);
	assert_true(strncmp(r.reason, "XDSRegistryMetadataError", 24) == 0);
	free(md);
	assert_int_equal(count("SELECT count(*) FROM reg_documents", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_plain_cda_registered_found_retrieved, setup),
		cmocka_unit_test_setup(test_unknown_patient_parked, setup),
		cmocka_unit_test_setup(test_demographics, setup),
		cmocka_unit_test_setup(test_demographics_ambiguous, setup),
		cmocka_unit_test_setup(test_xdm_metadata_21, setup),
		cmocka_unit_test_setup(test_xdm_metadata_merged_patient, setup),
		cmocka_unit_test_setup(test_pdf_without_metadata_parked, setup),
		cmocka_unit_test_setup(test_pdf_with_metadata, setup),
		cmocka_unit_test_setup(test_non_identical_hash_refused, setup),
		cmocka_unit_test_setup(test_bad_metadata_refused, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
