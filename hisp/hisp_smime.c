/*
 * hisp_smime.c — S/MIME sending for Direct (AS 1.3 §5, RFC 8551): hisp_smime_encode() canonicalizes the
 * message to CRLF, wraps it as message/rfc822, signs it (detached CMS SignedData, one SignerInfo per
 * keypair, multipart/signed per RFC 1847 / RFC 5751 §3.4.3) and encrypts the multipart/signed entity
 * (EnvelopedData for AES-CBC, AuthEnvelopedData for AES-GCM) with one key-transport RecipientInfo per
 * certificate (RSA-OAEP SHA-256 / SHA-1 or PKCS#1 v1.5). Also hisp_smime_result_free() for the decoder's
 * result (hisp_smime_decode.c).
 *
 * The wrapped entity is written once, straight into the multipart/signed buffer, and CMS signs exactly
 * those bytes (CMS_PARTIAL + CMS_add1_signer + one CMS_final: nothing finalized twice).
 *
 * Errors: HIE_EINVAL (bad arguments), HIE_ETOOBIG (the result would pass out's cap), HIE_ENOMEM,
 * HIE_ETLS (OpenSSL refused: a key that does not match its certificate, an unusable recipient key...).
 */
#define _GNU_SOURCE /* memmem */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/buffer.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "core/core_log.h"
#include "core/core_mime.h"
#include "hisp/hisp_smime_int.h"

/* Logs the first queued OpenSSL error (library text, no payload) and empties the queue. */
static hie_err_t ossl_fail(const char *op)
{
	char msg[256];
	unsigned long e = ERR_peek_error();
	ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	hie_log(HIE_LOG_WARN, "event=smime.openssl op=%s error=\"%s\"", op, e ? msg : "unknown");
	return HIE_ETLS;
}

/* Appends data with every bare LF turned into CRLF (RFC 5322 / RFC 8551 §3.1.1 canonical form). */
static hie_err_t add_canonical(struct hie_buf *b, const char *s, size_t n)
{
	size_t bare = 0;
	for (const char *p = s, *e = s + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
		if (p == s || p[-1] != '\r')
			bare++;
	hie_err_t err = hie_buf_reserve(b, n + bare);
	if (err)
		return err;
	char *o = b->data + b->len;
	const char *p = s, *e = s + n;
	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		size_t seg = nl ? (size_t)(nl - p) : (size_t)(e - p);
		memcpy(o, p, seg);
		o += seg;
		if (!nl)
			break;
		if (nl == s || nl[-1] != '\r')
			*o++ = '\r';
		*o++ = '\n';
		p = nl + 1;
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
	return HIE_OK;
}

static hie_err_t new_boundary(char *bnd, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	if (RAND_bytes(r, sizeof(r)) != 1)
		return ossl_fail("rand");
	char h[33];
	for (size_t i = 0; i < sizeof(r); i++) {
		h[2 * i] = hex[r[i] >> 4];
		h[2 * i + 1] = hex[r[i] & 15];
	}
	h[32] = '\0';
	snprintf(bnd, n, "----=_hienode_%s", h);
	return HIE_OK;
}

BIO *hisp_smime_mem_bio(size_t n)
{
	BUF_MEM *bm = BUF_MEM_new();
	BIO *b = BIO_new(BIO_s_mem());
	if (!bm || !b || !BUF_MEM_grow(bm, n)) {
		BUF_MEM_free(bm);
		BIO_free(b);
		return NULL;
	}
	bm->length = 0;
	BIO_set_mem_buf(b, bm, BIO_CLOSE);
	return b;
}

/*
 * CMS_final() without its 4 KiB copy loop and its growing memory BIO (OpenSSL grows it by a third and
 * wipes every old block): the data goes through the CMS chain in one write, into sink (a memory BIO sized
 * for the result, for embedded content) or nowhere (sink NULL: detached). Consumes sink.
 */
static bool cms_final_once(CMS_ContentInfo *cms, const char *data, size_t n, BIO *sink)
{
	BIO *chain = CMS_dataInit(cms, sink);
	if (!chain) {
		BIO_free(sink);
		return false;
	}
	bool ok = (n == 0 || BIO_write(chain, data, (int)n) == (int)n) && BIO_flush(chain) > 0 &&
		  CMS_dataFinal(cms, chain) == 1;
	BIO_free_all(chain);
	return ok;
}

/* After CMS_final (final_ok): the DER of cms into *der (OPENSSL_free). op_final / op_der name the failing step. */
static hie_err_t finish_der(CMS_ContentInfo *cms, bool final_ok, const char *op_final, const char *op_der,
			    unsigned char **der, int *derlen)
{
	if (!final_ok)
		return ossl_fail(op_final);
	*der = NULL;
	*derlen = i2d_CMS_ContentInfo(cms, der);
	return *derlen <= 0 ? ossl_fail(op_der) : HIE_OK;
}

/* SMIMECapabilities we can decrypt, strongest first (RFC 8551 §2.5.2), instead of OpenSSL's list with 3DES and RC2. */
static hie_err_t add_smimecap(CMS_SignerInfo *si)
{
	static const int nids[] = { NID_aes_256_gcm, NID_aes_128_gcm, NID_aes_256_cbc, NID_aes_192_cbc,
				    NID_aes_128_cbc };
	STACK_OF(X509_ALGOR) *caps = sk_X509_ALGOR_new_null();
	int ok = caps != NULL;
	for (size_t i = 0; ok && i < sizeof(nids) / sizeof(nids[0]); i++)
		ok = PKCS7_simple_smimecap(caps, nids[i], -1);
	if (ok)
		ok = CMS_add_smimecap(si, caps);
	sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
	return ok ? HIE_OK : ossl_fail("smimecap");
}

/* Detached SignedData over data[0..n), DER into *der (OPENSSL_free). */
static hie_err_t sign_entity(const char *data, size_t n, const struct hisp_keypair *signers, size_t nsigners,
			     const EVP_MD *md, unsigned char **der, int *derlen)
{
	const unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL;
	hie_err_t err = HIE_OK;
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	if (!cms)
		return ossl_fail("cms_sign");
	for (size_t i = 0; i < nsigners; i++) {
		CMS_SignerInfo *si = CMS_add1_signer(cms, signers[i].cert, signers[i].key, md,
						     CMS_NOSMIMECAP | CMS_PARTIAL);
		if (!si) {
			err = ossl_fail("cms_add1_signer");
			goto out;
		}
		if ((err = add_smimecap(si)))
			goto out;
	}
	err = finish_der(cms, cms_final_once(cms, data, n, NULL), "cms_final_sign", "i2d_signed", der, derlen);
out:
	CMS_ContentInfo_free(cms);
	return err;
}

static hie_err_t set_key_transport(CMS_RecipientInfo *ri, enum hisp_key_transport kt)
{
	if (kt == HISP_KT_PKCS1 || CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_TRANS)
		return HIE_OK; /* PKCS#1 v1.5 is the default; non-RSA (key agreement) keys keep their own scheme */
	EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
	const EVP_MD *md = kt == HISP_KT_OAEP_SHA256 ? EVP_sha256() : EVP_sha1();
	if (!pctx || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0)
		return ossl_fail("rsa_oaep");
	return HIE_OK;
}

/* (Auth)EnvelopedData of data[0..n) for every certificate in recips, DER into *der (OPENSSL_free). */
static hie_err_t encrypt_entity(const char *data, size_t n, STACK_OF(X509) *recips, const struct hisp_smime_algs *a,
				unsigned char **der, int *derlen)
{
	hie_err_t err = HIE_OK;
	/* CMS_encrypt picks AuthEnvelopedData (RFC 5083) for an AEAD cipher. */
	CMS_ContentInfo *cms = CMS_encrypt(NULL, NULL, hisp_smime_cipher_evp(a->cipher), CMS_BINARY | CMS_PARTIAL);
	if (!cms)
		return ossl_fail("cms_encrypt");
	for (int i = 0; i < sk_X509_num(recips); i++) {
		CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, sk_X509_value(recips, i), CMS_KEY_PARAM);
		if (!ri) {
			err = ossl_fail("cms_add1_recipient_cert");
			goto out;
		}
		if ((err = set_key_transport(ri, a->kt)))
			goto out;
	}
	/* CBC pads by at most one block; GCM adds nothing (its tag travels apart). */
	BIO *sink = hisp_smime_mem_bio(n + 32);
	err = finish_der(cms, sink && cms_final_once(cms, data, n, sink), "cms_final_encrypt", "i2d_enveloped", der,
			 derlen);
out:
	CMS_ContentInfo_free(cms);
	return err;
}

/*
 * The multipart/signed entity into ms: headers, the wrapped message (exactly the signed bytes: it is
 * written once and signed in place), then the signature part.
 */
static hie_err_t build_signed(const char *msg, size_t len, const struct hisp_keypair *signers, size_t nsigners,
			      enum hisp_digest dg, struct hie_buf *ms)
{
	char bnd[64];
	size_t w0 = 0, wn = 0;
	unsigned char *sig = NULL;
	int siglen = 0;
	hie_err_t err = HIE_OK;

	/* A random boundary cannot collide in practice; checking costs one scan and makes it certain. */
	for (int attempt = 0;; attempt++) {
		if (attempt == 4)
			return HIE_EINVAL;
		if ((err = new_boundary(bnd, sizeof(bnd))))
			return err;
		hie_buf_reset(ms);
		err = hie_buf_addf(ms,
				   "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";"
				   " micalg=%s;\r\n\tboundary=\"%s\"\r\n\r\n--%s\r\n",
				   hisp_smime_micalg(dg), bnd, bnd);
		w0 = ms->len;
		if (!err)
			err = hie_buf_addstr(ms, "Content-Type: message/rfc822\r\n\r\n");
		if (!err)
			err = add_canonical(ms, msg, len);
		if (err)
			return err;
		wn = ms->len - w0;
		if (!memmem(ms->data + w0, wn, bnd, strlen(bnd)))
			break;
	}
	if (wn > INT_MAX)
		return HIE_ETOOBIG;
	err = sign_entity(ms->data + w0, wn, signers, nsigners, hisp_smime_digest_evp(dg), &sig, &siglen);
	if (err)
		return err;
	/* The CRLF before the delimiter belongs to the delimiter, not to the signed content (RFC 1847 §2.1). */
	err = hie_buf_addf(ms,
			   "\r\n--%s\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
			   "Content-Transfer-Encoding: base64\r\n"
			   "Content-Disposition: attachment; filename=smime.p7s\r\n\r\n",
			   bnd);
	if (!err)
		err = hie_mime_base64_encode(sig, (size_t)siglen, true, ms);
	if (!err)
		err = hie_buf_addf(ms, "\r\n--%s--\r\n", bnd);
	OPENSSL_free(sig);
	return err;
}

static bool algs_valid(const struct hisp_smime_algs *a)
{
	return a && (unsigned)a->cipher <= HISP_AES256_GCM && (unsigned)a->kt <= HISP_KT_PKCS1 &&
	       (unsigned)a->digest <= HISP_SHA512;
}

hie_err_t hisp_smime_encode(const char *msg, size_t len, const struct hisp_keypair *signers, size_t nsigners,
			    STACK_OF(X509) *recips, const struct hisp_smime_algs *algs, struct hie_buf *out)
{
	struct hie_buf ms;
	unsigned char *env = NULL;
	int envlen = 0;
	hie_err_t err;

	if ((!msg && len) || !signers || nsigners == 0 || !recips || sk_X509_num(recips) <= 0 || !out ||
	    !algs_valid(algs))
		return HIE_EINVAL;
	for (size_t i = 0; i < nsigners; i++)
		if (!signers[i].cert || !signers[i].key)
			return HIE_EINVAL;
	if (!msg)
		msg = "";
	size_t room = out->max > out->len ? out->max - out->len : 0;
	/* Base64 adds 4/3 and line ends; the signature, headers and padding need a few KiB more. */
	if (room > (size_t)INT_MAX)
		room = (size_t)INT_MAX; /* OpenSSL's memory BIOs take an int length */
	if (len > room / 7 * 5)
		return HIE_ETOOBIG;
	size_t start = out->len;

	hie_buf_init(&ms, room);
	err = build_signed(msg, len, signers, nsigners, algs->digest, &ms);
	if (!err)
		err = encrypt_entity(ms.data, ms.len, recips, algs, &env, &envlen);
	hie_buf_free(&ms);
	if (err)
		goto out;
	err = hie_buf_addstr(out, "Content-Type: application/pkcs7-mime; smime-type=enveloped-data;"
				  " name=\"smime.p7m\"\r\n"
				  "Content-Transfer-Encoding: base64\r\n"
				  "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n");
	if (!err)
		err = hie_mime_base64_encode(env, (size_t)envlen, true, out);
	if (!err)
		err = hie_buf_add(out, "\r\n", 2);
out:
	OPENSSL_free(env);
	if (err && out->data) {
		out->len = start;
		out->data[start] = '\0';
	}
	return err;
}

void hisp_smime_result_free(struct hisp_smime_result *r)
{
	if (!r)
		return;
	free(r->content);
	sk_X509_pop_free(r->certs, X509_free);
	for (size_t i = 0; i < r->nsigners; i++)
		X509_free(r->signers[i].cert);
	free(r->signers);
	memset(r, 0, sizeof(*r));
	r->decrypt_key = -1;
}
