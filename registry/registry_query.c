/*
 * registry_query.c — ITI-18 Registry Stored Query: the SOAP handler (registry_query_handle) and the whole
 * transaction without SOAP (registry_query_run): parse the query:AdhocQueryRequest (registry_query_params.c),
 * run it (registry_query_exec.c), answer a query:AdhocQueryResponse.
 *
 * A body that is not a query:AdhocQueryRequest is a Sender fault (not this transaction's message). Anything
 * else the peer got wrong, and a database that fails, is answered with status Failure and the
 * rs:RegistryErrorList, never a fault. The response declares query, rim and rs on its root; stored object XML
 * declares what it uses itself.
 */
#include <string.h>

#include "core/core_log.h"
#include "registry/registry.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_query.h"
#include "registry/registry_soap.h"

static hie_err_t build(const struct registry_response *r, const struct hie_buf *objects, struct hie_buf *out)
{
	const char *status = r->nerrors ? REGISTRY_STATUS_FAILURE_URN : REGISTRY_STATUS_SUCCESS_URN;
	hie_err_t err = hie_buf_addf(out,
				     "<query:AdhocQueryResponse xmlns:query=\"%s\" xmlns:rim=\"%s\" xmlns:rs=\"%s\""
				     " status=\"%s\">",
				     REGISTRY_NS_QUERY, REGISTRY_NS_RIM, REGISTRY_NS_RS, status);
	if (!err)
		err = registry_response_build_errors(r, out);
	if (!err && objects && objects->len) {
		err = hie_buf_addstr(out, "<rim:RegistryObjectList>");
		if (!err)
			err = hie_buf_add(out, objects->data, objects->len);
		if (!err)
			err = hie_buf_addstr(out, "</rim:RegistryObjectList>");
	} else if (!err) {
		err = hie_buf_addstr(out, "<rim:RegistryObjectList/>");
	}
	if (!err)
		err = hie_buf_addstr(out, "</query:AdhocQueryResponse>");
	return err;
}

hie_err_t registry_query_run(struct hie_db_pool *pool, size_t max_results, const xmlNode *adhoc_request,
			     struct hie_buf *out)
{
	struct registry_response r;
	registry_response_init(&r, 0);
	struct hie_buf objects;
	/* The objects must fit in the response: the same cap, less room for the envelope of the answer. */
	hie_buf_init(&objects, out->max > 4096 ? out->max - 4096 : out->max);
	struct registry_sq_request *q = NULL;
	hie_err_t err = registry_sq_parse(adhoc_request, &q, &r);
	if (!err && q)
		err = registry_sq_exec(pool, max_results, q, &r, &objects);
	if (err == HIE_ETOOBIG) {
		hie_buf_reset(&objects);
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_OUT_OF_RESOURCES, NULL,
					    "the result is larger than this registry can send in one response");
	}
	if (!err) {
		size_t mark = out->len;
		err = build(&r, r.nerrors ? NULL : &objects, out);
		if (err)
			out->len = mark; /* nothing half-written */
		if (out->data)
			out->data[out->len] = '\0';
	}
	hie_log(r.nerrors ? HIE_LOG_NOTICE : HIE_LOG_INFO, "event=registry.iti18 query=%s return=%s errors=%zu first=%s",
		q ? registry_sq_name(q->query) : "-", q ? (q->leaf_class ? "LeafClass" : "ObjectRef") : "-",
		r.nerrors, r.n ? r.errs[0].code : "-");
	registry_sq_free(q);
	hie_buf_free(&objects);
	registry_response_free(&r);
	return err;
}

hie_err_t registry_query_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	struct registry_service *svc = arg;
	if (!hie_xml_is(req->payload, REGISTRY_NS_QUERY, "AdhocQueryRequest"))
		return registry_soap_sender_fault(resp, "the body of ITI-18 must be a query:AdhocQueryRequest");
	return registry_query_run(svc->pool, svc->max_query_results, req->payload, &resp->body_xml);
}
