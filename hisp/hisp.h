/*
 * hisp.h — the Direct HISP module's public door (AS 1.3 S/MIME over SMTP).
 *
 * For now it declares the module's configuration keys; the SMTP receiver, the sender and the trust store
 * are added behind this header.
 */
#ifndef HIENODE_HISP_H
#define HIENODE_HISP_H

#include <stddef.h>

#include "core/core_config.h"

extern const struct hie_cfg_key hisp_config_keys[];
extern const size_t hisp_config_nkeys;

#endif
