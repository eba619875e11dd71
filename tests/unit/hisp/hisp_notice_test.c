/*
 * hisp_notice_test.c — MDN and DSN building and recognition (hisp_mdn.c), pure: build → parse round trips,
 * the Direct RI's real MDN/DSN messages, the header and address-list helpers, and hostile reports
 * (missing parts, injected CR/LF, control characters, truncations at every length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_buf.h"
#include "hisp/hisp_notice.h"

#define CORPUS "/../shared/corpus/direct-ri/src/test/resources/org/nhindirect/stagent/"

static char *build_mdn(const struct hisp_mdn_req *r, size_t *len)
{
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	assert_int_equal(hisp_mdn_build(r, &b), HIE_OK);
	return hie_buf_steal(&b, len);
}

static const struct hisp_mdn_req base_mdn = {
	.from = "bob@b.test",
	.to = "alice@a.test",
	.original_message_id = "orig-1@a.test",
	.original_subject = "Referral for J. Doe",
	.disposition = "processed",
	.reporting_ua = "hisp.b.test; hienode",
	.message_id = "mdn-1-0@hisp.b.test",
};

/* --- MDN build / parse ------------------------------------------------------------------------------------ */

static void test_mdn_roundtrip(void **state)
{
	(void)state;
	static const struct {
		const char *disp;
		bool final;
		const char *subject_line;
	} cases[] = {
		{.disp = "processed", .final = false, .subject_line = "Subject: Processed: Referral for J. Doe\r\n"},
		{.disp = "dispatched", .final = true, .subject_line = "Subject: Dispatched: Referral for J. Doe\r\n"},
		{.disp = "failed", .final = false, .subject_line = "Subject: Failed: Referral for J. Doe\r\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_mdn_req r = base_mdn;
		r.disposition = cases[i].disp;
		r.final_delivery = cases[i].final;
		size_t len;
		char *m = build_mdn(&r, &len);
		assert_non_null(strstr(m, cases[i].subject_line));
		assert_non_null(strstr(m, "From: bob@b.test\r\nTo: alice@a.test\r\n"));
		assert_non_null(strstr(m, "\r\nMessage-ID: <mdn-1-0@hisp.b.test>\r\n"));
		assert_non_null(strstr(m, "\r\nMIME-Version: 1.0\r\n"));
		assert_non_null(strstr(m, "\r\nDate: "));
		assert_non_null(strstr(m, "multipart/report; report-type=disposition-notification;"));
		assert_non_null(strstr(m, "\r\nReporting-UA: hisp.b.test; hienode\r\n"));
		assert_non_null(strstr(m, "\r\nOriginal-Recipient: rfc822;bob@b.test\r\n"));
		assert_non_null(strstr(m, "\r\nFinal-Recipient: rfc822;bob@b.test\r\n"));
		assert_non_null(strstr(m, "\r\nOriginal-Message-ID: <orig-1@a.test>\r\n"));
		/* never ask for a notice about a notice */
		assert_null(strstr(m, "Disposition-Notification-To"));
		assert_null(strstr(m, "Disposition-Notification-Options"));
		assert_int_equal(strstr(m, "X-DIRECT-FINAL-DESTINATION-DELIVERY") != NULL, cases[i].final);
		assert_int_equal(strstr(m, "\r\nFailure: ") != NULL, strcmp(cases[i].disp, "failed") == 0);
		/* every line ends in CRLF */
		for (size_t k = 0; k < len; k++)
			if (m[k] == '\n')
				assert_true(k > 0 && m[k - 1] == '\r');

		struct hisp_notice_info n;
		assert_int_equal(hisp_notice_parse(m, len, &n), HIE_OK);
		assert_int_equal(n.kind, HISP_NOTICE_MDN);
		assert_string_equal(n.disposition, cases[i].disp);
		assert_string_equal(n.original_message_id, "orig-1@a.test");
		assert_string_equal(n.final_recipient, "bob@b.test");
		assert_int_equal(n.final_delivery, cases[i].final);
		assert_int_equal(hisp_notice_parse_nth(m, len, 1, &n), HIE_ENOTFOUND);
		free(m);
	}
}

static void test_mdn_subject(void **state)
{
	(void)state;
	static const struct {
		const char *subject;
		const char *want;
	} cases[] = {
		{.subject = NULL, .want = "Subject: Processed\r\n"},
		{.subject = "", .want = "Subject: Processed\r\n"},
		{.subject = "x\r\nBcc: evil@e.test", .want = "Subject: Processed\r\n"},
		{.subject = "caf\xc3\xa9", .want = "Subject: Processed\r\n"},
		{.subject = "tab\there", .want = "Subject: Processed\r\n"},
		{.subject = "plain words", .want = "Subject: Processed: plain words\r\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_mdn_req r = base_mdn;
		r.original_subject = cases[i].subject;
		size_t len;
		char *m = build_mdn(&r, &len);
		assert_non_null(strstr(m, cases[i].want));
		assert_null(strstr(m, "evil"));
		free(m);
	}
}

static void test_mdn_build_rejects(void **state)
{
	(void)state;
	static const struct {
		const char *field;
		const char *value;
	} cases[] = {
		{"from", NULL},       {"from", ""},          {"from", "bob@b.test\r\nBcc: x@y"}, {"to", NULL},
		{"to", "a@a\n.test"}, {"orig", NULL},        {"orig", "<x@y>"},                  {"orig", "a\rb"},
		{"mid", ""},          {"mid", "a>b"},        {"disp", "displayed"},              {"disp", NULL},
		{"ua", "h\r\nX: y"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_mdn_req r = base_mdn;
		if (strcmp(cases[i].field, "from") == 0)
			r.from = cases[i].value;
		else if (strcmp(cases[i].field, "to") == 0)
			r.to = cases[i].value;
		else if (strcmp(cases[i].field, "orig") == 0)
			r.original_message_id = cases[i].value;
		else if (strcmp(cases[i].field, "mid") == 0)
			r.message_id = cases[i].value;
		else if (strcmp(cases[i].field, "disp") == 0)
			r.disposition = cases[i].value;
		else
			r.reporting_ua = cases[i].value;
		struct hie_buf b;
		hie_buf_init(&b, 1 << 20);
		assert_int_equal(hisp_mdn_build(&r, &b), HIE_EINVAL);
		assert_int_equal(b.len, 0);
		hie_buf_free(&b);
	}
	/* a cap too small leaves the buffer as it was */
	struct hie_buf b;
	hie_buf_init(&b, 100);
	assert_int_equal(hisp_mdn_build(&base_mdn, &b), HIE_ETOOBIG);
	assert_int_equal(b.len, 0);
	hie_buf_free(&b);
}

/* --- DSN build / parse ------------------------------------------------------------------------------------ */

static void test_dsn_roundtrip(void **state)
{
	(void)state;
	const struct hisp_dsn_rcpt rc[] = {
		{.address = "bob@b.test", .status = "5.1.1", .diagnostic = "no certificate found"},
		{.address = "carol@c.test", .status = "4.4.7", .diagnostic = "MDN timeout\r\nX-Injected: yes"},
	};
	struct hisp_dsn_req r = {.reporting_mta = "hisp.a.test",
				 .to = "alice@a.test",
				 .original_message_id = "orig-2@a.test",
				 .rcpts = rc,
				 .nrcpts = 2,
				 .message_id = "dsn-7@hisp.a.test"};
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	assert_int_equal(hisp_dsn_build(&r, &b), HIE_OK);
	const char *m = hie_buf_str(&b);
	assert_non_null(strstr(m, "From: MAILER-DAEMON@a.test\r\nTo: alice@a.test\r\n"));
	assert_non_null(strstr(m, "multipart/report; report-type=delivery-status;"));
	assert_non_null(strstr(m, "\r\nReporting-MTA: dns;hisp.a.test\r\n"));
	assert_non_null(strstr(m, "\r\nX-Original-Message-ID: <orig-2@a.test>\r\n"));
	assert_non_null(strstr(m, "\r\nIn-Reply-To: <orig-2@a.test>\r\n"));
	assert_non_null(strstr(m, "\r\nFinal-Recipient: rfc822;bob@b.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
				  "Diagnostic-Code: smtp; no certificate found\r\n"));
	assert_non_null(strstr(m, "\r\nStatus: 4.4.7\r\n"));
	assert_non_null(strstr(m, "Content-Type: text/rfc822-headers"));
	assert_null(strstr(m, "\r\nX-Injected"));
	assert_null(strstr(m, "Disposition-Notification"));

	static const struct {
		unsigned nth;
		const char *rcpt;
	} want[] = {{0, "bob@b.test"}, {1, "carol@c.test"}};
	for (size_t i = 0; i < 2; i++) {
		struct hisp_notice_info n;
		assert_int_equal(hisp_notice_parse_nth(b.data, b.len, want[i].nth, &n), HIE_OK);
		assert_int_equal(n.kind, HISP_NOTICE_DSN);
		assert_true(n.dsn_failed);
		assert_string_equal(n.final_recipient, want[i].rcpt);
		assert_string_equal(n.original_message_id, "orig-2@a.test");
	}
	struct hisp_notice_info n;
	assert_int_equal(hisp_notice_parse_nth(b.data, b.len, 2, &n), HIE_ENOTFOUND);
	hie_buf_free(&b);
}

static void test_dsn_build_rejects(void **state)
{
	(void)state;
	static const char *const statuses[] = {"2.0.0", "5.1", "5..1", "5.1.1x", "x.1.1", "", "5.1234.1", NULL};
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
		struct hisp_dsn_rcpt rc = {.address = "bob@b.test", .status = statuses[i], .diagnostic = "x"};
		struct hisp_dsn_req r = {.reporting_mta = "h",
					 .to = "alice@a.test",
					 .original_message_id = "o@a",
					 .rcpts = &rc,
					 .nrcpts = 1,
					 .message_id = "d@h"};
		struct hie_buf b;
		hie_buf_init(&b, 1 << 20);
		assert_int_equal(hisp_dsn_build(&r, &b), HIE_EINVAL);
		hie_buf_free(&b);
	}
	struct hisp_dsn_rcpt rc = {.address = "bob@b.test", .status = "5.0.0", .diagnostic = NULL};
	struct hisp_dsn_req r = {.reporting_mta = "h", .to = "alice@a.test", .original_message_id = "o@a",
				 .rcpts = &rc, .nrcpts = 0, .message_id = "d@h"};
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	assert_int_equal(hisp_dsn_build(&r, &b), HIE_EINVAL); /* no recipients */
	r.nrcpts = 1;
	r.to = "no-at-sign";
	assert_int_equal(hisp_dsn_build(&r, &b), HIE_EINVAL);
	r.to = "alice@a.test";
	assert_int_equal(hisp_dsn_build(&r, &b), HIE_OK); /* NULL diagnostic gets a default */
	assert_non_null(strstr(hie_buf_str(&b), "Diagnostic-Code: smtp; delivery failed\r\n"));
	hie_buf_free(&b);
}

/* --- the Direct RI's messages ----------------------------------------------------------------------------- */

static char *load_corpus(const char *name, size_t *len)
{
	const char *src = getenv("HIENODE_SRC");
	char path[1024];
	snprintf(path, sizeof path, "%s" CORPUS "%s", src ? src : ".", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void test_ri_corpus(void **state)
{
	(void)state;
	size_t len;
	char *m = load_corpus("MDNMessage.txt", &len);
	if (!m) {
		fprintf(stderr, "SKIP: Direct RI corpus not found (HIENODE_SRC" CORPUS ")\n");
		skip();
	}
	struct hisp_notice_info n;
	assert_int_equal(hisp_notice_parse(m, len, &n), HIE_OK);
	assert_int_equal(n.kind, HISP_NOTICE_MDN);
	assert_string_equal(n.disposition, "processed");
	assert_string_equal(n.original_message_id, "9501051053.aa04167@IETF.CNR I.Reston.VA.US");
	assert_string_equal(n.final_recipient, "externuser1@starugh-stateline.com");
	assert_false(n.final_delivery);
	free(m);

	/* fields inside the part's header block, no Original-Message-ID: still an MDN (never answered) */
	m = load_corpus("MDNResponse.txt", &len);
	assert_non_null(m);
	assert_int_equal(hisp_notice_parse(m, len, &n), HIE_OK);
	assert_int_equal(n.kind, HISP_NOTICE_MDN);
	assert_string_equal(n.disposition, "processed");
	assert_string_equal(n.original_message_id, "");
	free(m);

	m = load_corpus("DSNMessage.txt", &len);
	assert_non_null(m);
	assert_int_equal(hisp_notice_parse(m, len, &n), HIE_OK);
	assert_int_equal(n.kind, HISP_NOTICE_DSN);
	assert_true(n.dsn_failed);
	assert_string_equal(n.final_recipient, "carol@ivory.edu");
	assert_string_equal(n.original_message_id, "9501051053.aa04167@IETF.CNR I.Reston.VA.US");
	assert_int_equal(hisp_notice_parse_nth(m, len, 1, &n), HIE_ENOTFOUND);
	free(m);
}

/* --- recognition and hostile reports --------------------------------------------------------------------- */

#define MDN_HEAD                                                                                                   \
	"From: bob@b.test\r\nTo: alice@a.test\r\nMessage-ID: <m@b>\r\n"                                            \
	"Content-Type: multipart/report; report-type=disposition-notification; boundary=\"b\"\r\n\r\n"             \
	"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"

static void test_parse_table(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		const char *msg;
		hie_err_t err;
		enum hisp_notice_kind kind;
		const char *disp;
		const char *orig;
		const char *rcpt;
	} cases[] = {
		{.name = "plain message", .msg = "From: a@a.test\r\nSubject: hi\r\n\r\nbody\r\n", .kind = HISP_NOTICE_NONE},
		{.name = "no headers", .msg = "", .kind = HISP_NOTICE_NONE},
		{.name = "garbage", .msg = "\x01\x02\xff\xfe", .kind = HISP_NOTICE_NONE},
		{.name = "mixed", .msg = "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nb\r\n--x--\r\n",
		 .kind = HISP_NOTICE_NONE},
		{.name = "other report type",
		 .msg = "Content-Type: multipart/report; report-type=foo; boundary=x\r\n\r\n--x\r\n\r\nb\r\n--x--\r\n",
		 .kind = HISP_NOTICE_NONE},
		{.name = "report in the body only",
		 .msg = "Subject: x\r\n\r\nContent-Type: multipart/report; report-type=disposition-notification\r\n",
		 .kind = HISP_NOTICE_NONE},
		{.name = "MDN without its part", .msg = MDN_HEAD "--b--\r\n", .err = HIE_EPARSE, .kind = HISP_NOTICE_MDN},
		{.name = "MDN without Disposition",
		 .msg = MDN_HEAD "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
				 "Original-Message-ID: <o@a>\r\n\r\n--b--\r\n",
		 .err = HIE_EPARSE,
		 .kind = HISP_NOTICE_MDN},
		{.name = "MDN broken MIME",
		 .msg = "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"b\r\n\r\nx",
		 .err = HIE_EPARSE,
		 .kind = HISP_NOTICE_MDN},
		{.name = "control char in id",
		 .msg = MDN_HEAD "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
				 "Disposition: automatic-action/MDN-sent-automatically;processed\r\n"
				 "Original-Message-ID: <o\x01@a>\r\n\r\n--b--\r\n",
		 .err = HIE_EPARSE,
		 .kind = HISP_NOTICE_MDN},
		{.name = "unterminated id",
		 .msg = MDN_HEAD "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
				 "Disposition: automatic-action/MDN-sent-automatically;processed\r\n"
				 "Original-Message-ID: <o@a\r\n\r\n--b--\r\n",
		 .err = HIE_EPARSE,
		 .kind = HISP_NOTICE_MDN},
		{.name = "error modifier, folded, bare LF, odd case",
		 .msg = "content-type: Multipart/Report;\n report-type=\"Disposition-Notification\"; boundary=b\n\n"
			"--b\nContent-Type: message/disposition-notification\n\n"
			"disposition: automatic-action/MDN-sent-automatically;\n   Processed/Error\n"
			"final-recipient: rfc822; <Bob@B.Test>\noriginal-message-id:\n <o@a>\n\n--b--\n",
		 .kind = HISP_NOTICE_MDN,
		 .disp = "failed",
		 .orig = "o@a",
		 .rcpt = "bob@b.test"},
		{.name = "displayed, bad Final-Recipient left empty",
		 .msg = MDN_HEAD "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
				 "Disposition: manual-action/MDN-sent-manually; displayed\r\n"
				 "Final-Recipient: rfc822; not an address\r\nOriginal-Message-ID: <o@a>\r\n",
		 .kind = HISP_NOTICE_MDN,
		 .disp = "displayed",
		 .orig = "o@a",
		 .rcpt = ""},
		{.name = "DSN without recipient group",
		 .msg = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
			"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns;x\r\n\r\n--b--\r\n",
		 .err = HIE_EPARSE,
		 .kind = HISP_NOTICE_DSN},
		{.name = "DSN delayed, id from rfc822-headers",
		 .msg = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
			"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns;x\r\n\r\n"
			"Final-Recipient: rfc822;c@c.test\r\nAction: delayed\r\nStatus: 4.0.0\r\n\r\n"
			"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: s\r\nMessage-ID: <h@a>\r\n\r\n--b--\r\n",
		 .kind = HISP_NOTICE_DSN,
		 .orig = "h@a",
		 .rcpt = "c@c.test"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_notice_info n;
		hie_err_t err = hisp_notice_parse(cases[i].msg, strlen(cases[i].msg), &n);
		if (err != cases[i].err || n.kind != cases[i].kind)
			fail_msg("%s: err %d kind %d", cases[i].name, err, n.kind);
		if (cases[i].disp)
			assert_string_equal(n.disposition, cases[i].disp);
		if (cases[i].orig)
			assert_string_equal(n.original_message_id, cases[i].orig);
		if (cases[i].rcpt)
			assert_string_equal(n.final_recipient, cases[i].rcpt);
	}
}

static void test_truncations(void **state)
{
	(void)state;
	struct hisp_mdn_req r = base_mdn;
	r.final_delivery = true;
	size_t len;
	char *m = build_mdn(&r, &len);
	for (size_t cut = 0; cut <= len; cut++) {
		char *t = malloc(cut + 1);
		assert_non_null(t);
		memcpy(t, m, cut);
		struct hisp_notice_info n;
		hie_err_t err = hisp_notice_parse(t, cut, &n);
		assert_true(err == HIE_OK || err == HIE_EPARSE);
		/* A missing close delimiter is accepted (real senders omit it), so a cut inside the last field
		 * yields a prefix of it — which tracking ignores — never anything else. */
		if (err == HIE_OK && n.kind == HISP_NOTICE_MDN)
			assert_true(strncmp("processed", n.disposition, strlen(n.disposition)) == 0);
		free(t);
	}
	free(m);
}

static void test_long_id(void **state)
{
	(void)state;
	char msg[4096];
	char id[600];
	memset(id, 'x', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	snprintf(msg, sizeof msg,
		 MDN_HEAD "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
			  "Disposition: automatic-action/MDN-sent-automatically;processed\r\n"
			  "Original-Message-ID: <%s@a>\r\n\r\n--b--\r\n",
		 id);
	struct hisp_notice_info n;
	assert_int_equal(hisp_notice_parse(msg, strlen(msg), &n), HIE_EPARSE);
}

/* --- helpers ---------------------------------------------------------------------------------------------- */

static void test_wants_final(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		bool want;
	} cases[] = {
		{"X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true", true},
		{"x-direct-final-destination-delivery = required , TRUE", true},
		{"foo=optional,bar; X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true", true},
		{"X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,false", false},
		{"X-DIRECT-FINAL-DESTINATION-DELIVERY", false},
		{"X-DIRECT-FINAL-DESTINATION-DELIVERY=optional", false},
		{"signed-receipt-protocol=optional,pkcs7-signature", false},
		{"", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(hisp_notice_wants_final(cases[i].v, strlen(cases[i].v)), cases[i].want);
}

struct collect {
	char list[8][256];
	int n;
};

static int collect(const char *addr, void *arg)
{
	struct collect *c = arg;
	if (c->n < 8)
		snprintf(c->list[c->n++], 256, "%s", addr);
	return 0;
}

static void test_addrlist(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		hie_err_t err;
		int n;
		const char *want[4];
	} cases[] = {
		{"Bob@B.test", HIE_OK, 1, {"bob@b.test"}},
		{"\"Smith, Bob\" <Bob@B.test>, carol@c.test (Carol, MD)", HIE_OK, 2, {"bob@b.test", "carol@c.test"}},
		{"Team: a@a.test, \"x\" <b@b.test>;, d@d.test", HIE_OK, 3, {"a@a.test", "b@b.test", "d@d.test"}},
		{"undisclosed-recipients:;", HIE_OK, 0, {NULL}},
		{"not an address, <also bad>, e@e.test", HIE_OK, 1, {"e@e.test"}},
		{"\"a <fake@f.test>\" <real@r.test>", HIE_OK, 1, {"real@r.test"}},
		{"\"unterminated <x@y.test>", HIE_EPARSE, 0, {NULL}},
		{"<x@y.test", HIE_EPARSE, 0, {NULL}},
		{"(comment x@y.test", HIE_EPARSE, 0, {NULL}},
		{"", HIE_OK, 0, {NULL}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct collect c = {.n = 0};
		hie_err_t err = hisp_addrlist_each(cases[i].v, strlen(cases[i].v), collect, &c);
		if (err != cases[i].err)
			fail_msg("'%s': err %d", cases[i].v, err);
		if (err)
			continue;
		if (c.n != cases[i].n)
			fail_msg("'%s': %d addresses", cases[i].v, c.n);
		for (int k = 0; k < c.n; k++)
			assert_string_equal(c.list[k], cases[i].want[k]);
	}
}

static void test_msg_header(void **state)
{
	(void)state;
	const char *m = "From: a@a.test\r\nTo: b@b.test,\r\n\tc@c.test\r\nTo: d@d.test\r\n"
			"junk line without colon\r\nSubject:   spaced   \r\n\r\nBcc: inbody@x.test\r\n";
	struct hie_buf b;
	hie_buf_init(&b, 1024);
	assert_int_equal(hisp_msg_header(m, strlen(m), "to", 0, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "b@b.test,\tc@c.test");
	assert_int_equal(hisp_msg_header(m, strlen(m), "TO", 1, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "d@d.test");
	assert_int_equal(hisp_msg_header(m, strlen(m), "To", 2, &b), HIE_ENOTFOUND);
	assert_int_equal(hisp_msg_header(m, strlen(m), "Subject", 0, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "spaced");
	/* a header-like line in the body is not a header */
	assert_int_equal(hisp_msg_header(m, strlen(m), "Bcc", 0, &b), HIE_ENOTFOUND);
	/* obsolete "Name :" still counts (a hidden Bcc must be seen) */
	const char *o = "Bcc : x@y.test\r\n\r\n";
	assert_int_equal(hisp_msg_header(o, strlen(o), "Bcc", 0, &b), HIE_OK);
	hie_buf_free(&b);
	/* cap */
	hie_buf_init(&b, 4);
	assert_int_equal(hisp_msg_header(m, strlen(m), "From", 0, &b), HIE_ETOOBIG);
	hie_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mdn_roundtrip), cmocka_unit_test(test_mdn_subject),
		cmocka_unit_test(test_mdn_build_rejects), cmocka_unit_test(test_dsn_roundtrip),
		cmocka_unit_test(test_dsn_build_rejects), cmocka_unit_test(test_ri_corpus),
		cmocka_unit_test(test_parse_table), cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_long_id), cmocka_unit_test(test_wants_final),
		cmocka_unit_test(test_addrlist), cmocka_unit_test(test_msg_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
