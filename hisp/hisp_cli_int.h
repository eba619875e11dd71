/*
 * hisp_cli_int.h — what the operator commands of hisp_cli_domain.c, hisp_cli_cert.c, hisp_cli_trust.c and
 * hisp_cli_route.c share (hisp_cli_util.c): the verb table and its dispatcher, option parsing, the error
 * lines, argument checks, file reading and one-statement database access. Not part of the module's contract.
 *
 * Conventions of every command (see hisp.h): one output line per item or action, key=value fields; errors to
 * c->err as "<command> <verb>: <flag or value>: <what>"; exit status 0 done, 1 failed (database, file, an
 * unknown or duplicate row), 2 bad arguments (checked before the database is touched when they can be).
 * Options take "--flag value" or "--flag=value".
 */
#ifndef HIENODE_HISP_CLI_INT_H
#define HIENODE_HISP_CLI_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <openssl/x509.h>

#include "core/core_buf.h"
#include "hisp/hisp.h"

#define HISP_CLI_MAXOPTS 8
#define HISP_CLI_CERT_MAX (1024 * 1024) /* a certificate or key file */

struct hisp_cli_opt {
	const char *name; /* "--cert" */
	const char *val;  /* NULL when not given */
};

/* One parsed command line: "cert import" with its options (in the verb's order) and positionals. */
struct hisp_cli_line {
	const struct hisp_cli *c;
	char cmd[48]; /* "cert import" */
	struct hisp_cli_opt *opts;
	size_t nopts;
	const char *pos[4];
	int npos;
};

/*
 * A verb of a command. run gets the parsed line; sub (instead) gets argc/argv with the verb at argv[0], for a
 * verb that is a command of its own ("domain address", "trust bundle", "cert discover"). The table ends with
 * an entry whose name is NULL: the options and positionals accepted before an unknown verb is reported.
 */
struct hisp_cli_verb {
	const char *name;
	int (*run)(struct hisp_cli_line *l);
	int (*sub)(const struct hisp_cli *c, int argc, char **argv);
	const char *const *opts; /* NULL-terminated option names, at most HISP_CLI_MAXOPTS; NULL: none */
	int maxpos;              /* positionals accepted (at most 4) */
};

struct hisp_cli_cmd {
	const char *name;    /* "trust bundle" */
	const char *missing; /* after "missing verb ": "(add | list | refresh)" */
	const char *known;   /* after "unknown verb 'x' ": "(add | list | refresh)" */
	const struct hisp_cli_verb *verbs;
};

/* Runs the verb argv[0] of cmd: parses its options, then calls it. The exit status. */
int hisp_cli_run(const struct hisp_cli *c, const struct hisp_cli_cmd *cmd, int argc, char **argv);

/* "<cmd>: <what>: <fmt...>" to c->err; returns 2. */
int hisp_cli_bad(const struct hisp_cli_line *l, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "<cmd>: <fmt...>" to c->err; returns 1. */
int hisp_cli_fail(const struct hisp_cli_line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<cmd>: database: <error>"; returns 1. */
int hisp_cli_db_fail(const struct hisp_cli_line *l, hie_err_t err);

/* Argument checks: 0 when fine, else the exit status after the error line. */
int hisp_cli_need_pos(const struct hisp_cli_line *l, int n, const char *usage); /* exactly n positionals */
int hisp_cli_no_pos(const struct hisp_cli_line *l);                             /* none */
int hisp_cli_required(const struct hisp_cli_line *l, size_t opt);               /* option opt given */
int hisp_cli_norm_domain(const struct hisp_cli_line *l, const char *what, const char *in, char *out, size_t outlen);
int hisp_cli_norm_addr(const struct hisp_cli_line *l, const char *what, const char *in, char *out, size_t outlen);
/* Fingerprint as stored: 64 lower-case hex digits (out: HISP_FP_LEN + 1); colons and upper case accepted. */
int hisp_cli_norm_fp(const struct hisp_cli_line *l, const char *in, char *out);
/* --direction incoming|outgoing|both; *out "both" when v is NULL (a static string). */
int hisp_cli_direction(const struct hisp_cli_line *l, const char *v, const char **out);
/* Reads file path (the value of flag) of at most max bytes into *b (caller frees). */
int hisp_cli_read_file(const struct hisp_cli_line *l, const char *flag, const char *path, size_t max, struct hie_buf *b);

/* One statement in autocommit on c->pool; *r (when r is not NULL) is the caller's to PQclear. */
hie_err_t hisp_cli_exec1(const struct hisp_cli *c, const char *sql, int n, const char *const *p, PGresult **r);
/* One statement in autocommit; *rows = its PQcmdTuples count. 0, or the exit status after the error line. */
int hisp_cli_exec_rows(const struct hisp_cli_line *l, const char *sql, int n, const char *const *p, int *rows);
/* The value at (row, col), dflt when SQL NULL. */
const char *hisp_cli_nz(const PGresult *r, int row, int col, const char *dflt);
/* Ends a list: "(no <what>)" when r has no rows; clears r; returns 0. */
int hisp_cli_list_end(const struct hisp_cli_line *l, PGresult *r, const char *what);
/* Inside a transaction: HIE_OK when domain is one of ours; otherwise *refused = 1 and HIE_ENOTFOUND (or the
 * database error). */
hie_err_t hisp_cli_need_domain(PGconn *conn, const char *domain, int *refused);
/* The certificate in a bytea column (text format), or NULL; caller frees. */
X509 *hisp_cli_der_cert(const PGresult *r, int row, int col);

#endif
