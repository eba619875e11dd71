/*
 * notify_adt.h — ITI-8 patient identity feed: one HL7 v2 ADT message in, its ACK out (notify_adt.c).
 *
 * Internal to the notify module (the MLLP listener calls it; unit tests drive it directly).
 */
#ifndef HIENODE_NOTIFY_ADT_H
#define HIENODE_NOTIFY_ADT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_db.h"
#include "core/core_err.h"
#include "notify/notify_hl7.h"

/* What happened to one message, for the caller's log line (no patient data in it). */
struct notify_adt_result {
	char code[3];         /* "AA", "AE", "AR" */
	int err;              /* table 0357 code in ERR-3, 0 for none */
	bool duplicate;       /* control id seen before: answered with the stored code, not reprocessed */
	char type[8];         /* MSH-9.1 and MSH-9.2, printable, "" when unknown */
	char trigger[8];
	char control_id[48];  /* MSH-10, printable (hie_log_printable) */
};

/*
 * Handles the HL7 message msg[0..len) (the bytes inside one MLLP frame) and appends its acknowledgement
 * (not framed) to ack: AA only after the transaction that stores the change has committed; AE/AR with an
 * ERR segment otherwise (see notify_adt.c for the codes). ack_id and ack_ts are the ACK's MSH-10 and MSH-7.
 * A bad message is not an error of this function: it is answered. Returns HIE_ENOMEM or HIE_ETOOBIG only
 * when no ACK could be built into ack (the caller then closes the connection).
 */
hie_err_t notify_adt_process(struct hie_db_pool *pool, const char *msg, size_t len, const struct notify_hl7_limits *lim,
			     const char *ack_id, const char *ack_ts, struct hie_buf *ack, struct notify_adt_result *res);

#endif
