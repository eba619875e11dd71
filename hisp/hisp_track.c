/*
 * hisp_track.c — delivery tracking of what we send, per recipient (hisp_outbound_rcpt), and the notices that
 * reach our senders' mailboxes.
 *
 * States: pending → sent (next hop accepted) → processed (MDN) → dispatched (MDN), or failed (permanent send
 * failure, no certificate, failed MDN, DSN) or timeout (hisp.timeout at the MDN deadline). A recipient is
 * FINAL when it is notified or in dispatched / failed / timeout; `processed` is final only when the message
 * did not ask for X-DIRECT-FINAL-DESTINATION-DELIVERY (want_final), and then it is notified at once.
 *
 * The notice rule (Delivery Notification IG; STANDARDS.md "Notifications"):
 *   - exactly one FINAL notice per recipient reaches our sender (the notified flag, set in the same
 *     transaction as the mailbox row): the processed MDN (want_final false), the dispatched MDN, the failed
 *     MDN or DSN from the remote side, or our own DSN (send failure, MDN timeout);
 *   - with want_final, the first processed MDN is forwarded too (it is the first notice for that recipient,
 *     and edge clients show "processed" before "dispatched"), but it is not final; a second processed MDN is
 *     a duplicate and suppressed;
 *   - anything that arrives once the recipient is final is suppressed: a late MDN after the timeout, a
 *     second dispatched MDN, a DSN after a failure we already reported;
 *   - notices about an unknown message, about a notice we sent (kind mdn/dsn), displayed/deleted MDNs and
 *     DSNs whose Action is not "failed" are suppressed;
 *   - the recipient named by Final-Recipient is used only when it is the reporting address or in its domain
 *     (a HISP reports for its own users); otherwise the reporting address itself.
 *
 * Entry points: hisp_track_sent, hisp_track_fail, hisp_track_notice (in the caller's transaction),
 * hisp_timeout_job (one transaction of its own; idempotent through the notified flag).
 * Errors: HIE_EINVAL, HIE_ENOTFOUND (hisp_track_fail on an unknown recipient), and core_db's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_db.h"
#include "core/core_log.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_util.h"

#define DSN_MAX (1024 * 1024)

static const char *hostname(const struct hisp *h)
{
	return h && h->hostname[0] ? h->hostname : "localhost";
}

static uint64_t fnv1a(const char *s)
{
	uint64_t x = 1469598103934665603ULL;
	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return x;
}

static bool final_state(const char *state, bool notified)
{
	return notified || strcmp(state, "dispatched") == 0 || strcmp(state, "failed") == 0 ||
	       strcmp(state, "timeout") == 0;
}

static hie_err_t set_state(PGconn *tx, const char *oid, const char *addr, const char *state, const char *reason,
			   bool notify)
{
	const char *p[] = {oid, addr, state, reason, notify ? "t" : "f"};
	return hie_db_exec(tx,
			   "UPDATE hisp_outbound_rcpt SET state = $3, reason = coalesce($4, reason),"
			   " notified = notified OR $5::boolean, updated_at = now()"
			   " WHERE outbound_id = $1::bigint AND address = $2",
			   5, p, NULL);
}

hie_err_t hisp_track_sent(PGconn *tx, long long outbound_id, const char *address)
{
	char addr[256], oid[24];
	if (!tx || hisp_addr_normalize(address, false, addr, sizeof addr) != HIE_OK)
		return HIE_EINVAL;
	snprintf(oid, sizeof oid, "%lld", outbound_id);
	const char *p[] = {oid, addr};
	/* Only from pending: an MDN may already have moved the recipient on (it can beat our own bookkeeping). */
	return hie_db_exec(tx,
			   "UPDATE hisp_outbound_rcpt SET state = 'sent', updated_at = now()"
			   " WHERE outbound_id = $1::bigint AND address = $2 AND state = 'pending'",
			   2, p, NULL);
}

/* One DSN about rcpts of outbound `oid` into the sender's mailbox. */
static hie_err_t put_dsn(const struct hisp *h, PGconn *tx, const char *sender, const char *orig_id,
			 const struct hisp_dsn_rcpt *rcpts, size_t n, const char *dsn_id)
{
	struct hie_buf b;
	hie_buf_init(&b, DSN_MAX);
	struct hisp_dsn_req req = {.reporting_mta = hostname(h),
				   .to = sender,
				   .original_message_id = orig_id,
				   .rcpts = rcpts,
				   .nrcpts = n,
				   .message_id = dsn_id};
	hie_err_t err = hisp_dsn_build(&req, &b);
	if (!err)
		err = hisp_mailbox_put(tx, sender, "dsn", 0, dsn_id, b.data, b.len);
	hie_buf_free(&b);
	return err;
}

hie_err_t hisp_track_fail(struct hisp *h, PGconn *tx, long long outbound_id, const char *address, const char *status,
			  const char *reason)
{
	char addr[256], oid[24], why[200];
	PGresult *r = NULL;
	if (!tx || hisp_addr_normalize(address, false, addr, sizeof addr) != HIE_OK)
		return HIE_EINVAL;
	snprintf(oid, sizeof oid, "%lld", outbound_id);
	/* Reasons are stored and shown to operators: printable ASCII, bounded. */
	hisp_printable(reason && reason[0] ? reason : "delivery failed", why, sizeof why, '?');
	const char *p[] = {oid, addr};
	hie_err_t err = hie_db_exec(tx,
				    "SELECT o.kind, o.sender, o.message_id, r.state, r.notified FROM hisp_outbound o"
				    " JOIN hisp_outbound_rcpt r ON r.outbound_id = o.id"
				    " WHERE o.id = $1::bigint AND r.address = $2 FOR UPDATE OF r",
				    2, p, &r);
	if (err)
		return err;
	if (PQntuples(r) != 1) {
		err = HIE_ENOTFOUND;
		goto out;
	}
	bool notified = PQgetvalue(r, 0, 4)[0] == 't';
	if (final_state(PQgetvalue(r, 0, 3), notified))
		goto out; /* already final: a repeated failure is a no-op */
	bool message = strcmp(PQgetvalue(r, 0, 0), "message") == 0;
	err = set_state(tx, oid, addr, "failed", why, false);
	if (err || !message)
		goto out;
	char dsn_id[320];
	snprintf(dsn_id, sizeof dsn_id, "dsn-%lld-%016llx@%s", outbound_id, (unsigned long long)fnv1a(addr),
		 hostname(h));
	struct hisp_dsn_rcpt rc = {.address = addr, .status = status && status[0] ? status : "5.0.0", .diagnostic = why};
	err = put_dsn(h, tx, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), &rc, 1, dsn_id);
	if (err == HIE_EINVAL) {
		/* Something in the stored row cannot go into a DSN: record the failure, say so, do not retry forever. */
		hie_log(HIE_LOG_ERR, "event=hisp.dsn outbound=%lld error=build", outbound_id);
		err = HIE_OK;
		goto out;
	}
	if (!err)
		err = set_state(tx, oid, addr, "failed", NULL, true);
	if (!err)
		hie_log(HIE_LOG_INFO, "event=hisp.track outbound=%lld state=failed notice=dsn", outbound_id);
out:
	PQclear(r);
	return err;
}

/* --- incoming notices ------------------------------------------------------------------------------------ */

struct rcpt_row {
	char oid[24];
	char sender[256];
	char state[16];
	bool want_final, notified;
};

static hie_err_t find_rcpt(PGconn *tx, const char *msgid, const char *addr, struct rcpt_row *row, bool *found)
{
	PGresult *r = NULL;
	const char *p[] = {msgid, addr};
	*found = false;
	hie_err_t err = hie_db_exec(tx,
				    "SELECT o.id, o.sender, o.want_final, r.state, r.notified FROM hisp_outbound o"
				    " JOIN hisp_outbound_rcpt r ON r.outbound_id = o.id"
				    " WHERE o.message_id = $1 AND o.kind = 'message' AND r.address = $2 FOR UPDATE OF r",
				    2, p, &r);
	if (err)
		return err;
	if (PQntuples(r) == 1) {
		snprintf(row->oid, sizeof row->oid, "%s", PQgetvalue(r, 0, 0));
		snprintf(row->sender, sizeof row->sender, "%s", PQgetvalue(r, 0, 1));
		row->want_final = PQgetvalue(r, 0, 2)[0] == 't';
		snprintf(row->state, sizeof row->state, "%s", PQgetvalue(r, 0, 3));
		row->notified = PQgetvalue(r, 0, 4)[0] == 't';
		*found = true;
	}
	PQclear(r);
	return HIE_OK;
}

/* What a notice asks for: "processed", "dispatched", "failed", or NULL (nothing to track). */
static const char *notice_event(const struct hisp_notice_info *n)
{
	if (n->kind == HISP_NOTICE_DSN)
		return n->dsn_failed ? "failed" : NULL;
	if (strcmp(n->disposition, "processed") == 0 || strcmp(n->disposition, "dispatched") == 0 ||
	    strcmp(n->disposition, "failed") == 0)
		return n->disposition;
	return NULL;
}

hie_err_t hisp_track_notice(struct hisp *h, PGconn *tx, const struct hisp_notice_info *n, const char *from,
			    char *sender, size_t senderlen)
{
	char fromaddr[256] = "", cand[2][256];
	size_t ncand = 0;
	struct rcpt_row row;
	bool found = false;
	hie_err_t err = HIE_OK;
	(void)h;
	if (!tx || !n || !sender || senderlen == 0)
		return HIE_EINVAL;
	sender[0] = '\0';
	const char *ev = notice_event(n);
	if (n->kind == HISP_NOTICE_NONE || !n->original_message_id[0] || !ev)
		return HIE_OK;
	if (from && hisp_addr_normalize(from, false, fromaddr, sizeof fromaddr) != HIE_OK)
		fromaddr[0] = '\0';
	/* A reporter speaks for its own domain only. */
	if (n->final_recipient[0] &&
	    (!fromaddr[0] || strcmp(hisp_addr_domain(n->final_recipient), hisp_addr_domain(fromaddr)) == 0))
		snprintf(cand[ncand++], sizeof cand[0], "%s", n->final_recipient);
	if (fromaddr[0] && (ncand == 0 || strcmp(cand[0], fromaddr) != 0))
		snprintf(cand[ncand++], sizeof cand[0], "%s", fromaddr);
	const char *addr = NULL;
	for (size_t i = 0; i < ncand && !found && !err; i++) {
		err = find_rcpt(tx, n->original_message_id, cand[i], &row, &found);
		addr = cand[i];
	}
	if (err)
		return err;
	if (!found) {
		hie_log(HIE_LOG_INFO, "event=hisp.notice result=suppressed why=unknown");
		return HIE_OK;
	}
	if (final_state(row.state, row.notified) || (strcmp(ev, "processed") == 0 && strcmp(row.state, "processed") == 0)) {
		hie_log(HIE_LOG_INFO, "event=hisp.notice outbound=%s state=%s notice=%s result=suppressed why=%s", row.oid,
			row.state, ev, row.notified ? "final" : "duplicate");
		return HIE_OK;
	}
	bool notify = strcmp(ev, "processed") != 0 || !row.want_final;
	const char *reason = strcmp(ev, "failed") != 0 ? NULL : n->kind == HISP_NOTICE_DSN ? "DSN failed" : "failed MDN";
	err = set_state(tx, row.oid, addr, ev, reason, notify);
	if (err)
		return err;
	snprintf(sender, senderlen, "%s", row.sender);
	hie_log(HIE_LOG_INFO, "event=hisp.notice outbound=%s state=%s final=%d result=forwarded", row.oid, ev,
		notify ? 1 : 0);
	return HIE_OK;
}

/* --- the hisp.timeout job -------------------------------------------------------------------------------- */

struct timeout_ctx {
	struct hisp *h;
	long long id;
	int expired;
};

static hie_err_t timeout_tx(PGconn *tx, void *arg)
{
	struct timeout_ctx *c = arg;
	char oid[24];
	PGresult *o = NULL, *r = NULL;
	struct hisp_dsn_rcpt *rc = NULL;
	c->expired = 0;
	snprintf(oid, sizeof oid, "%lld", c->id);
	const char *p[] = {oid};
	hie_err_t err = hie_db_exec(tx,
				    "SELECT sender, message_id FROM hisp_outbound WHERE id = $1::bigint AND kind = 'message'"
				    " FOR UPDATE",
				    1, p, &o);
	if (err || PQntuples(o) != 1)
		goto out; /* gone, or a notice (no deadline): nothing to do */
	/* Every recipient not final yet; the notified flag makes a second run a no-op. */
	err = hie_db_exec(tx,
			  "WITH u AS (UPDATE hisp_outbound_rcpt r SET state = 'timeout', reason = 'MDN timeout',"
			  " notified = true, updated_at = now() FROM hisp_outbound o"
			  " WHERE o.id = r.outbound_id AND r.outbound_id = $1::bigint AND NOT r.notified"
			  " AND (r.state IN ('pending', 'sent') OR (r.state = 'processed' AND o.want_final))"
			  " RETURNING r.address) SELECT address FROM u ORDER BY address",
			  1, p, &r);
	if (err)
		goto out;
	int n = PQntuples(r);
	if (n == 0)
		goto out;
	rc = calloc((size_t)n, sizeof *rc);
	if (!rc) {
		err = HIE_ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++)
		rc[i] = (struct hisp_dsn_rcpt){.address = PQgetvalue(r, i, 0), .status = "4.4.7", .diagnostic = "MDN timeout"};
	char dsn_id[320];
	snprintf(dsn_id, sizeof dsn_id, "dsn-timeout-%lld@%s", c->id, hostname(c->h));
	err = put_dsn(c->h, tx, PQgetvalue(o, 0, 0), PQgetvalue(o, 0, 1), rc, (size_t)n, dsn_id);
	if (err == HIE_EINVAL) {
		hie_log(HIE_LOG_ERR, "event=hisp.dsn outbound=%lld error=build", c->id);
		err = HIE_OK;
	}
	c->expired = n;
out:
	free(rc);
	PQclear(r);
	PQclear(o);
	return err;
}

hie_err_t hisp_timeout_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct timeout_ctx c = {.h = arg};
	char *end;
	if (!job || !c.h || !c.h->pool)
		return HIE_EPERMANENT;
	c.id = strtoll(job->payload, &end, 10);
	if (end == job->payload || *end != '\0' || c.id <= 0) {
		snprintf(errbuf, errlen, "bad payload");
		return HIE_EPERMANENT;
	}
	hie_err_t err = hie_db_tx(c.h->pool, timeout_tx, &c);
	if (err) {
		snprintf(errbuf, errlen, "timeout: %s", hie_errname(err));
		return err;
	}
	if (c.expired)
		hie_log(HIE_LOG_INFO, "event=hisp.timeout outbound=%lld recipients=%d", c.id, c.expired);
	return HIE_OK;
}
