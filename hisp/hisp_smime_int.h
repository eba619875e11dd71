/*
 * hisp_smime_int.h — private helpers shared by hisp_smime.c (encode), hisp_smime_decode.c and
 * hisp_smime_algs.c (algorithm tables, the DER walk to the content-encryption algorithm). Not a door
 * into the module: only hisp_smime*.c include it.
 */
#ifndef HIENODE_HISP_SMIME_INT_H
#define HIENODE_HISP_SMIME_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

#include "hisp/hisp_smime.h"

/* Decoded CMS (DER) cap, and the encoded cap derived from it (base64 with line ends). */
#define HISP_SMIME_MAX_DER ((size_t)64 << 20)
#define HISP_SMIME_MAX_INPUT (HISP_SMIME_MAX_DER / 3 * 4 + HISP_SMIME_MAX_DER / 38 + 65536)

const EVP_CIPHER *hisp_smime_cipher_evp(enum hisp_cipher c);
const EVP_MD *hisp_smime_digest_evp(enum hisp_digest d);
const char *hisp_smime_micalg(enum hisp_digest d); /* "sha-256" (RFC 5751 §3.4.3.2) */

/*
 * The contentEncryptionAlgorithm of a CMS ContentInfo holding EnvelopedData or AuthEnvelopedData, found
 * by walking the DER/BER (OpenSSL has no getter for it). On HIE_OK, name (size nlen) is the algorithm's
 * name ("aes-128-cbc", "des-ede3-cbc", or the dotted OID when unknown) and *allowed says whether
 * Direct accepts it. HIE_EPARSE when the structure is not as expected.
 */
hie_err_t hisp_smime_content_alg(const unsigned char *der, size_t len, char *name, size_t nlen, bool *allowed);

/* A writable memory BIO with room for n bytes, so that writes up to n never reallocate. */
BIO *hisp_smime_mem_bio(size_t n);

/* Whether a SignerInfo digestAlgorithm (NID) is allowed; name gets "sha256", "sha1", "md5" or the OID. */
bool hisp_smime_digest_allowed(const ASN1_OBJECT *alg, char *name, size_t nlen);

#endif
