/*
 * node_bridge.c — the push-to-pull bridge's glue: the Direct module (which knows nothing of the registry) hands
 * each received document to node_bridge_register, which registers it in this node's XDS registry and repository
 * with registry_import. Both modules stay behind their public headers.
 */
#include <stdio.h>

#include "hisp/hisp.h"
#include "node/node.h"
#include "registry/registry.h"

hie_err_t node_bridge_register(void *arg, const struct hisp_bridge_doc *doc, struct hisp_bridge_result *res)
{
	struct registry_service *svc = arg;
	const struct registry_import in = {
		.data = doc->data,
		.len = doc->len,
		.mime_type = doc->mime_type,
		.metadata = doc->metadata,
		.metadata_len = doc->metadata_len,
		.entry_id = doc->entry_id,
		.source = doc->sender,
	};
	struct registry_import_result r = {0};
	hie_err_t err = registry_import(svc, &in, &r);
	if (err)
		return err;
	switch (r.outcome) {
	case REGISTRY_IMPORT_REGISTERED:
		res->outcome = HISP_BRIDGE_REGISTERED;
		break;
	case REGISTRY_IMPORT_PARKED:
		res->outcome = HISP_BRIDGE_PARKED;
		break;
	default:
		res->outcome = HISP_BRIDGE_FAILED;
		break;
	}
	snprintf(res->unique_id, sizeof res->unique_id, "%s", r.unique_id);
	snprintf(res->reason, sizeof res->reason, "%s", r.reason);
	return HIE_OK;
}
