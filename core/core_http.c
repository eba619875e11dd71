/*
 * core_http.c — HTTP(S) server on libmicrohttpd 0.9.75. See core_http.h for the contract.
 *
 * Life of a connection: notify_connection(STARTED) registers a struct conn (fd, deadline) in the server's
 * list; the sweeper thread shuts down any connection past its deadline; notify_connection(CLOSED), which
 * libmicrohttpd calls before it closes the fd, unregisters it, so the sweeper never touches a reused fd.
 * Life of a request: uri_log allocates the struct reqctx (request start, raw query string); on_access runs
 * the checks on its first call, collects the body on the next ones and calls the handler on the last one;
 * on_completed logs, records metrics, re-arms the connection's deadline for a next request and frees.
 */
#include "core/core_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_time.h"

#define PEM_MAX (1024 * 1024)
#define RESP_BODY_MAX ((size_t)1 << 30)
#define QUERY_MAX 8192
#define LOG_PATH_MAX 256
#define SWEEP_MS 250
#define TLS_DEFAULT_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

enum tls_state { TLS_UNCHECKED = 0, TLS_NONE, TLS_NOCERT, TLS_BAD, TLS_OK };

struct route {
	char *path;
	size_t len;
	unsigned methods;
	int prefix;
	size_t body_max;
	hie_http_handler_fn fn;
	void *ctx;
};

struct conn {
	struct conn *prev, *next;   /* server list, under srv->mu */
	int fd;
	int killed;                 /* under srv->mu */
	_Atomic int64_t deadline;   /* monotonic ms; 0 while a handler runs */
	char addr[INET6_ADDRSTRLEN];
	enum tls_state tls;         /* touched only by the connection's worker thread */
	X509 *peer;
};

struct reqctx {
	struct hie_http_server *srv;
	struct conn *conn;
	const struct route *route;
	int64_t start_ns;
	int first_done;
	int too_big;
	int status;
	size_t bytes;
	size_t body_max;
	size_t discarded;
	struct hie_buf body;
	char *query;
	char id[HIE_HTTP_ID_LEN];
	char method[16];           /* printable, for the log */
	char path[LOG_PATH_MAX];   /* printable raw path without the query, for the log */
};

struct hie_http_server {
	struct hie_http_config cfg;  /* strings below own the copies */
	char *host;
	char *cert_pem, *key_pem, *ca_pem, *priorities;
	struct route *routes;
	size_t nroutes;
	struct MHD_Daemon *d;
	unsigned short port;
	int started, stopped;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn *conns;
	pthread_t sweeper;
	int sweeper_on, sweeper_stop;
	atomic_long inflight;
	atomic_ullong next_id;
	char id_prefix[9];
	struct hie_metric *m_requests, *m_duration, *m_deadline;
};

/* ---- configuration ---- */

static hie_err_t read_pem(const char *path, char **out)
{
	struct hie_buf b;
	char chunk[4096];
	hie_err_t err = HIE_OK;
	FILE *f = fopen(path, "rb");
	if (!f) {
		hie_log(HIE_LOG_ERR, "event=http.config file=%s error=%s", path, strerror(errno));
		return HIE_ECONFIG;
	}
	hie_buf_init(&b, PEM_MAX);
	size_t n;
	while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		err = hie_buf_add(&b, chunk, n);
	if (!err && ferror(f))
		err = HIE_ECONFIG;
	fclose(f);
	OPENSSL_cleanse(chunk, sizeof chunk);
	if (!err && b.len == 0)
		err = HIE_ECONFIG;
	if (err) {
		hie_log(HIE_LOG_ERR, "event=http.config file=%s error=%s", path, hie_errname(err));
		if (b.data)
			OPENSSL_cleanse(b.data, b.len);
		hie_buf_free(&b);
		return err == HIE_ENOMEM ? err : HIE_ECONFIG;
	}
	*out = hie_buf_steal(&b, NULL);
	return HIE_OK;
}

static void free_secret(char *p)
{
	if (p)
		OPENSSL_cleanse(p, strlen(p));
	free(p);
}

static void make_id_prefix(struct hie_http_server *s)
{
	unsigned char r[4] = {0};
	if (getentropy(r, sizeof r) != 0) {
		uint64_t t = (uint64_t)hie_mono_ns() ^ (uint64_t)getpid();
		memcpy(r, &t, sizeof r);
	}
	snprintf(s->id_prefix, sizeof s->id_prefix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

static void apply_defaults(struct hie_http_config *c)
{
	if (!c->threads)
		c->threads = 4;
	if (!c->max_connections)
		c->max_connections = 1000;
	if (!c->idle_timeout_s)
		c->idle_timeout_s = 30;
	if (!c->request_deadline_ms)
		c->request_deadline_ms = 30000;
	if (!c->response_deadline_ms)
		c->response_deadline_ms = 300000;
	if (!c->drain_ms)
		c->drain_ms = 10000;
	if (!c->conn_memory)
		c->conn_memory = 64 * 1024;
	if (!c->body_max)
		c->body_max = 1024 * 1024;
}

static hie_err_t load_tls(struct hie_http_server *s, const struct hie_http_config *cfg)
{
	hie_err_t err;
	if (!cfg->tls_cert_file != !cfg->tls_key_file) {
		hie_log(HIE_LOG_ERR, "event=http.config error=\"tls_cert_file and tls_key_file go together\"");
		return HIE_ECONFIG;
	}
	if (!cfg->tls_cert_file) {
		if (cfg->tls_client_ca_file) {
			hie_log(HIE_LOG_ERR, "event=http.config error=\"tls_client_ca_file needs TLS\"");
			return HIE_ECONFIG;
		}
		return HIE_OK;
	}
	err = read_pem(cfg->tls_cert_file, &s->cert_pem);
	if (!err)
		err = read_pem(cfg->tls_key_file, &s->key_pem);
	if (!err && cfg->tls_client_ca_file)
		err = read_pem(cfg->tls_client_ca_file, &s->ca_pem);
	if (!err) {
		s->priorities = strdup(cfg->tls_priorities ? cfg->tls_priorities : TLS_DEFAULT_PRIORITIES);
		if (!s->priorities)
			err = HIE_ENOMEM;
	}
	return err;
}

hie_err_t hie_http_new(const struct hie_http_config *cfg, struct hie_http_server **out)
{
	hie_err_t err = HIE_EINVAL;
	struct hie_http_server *s;
	if (!cfg || !out)
		return HIE_EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return HIE_ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	hie_cond_init_monotonic(&s->cv);
	s->cfg = *cfg;
	apply_defaults(&s->cfg);
	s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
	if (!s->host) {
		err = HIE_ENOMEM;
		goto out;
	}
	err = load_tls(s, cfg);
	if (err)
		goto out;
	s->cfg.host = s->host;
	s->cfg.tls_cert_file = s->cfg.tls_key_file = s->cfg.tls_client_ca_file = NULL;
	s->cfg.tls_priorities = s->priorities;
	make_id_prefix(s);
	*out = s;
	return HIE_OK;
out:
	hie_http_free(s);
	return err;
}

hie_err_t hie_http_route_add(struct hie_http_server *s, const struct hie_http_route *r)
{
	if (!s || !r || !r->path || r->path[0] != '/' || !r->fn || !r->methods || s->started)
		return HIE_EINVAL;
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct route *o = &s->routes[i];
		if (strcmp(o->path, r->path) == 0 && o->prefix == !!r->prefix && (o->methods & r->methods))
			return HIE_EEXIST;
	}
	struct route *p = realloc(s->routes, (s->nroutes + 1) * sizeof *p);
	if (!p)
		return HIE_ENOMEM;
	s->routes = p;
	struct route *n = &p[s->nroutes];
	n->path = strdup(r->path);
	if (!n->path)
		return HIE_ENOMEM;
	n->len = strlen(r->path);
	n->methods = r->methods;
	n->prefix = !!r->prefix;
	n->body_max = r->body_max ? r->body_max : s->cfg.body_max;
	n->fn = r->fn;
	n->ctx = r->ctx;
	s->nroutes++;
	return HIE_OK;
}

/* ---- routing ---- */

static unsigned method_bit(const char *m)
{
	static const struct {
		const char *name;
		unsigned bit;
	} tab[] = {
		{"GET", HIE_HTTP_GET},	     {"HEAD", HIE_HTTP_GET},	 {"POST", HIE_HTTP_POST},
		{"PUT", HIE_HTTP_PUT},	     {"DELETE", HIE_HTTP_DELETE}, {"PATCH", HIE_HTTP_PATCH},
		{"OPTIONS", HIE_HTTP_OPTIONS},
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (strcmp(m, tab[i].name) == 0)
			return tab[i].bit;
	return 0;
}

/* A path we route: starts with '/', no control bytes, no "." or ".." segment (they could climb out of a
 * prefix route once a handler maps the rest to something). */
static int path_ok(const char *p)
{
	if (p[0] != '/')
		return 0;
	for (const char *q = p; *q; q++) {
		unsigned char c = (unsigned char)*q;
		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c == '/' && q[1] == '.' && (q[2] == '/' || q[2] == '\0' || (q[2] == '.' && (q[3] == '/' || q[3] == '\0'))))
			return 0;
	}
	return 1;
}

/*
 * Finds the route for (path, method). Exact beats prefix, the longest prefix wins. Returns the route, or NULL
 * with *allow set to the methods of that path (0 when no route has the path at all).
 */
static const struct route *route_find(const struct hie_http_server *s, const char *path, unsigned bit,
				      unsigned *allow)
{
	const struct route *best = NULL;
	const char *best_path = NULL;
	size_t best_len = 0;
	int best_exact = 0;
	size_t plen = strlen(path);
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct route *r = &s->routes[i];
		int exact = !r->prefix && r->len == plen && memcmp(r->path, path, plen) == 0;
		int pre = r->prefix && r->len <= plen && memcmp(r->path, path, r->len) == 0;
		if (!exact && !pre)
			continue;
		if (best_path && (best_exact > exact || (best_exact == exact && best_len > r->len)))
			continue;
		if (!best_path || exact != best_exact || r->len != best_len) {
			best_path = r->path;
			best_len = r->len;
			best_exact = exact;
			best = NULL;
			*allow = 0;
		}
		*allow |= r->methods;
		if (r->methods & bit)
			best = r;
	}
	if (!best_path)
		*allow = 0;
	return best;
}

static void allow_text(unsigned allow, char *dst, size_t n)
{
	static const struct {
		unsigned bit;
		const char *text;
	} tab[] = {
		{HIE_HTTP_GET, "GET, HEAD"}, {HIE_HTTP_POST, "POST"},	    {HIE_HTTP_PUT, "PUT"},
		{HIE_HTTP_DELETE, "DELETE"}, {HIE_HTTP_PATCH, "PATCH"}, {HIE_HTTP_OPTIONS, "OPTIONS"},
	};
	size_t used = 0;
	dst[0] = '\0';
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		if (!(allow & tab[i].bit))
			continue;
		int k = snprintf(dst + used, n - used, "%s%s", used ? ", " : "", tab[i].text);
		if (k < 0 || (size_t)k >= n - used)
			return;
		used += (size_t)k;
	}
}

/* ---- responses ---- */

static void resp_init(struct hie_http_resp *r)
{
	memset(r, 0, sizeof *r);
	r->content_type = "text/plain; charset=utf-8";
	hie_buf_init(&r->body, RESP_BODY_MAX);
}

static void resp_clear(struct hie_http_resp *r)
{
	hie_buf_free(&r->body);
	if (r->zc_data && r->zc_free)
		r->zc_free(r->zc_data);
	r->zc_data = NULL;
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	r->nheaders = 0;
}

static int header_text_ok(const char *s, int is_name)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 0x20 && c != '\t') || c == 0x7f || (is_name && (c == ':' || c == ' ' || c == '\t')))
			return 0;
	}
	return 1;
}

hie_err_t hie_http_resp_header(struct hie_http_resp *resp, const char *name, const char *value)
{
	/* libmicrohttpd 0.9.75 refuses empty values too */
	if (!resp || !name || !value || !*name || !*value || !header_text_ok(name, 1) || !header_text_ok(value, 0))
		return HIE_EINVAL;
	if (resp->nheaders >= HIE_HTTP_RESP_HEADERS_MAX)
		return HIE_ETOOBIG;
	struct hie_http_header *h = &resp->headers[resp->nheaders];
	h->name = strdup(name);
	h->value = strdup(value);
	if (!h->name || !h->value) {
		free(h->name);
		free(h->value);
		return HIE_ENOMEM;
	}
	resp->nheaders++;
	return HIE_OK;
}

hie_err_t hie_http_resp_text(struct hie_http_resp *resp, int status, const char *text)
{
	resp->status = status;
	resp->content_type = "text/plain; charset=utf-8";
	hie_buf_reset(&resp->body);
	return hie_buf_addstr(&resp->body, text);
}

/* Turns resp into an MHD response (taking its body) and queues it. */
static enum MHD_Result send_resp(struct MHD_Connection *mc, struct reqctx *r, struct hie_http_resp *resp)
{
	struct MHD_Response *mr;
	size_t len;
	if (resp->status < 200 || resp->status > 599)
		resp->status = 500;
	if (resp->zc_data) {
		len = resp->zc_len;
		if (resp->zc_free)
			mr = MHD_create_response_from_buffer_with_free_callback(len, resp->zc_data, resp->zc_free);
		else
			mr = MHD_create_response_from_buffer(len, resp->zc_data, MHD_RESPMEM_PERSISTENT);
		if (mr)
			resp->zc_data = NULL; /* owned by mr now */
	} else {
		char *data = hie_buf_steal(&resp->body, &len);
		mr = data ? MHD_create_response_from_buffer_with_free_callback(len, data, free) : NULL;
		if (!mr)
			free(data);
	}
	if (!mr) {
		resp_clear(resp);
		return MHD_NO;
	}
	/* A NULL content_type means the handler set Content-Type among its own headers. */
	int ok = (!resp->content_type ||
		  MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type) == MHD_YES) &&
		 MHD_add_response_header(mr, "X-Request-Id", r->id) == MHD_YES;
	for (size_t i = 0; ok && i < resp->nheaders; i++)
		ok = MHD_add_response_header(mr, resp->headers[i].name, resp->headers[i].value) == MHD_YES;
	if (!ok)
		hie_log(HIE_LOG_ERR, "event=http.response id=%s error=\"header refused\"", r->id);
	r->status = resp->status;
	r->bytes = len;
	resp_clear(resp);
	enum MHD_Result ret = ok ? MHD_queue_response(mc, (unsigned)r->status, mr) : MHD_NO;
	MHD_destroy_response(mr);
	if (ret == MHD_YES && r->conn)
		r->conn->deadline = hie_mono_ms() + r->srv->cfg.response_deadline_ms;
	return ret;
}

/* A short answer from the server itself; close = ask libmicrohttpd to close after it. */
static enum MHD_Result send_simple(struct MHD_Connection *mc, struct reqctx *r, int status, const char *text,
				   const char *allow, int close)
{
	struct hie_http_resp resp;
	resp_init(&resp);
	if (hie_http_resp_text(&resp, status, text) ||
	    (allow && hie_http_resp_header(&resp, "Allow", allow)) ||
	    (close && hie_http_resp_header(&resp, "Connection", "close"))) {
		resp_clear(&resp);
		return MHD_NO;
	}
	return send_resp(mc, r, &resp);
}

/* ---- mutual TLS ---- */

static enum tls_state tls_check(struct hie_http_server *s, struct MHD_Connection *mc, struct conn *c)
{
	unsigned n = 0, status = 0;
	if (c->tls != TLS_UNCHECKED)
		return c->tls;
	c->tls = TLS_NONE;
	if (!s->ca_pem)
		return c->tls;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t sess = ci ? (gnutls_session_t)ci->tls_session : NULL;
	const gnutls_datum_t *peers = sess ? gnutls_certificate_get_peers(sess, &n) : NULL;
	if (!peers || n == 0)
		return c->tls = TLS_NOCERT;
	/* Chain to the configured bundle, dates, and the client-auth purpose when the certificate lists any. */
	gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
					 .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
	int rc = gnutls_certificate_verify_peers(sess, &purpose, 1, &status);
	if (rc < 0 || status != 0) {
		hie_log(HIE_LOG_NOTICE, "event=http.tls peer=%s error=client_cert_rejected gnutls_rc=%d status=0x%x",
			c->addr, rc, status);
		return c->tls = TLS_BAD;
	}
	const unsigned char *p = peers[0].data;
	c->peer = d2i_X509(NULL, &p, (long)peers[0].size);
	if (!c->peer)
		return c->tls = TLS_BAD;
	return c->tls = TLS_OK;
}

/* ---- request phases ---- */

static struct conn *conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* Parses Content-Length; -1 when absent, -2 when malformed. */
static long long content_length(struct MHD_Connection *mc)
{
	const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	if (!v)
		return -1;
	if (*v < '0' || *v > '9')
		return -2;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || *end != '\0')
		return -2;
	return n;
}

/* First call: everything that can be decided from the headers, before a byte of the body is read. */
static enum MHD_Result first_call(struct hie_http_server *s, struct MHD_Connection *mc, struct reqctx *r,
				  const char *url, const char *method)
{
	unsigned allow = 0;
	char allow_buf[96];
	r->first_done = 1;
	r->conn = conn_of(mc);
	hie_log_printable(r->method, sizeof r->method, method, strlen(method));
	if (!r->conn)
		return MHD_NO; /* out of memory at accept: no deadline and no TLS state, so no service */
	enum tls_state t = tls_check(s, mc, r->conn);
	if (t == TLS_BAD || (t == TLS_NOCERT && !s->cfg.tls_client_cert_optional))
		return send_simple(mc, r, 403, "client certificate required\n", NULL, 1);
	if (!path_ok(url))
		return send_simple(mc, r, 400, "bad path\n", NULL, 1);
	r->route = route_find(s, url, method_bit(method), &allow);
	if (!r->route && !allow)
		return send_simple(mc, r, 404, "not found\n", NULL, 0);
	if (!r->route) {
		allow_text(allow, allow_buf, sizeof allow_buf);
		return send_simple(mc, r, 405, "method not allowed\n", allow_buf, 0);
	}
	r->body_max = r->route->body_max;
	long long cl = content_length(mc);
	if (cl == -2)
		return send_simple(mc, r, 400, "bad content-length\n", NULL, 1);
	if (cl >= 0 && (unsigned long long)cl > r->body_max)
		return send_simple(mc, r, 413, "request body too large\n", NULL, 1);
	hie_buf_init(&r->body, r->body_max);
	if (cl > 0 && hie_buf_reserve(&r->body, (size_t)cl < 256 * 1024 ? (size_t)cl : 256 * 1024))
		return MHD_NO;
	return MHD_YES;
}

/* A piece of the body. Past the cap we stop storing and answer 413 at the end, unless the client goes on
 * for another cap's worth, which only a client ignoring the answer would do: then the connection is dropped. */
static enum MHD_Result body_chunk(struct reqctx *r, const char *data, size_t n)
{
	if (r->conn) {
		int64_t dl = r->conn->deadline;
		if (dl && hie_mono_ms() > dl)
			return MHD_NO; /* the sweeper would do it; no need to wait for it */
	}
	if (!r->too_big) {
		hie_err_t err = hie_buf_add(&r->body, data, n);
		if (!err)
			return MHD_YES;
		if (err != HIE_ETOOBIG)
			return MHD_NO;
		r->too_big = 1;
		r->discarded = r->body.len;
		hie_buf_free(&r->body);
	}
	r->discarded += n;
	return r->discarded - r->body_max > r->body_max ? MHD_NO : MHD_YES;
}

static enum MHD_Result run_handler(struct hie_http_server *s, struct MHD_Connection *mc, struct reqctx *r,
				   const char *url, const char *method)
{
	struct hie_http_resp resp;
	struct hie_http_req req = {
		.id = r->id,
		.method = method,
		.path = url,
		.query = r->query ? r->query : "",
		.route = r->route->path,
		.body = r->body.data ? r->body.data : "",
		.body_len = r->body.len,
		.remote_addr = r->conn->addr,
		.peer_cert = r->conn->peer,
		.tls = s->cert_pem != NULL,
		.impl = mc,
	};
	r->conn->deadline = 0; /* handler time is not the client's */
	resp_init(&resp);
	hie_err_t err = r->route->fn(r->route->ctx, &req, &resp);
	hie_buf_free(&r->body);
	if (err || resp.status == 0) {
		if (err)
			hie_log(HIE_LOG_ERR, "event=http.handler id=%s route=%s error=%s", r->id, r->route->path,
				hie_errname(err));
		if (!err || resp.status == 0) {
			resp_clear(&resp);
			resp_init(&resp);
			if (hie_http_resp_text(&resp, 500, "internal error\n")) {
				resp_clear(&resp);
				return MHD_NO;
			}
		}
	}
	return send_resp(mc, r, &resp);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size,
				 void **con_cls)
{
	struct hie_http_server *s = cls;
	struct reqctx *r = *con_cls;
	if (!r)
		return MHD_NO; /* uri_log could not allocate */
	if (!r->first_done)
		return first_call(s, mc, r, url, method);
	if (*upload_data_size) {
		enum MHD_Result ret = body_chunk(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return ret;
	}
	if (r->too_big)
		return send_simple(mc, r, 413, "request body too large\n", NULL, 1);
	return run_handler(s, mc, r, url, method);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	struct hie_http_server *s = cls;
	struct reqctx *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->srv = s;
	r->start_ns = hie_mono_ns();
	hie_buf_init(&r->body, 0);
	unsigned long long n = atomic_fetch_add(&s->next_id, 1) + 1;
	snprintf(r->id, sizeof r->id, "%s-%llx", s->id_prefix, n);
	const char *q = uri ? strchr(uri, '?') : NULL;
	size_t plen = uri ? (q ? (size_t)(q - uri) : strlen(uri)) : 0;
	hie_log_printable(r->path, sizeof r->path, uri ? uri : "", plen);
	snprintf(r->method, sizeof r->method, "-");
	if (q) {
		r->query = strndup(q + 1, QUERY_MAX);
		if (!r->query) {
			free(r);
			return NULL;
		}
	}
	atomic_fetch_add(&s->inflight, 1);
	return r;
}

static const char *end_name(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "ok";
	case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
	case MHD_REQUEST_TERMINATED_READ_ERROR: return "read_error";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client_abort";
	}
	return "unknown";
}

static void record(struct hie_http_server *s, struct reqctx *r, double secs)
{
	char status[8];
	const char *endpoint = r->route ? r->route->path : "unmatched";
	if (r->status)
		snprintf(status, sizeof status, "%d", r->status);
	else
		snprintf(status, sizeof status, "none");
	const char *req_labels[] = {endpoint, status};
	const char *dur_labels[] = {endpoint};
	hie_metric_inc(s->m_requests, req_labels);
	hie_metric_observe(s->m_duration, dur_labels, secs);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct hie_http_server *s = cls;
	struct reqctx *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = ci ? ci->socket_context : NULL;
	if (c) /* ready for a next request on this connection: its clock starts now */
		c->deadline = hie_mono_ms() + s->cfg.request_deadline_ms;
	double secs = (double)(hie_mono_ns() - r->start_ns) / 1e9;
	if (!r->status) { /* an answer libmicrohttpd made itself (400, 431...) */
		const union MHD_ConnectionInfo *si = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_HTTP_STATUS);
		if (si)
			r->status = (int)si->http_status;
	}
	record(s, r, secs);
	hie_log(HIE_LOG_INFO, "event=http id=%s method=%s path=%s status=%d bytes=%zu ms=%.1f peer=%s end=%s", r->id,
		r->method, r->path[0] ? r->path : "-", r->status, r->bytes, secs * 1000.0, c ? c->addr : "-",
		end_name(toe));
	hie_buf_free(&r->body);
	free(r->query);
	free(r);
	atomic_fetch_sub(&s->inflight, 1);
}

/* ---- connections and the deadline sweeper ---- */

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct hie_http_server *s = cls;
	struct conn *c = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		c = calloc(1, sizeof *c);
		if (!c)
			return; /* no deadline beyond the idle timeout for this one; on_access still works */
		const union MHD_ConnectionInfo *fi = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ai = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		c->fd = fi ? fi->connect_fd : -1;
		c->deadline = hie_mono_ms() + s->cfg.request_deadline_ms; /* covers the TLS handshake too */
		const struct sockaddr *sa = ai ? ai->client_addr : NULL;
		if (sa && sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, c->addr, sizeof c->addr);
		else if (sa && sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, c->addr,
				  sizeof c->addr);
		else
			snprintf(c->addr, sizeof c->addr, "-");
		pthread_mutex_lock(&s->mu);
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		pthread_mutex_unlock(&s->mu);
		*socket_context = c;
		return;
	}
	if (!c)
		return;
	/* CLOSED: libmicrohttpd has not closed the fd yet; after this the sweeper cannot see it. */
	pthread_mutex_lock(&s->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&s->mu);
	X509_free(c->peer);
	free(c);
	*socket_context = NULL;
}

/*
 * A client that sends one byte per second resets libmicrohttpd's idle timeout forever; this thread bounds
 * the phase instead. shutdown(2) wakes the worker's epoll with end-of-file and libmicrohttpd closes the
 * connection in its own thread, so no MHD state is touched from here.
 */
static void *sweeper_main(void *arg)
{
	struct hie_http_server *s = arg;
	unsigned period = s->cfg.request_deadline_ms / 4;
	if (period > SWEEP_MS)
		period = SWEEP_MS;
	if (period < 20)
		period = 20;
	pthread_mutex_lock(&s->mu);
	while (!s->sweeper_stop) {
		struct timespec ts;
		hie_deadline_after(&ts, (int)period);
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		int64_t now = hie_mono_ms();
		for (struct conn *c = s->conns; c; c = c->next) {
			int64_t dl = c->deadline;
			if (!dl || now < dl || c->killed || c->fd < 0)
				continue;
			c->killed = 1;
			hie_metric_inc(s->m_deadline, NULL); /* counted before the peer can see the close */
			hie_log(HIE_LOG_NOTICE, "event=http.deadline peer=%s overdue_ms=%lld", c->addr,
				(long long)(now - dl));
			shutdown(c->fd, SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

__attribute__((format(printf, 2, 0))) static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == '"' || (unsigned char)msg[i] >= 0x7f)
			msg[i] = ' ';
	while (n && msg[n - 1] == ' ')
		msg[--n] = '\0';
	hie_log(HIE_LOG_INFO, "event=http.mhd msg=\"%s\"", msg);
}

/* ---- start and stop ---- */

static hie_err_t register_metrics(struct hie_http_server *s)
{
	static const char *const req_labels[] = {"endpoint", "status", NULL};
	static const char *const dur_labels[] = {"endpoint", NULL};
	static const double buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
	const struct hie_metric_def req = {.name = "hienode_http_requests_total",
					   .help = "HTTP requests by route and status.",
					   .labels = req_labels,
					   .max_series = 500};
	const struct hie_metric_def dur = {.name = "hienode_http_request_duration_seconds",
					   .help = "HTTP request latency from request line to response sent, by route.",
					   .labels = dur_labels,
					   .max_series = 100,
					   .buckets = buckets,
					   .nbuckets = sizeof buckets / sizeof buckets[0]};
	const struct hie_metric_def dl = {.name = "hienode_http_deadline_closes_total",
					  .help = "HTTP connections closed because a request or response deadline passed."};
	if (!s->cfg.metrics)
		return HIE_OK;
	hie_err_t err = hie_metrics_counter(s->cfg.metrics, &req, &s->m_requests);
	if (!err)
		err = hie_metrics_histogram(s->cfg.metrics, &dur, &s->m_duration);
	if (!err)
		err = hie_metrics_counter(s->cfg.metrics, &dl, &s->m_deadline);
	return err;
}

static hie_err_t resolve(const char *host, unsigned short port, struct sockaddr_storage *ss, int *v6)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	char portstr[8];
	snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai) {
		hie_log(HIE_LOG_ERR, "event=http.config host=%s error=\"not a numeric address\"", host);
		return HIE_ECONFIG;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return HIE_OK;
}

#define OPT(o, v, p) ((struct MHD_OptionItem){(o), (intptr_t)(v), (void *)(p)})

static size_t build_options(struct hie_http_server *s, struct MHD_OptionItem *o, const struct sockaddr_storage *ss)
{
	const struct hie_http_config *c = &s->cfg;
	size_t n = 0;
	o[n++] = OPT(MHD_OPTION_EXTERNAL_LOGGER, &mhd_logger, s); /* first, or early messages go to stderr */
	if (c->threads > 1) /* 1 = the single internal polling thread, no pool */
		o[n++] = OPT(MHD_OPTION_THREAD_POOL_SIZE, c->threads, NULL);
	o[n++] = OPT(MHD_OPTION_CONNECTION_LIMIT, c->max_connections, NULL);
	o[n++] = OPT(MHD_OPTION_CONNECTION_TIMEOUT, c->idle_timeout_s, NULL);
	o[n++] = OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, c->conn_memory, NULL);
	o[n++] = OPT(MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL);
	o[n++] = OPT(MHD_OPTION_NOTIFY_CONNECTION, &on_connection, s);
	o[n++] = OPT(MHD_OPTION_NOTIFY_COMPLETED, &on_completed, s);
	o[n++] = OPT(MHD_OPTION_URI_LOG_CALLBACK, &on_uri, s);
	if (c->per_ip_connections)
		o[n++] = OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->per_ip_connections, NULL);
	if (c->listen_fd > 0)
		o[n++] = OPT(MHD_OPTION_LISTEN_SOCKET, c->listen_fd, NULL);
	else
		o[n++] = OPT(MHD_OPTION_SOCK_ADDR, 0, ss);
	if (s->cert_pem) {
		o[n++] = OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem);
		o[n++] = OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem);
		o[n++] = OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, s->priorities);
		if (s->ca_pem)
			o[n++] = OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, s->ca_pem);
	}
	o[n++] = OPT(MHD_OPTION_END, 0, NULL);
	return n;
}

hie_err_t hie_http_start(struct hie_http_server *s)
{
	struct sockaddr_storage ss;
	struct MHD_OptionItem opts[24];
	int v6 = 0;
	hie_err_t err;
	if (!s || s->started)
		return HIE_EINVAL;
	memset(&ss, 0, sizeof ss);
	if (s->cfg.listen_fd <= 0) {
		err = resolve(s->host, s->cfg.port, &ss, &v6);
		if (err)
			return err;
	}
	err = register_metrics(s);
	if (err)
		return err;
	build_options(s, opts, &ss);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	if (s->cert_pem)
		flags |= MHD_USE_TLS;
	s->sweeper_stop = 0;
	if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0)
		return HIE_ESYS;
	s->sweeper_on = 1;
	s->d = MHD_start_daemon(flags, s->cfg.port, NULL, NULL, &on_access, s, MHD_OPTION_ARRAY, opts,
				MHD_OPTION_END);
	if (!s->d) {
		hie_log(HIE_LOG_ERR, "event=http.start host=%s port=%u error=\"daemon did not start\"", s->host,
			(unsigned)s->cfg.port);
		hie_http_stop(s);
		return HIE_EIO;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : s->cfg.port;
	s->started = 1;
	hie_log(HIE_LOG_INFO, "event=http.start host=%s port=%u tls=%s mtls=%s threads=%u", s->host,
		(unsigned)s->port, s->cert_pem ? "yes" : "no",
		s->ca_pem ? (s->cfg.tls_client_cert_optional ? "optional" : "required") : "no", s->cfg.threads);
	return HIE_OK;
}

unsigned short hie_http_port(const struct hie_http_server *s)
{
	return s && s->started && !s->stopped ? s->port : 0;
}

void hie_http_stop(struct hie_http_server *s)
{
	if (!s)
		return;
	if (s->d) {
		MHD_socket lfd = MHD_quiesce_daemon(s->d);
		int64_t until = hie_mono_ms() + s->cfg.drain_ms;
		while (atomic_load(&s->inflight) > 0 && hie_mono_ms() < until) {
			struct timespec ts = {0, 10 * 1000000};
			nanosleep(&ts, NULL);
		}
		long left = atomic_load(&s->inflight);
		MHD_stop_daemon(s->d); /* closes every connection; the CLOSED notifications free them */
		if (lfd != MHD_INVALID_SOCKET && s->cfg.listen_fd <= 0)
			close(lfd);
		s->d = NULL;
		hie_log(HIE_LOG_INFO, "event=http.stop port=%u cut_requests=%ld", (unsigned)s->port, left);
	}
	if (s->sweeper_on) {
		pthread_mutex_lock(&s->mu);
		s->sweeper_stop = 1;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->sweeper, NULL);
		s->sweeper_on = 0;
	}
	if (s->started)
		s->stopped = 1;
}

void hie_http_free(struct hie_http_server *s)
{
	if (!s)
		return;
	hie_http_stop(s);
	for (size_t i = 0; i < s->nroutes; i++)
		free(s->routes[i].path);
	free(s->routes);
	free(s->host);
	free(s->cert_pem);
	free_secret(s->key_pem);
	free(s->ca_pem);
	free(s->priorities);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- request accessors and built-in handlers ---- */

const char *hie_http_req_header(const struct hie_http_req *req, const char *name)
{
	if (!req || !req->impl || !name)
		return NULL;
	return MHD_lookup_connection_value(req->impl, MHD_HEADER_KIND, name);
}

const char *hie_http_req_query(const struct hie_http_req *req, const char *name)
{
	if (!req || !req->impl || !name)
		return NULL;
	const char *v = NULL;
	if (MHD_lookup_connection_value_n(req->impl, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, NULL) != MHD_YES)
		return NULL;
	return v ? v : "";
}

hie_err_t hie_http_healthz_handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	const struct hie_http_health *h = ctx;
	hie_err_t err = h && h->check ? h->check(h->ctx) : HIE_EINVAL;
	if (err)
		hie_log(HIE_LOG_WARN, "event=http.health id=%s error=%s", req->id, hie_errname(err));
	hie_err_t e2 = hie_http_resp_text(resp, err ? 503 : 200, err ? "unavailable\n" : "ok\n");
	if (!e2)
		e2 = hie_http_resp_header(resp, "Cache-Control", "no-store");
	return e2;
}

hie_err_t hie_http_metrics_handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	struct hie_buf out;
	hie_buf_init(&out, 16u << 20);
	hie_err_t err = hie_metrics_render(ctx, &out);
	if (err) {
		hie_buf_free(&out);
		return err;
	}
	hie_buf_free(&resp->body);
	resp->body = out;
	resp->status = 200;
	resp->content_type = HIE_METRICS_CONTENT_TYPE;
	return HIE_OK;
}
