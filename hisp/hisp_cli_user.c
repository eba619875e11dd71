/*
 * hisp_cli_user.c — `hienode user`: the edge users who submit over SMTP, read mailboxes through the API and
 * post XDR (one-shot, on c->pool; conventions in hisp_cli_int.h):
 *
 *   user add NAME | passwd NAME | remove NAME | grant NAME ADDRESS | revoke NAME ADDRESS | list
 *
 * The password is never an argument (it would show in ps and shell history): read from the terminal with
 * echo off and asked twice, or one line from standard input when that is not a terminal (scripts:
 * `printf '%s\n' "$PW" | hienode user add alice@a.test`). `list` shows names, the disabled flag and the
 * granted addresses, never hashes.
 *
 * Entry point: hisp_cli_user (hisp.h). Exit status 0 done, 1 failed, 2 bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "hisp/hisp_cli_int.h"
#include "hisp/hisp_edge.h"

#define PW_BUF (HISP_PASSWORD_MAX + 2)

/* One line from fd without its LF (and a CR before it), at most cap - 1 bytes: byte by byte so that nothing
 * after the line is consumed. Returns its length, -1 at EOF before any byte, -2 when too long or on error. */
static int read_line_fd(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	bool any = false;
	for (;;) {
		char ch;
		ssize_t k = read(fd, &ch, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -2;
		if (k == 0)
			break;
		any = true;
		if (ch == '\n')
			break;
		if (n + 1 >= cap)
			return -2;
		buf[n++] = ch;
	}
	if (!any)
		return -1;
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (int)n;
}

/* Reads one password from the terminal, echo off. */
static int ask_tty(const struct hisp_cli_line *l, const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return -2;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	fprintf(l->c->err, "%s", prompt);
	fflush(l->c->err);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
		return -2;
	int n = read_line_fd(STDIN_FILENO, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return n;
}

/* The new password into pw: 0, or the exit status after the error line. */
static int read_password(const struct hisp_cli_line *l, const char *name, char *pw, size_t cap)
{
	int n;
	if (isatty(STDIN_FILENO)) {
		char again[PW_BUF], prompt[HISP_USER_MAX + 40];
		snprintf(prompt, sizeof prompt, "New password for %s: ", name);
		n = ask_tty(l, prompt, pw, cap);
		if (n >= 0) {
			int m = ask_tty(l, "Again: ", again, sizeof again);
			if (m != n || strcmp(pw, again) != 0) {
				sodium_memzero(again, sizeof again);
				return hisp_cli_bad(l, "password", "the two entries differ");
			}
		}
		sodium_memzero(again, sizeof again);
	} else {
		n = read_line_fd(STDIN_FILENO, pw, cap);
	}
	if (n == -1)
		return hisp_cli_bad(l, "password", "nothing read from standard input");
	if (n < 0)
		return hisp_cli_bad(l, "password", "longer than %d bytes", HISP_PASSWORD_MAX);
	if ((size_t)n < HISP_PASSWORD_MIN)
		return hisp_cli_bad(l, "password", "shorter than %d bytes", HISP_PASSWORD_MIN);
	if (memchr(pw, '\0', (size_t)n))
		return hisp_cli_bad(l, "password", "contains a NUL byte");
	return 0;
}

/* --- one transaction per verb ----------------------------------------------------------------------------- */

enum op { OP_ADD, OP_PASSWD, OP_REMOVE, OP_GRANT, OP_REVOKE };
struct user_op {
	enum op op;
	const char *name, *address, *password;
};

static hie_err_t op_tx(PGconn *tx, void *arg)
{
	const struct user_op *o = arg;
	switch (o->op) {
	case OP_ADD:
		return hisp_user_add(tx, o->name, o->password);
	case OP_PASSWD:
		return hisp_user_password(tx, o->name, o->password);
	case OP_REMOVE:
		return hisp_user_remove(tx, o->name);
	case OP_GRANT:
		return hisp_user_grant(tx, o->name, o->address);
	case OP_REVOKE:
		return hisp_user_revoke(tx, o->name, o->address);
	}
	return HIE_EINVAL;
}

static int run_op(struct hisp_cli_line *l, enum op op, int npos, const char *usage)
{
	char name[HISP_USER_MAX + 1], addr[HISP_USER_MAX + 1] = "", pw[PW_BUF];
	int rc = hisp_cli_need_pos(l, npos, usage);
	if (rc || (rc = hisp_cli_norm_addr(l, l->pos[0], l->pos[0], name, sizeof name)))
		return rc;
	if (npos == 2 && (rc = hisp_cli_norm_addr(l, l->pos[1], l->pos[1], addr, sizeof addr)))
		return rc;
	bool needs_pw = op == OP_ADD || op == OP_PASSWD;
	pw[0] = '\0';
	if (needs_pw && (rc = read_password(l, name, pw, sizeof pw))) {
		sodium_memzero(pw, sizeof pw);
		return rc;
	}
	struct user_op o = {.op = op, .name = name, .address = addr, .password = pw};
	hie_err_t err = hie_db_tx(l->c->pool, op_tx, &o);
	sodium_memzero(pw, sizeof pw);
	if (err == HIE_EEXIST)
		return hisp_cli_fail(l, "%s: user exists (change its password with: user passwd %s)", name, name);
	if (err == HIE_ENOTFOUND)
		return hisp_cli_fail(l, "%s: no such user", name);
	if (err == HIE_EINVAL)
		return hisp_cli_bad(l, name, "refused (name or password)");
	if (err)
		return hisp_cli_db_fail(l, err);
	switch (op) {
	case OP_ADD:
		fprintf(l->c->out, "user added name=%s addresses=%s\n", name, name);
		break;
	case OP_PASSWD:
		fprintf(l->c->out, "user password changed name=%s\n", name);
		break;
	case OP_REMOVE:
		fprintf(l->c->out, "user removed name=%s\n", name);
		break;
	case OP_GRANT:
		fprintf(l->c->out, "user granted name=%s address=%s\n", name, addr);
		break;
	case OP_REVOKE:
		fprintf(l->c->out, "user revoked name=%s address=%s\n", name, addr);
		break;
	}
	return 0;
}

static int user_add(struct hisp_cli_line *l)
{
	return run_op(l, OP_ADD, 1, "NAME (password from the terminal or one line of stdin)");
}

static int user_passwd(struct hisp_cli_line *l)
{
	return run_op(l, OP_PASSWD, 1, "NAME (password from the terminal or one line of stdin)");
}

static int user_remove(struct hisp_cli_line *l)
{
	return run_op(l, OP_REMOVE, 1, "NAME");
}

static int user_grant(struct hisp_cli_line *l)
{
	return run_op(l, OP_GRANT, 2, "NAME ADDRESS");
}

static int user_revoke(struct hisp_cli_line *l)
{
	return run_op(l, OP_REVOKE, 2, "NAME ADDRESS");
}

static int user_list(struct hisp_cli_line *l)
{
	PGresult *r;
	hie_err_t err;
	int rc = hisp_cli_need_pos(l, 0, "");
	if (rc)
		return rc;
	err = hisp_cli_exec1(l->c,
			     "SELECT u.name, u.disabled,"
			     " coalesce(string_agg(a.address, ',' ORDER BY a.address), '')"
			     " FROM hisp_users u LEFT JOIN hisp_user_addresses a ON a.name = u.name"
			     " GROUP BY u.name, u.disabled ORDER BY u.name",
			     0, NULL, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(l->c->out, "user name=%s disabled=%s addresses=%s\n", PQgetvalue(r, i, 0),
			PQgetvalue(r, i, 1)[0] == 't' ? "yes" : "no", PQgetvalue(r, i, 2)[0] ? PQgetvalue(r, i, 2) : "-");
	return hisp_cli_list_end(l, r, "users");
}

static const struct hisp_cli_verb user_verbs[] = {
	{.name = "add", .run = user_add, .maxpos = 2},
	{.name = "passwd", .run = user_passwd, .maxpos = 2},
	{.name = "remove", .run = user_remove, .maxpos = 2},
	{.name = "grant", .run = user_grant, .maxpos = 2},
	{.name = "revoke", .run = user_revoke, .maxpos = 2},
	{.name = "list", .run = user_list, .maxpos = 2},
	{.maxpos = 2},
};

static const struct hisp_cli_cmd user_cmd = {
	.name = "user",
	.missing = "(add NAME | passwd NAME | remove NAME | grant NAME ADDRESS | revoke NAME ADDRESS | list)",
	.known = "(add | passwd | remove | grant | revoke | list)",
	.verbs = user_verbs,
};

int hisp_cli_user(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &user_cmd, argc, argv);
}
