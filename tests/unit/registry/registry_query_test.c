/*
 * registry_query_test.c — ITI-18 stored queries against a real embedded PostgreSQL: a fixture of two patients
 * (DocumentEntries of every status and type, SubmissionSets, a Folder, HasMember/RPLC associations and an
 * extra Classification) written straight into the migration-2 tables, then all fourteen queries in both
 * return types; the parameter rules (required, single-valued, either/or, code and time formats, unknown
 * parameters ignored); AND of ORs; time ranges at several precisions; author LIKE patterns; XDSTooManyResults;
 * XDSResultNotSinglePatient; a database that is down; hostile values (quotes, injection text, non-UTF-8,
 * 10,000 values, too many values, empty slot).
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_jobs.h"
#include "core/core_xml.h"
#include "registry/registry.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_query.h"

static struct pgtest T;
static struct hie_db_pool *P;

#define RIM "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
#define APPROVED "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
#define DEPRECATED "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
#define HASMEMBER "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
#define RPLC "urn:ihe:iti:2007:AssociationType:RPLC"
#define PID1 "P1^^^&1.2.3&ISO"
#define PID2 "P2^^^&1.2.3&ISO"
#define PID1_XML "P1^^^&amp;1.2.3&amp;ISO"
#define PID2_XML "P2^^^&amp;1.2.3&amp;ISO"

#define Q_FD "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
#define Q_FDREF "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492"
#define Q_FSS "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
#define Q_FF "urn:uuid:958f3006-baad-4929-a4de-ff1114824431"
#define Q_ALL "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3"
#define Q_GD "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
#define Q_GF "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4"
#define Q_GA "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
#define Q_GDA "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a"
#define Q_GSS "urn:uuid:51224314-5390-4169-9b91-b1980040715a"
#define Q_GSSC "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83"
#define Q_GFC "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7"
#define Q_GFFD "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578"
#define Q_GRD "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6"

/* Fixture -------------------------------------------------------------------------------------------------- */

static void exec_params(const char *sql, int n, const char *const *p)
{
	PGconn *c;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	hie_err_t err = hie_db_exec(c, sql, n, p, NULL);
	hie_db_release(P, c, false);
	assert_int_equal(err, HIE_OK);
}

static void doc(const char *id, const char *pid, const char *status, const char *on_demand, const char *uid,
		const char *cls, const char *conf, const char *event, const char *authors, const char *refs,
		const char *ctime, const char *start, const char *stop)
{
	char xml[512], uuid[64];
	snprintf(uuid, sizeof uuid, "urn:uuid:%s", id);
	snprintf(xml, sizeof xml,
		 "<rim:ExtrinsicObject xmlns:rim=\"" RIM "\" id=\"%s\" lid=\"%s\" mimeType=\"text/plain\""
		 " objectType=\"urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1\"/>",
		 uuid, uuid);
	const char *p[] = {uuid, status, on_demand, pid, uid, cls, conf, event, authors, refs, ctime, start, stop, xml};
	exec_params("INSERT INTO reg_documents (uuid, lid, status, on_demand, patient_id, unique_id, mime_type,"
		    " class_code, conf_codes, event_codes, author_persons, reference_ids, creation_time,"
		    " service_start_time, service_stop_time, xml) VALUES ($1, $1, $2, $3::boolean, $4, $5, 'text/plain',"
		    " $6, $7::text[], $8::text[], $9::text[], $10::text[], $11, $12, $13, $14)",
		    14, p);
}

static void pkg(const char *id, const char *kind, const char *pid, const char *uid, const char *source,
		const char *time, const char *codes, const char *authors)
{
	char xml[512], uuid[64];
	snprintf(uuid, sizeof uuid, "urn:uuid:%s", id);
	snprintf(xml, sizeof xml, "<rim:RegistryPackage xmlns:rim=\"" RIM "\" id=\"%s\" lid=\"%s\"/>", uuid, uuid);
	bool ss = strcmp(kind, "SubmissionSet") == 0;
	const char *p[] = {uuid, kind, pid, uid, source, ss ? time : NULL, ss ? NULL : time, codes, authors, xml};
	exec_params("INSERT INTO reg_packages (uuid, lid, kind, status, patient_id, unique_id, source_id,"
		    " submission_time, last_update_time, codes, author_persons, xml) VALUES ($1, $1, $2, '" APPROVED
		    "', $3, $4, $5, $6, $7, $8::text[], $9::text[], $10)",
		    10, p);
}

static void assoc(const char *id, const char *type, const char *src, const char *dst)
{
	char xml[512], uuid[64], s[64], d[64];
	snprintf(uuid, sizeof uuid, "urn:uuid:%s", id);
	snprintf(s, sizeof s, "urn:uuid:%s", src);
	snprintf(d, sizeof d, "urn:uuid:%s", dst);
	snprintf(xml, sizeof xml,
		 "<rim:Association xmlns:rim=\"" RIM "\" id=\"%s\" associationType=\"%s\" sourceObject=\"%s\""
		 " targetObject=\"%s\"/>",
		 uuid, type, s, d);
	const char *p[] = {uuid, type, s, d, xml};
	exec_params("INSERT INTO reg_associations (uuid, lid, type, source, target, status, xml)"
		    " VALUES ($1, $1, $2, $3, $4, '" APPROVED "', $5)",
		    5, p);
}

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {registry_migrations, registry_migrations_count}};
	if (pgtest_open(&T, 4, schema, 2, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	/*       id    patient status      od   uid    class     conf                event              authors                        refs     creation          start        stop */
	doc("D1", PID1, APPROVED, "f", "1.1", "c1^^s", "{N^^cs,R^^cs}", "{e1^^es,e2^^es}", "{\"^Ford^Harrison\",Smith_J}",
	    "{\"r1^^^&1.2&ISO^urn:ihe:iti:xds:2013:uniqueId\"}", "20041124", "200411240800", "20041124");
	doc("D2", PID1, APPROVED, "f", "1.2", "c2^^s", "{N^^cs}", "{e1^^es}", "{\"Jones%\",\"a\\\\b\"}", "{}",
	    "20041224093000", "2004122409", NULL);
	doc("D3", PID1, DEPRECATED, "f", "1.3", "c1^^s", "{}", "{}", "{}", "{}", "20050101", NULL, NULL);
	doc("D4", PID1, APPROVED, "t", "1.4", "c1^^s", "{}", "{}", "{}", "{}", NULL, NULL, NULL);
	doc("D5", PID2, APPROVED, "f", "2.1", "c1^^s", "{}", "{}", "{}", "{}", "20041124", NULL, NULL);
	pkg("SS1", "SubmissionSet", PID1, "ss.1", "src1", "20041125", "{ct^^s}", "{\"Dr X\"}");
	pkg("F1", "Folder", PID1, "f.1", NULL, "20041126", "{fc1^^s,fc2^^s}", "{}");
	pkg("SS2", "SubmissionSet", PID2, "ss.2", "src2", "20041125", "{ct^^s}", "{}");
	assoc("A1", HASMEMBER, "SS1", "D1");
	assoc("A2", HASMEMBER, "SS1", "D2");
	assoc("A3", HASMEMBER, "SS1", "F1");
	assoc("A4", HASMEMBER, "F1", "D1");
	assoc("A5", HASMEMBER, "SS1", "A4");
	assoc("A6", RPLC, "D2", "D3");
	assoc("A7", HASMEMBER, "SS2", "D5");
	const char *x[] = {"urn:uuid:X1", "urn:uuid:D1",
			   "<rim:Classification xmlns:rim=\"" RIM "\" id=\"urn:uuid:X1\" classifiedObject=\"urn:uuid:D1\""
			   " classificationNode=\"urn:uuid:n\"/>"};
	exec_params("INSERT INTO reg_extra (uuid, owner, xml) VALUES ($1, $2, $3)", 3, x);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	return 0;
}

/* Requests ------------------------------------------------------------------------------------------------- */

/*
 * A request: id, return type, then pairs of (slot name, raw Value text), NULL-terminated. A name starting with
 * '+' adds the value as another rim:Value of the previous slot.
 */
static char *request(const char *id, const char *rt, ...)
{
	struct hie_buf b;
	hie_buf_init(&b, 64u << 20);
	hie_buf_addf(&b,
		     "<query:AdhocQueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0\""
		     " xmlns:rim=\"" RIM "\"><query:ResponseOption returnComposedObjects=\"true\" returnType=\"%s\"/>"
		     "<rim:AdhocQuery id=\"%s\">",
		     rt, id);
	va_list ap;
	va_start(ap, rt);
	const char *name;
	bool open = false;
	while ((name = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);
		if (name[0] != '+') {
			if (open)
				hie_buf_addstr(&b, "</rim:ValueList></rim:Slot>");
			hie_buf_addf(&b, "<rim:Slot name=\"%s\"><rim:ValueList>", name);
			open = true;
		}
		hie_buf_addstr(&b, "<rim:Value>");
		hie_buf_add_xml(&b, value, strlen(value));
		hie_buf_addstr(&b, "</rim:Value>");
	}
	va_end(ap);
	if (open)
		hie_buf_addstr(&b, "</rim:ValueList></rim:Slot>");
	hie_buf_addstr(&b, "</rim:AdhocQuery></query:AdhocQueryRequest>");
	return hie_buf_steal(&b, NULL);
}

/* What came back: status (short), first error code, and the ids (without urn:uuid:) in document order. */
struct outcome {
	char status[32];
	char code[64];
	char ids[4096];
	char sorted[4096];
	int nerr;
	char *xml;
};

static const struct hie_xml_ns NS[] = {{"query", "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"},
				       {"rim", RIM},
				       {"rs", "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"},
				       {NULL, NULL}};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void outcome_free(struct outcome *o)
{
	free(o->xml);
	o->xml = NULL;
}

/* Runs a request XML text (freed) through registry_query_run on pool p with the cap, reads the response. */
static struct outcome run_on(struct hie_db_pool *p, size_t max, char *req)
{
	struct outcome o;
	memset(&o, 0, sizeof o);
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(req, strlen(req), NULL, &doc, NULL), HIE_OK);
	free(req);
	struct hie_buf out;
	hie_buf_init(&out, 256u << 20);
	assert_int_equal(registry_query_run(p, max, xmlDocGetRootElement(doc), &out), HIE_OK);
	xmlFreeDoc(doc);
	/* The response must stand alone: it parses by itself and every prefix it uses is declared. */
	xmlDoc *rd = NULL;
	if (hie_xml_parse(out.data, out.len, NULL, &rd, NULL) != HIE_OK)
		fail_msg("response does not parse: %.300s", out.data);
	xmlNode *root = xmlDocGetRootElement(rd);
	assert_true(hie_xml_is(root, "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0", "AdhocQueryResponse"));
	struct hie_buf s;
	hie_buf_init(&s, 1024);
	assert_int_equal(hie_xml_attr(root, NULL, "status", &s), HIE_OK);
	const char *st = strrchr(hie_buf_str(&s), ':');
	snprintf(o.status, sizeof o.status, "%s", st ? st + 1 : "?");
	hie_buf_free(&s);
	struct hie_xml_nodes errs = {0}, objs = {0};
	assert_int_equal(hie_xml_xpath(rd, NULL, "/query:AdhocQueryResponse/rs:RegistryErrorList/rs:RegistryError", NS,
				       &errs),
			 HIE_OK);
	o.nerr = (int)errs.n;
	if (errs.n) {
		struct hie_buf c;
		hie_buf_init(&c, 256);
		hie_xml_attr(errs.nodes[0], NULL, "errorCode", &c);
		snprintf(o.code, sizeof o.code, "%s", hie_buf_str(&c));
		hie_buf_free(&c);
	}
	assert_int_equal(hie_xml_xpath(rd, NULL, "/query:AdhocQueryResponse/rim:RegistryObjectList/*", NS, &objs),
			 HIE_OK);
	const char *ids[512];
	char idbuf[512][64];
	size_t n = 0, len = 0;
	for (size_t i = 0; i < objs.n && n < 512; i++) {
		struct hie_buf id;
		hie_buf_init(&id, 256);
		hie_xml_attr(objs.nodes[i], NULL, "id", &id);
		const char *v = hie_buf_str(&id);
		if (strncmp(v, "urn:uuid:", 9) == 0)
			v += 9;
		snprintf(idbuf[n], sizeof idbuf[n], "%s", v);
		ids[n] = idbuf[n];
		int w = snprintf(o.ids + len, sizeof o.ids - len, "%s%s", len ? "," : "", idbuf[n]);
		if (w > 0 && (size_t)w < sizeof o.ids - len)
			len += (size_t)w;
		n++;
		hie_buf_free(&id);
	}
	qsort(ids, n, sizeof *ids, cmp_str);
	len = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(o.sorted + len, sizeof o.sorted - len, "%s%s", len ? "," : "", ids[i]);
		if (w > 0 && (size_t)w < sizeof o.sorted - len)
			len += (size_t)w;
	}
	hie_xml_nodes_free(&errs);
	hie_xml_nodes_free(&objs);
	xmlFreeDoc(rd);
	o.xml = hie_buf_steal(&out, NULL);
	return o;
}

static struct outcome run(char *req)
{
	return run_on(P, 100, req);
}

/* Expects status and the sorted id list ("" = none); code = first error code or NULL. */
#define EXPECT(req, st, ids_sorted, errcode)                                                                  \
	do {                                                                                                  \
		struct outcome o_ = run(req);                                                                 \
		if (strcmp(o_.status, (st)) != 0 || strcmp(o_.sorted, (ids_sorted)) != 0 ||                   \
		    ((errcode) && strcmp(o_.code, (errcode) ? (errcode) : "") != 0))                          \
			fail_msg("line %d: got status=%s ids=[%s] code=%s; want %s [%s] %s", __LINE__,        \
				 o_.status, o_.sorted, o_.code, (st), (ids_sorted), (errcode) ? (errcode) : "-"); \
		outcome_free(&o_);                                                                            \
	} while (0)

#define OK(req, ids) EXPECT(req, "Success", ids, NULL)
#define FAIL(req, code) EXPECT(req, "Failure", "", code)

#define FD(rt, ...) request(Q_FD, rt, "$XDSDocumentEntryPatientId", "'" PID1 "'", __VA_ARGS__, NULL)
#define ST_APPROVED "$XDSDocumentEntryStatus", "('" APPROVED "')"

/* Parameter rules (no database needed, but run through the whole transaction) --------------------------- */

static void test_param_rules(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	FAIL(request("urn:uuid:00000000-0000-0000-0000-000000000000", "LeafClass", NULL), "XDSUnknownStoredQuery");
	/* Required parameter missing. */
	FAIL(request(Q_FD, "ObjectRef", ST_APPROVED, NULL), "XDSStoredQueryParamNumber");
	FAIL(request(Q_FD, "ObjectRef", "$XDSDocumentEntryPatientId", "'" PID1 "'", NULL), "XDSStoredQueryParamNumber");
	FAIL(request(Q_GRD, "ObjectRef", "$XDSDocumentEntryEntryUUID", "'urn:uuid:D2'", NULL),
	     "XDSStoredQueryParamNumber");
	/* Single-valued parameter with several values, several Value elements, or twice. */
	FAIL(request(Q_FD, "ObjectRef", "$XDSDocumentEntryPatientId", "('" PID1 "','" PID2 "')", ST_APPROVED, NULL),
	     "XDSStoredQueryParamNumber");
	FAIL(request(Q_FD, "ObjectRef", "$XDSDocumentEntryPatientId", "'" PID1 "'", "+", "'" PID2 "'", ST_APPROVED,
		     NULL),
	     "XDSStoredQueryParamNumber");
	FAIL(FD("ObjectRef", "$XDSDocumentEntryPatientId", "'" PID1 "'", ST_APPROVED), "XDSStoredQueryParamNumber");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "('2004','2005')"),
	     "XDSStoredQueryParamNumber");
	/* A multi-valued parameter that is not AND/OR given in two slots. */
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s')", "$XDSDocumentEntryClassCode",
		"('c2^^s')"),
	     "XDSStoredQueryParamNumber");
	/* Either/or: none, or both. */
	FAIL(request(Q_GD, "ObjectRef", NULL), "XDSStoredQueryParamNumber");
	FAIL(request(Q_GD, "ObjectRef", "$XDSDocumentEntryEntryUUID", "('urn:uuid:D1')", "$XDSDocumentEntryUniqueId",
		     "('1.1')", NULL),
	     "XDSStoredQueryParamNumber");
	FAIL(request(Q_GSSC, "ObjectRef", NULL), "XDSStoredQueryParamNumber");
	/* Value syntax and formats. */
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s', 'a^^')"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1')"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "(c1^^s)"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s'"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s',)"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "()"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s') x"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "2004112"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "'2004-11-24'"), "XDSRegistryError");
	FAIL(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "200411241200000000"), "XDSRegistryError");
	/* Return type. */
	FAIL(request(Q_FD, "RegistryObject", "$XDSDocumentEntryPatientId", "'" PID1 "'", ST_APPROVED, NULL),
	     "XDSRegistryError");
	/* Parameters the query does not define are ignored (ebRS 3.0 6.3.2.1); so are unknown status values. */
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryPracticeSettingCodeScheme", "('anything')", "$Nonsense",
	      "garbage((("),
	   "D1,D2");
	OK(FD("ObjectRef", "$XDSDocumentEntryStatus", "('urn:unknown:status','" APPROVED "')"), "D1,D2");
	/* Empty slot (no ValueList) and a slot without a name. */
	char *r = strdup("<query:AdhocQueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0\""
			 " xmlns:rim=\"" RIM "\"><query:ResponseOption returnType=\"ObjectRef\"/>"
			 "<rim:AdhocQuery id=\"" Q_FD "\"><rim:Slot name=\"$XDSDocumentEntryPatientId\"/>"
			 "<rim:Slot><rim:ValueList><rim:Value>'x'</rim:Value></rim:ValueList></rim:Slot>"
			 "</rim:AdhocQuery></query:AdhocQueryRequest>");
	FAIL(r, "XDSStoredQueryParamNumber");
	/* No ResponseOption, no AdhocQuery. */
	FAIL(strdup("<query:AdhocQueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0\"/>"),
	     "XDSRegistryError");
}

/* The parser alone: values, quotes, lists, several Value elements. */
static void test_parse_values(void **state)
{
	(void)state;
	char *req = request(Q_FD, "LeafClass", "$XDSDocumentEntryPatientId", " 'O''Brien^^^&1.2&ISO' ",
			    "$XDSDocumentEntryStatus", "( 'a' , 'b,c' )", "+", "('d')",
			    "$XDSDocumentEntryEventCodeList", "('e1^^s')", "$XDSDocumentEntryEventCodeList",
			    "('e2^^s','e3^^s')", "$XDSDocumentEntryCreationTimeFrom", "20041124", NULL);
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(req, strlen(req), NULL, &doc, NULL), HIE_OK);
	free(req);
	struct registry_response r;
	registry_response_init(&r, 0);
	struct registry_sq_request *q = NULL;
	assert_int_equal(registry_sq_parse(xmlDocGetRootElement(doc), &q, &r), HIE_OK);
	assert_int_equal(r.n, 0);
	assert_non_null(q);
	assert_int_equal(q->query, REGISTRY_SQ_FIND_DOCUMENTS);
	assert_true(q->leaf_class);
	const struct registry_sq_param *p = registry_sq_get(q, "$XDSDocumentEntryPatientId");
	assert_non_null(p);
	assert_string_equal(p->groups[0].values[0], "O'Brien^^^&1.2&ISO");
	p = registry_sq_get(q, "$XDSDocumentEntryStatus");
	assert_int_equal(p->ngroups, 1);
	assert_int_equal(p->groups[0].n, 3);
	assert_string_equal(p->groups[0].values[1], "b,c");
	assert_string_equal(p->groups[0].values[2], "d");
	p = registry_sq_get(q, "$XDSDocumentEntryEventCodeList");
	assert_int_equal(p->ngroups, 2);
	assert_int_equal(p->groups[1].n, 2);
	assert_string_equal(registry_sq_get(q, "$XDSDocumentEntryCreationTimeFrom")->groups[0].values[0], "20041124");
	assert_null(registry_sq_get(q, "$XDSDocumentEntryClassCode"));
	registry_sq_free(q);
	registry_response_free(&r);
	xmlFreeDoc(doc);
	/* The query table: every id maps to itself. */
	for (int i = 0; i < REGISTRY_SQ_COUNT; i++)
		assert_true(strncmp(registry_sq_uuid((enum registry_sq_query)i), "urn:uuid:", 9) == 0);
}

/* FindDocuments ---------------------------------------------------------------------------------------------- */

static void test_find_documents(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	OK(FD("ObjectRef", ST_APPROVED), "D1,D2");
	OK(FD("ObjectRef", "$XDSDocumentEntryStatus", "('" DEPRECATED "')"), "D3");
	OK(FD("ObjectRef", "$XDSDocumentEntryStatus", "('" APPROVED "','" DEPRECATED "')"), "D1,D2,D3");
	/* The patient id may come with its & escaped or not; another patient's documents never show. */
	OK(request(Q_FD, "ObjectRef", "$XDSDocumentEntryPatientId", "'" PID2 "'", ST_APPROVED, NULL), "D5");
	OK(request(Q_FD, "ObjectRef", "$XDSDocumentEntryPatientId", "'P9^^^&1.2.3&ISO'", ST_APPROVED, NULL), "");
	/* Entry type: stable by default; on-demand when asked. */
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryType", "('" REGISTRY_UUID_DE_ONDEMAND "')"), "D4");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryType",
	      "('" REGISTRY_UUID_DE_ONDEMAND "','" REGISTRY_UUID_DE_STABLE "')"),
	   "D1,D2,D4");
	/* Codes: OR within a parameter, AND across parameters. */
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s')"), "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s','c2^^s')"), "D1,D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s')", "+", "('c2^^s')"), "D1,D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^other')"), "");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c2^^s')", "$XDSDocumentEntryEventCodeList",
	      "('e2^^es')"),
	   "");
	/* Event codes: one slot ORs, two slots AND (11897 "and"). */
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryEventCodeList", "('e1^^es','e2^^es')"), "D1,D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryEventCodeList", "('e1^^es')", "$XDSDocumentEntryEventCodeList",
	      "('e2^^es')"),
	   "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryEventCodeList", "('e1^^es')", "$XDSDocumentEntryEventCodeList",
	      "('e9^^es','e2^^es')"),
	   "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryConfidentialityCode", "('R^^cs')"), "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryConfidentialityCode", "('N^^cs')",
	      "$XDSDocumentEntryConfidentialityCode", "('R^^cs')"),
	   "D1");
	/* Author person: LIKE with % and _, a backslash is literal. */
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('%Ford%')"), "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('Smith_J')"), "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('Smith__J')"), "");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('J_nes%')"), "D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('a\\b')"), "D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('ab')"), "");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('%Ford%','Jones%')"), "D1,D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('Ford')"), "");
}

static void test_time_ranges(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	/* D1 created 20041124, D2 20041224093000. From inclusive, To exclusive (11897 left/right edge). */
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "20041124",
	      "$XDSDocumentEntryCreationTimeTo", "20041224"),
	   "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "20041125"), "D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeTo", "20041124"), "");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "'200411'",
	      "$XDSDocumentEntryCreationTimeTo", "'200412'"),
	   "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "2004", "$XDSDocumentEntryCreationTimeTo",
	      "2005"),
	   "D1,D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "20041224093000"), "D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "20041224093001"), "");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeTo", "20041224093001"), "D1,D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeTo", "20041224093000"), "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryCreationTimeFrom", "2004122409"), "D2");
	/* Service start/stop; a document without the attribute never matches a range on it. */
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryServiceStartTimeFrom", "20041124",
	      "$XDSDocumentEntryServiceStartTimeTo", "20041125"),
	   "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryServiceStartTimeFrom", "200412"), "D2");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryServiceStopTimeFrom", "2004"), "D1");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryServiceStopTimeTo", "2004"), "");
}

static void test_leafclass_output(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	/* LeafClass: objects with their status put back, D1's extra Classification right after it. */
	struct outcome o = run(FD("LeafClass", ST_APPROVED));
	assert_string_equal(o.status, "Success");
	assert_string_equal(o.ids, "D1,X1,D2");
	assert_non_null(strstr(o.xml, "id=\"urn:uuid:D1\""));
	assert_non_null(strstr(o.xml, "<rim:ExtrinsicObject status=\"" APPROVED "\""));
	assert_null(strstr(o.xml, "home="));
	outcome_free(&o);
	/* home is echoed on every returned object. */
	char *req = FD("LeafClass", ST_APPROVED);
	char *at = strstr(req, "<rim:AdhocQuery ");
	assert_non_null(at);
	size_t pre = (size_t)(at - req) + strlen("<rim:AdhocQuery ");
	struct hie_buf b;
	hie_buf_init(&b, 1u << 20);
	hie_buf_add(&b, req, pre);
	hie_buf_addstr(&b, "home=\"urn:oid:1.2.3&amp;&quot;\" ");
	hie_buf_addstr(&b, req + pre);
	free(req);
	o = run(hie_buf_steal(&b, NULL));
	assert_string_equal(o.status, "Success");
	assert_non_null(strstr(o.xml, "<rim:ExtrinsicObject home=\"urn:oid:1.2.3&amp;&quot;\" status="));
	outcome_free(&o);
	/* ObjectRef: bare refs. */
	o = run(FD("ObjectRef", ST_APPROVED));
	assert_non_null(strstr(o.xml, "<rim:ObjectRef id=\"urn:uuid:D1\"/>"));
	assert_null(strstr(o.xml, "ExtrinsicObject"));
	outcome_free(&o);
}

/* The other thirteen --------------------------------------------------------------------------------------------- */

static void test_find_documents_by_refid(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	OK(request(Q_FDREF, "ObjectRef", "$XDSDocumentEntryPatientId", "'" PID1 "'", ST_APPROVED,
		   "$XDSDocumentEntryReferenceIdList", "('r1^^^&1.2&ISO^urn:ihe:iti:xds:2013:uniqueId')", NULL),
	   "D1");
	OK(request(Q_FDREF, "LeafClass", "$XDSDocumentEntryPatientId", "'" PID1 "'", ST_APPROVED,
		   "$XDSDocumentEntryReferenceIdList", "('r2')", NULL),
	   "");
	FAIL(request(Q_FDREF, "ObjectRef", "$XDSDocumentEntryPatientId", "'" PID1 "'", ST_APPROVED, NULL),
	     "XDSStoredQueryParamNumber");
}

#define SSP "$XDSSubmissionSetPatientId", "'" PID1 "'"
#define SSST "$XDSSubmissionSetStatus", "('" APPROVED "')"

static void test_find_submission_sets_and_folders(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, NULL), "SS1");
	OK(request(Q_FSS, "LeafClass", SSP, SSST, NULL), "SS1");
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, "$XDSSubmissionSetSourceId", "('src2','src1')", NULL), "SS1");
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, "$XDSSubmissionSetSourceId", "('src2')", NULL), "");
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, "$XDSSubmissionSetSubmissionTimeFrom", "20041125",
		   "$XDSSubmissionSetSubmissionTimeTo", "20041126", NULL),
	   "SS1");
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, "$XDSSubmissionSetSubmissionTimeTo", "20041125", NULL), "");
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, "$XDSSubmissionSetAuthorPerson", "'Dr%'", NULL), "SS1");
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, "$XDSSubmissionSetContentType", "('ct^^s')", NULL), "SS1");
	OK(request(Q_FSS, "ObjectRef", SSP, SSST, "$XDSSubmissionSetContentType", "('zz^^s')", NULL), "");
	FAIL(request(Q_FSS, "ObjectRef", SSP, NULL), "XDSStoredQueryParamNumber");

	OK(request(Q_FF, "ObjectRef", "$XDSFolderPatientId", "'" PID1 "'", "$XDSFolderStatus", "('" APPROVED "')", NULL),
	   "F1");
	OK(request(Q_FF, "LeafClass", "$XDSFolderPatientId", "'" PID1 "'", "$XDSFolderStatus", "('" APPROVED "')",
		   "$XDSFolderCodeList", "('fc1^^s')", "$XDSFolderCodeList", "('fc2^^s')", NULL),
	   "F1");
	OK(request(Q_FF, "ObjectRef", "$XDSFolderPatientId", "'" PID1 "'", "$XDSFolderStatus", "('" APPROVED "')",
		   "$XDSFolderCodeList", "('fc1^^s')", "$XDSFolderCodeList", "('fc3^^s')", NULL),
	   "");
	OK(request(Q_FF, "ObjectRef", "$XDSFolderPatientId", "'" PID1 "'", "$XDSFolderStatus", "('" APPROVED "')",
		   "$XDSFolderLastUpdateTimeFrom", "20041126", "$XDSFolderLastUpdateTimeTo", "20041127", NULL),
	   "F1");
	OK(request(Q_FF, "ObjectRef", "$XDSFolderPatientId", "'" PID1 "'", "$XDSFolderStatus", "('" DEPRECATED "')",
		   NULL),
	   "");
}

#define ALLST                                                                                                    \
	"$XDSDocumentEntryStatus", "('" APPROVED "','" DEPRECATED "')", "$XDSSubmissionSetStatus", "('" APPROVED "')", \
		"$XDSFolderStatus", "('" APPROVED "')"

static void test_get_all(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	OK(request(Q_ALL, "ObjectRef", "$patientId", "'" PID1 "'", ALLST, NULL), "A1,A2,A3,A4,A5,A6,D1,D2,D3,F1,SS1");
	OK(request(Q_ALL, "LeafClass", "$patientId", "'" PID1 "'", ALLST, NULL), "A1,A2,A3,A4,A5,A6,D1,D2,D3,F1,SS1,X1");
	OK(request(Q_ALL, "ObjectRef", "$patientId", "'" PID1 "'", ALLST, "$XDSDocumentEntryConfidentialityCode",
		   "('R^^cs')", NULL),
	   "A1,A3,A4,A5,D1,F1,SS1"); /* A5: the SubmissionSet's HasMember to the F1-D1 link (NIST 15803) */
	FAIL(request(Q_ALL, "ObjectRef", "$patientId", "'" PID1 "'", "$XDSDocumentEntryStatus", "('" APPROVED "')",
		     NULL),
	     "XDSStoredQueryParamNumber");
}

static void test_get_documents_and_folders(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	OK(request(Q_GD, "LeafClass", "$XDSDocumentEntryEntryUUID", "('urn:uuid:D1')", NULL), "D1,X1");
	OK(request(Q_GD, "ObjectRef", "$XDSDocumentEntryUniqueId", "('1.2','1.3')", NULL), "D2,D3");
	OK(request(Q_GD, "ObjectRef", "$XDSDocumentEntryLogicalID", "('urn:uuid:D4')", NULL), "D4");
	/* Several Value elements of one slot OR (11901 uuid_multiple_slot_values). */
	OK(request(Q_GD, "LeafClass", "$XDSDocumentEntryEntryUUID", "('urn:uuid:D1')", "+", "('urn:uuid:D2')", NULL),
	   "D1,D2,X1");
	/* Two patients: LeafClass refused (12368), ObjectRef fine. */
	FAIL(request(Q_GD, "LeafClass", "$XDSDocumentEntryEntryUUID", "('urn:uuid:D1','urn:uuid:D5')", NULL),
	     "XDSResultNotSinglePatient");
	OK(request(Q_GD, "ObjectRef", "$XDSDocumentEntryEntryUUID", "('urn:uuid:D1','urn:uuid:D5')", NULL), "D1,D5");
	OK(request(Q_GF, "LeafClass", "$XDSFolderEntryUUID", "('urn:uuid:F1')", NULL), "F1");
	OK(request(Q_GF, "ObjectRef", "$XDSFolderUniqueId", "('f.1')", NULL), "F1");
	OK(request(Q_GF, "ObjectRef", "$XDSFolderEntryUUID", "('urn:uuid:SS1')", NULL), "");
}

static void test_get_associations_and_sets(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	OK(request(Q_GA, "ObjectRef", "$uuid", "('urn:uuid:D1')", NULL), "A1,A4");
	OK(request(Q_GA, "LeafClass", "$uuid", "('urn:uuid:D1','urn:uuid:D2')", NULL), "A1,A2,A4,A6");
	OK(request(Q_GDA, "LeafClass", "$XDSDocumentEntryEntryUUID", "('urn:uuid:D2')", NULL), "A2,A6,D2");
	OK(request(Q_GDA, "ObjectRef", "$XDSDocumentEntryUniqueId", "('1.1')", NULL), "A1,A4,D1");
	OK(request(Q_GSS, "LeafClass", "$uuid", "('urn:uuid:D1')", NULL), "A1,SS1");
	OK(request(Q_GSS, "ObjectRef", "$uuid", "('urn:uuid:D1','urn:uuid:F1')", NULL), "A1,A3,SS1");
	OK(request(Q_GSS, "ObjectRef", "$uuid", "('urn:uuid:D3')", NULL), "");
}

static void test_contents_queries(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	OK(request(Q_GSSC, "ObjectRef", "$XDSSubmissionSetEntryUUID", "'urn:uuid:SS1'", NULL),
	   "A1,A2,A3,A4,A5,D1,D2,F1,SS1");
	OK(request(Q_GSSC, "LeafClass", "$XDSSubmissionSetUniqueId", "'ss.1'", NULL),
	   "A1,A2,A3,A4,A5,D1,D2,F1,SS1,X1");
	/* Filtered by confidentiality code: D2 and its association drop out. */
	OK(request(Q_GSSC, "ObjectRef", "$XDSSubmissionSetEntryUUID", "'urn:uuid:SS1'",
		   "$XDSDocumentEntryConfidentialityCode", "('R^^cs')", NULL),
	   "A1,A3,A4,A5,D1,F1,SS1");
	OK(request(Q_GSSC, "ObjectRef", "$XDSSubmissionSetEntryUUID", "'urn:uuid:nope'", NULL), "");
	FAIL(request(Q_GSSC, "ObjectRef", "$XDSSubmissionSetEntryUUID", "('urn:uuid:SS1','urn:uuid:SS2')", NULL),
	     "XDSStoredQueryParamNumber");
	OK(request(Q_GFC, "LeafClass", "$XDSFolderEntryUUID", "'urn:uuid:F1'", NULL), "A4,D1,F1,X1");
	OK(request(Q_GFC, "ObjectRef", "$XDSFolderUniqueId", "'f.1'", "$XDSDocumentEntryFormatCode", "('fmt^^s')", NULL),
	   "F1");
	OK(request(Q_GFFD, "LeafClass", "$XDSDocumentEntryEntryUUID", "'urn:uuid:D1'", NULL), "F1");
	OK(request(Q_GFFD, "ObjectRef", "$XDSDocumentEntryUniqueId", "'1.1'", NULL), "F1");
	OK(request(Q_GFFD, "ObjectRef", "$XDSDocumentEntryEntryUUID", "'urn:uuid:D2'", NULL), "");
	OK(request(Q_GRD, "LeafClass", "$XDSDocumentEntryEntryUUID", "'urn:uuid:D2'", "$AssociationTypes",
		   "('" RPLC "')", NULL),
	   "A6,D2,D3");
	OK(request(Q_GRD, "ObjectRef", "$XDSDocumentEntryUniqueId", "'1.3'", "$AssociationTypes",
		   "('" RPLC "','urn:ihe:iti:2007:AssociationType:APND')", NULL),
	   "A6,D2,D3");
	OK(request(Q_GRD, "ObjectRef", "$XDSDocumentEntryEntryUUID", "'urn:uuid:D2'", "$AssociationTypes",
		   "('urn:ihe:iti:2007:AssociationType:APND')", NULL),
	   "");
	OK(request(Q_GRD, "ObjectRef", "$XDSDocumentEntryEntryUUID", "'urn:uuid:D1'", "$AssociationTypes",
		   "('" RPLC "')", NULL),
	   "");
}

/* Limits ---------------------------------------------------------------------------------------------------- */

static void test_too_many_results(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct outcome o = run_on(P, 1, FD("LeafClass", ST_APPROVED));
	assert_string_equal(o.status, "Failure");
	assert_string_equal(o.code, "XDSTooManyResults");
	assert_string_equal(o.ids, "");
	outcome_free(&o);
	o = run_on(P, 2, FD("LeafClass", ST_APPROVED));
	assert_string_equal(o.status, "Success");
	outcome_free(&o);
	o = run_on(P, 3, request(Q_GSSC, "LeafClass", "$XDSSubmissionSetEntryUUID", "'urn:uuid:SS1'", NULL));
	assert_string_equal(o.code, "XDSTooManyResults");
	outcome_free(&o);
	/* ObjectRef lists are not bound by the LeafClass cap. */
	o = run_on(P, 1, FD("ObjectRef", ST_APPROVED));
	assert_string_equal(o.status, "Success");
	assert_string_equal(o.sorted, "D1,D2");
	outcome_free(&o);
}

static void test_database_down(void **state)
{
	(void)state;
	struct hie_db_pool *dead = NULL;
	struct hie_db_opts opts = {.conninfo = "host=127.0.0.1 port=1 connect_timeout=1", .size = 1,
				   .acquire_timeout_ms = 2000};
	assert_int_equal(hie_db_pool_open(&dead, &opts), HIE_OK);
	struct outcome o = run_on(dead, 10, FD("ObjectRef", ST_APPROVED));
	assert_string_equal(o.status, "Failure");
	assert_string_equal(o.code, "XDSRegistryError");
	outcome_free(&o);
	hie_db_pool_close(dead);
	o = run_on(NULL, 10, FD("ObjectRef", ST_APPROVED));
	assert_string_equal(o.code, "XDSRegistryError");
	outcome_free(&o);
}

/* Hostile input ------------------------------------------------------------------------------------------------- */

static void test_hostile_values(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	/* Injection text is a value like any other. */
	OK(request(Q_FD, "ObjectRef", "$XDSDocumentEntryPatientId", "'x'' OR ''1''=''1'", ST_APPROVED, NULL), "");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('c1^^s'') OR true --')"), "");
	OK(FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryAuthorPerson", "('\"}{,\\\\')"), "");
	OK(request(Q_GD, "ObjectRef", "$XDSDocumentEntryEntryUUID", "('{\"urn:uuid:D1\"}','urn:uuid:D1\",\"x')", NULL),
	   "");
	/* 10,000 values in one list: the two real ones are found. */
	struct hie_buf b;
	hie_buf_init(&b, 8u << 20);
	hie_buf_addstr(&b, "('urn:uuid:D1'");
	for (int i = 0; i < 9998; i++)
		hie_buf_addf(&b, ",'urn:uuid:none-%d'", i);
	hie_buf_addstr(&b, ",'urn:uuid:D2')");
	OK(request(Q_GD, "ObjectRef", "$XDSDocumentEntryEntryUUID", hie_buf_str(&b), NULL), "D1,D2");
	/* More values than the request cap: refused, not run. */
	hie_buf_reset(&b);
	hie_buf_addstr(&b, "('a'");
	for (int i = 0; i < 25000; i++)
		hie_buf_addstr(&b, ",'a'");
	hie_buf_addstr(&b, ")");
	FAIL(request(Q_GD, "ObjectRef", "$XDSDocumentEntryEntryUUID", hie_buf_str(&b), NULL),
	     "XDSRegistryOutOfResources");
	/* A value longer than the cap. */
	hie_buf_reset(&b);
	hie_buf_addstr(&b, "'");
	for (int i = 0; i < 5000; i++)
		hie_buf_addstr(&b, "x");
	hie_buf_addstr(&b, "'");
	FAIL(request(Q_FD, "ObjectRef", "$XDSDocumentEntryPatientId", hie_buf_str(&b), ST_APPROVED, NULL),
	     "XDSRegistryError");
	hie_buf_free(&b);
	/* Non-UTF-8 bytes in a value (a tree built by code, not by the parser, which would refuse them). */
	char *req = FD("ObjectRef", ST_APPROVED, "$XDSDocumentEntryClassCode", "('PLACEHOLDER^^s')");
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(req, strlen(req), NULL, &doc, NULL), HIE_OK);
	free(req);
	struct hie_xml_nodes n = {0};
	const struct hie_xml_ns ns[] = {{"rim", RIM}, {NULL, NULL}};
	assert_int_equal(hie_xml_xpath(doc, NULL, "//rim:Slot[@name='$XDSDocumentEntryClassCode']//rim:Value", ns, &n),
			 HIE_OK);
	assert_int_equal(n.n, 1);
	xmlNodeSetContent(n.nodes[0], BAD_CAST "('\xff\xfe^^s')");
	hie_xml_nodes_free(&n);
	struct hie_buf out;
	hie_buf_init(&out, 1u << 20);
	assert_int_equal(registry_query_run(P, 10, xmlDocGetRootElement(doc), &out), HIE_OK);
	assert_non_null(strstr(hie_buf_str(&out), "XDSRegistryError"));
	assert_non_null(strstr(hie_buf_str(&out), "UTF-8"));
	hie_buf_free(&out);
	xmlFreeDoc(doc);
	/* A response buffer too small for the result: out of resources, still a well-formed answer. */
	req = FD("LeafClass", ST_APPROVED);
	assert_int_equal(hie_xml_parse(req, strlen(req), NULL, &doc, NULL), HIE_OK);
	free(req);
	hie_buf_init(&out, 4096 + 600);
	assert_int_equal(registry_query_run(P, 10, xmlDocGetRootElement(doc), &out), HIE_OK);
	assert_non_null(strstr(hie_buf_str(&out), "XDSRegistryOutOfResources"));
	hie_buf_free(&out);
	xmlFreeDoc(doc);
	/* Too many slots. */
	hie_buf_init(&b, 8u << 20);
	hie_buf_addstr(&b, "<query:AdhocQueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0\""
			   " xmlns:rim=\"" RIM "\"><query:ResponseOption returnType=\"ObjectRef\"/>"
			   "<rim:AdhocQuery id=\"" Q_FD "\">");
	for (int i = 0; i < 300; i++)
		hie_buf_addstr(&b, "<rim:Slot name=\"$junk\"><rim:ValueList><rim:Value>'x'</rim:Value></rim:ValueList>"
				   "</rim:Slot>");
	hie_buf_addstr(&b, "</rim:AdhocQuery></query:AdhocQueryRequest>");
	FAIL(hie_buf_steal(&b, NULL), "XDSRegistryOutOfResources");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_values),
		cmocka_unit_test(test_param_rules),
		cmocka_unit_test(test_find_documents),
		cmocka_unit_test(test_time_ranges),
		cmocka_unit_test(test_leafclass_output),
		cmocka_unit_test(test_find_documents_by_refid),
		cmocka_unit_test(test_find_submission_sets_and_folders),
		cmocka_unit_test(test_get_all),
		cmocka_unit_test(test_get_documents_and_folders),
		cmocka_unit_test(test_get_associations_and_sets),
		cmocka_unit_test(test_contents_queries),
		cmocka_unit_test(test_too_many_results),
		cmocka_unit_test(test_database_down),
		cmocka_unit_test(test_hostile_values),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
