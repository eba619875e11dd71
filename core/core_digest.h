/*
 * core_digest.h — message digests as the protocols write them (OpenSSL EVP underneath).
 *
 * hie_digest_sha1_hex: the SHA-1 of data as 40 lower-case hex digits and a NUL (XDS hash, XDM METADATA.xml).
 * HIE_ENOMEM when OpenSSL cannot compute it (then out is "").
 */
#ifndef HIENODE_CORE_DIGEST_H
#define HIENODE_CORE_DIGEST_H

#include <stddef.h>

#include "core/core_err.h"

#define HIE_SHA1_HEX_LEN 40

hie_err_t hie_digest_sha1_hex(const void *data, size_t len, char out[HIE_SHA1_HEX_LEN + 1]);

#endif
