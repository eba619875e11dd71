/*
 * hisp_config.c — configuration keys of the Direct HISP: the SMTP listeners and their caps.
 */
#include "hisp/hisp.h"

const struct hie_cfg_key hisp_config_keys[] = {
	{"smtp", "listen", HIE_CFG_ADDR, "127.0.0.1:2525", 0, 270,
	 "SMTP listener for Direct messages from other HISPs (port 25 in production); empty disables it", NULL},
	{"smtp", "max_message_size", HIE_CFG_SIZE, "64M", 1024, 1024LL * 1024 * 1024,
	 "largest message accepted (advertised as SIZE)", NULL},
	{"smtp", "max_recipients", HIE_CFG_INT, "100", 1, 10000, "RCPT TO commands accepted per message", NULL},
	{"smtp", "max_connections", HIE_CFG_INT, "200", 1, 100000, "concurrent SMTP connections", NULL},
	{"submission", "listen", HIE_CFG_ADDR, "127.0.0.1:2587", 0, 270,
	 "SMTP submission listener for edge clients (STARTTLS + AUTH); empty disables it", NULL},
};
const size_t hisp_config_nkeys = sizeof hisp_config_keys / sizeof hisp_config_keys[0];
