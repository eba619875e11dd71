/*
 * xca_config.c — configuration keys of the XCA/XCPD gateways.
 */
#include "xca/xca.h"

const struct hie_cfg_key xca_config_keys[] = {
	{"xca", "partner_timeout", HIE_CFG_DURATION, "30s", 1000, 600000,
	 "deadline for one partner gateway's answer to a federated query", NULL},
};
const size_t xca_config_nkeys = sizeof xca_config_keys / sizeof xca_config_keys[0];
