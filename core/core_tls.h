/*
 * core_tls.h — OpenSSL contexts for servers (SMTP, MLLP, HTTPS) and clients (SMTP out, partner gateways).
 *
 * Every context built here speaks TLS 1.2 or later with a short list of AEAD cipher suites, no
 * compression, no renegotiation. Client contexts always verify the peer (the system store when no CA is
 * given); set the expected name on each connection with hie_tls_set_peer_host(). A server context can
 * require a client certificate chained to a given CA (mutual TLS for partner gateways).
 *
 * Entry points: hie_tls_server_ctx, hie_tls_client_ctx, hie_tls_set_peer_host, hie_tls_ctx_free,
 * hie_tls_error, hie_tls_cert_subject.
 * Errors: HIE_EINVAL (bad arguments), HIE_ETLS (OpenSSL refused: the error queue is logged and cleared),
 * HIE_ENOMEM.
 */
#ifndef HIENODE_CORE_TLS_H
#define HIENODE_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/core_err.h"

/*
 * A server context from PEM files: cert_pem (leaf first, then intermediates), key_pem (unencrypted).
 * ca_path (a PEM file or a hashed directory, or NULL) is the trust for client certificates; with
 * verify_client the handshake fails unless the client presents a certificate that chains to it
 * (verify_client without ca_path is HIE_EINVAL). On success *out belongs to the caller
 * (hie_tls_ctx_free); it may be shared by any number of connections and threads.
 */
hie_err_t hie_tls_server_ctx(const char *cert_pem, const char *key_pem, const char *ca_path,
			     bool verify_client, SSL_CTX **out);

/*
 * A client context. ca_path (PEM file or hashed directory) is the trust; NULL uses the system default
 * store. cert_pem/key_pem (both or neither) are the client certificate for mutual TLS. Peers are always
 * verified. On success *out belongs to the caller (hie_tls_ctx_free).
 */
hie_err_t hie_tls_client_ctx(const char *ca_path, const char *cert_pem, const char *key_pem, SSL_CTX **out);

/*
 * Before a client handshake: the peer must present a certificate for host (a DNS name, or an IPv4/IPv6
 * literal matched against the IP SANs); a DNS name is also sent as SNI. HIE_EINVAL for an empty name,
 * HIE_ETLS if OpenSSL refuses.
 */
hie_err_t hie_tls_set_peer_host(SSL *ssl, const char *host);

/* Frees a context from this file; NULL is ignored. */
void hie_tls_ctx_free(SSL_CTX *ctx);

/*
 * Logs every entry of this thread's OpenSSL error queue (event=tls.error what=<what> ...), clears the
 * queue and returns HIE_ETLS. Use it to convert an OpenSSL failure at the boundary.
 */
hie_err_t hie_tls_error(const char *what);

/*
 * Writes the certificate's subject as a one-line RFC 2253 string into dst (cut to dstlen-1 bytes, always
 * NUL-terminated; "" for NULL cert). Peer-chosen text: pass it through hie_log_printable before logging.
 */
void hie_tls_cert_subject(X509 *cert, char *dst, size_t dstlen);

#endif
