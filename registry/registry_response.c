/*
 * registry_response.c — collect registry errors and write rs:RegistryResponse (ebRS 3.0, ITI TF-3 4.2.4).
 *
 * Entry points: registry_response_init/free/add/find/build. Error texts may quote peer data: they are
 * escaped when written, and control characters (other than TAB) are replaced, since they could not be
 * carried in an XML 1.0 attribute anyway.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_response.h"

#define REGISTRY_NS_RS_URI "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"

void registry_response_init(struct registry_response *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max ? max : REGISTRY_RESPONSE_DEFAULT_MAX;
}

void registry_response_free(struct registry_response *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->errs[i].context);
		free(r->errs[i].location);
	}
	free(r->errs);
	memset(r, 0, sizeof(*r));
}

static char *dup_clean(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		p[i] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	p[n] = '\0';
	return p;
}

hie_err_t registry_response_add(struct registry_response *r, enum registry_severity sev, const char *code,
				const char *location, const char *fmt, ...)
{
	if (sev == REGISTRY_SEV_ERROR)
		r->nerrors++;
	if (r->n >= r->max) {
		r->dropped++;
		return HIE_OK;
	}
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 8;
		if (ncap > r->max)
			ncap = r->max;
		struct registry_error *e = realloc(r->errs, ncap * sizeof(*e));
		if (!e)
			return HIE_ENOMEM;
		r->errs = e;
		r->cap = ncap;
	}
	char ctx[REGISTRY_RESPONSE_CONTEXT_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	struct registry_error *e = &r->errs[r->n];
	e->code = code;
	e->severity = sev;
	e->context = dup_clean(ctx, REGISTRY_RESPONSE_CONTEXT_MAX);
	e->location = location ? dup_clean(location, 256) : NULL;
	if (!e->context || (location && !e->location)) {
		free(e->context);
		free(e->location);
		return HIE_ENOMEM;
	}
	r->n++;
	return HIE_OK;
}

const struct registry_error *registry_response_find(const struct registry_response *r, const char *code)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->errs[i].code, code) == 0)
			return &r->errs[i];
	return NULL;
}

static hie_err_t add_attr(struct hie_buf *out, const char *name, const char *value)
{
	hie_err_t err = hie_buf_addf(out, " %s=\"", name);
	if (!err)
		err = hie_buf_add_xml(out, value, strlen(value));
	if (!err)
		err = hie_buf_addstr(out, "\"");
	return err;
}

static hie_err_t add_error(struct hie_buf *out, const char *code, const char *context, const char *location,
			   enum registry_severity sev)
{
	hie_err_t err = hie_buf_addstr(out, "<rs:RegistryError");
	if (!err)
		err = add_attr(out, "errorCode", code);
	if (!err)
		err = add_attr(out, "codeContext", context);
	if (!err)
		err = add_attr(out, "severity",
			       sev == REGISTRY_SEV_ERROR ? REGISTRY_SEVERITY_ERROR_URN : REGISTRY_SEVERITY_WARNING_URN);
	if (!err && location)
		err = add_attr(out, "location", location);
	if (!err)
		err = hie_buf_addstr(out, "/>");
	return err;
}

/* The rs:RegistryErrorList of r; ns_decl is "" or the xmlns:rs declaration (with its leading space). */
static hie_err_t error_list(const struct registry_response *r, const char *ns_decl, const char *fallback_code,
			    struct hie_buf *out)
{
	hie_err_t err = hie_buf_addf(out, "<rs:RegistryErrorList%s highestSeverity=\"%s\">", ns_decl,
				     r->nerrors ? REGISTRY_SEVERITY_ERROR_URN : REGISTRY_SEVERITY_WARNING_URN);
	for (size_t i = 0; !err && i < r->n; i++)
		err = add_error(out, r->errs[i].code, r->errs[i].context, r->errs[i].location, r->errs[i].severity);
	if (!err && r->dropped) {
		char ctx[96];
		snprintf(ctx, sizeof(ctx), "%zu further errors not listed", r->dropped);
		const char *code = r->n ? r->errs[r->n - 1].code : fallback_code;
		err = add_error(out, code, ctx, NULL, REGISTRY_SEV_WARNING);
	}
	if (!err)
		err = hie_buf_addstr(out, "</rs:RegistryErrorList>");
	return err;
}

hie_err_t registry_response_build(const struct registry_response *r, enum registry_status st, struct hie_buf *out)
{
	if (st == REGISTRY_STATUS_AUTO)
		st = r->nerrors ? REGISTRY_STATUS_FAILURE : REGISTRY_STATUS_SUCCESS;
	const char *status = st == REGISTRY_STATUS_SUCCESS   ? REGISTRY_STATUS_SUCCESS_URN
			     : st == REGISTRY_STATUS_PARTIAL ? REGISTRY_STATUS_PARTIAL_URN
							     : REGISTRY_STATUS_FAILURE_URN;
	hie_err_t err = hie_buf_addf(out, "<rs:RegistryResponse xmlns:rs=\"%s\" status=\"%s\"", REGISTRY_NS_RS_URI,
				     status);
	if (err)
		return err;
	if (r->n == 0 && r->dropped == 0)
		return hie_buf_addstr(out, "/>");
	err = hie_buf_addstr(out, ">");
	if (!err)
		err = error_list(r, "", REGISTRY_ERR_METADATA, out);
	if (!err)
		err = hie_buf_addstr(out, "</rs:RegistryResponse>");
	return err;
}

hie_err_t registry_response_build_errors(const struct registry_response *r, struct hie_buf *out)
{
	if (r->n == 0 && r->dropped == 0)
		return HIE_OK;
	return error_list(r, " xmlns:rs=\"" REGISTRY_NS_RS_URI "\"", REGISTRY_ERR_REGISTRY, out);
}

hie_err_t registry_response_merge(struct registry_response *r, const struct registry_response *from)
{
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < from->n && !err; i++)
		err = registry_response_add(r, from->errs[i].severity, from->errs[i].code, from->errs[i].location, "%s",
					    from->errs[i].context);
	return err;
}
