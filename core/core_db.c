/*
 * core_db.c — libpq connection pool, transaction helper, exec helpers and migrations. See core_db.h.
 *
 * The pool is an array of slots under one mutex; a slot is lent to one thread at a time, and everything
 * slow (connect, liveness check, rollback) happens outside the mutex by the thread that holds the slot.
 */
#include "core/core_db.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_log.h"
#include "core/core_time.h"

#define TX_MAX_ATTEMPTS 5
#define MIGRATE_LOCK_KEY "7522525414286437" /* any constant shared by every node; "hienode" in spirit */

struct slot {
	PGconn *conn;  /* NULL until first use or after it was found broken */
	bool in_use;
	bool broken;   /* closed because it failed; reopened on next acquire */
};

struct hie_db_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot *slots;
	int size;
	int in_use;
	char *conninfo;
	char appname[64];
	int acquire_timeout_ms;
	int statement_timeout_ms;
	int connect_timeout_s;
	struct hie_db_stats st;
};

/* Per thread: the SQLSTATE of the last failure, and whether a retryable one (40001/40P01) was seen since
 * the current hie_db_tx attempt began (later statements of an aborted transaction fail with 25P02). */
static _Thread_local char tl_sqlstate[6];
static _Thread_local bool tl_retry_seen;

const char *hie_db_sqlstate(void) { return tl_sqlstate; }

static bool is_retry_state(const char *s) { return strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0; }

/* Copies text for a log field: control characters become spaces, '"' becomes '\'', capped. */
static void log_text(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;
	for (; src && *src && o + 1 < dstlen; src++) {
		unsigned char c = (unsigned char)*src;
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c == '"' || c == '\\')
			c = '\'';
		if (c == ' ' && o > 0 && dst[o - 1] == ' ')
			continue;
		dst[o++] = (char)c;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

static void set_sqlstate(const char *s)
{
	size_t n = strlen(s);
	if (n > 5)
		n = 5;
	memcpy(tl_sqlstate, s, n);
	tl_sqlstate[n] = '\0';
	if (is_retry_state(tl_sqlstate))
		tl_retry_seen = true;
}

static hie_err_t map_sqlstate(const char *s)
{
	if (strcmp(s, "23505") == 0)
		return HIE_EEXIST;
	if (strcmp(s, "57014") == 0)
		return HIE_ETIMEOUT;
	if (is_retry_state(s))
		return HIE_EBUSY;
	return HIE_EDB;
}

/* Logs a failed statement: SQLSTATE and message, never parameters; for classes 22/23 (whose messages may
 * quote a value) only table and constraint names. */
static void log_failure(PGconn *conn, const PGresult *res, const char *sql)
{
	char sqlbuf[80], msg[256], table[64], cons[64];
	const char *state = tl_sqlstate;
	log_text(sqlbuf, sizeof sqlbuf, sql);
	int level = (is_retry_state(state) || strcmp(state, "23505") == 0) ? HIE_LOG_NOTICE : HIE_LOG_ERR;
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0) {
		log_text(table, sizeof table, res ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL);
		log_text(cons, sizeof cons, res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL);
		hie_log(level, "event=db.error sqlstate=%s table=%s constraint=%s sql=\"%s\"", state, table, cons,
			sqlbuf);
		return;
	}
	const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	log_text(msg, sizeof msg, m ? m : PQerrorMessage(conn));
	hie_log(level, "event=db.error sqlstate=%s msg=\"%s\" sql=\"%s\"", state, msg, sqlbuf);
}

/* Common tail of hie_db_exec and the PQexec paths: maps a result, logs failures. Takes ownership of res. */
static hie_err_t finish_result(PGconn *conn, PGresult *res, const char *sql, PGresult **out)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (out)
		*out = NULL;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out)
			*out = res;
		else
			PQclear(res);
		return HIE_OK;
	}
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (PQstatus(conn) != CONNECTION_OK && (!s || strncmp(s, "57P", 3) != 0))
		s = "08006";
	set_sqlstate(s ? s : "XX000");
	log_failure(conn, res, sql);
	PQclear(res);
	if (PQstatus(conn) != CONNECTION_OK)
		return HIE_EDB;
	return map_sqlstate(tl_sqlstate);
}

hie_err_t hie_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params, PGresult **out)
{
	if (out)
		*out = NULL;
	if (!conn || !sql || nparams < 0 || (nparams > 0 && !params))
		return HIE_EINVAL;
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	return finish_result(conn, res, sql, out);
}

hie_err_t hie_db_exec_bin(PGconn *conn, const char *sql, int nparams, const char *const *values, const int *lengths,
			  const int *formats, int result_format, PGresult **out)
{
	if (out)
		*out = NULL;
	if (!conn || !sql || nparams < 0 || (nparams > 0 && !values) || (result_format != 0 && result_format != 1))
		return HIE_EINVAL;
	for (int i = 0; formats && i < nparams; i++)
		if (formats[i] == 1 && (!lengths || lengths[i] < 0))
			return HIE_EINVAL;
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, result_format);
	return finish_result(conn, res, sql, out);
}

hie_err_t hie_db_get_ll(const PGresult *res, int row, int col, long long *out)
{
	if (!res || row < 0 || col < 0 || row >= PQntuples(res) || col >= PQnfields(res) ||
	    PQgetisnull(res, row, col))
		return HIE_EINVAL;
	const char *v = PQgetvalue(res, row, col);
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end != '\0')
		return HIE_EINVAL;
	*out = x;
	return HIE_OK;
}

/* Pool ------------------------------------------------------------------------------------------------------ */

static void notice_to_log(void *arg, const char *message)
{
	char msg[256];
	(void)arg;
	log_text(msg, sizeof msg, message);
	hie_log(HIE_LOG_DEBUG, "event=db.notice msg=\"%s\"", msg);
}

static PGconn *pool_connect(struct hie_db_pool *pool)
{
	char ct[16], st[24];
	snprintf(ct, sizeof ct, "%d", pool->connect_timeout_s);
	const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
	const char *vals[] = {pool->conninfo, pool->appname, ct, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		hie_log(HIE_LOG_ERR, "event=db.connect_failed msg=\"out of memory\"");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		char msg[256];
		log_text(msg, sizeof msg, PQerrorMessage(c));
		hie_log(HIE_LOG_ERR, "event=db.connect_failed msg=\"%s\"", msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, notice_to_log, NULL);
	/* A session setting rather than the "options" startup parameter, which pgbouncer rejects by default. */
	if (pool->statement_timeout_ms >= 0) {
		snprintf(st, sizeof st, "%d", pool->statement_timeout_ms);
		const char *p[] = {st};
		if (hie_db_exec(c, "SELECT set_config('statement_timeout', $1, false)", 1, p, NULL)) {
			PQfinish(c);
			return NULL;
		}
	}
	pthread_mutex_lock(&pool->mu);
	pool->st.reconnects++;
	pthread_mutex_unlock(&pool->mu);
	return c;
}

/*
 * True when an idle pooled connection is still usable. The server may have closed it while it sat in the
 * pool (pg_terminate_backend, restart, idle timeout). A terminated backend first sends a FATAL error and then
 * closes; the EOF may not have arrived yet when we look. The node never LISTENs, so an idle connection has
 * no reason to receive anything: any unsolicited input means the server is dropping it, and it is replaced.
 */
static bool conn_alive(PGconn *c)
{
	if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE)
		return false;
	struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
	if (p.fd < 0 || poll(&p, 1, 0) != 0)
		return false;
	return true;
}

hie_err_t hie_db_pool_open(struct hie_db_pool **out, const struct hie_db_opts *opts)
{
	hie_err_t err = HIE_OK;
	*out = NULL;
	if (!opts || !opts->conninfo || opts->size < 0 || opts->size > 4096)
		return HIE_EINVAL;
	struct hie_db_pool *p = calloc(1, sizeof *p);
	if (!p)
		return HIE_ENOMEM;
	p->size = opts->size ? opts->size : 8;
	p->acquire_timeout_ms = opts->acquire_timeout_ms > 0 ? opts->acquire_timeout_ms : 5000;
	p->statement_timeout_ms = opts->statement_timeout_ms ? opts->statement_timeout_ms : 30000;
	p->connect_timeout_s = opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 5;
	snprintf(p->appname, sizeof p->appname, "%s", opts->application_name ? opts->application_name : "hienode");
	p->conninfo = strdup(opts->conninfo);
	p->slots = calloc((size_t)p->size, sizeof *p->slots);
	if (!p->conninfo || !p->slots) {
		free(p->conninfo);
		free(p->slots);
		free(p);
		return HIE_ENOMEM;
	}
	hie_cond_init_monotonic(&p->cv);
	pthread_mutex_init(&p->mu, NULL);
	p->st.size = p->size;
	if (opts->connect_at_open) {
		for (int i = 0; i < p->size; i++) {
			p->slots[i].conn = pool_connect(p);
			if (!p->slots[i].conn) {
				err = HIE_EDB;
				hie_db_pool_close(p);
				return err;
			}
		}
	}
	*out = p;
	return HIE_OK;
}

void hie_db_pool_close(struct hie_db_pool *pool)
{
	if (!pool)
		return;
	for (int i = 0; i < pool->size; i++) {
		if (pool->slots[i].in_use)
			hie_panic("event=db.pool_close_in_use slot=%d", i);
		if (pool->slots[i].conn)
			PQfinish(pool->slots[i].conn);
	}
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool->slots);
	free(pool->conninfo);
	free(pool);
}

/* A free slot, preferring one with an open connection; -1 if none. Called with the mutex held. */
static int free_slot(struct hie_db_pool *pool)
{
	int any = -1;
	for (int i = 0; i < pool->size; i++) {
		if (pool->slots[i].in_use)
			continue;
		if (pool->slots[i].conn)
			return i;
		if (any < 0)
			any = i;
	}
	return any;
}

hie_err_t hie_db_acquire(struct hie_db_pool *pool, int timeout_ms, PGconn **out)
{
	struct timespec deadline;
	bool waited = false;
	int i;
	*out = NULL;
	if (timeout_ms < 0)
		timeout_ms = pool->acquire_timeout_ms;
	hie_deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&pool->mu);
	while ((i = free_slot(pool)) < 0) {
		if (!waited)
			pool->st.waits++;
		waited = true;
		int rc = pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline);
		if (rc == ETIMEDOUT && (i = free_slot(pool)) < 0) {
			pool->st.timeouts++;
			pthread_mutex_unlock(&pool->mu);
			hie_log(HIE_LOG_WARN, "event=db.acquire_timeout timeout_ms=%d size=%d", timeout_ms, pool->size);
			return HIE_EBUSY;
		}
		if (i >= 0)
			break;
	}
	struct slot *s = &pool->slots[i];
	s->in_use = true;
	pool->in_use++;
	pthread_mutex_unlock(&pool->mu);

	/* Only the holder of a slot changes its conn, and always under the mutex (release scans conns). */
	PGconn *c = s->conn;
	if (!c || !conn_alive(c)) {
		if (c) {
			hie_log(HIE_LOG_NOTICE, "event=db.reconnect reason=closed_while_idle");
			pthread_mutex_lock(&pool->mu);
			s->conn = NULL;
			pthread_mutex_unlock(&pool->mu);
			PQfinish(c);
		}
		c = pool_connect(pool);
	}
	pthread_mutex_lock(&pool->mu);
	s->conn = c;
	if (!s->conn) {
		s->in_use = false;
		s->broken = true;
		pool->in_use--;
		pthread_cond_signal(&pool->cv);
		pthread_mutex_unlock(&pool->mu);
		return HIE_EDB;
	}
	s->broken = false;
	pool->st.acquires++;
	pthread_mutex_unlock(&pool->mu);
	*out = s->conn;
	return HIE_OK;
}

void hie_db_release(struct hie_db_pool *pool, PGconn *conn, bool broken)
{
	struct slot *s = NULL;
	if (!conn)
		return;
	pthread_mutex_lock(&pool->mu);
	for (int i = 0; i < pool->size; i++)
		if (pool->slots[i].conn == conn && pool->slots[i].in_use)
			s = &pool->slots[i];
	pthread_mutex_unlock(&pool->mu);
	if (!s)
		hie_panic("event=db.release_unknown_connection");

	if (!broken && PQstatus(conn) != CONNECTION_OK)
		broken = true;
	if (!broken) {
		PGTransactionStatusType ts = PQtransactionStatus(conn);
		if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
			hie_log(HIE_LOG_WARN, "event=db.release_in_transaction action=rollback");
			broken = hie_db_exec(conn, "ROLLBACK", 0, NULL, NULL) != HIE_OK;
		} else if (ts != PQTRANS_IDLE) {
			broken = true; /* a query still running or unknown state: do not reuse */
		}
	}
	if (broken) {
		PQfinish(conn);
		conn = NULL;
	}
	pthread_mutex_lock(&pool->mu);
	if (broken) {
		s->conn = NULL;
		s->broken = true;
	}
	s->in_use = false;
	pool->in_use--;
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

void hie_db_stats(struct hie_db_pool *pool, struct hie_db_stats *out)
{
	pthread_mutex_lock(&pool->mu);
	*out = pool->st;
	out->size = pool->size;
	out->in_use = pool->in_use;
	out->broken = 0;
	for (int i = 0; i < pool->size; i++)
		out->broken += pool->slots[i].broken;
	pthread_mutex_unlock(&pool->mu);
}

hie_err_t hie_db_ping(struct hie_db_pool *pool, int timeout_ms)
{
	PGconn *c;
	struct timespec deadline;
	bool broken = false;
	hie_err_t err;
	hie_deadline_after(&deadline, timeout_ms);
	err = hie_db_acquire(pool, timeout_ms, &c);
	if (err)
		return err;
	/* Asynchronous so that a hung server or network cannot hold /healthz longer than timeout_ms. */
	if (!PQsendQueryParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0)) {
		err = HIE_EDB;
		broken = true;
		goto out;
	}
	while (PQisBusy(c)) {
		long left = hie_ms_until(&deadline);
		struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			char eb[128];
			PGcancel *cn = PQgetCancel(c);
			if (cn) {
				PQcancel(cn, eb, sizeof eb);
				PQfreeCancel(cn);
			}
			hie_log(HIE_LOG_WARN, "event=db.ping_timeout timeout_ms=%d", timeout_ms);
			err = HIE_ETIMEOUT;
			broken = true;
			goto out;
		}
		if (!PQconsumeInput(c)) {
			err = HIE_EDB;
			broken = true;
			goto out;
		}
	}
	PGresult *r;
	while ((r = PQgetResult(c)) != NULL) {
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			err = HIE_EDB;
		PQclear(r);
	}
out:
	hie_db_release(pool, c, broken);
	return err;
}

/* Transactions ----------------------------------------------------------------------------------------------- */

/* One attempt. *retry is set when running fn again is safe and useful. */
static hie_err_t tx_once(struct hie_db_pool *pool, hie_db_tx_fn fn, void *arg, bool *retry)
{
	PGconn *c;
	PGresult *res = NULL;
	hie_err_t err;
	bool broken = false;
	*retry = false;
	err = hie_db_acquire(pool, -1, &c);
	if (err)
		return err;
	tl_retry_seen = false;
	err = hie_db_exec(c, "BEGIN", 0, NULL, NULL);
	if (err) {
		/* Nothing was done: a connection lost here is safe to retry on a fresh one. */
		*retry = PQstatus(c) != CONNECTION_OK;
		err = HIE_EDB;
		goto out;
	}
	err = fn(c, arg);
	if (err) {
		if (PQstatus(c) != CONNECTION_OK) {
			/* Lost before COMMIT was sent: the server rolls back, so running fn again is safe. */
			*retry = true;
			hie_log(HIE_LOG_NOTICE, "event=db.tx_connection_lost phase=body");
		} else {
			*retry = tl_retry_seen;
			if (hie_db_exec(c, "ROLLBACK", 0, NULL, NULL))
				broken = true;
		}
		goto out;
	}
	res = PQexecParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
	if (PQstatus(c) != CONNECTION_OK) {
		/* COMMIT was sent and the link died: it may or may not have committed. Never re-run fn here. */
		char msg[200];
		log_text(msg, sizeof msg, PQerrorMessage(c));
		hie_log(HIE_LOG_ERR, "event=db.commit_outcome_unknown msg=\"%s\"", msg);
		set_sqlstate("08006");
		PQclear(res);
		err = HIE_EDB;
		goto out;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		err = finish_result(c, res, "COMMIT", NULL); /* a definite rollback (e.g. 40001 at commit) */
		*retry = tl_retry_seen;
		if (err == HIE_EBUSY && !*retry)
			err = HIE_EDB;
		goto out;
	}
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		/* The transaction had failed and fn ignored it: the server answered ROLLBACK. */
		hie_log(HIE_LOG_ERR, "event=db.tx_rolled_back reason=error_ignored_by_caller");
		set_sqlstate("25P02");
		err = HIE_EDB;
	}
	PQclear(res);
out:
	hie_db_release(pool, c, broken);
	return err;
}

hie_err_t hie_db_tx(struct hie_db_pool *pool, hie_db_tx_fn fn, void *arg)
{
	hie_err_t err;
	bool retry;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&retry;
	for (int attempt = 1;; attempt++) {
		err = tx_once(pool, fn, arg, &retry);
		if (!err || !retry)
			break;
		if (attempt >= TX_MAX_ATTEMPTS) {
			hie_log(HIE_LOG_ERR, "event=db.tx_gave_up attempts=%d sqlstate=%s", attempt, tl_sqlstate);
			if (err == HIE_EBUSY)
				err = HIE_EDB;
			break;
		}
		pthread_mutex_lock(&pool->mu);
		pool->st.retries++;
		pthread_mutex_unlock(&pool->mu);
		hie_log(HIE_LOG_NOTICE, "event=db.tx_retry attempt=%d sqlstate=%s", attempt, tl_sqlstate);
		/* Randomized so that two transactions that deadlocked do not collide again in lockstep. */
		struct timespec ts = {0, (long)(5 + attempt * 10 + (int)(rand_r(&seed) % 20)) * 1000000L};
		nanosleep(&ts, NULL);
	}
	return err;
}

/* Migrations ------------------------------------------------------------------------------------------------ */

struct mig_arg {
	const struct hie_db_migration *m;
	bool applied;
};

static hie_err_t mig_bootstrap(PGconn *c, void *arg)
{
	(void)arg;
	hie_err_t err = hie_db_exec(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL);
	if (err)
		return err;
	return hie_db_exec(c,
			   "CREATE TABLE IF NOT EXISTS schema_migrations ("
			   " module text NOT NULL, version int NOT NULL, name text NOT NULL,"
			   " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (module, version))",
			   0, NULL, NULL);
}

static hie_err_t mig_apply(PGconn *c, void *arg)
{
	struct mig_arg *a = arg;
	PGresult *res = NULL;
	char ver[16];
	hie_err_t err;
	a->applied = false;
	snprintf(ver, sizeof ver, "%d", a->m->version);
	const char *p[] = {a->m->module, ver, a->m->name};
	/* Serializes concurrent migrators; the check below then runs with a snapshot taken after the lock. */
	err = hie_db_exec(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL);
	if (err)
		return err;
	err = hie_db_exec(c, "SELECT 1 FROM schema_migrations WHERE module = $1 AND version = $2::int", 2, p, &res);
	if (err)
		return err;
	int found = PQntuples(res);
	PQclear(res);
	if (found)
		return HIE_OK;
	/* Static SQL from the code, possibly several statements: the simple protocol is required here. */
	err = finish_result(c, PQexec(c, a->m->sql), a->m->name, NULL);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=db.migration_failed module=%s version=%d name=\"%s\" sqlstate=%s",
			a->m->module, a->m->version, a->m->name, tl_sqlstate);
		return HIE_EDB;
	}
	err = hie_db_exec(c, "INSERT INTO schema_migrations (module, version, name) VALUES ($1, $2::int, $3)", 3, p,
			  NULL);
	if (!err)
		a->applied = true;
	return err;
}

static hie_err_t mig_check(const struct hie_db_migration *migs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct hie_db_migration *m = &migs[i];
		if (!m->module || !m->name || !m->sql || m->version <= 0 || !m->module[0])
			return HIE_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(migs[j].module, m->module) == 0 && migs[j].version >= m->version) {
				hie_log(HIE_LOG_ERR, "event=db.migrations_out_of_order module=%s version=%d",
					m->module, m->version);
				return HIE_EINVAL;
			}
	}
	return HIE_OK;
}

hie_err_t hie_db_migrate(struct hie_db_pool *pool, const struct hie_db_migration *migs, size_t n, int *applied)
{
	hie_err_t err;
	int count = 0;
	if (applied)
		*applied = 0;
	if (n > 0 && !migs)
		return HIE_EINVAL;
	err = mig_check(migs, n);
	if (err)
		return err;
	err = hie_db_tx(pool, mig_bootstrap, NULL);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		struct mig_arg a = {.m = &migs[i]};
		err = hie_db_tx(pool, mig_apply, &a);
		if (err)
			break;
		if (a.applied) {
			count++;
			hie_log(HIE_LOG_NOTICE, "event=db.migration_applied module=%s version=%d name=\"%s\"",
				migs[i].module, migs[i].version, migs[i].name);
		}
	}
	if (applied)
		*applied = count;
	return err;
}
