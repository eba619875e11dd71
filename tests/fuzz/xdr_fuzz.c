/*
 * xdr_fuzz.c — libFuzzer target for the XDR Document Recipient's request reader (hisp_xdr_read): the Direct
 * addressing headers, the ebRS 3.0 metadata (SubmissionSet, intendedRecipient XTNs, author telecom, Folders,
 * associations, DocumentEntries with hash/size) and the xdsb:Documents (inline base64 or MTOM).
 *
 * Input: the first line is the HTTP Content-Type, the rest is the body, parsed with hie_soap_parse as the
 * router would. Every read ends with a RegistryResponse written from the collected errors (which must be
 * well-formed XML) and every document handed on must have its bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "core/core_soap.h"
#include "core/core_xml.h"
#include "hisp/hisp_xdr_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	if (!once) {
		hie_log_set_level(HIE_LOG_ALERT);
		once = 1;
	}
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
	const char *body = nl + 1;
	size_t len = size - ct_len - 1;
	struct hie_soap_msg *msg = NULL;
	struct hie_soap_fault f;
	memset(&f, 0, sizeof f);
	if (hie_soap_parse(ct, body, len, NULL, &msg, &f) == HIE_OK) {
		struct hisp_xdr_sub sub;
		struct hisp_xdr_errors e;
		char why[200];
		memset(&sub, 0, sizeof sub);
		memset(&e, 0, sizeof e);
		if (hisp_xdr_read(msg, 1u << 20, &sub, &e, why, sizeof why) == HIE_OK) {
			for (size_t i = 0; i < sub.ndocs; i++)
				if (sub.docs[i].len && !sub.docs[i].data)
					abort();
			struct hie_buf out;
			xmlDoc *d = NULL;
			hie_buf_init(&out, 1 << 20);
			if (hisp_xdr_response_xml(&e, &out) != HIE_OK ||
			    hie_xml_parse(out.data, out.len, NULL, &d, NULL) != HIE_OK)
				abort(); /* our own response must always be well-formed */
			xmlFreeDoc(d);
			hie_buf_free(&out);
		}
		hisp_xdr_sub_free(&sub);
		hie_soap_msg_free(msg);
	}
	free(ct);
	return 0;
}
