/*
 * node_patient.c — `hienode patient add|list|show`: the operator's door to the patient identity index
 * (registry_patient_*), a one-shot command on the node's database (node_oneshot_open).
 *
 *   patient add --id 'ID^^^&OID&ISO' [--family F] [--given G] [--birth-date YYYYMMDD] [--gender M|F|O|U]
 *               [--street S] [--city C] [--state S] [--postal-code P] [--country C]
 *       creates the patient or updates the fields given (fields not given keep their value);
 *       prints "created ID" or "updated ID"
 *   patient list [--limit N]     one line per patient, tab-separated: id, state, name, birth date
 *   patient show --id ID         every field of one patient
 *
 * Arguments are checked before the database is touched: a bad one is named on stderr and the exit status is
 * 2. A database failure or an unknown id (show) exits with 1. Options take "--flag value" or "--flag=value".
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "node/node.h"
#include "registry/registry.h"

#define LIST_LIMIT_MAX 100000000L

struct patient_args {
	const char *sub;
	struct registry_patient p;
	bool have_id;
	size_t limit;
};

/* What each flag fills in, and the hint printed when registry_patient_validate() refuses the field. */
struct flag {
	const char *name;
	const char *field; /* registry_patient member, as registry_patient_validate names it */
	size_t offset;
	size_t cap;
	const char *hint;
};

#define TEXT_FLAG(n, f, h) {n, #f, offsetof(struct registry_patient, f), sizeof(((struct registry_patient *)0)->f), h}

static const struct flag add_flags[] = {
	TEXT_FLAG("--family", family, "UTF-8 text without control characters"),
	TEXT_FLAG("--given", given, "UTF-8 text without control characters"),
	TEXT_FLAG("--birth-date", birth_date, "expected YYYYMMDD, a real date"),
	TEXT_FLAG("--gender", gender, "expected M, F, O or U"),
	TEXT_FLAG("--street", street, "UTF-8 text without control characters"),
	TEXT_FLAG("--city", city, "UTF-8 text without control characters"),
	TEXT_FLAG("--state", state, "UTF-8 text without control characters"),
	TEXT_FLAG("--postal-code", postal_code, "UTF-8 text without control characters"),
	TEXT_FLAG("--country", country, "UTF-8 text without control characters"),
};

static const char ID_HINT[] = "expected ID^^^&OID&ISO: an id of 1..64 visible ASCII characters without ^ & ~ \\ |, "
			      "an OID of digits and dots";

static int bad_arg(const char *sub, const char *flag, const char *what)
{
	fprintf(stderr, "hienode: patient %s: %s: %s\n", sub, flag, what);
	return 2;
}

static int usage(void)
{
	fprintf(stderr, "usage: hienode patient add --id 'ID^^^&OID&ISO' [--family F] [--given G] [--birth-date YYYYMMDD]\n"
			"                           [--gender M|F|O|U] [--street S] [--city C] [--state S]\n"
			"                           [--postal-code P] [--country C]\n"
			"       hienode patient list [--limit N]\n"
			"       hienode patient show --id 'ID^^^&OID&ISO'\n");
	return 2;
}

static int set_id(struct patient_args *a, const char *v)
{
	if (a->have_id)
		return bad_arg(a->sub, "--id", "given twice");
	if (registry_pid_parse(v, strlen(v), &a->p.pid))
		return bad_arg(a->sub, "--id", ID_HINT);
	a->have_id = true;
	return 0;
}

static int set_limit(struct patient_args *a, const char *v)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || v[0] == '+' || n < 0 || n > LIST_LIMIT_MAX)
		return bad_arg(a->sub, "--limit", "expected a number of patients, 0 (all) to 100000000");
	a->limit = (size_t)n;
	return 0;
}

static int set_text(struct patient_args *a, const struct flag *f, const char *v)
{
	char *dst = (char *)&a->p + f->offset;
	if (dst[0])
		return bad_arg(a->sub, f->name, "given twice");
	size_t n = strlen(v);
	if (n == 0)
		return bad_arg(a->sub, f->name, "empty value");
	if (n >= f->cap) {
		char msg[64];
		snprintf(msg, sizeof msg, "too long (at most %zu bytes)", f->cap - 1);
		return bad_arg(a->sub, f->name, msg);
	}
	memcpy(dst, v, n + 1);
	return 0;
}

/* One option at argv[*i]; advances *i past its value. */
static int parse_option(struct patient_args *a, int argc, char **argv, int *i)
{
	const char *arg = argv[*i], *eq = strchr(arg, '='), *val;
	char name[32];
	size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
	if (strncmp(arg, "--", 2) != 0 || nlen >= sizeof name)
		return bad_arg(a->sub, arg, "unknown option");
	memcpy(name, arg, nlen);
	name[nlen] = '\0';
	bool is_add = strcmp(a->sub, "add") == 0, is_list = strcmp(a->sub, "list") == 0;
	const struct flag *tf = NULL;
	for (size_t k = 0; is_add && k < sizeof add_flags / sizeof add_flags[0]; k++)
		if (strcmp(name, add_flags[k].name) == 0)
			tf = &add_flags[k];
	bool known = (!is_list && strcmp(name, "--id") == 0) || (is_list && strcmp(name, "--limit") == 0) || tf;
	if (!known)
		return bad_arg(a->sub, name, "unknown option");
	if (eq) {
		val = eq + 1;
	} else {
		if (*i + 1 >= argc)
			return bad_arg(a->sub, name, "needs a value");
		val = argv[++*i];
	}
	if (strcmp(name, "--id") == 0)
		return set_id(a, val);
	if (strcmp(name, "--limit") == 0)
		return set_limit(a, val);
	return set_text(a, tf, val);
}

static int parse_args(struct patient_args *a, int argc, char **argv)
{
	memset(a, 0, sizeof *a);
	if (argc < 1)
		return usage();
	a->sub = argv[0];
	if (strcmp(a->sub, "add") != 0 && strcmp(a->sub, "list") != 0 && strcmp(a->sub, "show") != 0) {
		fprintf(stderr, "hienode: patient: unknown subcommand '%s'\n", a->sub);
		return usage();
	}
	for (int i = 1; i < argc; i++) {
		int rc = parse_option(a, argc, argv, &i);
		if (rc)
			return rc;
	}
	if (strcmp(a->sub, "list") != 0 && !a->have_id)
		return bad_arg(a->sub, "--id", "required");
	if (strcmp(a->sub, "add") == 0) {
		const char *bad = NULL;
		if (registry_patient_validate(&a->p, &bad)) {
			for (size_t k = 0; k < sizeof add_flags / sizeof add_flags[0]; k++)
				if (bad && strcmp(bad, add_flags[k].field) == 0)
					return bad_arg(a->sub, add_flags[k].name, add_flags[k].hint);
			return bad_arg(a->sub, "--id", ID_HINT);
		}
	}
	return 0;
}

struct add_ctx {
	const struct registry_patient *in;
	bool created;
	struct registry_patient out;
};

static hie_err_t add_tx(PGconn *conn, void *arg)
{
	struct add_ctx *c = arg;
	hie_err_t err = registry_patient_upsert(conn, c->in, &c->created);
	if (!err)
		err = registry_patient_get(conn, &c->in->pid, &c->out);
	return err;
}

static void print_state(const struct registry_patient *p, char *out, size_t outlen)
{
	if (!p->merged) {
		snprintf(out, outlen, "active");
		return;
	}
	char into[REGISTRY_PID_TEXT_MAX];
	registry_pid_format(&p->merged_into, into, sizeof into);
	snprintf(out, outlen, "merged-into=%s", into);
}

static void print_line(const struct registry_patient *p, void *arg)
{
	size_t *rows = arg;
	char id[REGISTRY_PID_TEXT_MAX], state[REGISTRY_PID_TEXT_MAX + 16];
	registry_pid_format(&p->pid, id, sizeof id);
	print_state(p, state, sizeof state);
	const char *sep = p->family[0] && p->given[0] ? ", " : "";
	bool noname = !p->family[0] && !p->given[0];
	printf("%s\t%s\t%s%s%s\t%s\n", id, state, noname ? "-" : p->family, sep, p->given,
	       p->birth_date[0] ? p->birth_date : "-");
	(*rows)++;
}

static void print_patient(const struct registry_patient *p)
{
	char id[REGISTRY_PID_TEXT_MAX], state[REGISTRY_PID_TEXT_MAX + 16];
	registry_pid_format(&p->pid, id, sizeof id);
	print_state(p, state, sizeof state);
	const struct {
		const char *k, *v;
	} rows[] = {
		{"id", id},
		{"state", state},
		{"family", p->family},
		{"given", p->given},
		{"birth-date", p->birth_date},
		{"gender", p->gender},
		{"street", p->street},
		{"city", p->city},
		{"state/province", p->state},
		{"postal-code", p->postal_code},
		{"country", p->country},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (rows[i].v[0])
			printf("%-15s %s\n", rows[i].k, rows[i].v);
		else
			printf("%s\n", rows[i].k);
	}
}

static hie_err_t run(struct node_oneshot *s, const struct patient_args *a, int *rc)
{
	char id[REGISTRY_PID_TEXT_MAX];
	registry_pid_format(&a->p.pid, id, sizeof id);
	if (strcmp(a->sub, "add") == 0) {
		struct add_ctx c = {.in = &a->p};
		hie_err_t err = hie_db_tx(s->db.pool, add_tx, &c);
		if (err)
			return err;
		char state[REGISTRY_PID_TEXT_MAX + 16];
		print_state(&c.out, state, sizeof state);
		printf("%s %s%s%s\n", c.created ? "created" : "updated", id, c.out.merged ? " " : "",
		       c.out.merged ? state : "");
		return HIE_OK;
	}
	PGconn *conn;
	hie_err_t err = hie_db_acquire(s->db.pool, -1, &conn);
	if (err)
		return err;
	if (strcmp(a->sub, "list") == 0) {
		size_t rows = 0;
		err = registry_patient_list(conn, a->limit, print_line, &rows);
		if (!err && rows == 0)
			printf("(no patients)\n");
	} else {
		struct registry_patient p;
		err = registry_patient_get(conn, &a->p.pid, &p);
		if (!err) {
			print_patient(&p);
		} else if (err == HIE_ENOTFOUND) {
			fprintf(stderr, "hienode: patient show: unknown patient id %s\n", id);
			*rc = 1;
			err = HIE_OK;
		}
	}
	hie_db_release(s->db.pool, conn, err == HIE_EDB);
	return err;
}

int node_cmd_patient(const struct node_opts *o)
{
	struct patient_args a;
	int rc = parse_args(&a, o->argc, o->argv);
	if (rc)
		return rc;
	struct node_oneshot s = {0};
	hie_err_t err = node_oneshot_open(&s, o);
	if (!err)
		err = node_db_migrate(s.db.pool);
	if (!err)
		err = run(&s, &a, &rc);
	node_oneshot_close(&s);
	if (err) {
		fprintf(stderr, "hienode: patient %s failed: %s\n", a.sub, hie_strerror(err));
		return 1;
	}
	return rc;
}
