/*
 * notify_hl7_test.c — the HL7 v2 parser, accessors, escaping and ACK builder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "notify/notify_hl7.h"

#define MSG_A01                                                                                                    \
	"MSH|^~\\&|SENDAPP^1.2.3^ISO|SENDFAC|RECVAPP|RECVFAC|20260101120000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r"    \
	"EVN|A01|20260101120000\r"                                                                                 \
	"PID|1||MRN1^^^LOCAL~123^^^&1.2.840.99&ISO||Doe^John^Q||19700102|M|||1 Main St^Apt 2^Springfield^IL^62701^USA\r"

static char *text(const struct notify_hl7_msg *m, const char *seg, size_t occ, size_t f, size_t r, size_t c, size_t s)
{
	static struct hie_buf b;
	hie_buf_free(&b);
	hie_buf_init(&b, 4096);
	hie_err_t err = notify_hl7_get_text(m, seg, occ, f, r, c, s, &b);
	if (err)
		return NULL;
	return (char *)hie_buf_str(&b);
}

static void test_basic(void **state)
{
	struct notify_hl7_msg m;
	assert_int_equal(notify_hl7_parse(MSG_A01, strlen(MSG_A01), NULL, &m), HIE_OK);
	assert_int_equal(m.nsegs, 3);
	assert_int_equal(m.fs, '|');
	assert_int_equal(m.cs, '^');
	assert_int_equal(m.rs, '~');
	assert_int_equal(m.ec, '\\');
	assert_int_equal(m.ss, '&');
	assert_string_equal(text(&m, "MSH", 1, 1, 0, 0, 0), "|");
	assert_string_equal(text(&m, "MSH", 1, 2, 0, 0, 0), "^~\\&");
	assert_string_equal(text(&m, "MSH", 1, 2, 1, 1, 0), "^~\\&"); /* never split */
	assert_string_equal(text(&m, "MSH", 1, 3, 1, 2, 0), "1.2.3");
	assert_string_equal(text(&m, "MSH", 1, 9, 1, 1, 0), "ADT");
	assert_string_equal(text(&m, "MSH", 1, 9, 1, 2, 0), "A01");
	assert_string_equal(text(&m, "MSH", 1, 10, 0, 0, 0), "MSG00001");
	assert_string_equal(text(&m, "MSH", 1, 12, 0, 0, 0), "2.5.1");
	assert_string_equal(text(&m, "MSH", 1, 13, 0, 0, 0), ""); /* past the end: empty */
	const struct notify_hl7_seg *pid = notify_hl7_seg(&m, "PID", 1);
	assert_non_null(pid);
	assert_int_equal(pid->nfields, 11);
	assert_int_equal(notify_hl7_reps(&m, pid, 3), 2);
	assert_int_equal(notify_hl7_reps(&m, pid, 2), 0);
	assert_string_equal(text(&m, "PID", 1, 3, 1, 1, 0), "MRN1");
	assert_string_equal(text(&m, "PID", 1, 3, 2, 1, 0), "123");
	assert_string_equal(text(&m, "PID", 1, 3, 2, 4, 0), "&1.2.840.99&ISO");
	assert_string_equal(text(&m, "PID", 1, 3, 2, 4, 2), "1.2.840.99");
	assert_string_equal(text(&m, "PID", 1, 3, 2, 4, 3), "ISO");
	assert_string_equal(text(&m, "PID", 1, 3, 2, 4, 4), "");
	assert_string_equal(text(&m, "PID", 1, 3, 3, 1, 0), "");
	assert_string_equal(text(&m, "PID", 1, 5, 1, 2, 0), "John");
	assert_string_equal(text(&m, "PID", 1, 11, 1, 3, 0), "Springfield");
	assert_string_equal(text(&m, "PID", 1, 0, 0, 0, 0), "PID");
	assert_null(text(&m, "PID", 2, 1, 0, 0, 0)); /* HIE_ENOTFOUND */
	assert_null(text(&m, "OBX", 1, 1, 0, 0, 0));
	assert_int_equal(notify_hl7_seg_count(&m, "PID"), 1);
	const char *p;
	size_t len;
	assert_int_equal(notify_hl7_get(&m, "EVN", 1, 2, 0, 0, 0, &p, &len), HIE_OK);
	assert_int_equal(len, 14);
	assert_memory_equal(p, "20260101120000", 14);
	notify_hl7_free(&m);
}

static void test_custom_separators(void **state)
{
	/* fs '#', component '$', repetition '*', escape '@', subcomponent '%' */
	static const char msg[] = "MSH#$*@%#APP#FAC#R#RF#2026##ADT$A08#C1#P#2.5.1\r"
				  "PID#1##X1$$$%1.2.3%ISO*X2$$$LOC##Smith@S@Jr$Ann@F@B@T@C@R@D@E@\r";
	struct notify_hl7_msg m;
	assert_int_equal(notify_hl7_parse(msg, strlen(msg), NULL, &m), HIE_OK);
	assert_int_equal(m.fs, '#');
	assert_int_equal(m.cs, '$');
	assert_int_equal(m.rs, '*');
	assert_int_equal(m.ec, '@');
	assert_int_equal(m.ss, '%');
	assert_string_equal(text(&m, "MSH", 1, 9, 1, 2, 0), "A08");
	assert_string_equal(text(&m, "PID", 1, 3, 1, 4, 2), "1.2.3");
	assert_string_equal(text(&m, "PID", 1, 3, 2, 1, 0), "X2");
	assert_string_equal(text(&m, "PID", 1, 5, 1, 1, 0), "Smith$Jr");
	assert_string_equal(text(&m, "PID", 1, 5, 1, 2, 0), "Ann#B%C*D@");
	notify_hl7_free(&m);
}

static void test_line_endings(void **state)
{
	static const char *const msgs[] = {
		"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5.1\r\nPID|1||X\r\n",
		"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5.1\nPID|1||X\n",
		"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5.1\r\r\nPID|1||X",
		"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5.1\rPID|1||X",
	};
	for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
		struct notify_hl7_msg m;
		assert_int_equal(notify_hl7_parse(msgs[i], strlen(msgs[i]), NULL, &m), HIE_OK);
		assert_int_equal(m.nsegs, 2);
		assert_string_equal(text(&m, "PID", 1, 3, 0, 0, 0), "X");
		assert_string_equal(text(&m, "MSH", 1, 12, 0, 0, 0), "2.5.1");
		notify_hl7_free(&m);
	}
}

static void test_escapes(void **state)
{
	static const struct {
		const char *raw;
		const char *want; /* NULL: HIE_EPARSE */
	} cases[] = {
		{.raw = "a\\F\\b", .want = "a|b"},
		{.raw = "\\S\\\\T\\\\R\\\\E\\", .want = "^&~\\"},
		{.raw = "\\X41\\\\X4243\\", .want = "ABC"},
		{.raw = "\\xc3a9\\", .want = ""},            /* not \X: an unknown escape is dropped */
		{.raw = "bold\\H\\on\\N\\", .want = "boldon"},
		{.raw = "line\\.br\\two", .want = "linetwo"},
		{.raw = "\\X00\\", .want = NULL},            /* NUL never decoded */
		{.raw = "\\X4\\", .want = NULL},
		{.raw = "\\XZZ\\", .want = NULL},
		{.raw = "abc\\F", .want = NULL},             /* unterminated */
		{.raw = "\\\\", .want = NULL},               /* empty sequence */
		{.raw = "plain", .want = "plain"},
		{.raw = "", .want = ""},
	};
	struct notify_hl7_msg m;
	static const char msh[] = "MSH|^~\\&|A";
	assert_int_equal(notify_hl7_parse(msh, strlen(msh), NULL, &m), HIE_OK);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hie_buf b;
		hie_buf_init(&b, 100);
		hie_err_t err = notify_hl7_unescape(&m, cases[i].raw, strlen(cases[i].raw), &b);
		if (cases[i].want) {
			assert_int_equal(err, HIE_OK);
			assert_string_equal(hie_buf_str(&b), cases[i].want);
		} else {
			assert_int_equal(err, HIE_EPARSE);
		}
		hie_buf_free(&b);
	}
	notify_hl7_free(&m);

	struct hie_buf b;
	hie_buf_init(&b, 200);
	assert_int_equal(notify_hl7_escape("a|b^c~d\\e&f\r\ng\x7f", 15, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\\\X0A\\g\\X7F\\");
	hie_buf_free(&b);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *msg;
		size_t len; /* 0: strlen */
		hie_err_t want;
	} cases[] = {
		{.msg = "", .want = HIE_EPARSE},
		{.msg = "MSH", .want = HIE_EPARSE},
		{.msg = "MSH|^~", .want = HIE_EPARSE},             /* truncated MSH */
		{.msg = "MSH|^~\\", .want = HIE_EPARSE},
		{.msg = "PID|1||X\rMSH|^~\\&|", .want = HIE_EPARSE}, /* no MSH first */
		{.msg = "EVN|A01\r", .want = HIE_EPARSE},
		{.msg = "MSH|^^\\&|A", .want = HIE_EPARSE},        /* repeated separator */
		{.msg = "MSH|^~\\|||A", .want = HIE_EPARSE},       /* MSH-2 too short */
		{.msg = "MSH|^~\\&#!|A", .want = HIE_EPARSE},      /* MSH-2 too long */
		{.msg = "MSHA^~\\&A", .want = HIE_EPARSE},         /* letter as field separator */
		{.msg = "MSH ^~\\& A", .want = HIE_EPARSE},        /* space */
		{.msg = "MSH|^~\\&|A\rPI|1", .want = HIE_EPARSE},  /* short segment name */
		{.msg = "MSH|^~\\&|A\rPIDX|1", .want = HIE_EPARSE},
		{.msg = "MSH|^~\\&|A\rpid|1", .want = HIE_EPARSE},
		{.msg = "MSH|^~\\&|A\r|1", .want = HIE_EPARSE},
		{.msg = "MSH|^~\\&|A\x1c\r", .want = HIE_EPARSE},  /* MLLP end block inside */
		{.msg = "MSH|^~\\&|A\x0bPID", .want = HIE_EPARSE},
		{.msg = "MSH|^~\\&|A\0B", .len = 12, .want = HIE_EPARSE},
		{.msg = "MSH|^~\\&", .want = HIE_OK},
		{.msg = "MSH|^~\\&#|A", .want = HIE_OK},           /* v2.7 truncation character */
		{.msg = "MSH|^~\\&|A\rZZ1", .want = HIE_OK},       /* a segment that is only a name */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct notify_hl7_msg m;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].msg);
		hie_err_t err = notify_hl7_parse(cases[i].msg, len, NULL, &m);
		if (err != cases[i].want)
			fail_msg("case %zu (%s): got %s, want %s", i, cases[i].msg, hie_errname(err), hie_errname(cases[i].want));
		notify_hl7_free(&m);
	}
}

/* n segments: MSH and n-1 OBX. */
static char *many_segments(size_t n, size_t *len)
{
	struct hie_buf b;
	hie_buf_init(&b, 64u * 1024 * 1024);
	assert_int_equal(hie_buf_addstr(&b, "MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5.1\r"), HIE_OK);
	for (size_t i = 1; i < n; i++)
		assert_int_equal(hie_buf_addf(&b, "OBX|%zu|ST|X||v\r", i), HIE_OK);
	return hie_buf_steal(&b, len);
}

static void test_caps(void **state)
{
	struct notify_hl7_msg m;
	size_t len;
	char *s = many_segments(1000, &len);
	assert_int_equal(notify_hl7_parse(s, len, NULL, &m), HIE_OK);
	assert_int_equal(notify_hl7_seg_count(&m, "OBX"), 999);
	assert_string_equal(text(&m, "OBX", 999, 1, 0, 0, 0), "999");
	notify_hl7_free(&m);
	free(s);

	s = many_segments(1001, &len);
	assert_int_equal(notify_hl7_parse(s, len, NULL, &m), HIE_ETOOBIG);
	notify_hl7_free(&m);
	free(s);

	s = many_segments(10000, &len);
	assert_int_equal(notify_hl7_parse(s, len, NULL, &m), HIE_ETOOBIG);
	notify_hl7_free(&m);
	struct notify_hl7_limits big = {.max_segments = 10000};
	assert_int_equal(notify_hl7_parse(s, len, &big, &m), HIE_OK);
	assert_int_equal(m.nsegs, 10000);
	assert_string_equal(text(&m, "OBX", 9999, 5, 0, 0, 0), "v");
	notify_hl7_free(&m);
	struct notify_hl7_limits small = {.max_size = len - 1, .max_segments = 10000};
	assert_int_equal(notify_hl7_parse(s, len, &small, &m), HIE_ETOOBIG);
	notify_hl7_free(&m);
	free(s);

	/* fields per segment: 4 allowed */
	struct notify_hl7_limits lf = {.max_fields = 4};
	static const char four[] = "MSH|^~\\&|A\rPID|1|2|3|4\r";
	static const char five[] = "MSH|^~\\&|A\rPID|1|2|3|4|5\r";
	assert_int_equal(notify_hl7_parse(four, strlen(four), &lf, &m), HIE_OK);
	notify_hl7_free(&m);
	assert_int_equal(notify_hl7_parse(five, strlen(five), &lf, &m), HIE_ETOOBIG);
	notify_hl7_free(&m);

	/* field length: 8 allowed */
	struct notify_hl7_limits ll = {.max_field_len = 8};
	static const char f8[] = "MSH|^~\\&|A\rPID|12345678\r";
	static const char f9[] = "MSH|^~\\&|A\rPID|123456789";
	assert_int_equal(notify_hl7_parse(f8, strlen(f8), &ll, &m), HIE_OK);
	notify_hl7_free(&m);
	assert_int_equal(notify_hl7_parse(f9, strlen(f9), &ll, &m), HIE_ETOOBIG);
	notify_hl7_free(&m);

	/* msh_only stops after the first segment, whatever follows */
	static const char bad_body[] = "MSH|^~\\&|A|B|C|D|||ADT^A01|ID7|P|2.5.1\rP!D|broken";
	assert_int_equal(notify_hl7_parse(bad_body, strlen(bad_body), NULL, &m), HIE_EPARSE);
	notify_hl7_free(&m);
	struct notify_hl7_limits only = {.msh_only = true};
	assert_int_equal(notify_hl7_parse(bad_body, strlen(bad_body), &only, &m), HIE_OK);
	assert_int_equal(m.nsegs, 1);
	assert_string_equal(text(&m, "MSH", 1, 10, 0, 0, 0), "ID7");
	notify_hl7_free(&m);
}

static void test_garbage(void **state)
{
	uint32_t x = 12345;
	char buf[512];
	struct hie_buf out;
	hie_buf_init(&out, 1 << 20);
	for (int round = 0; round < 2000; round++) {
		size_t n = 8 + (x % (sizeof buf - 8));
		memcpy(buf, "MSH|^~\\&", 8);
		for (size_t i = 8; i < n; i++) {
			x = x * 1103515245u + 12345u;
			/* mostly separators and letters, so that the parser goes deep */
			static const char alphabet[] = "|^~\\&\r\nABCPIDMSH0123456789XF";
			buf[i] = (round & 1) ? (char)(x >> 16) : alphabet[(x >> 16) % (sizeof alphabet - 1)];
		}
		struct notify_hl7_msg m;
		hie_err_t err = notify_hl7_parse(buf, n, NULL, &m);
		assert_true(err == HIE_OK || err == HIE_EPARSE || err == HIE_ETOOBIG);
		if (!err) {
			for (size_t s = 0; s < m.nsegs; s++) {
				for (size_t f = 0; f <= m.segs[s].nfields + 1; f++) {
					struct notify_hl7_span v = notify_hl7_at(&m, &m.segs[s], f, 1, 2, 1);
					assert_true(v.p >= buf && v.p + v.len <= buf + n);
				}
			}
			hie_buf_reset(&out);
			struct notify_hl7_ack a = {.code = "AE", .control_id = "1", .timestamp = "2", .err = 102};
			assert_int_equal(notify_hl7_ack_build(&m, &a, &out), HIE_OK);
			struct notify_hl7_msg back;
			assert_int_equal(notify_hl7_parse(out.data, out.len, NULL, &back), HIE_OK);
			assert_int_equal(back.nsegs, 3);
			notify_hl7_free(&back);
		}
		notify_hl7_free(&m);
	}
	hie_buf_free(&out);
}

static void test_ack_bytes(void **state)
{
	static const struct {
		const char *orig; /* NULL: no message */
		struct notify_hl7_ack a;
		const char *want;
	} cases[] = {
		{
			.orig = MSG_A01,
			.a = {.code = "AA", .control_id = "ACK1", .timestamp = "20260102030405+0000"},
			.want = "MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP^1.2.3^ISO|SENDFAC|20260102030405+0000||ACK^A01^ACK|ACK1|P|2.5.1\r"
				"MSA|AA|MSG00001\r",
		},
		{
			.orig = MSG_A01,
			.a = {.code = "AE", .control_id = "ACK2", .timestamp = "20260102030405+0000", .err = 101,
			      .err_seg = "PID", .err_seg_occ = 1, .err_field = 3, .err_text = "id|missing"},
			.want = "MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP^1.2.3^ISO|SENDFAC|20260102030405+0000||ACK^A01^ACK|ACK2|P|2.5.1\r"
				"MSA|AE|MSG00001\r"
				"ERR||PID^1^3|101^Required field missing^HL70357|E||||id\\F\\missing\r",
		},
		{
			.orig = NULL,
			.a = {.code = "AR", .control_id = "ACK3", .timestamp = "T", .err = 207},
			.want = "MSH|^~\\&|||||T||ACK|ACK3|P|2.5.1\rMSA|AR|\rERR|||207^Application internal error^HL70357|E\r",
		},
		{
			/* custom separators in the original: values re-encoded in ours, escapes carried over */
			.orig = "MSH#$*@%#S&A$1.2%x$ISO#S@F@F#RA|x#RF#2026##ORU$R01#C|9#T#2.3\rOBX#1",
			.a = {.code = "AR", .control_id = "K", .timestamp = "T", .err = 200, .err_seg = "MSH",
			      .err_field = 9},
			.want = "MSH|^~\\&|RA\\F\\x|RF|S\\T\\A^1.2&x^ISO|S#F|T||ACK^R01^ACK|K|T|2.3\r"
				"MSA|AR|C\\F\\9\r"
				"ERR||MSH^1^9|200^Unsupported message type^HL70357|E\r",
		},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct notify_hl7_msg m;
		struct hie_buf out;
		hie_buf_init(&out, 4096);
		if (cases[i].orig)
			assert_int_equal(notify_hl7_parse(cases[i].orig, strlen(cases[i].orig), NULL, &m), HIE_OK);
		assert_int_equal(notify_hl7_ack_build(cases[i].orig ? &m : NULL, &cases[i].a, &out), HIE_OK);
		if (strcmp(hie_buf_str(&out), cases[i].want) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, hie_buf_str(&out), cases[i].want);
		if (cases[i].orig)
			notify_hl7_free(&m);
		hie_buf_free(&out);
	}
	struct hie_buf out;
	hie_buf_init(&out, 4096);
	struct notify_hl7_ack bad = {.code = "XX"};
	assert_int_equal(notify_hl7_ack_build(NULL, &bad, &out), HIE_EINVAL);
	/* a value we put into the ACK cannot break a segment */
	struct notify_hl7_ack inj = {.code = "AA", .control_id = "1\rMSA|AA", .timestamp = "T"};
	assert_int_equal(notify_hl7_ack_build(NULL, &inj, &out), HIE_OK);
	assert_string_equal(hie_buf_str(&out), "MSH|^~\\&|||||T||ACK|1\\X0D\\MSA\\F\\AA|P|2.5.1\rMSA|AA|\r");
	hie_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),   cmocka_unit_test(test_custom_separators), cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_escapes), cmocka_unit_test(test_malformed),         cmocka_unit_test(test_caps),
		cmocka_unit_test(test_garbage), cmocka_unit_test(test_ack_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
