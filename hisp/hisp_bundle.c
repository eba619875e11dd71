/*
 * hisp_bundle.c — trust bundles: parsing (PKCS#7/CMS certs-only .p7b in DER or PEM, CMS SignedData .p7m whose
 * content is such a bundle, PEM files of several certificates, a single DER certificate), download and the
 * all-or-nothing replacement of one bundle's anchors, and the hisp.bundle job.
 *
 * Entry points: hisp_bundle_parse, hisp_bundle_refresh, hisp_bundle_job (hisp_trust.h).
 *
 * Signed bundles: with a signer certificate configured, the bundle must be CMS SignedData whose every
 * SignerInfo verifies with exactly that certificate (CMS_NOINTERN: certificates carried inside do not count;
 * the signer is trusted as configured, not chained). Without one, a signed .p7m is accepted when its
 * signature verifies with the certificate it carries (integrity only), and unsigned bundles are accepted.
 * Certificates that only travel in a .p7m's SignedData (the signer's) are never anchors: only the content's.
 *
 * Errors: HIE_EPARSE (not a bundle), HIE_EDENIED (signature or signer), HIE_ENOTFOUND (no certificates; no
 * such bundle row), HIE_ETOOBIG (more than 5000 certificates or over fetch_max), HIE_EIO / HIE_ETIMEOUT
 * (download), HIE_EDB.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/core_log.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust_int.h"

#define MAX_BUNDLE_CERTS 5000

struct parse_state {
	X509 *signer;
	bool signed_ok;  /* a SignedData with signers verified */
	STACK_OF(X509) *out;
};

static hie_err_t parse_any(struct parse_state *s, const unsigned char *d, size_t len, int depth);

static hie_err_t push_cert(struct parse_state *s, X509 *x)
{
	if (sk_X509_num(s->out) >= MAX_BUNDLE_CERTS) {
		X509_free(x);
		return HIE_ETOOBIG;
	}
	if (!sk_X509_push(s->out, x)) {
		X509_free(x);
		return HIE_ENOMEM;
	}
	return HIE_OK;
}

static hie_err_t signed_content(struct parse_state *s, CMS_ContentInfo *cms, int depth)
{
	if (depth > 0) /* a signed bundle inside a signed bundle: nothing we make or expect */
		return HIE_EPARSE;
	BIO *content = BIO_new(BIO_s_mem());
	STACK_OF(X509) *want = s->signer ? sk_X509_new_null() : NULL;
	hie_err_t err = HIE_OK;
	if (!content || (s->signer && (!want || !sk_X509_push(want, s->signer)))) {
		err = HIE_ENOMEM;
		goto out;
	}
	unsigned flags = CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY | (s->signer ? CMS_NOINTERN : 0);
	if (CMS_verify(cms, want, NULL, NULL, content, flags) != 1) {
		err = HIE_EDENIED;
		goto out;
	}
	char *p;
	long n = BIO_get_mem_data(content, &p);
	err = parse_any(s, (const unsigned char *)p, n > 0 ? (size_t)n : 0, depth + 1);
	if (!err)
		s->signed_ok = true;
out:
	sk_X509_free(want); /* the signer stays the caller's */
	BIO_free(content);
	return err;
}

static hie_err_t from_cms(struct parse_state *s, CMS_ContentInfo *cms, int depth)
{
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
		return HIE_EPARSE;
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	if (sk_CMS_SignerInfo_num(sis) > 0)
		return signed_content(s, cms, depth);
	STACK_OF(X509) *certs = CMS_get1_certs(cms); /* certs-only .p7b; NULL when it holds none */
	hie_err_t err = HIE_OK;
	while (!err && sk_X509_num(certs) > 0)
		err = push_cert(s, sk_X509_shift(certs));
	sk_X509_pop_free(certs, X509_free);
	return err;
}

static hie_err_t parse_der(struct parse_state *s, const unsigned char *d, size_t len, int depth)
{
	if (len == 0 || len > LONG_MAX)
		return HIE_EPARSE;
	const unsigned char *p = d;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms && p == d + len) {
		hie_err_t err = from_cms(s, cms, depth);
		CMS_ContentInfo_free(cms);
		return err;
	}
	CMS_ContentInfo_free(cms);
	p = d;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (x && p == d + len)
		return push_cert(s, x);
	X509_free(x);
	return HIE_EPARSE;
}

static hie_err_t parse_pem(struct parse_state *s, const unsigned char *d, size_t len, int depth)
{
	if (len > INT_MAX)
		return HIE_ETOOBIG;
	BIO *b = BIO_new_mem_buf(d, (int)len);
	if (!b)
		return HIE_ENOMEM;
	hie_err_t err = HIE_OK;
	int blocks = 0;
	for (;;) {
		char *name = NULL, *hdr = NULL;
		unsigned char *der = NULL;
		long dlen = 0;
		if (!PEM_read_bio(b, &name, &hdr, &der, &dlen)) {
			unsigned long e = ERR_peek_last_error();
			if (blocks == 0 || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
				err = HIE_EPARSE;
			break;
		}
		blocks++;
		const unsigned char *p = der;
		if (strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "X509 CERTIFICATE") == 0) {
			X509 *x = d2i_X509(NULL, &p, dlen);
			err = x && p == der + dlen ? push_cert(s, x) : HIE_EPARSE;
			if (err == HIE_EPARSE)
				X509_free(x);
		} else if (strcmp(name, "TRUSTED CERTIFICATE") == 0) {
			X509 *x = d2i_X509_AUX(NULL, &p, dlen);
			err = x ? push_cert(s, x) : HIE_EPARSE;
		} else if (strcmp(name, "PKCS7") == 0 || strcmp(name, "CMS") == 0) {
			err = parse_der(s, der, (size_t)dlen, depth);
		} /* other blocks (keys, CRLs, parameters) are not part of a bundle: skipped */
		OPENSSL_free(name);
		OPENSSL_free(hdr);
		OPENSSL_free(der);
		if (err)
			break;
	}
	BIO_free(b);
	ERR_clear_error();
	return err;
}

static hie_err_t parse_any(struct parse_state *s, const unsigned char *d, size_t len, int depth)
{
	size_t i = 0;
	while (i < len && isspace(d[i]))
		i++;
	if (len - i >= 10 && memcmp(d + i, "-----BEGIN", 10) == 0)
		return parse_pem(s, d, len, depth);
	return parse_der(s, d, len, depth);
}

hie_err_t hisp_bundle_parse(const unsigned char *data, size_t len, X509 *signer, STACK_OF(X509) **out)
{
	*out = NULL;
	struct parse_state s = {.signer = signer, .out = sk_X509_new_null()};
	if (!s.out)
		return HIE_ENOMEM;
	hie_err_t err = data ? parse_any(&s, data, len, 0) : HIE_EINVAL;
	if (!err && signer && !s.signed_ok)
		err = HIE_EDENIED; /* a signer is configured: an unsigned bundle is refused */
	if (!err && sk_X509_num(s.out) == 0)
		err = HIE_ENOTFOUND;
	ERR_clear_error();
	if (err) {
		sk_X509_pop_free(s.out, X509_free);
		return err;
	}
	*out = s.out;
	return HIE_OK;
}

/* --- refresh --------------------------------------------------------------------------------------------- */

struct bundle_row {
	char url[2048];
	X509 *signer;
	bool found;
};

static hie_err_t read_row(PGconn *conn, long long id, struct bundle_row *row)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	const char *p[] = {ids};
	PGresult *r;
	hie_err_t err = hie_db_exec_bin(conn, "SELECT url, signer_der FROM hisp_bundles WHERE id = $1::bigint", 1, p,
					NULL, NULL, 1, &r);
	if (err)
		return err;
	if (PQntuples(r) == 1) {
		row->found = true;
		snprintf(row->url, sizeof row->url, "%s", PQgetvalue(r, 0, 0));
		if (!PQgetisnull(r, 0, 1)) {
			const unsigned char *d = (const unsigned char *)PQgetvalue(r, 0, 1);
			row->signer = d2i_X509(NULL, &d, PQgetlength(r, 0, 1));
			if (!row->signer)
				err = HIE_EPARSE;
		}
	}
	PQclear(r);
	return err;
}

struct apply_ctx {
	long long id;
	STACK_OF(X509) *certs; /* NULL: record the failure */
	const char *error;
	long long inserted;
};

hie_err_t hisp_anchor_insert(PGconn *conn, const char *domain, const char *direction, const char *bundle_id, X509 *x,
			     char *fp, char *subject, size_t slen, bool *added)
{
	*added = false;
	unsigned char *der = NULL;
	int dlen = i2d_X509(x, &der);
	if (dlen <= 0 || hisp_cert_fingerprint(x, fp, HISP_FP_LEN + 1)) {
		OPENSSL_free(der);
		return HIE_ETLS;
	}
	hisp_cert_subject(x, subject, slen);
	const char *v[] = {domain, direction, (const char *)der, fp, subject, bundle_id};
	const int l[] = {0, 0, dlen, 0, 0, 0};
	const int f[] = {0, 0, 1, 0, 0, 0};
	PGresult *r;
	hie_err_t err = hie_db_exec_bin(conn,
					"INSERT INTO hisp_anchors (domain, direction, der, fingerprint, subject, bundle_id)"
					" VALUES ($1, $2, $3, $4, $5, $6::bigint) ON CONFLICT DO NOTHING",
					6, v, l, f, 0, &r);
	OPENSSL_free(der);
	if (!err) {
		*added = strcmp(PQcmdTuples(r), "1") == 0;
		PQclear(r);
	}
	return err;
}

static hie_err_t apply_tx(PGconn *conn, void *arg)
{
	struct apply_ctx *a = arg;
	char ids[24], n[24];
	snprintf(ids, sizeof ids, "%lld", a->id);
	const char *p1[] = {ids};
	PGresult *r;
	hie_err_t err;
	a->inserted = 0;
	if (!a->certs) {
		const char *p[] = {ids, a->error};
		err = hie_db_exec(conn, "UPDATE hisp_bundles SET last_fetch = now(), last_error = $2 WHERE id = $1::bigint",
				  2, p, NULL);
		return err;
	}
	err = hie_db_exec(conn, "SELECT domain, direction FROM hisp_bundles WHERE id = $1::bigint FOR UPDATE", 1, p1,
			  &r);
	if (err)
		return err;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return HIE_ENOTFOUND;
	}
	char domain[256], direction[16];
	snprintf(domain, sizeof domain, "%s", PQgetvalue(r, 0, 0));
	snprintf(direction, sizeof direction, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	err = hie_db_exec(conn, "DELETE FROM hisp_anchors WHERE bundle_id = $1::bigint", 1, p1, NULL);
	for (int i = 0; !err && i < sk_X509_num(a->certs); i++) {
		char fp[HISP_FP_LEN + 1], subject[512];
		bool added;
		err = hisp_anchor_insert(conn, domain, direction, ids, sk_X509_value(a->certs, i), fp, subject,
					 sizeof subject, &added);
		a->inserted += added;
	}
	snprintf(n, sizeof n, "%lld", a->inserted);
	const char *p2[] = {ids, n};
	if (!err)
		err = hie_db_exec(conn,
				  "UPDATE hisp_bundles SET last_fetch = now(), last_ok = now(), last_error = NULL,"
				  " anchors = $2::int WHERE id = $1::bigint",
				  2, p2, NULL);
	return err;
}

static hie_err_t record_failure(struct hie_db_pool *pool, long long id, const char *why)
{
	struct apply_ctx a = {.id = id, .error = why};
	return hie_db_tx(pool, apply_tx, &a);
}

hie_err_t hisp_bundle_refresh(struct hisp_trust *t, long long bundle_id, char *reason, size_t rlen)
{
	struct hie_db_pool *pool = hisp_trust_pool(t);
	const struct hisp_trust_opts *o = hisp_trust_options(t);
	struct bundle_row row = {0};
	STACK_OF(X509) *certs = NULL;
	char why[256] = "";
	PGconn *conn;
	snprintf(reason, rlen, "%s", "");
	hie_err_t err = hie_db_acquire(pool, -1, &conn);
	if (err) {
		snprintf(reason, rlen, "database unavailable");
		return err;
	}
	err = read_row(conn, bundle_id, &row);
	hie_db_release(pool, conn, err == HIE_EDB);
	if (!err && !row.found)
		err = HIE_ENOTFOUND;
	if (err) {
		snprintf(reason, rlen, "%s", err == HIE_ENOTFOUND ? "no such bundle" : err == HIE_EPARSE ? "stored signer certificate unreadable" : "database error");
		X509_free(row.signer);
		return err;
	}

	struct hie_buf b;
	hie_buf_init(&b, o->fetch_max);
	err = hisp_http_get(row.url, o->fetch_timeout_ms, &b, why, sizeof why);
	if (err) {
		snprintf(reason, rlen, "download failed: %s", why);
	} else {
		err = hisp_bundle_parse((const unsigned char *)b.data, b.len, row.signer, &certs);
		if (err)
			snprintf(reason, rlen, "%s",
				 err == HIE_EDENIED    ? "signature does not verify with the configured signer"
				 : err == HIE_ENOTFOUND ? "bundle holds no certificates"
				 : err == HIE_ETOOBIG   ? "bundle holds too many certificates"
							: "not a trust bundle (p7b, p7m or PEM)");
	}
	hie_buf_free(&b);
	X509_free(row.signer);

	if (err) {
		/* the old anchors stay: only the failure is recorded */
		hie_err_t e2 = record_failure(pool, bundle_id, reason);
		hie_log(HIE_LOG_WARN, "event=hisp.bundle.refresh bundle_id=%lld outcome=failed error=%s record=%s",
			bundle_id, hie_errname(err), hie_errname(e2));
		return err;
	}
	struct apply_ctx a = {.id = bundle_id, .certs = certs};
	err = hie_db_tx(pool, apply_tx, &a);
	sk_X509_pop_free(certs, X509_free);
	if (err) {
		snprintf(reason, rlen, "%s", err == HIE_ENOTFOUND ? "no such bundle" : "database error");
		return err;
	}
	hisp_trust_invalidate(t);
	snprintf(reason, rlen, "%lld anchors", a.inserted);
	hie_log(HIE_LOG_INFO, "event=hisp.bundle.refresh bundle_id=%lld outcome=ok anchors=%lld", bundle_id,
		a.inserted);
	return HIE_OK;
}

/* --- the job --------------------------------------------------------------------------------------------- */

struct next_ctx {
	const char *ids;
	long long id;
};

static hie_err_t next_tx(PGconn *conn, void *arg)
{
	struct next_ctx *c = arg;
	const char *p[] = {c->ids};
	PGresult *r;
	hie_err_t err = hie_db_exec(conn, "SELECT refresh_hours FROM hisp_bundles WHERE id = $1::bigint", 1, p, &r);
	if (err)
		return err;
	long long hours = 0;
	if (PQntuples(r) != 1 || hie_db_get_ll(r, 0, 0, &hours) || hours <= 0) {
		PQclear(r);
		return HIE_ENOTFOUND;
	}
	PQclear(r);
	long long delay_ms = hours * 3600LL * 1000;
	char key[64];
	snprintf(key, sizeof key, "bundle:%lld:%lld", c->id, ((long long)time(NULL) + hours * 3600) / 3600);
	return hie_jobs_enqueue(conn, "hisp.bundle", c->ids, key, delay_ms, NULL);
}

hie_err_t hisp_bundle_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct hisp *h = arg;
	char *end;
	errno = 0;
	long long id = strtoll(job->payload, &end, 10);
	if (errno || end == job->payload || *end || id <= 0) {
		snprintf(errbuf, errlen, "bad payload");
		return HIE_EPERMANENT;
	}
	char reason[300];
	hie_err_t err = hisp_bundle_refresh(h->trust, id, reason, sizeof reason);
	if (err == HIE_ENOTFOUND) {
		snprintf(errbuf, errlen, "bundle %lld no longer exists", id);
		return HIE_EPERMANENT;
	}
	/* The next periodic run is queued after a success, or once this run has no retry left, so that one
	 * bad day does not end the refresh chain. The dedup key (bundle, hour of the next run) keeps one. */
	if (!err || job->attempts >= job->max_attempts) {
		char ids[24];
		snprintf(ids, sizeof ids, "%lld", id);
		struct next_ctx c = {.ids = ids, .id = id};
		hie_err_t e2 = hie_db_tx(h->pool, next_tx, &c);
		if (e2 && !err) {
			snprintf(errbuf, errlen, "refreshed, but the next run could not be queued");
			return e2;
		}
	}
	if (err)
		snprintf(errbuf, errlen, "%s", reason);
	return err;
}
