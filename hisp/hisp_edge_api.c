/*
 * hisp_edge_api.c — the mailbox API for EHRs that pull (issue 5): HTTPS JSON under /edge/v1/, HTTP Basic per
 * edge user (hisp_user_login, rate-limited per client address), a user sees only the mailboxes of the
 * addresses granted to it (anything else is 404, so existence is not revealed).
 *
 *   GET  /edge/v1/messages[?address=A][&after=ID][&limit=1..500][&all=1]
 *        → {"address"?, "messages":[{id, address, kind, received_at, size, message_id, from, subject, acked}],
 *           "next_after": ID}; unacknowledged items oldest first (all=1: acknowledged ones too); without
 *           address every address granted to the user
 *   GET  /edge/v1/messages/ID[?content=0]
 *        → {id, address, kind, message_id, received_at, size, acked, headers, parts, xdm} (hisp_edge_json.c)
 *   GET  /edge/v1/messages/ID/raw → the stored message, message/rfc822
 *   POST /edge/v1/messages/ID/ack → {"id", "acked": true, "mdn": "dispatched"|"none"} (idempotent)
 *
 * Errors are JSON {"error": "..."}: 400 bad query argument, 401 (with WWW-Authenticate) no or wrong
 * credentials, 403 plain HTTP when [edge] require_tls, 404 unknown / not granted / not an API path, 405 wrong
 * method (with Allow), 429 (with Retry-After) client locked out after failed logins, 503 database trouble.
 * Logs carry request and mailbox ids only, never content, subjects or addresses.
 *
 * Entry points: hisp_edge_http (the route handler, ctx = struct hisp *), hisp_edge_ack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core_db.h"
#include "core/core_http.h"
#include "core/core_log.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_edge_api_int.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"

#define JSON_TYPE "application/json; charset=utf-8"
#define LIST_DEFAULT 100
#define LIST_MAX 500
#define HEAD_BYTES 32768          /* enough of each message for From and Subject in the list */
#define MSG_CAP_DEFAULT (64u << 20)

/* One authenticated request. */
struct api {
	struct hisp *h;
	const struct hie_http_req *req;
	struct hie_http_resp *resp;
	char user[HISP_USER_MAX + 1];
};

/* --- responses ------------------------------------------------------------------------------------------ */

/* Sends root (reference taken) as the JSON body with status. */
static hie_err_t reply_json(struct hie_http_resp *resp, int status, json_t *root)
{
	char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (!s)
		return HIE_ENOMEM;
	resp->status = status;
	resp->content_type = JSON_TYPE;
	resp->zc_data = s;
	resp->zc_len = strlen(s);
	resp->zc_free = free;
	return HIE_OK;
}

static hie_err_t reply_error(struct hie_http_resp *resp, int status, const char *msg)
{
	return reply_json(resp, status, json_pack("{s:s}", "error", msg));
}

/* Database trouble or a bug: 503 for what a retry may cure, 500 for the rest. */
static hie_err_t reply_failure(struct api *a, hie_err_t err)
{
	if (err == HIE_ENOMEM)
		return err;
	hie_log(HIE_LOG_WARN, "event=edge.error req=%s err=%s", a->req->id, hie_errname(err));
	if (err == HIE_EDB || err == HIE_EBUSY || err == HIE_ETIMEOUT)
		return reply_error(a->resp, 503, "service unavailable, retry later");
	return reply_error(a->resp, 500, "internal error");
}

static hie_err_t reply_method(struct hie_http_resp *resp, const char *allow)
{
	hie_err_t err = hie_http_resp_header(resp, "Allow", allow);
	return err ? err : reply_error(resp, 405, "method not allowed");
}

static hie_err_t reply_unauthorized(struct hie_http_resp *resp, const char *msg)
{
	hie_err_t err = hie_http_resp_header(resp, "WWW-Authenticate", "Basic realm=\"hienode edge\", charset=\"UTF-8\"");
	return err ? err : reply_error(resp, 401, msg);
}

/* --- arguments ------------------------------------------------------------------------------------------ */

/* A decimal integer in [min, max], digits only (no sign, no blanks). */
static bool parse_num(const char *s, size_t n, long long min, long long max, long long *out)
{
	long long v = 0;
	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool query_num(const struct hie_http_req *req, const char *name, long long min, long long max, long long dflt,
		      long long *out)
{
	const char *v = hie_http_req_query(req, name);
	if (!v) {
		*out = dflt;
		return true;
	}
	return parse_num(v, strlen(v), min, max, out);
}

/* --- authentication --------------------------------------------------------------------------------------- */

/* HIE_OK with a->user set; otherwise the response is filled (401, 429, 503) and *done is set. */
static hie_err_t authenticate(struct api *a, bool *done)
{
	char name[HISP_USER_MAX + 1], pass[HISP_PASSWORD_MAX + 1];
	const char *hdr = hie_http_req_header(a->req, "Authorization");
	*done = true;
	if (!hdr)
		return reply_unauthorized(a->resp, "authentication required");
	if (hisp_basic_auth_parse(hdr, name, sizeof name, pass, sizeof pass) != HIE_OK)
		return reply_unauthorized(a->resp, "bad credentials");
	hie_err_t err = hisp_user_login(a->h, a->req->remote_addr, name, pass, a->user, sizeof a->user);
	explicit_bzero(pass, sizeof pass);
	switch (err) {
	case HIE_OK:
		*done = false;
		return HIE_OK;
	case HIE_EDENIED:
		hie_log(HIE_LOG_NOTICE, "event=edge.auth req=%s status=denied peer=%s", a->req->id, a->req->remote_addr);
		return reply_unauthorized(a->resp, "bad credentials");
	case HIE_EBUSY: {
		char secs[24];
		long long s = (a->h->auth_lockout_ms + 999) / 1000;
		snprintf(secs, sizeof secs, "%lld", s > 0 ? s : 1);
		hie_log(HIE_LOG_NOTICE, "event=edge.auth req=%s status=locked peer=%s", a->req->id, a->req->remote_addr);
		err = hie_http_resp_header(a->resp, "Retry-After", secs);
		return err ? err : reply_error(a->resp, 429, "too many failed logins, retry later");
	}
	default:
		return reply_failure(a, err);
	}
}

/* --- data access ------------------------------------------------------------------------------------------ */

/* The address owning mailbox item id when the user may read it; HIE_ENOTFOUND otherwise (either way). */
static hie_err_t item_address(PGconn *conn, const char *user, long long id, char *addr, size_t addrlen)
{
	char ids[24];
	PGresult *r = NULL;
	bool ok = false;
	snprintf(ids, sizeof ids, "%lld", id);
	const char *p[] = {ids};
	hie_err_t err = hie_db_exec(conn, "SELECT address FROM hisp_mailbox WHERE id = $1::bigint", 1, p, &r);
	if (err)
		return err;
	if (PQntuples(r) != 1 || (size_t)PQgetlength(r, 0, 0) >= addrlen) {
		PQclear(r);
		return HIE_ENOTFOUND;
	}
	snprintf(addr, addrlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	err = hisp_user_may_use(conn, user, addr, &ok);
	if (!err && !ok)
		err = HIE_ENOTFOUND;
	return err;
}

#define LIST_COLS                                                                                                  \
	"SELECT id::text, address, kind,"                                                                          \
	" to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"                             \
	" octet_length(content)::text, coalesce(message_id, ''), (acked_at IS NOT NULL)::text,"                    \
	" substring(content from 1 for " STR(HEAD_BYTES) ") FROM hisp_mailbox"
#define STR_(x) #x
#define STR(x) STR_(x)
#define LIST_TAIL " AND id > $2::bigint AND ($3::boolean OR acked_at IS NULL) ORDER BY id LIMIT $4::bigint"

static const char list_one_sql[] = LIST_COLS " WHERE address = $1" LIST_TAIL;
static const char list_all_sql[] = LIST_COLS " WHERE address IN (SELECT ua.address FROM hisp_user_addresses ua"
					     " JOIN hisp_users u ON u.name = ua.name WHERE ua.name = $1 AND NOT u.disabled)"
					     LIST_TAIL;

static json_t *list_item(const PGresult *r, int i)
{
	long long id = 0, size = 0;
	json_t *o = json_object();
	parse_num(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), 0, 999999999999999999LL, &id);
	parse_num(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4), 0, 999999999999999999LL, &size);
	bool ok = o && json_object_set_new(o, "id", json_integer(id)) == 0 &&
		  json_object_set_new(o, "address", hisp_edge_jtext(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1))) ==
			  0 &&
		  json_object_set_new(o, "kind", json_string(PQgetvalue(r, i, 2))) == 0 &&
		  json_object_set_new(o, "received_at", json_string(PQgetvalue(r, i, 3))) == 0 &&
		  json_object_set_new(o, "size", json_integer(size)) == 0 &&
		  json_object_set_new(o, "message_id",
				      hisp_edge_jtext(PQgetvalue(r, i, 5), (size_t)PQgetlength(r, i, 5))) == 0 &&
		  hisp_edge_json_summary(PQgetvalue(r, i, 7), (size_t)PQgetlength(r, i, 7), o) == HIE_OK &&
		  json_object_set_new(o, "acked", json_boolean(strcmp(PQgetvalue(r, i, 6), "true") == 0)) == 0;
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* --- endpoints ---------------------------------------------------------------------------------------------- */

static hie_err_t do_list(struct api *a)
{
	char addr[256] = "", after_s[24], lim_s[24];
	long long after, limit, all, next;
	PGconn *conn = NULL;
	PGresult *r = NULL;
	json_t *root = NULL, *arr = NULL;
	bool ok = false;
	const char *addr_q = hie_http_req_query(a->req, "address");
	if (!query_num(a->req, "after", 0, 999999999999999999LL, 0, &after))
		return reply_error(a->resp, 400, "after: expected a message id");
	if (!query_num(a->req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit))
		return reply_error(a->resp, 400, "limit: expected 1..500");
	if (!query_num(a->req, "all", 0, 1, 0, &all))
		return reply_error(a->resp, 400, "all: expected 0 or 1");
	if (addr_q && hisp_addr_normalize(addr_q, false, addr, sizeof addr) != HIE_OK)
		return reply_error(a->resp, 404, "no such mailbox");
	snprintf(after_s, sizeof after_s, "%lld", after);
	snprintf(lim_s, sizeof lim_s, "%lld", limit);
	hie_err_t err = hie_db_acquire(a->h->pool, -1, &conn);
	if (err)
		return reply_failure(a, err);
	if (addr_q) {
		err = hisp_user_may_use(conn, a->user, addr, &ok);
		if (!err && !ok) {
			err = reply_error(a->resp, 404, "no such mailbox");
			goto out;
		}
	}
	if (!err) {
		const char *p[] = {addr_q ? addr : a->user, after_s, all ? "true" : "false", lim_s};
		/* Binary results: the content head as raw bytes; the text columns are their bytes as they are. */
		err = hie_db_exec_bin(conn, addr_q ? list_one_sql : list_all_sql, 4, p, NULL, NULL, 1, &r);
	}
	if (err) {
		hie_db_release(a->h->pool, conn, err == HIE_EDB);
		conn = NULL;
		err = reply_failure(a, err);
		goto out;
	}
	hie_db_release(a->h->pool, conn, false);
	conn = NULL;
	next = after;
	root = json_object();
	arr = json_array();
	ok = root && arr && (!addr_q || json_object_set_new(root, "address", json_string(addr)) == 0);
	for (int i = 0; ok && i < PQntuples(r); i++) {
		ok = json_array_append_new(arr, list_item(r, i)) == 0;
		parse_num(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), 0, 999999999999999999LL, &next);
	}
	ok = ok && json_object_set(root, "messages", arr) == 0 &&
	     json_object_set_new(root, "next_after", json_integer(next)) == 0;
	if (ok) {
		err = reply_json(a->resp, 200, root);
		root = NULL;
	} else
		err = HIE_ENOMEM;
out:
	PQclear(r);
	json_decref(arr);
	json_decref(root);
	if (conn)
		hie_db_release(a->h->pool, conn, false);
	return err;
}

static size_t msg_cap(const struct hisp *h)
{
	return h->max_message ? h->max_message + (1u << 20) : MSG_CAP_DEFAULT;
}

/* The item's bytes and metadata when the user may read it: HIE_ENOTFOUND otherwise. */
static hie_err_t load_item(struct api *a, long long id, char *addr, size_t addrlen, struct hie_buf *out,
			   struct hisp_mailbox_item *meta)
{
	PGconn *conn = NULL;
	hie_err_t err = hie_db_acquire(a->h->pool, -1, &conn);
	if (err)
		return err;
	err = item_address(conn, a->user, id, addr, addrlen);
	if (!err)
		err = hisp_mailbox_get(conn, addr, id, out, meta);
	hie_db_release(a->h->pool, conn, err == HIE_EDB);
	return err;
}

static hie_err_t do_fetch(struct api *a, long long id)
{
	char addr[256];
	struct hisp_mailbox_item meta;
	struct hie_buf b;
	const char *cq = hie_http_req_query(a->req, "content");
	bool content = !(cq && strcmp(cq, "0") == 0);
	hie_buf_init(&b, msg_cap(a->h));
	hie_err_t err = load_item(a, id, addr, sizeof addr, &b, &meta);
	if (err == HIE_ENOTFOUND)
		err = reply_error(a->resp, 404, "no such message");
	else if (err)
		err = reply_failure(a, err);
	else {
		json_t *o = json_object();
		bool ok = o && json_object_set_new(o, "id", json_integer(meta.id)) == 0 &&
			  json_object_set_new(o, "address", json_string(addr)) == 0 &&
			  json_object_set_new(o, "kind", json_string(meta.kind)) == 0 &&
			  json_object_set_new(o, "message_id", hisp_edge_jtext(meta.message_id, strlen(meta.message_id))) ==
				  0 &&
			  json_object_set_new(o, "received_at", json_string(meta.received_at)) == 0 &&
			  json_object_set_new(o, "size", json_integer(meta.size)) == 0 &&
			  json_object_set_new(o, "acked", json_boolean(meta.acked)) == 0;
		const char *msg = b.len ? b.data : "";
		err = ok ? hisp_edge_json_message(msg, b.len, msg_cap(a->h), content, o) : HIE_ENOMEM;
		if (!err)
			err = reply_json(a->resp, 200, o);
		else
			json_decref(o);
	}
	hie_buf_free(&b);
	return err;
}

static hie_err_t do_raw(struct api *a, long long id)
{
	char addr[256];
	struct hie_buf b;
	hie_buf_init(&b, msg_cap(a->h));
	hie_err_t err = load_item(a, id, addr, sizeof addr, &b, NULL);
	if (err == HIE_ENOTFOUND)
		err = reply_error(a->resp, 404, "no such message");
	else if (err)
		err = reply_failure(a, err);
	else {
		size_t len = 0;
		char *data = hie_buf_steal(&b, &len);
		a->resp->status = 200;
		a->resp->content_type = "message/rfc822";
		a->resp->zc_data = data;
		a->resp->zc_len = data ? len : 0;
		a->resp->zc_free = free;
	}
	hie_buf_free(&b);
	return err;
}

struct ack_arg {
	struct api *a;
	long long id;
	bool mdn;
};

static hie_err_t ack_tx(PGconn *tx, void *arg)
{
	struct ack_arg *k = arg;
	char addr[256];
	k->mdn = false;
	hie_err_t err = item_address(tx, k->a->user, k->id, addr, sizeof addr);
	if (!err)
		err = hisp_edge_ack(k->a->h, tx, addr, k->id, &k->mdn);
	return err;
}

static hie_err_t do_ack(struct api *a, long long id)
{
	struct ack_arg k = {.a = a, .id = id};
	hie_err_t err = hie_db_tx(a->h->pool, ack_tx, &k);
	if (err == HIE_ENOTFOUND)
		return reply_error(a->resp, 404, "no such message");
	if (err)
		return reply_failure(a, err);
	hisp_wake(a->h);
	hie_log(HIE_LOG_INFO, "event=edge.ack req=%s mailbox_id=%lld mdn=%s", a->req->id, id,
		k.mdn ? "dispatched" : "none");
	return reply_json(a->resp, 200,
			  json_pack("{s:I,s:b,s:s}", "id", (json_int_t)id, "acked", 1, "mdn", k.mdn ? "dispatched" : "none"));
}

/* messages/ID[/raw|/ack] */
static hie_err_t route_item(struct api *a, const char *rest, bool get)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *tail = slash ? slash + 1 : NULL;
	long long id;
	if (!parse_num(rest, n, 1, 999999999999999999LL, &id))
		return reply_error(a->resp, 404, "no such message");
	if (!tail)
		return get ? do_fetch(a, id) : reply_method(a->resp, "GET, HEAD");
	if (strcmp(tail, "raw") == 0)
		return get ? do_raw(a, id) : reply_method(a->resp, "GET, HEAD");
	if (strcmp(tail, "ack") == 0)
		return get ? reply_method(a->resp, "POST") : do_ack(a, id);
	return reply_error(a->resp, 404, "not found");
}

hie_err_t hisp_edge_http(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	struct api a = {.h = ctx, .req = req, .resp = resp};
	bool done = false;
	if (!a.h || !req || !resp)
		return HIE_EINVAL;
	if (a.h->edge_require_tls && !req->tls)
		return reply_error(resp, 403, "https required");
	hie_err_t err = authenticate(&a, &done);
	if (err || done)
		return err;
	bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
	bool post = strcmp(req->method, "POST") == 0;
	size_t plen = strlen(HISP_EDGE_PREFIX);
	const char *rest = strncmp(req->path, HISP_EDGE_PREFIX, plen) == 0 ? req->path + plen : "";
	if (!get && !post)
		return reply_method(resp, "GET, HEAD, POST");
	if (strcmp(rest, "messages") == 0)
		return get ? do_list(&a) : reply_method(resp, "GET, HEAD");
	if (strncmp(rest, "messages/", 9) == 0)
		return route_item(&a, rest + 9, get);
	return reply_error(resp, 404, "not found");
}

/* --- acknowledgement (also used by forwarding) ---------------------------------------------------------------- */

hie_err_t hisp_edge_ack(struct hisp *h, PGconn *tx, const char *address, long long id, bool *mdn)
{
	char mdnid[320];
	PGresult *r = NULL;
	if (mdn)
		*mdn = false;
	if (!h || !tx || !address || id <= 0)
		return HIE_EINVAL;
	hie_err_t err = hisp_mailbox_ack(tx, address, id);
	if (err == HIE_EINVAL)
		err = HIE_ENOTFOUND; /* an address that cannot have a mailbox */
	if (!err)
		err = hisp_mdn_dispatched(h, tx, id); /* idempotent: the MDN's Message-ID is fixed per item */
	if (err || !mdn)
		return err;
	/* Whether this item's dispatched MDN is queued (now or by an earlier ack). */
	hisp_mdn_final_id(h, "dispatched", id, mdnid, sizeof mdnid);
	const char *p[] = {mdnid};
	err = hie_db_exec(tx, "SELECT 1 FROM hisp_outbound WHERE kind = 'mdn' AND message_id = $1", 1, p, &r);
	if (!err)
		*mdn = PQntuples(r) == 1;
	PQclear(r);
	return err;
}
