/*
 * notify_mllp.h — MLLP (HL7 v2 Minimal Lower Layer Protocol) server: the options behind notify_mllp_start().
 *
 * A frame is 0x0B, the message, 0x1C 0x0D. Each message gets exactly one ACK, in order, framed the same way.
 */
#ifndef HIENODE_NOTIFY_MLLP_H
#define HIENODE_NOTIFY_MLLP_H

#include <stddef.h>

#include "notify/notify.h"

#define NOTIFY_MLLP_IDLE_MS 300000   /* wait for the next frame's start block */
#define NOTIFY_MLLP_FRAME_MS 60000   /* from the start block to the end block */
#define NOTIFY_MLLP_WRITE_MS 30000   /* to write one ACK */
#define NOTIFY_MLLP_JUNK_MAX 4096    /* bytes before a start block kept for the count in the log */

struct notify_mllp_opts {
	size_t max_message;   /* bytes between the start and end blocks; 0 → 1 MiB */
	unsigned max_conns;   /* 0 → 100 */
	int idle_ms;          /* 0 → NOTIFY_MLLP_IDLE_MS */
	int frame_ms;         /* 0 → NOTIFY_MLLP_FRAME_MS */
	int write_ms;         /* 0 → NOTIFY_MLLP_WRITE_MS */
};

/* notify_mllp_start with explicit options (tests use short deadlines). Same ownership and errors. */
hie_err_t notify_mllp_start_opts(struct hie_net_listener *l, struct hie_db_pool *pool,
				 const struct notify_mllp_opts *o, struct notify_mllp **out);

#endif
