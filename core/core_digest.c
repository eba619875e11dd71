/*
 * core_digest.c — message digests as hex text (see core_digest.h).
 */
#include <openssl/evp.h>

#include "core/core_digest.h"

hie_err_t hie_digest_sha1_hex(const void *data, size_t len, char out[HIE_SHA1_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	out[0] = '\0';
	if (!EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return HIE_ENOMEM;
	for (unsigned i = 0; i < 20; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[HIE_SHA1_HEX_LEN] = '\0';
	return HIE_OK;
}
