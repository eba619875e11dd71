/*
 * core_settings.h — the configuration keys of the core plumbing ([node], [database], [http], [log], [jobs]).
 * node/ registers this table with hie_cfg_register() before loading the file.
 */
#ifndef HIENODE_CORE_SETTINGS_H
#define HIENODE_CORE_SETTINGS_H

#include <stddef.h>

#include "core/core_config.h"

extern const struct hie_cfg_key hie_core_config_keys[];
extern const size_t hie_core_config_nkeys;

#endif
