/*
 * hisp_cli_mailbox.c — `hienode mailbox list|get`, the Direct part of `hienode status`, and the counts for
 * /metrics.
 *
 *   mailbox list ADDR      one line per item: id=… kind=… received=… size=… message_id=… acked=yes|no
 *   mailbox get ADDR ID    the stored message bytes, exactly, on out
 *   status                 hisp_inbound by state, the last 20 quarantined (id, time, reason), outbound
 *                          recipients awaiting an MDN, failed recipients
 *
 * Exit status: 0 done, 1 not found or the database failed, 2 bad arguments (named on err). Everything printed
 * that came from a peer (message ids, reasons) is made printable first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_db.h"
#include "hisp/hisp.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_util.h"

#define MAILBOX_GET_MAX ((size_t)1 << 30)

struct page {
	FILE *out;
	long long last;
	size_t n;
};

static void print_item(const struct hisp_mailbox_item *it, void *arg)
{
	struct page *pg = arg;
	fprintf(pg->out, "id=%lld kind=%s received=%s size=%lld message_id=%s acked=%s\n", it->id, it->kind,
		it->received_at, it->size, it->message_id[0] ? it->message_id : "-", it->acked ? "yes" : "no");
	pg->last = it->id;
	pg->n++;
}

static int parse_id(const char *s, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0' || v <= 0)
		return -1;
	*out = v;
	return 0;
}

#define PAGE 1000

static int mailbox_list(const struct hisp_cli *c, PGconn *conn, const char *addr)
{
	struct page pg = {.out = c->out};
	/* Pages, so that a large mailbox never becomes one huge result. */
	do {
		pg.n = 0;
		hie_err_t err = hisp_mailbox_list(conn, addr, pg.last, PAGE, print_item, &pg);
		if (err) {
			fprintf(c->err, "mailbox list: %s\n", hie_strerror(err));
			return 1;
		}
	} while (pg.n == PAGE);
	if (fflush(c->out) != 0) {
		fprintf(c->err, "mailbox list: write failed\n");
		return 1;
	}
	return 0;
}

static int mailbox_get(const struct hisp_cli *c, PGconn *conn, const char *addr, const char *ids)
{
	long long id;
	struct hie_buf b;
	if (parse_id(ids, &id) != 0) {
		fprintf(c->err, "mailbox get: bad id '%s'\n", ids);
		return 2;
	}
	hie_buf_init(&b, MAILBOX_GET_MAX);
	hie_err_t err = hisp_mailbox_get(conn, addr, id, &b, NULL);
	int rc = 0;
	if (err == HIE_ENOTFOUND) {
		fprintf(c->err, "mailbox get: no item %lld for %s\n", id, addr);
		rc = 1;
	} else if (err) {
		fprintf(c->err, "mailbox get: %s\n", hie_strerror(err));
		rc = 1;
	} else if ((b.len && fwrite(b.data, 1, b.len, c->out) != b.len) || fflush(c->out) != 0) {
		fprintf(c->err, "mailbox get: write failed\n");
		rc = 1;
	}
	hie_buf_free(&b);
	return rc;
}

struct ack_tx {
	struct hisp *h;
	const char *addr;
	long long id;
};

/* The item is acknowledged and, when its sender asked for final destination delivery, the dispatched MDN
 * is queued: in one transaction, so an acknowledged item always has its MDN (and only one: its id is fixed). */
static hie_err_t ack_fn(PGconn *tx, void *arg)
{
	struct ack_tx *a = arg;
	hie_err_t err = hisp_mailbox_ack(tx, a->addr, a->id);
	if (!err)
		err = hisp_mdn_dispatched(a->h, tx, a->id);
	return err;
}

static int mailbox_ack(const struct hisp_cli *c, const char *addr, const char *ids)
{
	struct hisp h = {.cfg = c->cfg, .pool = c->pool};
	struct ack_tx a = {.h = &h, .addr = addr};
	if (parse_id(ids, &a.id) != 0) {
		fprintf(c->err, "mailbox ack: bad id '%s'\n", ids);
		return 2;
	}
	hisp_hostname(c->cfg, h.hostname, sizeof h.hostname);
	hie_err_t err = hie_db_tx(c->pool, ack_fn, &a);
	if (err == HIE_ENOTFOUND) {
		fprintf(c->err, "mailbox ack: no item %lld for %s\n", a.id, addr);
		return 1;
	}
	if (err) {
		fprintf(c->err, "mailbox ack: %s\n", hie_strerror(err));
		return 1;
	}
	fprintf(c->out, "acked id=%lld\n", a.id);
	return 0;
}

int hisp_cli_mailbox(const struct hisp_cli *c, int argc, char **argv)
{
	char addr[256];
	PGconn *conn = NULL;
	int rc;
	if (argc < 1) {
		fprintf(c->err, "mailbox: missing verb (list ADDR | get ADDR ID)\n");
		return 2;
	}
	bool list = strcmp(argv[0], "list") == 0, get = strcmp(argv[0], "get") == 0, ack = strcmp(argv[0], "ack") == 0;
	if (!list && !get && !ack) {
		fprintf(c->err, "mailbox: unknown verb '%s' (list ADDR | get ADDR ID | ack ADDR ID)\n", argv[0]);
		return 2;
	}
	if ((list && argc != 2) || (!list && argc != 3)) {
		fprintf(c->err, "mailbox %s: usage: mailbox %s %s\n", argv[0], argv[0], list ? "ADDR" : "ADDR ID");
		return 2;
	}
	if (hisp_addr_normalize(argv[1], false, addr, sizeof addr) != HIE_OK) {
		fprintf(c->err, "mailbox %s: bad address '%s'\n", argv[0], argv[1]);
		return 2;
	}
	if (!list) {
		long long id;
		if (parse_id(argv[2], &id) != 0) {
			fprintf(c->err, "mailbox %s: bad id '%s'\n", argv[0], argv[2]);
			return 2;
		}
	}
	if (ack)
		return mailbox_ack(c, addr, argv[2]);
	hie_err_t err = hie_db_acquire(c->pool, -1, &conn);
	if (err) {
		fprintf(c->err, "mailbox: database: %s\n", hie_strerror(err));
		return 1;
	}
	rc = list ? mailbox_list(c, conn, addr) : mailbox_get(c, conn, addr, argv[2]);
	hie_db_release(c->pool, conn, false);
	return rc;
}

/* --- status ---------------------------------------------------------------------------------------------- */

struct section {
	const char *title;
	const char *sql;
	const char *const *keys; /* one per column */
	int ncols;
};

static const char *const inbound_keys[] = {"state", "count"};
static const char *const quarantine_keys[] = {"id", "at", "reason"};
static const char *const awaiting_keys[] = {"message_id", "recipient", "state", "deadline"};
static const char *const failed_keys[] = {"message_id", "recipient", "state", "at", "reason"};
static const char *const forward_failed_keys[] = {"mailbox_id", "address", "kind", "at", "reason"};
static const char *const bridge_parked_keys[] = {"id", "mailbox_id", "state", "part", "at", "reason"};

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const struct section sections[] = {
	{"direct inbound by state:", "SELECT state, count(*) FROM hisp_inbound GROUP BY state ORDER BY state",
	 inbound_keys, 2},
	{"direct quarantined (newest first, at most 20):",
	 "SELECT id, " TS("coalesce(processed_at, received_at)") ", coalesce(reason, '')"
	 " FROM hisp_inbound WHERE state = 'quarantined' ORDER BY id DESC LIMIT 20",
	 quarantine_keys, 3},
	{"direct outbound awaiting an MDN (oldest first, at most 50):",
	 "SELECT o.message_id, r.address, r.state, coalesce(" TS("o.deadline") ", '-')"
	 " FROM hisp_outbound_rcpt r JOIN hisp_outbound o ON o.id = r.outbound_id"
	 " WHERE o.kind = 'message' AND NOT r.notified"
	 " AND (r.state IN ('pending', 'sent') OR (r.state = 'processed' AND o.want_final))"
	 " ORDER BY o.deadline NULLS LAST, o.id LIMIT 50",
	 awaiting_keys, 4},
	{"direct failed recipients (newest first, at most 50):",
	 "SELECT o.message_id, r.address, r.state, " TS("r.updated_at") ", coalesce(r.reason, '')"
	 " FROM hisp_outbound_rcpt r JOIN hisp_outbound o ON o.id = r.outbound_id"
	 " WHERE r.state IN ('failed', 'timeout') ORDER BY r.updated_at DESC LIMIT 50",
	 failed_keys, 5},
	/* the edge (hisp_forward.c, hisp_bridge.c): ids and reasons, never content */
	{"direct failed forwards (newest first, at most 50):",
	 "SELECT s.mailbox_id, m.address, s.kind, " TS("s.updated_at") ", coalesce(s.reason, '')"
	 " FROM hisp_forward_state s JOIN hisp_mailbox m ON m.id = s.mailbox_id"
	 " WHERE s.state = 'failed' ORDER BY s.updated_at DESC LIMIT 50",
	 forward_failed_keys, 5},
	{"direct bridge documents parked or failed (oldest first, at most 50; hienode bridge retry):",
	 "SELECT id, mailbox_id, state, replace(part, ' ', '_'), " TS("updated_at") ", coalesce(reason, '')"
	 " FROM hisp_bridge_docs WHERE state <> 'registered' ORDER BY id LIMIT 50",
	 bridge_parked_keys, 6},
};

static hie_err_t print_section(const struct hisp_cli *c, PGconn *conn, const struct section *s)
{
	PGresult *r = NULL;
	hie_err_t err = hie_db_exec(conn, s->sql, 0, NULL, &r);
	if (err)
		return err;
	fprintf(c->out, "%s %d\n", s->title, PQntuples(r));
	for (int i = 0; i < PQntuples(r); i++) {
		fprintf(c->out, " ");
		for (int k = 0; k < s->ncols && k < PQnfields(r); k++) {
			char v[300];
			hisp_printable(PQgetvalue(r, i, k), v, sizeof v, '?');
			/* the last column is free text (a reason); the others never hold spaces */
			fprintf(c->out, " %s=%s", s->keys[k], v);
		}
		fprintf(c->out, "\n");
	}
	PQclear(r);
	return HIE_OK;
}

int hisp_cli_status(const struct hisp_cli *c)
{
	PGconn *conn = NULL;
	hie_err_t err = hie_db_acquire(c->pool, -1, &conn);
	for (size_t i = 0; !err && i < sizeof sections / sizeof sections[0]; i++)
		err = print_section(c, conn, &sections[i]);
	if (conn)
		hie_db_release(c->pool, conn, err == HIE_EDB);
	if (err) {
		fprintf(c->err, "status: direct: %s\n", hie_strerror(err));
		return 1;
	}
	return 0;
}

/* --- metrics --------------------------------------------------------------------------------------------- */

hie_err_t hisp_counts(struct hie_db_pool *pool, void (*fn)(const char *what, const char *state, long long n, void *arg),
		      void *arg)
{
	static const char *const what[] = {"inbound", "outbound"};
	static const char *const sql[] = {
		"SELECT state, count(*) FROM hisp_inbound GROUP BY state ORDER BY state",
		"SELECT state, count(*) FROM hisp_outbound_rcpt GROUP BY state ORDER BY state",
	};
	PGconn *conn = NULL;
	if (!pool || !fn)
		return HIE_EINVAL;
	hie_err_t err = hie_db_acquire(pool, -1, &conn);
	for (size_t q = 0; !err && q < 2; q++) {
		PGresult *r = NULL;
		err = hie_db_exec(conn, sql[q], 0, NULL, &r);
		for (int i = 0; !err && i < PQntuples(r); i++) {
			long long n = 0;
			if (hie_db_get_ll(r, i, 1, &n) == HIE_OK)
				fn(what[q], PQgetvalue(r, i, 0), n, arg);
		}
		PQclear(r);
	}
	if (conn)
		hie_db_release(pool, conn, err == HIE_EDB);
	return err;
}
