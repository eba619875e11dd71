/*
 * hisp_discovery.c — certificate discovery for a Direct recipient (Certificate Discovery for Direct IG,
 * DCDT D1–D18): local store, cache, DNS CERT at the address then the domain, then LDAP servers from SRV
 * records; the stop rule; the hisp_cert_cache; `hienode cert discover`.
 *
 * Entry points: hisp_discovery_open/close, hisp_discover, hisp_cli_cert_discover. DNS is in hisp_dns.c.
 *
 * Sources and their outcome:
 *   local  partner certificates imported by the operator. Only usable ones count; when none is usable the
 *          search goes on (an expired pin must not hide the partner's published certificate).
 *   cache  hisp_cert_cache row for the address: the candidate set of the source that decided last time, checked
 *          again now; an empty set is a cached "nothing found"; a set with nothing usable any more is dropped
 *          and the search done again.
 *   dns    CERT at the address owner, then at the domain owner;
 *   ldap   servers in SRV order: mail=<address> first, then mail=<domain> (DCDT's domain-bound entries), on the
 *          first server that is up and holds an entry.
 * The first of dns-address, dns-domain, ldap that yields certificates decides: its usable ones (address-bound
 * preferred) are the result, and when none is usable discovery stops with HIE_EDENIED (DCDT D5–D8).
 * HIE_ETIMEOUT / HIE_EIO when DNS did not answer or every LDAP server that might hold the certificate was
 * unreachable and nothing was found elsewhere (not cached: the caller retries). HIE_EDB when the trust anchors
 * or the cache could not be read.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <ldap.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "core/core_buf.h"
#include "core/core_config.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "hisp/hisp.h"
#include "hisp/hisp_discovery_int.h"
#include "hisp/hisp_util.h"

#define MAX_LDAP_ENTRIES 20
#define MAX_NAMING_CONTEXTS 8

hie_err_t hisp_discovery_open(struct hie_db_pool *pool, struct hisp_keys *keys, struct hisp_trust *trust,
			      const struct hisp_discovery_opts *o, struct hisp_discovery **out)
{
	*out = NULL;
	if (!pool || !trust || !o)
		return HIE_EINVAL;
	struct hisp_discovery *d = calloc(1, sizeof *d);
	if (!d)
		return HIE_ENOMEM;
	d->pool = pool;
	d->keys = keys;
	d->trust = trust;
	d->dns_timeout_ms = o->dns_timeout_ms > 0 ? o->dns_timeout_ms : 5000;
	d->ldap_timeout_ms = o->ldap_timeout_ms > 0 ? o->ldap_timeout_ms : 5000;
	d->fetch_timeout_ms = o->fetch_timeout_ms > 0 ? o->fetch_timeout_ms : 10000;
	d->cache_ttl_ms = o->cache_ttl_ms > 0 ? o->cache_ttl_ms : 0;
	if (o->dns_server && o->dns_server[0]) {
		if (hie_cfg_split_addr(o->dns_server, d->dns_host, sizeof d->dns_host, &d->dns_port) != HIE_OK ||
		    d->dns_port <= 0 || d->dns_port > 65535) {
			hie_log(HIE_LOG_ERR, "event=hisp.discovery.config error=\"dns_server is not host:port\"");
			free(d);
			return HIE_ECONFIG;
		}
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	*out = d;
	return HIE_OK;
}

void hisp_discovery_close(struct hisp_discovery *d)
{
	free(d);
}

/* Trace ---------------------------------------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static void step(struct hisp_discovery_trace *t, const char *source,
							const char *where, const char *fmt, ...)
{
	if (!t || t->n >= sizeof t->steps / sizeof t->steps[0])
		return;
	struct hisp_discovery_step *s = &t->steps[t->n++];
	snprintf(s->source, sizeof s->source, "%s", source);
	snprintf(s->where, sizeof s->where, "%s", where);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->outcome, sizeof s->outcome, fmt, ap);
	va_end(ap);
}

/* Selection ------------------------------------------------------------------------------------------------ */

static bool has_email(X509 *x, const char *address)
{
	bool found = false;
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && !found; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_EMAIL)
			continue;
		const ASN1_IA5STRING *s = g->d.rfc822Name;
		size_t n = strlen(address);
		found = (size_t)s->length == n && strncasecmp((const char *)s->data, address, n) == 0;
	}
	GENERAL_NAMES_free(gens);
	return found;
}

/*
 * The usable certificates among cands for address: *usable gets new references (address-bound ones only when
 * there is one; else the domain-bound ones). why: the first refusal. HIE_EDB passes through.
 */
static hie_err_t select_usable(struct hisp_discovery *d, STACK_OF(X509) *cands, const char *local_domain,
			       const char *address, STACK_OF(X509) **usable, char *why, size_t whylen)
{
	STACK_OF(X509) *ok = sk_X509_new_null();
	if (!ok)
		return HIE_ENOMEM;
	why[0] = '\0';
	bool any_address = false;
	for (int i = 0; i < sk_X509_num(cands); i++) {
		X509 *x = sk_X509_value(cands, i);
		char r[160] = "";
		hie_err_t err = hisp_trust_check(d->trust, x, NULL, local_domain, HISP_OUTGOING, address,
						 HISP_USE_ENCRYPT, r, sizeof r);
		if (err == HIE_OK) {
			if (!sk_X509_push(ok, x)) {
				sk_X509_pop_free(ok, X509_free);
				return HIE_ENOMEM;
			}
			X509_up_ref(x);
			any_address = any_address || has_email(x, address);
		} else if (err == HIE_EDENIED || err == HIE_EPARSE) {
			if (!why[0])
				snprintf(why, whylen, "%s", r[0] ? r : hie_strerror(err));
		} else {
			sk_X509_pop_free(ok, X509_free);
			return err;
		}
	}
	if (any_address) { /* address-bound preferred over domain-bound within one source */
		for (int i = sk_X509_num(ok) - 1; i >= 0; i--) {
			X509 *x = sk_X509_value(ok, i);
			if (!has_email(x, address)) {
				(void)sk_X509_delete(ok, i);
				X509_free(x);
			}
		}
	}
	*usable = ok;
	return HIE_OK;
}

/* Cache ---------------------------------------------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses "hex,hex,…" into certificates. */
static STACK_OF(X509) *certs_from_hex(const char *s)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	unsigned char *der = malloc(HISP_DISC_MAX_DER);
	if (!sk || !der) {
		sk_X509_free(sk);
		free(der);
		return NULL;
	}
	const char *p = s;
	while (*p) {
		size_t n = 0;
		while (p[0] && p[0] != ',') {
			int hi = hexval(p[0]), lo = p[1] ? hexval(p[1]) : -1;
			if (hi < 0 || lo < 0 || n >= HISP_DISC_MAX_DER)
				goto bad;
			der[n++] = (unsigned char)(hi << 4 | lo);
			p += 2;
		}
		X509 *x = hisp_disc_parse_cert(der, n);
		if (x && !sk_X509_push(sk, x))
			X509_free(x);
		if (*p == ',')
			p++;
	}
	free(der);
	return sk;
bad:
	free(der);
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

static hie_err_t certs_to_hex(STACK_OF(X509) *sk, struct hie_buf *b)
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < sk_X509_num(sk); i++) {
		unsigned char *der = NULL;
		int n = i2d_X509(sk_X509_value(sk, i), &der);
		if (n <= 0)
			return HIE_ENOMEM;
		hie_err_t err = i ? hie_buf_add(b, ",", 1) : HIE_OK;
		for (int k = 0; !err && k < n; k++) {
			char two[2] = {hx[der[k] >> 4], hx[der[k] & 15]};
			err = hie_buf_add(b, two, 2);
		}
		OPENSSL_free(der);
		if (err)
			return err;
	}
	return HIE_OK;
}

/* *found: a live row; *certs its certificates (empty = cached "nothing found"); source its source. */
static hie_err_t cache_get(struct hisp_discovery *d, const char *address, bool *found, STACK_OF(X509) **certs,
			   char *source, size_t slen)
{
	PGconn *c;
	PGresult *r = NULL;
	*found = false;
	*certs = NULL;
	hie_err_t err = hie_db_acquire(d->pool, -1, &c);
	if (err)
		return err;
	const char *p[] = {address};
	err = hie_db_exec(c,
			  "SELECT source, array_to_string(ARRAY(SELECT encode(x, 'hex') FROM unnest(ders) AS x), ',')"
			  " FROM hisp_cert_cache WHERE subject = $1 AND expires_at > now()",
			  1, p, &r);
	hie_db_release(d->pool, c, err == HIE_EDB);
	if (err)
		return err;
	if (PQntuples(r) == 1) {
		snprintf(source, slen, "%s", PQgetvalue(r, 0, 0));
		*certs = certs_from_hex(PQgetvalue(r, 0, 1));
		*found = *certs != NULL;
	}
	PQclear(r);
	return HIE_OK;
}

static void cache_put(struct hisp_discovery *d, const char *address, STACK_OF(X509) *certs, const char *source,
		      long long ttl_ms)
{
	if (d->cache_ttl_ms <= 0)
		return;
	if (ttl_ms < 0 || ttl_ms > d->cache_ttl_ms)
		ttl_ms = d->cache_ttl_ms;
	if (ttl_ms == 0)
		return;
	struct hie_buf hex;
	char ms[32];
	PGconn *c;
	hie_buf_init(&hex, (size_t)HISP_DISC_MAX_CERTS * 2 * HISP_DISC_MAX_DER + HISP_DISC_MAX_CERTS);
	snprintf(ms, sizeof ms, "%lld", ttl_ms);
	hie_err_t err = certs ? certs_to_hex(certs, &hex) : HIE_OK;
	if (!err)
		err = hie_db_acquire(d->pool, -1, &c);
	if (!err) {
		const char *p[] = {address, hie_buf_str(&hex), source, ms};
		err = hie_db_exec(c,
				  "INSERT INTO hisp_cert_cache (subject, ders, source, expires_at) VALUES ($1,"
				  " coalesce((SELECT array_agg(decode(x, 'hex')) FROM unnest(string_to_array($2, ',')) AS x),"
				  " '{}'::bytea[]), $3, now() + $4::bigint * interval '1 millisecond')"
				  " ON CONFLICT (subject) DO UPDATE SET ders = excluded.ders, source = excluded.source,"
				  " expires_at = excluded.expires_at",
				  4, p, NULL);
		hie_db_release(d->pool, c, err == HIE_EDB);
	}
	if (err)
		hie_log(HIE_LOG_WARN, "event=hisp.discovery.cache error=%s", hie_errname(err));
	hie_buf_free(&hex);
}

static void cache_drop(struct hisp_discovery *d, const char *address)
{
	PGconn *c;
	if (hie_db_acquire(d->pool, -1, &c))
		return;
	const char *p[] = {address};
	hie_err_t err = hie_db_exec(c, "DELETE FROM hisp_cert_cache WHERE subject = $1", 1, p, NULL);
	hie_db_release(d->pool, c, err == HIE_EDB);
}

/* LDAP ----------------------------------------------------------------------------------------------------- */

static int remaining_ms(int64_t deadline)
{
	int64_t left = deadline - hie_mono_ms();
	return left > 0 ? (int)left : 0;
}

static void set_ldap_timeouts(LDAP *ld, int ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, tv);
}

static hie_err_t ldap_err(int rc)
{
	if (rc == LDAP_TIMEOUT || rc == LDAP_TIMELIMIT_EXCEEDED)
		return HIE_ETIMEOUT;
	return HIE_EIO;
}

/* Certificates in the userCertificate values of the entries of res (attribute names with options included). */
static void collect_certs(LDAP *ld, LDAPMessage *res, STACK_OF(X509) *out, int *entries)
{
	for (LDAPMessage *e = ldap_first_entry(ld, res); e; e = ldap_next_entry(ld, e)) {
		BerElement *ber = NULL;
		(*entries)++;
		for (char *a = ldap_first_attribute(ld, e, &ber); a; a = ldap_next_attribute(ld, e, ber)) {
			if (strncasecmp(a, "userCertificate", 15) == 0 && (a[15] == '\0' || a[15] == ';')) {
				struct berval **v = ldap_get_values_len(ld, e, a);
				for (int i = 0; v && v[i]; i++) {
					if (sk_X509_num(out) >= HISP_DISC_MAX_CERTS)
						break;
					X509 *x = hisp_disc_parse_cert((const unsigned char *)v[i]->bv_val,
								       v[i]->bv_len);
					if (x && !sk_X509_push(out, x))
						X509_free(x);
				}
				ldap_value_free_len(v);
			}
			ldap_memfree(a);
		}
		ber_free(ber, 0);
	}
}

static hie_err_t ldap_search_mail(LDAP *ld, char **bases, int nbases, const char *mail, int64_t deadline,
				  STACK_OF(X509) *out, int *entries)
{
	struct berval in = {.bv_len = strlen(mail), .bv_val = (char *)mail}, esc = {0};
	if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
		return HIE_ENOMEM;
	char filter[600];
	int w = snprintf(filter, sizeof filter, "(mail=%s)", esc.bv_val);
	ber_memfree(esc.bv_val);
	if (w < 0 || (size_t)w >= sizeof filter)
		return HIE_ETOOBIG;
	char *attrs[] = {"userCertificate;binary", "userCertificate", NULL};
	for (int i = 0; i < nbases; i++) {
		struct timeval tv;
		LDAPMessage *res = NULL;
		int ms = remaining_ms(deadline);
		if (ms <= 0)
			return HIE_ETIMEOUT;
		set_ldap_timeouts(ld, ms, &tv);
		int rc = ldap_search_ext_s(ld, bases[i], LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv,
					   MAX_LDAP_ENTRIES, &res);
		if (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED)
			collect_certs(ld, res, out, entries);
		ldap_msgfree(res);
		if (rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR)
			return ldap_err(rc);
		/* other codes (noSuchObject, insufficientAccess under one base): that base holds nothing for us */
	}
	return HIE_OK;
}

/* naming contexts of the root DSE; *n of at most max (caller frees each with ldap_memfree via ber_memvfree) */
static hie_err_t naming_contexts(LDAP *ld, int64_t deadline, char **out, int max, int *n)
{
	struct timeval tv;
	LDAPMessage *res = NULL;
	char *attrs[] = {"namingContexts", NULL};
	*n = 0;
	set_ldap_timeouts(ld, remaining_ms(deadline), &tv);
	int rc = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1, &res);
	if (rc != LDAP_SUCCESS) {
		ldap_msgfree(res);
		return ldap_err(rc);
	}
	LDAPMessage *e = ldap_first_entry(ld, res);
	struct berval **v = e ? ldap_get_values_len(ld, e, "namingContexts") : NULL;
	for (int i = 0; v && v[i] && *n < max; i++) {
		char *s = malloc(v[i]->bv_len + 1);
		if (!s)
			break;
		memcpy(s, v[i]->bv_val, v[i]->bv_len);
		s[v[i]->bv_len] = '\0';
		out[(*n)++] = s;
	}
	ldap_value_free_len(v);
	ldap_msgfree(res);
	return HIE_OK;
}

/*
 * One LDAP server: anonymous bind, naming contexts, mail=<address> then mail=<domain>. *out gets the
 * certificates of the first search that found entries (*bound "address" or "domain"), empty when the server
 * holds no entry. HIE_EIO / HIE_ETIMEOUT when the server is down or too slow.
 */
static hie_err_t ldap_server(struct hisp_discovery *d, const char *host, int port, const char *address,
			     STACK_OF(X509) **out, const char **bound)
{
	LDAP *ld = NULL;
	char url[300], *bases[MAX_NAMING_CONTEXTS];
	int nbases = 0, entries = 0;
	int64_t deadline = hie_mono_ms() + d->ldap_timeout_ms;
	*out = NULL;
	*bound = NULL;
	snprintf(url, sizeof url, strchr(host, ':') ? "ldap://[%s]:%d" : "ldap://%s:%d", host, port);
	if (ldap_initialize(&ld, url) != LDAP_SUCCESS)
		return HIE_EIO;
	int v3 = LDAP_VERSION3;
	struct timeval tv;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	set_ldap_timeouts(ld, d->ldap_timeout_ms, &tv);
	struct berval cred = {0};
	STACK_OF(X509) *sk = sk_X509_new_null();
	hie_err_t err = sk ? HIE_OK : HIE_ENOMEM;
	int rc = err ? LDAP_SUCCESS : ldap_sasl_bind_s(ld, NULL, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (!err && rc != LDAP_SUCCESS)
		err = ldap_err(rc);
	if (!err)
		err = naming_contexts(ld, deadline, bases, MAX_NAMING_CONTEXTS, &nbases);
	if (!err) {
		err = ldap_search_mail(ld, bases, nbases, address, deadline, sk, &entries);
		if (!err && entries > 0)
			*bound = "address";
	}
	if (!err && entries == 0) {
		err = ldap_search_mail(ld, bases, nbases, hisp_addr_domain(address), deadline, sk, &entries);
		if (!err && entries > 0)
			*bound = "domain";
	}
	for (int i = 0; i < nbases; i++)
		free(bases[i]);
	ldap_unbind_ext_s(ld, NULL, NULL);
	if (err) {
		sk_X509_pop_free(sk, X509_free);
		return err;
	}
	*out = sk;
	return HIE_OK;
}

/* Discovery ------------------------------------------------------------------------------------------------ */

struct run {
	struct hisp_discovery *d;
	const char *local_domain, *address;
	STACK_OF(X509) **out;
	char *reason;
	size_t rlen;
	struct hisp_discovery_trace *trace;
};

/*
 * A source yielded cands: decide. HIE_OK (usable ones in *r->out), HIE_EDENIED (stop rule), or an error.
 */
static hie_err_t decide(struct run *r, const char *source, const char *where, STACK_OF(X509) *cands,
			const char *extra)
{
	STACK_OF(X509) *ok = NULL;
	char why[160];
	hie_err_t err = select_usable(r->d, cands, r->local_domain, r->address, &ok, why, sizeof why);
	if (err)
		return err;
	int n = sk_X509_num(cands), k = sk_X509_num(ok);
	if (k > 0) {
		step(r->trace, source, where, "%d certificate%s, %d usable%s", n, n == 1 ? "" : "s", k, extra);
		*r->out = ok;
		hisp_reason(r->reason, r->rlen, "%s %s", source, where);
		return HIE_OK;
	}
	sk_X509_free(ok);
	step(r->trace, source, where, "%d certificate%s, none usable: %s%s", n, n == 1 ? "" : "s", why, extra);
	hisp_reason(r->reason, r->rlen, "%s %s: %s", source, where, why);
	return HIE_EDENIED;
}

static hie_err_t from_local(struct run *r, bool *done)
{
	STACK_OF(X509) *cands = NULL, *ok = NULL;
	PGconn *c;
	char why[160];
	*done = false;
	if (!r->d->keys)
		return HIE_OK;
	hie_err_t err = hie_db_acquire(r->d->pool, -1, &c);
	if (err)
		return err;
	err = hisp_keys_partner_certs(r->d->keys, c, r->address, &cands);
	hie_db_release(r->d->pool, c, err == HIE_EDB);
	if (err == HIE_ENOTFOUND)
		return HIE_OK;
	if (err)
		return err;
	if (sk_X509_num(cands) == 0) {
		sk_X509_pop_free(cands, X509_free);
		step(r->trace, "local", "store", "none");
		return HIE_OK;
	}
	err = select_usable(r->d, cands, r->local_domain, r->address, &ok, why, sizeof why);
	if (!err && sk_X509_num(ok) > 0) {
		step(r->trace, "local", "store", "%d certificates, %d usable", sk_X509_num(cands), sk_X509_num(ok));
		hisp_reason(r->reason, r->rlen, "local store");
		*r->out = ok;
		ok = NULL;
		*done = true;
	} else if (!err) {
		step(r->trace, "local", "store", "%d certificates, none usable: %s; searching on", sk_X509_num(cands),
		     why);
	}
	sk_X509_pop_free(ok, X509_free);
	sk_X509_pop_free(cands, X509_free);
	return err;
}

/* HIE_OK with *done when the cache decided (found: HIE_OK; cached nothing: HIE_ENOTFOUND through *result). */
static hie_err_t from_cache(struct run *r, bool *done, hie_err_t *result)
{
	STACK_OF(X509) *cands = NULL;
	char source[16] = "";
	bool found;
	*done = false;
	if (r->d->cache_ttl_ms <= 0)
		return HIE_OK;
	hie_err_t err = cache_get(r->d, r->address, &found, &cands, source, sizeof source);
	if (err || !found)
		return err;
	if (sk_X509_num(cands) == 0) {
		sk_X509_free(cands);
		step(r->trace, "cache", source, "nothing found earlier");
		hisp_reason(r->reason, r->rlen, "no certificate found (cached)");
		*done = true;
		*result = HIE_ENOTFOUND;
		return HIE_OK;
	}
	STACK_OF(X509) *ok = NULL;
	char why[160];
	err = select_usable(r->d, cands, r->local_domain, r->address, &ok, why, sizeof why);
	if (!err && sk_X509_num(ok) > 0) {
		step(r->trace, "cache", source, "%d certificates, %d usable", sk_X509_num(cands), sk_X509_num(ok));
		hisp_reason(r->reason, r->rlen, "cache (%s)", source);
		*r->out = ok;
		ok = NULL;
		*done = true;
		*result = HIE_OK;
	} else if (!err) {
		step(r->trace, "cache", source, "none usable any more (%s); searching again", why);
		cache_drop(r->d, r->address);
	}
	sk_X509_pop_free(ok, X509_free);
	sk_X509_pop_free(cands, X509_free);
	return err;
}

/* CERT at owner. *done when it decided (result in the return value). */
static hie_err_t from_dns(struct run *r, const char *owner, bool *done)
{
	STACK_OF(X509) *cands = NULL;
	struct hisp_dns_cert_info info;
	long long ttl = -1;
	*done = false;
	hie_err_t err = hisp_dns_cert_ex(r->d, owner, &cands, &ttl, &info);
	if (err) {
		step(r->trace, "dns", owner, "%s", err == HIE_ETIMEOUT ? "timeout" : hie_strerror(err));
		hisp_reason(r->reason, r->rlen, "dns %s: %s", owner, err == HIE_ETIMEOUT ? "timeout" : hie_strerror(err));
		*done = true;
		return err;
	}
	char extra[64] = "";
	if (info.tcp || info.unusable)
		snprintf(extra, sizeof extra, "%s%s", info.tcp ? " (tcp)" : "",
			 info.unusable ? " (some records unusable)" : "");
	if (sk_X509_num(cands) == 0) {
		sk_X509_free(cands);
		if (info.fetch_failed) { /* an IPKIX URL could not be fetched: we cannot say "none" */
			step(r->trace, "dns", owner, "%d record(s), certificate URL unreachable", info.records);
			hisp_reason(r->reason, r->rlen, "dns %s: certificate URL unreachable", owner);
			*done = true;
			return HIE_EIO;
		}
		step(r->trace, "dns", owner, "%s%s", info.records ? "no usable record" : info.nxdomain ? "no such name" : "none",
		     extra);
		return HIE_OK;
	}
	*done = true;
	err = decide(r, "dns", owner, cands, extra);
	if (err == HIE_OK)
		cache_put(r->d, r->address, cands, "dns", ttl);
	sk_X509_pop_free(cands, X509_free);
	return err;
}

/* LDAP servers of the domain. *done when a server decided; *unreachable counts the servers that were down. */
static hie_err_t from_ldap(struct run *r, bool *done, int *unreachable)
{
	struct hisp_srv srv[HISP_DISC_MAX_SRV];
	size_t n = 0;
	char name[300];
	const char *domain = hisp_addr_domain(r->address);
	*done = false;
	*unreachable = 0;
	snprintf(name, sizeof name, "_ldap._tcp.%s", domain);
	hie_err_t err = hisp_dns_srv(r->d, name, srv, HISP_DISC_MAX_SRV, &n);
	if (err) {
		step(r->trace, "dns", name, "%s", err == HIE_ETIMEOUT ? "timeout" : hie_strerror(err));
		hisp_reason(r->reason, r->rlen, "dns %s: %s", name, err == HIE_ETIMEOUT ? "timeout" : hie_strerror(err));
		*done = true;
		return err;
	}
	step(r->trace, "dns", name, n ? "%zu SRV record%s" : "no SRV record", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		char ip[64], where[280];
		STACK_OF(X509) *cands = NULL;
		const char *bound = NULL;
		/* %.200s: a DNS name is at most 253 bytes; the trace line is for people, cut is fine. */
		snprintf(where, sizeof where, "ldap://%.200s:%d (priority %d, weight %d)", srv[i].target, srv[i].port,
			 srv[i].prio, srv[i].weight);
		err = hisp_dns_addr(r->d, srv[i].target, ip, sizeof ip);
		if (err == HIE_ENOTFOUND) {
			step(r->trace, "ldap", where, "host has no address");
			continue;
		}
		if (err) {
			step(r->trace, "ldap", where, "address lookup: %s", hie_strerror(err));
			(*unreachable)++;
			continue;
		}
		err = ldap_server(r->d, ip, srv[i].port, r->address, &cands, &bound);
		if (err) {
			step(r->trace, "ldap", where, "%s", err == HIE_ETIMEOUT ? "timeout" : "unavailable");
			(*unreachable)++;
			continue;
		}
		if (!bound) {
			step(r->trace, "ldap", where, "no entry");
			sk_X509_free(cands);
			continue;
		}
		if (sk_X509_num(cands) == 0) {
			step(r->trace, "ldap", where, "%s entry without a usable certificate", bound);
			sk_X509_free(cands);
			continue;
		}
		*done = true;
		err = decide(r, "ldap", where, cands, strcmp(bound, "domain") == 0 ? " (domain entry)" : "");
		if (err == HIE_OK)
			cache_put(r->d, r->address, cands, "ldap", -1);
		sk_X509_pop_free(cands, X509_free);
		return err;
	}
	return HIE_OK;
}

hie_err_t hisp_discover(struct hisp_discovery *d, const char *local_domain, const char *address, STACK_OF(X509) **out,
			char *reason, size_t rlen, struct hisp_discovery_trace *trace)
{
	char addr[256], ldom[256], owner[300];
	bool done = false;
	hie_err_t result = HIE_OK;
	*out = NULL;
	if (trace)
		trace->n = 0;
	hisp_reason(reason, rlen, "%s", "");
	if (hisp_addr_normalize(address, false, addr, sizeof addr) != HIE_OK ||
	    hisp_addr_normalize(local_domain, true, ldom, sizeof ldom) != HIE_OK) {
		hisp_reason(reason, rlen, "not an address");
		return HIE_EINVAL;
	}
	struct run r = {.d = d, .local_domain = ldom, .address = addr, .out = out, .reason = reason, .rlen = rlen,
			.trace = trace};

	hie_err_t err = from_local(&r, &done);
	if (err || done)
		goto out;
	err = from_cache(&r, &done, &result);
	if (err)
		goto out;
	if (done) {
		err = result;
		goto out;
	}
	err = hisp_dns_owner(addr, owner, sizeof owner);
	if (!err)
		err = from_dns(&r, owner, &done);
	if (err || done)
		goto out;
	err = from_dns(&r, hisp_addr_domain(addr), &done);
	if (err || done)
		goto out;
	int unreachable = 0;
	err = from_ldap(&r, &done, &unreachable);
	if (err || done)
		goto out;
	if (unreachable > 0) { /* a server that might hold it did not answer: not a verdict, retry later */
		hisp_reason(reason, rlen, "no certificate found; %d LDAP server%s unavailable", unreachable,
			   unreachable == 1 ? "" : "s");
		err = HIE_EIO;
		goto out;
	}
	hisp_reason(reason, rlen, "no certificate in DNS or LDAP");
	cache_put(d, addr, NULL, "none", -1);
	err = HIE_ENOTFOUND;
out:
	if (err && *out) {
		sk_X509_pop_free(*out, X509_free);
		*out = NULL;
	}
	hie_log(err ? HIE_LOG_NOTICE : HIE_LOG_INFO, "event=hisp.discovery domain=%s result=%s steps=%zu",
		hisp_addr_domain(addr), hie_errname(err), trace ? trace->n : (size_t)0);
	return err;
}

/* `hienode cert discover ADDR [--domain LOCAL_DOMAIN] [--no-cache]` ------------------------------------------- */

static void print_cert(FILE *f, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char subject[512] = "", fp[2 * EVP_MAX_MD_SIZE + 1] = "", after[64] = "";
	BIO *b = BIO_new(BIO_s_mem());
	if (b) {
		X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
		int n = BIO_read(b, subject, sizeof subject - 1);
		subject[n > 0 ? n : 0] = '\0';
		(void)BIO_reset(b);
		ASN1_TIME_print(b, X509_get0_notAfter(x));
		n = BIO_read(b, after, sizeof after - 1);
		after[n > 0 ? n : 0] = '\0';
		BIO_free(b);
	}
	if (X509_digest(x, EVP_sha256(), md, &mdlen))
		for (unsigned i = 0; i < mdlen; i++)
			snprintf(fp + 2 * i, 3, "%02x", md[i]);
	fprintf(f, "certificate subject=\"%s\" sha256=%s not_after=\"%s\"\n", subject, fp, after);
}

static int default_domain(const struct hisp_cli *c, char *out, size_t outlen)
{
	PGconn *conn;
	PGresult *r = NULL;
	if (hie_db_acquire(c->pool, -1, &conn))
		return -1;
	hie_err_t err = hie_db_exec(conn, "SELECT name FROM hisp_domains ORDER BY name LIMIT 2", 0, NULL, &r);
	hie_db_release(c->pool, conn, err == HIE_EDB);
	if (err)
		return -1;
	int n = PQntuples(r);
	if (n == 1)
		snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

int hisp_cli_cert_discover(const struct hisp_cli *c, int argc, char **argv)
{
	const char *addr = NULL, *dom = NULL;
	bool no_cache = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			dom = argv[++i];
		else if (strcmp(argv[i], "--no-cache") == 0)
			no_cache = true;
		else if (argv[i][0] != '-' && !addr)
			addr = argv[i];
		else {
			fprintf(c->err, "cert discover: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	char norm[256], ldom[256];
	if (!addr || hisp_addr_normalize(addr, false, norm, sizeof norm) != HIE_OK) {
		fprintf(c->err, "usage: cert discover ADDRESS [--domain LOCAL_DOMAIN] [--no-cache]\n");
		return 2;
	}
	if (dom) {
		if (hisp_addr_normalize(dom, true, ldom, sizeof ldom) != HIE_OK) {
			fprintf(c->err, "cert discover: '%s' is not a domain\n", dom);
			return 2;
		}
	} else {
		int n = default_domain(c, ldom, sizeof ldom);
		if (n < 0) {
			fprintf(c->err, "cert discover: cannot read the local domains\n");
			return 1;
		}
		if (n != 1) {
			fprintf(c->err, "cert discover: --domain is required (%s local domains)\n", n ? "several" : "no");
			return 2;
		}
	}
	struct hisp_keys *keys = NULL;
	struct hisp_trust *trust = NULL;
	struct hisp_discovery *d = NULL;
	STACK_OF(X509) *certs = NULL;
	struct hisp_discovery_trace trace = {.n = 0};
	char reason[300] = "";
	int rc = 1;
	struct hisp_trust_opts to = {
		.min_rsa_bits = (int)hie_cfg_int(c->cfg, "direct", "min_rsa_bits"),
		.allow_sha1_certs = hie_cfg_bool(c->cfg, "direct", "allow_sha1_certs"),
		.fetch_timeout_ms = (int)hie_cfg_int(c->cfg, "direct", "fetch_timeout"),
		.fetch_max = 10u * 1024 * 1024,
	};
	struct hisp_discovery_opts dopt = {
		.dns_server = hie_cfg_str(c->cfg, "direct", "dns_server"),
		.dns_timeout_ms = (int)hie_cfg_int(c->cfg, "direct", "dns_timeout"),
		.ldap_timeout_ms = (int)hie_cfg_int(c->cfg, "direct", "ldap_timeout"),
		.fetch_timeout_ms = (int)hie_cfg_int(c->cfg, "direct", "fetch_timeout"),
		.cache_ttl_ms = no_cache ? 0 : hie_cfg_int(c->cfg, "direct", "cert_cache_ttl"),
	};
	hie_err_t err = hisp_keys_open(c->pool, c->state_dir, &keys);
	if (!err)
		err = hisp_trust_open(c->pool, &to, &trust);
	if (!err)
		err = hisp_discovery_open(c->pool, keys, trust, &dopt, &d);
	if (err) {
		fprintf(c->err, "cert discover: %s\n", hie_strerror(err));
		goto out;
	}
	err = hisp_discover(d, ldom, norm, &certs, reason, sizeof reason, &trace);
	for (size_t i = 0; i < trace.n; i++)
		fprintf(c->out, "step %-5s %s: %s\n", trace.steps[i].source, trace.steps[i].where,
			trace.steps[i].outcome);
	if (err) {
		fprintf(c->out, "result %s: %s\n", hie_errname(err), reason);
		goto out;
	}
	fprintf(c->out, "result found: %s\n", reason);
	for (int i = 0; i < sk_X509_num(certs); i++)
		print_cert(c->out, sk_X509_value(certs, i));
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	hisp_discovery_close(d);
	hisp_trust_close(trust);
	hisp_keys_close(keys);
	return rc;
}
