/*
 * hisp_smime_decode.c — S/MIME receiving for Direct (AS 1.3 §5; STANDARDS.md §1 "Receiving"):
 * hisp_smime_decode() checks that the message is application/(x-)pkcs7-mime enveloped-data, refuses a
 * content-encryption algorithm other than AES (CBC or GCM) before decrypting, decrypts with the first local
 * key whose certificate matches a RecipientInfo (then, as the Direct RI does, each key against every
 * RecipientInfo), splits the multipart/signed with core_mime (the first part's exact bytes are the signed
 * content, RFC 1847 §2.1) and checks every SignerInfo on its own: digest SHA-256/384/512, signature over the
 * signed attributes, messageDigest (or the signature itself) over the content. Chain, trust, binding and
 * validity are hisp_trust's job.
 *
 * Errors: HIE_EDENIED with a reason naming the rule, HIE_EPARSE (malformed MIME, base64 or CMS),
 * HIE_ETOOBIG (a cap), HIE_ENOMEM, HIE_EINVAL (bad arguments).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/buffer.h>
#include <openssl/cms.h>
#include <openssl/err.h>

#include "core/core_mime.h"
#include "hisp/hisp_smime_int.h"
#include "hisp/hisp_util.h"

#define SIG_MAX_DER ((size_t)4 << 20) /* the signature part: SignerInfos and up to 64 certificates */

/* The outer entity must announce an enveloped (or auth-enveloped) CMS object. */
static hie_err_t check_outer(const struct hie_mime_part *top, char *reason, size_t rlen)
{
	if (strcmp(top->type, "multipart/signed") == 0) {
		hisp_reason(reason, rlen, "signed but not encrypted");
		return HIE_EDENIED;
	}
	if (strcmp(top->type, "application/pkcs7-mime") != 0 && strcmp(top->type, "application/x-pkcs7-mime") != 0) {
		hisp_reason(reason, rlen, "not encrypted");
		return HIE_EDENIED;
	}
	const struct hie_mime_header *h = hie_mime_header_find(top, "Content-Type");
	struct hie_buf st;
	hie_buf_init(&st, 64);
	hie_err_t err = h ? hie_mime_param(h->value, h->value_len, "smime-type", &st) : HIE_ENOTFOUND;
	if (err == HIE_ENOTFOUND) {
		err = HIE_OK; /* RFC 8551 says SHOULD; the CMS content type decides below */
	} else if (err == HIE_ETOOBIG || err == HIE_EPARSE) {
		hisp_reason(reason, rlen, "not encrypted");
		err = HIE_EDENIED;
	} else if (!err && strcasecmp(hie_buf_str(&st), "enveloped-data") != 0 &&
		   strcasecmp(hie_buf_str(&st), "authEnveloped-data") != 0) {
		hisp_reason(reason, rlen, "%s", strcasecmp(hie_buf_str(&st), "signed-data") == 0
							? "signed but not encrypted" : "not encrypted");
		err = HIE_EDENIED;
	}
	hie_buf_free(&st);
	return err;
}

/* Does a trial decryption look like a MIME entity? Guards the every-key fallback against the random key
 * CMS substitutes for a wrong one (MMA countermeasure), whose output passes the CBC padding 1 time in 256. */
static bool plausible(BIO *out)
{
	BUF_MEM *bm = NULL;
	struct hie_mime_part *p = NULL;
	BIO_get_mem_ptr(out, &bm);
	if (!bm || bm->length == 0)
		return false;
	bool ok = hie_mime_parse_ex(bm->data, bm->length, NULL, HIE_MIME_LENIENT_CLOSE, &p) == HIE_OK &&
		  p->nheaders > 0;
	hie_mime_free(p);
	return ok;
}

static hie_err_t decrypt(CMS_ContentInfo *cms, const struct hisp_keypair *keys, size_t nkeys, BIO *out,
			 int *which, char *reason, size_t rlen)
{
	/* The key whose certificate a RecipientInfo names. Once one matches, a failure is final: trying on
	 * would tell an attacker which of our keys failed (Bleichenbacher). */
	for (size_t i = 0; i < nkeys; i++) {
		if (!keys[i].key || !keys[i].cert)
			continue;
		if (CMS_decrypt_set1_pkey_and_peer(cms, keys[i].key, keys[i].cert, NULL) != 1) {
			ERR_clear_error();
			continue;
		}
		if (CMS_decrypt(cms, NULL, NULL, NULL, out, CMS_BINARY) == 1) {
			*which = (int)i;
			return HIE_OK;
		}
		ERR_clear_error();
		hisp_reason(reason, rlen, "decryption failed");
		return HIE_EDENIED;
	}
	/* Senders may name the wrong certificate (re-issued with the same key): every key, every RecipientInfo. */
	for (size_t i = 0; i < nkeys; i++) {
		if (!keys[i].key)
			continue;
		(void)BIO_reset(out);
		if (CMS_decrypt_set1_pkey(cms, keys[i].key, NULL) == 1 &&
		    CMS_decrypt(cms, NULL, NULL, NULL, out, CMS_BINARY) == 1 && plausible(out)) {
			*which = (int)i;
			return HIE_OK;
		}
		ERR_clear_error();
	}
	hisp_reason(reason, rlen, "no key for any recipient");
	return HIE_EDENIED;
}

/* One digest BIO per allowed algorithm the signers use, over content, read through once. */
static BIO *digest_chain(CMS_ContentInfo *cms, const char *content, size_t len)
{
	static const int nids[] = { NID_sha256, NID_sha384, NID_sha512 };
	static const char *const names[] = { "sha256", "sha384", "sha512" };
	bool need[3] = { false, false, false };
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	char name[64];

	for (int i = 0; i < sk_CMS_SignerInfo_num(sis); i++) {
		X509_ALGOR *dig = NULL;
		const ASN1_OBJECT *o = NULL;
		CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(sis, i), NULL, NULL, &dig, NULL);
		if (dig)
			X509_ALGOR_get0(&o, NULL, NULL, dig);
		if (!o || !hisp_smime_digest_allowed(o, name, sizeof(name)))
			continue;
		for (size_t k = 0; k < 3; k++)
			if (strcmp(name, names[k]) == 0)
				need[k] = true;
	}
	BIO *chain = BIO_new_mem_buf(content, (int)len);
	for (size_t k = 0; chain && k < 3; k++) {
		if (!need[k])
			continue;
		BIO *md = BIO_new(BIO_f_md());
		if (!md || !BIO_set_md(md, EVP_get_digestbynid(nids[k]))) {
			BIO_free(md);
			BIO_free_all(chain);
			return NULL;
		}
		chain = BIO_push(md, chain);
	}
	if (!chain)
		return NULL;
	char buf[16384];
	int n;
	while ((n = BIO_read(chain, buf, sizeof(buf))) > 0)
		;
	return chain;
}

static bool verify_one(CMS_SignerInfo *si, STACK_OF(X509) *certs, BIO *chain, struct hisp_smime_signer *s)
{
	X509_ALGOR *dig = NULL;
	const ASN1_OBJECT *o = NULL;
	char name[64];

	for (int j = 0; j < sk_X509_num(certs); j++) {
		X509 *x = sk_X509_value(certs, j);
		if (CMS_SignerInfo_cert_cmp(si, x) == 0 && X509_up_ref(x)) {
			s->cert = x;
			break;
		}
	}
	CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
	if (dig)
		X509_ALGOR_get0(&o, NULL, NULL, dig);
	if (!o || !hisp_smime_digest_allowed(o, name, sizeof(name))) {
		snprintf(s->reason, sizeof(s->reason), "digest %s not allowed", o ? name : "absent");
		return false;
	}
	if (!s->cert) {
		snprintf(s->reason, sizeof(s->reason), "signer certificate missing");
		return false;
	}
	CMS_SignerInfo_set1_signer_cert(si, s->cert);
	bool attrs = CMS_signed_get_attr_count(si) >= 0;
	if (attrs && CMS_SignerInfo_verify(si) != 1) {
		snprintf(s->reason, sizeof(s->reason), "signature does not verify");
		return false;
	}
	if (!chain || CMS_SignerInfo_verify_content(si, chain) != 1) {
		snprintf(s->reason, sizeof(s->reason), "%s",
			 attrs ? "content does not match the signed digest" : "signature does not verify");
		return false;
	}
	return true;
}

/* Every SignerInfo of the detached SignedData against content; fills res->certs and res->signers. */
static hie_err_t verify_signers(CMS_ContentInfo *cms, const char *content, size_t len,
				struct hisp_smime_result *res, char *reason, size_t rlen)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	int nsi = sk_CMS_SignerInfo_num(sis);
	if (nsi <= 0) {
		hisp_reason(reason, rlen, "not signed");
		return HIE_EDENIED;
	}
	if (nsi > HISP_SMIME_MAX_SIGNERS) {
		hisp_reason(reason, rlen, "too many signers");
		return HIE_ETOOBIG;
	}
	res->certs = CMS_get1_certs(cms);
	if (!res->certs)
		res->certs = sk_X509_new_null();
	if (!res->certs)
		return HIE_ENOMEM;
	if (sk_X509_num(res->certs) > HISP_SMIME_MAX_CERTS) {
		hisp_reason(reason, rlen, "too many certificates");
		return HIE_ETOOBIG;
	}
	res->signers = calloc((size_t)nsi, sizeof(*res->signers));
	if (!res->signers)
		return HIE_ENOMEM;
	res->nsigners = (size_t)nsi;

	BIO *chain = digest_chain(cms, content, len);
	bool any = false;
	for (int i = 0; i < nsi; i++) {
		struct hisp_smime_signer *s = &res->signers[i];
		s->verified = verify_one(sk_CMS_SignerInfo_value(sis, i), res->certs, chain, s);
		if (s->verified)
			any = true;
		ERR_clear_error();
	}
	BIO_free_all(chain);
	if (!any) {
		/* Name the rule: "no valid signature: digest sha1 not allowed" (the first signer's reason). */
		if (nsi > 0 && res->signers[0].reason[0])
			hisp_reason(reason, rlen, "no valid signature: %s", res->signers[0].reason);
		else
			hisp_reason(reason, rlen, "no valid signature");
		return HIE_EDENIED;
	}
	return HIE_OK;
}

/* The decrypted entity: multipart/signed, two parts, the second a CMS signature. */
static hie_err_t split_signed(const char *data, size_t len, struct hisp_smime_result *res, char *reason,
			      size_t rlen)
{
	struct hie_mime_part *top = NULL;
	CMS_ContentInfo *sig = NULL;
	struct hie_buf der;
	hie_err_t err;

	hie_buf_init(&der, SIG_MAX_DER);
	err = hie_mime_parse_ex(data, len, NULL, HIE_MIME_LENIENT_CLOSE, &top);
	if (err) {
		hisp_reason(reason, rlen, "malformed MIME inside the envelope");
		goto out;
	}
	if (strcmp(top->type, "multipart/signed") != 0 || top->nchildren != 2) {
		hisp_reason(reason, rlen, "not signed");
		err = HIE_EDENIED;
		goto out;
	}
	const struct hie_mime_part *c0 = &top->children[0], *c1 = &top->children[1];
	if (strcmp(c1->type, "application/pkcs7-signature") != 0 &&
	    strcmp(c1->type, "application/x-pkcs7-signature") != 0) {
		hisp_reason(reason, rlen, "signature part missing");
		err = HIE_EDENIED;
		goto out;
	}
	res->content = malloc(c0->raw_len + 1);
	if (!res->content) {
		err = HIE_ENOMEM;
		goto out;
	}
	memcpy(res->content, c0->raw, c0->raw_len);
	res->content[c0->raw_len] = '\0';
	res->content_len = c0->raw_len;
	res->wrapped = strcmp(c0->type, "message/rfc822") == 0;
	res->message = res->wrapped ? res->content + (c0->body - c0->raw) : res->content;
	res->message_len = res->wrapped ? c0->body_len : c0->raw_len;

	err = hie_mime_decode(c1, &der);
	const unsigned char *p = (const unsigned char *)der.data;
	if (!err && der.len > 0 && (sig = d2i_CMS_ContentInfo(NULL, &p, (long)der.len)) != NULL &&
	    OBJ_obj2nid(CMS_get0_type(sig)) == NID_pkcs7_signed) {
		err = verify_signers(sig, res->content, res->content_len, res, reason, rlen);
	} else if (err != HIE_ETOOBIG && err != HIE_ENOMEM) {
		hisp_reason(reason, rlen, "malformed signature");
		err = HIE_EPARSE;
	}
out:
	ERR_clear_error();
	CMS_ContentInfo_free(sig);
	hie_buf_free(&der);
	hie_mime_free(top);
	return err;
}

/* The outer envelope: base64 body → CMS ContentInfo, type and content-encryption algorithm checked. */
static hie_err_t open_envelope(const char *msg, size_t len, CMS_ContentInfo **cms, size_t *derlen,
			       struct hisp_smime_result *res, char *reason, size_t rlen)
{
	struct hie_mime_part *top = NULL;
	struct hie_buf der;
	bool allowed = false;
	hie_err_t err;

	hie_buf_init(&der, HISP_SMIME_MAX_DER);
	/* Lenient about a missing close delimiter so that a plain multipart gets its precise refusal. */
	err = hie_mime_parse_ex(msg, len, NULL, HIE_MIME_LENIENT_CLOSE, &top);
	if (err) {
		hisp_reason(reason, rlen, "malformed MIME");
		goto out;
	}
	if ((err = check_outer(top, reason, rlen)))
		goto out;
	err = hie_mime_decode(top, &der);
	if (err) {
		hisp_reason(reason, rlen, err == HIE_ETOOBIG ? "envelope too big" : "malformed base64");
		if (err == HIE_EUNSUPPORTED)
			err = HIE_EPARSE;
		goto out;
	}
	const unsigned char *p = (const unsigned char *)der.data;
	if (der.len == 0 || !(*cms = d2i_CMS_ContentInfo(NULL, &p, (long)der.len))) {
		hisp_reason(reason, rlen, "malformed CMS");
		err = HIE_EPARSE;
		goto out;
	}
	*derlen = der.len;
	int nid = OBJ_obj2nid(CMS_get0_type(*cms));
	if (nid != NID_pkcs7_enveloped && nid != NID_id_smime_ct_authEnvelopedData) {
		hisp_reason(reason, rlen, "%s", nid == NID_pkcs7_signed ? "signed but not encrypted" : "not encrypted");
		err = HIE_EDENIED;
		goto out;
	}
	/* Refused before any private-key operation (STANDARDS.md §1: no 3DES). */
	if (hisp_smime_content_alg((const unsigned char *)der.data, der.len, res->cipher, sizeof(res->cipher),
				   &allowed) != HIE_OK) {
		hisp_reason(reason, rlen, "malformed CMS");
		err = HIE_EPARSE;
	} else if (!allowed) {
		hisp_reason(reason, rlen, "cipher %s not allowed", res->cipher);
		err = HIE_EDENIED;
	}
out:
	ERR_clear_error();
	hie_buf_free(&der);
	hie_mime_free(top);
	return err;
}

hie_err_t hisp_smime_decode(const char *msg, size_t len, const struct hisp_keypair *keys, size_t nkeys,
			    struct hisp_smime_result *res, char *reason, size_t rlen)
{
	CMS_ContentInfo *env = NULL;
	BIO *out = NULL;
	BUF_MEM *bm = NULL;
	size_t derlen = 0;
	bool keep = false;
	hie_err_t err;

	if (reason && rlen)
		reason[0] = '\0';
	if (!res)
		return HIE_EINVAL;
	memset(res, 0, sizeof(*res));
	res->decrypt_key = -1;
	if ((!msg && len) || (!keys && nkeys))
		return HIE_EINVAL;
	if (len > HISP_SMIME_MAX_INPUT) {
		hisp_reason(reason, rlen, "message too big");
		return HIE_ETOOBIG;
	}
	err = open_envelope(msg ? msg : "", len, &env, &derlen, res, reason, rlen);
	if (err)
		goto out;
	if (!(out = hisp_smime_mem_bio(derlen))) {
		err = HIE_ENOMEM;
		goto out;
	}
	err = decrypt(env, keys, nkeys, out, &res->decrypt_key, reason, rlen);
	CMS_ContentInfo_free(env);
	env = NULL;
	if (err)
		goto out;
	BIO_get_mem_ptr(out, &bm);
	err = split_signed(bm->data, bm->length, res, reason, rlen);
	keep = res->nsigners > 0;
out:
	ERR_clear_error();
	CMS_ContentInfo_free(env);
	BIO_free(out);
	if (err && !keep) {
		char cipher[sizeof(res->cipher)];
		int k = res->decrypt_key;
		memcpy(cipher, res->cipher, sizeof(cipher));
		hisp_smime_result_free(res);
		memcpy(res->cipher, cipher, sizeof(cipher)); /* for the caller's log */
		res->decrypt_key = k;
	}
	return err;
}
