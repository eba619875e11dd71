/*
 * hisp_bridge.c — push-to-pull (issue 5 item 5), the module's side: the hisp.bridge job finds the documents
 * of a received message and hands each to the bridge callback the node set (hisp_service_set_bridge), which
 * registers it in the local XDS registry and repository.
 *
 * Documents of a message: each XDM attachment read with hisp_xdm_read (every document with its METADATA.xml;
 * part "<attachment>/<path in the zip>"), and each attachment that is an HL7 CDA ClinicalDocument (no metadata;
 * part "<attachment>"), where <attachment> is the file name or "part-<index>". An invalid XDM is parked (one
 * row, reason "invalid XDM: <why>"). Outcome per document in hisp_bridge_docs (unique on mailbox id and part):
 * registered (uniqueId), parked (reason, for an operator: `hienode bridge parked|retry`), failed.
 *
 * Entry point: hisp_bridge_job (hisp_edge.h). Idempotent: documents already registered are skipped, the others
 * handed over again. The callback runs outside any transaction; its error (or no callback set: "bridge not
 * configured") makes the job return an error so that the queue retries it later. A message without documents
 * records nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_db.h"
#include "core/core_log.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_util.h"

#define HDR_MAX (64 * 1024)
#define DEFAULT_MSG_MAX (64u << 20)
#define PART_MAX 704

struct bridge {
	struct hisp *h;
	long long mid;
	char ids[24];
	PGresult *item;          /* address, message_id, content (binary) */
	const char *address;
	const char *msg;
	size_t len;
	char sender[256];
	char msgid[256];
	PGresult *done;          /* parts already registered */
	char *errbuf;
	size_t errlen;
	unsigned registered, parked, failed, skipped;
};

static hie_err_t load(struct bridge *b)
{
	PGconn *conn = NULL;
	hie_err_t err = hie_db_acquire(b->h->pool, -1, &conn);
	if (err)
		return err;
	const char *p[] = {b->ids};
	err = hie_db_exec_bin(conn, "SELECT address, coalesce(message_id, ''), content FROM hisp_mailbox"
				    " WHERE id = $1::bigint AND kind = 'message'",
			      1, p, NULL, NULL, 1, &b->item);
	if (!err && PQntuples(b->item) != 1)
		err = HIE_ENOTFOUND;
	if (!err)
		err = hie_db_exec(conn,
				  "SELECT part FROM hisp_bridge_docs WHERE mailbox_id = $1::bigint AND state = 'registered'",
				  1, p, &b->done);
	hie_db_release(b->h->pool, conn, err == HIE_EDB);
	if (err)
		return err;
	b->address = PQgetvalue(b->item, 0, 0);
	b->msg = PQgetvalue(b->item, 0, 2);
	b->len = (size_t)PQgetlength(b->item, 0, 2);
	return HIE_OK;
}

static int first_addr(const char *addr, void *arg)
{
	snprintf(arg, 256, "%s", addr);
	return 1;
}

/* Sender and Message-ID (without <>) from the message's headers; "" when absent. */
static void read_headers(struct bridge *b)
{
	struct hie_buf v;
	hie_buf_init(&v, HDR_MAX);
	if (hisp_msg_header(b->msg, b->len, "From", 0, &v) == HIE_OK)
		hisp_addrlist_each(v.data, v.len, first_addr, b->sender);
	if (hisp_msg_header(b->msg, b->len, "Message-ID", 0, &v) == HIE_OK) {
		const char *s = hie_buf_str(&v);
		size_t n = v.len;
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		char tmp[256];
		if (n < sizeof tmp) {
			memcpy(tmp, s, n);
			tmp[n] = '\0';
			hisp_printable(tmp, b->msgid, sizeof b->msgid, '?');
		}
	}
	hie_buf_free(&v);
}

static bool is_registered(const struct bridge *b, const char *part)
{
	for (int i = 0; i < PQntuples(b->done); i++)
		if (strcmp(PQgetvalue(b->done, i, 0), part) == 0)
			return true;
	return false;
}

/* The row of one document (one statement, autocommit): a registered row is never turned back. */
static hie_err_t record(struct bridge *b, const char *part, const char *state, const char *unique_id,
			const char *reason)
{
	PGconn *conn = NULL;
	hie_err_t err = hie_db_acquire(b->h->pool, -1, &conn);
	if (err)
		return err;
	const char *p[] = {b->ids, part, state, unique_id, reason};
	err = hie_db_exec(conn,
			  "INSERT INTO hisp_bridge_docs (mailbox_id, part, state, unique_id, reason)"
			  " VALUES ($1::bigint, $2, $3, $4, $5)"
			  " ON CONFLICT (mailbox_id, part) DO UPDATE SET state = EXCLUDED.state,"
			  " unique_id = EXCLUDED.unique_id, reason = EXCLUDED.reason, updated_at = now()"
			  " WHERE hisp_bridge_docs.state <> 'registered'",
			  5, p, NULL);
	hie_db_release(b->h->pool, conn, err == HIE_EDB);
	return err;
}

/* One document to the callback, then its row. An error: the job is retried (nothing recorded for it). */
static hie_err_t hand_over(struct bridge *b, const char *part, const struct hisp_bridge_doc *doc)
{
	struct hisp_bridge_result res = {.outcome = HISP_BRIDGE_FAILED};
	char uid[sizeof res.unique_id], why[sizeof res.reason];
	if (is_registered(b, part)) {
		b->skipped++;
		return HIE_OK;
	}
	if (!b->h->bridge_fn) {
		hie_log(HIE_LOG_WARN, "event=hisp.bridge mailbox=%lld error=not_configured", b->mid);
		snprintf(b->errbuf, b->errlen, "bridge not configured");
		return HIE_EIO;
	}
	hie_err_t err = b->h->bridge_fn(b->h->bridge_arg, doc, &res);
	if (err) {
		hie_log(HIE_LOG_NOTICE, "event=hisp.bridge mailbox=%lld result=retry error=%s", b->mid, hie_errname(err));
		snprintf(b->errbuf, b->errlen, "bridge: %s", hie_errname(err));
		return err;
	}
	res.unique_id[sizeof res.unique_id - 1] = '\0';
	res.reason[sizeof res.reason - 1] = '\0';
	hisp_printable(res.unique_id, uid, sizeof uid, '?');
	hisp_printable(res.reason, why, sizeof why, '?');
	switch (res.outcome) {
	case HISP_BRIDGE_REGISTERED:
		b->registered++;
		return record(b, part, "registered", uid[0] ? uid : NULL, NULL);
	case HISP_BRIDGE_PARKED:
		b->parked++;
		return record(b, part, "parked", NULL, why[0] ? why : "parked");
	default:
		b->failed++;
		return record(b, part, "failed", NULL, why[0] ? why : "failed");
	}
}

static void part_name(const struct hisp_part *p, char *out, size_t outlen)
{
	if (p->filename[0])
		hisp_printable(p->filename, out, outlen, '_');
	else
		snprintf(out, outlen, "part-%u", p->index);
}

static hie_err_t xdm_part(struct bridge *b, const struct hisp_part *p, const char *name)
{
	struct hisp_xdm *x = NULL;
	char why[160] = "", w[160], part[PART_MAX];
	hie_err_t err = hisp_xdm_read(p->data, p->len, &x, why, sizeof why);
	if (err == HIE_EPARSE || err == HIE_ETOOBIG) {
		if (is_registered(b, name))
			return HIE_OK;
		hisp_printable(err == HIE_ETOOBIG ? "package over the size limits" : why[0] ? why : "unreadable", w,
			       sizeof w, '?');
		char reason[200];
		snprintf(reason, sizeof reason, "invalid XDM: %s", w);
		b->parked++;
		hie_log(HIE_LOG_NOTICE, "event=hisp.bridge mailbox=%lld part=%u result=parked why=\"%s\"", b->mid, p->index,
			w);
		return record(b, name, "parked", NULL, reason);
	}
	if (err)
		return err;
	for (size_t i = 0; i < x->ndocs && !err; i++) {
		const struct hisp_xdm_doc *d = &x->docs[i];
		char path[400];
		hisp_printable(d->path, path, sizeof path, '_');
		snprintf(part, sizeof part, "%s/%s", name, path);
		const struct hisp_bridge_doc doc = {.data = d->data,
						    .len = d->len,
						    .mime_type = d->mime_type,
						    .metadata = x->metadata,
						    .metadata_len = x->metadata_len,
						    .entry_id = d->entry_id,
						    .sender = b->sender,
						    .recipient = b->address,
						    .message_id = b->msgid};
		err = hand_over(b, part, &doc);
	}
	hisp_xdm_free(x);
	return err;
}

hie_err_t hisp_bridge_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct hisp *h = arg;
	struct bridge b = {.h = h, .errbuf = errbuf, .errlen = errlen};
	struct hisp_parts parts = {0};
	char *end = NULL;
	hie_err_t err;

	errno = 0;
	b.mid = strtoll(job->payload, &end, 10);
	if (errno || end == job->payload || *end || b.mid <= 0) {
		snprintf(errbuf, errlen, "bad payload");
		return HIE_EPERMANENT;
	}
	snprintf(b.ids, sizeof b.ids, "%lld", b.mid);
	err = load(&b);
	if (err == HIE_ENOTFOUND) {
		hie_log(HIE_LOG_NOTICE, "event=hisp.bridge mailbox=%lld result=gone", b.mid);
		err = HIE_OK;
		goto out;
	}
	if (err)
		goto out;
	read_headers(&b);
	err = hisp_parts_split(b.msg, b.len, h->max_message ? h->max_message : DEFAULT_MSG_MAX, &parts);
	if (err == HIE_EPARSE || err == HIE_ETOOBIG) {
		/* never dropped silently: the operator sees it among the parked documents */
		err = record(&b, "message", "parked",  NULL,
			     err == HIE_EPARSE ? "message cannot be split into parts" : "message parts over the size limit");
		b.parked++;
		goto done;
	}
	if (err)
		goto out;
	for (size_t i = 0; i < parts.n && !err; i++) {
		const struct hisp_part *p = &parts.v[i];
		char name[300];
		if (!p->is_xdm && !p->is_cda)
			continue;
		part_name(p, name, sizeof name);
		if (p->is_xdm) {
			err = xdm_part(&b, p, name);
			continue;
		}
		const struct hisp_bridge_doc doc = {.data = p->data,
						    .len = p->len,
						    .mime_type = p->content_type,
						    .sender = b.sender,
						    .recipient = b.address,
						    .message_id = b.msgid};
		err = hand_over(&b, name, &doc);
	}
done:
	if (!err)
		hie_log(HIE_LOG_INFO,
			"event=hisp.bridge mailbox=%lld registered=%u parked=%u failed=%u already=%u", b.mid,
			b.registered, b.parked, b.failed, b.skipped);
out:
	if (err && errbuf && errlen && !errbuf[0])
		snprintf(errbuf, errlen, "%s", hie_errname(err));
	hisp_parts_free(&parts);
	PQclear(b.item);
	PQclear(b.done);
	return err;
}
