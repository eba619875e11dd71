/*
 * linecli.h — a blocking test client for line protocols on loopback (SMTP, the core_net test protocol):
 * connect (optionally from a given source address), write, read one line byte by byte (so that a later
 * SSL_connect on the same socket finds every TLS byte), close. 10 s socket timeouts so a hung server fails
 * the test instead of blocking it. Header-only, for cmocka tests (include cmocka.h, OpenSSL ssl/err first).
 */
#ifndef HIENODE_TESTS_LINECLI_H
#define HIENODE_TESTS_LINECLI_H

#include <arpa/inet.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct cli {
	int fd;
	SSL *ssl; /* set by the test after its own SSL_connect: I/O then goes through TLS */
};

static inline struct cli cli_connect_from(int port, const char *src)
{
	struct cli c = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 10};
	int one = 1;

	assert_true(c.fd >= 0);
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (src) {
		struct sockaddr_in me = {.sin_family = AF_INET};
		inet_pton(AF_INET, src, &me.sin_addr);
		assert_int_equal(bind(c.fd, (struct sockaddr *)&me, sizeof me), 0);
	}
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(c.fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return c;
}

static inline struct cli cli_connect(int port)
{
	return cli_connect_from(port, NULL);
}

static inline void cli_close(struct cli *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	c->fd = -1;
	c->ssl = NULL;
	ERR_clear_error();
}

static inline void cli_write(struct cli *c, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t k = c->ssl ? SSL_write(c->ssl, s, (int)n) : send(c->fd, s, n, MSG_NOSIGNAL);
		assert_true(k > 0);
		s += k;
		n -= (size_t)k;
	}
}

static inline void cli_send(struct cli *c, const char *s)
{
	cli_write(c, s, strlen(s));
}

/* One line without its CRLF (or LF) into buf, cut to n - 1 bytes; its length, or -1 on EOF or error. */
static inline int cli_line(struct cli *c, char *buf, size_t n)
{
	size_t len = 0;
	for (;;) {
		char ch;
		ssize_t k = c->ssl ? SSL_read(c->ssl, &ch, 1) : recv(c->fd, &ch, 1, 0);
		if (k <= 0)
			return -1;
		if (ch == '\n')
			break;
		if (len + 1 < n)
			buf[len++] = ch;
	}
	if (len && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return (int)len;
}

/* The next line starts with want (else the test fails, naming the caller's line). */
#define cli_expect(c, want) cli_expect_at(c, want, __LINE__)
static inline void cli_expect_at(struct cli *c, const char *want, int line)
{
	char buf[1024];
	if (cli_line(c, buf, sizeof buf) < 0)
		fail_msg("line %d: EOF, want prefix '%s'", line, want);
	if (strncmp(buf, want, strlen(want)) != 0)
		fail_msg("line %d: got '%s', want prefix '%s'", line, buf, want);
}

/* The server closed the connection: no further line. */
static inline void cli_expect_eof(struct cli *c)
{
	char buf[256];
	if (cli_line(c, buf, sizeof buf) >= 0)
		fail_msg("want EOF, got '%s'", buf);
}

/* An SMTP-style multi-line reply ("250-…" … "250 …") into out, lines joined by '\n'; its code. */
static inline int cli_reply(struct cli *c, char *out, size_t n)
{
	char buf[512];
	size_t used = 0;
	out[0] = '\0';
	for (;;) {
		assert_true(cli_line(c, buf, sizeof buf) >= 4);
		used += (size_t)snprintf(out + used, n - used, "%s\n", buf);
		assert_true(used < n);
		if (buf[3] == ' ')
			return (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
	}
}

#endif
