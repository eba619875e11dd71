/*
 * notify_config.c — configuration keys of the notification module: the MLLP listener and its caps.
 */
#include "notify/notify.h"

const struct hie_cfg_key notify_config_keys[] = {
	{"mllp", "listen", HIE_CFG_ADDR, "127.0.0.1:2575", 0, 270,
	 "MLLP listener for HL7 v2 (ITI-8 patient identity feed and ADT events); empty disables it", NULL},
	{"mllp", "max_message_size", HIE_CFG_SIZE, "1M", 1024, 64LL * 1024 * 1024, "largest HL7 v2 message accepted", NULL},
	{"mllp", "max_connections", HIE_CFG_INT, "100", 1, 100000, "concurrent MLLP connections", NULL},
	{"mllp", "idle_timeout", HIE_CFG_DURATION, "5m", 1000, 86400000LL,
	 "how long a connection may wait between messages (a sender's stop is seen at once)", NULL},
	{"mllp", "frame_timeout", HIE_CFG_DURATION, "60s", 1000, 3600000LL,
	 "deadline for one whole message, from its start block to its end block (a trickling sender is cut off)", NULL},
	{"mllp", "dedup_retention", HIE_CFG_DURATION, "30d", 3600000LL, 3650LL * 86400000LL,
	 "how long accepted message control ids are kept to answer a retransmission with its first ACK", NULL},
};
const size_t notify_config_nkeys = sizeof notify_config_keys / sizeof notify_config_keys[0];
