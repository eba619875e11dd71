/*
 * hisp_xdr_out_test.c — hisp_xdr_send (hisp_xdr_out.c) against an XDR endpoint on loopback: a core_http server
 * with TLS (certtest.h) whose handler parses the request with hie_soap_parse (MTOM), records what it saw
 * (action, To, the direct: headers, the SubmitObjectsRequest, each xdsb:Document's bytes through its
 * xop:Include) and answers as the case asks: a RegistryResponse Success / Failure (MTOM), a Sender or
 * Receiver SOAP fault, HTTP 500, HTTP 403, a 200 that is not SOAP. Also: a listener that never answers
 * (→ HIE_ETIMEOUT), and a server certificate from a CA the client does not trust (→ HIE_EIO, nothing reaches
 * the handler).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core_http.h"
#include "core/core_soap.h"
#include "core/core_xml.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_xdr_int.h"
#include "tests/unit/core/certtest.h"

enum mode { M_SUCCESS, M_FAILURE, M_SENDER_FAULT, M_RECEIVER_FAULT, M_HTTP500, M_HTTP403, M_GARBAGE };

static struct certtest CT, OTHER;
static struct hie_http_server *S;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static enum mode MODE;
static int calls;
static struct {
	bool mtom, action_ok, to_ok, sor, docs_ok;
	char from[128], to[256], level[32];
	size_t ndocs;
} seen;

static const char DOC1[] = "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><title>one</title></ClinicalDocument>";
static const unsigned char DOC2[] = {0x25, 0x50, 0x44, 0x46, 0x00, 0xff, 0x0d, 0x0a, 0x2d, 0x2d, 0x0d, 0x0a};

static const char SOR[] =
	"<lcm:SubmitObjectsRequest xmlns:lcm=\"" HISP_NS_LCM3 "\" xmlns:rim=\"" HISP_NS_RIM3 "\">"
	"<rim:RegistryObjectList>"
	"<rim:ExtrinsicObject id=\"Document01\" mimeType=\"text/xml\"/>"
	"<rim:ExtrinsicObject id=\"Document02\" mimeType=\"application/pdf\"/>"
	"<rim:RegistryPackage id=\"SubmissionSet01\"/>"
	"</rim:RegistryObjectList></lcm:SubmitObjectsRequest>";

static void record(const struct hie_soap_msg *m)
{
	seen.mtom = m->mtom != NULL;
	seen.action_ok = m->wsa.action && strcmp(m->wsa.action, HISP_XDR_ACTION) == 0;
	seen.to_ok = m->wsa.to && strstr(m->wsa.to, "/xdr") != NULL;
	seen.from[0] = seen.to[0] = seen.level[0] = 0;
	const xmlNode *h;
	if (m->header)
		HIE_XML_FOREACH(h, m->header, HISP_DIRECT_NS, NULL) {
			xmlChar *v = xmlNodeGetContent(h);
			const char *t = v ? (const char *)v : "";
			if (hie_xml_is(h, HISP_DIRECT_NS, "from"))
				snprintf(seen.from, sizeof seen.from, "%s", t);
			else if (hie_xml_is(h, HISP_DIRECT_NS, "to"))
				snprintf(seen.to + strlen(seen.to), sizeof seen.to - strlen(seen.to), "%s,", t);
			else if (hie_xml_is(h, HISP_DIRECT_NS, "metadata-level"))
				snprintf(seen.level, sizeof seen.level, "%s", t);
			xmlFree(v);
		}
	const xmlNode *p = m->payload;
	seen.sor = p && hie_xml_is(p, HISP_NS_XDSB, "ProvideAndRegisterDocumentSetRequest") &&
		   hie_xml_child(p, HISP_NS_LCM3, "SubmitObjectsRequest");
	seen.ndocs = 0;
	seen.docs_ok = seen.sor;
	const xmlNode *d;
	struct hie_buf scratch;
	hie_buf_init(&scratch, 1 << 20);
	if (seen.sor)
		HIE_XML_FOREACH(d, p, HISP_NS_XDSB, "Document") {
			const char *data = NULL;
			size_t len = 0;
			bool is_xop = hie_xml_child(d, HIE_XOP_NS, "Include") != NULL;
			xmlChar *id = xmlGetNoNsProp(d, BAD_CAST "id");
			bool ok = is_xop && hie_soap_binary(m, d, &data, &len, &scratch) == HIE_OK;
			if (ok && id && !strcmp((char *)id, "Document01"))
				ok = len == sizeof DOC1 - 1 && !memcmp(data, DOC1, len);
			else if (ok && id && !strcmp((char *)id, "Document02"))
				ok = len == sizeof DOC2 && !memcmp(data, DOC2, len);
			else
				ok = false;
			seen.docs_ok = seen.docs_ok && ok;
			seen.ndocs++;
			xmlFree(id);
		}
	hie_buf_free(&scratch);
}

static hie_err_t take(struct hie_http_resp *resp, struct hie_buf *body, struct hie_buf *ct, int status)
{
	resp->status = status;
	resp->content_type = NULL;
	hie_buf_free(&resp->body);
	resp->body = *body;
	hie_buf_init(body, 0);
	return hie_http_resp_header(resp, "Content-Type", hie_buf_str(ct));
}

static hie_err_t handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	(void)ctx;
	struct hie_soap_msg *m = NULL;
	struct hie_soap_fault f = {0};
	struct hie_buf body, ct;
	hie_buf_init(&body, 1 << 20);
	hie_buf_init(&ct, 1024);
	hie_err_t err = hie_soap_parse(hie_http_req_header(req, "Content-Type"), req->body, req->body_len, NULL, &m, &f);
	pthread_mutex_lock(&mu);
	calls++;
	enum mode mode = MODE;
	if (!err)
		record(m);
	else
		seen.sor = false;
	pthread_mutex_unlock(&mu);
	const char *rel = m ? m->wsa.message_id : NULL;
	if (mode == M_SUCCESS || mode == M_FAILURE) {
		const char *rr =
			mode == M_SUCCESS
				? "<rs:RegistryResponse xmlns:rs=\"" HISP_NS_RS3
				  "\" status=\"urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success\"/>"
				: "<rs:RegistryResponse xmlns:rs=\"" HISP_NS_RS3
				  "\" status=\"urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure\">"
				  "<rs:RegistryErrorList><rs:RegistryError errorCode=\"XDSRepositoryMetadataError\""
				  " codeContext=\"no\" severity=\"urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error\"/>"
				  "<rs:RegistryError errorCode=\"XDSMissingDocument\" codeContext=\"no\""
				  " severity=\"urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error\"/>"
				  "</rs:RegistryErrorList></rs:RegistryResponse>";
		struct hie_soap_out o = {.action = HISP_XDR_ACTION "Response", .relates_to = rel, .body_xml = rr,
					 .body_len = strlen(rr), .mtom = true};
		err = hie_soap_build(&o, &body, &ct);
		if (!err)
			err = take(resp, &body, &ct, 200);
	} else if (mode == M_SENDER_FAULT || mode == M_RECEIVER_FAULT) {
		struct hie_soap_reply rep;
		hie_soap_reply_init(&rep, 0);
		hie_soap_fault_set(&f, mode == M_SENDER_FAULT ? HIE_SOAP_FAULT_SENDER : HIE_SOAP_FAULT_RECEIVER, NULL,
				   "%s", "refused by the test");
		f.http_status = 0;
		err = hie_soap_fault_build(&f, rel, &rep);
		if (!err)
			err = take(resp, &rep.body, &rep.content_type, rep.status);
		hie_soap_reply_free(&rep);
	} else if (mode == M_HTTP500) {
		err = hie_http_resp_text(resp, 500, "oops");
	} else if (mode == M_HTTP403) {
		err = hie_http_resp_text(resp, 403, "forbidden");
	} else {
		err = hie_http_resp_text(resp, 200, "<html>hello</html>");
	}
	hie_soap_msg_free(m);
	hie_buf_free(&body);
	hie_buf_free(&ct);
	return err;
}

static int group_setup(void **state)
{
	(void)state;
	if (certtest_make(&CT, "hxdroct") || certtest_make(&OTHER, "hxdrooth"))
		return -1;
	struct hie_http_config hc = {.threads = 2, .drain_ms = 1000, .tls_cert_file = CT.srv_pem,
				     .tls_key_file = CT.srv_key, .body_max = 16u << 20};
	const struct hie_http_route r = {.path = "/xdr", .methods = HIE_HTTP_POST, .fn = handler};
	if (hie_http_new(&hc, &S) || hie_http_route_add(S, &r) || hie_http_start(S))
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	hie_http_free(S);
	certtest_remove(&CT);
	certtest_remove(&OTHER);
	return 0;
}

struct req {
	xmlDoc *doc;
	struct hisp_xdm_doc docs[2];
	const char *to[2];
	struct hisp_xdr_request r;
};

static void make_req(struct req *q)
{
	memset(q, 0, sizeof *q);
	assert_int_equal(hie_xml_parse(SOR, sizeof SOR - 1, NULL, &q->doc, NULL), HIE_OK);
	q->docs[0] = (struct hisp_xdm_doc){.entry_id = "Document01", .mime_type = "text/xml",
					   .data = (const unsigned char *)DOC1, .len = sizeof DOC1 - 1};
	q->docs[1] = (struct hisp_xdm_doc){.entry_id = "Document02", .mime_type = "application/pdf", .data = DOC2,
					   .len = sizeof DOC2};
	q->to[0] = "bob@b.test";
	q->to[1] = "carol@c.test";
	q->r = (struct hisp_xdr_request){.sor = xmlDocGetRootElement(q->doc), .docs = q->docs, .ndocs = 2,
					 .direct_from = "alice@a.test", .direct_to = q->to, .ndirect_to = 2,
					 .metadata_level = "XDS"};
}

static hie_err_t send_mode(enum mode m, const char *ca, struct hisp_xdr_result *res)
{
	struct req q;
	char url[128];
	make_req(&q);
	pthread_mutex_lock(&mu);
	MODE = m;
	pthread_mutex_unlock(&mu);
	snprintf(url, sizeof url, "https://localhost:%u/xdr", hie_http_port(S));
	hie_err_t err = hisp_xdr_send(url, &q.r, ca, 10000, res);
	xmlFreeDoc(q.doc);
	return err;
}

static void test_outcomes(void **state)
{
	(void)state;
	static const struct {
		enum mode mode;
		hie_err_t err;
		const char *status;
		const char *first;
		int http;
	} cases[] = {
		{M_SUCCESS, HIE_OK, "Success", "", 200},
		{M_FAILURE, HIE_OK, "Failure", "XDSRepositoryMetadataError", 200},
		{M_SENDER_FAULT, HIE_EDENIED, "Failure", "SOAP fault Sender: refused by the test", 500},
		{M_RECEIVER_FAULT, HIE_EIO, "Failure", "SOAP fault Receiver: refused by the test", 500},
		{M_HTTP500, HIE_EIO, "", "HTTP 500", 500},
		{M_HTTP403, HIE_EDENIED, "", "HTTP 403", 403},
		{M_GARBAGE, HIE_EIO, "", "HTTP 200: not a RegistryResponse", 200},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_xdr_result res;
		int before = calls;
		hie_err_t err = send_mode(cases[i].mode, CT.ca_pem, &res);
		if (err != cases[i].err || strcmp(res.first_error, cases[i].first))
			fprintf(stderr, "case %zu: %s status=%s first=%s http=%d\n", i, hie_errname(err), res.status,
				res.first_error, res.http_status);
		assert_int_equal(err, cases[i].err);
		assert_string_equal(res.status, cases[i].status);
		assert_string_equal(res.first_error, cases[i].first);
		assert_int_equal(res.http_status, cases[i].http);
		pthread_mutex_lock(&mu);
		assert_int_equal(calls, before + 1);
		/* what the endpoint received: MTOM, WS-A, the Direct headers, the metadata and both documents */
		assert_true(seen.mtom);
		assert_true(seen.action_ok);
		assert_true(seen.to_ok);
		assert_true(seen.sor);
		assert_int_equal(seen.ndocs, 2);
		assert_true(seen.docs_ok);
		assert_string_equal(seen.from, "alice@a.test");
		assert_string_equal(seen.to, "bob@b.test,carol@c.test,");
		assert_string_equal(seen.level, "XDS");
		pthread_mutex_unlock(&mu);
	}
}

static void test_untrusted_server(void **state)
{
	(void)state;
	struct hisp_xdr_result res;
	int before = calls;
	assert_int_equal(send_mode(M_SUCCESS, OTHER.ca_pem, &res), HIE_EIO);
	assert_int_equal(calls, before); /* never sent */
	assert_string_equal(res.status, "");
	assert_true(res.first_error[0] != 0);
}

static void test_timeout(void **state)
{
	(void)state;
	/* a listener that never accepts: the kernel completes the TCP handshake, no TLS ever comes */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	struct req q;
	make_req(&q);
	char url[128];
	snprintf(url, sizeof url, "https://127.0.0.1:%u/xdr", ntohs(a.sin_port));
	struct hisp_xdr_result res;
	assert_int_equal(hisp_xdr_send(url, &q.r, CT.ca_pem, 1000, &res), HIE_ETIMEOUT);
	close(fd);
	/* nothing listening at all */
	assert_int_equal(hisp_xdr_send("https://127.0.0.1:1/xdr", &q.r, CT.ca_pem, 1000, &res), HIE_EIO);
	xmlFreeDoc(q.doc);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct req q;
	make_req(&q);
	struct hisp_xdr_result res;
	assert_int_equal(hisp_xdr_send(NULL, &q.r, NULL, 1000, &res), HIE_EINVAL);
	q.r.sor = NULL;
	assert_int_equal(hisp_xdr_send("https://127.0.0.1:1/xdr", &q.r, NULL, 1000, &res), HIE_EINVAL);
	q.r.sor = xmlDocGetRootElement(q.doc);
	q.docs[0].entry_id = "";
	assert_int_equal(hisp_xdr_send("https://127.0.0.1:1/xdr", &q.r, NULL, 1000, &res), HIE_EINVAL);
	q.docs[0].entry_id = "Document01";
	/* an unsupported scheme is refused by libcurl before anything is sent */
	assert_int_equal(hisp_xdr_send("file:///etc/passwd", &q.r, NULL, 1000, &res), HIE_EIO);
	xmlFreeDoc(q.doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_untrusted_server),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
