/*
 * registry_repository_test.c — the XDS.b repository end to end below HTTP: requests built as a peer sends
 * them (SOAP 1.2 + WS-Addressing, MTOM packages written by hand, inline base64) from the NIST testkit's
 * ReposAcceptanceTest-1113 submission (two DocumentEntries, a SubmissionSet), dispatched through
 * hie_soap_dispatch to the real handlers, replies parsed back with hie_soap_parse / hie_soap_binary, against
 * a real embedded PostgreSQL.
 *
 * ITI-41: MTOM and inline happy paths (bytes with NULs, retrieved identical), hash/size/repositoryUniqueId
 * computed and stored on the DocumentEntry (XML and columns), supplied hash in upper case accepted, wrong
 * hash and wrong size (XDSRepositoryMetadataError naming the attribute and both values, nothing stored),
 * DocumentEntry without Document (XDSMissingDocument), Document without DocumentEntry
 * (XDSMissingDocumentMetadata), duplicate Document ids, unknown patient (XDSUnknownPatientId: metadata and
 * bytes both rolled back), resubmission (Success, stored once), hostile: xop:Include naming no part,
 * xop:Include in plain SOAP, duplicate Content-ID, a part missing from a truncated package, bad base64,
 * wrong body element, no SubmitObjectsRequest.
 * ITI-43: 2 found + 1 missing (PartialSuccess, XDSDocumentUniqueIdError naming the uniqueId), none found
 * (Failure), a RepositoryUniqueId not ours (XDSUnknownRepositoryId), HomeCommunityId echoed, an empty
 * request (Sender fault), the reply always MTOM.
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/core_jobs.h"
#include "core/core_mime.h"
#include "core/core_soap.h"
#include "ebrim_testutil.h"
#include "registry/registry.h"

#define TWO_DOC "tests/ReposAcceptanceTest-1113/SubmitTwoDocs/two_doc.xml"
#define PID_OID "1.3.6.1.4.1.21367.13.20.1000"
#define PID_ID "P0924175725.3"
#define UID1 "1.2.42.20180925.1.777.200"
#define UID2 "1.2.42.20180925.2.777.200"
#define REPO_UID "1.3.6.1.4.1.21367.13.20.1000.1"
#define ACT_PNR "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
#define ACT_RET "urn:ihe:iti:2007:RetrieveDocumentSet"
#define BOUNDARY "uuid:0f1e2d3c-hienode-test-boundary"
#define ROOT_CID "root.message@hienode.test"
#define NS_RS "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
#define NS_XDSB "urn:ihe:iti:xds-b:2007"
#define ST_SUCCESS "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
#define ST_FAILURE "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
#define ST_PARTIAL "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"

static struct pgtest T;
static struct hie_db_pool *P;
static struct registry_service SVC;
static struct hie_soap_router *R;
static char *METADATA; /* the testkit's xdsb:ProvideAndRegisterDocumentSetRequest without its end tag */
static char DOC1[300000]; /* binary, NULs included */
static const char DOC2[] = "This is my second document.\n\nIt is great!\n";

/* Test plumbing --------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	(void)tu_fill; /* the shared helpers this suite does not need */
	(void)tu_parse;
	for (size_t i = 0; i < sizeof DOC1; i++)
		DOC1[i] = (char)((i * 7 + i / 251) & 0xff);
	char *xml = tu_testkit_file(TWO_DOC);
	if (xml) {
		char *start = strstr(xml, "<xdsb:ProvideAndRegisterDocumentSetRequest");
		char *end = strstr(xml, "</xdsb:ProvideAndRegisterDocumentSetRequest>");
		if (!start || !end)
			return -1;
		*end = '\0';
		METADATA = strdup(start);
		free(xml);
	}
	memset(&SVC, 0, sizeof SVC);
	snprintf(SVC.repository_uid, sizeof SVC.repository_uid, "%s", REPO_UID);
	if (hie_soap_router_new(NULL, &R) != HIE_OK || registry_routes(R, &SVC) != HIE_OK)
		return -1;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {registry_migrations, registry_migrations_count}};
	int rc = pgtest_open(&T, 4, schema, 2, &P);
	SVC.pool = P;
	return rc;
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	hie_soap_router_free(R);
	free(METADATA);
	return 0;
}

/* Empty tables and the patient known (the DB-free cases never reach the database). */
static int setup(void **state)
{
	(void)state;
	if (T.skip || !P)
		return 0;
	if (pgtest_exec(P, "TRUNCATE reg_documents, reg_packages, reg_associations, reg_extra, repo_documents, patients"))
		return -1;
	return pgtest_exec(P, "INSERT INTO patients (oid, id) VALUES ('" PID_OID "', '" PID_ID "')") ? -1 : 0;
}

#define NEED_DB()                                                                                                  \
	do {                                                                                                       \
		if (!METADATA || T.skip)                                                                           \
			skip();                                                                                    \
	} while (0)
#define NEED_CORPUS()                                                                                              \
	do {                                                                                                       \
		if (!METADATA)                                                                                     \
			skip();                                                                                    \
	} while (0)

/* First value of a query with one text parameter, as text ("" when no row). */
static void sql_text(const char *sql, const char *param, char *out, size_t outlen)
{
	PGconn *c;
	PGresult *r;
	out[0] = '\0';
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	const char *p[] = {param};
	hie_err_t err = hie_db_exec(c, sql, param ? 1 : 0, p, &r);
	if (!err && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	hie_db_release(P, c, false); /* before asserting: a failed test must not leave the pool in use */
	assert_int_equal(err, HIE_OK);
}

static void digest_hex(const EVP_MD *md_type, const void *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n;
	assert_true(EVP_Digest(data, len, md, &n, md_type, NULL));
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void sha1_hex(const void *data, size_t len, char out[41])
{
	digest_hex(EVP_sha1(), data, len, out);
}

/* Request building ------------------------------------------------------------------------------------ */

enum how { INLINE = 0, MTOM, INCLUDE_NO_PART, BAD_BASE64 };

struct rdoc {
	const char *id;
	const char *data;
	size_t len;
	enum how how;
};

struct rq {
	struct hie_buf ct;
	struct hie_buf body;
};

static void rq_init(struct rq *q)
{
	hie_buf_init(&q->ct, 4096);
	hie_buf_init(&q->body, 64u << 20);
}

static void rq_free(struct rq *q)
{
	hie_buf_free(&q->ct);
	hie_buf_free(&q->body);
}

static void envelope(struct hie_buf *b, const char *action, const char *payload)
{
	char mid[64];
	assert_int_equal(hie_soap_new_uuid_urn(mid, sizeof mid), HIE_OK);
	assert_int_equal(hie_buf_addf(b,
				      "<env:Envelope xmlns:env=\"" HIE_SOAP12_NS "\" xmlns:wsa=\"" HIE_WSA_NS "\">"
				      "<env:Header><wsa:Action env:mustUnderstand=\"1\">%s</wsa:Action>"
				      "<wsa:MessageID>%s</wsa:MessageID>"
				      "<wsa:To>http://127.0.0.1/xds/repository</wsa:To></env:Header>"
				      "<env:Body>%s</env:Body></env:Envelope>",
				      action, mid, payload),
			 HIE_OK);
}

struct mtom_opts {
	bool dup_cid;      /* the second part gets the first one's Content-ID */
	bool drop_last;    /* the package ends before the last part */
};

/*
 * The PnR payload: metadata (possibly mutated) followed by the Documents. With mtom, the request is a
 * multipart/related package written here byte by byte; MTOM documents travel as binary parts.
 */
static void build_pnr(struct rq *q, const char *metadata, const struct rdoc *docs, size_t n, bool mtom,
		      const struct mtom_opts *mo)
{
	struct hie_buf pl, env;
	hie_buf_init(&pl, 64u << 20);
	hie_buf_init(&env, 64u << 20);
	assert_int_equal(hie_buf_addstr(&pl, metadata), HIE_OK);
	for (size_t i = 0; i < n; i++) {
		hie_buf_addf(&pl, "<xdsb:Document id=\"%s\">", docs[i].id);
		if (docs[i].how == MTOM)
			hie_buf_addf(&pl, "<xop:Include xmlns:xop=\"" HIE_XOP_NS "\" href=\"cid:part%zu%%40hienode.test\"/>", i);
		else if (docs[i].how == INCLUDE_NO_PART)
			hie_buf_addstr(&pl, "<xop:Include xmlns:xop=\"" HIE_XOP_NS "\" href=\"cid:nothing@hienode.test\"/>");
		else if (docs[i].how == BAD_BASE64)
			hie_buf_addstr(&pl, "VGhpcyBpcyBub3Q*base64!");
		else
			assert_int_equal(hie_mime_base64_encode(docs[i].data, docs[i].len, 0, &pl), HIE_OK);
		hie_buf_addstr(&pl, "</xdsb:Document>");
	}
	assert_int_equal(hie_buf_addstr(&pl, "</xdsb:ProvideAndRegisterDocumentSetRequest>"), HIE_OK);
	envelope(&env, ACT_PNR, hie_buf_str(&pl));
	if (!mtom) {
		hie_buf_addstr(&q->ct, "application/soap+xml; charset=UTF-8; action=\"" ACT_PNR "\"");
		assert_int_equal(hie_buf_add(&q->body, env.data, env.len), HIE_OK);
	} else {
		hie_buf_addstr(&q->ct, "multipart/related; boundary=\"" BOUNDARY "\"; type=\"application/xop+xml\"; "
				       "start=\"<" ROOT_CID ">\"; start-info=\"application/soap+xml\"; action=\"" ACT_PNR
				       "\"");
		hie_buf_addstr(&q->body, "--" BOUNDARY "\r\nContent-Type: application/xop+xml; charset=UTF-8; "
					 "type=\"application/soap+xml\"\r\nContent-Transfer-Encoding: binary\r\n"
					 "Content-ID: <" ROOT_CID ">\r\n\r\n");
		hie_buf_add(&q->body, env.data, env.len);
		size_t last = n;
		for (size_t i = 0; i < n; i++)
			if (docs[i].how == MTOM)
				last = i;
		for (size_t i = 0; i < n; i++) {
			if (docs[i].how != MTOM || (mo && mo->drop_last && i == last))
				continue;
			size_t cid = (mo && mo->dup_cid && i > 0) ? 0 : i;
			hie_buf_addf(&q->body,
				     "\r\n--" BOUNDARY "\r\nContent-Type: application/octet-stream\r\n"
				     "Content-Transfer-Encoding: binary\r\nContent-ID: <part%zu@hienode.test>\r\n\r\n",
				     cid);
			assert_int_equal(hie_buf_add(&q->body, docs[i].data, docs[i].len), HIE_OK);
		}
		if (mo && mo->drop_last)
			hie_buf_addstr(&q->body, "\r\n--" BOUNDARY "\r\nContent-Type: application/octet-stream\r\n");
		else
			hie_buf_addstr(&q->body, "\r\n--" BOUNDARY "--\r\n");
	}
	hie_buf_free(&pl);
	hie_buf_free(&env);
}

struct ritem {
	const char *home, *repo, *uid;
};

static void build_retrieve(struct rq *q, const struct ritem *it, size_t n)
{
	struct hie_buf pl;
	hie_buf_init(&pl, 1u << 20);
	hie_buf_addstr(&pl, "<xdsb:RetrieveDocumentSetRequest xmlns:xdsb=\"" NS_XDSB "\">");
	for (size_t i = 0; i < n; i++) {
		hie_buf_addstr(&pl, "<xdsb:DocumentRequest>");
		if (it[i].home)
			hie_buf_addf(&pl, "<xdsb:HomeCommunityId>%s</xdsb:HomeCommunityId>", it[i].home);
		if (it[i].repo)
			hie_buf_addf(&pl, "<xdsb:RepositoryUniqueId>%s</xdsb:RepositoryUniqueId>", it[i].repo);
		if (it[i].uid)
			hie_buf_addf(&pl, "<xdsb:DocumentUniqueId> %s\n</xdsb:DocumentUniqueId>", it[i].uid);
		hie_buf_addstr(&pl, "</xdsb:DocumentRequest>");
	}
	hie_buf_addstr(&pl, "</xdsb:RetrieveDocumentSetRequest>");
	hie_buf_addstr(&q->ct, "application/soap+xml; charset=UTF-8; action=\"" ACT_RET "\"");
	envelope(&q->body, ACT_RET, hie_buf_str(&pl));
	hie_buf_free(&pl);
}

/* Reply handling -------------------------------------------------------------------------------------- */

struct rp {
	struct hie_soap_reply reply;
	struct hie_soap_msg *msg;
	const xmlNode *rr;        /* rs:RegistryResponse, NULL for a fault */
	char status[128];
};

static void rp_free(struct rp *p)
{
	hie_soap_msg_free(p->msg);
	hie_soap_reply_free(&p->reply);
}

static void send_rq(struct rq *q, struct rp *p)
{
	memset(p, 0, sizeof *p);
	hie_soap_reply_init(&p->reply, 0);
	assert_int_equal(hie_soap_dispatch(R, "/xds/repository", hie_buf_str(&q->ct), q->body.data, q->body.len, NULL,
					   &p->reply),
			 HIE_OK);
	struct hie_soap_fault f;
	memset(&f, 0, sizeof f);
	if (hie_soap_parse(hie_buf_str(&p->reply.content_type), p->reply.body.data, p->reply.body.len, NULL, &p->msg,
			   &f) != HIE_OK)
		fail_msg("reply does not parse: %s", f.reason);
	const xmlNode *pl = p->msg->payload;
	p->rr = hie_xml_is(pl, NS_RS, "RegistryResponse") ? pl : hie_xml_child(pl, NS_RS, "RegistryResponse");
	if (p->rr) {
		xmlChar *st = xmlGetNoNsProp(p->rr, BAD_CAST "status");
		snprintf(p->status, sizeof p->status, "%s", st ? (const char *)st : "");
		xmlFree(st);
	}
}

static bool is_fault(const struct rp *p)
{
	return hie_xml_is(p->msg->payload, HIE_SOAP12_NS, "Fault");
}

/* Kept error with this code whose codeContext holds every one of the (up to 3) substrings. */
static bool has_error(const struct rp *p, const char *code, const char *s1, const char *s2, const char *s3)
{
	const xmlNode *list = p->rr ? hie_xml_child(p->rr, NS_RS, "RegistryErrorList") : NULL, *e;
	bool found = false;
	HIE_XML_FOREACH(e, list, NS_RS, "RegistryError") {
		xmlChar *c = xmlGetNoNsProp(e, BAD_CAST "errorCode"), *x = xmlGetNoNsProp(e, BAD_CAST "codeContext");
		const char *ctx = x ? (const char *)x : "";
		if (c && strcmp((const char *)c, code) == 0 && (!s1 || strstr(ctx, s1)) && (!s2 || strstr(ctx, s2)) &&
		    (!s3 || strstr(ctx, s3)))
			found = true;
		xmlFree(c);
		xmlFree(x);
	}
	return found;
}

static void dump_errors(const struct rp *p)
{
	const xmlNode *list = p->rr ? hie_xml_child(p->rr, NS_RS, "RegistryErrorList") : NULL, *e;
	HIE_XML_FOREACH(e, list, NS_RS, "RegistryError") {
		xmlChar *c = xmlGetNoNsProp(e, BAD_CAST "errorCode"), *x = xmlGetNoNsProp(e, BAD_CAST "codeContext");
		print_message("  %s: %s\n", c ? (const char *)c : "?", x ? (const char *)x : "");
		xmlFree(c);
		xmlFree(x);
	}
}

static void expect_status(const struct rp *p, const char *st)
{
	if (!p->rr)
		fail_msg("no RegistryResponse (HTTP %d): %.400s", p->reply.status, hie_buf_str(&p->reply.body));
	if (strcmp(p->status, st) != 0) {
		dump_errors(p);
		fail_msg("status %s, expected %s", p->status, st);
	}
}

static void expect_error(const struct rp *p, const char *code, const char *s1, const char *s2, const char *s3)
{
	if (!has_error(p, code, s1, s2, s3)) {
		dump_errors(p);
		fail_msg("no %s with '%s' '%s' '%s'", code, s1 ? s1 : "", s2 ? s2 : "", s3 ? s3 : "");
	}
}

static void pnr(const char *metadata, const struct rdoc *docs, size_t n, bool mtom, const struct mtom_opts *mo,
		struct rp *p)
{
	struct rq q;
	rq_init(&q);
	build_pnr(&q, metadata, docs, n, mtom, mo);
	send_rq(&q, p);
	rq_free(&q);
}

static void retrieve(const struct ritem *it, size_t n, struct rp *p)
{
	struct rq q;
	rq_init(&q);
	build_retrieve(&q, it, n);
	send_rq(&q, p);
	rq_free(&q);
}

static const struct rdoc *two_docs(enum how how)
{
	static struct rdoc d[2];
	d[0] = (struct rdoc){.id = "myDocId1", .data = DOC1, .len = sizeof DOC1, .how = how};
	d[1] = (struct rdoc){.id = "myDocId2", .data = DOC2, .len = sizeof DOC2 - 1, .how = how};
	return d;
}

/* The DocumentResponse for uid in a retrieve reply: its bytes (valid while p lives) and mimeType. */
static bool response_doc(const struct rp *p, const char *uid, const char **data, size_t *len, char *mime,
			 size_t mimelen, struct hie_buf *scratch)
{
	const xmlNode *dr;
	HIE_XML_FOREACH(dr, p->msg->payload, NS_XDSB, "DocumentResponse") {
		struct hie_buf t;
		hie_buf_init(&t, 4096);
		hie_xml_text(hie_xml_child(dr, NS_XDSB, "DocumentUniqueId"), &t);
		bool hit = strcmp(hie_buf_str(&t), uid) == 0;
		hie_buf_free(&t);
		if (!hit)
			continue;
		hie_buf_init(&t, 4096);
		hie_xml_text(hie_xml_child(dr, NS_XDSB, "mimeType"), &t);
		snprintf(mime, mimelen, "%s", hie_buf_str(&t));
		hie_buf_free(&t);
		const xmlNode *doc = hie_xml_child(dr, NS_XDSB, "Document");
		assert_non_null(hie_xml_child(doc, HIE_XOP_NS, "Include")); /* MTOM, never inline */
		assert_int_equal(hie_soap_binary(p->msg, doc, data, len, scratch), HIE_OK);
		return true;
	}
	return false;
}

static size_t count_responses(const struct rp *p)
{
	size_t n = 0;
	const xmlNode *dr;
	HIE_XML_FOREACH(dr, p->msg->payload, NS_XDSB, "DocumentResponse")
		n++;
	return n;
}

static long long repo_rows(void)
{
	return pgtest_scalar(P, "SELECT count(*) FROM repo_documents", NULL);
}

/* ITI-41 + ITI-43 happy paths ------------------------------------------------------------------------- */

static void provide_then_retrieve(bool mtom)
{
	struct rp p;
	pnr(METADATA, two_docs(mtom ? MTOM : INLINE), 2, mtom, NULL, &p);
	expect_status(&p, ST_SUCCESS);
	assert_int_equal(p.reply.status, 200);
	/* MTOM request, MTOM reply */
	assert_int_equal(strncmp(hie_buf_str(&p.reply.content_type), "multipart/related", 17) == 0, mtom);
	rp_free(&p);
	assert_int_equal(repo_rows(), 2);

	const struct ritem it[] = {{.home = "urn:oid:1.2.3.99", .repo = REPO_UID, .uid = UID1},
				   {.repo = REPO_UID, .uid = UID2}};
	retrieve(it, 2, &p);
	expect_status(&p, ST_SUCCESS);
	assert_int_equal(strncmp(hie_buf_str(&p.reply.content_type), "multipart/related", 17), 0);
	assert_int_equal(count_responses(&p), 2);
	struct hie_buf scratch;
	hie_buf_init(&scratch, 1u << 20);
	const char *data;
	size_t len;
	char mime[64];
	assert_true(response_doc(&p, UID1, &data, &len, mime, sizeof mime, &scratch));
	assert_int_equal(len, sizeof DOC1);
	assert_memory_equal(data, DOC1, sizeof DOC1);
	assert_string_equal(mime, "text/plain");
	assert_true(response_doc(&p, UID2, &data, &len, mime, sizeof mime, &scratch));
	assert_int_equal(len, strlen(DOC2));
	assert_memory_equal(data, DOC2, len);
	/* HomeCommunityId echoed where it was given, and only there */
	const xmlNode *dr = hie_xml_child(p.msg->payload, NS_XDSB, "DocumentResponse");
	struct hie_buf t;
	hie_buf_init(&t, 256);
	hie_xml_text(hie_xml_child(dr, NS_XDSB, "HomeCommunityId"), &t);
	assert_string_equal(hie_buf_str(&t), "urn:oid:1.2.3.99");
	hie_buf_free(&t);
	assert_null(hie_xml_child(hie_xml_next(dr, NS_XDSB, "DocumentResponse"), NS_XDSB, "HomeCommunityId"));
	hie_buf_free(&scratch);
	rp_free(&p);
}

static void test_pnr_mtom_retrieve(void **state)
{
	(void)state;
	NEED_DB();
	provide_then_retrieve(true);
}

static void test_pnr_inline_retrieve(void **state)
{
	(void)state;
	NEED_DB();
	provide_then_retrieve(false);
}

static void test_hash_size_stored(void **state)
{
	(void)state;
	NEED_DB();
	struct rp p;
	pnr(METADATA, two_docs(MTOM), 2, true, NULL, &p);
	expect_status(&p, ST_SUCCESS);
	rp_free(&p);
	char want[41], got[256];
	sha1_hex(DOC1, sizeof DOC1, want);
	sql_text("SELECT hash FROM reg_documents WHERE unique_id = $1", UID1, got, sizeof got);
	assert_string_equal(got, want);
	sql_text("SELECT size FROM reg_documents WHERE unique_id = $1", UID1, got, sizeof got);
	assert_string_equal(got, "300000");
	sql_text("SELECT repository_unique_id FROM reg_documents WHERE unique_id = $1", UID1, got, sizeof got);
	assert_string_equal(got, REPO_UID);
	/* the stored XML carries them too (what a stored query returns) */
	sql_text("SELECT (xml LIKE '%name=\"hash\"%' || $1 || '%')::text FROM reg_documents WHERE unique_id = '" UID1
		 "'",
		 want, got, sizeof got);
	assert_string_equal(got, "true");
	sql_text("SELECT (xml LIKE '%name=\"repositoryUniqueId\"%' || $1 || '%')::text FROM reg_documents"
		 " WHERE unique_id = '" UID1 "'",
		 REPO_UID, got, sizeof got);
	assert_string_equal(got, "true");
	/* and the repository row matches, bytes included */
	sql_text("SELECT hash || ' ' || size || ' ' || mime_type || ' ' || repository_unique_id FROM repo_documents"
		 " WHERE unique_id = $1",
		 UID1, got, sizeof got);
	char line[256];
	snprintf(line, sizeof line, "%s 300000 text/plain " REPO_UID, want);
	assert_string_equal(got, line);
	char want256[65]; /* PostgreSQL has no sha1(): compare the stored bytes by SHA-256 */
	digest_hex(EVP_sha256(), DOC1, sizeof DOC1, want256);
	sql_text("SELECT encode(sha256(content), 'hex') FROM repo_documents WHERE unique_id = $1", UID1, got,
		 sizeof got);
	assert_string_equal(got, want256);
}

static char *with_slots(const char *hash, const char *size)
{
	/* hash/size slots supplied by the source on the first DocumentEntry */
	char slots[512];
	snprintf(slots, sizeof slots,
		 "<rim:Slot name=\"hash\"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>"
		 "<rim:Slot name=\"size\"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>"
		 "<rim:Slot name=\"creationTime\">",
		 hash, size);
	return tu_replace(strdup(METADATA), "<rim:Slot name=\"creationTime\">", slots, 0);
}

static void test_supplied_values_case_insensitive(void **state)
{
	(void)state;
	NEED_DB();
	char want[41];
	sha1_hex(DOC1, sizeof DOC1, want);
	for (char *c = want; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	char *md = with_slots(want, "300000");
	struct rp p;
	pnr(md, two_docs(MTOM), 2, true, NULL, &p);
	expect_status(&p, ST_SUCCESS);
	rp_free(&p);
	char got[64];
	sql_text("SELECT hash FROM reg_documents WHERE unique_id = $1", UID1, got, sizeof got);
	for (char *c = want; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c = (char)(*c - 'A' + 'a');
	assert_string_equal(got, want); /* stored as the repository computed it */
	free(md);
}

static void test_resubmission_idempotent(void **state)
{
	(void)state;
	NEED_DB();
	struct rp p;
	for (int i = 0; i < 2; i++) {
		pnr(METADATA, two_docs(i ? INLINE : MTOM), 2, i == 0, NULL, &p);
		expect_status(&p, ST_SUCCESS);
		rp_free(&p);
	}
	assert_int_equal(repo_rows(), 2);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM reg_documents", NULL), 2);
}

static void test_unknown_patient_rolls_back(void **state)
{
	(void)state;
	NEED_DB();
	assert_int_equal(pgtest_exec(P, "TRUNCATE patients"), HIE_OK);
	struct rp p;
	pnr(METADATA, two_docs(MTOM), 2, true, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSUnknownPatientId", PID_ID, NULL, NULL);
	rp_free(&p);
	assert_int_equal(repo_rows(), 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM reg_documents", NULL), 0);
}

/* ITI-41 repository rules (no database reached) -------------------------------------------------------- */

static void test_wrong_hash(void **state)
{
	(void)state;
	NEED_CORPUS();
	char want[41];
	sha1_hex(DOC1, sizeof DOC1, want);
	char *md = with_slots("0000000000000000000000000000000000000000", "300000");
	struct rp p;
	pnr(md, two_docs(MTOM), 2, true, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSRepositoryMetadataError", "hash", "0000000000000000000000000000000000000000", want);
	assert_false(has_error(&p, "XDSRepositoryMetadataError", "size", NULL, NULL));
	rp_free(&p);
	if (P && !T.skip)
		assert_int_equal(repo_rows(), 0);
	free(md);
}

static void test_wrong_size(void **state)
{
	(void)state;
	NEED_CORPUS();
	char want[41];
	sha1_hex(DOC1, sizeof DOC1, want);
	char *md = with_slots(want, "299999");
	struct rp p;
	pnr(md, two_docs(INLINE), 2, false, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSRepositoryMetadataError", "size", "299999", "300000");
	rp_free(&p);
	free(md);
	md = with_slots(want, "3e5");
	pnr(md, two_docs(INLINE), 2, false, NULL, &p);
	expect_error(&p, "XDSRepositoryMetadataError", "size", "3e5", "300000");
	rp_free(&p);
	free(md);
}

static void test_missing_document(void **state)
{
	(void)state;
	NEED_CORPUS();
	struct rp p;
	pnr(METADATA, two_docs(MTOM), 1, true, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSMissingDocument", "myDocId2", UID2, NULL);
	assert_false(has_error(&p, "XDSMissingDocument", "myDocId1", NULL, NULL));
	rp_free(&p);
}

static void test_missing_metadata(void **state)
{
	(void)state;
	NEED_CORPUS();
	struct rdoc d[3];
	memcpy(d, two_docs(INLINE), 2 * sizeof *d);
	d[2] = (struct rdoc){.id = "ghost", .data = "boo", .len = 3};
	struct rp p;
	pnr(METADATA, d, 3, false, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSMissingDocumentMetadata", "ghost", NULL, NULL);
	rp_free(&p);
	/* a Document naming an object that is not a DocumentEntry (the SubmissionSet) */
	d[2].id = "mySsId01";
	pnr(METADATA, d, 3, false, NULL, &p);
	expect_error(&p, "XDSMissingDocumentMetadata", "mySsId01", NULL, NULL);
	rp_free(&p);
	/* a Document with no id at all */
	d[2].id = "";
	pnr(METADATA, d, 3, false, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSRepositoryMetadataError", "no id", NULL, NULL);
	rp_free(&p);
}

static void test_duplicate_document_id(void **state)
{
	(void)state;
	NEED_CORPUS();
	struct rdoc d[3];
	memcpy(d, two_docs(INLINE), 2 * sizeof *d);
	d[2] = d[1];
	struct rp p;
	pnr(METADATA, d, 3, false, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSRepositoryMetadataError", "myDocId2", "more than once", NULL);
	rp_free(&p);
}

static void test_include_names_no_part(void **state)
{
	(void)state;
	NEED_CORPUS();
	struct rdoc d[2];
	memcpy(d, two_docs(MTOM), sizeof d);
	d[1].how = INCLUDE_NO_PART;
	struct rp p;
	pnr(METADATA, d, 2, true, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSMissingDocument", "myDocId2", "no MIME part", NULL);
	rp_free(&p);
	/* xop:Include in a plain SOAP message */
	d[0].how = INLINE;
	pnr(METADATA, d, 2, false, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSMissingDocument", "myDocId2", "not MTOM", NULL);
	rp_free(&p);
}

static void test_bad_base64(void **state)
{
	(void)state;
	NEED_CORPUS();
	struct rdoc d[2];
	memcpy(d, two_docs(INLINE), sizeof d);
	d[0].how = BAD_BASE64;
	struct rp p;
	pnr(METADATA, d, 2, false, NULL, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSRepositoryMetadataError", "myDocId1", "base64", NULL);
	rp_free(&p);
}

static void test_duplicate_content_id(void **state)
{
	(void)state;
	NEED_CORPUS();
	const struct mtom_opts mo = {.dup_cid = true};
	struct rp p;
	pnr(METADATA, two_docs(MTOM), 2, true, &mo, &p);
	assert_true(is_fault(&p));
	assert_int_equal(p.reply.status, 500);
	assert_non_null(strstr(p.reply.body.data, "env:Sender"));
	rp_free(&p);
}

static void test_part_missing(void **state)
{
	(void)state;
	NEED_CORPUS();
	const struct mtom_opts mo = {.drop_last = true};
	struct rp p;
	pnr(METADATA, two_docs(MTOM), 2, true, &mo, &p);
	assert_true(is_fault(&p));
	assert_int_equal(p.reply.status, 500);
	rp_free(&p);
}

static void test_not_a_pnr(void **state)
{
	(void)state;
	struct rq q;
	struct rp p;
	static const char *const bodies[] = {
		"<lcm:SubmitObjectsRequest xmlns:lcm=\"urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0\"/>",
		"<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb=\"" NS_XDSB "\"><xdsb:Document id=\"a\">AA==</xdsb:Document>"
		"</xdsb:ProvideAndRegisterDocumentSetRequest>",
		"",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		rq_init(&q);
		hie_buf_addstr(&q.ct, "application/soap+xml; action=\"" ACT_PNR "\"");
		envelope(&q.body, ACT_PNR, bodies[i]);
		send_rq(&q, &p);
		assert_true(is_fault(&p));
		assert_non_null(strstr(p.reply.body.data, "env:Sender"));
		rp_free(&p);
		rq_free(&q);
	}
}

/* ITI-43 ----------------------------------------------------------------------------------------------- */

static void test_retrieve_partial(void **state)
{
	(void)state;
	NEED_DB();
	struct rp p;
	pnr(METADATA, two_docs(MTOM), 2, true, NULL, &p);
	expect_status(&p, ST_SUCCESS);
	rp_free(&p);
	const struct ritem it[] = {{.repo = REPO_UID, .uid = UID1},
				   {.repo = REPO_UID, .uid = "1.2.42.404"},
				   {.repo = REPO_UID, .uid = UID2}};
	retrieve(it, 3, &p);
	expect_status(&p, ST_PARTIAL);
	expect_error(&p, "XDSDocumentUniqueIdError", "1.2.42.404", NULL, NULL);
	assert_int_equal(count_responses(&p), 2);
	struct hie_buf scratch;
	hie_buf_init(&scratch, 1024);
	const char *data;
	size_t len;
	char mime[64];
	assert_true(response_doc(&p, UID2, &data, &len, mime, sizeof mime, &scratch));
	assert_memory_equal(data, DOC2, strlen(DOC2));
	assert_false(response_doc(&p, "1.2.42.404", &data, &len, mime, sizeof mime, &scratch));
	hie_buf_free(&scratch);
	rp_free(&p);
	/* one found, one addressed to another repository */
	const struct ritem it2[] = {{.repo = REPO_UID, .uid = UID1}, {.repo = "1.9.9.9", .uid = UID2}};
	retrieve(it2, 2, &p);
	expect_status(&p, ST_PARTIAL);
	expect_error(&p, "XDSUnknownRepositoryId", "1.9.9.9", NULL, NULL);
	assert_int_equal(count_responses(&p), 1);
	rp_free(&p);
}

/* The same document twice (two parts, one copy of the bytes), and uniqueIds that try to break the array literal. */
static void test_retrieve_twice_and_hostile_ids(void **state)
{
	(void)state;
	NEED_DB();
	struct rp p;
	pnr(METADATA, two_docs(INLINE), 2, false, NULL, &p);
	expect_status(&p, ST_SUCCESS);
	rp_free(&p);
	const struct ritem it[] = {{.repo = REPO_UID, .uid = UID2}, {.repo = REPO_UID, .uid = UID2}};
	retrieve(it, 2, &p);
	expect_status(&p, ST_SUCCESS);
	assert_int_equal(count_responses(&p), 2);
	rp_free(&p);
	/* had the literal not been escaped, each would smuggle UID1 into the ANY() list and return it */
	const struct ritem bad[] = {{.repo = REPO_UID, .uid = "x\"," UID1},
				    {.repo = REPO_UID, .uid = "x\\\"," UID1},
				    {.repo = REPO_UID, .uid = "}," UID1 ",{"},
				    {.repo = REPO_UID, .uid = "NULL"}};
	retrieve(bad, 4, &p);
	expect_status(&p, ST_FAILURE);
	assert_int_equal(count_responses(&p), 0);
	expect_error(&p, "XDSDocumentUniqueIdError", "x\"," UID1, NULL, NULL);
	assert_false(has_error(&p, "XDSRepositoryError", NULL, NULL, NULL));
	rp_free(&p);
}

static void test_retrieve_none(void **state)
{
	(void)state;
	NEED_DB();
	const struct ritem it[] = {{.repo = REPO_UID, .uid = "1.2.42.404"}, {.repo = REPO_UID, .uid = "1.2.42.405"}};
	struct rp p;
	retrieve(it, 2, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSDocumentUniqueIdError", "1.2.42.404", NULL, NULL);
	expect_error(&p, "XDSDocumentUniqueIdError", "1.2.42.405", NULL, NULL);
	assert_int_equal(count_responses(&p), 0);
	assert_int_equal(strncmp(hie_buf_str(&p.reply.content_type), "multipart/related", 17), 0);
	rp_free(&p);
}

static void test_retrieve_wrong_repository(void **state)
{
	(void)state;
	const struct ritem it[] = {{.repo = "1.9.9.9", .uid = UID1}, {.uid = UID2}, {.repo = REPO_UID}};
	struct rp p;
	retrieve(it, 3, &p);
	expect_status(&p, ST_FAILURE);
	expect_error(&p, "XDSUnknownRepositoryId", "1.9.9.9", NULL, NULL);
	expect_error(&p, "XDSUnknownRepositoryId", "missing", NULL, NULL);
	expect_error(&p, "XDSDocumentUniqueIdError", "missing", NULL, NULL);
	assert_int_equal(count_responses(&p), 0);
	rp_free(&p);
}

static void test_retrieve_empty_request(void **state)
{
	(void)state;
	struct rp p;
	retrieve(NULL, 0, &p);
	assert_true(is_fault(&p));
	assert_non_null(strstr(p.reply.body.data, "env:Sender"));
	rp_free(&p);
}

/* core_db's hie_db_exec_bin (added for the repository): raw bytes in, raw bytes out, text beside them. */
static void test_db_exec_bin(void **state)
{
	(void)state;
	NEED_DB();
	char bytes[512];
	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (char)(255 - (i & 0xff));
	PGconn *c;
	PGresult *r = NULL;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	const char *v[] = {bytes, "abc"};
	const int lens[] = {(int)sizeof bytes, 0}, fmts[] = {1, 0};
	hie_err_t err = hie_db_exec_bin(c, "SELECT $1::bytea, octet_length($1::bytea)::text, $2::text", 2, v, lens, fmts,
					1, &r);
	bool same = !err && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == (int)sizeof bytes &&
		    memcmp(PQgetvalue(r, 0, 0), bytes, sizeof bytes) == 0 && strcmp(PQgetvalue(r, 0, 1), "512") == 0 &&
		    strcmp(PQgetvalue(r, 0, 2), "abc") == 0;
	PQclear(r);
	/* text result of the same bytea is the hex form: proof the format switch is honoured */
	err = err ? err : hie_db_exec_bin(c, "SELECT $1::bytea", 1, v, lens, fmts, 0, &r);
	bool hex = !err && strncmp(PQgetvalue(r, 0, 0), "\\xfffefd", 8) == 0;
	PQclear(r);
	hie_err_t bad1 = hie_db_exec_bin(c, "SELECT $1::bytea", 1, v, NULL, fmts, 1, &r);
	hie_err_t bad2 = hie_db_exec_bin(c, "SELECT 1", 0, NULL, NULL, NULL, 2, &r);
	hie_err_t bad3 = hie_db_exec_bin(c, "SELECT nope", 0, NULL, NULL, NULL, 1, &r);
	hie_db_release(P, c, false);
	assert_int_equal(err, HIE_OK);
	assert_true(same);
	assert_true(hex);
	assert_int_equal(bad1, HIE_EINVAL);
	assert_int_equal(bad2, HIE_EINVAL);
	assert_int_equal(bad3, HIE_EDB);
	assert_null(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_pnr_mtom_retrieve, setup),
		cmocka_unit_test_setup(test_pnr_inline_retrieve, setup),
		cmocka_unit_test_setup(test_hash_size_stored, setup),
		cmocka_unit_test_setup(test_supplied_values_case_insensitive, setup),
		cmocka_unit_test_setup(test_resubmission_idempotent, setup),
		cmocka_unit_test_setup(test_unknown_patient_rolls_back, setup),
		cmocka_unit_test_setup(test_wrong_hash, setup),
		cmocka_unit_test_setup(test_wrong_size, setup),
		cmocka_unit_test_setup(test_missing_document, setup),
		cmocka_unit_test_setup(test_missing_metadata, setup),
		cmocka_unit_test_setup(test_duplicate_document_id, setup),
		cmocka_unit_test_setup(test_include_names_no_part, setup),
		cmocka_unit_test_setup(test_bad_base64, setup),
		cmocka_unit_test_setup(test_duplicate_content_id, setup),
		cmocka_unit_test_setup(test_part_missing, setup),
		cmocka_unit_test_setup(test_not_a_pnr, setup),
		cmocka_unit_test_setup(test_retrieve_partial, setup),
		cmocka_unit_test_setup(test_retrieve_twice_and_hostile_ids, setup),
		cmocka_unit_test_setup(test_retrieve_none, setup),
		cmocka_unit_test_setup(test_retrieve_wrong_repository, setup),
		cmocka_unit_test_setup(test_retrieve_empty_request, setup),
		cmocka_unit_test_setup(test_db_exec_bin, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
