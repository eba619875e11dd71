/*
 * registry_ebrim.c — parse an lcm:SubmitObjectsRequest (ebRIM 3.0) into the generic object tree.
 *
 * Entry points: registry_ebrim_parse, registry_ebrim_free, registry_ebrim_obj_xml, registry_ebrim_slot,
 * registry_ebrim_is_uuid, registry_ebrim_assoc_short. The XDS views are built by registry_ebrim_views.c and
 * ids assigned by registry_ebrim_ids.c.
 *
 * All strings and arrays of a submission live in one arena (freed at once); the arena is capped, and so is
 * the number of objects and of values per slot, on top of the caps core_xml applied when parsing the bytes.
 * Errors: HIE_EPARSE (not a SubmitObjectsRequest / no RegistryObjectList), HIE_ETOOBIG, HIE_ENOMEM.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "registry/registry_ebrim.h"

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, size;
	_Alignas(16) unsigned char data[];
};

struct registry_ebrim_arena {
	struct arena_chunk *head;
	size_t total;
	bool failed;   /* an allocation failed: parse reports it once at the end */
	hie_err_t err;
};

#define ARENA_CHUNK (64u * 1024u)

static void *arena_alloc(struct registry_ebrim_submission *s, size_t n)
{
	struct registry_ebrim_arena *a = s->arena;
	n = (n + 15u) & ~(size_t)15u;
	if (n == 0)
		n = 16;
	struct arena_chunk *c = a->head;
	if (!c || c->size - c->used < n) {
		size_t sz = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		if (a->total + sz > REGISTRY_EBRIM_MAX_ARENA) {
			a->failed = true;
			a->err = HIE_ETOOBIG;
			return NULL;
		}
		c = malloc(sizeof(*c) + sz);
		if (!c) {
			a->failed = true;
			a->err = HIE_ENOMEM;
			return NULL;
		}
		c->used = 0;
		c->size = sz;
		c->next = a->head;
		a->head = c;
		a->total += sz;
	}
	void *p = c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

static void *arena_array(struct registry_ebrim_submission *s, size_t n, size_t size)
{
	if (n == 0)
		return NULL;
	if (n > SIZE_MAX / size) {
		s->arena->failed = true;
		s->arena->err = HIE_ETOOBIG;
		return NULL;
	}
	return arena_alloc(s, n * size);
}

const char *registry_ebrim_strdup(struct registry_ebrim_submission *s, const char *str)
{
	if (!str)
		return NULL;
	size_t n = strlen(str);
	char *p = arena_alloc(s, n + 1);
	if (!p)
		return NULL;
	memcpy(p, str, n + 1);
	return p;
}

/* Attribute (unqualified, or in ns) copied into the arena; NULL when absent. */
static const char *attr(struct registry_ebrim_submission *s, const xmlNode *n, const char *ns, const char *name)
{
	xmlChar *v = ns ? xmlGetNsProp(n, BAD_CAST name, BAD_CAST ns) : xmlGetNoNsProp(n, BAD_CAST name);
	if (!v)
		return NULL;
	const char *r = registry_ebrim_strdup(s, (const char *)v);
	xmlFree(v);
	return r;
}

static const char *text(struct registry_ebrim_submission *s, const xmlNode *n)
{
	xmlChar *v = xmlNodeGetContent(n);
	const char *r = registry_ebrim_strdup(s, v ? (const char *)v : "");
	xmlFree(v);
	return r;
}

static size_t count_children(const xmlNode *parent, const char *local)
{
	size_t k = 0;
	const xmlNode *c;
	HIE_XML_FOREACH(c, parent, REGISTRY_NS_RIM, local)
		k++;
	return k;
}

/* Name or Description: the LocalizedStrings in order. */
static void parse_lstrings(struct registry_ebrim_submission *s, const xmlNode *el,
			   struct registry_ebrim_lstring **out, size_t *nout)
{
	size_t n = count_children(el, "LocalizedString");
	*out = arena_array(s, n, sizeof(**out));
	*nout = *out ? n : 0;
	size_t i = 0;
	const xmlNode *c;
	HIE_XML_FOREACH(c, el, REGISTRY_NS_RIM, "LocalizedString") {
		if (!*out)
			break;
		(*out)[i].lang = attr(s, c, REGISTRY_NS_XML, "lang");
		(*out)[i].charset = attr(s, c, NULL, "charset");
		const char *v = attr(s, c, NULL, "value");
		(*out)[i].value = v ? v : "";
		i++;
	}
}

static hie_err_t parse_slot(struct registry_ebrim_submission *s, const xmlNode *el, struct registry_ebrim_slot *sl)
{
	sl->name = attr(s, el, NULL, "name");
	sl->slot_type = attr(s, el, NULL, "slotType");
	size_t n = 0;
	const xmlNode *vl, *v;
	HIE_XML_FOREACH(vl, el, REGISTRY_NS_RIM, "ValueList")
		n += count_children(vl, "Value");
	if (n > REGISTRY_EBRIM_MAX_VALUES)
		return HIE_ETOOBIG;
	sl->values = arena_array(s, n, sizeof(*sl->values));
	HIE_XML_FOREACH(vl, el, REGISTRY_NS_RIM, "ValueList") {
		HIE_XML_FOREACH(v, vl, REGISTRY_NS_RIM, "Value") {
			if (!sl->values)
				break;
			sl->values[sl->nvalues++] = text(s, v);
		}
	}
	return HIE_OK;
}

static enum registry_ebrim_kind kind_of(const xmlNode *el)
{
	static const struct {
		const char *local;
		enum registry_ebrim_kind kind;
	} kinds[] = {
		{ "ExtrinsicObject", REGISTRY_EBRIM_EXTRINSIC },
		{ "RegistryPackage", REGISTRY_EBRIM_PACKAGE },
		{ "Association", REGISTRY_EBRIM_ASSOCIATION },
		{ "Classification", REGISTRY_EBRIM_CLASSIFICATION },
		{ "ExternalIdentifier", REGISTRY_EBRIM_EXTID },
		{ "ObjectRef", REGISTRY_EBRIM_OBJECTREF },
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (hie_xml_is(el, REGISTRY_NS_RIM, kinds[i].local))
			return kinds[i].kind;
	return REGISTRY_EBRIM_OTHER;
}

static hie_err_t parse_obj(struct registry_ebrim_submission *s, xmlNode *el, struct registry_ebrim_obj *parent,
			   struct registry_ebrim_obj *o);

static hie_err_t parse_nested(struct registry_ebrim_submission *s, xmlNode *el, struct registry_ebrim_obj *o,
			      const char *local, struct registry_ebrim_obj **out, size_t *nout)
{
	size_t n = count_children(el, local);
	*out = arena_array(s, n, sizeof(**out));
	*nout = 0;
	xmlNode *c;
	HIE_XML_FOREACH(c, el, REGISTRY_NS_RIM, local) {
		if (!*out)
			break;
		hie_err_t err = parse_obj(s, c, o, &(*out)[*nout]);
		if (err)
			return err;
		(*nout)++;
	}
	return HIE_OK;
}

static void parse_kind_attrs(struct registry_ebrim_submission *s, const xmlNode *el, struct registry_ebrim_obj *o)
{
	switch (o->kind) {
	case REGISTRY_EBRIM_EXTRINSIC:
		o->mime_type = attr(s, el, NULL, "mimeType");
		o->is_opaque = attr(s, el, NULL, "isOpaque");
		break;
	case REGISTRY_EBRIM_ASSOCIATION:
		o->assoc_type = attr(s, el, NULL, "associationType");
		o->source = attr(s, el, NULL, "sourceObject");
		o->target = attr(s, el, NULL, "targetObject");
		break;
	case REGISTRY_EBRIM_CLASSIFICATION:
		o->classified_object = attr(s, el, NULL, "classifiedObject");
		o->scheme = attr(s, el, NULL, "classificationScheme");
		o->node_id = attr(s, el, NULL, "classificationNode");
		o->node_repr = attr(s, el, NULL, "nodeRepresentation");
		break;
	case REGISTRY_EBRIM_EXTID:
		o->registry_object = attr(s, el, NULL, "registryObject");
		o->id_scheme = attr(s, el, NULL, "identificationScheme");
		o->value = attr(s, el, NULL, "value");
		break;
	default:
		break;
	}
}

static hie_err_t parse_obj(struct registry_ebrim_submission *s, xmlNode *el, struct registry_ebrim_obj *parent,
			   struct registry_ebrim_obj *o)
{
	hie_err_t err = HIE_OK;
	if (++s->nobjects_total > REGISTRY_EBRIM_MAX_OBJECTS)
		return HIE_ETOOBIG;
	o->kind = kind_of(el);
	o->node = el;
	o->parent = parent;
	if (o->kind == REGISTRY_EBRIM_OTHER)
		return HIE_OK;
	o->id = attr(s, el, NULL, "id");
	o->home = attr(s, el, NULL, "home");
	if (o->kind == REGISTRY_EBRIM_OBJECTREF)
		return HIE_OK;
	o->lid = attr(s, el, NULL, "lid");
	o->status = attr(s, el, NULL, "status");
	o->object_type = attr(s, el, NULL, "objectType");
	parse_kind_attrs(s, el, o);

	const xmlNode *c = hie_xml_child(el, REGISTRY_NS_RIM, "Name");
	if (c)
		parse_lstrings(s, c, &o->name, &o->nname);
	c = hie_xml_child(el, REGISTRY_NS_RIM, "Description");
	if (c)
		parse_lstrings(s, c, &o->description, &o->ndescription);
	c = hie_xml_child(el, REGISTRY_NS_RIM, "VersionInfo");
	if (c) {
		o->version_name = attr(s, c, NULL, "versionName");
		o->version_comment = attr(s, c, NULL, "comment");
	}
	size_t n = count_children(el, "Slot");
	o->slots = arena_array(s, n, sizeof(*o->slots));
	HIE_XML_FOREACH(c, el, REGISTRY_NS_RIM, "Slot") {
		if (!o->slots)
			break;
		err = parse_slot(s, c, &o->slots[o->nslots++]);
		if (err)
			return err;
	}
	err = parse_nested(s, el, o, "Classification", &o->classifications, &o->nclassifications);
	if (!err)
		err = parse_nested(s, el, o, "ExternalIdentifier", &o->extids, &o->nextids);
	return err;
}

static hie_err_t copy_request(const xmlNode *request, struct registry_ebrim_submission *s)
{
	s->doc = xmlNewDoc(BAD_CAST "1.0");
	if (!s->doc)
		return HIE_ENOMEM;
	/* Namespaces declared on ancestors (the SOAP envelope) are re-declared on the copy by libxml2. */
	xmlNode *copy = xmlDocCopyNode((xmlNode *)request, s->doc, 1);
	if (!copy)
		return HIE_ENOMEM;
	xmlDocSetRootElement(s->doc, copy);
	s->request = copy;
	return HIE_OK;
}

hie_err_t registry_ebrim_parse(const xmlNode *request, struct registry_ebrim_submission **out)
{
	hie_err_t err = HIE_OK;
	*out = NULL;
	if (!hie_xml_is(request, REGISTRY_NS_LCM, "SubmitObjectsRequest"))
		return HIE_EPARSE;
	const xmlNode *list0 = hie_xml_child(request, REGISTRY_NS_RIM, "RegistryObjectList");
	if (!list0)
		return HIE_EPARSE;
	struct registry_ebrim_submission *s = calloc(1, sizeof(*s));
	if (!s)
		return HIE_ENOMEM;
	s->arena = calloc(1, sizeof(*s->arena));
	if (!s->arena) {
		err = HIE_ENOMEM;
		goto out;
	}
	err = copy_request(request, s);
	if (err)
		goto out;
	xmlNode *list = hie_xml_child(s->request, REGISTRY_NS_RIM, "RegistryObjectList");
	size_t n = 0;
	xmlNode *c;
	HIE_XML_FOREACH(c, list, NULL, NULL)
		n++;
	if (n > REGISTRY_EBRIM_MAX_OBJECTS) {
		err = HIE_ETOOBIG;
		goto out;
	}
	s->objs = arena_array(s, n, sizeof(*s->objs));
	HIE_XML_FOREACH(c, list, NULL, NULL) {
		if (!s->objs)
			break;
		err = parse_obj(s, c, NULL, &s->objs[s->nobjs++]);
		if (err)
			goto out;
	}
	if (!s->arena->failed)
		err = registry_ebrim_build_views(s);
out:
	if (!err && s->arena && s->arena->failed)
		err = s->arena->err;
	if (err) {
		registry_ebrim_free(s);
		return err;
	}
	*out = s;
	return HIE_OK;
}

void registry_ebrim_free(struct registry_ebrim_submission *s)
{
	if (!s)
		return;
	if (s->arena) {
		struct arena_chunk *c = s->arena->head;
		while (c) {
			struct arena_chunk *next = c->next;
			free(c);
			c = next;
		}
		free(s->arena);
	}
	if (s->doc)
		xmlFreeDoc(s->doc);
	free(s);
}

/* An allocation of the views or id pass failed earlier (allocations report once, here). */
hie_err_t registry_ebrim_arena_error(const struct registry_ebrim_submission *s)
{
	return s->arena->failed ? s->arena->err : HIE_OK;
}

void *registry_ebrim_alloc(struct registry_ebrim_submission *s, size_t n, size_t size)
{
	return arena_array(s, n, size);
}

hie_err_t registry_ebrim_obj_xml(const struct registry_ebrim_obj *o, struct hie_buf *out)
{
	if (!o || !o->node)
		return HIE_EINVAL;
	return hie_xml_serialize_node(o->node, out);
}

const struct registry_ebrim_slot *registry_ebrim_slot(const struct registry_ebrim_obj *o, const char *name)
{
	for (size_t i = 0; o && i < o->nslots; i++)
		if (o->slots[i].name && strcmp(o->slots[i].name, name) == 0)
			return &o->slots[i];
	return NULL;
}

bool registry_ebrim_is_uuid(const char *id)
{
	if (!id || strncmp(id, "urn:uuid:", 9) != 0 || strlen(id) != 9 + 36)
		return false;
	const char *u = id + 9;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char ch = u[i];
		bool hex = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
		if (dash ? ch != '-' : !hex)
			return false;
	}
	return true;
}

const char *registry_ebrim_assoc_short(const char *type)
{
	static const char *const prefixes[] = {
		"urn:oasis:names:tc:ebxml-regrep:AssociationType:",
		"urn:ihe:iti:2007:AssociationType:",
		"urn:ihe:iti:2010:AssociationType:",
	};
	if (!type)
		return "";
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]);
		if (strncmp(type, prefixes[i], n) == 0)
			return type + n;
	}
	return type;
}
