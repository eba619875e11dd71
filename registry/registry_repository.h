/*
 * registry_repository.h — the XDS.b document repository (module-internal): ITI-41 Provide and Register
 * Document Set-b and ITI-43 Retrieve Document Set on /xds/repository. The handlers themselves are declared in
 * registry_soap.h (registry_provide_handle, registry_retrieve_handle, both in registry_repository.c); the
 * ITI-43 work is in registry_repository_retrieve.c.
 *
 * Document bytes live in repo_documents (registry_schema.c migration 2), written in the same transaction as
 * the metadata (registry_register_submission's in_tx hook) and sent to PostgreSQL as binary parameters; they
 * are read back with a binary-format result and handed to the MTOM writer without a copy.
 */
#ifndef HIENODE_REGISTRY_REPOSITORY_H
#define HIENODE_REGISTRY_REPOSITORY_H

#include <stddef.h>

#include "core/core_soap.h"
#include "registry/registry.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_response.h"

#define REGISTRY_NS_XDSB "urn:ihe:iti:xds-b:2007"

/* IHE error codes of the repository (ITI TF-3 Table 4.2.4.1-2; TransactionDefinedErrorCodes.txt P and RS). */
#define REPO_ERR_METADATA "XDSRepositoryMetadataError"
#define REPO_ERR_MISSING_DOCUMENT "XDSMissingDocument"
#define REPO_ERR_MISSING_METADATA "XDSMissingDocumentMetadata"
#define REPO_ERR_REPOSITORY "XDSRepositoryError"
#define REPO_ERR_BUSY "XDSRepositoryBusy"
#define REPO_ERR_OUT_OF_RESOURCES "XDSRepositoryOutOfResources"
#define REPO_ERR_DOC_UID "XDSDocumentUniqueIdError"
#define REPO_ERR_UNKNOWN_REPOSITORY "XDSUnknownRepositoryId"

/*
 * Caps. The HTTP body cap ([http] max_body) bounds what arrives; these bound what one transaction may make
 * us hold in memory on top of it.
 */
#define REPO_MAX_DOCUMENTS 1000u                    /* xdsb:Document elements in one ITI-41 */
#define REPO_MAX_INLINE_BYTES (64u * 1024u * 1024u) /* decoded inline (base64) content of one ITI-41 */
#define REPO_MAX_REQUESTS 1000u                     /* xdsb:DocumentRequest elements in one ITI-43 */
/*
 * Total document bytes one ITI-43 reply may carry. The reply body (hie_soap_reply, 256 MiB by default) holds
 * the MTOM package, i.e. these bytes once more beside the database result they are read from, so the cap is
 * half of it. A document past the cap is answered with XDSRepositoryOutOfResources (PartialSuccess when
 * others fit): the consumer retrieves it in a request of its own.
 */
#define REPO_MAX_RETRIEVE_BYTES (128u * 1024u * 1024u)
/* Longest HomeCommunityId / RepositoryUniqueId / DocumentUniqueId we read from an ITI-43 request. */
#define REPO_MAX_ID 256u

/* ITI-43 proper (registry_repository_retrieve.c); registry_retrieve_handle delegates to it. */
hie_err_t registry_repository_retrieve(struct registry_service *svc, const struct hie_soap_msg *req,
				       struct hie_soap_response *resp);

/*
 * The part of ITI-41 that the push-to-pull bridge (registry_import.c) shares: documents whose DocumentEntries
 * are top-level objects of a parsed submission s. For each: SHA-1 and size computed and compared with any the
 * source supplied (XDSRepositoryMetadataError naming the attribute and both values), then hash, size and our
 * repositoryUniqueId set on the DocumentEntry, and the submission registered exactly as ITI-42 would
 * (registry_register_submission, provide_and_register) with the bytes stored in repo_documents inside that
 * same transaction. The outcome is in r (r->nerrors == 0: committed; a database down or busy is an entry,
 * XDSRegistryError / XDSRegistryBusy). Returns HIE_ENOMEM only. docs[i].de, data and len are the caller's;
 * the other members are filled here (unique_id/mime_type point into s's arena).
 */
struct registry_repo_doc {
	struct registry_ebrim_obj *de;   /* its DocumentEntry (a top-level ExtrinsicObject of s) */
	const char *data;                /* the bytes */
	size_t len;
	const char *unique_id, *mime_type;
	char hash[41];
	char size[24];
};
hie_err_t registry_repository_register(struct registry_service *svc, struct registry_ebrim_submission *s,
				       struct registry_repo_doc *docs, size_t ndocs, struct registry_response *r);

#endif
