/*
 * hisp_receive.c — the hisp.receive job: an accepted SMTP message (hisp_inbound row, state received) is
 * decrypted, verified and checked, then delivered to the local mailboxes with a processed MDN queued to its
 * sender, or recognized as a notice (MDN/DSN) about something we sent, or quarantined with a reason.
 *
 * Checks (STANDARDS.md §1 "Receiving"), all on the decrypted INNER message (the wrapped message/rfc822 when
 * the sender wrapped, which AS 1.3 asks for; outer headers are untrusted routing data and never read here;
 * an unwrapped message is accepted and logged with wrapped=0):
 *   decrypt with our keys for the envelope recipients; the S/MIME rules (hisp_smime_decode) — refused or
 *   malformed: quarantined with its reason;
 *   a From address; at least one signer that verifies AND passes hisp_trust_check for the sender and each
 *   recipient's domain (one bad signer beside a good one is fine) — else "untrusted signer: <last reason>";
 *   no Bcc header ("bcc"); every envelope recipient in the inner To or Cc ("recipient not in To/Cc").
 * A quarantined message gets no MDN. A message refused for its content is not a job failure (HIE_OK);
 * database and transient trust errors (HIE_EDB: anchors unreadable) are, and the job is retried.
 *
 * Delivery is one transaction: the row is locked and re-checked (a re-run after a crash finds it delivered
 * and does nothing); a notice goes through hisp_track_notice and, when it is not suppressed, into our
 * sender's mailbox — never an MDN for an MDN or a DSN; an ordinary message goes into each recipient's
 * mailbox and a processed MDN per recipient is submitted with a Message-ID derived from the inbound id
 * (mdn-<inbound>-<n>@<host>), so a second run submits nothing new.
 *
 * hisp_mdn_dispatched queues the dispatched MDN (with X-DIRECT-FINAL-DESTINATION-DELIVERY) when the edge has
 * delivered a mailbox item whose message asked for it; hisp_mdn_failed the `failed` one when the edge could not
 * (forwarding refused for good). The processed MDN does not carry that extension field:
 * it reports processing, not delivery to the final destination (the IG's and the NIST tools' reading).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core_db.h"
#include "core/core_log.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_svc.h"

#define MAX_RCPTS 1000
#define HDR_MAX (64 * 1024)
#define MDN_MAX (64 * 1024)

struct inbound {
	long long id;
	char ids[24];
	PGresult *res;           /* owns state, raw */
	const char *state;
	const char *raw;
	size_t raw_len;
	char (*rcpts)[256];      /* normalized envelope recipients */
	size_t nrcpts;
};

struct rx {
	struct hisp *h;
	struct inbound *in;
	const char *msg;         /* the inner message */
	size_t len;
	char from[256];
	char msgid[256];         /* inner Message-ID without <>; "" when absent or not storable */
	char subject[401];       /* printable ASCII or "" */
	bool wants_final;
	enum hisp_notice_kind nkind;
	const char *outcome;     /* for the log */
};

static void inbound_free(struct inbound *in)
{
	PQclear(in->res);
	free(in->rcpts);
}

/* Loads the row; HIE_ENOTFOUND when there is none. */
static hie_err_t inbound_load(struct hie_db_pool *pool, struct inbound *in)
{
	PGconn *conn = NULL;
	hie_err_t err = hie_db_acquire(pool, -1, &conn);
	if (err)
		return err;
	const char *p[] = {in->ids};
	/* All columns in binary: text comes as its bytes, raw as the message bytes (no hex doubling). */
	err = hie_db_exec_bin(conn,
			      "SELECT state, array_to_string(rcpt_to, ' '), raw FROM hisp_inbound WHERE id = $1::bigint",
			      1, p, NULL, NULL, 1, &in->res);
	hie_db_release(pool, conn, err == HIE_EDB);
	if (err)
		return err;
	if (PQntuples(in->res) != 1)
		return HIE_ENOTFOUND;
	in->state = PQgetvalue(in->res, 0, 0);
	in->raw = PQgetvalue(in->res, 0, 2);
	in->raw_len = (size_t)PQgetlength(in->res, 0, 2);
	const char *s = PQgetvalue(in->res, 0, 1);
	in->rcpts = calloc(MAX_RCPTS, sizeof *in->rcpts);
	if (!in->rcpts)
		return HIE_ENOMEM;
	while (*s && in->nrcpts < MAX_RCPTS) {
		const char *sp = strchr(s, ' ');
		size_t n = sp ? (size_t)(sp - s) : strlen(s);
		char tmp[256];
		if (n > 0 && n < sizeof tmp) {
			memcpy(tmp, s, n);
			tmp[n] = '\0';
			if (hisp_addr_normalize(tmp, false, in->rcpts[in->nrcpts], sizeof in->rcpts[0]) == HIE_OK)
				in->nrcpts++;
		}
		s += n;
		while (*s == ' ')
			s++;
	}
	return HIE_OK;
}

/* --- quarantine ------------------------------------------------------------------------------------------ */

struct quarantine {
	const char *ids;
	char reason[256];
};

static hie_err_t quarantine_tx(PGconn *tx, void *arg)
{
	struct quarantine *q = arg;
	const char *p[] = {q->ids, q->reason};
	return hie_db_exec(tx,
			   "UPDATE hisp_inbound SET state = 'quarantined', reason = $2, processed_at = now()"
			   " WHERE id = $1::bigint AND state = 'received'",
			   2, p, NULL);
}

static hie_err_t quarantine(struct hisp *h, const struct inbound *in, const char *prefix, const char *detail)
{
	struct quarantine q = {.ids = in->ids};
	char raw[256];
	snprintf(raw, sizeof raw, "%s%s", prefix, detail ? detail : "");
	/* Reasons are ours or the S/MIME and trust layers' (rules, never content); still made printable. */
	size_t n = 0;
	for (const char *s = raw; *s && n + 1 < sizeof q.reason; s++)
		q.reason[n++] = ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) ? '?' : *s;
	q.reason[n] = '\0';
	hie_err_t err = hie_db_tx(h->pool, quarantine_tx, &q);
	if (!err) {
		char lr[128];
		hie_log(HIE_LOG_NOTICE, "event=hisp.quarantine inbound=%lld reason=%s", in->id,
			hie_log_printable(lr, sizeof lr, q.reason, strlen(q.reason)));
	}
	return err;
}

/* --- keys and decryption --------------------------------------------------------------------------------- */

struct keyset {
	struct hisp_keypair **sets;
	size_t *counts;
	size_t nsets;
	struct hisp_keypair *flat; /* shallow copies; the sets own the references */
	size_t n;
};

static void keyset_free(struct keyset *k)
{
	for (size_t i = 0; i < k->nsets; i++)
		hisp_keypairs_free(k->sets[i], k->counts[i]);
	free(k->sets);
	free(k->counts);
	free(k->flat);
}

static hie_err_t keyset_load(struct hisp *h, const struct inbound *in, struct keyset *k)
{
	k->sets = calloc(in->nrcpts ? in->nrcpts : 1, sizeof *k->sets);
	k->counts = calloc(in->nrcpts ? in->nrcpts : 1, sizeof *k->counts);
	if (!k->sets || !k->counts)
		return HIE_ENOMEM;
	size_t total = 0;
	for (size_t i = 0; i < in->nrcpts; i++) {
		hie_err_t err = hisp_keys_find(h->keys, in->rcpts[i], HISP_USE_ENCRYPT, &k->sets[k->nsets],
					       &k->counts[k->nsets]);
		if (err == HIE_ENOTFOUND)
			continue;
		if (err)
			return err;
		total += k->counts[k->nsets++];
	}
	k->flat = calloc(total ? total : 1, sizeof *k->flat);
	if (!k->flat)
		return HIE_ENOMEM;
	for (size_t i = 0; i < k->nsets; i++)
		for (size_t j = 0; j < k->counts[i]; j++)
			k->flat[k->n++] = k->sets[i][j];
	return HIE_OK;
}

/* --- checks on the inner message ------------------------------------------------------------------------- */

static int first_addr(const char *addr, void *arg)
{
	snprintf(arg, 256, "%s", addr);
	return 1;
}

struct find_addr {
	const char *want;
	bool found;
};

static int match_addr(const char *addr, void *arg)
{
	struct find_addr *f = arg;
	if (strcmp(addr, f->want) == 0)
		f->found = true;
	return f->found;
}

static bool in_to_cc(const struct rx *x, const char *rcpt, struct hie_buf *v)
{
	static const char *const names[] = {"To", "Cc"};
	struct find_addr f = {.want = rcpt};
	for (size_t k = 0; k < 2 && !f.found; k++)
		for (unsigned nth = 0; !f.found && hisp_msg_header(x->msg, x->len, names[k], nth, v) == HIE_OK; nth++)
			hisp_addrlist_each(v->data, v->len, match_addr, &f);
	return f.found;
}

static bool text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Reads From, Message-ID, Subject, Disposition-Notification-Options; returns a quarantine reason or NULL. */
static const char *read_headers(struct rx *x)
{
	struct hie_buf v;
	const char *why = NULL;
	hie_buf_init(&v, HDR_MAX);
	if (hisp_msg_header(x->msg, x->len, "From", 0, &v) != HIE_OK ||
	    hisp_addrlist_each(v.data, v.len, first_addr, x->from) != HIE_OK || !x->from[0]) {
		why = "no From address";
		goto out;
	}
	if (hisp_msg_header(x->msg, x->len, "Bcc", 0, &v) == HIE_OK) {
		why = "bcc";
		goto out;
	}
	if (hisp_msg_header(x->msg, x->len, "Message-ID", 0, &v) == HIE_OK) {
		const char *s = hie_buf_str(&v);
		size_t n = v.len;
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		if (n > 0 && n < 250 && text_ok(s, n) && !memchr(s, '<', n) && !memchr(s, '>', n)) {
			memcpy(x->msgid, s, n);
			x->msgid[n] = '\0';
		}
	}
	if (hisp_msg_header(x->msg, x->len, "Subject", 0, &v) == HIE_OK && v.len < sizeof x->subject &&
	    text_ok(v.data, v.len))
		memcpy(x->subject, v.data, v.len + 1);
	if (hisp_msg_header(x->msg, x->len, "Disposition-Notification-Options", 0, &v) == HIE_OK)
		x->wants_final = hisp_notice_wants_final(v.data, v.len);
	for (size_t i = 0; i < x->in->nrcpts && !why; i++)
		if (!in_to_cc(x, x->in->rcpts[i], &v))
			why = "recipient not in To/Cc";
out:
	hie_buf_free(&v);
	return why;
}

/*
 * HIE_OK when, for every recipient domain, some verified signer is trusted for the sender; HIE_EDENIED with
 * the last reason otherwise; HIE_EDB (and other errors) when the trust store could not be read.
 */
static hie_err_t check_signers(struct rx *x, const struct hisp_smime_result *res, char *reason, size_t rlen)
{
	snprintf(reason, rlen, "no signer");
	for (size_t i = 0; i < x->in->nrcpts; i++) {
		const char *dom = hisp_addr_domain(x->in->rcpts[i]);
		bool dup = false, ok = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = strcmp(hisp_addr_domain(x->in->rcpts[k]), dom) == 0;
		if (dup)
			continue;
		for (size_t s = 0; s < res->nsigners && !ok; s++) {
			const struct hisp_smime_signer *sg = &res->signers[s];
			if (!sg->verified) {
				snprintf(reason, rlen, "%s", sg->reason[0] ? sg->reason : "signature does not verify");
				continue;
			}
			if (!sg->cert) {
				snprintf(reason, rlen, "signer certificate missing");
				continue;
			}
			hie_err_t err = hisp_trust_check(x->h->trust, sg->cert, res->certs, dom, HISP_INCOMING, x->from,
							 HISP_USE_SIGN, reason, rlen);
			if (err == HIE_OK)
				ok = true;
			else if (err != HIE_EDENIED)
				return err;
		}
		if (!ok)
			return HIE_EDENIED;
	}
	return HIE_OK;
}

/* --- delivery -------------------------------------------------------------------------------------------- */

static hie_err_t deliver_notice(struct rx *x, PGconn *tx)
{
	bool put = false;
	const char *kind = x->nkind == HISP_NOTICE_DSN ? "dsn" : "mdn";
	x->outcome = "notice-suppressed";
	for (unsigned nth = 0; nth < MAX_RCPTS; nth++) {
		struct hisp_notice_info info;
		char sender[256];
		hie_err_t err = hisp_notice_parse_nth(x->msg, x->len, nth, &info);
		if (err == HIE_ENOTFOUND)
			break;
		if (err)
			return err;
		err = hisp_track_notice(x->h, tx, &info, x->from, sender, sizeof sender);
		if (err)
			return err;
		if (sender[0] && !put) {
			err = hisp_mailbox_put(tx, sender, kind, x->in->id, x->msgid, x->msg, x->len);
			if (err)
				return err;
			put = true;
			x->outcome = "notice-forwarded";
		}
	}
	return HIE_OK;
}

static hie_err_t queue_mdn(struct rx *x, PGconn *tx, size_t i)
{
	char mdnid[320], ua[300];
	struct hie_buf b;
	snprintf(mdnid, sizeof mdnid, "mdn-%lld-%zu@%s", x->in->id, i, x->h->hostname);
	snprintf(ua, sizeof ua, "%s; hienode", x->h->hostname);
	struct hisp_mdn_req req = {.from = x->in->rcpts[i],
				   .to = x->from,
				   .original_message_id = x->msgid,
				   .original_subject = x->subject[0] ? x->subject : NULL,
				   .disposition = "processed",
				   .reporting_ua = ua,
				   .message_id = mdnid};
	hie_buf_init(&b, MDN_MAX);
	hie_err_t err = hisp_mdn_build(&req, &b);
	if (!err) {
		const char *to[] = {x->from};
		long long oid = 0;
		err = hisp_outbound_submit(tx, "mdn", x->in->rcpts[i], to, 1, b.data, b.len, mdnid, false, 0, &oid);
	}
	hie_buf_free(&b);
	return err;
}

static hie_err_t deliver_tx(PGconn *tx, void *arg)
{
	struct rx *x = arg;
	PGresult *r = NULL;
	const char *p[] = {x->in->ids, x->msgid[0] ? x->msgid : NULL};
	hie_err_t err = hie_db_exec(tx, "SELECT state FROM hisp_inbound WHERE id = $1::bigint FOR UPDATE", 1, p, &r);
	if (err)
		return err;
	bool todo = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "received") == 0;
	PQclear(r);
	if (!todo) {
		x->outcome = "already-done";
		return HIE_OK;
	}
	if (x->nkind != HISP_NOTICE_NONE) {
		err = deliver_notice(x, tx);
	} else {
		x->outcome = "delivered";
		for (size_t i = 0; i < x->in->nrcpts && !err; i++) {
			err = hisp_mailbox_put(tx, x->in->rcpts[i], "message", x->in->id, x->msgid, x->msg, x->len);
			if (!err)
				err = hisp_edge_delivered(x->h, tx, x->in->rcpts[i], x->in->id);
			/* Without a Message-ID the sender cannot match an MDN: delivered, logged, no MDN. */
			if (!err && x->msgid[0])
				err = queue_mdn(x, tx, i);
		}
	}
	if (!err)
		err = hie_db_exec(tx,
				  x->nkind != HISP_NOTICE_NONE
					  ? "UPDATE hisp_inbound SET state = 'notice', message_id = $2, processed_at = now() WHERE id = $1::bigint"
					  : "UPDATE hisp_inbound SET state = 'delivered', message_id = $2, processed_at = now() WHERE id = $1::bigint",
				  2, p, NULL);
	return err;
}

/* Decrypted and verified: the checks, then delivery. HIE_OK also when the message was quarantined. */
static hie_err_t process(struct rx *x, const struct hisp_smime_result *res)
{
	char reason[200];
	x->msg = res->message;
	x->len = res->message_len;
	const char *why = read_headers(x);
	if (why)
		return quarantine(x->h, x->in, why, NULL);
	hie_err_t err = check_signers(x, res, reason, sizeof reason);
	if (err == HIE_EDENIED)
		return quarantine(x->h, x->in, "untrusted signer: ", reason);
	if (err)
		return err;
	struct hisp_notice_info info;
	err = hisp_notice_parse(x->msg, x->len, &info);
	x->nkind = info.kind;
	if (err == HIE_EPARSE || (err && info.kind != HISP_NOTICE_NONE))
		return quarantine(x->h, x->in, "malformed ", info.kind == HISP_NOTICE_DSN ? "DSN" : "MDN");
	if (err)
		return err;
	err = hie_db_tx(x->h->pool, deliver_tx, x);
	if (err)
		return err;
	hisp_wake(x->h);
	hie_log(HIE_LOG_INFO, "event=hisp.receive inbound=%lld result=%s wrapped=%d rcpts=%zu mdn=%d", x->in->id,
		x->outcome, res->wrapped ? 1 : 0, x->in->nrcpts,
		x->nkind == HISP_NOTICE_NONE && x->msgid[0] && strcmp(x->outcome, "delivered") == 0);
	return HIE_OK;
}

hie_err_t hisp_receive_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct hisp *h = arg;
	struct inbound in = {0};
	struct keyset keys = {0};
	struct hisp_smime_result res;
	char *end, reason[256] = "";
	memset(&res, 0, sizeof res);
	if (!job || !h || !h->pool)
		return HIE_EPERMANENT;
	in.id = strtoll(job->payload, &end, 10);
	if (end == job->payload || *end != '\0' || in.id <= 0) {
		snprintf(errbuf, errlen, "bad payload");
		return HIE_EPERMANENT;
	}
	snprintf(in.ids, sizeof in.ids, "%lld", in.id);
	hie_err_t err = inbound_load(h->pool, &in);
	if (err == HIE_ENOTFOUND) {
		hie_log(HIE_LOG_WARN, "event=hisp.receive inbound=%lld result=missing", in.id);
		err = HIE_OK;
		goto out;
	}
	if (err || strcmp(in.state, "received") != 0)
		goto out; /* done before: idempotent */
	err = keyset_load(h, &in, &keys);
	if (err)
		goto out;
	err = hisp_smime_decode(in.raw, in.raw_len, keys.flat, keys.n, &res, reason, sizeof reason);
	if (err == HIE_EDENIED || err == HIE_EPARSE || err == HIE_ETOOBIG) {
		err = quarantine(h, &in, reason[0] ? reason : err == HIE_ETOOBIG ? "too big" : "malformed S/MIME", NULL);
		goto out;
	}
	if (err)
		goto out;
	struct rx x = {.h = h, .in = &in};
	err = process(&x, &res);
out:
	if (err)
		snprintf(errbuf, errlen, "receive inbound=%lld: %s", in.id, hie_errname(err));
	hisp_smime_result_free(&res);
	keyset_free(&keys);
	inbound_free(&in);
	return err;
}

/* --- dispatched ------------------------------------------------------------------------------------------ */

/* The MDN with X-DIRECT-FINAL-DESTINATION-DELIVERY (disposition dispatched or failed) for mailbox item mailbox_id,
 * queued when its message asked for final-destination delivery. Message-ID "mdn-<disposition>-<id>@host". */
static hie_err_t queue_final_mdn(struct hisp *h, PGconn *tx, long long mailbox_id, const char *disposition)
{
	char ids[24], from[256] = "", msgid[256] = "", subject[401] = "", mdnid[320], ua[300];
	PGresult *r = NULL;
	struct hie_buf v, b;
	if (!h || !tx)
		return HIE_EINVAL;
	snprintf(ids, sizeof ids, "%lld", mailbox_id);
	const char *p[] = {ids};
	hie_err_t err = hie_db_exec_bin(tx, "SELECT address, kind, content FROM hisp_mailbox WHERE id = $1::bigint", 1,
					p, NULL, NULL, 1, &r);
	if (err)
		return err;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return HIE_ENOTFOUND;
	}
	const char *rcpt = PQgetvalue(r, 0, 0), *msg = PQgetvalue(r, 0, 2);
	size_t len = (size_t)PQgetlength(r, 0, 2);
	hie_buf_init(&v, HDR_MAX);
	hie_buf_init(&b, MDN_MAX);
	if (strcmp(PQgetvalue(r, 0, 1), "message") != 0 ||
	    hisp_msg_header(msg, len, "Disposition-Notification-Options", 0, &v) != HIE_OK ||
	    !hisp_notice_wants_final(v.data, v.len))
		goto out; /* a notice, or the sender did not ask */
	if (hisp_msg_header(msg, len, "From", 0, &v) == HIE_OK)
		hisp_addrlist_each(v.data, v.len, first_addr, from);
	if (hisp_msg_header(msg, len, "Message-ID", 0, &v) == HIE_OK) {
		const char *s = hie_buf_str(&v);
		size_t n = v.len;
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		if (n > 0 && n < 250 && text_ok(s, n)) {
			memcpy(msgid, s, n);
			msgid[n] = '\0';
		}
	}
	if (hisp_msg_header(msg, len, "Subject", 0, &v) == HIE_OK && v.len < sizeof subject && text_ok(v.data, v.len))
		memcpy(subject, v.data, v.len + 1);
	if (!from[0] || !msgid[0])
		goto out;
	hisp_mdn_final_id(h, disposition, mailbox_id, mdnid, sizeof mdnid);
	snprintf(ua, sizeof ua, "%s; hienode", h->hostname);
	struct hisp_mdn_req req = {.from = rcpt,
				   .to = from,
				   .original_message_id = msgid,
				   .original_subject = subject[0] ? subject : NULL,
				   .disposition = disposition,
				   .final_delivery = true,
				   .reporting_ua = ua,
				   .message_id = mdnid};
	err = hisp_mdn_build(&req, &b);
	if (!err) {
		const char *to[] = {from};
		long long oid = 0;
		err = hisp_outbound_submit(tx, "mdn", rcpt, to, 1, b.data, b.len, mdnid, false, 0, &oid);
	}
out:
	hie_buf_free(&v);
	hie_buf_free(&b);
	PQclear(r);
	return err;
}

void hisp_mdn_final_id(const struct hisp *h, const char *disposition, long long mailbox_id, char *out, size_t outlen)
{
	snprintf(out, outlen, "mdn-%s-%lld@%s", disposition, mailbox_id, h->hostname);
}

hie_err_t hisp_mdn_dispatched(struct hisp *h, PGconn *tx, long long mailbox_id)
{
	return queue_final_mdn(h, tx, mailbox_id, "dispatched");
}

hie_err_t hisp_mdn_failed(struct hisp *h, PGconn *tx, long long mailbox_id)
{
	return queue_final_mdn(h, tx, mailbox_id, "failed");
}
