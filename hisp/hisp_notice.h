/*
 * hisp_notice.h — MDNs and DSNs (RFC 3798, RFC 3464, Implementation Guide for Delivery Notification in
 * Direct), delivery tracking of what we send, and the local mailboxes.
 *
 * hisp_mdn.c      builds MDNs (processed, dispatched, failed) and DSNs (failed recipients) and recognizes
 *                 incoming ones.
 * hisp_track.c    per-recipient state of hisp_outbound_rcpt: pending → sent (hisp.send) → processed →
 *                 dispatched (MDNs), failed (DSN/failed MDN, no certificate, permanent SMTP refusal) or
 *                 timeout (hisp.timeout job at the deadline). Exactly one final notice per recipient reaches
 *                 our sender's mailbox (notified); notices after that are suppressed.
 * hisp_mailbox.c  hisp_mailbox rows: messages received for local addresses, and notices for our senders.
 * hisp_receive.c  the hisp.receive job (see hisp.h).
 */
#ifndef HIENODE_HISP_NOTICE_H
#define HIENODE_HISP_NOTICE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_jobs.h"

enum hisp_notice_kind { HISP_NOTICE_NONE, HISP_NOTICE_MDN, HISP_NOTICE_DSN };

/* What an incoming notice says (recognized from the decrypted inner message). */
struct hisp_notice_info {
	enum hisp_notice_kind kind;
	char disposition[32];        /* MDN: "processed", "dispatched", "failed", "displayed", "deleted" */
	char original_message_id[256]; /* without <> */
	char final_recipient[256];   /* lower-cased address (MDN Final-Recipient, or the DSN's per recipient) */
	bool final_delivery;         /* the MDN carries X-DIRECT-FINAL-DESTINATION-DELIVERY */
	bool dsn_failed;             /* DSN: Action failed for final_recipient */
};
/* HIE_OK with kind NONE for an ordinary message; HIE_EPARSE for a malformed report. */
hie_err_t hisp_notice_parse(const char *msg, size_t len, struct hisp_notice_info *out);

struct hisp_mdn_req {
	const char *from;            /* our recipient who reports (becomes From) */
	const char *to;              /* the original sender */
	const char *original_message_id; /* without <> */
	const char *original_subject;    /* may be NULL; used in "Processed: …" only if printable */
	const char *disposition;     /* "processed", "dispatched", "failed" */
	bool final_delivery;         /* add X-DIRECT-FINAL-DESTINATION-DELIVERY */
	const char *reporting_ua;    /* "host; hienode" */
	const char *message_id;      /* for the MDN itself, without <> */
};
/* A whole RFC 5322 message (multipart/report; report-type=disposition-notification), CRLF, appended to out. */
hie_err_t hisp_mdn_build(const struct hisp_mdn_req *r, struct hie_buf *out);

struct hisp_dsn_rcpt {
	const char *address;
	const char *status;          /* "5.1.1", "4.4.7" */
	const char *diagnostic;      /* short text: "no certificate found", "MDN timeout" */
};
struct hisp_dsn_req {
	const char *reporting_mta;   /* our host name */
	const char *to;              /* our sender */
	const char *original_message_id;
	const struct hisp_dsn_rcpt *rcpts;
	size_t nrcpts;
	const char *message_id;      /* for the DSN itself */
	const char *from;            /* NULL: MAILER-DAEMON@<domain of to>; else this address (a local one that
					signs it, e.g. the edge reporting a failed forwarding) */
};
/* A whole message (multipart/report; report-type=delivery-status) from `from` or MAILER-DAEMON@<domain of to>. */
hie_err_t hisp_dsn_build(const struct hisp_dsn_req *r, struct hie_buf *out);

/* --- tracking (hisp_track.c); every call runs in the caller's transaction tx ---------------------------- */

struct hisp;
/* A recipient's message was accepted by the next hop: state sent (from pending). */
hie_err_t hisp_track_sent(PGconn *tx, long long outbound_id, const char *address);
/* A recipient failed for good (no certificate, untrusted, 5xx, failed MDN, DSN): state failed and, for
 * messages (not notices) whose recipient was not notified yet, one DSN into the sender's mailbox. */
hie_err_t hisp_track_fail(struct hisp *h, PGconn *tx, long long outbound_id, const char *address, const char *status,
			  const char *reason);
/* An incoming MDN/DSN from `from` (the reporting address): updates the recipient's state and says whether
 * the notice should be put in our sender's mailbox (*sender, empty when it should be suppressed: late,
 * duplicate, unknown message). */
hie_err_t hisp_track_notice(struct hisp *h, PGconn *tx, const struct hisp_notice_info *n, const char *from,
			    char *sender, size_t senderlen);
/* The hisp.timeout job (payload: outbound id). */
hie_err_t hisp_timeout_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);

/* --- mailboxes (hisp_mailbox.c) -------------------------------------------------------------------------- */

/* Puts content into address's mailbox; idempotent on (address, inbound_id) when inbound_id > 0. */
hie_err_t hisp_mailbox_put(PGconn *tx, const char *address, const char *kind, long long inbound_id,
			   const char *message_id, const void *content, size_t len);

/* Mailbox items for the CLI and the edge's pull API. */
struct hisp_mailbox_item {
	long long id;
	char kind[8];                /* "message", "mdn", "dsn" */
	char received_at[40];        /* "2026-01-02 03:04:05+00" (UTC) */
	long long size;              /* bytes of content */
	char message_id[256];        /* "" when unknown; made printable */
	bool acked;
};
/* Items of address with id > after_id, oldest first, at most max; fn is called once per item. */
hie_err_t hisp_mailbox_list(PGconn *conn, const char *address, long long after_id, size_t max,
			    void (*fn)(const struct hisp_mailbox_item *it, void *arg), void *arg);
/* Appends item id of address to out (and fills *meta when not NULL). HIE_ENOTFOUND when address has no such item;
 * HIE_ETOOBIG past out's cap. */
hie_err_t hisp_mailbox_get(PGconn *conn, const char *address, long long id, struct hie_buf *out,
			   struct hisp_mailbox_item *meta);
/* Marks an item acknowledged (idempotent). HIE_ENOTFOUND when address has no such item. */
hie_err_t hisp_mailbox_ack(PGconn *conn, const char *address, long long id);

/* --- receiving (hisp_receive.c) --------------------------------------------------------------------------- */

/* The hisp.receive job (payload: hisp_inbound id; arg: struct hisp *). */
hie_err_t hisp_receive_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);
/*
 * The edge delivered mailbox item mailbox_id to its final destination: when that message asked for
 * X-DIRECT-FINAL-DESTINATION-DELIVERY, queues the `dispatched` MDN (with the extension field) to its sender, in tx.
 * Idempotent (the MDN's Message-ID is derived from mailbox_id). HIE_OK without doing anything for notices and
 * for messages that did not ask; HIE_ENOTFOUND for an unknown item.
 */
hie_err_t hisp_mdn_dispatched(struct hisp *h, PGconn *tx, long long mailbox_id);
/* The same with disposition `failed` (the edge could not deliver the item to its final destination: forwarding
 * refused for good); Message-ID derived from mailbox_id ("mdn-failed-<id>@host"). HIE_OK without doing anything
 * for notices and messages that did not ask; HIE_ENOTFOUND for an unknown item. */
hie_err_t hisp_mdn_failed(struct hisp *h, PGconn *tx, long long mailbox_id);
/* The Message-ID (without <>) the final MDN of mailbox item mailbox_id gets: disposition "dispatched" or
 * "failed"; the same for every call, which is what makes queueing it idempotent. */
void hisp_mdn_final_id(const struct hisp *h, const char *disposition, long long mailbox_id, char *out, size_t outlen);

/* --- message helpers (hisp_mdn.c; pure) --------------------------------------------------------------------- */

/* Which per-recipient group of a DSN to report: hisp_notice_parse() is hisp_notice_parse_nth(…, 0, …).
 * HIE_ENOTFOUND when nth is past the last recipient group (an MDN has one). */
hie_err_t hisp_notice_parse_nth(const char *msg, size_t len, unsigned nth, struct hisp_notice_info *out);
/* True when a Disposition-Notification-Options value asks for X-DIRECT-FINAL-DESTINATION-DELIVERY
 * ("X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true" or "=required,true"; case-insensitive). */
bool hisp_notice_wants_final(const char *value, size_t len);
/* The nth (0-based) occurrence of header `name` (case-insensitive) in msg's top header block, unfolded and
 * trimmed, into out (reset first). HIE_ENOTFOUND when absent, HIE_ETOOBIG past out's cap. */
hie_err_t hisp_msg_header(const char *msg, size_t len, const char *name, unsigned nth, struct hie_buf *out);
/* Calls fn with each address of an RFC 5322 address list (To, Cc, From: display names, quoted strings,
 * comments, groups), normalized with hisp_addr_normalize; entries that are not addresses are skipped; fn
 * returns non-zero to stop early. HIE_EPARSE for an unterminated quote, comment or angle bracket. */
hie_err_t hisp_addrlist_each(const char *v, size_t len, int (*fn)(const char *addr, void *arg), void *arg);

#endif
