/*
 * hisp_receive_test.c — the hisp.receive job end to end on a real PostgreSQL, with messages made by the
 * openssl command from the mkpki.sh PKI: a good message is delivered with a processed MDN queued (and a
 * re-run changes nothing); 3DES, a signer not bound to From, an untrusted signer, a recipient missing from
 * To/Cc, a Bcc header and an unencrypted message are quarantined without MDN; an incoming MDN is tracked and
 * forwarded to our sender without an MDN for it; hisp_mdn_dispatched queues one dispatched MDN.
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_svc.h"

/* hisp_wake lives in hisp_service.c, which also names hisp_send_job; while that job is not in the tree this weak
 * stand-in lets the test link (the real one, once there, takes precedence). It is never called here. */
__attribute__((weak)) hie_err_t hisp_send_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);
__attribute__((weak)) hie_err_t hisp_send_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	(void)job;
	(void)arg;
	(void)errbuf;
	(void)errlen;
	return HIE_EPERMANENT;
}

static struct pgtest T;
static struct hie_db_pool *P;
static struct hisp H;
static char Dir[64];
static int Skip;

static const char *path(const char *name)
{
	static char buf[16][512];
	static int k;
	k = (k + 1) % 16;
	snprintf(buf[k], sizeof buf[k], "%s/%s", Dir, name);
	return buf[k];
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static char *read_file(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void write_file(const char *p, const char *s, size_t n)
{
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, n, f), n);
	fclose(f);
}

static int cli(int (*fn)(const struct hisp_cli *, int, char **), int argc, char **argv)
{
	struct hisp_cli c = {.pool = P, .state_dir = path("state"), .out = stderr, .err = stderr};
	return fn(&c, argc, argv);
}

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {hisp_migrations, hisp_migrations_count}};
	if (pgtest_open(&T, 4, schema, 2, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	snprintf(Dir, sizeof Dir, "/tmp/hrx.XXXXXX");
	if (!mkdtemp(Dir))
		return -1;
	const char *src = getenv("HIENODE_SRC");
	if (run("%s/tests/fixtures/direct/mkpki.sh %s >/dev/null 2>&1", src ? src : ".", Dir) != 0) {
		fprintf(stderr, "SKIP: mkpki.sh failed (openssl missing?)\n");
		Skip = 1;
		return 0;
	}
	if (mkdir(path("state"), 0700) != 0)
		return -1;
	char *dom[] = {"add", "b.test"};
	char *addr[] = {"address", "add", "bob@b.test"};
	char *imp[] = {"import", "--address", "bob@b.test", "--cert", (char *)path("bob.pem"), "--key",
		       (char *)path("bob.key")};
	char *anchor[] = {"add", "--domain", "b.test", "--anchor", (char *)path("ca.pem"), "--direction", "incoming"};
	if (cli(hisp_cli_domain, 2, dom) || cli(hisp_cli_domain, 3, addr) || cli(hisp_cli_cert, 7, imp) ||
	    cli(hisp_cli_trust, 7, anchor))
		return -1;
	H.pool = P;
	snprintf(H.hostname, sizeof H.hostname, "hisp.b.test");
	snprintf(H.state_dir, sizeof H.state_dir, "%s", path("state"));
	H.mdn_timeout_ms = 3600000;
	struct hisp_trust_opts to = {.min_rsa_bits = 2048, .fetch_timeout_ms = 2000, .fetch_max = 1 << 20};
	if (hisp_keys_open(P, H.state_dir, &H.keys) != HIE_OK || hisp_trust_open(P, &to, &H.trust) != HIE_OK)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	hisp_trust_close(H.trust);
	hisp_keys_close(H.keys);
	pgtest_close(&T, P);
	if (Dir[0] && !getenv("PGTEST_KEEP"))
		pgtest_rmrf(Dir);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (T.skip || Skip)
		return 0;
	return pgtest_exec(P, "TRUNCATE hisp_mailbox, hisp_outbound, hisp_outbound_rcpt, hisp_inbound, jobs CASCADE") ==
			       HIE_OK
		       ? 0
		       : -1;
}

#define SKIP_IF_NEEDED()                                                                                           \
	do {                                                                                                       \
		if (T.skip || Skip)                                                                                \
			skip();                                                                                    \
	} while (0)

struct msg_case {
	const char *name;
	const char *inner;      /* the RFC 5322 message; wrapped as message/rfc822 */
	const char *signer;     /* pki name, NULL: not signed */
	const char *cipher;     /* openssl option, NULL: not encrypted */
	const char *rcpt;       /* envelope */
	const char *state;      /* expected hisp_inbound state */
	const char *reason;     /* substring of the quarantine reason */
};

/* Builds the message as a sending HISP would, stores it as an accepted SMTP message, returns the inbound id. */
static long long make_inbound(const struct msg_case *tc)
{
	char w[8192];
	int n = snprintf(w, sizeof w, "Content-Type: message/rfc822\r\n\r\n%s", tc->inner);
	write_file(path("w.eml"), w, (size_t)n);
	const char *in = path("w.eml");
	if (tc->signer) {
		assert_int_equal(run("openssl cms -sign -binary -in %s -signer %s/%s.pem -inkey %s/%s.key -md sha256"
				     " -out %s 2>/dev/null",
				     in, Dir, tc->signer, Dir, tc->signer, path("s.eml")),
				 0);
		in = path("s.eml");
	}
	if (tc->cipher) {
		assert_int_equal(run("openssl cms -encrypt -binary -in %s %s -out %s %s 2>/dev/null", in, tc->cipher,
				     path("e.eml"), path("bob.pem")),
				 0);
		in = path("e.eml");
	}
	size_t len = 0;
	char *body = read_file(in, &len);
	assert_non_null(body);
	/* outer routing headers, untrusted (they even lie about the subject) */
	static const char outer[] = "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: outer lies\r\n";
	char *raw = malloc(len + sizeof outer);
	memcpy(raw, outer, sizeof outer - 1);
	memcpy(raw + sizeof outer - 1, body, len);
	free(body);
	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	const char *v[] = {tc->rcpt, raw};
	const int lens[] = {0, (int)(len + sizeof outer - 1)};
	const int fmts[] = {0, 1};
	assert_int_equal(hie_db_exec_bin(c,
					 "INSERT INTO hisp_inbound (peer, mail_from, rcpt_to, raw)"
					 " VALUES ('127.0.0.1', 'alice@a.test', ARRAY[$1], $2) RETURNING id",
					 2, v, lens, fmts, 0, &r),
			 HIE_OK);
	long long id;
	assert_int_equal(hie_db_get_ll(r, 0, 0, &id), HIE_OK);
	PQclear(r);
	hie_db_release(P, c, false);
	free(raw);
	return id;
}

static void receive(long long id)
{
	char payload[24], errbuf[256] = "";
	snprintf(payload, sizeof payload, "%lld", id);
	struct hie_job j = {.id = 1, .kind = "hisp.receive", .payload = payload, .attempts = 1, .max_attempts = 5};
	hie_err_t err = hisp_receive_job(&j, &H, errbuf, sizeof errbuf);
	if (err)
		fail_msg("receive: %s (%s)", hie_errname(err), errbuf);
}

static void expect_state(long long id, const char *state, const char *reason)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	char q[256];
	snprintf(q, sizeof q, "SELECT count(*) FROM hisp_inbound WHERE id = $1::bigint AND state = '%s'", state);
	if (pgtest_scalar(P, q, ids) != 1) {
		PGconn *c;
		PGresult *r;
		assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
		const char *p[] = {ids};
		assert_int_equal(hie_db_exec(c, "SELECT state, coalesce(reason, '') FROM hisp_inbound WHERE id = $1::bigint",
					     1, p, &r),
				 HIE_OK);
		fail_msg("inbound %s: state %s reason '%s', want %s", ids, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), state);
	}
	if (reason) {
		snprintf(q, sizeof q, "SELECT count(*) FROM hisp_inbound WHERE id = $1::bigint AND position('%s' in reason) > 0",
			 reason);
		if (pgtest_scalar(P, q, ids) != 1)
			fail_msg("inbound %s: reason does not contain '%s'", ids, reason);
	}
}

#define INNER(extra, to)                                                                                           \
	"From: \"Alice A\" <Alice@A.test>\r\nTo: " to "\r\nSubject: Referral\r\n"                                   \
	"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <good-1@a.test>\r\n" extra                            \
	"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello bob\r\n"

static void test_good_message(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	const struct msg_case tc = {
		.inner = INNER("Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n",
			       "Bob <bob@b.test>"),
		.signer = "alice", .cipher = "-aes-128-cbc", .rcpt = "bob@b.test"};
	long long id = make_inbound(&tc);
	receive(id);
	expect_state(id, "delivered", NULL);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_inbound WHERE message_id = $1", "good-1@a.test"), 1);
	/* the mailbox holds the inner message, byte for byte */
	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec_bin(c,
					 "SELECT id, content FROM hisp_mailbox WHERE address = 'bob@b.test' AND kind = 'message'",
					 0, NULL, NULL, NULL, 1, &r),
			 HIE_OK);
	assert_int_equal(PQntuples(r), 1);
	assert_int_equal((size_t)PQgetlength(r, 0, 1), strlen(tc.inner));
	assert_memory_equal(PQgetvalue(r, 0, 1), tc.inner, strlen(tc.inner));
	PQclear(r);
	/* one processed MDN queued from bob to alice, about good-1, with its send job */
	char mdnid[64];
	snprintf(mdnid, sizeof mdnid, "mdn-%lld-0@hisp.b.test", id);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_outbound o JOIN hisp_outbound_rcpt r ON r.outbound_id = o.id"
				       " WHERE o.kind = 'mdn' AND o.sender = 'bob@b.test' AND r.address = 'alice@a.test'"
				       " AND o.message_id = $1"
				       " AND position('Original-Message-ID: <good-1@a.test>' in convert_from(o.raw, 'UTF8')) > 0"
				       " AND position('MDN-sent-automatically;processed' in convert_from(o.raw, 'UTF8')) > 0"
				       " AND position('Subject: Processed: Referral' in convert_from(o.raw, 'UTF8')) > 0",
				       mdnid),
			 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 1);
	assert_true(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.send'", NULL) >= 1);
	/* a second run (a crash after commit) changes nothing */
	receive(id);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox", NULL), 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 1);
	/* the edge delivered it: one dispatched MDN with the extension field, however often it says so */
	long long mb = pgtest_scalar(P, "SELECT id FROM hisp_mailbox", NULL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(hie_db_exec(c, "BEGIN", 0, NULL, NULL), HIE_OK);
		assert_int_equal(hisp_mdn_dispatched(&H, c, mb), HIE_OK);
		assert_int_equal(hie_db_exec(c, "COMMIT", 0, NULL, NULL), HIE_OK);
	}
	assert_int_equal(hisp_mdn_dispatched(&H, c, mb + 1000), HIE_ENOTFOUND);
	hie_db_release(P, c, false);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_outbound WHERE kind = 'mdn'"
				       " AND position('MDN-sent-automatically;dispatched' in convert_from(raw, 'UTF8')) > 0"
				       " AND position('X-DIRECT-FINAL-DESTINATION-DELIVERY' in convert_from(raw, 'UTF8')) > 0",
				       NULL),
			 1);
}

static void test_refused(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	static const struct msg_case cases[] = {
		{.name = "3des", .inner = INNER("", "bob@b.test"), .signer = "alice", .cipher = "-des3",
		 .rcpt = "bob@b.test", .state = "quarantined", .reason = "des"},
		{.name = "signed only", .inner = INNER("", "bob@b.test"), .signer = "alice", .cipher = NULL,
		 .rcpt = "bob@b.test", .state = "quarantined"},
		{.name = "signer not bound to From", .inner = INNER("", "bob@b.test"), .signer = "dave",
		 .cipher = "-aes-128-cbc", .rcpt = "bob@b.test", .state = "quarantined", .reason = "untrusted signer: "},
		{.name = "untrusted anchor",
		 .inner = "From: bob@b.test\r\nTo: bob@b.test\r\nMessage-ID: <u@b.test>\r\n\r\nx\r\n",
		 .signer = "bob-untrusted", .cipher = "-aes-128-cbc", .rcpt = "bob@b.test", .state = "quarantined",
		 .reason = "untrusted signer: "},
		{.name = "rcpt not in To/Cc", .inner = INNER("Cc: carol@b.test\r\n", "dave@c.test"), .signer = "alice",
		 .cipher = "-aes-256-cbc", .rcpt = "bob@b.test", .state = "quarantined",
		 .reason = "recipient not in To/Cc"},
		{.name = "bcc", .inner = INNER("Bcc: eve@e.test\r\n", "bob@b.test"), .signer = "alice",
		 .cipher = "-aes-128-cbc", .rcpt = "bob@b.test", .state = "quarantined", .reason = "bcc"},
		{.name = "in Cc is fine", .inner = INNER("Cc: Bob@B.TEST\r\n", "dave@c.test"), .signer = "alice",
		 .cipher = "-aes-128-cbc", .rcpt = "bob@b.test", .state = "delivered"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(setup(NULL), 0);
		long long id = make_inbound(&cases[i]);
		receive(id);
		expect_state(id, cases[i].state, cases[i].reason);
		long long want = strcmp(cases[i].state, "delivered") == 0 ? 1 : 0;
		if (pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE kind = 'mdn'", NULL) != want ||
		    pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox", NULL) != want)
			fail_msg("%s: MDN/mailbox count wrong", cases[i].name);
		receive(id); /* idempotent */
		expect_state(id, cases[i].state, cases[i].reason);
	}
}

static void test_incoming_mdn(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	/* we sent sent-1@b.test from bob to alice */
	assert_int_equal(pgtest_exec(P, "INSERT INTO hisp_outbound (message_id, kind, sender, raw, want_final)"
					" VALUES ('sent-1@b.test', 'message', 'bob@b.test', 'x', false)"),
			 HIE_OK);
	assert_int_equal(pgtest_exec(P, "INSERT INTO hisp_outbound_rcpt (outbound_id, address, state)"
					" SELECT id, 'alice@a.test', 'sent' FROM hisp_outbound"),
			 HIE_OK);
	struct hisp_mdn_req req = {.from = "alice@a.test",
				   .to = "bob@b.test",
				   .original_message_id = "sent-1@b.test",
				   .disposition = "processed",
				   .reporting_ua = "hisp.a.test; other",
				   .message_id = "their-mdn@a.test"};
	struct hie_buf b;
	hie_buf_init(&b, 1 << 16);
	assert_int_equal(hisp_mdn_build(&req, &b), HIE_OK);
	const struct msg_case tc = {.inner = b.data, .signer = "alice", .cipher = "-aes-128-cbc", .rcpt = "bob@b.test"};
	long long id = make_inbound(&tc);
	receive(id);
	expect_state(id, "notice", NULL);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound_rcpt WHERE state = 'processed' AND notified",
				       NULL),
			 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE address = 'bob@b.test' AND kind = 'mdn'",
				       NULL),
			 1);
	/* never an MDN for an MDN */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE kind = 'mdn'", NULL), 0);
	/* the same MDN again (a duplicate from the peer): tracked once, not forwarded twice */
	long long id2 = make_inbound(&tc);
	receive(id2);
	expect_state(id2, "notice", NULL);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox", NULL), 1);
	hie_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_good_message, setup),
		cmocka_unit_test_setup(test_refused, setup),
		cmocka_unit_test_setup(test_incoming_mdn, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
