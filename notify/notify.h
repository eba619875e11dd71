/*
 * notify.h — the care-transition notification module's public door (HL7 v2 over MLLP, subscriptions, DSUB).
 *
 * Today: the module's configuration keys, its database migrations, and the MLLP listener that takes the ITI-8
 * patient identity feed (ADT over MLLP) into the registry's patient index.
 */
#ifndef HIENODE_NOTIFY_H
#define HIENODE_NOTIFY_H

#include <stddef.h>

#include "core/core_config.h"
#include "core/core_db.h"
#include "core/core_err.h"
#include "core/core_net.h"

extern const struct hie_cfg_key notify_config_keys[];
extern const size_t notify_config_nkeys;

/* Schema of the module (module name "notify"); node/ applies it after the registry's. */
extern const struct hie_db_migration notify_migrations[];
extern const size_t notify_migrations_count;

/*
 * Starts serving MLLP on a listener bound by the caller (hie_net_listen on [mllp] listen, before privileges
 * are dropped), with [mllp] max_message_size and max_connections from cfg. The listener is taken over on
 * success and left to the caller on failure. pool and cfg must outlive the server. *out belongs to the caller
 * and is released by notify_mllp_stop. HIE_ESYS, HIE_ENOMEM.
 */
struct notify_mllp;
hie_err_t notify_mllp_start(struct hie_net_listener *l, struct hie_db_pool *pool, const struct hie_cfg *cfg,
			    struct notify_mllp **out);
/* Stops accepting, lets messages in flight be answered within grace_ms, frees the server; NULL is ignored. */
void notify_mllp_stop(struct notify_mllp *m, int grace_ms);

/*
 * Deletes the control-id records of HL7 v2 messages accepted more than retention_ms ago (the node's daily
 * sweep calls it with [mllp] dedup_retention). *deleted (may be NULL) = rows removed. Database errors.
 */
hie_err_t notify_sweep(struct hie_db_pool *pool, long long retention_ms, long long *deleted);

#endif
