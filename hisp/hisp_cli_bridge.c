/*
 * hisp_cli_bridge.c — `hienode bridge`: push-to-pull (the hisp.bridge job, hisp_bridge.c). One-shot, on
 * c->pool; conventions in hisp_cli_int.h:
 *
 *   bridge add ADDRESS|DOMAIN     received documents for a local address, or every address of a local domain,
 *                                 are registered in the local XDS registry and repository
 *   bridge list | remove ADDRESS|DOMAIN
 *   bridge parked                 documents parked or failed: id, mailbox id, part, reason, time (never content)
 *   bridge retry ID|--all         hands those documents' messages to the bridge again (after the operator added
 *                                 the patient): a new hisp.bridge job per message; registered ones are skipped
 *
 * Entry point: hisp_cli_bridge (hisp.h). Exit status 0 done, 1 failed (database, not local, unknown row),
 * 2 bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_db.h"
#include "core/core_jobs.h"
#include "hisp/hisp_cli_int.h"
#include "hisp/hisp_trust.h"

/* ADDRESS or DOMAIN, normalized into out; *is_addr says which. 0, or the exit status after the error line. */
static int subject(struct hisp_cli_line *l, const char *in, char *out, size_t outlen, bool *is_addr)
{
	*is_addr = strchr(in, '@') != NULL;
	if (*is_addr)
		return hisp_cli_norm_addr(l, in, in, out, outlen);
	return hisp_cli_norm_domain(l, in, in, out, outlen);
}

static int br_add(struct hisp_cli_line *l)
{
	char s[256];
	bool is_addr;
	int rows, rc;
	if ((rc = hisp_cli_need_pos(l, 1, "ADDRESS|DOMAIN")) || (rc = subject(l, l->pos[0], s, sizeof s, &is_addr)))
		return rc;
	const char *p[] = {s};
	/* only ours: a subject that is not a local address / domain would never see a message */
	rc = hisp_cli_exec_rows(l,
				is_addr ? "INSERT INTO hisp_bridges (subject) SELECT $1 WHERE EXISTS"
					  " (SELECT 1 FROM hisp_addresses WHERE address = $1) ON CONFLICT DO NOTHING"
					: "INSERT INTO hisp_bridges (subject) SELECT $1 WHERE EXISTS"
					  " (SELECT 1 FROM hisp_domains WHERE name = $1) ON CONFLICT DO NOTHING",
				1, p, &rows);
	if (rc)
		return rc;
	if (rows == 0) {
		PGresult *r;
		hie_err_t err = hisp_cli_exec1(l->c, "SELECT 1 FROM hisp_bridges WHERE subject = $1", 1, p, &r);
		if (err)
			return hisp_cli_db_fail(l, err);
		int n = PQntuples(r);
		PQclear(r);
		if (n == 0)
			return hisp_cli_fail(l, "%s: not a local %s", s, is_addr ? "address" : "domain");
	}
	fprintf(l->c->out, "bridge %s=%s\n", is_addr ? "address" : "domain", s);
	return 0;
}

static int br_list(struct hisp_cli_line *l)
{
	PGresult *r;
	hie_err_t err;
	int rc = hisp_cli_need_pos(l, 0, "");
	if (rc)
		return rc;
	if ((err = hisp_cli_exec1(l->c, "SELECT subject FROM hisp_bridges ORDER BY subject", 0, NULL, &r)))
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		const char *s = PQgetvalue(r, i, 0);
		fprintf(l->c->out, "bridge %s=%s\n", strchr(s, '@') ? "address" : "domain", s);
	}
	return hisp_cli_list_end(l, r, "bridges");
}

static int br_remove(struct hisp_cli_line *l)
{
	char s[256];
	bool is_addr;
	int rows, rc;
	if ((rc = hisp_cli_need_pos(l, 1, "ADDRESS|DOMAIN")) || (rc = subject(l, l->pos[0], s, sizeof s, &is_addr)))
		return rc;
	const char *p[] = {s};
	if ((rc = hisp_cli_exec_rows(l, "DELETE FROM hisp_bridges WHERE subject = $1", 1, p, &rows)))
		return rc;
	if (rows != 1)
		return hisp_cli_fail(l, "%s: no bridge", s);
	fprintf(l->c->out, "removed bridge %s=%s\n", is_addr ? "address" : "domain", s);
	return 0;
}

static int br_parked(struct hisp_cli_line *l)
{
	PGresult *r;
	hie_err_t err;
	int rc = hisp_cli_need_pos(l, 0, "");
	if (rc)
		return rc;
	err = hisp_cli_exec1(l->c,
			     "SELECT id, mailbox_id, state, part,"
			     " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), reason"
			     " FROM hisp_bridge_docs WHERE state <> 'registered' ORDER BY id LIMIT 1000",
			     0, NULL, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(l->c->out, "bridge id=%s mailbox=%s state=%s part=\"%s\" updated=%s reason=\"%s\"\n",
			PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			PQgetvalue(r, i, 4), hisp_cli_nz(r, i, 5, ""));
	return hisp_cli_list_end(l, r, "parked documents");
}

struct retry {
	long long id;          /* 0: every parked or failed document */
	PGresult *r;           /* mailbox ids queued */
	bool registered;       /* the id named a registered document */
};

static hie_err_t retry_fn(PGconn *tx, void *arg)
{
	struct retry *t = arg;
	char ids[24], key[80];
	snprintf(ids, sizeof ids, "%lld", t->id);
	const char *p[] = {ids};
	PQclear(t->r);
	t->r = NULL;
	t->registered = false;
	/* The rows stay what they are until the job records the new outcome; updated_at says a retry was asked. */
	hie_err_t err = hie_db_exec(tx,
				    "WITH u AS (UPDATE hisp_bridge_docs SET updated_at = now()"
				    " WHERE state <> 'registered' AND ($1::bigint = 0 OR id = $1::bigint)"
				    " RETURNING mailbox_id)"
				    " SELECT DISTINCT mailbox_id FROM u ORDER BY mailbox_id",
				    1, p, &t->r);
	if (err)
		return err;
	if (PQntuples(t->r) == 0 && t->id > 0) {
		PGresult *q = NULL;
		err = hie_db_exec(tx, "SELECT 1 FROM hisp_bridge_docs WHERE id = $1::bigint", 1, p, &q);
		t->registered = !err && PQntuples(q) == 1;
		PQclear(q);
		return err;
	}
	for (int i = 0; i < PQntuples(t->r) && !err; i++) {
		const char *mid = PQgetvalue(t->r, i, 0);
		snprintf(key, sizeof key, "bridge-%s-retry-%lld", mid, (long long)time(NULL));
		err = hie_jobs_enqueue(tx, "hisp.bridge", mid, key, 0, NULL);
	}
	return err;
}

/* `retry` takes ID or --all (a flag without value), so it parses its own line. */
static int retry_sub(const struct hisp_cli *c, int argc, char **argv)
{
	struct retry t = {0};
	if (argc != 2) {
		fprintf(c->err, "bridge retry: usage: bridge retry ID|--all\n");
		return 2;
	}
	if (strcmp(argv[1], "--all") != 0) {
		char *end = NULL;
		errno = 0;
		t.id = strtoll(argv[1], &end, 10);
		if (errno || end == argv[1] || *end || t.id <= 0) {
			fprintf(c->err, "bridge retry: %s: expected a document id (bridge parked) or --all\n", argv[1]);
			return 2;
		}
	}
	hie_err_t err = hie_db_tx(c->pool, retry_fn, &t);
	if (err) {
		fprintf(c->err, "bridge retry: database: %s\n", hie_strerror(err));
		PQclear(t.r);
		return 1;
	}
	int n = PQntuples(t.r), rc = 0;
	if (n == 0 && t.id > 0) {
		fprintf(c->err, "bridge retry: %lld: %s\n", t.id,
			t.registered ? "already registered" : "no such parked document");
		rc = 1;
	} else if (n == 0) {
		fprintf(c->out, "(no parked documents)\n");
	}
	for (int i = 0; i < n; i++)
		fprintf(c->out, "bridge retry mailbox=%s queued\n", PQgetvalue(t.r, i, 0));
	PQclear(t.r);
	return rc;
}

static const struct hisp_cli_verb bridge_verbs[] = {
	{.name = "add", .run = br_add, .maxpos = 2},
	{.name = "list", .run = br_list, .maxpos = 2},
	{.name = "remove", .run = br_remove, .maxpos = 2},
	{.name = "parked", .run = br_parked, .maxpos = 2},
	{.name = "retry", .sub = retry_sub},
	{.maxpos = 2},
};

static const struct hisp_cli_cmd bridge_cmd = {
	.name = "bridge",
	.missing = "(add ADDRESS|DOMAIN | list | remove ADDRESS|DOMAIN | parked | retry ID|--all)",
	.known = "(add | list | remove | parked | retry)",
	.verbs = bridge_verbs,
};

int hisp_cli_bridge(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &bridge_cmd, argc, argv);
}
