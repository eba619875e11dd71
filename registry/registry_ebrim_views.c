/*
 * registry_ebrim_views.c — the XDS views over the generic ebRIM tree: DocumentEntries with their
 * denormalized query fields, SubmissionSets/Folders, Associations; and the id indexes behind look-ups.
 *
 * Entry points: registry_ebrim_build_views (called by parse and assign_ids), registry_ebrim_each,
 * registry_ebrim_find. Look-ups are binary searches over sorted indexes, so that a submission of many
 * objects costs n log n, not n² (a hostile request must not buy quadratic work).
 * Errors: HIE_ENOMEM / HIE_ETOOBIG from the arena.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_ebrim.h"

static const char *ref_of(const struct registry_ebrim_obj *o)
{
	return o->kind == REGISTRY_EBRIM_CLASSIFICATION ? o->classified_object : o->registry_object;
}

static int cmp_str_then_order(const char *a, const char *b, const void *pa, const void *pb)
{
	int c = strcmp(a, b);
	if (c)
		return c;
	return (uintptr_t)pa < (uintptr_t)pb ? -1 : (uintptr_t)pa > (uintptr_t)pb;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct registry_ebrim_obj *x = *(const struct registry_ebrim_obj *const *)a;
	const struct registry_ebrim_obj *y = *(const struct registry_ebrim_obj *const *)b;
	return cmp_str_then_order(ref_of(x), ref_of(y), x, y);
}

static int cmp_id(const void *a, const void *b)
{
	const struct registry_ebrim_obj *x = *(const struct registry_ebrim_obj *const *)a;
	const struct registry_ebrim_obj *y = *(const struct registry_ebrim_obj *const *)b;
	return cmp_str_then_order(x->id, y->id, x, y);
}

/* First index in idx[0..n) whose key (by_ref: ref_of, else id) is >= key. */
static size_t lower_bound(struct registry_ebrim_obj *const *idx, size_t n, const char *key, bool by_ref)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = by_ref ? ref_of(idx[mid]) : idx[mid]->id;
		if (strcmp(k, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static hie_err_t build_indexes(struct registry_ebrim_submission *s)
{
	size_t nref = 0, nid = 0;
	for (size_t i = 0; i < s->nobjs; i++) {
		const struct registry_ebrim_obj *o = &s->objs[i];
		if ((o->kind == REGISTRY_EBRIM_CLASSIFICATION || o->kind == REGISTRY_EBRIM_EXTID) && ref_of(o))
			nref++;
		if (o->kind != REGISTRY_EBRIM_OTHER && o->id)
			nid++;
	}
	s->by_ref = registry_ebrim_alloc(s, nref, sizeof(*s->by_ref));
	s->by_id = registry_ebrim_alloc(s, nid, sizeof(*s->by_id));
	if ((nref && !s->by_ref) || (nid && !s->by_id))
		return registry_ebrim_arena_error(s);
	s->nby_ref = s->nby_id = 0;
	for (size_t i = 0; i < s->nobjs; i++) {
		struct registry_ebrim_obj *o = &s->objs[i];
		if ((o->kind == REGISTRY_EBRIM_CLASSIFICATION || o->kind == REGISTRY_EBRIM_EXTID) && ref_of(o))
			s->by_ref[s->nby_ref++] = o;
		if (o->kind != REGISTRY_EBRIM_OTHER && o->id)
			s->by_id[s->nby_id++] = o;
	}
	if (s->nby_ref)
		qsort(s->by_ref, s->nby_ref, sizeof(*s->by_ref), cmp_ref);
	if (s->nby_id)
		qsort(s->by_id, s->nby_id, sizeof(*s->by_id), cmp_id);
	return HIE_OK;
}

size_t registry_ebrim_find(const struct registry_ebrim_submission *s, const char *id,
			   const struct registry_ebrim_obj **first)
{
	if (first)
		*first = NULL;
	if (!id || !s->nby_id)
		return 0;
	size_t i = lower_bound(s->by_id, s->nby_id, id, false), k = 0;
	for (; i + k < s->nby_id && strcmp(s->by_id[i + k]->id, id) == 0; k++)
		if (k == 0 && first)
			*first = s->by_id[i];
	return k;
}

void registry_ebrim_each(const struct registry_ebrim_submission *s, const struct registry_ebrim_obj *o,
			 bool want_cls, registry_ebrim_each_fn fn, void *arg)
{
	const struct registry_ebrim_obj *nested = want_cls ? o->classifications : o->extids;
	size_t nnested = want_cls ? o->nclassifications : o->nextids;
	for (size_t i = 0; i < nnested; i++)
		fn(&nested[i], arg);
	if (!o->id || !s->nby_ref)
		return;
	enum registry_ebrim_kind want = want_cls ? REGISTRY_EBRIM_CLASSIFICATION : REGISTRY_EBRIM_EXTID;
	for (size_t i = lower_bound(s->by_ref, s->nby_ref, o->id, true);
	     i < s->nby_ref && strcmp(ref_of(s->by_ref[i]), o->id) == 0; i++)
		if (s->by_ref[i]->kind == want)
			fn(s->by_ref[i], arg);
}

/* Collects the classifications or external identifiers of an object into an arena array. */
struct gather {
	const struct registry_ebrim_obj **v;
	size_t n;
};

static void count_cb(const struct registry_ebrim_obj *c, void *arg)
{
	(void)c;
	((struct gather *)arg)->n++;
}

static void fill_cb(const struct registry_ebrim_obj *c, void *arg)
{
	struct gather *g = arg;
	g->v[g->n++] = c;
}

static hie_err_t gather(struct registry_ebrim_submission *s, const struct registry_ebrim_obj *o, bool want_cls,
			struct gather *g)
{
	g->n = 0;
	g->v = NULL;
	registry_ebrim_each(s, o, want_cls, count_cb, g);
	if (!g->n)
		return HIE_OK;
	g->v = registry_ebrim_alloc(s, g->n, sizeof(*g->v));
	if (!g->v)
		return registry_ebrim_arena_error(s);
	g->n = 0;
	registry_ebrim_each(s, o, want_cls, fill_cb, g);
	return HIE_OK;
}

static const char *slot1(const struct registry_ebrim_obj *o, const char *name)
{
	const struct registry_ebrim_slot *sl = registry_ebrim_slot(o, name);
	return sl && sl->nvalues ? sl->values[0] : NULL;
}

static bool eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void set_code(struct registry_ebrim_code *c, const struct registry_ebrim_obj *cls)
{
	c->code = cls->node_repr;
	c->scheme = slot1(cls, "codingScheme");
	c->display = cls->nname ? cls->name[0].value : NULL;
	c->cls = cls;
}

static const char *extid_value(const struct gather *ids, const char *scheme)
{
	for (size_t i = 0; i < ids->n; i++)
		if (eq(ids->v[i]->id_scheme, scheme))
			return ids->v[i]->value;
	return NULL;
}

/* Author persons: the authorPerson value of each author classification that has one. */
static hie_err_t authors(struct registry_ebrim_submission *s, const struct gather *cls, const char *scheme,
			 const char ***out, size_t *nout)
{
	size_t n = 0;
	for (size_t i = 0; i < cls->n; i++)
		if (eq(cls->v[i]->scheme, scheme) && slot1(cls->v[i], "authorPerson"))
			n++;
	*out = registry_ebrim_alloc(s, n, sizeof(**out));
	*nout = 0;
	if (n && !*out)
		return registry_ebrim_arena_error(s);
	for (size_t i = 0; i < cls->n; i++) {
		const char *p = eq(cls->v[i]->scheme, scheme) ? slot1(cls->v[i], "authorPerson") : NULL;
		if (p)
			(*out)[(*nout)++] = p;
	}
	return HIE_OK;
}

static hie_err_t doc_view(struct registry_ebrim_submission *s, struct registry_ebrim_obj *o,
			  struct registry_ebrim_doc *d)
{
	struct gather cls, ids;
	hie_err_t err = gather(s, o, true, &cls);
	if (!err)
		err = gather(s, o, false, &ids);
	if (err)
		return err;
	d->obj = o;
	d->on_demand = eq(o->object_type, REGISTRY_UUID_DE_ONDEMAND);
	d->unique_id = extid_value(&ids, REGISTRY_UUID_DE_UNIQUEID);
	d->patient_id = extid_value(&ids, REGISTRY_UUID_DE_PATIENTID);
	d->source_patient_id = slot1(o, "sourcePatientId");
	d->creation_time = slot1(o, "creationTime");
	d->service_start_time = slot1(o, "serviceStartTime");
	d->service_stop_time = slot1(o, "serviceStopTime");
	d->hash = slot1(o, "hash");
	d->size = slot1(o, "size");
	d->language_code = slot1(o, "languageCode");
	d->repository_unique_id = slot1(o, "repositoryUniqueId");

	static const char *const singles[] = { REGISTRY_UUID_DE_CLASSCODE, REGISTRY_UUID_DE_TYPECODE,
					       REGISTRY_UUID_DE_FORMATCODE, REGISTRY_UUID_DE_PRACTICECODE,
					       REGISTRY_UUID_DE_HCFTCODE };
	const struct registry_ebrim_code **slots[] = { &d->class_code, &d->type_code, &d->format_code,
						       &d->practice_code, &d->hcft_code };
	d->codes = registry_ebrim_alloc(s, cls.n, sizeof(*d->codes));
	if (cls.n && !d->codes)
		return registry_ebrim_arena_error(s);
	d->ncodes = 0;
	for (size_t i = 0; i < cls.n; i++)
		for (size_t k = 0; k < 5; k++)
			if (eq(cls.v[i]->scheme, singles[k])) {
				set_code(&d->codes[d->ncodes], cls.v[i]);
				if (!*slots[k])
					*slots[k] = &d->codes[d->ncodes];
				d->ncodes++;
			}
	d->conf_codes = d->codes ? d->codes + d->ncodes : NULL;
	for (size_t i = 0; i < cls.n; i++)
		if (eq(cls.v[i]->scheme, REGISTRY_UUID_DE_CONFCODE)) {
			set_code(&d->codes[d->ncodes++], cls.v[i]);
			d->nconf_codes++;
		}
	d->event_codes = d->codes ? d->codes + d->ncodes : NULL;
	for (size_t i = 0; i < cls.n; i++)
		if (eq(cls.v[i]->scheme, REGISTRY_UUID_DE_EVENTCODE)) {
			set_code(&d->codes[d->ncodes++], cls.v[i]);
			d->nevent_codes++;
		}
	return authors(s, &cls, REGISTRY_UUID_DE_AUTHOR, &d->author_persons, &d->nauthor_persons);
}

static hie_err_t pkg_view(struct registry_ebrim_submission *s, struct registry_ebrim_obj *o,
			  struct registry_ebrim_pkg *p)
{
	struct gather cls, ids;
	hie_err_t err = gather(s, o, true, &cls);
	if (!err)
		err = gather(s, o, false, &ids);
	if (err)
		return err;
	p->obj = o;
	bool is_ss = false, is_folder = false;
	for (size_t i = 0; i < cls.n; i++) {
		is_ss |= eq(cls.v[i]->node_id, REGISTRY_UUID_SS_NODE);
		is_folder |= eq(cls.v[i]->node_id, REGISTRY_UUID_FOLDER_NODE);
	}
	p->kind_conflict = is_ss && is_folder;
	p->kind = is_ss ? REGISTRY_PKG_SUBMISSION_SET : is_folder ? REGISTRY_PKG_FOLDER : REGISTRY_PKG_UNKNOWN;
	const char *code_scheme = is_ss ? REGISTRY_UUID_SS_CONTENTTYPE : REGISTRY_UUID_FOLDER_CODELIST;
	if (is_ss) {
		p->unique_id = extid_value(&ids, REGISTRY_UUID_SS_UNIQUEID);
		p->patient_id = extid_value(&ids, REGISTRY_UUID_SS_PATIENTID);
		p->source_id = extid_value(&ids, REGISTRY_UUID_SS_SOURCEID);
		p->submission_time = slot1(o, "submissionTime");
	} else if (is_folder) {
		p->unique_id = extid_value(&ids, REGISTRY_UUID_FOLDER_UNIQUEID);
		p->patient_id = extid_value(&ids, REGISTRY_UUID_FOLDER_PATIENTID);
	}
	size_t n = 0;
	for (size_t i = 0; i < cls.n; i++)
		n += eq(cls.v[i]->scheme, code_scheme);
	p->codes = registry_ebrim_alloc(s, n, sizeof(*p->codes));
	if (n && !p->codes)
		return registry_ebrim_arena_error(s);
	for (size_t i = 0; i < cls.n && p->kind != REGISTRY_PKG_UNKNOWN; i++)
		if (eq(cls.v[i]->scheme, code_scheme))
			set_code(&p->codes[p->ncodes++], cls.v[i]);
	if (!is_ss)
		return HIE_OK;
	return authors(s, &cls, REGISTRY_UUID_SS_AUTHOR, &p->author_persons, &p->nauthor_persons);
}

hie_err_t registry_ebrim_build_views(struct registry_ebrim_submission *s)
{
	hie_err_t err = build_indexes(s);
	if (err)
		return err;
	size_t nd = 0, np = 0, na = 0;
	for (size_t i = 0; i < s->nobjs; i++) {
		nd += s->objs[i].kind == REGISTRY_EBRIM_EXTRINSIC;
		np += s->objs[i].kind == REGISTRY_EBRIM_PACKAGE;
		na += s->objs[i].kind == REGISTRY_EBRIM_ASSOCIATION;
	}
	s->docs = registry_ebrim_alloc(s, nd, sizeof(*s->docs));
	s->pkgs = registry_ebrim_alloc(s, np, sizeof(*s->pkgs));
	s->assocs = registry_ebrim_alloc(s, na, sizeof(*s->assocs));
	if ((nd && !s->docs) || (np && !s->pkgs) || (na && !s->assocs))
		return registry_ebrim_arena_error(s);
	s->ndocs = s->npkgs = s->nassocs = s->nss = 0;
	s->ss = NULL;
	for (size_t i = 0; i < s->nobjs && !err; i++) {
		struct registry_ebrim_obj *o = &s->objs[i];
		if (o->kind == REGISTRY_EBRIM_EXTRINSIC) {
			err = doc_view(s, o, &s->docs[s->ndocs++]);
		} else if (o->kind == REGISTRY_EBRIM_PACKAGE) {
			struct registry_ebrim_pkg *p = &s->pkgs[s->npkgs++];
			err = pkg_view(s, o, p);
			if (!err && p->kind == REGISTRY_PKG_SUBMISSION_SET && s->nss++ == 0)
				s->ss = p;
		} else if (o->kind == REGISTRY_EBRIM_ASSOCIATION) {
			struct registry_ebrim_assoc *a = &s->assocs[s->nassocs++];
			a->obj = o;
			a->ss_status = slot1(o, "SubmissionSetStatus");
		}
	}
	return err;
}
