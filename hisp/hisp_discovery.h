/*
 * hisp_discovery.h — finding a recipient's encryption certificate (Certificate Discovery for Direct IG;
 * STANDARDS.md §1 "Certificate discovery"; DCDT cases D1–D18).
 *
 * Order and stop rules, for address user@example.org:
 *   1. local store (hisp_keys_partner_certs: partner certificates imported with `hienode cert import`);
 *   2. DNS CERT at the address owner name (user.example.org), then at the domain (example.org): types
 *      PKIX (a DER certificate) and IPKIX (a URL, fetched over HTTP with a timeout and size cap); over UDP to
 *      [direct] dns_server (or the system resolver), again over TCP when the answer is truncated;
 *   3. LDAP servers from _ldap._tcp.<domain> SRV records, lowest priority first, weight within a priority
 *      (RFC 2782), servers that are down or hold no entry skipped; search mail=<address> for userCertificate
 *      (;binary) under each naming context of the root DSE.
 * Within one source, address-bound certificates are preferred over domain-bound ones. Every candidate is
 * checked with hisp_trust_check (outgoing, encryption, bound to the address); if a source yields
 * certificates and none is valid (expired, revoked, untrusted, not bound), discovery STOPS with
 * HIE_EDENIED: no fallback to the domain or to LDAP. Results (found, or nothing found) are cached in
 * hisp_cert_cache for [direct] cert_cache_ttl (DNS: at most the record TTL); validity is checked again on
 * every use.
 */
#ifndef HIENODE_HISP_DISCOVERY_H
#define HIENODE_HISP_DISCOVERY_H

#include <stddef.h>

#include <openssl/x509.h>

#include "core/core_db.h"
#include "core/core_err.h"
#include "hisp/hisp_trust.h"

struct hisp_discovery_opts {
	const char *dns_server;    /* "host:port" or "" for /etc/resolv.conf; copied */
	int dns_timeout_ms;
	int ldap_timeout_ms;
	int fetch_timeout_ms;      /* IPKIX URL */
	long long cache_ttl_ms;    /* 0 = no cache */
};
struct hisp_discovery;
hie_err_t hisp_discovery_open(struct hie_db_pool *pool, struct hisp_keys *keys, struct hisp_trust *trust,
			      const struct hisp_discovery_opts *o, struct hisp_discovery **out);
void hisp_discovery_close(struct hisp_discovery *d);

/* One step of the search, for `hienode cert discover` and the logs. */
struct hisp_discovery_step {
	char source[16];      /* "local", "cache", "dns", "ldap" */
	char where[280];      /* owner name, LDAP URL */
	char outcome[160];    /* "2 certificates", "none", "timeout", "expired", "untrusted: …" */
};
struct hisp_discovery_trace {
	struct hisp_discovery_step steps[24];
	size_t n;
};

/*
 * The usable encryption certificates of address for our local_domain (trusted through its outgoing
 * anchors). *out is the caller's (sk_X509_pop_free). HIE_ENOTFOUND (nothing anywhere), HIE_EDENIED
 * (found but not usable: reason says why; stop rule), HIE_ETIMEOUT / HIE_EIO (a source could not be asked:
 * the caller retries later rather than telling the sender "no certificate"). trace may be NULL.
 */
hie_err_t hisp_discover(struct hisp_discovery *d, const char *local_domain, const char *address, STACK_OF(X509) **out,
			char *reason, size_t rlen, struct hisp_discovery_trace *trace);

/* Low-level lookups, exposed for tests: DNS CERT records at owner (PKIX certificates and IPKIX URLs fetched),
 * and MX hosts of a domain in preference order (for SMTP out). */
hie_err_t hisp_dns_cert(struct hisp_discovery *d, const char *owner, STACK_OF(X509) **out, long long *ttl_ms);
struct hisp_mx {
	char host[256];
	int pref;
};
/* MX of domain sorted by preference; with no MX record, the domain itself (RFC 5321 §5.1). *n ≤ max. */
hie_err_t hisp_dns_mx(struct hisp_discovery *d, const char *domain, struct hisp_mx *out, size_t max, size_t *n);

/*
 * `hienode cert discover ADDRESS [--domain LOCAL_DOMAIN] [--no-cache]` (argv[0] = "discover"): builds its own
 * keys, trust and discovery from c->cfg on c->pool, prints each step ("step SOURCE WHERE: OUTCOME"), then
 * "result found: …" and one "certificate subject=… sha256=… not_after=…" line per usable certificate, or
 * "result ENAME: reason". --domain defaults to the only local domain. Exit 0 found, 1 not found / not usable /
 * failed, 2 bad arguments.
 */
struct hisp_cli;
int hisp_cli_cert_discover(const struct hisp_cli *c, int argc, char **argv);

#endif
