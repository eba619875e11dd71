/*
 * registry_soap.h — the SOAP handlers of the module's transactions (module-internal). Each is a
 * hie_soap_handler_fn whose arg is the struct registry_service; registry_routes() (registry_soap.c) mounts them.
 *
 *   registry_iti42_handle     ITI-42 Register Document Set-b        registry_soap.c
 *   registry_query_handle     ITI-18 Registry Stored Query          registry_query.c
 *   registry_update_handle    ITI-57 Update Document Set            registry_update.c
 *   registry_remove_handle    ITI-62 Remove Metadata                registry_update.c
 *   registry_provide_handle   ITI-41 Provide and Register (MTOM)    registry_repository.c
 *   registry_retrieve_handle  ITI-43 Retrieve Document Set (MTOM)   registry_repository.c
 */
#ifndef HIENODE_REGISTRY_SOAP_H
#define HIENODE_REGISTRY_SOAP_H

#include "core/core_soap.h"

#define REGISTRY_ACTION_ITI42 "urn:ihe:iti:2007:RegisterDocumentSet-b"
#define REGISTRY_ACTION_ITI18 "urn:ihe:iti:2007:RegistryStoredQuery"
#define REGISTRY_ACTION_ITI57 "urn:ihe:iti:2010:UpdateDocumentSet"
#define REGISTRY_ACTION_ITI62 "urn:ihe:iti:2010:DeleteDocumentSet"
#define REGISTRY_ACTION_ITI41 "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
#define REGISTRY_ACTION_ITI43 "urn:ihe:iti:2007:RetrieveDocumentSet"

hie_err_t registry_iti42_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg);
hie_err_t registry_query_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg);
hie_err_t registry_update_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg);
hie_err_t registry_remove_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg);
hie_err_t registry_provide_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg);
hie_err_t registry_retrieve_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg);

/*
 * Sets resp to a Sender fault with the reason (for a request that is not the transaction's message at all:
 * wrong body element or namespace). Returns HIE_OK.
 */
hie_err_t registry_soap_sender_fault(struct hie_soap_response *resp, const char *reason);

/*
 * ITI-42 / ITI-57 body: parse the lcm:SubmitObjectsRequest, registry_register_submission with opts (NULL =
 * ITI-42), answer the rs:RegistryResponse.
 */
struct registry_service;
struct registry_register_opts;
hie_err_t registry_soap_register(const struct hie_soap_msg *req, struct hie_soap_response *resp,
				 const struct registry_service *svc, const struct registry_register_opts *opts);


#endif
