/*
 * hisp_cli_admin_test.c — the operator commands (hisp_cli_domain/cert/trust/route) called with argv arrays
 * against a real embedded PostgreSQL and the test PKI (mkpki.sh), output captured with open_memstream.
 *
 * One table of steps run in order (later steps rely on earlier ones): each gives the command, its argv
 * ("%P" stands for the PKI directory), the exit status wanted (0 done, 1 failed, 2 bad arguments) and text
 * that must appear on out and on err (a bad argument's message must name the flag or value). Then the
 * database and key files are checked directly where the output cannot show it.
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/core_jobs.h"
#include "hisp/hisp.h"

static struct pgtest T;
static struct hie_db_pool *P;
static char PKI[64], STATE[64];
static char *OUT, *ERR;

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

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {hisp_migrations, hisp_migrations_count}};
	if (pgtest_open(&T, 1, schema, 2, &P) != 0) /* one connection, as the one-shot commands have */
		return -1;
	if (T.skip)
		return 0;
	snprintf(PKI, sizeof PKI, "/tmp/hcliXXXXXX");
	snprintf(STATE, sizeof STATE, "/tmp/hclistateXXXXXX");
	if (!mkdtemp(PKI) || !mkdtemp(STATE))
		return -1;
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "set -e; '%s/tests/fixtures/direct/mkpki.sh' %s 2>/dev/null; cd %s;"
		 "openssl pkey -in dave.key -traditional -out dave-trad.key;"
		 "openssl pkey -in carol.key -outform DER -out carol-key.der;"
		 "openssl pkey -in alice.key -aes128 -passout pass:secret -out alice-enc.key;"
		 "head -c 200 /dev/urandom > garbage.bin",
		 src_root(), PKI, PKI);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	free(OUT);
	free(ERR);
	if (PKI[0] && !getenv("PGTEST_KEEP")) {
		char cmd[256];
		snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", PKI, STATE);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

enum cmd { DOMAIN, CERT, TRUST, ROUTE };
typedef int (*cli_fn)(const struct hisp_cli *, int, char **);

/* Runs one command; OUT and ERR hold what it printed. */
static int run(enum cmd which, const char *const *args)
{
	static const cli_fn fns[] = {hisp_cli_domain, hisp_cli_cert, hisp_cli_trust, hisp_cli_route};
	char bufs[12][512];
	char *argv[13] = {0};
	int argc = 0;
	for (; args[argc] && argc < 12; argc++) {
		const char *a = args[argc], *pp = strstr(a, "%P");
		if (pp)
			snprintf(bufs[argc], sizeof bufs[argc], "%.*s%s%s", (int)(pp - a), a, PKI, pp + 2);
		else
			snprintf(bufs[argc], sizeof bufs[argc], "%s", a);
		argv[argc] = bufs[argc];
	}
	free(OUT);
	free(ERR);
	size_t on, en;
	FILE *out = open_memstream(&OUT, &on), *err = open_memstream(&ERR, &en);
	struct hisp_cli c = {.pool = P, .cfg = NULL, .state_dir = STATE, .out = out, .err = err};
	int rc = fns[which](&c, argc, argv);
	fclose(out);
	fclose(err);
	return rc;
}

struct step {
	enum cmd cmd;
	const char *argv[12];
	int rc;
	const char *out; /* substring of out */
	const char *err; /* substring of err */
};

static void run_steps(const struct step *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = run(s[i].cmd, s[i].argv);
		if (rc != s[i].rc || (s[i].out && !strstr(OUT, s[i].out)) || (s[i].err && !strstr(ERR, s[i].err)))
			fail_msg("step %zu (%s %s): exit %d want %d\nout: %s\nerr: %s\nwanted out '%s' err '%s'", i,
				 s[i].argv[0] ? s[i].argv[0] : "", s[i].argv[1] ? s[i].argv[1] : "", rc, s[i].rc, OUT, ERR,
				 s[i].out ? s[i].out : "", s[i].err ? s[i].err : "");
	}
}

static void test_domain(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	const struct step steps[] = {
		{DOMAIN, {NULL}, 2, NULL, "missing verb"},
		{DOMAIN, {"frob"}, 2, NULL, "unknown verb 'frob'"},
		{DOMAIN, {"list"}, 0, "(no domains)", NULL},
		{DOMAIN, {"add", "Example.ORG"}, 0, "added domain=example.org", NULL},
		{DOMAIN, {"add", "example.org"}, 0, "exists domain=example.org", NULL},
		{DOMAIN, {"add", "bad domain!"}, 2, NULL, "bad domain!: not a domain name"},
		{DOMAIN, {"add", "a@b.test"}, 2, NULL, "a@b.test: not a domain name"},
		{DOMAIN, {"add", "a.test", "b.test"}, 2, NULL, "b.test: unexpected argument"},
		{DOMAIN, {"add"}, 2, NULL, "usage"},
		{DOMAIN, {"add", "--force", "x.test"}, 2, NULL, "--force: unknown option"},
		{DOMAIN, {"list"}, 0, "domain=example.org addresses=0 keys=0 anchors=0 bundles=0", NULL},
		{DOMAIN, {"policy", "partner.test"}, 0, "policy domain=partner.test cipher=default", NULL},
		{DOMAIN, {"policy", "partner.test", "--cipher", "aes256-gcm"}, 0,
		 "cipher=aes256-gcm key_transport=default digest=default", NULL},
		{DOMAIN, {"policy", "partner.test", "--digest=sha384", "--key-transport", "rsa-pkcs1"}, 0,
		 "cipher=aes256-gcm key_transport=rsa-pkcs1 digest=sha384", NULL},
		{DOMAIN, {"policy", "partner.test", "--cipher", "default"}, 0,
		 "cipher=default key_transport=rsa-pkcs1 digest=sha384", NULL},
		{DOMAIN, {"policy", "partner.test", "--cipher", "des-ede3-cbc"}, 2, NULL, "--cipher: expected"},
		{DOMAIN, {"policy", "partner.test", "--digest", "sha1"}, 2, NULL, "--digest: expected"},
		{DOMAIN, {"policy", "partner.test", "--key-transport", "rsa"}, 2, NULL, "--key-transport: expected"},
		{DOMAIN, {"policy", "partner.test", "--cipher"}, 2, NULL, "--cipher: needs a value"},
		{DOMAIN, {"policy", "partner.test", "--cipher", "aes128-cbc", "--cipher", "aes128-cbc"}, 2, NULL,
		 "--cipher: given twice"},
		{DOMAIN, {"policy", "partner.test", "--bogus", "1"}, 2, NULL, "--bogus: unknown option"},
		{DOMAIN, {"address", "add", "Bob@Example.org"}, 0, "added address=bob@example.org", NULL},
		{DOMAIN, {"address", "add", "bob@example.org"}, 0, "exists address=bob@example.org", NULL},
		{DOMAIN, {"address", "add", "x@nope.test"}, 1, NULL, "nope.test is not one of our domains"},
		{DOMAIN, {"address", "add", "no-at-sign"}, 2, NULL, "no-at-sign: not a Direct address"},
		{DOMAIN, {"address", "list"}, 0, "address=bob@example.org domain=example.org keys=0", NULL},
		{DOMAIN, {"address", "list", "other.test"}, 0, "(no addresses)", NULL},
		{DOMAIN, {"address", "remove", "bob@example.org"}, 0, "removed address=bob@example.org", NULL},
		{DOMAIN, {"address", "remove", "bob@example.org"}, 1, NULL, "not one of our addresses"},
		{DOMAIN, {"address", "frob"}, 2, NULL, "unknown verb 'frob'"},
		{DOMAIN, {"remove", "nope.test"}, 1, NULL, "nope.test: not one of our domains"},
		{DOMAIN, {"remove", "example.org"}, 0, "removed domain=example.org", NULL},
		{DOMAIN, {"list"}, 0, "(no domains)", NULL},
	};
	run_steps(steps, sizeof steps / sizeof steps[0]);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_policies WHERE domain = 'partner.test' AND cipher IS NULL"
					  " AND digest = 'sha384'", NULL),
			 1);
}

static void test_cert(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	const struct step steps[] = {
		{CERT, {NULL}, 2, NULL, "missing verb"},
		{CERT, {"import", "--address", "alice@a.test", "--cert", "%P/alice.pem", "--key", "%P/alice.key"}, 1, NULL,
		 "--key: a.test is not one of our domains"},
		{DOMAIN, {"add", "a.test"}, 0, NULL, NULL},
		{DOMAIN, {"add", "b.test"}, 0, NULL, NULL},
		{CERT, {"import", "--address", "alice@a.test", "--cert", "%P/alice.pem", "--key", "%P/alice.key"}, 0,
		 "imported owner=alice@a.test bound=address usage=both kind=ours fingerprint=", NULL},
		{CERT, {"import", "--address", "alice@a.test", "--cert", "%P/alice.pem", "--key", "%P/alice.key"}, 1, NULL,
		 "already imported"},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/alice.pem"}, 2, NULL,
		 "--cert: not bound to bob@b.test"},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob-dnonly.pem"}, 2, NULL, "--cert: not bound"},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/b-org.pem"}, 2, NULL, "--cert: not bound"},
		{CERT, {"import", "--domain", "a.test", "--cert", "%P/b-org.pem"}, 2, NULL, "--cert: not bound to a.test"},
		{CERT, {"import", "--domain", "b.test", "--cert", "%P/b-org.pem"}, 0,
		 "owner=b.test bound=domain usage=both kind=partner", NULL},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob-sign.pem", "--key", "%P/bob-sign.key"}, 0,
		 "usage=sign kind=ours", NULL},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob-enc.pem"}, 0, "usage=encrypt kind=partner",
		 NULL},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob.pem", "--usage", "sign"}, 0, "usage=sign",
		 NULL},
		{CERT, {"import", "--address", "bob@b.test", "--domain", "b.test", "--cert", "%P/bob.pem"}, 2, NULL,
		 "--address/--domain: exactly one"},
		{CERT, {"import", "--address", "bob@b.test"}, 2, NULL, "--cert: required"},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob.pem", "--usage", "maybe"}, 2, NULL,
		 "--usage: expected sign, encrypt or both"},
		{CERT, {"import", "--address", "not-an-address", "--cert", "%P/bob.pem"}, 2, NULL, "--address: not a Direct"},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob-rsa1024.pem", "--key", "%P/bob.key"}, 2,
		 NULL, "does not match the certificate"},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/nonexistent.pem"}, 1, NULL,
		 "--cert: "},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/garbage.bin"}, 2, NULL,
		 "not a certificate (PEM or DER)"},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob-rsa1024.pem", "--key", "%P/garbage.bin"}, 2,
		 NULL, "--key: "},
		{CERT, {"import", "--address", "alice@a.test", "--cert", "%P/alice.pem", "--key", "%P/alice-enc.key"}, 2,
		 NULL, "encrypted keys are not supported"},
		{CERT, {"import", "--address", "carol@b.test", "--cert", "%P/carol.der", "--key", "%P/carol-key.der"}, 0,
		 "owner=carol@b.test bound=address usage=both kind=ours", NULL},
		{DOMAIN, {"add", "c.test"}, 0, NULL, NULL},
		{CERT, {"import", "--address", "dave@c.test", "--cert", "%P/dave.der", "--key", "%P/dave-trad.key"}, 0,
		 "kind=ours", NULL},
		{CERT, {"import", "--address", "bob@b.test", "--cert", "%P/bob-expired.pem"}, 0, "kind=partner",
		 "expired"},
		{CERT, {"list"}, 0, "owner=alice@a.test bound=address usage=both kind=ours not_after=", NULL},
		{CERT, {"list", "b.test"}, 0, "owner=b.test bound=domain", NULL},
		{CERT, {"list", "nobody@x.test"}, 0, "(no certificates)", NULL},
		{CERT, {"list", "bad value"}, 2, NULL, "bad value: not an address or a domain"},
		{CERT, {"remove", "xyz"}, 2, NULL, "xyz: not a SHA-256 fingerprint"},
		{CERT, {"remove", "0000000000000000000000000000000000000000000000000000000000000000"}, 1, NULL,
		 "no such certificate"},
		{CERT, {"frob"}, 2, NULL, "unknown verb 'frob'"},
	};
	run_steps(steps, sizeof steps / sizeof steps[0]);
	/* the key mismatch message: the step above only checked the flag */
	const char *mismatch[] = {"import", "--address", "bob@b.test", "--cert", "%P/bob.pem", "--key", "%P/alice.key", NULL};
	assert_int_equal(run(CERT, mismatch), 2);
	assert_non_null(strstr(ERR, "--key: "));
	assert_non_null(strstr(ERR, "does not match the certificate"));

	/* our address rows come with our address-bound certificates */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_addresses WHERE address IN"
					  " ('alice@a.test', 'carol@b.test', 'dave@c.test', 'bob@b.test')", NULL),
			 4);
	/* list with an address shows its domain-bound certificates too, not other addresses' */
	const char *lb[] = {"list", "bob@b.test", NULL};
	assert_int_equal(run(CERT, lb), 0);
	assert_non_null(strstr(OUT, "owner=b.test"));
	assert_null(strstr(OUT, "carol@b.test"));

	/* remove: the row and the key file */
	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c, "SELECT fingerprint, key_file FROM hisp_certs WHERE owner = 'alice@a.test'", 0,
				     NULL, &r),
			 HIE_OK);
	char fp[80], path[256];
	snprintf(fp, sizeof fp, "%s", PQgetvalue(r, 0, 0));
	snprintf(path, sizeof path, "%s/keys/%s", STATE, PQgetvalue(r, 0, 1));
	PQclear(r);
	hie_db_release(P, c, false);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char upper[80];
	for (size_t i = 0; i <= strlen(fp); i++)
		upper[i] = (char)(fp[i] >= 'a' && fp[i] <= 'f' ? fp[i] - 32 : fp[i]);
	const char *rm[] = {"remove", upper, NULL};
	assert_int_equal(run(CERT, rm), 0);
	assert_non_null(strstr(OUT, "key=deleted"));
	assert_int_not_equal(stat(path, &st), 0);
	assert_int_equal(run(CERT, rm), 1);

	/* failed imports left no key file behind: one file per row with a key */
	char keys[128];
	snprintf(keys, sizeof keys, "%s/keys", STATE);
	long long before = pgtest_scalar(P, "SELECT count(*) FROM hisp_certs WHERE key_file IS NOT NULL", NULL);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq %lld", keys, before);
	assert_int_equal(system(cmd), 0);
}

static void test_trust(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	const struct step steps[] = {
		{TRUST, {NULL}, 2, NULL, "missing verb"},
		{DOMAIN, {"add", "t.test"}, 0, NULL, NULL},
		{TRUST, {"list"}, 0, "(no anchors)", NULL},
		{TRUST, {"add", "--domain", "t.test", "--anchor", "%P/ca-bundle.pem"}, 0,
		 "added domain=t.test direction=both fingerprint=", NULL},
		{TRUST, {"add", "--domain", "t.test", "--anchor", "%P/ca.der", "--direction", "incoming"}, 0,
		 "added domain=t.test direction=incoming", NULL},
		{TRUST, {"add", "--domain", "t.test", "--anchor", "%P/ca.pem"}, 0, "exists domain=t.test", NULL},
		{TRUST, {"add", "--domain", "t.test", "--anchor", "%P/bob.pem"}, 2, NULL,
		 "--anchor: certificate 1 (CN=bob,O=hienode test) is neither a CA"},
		{TRUST, {"add", "--domain", "t.test", "--anchor", "%P/garbage.bin"}, 2, NULL, "--anchor: "},
		{TRUST, {"add", "--domain", "nope.test", "--anchor", "%P/ca.pem"}, 1, NULL,
		 "--domain: nope.test is not one of our domains"},
		{TRUST, {"add", "--domain", "t.test", "--anchor", "%P/ca.pem", "--direction", "sideways"}, 2, NULL,
		 "--direction: expected incoming, outgoing or both"},
		{TRUST, {"add", "--anchor", "%P/ca.pem"}, 2, NULL, "--domain: required"},
		{TRUST, {"add", "--domain", "t.test"}, 2, NULL, "--anchor: required"},
		{TRUST, {"list", "--domain", "t.test"}, 0, "domain=t.test direction=both source=manual not_after=", NULL},
		{TRUST, {"list", "--domain", "bad domain"}, 2, NULL, "--domain: not a domain name"},
		{TRUST, {"remove", "--domain", "t.test", "abc"}, 2, NULL, "abc: not a SHA-256"},
		{TRUST, {"remove", "t.test"}, 2, NULL, "--domain: required"},
		{TRUST, {"bundle"}, 2, NULL, "missing verb"},
		{TRUST, {"bundle", "list"}, 0, "(no bundles)", NULL},
		{TRUST, {"bundle", "add", "--domain", "t.test", "--url", "ftp://x.test/b.p7b"}, 2, NULL, "--url: expected"},
		{TRUST, {"bundle", "add", "--domain", "t.test", "--url", "http://x.test/a b"}, 2, NULL, "--url: expected"},
		{TRUST, {"bundle", "add", "--domain", "t.test", "--url", "http://127.0.0.1:1/b.p7b", "--refresh", "0"}, 2,
		 NULL, "--refresh: expected hours"},
		{TRUST, {"bundle", "add", "--domain", "t.test", "--url", "http://127.0.0.1:1/b.p7b", "--signer",
			 "%P/garbage.bin"},
		 2, NULL, "--signer: "},
		{TRUST, {"bundle", "add", "--domain", "nope.test", "--url", "http://127.0.0.1:1/b.p7b"}, 1, NULL,
		 "nope.test is not one of our domains"},
		{TRUST, {"bundle", "add", "--domain", "t.test", "--url", "http://127.0.0.1:1/b.p7b", "--signer",
			 "%P/dave.pem", "--refresh", "12", "--direction", "outgoing"},
		 0, "added bundle id=1 domain=t.test direction=outgoing refresh_hours=12", NULL},
		{TRUST, {"bundle", "add", "--domain", "t.test", "--url", "http://127.0.0.1:1/b.p7b"}, 1, NULL,
		 "already exists for t.test (id 1)"},
		{TRUST, {"bundle", "list"}, 0, "id=1 domain=t.test direction=outgoing refresh_hours=12 anchors=0", NULL},
		{TRUST, {"bundle", "refresh", "1"}, 1, NULL, "bundle 1: download failed"},
		{TRUST, {"bundle", "list"}, 0, "last_error=\"download failed", NULL},
		{TRUST, {"bundle", "refresh", "99"}, 1, NULL, "99: no such bundle"},
		{TRUST, {"bundle", "refresh", "abc"}, 2, NULL, "abc: not a bundle id"},
		{TRUST, {"bundle", "frob"}, 2, NULL, "unknown verb 'frob'"},
	};
	run_steps(steps, sizeof steps / sizeof steps[0]);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind = 'hisp.bundle' AND payload = '1'"
					  " AND state = 'queued' AND dedup_key LIKE 'bundle:1:%'", NULL),
			 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_bundles WHERE signer_der IS NOT NULL", NULL), 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_anchors WHERE domain = 't.test'", NULL), 3);

	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c, "SELECT fingerprint FROM hisp_anchors WHERE subject LIKE 'CN=Test Direct Root%' LIMIT 1",
				     0, NULL, &r),
			 HIE_OK);
	char fp[80];
	snprintf(fp, sizeof fp, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	hie_db_release(P, c, false);
	const char *rm[] = {"remove", "--domain", "t.test", fp, NULL};
	assert_int_equal(run(TRUST, rm), 0);
	assert_non_null(strstr(OUT, "rows=2")); /* both directions */
	assert_int_equal(run(TRUST, rm), 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_anchors WHERE domain = 't.test'", NULL), 1);
}

static void test_route(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	const struct step steps[] = {
		{ROUTE, {NULL}, 2, NULL, "missing verb"},
		{ROUTE, {"list"}, 0, "(no routes)", NULL},
		{ROUTE, {"add", "B.test", "mx.b.test:25"}, 0, "route domain=b.test next_hop=mx.b.test:25", NULL},
		{ROUTE, {"add", "b.test", "127.0.0.1:2526"}, 0, "next_hop=127.0.0.1:2526", NULL},
		{ROUTE, {"add", "c.test", "[::1]:2525"}, 0, "next_hop=[::1]:2525", NULL},
		{ROUTE, {"add", "b.test", "host:99999"}, 2, NULL, "host:99999: expected HOST:PORT"},
		{ROUTE, {"add", "b.test", "hostonly"}, 2, NULL, "hostonly: expected HOST:PORT"},
		{ROUTE, {"add", "b.test"}, 2, NULL, "usage"},
		{ROUTE, {"add", "bad domain", "h:1"}, 2, NULL, "bad domain: not a domain name"},
		{ROUTE, {"list"}, 0, "route domain=b.test next_hop=127.0.0.1:2526\nroute domain=c.test next_hop=[::1]:2525",
		 NULL},
		{ROUTE, {"remove", "b.test"}, 0, "removed route domain=b.test", NULL},
		{ROUTE, {"remove", "b.test"}, 1, NULL, "b.test: no route"},
		{ROUTE, {"frob"}, 2, NULL, "unknown verb 'frob'"},
	};
	run_steps(steps, sizeof steps / sizeof steps[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_cert),
		cmocka_unit_test(test_trust),
		cmocka_unit_test(test_route),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
