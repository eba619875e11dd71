/*
 * hisp_mailbox.c — hisp_mailbox rows: what arrived for a local address (the decrypted, verified message),
 * and the notices (MDN, DSN) that reach our senders.
 *
 * Entry points: hisp_mailbox_put (in the caller's transaction; idempotent on (address, inbound_id)),
 * hisp_mailbox_list, hisp_mailbox_get, hisp_mailbox_ack (for the CLI and the edge's pull API).
 * Errors: HIE_EINVAL (bad address, kind or size), HIE_ENOTFOUND, HIE_ETOOBIG (out's cap), and core_db's.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/core_db.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_trust.h"

static bool kind_ok(const char *k)
{
	return k && (strcmp(k, "message") == 0 || strcmp(k, "mdn") == 0 || strcmp(k, "dsn") == 0);
}

/* Message ids are peer text: stored only as printable ASCII (a text column must hold valid UTF-8). */
static bool id_storable(const char *s)
{
	if (!s || !s[0] || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

hie_err_t hisp_mailbox_put(PGconn *tx, const char *address, const char *kind, long long inbound_id,
			   const char *message_id, const void *content, size_t len)
{
	char addr[256], inb[24];
	if (!tx || !kind_ok(kind) || (!content && len) || len > INT_MAX ||
	    hisp_addr_normalize(address, false, addr, sizeof addr) != HIE_OK)
		return HIE_EINVAL;
	snprintf(inb, sizeof inb, "%lld", inbound_id);
	const char *vals[] = {addr, kind, inbound_id > 0 ? inb : NULL, id_storable(message_id) ? message_id : NULL,
			      content ? content : ""};
	const int lens[] = {0, 0, 0, 0, (int)len};
	const int fmts[] = {0, 0, 0, 0, 1};
	return hie_db_exec_bin(tx,
			       "INSERT INTO hisp_mailbox (address, kind, inbound_id, message_id, content)"
			       " VALUES ($1, $2, $3::bigint, $4, $5) ON CONFLICT (address, inbound_id) DO NOTHING",
			       5, vals, lens, fmts, 0, NULL);
}

static void printable_copy(const char *s, char *out, size_t outlen)
{
	size_t n = 0;
	for (; s && *s && n + 1 < outlen; s++)
		out[n++] = ((unsigned char)*s <= 0x20 || (unsigned char)*s > 0x7e) ? '?' : *s;
	out[n] = '\0';
}

static void fill_item(const PGresult *r, int row, struct hisp_mailbox_item *it)
{
	memset(it, 0, sizeof *it);
	hie_db_get_ll(r, row, 0, &it->id);
	snprintf(it->kind, sizeof it->kind, "%s", PQgetvalue(r, row, 1));
	snprintf(it->received_at, sizeof it->received_at, "%s", PQgetvalue(r, row, 2));
	hie_db_get_ll(r, row, 3, &it->size);
	printable_copy(PQgetvalue(r, row, 4), it->message_id, sizeof it->message_id);
	it->acked = PQgetvalue(r, row, 5)[0] == 't';
}

#define ITEM_COLS                                                                                                  \
	"id, kind, to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"                     \
	" octet_length(content), coalesce(message_id, ''), acked_at IS NOT NULL"

hie_err_t hisp_mailbox_list(PGconn *conn, const char *address, long long after_id, size_t max,
			    void (*fn)(const struct hisp_mailbox_item *it, void *arg), void *arg)
{
	char addr[256], after[24], lim[24];
	PGresult *r = NULL;
	if (!conn || !fn || hisp_addr_normalize(address, false, addr, sizeof addr) != HIE_OK)
		return HIE_EINVAL;
	snprintf(after, sizeof after, "%lld", after_id);
	snprintf(lim, sizeof lim, "%zu", max ? max : 1000);
	const char *p[] = {addr, after, lim};
	hie_err_t err = hie_db_exec(conn,
				    "SELECT " ITEM_COLS " FROM hisp_mailbox WHERE address = $1 AND id > $2::bigint"
				    " ORDER BY id LIMIT $3::bigint",
				    3, p, &r);
	if (err)
		return err;
	for (int i = 0; i < PQntuples(r); i++) {
		struct hisp_mailbox_item it;
		fill_item(r, i, &it);
		fn(&it, arg);
	}
	PQclear(r);
	return HIE_OK;
}

hie_err_t hisp_mailbox_get(PGconn *conn, const char *address, long long id, struct hie_buf *out,
			   struct hisp_mailbox_item *meta)
{
	char addr[256], ids[24];
	PGresult *r = NULL;
	if (!conn || !out || hisp_addr_normalize(address, false, addr, sizeof addr) != HIE_OK)
		return HIE_EINVAL;
	snprintf(ids, sizeof ids, "%lld", id);
	const char *p[] = {addr, ids};
	hie_err_t err = hie_db_exec(conn, "SELECT " ITEM_COLS " FROM hisp_mailbox WHERE address = $1 AND id = $2::bigint",
				    2, p, &r);
	if (err)
		return err;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return HIE_ENOTFOUND;
	}
	if (meta)
		fill_item(r, 0, meta);
	PQclear(r);
	/* The content travels in binary (raw bytes, no hex doubling). */
	err = hie_db_exec_bin(conn, "SELECT content FROM hisp_mailbox WHERE address = $1 AND id = $2::bigint", 2, p,
			      NULL, NULL, 1, &r);
	if (err)
		return err;
	if (PQntuples(r) != 1)
		err = HIE_ENOTFOUND;
	else
		err = hie_buf_add(out, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	PQclear(r);
	return err;
}

hie_err_t hisp_mailbox_ack(PGconn *conn, const char *address, long long id)
{
	char addr[256], ids[24];
	PGresult *r = NULL;
	if (!conn || hisp_addr_normalize(address, false, addr, sizeof addr) != HIE_OK)
		return HIE_EINVAL;
	snprintf(ids, sizeof ids, "%lld", id);
	const char *p[] = {addr, ids};
	hie_err_t err = hie_db_exec(conn,
				    "UPDATE hisp_mailbox SET acked_at = coalesce(acked_at, now())"
				    " WHERE address = $1 AND id = $2::bigint",
				    2, p, &r);
	if (err)
		return err;
	if (strcmp(PQcmdTuples(r), "1") != 0)
		err = HIE_ENOTFOUND;
	PQclear(r);
	return err;
}
