/*
 * hisp_smime_algs.c — the S/MIME algorithm names and policy: configuration names of the sending
 * algorithms (hisp_cipher_parse/name, hisp_kt_parse/name, hisp_digest_parse/name), their OpenSSL
 * objects, the content-encryption algorithm of a received EnvelopedData found by a small BER walk (OpenSSL
 * has no getter for it and Direct must refuse 3DES before decrypting), and which signer digests are allowed.
 * Parsers return HIE_EINVAL for an unknown name; the walk returns HIE_EPARSE for a structure it does not
 * recognise.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/objects.h>

#include "hisp/hisp_smime_int.h"

static const char *const cipher_names[] = {
	[HISP_AES128_CBC] = "aes128-cbc", [HISP_AES192_CBC] = "aes192-cbc", [HISP_AES256_CBC] = "aes256-cbc",
	[HISP_AES128_GCM] = "aes128-gcm", [HISP_AES256_GCM] = "aes256-gcm",
};
static const char *const kt_names[] = {
	[HISP_KT_OAEP_SHA256] = "rsa-oaep-sha256", [HISP_KT_OAEP_SHA1] = "rsa-oaep-sha1", [HISP_KT_PKCS1] = "rsa-pkcs1",
};
static const char *const digest_names[] = { [HISP_SHA256] = "sha256", [HISP_SHA384] = "sha384", [HISP_SHA512] = "sha512" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static hie_err_t parse_name(const char *s, const char *const *names, size_t n, int *out)
{
	if (!s)
		return HIE_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (names[i] && strcmp(s, names[i]) == 0) {
			*out = (int)i;
			return HIE_OK;
		}
	}
	return HIE_EINVAL;
}

hie_err_t hisp_cipher_parse(const char *s, enum hisp_cipher *out)
{
	int v;
	hie_err_t err = parse_name(s, cipher_names, NELEM(cipher_names), &v);
	if (!err)
		*out = (enum hisp_cipher)v;
	return err;
}

hie_err_t hisp_kt_parse(const char *s, enum hisp_key_transport *out)
{
	int v;
	hie_err_t err = parse_name(s, kt_names, NELEM(kt_names), &v);
	if (!err)
		*out = (enum hisp_key_transport)v;
	return err;
}

hie_err_t hisp_digest_parse(const char *s, enum hisp_digest *out)
{
	int v;
	hie_err_t err = parse_name(s, digest_names, NELEM(digest_names), &v);
	if (!err)
		*out = (enum hisp_digest)v;
	return err;
}

const char *hisp_cipher_name(enum hisp_cipher c)
{
	return (unsigned)c < NELEM(cipher_names) ? cipher_names[c] : "unknown";
}

const char *hisp_kt_name(enum hisp_key_transport k)
{
	return (unsigned)k < NELEM(kt_names) ? kt_names[k] : "unknown";
}

const char *hisp_digest_name(enum hisp_digest d)
{
	return (unsigned)d < NELEM(digest_names) ? digest_names[d] : "unknown";
}

const EVP_CIPHER *hisp_smime_cipher_evp(enum hisp_cipher c)
{
	switch (c) {
	case HISP_AES128_CBC: return EVP_aes_128_cbc();
	case HISP_AES192_CBC: return EVP_aes_192_cbc();
	case HISP_AES256_CBC: return EVP_aes_256_cbc();
	case HISP_AES128_GCM: return EVP_aes_128_gcm();
	case HISP_AES256_GCM: return EVP_aes_256_gcm();
	}
	return NULL;
}

const EVP_MD *hisp_smime_digest_evp(enum hisp_digest d)
{
	switch (d) {
	case HISP_SHA256: return EVP_sha256();
	case HISP_SHA384: return EVP_sha384();
	case HISP_SHA512: return EVP_sha512();
	}
	return NULL;
}

const char *hisp_smime_micalg(enum hisp_digest d)
{
	switch (d) {
	case HISP_SHA256: return "sha-256";
	case HISP_SHA384: return "sha-384";
	case HISP_SHA512: return "sha-512";
	}
	return NULL;
}

/* ---- received algorithms ---- */

static void obj_name(const ASN1_OBJECT *o, int nid, char *name, size_t nlen)
{
	const char *ln = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
	if (ln) {
		size_t i = 0;
		for (; ln[i] && i + 1 < nlen; i++)
			name[i] = (char)(ln[i] >= 'A' && ln[i] <= 'Z' ? ln[i] - 'A' + 'a' : ln[i]);
		name[i] = '\0';
	} else if (OBJ_obj2txt(name, (int)nlen, o, 1) <= 0) {
		snprintf(name, nlen, "%s", "unknown");
	}
}

bool hisp_smime_digest_allowed(const ASN1_OBJECT *alg, char *name, size_t nlen)
{
	int nid = OBJ_obj2nid(alg), dnid = NID_undef, pknid;
	/* Some senders put the signature algorithm (sha256WithRSAEncryption) where the digest belongs;
	 * OpenSSL accepts that, so judge the digest it names. */
	if (nid != NID_undef && OBJ_find_sigid_algs(nid, &dnid, &pknid) && dnid != NID_undef)
		nid = dnid;
	switch (nid) {
	case NID_sha256: snprintf(name, nlen, "%s", "sha256"); return true;
	case NID_sha384: snprintf(name, nlen, "%s", "sha384"); return true;
	case NID_sha512: snprintf(name, nlen, "%s", "sha512"); return true;
	case NID_sha1: snprintf(name, nlen, "%s", "sha1"); return false;
	case NID_md5: snprintf(name, nlen, "%s", "md5"); return false;
	default: obj_name(alg, nid, name, nlen); return false;
	}
}

/*
 * A BER element: tag byte(s), length (definite or indefinite), contents. For an indefinite length the
 * contents run to the matching end-of-contents octets, found by skipping the children.
 */
struct tlv {
	unsigned char tag;        /* first identifier octet */
	const unsigned char *val; /* contents */
	const unsigned char *end; /* just past the element (past the EOC for an indefinite length) */
	bool indef;
};

#define BER_MAX_DEPTH 32

static bool tlv_read(const unsigned char *p, const unsigned char *lim, struct tlv *t, int depth)
{
	if (depth > BER_MAX_DEPTH || lim - p < 2)
		return false;
	t->tag = *p++;
	if ((t->tag & 0x1f) == 0x1f) { /* high tag number: base-128 octets */
		int n = 0;
		while (p < lim && (*p & 0x80) && n++ < 4)
			p++;
		if (p >= lim || (*p & 0x80))
			return false;
		p++;
	}
	if (p >= lim)
		return false;
	unsigned char l = *p++;
	t->indef = false;
	if (l == 0x80) {
		if (!(t->tag & 0x20))
			return false; /* indefinite length only for constructed encodings */
		t->indef = true;
		t->val = p;
		for (;;) {
			if (lim - p >= 2 && p[0] == 0 && p[1] == 0) {
				t->end = p + 2;
				return true;
			}
			struct tlv c;
			if (!tlv_read(p, lim, &c, depth + 1))
				return false;
			p = c.end;
		}
	}
	size_t len = l;
	if (l & 0x80) {
		unsigned n = l & 0x7f;
		if (n == 0 || n > sizeof(size_t) || (size_t)(lim - p) < n)
			return false;
		len = 0;
		for (unsigned i = 0; i < n; i++)
			len = len << 8 | *p++;
	}
	if ((size_t)(lim - p) < len)
		return false;
	t->val = p;
	t->end = p + len;
	return true;
}

/* Children of a constructed element, one at a time. */
struct cursor {
	const unsigned char *p, *lim;
	bool indef;
};

static void cursor_enter(const struct tlv *t, const unsigned char *buf_end, struct cursor *c)
{
	c->p = t->val;
	c->lim = t->indef ? buf_end : t->end;
	c->indef = t->indef;
}

static bool cursor_next(struct cursor *c, struct tlv *t)
{
	if (c->p >= c->lim || (c->indef && c->lim - c->p >= 2 && c->p[0] == 0 && c->p[1] == 0))
		return false;
	if (!tlv_read(c->p, c->lim, t, 1))
		return false;
	c->p = t->end;
	return true;
}

hie_err_t hisp_smime_content_alg(const unsigned char *der, size_t len, char *name, size_t nlen, bool *allowed)
{
	const unsigned char *end = der + len;
	struct tlv ci, t, env, eci, alg;
	struct cursor c;

	*allowed = false;
	/* ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY } */
	if (!tlv_read(der, end, &ci, 0) || ci.tag != 0x30)
		return HIE_EPARSE;
	cursor_enter(&ci, end, &c);
	if (!cursor_next(&c, &t) || t.tag != 0x06 || !cursor_next(&c, &t) || t.tag != 0xa0)
		return HIE_EPARSE;
	cursor_enter(&t, end, &c);
	/* (Auth)EnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL, recipientInfos SET,
	 *                                   (auth)EncryptedContentInfo SEQUENCE, ... } */
	if (!cursor_next(&c, &env) || env.tag != 0x30)
		return HIE_EPARSE;
	cursor_enter(&env, end, &c);
	if (!cursor_next(&c, &t) || t.tag != 0x02 || !cursor_next(&c, &t))
		return HIE_EPARSE;
	if (t.tag == 0xa0 && !cursor_next(&c, &t))
		return HIE_EPARSE;
	if (t.tag != 0x31 || !cursor_next(&c, &eci) || eci.tag != 0x30)
		return HIE_EPARSE;
	/* EncryptedContentInfo ::= SEQUENCE { contentType OID, contentEncryptionAlgorithm AlgorithmIdentifier, ... } */
	cursor_enter(&eci, end, &c);
	if (!cursor_next(&c, &t) || t.tag != 0x06 || !cursor_next(&c, &alg) || alg.tag != 0x30)
		return HIE_EPARSE;
	cursor_enter(&alg, end, &c);
	if (!cursor_next(&c, &t) || t.tag != 0x06)
		return HIE_EPARSE;

	const unsigned char *p = t.val - 2; /* d2i wants the whole TLV; OIDs here are short */
	if (t.val - der < 2 || p[0] != 0x06 || (size_t)p[1] != (size_t)(t.end - t.val))
		return HIE_EPARSE;
	ASN1_OBJECT *o = d2i_ASN1_OBJECT(NULL, &p, t.end - p);
	if (!o)
		return HIE_EPARSE;
	int nid = OBJ_obj2nid(o);
	switch (nid) {
	case NID_aes_128_cbc: case NID_aes_192_cbc: case NID_aes_256_cbc:
	case NID_aes_128_gcm: case NID_aes_192_gcm: case NID_aes_256_gcm:
		*allowed = true;
		break;
	default:
		break;
	}
	obj_name(o, nid, name, nlen);
	ASN1_OBJECT_free(o);
	return HIE_OK;
}
