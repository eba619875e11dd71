/*
 * node_config.c — the configuration subcommands, and loading with every module's key table registered.
 */
#include <stdio.h>
#include <string.h>

#include "core/core_log.h"
#include "core/core_settings.h"
#include "hisp/hisp.h"
#include "node/node.h"
#include "notify/notify.h"
#include "registry/registry.h"
#include "xca/xca.h"

static void register_tables(void)
{
	hie_cfg_register(hie_core_config_keys, hie_core_config_nkeys);
	hie_cfg_register(registry_config_keys, registry_config_nkeys);
	hie_cfg_register(hisp_config_keys, hisp_config_nkeys);
	hie_cfg_register(notify_config_keys, notify_config_nkeys);
	hie_cfg_register(xca_config_keys, xca_config_nkeys);
}

struct hie_cfg *node_config_load(const char *path)
{
	struct hie_cfg *cfg = NULL;
	char why[1024] = "";
	register_tables();
	hie_err_t err = hie_cfg_load(&cfg, path, why, sizeof why);
	if (err) {
		fprintf(stderr, "hienode: configuration error: %s\n", why[0] ? why : hie_strerror(err));
		return NULL;
	}
	int level = hie_log_level_parse(hie_cfg_str(cfg, "log", "level"));
	if (level >= 0)
		hie_log_set_level((enum hie_log_level)level);
	return cfg;
}

int node_cmd_check_config(const struct node_opts *o)
{
	struct hie_cfg *cfg = node_config_load(o->config_path);
	if (!cfg)
		return 1;
	printf("configuration ok%s%s\n", o->config_path ? ": " : " (defaults and environment)",
	       o->config_path ? o->config_path : "");
	hie_cfg_free(cfg);
	return 0;
}

int node_cmd_config(const struct node_opts *o)
{
	register_tables();
	if (o->argc == 1 && strcmp(o->argv[0], "--reference") == 0) {
		hie_cfg_print_reference(stdout);
		return 0;
	}
	if (o->argc == 1 && strcmp(o->argv[0], "--example") == 0) {
		hie_cfg_print_example(stdout);
		return 0;
	}
	if (o->argc != 0) {
		fprintf(stderr, "usage: hienode config [--reference | --example]\n");
		return 2;
	}
	struct hie_cfg *cfg = node_config_load(o->config_path);
	if (!cfg)
		return 1;
	hie_cfg_print_effective(cfg, stdout);
	hie_cfg_free(cfg);
	return 0;
}
