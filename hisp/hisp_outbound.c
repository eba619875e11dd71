/*
 * hisp_outbound.c — submission of what we send (hisp_outbound_submit): one hisp_outbound row, one
 * hisp_outbound_rcpt row per distinct lower-cased recipient, the hisp.send job and, for a message (not a
 * notice), its MDN deadline and the hisp.timeout job, all in the caller's transaction.
 *
 * Idempotent on the Message-ID: INSERT … ON CONFLICT (message_id) DO NOTHING; a second submit of the same
 * id changes nothing and returns the first row's id. Jobs carry dedup keys send:<id> and timeout:<id>.
 *
 * Errors: HIE_EINVAL (bad kind, address, message id, no recipient), HIE_EDB and what core_db maps.
 */
#include <stdio.h>
#include <string.h>

#include "core/core_db.h"
#include "core/core_jobs.h"
#include "core/core_log.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_trust.h"

#define MAX_RCPTS 1000

static bool kind_ok(const char *k)
{
	return k && (strcmp(k, "message") == 0 || strcmp(k, "mdn") == 0 || strcmp(k, "dsn") == 0);
}

/* A Message-ID without <>: printable ASCII, no blanks, not empty, at most 250 bytes. */
static bool msgid_ok(const char *m)
{
	size_t n = m ? strlen(m) : 0;
	if (n == 0 || n > 250)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)m[i];
		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
			return false;
	}
	return true;
}

static hie_err_t existing_id(PGconn *tx, const char *message_id, long long *id)
{
	PGresult *res = NULL;
	const char *p[] = {message_id};
	hie_err_t err = hie_db_exec(tx, "SELECT id FROM hisp_outbound WHERE message_id = $1", 1, p, &res);
	if (!err)
		err = PQntuples(res) == 1 ? hie_db_get_ll(res, 0, 0, id) : HIE_EDB;
	PQclear(res);
	return err;
}

hie_err_t hisp_outbound_submit(PGconn *tx, const char *kind, const char *sender, const char *const *rcpts,
			       size_t nrcpts, const char *raw, size_t len, const char *message_id, bool want_final,
			       long long mdn_timeout_ms, long long *id)
{
	char from[256], ids[32], ms[32];
	PGresult *res = NULL;
	long long oid = 0;
	hie_err_t err;

	if (!tx || !kind_ok(kind) || !sender || !rcpts || nrcpts == 0 || nrcpts > MAX_RCPTS || !raw || !len ||
	    len > (size_t)0x7fffffff || !msgid_ok(message_id) || mdn_timeout_ms < 0 ||
	    hisp_addr_normalize(sender, false, from, sizeof from) != HIE_OK)
		return HIE_EINVAL;
	for (size_t i = 0; i < nrcpts; i++) {
		char a[256];
		if (!rcpts[i] || hisp_addr_normalize(rcpts[i], false, a, sizeof a) != HIE_OK)
			return HIE_EINVAL;
	}
	bool message = strcmp(kind, "message") == 0;
	snprintf(ms, sizeof ms, "%lld", mdn_timeout_ms);
	const char *v[] = {message_id, kind, from, raw, want_final ? "t" : "f", message ? ms : NULL};
	const int lens[] = {0, 0, 0, (int)len, 0, 0};
	const int fmts[] = {0, 0, 0, 1, 0, 0};
	err = hie_db_exec_bin(tx,
			      "INSERT INTO hisp_outbound (message_id, kind, sender, raw, want_final, deadline)"
			      " VALUES ($1, $2, $3, $4, $5::boolean,"
			      "  now() + ($6::bigint * interval '1 millisecond'))"
			      " ON CONFLICT (message_id) DO NOTHING RETURNING id",
			      6, v, lens, fmts, 0, &res);
	if (err)
		goto out;
	if (PQntuples(res) == 0) {
		/* already submitted: nothing else to do (the first submit made its rows and jobs) */
		err = existing_id(tx, message_id, &oid);
		goto out;
	}
	err = hie_db_get_ll(res, 0, 0, &oid);
	if (err)
		goto out;
	snprintf(ids, sizeof ids, "%lld", oid);
	for (size_t i = 0; i < nrcpts; i++) {
		char a[256];
		hisp_addr_normalize(rcpts[i], false, a, sizeof a);
		const char *p[] = {ids, a};
		err = hie_db_exec(tx,
				  "INSERT INTO hisp_outbound_rcpt (outbound_id, address) VALUES ($1::bigint, $2)"
				  " ON CONFLICT DO NOTHING",
				  2, p, NULL);
		if (err)
			goto out;
	}
	char key[48];
	if (message) {
		snprintf(key, sizeof key, "timeout:%lld", oid);
		err = hie_jobs_enqueue(tx, "hisp.timeout", ids, key, mdn_timeout_ms, NULL);
		if (err)
			goto out;
	}
	snprintf(key, sizeof key, "send:%lld", oid);
	err = hie_jobs_enqueue(tx, "hisp.send", ids, key, 0, NULL);
	if (!err)
		hie_log(HIE_LOG_INFO, "event=hisp.submit id=%lld kind=%s rcpts=%zu size=%zu", oid, kind, nrcpts, len);
out:
	PQclear(res);
	if (!err && id)
		*id = oid;
	return err;
}
