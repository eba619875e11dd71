/*
 * hisp.h — the Direct HISP module's public door (Applicability Statement 1.3: S/MIME over SMTP).
 *
 * What node/ uses: the configuration keys, the schema, the service (trust store, key store, certificate
 * discovery, SMTP receiver, job handlers for receiving and sending) and the operator commands behind
 * `hienode domain|cert|trust|route|send|mailbox` and the Direct part of `hienode status`.
 *
 * Job kinds registered by hisp_service_register_jobs: hisp.receive (an accepted SMTP message: decrypt,
 * verify, trust, deliver to the mailbox, queue the processed MDN), hisp.send (an outbound message or
 * notification: discover, sign, encrypt, deliver over SMTP), hisp.timeout (MDN deadline of one outbound
 * message), hisp.bundle (trust bundle refresh).
 */
#ifndef HIENODE_HISP_H
#define HIENODE_HISP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>
#include <openssl/ssl.h>

#include "core/core_config.h"
#include "core/core_db.h"
#include "core/core_err.h"
#include "core/core_jobs.h"
#include "core/core_net.h"

extern const struct hie_cfg_key hisp_config_keys[];
extern const size_t hisp_config_nkeys;

/* Schema of the module (module name "hisp"); node/ applies it after core's. */
extern const struct hie_db_migration hisp_migrations[];
extern const size_t hisp_migrations_count;

/* The service ---------------------------------------------------------------------------------------------- */

struct hisp;

/*
 * Builds the service from [direct] / [smtp] configuration on an open pool. state_dir is where private keys
 * live (<state_dir>/keys, 0700). The caller owns *out (hisp_service_close). HIE_ECONFIG for unusable settings.
 */
hie_err_t hisp_service_open(const struct hie_cfg *cfg, struct hie_db_pool *pool, const char *state_dir,
			    struct hisp **out);
/* Registers hisp.receive, hisp.send, hisp.timeout and hisp.bundle on jobs and remembers jobs to wake it. */
hie_err_t hisp_service_register_jobs(struct hisp *h, struct hie_jobs *jobs);
/*
 * Serves SMTP ([smtp] listen) on a listener bound before the privilege drop, offering STARTTLS with tls
 * (NULL: no STARTTLS; made by hisp_smtp_tls_load while still root). Both are taken over on success.
 */
hie_err_t hisp_service_smtp_start(struct hisp *h, struct hie_net_listener *l, SSL_CTX *tls);
/* The STARTTLS context of [smtp] tls_cert / tls_key; *out NULL when they are empty. HIE_ECONFIG when unusable. */
hie_err_t hisp_smtp_tls_load(const struct hie_cfg *cfg, SSL_CTX **out);
/* Stops the SMTP server (grace_ms for sessions in progress); jobs are stopped by their pool. */
void hisp_service_smtp_stop(struct hisp *h, int grace_ms);
void hisp_service_close(struct hisp *h);

/* The edge (issue 5; hisp_edge.h inside the module) ------------------------------------------------------ */

/*
 * SMTP submission ([submission] listen) for authenticated edge clients: STARTTLS with tls (made by
 * hisp_submission_tls_load while still root; [submission] tls_cert, else [smtp] tls_cert), then AUTH PLAIN or
 * LOGIN, then plain messages signed, encrypted and delivered by the core. Both are taken over on success.
 * Without a TLS context the port answers but refuses AUTH (and so every message).
 */
hie_err_t hisp_submission_tls_load(const struct hie_cfg *cfg, SSL_CTX **out);
hie_err_t hisp_service_submission_start(struct hisp *h, struct hie_net_listener *l, SSL_CTX *tls);

/* Mounts the mailbox API (prefix /edge/v1/, GET and POST) on the HTTP server (before it starts). */
struct hie_http_server;
hie_err_t hisp_edge_routes(struct hisp *h, struct hie_http_server *http);
/* Mounts the XDR Document Recipient (ITI-41 on /xdr) on the SOAP router. */
struct hie_soap_router;
hie_err_t hisp_xdr_routes(struct hisp *h, struct hie_soap_router *router);

/*
 * Push-to-pull bridge: the node gives the module a callback that registers one received document in the
 * local XDS registry and repository (the module itself knows nothing of the registry). Called from the
 * hisp.bridge job, outside any transaction of the module.
 */
struct hisp_bridge_doc {
	const unsigned char *data;   /* the document's bytes */
	size_t len;
	const char *mime_type;       /* "text/xml", "application/pdf", ... */
	const char *metadata;        /* XDM METADATA.xml (lcm:SubmitObjectsRequest) or NULL (plain attachment) */
	size_t metadata_len;
	const char *entry_id;        /* with metadata: the ExtrinsicObject id describing this document */
	const char *sender;          /* the Direct sender (From), lower-cased */
	const char *recipient;       /* the local address it arrived for */
	const char *message_id;      /* of the Direct message, without <> */
};
enum hisp_bridge_outcome { HISP_BRIDGE_REGISTERED, HISP_BRIDGE_PARKED, HISP_BRIDGE_FAILED };
struct hisp_bridge_result {
	enum hisp_bridge_outcome outcome;
	char unique_id[129];         /* registered: the DocumentEntry uniqueId */
	char reason[200];            /* parked / failed: short, no patient data ("no patient matched") */
};
/* HIE_OK with res filled; an error = try again later (database unavailable). */
typedef hie_err_t (*hisp_bridge_fn)(void *arg, const struct hisp_bridge_doc *doc, struct hisp_bridge_result *res);
void hisp_service_set_bridge(struct hisp *h, hisp_bridge_fn fn, void *arg);

/* Operator commands (one-shot, on a pool; node/ prints usage errors) -------------------------------------- */

/*
 * Every command writes what it did (or a list) to out and an error message naming the bad value to err;
 * it returns a process exit status: 0 done, 1 failed (database, file), 2 bad arguments.
 * argv[0] is the verb after the command word (e.g. "add" for `hienode domain add example.org`).
 */
struct hisp_cli {
	struct hie_db_pool *pool;
	const struct hie_cfg *cfg;
	const char *state_dir;
	FILE *out, *err;
};
int hisp_cli_domain(const struct hisp_cli *c, int argc, char **argv);  /* add, list, remove, policy */
int hisp_cli_cert(const struct hisp_cli *c, int argc, char **argv);    /* import, list, remove, discover */
int hisp_cli_trust(const struct hisp_cli *c, int argc, char **argv);   /* add, list, remove, bundle add|list|refresh */
int hisp_cli_route(const struct hisp_cli *c, int argc, char **argv);   /* add, list, remove */
int hisp_cli_send(const struct hisp_cli *c, int argc, char **argv);    /* --from --to --cc --subject --body --attach */
int hisp_cli_mailbox(const struct hisp_cli *c, int argc, char **argv); /* list ADDR, get ADDR ID, ack ADDR ID */
int hisp_cli_user(const struct hisp_cli *c, int argc, char **argv);    /* add, passwd, remove, grant, revoke, list */
int hisp_cli_forward(const struct hisp_cli *c, int argc, char **argv); /* set, list, remove, status */
int hisp_cli_bridge(const struct hisp_cli *c, int argc, char **argv);  /* add, list, remove, parked, retry */
/* Direct part of `hienode status`: quarantine, outbound awaiting MDN, failed deliveries. */
int hisp_cli_status(const struct hisp_cli *c);

/* Metrics (hisp_cli_mailbox.c; owned by helper "notice"): fn once per (what, state) with its count;
 * what = "inbound" (hisp_inbound states) or "outbound" (hisp_outbound_rcpt states). HIE_EDB, HIE_EBUSY. */
hie_err_t hisp_counts(struct hie_db_pool *pool, void (*fn)(const char *what, const char *state, long long n, void *arg),
		      void *arg);

#endif
