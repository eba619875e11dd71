/*
 * hisp_addr.c — Direct addresses and domains as the module stores and compares them: lower-cased, checked.
 */
#include <string.h>

#include "hisp/hisp_trust.h"

static bool addr_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '<' && c != '>' && c != '(' && c != ')' && c != ',' && c != ';' &&
	       c != ':' && c != '\\' && c != '"' && c != '[' && c != ']';
}

static bool domain_ok(const char *d, size_t len)
{
	if (len == 0 || len > 253 || d[0] == '.' || d[0] == '-' || d[len - 1] == '.' || d[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
		if (!ok || (c == '.' && i + 1 < len && d[i + 1] == '.'))
			return false;
	}
	return true;
}

hie_err_t hisp_addr_normalize(const char *in, bool allow_domain, char *out, size_t outlen)
{
	if (!in || !out || outlen == 0)
		return HIE_EINVAL;
	size_t len = strlen(in);
	if (len == 0 || len > 254 || len >= outlen)
		return HIE_EINVAL;
	const char *at = NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (!addr_char(c))
			return HIE_EINVAL;
		if (c == '@') {
			if (at)
				return HIE_EINVAL;
			at = in + i;
		}
		out[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
	}
	out[len] = '\0';
	if (!at) {
		if (!allow_domain || !domain_ok(out, len))
			return HIE_EINVAL;
		return HIE_OK;
	}
	size_t local = (size_t)(at - in);
	if (local == 0 || local > 64 || !domain_ok(out + local + 1, len - local - 1))
		return HIE_EINVAL;
	return HIE_OK;
}

const char *hisp_addr_domain(const char *addr)
{
	const char *at = strchr(addr, '@');
	return at ? at + 1 : addr;
}
