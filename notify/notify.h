/*
 * notify.h — the care-transition notification module's public door (HL7 v2 over MLLP, subscriptions, DSUB).
 *
 * For now it declares the module's configuration keys; the MLLP listener and ADT handling are added behind it.
 */
#ifndef HIENODE_NOTIFY_H
#define HIENODE_NOTIFY_H

#include <stddef.h>

#include "core/core_config.h"

extern const struct hie_cfg_key notify_config_keys[];
extern const size_t notify_config_nkeys;

#endif
