/*
 * hisp_submit_test.c — SMTP submission (hisp_submit.c, hisp_smtp_in.c in submission mode) on a real embedded
 * PostgreSQL: the service's submission server on a kernel-chosen loopback port with a test certificate
 * (certtest.h), driven by the line client for exact reply codes and by swaks (STARTTLS + AUTH PLAIN / LOGIN).
 *
 * Checks: EHLO offers AUTH only after STARTTLS; AUTH before STARTTLS 538; MAIL/RCPT before AUTH 530; unknown
 * mechanism 504; bad base64 501; "*" cancels (501); wrong password 535; the third failure of a session 421;
 * the client locked out (454) while another address is not; a second AUTH 503; MAIL FROM not granted 550 at
 * MAIL; From header different from MAIL FROM 550; a RCPT not in To/Cc (Bcc) 550; nothing stored for refusals;
 * a good message becomes a hisp_outbound row (kind message, sender, recipients, want_final) whose raw has
 * Message-ID, Date, Disposition-Notification-Options and no Bcc, with a hisp.send job; hisp_submit_store
 * called directly for its table of refusals. Logs are captured: neither the password nor the base64 of the
 * credentials may appear.
 */
#define _XOPEN_SOURCE 700 /* nftw in pgtest.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/core_log.h"
#include "core/core_net.h"
#include "core/core_tls.h"
#include "tests/unit/core/certtest.h"
#include "tests/unit/core/linecli.h"
#include "tests/unit/hisp/hisptest.h"

#define PW "correct horse battery"
/* base64("\0alice@a.test\0correct horse battery") and of a wrong one */
#define PLAIN_OK "AGFsaWNlQGEudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk="
#define PLAIN_BAD "AGFsaWNlQGEudGVzdAB3cm9uZyBob3JzZSBiYXR0ZXJ5"
#define B64_USER "YWxpY2VAYS50ZXN0"                 /* alice@a.test */
#define B64_PASS "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5"     /* correct horse battery */

static struct pgtest T;
static struct hie_db_pool *P;
static struct hie_cfg *cfg;
static struct hisp *H;
static struct certtest CT;
static char state_dir[64];
static int PORT;

/* --- log capture ------------------------------------------------------------------------------------------ */

static atomic_int leaked;

static void sink(enum hie_log_level level, const char *line, size_t len)
{
	if (strstr(line, PW) || strstr(line, "horse") || strstr(line, B64_PASS) || strstr(line, "AGFsaWNl") ||
	    strstr(line, "wrong password"))
		atomic_store(&leaked, 1);
	if (level >= HIE_LOG_WARN || getenv("SUBMIT_TEST_LOG"))
		fprintf(stderr, "%.*s", (int)len, line);
}

/* --- fixture ----------------------------------------------------------------------------------------------- */

static hie_err_t users_tx(PGconn *tx, void *arg)
{
	(void)arg;
	hie_err_t err = hisp_user_add(tx, "alice@a.test", PW);
	if (!err)
		err = hisp_user_grant(tx, "alice@a.test", "clinic@a.test");
	return err;
}

static int group_setup(void **state)
{
	(void)state;
	if (hisptest_open(&T, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	if (certtest_make(&CT, "hsubmit") != 0 || hisptest_tmpdir(state_dir, sizeof state_dir, "hsubst") != 0)
		return -1;
	hie_log_set_sink(sink);
	const struct hisptest_set set[] = {{"direct", "hostname", "hisp.a.test"},
					   {"smtp", "tls_cert", CT.srv_pem},
					   {"smtp", "tls_key", CT.srv_key},
					   {"submission", "command_timeout", "10s"},
					   {"edge", "auth_max_failures", "3"},
					   {"edge", "auth_lockout", "1m"}};
	if (hisptest_config(&cfg, set, sizeof set / sizeof set[0]) != 0)
		return -1;
	SSL_CTX *tls = NULL;
	struct hie_net_listener *l = NULL;
	if (hisp_service_open(cfg, P, state_dir, &H) != HIE_OK ||
	    hisp_submission_tls_load(cfg, &tls) != HIE_OK || !tls ||
	    hie_net_listen("127.0.0.1:0", &l) != HIE_OK)
		return -1;
	PORT = hie_net_listener_port(l);
	if (hisp_service_submission_start(H, l, tls) != HIE_OK)
		return -1;
	return hie_db_tx(P, users_tx, NULL) == HIE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	if (!T.skip) {
		hisp_service_close(H);
		hie_cfg_free(cfg);
		certtest_remove(&CT);
		hisptest_rmdir(state_dir);
		hie_log_set_sink(NULL);
	}
	pgtest_close(&T, P);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (T.skip)
		return 0;
	return hisptest_reset(P, "TRUNCATE hisp_outbound CASCADE", "DELETE FROM jobs", NULL);
}

static long long outbound_count(void)
{
	return pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL);
}

/* --- the line client ---------------------------------------------------------------------------------------- */

#define has(r, want) \
	do { \
		if (!strstr(r, want)) \
			fail_msg("line %d: reply '%s' lacks '%s'", __LINE__, r, want); \
	} while (0)

#define expect(c, want) cli_expect(c, want)
#define expect_eof cli_expect_eof
static void cli_tls(struct cli *c)
{
	SSL_CTX *ctx;
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, NULL, NULL, &ctx), HIE_OK);
	c->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	assert_non_null(c->ssl);
	SSL_set_fd(c->ssl, c->fd);
	assert_int_equal(hie_tls_set_peer_host(c->ssl, "localhost"), HIE_OK);
	assert_int_equal(SSL_connect(c->ssl), 1);
}

/* Connected, greeted, STARTTLS done and EHLO'd again (from src, NULL = 127.0.0.1); ehlo gets the reply. */
static struct cli tls_session(const char *src, char *ehlo, size_t n)
{
	struct cli c = cli_connect_from(PORT, src);
	expect(&c, "220 hisp.a.test ESMTP");
	cli_send(&c, "EHLO client.test\r\n");
	assert_int_equal(cli_reply(&c, ehlo, n), 250);
	cli_send(&c, "STARTTLS\r\n");
	expect(&c, "220 2.0.0");
	cli_tls(&c);
	cli_send(&c, "EHLO client.test\r\n");
	assert_int_equal(cli_reply(&c, ehlo, n), 250);
	return c;
}

static struct cli authed_session(void)
{
	char r[1024];
	struct cli c = tls_session(NULL, r, sizeof r);
	cli_send(&c, "AUTH PLAIN " PLAIN_OK "\r\n");
	expect(&c, "235 2.7.0");
	return c;
}

static void quit(struct cli *c)
{
	cli_send(c, "QUIT\r\n");
	expect(c, "221");
	cli_close(c);
}

/* --- sessions ------------------------------------------------------------------------------------------------ */

static void test_before_tls(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	char r[1024];
	struct cli c = cli_connect(PORT);
	expect(&c, "220 hisp.a.test ESMTP");
	cli_send(&c, "EHLO client.test\r\n");
	assert_int_equal(cli_reply(&c, r, sizeof r), 250);
	has(r, "250 STARTTLS");
	assert_null(strstr(r, "AUTH"));
	cli_send(&c, "AUTH PLAIN " PLAIN_OK "\r\n");
	expect(&c, "538 5.7.11 Encryption required for requested authentication mechanism");
	cli_send(&c, "AUTH LOGIN\r\n");
	expect(&c, "538 5.7.11");
	cli_send(&c, "MAIL FROM:<alice@a.test>\r\n");
	expect(&c, "530 5.7.0 Authentication required");
	cli_send(&c, "RCPT TO:<bob@b.test>\r\n");
	expect(&c, "530 5.7.0");
	/* The fifth bad command before AUTH closes the session. */
	cli_send(&c, "DATA\r\n");
	expect(&c, "503 5.5.1");
	expect(&c, "421 4.7.0");
	expect_eof(&c);
	cli_close(&c);
	assert_int_equal(outbound_count(), 0);
}

static void test_auth_exchange(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	char r[1024];
	struct cli c = tls_session(NULL, r, sizeof r);
	has(r, "250-AUTH PLAIN LOGIN");
	assert_null(strstr(r, "STARTTLS"));
	cli_send(&c, "MAIL FROM:<alice@a.test>\r\n");
	expect(&c, "530 5.7.0 Authentication required");
	cli_send(&c, "AUTH CRAM-MD5\r\n");
	expect(&c, "504 5.5.4");
	cli_send(&c, "AUTH LOGIN\r\n");
	expect(&c, "334 VXNlcm5hbWU6");
	cli_send(&c, B64_USER "\r\n");
	expect(&c, "334 UGFzc3dvcmQ6");
	cli_send(&c, "*\r\n");
	expect(&c, "501 5.7.0");
	/* That was the second failure of this session: a new one for the rest. */
	cli_close(&c);

	c = tls_session(NULL, r, sizeof r);
	cli_send(&c, "AUTH PLAIN " PLAIN_BAD "\r\n");
	expect(&c, "535 5.7.8 Authentication credentials invalid");
	cli_send(&c, "AUTH PLAIN AGFsaWNl!!!\r\n");
	expect(&c, "501 5.5.2");
	cli_send(&c, "AUTH PLAIN\r\n");
	expect(&c, "334 ");
	cli_send(&c, PLAIN_OK "\r\n");
	expect(&c, "235 2.7.0 Authentication successful");
	cli_send(&c, "AUTH PLAIN " PLAIN_OK "\r\n");
	expect(&c, "503 5.5.1");
	cli_send(&c, "MAIL FROM:<bob@a.test>\r\n");
	expect(&c, "550 5.7.1");
	cli_send(&c, "MAIL FROM:<>\r\n");
	expect(&c, "550 5.7.1");
	cli_send(&c, "MAIL FROM:<clinic@a.test> FOO=bar\r\n");
	expect(&c, "555 5.5.4");
	/* AUTH= is accepted (RFC 4954 §5) and ignored. */
	cli_send(&c, "MAIL FROM:<Clinic@A.test> AUTH=<> SIZE=100\r\nRCPT TO:<anyone@far.example>\r\nRSET\r\n");
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5"); /* any valid address: the core finds its HISP */
	expect(&c, "250 2.0.0");
	quit(&c);

	/* AUTH LOGIN with the user name as initial response. */
	c = tls_session(NULL, r, sizeof r);
	cli_send(&c, "AUTH LOGIN " B64_USER "\r\n");
	expect(&c, "334 UGFzc3dvcmQ6");
	cli_send(&c, B64_PASS "\r\n");
	expect(&c, "235 2.7.0");
	quit(&c);
}

static void test_lockout(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	char r[1024];
	struct cli c = tls_session(NULL, r, sizeof r);
	cli_send(&c, "AUTH PLAIN " PLAIN_BAD "\r\n");
	expect(&c, "535 5.7.8");
	cli_send(&c, "AUTH LOGIN\r\n");
	expect(&c, "334 VXNlcm5hbWU6");
	cli_send(&c, B64_USER "\r\n");
	expect(&c, "334 UGFzc3dvcmQ6");
	cli_send(&c, "d3JvbmcgcGFzc3dvcmQ=\r\n");
	expect(&c, "535 5.7.8");
	cli_send(&c, "AUTH PLAIN " PLAIN_BAD "\r\n");
	expect(&c, "535 5.7.8");
	expect(&c, "421 4.7.0"); /* third failure of the session */
	expect_eof(&c);
	cli_close(&c);
	/* 127.0.0.1 is now locked out (auth_max_failures 3): even the right password gets 454. */
	c = tls_session(NULL, r, sizeof r);
	cli_send(&c, "AUTH PLAIN " PLAIN_OK "\r\n");
	expect(&c, "454 4.7.0 Temporary authentication failure");
	cli_send(&c, "MAIL FROM:<alice@a.test>\r\n");
	expect(&c, "530 5.7.0");
	quit(&c);
	/* Another client address is not. */
	c = tls_session("127.0.0.2", r, sizeof r);
	cli_send(&c, "AUTH PLAIN " PLAIN_OK "\r\n");
	expect(&c, "235 2.7.0");
	quit(&c);
	hisp_auth_limit_reset();
}

/* Sends one message in an authenticated session; returns the final reply's code, text into r. */
static int send_msg(const char *from, const char *const *rcpts, size_t n, const char *msg, char *r, size_t rlen)
{
	struct cli c = authed_session();
	char line[300];
	snprintf(line, sizeof line, "MAIL FROM:<%s>\r\n", from);
	cli_send(&c, line);
	expect(&c, "250 2.1.0");
	for (size_t i = 0; i < n; i++) {
		snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", rcpts[i]);
		cli_send(&c, line);
		expect(&c, "250 2.1.5");
	}
	cli_send(&c, "DATA\r\n");
	expect(&c, "354 ");
	cli_send(&c, msg);
	cli_send(&c, ".\r\n");
	int code = cli_reply(&c, r, rlen);
	quit(&c);
	return code;
}

static void test_refusals(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	char r[1024];
	const char *bob[] = {"bob@b.test"}, *two[] = {"bob@b.test", "secret@c.test"};
	assert_int_equal(send_msg("clinic@a.test", bob, 1,
				  "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: x\r\n\r\nbody\r\n", r, sizeof r),
			 550);
	has(r, "550 5.7.1 From header must be the MAIL FROM address");
	assert_int_equal(send_msg("clinic@a.test", two, 2,
				  "From: clinic@a.test\r\nTo: bob@b.test\r\nBcc: secret@c.test\r\n\r\nbody\r\n", r,
				  sizeof r),
			 550);
	has(r, "550 5.7.1 every recipient must be in To or Cc");
	assert_int_equal(send_msg("clinic@a.test", bob, 1, "To: bob@b.test\r\n\r\nbody\r\n", r, sizeof r), 550);
	has(r, "From header missing");
	assert_int_equal(outbound_count(), 0);
	/* Cc counts; display names and case do not matter. */
	assert_int_equal(send_msg("clinic@a.test", two, 2,
				  "From: \"The Clinic\" <Clinic@a.test>\r\nTo: Bob <bob@b.test>\r\n"
				  "Cc: secret@C.test\r\nSubject: x\r\n\r\nbody\r\n",
				  r, sizeof r),
			 250);
	assert_int_equal(outbound_count(), 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound_rcpt", NULL), 2);
}

static int swaks(const char *extra)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "swaks --server 127.0.0.1:%d --helo client.test --timeout 20 --auth-user alice@a.test %s"
		 " >/dev/null 2>&1",
		 PORT, extra);
	return system(cmd);
}

static void test_swaks(void **state)
{
	(void)state;
	if (T.skip || system("command -v swaks >/dev/null 2>&1") != 0)
		skip();
	/* No Date, no Message-ID, no notification options, a Bcc header for nobody of the envelope. */
	assert_int_equal(swaks("--tls --auth PLAIN --auth-password '" PW "' --from clinic@a.test --to bob@b.test"
			       " --data 'From: clinic@a.test\\nTo: bob@b.test\\nBcc: hidden@c.test\\n"
			       "Subject: referral\\n\\nPlease see the patient.\\n'"),
			 0);
	assert_int_equal(outbound_count(), 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE kind = 'message' AND"
					  " sender = $1 AND want_final AND deadline IS NOT NULL", "clinic@a.test"),
			 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound_rcpt WHERE address = $1", "bob@b.test"),
			 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound_rcpt", NULL), 1);
	static const char dno[] =
		"\r\nDisposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n";
	const char *has[] = {"\r\nMessage-ID: <", "\r\nDate: ", dno, "\r\n\r\nPlease see the patient."};
	for (size_t i = 0; i < sizeof has / sizeof has[0]; i++)
		assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE"
						  " position(convert_to($1, 'UTF8') in raw) > 0", has[i]),
				 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE"
					  " position(convert_to('hidden', 'UTF8') in raw) > 0 OR"
					  " position(convert_to('Bcc', 'UTF8') in raw) > 0", NULL),
			 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs j JOIN hisp_outbound o ON"
					  " j.payload = o.id::text WHERE j.kind = 'hisp.send'", NULL),
			 1);

	/* AUTH LOGIN, swaks's own message (its Message-Id kept), two recipients. */
	assert_int_equal(swaks("--tls --auth LOGIN --auth-password '" PW "' --from clinic@a.test"
			       " --to bob@b.test,carol@b.test --header 'Subject: second'"),
			 0);
	assert_int_equal(outbound_count(), 2);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound o JOIN hisp_outbound_rcpt r ON"
					  " r.outbound_id = o.id WHERE o.message_id LIKE '%@%' AND"
					  " position(convert_to('X-Mailer: swaks', 'UTF8') in o.raw) > 0", NULL),
			 2);
	/* Refused: wrong password, no TLS (no AUTH offered), a sender not granted. */
	assert_int_not_equal(swaks("--tls --auth PLAIN --auth-password 'not the password' --from clinic@a.test"
				   " --to bob@b.test"),
			     0);
	hisp_auth_limit_reset();
	assert_int_not_equal(swaks("--auth PLAIN --auth-password '" PW "' --from clinic@a.test --to bob@b.test"), 0);
	assert_int_not_equal(swaks("--tls --auth PLAIN --auth-password '" PW "' --from other@a.test --to bob@b.test"),
			     0);
	assert_int_equal(outbound_count(), 2);
	assert_int_equal(atomic_load(&leaked), 0);
}

/* --- hisp_submit_store directly ------------------------------------------------------------------------------- */

static void test_store_table(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	const char *bob[] = {"bob@b.test"};
	const struct {
		const char *user, *from, *msg;
		hie_err_t err;
		const char *reason;
	} cases[] = {
		{"alice@a.test", "bob@a.test", "From: bob@a.test\r\nTo: bob@b.test\r\n\r\nx\r\n", HIE_EDENIED,
		 "not granted"},
		{"", "clinic@a.test", "From: clinic@a.test\r\nTo: bob@b.test\r\n\r\nx\r\n", HIE_EDENIED,
		 "authentication"},
		{"alice@a.test", "clinic@a.test",
		 "From: clinic@a.test\r\nFrom: clinic@a.test\r\nTo: bob@b.test\r\n\r\nx\r\n", HIE_EDENIED,
		 "more than one From"},
		{"alice@a.test", "clinic@a.test", "From: clinic@a.test, alice@a.test\r\nTo: bob@b.test\r\n\r\nx\r\n",
		 HIE_EDENIED, "From header must be"},
		{"alice@a.test", "clinic@a.test", "From: clinic@a.test\r\nTo: carol@b.test\r\n\r\nx\r\n", HIE_EDENIED,
		 "To or Cc"},
		{"alice@a.test", "clinic@a.test", "From: clinic@a.test\r\nTo: bob@b.test\r\nMessage-ID: nobrackets\r\n\r\nx\r\n",
		 HIE_EDENIED, "Message-ID"},
		{"alice@a.test", "clinic@a.test", "From: clinic@a.test\r\nTo: bob@b.test\r\nnot a header\r\n\r\nx\r\n",
		 HIE_EDENIED, "header malformed"},
		{"alice@a.test", "clinic@a.test",
		 "From: clinic@a.test\r\nTo: bob@b.test\r\nMessage-ID: <fixed@client.test>\r\n"
		 "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,false\r\n\r\nx\r\n",
		 HIE_OK, ""},
		/* The same Message-ID again from the same sender: the first one (a resend after a lost reply). */
		{"alice@a.test", "clinic@a.test",
		 "From: clinic@a.test\r\nTo: bob@b.test\r\nMessage-ID: <fixed@client.test>\r\n\r\nx\r\n", HIE_OK, ""},
		/* From another sender: refused, it would be dropped as a duplicate. */
		{"alice@a.test", "alice@a.test",
		 "From: alice@a.test\r\nTo: bob@b.test\r\nMessage-ID: <fixed@client.test>\r\n\r\nx\r\n", HIE_EDENIED,
		 "Message-ID already used"},
		/* Only headers, no body. */
		{"alice@a.test", "clinic@a.test", "From: clinic@a.test\r\nTo: bob@b.test", HIE_OK, ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char id[64], reason[200];
		hie_err_t err = hisp_submit_store(H, cases[i].user, cases[i].from, bob, 1, cases[i].msg,
						  strlen(cases[i].msg), id, sizeof id, reason, sizeof reason);
		if (err != cases[i].err || !strstr(reason, cases[i].reason))
			fail_msg("case %zu: got %s reason '%s'", i, hie_errname(err), reason);
		if (!err)
			assert_true(strncmp(id, "out-", 4) == 0);
	}
	assert_int_equal(outbound_count(), 2);
	/* want_final as the message asked (false), Message-ID as given, no options header added. */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE message_id = 'fixed@client.test'"
					  " AND NOT want_final AND position(convert_to('=optional,true', 'UTF8') in raw) = 0",
					  NULL),
			 1);
	/* The headers-only message got its separator line and the added fields. */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE message_id <> 'fixed@client.test'"
					  " AND position(convert_to(E'To: bob@b.test\\r\\nDate: ', 'UTF8') in raw) > 0"
					  " AND position(convert_to(E'=optional,true\\r\\n\\r\\n', 'UTF8') in raw) > 0",
					  NULL),
			 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_before_tls, setup),
		cmocka_unit_test_setup(test_auth_exchange, setup),
		cmocka_unit_test_setup(test_lockout, setup),
		cmocka_unit_test_setup(test_refusals, setup),
		cmocka_unit_test_setup(test_swaks, setup),
		cmocka_unit_test_setup(test_store_table, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
