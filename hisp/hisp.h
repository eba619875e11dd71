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
/* Direct part of `hienode status`: quarantine, outbound awaiting MDN, failed deliveries. */
int hisp_cli_status(const struct hisp_cli *c);

/* Metrics (hisp_cli_mailbox.c; owned by helper "notice"): fn once per (what, state) with its count;
 * what = "inbound" (hisp_inbound states) or "outbound" (hisp_outbound_rcpt states). HIE_EDB, HIE_EBUSY. */
hie_err_t hisp_counts(struct hie_db_pool *pool, void (*fn)(const char *what, const char *state, long long n, void *arg),
		      void *arg);

#endif
