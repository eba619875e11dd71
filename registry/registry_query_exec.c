/*
 * registry_query_exec.c — runs a parsed stored query (registry_sq_exec) over the registry tables and writes
 * the rim:RegistryObjectList content.
 *
 * Every query runs inside one read-only REPEATABLE READ transaction (hie_db_tx), so the steps of the
 * multi-step queries (GetSubmissionSetAndContents, GetFolderAndContents, GetRelatedDocuments, GetAll,
 * GetDocumentsAndAssociations, GetFoldersForDocument) see one snapshot. SQL text is assembled from constant
 * fragments and $n placeholders only; every value is bound (PQexecParams through hie_db_exec), lists as text[]
 * literals with each element quoted and escaped. The patient-scoped queries filter on (patient_id, status)
 * (and kind for packages) first so that they use the indexes of migration 2.
 *
 * Each statement asks for at most (limit - rows so far + 1) rows: one row over the limit means
 * XDSTooManyResults. LeafClass results are then checked for one patient (XDSResultNotSinglePatient), and the
 * reg_extra rows of the returned objects are fetched and emitted right after their owner.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "registry/registry.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_query.h"
#include "registry/registry_store.h"

#define DE "$XDSDocumentEntry"

/* Results ----------------------------------------------------------------------------------------------- */

enum okind { K_DOC = 'D', K_PKG = 'P', K_ASSOC = 'A' };

struct obj {
	char *uuid, *patient, *status, *xml;
	size_t xml_len;
	char kind;
	bool drop;            /* a duplicate of an earlier row */
};

struct extra {
	char *owner, *xml;
	size_t xml_len, order;
};

struct extras {
	struct extra *v;
	size_t n;
};

static void extras_free(struct extras *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].owner);
		free(e->v[i].xml);
	}
	free(e->v);
	memset(e, 0, sizeof *e);
}

struct res {
	struct obj *v;
	size_t n, cap;
	size_t limit;         /* objects allowed */
	bool too_many;
	bool leaf;
};

static void res_clear(struct res *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].uuid);
		free(r->v[i].patient);
		free(r->v[i].status);
		free(r->v[i].xml);
	}
	r->n = 0;
	r->too_many = false;
}

static void res_free(struct res *r)
{
	res_clear(r);
	free(r->v);
	r->v = NULL;
	r->cap = 0;
}

static char *dup_or_null(const PGresult *pr, int row, int col, size_t *len)
{
	if (PQgetisnull(pr, row, col))
		return NULL;
	size_t n = (size_t)PQgetlength(pr, row, col);
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, PQgetvalue(pr, row, col), n);
		s[n] = '\0';
	}
	if (len)
		*len = n;
	return s;
}

/* Appends the rows of pr (uuid, patient_id, status, xml) as objects of kind k. */
static hie_err_t res_add_rows(struct res *r, const PGresult *pr, char k)
{
	int rows = PQntuples(pr);
	for (int i = 0; i < rows; i++) {
		if (r->n >= r->limit) {
			r->too_many = true;
			return HIE_OK;
		}
		if (r->n == r->cap) {
			size_t ncap = r->cap ? r->cap * 2 : 16;
			struct obj *nv = realloc(r->v, ncap * sizeof *nv);
			if (!nv)
				return HIE_ENOMEM;
			r->v = nv;
			r->cap = ncap;
		}
		struct obj *o = &r->v[r->n];
		memset(o, 0, sizeof *o);
		o->kind = k;
		o->uuid = dup_or_null(pr, i, 0, NULL);
		o->patient = dup_or_null(pr, i, 1, NULL);
		o->status = dup_or_null(pr, i, 2, NULL);
		o->xml = dup_or_null(pr, i, 3, &o->xml_len);
		r->n++;
		if (!o->uuid || (!o->patient && !PQgetisnull(pr, i, 1)) || (!o->status && !PQgetisnull(pr, i, 2)) ||
		    (!o->xml && !PQgetisnull(pr, i, 3)))
			return HIE_ENOMEM;
	}
	return HIE_OK;
}

/* SQL builder: text from constant fragments, values only as bound parameters. -------------------------- */

#define SQL_MAX_PARAMS 128
#define SQL_ARRAY_MAX (256u * 1024u * 1024u) /* one text[] literal */

struct sqlb {
	struct hie_buf sql;
	const char *p[SQL_MAX_PARAMS];
	char *owned[SQL_MAX_PARAMS];
	int np;
	hie_err_t err;
};

static void sqlb_init(struct sqlb *b)
{
	memset(b, 0, sizeof *b);
	hie_buf_init(&b->sql, 64u * 1024u);
}

static void sqlb_free(struct sqlb *b)
{
	for (int i = 0; i < b->np; i++)
		free(b->owned[i]);
	hie_buf_free(&b->sql);
}

static void sql(struct sqlb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql(struct sqlb *b, const char *fmt, ...)
{
	if (b->err)
		return;
	va_list ap;
	va_start(ap, fmt);
	b->err = hie_buf_vaddf(&b->sql, fmt, ap);
	va_end(ap);
}

/* Binds a value (owned: freed with the builder) and returns its placeholder number (0 on error). */
static int bind_owned(struct sqlb *b, char *v)
{
	if (b->err || b->np >= SQL_MAX_PARAMS) {
		if (!b->err)
			b->err = HIE_EINVAL; /* our bug: too many placeholders in one statement */
		free(v);
		return 0;
	}
	b->owned[b->np] = v;
	b->p[b->np] = v;
	return ++b->np;
}

static int bind(struct sqlb *b, const char *v)
{
	char *c = v ? strdup(v) : NULL;
	if (v && !c) {
		b->err = HIE_ENOMEM;
		return 0;
	}
	return bind_owned(b, c);
}

static int bind_array(struct sqlb *b, char *const *v, size_t n)
{
	if (b->err)
		return 0;
	struct hie_buf a;
	hie_buf_init(&a, SQL_ARRAY_MAX);
	b->err = registry_store_array(&a, (const char *const *)v, n);
	if (b->err) {
		hie_buf_free(&a);
		return 0;
	}
	return bind_owned(b, hie_buf_steal(&a, NULL));
}

/* All values of a parameter's groups as one list (for parameters that are not AND/OR). */
static int bind_param(struct sqlb *b, const struct registry_sq_param *p)
{
	return bind_array(b, p->groups[0].values, p->groups[0].n);
}

/* Binds the uuids of the result's objects of kind k from index `from` (k 0 = any kind). */
static int bind_ids(struct sqlb *b, const struct res *r, char k, size_t from)
{
	char **ids = calloc(r->n + 1, sizeof *ids);
	if (!ids) {
		b->err = HIE_ENOMEM;
		return 0;
	}
	size_t n = 0;
	for (size_t i = from; i < r->n; i++)
		if (!k || r->v[i].kind == k)
			ids[n++] = r->v[i].uuid;
	int ph = bind_array(b, ids, n);
	free(ids);
	return ph;
}

/* Runs the built statement with LIMIT and adds its rows as kind k. */
static hie_err_t run(PGconn *c, struct sqlb *b, struct res *r, char k)
{
	if (!b->err && !r->too_many) {
		size_t room = r->limit > r->n ? r->limit - r->n : 0;
		sql(b, " LIMIT %zu", room + 1);
	}
	if (b->err || r->too_many)
		return b->err;
	PGresult *pr = NULL;
	hie_err_t err = hie_db_exec(c, hie_buf_str(&b->sql), b->np, b->p, &pr);
	if (!err)
		err = res_add_rows(r, pr, k);
	PQclear(pr);
	return err;
}

/* Filters ----------------------------------------------------------------------------------------------- */

static const char *cols(const struct res *r, char k)
{
	if (k == K_DOC)
		return r->leaf ? "SELECT d.uuid, d.patient_id, d.status, d.xml FROM reg_documents d"
			       : "SELECT d.uuid, d.patient_id, d.status, NULL FROM reg_documents d";
	if (k == K_PKG)
		return r->leaf ? "SELECT p.uuid, p.patient_id, p.status, p.xml FROM reg_packages p"
			       : "SELECT p.uuid, p.patient_id, p.status, NULL FROM reg_packages p";
	return r->leaf ? "SELECT a.uuid, NULL, a.status, a.xml FROM reg_associations a"
		       : "SELECT a.uuid, NULL, a.status, NULL FROM reg_associations a";
}

/* The patient id in the canonical form the store uses (registry_pid_format); as given when it does not parse. */
static int bind_pid(struct sqlb *b, const struct registry_sq_param *p)
{
	const char *v = p->groups[0].values[0];
	struct registry_pid pid;
	if (registry_pid_parse(v, strlen(v), &pid) != HIE_OK)
		return bind(b, v);
	char text[REGISTRY_PID_TEXT_MAX];
	registry_pid_format(&pid, text, sizeof text);
	return bind(b, text);
}

/* col = ANY(values) when the parameter is given. */
static void f_any(struct sqlb *b, const struct registry_sq_request *q, const char *name, const char *col)
{
	const struct registry_sq_param *p = registry_sq_get(q, name);
	if (p)
		sql(b, " AND %s = ANY($%d::text[])", col, bind_param(b, p));
}

/* Array column overlaps each slot's values: AND of ORs. */
static void f_overlap(struct sqlb *b, const struct registry_sq_request *q, const char *name, const char *col)
{
	const struct registry_sq_param *p = registry_sq_get(q, name);
	for (size_t g = 0; p && g < p->ngroups; g++)
		sql(b, " AND %s && $%d::text[]", col, bind_array(b, p->groups[g].values, p->groups[g].n));
}

/* DTM text range: From inclusive, To exclusive; lexical order of DTM text is time order at the precision given. */
static void f_time(struct sqlb *b, const struct registry_sq_request *q, const char *from, const char *to,
		   const char *col)
{
	const struct registry_sq_param *p = registry_sq_get(q, from);
	if (p)
		sql(b, " AND %s COLLATE \"C\" >= $%d", col, bind(b, p->groups[0].values[0]));
	p = registry_sq_get(q, to);
	if (p)
		sql(b, " AND %s COLLATE \"C\" < $%d", col, bind(b, p->groups[0].values[0]));
}

/* Author person patterns: SQL LIKE with the peer's % and _; a backslash (LIKE's escape) is taken literally. */
static void f_author(struct sqlb *b, const struct registry_sq_request *q, const char *name, const char *col)
{
	const struct registry_sq_param *p = registry_sq_get(q, name);
	if (!p || b->err)
		return;
	const struct registry_sq_group *g = &p->groups[0];
	char **pat = calloc(g->n, sizeof *pat);
	if (!pat) {
		b->err = HIE_ENOMEM;
		return;
	}
	for (size_t i = 0; i < g->n && !b->err; i++) {
		size_t len = strlen(g->values[i]);
		pat[i] = malloc(2 * len + 1);
		if (!pat[i]) {
			b->err = HIE_ENOMEM;
			break;
		}
		size_t o = 0;
		for (size_t j = 0; j < len; j++) {
			if (g->values[i][j] == '\\')
				pat[i][o++] = '\\';
			pat[i][o++] = g->values[i][j];
		}
		pat[i][o] = '\0';
	}
	int ph = bind_array(b, pat, g->n);
	for (size_t i = 0; i < g->n; i++)
		free(pat[i]);
	free(pat);
	sql(b, " AND EXISTS (SELECT 1 FROM unnest(%s) ap WHERE ap LIKE ANY ($%d::text[]))", col, ph);
}

/* $XDSDocumentEntryType, when the query defines it: stable only unless the peer asks (TF 3.18.4.1.2.3.6.2). */
static void f_doc_type(struct sqlb *b, const struct registry_sq_request *q, bool defined)
{
	if (!defined)
		return;
	const struct registry_sq_param *p = registry_sq_get(q, DE "Type");
	bool stable = !p, on_demand = false;
	for (size_t i = 0; p && i < p->groups[0].n; i++) {
		stable |= strcmp(p->groups[0].values[i], REGISTRY_UUID_DE_STABLE) == 0;
		on_demand |= strcmp(p->groups[0].values[i], REGISTRY_UUID_DE_ONDEMAND) == 0;
	}
	if (stable && on_demand)
		return;
	sql(b, " AND d.on_demand = %s", on_demand ? "true" : stable ? "false" : "NULL");
}

/* Every DocumentEntry filter the query defines and the request gave. */
static void doc_filters(struct sqlb *b, const struct registry_sq_request *q, bool type_defined)
{
	f_any(b, q, DE "ClassCode", "d.class_code");
	f_any(b, q, DE "TypeCode", "d.type_code");
	f_any(b, q, DE "PracticeSettingCode", "d.practice_code");
	f_any(b, q, DE "HealthcareFacilityTypeCode", "d.hcft_code");
	f_any(b, q, DE "FormatCode", "d.format_code");
	f_overlap(b, q, DE "EventCodeList", "d.event_codes");
	f_overlap(b, q, DE "ConfidentialityCode", "d.conf_codes");
	f_overlap(b, q, DE "ReferenceIdList", "d.reference_ids");
	f_time(b, q, DE "CreationTimeFrom", DE "CreationTimeTo", "d.creation_time");
	f_time(b, q, DE "ServiceStartTimeFrom", DE "ServiceStartTimeTo", "d.service_start_time");
	f_time(b, q, DE "ServiceStopTimeFrom", DE "ServiceStopTimeTo", "d.service_stop_time");
	f_author(b, q, DE "AuthorPerson", "d.author_persons");
	f_doc_type(b, q, type_defined);
}

#define HASMEMBER "'" REGISTRY_ASSOC_HASMEMBER "'"

/* The queries -------------------------------------------------------------------------------------------- */

struct ctx {
	const struct registry_sq_request *q;
	struct res *r;
	struct extras *e;
};
static hie_err_t fetch_extras(PGconn *c, const struct res *r, struct extras *e);

static hie_err_t q_find_documents(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	struct sqlb b;
	sqlb_init(&b);
	sql(&b, "%s WHERE d.patient_id = $%d", cols(r, K_DOC), bind_pid(&b, registry_sq_get(q, DE "PatientId")));
	sql(&b, " AND d.status = ANY($%d::text[])", bind_param(&b, registry_sq_get(q, DE "Status")));
	doc_filters(&b, q, true);
	sql(&b, " ORDER BY d.seq");
	hie_err_t err = run(c, &b, r, K_DOC);
	sqlb_free(&b);
	return err;
}

static hie_err_t q_find_packages(PGconn *c, const struct registry_sq_request *q, struct res *r, bool ss)
{
	struct sqlb b;
	sqlb_init(&b);
	const char *pfx = ss ? "$XDSSubmissionSet" : "$XDSFolder";
	char name[64];
	snprintf(name, sizeof name, "%sPatientId", pfx);
	sql(&b, "%s WHERE p.patient_id = $%d AND p.kind = '%s'", cols(r, K_PKG), bind_pid(&b, registry_sq_get(q, name)),
	    ss ? "SubmissionSet" : "Folder");
	snprintf(name, sizeof name, "%sStatus", pfx);
	sql(&b, " AND p.status = ANY($%d::text[])", bind_param(&b, registry_sq_get(q, name)));
	if (ss) {
		f_any(&b, q, "$XDSSubmissionSetSourceId", "p.source_id");
		f_time(&b, q, "$XDSSubmissionSetSubmissionTimeFrom", "$XDSSubmissionSetSubmissionTimeTo",
		       "p.submission_time");
		f_author(&b, q, "$XDSSubmissionSetAuthorPerson", "p.author_persons");
		f_overlap(&b, q, "$XDSSubmissionSetContentType", "p.codes");
	} else {
		f_time(&b, q, "$XDSFolderLastUpdateTimeFrom", "$XDSFolderLastUpdateTimeTo", "p.last_update_time");
		f_overlap(&b, q, "$XDSFolderCodeList", "p.codes");
	}
	sql(&b, " ORDER BY p.seq");
	hie_err_t err = run(c, &b, r, K_PKG);
	sqlb_free(&b);
	return err;
}

/* Documents (GetDocuments) or Folders (GetFolders) by entryUUID, uniqueId or logicalID: any status. */
static hie_err_t q_get_by_ids(PGconn *c, const struct registry_sq_request *q, struct res *r, bool docs)
{
	const char *pfx = docs ? DE : "$XDSFolder";
	static const char *const suffix[] = {"EntryUUID", "UniqueId", "LogicalID"};
	static const char *const col[] = {"uuid", "unique_id", "lid"};
	struct sqlb b;
	sqlb_init(&b);
	for (int i = 0; i < 3; i++) {
		char name[64];
		snprintf(name, sizeof name, "%s%s", pfx, suffix[i]);
		const struct registry_sq_param *p = registry_sq_get(q, name);
		if (!p)
			continue;
		if (docs)
			sql(&b, "%s WHERE d.%s = ANY($%d::text[]) ORDER BY d.seq", cols(r, K_DOC), col[i],
			    bind_param(&b, p));
		else
			sql(&b, "%s WHERE p.kind = 'Folder' AND p.%s = ANY($%d::text[]) ORDER BY p.seq", cols(r, K_PKG),
			    col[i], bind_param(&b, p));
		break;
	}
	hie_err_t err = run(c, &b, r, docs ? K_DOC : K_PKG);
	sqlb_free(&b);
	return err;
}

/* Associations with source or target among the ids of array placeholder set by the caller's builder. */
static hie_err_t assocs_touching(PGconn *c, struct res *r, char *const *ids, size_t n, const struct res *from,
				 char kind)
{
	struct sqlb b;
	sqlb_init(&b);
	int ph = ids ? bind_array(&b, ids, n) : bind_ids(&b, from, kind, 0);
	sql(&b, "%s WHERE a.source = ANY($%d::text[]) OR a.target = ANY($%d::text[]) ORDER BY a.seq", cols(r, K_ASSOC),
	    ph, ph);
	hie_err_t err = run(c, &b, r, K_ASSOC);
	sqlb_free(&b);
	return err;
}

static hie_err_t q_get_associations(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	const struct registry_sq_param *p = registry_sq_get(q, "$uuid");
	return assocs_touching(c, r, p->groups[0].values, p->groups[0].n, NULL, 0);
}

static hie_err_t q_get_docs_and_assocs(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	hie_err_t err = q_get_by_ids(c, q, r, true);
	if (!err && r->n && !r->too_many)
		err = assocs_touching(c, r, NULL, 0, r, K_DOC);
	return err;
}

static hie_err_t q_get_submission_sets(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	struct sqlb b;
	sqlb_init(&b);
	int ph = bind_param(&b, registry_sq_get(q, "$uuid"));
	sql(&b,
	    "%s WHERE p.kind = 'SubmissionSet' AND p.uuid IN (SELECT m.source FROM reg_associations m"
	    " WHERE m.type = " HASMEMBER " AND m.target = ANY($%d::text[])) ORDER BY p.seq",
	    cols(r, K_PKG), ph);
	hie_err_t err = run(c, &b, r, K_PKG);
	sqlb_free(&b);
	if (err || !r->n || r->too_many)
		return err;
	sqlb_init(&b);
	ph = bind_param(&b, registry_sq_get(q, "$uuid"));
	int ss = bind_ids(&b, r, K_PKG, 0);
	sql(&b, "%s WHERE a.type = " HASMEMBER " AND a.target = ANY($%d::text[]) AND a.source = ANY($%d::text[])"
		" ORDER BY a.seq", cols(r, K_ASSOC), ph, ss);
	err = run(c, &b, r, K_ASSOC);
	sqlb_free(&b);
	return err;
}

/* The package named by its entryUUID or uniqueId parameter (GetSubmissionSetAndContents, GetFolderAndContents). */
static hie_err_t package_by_id(PGconn *c, const struct registry_sq_request *q, struct res *r, bool ss)
{
	const char *pfx = ss ? "$XDSSubmissionSet" : "$XDSFolder";
	char name[64];
	snprintf(name, sizeof name, "%sEntryUUID", pfx);
	const struct registry_sq_param *p = registry_sq_get(q, name);
	bool by_uuid = p != NULL;
	if (!p) {
		snprintf(name, sizeof name, "%sUniqueId", pfx);
		p = registry_sq_get(q, name);
	}
	struct sqlb b;
	sqlb_init(&b);
	sql(&b, "%s WHERE p.kind = '%s' AND p.%s = $%d ORDER BY p.seq", cols(r, K_PKG), ss ? "SubmissionSet" : "Folder",
	    by_uuid ? "uuid" : "unique_id", bind(&b, p->groups[0].values[0]));
	hie_err_t err = run(c, &b, r, K_PKG);
	sqlb_free(&b);
	return err;
}

/* Adds an association-status filter ($XDSAssociationStatus) on alias `al` when given. */
static void f_assoc_status(struct sqlb *b, const struct registry_sq_request *q, const char *al)
{
	const struct registry_sq_param *p = registry_sq_get(q, "$XDSAssociationStatus");
	if (p)
		sql(b, " AND %s.status = ANY($%d::text[])", al, bind_param(b, p));
}

static hie_err_t q_package_contents(PGconn *c, const struct registry_sq_request *q, struct res *r, bool ss)
{
	hie_err_t err = package_by_id(c, q, r, ss);
	if (err || !r->n || r->too_many)
		return err;
	size_t ndocs_from = r->n;
	char *top = r->v[0].uuid; /* the package (a uniqueId names one per version: the first registered) */
	/* DocumentEntries the package holds, filtered by the document parameters. */
	struct sqlb b;
	sqlb_init(&b);
	int pk = bind_array(&b, &top, 1);
	sql(&b, "%s WHERE d.uuid IN (SELECT m.target FROM reg_associations m WHERE m.source = ANY($%d::text[])"
		" AND m.type = " HASMEMBER, cols(r, K_DOC), pk);
	f_assoc_status(&b, q, "m");
	sql(&b, ")");
	doc_filters(&b, q, true);
	sql(&b, " ORDER BY d.seq");
	err = run(c, &b, r, K_DOC);
	sqlb_free(&b);
	if (err || r->too_many)
		return err;
	if (ss) {
		/* Folders of the submission set, and the associations it holds (Folder → DocumentEntry links) when
		 * their target is a returned document or not a document at all. */
		sqlb_init(&b);
		pk = bind_array(&b, &top, 1);
		sql(&b, "%s WHERE p.kind = 'Folder' AND p.uuid IN (SELECT m.target FROM reg_associations m"
			" WHERE m.source = ANY($%d::text[]) AND m.type = " HASMEMBER ") ORDER BY p.seq",
		    cols(r, K_PKG), pk);
		err = run(c, &b, r, K_PKG);
		sqlb_free(&b);
		if (err || r->too_many)
			return err;
		sqlb_init(&b);
		pk = bind_array(&b, &top, 1);
		int docs = bind_ids(&b, r, K_DOC, ndocs_from);
		sql(&b, "%s WHERE a.uuid IN (SELECT m.target FROM reg_associations m WHERE m.source = ANY($%d::text[])"
			" AND m.type = " HASMEMBER ") AND (a.target = ANY($%d::text[]) OR NOT EXISTS"
			" (SELECT 1 FROM reg_documents x WHERE x.uuid = a.target)) ORDER BY a.seq",
		    cols(r, K_ASSOC), pk, docs);
		err = run(c, &b, r, K_ASSOC);
		sqlb_free(&b);
		if (err || r->too_many)
			return err;
	}
	/* The package's HasMember associations to what is returned. */
	sqlb_init(&b);
	int src = bind_array(&b, &top, 1);
	int kept = bind_ids(&b, r, 0, 1);
	sql(&b, "%s WHERE a.source = ANY($%d::text[]) AND a.type = " HASMEMBER " AND a.target = ANY($%d::text[])",
	    cols(r, K_ASSOC), src, kept);
	f_assoc_status(&b, q, "a");
	sql(&b, " ORDER BY a.seq");
	err = run(c, &b, r, K_ASSOC);
	sqlb_free(&b);
	return err;
}

/* The DocumentEntry named by $XDSDocumentEntryEntryUUID or $XDSDocumentEntryUniqueId: SQL condition on d. */
static void doc_named(struct sqlb *b, const struct registry_sq_request *q, const char *al)
{
	const struct registry_sq_param *p = registry_sq_get(q, DE "EntryUUID");
	if (p)
		sql(b, "%s.uuid = $%d", al, bind(b, p->groups[0].values[0]));
	else
		sql(b, "%s.unique_id = $%d", al, bind(b, registry_sq_get(q, DE "UniqueId")->groups[0].values[0]));
}

static hie_err_t q_folders_for_document(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	struct sqlb b;
	sqlb_init(&b);
	sql(&b, "%s WHERE p.kind = 'Folder' AND p.uuid IN (SELECT m.source FROM reg_associations m JOIN reg_documents x"
		" ON x.uuid = m.target WHERE m.type = " HASMEMBER " AND ", cols(r, K_PKG));
	doc_named(&b, q, "x");
	sql(&b, ") ORDER BY p.seq");
	hie_err_t err = run(c, &b, r, K_PKG);
	sqlb_free(&b);
	return err;
}

static hie_err_t q_related_documents(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	struct sqlb b;
	sqlb_init(&b);
	sql(&b, "%s WHERE ", cols(r, K_DOC));
	doc_named(&b, q, "d");
	sql(&b, " ORDER BY d.seq");
	hie_err_t err = run(c, &b, r, K_DOC);
	sqlb_free(&b);
	if (err || !r->n || r->too_many)
		return err;
	size_t norig = r->n;
	sqlb_init(&b);
	int orig = bind_ids(&b, r, K_DOC, 0);
	int types = bind_param(&b, registry_sq_get(q, "$AssociationTypes"));
	sql(&b, "%s WHERE d.uuid IN (SELECT CASE WHEN m.source = ANY($%d::text[]) THEN m.target ELSE m.source END"
		" FROM reg_associations m WHERE m.type = ANY($%d::text[]) AND (m.source = ANY($%d::text[])"
		" OR m.target = ANY($%d::text[]))) AND NOT d.uuid = ANY($%d::text[])",
	    cols(r, K_DOC), orig, types, orig, orig, orig);
	f_doc_type(&b, q, true);
	sql(&b, " ORDER BY d.seq");
	err = run(c, &b, r, K_DOC);
	sqlb_free(&b);
	if (err || r->too_many)
		return err;
	if (r->n == norig) {
		res_clear(r); /* no related document: nothing is returned (TF 3.18.4.1.2.3.7.14) */
		return HIE_OK;
	}
	sqlb_init(&b);
	orig = bind_ids(&b, r, K_DOC, 0);
	types = bind_param(&b, registry_sq_get(q, "$AssociationTypes"));
	sql(&b, "%s WHERE a.type = ANY($%d::text[]) AND a.source = ANY($%d::text[]) AND a.target = ANY($%d::text[])"
		" ORDER BY a.seq", cols(r, K_ASSOC), types, orig, orig);
	err = run(c, &b, r, K_ASSOC);
	sqlb_free(&b);
	return err;
}

static hie_err_t q_get_all(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	const struct registry_sq_param *pid = registry_sq_get(q, "$patientId");
	struct sqlb b;
	sqlb_init(&b);
	sql(&b, "%s WHERE d.patient_id = $%d", cols(r, K_DOC), bind_pid(&b, pid));
	sql(&b, " AND d.status = ANY($%d::text[])", bind_param(&b, registry_sq_get(q, DE "Status")));
	doc_filters(&b, q, true);
	sql(&b, " ORDER BY d.seq");
	hie_err_t err = run(c, &b, r, K_DOC);
	sqlb_free(&b);
	static const char *const kinds[] = {"SubmissionSet", "Folder"};
	static const char *const status[] = {"$XDSSubmissionSetStatus", "$XDSFolderStatus"};
	for (int i = 0; i < 2 && !err && !r->too_many; i++) {
		sqlb_init(&b);
		sql(&b, "%s WHERE p.patient_id = $%d AND p.kind = '%s'", cols(r, K_PKG), bind_pid(&b, pid), kinds[i]);
		sql(&b, " AND p.status = ANY($%d::text[]) ORDER BY p.seq", bind_param(&b, registry_sq_get(q, status[i])));
		err = run(c, &b, r, K_PKG);
		sqlb_free(&b);
	}
	if (err || r->too_many || !r->n)
		return err;
	sqlb_init(&b);
	int all = bind_ids(&b, r, 0, 0);
	sql(&b, "%s WHERE a.source = ANY($%d::text[]) AND a.target = ANY($%d::text[]) ORDER BY a.seq", cols(r, K_ASSOC),
	    all, all);
	err = run(c, &b, r, K_ASSOC);
	sqlb_free(&b);
	if (err || r->too_many)
		return err;
	/* Associations to those associations: a SubmissionSet's HasMember to a Folder-DocumentEntry link. */
	sqlb_init(&b);
	all = bind_ids(&b, r, 0, 0);
	sql(&b, "%s WHERE a.source = ANY($%d::text[]) AND a.target = ANY($%d::text[]) AND NOT a.uuid = ANY($%d::text[])"
		" ORDER BY a.seq", cols(r, K_ASSOC), all, all, all);
	err = run(c, &b, r, K_ASSOC);
	sqlb_free(&b);
	return err;
}

static hie_err_t run_query(PGconn *c, const struct registry_sq_request *q, struct res *r);

static hie_err_t tx_fn(PGconn *c, void *arg)
{
	struct ctx *x = arg;
	const struct registry_sq_request *q = x->q;
	struct res *r = x->r;
	res_clear(r); /* hie_db_tx may run us again */
	extras_free(x->e);
	hie_err_t err = hie_db_exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL, NULL);
	if (!err)
		err = run_query(c, q, r);
	/* The extra objects of a LeafClass result, in the same snapshot. */
	if (!err && r->leaf && r->n && !r->too_many)
		err = fetch_extras(c, r, x->e);
	return err;
}

static hie_err_t run_query(PGconn *c, const struct registry_sq_request *q, struct res *r)
{
	switch (q->query) {
	case REGISTRY_SQ_FIND_DOCUMENTS:
	case REGISTRY_SQ_FIND_DOCUMENTS_BY_REFID:
		return q_find_documents(c, q, r);
	case REGISTRY_SQ_FIND_SUBMISSION_SETS:
		return q_find_packages(c, q, r, true);
	case REGISTRY_SQ_FIND_FOLDERS:
		return q_find_packages(c, q, r, false);
	case REGISTRY_SQ_GET_ALL:
		return q_get_all(c, q, r);
	case REGISTRY_SQ_GET_DOCUMENTS:
		return q_get_by_ids(c, q, r, true);
	case REGISTRY_SQ_GET_FOLDERS:
		return q_get_by_ids(c, q, r, false);
	case REGISTRY_SQ_GET_ASSOCIATIONS:
		return q_get_associations(c, q, r);
	case REGISTRY_SQ_GET_DOCUMENTS_AND_ASSOCIATIONS:
		return q_get_docs_and_assocs(c, q, r);
	case REGISTRY_SQ_GET_SUBMISSION_SETS:
		return q_get_submission_sets(c, q, r);
	case REGISTRY_SQ_GET_SUBMISSION_SET_AND_CONTENTS:
		return q_package_contents(c, q, r, true);
	case REGISTRY_SQ_GET_FOLDER_AND_CONTENTS:
		return q_package_contents(c, q, r, false);
	case REGISTRY_SQ_GET_FOLDERS_FOR_DOCUMENT:
		return q_folders_for_document(c, q, r);
	case REGISTRY_SQ_GET_RELATED_DOCUMENTS:
		return q_related_documents(c, q, r);
	case REGISTRY_SQ_COUNT:
		break;
	}
	return HIE_EINVAL;
}

/* Extra objects (reg_extra) ------------------------------------------------------------------------------ */


static int cmp_extra(const void *a, const void *b)
{
	const struct extra *x = a, *y = b;
	int c = strcmp(x->owner, y->owner);
	return c ? c : (x->order > y->order) - (x->order < y->order);
}

static hie_err_t fetch_extras(PGconn *c, const struct res *r, struct extras *e)
{
	struct sqlb b;
	sqlb_init(&b);
	sql(&b, "SELECT owner, xml FROM reg_extra WHERE owner = ANY($%d::text[]) ORDER BY seq", bind_ids(&b, r, 0, 0));
	PGresult *pr = NULL;
	hie_err_t err = b.err ? b.err : hie_db_exec(c, hie_buf_str(&b.sql), b.np, b.p, &pr);
	sqlb_free(&b);
	int rows = err ? 0 : PQntuples(pr);
	if (rows > 0) {
		e->v = calloc((size_t)rows, sizeof *e->v);
		if (!e->v)
			err = HIE_ENOMEM;
	}
	for (int i = 0; i < rows && !err; i++) {
		struct extra *x = &e->v[e->n++];
		x->owner = dup_or_null(pr, i, 0, NULL);
		x->xml = dup_or_null(pr, i, 1, &x->xml_len);
		x->order = (size_t)i;
		if (!x->owner || !x->xml)
			err = HIE_ENOMEM;
	}
	PQclear(pr);
	if (!err && e->n > 1)
		qsort(e->v, e->n, sizeof *e->v, cmp_extra);
	return err;
}

/* Emission ----------------------------------------------------------------------------------------------- */

/* True when the start tag of the element at xml (after its name, from offset i) has attribute `attr`. */
static bool start_tag_has(const char *xml, size_t len, size_t i, const char *attr)
{
	size_t alen = strlen(attr);
	while (i < len) {
		while (i < len && (xml[i] == ' ' || xml[i] == '\t' || xml[i] == '\n' || xml[i] == '\r'))
			i++;
		if (i >= len || xml[i] == '>' || xml[i] == '/')
			return false;
		size_t name = i;
		while (i < len && xml[i] != '=' && xml[i] != ' ' && xml[i] != '>')
			i++;
		bool match = i - name == alen && memcmp(xml + name, attr, alen) == 0;
		while (i < len && xml[i] != '"' && xml[i] != '\'')
			i++;
		if (i >= len)
			return false;
		char quote = xml[i++];
		while (i < len && xml[i] != quote)
			i++;
		i++;
		if (match)
			return true;
	}
	return false;
}

/* The object's XML with its status and, when the request gave one and the object has none, home. */
static hie_err_t emit_object(const struct obj *o, const char *home, struct hie_buf *tmp, struct hie_buf *out)
{
	hie_buf_reset(tmp);
	hie_err_t err = registry_store_emit(o->xml, o->xml_len, o->status, tmp);
	if (err)
		return err == HIE_EINVAL ? HIE_OK : err; /* a stored row that is not XML: skipped (logged by caller) */
	size_t name_end = 1;
	while (name_end < tmp->len && !strchr(" \t\r\n/>", tmp->data[name_end]))
		name_end++;
	if (!home || start_tag_has(tmp->data, tmp->len, name_end, "home"))
		return hie_buf_add(out, tmp->data, tmp->len);
	err = hie_buf_add(out, tmp->data, name_end);
	if (!err)
		err = hie_buf_addstr(out, " home=\"");
	if (!err)
		err = hie_buf_add_xml(out, home, strlen(home));
	if (!err)
		err = hie_buf_addstr(out, "\"");
	if (!err)
		err = hie_buf_add(out, tmp->data + name_end, tmp->len - name_end);
	return err;
}

static hie_err_t emit_all(const struct res *r, const struct extras *e, const char *home, struct hie_buf *out)
{
	struct hie_buf tmp;
	hie_buf_init(&tmp, out->max);
	hie_err_t err = HIE_OK;
	/* Packages first, then documents, then associations (the order in which XDS metadata is usually read). */
	static const char order[] = {K_PKG, K_DOC, K_ASSOC};
	for (int k = 0; k < 3 && !err; k++) {
		for (size_t i = 0; i < r->n && !err; i++) {
			const struct obj *o = &r->v[i];
			if (o->kind != order[k] || o->drop)
				continue;
			if (!r->leaf) {
				err = hie_buf_addstr(out, "<rim:ObjectRef id=\"");
				if (!err)
					err = hie_buf_add_xml(out, o->uuid, strlen(o->uuid));
				if (!err && home) {
					err = hie_buf_addstr(out, "\" home=\"");
					if (!err)
						err = hie_buf_add_xml(out, home, strlen(home));
				}
				if (!err)
					err = hie_buf_addstr(out, "\"/>");
				continue;
			}
			if (!o->xml)
				continue;
			err = emit_object(o, home, &tmp, out);
			/* Its extra objects, in registration order. */
			struct extra key = {.owner = o->uuid, .order = 0};
			size_t lo = 0, hi = e->n;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (cmp_extra(&e->v[mid], &key) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (size_t j = lo; j < e->n && !err && strcmp(e->v[j].owner, o->uuid) == 0; j++)
				err = hie_buf_add(out, e->v[j].xml, e->v[j].xml_len);
		}
	}
	hie_buf_free(&tmp);
	return err;
}

static int cmp_ptr_uuid(const void *a, const void *b)
{
	const struct obj *x = *(const struct obj *const *)a, *y = *(const struct obj *const *)b;
	int c = strcmp(x->uuid, y->uuid);
	return c ? c : (x > y) - (x < y);
}

/* Marks later duplicates (a multi-step query can reach one object twice). */
static hie_err_t dedupe(struct res *r)
{
	if (r->n < 2)
		return HIE_OK;
	struct obj **p = malloc(r->n * sizeof *p);
	if (!p)
		return HIE_ENOMEM;
	for (size_t i = 0; i < r->n; i++)
		p[i] = &r->v[i];
	qsort(p, r->n, sizeof *p, cmp_ptr_uuid);
	for (size_t i = 1; i < r->n; i++)
		if (strcmp(p[i]->uuid, p[i - 1]->uuid) == 0)
			p[i]->drop = true;
	free(p);
	return HIE_OK;
}

static hie_err_t db_error(hie_err_t err, struct registry_response *rr)
{
	if (err == HIE_ENOMEM)
		return err;
	hie_log(HIE_LOG_WARN, "event=registry.iti18.db err=%s sqlstate=%s", hie_errname(err), hie_db_sqlstate());
	if (err == HIE_EBUSY)
		return registry_response_add(rr, REGISTRY_SEV_ERROR, REGISTRY_ERR_BUSY, NULL,
					     "the registry is busy; retry later");
	return registry_response_add(rr, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
				     "the registry could not run the query");
}

hie_err_t registry_sq_exec(struct hie_db_pool *pool, size_t max_results, const struct registry_sq_request *q,
			   struct registry_response *rr, struct hie_buf *objects)
{
	if (!pool)
		return registry_response_add(rr, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
					     "the registry database is not available");
	struct res r = {.leaf = q->leaf_class};
	r.limit = q->leaf_class && max_results ? max_results : REGISTRY_SQ_OBJREF_MAX;
	struct extras e = {0};
	struct ctx x = {.q = q, .r = &r, .e = &e};
	hie_err_t err = hie_db_tx(pool, tx_fn, &x);
	if (err) {
		err = db_error(err, rr);
		goto out;
	}
	if (r.too_many) {
		err = registry_response_add(rr, REGISTRY_SEV_ERROR, REGISTRY_ERR_TOO_MANY, NULL,
					    "%s would return more than %zu objects", registry_sq_name(q->query), r.limit);
		goto out;
	}
	err = dedupe(&r);
	if (err || !q->leaf_class || !r.n)
		goto emit;
	const char *pid = NULL;
	for (size_t i = 0; i < r.n; i++) {
		if (r.v[i].drop || !r.v[i].patient)
			continue;
		if (pid && strcmp(pid, r.v[i].patient) != 0) {
			err = registry_response_add(rr, REGISTRY_SEV_ERROR, REGISTRY_ERR_NOT_SINGLE_PATIENT, NULL,
						    "the LeafClass result of %s spans more than one patient",
						    registry_sq_name(q->query));
			goto out;
		}
		pid = r.v[i].patient;
	}
emit:
	if (!err)
		err = emit_all(&r, &e, q->home, objects);
out:
	extras_free(&e);
	res_free(&r);
	return err;
}
