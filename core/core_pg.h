/*
 * core_pg.h — the embedded PostgreSQL cluster under <state_dir>/pg (used when database.url is empty).
 *
 * Layout: <state_dir>/pg/data (cluster), <state_dir>/pg/run (Unix socket directory, 0700; there is no TCP
 * listener at all), <state_dir>/pg/log (server, initdb and pg_ctl output). initdb runs on first start
 * (trust authentication on the local socket only, UTF8, locale C) into a temporary directory that is renamed
 * into place, so an interrupted initdb is redone; the database "hienode" is created if missing. The server
 * runs with fsync and synchronous_commit on: the durability contract depends on it.
 *
 * After a node was killed with SIGKILL, hie_pg_start copes with a stale postmaster.pid (process gone, or pid
 * reused by an unrelated process) and with a postmaster still running from the previous node: reused when it
 * serves our data directory and answers, stopped and restarted otherwise.
 *
 * When the process is root, initdb, pg_ctl and postgres run as opts->run_as (fork, setgroups/setgid/setuid,
 * exec); the pg directory is chowned to that user, who must be able to traverse state_dir.
 * Programs are run with fork/execve and argv arrays; paths are restricted to [A-Za-z0-9/._+@,:~-] because
 * pg_ctl passes them through /bin/sh.
 *
 * Errors: HIE_ECONFIG (bad path, socket path over 107 bytes, unknown user, no binaries), HIE_ESYS (a system
 * call failed), HIE_EDB (initdb, pg_ctl or the server failed: see <state_dir>/pg/log), HIE_ENOMEM.
 */
#ifndef HIENODE_CORE_PG_H
#define HIENODE_CORE_PG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_err.h"

struct hie_pg_opts {
	const char *state_dir;   /* existing directory (relative paths are resolved now) */
	const char *bindir;      /* directory of initdb/pg_ctl/postgres; NULL or "" = search */
	const char *run_as;      /* required when running as root ("hienode"); ignored otherwise */
	int port;                /* 0 = 5432; only names the socket file (.s.PGSQL.<port>) */
	int start_timeout_s;     /* pg_ctl -t for start and stop; 0 = 60 */
};

struct hie_pg;

/* Starts (or reuses) the cluster; the caller owns *out and ends it with hie_pg_stop() or hie_pg_forget(). */
hie_err_t hie_pg_start(struct hie_pg **out, const struct hie_pg_opts *opts);

/* "host=<run> port=<port> dbname=hienode user=<user>", owned by pg, valid until stop/forget. */
const char *hie_pg_conninfo(const struct hie_pg *pg);
/* True when hie_pg_start found the server already running (a node using it, or one left by a killed node). */
bool hie_pg_reused(const struct hie_pg *pg);
/* Absolute path of the data directory, owned by pg. */
const char *hie_pg_datadir(const struct hie_pg *pg);

/* pg_ctl stop -m fast (then -m immediate if that fails), and frees pg. HIE_EDB if the server would not stop. */
hie_err_t hie_pg_stop(struct hie_pg *pg);
/* Frees pg and leaves the server running (as a SIGKILLed node would); the next hie_pg_start reuses it. */
void hie_pg_forget(struct hie_pg *pg);

/*
 * Finds a directory holding initdb, pg_ctl and postgres: explicit (checked) if not NULL/empty, else
 * /usr/lib/postgresql/<prefer_major>/bin if prefer_major > 0, else the highest /usr/lib/postgresql/<ver>/bin,
 * else the directory of pg_ctl found on PATH. HIE_ECONFIG when none is found.
 */
hie_err_t hie_pg_find_bindir(const char *explicit_dir, int prefer_major, char *out, size_t outlen);

#endif
