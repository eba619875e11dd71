/*
 * mtom_fuzz.c — libFuzzer target for core_mtom: the first line of the input is the HTTP Content-Type,
 * the rest is the body. Every part is looked up by its own Content-ID (bare and as a cid: URL).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core_mtom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hie_mime_limits lim = {
		.max_depth = 4, .max_parts = 100, .max_headers = 30, .max_header_bytes = 4096,
	};
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t ct_len = nl ? (size_t)(nl - in) : size;
	char *ct = malloc(ct_len + 1);
	if (!ct)
		return 0;
	memcpy(ct, in, ct_len);
	ct[ct_len] = '\0';
	const char *body = nl ? nl + 1 : in + size;
	size_t body_len = size - (size_t)(body - in);

	struct hie_mtom *m = NULL;
	if (hie_mtom_parse(ct, body, body_len, &lim, &m) == HIE_OK) {
		for (size_t i = 0; i < m->nparts; i++) {
			const struct hie_mtom_part *p = &m->parts[i];
			size_t cl = strlen(p->cid);
			/* Ids that still carry <> or blanks after stripping, or that look like a cid: URL
			 * themselves, are ambiguous as lookup keys; skip them. */
			if (!cl || strpbrk(p->cid, "<> \t\r\n") || strncasecmp(p->cid, "cid:", 4) == 0)
				continue;
			if (hie_mtom_find(m, p->cid, cl) != p)
				__builtin_trap(); /* duplicates are refused, so each id finds its own part */
			char url[1100];
			int n = snprintf(url, sizeof(url), "cid:%s", p->cid);
			if (n > 0 && (size_t)n < sizeof(url) && !strchr(p->cid, '%') &&
			    hie_mtom_find(m, url, (size_t)n) != p)
				__builtin_trap();
		}
		(void)hie_mtom_find(m, body, body_len < 64 ? body_len : 64);
		hie_mtom_free(m);
	} else if (m) {
		__builtin_trap();
	}
	free(ct);
	return 0;
}
