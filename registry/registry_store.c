/*
 * registry_store.c — writes a validated submission into the registry tables (registry_schema.c, migration 2)
 * and gives stored XML back with its current status. See registry_store.h.
 *
 * Each top-level object becomes one row: ExtrinsicObject → reg_documents, RegistryPackage → reg_packages,
 * Association → reg_associations, a top-level Classification / ExternalIdentifier → reg_extra with the object
 * it applies to as owner (ObjectRefs name objects stored before and are not stored again). The XML of a row is
 * the object's element as registered, with its status attribute removed (the column holds it) and lid set to
 * the id when the submitter sent none, and the registry's rim:VersionInfo.
 * Multi-valued columns are bound as text[] literals built here with every element quoted and escaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "core/core_soap.h"
#include "registry/registry.h"
#include "registry/registry_store.h"

#define CODE_TEXT_MAX 512u
#define ARRAY_MAX (4u * 1024u * 1024u)   /* one text[] literal */
#define XML_MAX (64u * 1024u * 1024u)    /* one object's XML */

void registry_store_code_text(const char *code, const char *scheme, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s^^%s", code ? code : "", scheme ? scheme : "");
}

hie_err_t registry_store_array(struct hie_buf *b, const char *const *v, size_t n)
{
	hie_err_t err = hie_buf_addstr(b, "{");
	for (size_t i = 0; i < n && !err; i++) {
		err = hie_buf_addstr(b, i ? ",\"" : "\"");
		for (const char *p = v[i]; *p && !err; p++) {
			if (*p == '"' || *p == '\\')
				err = hie_buf_add(b, "\\", 1);
			if (!err)
				err = hie_buf_add(b, p, 1);
		}
		if (!err)
			err = hie_buf_addstr(b, "\"");
	}
	if (!err)
		err = hie_buf_addstr(b, "}");
	return err;
}

static hie_err_t code_array(struct hie_buf *b, const struct registry_ebrim_code *c, size_t n)
{
	const char **v = n ? calloc(n, sizeof *v) : NULL;
	char (*text)[CODE_TEXT_MAX] = n ? calloc(n, sizeof *text) : NULL;
	hie_err_t err = (n && (!v || !text)) ? HIE_ENOMEM : HIE_OK;
	for (size_t i = 0; i < n && !err; i++) {
		registry_store_code_text(c[i].code, c[i].scheme, text[i], sizeof text[i]);
		v[i] = text[i];
	}
	if (!err)
		err = registry_store_array(b, v, n);
	free(v);
	free(text);
	return err;
}

static bool is_rim(const xmlNode *n, const char *local)
{
	return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       strcmp((const char *)n->ns->href, REGISTRY_NS_RIM) == 0 && strcmp((const char *)n->name, local) == 0;
}

/*
 * rim:VersionInfo versionName="<version>": the registry's own (ebRIM 3.0 §2.5.1), replacing what the
 * submitter sent, placed where the schema wants it (after Slots, Name and Description).
 */
static hie_err_t set_version_info(xmlNode *node, int version)
{
	char v[16];
	snprintf(v, sizeof v, "%d", version);
	xmlNode *before = NULL;
	for (xmlNode *c = node->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (is_rim(c, "VersionInfo"))
			return xmlSetProp(c, BAD_CAST "versionName", BAD_CAST v) ? HIE_OK : HIE_ENOMEM;
		if (!before && !is_rim(c, "Slot") && !is_rim(c, "Name") && !is_rim(c, "Description"))
			before = c;
	}
	xmlNs *ns = xmlSearchNsByHref(node->doc, node, BAD_CAST REGISTRY_NS_RIM);
	xmlNode *vi = xmlNewDocNode(node->doc, ns, BAD_CAST "VersionInfo", NULL);
	if (!vi)
		return HIE_ENOMEM;
	if (!ns) {
		ns = xmlNewNs(vi, BAD_CAST REGISTRY_NS_RIM, NULL);
		xmlSetNs(vi, ns);
	}
	xmlSetProp(vi, BAD_CAST "versionName", BAD_CAST v);
	if (before ? !xmlAddPrevSibling(before, vi) : !xmlAddChild(node, vi)) {
		xmlFreeNode(vi);
		return HIE_ENOMEM;
	}
	return HIE_OK;
}

int registry_store_version(const struct registry_store_opts *o, const char *id)
{
	for (size_t i = 0; o && id && i < o->nversions; i++)
		if (strcmp(o->versions[i].id, id) == 0)
			return o->versions[i].version;
	return 1;
}

/* The object's XML as stored: no status attribute, lid present, the registry's VersionInfo. */
static hie_err_t object_xml(const struct registry_ebrim_obj *o, int version, struct hie_buf *xml)
{
	xmlNode *node = o->node;
	xmlAttr *st = xmlHasProp(node, BAD_CAST "status");
	if (st)
		xmlRemoveProp(st);
	if (!xmlHasProp(node, BAD_CAST "lid") && o->id)
		xmlSetProp(node, BAD_CAST "lid", BAD_CAST o->id);
	hie_err_t err = set_version_info(node, version);
	hie_buf_reset(xml);
	return err ? err : registry_ebrim_obj_xml(o, xml);
}

static hie_err_t exec(PGconn *tx, const char *sql, int n, const char *const *p)
{
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(tx, sql, n, p, &res);
	PQclear(res);
	return err;
}

static hie_err_t canonical_pid(const char *cx, char *out, size_t outlen)
{
	struct registry_pid pid;
	if (!cx || registry_pid_parse(cx, strlen(cx), &pid))
		return HIE_EINVAL;
	registry_pid_format(&pid, out, outlen);
	return HIE_OK;
}

static const char *code_or_null(const struct registry_ebrim_code *c, char *buf, size_t len)
{
	if (!c)
		return NULL;
	registry_store_code_text(c->code, c->scheme, buf, len);
	return buf;
}

/* The referenceIdList slot (ITI TF-3 4.2.3.2.28) of a DocumentEntry. */
static const struct registry_ebrim_slot *reference_ids(const struct registry_ebrim_obj *o)
{
	return registry_ebrim_slot(o, "urn:ihe:iti:xds:2013:referenceIdList");
}

static hie_err_t store_doc(PGconn *tx, const struct registry_ebrim_doc *d, int version, struct hie_buf *xml)
{
	static const char sql[] =
		"INSERT INTO reg_documents (uuid, lid, status, on_demand, patient_id, unique_id, mime_type,"
		" class_code, type_code, format_code, practice_code, hcft_code, conf_codes, event_codes,"
		" author_persons, reference_ids, creation_time, service_start_time, service_stop_time, hash, size,"
		" repository_unique_id, xml, version)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text[], $14::text[], $15::text[],"
		" $16::text[], $17, $18, $19, lower($20), $21::bigint, $22, $23, $24::integer)";
	char pid[REGISTRY_PID_TEXT_MAX], cls[CODE_TEXT_MAX], typ[CODE_TEXT_MAX], fmt[CODE_TEXT_MAX],
		prc[CODE_TEXT_MAX], hcf[CODE_TEXT_MAX];
	struct hie_buf conf, event, authors, refs;
	hie_buf_init(&conf, ARRAY_MAX);
	hie_buf_init(&event, ARRAY_MAX);
	hie_buf_init(&authors, ARRAY_MAX);
	hie_buf_init(&refs, ARRAY_MAX);
	const struct registry_ebrim_slot *rs = reference_ids(d->obj);
	hie_err_t err = canonical_pid(d->patient_id, pid, sizeof pid);
	if (!err)
		err = code_array(&conf, d->conf_codes, d->nconf_codes);
	if (!err)
		err = code_array(&event, d->event_codes, d->nevent_codes);
	if (!err)
		err = registry_store_array(&authors, d->author_persons, d->nauthor_persons);
	if (!err)
		err = registry_store_array(&refs, rs ? rs->values : NULL, rs ? rs->nvalues : 0);
	char ver[16];
	snprintf(ver, sizeof ver, "%d", version);
	if (!err)
		err = object_xml(d->obj, version, xml);
	if (!err) {
		const char *lid = d->obj->lid ? d->obj->lid : d->obj->id;
		const char *p[] = {d->obj->id, lid, REGISTRY_STATUS_APPROVED, d->on_demand ? "t" : "f", pid,
				   d->unique_id, d->obj->mime_type ? d->obj->mime_type : "",
				   code_or_null(d->class_code, cls, sizeof cls),
				   code_or_null(d->type_code, typ, sizeof typ),
				   code_or_null(d->format_code, fmt, sizeof fmt),
				   code_or_null(d->practice_code, prc, sizeof prc),
				   code_or_null(d->hcft_code, hcf, sizeof hcf), hie_buf_str(&conf),
				   hie_buf_str(&event), hie_buf_str(&authors), hie_buf_str(&refs), d->creation_time,
				   d->service_start_time, d->service_stop_time, d->hash, d->size,
				   d->repository_unique_id, hie_buf_str(xml), ver};
		err = exec(tx, sql, 24, p);
	}
	hie_buf_free(&conf);
	hie_buf_free(&event);
	hie_buf_free(&authors);
	hie_buf_free(&refs);
	return err;
}

static hie_err_t store_pkg(PGconn *tx, const struct registry_ebrim_pkg *k, const char *now, int version,
			   struct hie_buf *xml)
{
	static const char sql[] =
		"INSERT INTO reg_packages (uuid, lid, kind, status, patient_id, unique_id, source_id,"
		" submission_time, last_update_time, codes, author_persons, xml, version)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text[], $11::text[], $12, $13::integer)";
	char pid[REGISTRY_PID_TEXT_MAX];
	struct hie_buf codes, authors;
	hie_buf_init(&codes, ARRAY_MAX);
	hie_buf_init(&authors, ARRAY_MAX);
	bool ss = k->kind == REGISTRY_PKG_SUBMISSION_SET;
	hie_err_t err = canonical_pid(k->patient_id, pid, sizeof pid);
	if (!err && k->kind == REGISTRY_PKG_UNKNOWN)
		err = HIE_EINVAL;
	if (!err)
		err = code_array(&codes, k->codes, k->ncodes);
	if (!err)
		err = registry_store_array(&authors, k->author_persons, k->nauthor_persons);
	char ver[16];
	snprintf(ver, sizeof ver, "%d", version);
	if (!err)
		err = object_xml(k->obj, version, xml);
	if (!err) {
		const char *p[] = {k->obj->id, k->obj->lid ? k->obj->lid : k->obj->id,
				   ss ? "SubmissionSet" : "Folder", REGISTRY_STATUS_APPROVED, pid, k->unique_id,
				   k->source_id, k->submission_time, ss ? NULL : now, hie_buf_str(&codes),
				   hie_buf_str(&authors), hie_buf_str(xml), ver};
		err = exec(tx, sql, 13, p);
	}
	hie_buf_free(&codes);
	hie_buf_free(&authors);
	return err;
}

static hie_err_t store_assoc(PGconn *tx, const struct registry_ebrim_obj *a, struct hie_buf *xml)
{
	static const char sql[] = "INSERT INTO reg_associations (uuid, lid, type, source, target, status, xml)"
				  " VALUES ($1, $2, $3, $4, $5, $6, $7)";
	hie_err_t err = object_xml(a, 1, xml);
	if (!err) {
		const char *p[] = {a->id, a->lid ? a->lid : a->id, a->assoc_type, a->source, a->target,
				   REGISTRY_STATUS_APPROVED, hie_buf_str(xml)};
		err = exec(tx, sql, 7, p);
	}
	return err;
}

static hie_err_t store_extra(PGconn *tx, const struct registry_ebrim_obj *x, struct hie_buf *xml)
{
	const char *owner = x->kind == REGISTRY_EBRIM_CLASSIFICATION ? x->classified_object
				    : x->kind == REGISTRY_EBRIM_EXTID ? x->registry_object : NULL;
	/*
	 * Nothing refers to a top-level Classification or ExternalIdentifier by its id, and submitters reuse
	 * fixed ones (the NIST testkit does): one already taken gets a fresh id instead of failing the submission.
	 */
	hie_err_t err = HIE_OK;
	for (int attempt = 0; attempt < 2 && !err; attempt++) {
		hie_buf_reset(xml);
		err = registry_ebrim_obj_xml(x, xml);
		PGresult *res = NULL;
		const char *p[] = {attempt ? NULL : x->id, owner, hie_buf_str(xml)};
		char fresh[64];
		if (!err && attempt) {
			err = hie_soap_new_uuid_urn(fresh, sizeof fresh);
			p[0] = fresh;
			if (!err) {
				xmlSetProp(x->node, BAD_CAST "id", BAD_CAST fresh);
				hie_buf_reset(xml);
				err = registry_ebrim_obj_xml(x, xml);
				p[2] = hie_buf_str(xml);
			}
		}
		if (!err)
			err = hie_db_exec(tx, "INSERT INTO reg_extra (uuid, owner, xml) VALUES ($1, $2, $3)"
					  " ON CONFLICT (uuid) DO NOTHING", 3, p, &res);
		bool inserted = !err && strcmp(PQcmdTuples(res), "1") == 0;
		PQclear(res);
		if (inserted)
			break;
		if (!err && attempt)
			err = HIE_EEXIST;
	}
	return err;
}

/* YYYYMMDDhhmmss in UTC, the DTM form of the lastUpdateTime the registry keeps for Folders. */
void registry_store_now(char out[15])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

hie_err_t registry_store_submission(PGconn *tx, const struct registry_ebrim_submission *s,
				    const struct registry_store_opts *opts)
{
	struct hie_buf xml;
	hie_buf_init(&xml, XML_MAX);
	char now[15];
	registry_store_now(now);
	hie_err_t err = HIE_OK;
	size_t di = 0, pi = 0;
	for (size_t i = 0; i < s->nobjs && !err; i++) {
		const struct registry_ebrim_obj *o = &s->objs[i];
		if (!o->id)
			err = HIE_EINVAL;
		else if (o->kind == REGISTRY_EBRIM_EXTRINSIC) {
			err = store_doc(tx, &s->docs[di++], registry_store_version(opts, o->id), &xml);
		} else if (o->kind == REGISTRY_EBRIM_PACKAGE) {
			err = store_pkg(tx, &s->pkgs[pi++], now, registry_store_version(opts, o->id), &xml);
		} else if (o->kind == REGISTRY_EBRIM_ASSOCIATION) {
			err = store_assoc(tx, o, &xml);
		} else if (o->kind != REGISTRY_EBRIM_OBJECTREF) {
			err = store_extra(tx, o, &xml);
		}
	}
	hie_buf_free(&xml);
	return err;
}

hie_err_t registry_store_emit(const char *xml, size_t len, const char *status, struct hie_buf *out)
{
	/* After "<prefix:Name": the first whitespace, '/' or '>' ends the element name. */
	size_t i = 0;
	if (len < 2 || xml[0] != '<')
		return HIE_EINVAL;
	for (i = 1; i < len && xml[i] != ' ' && xml[i] != '\t' && xml[i] != '\n' && xml[i] != '\r' && xml[i] != '/' &&
		    xml[i] != '>';
	     i++)
		;
	if (i >= len || i == 1)
		return HIE_EINVAL;
	hie_err_t err = hie_buf_add(out, xml, i);
	if (!err && status && status[0]) {
		err = hie_buf_addstr(out, " status=\"");
		if (!err)
			err = hie_buf_add_xml(out, status, strlen(status));
		if (!err)
			err = hie_buf_addstr(out, "\"");
	}
	if (!err)
		err = hie_buf_add(out, xml + i, len - i);
	return err;
}
