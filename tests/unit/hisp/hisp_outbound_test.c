/*
 * hisp_outbound_test.c — hisp_outbound_submit on a real PostgreSQL (pgtest.h; core jobs + hisp schema):
 * rows, recipients (distinct, lower-cased), jobs (hisp.send now, hisp.timeout after the MDN timeout, none
 * for notices), idempotence on the Message-ID, refused arguments, and a rollback leaving nothing.
 */
#define _XOPEN_SOURCE 700 /* nftw in pgtest.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_outbound.h"
#include "tests/unit/core/pgtest.h"

static struct pgtest T;
static struct hie_db_pool *P;

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {hisp_migrations, hisp_migrations_count}};
	return pgtest_open(&T, 2, schema, 2, &P);
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	return 0;
}

struct submit {
	const char *kind, *sender, *msgid;
	const char *const *rcpts;
	size_t nrcpts;
	const char *raw;
	size_t len;
	bool want_final;
	long long mdn_ms;
	long long id;
	hie_err_t err;
	bool rollback;
};

static hie_err_t submit_fn(PGconn *tx, void *arg)
{
	struct submit *s = arg;
	s->err = hisp_outbound_submit(tx, s->kind, s->sender, s->rcpts, s->nrcpts, s->raw, s->len, s->msgid,
				      s->want_final, s->mdn_ms, &s->id);
	if (s->err)
		return s->err;
	return s->rollback ? HIE_EINVAL : HIE_OK;
}

static const char raw[] = "From: alice@a.test\r\nTo: bob@b.test\r\n\r\nbinary \x00\xff body\r\n";

static long long q(const char *sql, long long id)
{
	char p[32];
	snprintf(p, sizeof p, "%lld", id);
	return pgtest_scalar(P, sql, p);
}

static void test_submit_message(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const char *const rcpts[] = {"Bob@B.test", "carol@b.test", "bob@b.test", "dave@C.TEST"};
	struct submit s = {.kind = "message", .sender = "Alice@A.test", .msgid = "m1@a.test", .rcpts = rcpts,
			   .nrcpts = 4, .raw = raw, .len = sizeof raw - 1, .want_final = true, .mdn_ms = 3600000};
	assert_int_equal(hie_db_tx(P, submit_fn, &s), HIE_OK);
	assert_true(s.id > 0);
	long long id = s.id;
	assert_int_equal(q("SELECT count(*) FROM hisp_outbound WHERE id = $1::bigint AND kind = 'message'"
			   " AND sender = 'alice@a.test' AND want_final AND message_id = 'm1@a.test'",
			   id),
			 1);
	/* raw stored byte for byte (NUL and 0xff included) */
	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	char ids[32];
	snprintf(ids, sizeof ids, "%lld", id);
	const char *pv[] = {ids};
	assert_int_equal(hie_db_exec_bin(c, "SELECT raw FROM hisp_outbound WHERE id = $1::bigint", 1, pv, NULL, NULL, 1,
					 &r),
			 HIE_OK);
	assert_int_equal(PQgetlength(r, 0, 0), sizeof raw - 1);
	assert_memory_equal(PQgetvalue(r, 0, 0), raw, sizeof raw - 1);
	PQclear(r);
	hie_db_release(P, c, false);
	/* deadline ≈ now + 1 h */
	assert_int_equal(q("SELECT count(*) FROM hisp_outbound WHERE id = $1::bigint AND deadline"
			   " BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'",
			   id),
			 1);
	/* distinct, lower-cased, pending */
	assert_int_equal(q("SELECT count(*) FROM hisp_outbound_rcpt WHERE outbound_id = $1::bigint AND state = 'pending'",
			   id),
			 3);
	assert_int_equal(q("SELECT count(*) FROM hisp_outbound_rcpt WHERE outbound_id = $1::bigint"
			   " AND address IN ('bob@b.test', 'carol@b.test', 'dave@c.test')",
			   id),
			 3);
	/* jobs: send now, timeout after the MDN timeout */
	assert_int_equal(q("SELECT count(*) FROM jobs WHERE kind = 'hisp.send' AND payload = $1::bigint::text"
			   " AND dedup_key = 'send:' || $1 AND run_at <= now()",
			   id),
			 1);
	assert_int_equal(q("SELECT count(*) FROM jobs WHERE kind = 'hisp.timeout' AND payload = $1::bigint::text"
			   " AND dedup_key = 'timeout:' || $1"
			   " AND run_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'",
			   id),
			 1);

	/* the same Message-ID again: a no-op returning the first id, whatever else differs */
	static const char *const other[] = {"eve@e.test"};
	struct submit again = {.kind = "message", .sender = "alice@a.test", .msgid = "m1@a.test", .rcpts = other,
			       .nrcpts = 1, .raw = "x", .len = 1, .mdn_ms = 1000};
	assert_int_equal(hie_db_tx(P, submit_fn, &again), HIE_OK);
	assert_int_equal(again.id, id);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound", NULL), 1);
	assert_int_equal(q("SELECT count(*) FROM hisp_outbound_rcpt WHERE outbound_id = $1::bigint", id), 3);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs WHERE kind LIKE 'hisp.%'", NULL), 2);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound_rcpt WHERE address = 'eve@e.test'", NULL),
			 0);
}

static void test_submit_notice(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const char *const rcpts[] = {"alice@a.test"};
	const char *kinds[] = {"mdn", "dsn"};
	for (int i = 0; i < 2; i++) {
		char mid[32];
		snprintf(mid, sizeof mid, "n%d@b.test", i);
		struct submit s = {.kind = kinds[i], .sender = "bob@b.test", .msgid = mid, .rcpts = rcpts, .nrcpts = 1,
				   .raw = raw, .len = sizeof raw - 1, .mdn_ms = 3600000};
		assert_int_equal(hie_db_tx(P, submit_fn, &s), HIE_OK);
		/* no deadline, no timeout job: nobody waits for a notice about a notice */
		assert_int_equal(q("SELECT count(*) FROM hisp_outbound WHERE id = $1::bigint AND deadline IS NULL", s.id), 1);
		assert_int_equal(q("SELECT count(*) FROM jobs WHERE kind = 'hisp.timeout' AND payload = $1::bigint::text",
				   s.id),
				 0);
		assert_int_equal(q("SELECT count(*) FROM jobs WHERE kind = 'hisp.send' AND payload = $1::bigint::text",
				   s.id),
				 1);
	}
}

static void test_rollback_leaves_nothing(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const char *const rcpts[] = {"bob@b.test"};
	long long before = pgtest_scalar(P, "SELECT count(*) FROM jobs", NULL);
	struct submit s = {.kind = "message", .sender = "alice@a.test", .msgid = "rolled@a.test", .rcpts = rcpts,
			   .nrcpts = 1, .raw = raw, .len = sizeof raw - 1, .mdn_ms = 1000, .rollback = true};
	assert_int_equal(hie_db_tx(P, submit_fn, &s), HIE_EINVAL);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE message_id = 'rolled@a.test'", NULL),
			 0);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM jobs", NULL), before);
}

static void test_refused(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const char *const ok[] = {"bob@b.test"};
	static const char *const bad[] = {"bob@b.test\r\nx"};
	static const char *const nul[] = {NULL};
	const struct submit cases[] = {
		{.kind = "fax", .sender = "a@a.test", .msgid = "r1@a", .rcpts = ok, .nrcpts = 1},
		{.kind = "message", .sender = "not an address", .msgid = "r2@a", .rcpts = ok, .nrcpts = 1},
		{.kind = "message", .sender = "a@a.test", .msgid = "r3@a", .rcpts = bad, .nrcpts = 1},
		{.kind = "message", .sender = "a@a.test", .msgid = "r4@a", .rcpts = nul, .nrcpts = 1},
		{.kind = "message", .sender = "a@a.test", .msgid = "r5@a", .rcpts = ok, .nrcpts = 0},
		{.kind = "message", .sender = "a@a.test", .msgid = "<r6@a>", .rcpts = ok, .nrcpts = 1},
		{.kind = "message", .sender = "a@a.test", .msgid = "r7@a\r\n", .rcpts = ok, .nrcpts = 1},
		{.kind = "message", .sender = "a@a.test", .msgid = "", .rcpts = ok, .nrcpts = 1},
		{.kind = "message", .sender = "a@a.test", .msgid = "r9@a", .rcpts = ok, .nrcpts = 1, .mdn_ms = -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct submit s = cases[i];
		s.raw = raw;
		s.len = sizeof raw - 1;
		if (hie_db_tx(P, submit_fn, &s) != HIE_EINVAL || s.err != HIE_EINVAL)
			fail_msg("case %zu accepted", i);
	}
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_outbound WHERE message_id LIKE 'r%@a%'", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_submit_message),
		cmocka_unit_test(test_submit_notice),
		cmocka_unit_test(test_rollback_leaves_nothing),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
