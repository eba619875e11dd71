/*
 * registry_store.h — the registry's storage (module-internal; the tables are registry_schema.c migration 2).
 *
 * registry_store_submission() writes every object of a validated submission whose ids are all urn:uuid into
 * the tables, inside the caller's transaction: DocumentEntries, SubmissionSets/Folders, Associations with
 * their denormalised query columns, and any other top-level object in reg_extra (owner = the object it
 * applies to). Objects are stored with status Approved unless the caller's submission says otherwise for an
 * Association (ITI-57 does its own status handling). Stored XML has no status attribute:
 * registry_store_emit() puts the current one back when an object is returned.
 *
 * Patient ids are stored in the canonical form of registry_pid_format(), codes as "code^^scheme" (scheme ""
 * when the codingScheme slot is absent).
 *
 * Errors: HIE_EEXIST when a unique key is already taken (a concurrent registration of the same SubmissionSet
 * or Folder uniqueId: the caller retries the transaction, which then sees the row), HIE_EINVAL for an object the validator should
 * have refused (no id, bad patient id), database errors as core_db maps them, HIE_ENOMEM.
 */
#ifndef HIENODE_REGISTRY_STORE_H
#define HIENODE_REGISTRY_STORE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "registry/registry_ebrim.h"

#define REGISTRY_STATUS_APPROVED "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
#define REGISTRY_STATUS_DEPRECATED "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
#define REGISTRY_STATUS_SUBMITTED "urn:oasis:names:tc:ebxml-regrep:StatusType:Submitted"

#define REGISTRY_ASSOC_NS "urn:oasis:names:tc:ebxml-regrep:AssociationType:"
#define REGISTRY_ASSOC_HASMEMBER REGISTRY_ASSOC_NS "HasMember"
#define REGISTRY_ASSOC_RPLC "urn:ihe:iti:2007:AssociationType:RPLC"
#define REGISTRY_ASSOC_APND "urn:ihe:iti:2007:AssociationType:APND"
#define REGISTRY_ASSOC_XFRM "urn:ihe:iti:2007:AssociationType:XFRM"
#define REGISTRY_ASSOC_XFRM_RPLC "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
#define REGISTRY_ASSOC_SIGNS "urn:ihe:iti:2007:AssociationType:signs"
#define REGISTRY_ASSOC_UPDATE_STATUS "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"

/* Versions (ITI-57) of the submission's objects that are not at version 1. */
struct registry_store_version {
	const char *id;     /* a DocumentEntry or Folder of the submission */
	int version;        /* its version (ITI-57: the previous one + 1) */
};
struct registry_store_opts {
	struct registry_store_version *versions;   /* objects not at version 1 */
	size_t nversions;
};
/* The version opts gives id, 1 when none. */
int registry_store_version(const struct registry_store_opts *o, const char *id);

/* opts may be NULL. The objects' XML nodes are edited (status removed, lid and VersionInfo set). */
hie_err_t registry_store_submission(PGconn *tx, const struct registry_ebrim_submission *s,
				    const struct registry_store_opts *opts);

/* Now as DTM YYYYMMDDhhmmss (UTC). */
void registry_store_now(char out[15]);

/*
 * Appends the stored object XML `xml` (len bytes) to out with status="<status>" added to its root element
 * (status NULL or "" = as stored). HIE_EINVAL when xml does not start with an element, HIE_ETOOBIG at out's cap.
 */
hie_err_t registry_store_emit(const char *xml, size_t len, const char *status, struct hie_buf *out);

/* Appends a PostgreSQL text[] literal of the n strings (every element quoted and escaped). */
hie_err_t registry_store_array(struct hie_buf *b, const char *const *v, size_t n);

/* Canonical "code^^scheme" of a coded value into out (cut at outlen). */
void registry_store_code_text(const char *code, const char *scheme, char *out, size_t outlen);

#endif
