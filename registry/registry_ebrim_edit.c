/*
 * registry_ebrim_edit.c — edits of a parsed submission that keep its XML, its model and its views in step.
 *
 * Entry point: registry_ebrim_set_slot (the repository sets hash, size and repositoryUniqueId on the
 * DocumentEntries of ITI-41 before they are registered). The XML is what gets stored and returned by
 * queries, the model and views are what validation and storage read: all three must say the same thing.
 *
 * Views are patched in place rather than rebuilt: a rebuild allocates every view again from the arena, so
 * setting three slots on each of n DocumentEntries would cost n² arena bytes and could hit the arena cap for a
 * large but legitimate submission. Only the view fields that come from an object's own slots are patched
 * (the table below mirrors registry_ebrim_views.c); an edit of a nested object rebuilds the views.
 * Errors: HIE_EINVAL, HIE_ENOMEM, HIE_ETOOBIG (arena cap).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <libxml/tree.h>

#include "registry/registry_ebrim.h"

/* Slot-derived fields of the DocumentEntry view (registry_ebrim_views.c doc_view: first value of the slot). */
static const struct {
	const char *slot;
	size_t off;
} doc_fields[] = {
	{"sourcePatientId", offsetof(struct registry_ebrim_doc, source_patient_id)},
	{"creationTime", offsetof(struct registry_ebrim_doc, creation_time)},
	{"serviceStartTime", offsetof(struct registry_ebrim_doc, service_start_time)},
	{"serviceStopTime", offsetof(struct registry_ebrim_doc, service_stop_time)},
	{"hash", offsetof(struct registry_ebrim_doc, hash)},
	{"size", offsetof(struct registry_ebrim_doc, size)},
	{"languageCode", offsetof(struct registry_ebrim_doc, language_code)},
	{"repositoryUniqueId", offsetof(struct registry_ebrim_doc, repository_unique_id)},
};

static bool is_slot_named(const xmlNode *n, const char *name)
{
	if (!hie_xml_is(n, REGISTRY_NS_RIM, "Slot"))
		return false;
	xmlChar *v = xmlGetNoNsProp(n, BAD_CAST "name");
	bool eq = v && strcmp((const char *)v, name) == 0;
	xmlFree(v);
	return eq;
}

/* <rim:ValueList><rim:Value>value</rim:Value></rim:ValueList> under slot (text escaped by libxml2). */
static hie_err_t add_value_list(xmlNode *slot, xmlNs *ns, const char *value)
{
	xmlNode *vl = xmlNewChild(slot, ns, BAD_CAST "ValueList", NULL);
	if (!vl)
		return HIE_ENOMEM;
	return xmlNewTextChild(vl, ns, BAD_CAST "Value", BAD_CAST value) ? HIE_OK : HIE_ENOMEM;
}

static void free_children(xmlNode *n)
{
	xmlNode *c = n->children;
	while (c) {
		xmlNode *next = c->next;
		xmlUnlinkNode(c);
		xmlFreeNode(c);
		c = next;
	}
}

/* The XML half: replace the first slot named `name`, drop the others, or insert a new one. */
static hie_err_t edit_xml(xmlNode *el, const char *name, const char *value)
{
	xmlNode *first = NULL, *last_slot = NULL, *c = el->children;
	while (c) {
		xmlNode *next = c->next;
		if (is_slot_named(c, name)) {
			if (!first) {
				first = c;
			} else {
				xmlUnlinkNode(c);
				xmlFreeNode(c);
				c = NULL;
			}
		}
		if (c && hie_xml_is(c, REGISTRY_NS_RIM, "Slot"))
			last_slot = c;
		c = next;
	}
	xmlNs *ns = xmlSearchNsByHref(el->doc, el, BAD_CAST REGISTRY_NS_RIM);
	if (first) {
		free_children(first);
		return add_value_list(first, first->ns ? first->ns : ns, value);
	}
	xmlNode *slot = xmlNewDocNode(el->doc, ns, BAD_CAST "Slot", NULL);
	if (!slot)
		return HIE_ENOMEM;
	if (!ns) {
		/* the object's element is rim: by construction, but never emit a slot outside the namespace */
		ns = xmlNewNs(slot, BAD_CAST REGISTRY_NS_RIM, BAD_CAST "rim");
		if (!ns) {
			xmlFreeNode(slot);
			return HIE_ENOMEM;
		}
		xmlSetNs(slot, ns);
	}
	if (!xmlNewProp(slot, BAD_CAST "name", BAD_CAST name)) {
		xmlFreeNode(slot);
		return HIE_ENOMEM;
	}
	hie_err_t err = add_value_list(slot, ns, value);
	if (err) {
		xmlFreeNode(slot);
		return err;
	}
	xmlNode *first_el = hie_xml_child(el, NULL, NULL);
	xmlNode *added = last_slot ? xmlAddNextSibling(last_slot, slot)
			 : first_el ? xmlAddPrevSibling(first_el, slot)
				    : xmlAddChild(el, slot);
	if (!added) {
		xmlFreeNode(slot);
		return HIE_ENOMEM;
	}
	return HIE_OK;
}

/* The model half: a new slots array where the first slot named `name` holds only value (appended if none). */
static hie_err_t edit_model(struct registry_ebrim_submission *s, struct registry_ebrim_obj *o, const char *name,
			    const char *value)
{
	size_t same = 0;
	for (size_t i = 0; i < o->nslots; i++)
		same += o->slots[i].name && strcmp(o->slots[i].name, name) == 0;
	size_t n = same ? o->nslots - same + 1 : o->nslots + 1;
	struct registry_ebrim_slot *slots = registry_ebrim_alloc(s, n, sizeof(*slots));
	const char **values = registry_ebrim_alloc(s, 1, sizeof(*values));
	const char *v = registry_ebrim_strdup(s, value);
	const char *nm = registry_ebrim_strdup(s, name);
	if (!slots || !values || !v || !nm) {
		hie_err_t err = registry_ebrim_arena_error(s);
		return err ? err : HIE_ENOMEM;
	}
	values[0] = v;
	size_t k = 0;
	bool placed = false;
	for (size_t i = 0; i < o->nslots; i++) {
		if (o->slots[i].name && strcmp(o->slots[i].name, name) == 0) {
			if (placed)
				continue;
			slots[k] = o->slots[i];
			slots[k].values = values;
			slots[k].nvalues = 1;
			placed = true;
			k++;
			continue;
		}
		slots[k++] = o->slots[i];
	}
	if (!placed)
		slots[k++] = (struct registry_ebrim_slot){.name = nm, .values = values, .nvalues = 1};
	o->slots = slots;
	o->nslots = k;
	return HIE_OK;
}

static const char *first_value(const struct registry_ebrim_obj *o, const char *name)
{
	const struct registry_ebrim_slot *sl = registry_ebrim_slot(o, name);
	return sl && sl->nvalues ? sl->values[0] : NULL;
}

/* The DocumentEntry view of top-level object o (views are built in object order: binary search by address). */
static struct registry_ebrim_doc *doc_view_of(const struct registry_ebrim_submission *s,
					      const struct registry_ebrim_obj *o)
{
	size_t lo = 0, hi = s->ndocs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uintptr_t)s->docs[mid].obj < (uintptr_t)o)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->ndocs && s->docs[lo].obj == o ? &s->docs[lo] : NULL;
}

static void patch_views(struct registry_ebrim_submission *s, struct registry_ebrim_obj *o, const char *name)
{
	if (o->kind == REGISTRY_EBRIM_EXTRINSIC) {
		struct registry_ebrim_doc *d = doc_view_of(s, o);
		for (size_t i = 0; d && i < sizeof(doc_fields) / sizeof(doc_fields[0]); i++)
			if (strcmp(doc_fields[i].slot, name) == 0)
				*(const char **)((char *)d + doc_fields[i].off) = first_value(o, name);
	} else if (o->kind == REGISTRY_EBRIM_PACKAGE && strcmp(name, "submissionTime") == 0) {
		for (size_t i = 0; i < s->npkgs; i++)
			if (s->pkgs[i].obj == o && s->pkgs[i].kind == REGISTRY_PKG_SUBMISSION_SET)
				s->pkgs[i].submission_time = first_value(o, name);
	} else if (o->kind == REGISTRY_EBRIM_ASSOCIATION && strcmp(name, "SubmissionSetStatus") == 0) {
		for (size_t i = 0; i < s->nassocs; i++)
			if (s->assocs[i].obj == o)
				s->assocs[i].ss_status = first_value(o, name);
	}
}

hie_err_t registry_ebrim_set_slot(struct registry_ebrim_submission *s, struct registry_ebrim_obj *o, const char *name,
				  const char *value)
{
	if (!s || !o || !o->node || !name || !name[0] || !value || o->node->doc != s->doc ||
	    o->kind == REGISTRY_EBRIM_OTHER || o->kind == REGISTRY_EBRIM_OBJECTREF)
		return HIE_EINVAL;
	/* The model first: its arena is what can run out (ETOOBIG); the XML edit fails only without memory. */
	hie_err_t err = edit_model(s, o, name, value);
	if (!err)
		err = edit_xml(o->node, name, value);
	if (err)
		return err;
	bool top = s->nobjs && o >= s->objs && o < s->objs + s->nobjs;
	if (!top)
		return registry_ebrim_build_views(s); /* a nested object's slots feed codes and authors */
	patch_views(s, o, name);
	return HIE_OK;
}
