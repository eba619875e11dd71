/*
 * registry_query.h — ITI-18 Registry Stored Query (module-internal): the fourteen XDS stored queries over the
 * tables of registry_schema.c migration 2.
 *
 *   registry_query_run      query:AdhocQueryRequest in, query:AdhocQueryResponse out (the SOAP handler's core)
 *   registry_sq_parse       the request's parameters, checked against the query's definition (no database)
 *   registry_sq_exec        runs a parsed request (one read-only REPEATABLE READ transaction)
 *
 * Parameter rules (ITI TF-2a 3.18.4.1.2.3): string values in single quotes ('' inside stands for one quote),
 * lists in parentheses, numbers (times) unquoted or quoted; the values of a list and of several rim:Value
 * elements of one slot are ORed, different parameters ANDed; the code parameters that allow it
 * ($XDSDocumentEntryEventCodeList, $XDSDocumentEntryConfidentialityCode, $XDSFolderCodeList) given in several
 * slots are an AND of ORs. Codes must be 'code^^scheme' (the NIST tests refuse a code without scheme).
 * Errors: unknown query id → XDSUnknownStoredQuery; a required parameter missing, a single-valued parameter
 * with several values or slots, or more than one of "either A or B" → XDSStoredQueryParamNumber; a value that
 * does not parse (syntax, code format, time format, not UTF-8, too long) → XDSRegistryError. Parameters the
 * query does not define are ignored (ebRS 3.0 §6.3.2.1), as are status values we do not know (TF 3.18.4.1.2.3.6).
 */
#ifndef HIENODE_REGISTRY_QUERY_H
#define HIENODE_REGISTRY_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_db.h"
#include "core/core_err.h"
#include "core/core_xml.h"
#include "registry/registry_response.h"

#define REGISTRY_NS_QUERY "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"

#define REGISTRY_ERR_UNKNOWN_SQ "XDSUnknownStoredQuery"
#define REGISTRY_ERR_SQ_PARAM_NUMBER "XDSStoredQueryParamNumber"
#define REGISTRY_ERR_TOO_MANY "XDSTooManyResults"
#define REGISTRY_ERR_NOT_SINGLE_PATIENT "XDSResultNotSinglePatient"

/* Caps on one request (hostile input). Over them: XDSRegistryError (values) or XDSRegistryOutOfResources. */
#define REGISTRY_SQ_MAX_SLOTS 200u          /* rim:Slot elements */
#define REGISTRY_SQ_MAX_VALUES 20000u       /* values over all slots */
#define REGISTRY_SQ_MAX_VALUE_LEN 4096u     /* bytes of one value (one item of a list) */
#define REGISTRY_SQ_MAX_VALUE_TEXT (4u * 1024u * 1024u) /* bytes of one rim:Value element's text */
#define REGISTRY_SQ_OBJREF_MAX 100000u      /* ObjectRef results (LeafClass uses the configured maximum) */

enum registry_sq_query {
	REGISTRY_SQ_FIND_DOCUMENTS = 0,
	REGISTRY_SQ_FIND_DOCUMENTS_BY_REFID,
	REGISTRY_SQ_FIND_SUBMISSION_SETS,
	REGISTRY_SQ_FIND_FOLDERS,
	REGISTRY_SQ_GET_ALL,
	REGISTRY_SQ_GET_DOCUMENTS,
	REGISTRY_SQ_GET_FOLDERS,
	REGISTRY_SQ_GET_ASSOCIATIONS,
	REGISTRY_SQ_GET_DOCUMENTS_AND_ASSOCIATIONS,
	REGISTRY_SQ_GET_SUBMISSION_SETS,
	REGISTRY_SQ_GET_SUBMISSION_SET_AND_CONTENTS,
	REGISTRY_SQ_GET_FOLDER_AND_CONTENTS,
	REGISTRY_SQ_GET_FOLDERS_FOR_DOCUMENT,
	REGISTRY_SQ_GET_RELATED_DOCUMENTS,
	REGISTRY_SQ_COUNT
};

/* The query's urn:uuid id and its name ("FindDocuments"); q < REGISTRY_SQ_COUNT. Static strings. */
const char *registry_sq_uuid(enum registry_sq_query q);
const char *registry_sq_name(enum registry_sq_query q);

/* One slot of a parameter: its values (unquoted text, NUL-terminated), ORed. */
struct registry_sq_group {
	char **values;
	size_t n;
};

/* A parameter the query defines and the request gave. groups > 1 only for AND/OR code parameters. */
struct registry_sq_param {
	const char *name;                 /* static: the definition's name */
	struct registry_sq_group *groups;
	size_t ngroups;
};

struct registry_sq_request {
	enum registry_sq_query query;
	bool leaf_class;                  /* returnType LeafClass (else ObjectRef) */
	char *home;                       /* AdhocQuery/@home or NULL */
	struct registry_sq_param *params; /* only the parameters the query defines */
	size_t nparams;
};

/*
 * Reads an AdhocQueryRequest. On HIE_OK, *out is the request when r got no Error entry (NULL otherwise);
 * free with registry_sq_free. Problems the peer caused are entries in r, not return values; only HIE_ENOMEM
 * is returned.
 */
hie_err_t registry_sq_parse(const xmlNode *adhoc_request, struct registry_sq_request **out,
			    struct registry_response *r);
void registry_sq_free(struct registry_sq_request *q);

/* The parameter `name` of q, or NULL when the request did not give it. */
const struct registry_sq_param *registry_sq_get(const struct registry_sq_request *q, const char *name);

/*
 * Runs q and appends the rim:RegistryObjectList children (LeafClass: each object's XML with its status and
 * home, followed by its reg_extra rows; ObjectRef: rim:ObjectRef elements) to `objects`. max_results caps
 * LeafClass results (0 = no cap). Outcomes the peer must hear (XDSTooManyResults, XDSResultNotSinglePatient,
 * a database that fails: XDSRegistryError / XDSRegistryBusy) are entries in r, with `objects` left empty.
 * Returns HIE_ENOMEM or HIE_ETOOBIG (objects' cap) only.
 */
hie_err_t registry_sq_exec(struct hie_db_pool *pool, size_t max_results, const struct registry_sq_request *q,
			   struct registry_response *r, struct hie_buf *objects);

/*
 * The whole transaction: parses adhoc_request (a query:AdhocQueryRequest element), runs it and appends the
 * query:AdhocQueryResponse (status Success or Failure, rs:RegistryErrorList, rim:RegistryObjectList; every
 * namespace it uses declared on its root) to out. Returns HIE_OK when out holds the response, HIE_ENOMEM, or
 * HIE_ETOOBIG at out's cap (the caller answers a fault). pool may be NULL (→ XDSRegistryError).
 */
hie_err_t registry_query_run(struct hie_db_pool *pool, size_t max_results, const xmlNode *adhoc_request,
			     struct hie_buf *out);

/* Internal to the module: helpers shared by registry_query*.c. */
bool registry_sq_valid_utf8(const char *s, size_t n);

#endif
