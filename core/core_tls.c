/*
 * core_tls.c — OpenSSL server and client contexts with the project's TLS policy. See core_tls.h.
 */
#include "core/core_tls.h"

#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/core_log.h"

/*
 * TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate"). TLS 1.3 suites are OpenSSL's
 * defaults, which are all AEAD.
 */
static const char tls12_ciphers[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

/* A session id context is required when client certificates are verified and sessions are resumed. */
static const unsigned char sid_ctx[] = "hienode";

hie_err_t hie_tls_error(const char *what)
{
	const char *file, *func, *data;
	int line, flags;
	unsigned long e;
	char msg[256], safe[256];

	while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
		ERR_error_string_n(e, msg, sizeof msg);
		hie_log_printable(safe, sizeof safe, msg, strlen(msg));
		if ((flags & ERR_TXT_STRING) && data && *data) {
			char extra[128];
			hie_log_printable(extra, sizeof extra, data, strlen(data));
			hie_log(HIE_LOG_WARN, "event=tls.error what=%s error=%s data=%s", what, safe, extra);
		} else {
			hie_log(HIE_LOG_WARN, "event=tls.error what=%s error=%s", what, safe);
		}
	}
	return HIE_ETLS;
}

static hie_err_t ctx_new(const SSL_METHOD *method, SSL_CTX **out)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx)
		return hie_tls_error("SSL_CTX_new");
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, tls12_ciphers)) {
		SSL_CTX_free(ctx);
		return hie_tls_error("ctx_policy");
	}
	/* OpenSSL 3 also refuses client-initiated renegotiation by default. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Non-blocking sockets: a retried SSL_write may be given a moved buffer; partial writes are fine. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	*out = ctx;
	return HIE_OK;
}

static hie_err_t load_trust(SSL_CTX *ctx, const char *ca_path)
{
	struct stat st;
	int ok;

	if (stat(ca_path, &st) != 0) {
		hie_log(HIE_LOG_ERR, "event=tls.ca_missing path=%s", ca_path);
		return HIE_ECONFIG;
	}
	if (S_ISDIR(st.st_mode))
		ok = SSL_CTX_load_verify_locations(ctx, NULL, ca_path);
	else
		ok = SSL_CTX_load_verify_locations(ctx, ca_path, NULL);
	if (!ok)
		return hie_tls_error("load_ca");
	return HIE_OK;
}

static hie_err_t load_cert_key(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1)
		return hie_tls_error("load_cert");
	if (SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1)
		return hie_tls_error("load_key");
	if (SSL_CTX_check_private_key(ctx) != 1)
		return hie_tls_error("key_mismatch");
	return HIE_OK;
}

hie_err_t hie_tls_server_ctx(const char *cert_pem, const char *key_pem, const char *ca_path,
			     bool verify_client, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	hie_err_t err;

	*out = NULL;
	if (!cert_pem || !key_pem || (verify_client && !ca_path))
		return HIE_EINVAL;
	err = ctx_new(TLS_server_method(), &ctx);
	if (err)
		goto out;
	err = load_cert_key(ctx, cert_pem, key_pem);
	if (err)
		goto out;
	if (!SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1)) {
		err = hie_tls_error("session_id_context");
		goto out;
	}
	if (ca_path) {
		err = load_trust(ctx, ca_path);
		if (err)
			goto out;
		struct stat st;
		if (stat(ca_path, &st) == 0 && !S_ISDIR(st.st_mode)) {
			/* Tell the client which issuers we accept, so it picks the right certificate. */
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_path);
			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
			ERR_clear_error();
		}
	}
	if (verify_client)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	*out = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	return err;
}

hie_err_t hie_tls_client_ctx(const char *ca_path, const char *cert_pem, const char *key_pem, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	hie_err_t err;

	*out = NULL;
	if ((cert_pem == NULL) != (key_pem == NULL))
		return HIE_EINVAL;
	err = ctx_new(TLS_client_method(), &ctx);
	if (err)
		goto out;
	if (ca_path) {
		err = load_trust(ctx, ca_path);
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		err = hie_tls_error("default_verify_paths");
	}
	if (err)
		goto out;
	if (cert_pem) {
		err = load_cert_key(ctx, cert_pem, key_pem);
		if (err)
			goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	*out = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	return err;
}

hie_err_t hie_tls_set_peer_host(SSL *ssl, const char *host)
{
	if (!host || !*host)
		return HIE_EINVAL;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* An address literal is matched against IP SANs and not sent as SNI (RFC 6066 §3). */
	ASN1_OCTET_STRING *lit = a2i_IPADDRESS(host);
	if (lit) {
		ASN1_OCTET_STRING_free(lit);
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		if (!X509_VERIFY_PARAM_set1_ip_asc(param, host))
			return hie_tls_error("set_peer_ip");
		return HIE_OK;
	}
	ERR_clear_error();
	if (!SSL_set1_host(ssl, host))
		return hie_tls_error("set_peer_host");
	if (!SSL_set_tlsext_host_name(ssl, host))
		return hie_tls_error("set_sni");
	return HIE_OK;
}

void hie_tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

void hie_tls_cert_subject(X509 *cert, char *dst, size_t dstlen)
{
	if (dstlen == 0)
		return;
	dst[0] = '\0';
	if (!cert)
		return;
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
		char *p;
		long n = BIO_get_mem_data(bio, &p);
		if (n > 0) {
			size_t k = (size_t)n < dstlen - 1 ? (size_t)n : dstlen - 1;
			memcpy(dst, p, k);
			dst[k] = '\0';
		}
	}
	BIO_free(bio);
	ERR_clear_error();
}
