/*
 * core_http_test.c — the HTTP server on real loopback sockets: libcurl as the well-behaved client, raw sockets
 * for hostile ones (trickling, oversized, malformed), certificates made with the openssl command in a temp dir.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/x509.h>

#include "core/core_http.h"
#include "core/core_log.h"
#include "core/core_metrics.h"

#define CAP 1024

static char g_dir[256];          /* temp dir with the certificates */
static atomic_int g_handler_calls;
static atomic_int g_zc_frees;
static atomic_int g_sleep_entered;
static atomic_int g_health = HIE_OK;

/* ---- log capture (the sink is called from server threads) ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hie_buf log_text;

static void log_sink(enum hie_log_level level, const char *line, size_t len)
{
	pthread_mutex_lock(&log_mu);
	(void)hie_buf_add(&log_text, line, len);
	pthread_mutex_unlock(&log_mu);
}

static int log_contains(const char *needle)
{
	pthread_mutex_lock(&log_mu);
	int found = strstr(hie_buf_str(&log_text), needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

/* ---- handlers ---- */

static hie_err_t h_hello(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	atomic_fetch_add(&g_handler_calls, 1);
	return hie_http_resp_text(resp, 200, "hello\n");
}

static hie_err_t h_echo(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	char n[32];
	const char *a = hie_http_req_query(req, "a"), *flag = hie_http_req_query(req, "flag");
	const char *hdr = hie_http_req_header(req, "x-TEST-header");
	hie_err_t err;
	atomic_fetch_add(&g_handler_calls, 1);
	snprintf(n, sizeof n, "%zu", req->body_len);
	resp->status = 200;
	resp->content_type = "application/octet-stream";
	err = hie_buf_add(&resp->body, req->body, req->body_len);
	if (!err)
		err = hie_http_resp_header(resp, "X-Body-Len", n);
	if (!err)
		err = hie_http_resp_header(resp, "X-Query-A", a ? a : "(null)");
	if (!err)
		err = hie_http_resp_header(resp, "X-Query-Flag", flag ? (*flag ? flag : "(empty)") : "(null)");
	if (!err)
		err = hie_http_resp_header(resp, "X-Raw-Query", *req->query ? req->query : "(empty)");
	if (!err)
		err = hie_http_resp_header(resp, "X-Hdr", hdr ? hdr : "(null)");
	if (!err)
		err = hie_http_resp_header(resp, "X-Remote", req->remote_addr);
	if (!err)
		err = hie_http_resp_header(resp, "X-Route", req->route);
	return err;
}

static hie_err_t h_admin(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	atomic_fetch_add(&g_handler_calls, 1);
	resp->status = 200;
	return hie_buf_addf(&resp->body, "admin %s\n", req->path);
}

static hie_err_t h_fail(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	hie_buf_addstr(&resp->body, "secret internals"); /* must not reach the client */
	return HIE_EDB;
}

static void zc_free(void *p)
{
	atomic_fetch_add(&g_zc_frees, 1);
	free(p);
}

#define BIG (2 * 1024 * 1024 + 7)

static hie_err_t h_big(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	char *p = malloc(BIG);
	if (!p)
		return HIE_ENOMEM;
	for (size_t i = 0; i < BIG; i++)
		p[i] = (char)('a' + i % 26);
	resp->status = 200;
	resp->zc_data = p;
	resp->zc_len = BIG;
	resp->zc_free = zc_free;
	return HIE_OK;
}

static hie_err_t h_whoami(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	char name[256] = "anonymous";
	atomic_fetch_add(&g_handler_calls, 1);
	if (req->peer_cert)
		X509_NAME_oneline(X509_get_subject_name(req->peer_cert), name, sizeof name);
	resp->status = 200;
	return hie_buf_addf(&resp->body, "%s tls=%d\n", name, req->tls);
}

static hie_err_t h_sleep(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	struct timespec ts = {0, 400 * 1000000};
	atomic_store(&g_sleep_entered, 1);
	nanosleep(&ts, NULL);
	return hie_http_resp_text(resp, 200, "slept\n");
}

static hie_err_t health_check(void *ctx) { return (hie_err_t)atomic_load(&g_health); }

/* ---- server fixture ---- */

struct srv {
	struct hie_http_server *s;
	struct hie_metrics *m;
	struct hie_http_health health;
	unsigned short port;
};

static void srv_start(struct srv *x, const struct hie_http_config *base)
{
	struct hie_http_config cfg = *base;
	memset(x, 0, sizeof *x);
	x->m = hie_metrics_new();
	assert_non_null(x->m);
	cfg.metrics = x->m;
	x->health = (struct hie_http_health){.check = health_check};
	assert_int_equal(hie_http_new(&cfg, &x->s), HIE_OK);
	const struct hie_http_route routes[] = {
		{.path = "/hello", .methods = HIE_HTTP_GET, .fn = h_hello},
		{.path = "/echo", .methods = HIE_HTTP_POST | HIE_HTTP_PUT, .body_max = CAP, .fn = h_echo},
		{.path = "/admin/", .prefix = 1, .methods = HIE_HTTP_GET, .fn = h_admin},
		{.path = "/fail", .methods = HIE_HTTP_GET, .fn = h_fail},
		{.path = "/big", .methods = HIE_HTTP_GET, .fn = h_big},
		{.path = "/whoami", .methods = HIE_HTTP_GET, .fn = h_whoami},
		{.path = "/sleep", .methods = HIE_HTTP_GET, .fn = h_sleep},
		{.path = "/healthz", .methods = HIE_HTTP_GET, .fn = hie_http_healthz_handler, .ctx = &x->health},
		{.path = "/metrics", .methods = HIE_HTTP_GET, .fn = hie_http_metrics_handler, .ctx = x->m},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		assert_int_equal(hie_http_route_add(x->s, &routes[i]), HIE_OK);
	assert_int_equal(hie_http_route_add(x->s, &routes[0]), HIE_EEXIST);
	assert_int_equal(hie_http_start(x->s), HIE_OK);
	x->port = hie_http_port(x->s);
	assert_true(x->port > 0);
	assert_int_equal(hie_http_route_add(x->s, &(struct hie_http_route){.path = "/late", .methods = HIE_HTTP_GET,
									    .fn = h_hello}),
			 HIE_EINVAL);
}

static void srv_stop(struct srv *x)
{
	hie_http_free(x->s);
	hie_metrics_free(x->m);
}

/* ---- libcurl client ---- */

struct req_opts {
	const char *method;
	const char *path;          /* with query */
	const char *body;
	size_t body_len;
	int chunked;
	const char *header;        /* one extra request header or NULL */
	int tls;
	const char *cert, *key;    /* client certificate files (basename in g_dir) */
	const char *host;          /* default 127.0.0.1 */
};

struct res {
	CURLcode rc;
	long status;
	struct hie_buf body;
	struct hie_buf headers;
};

struct reader {
	const char *p;
	size_t left;
};

static size_t read_cb(char *dst, size_t size, size_t n, void *ud)
{
	struct reader *r = ud;
	size_t k = size * n;
	if (k > 100)
		k = 100; /* many chunks */
	if (k > r->left)
		k = r->left;
	memcpy(dst, r->p, k);
	r->p += k;
	r->left -= k;
	return k;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
	return hie_buf_add(ud, p, size * n) ? 0 : size * n;
}

static void path_of(char *dst, size_t n, const char *file)
{
	snprintf(dst, n, "%s/%s", g_dir, file);
}

static CURL *make_easy(unsigned short port, const struct req_opts *o, struct res *r, struct reader *rd,
		       struct curl_slist **hl, char *paths)
{
	char url[512];
	CURL *c = curl_easy_init();
	assert_non_null(c);
	snprintf(url, sizeof url, "%s://%s:%u%s", o->tls ? "https" : "http", o->host ? o->host : "127.0.0.1",
		 (unsigned)port, o->path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	*hl = curl_slist_append(*hl, "Expect:");
	if (o->header)
		*hl = curl_slist_append(*hl, o->header);
	if (o->method && strcmp(o->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (o->method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
	if (o->body) {
		rd->p = o->body;
		rd->left = o->body_len;
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		if (o->chunked) {
			*hl = curl_slist_append(*hl, "Transfer-Encoding: chunked");
			curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
			curl_easy_setopt(c, CURLOPT_READDATA, rd);
		} else {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)o->body_len);
		}
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
	if (o->tls) {
		path_of(paths, 256, "ca.pem");
		curl_easy_setopt(c, CURLOPT_CAINFO, paths);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
		if (o->cert) {
			path_of(paths + 256, 256, o->cert);
			path_of(paths + 512, 256, o->key);
			curl_easy_setopt(c, CURLOPT_SSLCERT, paths + 256);
			curl_easy_setopt(c, CURLOPT_SSLKEY, paths + 512);
		}
	}
	return c;
}

static void http_do(unsigned short port, const struct req_opts *o, struct res *r)
{
	struct reader rd;
	struct curl_slist *hl = NULL;
	char paths[768];
	memset(r, 0, sizeof *r);
	hie_buf_init(&r->body, 64u << 20);
	hie_buf_init(&r->headers, 1 << 20);
	CURL *c = make_easy(port, o, r, &rd, &hl, paths);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->rc != CURLE_OK && getenv("HTTP_TEST_DEBUG"))
		fprintf(stderr, "curl %s: %s\n", o->path, curl_easy_strerror(r->rc));
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
}

static void res_free(struct res *r)
{
	hie_buf_free(&r->body);
	hie_buf_free(&r->headers);
}

static int has_header(const struct res *r, const char *line)
{
	return strstr(hie_buf_str(&r->headers), line) != NULL;
}

/* ---- raw sockets ---- */

static int raw_connect(unsigned short port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void raw_send(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k <= 0)
			return; /* the server may have closed: the caller checks the answer */
		s += k;
		n -= (size_t)k;
	}
}

/* Reads until the peer closes or timeout_ms of silence; returns what came. */
static void raw_read_all(int fd, struct hie_buf *out, int timeout_ms)
{
	char buf[4096];
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, timeout_ms) <= 0)
			return;
		ssize_t k = recv(fd, buf, sizeof buf, 0);
		if (k <= 0)
			return;
		(void)hie_buf_add(out, buf, (size_t)k);
	}
}

/* 1 when the server has closed the socket (EOF or reset) within timeout_ms, draining any answer. */
static int raw_closed_within(int fd, int timeout_ms)
{
	char buf[4096];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (poll(&p, 1, timeout_ms) > 0) {
		ssize_t k = recv(fd, buf, sizeof buf, 0);
		if (k <= 0)
			return 1;
	}
	return 0;
}

/* ---- tests ---- */

static const struct hie_http_config plain_cfg = {.threads = 2, .idle_timeout_s = 20, .request_deadline_ms = 10000};

static void test_routing(void **state)
{
	struct srv x;
	struct res r;
	srv_start(&x, &plain_cfg);

	http_do(x.port, &(struct req_opts){.path = "/hello"}, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(hie_buf_str(&r.body), "hello\n");
	assert_true(has_header(&r, "X-Request-Id: "));
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/nope"}, &r);
	assert_int_equal(r.status, 404);
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/hello", .method = "POST", .body = "x", .body_len = 1}, &r);
	assert_int_equal(r.status, 405);
	assert_true(has_header(&r, "Allow: GET, HEAD\r\n"));
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/echo", .method = "GET"}, &r);
	assert_int_equal(r.status, 405);
	assert_true(has_header(&r, "Allow: POST, PUT\r\n"));
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/hello", .method = "HEAD"}, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 0);
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/admin/users/7"}, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(hie_buf_str(&r.body), "admin /admin/users/7\n");
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/admin"}, &r); /* the prefix includes the slash */
	assert_int_equal(r.status, 404);
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/hello/"}, &r); /* exact means exact */
	assert_int_equal(r.status, 404);
	res_free(&r);

	http_do(x.port, &(struct req_opts){.path = "/fail"}, &r);
	assert_int_equal(r.status, 500);
	assert_null(strstr(hie_buf_str(&r.body), "secret"));
	res_free(&r);

	srv_stop(&x);
}

struct raw_case {
	const char *what;
	const char *request;
	const char *want_status; /* prefix of the status line, or NULL: the connection is just closed */
};

static void test_hostile_requests(void **state)
{
	static const struct raw_case cases[] = {
		{.what = "dot-dot segment", .request = "GET /admin/../metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		 .want_status = "HTTP/1.1 400"},
		{.what = "encoded dot-dot", .request = "GET /admin/%2e%2e/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		 .want_status = "HTTP/1.1 400"},
		{.what = "dot segment", .request = "GET /admin/./x HTTP/1.1\r\nHost: x\r\n\r\n",
		 .want_status = "HTTP/1.1 400"},
		{.what = "encoded control byte", .request = "GET /admin/a%0d%0aSet-Cookie:x HTTP/1.1\r\nHost: x\r\n\r\n",
		 .want_status = "HTTP/1.1 400"},
		{.what = "bad content-length", .request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
		 .want_status = "HTTP/1.1 400"},
		{.what = "50 MB content-length, body never sent",
		 .request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n\r\n",
		 .want_status = "HTTP/1.1 413"},
		{.what = "absolute-form target", .request = "GET http://evil/hello HTTP/1.1\r\nHost: x\r\n\r\n",
		 .want_status = "HTTP/1.1 400"},
		{.what = "header bigger than the connection memory",
		 .request = NULL, .want_status = "HTTP/1.1 431"},
	};
	struct srv x;
	srv_start(&x, &plain_cfg);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hie_buf in;
		struct hie_buf big;
		int fd = raw_connect(x.port);
		hie_buf_init(&in, 1 << 20);
		hie_buf_init(&big, 1 << 20);
		if (cases[i].request) {
			raw_send(fd, cases[i].request, strlen(cases[i].request));
		} else {
			assert_int_equal(hie_buf_addstr(&big, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: "), HIE_OK);
			for (int k = 0; k < 100 * 1024; k++)
				assert_int_equal(hie_buf_add(&big, "a", 1), HIE_OK);
			assert_int_equal(hie_buf_addstr(&big, "\r\n\r\n"), HIE_OK);
			raw_send(fd, big.data, big.len);
		}
		raw_read_all(fd, &in, 5000);
		if (strncmp(hie_buf_str(&in), cases[i].want_status, strlen(cases[i].want_status)) != 0)
			fail_msg("case '%s': got '%.40s'", cases[i].what, hie_buf_str(&in));
		close(fd);
		hie_buf_free(&in);
		hie_buf_free(&big);
	}
	srv_stop(&x);
	/* answers libmicrohttpd makes itself are logged with their status too */
	assert_true(log_contains(" status=431 "));
	assert_true(log_contains(" status=413 bytes="));
}

static void test_request_accessors(void **state)
{
	struct srv x;
	struct res r;
	srv_start(&x, &plain_cfg);
	http_do(x.port,
		&(struct req_opts){.path = "/echo?a=b%20c&flag&patient=secretpatient",
				   .body = "payload",
				   .body_len = 7,
				   .header = "X-Test-Header: v1"},
		&r);
	assert_int_equal(r.status, 200);
	assert_string_equal(hie_buf_str(&r.body), "payload");
	assert_true(has_header(&r, "X-Body-Len: 7\r\n"));
	assert_true(has_header(&r, "X-Query-A: b c\r\n"));
	assert_true(has_header(&r, "X-Query-Flag: (empty)\r\n"));
	assert_true(has_header(&r, "X-Raw-Query: a=b%20c&flag&patient=secretpatient\r\n"));
	assert_true(has_header(&r, "X-Hdr: v1\r\n"));
	assert_true(has_header(&r, "X-Remote: 127.0.0.1\r\n"));
	assert_true(has_header(&r, "X-Route: /echo\r\n"));
	assert_true(has_header(&r, "Content-Type: application/octet-stream\r\n"));
	res_free(&r);
	srv_stop(&x); /* the access line is written on completion; stop waits for it */
	assert_true(log_contains("event=http id="));
	assert_true(log_contains(" method=POST path=/echo status=200 bytes=7 ms="));
	assert_false(log_contains("secretpatient")); /* query values never reach the log */
}

static void test_body_caps(void **state)
{
	static char body[CAP + 1];
	struct srv x;
	struct res r;
	memset(body, 'b', sizeof body);
	srv_start(&x, &plain_cfg);
	for (int chunked = 0; chunked <= 1; chunked++) {
		atomic_store(&g_handler_calls, 0);
		http_do(x.port, &(struct req_opts){.path = "/echo", .body = body, .body_len = CAP, .chunked = chunked},
			&r);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.body.len, CAP);
		res_free(&r);
		http_do(x.port,
			&(struct req_opts){.path = "/echo", .body = body, .body_len = CAP + 1, .chunked = chunked}, &r);
		if (r.status != 413)
			fail_msg("chunked=%d: one byte over the cap gave %ld", chunked, r.status);
		res_free(&r);
		assert_int_equal(atomic_load(&g_handler_calls), 1); /* the handler never saw the big one */
	}
	srv_stop(&x);
}

/* A chunked body that goes on far past the cap: stored no more, and cut without reading it all. */
static void test_chunked_flood(void **state)
{
	struct srv x;
	char chunk[1100];
	struct hie_buf in;
	srv_start(&x, &plain_cfg);
	int fd = raw_connect(x.port);
	const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
	raw_send(fd, head, strlen(head));
	int n = snprintf(chunk, sizeof chunk, "400\r\n");
	memset(chunk + n, 'z', 1024);
	memcpy(chunk + n + 1024, "\r\n", 2);
	for (int i = 0; i < 200; i++) /* 200 KiB, 200 times the cap */
		raw_send(fd, chunk, (size_t)n + 1026);
	hie_buf_init(&in, 1 << 20);
	raw_read_all(fd, &in, 5000);
	assert_null(strstr(hie_buf_str(&in), "HTTP/1.1 200"));
	assert_true(raw_closed_within(fd, 5000));
	close(fd);
	hie_buf_free(&in);
	srv_stop(&x);
}

static void test_zero_copy(void **state)
{
	struct srv x;
	struct res r;
	atomic_store(&g_zc_frees, 0);
	srv_start(&x, &plain_cfg);
	http_do(x.port, &(struct req_opts){.path = "/big"}, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, BIG);
	assert_int_equal(r.body.data[BIG - 1], 'a' + (BIG - 1) % 26);
	res_free(&r);
	srv_stop(&x);
	assert_int_equal(atomic_load(&g_zc_frees), 1);
}

/* A client sending one byte per second keeps the idle timeout alive; the request deadline must cut it. */
static void trickle(unsigned short port, const char *prefix, int *closed)
{
	int fd = raw_connect(port);
	raw_send(fd, prefix, strlen(prefix));
	*closed = 0;
	for (int i = 0; i < 30 && !*closed; i++) {
		if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) {
			*closed = 1;
			break;
		}
		*closed = raw_closed_within(fd, 1000);
	}
	close(fd);
}

static double metric_value(struct hie_metrics *m, const char *series_prefix)
{
	struct hie_buf text;
	double v = -1;
	hie_buf_init(&text, 1 << 20);
	assert_int_equal(hie_metrics_render(m, &text), HIE_OK);
	const char *p = strstr(hie_buf_str(&text), series_prefix);
	if (p)
		v = strtod(p + strlen(series_prefix), NULL);
	hie_buf_free(&text);
	return v;
}

static void test_slow_clients_cut(void **state)
{
	const struct hie_http_config cfg = {.threads = 1, .idle_timeout_s = 20, .request_deadline_ms = 2000};
	struct srv x;
	int closed;
	srv_start(&x, &cfg);
	/* headers trickle: libmicrohttpd never calls us before they end; only the sweeper can act */
	trickle(x.port, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ", &closed);
	assert_true(closed);
	assert_true(metric_value(x.m, "\nhienode_http_deadline_closes_total ") >= 1);
	/* body trickle */
	trickle(x.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", &closed);
	assert_true(closed);
	/* the TLS-less server still answers others: one thread was never held */
	struct res r;
	http_do(x.port, &(struct req_opts){.path = "/hello"}, &r);
	assert_int_equal(r.status, 200);
	res_free(&r);
	srv_stop(&x);
}

static void test_many_concurrent(void **state)
{
	enum { N = 200 };
	const struct hie_http_config cfg = {.threads = 4, .max_connections = 400};
	struct srv x;
	static struct res rs[N];
	static struct reader rd[N];
	static struct curl_slist *hl[N];
	static char paths[N][768];
	CURL *e[N];
	srv_start(&x, &cfg);
	CURLM *multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
	for (int i = 0; i < N; i++) {
		memset(&rs[i], 0, sizeof rs[i]);
		hie_buf_init(&rs[i].body, 1 << 16);
		hie_buf_init(&rs[i].headers, 1 << 16);
		hl[i] = NULL;
		e[i] = make_easy(x.port, &(struct req_opts){.path = i % 2 ? "/hello" : "/admin/x"}, &rs[i], &rd[i],
				 &hl[i], paths[i]);
		curl_multi_add_handle(multi, e[i]);
	}
	int running = 1;
	while (running) {
		curl_multi_perform(multi, &running);
		if (running)
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	int ok = 0;
	for (int i = 0; i < N; i++) {
		long status = 0;
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &status);
		ok += status == 200;
		curl_multi_remove_handle(multi, e[i]);
		curl_easy_cleanup(e[i]);
		curl_slist_free_all(hl[i]);
		res_free(&rs[i]);
	}
	curl_multi_cleanup(multi);
	assert_int_equal(ok, N);
	assert_true(metric_value(x.m, "\nhienode_http_requests_total{endpoint=\"/hello\",status=\"200\"} ") == N / 2);
	srv_stop(&x);
}

static void test_metrics_and_health(void **state)
{
	struct srv x;
	struct res r;
	srv_start(&x, &plain_cfg);
	for (int i = 0; i < 3; i++) {
		http_do(x.port, &(struct req_opts){.path = "/hello"}, &r);
		res_free(&r);
	}
	http_do(x.port, &(struct req_opts){.path = "/no/such/thing?id=1"}, &r);
	res_free(&r);
	http_do(x.port, &(struct req_opts){.path = "/other-unknown"}, &r);
	res_free(&r);
	g_health = HIE_OK;
	http_do(x.port, &(struct req_opts){.path = "/healthz"}, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(hie_buf_str(&r.body), "ok\n");
	res_free(&r);
	g_health = HIE_EDB;
	http_do(x.port, &(struct req_opts){.path = "/healthz"}, &r);
	assert_int_equal(r.status, 503);
	res_free(&r);
	g_health = HIE_OK;

	http_do(x.port, &(struct req_opts){.path = "/metrics"}, &r);
	assert_int_equal(r.status, 200);
	assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	const char *t = hie_buf_str(&r.body);
	assert_non_null(strstr(t, "# TYPE hienode_http_requests_total counter\n"));
	assert_non_null(strstr(t, "hienode_http_requests_total{endpoint=\"/hello\",status=\"200\"} 3\n"));
	/* raw paths never become labels: both unknown paths share one series */
	assert_non_null(strstr(t, "hienode_http_requests_total{endpoint=\"unmatched\",status=\"404\"} 2\n"));
	assert_null(strstr(t, "no/such"));
	assert_non_null(strstr(t, "hienode_http_requests_total{endpoint=\"/healthz\",status=\"503\"} 1\n"));
	assert_non_null(strstr(t, "# TYPE hienode_http_request_duration_seconds histogram\n"));
	assert_non_null(strstr(t, "hienode_http_request_duration_seconds_bucket{endpoint=\"/hello\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(t, "hienode_http_request_duration_seconds_count{endpoint=\"/hello\"} 3\n"));
	res_free(&r);
	srv_stop(&x);
}

struct sleep_job {
	unsigned short port;
	struct res r;
};

static void *sleep_client(void *arg)
{
	struct sleep_job *j = arg;
	http_do(j->port, &(struct req_opts){.path = "/sleep"}, &j->r);
	return NULL;
}

static void test_graceful_stop(void **state)
{
	struct srv x;
	struct sleep_job j;
	pthread_t t;
	srv_start(&x, &plain_cfg);
	j.port = x.port;
	atomic_store(&g_sleep_entered, 0);
	assert_int_equal(pthread_create(&t, NULL, sleep_client, &j), 0);
	while (!atomic_load(&g_sleep_entered)) {
		struct timespec ts = {0, 5 * 1000000};
		nanosleep(&ts, NULL);
	}
	hie_http_stop(x.s); /* must let the request in flight finish */
	pthread_join(t, NULL);
	assert_int_equal(j.r.status, 200);
	assert_string_equal(hie_buf_str(&j.r.body), "slept\n");
	res_free(&j.r);
	assert_int_equal(hie_http_port(x.s), 0);
	/* and nothing listens any more */
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(j.port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_not_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	srv_stop(&x);
}

static void test_bad_config(void **state)
{
	struct hie_http_server *s = NULL;
	char ca[300];
	path_of(ca, sizeof ca, "ca.pem");
	const struct hie_http_config cases[] = {
		{.tls_cert_file = ca},                              /* no key */
		{.tls_client_ca_file = ca},                         /* mTLS without TLS */
		{.tls_cert_file = "/nonexistent", .tls_key_file = "/nonexistent"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(hie_http_new(&cases[i], &s), HIE_ECONFIG);
		assert_null(s);
	}
	assert_int_equal(hie_http_new(&(struct hie_http_config){.host = "localhost"}, &s), HIE_OK);
	assert_int_equal(hie_http_start(s), HIE_ECONFIG); /* names are not resolved */
	hie_http_free(s);
	/* port in use */
	struct srv x;
	srv_start(&x, &plain_cfg);
	assert_int_equal(hie_http_new(&(struct hie_http_config){.port = x.port}, &s), HIE_OK);
	assert_int_equal(hie_http_start(s), HIE_EIO);
	hie_http_free(s);
	srv_stop(&x);
	/* bad route arguments */
	assert_int_equal(hie_http_new(&plain_cfg, &s), HIE_OK);
	assert_int_equal(hie_http_route_add(s, &(struct hie_http_route){.path = "no-slash", .methods = 1, .fn = h_hello}),
			 HIE_EINVAL);
	assert_int_equal(hie_http_route_add(s, &(struct hie_http_route){.path = "/x", .methods = 0, .fn = h_hello}),
			 HIE_EINVAL);
	hie_http_free(s);
	/* response header injection is refused */
	struct hie_http_resp resp;
	memset(&resp, 0, sizeof resp);
	assert_int_equal(hie_http_resp_header(&resp, "X-A", "v\r\nSet-Cookie: x"), HIE_EINVAL);
	assert_int_equal(hie_http_resp_header(&resp, "X-A: b", "v"), HIE_EINVAL);
	assert_int_equal(hie_http_resp_header(&resp, "", "v"), HIE_EINVAL);
	assert_int_equal(hie_http_resp_header(&resp, "X-Empty", ""), HIE_EINVAL);
	assert_int_equal(resp.nheaders, 0);
}

static void test_ipv6(void **state)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (fd >= 0)
			close(fd);
		skip(); /* no IPv6 loopback in this environment */
	}
	close(fd);
	struct hie_http_config cfg = plain_cfg;
	cfg.host = "::1";
	struct srv x;
	struct res r;
	srv_start(&x, &cfg);
	http_do(x.port, &(struct req_opts){.path = "/echo", .body = "6", .body_len = 1, .host = "[::1]"}, &r);
	assert_int_equal(r.status, 200);
	assert_true(has_header(&r, "X-Remote: ::1\r\n"));
	res_free(&r);
	srv_stop(&x);
}

/* ---- TLS ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int make_certs(void)
{
	const char *d = g_dir;
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	if (sh("cd %s && printf 'basicConstraints=critical,CA:FALSE\\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\\n"
	       "extendedKeyUsage=serverAuth\\n' > srv.ext && "
	       "printf 'basicConstraints=critical,CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > cli.ext && "
	       "printf 'basicConstraints=critical,CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > wrong.ext",
	       d))
		return -1;
	for (int i = 0; i < 2; i++) {
		const char *ca = i ? "rogue" : "ca";
		if (sh("cd %s && openssl req -x509 %s -keyout %s.key -out %s.pem -days 2 -subj '/CN=%s test CA' "
		       "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign "
		       "2>/dev/null",
		       d, ec, ca, ca, ca))
			return -1;
	}
	static const struct {
		const char *name, *subj, *ca, *ext;
	} leaves[] = {
		{"srv", "/CN=localhost", "ca", "srv.ext"},
		{"cli", "/O=Partner HIE/CN=partner-a", "ca", "cli.ext"},
		{"intruder", "/CN=intruder", "rogue", "cli.ext"},
		{"wrong", "/CN=server-only", "ca", "wrong.ext"},
	};
	for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
		if (sh("cd %s && openssl req %s -keyout %s.key -out %s.csr -subj '%s' 2>/dev/null && "
		       "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -days 2 -out %s.pem "
		       "-extfile %s 2>/dev/null",
		       d, ec, leaves[i].name, leaves[i].name, leaves[i].subj, leaves[i].name, leaves[i].ca, leaves[i].ca,
		       leaves[i].name, leaves[i].ext))
			return -1;
	}
	return 0;
}

static struct hie_http_config tls_cfg(char (*p)[300], int mtls)
{
	path_of(p[0], 300, "srv.pem");
	path_of(p[1], 300, "srv.key");
	path_of(p[2], 300, "ca.pem");
	struct hie_http_config c = plain_cfg;
	c.tls_cert_file = p[0];
	c.tls_key_file = p[1];
	c.tls_client_ca_file = mtls ? p[2] : NULL;
	return c;
}

static void test_tls(void **state)
{
	char p[3][300];
	struct srv x;
	struct res r;
	struct hie_http_config cfg = tls_cfg(p, 0);
	srv_start(&x, &cfg);
	http_do(x.port, &(struct req_opts){.path = "/whoami", .tls = 1}, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(hie_buf_str(&r.body), "anonymous tls=1\n");
	res_free(&r);
	/* plain HTTP to the TLS port gets nothing useful */
	http_do(x.port, &(struct req_opts){.path = "/whoami"}, &r);
	assert_int_not_equal(r.status, 200);
	res_free(&r);
	/* a client that does not trust the server's CA refuses it (libcurl verifies) */
	CURL *c = curl_easy_init();
	char url[128];
	char rogue[300];
	path_of(rogue, sizeof rogue, "rogue.pem");
	snprintf(url, sizeof url, "https://127.0.0.1:%u/whoami", (unsigned)x.port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, rogue);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	struct hie_buf sink;
	hie_buf_init(&sink, 1 << 16);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	assert_int_not_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	hie_buf_free(&sink);
	srv_stop(&x);
}

static void test_mutual_tls(void **state)
{
	char p[3][300];
	struct srv x;
	struct res r;
	struct hie_http_config cfg = tls_cfg(p, 1);
	srv_start(&x, &cfg);

	http_do(x.port, &(struct req_opts){.path = "/whoami", .tls = 1, .cert = "cli.pem", .key = "cli.key"}, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(hie_buf_str(&r.body), "/O=Partner HIE/CN=partner-a tls=1\n");
	res_free(&r);

	static const struct {
		const char *what, *cert, *key;
	} refused[] = {
		{"no certificate", NULL, NULL},
		{"certificate from an untrusted CA", "intruder.pem", "intruder.key"},
		{"trusted CA, but a server-only certificate", "wrong.pem", "wrong.key"},
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		atomic_store(&g_handler_calls, 0);
		http_do(x.port,
			&(struct req_opts){.path = "/whoami", .tls = 1, .cert = refused[i].cert, .key = refused[i].key},
			&r);
		if (r.status == 200 || atomic_load(&g_handler_calls) != 0)
			fail_msg("%s: got status %ld, handler calls %d", refused[i].what, r.status,
				 atomic_load(&g_handler_calls));
		assert_true(r.rc != CURLE_OK || r.status == 403);
		res_free(&r);
		/* and not on any other route either, not even a 404 for an unknown one */
		http_do(x.port,
			&(struct req_opts){.path = "/no-such", .tls = 1, .cert = refused[i].cert, .key = refused[i].key},
			&r);
		assert_true(r.rc != CURLE_OK || r.status == 403);
		res_free(&r);
	}
	srv_stop(&x);

	/* optional mode: no certificate passes anonymously, a bad one is still refused */
	cfg.tls_client_cert_optional = 1;
	srv_start(&x, &cfg);
	http_do(x.port, &(struct req_opts){.path = "/whoami", .tls = 1}, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(hie_buf_str(&r.body), "anonymous tls=1\n");
	res_free(&r);
	http_do(x.port, &(struct req_opts){.path = "/whoami", .tls = 1, .cert = "intruder.pem", .key = "intruder.key"},
		&r);
	assert_true(r.rc != CURLE_OK || r.status == 403);
	res_free(&r);
	srv_stop(&x);
}

static int setup_certs(void **state)
{
	snprintf(g_dir, sizeof g_dir, "/tmp/hienode_http_test.XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	return make_certs();
}

static int teardown_certs(void **state)
{
	sh("rm -rf '%s'", g_dir);
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	hie_buf_init(&log_text, 64u << 20);
	hie_log_set_sink(log_sink);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_hostile_requests),
		cmocka_unit_test(test_request_accessors),
		cmocka_unit_test(test_body_caps),
		cmocka_unit_test(test_chunked_flood),
		cmocka_unit_test(test_zero_copy),
		cmocka_unit_test(test_slow_clients_cut),
		cmocka_unit_test(test_many_concurrent),
		cmocka_unit_test(test_metrics_and_health),
		cmocka_unit_test(test_graceful_stop),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_mutual_tls),
	};
	int rc = cmocka_run_group_tests(tests, setup_certs, teardown_certs);
	if (getenv("HTTP_TEST_DEBUG"))
		fputs(hie_buf_str(&log_text), stderr);
	hie_log_set_sink(NULL);
	hie_buf_free(&log_text);
	curl_global_cleanup();
	return rc;
}
