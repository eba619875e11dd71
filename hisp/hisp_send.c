/*
 * hisp_send.c — the hisp.send job: delivers one hisp_outbound row (a message, an MDN or a DSN) to its
 * pending recipients (AS 1.3; STANDARDS.md §1 "Sending").
 *
 *   1. load the row and its recipients still 'pending' (none: done; a second run after a crash touches
 *      only what is still pending);
 *   2. the sender's signing keypairs and own encryption certificate (the latter is added to the
 *      recipients of every envelope, AS 1.3, so the sender can read its own sent mail);
 *   3. per recipient, certificate discovery (local store, DNS CERT, LDAP): nothing found → failed 5.1.1,
 *      found but unusable → failed 5.7.1 (each gets its DSN through hisp_track_fail, which never makes a
 *      notice about a notice); discovery unreachable → left pending (retried);
 *   4. per recipient domain: algorithms ([direct] defaults overridden by the domain's hisp_policies row),
 *      sign and encrypt to that domain's recipients plus the sender, put the outer routing headers in front
 *      and hand it to the next hop (hisp_routes row, else [direct] smarthost, else the domain's MX hosts in
 *      order, port 25); the replies are recorded in ONE transaction per domain: 2xx sent, 5xx failed with
 *      the peer's reply, 4xx or no answer left pending;
 *   5. pending recipients left → an error ("deferred: N recipients") so the queue retries with backoff;
 *      on the last attempt they are failed with 4.4.1 instead and the job ends.
 *
 * Outer headers (what a relay sees): From, To, Cc, Date and Message-ID copied as they are in the inner
 * message, MIME-Version, and for messages (not notices) Disposition-Notification-Options. The Subject is
 * deliberately NOT copied: it often carries PHI ("Referral for J. Smith, diabetic") and the outer headers
 * travel in clear through every relay and log; the recipient's HISP reads the signed inner Subject.
 *
 * No database connection is held during discovery, signing or SMTP. Errors returned to the queue: HIE_EDB
 * (retried), HIE_EIO ("deferred: N recipients", retried), HIE_EINVAL for a bad payload (HIE_EPERMANENT).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509.h>

#include "core/core_config.h"
#include "core/core_db.h"
#include "core/core_log.h"
#include "hisp/hisp_discovery.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_smime.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_util.h"

#define MAX_RCPTS 1000
#define MAX_MX 10
#define DEFAULT_MAX (64u * 1024 * 1024)

struct rcpt {
	char addr[256];
	STACK_OF(X509) *certs; /* discovered; NULL when failed or deferred */
	bool done;             /* failed or sent in this run */
	int code;              /* SMTP reply code of this run's last try */
};

struct send {
	struct hisp *h;
	long long id;
	char kind[8];
	char sender[256];
	char message_id[256];
	char *raw;
	size_t raw_len;
	struct rcpt *r;
	size_t n;
	char last_reason[200]; /* last transient failure, for the log and the final 4.4.1 */
};

static void send_free(struct send *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->r[i].certs)
			sk_X509_pop_free(s->r[i].certs, X509_free);
	free(s->r);
	free(s->raw);
}

/* --- loading ------------------------------------------------------------------------------------------ */

static hie_err_t load(struct send *s)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", s->id);
	const char *p[] = {ids};
	hie_err_t err = hie_db_acquire(s->h->pool, -1, &c);
	if (err)
		return err;
	/* binary results: text columns arrive as their bytes, bytea as raw bytes */
	err = hie_db_exec_bin(c, "SELECT kind, sender, message_id, raw FROM hisp_outbound WHERE id = $1::bigint", 1, p,
			      NULL, NULL, 1, &res);
	if (err)
		goto out;
	if (PQntuples(res) != 1) {
		err = HIE_ENOTFOUND;
		goto out;
	}
	snprintf(s->kind, sizeof s->kind, "%s", PQgetvalue(res, 0, 0));
	snprintf(s->sender, sizeof s->sender, "%s", PQgetvalue(res, 0, 1));
	snprintf(s->message_id, sizeof s->message_id, "%s", PQgetvalue(res, 0, 2));
	s->raw_len = (size_t)PQgetlength(res, 0, 3);
	s->raw = malloc(s->raw_len + 1);
	if (!s->raw) {
		err = HIE_ENOMEM;
		goto out;
	}
	memcpy(s->raw, PQgetvalue(res, 0, 3), s->raw_len);
	s->raw[s->raw_len] = 0;
	PQclear(res);
	res = NULL;
	err = hie_db_exec(c,
			  "SELECT address FROM hisp_outbound_rcpt WHERE outbound_id = $1::bigint AND state = 'pending'"
			  " ORDER BY address LIMIT 1000",
			  1, p, &res);
	if (err)
		goto out;
	s->n = (size_t)PQntuples(res);
	s->r = calloc(s->n ? s->n : 1, sizeof *s->r);
	if (!s->r) {
		err = HIE_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->n; i++)
		snprintf(s->r[i].addr, sizeof s->r[i].addr, "%s", PQgetvalue(res, (int)i, 0));
out:
	PQclear(res);
	hie_db_release(s->h->pool, c, false);
	return err;
}

/* --- recording outcomes (one transaction each) ------------------------------------------------------- */

struct outcome {
	struct send *s;
	const size_t *idx;    /* recipients concerned */
	size_t n;
	const char *const *status; /* per recipient: NULL = sent, else the DSN status ("5.1.1") */
	const char *const *reason;
};

static hie_err_t record_fn(PGconn *tx, void *arg)
{
	struct outcome *o = arg;
	for (size_t i = 0; i < o->n; i++) {
		const char *a = o->s->r[o->idx[i]].addr;
		hie_err_t err = o->status[i] ? hisp_track_fail(o->s->h, tx, o->s->id, a, o->status[i], o->reason[i])
					     : hisp_track_sent(tx, o->s->id, a);
		if (err == HIE_ENOTFOUND)
			continue; /* the row went away meanwhile: nothing to record */
		if (err)
			return err;
	}
	return HIE_OK;
}

static hie_err_t record(struct send *s, const size_t *idx, size_t n, const char *const *status,
			const char *const *reason)
{
	if (n == 0)
		return HIE_OK;
	struct outcome o = {.s = s, .idx = idx, .n = n, .status = status, .reason = reason};
	hie_err_t err = hie_db_tx(s->h->pool, record_fn, &o);
	if (!err) {
		for (size_t i = 0; i < n; i++)
			s->r[idx[i]].done = true;
		hisp_wake(s->h); /* a DSN may have been queued */
	}
	return err;
}

/* Fails every recipient in idx with one status and reason. */
static hie_err_t fail_all(struct send *s, const size_t *idx, size_t n, const char *status, const char *reason)
{
	const char **st = calloc(n ? n : 1, sizeof *st), **re = calloc(n ? n : 1, sizeof *re);
	hie_err_t err = HIE_ENOMEM;
	if (st && re) {
		for (size_t i = 0; i < n; i++) {
			st[i] = status;
			re[i] = reason;
		}
		err = record(s, idx, n, st, re);
	}
	free(st);
	free(re);
	return err;
}

/* --- discovery ---------------------------------------------------------------------------------------- */

static hie_err_t discover_all(struct send *s)
{
	const char *local = hisp_addr_domain(s->sender);
	size_t *fidx = calloc(s->n, sizeof *fidx);
	const char **fst = calloc(s->n, sizeof *fst);
	char (*freason)[200] = calloc(s->n, sizeof *freason);
	const char **fre = calloc(s->n, sizeof *fre);
	size_t nf = 0;
	hie_err_t err = HIE_OK;
	if (!fidx || !fst || !freason || !fre) {
		err = HIE_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->n; i++) {
		char reason[160] = "";
		hie_err_t d = hisp_discover(s->h->disc, local, s->r[i].addr, &s->r[i].certs, reason, sizeof reason, NULL);
		if (d == HIE_OK && s->r[i].certs && sk_X509_num(s->r[i].certs) > 0)
			continue;
		if (s->r[i].certs) {
			sk_X509_pop_free(s->r[i].certs, X509_free);
			s->r[i].certs = NULL;
		}
		if (d == HIE_OK || d == HIE_ENOTFOUND || d == HIE_EDENIED) {
			fidx[nf] = i;
			fst[nf] = d == HIE_EDENIED ? "5.7.1" : "5.1.1";
			snprintf(freason[nf], sizeof freason[nf], "%s%s%.150s",
				 d == HIE_EDENIED ? "certificate not usable" : "no certificate found", reason[0] ? ": " : "",
				 reason);
			fre[nf] = freason[nf];
			nf++;
			hie_log(HIE_LOG_NOTICE, "event=hisp.send.discovery id=%lld rcpt=%zu result=%s", s->id, i,
				hie_errname(d ? d : HIE_ENOTFOUND));
		} else {
			/* could not ask (DNS/LDAP down): retry later rather than tell the sender "no certificate" */
			snprintf(s->last_reason, sizeof s->last_reason, "discovery: %s", hie_errname(d));
			hie_log(HIE_LOG_WARN, "event=hisp.send.discovery id=%lld rcpt=%zu result=%s deferred=1", s->id, i,
				hie_errname(d));
		}
	}
	err = record(s, fidx, nf, fst, fre);
out:
	free(fidx);
	free(fst);
	free(freason);
	free(fre);
	return err;
}

/* --- per domain --------------------------------------------------------------------------------------- */

struct hisp_route {
	char host[256];
	int port;
};

/* The domain's hisp_policies row (overrides) and hisp_routes row (route->port 0 when none). */
static hie_err_t domain_settings(struct hisp *h, const char *domain, struct hisp_smime_algs *algs,
				 struct hisp_route *route)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	const char *p[] = {domain};
	hie_err_t err = hie_db_acquire(h->pool, -1, &c);
	if (err)
		return err;
	*algs = h->algs;
	route->port = 0;
	err = hie_db_exec(c, "SELECT cipher, key_transport, digest FROM hisp_policies WHERE domain = $1", 1, p, &res);
	if (err)
		goto out;
	if (PQntuples(res) == 1) {
		/* a bad stored name keeps the default and says so (the CLI validates what it stores) */
		if (!PQgetisnull(res, 0, 0) && hisp_cipher_parse(PQgetvalue(res, 0, 0), &algs->cipher))
			hie_log(HIE_LOG_WARN, "event=hisp.send.policy domain=%s error=cipher", domain);
		if (!PQgetisnull(res, 0, 1) && hisp_kt_parse(PQgetvalue(res, 0, 1), &algs->kt))
			hie_log(HIE_LOG_WARN, "event=hisp.send.policy domain=%s error=key_transport", domain);
		if (!PQgetisnull(res, 0, 2) && hisp_digest_parse(PQgetvalue(res, 0, 2), &algs->digest))
			hie_log(HIE_LOG_WARN, "event=hisp.send.policy domain=%s error=digest", domain);
	}
	PQclear(res);
	res = NULL;
	err = hie_db_exec(c, "SELECT host, port FROM hisp_routes WHERE domain = $1", 1, p, &res);
	if (!err && PQntuples(res) == 1) {
		long long port = 0;
		snprintf(route->host, sizeof route->host, "%s", PQgetvalue(res, 0, 0));
		if (hie_db_get_ll(res, 0, 1, &port) == HIE_OK)
			route->port = (int)port;
	}
out:
	PQclear(res);
	hie_db_release(h->pool, c, false);
	return err;
}

/*
 * The first field `name` of the message's top header block, as it is (continuation lines kept), with its
 * CRLF. A plain scan rather than hie_mime_parse: the header block alone of a multipart message has no body
 * to satisfy the parser, and the fields are wanted byte for byte.
 */
static hie_err_t copy_field(const char *msg, size_t len, const char *name, struct hie_buf *out, bool *found)
{
	size_t nl = strlen(name), p = 0;
	*found = false;
	while (p < len) {
		const char *eol = memchr(msg + p, '\n', len - p);
		size_t end = eol ? (size_t)(eol - msg) + 1 : len;
		if (end - p <= 2 && (msg[p] == '\r' || msg[p] == '\n'))
			break; /* end of the header block */
		if (end - p > nl && strncasecmp(msg + p, name, nl) == 0 && msg[p + nl] == ':') {
			size_t e = end;
			while (e < len && (msg[e] == ' ' || msg[e] == '\t')) { /* continuation lines */
				const char *n2 = memchr(msg + e, '\n', len - e);
				e = n2 ? (size_t)(n2 - msg) + 1 : len;
			}
			size_t body = e;
			while (body > p && (msg[body - 1] == '\n' || msg[body - 1] == '\r'))
				body--;
			*found = true;
			hie_err_t err = hie_buf_add(out, msg + p, body - p);
			return err ? err : hie_buf_add(out, "\r\n", 2);
		}
		p = end;
	}
	return HIE_OK;
}

/* Outer headers (see the file header) followed by the S/MIME entity. */
static hie_err_t outer_message(const struct send *s, const struct hie_buf *entity, struct hie_buf *out)
{
	static const char *const copied[] = {"From", "To", "Cc", "Date", "Message-ID"};
	hie_err_t err = HIE_OK;
	bool found;
	for (size_t i = 0; i < sizeof copied / sizeof copied[0] && !err; i++) {
		err = copy_field(s->raw, s->raw_len, copied[i], out, &found);
		if (err || found)
			continue;
		if (strcmp(copied[i], "Date") == 0)
			err = hisp_add_date(out);
		else if (strcmp(copied[i], "Message-ID") == 0)
			err = hie_buf_addf(out, "Message-ID: <%s>\r\n", s->message_id);
		else if (strcmp(copied[i], "From") == 0)
			err = hie_buf_addf(out, "From: %s\r\n", s->sender);
	}
	if (!err && strcmp(s->kind, "message") == 0)
		err = copy_field(s->raw, s->raw_len, "Disposition-Notification-Options", out, &found);
	if (!err)
		err = hie_buf_addstr(out, "MIME-Version: 1.0\r\n");
	if (!err)
		err = hie_buf_add(out, entity->data, entity->len);
	return err;
}

/* "5.1.1" from a reply "550 5.1.1 text", else "5.0.0"/"4.0.0" by the code. */
static void status_of(int code, const char *reply, char *st, size_t stlen)
{
	if (reply && strlen(reply) >= 9 && reply[3] == ' ' && isdigit((unsigned char)reply[4]) && reply[5] == '.' &&
	    reply[4] == '0' + code / 100) {
		size_t n = strcspn(reply + 4, " ");
		if (n < stlen) {
			memcpy(st, reply + 4, n);
			st[n] = 0;
			return;
		}
	}
	snprintf(st, stlen, "%d.0.0", code / 100);
}

/* One SMTP transaction to host:port for the recipients in idx; records the outcome. HIE_OK when the peer
 * decided (whatever it decided), HIE_EIO/HIE_ETIMEOUT to try the next host. */
static hie_err_t deliver_to(struct send *s, const char *host, int port, const size_t *idx, size_t n,
			    const struct hie_buf *msg)
{
	struct hisp *h = s->h;
	const char **rc = calloc(n, sizeof *rc);
	int *codes = calloc(n, sizeof *codes);
	size_t *ridx = calloc(n, sizeof *ridx);
	const char **st = calloc(n, sizeof *st), **re = calloc(n, sizeof *re);
	char (*stbuf)[16] = calloc(n, sizeof *stbuf);
	char reply[200] = "";
	hie_err_t err = HIE_ENOMEM;
	if (!rc || !codes || !ridx || !st || !re || !stbuf)
		goto out;
	for (size_t i = 0; i < n; i++)
		rc[i] = s->r[idx[i]].addr;
	struct hisp_smtp_out_opts o = {.helo = h->hostname[0] ? h->hostname : NULL,
				       .timeout_ms = h->smtp_out_timeout_ms,
				       .tls = h->smtp_out_tls};
	hie_err_t serr = hisp_smtp_out_send(host, port, &o, s->sender, rc, n, msg->data, msg->len, codes, reply,
					    sizeof reply);
	if (serr && serr != HIE_EDENIED) {
		snprintf(s->last_reason, sizeof s->last_reason, "%.60s:%d %.120s", host, port,
			 reply[0] ? reply : hie_errname(serr));
		err = serr == HIE_ETIMEOUT ? HIE_ETIMEOUT : HIE_EIO;
		goto out;
	}
	size_t nr = 0;
	for (size_t i = 0; i < n; i++) {
		s->r[idx[i]].code = codes[i];
		if (codes[i] >= 200 && codes[i] < 300) {
			ridx[nr] = idx[i];
			st[nr] = NULL;
			re[nr] = NULL;
			nr++;
		} else if (codes[i] >= 500) {
			status_of(codes[i], reply, stbuf[nr], sizeof stbuf[nr]);
			ridx[nr] = idx[i];
			st[nr] = stbuf[nr];
			re[nr] = reply[0] ? reply : "refused by the next hop";
			nr++;
		} else {
			snprintf(s->last_reason, sizeof s->last_reason, "%.60s:%d %.120s", host, port,
				 reply[0] ? reply : "deferred");
		}
	}
	err = record(s, ridx, nr, st, re);
out:
	free(rc);
	free(codes);
	free(ridx);
	free(st);
	free(re);
	free(stbuf);
	return err;
}

static hie_err_t deliver_domain(struct send *s, const char *domain, const size_t *idx, size_t n,
				const struct hisp_keypair *signers, size_t nsigners, X509 *own)
{
	struct hisp *h = s->h;
	struct hisp_smime_algs algs;
	struct hisp_route route;
	struct hie_buf entity, msg;
	size_t cap = h->max_message ? h->max_message : DEFAULT_MAX;
	STACK_OF(X509) *recips = sk_X509_new_null();
	hie_buf_init(&entity, cap);
	hie_buf_init(&msg, cap + 65536);
	hie_err_t err = recips ? domain_settings(h, domain, &algs, &route) : HIE_ENOMEM;
	if (err)
		goto out;
	for (size_t i = 0; i < n && !err; i++) {
		STACK_OF(X509) *c = s->r[idx[i]].certs;
		for (int j = 0; j < sk_X509_num(c) && !err; j++)
			if (!sk_X509_push(recips, sk_X509_value(c, j)))
				err = HIE_ENOMEM;
	}
	if (!err && own && !sk_X509_push(recips, own))
		err = HIE_ENOMEM;
	if (err)
		goto out;
	err = hisp_smime_encode(s->raw, s->raw_len, signers, nsigners, recips, &algs, &entity);
	if (!err)
		err = outer_message(s, &entity, &msg);
	if (err == HIE_ETOOBIG) {
		err = fail_all(s, idx, n, "5.3.4", "message too big after signing and encryption");
		goto out;
	}
	if (err) {
		snprintf(s->last_reason, sizeof s->last_reason, "encode: %s", hie_errname(err));
		hie_log(HIE_LOG_ERR, "event=hisp.send.encode id=%lld domain=%s error=%s", s->id, domain,
			hie_errname(err));
		goto out;
	}

	/* next hop: route, smarthost, MX in preference order */
	struct hisp_mx mx[MAX_MX];
	size_t nmx = 0;
	int port = 25;
	if (route.port) {
		snprintf(mx[0].host, sizeof mx[0].host, "%s", route.host);
		port = route.port;
		nmx = 1;
	} else if (h->smarthost[0]) {
		if (hie_cfg_split_addr(h->smarthost, mx[0].host, sizeof mx[0].host, &port) != HIE_OK) {
			err = HIE_ECONFIG;
			goto out;
		}
		nmx = 1;
	} else {
		err = hisp_dns_mx(h->disc, domain, mx, MAX_MX, &nmx);
		if (err || nmx == 0) {
			snprintf(s->last_reason, sizeof s->last_reason, "mx %.120s: %s", domain,
				 hie_errname(err ? err : HIE_ENOTFOUND));
			hie_log(HIE_LOG_WARN, "event=hisp.send.mx id=%lld domain=%s error=%s", s->id, domain,
				hie_errname(err ? err : HIE_ENOTFOUND));
			err = HIE_EIO; /* a domain without MX or A is retried; the last attempt fails it */
			goto out;
		}
	}
	err = HIE_EIO;
	for (size_t m = 0; m < nmx && (err == HIE_EIO || err == HIE_ETIMEOUT); m++)
		err = deliver_to(s, mx[m].host, port, idx, n, &msg);
out:
	sk_X509_free(recips); /* the certificates belong to the recipients / the caller */
	hie_buf_free(&entity);
	hie_buf_free(&msg);
	return err;
}

/* --- the job ------------------------------------------------------------------------------------------- */

static hie_err_t fail_pending_fn(PGconn *tx, void *arg)
{
	struct send *s = arg;
	PGresult *res = NULL;
	char ids[24], reason[240];
	snprintf(ids, sizeof ids, "%lld", s->id);
	snprintf(reason, sizeof reason, "could not deliver%s%.200s", s->last_reason[0] ? ": " : "", s->last_reason);
	const char *p[] = {ids};
	hie_err_t err = hie_db_exec(tx,
				    "SELECT address FROM hisp_outbound_rcpt WHERE outbound_id = $1::bigint AND"
				    " state = 'pending' ORDER BY address FOR UPDATE",
				    1, p, &res);
	for (int i = 0; !err && i < PQntuples(res); i++)
		err = hisp_track_fail(s->h, tx, s->id, PQgetvalue(res, i, 0), "4.4.1", reason);
	PQclear(res);
	return err;
}

static int cmp_domain(const void *a, const void *b, void *arg)
{
	const struct rcpt *r = arg;
	const size_t *x = a, *y = b;
	return strcmp(hisp_addr_domain(r[*x].addr), hisp_addr_domain(r[*y].addr));
}

/* qsort_r is a GNU extension; a small insertion sort keeps this portable (≤ 1000 recipients). */
static void sort_by_domain(size_t *idx, size_t n, const struct rcpt *r)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && cmp_domain(&idx[j - 1], &idx[j], (void *)r) > 0; j--) {
			size_t t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
}

hie_err_t hisp_send_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	struct hisp *h = arg;
	struct send s = {.h = h};
	struct hisp_keypair *signers = NULL, *enc = NULL;
	size_t nsigners = 0, nenc = 0, *idx = NULL;
	char *end = NULL;
	hie_err_t err;

	errno = 0;
	s.id = strtoll(job->payload, &end, 10);
	if (errno || end == job->payload || *end || s.id <= 0) {
		snprintf(errbuf, errlen, "bad payload");
		return HIE_EPERMANENT;
	}
	err = load(&s);
	if (err == HIE_ENOTFOUND) {
		hie_log(HIE_LOG_NOTICE, "event=hisp.send id=%lld result=gone", s.id);
		err = HIE_OK;
		goto out;
	}
	if (err || s.n == 0)
		goto out;

	idx = calloc(s.n, sizeof *idx);
	if (!idx) {
		err = HIE_ENOMEM;
		goto out;
	}
	err = hisp_keys_find(h->keys, s.sender, HISP_USE_SIGN, &signers, &nsigners);
	if (err == HIE_ENOTFOUND) {
		/* nothing can ever sign it: fail now (a DSN for messages) rather than retry for hours */
		for (size_t i = 0; i < s.n; i++)
			idx[i] = i;
		hie_log(HIE_LOG_ERR, "event=hisp.send id=%lld error=no_signing_key", s.id);
		err = fail_all(&s, idx, s.n, "5.7.0", "sender has no signing certificate");
		goto out;
	}
	if (err)
		goto out;
	if (hisp_keys_find(h->keys, s.sender, HISP_USE_ENCRYPT, &enc, &nenc) != HIE_OK)
		hie_log(HIE_LOG_WARN, "event=hisp.send id=%lld warning=no_own_encryption_cert", s.id);

	err = discover_all(&s);
	if (err)
		goto out;

	size_t n = 0;
	for (size_t i = 0; i < s.n; i++)
		if (!s.r[i].done && s.r[i].certs)
			idx[n++] = i;
	sort_by_domain(idx, n, s.r);
	for (size_t a = 0; a < n;) {
		const char *dom = hisp_addr_domain(s.r[idx[a]].addr);
		size_t b = a;
		while (b < n && strcmp(hisp_addr_domain(s.r[idx[b]].addr), dom) == 0)
			b++;
		hie_err_t d = deliver_domain(&s, dom, idx + a, b - a, signers, nsigners, nenc ? enc[0].cert : NULL);
		if (d == HIE_EDB || d == HIE_EBUSY || d == HIE_ENOMEM) {
			err = d; /* our side failed: retry the whole job */
			goto out;
		}
		a = b;
	}

	size_t left = 0;
	for (size_t i = 0; i < s.n; i++)
		left += !s.r[i].done;
	if (left && job->attempts >= job->max_attempts) {
		err = hie_db_tx(h->pool, fail_pending_fn, &s);
		if (!err)
			hisp_wake(h);
		hie_log(HIE_LOG_WARN, "event=hisp.send id=%lld result=given_up rcpts=%zu", s.id, left);
	} else if (left) {
		snprintf(errbuf, errlen, "deferred: %zu recipients%s%s", left, s.last_reason[0] ? "; " : "",
			 s.last_reason);
		err = HIE_EIO;
	}
	hie_log(err ? HIE_LOG_NOTICE : HIE_LOG_INFO, "event=hisp.send id=%lld kind=%s rcpts=%zu deferred=%zu", s.id,
		s.kind, s.n, err ? left : 0);
out:
	if (err && err != HIE_EIO && errbuf && errlen && !errbuf[0])
		snprintf(errbuf, errlen, "%s", hie_errname(err));
	hisp_keypairs_free(signers, nsigners);
	hisp_keypairs_free(enc, nenc);
	free(idx);
	send_free(&s);
	return err;
}
