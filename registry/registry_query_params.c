/*
 * registry_query_params.c — reads a query:AdhocQueryRequest into a struct registry_sq_request and checks its
 * parameters against the stored query's definition (ITI TF-2a 3.18.4.1.2.3.7). See registry_query.h for the
 * rules. Entry points: registry_sq_parse, registry_sq_free, registry_sq_get, registry_sq_uuid/name.
 *
 * The value grammar is parsed by an explicit loop over (pointer, length): 'text' (with '' for a quote),
 * numbers, and ( item , item ... ). Every problem becomes an entry in the caller's registry_response.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/registry_ebrim.h"
#include "registry/registry_query.h"
#include "registry/registry_soap.h"

/* Parameter kinds. */
enum ptype { P_STR = 0, P_CODE, P_TIME, P_NUM };
#define F_REQ 1u    /* required (alone, or one of its alternative group) */
#define F_MULTI 2u  /* accepts a list */
#define F_ANDOR 4u  /* several slots = AND of ORs */

struct pdef {
	const char *name;
	enum ptype type;
	unsigned flags;
	int alt;  /* > 0: exactly one of the parameters with this alt number must be given */
};

#define DE "$XDSDocumentEntry"
#define FIND_DOCS_PARAMS                                                                                      \
	{DE "PatientId", P_STR, F_REQ, 0}, {DE "ClassCode", P_CODE, F_MULTI, 0},                              \
	{DE "TypeCode", P_CODE, F_MULTI, 0}, {DE "PracticeSettingCode", P_CODE, F_MULTI, 0},                  \
	{DE "CreationTimeFrom", P_TIME, 0, 0}, {DE "CreationTimeTo", P_TIME, 0, 0},                           \
	{DE "ServiceStartTimeFrom", P_TIME, 0, 0}, {DE "ServiceStartTimeTo", P_TIME, 0, 0},                   \
	{DE "ServiceStopTimeFrom", P_TIME, 0, 0}, {DE "ServiceStopTimeTo", P_TIME, 0, 0},                     \
	{DE "HealthcareFacilityTypeCode", P_CODE, F_MULTI, 0},                                                \
	{DE "EventCodeList", P_CODE, F_MULTI | F_ANDOR, 0},                                                   \
	{DE "ConfidentialityCode", P_CODE, F_MULTI | F_ANDOR, 0}, {DE "AuthorPerson", P_STR, F_MULTI, 0},      \
	{DE "FormatCode", P_CODE, F_MULTI, 0}, {DE "Status", P_STR, F_REQ | F_MULTI, 0},                      \
	{DE "Type", P_STR, F_MULTI, 0}, {"$MetadataLevel", P_NUM, 0, 0}

static const struct pdef find_docs[] = {FIND_DOCS_PARAMS, {NULL, 0, 0, 0}};
static const struct pdef find_docs_refid[] = {FIND_DOCS_PARAMS,
					      {DE "ReferenceIdList", P_STR, F_REQ | F_MULTI, 0},
					      {NULL, 0, 0, 0}};
static const struct pdef find_ss[] = {
	{"$XDSSubmissionSetPatientId", P_STR, F_REQ, 0},   {"$XDSSubmissionSetSourceId", P_STR, F_MULTI, 0},
	{"$XDSSubmissionSetSubmissionTimeFrom", P_TIME, 0, 0}, {"$XDSSubmissionSetSubmissionTimeTo", P_TIME, 0, 0},
	{"$XDSSubmissionSetAuthorPerson", P_STR, 0, 0},   {"$XDSSubmissionSetContentType", P_CODE, F_MULTI, 0},
	{"$XDSSubmissionSetStatus", P_STR, F_REQ | F_MULTI, 0}, {NULL, 0, 0, 0}};
static const struct pdef find_fol[] = {
	{"$XDSFolderPatientId", P_STR, F_REQ, 0},         {"$XDSFolderLastUpdateTimeFrom", P_TIME, 0, 0},
	{"$XDSFolderLastUpdateTimeTo", P_TIME, 0, 0},     {"$XDSFolderCodeList", P_CODE, F_MULTI | F_ANDOR, 0},
	{"$XDSFolderStatus", P_STR, F_REQ | F_MULTI, 0},  {"$MetadataLevel", P_NUM, 0, 0},
	{NULL, 0, 0, 0}};
static const struct pdef get_all[] = {
	{"$patientId", P_STR, F_REQ, 0},
	{DE "Status", P_STR, F_REQ | F_MULTI, 0},
	{"$XDSSubmissionSetStatus", P_STR, F_REQ | F_MULTI, 0},
	{"$XDSFolderStatus", P_STR, F_REQ | F_MULTI, 0},
	{DE "FormatCode", P_CODE, F_MULTI, 0},
	{DE "ConfidentialityCode", P_CODE, F_MULTI | F_ANDOR, 0},
	{DE "Type", P_STR, F_MULTI, 0},
	{"$MetadataLevel", P_NUM, 0, 0},
	{NULL, 0, 0, 0}};
static const struct pdef get_docs[] = {
	{DE "EntryUUID", P_STR, F_REQ | F_MULTI, 1}, {DE "UniqueId", P_STR, F_REQ | F_MULTI, 1},
	{DE "LogicalID", P_STR, F_REQ | F_MULTI, 1}, {"$MetadataLevel", P_NUM, 0, 0}, {NULL, 0, 0, 0}};
static const struct pdef get_fols[] = {
	{"$XDSFolderEntryUUID", P_STR, F_REQ | F_MULTI, 1}, {"$XDSFolderUniqueId", P_STR, F_REQ | F_MULTI, 1},
	{"$XDSFolderLogicalID", P_STR, F_REQ | F_MULTI, 1}, {"$MetadataLevel", P_NUM, 0, 0}, {NULL, 0, 0, 0}};
static const struct pdef uuid_list[] = {{"$uuid", P_STR, F_REQ | F_MULTI, 0}, {"$MetadataLevel", P_NUM, 0, 0},
					{NULL, 0, 0, 0}};
static const struct pdef get_docs_assocs[] = {{DE "EntryUUID", P_STR, F_REQ | F_MULTI, 1},
					      {DE "UniqueId", P_STR, F_REQ | F_MULTI, 1},
					      {"$MetadataLevel", P_NUM, 0, 0},
					      {NULL, 0, 0, 0}};
static const struct pdef get_ss_contents[] = {
	{"$XDSSubmissionSetEntryUUID", P_STR, F_REQ, 1}, {"$XDSSubmissionSetUniqueId", P_STR, F_REQ, 1},
	{DE "FormatCode", P_CODE, F_MULTI, 0},          {DE "ConfidentialityCode", P_CODE, F_MULTI | F_ANDOR, 0},
	{DE "Type", P_STR, F_MULTI, 0},                 {"$MetadataLevel", P_NUM, 0, 0},
	{NULL, 0, 0, 0}};
static const struct pdef get_fol_contents[] = {
	{"$XDSFolderEntryUUID", P_STR, F_REQ, 1},     {"$XDSFolderUniqueId", P_STR, F_REQ, 1},
	{DE "FormatCode", P_CODE, F_MULTI, 0},        {DE "ConfidentialityCode", P_CODE, F_MULTI | F_ANDOR, 0},
	{DE "Type", P_STR, F_MULTI, 0},               {"$XDSAssociationStatus", P_STR, F_MULTI, 0},
	{"$MetadataLevel", P_NUM, 0, 0},              {NULL, 0, 0, 0}};
static const struct pdef get_fols_for_doc[] = {{DE "EntryUUID", P_STR, F_REQ, 1},
					       {DE "UniqueId", P_STR, F_REQ, 1},
					       {"$MetadataLevel", P_NUM, 0, 0},
					       {NULL, 0, 0, 0}};
static const struct pdef get_related[] = {{DE "EntryUUID", P_STR, F_REQ, 1},
					  {DE "UniqueId", P_STR, F_REQ, 1},
					  {"$AssociationTypes", P_STR, F_REQ | F_MULTI, 0},
					  {DE "Type", P_STR, F_MULTI, 0},
					  {"$MetadataLevel", P_NUM, 0, 0},
					  {NULL, 0, 0, 0}};

static const struct {
	const char *uuid, *name;
	const struct pdef *params;
} queries[REGISTRY_SQ_COUNT] = {
	[REGISTRY_SQ_FIND_DOCUMENTS] = {"urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d", "FindDocuments", find_docs},
	[REGISTRY_SQ_FIND_DOCUMENTS_BY_REFID] = {"urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492",
						 "FindDocumentsByReferenceId", find_docs_refid},
	[REGISTRY_SQ_FIND_SUBMISSION_SETS] = {"urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9", "FindSubmissionSets",
					      find_ss},
	[REGISTRY_SQ_FIND_FOLDERS] = {"urn:uuid:958f3006-baad-4929-a4de-ff1114824431", "FindFolders", find_fol},
	[REGISTRY_SQ_GET_ALL] = {"urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3", "GetAll", get_all},
	[REGISTRY_SQ_GET_DOCUMENTS] = {"urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4", "GetDocuments", get_docs},
	[REGISTRY_SQ_GET_FOLDERS] = {"urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4", "GetFolders", get_fols},
	[REGISTRY_SQ_GET_ASSOCIATIONS] = {"urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155", "GetAssociations",
					  uuid_list},
	[REGISTRY_SQ_GET_DOCUMENTS_AND_ASSOCIATIONS] = {"urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a",
							"GetDocumentsAndAssociations", get_docs_assocs},
	[REGISTRY_SQ_GET_SUBMISSION_SETS] = {"urn:uuid:51224314-5390-4169-9b91-b1980040715a", "GetSubmissionSets",
					     uuid_list},
	[REGISTRY_SQ_GET_SUBMISSION_SET_AND_CONTENTS] = {"urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83",
							 "GetSubmissionSetAndContents", get_ss_contents},
	[REGISTRY_SQ_GET_FOLDER_AND_CONTENTS] = {"urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7",
						 "GetFolderAndContents", get_fol_contents},
	[REGISTRY_SQ_GET_FOLDERS_FOR_DOCUMENT] = {"urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578",
						  "GetFoldersForDocument", get_fols_for_doc},
	[REGISTRY_SQ_GET_RELATED_DOCUMENTS] = {"urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6", "GetRelatedDocuments",
					       get_related},
};

const char *registry_sq_uuid(enum registry_sq_query q)
{
	return q < REGISTRY_SQ_COUNT ? queries[q].uuid : "";
}

const char *registry_sq_name(enum registry_sq_query q)
{
	return q < REGISTRY_SQ_COUNT ? queries[q].name : "";
}

bool registry_sq_valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		size_t k;
		unsigned min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, min = 0x80, c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, min = 0x800, c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (p[i + j] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

void registry_sq_free(struct registry_sq_request *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->nparams; i++) {
		for (size_t g = 0; g < q->params[i].ngroups; g++) {
			for (size_t v = 0; v < q->params[i].groups[g].n; v++)
				free(q->params[i].groups[g].values[v]);
			free(q->params[i].groups[g].values);
		}
		free(q->params[i].groups);
	}
	free(q->params);
	free(q->home);
	free(q);
}

const struct registry_sq_param *registry_sq_get(const struct registry_sq_request *q, const char *name)
{
	for (size_t i = 0; q && i < q->nparams; i++)
		if (strcmp(q->params[i].name, name) == 0)
			return &q->params[i];
	return NULL;
}

/* Parsing of one rim:Value ------------------------------------------------------------------------------ */

struct vparse {
	const char *p;
	size_t n, i;
	bool list;              /* the value was a ( ) list */
	struct registry_sq_group *g;
	size_t *total;          /* values over the whole request */
};

static void skip_ws(struct vparse *v)
{
	while (v->i < v->n && (v->p[v->i] == ' ' || v->p[v->i] == '\t' || v->p[v->i] == '\n' || v->p[v->i] == '\r'))
		v->i++;
}

/* HIE_OK, HIE_EINVAL (one value too long), HIE_ETOOBIG (value count cap), HIE_ENOMEM. */
static hie_err_t push_value(struct vparse *v, const char *s, size_t len, bool unquote)
{
	if (len > REGISTRY_SQ_MAX_VALUE_LEN)
		return HIE_EINVAL;
	if (*v->total >= REGISTRY_SQ_MAX_VALUES)
		return HIE_ETOOBIG;
	char *out = malloc(len + 1);
	if (!out)
		return HIE_ENOMEM;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		out[o++] = s[i];
		if (unquote && s[i] == '\'')
			i++; /* '' → ' (the scanner only lets doubled quotes through) */
	}
	out[o] = '\0';
	if ((v->g->n & (v->g->n - 1)) == 0) { /* grow at powers of two */
		size_t ncap = v->g->n ? v->g->n * 2 : 4;
		char **nv = realloc(v->g->values, ncap * sizeof *nv);
		if (!nv) {
			free(out);
			return HIE_ENOMEM;
		}
		v->g->values = nv;
	}
	v->g->values[v->g->n++] = out;
	(*v->total)++;
	return HIE_OK;
}

/* One item: 'quoted' or an unquoted number. */
static hie_err_t parse_item(struct vparse *v)
{
	skip_ws(v);
	if (v->i >= v->n)
		return HIE_EPARSE;
	if (v->p[v->i] == '\'') {
		size_t start = ++v->i;
		for (;;) {
			if (v->i >= v->n)
				return HIE_EPARSE; /* unterminated */
			if (v->p[v->i] == '\'') {
				if (v->i + 1 < v->n && v->p[v->i + 1] == '\'') {
					v->i += 2;
					continue;
				}
				break;
			}
			v->i++;
		}
		hie_err_t err = push_value(v, v->p + start, v->i - start, true);
		v->i++;
		return err;
	}
	size_t start = v->i;
	if (v->p[v->i] == '-' || v->p[v->i] == '+')
		v->i++;
	while (v->i < v->n && v->p[v->i] >= '0' && v->p[v->i] <= '9')
		v->i++;
	if (v->i == start || (v->i == start + 1 && (v->p[start] == '-' || v->p[start] == '+')))
		return HIE_EPARSE; /* neither a 'string' nor a number */
	return push_value(v, v->p + start, v->i - start, false);
}

static hie_err_t parse_value(struct vparse *v)
{
	skip_ws(v);
	if (v->i < v->n && v->p[v->i] == '(') {
		v->list = true;
		v->i++;
		for (;;) {
			hie_err_t err = parse_item(v);
			if (err)
				return err;
			skip_ws(v);
			if (v->i < v->n && v->p[v->i] == ',') {
				v->i++;
				continue;
			}
			if (v->i < v->n && v->p[v->i] == ')') {
				v->i++;
				break;
			}
			return HIE_EPARSE;
		}
	} else {
		hie_err_t err = parse_item(v);
		if (err)
			return err;
	}
	skip_ws(v);
	return v->i == v->n ? HIE_OK : HIE_EPARSE;
}

/* Checks of values by kind ------------------------------------------------------------------------------ */

static bool valid_time(const char *s)
{
	size_t n = strlen(s);
	if (n < 4 || n > 14 || n % 2)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* 'code^^scheme' with both parts non-empty (ITI TF-2a 3.18.4.1.2.3.4; NIST 11897 classcode_scheme_mismatch). */
static bool valid_code(const char *s)
{
	const char *sep = strstr(s, "^^");
	return sep && sep != s && sep[2] != '\0' && sep[2] != '^';
}

/* The request ------------------------------------------------------------------------------------------- */

static const struct pdef *find_def(const struct pdef *defs, const char *name)
{
	for (const struct pdef *d = defs; d->name; d++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static struct registry_sq_param *param_for(struct registry_sq_request *q, const struct pdef *d, size_t ndefs)
{
	for (size_t i = 0; i < q->nparams; i++)
		if (q->params[i].name == d->name)
			return &q->params[i];
	if (q->nparams >= ndefs)
		return NULL; /* cannot happen: one entry per definition */
	struct registry_sq_param *p = &q->params[q->nparams++];
	p->name = d->name;
	return p;
}

static hie_err_t text_of(const xmlNode *n, struct hie_buf *b)
{
	hie_buf_reset(b);
	return hie_xml_text(n, b);
}

/* Reads one rim:Slot the query defines into its parameter. Errors into r. */
static hie_err_t read_slot(struct registry_sq_request *q, const struct pdef *d, size_t ndefs, const xmlNode *slot,
			   size_t *total, struct registry_response *r)
{
	struct registry_sq_param *p = param_for(q, d, ndefs);
	if (!p)
		return HIE_ENOMEM;
	if (p->ngroups && !(d->flags & F_ANDOR))
		return registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_SQ_PARAM_NUMBER, d->name,
					     "parameter %s is given in more than one Slot", d->name);
	struct registry_sq_group *ng = realloc(p->groups, (p->ngroups + 1) * sizeof *ng);
	if (!ng)
		return HIE_ENOMEM;
	p->groups = ng;
	struct registry_sq_group *g = &p->groups[p->ngroups++];
	memset(g, 0, sizeof *g);

	struct hie_buf text;
	hie_buf_init(&text, REGISTRY_SQ_MAX_VALUE_TEXT);
	hie_err_t err = HIE_OK;
	size_t nvalue_elems = 0;
	bool any_list = false;
	const xmlNode *vl = hie_xml_child(slot, REGISTRY_NS_RIM, "ValueList"), *val;
	for (val = vl ? hie_xml_child(vl, REGISTRY_NS_RIM, "Value") : NULL; val && !err;
	     val = hie_xml_next(val, REGISTRY_NS_RIM, "Value")) {
		nvalue_elems++;
		err = text_of(val, &text);
		if (err == HIE_ETOOBIG) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, d->name,
						    "a Value element of %s is longer than %u bytes", d->name,
						    REGISTRY_SQ_MAX_VALUE_TEXT);
			goto out;
		}
		if (err)
			goto out;
		if (!registry_sq_valid_utf8(text.data ? text.data : "", text.len)) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, d->name,
						    "a value of %s is not valid UTF-8", d->name);
			goto out;
		}
		struct vparse v = {.p = hie_buf_str(&text), .n = text.len, .g = g, .total = total};
		err = parse_value(&v);
		any_list |= v.list;
		if (err == HIE_EPARSE) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, d->name,
						    "the value of %s is neither a 'string', a number nor a ( ) list of "
						    "them", d->name);
			goto out;
		}
		if (err == HIE_EINVAL) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, d->name,
						    "a value of %s is longer than %u bytes", d->name,
						    REGISTRY_SQ_MAX_VALUE_LEN);
			goto out;
		}
		if (err == HIE_ETOOBIG) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_OUT_OF_RESOURCES, d->name,
						    "the request has more than %u parameter values",
						    REGISTRY_SQ_MAX_VALUES);
			goto out;
		}
	}
	if (err)
		goto out;
	if (g->n == 0) {
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_SQ_PARAM_NUMBER, d->name,
					    "parameter %s has no value", d->name);
		goto out;
	}
	if (!(d->flags & F_MULTI) && (g->n > 1 || nvalue_elems > 1)) {
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_SQ_PARAM_NUMBER, d->name,
					    "parameter %s accepts a single value; %zu given", d->name, g->n);
		goto out;
	}
	(void)any_list; /* a one-item list for a single-valued parameter is tolerated, as is a bare multi value */
	for (size_t i = 0; i < g->n && !err; i++) {
		const char *s = g->values[i];
		if (d->type == P_CODE && !valid_code(s))
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, d->name,
						    "%s: a code must be coded as 'code^^scheme'", d->name);
		else if (d->type == P_TIME && !valid_time(s))
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, d->name,
						    "%s: a time must be a UTC DTM (YYYY[MM[DD[hh[mm[ss]]]]])", d->name);
		else if (d->type == P_NUM && !((s[0] >= '0' && s[0] <= '9') && strlen(s) < 10))
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, d->name,
						    "%s must be a number", d->name);
	}
out:
	hie_buf_free(&text);
	return err;
}

static hie_err_t check_required(const struct registry_sq_request *q, const struct pdef *defs,
				struct registry_response *r)
{
	hie_err_t err = HIE_OK;
	for (const struct pdef *d = defs; d->name && !err; d++) {
		if (!(d->flags & F_REQ))
			continue;
		if (!d->alt) {
			if (!registry_sq_get(q, d->name))
				err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_SQ_PARAM_NUMBER, d->name,
							    "required parameter %s is missing", d->name);
			continue;
		}
		/* An alternative group is checked once, at its first member. */
		const struct pdef *first = defs;
		while (first->alt != d->alt)
			first++;
		if (first != d)
			continue;
		size_t given = 0;
		char names[512] = "";
		size_t len = 0;
		for (const struct pdef *e = defs; e->name; e++) {
			if (e->alt != d->alt)
				continue;
			given += registry_sq_get(q, e->name) != NULL;
			int w = snprintf(names + len, sizeof names - len, "%s%s", len ? " or " : "", e->name);
			if (w > 0 && (size_t)w < sizeof names - len)
				len += (size_t)w;
		}
		if (given != 1)
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_SQ_PARAM_NUMBER, d->name,
						    "exactly one of %s must be given (%zu given)", names, given);
	}
	return err;
}

static hie_err_t read_header(const xmlNode *req, struct registry_sq_request *q, const xmlNode **adhoc,
			     struct registry_response *r)
{
	struct hie_buf b;
	hie_buf_init(&b, 1024);
	hie_err_t err = HIE_OK;
	q->leaf_class = false; /* ebRS default returnType is RegistryObject; XDS peers always send one */
	const xmlNode *opt = hie_xml_child(req, REGISTRY_NS_QUERY, "ResponseOption");
	if (opt && hie_xml_attr(opt, NULL, "returnType", &b) == HIE_OK) {
		const char *rt = hie_buf_str(&b);
		if (strcmp(rt, "LeafClass") == 0)
			q->leaf_class = true;
		else if (strcmp(rt, "ObjectRef") != 0)
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
						    "returnType must be LeafClass or ObjectRef");
	} else {
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
					    "query:ResponseOption/@returnType is missing");
	}
	*adhoc = hie_xml_child(req, REGISTRY_NS_RIM, "AdhocQuery");
	if (!err && !*adhoc)
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
					    "rim:AdhocQuery is missing");
	if (err || r->nerrors)
		goto out;
	hie_buf_reset(&b);
	int which = -1;
	if (hie_xml_attr(*adhoc, NULL, "id", &b) == HIE_OK)
		for (int i = 0; i < REGISTRY_SQ_COUNT; i++)
			if (strcmp(hie_buf_str(&b), queries[i].uuid) == 0)
				which = i;
	if (which < 0) {
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_UNKNOWN_SQ, NULL,
					    "unknown stored query id '%.80s'", hie_buf_str(&b));
		goto out;
	}
	q->query = (enum registry_sq_query)which;
	hie_buf_reset(&b);
	if (hie_xml_attr(*adhoc, NULL, "home", &b) == HIE_OK && b.len) {
		if (!registry_sq_valid_utf8(b.data, b.len)) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
						    "AdhocQuery/@home is not valid UTF-8");
			goto out;
		}
		q->home = hie_buf_steal(&b, NULL);
	}
out:
	hie_buf_free(&b);
	return err == HIE_ETOOBIG ? registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
							   "an attribute of the request is too long")
				  : err;
}

hie_err_t registry_sq_parse(const xmlNode *req, struct registry_sq_request **out, struct registry_response *r)
{
	*out = NULL;
	size_t errors_before = r->nerrors;
	struct registry_sq_request *q = calloc(1, sizeof *q);
	struct hie_buf name;
	hie_buf_init(&name, 256);
	if (!q)
		return HIE_ENOMEM;
	const xmlNode *adhoc = NULL;
	hie_err_t err = read_header(req, q, &adhoc, r);
	if (err || r->nerrors > errors_before)
		goto out;
	const struct pdef *defs = queries[q->query].params;
	size_t ndefs = 0;
	while (defs[ndefs].name)
		ndefs++;
	q->params = calloc(ndefs, sizeof *q->params);
	if (!q->params) {
		err = HIE_ENOMEM;
		goto out;
	}
	size_t nslots = 0, total = 0;
	const xmlNode *slot;
	HIE_XML_FOREACH(slot, adhoc, REGISTRY_NS_RIM, "Slot")
	{
		if (err || r->nerrors > errors_before)
			break;
		if (++nslots > REGISTRY_SQ_MAX_SLOTS) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_OUT_OF_RESOURCES, NULL,
						    "the query has more than %u Slots", REGISTRY_SQ_MAX_SLOTS);
			break;
		}
		hie_buf_reset(&name);
		if (hie_xml_attr(slot, NULL, "name", &name) != HIE_OK)
			continue; /* a nameless slot names no parameter: ignored like an unknown one */
		const struct pdef *d = find_def(defs, hie_buf_str(&name));
		if (!d)
			continue; /* ebRS 3.0 §6.3.2.1: parameters the query does not define are ignored */
		err = read_slot(q, d, ndefs, slot, &total, r);
	}
	if (!err && r->nerrors == errors_before)
		err = check_required(q, defs, r);
out:
	hie_buf_free(&name);
	if (err || r->nerrors > errors_before) {
		registry_sq_free(q);
		return err == HIE_ENOMEM ? err : HIE_OK;
	}
	*out = q;
	return HIE_OK;
}
