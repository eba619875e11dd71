/*
 * hisp_send_test.c — the whole sending path on a real PostgreSQL, the test PKI (mkpki.sh) and a sink SMTP
 * server: `hienode send` (hisp_cli_send) submits, hisp_send_job discovers the partner certificates from the
 * local store (hisp_certs rows imported with `hienode cert import`), signs and encrypts, and delivers over
 * the hisp_routes row to the sink. The sink answers per recipient (bob 250, bad… 550, later… 451).
 * Checks: recipient states and DSNs, the outer headers (no Subject), the message decrypts with bob's key
 * and with alice's own (`openssl cms -decrypt`) and verifies (`openssl cms -verify` against the test CA),
 * retries touch only pending recipients, the last attempt gives up with 4.4.1, a third run does nothing.
 */
#define _XOPEN_SOURCE 700 /* nftw in pgtest.h */
#include <arpa/inet.h>
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

#include "core/core_config.h"
#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_svc.h"
#include "tests/unit/core/pgtest.h"

/* --- a minimal sink (plain SMTP, one connection at a time) -------------------------------------------- */

struct sink {
	int lfd, port;
	pthread_t th;
	volatile int stop;
	pthread_mutex_t mu;
	struct hie_buf msg;     /* last message, dot-stuffing undone */
	char rcpts[512];        /* last transaction's accepted and refused RCPTs, "a,b," */
	int valid;              /* RCPTs accepted in this transaction */
	char mail_from[256];
	int transactions;
};

static int sline(int fd, char *buf, size_t *have, size_t cap, char *line, size_t max)
{
	for (;;) {
		char *nl = memchr(buf, '\n', *have);
		if (nl) {
			size_t n = (size_t)(nl - buf) + 1;
			if (n >= max)
				return -1;
			memcpy(line, buf, n);
			line[n] = 0;
			memmove(buf, buf + n, *have - n);
			*have -= n;
			return (int)n;
		}
		if (*have == cap)
			return -1;
		ssize_t r = recv(fd, buf + *have, cap - *have, 0);
		if (r <= 0)
			return -1;
		*have += (size_t)r;
	}
}

static void swrite(int fd, const char *s)
{
	if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0)
		return;
}

static void sink_serve(struct sink *s, int fd)
{
	char buf[16384], line[4096];
	size_t have = 0;
	struct timeval tv = {.tv_sec = 20};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	swrite(fd, "220 sink ESMTP\r\n");
	while (sline(fd, buf, &have, sizeof buf, line, sizeof line) > 0) {
		if (!strncasecmp(line, "EHLO", 4)) {
			swrite(fd, "250-sink\r\n250 ENHANCEDSTATUSCODES\r\n");
		} else if (!strncasecmp(line, "MAIL FROM:<", 11)) {
			pthread_mutex_lock(&s->mu);
			snprintf(s->mail_from, sizeof s->mail_from, "%.*s", (int)strcspn(line + 11, ">"), line + 11);
			s->rcpts[0] = 0;
			s->valid = 0;
			pthread_mutex_unlock(&s->mu);
			swrite(fd, "250 2.1.0 ok\r\n");
		} else if (!strncasecmp(line, "RCPT TO:<", 9)) {
			const char *a = line + 9;
			pthread_mutex_lock(&s->mu);
			size_t l = strlen(s->rcpts);
			snprintf(s->rcpts + l, sizeof s->rcpts - l, "%.*s,", (int)strcspn(a, ">"), a);
			s->valid += strncmp(a, "bad", 3) && strncmp(a, "later", 5);
			pthread_mutex_unlock(&s->mu);
			swrite(fd, !strncmp(a, "bad", 3)     ? "550 5.1.1 no such user\r\n"
				   : !strncmp(a, "later", 5) ? "451 4.3.0 try later\r\n"
							     : "250 2.1.5 ok\r\n");
		} else if (!strncasecmp(line, "DATA", 4) && !s->valid) {
			swrite(fd, "554 5.5.1 no valid recipients\r\n"); /* as Postfix answers */
		} else if (!strncasecmp(line, "DATA", 4)) {
			swrite(fd, "354 go\r\n");
			pthread_mutex_lock(&s->mu);
			hie_buf_reset(&s->msg);
			pthread_mutex_unlock(&s->mu);
			int n;
			bool done = false;
			while (!done && (n = sline(fd, buf, &have, sizeof buf, line, sizeof line)) > 0) {
				pthread_mutex_lock(&s->mu);
				if (!strcmp(line, ".\r\n"))
					done = true;
				else
					hie_buf_add(&s->msg, line + (line[0] == '.'), (size_t)n - (line[0] == '.'));
				pthread_mutex_unlock(&s->mu);
			}
			if (!done)
				break;
			pthread_mutex_lock(&s->mu);
			s->transactions++;
			pthread_mutex_unlock(&s->mu);
			swrite(fd, "250 2.0.0 queued\r\n");
		} else if (!strncasecmp(line, "QUIT", 4)) {
			swrite(fd, "221 bye\r\n");
			break;
		} else {
			swrite(fd, "250 ok\r\n");
		}
	}
	close(fd);
}

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	while (!s->stop) {
		struct pollfd p = {.fd = s->lfd, .events = POLLIN};
		if (poll(&p, 1, 100) > 0) {
			int fd = accept(s->lfd, NULL, NULL);
			if (fd >= 0)
				sink_serve(s, fd);
		}
	}
	return NULL;
}

static int sink_start(struct sink *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	hie_buf_init(&s->msg, 1 << 24);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) || listen(s->lfd, 8) ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &l))
		return -1;
	s->port = ntohs(a.sin_port);
	return pthread_create(&s->th, NULL, sink_main, s);
}

static void sink_stop(struct sink *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->lfd);
	hie_buf_free(&s->msg);
	pthread_mutex_destroy(&s->mu);
}

/* --- fixture: database, PKI, configuration, service, sink --------------------------------------------- */

static struct pgtest T;
static struct hie_db_pool *P;
static struct hie_cfg *cfg;
static struct hisp *H;
static struct sink S;
static char pki[64], state[64];

/* Splits line on blanks (no quoting needed here) and runs the command with its output in out/err. */
static int cli(int (*fn)(const struct hisp_cli *, int, char **), const char *line, char *out, size_t outlen)
{
	char copy[2048], *argv[40], *save = NULL;
	int argc = 0;
	snprintf(copy, sizeof copy, "%s", line);
	for (char *p = strtok_r(copy, " ", &save); p && argc < 40; p = strtok_r(NULL, " ", &save))
		argv[argc++] = p;
	char *obuf = NULL, *ebuf = NULL;
	size_t olen = 0, elen = 0;
	FILE *o = open_memstream(&obuf, &olen), *e = open_memstream(&ebuf, &elen);
	struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state, .out = o, .err = e};
	int rc = fn(&c, argc, argv);
	fclose(o);
	fclose(e);
	if (rc)
		fprintf(stderr, "cli '%s' → %d: %s%s", line, rc, obuf, ebuf);
	if (out)
		snprintf(out, outlen, "%s", obuf);
	free(obuf);
	free(ebuf);
	return rc;
}

static int group_setup(void **state_)
{
	(void)state_;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {hisp_migrations, hisp_migrations_count}};
	if (pgtest_open(&T, 4, schema, 2, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	snprintf(pki, sizeof pki, "/tmp/hsendpki.XXXXXX");
	snprintf(state, sizeof state, "/tmp/hsendst.XXXXXX");
	if (!mkdtemp(pki) || !mkdtemp(state))
		return -1;
	const char *src = getenv("HIENODE_SRC");
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s/tests/fixtures/direct/mkpki.sh %s", src ? src : "/work/main", pki);
	if (system(cmd) != 0) {
		fprintf(stderr, "mkpki.sh failed\n");
		return -1;
	}
	if (sink_start(&S) != 0)
		return -1;

	char e[256], line[512];
	hie_cfg_register(hisp_config_keys, hisp_config_nkeys);
	if (hie_cfg_load(&cfg, NULL, e, sizeof e) != HIE_OK ||
	    hie_cfg_set(cfg, "direct", "hostname", "hisp.a.test", e, sizeof e) != HIE_OK ||
	    hie_cfg_set(cfg, "direct", "smtp_tls", "none", e, sizeof e) != HIE_OK ||
	    hie_cfg_set(cfg, "direct", "smtp_timeout", "5s", e, sizeof e) != HIE_OK ||
	    hie_cfg_set(cfg, "direct", "dns_server", "127.0.0.1:9", e, sizeof e) != HIE_OK ||
	    hie_cfg_set(cfg, "direct", "cert_cache_ttl", "0", e, sizeof e) != HIE_OK) {
		fprintf(stderr, "config: %s\n", e);
		return -1;
	}
	if (cli(hisp_cli_domain, "add a.test", NULL, 0) ||
	    (snprintf(line, sizeof line, "import --address alice@a.test --cert %s/alice.pem --key %s/alice.key", pki,
		      pki),
	     cli(hisp_cli_cert, line, NULL, 0)) ||
	    (snprintf(line, sizeof line, "import --address bob@b.test --cert %s/bob.pem", pki),
	     cli(hisp_cli_cert, line, NULL, 0)) ||
	    (snprintf(line, sizeof line, "import --domain b.test --cert %s/b-org.pem", pki),
	     cli(hisp_cli_cert, line, NULL, 0)) ||
	    (snprintf(line, sizeof line, "add --domain a.test --anchor %s/ca.pem --direction both", pki),
	     cli(hisp_cli_trust, line, NULL, 0)) ||
	    (snprintf(line, sizeof line, "add b.test 127.0.0.1:%d", S.port), cli(hisp_cli_route, line, NULL, 0)))
		return -1;
	if (hisp_service_open(cfg, P, state, &H) != HIE_OK)
		return -1;
	return 0;
}

static int group_teardown(void **state_)
{
	(void)state_;
	if (!T.skip) {
		hisp_service_close(H);
		sink_stop(&S);
		hie_cfg_free(cfg);
		char cmd[200];
		snprintf(cmd, sizeof cmd, "rm -rf %s %s", pki, state);
		if (!getenv("PGTEST_KEEP") && system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", pki);
	}
	pgtest_close(&T, P);
	return 0;
}

static long long outbound_id(const char *msgid)
{
	return pgtest_scalar(P, "SELECT id FROM hisp_outbound WHERE message_id = $1", msgid);
}

static hie_err_t run_job(long long id, int attempt, int max, char *errbuf, size_t errlen)
{
	char payload[24];
	snprintf(payload, sizeof payload, "%lld", id);
	struct hie_job job = {.id = 1, .kind = "hisp.send", .payload = payload, .attempts = attempt, .max_attempts = max};
	errbuf[0] = 0;
	return hisp_send_job(&job, H, errbuf, errlen);
}

static long long rcpt_in(long long id, const char *addr, const char *st)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM hisp_outbound_rcpt WHERE outbound_id = %lld AND address = $1 AND state = '%s'", id,
		 st);
	return pgtest_scalar(P, sql, addr);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* True when the header block hdr (NUL-terminated) has a field called name (case-insensitive). */
static bool has_field(const char *hdr, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = hdr; p; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL)
		if (strncasecmp(p, name, n) == 0 && p[n] == ':')
			return true;
	return false;
}

static void test_send_and_retry(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	char path[128], out[512];
	snprintf(path, sizeof path, "%s/body.txt", state);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("Dear Bob,\n.\nplease see the attached summary.\n", f);
	fclose(f);
	char line[1024];
	snprintf(line, sizeof line,
		 "--from Alice@A.test --to bob@b.test --to bad@b.test --cc later@b.test --subject Referral-J.Smith"
		 " --body %s --attach %s/alice.pem",
		 path, pki);
	assert_int_equal(cli(hisp_cli_send, line, out, sizeof out), 0);
	out[strcspn(out, "\n")] = 0;
	assert_true(strlen(out) > 10);
	long long id = outbound_id(out);
	assert_true(id > 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.send' AND payload = $1::text",
				       (snprintf(line, sizeof line, "%lld", id), line)),
			 1);

	/* first attempt: bob accepted, bad refused (DSN), later deferred */
	char err[256];
	assert_int_equal(run_job(id, 1, 3, err, sizeof err), HIE_EIO);
	assert_non_null(strstr(err, "deferred: 1 recipients"));
	assert_int_equal(rcpt_in(id, "bob@b.test", "sent"), 1);
	assert_int_equal(rcpt_in(id, "bad@b.test", "failed"), 1);
	assert_int_equal(rcpt_in(id, "later@b.test", "pending"), 1);
	assert_true(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE address = $1 AND kind = 'dsn'",
				  "alice@a.test") >= 1);
	pthread_mutex_lock(&S.mu);
	int tr1 = S.transactions;
	char from1[256], rcpts1[512];
	snprintf(from1, sizeof from1, "%s", S.mail_from);
	snprintf(rcpts1, sizeof rcpts1, "%s", S.rcpts);
	char *wire = strdup(S.msg.data);
	size_t wire_len = S.msg.len;
	pthread_mutex_unlock(&S.mu);
	assert_int_equal(tr1, 1);
	assert_string_equal(from1, "alice@a.test");
	assert_string_equal(rcpts1, "bad@b.test,bob@b.test,later@b.test,");

	/* outer headers: routing only, no Subject */
	char *hend = strstr(wire, "\r\n\r\n");
	assert_non_null(hend);
	*hend = 0;
	assert_non_null(strstr(wire, "From: alice@a.test\r\n"));
	assert_non_null(strstr(wire, "To: bob@b.test,\r\n bad@b.test\r\n"));
	assert_non_null(strstr(wire, "Cc: later@b.test\r\n"));
	snprintf(line, sizeof line, "Message-ID: <%s>\r\n", out);
	assert_non_null(strstr(wire, line));
	assert_non_null(strstr(wire, "Date: "));
	assert_non_null(strstr(wire, "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY"));
	assert_false(has_field(wire, "Subject"));
	assert_null(strstr(wire, "Referral"));
	assert_non_null(strstr(wire, "application/pkcs7-mime"));
	*hend = '\r';

	/* the receiver's view: decrypt with bob's key, verify against the CA; the sender's own key decrypts too */
	snprintf(path, sizeof path, "%s/wire.eml", state);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(wire, 1, wire_len, f), wire_len);
	fclose(f);
	free(wire);
	assert_int_equal(sh("openssl cms -decrypt -in %s/wire.eml -recip %s/bob.pem -inkey %s/bob.key -out %s/dec.eml"
			    " 2>%s/openssl.err",
			    state, pki, pki, state, state),
			 0);
	assert_int_equal(sh("openssl cms -decrypt -in %s/wire.eml -recip %s/alice.pem -inkey %s/alice.key"
			    " -out /dev/null 2>>%s/openssl.err",
			    state, pki, pki, state),
			 0);
	assert_int_equal(sh("openssl cms -verify -in %s/dec.eml -CAfile %s/ca.pem -purpose any -out %s/inner.eml"
			    " 2>>%s/openssl.err",
			    state, pki, state, state),
			 0);
	/* the signed content is the message/rfc822 wrapping of the plain message: Subject inside */
	assert_int_equal(sh("grep -q '^Subject: Referral-J.Smith' %s/inner.eml", state), 0);
	assert_int_equal(sh("grep -qi '^Content-Type: message/rfc822' %s/inner.eml", state), 0);
	/* a tampered copy does not verify */
	assert_int_equal(sh("sed 's/Referral-J.Smith/Referral-X.Smith/' %s/dec.eml > %s/bad.eml", state, state), 0);
	assert_true(sh("openssl cms -verify -in %s/bad.eml -CAfile %s/ca.pem -purpose any -out /dev/null 2>/dev/null",
		       state, pki) != 0);

	/* the retry touches only the pending recipient; last attempt: given up with 4.4.1 */
	assert_int_equal(run_job(id, 3, 3, err, sizeof err), HIE_OK);
	char seen[512];
	int tr;
	pthread_mutex_lock(&S.mu);
	snprintf(seen, sizeof seen, "%s", S.rcpts);
	tr = S.transactions;
	pthread_mutex_unlock(&S.mu);
	assert_string_equal(seen, "later@b.test,");
	assert_int_equal(tr, 1); /* no second message: the only recipient was deferred */
	assert_int_equal(rcpt_in(id, "later@b.test", "failed"), 1);
	assert_int_equal(rcpt_in(id, "bob@b.test", "sent"), 1);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_outbound_rcpt WHERE address = $1 AND reason LIKE"
				       " '%could not deliver%'",
				       "later@b.test"),
			 1);

	/* nothing pending: a third run does nothing */
	pthread_mutex_lock(&S.mu);
	S.rcpts[0] = 0;
	pthread_mutex_unlock(&S.mu);
	assert_int_equal(run_job(id, 1, 3, err, sizeof err), HIE_OK);
	pthread_mutex_lock(&S.mu);
	snprintf(seen, sizeof seen, "%s", S.rcpts);
	pthread_mutex_unlock(&S.mu);
	assert_string_equal(seen, "");
}

static void test_cli_refusals(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	const struct {
		const char *line;
		int rc;
	} cases[] = {
		{"--from bob@b.test --to alice@a.test --subject s", 2},          /* not local */
		{"--from carol@a.test --to bob@b.test --subject s", 2},          /* local domain, no signing cert */
		{"--from alice@a.test --subject s", 2},                          /* no --to */
		{"--from alice@a.test --to bob@b.test --subject s --bcc x@y", 2}, /* no Bcc in Direct */
		{"--from alice@a.test --to bob@b.test --subject s --body /nonexistent/file", 1},
		{"--from alice@a.test --to not-an-address --subject s", 2},
	};
	long long before = pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = cli(hisp_cli_send, cases[i].line, NULL, 0);
		if (rc != cases[i].rc)
			fail_msg("'%s': exit %d, want %d", cases[i].line, rc, cases[i].rc);
	}
	/* [smtp] max_message_size caps each file and the composed message */
	char e[256], path[128], line[512];
	snprintf(path, sizeof path, "%s/big.bin", state);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	for (int i = 0; i < 2000; i++)
		fputc('x', f);
	fclose(f);
	assert_int_equal(hie_cfg_set(cfg, "smtp", "max_message_size", "1500", e, sizeof e), HIE_OK);
	snprintf(line, sizeof line, "--from alice@a.test --to bob@b.test --subject s --attach %s", path);
	int rc_big = cli(hisp_cli_send, line, NULL, 0);
	snprintf(line, sizeof line, "--from alice@a.test --to bob@b.test --subject s --body %s", path);
	int rc_body = cli(hisp_cli_send, line, NULL, 0);
	assert_int_equal(hie_cfg_set(cfg, "smtp", "max_message_size", "64M", e, sizeof e), HIE_OK);
	assert_int_equal(rc_big, 2);
	assert_int_equal(rc_body, 2);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), before);
}

/* A partner policy: AES-256-GCM (AuthEnvelopedData) for b.test, still readable by openssl cms. */
static void test_policy_gcm(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	char out[512], err[256];
	assert_int_equal(cli(hisp_cli_domain, "policy b.test --cipher aes256-gcm", NULL, 0), 0);
	assert_int_equal(cli(hisp_cli_send, "--from alice@a.test --to bob@b.test --subject gcm", out, sizeof out), 0);
	out[strcspn(out, "\n")] = 0;
	long long id = outbound_id(out);
	assert_int_equal(run_job(id, 1, 3, err, sizeof err), HIE_OK);
	assert_int_equal(rcpt_in(id, "bob@b.test", "sent"), 1);
	char path[128];
	snprintf(path, sizeof path, "%s/gcm.eml", state);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	pthread_mutex_lock(&S.mu);
	fwrite(S.msg.data, 1, S.msg.len, f);
	pthread_mutex_unlock(&S.mu);
	fclose(f);
	assert_int_equal(sh("openssl cms -cmsout -print -in %s/gcm.eml 2>/dev/null | grep -q -i 'aes-256-gcm\\|id-aes256-GCM'",
			    state),
			 0);
	assert_int_equal(sh("openssl cms -decrypt -in %s/gcm.eml -recip %s/bob.pem -inkey %s/bob.key -out %s/gcm.dec"
			    " 2>/dev/null && openssl cms -verify -in %s/gcm.dec -CAfile %s/ca.pem -purpose any"
			    " -out /dev/null 2>/dev/null",
			    state, pki, pki, state, state, pki),
			 0);
	assert_int_equal(cli(hisp_cli_domain, "policy b.test --cipher default", NULL, 0), 0);
}

struct notice_arg {
	const char *msgid, *rcpt;
	long long id;
};

static hie_err_t submit_mdn(PGconn *tx, void *arg)
{
	struct notice_arg *n = arg;
	const char *rcpts[] = {n->rcpt};
	char raw[512];
	int len = snprintf(raw, sizeof raw,
			   "From: alice@a.test\r\nTo: %s\r\nDate: Sun, 22 Nov 2026 05:50:46 +0000\r\n"
			   "Message-ID: <%s>\r\nSubject: Processed: x\r\nMIME-Version: 1.0\r\n"
			   "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n"
			   "Content-Type: text/plain\r\n\r\nprocessed\r\n",
			   n->rcpt, n->msgid);
	return hisp_outbound_submit(tx, "mdn", "alice@a.test", rcpts, 1, raw, (size_t)len, n->msgid, false, 0, &n->id);
}

/* An MDN we send: refused by the peer → failed, but no DSN about it (no notice about a notice), and no
 * Disposition-Notification-Options on the outside. */
static void test_notice_no_dsn(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long dsns = pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE kind = 'dsn'", NULL);
	struct notice_arg n = {.msgid = "mdn-1@a.test", .rcpt = "bad@b.test"};
	assert_int_equal(hie_db_tx(P, submit_mdn, &n), HIE_OK);
	char err[256];
	assert_int_equal(run_job(n.id, 1, 3, err, sizeof err), HIE_OK);
	assert_int_equal(rcpt_in(n.id, "bad@b.test", "failed"), 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE kind = 'dsn'", NULL), dsns);

	struct notice_arg ok = {.msgid = "mdn-2@a.test", .rcpt = "bob@b.test"};
	assert_int_equal(hie_db_tx(P, submit_mdn, &ok), HIE_OK);
	assert_int_equal(run_job(ok.id, 1, 3, err, sizeof err), HIE_OK);
	assert_int_equal(rcpt_in(ok.id, "bob@b.test", "sent"), 1);
	pthread_mutex_lock(&S.mu);
	char *m = strdup(S.msg.data);
	pthread_mutex_unlock(&S.mu);
	char *hend = strstr(m, "\r\n\r\n");
	assert_non_null(hend);
	*hend = 0;
	assert_non_null(strstr(m, "Message-ID: <mdn-2@a.test>"));
	assert_false(has_field(m, "Disposition-Notification-Options"));
	assert_false(has_field(m, "Subject"));
	free(m);
}

/* A recipient whose certificate cannot be looked up now (the DNS server does not answer) stays pending:
 * the sender is not told "no certificate" because of an outage. */
static void test_discovery_outage_defers(void **state_)
{
	(void)state_;
	PGTEST_SKIP_IF_NEEDED(&T);
	char out[512], err[256];
	assert_int_equal(cli(hisp_cli_send, "--from alice@a.test --to dave@c.test --subject s", out, sizeof out), 0);
	out[strcspn(out, "\n")] = 0;
	long long id = outbound_id(out);
	hie_err_t e = run_job(id, 1, 3, err, sizeof err);
	fprintf(stderr, "discovery outage: %s (%s)\n", hie_errname(e), err);
	assert_int_equal(e, HIE_EIO);
	assert_int_equal(rcpt_in(id, "dave@c.test", "pending"), 1);
	assert_non_null(strstr(err, "deferred: 1 recipients"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_and_retry),
		cmocka_unit_test(test_cli_refusals),
		cmocka_unit_test(test_policy_gcm),
		cmocka_unit_test(test_notice_no_dsn),
		cmocka_unit_test(test_discovery_outage_defers),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
