/*
 * soap_fuzz.c — libFuzzer target for SOAP 1.2 / WS-Addressing / MTOM request handling.
 *
 * Input: the first line is the HTTP Content-Type, the rest is the body. The body is dispatched through a
 * router whose catch-all handler resolves every child of the payload with hie_soap_binary (inline base64 or
 * xop:Include) and echoes a reply, so parsing, routing, faults and reply building are all exercised.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "core/core_soap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hie_err_t echo(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	struct hie_buf scratch;
	xmlNode *c;
	(void)arg;
	hie_buf_init(&scratch, 1 << 16);
	HIE_XML_FOREACH(c, req->payload, NULL, NULL) {
		const char *p;
		size_t n;
		hie_buf_reset(&scratch);
		if (hie_soap_binary(req, c, &p, &n, &scratch) == HIE_OK && n && !p)
			abort(); /* a length without data would be our bug */
	}
	hie_buf_free(&scratch);
	if (req->payload)
		resp->body = req->payload; /* serialized with its in-scope namespaces */
	return HIE_OK;
}

static struct hie_soap_router *router(void)
{
	static struct hie_soap_router *r;
	if (!r) {
		hie_log_set_level(HIE_LOG_ALERT);
		if (hie_soap_router_new(NULL, &r) || hie_soap_route(r, "/soap", NULL, echo, NULL))
			abort();
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nl = memchr(s, '\n', size);
	if (!nl)
		return 0;
	size_t ct_len = (size_t)(nl - s);
	char *ct = malloc(ct_len + 1);
	if (!ct)
		return 0;
	memcpy(ct, s, ct_len);
	ct[ct_len] = '\0';
	if (ct_len && ct[ct_len - 1] == '\r')
		ct[ct_len - 1] = '\0';
	/* a private copy of the body so ASan sees reads past its end */
	size_t blen = size - ct_len - 1;
	char *body = malloc(blen ? blen : 1);
	if (!body) {
		free(ct);
		return 0;
	}
	memcpy(body, nl + 1, blen);

	struct hie_soap_reply rep;
	hie_soap_reply_init(&rep, 1 << 22);
	(void)hie_soap_dispatch(router(), "/soap", ct, body, blen, NULL, &rep);
	hie_soap_reply_free(&rep);

	free(body);
	free(ct);
	return 0;
}
