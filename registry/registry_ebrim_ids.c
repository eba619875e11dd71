/*
 * registry_ebrim_ids.c — replace symbolic ids of a submission by fresh urn:uuids (ITI TF-3 4.2.3.1.6).
 *
 * Entry point: registry_ebrim_assign_ids. Every registry object (nested ones too, ObjectRefs excepted) whose
 * id is missing or not a urn:uuid gets a new one; then every reference (Association sourceObject/
 * targetObject, Classification classifiedObject, ExternalIdentifier registryObject, and lid) naming a
 * replaced id is rewritten, in the model and in the XML, and the views are rebuilt.
 * Errors: HIE_ENOMEM, HIE_ESYS (no randomness), HIE_EINVAL (generator output not a urn:uuid).
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "core/core_soap.h"
#include "registry/registry_ebrim.h"

struct id_map {
	const char *old_id;  /* symbolic id, NULL for an object that had none */
	const char *new_id;
	size_t order;        /* document order: the first object of a duplicated id wins */
};

struct ids_ctx {
	struct registry_ebrim_submission *s;
	registry_ebrim_uuid_fn gen;
	void *arg;
	struct id_map *map;
	size_t nmap, cap;
	hie_err_t err;
};

static hie_err_t default_gen(char *out, size_t outlen, void *arg)
{
	(void)arg;
	return hie_soap_new_uuid_urn(out, outlen);
}

static bool assignable(const struct registry_ebrim_obj *o)
{
	return o->kind != REGISTRY_EBRIM_OTHER && o->kind != REGISTRY_EBRIM_OBJECTREF;
}

static size_t count_objs(const struct registry_ebrim_obj *o, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		k += assignable(&o[i]);
		k += count_objs(o[i].classifications, o[i].nclassifications);
		k += count_objs(o[i].extids, o[i].nextids);
	}
	return k;
}

static hie_err_t set_attr(xmlNode *node, const char *name, const char *value)
{
	return xmlSetProp(node, BAD_CAST name, BAD_CAST value) ? HIE_OK : HIE_ENOMEM;
}

static void give_ids(struct ids_ctx *c, struct registry_ebrim_obj *o, size_t n)
{
	for (size_t i = 0; i < n && !c->err; i++) {
		struct registry_ebrim_obj *ob = &o[i];
		if (assignable(ob) && !registry_ebrim_is_uuid(ob->id)) {
			char buf[64] = { 0 };
			c->err = c->gen(buf, sizeof(buf), c->arg);
			if (!c->err && !registry_ebrim_is_uuid(buf))
				c->err = HIE_EINVAL;
			const char *nid = c->err ? NULL : registry_ebrim_strdup(c->s, buf);
			if (!c->err && !nid)
				c->err = registry_ebrim_arena_error(c->s);
			if (!c->err)
				c->err = set_attr(ob->node, "id", nid);
			if (c->err)
				return;
			c->map[c->nmap].old_id = ob->id;
			c->map[c->nmap].new_id = nid;
			c->map[c->nmap].order = c->nmap;
			c->nmap++;
			ob->id = nid;
		}
		give_ids(c, ob->classifications, ob->nclassifications);
		give_ids(c, ob->extids, ob->nextids);
	}
}

static int cmp_map(const void *a, const void *b)
{
	const struct id_map *x = a, *y = b;
	int r = strcmp(x->old_id, y->old_id);
	return r ? r : (x->order > y->order) - (x->order < y->order);
}

/* New id for a symbolic reference, or NULL to leave it. The first object with a duplicated id wins. */
static const char *lookup(const struct ids_ctx *c, const char *ref)
{
	if (!ref || registry_ebrim_is_uuid(ref))
		return NULL;
	size_t lo = 0, hi = c->nmap;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(c->map[mid].old_id, ref) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nmap && strcmp(c->map[lo].old_id, ref) == 0 ? c->map[lo].new_id : NULL;
}

static void rewrite(struct ids_ctx *c, xmlNode *node, const char **field, const char *attr_name)
{
	const char *nid = c->err ? NULL : lookup(c, *field);
	if (!nid)
		return;
	c->err = set_attr(node, attr_name, nid);
	if (!c->err)
		*field = nid;
}

static void rewrite_refs(struct ids_ctx *c, struct registry_ebrim_obj *o, size_t n)
{
	for (size_t i = 0; i < n && !c->err; i++) {
		struct registry_ebrim_obj *ob = &o[i];
		rewrite(c, ob->node, &ob->lid, "lid");
		if (ob->kind == REGISTRY_EBRIM_ASSOCIATION) {
			rewrite(c, ob->node, &ob->source, "sourceObject");
			rewrite(c, ob->node, &ob->target, "targetObject");
		} else if (ob->kind == REGISTRY_EBRIM_CLASSIFICATION) {
			rewrite(c, ob->node, &ob->classified_object, "classifiedObject");
		} else if (ob->kind == REGISTRY_EBRIM_EXTID) {
			rewrite(c, ob->node, &ob->registry_object, "registryObject");
		}
		rewrite_refs(c, ob->classifications, ob->nclassifications);
		rewrite_refs(c, ob->extids, ob->nextids);
	}
}

hie_err_t registry_ebrim_assign_ids(struct registry_ebrim_submission *s, registry_ebrim_uuid_fn gen, void *arg,
				    size_t *nassigned)
{
	struct ids_ctx c = { .s = s, .gen = gen ? gen : default_gen, .arg = arg };
	if (nassigned)
		*nassigned = 0;
	c.cap = count_objs(s->objs, s->nobjs);
	if (c.cap) {
		c.map = calloc(c.cap, sizeof(*c.map));
		if (!c.map)
			return HIE_ENOMEM;
	}
	give_ids(&c, s->objs, s->nobjs);
	if (c.err)
		goto out;
	/* Objects that had no id at all cannot be referred to: keep only symbolic ones in the map. */
	size_t k = 0;
	for (size_t i = 0; i < c.nmap; i++)
		if (c.map[i].old_id)
			c.map[k++] = c.map[i];
	if (nassigned)
		*nassigned = c.nmap;
	c.nmap = k;
	if (c.nmap)
		qsort(c.map, c.nmap, sizeof(*c.map), cmp_map);
	rewrite_refs(&c, s->objs, s->nobjs);
	if (!c.err)
		c.err = registry_ebrim_build_views(s);
out:
	free(c.map);
	return c.err;
}
