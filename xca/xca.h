/*
 * xca.h — the XCA/XCPD gateway module's public door.
 *
 * For now it declares the module's configuration keys; the gateways are added behind it.
 */
#ifndef HIENODE_XCA_H
#define HIENODE_XCA_H

#include <stddef.h>

#include "core/core_config.h"

extern const struct hie_cfg_key xca_config_keys[];
extern const size_t xca_config_nkeys;

#endif
