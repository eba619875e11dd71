/*
 * hisp_xdr_resp.c — what the XDR Document Recipient answers: the RegistryErrors collected while a request is
 * read and handled, the rs:RegistryResponse (ebRS 3.0: Success, PartialSuccess when there are only warnings,
 * Failure) written from them, and the replay-stable Message-ID of the Direct message made from a submission.
 *
 * Entry points: hisp_xdr_error_add, hisp_xdr_status, hisp_xdr_response_xml, hisp_xdr_message_id.
 * Errors: HIE_ETOOBIG (the caller's buffer), HIE_ENOMEM / HIE_ETLS (no digest).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "hisp/hisp_util.h"
#include "hisp/hisp_xdr_int.h"

/* --- errors and the response --------------------------------------------------------------------------- */

void hisp_xdr_error_add(struct hisp_xdr_errors *e, const char *code, bool warning, const char *location,
			const char *fmt, ...)
{
	if (!warning)
		e->nerrors++;
	if (e->n >= HISP_XDR_MAX_ERRORS)
		return;
	struct hisp_xdr_error *x = &e->v[e->n++];
	x->code = code;
	x->warning = warning;
	char tmp[sizeof x->context];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	/* peer text (ids) goes into the codeContext: keep it one printable line */
	hisp_printable(tmp, x->context, sizeof x->context, '?');
	hisp_printable(location, x->location, sizeof x->location, '?');
}

const char *hisp_xdr_status(const struct hisp_xdr_errors *e)
{
	if (e->nerrors)
		return "Failure";
	return e->n ? "PartialSuccess" : "Success";
}

hie_err_t hisp_xdr_response_xml(const struct hisp_xdr_errors *e, struct hie_buf *out)
{
	hie_err_t err = hie_buf_addf(out,
				     "<rs:RegistryResponse xmlns:rs=\"" HISP_NS_RS3 "\""
				     " status=\"urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:%s\"",
				     hisp_xdr_status(e));
	if (!err && !e->n)
		return hie_buf_addstr(out, "/>");
	if (!err)
		err = hie_buf_addf(out,
				   "><rs:RegistryErrorList highestSeverity=\"urn:oasis:names:tc:ebxml-regrep:"
				   "ErrorSeverityType:%s\">",
				   e->nerrors ? "Error" : "Warning");
	for (size_t i = 0; !err && i < e->n; i++) {
		const struct hisp_xdr_error *x = &e->v[i];
		err = hie_buf_addf(out, "<rs:RegistryError errorCode=\"%s\" codeContext=\"", x->code);
		if (!err)
			err = hie_buf_add_xml(out, x->context, strlen(x->context));
		if (!err)
			err = hie_buf_addf(out,
					   "\" severity=\"urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:%s\""
					   " location=\"",
					   x->warning ? "Warning" : "Error");
		if (!err)
			err = hie_buf_add_xml(out, x->location, strlen(x->location));
		if (!err)
			err = hie_buf_addstr(out, "\"/>");
	}
	if (!err)
		err = hie_buf_addstr(out, "</rs:RegistryErrorList></rs:RegistryResponse>");
	return err;
}

hie_err_t hisp_xdr_message_id(const char *ss_unique_id, const char *sender, const char *host, char *out,
			      size_t outlen)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return HIE_ENOMEM;
	int ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(c, ss_unique_id, strlen(ss_unique_id)) && EVP_DigestUpdate(c, "\n", 1) &&
		 EVP_DigestUpdate(c, sender, strlen(sender)) && EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	if (!ok || mdlen != sizeof md)
		return HIE_ETLS;
	static const char hex[] = "0123456789abcdef";
	char h[65];
	for (size_t i = 0; i < sizeof md; i++) {
		h[2 * i] = hex[md[i] >> 4];
		h[2 * i + 1] = hex[md[i] & 15];
	}
	h[64] = 0;
	int n = snprintf(out, outlen, "%s@%s", h, host);
	return n < 0 || (size_t)n >= outlen ? HIE_ETOOBIG : HIE_OK;
}
