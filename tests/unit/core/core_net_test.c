/*
 * core_net_test.c — the TCP listener on 127.0.0.1 with real sockets: an echo-style line protocol
 * (SMTP-shaped replies), line caps and resynchronisation, pipelining, phase deadlines against a trickling
 * and a silent client, connection and per-IP limits, STARTTLS (with the CVE-2011-0411 injection), implicit
 * TLS, required client certificates, MLLP framing with read_until, SMTP DATA with read_dotted (smuggling),
 * graceful stop, and the outbound hie_net_connect with hostname verification.
 *
 * Certificates (a CA, a server cert for localhost/127.0.0.1, a client cert) are made with the openssl
 * command in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/core_buf.h"
#include "certtest.h"
#include "linecli.h"
#include "core/core_log.h"
#include "core/core_net.h"
#include "core/core_tls.h"

/* --- certificates ------------------------------------------------------------------------------- */

static struct certtest CT;

static int make_certs(void)
{
	if (certtest_make(&CT, "hie_net_test_") != 0)
		return -1;
	return 0;
}

/* --- log capture -------------------------------------------------------------------------------- */

static atomic_int saw_discard_log;

static void sink(enum hie_log_level level, const char *line, size_t len)
{
	if (strstr(line, "event=net.starttls_discard"))
		atomic_store(&saw_discard_log, 1);
	if (level >= HIE_LOG_WARN)
		fprintf(stderr, "%.*s", (int)len, line);
}

/* --- the test server ---------------------------------------------------------------------------- */

struct ts {
	struct hie_net_server *srv;
	int port;
	size_t line_max;
	SSL_CTX *starttls;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ended;               /* handlers that returned */
	hie_err_t last_err;      /* the error that ended the last handler */
	size_t pending_at_starttls;
	uint64_t data_reads;     /* read calls spent in the last DATA */
	char body[512];          /* the last small DATA body */
	size_t body_len;
};

static void ts_end(struct ts *ts, hie_err_t err)
{
	pthread_mutex_lock(&ts->mu);
	ts->last_err = err;
	ts->ended++;
	pthread_cond_broadcast(&ts->cv);
	pthread_mutex_unlock(&ts->mu);
}

static void do_data(struct ts *ts, struct hie_net_conn *c)
{
	struct hie_buf body;
	struct hie_net_stats a, b;

	hie_buf_init(&body, 1 << 20);
	hie_net_printf(c, "354 go\r\n");
	hie_net_set_deadline(c, 10000);
	hie_net_get_stats(c, &a);
	hie_err_t err = hie_net_read_dotted(c, &body, 200000);
	hie_net_get_stats(c, &b);
	pthread_mutex_lock(&ts->mu);
	ts->data_reads = b.reads - a.reads;
	ts->body_len = body.len < sizeof ts->body ? body.len : sizeof ts->body;
	if (body.len)
		memcpy(ts->body, body.data, ts->body_len);
	pthread_mutex_unlock(&ts->mu);
	if (err == HIE_OK)
		hie_net_printf(c, "250 len=%zu\r\n", body.len);
	else if (err == HIE_ETOOBIG)
		hie_net_printf(c, "552 too big\r\n");
	else if (err == HIE_EPROTO)
		hie_net_printf(c, "550 bare lf\r\n");
	hie_buf_free(&body);
}

static void echo_handler(struct hie_net_conn *c, void *arg)
{
	struct ts *ts = arg;
	struct hie_buf line, frame;
	hie_err_t err;
	char subj[256];

	hie_buf_init(&line, ts->line_max + 1);
	hie_buf_init(&frame, 4096);
	err = hie_net_printf(c, "220 hello\r\n");
	while (!err) {
		err = hie_net_readline(c, &line, ts->line_max);
		if (err == HIE_ETOOBIG) {
			err = hie_net_printf(c, "500 line too long\r\n");
			continue;
		}
		if (err == HIE_ETIMEOUT || err == HIE_EBUSY) {
			ts_end(ts, err); /* recorded before the reply, so the client sees it after */
			hie_net_set_deadline(c, 1000);
			hie_net_printf(c, "421 %s\r\n", err == HIE_EBUSY ? "stopping" : "timeout");
			goto done;
		}
		if (err)
			break;
		const char *s = hie_buf_str(&line);
		if (strcmp(s, "QUIT") == 0) {
			hie_net_printf(c, "221 bye\r\n");
			break;
		} else if (strcmp(s, "STARTTLS") == 0) {
			pthread_mutex_lock(&ts->mu);
			ts->pending_at_starttls = hie_net_pending(c);
			pthread_mutex_unlock(&ts->mu);
			err = hie_net_printf(c, "220 ready\r\n");
			if (!err)
				err = hie_net_starttls(c, ts->starttls);
		} else if (strcmp(s, "TLS") == 0) {
			hie_tls_cert_subject(hie_net_peer_cert(c), subj, sizeof subj);
			err = hie_net_printf(c, "250 tls=%d version=%s subject=%s\r\n", hie_net_is_tls(c),
					     hie_net_tls_version(c), subj);
		} else if (strcmp(s, "SLOW") == 0) {
			hie_net_set_deadline(c, 2000);
			err = hie_net_printf(c, "250 slow\r\n");
		} else if (strcmp(s, "MLLP") == 0) {
			err = hie_net_printf(c, "250 send frame\r\n");
			hie_buf_reset(&frame);
			if (!err)
				err = hie_net_read_until(c, "\x1c\r", 2, &frame, 1000);
			if (err == HIE_OK)
				err = hie_net_printf(c, "250 frame len=%zu first=%02x\r\n", frame.len,
						     (unsigned char)frame.data[0]);
			else if (err == HIE_ETOOBIG)
				err = hie_net_printf(c, "500 frame too big\r\n");
		} else if (strcmp(s, "DATA") == 0) {
			do_data(ts, c);
		} else {
			err = hie_net_printf(c, "250 %s\r\n", s);
		}
	}
	ts_end(ts, err);
done:
	hie_buf_free(&line);
	hie_buf_free(&frame);
}

static void refuse_cb(struct hie_net_conn *c, enum hie_net_refusal why, void *arg)
{
	hie_net_printf(c, "421 %s\r\n", why == HIE_NET_REFUSE_PER_IP ? "too many from your address"
								   : "too many connections");
}

static void ts_start(struct ts *ts, const struct hie_net_opts *o)
{
	struct hie_net_listener *l;
	struct hie_net_opts opts = *o;

	if (!ts->line_max)
		ts->line_max = 64;
	pthread_mutex_init(&ts->mu, NULL);
	pthread_cond_init(&ts->cv, NULL);
	if (!opts.on_refuse)
		opts.on_refuse = refuse_cb;
	assert_int_equal(hie_net_listen("127.0.0.1:0", &l), HIE_OK);
	ts->port = hie_net_listener_port(l);
	assert_true(ts->port > 0);
	assert_int_equal(hie_net_serve(l, &opts, echo_handler, ts, &ts->srv), HIE_OK);
}

static void ts_stop(struct ts *ts)
{
	hie_net_stop(ts->srv, 2000);
	ts->srv = NULL;
	hie_tls_ctx_free(ts->starttls);
	pthread_mutex_destroy(&ts->mu);
	pthread_cond_destroy(&ts->cv);
}

/* Waits (bounded, 10 s) until n handlers have ended; returns the last error. */
static hie_err_t ts_wait_ended(struct ts *ts, int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&ts->mu);
	while (ts->ended < n)
		if (pthread_cond_timedwait(&ts->cv, &ts->mu, &until) != 0)
			break;
	hie_err_t err = ts->ended >= n ? ts->last_err : HIE_ERR__COUNT;
	pthread_mutex_unlock(&ts->mu);
	return err;
}

/* --- the test client ---------------------------------------------------------------------------- */

static void expect_line(struct cli *c, const char *want)
{
	char buf[512];
	assert_true(cli_line(c, buf, sizeof buf) >= 0);
	assert_string_equal(buf, want);
}

static void expect_prefix(struct cli *c, const char *want)
{
	char buf[512];
	assert_true(cli_line(c, buf, sizeof buf) >= 0);
	if (strncmp(buf, want, strlen(want)) != 0)
		fail_msg("got '%s', want prefix '%s'", buf, want);
}

static SSL_CTX *client_ctx(bool with_cert)
{
	SSL_CTX *ctx;
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, with_cert ? CT.cli_pem : NULL, with_cert ? CT.cli_key : NULL, &ctx),
			 HIE_OK);
	return ctx;
}

/* Client handshake on c; returns 1 on success. The SSL takes the name "localhost" to verify. */
static int cli_tls(struct cli *c, SSL_CTX *ctx)
{
	c->ssl = SSL_new(ctx);
	assert_non_null(c->ssl);
	SSL_set_fd(c->ssl, c->fd);
	assert_int_equal(hie_tls_set_peer_host(c->ssl, "localhost"), HIE_OK);
	int ok = SSL_connect(c->ssl) == 1;
	ERR_clear_error();
	return ok;
}

static const struct hie_net_opts default_opts = { .name = "test", .first_deadline_ms = 10000 };

/* --- tests -------------------------------------------------------------------------------------- */

static void test_pipelined(void **state)
{
	struct ts ts = { 0 };
	ts_start(&ts, &default_opts);
	struct cli c = cli_connect(ts.port);
	/* Pipelined before the greeting is read, bare LF and CRLF mixed, all in one packet. */
	cli_send(&c, "A\r\nB\nC\r\n\r\nQUIT\r\n");
	expect_line(&c, "220 hello");
	expect_line(&c, "250 A");
	expect_line(&c, "250 B");
	expect_line(&c, "250 C");
	expect_line(&c, "250 ");
	expect_line(&c, "221 bye");
	cli_expect_eof(&c);
	cli_close(&c);
	ts_stop(&ts);
}

static void test_line_cap(void **state)
{
	static const struct {
		size_t len;   /* line bytes before the terminator */
		const char *term;
		bool ok;
	} cases[] = {
		{ .len = 64, .term = "\r\n", .ok = true },
		{ .len = 64, .term = "\n", .ok = true },
		{ .len = 65, .term = "\r\n", .ok = false },
		{ .len = 65, .term = "\n", .ok = false },
		{ .len = 0, .term = "\r\n", .ok = true },
		{ .len = 40000, .term = "\r\n", .ok = false }, /* over the read block: discarded across reads */
		{ .len = 200000, .term = "\n", .ok = false },
	};
	struct ts ts = { .line_max = 64 };
	ts_start(&ts, &default_opts);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *buf = malloc(cases[i].len + 3);
		memset(buf, 'x', cases[i].len);
		memcpy(buf + cases[i].len, cases[i].term, strlen(cases[i].term));
		cli_write(&c, buf, cases[i].len + strlen(cases[i].term));
		if (cases[i].ok) {
			char want[80] = "250 ";
			memset(want + 4, 'x', cases[i].len);
			want[4 + cases[i].len] = '\0';
			expect_line(&c, want);
		} else {
			expect_line(&c, "500 line too long");
		}
		/* The connection is still in step after each case. */
		cli_send(&c, "PING\r\n");
		expect_line(&c, "250 PING");
		free(buf);
	}
	cli_close(&c);
	ts_stop(&ts);
}

static void test_trickle_hits_phase_deadline(void **state)
{
	struct ts ts = { 0 };
	ts_start(&ts, &default_opts);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	cli_send(&c, "SLOW\r\n"); /* the handler sets a 2 s phase deadline */
	expect_line(&c, "250 slow");
	bool replied = false;
	for (int i = 0; i < 40 && !replied; i++) { /* a byte every 250 ms, never a line end: at most 10 s */
		if (send(c.fd, "x", 1, MSG_NOSIGNAL) != 1)
			break;
		struct pollfd p = { .fd = c.fd, .events = POLLIN };
		replied = poll(&p, 1, 250) > 0;
	}
	assert_true(replied);
	expect_line(&c, "421 timeout");
	cli_expect_eof(&c);
	assert_int_equal(ts_wait_ended(&ts, 1), HIE_ETIMEOUT);
	cli_close(&c);
	ts_stop(&ts);
}

static void test_silent_client(void **state)
{
	struct ts ts = { 0 };
	struct hie_net_opts o = default_opts;
	o.first_deadline_ms = 1000;
	ts_start(&ts, &o);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	expect_line(&c, "421 timeout");
	cli_expect_eof(&c);
	assert_int_equal(ts_wait_ended(&ts, 1), HIE_ETIMEOUT);
	cli_close(&c);
	ts_stop(&ts);
}

static void wait_active(struct ts *ts, unsigned n)
{
	for (int i = 0; i < 1000 && hie_net_server_active(ts->srv) != n; i++)
		usleep(10000);
	assert_int_equal(hie_net_server_active(ts->srv), n);
}

static void test_connection_limit(void **state)
{
	struct ts ts = { 0 };
	struct hie_net_opts o = default_opts;
	o.max_conns = 2;
	ts_start(&ts, &o);
	struct cli a = cli_connect(ts.port), b = cli_connect(ts.port);
	expect_line(&a, "220 hello");
	expect_line(&b, "220 hello");
	struct cli x = cli_connect(ts.port);
	expect_line(&x, "421 too many connections");
	cli_expect_eof(&x);
	cli_close(&x);
	/* A slot that frees up is usable again. */
	cli_send(&a, "QUIT\r\n");
	expect_line(&a, "221 bye");
	cli_close(&a);
	wait_active(&ts, 1);
	struct cli d = cli_connect(ts.port);
	expect_line(&d, "220 hello");
	cli_close(&b);
	cli_close(&d);
	ts_stop(&ts);
}

static void test_per_ip_limit(void **state)
{
	struct ts ts = { 0 };
	struct hie_net_opts o = default_opts;
	o.max_conns = 10;
	o.max_per_ip = 1;
	ts_start(&ts, &o);
	struct cli a = cli_connect_from(ts.port, "127.0.0.1");
	expect_line(&a, "220 hello");
	struct cli b = cli_connect_from(ts.port, "127.0.0.1");
	expect_line(&b, "421 too many from your address");
	cli_expect_eof(&b);
	/* Another address is not affected (all of 127/8 is loopback on Linux). */
	struct cli c = cli_connect_from(ts.port, "127.0.0.2");
	expect_line(&c, "220 hello");
	cli_close(&a);
	cli_close(&b);
	cli_close(&c);
	ts_stop(&ts);
}

static SSL_CTX *server_ctx(bool verify_client)
{
	SSL_CTX *ctx;
	assert_int_equal(hie_tls_server_ctx(CT.srv_pem, CT.srv_key, verify_client ? CT.ca_pem : NULL, verify_client, &ctx),
			 HIE_OK);
	return ctx;
}

static void test_starttls(void **state)
{
	struct ts ts = { 0 };
	ts.starttls = server_ctx(false);
	ts_start(&ts, &default_opts);
	SSL_CTX *cctx = client_ctx(false);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	cli_send(&c, "TLS\r\n");
	expect_line(&c, "250 tls=0 version= subject=");
	cli_send(&c, "STARTTLS\r\n");
	expect_line(&c, "220 ready");
	assert_true(cli_tls(&c, cctx));
	cli_send(&c, "TLS\r\n");
	expect_prefix(&c, "250 tls=1 version=TLSv1.");
	cli_send(&c, "QUIT\r\n");
	expect_line(&c, "221 bye");
	cli_close(&c);
	hie_tls_ctx_free(cctx);
	ts_stop(&ts);
}

static void test_starttls_injection(void **state)
{
	struct ts ts = { 0 };
	ts.starttls = server_ctx(false);
	ts_start(&ts, &default_opts);
	SSL_CTX *cctx = client_ctx(false);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	atomic_store(&saw_discard_log, 0);
	/* CVE-2011-0411: the NOOP arrives in the same packet as STARTTLS, before TLS. */
	cli_send(&c, "STARTTLS\r\nNOOP\r\n");
	expect_line(&c, "220 ready");
	assert_true(cli_tls(&c, cctx));
	cli_send(&c, "PING\r\n");
	expect_line(&c, "250 PING"); /* a "250 NOOP" first would mean the injected command ran */
	pthread_mutex_lock(&ts.mu);
	assert_int_equal(ts.pending_at_starttls, strlen("NOOP\r\n"));
	pthread_mutex_unlock(&ts.mu);
	assert_int_equal(atomic_load(&saw_discard_log), 1);
	cli_close(&c);
	hie_tls_ctx_free(cctx);
	ts_stop(&ts);
}

static void test_implicit_tls(void **state)
{
	struct ts ts = { 0 };
	struct hie_net_opts o = default_opts;
	SSL_CTX *sctx = server_ctx(false);
	o.implicit_tls = sctx;
	ts_start(&ts, &o);
	SSL_CTX *cctx = client_ctx(false);
	struct cli c = cli_connect(ts.port);
	assert_true(cli_tls(&c, cctx));
	expect_line(&c, "220 hello");
	cli_send(&c, "TLS\r\n");
	expect_prefix(&c, "250 tls=1 version=TLSv1.");
	cli_close(&c);
	/* A plaintext client on the TLS port gets nothing and is closed. */
	struct cli p = cli_connect(ts.port);
	cli_send(&p, "EHLO x\r\n");
	cli_expect_eof(&p);
	cli_close(&p);
	hie_tls_ctx_free(cctx);
	ts_stop(&ts);
	hie_tls_ctx_free(sctx);
}

static void test_client_cert_required(void **state)
{
	struct ts ts = { 0 };
	struct hie_net_opts o = default_opts;
	SSL_CTX *sctx = server_ctx(true);
	o.implicit_tls = sctx;
	ts_start(&ts, &o);

	/* Without a certificate: the handshake fails, or (TLS 1.3) the first read does; no greeting. */
	SSL_CTX *anon = client_ctx(false);
	struct cli c = cli_connect(ts.port);
	if (cli_tls(&c, anon)) {
		char buf[64];
		assert_int_equal(cli_line(&c, buf, sizeof buf), -1);
	}
	cli_close(&c);

	SSL_CTX *mine = client_ctx(true);
	struct cli m = cli_connect(ts.port);
	assert_true(cli_tls(&m, mine));
	expect_line(&m, "220 hello");
	cli_send(&m, "TLS\r\n");
	char buf[512];
	assert_true(cli_line(&m, buf, sizeof buf) > 0);
	assert_non_null(strstr(buf, "subject=CN=client.test"));
	cli_close(&m);

	hie_tls_ctx_free(anon);
	hie_tls_ctx_free(mine);
	ts_stop(&ts);
	hie_tls_ctx_free(sctx);
}

static void test_mllp_read_until(void **state)
{
	struct ts ts = { 0 };
	ts_start(&ts, &default_opts);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");

	/* A frame written one byte per packet: the delimiter is split too. */
	static const char frame[] = "\x0bMSH|^~\\&|SND|FAC|RCV|FAC|20260101||ADT^A01|1|P|2.5\rPID|1||123\r\x1c\r";
	cli_send(&c, "MLLP\r\n");
	expect_line(&c, "250 send frame");
	for (size_t i = 0; i < sizeof frame - 1; i++) {
		cli_write(&c, frame + i, 1);
		usleep(500);
	}
	char want[64];
	snprintf(want, sizeof want, "250 frame len=%zu first=0b", sizeof frame - 1);
	expect_line(&c, want);

	/* A frame over the cap (1000): refused, and the next command is read in step. A near-delimiter
	 * (0x1c not followed by CR) inside it must not end it. */
	size_t big = 3000;
	char *b = malloc(big + 2);
	memset(b, 'y', big);
	b[0] = 0x0b;
	b[1500] = 0x1c;
	memcpy(b + big, "\x1c\r", 2);
	cli_send(&c, "MLLP\r\n");
	expect_line(&c, "250 send frame");
	cli_write(&c, b, big + 2);
	cli_send(&c, "PING\r\n");
	expect_line(&c, "500 frame too big");
	expect_line(&c, "250 PING");
	free(b);
	cli_close(&c);
	ts_stop(&ts);
}

static void test_dotted_data(void **state)
{
	static const struct {
		const char *name, *wire, *reply, *body; /* body NULL: not checked */
	} cases[] = {
		{ .name = "unstuff", .wire = "a\r\n..b\r\n.\r\n", .reply = "250 len=7", .body = "a\r\n.b\r\n" },
		{ .name = "empty", .wire = ".\r\n", .reply = "250 len=0", .body = "" },
		{ .name = "dot_inside", .wire = "x.\r\n.y\r\n.\r\n", .reply = "250 len=7", .body = "x.\r\ny\r\n" },
		{ .name = "bare_lf", .wire = "a\nb\r\n.\r\n", .reply = "550 bare lf", .body = NULL },
		/* SMTP smuggling: "\n.\r\n" is not the end; MAIL stays inside the (rejected) message. */
		{ .name = "smuggle", .wire = "a\r\n\n.\r\nMAIL\r\n.\r\n", .reply = "550 bare lf", .body = NULL },
		{ .name = "smuggle_cr", .wire = "a\r\n.\nb\r\n.\r\n", .reply = "550 bare lf", .body = NULL },
	};
	struct ts ts = { 0 };
	ts_start(&ts, &default_opts);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cli_send(&c, "DATA\r\n");
		expect_line(&c, "354 go");
		cli_send(&c, cases[i].wire);
		cli_send(&c, "PING\r\n");
		expect_line(&c, cases[i].reply);
		expect_line(&c, "250 PING");
		if (cases[i].body) {
			pthread_mutex_lock(&ts.mu);
			assert_int_equal(ts.body_len, strlen(cases[i].body));
			assert_memory_equal(ts.body, cases[i].body, ts.body_len);
			pthread_mutex_unlock(&ts.mu);
		}
	}

	/* 100 KB in 80-byte lines: read in blocks, not a read per byte or per line. */
	size_t nlines = 1280, len = nlines * 80;
	char *msg = malloc(len + 8);
	for (size_t i = 0; i < nlines; i++) {
		memset(msg + i * 80, 'm', 78);
		memcpy(msg + i * 80 + 78, "\r\n", 2);
	}
	memcpy(msg + len, ".\r\n", 3);
	cli_send(&c, "DATA\r\n");
	expect_line(&c, "354 go");
	cli_write(&c, msg, len + 3);
	char want[64];
	snprintf(want, sizeof want, "250 len=%zu", len);
	expect_line(&c, want);
	pthread_mutex_lock(&ts.mu);
	assert_true(ts.data_reads < 200);
	pthread_mutex_unlock(&ts.mu);
	free(msg);

	/* Over the 200000 cap: 552 after the whole message, then in step. */
	size_t blen = 300 * 1024;
	char *big = malloc(blen + 3);
	for (size_t i = 0; i < blen; i += 80) {
		memset(big + i, 'b', 78);
		memcpy(big + i + 78, "\r\n", 2);
	}
	memcpy(big + blen, ".\r\n", 3);
	cli_send(&c, "DATA\r\n");
	expect_line(&c, "354 go");
	cli_write(&c, big, blen + 3);
	cli_send(&c, "PING\r\n");
	expect_line(&c, "552 too big");
	expect_line(&c, "250 PING");
	free(big);
	cli_close(&c);
	ts_stop(&ts);
}

static void test_stop_idle_client(void **state)
{
	struct ts ts = { 0 };
	ts_start(&ts, &default_opts);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	wait_active(&ts, 1);
	/* Grace is 30 s, but an idle client is told at once. */
	hie_net_stop(ts.srv, 30000);
	expect_line(&c, "421 stopping");
	cli_expect_eof(&c);
	assert_int_equal(ts_wait_ended(&ts, 1), HIE_EBUSY);
	cli_close(&c);
	pthread_mutex_destroy(&ts.mu);
	pthread_cond_destroy(&ts.cv);
}

static void test_stop_midline_client(void **state)
{
	struct ts ts = { 0 };
	ts_start(&ts, &default_opts);
	struct cli c = cli_connect(ts.port);
	expect_line(&c, "220 hello");
	cli_send(&c, "half a comm");
	usleep(100000);
	/* Not idle: it gets the grace (1 s), then the deadline ends it; the stop waits for it. */
	hie_net_stop(ts.srv, 1000);
	assert_int_equal(ts_wait_ended(&ts, 1), HIE_ETIMEOUT);
	cli_expect_eof(&c);
	cli_close(&c);
	pthread_mutex_destroy(&ts.mu);
	pthread_cond_destroy(&ts.cv);
}

static void test_outbound_connect(void **state)
{
	struct ts ts = { 0 };
	ts.starttls = server_ctx(false);
	ts_start(&ts, &default_opts);
	SSL_CTX *cctx = client_ctx(false);
	char port[16];
	snprintf(port, sizeof port, "%d", ts.port);
	struct hie_buf line;
	hie_buf_init(&line, 1024);

	static const struct {
		const char *host;
		hie_err_t tls;
	} cases[] = {
		{ .host = "localhost", .tls = HIE_OK },
		{ .host = "127.0.0.1", .tls = HIE_OK }, /* IP SAN */
		{ .host = "wrong.example", .tls = HIE_ETLS },
		{ .host = "127.0.0.2", .tls = HIE_ETLS },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hie_net_conn *c;
		assert_int_equal(hie_net_connect("127.0.0.1", port, 5000, &c), HIE_OK);
		assert_int_equal(hie_net_readline(c, &line, 512), HIE_OK);
		assert_string_equal(hie_buf_str(&line), "220 hello");
		assert_int_equal(hie_net_printf(c, "STARTTLS\r\n"), HIE_OK);
		assert_int_equal(hie_net_readline(c, &line, 512), HIE_OK);
		assert_string_equal(hie_buf_str(&line), "220 ready");
		assert_int_equal(hie_net_starttls_client(c, cctx, cases[i].host), cases[i].tls);
		if (cases[i].tls == HIE_OK) {
			assert_true(hie_net_is_tls(c));
			assert_non_null(hie_net_peer_cert(c));
			assert_int_equal(hie_net_printf(c, "PING\r\n"), HIE_OK);
			assert_int_equal(hie_net_readline(c, &line, 512), HIE_OK);
			assert_string_equal(hie_buf_str(&line), "250 PING");
		} else {
			assert_false(hie_net_is_tls(c));
			assert_int_equal(hie_net_printf(c, "PING\r\n"), HIE_ETLS); /* broken stays broken */
		}
		hie_net_close(c);
	}
	hie_buf_free(&line);
	ts_stop(&ts);
	hie_tls_ctx_free(cctx);

	/* Nobody listens on the port any more. */
	struct hie_net_conn *c = NULL;
	assert_int_equal(hie_net_connect("127.0.0.1", port, 2000, &c), HIE_EIO);
	assert_null(c);
}

static void test_listen_addresses(void **state)
{
	static const struct {
		const char *addr;
		hie_err_t want;
	} cases[] = {
		{ .addr = "127.0.0.1:0", .want = HIE_OK },
		{ .addr = ":0", .want = HIE_OK },
		{ .addr = "*:0", .want = HIE_OK },
		{ .addr = "127.0.0.1", .want = HIE_EINVAL },
		{ .addr = "127.0.0.1:", .want = HIE_EINVAL },
		{ .addr = "127.0.0.1:70000", .want = HIE_EINVAL },
		{ .addr = "127.0.0.1:12x", .want = HIE_EINVAL },
		{ .addr = "::1:25", .want = HIE_EINVAL },
		{ .addr = "[::1:25", .want = HIE_EINVAL },
		{ .addr = "300.1.1.1:0", .want = HIE_EINVAL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hie_net_listener *l = NULL;
		hie_err_t err = hie_net_listen(cases[i].addr, &l);
		if (err != cases[i].want)
			fail_msg("%s: got %s want %s", cases[i].addr, hie_errname(err), hie_errname(cases[i].want));
		if (!err)
			assert_true(hie_net_listener_port(l) > 0);
		hie_net_listener_close(l);
	}
	/* The same port twice: the second bind fails. */
	struct hie_net_listener *a, *b = NULL;
	char hp[32];
	assert_int_equal(hie_net_listen("127.0.0.1:0", &a), HIE_OK);
	snprintf(hp, sizeof hp, "127.0.0.1:%d", hie_net_listener_port(a));
	assert_int_equal(hie_net_listen(hp, &b), HIE_ESYS);
	hie_net_listener_close(a);
	/* IPv6 loopback, when the machine has it. */
	if (hie_net_listen("[::1]:0", &b) == HIE_OK)
		hie_net_listener_close(b);
}

static int group_setup(void **state)
{
	hie_log_set_sink(sink);
	hie_log_set_level(HIE_LOG_INFO);
	return make_certs();
}

static int group_teardown(void **state)
{
	return certtest_remove(&CT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_line_cap),
		cmocka_unit_test(test_trickle_hits_phase_deadline),
		cmocka_unit_test(test_silent_client),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_per_ip_limit),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_implicit_tls),
		cmocka_unit_test(test_client_cert_required),
		cmocka_unit_test(test_mllp_read_until),
		cmocka_unit_test(test_dotted_data),
		cmocka_unit_test(test_stop_idle_client),
		cmocka_unit_test(test_stop_midline_client),
		cmocka_unit_test(test_outbound_connect),
		cmocka_unit_test(test_listen_addresses),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
