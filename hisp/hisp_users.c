/*
 * hisp_users.c — edge users (issue 5): who may submit over SMTP, read a mailbox through the API or post XDR.
 *
 * Entry points (hisp_edge.h): hisp_user_add, hisp_user_password, hisp_user_remove, hisp_user_grant,
 * hisp_user_revoke, hisp_user_may_use (in the caller's transaction or on a connection), hisp_user_login (on
 * the service's pool), hisp_auth_limit_reset, hisp_basic_auth_parse.
 *
 * Passwords: libsodium crypto_pwhash_str (Argon2id, salted, OPSLIMIT/MEMLIMIT_INTERACTIVE: 64 MiB each), so a
 * stolen table costs an attacker that much per guess. Hashing and verifying are limited to VERIFY_SLOTS at a
 * time process-wide (a burst of logins must not take gigabytes). An unknown or disabled user verifies a
 * dummy hash: the reply takes as long as for a wrong password (no user enumeration by timing).
 *
 * Verified credentials are remembered for CACHE_TTL_MS (CACHE_SLOTS entries) as a keyed BLAKE2b tag of the
 * stored hash and the password, under a key drawn at start: an EHR polling the mailbox API every few seconds
 * costs one Argon2id per five minutes, not one per request. The tag covers the stored hash, so a password
 * change, a removed or disabled user (no hash looked up) misses at once; nothing reversible is kept.
 *
 * Failed logins are counted per client address in a bounded in-memory table (LIMIT_SLOTS entries, the least
 * recently seen one evicted): after [edge] auth_max_failures failures within [edge] auth_lockout the address
 * gets HIE_EBUSY without a password check until the lockout ends. Per process: N nodes allow N times as many
 * guesses, which the lockout still keeps to a handful per quarter hour.
 *
 * Errors: HIE_EINVAL (bad name, address or password), HIE_EEXIST, HIE_ENOTFOUND, HIE_EDENIED (login),
 * HIE_EBUSY (locked out), HIE_ENOMEM (hashing), database errors as core_db maps them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core/core_log.h"
#include "core/core_mime.h"
#include "core/core_time.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_smtp_in.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"

#define VERIFY_SLOTS 2
#define LIMIT_SLOTS 4096
#define PEER_MAX 64
#define ACQUIRE_MS 5000
#define CACHE_SLOTS 256
#define CACHE_TTL_MS (5 * 60 * 1000LL)

/* --- libsodium, the verification slots ------------------------------------------------------------------ */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool sodium_ok;
static char dummy_hash[crypto_pwhash_STRBYTES];
static unsigned char cache_key[crypto_generichash_KEYBYTES]; /* verified-credentials cache key */

static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_cv = PTHREAD_COND_INITIALIZER;
static int slots_busy;

static void init_once(void)
{
	if (sodium_init() < 0)
		return;
	randombytes_buf(cache_key, sizeof cache_key);
	/* A hash of a random password nobody knows, verified for unknown users. */
	unsigned char pw[32];
	char hex[sizeof pw * 2 + 1];
	randombytes_buf(pw, sizeof pw);
	sodium_bin2hex(hex, sizeof hex, pw, sizeof pw);
	sodium_ok = crypto_pwhash_str(dummy_hash, hex, strlen(hex), crypto_pwhash_OPSLIMIT_INTERACTIVE,
				      crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0;
	sodium_memzero(hex, sizeof hex);
	if (!sodium_ok)
		hie_log(HIE_LOG_ERR, "event=hisp.users error=pwhash_init");
}

/* --- verified credentials ------------------------------------------------------------------------------------ */

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	unsigned char tag[crypto_generichash_BYTES];
	long long until_ms;
} cache[CACHE_SLOTS];

static void cache_tag(const char *hash, const char *password, size_t plen, unsigned char tag[crypto_generichash_BYTES])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, cache_key, sizeof cache_key, crypto_generichash_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)hash, strlen(hash) + 1);
	crypto_generichash_update(&st, (const unsigned char *)password, plen);
	crypto_generichash_final(&st, tag, crypto_generichash_BYTES);
}

/* True when tag was verified within CACHE_TTL_MS. */
static bool cache_hit(const unsigned char *tag)
{
	long long now = hie_mono_ms();
	bool hit = false;
	pthread_mutex_lock(&cache_mu);
	for (size_t i = 0; i < CACHE_SLOTS && !hit; i++)
		hit = cache[i].until_ms > now && sodium_memcmp(cache[i].tag, tag, crypto_generichash_BYTES) == 0;
	pthread_mutex_unlock(&cache_mu);
	return hit;
}

/* Remembers tag in an expired slot, else in the one expiring first. */
static void cache_put(const unsigned char *tag)
{
	long long now = hie_mono_ms();
	size_t k = 0;
	pthread_mutex_lock(&cache_mu);
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		if (cache[i].until_ms < cache[k].until_ms)
			k = i;
	memcpy(cache[k].tag, tag, crypto_generichash_BYTES);
	cache[k].until_ms = now + CACHE_TTL_MS;
	pthread_mutex_unlock(&cache_mu);
}

static bool ready(void)
{
	pthread_once(&once, init_once);
	return sodium_ok;
}

static void slot_take(void)
{
	pthread_mutex_lock(&slot_mu);
	while (slots_busy >= VERIFY_SLOTS)
		pthread_cond_wait(&slot_cv, &slot_mu);
	slots_busy++;
	pthread_mutex_unlock(&slot_mu);
}

static void slot_give(void)
{
	pthread_mutex_lock(&slot_mu);
	slots_busy--;
	pthread_cond_signal(&slot_cv);
	pthread_mutex_unlock(&slot_mu);
}

static hie_err_t hash_password(const char *password, char out[crypto_pwhash_STRBYTES])
{
	size_t n = password ? strlen(password) : 0;
	if (n < HISP_PASSWORD_MIN || n > HISP_PASSWORD_MAX)
		return HIE_EINVAL;
	if (!ready())
		return HIE_ENOMEM;
	slot_take();
	int rc = crypto_pwhash_str(out, password, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
				   crypto_pwhash_MEMLIMIT_INTERACTIVE);
	slot_give();
	return rc == 0 ? HIE_OK : HIE_ENOMEM; /* libsodium fails only when it cannot get the memory */
}

/* --- users ------------------------------------------------------------------------------------------------ */

static hie_err_t norm_name(const char *in, char *out, size_t outlen)
{
	if (!in || hisp_addr_normalize(in, false, out, outlen))
		return HIE_EINVAL;
	return HIE_OK;
}

/* Rows a statement returned (SELECT) or changed (INSERT, UPDATE, DELETE). */
static int count_rows(PGresult *r)
{
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return PQntuples(r);
	char *end;
	long v = strtol(PQcmdTuples(r), &end, 10);
	return end == PQcmdTuples(r) || v < 0 || v > 1000000000 ? 0 : (int)v;
}

static hie_err_t rows_affected(PGconn *tx, const char *sql, int n, const char *const *p, int *rows)
{
	PGresult *r = NULL;
	hie_err_t err = hie_db_exec(tx, sql, n, p, &r);
	if (!err)
		*rows = count_rows(r);
	PQclear(r);
	return err;
}

hie_err_t hisp_user_add(PGconn *tx, const char *name, const char *password)
{
	char n[HISP_USER_MAX + 1], hash[crypto_pwhash_STRBYTES];
	int rows = 0;
	hie_err_t err = norm_name(name, n, sizeof n);
	if (!err)
		err = hash_password(password, hash);
	if (err)
		return err;
	const char *p[] = {n, hash};
	err = rows_affected(tx, "INSERT INTO hisp_users (name, pw_hash) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
			    2, p, &rows);
	if (!err && rows == 0)
		err = HIE_EEXIST;
	if (!err)
		err = rows_affected(tx,
				    "INSERT INTO hisp_user_addresses (name, address) VALUES ($1, $1)"
				    " ON CONFLICT DO NOTHING",
				    1, p, &rows);
	sodium_memzero(hash, sizeof hash);
	return err;
}

hie_err_t hisp_user_password(PGconn *tx, const char *name, const char *password)
{
	char n[HISP_USER_MAX + 1], hash[crypto_pwhash_STRBYTES];
	int rows = 0;
	hie_err_t err = norm_name(name, n, sizeof n);
	if (!err)
		err = hash_password(password, hash);
	if (err)
		return err;
	const char *p[] = {n, hash};
	err = rows_affected(tx, "UPDATE hisp_users SET pw_hash = $2, updated_at = now() WHERE name = $1", 2, p, &rows);
	sodium_memzero(hash, sizeof hash);
	return !err && rows == 0 ? HIE_ENOTFOUND : err;
}

hie_err_t hisp_user_remove(PGconn *tx, const char *name)
{
	char n[HISP_USER_MAX + 1];
	int rows = 0;
	hie_err_t err = norm_name(name, n, sizeof n);
	if (err)
		return err;
	const char *p[] = {n};
	err = rows_affected(tx, "DELETE FROM hisp_users WHERE name = $1", 1, p, &rows);
	return !err && rows == 0 ? HIE_ENOTFOUND : err;
}

static hie_err_t grant_sql(PGconn *tx, const char *name, const char *address, const char *sql)
{
	char n[HISP_USER_MAX + 1], a[HISP_USER_MAX + 1];
	int rows = 0;
	if (norm_name(name, n, sizeof n) || norm_name(address, a, sizeof a))
		return HIE_EINVAL;
	const char *p[] = {n, a};
	/* FOR SHARE: a concurrent remove of the user cannot slip between the check and the change. */
	hie_err_t err = rows_affected(tx, "SELECT 1 FROM hisp_users WHERE name = $1 FOR SHARE", 1, p, &rows);
	if (!err && rows == 0)
		return HIE_ENOTFOUND;
	if (!err)
		err = rows_affected(tx, sql, 2, p, &rows);
	return err;
}

hie_err_t hisp_user_grant(PGconn *tx, const char *name, const char *address)
{
	return grant_sql(tx, name, address,
			 "INSERT INTO hisp_user_addresses (name, address) VALUES ($1, $2) ON CONFLICT DO NOTHING");
}

hie_err_t hisp_user_revoke(PGconn *tx, const char *name, const char *address)
{
	return grant_sql(tx, name, address, "DELETE FROM hisp_user_addresses WHERE name = $1 AND address = $2");
}

hie_err_t hisp_user_may_use(PGconn *conn, const char *name, const char *address, bool *ok)
{
	char n[HISP_USER_MAX + 1], a[HISP_USER_MAX + 1];
	int rows = 0;
	if (!ok)
		return HIE_EINVAL;
	*ok = false;
	if (norm_name(name, n, sizeof n) || norm_name(address, a, sizeof a))
		return HIE_OK; /* not an address: granted to nobody */
	const char *p[] = {n, a};
	hie_err_t err = rows_affected(conn,
				      "SELECT 1 FROM hisp_users u JOIN hisp_user_addresses g ON g.name = u.name"
				      " WHERE u.name = $1 AND g.address = $2 AND NOT u.disabled",
				      2, p, &rows);
	if (!err)
		*ok = rows > 0;
	return err;
}

/* --- failed logins per client address ---------------------------------------------------------------------- */

struct limit_entry {
	char peer[PEER_MAX];     /* "" = free */
	int failures;
	int64_t first_ms;        /* first failure of the current window */
	int64_t locked_until_ms; /* 0 = not locked */
	int64_t seen_ms;
};

static pthread_mutex_t limit_mu = PTHREAD_MUTEX_INITIALIZER;
static struct limit_entry *limits; /* LIMIT_SLOTS entries, allocated on first use */

/* The entry of peer (create: a free or the least recently seen one); NULL when none. Under limit_mu. */
static struct limit_entry *limit_find(const char *peer, bool create, int64_t now)
{
	if (!limits) {
		if (!create)
			return NULL;
		limits = calloc(LIMIT_SLOTS, sizeof *limits);
		if (!limits)
			return NULL;
	}
	struct limit_entry *oldest = &limits[0];
	for (size_t i = 0; i < LIMIT_SLOTS; i++) {
		struct limit_entry *e = &limits[i];
		if (e->peer[0] && strcmp(e->peer, peer) == 0)
			return e;
		if (!e->peer[0] ? oldest->peer[0] != '\0' : (oldest->peer[0] && e->seen_ms < oldest->seen_ms))
			oldest = e;
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	snprintf(oldest->peer, sizeof oldest->peer, "%s", peer);
	oldest->seen_ms = now;
	return oldest;
}

static bool limit_locked(const char *peer)
{
	int64_t now = hie_mono_ms();
	pthread_mutex_lock(&limit_mu);
	struct limit_entry *e = limit_find(peer, false, now);
	bool locked = e && e->locked_until_ms > now;
	if (e && e->locked_until_ms && e->locked_until_ms <= now)
		memset(e, 0, sizeof *e); /* the lockout is over: a fresh start */
	pthread_mutex_unlock(&limit_mu);
	return locked;
}

static void limit_fail(const struct hisp *h, const char *peer)
{
	int64_t now = hie_mono_ms();
	int max = h->auth_max_failures > 0 ? h->auth_max_failures : 5;
	int64_t window = h->auth_lockout_ms > 0 ? h->auth_lockout_ms : 15 * 60 * 1000;
	bool locked = false;
	pthread_mutex_lock(&limit_mu);
	struct limit_entry *e = limit_find(peer, true, now);
	if (e) {
		if (e->failures == 0 || now - e->first_ms > window) {
			e->failures = 0;
			e->first_ms = now;
		}
		e->seen_ms = now;
		if (++e->failures >= max && !e->locked_until_ms) {
			e->locked_until_ms = now + window;
			locked = true;
		}
	}
	pthread_mutex_unlock(&limit_mu);
	if (locked)
		hie_log(HIE_LOG_WARN, "event=edge.auth_lockout client=%s failures=%d lockout_ms=%lld", peer, max,
			(long long)window);
}

static void limit_ok(const char *peer)
{
	pthread_mutex_lock(&limit_mu);
	struct limit_entry *e = limit_find(peer, false, 0);
	if (e)
		memset(e, 0, sizeof *e);
	pthread_mutex_unlock(&limit_mu);
}

void hisp_auth_limit_reset(void)
{
	pthread_mutex_lock(&limit_mu);
	if (limits)
		memset(limits, 0, LIMIT_SLOTS * sizeof *limits);
	pthread_mutex_unlock(&limit_mu);
}

/* --- login ----------------------------------------------------------------------------------------------------- */

/* The user's hash into hash ("" when unknown or disabled). */
static hie_err_t lookup(struct hisp *h, const char *name, char *hash, size_t hashlen)
{
	PGconn *conn = NULL;
	PGresult *r = NULL;
	hash[0] = '\0';
	hie_err_t err = hie_db_acquire(h->pool, ACQUIRE_MS, &conn);
	if (err)
		return err;
	const char *p[] = {name};
	err = hie_db_exec(conn, "SELECT pw_hash FROM hisp_users WHERE name = $1 AND NOT disabled", 1, p, &r);
	if (!err && PQntuples(r) == 1 && (size_t)PQgetlength(r, 0, 0) < hashlen)
		snprintf(hash, hashlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	hie_db_release(h->pool, conn, err == HIE_EDB);
	return err;
}

hie_err_t hisp_user_login(struct hisp *h, const char *peer, const char *name, const char *password, char *user,
			  size_t userlen)
{
	char n[HISP_USER_MAX + 1], hash[crypto_pwhash_STRBYTES + 1];
	char who[PEER_MAX];
	if (!h || !password || !user || userlen == 0)
		return HIE_EINVAL;
	user[0] = '\0';
	snprintf(who, sizeof who, "%s", peer && peer[0] ? peer : "-");
	if (!ready())
		return HIE_ENOMEM;
	if (limit_locked(who))
		return HIE_EBUSY;
	bool known = norm_name(name, n, sizeof n) == HIE_OK && strlen(n) < userlen;
	hash[0] = '\0';
	if (known) {
		hie_err_t err = lookup(h, n, hash, sizeof hash);
		if (err)
			return err;
	}
	size_t plen = strlen(password);
	bool real = known && hash[0] != '\0';
	unsigned char tag[crypto_generichash_BYTES];
	bool match = false;
	if (real && plen <= HISP_PASSWORD_MAX) {
		cache_tag(hash, password, plen, tag);
		match = cache_hit(tag);
	}
	if (!match) {
		slot_take();
		/* Same work whether or not the user exists: the dummy hash stands in for the missing one. */
		match = crypto_pwhash_str_verify(real ? hash : dummy_hash, password,
						 plen <= HISP_PASSWORD_MAX ? plen : HISP_PASSWORD_MAX) == 0;
		slot_give();
		if (match && real && plen <= HISP_PASSWORD_MAX)
			cache_put(tag);
	}
	sodium_memzero(hash, sizeof hash);
	if (!real || !match || plen > HISP_PASSWORD_MAX) {
		limit_fail(h, who);
		return HIE_EDENIED;
	}
	limit_ok(who);
	snprintf(user, userlen, "%s", n);
	return HIE_OK;
}

/* --- HTTP Basic ------------------------------------------------------------------------------------------------ */

hie_err_t hisp_basic_auth_parse(const char *header, char *name, size_t namelen, char *pass, size_t passlen)
{
	if (!header || !name || !pass || namelen == 0 || passlen == 0)
		return HIE_EINVAL;
	name[0] = pass[0] = '\0';
	const char *p = header;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
		return HIE_EPARSE;
	p += 5;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t len = strlen(p);
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len == 0 || len > 4 * ((HISP_USER_MAX + HISP_PASSWORD_MAX + 1 + 2) / 3))
		return HIE_EPARSE;
	char dec[HISP_USER_MAX + HISP_PASSWORD_MAX + 8];
	size_t n = 0;
	hie_err_t err = hisp_smtp_b64_decode(p, len, dec, sizeof dec, &n);
	if (err) {
		sodium_memzero(dec, sizeof dec);
		return HIE_EPARSE;
	}
	err = HIE_EPARSE;
	char *colon = memchr(dec, ':', n);
	size_t ulen = colon ? (size_t)(colon - dec) : 0, plen = colon ? n - ulen - 1 : 0;
	if (colon && ulen > 0 && ulen < namelen && plen < passlen && !memchr(dec, '\0', n)) {
		bool ctl = false;
		for (size_t i = 0; i < ulen; i++)
			ctl |= (unsigned char)dec[i] < 0x21 || dec[i] == 0x7f;
		if (!ctl) {
			memcpy(name, dec, ulen);
			name[ulen] = '\0';
			memcpy(pass, colon + 1, plen);
			pass[plen] = '\0';
			err = HIE_OK;
		}
	}
	sodium_memzero(dec, sizeof dec);
	return err;
}
