/* core_buf_test.c — the capped buffer: caps are hard, failure leaves the buffer unchanged, escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_buf.h"

static void test_append_within_cap(void **state)
{
	struct hie_buf b;
	hie_buf_init(&b, 10);
	assert_string_equal(hie_buf_str(&b), "");
	assert_int_equal(hie_buf_addstr(&b, "hello"), HIE_OK);
	assert_int_equal(hie_buf_addf(&b, "%d%s", 12, "345"), HIE_OK);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "hello12345");
	hie_buf_free(&b);
}

static void test_over_cap_unchanged(void **state)
{
	struct hie_buf b;
	hie_buf_init(&b, 8);
	assert_int_equal(hie_buf_addstr(&b, "abcdef"), HIE_OK);
	assert_int_equal(hie_buf_addstr(&b, "xyz"), HIE_ETOOBIG);
	assert_int_equal(hie_buf_addf(&b, "%s", "xyz"), HIE_ETOOBIG);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "abcdef");
	assert_int_equal(hie_buf_add(&b, "gh", 2), HIE_OK);
	assert_int_equal(hie_buf_add(&b, "i", 1), HIE_ETOOBIG);
	/* a length that would overflow size_t arithmetic is refused, not wrapped */
	assert_int_equal(hie_buf_reserve(&b, SIZE_MAX), HIE_ETOOBIG);
	hie_buf_free(&b);
}

static void test_xml_escape(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{.in = "plain", .out = "plain"},
		{.in = "<a href=\"x\">&'</a>", .out = "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"},
		{.in = "", .out = ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hie_buf b;
		hie_buf_init(&b, 1024);
		assert_int_equal(hie_buf_add_xml(&b, cases[i].in, strlen(cases[i].in)), HIE_OK);
		assert_string_equal(hie_buf_str(&b), cases[i].out);
		hie_buf_free(&b);
	}
}

static void test_steal_and_reset(void **state)
{
	struct hie_buf b;
	hie_buf_init(&b, 100);
	size_t len = 99;
	char *p = hie_buf_steal(&b, &len);
	assert_non_null(p);
	assert_int_equal(len, 0);
	assert_string_equal(p, "");
	free(p);
	assert_int_equal(hie_buf_addstr(&b, "abc"), HIE_OK);
	hie_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(hie_buf_str(&b), "");
	assert_int_equal(hie_buf_addstr(&b, "z"), HIE_OK);
	p = hie_buf_steal(&b, &len);
	assert_string_equal(p, "z");
	assert_int_equal(len, 1);
	assert_null(b.data);
	free(p);
}

static void test_growth_large(void **state)
{
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	for (int i = 0; i < 1 << 14; i++)
		assert_int_equal(hie_buf_add(&b, "0123456789abcdef", 16), HIE_OK);
	assert_int_equal(b.len, 1 << 18);
	assert_int_equal(b.data[b.len], '\0');
	hie_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_within_cap), cmocka_unit_test(test_over_cap_unchanged),
		cmocka_unit_test(test_xml_escape),        cmocka_unit_test(test_steal_and_reset),
		cmocka_unit_test(test_growth_large),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
