/*
 * hisp_edge.c — where the edge joins the core: the delivery hook of the receive job (forwarding and bridge jobs
 * enqueued in the delivery transaction), the bridge callback the node sets, and the HTTP / SOAP mounts.
 *
 * Entry points: hisp_edge_delivered, hisp_service_set_bridge, hisp_edge_routes, hisp_xdr_routes.
 * Errors: core_db's and core_jobs'; HIE_EINVAL for bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_db.h"
#include "core/core_http.h"
#include "core/core_jobs.h"
#include "core/core_soap.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_svc.h"

void hisp_service_set_bridge(struct hisp *h, hisp_bridge_fn fn, void *arg)
{
	h->bridge_fn = fn;
	h->bridge_arg = arg;
}

hie_err_t hisp_edge_delivered(struct hisp *h, PGconn *tx, const char *address, long long inbound_id)
{
	(void)h;
	char inb[24], ids[24], key[48];
	if (!tx || !address || inbound_id <= 0)
		return HIE_EINVAL;
	snprintf(inb, sizeof inb, "%lld", inbound_id);
	const char *p[] = {address, inb};
	PGresult *r = NULL;
	hie_err_t err = hie_db_exec(
		tx,
		"SELECT m.id, f.kind, f.target,"
		" EXISTS (SELECT 1 FROM hisp_bridges b WHERE b.subject = $1 OR b.subject = split_part($1, '@', 2))"
		" FROM hisp_mailbox m LEFT JOIN hisp_forwards f ON f.address = m.address"
		" WHERE m.address = $1 AND m.inbound_id = $2::bigint",
		2, p, &r);
	if (err)
		return err;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return HIE_ENOTFOUND;
	}
	long long mailbox_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	snprintf(ids, sizeof ids, "%lld", mailbox_id);
	bool forward = !PQgetisnull(r, 0, 1);
	bool bridge = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
	if (forward) {
		const char *q[] = {ids, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)};
		err = hie_db_exec(tx,
				  "INSERT INTO hisp_forward_state (mailbox_id, kind, target) VALUES ($1::bigint, $2, $3)"
				  " ON CONFLICT (mailbox_id) DO NOTHING",
				  3, q, NULL);
		snprintf(key, sizeof key, "forward-%lld", mailbox_id);
		if (!err)
			err = hie_jobs_enqueue(tx, "hisp.forward", ids, key, 0, NULL);
	}
	if (!err && bridge) {
		snprintf(key, sizeof key, "bridge-%lld", mailbox_id);
		err = hie_jobs_enqueue(tx, "hisp.bridge", ids, key, 0, NULL);
	}
	PQclear(r);
	return err;
}

hie_err_t hisp_edge_routes(struct hisp *h, struct hie_http_server *http)
{
	const struct hie_http_route r = {.path = HISP_EDGE_PREFIX,
					 .methods = HIE_HTTP_GET | HIE_HTTP_POST,
					 .prefix = 1,
					 .body_max = 64 * 1024,
					 .fn = hisp_edge_http,
					 .ctx = h};
	return hie_http_route_add(http, &r);
}

hie_err_t hisp_xdr_routes(struct hisp *h, struct hie_soap_router *router)
{
	return hie_soap_route(router, HISP_XDR_PATH, HISP_XDR_ACTION, hisp_xdr_handle, h);
}
