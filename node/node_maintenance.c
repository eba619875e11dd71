/*
 * node_maintenance.c — the node's own housekeeping jobs.
 *
 * core.sweep: deletes finished jobs older than [jobs] retention (failed ones stay for the operator) and HL7 v2
 * control-id records older than [mllp] dedup_retention (notify_sweep). One job
 * per UTC day, made idempotent by its dedup key (the day), so any number of nodes sharing the database
 * enqueue it without duplicates; each run enqueues the next day's.
 */
#include <stdio.h>
#include <time.h>

#include "core/core_jobs.h"
#include "core/core_log.h"
#include "node/node.h"
#include "notify/notify.h"

#define SWEEP_KIND "core.sweep"

struct sweep {
	struct hie_db_pool *pool;
	long long retention_ms;
	long long hl7_retention_ms;
	time_t day; /* the day to enqueue for, set before hie_db_tx */
};

static struct sweep sweep_state;

static hie_err_t enqueue_day(PGconn *conn, void *arg)
{
	struct sweep *s = arg;
	struct tm tm;
	char key[32];
	gmtime_r(&s->day, &tm);
	snprintf(key, sizeof key, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	long long delay = ((long long)s->day - (long long)time(NULL)) * 1000;
	return hie_jobs_enqueue(conn, SWEEP_KIND, "", key, delay > 0 ? delay : 0, NULL);
}

static hie_err_t sweep_run(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct sweep *s = arg;
	long long deleted = 0;
	long long hl7 = 0;
	hie_err_t err = hie_jobs_sweep(s->pool, s->retention_ms, &deleted);
	if (!err)
		err = notify_sweep(s->pool, s->hl7_retention_ms, &hl7);
	if (err) {
		snprintf(errbuf, errlen, "sweep failed: %s", hie_errname(err));
		return err;
	}
	hie_log(HIE_LOG_INFO, "event=jobs.sweep job=%lld deleted=%lld hl7_control_ids_deleted=%lld", job->id, deleted,
		hl7);
	s->day = (time(NULL) / 86400 + 1) * 86400; /* next midnight UTC */
	return hie_db_tx(s->pool, enqueue_day, s);
}

hie_err_t node_maintenance_register(struct hie_jobs *jobs, struct hie_db_pool *pool, const struct hie_cfg *cfg)
{
	sweep_state.pool = pool;
	sweep_state.retention_ms = hie_cfg_int(cfg, "jobs", "retention");
	sweep_state.hl7_retention_ms = hie_cfg_int(cfg, "mllp", "dedup_retention");
	const struct hie_jobs_handler h = {.kind = SWEEP_KIND, .fn = sweep_run, .arg = &sweep_state};
	hie_err_t err = hie_jobs_register(jobs, &h);
	if (err)
		return err;
	struct sweep first = {.pool = pool, .day = (time(NULL) / 86400) * 86400};
	return hie_db_tx(pool, enqueue_day, &first);
}
