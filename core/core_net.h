/*
 * core_net.h — TCP listeners and connections for line protocols (SMTP, MLLP), with TLS and STARTTLS.
 *
 * Binding and serving are separate so that the daemon binds as root, drops privileges, then serves:
 *
 *   hie_net_listen("127.0.0.1:2525", &l);           // as root
 *   ... drop privileges ...
 *   hie_net_serve(l, &opts, smtp_session, cfg, &srv); // accept thread + one thread per connection
 *   ... hie_net_stop(srv, 10000);
 *
 * A handler owns its connection until it returns; the connection is then closed by the server.
 * Every read and write obeys the connection's phase deadline (hie_net_set_deadline): once it passes,
 * I/O fails with HIE_ETIMEOUT however slowly bytes keep trickling in (Postfix stream deadlines). Input is
 * read in blocks into a per-connection buffer, so pipelined commands are kept between calls and large
 * bodies do not cost a system call per byte.
 *
 * Errors common to the I/O calls: HIE_ETIMEOUT (phase deadline or stop grace passed), HIE_ECLOSED (the
 * peer closed or reset), HIE_EBUSY (the server is stopping and the peer was idle: answer "421" and
 * return), HIE_ETLS (TLS failure, logged), HIE_EIO (other socket error), HIE_ETOOBIG (a cap; the stream
 * is resynchronized as described per call). After HIE_ETIMEOUT, HIE_ECLOSED, HIE_ETLS or HIE_EIO the
 * connection is broken: later calls fail with the same error, and only closing is left.
 */
#ifndef HIENODE_CORE_NET_H
#define HIENODE_CORE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/core_buf.h"
#include "core/core_err.h"

struct hie_net_listener;
struct hie_net_server;
struct hie_net_conn;

/* Why an accepted connection is refused before its handler runs. */
enum hie_net_refusal {
	HIE_NET_REFUSE_TOTAL = 1, /* max_conns reached */
	HIE_NET_REFUSE_PER_IP,    /* max_per_ip reached for this client address */
	HIE_NET_REFUSE_NOMEM,     /* no memory or no thread for it */
};

/* Serves one connection; the server closes it when this returns. */
typedef void (*hie_net_handler_fn)(struct hie_net_conn *c, void *arg);
/*
 * Writes the protocol's refusal line (SMTP "421 4.7.0 too many connections"), with a short write
 * deadline already set; runs on the accept thread, so it must only write. Not called for implicit-TLS
 * listeners (the refusal would have to wait for a handshake): those are closed at once.
 */
typedef void (*hie_net_refuse_fn)(struct hie_net_conn *c, enum hie_net_refusal why, void *arg);

struct hie_net_opts {
	const char *name;         /* listener name for logs ("smtp", "mllp"); NULL → "net" */
	unsigned max_conns;       /* connections served at once; 0 → 100 */
	unsigned max_per_ip;      /* connections at once from one client address; 0 → max_conns */
	int first_deadline_ms;    /* deadline of the first phase (TLS handshake + greeting to first
	                             command); 0 → 30000 */
	size_t read_block;        /* input buffer size per connection; 0 → 16384 (min 256) */
	SSL_CTX *implicit_tls;    /* non-NULL: TLS from the first byte (handshake before the handler); the
	                             context must outlive the server */
	hie_net_refuse_fn on_refuse; /* NULL → refused connections are just closed */
	int refuse_write_ms;      /* write deadline for the refusal line; 0 → 1000 */
};

/*
 * Binds and listens on "host:port", "[v6addr]:port" or ":port"/"*:port" (all IPv4 addresses), with
 * SO_REUSEADDR. Port 0 lets the kernel choose (see hie_net_listener_port). The host must be an address
 * or a name in /etc/hosts. *out belongs to the caller until handed to hie_net_serve (or freed with
 * hie_net_listener_close). HIE_EINVAL for a malformed address, HIE_ESYS for socket/bind/listen (logged).
 */
hie_err_t hie_net_listen(const char *hostport, struct hie_net_listener **out);
/* The bound port (the kernel's choice for port 0). */
int hie_net_listener_port(const struct hie_net_listener *l);
/* Closes a listener that was never served; NULL is ignored. */
void hie_net_listener_close(struct hie_net_listener *l);
/* Frees the listener but hands its listening socket to the caller (who must close it), e.g. for an HTTP
 * server library that accepts on an already bound socket. */
int hie_net_listener_release_fd(struct hie_net_listener *l);

/*
 * Starts the accept thread. The listener is taken over on success (and left to the caller on failure).
 * opts is copied. *out belongs to the caller and is released by hie_net_stop. Ignores SIGPIPE for the
 * process (writes to closed sockets must fail with an error, not kill the daemon).
 * HIE_ESYS if a thread or pipe cannot be made, HIE_ENOMEM.
 */
hie_err_t hie_net_serve(struct hie_net_listener *l, const struct hie_net_opts *opts,
			hie_net_handler_fn handler, void *arg, struct hie_net_server **out);

/*
 * Graceful stop (never from a handler thread: it waits for them): stops accepting, then tells the handlers (hie_net_stopping becomes true, an idle wait
 * for the next command returns HIE_EBUSY at once, any other wait ends with HIE_ETIMEOUT when grace_ms
 * has passed), then waits for them. Sockets still open after the grace are shut down. Joins every thread,
 * closes the listener and frees srv; NULL is ignored.
 */
void hie_net_stop(struct hie_net_server *srv, int grace_ms);

/* Connections being served now (for status and tests). */
unsigned hie_net_server_active(struct hie_net_server *srv);

/*
 * Outbound connection (SMTP client, partner gateways) to host and port (name or address), within
 * timeout_ms, which also becomes its first phase deadline. *out belongs to the caller (hie_net_close).
 * HIE_ENOTFOUND (name not resolved), HIE_ETIMEOUT, HIE_EIO (refused/unreachable, logged).
 */
hie_err_t hie_net_connect(const char *host, const char *port, int timeout_ms, struct hie_net_conn **out);
/* Closes a connection made by hie_net_connect (TLS close_notify sent if possible); NULL is ignored. */
void hie_net_close(struct hie_net_conn *c);

/* --- deadlines and state ------------------------------------------------------------------------ */

/*
 * Starts a phase: every read and write fails with HIE_ETIMEOUT once ms milliseconds from now have passed
 * (ms <= 0 expires at once). Example: 300000 for each SMTP command, 600000 for the whole DATA phase.
 */
void hie_net_set_deadline(struct hie_net_conn *c, int ms);
/* Milliseconds left in the current phase (0 when passed). */
int64_t hie_net_deadline_left(const struct hie_net_conn *c);
/* True once hie_net_stop was called for the connection's server. */
bool hie_net_stopping(const struct hie_net_conn *c);
/* Bytes received and not yet consumed (plaintext or decrypted); STARTTLS must not inherit any. */
size_t hie_net_pending(const struct hie_net_conn *c);

/* Connection id for log lines (conn=...); unique within the process. */
uint64_t hie_net_conn_id(const struct hie_net_conn *c);
/* Peer address as text ("1.2.3.4", "::1"); owned by the connection. */
const char *hie_net_peer_addr(const struct hie_net_conn *c);
int hie_net_peer_port(const struct hie_net_conn *c);
/* The listener name from hie_net_opts ("net" for outbound connections). */
const char *hie_net_conn_name(const struct hie_net_conn *c);

struct hie_net_stats {
	uint64_t bytes_in, bytes_out; /* application bytes (plaintext, decrypted when TLS is on) */
	uint64_t reads;               /* read/SSL_read calls that returned data */
};
void hie_net_get_stats(const struct hie_net_conn *c, struct hie_net_stats *st);

/* --- reading ------------------------------------------------------------------------------------ */

/*
 * Reads one line, CRLF or bare LF ended, into line (reset first) without its terminator. A line of more
 * than max bytes (not counting the terminator) gives HIE_ETOOBIG after the rest of it, up to and
 * including the next LF, has been read and discarded, so the protocol can answer "500 line too long"
 * and read the next line. line->max must be at least max + 1. A wait for the first byte of a line
 * with nothing buffered is an idle wait (HIE_EBUSY when the server stops).
 */
hie_err_t hie_net_readline(struct hie_net_conn *c, struct hie_buf *line, size_t max);

/*
 * Appends bytes to out until the delimiter (dlen >= 1 bytes, e.g. "\x1c\r" for MLLP) has been read,
 * delimiter included; bytes after it stay buffered. More than max bytes in this call gives HIE_ETOOBIG
 * after everything up to the delimiter has been discarded (out is left as it was before the call).
 * The wait for the first byte is an idle wait. Reading costs one system call per read_block.
 */
hie_err_t hie_net_read_until(struct hie_net_conn *c, const void *delim, size_t dlen, struct hie_buf *out,
			     size_t max);

/*
 * SMTP DATA (RFC 5321 §4.5.2): appends the message to out up to the line ".", which is not included;
 * leading dots are unstuffed; lines are kept with their CRLF. Only CRLF "." CRLF ends the message
 * (after a bare LF line ending, "." does not end the message: SMTP smuggling). A message over max bytes
 * gives HIE_ETOOBIG and one with a bare-LF line ending gives HIE_EPROTO, in both cases after the whole
 * message has been read to its end so that the next command is in step (out is then left as it was
 * before the call for HIE_ETOOBIG, and holds the message for HIE_EPROTO). A bare CR inside a line is data.
 */
hie_err_t hie_net_read_dotted(struct hie_net_conn *c, struct hie_buf *out, size_t max);

/* Reads at least 1 and at most n bytes (buffered ones first) into buf; *got is the count. */
hie_err_t hie_net_read(struct hie_net_conn *c, void *buf, size_t n, size_t *got);

/* --- writing ------------------------------------------------------------------------------------ */

/* Writes all len bytes or fails (deadline applies). */
hie_err_t hie_net_write(struct hie_net_conn *c, const void *data, size_t len);
/* Formats (at most 64 KiB) and writes all of it. */
hie_err_t hie_net_printf(struct hie_net_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- TLS ---------------------------------------------------------------------------------------- */

/*
 * Server side STARTTLS: discards any buffered plaintext (CVE-2011-0411: commands pipelined after
 * STARTTLS must not run inside the TLS session; the discard is logged), then does the handshake within
 * the current deadline. Afterwards all I/O goes through TLS. HIE_ETLS (handshake failed, logged),
 * HIE_ETIMEOUT, HIE_ECLOSED, HIE_EINVAL (TLS already on). A failure breaks the connection.
 */
hie_err_t hie_net_starttls(struct hie_net_conn *c, SSL_CTX *ctx);

/*
 * Client side: the same upgrade for an outbound connection; the server's certificate must be valid for
 * verify_host (see hie_tls_set_peer_host). Buffered plaintext is discarded as above.
 */
hie_err_t hie_net_starttls_client(struct hie_net_conn *c, SSL_CTX *ctx, const char *verify_host);

/* True once a handshake has completed on c (stays true after the peer closes). */
bool hie_net_is_tls(const struct hie_net_conn *c);
/* The peer's certificate (verified if the context verifies), or NULL; owned by the connection. */
X509 *hie_net_peer_cert(const struct hie_net_conn *c);
/* "TLSv1.3", cipher name; "" without TLS. Static strings. */
const char *hie_net_tls_version(const struct hie_net_conn *c);
const char *hie_net_tls_cipher(const struct hie_net_conn *c);

#endif
