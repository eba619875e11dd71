/* core_config_test.c — the INI loader against a key table: types, ranges, unknown keys, env overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_config.h"

static const struct hie_cfg_key keys[] = {
	{"t", "name", HIE_CFG_STR, "dflt", 0, 8, "a string", NULL},
	{"t", "count", HIE_CFG_INT, "3", 1, 10, "an int", NULL},
	{"t", "flag", HIE_CFG_BOOL, "false", 0, 0, "a bool", NULL},
	{"t", "size", HIE_CFG_SIZE, "1k", 0, 1024 * 1024, "a size", NULL},
	{"t", "wait", HIE_CFG_DURATION, "2s", 100, 3600000, "a duration", NULL},
	{"t", "addr", HIE_CFG_ADDR, "127.0.0.1:80", 0, 100, "an address", NULL},
	{"t", "mode", HIE_CFG_ENUM, "a", 0, 0, "an enum", "a|bb|c"},
};

static char path[64];

static int setup(void **state)
{
	hie_cfg_register(keys, sizeof keys / sizeof keys[0]);
	snprintf(path, sizeof path, "/tmp/hie-cfg-test.%d", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	unsetenv("HIENODE_T_COUNT");
	return 0;
}

static hie_err_t load_text(const char *text, struct hie_cfg **cfg, char *why, size_t whylen)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	why[0] = '\0';
	return hie_cfg_load(cfg, path, why, whylen);
}

static void test_defaults(void **state)
{
	struct hie_cfg *cfg;
	char why[256];
	assert_int_equal(hie_cfg_load(&cfg, NULL, why, sizeof why), HIE_OK);
	assert_string_equal(hie_cfg_str(cfg, "t", "name"), "dflt");
	assert_int_equal(hie_cfg_int(cfg, "t", "count"), 3);
	assert_false(hie_cfg_bool(cfg, "t", "flag"));
	assert_int_equal(hie_cfg_int(cfg, "t", "size"), 1024);
	assert_int_equal(hie_cfg_int(cfg, "t", "wait"), 2000);
	hie_cfg_free(cfg);
}

static void test_values_parsed(void **state)
{
	struct hie_cfg *cfg;
	char why[256];
	assert_int_equal(load_text("# comment\n[t]\n name = \"ab cd\" \ncount=10\nflag = yes\nsize = 1M\n"
				   "wait = 150ms\naddr = [::1]:8080\nmode = bb\n; other comment\n",
				   &cfg, why, sizeof why),
			 HIE_OK);
	assert_string_equal(hie_cfg_str(cfg, "t", "name"), "ab cd");
	assert_int_equal(hie_cfg_int(cfg, "t", "count"), 10);
	assert_true(hie_cfg_bool(cfg, "t", "flag"));
	assert_int_equal(hie_cfg_int(cfg, "t", "size"), 1024 * 1024);
	assert_int_equal(hie_cfg_int(cfg, "t", "wait"), 150);
	assert_string_equal(hie_cfg_str(cfg, "t", "addr"), "[::1]:8080");
	hie_cfg_free(cfg);
}

static void test_bad_input_names_key(void **state)
{
	static const struct {
		const char *text;
		const char *needle;
	} cases[] = {
		{.text = "[t]\nnope = 1\n", .needle = "unknown key [t] nope"},
		{.text = "[t]\ncount = 11\n", .needle = "count"},
		{.text = "[t]\ncount = 0\n", .needle = "out of range"},
		{.text = "[t]\ncount = 3x\n", .needle = "count"},
		{.text = "[t]\ncount = 99999999999999999999999\n", .needle = "count"},
		{.text = "[t]\nflag = maybe\n", .needle = "flag"},
		{.text = "[t]\nsize = 2T\n", .needle = "size"},
		{.text = "[t]\nsize = 2G\n", .needle = "out of range"},
		{.text = "[t]\nwait = 10ms\n", .needle = "wait"},
		{.text = "[t]\naddr = localhost\n", .needle = "addr"},
		{.text = "[t]\naddr = host:99999\n", .needle = "addr"},
		{.text = "[t]\naddr = a b:1\n", .needle = "addr"},
		{.text = "[t]\nmode = b\n", .needle = "mode"},
		{.text = "[t]\nname = toolongvalue\n", .needle = "name"},
		{.text = "[t\ncount = 1\n", .needle = "section"},
		{.text = "count = 1\n", .needle = "outside"},
		{.text = "[t]\ncount\n", .needle = "key = value"},
		{.text = "[t]\ncount = 1\ncount = 2\n", .needle = "twice"},
		{.text = "[x]\ncount = 1\n", .needle = "unknown key [x] count"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hie_cfg *cfg = (struct hie_cfg *)1;
		char why[256];
		assert_int_equal(load_text(cases[i].text, &cfg, why, sizeof why), HIE_ECONFIG);
		assert_null(cfg);
		if (!strstr(why, cases[i].needle))
			fail_msg("case %zu: '%s' does not mention '%s'", i, why, cases[i].needle);
	}
}

static void test_missing_file(void **state)
{
	struct hie_cfg *cfg;
	char why[256];
	assert_int_equal(hie_cfg_load(&cfg, "/nonexistent/hienode.conf", why, sizeof why), HIE_EIO);
	assert_non_null(strstr(why, "/nonexistent/hienode.conf"));
}

static void test_env_override(void **state)
{
	struct hie_cfg *cfg;
	char why[256];
	setenv("HIENODE_T_COUNT", "7", 1);
	assert_int_equal(load_text("[t]\ncount = 2\n", &cfg, why, sizeof why), HIE_OK);
	assert_int_equal(hie_cfg_int(cfg, "t", "count"), 7);
	hie_cfg_free(cfg);
	setenv("HIENODE_T_COUNT", "70", 1);
	assert_int_equal(load_text("", &cfg, why, sizeof why), HIE_ECONFIG);
	assert_non_null(strstr(why, "HIENODE_T_COUNT"));
	unsetenv("HIENODE_T_COUNT");
}

static void test_set_and_split(void **state)
{
	struct hie_cfg *cfg;
	char why[256], host[64];
	int port;
	assert_int_equal(hie_cfg_load(&cfg, NULL, why, sizeof why), HIE_OK);
	assert_int_equal(hie_cfg_set(cfg, "t", "count", "4", why, sizeof why), HIE_OK);
	assert_int_equal(hie_cfg_int(cfg, "t", "count"), 4);
	assert_int_equal(hie_cfg_set(cfg, "t", "count", "40", why, sizeof why), HIE_ECONFIG);
	assert_int_equal(hie_cfg_set(cfg, "t", "zzz", "1", why, sizeof why), HIE_ECONFIG);
	hie_cfg_free(cfg);
	assert_int_equal(hie_cfg_split_addr("[::1]:25", host, sizeof host, &port), HIE_OK);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 25);
	assert_int_equal(hie_cfg_split_addr("mx.example.org:2525", host, sizeof host, &port), HIE_OK);
	assert_string_equal(host, "mx.example.org");
	assert_int_equal(hie_cfg_split_addr("::1:25", host, sizeof host, &port), HIE_EINVAL);
	assert_int_equal(hie_cfg_split_addr(":25", host, sizeof host, &port), HIE_EINVAL);
	assert_int_equal(hie_cfg_split_addr("h:", host, sizeof host, &port), HIE_EINVAL);
}

static void test_reference_and_example(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	hie_cfg_print_reference(f);
	fclose(f);
	assert_non_null(strstr(text, "[t] mode\n  type: enum\n  default: a\n  range: a|bb|c\n  env: HIENODE_T_MODE"));
	free(text);
	f = open_memstream(&text, &len);
	hie_cfg_print_example(f);
	fclose(f);
	assert_non_null(strstr(text, "\n[t]\n# a string"));
	assert_non_null(strstr(text, "#wait = 2s\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),         cmocka_unit_test(test_values_parsed),
		cmocka_unit_test(test_bad_input_names_key), cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_env_override),     cmocka_unit_test(test_set_and_split),
		cmocka_unit_test(test_reference_and_example),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
