/*
 * ebrim_fuzz.c — libFuzzer target for the ebRIM 3.0 submission model and the XDS.b registration rules.
 *
 * Input: an XML document whose root is (or whose root's first child is) an lcm:SubmitObjectsRequest. It is
 * parsed with core_xml, read into the model, validated, given fresh ids, validated again, and every object
 * and the RegistryResponse are serialized, so every pass of registry_ebrim and registry_validate runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_xml.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_response.h"
#include "registry/registry_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hie_err_t seq_gen(char *out, size_t outlen, void *arg)
{
	unsigned *n = arg;
	/* Deterministic, so a crash reproduces. */
	return snprintf(out, outlen, "urn:uuid:00000000-0000-4000-8000-%012u", ++*n) > 0 ? HIE_OK : HIE_EINVAL;
}

static void validate(const struct registry_ebrim_submission *s)
{
	struct registry_response r;
	struct hie_buf b;
	registry_response_init(&r, 20);
	hie_buf_init(&b, 1u << 20);
	if (registry_validate_submission(s, NULL, &r) == HIE_OK)
		(void)registry_response_build(&r, REGISTRY_STATUS_AUTO, &b);
	hie_buf_free(&b);
	registry_response_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hie_xml_limits lim = { .max_bytes = 1u << 20, .max_depth = 32, .max_elements = 20000 };
	xmlDoc *doc = NULL;
	if (hie_xml_parse((const char *)data, size, &lim, &doc, NULL))
		return 0;
	xmlNode *req = xmlDocGetRootElement(doc);
	if (!hie_xml_is(req, REGISTRY_NS_LCM, "SubmitObjectsRequest"))
		req = hie_xml_child(req, NULL, NULL);
	struct registry_ebrim_submission *s = NULL;
	if (registry_ebrim_parse(req, &s) == HIE_OK) {
		xmlFreeDoc(doc); /* the model owns a copy: using the source after this would be a bug */
		doc = NULL;
		validate(s);
		unsigned n = 0;
		if (registry_ebrim_assign_ids(s, seq_gen, &n, NULL) == HIE_OK) {
			validate(s);
			for (size_t i = 0; i < s->nobjs; i++)
				if (s->objs[i].kind != REGISTRY_EBRIM_OTHER && s->objs[i].kind != REGISTRY_EBRIM_OBJECTREF &&
				    !registry_ebrim_is_uuid(s->objs[i].id))
					abort(); /* assign_ids left a symbolic id */
		}
		struct hie_buf b;
		hie_buf_init(&b, 1u << 20);
		for (size_t i = 0; i < s->nobjs; i++) {
			hie_buf_reset(&b);
			(void)registry_ebrim_obj_xml(&s->objs[i], &b);
		}
		hie_buf_free(&b);
		registry_ebrim_free(s);
	}
	xmlFreeDoc(doc);
	return 0;
}
