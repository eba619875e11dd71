/*
 * core_mtom_test.c — unit tests for core_mtom: an ITI-41 shaped request, root selection, Content-ID
 * lookup (cid: URLs with %-escapes), duplicate and missing ids, malformed bodies, and build → parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_mtom.h"

#define BND "MIMEBoundaryurn_uuid_8D3C3AFA28B895245C1247499530740"
#define ROOT_CID "0.urn:uuid:8D3C3AFA28B895245C1247499530741@apache.org"
#define DOC1_CID "1.urn:uuid:8D3C3AFA28B895245C1247499530742@apache.org"
#define DOC2_CID "2.urn:uuid:8D3C3AFA28B895245C1247499530743@apache.org"

static const char iti41_ct[] = "multipart/related; boundary=" BND "; type=\"application/xop+xml\"; "
			       "start=\"<" ROOT_CID ">\"; start-info=\"application/soap+xml\"; "
			       "action=\"urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b\"";

static const char envelope[] =
	"<?xml version='1.0' encoding='UTF-8'?>"
	"<soapenv:Envelope xmlns:soapenv=\"http://www.w3.org/2003/05/soap-envelope\">"
	"<soapenv:Header xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">"
	"<wsa:Action>urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b</wsa:Action></soapenv:Header>"
	"<soapenv:Body><xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb=\"urn:ihe:iti:xds-b:2007\">"
	"<xdsb:Document id=\"Document01\"><xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" "
	"href=\"cid:1.urn%3Auuid%3A8D3C3AFA28B895245C1247499530742%40apache.org\"/></xdsb:Document>"
	"<xdsb:Document id=\"Document02\"><xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" "
	"href=\"cid:" DOC2_CID "\"/></xdsb:Document>"
	"</xdsb:ProvideAndRegisterDocumentSetRequest></soapenv:Body></soapenv:Envelope>";

static const char cda[] = "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\r\n--" BND "x not a delimiter\r\n"
			  "</ClinicalDocument>";

/* The ITI-41 request body; the second document is base64 encoded "%PDF-1.4\n\0\x01\xff". */
static char *iti41_body(size_t *len)
{
	static const char fmt[] =
		"--" BND "\r\n"
		"Content-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
		"Content-Transfer-Encoding: binary\r\n"
		"Content-ID: <" ROOT_CID ">\r\n"
		"\r\n"
		"%s\r\n"
		"--" BND "\r\n"
		"Content-Type: text/xml\r\n"
		"Content-Transfer-Encoding: binary\r\n"
		"Content-ID: <" DOC1_CID ">\r\n"
		"\r\n"
		"%s\r\n"
		"--" BND "\r\n"
		"Content-Type: application/pdf\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"Content-ID:\r\n <" DOC2_CID ">\r\n"
		"\r\n"
		"JVBERi0xLjQKAAH/\r\n"
		"--" BND "--\r\n";
	size_t cap = sizeof(fmt) + sizeof(envelope) + sizeof(cda);
	char *b = malloc(cap);
	assert_non_null(b);
	int n = snprintf(b, cap, fmt, envelope, cda);
	assert_true(n > 0 && (size_t)n < cap);
	*len = (size_t)n;
	return b;
}

static void test_iti41_request(void **state)
{
	(void)state;
	size_t len;
	char *body = iti41_body(&len);
	struct hie_mtom *m = NULL;
	assert_int_equal(hie_mtom_parse(iti41_ct, body, len, NULL, &m), HIE_OK);
	assert_non_null(m);
	assert_string_equal(m->type, "application/xop+xml");
	assert_string_equal(m->root.cid, ROOT_CID);
	assert_string_equal(m->root.content_type, "application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"");
	assert_int_equal(m->root.len, strlen(envelope));
	assert_memory_equal(m->root.data, envelope, m->root.len);
	assert_true(m->root.data >= body && m->root.data < body + len); /* binary: no copy */
	assert_int_equal(m->nparts, 2);

	/* cid: URL with %-escapes, as in the envelope's xop:Include */
	const char *href = "cid:1.urn%3Auuid%3A8D3C3AFA28B895245C1247499530742%40apache.org";
	const struct hie_mtom_part *d1 = hie_mtom_find(m, href, strlen(href));
	assert_non_null(d1);
	assert_ptr_equal(d1, &m->parts[0]);
	assert_string_equal(d1->content_type, "text/xml");
	assert_int_equal(d1->len, strlen(cda));
	assert_memory_equal(d1->data, cda, d1->len);
	assert_true(d1->data >= body && d1->data < body + len);

	/* bare id, with and without <>, and the unescaped URL form; "CID:" is case-insensitive */
	static const char *const ids[] = { DOC2_CID, "<" DOC2_CID ">", "cid:" DOC2_CID, "CID:" DOC2_CID };
	for (size_t i = 0; i < 4; i++) {
		const struct hie_mtom_part *d2 = hie_mtom_find(m, ids[i], strlen(ids[i]));
		assert_non_null(d2);
		assert_ptr_equal(d2, &m->parts[1]);
	}
	const struct hie_mtom_part *d2 = &m->parts[1];
	assert_string_equal(d2->cid, DOC2_CID); /* folded Content-ID header */
	assert_int_equal(d2->len, 12);
	assert_memory_equal(d2->data, "%PDF-1.4\n\0\x01\xff", 12); /* decoded */
	assert_false(d2->data >= body && d2->data < body + len);

	/* misses */
	static const char *const misses[] = {
		"cid:1.urn%3Auuid%3A8D3C3AFA28B895245C1247499530742%40apache.or",
		"cid:1.urn%3Auuid%3A8D3C3AFA28B895245C1247499530742%4",   /* truncated escape */
		"cid:1.urn%ZZuuid%3A8D3C3AFA28B895245C1247499530742%40apache.org",
		"1.urn%3Auuid%3A8D3C3AFA28B895245C1247499530742%40apache.org", /* bare ids are literal */
		ROOT_CID, /* the root is not an attachment */
		"",
		"cid:",
	};
	for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++)
		if (hie_mtom_find(m, misses[i], strlen(misses[i])) != NULL)
			fail_msg("miss %zu found a part", i);
	hie_mtom_free(m);
	free(body);
}

static void test_root_selection(void **state)
{
	(void)state;
	const char *body = "--b\r\nContent-ID: <a@x>\r\n\r\nfirst\r\n"
			   "--b\r\nContent-ID: <root@x>\r\nContent-Type: application/xop+xml\r\n\r\nthe root\r\n"
			   "--b--\r\n";
	static const struct {
		const char *ct;
		hie_err_t want;
		const char *root;
	} cases[] = {
		{ "multipart/related; boundary=b; start=\"<root@x>\"", HIE_OK, "the root" },
		{ "multipart/related; boundary=b; start=root@x", HIE_OK, "the root" },
		{ "Multipart/Related; Boundary=\"b\"; START=\" <root@x> \"", HIE_OK, "the root" },
		{ "multipart/related; boundary=b", HIE_OK, "first" },
		{ "multipart/related; boundary=b; start=\"<nowhere@x>\"", HIE_ENOTFOUND, NULL },
		{ "multipart/related; boundary=b; start=\"<root@x\"", HIE_ENOTFOUND, NULL },
		{ "multipart/mixed; boundary=b", HIE_EPARSE, NULL },
		{ "application/soap+xml", HIE_EPARSE, NULL },
		{ "multipart/related", HIE_EPARSE, NULL },
		{ "multipart/related; boundary=\"\"", HIE_EPARSE, NULL },
		{ "multipart/related; boundary=other", HIE_EPARSE, NULL },
		{ "", HIE_EPARSE, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hie_mtom *m = (struct hie_mtom *)1;
		hie_err_t err = hie_mtom_parse(cases[i].ct, body, strlen(body), NULL, &m);
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
		if (err) {
			assert_null(m);
			continue;
		}
		assert_int_equal(m->root.len, strlen(cases[i].root));
		assert_memory_equal(m->root.data, cases[i].root, m->root.len);
		assert_int_equal(m->nparts, 1);
		assert_string_equal(m->type, "");
		hie_mtom_free(m);
	}
	struct hie_mtom *m = NULL;
	assert_int_equal(hie_mtom_parse(NULL, body, strlen(body), NULL, &m), HIE_EPARSE);
}

static void test_bad_packages(void **state)
{
	(void)state;
	const char *ct = "multipart/related; boundary=b; type=\"application/xop+xml\"";
	static const struct {
		const char *body;
		hie_err_t want;
	} cases[] = {
		/* duplicate Content-ID among attachments, and between root and attachment */
		{ "--b\r\nContent-ID: <r>\r\n\r\nroot\r\n--b\r\nContent-ID: <d>\r\n\r\n1\r\n"
		  "--b\r\nContent-ID: <d>\r\n\r\n2\r\n--b--\r\n", HIE_EEXIST },
		{ "--b\r\nContent-ID: <r>\r\n\r\nroot\r\n--b\r\nContent-ID: r\r\n\r\n1\r\n--b--\r\n", HIE_EEXIST },
		/* truncated: no close delimiter (MTOM is always strict) */
		{ "--b\r\nContent-ID: <r>\r\n\r\nroot\r\n--b\r\nContent-ID: <d>\r\n\r\npartial attachm", HIE_EPARSE },
		{ "--b\r\nContent-ID: <r>\r\n\r\nroot\r\n--b\r\n", HIE_EPARSE },
		{ "", HIE_EPARSE },
		{ "--b--\r\n", HIE_EPARSE },
		{ "no delimiter here", HIE_EPARSE },
		/* a part with bad base64, or an encoding we do not know */
		{ "--b\r\n\r\nroot\r\n--b\r\nContent-ID: <d>\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@\r\n--b--",
		  HIE_EPARSE },
		{ "--b\r\n\r\nroot\r\n--b\r\nContent-ID: <d>\r\nContent-Transfer-Encoding: x-gzip\r\n\r\nz\r\n--b--",
		  HIE_EUNSUPPORTED },
		/* a header line without a colon */
		{ "--b\r\nContent-ID <r>\r\n\r\nroot\r\n--b--\r\n", HIE_EPARSE },
		/* fine: parts without Content-ID are kept (not findable), empty root */
		{ "--b\r\n\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n", HIE_OK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hie_mtom *m = (struct hie_mtom *)1;
		hie_err_t err = hie_mtom_parse(ct, cases[i].body, strlen(cases[i].body), NULL, &m);
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
		if (err)
			assert_null(m);
		hie_mtom_free(err ? NULL : m);
	}
}

static void test_caps(void **state)
{
	(void)state;
	size_t len;
	char *body = iti41_body(&len);
	struct hie_mime_limits lim = hie_mime_default_limits;
	lim.max_parts = 3; /* the multipart itself + 3 parts is 4 */
	struct hie_mtom *m = NULL;
	assert_int_equal(hie_mtom_parse(iti41_ct, body, len, &lim, &m), HIE_ETOOBIG);
	assert_null(m);
	lim.max_parts = 4;
	assert_int_equal(hie_mtom_parse(iti41_ct, body, len, &lim, &m), HIE_OK);
	hie_mtom_free(m);
	free(body);
}

static void test_build_roundtrip(void **state)
{
	(void)state;
	unsigned char bin[3000];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7 + (i >> 8));
	/* content that looks like delimiters must survive */
	memcpy(bin + 100, "\r\n--MIMEBoundary_\r\n--", 21);
	const struct hie_mtom_out_part parts[] = {
		{ .cid = "doc1@example.org", .content_type = "text/xml", .data = cda, .len = strlen(cda) },
		{ .cid = "doc 2?", .content_type = NULL, .data = bin, .len = sizeof(bin) },
		{ .cid = "empty@x", .content_type = "application/octet-stream", .data = NULL, .len = 0 },
	};
	struct hie_buf body, ct;
	hie_buf_init(&body, 1 << 20);
	hie_buf_init(&ct, 1024);
	/* a cid with a space is refused; fix it and build */
	assert_int_equal(hie_mtom_build(envelope, strlen(envelope), "urn:a", parts, 3, &body, &ct), HIE_EINVAL);
	struct hie_mtom_out_part ok[3];
	memcpy(ok, parts, sizeof(ok));
	ok[1].cid = "doc2@example.org";
	const char *action = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b";
	assert_int_equal(hie_mtom_build(envelope, strlen(envelope), action, ok, 3, &body, &ct), HIE_OK);

	const char *cts = hie_buf_str(&ct);
	assert_non_null(strstr(cts, "multipart/related; type=\"application/xop+xml\"; boundary=\"MIMEBoundary_"));
	assert_non_null(strstr(cts, "; start=\"<"));
	assert_non_null(strstr(cts, "; start-info=\"application/soap+xml\""));
	assert_non_null(strstr(cts, "; action=\"urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b\""));
	assert_null(strpbrk(cts, "\r\n"));
	assert_non_null(strstr(body.data, "\r\nContent-Type: application/xop+xml; charset=UTF-8; "
					  "type=\"application/soap+xml\"\r\nContent-Transfer-Encoding: binary\r\n"
					  "Content-ID: <"));

	struct hie_mtom *m = NULL;
	assert_int_equal(hie_mtom_parse(cts, body.data, body.len, NULL, &m), HIE_OK);
	assert_string_equal(m->type, "application/xop+xml");
	assert_int_equal(m->root.len, strlen(envelope));
	assert_memory_equal(m->root.data, envelope, m->root.len);
	assert_non_null(strstr(m->root.content_type, "application/xop+xml"));
	assert_int_equal(m->nparts, 3);
	const struct hie_mtom_part *p = hie_mtom_find(m, "cid:doc1%40example.org", 22);
	assert_non_null(p);
	assert_string_equal(p->content_type, "text/xml");
	assert_int_equal(p->len, strlen(cda));
	assert_memory_equal(p->data, cda, p->len);
	p = hie_mtom_find(m, "doc2@example.org", 16);
	assert_non_null(p);
	assert_string_equal(p->content_type, "application/octet-stream");
	assert_int_equal(p->len, sizeof(bin));
	assert_memory_equal(p->data, bin, sizeof(bin));
	p = hie_mtom_find(m, "empty@x", 7);
	assert_non_null(p);
	assert_int_equal(p->len, 0);
	hie_mtom_free(m);

	/* A second build picks another boundary and root Content-ID; no action parameter without one. */
	struct hie_buf ct2, body2;
	hie_buf_init(&ct2, 1024);
	hie_buf_init(&body2, 1 << 20);
	assert_int_equal(hie_mtom_build(envelope, strlen(envelope), NULL, NULL, 0, &body2, &ct2), HIE_OK);
	assert_string_not_equal(hie_buf_str(&ct2), cts);
	assert_null(strstr(hie_buf_str(&ct2), "action="));
	assert_int_equal(hie_mtom_parse(hie_buf_str(&ct2), body2.data, body2.len, NULL, &m), HIE_OK);
	assert_int_equal(m->nparts, 0);
	assert_memory_equal(m->root.data, envelope, strlen(envelope));
	hie_mtom_free(m);
	hie_buf_free(&ct2);
	hie_buf_free(&body2);
	hie_buf_free(&body);
	hie_buf_free(&ct);
}

static void test_build_errors(void **state)
{
	(void)state;
	const struct hie_mtom_out_part good = { .cid = "a@b", .content_type = "text/plain", .data = "x", .len = 1 };
	static const struct {
		const char *cid;
		const char *ctype;
		const char *action;
	} bad[] = {
		{ .cid = "", .ctype = "text/plain" },
		{ .cid = "a\r\nX-Injected: 1", .ctype = "text/plain" },
		{ .cid = "<a@b>", .ctype = "text/plain" },
		{ .cid = "a\"b", .ctype = "text/plain" },
		{ .cid = "ok@x", .ctype = "text/plain\r\nX-Injected: 1" },
		{ .cid = "ok@x", .ctype = "text/plain", .action = "urn:a\"; start=\"x" },
		{ .cid = "ok@x", .ctype = "text/plain", .action = "urn:a\r\n" },
		{ .cid = "a@b", .ctype = "text/plain" }, /* duplicate of the first part */
	};
	struct hie_buf body, ct;
	hie_buf_init(&body, 1 << 16);
	hie_buf_init(&ct, 1024);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hie_mtom_out_part parts[2] = { good, { .cid = bad[i].cid, .content_type = bad[i].ctype,
							      .data = "y", .len = 1 } };
		hie_buf_addstr(&body, "stale");
		hie_err_t err = hie_mtom_build("<e/>", 4, bad[i].action, parts, 2, &body, &ct);
		if (err != HIE_EINVAL)
			fail_msg("case %zu: got %d", i, err);
		assert_int_equal(body.len, 0);
	}
	/* The caller's cap: a body that does not fit fails and leaves both buffers empty. */
	struct hie_buf small;
	hie_buf_init(&small, 300);
	char big[400];
	memset(big, 'e', sizeof(big));
	assert_int_equal(hie_mtom_build(big, sizeof(big), NULL, &good, 1, &small, &ct), HIE_ETOOBIG);
	assert_int_equal(small.len, 0);
	assert_int_equal(ct.len, 0);
	small.max = 2000;
	assert_int_equal(hie_mtom_build(big, sizeof(big), NULL, &good, 1, &small, &ct), HIE_OK);
	struct hie_buf tiny_ct;
	hie_buf_init(&tiny_ct, 40);
	assert_int_equal(hie_mtom_build(big, sizeof(big), NULL, &good, 1, &small, &tiny_ct), HIE_ETOOBIG);
	assert_int_equal(small.len, 0);
	hie_buf_free(&tiny_ct);
	hie_buf_free(&small);
	hie_buf_free(&body);
	hie_buf_free(&ct);
}

/* The NIST toolkit's self-test socket capture of an Axis2 ITI-41 request, when the corpus is present. */
static void test_nist_axis2_capture(void **state)
{
	(void)state;
	const char *src = getenv("HIENODE_SRC");
	char path[4096];
	snprintf(path, sizeof(path), "%s/../shared/corpus/nist-toolkit/toolkitx/testkit/selftest/socket/request.txt",
		 src ? src : ".");
	FILE *f = fopen(path, "rb");
	if (!f) {
		print_message("%s absent: skipped\n", path);
		skip();
		return;
	}
	char *data = malloc(1 << 20);
	assert_non_null(data);
	size_t len = fread(data, 1, (1 << 20) - 1, f);
	fclose(f);
	data[len] = '\0';
	/* Split the HTTP head: the Content-Type line, then the body after the empty line. */
	char *ct = strstr(data, "Content-Type: ");
	char *eol = ct ? strpbrk(ct, "\r\n") : NULL;
	char *sep = strstr(data, "\n\n");
	char *sep2 = strstr(data, "\r\n\r\n");
	size_t skip_len = 2;
	if (sep2 && (!sep || sep2 < sep)) {
		sep = sep2;
		skip_len = 4;
	}
	assert_non_null(eol);
	assert_non_null(sep);
	*eol = '\0';
	const char *body = sep + skip_len;
	struct hie_mtom *m = NULL;
	hie_err_t err = hie_mtom_parse(ct + 14, body, len - (size_t)(body - data), NULL, &m);
	if (err == HIE_EPARSE) {
		/* A capture cut off before the close delimiter is a truncated request. */
		print_message("capture is truncated: HIE_EPARSE as expected for it\n");
		free(data);
		return;
	}
	assert_int_equal(err, HIE_OK);
	assert_string_equal(m->root.cid, "0.urn:uuid:8D3C3AFA28B895245C1247499530741@apache.org");
	assert_non_null(memchr(m->root.data, '<', m->root.len));
	print_message("axis2 capture: root %zu bytes, %zu attachments\n", m->root.len, m->nparts);
	hie_mtom_free(m);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iti41_request),
		cmocka_unit_test(test_root_selection),
		cmocka_unit_test(test_bad_packages),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_build_roundtrip),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_nist_axis2_capture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
