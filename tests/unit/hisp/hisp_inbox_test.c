/*
 * hisp_inbox_test.c — the SMTP receiver's database side on a real PostgreSQL (pgtest.h; core jobs + hisp
 * schemas): RCPT answers for our addresses, address- and org-bound certificates with keys, partners'
 * certificates and unknown addresses, the 5 s cache, 451 on a database that cannot be reached; the store
 * writing the hisp_inbound row and the hisp.receive job in one transaction (a failing job insert leaves no
 * row), and raw bytes (NUL, 8-bit, CR/LF) round-tripping exactly.
 */
#include "tests/unit/core/pgtest.h" /* first: it sets _XOPEN_SOURCE for nftw */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_db.h"
#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_smtp_in.h"
#include "hisp/hisp_svc.h"

static struct pgtest T;
static struct hie_db_pool *P;
static int wakes;

/* The lead's hisp_service.c defines hisp_wake; this stands in when it is not linked. */
__attribute__((weak)) void hisp_wake(struct hisp *h)
{
	(void)h;
	wakes++;
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
	static const char *const sql[] = {
		"INSERT INTO hisp_domains (name) VALUES ('a.test'), ('b.test')",
		"INSERT INTO hisp_addresses (address, domain) VALUES ('alice@a.test', 'a.test')",
		"INSERT INTO hisp_certs (owner, bound, usage, der, fingerprint, key_file, not_before, not_after) VALUES"
		" ('carol@c.test', 'address', 'both', '\\x30', 'f1', 'carol.key', now(), now() + '1 year'),"
		" ('b.test', 'domain', 'both', '\\x30', 'f2', 'b.key', now(), now() + '1 year'),"
		" ('dave@d.test', 'address', 'both', '\\x30', 'f3', NULL, now(), now() + '1 year'),"
		" ('e.test', 'domain', 'both', '\\x30', 'f4', NULL, now(), now() + '1 year'),"
		" ('f.test', 'domain', 'both', '\\x30', 'f5', 'f.key', now(), now() + '1 year')",
	};
	for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++)
		if (pgtest_exec(P, sql[i]) != HIE_OK)
			return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	hisp_inbox_cache_clear();
	return 0;
}

static void test_rcpt(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hisp h = {.pool = P};
	static const struct {
		const char *addr;
		int want;
	} cases[] = {
		{"alice@a.test", 250},   /* hisp_addresses */
		{"Alice@A.TEST", 250},   /* compared lower-cased */
		{"nobody@a.test", 550},  /* our domain, no such address, no org-bound key */
		{"anyone@b.test", 250},  /* org-bound certificate with key on our domain b.test */
		{"carol@c.test", 250},   /* address-bound certificate with key */
		{"dave@d.test", 550},    /* a partner's certificate (no key) */
		{"x@e.test", 550},       /* a partner's org-bound certificate */
		{"x@f.test", 550},       /* org-bound key, but f.test is not one of our domains */
		{"b.test", 550},         /* a domain is not an address */
		{"not an address", 550},
		{"", 550},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = hisp_inbox_rcpt(&h, cases[i].addr);
		if (got != cases[i].want)
			fail_msg("'%s': %d, want %d", cases[i].addr, got, cases[i].want);
	}
	/* Asked again (from the cache), the same answers. */
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(hisp_inbox_rcpt(&h, cases[i].addr), cases[i].want);
}

static void test_rcpt_cache(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hisp h = {.pool = P};
	assert_int_equal(hisp_inbox_rcpt(&h, "late@a.test"), 550);
	assert_int_equal(pgtest_exec(P, "INSERT INTO hisp_addresses (address, domain)"
				      " VALUES ('late@a.test', 'a.test')"),
			 HIE_OK);
	/* The negative answer is cached (5 s), so the new address is not seen yet ... */
	assert_int_equal(hisp_inbox_rcpt(&h, "late@a.test"), 550);
	/* ... and the cache is per service: another struct hisp asks the database. */
	struct hisp h2 = {.pool = P};
	assert_int_equal(hisp_inbox_rcpt(&h2, "late@a.test"), 250);
	hisp_inbox_cache_clear();
	assert_int_equal(hisp_inbox_rcpt(&h, "late@a.test"), 250);
	/* A positive answer is cached too. */
	assert_int_equal(pgtest_exec(P, "DELETE FROM hisp_addresses WHERE address = 'late@a.test'"), HIE_OK);
	assert_int_equal(hisp_inbox_rcpt(&h, "late@a.test"), 250);
	hisp_inbox_cache_clear();
	assert_int_equal(hisp_inbox_rcpt(&h, "late@a.test"), 550);
}

static void test_rcpt_db_down(void **state)
{
	(void)state;
	struct hie_db_pool *bad;
	struct hie_db_opts o = {.conninfo = "host=127.0.0.1 port=1 dbname=x connect_timeout=2",
				.size = 1,
				.acquire_timeout_ms = 2000};
	assert_int_equal(hie_db_pool_open(&bad, &o), HIE_OK);
	struct hisp h = {.pool = bad};
	assert_int_equal(hisp_inbox_rcpt(&h, "alice@a.test"), 451);
	/* Not cached: still 451, and not a cached 550 either. */
	assert_int_equal(hisp_inbox_rcpt(&h, "alice@a.test"), 451);
	char id[HISP_SMTP_ID_MAX];
	const char *rcpts[] = {"alice@a.test"};
	struct hisp_envelope env = {.peer = "127.0.0.1", .helo = "c", .mail_from = "", .rcpts = rcpts, .nrcpts = 1};
	assert_int_not_equal(hisp_inbox_store(&h, &env, "x", 1, id, sizeof id), HIE_OK);
	assert_string_equal(id, "");
	hie_db_pool_close(bad);
	assert_int_equal(hisp_inbox_rcpt(NULL, "alice@a.test"), 451);
}

/* Reads raw of one hisp_inbound row as binary. */
static char *raw_of(long long id, size_t *len)
{
	PGconn *c;
	PGresult *r;
	char ids[32];
	snprintf(ids, sizeof ids, "%lld", id);
	const char *v[] = {ids};
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec_bin(c, "SELECT raw FROM hisp_inbound WHERE id = $1::bigint", 1, v, NULL, NULL,
					 1, &r),
			 HIE_OK);
	assert_int_equal(PQntuples(r), 1);
	*len = (size_t)PQgetlength(r, 0, 0);
	char *out = malloc(*len + 1);
	memcpy(out, PQgetvalue(r, 0, 0), *len);
	PQclear(r);
	hie_db_release(P, c, false);
	return out;
}

static long long id_of(const char *text)
{
	assert_true(strncmp(text, "in-", 3) == 0);
	char *end;
	long long id = strtoll(text + 3, &end, 10);
	assert_true(*end == '\0' && id > 0);
	return id;
}

static void test_store(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hisp h = {.pool = P};
	static const char raw[] = "Subject: x\r\n\r\n\0binary\xff\x80\x01\r\n.\r\n\"{}\\ end\n";
	const size_t rawlen = sizeof raw - 1;
	const char *rcpts[] = {"alice@a.test", "o'b{x},y\"z\\@b.test"};
	struct hisp_envelope env = {.peer = "127.0.0.1", .helo = "client.test", .mail_from = "s@b.test",
				    .rcpts = rcpts, .nrcpts = 2, .tls = true};
	char id[HISP_SMTP_ID_MAX];
	int wakes_before = wakes;
	assert_int_equal(hisp_inbox_store(&h, &env, raw, rawlen, id, sizeof id), HIE_OK);
	long long n = id_of(id);
	char ids[32];
	snprintf(ids, sizeof ids, "%lld", n);

	size_t len;
	char *got = raw_of(n, &len);
	assert_int_equal(len, rawlen);
	assert_memory_equal(got, raw, rawlen);
	free(got);

	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_inbound WHERE id = $1::bigint AND peer = '127.0.0.1'"
				       " AND helo = 'client.test' AND mail_from = 's@b.test' AND state = 'received'"
				       " AND rcpt_to = ARRAY['alice@a.test', 'o''b{x},y\"z\\@b.test']",
				       ids),
			 1);
	char dedup[48];
	snprintf(dedup, sizeof dedup, "inbound:%lld", n);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM jobs WHERE kind = 'hisp.receive' AND state = 'queued'"
				       " AND payload = split_part($1, ':', 2) AND dedup_key = $1",
				       dedup),
			 1);
	/* The weak stand-in counts; the real hisp_wake (if linked) does not. */
	assert_true(wakes == wakes_before || wakes == wakes_before + 1);

	/* An empty message and the null sender. */
	const char *one[] = {"alice@a.test"};
	struct hisp_envelope env2 = {.peer = "::1", .helo = "", .mail_from = "", .rcpts = one, .nrcpts = 1};
	assert_int_equal(hisp_inbox_store(&h, &env2, "", 0, id, sizeof id), HIE_OK);
	long long n2 = id_of(id);
	assert_true(n2 > n);
	got = raw_of(n2, &len);
	assert_int_equal(len, 0);
	free(got);
	/* Bad arguments. */
	assert_int_equal(hisp_inbox_store(&h, &env2, NULL, 5, id, sizeof id), HIE_EINVAL);
	assert_int_equal(hisp_inbox_store(&h, NULL, "x", 1, id, sizeof id), HIE_EINVAL);
	assert_int_equal(hisp_inbox_store(&h, &env2, "x", 1, id, 0), HIE_EINVAL);
}

static void test_store_atomic(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hisp h = {.pool = P};
	/* The job insert fails: the row must not stay either. */
	assert_int_equal(pgtest_exec(P, "CREATE FUNCTION no_jobs() RETURNS trigger LANGUAGE plpgsql AS"
				      " $$BEGIN RAISE EXCEPTION 'no jobs today'; END$$"),
			 HIE_OK);
	assert_int_equal(pgtest_exec(P, "CREATE TRIGGER no_jobs BEFORE INSERT ON jobs"
				      " FOR EACH ROW EXECUTE FUNCTION no_jobs()"),
			 HIE_OK);
	long long rows = pgtest_scalar(P, "SELECT count(*) FROM hisp_inbound", NULL);
	long long jobs = pgtest_scalar(P, "SELECT count(*) FROM jobs", NULL);
	const char *one[] = {"alice@a.test"};
	struct hisp_envelope env = {.peer = "127.0.0.1", .helo = "c", .mail_from = "s@b.test", .rcpts = one,
				    .nrcpts = 1};
	char id[HISP_SMTP_ID_MAX];
	assert_int_not_equal(hisp_inbox_store(&h, &env, "x\r\n", 3, id, sizeof id), HIE_OK);
	assert_string_equal(id, "");
	assert_int_equal(pgtest_exec(P, "DROP TRIGGER no_jobs ON jobs"), HIE_OK);
	assert_int_equal(pgtest_exec(P, "DROP FUNCTION no_jobs()"), HIE_OK);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_inbound", NULL), rows);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs", NULL), jobs);
	/* And once jobs can be written again, both are. */
	assert_int_equal(hisp_inbox_store(&h, &env, "x\r\n", 3, id, sizeof id), HIE_OK);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_inbound", NULL), rows + 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs", NULL), jobs + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_rcpt, setup),
		cmocka_unit_test_setup(test_rcpt_cache, setup),
		cmocka_unit_test_setup(test_rcpt_db_down, setup),
		cmocka_unit_test_setup(test_store, setup),
		cmocka_unit_test_setup(test_store_atomic, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
