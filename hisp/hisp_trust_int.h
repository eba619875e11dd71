/*
 * hisp_trust_int.h — private helpers shared by hisp_keys.c, hisp_trust.c, hisp_bundle.c and
 * hisp_cli_*.c (not part of the module's contract; other helpers use hisp_trust.h).
 *
 *   hisp_http_get        one HTTP(S) download with libcurl: peers verified, deadline, size cap
 *   hisp_cert_*          certificate helpers: fingerprint, binding, PEM/DER loading, subject text
 *   hisp_keys_store_key  writes our private key under <state_dir>/keys atomically (0600, dir 0700)
 *   hisp_anchor_insert   one anchor row (trust add by hand, bundle refresh)
 *   hisp_trust_pool / hisp_trust_options   what hisp_bundle_refresh needs from struct hisp_trust
 */
#ifndef HIENODE_HISP_TRUST_INT_H
#define HIENODE_HISP_TRUST_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/core_buf.h"
#include "hisp/hisp_trust.h"

#define HISP_FP_LEN 64 /* SHA-256 hex */

/*
 * GET url (http:// or https:// only; at most 3 redirects within those) into out (whose cap bounds the
 * size; also the Content-Length). HIE_ETIMEOUT, HIE_ETOOBIG, HIE_EIO (connection, TLS, HTTP status >= 400),
 * HIE_EINVAL (scheme). reason gets a short text for logs (never the body).
 */
hie_err_t hisp_http_get(const char *url, int timeout_ms, struct hie_buf *out, char *reason, size_t rlen);

/* Lower-case hex SHA-256 of the DER (out: at least HISP_FP_LEN + 1 bytes). */
hie_err_t hisp_cert_fingerprint(X509 *x, char *out, size_t outlen);
/* Binding rule of AS 1.3: SAN rfc822Name equal to address (case-insensitive) → *bound = "address";
 * SAN dNSName equal to the address's domain (or to the domain itself) → "domain". false when neither. */
bool hisp_cert_binds(X509 *x, const char *addr_or_domain, bool *domain_bound);
/* First certificate of a PEM or DER buffer (caller frees). NULL when none parses. */
X509 *hisp_cert_from_buf(const unsigned char *data, size_t len);
/* Subject as RFC 2253 text with non-ASCII escaped. */
void hisp_cert_subject(X509 *x, char *out, size_t outlen);
/* notAfter / notBefore as "YYYY-MM-DD HH:MM:SSZ" (UTC); "" if unreadable. */
void hisp_cert_time(const ASN1_TIME *t, char *out, size_t outlen);
/* Reads a whole file of at most max bytes. HIE_EIO, HIE_ETOOBIG. */
hie_err_t hisp_read_file(const char *path, size_t max, struct hie_buf *out);

/* Writes key as unencrypted PKCS#8 PEM to <state_dir>/keys/<fp>.pem: temp file 0600, fsync, rename, fsync
 * of the directory (created 0700). name receives "<fp>.pem". HIE_ESYS/HIE_EIO on failure (logged, no key). */
hie_err_t hisp_keys_store_key(const char *state_dir, const char *fp, EVP_PKEY *key, char *name, size_t namelen);
/* Removes <state_dir>/keys/<name> (a name without '/'); a missing file is not an error. */
hie_err_t hisp_keys_remove_key(const char *state_dir, const char *name);

/*
 * Inserts x as an anchor of domain for direction inside the caller's transaction; bundle_id NULL for one added
 * by hand (ON CONFLICT DO NOTHING: *added tells whether a row went in). fp (HISP_FP_LEN + 1 bytes) and subject
 * receive the certificate's fingerprint and subject for the caller's output. HIE_ETLS (cannot encode), HIE_EDB.
 */
hie_err_t hisp_anchor_insert(PGconn *conn, const char *domain, const char *direction, const char *bundle_id, X509 *x,
			     char *fp, char *subject, size_t slen, bool *added);

struct hie_db_pool *hisp_trust_pool(const struct hisp_trust *t);
const struct hisp_trust_opts *hisp_trust_options(const struct hisp_trust *t);

#endif
