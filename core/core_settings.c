/*
 * core_settings.c — key table of the core plumbing. Defaults are those of the embedded demo (loopback only).
 */
#include "core/core_settings.h"

#define KB 1024LL
#define MB (1024LL * 1024)
#define GB (1024LL * 1024 * 1024)
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

const struct hie_cfg_key hie_core_config_keys[] = {
	{"node", "state_dir", HIE_CFG_STR, "state", 0, 200,
	 "directory for the embedded PostgreSQL cluster, keys and runtime files (relative to the working directory)", NULL},
	{"node", "home_community_id", HIE_CFG_STR, "urn:oid:1.3.6.1.4.1.21367.13.20.1000", 0, 128,
	 "this exchange's IHE homeCommunityId (urn:oid:...)", NULL},
	{"node", "user", HIE_CFG_STR, "hienode", 0, 64,
	 "unprivileged user the node (and its embedded PostgreSQL) runs as when started as root", NULL},
	{"node", "shutdown_timeout", HIE_CFG_DURATION, "20s", 1 * SEC, 10 * MIN,
	 "on SIGTERM, how long in-flight requests and jobs may take to finish", NULL},

	{"database", "url", HIE_CFG_STR, "", 0, 1024,
	 "libpq connection string of an external PostgreSQL; empty runs the embedded cluster under state_dir/pg", NULL},
	{"database", "pool_size", HIE_CFG_INT, "8", 1, 256, "persistent PostgreSQL connections held by the node", NULL},
	{"database", "acquire_timeout", HIE_CFG_DURATION, "5s", 10, 5 * MIN,
	 "how long a request waits for a free database connection before it fails", NULL},
	{"database", "statement_timeout", HIE_CFG_DURATION, "30s", 100, HOUR, "PostgreSQL statement_timeout", NULL},
	{"database", "pg_bindir", HIE_CFG_STR, "", 0, 256,
	 "directory of initdb and pg_ctl for the embedded cluster; empty searches /usr/lib/postgresql/*/bin and PATH", NULL},

	{"http", "listen", HIE_CFG_ADDR, "127.0.0.1:8080", 0, 270, "HTTP(S) listener for SOAP, admin, /healthz, /metrics", NULL},
	{"http", "threads", HIE_CFG_INT, "8", 1, 256, "HTTP worker threads", NULL},
	{"http", "max_connections", HIE_CFG_INT, "512", 1, 100000, "concurrent HTTP connections", NULL},
	{"http", "max_body", HIE_CFG_SIZE, "64M", 1 * KB, 2 * GB,
	 "largest request body accepted (413 above it); large documents travel as MTOM", NULL},
	{"http", "idle_timeout", HIE_CFG_DURATION, "30s", 1 * SEC, 1 * HOUR, "a connection with no traffic this long is closed", NULL},
	{"http", "request_timeout", HIE_CFG_DURATION, "120s", 1 * SEC, 1 * HOUR,
	 "deadline for receiving one whole request (headers and body)", NULL},
	{"http", "tls_cert", HIE_CFG_STR, "", 0, 1024, "PEM certificate chain for HTTPS; empty serves plain HTTP", NULL},
	{"http", "tls_key", HIE_CFG_STR, "", 0, 1024, "PEM private key for HTTPS", NULL},
	{"http", "tls_client_ca", HIE_CFG_STR, "", 0, 1024,
	 "PEM bundle of CAs whose client certificates are accepted (mutual TLS); empty disables client certificates", NULL},
	{"http", "tls_client_required", HIE_CFG_BOOL, "false", 0, 0,
	 "refuse HTTPS clients without a certificate from tls_client_ca", NULL},

	{"log", "level", HIE_CFG_ENUM, "info", 0, 0, "lowest level written to the log", "debug|info|notice|warn|error|alert"},

	{"jobs", "workers", HIE_CFG_INT, "4", 0, 256, "worker threads taking jobs from the queue (0 = none on this node)", NULL},
	{"jobs", "poll_interval", HIE_CFG_DURATION, "1s", 10, 1 * MIN, "how often an idle worker looks for due jobs", NULL},
	{"jobs", "lease", HIE_CFG_DURATION, "5m", 1 * SEC, 1 * HOUR,
	 "a claimed job not completed within this time returns to the queue", NULL},
	{"jobs", "max_attempts", HIE_CFG_INT, "10", 1, 1000, "attempts before a job is parked as failed", NULL},
	{"jobs", "retention", HIE_CFG_DURATION, "30d", 1 * HOUR, 3650LL * 24 * HOUR,
	 "how long finished jobs are kept as the idempotency record", NULL},
};
const size_t hie_core_config_nkeys = sizeof hie_core_config_keys / sizeof hie_core_config_keys[0];
