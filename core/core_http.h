/*
 * core_http.h — the HTTP(S) server on libmicrohttpd: routes, capped bodies, deadlines, TLS and mutual TLS.
 *
 *   hie_http_new(&cfg, &srv);  hie_http_route_add(srv, &route) ...;  hie_http_start(srv);
 *   ... hie_http_port(srv) ...;  hie_http_stop(srv);  hie_http_free(srv);
 *
 * Threads: an epoll thread pool (cfg.threads workers). Connections are event-driven, so a slow client holds a
 * connection slot, never a worker thread; a handler runs on a worker and blocks only that worker's other
 * connections while it runs, so handlers should be short or the pool sized for blocking work.
 *
 * Requests: routed by exact path, or by prefix for routes with .prefix = 1 (longest prefix wins, exact beats
 * prefix). No route: 404. Route without the method: 405 with Allow. Paths with "." or ".." segments or
 * control bytes: 400. The body is collected whole before the handler runs and is capped per route: a
 * Content-Length above the cap gets 413 before a byte of the body is read; a chunked body that grows past the
 * cap is no longer stored and gets 413 when it ends (if it goes on for more than another cap's worth of bytes
 * the connection is dropped without an answer).
 *
 * Deadlines (see cfg): the idle timeout is libmicrohttpd's own (reset by every byte received). On top of it a
 * sweeper thread bounds each phase as a whole, whatever the client's pace: from the moment a connection is
 * ready for a request (accept, or the end of the previous response) until the whole request has been
 * received — TLS handshake, headers and body, and the keep-alive pause before them — at most
 * request_deadline_ms; and from the moment the response is queued until it has been sent, at most
 * response_deadline_ms. A connection past its deadline is shut down (shutdown(2); libmicrohttpd then sees
 * end-of-file and frees it), so it is closed at most request_deadline_ms + sweep interval (<= 250 ms) after it
 * became ready. Headers are also capped by conn_memory (libmicrohttpd answers 431 or closes). The time a
 * handler runs is not bounded here.
 *
 * TLS: TLS 1.2 and 1.3 only (GnuTLS inside libmicrohttpd). With tls_client_ca_file set, clients are asked
 * for a certificate, which must verify against that bundle (chain, validity dates, and the TLS client
 * purpose when the certificate lists key purposes). Without a valid certificate a request gets 403 and the
 * connection is closed, unless tls_client_cert_optional is set (then a request without any certificate goes
 * through with req->peer_cert NULL; a bad certificate is still refused).
 *
 * Logs: one line per request, `event=http id=… method=… path=… status=… bytes=… ms=… peer=…` (path printable,
 * never the query string). Metrics (when cfg.metrics is set): hienode_http_requests_total{endpoint,status},
 * hienode_http_request_duration_seconds{endpoint} (endpoint = the route's path, "unmatched" without route),
 * hienode_http_deadline_closes_total.
 *
 * Errors: HIE_ECONFIG for a bad configuration or unreadable TLS files, HIE_EINVAL for bad arguments,
 * HIE_EIO when the daemon cannot start (address in use...), HIE_ENOMEM.
 */
#ifndef HIENODE_CORE_HTTP_H
#define HIENODE_CORE_HTTP_H

#include <stddef.h>

#include <openssl/x509.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_metrics.h"

#define HIE_HTTP_RESP_HEADERS_MAX 16
#define HIE_HTTP_ID_LEN 24

enum hie_http_method {
	HIE_HTTP_GET = 1 << 0,    /* also answers HEAD */
	HIE_HTTP_POST = 1 << 1,
	HIE_HTTP_PUT = 1 << 2,
	HIE_HTTP_DELETE = 1 << 3,
	HIE_HTTP_PATCH = 1 << 4,
	HIE_HTTP_OPTIONS = 1 << 5,
};

struct hie_http_config {
	const char *host;                /* numeric IPv4 or IPv6 address; NULL = "127.0.0.1" */
	unsigned short port;             /* 0 = chosen by the kernel (read it with hie_http_port) */
	int listen_fd;                   /* > 0: an already bound, listening socket to use instead of host:port
					    (so the node can bind as root and drop privileges first) */
	unsigned threads;                /* worker threads; 0 = 4 */
	unsigned max_connections;        /* 0 = 1000 */
	unsigned per_ip_connections;     /* 0 = no per-address limit */
	unsigned idle_timeout_s;         /* libmicrohttpd connection timeout; 0 = 30 */
	unsigned request_deadline_ms;    /* ready-for-request until fully received; 0 = 30000 */
	unsigned response_deadline_ms;   /* response queued until sent; 0 = 300000 */
	unsigned drain_ms;               /* hie_http_stop waits this long for requests in flight; 0 = 10000 */
	size_t conn_memory;              /* per-connection memory, caps the request headers; 0 = 64 KiB */
	size_t body_max;                 /* body cap for routes that set none; 0 = 1 MiB */
	const char *tls_cert_file;       /* PEM certificate chain; with tls_key_file, turns TLS on */
	const char *tls_key_file;        /* PEM private key (unencrypted) */
	const char *tls_client_ca_file;  /* PEM CA bundle: turns mutual TLS on */
	int tls_client_cert_optional;    /* with a CA bundle: let requests without a certificate through */
	const char *tls_priorities;      /* GnuTLS priority string; NULL = TLS 1.2/1.3 only, NORMAL ciphers */
	struct hie_metrics *metrics;     /* borrowed, may be NULL; must outlive the server */
};

/* A request, valid only during the handler call; every pointer is borrowed. */
struct hie_http_req {
	const char *id;            /* per-request id, also sent back as X-Request-Id */
	const char *method;        /* "GET", "POST", ... */
	const char *path;          /* percent-decoded path without the query string */
	const char *query;         /* raw query string after '?', not decoded, cut at 8 KiB; "" when none */
	const char *route;         /* the matched route's path (the metrics endpoint label) */
	const char *body;          /* the whole body, NUL-terminated (the NUL not counted); "" when none */
	size_t body_len;
	const char *remote_addr;   /* peer address as text ("127.0.0.1", "::1") */
	X509 *peer_cert;           /* verified client certificate with mutual TLS, else NULL; do not free */
	int tls;                   /* 1 when the request came over TLS */
	void *impl;                /* private */
};

struct hie_http_header {
	char *name;
	char *value;
};

/*
 * A response the handler fills. It starts as status 0 (500 if the handler leaves it so), content type
 * "text/plain; charset=utf-8", empty body. The body is either `body` (a hie_buf the server frees; capped
 * at 1 GiB) or, when zc_data is set, the zero-copy (zc_data, zc_len), released with zc_free(zc_data)
 * (zc_free may be NULL for static data) once sent or on failure.
 */
struct hie_http_resp {
	int status;
	const char *content_type;  /* borrowed: must stay valid until the response is sent (static text, or
				    * NULL when the handler adds its own Content-Type with hie_http_resp_header) */
	struct hie_buf body;
	void *zc_data;
	size_t zc_len;
	void (*zc_free)(void *);
	struct hie_http_header headers[HIE_HTTP_RESP_HEADERS_MAX];
	size_t nheaders;
};

/*
 * A handler fills resp. A non-zero return with resp->status still 0 becomes a 500 with a generic text
 * (the error name is logged, the body is discarded).
 */
typedef hie_err_t (*hie_http_handler_fn)(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp);

struct hie_http_route {
	const char *path;          /* "/xds/registry", or a prefix "/admin/" with .prefix = 1; copied */
	unsigned methods;          /* or-ed enum hie_http_method */
	int prefix;
	size_t body_max;           /* 0 = cfg.body_max */
	hie_http_handler_fn fn;
	void *ctx;                 /* borrowed; must outlive the server */
};

struct hie_http_server;

/*
 * Checks cfg, reads the TLS files and makes a stopped server (*out, free with hie_http_free). The strings
 * of cfg are copied; cfg.metrics is borrowed.
 */
hie_err_t hie_http_new(const struct hie_http_config *cfg, struct hie_http_server **out);
/* Adds a route (before hie_http_start only: HIE_EINVAL after it). HIE_EEXIST for a duplicate path+method. */
hie_err_t hie_http_route_add(struct hie_http_server *s, const struct hie_http_route *r);
/* Binds and starts the workers. HIE_EIO when libmicrohttpd refuses (port in use, bad address...). */
hie_err_t hie_http_start(struct hie_http_server *s);
/* The bound port (useful with port 0); 0 when not started. */
unsigned short hie_http_port(const struct hie_http_server *s);
/*
 * Stops accepting, waits up to cfg.drain_ms for the requests in flight to finish, then closes every
 * connection and joins the threads. Safe to call twice or on a server that never started.
 */
void hie_http_stop(struct hie_http_server *s);
/* Stops if needed and frees. NULL is accepted. */
void hie_http_free(struct hie_http_server *s);

/* Request header by name, case-insensitive; NULL when absent. Borrowed, valid during the handler. */
const char *hie_http_req_header(const struct hie_http_req *req, const char *name);
/* Percent-decoded query argument by name; NULL when absent, "" for "?name". Borrowed, valid during the handler. */
const char *hie_http_req_query(const struct hie_http_req *req, const char *name);

/*
 * Adds a response header (both strings copied). HIE_EINVAL for an empty name or value, a name with ':' or
 * blanks, or control bytes (CR, LF...) in either; HIE_ETOOBIG past HIE_HTTP_RESP_HEADERS_MAX.
 */
hie_err_t hie_http_resp_header(struct hie_http_resp *resp, const char *name, const char *value);
/* Sets status and a text body (copied, content type text/plain). */
hie_err_t hie_http_resp_text(struct hie_http_resp *resp, int status, const char *text);

/* Built-in handlers, to be mounted by the caller with hie_http_route_add. */

/* ctx: struct hie_http_health *. 200 "ok" when check(ctx) returns HIE_OK, else 503 "unavailable". */
struct hie_http_health {
	hie_err_t (*check)(void *ctx);
	void *ctx;
};
hie_err_t hie_http_healthz_handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp);
/* ctx: struct hie_metrics *. 200 with the Prometheus text exposition (capped at 16 MiB). */
hie_err_t hie_http_metrics_handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp);

#endif
