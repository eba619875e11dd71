/*
 * hisp_smtp_out.c — one outbound SMTP transaction with libESMTP 1.1 (hisp_smtp_out_send).
 *
 * What libESMTP does and how this file copes with it (read in libESMTP 1.1.0's protocol.c, headers.c,
 * message-source.c, smtp-tls.c, siobuf.c):
 *   - connect() is blocking without a timeout. We first connect ourselves with a deadline
 *     (hie_net_connect) and, for an IPv4 peer, hand libESMTP the address that answered, so a black-holed
 *     host costs timeout_ms, not the kernel's SYN retries. The peer sees one extra connection that closes
 *     before its greeting (logged as such by Postfix; harmless). libESMTP cannot parse "[v6]:port", so an
 *     IPv6-only peer is given by name and libESMTP resolves it again.
 *   - every read and write waits at most the phase timeout (Timeout_GREETING … Timeout_DATA2, all set
 *     to timeout_ms with Timeout_OVERRIDE_RFC2822_MINIMUM). A timeout is reported like a dropped
 *     connection; we tell them apart by the time since the last byte moved (monitor callback).
 *   - the message is read through smtp_set_messagecb from memory; libESMTP splits lines at CRLF and
 *     dot-stuffs them itself (a "." at the start of a line is doubled, the final ".\r\n" is added). A bare
 *     LF would hide a line start from it, so the data is canonicalized to CRLF first (copy only if needed).
 *   - libESMTP rewrites top-level headers: it adds Date, From and Message-Id when missing and drops
 *     Return-Path, Original-Recipient and second copies of From, Date, Sender, To, Cc, Bcc, Reply-To,
 *     Message-Id, Disposition-Notification-To. So that what the peer receives is byte for byte what we
 *     signed around, a message that would be rewritten is refused here (HIE_EINVAL).
 *   - STARTTLS uses our own SSL_CTX per call (smtp_starttls_set_ctx): never libESMTP's process-wide
 *     context, which each session frees on destroy (a use-after-free in 1.1.0 with two sessions). Direct
 *     HISP-to-HISP transport TLS is opportunistic protection against passive eavesdropping only; the
 *     message itself is signed and encrypted end to end. Therefore: tls 1 = STARTTLS when offered, peer
 *     certificate NOT authenticated (chain and name are checked against the system store and the result
 *     is logged, nothing more; a STARTTLS that breaks — handshake failure — is followed at once by one
 *     more session in clear, as Postfix's "may" level does); tls 2 = STARTTLS must be offered and succeed
 *     (Postfix "encrypt" level, no fallback), the certificate likewise not authenticated. TLS 1.2 only
 *     (see tls_ctx: libESMTP 1.1 stalls on TLS 1.3 session tickets); ciphers of 40 bits or fewer refused.
 *     libESMTP still looks for a client certificate under $HOME/.authenticate (or the XDG directory); a
 *     file there with loose permissions makes STARTTLS fail.
 *   - libESMTP goes on to DATA even when every RCPT was refused (the peer answers 554 "no valid
 *     recipients"); a recipient's outcome is its RCPT reply when that refused it, so nothing is lost.
 *   - libESMTP asks getaddrinfo with AI_CANONNAME, which may cost a reverse lookup of the address through
 *     the system resolver (its own timeouts, not ours).
 *   - libESMTP writes with write(): SIGPIPE is ignored for the process once (if it was SIG_DFL).
 *   - libESMTP's errors are per thread (pthread keys) and its process-wide TLS state sits behind its own
 *     mutex, which we never reach as we always bring our own context: sessions in parallel threads are safe.
 *
 * Logs: host, port, reply codes, TLS; never addresses' content or message bytes.
 * Errors: HIE_EINVAL (bad arguments, a message libESMTP would alter), HIE_EIO (no connection, dropped,
 * STARTTLS required but not offered, TLS failure), HIE_ETIMEOUT (a phase passed its deadline),
 * HIE_EDENIED (the peer answered but accepted no recipient: see rcpt_status), HIE_ENOMEM.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>

#include <libesmtp.h>

#include "core/core_log.h"
#include "core/core_net.h"
#include "core/core_time.h"
#include "hisp/hisp_outbound.h"

#define MAX_RCPTS 1000
#define CHUNK (64 * 1024)

/* --- message source ----------------------------------------------------------------------------------- */

struct src {
	const char *data;
	size_t len, off;
};

/* libESMTP's message callback: len == NULL rewinds; *ctx is left NULL (libESMTP would free() it). */
static const char *src_cb(void **ctx, int *len, void *arg)
{
	struct src *s = arg;
	(void)ctx;
	if (!len) {
		s->off = 0;
		return NULL;
	}
	size_t n = s->len - s->off;
	if (n > CHUNK)
		n = CHUNK;
	*len = (int)n;
	if (n == 0)
		return NULL;
	const char *p = s->data + s->off;
	s->off += n;
	return p;
}

/* A copy of data with every bare CR or LF made CRLF, or NULL in *out when data is already canonical. */
static hie_err_t canonicalize(const char *data, size_t len, struct hie_buf *out, bool *copied)
{
	*copied = false;
	size_t i;
	for (i = 0; i < len; i++) {
		if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n') {
			i++;
			continue;
		}
		if (data[i] == '\r' || data[i] == '\n')
			break;
	}
	if (i == len)
		return HIE_OK;
	hie_buf_init(out, len > SIZE_MAX / 2 - 2 ? SIZE_MAX : 2 * len + 2);
	for (i = 0; i < len; i++) {
		hie_err_t err;
		if (data[i] == '\r' || data[i] == '\n') {
			err = hie_buf_add(out, "\r\n", 2);
			if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
				i++;
		} else {
			size_t j = i;
			while (j < len && data[j] != '\r' && data[j] != '\n')
				j++;
			err = hie_buf_add(out, data + i, j - i);
			i = j - 1;
		}
		if (err) {
			hie_buf_free(out);
			return err;
		}
	}
	*copied = true;
	return HIE_OK;
}

/*
 * The header fields libESMTP treats specially (headers.c): it drops repeats of the single ones and the
 * prohibited ones, and adds the required ones when missing. Names compare case-insensitively.
 */
static const char *const single_fields[] = {"date", "from", "message-id", "sender", "to", "cc", "bcc",
					    "reply-to", "disposition-notification-to"};
static const char *const prohibited_fields[] = {"return-path", "original-recipient", "resent-reply-to"};

static int field_index(const char *name, size_t n, const char *const *set, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (strlen(set[i]) == n && strncasecmp(name, set[i], n) == 0)
			return (int)i;
	return -1;
}

/* HIE_OK when libESMTP will send the header block unchanged; reason says which field it would alter. */
static hie_err_t check_headers(const char *d, size_t len, char *why, size_t whylen)
{
	enum { NSINGLE = sizeof single_fields / sizeof single_fields[0] };
	int seen[NSINGLE] = {0};
	size_t p = 0;
	while (p < len) {
		const char *eol = memchr(d + p, '\n', len - p);
		size_t end = eol ? (size_t)(eol - d) + 1 : len;
		if (end - p <= 2 && (d[p] == '\r' || d[p] == '\n'))
			break; /* blank line: end of the header block */
		if (d[p] != ' ' && d[p] != '\t') {
			const char *colon = memchr(d + p, ':', end - p);
			if (!colon) {
				snprintf(why, whylen, "header line without a colon");
				return HIE_EINVAL;
			}
			size_t n = (size_t)(colon - (d + p));
			if (field_index(d + p, n, prohibited_fields, 3) >= 0) {
				snprintf(why, whylen, "field %.*s would be removed", (int)n, d + p);
				return HIE_EINVAL;
			}
			int k = field_index(d + p, n, single_fields, NSINGLE);
			if (k >= 0 && seen[k]++) {
				snprintf(why, whylen, "repeated field %s would be removed", single_fields[k]);
				return HIE_EINVAL;
			}
		}
		p = end;
	}
	/* date, from, message-id */
	for (int k = 0; k < 3; k++)
		if (!seen[k]) {
			snprintf(why, whylen, "field %s missing (libesmtp would add one)", single_fields[k]);
			return HIE_EINVAL;
		}
	return HIE_OK;
}

/* Address as it goes into MAIL FROM / RCPT TO: printable ASCII, no blanks, no <>. */
static bool envelope_ok(const char *a, bool allow_empty)
{
	size_t n = strlen(a);
	if (n == 0)
		return allow_empty;
	if (n > 254)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
			return false;
	}
	return true;
}

/* --- session events ------------------------------------------------------------------------------------ */

struct sess {
	const char *host;
	int port;
	int64_t last_io_ms;
	bool tls_ok;
	bool tls_unverified;
	bool weak;
	bool tls_missing;
	bool starttls_sent;
	char cipher[64];
};

static void monitor_cb(const char *buf, int buflen, int writing, void *arg)
{
	struct sess *s = arg;
	s->last_io_ms = hie_mono_ms();
	/* commands only (libESMTP does not monitor DATA): note when STARTTLS went out */
	if (writing == SMTP_CB_WRITING && buflen >= 10 && strncasecmp(buf + buflen - 10, "STARTTLS\r\n", 10) == 0)
		s->starttls_sent = true;
}

static void event_cb(smtp_session_t session, int event_no, void *arg, ...)
{
	struct sess *s = arg;
	va_list ap;
	int *ok;
	(void)session;
	va_start(ap, arg);
	switch (event_no) {
	case SMTP_EV_INVALID_PEER_CERTIFICATE: {
		long vfy = va_arg(ap, long);
		ok = va_arg(ap, int *);
		/* Opportunistic: encrypt anyway; the message is protected by S/MIME. */
		*ok = 1;
		s->tls_unverified = true;
		hie_log(HIE_LOG_INFO, "event=hisp.smtp_out.tls host=%s port=%d verify=%s", s->host, s->port,
			X509_verify_cert_error_string(vfy));
		break;
	}
	case SMTP_EV_NO_PEER_CERTIFICATE:
		ok = va_arg(ap, int *);
		*ok = 1;
		s->tls_unverified = true;
		break;
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
		ok = va_arg(ap, int *);
		*ok = 1;
		s->tls_unverified = true;
		break;
	case SMTP_EV_WEAK_CIPHER:
		(void)va_arg(ap, int);
		ok = va_arg(ap, int *);
		*ok = 0;
		s->weak = true;
		break;
	case SMTP_EV_NO_CLIENT_CERTIFICATE:
		ok = va_arg(ap, int *);
		*ok = 1;
		break;
	case SMTP_EV_STARTTLS_OK: {
		(void)va_arg(ap, SSL *);
		const char *cipher = va_arg(ap, const char *);
		s->tls_ok = true;
		snprintf(s->cipher, sizeof s->cipher, "%s", cipher ? cipher : "?");
		break;
	}
	case SMTP_EV_EXTNA_STARTTLS:
		s->tls_missing = true;
		break;
	default:
		break;
	}
	va_end(ap);
}

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void ignore_sigpipe(void)
{
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPIPE, &sa, NULL);
	}
}

static SSL_CTX *shared_ctx;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void shared_ctx_make(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/*
	 * At most TLS 1.2: libESMTP 1.1 polls for "readable" before it flushes the command it just buffered,
	 * and reads the reply first. A TLS 1.3 server's post-handshake NewSessionTicket makes the socket
	 * readable with no application data, so the EHLO after STARTTLS sat unsent until the read timed out
	 * and the session failed (seen in about one STARTTLS session in three against OpenSSL peers). TLS 1.2
	 * sends its ticket inside the handshake.
	 */
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	/* Verified only for the log (see the file header): the handshake does not depend on it. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_default_verify_paths(ctx);
	shared_ctx = ctx;
}

/*
 * One client context for the process, made on first use: reading the system CA bundle cost ~65 ms per
 * delivery when every call made its own. Each session gets its own SSL from it (libESMTP never frees a
 * context set with smtp_starttls_set_ctx, and SSL_CTX is safe to share between threads); the context lives
 * until the process ends.
 */
static hie_err_t tls_ctx(SSL_CTX **out)
{
	pthread_once(&shared_once, shared_ctx_make);
	*out = shared_ctx;
	return shared_ctx ? HIE_OK : HIE_ENOMEM;
}

/* The first refusal, as one printable line: "550 5.1.1 text" (peer text made printable). */
static void set_reply(char *reply, size_t replylen, const smtp_status_t *st)
{
	if (!reply || !replylen || reply[0] || !st || st->code == 0)
		return;
	char text[256];
	const char *t = st->text ? st->text : "";
	while (*t == ' ')
		t++;
	size_t n = strcspn(t, "\r\n");
	if (n >= sizeof text)
		n = sizeof text - 1;
	for (size_t i = 0; i < n; i++)
		text[i] = (unsigned char)t[i] < 0x20 || (unsigned char)t[i] >= 0x7f ? '?' : t[i];
	text[n] = 0;
	if (st->enh_class > 0)
		snprintf(reply, replylen, "%d %d.%d.%d %s", st->code, st->enh_class, st->enh_subject, st->enh_detail,
			 text);
	else
		snprintf(reply, replylen, "%d %s", st->code, text);
}

/* A probe connection with a deadline; *addr receives the IPv4 address that answered (or "" for IPv6). */
static hie_err_t probe(const char *host, int port, int timeout_ms, char *addr, size_t addrlen)
{
	char ps[8];
	struct hie_net_conn *c = NULL;
	snprintf(ps, sizeof ps, "%d", port);
	hie_err_t err = hie_net_connect(host, ps, timeout_ms, &c);
	if (err)
		return err == HIE_ETIMEOUT ? HIE_ETIMEOUT : HIE_EIO;
	const char *a = hie_net_peer_addr(c);
	snprintf(addr, addrlen, "%s", a && !strchr(a, ':') ? a : "");
	hie_net_close(c);
	return HIE_OK;
}

/* One attempt's parameters. */
struct attempt {
	const char *host, *hostport, *helo, *mail_from;
	int port, timeout_ms, tls;
	const char *const *rcpts;
	size_t nrcpts;
	const char *data;
	size_t len;
	int *rcpt_status;
	char *reply;
	size_t replylen;
};

/* One libESMTP session; fills rcpt_status and reply, and s (TLS facts). */
static hie_err_t run_session(const struct attempt *t, struct sess *s)
{
	hie_err_t err = HIE_OK;
	smtp_session_t session = smtp_create_session();
	smtp_recipient_t *rr = calloc(t->nrcpts, sizeof *rr);
	SSL_CTX *ctx = NULL;
	char *reply = t->reply;
	size_t replylen = t->replylen;
	int *rcpt_status = t->rcpt_status;
	size_t nrcpts = t->nrcpts;
	int timeout_ms = t->timeout_ms;

	if (reply && replylen)
		reply[0] = 0;
	for (size_t i = 0; i < nrcpts; i++)
		rcpt_status[i] = 0;
	if (!session || !rr) {
		err = HIE_ENOMEM;
		goto out;
	}
	smtp_message_t msg = smtp_add_message(session);
	struct src source = {.data = t->data, .len = t->len};
	if (!msg || !smtp_set_server(session, t->hostport) ||
	    (t->helo && t->helo[0] && !smtp_set_hostname(session, t->helo)) ||
	    !smtp_set_eventcb(session, event_cb, s) || !smtp_set_monitorcb(session, monitor_cb, s, 0) ||
	    !smtp_set_reverse_path(msg, t->mail_from) || !smtp_set_messagecb(msg, src_cb, &source)) {
		err = HIE_ENOMEM;
		goto out;
	}
	static const int phases[] = {Timeout_GREETING, Timeout_ENVELOPE, Timeout_DATA, Timeout_TRANSFER, Timeout_DATA2};
	for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
		smtp_set_timeout(session, phases[i] | Timeout_OVERRIDE_RFC2822_MINIMUM, timeout_ms);
	smtp_size_set_estimate(msg, (unsigned long)t->len);
	if (t->tls) {
		err = tls_ctx(&ctx);
		if (err)
			goto out;
		if (!smtp_starttls_set_ctx(session, ctx) ||
		    !smtp_starttls_enable(session, t->tls == 2 ? Starttls_REQUIRED : Starttls_ENABLED)) {
			err = HIE_ETLS;
			goto out;
		}
	}
	for (size_t i = 0; i < nrcpts; i++) {
		rr[i] = smtp_add_recipient(msg, t->rcpts[i]);
		if (!rr[i]) {
			err = HIE_ENOMEM;
			goto out;
		}
	}

	s->last_io_ms = hie_mono_ms();
	int started = smtp_start_session(session);
	int serr = smtp_errno();
	const smtp_status_t *mst = smtp_message_transfer_status(msg);
	const smtp_status_t *rst = smtp_reverse_path_status(msg);
	int mcode = mst ? mst->code : 0, fcode = rst ? rst->code : 0;
	size_t accepted = 0;
	if (fcode >= 400)
		set_reply(reply, replylen, rst);
	for (size_t i = 0; i < nrcpts; i++) {
		const smtp_status_t *st = smtp_recipient_status(rr[i]);
		int code = st ? st->code : 0;
		if (code >= 200 && code < 300) {
			/* accepted at RCPT: the outcome is the reply to the end of DATA (0: unknown, retried) */
			if (mcode >= 400)
				set_reply(reply, replylen, mst);
			code = mcode;
		} else if (code >= 400) {
			set_reply(reply, replylen, st);
		} else if (fcode >= 400) {
			code = fcode; /* MAIL FROM refused: the same answer for everyone */
		}
		rcpt_status[i] = code;
		if (code >= 200 && code < 300)
			accepted++;
	}
	if (s->tls_ok)
		hie_log(HIE_LOG_INFO, "event=hisp.smtp_out.tls host=%s port=%d cipher=%s authenticated=%s", t->host,
			t->port, s->cipher, s->tls_unverified ? "no" : "yes");
	bool any_refused = false;
	for (size_t i = 0; i < nrcpts; i++)
		any_refused |= rcpt_status[i] >= 400;
	if (accepted) {
		err = HIE_OK;
	} else if (any_refused) {
		err = HIE_EDENIED; /* the peer decided: the codes say how */
	} else if (s->tls_missing || serr == SMTP_ERR_EXTENSION_NOT_AVAILABLE) {
		err = HIE_EIO;
		if (reply && replylen && !reply[0])
			snprintf(reply, replylen, "STARTTLS required but not offered");
	} else if (serr == SMTP_ERR_DROPPED_CONNECTION && hie_mono_ms() - s->last_io_ms >= timeout_ms - 50) {
		err = HIE_ETIMEOUT; /* libESMTP reports a poll timeout as a dropped connection */
		if (reply && replylen && !reply[0])
			snprintf(reply, replylen, "timeout");
	} else {
		err = HIE_EIO;
		if (reply && replylen && !reply[0]) {
			char eb[128];
			const char *e = s->weak ? "weak TLS cipher" : smtp_strerror(serr, eb, sizeof eb);
			snprintf(reply, replylen, "%s", e ? e : "session failed");
		}
	}
	char codes[128] = "";
	size_t cl = 0;
	for (size_t i = 0; i < nrcpts && cl + 8 < sizeof codes; i++)
		cl += (size_t)snprintf(codes + cl, sizeof codes - cl, "%s%d", i ? "," : "", rcpt_status[i]);
	hie_log(err ? HIE_LOG_WARN : HIE_LOG_INFO,
		"event=hisp.smtp_out host=%s port=%d started=%d mail=%d rcpt=%s data=%d tls=%s result=%s", t->host, t->port,
		started, fcode, codes, mcode, s->tls_ok ? "yes" : "no", err ? hie_errname(err) : "ok");
out:
	if (session)
		smtp_destroy_session(session);
	free(rr);
	return err;
}

hie_err_t hisp_smtp_out_send(const char *host, int port, const struct hisp_smtp_out_opts *o, const char *mail_from,
			     const char *const *rcpts, size_t nrcpts, const char *data, size_t len, int *rcpt_status,
			     char *reply, size_t replylen)
{
	hie_err_t err = HIE_OK;
	struct hie_buf canon = {0};
	bool copied = false;
	char why[128] = "";

	if (reply && replylen)
		reply[0] = 0;
	if (!host || !host[0] || strlen(host) > 255 || strpbrk(host, ": \r\n\t") || port < 1 || port > 65535 || !o ||
	    !mail_from || !envelope_ok(mail_from, true) || !rcpts || nrcpts == 0 || nrcpts > MAX_RCPTS ||
	    !rcpt_status || !data || len > (size_t)INT_MAX / 2 || (o->helo && strpbrk(o->helo, " \r\n\t<>")))
		return HIE_EINVAL;
	for (size_t i = 0; i < nrcpts; i++) {
		rcpt_status[i] = 0;
		if (!rcpts[i] || !envelope_ok(rcpts[i], false))
			return HIE_EINVAL;
	}
	err = canonicalize(data, len, &canon, &copied);
	if (err)
		return err;
	if (copied) {
		data = canon.data;
		len = canon.len;
	}
	if (check_headers(data, len, why, sizeof why) != HIE_OK) {
		hie_log(HIE_LOG_ERR, "event=hisp.smtp_out.refused host=%s port=%d error=%s", host, port, why);
		err = HIE_EINVAL;
		goto out;
	}
	pthread_once(&sigpipe_once, ignore_sigpipe);

	int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 300000;
	char addr[64];
	err = probe(host, port, timeout_ms, addr, sizeof addr);
	if (err) {
		if (reply && replylen)
			snprintf(reply, replylen, "%s", err == HIE_ETIMEOUT ? "connect timeout" : "connection failed");
		hie_log(HIE_LOG_WARN, "event=hisp.smtp_out.connect host=%s port=%d error=%s", host, port,
			hie_errname(err));
		goto out;
	}

	char hostport[300];
	snprintf(hostport, sizeof hostport, "%s:%d", addr[0] ? addr : host, port);
	struct attempt t = {.host = host, .hostport = hostport, .helo = o->helo, .mail_from = mail_from, .port = port,
			    .timeout_ms = timeout_ms, .tls = o->tls, .rcpts = rcpts, .nrcpts = nrcpts, .data = data,
			    .len = len, .rcpt_status = rcpt_status, .reply = reply, .replylen = replylen};
	struct sess s = {.host = host, .port = port};
	err = run_session(&t, &s);
	if (o->tls == 1 && s.starttls_sent && !s.tls_ok && (err == HIE_EIO || err == HIE_ETIMEOUT)) {
		/* Opportunistic means opportunistic: a peer whose TLS fails (bad certificate chain is not a
		 * failure here; a broken handshake is) gets the message in clear, protected by S/MIME alone,
		 * rather than never (Postfix "may" level does the same on its next attempt). */
		hie_log(HIE_LOG_NOTICE, "event=hisp.smtp_out.tls_fallback host=%s port=%d", host, port);
		struct sess s2 = {.host = host, .port = port};
		t.tls = 0;
		err = run_session(&t, &s2);
	}
out:
	if (copied)
		hie_buf_free(&canon);
	return err;
}
