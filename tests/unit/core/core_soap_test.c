/*
 * core_soap_test.c — SOAP 1.2 + WS-Addressing + MTOM parsing, replies, faults and dispatch, with hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_soap.h"

#define SQ_ACTION "urn:ihe:iti:2007:RegistryStoredQuery"
#define CT_SQ "application/soap+xml; charset=UTF-8; action=\"" SQ_ACTION "\""
#define MSGID "urn:uuid:2fa9eeec-8fa8-1888-3b43-0800271b8967"
#define ENV_OPEN                                                                                             \
	"<?xml version='1.0' encoding='UTF-8'?><soapenv:Envelope "                                             \
	"xmlns:soapenv=\"http://www.w3.org/2003/05/soap-envelope\" "                                           \
	"xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">"
#define HDR(action)                                                                                          \
	"<soapenv:Header><wsa:Action soapenv:mustUnderstand=\"1\">" action "</wsa:Action>"                      \
	"<wsa:To soapenv:mustUnderstand=\"true\">http://127.0.0.1/xds/registry</wsa:To>"                        \
	"<wsa:MessageID>" MSGID "</wsa:MessageID><wsa:ReplyTo><wsa:Address>"                                    \
	"http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo></soapenv:Header>"
#define ITI18_BODY                                                                                           \
	"<soapenv:Body><query:AdhocQueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0\" " \
	"xmlns=\"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0\">"                                             \
	"<query:ResponseOption returnComposedObjects=\"true\" returnType=\"LeafClass\"/>"                      \
	"<AdhocQuery id=\"urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d\">"                                    \
	"<Slot name=\"$XDSDocumentEntryPatientId\"><ValueList><Value>'pid1^^^&amp;1.2.3&amp;ISO'</Value>"       \
	"</ValueList></Slot><Slot name=\"$XDSDocumentEntryStatus\"><ValueList>"                                  \
	"<Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</Value></ValueList></Slot>"             \
	"</AdhocQuery></query:AdhocQueryRequest></soapenv:Body>"
#define ENV_CLOSE "</soapenv:Envelope>"
#define ITI18 ENV_OPEN HDR(SQ_ACTION) ITI18_BODY ENV_CLOSE

static const struct hie_xml_ns nstab[] = {
	{ "env", HIE_SOAP12_NS },
	{ "wsa", HIE_WSA_NS },
	{ "query", "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" },
	{ "rim", "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0" },
	{ "rs", "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" },
	{ "xop", HIE_XOP_NS },
	{ NULL, NULL },
};

/* ---- handlers ---- */

struct seen {
	int calls;
	char patient[128];
	char to[128];
	void *user;
	const char *custom_header;
};

static hie_err_t h_stored_query(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	struct seen *s = arg;
	struct hie_buf b;
	s->calls++;
	s->user = req->call ? req->call->user : NULL;
	s->custom_header = hie_soap_http_header(req->call, "x-test");
	snprintf(s->to, sizeof(s->to), "%s", req->wsa.to ? req->wsa.to : "");
	assert_true(hie_xml_is(req->payload, "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0", "AdhocQueryRequest"));
	hie_buf_init(&b, 1024);
	assert_int_equal(hie_xml_xpath_text(req->doc, req->payload,
					    "rim:AdhocQuery/rim:Slot[@name='$XDSDocumentEntryPatientId']"
					    "/rim:ValueList/rim:Value",
					    nstab, &b),
			 HIE_OK);
	snprintf(s->patient, sizeof(s->patient), "%s", hie_buf_str(&b));
	hie_buf_free(&b);
	/* the body as a node built in the scratch document */
	xmlNode *r = xmlNewDocNode(resp->doc, NULL, BAD_CAST "AdhocQueryResponse", NULL);
	xmlNs *ns = xmlNewNs(r, BAD_CAST "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0", BAD_CAST "query");
	xmlSetNs(r, ns);
	xmlNewProp(r, BAD_CAST "status", BAD_CAST "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success");
	resp->body = r;
	return HIE_OK;
}

static hie_err_t h_fail(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	(void)req;
	(void)resp;
	return (hie_err_t)(intptr_t)arg;
}

static hie_err_t h_custom_fault(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	(void)req;
	(void)arg;
	resp->is_fault = true;
	hie_soap_fault_set(&resp->fault, HIE_SOAP_FAULT_SENDER, "xcpd:AnswerNotAvailable", "no %s", "answer");
	resp->fault.subcode_ns = "urn:example:xcpd";
	resp->fault.detail_xml = "<d:Why xmlns:d=\"urn:d\">because</d:Why>";
	return HIE_OK;
}

/* Echoes the binary of ihe:Document as an MTOM attachment. */
struct mtom_state {
	char seen[64];
	size_t seen_len;
	hie_err_t binary_err;
};

static hie_err_t h_mtom(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	struct mtom_state *st = arg;
	static struct hie_mtom_out_part part;
	struct hie_buf scratch;
	const char *data;
	size_t len;
	xmlNode *doc = hie_xml_child(req->payload, "urn:ihe:iti:xds-b:2007", "Document");
	assert_non_null(doc);
	hie_buf_init(&scratch, 1024);
	st->binary_err = hie_soap_binary(req, doc, &data, &len, &scratch);
	if (!st->binary_err) {
		assert_true(len < sizeof(st->seen));
		memcpy(st->seen, data, len);
		st->seen_len = len;
	}
	hie_buf_free(&scratch);
	if (st->binary_err)
		return st->binary_err;
	part = (struct hie_mtom_out_part){ .cid = "doc1@hienode", .content_type = "text/plain",
					   .data = st->seen, .len = st->seen_len };
	hie_buf_addstr(&resp->body_xml, "<x:RetrieveDocumentSetResponse xmlns:x=\"urn:ihe:iti:xds-b:2007\">"
					"<x:Document><xop:Include xmlns:xop=\"" HIE_XOP_NS
					"\" href=\"cid:doc1@hienode\"/></x:Document></x:RetrieveDocumentSetResponse>");
	resp->action = "urn:ihe:iti:2007:RetrieveDocumentSetResponse";
	resp->parts = &part;
	resp->nparts = 1;
	return HIE_OK;
}

/* ---- helpers ---- */

static struct hie_soap_router *new_router(struct seen *s, struct mtom_state *ms, const struct hie_soap_limits *lim)
{
	struct hie_soap_router *r;
	assert_int_equal(hie_soap_router_new(lim, &r), HIE_OK);
	assert_int_equal(hie_soap_route(r, "/xds/registry", SQ_ACTION, h_stored_query, s), HIE_OK);
	assert_int_equal(hie_soap_route(r, "/xds/registry", SQ_ACTION, h_stored_query, s), HIE_EEXIST);
	assert_int_equal(hie_soap_route(r, "/xds/registry", "urn:test:fail", h_fail, (void *)(intptr_t)HIE_EDB),
			 HIE_OK);
	assert_int_equal(hie_soap_route(r, "/xds/registry", "urn:test:bad", h_fail, (void *)(intptr_t)HIE_EPARSE),
			 HIE_OK);
	assert_int_equal(hie_soap_route(r, "/xcpd", "urn:test:custom", h_custom_fault, NULL), HIE_OK);
	assert_int_equal(hie_soap_route(r, "/xds/repository", NULL, h_mtom, ms), HIE_OK);
	return r;
}

struct got {
	int status;
	char ct[512];
	char code[64];
	char subcode[128];
	char reason[256];
	char body[8192];
};

static void xp(xmlDoc *doc, const char *expr, char *out, size_t outlen)
{
	struct hie_buf b;
	hie_buf_init(&b, 4096);
	out[0] = '\0';
	if (hie_xml_xpath_text(doc, NULL, expr, nstab, &b) == HIE_OK)
		snprintf(out, outlen, "%s", hie_buf_str(&b));
	hie_buf_free(&b);
}

static void run(struct hie_soap_router *r, const char *path, const char *ct, const char *body, size_t len,
		const struct hie_soap_call_ctx *call, struct got *g)
{
	struct hie_soap_reply rep;
	memset(g, 0, sizeof(*g));
	hie_soap_reply_init(&rep, 0);
	assert_int_equal(hie_soap_dispatch(r, path, ct, body, len, call, &rep), HIE_OK);
	g->status = rep.status;
	snprintf(g->ct, sizeof(g->ct), "%s", hie_buf_str(&rep.content_type));
	snprintf(g->body, sizeof(g->body), "%s", hie_buf_str(&rep.body));
	if (strncmp(g->ct, "application/soap+xml", 20) == 0) {
		xmlDoc *doc = NULL;
		assert_int_equal(hie_xml_parse(rep.body.data, rep.body.len, NULL, &doc, NULL), HIE_OK);
		xp(doc, "/env:Envelope/env:Body/env:Fault/env:Code/env:Value", g->code, sizeof(g->code));
		xp(doc, "/env:Envelope/env:Body/env:Fault/env:Code/env:Subcode/env:Value", g->subcode,
		   sizeof(g->subcode));
		xp(doc, "/env:Envelope/env:Body/env:Fault/env:Reason/env:Text", g->reason, sizeof(g->reason));
		xmlFreeDoc(doc);
	}
	hie_soap_reply_free(&rep);
}

/* ---- tests ---- */

static void test_iti18_routed_and_answered(void **state)
{
	(void)state;
	struct seen s = { 0 };
	struct mtom_state ms = { 0 };
	struct hie_soap_router *r = new_router(&s, &ms, NULL);
	struct hie_soap_http_header hh[] = { { "X-Test", "yes" } };
	int user = 42;
	struct hie_soap_call_ctx call = { .headers = hh, .nheaders = 1, .user = &user, .peer = "127.0.0.1" };
	struct hie_soap_reply rep;
	hie_soap_reply_init(&rep, 0);
	assert_int_equal(hie_soap_dispatch(r, "/xds/registry", CT_SQ, ITI18, strlen(ITI18), &call, &rep), HIE_OK);
	assert_int_equal(rep.status, 200);
	assert_int_equal(s.calls, 1);
	assert_string_equal(s.patient, "'pid1^^^&1.2.3&ISO'");
	assert_string_equal(s.to, "http://127.0.0.1/xds/registry");
	assert_ptr_equal(s.user, &user);
	assert_non_null(s.custom_header);
	assert_string_equal(s.custom_header, "yes");
	assert_string_equal(hie_buf_str(&rep.content_type),
			    "application/soap+xml; charset=UTF-8; action=\"" SQ_ACTION "Response\"");

	/* the reply parses as SOAP 1.2 with RelatesTo = request MessageID and a fresh MessageID */
	struct hie_soap_msg *m = NULL;
	struct hie_soap_fault f;
	assert_int_equal(hie_soap_parse(hie_buf_str(&rep.content_type), rep.body.data, rep.body.len, NULL, &m, &f),
			 HIE_OK);
	assert_string_equal(m->wsa.action, SQ_ACTION "Response");
	assert_string_equal(m->wsa.relates_to, MSGID);
	assert_non_null(m->wsa.message_id);
	assert_int_equal(strlen(m->wsa.message_id), 45);
	assert_true(strncmp(m->wsa.message_id, "urn:uuid:", 9) == 0);
	assert_string_not_equal(m->wsa.message_id, MSGID);
	assert_true(hie_xml_is(m->payload, "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0", "AdhocQueryResponse"));
	hie_soap_msg_free(m);
	hie_soap_reply_free(&rep);

	/* the action may come from the Content-Type alone */
	const char *noact = ENV_OPEN "<soapenv:Header><wsa:MessageID>" MSGID "</wsa:MessageID></soapenv:Header>"
		ITI18_BODY ENV_CLOSE;
	struct got g;
	run(r, "/xds/registry", CT_SQ, noact, strlen(noact), NULL, &g);
	assert_int_equal(g.status, 200);
	assert_int_equal(s.calls, 2);
	hie_soap_router_free(r);
}

struct fault_case {
	const char *name;
	const char *path;
	const char *ct;
	const char *body;
	int status;
	const char *code;      /* env:Value text, "" for none */
	const char *subcode;
	const char *must_contain;     /* in the raw reply */
	const char *must_not_contain;
};

#define BL_DTD                                                                                               \
	"<!DOCTYPE soapenv:Envelope [<!ENTITY a \"aaaaaaaaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">" \
	"<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">"           \
	"<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">"           \
	"<!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\"><!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">"           \
	"<!ENTITY i \"&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;\">]>"

static const struct fault_case fault_cases[] = {
	{ .name = "soap11", .path = "/xds/registry", .ct = "text/xml; charset=UTF-8",
	  .body = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body/></s:Envelope>",
	  .status = 500, .must_contain = "<faultcode>s:VersionMismatch</faultcode>" },
	{ .name = "wrong-namespace", .path = "/xds/registry", .ct = CT_SQ,
	  .body = "<e:Envelope xmlns:e=\"urn:not-soap\"><e:Body/></e:Envelope>", .status = 500,
	  .code = "env:VersionMismatch", .must_contain = "env:Upgrade" },
	{ .name = "not-envelope", .path = "/xds/registry", .ct = CT_SQ,
	  .body = "<Envelope><Body/></Envelope>", .status = 500, .code = "env:VersionMismatch" },
	{ .name = "missing-body", .path = "/xds/registry", .ct = CT_SQ, .body = ENV_OPEN HDR(SQ_ACTION) ENV_CLOSE,
	  .status = 500, .code = "env:Sender", .must_contain = MSGID },
	{ .name = "element-after-body", .path = "/xds/registry", .ct = CT_SQ,
	  .body = ENV_OPEN HDR(SQ_ACTION) ITI18_BODY "<soapenv:Header/>" ENV_CLOSE, .status = 500,
	  .code = "env:Sender" },
	{ .name = "unknown-action", .path = "/xds/registry", .ct = "application/soap+xml",
	  .body = ENV_OPEN HDR("urn:ihe:iti:2007:Nope") ITI18_BODY ENV_CLOSE, .status = 500,
	  .code = "env:Sender", .subcode = "wsa:ActionNotSupported",
	  .must_contain = "<wsa:Action>urn:ihe:iti:2007:Nope</wsa:Action>" },
	{ .name = "action-mismatch", .path = "/xds/registry",
	  .ct = "application/soap+xml; action=\"urn:ihe:iti:2007:RegisterDocumentSet-b\"", .body = ITI18,
	  .status = 500, .code = "env:Sender", .subcode = "wsa:ActionMismatch" },
	{ .name = "no-action", .path = "/xds/registry", .ct = "application/soap+xml",
	  .body = ENV_OPEN ITI18_BODY ENV_CLOSE, .status = 500, .code = "env:Sender",
	  .subcode = "wsa:MessageAddressingHeaderRequired" },
	{ .name = "duplicate-action", .path = "/xds/registry", .ct = CT_SQ,
	  .body = ENV_OPEN "<soapenv:Header><wsa:Action>" SQ_ACTION "</wsa:Action><wsa:Action>" SQ_ACTION
		  "</wsa:Action></soapenv:Header>" ITI18_BODY ENV_CLOSE,
	  .status = 500, .code = "env:Sender", .subcode = "wsa:InvalidAddressingHeader" },
	{ .name = "reply-to-not-anonymous", .path = "/xds/registry", .ct = CT_SQ,
	  .body = ENV_OPEN "<soapenv:Header><wsa:Action>" SQ_ACTION "</wsa:Action><wsa:ReplyTo><wsa:Address>"
		  "http://evil.example/cb</wsa:Address></wsa:ReplyTo></soapenv:Header>" ITI18_BODY ENV_CLOSE,
	  .status = 500, .code = "env:Sender", .subcode = "wsa:OnlyAnonymousAddressSupported" },
	{ .name = "must-understand", .path = "/xds/registry", .ct = CT_SQ,
	  .body = ENV_OPEN "<soapenv:Header><wsa:Action>" SQ_ACTION "</wsa:Action><x:Secret xmlns:x=\"urn:x\" "
		  "soapenv:mustUnderstand=\"true\"/></soapenv:Header>" ITI18_BODY ENV_CLOSE,
	  .status = 500, .code = "env:MustUnderstand", .must_contain = "<env:NotUnderstood qname=\"nu:Secret\" "
									 "xmlns:nu=\"urn:x\"/>" },
	{ .name = "must-understand-bad-value", .path = "/xds/registry", .ct = CT_SQ,
	  .body = ENV_OPEN "<soapenv:Header><x:H xmlns:x=\"urn:x\" soapenv:mustUnderstand=\"yes\"/>"
		  "</soapenv:Header>" ITI18_BODY ENV_CLOSE,
	  .status = 500, .code = "env:Sender" },
	{ .name = "must-understand-other-role", .path = "/xds/registry", .ct = CT_SQ,
	  .body = ENV_OPEN "<soapenv:Header><wsa:Action>" SQ_ACTION "</wsa:Action><x:H xmlns:x=\"urn:x\" "
		  "soapenv:mustUnderstand=\"true\" soapenv:role=\"http://www.w3.org/2003/05/soap-envelope/role/none\"/>"
		  "<x:I xmlns:x=\"urn:x\" soapenv:mustUnderstand=\"false\"/></soapenv:Header>" ITI18_BODY ENV_CLOSE,
	  .status = 200, .code = "" },
	{ .name = "billion-laughs", .path = "/xds/registry", .ct = CT_SQ,
	  .body = BL_DTD ENV_OPEN HDR(SQ_ACTION) "<soapenv:Body>&i;</soapenv:Body>" ENV_CLOSE, .status = 500,
	  .code = "env:Sender", .must_contain = "DOCTYPE", .must_not_contain = "aaaaaaaaaaaaaaaaaaaa" },
	{ .name = "xxe", .path = "/xds/registry", .ct = CT_SQ,
	  .body = "<!DOCTYPE soapenv:Envelope [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>" ENV_OPEN HDR(SQ_ACTION)
		  "<soapenv:Body><q>&x;</q></soapenv:Body>" ENV_CLOSE,
	  .status = 500, .code = "env:Sender", .must_not_contain = "root:" },
	{ .name = "external-dtd", .path = "/xds/registry", .ct = CT_SQ,
	  .body = "<!DOCTYPE soapenv:Envelope SYSTEM \"file:///etc/passwd\">" ITI18, .status = 500,
	  .code = "env:Sender", .must_not_contain = "root:" },
	{ .name = "doctype-alone", .path = "/xds/registry", .ct = CT_SQ, .body = "<!DOCTYPE x>" ITI18,
	  .status = 500, .code = "env:Sender" },
	{ .name = "malformed", .path = "/xds/registry", .ct = CT_SQ, .body = ENV_OPEN HDR(SQ_ACTION) "<soapenv:Body>",
	  .status = 500, .code = "env:Sender" },
	{ .name = "not-xml", .path = "/xds/registry", .ct = CT_SQ, .body = "hello", .status = 500,
	  .code = "env:Sender" },
	{ .name = "media-type", .path = "/xds/registry", .ct = "application/json", .body = "{}", .status = 415,
	  .code = "env:Sender" },
	{ .name = "no-content-type", .path = "/xds/registry", .ct = NULL, .body = ITI18, .status = 415,
	  .code = "env:Sender" },
	{ .name = "handler-internal-error", .path = "/xds/registry", .ct = "application/soap+xml",
	  .body = ENV_OPEN HDR("urn:test:fail") ITI18_BODY ENV_CLOSE, .status = 500, .code = "env:Receiver",
	  .must_contain = MSGID },
	{ .name = "handler-sender-error", .path = "/xds/registry", .ct = "application/soap+xml",
	  .body = ENV_OPEN HDR("urn:test:bad") ITI18_BODY ENV_CLOSE, .status = 500, .code = "env:Sender" },
	{ .name = "handler-custom-fault", .path = "/xcpd", .ct = "application/soap+xml",
	  .body = ENV_OPEN HDR("urn:test:custom") ITI18_BODY ENV_CLOSE, .status = 500, .code = "env:Sender",
	  .subcode = "xcpd:AnswerNotAvailable",
	  .must_contain = "<env:Detail><d:Why xmlns:d=\"urn:d\">because</d:Why></env:Detail>" },
	{ .name = "unknown-path", .path = "/nope", .ct = CT_SQ, .body = ITI18, .status = 404 },
};

static void test_fault_table(void **state)
{
	(void)state;
	struct seen s = { 0 };
	struct mtom_state ms = { 0 };
	struct hie_soap_router *r = new_router(&s, &ms, NULL);
	for (size_t i = 0; i < sizeof(fault_cases) / sizeof(fault_cases[0]); i++) {
		const struct fault_case *c = &fault_cases[i];
		struct got g;
		run(r, c->path, c->ct, c->body, strlen(c->body), NULL, &g);
		if (g.status != c->status)
			fail_msg("case %s: status %d want %d: %s", c->name, g.status, c->status, g.body);
		if (c->code && strcmp(g.code, c->code) != 0)
			fail_msg("case %s: code '%s' want '%s': %s", c->name, g.code, c->code, g.body);
		if (c->subcode && strcmp(g.subcode, c->subcode) != 0)
			fail_msg("case %s: subcode '%s' want '%s': %s", c->name, g.subcode, c->subcode, g.body);
		if (c->must_contain && !strstr(g.body, c->must_contain))
			fail_msg("case %s: reply lacks '%s': %s", c->name, c->must_contain, g.body);
		if (c->must_not_contain && strstr(g.body, c->must_not_contain))
			fail_msg("case %s: reply has '%s'", c->name, c->must_not_contain);
		if (c->code && c->code[0] && !strstr(g.body, HIE_WSA_FAULT_ACTION))
			fail_msg("case %s: fault without the WS-A fault action", c->name);
	}
	hie_soap_router_free(r);
}

static void test_soap11_fault_shape(void **state)
{
	(void)state;
	struct seen s = { 0 };
	struct mtom_state ms = { 0 };
	struct hie_soap_router *r = new_router(&s, &ms, NULL);
	struct got g;
	const char *b = fault_cases[0].body;
	run(r, "/xds/registry", "text/xml", b, strlen(b), NULL, &g);
	assert_string_equal(g.ct, "text/xml; charset=UTF-8");
	assert_non_null(strstr(g.body, "SupportedEnvelope qname=\"ns:Envelope\""));
	assert_int_equal(s.calls, 0);
	hie_soap_router_free(r);
}

static char *depth_bomb(size_t depth, size_t *len)
{
	const char *pre = ENV_OPEN HDR(SQ_ACTION) "<soapenv:Body>";
	const char *post = "</soapenv:Body>" ENV_CLOSE;
	size_t n = strlen(pre) + depth * 7 + strlen(post) + 1;
	char *s = malloc(n);
	assert_non_null(s);
	size_t o = 0;
	memcpy(s, pre, strlen(pre));
	o += strlen(pre);
	for (size_t i = 0; i < depth; i++, o += 3)
		memcpy(s + o, "<a>", 3);
	for (size_t i = 0; i < depth; i++, o += 4)
		memcpy(s + o, "</a>", 4);
	memcpy(s + o, post, strlen(post));
	o += strlen(post);
	s[o] = '\0';
	*len = o;
	return s;
}

static void test_depth_and_size(void **state)
{
	(void)state;
	struct seen s = { 0 };
	struct mtom_state ms = { 0 };
	struct hie_soap_limits lim = { .max_body = 4096 };
	struct hie_soap_router *r = new_router(&s, &ms, &lim);
	size_t len;
	char *bomb = depth_bomb(100000, &len);
	struct got g;
	run(r, "/xds/registry", CT_SQ, bomb, len, NULL, &g);
	assert_int_equal(g.status, 413); /* over max_body before any parsing */
	hie_soap_router_free(r);

	r = new_router(&s, &ms, NULL);
	run(r, "/xds/registry", CT_SQ, bomb, len, NULL, &g);
	assert_int_equal(g.status, 500);
	assert_string_equal(g.code, "env:Sender");
	assert_non_null(strstr(g.reason, "deep"));
	assert_int_equal(s.calls, 0);
	free(bomb);
	hie_soap_router_free(r);
}

#define BOUNDARY "MIMEBoundary_hienode_test"
#define ROOT_CID "0.root@example.org"
#define MTOM_CT(action)                                                                                      \
	"multipart/related; boundary=" BOUNDARY "; type=\"application/xop+xml\"; start=\"<" ROOT_CID ">\"; "   \
	"start-info=\"application/soap+xml\"; action=\"" action "\""
#define PNR_ACTION "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"

static char *mtom_body(const char *action, const char *href, size_t *len)
{
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	hie_buf_addf(&b,
		     "--" BOUNDARY "\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
		     "Content-Transfer-Encoding: binary\r\nContent-ID: <" ROOT_CID ">\r\n\r\n"
		     ENV_OPEN HDR("%s")
		     "<soapenv:Body><ihe:ProvideAndRegisterDocumentSetRequest xmlns:ihe=\"urn:ihe:iti:xds-b:2007\">"
		     "<ihe:Document id=\"Document01\"><xop:Include href=\"%s\" xmlns:xop=\"" HIE_XOP_NS "\"/>"
		     "</ihe:Document></ihe:ProvideAndRegisterDocumentSetRequest></soapenv:Body>" ENV_CLOSE "\r\n"
		     "--" BOUNDARY "\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n"
		     "Content-ID: <1.doc@example.org>\r\n\r\n",
		     action, href);
	hie_buf_add(&b, "hello\0world", 11); /* binary, with a NUL */
	hie_buf_addstr(&b, "\r\n--" BOUNDARY "--\r\n");
	return hie_buf_steal(&b, len);
}

static void test_mtom(void **state)
{
	(void)state;
	struct seen s = { 0 };
	struct mtom_state ms = { 0 };
	struct hie_soap_router *r = new_router(&s, &ms, NULL);
	size_t len;
	char *body = mtom_body(PNR_ACTION, "cid:1.doc%40example.org", &len);
	struct hie_soap_reply rep;
	hie_soap_reply_init(&rep, 0);
	assert_int_equal(hie_soap_dispatch(r, "/xds/repository", MTOM_CT(PNR_ACTION), body, len, NULL, &rep), HIE_OK);
	if (rep.status != 200)
		fail_msg("status %d: %s", rep.status, hie_buf_str(&rep.body));
	assert_int_equal(ms.binary_err, HIE_OK);
	assert_int_equal(ms.seen_len, 11);
	assert_memory_equal(ms.seen, "hello\0world", 11);
	assert_true(strncmp(hie_buf_str(&rep.content_type), "multipart/related", 17) == 0);

	/* the MTOM reply parses back; its xop:Include resolves to the same bytes */
	struct hie_soap_msg *m = NULL;
	struct hie_soap_fault f;
	assert_int_equal(hie_soap_parse(hie_buf_str(&rep.content_type), rep.body.data, rep.body.len, NULL, &m, &f),
			 HIE_OK);
	assert_non_null(m->mtom);
	assert_string_equal(m->wsa.action, "urn:ihe:iti:2007:RetrieveDocumentSetResponse");
	assert_string_equal(m->wsa.relates_to, MSGID);
	xmlNode *d = hie_xml_child(m->payload, "urn:ihe:iti:xds-b:2007", "Document");
	const char *data;
	size_t dlen;
	struct hie_buf scratch;
	hie_buf_init(&scratch, 64);
	assert_int_equal(hie_soap_binary(m, d, &data, &dlen, &scratch), HIE_OK);
	assert_int_equal(dlen, 11);
	assert_memory_equal(data, "hello\0world", 11);
	assert_int_equal(scratch.len, 0); /* no copy */
	hie_buf_free(&scratch);
	hie_soap_msg_free(m);
	hie_soap_reply_free(&rep);
	free(body);

	/* xop:Include naming a part that is not there */
	body = mtom_body(PNR_ACTION, "cid:missing@example.org", &len);
	assert_int_equal(hie_soap_parse(MTOM_CT(PNR_ACTION), body, len, NULL, &m, &f), HIE_OK);
	d = hie_xml_child(m->payload, "urn:ihe:iti:xds-b:2007", "Document");
	hie_buf_init(&scratch, 64);
	assert_int_equal(hie_soap_binary(m, d, &data, &dlen, &scratch), HIE_ENOTFOUND);
	hie_buf_free(&scratch);
	hie_soap_msg_free(m);
	struct got g;
	run(r, "/xds/repository", MTOM_CT(PNR_ACTION), body, len, NULL, &g);
	assert_int_equal(ms.binary_err, HIE_ENOTFOUND);
	assert_int_equal(g.status, 500);
	assert_string_equal(g.code, "env:Sender");
	free(body);

	/* the Content-Type action of an MTOM package disagrees with wsa:Action */
	body = mtom_body(PNR_ACTION, "cid:1.doc@example.org", &len);
	run(r, "/xds/repository", MTOM_CT("urn:ihe:iti:2007:RetrieveDocumentSet"), body, len, NULL, &g);
	assert_string_equal(g.subcode, "wsa:ActionMismatch");
	/* a broken package */
	run(r, "/xds/repository", "multipart/related; boundary=nope", body, len, NULL, &g);
	assert_string_equal(g.code, "env:Sender");
	free(body);
	hie_soap_router_free(r);
}

static void test_inline_base64_and_build(void **state)
{
	(void)state;
	const char *x = ENV_OPEN HDR(PNR_ACTION) "<soapenv:Body><ihe:R xmlns:ihe=\"urn:ihe:iti:xds-b:2007\">"
			"<ihe:Document>aGVs\r\n bG8=</ihe:Document><ihe:Bad>!!!</ihe:Bad>"
			"<ihe:X><xop:Include xmlns:xop=\"" HIE_XOP_NS "\" href=\"cid:a\"/></ihe:X></ihe:R></soapenv:Body>"
			ENV_CLOSE;
	struct hie_soap_msg *m = NULL;
	struct hie_soap_fault f;
	assert_int_equal(hie_soap_parse("application/soap+xml", x, strlen(x), NULL, &m, &f), HIE_OK);
	struct hie_buf scratch;
	hie_buf_init(&scratch, 64);
	const char *data;
	size_t len;
	assert_int_equal(hie_soap_binary(m, hie_xml_child(m->payload, "urn:ihe:iti:xds-b:2007", "Document"), &data,
					 &len, &scratch),
			 HIE_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "hello", 5);
	assert_int_equal(hie_soap_binary(m, hie_xml_child(m->payload, "urn:ihe:iti:xds-b:2007", "Bad"), &data, &len,
					 &scratch),
			 HIE_EPARSE);
	/* xop:Include in a plain message names nothing */
	assert_int_equal(hie_soap_binary(m, hie_xml_child(m->payload, "urn:ihe:iti:xds-b:2007", "X"), &data, &len,
					 &scratch),
			 HIE_ENOTFOUND);
	hie_buf_free(&scratch);
	hie_soap_msg_free(m);

	/* a request we send, parsed back */
	struct hie_soap_out o = { .action = SQ_ACTION, .to = "https://peer/xds?a=1&b=2", .reply_to_anonymous = true,
				  .body_xml = "<q:X xmlns:q=\"urn:q\"/>", .body_len = 22 };
	struct hie_buf body, ct;
	hie_buf_init(&body, 1 << 16);
	hie_buf_init(&ct, 1024);
	assert_int_equal(hie_soap_build(&o, &body, &ct), HIE_OK);
	assert_int_equal(hie_soap_parse(hie_buf_str(&ct), body.data, body.len, NULL, &m, &f), HIE_OK);
	assert_string_equal(m->wsa.to, "https://peer/xds?a=1&b=2");
	assert_string_equal(m->wsa.message_id, o.message_id);
	assert_string_equal(m->wsa.reply_to, HIE_WSA_ANONYMOUS);
	assert_true(hie_xml_is(m->payload, "urn:q", "X"));
	hie_soap_msg_free(m);
	/* an action that would break the Content-Type header is refused */
	struct hie_soap_out bad = { .action = "urn:x\"\r\nX-Evil: 1" };
	assert_int_equal(hie_soap_build(&bad, &body, &ct), HIE_EINVAL);
	/* the reply cap is honoured */
	struct hie_buf small;
	hie_buf_init(&small, 32);
	hie_buf_reset(&ct);
	assert_int_equal(hie_soap_build(&o, &small, &ct), HIE_ETOOBIG);
	hie_buf_free(&small);
	hie_buf_free(&body);
	hie_buf_free(&ct);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iti18_routed_and_answered),
		cmocka_unit_test(test_fault_table),
		cmocka_unit_test(test_soap11_fault_shape),
		cmocka_unit_test(test_depth_and_size),
		cmocka_unit_test(test_mtom),
		cmocka_unit_test(test_inline_base64_and_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
