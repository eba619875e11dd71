/*
 * hisp_outbound.h — what we send: submission (hienode send, MDNs, later the edge), and the hisp.send job
 * that discovers each recipient's certificate, signs and encrypts per recipient domain, and hands the
 * message to the next hop over SMTP (hisp_smtp_out.c, libesmtp).
 *
 * Next hop for a recipient domain: a hisp_routes row, else [direct] smarthost, else the domain's MX hosts
 * (hisp_dns_mx). STARTTLS when offered ([direct] smtp_tls). Per recipient: 2xx → sent (tracked, MDN
 * deadline), 5xx → failed with a DSN to our sender, 4xx or no connection → retried by the job queue with
 * backoff until the last attempt, then failed with a DSN. Recipients without a usable certificate fail at
 * once with a DSN (never for MDNs/DSNs we send: no notice about a notice).
 */
#ifndef HIENODE_HISP_OUTBOUND_H
#define HIENODE_HISP_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_jobs.h"

/*
 * Inserts a message into hisp_outbound with one hisp_outbound_rcpt row per (distinct, lower-cased) recipient
 * and enqueues hisp.send, all in tx. kind "message", "mdn" or "dsn". raw is the plain RFC 5322 message
 * (CRLF). message_id without <>; a second submit with the same id is a no-op (HIE_OK, *id = the first).
 * want_final: the message asked for X-DIRECT-FINAL-DESTINATION-DELIVERY. A message (not a notice) gets its
 * MDN deadline now + mdn_timeout_ms and a hisp.timeout job at that time.
 */
hie_err_t hisp_outbound_submit(PGconn *tx, const char *kind, const char *sender, const char *const *rcpts,
			       size_t nrcpts, const char *raw, size_t len, const char *message_id, bool want_final,
			       long long mdn_timeout_ms, long long *id);

struct hisp_attachment {
	const char *name;            /* file name shown to the recipient */
	const char *content_type;    /* "application/xml", …; NULL = guessed from the name */
	const void *data;
	size_t len;
};
struct hisp_compose_req {
	const char *from;
	const char *const *to; size_t nto;
	const char *const *cc; size_t ncc;
	const char *subject;
	const char *body;            /* text/plain, may be NULL */
	size_t body_len;
	const struct hisp_attachment *att; size_t natt;
	const char *host;            /* for the Message-ID right-hand side */
};
/* Builds the plain message (Date, Message-ID, MIME-Version, Disposition-Notification-Options asking for
 * final destination delivery; multipart/mixed when there are attachments, base64). message_id receives the
 * new id without <>. */
hie_err_t hisp_compose(const struct hisp_compose_req *r, struct hie_buf *out, char *message_id, size_t idlen);

/* The hisp.send job (payload: outbound id; arg: struct hisp *). Outer headers: From, To, Cc, Date,
 * Message-ID as in the inner message, MIME-Version, Disposition-Notification-Options for messages only;
 * never the Subject (PHI stays inside the envelope). HIE_EIO "deferred: N recipients" while some wait;
 * the last attempt fails them with 4.4.1 and returns HIE_OK. */
hie_err_t hisp_send_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);

/* One SMTP transaction to host:port (hisp_smtp_out.c). rcpt_status[i] receives each recipient's reply code
 * (250, 550, … ; 0 when the transaction failed before RCPT). HIE_OK when the message was accepted for at
 * least one recipient; HIE_EIO / HIE_ETIMEOUT when the host could not be reached (retry later). */
struct hisp_smtp_out_opts {
	const char *helo;
	int timeout_ms;
	int tls;                     /* 0 none, 1 opportunistic (STARTTLS when offered), 2 required */
};
hie_err_t hisp_smtp_out_send(const char *host, int port, const struct hisp_smtp_out_opts *o, const char *mail_from,
			     const char *const *rcpts, size_t nrcpts, const char *data, size_t len, int *rcpt_status,
			     char *reply, size_t replylen);
/*
 * Additions (helper "outbound"), details in hisp_smtp_out.c:
 * - rcpt_status[i] is the recipient's effective outcome: its RCPT reply when that refused it, else the reply
 *   to the end of DATA; a MAIL FROM refusal is given to every recipient; 0 = undecided (no connection,
 *   timeout, dropped: retry). reply (may be NULL) gets the first refusal "550 5.1.1 text", made printable.
 * - HIE_EDENIED: the peer answered but accepted the message for nobody (the codes say 4xx or 5xx);
 *   HIE_EINVAL: bad host/addresses (CR, LF, blanks, <>), no recipient, or a message libESMTP would alter
 *   (missing Date/From/Message-ID, Return-Path, repeated single fields): what leaves is byte for byte data
 *   (bare LF/CR made CRLF, a final CRLF added).
 * - tls 1 and 2 never authenticate the peer's certificate (S/MIME protects the content); TLS 1.2 only;
 *   tls 1 retries once in clear when the STARTTLS handshake itself fails, tls 2 does not.
 */

#endif
