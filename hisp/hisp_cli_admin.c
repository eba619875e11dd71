/*
 * hisp_cli_admin.c — the operator commands that manage the HISP's data (one-shot, on c->pool):
 *
 *   domain add DOMAIN | list | remove DOMAIN
 *   domain policy PARTNER_DOMAIN [--cipher C] [--key-transport K] [--digest D]   ("default" clears one;
 *                                                                                 no flag: show the policy)
 *   domain address add ADDR | list [DOMAIN] | remove ADDR
 *   cert import (--address ADDR | --domain D) --cert FILE [--key FILE] [--usage sign|encrypt|both]
 *   cert list [ADDR|DOMAIN] | remove FINGERPRINT | discover ADDR (hisp_cli_cert_discover, discovery helper)
 *   trust add --domain D --anchor FILE [--direction incoming|outgoing|both]
 *   trust list [--domain D] | remove --domain D FINGERPRINT
 *   trust bundle add --domain D --url URL [--signer FILE] [--refresh HOURS] [--direction ...]
 *   trust bundle list | refresh ID
 *   route add DOMAIN HOST:PORT | list | remove DOMAIN
 *
 * Output: one line per item or action, key=value fields (subjects quoted, made printable). Errors go to
 * c->err as "<command> <verb>: <flag or value>: <what>". Exit status: 0 done, 1 failed (database, file, an
 * unknown or duplicate row), 2 bad arguments (checked before the database is touched when they can be).
 * Options take "--flag value" or "--flag=value".
 *
 * `cert import --key` writes the private key under <state_dir>/keys (hisp_keys_store_key) inside the
 * transaction that inserts the row; if the transaction fails the file is removed again.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core_log.h"
#include "hisp/hisp.h"
#include "hisp/hisp_discovery.h"
#include "hisp/hisp_smime.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_trust_int.h"

#define CERT_FILE_MAX (1024 * 1024)
#define ANCHOR_FILE_MAX (16 * 1024 * 1024)
#define URL_MAX 2000

/* --- arguments ------------------------------------------------------------------------------------------- */

struct opt {
	const char *name; /* "--cert" */
	const char *val;  /* NULL when not given */
};

struct cmdline {
	const struct hisp_cli *c;
	char cmd[48]; /* "cert import" */
	struct opt *opts;
	size_t nopts;
	const char *pos[4];
	int npos;
};

__attribute__((format(printf, 3, 4))) static int bad(const struct cmdline *l, const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(l->c->err, "%s: %s: ", l->cmd, what);
	va_start(ap, fmt);
	vfprintf(l->c->err, fmt, ap);
	va_end(ap);
	fputc('\n', l->c->err);
	return 2;
}

__attribute__((format(printf, 2, 3))) static int fail(const struct cmdline *l, const char *fmt, ...)
{
	va_list ap;
	fprintf(l->c->err, "%s: ", l->cmd);
	va_start(ap, fmt);
	vfprintf(l->c->err, fmt, ap);
	va_end(ap);
	fputc('\n', l->c->err);
	return 1;
}

/* Parses argv[start..argc) into the options and at most maxpos positionals. */
static int parse(struct cmdline *l, int argc, char **argv, int start, int maxpos)
{
	for (int i = start; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (l->npos >= maxpos || l->npos >= 4)
				return bad(l, a, "unexpected argument");
			l->pos[l->npos++] = a;
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		struct opt *o = NULL;
		for (size_t k = 0; k < l->nopts; k++)
			if (strlen(l->opts[k].name) == nlen && strncmp(l->opts[k].name, a, nlen) == 0)
				o = &l->opts[k];
		if (!o)
			return bad(l, a, "unknown option");
		if (o->val)
			return bad(l, o->name, "given twice");
		if (eq) {
			o->val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return bad(l, o->name, "needs a value");
			o->val = argv[++i];
		}
		if (!o->val[0])
			return bad(l, o->name, "empty value");
	}
	return 0;
}

static void init_line(struct cmdline *l, const struct hisp_cli *c, const char *cmd, const char *verb, struct opt *opts,
		      size_t nopts)
{
	memset(l, 0, sizeof *l);
	l->c = c;
	snprintf(l->cmd, sizeof l->cmd, "%s%s%s", cmd, verb ? " " : "", verb ? verb : "");
	l->opts = opts;
	l->nopts = nopts;
}

static int need_pos(const struct cmdline *l, int n, const char *usage)
{
	if (l->npos != n) {
		fprintf(l->c->err, "%s: usage: %s %s\n", l->cmd, l->cmd, usage);
		return 2;
	}
	return 0;
}

static int norm_domain(const struct cmdline *l, const char *what, const char *in, char *out, size_t outlen)
{
	if (strchr(in, '@') || hisp_addr_normalize(in, true, out, outlen))
		return bad(l, what, "not a domain name");
	return 0;
}

static int norm_addr(const struct cmdline *l, const char *what, const char *in, char *out, size_t outlen)
{
	if (hisp_addr_normalize(in, false, out, outlen))
		return bad(l, what, "not a Direct address (local@domain)");
	return 0;
}

static int parse_direction(const struct cmdline *l, const char *v, const char **out)
{
	static const char *const dirs[] = {"incoming", "outgoing", "both"};
	*out = "both";
	if (!v)
		return 0;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(v, dirs[i]) == 0) {
			*out = dirs[i];
			return 0;
		}
	return bad(l, "--direction", "expected incoming, outgoing or both");
}

/* Fingerprint as stored: 64 lower-case hex digits; colons and upper case accepted. */
static int norm_fp(const struct cmdline *l, const char *in, char *out)
{
	size_t k = 0;
	for (const char *p = in; *p; p++) {
		char ch = *p;
		if (ch == ':')
			continue;
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch + 32);
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) || k >= HISP_FP_LEN)
			return bad(l, in, "not a SHA-256 fingerprint (64 hex digits)");
		out[k++] = ch;
	}
	if (k != HISP_FP_LEN)
		return bad(l, in, "not a SHA-256 fingerprint (64 hex digits)");
	out[k] = '\0';
	return 0;
}

static int read_file(const struct cmdline *l, const char *flag, const char *path, size_t max, struct hie_buf *b)
{
	hie_err_t err = hisp_read_file(path, max, b);
	if (err == HIE_ETOOBIG)
		return bad(l, flag, "%s: larger than %zu bytes", path, max);
	if (err)
		return fail(l, "%s: %s: cannot read: %s", flag, path, strerror(errno));
	return 0;
}

/* --- database helpers ----------------------------------------------------------------------------------- */

/* One statement in autocommit. */
static hie_err_t exec1(const struct hisp_cli *c, const char *sql, int n, const char *const *p, PGresult **r)
{
	PGconn *conn;
	hie_err_t err = hie_db_acquire(c->pool, -1, &conn);
	if (err)
		return err;
	err = hie_db_exec(conn, sql, n, p, r);
	hie_db_release(c->pool, conn, err == HIE_EDB);
	return err;
}

static int db_fail(const struct cmdline *l, hie_err_t err)
{
	return fail(l, "database: %s", hie_strerror(err));
}

static const char *nz(const PGresult *r, int row, int col, const char *dflt)
{
	return PQgetisnull(r, row, col) ? dflt : PQgetvalue(r, row, col);
}

static bool domain_exists(PGconn *conn, const char *domain, hie_err_t *err)
{
	const char *p[] = {domain};
	PGresult *r;
	*err = hie_db_exec(conn, "SELECT 1 FROM hisp_domains WHERE name = $1", 1, p, &r);
	bool yes = !*err && PQntuples(r) == 1;
	PQclear(r);
	return yes;
}

/* --- domain ---------------------------------------------------------------------------------------------- */

static int domain_add(struct cmdline *l)
{
	char d[256];
	int rc = need_pos(l, 1, "DOMAIN");
	if (rc || (rc = norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *p[] = {d};
	PGresult *r;
	hie_err_t err = exec1(l->c, "INSERT INTO hisp_domains (name) VALUES ($1) ON CONFLICT DO NOTHING", 1, p, &r);
	if (err)
		return db_fail(l, err);
	fprintf(l->c->out, "%s domain=%s\n", strcmp(PQcmdTuples(r), "1") == 0 ? "added" : "exists", d);
	PQclear(r);
	return 0;
}

static int domain_list(struct cmdline *l)
{
	if (need_pos(l, 0, ""))
		return 2;
	PGresult *r;
	hie_err_t err = exec1(l->c,
			      "SELECT d.name,"
			      " (SELECT count(*) FROM hisp_addresses a WHERE a.domain = d.name),"
			      " (SELECT count(*) FROM hisp_anchors x WHERE x.domain = d.name),"
			      " (SELECT count(*) FROM hisp_certs c WHERE c.key_file IS NOT NULL AND"
			      "  (c.owner = d.name OR split_part(c.owner, '@', 2) = d.name)),"
			      " (SELECT count(*) FROM hisp_bundles b WHERE b.domain = d.name)"
			      " FROM hisp_domains d ORDER BY d.name",
			      0, NULL, &r);
	if (err)
		return db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(l->c->out, "domain=%s addresses=%s keys=%s anchors=%s bundles=%s\n", PQgetvalue(r, i, 0),
			PQgetvalue(r, i, 1), PQgetvalue(r, i, 3), PQgetvalue(r, i, 2), PQgetvalue(r, i, 4));
	if (PQntuples(r) == 0)
		fprintf(l->c->out, "(no domains)\n");
	PQclear(r);
	return 0;
}

static int domain_remove(struct cmdline *l)
{
	char d[256];
	int rc = need_pos(l, 1, "DOMAIN");
	if (rc || (rc = norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *p[] = {d};
	PGresult *r;
	hie_err_t err = exec1(l->c, "DELETE FROM hisp_domains WHERE name = $1", 1, p, &r);
	if (err)
		return db_fail(l, err);
	bool gone = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!gone)
		return fail(l, "%s: not one of our domains", d);
	fprintf(l->c->out, "removed domain=%s (its addresses, anchors and bundles too; certificates stay)\n", d);
	return 0;
}

static int policy_value(const struct cmdline *l, const char *flag, const char *v, int which, const char **out)
{
	*out = NULL;
	if (!v || strcmp(v, "default") == 0)
		return 0;
	if (which == 0) {
		enum hisp_cipher x;
		if (hisp_cipher_parse(v, &x))
			return bad(l, flag, "expected aes128-cbc, aes192-cbc, aes256-cbc, aes128-gcm, aes256-gcm or default");
		*out = hisp_cipher_name(x);
	} else if (which == 1) {
		enum hisp_key_transport x;
		if (hisp_kt_parse(v, &x))
			return bad(l, flag, "expected rsa-oaep-sha256, rsa-oaep-sha1, rsa-pkcs1 or default");
		*out = hisp_kt_name(x);
	} else {
		enum hisp_digest x;
		if (hisp_digest_parse(v, &x))
			return bad(l, flag, "expected sha256, sha384, sha512 or default");
		*out = hisp_digest_name(x);
	}
	return 0;
}

static int domain_policy(struct cmdline *l)
{
	char d[256];
	int rc = need_pos(l, 1, "PARTNER_DOMAIN [--cipher C] [--key-transport K] [--digest D]");
	if (rc || (rc = norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *v[3];
	for (int i = 0; i < 3; i++)
		if ((rc = policy_value(l, l->opts[i].name, l->opts[i].val, i, &v[i])))
			return rc;
	hie_err_t err = HIE_OK;
	bool any = l->opts[0].val || l->opts[1].val || l->opts[2].val;
	if (any) {
		const char *p[] = {d, v[0], v[1], v[2], l->opts[0].val ? "t" : "f", l->opts[1].val ? "t" : "f",
				   l->opts[2].val ? "t" : "f"};
		err = exec1(l->c,
			    "INSERT INTO hisp_policies (domain, cipher, key_transport, digest) VALUES ($1, $2, $3, $4)"
			    " ON CONFLICT (domain) DO UPDATE SET"
			    " cipher = CASE WHEN $5::boolean THEN EXCLUDED.cipher ELSE hisp_policies.cipher END,"
			    " key_transport = CASE WHEN $6::boolean THEN EXCLUDED.key_transport"
			    "  ELSE hisp_policies.key_transport END,"
			    " digest = CASE WHEN $7::boolean THEN EXCLUDED.digest ELSE hisp_policies.digest END",
			    7, p, NULL);
		if (err)
			return db_fail(l, err);
	}
	const char *p[] = {d};
	PGresult *r;
	err = exec1(l->c, "SELECT cipher, key_transport, digest FROM hisp_policies WHERE domain = $1", 1, p, &r);
	if (err)
		return db_fail(l, err);
	bool row = PQntuples(r) == 1;
	fprintf(l->c->out, "%s domain=%s cipher=%s key_transport=%s digest=%s\n", any ? "policy set" : "policy", d,
		row ? nz(r, 0, 0, "default") : "default", row ? nz(r, 0, 1, "default") : "default",
		row ? nz(r, 0, 2, "default") : "default");
	PQclear(r);
	return 0;
}

static int address_cmd(struct cmdline *l, int argc, char **argv)
{
	char a[256], d[256];
	if (argc < 1) {
		fprintf(l->c->err, "domain address: missing verb (add ADDR | list [DOMAIN] | remove ADDR)\n");
		return 2;
	}
	const char *verb = argv[0];
	snprintf(l->cmd, sizeof l->cmd, "domain address %s", verb);
	int rc = parse(l, argc, argv, 1, 1);
	if (rc)
		return rc;
	hie_err_t err;
	PGresult *r = NULL;
	if (strcmp(verb, "list") == 0) {
		if (l->npos == 1 && (rc = norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
			return rc;
		const char *p[] = {l->npos ? d : NULL};
		err = exec1(l->c,
			    "SELECT a.address, a.domain, (SELECT count(*) FROM hisp_certs c WHERE c.key_file IS NOT NULL"
			    " AND c.owner = a.address) FROM hisp_addresses a WHERE $1::text IS NULL OR a.domain = $1"
			    " ORDER BY a.address",
			    1, p, &r);
		if (err)
			return db_fail(l, err);
		for (int i = 0; i < PQntuples(r); i++)
			fprintf(l->c->out, "address=%s domain=%s keys=%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
				PQgetvalue(r, i, 2));
		if (PQntuples(r) == 0)
			fprintf(l->c->out, "(no addresses)\n");
		PQclear(r);
		return 0;
	}
	bool add = strcmp(verb, "add") == 0;
	if (!add && strcmp(verb, "remove") != 0) {
		fprintf(l->c->err, "domain address: unknown verb '%s' (add | list | remove)\n", verb);
		return 2;
	}
	if ((rc = need_pos(l, 1, "ADDR")) || (rc = norm_addr(l, l->pos[0], l->pos[0], a, sizeof a)))
		return rc;
	const char *p[] = {a, hisp_addr_domain(a)};
	if (add) {
		err = exec1(l->c,
			    "INSERT INTO hisp_addresses (address, domain) SELECT $1, name FROM hisp_domains"
			    " WHERE name = $2 ON CONFLICT DO NOTHING RETURNING 1",
			    2, p, &r);
		if (err)
			return db_fail(l, err);
		bool added = PQntuples(r) == 1;
		PQclear(r);
		if (!added) {
			err = exec1(l->c, "SELECT 1 FROM hisp_addresses WHERE address = $1", 1, p, &r);
			if (err)
				return db_fail(l, err);
			bool exists = PQntuples(r) == 1;
			PQclear(r);
			if (!exists)
				return fail(l, "%s: %s is not one of our domains (hienode domain add %s)", a,
					    hisp_addr_domain(a), hisp_addr_domain(a));
		}
		fprintf(l->c->out, "%s address=%s\n", added ? "added" : "exists", a);
		return 0;
	}
	err = exec1(l->c, "DELETE FROM hisp_addresses WHERE address = $1", 1, p, &r);
	if (err)
		return db_fail(l, err);
	bool gone = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!gone)
		return fail(l, "%s: not one of our addresses", a);
	fprintf(l->c->out, "removed address=%s\n", a);
	return 0;
}

int hisp_cli_domain(const struct hisp_cli *c, int argc, char **argv)
{
	struct opt popts[] = {{"--cipher", NULL}, {"--key-transport", NULL}, {"--digest", NULL}};
	struct cmdline l;
	if (argc < 1) {
		fprintf(c->err, "domain: missing verb (add | list | remove | policy | address)\n");
		return 2;
	}
	const char *verb = argv[0];
	bool policy = strcmp(verb, "policy") == 0;
	init_line(&l, c, "domain", verb, popts, policy ? 3 : 0);
	if (strcmp(verb, "address") == 0)
		return address_cmd(&l, argc - 1, argv + 1);
	int rc = parse(&l, argc, argv, 1, 1);
	if (rc)
		return rc;
	if (strcmp(verb, "add") == 0)
		return domain_add(&l);
	if (strcmp(verb, "list") == 0)
		return domain_list(&l);
	if (strcmp(verb, "remove") == 0)
		return domain_remove(&l);
	if (policy)
		return domain_policy(&l);
	fprintf(c->err, "domain: unknown verb '%s' (add | list | remove | policy | address)\n", verb);
	return 2;
}

/* --- cert ------------------------------------------------------------------------------------------------ */

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
	if (x->key && !domain_exists(conn, domain, &err)) {
		if (!err) {
			x->rc = 1;
			snprintf(x->msg, sizeof x->msg, "--key: %s is not one of our domains (hienode domain add %s)", domain,
				 domain);
			err = HIE_EDENIED;
		}
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

static int cert_import(struct cmdline *l)
{
	/* opts: 0 --address, 1 --domain, 2 --cert, 3 --key, 4 --usage */
	const char *addr = l->opts[0].val, *dom = l->opts[1].val, *certf = l->opts[2].val, *keyf = l->opts[3].val,
		   *usage = l->opts[4].val;
	char owner[256];
	int rc;
	if (l->npos)
		return bad(l, l->pos[0], "unexpected argument");
	if (!addr == !dom)
		return bad(l, "--address/--domain", "exactly one is required");
	if (!certf)
		return bad(l, "--cert", "required");
	if (usage && strcmp(usage, "sign") && strcmp(usage, "encrypt") && strcmp(usage, "both"))
		return bad(l, "--usage", "expected sign, encrypt or both");
	if (addr ? (rc = norm_addr(l, "--address", addr, owner, sizeof owner))
		 : (rc = norm_domain(l, "--domain", dom, owner, sizeof owner)))
		return rc;
	if (keyf && !l->c->state_dir)
		return fail(l, "--key: no state directory to keep keys in");

	struct hie_buf cb = {0}, kb = {0};
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	if ((rc = read_file(l, "--cert", certf, CERT_FILE_MAX, &cb)))
		goto out;
	cert = hisp_cert_from_buf((const unsigned char *)cb.data, cb.len);
	if (!cert) {
		rc = bad(l, "--cert", "%s: not a certificate (PEM or DER)", certf);
		goto out;
	}
	bool domain_bound = false;
	bool binds = hisp_cert_binds(cert, owner, &domain_bound);
	if (addr && (!binds || domain_bound)) {
		rc = bad(l, "--cert", "not bound to %s (no subjectAltName rfc822Name %s)", owner, owner);
		goto out;
	}
	if (dom && !binds) {
		rc = bad(l, "--cert", "not bound to %s (no subjectAltName dNSName %s)", owner, owner);
		goto out;
	}
	if (keyf) {
		bool enc;
		if ((rc = read_file(l, "--key", keyf, CERT_FILE_MAX, &kb)))
			goto out;
		key = parse_key(&kb, &enc);
		OPENSSL_cleanse(kb.data, kb.len);
		if (!key) {
			rc = bad(l, "--key", "%s: %s", keyf,
				 enc ? "encrypted keys are not supported (decrypt it with openssl pkey first)"
				     : "not a private key (PEM or DER, PKCS#8 or traditional)");
			goto out;
		}
		if (X509_check_private_key(cert, key) != 1) {
			ERR_clear_error();
			rc = bad(l, "--key", "%s: does not match the certificate", keyf);
			goto out;
		}
	}
	char fp[HISP_FP_LEN + 1];
	if (hisp_cert_fingerprint(cert, fp, sizeof fp)) {
		rc = fail(l, "--cert: cannot compute the fingerprint");
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
		rc = x.rc ? fail(l, "%s", x.msg) : db_fail(l, err);
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

static X509 *der_cert(const PGresult *r, int row, int col)
{
	size_t n = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	const unsigned char *p = raw;
	X509 *x = raw ? d2i_X509(NULL, &p, (long)n) : NULL;
	PQfreemem(raw);
	ERR_clear_error();
	return x;
}

static int cert_list(struct cmdline *l)
{
	char a[256];
	if (l->npos > 1)
		return bad(l, l->pos[1], "unexpected argument");
	if (l->npos == 1 && hisp_addr_normalize(l->pos[0], true, a, sizeof a))
		return bad(l, l->pos[0], "not an address or a domain");
	const char *p[] = {l->npos ? a : NULL, l->npos ? hisp_addr_domain(a) : NULL, l->npos && strchr(a, '@') ? "t" : "f"};
	PGresult *r;
	hie_err_t err = exec1(l->c,
			      "SELECT owner, bound, usage, der, fingerprint, key_file IS NOT NULL,"
			      " to_char(not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"') FROM hisp_certs"
			      " WHERE $1::text IS NULL OR owner = $1 OR owner = $2"
			      "  OR (NOT $3::boolean AND split_part(owner, '@', 2) = $1)"
			      " ORDER BY owner, id",
			      3, p, &r);
	if (err)
		return db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		char subject[512] = "?";
		X509 *x = der_cert(r, i, 3);
		if (x)
			hisp_cert_subject(x, subject, sizeof subject);
		X509_free(x);
		fprintf(l->c->out, "owner=%s bound=%s usage=%s kind=%s not_after=%s fingerprint=%s subject=\"%s\"\n",
			PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
			strcmp(PQgetvalue(r, i, 5), "t") == 0 ? "ours" : "partner", PQgetvalue(r, i, 6),
			PQgetvalue(r, i, 4), subject);
	}
	if (PQntuples(r) == 0)
		fprintf(l->c->out, "(no certificates)\n");
	PQclear(r);
	return 0;
}

static int cert_remove(struct cmdline *l)
{
	char fp[HISP_FP_LEN + 1];
	int rc = need_pos(l, 1, "FINGERPRINT");
	if (rc || (rc = norm_fp(l, l->pos[0], fp)))
		return rc;
	const char *p[] = {fp};
	PGresult *r;
	hie_err_t err = exec1(l->c, "DELETE FROM hisp_certs WHERE fingerprint = $1 RETURNING owner, key_file", 1, p, &r);
	if (err)
		return db_fail(l, err);
	if (PQntuples(r) != 1) {
		PQclear(r);
		return fail(l, "%s: no such certificate", fp);
	}
	rc = 0;
	if (!PQgetisnull(r, 0, 1) && hisp_keys_remove_key(l->c->state_dir, PQgetvalue(r, 0, 1)) != HIE_OK)
		rc = fail(l, "removed the certificate but not its key file %s: %s", PQgetvalue(r, 0, 1), strerror(errno));
	fprintf(l->c->out, "removed owner=%s fingerprint=%s%s\n", PQgetvalue(r, 0, 0), fp,
		PQgetisnull(r, 0, 1) ? "" : " key=deleted");
	PQclear(r);
	return rc;
}

int hisp_cli_cert(const struct hisp_cli *c, int argc, char **argv)
{
	struct opt iopts[] = {{"--address", NULL}, {"--domain", NULL}, {"--cert", NULL}, {"--key", NULL}, {"--usage", NULL}};
	struct cmdline l;
	if (argc < 1) {
		fprintf(c->err, "cert: missing verb (import | list | remove | discover)\n");
		return 2;
	}
	const char *verb = argv[0];
	if (strcmp(verb, "discover") == 0)
		return hisp_cli_cert_discover(c, argc, argv);
	bool import = strcmp(verb, "import") == 0;
	init_line(&l, c, "cert", verb, iopts, import ? 5 : 0);
	int rc = parse(&l, argc, argv, 1, import ? 0 : 2);
	if (rc)
		return rc;
	if (import)
		return cert_import(&l);
	if (strcmp(verb, "list") == 0)
		return cert_list(&l);
	if (strcmp(verb, "remove") == 0)
		return cert_remove(&l);
	fprintf(c->err, "cert: unknown verb '%s' (import | list | remove | discover)\n", verb);
	return 2;
}

/* --- trust ----------------------------------------------------------------------------------------------- */

struct anchors_ctx {
	const char *domain, *direction;
	STACK_OF(X509) *certs;
	FILE *out;
	int rc;
};

static hie_err_t anchors_tx(PGconn *conn, void *arg)
{
	struct anchors_ctx *a = arg;
	hie_err_t err;
	if (!domain_exists(conn, a->domain, &err)) {
		if (!err) {
			a->rc = 1;
			err = HIE_ENOTFOUND;
		}
		return err;
	}
	for (int i = 0; !err && i < sk_X509_num(a->certs); i++) {
		X509 *x = sk_X509_value(a->certs, i);
		char fp[HISP_FP_LEN + 1], subject[512];
		unsigned char *der = NULL;
		int dlen = i2d_X509(x, &der);
		if (dlen <= 0 || hisp_cert_fingerprint(x, fp, sizeof fp)) {
			OPENSSL_free(der);
			return HIE_ETLS;
		}
		hisp_cert_subject(x, subject, sizeof subject);
		const char *v[] = {a->domain, a->direction, (const char *)der, fp, subject};
		const int len[] = {0, 0, dlen, 0, 0};
		const int fmt[] = {0, 0, 1, 0, 0};
		PGresult *r;
		err = hie_db_exec_bin(conn,
				      "INSERT INTO hisp_anchors (domain, direction, der, fingerprint, subject)"
				      " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
				      5, v, len, fmt, 0, &r);
		OPENSSL_free(der);
		if (!err) {
			fprintf(a->out, "%s domain=%s direction=%s fingerprint=%s subject=\"%s\"\n",
				strcmp(PQcmdTuples(r), "1") == 0 ? "added" : "exists", a->domain, a->direction, fp, subject);
			PQclear(r);
		}
	}
	return err;
}

static bool is_ca(X509 *x)
{
	return (X509_get_extension_flags(x) & EXFLAG_CA) || X509_self_signed(x, 0) == 1;
}

static int trust_add(struct cmdline *l)
{
	/* opts: 0 --domain, 1 --anchor, 2 --direction */
	char d[256];
	const char *dir;
	int rc;
	if (l->npos)
		return bad(l, l->pos[0], "unexpected argument");
	if (!l->opts[0].val)
		return bad(l, "--domain", "required");
	if (!l->opts[1].val)
		return bad(l, "--anchor", "required");
	if ((rc = norm_domain(l, "--domain", l->opts[0].val, d, sizeof d)) ||
	    (rc = parse_direction(l, l->opts[2].val, &dir)))
		return rc;
	struct hie_buf b;
	if ((rc = read_file(l, "--anchor", l->opts[1].val, ANCHOR_FILE_MAX, &b)))
		return rc;
	STACK_OF(X509) *certs = NULL;
	hie_err_t err = hisp_bundle_parse((const unsigned char *)b.data, b.len, NULL, &certs);
	hie_buf_free(&b);
	if (err)
		return bad(l, "--anchor", "%s: no certificate in it (PEM, DER or PKCS#7)", l->opts[1].val);
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (!is_ca(x)) {
			char subject[512];
			hisp_cert_subject(x, subject, sizeof subject);
			rc = bad(l, "--anchor", "certificate %d (%s) is neither a CA certificate nor self-signed", i + 1,
				 subject);
			sk_X509_pop_free(certs, X509_free);
			return rc;
		}
	}
	struct anchors_ctx a = {.domain = d, .direction = dir, .certs = certs, .out = l->c->out};
	err = hie_db_tx(l->c->pool, anchors_tx, &a);
	sk_X509_pop_free(certs, X509_free);
	if (err && a.rc)
		return fail(l, "--domain: %s is not one of our domains (hienode domain add %s)", d, d);
	return err ? db_fail(l, err) : 0;
}

static int trust_list(struct cmdline *l)
{
	char d[256];
	int rc;
	if (l->npos)
		return bad(l, l->pos[0], "unexpected argument");
	if (l->opts[0].val && (rc = norm_domain(l, "--domain", l->opts[0].val, d, sizeof d)))
		return rc;
	const char *p[] = {l->opts[0].val ? d : NULL};
	PGresult *r;
	hie_err_t err = exec1(l->c,
			      "SELECT domain, direction, coalesce('bundle:' || bundle_id, 'manual'), fingerprint,"
			      " subject, der FROM hisp_anchors WHERE $1::text IS NULL OR domain = $1"
			      " ORDER BY domain, id",
			      1, p, &r);
	if (err)
		return db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		char na[40] = "?";
		X509 *x = der_cert(r, i, 5);
		if (x)
			hisp_cert_time(X509_get0_notAfter(x), na, sizeof na);
		X509_free(x);
		fprintf(l->c->out, "domain=%s direction=%s source=%s not_after=%s fingerprint=%s subject=\"%s\"\n",
			PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), na, PQgetvalue(r, i, 3),
			PQgetvalue(r, i, 4));
	}
	if (PQntuples(r) == 0)
		fprintf(l->c->out, "(no anchors)\n");
	PQclear(r);
	return 0;
}

static int trust_remove(struct cmdline *l)
{
	char d[256], fp[HISP_FP_LEN + 1];
	int rc;
	if (!l->opts[0].val)
		return bad(l, "--domain", "required");
	if ((rc = need_pos(l, 1, "--domain D FINGERPRINT")) || (rc = norm_domain(l, "--domain", l->opts[0].val, d, sizeof d)) ||
	    (rc = norm_fp(l, l->pos[0], fp)))
		return rc;
	const char *p[] = {d, fp};
	PGresult *r;
	hie_err_t err = exec1(l->c,
			      "DELETE FROM hisp_anchors WHERE domain = $1 AND fingerprint = $2 RETURNING bundle_id", 2,
			      p, &r);
	if (err)
		return db_fail(l, err);
	int n = PQntuples(r), from_bundle = 0;
	for (int i = 0; i < n; i++)
		from_bundle += !PQgetisnull(r, i, 0);
	PQclear(r);
	if (n == 0)
		return fail(l, "%s: no anchor with fingerprint %s", d, fp);
	fprintf(l->c->out, "removed domain=%s fingerprint=%s rows=%d%s\n", d, fp, n,
		from_bundle ? " (it came from a bundle: the next refresh brings it back)" : "");
	return 0;
}

static bool url_ok(const char *u)
{
	size_t n = strlen(u);
	if (n > URL_MAX || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
			return false;
	return n > 8;
}

struct bundle_add_ctx {
	const char *domain, *url, *direction, *hours;
	unsigned char *signer;
	int signer_len;
	long long id;
	int rc; /* 1: no domain; 3: exists */
};

static hie_err_t bundle_add_tx(PGconn *conn, void *arg)
{
	struct bundle_add_ctx *b = arg;
	hie_err_t err;
	b->rc = 0;
	if (!domain_exists(conn, b->domain, &err)) {
		if (!err) {
			b->rc = 1;
			err = HIE_ENOTFOUND;
		}
		return err;
	}
	const char *pe[] = {b->domain, b->url};
	PGresult *r;
	err = hie_db_exec(conn, "SELECT id FROM hisp_bundles WHERE domain = $1 AND url = $2", 2, pe, &r);
	if (err)
		return err;
	if (PQntuples(r) == 1) {
		hie_db_get_ll(r, 0, 0, &b->id);
		PQclear(r);
		b->rc = 3;
		return HIE_EEXIST;
	}
	PQclear(r);
	const char *v[] = {b->domain, b->url, (const char *)b->signer, b->direction, b->hours};
	const int len[] = {0, 0, b->signer_len, 0, 0};
	const int fmt[] = {0, 0, 1, 0, 0};
	err = hie_db_exec_bin(conn,
			      "INSERT INTO hisp_bundles (domain, url, signer_der, direction, refresh_hours)"
			      " VALUES ($1, $2, $3, $4, $5::int) RETURNING id::text",
			      5, v, len, fmt, 0, &r);
	if (err)
		return err;
	err = hie_db_get_ll(r, 0, 0, &b->id) ? HIE_EDB : HIE_OK;
	PQclear(r);
	if (err)
		return err;
	char ids[24], key[64];
	snprintf(ids, sizeof ids, "%lld", b->id);
	snprintf(key, sizeof key, "bundle:%lld:%lld", b->id, (long long)time(NULL) / 3600);
	return hie_jobs_enqueue(conn, "hisp.bundle", ids, key, 0, NULL);
}

static int bundle_add(struct cmdline *l)
{
	/* opts: 0 --domain, 1 --url, 2 --signer, 3 --refresh, 4 --direction */
	char d[256], hours[16] = "24";
	const char *dir;
	int rc;
	if (l->npos)
		return bad(l, l->pos[0], "unexpected argument");
	if (!l->opts[0].val)
		return bad(l, "--domain", "required");
	if (!l->opts[1].val)
		return bad(l, "--url", "required");
	if ((rc = norm_domain(l, "--domain", l->opts[0].val, d, sizeof d)) ||
	    (rc = parse_direction(l, l->opts[4].val, &dir)))
		return rc;
	if (!url_ok(l->opts[1].val))
		return bad(l, "--url", "expected an http:// or https:// URL of at most %d printable characters", URL_MAX);
	if (l->opts[3].val) {
		char *end;
		errno = 0;
		long h = strtol(l->opts[3].val, &end, 10);
		if (errno || *end || end == l->opts[3].val || h < 1 || h > 8760)
			return bad(l, "--refresh", "expected hours, 1 to 8760");
		snprintf(hours, sizeof hours, "%ld", h);
	}
	struct bundle_add_ctx b = {.domain = d, .url = l->opts[1].val, .direction = dir, .hours = hours};
	if (l->opts[2].val) {
		struct hie_buf sb;
		if ((rc = read_file(l, "--signer", l->opts[2].val, CERT_FILE_MAX, &sb)))
			return rc;
		X509 *s = hisp_cert_from_buf((const unsigned char *)sb.data, sb.len);
		hie_buf_free(&sb);
		if (!s)
			return bad(l, "--signer", "%s: not a certificate (PEM or DER)", l->opts[2].val);
		b.signer_len = i2d_X509(s, &b.signer);
		X509_free(s);
		if (b.signer_len <= 0)
			return fail(l, "--signer: cannot encode the certificate");
	}
	hie_err_t err = hie_db_tx(l->c->pool, bundle_add_tx, &b);
	OPENSSL_free(b.signer);
	if (err && b.rc == 1)
		return fail(l, "--domain: %s is not one of our domains (hienode domain add %s)", d, d);
	if (err && b.rc == 3)
		return fail(l, "--url: the bundle already exists for %s (id %lld)", d, b.id);
	if (err)
		return db_fail(l, err);
	fprintf(l->c->out, "added bundle id=%lld domain=%s direction=%s refresh_hours=%s url=%s (first refresh queued)\n",
		b.id, d, dir, hours, l->opts[1].val);
	return 0;
}

static int bundle_list(struct cmdline *l)
{
	if (l->npos)
		return bad(l, l->pos[0], "unexpected argument");
	PGresult *r;
	hie_err_t err = exec1(l->c,
			      "SELECT id, domain, direction, refresh_hours, anchors,"
			      " coalesce(to_char(last_fetch AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), '-'),"
			      " coalesce(to_char(last_ok AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), '-'),"
			      " coalesce(last_error, ''), signer_der IS NOT NULL, url FROM hisp_bundles ORDER BY id",
			      0, NULL, &r);
	if (err)
		return db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		char e[300];
		const char *le = PQgetvalue(r, i, 7);
		size_t k = 0;
		for (; le[k] && k + 1 < sizeof e; k++)
			e[k] = (le[k] == '"' || (unsigned char)le[k] < 0x20) ? '\'' : le[k];
		e[k] = '\0';
		fprintf(l->c->out,
			"id=%s domain=%s direction=%s refresh_hours=%s anchors=%s last_fetch=%s last_ok=%s signer=%s"
			" url=%s last_error=\"%s\"\n",
			PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
			strcmp(PQgetvalue(r, i, 8), "t") == 0 ? "yes" : "no", PQgetvalue(r, i, 9), e);
	}
	if (PQntuples(r) == 0)
		fprintf(l->c->out, "(no bundles)\n");
	PQclear(r);
	return 0;
}

static int bundle_refresh(struct cmdline *l)
{
	int rc = need_pos(l, 1, "ID");
	if (rc)
		return rc;
	char *end;
	errno = 0;
	long long id = strtoll(l->pos[0], &end, 10);
	if (errno || *end || end == l->pos[0] || id <= 0)
		return bad(l, l->pos[0], "not a bundle id");
	const struct hie_cfg *cfg = l->c->cfg;
	struct hisp_trust_opts o = {
		.min_rsa_bits = cfg ? (int)hie_cfg_int(cfg, "direct", "min_rsa_bits") : 2048,
		.allow_sha1_certs = cfg ? hie_cfg_bool(cfg, "direct", "allow_sha1_certs") : false,
		.fetch_timeout_ms = cfg ? (int)hie_cfg_int(cfg, "direct", "fetch_timeout") : 10000,
		.fetch_max = 10u * 1024 * 1024,
	};
	struct hisp_trust *t;
	hie_err_t err = hisp_trust_open(l->c->pool, &o, &t);
	if (err)
		return fail(l, "%s", hie_strerror(err));
	char reason[300];
	err = hisp_bundle_refresh(t, id, reason, sizeof reason);
	hisp_trust_close(t);
	if (err == HIE_ENOTFOUND && strcmp(reason, "no such bundle") == 0)
		return fail(l, "%lld: no such bundle", id);
	if (err)
		return fail(l, "bundle %lld: %s (the previous anchors are kept)", id, reason);
	fprintf(l->c->out, "refreshed bundle id=%lld: %s\n", id, reason);
	return 0;
}

static int trust_bundle(const struct hisp_cli *c, int argc, char **argv)
{
	struct opt bopts[] = {{"--domain", NULL}, {"--url", NULL}, {"--signer", NULL}, {"--refresh", NULL}, {"--direction", NULL}};
	struct cmdline l;
	if (argc < 1) {
		fprintf(c->err, "trust bundle: missing verb (add | list | refresh)\n");
		return 2;
	}
	const char *verb = argv[0];
	bool add = strcmp(verb, "add") == 0;
	init_line(&l, c, "trust bundle", verb, bopts, add ? 5 : 0);
	int rc = parse(&l, argc, argv, 1, add ? 0 : 1);
	if (rc)
		return rc;
	if (add)
		return bundle_add(&l);
	if (strcmp(verb, "list") == 0)
		return bundle_list(&l);
	if (strcmp(verb, "refresh") == 0)
		return bundle_refresh(&l);
	fprintf(c->err, "trust bundle: unknown verb '%s' (add | list | refresh)\n", verb);
	return 2;
}

int hisp_cli_trust(const struct hisp_cli *c, int argc, char **argv)
{
	struct opt topts[] = {{"--domain", NULL}, {"--anchor", NULL}, {"--direction", NULL}};
	struct cmdline l;
	if (argc < 1) {
		fprintf(c->err, "trust: missing verb (add | list | remove | bundle)\n");
		return 2;
	}
	const char *verb = argv[0];
	if (strcmp(verb, "bundle") == 0)
		return trust_bundle(c, argc - 1, argv + 1);
	bool add = strcmp(verb, "add") == 0;
	init_line(&l, c, "trust", verb, topts, add ? 3 : 1);
	int rc = parse(&l, argc, argv, 1, add ? 0 : 1);
	if (rc)
		return rc;
	if (add)
		return trust_add(&l);
	if (strcmp(verb, "list") == 0)
		return trust_list(&l);
	if (strcmp(verb, "remove") == 0)
		return trust_remove(&l);
	fprintf(c->err, "trust: unknown verb '%s' (add | list | remove | bundle)\n", verb);
	return 2;
}

/* --- route ----------------------------------------------------------------------------------------------- */

static int route_add(struct cmdline *l)
{
	char d[256], host[256];
	int port = 0, rc = need_pos(l, 2, "DOMAIN HOST:PORT");
	if (rc || (rc = norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	if (hie_cfg_split_addr(l->pos[1], host, sizeof host, &port) || !host[0] || port < 1 || port > 65535)
		return bad(l, l->pos[1], "expected HOST:PORT (or [IPv6]:PORT), port 1 to 65535");
	for (const char *p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '/' || *p == '@')
			return bad(l, l->pos[1], "host name with a character not allowed");
	char ps[8];
	snprintf(ps, sizeof ps, "%d", port);
	const char *p[] = {d, host, ps};
	hie_err_t err = exec1(l->c,
			      "INSERT INTO hisp_routes (domain, host, port) VALUES ($1, $2, $3::int)"
			      " ON CONFLICT (domain) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port",
			      3, p, NULL);
	if (err)
		return db_fail(l, err);
	bool v6 = strchr(host, ':') != NULL;
	fprintf(l->c->out, "route domain=%s next_hop=%s%s%s:%d\n", d, v6 ? "[" : "", host, v6 ? "]" : "", port);
	return 0;
}

int hisp_cli_route(const struct hisp_cli *c, int argc, char **argv)
{
	struct cmdline l;
	if (argc < 1) {
		fprintf(c->err, "route: missing verb (add DOMAIN HOST:PORT | list | remove DOMAIN)\n");
		return 2;
	}
	const char *verb = argv[0];
	init_line(&l, c, "route", verb, NULL, 0);
	int rc = parse(&l, argc, argv, 1, 2);
	if (rc)
		return rc;
	if (strcmp(verb, "add") == 0)
		return route_add(&l);
	PGresult *r;
	hie_err_t err;
	if (strcmp(verb, "list") == 0) {
		if ((rc = need_pos(&l, 0, "")))
			return rc;
		if ((err = exec1(c, "SELECT domain, host, port FROM hisp_routes ORDER BY domain", 0, NULL, &r)))
			return db_fail(&l, err);
		for (int i = 0; i < PQntuples(r); i++) {
			bool v6 = strchr(PQgetvalue(r, i, 1), ':') != NULL;
			fprintf(c->out, "route domain=%s next_hop=%s%s%s:%s\n", PQgetvalue(r, i, 0), v6 ? "[" : "",
				PQgetvalue(r, i, 1), v6 ? "]" : "", PQgetvalue(r, i, 2));
		}
		if (PQntuples(r) == 0)
			fprintf(c->out, "(no routes)\n");
		PQclear(r);
		return 0;
	}
	if (strcmp(verb, "remove") == 0) {
		char d[256];
		if ((rc = need_pos(&l, 1, "DOMAIN")) || (rc = norm_domain(&l, l.pos[0], l.pos[0], d, sizeof d)))
			return rc;
		const char *p[] = {d};
		if ((err = exec1(c, "DELETE FROM hisp_routes WHERE domain = $1", 1, p, &r)))
			return db_fail(&l, err);
		bool gone = strcmp(PQcmdTuples(r), "1") == 0;
		PQclear(r);
		if (!gone)
			return fail(&l, "%s: no route", d);
		fprintf(c->out, "removed route domain=%s\n", d);
		return 0;
	}
	fprintf(c->err, "route: unknown verb '%s' (add | list | remove)\n", verb);
	return 2;
}
