/*
 * core_mime_test.c — unit tests for core_mime: header block, multipart splitting, caps, parameters,
 * transfer decoders, byte-exactness of parts, and the Direct RI message corpus.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "core/core_mime.h"

static struct hie_mime_part *parse_ok(const char *msg, const struct hie_mime_limits *lim)
{
	struct hie_mime_part *p = NULL;
	hie_err_t err = hie_mime_parse(msg, strlen(msg), lim, &p);
	assert_int_equal(err, HIE_OK);
	assert_non_null(p);
	return p;
}

static hie_err_t parse_err(const char *msg, size_t len, const struct hie_mime_limits *lim)
{
	struct hie_mime_part *p = (struct hie_mime_part *)1;
	hie_err_t err = hie_mime_parse(msg, len, lim, &p);
	if (err)
		assert_null(p);
	hie_mime_free(p);
	return err;
}

static void assert_slice(const char *p, size_t n, const char *want)
{
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
}

static void test_simple_crlf(void **state)
{
	(void)state;
	const char *msg = "From: a@example.org\r\n"
			  "Subject: hello\r\n"
			  "Content-Type: Text/HTML; charset=utf-8\r\n"
			  "\r\n"
			  "<p>body</p>\r\n";
	struct hie_mime_part *p = parse_ok(msg, NULL);
	assert_int_equal(p->nheaders, 3);
	assert_string_equal(p->type, "text/html");
	assert_string_equal(p->encoding, "7bit");
	assert_slice(p->body, p->body_len, "<p>body</p>\r\n");
	assert_ptr_equal(p->raw, msg);
	assert_int_equal(p->raw_len, strlen(msg));
	const struct hie_mime_header *h = hie_mime_header_find(p, "SUBJECT");
	assert_non_null(h);
	assert_slice(h->value, h->value_len, "hello");
	assert_null(hie_mime_header_find(p, "Subj"));
	assert_int_equal(p->nchildren, 0);
	hie_mime_free(p);
}

static void test_defaults_and_lf_only(void **state)
{
	(void)state;
	const char *msg = "X-A: 1\nX-B:2\n\nline1\nline2\n";
	struct hie_mime_part *p = parse_ok(msg, NULL);
	assert_int_equal(p->nheaders, 2);
	assert_string_equal(p->type, "text/plain");
	assert_string_equal(p->encoding, "7bit");
	assert_slice(p->body, p->body_len, "line1\nline2\n");
	assert_slice(p->headers[1].value, p->headers[1].value_len, "2");
	hie_mime_free(p);
}

static void test_folded_headers(void **state)
{
	(void)state;
	const char *msg = "Subject: a\r\n  long\r\n\tsubject\r\n"
			  "Content-Type: multipart/mixed;\r\n"
			  "\tboundary=\"xyz\"\r\n"
			  "\r\n"
			  "--xyz\r\n\r\npart\r\n--xyz--\r\n";
	struct hie_mime_part *p = parse_ok(msg, NULL);
	const struct hie_mime_header *h = hie_mime_header_find(p, "subject");
	assert_non_null(h);
	assert_slice(h->value, h->value_len, "a\r\n  long\r\n\tsubject"); /* folding CRLFs kept */
	struct hie_buf b;
	hie_buf_init(&b, 1024);
	assert_int_equal(hie_mime_header_value(p, "Subject", &b), HIE_OK);
	assert_string_equal(b.data, "a  long\tsubject");
	assert_int_equal(hie_mime_header_value(p, "X-None", &b), HIE_ENOTFOUND);
	hie_buf_free(&b);
	assert_string_equal(p->type, "multipart/mixed");
	assert_int_equal(p->nchildren, 1);
	assert_slice(p->children[0].body, p->children[0].body_len, "part");
	hie_mime_free(p);
}

static void test_header_errors(void **state)
{
	(void)state;
	static const struct {
		const char *msg;
		hie_err_t want;
	} cases[] = {
		{ .msg = "no colon here\r\n\r\nbody", .want = HIE_EPARSE },
		{ .msg = "A: 1\r\nbroken line\r\n\r\nbody", .want = HIE_EPARSE },
		{ .msg = " \r\nA: 1\r\n\r\nbody", .want = HIE_EPARSE },
		{ .msg = " no colon on a blank-led first line\r\n\r\nbody", .want = HIE_EPARSE },
		/* blanks before the first field name are tolerated (Direct RI EncryptedMessage.txt) */
		{ .msg = " Received: x\r\n  folded\r\n\r\nbody", .want = HIE_OK },
		{ .msg = ": empty name\r\n\r\n", .want = HIE_EPARSE },
		{ .msg = "Bad\x01Name: x\r\n\r\n", .want = HIE_EPARSE },
		{ .msg = "just some text without any structure", .want = HIE_EPARSE },
		/* no blank line: all headers and an empty body, when well-formed */
		{ .msg = "A: 1\r\nB: 2\r\n", .want = HIE_OK },
		{ .msg = "A: 1\r\nB: 2", .want = HIE_OK },
		{ .msg = "", .want = HIE_OK },
		{ .msg = "Name : obsolete blank before colon\r\n\r\n", .want = HIE_OK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hie_err_t err = parse_err(cases[i].msg, strlen(cases[i].msg), NULL);
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
	}
	struct hie_mime_part *p = parse_ok("A: 1\r\nB: 2", NULL);
	assert_int_equal(p->nheaders, 2);
	assert_int_equal(p->body_len, 0);
	hie_mime_free(p);
}

static void test_multipart_basic(void **state)
{
	(void)state;
	const char *msg = "Content-Type: multipart/mixed; boundary=\"simple boundary\"\r\n"
			  "\r\n"
			  "This is the preamble.\r\n"
			  "--simple boundary\r\n"
			  "\r\n"
			  "implicitly typed plain US-ASCII text.\r\n"
			  "--simple boundary\r\n"
			  "Content-type: text/plain; charset=us-ascii\r\n"
			  "\r\n"
			  "explicitly typed, ends with a line break.\r\n"
			  "\r\n"
			  "--simple boundary--\r\n"
			  "This is the epilogue.\r\n";
	struct hie_mime_part *p = parse_ok(msg, NULL);
	assert_int_equal(p->nchildren, 2);
	assert_slice(p->preamble, p->preamble_len, "This is the preamble.");
	assert_slice(p->epilogue, p->epilogue_len, "This is the epilogue.\r\n");
	assert_slice(p->children[0].raw, p->children[0].raw_len, "\r\nimplicitly typed plain US-ASCII text.");
	assert_slice(p->children[0].body, p->children[0].body_len, "implicitly typed plain US-ASCII text.");
	assert_string_equal(p->children[0].type, "text/plain");
	assert_slice(p->children[1].body, p->children[1].body_len, "explicitly typed, ends with a line break.\r\n");
	hie_mime_free(p);
}

static void test_multipart_structure_errors(void **state)
{
	(void)state;
	static const struct {
		const char *msg;
		hie_err_t want;
	} cases[] = {
		/* truncated: the close delimiter never comes */
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\npart one\r\n", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b-", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n", .want = HIE_EPARSE },
		/* no boundary parameter, or an empty one */
		{ .msg = "Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\nx\r\n----\r\n", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=\"unterminated\r\n\r\n--b--\r\n", .want = HIE_EPARSE },
		/* zero parts */
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n", .want = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble only\r\n--b--", .want = HIE_EPARSE },
		/* a child with a broken header block */
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nno colon\r\n\r\nx\r\n--b--\r\n", .want = HIE_EPARSE },
		/* well-formed, for contrast */
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--", .want = HIE_OK },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b--\r\n", .want = HIE_OK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hie_err_t err = parse_err(cases[i].msg, strlen(cases[i].msg), NULL);
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
	}
}

/* A boundary of `blen` characters with matching delimiters. */
static hie_err_t parse_with_boundary_len(size_t blen)
{
	char bnd[512], msg[2048];
	memset(bnd, 'q', blen);
	bnd[blen] = '\0';
	snprintf(msg, sizeof(msg), "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n--%s\r\n\r\nx\r\n--%s--\r\n",
		 bnd, bnd, bnd);
	return parse_err(msg, strlen(msg), NULL);
}

static void test_boundary_length(void **state)
{
	(void)state;
	assert_int_equal(parse_with_boundary_len(1), HIE_OK);
	assert_int_equal(parse_with_boundary_len(70), HIE_OK);
	assert_int_equal(parse_with_boundary_len(200), HIE_OK);
	assert_int_equal(parse_with_boundary_len(201), HIE_EPARSE);
}

static void test_lenient_close(void **state)
{
	(void)state;
	static const struct {
		const char *msg;
		hie_err_t strict, lenient;
		size_t nchildren;
		const char *last; /* body of the last part */
	} cases[] = {
		{ .msg = "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n",
		  .strict = HIE_EPARSE, .lenient = HIE_OK, .nchildren = 2, .last = "two\r\n" },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n",
		  .strict = HIE_EPARSE, .lenient = HIE_OK, .nchildren = 1, .last = "one" },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\nno delimiter at all\r\n",
		  .strict = HIE_EPARSE, .lenient = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n",
		  .strict = HIE_EPARSE, .lenient = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
		  .strict = HIE_EPARSE, .lenient = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\none\r\n",
		  .strict = HIE_EPARSE, .lenient = HIE_EPARSE },
		{ .msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n",
		  .strict = HIE_OK, .lenient = HIE_OK, .nchildren = 1, .last = "one" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *m = cases[i].msg;
		struct hie_mime_part *p = NULL;
		hie_err_t err = hie_mime_parse(m, strlen(m), NULL, &p);
		if (err != cases[i].strict)
			fail_msg("case %zu strict: got %d want %d", i, err, cases[i].strict);
		hie_mime_free(p);
		p = NULL;
		err = hie_mime_parse_ex(m, strlen(m), NULL, HIE_MIME_LENIENT_CLOSE, &p);
		if (err != cases[i].lenient)
			fail_msg("case %zu lenient: got %d want %d", i, err, cases[i].lenient);
		if (!err) {
			assert_int_equal(p->nchildren, cases[i].nchildren);
			const struct hie_mime_part *last = &p->children[p->nchildren - 1];
			assert_slice(last->body, last->body_len, cases[i].last);
			assert_int_equal(p->close_missing, cases[i].strict != HIE_OK);
		}
		hie_mime_free(p);
	}
}

static void test_boundary_prefix_of_text(void **state)
{
	(void)state;
	/* "--abc" followed by anything but "--", blanks or a line end is body text, not a delimiter. */
	const char *msg = "Content-Type: multipart/mixed; boundary=abc\r\n"
			  "\r\n"
			  "--abc\r\n"
			  "\r\n"
			  "--abcdef is not a delimiter\r\n"
			  "--abc-- neither is this\r\n"
			  "x--abc in mid line\r\n"
			  "--abc-x\r\n"
			  "--abc   \r\n" /* transport padding */
			  "Content-Type: text/plain\r\n"
			  "\r\n"
			  "second\r\n"
			  "--abc--\t \r\n"
			  "epilogue";
	struct hie_mime_part *p = parse_ok(msg, NULL);
	assert_int_equal(p->nchildren, 2);
	assert_slice(p->children[0].body, p->children[0].body_len,
		     "--abcdef is not a delimiter\r\n--abc-- neither is this\r\nx--abc in mid line\r\n--abc-x");
	assert_slice(p->children[1].body, p->children[1].body_len, "second");
	assert_slice(p->epilogue, p->epilogue_len, "epilogue");
	hie_mime_free(p);
}

static void test_multipart_lf_only(void **state)
{
	(void)state;
	const char *msg = "Content-Type: multipart/alternative;\n boundary=\"=_q\"\n\n"
			  "--=_q\nContent-Type: text/plain\n\nplain\n"
			  "--=_q\nContent-Type: text/html\n\n<b>html</b>\n\n"
			  "--=_q--\n";
	struct hie_mime_part *p = parse_ok(msg, NULL);
	assert_string_equal(p->type, "multipart/alternative");
	assert_int_equal(p->nchildren, 2);
	assert_slice(p->children[0].body, p->children[0].body_len, "plain");
	assert_string_equal(p->children[1].type, "text/html");
	assert_slice(p->children[1].body, p->children[1].body_len, "<b>html</b>\n");
	assert_int_equal(p->preamble_len, 0);
	assert_int_equal(p->epilogue_len, 0);
	hie_mime_free(p);
}

static void test_signed_first_part_exact(void **state)
{
	(void)state;
	const char *first = "Content-Type: text/plain; charset=us-ascii\r\n"
			    "Content-Transfer-Encoding: 7bit\r\n"
			    "\r\n"
			    "Signed text.\r\n"
			    "Trailing blank line follows:\r\n"
			    "\r\n";
	const char *sig = "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
			  "Content-Transfer-Encoding: base64\r\n"
			  "\r\n"
			  "TUlJQg==\r\n";
	char msg[2048];
	int n = snprintf(msg, sizeof(msg),
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n"
			 " micalg=sha-256; boundary=\"----=_Part_0_1\"\r\n"
			 "\r\n"
			 "This is an S/MIME signed message\r\n"
			 "------=_Part_0_1\r\n"
			 "%s"
			 "\r\n------=_Part_0_1\r\n"
			 "%s"
			 "\r\n------=_Part_0_1--\r\n",
			 first, sig);
	assert_true(n > 0 && (size_t)n < sizeof(msg));
	struct hie_mime_part *p = parse_ok(msg, NULL);
	assert_string_equal(p->type, "multipart/signed");
	assert_int_equal(p->nchildren, 2);
	const char *want = strstr(msg, first);
	assert_non_null(want);
	assert_ptr_equal(p->children[0].raw, want); /* points into the input, no copy */
	assert_int_equal(p->children[0].raw_len, strlen(first));
	assert_memory_equal(p->children[0].raw, first, strlen(first));
	assert_ptr_equal(p->children[1].raw, strstr(msg, sig));
	assert_int_equal(p->children[1].raw_len, strlen(sig));
	assert_string_equal(p->children[1].type, "application/pkcs7-signature");
	assert_string_equal(p->children[1].encoding, "base64");
	struct hie_buf b;
	hie_buf_init(&b, 64);
	assert_int_equal(hie_mime_decode(&p->children[1], &b), HIE_OK);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "MIIB", 4);
	hie_buf_free(&b);
	hie_mime_free(p);
}

/* Builds a message with `count` headers; the caller frees it. */
static char *many_headers(size_t count, size_t value_len)
{
	size_t cap = count * (value_len + 16) + 64, o = 0;
	char *m = malloc(cap);
	assert_non_null(m);
	for (size_t i = 0; i < count; i++) {
		o += (size_t)snprintf(m + o, cap - o, "X-H%zu: ", i % 1000);
		memset(m + o, 'v', value_len);
		o += value_len;
		m[o++] = '\r';
		m[o++] = '\n';
	}
	o += (size_t)snprintf(m + o, cap - o, "\r\nbody");
	return m;
}

static void test_header_caps(void **state)
{
	(void)state;
	char *m = many_headers(10000, 4);
	assert_int_equal(parse_err(m, strlen(m), NULL), HIE_ETOOBIG);
	free(m);

	/* At and just past the count cap. */
	struct hie_mime_limits lim = hie_mime_default_limits;
	lim.max_headers = 5;
	m = many_headers(5, 4);
	assert_int_equal(parse_err(m, strlen(m), &lim), HIE_OK);
	free(m);
	m = many_headers(6, 4);
	assert_int_equal(parse_err(m, strlen(m), &lim), HIE_ETOOBIG);
	free(m);

	/* Few headers, but a header block over the byte cap (default 64 KiB). */
	m = many_headers(3, 30000);
	assert_int_equal(parse_err(m, strlen(m), NULL), HIE_ETOOBIG);
	free(m);
	/* A single unterminated header line as long as the cap is refused too. */
	size_t big = hie_mime_default_limits.max_header_bytes + 10;
	m = malloc(big);
	assert_non_null(m);
	memcpy(m, "X: ", 3);
	memset(m + 3, 'a', big - 3);
	assert_int_equal(parse_err(m, big, NULL), HIE_ETOOBIG);
	free(m);

	/* The cap applies per entity: a child with a large header block fails too. */
	lim = hie_mime_default_limits;
	lim.max_header_bytes = 100;
	const char *nested = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
			     "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
			     "\r\nx\r\n--b--\r\n";
	assert_int_equal(parse_err(nested, strlen(nested), &lim), HIE_ETOOBIG);
}

/* depth nested multiparts, innermost a text part; the caller frees it. */
static char *nested_msg(size_t depth)
{
	size_t cap = 128 + depth * 200, o = 0;
	char *m = malloc(cap);
	assert_non_null(m);
	for (size_t i = 0; i < depth; i++)
		o += (size_t)snprintf(m + o, cap - o, "Content-Type: multipart/mixed; boundary=\"b%zu\"\r\n\r\n--b%zu\r\n",
				      i, i);
	o += (size_t)snprintf(m + o, cap - o, "Content-Type: text/plain\r\n\r\ninnermost");
	for (size_t i = depth; i-- > 0;)
		o += (size_t)snprintf(m + o, cap - o, "\r\n--b%zu--", i);
	return m;
}

static void test_depth_cap(void **state)
{
	(void)state;
	struct hie_mime_limits lim = hie_mime_default_limits;
	lim.max_depth = 3;
	char *m = nested_msg(3);
	struct hie_mime_part *p = parse_ok(m, &lim);
	const struct hie_mime_part *q = p;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(q->nchildren, 1);
		q = &q->children[0];
	}
	assert_string_equal(q->type, "text/plain");
	assert_slice(q->body, q->body_len, "innermost");
	hie_mime_free(p);
	free(m);

	m = nested_msg(4);
	assert_int_equal(parse_err(m, strlen(m), &lim), HIE_ETOOBIG);
	free(m);
	/* Far deeper than the default cap: refused, not a stack overflow. */
	m = nested_msg(5000);
	assert_int_equal(parse_err(m, strlen(m), NULL), HIE_ETOOBIG);
	free(m);
	lim.max_depth = 0;
	m = nested_msg(1);
	assert_int_equal(parse_err(m, strlen(m), &lim), HIE_ETOOBIG);
	free(m);
}

static char *many_parts(size_t nparts)
{
	size_t cap = 128 + nparts * 32, o = 0;
	char *m = malloc(cap);
	assert_non_null(m);
	o += (size_t)snprintf(m + o, cap - o, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (size_t i = 0; i < nparts; i++)
		o += (size_t)snprintf(m + o, cap - o, "--p\r\n\r\npart %zu\r\n", i);
	o += (size_t)snprintf(m + o, cap - o, "--p--\r\n");
	return m;
}

static void test_part_cap(void **state)
{
	(void)state;
	struct hie_mime_limits lim = hie_mime_default_limits;
	lim.max_parts = 10; /* the top entity counts */
	char *m = many_parts(9);
	struct hie_mime_part *p = parse_ok(m, &lim);
	assert_int_equal(p->nchildren, 9);
	assert_slice(p->children[8].body, p->children[8].body_len, "part 8");
	hie_mime_free(p);
	free(m);
	m = many_parts(10);
	assert_int_equal(parse_err(m, strlen(m), &lim), HIE_ETOOBIG);
	free(m);
	m = many_parts(5000);
	assert_int_equal(parse_err(m, strlen(m), NULL), HIE_ETOOBIG);
	free(m);
}

static void test_params(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		const char *param;
		hie_err_t want;
		const char *out;
	} cases[] = {
		{ "multipart/mixed; boundary=\"a\\\"b\\\\c\"", "boundary", HIE_OK, "a\"b\\c" },
		{ "multipart/mixed; BOUNDARY=simple", "boundary", HIE_OK, "simple" },
		{ "multipart/mixed; boundary=\"with ; semicolon\"; x=1", "x", HIE_OK, "1" },
		{ "multipart/mixed; boundary=\"with ; semicolon\"; x=1", "boundary", HIE_OK, "with ; semicolon" },
		{ "text/plain (a comment; x=2) ; charset = (c) \"utf-8\" (c)", "charset", HIE_OK, "utf-8" },
		{ "text/plain; charset=us-ascii (Plain text)", "charset", HIE_OK, "us-ascii" },
		{ "multipart/mixed; boundary=----=_Part_23_845427300.1306179710770", "boundary", HIE_OK,
		  "----=_Part_23_845427300.1306179710770" },
		{ "multipart/mixed;\r\n\tboundary=\"xy\"", "boundary", HIE_OK, "xy" },
		{ "multipart/related; start=\"<a@b>\"; start-info=\"x\"", "start", HIE_OK, "<a@b>" },
		{ "multipart/related; start-info=\"x\"; start=\"<a@b>\"", "start", HIE_OK, "<a@b>" },
		{ "text/plain; a=1; a=2", "a", HIE_OK, "1" },
		{ "text/plain; a=\"\"", "a", HIE_OK, "" },
		{ "text/plain; \"quoted;junk\"; a=3", "a", HIE_OK, "3" },
		{ "text/plain;;; a=4;", "a", HIE_OK, "4" },
		{ "text/plain; ab=1", "a", HIE_ENOTFOUND, NULL },
		{ "text/plain", "charset", HIE_ENOTFOUND, NULL },
		{ "text/plain; charset", "charset", HIE_ENOTFOUND, NULL },
		{ "text/plain; a=\"unterminated", "a", HIE_EPARSE, NULL },
		{ "text/plain; b=\"unterminated; a=1", "a", HIE_EPARSE, NULL },
	};
	struct hie_buf b;
	hie_buf_init(&b, 256);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hie_buf_reset(&b);
		hie_buf_addstr(&b, "stale");
		hie_err_t err = hie_mime_param(cases[i].value, strlen(cases[i].value), cases[i].param, &b);
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
		if (cases[i].out && strcmp(hie_buf_str(&b), cases[i].out) != 0)
			fail_msg("case %zu: got '%s' want '%s'", i, hie_buf_str(&b), cases[i].out);
	}
	hie_buf_free(&b);
}

static void test_media_type(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		hie_err_t want;
		const char *out;
	} cases[] = {
		{ "Multipart/Mixed; boundary=x", HIE_OK, "multipart/mixed" },
		{ "  (comment) text / plain (c)", HIE_OK, "text/plain" },
		{ "application/soap+xml;charset=UTF-8", HIE_OK, "application/soap+xml" },
		{ "text", HIE_EPARSE, NULL },
		{ "text/", HIE_EPARSE, NULL },
		{ "/plain", HIE_EPARSE, NULL },
		{ "text/plain garbage", HIE_EPARSE, NULL },
		{ "", HIE_EPARSE, NULL },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", HIE_ETOOBIG, NULL },
	};
	char out[32];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hie_err_t err = hie_mime_media_type(cases[i].value, strlen(cases[i].value), out, sizeof(out));
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
		if (cases[i].out)
			assert_string_equal(out, cases[i].out);
	}
	/* A syntactically invalid Content-Type means text/plain (RFC 2045 §5.2). */
	struct hie_mime_part *p = parse_ok("Content-Type: garbage\r\n\r\nx", NULL);
	assert_string_equal(p->type, "text/plain");
	hie_mime_free(p);
}

static void test_base64(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		hie_err_t want;
		const char *out;
	} cases[] = {
		{ "", HIE_OK, "" },
		{ "TWFu", HIE_OK, "Man" },
		{ "TWE=", HIE_OK, "Ma" },
		{ "TQ==", HIE_OK, "M" },
		{ "TWE", HIE_OK, "Ma" },    /* missing padding tolerated */
		{ "TQ", HIE_OK, "M" },
		{ "T", HIE_EPARSE, NULL },  /* one character cannot carry a byte */
		{ "TWFu\r\nTWFu\r\n", HIE_OK, "ManMan" },
		{ " T W\tF u \n", HIE_OK, "Man" },
		{ "TQ = =", HIE_OK, "M" },
		{ "TWFu!", HIE_EPARSE, NULL },
		{ "TW-u", HIE_EPARSE, NULL },
		{ "TWFu\x80", HIE_EPARSE, NULL },
		{ "TQ==TQ==", HIE_EPARSE, NULL }, /* data after the padding */
		{ "TQ==TWFu", HIE_EPARSE, NULL },
		{ "TQ===", HIE_EPARSE, NULL },
		{ "T===", HIE_EPARSE, NULL },
		{ "====", HIE_EPARSE, NULL },
		{ "TWE==", HIE_EPARSE, NULL },
		{ "TQ=", HIE_EPARSE, NULL },
	};
	struct hie_buf b;
	hie_buf_init(&b, 1024);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hie_buf_reset(&b);
		hie_buf_add(&b, "p:", 2);
		hie_err_t err = hie_mime_base64_decode(cases[i].in, strlen(cases[i].in), &b);
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
		if (err) {
			assert_int_equal(b.len, 2); /* unchanged on error */
			continue;
		}
		assert_int_equal(b.len, 2 + strlen(cases[i].out));
		assert_memory_equal(b.data + 2, cases[i].out, b.len - 2);
		assert_int_equal(b.data[b.len], '\0');
	}
	hie_buf_free(&b);
}

static void test_base64_roundtrip_and_cap(void **state)
{
	(void)state;
	unsigned char raw[1000];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 131 + 7);
	struct hie_buf enc, dec;
	hie_buf_init(&enc, 1 << 20);
	hie_buf_init(&dec, 1 << 20);
	for (size_t n = 0; n <= 200; n++) {
		hie_buf_reset(&enc);
		hie_buf_reset(&dec);
		assert_int_equal(hie_mime_base64_encode(raw, n, n % 2 == 0, &enc), HIE_OK);
		assert_int_equal(hie_mime_base64_decode(enc.data, enc.len, &dec), HIE_OK);
		assert_int_equal(dec.len, n);
		if (n)
			assert_memory_equal(dec.data, raw, n);
	}
	/* Wrapped lines are exactly 76 characters, CRLF between, none after the last. */
	hie_buf_reset(&enc);
	assert_int_equal(hie_mime_base64_encode(raw, sizeof(raw), true, &enc), HIE_OK);
	size_t col = 0;
	for (size_t i = 0; i < enc.len; i++) {
		if (enc.data[i] == '\r') {
			assert_int_equal(col, 76);
			assert_int_equal(enc.data[++i], '\n');
			col = 0;
		} else {
			col++;
		}
	}
	assert_true(col > 0 && col <= 76);
	assert_int_equal(enc.len, 1336 + 2 * ((1336 - 1) / 76));
	/* The caller's cap: decoding 1000 bytes into a 999-byte buffer fails and leaves it unchanged. */
	struct hie_buf small;
	hie_buf_init(&small, 999);
	assert_int_equal(hie_mime_base64_decode(enc.data, enc.len, &small), HIE_ETOOBIG);
	assert_int_equal(small.len, 0);
	small.max = 1000;
	assert_int_equal(hie_mime_base64_decode(enc.data, enc.len, &small), HIE_OK);
	assert_memory_equal(small.data, raw, 1000);
	hie_buf_free(&small);
	hie_buf_free(&enc);
	hie_buf_free(&dec);
}

static void test_qp(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		hie_err_t want;
		const char *out;
	} cases[] = {
		{ "plain text", HIE_OK, "plain text" },
		{ "caf=C3=A9", HIE_OK, "caf\xc3\xa9" },
		{ "caf=c3=a9", HIE_OK, "caf\xc3\xa9" }, /* lenient on lower case */
		{ "soft=\r\nbreak", HIE_OK, "softbreak" },
		{ "soft=  \r\nbreak", HIE_OK, "softbreak" },
		{ "soft=\nbreak LF", HIE_OK, "softbreak LF" },
		{ "hard\r\nbreak", HIE_OK, "hard\r\nbreak" },
		{ "trailing   \r\nblanks\t\n", HIE_OK, "trailing\r\nblanks\n" },
		{ "kept=20\r\n", HIE_OK, "kept \r\n" },
		{ "ends soft=", HIE_OK, "ends soft" },
		{ "a=3D=3d", HIE_OK, "a==" },
		{ "bad=ZZ", HIE_EPARSE, NULL },
		{ "bad=4", HIE_EPARSE, NULL },
		{ "bad= x", HIE_EPARSE, NULL },
		{ "bad=G0", HIE_EPARSE, NULL },
	};
	struct hie_buf b;
	hie_buf_init(&b, 1024);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hie_buf_reset(&b);
		hie_err_t err = hie_mime_qp_decode(cases[i].in, strlen(cases[i].in), &b);
		if (err != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, err, cases[i].want);
		if (err) {
			assert_int_equal(b.len, 0);
			continue;
		}
		if (b.len != strlen(cases[i].out) || memcmp(b.data, cases[i].out, b.len) != 0)
			fail_msg("case %zu: got '%s'", i, hie_buf_str(&b));
	}
	hie_buf_reset(&b);
	b.max = 3;
	assert_int_equal(hie_mime_qp_decode("abcd", 4, &b), HIE_ETOOBIG);
	assert_int_equal(b.len, 0);
	hie_buf_free(&b);
}

static void test_decode_by_encoding(void **state)
{
	(void)state;
	const char *msg = "Content-Type: multipart/mixed; boundary=z\r\n\r\n"
			  "--z\r\nContent-Transfer-Encoding: BASE64\r\n\r\naGVsbG8=\r\n"
			  "--z\r\nContent-Transfer-Encoding: quoted-printable (qp)\r\n\r\nh=C3=A9llo=\r\n!\r\n"
			  "--z\r\nContent-Transfer-Encoding: binary\r\n\r\nra\0w\r\n"
			  "--z\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
			  "--z\r\nContent-Transfer-Encoding: base64\r\n\r\nnot base64!\r\n"
			  "--z--\r\n";
	size_t len = strlen(msg);
	len += strlen(msg + len + 1) + 1; /* the binary part holds a NUL */
	struct hie_mime_part *p = NULL;
	assert_int_equal(hie_mime_parse(msg, len, NULL, &p), HIE_OK);
	assert_int_equal(p->nchildren, 5);
	static const struct {
		const char *enc;
		hie_err_t want;
		const char *out;
		size_t out_len;
	} want[] = {
		{ "base64", HIE_OK, "hello", 5 },
		{ "quoted-printable", HIE_OK, "h\xc3\xa9llo!", 7 },
		{ "binary", HIE_OK, "ra\0w", 4 },
		{ "x-uuencode", HIE_EUNSUPPORTED, NULL, 0 },
		{ "base64", HIE_EPARSE, NULL, 0 },
	};
	struct hie_buf b;
	hie_buf_init(&b, 1024);
	for (size_t i = 0; i < 5; i++) {
		hie_buf_reset(&b);
		assert_string_equal(p->children[i].encoding, want[i].enc);
		assert_int_equal(hie_mime_decode(&p->children[i], &b), want[i].want);
		if (want[i].out) {
			assert_int_equal(b.len, want[i].out_len);
			assert_memory_equal(b.data, want[i].out, b.len);
		}
	}
	hie_buf_free(&b);
	hie_mime_free(p);
}

static void test_nested_and_digest(void **state)
{
	(void)state;
	const char *msg = "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
			  "--outer\r\n"
			  "Content-Type: multipart/digest; boundary=inner\r\n\r\n"
			  "--inner\r\n\r\nSubject: digested\r\n\r\nmsg\r\n"
			  "--inner\r\n--inner--\r\n"
			  "--outer\r\nContent-Type: text/plain\r\n\r\n--outer-- is not the end\r\n"
			  "--outer--";
	struct hie_mime_part *p = parse_ok(msg, NULL);
	assert_int_equal(p->nchildren, 2);
	const struct hie_mime_part *d = &p->children[0];
	assert_string_equal(d->type, "multipart/digest");
	assert_int_equal(d->nchildren, 2);
	assert_string_equal(d->children[0].type, "message/rfc822");
	assert_slice(d->children[0].body, d->children[0].body_len, "Subject: digested\r\n\r\nmsg");
	assert_int_equal(d->children[1].raw_len, 0); /* empty part right after a delimiter */
	assert_slice(p->children[1].body, p->children[1].body_len, "--outer-- is not the end");
	hie_mime_free(p);
}

static void test_parse_body(void **state)
{
	(void)state;
	const char *ct = "multipart/related; boundary=\"MIMEBoundary_1\"; type=\"application/xop+xml\"";
	const char *body = "--MIMEBoundary_1\r\nContent-ID: <a>\r\n\r\nroot\r\n--MIMEBoundary_1--\r\n";
	struct hie_mime_part *p = NULL;
	assert_int_equal(hie_mime_parse_body(ct, strlen(ct), body, strlen(body), NULL, &p), HIE_OK);
	assert_int_equal(p->nheaders, 0);
	assert_ptr_equal(p->body, body);
	assert_string_equal(p->type, "multipart/related");
	assert_int_equal(p->nchildren, 1);
	assert_slice(p->children[0].body, p->children[0].body_len, "root");
	hie_mime_free(p);
	assert_int_equal(hie_mime_parse_body("multipart/related", 17, body, strlen(body), NULL, &p), HIE_EPARSE);
	assert_null(p);
}

/* A multi-megabyte binary part with many near-miss lines is split exactly. */
static void test_large_binary_part(void **state)
{
	(void)state;
	size_t n = 4u << 20;
	const char *head = "Content-Type: multipart/related; boundary=\"MIME_xyz\"\r\n\r\n--MIME_xyz\r\n"
			   "Content-Transfer-Encoding: binary\r\n\r\n";
	const char *tail = "\r\n--MIME_xyz--\r\n";
	size_t hl = strlen(head), tl = strlen(tail);
	char *m = malloc(hl + n + tl);
	assert_non_null(m);
	memcpy(m, head, hl);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		m[hl + i] = (char)(x >> 16);
	}
	for (size_t i = 0; i + 12 < n; i += 4096)
		memcpy(m + hl + i, "\r\n--MIME_xy\n", 12); /* a near-miss delimiter every 4 KiB */
	memcpy(m + hl + n, tail, tl);
	struct hie_mime_part *p = NULL;
	assert_int_equal(hie_mime_parse(m, hl + n + tl, NULL, &p), HIE_OK);
	assert_int_equal(p->nchildren, 1);
	assert_int_equal(p->children[0].body_len, n);
	assert_ptr_equal(p->children[0].body, m + hl);
	hie_mime_free(p);
	free(m);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	char *d = malloc((size_t)n + 1);
	assert_non_null(d);
	assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return d;
}

static void check_corpus_tree(const struct hie_mime_part *p, const char *name)
{
	if (strcmp(p->type, "multipart/signed") == 0 && p->nchildren != 2)
		fail_msg("%s: multipart/signed with %zu children", name, p->nchildren);
	if (strncmp(p->type, "multipart/", 10) == 0 && p->nchildren == 0)
		fail_msg("%s: empty multipart", name);
	struct hie_buf b;
	hie_buf_init(&b, 8u << 20);
	hie_err_t err = hie_mime_decode(p, &b);
	if (err)
		fail_msg("%s: decode of a %s part failed: %d", name, p->type, err);
	hie_buf_free(&b);
	for (size_t i = 0; i < p->nchildren; i++)
		check_corpus_tree(&p->children[i], name);
}

static void test_direct_ri_corpus(void **state)
{
	(void)state;
	const char *src = getenv("HIENODE_SRC");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/../shared/corpus/direct-ri/src/test/resources/org/nhindirect/stagent",
		 src ? src : ".");
	DIR *d = opendir(dir);
	if (!d) {
		print_message("corpus folder %s absent: skipped\n", dir);
		skip();
		return;
	}
	struct dirent *e;
	size_t parsed = 0, smime = 0, lenient = 0;
	while ((e = readdir(d)) != NULL) {
		size_t nl = strlen(e->d_name);
		if (nl < 4 || (strcmp(e->d_name + nl - 4, ".txt") != 0 && strcmp(e->d_name + nl - 4, ".eml") != 0))
			continue;
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		size_t len;
		char *data = read_file(path, &len);
		struct hie_mime_part *p = NULL;
		hie_err_t err = hie_mime_parse(data, len, NULL, &p);
		if (err == HIE_EPARSE && strcmp(e->d_name, "msgSig.txt") != 0) {
			/* Several RI messages (MDNs, DSN-style reports) omit the close delimiter. */
			err = hie_mime_parse_ex(data, len, NULL, HIE_MIME_LENIENT_CLOSE, &p);
			if (!err) {
				assert_true(p->close_missing);
				lenient++;
			}
		}
		if (strcmp(e->d_name, "msgSig.txt") == 0) {
			/* Not a message: a bare base64 CMS blob with no header block. */
			assert_int_equal(err, HIE_EPARSE);
			free(data);
			continue;
		}
		if (err) {
			free(data);
			closedir(d);
			fail_msg("%s: hie_mime_parse failed: %d", e->d_name, err);
		}
		if (strstr(p->type, "pkcs7-mime")) {
			assert_int_equal(p->nchildren, 0);
			smime++;
		}
		check_corpus_tree(p, e->d_name);
		hie_mime_free(p);
		free(data);
		parsed++;
	}
	closedir(d);
	assert_true(parsed >= 10);
	assert_true(smime >= 4);
	print_message("parsed %zu corpus messages (%zu S/MIME, %zu needed HIE_MIME_LENIENT_CLOSE)\n", parsed, smime,
		      lenient);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_crlf),
		cmocka_unit_test(test_defaults_and_lf_only),
		cmocka_unit_test(test_folded_headers),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_multipart_basic),
		cmocka_unit_test(test_multipart_structure_errors),
		cmocka_unit_test(test_boundary_length),
		cmocka_unit_test(test_boundary_prefix_of_text),
		cmocka_unit_test(test_lenient_close),
		cmocka_unit_test(test_multipart_lf_only),
		cmocka_unit_test(test_signed_first_part_exact),
		cmocka_unit_test(test_header_caps),
		cmocka_unit_test(test_depth_cap),
		cmocka_unit_test(test_part_cap),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_media_type),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_roundtrip_and_cap),
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_decode_by_encoding),
		cmocka_unit_test(test_nested_and_digest),
		cmocka_unit_test(test_parse_body),
		cmocka_unit_test(test_large_binary_part),
		cmocka_unit_test(test_direct_ri_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
