/*
 * hisp_smime_test.c — S/MIME encode/decode: round trips for every cipher × key transport × digest; our
 * output decrypted and verified by the openssl command; messages made by the openssl command decoded;
 * refusals (3DES, SHA-1 and MD5 signers, unsigned, signed-but-unencrypted, tampered content and
 * ciphertext, no key, garbage base64, truncated CMS); several signers judged one by one; the Direct RI
 * corpus (skipped when ../shared/corpus is absent).
 *
 * The test PKI comes from tests/fixtures/direct/mkpki.sh, run once into a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/core_mime.h"
#include "hisp/hisp_smime.h"

static char dir[64];
static struct hisp_keypair alice, bob, dave;

static const char MSG[] = "From: alice@a.test\nTo: bob@b.test\nSubject: referral\r\nMessage-ID: <1@a.test>\n\n"
			  "Dear Bob,\nplease see the attached summary.\r\n-- \nAlice\n";
/* MSG with every bare LF made CRLF */
static const char MSG_CRLF[] = "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: referral\r\nMessage-ID: <1@a.test>\r\n"
			       "\r\nDear Bob,\r\nplease see the attached summary.\r\n-- \r\nAlice\r\n";

/* ---- helpers ---- */

static char *path(const char *name)
{
	static char p[8][256];
	static int k;
	k = (k + 1) % 8;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	return rc == 0 ? 0 : -1;
}

static char *read_file(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	if (!f)
		return NULL;
	struct hie_buf b;
	hie_buf_init(&b, (size_t)64 << 20);
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		if (hie_buf_add(&b, tmp, n))
			break;
	fclose(f);
	return hie_buf_steal(&b, len);
}

static void write_file(const char *p, const char *data, size_t len)
{
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static X509 *load_cert(const char *p)
{
	BIO *b = BIO_new_file(p, "rb");
	if (!b)
		return NULL;
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!x) {
		(void)BIO_reset(b);
		x = d2i_X509_bio(b, NULL);
	}
	BIO_free(b);
	ERR_clear_error();
	return x;
}

static EVP_PKEY *load_key(const char *p)
{
	BIO *b = BIO_new_file(p, "rb");
	if (!b)
		return NULL;
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	if (!k) {
		(void)BIO_reset(b);
		k = d2i_PrivateKey_bio(b, NULL);
	}
	BIO_free(b);
	ERR_clear_error();
	return k;
}

static int load_pair(struct hisp_keypair *kp, const char *name)
{
	char c[64], k[64];
	snprintf(c, sizeof(c), "%s.pem", name);
	snprintf(k, sizeof(k), "%s.key", name);
	kp->cert = load_cert(path(c));
	kp->key = load_key(path(k));
	return kp->cert && kp->key ? 0 : -1;
}

static void free_pair(struct hisp_keypair *kp)
{
	X509_free(kp->cert);
	EVP_PKEY_free(kp->key);
	kp->cert = NULL;
	kp->key = NULL;
}

static STACK_OF(X509) *stack_of(X509 *a, X509 *b)
{
	STACK_OF(X509) *s = sk_X509_new_null();
	sk_X509_push(s, a);
	if (b)
		sk_X509_push(s, b);
	return s;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hie_smime_test_XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	const char *src = getenv("HIENODE_SRC");
	if (run("%s/tests/fixtures/direct/mkpki.sh %s >/dev/null 2>&1", src ? src : ".", dir) != 0)
		return -1;
	if (load_pair(&alice, "alice") || load_pair(&bob, "bob") || load_pair(&dave, "dave"))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free_pair(&alice);
	free_pair(&bob);
	free_pair(&dave);
	if (getenv("HIE_SMIME_KEEP")) { /* debugging: keep the PKI and the last files */
		print_message("kept %s\n", dir);
		return 0;
	}
	return run("rm -rf '%s'", dir);
}

/* An S/MIME enveloped entity around DER bytes (what another implementation would send). */
static char *envelope_entity(const unsigned char *der, size_t len, const char *ctype, size_t *outlen)
{
	struct hie_buf b;
	hie_buf_init(&b, (size_t)64 << 20);
	assert_int_equal(hie_buf_addf(&b, "From: alice@a.test\r\nTo: bob@b.test\r\nMIME-Version: 1.0\r\n"
					  "Content-Type: %s\r\nContent-Transfer-Encoding: base64\r\n\r\n", ctype),
			 HIE_OK);
	assert_int_equal(hie_mime_base64_encode(der, len, true, &b), HIE_OK);
	assert_int_equal(hie_buf_addstr(&b, "\r\n"), HIE_OK);
	return hie_buf_steal(&b, outlen);
}

/* The DER inside an entity made by hisp_smime_encode. */
static unsigned char *entity_der(const char *ent, size_t len, size_t *derlen)
{
	struct hie_mime_part *p = NULL;
	struct hie_buf b;
	hie_buf_init(&b, (size_t)64 << 20);
	assert_int_equal(hie_mime_parse(ent, len, NULL, &p), HIE_OK);
	assert_int_equal(hie_mime_decode(p, &b), HIE_OK);
	hie_mime_free(p);
	return (unsigned char *)hie_buf_steal(&b, derlen);
}

static char *encode(const char *msg, size_t len, const struct hisp_keypair *signers, size_t n, STACK_OF(X509) *to,
		    enum hisp_cipher c, enum hisp_key_transport kt, enum hisp_digest d, size_t *outlen)
{
	struct hisp_smime_algs a = { .cipher = c, .kt = kt, .digest = d };
	struct hie_buf out;
	hie_buf_init(&out, (size_t)16 << 20);
	assert_int_equal(hisp_smime_encode(msg, len, signers, n, to, &a, &out), HIE_OK);
	return hie_buf_steal(&out, outlen);
}

/* Decodes and checks the common verdict; returns the error. */
static hie_err_t decode(const char *ent, size_t len, const struct hisp_keypair *keys, size_t nkeys,
			struct hisp_smime_result *r, char *reason)
{
	memset(r, 0, sizeof(*r));
	return hisp_smime_decode(ent, len, keys, nkeys, r, reason, 128);
}

/* ---- names ---- */

static void test_names(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int kind; /* 0 cipher, 1 kt, 2 digest */
		int value;
	} ok[] = {
		{ "aes128-cbc", 0, HISP_AES128_CBC }, { "aes192-cbc", 0, HISP_AES192_CBC },
		{ "aes256-cbc", 0, HISP_AES256_CBC }, { "aes128-gcm", 0, HISP_AES128_GCM },
		{ "aes256-gcm", 0, HISP_AES256_GCM }, { "rsa-oaep-sha256", 1, HISP_KT_OAEP_SHA256 },
		{ "rsa-oaep-sha1", 1, HISP_KT_OAEP_SHA1 }, { "rsa-pkcs1", 1, HISP_KT_PKCS1 },
		{ "sha256", 2, HISP_SHA256 }, { "sha384", 2, HISP_SHA384 }, { "sha512", 2, HISP_SHA512 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		enum hisp_cipher c;
		enum hisp_key_transport k;
		enum hisp_digest d;
		switch (ok[i].kind) {
		case 0:
			assert_int_equal(hisp_cipher_parse(ok[i].name, &c), HIE_OK);
			assert_int_equal(c, ok[i].value);
			assert_string_equal(hisp_cipher_name(c), ok[i].name);
			break;
		case 1:
			assert_int_equal(hisp_kt_parse(ok[i].name, &k), HIE_OK);
			assert_int_equal(k, ok[i].value);
			assert_string_equal(hisp_kt_name(k), ok[i].name);
			break;
		default:
			assert_int_equal(hisp_digest_parse(ok[i].name, &d), HIE_OK);
			assert_int_equal(d, ok[i].value);
			assert_string_equal(hisp_digest_name(d), ok[i].name);
		}
	}
	static const char *const bad[] = { "", "AES128-CBC", "aes128", "des-ede3-cbc", "sha1", "md5", "rsa",
					   "sha256 ", "aes128-cbc\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum hisp_cipher c;
		enum hisp_key_transport k;
		enum hisp_digest d;
		assert_int_equal(hisp_cipher_parse(bad[i], &c), HIE_EINVAL);
		assert_int_equal(hisp_kt_parse(bad[i], &k), HIE_EINVAL);
		assert_int_equal(hisp_digest_parse(bad[i], &d), HIE_EINVAL);
	}
	enum hisp_cipher c;
	assert_int_equal(hisp_cipher_parse(NULL, &c), HIE_EINVAL);
	assert_string_equal(hisp_cipher_name((enum hisp_cipher)99), "unknown");
}

/* ---- round trips ---- */

static const char *const cipher_ossl[] = {
	[HISP_AES128_CBC] = "aes-128-cbc", [HISP_AES192_CBC] = "aes-192-cbc", [HISP_AES256_CBC] = "aes-256-cbc",
	[HISP_AES128_GCM] = "aes-128-gcm", [HISP_AES256_GCM] = "aes-256-gcm",
};
static const char *const micalg[] = { [HISP_SHA256] = "micalg=sha-256", [HISP_SHA384] = "micalg=sha-384",
				      [HISP_SHA512] = "micalg=sha-512" };

static void check_ok(const struct hisp_smime_result *r, X509 *signer)
{
	assert_true(r->wrapped);
	assert_int_equal(r->message_len, strlen(MSG_CRLF));
	assert_memory_equal(r->message, MSG_CRLF, r->message_len);
	assert_true(r->content_len > r->message_len);
	assert_memory_equal(r->content, "Content-Type: message/rfc822\r\n\r\n", 32);
	assert_int_equal(r->nsigners, 1);
	assert_true(r->signers[0].verified);
	assert_non_null(r->signers[0].cert);
	assert_int_equal(X509_cmp(r->signers[0].cert, signer), 0);
	assert_non_null(r->certs);
	assert_true(sk_X509_num(r->certs) >= 1);
}

static void test_roundtrip_all(void **state)
{
	(void)state;
	STACK_OF(X509) *to = stack_of(bob.cert, alice.cert);
	for (int c = HISP_AES128_CBC; c <= HISP_AES256_GCM; c++) {
		for (int k = HISP_KT_OAEP_SHA256; k <= HISP_KT_PKCS1; k++) {
			for (int d = HISP_SHA256; d <= HISP_SHA512; d++) {
				size_t n;
				char *ent = encode(MSG, strlen(MSG), &alice, 1, to, c, k, d, &n);
				assert_non_null(strstr(ent, "Content-Type: application/pkcs7-mime; "
							    "smime-type=enveloped-data; name=\"smime.p7m\"\r\n"));
				struct hisp_smime_result r;
				char reason[128];
				/* The recipient, then the sender's own copy. */
				for (int who = 0; who < 2; who++) {
					hie_err_t err = decode(ent, n, who ? &alice : &bob, 1, &r, reason);
					if (err)
						fail_msg("c=%d k=%d d=%d who=%d: %s %s", c, k, d, who, hie_errname(err),
							 reason);
					check_ok(&r, alice.cert);
					assert_string_equal(r.cipher, cipher_ossl[c]);
					assert_int_equal(r.decrypt_key, 0);
					assert_non_null(strstr(r.content, "message/rfc822"));
					hisp_smime_result_free(&r);
				}
				/* The micalg names the digest: look inside with the keys we have. */
				(void)micalg;
				free(ent);
			}
		}
	}
	sk_X509_free(to);
}

/* micalg, protocol and the signature part as RFC 5751 §3.4.3 describes them (checked on the plaintext). */
static void test_signed_layout(void **state)
{
	(void)state;
	STACK_OF(X509) *to = stack_of(bob.cert, NULL);
	for (int d = HISP_SHA256; d <= HISP_SHA512; d++) {
		size_t n;
		char *ent = encode(MSG, strlen(MSG), &alice, 1, to, HISP_AES128_CBC, HISP_KT_OAEP_SHA256, d, &n);
		write_file(path("layout.eml"), ent, n);
		assert_int_equal(run("openssl cms -decrypt -binary -recip %s -inkey %s -in %s -out %s 2>/dev/null",
				     path("bob.pem"), path("bob.key"), path("layout.eml"), path("layout.dec")),
				 0);
		size_t dl;
		char *dec = read_file(path("layout.dec"), &dl);
		assert_non_null(dec);
		assert_non_null(strstr(dec, micalg[d]));
		assert_non_null(strstr(dec, "protocol=\"application/pkcs7-signature\""));
		assert_non_null(strstr(dec, "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"));
		assert_non_null(strstr(dec, "Content-Disposition: attachment; filename=smime.p7s\r\n"));
		assert_non_null(strstr(dec, MSG_CRLF));
		assert_null(strstr(dec, "\n\n")); /* no bare LF left anywhere */
		free(dec);
		free(ent);
	}
	sk_X509_free(to);
}

/* ---- the openssl command reads what we send ---- */

static void test_openssl_reads_ours(void **state)
{
	(void)state;
	static const struct {
		enum hisp_cipher c;
		enum hisp_key_transport k;
		enum hisp_digest d;
		const char *kea; /* expected in the printed keyEncryptionAlgorithm */
	} cases[] = {
		{ HISP_AES128_CBC, HISP_KT_OAEP_SHA256, HISP_SHA256, "rsaesOaep" },
		{ HISP_AES192_CBC, HISP_KT_OAEP_SHA1, HISP_SHA384, "rsaesOaep" },
		{ HISP_AES256_CBC, HISP_KT_PKCS1, HISP_SHA512, "rsaEncryption" },
		{ HISP_AES128_GCM, HISP_KT_OAEP_SHA256, HISP_SHA256, "rsaesOaep" },
		{ HISP_AES256_GCM, HISP_KT_PKCS1, HISP_SHA256, "rsaEncryption" },
	};
	STACK_OF(X509) *to = stack_of(alice.cert, bob.cert);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n;
		char *ent = encode(MSG, strlen(MSG), &alice, 1, to, cases[i].c, cases[i].k, cases[i].d, &n);
		write_file(path("ours.eml"), ent, n);
		free(ent);
		if (run("openssl cms -decrypt -binary -recip %s -inkey %s -in %s | "
			"openssl cms -verify -CAfile %s -out %s 2>/dev/null",
			path("bob.pem"), path("bob.key"), path("ours.eml"), path("ca.pem"), path("ours.out")) != 0)
			fail_msg("openssl cannot decrypt+verify case %zu", i);
		size_t ol;
		char *o = read_file(path("ours.out"), &ol);
		assert_non_null(o);
		assert_int_equal(ol, 32 + strlen(MSG_CRLF));
		assert_memory_equal(o + 32, MSG_CRLF, strlen(MSG_CRLF));
		free(o);
		/* The RecipientInfo says what we meant: OAEP with the right hash, or PKCS#1 v1.5. */
		assert_int_equal(run("openssl cms -cmsout -print -in %s > %s 2>/dev/null", path("ours.eml"),
				     path("ours.txt")),
				 0);
		char *txt = read_file(path("ours.txt"), &ol);
		assert_non_null(strstr(txt, cases[i].kea));
		assert_non_null(strstr(txt, cipher_ossl[cases[i].c]));
		if (cases[i].k == HISP_KT_OAEP_SHA256)
			assert_non_null(strstr(txt, "sha256"));
		if (cases[i].c >= HISP_AES128_GCM)
			assert_non_null(strstr(txt, "authEnvelopedData"));
		free(txt);
	}
	sk_X509_free(to);
}

/* ---- messages made by the openssl command ---- */

/* w.eml: the wrapped message as an AS 1.3 sender signs it. */
static void write_wrapped(void)
{
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	assert_int_equal(hie_buf_addstr(&b, "Content-Type: message/rfc822\r\n\r\n"), HIE_OK);
	assert_int_equal(hie_buf_addstr(&b, MSG_CRLF), HIE_OK);
	write_file(path("w.eml"), b.data, b.len);
	hie_buf_free(&b);
}

struct ossl_case {
	const char *name;
	const char *sign;    /* extra options for cms -sign, NULL: no signature */
	const char *encrypt; /* options for cms -encrypt, NULL: not encrypted */
	const char *tamper;  /* replace this text in the signed output before encryption */
	hie_err_t err;
	const char *reason;
	const char *signer_reason; /* first signer's reason when it is not verified */
	const char *cipher;
};

static void run_ossl_case(const struct ossl_case *tc)
{
	const char *in = path("w.eml");
	if (tc->sign) {
		if (run("openssl cms -sign -binary -in %s -signer %s -inkey %s %s -out %s 2>/dev/null", in,
			path("alice.pem"), path("alice.key"), tc->sign, path("s.eml")) != 0)
			fail_msg("%s: openssl cms -sign failed", tc->name);
		in = path("s.eml");
		if (tc->tamper) {
			size_t sl;
			char *s = read_file(in, &sl);
			char *hit = strstr(s, tc->tamper);
			assert_non_null(hit);
			hit[0] ^= 0x01;
			write_file(in, s, sl);
			free(s);
		}
	}
	if (tc->encrypt) {
		if (run("openssl cms -encrypt -binary -in %s -recip %s %s -out %s 2>/dev/null", in, path("bob.pem"),
			tc->encrypt, path("e.eml")) != 0)
			fail_msg("%s: openssl cms -encrypt failed", tc->name);
		in = path("e.eml");
	}
	size_t n;
	char *ent = read_file(in, &n);
	assert_non_null(ent);
	struct hisp_smime_result r;
	char reason[128];
	hie_err_t err = decode(ent, n, &bob, 1, &r, reason);
	if (err != tc->err)
		fail_msg("%s: got %s (%s), want %s", tc->name, hie_errname(err), reason, hie_errname(tc->err));
	if (tc->reason)
		assert_string_equal(reason, tc->reason);
	if (tc->cipher)
		assert_string_equal(r.cipher, tc->cipher);
	if (!err) {
		check_ok(&r, alice.cert);
	} else if (tc->signer_reason) {
		assert_int_equal(r.nsigners, 1);
		assert_false(r.signers[0].verified);
		assert_string_equal(r.signers[0].reason, tc->signer_reason);
		assert_non_null(r.signers[0].cert); /* still there for the caller's log */
	}
	hisp_smime_result_free(&r);
	free(ent);
}

static void test_openssl_made(void **state)
{
	(void)state;
	static const struct ossl_case cases[] = {
		{ .name = "aes128", .sign = "-md sha256", .encrypt = "-aes128", .cipher = "aes-128-cbc" },
		{ .name = "aes256", .sign = "-md sha256", .encrypt = "-aes256", .cipher = "aes-256-cbc" },
		{ .name = "aes192 sha512", .sign = "-md sha512", .encrypt = "-aes192", .cipher = "aes-192-cbc" },
		{ .name = "oaep-sha256",
		  .sign = "-md sha256",
		  .encrypt = "-aes128 -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256",
		  .cipher = "aes-128-cbc" },
		{ .name = "oaep-sha1", .sign = "-md sha384", .encrypt = "-aes256 -keyopt rsa_padding_mode:oaep",
		  .cipher = "aes-256-cbc" },
		{ .name = "gcm", .sign = "-md sha256", .encrypt = "-aes-256-gcm", .cipher = "aes-256-gcm" },
		{ .name = "gcm128", .sign = "-md sha256", .encrypt = "-aes-128-gcm", .cipher = "aes-128-gcm" },
		{ .name = "no signed attributes", .sign = "-md sha256 -noattr", .encrypt = "-aes128" },
		{ .name = "3des",
		  .sign = "-md sha256",
		  .encrypt = "-des3",
		  .err = HIE_EDENIED,
		  .reason = "cipher des-ede3-cbc not allowed",
		  .cipher = "des-ede3-cbc" },
		{ .name = "sha1 signer",
		  .sign = "-md sha1",
		  .encrypt = "-aes128",
		  .err = HIE_EDENIED,
		  .reason = "no valid signature: digest sha1 not allowed",
		  .signer_reason = "digest sha1 not allowed" },
		{ .name = "md5 signer",
		  .sign = "-md md5",
		  .encrypt = "-aes128",
		  .err = HIE_EDENIED,
		  .reason = "no valid signature: digest md5 not allowed",
		  .signer_reason = "digest md5 not allowed" },
		{ .name = "unsigned", .encrypt = "-aes128", .err = HIE_EDENIED, .reason = "not signed" },
		{ .name = "signed, not encrypted",
		  .sign = "-md sha256",
		  .err = HIE_EDENIED,
		  .reason = "signed but not encrypted" },
		{ .name = "plain", .err = HIE_EDENIED, .reason = "not encrypted" },
		{ .name = "opaque signed",
		  .sign = "-md sha256 -nodetach",
		  .err = HIE_EDENIED,
		  .reason = "signed but not encrypted" },
		{ .name = "opaque signed, encrypted",
		  .sign = "-md sha256 -nodetach",
		  .encrypt = "-aes128",
		  .err = HIE_EDENIED,
		  .reason = "not signed" },
		{ .name = "tampered",
		  .sign = "-md sha256",
		  .encrypt = "-aes128",
		  .tamper = "Dear Bob",
		  .err = HIE_EDENIED,
		  .reason = "no valid signature: content does not match the signed digest",
		  .signer_reason = "content does not match the signed digest" },
		{ .name = "tampered, no signed attributes",
		  .sign = "-md sha256 -noattr",
		  .encrypt = "-aes128",
		  .tamper = "Dear Bob",
		  .err = HIE_EDENIED,
		  .reason = "no valid signature: signature does not verify",
		  .signer_reason = "signature does not verify" },
	};
	write_wrapped();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_ossl_case(&cases[i]);
}

/* ---- hostile envelopes ---- */

static void test_bad_envelopes(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		const char *msg;
		hie_err_t err;
		const char *reason;
	} cases[] = {
		{ "garbage base64",
		  "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
		  "Content-Transfer-Encoding: base64\r\n\r\n!!!not*base64###\r\n",
		  HIE_EPARSE, "malformed base64" },
		{ "base64 of garbage",
		  "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
		  "Content-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQ=\r\n",
		  HIE_EPARSE, "malformed CMS" },
		{ "empty body",
		  "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
		  "Content-Transfer-Encoding: base64\r\n\r\n",
		  HIE_EPARSE, "malformed CMS" },
		{ "unknown encoding",
		  "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
		  "Content-Transfer-Encoding: x-uuencode\r\n\r\nabc\r\n",
		  HIE_EPARSE, "malformed base64" },
		{ "signed-data smime-type",
		  "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\nMAA=\r\n", HIE_EDENIED,
		  "signed but not encrypted" },
		{ "certs-only", "Content-Type: application/pkcs7-mime; smime-type=certs-only\r\n\r\nMAA=\r\n",
		  HIE_EDENIED, "not encrypted" },
		{ "multipart/signed",
		  "Content-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n\r\na\r\n--x\r\n\r\nb\r\n--x--\r\n",
		  HIE_EDENIED, "signed but not encrypted" },
		{ "text", "Subject: hi\r\n\r\nhello\r\n", HIE_EDENIED, "not encrypted" },
		{ "no header line", "no colon here\r\n\r\n", HIE_EPARSE, "malformed MIME" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hisp_smime_result r;
		char reason[128];
		hie_err_t err = decode(cases[i].msg, strlen(cases[i].msg), &bob, 1, &r, reason);
		if (err != cases[i].err || strcmp(reason, cases[i].reason) != 0)
			fail_msg("%s: got %s '%s'", cases[i].name, hie_errname(err), reason);
		assert_null(r.content);
		assert_int_equal(r.nsigners, 0);
		hisp_smime_result_free(&r);
	}
}

static void test_truncated_and_flipped(void **state)
{
	(void)state;
	STACK_OF(X509) *to = stack_of(bob.cert, NULL);
	for (int c = HISP_AES128_CBC; c <= HISP_AES256_GCM; c += HISP_AES128_GCM - HISP_AES128_CBC) {
		size_t n, dl;
		char *ent = encode(MSG, strlen(MSG), &alice, 1, to, c, HISP_KT_OAEP_SHA256, HISP_SHA256, &n);
		unsigned char *der = entity_der(ent, n, &dl);
		struct hisp_smime_result r;
		char reason[128];
		/* Truncated anywhere: never accepted. */
		for (size_t cut = 0; cut < dl; cut += dl / 23 + 1) {
			size_t el;
			char *e = envelope_entity(der, cut, "application/pkcs7-mime; smime-type=enveloped-data", &el);
			hie_err_t err = decode(e, el, &bob, 1, &r, reason);
			assert_int_not_equal(err, HIE_OK);
			hisp_smime_result_free(&r);
			free(e);
		}
		/* The last bytes are ciphertext (CBC) or the GCM tag: a flipped bit is caught. */
		der[dl - 3] ^= 0x40;
		size_t el;
		char *e = envelope_entity(der, dl, "application/x-pkcs7-mime; smime-type=enveloped-data", &el);
		hie_err_t err = decode(e, el, &bob, 1, &r, reason);
		assert_int_not_equal(err, HIE_OK);
		hisp_smime_result_free(&r);
		free(e);
		free(der);
		free(ent);
	}
	sk_X509_free(to);
}

/* ---- keys ---- */

static void test_keys(void **state)
{
	(void)state;
	STACK_OF(X509) *to = stack_of(bob.cert, NULL);
	size_t n;
	char *ent = encode(MSG, strlen(MSG), &alice, 1, to, HISP_AES128_CBC, HISP_KT_PKCS1, HISP_SHA256, &n);
	struct hisp_smime_result r;
	char reason[128];

	/* Not for us. */
	assert_int_equal(decode(ent, n, &alice, 1, &r, reason), HIE_EDENIED);
	assert_string_equal(reason, "no key for any recipient");
	assert_int_equal(r.decrypt_key, -1);
	hisp_smime_result_free(&r);
	assert_int_equal(decode(ent, n, NULL, 0, &r, reason), HIE_EDENIED);
	assert_string_equal(reason, "no key for any recipient");
	hisp_smime_result_free(&r);

	/* The matching one among several. */
	struct hisp_keypair keys[3] = { alice, dave, bob };
	assert_int_equal(decode(ent, n, keys, 3, &r, reason), HIE_OK);
	assert_int_equal(r.decrypt_key, 2);
	check_ok(&r, alice.cert);
	hisp_smime_result_free(&r);

	/* Bob's key presented with another certificate: found by trying every key (as the Direct RI does). */
	struct hisp_keypair odd[2] = { alice, { .cert = dave.cert, .key = bob.key } };
	assert_int_equal(decode(ent, n, odd, 2, &r, reason), HIE_OK);
	assert_int_equal(r.decrypt_key, 1);
	hisp_smime_result_free(&r);
	free(ent);

	/* The same with OAEP and GCM. */
	ent = encode(MSG, strlen(MSG), &alice, 1, to, HISP_AES256_GCM, HISP_KT_OAEP_SHA256, HISP_SHA256, &n);
	assert_int_equal(decode(ent, n, odd, 2, &r, reason), HIE_OK);
	assert_int_equal(r.decrypt_key, 1);
	hisp_smime_result_free(&r);
	assert_int_equal(decode(ent, n, &dave, 1, &r, reason), HIE_EDENIED);
	assert_string_equal(reason, "no key for any recipient");
	hisp_smime_result_free(&r);
	free(ent);
	sk_X509_free(to);
}

/* ---- several signers ---- */

/* An enveloped multipart/signed with one SignerInfo per (keypair, digest); corrupt[i] breaks signature i. */
static char *multi_signed(const struct hisp_keypair *kp, const EVP_MD **mds, const bool *corrupt, size_t n,
			  unsigned nocerts_mask, size_t *outlen)
{
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	const char *w = "Content-Type: message/rfc822\r\n\r\n";
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_DETACHED | CMS_BINARY | CMS_PARTIAL);
	assert_non_null(cms);
	for (size_t i = 0; i < n; i++)
		assert_non_null(CMS_add1_signer(cms, kp[i].cert, kp[i].key, mds[i],
						(nocerts_mask >> i & 1) ? CMS_NOCERTS : 0));
	struct hie_buf wb;
	hie_buf_init(&wb, 1 << 20);
	assert_int_equal(hie_buf_addstr(&wb, w), HIE_OK);
	assert_int_equal(hie_buf_addstr(&wb, MSG_CRLF), HIE_OK);
	BIO *in = BIO_new_mem_buf(wb.data, (int)wb.len);
	assert_int_equal(CMS_final(cms, in, NULL, CMS_DETACHED | CMS_BINARY), 1);
	BIO_free(in);
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	for (size_t i = 0; i < n; i++) {
		if (!corrupt[i])
			continue;
		ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(sk_CMS_SignerInfo_value(sis, (int)i));
		sig->data[sig->length / 2] ^= 0x55;
	}
	unsigned char *der = NULL;
	int dl = i2d_CMS_ContentInfo(cms, &der);
	assert_true(dl > 0);
	CMS_ContentInfo_free(cms);
	assert_int_equal(hie_buf_addstr(&b, "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";"
					    " micalg=sha-256; boundary=\"b1\"\r\n\r\n--b1\r\n"),
			 HIE_OK);
	assert_int_equal(hie_buf_add(&b, wb.data, wb.len), HIE_OK);
	assert_int_equal(hie_buf_addstr(&b, "\r\n--b1\r\nContent-Type: application/x-pkcs7-signature\r\n"
					    "Content-Transfer-Encoding: base64\r\n\r\n"),
			 HIE_OK);
	assert_int_equal(hie_mime_base64_encode(der, (size_t)dl, true, &b), HIE_OK);
	/* No close delimiter: real Direct senders omit it, and the parse is lenient there. */
	assert_int_equal(hie_buf_addstr(&b, "\r\n"), HIE_OK);
	OPENSSL_free(der);
	hie_buf_free(&wb);

	CMS_ContentInfo *env = CMS_encrypt(NULL, NULL, EVP_aes_128_cbc(), CMS_BINARY | CMS_PARTIAL);
	assert_non_null(CMS_add1_recipient_cert(env, bob.cert, 0));
	in = BIO_new_mem_buf(b.data, (int)b.len);
	assert_int_equal(CMS_final(env, in, NULL, CMS_BINARY), 1);
	BIO_free(in);
	der = NULL;
	dl = i2d_CMS_ContentInfo(env, &der);
	CMS_ContentInfo_free(env);
	hie_buf_free(&b);
	char *ent = envelope_entity(der, (size_t)dl, "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m",
				    outlen);
	OPENSSL_free(der);
	return ent;
}

static void test_signers(void **state)
{
	(void)state;
	const EVP_MD *md256 = EVP_sha256(), *md1 = EVP_sha1(), *md512 = EVP_sha512();
	static const struct {
		const char *name;
		int who[2];      /* 0 alice, 1 dave */
		int md[2];       /* 0 sha256, 1 sha1, 2 sha512 */
		bool corrupt[2];
		unsigned nocerts;
		bool ok[2];
		const char *why[2];
	} cases[] = {
		{ "good, sha1", { 0, 1 }, { 0, 1 }, { false, false }, 0, { true, false },
		  { "", "digest sha1 not allowed" } },
		{ "sha1, good", { 1, 0 }, { 1, 0 }, { false, false }, 0, { false, true },
		  { "digest sha1 not allowed", "" } },
		{ "good, bad signature", { 0, 1 }, { 0, 2 }, { false, true }, 0, { true, false },
		  { "", "signature does not verify" } },
		{ "bad signature, good", { 1, 0 }, { 2, 0 }, { true, false }, 0, { false, true },
		  { "signature does not verify", "" } },
		{ "no certificate, good", { 1, 0 }, { 0, 2 }, { false, false }, 1, { false, true },
		  { "signer certificate missing", "" } },
		{ "both good", { 0, 1 }, { 2, 0 }, { false, false }, 0, { true, true }, { "", "" } },
		{ "both bad", { 0, 1 }, { 1, 0 }, { false, true }, 0, { false, false },
		  { "digest sha1 not allowed", "signature does not verify" } },
	};
	const struct hisp_keypair *who[] = { &alice, &dave };
	const EVP_MD *mds[] = { md256, md1, md512 };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hisp_keypair kp[2] = { *who[cases[i].who[0]], *who[cases[i].who[1]] };
		const EVP_MD *m[2] = { mds[cases[i].md[0]], mds[cases[i].md[1]] };
		size_t n;
		char *ent = multi_signed(kp, m, cases[i].corrupt, 2, cases[i].nocerts, &n);
		struct hisp_smime_result r;
		char reason[128];
		hie_err_t err = decode(ent, n, &bob, 1, &r, reason);
		bool any = cases[i].ok[0] || cases[i].ok[1];
		if (err != (any ? HIE_OK : HIE_EDENIED))
			fail_msg("%s: %s %s", cases[i].name, hie_errname(err), reason);
		if (!any && strncmp(reason, "no valid signature", 18) != 0)
			fail_msg("%s: reason %s", cases[i].name, reason);
		assert_int_equal(r.nsigners, 2);
		assert_true(r.wrapped);
		assert_memory_equal(r.message, MSG_CRLF, strlen(MSG_CRLF));
		/* DER sorts the SET OF SignerInfos: find each one by its certificate. */
		bool seen[2] = { false, false };
		for (int k = 0; k < 2; k++) {
			const struct hisp_smime_signer *g = &r.signers[k];
			int s = -1;
			for (int j = 0; j < 2; j++)
				if (g->cert ? X509_cmp(g->cert, kp[j].cert) == 0 : (cases[i].nocerts >> j & 1))
					s = j;
			assert_true(s >= 0 && !seen[s]);
			seen[s] = true;
			if (g->verified != cases[i].ok[s])
				fail_msg("%s: signer %d verified=%d (%s)", cases[i].name, s, g->verified, g->reason);
			if (!cases[i].ok[s])
				assert_string_equal(g->reason, cases[i].why[s]);
			else
				assert_string_equal(g->reason, "");
		}
		hisp_smime_result_free(&r);
		free(ent);
	}
}

/* ---- encode arguments and caps ---- */

static void test_encode_args(void **state)
{
	(void)state;
	STACK_OF(X509) *to = stack_of(bob.cert, NULL), *none = sk_X509_new_null();
	struct hisp_smime_algs a = { .cipher = HISP_AES128_CBC, .kt = HISP_KT_OAEP_SHA256, .digest = HISP_SHA256 };
	struct hisp_smime_algs bad = { .cipher = (enum hisp_cipher)9, .kt = HISP_KT_PKCS1, .digest = HISP_SHA256 };
	struct hie_buf out;
	hie_buf_init(&out, 1 << 20);
	assert_int_equal(hie_buf_addstr(&out, "X-Before: 1\r\n"), HIE_OK);
	size_t before = out.len;

	assert_int_equal(hisp_smime_encode(MSG, strlen(MSG), &alice, 0, to, &a, &out), HIE_EINVAL);
	assert_int_equal(hisp_smime_encode(MSG, strlen(MSG), &alice, 1, none, &a, &out), HIE_EINVAL);
	assert_int_equal(hisp_smime_encode(MSG, strlen(MSG), &alice, 1, NULL, &a, &out), HIE_EINVAL);
	assert_int_equal(hisp_smime_encode(MSG, strlen(MSG), &alice, 1, to, &bad, &out), HIE_EINVAL);
	assert_int_equal(hisp_smime_encode(MSG, strlen(MSG), &alice, 1, to, NULL, &out), HIE_EINVAL);
	/* A key that is not the certificate's. */
	struct hisp_keypair wrong = { .cert = alice.cert, .key = bob.key };
	assert_int_equal(hisp_smime_encode(MSG, strlen(MSG), &wrong, 1, to, &a, &out), HIE_ETLS);
	assert_int_equal(out.len, before);

	/* Over the cap: nothing appended. */
	struct hie_buf small;
	hie_buf_init(&small, 2000);
	char *big = malloc(4000);
	memset(big, 'a', 4000);
	assert_int_equal(hisp_smime_encode(big, 4000, &alice, 1, to, &a, &small), HIE_ETOOBIG);
	assert_int_equal(small.len, 0);
	/* Under the input cap but the signature and envelope push it over: still nothing appended. */
	assert_int_equal(hisp_smime_encode(big, 1000, &alice, 1, to, &a, &small), HIE_ETOOBIG);
	assert_int_equal(small.len, 0);
	free(big);
	hie_buf_free(&small);

	/* Appends after what is there; an empty message works. */
	assert_int_equal(hisp_smime_encode("", 0, &alice, 1, to, &a, &out), HIE_OK);
	assert_memory_equal(out.data, "X-Before: 1\r\nContent-Type: application/pkcs7-mime", 49);
	struct hisp_smime_result r;
	char reason[128];
	assert_int_equal(decode(out.data + before, out.len - before, &bob, 1, &r, reason), HIE_OK);
	assert_int_equal(r.message_len, 0);
	assert_true(r.wrapped);
	hisp_smime_result_free(&r);
	hie_buf_free(&out);

	/* Two signers from encode: both verify. */
	struct hisp_keypair two[2] = { alice, dave };
	size_t n;
	char *ent = encode(MSG, strlen(MSG), two, 2, to, HISP_AES256_CBC, HISP_KT_OAEP_SHA256, HISP_SHA384, &n);
	assert_int_equal(decode(ent, n, &bob, 1, &r, reason), HIE_OK);
	assert_int_equal(r.nsigners, 2);
	assert_true(r.signers[0].verified && r.signers[1].verified);
	assert_int_equal(sk_X509_num(r.certs), 2);
	hisp_smime_result_free(&r);
	free(ent);

	/* Decode arguments. */
	assert_int_equal(hisp_smime_decode("x", 1, &bob, 1, NULL, reason, sizeof(reason)), HIE_EINVAL);
	assert_int_equal(hisp_smime_decode(NULL, 5, &bob, 1, &r, reason, sizeof(reason)), HIE_EINVAL);
	sk_X509_free(to);
	sk_X509_free(none);
}

/* A message that contains a line looking like a MIME boundary, and a large one. */
static void test_content_shapes(void **state)
{
	(void)state;
	STACK_OF(X509) *to = stack_of(bob.cert, NULL);
	struct hie_buf m;
	hie_buf_init(&m, 4 << 20);
	assert_int_equal(hie_buf_addstr(&m, "Subject: x\n\n------=_hienode_\n--\n\n"), HIE_OK);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(hie_buf_addf(&m, "<line n=\"%d\">%s</line>\n", i, i % 7 ? "text" : ""), HIE_OK);
	assert_int_equal(hie_buf_addstr(&m, "no final line end"), HIE_OK);
	size_t n;
	char *ent = encode(m.data, m.len, &alice, 1, to, HISP_AES256_GCM, HISP_KT_OAEP_SHA1, HISP_SHA512, &n);
	struct hisp_smime_result r;
	char reason[128];
	assert_int_equal(decode(ent, n, &bob, 1, &r, reason), HIE_OK);
	/* Every LF became CRLF, nothing else changed. */
	size_t lfs = 0;
	for (size_t i = 0; i < m.len; i++)
		lfs += m.data[i] == '\n';
	assert_int_equal(r.message_len, m.len + lfs);
	assert_memory_equal(r.message + r.message_len - 17, "no final line end", 17);
	assert_true(r.signers[0].verified);
	hisp_smime_result_free(&r);
	free(ent);
	hie_buf_free(&m);
	sk_X509_free(to);
}

/* ---- the Direct RI corpus ---- */

static void test_direct_ri(void **state)
{
	(void)state;
	const char *src = getenv("HIENODE_SRC");
	char base[512], p[700];
	snprintf(base, sizeof(base), "%s/../shared/corpus/direct-ri/src/test/resources", src ? src : ".");
	struct stat st;
	if (stat(base, &st) != 0) {
		print_message("SKIPPED: Direct RI corpus not found at %s\n", base);
		skip();
	}
	struct hisp_keypair ryan;
	snprintf(p, sizeof(p), "%s/certs/ryan.der", base);
	ryan.cert = load_cert(p);
	snprintf(p, sizeof(p), "%s/certs/ryanKey.der", base);
	ryan.key = load_key(p);
	assert_non_null(ryan.cert);
	assert_non_null(ryan.key);
	static const struct {
		const char *file;
		hie_err_t err;
		const char *reason;
		const char *cipher;
	} cases[] = {
		/* AES-128, RSA PKCS#1 v1.5, one SHA-256 signer (gm2552@securehealthemail.com). */
		{ "EncAttachment.txt", HIE_OK, "", "aes-128-cbc" },
		{ "EncryptedMessage2.txt", HIE_OK, "", "aes-128-cbc" },
		/* Encrypted to a certificate the corpus has no key for. */
		{ "EncAttachment2.txt", HIE_EDENIED, "no key for any recipient", "aes-128-cbc" },
		{ "EncryptedMessage.txt", HIE_EDENIED, "cipher des-ede3-cbc not allowed", "des-ede3-cbc" },
		{ "EncryptedMessage3.txt", HIE_EDENIED, "cipher des-ede3-cbc not allowed", "des-ede3-cbc" },
		{ "LargeEncAttachment.txt", HIE_EDENIED, "cipher des-ede3-cbc not allowed", "des-ede3-cbc" },
		{ "MessageWithAttachment.txt", HIE_EDENIED, "not encrypted", "" },
		/* A multipart without its close delimiter still gets the precise refusal. */
		{ "MultipartMimeMessage.txt", HIE_EDENIED, "not encrypted", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(p, sizeof(p), "%s/org/nhindirect/stagent/%s", base, cases[i].file);
		size_t n;
		char *msg = read_file(p, &n);
		assert_non_null(msg);
		struct hisp_smime_result r;
		char reason[128];
		hie_err_t err = decode(msg, n, &ryan, 1, &r, reason);
		if (err != cases[i].err || strcmp(reason, cases[i].reason) != 0)
			fail_msg("%s: %s '%s'", cases[i].file, hie_errname(err), reason);
		assert_string_equal(r.cipher, cases[i].cipher);
		if (!err) {
			assert_true(r.wrapped);
			assert_int_equal(r.nsigners, 1);
			assert_true(r.signers[0].verified);
			assert_non_null(strstr(r.message, "From: Greg Meyer <gm2552@securehealthemail.com>"));
			print_message("%s: signer verified, %d certificates\n", cases[i].file, sk_X509_num(r.certs));
		}
		hisp_smime_result_free(&r);
		free(msg);
	}
	free_pair(&ryan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_signed_layout),
		cmocka_unit_test(test_openssl_reads_ours),
		cmocka_unit_test(test_openssl_made),
		cmocka_unit_test(test_bad_envelopes),
		cmocka_unit_test(test_truncated_and_flipped),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_signers),
		cmocka_unit_test(test_encode_args),
		cmocka_unit_test(test_content_shapes),
		cmocka_unit_test(test_direct_ri),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
