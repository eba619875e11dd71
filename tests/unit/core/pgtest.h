/*
 * pgtest.h — test helper: a real embedded PostgreSQL cluster in a temporary directory (header-only).
 *
 *   struct pgtest t;
 *   if (pgtest_start(&t) != 0) ...          group setup; t.skip is set when the machine cannot run one
 *   pgtest_pool(&t, size, &pool)            a pool on the cluster's database
 *   pgtest_stop(&t)                         group teardown: stops the cluster and removes the directory
 *   pgtest_open / pgtest_close              the usual group setup/teardown: cluster, pool, schema
 *   pgtest_exec / pgtest_scalar             run SQL on a pool (statement; first value as an integer)
 *
 * When running as root (CI), the cluster runs as the unprivileged user "hienode", created here if missing.
 * A test is skipped with a message only when no PostgreSQL binaries exist or that user cannot be created;
 * any other failure to start is a test failure.
 */
#ifndef HIENODE_TESTS_PGTEST_H
#define HIENODE_TESTS_PGTEST_H

#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_db.h"
#include "core/core_pg.h"

#define PGTEST_USER "hienode"

struct pgtest {
	char dir[64];
	struct hie_pg *pg;
	int skip;
};

static inline int pgtest_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static inline void pgtest_rmrf(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, pgtest_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Returns 0 when the run_as user exists (created if needed), -1 (with a message) if not possible. */
static inline int pgtest_user(void)
{
	if (geteuid() != 0 || getpwnam(PGTEST_USER))
		return 0;
	int rc = system("useradd --system --no-create-home --shell /usr/sbin/nologin " PGTEST_USER
			" >/dev/null 2>&1");
	(void)rc;
	if (getpwnam(PGTEST_USER))
		return 0;
	fprintf(stderr, "SKIP: running as root and cannot create the user '" PGTEST_USER "' for PostgreSQL\n");
	return -1;
}

/* A fresh directory the cluster's user can traverse (mkdtemp makes it 0700 for root). */
static inline int pgtest_mkdir(char *out, size_t outlen)
{
	snprintf(out, outlen, "/tmp/hpg.XXXXXX");
	if (!mkdtemp(out))
		return -1;
	return chmod(out, 0711);
}

static inline struct hie_pg_opts pgtest_opts(const char *dir)
{
	struct hie_pg_opts o = {.state_dir = dir, .run_as = PGTEST_USER, .start_timeout_s = 60};
	return o;
}

static inline int pgtest_start(struct pgtest *t)
{
	char bindir[512];
	memset(t, 0, sizeof *t);
	if (hie_pg_find_bindir(NULL, 0, bindir, sizeof bindir) != HIE_OK) {
		fprintf(stderr, "SKIP: no PostgreSQL binaries (initdb, pg_ctl, postgres) found\n");
		t->skip = 1;
		return 0;
	}
	if (pgtest_user() != 0) {
		t->skip = 1;
		return 0;
	}
	if (pgtest_mkdir(t->dir, sizeof t->dir) != 0)
		return -1;
	struct hie_pg_opts o = pgtest_opts(t->dir);
	if (hie_pg_start(&t->pg, &o) != HIE_OK) {
		fprintf(stderr, "pgtest: cluster did not start; see %s/pg/log\n", t->dir);
		return -1;
	}
	return 0;
}

static inline hie_err_t pgtest_pool(const struct pgtest *t, int size, int statement_timeout_ms,
				    struct hie_db_pool **out)
{
	struct hie_db_opts o = {.conninfo = hie_pg_conninfo(t->pg),
				.size = size,
				.acquire_timeout_ms = 10000,
				.statement_timeout_ms = statement_timeout_ms};
	return hie_db_pool_open(out, &o);
}

static inline void pgtest_stop(struct pgtest *t)
{
	if (t->pg)
		hie_pg_stop(t->pg);
	t->pg = NULL;
	if (t->dir[0] && !getenv("PGTEST_KEEP"))
		pgtest_rmrf(t->dir);
}

/* A module's migrations, for pgtest_open. */
struct pgtest_schema {
	const struct hie_db_migration *migs;
	size_t n;
};

/*
 * Group setup shared by the database suites: starts the cluster, opens a pool of `size` connections and
 * applies the schemas in order. Returns 0 (also when t->skip is set: then *pool stays NULL) or -1.
 */
static inline int pgtest_open(struct pgtest *t, int size, const struct pgtest_schema *schemas, size_t nschemas,
			      struct hie_db_pool **pool)
{
	*pool = NULL;
	if (pgtest_start(t) != 0)
		return -1;
	if (t->skip)
		return 0;
	if (pgtest_pool(t, size, 0, pool) != HIE_OK)
		return -1;
	for (size_t i = 0; i < nschemas; i++)
		if (hie_db_migrate(*pool, schemas[i].migs, schemas[i].n, NULL) != HIE_OK)
			return -1;
	return 0;
}

static inline void pgtest_close(struct pgtest *t, struct hie_db_pool *pool)
{
	hie_db_pool_close(pool);
	pgtest_stop(t);
}

/* Runs one statement without parameters on a pooled connection. */
static inline hie_err_t pgtest_exec(struct hie_db_pool *pool, const char *sql)
{
	PGconn *c;
	hie_err_t err = hie_db_acquire(pool, -1, &c);
	if (err)
		return err;
	err = hie_db_exec(c, sql, 0, NULL, NULL);
	hie_db_release(pool, c, false);
	return err;
}

/* First value of a query (with at most one text parameter) as an integer; -1 on any failure. */
static inline long long pgtest_scalar(struct hie_db_pool *pool, const char *sql, const char *param)
{
	PGconn *c;
	PGresult *r;
	long long v = -1;
	if (hie_db_acquire(pool, -1, &c))
		return -1;
	const char *p[] = {param};
	if (hie_db_exec(c, sql, param ? 1 : 0, p, &r) == HIE_OK) {
		if (hie_db_get_ll(r, 0, 0, &v))
			v = -1;
		PQclear(r);
	}
	hie_db_release(pool, c, false);
	return v;
}

#define PGTEST_SKIP_IF_NEEDED(t)                                                                                   \
	do {                                                                                                       \
		if ((t)->skip)                                                                                     \
			skip();                                                                                    \
	} while (0)

#endif
