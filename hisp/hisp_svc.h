/*
 * hisp_svc.h — the service context that every part of the module receives (struct hisp), built by
 * hisp_service_open (hisp_service.c) from configuration. Read-only after open, except the pointers the node
 * sets (jobs) before serving.
 */
#ifndef HIENODE_HISP_SVC_H
#define HIENODE_HISP_SVC_H

#include <limits.h>
#include <stdbool.h>

#include "core/core_config.h"
#include "core/core_db.h"
#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_discovery.h"
#include "hisp/hisp_smime.h"
#include "hisp/hisp_smtp_in.h"
#include "hisp/hisp_trust.h"

struct hisp {
	const struct hie_cfg *cfg;
	struct hie_db_pool *pool;
	char state_dir[PATH_MAX];
	char hostname[256];            /* [direct] hostname, or the system's */
	struct hisp_keys *keys;
	struct hisp_trust *trust;
	struct hisp_discovery *disc;
	struct hisp_smime_algs algs;   /* [direct] cipher, key_transport, digest */
	long long mdn_timeout_ms;      /* [direct] mdn_timeout */
	char smarthost[270];           /* [direct] smarthost "host:port" or "" */
	int smtp_out_timeout_ms;       /* [direct] smtp_timeout */
	int smtp_out_tls;              /* [direct] smtp_tls: 0 none, 1 opportunistic, 2 required */
	size_t max_message;            /* [smtp] max_message_size (also the decode cap) */
	struct hie_jobs *jobs;         /* set by hisp_service_register_jobs; wake after enqueue */
	struct hisp_smtp_in *smtp;
	SSL_CTX *smtp_tls;             /* [smtp] tls_cert / tls_key, or NULL */
	/* the edge (hisp_edge.h) */
	struct hisp_smtp_in *submission; /* [submission] listen server */
	SSL_CTX *submission_tls;
	hisp_bridge_fn bridge_fn;      /* set by node/ (hisp_service_set_bridge); NULL: bridge jobs park nothing, retry */
	void *bridge_arg;
	bool edge_require_tls;         /* [edge] require_tls */
	int auth_max_failures;         /* [edge] auth_max_failures */
	long long auth_lockout_ms;     /* [edge] auth_lockout */
	int xdr_timeout_ms;            /* [edge] xdr_timeout */
	char xdr_ca[1024];             /* [edge] xdr_ca or "" */
	char forward_smtp_ca[1024];    /* [edge] forward_smtp_ca or "" */
};

/* [direct] hostname, or the system's host name ("localhost" when it has none), into out. */
void hisp_hostname(const struct hie_cfg *cfg, char *out, size_t outlen);

/* Wakes the job workers after a commit that enqueued jobs (no-op without a pool). */
void hisp_wake(struct hisp *h);

#endif
