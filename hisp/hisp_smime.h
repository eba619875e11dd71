/*
 * hisp_smime.h — S/MIME for Direct (AS 1.3 §5; STANDARDS.md §1 "Sending", "Receiving"). Crypto only: no
 * database, no trust decisions (hisp_trust.h decides whether a signer is trusted and bound).
 *
 * Sending: the whole RFC 5322 message, canonicalized to CRLF, is wrapped as message/rfc822, signed (CMS
 * SignedData, detached, multipart/signed with micalg of the digest), and the multipart/signed entity is
 * encrypted (CMS EnvelopedData, or AuthEnvelopedData for AES-GCM) to every recipient certificate plus the
 * sender's own. The result is the MIME entity (Content-Type, Content-Transfer-Encoding, Content-Disposition
 * headers, blank line, base64 body); the caller puts the outer routing headers in front of it.
 *
 * Receiving: the outer entity must be application/(x-)pkcs7-mime enveloped-data (or authEnveloped-data);
 * it is decrypted with the first local key that matches a RecipientInfo; the content algorithm must be
 * allowed (AES-CBC 128/192/256, AES-GCM; 3DES and others refused); the decrypted entity must be a
 * multipart/signed with two parts, split with core_mime (no SMIME_read_CMS): the first part's exact bytes
 * and the DER signature go to CMS. Every SignerInfo is checked on its own (digest algorithm allowed: no MD5,
 * no SHA-1; the signature over the content verifies); the result lists each signer with its certificate
 * and verdict, so that one bad signer beside a good one does not fail the message.
 *
 * Errors: HIE_EDENIED (refused by the rules: the reason names the rule), HIE_EPARSE (malformed MIME or CMS),
 * HIE_ETOOBIG (over a cap), HIE_ENOMEM, HIE_ETLS (OpenSSL failure not due to the input).
 */
#ifndef HIENODE_HISP_SMIME_H
#define HIENODE_HISP_SMIME_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/core_buf.h"
#include "core/core_err.h"

enum hisp_cipher { HISP_AES128_CBC, HISP_AES192_CBC, HISP_AES256_CBC, HISP_AES128_GCM, HISP_AES256_GCM };
enum hisp_key_transport { HISP_KT_OAEP_SHA256, HISP_KT_OAEP_SHA1, HISP_KT_PKCS1 };
enum hisp_digest { HISP_SHA256, HISP_SHA384, HISP_SHA512 };

/* Sending algorithms ([direct] cipher / key_transport / digest, or a partner domain's hisp_policies row). */
struct hisp_smime_algs {
	enum hisp_cipher cipher;
	enum hisp_key_transport kt;
	enum hisp_digest digest;
};
/* Parse/print the configuration names: "aes128-cbc" … "aes256-gcm", "rsa-oaep-sha256", "rsa-oaep-sha1",
 * "rsa-pkcs1", "sha256", "sha384", "sha512". Parsers return HIE_EINVAL for anything else. */
hie_err_t hisp_cipher_parse(const char *s, enum hisp_cipher *out);
hie_err_t hisp_kt_parse(const char *s, enum hisp_key_transport *out);
hie_err_t hisp_digest_parse(const char *s, enum hisp_digest *out);
const char *hisp_cipher_name(enum hisp_cipher c);
const char *hisp_kt_name(enum hisp_key_transport k);
const char *hisp_digest_name(enum hisp_digest d);

/* A certificate with its private key (ours). */
struct hisp_keypair {
	X509 *cert;
	EVP_PKEY *key;
};

/*
 * Signs then encrypts msg (a whole RFC 5322 message; bare LF line ends are canonicalized to CRLF).
 * signer: one or more of our signing keypairs (each adds a SignerInfo and its certificate); recips: the
 * recipients' encryption certificates; the sender's own encryption certificate should be among them.
 * Appends the entity to out. Caps: msg up to out's cap / 1.4.
 */
hie_err_t hisp_smime_encode(const char *msg, size_t len, const struct hisp_keypair *signers, size_t nsigners,
			    STACK_OF(X509) *recips, const struct hisp_smime_algs *algs, struct hie_buf *out);

struct hisp_smime_signer {
	X509 *cert;            /* from the SignedData certificates (owned by the result); NULL if absent */
	bool verified;         /* signature over the content verifies and digest allowed */
	char reason[128];      /* when !verified: "digest sha1 not allowed", "signature does not verify", ... */
};

struct hisp_smime_result {
	char *content;             /* the signed content as it was signed (first part of multipart/signed), raw */
	size_t content_len;
	const char *message;       /* the inner RFC 5322 message: the body of the message/rfc822 part, or the
	                              content itself when it was not wrapped (points into content) */
	size_t message_len;
	bool wrapped;              /* content was message/rfc822 (AS 1.3 wrapping) */
	char cipher[32];           /* content encryption algorithm used by the sender ("aes-128-cbc", ...) */
	STACK_OF(X509) *certs;     /* every certificate the SignedData carried (for chain building) */
	struct hisp_smime_signer *signers;
	size_t nsigners;
	int decrypt_key;           /* index into keys[] that decrypted */
};
void hisp_smime_result_free(struct hisp_smime_result *r); /* frees the members; r itself is the caller's */

/*
 * Decrypts and splits msg (a whole message as received). keys: our keypairs bound to the recipients (the
 * first one whose certificate matches a RecipientInfo is used; with none matching, each is tried, as
 * senders may use the wrong identifier). Fills *res (zero it first) even on HIE_EDENIED when it got as far
 * as the signers, so the caller can log why. reason (rlen bytes) names the refused rule: "not encrypted",
 * "cipher des-ede3-cbc not allowed", "no key for any recipient", "not signed", "signature part missing"…
 */
hie_err_t hisp_smime_decode(const char *msg, size_t len, const struct hisp_keypair *keys, size_t nkeys,
			    struct hisp_smime_result *res, char *reason, size_t rlen);

/* Caps on what decode accepts (defaults 64 MiB decoded, 16 signers, 64 certificates). */
#define HISP_SMIME_MAX_SIGNERS 16
#define HISP_SMIME_MAX_CERTS 64

#endif
