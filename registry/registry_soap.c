/*
 * registry_soap.c — the module's SOAP door: registry_routes() mounts every transaction on the router, and the
 * ITI-42 Register Document Set-b handler lives here (the others in their own files, see registry_soap.h).
 *
 * ITI-42 (and ITI-57, registry_update.c, through registry_soap_register): the body must be an
 * lcm:SubmitObjectsRequest (anything else is a Sender fault: not our message); a request that parses is always
 * answered with an rs:RegistryResponse — success only after the submission committed, otherwise Failure with
 * the RegistryErrorList (registry_register_submission).
 */
#include <string.h>

#include "core/core_log.h"
#include "registry/registry.h"
#include "registry/registry_register.h"
#include "registry/registry_soap.h"

void registry_service_init(struct registry_service *svc, const struct hie_cfg *cfg)
{
	memset(svc, 0, sizeof *svc);
	svc->max_query_results = (size_t)hie_cfg_int(cfg, "registry", "max_query_results");
	snprintf(svc->repository_uid, sizeof svc->repository_uid, "%s", hie_cfg_str(cfg, "repository", "unique_id"));
	registry_bridge_config(&svc->bridge, cfg);
}

hie_err_t registry_routes(struct hie_soap_router *router, struct registry_service *svc)
{
	static const struct {
		const char *path, *action;
		hie_soap_handler_fn fn;
	} routes[] = {
		{"/xds/registry", REGISTRY_ACTION_ITI42, registry_iti42_handle},
		{"/xds/registry", REGISTRY_ACTION_ITI18, registry_query_handle},
		{"/xds/registry", REGISTRY_ACTION_ITI57, registry_update_handle},
		{"/xds/registry", REGISTRY_ACTION_ITI62, registry_remove_handle},
		{"/xds/repository", REGISTRY_ACTION_ITI41, registry_provide_handle},
		{"/xds/repository", REGISTRY_ACTION_ITI43, registry_retrieve_handle},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		hie_err_t err = hie_soap_route(router, routes[i].path, routes[i].action, routes[i].fn, svc);
		if (err)
			return err;
	}
	return HIE_OK;
}

hie_err_t registry_soap_sender_fault(struct hie_soap_response *resp, const char *reason)
{
	resp->is_fault = true;
	hie_soap_fault_set(&resp->fault, HIE_SOAP_FAULT_SENDER, NULL, "%s", reason);
	return HIE_OK;
}

hie_err_t registry_soap_register(const struct hie_soap_msg *req, struct hie_soap_response *resp,
				 const struct registry_service *svc, const struct registry_register_opts *opts)
{
	const char *tx = opts && opts->metadata_update ? "iti57" : "iti42";
	if (!hie_xml_is(req->payload, REGISTRY_NS_LCM, "SubmitObjectsRequest"))
		return registry_soap_sender_fault(resp, "the body must be an lcm:SubmitObjectsRequest");

	struct registry_response r;
	registry_response_init(&r, 0);
	struct registry_ebrim_submission *s = NULL;
	hie_err_t err = registry_ebrim_parse(req->payload, &s);
	if (err == HIE_EPARSE)
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_METADATA, NULL,
					    "SubmitObjectsRequest: no rim:RegistryObjectList");
	else if (err == HIE_ETOOBIG)
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_OUT_OF_RESOURCES, NULL,
					    "the submission exceeds %u registry objects or its size limits",
					    REGISTRY_EBRIM_MAX_OBJECTS);
	else if (!err)
		err = registry_register_submission(svc->pool, s, opts, &r);
	if (!err)
		err = registry_response_build(&r, REGISTRY_STATUS_AUTO, &resp->body_xml);
	hie_log(r.nerrors ? HIE_LOG_NOTICE : HIE_LOG_INFO, "event=registry.%s objects=%zu errors=%zu first=%s", tx,
		s ? s->nobjects_total : 0, r.nerrors, r.n ? r.errs[0].code : "-");
	registry_ebrim_free(s);
	registry_response_free(&r);
	return err;
}

hie_err_t registry_iti42_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	return registry_soap_register(req, resp, arg, NULL);
}
