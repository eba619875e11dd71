/*
 * registry_config.c — configuration keys of the XDS.b registry and repository.
 */
#include "registry/registry.h"

const struct hie_cfg_key registry_config_keys[] = {
	{"registry", "max_query_results", HIE_CFG_INT, "1000", 1, 1000000,
	 "LeafClass results above this count give XDSTooManyResults", NULL},
	{"repository", "unique_id", HIE_CFG_STR, "1.3.6.1.4.1.21367.13.20.1000.1", 0, 64,
	 "this node's repositoryUniqueId (an OID)", NULL},
};
const size_t registry_config_nkeys = sizeof registry_config_keys / sizeof registry_config_keys[0];
