/*
 * node_status.c — `hienode migrate` and `hienode status`, one-shot commands on the node's database.
 *
 * With the embedded cluster they work whether the node runs or not: a cluster they had to start is stopped
 * again, a running one is left alone.
 */
#include <limits.h>
#include <stdio.h>

#include "core/core_jobs.h"
#include "core/core_log.h"
#include "hisp/hisp.h"
#include "node/node.h"

int node_cmd_migrate(const struct node_opts *o)
{
	struct node_oneshot s = {0};
	hie_err_t err = node_oneshot_open(&s, o);
	if (!err)
		err = node_db_migrate(s.db.pool);
	node_oneshot_close(&s);
	if (err) {
		fprintf(stderr, "hienode: migrate failed: %s\n", hie_strerror(err));
		return 1;
	}
	printf("migrations: up to date\n");
	return 0;
}

static void print_depth(const char *kind, const char *state, long long count, void *arg)
{
	int *rows = arg;
	printf("  %-32s %-8s %lld\n", kind, state, count);
	(*rows)++;
}

static hie_err_t print_failed(struct hie_db_pool *pool)
{
	PGconn *conn;
	PGresult *res = NULL;
	hie_err_t err = hie_db_acquire(pool, -1, &conn);
	if (err)
		return err;
	err = hie_db_exec(conn,
			  "SELECT id, kind, attempts, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			  " coalesce(last_error, '') FROM jobs WHERE state = 'failed' ORDER BY id DESC LIMIT 50",
			  0, NULL, &res);
	if (!err) {
		printf("failed jobs (newest first, at most 50): %d\n", PQntuples(res));
		for (int i = 0; i < PQntuples(res); i++)
			printf("  id=%s kind=%s attempts=%s at=%s error=%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
	}
	PQclear(res);
	hie_db_release(pool, conn, err == HIE_EDB);
	return err;
}

int node_cmd_status(const struct node_opts *o)
{
	struct node_oneshot s = {0};
	int rows = 0;
	hie_err_t err = node_oneshot_open(&s, o);
	if (!err)
		err = node_db_migrate(s.db.pool);
	if (!err) {
		printf("jobs by kind and state:\n");
		err = hie_jobs_depth(s.db.pool, print_depth, &rows);
		if (!err && rows == 0)
			printf("  (none)\n");
	}
	if (!err)
		err = print_failed(s.db.pool);
	int rc = 0;
	if (!err) {
		struct hisp_cli c = {.pool = s.db.pool, .cfg = s.cfg, .state_dir = s.state_dir, .out = stdout, .err = stderr};
		rc = hisp_cli_status(&c);
	}
	node_oneshot_close(&s);
	if (err) {
		fprintf(stderr, "hienode: status failed: %s\n", hie_strerror(err));
		return 1;
	}
	return rc;
}
