/*
 * registry_validate.h — the registration rules of XDS.b that need no database (ITI TF-3 4.2.3, 4.1.7).
 *
 * registry_validate_submission() checks a parsed submission and appends one entry per violation to a
 * registry_response (all of them, up to the response's cap): XDSRegistryMetadataError for missing or
 * malformed attributes of DocumentEntries, the SubmissionSet, Folders and Associations (the codeContext
 * names the object, the attribute and the offending value; the location is the object's id),
 * XDSPatientIdDoesNotMatch, XDSRegistryDuplicateUniqueIdInMessage. The database checks (known patient,
 * uniqueId already registered, deprecated targets) are the transaction's.
 */
#ifndef HIENODE_REGISTRY_VALIDATE_H
#define HIENODE_REGISTRY_VALIDATE_H

#include <stdbool.h>

#include "core/core_err.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_response.h"

struct registry_validate_opts {
	/* ITI-41 at the repository: hash, size and repositoryUniqueId are computed there, so optional here. */
	bool provide_and_register;
	/* SubmissionSet contentTypeCode required (older TF); the current TF makes it optional. */
	bool require_content_type;
	/* ITI-57 association types (UpdateAvailabilityStatus, SubmitAssociation) are accepted. */
	bool metadata_update;
};

/*
 * Validates s; opts NULL = ITI-42 with the current TF (all false). Returns HIE_OK when the checks ran (the
 * verdict is r->nerrors == 0), HIE_ENOMEM when an entry could not be recorded.
 */
hie_err_t registry_validate_submission(const struct registry_ebrim_submission *s,
				       const struct registry_validate_opts *opts, struct registry_response *r);

/* Value checks, shared with the other transactions. */
bool registry_validate_dtm(const char *v);       /* YYYY[MM[DD[hh[mm[ss]]]]], ranges checked */
bool registry_validate_oid(const char *v);       /* digits and dots, no empty arc, no leading zero, <= 64 */
bool registry_validate_uid(const char *v);       /* OID or OID^extension, <= 128 bytes */
bool registry_validate_cx(const char *v);        /* id^^^&OID&ISO */
bool registry_validate_hash(const char *v);      /* 40 hex digits (SHA-1) */
bool registry_validate_size(const char *v);      /* 1..19 decimal digits */

#endif
