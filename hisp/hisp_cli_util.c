/*
 * hisp_cli_util.c — the machinery the operator commands share (see hisp_cli_int.h): verb dispatch, option
 * parsing ("--flag value" or "--flag=value", each at most once, never empty), error lines, argument checks,
 * file reading and one-statement database access on the command's pool.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "core/core_log.h"
#include "hisp/hisp_cli_int.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_trust_int.h"

static void vline(const struct hisp_cli_line *l, const char *what, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void vline(const struct hisp_cli_line *l, const char *what, const char *fmt, va_list ap)
{
	if (what)
		fprintf(l->c->err, "%s: %s: ", l->cmd, what);
	else
		fprintf(l->c->err, "%s: ", l->cmd);
	vfprintf(l->c->err, fmt, ap);
	fputc('\n', l->c->err);
}

int hisp_cli_bad(const struct hisp_cli_line *l, const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline(l, what, fmt, ap);
	va_end(ap);
	return 2;
}

int hisp_cli_fail(const struct hisp_cli_line *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline(l, NULL, fmt, ap);
	va_end(ap);
	return 1;
}

int hisp_cli_db_fail(const struct hisp_cli_line *l, hie_err_t err)
{
	return hisp_cli_fail(l, "database: %s", hie_strerror(err));
}

static struct hisp_cli_opt *find_opt(struct hisp_cli_line *l, const char *a, size_t nlen)
{
	for (size_t k = 0; k < l->nopts; k++)
		if (strlen(l->opts[k].name) == nlen && strncmp(l->opts[k].name, a, nlen) == 0)
			return &l->opts[k];
	return NULL;
}

/* Parses argv[start..argc) into the options and at most maxpos positionals. */
static int parse(struct hisp_cli_line *l, int argc, char **argv, int start, int maxpos)
{
	for (int i = start; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (l->npos >= maxpos || l->npos >= 4)
				return hisp_cli_bad(l, a, "unexpected argument");
			l->pos[l->npos++] = a;
			continue;
		}
		const char *eq = strchr(a, '=');
		struct hisp_cli_opt *o = find_opt(l, a, eq ? (size_t)(eq - a) : strlen(a));
		if (!o)
			return hisp_cli_bad(l, a, "unknown option");
		if (o->val)
			return hisp_cli_bad(l, o->name, "given twice");
		if (eq) {
			o->val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return hisp_cli_bad(l, o->name, "needs a value");
			o->val = argv[++i];
		}
		if (!o->val[0])
			return hisp_cli_bad(l, o->name, "empty value");
	}
	return 0;
}

int hisp_cli_run(const struct hisp_cli *c, const struct hisp_cli_cmd *cmd, int argc, char **argv)
{
	if (argc < 1) {
		fprintf(c->err, "%s: missing verb %s\n", cmd->name, cmd->missing);
		return 2;
	}
	const struct hisp_cli_verb *v = cmd->verbs;
	while (v->name && strcmp(v->name, argv[0]) != 0)
		v++;
	if (v->sub)
		return v->sub(c, argc, argv);
	struct hisp_cli_opt opts[HISP_CLI_MAXOPTS];
	struct hisp_cli_line l = {.c = c, .opts = opts};
	for (; v->opts && v->opts[l.nopts]; l.nopts++) {
		if (l.nopts == HISP_CLI_MAXOPTS)
			hie_panic("hisp_cli: command %s has too many options", cmd->name);
		opts[l.nopts] = (struct hisp_cli_opt){.name = v->opts[l.nopts]};
	}
	snprintf(l.cmd, sizeof l.cmd, "%s %s", cmd->name, argv[0]);
	int rc = parse(&l, argc, argv, 1, v->maxpos);
	if (rc)
		return rc;
	if (v->run)
		return v->run(&l);
	fprintf(c->err, "%s: unknown verb '%s' %s\n", cmd->name, argv[0], cmd->known);
	return 2;
}

int hisp_cli_need_pos(const struct hisp_cli_line *l, int n, const char *usage)
{
	if (l->npos != n) {
		fprintf(l->c->err, "%s: usage: %s %s\n", l->cmd, l->cmd, usage);
		return 2;
	}
	return 0;
}

int hisp_cli_no_pos(const struct hisp_cli_line *l)
{
	return l->npos ? hisp_cli_bad(l, l->pos[0], "unexpected argument") : 0;
}

int hisp_cli_required(const struct hisp_cli_line *l, size_t opt)
{
	return l->opts[opt].val ? 0 : hisp_cli_bad(l, l->opts[opt].name, "required");
}

int hisp_cli_norm_domain(const struct hisp_cli_line *l, const char *what, const char *in, char *out, size_t outlen)
{
	if (strchr(in, '@') || hisp_addr_normalize(in, true, out, outlen))
		return hisp_cli_bad(l, what, "not a domain name");
	return 0;
}

int hisp_cli_norm_addr(const struct hisp_cli_line *l, const char *what, const char *in, char *out, size_t outlen)
{
	if (hisp_addr_normalize(in, false, out, outlen))
		return hisp_cli_bad(l, what, "not a Direct address (local@domain)");
	return 0;
}

int hisp_cli_direction(const struct hisp_cli_line *l, const char *v, const char **out)
{
	static const char *const dirs[] = {"incoming", "outgoing", "both"};
	*out = "both";
	if (!v)
		return 0;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(v, dirs[i]) == 0) {
			*out = dirs[i];
			return 0;
		}
	return hisp_cli_bad(l, "--direction", "expected incoming, outgoing or both");
}

int hisp_cli_norm_fp(const struct hisp_cli_line *l, const char *in, char *out)
{
	size_t k = 0;
	for (const char *p = in; *p; p++) {
		char ch = *p;
		if (ch == ':')
			continue;
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch + 32);
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) || k >= HISP_FP_LEN)
			return hisp_cli_bad(l, in, "not a SHA-256 fingerprint (64 hex digits)");
		out[k++] = ch;
	}
	if (k != HISP_FP_LEN)
		return hisp_cli_bad(l, in, "not a SHA-256 fingerprint (64 hex digits)");
	out[k] = '\0';
	return 0;
}

int hisp_cli_read_file(const struct hisp_cli_line *l, const char *flag, const char *path, size_t max, struct hie_buf *b)
{
	hie_err_t err = hisp_read_file(path, max, b);
	if (err == HIE_ETOOBIG)
		return hisp_cli_bad(l, flag, "%s: larger than %zu bytes", path, max);
	if (err)
		return hisp_cli_fail(l, "%s: %s: cannot read: %s", flag, path, strerror(errno));
	return 0;
}

hie_err_t hisp_cli_exec1(const struct hisp_cli *c, const char *sql, int n, const char *const *p, PGresult **r)
{
	PGconn *conn;
	hie_err_t err = hie_db_acquire(c->pool, -1, &conn);
	if (err)
		return err;
	err = hie_db_exec(conn, sql, n, p, r);
	hie_db_release(c->pool, conn, err == HIE_EDB);
	return err;
}

int hisp_cli_exec_rows(const struct hisp_cli_line *l, const char *sql, int n, const char *const *p, int *rows)
{
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c, sql, n, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	const char *t = PQcmdTuples(r);
	*rows = 0;
	for (; *t >= '0' && *t <= '9' && *rows < 1000000; t++)
		*rows = *rows * 10 + (*t - '0');
	PQclear(r);
	return 0;
}

const char *hisp_cli_nz(const PGresult *r, int row, int col, const char *dflt)
{
	return PQgetisnull(r, row, col) ? dflt : PQgetvalue(r, row, col);
}

int hisp_cli_list_end(const struct hisp_cli_line *l, PGresult *r, const char *what)
{
	if (PQntuples(r) == 0)
		fprintf(l->c->out, "(no %s)\n", what);
	PQclear(r);
	return 0;
}

hie_err_t hisp_cli_need_domain(PGconn *conn, const char *domain, int *refused)
{
	const char *p[] = {domain};
	PGresult *r;
	hie_err_t err = hie_db_exec(conn, "SELECT 1 FROM hisp_domains WHERE name = $1", 1, p, &r);
	if (err)
		return err;
	bool yes = PQntuples(r) == 1;
	PQclear(r);
	if (yes)
		return HIE_OK;
	*refused = 1;
	return HIE_ENOTFOUND;
}

X509 *hisp_cli_der_cert(const PGresult *r, int row, int col)
{
	size_t n = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	const unsigned char *p = raw;
	X509 *x = raw ? d2i_X509(NULL, &p, (long)n) : NULL;
	PQfreemem(raw);
	ERR_clear_error();
	return x;
}
