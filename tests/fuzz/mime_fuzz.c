/*
 * mime_fuzz.c — libFuzzer target for core_mime: parses the input as an entity (strict and lenient),
 * decodes every part of the tree and reads its parameters. Small caps make the limit paths reachable.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/core_mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct hie_mime_part *p, struct hie_buf *b)
{
	/* Every slice must lie inside its parent's raw bytes. */
	if (p->body < p->raw || p->body + p->body_len > p->raw + p->raw_len)
		__builtin_trap();
	hie_buf_reset(b);
	(void)hie_mime_decode(p, b);
	const struct hie_mime_header *h = hie_mime_header_find(p, "Content-Type");
	if (h) {
		char mt[64];
		(void)hie_mime_media_type(h->value, h->value_len, mt, sizeof(mt));
		(void)hie_mime_param(h->value, h->value_len, "boundary", b);
		(void)hie_mime_param(h->value, h->value_len, "charset", b);
	}
	(void)hie_mime_header_value(p, "Content-ID", b);
	for (size_t i = 0; i < p->nchildren; i++) {
		const struct hie_mime_part *c = &p->children[i];
		if (c->raw < p->body || c->raw + c->raw_len > p->body + p->body_len)
			__builtin_trap();
		walk(c, b);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hie_mime_limits lim = {
		.max_depth = 6, .max_parts = 200, .max_headers = 50, .max_header_bytes = 4096,
	};
	struct hie_buf b;
	hie_buf_init(&b, 1 << 20);
	for (unsigned flags = 0; flags <= HIE_MIME_LENIENT_CLOSE; flags += HIE_MIME_LENIENT_CLOSE) {
		struct hie_mime_part *p = NULL;
		if (hie_mime_parse_ex((const char *)data, size, &lim, flags, &p) == HIE_OK) {
			if (p->raw != (const char *)data || p->raw_len != size)
				__builtin_trap();
			walk(p, &b);
			hie_mime_free(p);
		} else if (p) {
			__builtin_trap();
		}
	}
	/* The stand-alone decoders on the raw input too. */
	hie_buf_reset(&b);
	(void)hie_mime_base64_decode((const char *)data, size, &b);
	hie_buf_reset(&b);
	(void)hie_mime_qp_decode((const char *)data, size, &b);
	hie_buf_free(&b);
	return 0;
}
