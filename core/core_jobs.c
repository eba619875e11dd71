/*
 * core_jobs.c — job queue on PostgreSQL and the worker threads that drain it. See core_jobs.h.
 *
 * The attempt number is the lease token: claiming increments it, and completion only updates the row when
 * (id, attempts, state = 'running') still match, so at most one attempt's result is ever recorded.
 */
#include "core/core_jobs.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_buf.h"
#include "core/core_log.h"
#include "core/core_time.h"

#define CLAIM_PARK_LOOPS 16 /* jobs parked in one claim call before giving up for this round */

const struct hie_db_migration hie_jobs_migrations[] = {
	{"core", 1, "jobs table",
	 "CREATE TABLE jobs ("
	 " id bigserial PRIMARY KEY,"
	 " kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 63),"
	 " payload text NOT NULL DEFAULT '',"
	 " dedup_key text,"
	 " state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),"
	 " attempts int NOT NULL DEFAULT 0,"
	 " max_attempts int NOT NULL DEFAULT 10,"
	 " run_at timestamptz NOT NULL DEFAULT now(),"
	 " lease_until timestamptz,"
	 " last_error text,"
	 " created_at timestamptz NOT NULL DEFAULT now(),"
	 " updated_at timestamptz NOT NULL DEFAULT now());"
	 /* Idempotent producers: one job per (kind, dedup_key); NULL keys never collide. */
	 "CREATE UNIQUE INDEX jobs_kind_dedup ON jobs (kind, dedup_key) WHERE dedup_key IS NOT NULL;"
	 /* The claim query reads due queued jobs and expired leases; both partial indexes stay small. */
	 "CREATE INDEX jobs_queued_run_at ON jobs (run_at) WHERE state = 'queued';"
	 "CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE state = 'running';"
	 "CREATE INDEX jobs_failed_kind ON jobs (kind) WHERE state = 'failed';"
	 "CREATE INDEX jobs_done_updated ON jobs (updated_at) WHERE state = 'done';"},
};
const size_t hie_jobs_migrations_count = sizeof hie_jobs_migrations / sizeof hie_jobs_migrations[0];

struct handler {
	char kind[HIE_JOBS_KIND_MAX + 1];
	hie_job_fn fn;
	void *arg;
	int max_attempts;
	int lease_ms;
};

struct hie_jobs {
	struct hie_db_pool *pool;
	struct hie_jobs_opts o;
	struct handler handlers[HIE_JOBS_MAX_HANDLERS];
	int nhandlers;
	pthread_t *threads;
	int nthreads;       /* created */
	int alive;          /* not yet returned */
	bool stopping;
	bool started;
	unsigned long wake_seq;
	pthread_mutex_t mu;
	pthread_cond_t cv;  /* wake-ups for idle workers and thread exits */
};

static bool kind_ok(const char *k)
{
	size_t n = k ? strlen(k) : 0;
	if (n == 0 || n > HIE_JOBS_KIND_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

hie_err_t hie_jobs_enqueue(PGconn *tx, const char *kind, const char *payload, const char *dedup_key,
			   long long delay_ms, long long *id)
{
	PGresult *res = NULL;
	char delay[24];
	hie_err_t err;
	if (id)
		*id = 0;
	if (!tx || !kind_ok(kind) || delay_ms < 0) {
		hie_log(HIE_LOG_ERR, "event=jobs.enqueue_invalid");
		return HIE_EINVAL;
	}
	snprintf(delay, sizeof delay, "%lld", delay_ms);
	const char *p[] = {kind, payload ? payload : "", dedup_key, delay};
	err = hie_db_exec(tx,
			  "INSERT INTO jobs (kind, payload, dedup_key, run_at)"
			  " VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')"
			  " ON CONFLICT (kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING id",
			  4, p, &res);
	if (err)
		return err == HIE_EBUSY ? err : HIE_EDB;
	if (PQntuples(res) == 1) {
		long long v = 0;
		err = hie_db_get_ll(res, 0, 0, &v);
		PQclear(res);
		if (!err && id)
			*id = v;
		return err ? HIE_EDB : HIE_OK;
	}
	PQclear(res);
	/* Duplicate: the producer already enqueued this job (or a previous incarnation did). */
	err = hie_db_exec(tx, "SELECT id FROM jobs WHERE kind = $1 AND dedup_key = $2", 2, (const char *const[]){kind, dedup_key},
			  &res);
	if (err)
		return err == HIE_EBUSY ? err : HIE_EDB;
	if (PQntuples(res) == 1 && id)
		(void)hie_db_get_ll(res, 0, 0, id);
	PQclear(res);
	return HIE_OK;
}

/* Worker pool ------------------------------------------------------------------------------------------------ */

hie_err_t hie_jobs_create(struct hie_jobs **out, struct hie_db_pool *pool, const struct hie_jobs_opts *opts)
{
	*out = NULL;
	if (!pool || !opts || opts->workers < 0 || opts->workers > 1024)
		return HIE_EINVAL;
	struct hie_jobs *j = calloc(1, sizeof *j);
	if (!j)
		return HIE_ENOMEM;
	j->pool = pool;
	j->o = *opts;
	if (j->o.poll_ms <= 0)
		j->o.poll_ms = 1000;
	if (j->o.max_attempts <= 0)
		j->o.max_attempts = 10;
	if (j->o.lease_ms <= 0)
		j->o.lease_ms = 300000;
	if (j->o.backoff_base_ms <= 0)
		j->o.backoff_base_ms = 1000;
	if (j->o.backoff_max_ms <= 0)
		j->o.backoff_max_ms = 3600000;
	if (j->o.backoff_max_ms < j->o.backoff_base_ms)
		j->o.backoff_max_ms = j->o.backoff_base_ms;
	if (j->o.stop_timeout_ms <= 0)
		j->o.stop_timeout_ms = 20000;
	hie_cond_init_monotonic(&j->cv);
	pthread_mutex_init(&j->mu, NULL);
	*out = j;
	return HIE_OK;
}

hie_err_t hie_jobs_register(struct hie_jobs *jobs, const struct hie_jobs_handler *h)
{
	if (!h || !h->fn || !kind_ok(h->kind) || h->max_attempts < 0 || h->lease_ms < 0 || jobs->started)
		return HIE_EINVAL;
	for (int i = 0; i < jobs->nhandlers; i++)
		if (strcmp(jobs->handlers[i].kind, h->kind) == 0)
			return HIE_EEXIST;
	if (jobs->nhandlers >= HIE_JOBS_MAX_HANDLERS)
		return HIE_ETOOBIG;
	struct handler *d = &jobs->handlers[jobs->nhandlers++];
	snprintf(d->kind, sizeof d->kind, "%s", h->kind);
	d->fn = h->fn;
	d->arg = h->arg;
	d->max_attempts = h->max_attempts ? h->max_attempts : jobs->o.max_attempts;
	d->lease_ms = h->lease_ms ? h->lease_ms : jobs->o.lease_ms;
	return HIE_OK;
}

static const struct handler *find_handler(const struct hie_jobs *jobs, const char *kind)
{
	for (int i = 0; i < jobs->nhandlers; i++)
		if (strcmp(jobs->handlers[i].kind, kind) == 0)
			return &jobs->handlers[i];
	return NULL;
}

void hie_jobs_job_free(struct hie_job *job)
{
	if (!job)
		return;
	free(job->payload);
	free(job);
}

/* Claim ------------------------------------------------------------------------------------------------------ */

struct claim_arg {
	struct hie_jobs *jobs;
	const char *params[3]; /* kinds[], max_attempts[], lease_ms[] as array literals */
	struct hie_job *job;   /* result; NULL when nothing due */
	int parked;
};

static hie_err_t claim_fn(PGconn *c, void *arg)
{
	struct claim_arg *a = arg;
	PGresult *res = NULL;
	hie_err_t err;
	long long v;
	hie_jobs_job_free(a->job);
	a->job = NULL;
	a->parked = 0;
	for (int loop = 0; loop < CLAIM_PARK_LOOPS; loop++) {
		/* SKIP LOCKED: concurrent workers each take a different row instead of queueing on one. */
		err = hie_db_exec(c,
				  "WITH h AS (SELECT * FROM unnest($1::text[], $2::int[], $3::int[])"
				  "   AS h(kind, max_attempts, lease_ms)),"
				  " c AS (SELECT j.id FROM jobs j WHERE j.kind = ANY($1::text[])"
				  "   AND ((j.state = 'queued' AND j.run_at <= now())"
				  "     OR (j.state = 'running' AND j.lease_until < now()))"
				  "   ORDER BY j.run_at, j.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
				  " UPDATE jobs j SET state = 'running', attempts = j.attempts + 1,"
				  "   max_attempts = h.max_attempts,"
				  "   lease_until = now() + h.lease_ms * interval '1 millisecond', updated_at = now()"
				  " FROM c, h WHERE j.id = c.id AND h.kind = j.kind"
				  " RETURNING j.id, j.kind, j.payload, j.attempts, j.max_attempts",
				  3, a->params, &res);
		if (err)
			return err;
		if (PQntuples(res) != 1) {
			PQclear(res);
			return HIE_OK;
		}
		struct hie_job *job = calloc(1, sizeof *job);
		if (!job) {
			PQclear(res);
			return HIE_ENOMEM;
		}
		err = hie_db_get_ll(res, 0, 0, &job->id);
		if (!err)
			err = hie_db_get_ll(res, 0, 3, &v);
		job->attempts = (int)v;
		if (!err)
			err = hie_db_get_ll(res, 0, 4, &v);
		job->max_attempts = (int)v;
		snprintf(job->kind, sizeof job->kind, "%s", PQgetvalue(res, 0, 1));
		job->payload = strdup(PQgetvalue(res, 0, 2));
		PQclear(res);
		if (err || !job->payload) {
			hie_jobs_job_free(job);
			return err ? HIE_EDB : HIE_ENOMEM;
		}
		if (job->attempts <= job->max_attempts) {
			a->job = job;
			return HIE_OK;
		}
		/* Its lease expired during the last attempt (the node died, or the handler hung): park it rather
		 * than run it once more than allowed. A job that kills its node cannot loop forever. */
		char id[24], att[16];
		snprintf(id, sizeof id, "%lld", job->id);
		snprintf(att, sizeof att, "%d", job->attempts);
		err = hie_db_exec(c,
				  "UPDATE jobs SET state = 'failed', attempts = attempts - 1, lease_until = NULL,"
				  " last_error = 'lease expired on the last attempt', updated_at = now()"
				  " WHERE id = $1::bigint AND attempts = $2::int",
				  2, (const char *const[]){id, att}, NULL);
		hie_log(HIE_LOG_WARN, "event=jobs.failed job=%lld kind=%s attempts=%d reason=lease_expired", job->id,
			job->kind, job->attempts - 1);
		hie_jobs_job_free(job);
		if (err)
			return err;
		a->parked++;
	}
	return HIE_OK;
}

/* Builds the three array literals of the claim query from the registered handlers. */
static hie_err_t claim_params(const struct hie_jobs *jobs, struct hie_buf b[3])
{
	hie_err_t err = HIE_OK;
	for (int k = 0; k < 3 && !err; k++)
		err = hie_buf_addstr(&b[k], "{");
	for (int i = 0; i < jobs->nhandlers && !err; i++) {
		const struct handler *h = &jobs->handlers[i];
		const char *sep = i ? "," : "";
		err = hie_buf_addf(&b[0], "%s\"%s\"", sep, h->kind); /* kinds are [a-z0-9._-]: no escaping needed */
		if (!err)
			err = hie_buf_addf(&b[1], "%s%d", sep, h->max_attempts);
		if (!err)
			err = hie_buf_addf(&b[2], "%s%d", sep, h->lease_ms);
	}
	for (int k = 0; k < 3 && !err; k++)
		err = hie_buf_addstr(&b[k], "}");
	return err;
}

hie_err_t hie_jobs_claim(struct hie_jobs *jobs, struct hie_job **out)
{
	struct hie_buf b[3];
	struct claim_arg a = {.jobs = jobs};
	hie_err_t err;
	*out = NULL;
	if (jobs->nhandlers == 0)
		return HIE_ENOTFOUND;
	for (int k = 0; k < 3; k++)
		hie_buf_init(&b[k], 64 * 1024);
	err = claim_params(jobs, b);
	if (err)
		goto out;
	for (int k = 0; k < 3; k++)
		a.params[k] = hie_buf_str(&b[k]);
	err = hie_db_tx(jobs->pool, claim_fn, &a);
	if (err) {
		hie_jobs_job_free(a.job);
		goto out;
	}
	if (!a.job) {
		err = HIE_ENOTFOUND;
		goto out;
	}
	hie_log(HIE_LOG_DEBUG, "event=jobs.claimed job=%lld kind=%s attempt=%d", a.job->id, a.job->kind,
		a.job->attempts);
	*out = a.job;
out:
	for (int k = 0; k < 3; k++)
		hie_buf_free(&b[k]);
	return err;
}

/* Finish ----------------------------------------------------------------------------------------------------- */

struct finish_arg {
	const char *sql;
	const char *params[4];
	int nparams;
	bool matched;
};

static hie_err_t finish_fn(PGconn *c, void *arg)
{
	struct finish_arg *a = arg;
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(c, a->sql, a->nparams, a->params, &res);
	if (err)
		return err;
	a->matched = strcmp(PQcmdTuples(res), "1") == 0;
	PQclear(res);
	return HIE_OK;
}

/* Exponential backoff with "equal jitter": half fixed, half random, so retries of jobs that failed together
 * (a partner was down) spread out instead of hitting it again in one burst. */
static long long backoff_ms(const struct hie_jobs *jobs, int attempts)
{
	static _Thread_local unsigned seed;
	if (!seed)
		seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
	long long d = jobs->o.backoff_base_ms;
	for (int i = 1; i < attempts && d < jobs->o.backoff_max_ms; i++)
		d *= 2;
	if (d > jobs->o.backoff_max_ms)
		d = jobs->o.backoff_max_ms;
	long long half = d / 2;
	return d - half + (half > 0 ? (long long)(rand_r(&seed) % (unsigned)(half + 1)) : 0);
}

/* last_error is shown to operators: one line of printable ASCII (also keeps it valid UTF-8 for the column). */
static void error_text(char *dst, size_t dstlen, hie_err_t result, const char *reason)
{
	int n = snprintf(dst, dstlen, "%s%s%s", hie_errname(result), reason && reason[0] ? ": " : "",
			 reason ? reason : "");
	if (n < 0)
		dst[0] = '\0';
	for (char *p = dst; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

hie_err_t hie_jobs_finish(struct hie_jobs *jobs, const struct hie_job *job, hie_err_t result, const char *error)
{
	char id[24], att[16], delay[24], msg[HIE_JOBS_ERROR_MAX + 1];
	struct finish_arg a = {.params = {id, att}};
	const char *outcome;
	long long d = 0;
	snprintf(id, sizeof id, "%lld", job->id);
	snprintf(att, sizeof att, "%d", job->attempts);
	error_text(msg, sizeof msg, result, error);
	if (result == HIE_OK) {
		outcome = "done";
		a.nparams = 2;
		a.sql = "UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = now()"
			" WHERE id = $1::bigint AND attempts = $2::int AND state = 'running'";
	} else if (result == HIE_EPERMANENT || job->attempts >= job->max_attempts) {
		outcome = "failed";
		a.nparams = 3;
		a.params[2] = msg;
		a.sql = "UPDATE jobs SET state = 'failed', lease_until = NULL, last_error = $3, updated_at = now()"
			" WHERE id = $1::bigint AND attempts = $2::int AND state = 'running'";
	} else {
		outcome = "retry";
		d = backoff_ms(jobs, job->attempts);
		snprintf(delay, sizeof delay, "%lld", d);
		a.nparams = 4;
		a.params[2] = msg;
		a.params[3] = delay;
		a.sql = "UPDATE jobs SET state = 'queued', lease_until = NULL, last_error = $3,"
			" run_at = now() + $4::bigint * interval '1 millisecond', updated_at = now()"
			" WHERE id = $1::bigint AND attempts = $2::int AND state = 'running'";
	}
	hie_err_t err = hie_db_tx(jobs->pool, finish_fn, &a);
	if (err) {
		/* The job stays running until its lease expires, then runs again: at least once. */
		hie_log(HIE_LOG_ERR, "event=jobs.finish_failed job=%lld kind=%s attempt=%d err=%s", job->id, job->kind,
			job->attempts, hie_errname(err));
		return err;
	}
	if (!a.matched) {
		hie_log(HIE_LOG_WARN, "event=jobs.stale_lease job=%lld kind=%s attempt=%d outcome=%s", job->id,
			job->kind, job->attempts, outcome);
		return HIE_EDENIED;
	}
	if (result == HIE_OK)
		hie_log(HIE_LOG_DEBUG, "event=jobs.done job=%lld kind=%s attempt=%d", job->id, job->kind, job->attempts);
	else
		hie_log(*outcome == 'f' ? HIE_LOG_WARN : HIE_LOG_NOTICE,
			"event=jobs.%s job=%lld kind=%s attempt=%d max=%d delay_ms=%lld error=\"%s\"", outcome, job->id,
			job->kind, job->attempts, job->max_attempts, d, msg);
	return HIE_OK;
}

hie_err_t hie_jobs_extend(struct hie_jobs *jobs, const struct hie_job *job, int lease_ms)
{
	char id[24], att[16], ms[16];
	if (lease_ms <= 0)
		return HIE_EINVAL;
	snprintf(id, sizeof id, "%lld", job->id);
	snprintf(att, sizeof att, "%d", job->attempts);
	snprintf(ms, sizeof ms, "%d", lease_ms);
	struct finish_arg a = {.params = {id, att, ms},
			       .nparams = 3,
			       .sql = "UPDATE jobs SET lease_until = now() + $3::int * interval '1 millisecond',"
				      " updated_at = now() WHERE id = $1::bigint AND attempts = $2::int AND state = 'running'"};
	hie_err_t err = hie_db_tx(jobs->pool, finish_fn, &a);
	if (err)
		return err;
	return a.matched ? HIE_OK : HIE_EDENIED;
}

hie_err_t hie_jobs_run_one(struct hie_jobs *jobs)
{
	struct hie_job *job;
	char reason[HIE_JOBS_ERROR_MAX];
	hie_err_t err = hie_jobs_claim(jobs, &job);
	if (err)
		return err;
	const struct handler *h = find_handler(jobs, job->kind);
	reason[0] = '\0';
	hie_err_t result = h ? h->fn(job, h->arg, reason, sizeof reason) : HIE_EPERMANENT;
	reason[sizeof reason - 1] = '\0';
	err = hie_jobs_finish(jobs, job, result, h ? reason : "no handler");
	hie_jobs_job_free(job);
	return err;
}

/* Threads ---------------------------------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct hie_jobs *j = arg;
	for (;;) {
		pthread_mutex_lock(&j->mu);
		bool stop = j->stopping;
		unsigned long seen = j->wake_seq;
		pthread_mutex_unlock(&j->mu);
		if (stop)
			break;
		hie_err_t err = hie_jobs_run_one(j);
		if (err == HIE_OK || err == HIE_EDENIED)
			continue;
		/* Idle, or the database failed: wait for a wake-up or the poll interval. A wake-up that came while
		 * we were claiming changed wake_seq, so it is not lost. */
		struct timespec dl;
		hie_deadline_after(&dl, j->o.poll_ms);
		pthread_mutex_lock(&j->mu);
		while (!j->stopping && j->wake_seq == seen)
			if (pthread_cond_timedwait(&j->cv, &j->mu, &dl) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&j->mu);
	}
	pthread_mutex_lock(&j->mu);
	j->alive--;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

hie_err_t hie_jobs_start(struct hie_jobs *jobs)
{
	if (jobs->started)
		return HIE_EINVAL;
	jobs->started = true;
	if (jobs->o.workers == 0)
		return HIE_OK;
	jobs->threads = calloc((size_t)jobs->o.workers, sizeof *jobs->threads);
	if (!jobs->threads)
		return HIE_ENOMEM;
	for (int i = 0; i < jobs->o.workers; i++) {
		pthread_mutex_lock(&jobs->mu);
		jobs->alive++;
		pthread_mutex_unlock(&jobs->mu);
		int rc = pthread_create(&jobs->threads[i], NULL, worker_main, jobs);
		if (rc != 0) {
			pthread_mutex_lock(&jobs->mu);
			jobs->alive--;
			pthread_mutex_unlock(&jobs->mu);
			hie_log(HIE_LOG_ERR, "event=jobs.thread_create_failed rc=%d", rc);
			(void)hie_jobs_stop(jobs);
			return HIE_ESYS;
		}
		jobs->nthreads++;
	}
	hie_log(HIE_LOG_INFO, "event=jobs.started workers=%d kinds=%d", jobs->nthreads, jobs->nhandlers);
	return HIE_OK;
}

void hie_jobs_wake(struct hie_jobs *jobs)
{
	pthread_mutex_lock(&jobs->mu);
	jobs->wake_seq++;
	pthread_cond_broadcast(&jobs->cv);
	pthread_mutex_unlock(&jobs->mu);
}

bool hie_jobs_stopping(const struct hie_jobs *jobs)
{
	pthread_mutex_lock((pthread_mutex_t *)&jobs->mu);
	bool s = jobs->stopping;
	pthread_mutex_unlock((pthread_mutex_t *)&jobs->mu);
	return s;
}

hie_err_t hie_jobs_stop(struct hie_jobs *jobs)
{
	struct timespec dl;
	hie_deadline_after(&dl, jobs->o.stop_timeout_ms);
	pthread_mutex_lock(&jobs->mu);
	jobs->stopping = true;
	pthread_cond_broadcast(&jobs->cv);
	while (jobs->alive > 0)
		if (pthread_cond_timedwait(&jobs->cv, &jobs->mu, &dl) == ETIMEDOUT)
			break;
	int left = jobs->alive;
	pthread_mutex_unlock(&jobs->mu);
	if (left > 0) {
		hie_log(HIE_LOG_WARN, "event=jobs.stop_timeout running=%d timeout_ms=%d", left, jobs->o.stop_timeout_ms);
		return HIE_ETIMEOUT;
	}
	for (int i = 0; i < jobs->nthreads; i++)
		pthread_join(jobs->threads[i], NULL);
	jobs->nthreads = 0;
	return HIE_OK;
}

void hie_jobs_destroy(struct hie_jobs *jobs)
{
	if (!jobs)
		return;
	pthread_mutex_lock(&jobs->mu);
	jobs->stopping = true;
	pthread_cond_broadcast(&jobs->cv);
	pthread_mutex_unlock(&jobs->mu);
	for (int i = 0; i < jobs->nthreads; i++)
		pthread_join(jobs->threads[i], NULL);
	free(jobs->threads);
	pthread_cond_destroy(&jobs->cv);
	pthread_mutex_destroy(&jobs->mu);
	free(jobs);
}

/* Metrics and retention -------------------------------------------------------------------------------------- */

struct depth_arg {
	hie_jobs_depth_fn fn;
	void *arg;
	PGresult *res;
};

static hie_err_t depth_fn(PGconn *c, void *arg)
{
	struct depth_arg *a = arg;
	PQclear(a->res);
	a->res = NULL;
	/* Done jobs are the idempotency record, not queue depth; each branch reads one partial index. */
	return hie_db_exec(c,
			   "SELECT kind, 'queued', count(*) FROM jobs WHERE state = 'queued' GROUP BY kind"
			   " UNION ALL SELECT kind, 'running', count(*) FROM jobs WHERE state = 'running' GROUP BY kind"
			   " UNION ALL SELECT kind, 'failed', count(*) FROM jobs WHERE state = 'failed' GROUP BY kind"
			   " ORDER BY 1, 2",
			   0, NULL, &a->res);
}

hie_err_t hie_jobs_depth(struct hie_db_pool *pool, hie_jobs_depth_fn fn, void *arg)
{
	struct depth_arg a = {.fn = fn, .arg = arg};
	hie_err_t err = hie_db_tx(pool, depth_fn, &a);
	if (err) {
		PQclear(a.res);
		return err;
	}
	for (int i = 0; i < PQntuples(a.res); i++) {
		long long n = 0;
		if (hie_db_get_ll(a.res, i, 2, &n) == HIE_OK)
			fn(PQgetvalue(a.res, i, 0), PQgetvalue(a.res, i, 1), n, arg);
	}
	PQclear(a.res);
	return HIE_OK;
}

struct sweep_arg {
	const char *params[1];
	long long deleted;
};

static hie_err_t sweep_fn(PGconn *c, void *arg)
{
	struct sweep_arg *a = arg;
	PGresult *res = NULL;
	/* In batches, so that a large backlog does not become one long transaction holding many row locks. */
	hie_err_t err = hie_db_exec(c,
				    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'done'"
				    " AND updated_at < now() - $1::bigint * interval '1 millisecond' LIMIT 5000)",
				    1, a->params, &res);
	if (err)
		return err;
	char *end;
	a->deleted = strtoll(PQcmdTuples(res), &end, 10);
	PQclear(res);
	return HIE_OK;
}

hie_err_t hie_jobs_sweep(struct hie_db_pool *pool, long long retention_ms, long long *deleted)
{
	char ms[24];
	long long total = 0;
	hie_err_t err = HIE_OK;
	if (retention_ms < 0)
		return HIE_EINVAL;
	snprintf(ms, sizeof ms, "%lld", retention_ms);
	struct sweep_arg a = {.params = {ms}};
	do {
		a.deleted = 0;
		err = hie_db_tx(pool, sweep_fn, &a);
		total += a.deleted;
	} while (!err && a.deleted >= 5000);
	if (deleted)
		*deleted = total;
	if (total)
		hie_log(HIE_LOG_INFO, "event=jobs.swept deleted=%lld", total);
	return err;
}
