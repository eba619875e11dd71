/*
 * core_db_test.c — pool, transactions and migrations against a real embedded PostgreSQL cluster.
 */
#include "tests/unit/core/pgtest.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_log.h"

static struct pgtest T;
static struct hie_db_pool *P; /* shared pool, size 4 */

static int group_setup(void **state)
{
	(void)state;
	return pgtest_open(&T, 4, NULL, 0, &P);
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	return 0;
}

/* Runs SQL on the shared pool and returns the first value as an integer (-1 on any failure). */
static long long scalar(const char *sql)
{
	return pgtest_scalar(P, sql, NULL);
}

static void exec_ok(const char *sql)
{
	assert_int_equal(pgtest_exec(P, sql), HIE_OK);
}

static long long backend_pid(PGconn *c)
{
	PGresult *r;
	long long v = -1;
	assert_int_equal(hie_db_exec(c, "SELECT pg_backend_pid()", 0, NULL, &r), HIE_OK);
	assert_int_equal(hie_db_get_ll(r, 0, 0, &v), HIE_OK);
	PQclear(r);
	return v;
}

static void terminate(long long pid)
{
	char sql[96];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)::int", pid);
	assert_int_equal(scalar(sql), 1);
	/* Wait (bounded) until the backend is really gone, so the test does not race the server. */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld", pid);
	for (int i = 0; i < 200 && scalar(sql) != 0; i++)
		usleep(10000);
}

/* Pool ------------------------------------------------------------------------------------------------------ */

static void test_pool_basics_and_app_name(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	PGconn *c;
	PGresult *r;
	assert_int_equal(hie_db_acquire(P, 1000, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c, "SELECT current_setting('application_name'), current_setting('statement_timeout')",
				     0, NULL, &r),
			 HIE_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "hienode");
	assert_string_equal(PQgetvalue(r, 0, 1), "30s");
	PQclear(r);
	/* Parameters travel separately from the SQL text (PQexecParams): no injection through them. */
	const char *p[] = {"x'); DROP TABLE pg_class; --", NULL};
	assert_int_equal(hie_db_exec(c, "SELECT $1::text, $2::text IS NULL", 2, p, &r), HIE_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), p[0]);
	assert_string_equal(PQgetvalue(r, 0, 1), "t");
	PQclear(r);
	hie_db_release(P, c, false);
	assert_int_equal(hie_db_ping(P, 2000), HIE_OK);
	assert_int_equal(hie_db_exec(NULL, "SELECT 1", 0, NULL, NULL), HIE_EINVAL);
}

static void test_pool_acquire_timeout(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_db_pool *p1;
	struct hie_db_stats st;
	PGconn *a, *b;
	assert_int_equal(pgtest_pool(&T, 1, 0, &p1), HIE_OK);
	assert_int_equal(hie_db_acquire(p1, 1000, &a), HIE_OK);
	assert_int_equal(hie_db_acquire(p1, 50, &b), HIE_EBUSY);
	assert_null(b);
	assert_int_equal(hie_db_acquire(p1, 0, &b), HIE_EBUSY);
	hie_db_stats(p1, &st);
	assert_int_equal(st.size, 1);
	assert_int_equal(st.in_use, 1);
	assert_int_equal(st.timeouts, 2);
	assert_int_equal(st.waits, 2);
	/* The ping of /healthz also gives up rather than waiting behind a busy pool. */
	assert_int_equal(hie_db_ping(p1, 50), HIE_EBUSY);
	hie_db_release(p1, a, false);
	assert_int_equal(hie_db_acquire(p1, 0, &b), HIE_OK);
	assert_ptr_equal(a, b); /* the same persistent connection */
	hie_db_release(p1, b, false);
	hie_db_stats(p1, &st);
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.reconnects, 1);
	hie_db_pool_close(p1);
}

struct waiter {
	struct hie_db_pool *pool;
	hie_err_t err;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	PGconn *c;
	w->err = hie_db_acquire(w->pool, 10000, &c);
	if (!w->err)
		hie_db_release(w->pool, c, false);
	return NULL;
}

static void test_pool_waiter_gets_released_connection(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_db_pool *p1;
	struct hie_db_stats st;
	PGconn *a;
	pthread_t th;
	assert_int_equal(pgtest_pool(&T, 1, 0, &p1), HIE_OK);
	assert_int_equal(hie_db_acquire(p1, 1000, &a), HIE_OK);
	struct waiter w = {.pool = p1, .err = HIE_EINVAL};
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	for (int i = 0; i < 500; i++) { /* until the waiter is blocked in acquire */
		hie_db_stats(p1, &st);
		if (st.waits || i == 499)
			break;
		usleep(2000);
	}
	hie_db_release(p1, a, false);
	pthread_join(th, NULL);
	assert_int_equal(w.err, HIE_OK);
	hie_db_pool_close(p1);
}

static void test_pool_recovers_killed_backend(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_db_pool *p1;
	struct hie_db_stats st;
	PGconn *c;
	assert_int_equal(pgtest_pool(&T, 1, 0, &p1), HIE_OK);
	assert_int_equal(hie_db_acquire(p1, 1000, &c), HIE_OK);
	long long pid1 = backend_pid(c);
	hie_db_release(p1, c, false);

	/* Killed while idle in the pool: acquire notices and hands out a fresh connection. */
	terminate(pid1);
	assert_int_equal(hie_db_acquire(p1, 1000, &c), HIE_OK);
	long long pid2 = backend_pid(c);
	assert_true(pid2 != pid1);
	hie_db_release(p1, c, false);

	/* Killed while lent out: the query fails, release sees the dead link, the next acquire reconnects. */
	assert_int_equal(hie_db_acquire(p1, 1000, &c), HIE_OK);
	terminate(pid2);
	assert_int_equal(hie_db_exec(c, "SELECT 1", 0, NULL, NULL), HIE_EDB);
	assert_true(strncmp(hie_db_sqlstate(), "57P", 3) == 0 || strcmp(hie_db_sqlstate(), "08006") == 0);
	hie_db_release(p1, c, false);
	hie_db_stats(p1, &st);
	assert_int_equal(st.broken, 1);
	assert_int_equal(hie_db_acquire(p1, 1000, &c), HIE_OK);
	assert_true(backend_pid(c) != pid2);
	hie_db_release(p1, c, false);

	/* The caller may declare a connection broken. */
	assert_int_equal(hie_db_acquire(p1, 1000, &c), HIE_OK);
	hie_db_release(p1, c, true);
	hie_db_stats(p1, &st);
	assert_int_equal(st.broken, 1);
	assert_int_equal(hie_db_ping(p1, 2000), HIE_OK);
	hie_db_stats(p1, &st);
	assert_int_equal(st.broken, 0);
	assert_int_equal(st.reconnects, 4);
	hie_db_pool_close(p1);
}

static void test_pool_bad_conninfo(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_db_pool *p1;
	PGconn *c;
	char ci[600];
	snprintf(ci, sizeof ci, "host=%s/nonexistent dbname=hienode connect_timeout=1", T.dir);
	struct hie_db_opts o = {.conninfo = ci, .size = 2, .connect_at_open = true};
	assert_int_equal(hie_db_pool_open(&p1, &o), HIE_EDB);
	o.connect_at_open = false;
	assert_int_equal(hie_db_pool_open(&p1, &o), HIE_OK);
	assert_int_equal(hie_db_acquire(p1, 100, &c), HIE_EDB);
	assert_int_equal(hie_db_acquire(p1, 100, &c), HIE_EDB); /* the slot was given back */
	assert_int_equal(hie_db_ping(p1, 100), HIE_EDB);
	hie_db_pool_close(p1);
	o.conninfo = NULL;
	assert_int_equal(hie_db_pool_open(&p1, &o), HIE_EINVAL);
}

static void test_exec_error_mapping(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_db_pool *p1;
	PGconn *c;
	PGresult *r = (PGresult *)1;
	exec_ok("CREATE TABLE IF NOT EXISTS uniq (k text PRIMARY KEY)");
	exec_ok("TRUNCATE uniq");
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	const char *p[] = {"secret-value"};
	assert_int_equal(hie_db_exec(c, "INSERT INTO uniq VALUES ($1)", 1, p, NULL), HIE_OK);
	assert_int_equal(hie_db_exec(c, "INSERT INTO uniq VALUES ($1)", 1, p, &r), HIE_EEXIST);
	assert_null(r);
	assert_string_equal(hie_db_sqlstate(), "23505");
	assert_int_equal(hie_db_exec(c, "SELEC 1", 0, NULL, NULL), HIE_EDB);
	assert_string_equal(hie_db_sqlstate(), "42601");
	assert_int_equal(hie_db_exec(c, "SELECT $1::int", 1, p, NULL), HIE_EDB);
	assert_string_equal(hie_db_sqlstate(), "22P02");
	hie_db_release(P, c, false);

	/* statement_timeout from the options. */
	assert_int_equal(pgtest_pool(&T, 1, 100, &p1), HIE_OK);
	assert_int_equal(hie_db_acquire(p1, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c, "SELECT pg_sleep(2)", 0, NULL, NULL), HIE_ETIMEOUT);
	assert_string_equal(hie_db_sqlstate(), "57014");
	hie_db_release(p1, c, false);
	hie_db_pool_close(p1);
}

static void test_get_ll_hostile(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const struct {
		const char *sql;
		hie_err_t err;
		long long v;
	} cases[] = {
		{.sql = "SELECT '42'", .err = HIE_OK, .v = 42},
		{.sql = "SELECT '-9223372036854775808'", .err = HIE_OK, .v = (-9223372036854775807LL - 1)},
		{.sql = "SELECT '9223372036854775808'", .err = HIE_EINVAL},
		{.sql = "SELECT ''", .err = HIE_EINVAL},
		{.sql = "SELECT '12abc'", .err = HIE_EINVAL},
		{.sql = "SELECT NULL", .err = HIE_EINVAL},
		{.sql = "SELECT 1 WHERE false", .err = HIE_EINVAL},
	};
	PGconn *c;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		PGresult *r;
		long long v = 7;
		assert_int_equal(hie_db_exec(c, cases[i].sql, 0, NULL, &r), HIE_OK);
		assert_int_equal(hie_db_get_ll(r, 0, 0, &v), cases[i].err);
		if (!cases[i].err)
			assert_true(v == cases[i].v);
		assert_int_equal(hie_db_get_ll(r, 0, 5, &v), HIE_EINVAL);
		PQclear(r);
	}
	hie_db_release(P, c, false);
}

/* Transactions ----------------------------------------------------------------------------------------------- */

struct txarg {
	int calls;
	int fail_times;           /* raise `sqlstate` on the first fail_times calls */
	const char *sqlstate;
	hie_err_t ret;            /* returned by fn after its insert */
	bool ignore_error;        /* run a failing statement and still return OK */
	bool kill_self_first;     /* terminate our own backend on the first call */
	long long *pid_out;
};

static hie_err_t tx_fn(PGconn *c, void *arg)
{
	struct txarg *a = arg;
	char sql[200];
	hie_err_t err;
	a->calls++;
	if (a->kill_self_first && a->calls == 1)
		return hie_db_exec(c, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, NULL);
	if (a->calls <= a->fail_times) {
		snprintf(sql, sizeof sql, "DO $$BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '%s'; END$$",
			 a->sqlstate);
		err = hie_db_exec(c, sql, 0, NULL, NULL);
		if (err)
			return err;
	}
	err = hie_db_exec(c, "INSERT INTO txt (n) VALUES (1)", 0, NULL, NULL);
	if (err)
		return err;
	if (a->ignore_error) {
		(void)hie_db_exec(c, "SELECT 1/0", 0, NULL, NULL);
		return HIE_OK;
	}
	return a->ret;
}

static void txt_reset(void)
{
	exec_ok("CREATE TABLE IF NOT EXISTS txt (n int)");
	exec_ok("TRUNCATE txt");
}

static void test_tx_commit_and_rollback(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	txt_reset();
	struct txarg a = {0};
	assert_int_equal(hie_db_tx(P, tx_fn, &a), HIE_OK);
	assert_int_equal(scalar("SELECT count(*) FROM txt"), 1);
	struct txarg b = {.ret = HIE_EINVAL};
	assert_int_equal(hie_db_tx(P, tx_fn, &b), HIE_EINVAL);
	assert_int_equal(b.calls, 1); /* an application error is not retried */
	assert_int_equal(scalar("SELECT count(*) FROM txt"), 1);
	/* fn swallowed an error: the server turns COMMIT into ROLLBACK and we must not report success. */
	struct txarg c = {.ignore_error = true};
	assert_int_equal(hie_db_tx(P, tx_fn, &c), HIE_EDB);
	assert_int_equal(scalar("SELECT count(*) FROM txt"), 1);
	/* No connection is left inside a transaction. */
	struct hie_db_stats st;
	hie_db_stats(P, &st);
	assert_int_equal(st.in_use, 0);
}

static void test_tx_retry_serialization_and_deadlock(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const struct {
		const char *sqlstate;
		int fail_times;
		hie_err_t err;
		int calls;
		int rows;
	} cases[] = {
		{.sqlstate = "40001", .fail_times = 2, .err = HIE_OK, .calls = 3, .rows = 1},
		{.sqlstate = "40P01", .fail_times = 1, .err = HIE_OK, .calls = 2, .rows = 1},
		{.sqlstate = "40001", .fail_times = 100, .err = HIE_EDB, .calls = 5, .rows = 0},
		{.sqlstate = "23505", .fail_times = 1, .err = HIE_EEXIST, .calls = 1, .rows = 0},
		{.sqlstate = "22012", .fail_times = 1, .err = HIE_EDB, .calls = 1, .rows = 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		txt_reset();
		struct txarg a = {.sqlstate = cases[i].sqlstate, .fail_times = cases[i].fail_times};
		assert_int_equal(hie_db_tx(P, tx_fn, &a), cases[i].err);
		assert_int_equal(a.calls, cases[i].calls);
		assert_int_equal(scalar("SELECT count(*) FROM txt"), cases[i].rows);
	}
}

static void test_tx_retry_connection_lost_before_commit(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	txt_reset();
	struct txarg a = {.kill_self_first = true};
	assert_int_equal(hie_db_tx(P, tx_fn, &a), HIE_OK);
	assert_int_equal(a.calls, 2);
	assert_int_equal(scalar("SELECT count(*) FROM txt"), 1);
}

static hie_err_t txc_fn(PGconn *c, void *arg)
{
	int *calls = arg;
	(*calls)++;
	return hie_db_exec(c, "INSERT INTO txc VALUES (1)", 0, NULL, NULL);
}

/* The connection dies while COMMIT is being processed (a deferred trigger terminates its own backend at
 * commit time): the outcome is unknown to the client, so the function must not be run again. */
static void test_tx_connection_lost_during_commit_not_retried(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	exec_ok("CREATE TABLE IF NOT EXISTS txc (n int)");
	exec_ok("CREATE OR REPLACE FUNCTION txc_die() RETURNS trigger LANGUAGE plpgsql AS"
		" $$BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(1); RETURN NULL; END$$");
	exec_ok("DROP TRIGGER IF EXISTS txc_die ON txc");
	exec_ok("CREATE CONSTRAINT TRIGGER txc_die AFTER INSERT ON txc DEFERRABLE INITIALLY DEFERRED"
		" FOR EACH ROW EXECUTE FUNCTION txc_die()");
	int calls = 0;
	assert_int_equal(hie_db_tx(P, txc_fn, &calls), HIE_EDB);
	assert_int_equal(calls, 1);
	assert_string_equal(hie_db_sqlstate(), "08006");
	exec_ok("DROP TABLE txc");
}

static void test_release_inside_transaction_rolls_back(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	txt_reset();
	PGconn *c;
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c, "BEGIN", 0, NULL, NULL), HIE_OK);
	assert_int_equal(hie_db_exec(c, "INSERT INTO txt VALUES (5)", 0, NULL, NULL), HIE_OK);
	hie_db_release(P, c, false);
	assert_int_equal(scalar("SELECT count(*) FROM txt"), 0);
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
	hie_db_release(P, c, false);
}

/* Migrations ------------------------------------------------------------------------------------------------ */

static const struct hie_db_migration M[] = {
	{"t_mod", 1, "create a", "CREATE TABLE mig_a (x int)"},
	{"t_mod", 2, "create b", "CREATE TABLE mig_b (x int); INSERT INTO mig_b VALUES (1)"},
	{"t_other", 1, "create c", "CREATE TABLE mig_c (x int)"},
	{"t_mod", 3, "add column", "ALTER TABLE mig_a ADD COLUMN y text"},
};

static void test_migrate_once_and_idempotent(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	int applied = -1;
	assert_int_equal(hie_db_migrate(P, M, 2, &applied), HIE_OK);
	assert_int_equal(applied, 2);
	assert_int_equal(scalar("SELECT count(*) FROM schema_migrations WHERE module = 't_mod'"), 2);
	/* Rerun: nothing applied (CREATE TABLE without IF NOT EXISTS would fail if it were). */
	assert_int_equal(hie_db_migrate(P, M, 2, &applied), HIE_OK);
	assert_int_equal(applied, 0);
	/* New migrations of a later release: only those run. */
	assert_int_equal(hie_db_migrate(P, M, 4, &applied), HIE_OK);
	assert_int_equal(applied, 2);
	assert_int_equal(scalar("SELECT count(*) FROM mig_b"), 1);
	assert_int_equal(scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'mig_a'"), 2);
	assert_int_equal(scalar("SELECT count(*) FROM schema_migrations WHERE module LIKE 't_%'"), 4);
	assert_int_equal(scalar("SELECT count(*) FROM schema_migrations WHERE applied_at IS NULL OR name = ''"), 0);
}

static void test_migrate_failure_and_bad_arrays(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const struct hie_db_migration bad[] = {
		{"t_fail", 1, "ok", "CREATE TABLE mig_f1 (x int)"},
		{"t_fail", 2, "broken", "CREATE TABLE mig_f2 (x int); SELECT no_such_function()"},
		{"t_fail", 3, "after", "CREATE TABLE mig_f3 (x int)"},
	};
	int applied = -1;
	assert_int_equal(hie_db_migrate(P, bad, 3, &applied), HIE_EDB);
	assert_int_equal(applied, 1);
	assert_int_equal(scalar("SELECT max(version) FROM schema_migrations WHERE module = 't_fail'"), 1);
	/* The failed migration left nothing half-done (its first statement was rolled back too). */
	assert_int_equal(scalar("SELECT count(*) FROM pg_tables WHERE tablename IN ('mig_f2', 'mig_f3')"), 0);

	static const struct hie_db_migration order[] = {
		{"t_bad", 2, "two", "SELECT 1"},
		{"t_bad", 1, "one", "SELECT 1"},
	};
	static const struct hie_db_migration dup[] = {
		{"t_bad", 1, "one", "SELECT 1"},
		{"t_bad", 1, "one again", "SELECT 1"},
	};
	static const struct hie_db_migration zero[] = {{"t_bad", 0, "zero", "SELECT 1"}};
	static const struct hie_db_migration nosql[] = {{"t_bad", 1, "nosql", NULL}};
	static const struct hie_db_migration nomod[] = {{NULL, 1, "nomod", "SELECT 1"}};
	assert_int_equal(hie_db_migrate(P, order, 2, NULL), HIE_EINVAL);
	assert_int_equal(hie_db_migrate(P, dup, 2, NULL), HIE_EINVAL);
	assert_int_equal(hie_db_migrate(P, zero, 1, NULL), HIE_EINVAL);
	assert_int_equal(hie_db_migrate(P, nosql, 1, NULL), HIE_EINVAL);
	assert_int_equal(hie_db_migrate(P, nomod, 1, NULL), HIE_EINVAL);
	assert_int_equal(hie_db_migrate(P, NULL, 1, NULL), HIE_EINVAL);
	assert_int_equal(scalar("SELECT count(*) FROM schema_migrations WHERE module = 't_bad'"), 0);
}

static const struct hie_db_migration CONC[] = {
	{"t_conc", 1, "slow", "SELECT pg_sleep(0.2); CREATE TABLE mig_conc (x int)"},
	{"t_conc", 2, "insert", "INSERT INTO mig_conc VALUES (1)"},
	{"t_conc", 3, "slow again", "SELECT pg_sleep(0.1); INSERT INTO mig_conc VALUES (2)"},
};

struct migrator {
	struct hie_db_pool *pool;
	hie_err_t err;
	int applied;
};

static void *migrator_main(void *arg)
{
	struct migrator *m = arg;
	m->err = hie_db_migrate(m->pool, CONC, 3, &m->applied);
	return NULL;
}

/* Two nodes starting at once on one database: each migration runs exactly once, both succeed. */
static void test_migrate_concurrent(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct migrator m[2];
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		m[i] = (struct migrator){.err = HIE_EINVAL};
		assert_int_equal(pgtest_pool(&T, 2, 0, &m[i].pool), HIE_OK);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, migrator_main, &m[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(m[i].err, HIE_OK);
		hie_db_pool_close(m[i].pool);
	}
	assert_int_equal(m[0].applied + m[1].applied, 3);
	assert_int_equal(scalar("SELECT count(*) FROM mig_conc"), 2);
	assert_int_equal(scalar("SELECT count(*) FROM schema_migrations WHERE module = 't_conc'"), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_basics_and_app_name),
		cmocka_unit_test(test_pool_acquire_timeout),
		cmocka_unit_test(test_pool_waiter_gets_released_connection),
		cmocka_unit_test(test_pool_recovers_killed_backend),
		cmocka_unit_test(test_pool_bad_conninfo),
		cmocka_unit_test(test_exec_error_mapping),
		cmocka_unit_test(test_get_ll_hostile),
		cmocka_unit_test(test_tx_commit_and_rollback),
		cmocka_unit_test(test_tx_retry_serialization_and_deadlock),
		cmocka_unit_test(test_tx_retry_connection_lost_before_commit),
		cmocka_unit_test(test_tx_connection_lost_during_commit_not_retried),
		cmocka_unit_test(test_release_inside_transaction_rolls_back),
		cmocka_unit_test(test_migrate_once_and_idempotent),
		cmocka_unit_test(test_migrate_failure_and_bad_arrays),
		cmocka_unit_test(test_migrate_concurrent),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
