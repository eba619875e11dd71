/*
 * hisp_smtp_out_test.c — hisp_smtp_out_send (libESMTP) against a real SMTP peer: a small sink server in a
 * thread on 127.0.0.1 (port from the kernel) with scripted replies per recipient (local part "bad…" → 550,
 * "later…" → 451, anything else 250), an optional STARTTLS (certificates from certtest.h), a configurable
 * reply to the end of DATA, and peers that never answer. The bytes the sink receives (dot-stuffing undone)
 * must equal the bytes sent, and the wire must show the stuffing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "core/core_buf.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_smtp_in.h"
#include "tests/unit/core/certtest.h"
#include "tests/unit/hisp/smtpbox.h"

/* --- the sink ------------------------------------------------------------------------------------------ */

struct sink {
	int lfd, port;
	pthread_t th;
	SSL_CTX *tls;          /* offer STARTTLS */
	bool tls_broken;       /* offer STARTTLS, answer 220, then close instead of a handshake */
	int sessions;          /* EHLOs seen */
	int data_code;         /* reply to the end of DATA (250 when 0) */
	int mail_code;         /* reply to MAIL (250 when 0) */
	bool stall_after_mail; /* read MAIL, then never answer */
	volatile int stop;
	pthread_mutex_t mu;
	/* what arrived (last transaction) */
	struct hie_buf msg;    /* dot-stuffing undone */
	struct hie_buf wire;   /* DATA as on the wire, up to and including ".\r\n" */
	char mail_from[256];
	int nrcpt;
	bool used_tls;
	int transactions;      /* DATA completed */
};

struct conn {
	int fd;
	SSL *ssl;
	char buf[8192];
	size_t have;
};

static int c_read(struct conn *c, void *p, size_t n)
{
	if (c->ssl)
		return SSL_read(c->ssl, p, (int)n);
	return (int)recv(c->fd, p, n, 0);
}

static void c_write(struct conn *c, const char *s)
{
	if (c->ssl)
		SSL_write(c->ssl, s, (int)strlen(s));
	else if (send(c->fd, s, strlen(s), MSG_NOSIGNAL) < 0)
		return;
}

/* One line with its CRLF into line (NUL-terminated); -1 on EOF. */
static int c_line(struct conn *c, char *line, size_t max)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->have);
		if (nl) {
			size_t n = (size_t)(nl - c->buf) + 1;
			if (n >= max)
				return -1;
			memcpy(line, c->buf, n);
			line[n] = 0;
			memmove(c->buf, c->buf + n, c->have - n);
			c->have -= n;
			return (int)n;
		}
		if (c->have == sizeof c->buf)
			return -1;
		int r = c_read(c, c->buf + c->have, sizeof c->buf - c->have);
		if (r <= 0)
			return -1;
		c->have += (size_t)r;
	}
}

static void serve(struct sink *s, int fd)
{
	struct conn c = {.fd = fd};
	char line[4096];
	struct timeval tv = {.tv_sec = 20};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	c_write(&c, "220 sink.test ESMTP\r\n");
	while (c_line(&c, line, sizeof line) > 0) {
		if (strncasecmp(line, "EHLO", 4) == 0) {
			pthread_mutex_lock(&s->mu);
			s->sessions++;
			pthread_mutex_unlock(&s->mu);
			c_write(&c, "250-sink.test\r\n250-ENHANCEDSTATUSCODES\r\n");
			if ((s->tls || s->tls_broken) && !c.ssl)
				c_write(&c, "250-STARTTLS\r\n");
			c_write(&c, "250 8BITMIME\r\n");
		} else if (strncasecmp(line, "STARTTLS", 8) == 0 && s->tls_broken) {
			c_write(&c, "220 2.0.0 ready\r\n");
			c_write(&c, "this is not TLS\r\n");
			break;
		} else if (strncasecmp(line, "STARTTLS", 8) == 0 && s->tls && !c.ssl) {
			c_write(&c, "220 2.0.0 ready\r\n");
			c.ssl = SSL_new(s->tls);
			SSL_set_fd(c.ssl, fd);
			if (SSL_accept(c.ssl) != 1)
				break;
			pthread_mutex_lock(&s->mu);
			s->used_tls = true;
			pthread_mutex_unlock(&s->mu);
		} else if (strncasecmp(line, "MAIL FROM:<", 11) == 0) {
			pthread_mutex_lock(&s->mu);
			size_t n = strcspn(line + 11, ">");
			snprintf(s->mail_from, sizeof s->mail_from, "%.*s", (int)n, line + 11);
			s->nrcpt = 0;
			pthread_mutex_unlock(&s->mu);
			if (s->stall_after_mail) {
				sleep(5);
				break;
			}
			if (s->mail_code == 550)
				c_write(&c, "550 5.7.1 sender refused\r\n");
			else
				c_write(&c, "250 2.1.0 ok\r\n");
		} else if (strncasecmp(line, "RCPT TO:<", 9) == 0) {
			const char *a = line + 9;
			if (strncmp(a, "bad", 3) == 0) {
				c_write(&c, "550 5.1.1 no such user\r\n");
			} else if (strncmp(a, "later", 5) == 0) {
				c_write(&c, "451 4.3.0 try later\r\n");
			} else {
				pthread_mutex_lock(&s->mu);
				s->nrcpt++;
				pthread_mutex_unlock(&s->mu);
				c_write(&c, "250 2.1.5 ok\r\n");
			}
		} else if (strncasecmp(line, "DATA", 4) == 0 && s->nrcpt == 0) {
			c_write(&c, "554 5.5.1 no valid recipients\r\n"); /* as Postfix answers */
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			c_write(&c, "354 go ahead\r\n");
			pthread_mutex_lock(&s->mu);
			hie_buf_reset(&s->msg);
			hie_buf_reset(&s->wire);
			pthread_mutex_unlock(&s->mu);
			int n;
			bool done = false;
			while ((n = c_line(&c, line, sizeof line)) > 0) {
				pthread_mutex_lock(&s->mu);
				hie_buf_add(&s->wire, line, (size_t)n);
				if (strcmp(line, ".\r\n") == 0)
					done = true;
				else
					hie_buf_add(&s->msg, line[0] == '.' ? line + 1 : line,
						    (size_t)n - (line[0] == '.'));
				pthread_mutex_unlock(&s->mu);
				if (done)
					break;
			}
			if (!done)
				break;
			int code = s->data_code ? s->data_code : 250;
			snprintf(line, sizeof line, "%d %s\r\n", code,
				 code == 250 ? "2.0.0 queued" : code == 451 ? "4.3.0 later" : "5.6.0 rejected");
			c_write(&c, line);
			pthread_mutex_lock(&s->mu);
			s->transactions++;
			pthread_mutex_unlock(&s->mu);
		} else if (strncasecmp(line, "RSET", 4) == 0 || strncasecmp(line, "NOOP", 4) == 0) {
			c_write(&c, "250 2.0.0 ok\r\n");
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			c_write(&c, "221 2.0.0 bye\r\n");
			break;
		} else {
			c_write(&c, "500 5.5.1 what\r\n");
		}
	}
	if (c.ssl) {
		SSL_shutdown(c.ssl);
		SSL_free(c.ssl);
	}
	close(fd);
}

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	while (!s->stop) {
		struct pollfd p = {.fd = s->lfd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd >= 0)
			serve(s, fd);
	}
	return NULL;
}

static int listen_any(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void sink_start(struct sink *s)
{
	pthread_mutex_init(&s->mu, NULL);
	hie_buf_init(&s->msg, 1 << 24);
	hie_buf_init(&s->wire, 1 << 24);
	s->lfd = listen_any(&s->port);
	assert_int_equal(pthread_create(&s->th, NULL, sink_main, s), 0);
}

static void sink_stop(struct sink *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
}

static void sink_free(struct sink *s)
{
	hie_buf_free(&s->msg);
	hie_buf_free(&s->wire);
}

/* --- fixtures ----------------------------------------------------------------------------------------- */

static struct certtest ct;
static SSL_CTX *srv_ctx;

static int group_setup(void **state)
{
	(void)state;
	if (certtest_make(&ct, "smtpout") != 0)
		return -1;
	srv_ctx = SSL_CTX_new(TLS_server_method());
	if (!srv_ctx || SSL_CTX_use_certificate_chain_file(srv_ctx, ct.srv_pem) != 1 ||
	    SSL_CTX_use_PrivateKey_file(srv_ctx, ct.srv_key, SSL_FILETYPE_PEM) != 1)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	SSL_CTX_free(srv_ctx);
	certtest_remove(&ct);
	return 0;
}

/* A message whose body exercises dot-stuffing: ".", "..", ".x" at line starts, a lone "." line. */
static const char msg_dots[] =
	"From: alice@a.test\r\n"
	"To: ok1@b.test,\r\n"
	" bad@b.test, later@b.test\r\n"
	"Date: Sun, 22 Nov 2026 05:50:46 +0000\r\n"
	"Message-ID: <abc@a.test>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	".\r\n"
	"..\r\n"
	".hidden line\r\n"
	"a line\r\n"
	"\r\n"
	".\r\n"
	"end";

static const struct hisp_smtp_out_opts plain_opts = {.helo = "hisp.a.test", .timeout_ms = 5000, .tls = 0};

static void test_codes_and_bytes(void **state)
{
	(void)state;
	struct sink s = {0};
	sink_start(&s);
	const char *rcpts[] = {"ok1@b.test", "bad@b.test", "later@b.test"};
	int st[3];
	char reply[256];
	hie_err_t err = hisp_smtp_out_send("127.0.0.1", s.port, &plain_opts, "alice@a.test", rcpts, 3, msg_dots,
					   strlen(msg_dots), st, reply, sizeof reply);
	assert_int_equal(err, HIE_OK);
	assert_int_equal(st[0], 250);
	assert_int_equal(st[1], 550);
	assert_int_equal(st[2], 451);
	assert_string_equal(reply, "550 5.1.1 no such user");
	sink_stop(&s);
	assert_string_equal(s.mail_from, "alice@a.test");
	assert_int_equal(s.transactions, 1);
	/* libESMTP terminates the unterminated last line with CRLF; everything else is as sent */
	char want[sizeof msg_dots + 2];
	snprintf(want, sizeof want, "%s\r\n", msg_dots);
	assert_int_equal(s.msg.len, strlen(want));
	assert_memory_equal(s.msg.data, want, s.msg.len);
	/* and the wire carried the stuffing */
	assert_non_null(strstr(s.wire.data, "\r\n..\r\n...\r\n..hidden line\r\na line\r\n\r\n..\r\nend\r\n.\r\n"));
	sink_free(&s);
}

static void test_bare_lf_canonicalized(void **state)
{
	(void)state;
	struct sink s = {0};
	sink_start(&s);
	const char m[] = "From: a@a.test\nDate: x\nMessage-ID: <1@a>\n\nline1\n.dot\r\nbare\rcr\n";
	const char want[] = "From: a@a.test\r\nDate: x\r\nMessage-ID: <1@a>\r\n\r\nline1\r\n.dot\r\nbare\r\ncr\r\n";
	const char *rcpts[] = {"bob@b.test"};
	int st[1];
	assert_int_equal(hisp_smtp_out_send("localhost", s.port, &plain_opts, "a@a.test", rcpts, 1, m, strlen(m), st,
					    NULL, 0),
			 HIE_OK);
	assert_int_equal(st[0], 250);
	sink_stop(&s);
	assert_int_equal(s.msg.len, strlen(want));
	assert_memory_equal(s.msg.data, want, s.msg.len);
	assert_non_null(strstr(s.wire.data, "\r\n..dot\r\n"));
	sink_free(&s);
}

struct refuse_case {
	const char *name;
	int mail_code, data_code;
	const char *rcpt;
	int want_status;
	hie_err_t want;
	const char *want_reply;
};

static void test_refusals(void **state)
{
	(void)state;
	const struct refuse_case cases[] = {
		{.name = "all refused", .rcpt = "bad@b.test", .want_status = 550, .want = HIE_EDENIED,
		 .want_reply = "550 5.1.1 no such user"},
		{.name = "all deferred", .rcpt = "later@b.test", .want_status = 451, .want = HIE_EDENIED,
		 .want_reply = "451 4.3.0 try later"},
		{.name = "data refused", .rcpt = "ok@b.test", .data_code = 554, .want_status = 554, .want = HIE_EDENIED,
		 .want_reply = "554 5.6.0 rejected"},
		{.name = "data deferred", .rcpt = "ok@b.test", .data_code = 451, .want_status = 451, .want = HIE_EDENIED,
		 .want_reply = "451 4.3.0 later"},
		{.name = "sender refused", .rcpt = "ok@b.test", .mail_code = 550, .want_status = 550, .want = HIE_EDENIED,
		 .want_reply = "550 5.7.1 sender refused"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sink s = {.data_code = cases[i].data_code, .mail_code = cases[i].mail_code};
		sink_start(&s);
		const char *rcpts[] = {cases[i].rcpt};
		int st[1] = {-1};
		char reply[256];
		hie_err_t err = hisp_smtp_out_send("127.0.0.1", s.port, &plain_opts, "alice@a.test", rcpts, 1, msg_dots,
						   strlen(msg_dots), st, reply, sizeof reply);
		sink_stop(&s);
		sink_free(&s);
		if (err != cases[i].want || st[0] != cases[i].want_status || strcmp(reply, cases[i].want_reply) != 0)
			fail_msg("case '%s': %s status %d reply '%s'", cases[i].name, hie_errname(err), st[0], reply);
	}
}

static void test_starttls(void **state)
{
	(void)state;
	/* opportunistic: offered → used; the peer's certificate (a private CA) is not a reason to refuse */
	struct sink s = {.tls = srv_ctx};
	sink_start(&s);
	const char *rcpts[] = {"ok@b.test"};
	int st[1];
	struct hisp_smtp_out_opts o = {.helo = "hisp.a.test", .timeout_ms = 5000, .tls = 1};
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", s.port, &o, "alice@a.test", rcpts, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_OK);
	assert_int_equal(st[0], 250);
	sink_stop(&s);
	assert_true(s.used_tls);
	assert_int_equal(s.msg.len, strlen(msg_dots) + 2);
	assert_memory_equal(s.msg.data, msg_dots, strlen(msg_dots));

	/* required and offered */
	struct sink s2 = {.tls = srv_ctx};
	sink_start(&s2);
	o.tls = 2;
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", s2.port, &o, "alice@a.test", rcpts, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_OK);
	sink_stop(&s2);
	assert_true(s2.used_tls);

	/* required but not offered: nothing is sent */
	struct sink s3 = {0};
	sink_start(&s3);
	char reply[128];
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", s3.port, &o, "alice@a.test", rcpts, 1, msg_dots,
					    strlen(msg_dots), st, reply, sizeof reply),
			 HIE_EIO);
	assert_int_equal(st[0], 0);
	assert_non_null(strstr(reply, "STARTTLS"));
	sink_stop(&s3);
	assert_int_equal(s3.transactions, 0);
	assert_string_equal(s3.mail_from, "");

	/* opportunistic against a peer without STARTTLS: plain */
	struct sink s4 = {0};
	sink_start(&s4);
	o.tls = 1;
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", s4.port, &o, "alice@a.test", rcpts, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_OK);
	sink_stop(&s4);
	assert_false(s4.used_tls);
	assert_int_equal(s4.transactions, 1);
	sink_free(&s);
	sink_free(&s2);
	sink_free(&s3);
	sink_free(&s4);

	/* opportunistic against a broken STARTTLS: once more in clear, delivered */
	struct sink s5 = {.tls_broken = true};
	sink_start(&s5);
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", s5.port, &o, "alice@a.test", rcpts, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_OK);
	assert_int_equal(st[0], 250);
	sink_stop(&s5);
	assert_int_equal(s5.transactions, 1);
	assert_int_equal(s5.sessions, 2);
	assert_false(s5.used_tls);
	sink_free(&s5);

	/* required against a broken STARTTLS: no fallback, nothing sent */
	struct sink s6 = {.tls_broken = true};
	sink_start(&s6);
	o.tls = 2;
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", s6.port, &o, "alice@a.test", rcpts, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_EIO);
	assert_int_equal(st[0], 0);
	sink_stop(&s6);
	assert_int_equal(s6.transactions, 0);
	assert_int_equal(s6.sessions, 1);
	sink_free(&s6);
}

static void test_unreachable(void **state)
{
	(void)state;
	const char *rcpts[] = {"ok@b.test"};
	int st[1] = {-1};
	char reply[128];
	/* connection refused: a port that was just closed */
	int port;
	int fd = listen_any(&port);
	close(fd);
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", port, &plain_opts, "a@a.test", rcpts, 1, msg_dots,
					    strlen(msg_dots), st, reply, sizeof reply),
			 HIE_EIO);
	assert_int_equal(st[0], 0);

	/* a peer that accepts TCP (backlog) but never greets: timeout */
	fd = listen_any(&port);
	struct hisp_smtp_out_opts o = {.helo = "h", .timeout_ms = 1000};
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", port, &o, "a@a.test", rcpts, 1, msg_dots, strlen(msg_dots),
					    st, reply, sizeof reply),
			 HIE_ETIMEOUT);
	assert_int_equal(st[0], 0);
	close(fd);

	/* a peer that stops answering after MAIL FROM */
	struct sink s = {.stall_after_mail = true};
	sink_start(&s);
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", s.port, &o, "a@a.test", rcpts, 1, msg_dots, strlen(msg_dots),
					    st, reply, sizeof reply),
			 HIE_ETIMEOUT);
	assert_int_equal(st[0], 0);
	sink_stop(&s);
	sink_free(&s);
	assert_int_equal(s.transactions, 0);
}

static void test_refused_inputs(void **state)
{
	(void)state;
	const char *ok[] = {"ok@b.test"};
	const char *crlf[] = {"ok@b.test>\r\nRCPT TO:<evil@x"};
	const char *blank[] = {"ok @b.test"};
	int st[1];
	/* never reaches the network: port 1 would be refused anyway */
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", 1, &plain_opts, "a@a.test", crlf, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_EINVAL);
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", 1, &plain_opts, "a@a.test", blank, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_EINVAL);
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", 1, &plain_opts, "a@a.test\r\nDATA", ok, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_EINVAL);
	assert_int_equal(hisp_smtp_out_send("127.0.0.1", 1, &plain_opts, "a@a.test", ok, 0, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_EINVAL);
	assert_int_equal(hisp_smtp_out_send("127.0.0.1:25", 25, &plain_opts, "a@a.test", ok, 1, msg_dots,
					    strlen(msg_dots), st, NULL, 0),
			 HIE_EINVAL);
	/* messages libESMTP would rewrite */
	const char *rewritten[] = {
		"From: a@a.test\r\nDate: x\r\n\r\nno message-id\r\n",
		"From: a@a.test\r\nMessage-ID: <1@a>\r\n\r\nno date\r\n",
		"Date: x\r\nMessage-ID: <1@a>\r\n\r\nno from\r\n",
		"Return-Path: <x@y>\r\nFrom: a@a.test\r\nDate: x\r\nMessage-ID: <1@a>\r\n\r\nb\r\n",
		"From: a@a.test\r\nDate: x\r\nMessage-ID: <1@a>\r\nTo: b@b\r\nto: c@c\r\n\r\ntwo To\r\n",
	};
	for (size_t i = 0; i < sizeof rewritten / sizeof rewritten[0]; i++)
		assert_int_equal(hisp_smtp_out_send("127.0.0.1", 1, &plain_opts, "a@a.test", ok, 1, rewritten[i],
						    strlen(rewritten[i]), st, NULL, 0),
				 HIE_EINVAL);
}

/* Several sessions in parallel threads (libESMTP state per session, errors per thread). */
struct par {
	int port;
	hie_err_t err;
	int st;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	const char *rcpts[] = {"ok@b.test"};
	struct hisp_smtp_out_opts o = {.helo = "h", .timeout_ms = 5000, .tls = 1};
	p->err = hisp_smtp_out_send("127.0.0.1", p->port, &o, "a@a.test", rcpts, 1, msg_dots, strlen(msg_dots), &p->st,
				    NULL, 0);
	return NULL;
}

static void test_parallel(void **state)
{
	(void)state;
	enum { N = 4 };
	struct sink s[N];
	struct par p[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		memset(&s[i], 0, sizeof s[i]);
		s[i].tls = srv_ctx;
		sink_start(&s[i]);
		p[i] = (struct par){.port = s[i].port};
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&th[i], NULL, par_main, &p[i]), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].err, HIE_OK);
		assert_int_equal(p[i].st, 250);
		sink_stop(&s[i]);
		assert_true(s[i].used_tls);
		assert_int_equal(s[i].transactions, 1);
		sink_free(&s[i]);
	}
}

/* --- against hienode's own SMTP receiver (hisp_smtp_in) -------------------------------------------------- */

static int box_rcpt(const char *address)
{
	return strncmp(address, "bad", 3) == 0 ? 550 : strncmp(address, "later", 5) == 0 ? 451 : 250;
}

/* hienode's own SMTP receiver on a kernel-chosen port, storing into box; returns the port. */
static int box_server(struct smtp_box *box, size_t max_message, SSL_CTX *tls, struct hisp_smtp_in **srv)
{
	box->rcpt = box_rcpt;
	smtp_box_start(box, "hisp.b.test", max_message, 1 << 24, tls);
	*srv = box->srv;
	return box->port;
}

static void test_hienode_receiver(void **state)
{
	(void)state;
	struct smtp_box box = {0};
	struct hisp_smtp_in *srv = NULL;
	int port = box_server(&box, 4 << 20, srv_ctx, &srv);

	const char *rcpts[] = {"ok1@b.test", "bad@b.test", "later@b.test", "ok2@b.test"};
	int st[4];
	char reply[256];
	struct hisp_smtp_out_opts o = {.helo = "hisp.a.test", .timeout_ms = 5000, .tls = 1};
	hie_err_t err = hisp_smtp_out_send("127.0.0.1", port, &o, "alice@a.test", rcpts, 4, msg_dots, strlen(msg_dots),
					   st, reply, sizeof reply);
	/* a large message with many dot lines, over STARTTLS required */
	struct hie_buf big;
	hie_buf_init(&big, 1 << 22);
	hie_buf_addstr(&big, "From: a@a.test\r\nDate: x\r\nMessage-ID: <big@a>\r\n\r\n");
	for (int i = 0; i < 20000; i++)
		hie_buf_addf(&big, "%s%d line of the body, with some length to it ....................\r\n",
			     i % 3 ? "." : "", i);
	int st2[1];
	const char *one[] = {"ok3@b.test"};
	o.tls = 2;
	hie_err_t err2 = hisp_smtp_out_send("127.0.0.1", port, &o, "alice@a.test", one, 1, big.data, big.len, st2, NULL,
					    0);
	hisp_smtp_in_stop(srv, 1000);

	assert_int_equal(err, HIE_OK);
	assert_int_equal(st[0], 250);
	assert_int_equal(st[1], 550);
	assert_int_equal(st[2], 451);
	assert_int_equal(st[3], 250);
	assert_int_equal(err2, HIE_OK);
	assert_int_equal(st2[0], 250);
	assert_int_equal(box.stored, 2);
	assert_true(box.tls);
	assert_string_equal(box.rcpts, "ok3@b.test,");
	assert_string_equal(box.mail_from, "alice@a.test");
	assert_int_equal(box.data.len, big.len);
	assert_memory_equal(box.data.data, big.data, big.len);
	hie_buf_free(&big);
	hie_buf_free(&box.data);
	pthread_mutex_destroy(&box.mu);
}

static void test_hienode_receiver_first(void **state)
{
	(void)state;
	/* the first message's bytes, checked on their own receiver */
	struct smtp_box box = {0};
	struct hisp_smtp_in *srv = NULL;
	int port = box_server(&box, 1 << 20, NULL, &srv);
	const char *rcpts[] = {"ok1@b.test", "ok2@b.test"};
	int st[2];
	hie_err_t err = hisp_smtp_out_send("127.0.0.1", port, &plain_opts, "alice@a.test", rcpts, 2, msg_dots,
					   strlen(msg_dots), st, NULL, 0);
	hisp_smtp_in_stop(srv, 1000);
	assert_int_equal(err, HIE_OK);
	assert_int_equal(st[0], 250);
	assert_int_equal(st[1], 250);
	assert_string_equal(box.rcpts, "ok1@b.test,ok2@b.test,");
	assert_false(box.tls);
	assert_int_equal(box.data.len, strlen(msg_dots) + 2);
	assert_memory_equal(box.data.data, msg_dots, strlen(msg_dots));
	assert_memory_equal(box.data.data + strlen(msg_dots), "\r\n", 2);
	hie_buf_free(&box.data);
	pthread_mutex_destroy(&box.mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes_and_bytes), cmocka_unit_test(test_bare_lf_canonicalized),
		cmocka_unit_test(test_refusals),        cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_unreachable),     cmocka_unit_test(test_refused_inputs),
		cmocka_unit_test(test_parallel),        cmocka_unit_test(test_hienode_receiver),
		cmocka_unit_test(test_hienode_receiver_first),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
