/*
 * hisp_inbox.c — the database side of the SMTP receiver: which RCPT addresses are ours, and the durable
 * store of an accepted message (hisp_inbound row + hisp.receive job in one transaction).
 *
 * Entry points: hisp_inbox_rcpt, hisp_inbox_store (ops of hisp_smtp_in, arg = struct hisp *),
 * hisp_inbox_cache_clear.
 *
 * RCPT answers are cached 5 s (positive and negative) in a small table shared by the process: a client
 * probing many recipients, or a message to many, costs one query per address and not one per RCPT; the
 * operator's `hienode domain add` is visible after at most 5 s. Database errors are answered 451 and not
 * cached. Errors of the store: what hie_db_tx returns (HIE_EDB, HIE_EBUSY, HIE_ETIMEOUT), HIE_EINVAL.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_log.h"
#include "core/core_time.h"
#include "hisp/hisp_smtp_in.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"

#define CACHE_SLOTS 256
#define CACHE_MS 5000

struct rcpt_slot {
	const void *owner; /* the struct hisp the answer came from */
	int64_t at_ms;     /* 0 = empty */
	int answer;
	char addr[HISP_SMTP_ADDR_MAX + 1];
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rcpt_slot cache[CACHE_SLOTS];

/* FNV-1a of the address: the slot; a collision just replaces the older answer. */
static size_t slot_of(const char *addr)
{
	unsigned long long h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % CACHE_SLOTS);
}

static int cache_get(const void *owner, const char *addr)
{
	int answer = 0;
	int64_t now = hie_mono_ms();
	struct rcpt_slot *e = &cache[slot_of(addr)];
	pthread_mutex_lock(&cache_mu);
	if (e->at_ms && e->owner == owner && now - e->at_ms < CACHE_MS && strcmp(e->addr, addr) == 0)
		answer = e->answer;
	pthread_mutex_unlock(&cache_mu);
	return answer;
}

static void cache_put(const void *owner, const char *addr, int answer)
{
	struct rcpt_slot *e = &cache[slot_of(addr)];
	pthread_mutex_lock(&cache_mu);
	e->owner = owner;
	e->at_ms = hie_mono_ms();
	e->answer = answer;
	snprintf(e->addr, sizeof e->addr, "%s", addr);
	pthread_mutex_unlock(&cache_mu);
}

void hisp_inbox_cache_clear(void)
{
	pthread_mutex_lock(&cache_mu);
	memset(cache, 0, sizeof cache);
	pthread_mutex_unlock(&cache_mu);
}

/* An address of ours, or one we hold a private key for (address-bound, or org-bound on one of our domains). */
static const char rcpt_sql[] =
	"SELECT EXISTS (SELECT 1 FROM hisp_addresses WHERE address = $1)"
	" OR EXISTS (SELECT 1 FROM hisp_certs WHERE key_file IS NOT NULL AND owner = $1)"
	" OR EXISTS (SELECT 1 FROM hisp_certs c JOIN hisp_domains d ON d.name = c.owner"
	"            WHERE c.key_file IS NOT NULL AND c.bound = 'domain' AND c.owner = $2)";

int hisp_inbox_rcpt(void *arg, const char *address)
{
	struct hisp *h = arg;
	char addr[HISP_SMTP_ADDR_MAX + 1];
	PGconn *conn = NULL;
	PGresult *res = NULL;

	if (!h || !h->pool || !address)
		return 451;
	if (hisp_addr_normalize(address, false, addr, sizeof addr))
		return 550;
	int answer = cache_get(h, addr);
	if (answer)
		return answer;
	hie_err_t err = hie_db_acquire(h->pool, -1, &conn);
	if (err)
		goto out;
	const char *params[] = {addr, hisp_addr_domain(addr)};
	err = hie_db_exec(conn, rcpt_sql, 2, params, &res);
	if (err)
		goto out;
	answer = (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0) ? 250 : 550;
	cache_put(h, addr, answer);
out:
	PQclear(res);
	if (conn)
		hie_db_release(h->pool, conn, false);
	if (err) {
		hie_log(HIE_LOG_WARN, "event=smtp.rcpt_check error=%s", hie_errname(err));
		return 451;
	}
	return answer;
}

/* A text[] literal: every element double-quoted, '"' and '\' escaped. */
static hie_err_t text_array(const char *const *v, size_t n, struct hie_buf *out)
{
	hie_err_t err = hie_buf_addstr(out, "{");
	for (size_t i = 0; !err && i < n; i++) {
		err = hie_buf_addstr(out, i ? ",\"" : "\"");
		for (const char *p = v[i]; !err && *p; p++) {
			if (*p == '"' || *p == '\\')
				err = hie_buf_add(out, "\\", 1);
			if (!err)
				err = hie_buf_add(out, p, 1);
		}
		if (!err)
			err = hie_buf_addstr(out, "\"");
	}
	if (!err)
		err = hie_buf_addstr(out, "}");
	return err;
}

struct store_ctx {
	const struct hisp_envelope *env;
	const char *rcpts; /* text[] literal */
	const char *data;
	size_t len;
	long long id;
};

static hie_err_t store_tx(PGconn *tx, void *arg)
{
	struct store_ctx *sc = arg;
	PGresult *res = NULL;
	char payload[32], dedup[48];
	const char *values[] = {sc->env->peer ? sc->env->peer : "", sc->env->helo ? sc->env->helo : "",
				sc->env->mail_from ? sc->env->mail_from : "", sc->rcpts, sc->len ? sc->data : ""};
	const int lengths[] = {0, 0, 0, 0, (int)sc->len};
	const int formats[] = {0, 0, 0, 0, 1};

	hie_err_t err = hie_db_exec_bin(tx,
					"INSERT INTO hisp_inbound (peer, helo, mail_from, rcpt_to, raw)"
					" VALUES ($1, $2, $3, $4::text[], $5) RETURNING id",
					5, values, lengths, formats, 0, &res);
	if (err)
		goto out;
	err = hie_db_get_ll(res, 0, 0, &sc->id);
	if (err)
		goto out;
	snprintf(payload, sizeof payload, "%lld", sc->id);
	snprintf(dedup, sizeof dedup, "inbound:%lld", sc->id);
	err = hie_jobs_enqueue(tx, "hisp.receive", payload, dedup, 0, NULL);
out:
	PQclear(res);
	return err;
}

hie_err_t hisp_inbox_store(void *arg, const struct hisp_envelope *env, const char *data, size_t len, char *id,
			   size_t idlen)
{
	struct hisp *h = arg;
	struct hie_buf rcpts;
	if (!h || !h->pool || !env || (!data && len) || len > (size_t)INT_MAX || !id || idlen == 0)
		return HIE_EINVAL;
	id[0] = '\0';
	hie_buf_init(&rcpts, (size_t)16 * 1024 * 1024);
	struct store_ctx sc = {.env = env, .data = data, .len = len};
	hie_err_t err = text_array(env->rcpts, env->nrcpts, &rcpts);
	if (err)
		goto out;
	sc.rcpts = hie_buf_str(&rcpts);
	err = hie_db_tx(h->pool, store_tx, &sc);
	if (err)
		goto out;
	hisp_wake(h);
	snprintf(id, idlen, "in-%lld", sc.id);
out:
	hie_buf_free(&rcpts);
	return err;
}
