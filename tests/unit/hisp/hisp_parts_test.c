/*
 * hisp_parts_test.c — hisp_parts_split: leaves in document order through nested multiparts, message/rfc822 kept
 * whole, bodies decoded (base64, quoted-printable), file names from Content-Disposition (plain and RFC 2231) and
 * from Content-Type name (made printable, paths cut), attachments, CDA recognized (and a non-CDA XML not), zips
 * recognized as XDM under the zip and octet-stream types only; caps (parts, bytes) and malformed messages.
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
#include "hisp/hisp_edge.h"

/* base64 of "PK\x03\x04" followed by 26 zero bytes (passes hisp_xdm_is_zip; the content is not read here). */
#define ZIP_B64 "UEsDBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
/* base64 of <ClinicalDocument xmlns="urn:hl7-org:v3"><id/></ClinicalDocument> */
#define CDA_XML "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><id/></ClinicalDocument>"

static char *b64(const char *s)
{
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	assert_int_equal(hie_mime_base64_encode(s, strlen(s), true, &b), HIE_OK);
	return hie_buf_steal(&b, NULL);
}

static char *big_message(void)
{
	char *cda = b64(CDA_XML);
	char *other = b64("<ClinicalDocument xmlns=\"urn:other\"/>");
	struct hie_buf m;
	hie_buf_init(&m, 1 << 20);
	hie_buf_addf(
		&m,
		"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: referral\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
		"preamble\r\n"
		"--outer\r\n"
		"Content-Type: multipart/alternative; boundary=alt\r\n\r\n"
		"--alt\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
		"Caf=C3=A9 and a soft=\r\n break.\r\n"
		"--alt\r\nContent-Type: text/html; charset=\"ISO-8859-1\"\r\n\r\n<p>hi</p>\r\n"
		"--alt--\r\n"
		"--outer\r\n"
		"Content-Type: application/xml\r\nContent-Transfer-Encoding: base64\r\n"
		"Content-Disposition: attachment; filename=\"ccd.xml\"\r\n\r\n%s\r\n"
		"--outer\r\n"
		"Content-Type: text/xml; name=\"other.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n"
		"--outer\r\n"
		"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
		"Content-Disposition: attachment; filename=\"../../etc/xdm.zip\"\r\n\r\n" ZIP_B64 "\r\n"
		"--outer\r\n"
		"Content-Type: application/octet-stream; name=\"C:\\\\temp\\\\package.bin\"\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n" ZIP_B64 "\r\n"
		"--outer\r\n"
		"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
		"Content-Disposition: attachment; filename*=utf-8''r%%C3%%A9sum%%C3%%A9.pdf\r\n\r\n" ZIP_B64 "\r\n"
		"--outer\r\n"
		"Content-Type: message/rfc822\r\n\r\n"
		"Subject: inner\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n"
		"--inner\r\nContent-Type: text/plain\r\n\r\nnot a leaf of ours\r\n--inner--\r\n"
		"--outer\r\n"
		"Content-Type: text/plain\r\nContent-Disposition: inline\r\n\r\nsigned off\x01\r\n"
		"--outer--\r\nepilogue\r\n",
		cda, other);
	free(cda);
	free(other);
	return hie_buf_steal(&m, NULL);
}

static void test_split_big(void **state)
{
	(void)state;
	char *msg = big_message();
	struct hisp_parts p;
	assert_int_equal(hisp_parts_split(msg, strlen(msg), 1 << 20, &p), HIE_OK);
	assert_int_equal(p.n, 9);
	for (size_t i = 0; i < p.n; i++)
		assert_int_equal(p.v[i].index, i);

	static const struct {
		const char *type, *charset, *filename;
		bool attachment, is_xdm, is_cda;
	} want[] = {
		{"text/plain", "utf-8", "", false, false, false},
		{"text/html", "iso-8859-1", "", false, false, false},
		{"application/xml", "", "ccd.xml", true, false, true},
		{"text/xml", "", "other.xml", true, false, false},
		{"application/zip", "", "xdm.zip", true, true, false},
		{"application/octet-stream", "", "package.bin", true, true, false},
		{"application/pdf", "", "r\xc3\xa9sum\xc3\xa9.pdf", true, false, false},
		{"message/rfc822", "", "", true, false, false},
		{"text/plain", "", "", false, false, false},
	};
	for (size_t i = 0; i < p.n; i++) {
		print_message("part %zu: %s %s [%s] att=%d xdm=%d cda=%d len=%zu\n", i, p.v[i].content_type,
			      p.v[i].charset, p.v[i].filename, p.v[i].attachment, p.v[i].is_xdm, p.v[i].is_cda,
			      p.v[i].len);
		assert_string_equal(p.v[i].content_type, want[i].type);
		assert_string_equal(p.v[i].charset, want[i].charset);
		assert_string_equal(p.v[i].filename, want[i].filename);
		assert_int_equal(p.v[i].attachment, want[i].attachment);
		assert_int_equal(p.v[i].is_xdm, want[i].is_xdm);
		assert_int_equal(p.v[i].is_cda, want[i].is_cda);
	}
	assert_int_equal(p.v[0].len, strlen("Caf\xc3\xa9 and a soft break."));
	assert_memory_equal(p.v[0].data, "Caf\xc3\xa9 and a soft break.", p.v[0].len);
	assert_int_equal(p.v[2].len, strlen(CDA_XML));
	assert_memory_equal(p.v[2].data, CDA_XML, p.v[2].len);
	assert_int_equal(p.v[4].len, 30);
	assert_memory_equal(p.v[4].data, "PK\x03\x04", 4);
	/* message/rfc822 is one leaf, its own bytes kept. */
	assert_non_null(p.v[7].data);
	assert_memory_equal(p.v[7].data, "Subject: inner\r\n", 16);
	hisp_parts_free(&p);
	assert_null(p.v);
	free(msg);
}

static void test_single_part(void **state)
{
	(void)state;
	const char *m = "Subject: x\r\n\r\nhello\r\n";
	struct hisp_parts p;
	assert_int_equal(hisp_parts_split(m, strlen(m), 100, &p), HIE_OK);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.v[0].content_type, "text/plain");
	assert_false(p.v[0].attachment);
	assert_int_equal(p.v[0].len, 7);
	hisp_parts_free(&p);

	/* A zip under a text type is not an XDM; a CDA under a non-xml type is not a CDA. */
	char *z = NULL;
	struct hie_buf b;
	hie_buf_init(&b, 1 << 16);
	hie_buf_addstr(&b, "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" ZIP_B64 "\r\n");
	z = hie_buf_steal(&b, NULL);
	assert_int_equal(hisp_parts_split(z, strlen(z), 100, &p), HIE_OK);
	assert_false(p.v[0].is_xdm);
	hisp_parts_free(&p);
	free(z);
	const char *c = "Content-Type: application/octet-stream\r\n\r\n" CDA_XML;
	assert_int_equal(hisp_parts_split(c, strlen(c), 1000, &p), HIE_OK);
	assert_false(p.v[0].is_cda);
	assert_false(p.v[0].is_xdm);
	assert_true(p.v[0].attachment);
	hisp_parts_free(&p);
	/* A CDA with a DOCTYPE is not parsed (and so not a CDA). */
	const char *d = "Content-Type: text/xml\r\n\r\n<!DOCTYPE x []>" CDA_XML;
	assert_int_equal(hisp_parts_split(d, strlen(d), 1000, &p), HIE_OK);
	assert_false(p.v[0].is_cda);
	hisp_parts_free(&p);
}

static char *many_parts(size_t n)
{
	struct hie_buf m;
	hie_buf_init(&m, 1 << 22);
	hie_buf_addstr(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (size_t i = 0; i < n; i++)
		hie_buf_addf(&m, "--b\r\nContent-Type: text/plain\r\n\r\npart %zu\r\n", i);
	hie_buf_addstr(&m, "--b--\r\n");
	return hie_buf_steal(&m, NULL);
}

static const struct ecase {
	const char *name;
	const char *msg; /* NULL: built */
	size_t max_bytes;
	hie_err_t err;
} ecases[] = {
	{.name = "no close delimiter, no delimiter at all",
	 .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\nno parts here\r\n", .max_bytes = 1000,
	 .err = HIE_EPARSE},
	{.name = "header without colon", .msg = "Subject x\r\n\r\nbody", .max_bytes = 1000, .err = HIE_EPARSE},
	{.name = "bad base64", .msg = "Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n", .max_bytes = 1000,
	 .err = HIE_EPARSE},
	{.name = "bad quoted-printable", .msg = "Content-Transfer-Encoding: quoted-printable\r\n\r\nbad =ZZ\r\n",
	 .max_bytes = 1000, .err = HIE_EPARSE},
	{.name = "unknown encoding", .msg = "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n",
	 .max_bytes = 1000, .err = HIE_EPARSE},
	{.name = "multipart without boundary", .msg = "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\n--x--\r\n",
	 .max_bytes = 1000, .err = HIE_EPARSE},
	{.name = "too many bytes", .msg = "Subject: x\r\n\r\n0123456789", .max_bytes = 9, .err = HIE_ETOOBIG},
	{.name = "bytes exactly at the cap", .msg = "Subject: x\r\n\r\n0123456789", .max_bytes = 10, .err = HIE_OK},
	{.name = "too many parts", .msg = NULL, .max_bytes = 1 << 20, .err = HIE_ETOOBIG},
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof ecases / sizeof ecases[0]; i++) {
		const struct ecase *c = &ecases[i];
		char *built = c->msg ? NULL : many_parts(HISP_PARTS_MAX + 1);
		const char *m = c->msg ? c->msg : built;
		struct hisp_parts p = {(struct hisp_part *)1, 99};
		hie_err_t err = hisp_parts_split(m, strlen(m), c->max_bytes, &p);
		print_message("%-40s -> %s\n", c->name, hie_errname(err));
		assert_int_equal(err, c->err);
		if (err) {
			assert_null(p.v);
			assert_int_equal(p.n, 0);
		}
		hisp_parts_free(&p);
		free(built);
	}
	/* The cap on total bytes counts across parts. */
	char *m = many_parts(10);
	struct hisp_parts p;
	assert_int_equal(hisp_parts_split(m, strlen(m), 10 * 6, &p), HIE_OK); /* "part N": the CRLF before a delimiter is the delimiter's */
	assert_int_equal(p.n, 10);
	hisp_parts_free(&p);
	assert_int_equal(hisp_parts_split(m, strlen(m), 10 * 6 - 1, &p), HIE_ETOOBIG);
	free(m);
	/* Exactly HISP_PARTS_MAX leaves is fine. */
	m = many_parts(HISP_PARTS_MAX);
	assert_int_equal(hisp_parts_split(m, strlen(m), 1 << 20, &p), HIE_OK);
	assert_int_equal(p.n, HISP_PARTS_MAX);
	hisp_parts_free(&p);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_big),
		cmocka_unit_test(test_single_part),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
