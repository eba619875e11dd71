/*
 * hisp_discovery_int.h — what hisp_discovery.c (order, stop rules, LDAP, cache, CLI) and hisp_dns.c (ldns
 * queries, CERT parsing, IPKIX fetch, SRV order) share. Private to these two files.
 */
#ifndef HIENODE_HISP_DISCOVERY_INT_H
#define HIENODE_HISP_DISCOVERY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#include "core/core_db.h"
#include "core/core_err.h"
#include "hisp/hisp_discovery.h"

#define HISP_DISC_MAX_CERTS 16     /* certificates taken from one owner name or one LDAP server */
#define HISP_DISC_MAX_DER (64 * 1024) /* largest certificate (CERT rdata, LDAP value, IPKIX download) */
#define HISP_DISC_MAX_SRV 16       /* SRV records used per domain */

struct hisp_discovery {
	struct hie_db_pool *pool;
	struct hisp_keys *keys;    /* may be NULL: no local store */
	struct hisp_trust *trust;
	char dns_host[256];        /* "" = /etc/resolv.conf */
	int dns_port;
	int dns_timeout_ms;
	int ldap_timeout_ms;
	int fetch_timeout_ms;
	long long cache_ttl_ms;
};

/* What one CERT lookup saw, for the trace. */
struct hisp_dns_cert_info {
	int records;       /* CERT records at the owner */
	int unusable;      /* records skipped: unknown type, unparseable certificate */
	int fetch_failed;  /* IPKIX URLs that could not be fetched */
	bool tcp;          /* the UDP answer was truncated and the query repeated over TCP */
	bool nxdomain;
};

/* CERT lookup with details; *out may be empty (never NULL on HIE_OK). ttl_ms: smallest record TTL (or -1). */
hie_err_t hisp_dns_cert_ex(struct hisp_discovery *d, const char *owner, STACK_OF(X509) **out, long long *ttl_ms,
			   struct hisp_dns_cert_info *info);

struct hisp_srv {
	char target[256];  /* without the final dot */
	int port, prio, weight;
};
/* SRV records of name in the order to try them: priority ascending, RFC 2782 weighted order within one
 * priority (weight-0 records only once no weighted one is left). *n = 0 when there are none. */
hie_err_t hisp_dns_srv(struct hisp_discovery *d, const char *name, struct hisp_srv *out, size_t max, size_t *n);
/* Orders srv[0..n) in place as hisp_dns_srv does; rnd(bound) returns a number in [0, bound). */
void hisp_srv_order(struct hisp_srv *srv, size_t n, unsigned (*rnd)(unsigned bound));
/* First IPv4 (else IPv6) address of host as text, through the configured resolver. HIE_ENOTFOUND if none. */
hie_err_t hisp_dns_addr(struct hisp_discovery *d, const char *host, char *ip, size_t iplen);

/* The DNS owner name of a CERT record for an address ("user@example.org" → "user.example.org"; the local
 * part's dots stay label separators as in the Direct RI and DCDT; other special characters are escaped).
 * HIE_ETOOBIG when it does not fit. */
hie_err_t hisp_dns_owner(const char *address, char *out, size_t outlen);

/* A certificate from DER or PEM bytes, or NULL. */
X509 *hisp_disc_parse_cert(const unsigned char *p, size_t n);

#endif
