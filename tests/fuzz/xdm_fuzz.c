/*
 * xdm_fuzz.c — libFuzzer target for hisp_xdm_read: any bytes as a received XDM zip. It must never crash, leak
 * or read out of bounds; a success must describe a consistent package (every document's bytes present, its
 * path under IHE_XDM/<subset>/ or IHE_XDM/, no ".." anywhere), and a failure must say why.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "hisp/hisp_edge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hisp_xdm *x = NULL;
	char why[256];
	hie_err_t err = hisp_xdm_read(data, size, &x, why, sizeof why);
	if (err) {
		if (x || (err != HIE_ENOMEM && !why[0]))
			__builtin_trap();
		return 0;
	}
	if (!x || !x->metadata || !x->metadata_doc || x->ndocs == 0 || x->ndocs > HISP_XDM_MAX_DOCS)
		__builtin_trap();
	size_t total = 0;
	for (size_t i = 0; i < x->ndocs; i++) {
		const struct hisp_xdm_doc *d = &x->docs[i];
		if (!d->entry_id || !d->unique_id || !d->mime_type || !d->path || (!d->data && d->len))
			__builtin_trap();
		if (strncasecmp(d->path, "IHE_XDM/", 8) != 0 || strstr(d->path, "/../") || strchr(d->path, '\\'))
			__builtin_trap();
		size_t pl = strlen(d->path);
		if (pl >= 3 && strcmp(d->path + pl - 3, "/..") == 0)
			__builtin_trap();
		total += d->len;
		volatile unsigned char sink = 0;
		for (size_t k = 0; k < d->len; k += 4096)
			sink ^= d->data[k];
		(void)sink;
	}
	if (total > (size_t)HISP_XDM_MAX_TOTAL)
		__builtin_trap();
	hisp_xdm_free(x);
	return 0;
}
