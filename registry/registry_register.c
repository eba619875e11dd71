/*
 * registry_register.c — the registration transaction: ITI-42, and the registry half of ITI-41. See
 * registry_register.h for the contract.
 *
 * Order: assign ids, DB-free validation (registry_validate), then one transaction (hie_db_tx, re-run from
 * the start on a serialization failure or a unique-key collision with a concurrent registration of the same
 * SubmissionSet — the second run then sees the first one's rows):
 *   1. the submission's patient is known and not merged away          XDSUnknownPatientId
 *   1a. ITI-57 only: new versions (lid + PreviousVersion) and UpdateAvailabilityStatus checked (check_updates)
 *   2. DocumentEntry uniqueIds already registered (serialized per uniqueId by an advisory lock): identical
 *      hash and size → the same document registered again, stored as another DocumentEntry (NIST 12004);
 *      otherwise XDSNonIdenticalHash / XDSNonIdenticalSize
 *   3. SubmissionSet uniqueId already registered: when the submission brings nothing new (every
 *      DocumentEntry resubmitted, no Folder) it is a replay of a registration whose response was lost and
 *      succeeds without storing; otherwise XDSDuplicateUniqueIdInRegistry, as for a Folder uniqueId
 *   4. ids the submitter gave as urn:uuid are not taken (XDSRegistryMetadataError); association ends outside
 *      the submission exist, belong to the same patient and, for a DocumentEntry, are not deprecated
 *                                                                     XDSRegistryDeprecatedDocumentError
 *   5. store (registry_store_submission); RPLC / XFRM_RPLC deprecate their target and the replacement joins
 *      the original's folders; HasMember into a stored Folder touches its lastUpdateTime; ITI-57 versions and
 *      status changes applied
 *   6. opts->in_tx (the repository's bytes)
 * Check errors are collected in a per-attempt list and the transaction rolled back when there is any.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core_log.h"
#include "core/core_soap.h"
#include "registry/registry.h"
#include "registry/registry_register.h"
#include "registry/registry_store.h"
#include "registry/registry_validate.h"

/* Rolls the transaction back after the checks recorded errors (never leaves this file). */
#define CHECKS_FAILED HIE_EPERMANENT

struct reg_tx {
	struct registry_ebrim_submission *s;
	const struct registry_register_opts *opts;
	struct registry_response errs;     /* this attempt's findings */
	struct registry_store_opts map;    /* versions of updated objects */
	const bool *given_uuid;            /* per top-level object: its id came as a urn:uuid (not assigned here) */
	size_t nresubmitted;               /* DocumentEntries identical to registered ones (uniqueId, hash, size) */
	bool replay;                       /* nothing new: success without storing */
	/* ITI-57: previous versions to deprecate (DocumentEntries: also folder membership), status changes. */
	struct version_change { const char *prev, *next; bool doc; } *vchg;
	size_t nvchg;
	struct status_change { const char *id, *status; } *schg;
	size_t nschg;
	char pid[REGISTRY_PID_TEXT_MAX];
};

static hie_err_t query(PGconn *tx, const char *sql, int n, const char *const *p, PGresult **res)
{
	*res = NULL;
	return hie_db_exec(tx, sql, n, p, res);
}

static hie_err_t check_patient(PGconn *tx, struct reg_tx *t)
{
	const char *cx = t->s->ss ? t->s->ss->patient_id : t->s->ndocs ? t->s->docs[0].patient_id : NULL;
	struct registry_pid pid;
	if (!cx || registry_pid_parse(cx, strlen(cx), &pid))
		return HIE_OK; /* the validator reported it */
	registry_pid_format(&pid, t->pid, sizeof t->pid);
	bool known = false;
	hie_err_t err = registry_patient_known(tx, &pid, &known);
	if (!err && !known)
		err = registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_UNKNOWN_PID,
					    t->s->ss ? t->s->ss->obj->id : NULL,
					    "patientId %s is not known to the registry (no identity feed for it)", cx);
	return err;
}

static bool same_hash(const char *a, const char *b)
{
	return a && b && strcasecmp(a, b) == 0;
}

static bool same_size(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	while (*a == '0' && a[1])
		a++;
	while (*b == '0' && b[1])
		b++;
	return strcmp(a, b) == 0;
}

static bool is_update(const struct reg_tx *t, const char *id)
{
	return registry_store_version(&t->map, id) > 1;
}

/*
 * Registrations of one DocumentEntry uniqueId are serialized by a transaction-scoped advisory lock on it, so
 * that two concurrent submissions of different bytes under one uniqueId cannot both pass the hash check.
 */
static hie_err_t lock_doc_uids(PGconn *tx, struct reg_tx *t)
{
	const char **uids = calloc(t->s->ndocs + 1, sizeof *uids);
	struct hie_buf arr;
	hie_buf_init(&arr, 4u * 1024u * 1024u);
	size_t n = 0;
	for (size_t i = 0; uids && i < t->s->ndocs; i++)
		if (t->s->docs[i].unique_id)
			uids[n++] = t->s->docs[i].unique_id;
	hie_err_t err = uids ? registry_store_array(&arr, uids, n) : HIE_ENOMEM;
	if (!err && n) {
		PGresult *res;
		const char *p[] = {hie_buf_str(&arr)};
		err = query(tx,
			    "SELECT pg_advisory_xact_lock(hashtextextended('xds.uid:' || u, 0))"
			    " FROM (SELECT DISTINCT u FROM unnest($1::text[]) u ORDER BY u) s",
			    1, p, &res);
		PQclear(res);
	}
	hie_buf_free(&arr);
	free(uids);
	return err;
}

/*
 * A uniqueId already registered with the same hash and size is the same document registered again (ITI TF-3
 * 4.2.3.1.8; NIST 12004: another submitter's DocumentEntry for it is stored beside the first); with another
 * hash or size it is an error.
 */
static hie_err_t check_doc_uids(PGconn *tx, struct reg_tx *t)
{
	struct registry_ebrim_submission *s = t->s;
	t->nresubmitted = 0;
	hie_err_t err = lock_doc_uids(tx, t);
	for (size_t i = 0; i < s->ndocs && !err; i++) {
		const struct registry_ebrim_doc *d = &s->docs[i];
		if (!d->unique_id || is_update(t, d->obj->id))
			continue;
		PGresult *res;
		const char *p[] = {d->unique_id};
		err = query(tx,
			    "SELECT uuid, hash, size::text, patient_id FROM reg_documents WHERE unique_id = $1"
			    " ORDER BY version DESC LIMIT 1",
			    1, p, &res);
		if (!err && PQntuples(res) == 1) {
			const char *hash = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
			const char *size = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2);
			if (!same_hash(hash, d->hash))
				err = registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_NONIDENT_HASH,
							    d->obj->id,
							    "DocumentEntry uniqueId %s is registered with hash %s; this "
							    "submission has hash %s",
							    d->unique_id, hash ? hash : "(none)", d->hash ? d->hash : "(none)");
			else if (!same_size(size, d->size))
				err = registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_NONIDENT_SIZE,
							    d->obj->id,
							    "DocumentEntry uniqueId %s is registered with size %s; this "
							    "submission has size %s",
							    d->unique_id, size ? size : "(none)", d->size ? d->size : "(none)");
			else if (strcmp(PQgetvalue(res, 0, 3), t->pid) != 0)
				err = registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_PID_MISMATCH,
							    d->obj->id,
							    "DocumentEntry uniqueId %s is registered for another patient",
							    d->unique_id);
			else
				t->nresubmitted++;
		}
		PQclear(res);
	}
	return err;
}

static hie_err_t check_pkg_uids(PGconn *tx, struct reg_tx *t)
{
	struct registry_ebrim_submission *s = t->s;
	bool all_resubmitted = t->nresubmitted == s->ndocs;
	size_t nfolders = 0;
	for (size_t i = 0; i < s->npkgs; i++)
		nfolders += s->pkgs[i].kind == REGISTRY_PKG_FOLDER;
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < s->npkgs && !err; i++) {
		const struct registry_ebrim_pkg *k = &s->pkgs[i];
		if (!k->unique_id || k->kind == REGISTRY_PKG_UNKNOWN || is_update(t, k->obj->id))
			continue;
		bool ss = k->kind == REGISTRY_PKG_SUBMISSION_SET;
		PGresult *res;
		const char *p[] = {ss ? "SubmissionSet" : "Folder", k->unique_id};
		err = query(tx, "SELECT 1 FROM reg_packages WHERE kind = $1 AND unique_id = $2 LIMIT 1", 2, p, &res);
		if (!err && PQntuples(res) == 1) {
			if (ss && all_resubmitted && nfolders == 0)
				t->replay = true;
			else
				err = registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_DUP_UID_REG,
							    k->obj->id, "%s uniqueId %s is already registered",
							    ss ? "SubmissionSet" : "Folder", k->unique_id);
		}
		PQclear(res);
	}
	return err;
}

/* An association end that is not an object of this submission: a stored object. */
struct stored_ref {
	bool found;
	char kind[16];        /* "DocumentEntry", "SubmissionSet", "Folder", "Association" */
	char status[64];
	char pid[REGISTRY_PID_TEXT_MAX];
};

static hie_err_t lookup(PGconn *tx, const char *id, struct stored_ref *out)
{
	memset(out, 0, sizeof *out);
	PGresult *res;
	const char *p[] = {id};
	hie_err_t err = query(tx,
			      "SELECT 'DocumentEntry', status, patient_id FROM reg_documents WHERE uuid = $1"
			      " UNION ALL SELECT kind, status, patient_id FROM reg_packages WHERE uuid = $1"
			      " UNION ALL SELECT 'Association', status, '' FROM reg_associations WHERE uuid = $1",
			      1, p, &res);
	if (!err && PQntuples(res) > 0) {
		out->found = true;
		snprintf(out->kind, sizeof out->kind, "%s", PQgetvalue(res, 0, 0));
		snprintf(out->status, sizeof out->status, "%s", PQgetvalue(res, 0, 1));
		snprintf(out->pid, sizeof out->pid, "%s", PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	return err;
}

static bool in_submission(const struct reg_tx *t, const char *id)
{
	return registry_ebrim_find(t->s, id, NULL) > 0;
}

static hie_err_t check_end(PGconn *tx, struct reg_tx *t, const struct registry_ebrim_obj *a, const char *end,
			   bool source)
{
	if (!end || in_submission(t, end))
		return HIE_OK;
	/* A reference to a resubmitted DocumentEntry points at the stored one: check that one. */
	struct stored_ref r;
	hie_err_t err = lookup(tx, end, &r);
	if (err)
		return err;
	const char *type = registry_ebrim_assoc_short(a->assoc_type);
	if (!r.found)
		return registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_METADATA, a->id,
					     "Association %s (%s): %sObject %s is neither in the submission nor in the "
					     "registry",
					     a->id, type, source ? "source" : "target", end);
	if (r.pid[0] && strcmp(r.pid, t->pid) != 0)
		return registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_PID_MISMATCH, a->id,
					     "Association %s (%s): %sObject %s belongs to another patient", a->id, type,
					     source ? "source" : "target", end);
	if (strcmp(r.kind, "DocumentEntry") == 0 && strcmp(r.status, REGISTRY_STATUS_APPROVED) != 0)
		return registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_DEPRECATED, a->id,
					     "Association %s (%s): DocumentEntry %s is %s", a->id, type, end,
					     strcmp(r.status, REGISTRY_STATUS_DEPRECATED) == 0 ? "Deprecated"
											     : r.status);
	return HIE_OK;
}

static hie_err_t replace(PGconn *tx, const char *original, const char *replacement);

/*
 * Ids the submitter gave in urn:uuid form must not name a stored object (symbolic ids were just replaced by
 * fresh ones).
 */
static hie_err_t check_new_ids(PGconn *tx, struct reg_tx *t)
{
	const struct registry_ebrim_submission *s = t->s;
	const char **ids = calloc(s->nobjs + 1, sizeof *ids);
	struct hie_buf arr;
	hie_buf_init(&arr, 4u * 1024u * 1024u);
	size_t n = 0;
	hie_err_t err = ids ? HIE_OK : HIE_ENOMEM;
	for (size_t i = 0; !err && i < s->nobjs; i++) {
		const struct registry_ebrim_obj *o = &s->objs[i];
		bool stored = o->kind == REGISTRY_EBRIM_EXTRINSIC || o->kind == REGISTRY_EBRIM_PACKAGE ||
			      o->kind == REGISTRY_EBRIM_ASSOCIATION;
		if (stored && o->id && t->given_uuid[i])
			ids[n++] = o->id;
	}
	if (!err)
		err = registry_store_array(&arr, ids, n);
	PGresult *res = NULL;
	const char *p[] = {hie_buf_str(&arr)};
	if (!err && n)
		err = query(tx,
			    "SELECT u FROM unnest($1::text[]) u WHERE EXISTS (SELECT 1 FROM reg_documents WHERE uuid = u)"
			    " OR EXISTS (SELECT 1 FROM reg_packages WHERE uuid = u)"
			    " OR EXISTS (SELECT 1 FROM reg_associations WHERE uuid = u)",
			    1, p, &res);
	for (int i = 0; !err && res && i < PQntuples(res); i++)
		err = registry_response_add(&t->errs, REGISTRY_SEV_ERROR, REGISTRY_ERR_METADATA, PQgetvalue(res, i, 0),
					    "id %s is already the id of a registered object", PQgetvalue(res, i, 0));
	PQclear(res);
	hie_buf_free(&arr);
	free(ids);
	return err;
}

static bool is_status_update(const struct registry_ebrim_obj *a)
{
	return a->assoc_type && strcmp(a->assoc_type, REGISTRY_ASSOC_UPDATE_STATUS) == 0;
}

/* ITI-57 ------------------------------------------------------------------------------------------------- */

static const char *first_value(const struct registry_ebrim_obj *o, const char *slot)
{
	const struct registry_ebrim_slot *sl = registry_ebrim_slot(o, slot);
	return sl && sl->nvalues ? sl->values[0] : NULL;
}

/* PreviousVersion of the SubmissionSet's HasMember to id, or NULL. */
static const char *previous_version(const struct reg_tx *t, const char *id)
{
	const char *ss = t->s->ss ? t->s->ss->obj->id : NULL;
	for (size_t i = 0; ss && i < t->s->nassocs; i++) {
		const struct registry_ebrim_obj *a = t->s->assocs[i].obj;
		if (a->source && a->target && strcmp(a->source, ss) == 0 && strcmp(a->target, id) == 0)
			return first_value(a, "PreviousVersion");
	}
	return NULL;
}

static hie_err_t upd_err(struct reg_tx *t, const char *code, const char *loc, const char *what, const char *id,
			 const char *why)
{
	return registry_response_add(&t->errs, REGISTRY_SEV_ERROR, code, loc, "%s %s: %s", what, id, why);
}

/*
 * A DocumentEntry (doc) or Folder whose lid names a stored logical object: a new version of it. The latest
 * stored version is locked (FOR UPDATE) so that two concurrent updates of one object cannot both win.
 */
static hie_err_t check_new_version(PGconn *tx, struct reg_tx *t, const struct registry_ebrim_obj *o, bool doc,
				   const char *unique_id)
{
	const char *what = doc ? "DocumentEntry" : "Folder";
	const char *prev = previous_version(t, o->id);
	if (!prev)
		return upd_err(t, REGISTRY_ERR_UPDATE, o->id, what, o->id,
			       "a new version needs the SubmissionSet's HasMember with a PreviousVersion slot");
	PGresult *res;
	const char *p[] = {o->lid};
	hie_err_t err = query(tx,
			      doc ? "SELECT uuid, version, status, unique_id, patient_id FROM reg_documents WHERE lid = $1"
				    " ORDER BY version DESC LIMIT 1 FOR UPDATE"
				  : "SELECT uuid, version, status, unique_id, patient_id FROM reg_packages WHERE lid = $1"
				    " AND kind = 'Folder' ORDER BY version DESC LIMIT 1 FOR UPDATE",
			      1, p, &res);
	if (err)
		return err;
	char why[320];
	if (PQntuples(res) != 1) {
		snprintf(why, sizeof why, "no registered %s has the logical id %.64s", what, o->lid);
		err = upd_err(t, REGISTRY_ERR_UPDATE, o->id, what, o->id, why);
	} else if (strcmp(PQgetvalue(res, 0, 1), prev) != 0) {
		snprintf(why, sizeof why, "PreviousVersion %.16s is not the latest version (%.16s)", prev,
			 PQgetvalue(res, 0, 1));
		err = upd_err(t, REGISTRY_ERR_VERSION, o->id, what, o->id, why);
	} else if (strcmp(PQgetvalue(res, 0, 2), REGISTRY_STATUS_APPROVED) != 0) {
		err = upd_err(t, REGISTRY_ERR_UPDATE, o->id, what, o->id, "the latest version is not Approved");
	} else if (!unique_id || strcmp(PQgetvalue(res, 0, 3), unique_id) != 0) {
		snprintf(why, sizeof why, "uniqueId %.128s differs from the registered %.128s",
			 unique_id ? unique_id : "(none)", PQgetvalue(res, 0, 3));
		err = upd_err(t, REGISTRY_ERR_IDENTIFIER, o->id, what, o->id, why);
	} else if (strcmp(PQgetvalue(res, 0, 4), t->pid) != 0) {
		err = upd_err(t, REGISTRY_ERR_PID_RECONCILE, o->id, what, o->id,
			      "the new version has another patientId than the registered one");
	} else {
		long long v = 0;
		const char *prev_uuid = registry_ebrim_strdup(t->s, PQgetvalue(res, 0, 0));
		err = hie_db_get_ll(res, 0, 1, &v);
		if (!err && (!prev_uuid || v >= 1000000))
			err = prev_uuid ? HIE_EINVAL : HIE_ENOMEM;
		if (!err) {
			t->map.versions[t->map.nversions++] = (struct registry_store_version){o->id, (int)v + 1};
			t->vchg[t->nvchg++] = (struct version_change){prev_uuid, o->id, doc};
		}
	}
	PQclear(res);
	return err;
}

static bool known_status(const char *st)
{
	return st && (strcmp(st, REGISTRY_STATUS_APPROVED) == 0 || strcmp(st, REGISTRY_STATUS_DEPRECATED) == 0);
}

/* UpdateAvailabilityStatus: target stored, OriginalStatus its current status, NewStatus Approved/Deprecated. */
static hie_err_t check_status_update(PGconn *tx, struct reg_tx *t, const struct registry_ebrim_obj *a)
{
	const char *orig = first_value(a, "OriginalStatus"), *next = first_value(a, "NewStatus");
	if (!known_status(orig) || !known_status(next))
		return upd_err(t, REGISTRY_ERR_UPDATE, a->id, "Association", a->id,
			       "UpdateAvailabilityStatus needs OriginalStatus and NewStatus slots (Approved or Deprecated)");
	struct stored_ref r;
	hie_err_t err = lookup(tx, a->target, &r);
	if (err)
		return err;
	char why[320];
	if (!r.found) {
		snprintf(why, sizeof why, "targetObject %.64s is not in the registry", a->target);
		return upd_err(t, REGISTRY_ERR_UPDATE, a->id, "Association", a->id, why);
	}
	if (r.pid[0] && strcmp(r.pid, t->pid) != 0)
		return upd_err(t, REGISTRY_ERR_PID_MISMATCH, a->id, "Association", a->id,
			       "targetObject belongs to another patient");
	if (strcmp(r.status, orig) != 0) {
		snprintf(why, sizeof why, "OriginalStatus %.64s is not the current status %.64s", orig, r.status);
		return upd_err(t, REGISTRY_ERR_UPDATE, a->id, "Association", a->id, why);
	}
	t->schg[t->nschg++] = (struct status_change){a->target, next};
	return HIE_OK;
}

static hie_err_t check_updates(PGconn *tx, struct reg_tx *t)
{
	struct registry_ebrim_submission *s = t->s;
	t->map.nversions = t->nvchg = t->nschg = 0;
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < s->ndocs && !err; i++) {
		const struct registry_ebrim_obj *o = s->docs[i].obj;
		if (o->lid && strcmp(o->lid, o->id) != 0)
			err = check_new_version(tx, t, o, true, s->docs[i].unique_id);
	}
	for (size_t i = 0; i < s->npkgs && !err; i++) {
		const struct registry_ebrim_obj *o = s->pkgs[i].obj;
		if (s->pkgs[i].kind == REGISTRY_PKG_FOLDER && o->lid && strcmp(o->lid, o->id) != 0)
			err = check_new_version(tx, t, o, false, s->pkgs[i].unique_id);
	}
	for (size_t i = 0; i < s->nassocs && !err; i++)
		if (is_status_update(s->assocs[i].obj))
			err = check_status_update(tx, t, s->assocs[i].obj);
	return err;
}

static hie_err_t set_status(PGconn *tx, const char *id, const char *status)
{
	const char *p[] = {id, status};
	static const char *const sql[] = {
		"UPDATE reg_documents SET status = $2 WHERE uuid = $1",
		"UPDATE reg_packages SET status = $2 WHERE uuid = $1",
		"UPDATE reg_associations SET status = $2 WHERE uuid = $1",
	};
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < 3 && !err; i++) {
		PGresult *res;
		err = query(tx, sql[i], 2, p, &res);
		PQclear(res);
	}
	return err;
}

static hie_err_t apply_updates(PGconn *tx, struct reg_tx *t)
{
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < t->nvchg && !err; i++)
		err = t->vchg[i].doc ? replace(tx, t->vchg[i].prev, t->vchg[i].next)
				     : set_status(tx, t->vchg[i].prev, REGISTRY_STATUS_DEPRECATED);
	for (size_t i = 0; i < t->nschg && !err; i++)
		err = set_status(tx, t->schg[i].id, t->schg[i].status);
	return err;
}

static hie_err_t check_assocs(PGconn *tx, struct reg_tx *t)
{
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < t->s->nassocs && !err; i++) {
		const struct registry_ebrim_obj *a = t->s->assocs[i].obj;
		err = check_end(tx, t, a, a->source, true);
		if (!err && !is_status_update(a))
			err = check_end(tx, t, a, a->target, false); /* a status update may revive a deprecated one */
	}
	return err;
}

/*
 * A Folder's lastUpdateTime is the registry's (ITI TF-3 4.2.3.4): set when it is registered and whenever a
 * member joins it. The column answers FindFolders; the slot in the stored XML is rewritten to match (the
 * registry serialized that XML itself, so the slot's shape is known).
 */
static hie_err_t touch_folder(PGconn *tx, const char *folder, const char *now)
{
	const char *p[] = {folder, now};
	PGresult *res;
	hie_err_t err = query(
		tx,
		"UPDATE reg_packages SET last_update_time = $2, xml = regexp_replace(xml,"
		" '(<([A-Za-z_][-.\\w]*:)?Slot name=\"lastUpdateTime\"[^>]*>\\s*<([A-Za-z_][-.\\w]*:)?ValueList[^>]*>"
		"\\s*<([A-Za-z_][-.\\w]*:)?Value>)[^<]*<', '\\1' || $2 || '<')"
		" WHERE uuid = $1 AND kind = 'Folder'",
		2, p, &res);
	PQclear(res);
	return err;
}

static bool is_replace(const char *type)
{
	return type && (strcmp(type, REGISTRY_ASSOC_RPLC) == 0 || strcmp(type, REGISTRY_ASSOC_XFRM_RPLC) == 0);
}

/*
 * RPLC / XFRM_RPLC: the original is deprecated, and the replacement joins every Folder the original is in
 * (ITI TF-3 4.2.2.2.2): a new HasMember association per folder, registered like any other.
 */
static hie_err_t replace(PGconn *tx, const char *original, const char *replacement)
{
	const char *p[] = {original, REGISTRY_STATUS_DEPRECATED, REGISTRY_STATUS_APPROVED};
	PGresult *res;
	hie_err_t err = query(tx, "UPDATE reg_documents SET status = $2 WHERE uuid = $1 AND status = $3", 3, p, &res);
	PQclear(res);
	if (err)
		return err;
	const char *q[] = {original, REGISTRY_ASSOC_HASMEMBER};
	err = query(tx,
		    "SELECT a.source FROM reg_associations a JOIN reg_packages f ON f.uuid = a.source"
		    " WHERE a.target = $1 AND a.type = $2 AND f.kind = 'Folder'",
		    2, q, &res);
	for (int i = 0; !err && i < PQntuples(res); i++) {
		char id[64], xml[512];
		err = hie_soap_new_uuid_urn(id, sizeof id);
		if (err)
			break;
		const char *folder = PQgetvalue(res, i, 0);
		snprintf(xml, sizeof xml,
			 "<rim:Association xmlns:rim=\"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0\" id=\"%s\" lid=\"%s\""
			 " associationType=\"%s\" sourceObject=\"%s\" targetObject=\"%s\"/>",
			 id, id, REGISTRY_ASSOC_HASMEMBER, folder, replacement);
		char now[15];
		registry_store_now(now);
		err = touch_folder(tx, folder, now);
		if (err)
			break;
		const char *v[] = {id, REGISTRY_ASSOC_HASMEMBER, folder, replacement, REGISTRY_STATUS_APPROVED, xml};
		PGresult *ins;
		err = query(tx,
			    "INSERT INTO reg_associations (uuid, lid, type, source, target, status, xml)"
			    " VALUES ($1, $1, $2, $3, $4, $5, $6)",
			    6, v, &ins);
		PQclear(ins);
	}
	PQclear(res);
	return err;
}

static hie_err_t after_store(PGconn *tx, struct reg_tx *t)
{
	char now[15];
	registry_store_now(now);
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < t->s->nassocs && !err; i++) {
		const struct registry_ebrim_obj *a = t->s->assocs[i].obj;
		if (is_replace(a->assoc_type) && a->target && !in_submission(t, a->target))
			err = replace(tx, a->target, a->source);
		else if (a->assoc_type && strcmp(a->assoc_type, REGISTRY_ASSOC_HASMEMBER) == 0 && a->source &&
			 !in_submission(t, a->source)) {
			err = touch_folder(tx, a->source, now);
		}
	}
	return err;
}

static hie_err_t register_tx(PGconn *tx, void *arg)
{
	struct reg_tx *t = arg;
	registry_response_free(&t->errs);
	registry_response_init(&t->errs, 0);
	t->replay = false;
	t->map.nversions = t->nvchg = t->nschg = 0;
	hie_err_t err = check_patient(tx, t);
	if (!err && !t->errs.nerrors && t->opts && t->opts->metadata_update)
		err = check_updates(tx, t);
	if (!err && !t->errs.nerrors)
		err = check_doc_uids(tx, t);
	if (!err && !t->errs.nerrors)
		err = check_pkg_uids(tx, t);
	if (!err && !t->errs.nerrors && !t->replay)
		err = check_new_ids(tx, t);
	if (!err && !t->errs.nerrors && !t->replay)
		err = check_assocs(tx, t);
	if (!err && t->errs.nerrors)
		return CHECKS_FAILED;
	if (err || t->replay)
		return err;
	err = registry_store_submission(tx, t->s, &t->map);
	if (!err)
		err = after_store(tx, t);
	if (!err)
		err = apply_updates(tx, t);
	if (!err && t->opts && t->opts->in_tx) {
		err = t->opts->in_tx(tx, t->s, &t->errs, t->opts->in_tx_arg);
		if (!err && t->errs.nerrors)
			err = CHECKS_FAILED;
	}
	return err;
}

hie_err_t registry_register_submission(struct hie_db_pool *pool, struct registry_ebrim_submission *s,
				       const struct registry_register_opts *opts, struct registry_response *r)
{
	struct reg_tx t = {.s = s, .opts = opts};
	registry_response_init(&t.errs, 0);
	/* Only ids the submitter gave as urn:uuid can name a stored object; fresh ones cannot (check_new_ids). */
	bool *given_uuid = calloc(s->nobjs + 1, sizeof *given_uuid);
	hie_err_t err = given_uuid ? HIE_OK : HIE_ENOMEM;
	for (size_t i = 0; !err && i < s->nobjs; i++)
		given_uuid[i] = registry_ebrim_is_uuid(s->objs[i].id);
	t.given_uuid = given_uuid;
	if (!err)
		err = registry_ebrim_assign_ids(s, NULL, NULL, NULL);
	if (err) {
		if (err != HIE_ENOMEM)
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
						    "the registry could not assign ids");
		goto out;
	}
	const struct registry_validate_opts vo = {.provide_and_register = opts && opts->provide_and_register,
						  .metadata_update = opts && opts->metadata_update};
	err = registry_validate_submission(s, &vo, r);
	if (err || r->nerrors)
		goto out;

	char now[15];
	registry_store_now(now);
	for (size_t i = 0; i < s->npkgs && !err; i++)
		if (s->pkgs[i].kind == REGISTRY_PKG_FOLDER)
			err = registry_ebrim_set_slot(s, s->pkgs[i].obj, "lastUpdateTime", now); /* may rebuild views */
	if (err) {
		if (err != HIE_ENOMEM)
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_OUT_OF_RESOURCES, NULL,
						    "the submission exceeds the registry's size limits");
		goto out;
	}

	size_t nobj = s->ndocs + s->npkgs + s->nassocs + 1;
	t.map.versions = calloc(nobj, sizeof *t.map.versions);
	t.vchg = calloc(nobj, sizeof *t.vchg);
	t.schg = calloc(nobj, sizeof *t.schg);
	if (!t.map.versions || !t.vchg || !t.schg) {
		err = HIE_ENOMEM;
		goto out;
	}
	/* A unique-key collision: a concurrent registration of the same SubmissionSet won; run again to see it. */
	for (int attempt = 0; attempt < 3; attempt++) {
		err = hie_db_tx(pool, register_tx, &t);
		if (err != HIE_EEXIST)
			break;
	}
	if (err == HIE_ENOMEM)
		;
	else if (t.errs.nerrors || (!err && t.errs.n))
		err = registry_response_merge(r, &t.errs);
	else if (err == HIE_EBUSY || err == HIE_ETIMEOUT)
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_BUSY, NULL,
					    "the registry is busy; nothing was stored, try again");
	else if (err) {
		hie_log(HIE_LOG_ERR, "event=registry.register.failed err=%s", hie_errname(err));
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REGISTRY_ERR_REGISTRY, NULL,
					    "the registry could not store the submission; nothing was stored");
	}
	if (!err && !r->nerrors && t.replay)
		hie_log(HIE_LOG_INFO, "event=registry.register.replay documents=%zu", s->ndocs);
out:
	registry_response_free(&t.errs);
	free(t.map.versions);
	free(t.vchg);
	free(t.schg);
	free(given_uuid);
	return err;
}
