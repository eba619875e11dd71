/* core_log_test.c — log line shape, levels, line breaks neutralised, printable(), the panic hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/core_log.h"

static char last[HIE_LOG_LINE_MAX + 1];
static int nlines;

static void sink(enum hie_log_level level, const char *line, size_t len)
{
	memcpy(last, line, len);
	last[len] = '\0';
	nlines++;
}

static int setup(void **state)
{
	hie_log_set_sink(sink);
	hie_log_set_level(HIE_LOG_INFO);
	nlines = 0;
	return 0;
}

static void test_line_shape(void **state)
{
	hie_log(HIE_LOG_WARN, "event=test id=%d", 42);
	assert_int_equal(nlines, 1);
	assert_memory_equal(last, "ts=", 3);
	assert_non_null(strstr(last, "Z level=warn event=test id=42\n"));
	assert_int_equal(strchr(last, '\n') - last, (long)strlen(last) - 1);
}

static void test_level_filter(void **state)
{
	hie_log(HIE_LOG_DEBUG, "event=hidden");
	assert_int_equal(nlines, 0);
	hie_log_set_level(HIE_LOG_DEBUG);
	hie_log(HIE_LOG_DEBUG, "event=shown");
	assert_int_equal(nlines, 1);
	assert_int_equal(hie_log_level_parse("alert"), HIE_LOG_ALERT);
	assert_int_equal(hie_log_level_parse("panic"), -1);
	assert_int_equal(hie_log_level_parse("nonsense"), -1);
}

static void test_newlines_neutralised(void **state)
{
	hie_log(HIE_LOG_INFO, "event=x value=%s", "a\r\nts=forged level=alert");
	assert_int_equal(nlines, 1);
	assert_null(strchr(last, '\r'));
	assert_int_equal(strchr(last, '\n') - last, (long)strlen(last) - 1);
}

static void test_long_line_cut(void **state)
{
	char big[HIE_LOG_LINE_MAX * 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	hie_log(HIE_LOG_INFO, "event=big v=%s", big);
	assert_true(strlen(last) <= HIE_LOG_LINE_MAX);
	assert_int_equal(last[strlen(last) - 1], '\n');
}

static void test_printable(void **state)
{
	static const struct {
		const char *in;
		size_t dst;
		const char *out;
	} cases[] = {
		{.in = "user@example.org", .dst = 64, .out = "user@example.org"},
		{.in = "a b=c\"d\x01\xff", .dst = 64, .out = "a?b?c?d??"},
		{.in = "abcdefghij", .dst = 8, .out = "abcd..."},
		{.in = "", .dst = 4, .out = ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dst[64];
		hie_log_printable(dst, cases[i].dst, cases[i].in, strlen(cases[i].in));
		assert_string_equal(dst, cases[i].out);
	}
}

static jmp_buf panic_jmp;
static void panic_hook(void) { longjmp(panic_jmp, 1); }

static void test_panic_hook(void **state)
{
	hie_log_set_panic_hook(panic_hook);
	if (setjmp(panic_jmp) == 0) {
		hie_panic("event=bug invariant=%s", "x");
		fail_msg("hie_panic returned");
	}
	assert_non_null(strstr(last, "level=panic event=bug invariant=x"));
	hie_log_set_panic_hook(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_line_shape, setup),   cmocka_unit_test_setup(test_level_filter, setup),
		cmocka_unit_test_setup(test_newlines_neutralised, setup), cmocka_unit_test_setup(test_long_line_cut, setup),
		cmocka_unit_test_setup(test_printable, setup),    cmocka_unit_test_setup(test_panic_hook, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
