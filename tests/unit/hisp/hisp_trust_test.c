/*
 * hisp_trust_test.c — the Direct trust check, our key store and trust bundles against a real embedded
 * PostgreSQL, the test PKI of tests/fixtures/direct/mkpki.sh and a tiny HTTP server thread in this test that
 * serves the PKI's www/ directory (CRLs, the intermediate for AIA, bundles) on a loopback port and counts
 * requests per path (so the CRL and AIA caches can be seen working).
 *
 * Covered: every rule accepted and refused (binding by SAN rfc822Name and dNSName, DN e-mail ignored,
 * validity, RSA size, key usage, SHA-1 with and without allow_sha1_certs, revocation by a served CRL, no
 * anchor, AIA, intermediates given by the caller, an intermediate as anchor, direction), the CRL cache, the
 * soft-fail of an unreachable CRL (logged), anchor reload after hisp_trust_invalidate; keys: address-bound
 * before domain-bound, usage filter, expired left out, file modes, reload after a removal, partner
 * certificates; bundles: p7b DER and PEM, PEM bundles, signed p7m with the right and a wrong signer, garbage,
 * refresh all-or-nothing, and the hisp.bundle job queuing its next run once.
 */
#include "tests/unit/core/pgtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "core/core_jobs.h"
#include "core/core_log.h"
#include "hisp/hisp.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"

static struct pgtest T;
static struct hie_db_pool *P;
static char PKI[64];     /* mkpki output */
static char STATE[64];   /* state_dir with keys/ */
static struct hisp_trust *TR, *TR_SHA1;

/* --- a tiny HTTP server -------------------------------------------------------------------------------- */

#define MAX_PATHS 32
static struct {
	int fd, port;
	pthread_t th;
	volatile int stop;
	volatile int fail_crl; /* answer 404 for *.crl */
	pthread_mutex_t mu;
	char paths[MAX_PATHS][64];
	int counts[MAX_PATHS];
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void count_path(const char *p)
{
	pthread_mutex_lock(&S.mu);
	int i;
	for (i = 0; i < MAX_PATHS && S.paths[i][0]; i++)
		if (strcmp(S.paths[i], p) == 0)
			break;
	if (i < MAX_PATHS) {
		if (!S.paths[i][0])
			snprintf(S.paths[i], sizeof S.paths[i], "%s", p);
		S.counts[i]++;
	}
	pthread_mutex_unlock(&S.mu);
}

static int hits(const char *p)
{
	int n = 0;
	pthread_mutex_lock(&S.mu);
	for (int i = 0; i < MAX_PATHS && S.paths[i][0]; i++)
		if (strcmp(S.paths[i], p) == 0)
			n = S.counts[i];
	pthread_mutex_unlock(&S.mu);
	return n;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void serve_one(int c)
{
	char req[4096];
	size_t n = 0;
	struct timeval tv = {.tv_sec = 2};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (n + 1 < sizeof req) {
		ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[n] = '\0';
	char path[64] = "";
	if (strncmp(req, "GET /", 5) == 0) {
		size_t k = 0;
		for (const char *p = req + 4; *p && *p != ' ' && k + 1 < sizeof path; p++)
			path[k++] = *p;
		path[k] = '\0';
	}
	count_path(path);
	bool ok = path[0] == '/' && !strstr(path, "..");
	size_t plen = strlen(path);
	if (S.fail_crl && plen > 4 && strcmp(path + plen - 4, ".crl") == 0)
		ok = false;
	char file[256];
	snprintf(file, sizeof file, "%s/www%s", PKI, path);
	FILE *f = ok ? fopen(file, "rb") : NULL;
	if (!f) {
		const char *nf = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		send_all(c, nf, strlen(nf));
		return;
	}
	static char body[1 << 20];
	size_t blen = fread(body, 1, sizeof body, f);
	fclose(f);
	char hdr[128];
	int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", blen);
	send_all(c, hdr, (size_t)h);
	send_all(c, body, blen);
}

static void *server(void *arg)
{
	(void)arg;
	while (!S.stop) {
		struct pollfd pfd = {.fd = S.fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		int c = accept(S.fd, NULL, NULL);
		if (c < 0)
			continue;
		serve_one(c);
		close(c);
	}
	return NULL;
}

static int server_start(void)
{
	S.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (S.fd < 0 || bind(S.fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(S.fd, 16) != 0 ||
	    getsockname(S.fd, (struct sockaddr *)&a, &al) != 0)
		return -1;
	S.port = ntohs(a.sin_port);
	return pthread_create(&S.th, NULL, server, NULL) == 0 ? 0 : -1;
}

static void server_stop(void)
{
	if (S.port) {
		S.stop = 1;
		pthread_join(S.th, NULL);
		close(S.fd);
		S.port = 0;
	}
}

/* --- fixtures ------------------------------------------------------------------------------------------ */

static const char *src_root(void)
{
	static char root[512];
	const char *e = getenv("HIENODE_SRC");
	if (e && e[0])
		return e;
	snprintf(root, sizeof root, "%s", __FILE__);
	char *p = strstr(root, "/tests/unit/hisp/");
	if (p)
		*p = '\0';
	return root;
}

static X509 *load(const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s.pem", PKI, name);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("no %s", path);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		fail_msg("%s does not parse", path);
	return x;
}

static unsigned char *slurp(const char *name, size_t *len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", PKI, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("no %s", path);
	static unsigned char buf[4][1 << 18];
	static int slot;
	unsigned char *b = buf[slot++ % 4];
	*len = fread(b, 1, sizeof buf[0], f);
	fclose(f);
	return b;
}

static hie_err_t sql(const char *s)
{
	return pgtest_exec(P, s);
}

static void add_anchor(const char *domain, const char *direction, const char *name)
{
	X509 *x = load(name);
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	char fp[80];
	snprintf(fp, sizeof fp, "%s-%s-%s", name, domain, direction);
	const char *v[] = {domain, direction, (const char *)der, fp, name};
	const int l[] = {0, 0, len, 0, 0};
	const int f[] = {0, 0, 1, 0, 0};
	PGconn *c;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec_bin(c,
					 "INSERT INTO hisp_anchors (domain, direction, der, fingerprint, subject)"
					 " VALUES ($1, $2, $3, $4, $5)",
					 5, v, l, f, 0, NULL),
			 HIE_OK);
	hie_db_release(P, c, false);
	OPENSSL_free(der);
	X509_free(x);
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
	if (server_start() != 0)
		return -1;
	snprintf(PKI, sizeof PKI, "/tmp/htrustXXXXXX");
	snprintf(STATE, sizeof STATE, "/tmp/hstateXXXXXX");
	if (!mkdtemp(PKI) || !mkdtemp(STATE))
		return -1;
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "set -e; '%s/tests/fixtures/direct/mkpki.sh' %s http://127.0.0.1:%d 2>/dev/null; cd %s;"
		 "openssl crl2pkcs7 -nocrl -certfile ca-bundle.pem -outform DER -out bundle.p7b;"
		 "openssl crl2pkcs7 -nocrl -certfile ca-bundle.pem -out bundle-pem.p7b;"
		 "openssl cms -sign -binary -nodetach -signer dave.pem -inkey dave.key -in bundle.p7b -outform DER"
		 " -out bundle.p7m 2>/dev/null;"
		 "openssl cms -sign -binary -nodetach -signer dave.pem -inkey dave.key -in ca-bundle.pem -outform PEM"
		 " -out bundle-pem.p7m 2>/dev/null;"
		 "cp bundle.p7b bundle.p7m www/; head -c 300 /dev/urandom > garbage.bin",
		 src_root(), PKI, S.port, PKI);
	if (system(cmd) != 0) {
		fprintf(stderr, "mkpki failed (see %s/mkpki.log)\n", PKI);
		return -1;
	}
	if (sql("INSERT INTO hisp_domains (name) VALUES ('a.test'), ('b.test'), ('x.test'), ('y.test'), ('z.test')"))
		return -1;
	add_anchor("a.test", "incoming", "ca");
	add_anchor("a.test", "outgoing", "ca");
	add_anchor("x.test", "incoming", "ca");
	add_anchor("y.test", "both", "ca");
	add_anchor("z.test", "both", "inter");
	struct hisp_trust_opts o = {.min_rsa_bits = 2048, .fetch_timeout_ms = 5000, .fetch_max = 1 << 20};
	if (hisp_trust_open(P, &o, &TR))
		return -1;
	o.allow_sha1_certs = true;
	return hisp_trust_open(P, &o, &TR_SHA1) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	hisp_trust_close(TR);
	hisp_trust_close(TR_SHA1);
	server_stop();
	pgtest_close(&T, P);
	char cmd[256];
	if (PKI[0] && !getenv("PGTEST_KEEP")) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", PKI, STATE);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return 0;
}

/* --- trust rules ---------------------------------------------------------------------------------------- */

struct case_ {
	const char *cert;
	const char *domain;
	enum hisp_direction dir;
	const char *addr;
	enum hisp_usage use;
	bool sha1_ok; /* use the allow_sha1_certs checker */
	hie_err_t want;
	const char *reason; /* substring of the reason when refused */
};

static void run_case(const struct case_ *c)
{
	char reason[256] = "unset";
	X509 *x = load(c->cert);
	hie_err_t err =
		hisp_trust_check(c->sha1_ok ? TR_SHA1 : TR, x, NULL, c->domain, c->dir, c->addr, c->use, reason, sizeof reason);
	X509_free(x);
	if (err != c->want)
		fail_msg("%s as %s for %s: got %s (%s), want %s", c->cert, c->addr, c->domain, hie_errname(err), reason,
			 hie_errname(c->want));
	if (c->reason && !strstr(reason, c->reason))
		fail_msg("%s as %s: reason '%s' lacks '%s'", c->cert, c->addr, reason, c->reason);
}

static void test_rules_table(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	const struct case_ cases[] = {
		{.cert = "bob", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN},
		{.cert = "bob", .domain = "a.test", .dir = HISP_OUTGOING, .addr = "BOB@B.TEST", .use = HISP_USE_ENCRYPT},
		{.cert = "bob", .domain = "y.test", .dir = HISP_OUTGOING, .addr = "bob@b.test", .use = HISP_USE_ENCRYPT},
		{.cert = "alice", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN,
		 .want = HIE_EDENIED, .reason = "not bound to bob@b.test"},
		{.cert = "bob-wrongaddr", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test",
		 .use = HISP_USE_SIGN, .want = HIE_EDENIED, .reason = "not bound"},
		{.cert = "b-org", .domain = "a.test", .dir = HISP_INCOMING, .addr = "anyone@b.test", .use = HISP_USE_SIGN},
		{.cert = "b-org", .domain = "a.test", .dir = HISP_OUTGOING, .addr = "x@b.test", .use = HISP_USE_ENCRYPT},
		{.cert = "b-org", .domain = "a.test", .dir = HISP_INCOMING, .addr = "anyone@c.test", .use = HISP_USE_SIGN,
		 .want = HIE_EDENIED, .reason = "not bound"},
		{.cert = "bob-dnonly", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test",
		 .use = HISP_USE_SIGN, .want = HIE_EDENIED, .reason = "not bound"},
		{.cert = "bob-expired", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test",
		 .use = HISP_USE_SIGN, .want = HIE_EDENIED, .reason = "expired"},
		{.cert = "bob-rsa1024", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test",
		 .use = HISP_USE_SIGN, .want = HIE_EDENIED, .reason = "rsa key 1024 bits"},
		{.cert = "bob-sha1", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN,
		 .want = HIE_EDENIED, .reason = "sha1 signature"},
		{.cert = "bob-sha1", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN,
		 .sha1_ok = true},
		{.cert = "bob-revoked", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test",
		 .use = HISP_USE_SIGN, .want = HIE_EDENIED, .reason = "revoked"},
		{.cert = "bob-untrusted", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test",
		 .use = HISP_USE_SIGN, .want = HIE_EDENIED, .reason = "untrusted"},
		{.cert = "bob-sign", .domain = "a.test", .dir = HISP_OUTGOING, .addr = "bob@b.test",
		 .use = HISP_USE_ENCRYPT, .want = HIE_EDENIED, .reason = "key usage"},
		{.cert = "bob-sign", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN},
		{.cert = "bob-enc", .domain = "a.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN,
		 .want = HIE_EDENIED, .reason = "key usage"},
		{.cert = "bob-enc", .domain = "a.test", .dir = HISP_OUTGOING, .addr = "bob@b.test",
		 .use = HISP_USE_ENCRYPT},
		/* x.test trusts ca for incoming only */
		{.cert = "bob", .domain = "x.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN},
		{.cert = "bob", .domain = "x.test", .dir = HISP_OUTGOING, .addr = "bob@b.test", .use = HISP_USE_ENCRYPT,
		 .want = HIE_EDENIED, .reason = "untrusted: no anchor"},
		/* b.test is ours but has no anchors at all */
		{.cert = "bob", .domain = "b.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN,
		 .want = HIE_EDENIED, .reason = "untrusted"},
		/* z.test trusts only the intermediate (partial chain): carol yes, bob (issued by ca) no */
		{.cert = "carol", .domain = "z.test", .dir = HISP_INCOMING, .addr = "carol@b.test", .use = HISP_USE_SIGN},
		{.cert = "bob", .domain = "z.test", .dir = HISP_INCOMING, .addr = "bob@b.test", .use = HISP_USE_SIGN,
		 .want = HIE_EDENIED, .reason = "untrusted"},
		{.cert = "dave", .domain = "a.test", .dir = HISP_INCOMING, .addr = "dave@c.test", .use = HISP_USE_SIGN},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(&cases[i]);
	hie_err_t err = hisp_trust_check(TR, NULL, NULL, "a.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, NULL, 0);
	assert_int_equal(err, HIE_EINVAL);
	X509 *bob = load("bob");
	char r[64];
	assert_int_equal(hisp_trust_check(TR, bob, NULL, "a.test", HISP_INCOMING, "not an address", HISP_USE_SIGN, r, sizeof r),
			 HIE_EINVAL);
	X509_free(bob);
}

static void test_crl_cached(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	X509 *bob = load("bob"), *rev = load("bob-revoked");
	char reason[128];
	assert_int_equal(hisp_trust_check(TR, bob, NULL, "a.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					  sizeof reason),
			 HIE_OK);
	int before = hits("/ca.crl");
	assert_true(before >= 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_crl_cache WHERE url LIKE '%/ca.crl'", NULL), 1);
	/* a fresh checker (empty memory) still uses the database cache */
	struct hisp_trust_opts o = {.min_rsa_bits = 2048, .fetch_timeout_ms = 5000, .fetch_max = 1 << 20};
	struct hisp_trust *t2;
	assert_int_equal(hisp_trust_open(P, &o, &t2), HIE_OK);
	assert_int_equal(hisp_trust_check(t2, bob, NULL, "a.test", HISP_OUTGOING, "bob@b.test", HISP_USE_ENCRYPT, reason,
					  sizeof reason),
			 HIE_OK);
	assert_int_equal(hisp_trust_check(t2, rev, NULL, "a.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					  sizeof reason),
			 HIE_EDENIED);
	assert_string_equal(reason, "revoked");
	assert_int_equal(hits("/ca.crl"), before);
	hisp_trust_close(t2);
	X509_free(bob);
	X509_free(rev);
}

static char LOGS[8192];
static size_t LOGLEN;
static void sink(enum hie_log_level level, const char *line, size_t len)
{
	(void)level;
	if (LOGLEN + len < sizeof LOGS) {
		memcpy(LOGS + LOGLEN, line, len);
		LOGLEN += len;
		LOGS[LOGLEN] = '\0';
	}
}

static void test_crl_unreachable_soft(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	X509 *bob = load("bob"), *rev = load("bob-revoked");
	char reason[128];
	assert_int_equal(sql("DELETE FROM hisp_crl_cache"), HIE_OK);
	S.fail_crl = 1;
	LOGLEN = 0;
	LOGS[0] = '\0';
	hie_log_set_sink(sink);
	int before = hits("/ca.crl");
	hie_err_t e1 = hisp_trust_check(TR, bob, NULL, "a.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					sizeof reason);
	/* Direct RI behaviour: without its CRL even the revoked one passes (this is the documented soft-fail) */
	hie_err_t e2 = hisp_trust_check(TR, rev, NULL, "a.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					sizeof reason);
	hie_log_set_sink(NULL);
	S.fail_crl = 0;
	assert_int_equal(e1, HIE_OK);
	assert_int_equal(e2, HIE_OK);
	assert_true(hits("/ca.crl") > before);
	assert_non_null(strstr(LOGS, "event=hisp.trust.crl_unavailable"));
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_crl_cache", NULL), 0);
	/* reachable again: revoked again */
	assert_int_equal(hisp_trust_check(TR, rev, NULL, "a.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					  sizeof reason),
			 HIE_EDENIED);
	assert_string_equal(reason, "revoked");
	X509_free(bob);
	X509_free(rev);
}

static void test_aia_fetch_and_cache(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hisp_trust_opts o = {.min_rsa_bits = 2048, .fetch_timeout_ms = 5000, .fetch_max = 1 << 20};
	struct hisp_trust *t;
	assert_int_equal(hisp_trust_open(P, &o, &t), HIE_OK);
	X509 *carol = load("carol");
	char reason[128] = "";
	int before = hits("/inter.der");
	assert_int_equal(hisp_trust_check(t, carol, NULL, "a.test", HISP_INCOMING, "carol@b.test", HISP_USE_SIGN, reason,
					  sizeof reason),
			 HIE_OK);
	assert_int_equal(hits("/inter.der"), before + 1);
	assert_true(hits("/inter.crl") >= 1); /* carol's CRL: from inter's distribution point */
	assert_int_equal(hisp_trust_check(t, carol, NULL, "a.test", HISP_OUTGOING, "carol@b.test", HISP_USE_ENCRYPT,
					  reason, sizeof reason),
			 HIE_OK);
	assert_int_equal(hits("/inter.der"), before + 1); /* memory cache */
	hisp_trust_close(t);

	/* the intermediate given by the caller: no AIA download */
	assert_int_equal(hisp_trust_open(P, &o, &t), HIE_OK);
	STACK_OF(X509) *extra = sk_X509_new_null();
	sk_X509_push(extra, load("inter"));
	sk_X509_push(extra, load("other-ca"));
	assert_int_equal(hisp_trust_check(t, carol, extra, "a.test", HISP_INCOMING, "carol@b.test", HISP_USE_SIGN,
					  reason, sizeof reason),
			 HIE_OK);
	assert_int_equal(hits("/inter.der"), before + 1);
	assert_int_equal(sk_X509_num(extra), 2); /* the caller's stack is left as it was */
	sk_X509_pop_free(extra, X509_free);

	/* AIA unreachable: no chain */
	char a[256], b[256];
	snprintf(a, sizeof a, "%s/www/inter.der", PKI);
	snprintf(b, sizeof b, "%s/www/inter.der.off", PKI);
	assert_int_equal(rename(a, b), 0);
	struct hisp_trust *t3;
	assert_int_equal(hisp_trust_open(P, &o, &t3), HIE_OK);
	assert_int_equal(hisp_trust_check(t3, carol, NULL, "a.test", HISP_INCOMING, "carol@b.test", HISP_USE_SIGN,
					  reason, sizeof reason),
			 HIE_EDENIED);
	assert_non_null(strstr(reason, "untrusted"));
	assert_int_equal(rename(b, a), 0);
	hisp_trust_close(t3);
	hisp_trust_close(t);
	X509_free(carol);
}

static void test_invalidate_reload(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	X509 *bob = load("bob");
	char reason[128];
	assert_int_equal(hisp_trust_check(TR, bob, NULL, "y.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					  sizeof reason),
			 HIE_OK);
	assert_int_equal(sql("DELETE FROM hisp_anchors WHERE domain = 'y.test'"), HIE_OK);
	hisp_trust_invalidate(TR);
	assert_int_equal(hisp_trust_check(TR, bob, NULL, "y.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					  sizeof reason),
			 HIE_EDENIED);
	assert_string_equal(reason, "untrusted: no anchor");
	add_anchor("y.test", "both", "ca");
	/* without invalidate: the count/max(id) check notices within 2 s */
	sleep(3);
	assert_int_equal(hisp_trust_check(TR, bob, NULL, "y.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					  sizeof reason),
			 HIE_OK);
	X509_free(bob);
}

/* Concurrent checks from several threads (job workers do this). */
static void *checker(void *arg)
{
	(void)arg;
	X509 *bob = load("bob"), *carol = load("carol");
	char reason[128];
	long bad = 0;
	for (int i = 0; i < 10; i++) {
		bad += hisp_trust_check(TR, bob, NULL, "a.test", HISP_INCOMING, "bob@b.test", HISP_USE_SIGN, reason,
					sizeof reason) != HIE_OK;
		bad += hisp_trust_check(TR, carol, NULL, "a.test", HISP_OUTGOING, "carol@b.test", HISP_USE_ENCRYPT,
					reason, sizeof reason) != HIE_OK;
		if (i == 5)
			hisp_trust_invalidate(TR);
	}
	X509_free(bob);
	X509_free(carol);
	return (void *)bad;
}

static void test_threads(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, checker, NULL), 0);
	for (int i = 0; i < 3; i++) {
		void *r;
		pthread_join(th[i], &r);
		assert_int_equal((long)r, 0);
	}
}

/* --- keys ------------------------------------------------------------------------------------------------ */

static int cli_cert(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
		    const char *a6)
{
	char *argv[8] = {(char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5, (char *)a6, NULL};
	int argc = 0;
	while (argc < 7 && argv[argc])
		argc++;
	FILE *out = fopen("/dev/null", "w"), *err = stderr;
	struct hisp_cli c = {.pool = P, .state_dir = STATE, .out = out, .err = err};
	int rc = hisp_cli_cert(&c, argc, argv);
	fclose(out);
	return rc;
}

static void import(const char *flag, const char *owner, const char *name, bool key)
{
	char cert[128], k[128];
	snprintf(cert, sizeof cert, "%s/%s.pem", PKI, name);
	snprintf(k, sizeof k, "%s/%s.key", PKI, name);
	int rc = key ? cli_cert("import", flag, owner, "--cert", cert, "--key", k)
		     : cli_cert("import", flag, owner, "--cert", cert, NULL, NULL);
	if (rc != 0)
		fail_msg("import %s: exit %d", name, rc);
}

static bool same(X509 *a, const char *name)
{
	X509 *b = load(name);
	bool eq = X509_cmp(a, b) == 0;
	X509_free(b);
	return eq;
}

static void test_keys_find_order(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	import("--domain", "b.test", "b-org", true); /* imported first: lower id, still listed after address-bound */
	import("--address", "bob@b.test", "bob", true);
	import("--address", "bob@b.test", "bob-sign", true);
	import("--address", "bob@b.test", "bob-enc", true);
	import("--address", "bob@b.test", "bob-expired", true);
	import("--address", "dave@c.test", "dave", false); /* partner */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_addresses WHERE address = 'bob@b.test'", NULL), 1);

	struct hisp_keys *k;
	assert_int_equal(hisp_keys_open(P, STATE, &k), HIE_OK);
	struct hisp_keypair *kp;
	size_t n;
	assert_int_equal(hisp_keys_find(k, "Bob@B.test", HISP_USE_SIGN, &kp, &n), HIE_OK);
	assert_int_equal(n, 3);
	assert_true(same(kp[0].cert, "bob"));
	assert_true(same(kp[1].cert, "bob-sign"));
	assert_true(same(kp[2].cert, "b-org"));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(X509_check_private_key(kp[i].cert, kp[i].key), 1);
	hisp_keypairs_free(kp, n);

	assert_int_equal(hisp_keys_find(k, "bob@b.test", HISP_USE_ENCRYPT, &kp, &n), HIE_OK);
	assert_int_equal(n, 3);
	assert_true(same(kp[0].cert, "bob"));
	assert_true(same(kp[1].cert, "bob-enc"));
	assert_true(same(kp[2].cert, "b-org"));
	hisp_keypairs_free(kp, n);

	assert_int_equal(hisp_keys_find(k, "someone@b.test", HISP_USE_SIGN, &kp, &n), HIE_OK);
	assert_int_equal(n, 1);
	assert_true(same(kp[0].cert, "b-org"));
	hisp_keypairs_free(kp, n);
	assert_int_equal(hisp_keys_find(k, "dave@c.test", HISP_USE_SIGN, &kp, &n), HIE_ENOTFOUND); /* partner: no key */
	assert_int_equal(hisp_keys_find(k, "bad address", HISP_USE_SIGN, &kp, &n), HIE_EINVAL);

	/* files: directory 0700, key 0600 */
	struct stat st;
	char path[256];
	snprintf(path, sizeof path, "%s/keys", STATE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c, "SELECT key_file, fingerprint FROM hisp_certs WHERE owner = 'b.test'", 0, NULL, &r),
			 HIE_OK);
	snprintf(path, sizeof path, "%s/keys/%s", STATE, PQgetvalue(r, 0, 0));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char fp[80];
	snprintf(fp, sizeof fp, "%s.pem", PQgetvalue(r, 0, 1));
	assert_string_equal(PQgetvalue(r, 0, 0), fp);
	PQclear(r);

	/* partner certificates, address-bound first */
	STACK_OF(X509) *sk;
	assert_int_equal(hisp_keys_partner_certs(k, c, "dave@c.test", &sk), HIE_OK);
	assert_int_equal(sk_X509_num(sk), 1);
	sk_X509_pop_free(sk, X509_free);
	assert_int_equal(hisp_keys_partner_certs(k, NULL, "bob@b.test", &sk), HIE_OK);
	assert_int_equal(sk_X509_num(sk), 0);
	sk_X509_pop_free(sk, X509_free);
	hie_db_release(P, c, false);

	/* removal: the key file goes, and the cache notices (count changed) after its 2 s */
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c,
				     "SELECT fingerprint, key_file FROM hisp_certs WHERE owner = 'bob@b.test' AND usage = 'sign'",
				     0, NULL, &r),
			 HIE_OK);
	char rmfp[80];
	snprintf(rmfp, sizeof rmfp, "%s", PQgetvalue(r, 0, 0));
	snprintf(path, sizeof path, "%s/keys/%s", STATE, PQgetvalue(r, 0, 1));
	PQclear(r);
	hie_db_release(P, c, false);
	assert_int_equal(cli_cert("remove", rmfp, NULL, NULL, NULL, NULL, NULL), 0);
	assert_int_not_equal(stat(path, &st), 0);
	sleep(3);
	assert_int_equal(hisp_keys_find(k, "bob@b.test", HISP_USE_SIGN, &kp, &n), HIE_OK);
	assert_int_equal(n, 2);
	assert_true(same(kp[0].cert, "bob"));
	assert_true(same(kp[1].cert, "b-org"));
	hisp_keypairs_free(kp, n);
	hisp_keys_close(k);
}

/* --- bundles --------------------------------------------------------------------------------------------- */

static void test_bundle_parse(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	X509 *dave = load("dave"), *alice = load("alice");
	const struct {
		const char *file;
		X509 *signer;
		hie_err_t want;
		int n;
	} cases[] = {
		{"bundle.p7b", NULL, HIE_OK, 2},
		{"bundle-pem.p7b", NULL, HIE_OK, 2},
		{"ca-bundle.pem", NULL, HIE_OK, 2},
		{"ca.der", NULL, HIE_OK, 1},
		{"bundle.p7m", dave, HIE_OK, 2},
		{"bundle-pem.p7m", dave, HIE_OK, 2},
		{"bundle.p7m", alice, HIE_EDENIED, 0},
		{"bundle.p7m", NULL, HIE_OK, 2}, /* no signer configured: integrity only */
		{"bundle.p7b", dave, HIE_EDENIED, 0},
		{"ca-bundle.pem", dave, HIE_EDENIED, 0},
		{"garbage.bin", NULL, HIE_EPARSE, 0},
		{"ca.key", NULL, HIE_ENOTFOUND, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len;
		unsigned char *d = slurp(cases[i].file, &len);
		STACK_OF(X509) *sk = NULL;
		hie_err_t err = hisp_bundle_parse(d, len, cases[i].signer, &sk);
		if (err != cases[i].want)
			fail_msg("%s: got %s want %s", cases[i].file, hie_errname(err), hie_errname(cases[i].want));
		if (!err) {
			assert_int_equal(sk_X509_num(sk), cases[i].n);
			/* the p7m's own signer certificate is never an anchor */
			for (int k = 0; k < sk_X509_num(sk); k++)
				assert_int_not_equal(X509_cmp(sk_X509_value(sk, k), dave), 0);
		} else {
			assert_null(sk);
		}
		sk_X509_pop_free(sk, X509_free);
	}
	/* truncated DER */
	size_t len;
	unsigned char *d = slurp("bundle.p7b", &len);
	STACK_OF(X509) *sk = NULL;
	assert_int_equal(hisp_bundle_parse(d, len / 2, NULL, &sk), HIE_EPARSE);
	assert_int_equal(hisp_bundle_parse(d, 0, NULL, &sk), HIE_EPARSE);
	X509_free(dave);
	X509_free(alice);
}

static long long add_bundle(const char *domain, const char *file, const char *signer)
{
	char q[1024];
	X509 *s = signer ? load(signer) : NULL;
	unsigned char *der = NULL;
	int dlen = s ? i2d_X509(s, &der) : 0;
	snprintf(q, sizeof q, "http://127.0.0.1:%d/%s", S.port, file);
	const char *v[] = {domain, q, (const char *)der};
	const int l[] = {0, 0, dlen};
	const int f[] = {0, 0, 1};
	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec_bin(c,
					 "INSERT INTO hisp_bundles (domain, url, signer_der, direction) VALUES ($1, $2, $3,"
					 " 'incoming') RETURNING id::text",
					 3, v, l, f, 0, &r),
			 HIE_OK);
	long long id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	hie_db_release(P, c, false);
	OPENSSL_free(der);
	X509_free(s);
	return id;
}

static long long bundle_anchors(long long id)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	return pgtest_scalar(P, "SELECT count(*) FROM hisp_anchors WHERE bundle_id = $1::bigint", ids);
}

static void test_bundle_refresh_all_or_nothing(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char reason[256], www[256], keep[256];
	assert_int_equal(sql("INSERT INTO hisp_domains (name) VALUES ('w.test')"), HIE_OK);
	long long id = add_bundle("w.test", "bundle.p7b", NULL);
	assert_int_equal(hisp_bundle_refresh(TR, id, reason, sizeof reason), HIE_OK);
	assert_string_equal(reason, "2 anchors");
	assert_int_equal(bundle_anchors(id), 2);
	/* the new anchors work (refresh invalidated the cache) */
	X509 *carol = load("carol");
	assert_int_equal(hisp_trust_check(TR, carol, NULL, "w.test", HISP_INCOMING, "carol@b.test", HISP_USE_SIGN,
					  reason, sizeof reason),
			 HIE_OK);
	/* again: replaced, not doubled */
	assert_int_equal(hisp_bundle_refresh(TR, id, reason, sizeof reason), HIE_OK);
	assert_int_equal(bundle_anchors(id), 2);

	/* a bad bundle keeps the old anchors and records why */
	snprintf(www, sizeof www, "%s/www/bundle.p7b", PKI);
	snprintf(keep, sizeof keep, "%s/www/bundle.p7b.good", PKI);
	assert_int_equal(rename(www, keep), 0);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "cp %s/garbage.bin %s", PKI, www);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(hisp_bundle_refresh(TR, id, reason, sizeof reason), HIE_EPARSE);
	assert_int_equal(bundle_anchors(id), 2);
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_bundles WHERE id = $1::bigint AND last_error IS NOT NULL"
				       " AND anchors = 2 AND last_fetch >= last_ok",
				       ids),
			 1);
	/* a missing file (404): the same */
	assert_int_equal(unlink(www), 0);
	assert_int_equal(hisp_bundle_refresh(TR, id, reason, sizeof reason), HIE_EIO);
	assert_non_null(strstr(reason, "download failed"));
	assert_int_equal(bundle_anchors(id), 2);
	assert_int_equal(rename(keep, www), 0);
	assert_int_equal(hisp_bundle_refresh(TR, id, reason, sizeof reason), HIE_OK);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_bundles WHERE id = $1::bigint AND last_error IS NULL", ids),
			 1);

	/* signed bundle: right signer, wrong signer */
	long long good = add_bundle("w.test", "bundle.p7m", "dave");
	assert_int_equal(hisp_bundle_refresh(TR, good, reason, sizeof reason), HIE_OK);
	assert_int_equal(bundle_anchors(good), 2);
	assert_int_equal(sql("UPDATE hisp_bundles SET signer_der = (SELECT der FROM hisp_anchors LIMIT 1) WHERE id = (SELECT max(id) FROM hisp_bundles)"),
			 HIE_OK);
	assert_int_equal(hisp_bundle_refresh(TR, good, reason, sizeof reason), HIE_EDENIED);
	assert_int_equal(bundle_anchors(good), 2);
	assert_int_equal(hisp_bundle_refresh(TR, 999999, reason, sizeof reason), HIE_ENOTFOUND);
	X509_free(carol);
}

static void test_bundle_job(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char ids[24], err[256] = "";
	assert_int_equal(sql("INSERT INTO hisp_domains (name) VALUES ('v.test')"), HIE_OK);
	long long id = add_bundle("v.test", "bundle.p7b", NULL);
	snprintf(ids, sizeof ids, "%lld", id);
	struct hisp h = {.pool = P, .trust = TR};
	struct hie_job job = {.id = 1, .payload = ids, .attempts = 1, .max_attempts = 3};
	assert_int_equal(hisp_bundle_job(&job, &h, err, sizeof err), HIE_OK);
	assert_int_equal(bundle_anchors(id), 2);
	const char *q = "SELECT count(*) FROM jobs WHERE kind = 'hisp.bundle' AND payload = $1 AND dedup_key LIKE"
			" 'bundle:' || $1 || ':%' AND run_at > now() + interval '23 hours'";
	assert_int_equal(pgtest_scalar(P, q, ids), 1);
	assert_int_equal(hisp_bundle_job(&job, &h, err, sizeof err), HIE_OK); /* run twice: one next run */
	assert_int_equal(pgtest_scalar(P, q, ids), 1);

	/* failing, not yet the last attempt: nothing queued; the last attempt queues the next period */
	assert_int_equal(sql("UPDATE hisp_bundles SET url = url || '.missing', refresh_hours = 48 WHERE domain = 'v.test'"),
			 HIE_OK);
	assert_int_not_equal(hisp_bundle_job(&job, &h, err, sizeof err), HIE_OK);
	assert_non_null(strstr(err, "download failed"));
	const char *q48 = "SELECT count(*) FROM jobs WHERE kind = 'hisp.bundle' AND payload = $1"
			  " AND run_at > now() + interval '47 hours'";
	assert_int_equal(pgtest_scalar(P, q48, ids), 0);
	job.attempts = 3;
	assert_int_not_equal(hisp_bundle_job(&job, &h, err, sizeof err), HIE_OK);
	assert_int_equal(pgtest_scalar(P, q48, ids), 1);
	assert_int_equal(bundle_anchors(id), 2);

	struct hie_job bad = {.id = 2, .payload = "12x", .attempts = 1, .max_attempts = 3};
	assert_int_equal(hisp_bundle_job(&bad, &h, err, sizeof err), HIE_EPERMANENT);
	struct hie_job gone = {.id = 3, .payload = "987654", .attempts = 1, .max_attempts = 3};
	assert_int_equal(hisp_bundle_job(&gone, &h, err, sizeof err), HIE_EPERMANENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_rules_table, setup),
		cmocka_unit_test_setup(test_crl_cached, setup),
		cmocka_unit_test_setup(test_crl_unreachable_soft, setup),
		cmocka_unit_test_setup(test_aia_fetch_and_cache, setup),
		cmocka_unit_test_setup(test_invalidate_reload, setup),
		cmocka_unit_test_setup(test_threads, setup),
		cmocka_unit_test_setup(test_keys_find_order, setup),
		cmocka_unit_test_setup(test_bundle_parse, setup),
		cmocka_unit_test_setup(test_bundle_refresh_all_or_nothing, setup),
		cmocka_unit_test_setup(test_bundle_job, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
