/*
 * core_net.c — TCP listener, thread per connection, bounded buffered reads with phase deadlines, TLS.
 * See core_net.h for the contract.
 *
 * Sockets are non-blocking; every wait is a poll() with the time left in the phase. A read or write call
 * first tries the system call and only then waits, so data already in the kernel (or inside OpenSSL)
 * costs no poll. Input goes through one buffer per connection of opts.read_block bytes.
 *
 * Stopping: hie_net_stop sets `stopping` and the stop deadline, then writes one byte to a pipe that is
 * never read, so every poll that includes the pipe wakes at once and keeps waking; idle waits then return
 * HIE_EBUSY, the others recompute their deadline (now capped by the stop deadline) and poll without it.
 */
#define _GNU_SOURCE /* accept4, pipe2, memmem (Linux) */
#include "core/core_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/core_log.h"
#include "core/core_time.h"
#include "core/core_tls.h"

#define NET_NAME_MAX 32
#define PRINTF_MAX (64 * 1024)

struct hie_net_listener {
	int fd;
	int port;
};

struct hie_net_server {
	struct hie_net_listener *l;
	struct hie_net_opts opts;
	char name[NET_NAME_MAX];
	hie_net_handler_fn handler;
	void *arg;
	pthread_t accept_thread;
	int stop_pipe[2];
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* signalled when a connection ends */
	struct hie_net_conn *conns; /* being served; under mu */
	unsigned nactive;           /* threads that still touch the server; under mu */
	atomic_bool stopping;
	_Atomic int64_t stop_deadline;
};

struct hie_net_conn {
	int fd;
	SSL *ssl;
	struct hie_net_server *srv; /* NULL for outbound connections */
	struct hie_net_conn *prev, *next;
	uint64_t id;
	char name[NET_NAME_MAX];
	char addr[INET6_ADDRSTRLEN];
	int port;
	int64_t deadline;  /* monotonic ms */
	hie_err_t rbroken; /* sticky read error */
	hie_err_t wbroken; /* sticky write error */
	bool tls_up;       /* handshake completed */
	unsigned char *rbuf;
	size_t rcap, rstart, rend;
	struct hie_net_stats st;
};

static _Atomic uint64_t next_conn_id = 1;
static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void ignore_sigpipe(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
}

/* --- connection objects ------------------------------------------------------------------------- */

static void sockaddr_text(const struct sockaddr_storage *ss, socklen_t len, char *addr, size_t addrlen,
			  int *port)
{
	char serv[16];
	if (getnameinfo((const struct sockaddr *)ss, len, addr, (socklen_t)addrlen, serv, sizeof serv,
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(addr, addrlen, "unknown");
		*port = 0;
		return;
	}
	*port = (int)strtol(serv, NULL, 10);
	/* An IPv4 client on a dual-stack socket is the same client as on an IPv4 socket (per-IP limit). */
	if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr, '.'))
		memmove(addr, addr + 7, strlen(addr + 7) + 1);
}

static struct hie_net_conn *conn_new(int fd, size_t rcap, const char *name)
{
	struct hie_net_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->rbuf = malloc(rcap);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	c->rcap = rcap;
	c->fd = fd;
	c->id = atomic_fetch_add(&next_conn_id, 1);
	snprintf(c->name, sizeof c->name, "%s", name);
	return c;
}

/*
 * Closing with unread input makes the kernel answer with RST, which can destroy our last reply (a 421)
 * before the peer has read it. Drain what has already arrived, without waiting (nginx lingering close,
 * minus the wait).
 */
static void sock_close(int fd)
{
	char junk[4096];
	for (int i = 0; i < 16; i++)
		if (recv(fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

static void conn_free(struct hie_net_conn *c)
{
	if (c->ssl) {
		if (!c->rbroken && !c->wbroken) {
			ERR_clear_error();
			SSL_shutdown(c->ssl); /* one close_notify, best effort; no waiting for the peer's */
		}
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	if (c->fd >= 0)
		sock_close(c->fd);
	free(c->rbuf);
	free(c);
}

/* --- waiting ------------------------------------------------------------------------------------ */

static bool srv_stopping(const struct hie_net_server *s)
{
	return s && atomic_load(&s->stopping);
}

static int64_t effective_deadline(const struct hie_net_conn *c, bool stopping)
{
	int64_t dl = c->deadline;
	if (stopping) {
		int64_t sd = atomic_load(&c->srv->stop_deadline);
		if (sd < dl)
			dl = sd;
	}
	return dl;
}

/* Waits until fd is ready for events, the deadline passes, or (idle only) the server stops. */
static hie_err_t wait_io(struct hie_net_conn *c, short events, bool idle)
{
	for (;;) {
		bool stopping = srv_stopping(c->srv);
		if (idle && stopping)
			return HIE_EBUSY;
		int64_t left = effective_deadline(c, stopping) - hie_mono_ms();
		if (left <= 0)
			return HIE_ETIMEOUT;
		struct pollfd p[2] = {
			{ .fd = c->fd, .events = events },
			{ .fd = c->srv ? c->srv->stop_pipe[0] : -1, .events = POLLIN },
		};
		/* Once stopping, the pipe stays readable: watching it would spin. */
		nfds_t n = (c->srv && !stopping) ? 2 : 1;
		int r = poll(p, n, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			hie_log(HIE_LOG_ERR, "event=net.poll_failed conn=%llu errno=%d", (unsigned long long)c->id,
				errno);
			return HIE_EIO;
		}
		if (p[0].revents)
			return HIE_OK;
	}
}

static bool errno_closed(int e)
{
	return e == ECONNRESET || e == EPIPE || e == ENOTCONN || e == ETIMEDOUT || e == ESHUTDOWN;
}

/*
 * What a failed recv/send (n < 0, errno set) means: try again, wait for the socket, or the connection is broken
 * (*err = HIE_ECLOSED for a peer that went away, HIE_EIO, logged, for anything else).
 */
enum io_next { IO_RETRY, IO_WAIT, IO_BROKEN };

static enum io_next io_errno(const struct hie_net_conn *c, const char *what, hie_err_t *err)
{
	if (errno == EINTR)
		return IO_RETRY;
	if (errno_closed(errno)) {
		*err = HIE_ECLOSED;
		return IO_BROKEN;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return IO_WAIT;
	hie_log(HIE_LOG_WARN, "event=net.io_error conn=%llu what=%s errno=%d", (unsigned long long)c->id, what, errno);
	*err = HIE_EIO;
	return IO_BROKEN;
}

/*
 * Converts a failed SSL call. Returns 0 with *ev set for WANT_READ/WANT_WRITE, else the error.
 */
static hie_err_t ssl_failure(struct hie_net_conn *c, int r, short *ev, const char *what)
{
	int e = SSL_get_error(c->ssl, r);
	int saved = errno;
	switch (e) {
	case SSL_ERROR_WANT_READ:
		*ev = POLLIN;
		return HIE_OK;
	case SSL_ERROR_WANT_WRITE:
		*ev = POLLOUT;
		return HIE_OK;
	case SSL_ERROR_ZERO_RETURN:
		return HIE_ECLOSED;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 && (saved == 0 || errno_closed(saved)))
			return HIE_ECLOSED;
		if (ERR_peek_error() != 0)
			return hie_tls_error(what);
		hie_log(HIE_LOG_WARN, "event=net.io_error conn=%llu what=%s errno=%d", (unsigned long long)c->id,
			what, saved);
		return HIE_EIO;
	default:
		if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return HIE_ECLOSED;
		}
		return hie_tls_error(what);
	}
}

/*
 * Reads at least one more byte into the buffer. The deadline is checked before every read, so a peer
 * trickling bytes cannot extend the phase.
 */
static hie_err_t fill(struct hie_net_conn *c, bool idle)
{
	hie_err_t err;

	if (c->rbroken)
		return c->rbroken;
	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (c->rend == c->rcap && c->rstart > 0) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	if (c->rend == c->rcap)
		hie_panic("event=net.fill_full conn=%llu", (unsigned long long)c->id);
	size_t room = c->rcap - c->rend;
	for (;;) {
		bool stopping = srv_stopping(c->srv);
		if (idle && stopping && (!c->ssl || SSL_pending(c->ssl) == 0))
			return HIE_EBUSY;
		if (hie_mono_ms() >= effective_deadline(c, stopping))
			return HIE_ETIMEOUT;
		short ev = POLLIN;
		ssize_t n;
		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, c->rbuf + c->rend, room > INT_MAX ? INT_MAX : (int)room);
			n = r;
			if (r <= 0) {
				err = ssl_failure(c, r, &ev, "read");
				if (err)
					goto broken;
			}
		} else {
			n = recv(c->fd, c->rbuf + c->rend, room, 0);
			if (n == 0) {
				err = HIE_ECLOSED;
				goto broken;
			}
			if (n < 0) {
				enum io_next next = io_errno(c, "recv", &err);
				if (next == IO_RETRY)
					continue;
				if (next == IO_BROKEN)
					goto broken;
			}
		}
		if (n > 0) {
			c->rend += (size_t)n;
			c->st.bytes_in += (uint64_t)n;
			c->st.reads++;
			return HIE_OK;
		}
		err = wait_io(c, ev, idle);
		if (err)
			return err; /* a timeout or a stop leaves the stream usable for a last reply */
	}
broken:
	c->rbroken = err;
	return err;
}

/* --- reading ------------------------------------------------------------------------------------ */

hie_err_t hie_net_readline(struct hie_net_conn *c, struct hie_buf *line, size_t max)
{
	bool toobig = false, seen = false;

	hie_buf_reset(line);
	for (;;) {
		size_t avail = c->rend - c->rstart;
		if (avail == 0) {
			hie_err_t err = fill(c, !seen);
			if (err)
				return err;
			continue;
		}
		seen = true;
		unsigned char *p = c->rbuf + c->rstart;
		unsigned char *lf = memchr(p, '\n', avail);
		size_t take = lf ? (size_t)(lf - p) : avail;
		/* max + 1 leaves room for the CR of a CRLF that is split across reads. */
		if (!toobig && (line->len + take > max + 1 || hie_buf_add(line, p, take) != HIE_OK)) {
			toobig = true;
			hie_buf_reset(line);
		}
		c->rstart += take;
		if (!lf)
			continue;
		c->rstart++;
		if (toobig)
			return HIE_ETOOBIG;
		if (line->len && line->data[line->len - 1] == '\r')
			line->data[--line->len] = '\0';
		if (line->len > max) {
			hie_buf_reset(line);
			return HIE_ETOOBIG;
		}
		return HIE_OK;
	}
}

hie_err_t hie_net_read_until(struct hie_net_conn *c, const void *delim, size_t dlen, struct hie_buf *out,
			     size_t max)
{
	size_t start = out->len, got = 0;
	bool toobig = false, seen = false;

	if (dlen == 0 || dlen >= c->rcap)
		return HIE_EINVAL;
	for (;;) {
		size_t avail = c->rend - c->rstart;
		unsigned char *p = c->rbuf + c->rstart;
		unsigned char *hit = avail >= dlen ? memmem(p, avail, delim, dlen) : NULL;
		/* Without a hit, keep the last dlen-1 bytes: they may begin a delimiter split across reads. */
		size_t take = hit ? (size_t)(hit - p) + dlen : (avail >= dlen ? avail - (dlen - 1) : 0);
		if (take) {
			seen = true;
			if (!toobig && (got + take > max || hie_buf_add(out, p, take) != HIE_OK)) {
				toobig = true;
				out->len = start;
				if (out->data)
					out->data[start] = '\0';
			}
			got += take;
			c->rstart += take;
		}
		if (hit)
			return toobig ? HIE_ETOOBIG : HIE_OK;
		hie_err_t err = fill(c, !seen && avail == 0);
		if (err)
			return err;
	}
}

struct dotted {
	struct hie_buf *out;
	size_t start, got, max;
	bool toobig, bare_lf;
};

static void dotted_add(struct dotted *d, const void *p, size_t n)
{
	if (d->toobig)
		return;
	/* max + 1: the CR of the final ".\r\n" is appended before it is known to be the end. */
	if (d->got + n > d->max + 1 || hie_buf_add(d->out, p, n) != HIE_OK) {
		d->toobig = true;
		d->out->len = d->start;
		if (d->out->data)
			d->out->data[d->start] = '\0';
		return;
	}
	d->got += n;
}

hie_err_t hie_net_read_dotted(struct hie_net_conn *c, struct hie_buf *out, size_t max)
{
	struct dotted d = { .out = out, .start = out->len, .max = max };
	bool bol = true, dotline = false, last_cr = false, prev_crlf = true;
	size_t line_len = 0;

	for (;;) {
		size_t avail = c->rend - c->rstart;
		if (avail == 0) {
			hie_err_t err = fill(c, false);
			if (err)
				return err;
			continue;
		}
		unsigned char *p = c->rbuf + c->rstart;
		if (bol) {
			bol = false;
			dotline = p[0] == '.';
			line_len = 0;
			last_cr = false;
			if (dotline) {
				c->rstart++; /* unstuff (RFC 5321 §4.5.2) */
				continue;
			}
		}
		unsigned char *lf = memchr(p, '\n', avail);
		size_t n = lf ? (size_t)(lf - p) : avail;
		if (n) {
			last_cr = p[n - 1] == '\r';
			line_len += n;
			dotted_add(&d, p, n);
			c->rstart += n;
		}
		if (!lf)
			continue;
		c->rstart++;
		/* Only CRLF "." CRLF ends the message (SMTP smuggling: "\n.\r\n" is data). */
		if (dotline && line_len == 1 && last_cr && prev_crlf) {
			if (d.toobig || d.got - 1 > max) {
				out->len = d.start;
				if (out->data)
					out->data[d.start] = '\0';
				return HIE_ETOOBIG;
			}
			out->data[--out->len] = '\0'; /* the CR of ".\r" */
			return d.bare_lf ? HIE_EPROTO : HIE_OK;
		}
		if (!last_cr)
			d.bare_lf = true;
		dotted_add(&d, "\n", 1);
		prev_crlf = last_cr;
		bol = true;
	}
}

hie_err_t hie_net_read(struct hie_net_conn *c, void *buf, size_t n, size_t *got)
{
	*got = 0;
	if (n == 0)
		return HIE_EINVAL;
	if (c->rend == c->rstart) {
		hie_err_t err = fill(c, false);
		if (err)
			return err;
	}
	size_t k = c->rend - c->rstart;
	if (k > n)
		k = n;
	memcpy(buf, c->rbuf + c->rstart, k);
	c->rstart += k;
	*got = k;
	return HIE_OK;
}

/* --- writing ------------------------------------------------------------------------------------ */

hie_err_t hie_net_write(struct hie_net_conn *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	hie_err_t err = HIE_OK;

	if (c->wbroken)
		return c->wbroken;
	while (len > 0) {
		if (hie_mono_ms() >= effective_deadline(c, srv_stopping(c->srv))) {
			err = HIE_ETIMEOUT;
			goto broken;
		}
		short ev = POLLOUT;
		ssize_t n;
		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_write(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
			n = r;
			if (r <= 0) {
				err = ssl_failure(c, r, &ev, "write");
				if (err)
					goto broken;
			}
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0) {
				enum io_next next = io_errno(c, "send", &err);
				if (next == IO_RETRY)
					continue;
				if (next == IO_BROKEN)
					goto broken;
			}
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			c->st.bytes_out += (uint64_t)n;
			continue;
		}
		err = wait_io(c, ev, false);
		if (err)
			goto broken;
	}
	return HIE_OK;
broken:
	/* Part of a line (or of a TLS record) may be out: nothing more can be written in step. */
	c->wbroken = err;
	return err;
}

hie_err_t hie_net_printf(struct hie_net_conn *c, const char *fmt, ...)
{
	struct hie_buf b;
	va_list ap;

	hie_buf_init(&b, PRINTF_MAX);
	va_start(ap, fmt);
	hie_err_t err = hie_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	if (!err)
		err = hie_net_write(c, b.data, b.len);
	hie_buf_free(&b);
	return err;
}

/* --- TLS ---------------------------------------------------------------------------------------- */

static hie_err_t handshake(struct hie_net_conn *c)
{
	for (;;) {
		if (hie_mono_ms() >= effective_deadline(c, srv_stopping(c->srv)))
			return HIE_ETIMEOUT;
		ERR_clear_error();
		int r = SSL_do_handshake(c->ssl);
		if (r == 1)
			return HIE_OK;
		short ev = POLLIN;
		long vr = SSL_get_verify_result(c->ssl);
		hie_err_t err = ssl_failure(c, r, &ev, "handshake");
		if (err) {
			if (vr != X509_V_OK) {
				const char *why = X509_verify_cert_error_string(vr);
				char safe[128];
				hie_log_printable(safe, sizeof safe, why, strlen(why));
				hie_log(HIE_LOG_WARN, "event=tls.verify_failed conn=%llu client=%s code=%ld reason=%s",
					(unsigned long long)c->id, c->addr, vr, safe);
			}
			return err;
		}
		err = wait_io(c, ev, false);
		if (err)
			return err;
	}
}

static hie_err_t tls_begin(struct hie_net_conn *c, SSL_CTX *ctx, bool server, const char *verify_host)
{
	hie_err_t err;

	if (c->ssl || !ctx)
		return HIE_EINVAL;
	if (c->rbroken)
		return c->rbroken;
	if (c->wbroken)
		return c->wbroken;
	size_t stale = c->rend - c->rstart;
	if (stale) {
		/* CVE-2011-0411: plaintext sent after STARTTLS must not be read as if it came over TLS. */
		hie_log(HIE_LOG_WARN, "event=net.starttls_discard conn=%llu client=%s bytes=%zu",
			(unsigned long long)c->id, c->addr, stale);
		c->rstart = c->rend = 0;
	}
	c->ssl = SSL_new(ctx);
	if (!c->ssl) {
		err = hie_tls_error("SSL_new");
		goto broken;
	}
	if (!SSL_set_fd(c->ssl, c->fd)) {
		err = hie_tls_error("SSL_set_fd");
		goto broken;
	}
	if (server) {
		SSL_set_accept_state(c->ssl);
	} else {
		SSL_set_connect_state(c->ssl);
		if (verify_host) {
			err = hie_tls_set_peer_host(c->ssl, verify_host);
			if (err)
				goto broken;
		}
	}
	err = handshake(c);
	if (err) {
		hie_log(HIE_LOG_NOTICE, "event=net.tls_failed conn=%llu client=%s error=%s",
			(unsigned long long)c->id, c->addr, hie_errname(err));
		goto broken;
	}
	c->tls_up = true;
	hie_log(HIE_LOG_INFO, "event=net.tls conn=%llu client=%s version=%s cipher=%s peer_cert=%s",
		(unsigned long long)c->id, c->addr, SSL_get_version(c->ssl), hie_net_tls_cipher(c),
		SSL_get0_peer_certificate(c->ssl) ? "yes" : "no");
	return HIE_OK;
broken:
	c->rbroken = c->wbroken = err;
	return err;
}

hie_err_t hie_net_starttls(struct hie_net_conn *c, SSL_CTX *ctx)
{
	return tls_begin(c, ctx, true, NULL);
}

hie_err_t hie_net_starttls_client(struct hie_net_conn *c, SSL_CTX *ctx, const char *verify_host)
{
	if (!verify_host)
		return HIE_EINVAL;
	return tls_begin(c, ctx, false, verify_host);
}

bool hie_net_is_tls(const struct hie_net_conn *c)
{
	return c->tls_up;
}

X509 *hie_net_peer_cert(const struct hie_net_conn *c)
{
	return c->tls_up ? SSL_get0_peer_certificate(c->ssl) : NULL;
}

const char *hie_net_tls_version(const struct hie_net_conn *c)
{
	return c->tls_up ? SSL_get_version(c->ssl) : "";
}

const char *hie_net_tls_cipher(const struct hie_net_conn *c)
{
	const SSL_CIPHER *ci = c->tls_up ? SSL_get_current_cipher(c->ssl) : NULL;
	return ci ? SSL_CIPHER_get_name(ci) : "";
}

/* --- state accessors ---------------------------------------------------------------------------- */

void hie_net_set_deadline(struct hie_net_conn *c, int ms)
{
	c->deadline = hie_mono_ms() + (ms > 0 ? ms : 0);
}

int64_t hie_net_deadline_left(const struct hie_net_conn *c)
{
	int64_t left = effective_deadline(c, srv_stopping(c->srv)) - hie_mono_ms();
	return left > 0 ? left : 0;
}

bool hie_net_stopping(const struct hie_net_conn *c)
{
	return srv_stopping(c->srv);
}

size_t hie_net_pending(const struct hie_net_conn *c)
{
	size_t n = c->rend - c->rstart;
	if (c->ssl && !c->rbroken)
		n += (size_t)SSL_pending(c->ssl);
	return n;
}

uint64_t hie_net_conn_id(const struct hie_net_conn *c) { return c->id; }
const char *hie_net_peer_addr(const struct hie_net_conn *c) { return c->addr; }
int hie_net_peer_port(const struct hie_net_conn *c) { return c->port; }
const char *hie_net_conn_name(const struct hie_net_conn *c) { return c->name; }

void hie_net_get_stats(const struct hie_net_conn *c, struct hie_net_stats *st)
{
	*st = c->st;
}

/* --- listener ----------------------------------------------------------------------------------- */

/* Splits "host:port", "[v6]:port", ":port", "*:port". host is "" for any-IPv4. */
static hie_err_t split_hostport(const char *hp, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	size_t hl;
	const char *h = hp;

	if (hp[0] == '[') {
		const char *close = strchr(hp, ']');
		if (!close || close[1] != ':')
			return HIE_EINVAL;
		h = hp + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon)
			return HIE_EINVAL;
		hl = (size_t)(colon - hp);
		if (memchr(hp, ':', hl))
			return HIE_EINVAL; /* a bare IPv6 address needs brackets */
	}
	if (hl >= hostlen || strlen(colon + 1) >= portlen || colon[1] == '\0')
		return HIE_EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (strcmp(host, "*") == 0)
		host[0] = '\0';
	char *end;
	errno = 0;
	long v = strtol(colon + 1, &end, 10);
	if (errno || *end || v < 0 || v > 65535)
		return HIE_EINVAL;
	snprintf(port, portlen, "%ld", v);
	return HIE_OK;
}

hie_err_t hie_net_listen(const char *hostport, struct hie_net_listener **out)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL;
	struct hie_net_listener *l = NULL;
	int fd = -1, one = 1;
	hie_err_t err;

	*out = NULL;
	err = split_hostport(hostport, host, sizeof host, port, sizeof port);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=net.bad_address value=%s", hostport);
		return err;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_family = host[0] ? AF_UNSPEC : AF_INET;
	int gr = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gr != 0) {
		hie_log(HIE_LOG_ERR, "event=net.resolve_failed value=%s error=%d", hostport, gr);
		return HIE_EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
		hie_log(HIE_LOG_ERR, "event=net.listen_failed address=%s errno=%d", hostport, errno);
		err = HIE_ESYS;
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[INET6_ADDRSTRLEN];
	int bound_port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		err = HIE_ESYS;
		goto out;
	}
	sockaddr_text(&ss, sl, addr, sizeof addr, &bound_port);
	l = calloc(1, sizeof *l);
	if (!l) {
		err = HIE_ENOMEM;
		goto out;
	}
	l->fd = fd;
	l->port = bound_port;
	fd = -1;
	hie_log(HIE_LOG_INFO, "event=net.listen address=%s port=%d", addr, bound_port);
	*out = l;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return err;
}

int hie_net_listener_port(const struct hie_net_listener *l)
{
	return l->port;
}

void hie_net_listener_close(struct hie_net_listener *l)
{
	if (!l)
		return;
	close(l->fd);
	free(l);
}

int hie_net_listener_release_fd(struct hie_net_listener *l)
{
	int fd = l->fd;
	free(l);
	return fd;
}

/* --- serving ------------------------------------------------------------------------------------ */

static void conn_unlink(struct hie_net_server *s, struct hie_net_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void *conn_main(void *arg)
{
	struct hie_net_conn *c = arg;
	struct hie_net_server *s = c->srv;

	hie_log(HIE_LOG_INFO, "event=net.connect listener=%s conn=%llu client=%s port=%d", c->name,
		(unsigned long long)c->id, c->addr, c->port);
	if (!s->opts.implicit_tls || tls_begin(c, s->opts.implicit_tls, true, NULL) == HIE_OK)
		s->handler(c, s->arg);
	hie_log(HIE_LOG_INFO, "event=net.disconnect listener=%s conn=%llu client=%s bytes_in=%llu bytes_out=%llu",
		c->name, (unsigned long long)c->id, c->addr, (unsigned long long)c->st.bytes_in,
		(unsigned long long)c->st.bytes_out);
	/* Unlink before closing: hie_net_stop may shut down the fds of listed connections. */
	pthread_mutex_lock(&s->mu);
	conn_unlink(s, c);
	pthread_mutex_unlock(&s->mu);
	conn_free(c);
	/* Last touch of the server: after this unlock hie_net_stop may free it. */
	pthread_mutex_lock(&s->mu);
	s->nactive--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void refuse(struct hie_net_server *s, struct hie_net_conn *c, enum hie_net_refusal why)
{
	hie_log(HIE_LOG_NOTICE, "event=net.refused listener=%s conn=%llu client=%s reason=%s", c->name,
		(unsigned long long)c->id, c->addr,
		why == HIE_NET_REFUSE_TOTAL ? "max_conns" : why == HIE_NET_REFUSE_PER_IP ? "max_per_ip" : "nomem");
	if (s->opts.on_refuse && !s->opts.implicit_tls) {
		hie_net_set_deadline(c, s->opts.refuse_write_ms);
		s->opts.on_refuse(c, why, s->arg);
	}
	conn_free(c);
}

static void admit(struct hie_net_server *s, int fd, const struct sockaddr_storage *ss, socklen_t sl)
{
	struct hie_net_conn *c = conn_new(fd, s->opts.read_block, s->name);
	if (!c) {
		hie_log(HIE_LOG_ERR, "event=net.nomem listener=%s", s->name);
		sock_close(fd);
		return;
	}
	c->srv = s;
	sockaddr_text(ss, sl, c->addr, sizeof c->addr, &c->port);
	hie_net_set_deadline(c, s->opts.first_deadline_ms);

	enum hie_net_refusal why = 0;
	pthread_mutex_lock(&s->mu);
	unsigned same = 0;
	for (struct hie_net_conn *o = s->conns; o; o = o->next)
		same += strcmp(o->addr, c->addr) == 0;
	if (s->nactive >= s->opts.max_conns)
		why = HIE_NET_REFUSE_TOTAL;
	else if (same >= s->opts.max_per_ip)
		why = HIE_NET_REFUSE_PER_IP;
	else {
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->nactive++;
	}
	pthread_mutex_unlock(&s->mu);
	if (why) {
		refuse(s, c, why);
		return;
	}

	pthread_attr_t attr;
	pthread_t t;
	int rc = pthread_attr_init(&attr);
	if (rc == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&t, &attr, conn_main, c);
		pthread_attr_destroy(&attr);
	}
	if (rc != 0) {
		pthread_mutex_lock(&s->mu);
		conn_unlink(s, c);
		s->nactive--;
		pthread_mutex_unlock(&s->mu);
		hie_log(HIE_LOG_ERR, "event=net.thread_failed listener=%s error=%d", s->name, rc);
		refuse(s, c, HIE_NET_REFUSE_NOMEM);
	}
}

static void *accept_main(void *arg)
{
	struct hie_net_server *s = arg;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = s->l->fd, .events = POLLIN },
			{ .fd = s->stop_pipe[0], .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno != EINTR)
				hie_log(HIE_LOG_ERR, "event=net.poll_failed listener=%s errno=%d", s->name, errno);
			continue;
		}
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(s->l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
				continue;
			hie_log(HIE_LOG_ERR, "event=net.accept_failed listener=%s errno=%d", s->name, errno);
			/* Out of descriptors or memory: back off instead of spinning; still wake for a stop. */
			poll(&p[1], 1, 100);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		admit(s, fd, &ss, sl);
	}
	return NULL;
}

hie_err_t hie_net_serve(struct hie_net_listener *l, const struct hie_net_opts *opts,
			hie_net_handler_fn handler, void *arg, struct hie_net_server **out)
{
	struct hie_net_server *s;
	int rc;

	*out = NULL;
	if (!l || !opts || !handler)
		return HIE_EINVAL;
	pthread_once(&sigpipe_once, ignore_sigpipe);
	s = calloc(1, sizeof *s);
	if (!s)
		return HIE_ENOMEM;
	s->l = l;
	s->opts = *opts;
	s->handler = handler;
	s->arg = arg;
	snprintf(s->name, sizeof s->name, "%s", opts->name ? opts->name : "net");
	if (!s->opts.max_conns)
		s->opts.max_conns = 100;
	if (!s->opts.max_per_ip)
		s->opts.max_per_ip = s->opts.max_conns;
	if (s->opts.first_deadline_ms <= 0)
		s->opts.first_deadline_ms = 30000;
	if (!s->opts.read_block)
		s->opts.read_block = 16384;
	if (s->opts.read_block < 256)
		s->opts.read_block = 256;
	if (s->opts.refuse_write_ms <= 0)
		s->opts.refuse_write_ms = 1000;
	s->opts.name = NULL; /* the caller's string may not outlive us; s->name is the copy */

	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		hie_log(HIE_LOG_ERR, "event=net.pipe_failed errno=%d", errno);
		free(s);
		return HIE_ESYS;
	}
	pthread_mutex_init(&s->mu, NULL);
	hie_cond_init_monotonic(&s->cv);
	rc = pthread_create(&s->accept_thread, NULL, accept_main, s);
	if (rc != 0) {
		hie_log(HIE_LOG_ERR, "event=net.thread_failed listener=%s error=%d", s->name, rc);
		close(s->stop_pipe[0]);
		close(s->stop_pipe[1]);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		return HIE_ESYS;
	}
	*out = s;
	return HIE_OK;
}

unsigned hie_net_server_active(struct hie_net_server *s)
{
	pthread_mutex_lock(&s->mu);
	unsigned n = s->nactive;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void hie_net_stop(struct hie_net_server *s, int grace_ms)
{
	if (!s)
		return;
	int64_t until = hie_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
	atomic_store(&s->stop_deadline, until);
	atomic_store(&s->stopping, true);
	/* Written after the flag: a waiter that missed the flag wakes on the pipe and re-reads it. */
	while (write(s->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(s->accept_thread, NULL);
	hie_net_listener_close(s->l);
	s->l = NULL;

	pthread_mutex_lock(&s->mu);
	hie_log(HIE_LOG_INFO, "event=net.stopping listener=%s active=%u grace_ms=%d", s->name, s->nactive,
		grace_ms);
	/* A margin past the grace lets handlers whose deadline just ended return by themselves. */
	int64_t force_at = until + 250;
	struct timespec ts = { .tv_sec = (time_t)(force_at / 1000), .tv_nsec = (long)(force_at % 1000) * 1000000 };
	while (s->nactive > 0)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	if (s->nactive > 0) {
		hie_log(HIE_LOG_WARN, "event=net.stop_forced listener=%s active=%u", s->name, s->nactive);
		for (struct hie_net_conn *c = s->conns; c; c = c->next)
			shutdown(c->fd, SHUT_RDWR);
	}
	while (s->nactive > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);

	hie_log(HIE_LOG_INFO, "event=net.stopped listener=%s", s->name);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

/* --- outbound ----------------------------------------------------------------------------------- */

static hie_err_t connect_one(const struct addrinfo *ai, int64_t until, int *fdp)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return HIE_EIO;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return HIE_EIO;
		}
		for (;;) {
			int64_t left = until - hie_mono_ms();
			if (left <= 0) {
				close(fd);
				return HIE_ETIMEOUT;
			}
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
			if (r < 0 && errno == EINTR)
				continue;
			if (r > 0)
				break;
			if (r < 0) {
				close(fd);
				return HIE_EIO;
			}
		}
		int soerr = 0;
		socklen_t len = sizeof soerr;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
			close(fd);
			errno = soerr;
			return HIE_EIO;
		}
	}
	*fdp = fd;
	return HIE_OK;
}

hie_err_t hie_net_connect(const char *host, const char *port, int timeout_ms, struct hie_net_conn **out)
{
	struct addrinfo hints, *res = NULL;
	int64_t until = hie_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	hie_err_t err = HIE_EIO;
	int fd = -1;

	*out = NULL;
	pthread_once(&sigpipe_once, ignore_sigpipe);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0) {
		hie_log(HIE_LOG_NOTICE, "event=net.resolve_failed host=%s", host);
		return HIE_ENOTFOUND;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		err = connect_one(ai, until, &fd);
		if (err != HIE_EIO)
			break;
	}
	if (err) {
		hie_log(HIE_LOG_NOTICE, "event=net.connect_failed host=%s port=%s error=%s errno=%d", host, port,
			hie_errname(err), errno);
		goto out;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct hie_net_conn *c = conn_new(fd, 16384, "net");
	if (!c) {
		close(fd);
		err = HIE_ENOMEM;
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_text(&ss, sl, c->addr, sizeof c->addr, &c->port);
	c->deadline = until;
	*out = c;
out:
	freeaddrinfo(res);
	return err;
}

void hie_net_close(struct hie_net_conn *c)
{
	if (c)
		conn_free(c);
}
