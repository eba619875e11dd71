/*
 * core_xml_test.c — safe XML parsing (hostile documents), look-ups and serialization.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/core_xml.h"

struct parse_case {
	const char *name;
	const char *xml;
	hie_err_t want;
	const char *must_not_contain; /* in the error text and the serialized result */
};

#define BILLION_LAUGHS                                                                                       \
	"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n"                                 \
	"<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"                            \
	"<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"                  \
	"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"                  \
	"<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"                  \
	"<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"                  \
	"<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"                  \
	"<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"                  \
	"<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"                  \
	"<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"                  \
	"]>\n<lolz>&lol9;</lolz>\n"

static const struct parse_case parse_cases[] = {
	{ .name = "plain", .xml = "<a xmlns='urn:x'><b>t</b></a>", .want = HIE_OK },
	{ .name = "billion-laughs", .xml = BILLION_LAUGHS, .want = HIE_EPARSE, .must_not_contain = "lollol" },
	{ .name = "xxe-file",
	  .xml = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
	  .want = HIE_EPARSE, .must_not_contain = "root:" },
	{ .name = "xxe-parameter-entity",
	  .xml = "<!DOCTYPE r [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]><r/>",
	  .want = HIE_EPARSE, .must_not_contain = "root:" },
	{ .name = "external-dtd",
	  .xml = "<!DOCTYPE r SYSTEM \"http://127.0.0.1:1/evil.dtd\"><r>&ent;</r>", .want = HIE_EPARSE },
	{ .name = "external-dtd-file", .xml = "<!DOCTYPE r SYSTEM \"/etc/passwd\"><r/>", .want = HIE_EPARSE,
	  .must_not_contain = "root:" },
	{ .name = "doctype-alone", .xml = "<!DOCTYPE r><r/>", .want = HIE_EPARSE },
	{ .name = "doctype-public", .xml = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
					    "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\"><html/>",
	  .want = HIE_EPARSE },
	{ .name = "undeclared-entity", .xml = "<r>&nope;</r>", .want = HIE_EPARSE },
	{ .name = "predefined-entities", .xml = "<r a='&lt;&amp;'>&gt;&quot;&apos;&#65;</r>", .want = HIE_OK },
	{ .name = "xinclude-not-processed",
	  .xml = "<r xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='file:///etc/passwd' "
		 "parse='text'/></r>",
	  .want = HIE_OK, .must_not_contain = "root:" },
	{ .name = "mismatched-tags", .xml = "<a><b></a></b>", .want = HIE_EPARSE },
	{ .name = "truncated", .xml = "<a><b>", .want = HIE_EPARSE },
	{ .name = "two-roots", .xml = "<a/><b/>", .want = HIE_EPARSE },
	{ .name = "no-root", .xml = "<?xml version='1.0'?>", .want = HIE_EPARSE },
	{ .name = "garbage", .xml = "\x01\x02\xff\xfe", .want = HIE_EPARSE },
	{ .name = "unbound-prefix", .xml = "<p:a/>", .want = HIE_EPARSE },
	{ .name = "empty", .xml = "", .want = HIE_EPARSE },
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct hie_buf eb, ser;
		hie_buf_init(&eb, 4096);
		hie_buf_init(&ser, 1 << 20);
		xmlDoc *doc = (xmlDoc *)0x1;
		hie_err_t err = hie_xml_parse(c->xml, strlen(c->xml), NULL, &doc, &eb);
		if (err != c->want)
			fail_msg("case %s: got %s want %s (%s)", c->name, hie_errname(err), hie_errname(c->want),
				 hie_buf_str(&eb));
		if (err) {
			assert_null(doc);
			assert_true(eb.len > 0);
		} else {
			assert_non_null(doc);
			assert_int_equal(hie_xml_serialize_doc(doc, false, &ser), HIE_OK);
			xmlFreeDoc(doc);
		}
		if (c->must_not_contain) {
			assert_null(strstr(hie_buf_str(&eb), c->must_not_contain));
			assert_null(strstr(hie_buf_str(&ser), c->must_not_contain));
		}
		hie_buf_free(&eb);
		hie_buf_free(&ser);
	}
}

/* The error text names the DOCTYPE refusal, which proves the parser stopped at the DOCTYPE, not later. */
static void test_doctype_refused_by_parser(void **state)
{
	(void)state;
	struct hie_buf eb;
	hie_buf_init(&eb, 4096);
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(BILLION_LAUGHS, strlen(BILLION_LAUGHS), NULL, &doc, &eb), HIE_EPARSE);
	assert_non_null(strstr(hie_buf_str(&eb), "DOCTYPE"));
	hie_buf_free(&eb);
}

static char *nested(size_t depth, size_t *len)
{
	size_t n = depth * 3 + depth * 4 + 1;
	char *s = malloc(n);
	assert_non_null(s);
	size_t off = 0;
	for (size_t i = 0; i < depth; i++) {
		memcpy(s + off, "<a>", 3);
		off += 3;
	}
	for (size_t i = 0; i < depth; i++) {
		memcpy(s + off, "</a>", 4);
		off += 4;
	}
	s[off] = '\0';
	*len = off;
	return s;
}

static void test_depth(void **state)
{
	(void)state;
	size_t len;
	xmlDoc *doc = NULL;
	char *deep = nested(100000, &len);
	assert_int_equal(hie_xml_parse(deep, len, NULL, &doc, NULL), HIE_ETOOBIG);
	assert_null(doc);
	free(deep);

	/* exactly at the default limit passes; one more fails; the limit is per call */
	char *ok = nested(HIE_XML_DEFAULT_MAX_DEPTH, &len);
	assert_int_equal(hie_xml_parse(ok, len, NULL, &doc, NULL), HIE_OK);
	xmlFreeDoc(doc);
	struct hie_xml_limits lim = { .max_depth = 10 };
	assert_int_equal(hie_xml_parse(ok, len, &lim, &doc, NULL), HIE_ETOOBIG);
	free(ok);
	char *over = nested(HIE_XML_DEFAULT_MAX_DEPTH + 1, &len);
	assert_int_equal(hie_xml_parse(over, len, NULL, &doc, NULL), HIE_ETOOBIG);
	free(over);
}

static void test_size_and_count_caps(void **state)
{
	(void)state;
	const char *x = "<r><a/><a/><a/><a/></r>";
	xmlDoc *doc = NULL;
	struct hie_xml_limits lim = { .max_bytes = 10 };
	assert_int_equal(hie_xml_parse(x, strlen(x), &lim, &doc, NULL), HIE_ETOOBIG);
	assert_null(doc);
	struct hie_xml_limits lim2 = { .max_elements = 4 };
	assert_int_equal(hie_xml_parse(x, strlen(x), &lim2, &doc, NULL), HIE_ETOOBIG);
	struct hie_xml_limits lim3 = { .max_elements = 5 };
	assert_int_equal(hie_xml_parse(x, strlen(x), &lim3, &doc, NULL), HIE_OK);
	xmlFreeDoc(doc);
}

static const char *soapish =
	"<env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'>"
	"<env:Header><wsa:Action xmlns:wsa='http://www.w3.org/2005/08/addressing'> urn:x </wsa:Action></env:Header>"
	"<env:Body><q:Req xmlns:q='urn:q' id='7'><q:Item n='1'>one</q:Item><other/><q:Item n='2'><![CDATA[t<w>o]]></q:Item>"
	"</q:Req></env:Body></env:Envelope>";

static const struct hie_xml_ns nstab[] = {
	{ "e", "http://www.w3.org/2003/05/soap-envelope" },
	{ "q", "urn:q" },
	{ NULL, NULL },
};

static void test_lookups(void **state)
{
	(void)state;
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(soapish, strlen(soapish), NULL, &doc, NULL), HIE_OK);
	xmlNode *root = xmlDocGetRootElement(doc);
	assert_true(hie_xml_is(root, "http://www.w3.org/2003/05/soap-envelope", "Envelope"));
	assert_false(hie_xml_is(root, "http://schemas.xmlsoap.org/soap/envelope/", "Envelope"));
	xmlNode *body = hie_xml_child(root, "http://www.w3.org/2003/05/soap-envelope", "Body");
	assert_non_null(body);
	xmlNode *req = hie_xml_child(body, "urn:q", "Req");
	assert_non_null(req);
	assert_null(hie_xml_child(body, NULL, "Req")); /* NULL namespace means no namespace */
	assert_non_null(hie_xml_child(req, NULL, "other"));

	struct hie_buf b;
	hie_buf_init(&b, 1024);
	xmlNode *it;
	int count = 0;
	HIE_XML_FOREACH(it, req, "urn:q", "Item") {
		count++;
	}
	assert_int_equal(count, 2);
	xmlNode *second = hie_xml_next(hie_xml_child(req, "urn:q", "Item"), "urn:q", "Item");
	assert_int_equal(hie_xml_text(second, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "t<w>o"); /* CDATA merged into text */
	hie_buf_reset(&b);
	assert_int_equal(hie_xml_attr(req, NULL, "id", &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "7");
	assert_int_equal(hie_xml_attr(req, NULL, "nope", &b), HIE_ENOTFOUND);
	assert_true(hie_xml_has_attr(req, NULL, "id"));

	struct hie_xml_nodes ns;
	assert_int_equal(hie_xml_xpath(doc, NULL, "/e:Envelope/e:Body/q:Req/q:Item", nstab, &ns), HIE_OK);
	assert_int_equal(ns.n, 2);
	hie_xml_nodes_free(&ns);
	assert_int_equal(hie_xml_xpath(doc, NULL, "//q:Missing", nstab, &ns), HIE_OK);
	assert_int_equal(ns.n, 0);
	hie_xml_nodes_free(&ns);
	assert_int_equal(hie_xml_xpath(doc, NULL, "count(//q:Item)", nstab, &ns), HIE_EINVAL);
	assert_int_equal(hie_xml_xpath(doc, NULL, "//zz:Item", nstab, &ns), HIE_EINVAL); /* unknown prefix */
	assert_int_equal(hie_xml_xpath(doc, NULL, "//[", nstab, &ns), HIE_EINVAL);

	hie_buf_reset(&b);
	assert_int_equal(hie_xml_xpath_text(doc, req, "q:Item[@n='1']", nstab, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "one");
	hie_buf_reset(&b);
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "//q:Req/@id", nstab, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "7");
	hie_buf_reset(&b);
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "count(//q:Item)", nstab, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "2");
	assert_int_equal(hie_xml_xpath_text(doc, NULL, "//q:None", nstab, &b), HIE_ENOTFOUND);
	hie_buf_reset(&b);
	assert_int_equal(hie_xml_xpath_attr(doc, NULL, "//q:Item", nstab, NULL, "n", &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "1");
	assert_int_equal(hie_xml_xpath_attr(doc, NULL, "//q:Item", nstab, NULL, "zz", &b), HIE_ENOTFOUND);

	/* a node serialized alone re-declares the namespace bound on an ancestor */
	hie_buf_reset(&b);
	xmlNode *item = hie_xml_child(req, "urn:q", "Item");
	assert_int_equal(hie_xml_serialize_node(item, &b), HIE_OK);
	assert_string_equal(hie_buf_str(&b), "<q:Item xmlns:q=\"urn:q\" n=\"1\">one</q:Item>");
	xmlDoc *again = NULL;
	assert_int_equal(hie_xml_parse(b.data, b.len, NULL, &again, NULL), HIE_OK);
	xmlFreeDoc(again);

	/* the cap of the output buffer is honoured */
	struct hie_buf small;
	hie_buf_init(&small, 16);
	assert_int_equal(hie_xml_serialize_doc(doc, true, &small), HIE_ETOOBIG);
	hie_buf_free(&small);
	hie_buf_reset(&b);
	assert_int_equal(hie_xml_serialize_doc(doc, true, &b), HIE_OK);
	assert_true(strncmp(hie_buf_str(&b), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 38) == 0);
	hie_buf_reset(&b);
	assert_int_equal(hie_xml_serialize_doc(doc, false, &b), HIE_OK);
	assert_true(strncmp(hie_buf_str(&b), "<env:Envelope", 13) == 0);

	hie_buf_free(&b);
	xmlFreeDoc(doc);
}

/* Threads parse good and hostile documents at once; each must get its own verdict (no shared error state). */
static void *parse_worker(void *arg)
{
	(void)arg;
	size_t wrong = 0;
	for (int i = 0; i < 200; i++) {
		const struct parse_case *c = &parse_cases[(size_t)i % (sizeof(parse_cases) / sizeof(parse_cases[0]))];
		struct hie_buf eb;
		hie_buf_init(&eb, 1024);
		xmlDoc *doc = NULL;
		hie_err_t err = hie_xml_parse(c->xml, strlen(c->xml), NULL, &doc, &eb);
		if (err != c->want || (err && eb.len == 0))
			wrong++;
		if (doc)
			xmlFreeDoc(doc);
		hie_buf_free(&eb);
	}
	return (void *)(uintptr_t)wrong;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, parse_worker, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_int_equal((uintptr_t)ret, 0);
	}
}

/* hie_xml_root_is: a sniff up to the root's start tag, with the parser's safety rules. */
static void test_root_is(void **state)
{
	(void)state;
	static const struct {
		const char *doc;
		bool yes;
	} cases[] = {
		{"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><id root=\"1.2\"/></ClinicalDocument>", true},
		{"<?xml version=\"1.0\"?>\n<!-- c --><cda:ClinicalDocument xmlns:cda=\"urn:hl7-org:v3\">", true},
		{"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><unclosed>", true}, /* says nothing of the rest */
		{"<ClinicalDocument><id/></ClinicalDocument>", false},          /* no namespace */
		{"<x:ClinicalDocument xmlns:x=\"urn:other\"/>", false},
		{"<Other xmlns=\"urn:hl7-org:v3\"/>", false},
		{"<!DOCTYPE ClinicalDocument [<!ENTITY e \"x\">]><ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>", false},
		{"not xml at all", false},
		{"", false},
		{"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"", false}, /* start tag never finished */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(hie_xml_root_is(cases[i].doc, strlen(cases[i].doc), "urn:hl7-org:v3", "ClinicalDocument"),
				 cases[i].yes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_doctype_refused_by_parser),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_size_and_count_caps),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_root_is),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
