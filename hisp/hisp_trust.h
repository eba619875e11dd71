/*
 * hisp_trust.h — our keys, partner certificates, trust anchors and bundles, and the one certificate check
 * that every path uses (receive: signers; send: discovered recipient certificates).
 *
 * Keys (hisp_keys.c): `hienode cert import` stores a certificate in hisp_certs and, with --key, its private
 * key under <state_dir>/keys/<fingerprint>.pem (0600, directory 0700; never logged). Our keypairs are loaded
 * once and cached in memory (reloaded when hisp_certs changes: the cache checks max(id)/count at most every
 * few seconds).
 *
 * Trust (hisp_trust.c): hisp_trust_check() decides whether a certificate may be used by an address for a
 * local domain in a direction, with a reason when not:
 *   - binding: subjectAltName rfc822Name equal to the address (case-insensitive), or dNSName equal to the
 *     address's domain (organization-bound); the subject e-mail attribute does not count;
 *   - validity period now; RSA key ≥ [direct] min_rsa_bits (2048); key usage fits the use (digitalSignature
 *     for signing, keyEncipherment for encryption; no keyUsage extension = any);
 *   - certificate signature algorithm not MD5/SHA-1 unless [direct] allow_sha1_certs (test only);
 *   - a chain of at most 5 to an anchor of the local domain for that direction (incoming or both /
 *     outgoing or both), intermediates from the CMS certificates, the store, or AIA caIssuers (HTTP,
 *     fetched with a timeout and cached in memory);
 *   - not revoked: CRLs from each certificate's CRL distribution points (HTTP, cached in hisp_crl_cache
 *     until nextUpdate); an unreachable CRL is logged and not treated as revoked (Direct RI behaviour).
 * Anchors are cached per (domain, direction) as an X509_STORE, reloaded when hisp_anchors changes.
 *
 * Bundles (hisp_bundle.c): PKCS#7 certs-only (.p7b, DER or PEM), CMS signed data (.p7m, signer verified
 * against signer_der when set), PEM bundles; fetched over HTTP(S) (libcurl, peers verified, timeout, size
 * cap), all-or-nothing replacement of that bundle's anchors in one transaction.
 */
#ifndef HIENODE_HISP_TRUST_H
#define HIENODE_HISP_TRUST_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <openssl/x509.h>

#include "core/core_db.h"
#include "core/core_err.h"
#include "core/core_jobs.h"
#include "hisp/hisp_smime.h"

enum hisp_direction { HISP_INCOMING = 1, HISP_OUTGOING = 2 };
enum hisp_usage { HISP_USE_SIGN = 1, HISP_USE_ENCRYPT = 2 };

/* Lower-cases an address or domain into out; HIE_EINVAL when it is not local@domain (or a bare domain when
 * allow_domain) of printable ASCII without spaces, at most 254 bytes. */
hie_err_t hisp_addr_normalize(const char *in, bool allow_domain, char *out, size_t outlen);
/* The domain part of a normalized address (pointer into it), or the string itself for a domain. */
const char *hisp_addr_domain(const char *addr);

/* --- keys (hisp_keys.c) --------------------------------------------------------------------------------- */

struct hisp_keys;
hie_err_t hisp_keys_open(struct hie_db_pool *pool, const char *state_dir, struct hisp_keys **out);
void hisp_keys_close(struct hisp_keys *k);
/*
 * Our keypairs usable by address for use (HISP_USE_SIGN or HISP_USE_ENCRYPT): the address-bound ones first,
 * then those bound to its domain; expired ones left out. *out is an array of *n keypairs whose cert and key
 * the caller frees with hisp_keypairs_free (references are counted, so this is cheap). HIE_ENOTFOUND when none.
 */
hie_err_t hisp_keys_find(struct hisp_keys *k, const char *address, enum hisp_usage use, struct hisp_keypair **out,
			 size_t *n);
void hisp_keypairs_free(struct hisp_keypair *kp, size_t n);
/* Partner certificates stored locally for address (address-bound) or its domain, as discovery's first source.
 * *out (caller frees with sk_X509_pop_free) may be empty. */
hie_err_t hisp_keys_partner_certs(struct hisp_keys *k, PGconn *conn, const char *address, STACK_OF(X509) **out);

/* --- trust (hisp_trust.c) ------------------------------------------------------------------------------- */

struct hisp_trust_opts {
	int min_rsa_bits;        /* [direct] min_rsa_bits */
	bool allow_sha1_certs;   /* [direct] allow_sha1_certs (test only) */
	int fetch_timeout_ms;    /* AIA and CRL downloads ([direct] fetch_timeout) */
	size_t fetch_max;        /* largest AIA certificate / CRL / bundle accepted */
};
struct hisp_trust;
hie_err_t hisp_trust_open(struct hie_db_pool *pool, const struct hisp_trust_opts *o, struct hisp_trust **out);
void hisp_trust_close(struct hisp_trust *t);
/* Drops the cached anchor stores (after the CLI or a bundle refresh changed them in this process). */
void hisp_trust_invalidate(struct hisp_trust *t);

/*
 * HIE_OK when cert may be used by address (bound to it) for use, in direction, for our local_domain;
 * HIE_EDENIED with reason ("expired", "revoked", "untrusted: no anchor", "not bound to a@b.org",
 * "rsa key 1024 bits", "key usage", "chain longer than 5", "sha1 signature") otherwise; HIE_EDB when the
 * anchors cannot be read (a transient error: the caller retries later). untrusted: extra certificates that
 * may be intermediates (the SignedData's), may be NULL.
 */
hie_err_t hisp_trust_check(struct hisp_trust *t, X509 *cert, STACK_OF(X509) *untrusted, const char *local_domain,
			   enum hisp_direction dir, const char *address, enum hisp_usage use, char *reason,
			   size_t rlen);

/* --- bundles (hisp_bundle.c) ---------------------------------------------------------------------------- */

/* Parses a bundle (formats above) into certificates; signer non-NULL requires a signed .p7m by it.
 * *out is the caller's (sk_X509_pop_free). HIE_EPARSE, HIE_EDENIED (signature), HIE_ENOTFOUND (no certs). */
hie_err_t hisp_bundle_parse(const unsigned char *data, size_t len, X509 *signer, STACK_OF(X509) **out);
/* Fetches and applies bundle id (the hisp.bundle job; payload is the id). */
hie_err_t hisp_bundle_refresh(struct hisp_trust *t, long long bundle_id, char *reason, size_t rlen);
/*
 * The hisp.bundle job handler: arg is the struct hisp *, payload the bundle id. Refreshes the bundle; after a
 * success (or on the last attempt) queues the next run after the bundle's refresh_hours, with dedup key
 * "bundle:<id>:<epoch hour of that run>". A bundle that no longer exists ends the chain (HIE_EPERMANENT).
 * On success reason = "<n> anchors"; on failure the old anchors stay and hisp_bundles.last_error says why.
 */
hie_err_t hisp_bundle_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);

#endif
