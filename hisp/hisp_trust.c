/*
 * hisp_trust.c — the one certificate check of the Direct HISP (hisp_trust.h lists the rules), anchor
 * stores per (local domain, direction), AIA caIssuers and CRL downloads.
 *
 * Entry points: hisp_trust_open/close/invalidate/check; private: hisp_http_get (libcurl), hisp_trust_pool,
 * hisp_trust_options (hisp_trust_int.h).
 *
 * How a check runs: cheap rules on the certificate itself first (binding, validity, RSA size, key usage,
 * signature digest), then the chain is built with X509_verify_cert against the anchors of the local domain
 * for the direction (the X509_STORE, X509_V_FLAG_PARTIAL_CHAIN so an intermediate may be an anchor), the
 * caller's certificates and issuers fetched from AIA caIssuers URLs (retried while an issuer is missing).
 * On the chain found: every certificate below the anchor must not be signed with MD5/SHA-1 and the chain is
 * at most 5 long. Last, the CRLs of every certificate below the anchor (CRL distribution points, http) are
 * fetched or taken from hisp_crl_cache, and the chain is verified again with CRL_CHECK | CRL_CHECK_ALL on
 * exactly those CRLs. A CRL that cannot be had is logged and the certificate counted as not revoked (Direct
 * RI behaviour); a CRL that lists the certificate refuses it.
 *
 * Caches: anchor stores (reloaded when hisp_anchors' count/max(id) changed, looked at most every 2 s, or
 * after hisp_trust_invalidate), AIA issuers by URL in memory (24 h, failures 5 min), CRLs in hisp_crl_cache
 * until nextUpdate (1 h without one). All under one mutex; no lock is held during a download or a verify
 * (stores are reference-counted). Job workers call hisp_trust_check concurrently.
 *
 * Errors: HIE_EDENIED with a reason, HIE_EDB (anchors unreadable), HIE_EINVAL, HIE_ENOMEM.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core_log.h"
#include "core/core_time.h"
#include "hisp/hisp_trust_int.h"

#define CHECK_EVERY_MS 2000
#define MAX_SETS 64
#define AIA_MAX 128
#define AIA_TTL_MS (24LL * 3600 * 1000)
#define AIA_NEG_TTL_MS (5LL * 60 * 1000)
#define AIA_ROUNDS 4
#define CHAIN_MAX 5
#define CRL_MAX_PER_CHAIN 16

struct anchor_set {
	char domain[256];
	enum hisp_direction dir;
	X509_STORE *store;
	int n;
};

struct aia_ent {
	char url[512];
	STACK_OF(X509) *certs; /* NULL: the download failed */
	int64_t at_ms;
};

struct hisp_trust {
	struct hie_db_pool *pool;
	struct hisp_trust_opts o;
	pthread_mutex_t mu;
	struct anchor_set sets[MAX_SETS];
	size_t nsets;
	bool checked;
	int64_t checked_ms;
	long long count, maxid;
	struct aia_ent aia[AIA_MAX];
	size_t naia;
};

/* --- HTTP ----------------------------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct sink {
	struct hie_buf *b;
	bool toobig;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	if (hie_buf_add(s->b, p, n) != HIE_OK) {
		s->toobig = true;
		return 0;
	}
	return n;
}

hie_err_t hisp_http_get(const char *url, int timeout_ms, struct hie_buf *out, char *reason, size_t rlen)
{
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		snprintf(reason, rlen, "not an http(s) URL");
		return HIE_EINVAL;
	}
	pthread_once(&curl_once, curl_init_once);
	CURL *c = curl_easy_init();
	if (!c)
		return HIE_ENOMEM;
	struct sink s = {.b = out};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)out->max);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hienode");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	if (rc == CURLE_OK)
		return HIE_OK;
	snprintf(reason, rlen, "%s", s.toobig || rc == CURLE_FILESIZE_EXCEEDED ? "too big" : curl_easy_strerror(rc));
	if (s.toobig || rc == CURLE_FILESIZE_EXCEEDED)
		return HIE_ETOOBIG;
	return rc == CURLE_OPERATION_TIMEDOUT ? HIE_ETIMEOUT : HIE_EIO;
}

/* --- open / close / caches ------------------------------------------------------------------------------- */

hie_err_t hisp_trust_open(struct hie_db_pool *pool, const struct hisp_trust_opts *o, struct hisp_trust **out)
{
	*out = NULL;
	struct hisp_trust *t = calloc(1, sizeof *t);
	if (!t)
		return HIE_ENOMEM;
	if (pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		return HIE_ESYS;
	}
	t->pool = pool;
	t->o = *o;
	if (t->o.min_rsa_bits <= 0)
		t->o.min_rsa_bits = 2048;
	if (t->o.fetch_timeout_ms <= 0)
		t->o.fetch_timeout_ms = 10000;
	if (t->o.fetch_max == 0)
		t->o.fetch_max = 10u * 1024 * 1024;
	*out = t;
	return HIE_OK;
}

static void drop_sets(struct hisp_trust *t)
{
	for (size_t i = 0; i < t->nsets; i++)
		X509_STORE_free(t->sets[i].store);
	t->nsets = 0;
}

void hisp_trust_close(struct hisp_trust *t)
{
	if (!t)
		return;
	drop_sets(t);
	for (size_t i = 0; i < t->naia; i++)
		sk_X509_pop_free(t->aia[i].certs, X509_free);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

void hisp_trust_invalidate(struct hisp_trust *t)
{
	pthread_mutex_lock(&t->mu);
	drop_sets(t);
	t->checked = false;
	pthread_mutex_unlock(&t->mu);
}

struct hie_db_pool *hisp_trust_pool(const struct hisp_trust *t)
{
	return t->pool;
}

const struct hisp_trust_opts *hisp_trust_options(const struct hisp_trust *t)
{
	return &t->o;
}

static const char *dir_name(enum hisp_direction d)
{
	return d == HISP_INCOMING ? "incoming" : "outgoing";
}

static hie_err_t load_set(PGconn *conn, const char *domain, enum hisp_direction dir, X509_STORE **out, int *n)
{
	const char *params[] = {domain, dir_name(dir)};
	PGresult *r;
	hie_err_t err = hie_db_exec_bin(conn,
					"SELECT der FROM hisp_anchors WHERE domain = $1 AND direction IN ($2, 'both')",
					2, params, NULL, NULL, 1, &r);
	if (err)
		return err;
	X509_STORE *st = X509_STORE_new();
	*n = 0;
	for (int i = 0; st && i < PQntuples(r); i++) {
		const unsigned char *p = (const unsigned char *)PQgetvalue(r, i, 0);
		X509 *x = d2i_X509(NULL, &p, PQgetlength(r, i, 0));
		if (x && X509_STORE_add_cert(st, x))
			(*n)++;
		X509_free(x);
	}
	PQclear(r);
	ERR_clear_error();
	if (!st)
		return HIE_ENOMEM;
	*out = st;
	return HIE_OK;
}

/* The anchor store of (domain, dir), up-ref'd for the caller (X509_STORE_free). HIE_EDB when it cannot be
 * read and is not cached. */
static hie_err_t get_store(struct hisp_trust *t, const char *domain, enum hisp_direction dir, X509_STORE **out,
			   int *n)
{
	hie_err_t err = HIE_OK;
	PGconn *conn = NULL;
	pthread_mutex_lock(&t->mu);
	int64_t now = hie_mono_ms();
	if (!t->checked || now - t->checked_ms >= CHECK_EVERY_MS) {
		err = hie_db_acquire(t->pool, -1, &conn);
		PGresult *r = NULL;
		if (!err)
			err = hie_db_exec(conn, "SELECT count(*), coalesce(max(id), 0) FROM hisp_anchors", 0, NULL, &r);
		long long count = 0, maxid = 0;
		if (!err && (hie_db_get_ll(r, 0, 0, &count) || hie_db_get_ll(r, 0, 1, &maxid)))
			err = HIE_EDB;
		PQclear(r);
		if (!err) {
			if (!t->checked || count != t->count || maxid != t->maxid)
				drop_sets(t);
			t->checked = true;
			t->checked_ms = now;
			t->count = count;
			t->maxid = maxid;
		}
	}
	struct anchor_set *s = NULL;
	for (size_t i = 0; i < t->nsets; i++)
		if (t->sets[i].dir == dir && strcmp(t->sets[i].domain, domain) == 0)
			s = &t->sets[i];
	if (!s) {
		if (!conn && !err)
			err = hie_db_acquire(t->pool, -1, &conn);
		X509_STORE *st = NULL;
		int cnt = 0;
		if (!err)
			err = load_set(conn, domain, dir, &st, &cnt);
		if (!err) {
			if (t->nsets == MAX_SETS)
				drop_sets(t);
			s = &t->sets[t->nsets++];
			snprintf(s->domain, sizeof s->domain, "%s", domain);
			s->dir = dir;
			s->store = st;
			s->n = cnt;
		}
	}
	if (s) {
		err = HIE_OK; /* a cached store beats a database that cannot be asked right now */
		X509_STORE_up_ref(s->store);
		*out = s->store;
		*n = s->n;
	}
	pthread_mutex_unlock(&t->mu);
	if (conn)
		hie_db_release(t->pool, conn, err == HIE_EDB);
	return err;
}

/* --- certificate rules ------------------------------------------------------------------------------------ */

/* "sha1" / "md5" when x is signed with a weak digest, else NULL. */
static const char *weak_digest(X509 *x)
{
	int md = NID_undef;
	if (!X509_get_signature_info(x, &md, NULL, NULL, NULL)) {
		int pk;
		if (!OBJ_find_sigid_algs(X509_get_signature_nid(x), &md, &pk))
			md = NID_undef;
	}
	switch (md) {
	case NID_sha1:
		return "sha1";
	case NID_md5:
	case NID_md5_sha1:
		return "md5";
	case NID_md4:
		return "md4";
	case NID_md2:
		return "md2";
	default:
		return NULL;
	}
}

static bool leaf_rules(const struct hisp_trust *t, X509 *cert, const char *addr, enum hisp_usage use, char *reason,
		       size_t rlen)
{
	if (!hisp_cert_binds(cert, addr, NULL)) {
		snprintf(reason, rlen, "not bound to %s", addr);
		return false;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		snprintf(reason, rlen, "not yet valid");
		return false;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		snprintf(reason, rlen, "expired");
		return false;
	}
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	if (!pk) {
		snprintf(reason, rlen, "unreadable public key");
		return false;
	}
	if (EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) < t->o.min_rsa_bits) {
		snprintf(reason, rlen, "rsa key %d bits", EVP_PKEY_get_bits(pk));
		return false;
	}
	uint32_t ku = X509_get_key_usage(cert); /* UINT32_MAX: no extension, any use */
	uint32_t need = use == HISP_USE_SIGN ? KU_DIGITAL_SIGNATURE : KU_KEY_ENCIPHERMENT;
	if (!(ku & need)) {
		snprintf(reason, rlen, "key usage");
		return false;
	}
	const char *weak = weak_digest(cert);
	if (weak && !t->o.allow_sha1_certs) {
		snprintf(reason, rlen, "%s signature", weak);
		return false;
	}
	return true;
}

/* --- AIA ------------------------------------------------------------------------------------------------- */

/* First http caIssuers URL of x not in tried[0..ntried). */
static bool aia_url(X509 *x, char tried[][512], size_t ntried, char *out, size_t outlen)
{
	AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
	bool found = false;
	for (int i = 0; aia && !found && i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
		ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
		if (OBJ_obj2nid(ad->method) != NID_ad_ca_issuers || ad->location->type != GEN_URI)
			continue;
		const ASN1_IA5STRING *u = ad->location->d.uniformResourceIdentifier;
		if (u->length < 8 || (size_t)u->length >= outlen || memchr(u->data, 0, (size_t)u->length) ||
		    strncasecmp((const char *)u->data, "http", 4) != 0)
			continue;
		memcpy(out, u->data, (size_t)u->length);
		out[u->length] = '\0';
		found = true;
		for (size_t k = 0; k < ntried; k++)
			if (strcmp(tried[k], out) == 0)
				found = false;
	}
	AUTHORITY_INFO_ACCESS_free(aia);
	return found;
}

static bool push_copies(STACK_OF(X509) *dst, STACK_OF(X509) *src)
{
	for (int i = 0; src && i < sk_X509_num(src); i++) {
		X509 *x = sk_X509_value(src, i);
		X509_up_ref(x);
		if (!sk_X509_push(dst, x)) {
			X509_free(x);
			return false;
		}
	}
	return true;
}

/* Issuers at url pushed onto dst (memory cache first). false when none could be had. */
static bool aia_fetch(struct hisp_trust *t, const char *url, STACK_OF(X509) *dst)
{
	int64_t now = hie_mono_ms();
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->naia; i++) {
		struct aia_ent *e = &t->aia[i];
		if (strcmp(e->url, url) != 0)
			continue;
		if (now - e->at_ms < (e->certs ? AIA_TTL_MS : AIA_NEG_TTL_MS)) {
			bool ok = e->certs && push_copies(dst, e->certs);
			pthread_mutex_unlock(&t->mu);
			return ok;
		}
	}
	pthread_mutex_unlock(&t->mu);

	struct hie_buf b;
	char why[128] = "";
	hie_buf_init(&b, t->o.fetch_max);
	STACK_OF(X509) *got = NULL;
	hie_err_t err = hisp_http_get(url, t->o.fetch_timeout_ms, &b, why, sizeof why);
	if (!err)
		err = hisp_bundle_parse((const unsigned char *)b.data, b.len, NULL, &got);
	hie_buf_free(&b);
	char pu[160];
	hie_log_printable(pu, sizeof pu, url, strlen(url));
	if (err)
		hie_log(HIE_LOG_WARN, "event=hisp.trust.aia_unavailable url=%s error=%s reason=\"%s\"", pu,
			hie_errname(err), why);
	else
		hie_log(HIE_LOG_INFO, "event=hisp.trust.aia_fetched url=%s certs=%d", pu, sk_X509_num(got));

	pthread_mutex_lock(&t->mu);
	struct aia_ent *slot = NULL;
	for (size_t i = 0; i < t->naia && !slot; i++)
		if (strcmp(t->aia[i].url, url) == 0)
			slot = &t->aia[i];
	if (!slot && t->naia < AIA_MAX)
		slot = &t->aia[t->naia++];
	if (!slot) { /* full: replace the oldest */
		slot = &t->aia[0];
		for (size_t i = 1; i < t->naia; i++)
			if (t->aia[i].at_ms < slot->at_ms)
				slot = &t->aia[i];
	}
	sk_X509_pop_free(slot->certs, X509_free);
	snprintf(slot->url, sizeof slot->url, "%s", url);
	slot->certs = got;
	slot->at_ms = now;
	bool ok = got && push_copies(dst, got);
	pthread_mutex_unlock(&t->mu);
	return ok;
}

/* --- CRLs ------------------------------------------------------------------------------------------------ */

static X509_CRL *crl_parse(const unsigned char *d, size_t len)
{
	if (len == 0 || len > INT_MAX)
		return NULL;
	const unsigned char *p = d;
	X509_CRL *c = d2i_X509_CRL(NULL, &p, (long)len);
	if (!c) {
		BIO *b = BIO_new_mem_buf(d, (int)len);
		c = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	ERR_clear_error();
	return c;
}

static void crl_store(PGconn *conn, const char *url, X509_CRL *crl)
{
	unsigned char *der = NULL;
	int len = i2d_X509_CRL(crl, &der);
	if (len <= 0)
		return;
	char next[32] = "";
	const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
	struct tm tm;
	if (nu && ASN1_TIME_to_tm(nu, &tm))
		strftime(next, sizeof next, "%Y-%m-%d %H:%M:%S+00", &tm);
	const char *v[] = {url, (const char *)der, next[0] ? next : NULL};
	const int l[] = {0, len, 0};
	const int f[] = {0, 1, 0};
	hie_db_exec_bin(conn,
			"INSERT INTO hisp_crl_cache (url, der, next_update, fetched_at) VALUES ($1, $2, $3, now())"
			" ON CONFLICT (url) DO UPDATE SET der = EXCLUDED.der, next_update = EXCLUDED.next_update,"
			" fetched_at = EXCLUDED.fetched_at",
			3, v, l, f, 0, NULL);
	OPENSSL_free(der);
}

/*
 * The CRL at url for certificates issued by issuer: hisp_crl_cache while fresh, else downloaded (and kept
 * only when issuer's key signed it). A download that fails falls back to a stale cached CRL (a revocation
 * stays a revocation); NULL when there is none (logged: soft-fail).
 */
static X509_CRL *get_crl(struct hisp_trust *t, const char *url, X509 *issuer)
{
	PGconn *conn = NULL;
	PGresult *r = NULL;
	X509_CRL *cached = NULL;
	bool fresh = false;
	if (hie_db_acquire(t->pool, -1, &conn) != HIE_OK)
		conn = NULL;
	const char *p[] = {url};
	if (conn && hie_db_exec_bin(conn,
				    "SELECT der, ((next_update IS NOT NULL AND next_update > now()) OR"
				    " (next_update IS NULL AND fetched_at > now() - interval '1 hour'))::text"
				    " FROM hisp_crl_cache WHERE url = $1",
				    1, p, NULL, NULL, 1, &r) == HIE_OK &&
	    PQntuples(r) == 1) {
		cached = crl_parse((const unsigned char *)PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
		fresh = strcmp(PQgetvalue(r, 0, 1), "true") == 0;
	}
	PQclear(r);
	if (cached && fresh)
		goto out;

	struct hie_buf b;
	char why[128] = "";
	hie_buf_init(&b, t->o.fetch_max);
	hie_err_t err = hisp_http_get(url, t->o.fetch_timeout_ms, &b, why, sizeof why);
	X509_CRL *crl = err ? NULL : crl_parse((const unsigned char *)b.data, b.len);
	hie_buf_free(&b);
	if (!err && !crl) {
		err = HIE_EPARSE;
		snprintf(why, sizeof why, "not a CRL");
	}
	if (crl && X509_CRL_verify(crl, X509_get0_pubkey(issuer)) <= 0) {
		X509_CRL_free(crl);
		crl = NULL;
		err = HIE_EDENIED;
		snprintf(why, sizeof why, "CRL signature does not verify with the issuer's key");
	}
	ERR_clear_error();
	char pu[160];
	hie_log_printable(pu, sizeof pu, url, strlen(url));
	if (crl) {
		X509_CRL_free(cached);
		cached = crl;
		if (conn)
			crl_store(conn, url, crl);
		hie_log(HIE_LOG_INFO, "event=hisp.trust.crl_fetched url=%s", pu);
	} else {
		hie_log(HIE_LOG_WARN,
			"event=hisp.trust.crl_unavailable url=%s error=%s reason=\"%s\" stale=%s action=not_revoked_unless_stale_lists_it",
			pu, hie_errname(err), why, cached ? "yes" : "no");
	}
out:
	if (conn)
		hie_db_release(t->pool, conn, false);
	return cached;
}

/* http CRL distribution point URIs of x into urls (at most max). */
static size_t cdp_urls(X509 *x, char urls[][512], size_t max)
{
	size_t n = 0;
	STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	for (int i = 0; dps && i < sk_DIST_POINT_num(dps); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		if (!dp->distpoint || dp->distpoint->type != 0)
			continue;
		GENERAL_NAMES *names = dp->distpoint->name.fullname;
		for (int j = 0; j < sk_GENERAL_NAME_num(names) && n < max; j++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(names, j);
			if (g->type != GEN_URI)
				continue;
			const ASN1_IA5STRING *u = g->d.uniformResourceIdentifier;
			if (u->length < 8 || u->length >= 512 || memchr(u->data, 0, (size_t)u->length) ||
			    strncasecmp((const char *)u->data, "http", 4) != 0)
				continue;
			memcpy(urls[n], u->data, (size_t)u->length);
			urls[n][u->length] = '\0';
			n++;
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return n;
}

/* Revocation pass: only a revoked certificate fails; CRLs we could not have, or cannot use, are soft. */
static int crl_cb(int ok, X509_STORE_CTX *ctx)
{
	if (ok)
		return 1;
	switch (X509_STORE_CTX_get_error(ctx)) {
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
	case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
	case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
	case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
		return 1;
	default:
		return 0;
	}
}

/* --- the check ------------------------------------------------------------------------------------------- */

static void verify_reason(int e, char *reason, size_t rlen)
{
	switch (e) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		snprintf(reason, rlen, "untrusted: no chain to an anchor");
		break;
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
		snprintf(reason, rlen, "chain longer than %d", CHAIN_MAX);
		break;
	case X509_V_ERR_CERT_REVOKED:
		snprintf(reason, rlen, "revoked");
		break;
	default:
		snprintf(reason, rlen, "untrusted: %s", X509_verify_cert_error_string(e));
	}
}

/* Builds the chain (fetching AIA issuers while one is missing). *chain: leaf first, anchor last. */
static hie_err_t build_chain(struct hisp_trust *t, X509_STORE *st, X509 *cert, STACK_OF(X509) *work,
			     STACK_OF(X509) **chain, char *reason, size_t rlen)
{
	char tried[AIA_ROUNDS][512];
	size_t ntried = 0;
	for (;;) {
		X509_STORE_CTX *ctx = X509_STORE_CTX_new();
		if (!ctx || !X509_STORE_CTX_init(ctx, st, cert, work)) {
			X509_STORE_CTX_free(ctx);
			return HIE_ENOMEM;
		}
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
		X509_STORE_CTX_set_depth(ctx, CHAIN_MAX + 2);
		int ok = X509_verify_cert(ctx);
		int e = X509_STORE_CTX_get_error(ctx);
		X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
		if (ok == 1) {
			*chain = X509_STORE_CTX_get1_chain(ctx);
			X509_STORE_CTX_free(ctx);
			return *chain ? HIE_OK : HIE_ENOMEM;
		}
		bool missing = e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT;
		char url[512];
		bool retry = missing && cur && ntried < AIA_ROUNDS && aia_url(cur, tried, ntried, url, sizeof url);
		X509_STORE_CTX_free(ctx);
		ERR_clear_error();
		if (!retry) {
			verify_reason(e, reason, rlen);
			return HIE_EDENIED;
		}
		snprintf(tried[ntried++], sizeof tried[0], "%s", url);
		aia_fetch(t, url, work); /* a failed fetch ends in "no chain" on the next round */
	}
}

static hie_err_t check_revocation(struct hisp_trust *t, X509_STORE *st, X509 *cert, STACK_OF(X509) *work,
				  STACK_OF(X509) *chain, char *reason, size_t rlen)
{
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	if (!crls)
		return HIE_ENOMEM;
	char seen[CRL_MAX_PER_CHAIN][512];
	size_t nseen = 0;
	int n = sk_X509_num(chain);
	for (int i = 0; i + 1 < n; i++) { /* below the anchor */
		char urls[4][512];
		size_t nu = cdp_urls(sk_X509_value(chain, i), urls, 4);
		for (size_t u = 0; u < nu && nseen < CRL_MAX_PER_CHAIN; u++) {
			bool dup = false;
			for (size_t k = 0; k < nseen; k++)
				dup = dup || strcmp(seen[k], urls[u]) == 0;
			if (dup)
				continue;
			memcpy(seen[nseen++], urls[u], strlen(urls[u]) + 1); /* both [512], NUL within */
			X509_CRL *crl = get_crl(t, urls[u], sk_X509_value(chain, i + 1));
			if (crl && !sk_X509_CRL_push(crls, crl))
				X509_CRL_free(crl);
		}
	}
	hie_err_t err = HIE_OK;
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, st, cert, work)) {
		err = HIE_ENOMEM;
		goto out;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	X509_STORE_CTX_set_depth(ctx, CHAIN_MAX + 2);
	X509_STORE_CTX_set0_crls(ctx, crls);
	X509_STORE_CTX_set_verify_cb(ctx, crl_cb);
	if (X509_verify_cert(ctx) != 1) {
		verify_reason(X509_STORE_CTX_get_error(ctx), reason, rlen);
		err = HIE_EDENIED;
	}
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	ERR_clear_error();
	return err;
}

hie_err_t hisp_trust_check(struct hisp_trust *t, X509 *cert, STACK_OF(X509) *untrusted, const char *local_domain,
			   enum hisp_direction dir, const char *address, enum hisp_usage use, char *reason,
			   size_t rlen)
{
	char addr[256], dom[256];
	if (rlen)
		reason[0] = '\0';
	if (!t || !cert || hisp_addr_normalize(address, true, addr, sizeof addr) ||
	    hisp_addr_normalize(local_domain, true, dom, sizeof dom)) {
		snprintf(reason, rlen, "bad arguments");
		return HIE_EINVAL;
	}
	if (!leaf_rules(t, cert, addr, use, reason, rlen))
		return HIE_EDENIED;

	X509_STORE *st = NULL;
	int nanchors = 0;
	hie_err_t err = get_store(t, dom, dir, &st, &nanchors);
	if (err) {
		snprintf(reason, rlen, "anchors unreadable");
		return err == HIE_ENOMEM ? err : HIE_EDB;
	}
	STACK_OF(X509) *work = sk_X509_new_null(), *chain = NULL;
	if (!work || !push_copies(work, untrusted)) {
		err = HIE_ENOMEM;
		goto out;
	}
	if (nanchors == 0) {
		snprintf(reason, rlen, "untrusted: no anchor");
		err = HIE_EDENIED;
		goto out;
	}
	err = build_chain(t, st, cert, work, &chain, reason, rlen);
	if (err)
		goto out;
	int n = sk_X509_num(chain);
	if (n > CHAIN_MAX) {
		snprintf(reason, rlen, "chain longer than %d", CHAIN_MAX);
		err = HIE_EDENIED;
		goto out;
	}
	for (int i = 0; i + 1 < n && !t->o.allow_sha1_certs; i++) { /* every signature below the anchor's own */
		const char *weak = weak_digest(sk_X509_value(chain, i));
		if (weak) {
			snprintf(reason, rlen, "%s signature%s", weak, i ? " in chain" : "");
			err = HIE_EDENIED;
			goto out;
		}
	}
	err = check_revocation(t, st, cert, work, chain, reason, rlen);
out:
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(work, X509_free);
	X509_STORE_free(st);
	return err; /* the caller logs a refusal with its own ids (the reason may name the address) */
}
