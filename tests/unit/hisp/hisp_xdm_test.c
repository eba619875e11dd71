/*
 * hisp_xdm_test.c — XDM packages: build (from a 3.0 SubmitObjectsRequest, from minimal metadata, from the NIST
 * testkit's 2.1 metadata) and read back (same bytes, URI / hash / size slots, INDEX.HTM is XHTML); the real
 * `unzip` lists and extracts a built package; and the reader's refusals, each with its reason: bad or missing
 * INDEX.HTM, missing README.TXT, METADATA.xml with a DOCTYPE, a missing document, hash and size mismatches,
 * hostile entry names and URIs, zip bombs (declared and lying sizes), not a zip, truncated and damaged zips,
 * too many entries, encrypted entries.
 */
#define _XOPEN_SOURCE 700 /* nftw in pgtest.h (through hisptest.h) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zip.h>

#include "core/core_xml.h"
#include "hisp/hisp_edge.h"
#include "core/core_digest.h"
#include "hisp/hisp_xdm_int.h"
#include "tests/unit/hisp/hisptest.h"

#define RIM3 "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"

static const char SOR3[] =
	"<lcm:SubmitObjectsRequest xmlns:lcm=\"urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0\" "
	"xmlns:rim=\"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0\"><rim:RegistryObjectList>"
	"<rim:ExtrinsicObject id=\"Document01\" mimeType=\"text/xml\" "
	"objectType=\"urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1\">"
	"<rim:Slot name=\"creationTime\"><rim:ValueList><rim:Value>20240101</rim:Value></rim:ValueList></rim:Slot>"
	"<rim:Slot name=\"size\"><rim:ValueList><rim:Value>999999</rim:Value></rim:ValueList></rim:Slot>"
	"<rim:Name><rim:LocalizedString value=\"Discharge &lt;summary&gt; &amp; &quot;more&quot;\"/></rim:Name>"
	"<rim:ExternalIdentifier id=\"ei1\" registryObject=\"Document01\" "
	"identificationScheme=\"urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab\" value=\"2.25.4242\">"
	"<rim:Name><rim:LocalizedString value=\"XDSDocumentEntry.uniqueId\"/></rim:Name></rim:ExternalIdentifier>"
	"</rim:ExtrinsicObject>"
	"<rim:ExtrinsicObject id=\"Document02\" mimeType=\"application/pdf\" "
	"objectType=\"urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1\"/>"
	"<rim:RegistryPackage id=\"SubmissionSet01\"/>"
	"</rim:RegistryObjectList></lcm:SubmitObjectsRequest>";

static const char CDA[] = "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><title>A &amp; B</title></ClinicalDocument>\n";
static const unsigned char PDF[] = "%PDF-1.4\n\x00\x01\x02\xff binary\n%%EOF\n";

static xmlDoc *parse(const char *s)
{
	xmlDoc *d = NULL;
	assert_int_equal(hie_xml_parse(s, strlen(s), NULL, &d, NULL), HIE_OK);
	return d;
}

static void two_docs(struct hisp_xdm_doc d[2])
{
	d[0] = (struct hisp_xdm_doc){.entry_id = "Document01", .mime_type = "text/xml",
				     .data = (const unsigned char *)CDA, .len = strlen(CDA)};
	d[1] = (struct hisp_xdm_doc){.entry_id = "Document02", .mime_type = "application/pdf", .data = PDF,
				     .len = sizeof PDF - 1};
}

static void build_sor3(struct hie_buf *out)
{
	xmlDoc *sor = parse(SOR3);
	struct hisp_xdm_doc d[2];
	two_docs(d);
	hie_buf_init(out, 64u << 20);
	assert_int_equal(hisp_xdm_build(xmlDocGetRootElement(sor), d, 2, "alice@a.test", out), HIE_OK);
	xmlFreeDoc(sor);
}

static char *slot_of(struct hisp_xdm *x, const char *id, const char *name)
{
	xmlNode *root = xmlDocGetRootElement(x->metadata_doc);
	const char *rim = hisp_xdm_rim_ns(root);
	xmlNode *eo = hisp_xdm_find_extrinsic(root, rim, id);
	assert_non_null(eo);
	struct hie_buf b;
	hie_buf_init(&b, 4096);
	if (hisp_xdm_slot(eo, rim, name, &b) != HIE_OK) {
		hie_buf_free(&b);
		return NULL;
	}
	return hie_buf_steal(&b, NULL);
}

static void assert_slot(struct hisp_xdm *x, const char *id, const char *name, const char *want)
{
	char *v = slot_of(x, id, name);
	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

/* Counts the Slot elements named name on the ExtrinsicObject id (a replaced slot must not be duplicated). */
static size_t count_slots(struct hisp_xdm *x, const char *id, const char *name)
{
	xmlNode *root = xmlDocGetRootElement(x->metadata_doc);
	xmlNode *eo = hisp_xdm_find_extrinsic(root, hisp_xdm_rim_ns(root), id), *s;
	size_t n = 0;
	HIE_XML_FOREACH(s, eo, RIM3, "Slot")
	{
		xmlChar *a = xmlGetNoNsProp(s, (const xmlChar *)"name");
		n += a && strcmp((const char *)a, name) == 0;
		xmlFree(a);
	}
	return n;
}

static void test_build_read_roundtrip(void **state)
{
	(void)state;
	struct hie_buf z;
	build_sor3(&z);
	assert_true(hisp_xdm_is_zip(z.data, z.len));

	struct hisp_xdm *x = NULL;
	char why[256];
	assert_int_equal(hisp_xdm_read(z.data, z.len, &x, why, sizeof why), HIE_OK);
	assert_string_equal(why, "");
	assert_string_equal(x->subset, "SUBSET01");
	assert_int_equal(x->ndocs, 2);
	assert_string_equal(x->docs[0].entry_id, "Document01");
	assert_string_equal(x->docs[0].unique_id, "2.25.4242");
	assert_string_equal(x->docs[0].mime_type, "text/xml");
	assert_string_equal(x->docs[0].path, "IHE_XDM/SUBSET01/DOC0001.XML");
	assert_int_equal(x->docs[0].len, strlen(CDA));
	assert_memory_equal(x->docs[0].data, CDA, strlen(CDA));
	assert_string_equal(x->docs[1].unique_id, "");
	assert_string_equal(x->docs[1].path, "IHE_XDM/SUBSET01/DOC0002.PDF");
	assert_int_equal(x->docs[1].len, sizeof PDF - 1);
	assert_memory_equal(x->docs[1].data, PDF, sizeof PDF - 1);

	char hash[41], size[32];
	hie_digest_sha1_hex(CDA, strlen(CDA), hash);
	snprintf(size, sizeof size, "%zu", strlen(CDA));
	assert_slot(x, "Document01", "URI", "DOC0001.XML");
	assert_slot(x, "Document01", "hash", hash);
	assert_slot(x, "Document01", "size", size);
	assert_slot(x, "Document01", "creationTime", "20240101"); /* the rest is kept */
	assert_int_equal(count_slots(x, "Document01", "size"), 1);
	assert_slot(x, "Document02", "URI", "DOC0002.PDF");
	hie_digest_sha1_hex(PDF, sizeof PDF - 1, hash);
	assert_slot(x, "Document02", "hash", hash);
	hie_buf_free(&z);
	hisp_xdm_free(x);
}

/* Reads one entry of a zip with libzip (for checks of what the builder wrote). */
static char *zip_entry(const struct hie_buf *z, const char *name, size_t *len)
{
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *src = zip_source_buffer_create(z->data, z->len, 0, &ze);
	zip_t *za = zip_open_from_source(src, ZIP_RDONLY, &ze);
	assert_non_null(za);
	zip_stat_t st;
	assert_int_equal(zip_stat(za, name, 0, &st), 0);
	char *buf = calloc(1, st.size + 1);
	zip_file_t *f = zip_fopen(za, name, 0);
	assert_non_null(f);
	assert_int_equal(zip_fread(f, buf, st.size), (zip_int64_t)st.size);
	zip_fclose(f);
	zip_discard(za);
	*len = st.size;
	return buf;
}

static void test_sha1_vector(void **state)
{
	(void)state;
	char h[41];
	hie_digest_sha1_hex("abc", 3, h);
	assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
	assert_string_equal(hisp_xdm_ext("text/xml"), "XML");
	assert_string_equal(hisp_xdm_ext("application/PDF"), "PDF");
	assert_string_equal(hisp_xdm_ext("application/fhir+xml"), "XML");
	assert_string_equal(hisp_xdm_ext("application/x-unknown"), "BIN");
	assert_false(hisp_xdm_is_zip("PK\x05\x06", 4));
	assert_false(hisp_xdm_is_zip(NULL, 0));
}

/* INDEX.HTM is XHTML 1.0: parses (once its DOCTYPE is set aside), html root in the XHTML namespace, every
 * value escaped (the title has < > & "), every document linked. README.TXT names the sender and hienode. */
static void test_index_and_readme(void **state)
{
	(void)state;
	struct hie_buf z;
	build_sor3(&z);
	size_t len;
	char *idx = zip_entry(&z, "INDEX.HTM", &len);
	assert_non_null(strstr(idx, "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0"));
	assert_non_null(strstr(idx, "Discharge &lt;summary&gt; &amp; &quot;more&quot;"));
	char *body = strstr(idx, "<html");
	assert_non_null(body);
	xmlDoc *d = NULL;
	assert_int_equal(hie_xml_parse(body, strlen(body), NULL, &d, NULL), HIE_OK);
	assert_true(hie_xml_is(xmlDocGetRootElement(d), "http://www.w3.org/1999/xhtml", "html"));
	xmlFreeDoc(d);
	assert_non_null(strstr(idx, "href=\"IHE_XDM/SUBSET01/DOC0001.XML\""));
	assert_non_null(strstr(idx, "href=\"IHE_XDM/SUBSET01/DOC0002.PDF\""));
	assert_non_null(strstr(idx, "alice@a.test"));
	free(idx);
	char *readme = zip_entry(&z, "README.TXT", &len);
	assert_non_null(strstr(readme, "alice@a.test"));
	assert_non_null(strstr(readme, "hienode"));
	free(readme);
	hie_buf_free(&z);
}

/* The real unzip lists the four kinds of entries, tests the archive and extracts the same bytes. */
static void test_unzip_tool(void **state)
{
	(void)state;
	if (system("command -v unzip >/dev/null 2>&1") != 0) {
		skip();
		return;
	}
	struct hie_buf z;
	build_sor3(&z);
	char dir[] = "/tmp/xdmtestXXXXXX", path[256], cmd[1024];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/pkg.zip", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(z.data, 1, z.len, f), z.len);
	fclose(f);

	snprintf(cmd, sizeof cmd, "unzip -l %s/pkg.zip > %s/list.txt 2>&1", dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "unzip -tq %s/pkg.zip > /dev/null 2>&1", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof path, "%s/list.txt", dir);
	size_t len;
	char *list = hisptest_slurp(path, &len);
	assert_non_null(list);
	const char *want[] = {"INDEX.HTM", "README.TXT", "IHE_XDM/SUBSET01/METADATA.xml",
			      "IHE_XDM/SUBSET01/DOC0001.XML", "IHE_XDM/SUBSET01/DOC0002.PDF"};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_non_null(strstr(list, want[i]));
	assert_non_null(strstr(list, "5 files"));
	free(list);

	snprintf(cmd, sizeof cmd, "unzip -p %s/pkg.zip IHE_XDM/SUBSET01/DOC0002.PDF > %s/doc2 2>/dev/null", dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof path, "%s/doc2", dir);
	char *doc = hisptest_slurp(path, &len);
	assert_non_null(doc);
	assert_int_equal(len, sizeof PDF - 1);
	assert_memory_equal(doc, PDF, len);
	free(doc);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	hie_buf_free(&z);
}

/* hisp_xdm_minimal_metadata → hisp_xdm_build → hisp_xdm_read. */
static void test_minimal_metadata(void **state)
{
	(void)state;
	struct hisp_xdm_doc d[2];
	two_docs(d);
	const char *to[] = {"bob@b.test", "carol@b.test"};
	xmlDoc *meta = NULL;
	assert_int_equal(hisp_xdm_minimal_metadata("alice@a.test", to, 2, d, 2, &meta), HIE_OK);
	xmlNode *root = xmlDocGetRootElement(meta);
	assert_true(hie_xml_is(root, "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0", "SubmitObjectsRequest"));

	static const struct hie_xml_ns ns[] = {{"rim", RIM3}, {NULL, NULL}};
	struct hie_buf v;
	hie_buf_init(&v, 4096);
	struct {
		const char *xpath;
		const char *want; /* NULL: only present */
	} checks[] = {
		{"//rim:ExtrinsicObject[@id='Document01']/@mimeType", "text/xml"},
		{"//rim:ExtrinsicObject[@id='Document02']/@objectType", XDM_UUID_DOC_ENTRY},
		{"//rim:ExtrinsicObject[@id='Document01']/rim:Slot[@name='size']/rim:ValueList/rim:Value", NULL},
		{"//rim:ExtrinsicObject[@id='Document01']/rim:Classification/@classificationNode", XDM_UUID_DOC_LIMITED},
		{"//rim:RegistryPackage/rim:Slot[@name='intendedRecipient']/rim:ValueList/rim:Value[2]",
		 "||^^Internet^carol@b.test"},
		{"//rim:RegistryPackage/rim:Classification[@classificationScheme='" XDM_UUID_SS_AUTHOR
		 "']/rim:Slot[@name='authorTelecommunication']/rim:ValueList/rim:Value",
		 "^^Internet^alice@a.test"},
		{"//rim:RegistryPackage/rim:Classification[@classificationNode='" XDM_UUID_SS_LIMITED "']/@classifiedObject",
		 "SubmissionSet01"},
		{"//rim:Classification[@classificationNode='" XDM_UUID_SS "']/@classifiedObject", "SubmissionSet01"},
		{"//rim:Association[@targetObject='Document02']/@associationType", XDM_HAS_MEMBER},
		{"//rim:Association[@targetObject='Document02']/rim:Slot[@name='SubmissionSetStatus']/rim:ValueList/rim:Value",
		 "Original"},
	};
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		hie_buf_reset(&v);
		assert_int_equal(hie_xml_xpath_text(meta, NULL, checks[i].xpath, ns, &v), HIE_OK);
		if (checks[i].want)
			assert_string_equal(hie_buf_str(&v), checks[i].want);
	}
	/* uniqueIds and sourceId are 2.25 OIDs; two calls give different uniqueIds, the same sourceId. */
	const char *uid_x = "//rim:ExternalIdentifier[@identificationScheme='" XDM_UUID_SS_UNIQUEID "']/@value";
	const char *src_x = "//rim:ExternalIdentifier[@identificationScheme='" XDM_UUID_SS_SOURCEID "']/@value";
	const char *doc_x = "//rim:ExternalIdentifier[@identificationScheme='" XDM_UUID_DOC_UNIQUEID "']/@value";
	char uid1[64], src1[64];
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(meta, NULL, uid_x, ns, &v), HIE_OK);
	snprintf(uid1, sizeof uid1, "%s", hie_buf_str(&v));
	assert_memory_equal(uid1, "2.25.", 5);
	assert_true(strlen(uid1) > 10 && strspn(uid1 + 5, "0123456789") == strlen(uid1) - 5);
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(meta, NULL, src_x, ns, &v), HIE_OK);
	snprintf(src1, sizeof src1, "%s", hie_buf_str(&v));
	assert_memory_equal(src1, "2.25.", 5);
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(meta, NULL, doc_x, ns, &v), HIE_OK);
	assert_memory_equal(hie_buf_str(&v), "2.25.", 5);

	xmlDoc *meta2 = NULL;
	assert_int_equal(hisp_xdm_minimal_metadata("alice@a.test", to, 1, d, 1, &meta2), HIE_OK);
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(meta2, NULL, uid_x, ns, &v), HIE_OK);
	assert_string_not_equal(hie_buf_str(&v), uid1);
	hie_buf_reset(&v);
	assert_int_equal(hie_xml_xpath_text(meta2, NULL, src_x, ns, &v), HIE_OK);
	assert_string_equal(hie_buf_str(&v), src1);
	xmlFreeDoc(meta2);

	/* Build and read back: the documents are found by the generated ids. */
	d[0].entry_id = "Document01";
	d[1].entry_id = "Document02";
	struct hie_buf z;
	hie_buf_init(&z, 64u << 20);
	assert_int_equal(hisp_xdm_build(root, d, 2, "alice@a.test", &z), HIE_OK);
	struct hisp_xdm *x = NULL;
	char why[256];
	assert_int_equal(hisp_xdm_read(z.data, z.len, &x, why, sizeof why), HIE_OK);
	assert_int_equal(x->ndocs, 2);
	assert_memory_equal(x->docs[1].data, PDF, sizeof PDF - 1);
	assert_memory_equal(x->docs[0].unique_id, "2.25.", 5);
	assert_slot(x, "Document01", "URI", "DOC0001.XML");
	assert_int_equal(count_slots(x, "Document01", "hash"), 1);
	hisp_xdm_free(x);
	hie_buf_free(&z);
	hie_buf_free(&v);
	xmlFreeDoc(meta);

	/* Refusals. */
	const char *bad_to[] = {"bob|x@b.test"};
	assert_int_equal(hisp_xdm_minimal_metadata("alice@a.test", bad_to, 1, d, 1, &meta), HIE_EINVAL);
	assert_null(meta);
	assert_int_equal(hisp_xdm_minimal_metadata("alice^@a.test", to, 1, d, 1, &meta), HIE_EINVAL);
	assert_int_equal(hisp_xdm_minimal_metadata("alice@a.test", to, 0, d, 1, &meta), HIE_EINVAL);
	assert_int_equal(hisp_xdm_minimal_metadata("alice@a.test", to, 1, d, 0, &meta), HIE_EINVAL);
	assert_int_equal(hisp_xdm_minimal_metadata("alice@a.test", to, 1, d, HISP_XDM_MAX_DOCS + 1, &meta),
			 HIE_ETOOBIG);
}

/* Build refusals: unknown entry_id, duplicate entry_id, no documents, not a SubmitObjectsRequest, caps. */
static void test_build_refusals(void **state)
{
	(void)state;
	xmlDoc *sor = parse(SOR3);
	xmlNode *root = xmlDocGetRootElement(sor);
	struct hisp_xdm_doc d[2];
	two_docs(d);
	struct hie_buf z;
	hie_buf_init(&z, 64u << 20);
	d[1].entry_id = "Document99";
	assert_int_equal(hisp_xdm_build(root, d, 2, "a@a.test", &z), HIE_EINVAL);
	d[1].entry_id = "Document01";
	assert_int_equal(hisp_xdm_build(root, d, 2, "a@a.test", &z), HIE_EINVAL);
	assert_int_equal(hisp_xdm_build(root, d, 0, "a@a.test", &z), HIE_EINVAL);
	assert_int_equal(hisp_xdm_build(root->children, d, 1, "a@a.test", &z), HIE_EINVAL);
	assert_int_equal(z.len, 0);
	two_docs(d);
	d[1].len = (size_t)HISP_XDM_MAX_ENTRY + 1; /* never read: the cap is checked first */
	assert_int_equal(hisp_xdm_build(root, d, 2, "a@a.test", &z), HIE_ETOOBIG);
	/* out's own cap */
	two_docs(d);
	struct hie_buf small;
	hie_buf_init(&small, 100);
	assert_int_equal(hisp_xdm_build(root, d, 2, "a@a.test", &small), HIE_ETOOBIG);
	assert_int_equal(small.len, 0);
	hie_buf_free(&small);
	hie_buf_free(&z);
	xmlFreeDoc(sor);
}

/* The NIST testkit's ebRIM 2.1 metadata (full and minimal) with its CDA: build, read, same bytes. */
static void test_nist_21_metadata(void **state)
{
	(void)state;
	const char *src = getenv("HIENODE_SRC");
	char dir[1024], path[1200];
	snprintf(dir, sizeof dir, "%s/../shared/corpus/nist-toolkit/toolkitx/testkit/testdata-xdr", src ? src : ".");
	const char *cases[] = {"CCDA_Ambulatory_full_metadata", "CCDA_Ambulatory_minimal_metadata"};
	for (size_t i = 0; i < 2; i++) {
		size_t mlen, dlen;
		snprintf(path, sizeof path, "%s/%s/submit_doc/single_doc.xml", dir, cases[i]);
		char *meta = hisptest_slurp(path, &mlen);
		snprintf(path, sizeof path, "%s/%s/submit_doc/CCDA_Ambulatory.xml", dir, cases[i]);
		char *doc = hisptest_slurp(path, &dlen);
		if (!meta || !doc) {
			free(meta);
			free(doc);
			print_message("NIST testkit corpus not found under %s: skipped\n", dir);
			skip();
			return;
		}
		xmlDoc *sor = NULL;
		assert_int_equal(hie_xml_parse(meta, mlen, NULL, &sor, NULL), HIE_OK);
		struct hisp_xdm_doc d = {.entry_id = "Document01", .mime_type = "text/xml",
					 .data = (const unsigned char *)doc, .len = dlen};
		struct hie_buf z;
		hie_buf_init(&z, 64u << 20);
		assert_int_equal(hisp_xdm_build(xmlDocGetRootElement(sor), &d, 1, "alice@a.test", &z), HIE_OK);
		struct hisp_xdm *x = NULL;
		char why[256];
		assert_int_equal(hisp_xdm_read(z.data, z.len, &x, why, sizeof why), HIE_OK);
		assert_int_equal(x->ndocs, 1);
		assert_int_equal(x->docs[0].len, dlen);
		assert_memory_equal(x->docs[0].data, doc, dlen);
		/* the full template carries a placeholder uniqueId the toolkit replaces */
		assert_string_equal(x->docs[0].unique_id, i == 0 ? "Document01" : "1.43.456.45889.23451.1.2.234.2");
		assert_true(hie_xml_is(xmlDocGetRootElement(x->metadata_doc),
				       "urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1", "SubmitObjectsRequest"));
		char size[32];
		snprintf(size, sizeof size, "%zu", dlen);
		assert_slot(x, "Document01", "size", size);
		hisp_xdm_free(x);
		hie_buf_free(&z);
		xmlFreeDoc(sor);
		free(meta);
		free(doc);
	}
}

/* --- read refusals ---------------------------------------------------------------------------------------- */

struct zent {
	const char *name;
	const char *data; /* NULL: an empty file */
	size_t len;       /* 0: strlen(data) */
};

/* A new empty archive written to memory; *src (kept open after zip_close) is for hisptest_zip_take. */
static zip_t *new_zip(zip_source_t **src)
{
	zip_error_t ze;
	zip_error_init(&ze);
	*src = zip_source_buffer_create(NULL, 0, 0, &ze);
	assert_non_null(*src);
	zip_source_keep(*src);
	zip_t *za = zip_open_from_source(*src, ZIP_TRUNCATE, &ze);
	assert_non_null(za);
	return za;
}

/* A zip of these entries, deflated, written by libzip (which writes whatever names it is given). */
static void mkzip(struct hie_buf *out, const struct zent *e, size_t n)
{
	zip_source_t *src;
	zip_t *za = new_zip(&src);
	for (size_t i = 0; i < n; i++) {
		const char *d = e[i].data ? e[i].data : "";
		size_t len = e[i].len ? e[i].len : strlen(d);
		zip_source_t *s = zip_source_buffer(za, d, len, 0);
		assert_non_null(s);
		zip_int64_t idx = zip_file_add(za, e[i].name, s, ZIP_FL_ENC_GUESS);
		assert_true(idx >= 0);
		assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 6), 0);
	}
	assert_int_equal(zip_close(za), 0);
	hie_buf_init(out, 64u << 20);
	hisptest_zip_take(src, out);
}

/* The bytes of the archive written to src, as hisptest_zip_take reads them; the caller frees them. */
static unsigned char *zip_bytes(zip_source_t *src, size_t *size)
{
	struct hie_buf b;
	hie_buf_init(&b, 64u << 20);
	hisptest_zip_take(src, &b);
	return (unsigned char *)hie_buf_steal(&b, size);
}

static const char GOOD_INDEX[] =
	"<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
	"\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n"
	"<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>x</title></head><body><p>hi</p></body></html>";

/* METADATA.xml for one document: uri, and hash / size slots (NULL: correct values for CDA; "": no slot). */
static char *meta_for(const char *uri, const char *hash, const char *size)
{
	char h[41], sz[32];
	hie_digest_sha1_hex(CDA, strlen(CDA), h);
	snprintf(sz, sizeof sz, "%zu", strlen(CDA));
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	hie_buf_addstr(&b, "<lcm:SubmitObjectsRequest xmlns:lcm=\"urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0\" "
			   "xmlns:rim=\"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0\"><rim:RegistryObjectList>"
			   "<rim:ExtrinsicObject id=\"Document01\" mimeType=\"text/xml\">");
	if (uri)
		hie_buf_addf(&b, "<rim:Slot name=\"URI\"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>",
			     uri);
	if (!hash || hash[0])
		hie_buf_addf(&b, "<rim:Slot name=\"hash\"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>",
			     hash ? hash : h);
	if (!size || size[0])
		hie_buf_addf(&b, "<rim:Slot name=\"size\"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>",
			     size ? size : sz);
	hie_buf_addstr(&b, "</rim:ExtrinsicObject></rim:RegistryObjectList></lcm:SubmitObjectsRequest>");
	return hie_buf_steal(&b, NULL);
}

enum mut {
	M_NONE, M_BAD_XHTML, M_NOT_XHTML, M_XHTML_SUBSET, M_NO_INDEX, M_NO_README, M_NO_META, M_META_DOCTYPE,
	M_META_NOT_SOR, M_MISSING_DOC, M_HASH, M_SIZE, M_SIZE_GARBAGE, M_DOTDOT_ENTRY, M_ABS_ENTRY, M_BACKSLASH_ENTRY,
	M_DOTDOT_URI, M_NO_URI, M_NO_DOCS, M_TWO_SUBSETS, M_DUP_CASE, M_LONG_URI, M_LOWER_CASE, M_NO_SLOTS,
};

static const struct rcase {
	const char *name;
	enum mut mut;
	hie_err_t err;
	const char *why; /* a substring of the reason */
} rcases[] = {
	{.name = "valid, XHTML with DOCTYPE and comment", .mut = M_NONE, .err = HIE_OK},
	{.name = "valid, URI in the long form", .mut = M_LONG_URI, .err = HIE_OK},
	{.name = "valid, lower-case names", .mut = M_LOWER_CASE, .err = HIE_OK},
	{.name = "valid, no hash and size slots", .mut = M_NO_SLOTS, .err = HIE_OK},
	{.name = "bad XHTML", .mut = M_BAD_XHTML, .err = HIE_EPARSE, .why = "INDEX.HTM is not well-formed XHTML"},
	{.name = "html outside XHTML ns", .mut = M_NOT_XHTML, .err = HIE_EPARSE, .why = "INDEX.HTM is not XHTML"},
	{.name = "XHTML internal subset", .mut = M_XHTML_SUBSET, .err = HIE_EPARSE, .why = "internal subset"},
	{.name = "no INDEX.HTM", .mut = M_NO_INDEX, .err = HIE_EPARSE, .why = "INDEX.HTM missing"},
	{.name = "no README.TXT", .mut = M_NO_README, .err = HIE_EPARSE, .why = "README.TXT missing"},
	{.name = "no METADATA.xml", .mut = M_NO_META, .err = HIE_EPARSE, .why = "METADATA.xml missing"},
	{.name = "METADATA DOCTYPE", .mut = M_META_DOCTYPE, .err = HIE_EPARSE, .why = "has a DOCTYPE"},
	{.name = "METADATA not SOR", .mut = M_META_NOT_SOR, .err = HIE_EPARSE, .why = "not an ebRS"},
	{.name = "missing document", .mut = M_MISSING_DOC, .err = HIE_EPARSE,
	 .why = "METADATA.xml: document DOC0002.XML missing"},
	{.name = "hash mismatch", .mut = M_HASH, .err = HIE_EPARSE, .why = "hash of DOC0001.XML does not match"},
	{.name = "size mismatch", .mut = M_SIZE, .err = HIE_EPARSE, .why = "size of DOC0001.XML does not match"},
	{.name = "size garbage", .mut = M_SIZE_GARBAGE, .err = HIE_EPARSE, .why = "size of DOC0001.XML"},
	{.name = "../ entry", .mut = M_DOTDOT_ENTRY, .err = HIE_EPARSE, .why = "\"..\""},
	{.name = "absolute entry", .mut = M_ABS_ENTRY, .err = HIE_EPARSE, .why = "absolute path"},
	{.name = "backslash entry", .mut = M_BACKSLASH_ENTRY, .err = HIE_EPARSE, .why = "backslash"},
	{.name = "../ URI", .mut = M_DOTDOT_URI, .err = HIE_EPARSE, .why = "not a plain relative path"},
	{.name = "no URI", .mut = M_NO_URI, .err = HIE_EPARSE, .why = "has no URI"},
	{.name = "no DocumentEntry", .mut = M_NO_DOCS, .err = HIE_EPARSE, .why = "no DocumentEntry"},
	{.name = "two subsets", .mut = M_TWO_SUBSETS, .err = HIE_EPARSE, .why = "more than one submission set"},
	{.name = "duplicate names", .mut = M_DUP_CASE, .err = HIE_EPARSE, .why = "appears twice"},
};

static void make_case(enum mut m, struct hie_buf *z)
{
	char *meta = NULL;
	const char *index = GOOD_INDEX, *index_name = "INDEX.HTM", *readme_name = "README.TXT";
	const char *meta_name = "IHE_XDM/SUBSET01/METADATA.xml", *doc_name = "IHE_XDM/SUBSET01/DOC0001.XML";
	struct zent e[8];
	size_t n = 0;
	switch (m) {
	case M_HASH: meta = meta_for("DOC0001.XML", "0000000000000000000000000000000000000000", NULL); break;
	case M_SIZE: meta = meta_for("DOC0001.XML", NULL, "12"); break;
	case M_SIZE_GARBAGE: meta = meta_for("DOC0001.XML", NULL, "12abc"); break;
	case M_NO_SLOTS: meta = meta_for("DOC0001.XML", "", ""); break;
	case M_MISSING_DOC: meta = meta_for("DOC0002.XML", NULL, NULL); break;
	case M_DOTDOT_URI: meta = meta_for("../../etc/passwd", NULL, NULL); break;
	case M_NO_URI: meta = meta_for(NULL, NULL, NULL); break;
	case M_LONG_URI: {
		meta = meta_for("DOC0001.XML", NULL, NULL);
		char *p = strstr(meta, "<rim:Value>DOC0001.XML</rim:Value>");
		struct hie_buf b;
		hie_buf_init(&b, 1 << 20);
		hie_buf_add(&b, meta, (size_t)(p - meta));
		hie_buf_addstr(&b, "<rim:Value>2|01.XML</rim:Value><rim:Value>1|DOC00</rim:Value>");
		hie_buf_addstr(&b, p + strlen("<rim:Value>DOC0001.XML</rim:Value>"));
		free(meta);
		meta = hie_buf_steal(&b, NULL);
		break;
	}
	case M_META_DOCTYPE: {
		char *good = meta_for("DOC0001.XML", NULL, NULL);
		size_t len = strlen(good) + 64;
		meta = malloc(len);
		snprintf(meta, len, "<!DOCTYPE x [<!ENTITY a \"b\">]>%s", good);
		free(good);
		break;
	}
	case M_META_NOT_SOR: meta = strdup("<rim:RegistryObjectList xmlns:rim=\"" RIM3 "\"/>"); break;
	case M_NO_DOCS:
		meta = strdup("<lcm:SubmitObjectsRequest xmlns:lcm=\"urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0\"/>");
		break;
	default: meta = meta_for("DOC0001.XML", NULL, NULL); break;
	}
	if (m == M_BAD_XHTML)
		index = "<html><body><p>unclosed <b>tags</body>";
	if (m == M_NOT_XHTML)
		index = "<html><body><p>fine XML, no namespace</p></body></html>";
	if (m == M_XHTML_SUBSET)
		index = "<!DOCTYPE html [<!ENTITY x \"y\">]><html xmlns=\"http://www.w3.org/1999/xhtml\">&x;</html>";
	if (m == M_LOWER_CASE) {
		index_name = "index.htm";
		readme_name = "readme.txt";
		meta_name = "IHE_XDM/subset01/metadata.xml";
		doc_name = "IHE_XDM/subset01/doc0001.xml";
	}
	if (m == M_DOTDOT_ENTRY)
		e[n++] = (struct zent){.name = "IHE_XDM/SUBSET01/../../evil.sh", .data = "rm -rf /"};
	if (m == M_ABS_ENTRY)
		e[n++] = (struct zent){.name = "/etc/cron.d/evil", .data = "x"};
	if (m == M_BACKSLASH_ENTRY)
		e[n++] = (struct zent){.name = "IHE_XDM\\SUBSET01\\x.txt", .data = "x"};
	if (m == M_TWO_SUBSETS)
		e[n++] = (struct zent){.name = "IHE_XDM/SUBSET02/METADATA.xml", .data = meta};
	if (m == M_DUP_CASE)
		e[n++] = (struct zent){.name = "index.htm", .data = GOOD_INDEX};
	if (m != M_NO_INDEX)
		e[n++] = (struct zent){.name = index_name, .data = index};
	if (m != M_NO_README)
		e[n++] = (struct zent){.name = readme_name, .data = "readme\r\n"};
	if (m != M_NO_META)
		e[n++] = (struct zent){.name = meta_name, .data = meta};
	e[n++] = (struct zent){.name = doc_name, .data = CDA};
	mkzip(z, e, n);
	free(meta);
}

static void test_read_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rcases / sizeof rcases[0]; i++) {
		const struct rcase *c = &rcases[i];
		struct hie_buf z;
		make_case(c->mut, &z);
		struct hisp_xdm *x = (struct hisp_xdm *)1;
		char why[256] = "stale";
		hie_err_t err = hisp_xdm_read(z.data, z.len, &x, why, sizeof why);
		print_message("%-40s -> %s: %s\n", c->name, hie_errname(err), why);
		assert_int_equal(err, c->err);
		if (c->err) {
			assert_null(x);
			assert_non_null(strstr(why, c->why));
		} else {
			assert_string_equal(why, "");
			assert_int_equal(x->ndocs, 1);
			assert_int_equal(x->docs[0].len, strlen(CDA));
			assert_memory_equal(x->docs[0].data, CDA, strlen(CDA));
			hisp_xdm_free(x);
		}
		hie_buf_free(&z);
	}
}

/* Not a zip, truncated, damaged data (CRC), and too many entries. */
static void test_read_broken_zips(void **state)
{
	(void)state;
	struct hisp_xdm *x = NULL;
	char why[256];
	assert_int_equal(hisp_xdm_read("hello", 5, &x, why, sizeof why), HIE_EPARSE);
	assert_string_equal(why, "not a zip file");
	assert_int_equal(hisp_xdm_read("", 0, &x, why, sizeof why), HIE_EPARSE);

	struct hie_buf z;
	make_case(M_NONE, &z);
	size_t cuts[] = {z.len / 2, z.len - 10, 40};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(hisp_xdm_read(z.data, cuts[i], &x, why, sizeof why), HIE_EPARSE);
		assert_null(x);
		assert_non_null(strstr(why, "not a readable zip archive"));
	}
	/* Flip a byte inside the document's deflated data: CRC or inflate error while reading it. */
	const char *name = "IHE_XDM/SUBSET01/DOC0001.XML";
	char *p = NULL;
	for (size_t i = 0; i + 30 + strlen(name) < z.len; i++)
		if (memcmp(z.data + i, "PK\x03\x04", 4) == 0 && memcmp(z.data + i + 30, name, strlen(name)) == 0) {
			p = z.data + i + 30 + strlen(name) + (unsigned char)z.data[i + 28];
			break;
		}
	assert_non_null(p);
	p[3] ^= 0x55;
	assert_int_equal(hisp_xdm_read(z.data, z.len, &x, why, sizeof why), HIE_EPARSE);
	print_message("damaged: %s\n", why);
	assert_non_null(strstr(why, "DOC0001.XML"));
	hie_buf_free(&z);

	/* HISP_XDM_MAX_FILES + 1 entries: refused before anything is read. */
	size_t n = HISP_XDM_MAX_FILES + 1;
	struct zent *e = calloc(n, sizeof *e);
	char(*names)[32] = calloc(n, sizeof *names);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], "f%zu.txt", i);
		e[i].name = names[i];
	}
	mkzip(&z, e, n);
	assert_int_equal(hisp_xdm_read(z.data, z.len, &x, why, sizeof why), HIE_ETOOBIG);
	assert_non_null(strstr(why, "more than 1000 entries"));
	hie_buf_free(&z);
	free(e);
	free(names);
}

/* A source of `size` zero bytes that never holds them in memory (libzip deflates as it reads). */
struct zeros {
	zip_uint64_t size, pos;
	zip_error_t err;
};

static zip_int64_t zeros_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	struct zeros *z = ud;
	switch (cmd) {
	case ZIP_SOURCE_OPEN: z->pos = 0; return 0;
	case ZIP_SOURCE_READ: {
		zip_uint64_t n = z->size - z->pos < len ? z->size - z->pos : len;
		memset(data, 0, n);
		z->pos += n;
		return (zip_int64_t)n;
	}
	case ZIP_SOURCE_CLOSE: return 0;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = data;
		zip_stat_init(st);
		st->size = z->size;
		st->valid |= ZIP_STAT_SIZE;
		return sizeof *st;
	}
	case ZIP_SOURCE_ERROR: return zip_error_to_data(&z->err, data, len);
	case ZIP_SOURCE_FREE: return 0;
	case ZIP_SOURCE_SUPPORTS:
		return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
						      ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
	default: zip_error_set(&z->err, ZIP_ER_OPNOTSUPP, 0); return -1;
	}
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
	p[3] = (unsigned char)(v >> 24);
}

/*
 * A package whose DOC0001.XML is 300 MB of zeros deflated (~300 KB). As built it declares its true size and is
 * refused on that alone; with its declared size patched to 1000 bytes (local header and central directory
 * agree, so libzip's consistency check passes) the running count must stop the inflation just past 1000 bytes.
 */
static void test_zip_bomb(void **state)
{
	(void)state;
	static struct zeros zs = {.size = 300ull << 20};
	zip_error_init(&zs.err);
	char *meta = meta_for("DOC0001.XML", "", "");
	zip_source_t *src;
	zip_t *za = new_zip(&src);
	const char *names[] = {"INDEX.HTM", "README.TXT", "IHE_XDM/SUBSET01/METADATA.xml"};
	const char *datas[] = {GOOD_INDEX, "readme", meta};
	for (size_t i = 0; i < 3; i++)
		assert_true(zip_file_add(za, names[i], zip_source_buffer(za, datas[i], strlen(datas[i]), 0), 0) >= 0);
	zip_source_t *zsrc = zip_source_function(za, zeros_cb, &zs);
	zip_int64_t bi = zip_file_add(za, "IHE_XDM/SUBSET01/DOC0001.XML", zsrc, 0);
	assert_true(bi >= 0);
	assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)bi, ZIP_CM_DEFLATE, 9), 0);
	assert_int_equal(zip_close(za), 0);
	size_t size = 0;
	unsigned char *z = zip_bytes(src, &size);
	free(meta);
	assert_true(size < (4 << 20));

	struct hisp_xdm *x = NULL;
	char why[256];
	assert_int_equal(hisp_xdm_read(z, (size_t)size, &x, why, sizeof why), HIE_ETOOBIG);
	print_message("declared: %s\n", why);
	assert_non_null(strstr(why, "larger than 64 MiB"));

	/* Patch the uncompressed size in the local header (offset 22) and the central directory (offset 24). */
	const char *bn = "IHE_XDM/SUBSET01/DOC0001.XML";
	size_t bl = strlen(bn), patched = 0;
	for (size_t i = 0; i + 46 + bl <= (size_t)size; i++) {
		if (memcmp(z + i, "PK\x03\x04", 4) == 0 && memcmp(z + i + 30, bn, bl) == 0)
			put32(z + i + 22, 1000), patched++;
		if (memcmp(z + i, "PK\x01\x02", 4) == 0 && memcmp(z + i + 46, bn, bl) == 0)
			put32(z + i + 24, 1000), patched++;
	}
	assert_int_equal(patched, 2);
	assert_int_equal(hisp_xdm_read(z, (size_t)size, &x, why, sizeof why), HIE_ETOOBIG);
	print_message("lying: %s\n", why);
	assert_non_null(strstr(why, "inflates past its declared size 1000"));
	assert_null(x);
	free(z);
}

/* Several big entries, each under the per-entry cap, together over HISP_XDM_MAX_TOTAL (declared sizes). */
static void test_total_cap(void **state)
{
	(void)state;
	static struct zeros zs[5];
	zip_source_t *src;
	zip_t *za = new_zip(&src);
	for (size_t i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof name, "big%zu.bin", i);
		zs[i].size = 60ull << 20;
		zip_error_init(&zs[i].err);
		zip_int64_t bi = zip_file_add(za, name, zip_source_function(za, zeros_cb, &zs[i]), 0);
		assert_true(bi >= 0);
		assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)bi, ZIP_CM_DEFLATE, 1), 0);
	}
	assert_int_equal(zip_close(za), 0);
	size_t size = 0;
	unsigned char *z = zip_bytes(src, &size);
	struct hisp_xdm *x = NULL;
	char why[256];
	assert_int_equal(hisp_xdm_read(z, (size_t)size, &x, why, sizeof why), HIE_ETOOBIG);
	assert_non_null(strstr(why, "more than 256 MiB uncompressed"));
	free(z);
}

/* An AES-encrypted entry (when this libzip can write one) is refused. */
static void test_encrypted(void **state)
{
	(void)state;
	zip_source_t *src;
	zip_t *za = new_zip(&src);
	zip_int64_t i = zip_file_add(za, "INDEX.HTM", zip_source_buffer(za, GOOD_INDEX, strlen(GOOD_INDEX), 0), 0);
	assert_true(i >= 0);
	if (!zip_encryption_method_supported(ZIP_EM_AES_256, 1) ||
	    zip_file_set_encryption(za, (zip_uint64_t)i, ZIP_EM_AES_256, "secret") < 0) {
		zip_discard(za);
		zip_source_free(src);
		print_message("libzip cannot encrypt: skipped\n");
		skip();
		return;
	}
	assert_int_equal(zip_close(za), 0);
	size_t size = 0;
	unsigned char *z = zip_bytes(src, &size);
	struct hisp_xdm *x = NULL;
	char why[256];
	assert_int_equal(hisp_xdm_read(z, (size_t)size, &x, why, sizeof why), HIE_EPARSE);
	assert_non_null(strstr(why, "INDEX.HTM is encrypted"));
	free(z);
}

/* The fuzz seeds double as fixtures: valid*.zip (deflated, stored, ebRIM 2.1, data descriptors as Java's
 * ZipOutputStream writes them) are read, every other seed is refused with a reason. */
static void test_seed_corpus(void **state)
{
	(void)state;
	const char *src = getenv("HIENODE_SRC");
	static const struct {
		const char *file;
		hie_err_t err;
	} seeds[] = {
		{"valid.zip", HIE_OK},           {"valid_stored.zip", HIE_OK},   {"valid_21.zip", HIE_OK},
		{"valid_datadesc.zip", HIE_OK},  {"long_uri.zip", HIE_OK},       {"bad_xhtml.zip", HIE_EPARSE},
		{"traversal.zip", HIE_EPARSE},   {"missing_doc.zip", HIE_EPARSE}, {"hash_mismatch.zip", HIE_EPARSE},
		{"truncated.zip", HIE_EPARSE},   {"not_zip.bin", HIE_EPARSE},
	};
	if (!src) {
		skip();
		return;
	}
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
		char path[1024];
		size_t len;
		snprintf(path, sizeof path, "%s/tests/fuzz/corpus/xdm_fuzz/%s", src, seeds[i].file);
		char *z = hisptest_slurp(path, &len);
		assert_non_null(z);
		struct hisp_xdm *x = NULL;
		char why[256];
		hie_err_t err = hisp_xdm_read(z, len, &x, why, sizeof why);
		print_message("%-20s -> %s %s\n", seeds[i].file, hie_errname(err), why);
		assert_int_equal(err, seeds[i].err);
		if (!err) {
			assert_int_equal(x->ndocs, 1);
			assert_memory_equal(x->docs[0].data, "<ClinicalDocument", 17);
		} else {
			assert_true(why[0] != '\0');
		}
		hisp_xdm_free(x);
		free(z);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha1_vector),
		cmocka_unit_test(test_build_read_roundtrip),
		cmocka_unit_test(test_index_and_readme),
		cmocka_unit_test(test_unzip_tool),
		cmocka_unit_test(test_minimal_metadata),
		cmocka_unit_test(test_build_refusals),
		cmocka_unit_test(test_nist_21_metadata),
		cmocka_unit_test(test_read_refusals),
		cmocka_unit_test(test_read_broken_zips),
		cmocka_unit_test(test_zip_bomb),
		cmocka_unit_test(test_total_cap),
		cmocka_unit_test(test_encrypted),
		cmocka_unit_test(test_seed_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
