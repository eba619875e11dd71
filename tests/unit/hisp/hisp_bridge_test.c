/*
 * hisp_bridge_test.c — the push-to-pull bridge's module side (hisp_bridge.c, hisp_cli_bridge.c) on a real
 * PostgreSQL, with a bridge callback that records what it is handed and answers registered / parked / an
 * error: a CDA attachment is one document without metadata (registered with its uniqueId); attachments that
 * are not CDA are not documents; an XDM (hisp_xdm_build) gives its documents with METADATA.xml; an invalid XDM
 * is parked with hisp_xdm_read's reason; a callback error makes the job fail with nothing registered and a
 * rerun hands over only what is not registered yet; no callback = retry later. The `bridge` command, including
 * `retry`, which queues the message again.
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_mime.h"
#include "tests/unit/hisp/hisptest.h"

static struct pgtest T;
static struct hie_db_pool *P;
static struct hie_cfg *cfg;
static struct hisp *H;
static char state[64];

/* --- the callback ----------------------------------------------------------------------------------------- */

#define REC_MAX 8

struct rec_doc {
	char mime[64];
	bool has_metadata;
	bool metadata_is_sor;
	char entry_id[64];
	char sender[256], recipient[256], message_id[256];
	unsigned char data[2048];
	size_t len;
};

static struct rec {
	enum { ANSWER_REGISTERED, ANSWER_PARKED, ANSWER_ERROR } answer;
	int calls;
	struct rec_doc docs[REC_MAX];
} R;

static hie_err_t bridge_cb(void *arg, const struct hisp_bridge_doc *doc, struct hisp_bridge_result *res)
{
	struct rec *r = arg;
	if (r->calls < REC_MAX) {
		struct rec_doc *d = &r->docs[r->calls];
		memset(d, 0, sizeof *d);
		snprintf(d->mime, sizeof d->mime, "%s", doc->mime_type ? doc->mime_type : "");
		d->has_metadata = doc->metadata != NULL;
		d->metadata_is_sor = doc->metadata && doc->metadata_len > 0 &&
				     strstr(doc->metadata, "SubmitObjectsRequest") != NULL;
		snprintf(d->entry_id, sizeof d->entry_id, "%s", doc->entry_id ? doc->entry_id : "");
		snprintf(d->sender, sizeof d->sender, "%s", doc->sender ? doc->sender : "");
		snprintf(d->recipient, sizeof d->recipient, "%s", doc->recipient ? doc->recipient : "");
		snprintf(d->message_id, sizeof d->message_id, "%s", doc->message_id ? doc->message_id : "");
		d->len = doc->len < sizeof d->data ? doc->len : sizeof d->data;
		memcpy(d->data, doc->data, d->len);
	}
	r->calls++;
	switch (r->answer) {
	case ANSWER_REGISTERED:
		res->outcome = HISP_BRIDGE_REGISTERED;
		snprintf(res->unique_id, sizeof res->unique_id, "2.25.%d", 1000 + r->calls);
		return HIE_OK;
	case ANSWER_PARKED:
		res->outcome = HISP_BRIDGE_PARKED;
		snprintf(res->reason, sizeof res->reason, "no patient matched");
		return HIE_OK;
	default:
		return HIE_EDB;
	}
}

/* --- helpers ------------------------------------------------------------------------------------------------ */

/* Runs the command with line split on blanks; its standard output into out (may be NULL). */
static int cli(int (*fn)(const struct hisp_cli *, int, char **), const char *line, char *out, size_t outlen)
{
	const struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state};
	return hisptest_cli(&c, fn, line, NULL, out, outlen, NULL, 0);
}

struct att {
	const char *ctype;    /* Content-Type value */
	const char *filename; /* NULL: none */
	const void *data;
	size_t len;
};

/* A multipart/mixed message from alice@a.test to addr with a text body and the attachments (base64). */
static void make_msg(struct hie_buf *m, const char *addr, const char *msgid, const struct att *a, size_t n)
{
	hie_buf_init(m, 8u << 20);
	assert_int_equal(hie_buf_addf(m,
				      "From: Alice <alice@a.test>\r\nTo: %s\r\nSubject: documents\r\n"
				      "Date: Mon, 05 Jan 2026 10:00:00 +0000\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"
				      "Content-Type: multipart/mixed; boundary=\"b-1\"\r\n\r\n"
				      "--b-1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee attached.\r\n",
				      addr, msgid),
			 HIE_OK);
	for (size_t i = 0; i < n; i++) {
		struct hie_buf b64;
		hie_buf_init(&b64, 8u << 20);
		assert_int_equal(hie_mime_base64_encode(a[i].data, a[i].len, true, &b64), HIE_OK);
		assert_int_equal(hie_buf_addf(m, "--b-1\r\nContent-Type: %s\r\n", a[i].ctype), HIE_OK);
		if (a[i].filename)
			assert_int_equal(hie_buf_addf(m, "Content-Disposition: attachment; filename=\"%s\"\r\n",
						      a[i].filename),
					 HIE_OK);
		assert_int_equal(hie_buf_addstr(m, "Content-Transfer-Encoding: base64\r\n\r\n"), HIE_OK);
		assert_int_equal(hie_buf_add(m, b64.data, b64.len), HIE_OK);
		assert_int_equal(hie_buf_addstr(m, "\r\n"), HIE_OK);
		hie_buf_free(&b64);
	}
	assert_int_equal(hie_buf_addstr(m, "--b-1--\r\n"), HIE_OK);
}

static long long deliver(const char *addr, struct hie_buf *msg)
{
	long long mid = hisptest_deliver(P, H, addr, msg->data, msg->len);
	hie_buf_free(msg);
	return mid;
}

static hie_err_t run_job(long long mid, char *errbuf, size_t errlen)
{
	char payload[24];
	snprintf(payload, sizeof payload, "%lld", mid);
	struct hie_job job = {.id = 1, .kind = "hisp.bridge", .payload = payload, .attempts = 1, .max_attempts = 10};
	errbuf[0] = 0;
	return hisp_bridge_job(&job, H, errbuf, errlen);
}

static long long rows(long long mid, const char *st)
{
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM hisp_bridge_docs WHERE mailbox_id = $1::bigint AND state = '%s'",
		 st);
	return hisptest_scalar_id(P, sql, mid);
}

/* One column of the only row of mailbox mid (""); fails the test when there is not exactly one. */
static void row_col(long long mid, const char *col, char *out, size_t outlen)
{
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT coalesce(%s, '') FROM hisp_bridge_docs WHERE mailbox_id = $1::bigint", col);
	hisptest_text_id(P, sql, mid, out, outlen);
}

static const char CDA[] = HISPTEST_CDA;
static const char NOT_CDA[] = "<?xml version=\"1.0\"?><order xmlns=\"urn:example\"><item/></order>\n";
static const char PDF[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";

/* --- fixture ---------------------------------------------------------------------------------------------- */

static int group_setup(void **st)
{
	(void)st;
	static const struct hisptest_set set[] = {{"direct", "hostname", "hisp.b.test"},
						  {"direct", "dns_server", "127.0.0.1:9"}};
	if (hisptest_open(&T, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	if (hisptest_tmpdir(state, sizeof state, "hbrst") != 0 ||
	    hisptest_config(&cfg, set, sizeof set / sizeof set[0]) != 0)
		return -1;
	static const char *const domains[] = {"add b.test", "address add bob@b.test", "address add carol@b.test",
					      "add c.test"};
	const struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state};
	if (hisptest_cli_all(&c, hisp_cli_domain, domains, 4) != 0 || hisp_service_open(cfg, P, state, &H) != HIE_OK)
		return -1;
	return 0;
}

static int group_teardown(void **st)
{
	(void)st;
	if (!T.skip) {
		hisp_service_close(H);
		hie_cfg_free(cfg);
		hisptest_rmdir(state);
	}
	pgtest_close(&T, P);
	return 0;
}

static int setup(void **st)
{
	(void)st;
	if (T.skip)
		return 0;
	memset(&R, 0, sizeof R);
	hisp_service_set_bridge(H, bridge_cb, &R);
	if (pgtest_exec(P, "TRUNCATE hisp_bridge_docs, hisp_bridges, hisp_forward_state, hisp_mailbox, hisp_inbound,"
			   " hisp_outbound, jobs CASCADE") != HIE_OK)
		return -1;
	return cli(hisp_cli_bridge, "add b.test", NULL, 0) == 0 ? 0 : -1;
}

/* --- the job ---------------------------------------------------------------------------------------------- */

static void test_cda_attachment(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_buf m;
	char eb[256], v[256];
	const struct att a[] = {{.ctype = "application/xml", .filename = "summary.xml", .data = CDA, .len = sizeof CDA - 1},
				{.ctype = "application/xml", .filename = "order.xml", .data = NOT_CDA,
				 .len = sizeof NOT_CDA - 1},
				{.ctype = "application/pdf", .filename = "scan.pdf", .data = PDF, .len = sizeof PDF - 1}};
	make_msg(&m, "bob@b.test", "cda1@a.test", a, 3);
	long long mid = deliver("bob@b.test", &m);
	/* the delivery hook queued the job (the domain is bridged) */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.bridge'", NULL), 1);

	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(R.calls, 1);
	assert_false(R.docs[0].has_metadata);
	assert_int_equal(R.docs[0].len, sizeof CDA - 1);
	assert_memory_equal(R.docs[0].data, CDA, sizeof CDA - 1);
	assert_string_equal(R.docs[0].mime, "application/xml");
	assert_string_equal(R.docs[0].sender, "alice@a.test");
	assert_string_equal(R.docs[0].recipient, "bob@b.test");
	assert_string_equal(R.docs[0].message_id, "cda1@a.test");
	assert_int_equal(rows(mid, "registered"), 1);
	row_col(mid, "unique_id", v, sizeof v);
	assert_string_equal(v, "2.25.1001");
	row_col(mid, "part", v, sizeof v);
	assert_string_equal(v, "summary.xml");

	/* rerun: registered documents are not handed over again */
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(R.calls, 1);
	assert_int_equal(rows(mid, "registered"), 1);
}

static void test_no_documents(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_buf m;
	char eb[256];
	const struct att a[] = {{.ctype = "application/pdf", .filename = "scan.pdf", .data = PDF, .len = sizeof PDF - 1}};
	make_msg(&m, "bob@b.test", "none@a.test", a, 1);
	long long mid = deliver("bob@b.test", &m);
	hisp_service_set_bridge(H, NULL, NULL); /* not even needed: nothing to hand over */
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(R.calls, 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_bridge_docs", NULL), 0);
	/* bad payloads, and an item that is gone */
	struct hie_job job = {.id = 1, .kind = "hisp.bridge", .payload = "x1", .attempts = 1, .max_attempts = 10};
	assert_int_equal(hisp_bridge_job(&job, H, eb, sizeof eb), HIE_EPERMANENT);
	assert_int_equal(run_job(987654, eb, sizeof eb), HIE_OK);
}

static void test_callback_error_then_rerun(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_buf m;
	char eb[256];
	const struct att a[] = {{.ctype = "text/xml", .filename = NULL, .data = CDA, .len = sizeof CDA - 1},
				{.ctype = "application/xml", .filename = "second.xml", .data = CDA, .len = sizeof CDA - 1}};
	make_msg(&m, "carol@b.test", "err1@a.test", a, 2);
	long long mid = deliver("carol@b.test", &m);

	/* no callback configured: retry later, nothing recorded */
	hisp_service_set_bridge(H, NULL, NULL);
	assert_int_not_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_string_equal(eb, "bridge not configured");
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_bridge_docs", NULL), 0);

	/* the registry is down: the job fails (to be retried), nothing registered */
	hisp_service_set_bridge(H, bridge_cb, &R);
	R.answer = ANSWER_ERROR;
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_EDB);
	assert_int_equal(R.calls, 1);
	assert_int_equal(rows(mid, "registered"), 0);

	R.answer = ANSWER_REGISTERED;
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(R.calls, 3);
	assert_int_equal(rows(mid, "registered"), 2);
	/* the unnamed text/xml part is "part-<index>" */
	assert_int_equal(hisptest_scalar_id(P,
					    "SELECT count(*) FROM hisp_bridge_docs WHERE mailbox_id = $1::bigint"
					    " AND part IN ('part-1', 'second.xml')",
					    mid),
			 2);
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(R.calls, 3);
}

static void test_parked_and_retry(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_buf m;
	char eb[256], v[256], out[4096], line[128];
	const struct att a[] = {{.ctype = "application/xml", .filename = "summary.xml", .data = CDA, .len = sizeof CDA - 1}};
	make_msg(&m, "bob@b.test", "park1@a.test", a, 1);
	long long mid = deliver("bob@b.test", &m);
	R.answer = ANSWER_PARKED;
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(rows(mid, "parked"), 1);
	row_col(mid, "reason", v, sizeof v);
	assert_string_equal(v, "no patient matched");
	assert_int_equal(cli(hisp_cli_bridge, "parked", out, sizeof out), 0);
	assert_non_null(strstr(out, "part=\"summary.xml\""));
	assert_non_null(strstr(out, "reason=\"no patient matched\""));
	assert_null(strstr(out, "Discharge")); /* never content */

	/* the Direct part of `hienode status` shows it too */
	const struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state};
	char *obuf = hisptest_status(&c);
	assert_non_null(strstr(obuf, "direct bridge documents parked or failed"));
	assert_non_null(strstr(obuf, "reason=no patient matched"));
	free(obuf);

	/* the operator added the patient: retry by id queues the message again */
	long long id = pgtest_scalar(P, "SELECT min(id) FROM hisp_bridge_docs", NULL);
	long long before = pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.bridge'", NULL);
	snprintf(line, sizeof line, "retry %lld", id);
	assert_int_equal(cli(hisp_cli_bridge, line, out, sizeof out), 0);
	assert_non_null(strstr(out, "queued"));
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.bridge'", NULL), before + 1);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM jobs WHERE kind = 'hisp.bridge' AND dedup_key LIKE 'bridge-%-retry-%'",
				       NULL),
			 1);
	R.answer = ANSWER_REGISTERED;
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(rows(mid, "registered"), 1);
	assert_int_equal(rows(mid, "parked"), 0);
	/* a registered document cannot be retried; unknown ids and bad arguments are refused */
	setenv("HISPTEST_QUIET", "1", 1);
	assert_int_equal(cli(hisp_cli_bridge, line, out, sizeof out), 1);
	assert_int_equal(cli(hisp_cli_bridge, "retry 99999999", out, sizeof out), 1);
	assert_int_equal(cli(hisp_cli_bridge, "retry", out, sizeof out), 2);
	assert_int_equal(cli(hisp_cli_bridge, "retry abc", out, sizeof out), 2);
	assert_int_equal(cli(hisp_cli_bridge, "retry 0", out, sizeof out), 2);
	assert_int_equal(cli(hisp_cli_bridge, "retry 1 2", out, sizeof out), 2);
	unsetenv("HISPTEST_QUIET");
	assert_int_equal(cli(hisp_cli_bridge, "retry --all", out, sizeof out), 0);
	assert_non_null(strstr(out, "(no parked documents)"));
}

static void test_xdm(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_buf m, zip;
	char eb[256], v[256];
	hie_buf_init(&zip, 8u << 20);
	hisptest_make_xdm(&zip, "alice@a.test", "bob@b.test");
	const struct att a[] = {{.ctype = "application/zip", .filename = "xdm.zip", .data = zip.data, .len = zip.len}};
	make_msg(&m, "bob@b.test", "xdm1@a.test", a, 1);
	long long mid = deliver("bob@b.test", &m);
	assert_int_equal(run_job(mid, eb, sizeof eb), HIE_OK);
	assert_int_equal(R.calls, 1);
	assert_true(R.docs[0].has_metadata);
	assert_true(R.docs[0].metadata_is_sor);
	assert_string_not_equal(R.docs[0].entry_id, "");
	assert_int_equal(R.docs[0].len, sizeof CDA - 1);
	assert_memory_equal(R.docs[0].data, CDA, sizeof CDA - 1);
	assert_int_equal(rows(mid, "registered"), 1);
	row_col(mid, "part", v, sizeof v);
	assert_memory_equal(v, "xdm.zip/IHE_XDM/", 16);

	/* the same package with INDEX.HTM broken: parked with the reason, the callback is not called */
	hisptest_break_index(&zip);
	const struct att b[] = {{.ctype = "application/zip", .filename = "bad.zip", .data = zip.data, .len = zip.len}};
	make_msg(&m, "bob@b.test", "xdm2@a.test", b, 1);
	long long mid2 = deliver("bob@b.test", &m);
	assert_int_equal(run_job(mid2, eb, sizeof eb), HIE_OK);
	assert_int_equal(R.calls, 1);
	assert_int_equal(rows(mid2, "parked"), 1);
	row_col(mid2, "reason", v, sizeof v);
	assert_memory_equal(v, "invalid XDM: ", 13);
	assert_non_null(strstr(v, "INDEX.HTM"));
	row_col(mid2, "part", v, sizeof v);
	assert_string_equal(v, "bad.zip");
	hie_buf_free(&zip);
}

/* --- the command -------------------------------------------------------------------------------------------- */

struct cli_case {
	const char *line;
	int rc;
	const char *out;
};

static void test_cli(void **st)
{
	(void)st;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const struct cli_case cases[] = {
		{.line = "", .rc = 2},
		{.line = "frob", .rc = 2},
		{.line = "add", .rc = 2},
		{.line = "add bad..domain", .rc = 2},
		{.line = "add @b.test", .rc = 2},
		{.line = "add elsewhere.test", .rc = 1},
		{.line = "add zed@b.test", .rc = 1},
		{.line = "add a b", .rc = 2},
		{.line = "list", .rc = 0, .out = "bridge domain=b.test"},
		{.line = "add Carol@B.test", .rc = 0, .out = "bridge address=carol@b.test"},
		{.line = "add carol@b.test", .rc = 0, .out = "bridge address=carol@b.test"},
		{.line = "add C.test", .rc = 0, .out = "bridge domain=c.test"},
		{.line = "list", .rc = 0, .out = "bridge domain=b.test\nbridge domain=c.test\nbridge address=carol@b.test\n"},
		{.line = "remove c.test", .rc = 0, .out = "removed bridge domain=c.test"},
		{.line = "remove c.test", .rc = 1},
		{.line = "remove carol@b.test", .rc = 0},
		{.line = "remove b.test", .rc = 0},
		{.line = "list", .rc = 0, .out = "(no bridges)"},
		{.line = "parked", .rc = 0, .out = "(no parked documents)"},
		{.line = "parked x", .rc = 2},
	};
	setenv("HISPTEST_QUIET", "1", 1);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[4096] = "";
		int rc = cli(hisp_cli_bridge, cases[i].line, out, sizeof out);
		if (rc != cases[i].rc || (cases[i].out && !strstr(out, cases[i].out)))
			fail_msg("case %zu '%s': rc %d (want %d), out '%s'", i, cases[i].line, rc, cases[i].rc, out);
	}
	unsetenv("HISPTEST_QUIET");
	/* without a bridge, a delivery queues no job */
	struct hie_buf m;
	const struct att a[] = {{.ctype = "application/xml", .filename = "summary.xml", .data = CDA, .len = sizeof CDA - 1}};
	make_msg(&m, "bob@b.test", "nobridge@a.test", a, 1);
	deliver("bob@b.test", &m);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.bridge'", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_cda_attachment, setup),
		cmocka_unit_test_setup(test_no_documents, setup),
		cmocka_unit_test_setup(test_callback_error_then_rerun, setup),
		cmocka_unit_test_setup(test_parked_and_retry, setup),
		cmocka_unit_test_setup(test_xdm, setup),
		cmocka_unit_test_setup(test_cli, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
