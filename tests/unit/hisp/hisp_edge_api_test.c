/*
 * hisp_edge_api_test.c — the mailbox API end to end: a real core_http server with TLS on 127.0.0.1 (the route
 * mounted by hisp_edge_routes), a real PostgreSQL, users made with hisp_user_add, driven by the `curl` command.
 * Covers: list (new items oldest first, limit / after paging, all=1, every granted address), fetch with a text
 * body and an XDM attachment unpacked (metadata, documents, content=0), raw bytes, ack with exactly one
 * dispatched MDN (X-DIRECT-FINAL-DESTINATION-DELIVERY) and none the second time or when not asked; 401 with
 * WWW-Authenticate, 429 after 5 failures, 404 for another user's mailbox or message, 403 over plain HTTP,
 * hostile ids and paths, an XDM whose INDEX.HTM is not XHTML, peer text that is not UTF-8.
 */
#include "tests/unit/core/pgtest.h" /* first: it sets _XOPEN_SOURCE for nftw */

#include "tests/unit/core/certtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/core_http.h"
#include "core/core_mime.h"
#include "tests/unit/hisp/hisptest.h"

#define SMITH "dr.smith@b.example"
#define JONES "dr.jones@b.example"
#define CLINIC "clinic@b.example"
#define PW_SMITH "smith-password-1234"
#define PW_JONES "jones-password-5678"

static struct pgtest T;
static struct hie_db_pool *P;
static struct hie_cfg *Cfg;
static struct hisp *H;
static struct certtest CT;
static struct hie_http_server *Srv, *Plain;
static char Tmp[64], State[96];

/* --- fixture ---------------------------------------------------------------------------------------------- */

static hie_err_t users_tx(PGconn *tx, void *arg)
{
	(void)arg;
	hie_err_t err = hisp_user_add(tx, SMITH, PW_SMITH);
	if (!err)
		err = hisp_user_add(tx, JONES, PW_JONES);
	if (!err)
		err = hisp_user_grant(tx, SMITH, CLINIC);
	return err;
}

static int start_server(bool tls, struct hie_http_server **out)
{
	struct hie_http_config hc = {.host = "127.0.0.1", .threads = 2};
	if (tls) {
		hc.tls_cert_file = CT.srv_pem;
		hc.tls_key_file = CT.srv_key;
	}
	if (hie_http_new(&hc, out) != HIE_OK || hisp_edge_routes(H, *out) != HIE_OK || hie_http_start(*out) != HIE_OK)
		return -1;
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	static const struct hisptest_set set[] = {{"direct", "hostname", "hisp.b.example"},
						  {"edge", "auth_max_failures", "5"},
						  {"edge", "auth_lockout", "2m"}};
	if (hisptest_open(&T, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	if (hisptest_tmpdir(Tmp, sizeof Tmp, "hedgeapi") != 0)
		return -1;
	snprintf(State, sizeof State, "%s/state", Tmp);
	if (mkdir(State, 0700) != 0 || certtest_make(&CT, "hedgecert") != 0 ||
	    hisptest_config(&Cfg, set, sizeof set / sizeof set[0]) != 0)
		return -1;
	if (hisp_service_open(Cfg, P, State, &H) != HIE_OK || hie_db_tx(P, users_tx, NULL) != HIE_OK)
		return -1;
	if (!H->edge_require_tls) {
		fprintf(stderr, "[edge] require_tls should default to true\n");
		return -1;
	}
	return start_server(true, &Srv) || start_server(false, &Plain) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (!T.skip) {
		hie_http_free(Srv);
		hie_http_free(Plain);
		hisp_service_close(H);
		hie_cfg_free(Cfg);
		certtest_remove(&CT);
		hisptest_rmdir(Tmp);
	}
	pgtest_close(&T, P);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (T.skip)
		return 0;
	return hisptest_reset(P, "TRUNCATE hisp_mailbox, hisp_outbound, hisp_outbound_rcpt, jobs CASCADE", NULL);
}

/* --- mailbox content ---------------------------------------------------------------------------------------- */

struct put_arg {
	const char *address;
	const char *msg;
	size_t len;
	const char *message_id;
};

static hie_err_t put_tx(PGconn *tx, void *arg)
{
	struct put_arg *p = arg;
	return hisp_mailbox_put(tx, p->address, "message", 0, p->message_id, p->msg, p->len);
}

/* Puts msg into address's mailbox and returns the new item's id. */
static long long put(const char *address, const char *msg, size_t len, const char *message_id)
{
	struct put_arg p = {address, msg, len, message_id};
	assert_int_equal(hie_db_tx(P, put_tx, &p), HIE_OK);
	long long id = pgtest_scalar(P, "SELECT max(id) FROM hisp_mailbox WHERE address = $1", address);
	assert_true(id > 0);
	return id;
}

static long long put_simple(const char *address, const char *subject, const char *msgid, bool want_final)
{
	char m[2048];
	int n = snprintf(m, sizeof m,
			 "From: \"Alice Sender\" <Alice@A.example>\r\n"
			 "To: %s\r\n"
			 "Subject: %s\r\n"
			 "Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
			 "Message-ID: <%s>\r\n"
			 "%s"
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "\r\n"
			 "Patient referral, see you soon.\r\n",
			 address, subject, msgid,
			 want_final ? "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n"
				    : "");
	return put(address, m, (size_t)n, msgid);
}

/* --- the client: the curl command ----------------------------------------------------------------------------- */

struct res {
	int code;
	char *body;
	size_t len;
	char headers[8192];
	json_t *json;
};

static void res_free(struct res *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof *r);
}

/* The file's bytes ("" when it is missing); the caller frees them. */
static char *slurp(const char *p, size_t *len)
{
	char *b = hisptest_slurp(p, len);
	if (!b) {
		*len = 0;
		b = strdup("");
		assert_non_null(b);
	}
	return b;
}

/*
 * method path (with query) as userpass ("user:pass" or NULL), over TLS (tls) or plain HTTP. Fills r: status,
 * body, headers, and the body parsed as JSON when it is JSON.
 */
static void call(struct res *r, const char *method, const char *path, const char *userpass, bool tls)
{
	char cmd[2048], out[64] = "", hdr[128], body[128];
	memset(r, 0, sizeof *r);
	snprintf(hdr, sizeof hdr, "%s/h.txt", Tmp);
	snprintf(body, sizeof body, "%s/b.txt", Tmp);
	remove(hdr);
	remove(body);
	snprintf(cmd, sizeof cmd,
		 "curl -s -g --max-time 60 -X %s %s --cacert %s %s%s%s -D %s -o %s -w '%%{http_code}' '%s://127.0.0.1:%u%s'",
		 method, strcmp(method, "POST") == 0 ? "-d ''" : "", CT.ca_pem, userpass ? "-u '" : "",
		 userpass ? userpass : "", userpass ? "'" : "", hdr, body, tls ? "https" : "http",
		 (unsigned)hie_http_port(tls ? Srv : Plain), path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	pclose(p);
	r->code = (int)strtol(out, NULL, 10);
	size_t hl = 0;
	char *h = slurp(hdr, &hl);
	snprintf(r->headers, sizeof r->headers, "%s", h);
	free(h);
	r->body = slurp(body, &r->len);
	if (strstr(r->headers, "application/json"))
		r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void get(struct res *r, const char *path, const char *userpass)
{
	call(r, "GET", path, userpass, true);
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "(none)";
}

static void expect_error(const struct res *r, int code)
{
	if (r->code != code)
		fprintf(stderr, "expected %d, got %d: %s\n", code, r->code, r->body);
	assert_int_equal(r->code, code);
	assert_non_null(r->json);
	assert_true(strstr(r->headers, "application/json; charset=utf-8") != NULL);
	assert_non_null(json_string_value(json_object_get(r->json, "error")));
}

/* --- tests ------------------------------------------------------------------------------------------------------ */

static void test_list(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct res r;
	long long a = put_simple(SMITH, "=?UTF-8?B?UmVmZXJyYWw=?=", "m1@a.example", false);
	long long b = put_simple(SMITH, "second", "m2@a.example", false);
	long long c = put_simple(SMITH, "third", "m3@a.example", false);
	long long d = put_simple(CLINIC, "to the clinic", "m4@a.example", false);
	long long j = put_simple(JONES, "for jones", "m5@a.example", false);

	get(&r, "/edge/v1/messages?address=" SMITH, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_non_null(r.json);
	assert_string_equal(jstr(r.json, "address"), SMITH);
	json_t *m = json_object_get(r.json, "messages");
	assert_int_equal(json_array_size(m), 3);
	json_t *first = json_array_get(m, 0);
	assert_int_equal(json_integer_value(json_object_get(first, "id")), a);
	assert_string_equal(jstr(first, "kind"), "message");
	assert_string_equal(jstr(first, "from"), "alice@a.example");
	assert_string_equal(jstr(first, "subject"), "=?UTF-8?B?UmVmZXJyYWw=?=");
	assert_string_equal(jstr(first, "message_id"), "m1@a.example");
	assert_true(json_is_false(json_object_get(first, "acked")));
	assert_true(json_integer_value(json_object_get(first, "size")) > 100);
	assert_int_equal(strlen(jstr(first, "received_at")), 20);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 2), "id")), c);
	assert_int_equal(json_integer_value(json_object_get(r.json, "next_after")), c);
	res_free(&r);

	/* paging */
	get(&r, "/edge/v1/messages?address=" SMITH "&limit=2", SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "messages")), 2);
	long long next = json_integer_value(json_object_get(r.json, "next_after"));
	assert_int_equal(next, b);
	res_free(&r);
	char path[256];
	snprintf(path, sizeof path, "/edge/v1/messages?address=%s&after=%lld&limit=2", SMITH, next);
	get(&r, path, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "messages")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(r.json, "messages"), 0), "id")),
			 c);
	res_free(&r);

	/* an acknowledged item leaves the list of new ones, stays in all=1 */
	snprintf(path, sizeof path, "/edge/v1/messages/%lld/ack", b);
	call(&r, "POST", path, SMITH ":" PW_SMITH, true);
	assert_int_equal(r.code, 200);
	res_free(&r);
	get(&r, "/edge/v1/messages?address=" SMITH, SMITH ":" PW_SMITH);
	assert_int_equal(json_array_size(json_object_get(r.json, "messages")), 2);
	res_free(&r);
	get(&r, "/edge/v1/messages?address=DR.Smith@B.example&all=1", SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	m = json_object_get(r.json, "messages");
	assert_int_equal(json_array_size(m), 3);
	assert_true(json_is_true(json_object_get(json_array_get(m, 1), "acked")));
	res_free(&r);

	/* without address: every address granted to the user, each item with its address */
	get(&r, "/edge/v1/messages", SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	m = json_object_get(r.json, "messages");
	assert_int_equal(json_array_size(m), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 2), "id")), d);
	assert_string_equal(jstr(json_array_get(m, 2), "address"), CLINIC);
	for (size_t i = 0; i < json_array_size(m); i++)
		assert_int_not_equal(json_integer_value(json_object_get(json_array_get(m, i), "id")), j);
	res_free(&r);

	/* someone else's mailbox, an unknown one, a non-address: 404 alike */
	get(&r, "/edge/v1/messages?address=" JONES, SMITH ":" PW_SMITH);
	expect_error(&r, 404);
	res_free(&r);
	get(&r, "/edge/v1/messages?address=nobody@b.example", SMITH ":" PW_SMITH);
	expect_error(&r, 404);
	res_free(&r);
	get(&r, "/edge/v1/messages?address=%0d%0a", SMITH ":" PW_SMITH);
	expect_error(&r, 404);
	res_free(&r);
	get(&r, "/edge/v1/messages?address=" JONES, JONES ":" PW_JONES);
	assert_int_equal(r.code, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "messages")), 1);
	res_free(&r);

	/* bad arguments */
	const char *bad[] = {"limit=0", "limit=501", "limit=abc", "after=-1", "after=99999999999999999999", "all=2"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(path, sizeof path, "/edge/v1/messages?address=%s&%s", SMITH, bad[i]);
		get(&r, path, SMITH ":" PW_SMITH);
		expect_error(&r, 400);
		res_free(&r);
	}
}

static void test_auth(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct res r;
	/* no credentials, other schemes, garbage: 401, not counted */
	get(&r, "/edge/v1/messages", NULL);
	expect_error(&r, 401);
	assert_true(strstr(r.headers, "WWW-Authenticate: Basic realm=\"hienode edge\", charset=\"UTF-8\"") != NULL);
	res_free(&r);

	get(&r, "/edge/v1/messages", ":");
	expect_error(&r, 401);
	res_free(&r);

	/* wrong password, unknown user: 401; the 6th attempt after 5 failures is 429 even with the right password */
	const char *wrong[] = {SMITH ":wrong-password-0000", "nobody@b.example:" PW_SMITH, SMITH ":",
			       SMITH ":" PW_JONES, JONES ":" PW_SMITH};
	for (size_t i = 0; i < 5; i++) {
		get(&r, "/edge/v1/messages", wrong[i]);
		expect_error(&r, 401);
		assert_true(strstr(r.headers, "WWW-Authenticate: Basic") != NULL);
		res_free(&r);
	}
	get(&r, "/edge/v1/messages", SMITH ":" PW_SMITH);
	expect_error(&r, 429);
	assert_true(strstr(r.headers, "Retry-After: 120") != NULL);
	res_free(&r);

	hisp_auth_limit_reset();
	get(&r, "/edge/v1/messages", SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	res_free(&r);
}

static void test_plain_http(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct res r;
	call(&r, "GET", "/edge/v1/messages", SMITH ":" PW_SMITH, false);
	expect_error(&r, 403);
	assert_string_equal(jstr(r.json, "error"), "https required");
	res_free(&r);
}

static void test_paths(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct res r;
	char path[256];
	long long id = put_simple(SMITH, "s", "p1@a.example", false);
	const char *ids[] = {"abc", "-1", "0", "99999999999999999999", "1x", "%2B1", "+1", "%201", "1%00", "1.0", "",
			     "0000000000000000000001"};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		snprintf(path, sizeof path, "/edge/v1/messages/%s", ids[i]);
		get(&r, path, SMITH ":" PW_SMITH);
		if (r.code != 404 && r.code != 400)
			fprintf(stderr, "id '%s' → %d\n", ids[i], r.code);
		assert_true(r.code == 404 || r.code == 400);
		res_free(&r);
		/* "1%00/ack" reaches the handler as "messages/1" (the decoded path ends at the NUL): 405 there */
		if (strstr(ids[i], "%00"))
			continue;
		snprintf(path, sizeof path, "/edge/v1/messages/%s/ack", ids[i]);
		call(&r, "POST", path, SMITH ":" PW_SMITH, true);
		if (r.code != 404 && r.code != 400)
			fprintf(stderr, "ack of id '%s' → %d\n", ids[i], r.code);
		assert_true(r.code == 404 || r.code == 400);
		res_free(&r);
	}
	const struct {
		const char *head, *tail; /* head ID tail, or head alone when tail is NULL */
	} notfound[] = {{"/edge/v1/", NULL},
			{"/edge/v1/nothing", NULL},
			{"/edge/v1/messagesx", NULL},
			{"/edge/v1/messages/", "/nothing"},
			{"/edge/v1/messages/", "/raw/x"},
			{"/edge/v1/messages/", "/"}};
	for (size_t i = 0; i < sizeof notfound / sizeof notfound[0]; i++) {
		if (notfound[i].tail)
			snprintf(path, sizeof path, "%s%lld%s", notfound[i].head, id, notfound[i].tail);
		else
			snprintf(path, sizeof path, "%s", notfound[i].head);
		get(&r, path, SMITH ":" PW_SMITH);
		expect_error(&r, 404);
		res_free(&r);
	}
	/* wrong methods */
	snprintf(path, sizeof path, "/edge/v1/messages/%lld/ack", id);
	get(&r, path, SMITH ":" PW_SMITH);
	expect_error(&r, 405);
	assert_true(strstr(r.headers, "Allow: POST") != NULL);
	res_free(&r);
	call(&r, "POST", "/edge/v1/messages", SMITH ":" PW_SMITH, true);
	expect_error(&r, 405);
	res_free(&r);
	call(&r, "DELETE", "/edge/v1/messages", SMITH ":" PW_SMITH, true);
	assert_int_equal(r.code, 405);
	res_free(&r);
	/* the item is untouched */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE acked_at IS NOT NULL", NULL), 0);
}

/* The dispatched MDNs queued so far. */
static long long mdns(void)
{
	return pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE kind = 'mdn'", NULL);
}

static void test_ack(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct res r;
	char path[256];
	long long asked = put_simple(SMITH, "wants final", "final@a.example", true);
	long long plain = put_simple(SMITH, "no final", "nofinal@a.example", false);
	long long other = put_simple(JONES, "jones", "jones@a.example", true);

	snprintf(path, sizeof path, "/edge/v1/messages/%lld/ack", asked);
	call(&r, "POST", path, SMITH ":" PW_SMITH, true);
	assert_int_equal(r.code, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "id")), asked);
	assert_true(json_is_true(json_object_get(r.json, "acked")));
	assert_string_equal(jstr(r.json, "mdn"), "dispatched");
	res_free(&r);
	assert_int_equal(mdns(), 1);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_outbound o JOIN hisp_outbound_rcpt t ON t.outbound_id = o.id"
				       " WHERE o.kind = 'mdn' AND t.address = 'alice@a.example' AND o.sender = $1"
				       " AND position('dispatched' in convert_from(o.raw, 'UTF8')) > 0"
				       " AND position('X-DIRECT-FINAL-DESTINATION-DELIVERY' in convert_from(o.raw, 'UTF8')) > 0"
				       " AND position('final@a.example' in convert_from(o.raw, 'UTF8')) > 0",
				       SMITH),
			 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE acked_at IS NOT NULL", NULL), 1);

	/* twice: still 200, no second MDN */
	call(&r, "POST", path, SMITH ":" PW_SMITH, true);
	assert_int_equal(r.code, 200);
	assert_true(json_is_true(json_object_get(r.json, "acked")));
	assert_string_equal(jstr(r.json, "mdn"), "dispatched"); /* the state: it is queued, once */
	res_free(&r);
	assert_int_equal(mdns(), 1);

	/* a message that did not ask: no MDN */
	snprintf(path, sizeof path, "/edge/v1/messages/%lld/ack", plain);
	call(&r, "POST", path, SMITH ":" PW_SMITH, true);
	assert_int_equal(r.code, 200);
	assert_string_equal(jstr(r.json, "mdn"), "none");
	res_free(&r);
	assert_int_equal(mdns(), 1);

	/* someone else's message: 404, not acknowledged, no MDN */
	snprintf(path, sizeof path, "/edge/v1/messages/%lld/ack", other);
	call(&r, "POST", path, SMITH ":" PW_SMITH, true);
	expect_error(&r, 404);
	res_free(&r);
	assert_int_equal(mdns(), 1);
	assert_int_equal(hisptest_scalar_id(P, "SELECT count(*) FROM hisp_mailbox WHERE id = $1::bigint AND acked_at IS NULL",
					    other),
			 1);
	/* hisp_edge_ack itself refuses an item of another address */
	PGconn *c;
	bool mdn = true;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hisp_edge_ack(H, c, SMITH, other, &mdn), HIE_ENOTFOUND);
	assert_false(mdn);
	hie_db_release(P, c, false);
}

/* --- fetch: text body and XDM --------------------------------------------------------------------------------- */

static const char CDA[] = HISPTEST_CDA;

/* A message with a text body and the zip as an attachment; returns its mailbox id. */
static long long put_with_xdm(const struct hie_buf *zip, const char *msgid, char **raw, size_t *rawlen)
{
	struct hie_buf m, b64;
	hie_buf_init(&m, 64u << 20);
	hie_buf_init(&b64, 64u << 20);
	assert_int_equal(hie_mime_base64_encode(zip->data, zip->len, true, &b64), HIE_OK);
	assert_int_equal(hie_buf_addf(&m,
				      "From: alice@a.example\r\nTo: " SMITH "\r\nCc: Carol <carol@c.example>, dave@d.example\r\n"
				      "Subject: Referral =?UTF-8?Q?J=C3=BCrgen?=\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
				      "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n"
				      "Content-Type: multipart/mixed; boundary=\"b-1\"\r\n\r\n"
				      "--b-1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
				      "Dear colleague, J\xc3\xbcrgen's discharge summary is attached.\r\n"
				      "--b-1\r\nContent-Type: application/zip; name=\"xdm.zip\"\r\n"
				      "Content-Disposition: attachment; filename=\"xdm.zip\"\r\n"
				      "Content-Transfer-Encoding: base64\r\n\r\n",
				      msgid),
			 HIE_OK);
	assert_int_equal(hie_buf_add(&m, b64.data, b64.len), HIE_OK);
	assert_int_equal(hie_buf_addstr(&m, "\r\n--b-1--\r\n"), HIE_OK);
	long long id = put(SMITH, m.data, m.len, msgid);
	hie_buf_free(&b64);
	*raw = hie_buf_steal(&m, rawlen);
	return id;
}

static void test_fetch_xdm(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_buf zip, dec;
	struct res r;
	char path[256], *raw = NULL;
	size_t rawlen = 0;
	hie_buf_init(&zip, 64u << 20);
	hisptest_make_xdm(&zip, "alice@a.example", SMITH);
	long long id = put_with_xdm(&zip, "xdm1@a.example", &raw, &rawlen);

	snprintf(path, sizeof path, "/edge/v1/messages/%lld", id);
	get(&r, path, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_non_null(r.json);
	assert_int_equal(json_integer_value(json_object_get(r.json, "id")), id);
	assert_string_equal(jstr(r.json, "address"), SMITH);
	assert_string_equal(jstr(r.json, "kind"), "message");
	assert_string_equal(jstr(r.json, "message_id"), "xdm1@a.example");
	assert_true(json_is_false(json_object_get(r.json, "acked")));
	json_t *h = json_object_get(r.json, "headers");
	assert_string_equal(jstr(h, "from"), "alice@a.example");
	assert_string_equal(jstr(h, "subject"), "Referral =?UTF-8?Q?J=C3=BCrgen?=");
	assert_string_equal(jstr(h, "message_id"), "xdm1@a.example");
	assert_string_equal(jstr(h, "date"), "Mon, 02 Feb 2026 10:00:00 +0000");
	assert_true(json_is_null(json_object_get(h, "disposition_notification_options")));
	assert_int_equal(json_array_size(json_object_get(h, "to")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(h, "to"), 0)), SMITH);
	assert_int_equal(json_array_size(json_object_get(h, "cc")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(h, "cc"), 1)), "dave@d.example");

	json_t *parts = json_object_get(r.json, "parts");
	assert_int_equal(json_array_size(parts), 2);
	json_t *p0 = json_array_get(parts, 0), *p1 = json_array_get(parts, 1);
	assert_string_equal(jstr(p0, "content_type"), "text/plain");
	assert_true(json_is_false(json_object_get(p0, "attachment")));
	/* the CRLF before the boundary belongs to the boundary (RFC 2046 5.1.1) */
	assert_string_equal(jstr(p0, "text"), "Dear colleague, J\xc3\xbcrgen's discharge summary is attached.");
	assert_null(json_object_get(p0, "content_base64"));
	assert_string_equal(jstr(p1, "filename"), "xdm.zip");
	assert_true(json_is_true(json_object_get(p1, "attachment")));
	assert_int_equal(json_integer_value(json_object_get(p1, "size")), zip.len);
	hie_buf_init(&dec, 64u << 20);
	const char *b = jstr(p1, "content_base64");
	assert_int_equal(hie_mime_base64_decode(b, strlen(b), &dec), HIE_OK);
	assert_int_equal(dec.len, zip.len);
	assert_memory_equal(dec.data, zip.data, zip.len);

	json_t *xdm = json_object_get(r.json, "xdm");
	assert_int_equal(json_array_size(xdm), 1);
	json_t *x = json_array_get(xdm, 0);
	if (!json_is_true(json_object_get(x, "valid")))
		fprintf(stderr, "xdm invalid: %s\n", jstr(x, "error"));
	assert_true(json_is_true(json_object_get(x, "valid")));
	assert_int_equal(json_integer_value(json_object_get(x, "part")), 1);
	assert_non_null(strstr(jstr(x, "metadata"), "SubmitObjectsRequest"));
	json_t *docs = json_object_get(x, "documents");
	assert_int_equal(json_array_size(docs), 1);
	json_t *d0 = json_array_get(docs, 0);
	assert_string_equal(jstr(d0, "mime_type"), "text/xml");
	assert_non_null(strstr(jstr(d0, "path"), "SUBSET01/"));
	assert_true(strlen(jstr(d0, "unique_id")) > 0);
	assert_int_equal(json_integer_value(json_object_get(d0, "size")), sizeof CDA - 1);
	hie_buf_reset(&dec);
	b = jstr(d0, "content_base64");
	assert_int_equal(hie_mime_base64_decode(b, strlen(b), &dec), HIE_OK);
	assert_int_equal(dec.len, sizeof CDA - 1);
	assert_memory_equal(dec.data, CDA, sizeof CDA - 1);
	res_free(&r);

	/* content=0: the same without any base64 */
	snprintf(path, sizeof path, "/edge/v1/messages/%lld?content=0", id);
	get(&r, path, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_null(strstr(r.body, "content_base64"));
	assert_non_null(strstr(r.body, "\"documents\""));
	res_free(&r);

	/* raw: the stored bytes */
	snprintf(path, sizeof path, "/edge/v1/messages/%lld/raw", id);
	get(&r, path, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.headers, "message/rfc822"));
	assert_int_equal(r.len, rawlen);
	assert_memory_equal(r.body, raw, rawlen);
	res_free(&r);

	/* another user sees nothing of it */
	snprintf(path, sizeof path, "/edge/v1/messages/%lld", id);
	get(&r, path, JONES ":" PW_JONES);
	expect_error(&r, 404);
	res_free(&r);
	snprintf(path, sizeof path, "/edge/v1/messages/%lld/raw", id);
	get(&r, path, JONES ":" PW_JONES);
	expect_error(&r, 404);
	res_free(&r);
	snprintf(path, sizeof path, "/edge/v1/messages/%lld", id + 1000);
	get(&r, path, SMITH ":" PW_SMITH);
	expect_error(&r, 404);
	res_free(&r);

	free(raw);
	hie_buf_free(&dec);
	hie_buf_free(&zip);
}

static void test_fetch_bad_xdm(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_buf zip;
	struct res r;
	char path[256], *raw = NULL;
	size_t rawlen = 0;
	hie_buf_init(&zip, 64u << 20);
	hisptest_make_xdm(&zip, "alice@a.example", SMITH);
	hisptest_break_index(&zip);
	long long id = put_with_xdm(&zip, "xdm2@a.example", &raw, &rawlen);
	snprintf(path, sizeof path, "/edge/v1/messages/%lld", id);
	get(&r, path, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	json_t *x = json_array_get(json_object_get(r.json, "xdm"), 0);
	assert_non_null(x);
	assert_true(json_is_false(json_object_get(x, "valid")));
	fprintf(stderr, "bad XDM reason: %s\n", jstr(x, "error"));
	assert_non_null(strstr(jstr(x, "error"), "INDEX.HTM"));
	assert_null(json_object_get(x, "documents"));
	/* the rest of the message is still there */
	assert_int_equal(json_array_size(json_object_get(r.json, "parts")), 2);
	res_free(&r);
	free(raw);
	hie_buf_free(&zip);
}

/* Peer text that is not UTF-8 or has control bytes comes out printable and the JSON stays valid. */
static void test_hostile_text(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const char m[] = "From: \xff\xfe <alice@a.example>\r\n"
				"To: " SMITH "\r\n"
				"Subject: bad \xc3\x28 bytes\x01 \xed\xa0\x80 end\r\n"
				"Message-ID: <hostile@a.example>\r\n"
				"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"
				"Gr\xfc\xdf" "e\r\n";
	struct res r;
	char path[256];
	long long id = put(SMITH, m, sizeof m - 1, "hostile@a.example");
	get(&r, "/edge/v1/messages?address=" SMITH, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_non_null(r.json);
	json_t *it = json_array_get(json_object_get(r.json, "messages"), 0);
	assert_string_equal(jstr(it, "from"), "alice@a.example");
	assert_string_equal(jstr(it, "subject"), "bad ?( bytes? ??? end");
	res_free(&r);
	snprintf(path, sizeof path, "/edge/v1/messages/%lld", id);
	get(&r, path, SMITH ":" PW_SMITH);
	assert_int_equal(r.code, 200);
	assert_non_null(r.json);
	json_t *p0 = json_array_get(json_object_get(r.json, "parts"), 0);
	assert_string_equal(jstr(p0, "charset"), "iso-8859-1");
	assert_null(json_object_get(p0, "text")); /* not UTF-8: base64 instead */
	struct hie_buf dec;
	hie_buf_init(&dec, 1024);
	const char *b = jstr(p0, "content_base64");
	assert_int_equal(hie_mime_base64_decode(b, strlen(b), &dec), HIE_OK);
	assert_int_equal(dec.len, 7);
	assert_memory_equal(dec.data, "Gr\xfc\xdf" "e\r\n", 7);
	hie_buf_free(&dec);
	res_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_list, setup),
		cmocka_unit_test_setup(test_auth, setup),
		cmocka_unit_test_setup(test_plain_http, setup),
		cmocka_unit_test_setup(test_paths, setup),
		cmocka_unit_test_setup(test_ack, setup),
		cmocka_unit_test_setup(test_fetch_xdm, setup),
		cmocka_unit_test_setup(test_fetch_bad_xdm, setup),
		cmocka_unit_test_setup(test_hostile_text, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
