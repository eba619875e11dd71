/*
 * node_web.c — the SOAP endpoints of ARCHITECTURE.md on the HTTP server.
 *
 * Every endpoint path is one HTTP route (POST, body capped by [http] max_body before anything is parsed)
 * that hands the request to the SOAP router: parse, WS-Addressing, MTOM, dispatch by (path, action), reply
 * or fault. The modules register their transactions on the router (registry: /xds/registry, /xds/repository;
 * hisp: /xdr); handlers find the struct hie_http_req * of the request in req->call->user (Basic auth, TLS);
 * a path with no transaction registered yet answers 404, an unknown action on a served path a Sender fault
 * wsa:ActionNotSupported.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core_http.h"
#include "core/core_log.h"
#include "core/core_soap.h"
#include "hisp/hisp.h"
#include "node/node.h"

static const char *const soap_paths[] = {
	"/xds/registry", "/xds/repository", "/xca/query", "/xca/retrieve", "/xcpd", "/xdr", "/dsub",
};

struct node_web {
	struct hie_soap_router *router;
};

static hie_err_t soap_handler(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	struct node_web *web = ctx;
	struct hie_soap_reply reply;
	struct hie_soap_call_ctx call = {.user = (void *)req, .peer = req->remote_addr};
	hie_soap_reply_init(&reply, 0);
	hie_err_t err = hie_soap_dispatch(web->router, req->route, hie_http_req_header(req, "Content-Type"),
					  req->body, req->body_len, &call, &reply);
	if (!err) {
		resp->status = reply.status;
		resp->content_type = NULL; /* the reply's own, set as a header: it outlives this call */
		hie_buf_free(&resp->body);
		resp->body = reply.body; /* moved: the server frees it */
		hie_buf_init(&reply.body, 0);
		err = hie_http_resp_header(resp, "Content-Type", hie_buf_str(&reply.content_type));
	}
	hie_soap_reply_free(&reply);
	return err;
}

hie_err_t node_web_setup(struct node_web **out, struct hie_http_server *http, const struct hie_cfg *cfg,
			 struct registry_service *svc)
{
	struct node_web *web = calloc(1, sizeof *web);
	if (!web)
		return HIE_ENOMEM;
	struct hie_soap_limits lim = {.max_body = (size_t)hie_cfg_int(cfg, "http", "max_body")};
	hie_err_t err = hie_soap_router_new(&lim, &web->router);
	registry_service_init(svc, cfg);
	if (!err)
		err = registry_routes(web->router, svc);
	for (size_t i = 0; !err && i < sizeof soap_paths / sizeof soap_paths[0]; i++) {
		const struct hie_http_route r = {
			.path = soap_paths[i], .methods = HIE_HTTP_POST, .fn = soap_handler, .ctx = web};
		err = hie_http_route_add(http, &r);
	}
	if (err) {
		node_web_free(web);
		return err;
	}
	*out = web;
	return HIE_OK;
}

hie_err_t node_web_add_hisp(struct node_web *web, struct hisp *h)
{
	return hisp_xdr_routes(h, web->router);
}

void node_web_free(struct node_web *web)
{
	if (!web)
		return;
	hie_soap_router_free(web->router);
	free(web);
}
