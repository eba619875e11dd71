/*
 * core_jobs_test.c — the job queue against a real embedded PostgreSQL cluster: transactional enqueue, dedup,
 * claim/complete, retry with backoff, parking as failed, HIE_EPERMANENT, expired and stale leases, workers
 * processing every job exactly once, depth and retention.
 */
#include "tests/unit/core/pgtest.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_jobs.h"
#include "core/core_log.h"

static struct pgtest T;
static struct hie_db_pool *P;

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count}};
	return pgtest_open(&T, 8, schema, 1, &P);
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	return 0;
}

static long long scalar(const char *sql, const char *param)
{
	return pgtest_scalar(P, sql, param);
}

static void exec_ok(const char *sql)
{
	assert_int_equal(pgtest_exec(P, sql), HIE_OK);
}

static int setup(void **state)
{
	(void)state;
	if (!T.skip)
		exec_ok("TRUNCATE jobs");
	return 0;
}

/* Enqueue in a transaction of its own. */
struct enq {
	const char *kind, *payload, *dedup;
	long long delay_ms;
	long long id;
	hie_err_t ret; /* what the "business" part of the transaction returns after enqueueing */
};

static hie_err_t enq_fn(PGconn *c, void *arg)
{
	struct enq *e = arg;
	hie_err_t err = hie_jobs_enqueue(c, e->kind, e->payload, e->dedup, e->delay_ms, &e->id);
	return err ? err : e->ret;
}

static long long enqueue(const char *kind, const char *payload, const char *dedup)
{
	struct enq e = {.kind = kind, .payload = payload, .dedup = dedup};
	assert_int_equal(hie_db_tx(P, enq_fn, &e), HIE_OK);
	assert_true(e.id > 0);
	return e.id;
}

static long long job_ll(long long id, const char *column)
{
	char sql[128], ids[24];
	snprintf(sql, sizeof sql, "SELECT %s FROM jobs WHERE id = $1::bigint", column);
	snprintf(ids, sizeof ids, "%lld", id);
	return scalar(sql, ids);
}

static long long job_state_is(long long id, const char *state)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE state = '%s' AND id = $1::bigint", state);
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	return scalar(sql, ids);
}

/* Handlers ---------------------------------------------------------------------------------------------------- */

struct counting {
	atomic_int calls;
	hie_err_t result;
};

static hie_err_t count_fn(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct counting *c = arg;
	atomic_fetch_add(&c->calls, 1);
	if (c->result)
		snprintf(errbuf, errlen, "partner said no\r\nInjected: header \x01\xff");
	(void)job;
	return c->result;
}

static struct hie_jobs *make_jobs(int workers, const char *kind, hie_job_fn fn, void *arg, int max_attempts)
{
	struct hie_jobs *j;
	struct hie_jobs_opts o = {.workers = workers, .poll_ms = 50, .backoff_base_ms = 60000, .stop_timeout_ms = 10000};
	assert_int_equal(hie_jobs_create(&j, P, &o), HIE_OK);
	struct hie_jobs_handler h = {.kind = kind, .fn = fn, .arg = arg, .max_attempts = max_attempts};
	assert_int_equal(hie_jobs_register(j, &h), HIE_OK);
	return j;
}

/* Tests ------------------------------------------------------------------------------------------------------- */

static void test_enqueue_is_transactional(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct enq e = {.kind = "t.mail", .payload = "{\"msg\":1}", .dedup = "m1", .ret = HIE_EINVAL};
	assert_int_equal(hie_db_tx(P, enq_fn, &e), HIE_EINVAL);
	assert_int_equal(scalar("SELECT count(*) FROM jobs", NULL), 0);
	/* The same dedup key is free again: the rolled-back job never existed. */
	long long id = enqueue("t.mail", "{\"msg\":1}", "m1");
	assert_int_equal(job_state_is(id, "queued"), 1);
	assert_int_equal(job_ll(id, "attempts"), 0);
}

static void test_enqueue_invalid(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	static const struct {
		const char *kind;
		long long delay;
	} cases[] = {
		{.kind = NULL},
		{.kind = ""},
		{.kind = "Upper"},
		{.kind = "with space"},
		{.kind = "quote\"kind"},
		{.kind = "brace{"},
		{.kind = "a234567890123456789012345678901234567890123456789012345678901234"},
		{.kind = "ok", .delay = -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct enq e = {.kind = cases[i].kind, .delay_ms = cases[i].delay};
		assert_int_equal(hie_db_tx(P, enq_fn, &e), HIE_EINVAL);
	}
	assert_int_equal(hie_jobs_enqueue(NULL, "ok", NULL, NULL, 0, NULL), HIE_EINVAL);
	assert_int_equal(scalar("SELECT count(*) FROM jobs", NULL), 0);
}

static void test_enqueue_dedup(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long a = enqueue("t.dedup", "p1", "key-1");
	long long b = enqueue("t.dedup", "p2", "key-1");
	assert_true(a == b);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE kind = 't.dedup'", NULL), 1);
	/* The first payload wins: a duplicate producer cannot change the job. */
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE payload = 'p1'", NULL), 1);
	/* The key is per kind; no key never dedups. */
	long long c = enqueue("t.other", "p", "key-1");
	assert_true(c != a);
	long long d = enqueue("t.dedup", "p", NULL);
	long long e = enqueue("t.dedup", "p", NULL);
	assert_true(d != e);
	assert_int_equal(scalar("SELECT count(*) FROM jobs", NULL), 4);

	/* Dedup also holds against a job that is already done (done jobs are the idempotency record). */
	struct counting cnt = {.result = HIE_OK};
	struct hie_jobs *j = make_jobs(0, "t.other", count_fn, &cnt, 3);
	assert_int_equal(hie_jobs_run_one(j), HIE_OK);
	assert_int_equal(job_state_is(c, "done"), 1);
	assert_true(enqueue("t.other", "again", "key-1") == c);
	assert_int_equal(hie_jobs_run_one(j), HIE_ENOTFOUND);
	assert_int_equal(cnt.calls, 1);
	hie_jobs_destroy(j);
}

static void test_claim_and_complete(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long id = enqueue("t.claim", "payload-x", NULL);
	long long other = enqueue("t.unhandled", "y", NULL);
	struct counting cnt = {.result = HIE_OK};
	struct hie_jobs *j = make_jobs(0, "t.claim", count_fn, &cnt, 3);
	struct hie_job *job;
	assert_int_equal(hie_jobs_claim(j, &job), HIE_OK);
	assert_true(job->id == id);
	assert_string_equal(job->kind, "t.claim");
	assert_string_equal(job->payload, "payload-x");
	assert_int_equal(job->attempts, 1);
	assert_int_equal(job->max_attempts, 3);
	assert_int_equal(job_state_is(id, "running"), 1);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE lease_until > now()", NULL), 1);
	/* Claimed means not claimable again; kinds without a handler here are left alone. */
	struct hie_job *none;
	assert_int_equal(hie_jobs_claim(j, &none), HIE_ENOTFOUND);
	assert_int_equal(hie_jobs_finish(j, job, HIE_OK, NULL), HIE_OK);
	assert_int_equal(job_state_is(id, "done"), 1);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE lease_until IS NULL AND last_error IS NULL"
				" AND state = 'done'", NULL), 1);
	/* Finishing twice is refused: the lease ended with the first completion. */
	assert_int_equal(hie_jobs_finish(j, job, HIE_EIO, "late"), HIE_EDENIED);
	assert_int_equal(job_state_is(id, "done"), 1);
	hie_jobs_job_free(job);
	assert_int_equal(job_state_is(other, "queued"), 1);
	hie_jobs_destroy(j);
}

static void test_delay(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct enq e = {.kind = "t.delay", .payload = "", .delay_ms = 3600000};
	assert_int_equal(hie_db_tx(P, enq_fn, &e), HIE_OK);
	struct counting cnt = {.result = HIE_OK};
	struct hie_jobs *j = make_jobs(0, "t.delay", count_fn, &cnt, 3);
	assert_int_equal(hie_jobs_run_one(j), HIE_ENOTFOUND);
	exec_ok("UPDATE jobs SET run_at = now()");
	assert_int_equal(hie_jobs_run_one(j), HIE_OK);
	assert_int_equal(cnt.calls, 1);
	hie_jobs_destroy(j);
}

static void test_retry_backoff_then_failed(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long id = enqueue("t.retry", "p", NULL);
	struct counting cnt = {.result = HIE_EIO};
	struct hie_jobs *j = make_jobs(0, "t.retry", count_fn, &cnt, 3);
	long long prev_delay = 0;
	for (int attempt = 1; attempt <= 3; attempt++) {
		assert_int_equal(hie_jobs_run_one(j), HIE_OK);
		assert_int_equal(cnt.calls, attempt);
		assert_int_equal(job_ll(id, "attempts"), attempt);
		if (attempt < 3) {
			/* Back in the queue, not due before the backoff (base 60 s, doubled, with jitter). */
			assert_int_equal(job_state_is(id, "queued"), 1);
			long long delay = job_ll(id, "(extract(epoch FROM run_at - updated_at) * 1000)::bigint");
			assert_true(delay >= 30000 * (1LL << (attempt - 1)) - 1000);
			assert_true(delay <= 60000 * (1LL << (attempt - 1)) + 1000);
			assert_true(delay > prev_delay / 2);
			prev_delay = delay;
			assert_int_equal(hie_jobs_run_one(j), HIE_ENOTFOUND); /* not due yet */
			exec_ok("UPDATE jobs SET run_at = now()");
		}
	}
	/* Last attempt failed: parked, visible, never dropped. last_error is one printable line. */
	assert_int_equal(job_state_is(id, "failed"), 1);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE last_error = 'EIO: partner said no?" "?Injected: header ?" "?'",
				NULL),
			 1);
	exec_ok("UPDATE jobs SET run_at = now()");
	assert_int_equal(hie_jobs_run_one(j), HIE_ENOTFOUND);
	assert_int_equal(cnt.calls, 3);
	hie_jobs_destroy(j);
}

static void test_permanent_failure(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long id = enqueue("t.perm", "p", NULL);
	struct counting cnt = {.result = HIE_EPERMANENT};
	struct hie_jobs *j = make_jobs(0, "t.perm", count_fn, &cnt, 10);
	assert_int_equal(hie_jobs_run_one(j), HIE_OK);
	assert_int_equal(job_state_is(id, "failed"), 1);
	assert_int_equal(job_ll(id, "attempts"), 1);
	assert_int_equal(hie_jobs_run_one(j), HIE_ENOTFOUND);
	assert_int_equal(cnt.calls, 1);
	hie_jobs_destroy(j);
}

/* A node died mid-job: its lease expires and another worker takes the job; the dead node's late completion
 * is refused so that it cannot overwrite the newer attempt. */
static void test_expired_lease_and_stale_completion(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long id = enqueue("t.lease", "p", NULL);
	struct counting cnt = {.result = HIE_OK};
	struct hie_jobs *j = make_jobs(0, "t.lease", count_fn, &cnt, 5);
	struct hie_job *first, *second;
	assert_int_equal(hie_jobs_claim(j, &first), HIE_OK);
	assert_int_equal(hie_jobs_claim(j, &second), HIE_ENOTFOUND); /* lease still valid */
	exec_ok("UPDATE jobs SET lease_until = now() + interval '1 second'");
	assert_int_equal(hie_jobs_extend(j, first, 600000), HIE_OK);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE lease_until > now() + interval '500 seconds'", NULL), 1);
	assert_int_equal(hie_jobs_extend(j, first, 0), HIE_EINVAL);
	exec_ok("UPDATE jobs SET lease_until = now() - interval '1 second'");
	assert_int_equal(hie_jobs_claim(j, &second), HIE_OK);
	assert_true(second->id == id);
	assert_int_equal(second->attempts, 2);
	/* The slow first worker finally reports, for every kind of outcome: all refused. */
	assert_int_equal(hie_jobs_finish(j, first, HIE_OK, NULL), HIE_EDENIED);
	assert_int_equal(hie_jobs_finish(j, first, HIE_EIO, "x"), HIE_EDENIED);
	assert_int_equal(hie_jobs_finish(j, first, HIE_EPERMANENT, "x"), HIE_EDENIED);
	assert_int_equal(hie_jobs_extend(j, first, 600000), HIE_EDENIED);
	assert_int_equal(job_state_is(id, "running"), 1);
	assert_int_equal(job_ll(id, "attempts"), 2);
	assert_int_equal(hie_jobs_finish(j, second, HIE_OK, NULL), HIE_OK);
	assert_int_equal(job_state_is(id, "done"), 1);
	hie_jobs_job_free(first);
	hie_jobs_job_free(second);
	hie_jobs_destroy(j);
}

/* A job whose lease expires on its last attempt (it kills its node every time) is parked, not run again. */
static void test_expired_lease_on_last_attempt_parks(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long id = enqueue("t.poison", "p", NULL);
	long long ok = enqueue("t.poison", "q", NULL);
	exec_ok("UPDATE jobs SET run_at = now() - interval '1 hour' WHERE payload = 'p'");
	struct counting cnt = {.result = HIE_OK};
	struct hie_jobs *j = make_jobs(0, "t.poison", count_fn, &cnt, 2);
	struct hie_job *job;
	for (int attempt = 1; attempt <= 2; attempt++) {
		assert_int_equal(hie_jobs_claim(j, &job), HIE_OK);
		assert_true(job->id == id);
		hie_jobs_job_free(job); /* the node "dies" */
		exec_ok("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE payload = 'p'");
	}
	/* The next claim parks the poison job and hands out the healthy one instead. */
	assert_int_equal(hie_jobs_claim(j, &job), HIE_OK);
	assert_true(job->id == ok);
	assert_int_equal(hie_jobs_finish(j, job, HIE_OK, NULL), HIE_OK);
	hie_jobs_job_free(job);
	assert_int_equal(job_state_is(id, "failed"), 1);
	assert_int_equal(job_ll(id, "attempts"), 2);
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE last_error LIKE 'lease expired%'", NULL), 1);
	hie_jobs_destroy(j);
}

/* Two nodes with two workers each drain 400 jobs: every job runs exactly once. */
#define NJOBS 400
static atomic_int seen[NJOBS];

static hie_err_t exact_fn(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	(void)arg;
	(void)errbuf;
	(void)errlen;
	char *end;
	long i = strtol(job->payload, &end, 10);
	if (end == job->payload || *end || i < 0 || i >= NJOBS)
		return HIE_EPERMANENT;
	atomic_fetch_add(&seen[i], 1);
	return HIE_OK;
}

static hie_err_t enq_many_fn(PGconn *c, void *arg)
{
	int *base = arg;
	char payload[16];
	for (int i = *base; i < *base + 100; i++) {
		snprintf(payload, sizeof payload, "%d", i);
		hie_err_t err = hie_jobs_enqueue(c, "t.many", payload, NULL, 0, NULL);
		if (err)
			return err;
	}
	return HIE_OK;
}

static void test_workers_exactly_once(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	for (int i = 0; i < NJOBS; i++)
		atomic_store(&seen[i], 0);
	struct hie_jobs *node[2];
	for (int n = 0; n < 2; n++) {
		node[n] = make_jobs(2, "t.many", exact_fn, NULL, 3);
		assert_int_equal(hie_jobs_start(node[n]), HIE_OK);
	}
	/* Enqueue while the workers already run, waking them as a producer would after commit. */
	for (int base = 0; base < NJOBS; base += 100) {
		assert_int_equal(hie_db_tx(P, enq_many_fn, &base), HIE_OK);
		hie_jobs_wake(node[base / 100 % 2]);
	}
	for (int i = 0; i < 3000; i++) { /* bounded wait: up to 30 s */
		if (scalar("SELECT count(*) FROM jobs WHERE kind = 't.many' AND state = 'done'", NULL) == NJOBS)
			break;
		usleep(10000);
	}
	for (int n = 0; n < 2; n++) {
		assert_int_equal(hie_jobs_stop(node[n]), HIE_OK);
		hie_jobs_destroy(node[n]);
	}
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE kind = 't.many' AND state = 'done' AND attempts = 1",
				NULL),
			 NJOBS);
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(atomic_load(&seen[i]), 1);
	struct hie_db_stats st;
	hie_db_stats(P, &st);
	assert_int_equal(st.in_use, 0);
}

/* Graceful stop waits for a running handler; a stuck one makes stop report HIE_ETIMEOUT. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int entered;
	int open;
};

static hie_err_t gate_fn(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct gate *g = arg;
	(void)job;
	(void)errbuf;
	(void)errlen;
	pthread_mutex_lock(&g->mu);
	g->entered++;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	return HIE_OK;
}

static void test_stop_bounded(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	long long id = enqueue("t.gate", "p", NULL);
	struct hie_jobs *j;
	struct hie_jobs_opts o = {.workers = 1, .poll_ms = 20, .stop_timeout_ms = 100};
	assert_int_equal(hie_jobs_create(&j, P, &o), HIE_OK);
	struct hie_jobs_handler h = {.kind = "t.gate", .fn = gate_fn, .arg = &g};
	assert_int_equal(hie_jobs_register(j, &h), HIE_OK);
	assert_int_equal(hie_jobs_register(j, &h), HIE_EEXIST);
	assert_int_equal(hie_jobs_start(j), HIE_OK);
	assert_int_equal(hie_jobs_register(j, &(struct hie_jobs_handler){.kind = "t.late", .fn = gate_fn}), HIE_EINVAL);
	pthread_mutex_lock(&g.mu);
	while (!g.entered)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	assert_int_equal(hie_jobs_stop(j), HIE_ETIMEOUT);
	assert_true(hie_jobs_stopping(j));
	pthread_mutex_lock(&g.mu);
	g.open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	hie_jobs_destroy(j); /* waits for the handler, which completes its job */
	assert_int_equal(job_state_is(id, "done"), 1);
}

struct depth_seen {
	long long queued, running, failed, other;
};

static void depth_cb(const char *kind, const char *state, long long count, void *arg)
{
	struct depth_seen *d = arg;
	if (strcmp(kind, "t.depth") != 0)
		d->other += count;
	else if (strcmp(state, "queued") == 0)
		d->queued += count;
	else if (strcmp(state, "running") == 0)
		d->running += count;
	else if (strcmp(state, "failed") == 0)
		d->failed += count;
	else
		d->other += count;
}

static void test_depth_and_sweep(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	for (int i = 0; i < 5; i++)
		enqueue("t.depth", "p", NULL);
	struct counting ok = {.result = HIE_OK}, perm = {.result = HIE_EPERMANENT};
	struct hie_jobs *j = make_jobs(0, "t.depth", count_fn, &ok, 3);
	struct hie_job *running;
	assert_int_equal(hie_jobs_run_one(j), HIE_OK);        /* 1 done */
	assert_int_equal(hie_jobs_claim(j, &running), HIE_OK); /* 1 running */
	hie_jobs_destroy(j);
	j = make_jobs(0, "t.depth", count_fn, &perm, 3);
	assert_int_equal(hie_jobs_run_one(j), HIE_OK);        /* 1 failed */
	hie_jobs_destroy(j);
	struct depth_seen d = {0};
	assert_int_equal(hie_jobs_depth(P, depth_cb, &d), HIE_OK);
	assert_int_equal(d.queued, 2);
	assert_int_equal(d.running, 1);
	assert_int_equal(d.failed, 1);
	assert_int_equal(d.other, 0); /* done jobs are not queue depth */
	hie_jobs_job_free(running);

	long long deleted = -1;
	assert_int_equal(hie_jobs_sweep(P, 3600000, &deleted), HIE_OK);
	assert_int_equal(deleted, 0);
	exec_ok("UPDATE jobs SET updated_at = now() - interval '2 hours'");
	assert_int_equal(hie_jobs_sweep(P, 3600000, &deleted), HIE_OK);
	assert_int_equal(deleted, 1); /* only the done one; the failed job stays for the operator */
	assert_int_equal(scalar("SELECT count(*) FROM jobs WHERE state = 'failed'", NULL), 1);
	assert_int_equal(hie_jobs_sweep(P, -1, &deleted), HIE_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_enqueue_is_transactional, setup),
		cmocka_unit_test_setup(test_enqueue_invalid, setup),
		cmocka_unit_test_setup(test_enqueue_dedup, setup),
		cmocka_unit_test_setup(test_claim_and_complete, setup),
		cmocka_unit_test_setup(test_delay, setup),
		cmocka_unit_test_setup(test_retry_backoff_then_failed, setup),
		cmocka_unit_test_setup(test_permanent_failure, setup),
		cmocka_unit_test_setup(test_expired_lease_and_stale_completion, setup),
		cmocka_unit_test_setup(test_expired_lease_on_last_attempt_parks, setup),
		cmocka_unit_test_setup(test_workers_exactly_once, setup),
		cmocka_unit_test_setup(test_stop_bounded, setup),
		cmocka_unit_test_setup(test_depth_and_sweep, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
