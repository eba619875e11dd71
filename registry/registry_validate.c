/*
 * registry_validate.c — XDS.b registration rules that need no database (ITI TF-3 4.2.3 metadata attribute
 * tables, 4.1.7 submission rules), reported as RegistryErrors.
 *
 * Entry points: registry_validate_submission and the value checks (registry_validate_dtm, _oid, _uid, _cx,
 * _hash, _size). Every rule appends to the response and carries on, so the peer sees all its mistakes at
 * once (up to the response's cap). Peer values are quoted in codeContext cut to 128 bytes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"
#include "registry/registry_validate.h"

#define Q(v) ((v) ? (v) : "")

struct vctx {
	const struct registry_ebrim_submission *s;
	struct registry_validate_opts o;
	struct registry_response *r;
	hie_err_t err;
};

static void report(struct vctx *v, const char *code, const char *loc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report(struct vctx *v, const char *code, const char *loc, const char *fmt, ...)
{
	if (v->err)
		return;
	char ctx[REGISTRY_RESPONSE_CONTEXT_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	v->err = registry_response_add(v->r, REGISTRY_SEV_ERROR, code, loc, "%s", ctx);
}

static bool digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

static int num2(const char *p)
{
	return (p[0] - '0') * 10 + (p[1] - '0');
}

bool registry_validate_dtm(const char *v)
{
	if (!v)
		return false;
	size_t n = strlen(v);
	if ((n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14) || !digits(v, n))
		return false;
	if (n >= 6 && (num2(v + 4) < 1 || num2(v + 4) > 12))
		return false;
	if (n >= 8 && (num2(v + 6) < 1 || num2(v + 6) > 31))
		return false;
	if (n >= 10 && num2(v + 8) > 23)
		return false;
	if (n >= 12 && num2(v + 10) > 59)
		return false;
	return n < 14 || num2(v + 12) <= 59;
}

static bool oid_n(const char *v, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	size_t arc = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || v[i] == '.') {
			if (arc == 0 || (arc > 1 && v[i - arc] == '0'))
				return false;
			arc = 0;
		} else if (v[i] >= '0' && v[i] <= '9') {
			arc++;
		} else {
			return false;
		}
	}
	return true;
}

bool registry_validate_oid(const char *v)
{
	return v && oid_n(v, strlen(v));
}

bool registry_validate_uid(const char *v)
{
	if (!v)
		return false;
	size_t n = strlen(v);
	if (n == 0 || n > 128)
		return false;
	const char *caret = memchr(v, '^', n);
	if (!caret)
		return oid_n(v, n);
	size_t ext = n - (size_t)(caret - v) - 1;
	if (ext == 0)
		return false;
	for (size_t i = 0; i < ext; i++) {
		unsigned char c = (unsigned char)caret[1 + i];
		if (c <= 0x20 || c >= 0x7f || c == '^' || c == '&' || c == '~' || c == '\\' || c == '|')
			return false;
	}
	return oid_n(v, (size_t)(caret - v));
}

/* The patient index's parser is the one definition of an XDS patient id (ITI TF-3 4.2.3.1.7.2). */
bool registry_validate_cx(const char *v)
{
	struct registry_pid pid;
	return v && registry_pid_parse(v, strlen(v), &pid) == HIE_OK;
}

bool registry_validate_hash(const char *v)
{
	if (!v || strlen(v) != 40)
		return false;
	for (size_t i = 0; i < 40; i++) {
		char c = v[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

bool registry_validate_size(const char *v)
{
	return v && *v && strlen(v) <= 19 && digits(v, strlen(v));
}

/* Slot rules: unique names; single-valued slots have exactly one value. */
static void check_slots(struct vctx *v, const struct registry_ebrim_obj *o, const char *what,
			const char *const *single)
{
	for (size_t i = 0; i < o->nslots; i++) {
		const struct registry_ebrim_slot *sl = &o->slots[i];
		if (!sl->name || !*sl->name) {
			report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: Slot without a name", what, Q(o->id));
			continue;
		}
		for (size_t k = 0; k < i; k++)
			if (o->slots[k].name && strcmp(o->slots[k].name, sl->name) == 0) {
				report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: Slot %.64s appears more than once",
				       what, Q(o->id), sl->name);
				break;
			}
		for (size_t k = 0; single[k]; k++)
			if (strcmp(sl->name, single[k]) == 0 && sl->nvalues != 1)
				report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: %s must have exactly one value, has %zu",
				       what, Q(o->id), single[k], sl->nvalues);
	}
}

/* Required or optional single value checked by fn. */
static void check_value(struct vctx *v, const struct registry_ebrim_obj *o, const char *what, const char *attr,
			const char *val, bool required, bool (*fn)(const char *), const char *form)
{
	if (!val || !*val) {
		if (required)
			report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: %s is missing", what, Q(o->id), attr);
		return;
	}
	if (fn && !fn(val))
		report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: %s '%.128s' is not %s", what, Q(o->id), attr,
		       val, form);
}

struct code_count {
	const char *scheme;
	size_t n;
	const struct registry_ebrim_obj *bad;  /* first one without code or codingScheme */
};

static void code_cb(const struct registry_ebrim_obj *c, void *arg)
{
	struct code_count *cc = arg;
	if (!c->scheme || strcmp(c->scheme, cc->scheme) != 0)
		return;
	cc->n++;
	const struct registry_ebrim_slot *cs = registry_ebrim_slot(c, "codingScheme");
	if (!cc->bad && (!c->node_repr || !*c->node_repr || !cs || cs->nvalues != 1 || !*cs->values[0]))
		cc->bad = c;
}

/* A coded attribute: between min and max (0 = unbounded) classifications, each with code and codingScheme. */
static void check_code(struct vctx *v, const struct registry_ebrim_obj *o, const char *what, const char *attr,
		       const char *scheme, size_t min, size_t max)
{
	struct code_count cc = { .scheme = scheme };
	registry_ebrim_each(v->s, o, true, code_cb, &cc);
	if (cc.n < min)
		report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: %s is missing (classificationScheme %s)", what,
		       Q(o->id), attr, scheme);
	else if (max && cc.n > max)
		report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: %s appears %zu times, at most %zu allowed", what,
		       Q(o->id), attr, cc.n, max);
	if (cc.bad)
		report(v, REGISTRY_ERR_METADATA, o->id,
		       "%s %.128s: %s '%.128s' needs a nodeRepresentation and one codingScheme value", what,
		       Q(o->id), attr, Q(cc.bad->node_repr));
}

/* limitedMetadata (ITI TF-3 4.1.1.1): for XDM/XDR peers only; an XDS registry refuses it. */
#define LIMITED_DE "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"
#define LIMITED_SS "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707"

static void find_limited(const struct registry_ebrim_obj *c, void *arg)
{
	if (c->node_id && (strcmp(c->node_id, LIMITED_DE) == 0 || strcmp(c->node_id, LIMITED_SS) == 0))
		*(bool *)arg = true;
}

static void check_limited(struct vctx *v, const struct registry_ebrim_obj *o, const char *what)
{
	bool limited = false;
	registry_ebrim_each(v->s, o, true, find_limited, &limited);
	if (limited)
		report(v, REGISTRY_ERR_METADATA, o->id,
		       "%s %.128s: classified as limitedMetadata, which an XDS registry does not accept", what, Q(o->id));
}

static void check_doc(struct vctx *v, const struct registry_ebrim_doc *d)
{
	static const char *const single[] = { "creationTime", "hash", "size", "languageCode", "legalAuthenticator",
					      "repositoryUniqueId", "serviceStartTime", "serviceStopTime",
					      "sourcePatientId", "URI", NULL };
	const struct registry_ebrim_obj *o = d->obj;
	const char *w = "DocumentEntry";
	bool stable = o->object_type && strcmp(o->object_type, REGISTRY_UUID_DE_STABLE) == 0;
	if (!stable && !d->on_demand)
		report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: objectType '%.128s' is not a DocumentEntry type", w,
		       Q(o->id), Q(o->object_type));
	if (!o->id || !*o->id)
		report(v, REGISTRY_ERR_METADATA, NULL, "%s: entryUUID (id) is missing", w);
	check_slots(v, o, w, single);
	check_limited(v, o, w);
	check_code(v, o, w, "classCode", REGISTRY_UUID_DE_CLASSCODE, 1, 1);
	check_code(v, o, w, "confidentialityCode", REGISTRY_UUID_DE_CONFCODE, 1, 0);
	check_code(v, o, w, "eventCodeList", REGISTRY_UUID_DE_EVENTCODE, 0, 0);
	check_code(v, o, w, "formatCode", REGISTRY_UUID_DE_FORMATCODE, 1, 1);
	check_code(v, o, w, "healthcareFacilityTypeCode", REGISTRY_UUID_DE_HCFTCODE, 1, 1);
	check_code(v, o, w, "practiceSettingCode", REGISTRY_UUID_DE_PRACTICECODE, 1, 1);
	check_code(v, o, w, "typeCode", REGISTRY_UUID_DE_TYPECODE, 1, 1);
	check_value(v, o, w, "creationTime", d->creation_time, stable, registry_validate_dtm, "a DTM");
	check_value(v, o, w, "serviceStartTime", d->service_start_time, false, registry_validate_dtm, "a DTM");
	check_value(v, o, w, "serviceStopTime", d->service_stop_time, false, registry_validate_dtm, "a DTM");
	check_value(v, o, w, "languageCode", d->language_code, true, NULL, NULL);
	check_value(v, o, w, "sourcePatientId", d->source_patient_id, true, registry_validate_cx, "a CX id^^^&OID&ISO");
	check_value(v, o, w, "patientId", d->patient_id, true, registry_validate_cx, "a CX id^^^&OID&ISO");
	check_value(v, o, w, "uniqueId", d->unique_id, true, registry_validate_uid, "an OID[^extension] of <= 128 bytes");
	check_value(v, o, w, "mimeType", o->mime_type, true, NULL, NULL);
	if (o->mime_type && *o->mime_type && !strchr(o->mime_type, '/'))
		report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: mimeType '%.128s' is not type/subtype", w, Q(o->id),
		       o->mime_type);
	/* Stable entries registered by ITI-42 carry what the repository computed; ITI-41 computes it next. */
	bool need_repo = stable && !v->o.provide_and_register;
	check_value(v, o, w, "hash", d->hash, need_repo, registry_validate_hash, "40 hexadecimal digits");
	check_value(v, o, w, "size", d->size, need_repo, registry_validate_size, "a decimal integer");
	check_value(v, o, w, "repositoryUniqueId", d->repository_unique_id, need_repo || d->on_demand,
		    registry_validate_oid, "an OID");
}

static void check_pkg(struct vctx *v, const struct registry_ebrim_pkg *p)
{
	static const char *const single[] = { "submissionTime", "lastUpdateTime", NULL };
	const struct registry_ebrim_obj *o = p->obj;
	if (p->kind_conflict)
		report(v, REGISTRY_ERR_METADATA, o->id, "RegistryPackage %.128s: classified both as SubmissionSet and Folder",
		       Q(o->id));
	if (p->kind == REGISTRY_PKG_UNKNOWN) {
		report(v, REGISTRY_ERR_METADATA, o->id,
		       "RegistryPackage %.128s: not classified as SubmissionSet (%s) or Folder (%s)", Q(o->id),
		       REGISTRY_UUID_SS_NODE, REGISTRY_UUID_FOLDER_NODE);
		return;
	}
	bool ss = p->kind == REGISTRY_PKG_SUBMISSION_SET;
	const char *w = ss ? "SubmissionSet" : "Folder";
	check_slots(v, o, w, single);
	check_limited(v, o, w);
	check_value(v, o, w, "patientId", p->patient_id, true, registry_validate_cx, "a CX id^^^&OID&ISO");
	check_value(v, o, w, "uniqueId", p->unique_id, true, registry_validate_oid, "an OID");
	if (ss) {
		check_value(v, o, w, "submissionTime", p->submission_time, true, registry_validate_dtm, "a DTM");
		check_value(v, o, w, "sourceId", p->source_id, true, registry_validate_oid, "an OID");
		check_code(v, o, w, "contentTypeCode", REGISTRY_UUID_SS_CONTENTTYPE, v->o.require_content_type, 1);
	} else {
		check_code(v, o, w, "codeList", REGISTRY_UUID_FOLDER_CODELIST, 1, 0);
	}
}

#define AT_EBRIM "urn:oasis:names:tc:ebxml-regrep:AssociationType:"
#define AT_IHE07 "urn:ihe:iti:2007:AssociationType:"
#define AT_IHE10 "urn:ihe:iti:2010:AssociationType:"

static const char *const doc_rel_types[] = { AT_IHE07 "RPLC", AT_IHE07 "APND", AT_IHE07 "XFRM",
					     AT_IHE07 "XFRM_RPLC", AT_IHE07 "signs", AT_IHE10 "IsSnapshotOf", NULL };

static bool in_list(const char *v, const char *const *list)
{
	for (size_t i = 0; v && list[i]; i++)
		if (strcmp(v, list[i]) == 0)
			return true;
	return false;
}

static bool is_doc(const struct registry_ebrim_submission *s, const char *id)
{
	const struct registry_ebrim_obj *o;
	return registry_ebrim_find(s, id, &o) && o->kind == REGISTRY_EBRIM_EXTRINSIC;
}

/* An end of an association: in the submission, or a urn:uuid naming registry content. */
static void check_end(struct vctx *v, const struct registry_ebrim_obj *o, const char *attr, const char *ref)
{
	if (!ref || !*ref)
		report(v, REGISTRY_ERR_METADATA, o->id, "Association %.128s: %s is missing", Q(o->id), attr);
	else if (!registry_ebrim_find(v->s, ref, NULL) && !registry_ebrim_is_uuid(ref))
		report(v, REGISTRY_ERR_METADATA, o->id,
		       "Association %.128s: %s '%.128s' names no object of the submission and is not a urn:uuid",
		       Q(o->id), attr, ref);
}

static void check_assoc(struct vctx *v, const struct registry_ebrim_assoc *a)
{
	static const char *const update_types[] = { AT_IHE10 "UpdateAvailabilityStatus",
						    AT_IHE10 "SubmitAssociation", NULL };
	const struct registry_ebrim_obj *o = a->obj;
	const char *t = o->assoc_type;
	bool has_member = t && strcmp(t, AT_EBRIM "HasMember") == 0;
	bool doc_rel = in_list(t, doc_rel_types);
	if (!t || !*t)
		report(v, REGISTRY_ERR_METADATA, o->id, "Association %.128s: associationType is missing", Q(o->id));
	else if (!has_member && !doc_rel && !(v->o.metadata_update && in_list(t, update_types)))
		report(v, REGISTRY_ERR_METADATA, o->id, "Association %.128s: associationType '%.128s' is not allowed",
		       Q(o->id), t);
	check_end(v, o, "sourceObject", o->source);
	check_end(v, o, "targetObject", o->target);
	const struct registry_ebrim_pkg *ss = v->s->ss;
	bool from_ss = ss && ss->obj->id && o->source && strcmp(o->source, ss->obj->id) == 0;
	if (has_member && from_ss) {
		/* SubmissionSetStatus belongs to the SubmissionSet's links to DocumentEntries (ITI TF-3 4.2.2.1.1). */
		const struct registry_ebrim_obj *target = NULL;
		registry_ebrim_find(v->s, o->target, &target);
		bool to_doc = !target || target->kind == REGISTRY_EBRIM_EXTRINSIC;
		if (!a->ss_status && !to_doc)
			;
		else if (!a->ss_status)
			report(v, REGISTRY_ERR_METADATA, o->id,
			       "Association %.128s: SubmissionSetStatus slot is missing on HasMember from the SubmissionSet",
			       Q(o->id));
		else if (strcmp(a->ss_status, "Original") != 0 && strcmp(a->ss_status, "Reference") != 0)
			report(v, REGISTRY_ERR_METADATA, o->id,
			       "Association %.128s: SubmissionSetStatus '%.128s' is not Original or Reference", Q(o->id),
			       a->ss_status);
	}
	if (doc_rel) {
		if (!is_doc(v->s, o->source))
			report(v, REGISTRY_ERR_METADATA, o->id,
			       "Association %.128s: sourceObject '%.128s' of %s is not a DocumentEntry of the submission",
			       Q(o->id), Q(o->source), registry_ebrim_assoc_short(t));
		if (o->target && registry_ebrim_find(v->s, o->target, NULL))
			report(v, REGISTRY_ERR_METADATA, o->id,
			       "Association %.128s: targetObject '%.128s' of %s must be a registered document, not one of the submission",
			       Q(o->id), o->target, registry_ebrim_assoc_short(t));
	}
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Targets of the HasMember associations from the SubmissionSet, sorted (NULL when none). */
static const char **ss_members(struct vctx *v, size_t *n)
{
	const struct registry_ebrim_pkg *ss = v->s->ss;
	*n = 0;
	if (!ss || !ss->obj->id || !v->s->nassocs)
		return NULL;
	const char **m = calloc(v->s->nassocs, sizeof(*m));
	if (!m) {
		v->err = HIE_ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < v->s->nassocs; i++) {
		const struct registry_ebrim_obj *a = v->s->assocs[i].obj;
		if (a->assoc_type && strcmp(a->assoc_type, AT_EBRIM "HasMember") == 0 && a->source && a->target &&
		    strcmp(a->source, ss->obj->id) == 0)
			m[(*n)++] = a->target;
	}
	if (*n)
		qsort(m, *n, sizeof(*m), cmp_strp);
	return m;
}

/* Every DocumentEntry of the submission is a member of the SubmissionSet (ITI TF-3 4.1.4). */
static void check_membership(struct vctx *v, const char **members, size_t n, const struct registry_ebrim_obj *o,
			     const char *what)
{
	if (!v->s->ss || !o->id)
		return;
	if (n && bsearch(&o->id, members, n, sizeof(*members), cmp_strp))
		return;
	report(v, REGISTRY_ERR_METADATA, o->id, "%s %.128s: no HasMember Association from the SubmissionSet", what,
	       o->id);
}

static void check_patient(struct vctx *v, const char *ref, const char *what, const struct registry_ebrim_obj *o,
			  const char *pid)
{
	if (ref && pid && strcmp(ref, pid) != 0)
		report(v, REGISTRY_ERR_PID_MISMATCH, o->id,
		       "%s %.128s: patientId '%.128s' differs from the submission's patientId '%.128s'", what, Q(o->id),
		       pid, ref);
}

struct uid_ref {
	const char *uid;
	const char *what;
	const struct registry_ebrim_obj *o;
};

static int cmp_uid(const void *a, const void *b)
{
	const struct uid_ref *x = a, *y = b;
	int c = strcmp(x->uid, y->uid);
	return c ? c : (x->o > y->o) - (x->o < y->o);
}

static void check_unique_ids(struct vctx *v)
{
	const struct registry_ebrim_submission *s = v->s;
	struct uid_ref *u = calloc(s->ndocs + s->npkgs + 1, sizeof(*u));
	if (!u) {
		v->err = HIE_ENOMEM;
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < s->ndocs; i++)
		if (s->docs[i].unique_id)
			u[n++] = (struct uid_ref){ s->docs[i].unique_id, "DocumentEntry", s->docs[i].obj };
	for (size_t i = 0; i < s->npkgs; i++)
		if (s->pkgs[i].unique_id)
			u[n++] = (struct uid_ref){ s->pkgs[i].unique_id,
						   s->pkgs[i].kind == REGISTRY_PKG_FOLDER ? "Folder" : "SubmissionSet",
						   s->pkgs[i].obj };
	if (n)
		qsort(u, n, sizeof(*u), cmp_uid);
	for (size_t i = 1; i < n; i++)
		if (strcmp(u[i].uid, u[i - 1].uid) == 0)
			report(v, REGISTRY_ERR_DUP_UID_MSG, u[i].o->id, "%s %.128s: uniqueId '%.128s' is also used by %s %.128s",
			       u[i].what, Q(u[i].o->id), u[i].uid, u[i - 1].what, Q(u[i - 1].o->id));
	free(u);
}

static void check_ids(struct vctx *v)
{
	const struct registry_ebrim_submission *s = v->s;
	for (size_t i = 0; i < s->nobjs; i++) {
		const struct registry_ebrim_obj *o = &s->objs[i];
		if (o->kind == REGISTRY_EBRIM_OTHER || o->kind == REGISTRY_EBRIM_CLASSIFICATION ||
		    o->kind == REGISTRY_EBRIM_EXTID || !o->id)
			continue;
		const struct registry_ebrim_obj *first;
		if (registry_ebrim_find(s, o->id, &first) > 1 && first != o)
			report(v, REGISTRY_ERR_METADATA, o->id, "id '%.128s' is used by more than one object", o->id);
	}
}

hie_err_t registry_validate_submission(const struct registry_ebrim_submission *s,
				       const struct registry_validate_opts *opts, struct registry_response *r)
{
	struct vctx v = { .s = s, .r = r };
	if (opts)
		v.o = *opts;
	if (s->nss != 1)
		report(&v, REGISTRY_ERR_METADATA, NULL, "SubmissionSet: exactly one is required, the submission has %zu",
		       s->nss);
	check_ids(&v);
	for (size_t i = 0; i < s->npkgs; i++)
		check_pkg(&v, &s->pkgs[i]);
	for (size_t i = 0; i < s->ndocs; i++)
		check_doc(&v, &s->docs[i]);
	for (size_t i = 0; i < s->nassocs; i++)
		check_assoc(&v, &s->assocs[i]);
	size_t nmembers;
	const char **members = ss_members(&v, &nmembers);
	const char *pid = s->ss ? s->ss->patient_id : NULL;
	for (size_t i = 0; i < s->ndocs; i++) {
		if (!pid)
			pid = s->docs[i].patient_id;
		check_patient(&v, pid, "DocumentEntry", s->docs[i].obj, s->docs[i].patient_id);
		check_membership(&v, members, nmembers, s->docs[i].obj, "DocumentEntry");
	}
	for (size_t i = 0; i < s->npkgs; i++) {
		if (s->pkgs[i].kind != REGISTRY_PKG_FOLDER)
			continue;
		/* No membership rule for Folders: NIST 16102c registers a Folder with no SS HasMember. */
		check_patient(&v, pid, "Folder", s->pkgs[i].obj, s->pkgs[i].patient_id);
	}
	free(members);
	check_unique_ids(&v);
	return v.err;
}
