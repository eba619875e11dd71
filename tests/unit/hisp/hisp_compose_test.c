/*
 * hisp_compose_test.c — hisp_compose: headers, no Bcc, no header injection, attachments that decode back
 * through core_mime, unique Message-IDs, RFC 2047 subjects, quoted-printable bodies, CRLF everywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_mime.h"
#include "hisp/hisp_outbound.h"

static const char *const to1[] = {"Bob@B.test"};
static const char *const to2[] = {"bob@b.test", "carol@b.test"};
static const char *const cc1[] = {"dave@c.test"};

static struct hie_mime_part *parse(const struct hie_buf *b)
{
	struct hie_mime_part *p = NULL;
	assert_int_equal(hie_mime_parse(b->data, b->len, NULL, &p), HIE_OK);
	return p;
}

static char *hval(const struct hie_mime_part *p, const char *name)
{
	struct hie_buf v;
	hie_buf_init(&v, 4096);
	if (hie_mime_header_value(p, name, &v) != HIE_OK) {
		hie_buf_free(&v);
		return NULL;
	}
	return hie_buf_steal(&v, NULL);
}

static void assert_crlf_only(const struct hie_buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\n')
			assert_true(i > 0 && b->data[i - 1] == '\r');
		if (b->data[i] == '\r')
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
	}
}

/* Header block lines (up to the blank line) are 7-bit and at most 998 bytes (RFC 5322 §2.1.1). */
static void assert_header_block_7bit(const struct hie_buf *b, size_t maxline)
{
	const char *end = strstr(b->data, "\r\n\r\n");
	assert_non_null(end);
	size_t col = 0;
	for (const char *p = b->data; p < end; p++) {
		assert_true((unsigned char)*p < 0x80);
		col = *p == '\n' ? 0 : col + 1;
		assert_true(col <= maxline + 1);
	}
}

static void test_headers(void **state)
{
	(void)state;
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	char id[300];
	const char body[] = "Hello Bob.\nSecond line.\n";
	struct hisp_compose_req r = {.from = "Alice@A.test", .to = to2, .nto = 2, .cc = cc1, .ncc = 1,
				     .subject = "Referral", .body = body, .body_len = strlen(body), .host = "hisp.a.test"};
	assert_int_equal(hisp_compose(&r, &b, id, sizeof id), HIE_OK);
	assert_crlf_only(&b);
	assert_header_block_7bit(&b, 998);
	struct hie_mime_part *p = parse(&b);
	char *v;
	assert_string_equal(v = hval(p, "From"), "alice@a.test");
	free(v);
	assert_string_equal(v = hval(p, "To"), "bob@b.test, carol@b.test");
	free(v);
	assert_string_equal(v = hval(p, "Cc"), "dave@c.test");
	free(v);
	assert_null(hval(p, "Bcc"));
	assert_string_equal(v = hval(p, "Subject"), "Referral");
	free(v);
	assert_string_equal(v = hval(p, "MIME-Version"), "1.0");
	free(v);
	assert_string_equal(v = hval(p, "Disposition-Notification-Options"),
			    "X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true");
	free(v);
	v = hval(p, "Message-ID");
	char want[320];
	snprintf(want, sizeof want, "<%s>", id);
	assert_string_equal(v, want);
	free(v);
	assert_true(strlen(id) == 32 + 1 + strlen("hisp.a.test"));
	assert_string_equal(id + 33, "hisp.a.test");
	/* Date: "Sun, 22 Nov 2026 05:50:46 +0000" */
	v = hval(p, "Date");
	assert_non_null(v);
	assert_int_equal(strlen(v), 31);
	assert_true(v[3] == ',' && strcmp(v + 25, " +0000") == 0);
	free(v);
	assert_string_equal(p->type, "text/plain");
	assert_string_equal(p->encoding, "7bit");
	struct hie_buf d;
	hie_buf_init(&d, 4096);
	assert_int_equal(hie_mime_decode(p, &d), HIE_OK);
	assert_string_equal(d.data, "Hello Bob.\r\nSecond line.\r\n");
	hie_buf_free(&d);
	hie_mime_free(p);
	hie_buf_free(&b);
}

struct inj_case {
	const char *name;
	struct hisp_compose_req r;
	struct hisp_attachment att;
};

static void test_no_header_injection(void **state)
{
	(void)state;
	static const char *const bad_to[] = {"bob@b.test\r\nBcc: eve@evil.test"};
	static const char *const bad_cc[] = {"dave@c.test\n"};
	static const char *const blank_to[] = {"bob @b.test"};
	const struct inj_case cases[] = {
		{.name = "subject CRLF",
		 .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "Hi\r\nBcc: eve@evil.test", .host = "h"}},
		{.name = "subject LF", .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "Hi\nX: y", .host = "h"}},
		{.name = "subject CR", .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "Hi\rX: y", .host = "h"}},
		{.name = "subject NUL-ish control",
		 .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "Hi\x01", .host = "h"}},
		{.name = "subject bad UTF-8",
		 .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "caf\xc3", .host = "h"}},
		{.name = "from CRLF", .r = {.from = "a@a.test\r\nBcc: e@e", .to = to1, .nto = 1, .subject = "s", .host = "h"}},
		{.name = "to CRLF", .r = {.from = "a@a.test", .to = bad_to, .nto = 1, .subject = "s", .host = "h"}},
		{.name = "cc LF", .r = {.from = "a@a.test", .to = to1, .nto = 1, .cc = bad_cc, .ncc = 1, .subject = "s",
					.host = "h"}},
		{.name = "to blank", .r = {.from = "a@a.test", .to = blank_to, .nto = 1, .subject = "s", .host = "h"}},
		{.name = "host CRLF", .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "s", .host = "h\r\nX: y"}},
		{.name = "host with >", .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "s", .host = "h>x"}},
		{.name = "no recipients", .r = {.from = "a@a.test", .subject = "s", .host = "h"}},
		{.name = "attachment name LF",
		 .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "s", .host = "h", .natt = 1},
		 .att = {.name = "x.xml\nContent-Type: text/html", .data = "x", .len = 1}},
		{.name = "attachment type CRLF",
		 .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "s", .host = "h", .natt = 1},
		 .att = {.name = "x.xml", .content_type = "text/plain\r\nX: y", .data = "x", .len = 1}},
		{.name = "attachment type with params",
		 .r = {.from = "a@a.test", .to = to1, .nto = 1, .subject = "s", .host = "h", .natt = 1},
		 .att = {.name = "x.xml", .content_type = "text/plain; boundary=x", .data = "x", .len = 1}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hisp_compose_req r = cases[i].r;
		if (r.natt)
			r.att = &cases[i].att;
		struct hie_buf b;
		hie_buf_init(&b, 1 << 20);
		hie_buf_addstr(&b, "KEEP");
		char id[300] = "x";
		hie_err_t err = hisp_compose(&r, &b, id, sizeof id);
		if (err != HIE_EINVAL)
			fail_msg("case '%s': %s", cases[i].name, hie_errname(err));
		assert_int_equal(b.len, 4); /* out left as it was */
		assert_string_equal(b.data, "KEEP");
		hie_buf_free(&b);
	}
}

static void test_attachments_round_trip(void **state)
{
	(void)state;
	unsigned char bin[3000];
	for (size_t i = 0; i < sizeof bin; i++)
		bin[i] = (unsigned char)(i * 7 + 3);
	const char xml[] = "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>\n";
	const struct hisp_attachment att[] = {
		{.name = "ccd.xml", .data = xml, .len = strlen(xml)},
		{.name = "scan.PDF", .data = bin, .len = sizeof bin},
		{.name = "xdm.zip", .data = bin, .len = 1},
		{.name = "blob.bin", .data = bin, .len = 0},
		{.name = "Überweisung \"1\".txt", .data = "hi", .len = 2},
		{.name = "x.dat", .content_type = "application/hl7-v2", .data = bin, .len = 100},
	};
	static const char *const types[] = {"application/xml", "application/pdf", "application/zip",
					    "application/octet-stream", "text/plain", "application/hl7-v2"};
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	char id[300];
	struct hisp_compose_req r = {.from = "alice@a.test", .to = to1, .nto = 1, .subject = "docs", .body = "see attached",
				     .body_len = 12, .att = att, .natt = 6, .host = "a.test"};
	assert_int_equal(hisp_compose(&r, &b, id, sizeof id), HIE_OK);
	assert_crlf_only(&b);
	struct hie_mime_part *p = parse(&b);
	assert_string_equal(p->type, "multipart/mixed");
	assert_int_equal(p->nchildren, 7);
	assert_string_equal(p->children[0].type, "text/plain");
	struct hie_buf d;
	hie_buf_init(&d, 1 << 20);
	assert_int_equal(hie_mime_decode(&p->children[0], &d), HIE_OK);
	assert_string_equal(d.data, "see attached\r\n");
	for (size_t i = 0; i < 6; i++) {
		const struct hie_mime_part *c = &p->children[i + 1];
		assert_string_equal(c->type, types[i]);
		assert_string_equal(c->encoding, "base64");
		hie_buf_reset(&d);
		assert_int_equal(hie_mime_decode(c, &d), HIE_OK);
		assert_int_equal(d.len, att[i].len);
		assert_memory_equal(d.data ? d.data : "", att[i].data, att[i].len);
		char *cd = hval(c, "Content-Disposition");
		assert_non_null(cd);
		assert_true(strncmp(cd, "attachment;", 11) == 0);
		struct hie_buf fn;
		hie_buf_init(&fn, 512);
		if (i == 4) {
			assert_int_equal(hie_mime_param(cd, strlen(cd), "filename", &fn), HIE_ENOTFOUND);
			assert_non_null(strstr(cd, "filename*=UTF-8''%C3%9Cberweisung%20%221%22.txt"));
		} else {
			assert_int_equal(hie_mime_param(cd, strlen(cd), "filename", &fn), HIE_OK);
			assert_string_equal(fn.data, att[i].name);
		}
		hie_buf_free(&fn);
		free(cd);
	}
	hie_buf_free(&d);
	hie_mime_free(p);
	hie_buf_free(&b);
}

static void test_message_id_unique(void **state)
{
	(void)state;
	enum { N = 200 };
	static char ids[N][300];
	struct hisp_compose_req r = {.from = "alice@a.test", .to = to1, .nto = 1, .subject = "s", .host = "a.test"};
	for (int i = 0; i < N; i++) {
		struct hie_buf b;
		hie_buf_init(&b, 1 << 16);
		assert_int_equal(hisp_compose(&r, &b, ids[i], sizeof ids[i]), HIE_OK);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
		hie_buf_free(&b);
	}
	/* too small an id buffer is refused, not cut */
	struct hie_buf b;
	hie_buf_init(&b, 1 << 16);
	char small[20];
	assert_int_equal(hisp_compose(&r, &b, small, sizeof small), HIE_EINVAL);
	hie_buf_free(&b);
}

/* Decodes every "=?UTF-8?B?…?=" word of a header value and concatenates them. */
static void decode_words(const char *v, struct hie_buf *out)
{
	const char *p = v;
	while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
		p += 10;
		const char *e = strstr(p, "?=");
		assert_non_null(e);
		assert_int_equal(hie_mime_base64_decode(p, (size_t)(e - p), out), HIE_OK);
		p = e + 2;
	}
}

static void test_subject_encoded(void **state)
{
	(void)state;
	const char *subjects[] = {
		"Überweisung für Frau Müller",
		"日本語の件名はとても長いのでいくつかのエンコードされた単語に分割されなければなりません。もう少し長くします。",
		"ascii with =?looks?like?= a word", /* would be misread as an encoded-word: encoded too */
		"emoji 😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
	};
	for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
		struct hie_buf b;
		hie_buf_init(&b, 1 << 16);
		char id[300];
		struct hisp_compose_req r = {.from = "alice@a.test", .to = to1, .nto = 1, .subject = subjects[i],
					     .host = "a.test"};
		assert_int_equal(hisp_compose(&r, &b, id, sizeof id), HIE_OK);
		assert_header_block_7bit(&b, 998);
		/* the Subject field's lines (first and continuations) are at most 78 characters */
		const char *l = strstr(b.data, "\r\nSubject:") + 2;
		do {
			const char *e = strstr(l, "\r\n");
			assert_true(e - l <= 78);
			l = e + 2;
		} while (*l == ' ');
		struct hie_mime_part *p = parse(&b);
		char *v = hval(p, "Subject");
		assert_non_null(v);
		struct hie_buf d;
		hie_buf_init(&d, 4096);
		decode_words(v, &d);
		assert_string_equal(d.data, subjects[i]);
		/* every encoded-word is at most 75 characters (RFC 2047 §2) */
		for (const char *w = strstr(v, "=?"); w; w = strstr(w + 2, "=?")) {
			const char *e = strstr(w + 10, "?=");
			assert_true(e - w + 2 <= 75);
			w = e;
		}
		hie_buf_free(&d);
		free(v);
		hie_mime_free(p);
		hie_buf_free(&b);
	}
}

static void test_body_quoted_printable(void **state)
{
	(void)state;
	char body[4000];
	size_t n = (size_t)snprintf(body, sizeof body, "Grüße aus der Praxis.\r\nTrailing blank \n= sign\n.\n");
	memset(body + n, 'x', 1500); /* a line longer than 998 */
	n += 1500;
	body[n++] = '\n';
	struct hie_buf b;
	hie_buf_init(&b, 1 << 16);
	char id[300];
	struct hisp_compose_req r = {.from = "alice@a.test", .to = to1, .nto = 1, .subject = "s", .body = body,
				     .body_len = n, .host = "a.test"};
	assert_int_equal(hisp_compose(&r, &b, id, sizeof id), HIE_OK);
	assert_crlf_only(&b);
	struct hie_mime_part *p = parse(&b);
	assert_string_equal(p->encoding, "quoted-printable");
	/* every body line ≤ 76 and 7-bit */
	size_t col = 0;
	for (size_t i = 0; i < p->body_len; i++) {
		assert_true((unsigned char)p->body[i] < 0x80);
		col = p->body[i] == '\n' ? 0 : col + 1;
		assert_true(col <= 77);
	}
	struct hie_buf d, want;
	hie_buf_init(&d, 1 << 16);
	hie_buf_init(&want, 1 << 16);
	assert_int_equal(hie_mime_decode(p, &d), HIE_OK);
	/* the text with its line ends made CRLF */
	for (size_t i = 0; i < n; i++) {
		if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
			hie_buf_add(&want, "\r", 1);
		hie_buf_add(&want, body + i, 1);
	}
	assert_int_equal(d.len, want.len);
	assert_memory_equal(d.data, want.data, want.len);
	hie_buf_free(&d);
	hie_buf_free(&want);
	hie_mime_free(p);
	hie_buf_free(&b);
}

static void test_cap(void **state)
{
	(void)state;
	struct hie_buf b;
	hie_buf_init(&b, 200);
	char id[300];
	unsigned char big[1000] = {0};
	const struct hisp_attachment att[] = {{.name = "a.bin", .data = big, .len = sizeof big}};
	struct hisp_compose_req r = {.from = "alice@a.test", .to = to1, .nto = 1, .subject = "s", .att = att, .natt = 1,
				     .host = "a.test"};
	assert_int_equal(hisp_compose(&r, &b, id, sizeof id), HIE_ETOOBIG);
	assert_int_equal(b.len, 0);
	hie_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_no_header_injection),
		cmocka_unit_test(test_attachments_round_trip),
		cmocka_unit_test(test_message_id_unique),
		cmocka_unit_test(test_subject_encoded),
		cmocka_unit_test(test_body_quoted_printable),
		cmocka_unit_test(test_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
