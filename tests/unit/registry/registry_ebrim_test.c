/*
 * registry_ebrim_test.c — parsing real NIST testkit submissions (ebRIM 3.0) into the model, the
 * DocumentEntry/SubmissionSet/Folder/Association views, exact round-trip of every object, id assignment,
 * and hostile requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ebrim_testutil.h"

#define TWO_DE_FD "tests/16102c/submit/two_de_fd.xml"

static void test_views_two_de_fd(void **state)
{
	(void)state;
	struct registry_ebrim_submission *s = tu_load(TWO_DE_FD);
	if (!s)
		skip();
	assert_int_equal(s->ndocs, 2);
	assert_int_equal(s->npkgs, 2);
	assert_int_equal(s->nss, 1);
	assert_int_equal(s->nassocs, 4);
	const struct registry_ebrim_doc *d = &s->docs[0];
	assert_string_equal(d->obj->id, "Document01");
	assert_false(d->on_demand);
	assert_string_equal(d->unique_id, "1.2.3.4.1");
	assert_string_equal(d->patient_id, TU_PID_TEXT);
	assert_string_equal(d->source_patient_id, "LS1^^^&1.2.4&ISO");
	assert_string_equal(d->creation_time, "20051224");
	assert_string_equal(d->service_start_time, "200412230800");
	assert_string_equal(d->service_stop_time, "200412230801");
	assert_string_equal(d->hash, "e543712c0e10501972de13a5bfcbe826c49feb75");
	assert_string_equal(d->size, "4");
	assert_string_equal(d->language_code, "en-us");
	assert_string_equal(d->repository_unique_id, "1.19.6.24.109.42.1");
	assert_string_equal(d->obj->mime_type, "text/plain");
	assert_string_equal(d->class_code->code, "REPORTS");
	assert_string_equal(d->class_code->scheme, "1.3.6.1.4.1.19376.1.2.6.1");
	assert_string_equal(d->class_code->display, "Reports");
	assert_string_equal(d->type_code->code, "11369-6");
	assert_string_equal(d->format_code->code, "urn:ihe:rad:TEXT");
	assert_string_equal(d->practice_code->code, "Practice-A");
	assert_string_equal(d->hcft_code->code, "225728007");
	assert_int_equal(d->nconf_codes, 1);
	assert_string_equal(d->conf_codes[0].code, "V");
	assert_string_equal(d->conf_codes[0].scheme, "2.16.840.1.113883.5.25");
	assert_int_equal(d->nevent_codes, 2);
	assert_string_equal(d->event_codes[0].code, "urn:connectathon:bppc:foundational:policy");
	assert_string_equal(d->event_codes[1].code, "urn:connectathon:policy:full-access");
	assert_int_equal(d->nauthor_persons, 2);
	assert_string_equal(d->author_persons[0], "^Smitty^Gerald^^^");
	assert_string_equal(d->author_persons[1], "^Dopplemeyer^Sherry^^^");
	/* Generic fields: slots in order with all values, names, nested objects. */
	assert_string_equal(d->obj->slots[0].name, "creationTime");
	const struct registry_ebrim_slot *spi = registry_ebrim_slot(d->obj, "sourcePatientInfo");
	assert_non_null(spi);
	assert_int_equal(spi->nvalues, 5);
	assert_string_equal(spi->values[4], "PID-11|100 Main St^^Metropolis^Il^44130^USA");
	assert_int_equal(d->obj->nname, 1);
	assert_string_equal(d->obj->name[0].value, "Test 16104 - Document 02");
	assert_int_equal(d->obj->nclassifications, 10);
	assert_int_equal(d->obj->nextids, 2);
	assert_string_equal(d->obj->extids[0].registry_object, "Document01");

	const struct registry_ebrim_pkg *ss = s->ss;
	assert_non_null(ss);
	assert_int_equal(ss->kind, REGISTRY_PKG_SUBMISSION_SET);
	assert_string_equal(ss->obj->id, "SubmissionSet01");
	assert_string_equal(ss->unique_id, "1.2.3.4.3");
	assert_string_equal(ss->patient_id, TU_PID_TEXT);
	assert_string_equal(ss->source_id, "1.3.6.1.4.1.21367.2008.1.2.178");
	assert_string_equal(ss->submission_time, "20041225235050");
	assert_int_equal(ss->ncodes, 1);
	assert_string_equal(ss->codes[0].code, "225728007");
	assert_int_equal(ss->nauthor_persons, 1);
	assert_string_equal(ss->obj->description[0].value, "Annual physical");

	const struct registry_ebrim_pkg *f = &s->pkgs[1];
	assert_int_equal(f->kind, REGISTRY_PKG_FOLDER);
	assert_string_equal(f->unique_id, "1.2.3.4.4");
	assert_string_equal(f->patient_id, TU_PID_TEXT);
	assert_int_equal(f->ncodes, 1);
	assert_string_equal(f->codes[0].code, "Referrals");

	const struct registry_ebrim_assoc *a = &s->assocs[0];
	assert_string_equal(a->obj->assoc_type, "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember");
	assert_string_equal(registry_ebrim_assoc_short(a->obj->assoc_type), "HasMember");
	assert_string_equal(a->obj->source, "SubmissionSet01");
	assert_string_equal(a->obj->target, "Document01");
	assert_string_equal(a->ss_status, "Original");
	assert_null(s->assocs[2].ss_status);
	registry_ebrim_free(s);
}

/* Deep equality of two models of the same object. */
static void eq_str(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void eq_lstrings(const struct registry_ebrim_lstring *a, size_t na, const struct registry_ebrim_lstring *b,
			size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		eq_str(a[i].lang, b[i].lang);
		eq_str(a[i].charset, b[i].charset);
		eq_str(a[i].value, b[i].value);
	}
}

static void eq_obj(const struct registry_ebrim_obj *a, const struct registry_ebrim_obj *b)
{
	assert_int_equal(a->kind, b->kind);
	const char *const fa[] = { a->id, a->lid, a->home, a->status, a->object_type, a->version_name,
				   a->version_comment, a->mime_type, a->is_opaque, a->assoc_type, a->source, a->target,
				   a->classified_object, a->scheme, a->node_id, a->node_repr, a->registry_object,
				   a->id_scheme, a->value };
	const char *const fb[] = { b->id, b->lid, b->home, b->status, b->object_type, b->version_name,
				   b->version_comment, b->mime_type, b->is_opaque, b->assoc_type, b->source, b->target,
				   b->classified_object, b->scheme, b->node_id, b->node_repr, b->registry_object,
				   b->id_scheme, b->value };
	for (size_t i = 0; i < sizeof(fa) / sizeof(fa[0]); i++)
		eq_str(fa[i], fb[i]);
	eq_lstrings(a->name, a->nname, b->name, b->nname);
	eq_lstrings(a->description, a->ndescription, b->description, b->ndescription);
	assert_int_equal(a->nslots, b->nslots);
	for (size_t i = 0; i < a->nslots; i++) {
		eq_str(a->slots[i].name, b->slots[i].name);
		eq_str(a->slots[i].slot_type, b->slots[i].slot_type);
		assert_int_equal(a->slots[i].nvalues, b->slots[i].nvalues);
		for (size_t k = 0; k < a->slots[i].nvalues; k++)
			assert_string_equal(a->slots[i].values[k], b->slots[i].values[k]);
	}
	assert_int_equal(a->nclassifications, b->nclassifications);
	for (size_t i = 0; i < a->nclassifications; i++)
		eq_obj(&a->classifications[i], &b->classifications[i]);
	assert_int_equal(a->nextids, b->nextids);
	for (size_t i = 0; i < a->nextids; i++)
		eq_obj(&a->extids[i], &b->extids[i]);
}

/*
 * Each object's stored XML, put back into a request on its own, parses to the same model, and serializes
 * to the same text again (the stored form is a fixed point).
 */
static void roundtrip(const struct registry_ebrim_submission *s)
{
	for (size_t i = 0; i < s->nobjs; i++) {
		struct hie_buf x1, req, x2;
		hie_buf_init(&x1, 4u << 20);
		hie_buf_init(&req, 4u << 20);
		hie_buf_init(&x2, 4u << 20);
		assert_int_equal(registry_ebrim_obj_xml(&s->objs[i], &x1), HIE_OK);
		hie_buf_addf(&req, "<lcm:SubmitObjectsRequest xmlns:lcm=\"%s\"><rim:RegistryObjectList xmlns:rim=\"%s\">%s"
				   "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>",
			     REGISTRY_NS_LCM, REGISTRY_NS_RIM, hie_buf_str(&x1));
		struct registry_ebrim_submission *t = NULL;
		assert_int_equal(tu_parse(hie_buf_str(&req), &t), HIE_OK);
		assert_int_equal(t->nobjs, 1);
		eq_obj(&s->objs[i], &t->objs[0]);
		assert_int_equal(registry_ebrim_obj_xml(&t->objs[0], &x2), HIE_OK);
		assert_string_equal(hie_buf_str(&x1), hie_buf_str(&x2));
		registry_ebrim_free(t);
		hie_buf_free(&x1);
		hie_buf_free(&req);
		hie_buf_free(&x2);
	}
}

static const char *const corpus_files[] = {
	TWO_DE_FD,
	"tests/16103c/submit/two_de_fd.xml",
	"tests/12375/submit/single_doc.xml", /* inside xdsb:ProvideAndRegisterDocumentSetRequest */
	"tests/15805/Register_Snapshot/single_stable_doc.xml",
	"tests/12319/deprecate_version_1/deprecate.xml",
	"tests/ReposAcceptanceTest-1113/SubmitFolderwDoc/fol_doc.xml",
	"tests/ReposAcceptanceTest-1113/SubmitFolder/single_fol.xml",
	"tests/ReposAcceptanceTest-1113/SubmitTwoDocs/two_doc.xml",
	"testdata-registry/uid-test/submit/metadata.xml",
	"tests/40001/extra_metadata/original.xml",
	"tests/40001/author/original.xml",
	"tests/16101/submit/single_doc.xml",
};

static void test_corpus_roundtrip(void **state)
{
	(void)state;
	size_t parsed = 0;
	for (size_t i = 0; i < sizeof(corpus_files) / sizeof(corpus_files[0]); i++) {
		struct registry_ebrim_submission *s = tu_load(corpus_files[i]);
		if (!s)
			continue;
		assert_true(s->nobjs > 0);
		roundtrip(s);
		registry_ebrim_free(s);
		parsed++;
	}
	if (!parsed)
		skip();
	assert_true(parsed >= 10);
}

/* Extra metadata (unknown slots, foreign elements, VersionInfo, lid/status/home, lang) is kept exactly. */
static const char extra_xml[] =
	"<lcm:SubmitObjectsRequest xmlns:lcm='urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0'>"
	"<rim:RegistryObjectList xmlns:rim='urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0'>"
	"<rim:ExtrinsicObject id='D' lid='urn:uuid:11111111-2222-3333-4444-555555555555' home='urn:oid:1.2'"
	" status='urn:oasis:names:tc:ebxml-regrep:StatusType:Approved' isOpaque='false' mimeType='text/xml'"
	" objectType='urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1'>"
	"<rim:Slot name='urn:example:extra' slotType='x'><rim:ValueList><rim:Value>a &amp; b</rim:Value>"
	"<rim:Value/><rim:Value>  c  </rim:Value></rim:ValueList></rim:Slot>"
	"<rim:Name><rim:LocalizedString xml:lang='fr-FR' charset='UTF-8' value='Caf\xc3\xa9'/>"
	"<rim:LocalizedString value='Coffee'/></rim:Name>"
	"<rim:Description><rim:LocalizedString value='&lt;d&gt;'/></rim:Description>"
	"<rim:VersionInfo versionName='2' comment='c'/>"
	"<x:Extra xmlns:x='urn:example:x' a='1'>keep me</x:Extra>"
	"<rim:Classification id='C' classifiedObject='D' classificationScheme='urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a'"
	" nodeRepresentation='N'/>"
	"</rim:ExtrinsicObject>"
	"<rim:ObjectRef id='urn:uuid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' home='urn:oid:9'/>"
	"<x:Unknown xmlns:x='urn:example:x'/>"
	"</rim:RegistryObjectList></lcm:SubmitObjectsRequest>";

static void test_extra_metadata_kept(void **state)
{
	(void)state;
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(extra_xml, &s), HIE_OK);
	assert_int_equal(s->nobjs, 3);
	const struct registry_ebrim_obj *o = &s->objs[0];
	assert_string_equal(o->lid, "urn:uuid:11111111-2222-3333-4444-555555555555");
	assert_string_equal(o->home, "urn:oid:1.2");
	assert_string_equal(o->status, "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved");
	assert_string_equal(o->is_opaque, "false");
	assert_string_equal(o->version_name, "2");
	assert_string_equal(o->version_comment, "c");
	assert_int_equal(o->nname, 2);
	assert_string_equal(o->name[0].lang, "fr-FR");
	assert_string_equal(o->name[0].charset, "UTF-8");
	assert_string_equal(o->name[0].value, "Caf\xc3\xa9");
	assert_null(o->name[1].lang);
	assert_string_equal(o->description[0].value, "<d>");
	assert_int_equal(o->slots[0].nvalues, 3);
	assert_string_equal(o->slots[0].slot_type, "x");
	assert_string_equal(o->slots[0].values[0], "a & b");
	assert_string_equal(o->slots[0].values[1], "");
	assert_string_equal(o->slots[0].values[2], "  c  ");
	assert_int_equal(s->objs[1].kind, REGISTRY_EBRIM_OBJECTREF);
	assert_string_equal(s->objs[1].home, "urn:oid:9");
	assert_int_equal(s->objs[2].kind, REGISTRY_EBRIM_OTHER);
	struct hie_buf b;
	hie_buf_init(&b, 1u << 20);
	assert_int_equal(registry_ebrim_obj_xml(o, &b), HIE_OK);
	assert_non_null(strstr(hie_buf_str(&b), "keep me"));
	assert_non_null(strstr(hie_buf_str(&b), "urn:example:x"));
	assert_non_null(strstr(hie_buf_str(&b), "xml:lang=\"fr-FR\""));
	hie_buf_free(&b);
	roundtrip(s);
	registry_ebrim_free(s);
}

/* A request inside a SOAP envelope whose namespaces are declared on the envelope, source freed first. */
static void test_soap_wrapped_namespaces(void **state)
{
	(void)state;
	const char *xml =
		"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' xmlns:lcm='" REGISTRY_NS_LCM "'"
		" xmlns:rim='" REGISTRY_NS_RIM "'><s:Body><lcm:SubmitObjectsRequest><rim:RegistryObjectList>"
		"<rim:Association id='A' associationType='urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember'"
		" sourceObject='S' targetObject='D'/></rim:RegistryObjectList></lcm:SubmitObjectsRequest>"
		"</s:Body></s:Envelope>";
	xmlDoc *doc = NULL;
	assert_int_equal(hie_xml_parse(xml, strlen(xml), NULL, &doc, NULL), HIE_OK);
	xmlNode *body = hie_xml_child(xmlDocGetRootElement(doc), "http://www.w3.org/2003/05/soap-envelope", "Body");
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(registry_ebrim_parse(hie_xml_child(body, NULL, NULL), &s), HIE_OK);
	xmlFreeDoc(doc);
	struct hie_buf b;
	hie_buf_init(&b, 1u << 20);
	assert_int_equal(registry_ebrim_obj_xml(&s->objs[0], &b), HIE_OK);
	assert_non_null(strstr(hie_buf_str(&b), REGISTRY_NS_RIM));
	xmlDoc *again = NULL;
	assert_int_equal(hie_xml_parse(b.data, b.len, NULL, &again, NULL), HIE_OK);
	assert_true(hie_xml_is(xmlDocGetRootElement(again), REGISTRY_NS_RIM, "Association"));
	xmlFreeDoc(again);
	hie_buf_free(&b);
	registry_ebrim_free(s);
}

static hie_err_t seq_gen(char *out, size_t outlen, void *arg)
{
	unsigned *n = arg;
	snprintf(out, outlen, "urn:uuid:00000000-0000-4000-8000-%012u", ++*n);
	return HIE_OK;
}

static hie_err_t bad_gen(char *out, size_t outlen, void *arg)
{
	(void)arg;
	snprintf(out, outlen, "Document99");
	return HIE_OK;
}

static void test_assign_ids(void **state)
{
	(void)state;
	struct registry_ebrim_submission *s = tu_load(TWO_DE_FD);
	if (!s)
		skip();
	unsigned n = 0;
	size_t assigned = 0;
	assert_int_equal(registry_ebrim_assign_ids(s, seq_gen, &n, &assigned), HIE_OK);
	/* Every object had a symbolic id (or none): DEs, packages, associations and all nested objects. */
	assert_int_equal(assigned, n);
	assert_true(assigned > 40);
	for (size_t i = 0; i < s->nobjs; i++)
		assert_true(registry_ebrim_is_uuid(s->objs[i].id));
	const char *d1 = s->docs[0].obj->id, *d2 = s->docs[1].obj->id;
	assert_true(registry_ebrim_is_uuid(d1));
	assert_string_not_equal(d1, d2);
	assert_non_null(s->ss);
	const char *ss = s->ss->obj->id;
	assert_string_equal(s->assocs[0].obj->source, ss);
	assert_string_equal(s->assocs[0].obj->target, d1);
	assert_string_equal(s->assocs[1].obj->target, d2);
	assert_string_equal(s->assocs[2].obj->source, s->pkgs[1].obj->id);
	for (size_t i = 0; i < s->docs[0].obj->nclassifications; i++) {
		assert_string_equal(s->docs[0].obj->classifications[i].classified_object, d1);
		assert_true(registry_ebrim_is_uuid(s->docs[0].obj->classifications[i].id));
	}
	assert_string_equal(s->docs[0].obj->extids[0].registry_object, d1);
	/* The views still work after the rebuild. */
	assert_string_equal(s->docs[0].unique_id, "1.2.3.4.1");
	assert_string_equal(s->ss->unique_id, "1.2.3.4.3");
	assert_int_equal(s->pkgs[1].kind, REGISTRY_PKG_FOLDER);
	/* The XML says the same. */
	struct hie_buf b;
	hie_buf_init(&b, 4u << 20);
	for (size_t i = 0; i < s->nobjs; i++)
		assert_int_equal(registry_ebrim_obj_xml(&s->objs[i], &b), HIE_OK);
	const char *x = hie_buf_str(&b);
	assert_null(strstr(x, "\"Document01\""));
	assert_null(strstr(x, "\"SubmissionSet01\""));
	assert_null(strstr(x, "\"Folder\""));
	char want[128];
	snprintf(want, sizeof(want), "sourceObject=\"%s\"", ss);
	assert_non_null(strstr(x, want));
	hie_buf_free(&b);
	roundtrip(s);
	/* Second pass: nothing symbolic is left. */
	assert_int_equal(registry_ebrim_assign_ids(s, seq_gen, &n, &assigned), HIE_OK);
	assert_int_equal(assigned, 0);
	registry_ebrim_free(s);
}

static void test_assign_ids_edge(void **state)
{
	(void)state;
	const char *xml =
		"<lcm:SubmitObjectsRequest xmlns:lcm='" REGISTRY_NS_LCM "'><rim:RegistryObjectList xmlns:rim='" REGISTRY_NS_RIM "'>"
		"<rim:RegistryPackage id='urn:uuid:12345678-1234-1234-1234-123456789abc'/>"
		"<rim:ExtrinsicObject id='X'/><rim:ExtrinsicObject id='X'/><rim:ExtrinsicObject/>"
		"<rim:Association id='A' sourceObject='urn:uuid:12345678-1234-1234-1234-123456789abc' targetObject='X'/>"
		"<rim:Association id='B' sourceObject='Missing' targetObject='X'/>"
		"</rim:RegistryObjectList></lcm:SubmitObjectsRequest>";
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(xml, &s), HIE_OK);
	unsigned n = 0;
	size_t assigned = 0;
	assert_int_equal(registry_ebrim_assign_ids(s, seq_gen, &n, &assigned), HIE_OK);
	assert_int_equal(assigned, 5);
	assert_string_equal(s->objs[0].id, "urn:uuid:12345678-1234-1234-1234-123456789abc"); /* kept */
	assert_true(registry_ebrim_is_uuid(s->objs[3].id));                                   /* had none */
	assert_string_equal(s->objs[4].target, s->objs[1].id); /* duplicated id: the first object wins */
	assert_string_equal(s->objs[4].source, "urn:uuid:12345678-1234-1234-1234-123456789abc");
	assert_string_equal(s->objs[5].source, "Missing"); /* dangling: left for validation */
	registry_ebrim_free(s);

	assert_int_equal(tu_parse(xml, &s), HIE_OK);
	assert_int_equal(registry_ebrim_assign_ids(s, bad_gen, NULL, NULL), HIE_EINVAL);
	registry_ebrim_free(s);
}

static void test_hostile(void **state)
{
	(void)state;
	static const struct {
		const char *name, *xml;
		hie_err_t want;
	} cases[] = {
		{ "not-a-request", "<a xmlns='" REGISTRY_NS_LCM "'/>", HIE_EPARSE },
		{ "ebrim-2.1", "<rs:SubmitObjectsRequest xmlns:rs='urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1'>"
			       "<rim:LeafRegistryObjectList xmlns:rim='urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1'/>"
			       "</rs:SubmitObjectsRequest>", HIE_EPARSE },
		{ "no-list", "<lcm:SubmitObjectsRequest xmlns:lcm='" REGISTRY_NS_LCM "'/>", HIE_EPARSE },
		{ "list-wrong-ns", "<lcm:SubmitObjectsRequest xmlns:lcm='" REGISTRY_NS_LCM "'><RegistryObjectList/>"
				   "</lcm:SubmitObjectsRequest>", HIE_EPARSE },
		{ "empty-list", "<lcm:SubmitObjectsRequest xmlns:lcm='" REGISTRY_NS_LCM "'><r:RegistryObjectList "
				"xmlns:r='" REGISTRY_NS_RIM "'/></lcm:SubmitObjectsRequest>", HIE_OK },
		{ "attrs-missing", "<lcm:SubmitObjectsRequest xmlns:lcm='" REGISTRY_NS_LCM "'><r:RegistryObjectList "
				   "xmlns:r='" REGISTRY_NS_RIM "'><r:Association/><r:Classification/><r:Slot/>"
				   "<r:ExtrinsicObject><r:Slot><r:ValueList/></r:Slot><r:Name/></r:ExtrinsicObject>"
				   "</r:RegistryObjectList></lcm:SubmitObjectsRequest>", HIE_OK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct registry_ebrim_submission *s = NULL;
		hie_err_t err = tu_parse(cases[i].xml, &s);
		if (err != cases[i].want)
			fail_msg("%s: got %s", cases[i].name, hie_errname(err));
		registry_ebrim_free(s);
	}
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(registry_ebrim_parse(NULL, &s), HIE_EPARSE);
	assert_null(s);
}

static void test_object_cap(void **state)
{
	(void)state;
	struct hie_buf b;
	hie_buf_init(&b, 8u << 20);
	hie_buf_addf(&b, "<lcm:SubmitObjectsRequest xmlns:lcm='%s'><r:RegistryObjectList xmlns:r='%s'>", REGISTRY_NS_LCM,
		     REGISTRY_NS_RIM);
	for (unsigned i = 0; i <= REGISTRY_EBRIM_MAX_OBJECTS; i++)
		hie_buf_addstr(&b, "<r:ObjectRef/>");
	hie_buf_addstr(&b, "</r:RegistryObjectList></lcm:SubmitObjectsRequest>");
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(hie_buf_str(&b), &s), HIE_ETOOBIG);
	assert_null(s);
	hie_buf_free(&b);
}

static void test_is_uuid(void **state)
{
	(void)state;
	assert_true(registry_ebrim_is_uuid("urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"));
	assert_true(registry_ebrim_is_uuid("urn:uuid:7EDCA82F-054D-47F2-A032-9B2A5B5186C1"));
	assert_false(registry_ebrim_is_uuid("urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c"));
	assert_false(registry_ebrim_is_uuid("urn:uuid:7edca82f0054d-47f2-a032-9b2a5b5186c1"));
	assert_false(registry_ebrim_is_uuid("urn:uuid:7edca82g-054d-47f2-a032-9b2a5b5186c1"));
	assert_false(registry_ebrim_is_uuid("Document01"));
	assert_false(registry_ebrim_is_uuid(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_views_two_de_fd),
		cmocka_unit_test(test_corpus_roundtrip),
		cmocka_unit_test(test_extra_metadata_kept),
		cmocka_unit_test(test_soap_wrapped_namespaces),
		cmocka_unit_test(test_assign_ids),
		cmocka_unit_test(test_assign_ids_edge),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_object_cap),
		cmocka_unit_test(test_is_uuid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
