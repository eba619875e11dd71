/*
 * core_config.h — declarative configuration tables and the INI-style file that sets them.
 *
 * Each module declares its keys in a table (Postfix CONFIG_*_TABLE, Redis static_configs[]):
 * section, name, type, default, min, max, one-line meaning. node/ registers every module's table, then
 * loads one file. Environment variables HIENODE_<SECTION>_<KEY> override the file. An unknown key or a
 * bad value fails the load with a message that names the key; start-up stops there. The reference and
 * the example file are printed from the same tables, so they cannot drift.
 *
 * Types: STR (max = longest allowed length), INT, BOOL (true/false/yes/no/on/off/1/0), SIZE (bytes;
 * suffixes k, M, G), DURATION (stored in milliseconds; suffixes ms, s, m, h, d; a bare number is seconds),
 * ADDR (host:port, [v6]:port, or empty = disabled), ENUM (one of `choices`, "a|b|c").
 */
#ifndef HIENODE_CORE_CONFIG_H
#define HIENODE_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/core_err.h"

enum hie_cfg_type { HIE_CFG_STR, HIE_CFG_INT, HIE_CFG_BOOL, HIE_CFG_SIZE, HIE_CFG_DURATION, HIE_CFG_ADDR, HIE_CFG_ENUM };

struct hie_cfg_key {
	const char *section;
	const char *name;
	enum hie_cfg_type type;
	const char *def;     /* default, written as in the file */
	long long min, max;  /* bounds for INT/SIZE/DURATION (in ms for DURATION); STR/ADDR: max length */
	const char *meaning; /* one line */
	const char *choices; /* ENUM only */
};

struct hie_cfg;

/* Registers a module's table (static storage; not copied). At most 32 tables. Call before hie_cfg_load. */
void hie_cfg_register(const struct hie_cfg_key *table, size_t n);

/*
 * Loads `path` (NULL: defaults and environment only) and validates every key.
 * On failure returns HIE_ECONFIG (or HIE_EIO / HIE_ENOMEM) with a message naming the key in errbuf.
 * The caller frees *out with hie_cfg_free().
 */
hie_err_t hie_cfg_load(struct hie_cfg **out, const char *path, char *errbuf, size_t errlen);
void hie_cfg_free(struct hie_cfg *cfg);

/* Typed getters; asking for an undeclared key or the wrong type is a bug (hie_panic). */
const char *hie_cfg_str(const struct hie_cfg *cfg, const char *section, const char *name);
long long hie_cfg_int(const struct hie_cfg *cfg, const char *section, const char *name); /* INT, SIZE, DURATION(ms) */
bool hie_cfg_bool(const struct hie_cfg *cfg, const char *section, const char *name);

/* Overrides a value after load, validated like the file (for CLI flags such as -s state_dir). */
hie_err_t hie_cfg_set(struct hie_cfg *cfg, const char *section, const char *name, const char *value,
		      char *errbuf, size_t errlen);

/* Prints every key with type, default, range and meaning. */
void hie_cfg_print_reference(FILE *out);
/* Prints an example file documenting every key (config/hienode.conf.example is this output). */
void hie_cfg_print_example(FILE *out);
/* Prints the effective values (secrets are not special-cased: configuration holds no secrets). */
void hie_cfg_print_effective(const struct hie_cfg *cfg, FILE *out);

/* Splits "host:port" / "[v6]:port" into host (without brackets) and port. */
hie_err_t hie_cfg_split_addr(const char *addr, char *host, size_t hostlen, int *port);

#endif
