/*
 * registry_ebrim_edit_test.c — registry_ebrim_set_slot on real NIST submissions: replacing a slot that is
 * there (16102c carries hash/size/repositoryUniqueId), adding one that is not (ReposAcceptanceTest-1113 has
 * none), duplicates collapsed, values escaped in the XML, the model and the DocumentEntry view kept in step,
 * the edited XML re-parsed to the same model, edits of nested objects, bad arguments, and many edits on a
 * large submission staying within the arena.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ebrim_testutil.h"

#define TWO_DE_FD "tests/16102c/submit/two_de_fd.xml"
#define TWO_DOC "tests/ReposAcceptanceTest-1113/SubmitTwoDocs/two_doc.xml"

static char *obj_xml(const struct registry_ebrim_obj *o)
{
	struct hie_buf b;
	hie_buf_init(&b, 1u << 20);
	assert_int_equal(registry_ebrim_obj_xml(o, &b), HIE_OK);
	return hie_buf_steal(&b, NULL);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Serializes the whole request, parses it again: the new model must show the edit too. */
static struct registry_ebrim_submission *reparse(const struct registry_ebrim_submission *s)
{
	struct hie_buf b;
	hie_buf_init(&b, 8u << 20);
	assert_int_equal(hie_xml_serialize_node(s->request, &b), HIE_OK);
	struct registry_ebrim_submission *t = NULL;
	assert_int_equal(tu_parse(hie_buf_str(&b), &t), HIE_OK);
	hie_buf_free(&b);
	return t;
}

static void test_replace_existing(void **state)
{
	(void)state;
	struct registry_ebrim_submission *s = tu_load(TWO_DE_FD);
	if (!s)
		skip();
	struct registry_ebrim_obj *o = s->docs[0].obj;
	size_t nslots = o->nslots;
	assert_string_equal(s->docs[0].hash, "e543712c0e10501972de13a5bfcbe826c49feb75");
	assert_int_equal(registry_ebrim_set_slot(s, o, "hash", "da39a3ee5e6b4b0d3255bfef95601890afd80709"), HIE_OK);
	assert_int_equal(registry_ebrim_set_slot(s, o, "size", "0"), HIE_OK);
	assert_int_equal(o->nslots, nslots);
	assert_string_equal(s->docs[0].hash, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	assert_string_equal(s->docs[0].size, "0");
	assert_string_equal(s->docs[1].hash, "e543712c0e10501972de13a5bfcbe826c49feb75"); /* the other is untouched */
	char *x = obj_xml(o);
	assert_int_equal(count(x, "name=\"hash\""), 1);
	assert_non_null(strstr(x, "da39a3ee5e6b4b0d3255bfef95601890afd80709"));
	assert_null(strstr(x, "e543712c0e10501972de13a5bfcbe826c49feb75"));
	free(x);
	struct registry_ebrim_submission *t = reparse(s);
	assert_string_equal(t->docs[0].hash, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	assert_string_equal(t->docs[0].size, "0");
	assert_int_equal(t->docs[0].obj->nslots, nslots);
	registry_ebrim_free(t);
	registry_ebrim_free(s);
}

static void test_add_missing(void **state)
{
	(void)state;
	struct registry_ebrim_submission *s = tu_load(TWO_DOC);
	if (!s)
		skip();
	struct registry_ebrim_obj *o = s->docs[1].obj;
	size_t nslots = o->nslots;
	assert_null(s->docs[1].hash);
	assert_null(s->docs[1].repository_unique_id);
	assert_int_equal(registry_ebrim_set_slot(s, o, "repositoryUniqueId", "1.2.3"), HIE_OK);
	assert_int_equal(registry_ebrim_set_slot(s, o, "hash", "abc"), HIE_OK);
	assert_int_equal(o->nslots, nslots + 2);
	assert_string_equal(s->docs[1].repository_unique_id, "1.2.3");
	assert_string_equal(s->docs[1].hash, "abc");
	assert_null(s->docs[0].hash);
	const struct registry_ebrim_slot *sl = registry_ebrim_slot(o, "hash");
	assert_non_null(sl);
	assert_int_equal(sl->nvalues, 1);
	/* Schema order: the new slots follow the existing ones, before Name and the classifications. */
	char *x = obj_xml(o);
	const char *added = strstr(x, "name=\"hash\"");
	assert_non_null(added);
	assert_true(strstr(x, "name=\"sourcePatientInfo\"") < added);
	assert_true(added < strstr(x, "<rim:Name"));
	assert_true(added < strstr(x, "<rim:Classification"));
	free(x);
	struct registry_ebrim_submission *t = reparse(s);
	assert_string_equal(t->docs[1].hash, "abc");
	assert_string_equal(t->docs[1].repository_unique_id, "1.2.3");
	assert_int_equal(t->docs[1].obj->nslots, nslots + 2);
	registry_ebrim_free(t);
	registry_ebrim_free(s);
}

static void test_duplicates_collapse_and_escape(void **state)
{
	(void)state;
	const char *xml =
		"<lcm:SubmitObjectsRequest xmlns:lcm=\"" REGISTRY_NS_LCM "\"><rim:RegistryObjectList xmlns:rim=\""
		REGISTRY_NS_RIM "\"><rim:ExtrinsicObject id=\"d\" mimeType=\"text/plain\">"
		"<rim:Slot name=\"size\"><rim:ValueList><rim:Value>1</rim:Value><rim:Value>2</rim:Value></rim:ValueList>"
		"</rim:Slot><rim:Slot name=\"x\"><rim:ValueList><rim:Value>k</rim:Value></rim:ValueList></rim:Slot>"
		"<rim:Slot name=\"size\"><rim:ValueList><rim:Value>3</rim:Value></rim:ValueList></rim:Slot>"
		"</rim:ExtrinsicObject></rim:RegistryObjectList></lcm:SubmitObjectsRequest>";
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(xml, &s), HIE_OK);
	struct registry_ebrim_obj *o = &s->objs[0];
	assert_int_equal(o->nslots, 3);
	assert_int_equal(registry_ebrim_set_slot(s, o, "size", "<&\">"), HIE_OK);
	assert_int_equal(o->nslots, 2);
	assert_string_equal(o->slots[0].name, "size");
	assert_string_equal(o->slots[0].values[0], "<&\">");
	assert_int_equal(o->slots[0].nvalues, 1);
	assert_string_equal(o->slots[1].name, "x");
	assert_string_equal(s->docs[0].size, "<&\">");
	char *x = obj_xml(o);
	assert_int_equal(count(x, "name=\"size\""), 1);
	assert_non_null(strstr(x, "&lt;&amp;"));
	free(x);
	struct registry_ebrim_submission *t = reparse(s);
	assert_int_equal(t->objs[0].nslots, 2);
	assert_string_equal(t->docs[0].size, "<&\">");
	registry_ebrim_free(t);
	registry_ebrim_free(s);
}

static void test_nested_object_rebuilds_views(void **state)
{
	(void)state;
	struct registry_ebrim_submission *s = tu_load(TWO_DE_FD);
	if (!s)
		skip();
	struct registry_ebrim_obj *cls = (struct registry_ebrim_obj *)s->docs[0].class_code->cls;
	assert_int_equal(registry_ebrim_set_slot(s, cls, "codingScheme", "9.9.9"), HIE_OK);
	assert_string_equal(s->docs[0].class_code->scheme, "9.9.9");
	registry_ebrim_free(s);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct registry_ebrim_submission *s = tu_load(TWO_DOC);
	if (!s)
		skip();
	struct registry_ebrim_obj *o = s->docs[0].obj;
	assert_int_equal(registry_ebrim_set_slot(s, o, "", "v"), HIE_EINVAL);
	assert_int_equal(registry_ebrim_set_slot(s, o, NULL, "v"), HIE_EINVAL);
	assert_int_equal(registry_ebrim_set_slot(s, o, "hash", NULL), HIE_EINVAL);
	assert_int_equal(registry_ebrim_set_slot(NULL, o, "hash", "v"), HIE_EINVAL);
	struct registry_ebrim_obj fake = {.kind = REGISTRY_EBRIM_EXTRINSIC};
	assert_int_equal(registry_ebrim_set_slot(s, &fake, "hash", "v"), HIE_EINVAL);
	registry_ebrim_free(s);
}

/* 2000 DocumentEntries, three slots each: in-place view updates keep this linear in arena use. */
static void test_many_edits_stay_in_arena(void **state)
{
	(void)state;
	struct hie_buf b;
	hie_buf_init(&b, 16u << 20);
	hie_buf_addstr(&b, "<lcm:SubmitObjectsRequest xmlns:lcm=\"" REGISTRY_NS_LCM "\"><rim:RegistryObjectList "
			   "xmlns:rim=\"" REGISTRY_NS_RIM "\">");
	for (int i = 0; i < 2000; i++)
		hie_buf_addf(&b,
			     "<rim:ExtrinsicObject id=\"d%d\" mimeType=\"text/plain\"><rim:Classification id=\"c%d\" "
			     "classificationScheme=\"" REGISTRY_UUID_DE_CLASSCODE "\" classifiedObject=\"d%d\" "
			     "nodeRepresentation=\"X\"/></rim:ExtrinsicObject>",
			     i, i, i);
	hie_buf_addstr(&b, "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>");
	struct registry_ebrim_submission *s = NULL;
	assert_int_equal(tu_parse(hie_buf_str(&b), &s), HIE_OK);
	hie_buf_free(&b);
	for (size_t i = 0; i < s->ndocs; i++) {
		struct registry_ebrim_obj *o = s->docs[i].obj;
		assert_int_equal(registry_ebrim_set_slot(s, o, "hash", "0123456789012345678901234567890123456789"),
				 HIE_OK);
		assert_int_equal(registry_ebrim_set_slot(s, o, "size", "12345"), HIE_OK);
		assert_int_equal(registry_ebrim_set_slot(s, o, "repositoryUniqueId", "1.2.3.4"), HIE_OK);
	}
	assert_string_equal(s->docs[1999].size, "12345");
	assert_string_equal(s->docs[0].repository_unique_id, "1.2.3.4");
	registry_ebrim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replace_existing),
		cmocka_unit_test(test_add_missing),
		cmocka_unit_test(test_duplicates_collapse_and_escape),
		cmocka_unit_test(test_nested_object_rebuilds_views),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_many_edits_stay_in_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
