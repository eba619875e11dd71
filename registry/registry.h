/*
 * registry.h — the XDS.b registry and repository module's public door.
 *
 * For now it declares the module's configuration keys; transactions, stored queries and the patient index
 * are added behind it.
 */
#ifndef HIENODE_REGISTRY_H
#define HIENODE_REGISTRY_H

#include <stddef.h>

#include "core/core_config.h"

extern const struct hie_cfg_key registry_config_keys[];
extern const size_t registry_config_nkeys;

#endif
