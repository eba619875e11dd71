/*
 * hisp_smtp_in_test.c — the SMTP receiver on 127.0.0.1 with real sockets and fake ops (an in-memory store,
 * a recipient check knowing alice@a.test and bob@a.test; busy@a.test cannot be checked now): every reply
 * code, pipelining, STARTTLS with injected plaintext (CVE-2011-0411), SMTP smuggling with a bare LF, size
 * caps at MAIL and in DATA, recipient cap, error limit, store failure, server stop, command deadline,
 * refusal over max_conns; swaks for a plain, a pipelined and a STARTTLS session; table tests of the two
 * parsers. Logs are captured: no address may appear in them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/core_log.h"
#include "core/core_net.h"
#include "core/core_tls.h"
#include "hisp/hisp_smtp_in.h"
#include "tests/unit/core/certtest.h"
#include "tests/unit/core/linecli.h"

static struct certtest CT;

/* --- log capture: no address (local part of a test address) may be logged ------------------------ */

static atomic_int leaked;

static void sink(enum hie_log_level level, const char *line, size_t len)
{
	if (strstr(line, "alice") || strstr(line, "bob@") || strstr(line, "sender@") || strstr(line, "evil"))
		atomic_store(&leaked, 1);
	if (level >= HIE_LOG_WARN || getenv("SMTP_TEST_LOG"))
		fprintf(stderr, "%.*s", (int)len, line);
}

/* --- fake ops ------------------------------------------------------------------------------------- */

struct fake {
	pthread_mutex_t mu;
	int stored, rcpt_calls;
	bool fail_store;
	char from[256], helo[256];
	char rcpts[8][256];
	size_t nrcpts;
	bool tls;
	char *data;
	size_t len;
};

static struct fake F = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fake_reset(void)
{
	pthread_mutex_lock(&F.mu);
	free(F.data);
	F.data = NULL;
	F.len = 0;
	F.stored = F.rcpt_calls = 0;
	F.fail_store = false;
	F.from[0] = F.helo[0] = '\0';
	F.nrcpts = 0;
	F.tls = false;
	pthread_mutex_unlock(&F.mu);
}

static int fake_rcpt(void *arg, const char *address)
{
	(void)arg;
	pthread_mutex_lock(&F.mu);
	F.rcpt_calls++;
	pthread_mutex_unlock(&F.mu);
	if (strcmp(address, "alice@a.test") == 0 || strcmp(address, "bob@a.test") == 0)
		return 250;
	if (strcmp(address, "busy@a.test") == 0)
		return 451;
	return 550;
}

static hie_err_t fake_store(void *arg, const struct hisp_envelope *env, const char *data, size_t len, char *id,
			    size_t idlen)
{
	(void)arg;
	hie_err_t err = HIE_OK;
	pthread_mutex_lock(&F.mu);
	if (F.fail_store) {
		err = HIE_EDB;
		goto out;
	}
	F.stored++;
	snprintf(F.from, sizeof F.from, "%s", env->mail_from);
	snprintf(F.helo, sizeof F.helo, "%s", env->helo);
	F.nrcpts = env->nrcpts;
	for (size_t i = 0; i < env->nrcpts && i < 8; i++)
		snprintf(F.rcpts[i], sizeof F.rcpts[i], "%s", env->rcpts[i]);
	F.tls = env->tls;
	free(F.data);
	F.data = malloc(len + 1);
	memcpy(F.data, data, len);
	F.data[len] = '\0';
	F.len = len;
	snprintf(id, idlen, "t-%d", F.stored);
out:
	pthread_mutex_unlock(&F.mu);
	return err;
}

static int fake_stored(void)
{
	pthread_mutex_lock(&F.mu);
	int n = F.stored;
	pthread_mutex_unlock(&F.mu);
	return n;
}

static const struct hisp_smtp_ops fake_ops = {.rcpt = fake_rcpt, .store = fake_store};

/* --- the server ----------------------------------------------------------------------------------- */

struct srv {
	struct hisp_smtp_in *s;
	SSL_CTX *tls;
	int port;
};

static const struct hisp_smtp_in_opts base_opts = {
	.hostname = "mx.test",
	.max_message = 4096,
	.max_rcpts = 2,
	.max_conns = 10,
	.cmd_ms = 10000,
	.data_ms = 10000,
};

static void srv_start(struct srv *v, const struct hisp_smtp_in_opts *o)
{
	struct hie_net_listener *l;
	assert_int_equal(hie_net_listen("127.0.0.1:0", &l), HIE_OK);
	v->port = hie_net_listener_port(l);
	assert_int_equal(hisp_smtp_in_start(l, o, &fake_ops, &v->s), HIE_OK);
}

static void srv_start_tls(struct srv *v)
{
	struct hisp_smtp_in_opts o = base_opts;
	assert_int_equal(hie_tls_server_ctx(CT.srv_pem, CT.srv_key, NULL, false, &v->tls), HIE_OK);
	o.tls = v->tls;
	srv_start(v, &o);
}

static void srv_stop(struct srv *v)
{
	hisp_smtp_in_stop(v->s, 2000);
	hie_tls_ctx_free(v->tls);
	v->s = NULL;
	v->tls = NULL;
}

/* --- the client ----------------------------------------------------------------------------------- */

#define expect(c, want) cli_expect(c, want)
#define expect_eof cli_expect_eof

/* MAIL, RCPT and DATA pipelined for one known recipient; the server is then reading the message. */
#define open_data(c) open_data_at(c, __LINE__)
static void open_data_at(struct cli *c, int line)
{
	cli_send(c, "MAIL FROM:<s@b.test>\r\nRCPT TO:<alice@a.test>\r\nDATA\r\n");
	cli_expect_at(c, "250 2.1.0", line);
	cli_expect_at(c, "250 2.1.5", line);
	cli_expect_at(c, "354 ", line);
}

static struct cli greeted(struct srv *v)
{
	struct cli c = cli_connect(v->port);
	expect(&c, "220 mx.test ESMTP hienode");
	char r[1024];
	cli_send(&c, "EHLO client.test\r\n");
	assert_int_equal(cli_reply(&c, r, sizeof r), 250);
	return c;
}

static const char *msg_body = "Subject: test\r\n\r\nhello\r\n..dot-stuffed\r\n";
static const char *msg_stored = "Subject: test\r\n\r\nhello\r\n.dot-stuffed\r\n";

static int setup(void **state)
{
	(void)state;
	fake_reset();
	return 0;
}

/* --- sessions ------------------------------------------------------------------------------------- */

static void test_ehlo_helo_quit(void **state)
{
	(void)state;
	struct srv v = {0};
	char r[1024];
	srv_start(&v, &base_opts);
	struct cli c = cli_connect(v.port);
	expect(&c, "220 mx.test ESMTP hienode");
	cli_send(&c, "EHLO client.test\r\n");
	assert_int_equal(cli_reply(&c, r, sizeof r), 250);
	assert_string_equal(r, "250-mx.test\n250-SIZE 4096\n250-PIPELINING\n250-8BITMIME\n250 ENHANCEDSTATUSCODES\n");
	cli_send(&c, "HELO client.test\r\n");
	expect(&c, "250 mx.test");
	cli_send(&c, "EHLO\r\n");
	expect(&c, "501 5.5.4");
	cli_send(&c, "VRFY alice\r\n");
	expect(&c, "252 2.5.2");
	cli_send(&c, "VRFY\r\n");
	expect(&c, "501 5.5.4");
	cli_send(&c, "NOOP whatever\r\n");
	expect(&c, "250 2.0.0");
	cli_send(&c, "RSET\r\n");
	expect(&c, "250 2.0.0");
	cli_send(&c, "RSET now\r\n");
	expect(&c, "501 5.5.4");
	cli_send(&c, "HELP\r\n");
	expect(&c, "214 2.0.0");
	cli_send(&c, "STARTTLS\r\n");
	expect(&c, "502 5.5.1"); /* no TLS context */
	cli_send(&c, "quit\r\n");
	expect(&c, "221 2.0.0");
	expect_eof(&c);
	cli_close(&c);
	srv_stop(&v);
}

static void test_happy_path(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = greeted(&v);
	cli_send(&c, "MAIL FROM:<Sender@B.Test> BODY=8BITMIME SIZE=100\r\n");
	expect(&c, "250 2.1.0");
	cli_send(&c, "RCPT TO:<Alice@A.test>\r\n");
	expect(&c, "250 2.1.5");
	cli_send(&c, "RCPT TO:<@relay.test,@r2.test:bob@a.test>\r\n"); /* source route ignored */
	expect(&c, "250 2.1.5");
	cli_send(&c, "DATA\r\n");
	expect(&c, "354 ");
	cli_send(&c, msg_body);
	cli_send(&c, ".\r\n");
	expect(&c, "250 2.0.0 Ok: queued as t-1");
	/* The transaction is over: DATA needs a new MAIL. */
	cli_send(&c, "DATA\r\n");
	expect(&c, "503 5.5.1");
	/* The null reverse path (notifications). */
	cli_send(&c, "MAIL FROM:<>\r\nRCPT TO:<bob@a.test>\r\nDATA\r\n");
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5");
	expect(&c, "354 ");
	cli_send(&c, "x\r\n.\r\n");
	expect(&c, "250 2.0.0 Ok: queued as t-2");
	cli_send(&c, "QUIT\r\n");
	expect(&c, "221");
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.stored, 2);
	assert_string_equal(F.from, "");
	assert_int_equal(F.nrcpts, 1);
	assert_string_equal(F.rcpts[0], "bob@a.test");
	assert_string_equal(F.helo, "client.test");
	assert_false(F.tls);
}

static void test_first_message_content(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = greeted(&v);
	cli_send(&c, "MAIL FROM:<Sender@B.Test>\r\nRCPT TO:<Alice@A.test>\r\nRCPT TO:<bob@a.test>\r\n"
		     "RCPT TO:<ALICE@a.test>\r\nDATA\r\n");
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5");
	expect(&c, "250 2.1.5");
	expect(&c, "250 2.1.5"); /* duplicate: accepted once, not counted against max_rcpts */
	expect(&c, "354 ");
	cli_send(&c, msg_body);
	cli_send(&c, ".\r\n");
	expect(&c, "250 2.0.0 Ok: queued as t-1");
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.stored, 1);
	assert_string_equal(F.from, "sender@b.test");
	assert_int_equal(F.nrcpts, 2);
	assert_string_equal(F.rcpts[0], "alice@a.test");
	assert_string_equal(F.rcpts[1], "bob@a.test");
	assert_int_equal(F.len, strlen(msg_stored));
	assert_memory_equal(F.data, msg_stored, F.len);
}

static void test_sequence_errors(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = cli_connect(v.port);
	expect(&c, "220 ");
	cli_send(&c, "MAIL FROM:<s@b.test>\r\n");
	expect(&c, "503 5.5.1"); /* no EHLO */
	cli_send(&c, "RCPT TO:<alice@a.test>\r\n");
	expect(&c, "503 5.5.1"); /* no MAIL */
	cli_send(&c, "DATA\r\n");
	expect(&c, "503 5.5.1");
	cli_send(&c, "HELO c.test\r\nMAIL FROM:<s@b.test>\r\nMAIL FROM:<s@b.test>\r\n");
	expect(&c, "250 mx.test");
	expect(&c, "250 2.1.0");
	expect(&c, "503 5.5.1"); /* nested */
	cli_send(&c, "DATA\r\n");
	expect(&c, "503 5.5.1"); /* no valid RCPT */
	cli_send(&c, "RCPT TO:<nobody@a.test>\r\n");
	expect(&c, "550 5.1.1");
	cli_send(&c, "RCPT TO:<busy@a.test>\r\n");
	expect(&c, "451 4.3.0");
	cli_send(&c, "DATA\r\n");
	expect(&c, "503 5.5.1"); /* still no valid RCPT */
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.stored, 0);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = greeted(&v);
	cli_send(&c, "MAIL FROM:<s@b.test> FOO=bar\r\n");
	expect(&c, "555 5.5.4");
	cli_send(&c, "MAIL FROM:s@b.test\r\n");
	expect(&c, "501 5.1.7");
	cli_send(&c, "MAIL TO:<s@b.test>\r\n");
	expect(&c, "501 5.5.4");
	cli_send(&c, "MAIL FROM:<s@b.test>\r\n");
	expect(&c, "250 2.1.0");
	cli_send(&c, "RCPT TO:<>\r\n");
	expect(&c, "501 5.1.3");
	cli_send(&c, "RCPT TO:<alice@a.test> NOTIFY=NEVER\r\n");
	expect(&c, "555 5.5.4");
	cli_send(&c, "XYZZY\r\n");
	expect(&c, "500 5.5.1");
	char longline[3000];
	memset(longline, 'A', sizeof longline);
	memcpy(longline, "NOOP ", 5);
	memcpy(longline + sizeof longline - 3, "\r\n", 3);
	cli_send(&c, longline);
	expect(&c, "500 5.5.2");
	/* Still in step after all that: the transaction survived. */
	cli_send(&c, "RCPT TO:<alice@a.test>\r\n");
	expect(&c, "250 2.1.5");
	cli_close(&c);
	srv_stop(&v);
}

static void test_pipelined(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = cli_connect(v.port);
	/* Everything up to DATA in one write, before the greeting was even read. */
	cli_send(&c, "EHLO c.test\r\nMAIL FROM:<s@b.test>\r\nRCPT TO:<alice@a.test>\r\nRCPT TO:<nobody@a.test>\r\n"
		     "RCPT TO:<busy@a.test>\r\nRCPT TO:<bob@a.test>\r\nDATA\r\n");
	char r[1024];
	expect(&c, "220 ");
	assert_int_equal(cli_reply(&c, r, sizeof r), 250);
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5");
	expect(&c, "550 5.1.1");
	expect(&c, "451 4.3.0");
	expect(&c, "250 2.1.5");
	expect(&c, "354 ");
	cli_send(&c, "body\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n");
	expect(&c, "250 2.0.0 Ok: queued as t-1");
	expect(&c, "250 2.0.0"); /* RSET */
	expect(&c, "250 2.0.0"); /* NOOP */
	expect(&c, "221 2.0.0");
	expect_eof(&c);
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.nrcpts, 2);
}

static void test_size_at_mail(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = greeted(&v);
	cli_send(&c, "MAIL FROM:<s@b.test> SIZE=4097\r\n");
	expect(&c, "552 5.3.4");
	cli_send(&c, "MAIL FROM:<s@b.test> SIZE=99999999999999999999999999\r\n");
	expect(&c, "552 5.3.4");
	cli_send(&c, "MAIL FROM:<s@b.test> SIZE=4096\r\nRCPT TO:<alice@a.test>\r\n");
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5");
	cli_close(&c);
	srv_stop(&v);
}

static void test_size_in_data(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = greeted(&v);
	open_data(&c);
	char line[80];
	memset(line, 'x', sizeof line);
	memcpy(line + sizeof line - 2, "\r\n", 2);
	for (int i = 0; i < 100; i++) /* 8000 bytes > 4096 */
		cli_write(&c, line, sizeof line);
	cli_send(&c, ".\r\n");
	expect(&c, "552 5.3.4");
	assert_int_equal(fake_stored(), 0);
	/* The connection is in step and the transaction was reset. */
	cli_send(&c, "RCPT TO:<alice@a.test>\r\n");
	expect(&c, "503 5.5.1");
	open_data(&c);
	cli_send(&c, "small\r\n.\r\n");
	expect(&c, "250 2.0.0 Ok: queued as t-1");
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.len, 7);
}

static void test_too_many_rcpts(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts); /* max_rcpts 2 */
	struct cli c = greeted(&v);
	cli_send(&c, "MAIL FROM:<s@b.test>\r\nRCPT TO:<alice@a.test>\r\nRCPT TO:<bob@a.test>\r\n"
		     "RCPT TO:<carol@a.test>\r\nRCPT TO:<alice@a.test>\r\nDATA\r\n");
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5");
	expect(&c, "250 2.1.5");
	expect(&c, "452 4.5.3");
	expect(&c, "250 2.1.5"); /* already a recipient */
	expect(&c, "354 ");
	cli_send(&c, "x\r\n.\r\n");
	expect(&c, "250 2.0.0");
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.nrcpts, 2);
	assert_int_equal(F.rcpt_calls, 2); /* carol was not even looked up */
}

static void test_smuggling(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = greeted(&v);
	open_data(&c);
	/* "\n.\r\n" must not end the message, so the smuggled MAIL is data; the message has a bare LF. */
	cli_send(&c, "Subject: a\r\n\r\nhello\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<bob@a.test>\r\nDATA\r\n"
		     "smuggled\r\n.\r\nNOOP\r\n");
	expect(&c, "550 5.6.0");
	expect(&c, "250 2.0.0"); /* the NOOP: nothing of the smuggled commands was answered */
	cli_send(&c, "RCPT TO:<alice@a.test>\r\n");
	expect(&c, "503 5.5.1"); /* transaction reset */
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.stored, 0);
	assert_int_equal(F.rcpt_calls, 1);
}

static void test_store_failure(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	F.fail_store = true;
	struct cli c = greeted(&v);
	open_data(&c);
	cli_send(&c, "x\r\n.\r\n");
	expect(&c, "451 4.3.0");
	cli_send(&c, "NOOP\r\n");
	expect(&c, "250 2.0.0");
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.stored, 0);
}

static void test_too_many_errors(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = cli_connect(v.port);
	expect(&c, "220 ");
	for (int i = 0; i < 9; i++) {
		cli_send(&c, i % 2 ? "XYZZY\r\n" : "RCPT TO:<alice@a.test>\r\n");
		expect(&c, i % 2 ? "500 5.5.1" : "503 5.5.1");
	}
	cli_send(&c, "NOOP\r\n"); /* good commands do not reset the count */
	expect(&c, "250 ");
	cli_send(&c, "BDAT 10 LAST\r\n");
	expect(&c, "500 5.5.1");
	expect(&c, "421 4.7.0");
	expect_eof(&c);
	cli_close(&c);
	srv_stop(&v);
}

static void test_stop_idle(void **state)
{
	(void)state;
	struct srv v = {0};
	srv_start(&v, &base_opts);
	struct cli c = greeted(&v);
	hisp_smtp_in_stop(v.s, 5000); /* waits for the session, which is idle: it answers and ends */
	expect(&c, "421 4.3.2");
	expect_eof(&c);
	cli_close(&c);
}

static void test_deadline(void **state)
{
	(void)state;
	struct srv v = {0};
	struct hisp_smtp_in_opts o = base_opts;
	o.cmd_ms = 300;
	srv_start(&v, &o);
	struct cli c = cli_connect(v.port);
	expect(&c, "220 ");
	/* Say nothing: the command deadline passes. */
	expect(&c, "421 4.4.2");
	expect_eof(&c);
	cli_close(&c);
	srv_stop(&v);
}

static void test_data_deadline(void **state)
{
	(void)state;
	struct srv v = {0};
	struct hisp_smtp_in_opts o = base_opts;
	o.data_ms = 300;
	srv_start(&v, &o);
	struct cli c = greeted(&v);
	open_data(&c);
	cli_send(&c, "started but never finished\r\n");
	expect(&c, "421 4.4.2");
	expect_eof(&c);
	cli_close(&c);
	srv_stop(&v);
	assert_int_equal(F.stored, 0);
}

static void test_refuse_over_max_conns(void **state)
{
	(void)state;
	struct srv v = {0};
	struct hisp_smtp_in_opts o = base_opts;
	o.max_conns = 1;
	srv_start(&v, &o);
	struct cli a = cli_connect(v.port);
	expect(&a, "220 ");
	struct cli b = cli_connect(v.port);
	expect(&b, "421 4.7.0");
	expect_eof(&b);
	cli_close(&b);
	cli_send(&a, "NOOP\r\n");
	expect(&a, "250 ");
	cli_close(&a);
	srv_stop(&v);
}

static void cli_tls(struct cli *c)
{
	SSL_CTX *ctx;
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, NULL, NULL, &ctx), HIE_OK);
	c->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL keeps its reference */
	assert_non_null(c->ssl);
	SSL_set_fd(c->ssl, c->fd);
	assert_int_equal(hie_tls_set_peer_host(c->ssl, "localhost"), HIE_OK);
	assert_int_equal(SSL_connect(c->ssl), 1);
}

static void test_starttls(void **state)
{
	(void)state;
	struct srv v = {0};
	char r[1024];
	srv_start_tls(&v);
	struct cli c = cli_connect(v.port);
	expect(&c, "220 ");
	cli_send(&c, "EHLO c.test\r\n");
	assert_int_equal(cli_reply(&c, r, sizeof r), 250);
	assert_non_null(strstr(r, "250-ENHANCEDSTATUSCODES\n250 STARTTLS\n"));
	cli_send(&c, "MAIL FROM:<s@b.test>\r\nSTARTTLS\r\n");
	expect(&c, "250 2.1.0");
	expect(&c, "503 5.5.1"); /* not inside a transaction */
	cli_send(&c, "RSET\r\n");
	expect(&c, "250 ");
	/* Plaintext injected after STARTTLS (CVE-2011-0411) must be thrown away, not run inside TLS. */
	cli_send(&c, "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
	expect(&c, "220 2.0.0");
	cli_tls(&c);
	cli_send(&c, "MAIL FROM:<s@b.test>\r\n");
	expect(&c, "503 5.5.1"); /* state reset: EHLO again first (and the injected MAIL never ran) */
	cli_send(&c, "EHLO c.test\r\n");
	assert_int_equal(cli_reply(&c, r, sizeof r), 250);
	assert_null(strstr(r, "STARTTLS"));
	cli_send(&c, "STARTTLS\r\n");
	expect(&c, "503 5.5.1");
	open_data(&c);
	cli_send(&c, "secret\r\n.\r\nQUIT\r\n");
	expect(&c, "250 2.0.0 Ok: queued as t-1");
	expect(&c, "221 ");
	cli_close(&c);
	srv_stop(&v);
	assert_true(F.tls);
	assert_string_equal(F.from, "s@b.test");
}

/* --- swaks ---------------------------------------------------------------------------------------- */

static int swaks(int port, const char *extra)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "swaks --server 127.0.0.1:%d --from sender@b.test --to alice@a.test,bob@a.test --helo swaks.test"
		 " --header 'Subject: swaks' --body 'hello from swaks' --timeout 10 %s >/dev/null 2>&1",
		 port, extra);
	return system(cmd);
}

static void swaks_check(int stored, bool tls)
{
	assert_int_equal(F.stored, stored);
	assert_int_equal(F.nrcpts, 2);
	assert_string_equal(F.helo, "swaks.test");
	assert_string_equal(F.from, "sender@b.test");
	assert_non_null(strstr(F.data, "hello from swaks"));
	assert_int_equal(F.tls, tls);
}

static void test_swaks(void **state)
{
	(void)state;
	if (system("command -v swaks >/dev/null 2>&1") != 0)
		skip();
	struct srv v = {0};
	srv_start_tls(&v);
	assert_int_equal(swaks(v.port, ""), 0);
	swaks_check(1, false);
	assert_int_equal(swaks(v.port, "--pipeline"), 0);
	swaks_check(2, false);
	assert_int_equal(swaks(v.port, "-tls"), 0);
	swaks_check(3, true);
	assert_int_equal(swaks(v.port, "-tls --pipeline"), 0);
	swaks_check(4, true);
	/* An unknown recipient: swaks fails (550), nothing stored. */
	char cmd[512];
	snprintf(cmd, sizeof cmd, "swaks --server 127.0.0.1:%d --from s@b.test --to nobody@a.test --timeout 10"
		 " >/dev/null 2>&1", v.port);
	assert_int_not_equal(system(cmd), 0);
	srv_stop(&v);
	assert_int_equal(F.stored, 4);
}

/* --- parsers -------------------------------------------------------------------------------------- */

static void test_parse_path(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		bool mail;
		hie_err_t err;
		const char *addr;
		long long size;
	} cases[] = {
		{.in = "<a@b.test>", .mail = true, .addr = "a@b.test", .size = -1},
		{.in = "<Alice.Smith@Example.ORG>", .addr = "alice.smith@example.org"},
		{.in = "<a@b.test> SIZE=1234", .mail = true, .addr = "a@b.test", .size = 1234},
		{.in = "<a@b.test> size=1 body=7bit", .mail = true, .addr = "a@b.test", .size = 1},
		{.in = "<a@b.test>  BODY=8BITMIME  ", .mail = true, .addr = "a@b.test", .size = -1},
		{.in = "<>", .mail = true, .addr = "", .size = -1},
		{.in = "<> SIZE=10", .mail = true, .addr = "", .size = 10},
		{.in = "<@x.test,@y.test:a@b.test>", .addr = "a@b.test"},
		{.in = "<o'brien+tag@b.test>", .addr = "o'brien+tag@b.test"},
		{.in = "<>", .err = HIE_EPARSE},                       /* RCPT */
		{.in = "<@x.test:>", .mail = true, .err = HIE_EPARSE}, /* route without mailbox */
		{.in = "a@b.test", .err = HIE_EPARSE},
		{.in = "<a@b.test", .err = HIE_EPARSE},
		{.in = "<a@b.test>x", .err = HIE_EPARSE},
		{.in = "<a b@b.test>", .err = HIE_EPARSE},
		{.in = "<\"a b\"@b.test>", .err = HIE_EPARSE},
		{.in = "<a@[127.0.0.1]>", .err = HIE_EPARSE},
		{.in = "<.a@b.test>", .err = HIE_EPARSE},
		{.in = "<a.@b.test>", .err = HIE_EPARSE},
		{.in = "<a..b@b.test>", .err = HIE_EPARSE},
		{.in = "<a@b..test>", .err = HIE_EPARSE},
		{.in = "<a@@b.test>", .err = HIE_EPARSE},
		{.in = "<ab.test>", .err = HIE_EPARSE},
		{.in = "<@x.test a@b.test>", .err = HIE_EPARSE},
		{.in = "<a@b.test> SIZE=", .mail = true, .err = HIE_EPARSE},
		{.in = "<a@b.test> SIZE=12a", .mail = true, .err = HIE_EPARSE},
		{.in = "<a@b.test> SIZE=1 SIZE=2", .mail = true, .err = HIE_EPARSE},
		{.in = "<a@b.test> =x", .mail = true, .err = HIE_EPARSE},
		{.in = "<a@b.test> SIZE", .mail = true, .err = HIE_EPARSE},
		{.in = "<a@b.test> BODY=BINARYMIME", .mail = true, .err = HIE_EUNSUPPORTED},
		{.in = "<a@b.test> SMTPUTF8", .mail = true, .err = HIE_EUNSUPPORTED},
		{.in = "<a@b.test> SIZE=10", .err = HIE_EUNSUPPORTED}, /* RCPT has no SIZE */
		{.in = "<a@b.test> NOTIFY=NEVER", .err = HIE_EUNSUPPORTED},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char addr[HISP_SMTP_ADDR_MAX + 1];
		long long size = 77;
		hie_err_t err = hisp_smtp_parse_path(cases[i].in, strlen(cases[i].in), addr, sizeof addr,
						     cases[i].mail ? &size : NULL);
		if (err != cases[i].err)
			fail_msg("case %zu '%s': err %d, want %d", i, cases[i].in, err, cases[i].err);
		if (!err) {
			assert_string_equal(addr, cases[i].addr);
			if (cases[i].mail)
				assert_int_equal(size, cases[i].size);
		} else {
			assert_string_equal(addr, "");
		}
	}
	/* Length: 254 is the cap; a NUL inside the argument is refused; a short output is EINVAL. */
	char big[300], addr[HISP_SMTP_ADDR_MAX + 1];
	memset(big, 'a', sizeof big);
	big[0] = '<';
	memcpy(big + 64, "@", 1);
	for (size_t i = 100; i < 250; i += 50)
		big[i] = '.';
	memcpy(big + 256 - 6, ".test>", 6); /* "<" + 254 bytes + ">" */
	assert_int_equal(hisp_smtp_parse_path(big, 256, addr, sizeof addr, NULL), HIE_OK);
	assert_int_equal(strlen(addr), 254);
	big[256 - 6] = 'a';
	memcpy(big + 257 - 6, ".test>", 6); /* 255 */
	assert_int_equal(hisp_smtp_parse_path(big, 257, addr, sizeof addr, NULL), HIE_EPARSE);
	assert_int_equal(hisp_smtp_parse_path("<a\0b@c.test>", 12, addr, sizeof addr, NULL), HIE_EPARSE);
	assert_int_equal(hisp_smtp_parse_path("<ab@c.test>", 11, addr, 5, NULL), HIE_EINVAL);
}

static void test_cmd_parse(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		enum hisp_smtp_verb verb;
		hie_err_t err;
		const char *arg;
	} cases[] = {
		{.in = "EHLO client.test", .verb = HISP_SMTP_EHLO, .arg = "client.test"},
		{.in = "ehlo   client.test  ", .verb = HISP_SMTP_EHLO, .arg = "client.test"},
		{.in = "HELO x", .verb = HISP_SMTP_HELO, .arg = "x"},
		{.in = "EHLO", .verb = HISP_SMTP_EHLO, .err = HIE_EPARSE, .arg = ""},
		{.in = "MAIL FROM:<a@b>", .verb = HISP_SMTP_MAIL, .arg = "<a@b>"},
		{.in = "mail from: <a@b> SIZE=1", .verb = HISP_SMTP_MAIL, .arg = "<a@b> SIZE=1"},
		{.in = "MAIL FROM:", .verb = HISP_SMTP_MAIL, .err = HIE_EPARSE, .arg = ""},
		{.in = "MAIL", .verb = HISP_SMTP_MAIL, .err = HIE_EPARSE},
		{.in = "MAIL TO:<a@b>", .verb = HISP_SMTP_MAIL, .err = HIE_EPARSE},
		{.in = "RCPT TO:<a@b>", .verb = HISP_SMTP_RCPT, .arg = "<a@b>"},
		{.in = "RCPT FROM:<a@b>", .verb = HISP_SMTP_RCPT, .err = HIE_EPARSE},
		{.in = "DATA", .verb = HISP_SMTP_DATA, .arg = ""},
		{.in = "DATA ", .verb = HISP_SMTP_DATA, .arg = ""},
		{.in = "DATA x", .verb = HISP_SMTP_DATA, .err = HIE_EPARSE},
		{.in = "DATAX", .verb = HISP_SMTP_UNKNOWN},
		{.in = "RSET", .verb = HISP_SMTP_RSET, .arg = ""},
		{.in = "NOOP anything", .verb = HISP_SMTP_NOOP, .arg = "anything"},
		{.in = "QUIT", .verb = HISP_SMTP_QUIT, .arg = ""},
		{.in = "VRFY bob", .verb = HISP_SMTP_VRFY, .arg = "bob"},
		{.in = "HELP", .verb = HISP_SMTP_HELP, .arg = ""},
		{.in = "StartTLS", .verb = HISP_SMTP_STARTTLS, .arg = ""},
		{.in = "STARTTLS now", .verb = HISP_SMTP_STARTTLS, .err = HIE_EPARSE},
		{.in = "", .verb = HISP_SMTP_UNKNOWN},
		{.in = " EHLO x", .verb = HISP_SMTP_UNKNOWN},
		{.in = "BDAT 1 LAST", .verb = HISP_SMTP_UNKNOWN},
		{.in = "EHLO x\ty", .verb = HISP_SMTP_EHLO, .err = HIE_EPARSE},
		{.in = "EHLO h\xc3\xa9", .verb = HISP_SMTP_EHLO, .err = HIE_EPARSE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_smtp_cmd cmd;
		hie_err_t err = hisp_smtp_cmd_parse(cases[i].in, strlen(cases[i].in), &cmd);
		if (err != cases[i].err || cmd.verb != cases[i].verb)
			fail_msg("case %zu '%s': err %d verb %d", i, cases[i].in, err, cmd.verb);
		if (!err && cases[i].arg) {
			assert_int_equal(cmd.arglen, strlen(cases[i].arg));
			assert_memory_equal(cmd.arg, cases[i].arg, cmd.arglen);
		}
	}
	struct hisp_smtp_cmd cmd;
	assert_int_equal(hisp_smtp_cmd_parse("NOOP \0x", 7, &cmd), HIE_EPARSE);
	assert_int_equal(cmd.verb, HISP_SMTP_NOOP);
	assert_int_equal(hisp_smtp_cmd_parse("QUIT\0", 5, &cmd), HIE_OK); /* not the verb QUIT */
	assert_int_equal(cmd.verb, HISP_SMTP_UNKNOWN);
}

/* --- main ------------------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
	(void)state;
	hie_log_set_sink(sink);
	return certtest_make(&CT, "hisp_smtp_test_");
}

static int group_teardown(void **state)
{
	(void)state;
	fake_reset();
	hie_log_set_sink(NULL);
	if (atomic_load(&leaked)) {
		fprintf(stderr, "an address appeared in a log line\n");
		return -1;
	}
	return certtest_remove(&CT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_path),
		cmocka_unit_test(test_cmd_parse),
		cmocka_unit_test_setup(test_ehlo_helo_quit, setup),
		cmocka_unit_test_setup(test_happy_path, setup),
		cmocka_unit_test_setup(test_first_message_content, setup),
		cmocka_unit_test_setup(test_sequence_errors, setup),
		cmocka_unit_test_setup(test_syntax_errors, setup),
		cmocka_unit_test_setup(test_pipelined, setup),
		cmocka_unit_test_setup(test_size_at_mail, setup),
		cmocka_unit_test_setup(test_size_in_data, setup),
		cmocka_unit_test_setup(test_too_many_rcpts, setup),
		cmocka_unit_test_setup(test_smuggling, setup),
		cmocka_unit_test_setup(test_store_failure, setup),
		cmocka_unit_test_setup(test_too_many_errors, setup),
		cmocka_unit_test_setup(test_stop_idle, setup),
		cmocka_unit_test_setup(test_deadline, setup),
		cmocka_unit_test_setup(test_data_deadline, setup),
		cmocka_unit_test_setup(test_refuse_over_max_conns, setup),
		cmocka_unit_test_setup(test_starttls, setup),
		cmocka_unit_test_setup(test_swaks, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
