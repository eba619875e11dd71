/*
 * registry_query.c — PLACEHOLDER being written (answers a Receiver fault until then).
 */
#include "registry/registry_soap.h"

hie_err_t registry_query_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	(void)req;
	(void)resp;
	(void)arg;
	return HIE_EUNSUPPORTED;
}
