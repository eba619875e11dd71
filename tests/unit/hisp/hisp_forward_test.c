/*
 * hisp_forward_test.c — per-address forwarding (hisp_forward.c, hisp_cli_forward.c) on a real PostgreSQL with
 * real sockets: a received message is forwarded to hienode's own SMTP receiver on loopback (STARTTLS with a
 * certificate from certtest.h, verified against [edge] forward_smtp_ca): delivered byte for byte, the mailbox
 * item acknowledged and the dispatched MDN queued once (only when the sender asked for final delivery); a 550
 * fails it with a failed MDN (or a DSN from the local address when not asked); a server that is down defers
 * (HIE_EIO) until the last attempt fails it; an untrusted certificate or a server without STARTTLS is never
 * given the message. XDR forwarding against a loopback core_http SOAP endpoint answering Success / Failure.
 * The `forward` command's arguments.
 */
#include "tests/unit/core/pgtest.h"

#include "tests/unit/core/certtest.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_http.h"
#include "core/core_mime.h"
#include "core/core_net.h"
#include "core/core_soap.h"
#include "hisp/hisp_smtp_in.h"
#include "tests/unit/hisp/hisptest.h"
#include "tests/unit/hisp/smtpbox.h"

static struct pgtest T;
static struct hie_db_pool *P;
static struct hie_cfg *cfg;
static struct hisp *H;
static struct certtest CT, CT2;
static SSL_CTX *srv_tls;
static char state[64];

/* --- the practice's SMTP server: hienode's own receiver, recording what it is given ----------------------- */

static void box_start(struct smtp_box *b, SSL_CTX *tls, int rcpt_code)
{
	b->rcpt = NULL;
	b->rcpt_code = rcpt_code;
	smtp_box_start(b, "mail.practice.test", 1 << 20, 1 << 22, tls);
}

/* A loopback port where nobody listens (bound by the kernel, then closed). */
static int dead_port(void)
{
	struct hie_net_listener *l = NULL;
	assert_int_equal(hie_net_listen("127.0.0.1:0", &l), HIE_OK);
	int port = hie_net_listener_port(l);
	hie_net_listener_close(l);
	return port;
}

/* --- helpers ------------------------------------------------------------------------------------------------ */

/* Splits line on blanks and runs the command; its standard output into out (may be NULL). */
static int cli(int (*fn)(const struct hisp_cli *, int, char **), const char *line, char *out, size_t outlen)
{
	const struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state};
	return hisptest_cli(&c, fn, line, NULL, out, outlen, NULL, 0);
}

static long long deliver(const char *addr, const char *msg)
{
	long long mid = hisptest_deliver(P, H, addr, msg, strlen(msg));
	assert_true(mid > 0);
	return mid;
}

static hie_err_t run_job(long long mid, int attempt, int max, char *errbuf, size_t errlen)
{
	char payload[24];
	snprintf(payload, sizeof payload, "%lld", mid);
	struct hie_job job = {.id = 1, .kind = "hisp.forward", .payload = payload, .attempts = attempt,
			      .max_attempts = max};
	errbuf[0] = 0;
	return hisp_forward_job(&job, H, errbuf, errlen);
}

/* A count or value of a query whose only parameter $1 is the mailbox id. */
static long long by_mid(const char *sql, long long mid)
{
	return hisptest_scalar_id(P, sql, mid);
}

static long long fwd_state_is(long long mid, const char *st)
{
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM hisp_forward_state WHERE mailbox_id = $1::bigint AND state = '%s'",
		 st);
	return by_mid(sql, mid);
}

static long long acked(long long mid)
{
	return by_mid("SELECT count(*) FROM hisp_mailbox WHERE id = $1::bigint AND acked_at IS NOT NULL", mid);
}

/* Outbound notices of kind whose Message-ID is "<what>-<mailbox id>@hisp.b.test". */
static long long notice(const char *kind, const char *what, long long mid)
{
	char id[200], sql[256];
	snprintf(id, sizeof id, "%s-%lld@hisp.b.test", what, mid);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM hisp_outbound WHERE kind = '%s' AND message_id = $1", kind);
	return pgtest_scalar(P, sql, id);
}

static void reason_of(long long mid, char *out, size_t outlen)
{
	hisptest_text_id(P, "SELECT coalesce(reason, '') FROM hisp_forward_state WHERE mailbox_id = $1::bigint", mid, out,
			 outlen);
}

#define FINAL_HDR "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n"

static const char msg_final[] = "From: Alice Sender <alice@a.test>\r\n"
				"To: bob@b.test\r\n"
				"Subject: referral\r\n"
				"Date: Mon, 05 Jan 2026 10:00:00 +0000\r\n"
				"Message-ID: <fwd-final@a.test>\r\n"
				"MIME-Version: 1.0\r\n" FINAL_HDR "Content-Type: text/plain; charset=us-ascii\r\n"
				"\r\n"
				"Referral for a patient.\r\n"
				".a line that starts with a dot\r\n"
				"..and two\r\n"
				"end\r\n";

static const char msg_plain[] = "From: alice@a.test\r\n"
				"To: bob@b.test\r\n"
				"Subject: note\r\n"
				"Date: Mon, 05 Jan 2026 10:00:00 +0000\r\n"
				"Message-ID: <fwd-plain@a.test>\r\n"
				"MIME-Version: 1.0\r\n"
				"Content-Type: text/plain\r\n"
				"\r\n"
				"No final delivery asked.\r\n";

/* --- fixture ---------------------------------------------------------------------------------------------- */

static int group_setup(void **st)
{
	(void)st;
	static const struct hisptest_set set[] = {{"direct", "hostname", "hisp.b.test"},
						  {"direct", "smtp_timeout", "5s"},
						  {"direct", "dns_server", "127.0.0.1:9"},
						  {"edge", "xdr_timeout", "5s"}};
	if (hisptest_open(&T, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	if (hisptest_tmpdir(state, sizeof state, "hfwdst") != 0 || certtest_make(&CT, "hfwdca") != 0 ||
	    certtest_make(&CT2, "hfwdcb") != 0)
		return -1;
	srv_tls = SSL_CTX_new(TLS_server_method());
	if (!srv_tls || SSL_CTX_use_certificate_chain_file(srv_tls, CT.srv_pem) != 1 ||
	    SSL_CTX_use_PrivateKey_file(srv_tls, CT.srv_key, SSL_FILETYPE_PEM) != 1)
		return -1;
	if (hisptest_config(&cfg, set, sizeof set / sizeof set[0]) != 0)
		return -1;
	static const char *const domains[] = {"add b.test", "address add bob@b.test", "address add carol@b.test"};
	const struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state};
	if (hisptest_cli_all(&c, hisp_cli_domain, domains, 3) != 0 || hisp_service_open(cfg, P, state, &H) != HIE_OK)
		return -1;
	return 0;
}

static int group_teardown(void **st)
{
	(void)st;
	if (!T.skip) {
		hisp_service_close(H);
		hie_cfg_free(cfg);
		SSL_CTX_free(srv_tls);
		if (!getenv("PGTEST_KEEP")) {
			certtest_remove(&CT);
			certtest_remove(&CT2);
			pgtest_rmrf(state);
		}
	}
	pgtest_close(&T, P);
	return 0;
}

static int setup(void **st)
{
	(void)st;
	if (T.skip)
		return 0;
	snprintf(H->forward_smtp_ca, sizeof H->forward_smtp_ca, "%s", CT.ca_pem);
	return pgtest_exec(P, "TRUNCATE hisp_forward_state, hisp_forwards, hisp_mailbox, hisp_inbound, hisp_outbound,"
			      " hisp_outbound_rcpt, jobs CASCADE") == HIE_OK
		       ? 0
		       : -1;
}

/* --- SMTP ------------------------------------------------------------------------------------------------- */

static void set_smtp(const char *addr, int port, const char *tls)
{
	char line[256];
	snprintf(line, sizeof line, "set %s smtp 127.0.0.1:%d --tls %s", addr, port, tls);
	assert_int_equal(cli(hisp_cli_forward, line, NULL, 0), 0);
}

static void test_smtp_tls_delivered(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct smtp_box b;
	char eb[256];
	box_start(&b, srv_tls, 0);
	set_smtp("bob@b.test", b.port, "required");
	long long mid = deliver("bob@b.test", msg_final);
	assert_int_equal(fwd_state_is(mid, "pending"), 1);
	assert_int_equal(by_mid("SELECT count(*) FROM jobs WHERE kind = 'hisp.forward' AND payload = $1", mid), 1);

	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(b.stored, 1);
	assert_true(b.tls);
	assert_string_equal(b.mail_from, "alice@a.test");
	assert_string_equal(b.rcpts, "bob@b.test,");
	assert_int_equal(b.data.len, strlen(msg_final));
	assert_memory_equal(b.data.data, msg_final, strlen(msg_final));
	assert_int_equal(fwd_state_is(mid, "delivered"), 1);
	assert_int_equal(acked(mid), 1);
	assert_int_equal(notice("mdn", "mdn-dispatched", mid), 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 1);

	/* a rerun (crash after commit, lease expired) sends nothing and queues nothing more */
	assert_int_equal(run_job(mid, 2, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(b.stored, 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 1);

	/* no final delivery asked: delivered and acknowledged, no MDN */
	long long mid2 = deliver("bob@b.test", msg_plain);
	assert_int_equal(run_job(mid2, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(b.stored, 2);
	assert_memory_equal(b.data.data, msg_plain, strlen(msg_plain));
	assert_int_equal(fwd_state_is(mid2, "delivered"), 1);
	assert_int_equal(acked(mid2), 1);
	assert_int_equal(notice("mdn", "mdn-dispatched", mid2), 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 1);

	char out[4096];
	assert_int_equal(cli(hisp_cli_forward, "status bob@b.test", out, sizeof out), 0);
	assert_non_null(strstr(out, "state=delivered"));
	smtp_box_stop(&b);
}

static void test_smtp_plain_and_opportunistic(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct smtp_box b;
	char eb[256];
	box_start(&b, NULL, 0);
	/* a server without STARTTLS: "opportunistic" sends in clear, "none" too */
	set_smtp("bob@b.test", b.port, "opportunistic");
	long long mid = deliver("bob@b.test", msg_plain);
	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(b.stored, 1);
	assert_false(b.tls);
	set_smtp("carol@b.test", b.port, "none");
	long long mid2 = deliver("carol@b.test", msg_plain);
	assert_int_equal(run_job(mid2, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(b.stored, 2);
	assert_string_equal(b.rcpts, "carol@b.test,");
	assert_int_equal(fwd_state_is(mid2, "delivered"), 1);
	smtp_box_stop(&b);

	/* "opportunistic" against a server offering STARTTLS uses it */
	box_start(&b, srv_tls, 0);
	set_smtp("bob@b.test", b.port, "opportunistic");
	long long mid3 = deliver("bob@b.test", msg_plain);
	assert_int_equal(run_job(mid3, 1, 5, eb, sizeof eb), HIE_OK);
	assert_true(b.tls);
	smtp_box_stop(&b);
}

static void test_smtp_refused(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct smtp_box b;
	char eb[256], reason[256];
	box_start(&b, srv_tls, 550);
	set_smtp("bob@b.test", b.port, "required");
	long long mid = deliver("bob@b.test", msg_final);
	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(b.stored, 0);
	assert_int_equal(fwd_state_is(mid, "failed"), 1);
	reason_of(mid, reason, sizeof reason);
	assert_string_equal(reason, "smtp 550");
	assert_int_equal(acked(mid), 0); /* still in the mailbox: the EHR can pull it */
	assert_int_equal(notice("mdn", "mdn-failed", mid), 1);
	assert_int_equal(notice("mdn", "mdn-dispatched", mid), 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound_rcpt WHERE address = 'alice@a.test'", NULL),
			 1);
	/* the Direct part of `hienode status` lists it (ids and reason, never content) */
	const struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state};
	char *obuf = hisptest_status(&c);
	assert_non_null(strstr(obuf, "direct failed forwards"));
	assert_non_null(strstr(obuf, "address=bob@b.test kind=smtp"));
	assert_non_null(strstr(obuf, "reason=smtp 550"));
	assert_null(strstr(obuf, "Referral"));
	free(obuf);
	/* rerun: nothing more */
	assert_int_equal(run_job(mid, 2, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 1);

	/* not asked for final delivery: a DSN, From the local address (whose certificate signs it) */
	long long mid2 = deliver("bob@b.test", msg_plain);
	assert_int_equal(run_job(mid2, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(fwd_state_is(mid2, "failed"), 1);
	assert_int_equal(notice("dsn", "dsn-forward", mid2), 1);
	assert_int_equal(notice("mdn", "mdn-failed", mid2), 0);
	char id[100];
	snprintf(id, sizeof id, "dsn-forward-%lld@hisp.b.test", mid2);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_outbound WHERE message_id = $1 AND sender = 'bob@b.test'"
				       " AND position('From: bob@b.test' in convert_from(raw, 'UTF8')) = 1"
				       " AND position('Status: 5.0.0' in convert_from(raw, 'UTF8')) > 0"
				       " AND position('fwd-plain@a.test' in convert_from(raw, 'UTF8')) > 0",
				       id),
			 1);
	smtp_box_stop(&b);
}

static void test_smtp_down_then_given_up(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	char eb[256], reason[256];
	set_smtp("bob@b.test", dead_port(), "required");
	long long mid = deliver("bob@b.test", msg_final);
	assert_int_equal(run_job(mid, 1, 3, eb, sizeof eb), HIE_EIO);
	assert_memory_equal(eb, "deferred: ", 10);
	assert_int_equal(fwd_state_is(mid, "pending"), 1);
	assert_int_equal(by_mid("SELECT attempts FROM hisp_forward_state WHERE mailbox_id = $1::bigint", mid), 1);
	assert_int_equal(run_job(mid, 2, 3, eb, sizeof eb), HIE_EIO);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 0);
	/* the last attempt gives up: failed, the failed MDN */
	assert_int_equal(run_job(mid, 3, 3, eb, sizeof eb), HIE_OK);
	assert_int_equal(fwd_state_is(mid, "failed"), 1);
	reason_of(mid, reason, sizeof reason);
	assert_non_null(strstr(reason, "gave up after 3 attempts: smtp"));
	assert_int_equal(notice("mdn", "mdn-failed", mid), 1);
	assert_int_equal(acked(mid), 0);
}

static void test_smtp_tls_refused(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct smtp_box b;
	char eb[256];
	/* a certificate from a CA we were not told to trust */
	box_start(&b, srv_tls, 0);
	snprintf(H->forward_smtp_ca, sizeof H->forward_smtp_ca, "%s", CT2.ca_pem);
	set_smtp("bob@b.test", b.port, "required");
	long long mid = deliver("bob@b.test", msg_final);
	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_EIO);
	assert_int_equal(run_job(mid, 2, 5, eb, sizeof eb), HIE_EIO);
	assert_int_equal(b.stored, 0);
	assert_int_equal(fwd_state_is(mid, "pending"), 1);
	assert_int_equal(acked(mid), 0);
	smtp_box_stop(&b);

	/* TLS required, the server offers no STARTTLS: never sent in clear */
	box_start(&b, NULL, 0);
	snprintf(H->forward_smtp_ca, sizeof H->forward_smtp_ca, "%s", CT.ca_pem);
	set_smtp("bob@b.test", b.port, "required");
	long long mid2 = deliver("bob@b.test", msg_plain);
	assert_int_equal(run_job(mid2, 1, 5, eb, sizeof eb), HIE_EIO);
	assert_int_equal(b.stored, 0);
	/* ... and given up on at the last attempt, with a DSN */
	assert_int_equal(run_job(mid2, 5, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(b.stored, 0);
	assert_int_equal(fwd_state_is(mid2, "failed"), 1);
	assert_int_equal(notice("dsn", "dsn-forward", mid2), 1);
	smtp_box_stop(&b);
}

static void test_job_edges(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	char eb[256];
	struct hie_job job = {.id = 1, .kind = "hisp.forward", .payload = "12x", .attempts = 1, .max_attempts = 5};
	assert_int_equal(hisp_forward_job(&job, H, eb, sizeof eb), HIE_EPERMANENT);
	job.payload = "-3";
	assert_int_equal(hisp_forward_job(&job, H, eb, sizeof eb), HIE_EPERMANENT);
	/* an item that is gone (removed mailbox item: its forward state went with it) */
	assert_int_equal(run_job(999999, 1, 5, eb, sizeof eb), HIE_OK);
	/* an address without forwarding gets no state row and no job */
	long long mid = deliver("carol@b.test", msg_plain);
	assert_int_equal(by_mid("SELECT count(*) FROM hisp_forward_state WHERE mailbox_id = $1::bigint", mid), 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.forward'", NULL), 0);
}

/* --- XDR: a loopback ITI-41 endpoint (core_http + hie_soap_parse) ---------------------------------------- */

enum { EP_SUCCESS, EP_FAILURE, EP_HTTP500, EP_HTTP400 };

struct ep {
	pthread_mutex_t mu;
	int answer;
	int requests;
	int ndocs;
	bool has_sor;
	char action[128], level[32], to[256], from[256];
	unsigned char doc0[4096];
	size_t doc0_len;
	struct hie_http_server *srv;
	int port;
};

static void direct_header(const xmlNode *hdr, const char *name, char *out, size_t outlen)
{
	out[0] = '\0';
	for (const xmlNode *n = hdr ? hdr->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && n->ns && xmlStrcmp(n->ns->href, BAD_CAST HISP_DIRECT_NS) == 0 &&
		    xmlStrcmp(n->name, BAD_CAST name) == 0) {
			xmlChar *t = xmlNodeGetContent(n);
			snprintf(out, outlen, "%s", t ? (const char *)t : "");
			xmlFree(t);
			return;
		}
}

static const char RR_OK[] = "<rs:RegistryResponse xmlns:rs=\"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0\""
			    " status=\"urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success\"/>";
static const char RR_FAIL[] =
	"<rs:RegistryResponse xmlns:rs=\"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0\""
	" status=\"urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure\"><rs:RegistryErrorList>"
	"<rs:RegistryError errorCode=\"XDSRepositoryMetadataError\" codeContext=\"metadata refused\""
	" severity=\"urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error\"/></rs:RegistryErrorList>"
	"</rs:RegistryResponse>";

static hie_err_t ep_handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	struct ep *e = ctx;
	struct hie_soap_msg *msg = NULL;
	struct hie_soap_fault f;
	memset(&f, 0, sizeof f);
	hie_err_t err = hie_soap_parse(hie_http_req_header(req, "Content-Type"), req->body, req->body_len, NULL, &msg,
				       &f);
	pthread_mutex_lock(&e->mu);
	e->requests++;
	int answer = e->answer;
	if (!err) {
		snprintf(e->action, sizeof e->action, "%s", msg->wsa.action ? msg->wsa.action : "");
		direct_header(msg->header, "metadata-level", e->level, sizeof e->level);
		direct_header(msg->header, "to", e->to, sizeof e->to);
		direct_header(msg->header, "from", e->from, sizeof e->from);
		e->ndocs = 0;
		e->has_sor = false;
		for (xmlNode *n = msg->payload ? msg->payload->children : NULL; n; n = n->next) {
			if (n->type != XML_ELEMENT_NODE)
				continue;
			if (xmlStrcmp(n->name, BAD_CAST "SubmitObjectsRequest") == 0)
				e->has_sor = true;
			if (xmlStrcmp(n->name, BAD_CAST "Document") != 0)
				continue;
			if (e->ndocs++ == 0) {
				struct hie_buf sc;
				const char *d = NULL;
				size_t l = 0;
				hie_buf_init(&sc, 1 << 20);
				e->doc0_len = 0;
				if (hie_soap_binary(msg, n, &d, &l, &sc) == HIE_OK && l <= sizeof e->doc0) {
					memcpy(e->doc0, d, l);
					e->doc0_len = l;
				}
				hie_buf_free(&sc);
			}
		}
	}
	pthread_mutex_unlock(&e->mu);
	if (err || answer == EP_HTTP400) {
		hie_soap_msg_free(msg);
		return hie_http_resp_text(resp, 400, "bad request");
	}
	if (answer == EP_HTTP500) {
		hie_soap_msg_free(msg);
		return hie_http_resp_text(resp, 500, "repository down");
	}
	const char *body = answer == EP_FAILURE ? RR_FAIL : RR_OK;
	struct hie_soap_out o = {.action = HISP_XDR_ACTION "Response",
				 .relates_to = msg->wsa.message_id,
				 .body_xml = body,
				 .body_len = strlen(body)};
	struct hie_buf ctb;
	hie_buf_init(&ctb, 1024);
	err = hie_soap_build(&o, &resp->body, &ctb);
	if (!err)
		err = hie_http_resp_header(resp, "Content-Type", hie_buf_str(&ctb));
	resp->content_type = NULL;
	resp->status = 200;
	hie_buf_free(&ctb);
	hie_soap_msg_free(msg);
	return err;
}

static void ep_start(struct ep *e, int answer)
{
	memset(e, 0, sizeof *e);
	pthread_mutex_init(&e->mu, NULL);
	e->answer = answer;
	struct hie_http_config hc = {.host = "127.0.0.1", .threads = 2};
	assert_int_equal(hie_http_new(&hc, &e->srv), HIE_OK);
	struct hie_http_route r = {.path = "/xdr", .methods = HIE_HTTP_POST, .body_max = 16 << 20, .fn = ep_handler,
				   .ctx = e};
	assert_int_equal(hie_http_route_add(e->srv, &r), HIE_OK);
	assert_int_equal(hie_http_start(e->srv), HIE_OK);
	e->port = hie_http_port(e->srv);
}

static void ep_stop(struct ep *e)
{
	hie_http_free(e->srv);
	pthread_mutex_destroy(&e->mu);
}

static void set_xdr(const char *addr, int port, const char *metadata)
{
	char line[256];
	snprintf(line, sizeof line, "set %s xdr http://127.0.0.1:%d/xdr --insecure-http --metadata %s", addr, port,
		 metadata);
	assert_int_equal(cli(hisp_cli_forward, line, NULL, 0), 0);
}

static const char CDA[] = HISPTEST_CDA;

/* A message asking for final delivery with a text body and one base64 attachment; NUL-terminated, caller frees. */
static char *msg_with(const char *ctype, const char *filename, const void *data, size_t len)
{
	struct hie_buf m, b64;
	hie_buf_init(&m, 8u << 20);
	hie_buf_init(&b64, 8u << 20);
	assert_int_equal(hie_mime_base64_encode(data, len, true, &b64), HIE_OK);
	assert_int_equal(hie_buf_addf(&m,
				      "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: documents\r\n"
				      "Date: Mon, 05 Jan 2026 10:00:00 +0000\r\nMessage-ID: <xdr-%s@a.test>\r\n"
				      "MIME-Version: 1.0\r\n" FINAL_HDR
				      "Content-Type: multipart/mixed; boundary=\"b-1\"\r\n\r\n"
				      "--b-1\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n"
				      "--b-1\r\nContent-Type: %s\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"
				      "Content-Transfer-Encoding: base64\r\n\r\n",
				      filename, ctype, filename),
			 HIE_OK);
	assert_int_equal(hie_buf_add(&m, b64.data, b64.len), HIE_OK);
	assert_int_equal(hie_buf_addstr(&m, "\r\n--b-1--\r\n"), HIE_OK);
	hie_buf_free(&b64);
	size_t n = 0;
	return hie_buf_steal(&m, &n);
}

static void test_xdr_minimal(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct ep e;
	char eb[256];
	ep_start(&e, EP_SUCCESS);
	set_xdr("bob@b.test", e.port, "minimal");
	char *m = msg_with("application/xml", "summary.xml", CDA, sizeof CDA - 1);
	long long mid = deliver("bob@b.test", m);
	free(m);
	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(e.requests, 1);
	assert_string_equal(e.action, HISP_XDR_ACTION);
	assert_true(e.has_sor);
	assert_int_equal(e.ndocs, 1);
	assert_string_equal(e.level, "minimal");
	assert_string_equal(e.to, "bob@b.test");
	assert_string_equal(e.from, "alice@a.test");
	assert_int_equal(e.doc0_len, sizeof CDA - 1);
	assert_memory_equal(e.doc0, CDA, sizeof CDA - 1);
	assert_int_equal(fwd_state_is(mid, "delivered"), 1);
	assert_int_equal(acked(mid), 1);
	assert_int_equal(notice("mdn", "mdn-dispatched", mid), 1);
	ep_stop(&e);
}

static void test_xdr_full_xdm(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct ep e;
	struct hie_buf zip;
	char eb[256];
	hie_buf_init(&zip, 8u << 20);
	hisptest_make_xdm(&zip, "alice@a.test", "bob@b.test");
	ep_start(&e, EP_SUCCESS);
	set_xdr("bob@b.test", e.port, "full");
	char *m = msg_with("application/zip", "xdm.zip", zip.data, zip.len);
	long long mid = deliver("bob@b.test", m);
	free(m);
	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(e.requests, 1);
	assert_string_equal(e.level, "XDS");
	assert_true(e.has_sor);
	assert_int_equal(e.ndocs, 1);
	assert_int_equal(e.doc0_len, sizeof CDA - 1);
	assert_memory_equal(e.doc0, CDA, sizeof CDA - 1);
	assert_int_equal(fwd_state_is(mid, "delivered"), 1);

	/* metadata "minimal" with the same message: the zip itself is the document */
	set_xdr("carol@b.test", e.port, "minimal");
	m = msg_with("application/zip", "xdm.zip", zip.data, zip.len);
	long long mid2 = deliver("carol@b.test", m);
	free(m);
	assert_int_equal(run_job(mid2, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(e.requests, 2);
	assert_string_equal(e.level, "minimal");
	assert_int_equal(e.ndocs, 1);
	assert_int_equal(e.doc0_len, zip.len);
	ep_stop(&e);
	hie_buf_free(&zip);
}

/* An XDM whose METADATA.xml is ebRS 2.1 (older senders), written with libzip. */
static void make_xdm21(struct hie_buf *out)
{
	static const char md[] =
		"<rs:SubmitObjectsRequest xmlns:rs=\"urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1\""
		" xmlns:rim=\"urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1\"><rim:LeafRegistryObjectList>"
		"<rim:ExtrinsicObject id=\"Doc21\" mimeType=\"text/xml\""
		" objectType=\"urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1\">"
		"<rim:Slot name=\"URI\"><rim:ValueList><rim:Value>DOC0001.XML</rim:Value></rim:ValueList></rim:Slot>"
		"</rim:ExtrinsicObject></rim:LeafRegistryObjectList></rs:SubmitObjectsRequest>";
	static const char index[] = "<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>XDM</title></head>"
				    "<body><p><a href=\"IHE_XDM/SUBSET01/DOC0001.XML\">document</a></p></body></html>";
	static const char readme[] = "made by a test\r\n";
	char path[128];
	snprintf(path, sizeof path, "%s/xdm21.zip", state);
	int ze = 0;
	zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &ze);
	assert_non_null(z);
	const struct {
		const char *name;
		const void *data;
		size_t len;
	} files[] = {{"IHE_XDM/SUBSET01/METADATA.xml", md, sizeof md - 1},
		     {"IHE_XDM/SUBSET01/DOC0001.XML", CDA, sizeof CDA - 1},
		     {"INDEX.HTM", index, sizeof index - 1},
		     {"README.TXT", readme, sizeof readme - 1}};
	for (size_t i = 0; i < 4; i++) {
		zip_source_t *src = zip_source_buffer(z, files[i].data, files[i].len, 0);
		assert_non_null(src);
		assert_true(zip_file_add(z, files[i].name, src, ZIP_FL_OVERWRITE) >= 0);
	}
	assert_int_equal(zip_close(z), 0);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char raw[1 << 16];
	size_t n = fread(raw, 1, sizeof raw, f);
	fclose(f);
	assert_true(n > 0 && n < sizeof raw);
	hie_buf_init(out, 1 << 20);
	assert_int_equal(hie_buf_add(out, raw, n), HIE_OK);
}

static void test_xdr_ebrs21(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct ep e;
	struct hie_buf zip;
	char eb[256];
	make_xdm21(&zip);
	ep_start(&e, EP_SUCCESS);
	set_xdr("bob@b.test", e.port, "full");
	char *m = msg_with("application/zip", "old.zip", zip.data, zip.len);
	long long mid = deliver("bob@b.test", m);
	free(m);
	/* 2.1 metadata cannot be an ITI-41's: the package's documents go with minimal metadata */
	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(e.requests, 1);
	assert_string_equal(e.level, "minimal");
	assert_int_equal(e.ndocs, 1);
	assert_int_equal(e.doc0_len, sizeof CDA - 1);
	assert_memory_equal(e.doc0, CDA, sizeof CDA - 1);
	assert_int_equal(fwd_state_is(mid, "delivered"), 1);
	ep_stop(&e);
	hie_buf_free(&zip);
}

static void test_xdr_refusals(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct ep e;
	char eb[256], reason[256];
	ep_start(&e, EP_FAILURE);
	set_xdr("bob@b.test", e.port, "minimal");
	char *m = msg_with("application/xml", "summary.xml", CDA, sizeof CDA - 1);
	long long mid = deliver("bob@b.test", m);
	assert_int_equal(run_job(mid, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(fwd_state_is(mid, "failed"), 1);
	reason_of(mid, reason, sizeof reason);
	assert_string_equal(reason, "xdr Failure XDSRepositoryMetadataError");
	assert_int_equal(notice("mdn", "mdn-failed", mid), 1);
	assert_int_equal(acked(mid), 0);

	/* HTTP 500: retried */
	e.answer = EP_HTTP500;
	long long mid2 = deliver("bob@b.test", m);
	assert_int_equal(run_job(mid2, 1, 5, eb, sizeof eb), HIE_EIO);
	assert_memory_equal(eb, "deferred: xdr", 13);
	assert_int_equal(fwd_state_is(mid2, "pending"), 1);
	/* then it comes back */
	e.answer = EP_SUCCESS;
	assert_int_equal(run_job(mid2, 2, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(fwd_state_is(mid2, "delivered"), 1);

	/* HTTP 4xx: permanent */
	e.answer = EP_HTTP400;
	long long mid3 = deliver("bob@b.test", m);
	assert_int_equal(run_job(mid3, 1, 5, eb, sizeof eb), HIE_OK);
	assert_int_equal(fwd_state_is(mid3, "failed"), 1);
	reason_of(mid3, reason, sizeof reason);
	assert_memory_equal(reason, "xdr refused", 11);
	ep_stop(&e);

	/* nobody listening: retried */
	set_xdr("bob@b.test", dead_port(), "minimal");
	long long mid4 = deliver("bob@b.test", m);
	assert_int_equal(run_job(mid4, 1, 5, eb, sizeof eb), HIE_EIO);
	assert_int_equal(fwd_state_is(mid4, "pending"), 1);
	free(m);
}

/* --- the command -------------------------------------------------------------------------------------------- */

struct cli_case {
	const char *line;
	int rc;
	const char *out; /* substring of the output, or NULL */
};

static void test_cli(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const struct cli_case cases[] = {
		{.line = "", .rc = 2},
		{.line = "frob", .rc = 2},
		{.line = "set", .rc = 2},
		{.line = "set bob@b.test smtp", .rc = 2},
		{.line = "set bob@b.test ftp mail:25", .rc = 2},
		{.line = "set bob@b.test smtp nohostport", .rc = 2},
		{.line = "set bob@b.test smtp mail:70000", .rc = 2},
		{.line = "set bob@b.test smtp mail:0", .rc = 2},
		{.line = "set bob@b.test smtp mail/x:25", .rc = 2},
		{.line = "set bob@b.test smtp mail:25 --tls maybe", .rc = 2},
		{.line = "set bob@b.test smtp mail:25 --tls", .rc = 2},
		{.line = "set bob@b.test smtp mail:25 --metadata full", .rc = 2},
		{.line = "set bob@b.test smtp mail:25 --insecure-http", .rc = 2},
		{.line = "set bob@b.test smtp mail:25 extra", .rc = 2},
		{.line = "set bob@b.test xdr http://127.0.0.1:8080/xdr", .rc = 2},
		{.line = "set bob@b.test xdr ftp://ehr.test/xdr", .rc = 2},
		{.line = "set bob@b.test xdr https:///xdr", .rc = 2},
		{.line = "set bob@b.test xdr https://user@ehr.test/xdr", .rc = 2},
		{.line = "set bob@b.test xdr https://ehr.test/xdr --metadata partial", .rc = 2},
		{.line = "set bob@b.test xdr https://ehr.test/xdr --tls required", .rc = 2},
		{.line = "set bob@b.test xdr http://ehr.test/x --insecure-http --insecure-http", .rc = 2},
		{.line = "set not-an-address smtp mail:25", .rc = 2},
		{.line = "set zed@elsewhere.test smtp mail:25", .rc = 1},
		{.line = "remove bob@b.test", .rc = 1},
		{.line = "remove", .rc = 2},
		{.line = "list extra", .rc = 2},
		{.line = "status a b", .rc = 2},
		{.line = "list", .rc = 0, .out = "(no forwards)"},
		{.line = "set Bob@B.test smtp mail.practice.test:25", .rc = 0,
		 .out = "forward address=bob@b.test kind=smtp target=mail.practice.test:25 tls=required"},
		{.line = "set carol@b.test smtp [::1]:2525 --tls=opportunistic", .rc = 0,
		 .out = "target=[::1]:2525 tls=opportunistic"},
		{.line = "list", .rc = 0, .out = "forward address=carol@b.test kind=smtp target=[::1]:2525 tls=opportunistic"},
		/* set again: replaced */
		{.line = "set bob@b.test xdr http://127.0.0.1:8080/xdr --insecure-http --metadata minimal", .rc = 0,
		 .out = "kind=xdr target=http://127.0.0.1:8080/xdr metadata=minimal"},
		{.line = "set bob@b.test xdr https://ehr.test/xdr", .rc = 0, .out = "metadata=full"},
		{.line = "list", .rc = 0, .out = "forward address=bob@b.test kind=xdr target=https://ehr.test/xdr metadata=full"},
		{.line = "status", .rc = 0, .out = "(no forwarded messages)"},
		{.line = "remove BOB@b.test", .rc = 0, .out = "removed forward address=bob@b.test"},
		{.line = "remove bob@b.test", .rc = 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[4096] = "";
		setenv("HISPTEST_QUIET", "1", 1);
		int rc = cli(hisp_cli_forward, cases[i].line, out, sizeof out);
		unsetenv("HISPTEST_QUIET");
		if (rc != cases[i].rc || (cases[i].out && !strstr(out, cases[i].out)))
			fail_msg("case %zu '%s': rc %d (want %d), out '%s'", i, cases[i].line, rc, cases[i].rc, out);
	}
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_forwards", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_smtp_tls_delivered, setup),
		cmocka_unit_test_setup(test_smtp_plain_and_opportunistic, setup),
		cmocka_unit_test_setup(test_smtp_refused, setup),
		cmocka_unit_test_setup(test_smtp_down_then_given_up, setup),
		cmocka_unit_test_setup(test_smtp_tls_refused, setup),
		cmocka_unit_test_setup(test_job_edges, setup),
		cmocka_unit_test_setup(test_xdr_minimal, setup),
		cmocka_unit_test_setup(test_xdr_full_xdm, setup),
		cmocka_unit_test_setup(test_xdr_ebrs21, setup),
		cmocka_unit_test_setup(test_xdr_refusals, setup),
		cmocka_unit_test_setup(test_cli, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
