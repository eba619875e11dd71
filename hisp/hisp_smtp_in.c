/*
 * hisp_smtp_in.c — the SMTP receiver (RFC 5321, ESMTP SIZE 1870, PIPELINING 2920, 8BITMIME 6152,
 * ENHANCEDSTATUSCODES 2034/3463, STARTTLS 3207) on core_net: one thread per connection, one state machine.
 *
 * Entry points: hisp_smtp_in_start, hisp_smtp_in_stop; the pure parsers hisp_smtp_cmd_parse and
 * hisp_smtp_parse_path (fuzzed by tests/fuzz/smtp_fuzz.c).
 *
 * Per session: greeting, then commands, each read under its own deadline (cmd_ms); the DATA phase has one
 * deadline for the whole body (data_ms), so a client trickling a byte a second is cut off. Replies are
 * collected and written when no more pipelined input is buffered (RFC 2920 §3.1: the server may batch the
 * replies of a command group), before a DATA body, before STARTTLS and at the end.
 * "250 queued" goes out only after ops->store returned HIE_OK, i.e. after the COMMIT; a store failure is a
 * 451 and the client keeps the message. A bare LF inside DATA refuses the message (SMTP smuggling: the
 * reader only ends a message at CRLF.CRLF, so "\n.\r\n" cannot end it and start a second one). Bad commands
 * count; the tenth closes the session with 421. Timeouts answer "421 4.4.2", a server stop "421 4.3.2" (to
 * idle sessions; a session inside DATA finishes within the grace), a refusal over max_conns "421 4.7.0".
 *
 * Logs: event=smtp.accepted (conn, id, client, rcpts count, bytes, tls), event=smtp.rejected for refused
 * messages, event=smtp.end per session. Never addresses or content.
 *
 * Submission mode (hisp_smtp_in.h): the same machine with AUTH PLAIN / LOGIN (RFC 4954, 4616) after
 * STARTTLS, MAIL/RCPT only once authenticated, MAIL FROM checked with ops->mail, store refusals as 550 5.7.1.
 * event=submission.auth (conn, client, mech, result) per AUTH; never the user name or the password, which
 * are wiped from memory after the check.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "hisp/hisp_smtp_in.h"
#include "hisp/hisp_trust.h"
#include "hisp/hisp_util.h"

#define OUT_MAX (64u * 1024u)
#define OUT_FLUSH (8u * 1024u)
#define LAST_WRITE_MS 2000 /* deadline for the last 421 after a read timeout */

struct hisp_smtp_in {
	struct hie_net_server *srv;
	struct hisp_smtp_in_opts o;
	struct hisp_smtp_ops ops;
	char host[256];
};

struct sess {
	struct hisp_smtp_in *s;
	struct hie_net_conn *c;
	struct hie_buf line, data, out;
	char helo[256];
	bool greeted, in_mail, quit;
	char from[HISP_SMTP_ADDR_MAX + 1];
	char **rcpts;
	size_t nrcpts, rcap;
	unsigned errors;
	unsigned long messages;
	/* submission mode */
	bool authed, error_close;
	unsigned auth_fails;
	char user[HISP_SMTP_USER_MAX];
};

/* --- parsers ----------------------------------------------------------------------------------- */

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool is_dchar(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '.';
}

static char upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
}

/* (a, alen) starts with lit (upper case), case-insensitively. */
static bool ci_prefix(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);
	if (alen < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (upper(a[i]) != lit[i])
			return false;
	return true;
}

static bool ci_eq(const char *a, size_t alen, const char *lit)
{
	return alen == strlen(lit) && ci_prefix(a, alen, lit);
}

static const struct {
	const char *name;
	enum hisp_smtp_verb verb;
} verbs[] = {
	{"HELO", HISP_SMTP_HELO}, {"EHLO", HISP_SMTP_EHLO}, {"MAIL", HISP_SMTP_MAIL},
	{"RCPT", HISP_SMTP_RCPT}, {"DATA", HISP_SMTP_DATA}, {"RSET", HISP_SMTP_RSET},
	{"NOOP", HISP_SMTP_NOOP}, {"QUIT", HISP_SMTP_QUIT}, {"VRFY", HISP_SMTP_VRFY},
	{"HELP", HISP_SMTP_HELP}, {"STARTTLS", HISP_SMTP_STARTTLS}, {"AUTH", HISP_SMTP_AUTH},
};

hie_err_t hisp_smtp_cmd_parse(const char *line, size_t len, struct hisp_smtp_cmd *out)
{
	if (!out)
		return HIE_EINVAL;
	out->verb = HISP_SMTP_UNKNOWN;
	out->arg = line;
	out->arglen = 0;
	if (!line)
		return HIE_EINVAL;
	size_t v = 0;
	while (v < len && line[v] != ' ')
		v++;
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (ci_eq(line, v, verbs[i].name))
			out->verb = verbs[i].verb;
	if (out->verb == HISP_SMTP_UNKNOWN)
		return HIE_OK;
	/* Commands are ASCII without controls (no SMTPUTF8 offered); a NUL could also cut a C string. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch >= 0x7f)
			return HIE_EPARSE;
	}
	const char *p = line + v;
	size_t n = len - v;
	if (out->verb == HISP_SMTP_MAIL || out->verb == HISP_SMTP_RCPT) {
		const char *kw = out->verb == HISP_SMTP_MAIL ? " FROM:" : " TO:";
		if (!ci_prefix(p, n, kw))
			return HIE_EPARSE;
		p += strlen(kw);
		n -= strlen(kw);
	}
	while (n > 0 && p[0] == ' ') {
		p++;
		n--;
	}
	while (n > 0 && p[n - 1] == ' ')
		n--;
	out->arg = p;
	out->arglen = n;
	switch (out->verb) {
	case HISP_SMTP_HELO:
	case HISP_SMTP_EHLO:
	case HISP_SMTP_VRFY:
	case HISP_SMTP_MAIL:
	case HISP_SMTP_RCPT:
	case HISP_SMTP_AUTH:
		return n ? HIE_OK : HIE_EPARSE;
	case HISP_SMTP_DATA:
	case HISP_SMTP_RSET:
	case HISP_SMTP_QUIT:
	case HISP_SMTP_STARTTLS:
		return n ? HIE_EPARSE : HIE_OK;
	default:
		return HIE_OK;
	}
}

/* "@d1,@d2:" of an obsolete source route (RFC 5321 §4.1.2 A-d-l), ignored; *i is past the ':'. */
static hie_err_t skip_route(const char *arg, size_t len, size_t *i)
{
	for (;;) {
		if (*i >= len || arg[*i] != '@')
			return HIE_EPARSE;
		size_t d0 = ++*i;
		while (*i < len && is_dchar((unsigned char)arg[*i]))
			++*i;
		if (*i == d0 || *i >= len)
			return HIE_EPARSE;
		if (arg[*i] == ':') {
			++*i;
			return HIE_OK;
		}
		if (arg[*i] != ',')
			return HIE_EPARSE;
		++*i;
	}
}

/* A dot-atom local part and a domain, then hisp_addr_normalize (lower case, domain syntax). */
static hie_err_t mailbox(const char *m, size_t mlen, char *addr, size_t addrlen)
{
	char tmp[HISP_SMTP_ADDR_MAX + 1];
	if (mlen > HISP_SMTP_ADDR_MAX)
		return HIE_EPARSE;
	if (mlen >= addrlen)
		return HIE_EINVAL;
	for (size_t i = 0; i < mlen; i++) {
		unsigned char ch = (unsigned char)m[i];
		if (!is_atext(ch) && ch != '.' && ch != '@')
			return HIE_EPARSE;
		if (ch == '.' && (i == 0 || m[i - 1] == '.' || (i + 1 < mlen && m[i + 1] == '@')))
			return HIE_EPARSE;
	}
	memcpy(tmp, m, mlen);
	tmp[mlen] = '\0';
	return hisp_addr_normalize(tmp, false, addr, addrlen) ? HIE_EPARSE : HIE_OK;
}

static hie_err_t size_value(const char *v, size_t n, long long *out)
{
	long long x = 0;
	if (n == 0)
		return HIE_EPARSE;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return HIE_EPARSE;
		int d = v[i] - '0';
		x = x > (LLONG_MAX - d) / 10 ? LLONG_MAX : x * 10 + d; /* saturates: over any cap anyway */
	}
	*out = x;
	return HIE_OK;
}

/* esmtp-param *(SP esmtp-param) after the path; MAIL (size != NULL) knows SIZE and BODY, RCPT none. */
static hie_err_t params(const char *arg, size_t len, size_t i, long long *size)
{
	bool seen_size = false, seen_body = false;
	while (i < len) {
		if (arg[i] != ' ')
			return HIE_EPARSE;
		while (i < len && arg[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t k0 = i;
		while (i < len && (is_alnum((unsigned char)arg[i]) || (i > k0 && arg[i] == '-')))
			i++;
		size_t klen = i - k0, vlen = 0;
		const char *val = NULL;
		if (klen == 0)
			return HIE_EPARSE;
		if (i < len && arg[i] == '=') {
			val = arg + ++i;
			while (i < len && (unsigned char)arg[i] > 0x20 && (unsigned char)arg[i] < 0x7f && arg[i] != '=')
				i++;
			vlen = (size_t)(arg + i - val);
			if (vlen == 0)
				return HIE_EPARSE;
		}
		if (i < len && arg[i] != ' ')
			return HIE_EPARSE;
		if (size && ci_eq(arg + k0, klen, "SIZE")) {
			if (seen_size || !val || size_value(val, vlen, size))
				return HIE_EPARSE;
			seen_size = true;
		} else if (size && ci_eq(arg + k0, klen, "BODY")) {
			if (seen_body || !val)
				return HIE_EPARSE;
			if (!ci_eq(val, vlen, "7BIT") && !ci_eq(val, vlen, "8BITMIME"))
				return HIE_EUNSUPPORTED;
			seen_body = true;
		} else {
			return HIE_EUNSUPPORTED;
		}
	}
	return HIE_OK;
}

hie_err_t hisp_smtp_parse_path(const char *arg, size_t len, char *addr, size_t addrlen, long long *size)
{
	if (!arg || !addr || addrlen == 0)
		return HIE_EINVAL;
	addr[0] = '\0';
	if (size)
		*size = -1;
	if (len < 2 || arg[0] != '<')
		return HIE_EPARSE;
	size_t i = 1;
	if (arg[i] == '@' && skip_route(arg, len, &i))
		return HIE_EPARSE;
	size_t m0 = i;
	while (i < len && arg[i] != '>')
		i++;
	if (i >= len)
		return HIE_EPARSE;
	size_t mlen = i - m0;
	hie_err_t err;
	if (mlen == 0) {
		/* The null reverse path: MAIL only, and not after a source route. */
		err = (size && m0 == 1) ? HIE_OK : HIE_EPARSE;
	} else {
		err = mailbox(arg + m0, mlen, addr, addrlen);
	}
	if (!err)
		err = params(arg, len, i + 1, size);
	if (err) {
		addr[0] = '\0';
		if (size)
			*size = -1;
	}
	return err;
}

/* --- replies ----------------------------------------------------------------------------------- */

static hie_err_t flush(struct sess *x)
{
	if (!x->out.len)
		return HIE_OK;
	hie_err_t err = hie_net_write(x->c, x->out.data, x->out.len);
	hie_buf_reset(&x->out);
	return err;
}

static hie_err_t reply(struct sess *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static hie_err_t reply(struct sess *x, const char *fmt, ...)
{
	va_list ap;
	size_t before = x->out.len;
	va_start(ap, fmt);
	hie_err_t err = hie_buf_vaddf(&x->out, fmt, ap);
	va_end(ap);
	if (!err)
		err = hie_buf_addstr(&x->out, "\r\n");
	if (err) {
		/* Replies are short and the buffer is flushed at OUT_FLUSH: this is a bug. */
		hie_panic("event=smtp.reply_overflow conn=%llu len=%zu", (unsigned long long)hie_net_conn_id(x->c),
			  before);
	}
	return x->out.len >= OUT_FLUSH ? flush(x) : HIE_OK;
}

/* A bad command: counted; the tenth one closes the session (the fifth before AUTH in submission mode). */
static hie_err_t bad(struct sess *x, const char *text)
{
	hie_err_t err = reply(x, "%s", text);
	unsigned max = x->s->o.submission && !x->authed ? HISP_SMTP_MAX_ERRORS_PREAUTH : HISP_SMTP_MAX_ERRORS;
	if (!err && ++x->errors >= max) {
		hie_log(HIE_LOG_NOTICE, "event=smtp.too_many_errors conn=%llu client=%s errors=%u",
			(unsigned long long)hie_net_conn_id(x->c), hie_net_peer_addr(x->c), x->errors);
		err = reply(x, "421 4.7.0 %s too many errors, closing connection", x->s->host);
		x->quit = true;
		x->error_close = true;
	}
	return err;
}

/* --- commands ---------------------------------------------------------------------------------- */

static void reset_tx(struct sess *x)
{
	for (size_t i = 0; i < x->nrcpts; i++)
		free(x->rcpts[i]);
	x->nrcpts = 0;
	x->in_mail = false;
	x->from[0] = '\0';
}

static hie_err_t do_helo(struct sess *x, const struct hisp_smtp_cmd *cmd)
{
	const struct hisp_smtp_in *s = x->s;
	hie_log_printable(x->helo, sizeof x->helo, cmd->arg, cmd->arglen);
	reset_tx(x); /* RFC 5321 §4.1.4: EHLO/HELO also reset the transaction */
	x->greeted = true;
	if (cmd->verb == HISP_SMTP_HELO)
		return reply(x, "250 %s", s->host);
	bool tls = s->o.tls && !hie_net_is_tls(x->c);
	/* RFC 4954 §4 / RFC 3207 §4.2: AUTH is offered only once the session is encrypted. */
	bool auth = s->o.submission && hie_net_is_tls(x->c);
	hie_err_t err = reply(x, "250-%s", s->host);
	if (!err)
		err = reply(x, "250-SIZE %zu", s->o.max_message);
	if (!err)
		err = reply(x, "250-PIPELINING");
	if (!err)
		err = reply(x, "250-8BITMIME");
	if (!err && auth)
		err = reply(x, "250-AUTH PLAIN LOGIN");
	if (!err)
		err = reply(x, "250%sENHANCEDSTATUSCODES", tls ? "-" : " ");
	if (!err && tls)
		err = reply(x, "250 STARTTLS");
	return err;
}

/* The MAIL argument without AUTH= parameters (RFC 4954 §5: accepted by a server that offers AUTH; the
 * identity it names is not used, the logged-in user is what counts). The path holds no blank. */
static size_t strip_auth_param(const char *arg, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && arg[j] != ' ')
			j++;
		bool skip = i > 0 && ci_prefix(arg + i, j - i, "AUTH=");
		if (!skip && o + (j - i) + 1 < cap) {
			if (o)
				out[o++] = ' ';
			memcpy(out + o, arg + i, j - i);
			o += j - i;
		}
		while (j < len && arg[j] == ' ')
			j++;
		i = j;
	}
	out[o] = '\0';
	return o;
}

static hie_err_t do_mail(struct sess *x, const struct hisp_smtp_cmd *cmd)
{
	long long size;
	char stripped[HISP_SMTP_LINE_MAX + 1];
	struct hisp_smtp_cmd c2;
	if (x->s->o.submission) {
		c2 = *cmd;
		c2.arglen = strip_auth_param(cmd->arg, cmd->arglen, stripped, sizeof stripped);
		c2.arg = stripped;
		cmd = &c2;
	}
	if (!x->greeted)
		return bad(x, "503 5.5.1 send EHLO or HELO first");
	if (x->s->o.submission && !x->authed)
		return bad(x, "530 5.7.0 Authentication required");
	if (x->in_mail)
		return bad(x, "503 5.5.1 nested MAIL command");
	hie_err_t err = hisp_smtp_parse_path(cmd->arg, cmd->arglen, x->from, sizeof x->from, &size);
	if (err == HIE_EUNSUPPORTED)
		return bad(x, "555 5.5.4 unsupported MAIL parameter");
	if (err)
		return bad(x, "501 5.1.7 bad sender address syntax");
	if (size >= 0 && (unsigned long long)size > x->s->o.max_message) {
		x->from[0] = '\0';
		return reply(x, "552 5.3.4 message size exceeds fixed limit");
	}
	if (x->s->o.submission) {
		const struct hisp_smtp_ops *ops = &x->s->ops;
		int r = !x->from[0] ? 550 : ops->mail ? ops->mail(ops->arg, x->user, x->from) : 451;
		if (r != 250) {
			x->from[0] = '\0';
			if (r == 550)
				return reply(x, "550 5.7.1 sender address not granted to this user");
			return reply(x, "451 4.3.0 sender cannot be verified now, try again later");
		}
	}
	x->in_mail = true;
	return reply(x, "250 2.1.0 Ok");
}

static hie_err_t add_rcpt(struct sess *x, const char *addr)
{
	if (x->nrcpts == x->rcap) {
		size_t ncap = x->rcap ? x->rcap * 2 : 8;
		char **n = realloc(x->rcpts, ncap * sizeof *n);
		if (!n)
			return HIE_ENOMEM;
		x->rcpts = n;
		x->rcap = ncap;
	}
	char *d = strdup(addr);
	if (!d)
		return HIE_ENOMEM;
	x->rcpts[x->nrcpts++] = d;
	return HIE_OK;
}

static hie_err_t do_rcpt(struct sess *x, const struct hisp_smtp_cmd *cmd)
{
	const struct hisp_smtp_in *s = x->s;
	char addr[HISP_SMTP_ADDR_MAX + 1];
	if (s->o.submission && !x->authed)
		return bad(x, "530 5.7.0 Authentication required");
	if (!x->in_mail)
		return bad(x, "503 5.5.1 need MAIL before RCPT");
	hie_err_t err = hisp_smtp_parse_path(cmd->arg, cmd->arglen, addr, sizeof addr, NULL);
	if (err == HIE_EUNSUPPORTED)
		return bad(x, "555 5.5.4 unsupported RCPT parameter");
	if (err)
		return bad(x, "501 5.1.3 bad recipient address syntax");
	for (size_t i = 0; i < x->nrcpts; i++)
		if (strcmp(x->rcpts[i], addr) == 0)
			return reply(x, "250 2.1.5 Ok");
	if (x->nrcpts >= s->o.max_rcpts)
		return reply(x, "452 4.5.3 too many recipients");
	/* Submission: any address; the recipient's HISP is found when the message is sent. */
	int r = s->o.submission ? 250 : s->ops.rcpt ? s->ops.rcpt(s->ops.arg, addr) : 451;
	if (r == 550)
		return reply(x, "550 5.1.1 recipient address rejected: user unknown");
	if (r != 250)
		return reply(x, "451 4.3.0 recipient cannot be verified now, try again later");
	if (add_rcpt(x, addr))
		return reply(x, "452 4.3.1 insufficient system resources");
	return reply(x, "250 2.1.5 Ok");
}

static void log_rejected(struct sess *x, const char *reason)
{
	hie_log(HIE_LOG_NOTICE, "event=smtp.rejected conn=%llu client=%s rcpts=%zu reason=%s",
		(unsigned long long)hie_net_conn_id(x->c), hie_net_peer_addr(x->c), x->nrcpts, reason);
}

static hie_err_t store(struct sess *x)
{
	const struct hisp_smtp_in *s = x->s;
	char id[HISP_SMTP_ID_MAX] = "", shown[HISP_SMTP_ID_MAX], why[200] = "", why_shown[200];
	struct hisp_envelope env = {
		.peer = hie_net_peer_addr(x->c),
		.helo = x->helo,
		.mail_from = x->from,
		.rcpts = (const char *const *)x->rcpts,
		.nrcpts = x->nrcpts,
		.tls = hie_net_is_tls(x->c),
		.user = s->o.submission ? x->user : NULL,
		.reason = why,
		.reasonlen = sizeof why,
	};
	const char *data = x->data.data ? x->data.data : "";
	hie_err_t err = s->ops.store ? s->ops.store(s->ops.arg, &env, data, x->data.len, id, sizeof id) : HIE_EINVAL;
	size_t nrcpts = x->nrcpts;
	reset_tx(x);
	if (err == HIE_EDENIED && s->o.submission) {
		why[sizeof why - 1] = '\0';
		hisp_printable(why, why_shown, sizeof why_shown, '?'); /* into a reply line: no CR, LF */
		log_rejected(x, "refused");
		return reply(x, "550 5.7.1 %s", why_shown[0] ? why_shown : "message refused");
	}
	if (err) {
		hie_log(HIE_LOG_ERR, "event=smtp.store_failed conn=%llu client=%s rcpts=%zu bytes=%zu error=%s",
			(unsigned long long)hie_net_conn_id(x->c), env.peer, nrcpts, x->data.len, hie_errname(err));
		return reply(x, "451 4.3.0 message not stored, try again later");
	}
	id[sizeof id - 1] = '\0';
	hie_log_printable(shown, sizeof shown, id, strlen(id));
	x->messages++;
	hie_log(HIE_LOG_INFO, "event=smtp.accepted conn=%llu id=%s client=%s rcpts=%zu bytes=%zu tls=%s",
		(unsigned long long)hie_net_conn_id(x->c), shown, env.peer, nrcpts, x->data.len,
		env.tls ? "yes" : "no");
	return reply(x, "250 2.0.0 Ok: queued as %s", shown);
}

static hie_err_t do_data(struct sess *x)
{
	const struct hisp_smtp_in *s = x->s;
	if (!x->in_mail)
		return bad(x, "503 5.5.1 need MAIL command");
	if (x->nrcpts == 0)
		return bad(x, "503 5.5.1 no valid recipients");
	hie_err_t err = reply(x, "354 End data with <CR><LF>.<CR><LF>");
	if (!err)
		err = flush(x);
	if (err)
		return err;
	hie_net_set_deadline(x->c, s->o.data_ms);
	hie_buf_reset(&x->data);
	err = hie_net_read_dotted(x->c, &x->data, s->o.max_message);
	/* The store and its reply get a fresh deadline: a reply lost to the DATA deadline after the commit
	 * would make the client send the message again. */
	hie_net_set_deadline(x->c, s->o.cmd_ms);
	if (err == HIE_ETOOBIG) {
		log_rejected(x, "too_big");
		reset_tx(x);
		return reply(x, "552 5.3.4 message size exceeds fixed limit");
	}
	if (err == HIE_EPROTO) {
		log_rejected(x, "bare_lf");
		reset_tx(x);
		return reply(x, "550 5.6.0 message refused: bare LF line ending (CRLF required)");
	}
	if (err)
		return err;
	return store(x);
}

static hie_err_t do_starttls(struct sess *x)
{
	SSL_CTX *tls = x->s->o.tls;
	if (!tls)
		return bad(x, "502 5.5.1 STARTTLS not available");
	if (hie_net_is_tls(x->c))
		return bad(x, "503 5.5.1 TLS already active");
	if (x->in_mail)
		return bad(x, "503 5.5.1 MAIL transaction in progress");
	hie_err_t err = reply(x, "220 2.0.0 Ready to start TLS");
	if (!err)
		err = flush(x);
	if (!err)
		err = hie_net_starttls(x->c, tls);
	if (err)
		return err;
	/* RFC 3207 §4.2: forget everything learned before TLS; the client must EHLO again. */
	x->greeted = false;
	x->helo[0] = '\0';
	reset_tx(x);
	return HIE_OK;
}

/* --- AUTH (submission mode; RFC 4954, PLAIN 4616, LOGIN draft-murchison-sasl-login) -------------------- */

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

hie_err_t hisp_smtp_b64_decode(const char *in, size_t len, char *out, size_t outlen, size_t *n)
{
	if (!in || !out || !n || outlen == 0)
		return HIE_EINVAL;
	*n = 0;
	out[0] = '\0';
	if (len % 4 != 0)
		return HIE_EPARSE;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		for (size_t k = 0; k < 4; k++) {
			unsigned char ch = (unsigned char)in[i + k];
			if (ch == '=' && i + 4 == len && k >= 2) {
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad || (v[k] = b64_val(ch)) < 0)
				return HIE_EPARSE; /* a character after '=', or not base64 */
		}
		unsigned bits = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
		/* Non-canonical encodings (bits set in the padding) are refused too: strict RFC 4648 §3.5. */
		if ((pad == 1 && (bits & 0xff)) || (pad == 2 && (bits & 0xffff)))
			return HIE_EPARSE;
		size_t take = 3 - pad;
		if (o + take + 1 > outlen)
			return HIE_ETOOBIG;
		for (size_t k = 0; k < take; k++)
			out[o++] = (char)((bits >> (16 - 8 * k)) & 0xff);
	}
	out[o] = '\0';
	*n = o;
	return HIE_OK;
}

enum auth_step { STEP_OK, STEP_CANCEL, STEP_BAD64, STEP_IO };

/* Sends the 334 challenge and reads one response line, decoded into out. */
static enum auth_step challenge(struct sess *x, const char *text, char *out, size_t outlen, size_t *n,
				hie_err_t *ioerr)
{
	hie_err_t err = reply(x, "334 %s", text);
	if (!err)
		err = flush(x);
	if (!err) {
		hie_net_set_deadline(x->c, x->s->o.cmd_ms);
		err = hie_net_readline(x->c, &x->line, HISP_SMTP_AUTH_LINE_MAX);
	}
	if (err == HIE_ETOOBIG)
		return STEP_BAD64;
	if (err) {
		*ioerr = err;
		return STEP_IO;
	}
	const char *l = hie_buf_str(&x->line);
	if (x->line.len == 1 && l[0] == '*')
		return STEP_CANCEL;
	return hisp_smtp_b64_decode(l, x->line.len, out, outlen, n) ? STEP_BAD64 : STEP_OK;
}

/* Bytes [0, n) hold no NUL (C strings for the check). */
static bool no_nul(const char *p, size_t n)
{
	return memchr(p, '\0', n) == NULL;
}

/* PLAIN: [authzid] NUL authcid NUL passwd. Only authzid empty or equal to authcid (no proxy login). */
static bool plain_split(char *buf, size_t n, const char **user, const char **pass)
{
	char *a = memchr(buf, '\0', n);
	if (!a)
		return false;
	char *b = memchr(a + 1, '\0', n - (size_t)(a + 1 - buf));
	if (!b || !no_nul(b + 1, n - (size_t)(b + 1 - buf)))
		return false;
	*user = a + 1;
	*pass = b + 1;
	return buf[0] == '\0' || strcmp(buf, *user) == 0;
}

static hie_err_t auth_failed(struct sess *x, const char *mech, const char *result, const char *text)
{
	hie_log(HIE_LOG_NOTICE, "event=submission.auth conn=%llu client=%s mech=%s result=%s",
		(unsigned long long)hie_net_conn_id(x->c), hie_net_peer_addr(x->c), mech, result);
	hie_err_t err = reply(x, "%s", text);
	if (!err && ++x->auth_fails >= HISP_SMTP_AUTH_FAILS) {
		err = reply(x, "421 4.7.0 %s too many failed authentication attempts, closing connection",
			    x->s->host);
		x->quit = true;
		x->error_close = true;
	}
	return err;
}

static hie_err_t check_login(struct sess *x, const char *mech, const char *user, const char *pass)
{
	const struct hisp_smtp_ops *ops = &x->s->ops;
	char who[HISP_SMTP_USER_MAX] = "";
	hie_err_t r = ops->auth ? ops->auth(ops->arg, hie_net_peer_addr(x->c), user, pass, who, sizeof who)
				: HIE_EUNSUPPORTED;
	/* The check may wait for a verification slot: the reply gets a fresh deadline. */
	hie_net_set_deadline(x->c, x->s->o.cmd_ms);
	if (r == HIE_OK && who[0]) {
		snprintf(x->user, sizeof x->user, "%s", who);
		x->authed = true;
		x->errors = 0;
		hie_log(HIE_LOG_INFO, "event=submission.auth conn=%llu client=%s mech=%s result=ok",
			(unsigned long long)hie_net_conn_id(x->c), hie_net_peer_addr(x->c), mech);
		return reply(x, "235 2.7.0 Authentication successful");
	}
	if (r == HIE_OK || r == HIE_EDENIED)
		return auth_failed(x, mech, "fail", "535 5.7.8 Authentication credentials invalid");
	if (r == HIE_EBUSY)
		return auth_failed(x, mech, "locked", "454 4.7.0 Temporary authentication failure");
	return auth_failed(x, mech, hie_errname(r), "454 4.7.0 Temporary authentication failure");
}

static hie_err_t auth_exchange(struct sess *x, bool plain, const char *ir, size_t irlen, char *a, char *b,
			       size_t cap)
{
	const char *mech = plain ? "plain" : "login";
	size_t na = 0, nb = 0;
	hie_err_t ioerr = HIE_OK;
	enum auth_step st = STEP_OK;
	if (irlen == 1 && ir[0] == '=') {
		a[0] = '\0'; /* an empty initial response (RFC 4954 §4) */
	} else if (irlen) {
		if (irlen == 1 && ir[0] == '*')
			st = STEP_CANCEL;
		else if (hisp_smtp_b64_decode(ir, irlen, a, cap, &na))
			st = STEP_BAD64;
	} else {
		st = challenge(x, plain ? "" : "VXNlcm5hbWU6", a, cap, &na, &ioerr);
	}
	if (st == STEP_OK && !plain)
		st = challenge(x, "UGFzc3dvcmQ6", b, cap, &nb, &ioerr);
	if (st == STEP_IO)
		return ioerr;
	if (st == STEP_CANCEL)
		return auth_failed(x, mech, "cancelled", "501 5.7.0 Authentication cancelled");
	if (st == STEP_BAD64)
		return auth_failed(x, mech, "bad_base64", "501 5.5.2 Invalid base64 data");
	const char *user = a, *pass = b;
	bool ok = plain ? plain_split(a, na, &user, &pass) : no_nul(a, na) && no_nul(b, nb);
	if (!ok)
		return auth_failed(x, mech, "fail", "535 5.7.8 Authentication credentials invalid");
	return check_login(x, mech, user, pass);
}

static hie_err_t do_auth(struct sess *x, const struct hisp_smtp_cmd *cmd)
{
	if (!x->greeted)
		return bad(x, "503 5.5.1 send EHLO first");
	if (!x->s->o.tls || !hie_net_is_tls(x->c))
		return bad(x, "538 5.7.11 Encryption required for requested authentication mechanism");
	if (x->authed)
		return bad(x, "503 5.5.1 already authenticated");
	if (x->in_mail)
		return bad(x, "503 5.5.1 MAIL transaction in progress");
	size_t m = 0;
	while (m < cmd->arglen && cmd->arg[m] != ' ')
		m++;
	const char *ir = cmd->arg + m;
	size_t irlen = cmd->arglen - m;
	while (irlen && ir[0] == ' ') {
		ir++;
		irlen--;
	}
	bool plain = ci_eq(cmd->arg, m, "PLAIN");
	if (!plain && !ci_eq(cmd->arg, m, "LOGIN"))
		return auth_failed(x, "other", "mechanism", "504 5.5.4 Unrecognized authentication type");
	/* The initial response points into x->line, which a challenge overwrites: it is decoded first. */
	size_t cap = HISP_SMTP_AUTH_LINE_MAX; /* decoded base64 is shorter than its line */
	char *a = malloc(cap), *b = malloc(cap);
	hie_err_t err = HIE_ENOMEM;
	if (a && b) {
		b[0] = '\0';
		err = auth_exchange(x, plain, ir, irlen, a, b, cap);
	}
	if (a)
		explicit_bzero(a, cap);
	if (b)
		explicit_bzero(b, cap);
	free(a);
	free(b);
	explicit_bzero(x->line.data, x->line.len);
	return err;
}

static hie_err_t dispatch(struct sess *x)
{
	struct hisp_smtp_cmd cmd;
	hie_err_t perr = hisp_smtp_cmd_parse(hie_buf_str(&x->line), x->line.len, &cmd);
	if (cmd.verb == HISP_SMTP_AUTH && !x->s->o.submission)
		cmd.verb = HISP_SMTP_UNKNOWN;
	/* Submission mode reads lines up to the AUTH limit; other commands keep the RFC 5321 one. */
	if (x->line.len > HISP_SMTP_LINE_MAX && cmd.verb != HISP_SMTP_AUTH)
		return bad(x, "500 5.5.2 line too long");
	if (cmd.verb == HISP_SMTP_UNKNOWN)
		return bad(x, "500 5.5.1 command unrecognized");
	if (perr) {
		switch (cmd.verb) {
		case HISP_SMTP_HELO:
		case HISP_SMTP_EHLO:
			return bad(x, "501 5.5.4 syntax: EHLO hostname");
		case HISP_SMTP_MAIL:
			return bad(x, "501 5.5.4 syntax: MAIL FROM:<address>");
		case HISP_SMTP_RCPT:
			return bad(x, "501 5.5.4 syntax: RCPT TO:<address>");
		default:
			return bad(x, "501 5.5.4 syntax error in parameters or arguments");
		}
	}
	switch (cmd.verb) {
	case HISP_SMTP_HELO:
	case HISP_SMTP_EHLO:
		return do_helo(x, &cmd);
	case HISP_SMTP_MAIL:
		return do_mail(x, &cmd);
	case HISP_SMTP_RCPT:
		return do_rcpt(x, &cmd);
	case HISP_SMTP_DATA:
		return do_data(x);
	case HISP_SMTP_RSET:
		reset_tx(x);
		return reply(x, "250 2.0.0 Ok");
	case HISP_SMTP_NOOP:
		return reply(x, "250 2.0.0 Ok");
	case HISP_SMTP_QUIT:
		x->quit = true;
		return reply(x, "221 2.0.0 Bye");
	case HISP_SMTP_VRFY:
		return reply(x, "252 2.5.2 cannot VRFY user, but will accept message and attempt delivery");
	case HISP_SMTP_HELP:
		return reply(x, "214 2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS%s",
			     x->s->o.submission ? " AUTH" : "");
	case HISP_SMTP_STARTTLS:
		return do_starttls(x);
	case HISP_SMTP_AUTH:
		return do_auth(x, &cmd);
	default:
		return bad(x, "500 5.5.1 command unrecognized");
	}
}

/* --- session ----------------------------------------------------------------------------------- */

static hie_err_t command_loop(struct sess *x)
{
	const struct hisp_smtp_in *s = x->s;
	hie_net_set_deadline(x->c, s->o.cmd_ms);
	hie_err_t err = reply(x, "220 %s ESMTP hienode", s->host);
	while (!err && !x->quit) {
		hie_net_set_deadline(x->c, s->o.cmd_ms);
		if (hie_net_pending(x->c) == 0) {
			err = flush(x);
			if (err)
				break;
		}
		err = hie_net_readline(x->c, &x->line, s->o.submission ? HISP_SMTP_AUTH_LINE_MAX : HISP_SMTP_LINE_MAX);
		if (err == HIE_ETOOBIG) {
			err = bad(x, "500 5.5.2 line too long");
			continue;
		}
		if (!err)
			err = dispatch(x);
	}
	return err;
}

static void session(struct hie_net_conn *c, void *arg)
{
	struct hisp_smtp_in *s = arg;
	struct sess x = {.s = s, .c = c};
	hie_buf_init(&x.line, (s->o.submission ? HISP_SMTP_AUTH_LINE_MAX : HISP_SMTP_LINE_MAX) + 2);
	hie_buf_init(&x.data, s->o.max_message + 2);
	hie_buf_init(&x.out, OUT_MAX);

	hie_err_t err = command_loop(&x);
	if (err == HIE_EBUSY || (err == HIE_ETIMEOUT && hie_net_stopping(c))) {
		/* Idle at the stop, or busy (inside DATA) past the stop grace: then the write is likely refused. */
		reply(&x, "421 4.3.2 %s shutting down", s->host);
	} else if (err == HIE_ETIMEOUT) {
		/* A read that timed out leaves the stream usable for this last line (a write that timed out
		 * does not, and this write then fails at once). */
		hie_net_set_deadline(c, LAST_WRITE_MS);
		reply(&x, "421 4.4.2 %s timeout, closing connection", s->host);
	}
	flush(&x);
	const char *why = x.quit ? (x.error_close ? "errors" : "quit")
			  : err == HIE_ECLOSED ? "closed" : err == HIE_EBUSY ? "stopping" : hie_errname(err);
	hie_log(err == HIE_ETIMEOUT ? HIE_LOG_NOTICE : HIE_LOG_INFO,
		"event=smtp.end conn=%llu client=%s messages=%lu errors=%u tls=%s reason=%s",
		(unsigned long long)hie_net_conn_id(c), hie_net_peer_addr(c), x.messages, x.errors,
		hie_net_is_tls(c) ? "yes" : "no", why);
	reset_tx(&x);
	free(x.rcpts);
	if (x.line.data)
		explicit_bzero(x.line.data, x.line.len); /* an AUTH line may be the last one read */
	hie_buf_free(&x.line);
	hie_buf_free(&x.data);
	hie_buf_free(&x.out);
}

static void refuse(struct hie_net_conn *c, enum hie_net_refusal why, void *arg)
{
	const struct hisp_smtp_in *s = arg;
	if (why == HIE_NET_REFUSE_NOMEM)
		hie_net_printf(c, "421 4.3.2 %s insufficient system resources\r\n", s->host);
	else
		hie_net_printf(c, "421 4.7.0 %s too many connections, try again later\r\n", s->host);
}

/* The host name goes into every greeting: keep it to DNS characters. */
static void set_host(struct hisp_smtp_in *s, const char *h)
{
	size_t n = h ? strlen(h) : 0;
	bool ok = n > 0 && n < sizeof s->host;
	for (size_t i = 0; ok && i < n; i++)
		ok = is_dchar((unsigned char)h[i]);
	snprintf(s->host, sizeof s->host, "%s", ok ? h : "localhost");
}

hie_err_t hisp_smtp_in_start(struct hie_net_listener *l, const struct hisp_smtp_in_opts *o,
			     const struct hisp_smtp_ops *ops, struct hisp_smtp_in **out)
{
	if (!l || !o || !ops || !out)
		return HIE_EINVAL;
	struct hisp_smtp_in *s = calloc(1, sizeof *s);
	if (!s)
		return HIE_ENOMEM;
	s->o = *o;
	s->ops = *ops;
	set_host(s, o->hostname);
	s->o.hostname = s->host;
	if (!s->o.max_message)
		s->o.max_message = 64u * 1024u * 1024u;
	if (!s->o.max_rcpts)
		s->o.max_rcpts = 100;
	if (s->o.cmd_ms <= 0)
		s->o.cmd_ms = 300000;
	if (s->o.data_ms <= 0)
		s->o.data_ms = 600000;
	struct hie_net_opts no = {
		.name = s->o.submission ? "submission" : "smtp",
		.max_conns = s->o.max_conns,
		.first_deadline_ms = s->o.cmd_ms,
		.on_refuse = refuse,
	};
	hie_err_t err = hie_net_serve(l, &no, session, s, &s->srv);
	if (err) {
		free(s);
		return err;
	}
	*out = s;
	return HIE_OK;
}

void hisp_smtp_in_stop(struct hisp_smtp_in *s, int grace_ms)
{
	if (!s)
		return;
	hie_net_stop(s->srv, grace_ms);
	free(s);
}
