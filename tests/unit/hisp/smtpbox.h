/*
 * smtpbox.h — hienode's own SMTP receiver (hisp_smtp_in) on a kernel-chosen loopback port, recording the last
 * message it is given (bytes, MAIL FROM, RCPTs, TLS): the far end for tests of what the module sends over SMTP.
 * RCPT answers rcpt(address) when set, else rcpt_code (0 = 250). Header-only, for cmocka tests.
 */
#ifndef HIENODE_TESTS_SMTPBOX_H
#define HIENODE_TESTS_SMTPBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_net.h"
#include "hisp/hisp_smtp_in.h"

struct smtp_box {
	pthread_mutex_t mu;
	struct hie_buf data;      /* the last message */
	char rcpts[256];          /* its recipients, each followed by ',' */
	char mail_from[256];
	bool tls;
	int stored;               /* messages stored so far */
	int rcpt_code;
	int (*rcpt)(const char *address);
	struct hisp_smtp_in *srv;
	int port;
};

static inline int smtp_box_rcpt(void *arg, const char *address)
{
	struct smtp_box *b = arg;
	if (b->rcpt)
		return b->rcpt(address);
	return b->rcpt_code ? b->rcpt_code : 250;
}

static inline hie_err_t smtp_box_store(void *arg, const struct hisp_envelope *env, const char *data, size_t len,
				       char *id, size_t idlen)
{
	struct smtp_box *b = arg;
	pthread_mutex_lock(&b->mu);
	hie_buf_reset(&b->data);
	hie_err_t err = hie_buf_add(&b->data, data, len);
	size_t l = 0;
	b->rcpts[0] = 0;
	for (size_t i = 0; i < env->nrcpts && l < sizeof b->rcpts; i++)
		l += (size_t)snprintf(b->rcpts + l, sizeof b->rcpts - l, "%s,", env->rcpts[i]);
	snprintf(b->mail_from, sizeof b->mail_from, "%s", env->mail_from);
	b->tls = env->tls;
	b->stored++;
	pthread_mutex_unlock(&b->mu);
	snprintf(id, idlen, "t-%d", b->stored);
	return err;
}

/* Starts the receiver (greeting hostname, SIZE max_message, STARTTLS with tls when non-NULL); b->rcpt and
 * b->rcpt_code as the caller set them, everything else reset. Messages are kept up to cap bytes. */
static inline void smtp_box_start(struct smtp_box *b, const char *hostname, size_t max_message, size_t cap,
				  SSL_CTX *tls)
{
	int (*rcpt)(const char *) = b->rcpt;
	int rcpt_code = b->rcpt_code;
	memset(b, 0, sizeof *b);
	b->rcpt = rcpt;
	b->rcpt_code = rcpt_code;
	pthread_mutex_init(&b->mu, NULL);
	hie_buf_init(&b->data, cap);
	struct hie_net_listener *l = NULL;
	assert_int_equal(hie_net_listen("127.0.0.1:0", &l), HIE_OK);
	b->port = hie_net_listener_port(l);
	struct hisp_smtp_in_opts io = {.hostname = hostname, .max_message = max_message, .max_rcpts = 10,
				       .max_conns = 10, .cmd_ms = 5000, .data_ms = 5000, .tls = tls};
	struct hisp_smtp_ops ops = {.rcpt = smtp_box_rcpt, .store = smtp_box_store, .arg = b};
	assert_int_equal(hisp_smtp_in_start(l, &io, &ops, &b->srv), HIE_OK);
}

static inline void smtp_box_stop(struct smtp_box *b)
{
	hisp_smtp_in_stop(b->srv, 1000);
	b->srv = NULL;
	hie_buf_free(&b->data);
	pthread_mutex_destroy(&b->mu);
}

#endif
