/*
 * node_serve.c — `hienode serve`: the node's life from start-up to a graceful stop.
 *
 * Order matters: configuration; state directory; bind the HTTP and MLLP ports (as root if need be); the
 * embedded PostgreSQL (its processes run as [node] user); drop privileges; pool and migrations; job workers;
 * MLLP (ITI-8 feed); HTTP (SOAP endpoints, /healthz, /metrics). SIGTERM or SIGINT then stops accepting (MLLP
 * first), lets in-flight messages, requests and jobs finish within [node] shutdown_timeout, and stops the cluster. Exit 0 after a clean stop, 1 when
 * start-up failed.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/core_http.h"
#include "core/core_jobs.h"
#include "core/core_tls.h"
#include "hisp/hisp.h"
#include "core/core_log.h"
#include "core/core_metrics.h"
#include "core/core_net.h"
#include "node/node.h"
#include "notify/notify.h"

#if defined(__SANITIZE_ADDRESS__)
#define NODE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NODE_ASAN 1
#endif
#endif

struct node {
	struct hie_cfg *cfg;
	struct node_identity id;
	char state_dir[PATH_MAX];
	struct node_db db;
	struct hie_metrics *metrics;
	struct hie_jobs *jobs;
	struct hie_http_server *http;
	struct hie_http_health health;
	struct node_web *web;
	struct registry_service registry; /* pool set once the database is open, before serving */
	int http_fd;
	struct hie_net_listener *mllp_l; /* bound before the privilege drop, served after the jobs start */
	struct hie_net_listener *smtp_l; /* the same for Direct SMTP */
	struct hisp *hisp;
	SSL_CTX *smtp_tls;               /* [smtp] STARTTLS context, loaded as root with the listener */
	struct hie_net_listener *sub_l;  /* [submission] listener and its STARTTLS context, the same way */
	SSL_CTX *sub_tls;
	struct notify_mllp *mllp;
};

static hie_err_t health_check(void *ctx)
{
	struct node *n = ctx;
	return hie_db_ping(n->db.pool, 2000);
}

static void collect_pool(void *ctx, struct hie_metrics_emitter *e)
{
	struct node *n = ctx;
	struct hie_db_stats st;
	hie_db_stats(n->db.pool, &st);
	const char *in_use[] = {"in_use"}, *idle[] = {"idle"}, *broken[] = {"broken"};
	hie_metrics_emit(e, in_use, st.in_use);
	hie_metrics_emit(e, idle, st.size - st.in_use);
	hie_metrics_emit(e, broken, st.broken);
}

static void collect_pool_waits(void *ctx, struct hie_metrics_emitter *e)
{
	struct node *n = ctx;
	struct hie_db_stats st;
	hie_db_stats(n->db.pool, &st);
	const char *waits[] = {"wait"}, *timeouts[] = {"timeout"};
	hie_metrics_emit(e, waits, (double)st.waits);
	hie_metrics_emit(e, timeouts, (double)st.timeouts);
}

static void emit_depth(const char *kind, const char *state, long long count, void *arg)
{
	const char *labels[] = {kind, state};
	hie_metrics_emit(arg, labels, (double)count);
}

static void collect_jobs(void *ctx, struct hie_metrics_emitter *e)
{
	struct node *n = ctx;
	hie_jobs_depth(n->db.pool, emit_depth, e);
}

static void emit_direct(const char *what, const char *state, long long count, void *arg)
{
	const char *labels[] = {what, state};
	hie_metrics_emit(arg, labels, (double)count);
}

static void collect_direct(void *ctx, struct hie_metrics_emitter *e)
{
	struct node *n = ctx;
	hisp_counts(n->db.pool, emit_direct, e);
}

static hie_err_t metrics_setup(struct node *n)
{
	static const char *const pool_labels[] = {"state", NULL};
	static const char *const event_labels[] = {"event", NULL};
	static const char *const job_labels[] = {"kind", "state", NULL};
	static const char *const direct_labels[] = {"what", "state", NULL};
	const struct hie_metric_def pool = {.name = "hienode_db_pool_connections",
					    .help = "PostgreSQL pool connections by state", .labels = pool_labels};
	const struct hie_metric_def waits = {.name = "hienode_db_pool_acquire_events_total",
					     .help = "pool acquires that waited or gave up", .labels = event_labels};
	const struct hie_metric_def jobs = {.name = "hienode_jobs", .help = "jobs in the queue by kind and state",
					    .labels = job_labels, .max_series = 512};
	const struct hie_metric_def direct = {.name = "hienode_direct_messages",
					      .help = "Direct messages: inbound by state (quarantined: refused), outbound "
						      "recipients by state",
					      .labels = direct_labels};
	n->metrics = hie_metrics_new();
	if (!n->metrics)
		return HIE_ENOMEM;
	hie_err_t err = hie_metrics_callback(n->metrics, HIE_METRIC_GAUGE, &pool, collect_pool, n);
	if (!err)
		err = hie_metrics_callback(n->metrics, HIE_METRIC_COUNTER, &waits, collect_pool_waits, n);
	if (!err)
		err = hie_metrics_callback(n->metrics, HIE_METRIC_GAUGE, &jobs, collect_jobs, n);
	if (!err)
		err = hie_metrics_callback(n->metrics, HIE_METRIC_GAUGE, &direct, collect_direct, n);
	return err;
}

/* Binds the HTTP port now, before privileges are dropped; libmicrohttpd accepts on it later. */
static hie_err_t http_bind(struct node *n)
{
	struct hie_net_listener *l;
	hie_err_t err = hie_net_listen(hie_cfg_str(n->cfg, "http", "listen"), &l);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=start.http error=bind listen=%s", hie_cfg_str(n->cfg, "http", "listen"));
		return err;
	}
	n->http_fd = hie_net_listener_release_fd(l);
	return HIE_OK;
}

/* Binds the MLLP port (ITI-8 feed) with the HTTP port, before privileges are dropped; "" disables it. */
static hie_err_t mllp_bind(struct node *n)
{
	const char *listen = hie_cfg_str(n->cfg, "mllp", "listen");
	if (!listen[0])
		return HIE_OK;
	hie_err_t err = hie_net_listen(listen, &n->mllp_l);
	if (err)
		hie_log(HIE_LOG_ERR, "event=start.mllp error=bind listen=%s", listen);
	return err;
}

/* Binds the Direct SMTP port ([smtp] listen) before privileges are dropped; "" disables it. */
static hie_err_t smtp_bind(struct node *n)
{
	const char *listen = hie_cfg_str(n->cfg, "smtp", "listen");
	if (!listen[0])
		return HIE_OK;
	hie_err_t err = hie_net_listen(listen, &n->smtp_l);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=start.smtp error=bind listen=%s", listen);
		return err;
	}
	return hisp_smtp_tls_load(n->cfg, &n->smtp_tls); /* key files may be readable by root only */
}

/* Binds the submission port ([submission] listen) before privileges are dropped; "" disables it. */
static hie_err_t submission_bind(struct node *n)
{
	const char *listen = hie_cfg_str(n->cfg, "submission", "listen");
	if (!listen[0])
		return HIE_OK;
	hie_err_t err = hie_net_listen(listen, &n->sub_l);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=start.submission error=bind listen=%s", listen);
		return err;
	}
	return hisp_submission_tls_load(n->cfg, &n->sub_tls);
}

static hie_err_t submission_start(struct node *n)
{
	if (!n->sub_l)
		return HIE_OK;
	hie_err_t err = hisp_service_submission_start(n->hisp, n->sub_l, n->sub_tls);
	if (!err) {
		n->sub_l = NULL;
		n->sub_tls = NULL;
	}
	return err;
}

static hie_err_t smtp_start(struct node *n)
{
	if (!n->smtp_l)
		return HIE_OK;
	hie_err_t err = hisp_service_smtp_start(n->hisp, n->smtp_l, n->smtp_tls);
	if (!err) {
		n->smtp_l = NULL; /* owned by the service now */
		n->smtp_tls = NULL;
	}
	return err;
}

static hie_err_t mllp_start(struct node *n)
{
	if (!n->mllp_l)
		return HIE_OK;
	hie_err_t err = notify_mllp_start(n->mllp_l, n->db.pool, n->cfg, &n->mllp);
	if (!err)
		n->mllp_l = NULL; /* owned by the server now */
	return err;
}

static hie_err_t http_setup(struct node *n)
{
	const struct hie_cfg *c = n->cfg;
	const char *cert = hie_cfg_str(c, "http", "tls_cert");
	const char *ca = hie_cfg_str(c, "http", "tls_client_ca");
	struct hie_http_config hc = {
		.listen_fd = n->http_fd,
		.threads = (unsigned)hie_cfg_int(c, "http", "threads"),
		.max_connections = (unsigned)hie_cfg_int(c, "http", "max_connections"),
		.idle_timeout_s = (unsigned)((hie_cfg_int(c, "http", "idle_timeout") + 999) / 1000),
		.request_deadline_ms = (unsigned)hie_cfg_int(c, "http", "request_timeout"),
		.drain_ms = (unsigned)hie_cfg_int(c, "node", "shutdown_timeout"),
		.body_max = (size_t)hie_cfg_int(c, "http", "max_body"),
		.tls_cert_file = cert[0] ? cert : NULL,
		.tls_key_file = cert[0] ? hie_cfg_str(c, "http", "tls_key") : NULL,
		.tls_client_ca_file = ca[0] ? ca : NULL,
		.tls_client_cert_optional = !hie_cfg_bool(c, "http", "tls_client_required"),
		.metrics = n->metrics,
	};
	hie_err_t err = hie_http_new(&hc, &n->http);
	if (err)
		return err;
	n->http_fd = -1; /* owned by the server now */
	n->health.check = health_check;
	n->health.ctx = n;
	const struct hie_http_route routes[] = {
		{.path = "/healthz", .methods = HIE_HTTP_GET, .fn = hie_http_healthz_handler, .ctx = &n->health},
		{.path = "/metrics", .methods = HIE_HTTP_GET, .fn = hie_http_metrics_handler, .ctx = n->metrics},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !err; i++)
		err = hie_http_route_add(n->http, &routes[i]);
	if (!err)
		err = node_web_setup(&n->web, n->http, c, &n->registry);
	return err;
}

static hie_err_t jobs_setup(struct node *n)
{
	const struct hie_cfg *c = n->cfg;
	struct hie_jobs_opts jo = {
		.workers = (int)hie_cfg_int(c, "jobs", "workers"),
		.poll_ms = (int)hie_cfg_int(c, "jobs", "poll_interval"),
		.max_attempts = (int)hie_cfg_int(c, "jobs", "max_attempts"),
		.lease_ms = (int)hie_cfg_int(c, "jobs", "lease"),
		.stop_timeout_ms = (int)hie_cfg_int(c, "node", "shutdown_timeout"),
	};
	hie_err_t err = hie_jobs_create(&n->jobs, n->db.pool, &jo);
	if (!err)
		err = node_maintenance_register(n->jobs, n->db.pool, c);
	if (!err)
		err = hisp_service_open(c, n->db.pool, n->state_dir, &n->hisp);
	if (!err)
		err = hisp_service_register_jobs(n->hisp, n->jobs);
	/* The edge's HTTP mounts need the service; the server has not started yet. */
	if (!err)
		err = hisp_edge_routes(n->hisp, n->http);
	if (!err)
		err = node_web_add_hisp(n->web, n->hisp);
	if (!err)
		hisp_service_set_bridge(n->hisp, node_bridge_register, &n->registry);
	return err;
}

static hie_err_t start(struct node *n)
{
	hie_err_t err = node_identity_resolve(n->cfg, &n->id);
	if (!err)
		err = node_state_dir_prepare(n->cfg, &n->id, n->state_dir, sizeof n->state_dir);
	if (!err)
		err = http_bind(n);
	if (!err)
		err = mllp_bind(n);
	if (!err)
		err = smtp_bind(n);
	if (!err)
		err = submission_bind(n);
	if (!err)
		err = metrics_setup(n);
	/* Reads the TLS key while still root: key files are readable by root only (like nginx). */
	if (!err)
		err = http_setup(n);
	if (!err)
		err = node_db_open(&n->db, n->cfg, n->state_dir, &n->id, (int)hie_cfg_int(n->cfg, "database", "pool_size"));
	if (err)
		return err;
	n->db.was_running = false; /* serve owns the embedded cluster: it stops it on the way out */
	n->registry.pool = n->db.pool;
	err = node_identity_drop(&n->id);
#ifdef NODE_ASAN
	/* LeakSanitizer must ptrace the process at exit; setuid made it non-dumpable. Test builds only. */
	prctl(PR_SET_DUMPABLE, 1);
#endif
	if (!err)
		err = node_db_migrate(n->db.pool);
	if (!err)
		err = jobs_setup(n);
	if (!err)
		err = hie_jobs_start(n->jobs);
	if (!err)
		err = mllp_start(n);
	if (!err)
		err = smtp_start(n);
	if (!err)
		err = submission_start(n);
	if (!err)
		err = hie_http_start(n->http);
	return err;
}

static void stop(struct node *n)
{
	/* MLLP first: messages in flight are answered (within the bound) while the database is still there. */
	notify_mllp_stop(n->mllp, (int)hie_cfg_int(n->cfg, "node", "shutdown_timeout"));
	n->mllp = NULL;
	hie_net_listener_close(n->mllp_l);
	n->mllp_l = NULL;
	hisp_service_smtp_stop(n->hisp, (int)hie_cfg_int(n->cfg, "node", "shutdown_timeout"));
	hie_net_listener_close(n->smtp_l);
	n->smtp_l = NULL;
	hie_tls_ctx_free(n->smtp_tls);
	n->smtp_tls = NULL;
	hie_net_listener_close(n->sub_l);
	n->sub_l = NULL;
	hie_tls_ctx_free(n->sub_tls);
	n->sub_tls = NULL;
	hie_http_stop(n->http);
	if (n->jobs && hie_jobs_stop(n->jobs) == HIE_ETIMEOUT) {
		/* Handlers still running past the bound: their leases expire and the jobs run again elsewhere. */
		hie_log(HIE_LOG_WARN, "event=stop.jobs error=timeout action=abandon");
		n->jobs = NULL;
	}
	hie_jobs_destroy(n->jobs);
	hisp_service_close(n->hisp); /* after the jobs: handlers use it */
	hie_http_free(n->http);
	node_web_free(n->web);
	node_db_close(&n->db);
	hie_metrics_free(n->metrics);
	if (n->http_fd >= 0)
		close(n->http_fd);
}

int node_cmd_serve(const struct node_opts *o)
{
	struct node n = {.http_fd = -1};
	node_signals_block();
	n.cfg = node_config_load(o->config_path);
	if (!n.cfg)
		return 1;
	hie_log(HIE_LOG_INFO, "event=start pid=%d http=%s", (int)getpid(), hie_cfg_str(n.cfg, "http", "listen"));
	hie_err_t err = start(&n);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=start error=%s (%s)", hie_errname(err), hie_strerror(err));
		stop(&n);
		hie_cfg_free(n.cfg);
		return 1;
	}
	hie_log(HIE_LOG_NOTICE, "event=ready http=%s state_dir=%s database=%s", hie_cfg_str(n.cfg, "http", "listen"),
		n.state_dir, n.db.pg ? "embedded" : "external");
	int sig = node_signals_wait();
	hie_log(HIE_LOG_NOTICE, "event=stop.begin signal=%s", sig == SIGINT ? "INT" : "TERM");
	stop(&n);
	hie_log(HIE_LOG_NOTICE, "event=stop");
	hie_cfg_free(n.cfg);
	return 0;
}
