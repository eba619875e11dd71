/*
 * hisp_cli_trust.c — `hienode trust`: the trust anchors of our domains, added by hand or kept up to date from
 * trust bundles (one-shot, on c->pool; conventions in hisp_cli_int.h):
 *
 *   trust add --domain D --anchor FILE [--direction incoming|outgoing|both]
 *   trust list [--domain D] | remove --domain D FINGERPRINT
 *   trust bundle add --domain D --url URL [--signer FILE] [--refresh HOURS] [--direction ...]
 *   trust bundle list | refresh ID
 *
 * `trust bundle add` queues the first refresh (job hisp.bundle) in the transaction that inserts the bundle;
 * `refresh` runs one now (hisp_bundle_refresh), keeping the previous anchors when it fails.
 *
 * Entry point: hisp_cli_trust (hisp.h). Exit status 0 done, 1 failed, 2 bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "core/core_jobs.h"
#include "hisp/hisp_cli_int.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_trust_int.h"

#define ANCHOR_FILE_MAX (16 * 1024 * 1024)
#define URL_MAX 2000

/* The arguments `trust add` and `trust bundle add` share: no positionals; option 0 (--domain, normalized into d)
 * and option 1 required; the direction in option dir_opt. */
static int add_args(const struct hisp_cli_line *l, size_t dir_opt, char *d, size_t dlen, const char **dir)
{
	int rc;
	if ((rc = hisp_cli_no_pos(l)) || (rc = hisp_cli_required(l, 0)) || (rc = hisp_cli_required(l, 1)) ||
	    (rc = hisp_cli_norm_domain(l, "--domain", l->opts[0].val, d, dlen)) ||
	    (rc = hisp_cli_direction(l, l->opts[dir_opt].val, dir)))
		return rc;
	return 0;
}

/* --- trust add | list | remove ---------------------------------------------------------------------------- */

struct anchors_ctx {
	const char *domain, *direction;
	STACK_OF(X509) *certs;
	FILE *out;
	int rc;
};

static hie_err_t anchors_tx(PGconn *conn, void *arg)
{
	struct anchors_ctx *a = arg;
	hie_err_t err = hisp_cli_need_domain(conn, a->domain, &a->rc);
	for (int i = 0; !err && i < sk_X509_num(a->certs); i++) {
		char fp[HISP_FP_LEN + 1], subject[512];
		bool added;
		err = hisp_anchor_insert(conn, a->domain, a->direction, NULL, sk_X509_value(a->certs, i), fp, subject,
					 sizeof subject, &added);
		if (!err)
			fprintf(a->out, "%s domain=%s direction=%s fingerprint=%s subject=\"%s\"\n", added ? "added" : "exists",
				a->domain, a->direction, fp, subject);
	}
	return err;
}

static bool is_ca(X509 *x)
{
	return (X509_get_extension_flags(x) & EXFLAG_CA) || X509_self_signed(x, 0) == 1;
}

static int trust_add(struct hisp_cli_line *l)
{
	/* opts: 0 --domain, 1 --anchor, 2 --direction */
	char d[256];
	const char *dir;
	int rc;
	if ((rc = add_args(l, 2, d, sizeof d, &dir)))
		return rc;
	struct hie_buf b;
	if ((rc = hisp_cli_read_file(l, "--anchor", l->opts[1].val, ANCHOR_FILE_MAX, &b)))
		return rc;
	STACK_OF(X509) *certs = NULL;
	hie_err_t err = hisp_bundle_parse((const unsigned char *)b.data, b.len, NULL, &certs);
	hie_buf_free(&b);
	if (err)
		return hisp_cli_bad(l, "--anchor", "%s: no certificate in it (PEM, DER or PKCS#7)", l->opts[1].val);
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (!is_ca(x)) {
			char subject[512];
			hisp_cert_subject(x, subject, sizeof subject);
			rc = hisp_cli_bad(l, "--anchor", "certificate %d (%s) is neither a CA certificate nor self-signed", i + 1,
				 subject);
			sk_X509_pop_free(certs, X509_free);
			return rc;
		}
	}
	struct anchors_ctx a = {.domain = d, .direction = dir, .certs = certs, .out = l->c->out};
	err = hie_db_tx(l->c->pool, anchors_tx, &a);
	sk_X509_pop_free(certs, X509_free);
	if (err && a.rc)
		return hisp_cli_fail(l, "--domain: %s is not one of our domains (hienode domain add %s)", d, d);
	return err ? hisp_cli_db_fail(l, err) : 0;
}

static int trust_list(struct hisp_cli_line *l)
{
	char d[256];
	int rc;
	if ((rc = hisp_cli_no_pos(l)))
		return rc;
	if (l->opts[0].val && (rc = hisp_cli_norm_domain(l, "--domain", l->opts[0].val, d, sizeof d)))
		return rc;
	const char *p[] = {l->opts[0].val ? d : NULL};
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c,
			      "SELECT domain, direction, coalesce('bundle:' || bundle_id, 'manual'), fingerprint,"
			      " subject, der FROM hisp_anchors WHERE $1::text IS NULL OR domain = $1"
			      " ORDER BY domain, id",
			      1, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		char na[40] = "?";
		X509 *x = hisp_cli_der_cert(r, i, 5);
		if (x)
			hisp_cert_time(X509_get0_notAfter(x), na, sizeof na);
		X509_free(x);
		fprintf(l->c->out, "domain=%s direction=%s source=%s not_after=%s fingerprint=%s subject=\"%s\"\n",
			PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), na, PQgetvalue(r, i, 3),
			PQgetvalue(r, i, 4));
	}
	return hisp_cli_list_end(l, r, "anchors");
}

static int trust_remove(struct hisp_cli_line *l)
{
	char d[256], fp[HISP_FP_LEN + 1];
	int rc;
	if ((rc = hisp_cli_required(l, 0)) || (rc = hisp_cli_need_pos(l, 1, "--domain D FINGERPRINT")) ||
	    (rc = hisp_cli_norm_domain(l, "--domain", l->opts[0].val, d, sizeof d)) ||
	    (rc = hisp_cli_norm_fp(l, l->pos[0], fp)))
		return rc;
	const char *p[] = {d, fp};
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c,
			      "DELETE FROM hisp_anchors WHERE domain = $1 AND fingerprint = $2 RETURNING bundle_id", 2,
			      p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	int n = PQntuples(r), from_bundle = 0;
	for (int i = 0; i < n; i++)
		from_bundle += !PQgetisnull(r, i, 0);
	PQclear(r);
	if (n == 0)
		return hisp_cli_fail(l, "%s: no anchor with fingerprint %s", d, fp);
	fprintf(l->c->out, "removed domain=%s fingerprint=%s rows=%d%s\n", d, fp, n,
		from_bundle ? " (it came from a bundle: the next refresh brings it back)" : "");
	return 0;
}

/* --- trust bundle ---------------------------------------------------------------------------------------- */

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
	b->rc = 0;
	hie_err_t err = hisp_cli_need_domain(conn, b->domain, &b->rc);
	if (err)
		return err;
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

static int bundle_add(struct hisp_cli_line *l)
{
	/* opts: 0 --domain, 1 --url, 2 --signer, 3 --refresh, 4 --direction */
	char d[256], hours[16] = "24";
	const char *dir;
	int rc;
	if ((rc = add_args(l, 4, d, sizeof d, &dir)))
		return rc;
	if (!url_ok(l->opts[1].val))
		return hisp_cli_bad(l, "--url", "expected an http:// or https:// URL of at most %d printable characters", URL_MAX);
	if (l->opts[3].val) {
		char *end;
		errno = 0;
		long h = strtol(l->opts[3].val, &end, 10);
		if (errno || *end || end == l->opts[3].val || h < 1 || h > 8760)
			return hisp_cli_bad(l, "--refresh", "expected hours, 1 to 8760");
		snprintf(hours, sizeof hours, "%ld", h);
	}
	struct bundle_add_ctx b = {.domain = d, .url = l->opts[1].val, .direction = dir, .hours = hours};
	if (l->opts[2].val) {
		struct hie_buf sb;
		if ((rc = hisp_cli_read_file(l, "--signer", l->opts[2].val, HISP_CLI_CERT_MAX, &sb)))
			return rc;
		X509 *s = hisp_cert_from_buf((const unsigned char *)sb.data, sb.len);
		hie_buf_free(&sb);
		if (!s)
			return hisp_cli_bad(l, "--signer", "%s: not a certificate (PEM or DER)", l->opts[2].val);
		b.signer_len = i2d_X509(s, &b.signer);
		X509_free(s);
		if (b.signer_len <= 0)
			return hisp_cli_fail(l, "--signer: cannot encode the certificate");
	}
	hie_err_t err = hie_db_tx(l->c->pool, bundle_add_tx, &b);
	OPENSSL_free(b.signer);
	if (err && b.rc == 1)
		return hisp_cli_fail(l, "--domain: %s is not one of our domains (hienode domain add %s)", d, d);
	if (err && b.rc == 3)
		return hisp_cli_fail(l, "--url: the bundle already exists for %s (id %lld)", d, b.id);
	if (err)
		return hisp_cli_db_fail(l, err);
	fprintf(l->c->out, "added bundle id=%lld domain=%s direction=%s refresh_hours=%s url=%s (first refresh queued)\n",
		b.id, d, dir, hours, l->opts[1].val);
	return 0;
}

static int bundle_list(struct hisp_cli_line *l)
{
	int rc = hisp_cli_no_pos(l);
	if (rc)
		return rc;
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c,
			      "SELECT id, domain, direction, refresh_hours, anchors,"
			      " coalesce(to_char(last_fetch AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), '-'),"
			      " coalesce(to_char(last_ok AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), '-'),"
			      " coalesce(last_error, ''), signer_der IS NOT NULL, url FROM hisp_bundles ORDER BY id",
			      0, NULL, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
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
	return hisp_cli_list_end(l, r, "bundles");
}

static int bundle_refresh(struct hisp_cli_line *l)
{
	int rc = hisp_cli_need_pos(l, 1, "ID");
	if (rc)
		return rc;
	char *end;
	errno = 0;
	long long id = strtoll(l->pos[0], &end, 10);
	if (errno || *end || end == l->pos[0] || id <= 0)
		return hisp_cli_bad(l, l->pos[0], "not a bundle id");
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
		return hisp_cli_fail(l, "%s", hie_strerror(err));
	char reason[300];
	err = hisp_bundle_refresh(t, id, reason, sizeof reason);
	hisp_trust_close(t);
	if (err == HIE_ENOTFOUND && strcmp(reason, "no such bundle") == 0)
		return hisp_cli_fail(l, "%lld: no such bundle", id);
	if (err)
		return hisp_cli_fail(l, "bundle %lld: %s (the previous anchors are kept)", id, reason);
	fprintf(l->c->out, "refreshed bundle id=%lld: %s\n", id, reason);
	return 0;
}

static const char *const bundle_opts[] = {"--domain", "--url", "--signer", "--refresh", "--direction", NULL};

static const struct hisp_cli_verb bundle_verbs[] = {
	{.name = "add", .run = bundle_add, .opts = bundle_opts, .maxpos = 0},
	{.name = "list", .run = bundle_list, .maxpos = 1},
	{.name = "refresh", .run = bundle_refresh, .maxpos = 1},
	{.maxpos = 1},
};

static const struct hisp_cli_cmd bundle_cmd = {
	.name = "trust bundle",
	.missing = "(add | list | refresh)",
	.known = "(add | list | refresh)",
	.verbs = bundle_verbs,
};

static int trust_bundle(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &bundle_cmd, argc - 1, argv + 1);
}

/* --- trust ----------------------------------------------------------------------------------------------- */

static const char *const add_opts[] = {"--domain", "--anchor", "--direction", NULL};
static const char *const domain_opt[] = {"--domain", NULL};

static const struct hisp_cli_verb trust_verbs[] = {
	{.name = "add", .run = trust_add, .opts = add_opts, .maxpos = 0},
	{.name = "list", .run = trust_list, .opts = domain_opt, .maxpos = 1},
	{.name = "remove", .run = trust_remove, .opts = domain_opt, .maxpos = 1},
	{.name = "bundle", .sub = trust_bundle},
	{.opts = domain_opt, .maxpos = 1},
};

static const struct hisp_cli_cmd trust_cmd = {
	.name = "trust",
	.missing = "(add | list | remove | bundle)",
	.known = "(add | list | remove | bundle)",
	.verbs = trust_verbs,
};

int hisp_cli_trust(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &trust_cmd, argc, argv);
}
