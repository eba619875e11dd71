/*
 * smime_fuzz.c — libFuzzer target for hisp_smime_decode. One fixed keypair (RSA 1024 and a self-signed
 * certificate, made in C at the first call so the run stays fast) is the receiver. The first input byte
 * picks the layer under test:
 *   0  the rest is a whole received message (outer MIME, base64, CMS envelope, the algorithm walk);
 *   1  the rest is encrypted to the keypair first, so the decrypted-entity paths (multipart/signed split,
 *      signature part, SignedData, signers) see fuzzed plaintext;
 *   2  the rest is a message sent with hisp_smime_encode and received back: it must decode, verify and
 *      come back canonicalized to CRLF, byte for byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/core_log.h"
#include "core/core_mime.h"
#include "hisp/hisp_smime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hisp_keypair kp;

static void make_keypair(void)
{
	kp.key = EVP_RSA_gen(1024);
	kp.cert = X509_new();
	if (!kp.key || !kp.cert)
		abort();
	X509_set_version(kp.cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(kp.cert), 1);
	X509_NAME *n = X509_get_subject_name(kp.cert);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
	X509_set_issuer_name(kp.cert, n);
	X509_gmtime_adj(X509_getm_notBefore(kp.cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(kp.cert), 86400);
	X509_set_pubkey(kp.cert, kp.key);
	if (!X509_sign(kp.cert, kp.key, EVP_sha256()))
		abort();
	hie_log_set_level(HIE_LOG_ALERT); /* encode failures are expected for hostile input; keep the run quiet */
}

static void decode(const char *msg, size_t len)
{
	struct hisp_smime_result r;
	char reason[128];
	memset(&r, 0, sizeof(r));
	hie_err_t err = hisp_smime_decode(msg, len, &kp, 1, &r, reason, sizeof(reason));
	if (!err && (!r.content || r.nsigners == 0))
		__builtin_trap();
	if (r.content && (r.message < r.content || r.message + r.message_len > r.content + r.content_len))
		__builtin_trap();
	hisp_smime_result_free(&r);
}

/* Mode 1: the input becomes the plaintext of an EnvelopedData addressed to kp. */
static void decode_inner(const uint8_t *data, size_t size)
{
	CMS_ContentInfo *cms = CMS_encrypt(NULL, NULL, EVP_aes_128_cbc(), CMS_BINARY | CMS_PARTIAL);
	BIO *in = BIO_new_mem_buf(data, (int)size);
	unsigned char *der = NULL;
	int dl = 0;
	if (cms && in && CMS_add1_recipient_cert(cms, kp.cert, 0) && CMS_final(cms, in, NULL, CMS_BINARY))
		dl = i2d_CMS_ContentInfo(cms, &der);
	BIO_free(in);
	CMS_ContentInfo_free(cms);
	if (dl <= 0)
		abort();
	struct hie_buf b;
	hie_buf_init(&b, (size_t)8 << 20);
	if (hie_buf_addstr(&b, "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
			       "Content-Transfer-Encoding: base64\r\n\r\n") ||
	    hie_mime_base64_encode(der, (size_t)dl, true, &b))
		abort();
	OPENSSL_free(der);
	decode(b.data, b.len);
	hie_buf_free(&b);
}

/* Mode 2: send, receive, compare with the CRLF-canonical input. */
static void round_trip(const uint8_t *data, size_t size)
{
	struct hisp_smime_algs a = { .cipher = (enum hisp_cipher)(size % 5), .kt = (enum hisp_key_transport)(size % 3),
				     .digest = (enum hisp_digest)(size % 3) };
	STACK_OF(X509) *to = sk_X509_new_null();
	struct hie_buf out;
	hie_buf_init(&out, (size_t)8 << 20);
	if (!to || !sk_X509_push(to, kp.cert))
		abort();
	if (hisp_smime_encode((const char *)data, size, &kp, 1, to, &a, &out) != HIE_OK)
		__builtin_trap();
	struct hisp_smime_result r;
	char reason[128];
	memset(&r, 0, sizeof(r));
	if (hisp_smime_decode(out.data, out.len, &kp, 1, &r, reason, sizeof(reason)) != HIE_OK || !r.wrapped ||
	    r.nsigners != 1 || !r.signers[0].verified)
		__builtin_trap();
	size_t k = 0;
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
			if (k >= r.message_len || r.message[k++] != '\r')
				__builtin_trap();
		}
		if (k >= r.message_len || r.message[k++] != (char)data[i])
			__builtin_trap();
	}
	if (k != r.message_len)
		__builtin_trap();
	hisp_smime_result_free(&r);
	hie_buf_free(&out);
	sk_X509_free(to);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!kp.key)
		make_keypair();
	if (size == 0 || size > (1u << 20))
		return 0;
	switch (data[0] % 3) {
	case 0: decode((const char *)data + 1, size - 1); break;
	case 1: decode_inner(data + 1, size - 1); break;
	default: round_trip(data + 1, size - 1); break;
	}
	ERR_clear_error();
	return 0;
}
