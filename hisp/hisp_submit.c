/*
 * hisp_submit.c — SMTP submission for edge clients ([submission] listen; RFC 6409, AUTH RFC 4954): the SMTP
 * server of hisp_smtp_in.c in submission mode, with the users of hisp_users.c, and the store step that turns
 * an authenticated user's plain message into an outbound Direct message (signed, encrypted and delivered by
 * the hisp.send job).
 *
 * Entry points: hisp_submission_tls_load, hisp_service_submission_start (hisp.h), hisp_submit_store
 * (hisp_edge.h).
 *
 * The store step, in order: MAIL FROM and the one From header address are the same address and granted to
 * the user; every RCPT is in To or Cc (Direct has no Bcc: a blind copy would be encrypted for a recipient the
 * others cannot see); Date and Message-ID added when missing (RFC 6409 §8.3, §8.4); the request for
 * final-destination delivery notification added when there is no Disposition-Notification-Options (the
 * practice learns when the EHR took the message, Delivery Notification IG); Bcc fields removed; then
 * hisp_outbound_submit (kind message) in one transaction, after which the reply 250 may go out.
 * A Message-ID already used by another sender is refused (it would be dropped as a duplicate).
 *
 * Errors: HIE_EDENIED with a reason for the SMTP reply (550 5.7.1), HIE_EDB/HIE_EBUSY/HIE_ETIMEOUT from the
 * database (451), HIE_EINVAL, HIE_ENOMEM, HIE_ETOOBIG.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/core_log.h"
#include "core/core_tls.h"
#include "hisp/hisp.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_smtp_in.h"
#include "hisp/hisp_svc.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_util.h"

#define FIELD_CAP (64u * 1024u)  /* one unfolded header field we look at */
#define MSGID_MAX 250
#define DNO_FINAL "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n"

/* --- header block ----------------------------------------------------------------------------------------- */

/* The header block [0, *hend) and where the body starts (*bstart; len when there is no body). */
static void header_block(const char *m, size_t len, size_t *hend, size_t *bstart)
{
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && m[eol] != '\n')
			eol++;
		size_t content = eol - i - (eol > i && m[eol - 1] == '\r' ? 1 : 0);
		if (content == 0) { /* the empty line */
			*hend = i;
			*bstart = eol < len ? eol + 1 : len;
			return;
		}
		i = eol < len ? eol + 1 : len;
	}
	*hend = *bstart = len;
}

/* The field starting at i: its name length (0 when the line is not "name:"), *next = the next field. */
static size_t field_at(const char *m, size_t hend, size_t i, size_t *next)
{
	size_t j = i;
	for (;;) {
		while (j < hend && m[j] != '\n')
			j++;
		if (j < hend)
			j++;
		if (j >= hend || (m[j] != ' ' && m[j] != '\t'))
			break;
	}
	*next = j;
	size_t k = i;
	while (k < *next && m[k] != ':' && (unsigned char)m[k] > 0x20 && m[k] != 0x7f)
		k++;
	return k < *next && m[k] == ':' && k > i ? k - i : 0;
}

static bool name_is(const char *m, size_t i, size_t nlen, const char *name)
{
	return nlen == strlen(name) && strncasecmp(m + i, name, nlen) == 0;
}

struct headers {
	bool date, msgid, dno, bcc;
	unsigned from;
};

/* Which fields are present; HIE_EPARSE for a line in the block that is not a field. */
static hie_err_t scan_fields(const char *m, size_t hend, struct headers *hd)
{
	memset(hd, 0, sizeof *hd);
	for (size_t i = 0, next; i < hend; i = next) {
		size_t nlen = field_at(m, hend, i, &next);
		if (nlen == 0)
			return HIE_EPARSE;
		hd->date |= name_is(m, i, nlen, "Date");
		hd->msgid |= name_is(m, i, nlen, "Message-ID");
		hd->dno |= name_is(m, i, nlen, "Disposition-Notification-Options");
		hd->bcc |= name_is(m, i, nlen, "Bcc");
		hd->from += name_is(m, i, nlen, "From");
	}
	return HIE_OK;
}

/* --- address checks ------------------------------------------------------------------------------------------ */

struct addrs {
	char (*v)[HISP_USER_MAX + 1];
	size_t n, cap;
	bool overflow;
};

static int collect(const char *addr, void *arg)
{
	struct addrs *a = arg;
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		void *nv = ncap <= 10000 ? realloc(a->v, ncap * sizeof *a->v) : NULL;
		if (!nv) {
			a->overflow = true;
			return 1;
		}
		a->v = nv;
		a->cap = ncap;
	}
	snprintf(a->v[a->n++], sizeof a->v[0], "%s", addr);
	return 0;
}

static bool has_addr(const struct addrs *a, const char *addr)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], addr) == 0)
			return true;
	return false;
}

/* Every address of every `name` field of the header block into a. */
static hie_err_t field_addrs(const char *m, size_t len, const char *name, struct addrs *a, struct hie_buf *v)
{
	for (unsigned nth = 0;; nth++) {
		hie_err_t err = hisp_msg_header(m, len, name, nth, v);
		if (err == HIE_ENOTFOUND)
			return HIE_OK;
		if (!err)
			err = hisp_addrlist_each(v->data ? v->data : "", v->len, collect, a);
		if (!err && a->overflow)
			err = HIE_ETOOBIG;
		if (err)
			return err;
	}
}

/* The Message-ID "<id>" into id (without <>), or HIE_EPARSE. */
static hie_err_t msgid_value(const char *v, size_t n, char *id, size_t idlen)
{
	if (n < 3 || v[0] != '<' || v[n - 1] != '>' || n - 2 > MSGID_MAX || n - 2 >= idlen)
		return HIE_EPARSE;
	for (size_t i = 1; i + 1 < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
			return HIE_EPARSE;
	}
	memcpy(id, v + 1, n - 2);
	id[n - 2] = '\0';
	return strchr(id, '@') ? HIE_OK : HIE_EPARSE;
}

static hie_err_t new_msgid(const char *host, char *id, size_t idlen)
{
	unsigned char r[16];
	static const char hex[] = "0123456789abcdef";
	char rnd[33];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		return HIE_ESYS;
	for (size_t i = 0; i < sizeof r; i++) {
		rnd[2 * i] = hex[r[i] >> 4];
		rnd[2 * i + 1] = hex[r[i] & 15];
	}
	rnd[32] = '\0';
	int n = snprintf(id, idlen, "%s@%s", rnd, host && host[0] ? host : "localhost");
	return n > 0 && (size_t)n < idlen ? HIE_OK : HIE_EINVAL;
}

/* --- the message as it is submitted ------------------------------------------------------------------------ */

struct submit {
	struct hisp *h;
	const char *user, *from;
	const char *const *rcpts;
	size_t nrcpts;
	struct hie_buf raw;
	char msgid[MSGID_MAX + 1];
	bool want_final;
	long long id;
	char *reason;
	size_t reasonlen;
};

/* The header block without Bcc fields, plus Date / Message-ID / Disposition-Notification-Options when missing,
 * then the body, into s->raw. */
static hie_err_t rebuild(struct submit *s, const char *m, size_t len, size_t hend, size_t bstart,
			 const struct headers *hd)
{
	hie_err_t err = HIE_OK;
	for (size_t i = 0, next; !err && i < hend; i = next) {
		size_t nlen = field_at(m, hend, i, &next);
		if (!name_is(m, i, nlen, "Bcc"))
			err = hie_buf_add(&s->raw, m + i, next - i);
	}
	if (!err && hend > 0 && m[hend - 1] != '\n')
		err = hie_buf_addstr(&s->raw, "\r\n");
	if (!err && !hd->date)
		err = hisp_add_date(&s->raw);
	if (!err && !hd->msgid)
		err = hie_buf_addf(&s->raw, "Message-ID: <%s>\r\n", s->msgid);
	if (!err && !hd->dno)
		err = hie_buf_addstr(&s->raw, DNO_FINAL);
	if (!err)
		err = hie_buf_addstr(&s->raw, "\r\n");
	if (!err && bstart < len)
		err = hie_buf_add(&s->raw, m + bstart, len - bstart);
	return err;
}

static hie_err_t deny(struct submit *s, const char *why)
{
	hisp_reason(s->reason, s->reasonlen, "%s", why);
	return HIE_EDENIED;
}

/* From: exactly one field with exactly one address, MAIL FROM's. */
static hie_err_t check_from(struct submit *s, const char *m, size_t len, const struct headers *hd,
			    struct hie_buf *v)
{
	struct addrs a = {0};
	if (hd->from != 1)
		return deny(s, hd->from ? "more than one From header" : "From header missing");
	hie_err_t err = field_addrs(m, len, "From", &a, v);
	if (err == HIE_EPARSE || err == HIE_ETOOBIG)
		err = deny(s, "From header malformed");
	else if (!err && (a.n != 1 || strcmp(a.v[0], s->from) != 0))
		err = deny(s, "From header must be the MAIL FROM address");
	free(a.v);
	return err;
}

/* Every RCPT in To or Cc. */
static hie_err_t check_rcpts(struct submit *s, const char *m, size_t len, struct hie_buf *v)
{
	struct addrs a = {0};
	hie_err_t err = field_addrs(m, len, "To", &a, v);
	if (!err)
		err = field_addrs(m, len, "Cc", &a, v);
	if (err == HIE_EPARSE || err == HIE_ETOOBIG)
		err = deny(s, "To or Cc header malformed");
	for (size_t i = 0; !err && i < s->nrcpts; i++) {
		char r[HISP_USER_MAX + 1];
		if (hisp_addr_normalize(s->rcpts[i], false, r, sizeof r) || !has_addr(&a, r))
			err = deny(s, "every recipient must be in To or Cc (Bcc is not allowed in Direct)");
	}
	free(a.v);
	return err;
}

/* Message-ID as given (checked), or a new one; want_final from Disposition-Notification-Options. */
static hie_err_t ids_and_options(struct submit *s, const char *m, size_t len, const struct headers *hd,
				 struct hie_buf *v)
{
	hie_err_t err;
	if (hd->msgid) {
		if (hisp_msg_header(m, len, "Message-ID", 1, v) != HIE_ENOTFOUND)
			return deny(s, "more than one Message-ID header");
		err = hisp_msg_header(m, len, "Message-ID", 0, v);
		if (err || msgid_value(v->data, v->len, s->msgid, sizeof s->msgid))
			return deny(s, "Message-ID header malformed");
	} else if ((err = new_msgid(s->h->hostname, s->msgid, sizeof s->msgid))) {
		return err;
	}
	s->want_final = true;
	if (hd->dno) {
		err = hisp_msg_header(m, len, "Disposition-Notification-Options", 0, v);
		if (err == HIE_ETOOBIG)
			return deny(s, "Disposition-Notification-Options header too long");
		s->want_final = !err && hisp_notice_wants_final(v->data, v->len);
	}
	return HIE_OK;
}

static hie_err_t submit_tx(PGconn *tx, void *arg)
{
	struct submit *s = arg;
	bool ok = false;
	PGresult *r = NULL;
	hie_err_t err = hisp_user_may_use(tx, s->user, s->from, &ok);
	if (err)
		return err;
	if (!ok)
		return deny(s, "sender address not granted to this user");
	const char *p[] = {s->msgid};
	err = hie_db_exec(tx, "SELECT sender FROM hisp_outbound WHERE message_id = $1", 1, p, &r);
	if (!err && PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 0), s->from) != 0)
		err = deny(s, "Message-ID already used");
	PQclear(r);
	if (!err)
		err = hisp_outbound_submit(tx, "message", s->from, s->rcpts, s->nrcpts, s->raw.data, s->raw.len,
					   s->msgid, s->want_final, s->h->mdn_timeout_ms, &s->id);
	return err;
}

hie_err_t hisp_submit_store(struct hisp *h, const char *user, const char *mail_from, const char *const *rcpts,
			    size_t nrcpts, const char *data, size_t len, char *id, size_t idlen, char *reason,
			    size_t reasonlen)
{
	char from[HISP_USER_MAX + 1];
	struct submit s = {.h = h, .user = user, .from = from, .rcpts = rcpts, .nrcpts = nrcpts,
			   .reason = reason, .reasonlen = reasonlen};
	struct hie_buf v;
	struct headers hd;
	size_t hend, bstart;
	if (reason && reasonlen)
		reason[0] = '\0';
	if (id && idlen)
		id[0] = '\0';
	if (!h || !user || !mail_from || !data || (!rcpts && nrcpts) || !id || idlen == 0)
		return HIE_EINVAL;
	if (!user[0])
		return deny(&s, "authentication required");
	if (hisp_addr_normalize(mail_from, false, from, sizeof from))
		return deny(&s, "sender address malformed");
	if (nrcpts == 0)
		return deny(&s, "no recipients");
	header_block(data, len, &hend, &bstart);
	if (scan_fields(data, hend, &hd))
		return deny(&s, "message header malformed");
	hie_buf_init(&v, FIELD_CAP);
	hie_buf_init(&s.raw, len + 1024);
	hie_err_t err = check_from(&s, data, len, &hd, &v);
	if (!err)
		err = check_rcpts(&s, data, len, &v);
	if (!err)
		err = ids_and_options(&s, data, len, &hd, &v);
	if (!err)
		err = rebuild(&s, data, len, hend, bstart, &hd);
	if (!err)
		err = hie_db_tx(h->pool, submit_tx, &s);
	if (!err) {
		snprintf(id, idlen, "out-%lld", s.id);
		hie_log(HIE_LOG_INFO, "event=submission.queued outbound=%lld rcpts=%zu bytes=%zu final=%s bcc_removed=%s",
			s.id, nrcpts, s.raw.len, s.want_final ? "yes" : "no", hd.bcc ? "yes" : "no");
		hisp_wake(h);
	}
	hie_buf_free(&v);
	hie_buf_free(&s.raw);
	return err;
}

/* --- the server ------------------------------------------------------------------------------------------------ */

static hie_err_t sub_auth(void *arg, const char *peer, const char *user, const char *pass, char *out_user,
			  size_t len)
{
	return hisp_user_login(arg, peer, user, pass, out_user, len);
}

static int sub_mail(void *arg, const char *user, const char *address)
{
	struct hisp *h = arg;
	PGconn *conn = NULL;
	bool ok = false;
	hie_err_t err = hie_db_acquire(h->pool, 5000, &conn);
	if (err)
		return 451;
	err = hisp_user_may_use(conn, user, address, &ok);
	hie_db_release(h->pool, conn, err == HIE_EDB);
	return err ? 451 : ok ? 250 : 550;
}

static hie_err_t sub_store(void *arg, const struct hisp_envelope *env, const char *data, size_t len, char *id,
			   size_t idlen)
{
	return hisp_submit_store(arg, env->user ? env->user : "", env->mail_from, env->rcpts, env->nrcpts, data,
				 len, id, idlen, env->reason, env->reasonlen);
}

hie_err_t hisp_submission_tls_load(const struct hie_cfg *cfg, SSL_CTX **out)
{
	*out = NULL;
	const char *sec = "submission";
	const char *cert = hie_cfg_str(cfg, sec, "tls_cert");
	if (!cert[0]) {
		sec = "smtp";
		cert = hie_cfg_str(cfg, sec, "tls_cert");
	}
	if (!cert[0])
		return HIE_OK;
	if (hie_tls_server_ctx(cert, hie_cfg_str(cfg, sec, "tls_key"), NULL, false, out) != HIE_OK) {
		hie_log(HIE_LOG_ERR, "event=hisp.config error=submission_tls key=%s.tls_cert", sec);
		return HIE_ECONFIG;
	}
	return HIE_OK;
}

hie_err_t hisp_service_submission_start(struct hisp *h, struct hie_net_listener *l, SSL_CTX *tls)
{
	if (!h || !l)
		return HIE_EINVAL;
	const struct hie_cfg *c = h->cfg;
	struct hisp_smtp_in_opts o = {
		.hostname = h->hostname,
		.max_message = h->max_message,
		.max_rcpts = (unsigned)hie_cfg_int(c, "smtp", "max_recipients"),
		.max_conns = (unsigned)hie_cfg_int(c, "submission", "max_connections"),
		.cmd_ms = (int)hie_cfg_int(c, "submission", "command_timeout"),
		.data_ms = (int)hie_cfg_int(c, "smtp", "data_timeout"),
		.tls = tls,
		.submission = true,
	};
	struct hisp_smtp_ops ops = {.store = sub_store, .auth = sub_auth, .mail = sub_mail, .arg = h};
	if (!tls)
		hie_log(HIE_LOG_WARN, "event=hisp.submission warning=no_tls detail=AUTH_refused");
	hie_err_t err = hisp_smtp_in_start(l, &o, &ops, &h->submission);
	if (!err)
		h->submission_tls = tls; /* freed with the service, after the server stopped */
	return err;
}
