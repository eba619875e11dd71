/*
 * core_tls_test.c — server and client contexts: loading and refusing PEM files, the TLS 1.2 floor,
 * hostname and IP verification, untrusted servers, required client certificates, error conversion.
 * Handshakes run in memory over BIO pairs (the socket side is in core_net_test.c).
 *
 * Certificates (a CA, a server cert for localhost/127.0.0.1, a client cert) are made with the openssl
 * command in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certtest.h"
#include "core/core_log.h"
#include "core/core_tls.h"

static struct certtest CT;
static char missing[128];

static int make_certs(void)
{
	if (certtest_make(&CT, "hie_tls_test_") != 0)
		return -1;
	snprintf(missing, sizeof missing, "%s/nope.pem", CT.dir);
	return 0;
}

static int nwarn;

static void sink(enum hie_log_level level, const char *line, size_t len)
{
	if (level >= HIE_LOG_WARN)
		nwarn++;
}

/* --- in-memory handshake ------------------------------------------------------------------------ */

struct hs {
	bool client_ok, server_ok;
	char peer_subject[256]; /* the client certificate the server saw */
};

/* Runs both sides over a BIO pair until each has finished or failed. host NULL: no name check. */
static struct hs handshake(SSL_CTX *sctx, SSL_CTX *cctx, const char *host)
{
	struct hs r = { 0 };
	SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
	BIO *bs, *bc;
	assert_non_null(s);
	assert_non_null(c);
	assert_int_equal(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
	SSL_set_bio(s, bs, bs);
	SSL_set_bio(c, bc, bc);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	if (host)
		assert_int_equal(hie_tls_set_peer_host(c, host), HIE_OK);
	int cs = 0, ss = 0; /* 0 running, 1 done, -1 failed */
	for (int i = 0; i < 50 && (cs == 0 || ss == 0); i++) {
		if (cs == 0) {
			int k = SSL_do_handshake(c);
			int e = SSL_get_error(c, k);
			cs = k == 1 ? 1 : (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? 0 : -1;
		}
		if (ss == 0) {
			int k = SSL_do_handshake(s);
			int e = SSL_get_error(s, k);
			ss = k == 1 ? 1 : (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? 0 : -1;
		}
		if (cs == -1 || ss == -1)
			break;
	}
	r.client_ok = cs == 1;
	r.server_ok = ss == 1;
	if (r.server_ok)
		hie_tls_cert_subject(SSL_get0_peer_certificate(s), r.peer_subject, sizeof r.peer_subject);
	SSL_free(s);
	SSL_free(c);
	ERR_clear_error();
	return r;
}

/* --- tests -------------------------------------------------------------------------------------- */

static void test_server_ctx_loading(void **state)
{
	static const struct {
		const char *name;
		const char *cert, *key, *ca;
		bool verify;
		hie_err_t want;
	} cases[] = {
		{ .name = "plain", .cert = CT.srv_pem, .key = CT.srv_key, .want = HIE_OK },
		{ .name = "mtls", .cert = CT.srv_pem, .key = CT.srv_key,
		  .ca = CT.ca_pem, .verify = true, .want = HIE_OK },
		{ .name = "ca_dir", .cert = CT.srv_pem, .key = CT.srv_key,
		  .ca = CT.dir, .verify = true, .want = HIE_OK },
		{ .name = "verify_without_ca", .cert = CT.srv_pem, .key = CT.srv_key,
		  .verify = true, .want = HIE_EINVAL },
		{ .name = "missing_cert", .cert = missing, .key = CT.srv_key,
		  .want = HIE_ETLS },
		{ .name = "missing_key", .cert = CT.srv_pem, .key = missing,
		  .want = HIE_ETLS },
		{ .name = "key_mismatch", .cert = CT.srv_pem, .key = CT.cli_key,
		  .want = HIE_ETLS },
		{ .name = "key_as_cert", .cert = CT.srv_key, .key = CT.srv_key,
		  .want = HIE_ETLS },
		{ .name = "missing_ca", .cert = CT.srv_pem, .key = CT.srv_key,
		  .ca = missing, .verify = true, .want = HIE_ECONFIG },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		SSL_CTX *ctx = (SSL_CTX *)&ctx; /* must be reset to NULL on failure */
		hie_err_t err = hie_tls_server_ctx(cases[i].cert, cases[i].key, cases[i].ca,
						   cases[i].verify, &ctx);
		if (err != cases[i].want)
			fail_msg("%s: got %s want %s", cases[i].name, hie_errname(err), hie_errname(cases[i].want));
		if (err) {
			assert_null(ctx);
			assert_int_equal(ERR_peek_error(), 0); /* logged and cleared */
		} else {
			assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
		}
		hie_tls_ctx_free(ctx);
	}
}

static void test_client_ctx_loading(void **state)
{
	SSL_CTX *ctx;
	assert_int_equal(hie_tls_client_ctx(NULL, NULL, NULL, &ctx), HIE_OK); /* system store */
	assert_int_equal(SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	hie_tls_ctx_free(ctx);
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, CT.cli_pem, CT.cli_key, &ctx), HIE_OK);
	hie_tls_ctx_free(ctx);
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, CT.cli_pem, NULL, &ctx), HIE_EINVAL);
	assert_null(ctx);
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, NULL, CT.cli_key, &ctx), HIE_EINVAL);
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, CT.cli_pem, CT.srv_key, &ctx), HIE_ETLS);
	assert_int_equal(hie_tls_client_ctx(missing, NULL, NULL, &ctx), HIE_ECONFIG);
	hie_tls_ctx_free(NULL);
}

static void test_peer_verification(void **state)
{
	static const struct {
		const char *host;
		bool trusted_ca; /* false: the client trusts only an unrelated (non-CA) certificate */
		bool ok;
	} cases[] = {
		{ .host = "localhost", .trusted_ca = true, .ok = true },
		{ .host = "LOCALHOST", .trusted_ca = true, .ok = true },
		{ .host = "127.0.0.1", .trusted_ca = true, .ok = true },
		{ .host = "other.example", .trusted_ca = true, .ok = false },
		{ .host = "localhost.evil.example", .trusted_ca = true, .ok = false },
		{ .host = "127.0.0.2", .trusted_ca = true, .ok = false },
		{ .host = "::1", .trusted_ca = true, .ok = false },
		{ .host = "localhost", .trusted_ca = false, .ok = false },
	};
	SSL_CTX *sctx;
	assert_int_equal(hie_tls_server_ctx(CT.srv_pem, CT.srv_key, NULL, false, &sctx), HIE_OK);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		SSL_CTX *cctx;
		assert_int_equal(hie_tls_client_ctx(cases[i].trusted_ca ? CT.ca_pem : CT.cli_pem, NULL, NULL, &cctx),
				 HIE_OK);
		struct hs r = handshake(sctx, cctx, cases[i].host);
		if (r.client_ok != cases[i].ok)
			fail_msg("%s (trusted=%d): client_ok=%d", cases[i].host, cases[i].trusted_ca, r.client_ok);
		hie_tls_ctx_free(cctx);
	}
	hie_tls_ctx_free(sctx);
}

static void test_old_protocols_refused(void **state)
{
	SSL_CTX *sctx, *old;
	assert_int_equal(hie_tls_server_ctx(CT.srv_pem, CT.srv_key, NULL, false, &sctx), HIE_OK);
	/* A client that speaks at most TLS 1.1 (and no verification, to isolate the version). */
	old = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
	SSL_CTX_set_security_level(old, 0);
	SSL_CTX_set_verify(old, SSL_VERIFY_NONE, NULL);
	struct hs r = handshake(sctx, old, NULL);
	assert_false(r.server_ok);
	assert_false(r.client_ok);
	SSL_CTX_free(old);
	hie_tls_ctx_free(sctx);
}

static void test_client_cert_required(void **state)
{
	SSL_CTX *sctx, *anon, *mine, *opt;
	assert_int_equal(hie_tls_server_ctx(CT.srv_pem, CT.srv_key, CT.ca_pem, true, &sctx), HIE_OK);
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, NULL, NULL, &anon), HIE_OK);
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, CT.cli_pem, CT.cli_key, &mine), HIE_OK);

	struct hs r = handshake(sctx, anon, "localhost");
	assert_false(r.server_ok);

	r = handshake(sctx, mine, "localhost");
	assert_true(r.server_ok);
	assert_true(r.client_ok);
	assert_string_equal(r.peer_subject, "CN=client.test");

	/* Without verify_client a certificate is not asked for. */
	assert_int_equal(hie_tls_server_ctx(CT.srv_pem, CT.srv_key, NULL, false, &opt), HIE_OK);
	r = handshake(opt, anon, "localhost");
	assert_true(r.server_ok);
	assert_string_equal(r.peer_subject, "");

	/* A client certificate from an issuer the server does not trust is refused. */
	SSL_CTX *strict;
	assert_int_equal(hie_tls_server_ctx(CT.srv_pem, CT.srv_key, CT.srv_pem, true, &strict), HIE_OK);
	r = handshake(strict, mine, "localhost");
	assert_false(r.server_ok);

	hie_tls_ctx_free(sctx);
	hie_tls_ctx_free(anon);
	hie_tls_ctx_free(mine);
	hie_tls_ctx_free(opt);
	hie_tls_ctx_free(strict);
}

static void test_set_peer_host_rejects_empty(void **state)
{
	SSL_CTX *cctx;
	assert_int_equal(hie_tls_client_ctx(CT.ca_pem, NULL, NULL, &cctx), HIE_OK);
	SSL *ssl = SSL_new(cctx);
	assert_int_equal(hie_tls_set_peer_host(ssl, ""), HIE_EINVAL);
	assert_int_equal(hie_tls_set_peer_host(ssl, NULL), HIE_EINVAL);
	SSL_free(ssl);
	hie_tls_ctx_free(cctx);
}

static void test_error_queue_logged_and_cleared(void **state)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate_file(ctx, missing, SSL_FILETYPE_PEM), 0);
	assert_int_not_equal(ERR_peek_error(), 0);
	nwarn = 0;
	assert_int_equal(hie_tls_error("test"), HIE_ETLS);
	assert_true(nwarn > 0);
	assert_int_equal(ERR_peek_error(), 0);
	SSL_CTX_free(ctx);
}

static void test_cert_subject(void **state)
{
	char buf[8];
	hie_tls_cert_subject(NULL, buf, sizeof buf);
	assert_string_equal(buf, "");
	BIO *bio = BIO_new_file(CT.cli_pem, "r");
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(x);
	hie_tls_cert_subject(x, buf, sizeof buf); /* cut to 7 bytes */
	assert_string_equal(buf, "CN=clie");
	char full[128];
	hie_tls_cert_subject(x, full, sizeof full);
	assert_string_equal(full, "CN=client.test");
	X509_free(x);
	BIO_free(bio);
}

static int group_setup(void **state)
{
	hie_log_set_sink(sink);
	return make_certs();
}

static int group_teardown(void **state)
{
	return certtest_remove(&CT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_ctx_loading),
		cmocka_unit_test(test_client_ctx_loading),
		cmocka_unit_test(test_peer_verification),
		cmocka_unit_test(test_old_protocols_refused),
		cmocka_unit_test(test_client_cert_required),
		cmocka_unit_test(test_set_peer_host_rejects_empty),
		cmocka_unit_test(test_error_queue_logged_and_cleared),
		cmocka_unit_test(test_cert_subject),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
