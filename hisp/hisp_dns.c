/*
 * hisp_dns.c — the DNS side of certificate discovery and SMTP routing, with ldns: CERT records (RFC 4398:
 * PKIX certificates and IPKIX URLs fetched with libcurl), SRV records in RFC 2782 order, A/AAAA, MX.
 *
 * Entry points: hisp_dns_cert, hisp_dns_mx (public, hisp_discovery.h); hisp_dns_cert_ex, hisp_dns_srv,
 * hisp_srv_order, hisp_dns_addr, hisp_dns_owner, hisp_disc_parse_cert (hisp_discovery_int.h).
 *
 * Every query goes over UDP without EDNS (so answers over 512 bytes come back truncated) to [direct]
 * dns_server or the resolv.conf servers, with [direct] dns_timeout as its deadline; a truncated answer is asked
 * again over TCP (Applicability Statement §5.4, DCDT D14). ldns's own fallback is off so that this happens in
 * one visible place. Errors: HIE_ETIMEOUT (no answer), HIE_EIO (SERVFAIL, REFUSED, other failures),
 * HIE_EINVAL (a name that is not one), HIE_ENOMEM.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <ldns/ldns.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "core/core_buf.h"
#include "core/core_log.h"
#include "hisp/hisp_discovery_int.h"

#define CERT_TYPE_PKIX 1
#define CERT_TYPE_IPKIX 4
#define MAX_URL 1024

static hie_err_t new_resolver(struct hisp_discovery *d, ldns_resolver **out)
{
	ldns_resolver *r = NULL;
	*out = NULL;
	if (d->dns_host[0]) {
		r = ldns_resolver_new();
		if (!r)
			return HIE_ENOMEM;
		struct in6_addr a6;
		ldns_rdf *ns = strchr(d->dns_host, ':') && inet_pton(AF_INET6, d->dns_host, &a6) == 1
				       ? ldns_rdf_new_frm_str(LDNS_RDF_TYPE_AAAA, d->dns_host)
				       : ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, d->dns_host);
		if (!ns || ldns_resolver_push_nameserver(r, ns) != LDNS_STATUS_OK) {
			ldns_rdf_deep_free(ns);
			ldns_resolver_deep_free(r);
			return HIE_EINVAL;
		}
		ldns_rdf_deep_free(ns);
		ldns_resolver_set_port(r, (uint16_t)d->dns_port);
	} else if (ldns_resolver_new_frm_file(&r, NULL) != LDNS_STATUS_OK) {
		hie_log(HIE_LOG_ERR, "event=hisp.dns.resolver error=\"cannot read /etc/resolv.conf\"");
		return HIE_ECONFIG;
	}
	struct timeval tv = {.tv_sec = d->dns_timeout_ms / 1000, .tv_usec = (d->dns_timeout_ms % 1000) * 1000};
	ldns_resolver_set_timeout(r, tv);
	ldns_resolver_set_retry(r, 1);
	ldns_resolver_set_retrans(r, 1);
	ldns_resolver_set_recursive(r, true);
	ldns_resolver_set_dnsrch(r, false);
	ldns_resolver_set_defnames(r, false);
	ldns_resolver_set_fallback(r, false);
	ldns_resolver_set_usevc(r, false);
	ldns_resolver_set_edns_udp_size(r, 0);
	*out = r;
	return HIE_OK;
}

/*
 * Asks name/type; on HIE_OK *rrs holds the answer records of that type (maybe an empty list; caller frees with
 * ldns_rr_list_deep_free). NXDOMAIN gives an empty list with *nxdomain set.
 */
static hie_err_t query(struct hisp_discovery *d, const char *name, ldns_rr_type type, ldns_rr_list **rrs,
		       bool *tcp, bool *nxdomain)
{
	ldns_resolver *r = NULL;
	ldns_rdf *dname = NULL;
	ldns_pkt *pkt = NULL;
	char abs[300];
	*rrs = NULL;
	if (tcp)
		*tcp = false;
	if (nxdomain)
		*nxdomain = false;
	size_t nl = strlen(name);
	if (nl == 0 || nl > 253)
		return HIE_EINVAL;
	snprintf(abs, sizeof abs, "%s%s", name, name[nl - 1] == '.' ? "" : ".");
	hie_err_t err = new_resolver(d, &r);
	if (err)
		return err;
	dname = ldns_dname_new_frm_str(abs);
	if (!dname) {
		err = HIE_EINVAL;
		goto out;
	}
	ldns_status st = ldns_resolver_send(&pkt, r, dname, type, LDNS_RR_CLASS_IN, LDNS_RD);
	if (st == LDNS_STATUS_OK && pkt && ldns_pkt_tc(pkt)) {
		/* RFC 1035 §4.2.1 / RFC 7766: a truncated UDP answer is asked again over TCP. */
		ldns_pkt_free(pkt);
		pkt = NULL;
		ldns_resolver_set_usevc(r, true);
		st = ldns_resolver_send(&pkt, r, dname, type, LDNS_RR_CLASS_IN, LDNS_RD);
		if (tcp)
			*tcp = true;
	}
	if (st != LDNS_STATUS_OK || !pkt) {
		err = st == LDNS_STATUS_NETWORK_ERR || st == LDNS_STATUS_ERR ? HIE_ETIMEOUT : HIE_EIO;
		hie_log(HIE_LOG_WARN, "event=hisp.dns.fail type=%d error=\"%s\"", (int)type, ldns_get_errorstr_by_id(st));
		goto out;
	}
	ldns_pkt_rcode rc = ldns_pkt_get_rcode(pkt);
	if (rc == LDNS_RCODE_NXDOMAIN) {
		if (nxdomain)
			*nxdomain = true;
	} else if (rc != LDNS_RCODE_NOERROR) {
		hie_log(HIE_LOG_WARN, "event=hisp.dns.fail type=%d rcode=%d", (int)type, (int)rc);
		err = HIE_EIO;
		goto out;
	}
	*rrs = ldns_pkt_rr_list_by_type(pkt, type, LDNS_SECTION_ANSWER);
	if (!*rrs)
		*rrs = ldns_rr_list_new();
	if (!*rrs)
		err = HIE_ENOMEM;
out:
	ldns_pkt_free(pkt);
	ldns_rdf_deep_free(dname);
	ldns_resolver_deep_free(r);
	return err;
}

X509 *hisp_disc_parse_cert(const unsigned char *p, size_t n)
{
	if (!p || n == 0 || n > HISP_DISC_MAX_DER)
		return NULL;
	const unsigned char *q = p;
	X509 *x = d2i_X509(NULL, &q, (long)n);
	if (x && q != p + n) { /* trailing bytes: not one DER certificate */
		X509_free(x);
		x = NULL;
	}
	if (!x) {
		BIO *b = BIO_new_mem_buf(p, (int)n);
		if (b)
			x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	return x;
}

/* IPKIX ------------------------------------------------------------------------------------------------------ */

static size_t fetch_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct hie_buf *b = arg;
	size_t n = size * nmemb;
	return hie_buf_add(b, ptr, n) == HIE_OK ? n : 0; /* 0 aborts the transfer: over the cap */
}

static hie_err_t fetch_url(struct hisp_discovery *d, const char *url, X509 **out)
{
	struct hie_buf b;
	hie_err_t err = HIE_OK;
	*out = NULL;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return HIE_EUNSUPPORTED;
	CURL *c = curl_easy_init();
	if (!c)
		return HIE_ENOMEM;
	hie_buf_init(&b, HISP_DISC_MAX_DER);
	curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)d->fetch_timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)d->fetch_timeout_ms);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	CURLcode cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		hie_log(HIE_LOG_WARN, "event=hisp.dns.ipkix error=\"%s\"", curl_easy_strerror(cc));
		err = cc == CURLE_OPERATION_TIMEDOUT ? HIE_ETIMEOUT : cc == CURLE_WRITE_ERROR ? HIE_ETOOBIG : HIE_EIO;
		goto out;
	}
	*out = hisp_disc_parse_cert((const unsigned char *)b.data, b.len);
	if (!*out)
		err = HIE_EPARSE;
out:
	curl_easy_cleanup(c);
	hie_buf_free(&b);
	return err;
}

/* CERT ------------------------------------------------------------------------------------------------------- */

/* One CERT record (RFC 4398 §2): type(2) key tag(2) algorithm(1) data; ldns gives the four fields as rdfs. */
static hie_err_t cert_record(struct hisp_discovery *d, const ldns_rr *rr, STACK_OF(X509) *out,
			     struct hisp_dns_cert_info *info)
{
	if (ldns_rr_rd_count(rr) != 4 || ldns_rdf_size(ldns_rr_rdf(rr, 0)) != 2) {
		info->unusable++;
		return HIE_OK;
	}
	const uint8_t *t = ldns_rdf_data(ldns_rr_rdf(rr, 0));
	unsigned type = ((unsigned)t[0] << 8) | t[1];
	const ldns_rdf *data = ldns_rr_rdf(rr, 3);
	const unsigned char *p = ldns_rdf_data(data);
	size_t n = ldns_rdf_size(data);
	X509 *x = NULL;
	if (type == CERT_TYPE_PKIX) {
		x = hisp_disc_parse_cert(p, n);
	} else if (type == CERT_TYPE_IPKIX) {
		char url[MAX_URL];
		if (n == 0 || n >= sizeof url || memchr(p, '\0', n)) {
			info->unusable++;
			return HIE_OK;
		}
		memcpy(url, p, n);
		url[n] = '\0';
		hie_err_t err = fetch_url(d, url, &x);
		if (err == HIE_ETIMEOUT || err == HIE_EIO) {
			info->fetch_failed++;
			return HIE_OK;
		}
	}
	if (!x) {
		info->unusable++;
		return HIE_OK;
	}
	if (sk_X509_num(out) >= HISP_DISC_MAX_CERTS || !sk_X509_push(out, x)) {
		X509_free(x);
		info->unusable++;
	}
	return HIE_OK;
}

hie_err_t hisp_dns_cert_ex(struct hisp_discovery *d, const char *owner, STACK_OF(X509) **out, long long *ttl_ms,
			   struct hisp_dns_cert_info *info)
{
	ldns_rr_list *rrs = NULL;
	struct hisp_dns_cert_info dummy;
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof *info);
	*out = NULL;
	if (ttl_ms)
		*ttl_ms = -1;
	hie_err_t err = query(d, owner, LDNS_RR_TYPE_CERT, &rrs, &info->tcp, &info->nxdomain);
	if (err)
		return err;
	STACK_OF(X509) *sk = sk_X509_new_null();
	if (!sk) {
		ldns_rr_list_deep_free(rrs);
		return HIE_ENOMEM;
	}
	size_t count = ldns_rr_list_rr_count(rrs);
	for (size_t i = 0; i < count; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		info->records++;
		if (ttl_ms && (*ttl_ms < 0 || (long long)ldns_rr_ttl(rr) * 1000 < *ttl_ms))
			*ttl_ms = (long long)ldns_rr_ttl(rr) * 1000;
		cert_record(d, rr, sk, info);
	}
	ldns_rr_list_deep_free(rrs);
	*out = sk;
	return HIE_OK;
}

hie_err_t hisp_dns_cert(struct hisp_discovery *d, const char *owner, STACK_OF(X509) **out, long long *ttl_ms)
{
	return hisp_dns_cert_ex(d, owner, out, ttl_ms, NULL);
}

hie_err_t hisp_dns_owner(const char *address, char *out, size_t outlen)
{
	const char *at = strchr(address, '@');
	if (!at || at == address || !at[1])
		return HIE_EINVAL;
	size_t o = 0;
	for (const char *p = address; p < at; p++) {
		unsigned char c = (unsigned char)*p;
		char tmp[5];
		size_t k;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_' || c == '.') {
			tmp[0] = (char)c;
			k = 1;
		} else { /* presentation-format escape, so that '+', '/', '=' … stay one label */
			snprintf(tmp, sizeof tmp, "\\%03u", c);
			k = 4;
		}
		if (o + k >= outlen)
			return HIE_ETOOBIG;
		memcpy(out + o, tmp, k);
		o += k;
	}
	int w = snprintf(out + o, outlen - o, ".%s", at + 1);
	if (w < 0 || (size_t)w >= outlen - o)
		return HIE_ETOOBIG;
	return HIE_OK;
}

/* SRV, A/AAAA, MX -------------------------------------------------------------------------------------------- */

static void rdf_dname(const ldns_rdf *rdf, char *out, size_t outlen)
{
	out[0] = '\0';
	char *s = rdf ? ldns_rdf2str(rdf) : NULL;
	if (!s)
		return;
	size_t n = strlen(s);
	if (n > 1 && s[n - 1] == '.')
		s[--n] = '\0';
	snprintf(out, outlen, "%s", s);
	free(s);
}

static unsigned rand_bound(unsigned bound)
{
	uint32_t v = 0;
	if (bound <= 1)
		return 0;
	if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
		v = (uint32_t)random();
	return v % bound;
}

static int srv_cmp(const void *a, const void *b)
{
	const struct hisp_srv *x = a, *y = b;
	return x->prio - y->prio;
}

void hisp_srv_order(struct hisp_srv *srv, size_t n, unsigned (*rnd)(unsigned bound))
{
	/* stable sort by priority (insertion: n is small and the zone order matters for equal weights) */
	for (size_t i = 1; i < n; i++) {
		struct hisp_srv t = srv[i];
		size_t j = i;
		while (j > 0 && srv_cmp(&srv[j - 1], &t) > 0) {
			srv[j] = srv[j - 1];
			j--;
		}
		srv[j] = t;
	}
	for (size_t g = 0; g < n;) {
		size_t e = g;
		while (e < n && srv[e].prio == srv[g].prio)
			e++;
		/*
		 * RFC 2782 weight selection inside [g, e): pick by a random number against running sums. The RFC
		 * draws from 0..total, which leaves weight-0 records a small chance; we draw from 1..total so a
		 * weight-0 record is used only after every weighted one (the RFC's "very small chance" taken to 0,
		 * which makes DCDT D16 deterministic).
		 */
		for (size_t i = g; i < e; i++) {
			unsigned total = 0;
			for (size_t k = i; k < e; k++)
				total += (unsigned)srv[k].weight;
			size_t pick = i;
			if (total > 0) {
				unsigned r = rnd(total) + 1, run = 0;
				for (size_t k = i; k < e; k++) {
					run += (unsigned)srv[k].weight;
					if (srv[k].weight > 0 && run >= r) {
						pick = k;
						break;
					}
				}
			}
			struct hisp_srv t = srv[pick];
			memmove(&srv[i + 1], &srv[i], (pick - i) * sizeof *srv);
			srv[i] = t;
		}
		g = e;
	}
}

hie_err_t hisp_dns_srv(struct hisp_discovery *d, const char *name, struct hisp_srv *out, size_t max, size_t *n)
{
	ldns_rr_list *rrs = NULL;
	*n = 0;
	hie_err_t err = query(d, name, LDNS_RR_TYPE_SRV, &rrs, NULL, NULL);
	if (err)
		return err;
	size_t count = ldns_rr_list_rr_count(rrs);
	for (size_t i = 0; i < count && *n < max; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		if (ldns_rr_rd_count(rr) != 4)
			continue;
		struct hisp_srv *s = &out[*n];
		s->prio = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
		s->weight = ldns_rdf2native_int16(ldns_rr_rdf(rr, 1));
		s->port = ldns_rdf2native_int16(ldns_rr_rdf(rr, 2));
		rdf_dname(ldns_rr_rdf(rr, 3), s->target, sizeof s->target);
		/* target "." = service decidedly not available (RFC 2782) */
		if (!s->target[0] || strcmp(s->target, ".") == 0 || s->port == 0)
			continue;
		(*n)++;
	}
	ldns_rr_list_deep_free(rrs);
	hisp_srv_order(out, *n, rand_bound);
	return HIE_OK;
}

hie_err_t hisp_dns_addr(struct hisp_discovery *d, const char *host, char *ip, size_t iplen)
{
	static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA};
	struct in6_addr tmp;
	if (inet_pton(AF_INET, host, &tmp) == 1 || inet_pton(AF_INET6, host, &tmp) == 1) {
		snprintf(ip, iplen, "%s", host);
		return HIE_OK;
	}
	for (size_t t = 0; t < 2; t++) {
		ldns_rr_list *rrs = NULL;
		hie_err_t err = query(d, host, types[t], &rrs, NULL, NULL);
		if (err)
			return err;
		bool found = false;
		if (ldns_rr_list_rr_count(rrs) > 0) {
			const ldns_rdf *a = ldns_rr_rdf(ldns_rr_list_rr(rrs, 0), 0);
			if (a && inet_ntop(t == 0 ? AF_INET : AF_INET6, ldns_rdf_data(a), ip, (socklen_t)iplen))
				found = true;
		}
		ldns_rr_list_deep_free(rrs);
		if (found)
			return HIE_OK;
	}
	return HIE_ENOTFOUND;
}

static int mx_cmp(const void *a, const void *b)
{
	const struct hisp_mx *x = a, *y = b;
	return x->pref - y->pref;
}

hie_err_t hisp_dns_mx(struct hisp_discovery *d, const char *domain, struct hisp_mx *out, size_t max, size_t *n)
{
	ldns_rr_list *rrs = NULL;
	bool nx = false;
	*n = 0;
	if (max == 0)
		return HIE_EINVAL;
	hie_err_t err = query(d, domain, LDNS_RR_TYPE_MX, &rrs, NULL, &nx);
	if (err)
		return err;
	if (nx) {
		ldns_rr_list_deep_free(rrs);
		return HIE_ENOTFOUND;
	}
	size_t count = ldns_rr_list_rr_count(rrs);
	bool null_mx = false;
	for (size_t i = 0; i < count; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		if (ldns_rr_rd_count(rr) != 2)
			continue;
		struct hisp_mx m;
		m.pref = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
		rdf_dname(ldns_rr_rdf(rr, 1), m.host, sizeof m.host);
		if (!m.host[0] || strcmp(m.host, ".") == 0) { /* RFC 7505 null MX: the domain takes no mail */
			null_mx = true;
			continue;
		}
		if (*n < max) {
			out[(*n)++] = m;
		} else { /* keep the max best ones */
			size_t worst = 0;
			for (size_t k = 1; k < *n; k++)
				if (out[k].pref > out[worst].pref)
					worst = k;
			if (m.pref < out[worst].pref)
				out[worst] = m;
		}
	}
	ldns_rr_list_deep_free(rrs);
	if (*n == 0 && null_mx)
		return HIE_ENOTFOUND;
	if (*n == 0) { /* RFC 5321 §5.1: no MX, the domain itself is the host */
		snprintf(out[0].host, sizeof out[0].host, "%s", domain);
		out[0].pref = 0;
		*n = 1;
		return HIE_OK;
	}
	/* stable order for equal preferences is not promised by DNS; sort by preference only */
	qsort(out, *n, sizeof *out, mx_cmp);
	return HIE_OK;
}
