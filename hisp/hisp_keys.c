/*
 * hisp_keys.c — our keypairs (certificates in hisp_certs with key_file set, private keys under
 * <state_dir>/keys/<sha256-fingerprint>.pem) and the partner certificates stored locally.
 *
 * Entry points: hisp_keys_open/close, hisp_keys_find (our keypairs for an address and a use, from an
 * in-memory cache), hisp_keypairs_free, hisp_keys_partner_certs (read through on each call). Private helpers
 * for the CLI and the trust code: hisp_keys_store_key / hisp_keys_remove_key (atomic key files), hisp_cert_*.
 *
 * The cache is reloaded when `count(*), max(id)` of our rows changed; that check runs at most every 2 s.
 * When the database cannot be asked, the cache in hand is used (a stale answer beats a failed send) and the
 * error is returned only when nothing was ever loaded. Keys are never logged; a key file that cannot be read
 * is logged by its certificate id and that keypair is left out.
 *
 * Errors: HIE_ENOTFOUND (no keypair fits), HIE_EDB / HIE_EBUSY (database), HIE_ENOMEM, HIE_EINVAL (address).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core_log.h"
#include "core/core_time.h"
#include "hisp/hisp_trust_int.h"

#define CHECK_EVERY_MS 2000
#define KEY_FILE_MAX (64 * 1024)

struct keyent {
	long long id;
	char owner[256];
	bool domain_bound;
	unsigned usage; /* bit HISP_USE_SIGN | HISP_USE_ENCRYPT */
	X509 *cert;
	EVP_PKEY *key;
};

struct hisp_keys {
	struct hie_db_pool *pool;
	char keydir[PATH_MAX];
	pthread_mutex_t mu;
	bool loaded;
	int64_t checked_ms;
	long long count, maxid;
	struct keyent *v;
	size_t n;
};

/* --- certificate helpers ------------------------------------------------------------------------------- */

hie_err_t hisp_cert_fingerprint(X509 *x, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (outlen < HISP_FP_LEN + 1 || !X509_digest(x, EVP_sha256(), md, &mdlen) || mdlen != 32)
		return HIE_ETLS;
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * mdlen] = '\0';
	return HIE_OK;
}

static bool asn1_ieq(const ASN1_IA5STRING *s, const char *want)
{
	size_t n = strlen(want);
	if (!s || (size_t)s->length != n || memchr(s->data, 0, (size_t)s->length))
		return false;
	return strncasecmp((const char *)s->data, want, n) == 0;
}

bool hisp_cert_binds(X509 *x, const char *addr_or_domain, bool *domain_bound)
{
	const char *at = strchr(addr_or_domain, '@');
	const char *domain = at ? at + 1 : addr_or_domain;
	bool by_addr = false, by_domain = false;
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_EMAIL && at && asn1_ieq(g->d.rfc822Name, addr_or_domain))
			by_addr = true;
		else if (g->type == GEN_DNS && asn1_ieq(g->d.dNSName, domain))
			by_domain = true;
	}
	GENERAL_NAMES_free(gens);
	if (domain_bound)
		*domain_bound = !by_addr && by_domain;
	return by_addr || by_domain;
}

X509 *hisp_cert_from_buf(const unsigned char *data, size_t len)
{
	if (!data || len == 0 || len > INT_MAX)
		return NULL;
	BIO *b = BIO_new_mem_buf(data, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!x) {
		const unsigned char *p = data;
		x = d2i_X509(NULL, &p, (long)len);
		if (x && p != data + len) { /* trailing bytes: not one DER certificate */
			X509_free(x);
			x = NULL;
		}
	}
	ERR_clear_error();
	return x;
}

void hisp_cert_subject(X509 *x, char *out, size_t outlen)
{
	out[0] = '\0';
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return;
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	size_t k = 0;
	for (long i = 0; i < n && k + 1 < outlen; i++) /* no control bytes or non-ASCII in a terminal line */
		out[k++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
	out[k] = '\0';
	BIO_free(b);
}

void hisp_cert_time(const ASN1_TIME *t, char *out, size_t outlen)
{
	struct tm tm;
	out[0] = '\0';
	if (t && ASN1_TIME_to_tm(t, &tm))
		strftime(out, outlen, "%Y-%m-%d %H:%M:%SZ", &tm);
}

hie_err_t hisp_read_file(const char *path, size_t max, struct hie_buf *out)
{
	hie_buf_init(out, max);
	FILE *f = fopen(path, "rb");
	if (!f)
		return HIE_EIO;
	hie_err_t err = HIE_OK;
	char chunk[8192];
	size_t n;
	while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		err = hie_buf_add(out, chunk, n);
	if (!err && ferror(f))
		err = HIE_EIO;
	fclose(f);
	if (err)
		hie_buf_free(out);
	return err;
}

/* --- key files ------------------------------------------------------------------------------------------ */

static bool safe_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 200 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/*
 * The commands run as root while the node reads the keys after dropping to [node] user, who owns the state
 * directory: what root creates under keys/ is handed to the state directory's owner (path, or fd when >= 0).
 */
static hie_err_t give_to_node(const char *state_dir, const char *path, int fd)
{
	struct stat st;
	if (geteuid() != 0 || stat(state_dir, &st) != 0 || st.st_uid == 0)
		return HIE_OK;
	int rc = fd >= 0 ? fchown(fd, st.st_uid, st.st_gid) : path ? chown(path, st.st_uid, st.st_gid) : -1;
	if (rc != 0) {
		hie_log(HIE_LOG_ERR, "event=hisp.keys.chown errno=%d", errno);
		return HIE_ESYS;
	}
	return HIE_OK;
}

static hie_err_t key_dir(const char *state_dir, char *dir, size_t dirlen)
{
	int n = snprintf(dir, dirlen, "%s/keys", state_dir);
	if (n < 0 || (size_t)n >= dirlen)
		return HIE_EINVAL;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		hie_log(HIE_LOG_ERR, "event=hisp.keys.mkdir errno=%d", errno);
		return HIE_ESYS;
	}
	if (chmod(dir, 0700) != 0) {
		hie_log(HIE_LOG_ERR, "event=hisp.keys.chmod errno=%d", errno);
		return HIE_ESYS;
	}
	return give_to_node(state_dir, dir, -1);
}

static hie_err_t write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return HIE_EIO;
		p += w;
		n -= (size_t)w;
	}
	return HIE_OK;
}

hie_err_t hisp_keys_store_key(const char *state_dir, const char *fp, EVP_PKEY *key, char *name, size_t namelen)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32], final[PATH_MAX + 80];
	hie_err_t err = key_dir(state_dir, dir, sizeof dir);
	if (err)
		return err;
	int n = snprintf(name, namelen, "%s.pem", fp);
	if (n < 0 || (size_t)n >= namelen || !safe_name(name))
		return HIE_EINVAL;
	/* The name is a fingerprint (safe_name, < 80 bytes): the path fits, and a cut one is refused anyway. */
	n = snprintf(final, sizeof final, "%s/%.79s", dir, name);
	if (n < 0 || (size_t)n >= sizeof final)
		return HIE_EINVAL;
	snprintf(tmp, sizeof tmp, "%s/.tmp.XXXXXX", dir);
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return HIE_ENOMEM;
	if (!PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(b);
		return HIE_ETLS;
	}
	char *pem;
	long pemlen = BIO_get_mem_data(b, &pem);
	mode_t old = umask(077);
	int fd = mkstemp(tmp);
	umask(old);
	if (fd < 0) {
		hie_log(HIE_LOG_ERR, "event=hisp.keys.write step=create errno=%d", errno);
		BIO_free(b);
		return HIE_ESYS;
	}
	err = fchmod(fd, 0600) == 0 ? HIE_OK : HIE_ESYS;
	if (!err)
		err = give_to_node(state_dir, NULL, fd);
	if (!err)
		err = write_all(fd, pem, (size_t)pemlen);
	if (!err && fsync(fd) != 0)
		err = HIE_EIO;
	if (close(fd) != 0 && !err)
		err = HIE_EIO;
	OPENSSL_cleanse(pem, (size_t)pemlen);
	BIO_free(b);
	if (!err && rename(tmp, final) != 0)
		err = HIE_ESYS;
	if (err) {
		hie_log(HIE_LOG_ERR, "event=hisp.keys.write step=store errno=%d", errno);
		unlink(tmp);
		return err;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return HIE_OK;
}

hie_err_t hisp_keys_remove_key(const char *state_dir, const char *name)
{
	char path[PATH_MAX + 256];
	if (!safe_name(name))
		return HIE_EINVAL;
	snprintf(path, sizeof path, "%s/keys/%s", state_dir, name);
	if (unlink(path) != 0 && errno != ENOENT)
		return HIE_ESYS;
	return HIE_OK;
}

static EVP_PKEY *load_key(const char *dir, const char *name)
{
	char path[PATH_MAX + 256];
	struct hie_buf b;
	if (!safe_name(name))
		return NULL;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (hisp_read_file(path, KEY_FILE_MAX, &b))
		return NULL;
	EVP_PKEY *k = NULL;
	BIO *bio = BIO_new_mem_buf(b.data, (int)b.len);
	if (bio)
		k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(b.data, b.len);
	hie_buf_free(&b);
	ERR_clear_error();
	return k;
}

/* --- the cache ------------------------------------------------------------------------------------------ */

static void free_entries(struct keyent *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		X509_free(v[i].cert);
		EVP_PKEY_free(v[i].key);
	}
	free(v);
}

hie_err_t hisp_keys_open(struct hie_db_pool *pool, const char *state_dir, struct hisp_keys **out)
{
	*out = NULL;
	struct hisp_keys *k = calloc(1, sizeof *k);
	if (!k)
		return HIE_ENOMEM;
	int n = snprintf(k->keydir, sizeof k->keydir, "%s/keys", state_dir ? state_dir : ".");
	if (n < 0 || (size_t)n >= sizeof k->keydir || pthread_mutex_init(&k->mu, NULL) != 0) {
		free(k);
		return HIE_EINVAL;
	}
	k->pool = pool;
	*out = k;
	return HIE_OK;
}

void hisp_keys_close(struct hisp_keys *k)
{
	if (!k)
		return;
	free_entries(k->v, k->n);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

static unsigned usage_bits(const char *u)
{
	if (strcmp(u, "sign") == 0)
		return HISP_USE_SIGN;
	if (strcmp(u, "encrypt") == 0)
		return HISP_USE_ENCRYPT;
	return HISP_USE_SIGN | HISP_USE_ENCRYPT;
}

/* Loads every row of ours; binary results: text columns come as their bytes, der as raw DER. */
static hie_err_t load_all(struct hisp_keys *k, PGconn *conn, struct keyent **outv, size_t *outn)
{
	PGresult *r;
	hie_err_t err = hie_db_exec_bin(conn,
					"SELECT id::text, owner, bound, usage, der, key_file FROM hisp_certs"
					" WHERE key_file IS NOT NULL ORDER BY id",
					0, NULL, NULL, NULL, 1, &r);
	if (err)
		return err;
	int rows = PQntuples(r);
	struct keyent *v = calloc((size_t)rows + 1, sizeof *v);
	size_t n = 0;
	if (!v) {
		PQclear(r);
		return HIE_ENOMEM;
	}
	for (int i = 0; i < rows; i++) {
		struct keyent *e = &v[n];
		char *end;
		e->id = strtoll(PQgetvalue(r, i, 0), &end, 10);
		snprintf(e->owner, sizeof e->owner, "%s", PQgetvalue(r, i, 1));
		e->domain_bound = strcmp(PQgetvalue(r, i, 2), "domain") == 0;
		e->usage = usage_bits(PQgetvalue(r, i, 3));
		const unsigned char *p = (const unsigned char *)PQgetvalue(r, i, 4);
		e->cert = d2i_X509(NULL, &p, PQgetlength(r, i, 4));
		e->key = e->cert ? load_key(k->keydir, PQgetvalue(r, i, 5)) : NULL;
		if (!e->cert || !e->key || !X509_check_private_key(e->cert, e->key)) {
			hie_log(HIE_LOG_ERR, "event=hisp.keys.load cert_id=%lld error=%s", e->id,
				!e->cert ? "bad_certificate" : !e->key ? "key_unreadable" : "key_mismatch");
			X509_free(e->cert);
			EVP_PKEY_free(e->key);
			memset(e, 0, sizeof *e);
			ERR_clear_error();
			continue;
		}
		n++;
	}
	PQclear(r);
	*outv = v;
	*outn = n;
	return HIE_OK;
}

/* Under k->mu: reloads when the rows changed (checked at most every CHECK_EVERY_MS). */
static hie_err_t refresh(struct hisp_keys *k)
{
	int64_t now = hie_mono_ms();
	if (k->loaded && now - k->checked_ms < CHECK_EVERY_MS)
		return HIE_OK;
	PGconn *conn;
	hie_err_t err = hie_db_acquire(k->pool, -1, &conn);
	if (err)
		return k->loaded ? HIE_OK : err;
	PGresult *r;
	long long count = 0, maxid = 0;
	err = hie_db_exec(conn, "SELECT count(*), coalesce(max(id), 0) FROM hisp_certs WHERE key_file IS NOT NULL",
			  0, NULL, &r);
	if (!err) {
		if (hie_db_get_ll(r, 0, 0, &count) || hie_db_get_ll(r, 0, 1, &maxid))
			err = HIE_EDB;
		PQclear(r);
	}
	if (!err && (!k->loaded || count != k->count || maxid != k->maxid)) {
		struct keyent *v;
		size_t n;
		err = load_all(k, conn, &v, &n);
		if (!err) {
			free_entries(k->v, k->n);
			k->v = v;
			k->n = n;
			k->count = count;
			k->maxid = maxid;
			k->loaded = true;
			hie_log(HIE_LOG_INFO, "event=hisp.keys.loaded keypairs=%zu", n);
		}
	}
	hie_db_release(k->pool, conn, err == HIE_EDB);
	if (!err)
		k->checked_ms = now;
	return k->loaded ? HIE_OK : err;
}

static bool usable_now(X509 *x)
{
	return X509_cmp_current_time(X509_get0_notAfter(x)) > 0 && X509_cmp_current_time(X509_get0_notBefore(x)) < 0;
}

hie_err_t hisp_keys_find(struct hisp_keys *k, const char *address, enum hisp_usage use, struct hisp_keypair **out,
			 size_t *n)
{
	char addr[256];
	*out = NULL;
	*n = 0;
	if (hisp_addr_normalize(address, true, addr, sizeof addr))
		return HIE_EINVAL;
	const char *domain = hisp_addr_domain(addr);
	bool is_addr = strchr(addr, '@') != NULL;
	pthread_mutex_lock(&k->mu);
	hie_err_t err = refresh(k);
	struct hisp_keypair *kp = NULL;
	size_t m = 0;
	if (!err && k->n > 0 && !(kp = calloc(k->n, sizeof *kp)))
		err = HIE_ENOMEM;
	/* pass 0: bound to the address; pass 1: bound to its domain */
	for (int pass = is_addr ? 0 : 1; !err && pass < 2; pass++) {
		for (size_t i = 0; i < k->n; i++) {
			const struct keyent *e = &k->v[i];
			if (e->domain_bound != (pass == 1) || strcmp(e->owner, pass ? domain : addr) != 0 ||
			    !(e->usage & (unsigned)use) || !usable_now(e->cert))
				continue;
			X509_up_ref(e->cert);
			EVP_PKEY_up_ref(e->key);
			kp[m].cert = e->cert;
			kp[m].key = e->key;
			m++;
		}
	}
	pthread_mutex_unlock(&k->mu);
	if (!err && m == 0)
		err = HIE_ENOTFOUND;
	if (err) {
		hisp_keypairs_free(kp, m);
		return err;
	}
	*out = kp;
	*n = m;
	return HIE_OK;
}

void hisp_keypairs_free(struct hisp_keypair *kp, size_t n)
{
	for (size_t i = 0; kp && i < n; i++) {
		X509_free(kp[i].cert);
		EVP_PKEY_free(kp[i].key);
	}
	free(kp);
}

hie_err_t hisp_keys_partner_certs(struct hisp_keys *k, PGconn *conn, const char *address, STACK_OF(X509) **out)
{
	char addr[256];
	*out = NULL;
	if (hisp_addr_normalize(address, true, addr, sizeof addr))
		return HIE_EINVAL;
	PGconn *c = conn;
	hie_err_t err = HIE_OK;
	if (!c && (err = hie_db_acquire(k->pool, -1, &c)))
		return err;
	const char *params[] = {addr, hisp_addr_domain(addr)};
	PGresult *r = NULL;
	err = hie_db_exec_bin(c,
			      "SELECT der FROM hisp_certs WHERE key_file IS NULL AND"
			      " ((bound = 'address' AND owner = $1) OR (bound = 'domain' AND owner = $2))"
			      " ORDER BY (bound = 'address') DESC, id",
			      2, params, NULL, NULL, 1, &r);
	STACK_OF(X509) *sk = err ? NULL : sk_X509_new_null();
	if (!err && !sk)
		err = HIE_ENOMEM;
	for (int i = 0; !err && i < PQntuples(r); i++) {
		const unsigned char *p = (const unsigned char *)PQgetvalue(r, i, 0);
		X509 *x = d2i_X509(NULL, &p, PQgetlength(r, i, 0));
		if (!x) {
			ERR_clear_error();
			continue;
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			err = HIE_ENOMEM;
		}
	}
	PQclear(r);
	if (!conn)
		hie_db_release(k->pool, c, err == HIE_EDB);
	if (err) {
		sk_X509_pop_free(sk, X509_free);
		return err;
	}
	*out = sk;
	return HIE_OK;
}
