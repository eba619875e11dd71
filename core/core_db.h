/*
 * core_db.h — PostgreSQL through libpq: a fixed pool of persistent connections, a transaction helper
 * with retries, small exec/result helpers, and numbered schema migrations.
 *
 * Entry points:
 *   hie_db_pool_open / hie_db_pool_close       N connections (opened lazily, reconnected when broken)
 *   hie_db_acquire / hie_db_release            borrow one connection with a deadline (HIE_EBUSY on timeout)
 *   hie_db_tx                                  BEGIN, fn(conn, arg), COMMIT; retried on 40001/40P01 and on
 *                                              a connection lost before COMMIT was sent
 *   hie_db_exec                                PQexecParams (unnamed statement, text params) with error mapping
 *   hie_db_exec_bin                            the same with binary parameters/results (document bytes)
 *   hie_db_ping, hie_db_stats                  /healthz and /metrics
 *   hie_db_migrate                             apply missing migrations under an advisory lock
 *
 * Queries use PQexecParams only (unnamed statements), so the pool also works behind pgbouncer in
 * transaction pooling mode. Errors are logged with the SQLSTATE and the libpq message; parameter values are
 * never logged (they may be patient data), and for data/integrity errors (classes 22 and 23), whose message
 * can quote a value, only the SQLSTATE, table and constraint names are logged.
 *
 * Errors: HIE_EDB (database refused or unreachable), HIE_EBUSY (no connection free in time; or a
 * serialization failure/deadlock outside hie_db_tx), HIE_EEXIST (unique violation 23505), HIE_ETIMEOUT
 * (statement timeout 57014), HIE_ENOMEM, HIE_EINVAL.
 */
#ifndef HIENODE_CORE_DB_H
#define HIENODE_CORE_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "core/core_err.h"

struct hie_db_opts {
	const char *conninfo;          /* libpq conninfo or URL; copied */
	int size;                      /* connections; 0 = 8 */
	int acquire_timeout_ms;        /* default wait in hie_db_tx; 0 = 5000 */
	int statement_timeout_ms;      /* set on every connection (a session SET); 0 = 30000; < 0 = none.
					* Behind pgbouncer in transaction mode use < 0 and ALTER ROLE … SET
					* statement_timeout instead: session settings do not follow a client there. */
	int connect_timeout_s;         /* libpq connect_timeout; 0 = 5 */
	const char *application_name;  /* NULL = "hienode" */
	bool connect_at_open;          /* true: open every connection now and fail if one cannot be opened */
};

struct hie_db_pool;

struct hie_db_stats {
	int size;                      /* connections in the pool */
	int in_use;                    /* lent out now */
	int broken;                    /* marked broken, reconnected on next use */
	unsigned long long acquires;   /* successful acquires */
	unsigned long long waits;      /* acquires that found no free connection (then got one or timed out) */
	unsigned long long timeouts;   /* acquires that gave up (HIE_EBUSY) */
	unsigned long long reconnects; /* connections (re)opened */
	unsigned long long retries;    /* hie_db_tx attempts repeated */
};

/* Opens a pool; the caller owns *out and frees it with hie_db_pool_close(). HIE_EDB when connect_at_open fails. */
hie_err_t hie_db_pool_open(struct hie_db_pool **out, const struct hie_db_opts *opts);
/* Closes every connection. All connections must have been released. NULL is allowed. */
void hie_db_pool_close(struct hie_db_pool *pool);

/*
 * Borrows a connection, waiting up to timeout_ms (< 0: the pool's acquire_timeout). The connection is
 * checked (and reopened if it was broken or the server closed it) before it is handed out.
 * HIE_EBUSY: none free in time; HIE_EDB: the connection could not be (re)opened.
 * The pool keeps ownership; give it back with hie_db_release().
 */
hie_err_t hie_db_acquire(struct hie_db_pool *pool, int timeout_ms, PGconn **out);
/*
 * Gives a connection back. broken = true (or a connection whose status is not CONNECTION_OK) makes the
 * pool close and reopen it on next use. A connection left inside a transaction is rolled back.
 */
void hie_db_release(struct hie_db_pool *pool, PGconn *conn, bool broken);

void hie_db_stats(struct hie_db_pool *pool, struct hie_db_stats *out);

/* SELECT 1 on a pooled connection within timeout_ms (client-side deadline, the query is cancelled after it). */
hie_err_t hie_db_ping(struct hie_db_pool *pool, int timeout_ms);

/*
 * Runs fn inside BEGIN … COMMIT on a pooled connection. fn returns 0 to commit, anything else to roll back
 * (that value is returned). The whole fn is run again (up to 5 attempts, short randomized backoff) when
 * the transaction failed with SQLSTATE 40001 or 40P01 (including at COMMIT), or when the connection was lost
 * before COMMIT was sent: fn must therefore be safe to re-run (keep its side effects in the database).
 * A connection lost during COMMIT is NOT retried: the outcome is unknown, HIE_EDB is returned and logged.
 * fn may start with "SET TRANSACTION ISOLATION LEVEL …". A COMMIT that the server turned into ROLLBACK
 * (fn ignored an error) returns HIE_EDB.
 */
typedef hie_err_t (*hie_db_tx_fn)(PGconn *conn, void *arg);
hie_err_t hie_db_tx(struct hie_db_pool *pool, hie_db_tx_fn fn, void *arg);

/*
 * PQexecParams with text parameters (NULL entries are SQL NULL). On success *out (if out is not NULL)
 * receives the result, which the caller frees with PQclear(); on failure *out is NULL, the error is logged
 * (never the parameters) and mapped as described above. hie_db_sqlstate() then gives the SQLSTATE.
 */
hie_err_t hie_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params, PGresult **out);
/*
 * hie_db_exec with per-parameter formats and lengths (PQexecParams as it stands): formats[i] 1 sends
 * values[i] as lengths[i] raw bytes (binary; e.g. bytea without hex or escape encoding), 0 as text
 * (lengths ignored; formats NULL = all text). result_format 1 asks for every column in binary (bytea as its
 * raw bytes, PQgetlength giving the size), 0 for text. Same ownership, logging and error mapping as
 * hie_db_exec; HIE_EINVAL for bad arguments.
 */
hie_err_t hie_db_exec_bin(PGconn *conn, const char *sql, int nparams, const char *const *values, const int *lengths,
			  const int *formats, int result_format, PGresult **out);
/* The SQLSTATE of the last failed hie_db_exec/hie_db_tx on this thread ("" if none; "08006" for a lost link). */
const char *hie_db_sqlstate(void);

/* Parses the text value at (row, col) as an integer; HIE_EINVAL if NULL, out of range or not a number. */
hie_err_t hie_db_get_ll(const PGresult *res, int row, int col, long long *out);

/* Migrations --------------------------------------------------------------------------------------------- */

struct hie_db_migration {
	const char *module;   /* "core", "registry", … */
	int version;          /* > 0, strictly increasing within a module in the array */
	const char *name;     /* short description, recorded */
	const char *sql;      /* one or more statements; run with PQexec (static SQL, no parameters) */
};

/*
 * Applies the migrations of the array that schema_migrations does not list yet, in array order, each in its
 * own transaction together with its schema_migrations row, under pg_advisory_xact_lock so that nodes
 * starting together on one database do not race. Creates schema_migrations if needed.
 * *applied (may be NULL) receives how many were applied. HIE_EINVAL for a malformed array (versions not
 * increasing within a module, missing fields); HIE_EDB when a migration fails (it is rolled back, the
 * earlier ones stay).
 */
hie_err_t hie_db_migrate(struct hie_db_pool *pool, const struct hie_db_migration *migs, size_t n, int *applied);

#endif
