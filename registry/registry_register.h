/*
 * registry_register.h — the registration transaction of XDS.b (module-internal): ITI-42, and the registry
 * side of ITI-41 (the repository calls it exactly as a remote repository's ITI-42 would arrive).
 *
 * registry_register_submission() takes a parsed submission (registry_ebrim_parse), assigns urn:uuid ids to
 * symbolic ones, validates it without the database (registry_validate), then in ONE transaction: checks the
 * patient is known (XDSUnknownPatientId), resolves uniqueIds already registered (same hash and size: the same
 * document registered again — a request replayed as a whole, same SubmissionSet uniqueId and nothing new,
 * succeeds without storing anything; otherwise XDSNonIdenticalHash / XDSNonIdenticalSize; SubmissionSet/Folder:
 * XDSDuplicateUniqueIdInRegistry), checks association targets
 * that are not in the submission (exist, same patient, not deprecated: XDSRegistryDeprecatedDocumentError),
 * stores everything, deprecates what RPLC/XFRM_RPLC replace, calls opts->in_tx (the repository stores the
 * document bytes there) and commits. Any error rolls everything back: a submission is atomic.
 *
 * Returns HIE_OK when the outcome is in r (r->nerrors == 0: committed). A database that is down or busy is
 * an entry too (XDSRegistryBusy / XDSRegistryError), not a return value. Only HIE_ENOMEM is returned.
 */
#ifndef HIENODE_REGISTRY_REGISTER_H
#define HIENODE_REGISTRY_REGISTER_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "core/core_db.h"
#include "core/core_err.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_response.h"

struct registry_register_opts {
	/* ITI-41: validation as registry_validate_opts.provide_and_register (the repository fills hash/size). */
	bool provide_and_register;
	/*
	 * ITI-57 Update Document Set: a DocumentEntry or Folder whose lid names a registered logical object is
	 * a new version of it (the SubmissionSet's HasMember to it carries PreviousVersion: it must be the latest
	 * version, else XDSMetadataVersionError; same uniqueId and patient, else XDSMetadataIdentifierError /
	 * XDSPatientIDReconciliationError); the previous version is deprecated. UpdateAvailabilityStatus
	 * associations change the status of their target (OriginalStatus must match, else
	 * XDSMetadataUpdateError).
	 */
	bool metadata_update;
	/*
	 * Called inside the transaction after the metadata is stored (not for a pure resubmission). An error
	 * return rolls back; the function adds its own entries to r (or r gets XDSRepositoryError).
	 */
	hie_err_t (*in_tx)(PGconn *tx, const struct registry_ebrim_submission *s, struct registry_response *r,
			   void *arg);
	void *in_tx_arg;
};

hie_err_t registry_register_submission(struct hie_db_pool *pool, struct registry_ebrim_submission *s,
				       const struct registry_register_opts *opts, struct registry_response *r);

#endif
