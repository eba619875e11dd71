/*
 * core_config.c — INI-style configuration validated against the modules' declarative key tables.
 *
 * Entry points: hie_cfg_register, hie_cfg_load, the typed getters, the reference printers. Load errors are
 * HIE_ECONFIG with "file:line: [section] key: why" in the caller's buffer; nothing is half-applied.
 */
#include "core/core_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"
#include "core/core_log.h"

#define CFG_MAX_TABLES 32
#define CFG_MAX_LINE 4096
#define CFG_MAX_FILE (1024 * 1024)

static struct {
	const struct hie_cfg_key *table;
	size_t n;
} cfg_tables[CFG_MAX_TABLES];
static size_t cfg_ntables;

struct cfg_value {
	const struct hie_cfg_key *key;
	char *text;       /* the effective value as text */
	long long num;    /* INT, SIZE, DURATION(ms), BOOL */
	const char *from; /* "default", "file", "env", "set" */
};

struct hie_cfg {
	struct cfg_value *vals;
	size_t n;
};

void hie_cfg_register(const struct hie_cfg_key *table, size_t n)
{
	for (size_t i = 0; i < cfg_ntables; i++)
		if (cfg_tables[i].table == table)
			return;
	if (cfg_ntables == CFG_MAX_TABLES)
		hie_panic("event=config.register error=too_many_tables");
	cfg_tables[cfg_ntables].table = table;
	cfg_tables[cfg_ntables].n = n;
	cfg_ntables++;
}

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
	if (!errbuf || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static const char *type_name(enum hie_cfg_type t)
{
	switch (t) {
	case HIE_CFG_STR: return "string";
	case HIE_CFG_INT: return "integer";
	case HIE_CFG_BOOL: return "boolean";
	case HIE_CFG_SIZE: return "size";
	case HIE_CFG_DURATION: return "duration";
	case HIE_CFG_ADDR: return "address";
	case HIE_CFG_ENUM: return "enum";
	}
	return "?";
}

/* Parses a decimal integer with an optional unit suffix; returns false on junk or overflow. */
static bool parse_scaled(const char *s, long long *out, enum hie_cfg_type type)
{
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end == s || errno == ERANGE)
		return false;
	while (*end == ' ')
		end++;
	long long mul = 1;
	if (type == HIE_CFG_SIZE) {
		if (*end == '\0' || strcmp(end, "B") == 0) mul = 1;
		else if (strcmp(end, "k") == 0 || strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) mul = 1024;
		else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) mul = 1024LL * 1024;
		else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0) mul = 1024LL * 1024 * 1024;
		else return false;
	} else if (type == HIE_CFG_DURATION) {
		if (*end == '\0' || strcmp(end, "s") == 0) mul = 1000;
		else if (strcmp(end, "ms") == 0) mul = 1;
		else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0) mul = 60000;
		else if (strcmp(end, "h") == 0) mul = 3600000;
		else if (strcmp(end, "d") == 0) mul = 86400000;
		else return false;
	} else if (*end != '\0') {
		return false;
	}
	if (v != 0 && (v > LLONG_MAX / mul || v < LLONG_MIN / mul))
		return false;
	*out = v * mul;
	return true;
}

hie_err_t hie_cfg_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon;
	const char *h = addr;
	size_t hlen;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':')
			return HIE_EINVAL;
		h = addr + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || strchr(addr, ':') != colon)
			return HIE_EINVAL;
		hlen = (size_t)(colon - addr);
	}
	if (hlen == 0 || hlen >= hostlen)
		return HIE_EINVAL;
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!(isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_'))
			return HIE_EINVAL;
	}
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || errno || p < 0 || p > 65535)
		return HIE_EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return HIE_OK;
}

static bool enum_has(const char *choices, const char *v)
{
	size_t vl = strlen(v);
	const char *p = choices;
	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t l = bar ? (size_t)(bar - p) : strlen(p);
		if (l == vl && memcmp(p, v, l) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

/* Validates text for key and stores it in val; on failure writes why into errbuf. */
static hie_err_t set_value(struct cfg_value *val, const char *text, const char *from, char *errbuf, size_t errlen)
{
	const struct hie_cfg_key *k = val->key;
	long long num = 0;
	switch (k->type) {
	case HIE_CFG_STR:
		if (k->max > 0 && (long long)strlen(text) > k->max) {
			seterr(errbuf, errlen, "[%s] %s: longer than %lld characters", k->section, k->name, k->max);
			return HIE_ECONFIG;
		}
		break;
	case HIE_CFG_INT:
	case HIE_CFG_SIZE:
	case HIE_CFG_DURATION:
		if (!parse_scaled(text, &num, k->type)) {
			seterr(errbuf, errlen, "[%s] %s: '%s' is not a valid %s", k->section, k->name, text,
			       type_name(k->type));
			return HIE_ECONFIG;
		}
		if (num < k->min || num > k->max) {
			seterr(errbuf, errlen, "[%s] %s: %s is out of range [%lld, %lld]%s", k->section, k->name, text,
			       k->min, k->max, k->type == HIE_CFG_DURATION ? " ms" : "");
			return HIE_ECONFIG;
		}
		break;
	case HIE_CFG_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on") || !strcmp(text, "1"))
			num = 1;
		else if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "off") || !strcmp(text, "0"))
			num = 0;
		else {
			seterr(errbuf, errlen, "[%s] %s: '%s' is not a boolean (true/false)", k->section, k->name, text);
			return HIE_ECONFIG;
		}
		break;
	case HIE_CFG_ADDR:
		if (text[0] != '\0') {
			char host[256];
			int port;
			if (hie_cfg_split_addr(text, host, sizeof host, &port)) {
				seterr(errbuf, errlen, "[%s] %s: '%s' is not host:port", k->section, k->name, text);
				return HIE_ECONFIG;
			}
		}
		break;
	case HIE_CFG_ENUM:
		if (!enum_has(k->choices, text)) {
			seterr(errbuf, errlen, "[%s] %s: '%s' is not one of %s", k->section, k->name, text, k->choices);
			return HIE_ECONFIG;
		}
		break;
	}
	char *copy = strdup(text);
	if (!copy)
		return HIE_ENOMEM;
	free(val->text);
	val->text = copy;
	val->num = num;
	val->from = from;
	return HIE_OK;
}

static struct cfg_value *find_val(const struct hie_cfg *cfg, const char *section, size_t slen, const char *name,
				  size_t nlen)
{
	for (size_t i = 0; i < cfg->n; i++) {
		const struct hie_cfg_key *k = cfg->vals[i].key;
		if (strlen(k->section) == slen && memcmp(k->section, section, slen) == 0 && strlen(k->name) == nlen &&
		    memcmp(k->name, name, nlen) == 0)
			return &cfg->vals[i];
	}
	return NULL;
}

void hie_cfg_free(struct hie_cfg *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n; i++)
		free(cfg->vals[i].text);
	free(cfg->vals);
	free(cfg);
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

static hie_err_t parse_file(struct hie_cfg *cfg, const char *path, char *errbuf, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		seterr(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
		return HIE_EIO;
	}
	hie_err_t err = HIE_OK;
	char section[64] = "";
	char line[CFG_MAX_LINE];
	unsigned lineno = 0;
	size_t total = 0;
	bool *seen = calloc(cfg->n ? cfg->n : 1, sizeof *seen);
	if (!seen) {
		fclose(f);
		return HIE_ENOMEM;
	}
	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t len = strlen(line);
		total += len;
		if (total > CFG_MAX_FILE) {
			seterr(errbuf, errlen, "%s: larger than %d bytes", path, CFG_MAX_FILE);
			err = HIE_ECONFIG;
			goto out;
		}
		if (len == sizeof line - 1 && line[len - 1] != '\n') {
			seterr(errbuf, errlen, "%s:%u: line too long", path, lineno);
			err = HIE_ECONFIG;
			goto out;
		}
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		char *s = trim(line, line + len);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *rb = strchr(s, ']');
			if (!rb || rb[1] != '\0' || (size_t)(rb - s - 1) >= sizeof section || rb == s + 1) {
				seterr(errbuf, errlen, "%s:%u: malformed section header", path, lineno);
				err = HIE_ECONFIG;
				goto out;
			}
			memcpy(section, s + 1, (size_t)(rb - s - 1));
			section[rb - s - 1] = '\0';
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			seterr(errbuf, errlen, "%s:%u: expected 'key = value'", path, lineno);
			err = HIE_ECONFIG;
			goto out;
		}
		*eq = '\0';
		char *key = trim(s, eq);
		char *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
		size_t vl = strlen(value);
		if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
			value[vl - 1] = '\0';
			value++;
		}
		if (section[0] == '\0') {
			seterr(errbuf, errlen, "%s:%u: key '%s' outside any [section]", path, lineno, key);
			err = HIE_ECONFIG;
			goto out;
		}
		struct cfg_value *val = find_val(cfg, section, strlen(section), key, strlen(key));
		if (!val) {
			seterr(errbuf, errlen, "%s:%u: unknown key [%s] %s", path, lineno, section, key);
			err = HIE_ECONFIG;
			goto out;
		}
		if (seen[val - cfg->vals]) {
			seterr(errbuf, errlen, "%s:%u: [%s] %s set twice", path, lineno, section, key);
			err = HIE_ECONFIG;
			goto out;
		}
		seen[val - cfg->vals] = true;
		char why[512];
		err = set_value(val, value, "file", why, sizeof why);
		if (err) {
			seterr(errbuf, errlen, "%s:%u: %s", path, lineno, why);
			goto out;
		}
	}
	if (ferror(f)) {
		seterr(errbuf, errlen, "%s: read error", path);
		err = HIE_EIO;
	}
out:
	free(seen);
	fclose(f);
	return err;
}

/* HIENODE_<SECTION>_<KEY>, upper-cased. */
static void env_name(const struct hie_cfg_key *k, char *out, size_t outlen)
{
	snprintf(out, outlen, "HIENODE_%s_%s", k->section, k->name);
	for (char *p = out; *p; p++)
		*p = (char)toupper((unsigned char)*p);
}

static hie_err_t apply_env(struct hie_cfg *cfg, char *errbuf, size_t errlen)
{
	for (size_t i = 0; i < cfg->n; i++) {
		char name[160];
		env_name(cfg->vals[i].key, name, sizeof name);
		const char *v = getenv(name);
		if (!v)
			continue;
		char why[512];
		hie_err_t err = set_value(&cfg->vals[i], v, "env", why, sizeof why);
		if (err) {
			seterr(errbuf, errlen, "%s: %s", name, why);
			return err;
		}
	}
	return HIE_OK;
}

hie_err_t hie_cfg_load(struct hie_cfg **out, const char *path, char *errbuf, size_t errlen)
{
	hie_err_t err = HIE_OK;
	struct hie_cfg *cfg = calloc(1, sizeof *cfg);
	if (!cfg)
		return HIE_ENOMEM;
	size_t total = 0;
	for (size_t t = 0; t < cfg_ntables; t++)
		total += cfg_tables[t].n;
	cfg->vals = calloc(total ? total : 1, sizeof *cfg->vals);
	if (!cfg->vals) {
		free(cfg);
		return HIE_ENOMEM;
	}
	for (size_t t = 0; t < cfg_ntables; t++) {
		for (size_t i = 0; i < cfg_tables[t].n; i++) {
			const struct hie_cfg_key *k = &cfg_tables[t].table[i];
			if (find_val(cfg, k->section, strlen(k->section), k->name, strlen(k->name)))
				hie_panic("event=config.register error=duplicate key=%s.%s", k->section, k->name);
			struct cfg_value *v = &cfg->vals[cfg->n++];
			v->key = k;
			char why[512];
			if (set_value(v, k->def, "default", why, sizeof why))
				hie_panic("event=config.register error=bad_default %s", why);
		}
	}
	if (path) {
		err = parse_file(cfg, path, errbuf, errlen);
		if (err)
			goto out;
	}
	err = apply_env(cfg, errbuf, errlen);
out:
	if (err) {
		hie_cfg_free(cfg);
		cfg = NULL;
	}
	*out = cfg;
	return err;
}

hie_err_t hie_cfg_set(struct hie_cfg *cfg, const char *section, const char *name, const char *value, char *errbuf,
		      size_t errlen)
{
	struct cfg_value *v = find_val(cfg, section, strlen(section), name, strlen(name));
	if (!v) {
		seterr(errbuf, errlen, "unknown key [%s] %s", section, name);
		return HIE_ECONFIG;
	}
	return set_value(v, value, "set", errbuf, errlen);
}

static const struct cfg_value *get(const struct hie_cfg *cfg, const char *section, const char *name)
{
	const struct cfg_value *v = find_val(cfg, section, strlen(section), name, strlen(name));
	if (!v)
		hie_panic("event=config.get error=undeclared key=%s.%s", section, name);
	return v;
}

const char *hie_cfg_str(const struct hie_cfg *cfg, const char *section, const char *name)
{
	return get(cfg, section, name)->text;
}

long long hie_cfg_int(const struct hie_cfg *cfg, const char *section, const char *name)
{
	const struct cfg_value *v = get(cfg, section, name);
	if (v->key->type != HIE_CFG_INT && v->key->type != HIE_CFG_SIZE && v->key->type != HIE_CFG_DURATION)
		hie_panic("event=config.get error=type key=%s.%s", section, name);
	return v->num;
}

bool hie_cfg_bool(const struct hie_cfg *cfg, const char *section, const char *name)
{
	const struct cfg_value *v = get(cfg, section, name);
	if (v->key->type != HIE_CFG_BOOL)
		hie_panic("event=config.get error=type key=%s.%s", section, name);
	return v->num != 0;
}

static void print_range(const struct hie_cfg_key *k, FILE *out)
{
	switch (k->type) {
	case HIE_CFG_INT:
	case HIE_CFG_SIZE:
		fprintf(out, "%lld..%lld", k->min, k->max);
		break;
	case HIE_CFG_DURATION:
		fprintf(out, "%lldms..%lldms", k->min, k->max);
		break;
	case HIE_CFG_ENUM:
		fprintf(out, "%s", k->choices);
		break;
	case HIE_CFG_STR:
	case HIE_CFG_ADDR:
		if (k->max > 0)
			fprintf(out, "at most %lld characters", k->max);
		else
			fprintf(out, "-");
		break;
	case HIE_CFG_BOOL:
		fprintf(out, "true|false");
		break;
	}
}

void hie_cfg_print_reference(FILE *out)
{
	for (size_t t = 0; t < cfg_ntables; t++) {
		for (size_t i = 0; i < cfg_tables[t].n; i++) {
			const struct hie_cfg_key *k = &cfg_tables[t].table[i];
			char env[160];
			env_name(k, env, sizeof env);
			fprintf(out, "[%s] %s\n  type: %s\n  default: %s\n  range: ", k->section, k->name,
				type_name(k->type), k->def[0] ? k->def : "(empty)");
			print_range(k, out);
			fprintf(out, "\n  env: %s\n  %s\n\n", env, k->meaning);
		}
	}
}

void hie_cfg_print_example(FILE *out)
{
	fprintf(out, "# hienode configuration — every key, with its default.\n"
		     "# Generated by `hienode config --example`; `hienode config --reference` explains each key.\n"
		     "# Any key can be overridden by the environment: HIENODE_<SECTION>_<KEY>.\n");
	const char *last = "";
	for (size_t t = 0; t < cfg_ntables; t++) {
		for (size_t i = 0; i < cfg_tables[t].n; i++) {
			const struct hie_cfg_key *k = &cfg_tables[t].table[i];
			if (strcmp(last, k->section) != 0) {
				fprintf(out, "\n[%s]\n", k->section);
				last = k->section;
			}
			fprintf(out, "# %s (%s; ", k->meaning, type_name(k->type));
			print_range(k, out);
			fprintf(out, ")\n#%s =%s%s\n", k->name, k->def[0] ? " " : "", k->def);
		}
	}
}

void hie_cfg_print_effective(const struct hie_cfg *cfg, FILE *out)
{
	const char *last = "";
	for (size_t i = 0; i < cfg->n; i++) {
		const struct cfg_value *v = &cfg->vals[i];
		if (strcmp(last, v->key->section) != 0) {
			fprintf(out, "%s[%s]\n", i ? "\n" : "", v->key->section);
			last = v->key->section;
		}
		fprintf(out, "%s = %s    # %s\n", v->key->name, v->text, v->from);
	}
}
