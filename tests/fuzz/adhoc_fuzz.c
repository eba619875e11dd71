/*
 * adhoc_fuzz.c — libFuzzer target for the ITI-18 request reader (query:AdhocQueryRequest → stored query id,
 * return type and parameters: quoting, lists, codes, times, the parameter rules).
 *
 * Input: an XML document whose root is the AdhocQueryRequest. It is parsed with core_xml and read with
 * registry_sq_parse; a request that passes has every value turned into the text[] literal the SQL binds, and
 * the error list is serialized, so the whole path before the database runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/core_xml.h"
#include "registry/registry_query.h"
#include "registry/registry_response.h"
#include "registry/registry_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hie_xml_limits lim = {.max_bytes = 1u << 20, .max_depth = 32, .max_elements = 20000};
	xmlDoc *doc = NULL;
	if (hie_xml_parse((const char *)data, size, &lim, &doc, NULL))
		return 0;
	struct registry_response r;
	registry_response_init(&r, 20);
	struct registry_sq_request *q = NULL;
	struct hie_buf b;
	hie_buf_init(&b, 1u << 22);
	if (registry_sq_parse(xmlDocGetRootElement(doc), &q, &r) == HIE_OK) {
		if (q && r.nerrors)
			abort(); /* a request with errors must not be handed out */
		for (size_t i = 0; q && i < q->nparams; i++)
			for (size_t g = 0; g < q->params[i].ngroups; g++) {
				hie_buf_reset(&b);
				(void)registry_store_array(&b, (const char *const *)q->params[i].groups[g].values,
							   q->params[i].groups[g].n);
			}
		hie_buf_reset(&b);
		(void)registry_response_build_errors(&r, &b);
	}
	registry_sq_free(q);
	hie_buf_free(&b);
	registry_response_free(&r);
	xmlFreeDoc(doc);
	return 0;
}
