/*
 * registry_update.c — metadata life cycle on /xds/registry: ITI-57 Update Document Set and ITI-62 Remove
 * Metadata.
 *
 * ITI-57 is a registration with metadata_update set (registry_register.c: new versions of DocumentEntries and
 * Folders by lid + PreviousVersion, UpdateAvailabilityStatus associations).
 *
 * ITI-62: lcm:RemoveObjectsRequest with an rim:ObjectRefList. In one transaction: every id names a stored
 * DocumentEntry, SubmissionSet, Folder or Association (else UnresolvedReferenceException); no association
 * that stays refers to a removed object (ReferencesExistException); the removal leaves no SubmissionSet
 * without members and no object that was a SubmissionSet's member without one
 * (XDSUnreferencedObjectException). Then the rows go, with the top-level classifications and external
 * identifiers that belonged to them. The repository's bytes are not touched (that is ITI-86's job).
 * Errors: Sender fault for a body that is not a RemoveObjectsRequest; everything else is a RegistryResponse.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "registry/registry.h"
#include "registry/registry_register.h"
#include "registry/registry_soap.h"
#include "registry/registry_store.h"

#define REMOVE_MAX_REFS 10000u  /* ObjectRefs in one request */

hie_err_t registry_update_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	const struct registry_register_opts opts = {.metadata_update = true};
	return registry_soap_register(req, resp, arg, &opts);
}

struct remove_tx {
	const char **ids;
	size_t n;
	struct hie_buf array;           /* ids as a text[] literal */
	struct registry_response errs;  /* this attempt's findings */
};

static hie_err_t rows(PGconn *tx, const char *sql, const char *arr, PGresult **res)
{
	const char *p[] = {arr};
	*res = NULL;
	return hie_db_exec(tx, sql, 1, p, res);
}

/* Adds one error per row of sql (column 0: the object = location, column 1: the codeContext). */
static hie_err_t report_rows(PGconn *tx, struct remove_tx *t, const char *sql, const char *code)
{
	PGresult *res;
	hie_err_t err = rows(tx, sql, hie_buf_str(&t->array), &res);
	for (int i = 0; !err && i < PQntuples(res); i++)
		err = registry_response_add(&t->errs, REGISTRY_SEV_ERROR, code, PQgetvalue(res, i, 0), "%s",
					    PQgetvalue(res, i, 1));
	PQclear(res);
	return err;
}

static hie_err_t remove_tx(PGconn *tx, void *arg)
{
	struct remove_tx *t = arg;
	registry_response_free(&t->errs);
	registry_response_init(&t->errs, 0);
	const char *arr = hie_buf_str(&t->array);
	hie_err_t err = report_rows(
		tx, t,
		"SELECT r.id, r.id || ' is not in the registry' FROM unnest($1::text[]) r(id) WHERE NOT EXISTS"
		" (SELECT 1 FROM reg_documents WHERE uuid = r.id) AND NOT EXISTS"
		" (SELECT 1 FROM reg_packages WHERE uuid = r.id) AND NOT EXISTS"
		" (SELECT 1 FROM reg_associations WHERE uuid = r.id)",
		REGISTRY_ERR_UNRESOLVED);
	if (!err)
		err = report_rows(tx, t,
				  "SELECT o.id, o.id || ' is still referenced by Association ' || a.uuid || ', which is not"
				  " removed' FROM reg_associations a,"
				  " LATERAL (SELECT CASE WHEN a.source = ANY($1::text[]) THEN a.source ELSE a.target END) o(id)"
				  " WHERE (a.source = ANY($1::text[]) OR a.target = ANY($1::text[]))"
				  " AND NOT a.uuid = ANY($1::text[])",
				  REGISTRY_ERR_REFS_EXIST);
	if (!err)
		err = report_rows(tx, t,
				  "SELECT p.uuid, 'SubmissionSet ' || p.uuid || ' would be left without members'"
				  " FROM reg_packages p WHERE p.kind = 'SubmissionSet'"
				  " AND NOT p.uuid = ANY($1::text[])"
				  " AND EXISTS (SELECT 1 FROM reg_associations a WHERE a.source = p.uuid"
				  "  AND a.uuid = ANY($1::text[]))"
				  " AND NOT EXISTS (SELECT 1 FROM reg_associations a WHERE a.source = p.uuid"
				  "  AND NOT a.uuid = ANY($1::text[]))",
				  REGISTRY_ERR_UNREFERENCED);
	if (!err)
		err = report_rows(tx, t,
				  "SELECT DISTINCT a.target, a.target || ' would be left in no SubmissionSet'"
				  " FROM reg_associations a JOIN reg_packages p"
				  " ON p.uuid = a.source AND p.kind = 'SubmissionSet'"
				  " WHERE a.uuid = ANY($1::text[]) AND NOT a.target = ANY($1::text[])"
				  " AND NOT EXISTS (SELECT 1 FROM reg_associations b JOIN reg_packages q"
				  "  ON q.uuid = b.source AND q.kind = 'SubmissionSet'"
				  "  WHERE b.target = a.target AND NOT b.uuid = ANY($1::text[]))",
				  REGISTRY_ERR_UNREFERENCED);
	if (!err && t->errs.nerrors)
		return HIE_EPERMANENT;
	static const char *const del[] = {
		"DELETE FROM reg_extra WHERE uuid = ANY($1::text[]) OR owner = ANY($1::text[])",
		"DELETE FROM reg_associations WHERE uuid = ANY($1::text[])",
		"DELETE FROM reg_documents WHERE uuid = ANY($1::text[])",
		"DELETE FROM reg_packages WHERE uuid = ANY($1::text[])",
	};
	for (size_t i = 0; i < sizeof del / sizeof del[0] && !err; i++) {
		PGresult *res;
		err = rows(tx, del[i], arr, &res);
		PQclear(res);
	}
	return err;
}

/* The ids of the request's ObjectRefs; HIE_ETOOBIG above REMOVE_MAX_REFS. */
static hie_err_t collect(const xmlNode *req, struct remove_tx *t)
{
	const xmlNode *list = hie_xml_child(req, REGISTRY_NS_RIM, "ObjectRefList");
	size_t n = 0;
	for (const xmlNode *c = list ? list->children : NULL; c; c = c->next)
		n += hie_xml_is(c, REGISTRY_NS_RIM, "ObjectRef");
	if (n > REMOVE_MAX_REFS)
		return HIE_ETOOBIG;
	t->ids = n ? calloc(n, sizeof *t->ids) : NULL;
	if (n && !t->ids)
		return HIE_ENOMEM;
	for (const xmlNode *c = list ? list->children : NULL; c; c = c->next) {
		if (!hie_xml_is(c, REGISTRY_NS_RIM, "ObjectRef"))
			continue;
		const xmlAttr *a = xmlHasProp(c, BAD_CAST "id");
		if (a && a->children && !a->children->next && a->children->type == XML_TEXT_NODE)
			t->ids[t->n++] = (const char *)a->children->content; /* lives as long as the request */
	}
	return registry_store_array(&t->array, t->ids, t->n);
}

hie_err_t registry_remove_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	const struct registry_service *svc = arg;
	if (!hie_xml_is(req->payload, REGISTRY_NS_LCM, "RemoveObjectsRequest"))
		return registry_soap_sender_fault(resp, "the body of ITI-62 must be an lcm:RemoveObjectsRequest");
	struct registry_response r;
	registry_response_init(&r, 0);
	struct remove_tx t = {0};
	hie_buf_init(&t.array, 4u * 1024u * 1024u);
	registry_response_init(&t.errs, 0);
	hie_err_t err = collect(req->payload, &t);
	if (err == HIE_ETOOBIG)
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_OUT_OF_RESOURCES, NULL,
					    "more than %u ObjectRefs in one RemoveObjectsRequest", REMOVE_MAX_REFS);
	else if (!err && t.n == 0)
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_UNRESOLVED, NULL,
					    "the RemoveObjectsRequest names no object (rim:ObjectRefList/rim:ObjectRef/@id)");
	else if (!err) {
		err = hie_db_tx(svc->pool, remove_tx, &t);
		if (t.errs.nerrors && err != HIE_ENOMEM) {
			err = registry_response_merge(&r, &t.errs);
		} else if (err == HIE_EBUSY || err == HIE_ETIMEOUT) {
			err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_BUSY, NULL,
						    "the registry is busy; nothing was removed, try again");
		} else if (err && err != HIE_ENOMEM) {
			hie_log(HIE_LOG_ERR, "event=registry.remove.failed err=%s", hie_errname(err));
			err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
						    "the registry could not remove the objects; nothing was removed");
		}
	}
	if (!err)
		err = registry_response_build(&r, REGISTRY_STATUS_AUTO, &resp->body_xml);
	hie_log(r.nerrors ? HIE_LOG_NOTICE : HIE_LOG_INFO, "event=registry.iti62 refs=%zu errors=%zu first=%s", t.n,
		r.nerrors, r.n ? r.errs[0].code : "-");
	registry_response_free(&r);
	registry_response_free(&t.errs);
	hie_buf_free(&t.array);
	free(t.ids);
	return err;
}
