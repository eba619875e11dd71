/*
 * registry_config.c — configuration keys of the XDS.b registry and repository.
 */
#include "registry/registry.h"

const struct hie_cfg_key registry_config_keys[] = {
	{"registry", "max_query_results", HIE_CFG_INT, "1000", 1, 1000000,
	 "LeafClass results above this count give XDSTooManyResults", NULL},
	{"repository", "unique_id", HIE_CFG_STR, "1.3.6.1.4.1.21367.13.20.1000.1", 0, 64,
	 "this node's repositoryUniqueId (an OID)", NULL},
	{"bridge", "source_id", HIE_CFG_STR, REGISTRY_BRIDGE_DEF_SOURCE_ID, 0, 64,
	 "sourceId (an OID) of the SubmissionSets the push-to-pull bridge registers", NULL},
	{"bridge", "healthcare_facility_type_code", HIE_CFG_STR, REGISTRY_BRIDGE_DEF_HCFT, 0, 255,
	 "healthcareFacilityTypeCode of bridged documents without one, as code^^scheme[^display]", NULL},
	{"bridge", "practice_setting_code", HIE_CFG_STR, REGISTRY_BRIDGE_DEF_PRACTICE, 0, 255,
	 "practiceSettingCode of bridged documents without one, as code^^scheme[^display]", NULL},
	{"bridge", "class_code", HIE_CFG_STR, "", 0, 255,
	 "classCode of bridged documents without one, code^^scheme[^display]; empty = the typeCode", NULL},
	{"bridge", "type_code", HIE_CFG_STR, REGISTRY_BRIDGE_DEF_TYPE, 0, 255,
	 "typeCode of bridged documents that are not CDA and have none, as code^^scheme[^display]", NULL},
	{"bridge", "confidentiality_code", HIE_CFG_STR, REGISTRY_BRIDGE_DEF_CONF, 0, 255,
	 "confidentialityCode of bridged documents without one (CDA or metadata), code^^scheme[^display]", NULL},
	{"bridge", "language_code", HIE_CFG_STR, REGISTRY_BRIDGE_DEF_LANGUAGE, 0, 35,
	 "languageCode of bridged documents without one", NULL},
};
const size_t registry_config_nkeys = sizeof registry_config_keys / sizeof registry_config_keys[0];
