/*
 * hisp_edge.h — the Direct edge (issue 5): the people at the ends of a Direct exchange, inside the module.
 *
 *   hisp_users.c      edge users: Argon2id hashes (libsodium), address grants, failed-login rate limit
 *   hisp_submit.c     SMTP submission ([submission] listen): STARTTLS, then AUTH, then plain messages that the
 *                     core signs, encrypts and delivers (hisp_outbound_submit)
 *   hisp_edge_api.c   mailbox API: HTTPS JSON under /edge/v1/ (list, fetch with parts and XDM unpacked, ack)
 *   hisp_xdm.c        XDM packages (IHE ITI TF-1 16, Direct XDR and XDM spec): build with libzip, read, check
 *   hisp_xdr_in.c     XDR Document Recipient on /xdr: ITI-41 → a Direct message with an XDM attachment
 *   hisp_xdr_out.c    ITI-41 requests we send (forwarding to an EHR's XDR endpoint), MTOM, libcurl
 *   hisp_forward.c    per-address forwarding (SMTP with libcurl, or XDR) and its hisp.forward job
 *   hisp_bridge.c     push-to-pull: received documents handed to the bridge callback (node/ → registry)
 *
 * Every function here that takes a PGconn *tx runs in the caller's transaction.
 */
#ifndef HIENODE_HISP_EDGE_H
#define HIENODE_HISP_EDGE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <libxml/tree.h>

#include "core/core_buf.h"
#include "core/core_db.h"
#include "core/core_err.h"
#include "core/core_jobs.h"
#include "core/core_soap.h"

struct hisp;

/* --- users (hisp_users.c) --------------------------------------------------------------------------------- */

#define HISP_USER_MAX 254          /* a user name is a Direct address */
#define HISP_PASSWORD_MIN 12
#define HISP_PASSWORD_MAX 1024

/*
 * Creates the user `name` (normalized address) with password (HISP_PASSWORD_MIN..MAX bytes) hashed by
 * crypto_pwhash_str (Argon2id, OPSLIMIT/MEMLIMIT_INTERACTIVE), and grants it its own address. HIE_EEXIST when
 * the user exists (use hisp_user_password), HIE_EINVAL for a bad name or password (too short/long, NUL).
 */
hie_err_t hisp_user_add(PGconn *tx, const char *name, const char *password);
hie_err_t hisp_user_password(PGconn *tx, const char *name, const char *password); /* HIE_ENOTFOUND */
hie_err_t hisp_user_remove(PGconn *tx, const char *name);                        /* HIE_ENOTFOUND */
/* Grants / revokes sending as (and reading the mailbox of) address. Idempotent. HIE_ENOTFOUND: no such user. */
hie_err_t hisp_user_grant(PGconn *tx, const char *name, const char *address);
hie_err_t hisp_user_revoke(PGconn *tx, const char *name, const char *address);
/* True when the user exists, is not disabled and address is granted to it. */
hie_err_t hisp_user_may_use(PGconn *conn, const char *name, const char *address, bool *ok);

/*
 * Checks a login from client address peer. Verifies at most 2 hashes at a time process-wide (Argon2id takes
 * 64 MiB each); an unknown user costs the same as a wrong password (a dummy hash is verified).
 *   HIE_OK        name/password right (the client's failure count is reset)
 *   HIE_EDENIED   wrong name or password (counted against peer)
 *   HIE_EBUSY     peer is locked out: [edge] auth_max_failures failures within [edge] auth_lockout; the
 *                 password is not even checked until the lockout ends
 *   HIE_EDB ...   database trouble (not counted)
 * *user receives the normalized user name on success (HISP_USER_MAX + 1 bytes).
 */
hie_err_t hisp_user_login(struct hisp *h, const char *peer, const char *name, const char *password, char *user,
			  size_t userlen);
/* The rate limiter alone (tests; the mailbox API's Basic auth uses hisp_user_login). */
void hisp_auth_limit_reset(void);

/* HTTP Basic credentials from an Authorization header value ("Basic base64(user:pass)"): HIE_EPARSE when not
 * Basic or malformed. name and pass are NUL-terminated copies. */
hie_err_t hisp_basic_auth_parse(const char *header, char *name, size_t namelen, char *pass, size_t passlen);

/* --- SMTP submission (hisp_submit.c) ---------------------------------------------------------------------- */

/*
 * The store step of the submission server, for one authenticated user's message (also used by tests):
 * checks that mail_from and the From header are one address granted to user (else HIE_EDENIED with a reason),
 * that every RCPT appears in To or Cc (no Bcc in Direct: HIE_EDENIED), adds Date / Message-ID when missing and
 * Disposition-Notification-Options asking for final-destination delivery when absent, removes any Bcc header,
 * and commits it with hisp_outbound_submit (kind message). reason gets a short text for the SMTP reply.
 */
hie_err_t hisp_submit_store(struct hisp *h, const char *user, const char *mail_from, const char *const *rcpts,
			    size_t nrcpts, const char *data, size_t len, char *id, size_t idlen, char *reason,
			    size_t reasonlen);

/* --- the parts of a message (hisp_parts.c) ------------------------------------------------------------------ */

#define HISP_PARTS_MAX 200

/* One leaf entity of a plain (decrypted) RFC 5322 message, body decoded (base64 / quoted-printable). */
struct hisp_part {
	unsigned index;            /* 0-based, document order of the leaves */
	char content_type[128];    /* media type lower-cased, "text/plain" when absent */
	char charset[40];          /* lower-cased, "" when absent */
	char filename[256];        /* Content-Disposition filename, else Content-Type name, printable; "" when none */
	bool attachment;           /* Content-Disposition: attachment, or a filename, or not text/plain|html */
	bool is_xdm;               /* hisp_xdm_is_zip and content type zip / octet-stream / x-zip-compressed */
	bool is_cda;               /* xml content type and the root element is urn:hl7-org:v3 ClinicalDocument */
	unsigned char *data;       /* decoded body, owned */
	size_t len;
};
struct hisp_parts {
	struct hisp_part *v;
	size_t n;
};
/*
 * Splits msg into its leaf parts (multiparts recursed, message/rfc822 kept as one leaf), decoded, at most
 * HISP_PARTS_MAX, total decoded bytes capped by max_bytes. HIE_EPARSE for a malformed message, HIE_ETOOBIG.
 * Free with hisp_parts_free.
 */
hie_err_t hisp_parts_split(const char *msg, size_t len, size_t max_bytes, struct hisp_parts *out);
void hisp_parts_free(struct hisp_parts *p);

/* --- XDM (hisp_xdm.c) --------------------------------------------------------------------------------------- */

#define HISP_XDM_MAX_DOCS 100
#define HISP_XDM_MAX_ENTRY (64u << 20)     /* one uncompressed file of a package */
#define HISP_XDM_MAX_TOTAL (256u << 20)    /* all files of a package, uncompressed (zip bombs) */
#define HISP_XDM_MAX_FILES 1000

struct hisp_xdm_doc {
	const char *entry_id;      /* the ExtrinsicObject's id in the metadata */
	const char *unique_id;     /* XDSDocumentEntry.uniqueId ("" when the metadata has none) */
	const char *mime_type;     /* ExtrinsicObject/@mimeType */
	const char *path;          /* in the zip: "IHE_XDM/SUBSET01/DOC0001.XML" (read), or "" (build: chosen) */
	const unsigned char *data;
	size_t len;
};

/*
 * Builds an XDM zip into out: IHE_XDM/SUBSET01/METADATA.xml (sor with, for each document, the slots URI =
 * its file name, hash = SHA-1 hex and size set or replaced on the ExtrinsicObject whose id is entry_id), the
 * documents as SUBSET01/DOC0001.<ext> (ext from the mime type: XML, PDF, TXT, BIN...), INDEX.HTM (XHTML 1.0,
 * well-formed: lists the submission set and links every document) and README.TXT (who made it: sender and
 * our product name, version). sor is an lcm:SubmitObjectsRequest element (ebRS 3.0); it is copied, not changed.
 * HIE_EINVAL when a document's entry_id names no ExtrinsicObject of sor; HIE_ETOOBIG past the caps.
 */
hie_err_t hisp_xdm_build(const xmlNode *sor, const struct hisp_xdm_doc *docs, size_t ndocs, const char *sender,
			 struct hie_buf *out);

/* A package read back (owned: free with hisp_xdm_free). */
struct hisp_xdm {
	char *metadata;            /* METADATA.xml bytes, NUL-terminated */
	size_t metadata_len;
	xmlDoc *metadata_doc;      /* parsed with core_xml's safe options; root = lcm:SubmitObjectsRequest */
	struct hisp_xdm_doc *docs; /* one per DocumentEntry that has a URI in the package, strings and data owned */
	size_t ndocs;
	char subset[64];           /* "SUBSET01" */
};

/*
 * Reads and checks an XDM zip (zip bytes in memory, libzip): caps above checked on the declared AND actual
 * sizes; paths with "..", absolute paths or backslashes refused; exactly the IHE_XDM/<subset>/ layout;
 * METADATA.xml parsed safely (no DTD) as an ebRS 3.0 or 2.1 SubmitObjectsRequest; every DocumentEntry's
 * URI slot names a file of the subset; hash / size slots, when present, match the file; INDEX.HTM present
 * and well-formed XHTML (html root in the XHTML namespace); README.TXT present.
 * HIE_EPARSE with a short reason in why ("INDEX.HTM is not well-formed XHTML", "METADATA.xml: document
 * DOC0001.XML missing", ...) when the package is invalid; HIE_ETOOBIG past the caps; HIE_ENOMEM.
 */
hie_err_t hisp_xdm_read(const void *zip, size_t len, struct hisp_xdm **out, char *why, size_t whylen);
void hisp_xdm_free(struct hisp_xdm *x);

/* True when bytes look like a zip (local file header signature) — with the content type, how an XDM attachment
 * is recognized: application/zip, application/octet-stream (any name), application/x-zip-compressed. */
bool hisp_xdm_is_zip(const void *data, size_t len);

/*
 * Minimal metadata (Direct XDR and XDM spec, "minimal metadata") for documents that came without any: one
 * SubmissionSet (uniqueId and sourceId from our OID root, submissionTime now, intendedRecipient = to,
 * authorTelecommunication = from) and per document an ExtrinsicObject (id "Document01".., uniqueId, mimeType,
 * hash, size) with HasMember associations. Writes an lcm:SubmitObjectsRequest (ebRS 3.0) document into *out
 * (xmlFreeDoc). docs[i].entry_id / unique_id are ignored on input; ids are generated (2.25.<uuid> OIDs).
 */
hie_err_t hisp_xdm_minimal_metadata(const char *from, const char *const *to, size_t nto,
				    const struct hisp_xdm_doc *docs, size_t ndocs, xmlDoc **out);

/* --- XDR (hisp_xdr_in.c, hisp_xdr_out.c) ------------------------------------------------------------------- */

#define HISP_XDR_PATH "/xdr"
#define HISP_XDR_ACTION "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
#define HISP_DIRECT_NS "urn:direct:addressing"

/* The SOAP handler on /xdr (arg: struct hisp *). req->call->user is the struct hie_http_req * (node_web.c). */
hie_err_t hisp_xdr_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg);

/* An ITI-41 to send: metadata (an lcm:SubmitObjectsRequest element) and the documents (entry_id = the
 * xdsb:Document/@id). direct_from / direct_to go into direct:from / direct:to SOAP headers when set;
 * metadata_level "minimal" or "XDS" into direct:metadata-level. */
struct hisp_xdr_request {
	const xmlNode *sor;
	const struct hisp_xdm_doc *docs;
	size_t ndocs;
	const char *direct_from;
	const char *const *direct_to;
	size_t ndirect_to;
	const char *metadata_level;
};
/* The outcome of a sent ITI-41. status: "Success", "PartialSuccess", "Failure"; first_error: the first
 * RegistryError's errorCode (or "" / an HTTP or SOAP fault description). */
struct hisp_xdr_result {
	char status[32];
	char first_error[160];
	int http_status;
};
/*
 * POSTs the request as MTOM/XOP (SOAP 1.2, WS-Addressing To/Action/MessageID) to url with libcurl: TLS peers
 * verified against ca_file (NULL = system store), timeout_ms for the whole exchange, response body capped.
 * HIE_OK when an rs:RegistryResponse came back (whatever its status); HIE_EIO / HIE_ETIMEOUT when the endpoint
 * could not be reached or answered garbage or HTTP 5xx (retry later); HIE_EDENIED for a SOAP Sender fault or
 * HTTP 4xx (permanent).
 */
hie_err_t hisp_xdr_send(const char *url, const struct hisp_xdr_request *r, const char *ca_file, int timeout_ms,
			struct hisp_xdr_result *res);

/* --- mailbox API (hisp_edge_api.c) -------------------------------------------------------------------------- */

#define HISP_EDGE_PREFIX "/edge/v1/"

/* The HTTP handler mounted on the prefix /edge/v1/ (ctx: struct hisp *); see hisp_edge_api.c for the API. */
struct hie_http_req;
struct hie_http_resp;
hie_err_t hisp_edge_http(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp);

/*
 * The edge delivered mailbox item id of address to its final destination (API ack, forwarding done): marks it
 * acknowledged and queues the dispatched MDN when the message asked for it (hisp_mdn_dispatched). In tx.
 * *mdn (may be NULL) = true when an MDN was queued. HIE_ENOTFOUND.
 */
hie_err_t hisp_edge_ack(struct hisp *h, PGconn *tx, const char *address, long long id, bool *mdn);

/* --- delivery hooks (hisp_edge.c) --------------------------------------------------------------------------- */

/*
 * Called by the receive job in its delivery transaction after message inbound_id was put into address's
 * mailbox: enqueues hisp.forward (payload: the mailbox item's id; a hisp_forward_state row 'pending') when the
 * address has a hisp_forwards row, and hisp.bridge (payload: the mailbox id) when the address or its domain is
 * in hisp_bridges. Idempotent (dedup keys from the mailbox id). HIE_ENOTFOUND when no such mailbox item.
 */
hie_err_t hisp_edge_delivered(struct hisp *h, PGconn *tx, const char *address, long long inbound_id);

/* --- forwarding (hisp_forward.c) ----------------------------------------------------------------------------- */

/*
 * The hisp.forward job (payload: mailbox id). SMTP: the plain message as received (decrypted, verified) to the
 * practice's server with libcurl (smtp://, STARTTLS per the row's tls; certificates verified against
 * [edge] forward_smtp_ca), MAIL FROM the original sender, RCPT the local address. XDR: an ITI-41 built from the
 * message: each XDM attachment with its own metadata (metadata "full"), or minimal metadata made for the
 * attachments (metadata "minimal", or no XDM); direct:from / direct:to headers. Success → hisp_edge_ack
 * (dispatched MDN when asked); a permanent refusal (5xx, SOAP Failure, HTTP 4xx) or the last attempt →
 * state failed, a failed MDN to the sender when it asked for final delivery, else a DSN. Otherwise HIE_EIO
 * (retried with backoff).
 */
hie_err_t hisp_forward_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);

/* --- push-to-pull bridge (hisp_bridge.c) --------------------------------------------------------------------- */

/*
 * The hisp.bridge job (payload: mailbox id): finds the documents of the message — every XDM attachment
 * (hisp_xdm_read: each document with its METADATA.xml) and every application/xml, text/xml attachment whose
 * root is an HL7 CDA ClinicalDocument — and hands each to the bridge callback (hisp.h); records the outcome per
 * document in hisp_bridge_docs (registered with the uniqueId, parked with the reason, failed). An invalid XDM
 * is parked with hisp_xdm_read's reason. A callback that returns an error (database down) makes the job retry.
 */
hie_err_t hisp_bridge_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen);

#endif
