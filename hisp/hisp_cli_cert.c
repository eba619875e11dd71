/*
 * hisp_cli_cert.c — `hienode cert`: our certificates and keys and our partners' certificates (one-shot, on
 * c->pool; conventions in hisp_cli_int.h):
 *
 *   cert import (--address ADDR | --domain D) --cert FILE [--key FILE] [--usage sign|encrypt|both]
 *   cert list [ADDR|DOMAIN] | remove FINGERPRINT | discover ADDR (hisp_cli_cert_discover, hisp_discovery.c)
 *
 * `cert import --key` writes the private key under <state_dir>/keys (hisp_keys_store_key) inside the
 * transaction that inserts the row; if the transaction fails the file is removed again.
 *
 * Entry point: hisp_cli_cert (hisp.h). Exit status 0 done, 1 failed, 2 bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hisp/hisp_cli_int.h"
#include "hisp/hisp_discovery.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_trust_int.h"

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag;
	*(bool *)u = true;
	return -1;
}

/* A private key from PEM (PKCS#8 or traditional) or DER (either); encrypted keys are refused. */
static EVP_PKEY *parse_key(const struct hie_buf *b, bool *encrypted)
{
	*encrypted = false;
	EVP_PKEY *k = NULL;
	BIO *bio = BIO_new_mem_buf(b->data, (int)b->len);
	if (bio)
		k = PEM_read_bio_PrivateKey(bio, NULL, no_password, encrypted);
	BIO_free(bio);
	if (!k && !*encrypted) {
		const unsigned char *p = (const unsigned char *)b->data;
		k = d2i_AutoPrivateKey(NULL, &p, (long)b->len);
		if (k && p != (const unsigned char *)b->data + b->len) {
			EVP_PKEY_free(k);
			k = NULL;
		}
	}
	ERR_clear_error();
	return k;
}

static const char *default_usage(X509 *x)
{
	uint32_t ku = X509_get_key_usage(x);
	if (ku == UINT32_MAX)
		return "both";
	bool sign = ku & KU_DIGITAL_SIGNATURE, enc = ku & KU_KEY_ENCIPHERMENT;
	if (sign && !enc)
		return "sign";
	if (enc && !sign)
		return "encrypt";
	return "both";
}

struct import_ctx {
	const struct hisp_cli *c;
	const char *owner, *bound, *usage, *fp;
	X509 *cert;
	EVP_PKEY *key;
	bool is_address;
	char key_name[HISP_FP_LEN + 8];
	bool wrote_key;
	int rc;            /* 1: refused with msg */
	char msg[300];
};

static hie_err_t import_tx(PGconn *conn, void *arg)
{
	struct import_ctx *x = arg;
	const char *domain = hisp_addr_domain(x->owner);
	hie_err_t err;
	x->rc = 0;
	if (x->key && (err = hisp_cli_need_domain(conn, domain, &x->rc))) {
		if (x->rc)
			snprintf(x->msg, sizeof x->msg, "--key: %s is not one of our domains (hienode domain add %s)", domain,
				 domain);
		return err;
	}
	const char *pf[] = {x->fp};
	PGresult *r;
	err = hie_db_exec(conn, "SELECT owner FROM hisp_certs WHERE fingerprint = $1", 1, pf, &r);
	if (err)
		return err;
	if (PQntuples(r) == 1) {
		x->rc = 1;
		snprintf(x->msg, sizeof x->msg, "--cert: already imported (owner %s, fingerprint %s)", PQgetvalue(r, 0, 0),
			 x->fp);
		PQclear(r);
		return HIE_EEXIST;
	}
	PQclear(r);
	unsigned char *der = NULL;
	int dlen = i2d_X509(x->cert, &der);
	char nb[32], na[32];
	struct tm tm;
	if (dlen <= 0 || !ASN1_TIME_to_tm(X509_get0_notBefore(x->cert), &tm)) {
		OPENSSL_free(der);
		return HIE_ETLS;
	}
	strftime(nb, sizeof nb, "%Y-%m-%d %H:%M:%S+00", &tm);
	if (!ASN1_TIME_to_tm(X509_get0_notAfter(x->cert), &tm)) {
		OPENSSL_free(der);
		return HIE_ETLS;
	}
	strftime(na, sizeof na, "%Y-%m-%d %H:%M:%S+00", &tm);
	if (x->key) {
		snprintf(x->key_name, sizeof x->key_name, "%s.pem", x->fp);
	}
	const char *v[] = {x->owner, x->bound, x->usage, (const char *)der, x->fp, x->key ? x->key_name : NULL, nb, na};
	const int len[] = {0, 0, 0, dlen, 0, 0, 0, 0};
	const int fmt[] = {0, 0, 0, 1, 0, 0, 0, 0};
	err = hie_db_exec_bin(conn,
			      "INSERT INTO hisp_certs (owner, bound, usage, der, fingerprint, key_file, not_before, not_after)"
			      " VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8::timestamptz)",
			      8, v, len, fmt, 0, NULL);
	OPENSSL_free(der);
	if (!err && x->key && x->is_address) { /* our address exists once it has a certificate */
		const char *pa[] = {x->owner, domain};
		err = hie_db_exec(conn, "INSERT INTO hisp_addresses (address, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING",
				  2, pa, NULL);
	}
	if (!err && x->key) {
		char name[HISP_FP_LEN + 8];
		err = hisp_keys_store_key(x->c->state_dir, x->fp, x->key, name, sizeof name);
		if (!err)
			x->wrote_key = true;
		else {
			x->rc = 1;
			snprintf(x->msg, sizeof x->msg, "--key: cannot write the key under %s/keys", x->c->state_dir);
		}
	}
	return err;
}

static int cert_import(struct hisp_cli_line *l)
{
	/* opts: 0 --address, 1 --domain, 2 --cert, 3 --key, 4 --usage */
	const char *addr = l->opts[0].val, *dom = l->opts[1].val, *certf = l->opts[2].val, *keyf = l->opts[3].val,
		   *usage = l->opts[4].val;
	char owner[256];
	int rc;
	if ((rc = hisp_cli_no_pos(l)))
		return rc;
	if (!addr == !dom)
		return hisp_cli_bad(l, "--address/--domain", "exactly one is required");
	if ((rc = hisp_cli_required(l, 2)))
		return rc;
	if (usage && strcmp(usage, "sign") && strcmp(usage, "encrypt") && strcmp(usage, "both"))
		return hisp_cli_bad(l, "--usage", "expected sign, encrypt or both");
	if (addr ? (rc = hisp_cli_norm_addr(l, "--address", addr, owner, sizeof owner))
		 : (rc = hisp_cli_norm_domain(l, "--domain", dom, owner, sizeof owner)))
		return rc;
	if (keyf && !l->c->state_dir)
		return hisp_cli_fail(l, "--key: no state directory to keep keys in");

	struct hie_buf cb = {0}, kb = {0};
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	if ((rc = hisp_cli_read_file(l, "--cert", certf, HISP_CLI_CERT_MAX, &cb)))
		goto out;
	cert = hisp_cert_from_buf((const unsigned char *)cb.data, cb.len);
	if (!cert) {
		rc = hisp_cli_bad(l, "--cert", "%s: not a certificate (PEM or DER)", certf);
		goto out;
	}
	bool domain_bound = false;
	bool binds = hisp_cert_binds(cert, owner, &domain_bound);
	if (addr && (!binds || domain_bound)) {
		rc = hisp_cli_bad(l, "--cert", "not bound to %s (no subjectAltName rfc822Name %s)", owner, owner);
		goto out;
	}
	if (dom && !binds) {
		rc = hisp_cli_bad(l, "--cert", "not bound to %s (no subjectAltName dNSName %s)", owner, owner);
		goto out;
	}
	if (keyf) {
		bool enc;
		if ((rc = hisp_cli_read_file(l, "--key", keyf, HISP_CLI_CERT_MAX, &kb)))
			goto out;
		key = parse_key(&kb, &enc);
		OPENSSL_cleanse(kb.data, kb.len);
		if (!key) {
			rc = hisp_cli_bad(l, "--key", "%s: %s", keyf,
				 enc ? "encrypted keys are not supported (decrypt it with openssl pkey first)"
				     : "not a private key (PEM or DER, PKCS#8 or traditional)");
			goto out;
		}
		if (X509_check_private_key(cert, key) != 1) {
			ERR_clear_error();
			rc = hisp_cli_bad(l, "--key", "%s: does not match the certificate", keyf);
			goto out;
		}
	}
	char fp[HISP_FP_LEN + 1];
	if (hisp_cert_fingerprint(cert, fp, sizeof fp)) {
		rc = hisp_cli_fail(l, "--cert: cannot compute the fingerprint");
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
		fprintf(l->c->err, "%s: warning: the certificate has expired; it will not be used\n", l->cmd);
	struct import_ctx x = {.c = l->c,
			       .owner = owner,
			       .bound = addr ? "address" : "domain",
			       .usage = usage ? usage : default_usage(cert),
			       .fp = fp,
			       .cert = cert,
			       .key = key,
			       .is_address = addr != NULL};
	hie_err_t err = hie_db_tx(l->c->pool, import_tx, &x);
	if (err && x.wrote_key)
		hisp_keys_remove_key(l->c->state_dir, x.key_name);
	if (err) {
		rc = x.rc ? hisp_cli_fail(l, "%s", x.msg) : hisp_cli_db_fail(l, err);
		goto out;
	}
	fprintf(l->c->out, "imported owner=%s bound=%s usage=%s kind=%s fingerprint=%s\n", owner, x.bound, x.usage,
		key ? "ours" : "partner", fp);
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	hie_buf_free(&cb);
	hie_buf_free(&kb);
	return rc;
}

static int cert_list(struct hisp_cli_line *l)
{
	char a[256];
	if (l->npos > 1)
		return hisp_cli_bad(l, l->pos[1], "unexpected argument");
	if (l->npos == 1 && hisp_addr_normalize(l->pos[0], true, a, sizeof a))
		return hisp_cli_bad(l, l->pos[0], "not an address or a domain");
	const char *p[] = {l->npos ? a : NULL, l->npos ? hisp_addr_domain(a) : NULL, l->npos && strchr(a, '@') ? "t" : "f"};
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c,
			      "SELECT owner, bound, usage, der, fingerprint, key_file IS NOT NULL,"
			      " to_char(not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"') FROM hisp_certs"
			      " WHERE $1::text IS NULL OR owner = $1 OR owner = $2"
			      "  OR (NOT $3::boolean AND split_part(owner, '@', 2) = $1)"
			      " ORDER BY owner, id",
			      3, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		char subject[512] = "?";
		X509 *x = hisp_cli_der_cert(r, i, 3);
		if (x)
			hisp_cert_subject(x, subject, sizeof subject);
		X509_free(x);
		fprintf(l->c->out, "owner=%s bound=%s usage=%s kind=%s not_after=%s fingerprint=%s subject=\"%s\"\n",
			PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
			strcmp(PQgetvalue(r, i, 5), "t") == 0 ? "ours" : "partner", PQgetvalue(r, i, 6),
			PQgetvalue(r, i, 4), subject);
	}
	return hisp_cli_list_end(l, r, "certificates");
}

static int cert_remove(struct hisp_cli_line *l)
{
	char fp[HISP_FP_LEN + 1];
	int rc = hisp_cli_need_pos(l, 1, "FINGERPRINT");
	if (rc || (rc = hisp_cli_norm_fp(l, l->pos[0], fp)))
		return rc;
	const char *p[] = {fp};
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c, "DELETE FROM hisp_certs WHERE fingerprint = $1 RETURNING owner, key_file", 1, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	if (PQntuples(r) != 1) {
		PQclear(r);
		return hisp_cli_fail(l, "%s: no such certificate", fp);
	}
	rc = 0;
	if (!PQgetisnull(r, 0, 1) && hisp_keys_remove_key(l->c->state_dir, PQgetvalue(r, 0, 1)) != HIE_OK)
		rc = hisp_cli_fail(l, "removed the certificate but not its key file %s: %s", PQgetvalue(r, 0, 1), strerror(errno));
	fprintf(l->c->out, "removed owner=%s fingerprint=%s%s\n", PQgetvalue(r, 0, 0), fp,
		PQgetisnull(r, 0, 1) ? "" : " key=deleted");
	PQclear(r);
	return rc;
}

static const char *const import_opts[] = {"--address", "--domain", "--cert", "--key", "--usage", NULL};

static const struct hisp_cli_verb cert_verbs[] = {
	{.name = "import", .run = cert_import, .opts = import_opts, .maxpos = 0},
	{.name = "list", .run = cert_list, .maxpos = 2},
	{.name = "remove", .run = cert_remove, .maxpos = 2},
	{.name = "discover", .sub = hisp_cli_cert_discover},
	{.maxpos = 2},
};

static const struct hisp_cli_cmd cert_cmd = {
	.name = "cert",
	.missing = "(import | list | remove | discover)",
	.known = "(import | list | remove | discover)",
	.verbs = cert_verbs,
};

int hisp_cli_cert(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &cert_cmd, argc, argv);
}
