/*
 * registry_response.h — the error list of a registry transaction and its rs:RegistryResponse.
 *
 * Checks (registry_validate, and the database-side checks of the transactions) append errors with
 * registry_response_add: an IHE error code (a static string from the REGISTRY_ERR_* list), a codeContext
 * naming the offending attribute and value, a location (the object's id) and a severity. The list is capped
 * (further errors are counted, not kept). registry_response_build writes the rs:RegistryResponse (ebRS 3.0)
 * as XML text, with status Success, Failure or PartialSuccess and the rs:RegistryErrorList.
 */
#ifndef HIENODE_REGISTRY_RESPONSE_H
#define HIENODE_REGISTRY_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"

/* IHE error codes (ITI TF-3 Table 4.2.4.1-2) the registry uses. */
#define REGISTRY_ERR_METADATA "XDSRegistryMetadataError"
#define REGISTRY_ERR_PID_MISMATCH "XDSPatientIdDoesNotMatch"
#define REGISTRY_ERR_UNKNOWN_PID "XDSUnknownPatientId"
#define REGISTRY_ERR_DUP_UID_MSG "XDSRegistryDuplicateUniqueIdInMessage"
#define REGISTRY_ERR_DUP_UID_REG "XDSDuplicateUniqueIdInRegistry"
#define REGISTRY_ERR_NONIDENT_HASH "XDSNonIdenticalHash"
#define REGISTRY_ERR_NONIDENT_SIZE "XDSNonIdenticalSize"
#define REGISTRY_ERR_DEPRECATED "XDSRegistryDeprecatedDocumentError"
#define REGISTRY_ERR_REGISTRY "XDSRegistryError"
#define REGISTRY_ERR_BUSY "XDSRegistryBusy"
#define REGISTRY_ERR_OUT_OF_RESOURCES "XDSRegistryOutOfResources"
#define REGISTRY_ERR_EXTRA_METADATA "XDSExtraMetadataNotSaved"
/* ITI-57 (ITI TF-2b 3.57.4.1.3) */
#define REGISTRY_ERR_UPDATE "XDSMetadataUpdateError"
#define REGISTRY_ERR_VERSION "XDSMetadataVersionError"
#define REGISTRY_ERR_IDENTIFIER "XDSMetadataIdentifierError"
#define REGISTRY_ERR_PID_RECONCILE "XDSPatientIDReconciliationError"
/* ITI-62 (ITI TF-2b 3.62.4.1.3; ebRS exceptions) */
#define REGISTRY_ERR_UNRESOLVED "UnresolvedReferenceException"
#define REGISTRY_ERR_REFS_EXIST "ReferencesExistException"
#define REGISTRY_ERR_UNREFERENCED "XDSUnreferencedObjectException"

#define REGISTRY_STATUS_SUCCESS_URN "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
#define REGISTRY_STATUS_FAILURE_URN "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
#define REGISTRY_STATUS_PARTIAL_URN "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
#define REGISTRY_SEVERITY_ERROR_URN "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
#define REGISTRY_SEVERITY_WARNING_URN "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

#define REGISTRY_RESPONSE_DEFAULT_MAX 100u   /* errors kept */
#define REGISTRY_RESPONSE_CONTEXT_MAX 1024u  /* bytes of one codeContext */

enum registry_severity { REGISTRY_SEV_ERROR = 0, REGISTRY_SEV_WARNING };
enum registry_status { REGISTRY_STATUS_AUTO = 0, REGISTRY_STATUS_SUCCESS, REGISTRY_STATUS_FAILURE,
		       REGISTRY_STATUS_PARTIAL };

struct registry_error {
	const char *code;              /* static string */
	char *context;                 /* owned */
	char *location;                /* owned; may be NULL */
	enum registry_severity severity;
};

struct registry_response {
	struct registry_error *errs;
	size_t n, cap, max;
	size_t nerrors;                /* severity Error, kept or not */
	size_t dropped;                /* entries over the cap */
};

/* max 0 = REGISTRY_RESPONSE_DEFAULT_MAX. */
void registry_response_init(struct registry_response *r, size_t max);
void registry_response_free(struct registry_response *r);

/*
 * Appends an entry; the codeContext is formatted like printf and cut to REGISTRY_RESPONSE_CONTEXT_MAX bytes.
 * Past the cap the entry is counted in r->dropped and HIE_OK returned. location may be NULL. HIE_ENOMEM.
 */
hie_err_t registry_response_add(struct registry_response *r, enum registry_severity sev, const char *code,
				const char *location, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The first kept entry with this code, or NULL. */
const struct registry_error *registry_response_find(const struct registry_response *r, const char *code);

/*
 * Appends <rs:RegistryResponse xmlns:rs=...> with status st (AUTO: Failure when any Error entry exists,
 * else Success) and, when there are entries, the rs:RegistryErrorList (highestSeverity, one rs:RegistryError
 * each; a dropped tail is summed up in one last Warning). Attribute values are XML-escaped. HIE_ETOOBIG at
 * out's cap, HIE_ENOMEM.
 */
hie_err_t registry_response_build(const struct registry_response *r, enum registry_status st, struct hie_buf *out);

/*
 * Appends the rs:RegistryErrorList alone (xmlns:rs declared on it), as registry_response_build writes it, or
 * nothing when r has no entry: for responses that carry the list inside another element
 * (query:AdhocQueryResponse). HIE_ETOOBIG at out's cap, HIE_ENOMEM.
 */
hie_err_t registry_response_build_errors(const struct registry_response *r, struct hie_buf *out);

/* Appends a copy of every kept entry of `from` to r (as registry_response_add, so r's cap applies). HIE_ENOMEM. */
hie_err_t registry_response_merge(struct registry_response *r, const struct registry_response *from);

#endif
