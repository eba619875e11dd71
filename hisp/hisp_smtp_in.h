/*
 * hisp_smtp_in.h — the SMTP receiver for Direct messages from other HISPs (RFC 5321; [smtp] listen).
 *
 * ESMTP with EHLO/HELO, SIZE (refused at MAIL when the declared size is over the cap, 552 after DATA when the
 * real one is), PIPELINING, 8BITMIME, STARTTLS (offered when a TLS context is given; discarding pipelined
 * plaintext), RSET, NOOP, QUIT, VRFY (252); RCPT TO checked with ops->rcpt (550 5.1.1 for unknown local
 * addresses, 451 when it cannot be decided now), at most max_rcpts (452); DATA read with core_net's dotted
 * reader (bare LF refused: SMTP smuggling), then ops->store; "250 2.0.0 Ok: queued as <id>" is written only
 * after store returned HIE_OK (which means: committed). Store failure → 451 4.3.0, nothing lost for the
 * client to resend. Each command has its deadline (cmd_ms), the DATA phase its own (data_ms); line length
 * capped (512 + extensions, 500 5.5.2 line too long); too many errors (bad commands) close the session
 * (421). Server stop: 421 4.3.2 to idle sessions.
 *
 * Submission mode (opts.submission, RFC 6409 + AUTH 4954, the edge's [submission] listen): AUTH PLAIN and
 * LOGIN are advertised and accepted only over TLS (538 5.7.11 before STARTTLS, RFC 4954 §4); MAIL and RCPT
 * need a successful AUTH (530 5.7.0); MAIL FROM must be granted to the user (ops->mail: 550 5.7.1); RCPT
 * takes any syntactically valid address (ops->rcpt is not called); a store refusal (HIE_EDENIED with
 * env->reason) is 550 5.7.1 <reason>. Wrong credentials 535 5.7.8, locked out 454 4.7.0, "*" 501 5.7.0,
 * a second AUTH 503; the third failed AUTH of a session closes it (421); before AUTH at most
 * HISP_SMTP_MAX_ERRORS_PREAUTH bad commands. Credentials are never logged.
 */
#ifndef HIENODE_HISP_SMTP_IN_H
#define HIENODE_HISP_SMTP_IN_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "core/core_err.h"
#include "core/core_net.h"

struct hisp_envelope {
	const char *peer;         /* client address */
	const char *helo;         /* EHLO/HELO argument as given (printable) */
	const char *mail_from;    /* reverse path without <>, "" for the null sender */
	const char *const *rcpts; /* forward paths without <>, lower-cased */
	size_t nrcpts;
	bool tls;                 /* the message came over TLS */
	/* submission mode */
	const char *user;         /* the authenticated user (NULL on the MX receiver) */
	char *reason;             /* store may write why it refused the message (HIE_EDENIED) here */
	size_t reasonlen;
};

struct hisp_smtp_ops {
	/* 250 (accept), 550 (no such local address), 451 (cannot tell now) for one lower-cased address. */
	int (*rcpt)(void *arg, const char *address);
	/* Stores the message durably (committed) and writes an id for the reply into id. */
	hie_err_t (*store)(void *arg, const struct hisp_envelope *env, const char *data, size_t len, char *id,
			   size_t idlen);
	void *arg;
	/* submission mode only: */
	/* Checks user/pass from client peer; as hisp_user_login: HIE_OK (out_user = the normalized user name),
	 * HIE_EDENIED (535), HIE_EBUSY (locked out: 454), anything else 454. */
	hie_err_t (*auth)(void *arg, const char *peer, const char *user, const char *pass, char *out_user,
			  size_t len);
	/* 250 when user may send as the lower-cased address, 550 when not, 451 when it cannot tell now. */
	int (*mail)(void *arg, const char *user, const char *address);
};

struct hisp_smtp_in_opts {
	const char *hostname;     /* greeting and EHLO reply */
	size_t max_message;       /* [smtp] max_message_size */
	unsigned max_rcpts;       /* [smtp] max_recipients */
	unsigned max_conns;       /* [smtp] max_connections */
	int cmd_ms;               /* per command ([smtp] command_timeout) */
	int data_ms;              /* whole DATA phase ([smtp] data_timeout) */
	SSL_CTX *tls;             /* STARTTLS offered when non-NULL; must outlive the server */
	bool submission;          /* submission mode (see above): AUTH required, ops->auth and ops->mail */
};

struct hisp_smtp_in;
/* Starts serving on l (taken over on success). ops and opts are copied. */
hie_err_t hisp_smtp_in_start(struct hie_net_listener *l, const struct hisp_smtp_in_opts *o,
			     const struct hisp_smtp_ops *ops, struct hisp_smtp_in **out);
void hisp_smtp_in_stop(struct hisp_smtp_in *s, int grace_ms);

/*
 * Parses an SMTP path argument ("<a@b>" with optional ESMTP parameters after it) for MAIL FROM/RCPT TO:
 * the address (without <>, lower-cased, "" for "<>") into addr, and SIZE=n (MAIL only, -1 when absent).
 * HIE_EPARSE for a malformed path (501), HIE_EUNSUPPORTED for an unknown parameter (555). Exposed for the
 * fuzz target and the unit tests.
 */
hie_err_t hisp_smtp_parse_path(const char *arg, size_t len, char *addr, size_t addrlen, long long *size);

/* --- additions by hisp_smtp_in.c (parser exposed for the fuzz target and tests; the DB side) ------------- */

#define HISP_SMTP_LINE_MAX 1000  /* command line without CRLF (512 of RFC 5321 + ESMTP parameters) */
#define HISP_SMTP_ADDR_MAX 254   /* a path's address (RFC 5321 §4.5.3.1.3 minus <>) */
#define HISP_SMTP_MAX_ERRORS 10  /* bad commands before 421 and close */
#define HISP_SMTP_ID_MAX 64      /* bytes of the id store writes (with NUL) */
#define HISP_SMTP_AUTH_LINE_MAX 12288 /* AUTH command or response line (RFC 4954 §4) */
#define HISP_SMTP_USER_MAX 255   /* bytes of a user name (with NUL) */
#define HISP_SMTP_AUTH_FAILS 3   /* failed AUTH commands per session before 421 and close */
#define HISP_SMTP_MAX_ERRORS_PREAUTH 5 /* bad commands before AUTH (submission mode) before 421 */

enum hisp_smtp_verb {
	HISP_SMTP_UNKNOWN = 0,
	HISP_SMTP_HELO,
	HISP_SMTP_EHLO,
	HISP_SMTP_MAIL,
	HISP_SMTP_RCPT,
	HISP_SMTP_DATA,
	HISP_SMTP_RSET,
	HISP_SMTP_NOOP,
	HISP_SMTP_QUIT,
	HISP_SMTP_VRFY,
	HISP_SMTP_HELP,
	HISP_SMTP_STARTTLS,
	HISP_SMTP_AUTH,  /* submission mode only; on the MX receiver treated as unknown */
};

struct hisp_smtp_cmd {
	enum hisp_smtp_verb verb;
	const char *arg;  /* into the line: HELO/EHLO/VRFY/NOOP argument, MAIL/RCPT text after "FROM:"/"TO:";
			     leading and trailing spaces removed */
	size_t arglen;
};

/*
 * Splits one command line (without CRLF) into verb and argument (verbs case-insensitive). An unknown verb
 * is HIE_OK with HISP_SMTP_UNKNOWN (500 5.5.1). HIE_EPARSE for a known verb whose syntax is wrong (501):
 * MAIL without "FROM:", RCPT without "TO:", HELO/EHLO/VRFY/AUTH without argument, DATA/RSET/QUIT/STARTTLS with
 * one, control or 8-bit bytes in the line. out->arg points into line.
 */
hie_err_t hisp_smtp_cmd_parse(const char *line, size_t len, struct hisp_smtp_cmd *out);

/* Strict base64 (RFC 4648 §4, padding required, no blanks) of an AUTH exchange into out[0..outlen), which
 * gets a NUL after the bytes; *n = the decoded length. HIE_EPARSE for bad base64, HIE_ETOOBIG. */
hie_err_t hisp_smtp_b64_decode(const char *in, size_t len, char *out, size_t outlen, size_t *n);

/*
 * The DB side given as ops by hisp_service.c; arg is the struct hisp * (hisp_svc.h).
 * hisp_inbox_rcpt: 250 when address is one of hisp_addresses, or has one of our certificates (hisp_certs
 * with key_file, owner = the address, or owner = its domain when the domain is one of hisp_domains: an
 * org-bound certificate); 550 otherwise; 451 on a database error. Answers are cached 5 s.
 * hisp_inbox_store: in ONE transaction, the hisp_inbound row (raw bytes as they came) and the
 * "hisp.receive" job (payload and dedup key from the row id), then wakes the workers; id = "in-<row id>".
 * HIE_EDB/HIE_EBUSY/HIE_ETIMEOUT from the database (nothing stored), HIE_EINVAL for bad arguments.
 */
int hisp_inbox_rcpt(void *arg, const char *address);
hie_err_t hisp_inbox_store(void *arg, const struct hisp_envelope *env, const char *data, size_t len, char *id,
			   size_t idlen);
/* Forgets every cached RCPT answer (tests; after the operator changed addresses in this process). */
void hisp_inbox_cache_clear(void);

#endif
