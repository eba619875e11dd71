/*
 * hisp_discovery_test.c — certificate discovery against real servers on loopback: nsd (DNS CERT, SRV, MX, A),
 * two slapd and an HTTP server for CRLs / AIA / IPKIX, all started by tests/fixtures/direct/dirservers.sh
 * with the DCDT-style fixtures in tests/fixtures/direct/dcdt/; real PostgreSQL (pgtest.h), real trust
 * (hisp_trust_open with the mkpki.sh root as the outgoing anchor of a.test).
 *
 * DCDT discovery test cases (onc-healthit/dcdt, dcdt-core/.../spring-core-testcases-discovery.xml, 3.1.x):
 *   D1  valid address-bound certificate in DNS            D2  valid domain-bound certificate in DNS
 *   D3  valid address-bound certificate in LDAP           D4  valid domain-bound certificate in LDAP
 *   D5  invalid address-bound in DNS: found, not used     D6  invalid domain-bound in DNS: found, not used
 *   D7  invalid address-bound in LDAP: found, not used    D8  invalid domain-bound in LDAP: found, not used
 *   D9  valid address-bound chosen over an invalid one at the same DNS owner
 *   D10 first LDAP server (SRV priority 0) unavailable, certificate on the priority-1 server
 *   D11 no CERT records and no SRV records                D12 no CERT records, the only LDAP server unavailable
 *   D13 no CERT records, LDAP server holds no entry        D14 certificate > 512 bytes in DNS (TCP after TC)
 *   D15 SRV priority decides between two LDAP servers      D16 SRV weight decides within one priority
 *   D17 CRL: two revoked and one valid address-bound certificate at one owner
 *   D18 AIA: leaf issued by an intermediate that only the AIA caIssuers URL provides
 * All eighteen run here. Our additions: D5/D6 carry a VALID certificate in the next source (domain DNS /
 * LDAP) to prove the stop rule; an IPKIX record; an untrusted issuer; a garbage PKIX record; the cache
 * (positive, negative, revalidation), the local store, timeouts, MX, owner names, SRV ordering, the CLI.
 * D12 gives HIE_EIO (a server that might hold the certificate did not answer: the caller retries and finally
 * reports no certificate), which satisfies DCDT's "no certificate discovered".
 *
 * Skips (with a message) when PostgreSQL, nsd, slapd or python3 is missing.
 */
#include "tests/unit/core/pgtest.h" /* first: it sets _XOPEN_SOURCE for nftw */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ldns/ldns.h>
#include <openssl/x509.h>

#include "core/core_config.h"
#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_discovery.h"
#include "hisp/hisp_discovery_int.h"

static struct pgtest T;
static struct hie_db_pool *P;
static char dir[64];
static char pki[256];
static int dns_port, ldap1_port, ldap2_port, down_port, http_port;
static int skip_servers;
static struct hisp_trust *trust;
static struct hisp_keys *keys;
static struct hisp_discovery *disc;       /* no cache */
static struct hisp_discovery *disc_cache; /* cache 1 h */
static char dns_server[64];

static long port_of(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	if (!p)
		return -1;
	char *end;
	long v = strtol(p + strlen(key), &end, 10);
	return end == p + strlen(key) ? -1 : v;
}

static int start_servers(void)
{
	const char *src = getenv("HIENODE_SRC");
	char cmd[1024], out[256], buf[4096];
	if (system("command -v nsd >/dev/null && command -v slapd >/dev/null && command -v python3 >/dev/null") != 0) {
		fprintf(stderr, "SKIP: nsd, slapd or python3 not installed\n");
		skip_servers = 1;
		return 0;
	}
	snprintf(dir, sizeof dir, "/tmp/hdisc.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(out, sizeof out, "%s/ports", dir);
	snprintf(cmd, sizeof cmd, "%s/tests/fixtures/direct/dirservers.sh start %s/srv > %s", src ? src : ".", dir,
		 out);
	if (system(cmd) != 0) {
		fprintf(stderr, "dirservers.sh failed; see %s/srv\n", dir);
		return -1;
	}
	FILE *f = fopen(out, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	dns_port = (int)port_of(buf, "DNS_PORT=");
	ldap1_port = (int)port_of(buf, "LDAP1_PORT=");
	ldap2_port = (int)port_of(buf, "LDAP2_PORT=");
	down_port = (int)port_of(buf, "DOWN_PORT=");
	http_port = (int)port_of(buf, "HTTP_PORT=");
	snprintf(pki, sizeof pki, "%s/srv/pki", dir);
	snprintf(dns_server, sizeof dns_server, "127.0.0.1:%d", dns_port);
	return dns_port > 0 && ldap1_port > 0 && ldap2_port > 0 && http_port > 0 ? 0 : -1;
}

static X509 *load(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s.der", pki, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	X509 *x = d2i_X509_fp(f, NULL);
	fclose(f);
	return x;
}

static char *hex_of(const char *name)
{
	X509 *x = load(name);
	unsigned char *der = NULL;
	int n = x ? i2d_X509(x, &der) : 0;
	X509_free(x);
	if (n <= 0)
		return NULL;
	char *h = malloc((size_t)n * 2 + 1);
	for (int i = 0; h && i < n; i++)
		snprintf(h + 2 * i, 3, "%02x", der[i]);
	OPENSSL_free(der);
	return h;
}

static hie_err_t exec1(const char *sql, const char *a, const char *b)
{
	PGconn *c;
	hie_err_t err = hie_db_acquire(P, -1, &c);
	if (err)
		return err;
	const char *p[] = {a, b};
	err = hie_db_exec(c, sql, b ? 2 : a ? 1 : 0, p, NULL);
	hie_db_release(P, c, false);
	return err;
}

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {hisp_migrations, hisp_migrations_count}};
	if (pgtest_open(&T, 4, schema, 2, &P) != 0)
		return -1;
	if (T.skip)
		return 0;
	if (start_servers() != 0)
		return -1;
	if (skip_servers)
		return 0;
	char *ca = hex_of("ca");
	if (!ca)
		return -1;
	hie_err_t err = exec1("INSERT INTO hisp_domains (name) VALUES ('a.test')", NULL, NULL);
	if (!err)
		err = exec1("INSERT INTO hisp_anchors (domain, direction, der, fingerprint, subject)"
			    " VALUES ('a.test', 'outgoing', decode($1, 'hex'), encode(sha256(decode($1, 'hex')), 'hex'),"
			    " 'CN=Test Direct Root')",
			    ca, NULL);
	free(ca);
	if (err)
		return -1;
	struct hisp_trust_opts to = {.min_rsa_bits = 2048, .fetch_timeout_ms = 5000, .fetch_max = 1 << 20};
	if (hisp_trust_open(P, &to, &trust) != HIE_OK)
		return -1;
	char state_dir[128];
	snprintf(state_dir, sizeof state_dir, "%s/state", dir);
	if (hisp_keys_open(P, state_dir, &keys) != HIE_OK)
		return -1;
	struct hisp_discovery_opts o = {.dns_server = dns_server,
					.dns_timeout_ms = 3000,
					.ldap_timeout_ms = 3000,
					.fetch_timeout_ms = 3000,
					.cache_ttl_ms = 0};
	if (hisp_discovery_open(P, keys, trust, &o, &disc) != HIE_OK)
		return -1;
	o.cache_ttl_ms = 3600 * 1000LL;
	if (hisp_discovery_open(P, keys, trust, &o, &disc_cache) != HIE_OK)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	hisp_discovery_close(disc);
	hisp_discovery_close(disc_cache);
	hisp_trust_close(trust);
	hisp_keys_close(keys);
	if (dir[0]) {
		char cmd[256];
		snprintf(cmd, sizeof cmd, "%s/tests/fixtures/direct/dirservers.sh stop %s/srv",
			 getenv("HIENODE_SRC") ? getenv("HIENODE_SRC") : ".", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "dirservers.sh stop failed\n");
		if (!getenv("PGTEST_KEEP"))
			pgtest_rmrf(dir);
	}
	pgtest_close(&T, P);
	return 0;
}

#define SKIP_IF_NEEDED()                                                                                           \
	do {                                                                                                       \
		PGTEST_SKIP_IF_NEEDED(&T);                                                                         \
		if (skip_servers)                                                                                  \
			skip();                                                                                    \
	} while (0)

static bool trace_has(const struct hisp_discovery_trace *t, const char *source, const char *text)
{
	for (size_t i = 0; i < t->n; i++)
		if ((!source || strcmp(t->steps[i].source, source) == 0) &&
		    (strstr(t->steps[i].outcome, text) || strstr(t->steps[i].where, text)))
			return true;
	return false;
}

static void print_trace(const struct hisp_discovery_trace *t)
{
	for (size_t i = 0; i < t->n; i++)
		fprintf(stderr, "  step %s %s: %s\n", t->steps[i].source, t->steps[i].where, t->steps[i].outcome);
}

/* The certificates in got are exactly the named ones. */
static void assert_certs(STACK_OF(X509) *got, const char *const *names)
{
	int n = 0;
	while (names[n])
		n++;
	assert_non_null(got);
	assert_int_equal(sk_X509_num(got), n);
	for (int i = 0; i < n; i++) {
		X509 *want = load(names[i]);
		assert_non_null(want);
		bool found = false;
		for (int k = 0; k < sk_X509_num(got); k++)
			found = found || X509_cmp(want, sk_X509_value(got, k)) == 0;
		X509_free(want);
		if (!found)
			fail_msg("certificate %s not returned", names[i]);
	}
}

/* --- the DCDT cases, table-driven ---------------------------------------------------------------------- */

struct dcase {
	const char *name;
	const char *address;
	hie_err_t want;
	const char *certs[4];   /* exactly these (when want == HIE_OK) */
	const char *reason_has; /* in the reason */
	const char *trace_src;  /* a step of this source … */
	const char *trace_has;  /* … whose outcome or where contains this */
	const char *trace_not;  /* no step mentions this */
};

static const struct dcase dcases[] = {
	{.name = "D1", .address = "d1@d1.dcdt.test", .want = HIE_OK, .certs = {"d1-valA"},
	 .trace_src = "dns", .trace_has = "d1.d1.dcdt.test", .trace_not = "ldap://"},
	{.name = "D2", .address = "d2@d2.dcdt.test", .want = HIE_OK, .certs = {"d2-valB"},
	 .trace_src = "dns", .trace_has = "1 usable", .trace_not = "ldap://"},
	{.name = "D3", .address = "d3@d3.dcdt.test", .want = HIE_OK, .certs = {"d3-valC"},
	 .trace_src = "ldap", .trace_has = "1 usable"},
	{.name = "D4", .address = "d4@d4.dcdt.test", .want = HIE_OK, .certs = {"d4-valD"},
	 .trace_src = "ldap", .trace_has = "(domain entry)"},
	{.name = "D5", .address = "d5@d5.dcdt.test", .want = HIE_EDENIED, .reason_has = "expired",
	 .trace_not = "d5-bgB"},
	{.name = "D6", .address = "d6@d6.dcdt.test", .want = HIE_EDENIED, .reason_has = "expired",
	 .trace_not = "_ldap._tcp"},
	{.name = "D7", .address = "d7@d7.dcdt.test", .want = HIE_EDENIED, .reason_has = "expired",
	 .trace_src = "ldap", .trace_has = "none usable"},
	{.name = "D8", .address = "d8@d8.dcdt.test", .want = HIE_EDENIED, .reason_has = "expired",
	 .trace_src = "ldap", .trace_has = "(domain entry)"},
	{.name = "D9", .address = "d9@d9.dcdt.test", .want = HIE_OK, .certs = {"d9-valA"},
	 .trace_src = "dns", .trace_has = "2 certificates, 1 usable"},
	{.name = "D10", .address = "d10@d10.dcdt.test", .want = HIE_OK, .certs = {"d10-valE"},
	 .trace_src = "ldap", .trace_has = "unavailable"},
	{.name = "D11", .address = "d11@d11.dcdt.test", .want = HIE_ENOTFOUND, .reason_has = "no certificate",
	 .trace_src = "dns", .trace_has = "no SRV record"},
	{.name = "D12", .address = "d12@d12.dcdt.test", .want = HIE_EIO, .reason_has = "unavailable",
	 .trace_src = "ldap", .trace_has = "unavailable"},
	{.name = "D13", .address = "d13@d13.dcdt.test", .want = HIE_ENOTFOUND, .reason_has = "no certificate",
	 .trace_src = "ldap", .trace_has = "no entry"},
	{.name = "D14", .address = "d14@d14.dcdt.test", .want = HIE_OK, .certs = {"d14-valA"},
	 .trace_src = "dns", .trace_has = "(tcp)"},
	{.name = "D15", .address = "d15@d15.dcdt.test", .want = HIE_OK, .certs = {"d15-valC"},
	 .trace_src = "ldap", .trace_has = "priority 0"},
	{.name = "D16", .address = "d16@d16.dcdt.test", .want = HIE_OK, .certs = {"d16-valC"},
	 .trace_src = "ldap", .trace_has = "weight 100"},
	{.name = "D17", .address = "d17@d17.dcdt.test", .want = HIE_OK, .certs = {"d17-valA"},
	 .trace_src = "dns", .trace_has = "3 certificates, 1 usable"},
	{.name = "D18", .address = "d18@d18.dcdt.test", .want = HIE_OK, .certs = {"d18-valA"},
	 .trace_src = "dns", .trace_has = "d18.d18.dcdt.test"},
	{.name = "IPKIX", .address = "ip@ipkix.dcdt.test", .want = HIE_OK, .certs = {"ipkix-val"}},
	{.name = "untrusted issuer", .address = "un@untr.dcdt.test", .want = HIE_EDENIED, .reason_has = "untrusted"},
	{.name = "garbage PKIX record", .address = "junk@junk.dcdt.test", .want = HIE_ENOTFOUND,
	 .trace_src = "dns", .trace_has = "no usable record"},
	{.name = "upper-case address", .address = "D1@D1.DCDT.Test", .want = HIE_OK, .certs = {"d1-valA"}},
};

static void run_case(const struct dcase *c)
{
	STACK_OF(X509) *got = NULL;
	struct hisp_discovery_trace tr;
	char reason[300];
	hie_err_t err = hisp_discover(disc, "a.test", c->address, &got, reason, sizeof reason, &tr);
	fprintf(stderr, "%s %s: %s (%s)\n", c->name, c->address, hie_errname(err), reason);
	print_trace(&tr);
	assert_int_equal(err, c->want);
	if (c->want == HIE_OK) {
		assert_certs(got, c->certs);
	} else {
		assert_null(got);
		assert_true(reason[0] != '\0');
	}
	if (c->reason_has && !strstr(reason, c->reason_has))
		fail_msg("%s: reason '%s' lacks '%s'", c->name, reason, c->reason_has);
	if (c->trace_has && !trace_has(&tr, c->trace_src, c->trace_has))
		fail_msg("%s: no %s step with '%s'", c->name, c->trace_src ? c->trace_src : "", c->trace_has);
	if (c->trace_not && trace_has(&tr, NULL, c->trace_not))
		fail_msg("%s: a step mentions '%s'", c->name, c->trace_not);
	sk_X509_pop_free(got, X509_free);
}

static const struct dcase *find_case(const char *name)
{
	for (size_t i = 0; i < sizeof dcases / sizeof dcases[0]; i++)
		if (strcmp(dcases[i].name, name) == 0)
			return &dcases[i];
	return NULL;
}

#define DCASE(fn, nm)                                                                                              \
	static void fn(void **state)                                                                               \
	{                                                                                                          \
		(void)state;                                                                                       \
		SKIP_IF_NEEDED();                                                                                  \
		run_case(find_case(nm));                                                                           \
	}
DCASE(test_D1_dns_address_bound_valid, "D1")
DCASE(test_D2_dns_domain_bound_valid, "D2")
DCASE(test_D3_ldap_address_bound_valid, "D3")
DCASE(test_D4_ldap_domain_bound_valid, "D4")
DCASE(test_D5_dns_address_bound_invalid_stops, "D5")
DCASE(test_D6_dns_domain_bound_invalid_stops, "D6")
DCASE(test_D7_ldap_address_bound_invalid, "D7")
DCASE(test_D8_ldap_domain_bound_invalid, "D8")
DCASE(test_D9_dns_valid_over_invalid, "D9")
DCASE(test_D10_ldap_first_server_down, "D10")
DCASE(test_D11_nothing_no_srv, "D11")
DCASE(test_D12_only_ldap_server_down, "D12")
DCASE(test_D13_ldap_no_entry, "D13")
DCASE(test_D14_large_cert_over_tcp, "D14")
DCASE(test_D15_srv_priority, "D15")
DCASE(test_D16_srv_weight, "D16")
/* D17: the two left out are refused because the CRL (served over HTTP) lists them, not for another reason. */
static void test_D17_crl_revoked_skipped(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	run_case(find_case("D17"));
	const char *revoked[] = {"d17-invB", "d17-invC"};
	for (size_t i = 0; i < 2; i++) {
		X509 *x = load(revoked[i]);
		char reason[160] = "";
		assert_non_null(x);
		assert_int_equal(hisp_trust_check(trust, x, NULL, "a.test", HISP_OUTGOING, "d17@d17.dcdt.test",
						  HISP_USE_ENCRYPT, reason, sizeof reason),
				 HIE_EDENIED);
		assert_string_equal(reason, "revoked");
		X509_free(x);
	}
}
DCASE(test_D18_aia_intermediate, "D18")
DCASE(test_ipkix_url, "IPKIX")
DCASE(test_untrusted_issuer_denied, "untrusted issuer")
DCASE(test_garbage_record_skipped, "garbage PKIX record")
DCASE(test_address_case_insensitive, "upper-case address")

/* D14's precondition: over UDP without EDNS the answer really is truncated (so the TCP retry is what works). */
static void test_D14_udp_answer_truncated(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	ldns_resolver *r = ldns_resolver_new();
	ldns_rdf *ns = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, "127.0.0.1");
	assert_int_equal(ldns_resolver_push_nameserver(r, ns), LDNS_STATUS_OK);
	ldns_resolver_set_port(r, (uint16_t)dns_port);
	ldns_resolver_set_fallback(r, false);
	ldns_resolver_set_edns_udp_size(r, 0);
	ldns_rdf *name = ldns_dname_new_frm_str("d14.d14.dcdt.test.");
	ldns_pkt *pkt = NULL;
	assert_int_equal(ldns_resolver_send(&pkt, r, name, LDNS_RR_TYPE_CERT, LDNS_RR_CLASS_IN, LDNS_RD),
			 LDNS_STATUS_OK);
	assert_true(ldns_pkt_tc(pkt));
	ldns_pkt_free(pkt);
	ldns_rdf_deep_free(name);
	ldns_rdf_deep_free(ns);
	ldns_resolver_deep_free(r);
}

static void test_dns_cert_big_rrset(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	STACK_OF(X509) *got = NULL;
	long long ttl = 0;
	assert_int_equal(hisp_dns_cert(disc, "big.dcdt.test", &got, &ttl), HIE_OK);
	const char *names[] = {"d9-valA", "d9-invA", "d14-valA", NULL};
	assert_certs(got, names);
	assert_int_equal(ttl, 300 * 1000);
	sk_X509_pop_free(got, X509_free);
	/* no record: empty, not an error */
	assert_int_equal(hisp_dns_cert(disc, "nothing-here.dcdt.test", &got, &ttl), HIE_OK);
	assert_int_equal(sk_X509_num(got), 0);
	sk_X509_free(got);
}

static void test_mx(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	struct hisp_mx mx[4];
	size_t n = 0;
	assert_int_equal(hisp_dns_mx(disc, "mx.dcdt.test", mx, 4, &n), HIE_OK);
	assert_int_equal(n, 3);
	assert_string_equal(mx[0].host, "mx1.dcdt.test");
	assert_int_equal(mx[0].pref, 10);
	assert_string_equal(mx[1].host, "mx2.dcdt.test");
	assert_string_equal(mx[2].host, "mx3.dcdt.test");
	/* capped: the two best */
	assert_int_equal(hisp_dns_mx(disc, "mx.dcdt.test", mx, 2, &n), HIE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(mx[0].host, "mx1.dcdt.test");
	assert_string_equal(mx[1].host, "mx2.dcdt.test");
	/* no MX: the domain itself */
	assert_int_equal(hisp_dns_mx(disc, "nomx.dcdt.test", mx, 4, &n), HIE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(mx[0].host, "nomx.dcdt.test");
	/* no such domain */
	assert_int_equal(hisp_dns_mx(disc, "nosuch.dcdt.test", mx, 4, &n), HIE_ENOTFOUND);
}

/* A DNS server that never answers: ETIMEOUT, not "not found". */
static void test_dns_timeout(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	char srv[64];
	snprintf(srv, sizeof srv, "127.0.0.1:%d", ntohs(a.sin_port));
	struct hisp_discovery_opts o = {.dns_server = srv, .dns_timeout_ms = 300, .ldap_timeout_ms = 300,
					.fetch_timeout_ms = 300, .cache_ttl_ms = 3600 * 1000LL};
	struct hisp_discovery *d = NULL;
	assert_int_equal(hisp_discovery_open(P, NULL, trust, &o, &d), HIE_OK);
	STACK_OF(X509) *got = NULL;
	char reason[200];
	assert_int_equal(hisp_discover(d, "a.test", "t1@timeout.dcdt.test", &got, reason, sizeof reason, NULL),
			 HIE_ETIMEOUT);
	assert_null(got);
	assert_non_null(strstr(reason, "timeout"));
	/* a failure is not cached as "nothing found" */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_cert_cache WHERE subject = $1", "t1@timeout.dcdt.test"),
			 0);
	struct hisp_mx mx[2];
	size_t n;
	assert_int_equal(hisp_dns_mx(d, "mx.dcdt.test", mx, 2, &n), HIE_ETIMEOUT);
	hisp_discovery_close(d);
	close(fd);
}

static void test_bad_input(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	STACK_OF(X509) *got = NULL;
	char reason[100];
	assert_int_equal(hisp_discover(disc, "a.test", "no-at-sign", &got, reason, sizeof reason, NULL), HIE_EINVAL);
	assert_int_equal(hisp_discover(disc, "a.test", "a b@x.test", &got, reason, sizeof reason, NULL), HIE_EINVAL);
	assert_int_equal(hisp_discover(disc, "not a domain", "d1@d1.dcdt.test", &got, reason, sizeof reason, NULL),
			 HIE_EINVAL);
	assert_null(got);
	struct hisp_discovery *d = NULL;
	struct hisp_discovery_opts o = {.dns_server = "127.0.0.1"};
	assert_int_equal(hisp_discovery_open(P, NULL, trust, &o, &d), HIE_ECONFIG);
	assert_null(d);
}

/* --- cache --------------------------------------------------------------------------------------------- */

static void test_cache_positive_and_ttl(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	STACK_OF(X509) *got = NULL;
	struct hisp_discovery_trace tr;
	char reason[200];
	const char *addr = "d1@d1.dcdt.test";
	assert_int_equal(hisp_discover(disc_cache, "a.test", addr, &got, reason, sizeof reason, &tr), HIE_OK);
	assert_false(trace_has(&tr, "cache", ""));
	sk_X509_pop_free(got, X509_free);
	/* source dns, expiry bounded by the record TTL (300 s), not the 1 h cache TTL */
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_cert_cache WHERE subject = $1 AND source = 'dns'"
				       " AND cardinality(ders) = 1 AND expires_at <= now() + interval '301 seconds'",
				       addr),
			 1);
	assert_int_equal(hisp_discover(disc_cache, "a.test", addr, &got, reason, sizeof reason, &tr), HIE_OK);
	assert_true(trace_has(&tr, "cache", "1 usable"));
	assert_false(trace_has(&tr, "dns", ""));
	const char *names[] = {"d1-valA", NULL};
	assert_certs(got, names);
	sk_X509_pop_free(got, X509_free);
	/* the discovery without cache does not read it */
	assert_int_equal(hisp_discover(disc, "a.test", addr, &got, reason, sizeof reason, &tr), HIE_OK);
	assert_false(trace_has(&tr, "cache", ""));
	sk_X509_pop_free(got, X509_free);
}

static void test_cache_negative(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	STACK_OF(X509) *got = NULL;
	struct hisp_discovery_trace tr;
	char reason[200];
	const char *addr = "d13@d13.dcdt.test";
	assert_int_equal(hisp_discover(disc_cache, "a.test", addr, &got, reason, sizeof reason, &tr), HIE_ENOTFOUND);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_cert_cache WHERE subject = $1 AND source = 'none'"
				       " AND cardinality(ders) = 0",
				       addr),
			 1);
	assert_int_equal(hisp_discover(disc_cache, "a.test", addr, &got, reason, sizeof reason, &tr), HIE_ENOTFOUND);
	assert_true(trace_has(&tr, "cache", "nothing found earlier"));
	assert_false(trace_has(&tr, "dns", ""));
	assert_false(trace_has(&tr, "ldap", ""));
	/* denied (stop rule) is not cached: the live answer is given every time */
	assert_int_equal(hisp_discover(disc_cache, "a.test", "d5@d5.dcdt.test", &got, reason, sizeof reason, &tr),
			 HIE_EDENIED);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_cert_cache WHERE subject = $1", "d5@d5.dcdt.test"),
			 0);
	/* unavailable LDAP is not cached either */
	assert_int_equal(hisp_discover(disc_cache, "a.test", "d12@d12.dcdt.test", &got, reason, sizeof reason, &tr),
			 HIE_EIO);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_cert_cache WHERE subject = $1",
				       "d12@d12.dcdt.test"),
			 0);
}

/* A cached certificate is checked again on use: expired ones are dropped and discovery runs again. */
static void test_cache_revalidated(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	char *inv = hex_of("d9-invA");
	assert_non_null(inv);
	assert_int_equal(exec1("INSERT INTO hisp_cert_cache (subject, ders, source, expires_at)"
			       " VALUES ($1, ARRAY[decode($2, 'hex')], 'dns', now() + interval '1 hour')",
			       "d9@d9.dcdt.test", inv),
			 HIE_OK);
	free(inv);
	STACK_OF(X509) *got = NULL;
	struct hisp_discovery_trace tr;
	char reason[200];
	assert_int_equal(hisp_discover(disc_cache, "a.test", "d9@d9.dcdt.test", &got, reason, sizeof reason, &tr),
			 HIE_OK);
	print_trace(&tr);
	assert_true(trace_has(&tr, "cache", "none usable any more"));
	const char *names[] = {"d9-valA", NULL};
	assert_certs(got, names);
	sk_X509_pop_free(got, X509_free);
	/* the row now holds what DNS gave (both candidates of the deciding owner) */
	assert_int_equal(pgtest_scalar(P, "SELECT cardinality(ders) FROM hisp_cert_cache WHERE subject = $1",
				       "d9@d9.dcdt.test"),
			 2);
	/* an expired row is not used */
	assert_int_equal(exec1("UPDATE hisp_cert_cache SET ders = '{}', source = 'none', expires_at = now() -"
			       " interval '1 second' WHERE subject = $1",
			       "d9@d9.dcdt.test", NULL),
			 HIE_OK);
	assert_int_equal(hisp_discover(disc_cache, "a.test", "d9@d9.dcdt.test", &got, reason, sizeof reason, &tr),
			 HIE_OK);
	assert_false(trace_has(&tr, "cache", ""));
	sk_X509_pop_free(got, X509_free);
}

/* --- local store ---------------------------------------------------------------------------------------- */

static hie_err_t add_partner(const char *owner, const char *bound, const char *name)
{
	char *h = hex_of(name);
	if (!h)
		return HIE_EIO;
	PGconn *c;
	hie_err_t err = hie_db_acquire(P, -1, &c);
	if (!err) {
		const char *p[] = {owner, bound, h};
		err = hie_db_exec(c,
				  "INSERT INTO hisp_certs (owner, bound, usage, der, fingerprint, not_before, not_after)"
				  " VALUES ($1, $2, 'both', decode($3, 'hex'), encode(sha256(decode($3, 'hex')), 'hex'),"
				  " now() - interval '1 day', now() + interval '1 day')",
				  3, p, NULL);
		hie_db_release(P, c, false);
	}
	free(h);
	return err;
}

static void test_local_store(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	STACK_OF(X509) *got = NULL;
	struct hisp_discovery_trace tr;
	char reason[200];
	/* a usable pinned certificate wins before DNS */
	assert_int_equal(add_partner("alice@a.test", "address", "alice"), HIE_OK);
	assert_int_equal(hisp_discover(disc, "a.test", "alice@a.test", &got, reason, sizeof reason, &tr), HIE_OK);
	assert_int_equal(tr.n, 1);
	assert_string_equal(tr.steps[0].source, "local");
	const char *alice[] = {"alice", NULL};
	assert_certs(got, alice);
	sk_X509_pop_free(got, X509_free);
	/* an expired pin does not hide the published certificate */
	assert_int_equal(add_partner("d2@d2.dcdt.test", "address", "d2-invC"), HIE_OK);
	assert_int_equal(hisp_discover(disc, "a.test", "d2@d2.dcdt.test", &got, reason, sizeof reason, &tr), HIE_OK);
	print_trace(&tr);
	assert_true(trace_has(&tr, "local", "none usable"));
	const char *d2[] = {"d2-valB", NULL};
	assert_certs(got, d2);
	sk_X509_pop_free(got, X509_free);
}

/* --- pure functions ------------------------------------------------------------------------------------- */

static void test_owner_names(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
		size_t outlen;
		hie_err_t err;
	} cases[] = {
		{.in = "user@example.org", .want = "user.example.org", .outlen = 300},
		{.in = "first.last@x.org", .want = "first.last.x.org", .outlen = 300},
		{.in = "a+b@x.org", .want = "a\\043b.x.org", .outlen = 300},
		{.in = "a/b=c@x.org", .want = "a\\047b\\061c.x.org", .outlen = 300},
		{.in = "no-at-sign", .err = HIE_EINVAL, .outlen = 300},
		{.in = "@x.org", .err = HIE_EINVAL, .outlen = 300},
		{.in = "user@", .err = HIE_EINVAL, .outlen = 300},
		{.in = "user@example.org", .err = HIE_ETOOBIG, .outlen = 10},
		{.in = "us+er@example.org", .err = HIE_ETOOBIG, .outlen = 4},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[300];
		hie_err_t err = hisp_dns_owner(cases[i].in, out, cases[i].outlen);
		assert_int_equal(err, cases[i].err);
		if (!err)
			assert_string_equal(out, cases[i].want);
	}
}

static unsigned rnd_value;
static unsigned rnd_fixed(unsigned bound)
{
	return rnd_value < bound ? rnd_value : bound - 1;
}

static void test_srv_order(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int prio[4], weight[4];
		size_t n;
		unsigned rnd;
		const char *want; /* targets in order, by their index letters */
	} cases[] = {
		{.name = "priority ascending", .prio = {2, 0, 1}, .weight = {0, 0, 0}, .n = 3, .want = "bca"},
		{.name = "zero weight last (D16)", .prio = {0, 0}, .weight = {0, 100}, .n = 2, .rnd = 0, .want = "ba"},
		{.name = "zero weight last, top draw", .prio = {0, 0}, .weight = {0, 100}, .n = 2, .rnd = 99,
		 .want = "ba"},
		{.name = "low draw picks first weighted", .prio = {0, 0}, .weight = {10, 20}, .n = 2, .rnd = 0,
		 .want = "ab"},
		{.name = "high draw picks second", .prio = {0, 0}, .weight = {10, 20}, .n = 2, .rnd = 29,
		 .want = "ba"},
		{.name = "boundary draw", .prio = {0, 0}, .weight = {10, 20}, .n = 2, .rnd = 9, .want = "ab"},
		{.name = "weights only within a priority", .prio = {1, 0, 0}, .weight = {1000, 0, 5}, .n = 3,
		 .rnd = 0, .want = "cba"},
		{.name = "all zero keeps zone order", .prio = {0, 0, 0}, .weight = {0, 0, 0}, .n = 3, .want = "abc"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_srv s[4];
		memset(s, 0, sizeof s);
		for (size_t k = 0; k < cases[i].n; k++) {
			s[k].target[0] = (char)('a' + k);
			s[k].prio = cases[i].prio[k];
			s[k].weight = cases[i].weight[k];
			s[k].port = 389;
		}
		rnd_value = cases[i].rnd;
		hisp_srv_order(s, cases[i].n, rnd_fixed);
		char got[5] = "";
		for (size_t k = 0; k < cases[i].n; k++)
			got[k] = s[k].target[0];
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s: got %s, want %s", cases[i].name, got, cases[i].want);
	}
}

static void test_parse_cert_hostile(void **state)
{
	(void)state;
	static const unsigned char junk[] = {0x30, 0x82, 0xff, 0xff, 0x01};
	assert_null(hisp_disc_parse_cert(junk, sizeof junk));
	assert_null(hisp_disc_parse_cert(junk, 0));
	assert_null(hisp_disc_parse_cert(NULL, 10));
	static const char pem_junk[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	assert_null(hisp_disc_parse_cert((const unsigned char *)pem_junk, sizeof pem_junk - 1));
}

/* --- CLI ----------------------------------------------------------------------------------------------- */

static int run_cli(int argc, char **argv, char **outtext)
{
	static struct hie_cfg *cfg;
	if (!cfg) {
		char e[256];
		hie_cfg_register(hisp_config_keys, hisp_config_nkeys);
		if (hie_cfg_load(&cfg, NULL, e, sizeof e) != HIE_OK ||
		    hie_cfg_set(cfg, "direct", "dns_server", dns_server, e, sizeof e) != HIE_OK ||
		    hie_cfg_set(cfg, "direct", "cert_cache_ttl", "0", e, sizeof e) != HIE_OK) {
			fprintf(stderr, "cfg: %s\n", e);
			return -1;
		}
	}
	char state_dir[128];
	snprintf(state_dir, sizeof state_dir, "%s/state", dir);
	char *buf = NULL, *ebuf = NULL;
	size_t len = 0, elen = 0;
	FILE *out = open_memstream(&buf, &len), *err = open_memstream(&ebuf, &elen);
	struct hisp_cli c = {.pool = P, .cfg = cfg, .state_dir = state_dir, .out = out, .err = err};
	int rc = hisp_cli_cert_discover(&c, argc, argv);
	fclose(out);
	fclose(err);
	fprintf(stderr, "cli rc=%d\n%s%s", rc, buf, ebuf);
	free(ebuf);
	*outtext = buf;
	return rc;
}

static void test_cli(void **state)
{
	(void)state;
	SKIP_IF_NEEDED();
	char *text = NULL;
	char *a1[] = {"discover", "d14@d14.dcdt.test", NULL};
	assert_int_equal(run_cli(2, a1, &text), 0);
	assert_non_null(strstr(text, "step dns"));
	assert_non_null(strstr(text, "(tcp)"));
	assert_non_null(strstr(text, "certificate subject=\"CN=d14-valA,O=hienode test\" sha256="));
	free(text);
	char *a2[] = {"discover", "d5@d5.dcdt.test", "--domain", "a.test", NULL};
	assert_int_equal(run_cli(4, a2, &text), 1);
	assert_non_null(strstr(text, "result EDENIED"));
	assert_null(strstr(text, "certificate subject"));
	free(text);
	char *a3[] = {"discover", "d11@d11.dcdt.test", NULL};
	assert_int_equal(run_cli(2, a3, &text), 1);
	assert_non_null(strstr(text, "result ENOTFOUND"));
	free(text);
	char *a4[] = {"discover", "not an address", NULL};
	assert_int_equal(run_cli(2, a4, &text), 2);
	free(text);
	char *a5[] = {"discover", NULL};
	assert_int_equal(run_cli(1, a5, &text), 2);
	free(text);
	char *a6[] = {"discover", "d1@d1.dcdt.test", "--bogus", NULL};
	assert_int_equal(run_cli(3, a6, &text), 2);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owner_names),
		cmocka_unit_test(test_srv_order),
		cmocka_unit_test(test_parse_cert_hostile),
		cmocka_unit_test(test_D1_dns_address_bound_valid),
		cmocka_unit_test(test_D2_dns_domain_bound_valid),
		cmocka_unit_test(test_D3_ldap_address_bound_valid),
		cmocka_unit_test(test_D4_ldap_domain_bound_valid),
		cmocka_unit_test(test_D5_dns_address_bound_invalid_stops),
		cmocka_unit_test(test_D6_dns_domain_bound_invalid_stops),
		cmocka_unit_test(test_D7_ldap_address_bound_invalid),
		cmocka_unit_test(test_D8_ldap_domain_bound_invalid),
		cmocka_unit_test(test_D9_dns_valid_over_invalid),
		cmocka_unit_test(test_D10_ldap_first_server_down),
		cmocka_unit_test(test_D11_nothing_no_srv),
		cmocka_unit_test(test_D12_only_ldap_server_down),
		cmocka_unit_test(test_D13_ldap_no_entry),
		cmocka_unit_test(test_D14_large_cert_over_tcp),
		cmocka_unit_test(test_D14_udp_answer_truncated),
		cmocka_unit_test(test_D15_srv_priority),
		cmocka_unit_test(test_D16_srv_weight),
		cmocka_unit_test(test_D17_crl_revoked_skipped),
		cmocka_unit_test(test_D18_aia_intermediate),
		cmocka_unit_test(test_ipkix_url),
		cmocka_unit_test(test_untrusted_issuer_denied),
		cmocka_unit_test(test_garbage_record_skipped),
		cmocka_unit_test(test_address_case_insensitive),
		cmocka_unit_test(test_dns_cert_big_rrset),
		cmocka_unit_test(test_mx),
		cmocka_unit_test(test_dns_timeout),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_cache_positive_and_ttl),
		cmocka_unit_test(test_cache_negative),
		cmocka_unit_test(test_cache_revalidated),
		cmocka_unit_test(test_local_store),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
