/*
 * hisp_xdr_test.c — the XDR Document Recipient (hisp_xdr_in.c, hisp_xdr_meta.c) end to end on a real PostgreSQL:
 * a core_http server on loopback (TLS from certtest.h, and a plain one for the require_tls case) hands /xdr to
 * a SOAP router with hisp_xdr_routes exactly as node_web.c does; the client is libcurl with HTTP Basic.
 * Requests are the NIST testkit's XDR tests CCDA_Ambulatory_full_metadata and _minimal_metadata
 * (testdata-xdr; their ebRS 2.1 metadata rewritten here as ebRS 3.0, addresses replaced with the test's), the
 * document the testkit's CCDA_Ambulatory.xml (a small stand-in CDA when the corpus is absent).
 * Checks: Success → one hisp_outbound message (sender, recipients, replay-stable Message-ID) whose
 * application/zip attachment hisp_xdm_read accepts with the same bytes, and one hisp.send job; the same
 * request again → Success and still one row; MTOM in → MTOM out, inline base64 accepted; missing document,
 * extra document, hash and size mismatch, no recipient, sender not granted, ebRS 2.1, not an ITI-41 → the
 * errors of row P and nothing queued; folder + RPLC → PartialSuccess with both warnings, message queued;
 * no / wrong Basic auth → 401 fault and the lockout (429); plain HTTP with require_tls → 403; the commit
 * failing half-way (a trigger) → Failure XDSRepositoryError and nothing queued, the retry then Success. Plus the
 * database-free pieces (XTN parsing through intendedRecipient, Message-ID, response XML).
 */
#define _XOPEN_SOURCE 700 /* nftw in pgtest.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "core/core_http.h"
#include "core/core_mime.h"
#include "core/core_soap.h"
#include "hisp/hisp_xdr_int.h"
#include "tests/unit/core/certtest.h"
#include "tests/unit/hisp/hisptest.h"

#define USER "alice@a.test"
#define PW "correct horse battery"
#define OTHER "mallory@a.test"
#define HOST "hisp.a.test"

static struct pgtest T;
static struct hie_db_pool *P;
static struct hie_cfg *cfg;
static struct hisp *H;
static struct certtest CT;
static struct hie_soap_router *R;
static struct hie_http_server *HTTPS, *HTTP;
static char state[64];
static char *DOC;          /* the CDA document */
static size_t DOC_LEN;

/* --- the server side: as node_web.c ------------------------------------------------------------------- */

static hie_err_t soap_handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	struct hie_soap_reply reply;
	struct hie_soap_call_ctx call = {.user = (void *)req, .peer = req->remote_addr};
	hie_soap_reply_init(&reply, 0);
	hie_err_t err = hie_soap_dispatch(ctx, req->route, hie_http_req_header(req, "Content-Type"), req->body,
					  req->body_len, &call, &reply);
	if (!err) {
		resp->status = reply.status;
		resp->content_type = NULL;
		hie_buf_free(&resp->body);
		resp->body = reply.body;
		hie_buf_init(&reply.body, 0);
		err = hie_http_resp_header(resp, "Content-Type", hie_buf_str(&reply.content_type));
	}
	hie_soap_reply_free(&reply);
	return err;
}

static int server_start(struct hie_http_server **out, bool tls)
{
	struct hie_http_config hc = {.threads = 2, .drain_ms = 1000, .body_max = 64u << 20};
	if (tls) {
		hc.tls_cert_file = CT.srv_pem;
		hc.tls_key_file = CT.srv_key;
	}
	const struct hie_http_route r = {.path = HISP_XDR_PATH, .methods = HIE_HTTP_POST, .fn = soap_handler, .ctx = R};
	if (hie_http_new(&hc, out) || hie_http_route_add(*out, &r) || hie_http_start(*out))
		return -1;
	return 0;
}

/* --- fixture ------------------------------------------------------------------------------------------ */

static hie_err_t add_users(PGconn *tx, void *arg)
{
	(void)arg;
	hie_err_t err = hisp_user_add(tx, USER, PW);
	if (!err)
		err = hisp_user_add(tx, OTHER, PW);
	return err;
}

static void load_document(void)
{
	const char *src = getenv("HIENODE_SRC");
	char path[1024];
	snprintf(path, sizeof path,
		 "%s/../shared/corpus/nist-toolkit/toolkitx/testkit/testdata-xdr/CCDA_Ambulatory_full_metadata/"
		 "CCDA_Ambulatory.xml",
		 src ? src : "/work/main");
	DOC = hisptest_slurp(path, &DOC_LEN);
	if (!DOC) {
		fprintf(stderr, "NOTE: NIST corpus absent (%s): a stand-in CDA document is used\n", path);
		static const char cda[] = "<?xml version=\"1.0\"?>\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\">"
					   "<title>Ambulatory summary</title></ClinicalDocument>\n";
		DOC = strdup(cda);
		DOC_LEN = sizeof cda - 1;
	}
}

static int group_setup(void **state_)
{
	(void)state_;
	static const struct hisptest_set set[] = {{"direct", "hostname", HOST},
						  {"direct", "dns_server", "127.0.0.1:9"},
						  {"edge", "require_tls", "true"},
						  {"edge", "auth_max_failures", "3"}};
	if (hisptest_open(&T, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	load_document();
	if (hisptest_tmpdir(state, sizeof state, "hxdrst") != 0 || certtest_make(&CT, "hxdrct") != 0 ||
	    hisptest_config(&cfg, set, sizeof set / sizeof set[0]) != 0)
		return -1;
	if (hie_db_tx(P, add_users, NULL) != HIE_OK)
		return -1;
	if (hisp_service_open(cfg, P, state, &H) != HIE_OK)
		return -1;
	if (hie_soap_router_new(NULL, &R) || hisp_xdr_routes(H, R))
		return -1;
	if (server_start(&HTTPS, true) || server_start(&HTTP, false))
		return -1;
	return 0;
}

static int group_teardown(void **state_)
{
	(void)state_;
	if (!T.skip) {
		hie_http_free(HTTPS);
		hie_http_free(HTTP);
		hie_soap_router_free(R);
		hisp_service_close(H);
		hie_cfg_free(cfg);
		certtest_remove(&CT);
		hisptest_rmdir(state);
		free(DOC);
	}
	pgtest_close(&T, P);
	return 0;
}

static int clean(void)
{
	return hisptest_exec_all(P, "TRUNCATE hisp_outbound CASCADE", "DELETE FROM jobs", NULL);
}

static int setup(void **state_)
{
	(void)state_;
	if (T.skip)
		return 0;
	hisp_auth_limit_reset();
	return clean();
}

/* --- requests ----------------------------------------------------------------------------------------- */

struct xreq {
	bool minimal;               /* the _minimal_metadata test's metadata, else _full_metadata's */
	const char *ss_uid;
	const char *title;          /* SubmissionSet Name; NULL = "Physical" */
	const char *from_hdr;       /* direct:from */
	const char *to_hdr[3];      /* direct:to */
	bool address_block;         /* the headers inside direct:addressBlock */
	const char *author;         /* authorTelecommunication address; NULL = none */
	const char *recipient[3];   /* intendedRecipient addresses (XON|XCN|XTN) */
	const char *level;          /* direct:metadata-level */
	bool hash, bad_hash, bad_size;
	bool missing_doc;           /* Document02 in the metadata, no xdsb:Document */
	bool extra_doc;             /* xdsb:Document Document03 without metadata */
	bool folder, rplc;
	bool v21;                   /* the metadata left in ebRS 2.1 */
	bool not_iti41;
	bool inline_docs;           /* base64 in the message instead of MTOM */
};

#define SLOT(name, value) "<rim:Slot name=\"" name "\"><rim:ValueList><rim:Value>" value "</rim:Value></rim:ValueList></rim:Slot>"
#define CLS(id, scheme, obj, node, nameval, coding)                                                                \
	"<rim:Classification id=\"" id "\" classificationScheme=\"" scheme "\" classifiedObject=\"" obj                \
	"\" nodeRepresentation=\"" node "\">" SLOT("codingScheme", coding) "<rim:Name><rim:LocalizedString value=\"" \
	nameval "\"/></rim:Name></rim:Classification>"
#define EXTID(id, obj, scheme, value, name)                                                                        \
	"<rim:ExternalIdentifier id=\"" id "\" registryObject=\"" obj "\" identificationScheme=\"" scheme            \
	"\" value=\"" value "\"><rim:Name><rim:LocalizedString value=\"" name "\"/></rim:Name></rim:ExternalIdentifier>"

static void sha1hex(const void *d, size_t n, char out[41]);

/* A DocumentEntry (ebRS 3.0), from the NIST single_doc.xml of the chosen test. */
static void add_entry(struct hie_buf *b, const struct xreq *x, const char *id, const char *uid)
{
	hie_buf_addf(b,
		     "<rim:ExtrinsicObject id=\"%s\" mimeType=\"text/xml\" objectType=\"urn:uuid:7edca82f-054d-47f2-a032-"
		     "9b2a5b5186c1\">",
		     id);
	if (x->hash || x->bad_hash) {
		char h[41];
		sha1hex(DOC, DOC_LEN, h);
		if (x->bad_hash)
			h[0] = h[0] == '0' ? '1' : '0';
		hie_buf_addf(b, "<rim:Slot name=\"hash\"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>",
			     h);
		hie_buf_addf(b, "<rim:Slot name=\"size\"><rim:ValueList><rim:Value>%zu</rim:Value></rim:ValueList></rim:Slot>",
			     DOC_LEN);
	} else if (x->bad_size) {
		hie_buf_addf(b, "<rim:Slot name=\"size\"><rim:ValueList><rim:Value>%zu</rim:Value></rim:ValueList></rim:Slot>",
			     DOC_LEN + 1);
	}
	if (!x->minimal) {
		hie_buf_addstr(b, SLOT("creationTime", "20061224") SLOT("languageCode", "en-us")
				  SLOT("serviceStartTime", "200612230800") SLOT("serviceStopTime", "200612230900")
				  SLOT("sourcePatientId", "89765a87b^^^&amp;1.3.4.5&amp;ISO"));
		hie_buf_addstr(b, "<rim:Name><rim:LocalizedString value=\"DocA\"/></rim:Name>");
		hie_buf_addf(b,
			     "<rim:Classification id=\"%s-au\" classificationScheme=\"urn:uuid:93606bcf-9494-43ec-9b4e-"
			     "a7748d1a838d\" classifiedObject=\"%s\" nodeRepresentation=\"\">" SLOT("authorPerson",
												    "^Smitty^Gerald^^^")
				     SLOT("authorInstitution", "Cleveland Clinic") "</rim:Classification>",
			     id, id);
		hie_buf_addstr(b, CLS("cl-class", "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a", "Document01",
				      "History and Physical", "History and Physical", "Connect-a-thon classCodes")
				  CLS("cl-conf", "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", "Document01",
				      "1.3.6.1.4.1.21367.2006.7.102", "Clinical-Staff", "Connect-a-thon confidentialityCodes")
				  CLS("cl-fmt", "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d", "Document01",
				      "CDAR2/IHE 1.0", "CDAR2/IHE 1.0", "Connect-a-thon formatCodes")
				  CLS("cl-fac", "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", "Document01", "Outpatient",
				      "Outpatient", "Connect-a-thon healthcareFacilityTypeCodes 2")
				  CLS("cl-prac", "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead", "Document01", "Dialysis",
				      "Dialysis", "Connect-a-thon practiceSettingCodes")
				  CLS("cl-type", "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", "Document01", "34108-1",
				      "Outpatient Evaluation And Management", "LOINC"));
		hie_buf_addf(b,
			     "<rim:ExternalIdentifier id=\"%s-pid\" registryObject=\"%s\" identificationScheme=\"urn:uuid:"
			     "58a6f841-87b3-4a3e-92fd-a8ffeff98427\" value=\"pid1^^^&amp;1.2.3&amp;ISO\"><rim:Name>"
			     "<rim:LocalizedString value=\"XDSDocumentEntry.patientId\"/></rim:Name></rim:ExternalIdentifier>",
			     id, id);
	}
	hie_buf_addf(b,
		     "<rim:ExternalIdentifier id=\"%s-uid\" registryObject=\"%s\" identificationScheme=\"urn:uuid:"
		     "2e82c1f6-a085-4c72-9da3-8640a32e42ab\" value=\"%s\"><rim:Name><rim:LocalizedString "
		     "value=\"XDSDocumentEntry.uniqueId\"/></rim:Name></rim:ExternalIdentifier></rim:ExtrinsicObject>",
		     id, id, uid);
}

static void add_submission_set(struct hie_buf *b, const struct xreq *x)
{
	hie_buf_addstr(b, "<rim:RegistryPackage id=\"SubmissionSet01\" objectType=\"urn:oasis:names:tc:ebxml-regrep:"
			  "ObjectType:RegistryObject:RegistryPackage\">" SLOT("submissionTime", "20121025235050"));
	if (x->recipient[0]) {
		hie_buf_addstr(b, "<rim:Slot name=\"intendedRecipient\"><rim:ValueList>");
		for (int i = 0; i < 3 && x->recipient[i]; i++)
			hie_buf_addf(b,
				     i == 0 ? "<rim:Value>Some Hospital^^^^^^^^^1.2.3.4.5.6.7.8.9.1789.45|^Wel^Marcus^^^Dr^MD|"
					      "^^Internet^%s</rim:Value>"
					    : "<rim:Value>|^^Internet^%s</rim:Value>",
				     x->recipient[i]);
		hie_buf_addstr(b, "</rim:ValueList></rim:Slot>");
	}
	if (!x->minimal)
		hie_buf_addf(b, "<rim:Name><rim:LocalizedString value=\"%s\"/></rim:Name>"
				"<rim:Description><rim:LocalizedString value=\"Annual physical\"/></rim:Description>",
			     x->title ? x->title : "Physical");
	hie_buf_addstr(b, "<rim:Classification id=\"ss-author\" classificationScheme=\"urn:uuid:a7058bb9-b4e4-4307-"
			  "ba5b-e3f0ab85e12d\" classifiedObject=\"SubmissionSet01\" nodeRepresentation=\"\">");
	if (!x->minimal)
		hie_buf_addstr(b, SLOT("authorPerson", "^Dopplemeyer^Sherry^^^") SLOT("authorRole", "Primary Surgon"));
	if (x->author)
		hie_buf_addf(b, SLOT("authorTelecommunication", "^^Internet^%s"), x->author);
	hie_buf_addstr(b, "</rim:Classification>");
	if (!x->minimal)
		hie_buf_addstr(b, CLS("ss-ct", "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500", "SubmissionSet01",
				      "History and Physical", "History and Physical", "Connect-a-thon contentTypeCodes"));
	hie_buf_addf(b, EXTID("ss-uid", "SubmissionSet01", "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", "%s",
			      "XDSSubmissionSet.uniqueId") EXTID("ss-src", "SubmissionSet01",
								  "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
								  "1.43.456.45889.23451.1.2", "XDSSubmissionSet.sourceId"),
		     x->ss_uid);
	if (!x->minimal)
		hie_buf_addstr(b, EXTID("ss-pid", "SubmissionSet01", "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
					"pid1^^^&amp;1.2.3&amp;ISO", "XDSSubmissionSet.patientId"));
	hie_buf_addstr(b, "</rim:RegistryPackage>"
			  "<rim:Classification id=\"ss-class\" classifiedObject=\"SubmissionSet01\" classificationNode="
			  "\"urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd\"/>");
}

#define HASMEMBER "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"

static void add_assoc(struct hie_buf *b, const char *id, const char *type, const char *src, const char *dst)
{
	hie_buf_addf(b,
		     "<rim:Association id=\"%s\" associationType=\"%s\" sourceObject=\"%s\" targetObject=\"%s\""
		     " objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association\">",
		     id, type, src, dst);
	if (strcmp(src, "SubmissionSet01") == 0)
		hie_buf_addstr(b, SLOT("SubmissionSetStatus", "Original"));
	hie_buf_addstr(b, "</rim:Association>");
}

static void make_sor(struct hie_buf *b, const struct xreq *x)
{
	if (x->v21) { /* the testkit's file as it is: ebRS 2.1 */
		hie_buf_addf(b,
			     "<rs:SubmitObjectsRequest xmlns:rs=\"urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1\" "
			     "xmlns=\"urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1\"><LeafRegistryObjectList>"
			     "<ExtrinsicObject id=\"Document01\" mimeType=\"text/xml\"/>"
			     "<RegistryPackage id=\"SubmissionSet01\"/></LeafRegistryObjectList></rs:SubmitObjectsRequest>");
		return;
	}
	hie_buf_addstr(b, "<lcm:SubmitObjectsRequest xmlns:lcm=\"" HISP_NS_LCM3 "\" xmlns:rim=\"" HISP_NS_RIM3 "\">"
			  "<rim:RegistryObjectList>");
	add_entry(b, x, "Document01", "1.43.456.45889.23451.1.2.234.2");
	if (x->missing_doc)
		add_entry(b, x, "Document02", "1.43.456.45889.23451.1.2.234.3");
	add_submission_set(b, x);
	add_assoc(b, "as01", HASMEMBER, "SubmissionSet01", "Document01");
	if (x->missing_doc)
		add_assoc(b, "as02", HASMEMBER, "SubmissionSet01", "Document02");
	if (x->folder) {
		hie_buf_addstr(b, "<rim:RegistryPackage id=\"Folder01\"><rim:Name><rim:LocalizedString value=\"F\"/>"
				  "</rim:Name><rim:Classification id=\"f-class\" classifiedObject=\"Folder01\""
				  " classificationNode=\"urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2\"/>"
				  "</rim:RegistryPackage>");
		add_assoc(b, "as03", HASMEMBER, "SubmissionSet01", "Folder01");
		add_assoc(b, "as04", HASMEMBER, "Folder01", "Document01");
	}
	if (x->rplc)
		add_assoc(b, "as05", "urn:ihe:iti:2007:AssociationType:RPLC", "Document01",
			  "urn:uuid:0b3c4c2a-9b1f-4cbe-8a4d-3c0e4b3f5e11");
	hie_buf_addstr(b, "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>");
}

static void add_direct(struct hie_buf *h, const char *name, const char *v)
{
	hie_buf_addf(h, "<direct:%s xmlns:direct=\"" HISP_DIRECT_NS "\">%s</direct:%s>", name, v, name);
}

/* The whole HTTP request: body and Content-Type. */
static void make_request(const struct xreq *x, struct hie_buf *body, struct hie_buf *ct)
{
	struct hie_buf xml, hdr, b64;
	hie_buf_init(&xml, 64u << 20);
	hie_buf_init(&hdr, 1u << 20);
	hie_buf_init(&b64, 64u << 20);
	if (x->address_block)
		hie_buf_addstr(&hdr, "<direct:addressBlock xmlns:direct=\"" HISP_DIRECT_NS "\">");
	if (x->from_hdr)
		add_direct(&hdr, "from", x->from_hdr);
	for (int i = 0; i < 3 && x->to_hdr[i]; i++)
		add_direct(&hdr, "to", x->to_hdr[i]);
	if (x->address_block)
		hie_buf_addstr(&hdr, "</direct:addressBlock>");
	if (x->level)
		add_direct(&hdr, "metadata-level", x->level);
	if (x->not_iti41) {
		hie_buf_addstr(&xml, "<foo:Bar xmlns:foo=\"urn:example\"/>");
	} else {
		hie_buf_addstr(&xml, "<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb=\"" HISP_NS_XDSB "\">");
		make_sor(&xml, x);
		if (x->inline_docs) {
			assert_int_equal(hie_mime_base64_encode(DOC, DOC_LEN, false, &b64), HIE_OK);
			hie_buf_addf(&xml, "<xdsb:Document id=\"Document01\">%s</xdsb:Document>", b64.data);
		} else {
			hie_buf_addstr(&xml, "<xdsb:Document id=\"Document01\"><xop:Include xmlns:xop=\"" HIE_XOP_NS
					     "\" href=\"cid:doc1@test\"/></xdsb:Document>");
		}
		if (x->extra_doc)
			hie_buf_addstr(&xml, "<xdsb:Document id=\"Document03\"><xop:Include xmlns:xop=\"" HIE_XOP_NS
					     "\" href=\"cid:doc3@test\"/></xdsb:Document>");
		hie_buf_addstr(&xml, "</xdsb:ProvideAndRegisterDocumentSetRequest>");
	}
	struct hie_mtom_out_part parts[2] = {
		{.cid = "doc1@test", .content_type = "text/xml", .data = DOC, .len = DOC_LEN},
		{.cid = "doc3@test", .content_type = "text/plain", .data = "extra", .len = 5},
	};
	struct hie_soap_out o = {.action = HISP_XDR_ACTION,
				 .to = "https://127.0.0.1/xdr",
				 .reply_to_anonymous = true,
				 .header_xml = hdr.len ? hdr.data : NULL,
				 .body_xml = xml.data,
				 .body_len = xml.len,
				 .parts = x->inline_docs ? NULL : parts,
				 .nparts = x->inline_docs ? 0 : x->extra_doc ? 2 : 1,
				 .mtom = !x->inline_docs};
	assert_int_equal(hie_soap_build(&o, body, ct), HIE_OK);
	hie_buf_free(&xml);
	hie_buf_free(&hdr);
	hie_buf_free(&b64);
}

/* The NIST CCDA_Ambulatory_full_metadata request, addressed from USER to bob@b.test by direct headers. */
static struct xreq full(const char *uid)
{
	return (struct xreq){.ss_uid = uid, .from_hdr = USER, .to_hdr = {"bob@b.test"}, .author = "john.doe@healthcare.example.org",
			     .recipient = {"mwel@healthcare.example.org"}, .level = "XDS", .hash = true};
}

/* The NIST CCDA_Ambulatory_minimal_metadata request: addresses only in the metadata, metadata-level minimal. */
static struct xreq minimal(const char *uid)
{
	return (struct xreq){.minimal = true, .ss_uid = uid, .author = USER, .recipient = {"bob@b.test", "carol@c.test"},
			     .level = "minimal"};
}

/* --- the client --------------------------------------------------------------------------------------- */

struct answer {
	long http;
	char ctype[512];
	struct hie_buf body;
	char status[40];            /* RegistryResponse status (last segment), or "fault" */
	char codes[512];            /* "code,code," of the RegistryErrors; the fault reason for a fault */
	char severities[256];       /* "E,W," */
};

static size_t on_body(char *p, size_t s, size_t n, void *arg)
{
	return hie_buf_add(arg, p, s * n) == HIE_OK ? s * n : 0;
}

static void parse_answer(struct answer *a)
{
	struct hie_soap_msg *m = NULL;
	struct hie_soap_fault f = {0};
	a->status[0] = a->codes[0] = a->severities[0] = 0;
	if (hie_soap_parse(a->ctype, a->body.data, a->body.len, NULL, &m, &f) != HIE_OK) {
		snprintf(a->status, sizeof a->status, "unparsable");
		return;
	}
	xmlNode *p = m->payload;
	if (hie_xml_is(p, HIE_SOAP12_NS, "Fault")) {
		snprintf(a->status, sizeof a->status, "fault");
		struct hie_buf t;
		hie_buf_init(&t, 4096);
		xmlNode *r = hie_xml_child(p, HIE_SOAP12_NS, "Reason");
		if (r)
			hie_xml_text(r, &t);
		snprintf(a->codes, sizeof a->codes, "%s", hie_buf_str(&t));
		hie_buf_free(&t);
	} else if (hie_xml_is(p, HISP_NS_RS3, "RegistryResponse")) {
		xmlChar *st = xmlGetNoNsProp(p, BAD_CAST "status");
		const char *c = st ? strrchr((char *)st, ':') : NULL;
		snprintf(a->status, sizeof a->status, "%s", c ? c + 1 : "?");
		xmlFree(st);
		xmlNode *l = hie_xml_child(p, HISP_NS_RS3, "RegistryErrorList"), *e;
		if (l)
			HIE_XML_FOREACH(e, l, HISP_NS_RS3, "RegistryError") {
				xmlChar *code = xmlGetNoNsProp(e, BAD_CAST "errorCode");
				xmlChar *sev = xmlGetNoNsProp(e, BAD_CAST "severity");
				size_t n = strlen(a->codes);
				snprintf(a->codes + n, sizeof a->codes - n, "%s,", code ? (char *)code : "?");
				n = strlen(a->severities);
				snprintf(a->severities + n, sizeof a->severities - n, "%c,",
					 sev && strstr((char *)sev, ":Warning") ? 'W' : 'E');
				xmlFree(code);
				xmlFree(sev);
			}
	} else {
		snprintf(a->status, sizeof a->status, "other");
	}
	hie_soap_msg_free(m);
}

/* POSTs body to /xdr (TLS or plain) with Basic user:pass (user NULL = no Authorization). */
static void post_raw(bool tls, const char *user, const char *pass, const struct hie_buf *body, const char *ct,
		     struct answer *a)
{
	char url[128], ctl[1200];
	snprintf(url, sizeof url, "%s://127.0.0.1:%u%s", tls ? "https" : "http",
		 hie_http_port(tls ? HTTPS : HTTP), HISP_XDR_PATH);
	snprintf(ctl, sizeof ctl, "Content-Type: %s", ct);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	struct curl_slist *hl = curl_slist_append(NULL, ctl);
	hie_buf_init(&a->body, 64u << 20);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_CAINFO, CT.ca_pem);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a->body);
	if (user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, pass);
	}
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
	assert_int_equal(rc, CURLE_OK);
	char *ctr = NULL;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->http);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctr);
	snprintf(a->ctype, sizeof a->ctype, "%s", ctr ? ctr : "");
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	parse_answer(a);
}

static void submit(const struct xreq *x, const char *user, const char *pass, bool tls, struct answer *a)
{
	struct hie_buf body, ct;
	hie_buf_init(&body, 128u << 20);
	hie_buf_init(&ct, 4096);
	make_request(x, &body, &ct);
	post_raw(tls, user, pass, &body, ct.data, a);
	hie_buf_free(&body);
	hie_buf_free(&ct);
}

static long long outbound_count(void)
{
	return pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL);
}

static long long send_jobs(void)
{
	return pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.send'", NULL);
}

static void sha1hex(const void *d, size_t n, char out[41])
{
	unsigned char md[20];
	unsigned int l = 0;
	EVP_Digest(d, n, md, &l, EVP_sha1(), NULL);
	for (int i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The raw message of the one outbound row, its XDM attachment read back; checks the document bytes. */
static void check_message(const char *ss_uid, const char *sender, const char *const *rcpts, size_t nrcpts,
			  const char *subject)
{
	PGconn *c;
	PGresult *r = NULL;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec_bin(c, "SELECT raw, message_id, sender, kind, want_final FROM hisp_outbound", 0,
					 NULL, NULL, NULL, 1, &r),
			 HIE_OK);
	assert_int_equal(PQntuples(r), 1);
	char want_id[400];
	assert_int_equal(hisp_xdr_message_id(ss_uid, sender, HOST, want_id, sizeof want_id), HIE_OK);
	assert_int_equal((size_t)PQgetlength(r, 0, 1), strlen(want_id));
	assert_memory_equal(PQgetvalue(r, 0, 1), want_id, strlen(want_id));
	assert_memory_equal(PQgetvalue(r, 0, 2), sender, strlen(sender));
	assert_memory_equal(PQgetvalue(r, 0, 3), "message", 7);
	size_t len = (size_t)PQgetlength(r, 0, 0);
	char *raw = malloc(len + 1);
	memcpy(raw, PQgetvalue(r, 0, 0), len);
	raw[len] = 0;
	PQclear(r);
	hie_db_release(P, c, false);

	char line[600];
	snprintf(line, sizeof line, "\r\nMessage-ID: <%s>\r\n", want_id);
	assert_non_null(strstr(raw, line));
	snprintf(line, sizeof line, "\r\nSubject: %s\r\n", subject);
	assert_non_null(strstr(raw, line));
	assert_non_null(strstr(raw, "From: "));
	for (size_t i = 0; i < nrcpts; i++) {
		char sql[200];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM hisp_outbound_rcpt WHERE address = $1 AND state = 'pending'");
		assert_int_equal(pgtest_scalar(P, sql, rcpts[i]), 1);
	}
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound_rcpt", NULL), (long long)nrcpts);

	struct hisp_parts parts = {0};
	assert_int_equal(hisp_parts_split(raw, len, 64u << 20, &parts), HIE_OK);
	const struct hisp_part *zip = NULL;
	for (size_t i = 0; i < parts.n; i++)
		if (strcmp(parts.v[i].content_type, "application/zip") == 0)
			zip = &parts.v[i];
	assert_non_null(zip);
	assert_string_equal(zip->filename, "xdm.zip");
	struct hisp_xdm *x = NULL;
	char why[200] = "";
	hie_err_t err = hisp_xdm_read(zip->data, zip->len, &x, why, sizeof why);
	if (err)
		fprintf(stderr, "hisp_xdm_read: %s: %s\n", hie_errname(err), why);
	assert_int_equal(err, HIE_OK);
	assert_int_equal(x->ndocs, 1);
	assert_int_equal(x->docs[0].len, DOC_LEN);
	assert_memory_equal(x->docs[0].data, DOC, DOC_LEN);
	hisp_xdm_free(x);
	hisp_parts_free(&parts);
	free(raw);
}

static void answer_free(struct answer *a)
{
	hie_buf_free(&a->body);
}

/* --- cases ---------------------------------------------------------------------------------------------- */

static void test_full_metadata_success_and_replay(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct xreq x = full("1.43.456.45889.23451.1.2.234.1");
	struct answer a;
	submit(&x, USER, PW, true, &a);
	assert_int_equal(a.http, 200);
	assert_string_equal(a.status, "Success");
	assert_string_equal(a.codes, "");
	assert_non_null(strstr(a.ctype, "multipart/related")); /* MTOM in, MTOM out */
	answer_free(&a);
	const char *rc[] = {"bob@b.test"};
	check_message(x.ss_uid, USER, rc, 1, "Physical");
	assert_int_equal(send_jobs(), 1);

	/* the client retries (its response was lost): Success, still one message and one job */
	submit(&x, USER, PW, true, &a);
	assert_string_equal(a.status, "Success");
	answer_free(&a);
	assert_int_equal(outbound_count(), 1);
	assert_int_equal(send_jobs(), 1);
}

static void test_minimal_metadata_inline(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct xreq x = minimal("1.43.456.45889.23451.1.2.234.9");
	x.inline_docs = true;
	struct answer a;
	submit(&x, USER, PW, true, &a);
	assert_string_equal(a.status, "Success");
	assert_non_null(strstr(a.ctype, "application/soap+xml")); /* plain in, plain out */
	answer_free(&a);
	const char *rc[] = {"bob@b.test", "carol@c.test"};
	check_message(x.ss_uid, USER, rc, 2, "XDR submission"); /* no Name in minimal metadata */
	assert_int_equal(send_jobs(), 1);
}

static void test_address_block(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct xreq x = minimal("1.43.456.45889.23451.1.2.234.10");
	x.address_block = true;
	x.from_hdr = "mailto:Alice@A.test";
	x.to_hdr[0] = "mailto:dave@c.test";
	x.author = NULL;
	struct answer a;
	submit(&x, USER, PW, true, &a);
	assert_string_equal(a.status, "Success");
	answer_free(&a);
	const char *rc[] = {"dave@c.test"}; /* the headers win over intendedRecipient */
	check_message(x.ss_uid, USER, rc, 1, "XDR submission");
}

struct fail_case {
	const char *name;
	struct xreq x;
	const char *status;
	const char *codes;
	bool queued;
};

static void run_cases(const struct fail_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct fail_case *c = &cases[i];
		assert_int_equal(clean(), 0);
		struct answer a;
		submit(&c->x, USER, PW, true, &a);
		if (strcmp(a.status, c->status) != 0 || strcmp(a.codes, c->codes) != 0)
			fprintf(stderr, "case %s: status %s codes %s (want %s %s)\n", c->name, a.status, a.codes, c->status,
				c->codes);
		assert_string_equal(a.status, c->status);
		assert_string_equal(a.codes, c->codes);
		if (!strcmp(c->status, "PartialSuccess"))
			assert_non_null(strstr(a.severities, "W,"));
		answer_free(&a);
		assert_int_equal(outbound_count(), c->queued ? 1 : 0);
		assert_int_equal(send_jobs(), c->queued ? 1 : 0);
	}
}

static void test_failures(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct fail_case cases[] = {
		{.name = "missing document", .x = full("2.1"), .status = "Failure", .codes = "XDSMissingDocument,"},
		{.name = "extra document", .x = full("2.2"), .status = "Failure", .codes = "XDSMissingDocumentMetadata,"},
		{.name = "hash", .x = full("2.3"), .status = "Failure", .codes = "InvalidDocumentContent,"},
		{.name = "size", .x = full("2.4"), .status = "Failure", .codes = "InvalidDocumentContent,"},
		{.name = "no recipient", .x = minimal("2.5"), .status = "Failure", .codes = "XDSRepositoryMetadataError,"},
		{.name = "not granted", .x = full("2.6"), .status = "Failure", .codes = "XDSRepositoryMetadataError,"},
		{.name = "author not granted", .x = minimal("2.7"), .status = "Failure",
		 .codes = "XDSRepositoryMetadataError,"},
		{.name = "ebRS 2.1", .x = full("2.8"), .status = "Failure", .codes = "XDSRepositoryMetadataError,"},
		{.name = "bad level", .x = full("2.9"), .status = "Failure", .codes = "XDSRepositoryMetadataError,"},
		{.name = "recipient without address", .x = minimal("2.10"), .status = "Failure",
		 .codes = "XDSRepositoryMetadataError,"},
		{.name = "folder and RPLC", .x = full("2.11"), .status = "PartialSuccess",
		 .codes = "PartialReplaceContentNotProcessed,PartialFolderContentNotProcessed,", .queued = true},
	};
	cases[0].x.missing_doc = true;
	cases[1].x.extra_doc = true;
	cases[2].x.bad_hash = true;
	cases[3].x.hash = false;
	cases[3].x.bad_size = true;
	cases[4].x.recipient[0] = cases[4].x.recipient[1] = NULL;
	cases[5].x.from_hdr = "bob@b.test";
	cases[6].x.author = "mallory@a.test"; /* a user of its own, not granted to alice */
	cases[7].x.v21 = true;
	cases[8].x.level = "everything";
	cases[9].x.recipient[0] = "not-an-address";
	cases[10].x.folder = cases[10].x.rplc = true;
	run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_not_iti41(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct xreq x = full("3.1");
	x.not_iti41 = true;
	struct answer a;
	submit(&x, USER, PW, true, &a);
	assert_int_equal(a.http, 500);
	assert_string_equal(a.status, "fault");
	answer_free(&a);
	assert_int_equal(outbound_count(), 0);
}

static void test_authentication(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct xreq x = full("4.1");
	struct answer a;
	submit(&x, NULL, NULL, true, &a); /* no Authorization */
	assert_int_equal(a.http, 401);
	assert_string_equal(a.status, "fault");
	assert_string_equal(a.codes, "authentication required");
	answer_free(&a);
	for (int i = 0; i < 3; i++) {
		submit(&x, USER, "wrong password!", true, &a);
		assert_int_equal(a.http, 401);
		answer_free(&a);
	}
	submit(&x, USER, PW, true, &a); /* locked out: even the right password is not checked */
	assert_int_equal(a.http, 429);
	assert_string_equal(a.status, "fault");
	answer_free(&a);
	assert_int_equal(outbound_count(), 0);
	hisp_auth_limit_reset();
	submit(&x, USER, PW, true, &a);
	assert_string_equal(a.status, "Success");
	answer_free(&a);
	assert_int_equal(outbound_count(), 1);
}

static void test_plain_http_refused(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct xreq x = full("5.1");
	struct answer a;
	submit(&x, USER, PW, false, &a);
	assert_int_equal(a.http, 403);
	assert_string_equal(a.status, "fault");
	assert_string_equal(a.codes, "HTTPS required");
	answer_free(&a);
	assert_int_equal(outbound_count(), 0);
}

static void test_database_failure(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	/* the recipients' insert fails after the message row was written: all or nothing */
	assert_int_equal(pgtest_exec(P, "CREATE FUNCTION xdr_fail() RETURNS trigger LANGUAGE plpgsql AS"
				       " $$BEGIN RAISE EXCEPTION 'disk full'; END$$"),
			 HIE_OK);
	assert_int_equal(pgtest_exec(P, "CREATE TRIGGER xdr_fail BEFORE INSERT ON hisp_outbound_rcpt"
				       " FOR EACH ROW EXECUTE FUNCTION xdr_fail()"),
			 HIE_OK);
	struct xreq x = full("6.1");
	struct answer a;
	submit(&x, USER, PW, true, &a);
	assert_string_equal(a.status, "Failure");
	assert_string_equal(a.codes, "XDSRepositoryError,");
	answer_free(&a);
	assert_int_equal(outbound_count(), 0);
	assert_int_equal(send_jobs(), 0);
	assert_int_equal(pgtest_exec(P, "DROP TRIGGER xdr_fail ON hisp_outbound_rcpt"), HIE_OK);
	assert_int_equal(pgtest_exec(P, "DROP FUNCTION xdr_fail()"), HIE_OK);
	submit(&x, USER, PW, true, &a); /* the client's retry goes through */
	assert_string_equal(a.status, "Success");
	answer_free(&a);
	assert_int_equal(outbound_count(), 1);
}

/* --- database-free pieces ------------------------------------------------------------------------------- */

static void test_message_id_and_response(void **state_)
{
	(void)state_;
	char a[400], b[400], c[400];
	assert_int_equal(hisp_xdr_message_id("1.2.3", "alice@a.test", "h.test", a, sizeof a), HIE_OK);
	assert_int_equal(hisp_xdr_message_id("1.2.3", "alice@a.test", "h.test", b, sizeof b), HIE_OK);
	assert_int_equal(hisp_xdr_message_id("1.2.4", "alice@a.test", "h.test", c, sizeof c), HIE_OK);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), 64 + 1 + 6);
	assert_int_equal(hisp_xdr_message_id("1.2.3", "alice@a.test", "h.test", c, 20), HIE_ETOOBIG);

	struct hisp_xdr_errors e = {0};
	struct hie_buf x;
	hie_buf_init(&x, 1 << 16);
	assert_int_equal(hisp_xdr_response_xml(&e, &x), HIE_OK);
	assert_non_null(strstr(x.data, "ResponseStatusType:Success\"/>"));
	hisp_xdr_error_add(&e, XDR_WARN_FOLDER, true, "F<1>", "a \"quoted\" <ctx> & more\r\nline");
	assert_string_equal(hisp_xdr_status(&e), "PartialSuccess");
	hisp_xdr_error_add(&e, XDR_ERR_MISSING_DOC, false, "D", "x");
	assert_string_equal(hisp_xdr_status(&e), "Failure");
	hie_buf_reset(&x);
	assert_int_equal(hisp_xdr_response_xml(&e, &x), HIE_OK);
	assert_null(strstr(x.data, "<ctx>"));
	assert_null(strstr(x.data, "\r\n"));
	assert_non_null(strstr(x.data, "highestSeverity=\"urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error\""));
	xmlDoc *d = NULL;
	assert_int_equal(hie_xml_parse(x.data, x.len, NULL, &d, NULL), HIE_OK); /* well-formed */
	xmlFreeDoc(d);
	for (int i = 0; i < 30; i++)
		hisp_xdr_error_add(&e, XDR_ERR_METADATA, false, "", "n");
	assert_int_equal(e.n, HISP_XDR_MAX_ERRORS);
	assert_int_equal(e.nerrors, 31);
	hie_buf_free(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_id_and_response),
		cmocka_unit_test_setup(test_full_metadata_success_and_replay, setup),
		cmocka_unit_test_setup(test_minimal_metadata_inline, setup),
		cmocka_unit_test_setup(test_address_block, setup),
		cmocka_unit_test_setup(test_failures, setup),
		cmocka_unit_test_setup(test_not_iti41, setup),
		cmocka_unit_test_setup(test_authentication, setup),
		cmocka_unit_test_setup(test_plain_http_refused, setup),
		cmocka_unit_test_setup(test_database_failure, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
