/*
 * hisp_forward.c — per-address forwarding (issue 5 item 3): the hisp.forward job pushes a received mailbox
 * item to the practice's own system, either its SMTP server (libcurl smtp://, STARTTLS per the address's tls
 * setting, certificates verified against [edge] forward_smtp_ca) or its XDR endpoint (an ITI-41 with the
 * message's XDM metadata, or minimal metadata made for its attachments).
 *
 * Entry point: hisp_forward_job (hisp_edge.h). Outcome per mailbox item in hisp_forward_state:
 *   delivered  → in one transaction: the row, hisp_edge_ack (item acknowledged, dispatched MDN when asked);
 *   failed     → a permanent refusal (SMTP 5xx, XDR Failure, SOAP Sender fault / HTTP 4xx, a message that
 *                cannot be turned into an ITI-41) or the last attempt: in one transaction the row (with a short
 *                reason, never content) and a notice to the sender: a `failed` MDN when it asked for
 *                final-destination delivery, else a DSN. The message stays in the mailbox (it can be pulled).
 *   pending    → anything else (no connection, 4xx, timeout, HTTP 5xx): HIE_EIO "deferred: …", retried by the
 *                job queue with backoff; attempts and the last reason are kept on the row for the operator.
 * A row that is no longer pending is left alone (the job ran before): HIE_OK.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libxml/tree.h>

#include "core/core_db.h"
#include "core/core_log.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_util.h"

#define HDR_MAX (64 * 1024)
#define NOTICE_MAX (64 * 1024)
#define DEFAULT_MSG_MAX (64u << 20)
#define EBRS21_NS "urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1"

struct fwd {
	struct hisp *h;
	long long mid;
	int attempts;
	char ids[24];
	char address[256];
	char mkind[8];          /* the mailbox item's kind: message, mdn, dsn */
	char state[16];
	char kind[8];           /* smtp, xdr */
	char target[1100];
	char tls[16];
	char metadata[16];
	struct hie_buf msg;     /* the stored (decrypted, verified) message */
	char from[256];         /* the original sender, "" when the message names none */
	char msgid[256];        /* its Message-ID without <>, "" when absent or unusable */
	bool wants_final;
	char reason[200];       /* why it failed or was deferred: short, never content */
};

/* --- loading ------------------------------------------------------------------------------------------- */

static void copy_col(const PGresult *r, int col, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", PQgetisnull(r, 0, col) ? "" : PQgetvalue(r, 0, col));
}

/* The forward state with its mailbox item and settings, then the message bytes. HIE_ENOTFOUND: no such row. */
static hie_err_t load(struct fwd *f)
{
	PGconn *conn = NULL;
	PGresult *r = NULL;
	hie_err_t err = hie_db_acquire(f->h->pool, -1, &conn);
	if (err)
		return err;
	const char *p[] = {f->ids};
	err = hie_db_exec(conn,
			  "SELECT m.address, m.kind, s.state, s.kind, s.target, coalesce(fw.tls, 'required'),"
			  " coalesce(fw.metadata, 'full')"
			  " FROM hisp_forward_state s JOIN hisp_mailbox m ON m.id = s.mailbox_id"
			  " LEFT JOIN hisp_forwards fw ON fw.address = m.address"
			  " WHERE s.mailbox_id = $1::bigint",
			  1, p, &r);
	if (err)
		goto out;
	if (PQntuples(r) != 1) {
		err = HIE_ENOTFOUND;
		goto out;
	}
	copy_col(r, 0, f->address, sizeof f->address);
	copy_col(r, 1, f->mkind, sizeof f->mkind);
	copy_col(r, 2, f->state, sizeof f->state);
	copy_col(r, 3, f->kind, sizeof f->kind);
	copy_col(r, 4, f->target, sizeof f->target);
	copy_col(r, 5, f->tls, sizeof f->tls);
	copy_col(r, 6, f->metadata, sizeof f->metadata);
	if (strcmp(f->state, "pending") == 0)
		err = hisp_mailbox_get(conn, f->address, f->mid, &f->msg, NULL);
out:
	PQclear(r);
	hie_db_release(f->h->pool, conn, err == HIE_EDB);
	return err;
}

static int first_addr(const char *addr, void *arg)
{
	snprintf(arg, 256, "%s", addr);
	return 1;
}

static bool id_usable(const char *s, size_t n)
{
	if (n == 0 || n >= 250)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '<' || s[i] == '>')
			return false;
	return true;
}

/* From (first address), Message-ID and whether final-destination delivery was asked. */
static hie_err_t read_headers(struct fwd *f)
{
	struct hie_buf v;
	const char *m = f->msg.data;
	size_t len = f->msg.len;
	hie_buf_init(&v, HDR_MAX);
	if (hisp_msg_header(m, len, "From", 0, &v) == HIE_OK)
		hisp_addrlist_each(v.data, v.len, first_addr, f->from);
	if (hisp_msg_header(m, len, "Message-ID", 0, &v) == HIE_OK) {
		const char *s = hie_buf_str(&v);
		size_t n = v.len;
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		if (id_usable(s, n)) {
			memcpy(f->msgid, s, n);
			f->msgid[n] = '\0';
		}
	}
	f->wants_final = hisp_msg_header(m, len, "Disposition-Notification-Options", 0, &v) == HIE_OK &&
			 hisp_notice_wants_final(v.data, v.len);
	hie_buf_free(&v);
	return HIE_OK;
}

/* --- SMTP (libcurl) ------------------------------------------------------------------------------------- */

struct upload {
	const char *p;
	size_t len, pos;
};

static size_t upload_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload *u = arg;
	size_t room = size * nitems, n = u->len - u->pos;
	if (n > room)
		n = room;
	memcpy(buf, u->p + u->pos, n);
	u->pos += n;
	return n;
}

static long curl_tls_mode(const char *tls)
{
	if (strcmp(tls, "none") == 0)
		return (long)CURLUSESSL_NONE;
	if (strcmp(tls, "opportunistic") == 0)
		return (long)CURLUSESSL_TRY;
	return (long)CURLUSESSL_ALL;
}

/*
 * One SMTP transaction: MAIL FROM the original sender, RCPT the local address, DATA the stored bytes (libcurl
 * dot-stuffs). HIE_OK accepted; HIE_EPERMANENT for a 5xx reply; HIE_EIO for anything else (retry).
 */
static hie_err_t smtp_forward(struct fwd *f)
{
	char url[1400], mfrom[270], rcpt[270], ebuf[CURL_ERROR_SIZE] = "";
	struct upload u = {.p = f->msg.data, .len = f->msg.len};
	struct curl_slist *rl = NULL;
	hie_err_t err = HIE_EIO;
	long code = 0;
	CURL *c = curl_easy_init();
	if (!c)
		return HIE_ENOMEM;
	/* the URL's path is the EHLO domain */
	snprintf(url, sizeof url, "smtp://%s/%s", f->target, f->h->hostname[0] ? f->h->hostname : "localhost");
	snprintf(mfrom, sizeof mfrom, "<%s>", f->from);
	snprintf(rcpt, sizeof rcpt, "<%s>", f->address);
	rl = curl_slist_append(NULL, rcpt);
	if (!rl) {
		err = HIE_ENOMEM;
		goto out;
	}
	long timeout = f->h->smtp_out_timeout_ms > 0 ? f->h->smtp_out_timeout_ms : 60000;
	CURLcode rc = CURLE_OK;
	rc |= curl_easy_setopt(c, CURLOPT_URL, url);
	rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp");
	rc |= curl_easy_setopt(c, CURLOPT_MAIL_FROM, mfrom);
	rc |= curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rl);
	rc |= curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
	rc |= curl_easy_setopt(c, CURLOPT_READDATA, &u);
	rc |= curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.len);
	rc |= curl_easy_setopt(c, CURLOPT_USE_SSL, curl_tls_mode(f->tls));
	rc |= curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->h->forward_smtp_ca[0])
		rc |= curl_easy_setopt(c, CURLOPT_CAINFO, f->h->forward_smtp_ca);
	rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
	rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	if (rc != CURLE_OK) {
		hisp_reason(f->reason, sizeof f->reason, "smtp: libcurl option refused");
		err = HIE_EPERMANENT;
		goto out;
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK) {
		err = HIE_OK;
	} else if (code >= 500 && code <= 599) {
		hisp_reason(f->reason, sizeof f->reason, "smtp %ld", code);
		err = HIE_EPERMANENT;
	} else {
		char p[120];
		hisp_printable(ebuf[0] ? ebuf : curl_easy_strerror(rc), p, sizeof p, '?');
		if (code >= 400)
			hisp_reason(f->reason, sizeof f->reason, "smtp %ld: %s", code, p);
		else
			hisp_reason(f->reason, sizeof f->reason, "smtp: %s", p);
		err = HIE_EIO;
	}
out:
	curl_slist_free_all(rl);
	curl_easy_cleanup(c);
	return err;
}

/* --- XDR (ITI-41) --------------------------------------------------------------------------------------- */

struct docs {
	struct hisp_xdm_doc *v;
	char (*ids)[32];        /* generated entry ids for minimal metadata */
	size_t n, cap;
};

static hie_err_t docs_add(struct docs *d, const struct hisp_xdm_doc *doc)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct hisp_xdm_doc *v = realloc(d->v, cap * sizeof *v);
		if (!v)
			return HIE_ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = *doc;
	return HIE_OK;
}

/* The outcome of one ITI-41: HIE_OK for Success / PartialSuccess, HIE_EPERMANENT for Failure or a refusal,
 * the transport's error (retry) otherwise; f->reason says why. */
static hie_err_t xdr_result(struct fwd *f, hie_err_t err, const struct hisp_xdr_result *res)
{
	char e[100];
	hisp_printable(res->first_error, e, sizeof e, '?');
	if (err == HIE_OK) {
		if (strcmp(res->status, "Success") == 0 || strcmp(res->status, "PartialSuccess") == 0)
			return HIE_OK;
		char st[32];
		hisp_printable(res->status, st, sizeof st, '?');
		hisp_reason(f->reason, sizeof f->reason, "xdr %s%s%s", st[0] ? st : "no status", e[0] ? " " : "", e);
		return HIE_EPERMANENT;
	}
	if (err == HIE_EDENIED) {
		if (e[0])
			hisp_reason(f->reason, sizeof f->reason, "xdr refused: %s", e);
		else
			hisp_reason(f->reason, sizeof f->reason, "xdr refused: http %d", res->http_status);
		return HIE_EPERMANENT;
	}
	if (err == HIE_EIO || err == HIE_ETIMEOUT || err == HIE_ENOMEM || err == HIE_EBUSY) {
		if (err == HIE_ETIMEOUT)
			hisp_reason(f->reason, sizeof f->reason, "xdr: timeout");
		else
			hisp_reason(f->reason, sizeof f->reason, "xdr: %s", e[0] ? e : hie_errname(err));
		return err == HIE_ETIMEOUT ? HIE_EIO : err;
	}
	hisp_reason(f->reason, sizeof f->reason, "xdr: request not built (%s)", hie_errname(err));
	return HIE_EPERMANENT;
}

static hie_err_t xdr_send(struct fwd *f, const xmlNode *sor, const struct hisp_xdm_doc *docs, size_t n,
			  const char *level)
{
	const char *to[] = {f->address};
	struct hisp_xdr_request req = {.sor = sor,
				       .docs = docs,
				       .ndocs = n,
				       .direct_from = f->from[0] ? f->from : NULL,
				       .direct_to = to,
				       .ndirect_to = 1,
				       .metadata_level = level};
	struct hisp_xdr_result res = {.status = ""};
	int timeout = f->h->xdr_timeout_ms > 0 ? f->h->xdr_timeout_ms : 30000;
	hie_err_t err = hisp_xdr_send(f->target, &req, f->h->xdr_ca[0] ? f->h->xdr_ca : NULL, timeout, &res);
	return xdr_result(f, err, &res);
}

/* The ids of the ExtrinsicObjects of sor in document order (minimal metadata: one per document given). */
static size_t entry_ids(const xmlNode *n, struct docs *d, size_t k)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrcmp(n->name, BAD_CAST "ExtrinsicObject") == 0) {
			xmlChar *id = xmlGetProp(n, BAD_CAST "id");
			if (k < d->n && id && xmlStrlen(id) < 32)
				snprintf(d->ids[k], sizeof d->ids[k], "%s", (const char *)id);
			xmlFree(id);
			k++;
			continue;
		}
		k = entry_ids(n->children, d, k);
	}
	return k;
}

/* Minimal metadata (Direct XDR and XDM spec) for the documents gathered in d, then one ITI-41. */
static hie_err_t xdr_minimal(struct fwd *f, struct docs *d)
{
	xmlDoc *md = NULL;
	const char *to[] = {f->address};
	if (d->n == 0) {
		hisp_reason(f->reason, sizeof f->reason, "xdr: message has no content to send");
		return HIE_EPERMANENT;
	}
	d->ids = calloc(d->n, sizeof *d->ids);
	if (!d->ids)
		return HIE_ENOMEM;
	hie_err_t err = hisp_xdm_minimal_metadata(f->from[0] ? f->from : f->address, to, 1, d->v, d->n, &md);
	if (err == HIE_ENOMEM)
		return err;
	if (err) {
		hisp_reason(f->reason, sizeof f->reason, "xdr: minimal metadata not built (%s)", hie_errname(err));
		return HIE_EPERMANENT;
	}
	xmlNode *root = xmlDocGetRootElement(md);
	if (entry_ids(root, d, 0) != d->n) {
		xmlFreeDoc(md);
		hisp_reason(f->reason, sizeof f->reason, "xdr: minimal metadata does not match the documents");
		return HIE_EPERMANENT;
	}
	for (size_t i = 0; i < d->n; i++)
		d->v[i].entry_id = d->ids[i];
	err = xdr_send(f, root, d->v, d->n, "minimal");
	xmlFreeDoc(md);
	return err;
}

static bool is_ebrs21(const struct hisp_xdm *x)
{
	const xmlNode *root = xmlDocGetRootElement(x->metadata_doc);
	return root && root->ns && root->ns->href && xmlStrcmp(root->ns->href, BAD_CAST EBRS21_NS) == 0;
}

/*
 * metadata "full": every valid XDM attachment goes as its own ITI-41 with its METADATA.xml as it is
 * (metadata-level XDS). An ebRS 2.1 package cannot be an ITI-41's metadata (ebRS 3.0): its documents are sent
 * with minimal metadata instead. Without a usable package (or with metadata "minimal"), the attachments (the
 * non-text parts, or every part when there is none) go with minimal metadata.
 */
static hie_err_t xdr_forward(struct fwd *f)
{
	struct hisp_parts parts = {0};
	struct hisp_xdm **xs = NULL;
	struct docs d = {0};
	size_t nsent = 0, nattach = 0;
	bool full = strcmp(f->metadata, "minimal") != 0;
	size_t cap = f->h->max_message ? f->h->max_message : DEFAULT_MSG_MAX;
	hie_err_t err = hisp_parts_split(f->msg.data, f->msg.len, cap, &parts);
	if (err == HIE_EPARSE || err == HIE_ETOOBIG) {
		hisp_reason(f->reason, sizeof f->reason, "xdr: message %s", err == HIE_EPARSE ? "malformed" : "too large");
		return HIE_EPERMANENT;
	}
	if (err)
		return err;
	xs = calloc(parts.n ? parts.n : 1, sizeof *xs);
	if (!xs) {
		err = HIE_ENOMEM;
		goto out;
	}
	for (size_t i = 0; full && i < parts.n; i++) {
		struct hisp_part *p = &parts.v[i];
		char why[160] = "";
		if (!p->is_xdm)
			continue;
		err = hisp_xdm_read(p->data, p->len, &xs[i], why, sizeof why);
		if (err == HIE_ENOMEM)
			goto out;
		if (err) {
			char w[160];
			hisp_printable(why, w, sizeof w, '?');
			hie_log(HIE_LOG_NOTICE, "event=hisp.forward mailbox=%lld part=%u xdm=invalid why=\"%s\"", f->mid,
				p->index, w);
			xs[i] = NULL;
			err = HIE_OK;
			continue;
		}
		if (is_ebrs21(xs[i])) {
			hie_log(HIE_LOG_NOTICE, "event=hisp.forward mailbox=%lld part=%u xdm=ebrs21 metadata=minimal", f->mid,
				p->index);
			continue;
		}
		err = xdr_send(f, xmlDocGetRootElement(xs[i]->metadata_doc), xs[i]->docs, xs[i]->ndocs, "XDS");
		if (err)
			goto out;
		nsent++;
	}
	if (nsent)
		goto out;
	for (size_t i = 0; i < parts.n; i++)
		nattach += parts.v[i].attachment;
	for (size_t i = 0; i < parts.n; i++) {
		struct hisp_part *p = &parts.v[i];
		if (xs[i]) { /* an ebRS 2.1 package: its documents rather than the zip */
			for (size_t k = 0; k < xs[i]->ndocs && !err; k++)
				err = docs_add(&d, &xs[i]->docs[k]);
			continue;
		}
		if (nattach && !p->attachment)
			continue;
		struct hisp_xdm_doc doc = {.entry_id = "", .unique_id = "", .mime_type = p->content_type,
					   .path = p->filename, .data = p->data, .len = p->len};
		err = docs_add(&d, &doc);
		if (err)
			goto out;
	}
	if (!err)
		err = xdr_minimal(f, &d);
out:
	for (size_t i = 0; xs && i < parts.n; i++)
		hisp_xdm_free(xs[i]);
	free(xs);
	free(d.v);
	free(d.ids);
	hisp_parts_free(&parts);
	return err;
}

/* --- outcomes ------------------------------------------------------------------------------------------- */

/* UPDATE of the pending row; *done = whether it still was pending (another run may have finished it). */
static hie_err_t set_state(PGconn *tx, const struct fwd *f, const char *state, const char *reason, bool *done)
{
	char att[16];
	PGresult *r = NULL;
	snprintf(att, sizeof att, "%d", f->attempts);
	const char *p[] = {f->ids, state, reason, att};
	hie_err_t err = hie_db_exec(tx,
				    "UPDATE hisp_forward_state SET state = $2, reason = $3, attempts = $4::int,"
				    " updated_at = now() WHERE mailbox_id = $1::bigint AND state = 'pending'",
				    4, p, &r);
	if (!err && done)
		*done = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	return err;
}

static hie_err_t delivered_fn(PGconn *tx, void *arg)
{
	struct fwd *f = arg;
	bool done = false;
	hie_err_t err = set_state(tx, f, "delivered", NULL, &done);
	if (!err && done)
		err = hisp_edge_ack(f->h, tx, f->address, f->mid, NULL);
	return err;
}

/* The DSN to the sender (who did not ask for final-destination delivery), from the local address so that its
 * signature binds. */
static hie_err_t queue_dsn(PGconn *tx, struct fwd *f)
{
	char dsnid[320];
	struct hie_buf b;
	snprintf(dsnid, sizeof dsnid, "dsn-forward-%lld@%s", f->mid, f->h->hostname);
	const struct hisp_dsn_rcpt rc = {.address = f->address, .status = "5.0.0", .diagnostic = f->reason};
	const struct hisp_dsn_req req = {.reporting_mta = f->h->hostname,
					 .to = f->from,
					 .from = f->address,
					 .original_message_id = f->msgid,
					 .rcpts = &rc,
					 .nrcpts = 1,
					 .message_id = dsnid};
	hie_buf_init(&b, NOTICE_MAX);
	hie_err_t err = hisp_dsn_build(&req, &b);
	if (!err) {
		const char *to[] = {f->from};
		long long oid = 0;
		err = hisp_outbound_submit(tx, "dsn", f->address, to, 1, b.data, b.len, dsnid, false, 0, &oid);
	}
	hie_buf_free(&b);
	return err;
}

static hie_err_t failed_fn(PGconn *tx, void *arg)
{
	struct fwd *f = arg;
	bool done = false;
	hie_err_t err = set_state(tx, f, "failed", f->reason, &done);
	if (err || !done || strcmp(f->mkind, "message") != 0 || !f->from[0] || !f->msgid[0])
		return err; /* never a notice about a notice */
	if (f->wants_final)
		return hisp_mdn_failed(f->h, tx, f->mid);
	err = queue_dsn(tx, f);
	if (err == HIE_EINVAL) { /* a sender or id the builder refuses: the failure stays recorded */
		hie_log(HIE_LOG_WARN, "event=hisp.forward mailbox=%lld dsn=not_built", f->mid);
		err = HIE_OK;
	}
	return err;
}

/* Keeps the attempt count and the last reason on the pending row (best effort: only for the operator). */
static void note_deferral(struct fwd *f)
{
	PGconn *conn = NULL;
	char att[16];
	if (hie_db_acquire(f->h->pool, -1, &conn) != HIE_OK)
		return;
	snprintf(att, sizeof att, "%d", f->attempts);
	const char *p[] = {f->ids, f->reason, att};
	hie_err_t err = hie_db_exec(conn,
				    "UPDATE hisp_forward_state SET reason = $2, attempts = $3::int, updated_at = now()"
				    " WHERE mailbox_id = $1::bigint AND state = 'pending'",
				    3, p, NULL);
	hie_db_release(f->h->pool, conn, err == HIE_EDB);
}

hie_err_t hisp_forward_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct hisp *h = arg;
	struct fwd f = {.h = h, .attempts = job->attempts};
	char *end = NULL;
	hie_err_t err;

	errno = 0;
	f.mid = strtoll(job->payload, &end, 10);
	if (errno || end == job->payload || *end || f.mid <= 0) {
		snprintf(errbuf, errlen, "bad payload");
		return HIE_EPERMANENT;
	}
	snprintf(f.ids, sizeof f.ids, "%lld", f.mid);
	hie_buf_init(&f.msg, (h->max_message ? h->max_message : DEFAULT_MSG_MAX) + HDR_MAX);
	err = load(&f);
	if (err == HIE_ENOTFOUND) {
		hie_log(HIE_LOG_NOTICE, "event=hisp.forward mailbox=%lld result=gone", f.mid);
		err = HIE_OK;
		goto out;
	}
	if (err || strcmp(f.state, "pending") != 0)
		goto out; /* delivered or failed by an earlier run */
	read_headers(&f);

	hie_err_t sent;
	if (strcmp(f.kind, "smtp") == 0) {
		sent = smtp_forward(&f);
	} else if (strcmp(f.kind, "xdr") == 0) {
		sent = xdr_forward(&f);
	} else {
		hisp_reason(f.reason, sizeof f.reason, "unknown forward kind");
		sent = HIE_EPERMANENT;
	}
	if (sent == HIE_OK) {
		err = hie_db_tx(h->pool, delivered_fn, &f);
		if (!err)
			hisp_wake(h);
		hie_log(err ? HIE_LOG_WARN : HIE_LOG_INFO, "event=hisp.forward mailbox=%lld kind=%s result=delivered%s%s",
			f.mid, f.kind, err ? " error=" : "", err ? hie_errname(err) : "");
		goto out;
	}
	if (!f.reason[0])
		hisp_reason(f.reason, sizeof f.reason, "%s: %s", f.kind, hie_errname(sent));
	if (sent == HIE_EPERMANENT || job->attempts >= job->max_attempts) {
		if (sent != HIE_EPERMANENT) {
			char r[sizeof f.reason];
			snprintf(r, sizeof r, "%s", f.reason);
			hisp_reason(f.reason, sizeof f.reason, "gave up after %d attempts: %s", job->attempts, r);
		}
		err = hie_db_tx(h->pool, failed_fn, &f);
		if (!err)
			hisp_wake(h);
		hie_log(HIE_LOG_WARN, "event=hisp.forward mailbox=%lld kind=%s result=failed reason=\"%s\"", f.mid,
			f.kind, f.reason);
		goto out;
	}
	note_deferral(&f);
	hie_log(HIE_LOG_NOTICE, "event=hisp.forward mailbox=%lld kind=%s result=deferred attempt=%d reason=\"%s\"",
		f.mid, f.kind, job->attempts, f.reason);
	snprintf(errbuf, errlen, "deferred: %s", f.reason);
	err = HIE_EIO;
out:
	if (err && err != HIE_EIO && errbuf && errlen && !errbuf[0])
		snprintf(errbuf, errlen, "%s", hie_errname(err));
	hie_buf_free(&f.msg);
	return err;
}
