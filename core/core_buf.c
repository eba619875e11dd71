/*
 * core_buf.c — capped growable buffer. See core_buf.h.
 */
#include "core/core_buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hie_buf_init(struct hie_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void hie_buf_free(struct hie_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void hie_buf_reset(struct hie_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

hie_err_t hie_buf_reserve(struct hie_buf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return HIE_ETOOBIG;
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return HIE_OK;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return HIE_ENOMEM;
	b->data = p;
	b->cap = cap;
	return HIE_OK;
}

hie_err_t hie_buf_add(struct hie_buf *b, const void *p, size_t n)
{
	hie_err_t err = hie_buf_reserve(b, n);
	if (err)
		return err;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return HIE_OK;
}

hie_err_t hie_buf_addstr(struct hie_buf *b, const char *s)
{
	return hie_buf_add(b, s, strlen(s));
}

hie_err_t hie_buf_vaddf(struct hie_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return HIE_EINVAL;
	hie_err_t err = hie_buf_reserve(b, (size_t)n);
	if (err)
		return err;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return HIE_OK;
}

hie_err_t hie_buf_addf(struct hie_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	hie_err_t err = hie_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return err;
}

hie_err_t hie_buf_add_xml(struct hie_buf *b, const char *s, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		default: continue;
		}
		hie_err_t err = hie_buf_add(b, s + start, i - start);
		if (!err)
			err = hie_buf_addstr(b, rep);
		if (err)
			return err;
		start = i + 1;
	}
	return hie_buf_add(b, s + start, n - start);
}

char *hie_buf_steal(struct hie_buf *b, size_t *len)
{
	char *p = b->data;
	if (len)
		*len = b->len;
	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

const char *hie_buf_str(const struct hie_buf *b)
{
	return b->data ? b->data : "";
}
