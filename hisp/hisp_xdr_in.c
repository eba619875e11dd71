/*
 * hisp_xdr_in.c — the XDR Document Recipient on /xdr (XDR and XDM for Direct Messaging; IHE ITI-41 as sent by an
 * EHR): an authenticated edge user's Provide and Register Document Set-b becomes one Direct message from the
 * sender to the intended recipients, whose attachment is an XDM package (xdm.zip) holding the submission's
 * metadata and documents. The response is sent only after that message (and its hisp.send job) committed.
 *
 * Order of checks: TLS ([edge] require_tls; Sender fault, HTTP 403), HTTP Basic authentication
 * (hisp_user_login; Sender fault, HTTP 401, or 429 while the client is locked out), the request
 * (hisp_xdr_read: metadata, Direct headers, documents; RegistryErrors), the sender granted to the user
 * (hisp_user_may_use), the XDM package, the message, the commit. Folders and RPLC / APND / XFRM / XFRM_RPLC
 * associations are carried in the package's metadata but not acted on: PartialSuccess with the matching
 * warnings. The Message-ID comes from the SubmissionSet uniqueId and the sender, so a client's retry after a
 * lost response is the same message (hisp_outbound_submit ignores a known Message-ID) and answers Success.
 *
 * Entry point: hisp_xdr_handle (the SOAP handler; hisp_xdr_routes mounts it). Every answer is a SOAP reply:
 * an rs:RegistryResponse (Success, PartialSuccess, Failure with the IHE error codes; database trouble is
 * XDSRepositoryBusy / XDSRepositoryError and nothing is queued) or a fault. Logs carry counts, ids and
 * codes, never addresses, titles, patient data or document bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_db.h"
#include "core/core_http.h"
#include "core/core_log.h"
#include "core/core_text.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_xdr_int.h"

#define XDR_SUBJECT_DEFAULT "XDR submission"

static hie_err_t fault(struct hie_soap_response *resp, int status, const char *reason)
{
	resp->is_fault = true;
	hie_soap_fault_set(&resp->fault, HIE_SOAP_FAULT_SENDER, NULL, "%s", reason);
	resp->fault.http_status = status;
	return HIE_OK;
}

/* A database failure as the RegistryError the client can act on: busy (retry) or internal. */
static void db_error(struct hisp_xdr_errors *e, hie_err_t err)
{
	if (err == HIE_EBUSY || err == HIE_ETIMEOUT)
		hisp_xdr_error_add(e, XDR_ERR_BUSY, false, "", "the node is busy; nothing was sent, try again later");
	else
		hisp_xdr_error_add(e, XDR_ERR_INTERNAL, false, "", "internal error; nothing was sent");
}

/*
 * HTTP Basic against the edge users. HIE_OK with user set, or HIE_EDENIED after filling the fault, or a
 * database error (no fault: answered as a RegistryResponse).
 */
static hie_err_t authenticate(struct hisp *h, const struct hie_soap_msg *req, const struct hie_http_req *hr,
			      char *user, size_t userlen, struct hie_soap_response *resp)
{
	const char *hdr = hr ? hie_http_req_header(hr, "Authorization") : hie_soap_http_header(req->call, "Authorization");
	const char *peer = hr && hr->remote_addr ? hr->remote_addr : req->call && req->call->peer ? req->call->peer : "-";
	char name[HISP_USER_MAX + 1], pass[HISP_PASSWORD_MAX + 1];
	if (!hdr || hisp_basic_auth_parse(hdr, name, sizeof name, pass, sizeof pass) != HIE_OK) {
		fault(resp, 401, "authentication required");
		return HIE_EDENIED;
	}
	hie_err_t err = hisp_user_login(h, peer, name, pass, user, userlen);
	explicit_bzero(pass, sizeof pass);
	if (err == HIE_EDENIED || err == HIE_EINVAL) {
		fault(resp, 401, "authentication required");
		return HIE_EDENIED;
	}
	if (err == HIE_EBUSY) {
		fault(resp, 429, "too many failed logins; try again later");
		return HIE_EDENIED;
	}
	return err;
}

static hie_err_t sender_granted(struct hisp *h, const char *user, const char *from, bool *ok)
{
	PGconn *c;
	*ok = false;
	hie_err_t err = hie_db_acquire(h->pool, -1, &c);
	if (err)
		return err;
	err = hisp_user_may_use(c, user, from, ok);
	hie_db_release(h->pool, c, false);
	return err;
}

/* The title as the subject when it is one line of valid UTF-8 text, else the default. */
static const char *subject_of(const char *title)
{
	size_t n = strlen(title);
	if (!n || !hie_text_utf8_valid(title, n))
		return XDR_SUBJECT_DEFAULT;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)title[i] < 0x20 || title[i] == 0x7f)
			return XDR_SUBJECT_DEFAULT;
	return title;
}

/* Replaces the Message-ID that hisp_compose chose (composed, in the header block of msg) by want. */
static hie_err_t set_message_id(struct hie_buf *msg, const char *composed, const char *want)
{
	char old[512];
	if ((size_t)snprintf(old, sizeof old, "\r\nMessage-ID: <%s>\r\n", composed) >= sizeof old)
		return HIE_EINVAL;
	const char *hend = strstr(msg->data, "\r\n\r\n");
	const char *at = strstr(msg->data, old); /* never the first line: From comes first */
	if (!at || !hend || at > hend)
		return HIE_EINVAL;
	struct hie_buf n;
	hie_buf_init(&n, msg->max);
	size_t pre = (size_t)(at - msg->data) + 2, olen = strlen(old) - 2;
	hie_err_t err = hie_buf_add(&n, msg->data, pre);
	if (!err)
		err = hie_buf_addf(&n, "Message-ID: <%s>\r\n", want);
	if (!err)
		err = hie_buf_add(&n, msg->data + pre + olen, msg->len - pre - olen);
	if (err) {
		hie_buf_free(&n);
		return err;
	}
	hie_buf_free(msg);
	*msg = n;
	return HIE_OK;
}

struct submit {
	const struct hisp_xdr_sub *s;
	const char *const *rcpts;
	const struct hie_buf *msg;
	const char *msgid;
	long long mdn_ms;
	long long id;
};

static hie_err_t submit_fn(PGconn *tx, void *arg)
{
	struct submit *u = arg;
	return hisp_outbound_submit(tx, "message", u->s->from, u->rcpts, u->s->nto, u->msg->data, u->msg->len,
				    u->msgid, true, u->mdn_ms, &u->id);
}

/* Package, message, commit. Errors a client can act on go into e; HIE_OK then. */
static hie_err_t send_message(struct hisp *h, const struct hisp_xdr_sub *s, struct hisp_xdr_errors *e,
			      long long *outbound_id)
{
	struct hie_buf zip, msg;
	char composed[400], msgid[400], body[200];
	const char **rcpts = calloc(s->nto ? s->nto : 1, sizeof *rcpts);
	size_t cap = h->max_message ? h->max_message : (size_t)64 << 20;
	hie_buf_init(&zip, cap);
	hie_buf_init(&msg, cap);
	hie_err_t err = rcpts ? HIE_OK : HIE_ENOMEM;
	if (!err)
		err = hisp_xdm_build(s->sor, s->docs, s->ndocs, s->from, &zip);
	if (err == HIE_ETOOBIG || err == HIE_EINVAL) {
		hisp_xdr_error_add(e, err == HIE_ETOOBIG ? XDR_ERR_RESOURCES : XDR_ERR_METADATA, false, "",
				   err == HIE_ETOOBIG ? "the documents are too large for one Direct message"
						      : "the XDM package could not be made from this metadata");
		err = HIE_OK;
		goto out;
	}
	if (err)
		goto out;
	for (size_t i = 0; i < s->nto; i++)
		rcpts[i] = s->to[i];
	snprintf(body, sizeof body,
		 "This Direct message carries %zu document%s sent by XDR: see the XDM attachment (xdm.zip).\r\n",
		 s->ndocs, s->ndocs == 1 ? "" : "s");
	const struct hisp_attachment att = {
		.name = "xdm.zip", .content_type = "application/zip", .data = zip.data, .len = zip.len};
	const struct hisp_compose_req cr = {.from = s->from, .to = rcpts, .nto = s->nto, .subject = subject_of(s->title),
					    .body = body, .body_len = strlen(body), .att = &att, .natt = 1,
					    .host = h->hostname};
	err = hisp_compose(&cr, &msg, composed, sizeof composed);
	if (!err)
		err = hisp_xdr_message_id(s->ss_unique_id, s->from, h->hostname, msgid, sizeof msgid);
	if (!err)
		err = set_message_id(&msg, composed, msgid);
	if (err == HIE_ETOOBIG) {
		hisp_xdr_error_add(e, XDR_ERR_RESOURCES, false, "", "the documents are too large for one Direct message");
		err = HIE_OK;
		goto out;
	}
	if (err == HIE_EINVAL) { /* an address hisp_compose refuses (normalized, so unexpected) */
		hisp_xdr_error_add(e, XDR_ERR_METADATA, false, "", "the message could not be composed");
		err = HIE_OK;
		goto out;
	}
	if (err)
		goto out;
	struct submit u = {.s = s, .rcpts = rcpts, .msg = &msg, .msgid = msgid, .mdn_ms = h->mdn_timeout_ms};
	err = hie_db_tx(h->pool, submit_fn, &u);
	if (err) {
		hie_log(HIE_LOG_WARN, "event=hisp.xdr.commit error=%s", hie_errname(err));
		db_error(e, err);
		err = HIE_OK;
		goto out;
	}
	*outbound_id = u.id;
	hisp_wake(h);
out:
	free(rcpts);
	hie_buf_free(&zip);
	hie_buf_free(&msg);
	return err;
}

hie_err_t hisp_xdr_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	struct hisp *h = arg;
	const struct hie_http_req *hr = req->call ? req->call->user : NULL;
	struct hisp_xdr_errors e;
	struct hisp_xdr_sub s;
	char user[HISP_USER_MAX + 1] = "", why[200] = "", rid[80];
	long long outbound_id = 0;
	memset(&e, 0, sizeof e);
	memset(&s, 0, sizeof s);
	resp->mtom = req->mtom != NULL; /* answer in kind (ITI TF-2b 3.41.4.1.3: MTOM in, MTOM out) */
	hie_log_printable(rid, sizeof rid, req->wsa.message_id ? req->wsa.message_id : "-",
			  strlen(req->wsa.message_id ? req->wsa.message_id : "-"));

	if (h->edge_require_tls && (!hr || !hr->tls)) {
		hie_log(HIE_LOG_NOTICE, "event=hisp.xdr id=%s refused=plain-http", rid);
		return fault(resp, 403, "HTTPS required");
	}
	hie_err_t err = authenticate(h, req, hr, user, sizeof user, resp);
	if (err == HIE_EDENIED) {
		hie_log(HIE_LOG_NOTICE, "event=hisp.xdr id=%s refused=authentication status=%d", rid,
			resp->fault.http_status);
		return HIE_OK;
	}
	if (err) {
		db_error(&e, err);
		goto reply;
	}
	err = hisp_xdr_read(req, h->max_message ? h->max_message : (size_t)64 << 20, &s, &e, why, sizeof why);
	if (err == HIE_EPARSE) {
		hisp_xdr_sub_free(&s);
		hie_log(HIE_LOG_NOTICE, "event=hisp.xdr id=%s refused=not-iti41", rid);
		return fault(resp, 0, why);
	}
	if (err)
		goto out;
	if (!e.nerrors) {
		bool ok = false;
		err = sender_granted(h, user, s.from, &ok);
		if (err)
			db_error(&e, err);
		else if (!ok)
			hisp_xdr_error_add(&e, XDR_ERR_METADATA, false, s.from_header ? "direct:from" : "authorTelecommunication",
					   "the sender is not permitted: the authenticated user may not send as the %s"
					   " address",
					   s.from_header ? "direct:from" : "SubmissionSet author's");
		err = HIE_OK;
	}
	if (!e.nerrors)
		err = send_message(h, &s, &e, &outbound_id);
	if (err)
		goto out;
reply:
	err = hisp_xdr_response_xml(&e, &resp->body_xml);
	size_t nwarn = 0;
	for (size_t i = 0; i < e.n; i++)
		nwarn += e.v[i].warning;
	hie_log(HIE_LOG_INFO,
		"event=hisp.xdr id=%s status=%s documents=%zu recipients=%zu outbound=%lld errors=%zu warnings=%zu"
		" first=%s mtom=%s",
		rid, hisp_xdr_status(&e), s.ndocs, s.nto, outbound_id, e.nerrors, nwarn, e.n ? e.v[0].code : "-",
		req->mtom ? "yes" : "no");
out:
	hisp_xdr_sub_free(&s);
	return err;
}
