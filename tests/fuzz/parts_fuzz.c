/*
 * parts_fuzz.c — libFuzzer target for hisp_parts_split: any bytes as a decrypted Direct message. It must never
 * crash or leak; a success has at most HISP_PARTS_MAX leaves, numbered in order, decoded bytes within the cap,
 * and NUL-terminated, printable file names; a failure leaves nothing behind.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hisp/hisp_edge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t cap = 1u << 20;
	struct hisp_parts p;
	hie_err_t err = hisp_parts_split((const char *)data, size, cap, &p);
	if (err) {
		if (p.v || p.n)
			__builtin_trap();
		return 0;
	}
	size_t total = 0;
	if (p.n > HISP_PARTS_MAX)
		__builtin_trap();
	for (size_t i = 0; i < p.n; i++) {
		const struct hisp_part *h = &p.v[i];
		if (h->index != i || !h->data || memchr(h->filename, '\0', sizeof h->filename) == NULL)
			__builtin_trap();
		for (const char *f = h->filename; *f; f++)
			if ((unsigned char)*f < 0x20 || *f == '/' || *f == '\\')
				__builtin_trap();
		total += h->len;
	}
	if (total > cap)
		__builtin_trap();
	hisp_parts_free(&p);
	return 0;
}
