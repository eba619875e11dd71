/*
 * core_jobs.h — the durable job queue (ARCHITECTURE.md "Job queue") and its worker pool.
 *
 * A job is a row of table jobs: kind, payload, optional dedup key (unique per kind), state
 * queued → running → done | failed (or back to queued for a retry), attempts, max_attempts, run_at,
 * lease_until, last_error. Producers call hie_jobs_enqueue() inside the transaction of the change that causes
 * the job. Workers claim a due job (or one whose lease expired: its node died) in a short transaction
 * (FOR UPDATE SKIP LOCKED; state running, attempts + 1, lease set), run the handler outside any transaction,
 * and complete it in a second transaction that first checks the lease is still theirs (same attempt number,
 * still running): a worker whose lease expired cannot overwrite the result of a newer attempt. A failure is
 * retried after an exponential backoff with jitter (capped); HIE_EPERMANENT or the last attempt parks the job
 * as failed, visible to the operator. Done jobs are kept as the idempotency record (hie_jobs_sweep removes
 * old ones). Delivery is at least once: handlers must be idempotent on a natural key.
 *
 * Entry points: hie_jobs_migrations (schema), hie_jobs_enqueue, hie_jobs_create/register/start/wake/stop/
 * destroy (worker pool), hie_jobs_claim/finish/extend/run_one (one step, for tools and tests), hie_jobs_depth
 * (/metrics), hie_jobs_sweep (retention).
 */
#ifndef HIENODE_CORE_JOBS_H
#define HIENODE_CORE_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "core/core_db.h"
#include "core/core_err.h"

#define HIE_JOBS_KIND_MAX 63        /* bytes of a kind name */
#define HIE_JOBS_ERROR_MAX 512      /* bytes of last_error kept */
#define HIE_JOBS_MAX_HANDLERS 64

/* Core's schema (module "core"): pass to hie_db_migrate together with the other modules' migrations. */
extern const struct hie_db_migration hie_jobs_migrations[];
extern const size_t hie_jobs_migrations_count;

/*
 * Enqueues a job on `tx` (the caller's open transaction; it becomes visible when that commits, and vanishes
 * if it rolls back). payload may be NULL (empty). With a dedup_key, a second enqueue of the same kind and key
 * is a successful no-op and *id (may be NULL) receives the existing job's id (0 if the caller's snapshot
 * cannot see it). delay_ms > 0 postpones the first run. HIE_EINVAL for a bad kind; HIE_EDB otherwise.
 */
hie_err_t hie_jobs_enqueue(PGconn *tx, const char *kind, const char *payload, const char *dedup_key,
			   long long delay_ms, long long *id);

/* A claimed job, as handed to a handler. Owned by the worker; valid during the handler call. */
struct hie_job {
	long long id;
	char kind[HIE_JOBS_KIND_MAX + 1];
	char *payload;     /* NUL-terminated, never NULL */
	int attempts;      /* this attempt, 1-based; also the lease token */
	int max_attempts;
};

/*
 * A handler returns HIE_OK (done), HIE_EPERMANENT (failed now, never retried) or any other error (retried
 * with backoff until max_attempts). It may write a one-line reason into errbuf (kept as last_error; never
 * payload or patient data). It runs outside any transaction and must be idempotent.
 */
typedef hie_err_t (*hie_job_fn)(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);

struct hie_jobs_handler {
	const char *kind;   /* copied */
	hie_job_fn fn;
	void *arg;
	int max_attempts;   /* 0 = the pool's default */
	int lease_ms;       /* 0 = the pool's default; the handler must finish within it */
};

struct hie_jobs_opts {
	int workers;            /* threads; 0 = none (claim/run_one can still be used) */
	int poll_ms;            /* idle wait between looks at the queue; 0 = 1000 */
	int max_attempts;       /* default per handler; 0 = 10 */
	int lease_ms;           /* default per handler; 0 = 300000 */
	int backoff_base_ms;    /* first retry delay; 0 = 1000 */
	int backoff_max_ms;     /* cap; 0 = 3600000 */
	int stop_timeout_ms;    /* how long hie_jobs_stop waits for running handlers; 0 = 20000 */
};

struct hie_jobs;

/* The pool must outlive jobs; each worker holds at most one connection at a time, and none while a handler
 * runs. The caller owns *out and frees it with hie_jobs_destroy(). */
hie_err_t hie_jobs_create(struct hie_jobs **out, struct hie_db_pool *pool, const struct hie_jobs_opts *opts);
/* Registers a handler before hie_jobs_start. HIE_EEXIST for a kind registered twice, HIE_ETOOBIG past
 * HIE_JOBS_MAX_HANDLERS, HIE_EINVAL for a bad kind. */
hie_err_t hie_jobs_register(struct hie_jobs *jobs, const struct hie_jobs_handler *h);
/* Starts the worker threads. HIE_ESYS if a thread cannot be created (those started are stopped). */
hie_err_t hie_jobs_start(struct hie_jobs *jobs);
/* Wakes idle workers now (call after committing a transaction that enqueued jobs); otherwise they poll. */
void hie_jobs_wake(struct hie_jobs *jobs);
/* True once hie_jobs_stop was called: long handlers may check it and give up early (returning an error). */
bool hie_jobs_stopping(const struct hie_jobs *jobs);
/*
 * Stops claiming, wakes idle workers, and waits up to stop_timeout_ms for running handlers. HIE_OK when every
 * thread ended; HIE_ETIMEOUT otherwise: those threads are still running and hie_jobs_destroy would wait for
 * them, so the node should exit instead (their leases expire and the jobs run again).
 */
hie_err_t hie_jobs_stop(struct hie_jobs *jobs);
/* Stops (waiting without bound) and frees. NULL is allowed. */
void hie_jobs_destroy(struct hie_jobs *jobs);

/*
 * One step of a worker, usable without threads. hie_jobs_claim claims one due job of a registered kind;
 * HIE_ENOTFOUND when none is due. The caller frees *out with hie_jobs_job_free() after hie_jobs_finish.
 * hie_jobs_finish records a handler's result: HIE_EDENIED when the lease is no longer ours (it expired and the
 * job was claimed again, or finished by someone else): nothing is written.
 * hie_jobs_run_one = claim + handler + finish; HIE_ENOTFOUND when nothing was due.
 */
hie_err_t hie_jobs_claim(struct hie_jobs *jobs, struct hie_job **out);
hie_err_t hie_jobs_finish(struct hie_jobs *jobs, const struct hie_job *job, hie_err_t result, const char *error);
void hie_jobs_job_free(struct hie_job *job);
/* Extends a running job's lease to now + lease_ms (a handler that legitimately takes long calls it from
 * time to time). HIE_EDENIED when the lease is no longer ours: the handler should stop, a newer attempt runs. */
hie_err_t hie_jobs_extend(struct hie_jobs *jobs, const struct hie_job *job, int lease_ms);
hie_err_t hie_jobs_run_one(struct hie_jobs *jobs);

/* Queue depth by kind and state, one callback per (kind, state) with a non-zero count. */
typedef void (*hie_jobs_depth_fn)(const char *kind, const char *state, long long count, void *arg);
hie_err_t hie_jobs_depth(struct hie_db_pool *pool, hie_jobs_depth_fn fn, void *arg);

/* Deletes done jobs finished more than retention_ms ago (failed ones are kept for the operator). */
hie_err_t hie_jobs_sweep(struct hie_db_pool *pool, long long retention_ms, long long *deleted);

#endif
