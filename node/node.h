/*
 * node.h — internal interfaces of the hienode executable (subcommands and process plumbing).
 */
#ifndef HIENODE_NODE_H
#define HIENODE_NODE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "core/core_config.h"
#include "core/core_db.h"
#include "core/core_err.h"
#include "core/core_pg.h"
#include "registry/registry.h"

struct node_opts {
	const char *config_path; /* -c FILE, or NULL */
	int argc;                /* arguments after the subcommand and options */
	char **argv;
};

/* Registers every module's key table (once) and loads the configuration; prints the error and returns NULL. */
struct hie_cfg *node_config_load(const char *path);

int node_cmd_serve(const struct node_opts *o);
int node_cmd_migrate(const struct node_opts *o);
int node_cmd_check_config(const struct node_opts *o);
int node_cmd_config(const struct node_opts *o);
int node_cmd_status(const struct node_opts *o);
int node_cmd_patient(const struct node_opts *o);
/* Direct HISP commands (node_direct.c). */
int node_cmd_domain(const struct node_opts *o);
int node_cmd_cert(const struct node_opts *o);
int node_cmd_trust(const struct node_opts *o);
int node_cmd_route(const struct node_opts *o);
int node_cmd_send(const struct node_opts *o);
int node_cmd_mailbox(const struct node_opts *o);
int node_cmd_user(const struct node_opts *o);
int node_cmd_forward(const struct node_opts *o);
int node_cmd_bridge(const struct node_opts *o);

/* Process plumbing (node_process.c). */
struct node_identity {
	bool drop;      /* started as root: switch to uid/gid */
	uid_t uid;
	gid_t gid;
	char name[64];
};
/* Looks up [node] user when running as root; HIE_ECONFIG when that user does not exist. */
hie_err_t node_identity_resolve(const struct hie_cfg *cfg, struct node_identity *id);
/* Creates state_dir (0700) owned by the identity; writes the absolute path into out. */
hie_err_t node_state_dir_prepare(const struct hie_cfg *cfg, const struct node_identity *id, char *out, size_t outlen);
/* setgroups/setgid/setuid; verifies root cannot be regained. */
hie_err_t node_identity_drop(const struct node_identity *id);
/* Blocks SIGTERM, SIGINT, SIGHUP, SIGPIPE in the calling (main) thread before any thread starts. */
void node_signals_block(void);
/* Waits for SIGTERM or SIGINT; returns the signal number. */
int node_signals_wait(void);

/* Housekeeping jobs (node_maintenance.c): registers core.sweep and enqueues today's run. */
struct hie_jobs;
hie_err_t node_maintenance_register(struct hie_jobs *jobs, struct hie_db_pool *pool, const struct hie_cfg *cfg);

/* The SOAP endpoints of ARCHITECTURE.md mounted on the HTTP server (node_web.c). */
struct node_web;
struct hie_http_server;
/* Mounts the registry's transactions (registry_routes) with svc, initialised here from cfg. */
hie_err_t node_web_setup(struct node_web **out, struct hie_http_server *http, const struct hie_cfg *cfg,
			 struct registry_service *svc);
void node_web_free(struct node_web *web);
/* Mounts the Direct module's XDR Document Recipient (/xdr) on the same SOAP router. */
struct hisp;
hie_err_t node_web_add_hisp(struct node_web *web, struct hisp *h);

/*
 * The push-to-pull bridge (node_bridge.c): the hisp_bridge_fn the node gives the Direct module, registering a
 * received document with registry_import. arg: struct registry_service *.
 */
struct hisp_bridge_doc;
struct hisp_bridge_result;
hie_err_t node_bridge_register(void *arg, const struct hisp_bridge_doc *doc, struct hisp_bridge_result *res);

/* The node's database (node_db.c). */
struct node_db {
	struct hie_pg *pg;        /* embedded cluster, or NULL with [database] url */
	struct hie_db_pool *pool;
	bool was_running;         /* the embedded cluster was already up (a node uses it): leave it up */
};
hie_err_t node_db_open(struct node_db *db, const struct hie_cfg *cfg, const char *state_dir,
		       const struct node_identity *id, int pool_size);
hie_err_t node_db_migrate(struct hie_db_pool *pool);
/* Closes the pool; stops an embedded cluster this call started (serve: always stops it). */
void node_db_close(struct node_db *db);

/*
 * One-shot commands (migrate, status, patient, ...): configuration, identity, state directory and a pool of
 * one connection. An embedded cluster that was not running is started and stopped again by close; a running
 * one (a node uses it) is left alone. node_oneshot_open prints configuration errors itself; on failure the
 * caller still calls node_oneshot_close. s must be zeroed first.
 */
struct node_oneshot {
	struct hie_cfg *cfg;
	struct node_identity id;
	char state_dir[PATH_MAX];
	struct node_db db;
};
hie_err_t node_oneshot_open(struct node_oneshot *s, const struct node_opts *o);
void node_oneshot_close(struct node_oneshot *s);

#endif
