/*
 * notify_mllp.c — the MLLP listener: frames HL7 v2 messages off TCP connections (core_net), hands each to the
 * ITI-8 handler (notify_adt.c) and writes its ACK back, one per message and in order.
 *
 * Entry points: notify_mllp_start (from [mllp] configuration), notify_mllp_start_opts, notify_mllp_stop.
 *
 * Per connection, a loop of phases, each with its own deadline (Postfix stream deadlines):
 *   idle   wait for the start block 0x0B (idle_ms; a server stop ends it at once). Bytes before it are
 *          discarded and counted in the log: MLLP has no way to answer bytes that are not a message.
 *   frame  read up to the end block 0x1C 0x0D (frame_ms from the start block, so a client trickling one byte
 *          a second is cut off), at most max_message bytes: over it the whole frame is discarded (core_net
 *          reads on to the end block) and answered AR 207, and the connection stays usable.
 *   answer process (the database has its own timeouts), then write the ACK within write_ms.
 * A second 0x0B inside a frame means the sender restarted the message: the frame begins after the last one.
 * Over max_connections a connection is closed at once: MLLP has no greeting in which to refuse it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_log.h"
#include "notify/notify_adt.h"
#include "notify/notify_mllp.h"

#define MLLP_ACK_MAX (256u * 1024u)

struct notify_mllp {
	struct hie_net_server *srv;
	struct hie_db_pool *pool;
	struct notify_mllp_opts o;
	atomic_uint seq;
};

static void ack_ids(struct notify_mllp *s, char id[24], char ts[24])
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	unsigned n = atomic_fetch_add(&s->seq, 1) % 1000000u;
	snprintf(id, 24, "%lld%06u", (long long)now, n);
	if (strftime(ts, 24, "%Y%m%d%H%M%S+0000", &tm) == 0)
		ts[0] = '\0';
}

static hie_err_t send_framed(struct hie_net_conn *c, struct notify_mllp *s, const struct hie_buf *ack)
{
	hie_net_set_deadline(c, s->o.write_ms);
	hie_err_t err = hie_net_write(c, "\x0b", 1);
	if (!err)
		err = hie_net_write(c, ack->data ? ack->data : "", ack->len);
	if (!err)
		err = hie_net_write(c, "\x1c\r", 2);
	return err;
}

/* Waits (idle) for a start block; the bytes before it are junk. */
static hie_err_t wait_start(struct hie_net_conn *c, struct notify_mllp *s, struct hie_buf *junk)
{
	hie_net_set_deadline(c, s->o.idle_ms);
	hie_buf_reset(junk);
	hie_err_t err = hie_net_read_until(c, "\x0b", 1, junk, NOTIFY_MLLP_JUNK_MAX);
	if (err == HIE_ETOOBIG || (!err && junk->len > 1)) {
		hie_log(HIE_LOG_NOTICE, "event=mllp.junk conn=%llu bytes=%s%zu action=discard",
			(unsigned long long)hie_net_conn_id(c), err ? ">" : "", err ? (size_t)NOTIFY_MLLP_JUNK_MAX : junk->len - 1);
		err = HIE_OK;
	}
	return err;
}

static hie_err_t answer(struct hie_net_conn *c, struct notify_mllp *s, const char *msg, size_t len,
			struct hie_buf *ack)
{
	char id[24], ts[24];
	struct notify_adt_result r;
	struct notify_hl7_limits lim = {.max_size = s->o.max_message};
	ack_ids(s, id, ts);
	hie_buf_reset(ack);
	hie_err_t err = notify_adt_process(s->pool, msg, len, &lim, id, ts, ack, &r);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=mllp.ack conn=%llu error=%s", (unsigned long long)hie_net_conn_id(c),
			hie_errname(err));
		return err;
	}
	hie_log(HIE_LOG_INFO, "event=mllp.message conn=%llu control_id=%s type=%s^%s ack=%s err=%d duplicate=%s bytes=%zu",
		(unsigned long long)hie_net_conn_id(c), r.control_id[0] ? r.control_id : "-", r.type[0] ? r.type : "-",
		r.trigger[0] ? r.trigger : "-", r.code, r.err, r.duplicate ? "yes" : "no", len);
	return send_framed(c, s, ack);
}

static hie_err_t answer_toobig(struct hie_net_conn *c, struct notify_mllp *s, struct hie_buf *ack)
{
	char id[24], ts[24];
	ack_ids(s, id, ts);
	hie_buf_reset(ack);
	struct notify_hl7_ack a = {.code = "AR", .control_id = id, .timestamp = ts, .err = NOTIFY_HL7_E_INTERNAL,
				   .err_text = "message exceeds max_message_size"};
	hie_err_t err = notify_hl7_ack_build(NULL, &a, ack);
	hie_log(HIE_LOG_NOTICE, "event=mllp.message conn=%llu ack=AR err=207 reason=too_big max=%zu",
		(unsigned long long)hie_net_conn_id(c), s->o.max_message);
	return err ? err : send_framed(c, s, ack);
}

static void session(struct hie_net_conn *c, void *arg)
{
	struct notify_mllp *s = arg;
	struct hie_buf junk, frame, ack;
	hie_buf_init(&junk, NOTIFY_MLLP_JUNK_MAX + 1);
	hie_buf_init(&frame, s->o.max_message + 3);
	hie_buf_init(&ack, MLLP_ACK_MAX);
	hie_err_t err = HIE_OK;
	unsigned long messages = 0;
	while (!err) {
		err = wait_start(c, s, &junk);
		if (err)
			break;
		hie_net_set_deadline(c, s->o.frame_ms);
		hie_buf_reset(&frame);
		err = hie_net_read_until(c, "\x1c\r", 2, &frame, s->o.max_message + 2);
		if (err == HIE_ETOOBIG) {
			err = answer_toobig(c, s, &ack);
			continue;
		}
		if (err)
			break;
		const char *msg = frame.data;
		size_t len = frame.len - 2;
		for (size_t i = len; i > 0; i--) {
			if (msg[i - 1] == 0x0b) {
				msg += i;
				len -= i;
				break;
			}
		}
		err = answer(c, s, msg, len, &ack);
		messages++;
	}
	const char *why = err == HIE_ECLOSED ? "closed" : err == HIE_EBUSY ? "stopping" : hie_errname(err);
	hie_log(err == HIE_ETIMEOUT ? HIE_LOG_NOTICE : HIE_LOG_INFO, "event=mllp.end conn=%llu client=%s messages=%lu reason=%s",
		(unsigned long long)hie_net_conn_id(c), hie_net_peer_addr(c), messages, why);
	hie_buf_free(&junk);
	hie_buf_free(&frame);
	hie_buf_free(&ack);
}

hie_err_t notify_mllp_start_opts(struct hie_net_listener *l, struct hie_db_pool *pool,
				 const struct notify_mllp_opts *o, struct notify_mllp **out)
{
	struct notify_mllp *s = calloc(1, sizeof *s);
	if (!s)
		return HIE_ENOMEM;
	s->pool = pool;
	s->o = *o;
	if (!s->o.max_message)
		s->o.max_message = 1024 * 1024;
	if (!s->o.max_conns)
		s->o.max_conns = 100;
	if (s->o.idle_ms <= 0)
		s->o.idle_ms = NOTIFY_MLLP_IDLE_MS;
	if (s->o.frame_ms <= 0)
		s->o.frame_ms = NOTIFY_MLLP_FRAME_MS;
	if (s->o.write_ms <= 0)
		s->o.write_ms = NOTIFY_MLLP_WRITE_MS;
	struct hie_net_opts no = {
		.name = "mllp",
		.max_conns = s->o.max_conns,
		.first_deadline_ms = s->o.idle_ms,
	};
	hie_err_t err = hie_net_serve(l, &no, session, s, &s->srv);
	if (err) {
		free(s);
		return err;
	}
	*out = s;
	return HIE_OK;
}

hie_err_t notify_mllp_start(struct hie_net_listener *l, struct hie_db_pool *pool, const struct hie_cfg *cfg,
			    struct notify_mllp **out)
{
	struct notify_mllp_opts o = {
		.max_message = (size_t)hie_cfg_int(cfg, "mllp", "max_message_size"),
		.max_conns = (unsigned)hie_cfg_int(cfg, "mllp", "max_connections"),
		.idle_ms = (int)hie_cfg_int(cfg, "mllp", "idle_timeout"),
		.frame_ms = (int)hie_cfg_int(cfg, "mllp", "frame_timeout"),
	};
	return notify_mllp_start_opts(l, pool, &o, out);
}

void notify_mllp_stop(struct notify_mllp *m, int grace_ms)
{
	if (!m)
		return;
	hie_net_stop(m->srv, grace_ms);
	free(m);
}
