/*
 * core_soap.c — SOAP 1.2 + WS-Addressing 1.0 + MTOM/XOP: parse, build, fault, dispatch. See core_soap.h.
 *
 * Entry points: hie_soap_parse / hie_soap_msg_free, hie_soap_binary, hie_soap_build, hie_soap_fault_build,
 * hie_soap_router_new / hie_soap_route / hie_soap_dispatch. Every failure a peer can cause ends as a SOAP
 * fault (or 404/415/413); only allocation failure makes dispatch return an error.
 */
#include "core/core_soap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/core_log.h"

#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
#define DEFAULT_MAX_HEADER_VALUE 4096u
#define DEFAULT_MAX_REPLY (256u * 1024u * 1024u)
#define SOAP12_ROLE_NEXT "http://www.w3.org/2003/05/soap-envelope/role/next"
#define SOAP12_ROLE_ULTIMATE "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

/* Owned storage behind a struct hie_soap_msg. */
struct msg_impl {
	struct hie_soap_msg pub;
	const char *fault_to;
	char *strs[8];
	size_t nstrs;
};

void hie_soap_fault_set(struct hie_soap_fault *f, enum hie_soap_fault_code code, const char *subcode,
			const char *fmt, ...)
{
	va_list ap;
	f->code = code;
	f->subcode = subcode;
	f->subcode_ns = NULL;
	va_start(ap, fmt);
	vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
	va_end(ap);
}

static void resolve_limits(const struct hie_soap_limits *in, struct hie_soap_limits *out)
{
	static const struct hie_mime_limits zero_mime;
	if (in)
		*out = *in;
	else
		memset(out, 0, sizeof(*out));
	if (!out->max_body)
		out->max_body = DEFAULT_MAX_BODY;
	if (!out->max_header_value)
		out->max_header_value = DEFAULT_MAX_HEADER_VALUE;
	if (memcmp(&out->mime, &zero_mime, sizeof(zero_mime)) == 0)
		out->mime = hie_mime_default_limits;
}

static bool is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Keeps peer text printable ASCII in a fault reason (control bytes become spaces, non-ASCII '?'), so a cut
 * can never leave a broken UTF-8 sequence in our reply; escaped when built.
 */
static void reason_append(struct hie_soap_fault *f, const char *s, size_t n)
{
	size_t o = strlen(f->reason);
	for (size_t i = 0; i < n && o + 1 < sizeof(f->reason); i++) {
		unsigned char c = (unsigned char)s[i];
		f->reason[o++] = c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : (char)c;
	}
	f->reason[o] = '\0';
}

/* snprintf("%s") that never cuts a UTF-8 sequence in half. */
static void copy_utf8(char *dst, size_t dstlen, const char *src)
{
	size_t n = strlen(src);
	if (n >= dstlen) {
		n = dstlen - 1;
		while (n && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static hie_err_t msg_keep(struct msg_impl *m, char *s, const char **slot)
{
	if (!s)
		return HIE_ENOMEM;
	if (m->nstrs == sizeof(m->strs) / sizeof(m->strs[0])) {
		free(s);
		return HIE_ETOOBIG;
	}
	m->strs[m->nstrs++] = s;
	*slot = s;
	return HIE_OK;
}

/* A parameter of a Content-Type value as a new string; NULL with HIE_OK when absent. */
static hie_err_t ct_param(const char *v, const char *name, char **out)
{
	struct hie_buf b;
	*out = NULL;
	if (!v)
		return HIE_OK;
	hie_buf_init(&b, DEFAULT_MAX_HEADER_VALUE);
	hie_err_t err = hie_mime_param(v, strlen(v), name, &b);
	if (err == HIE_OK) {
		size_t n;
		*out = hie_buf_steal(&b, &n);
	} else if (err == HIE_ENOTFOUND || err == HIE_EPARSE) {
		err = HIE_OK;
	}
	hie_buf_free(&b);
	return err;
}

/* The element's text, XML whitespace trimmed (xs:anyURI), as a new string. */
static hie_err_t node_text(const xmlNode *n, size_t max, char **out)
{
	*out = NULL;
	xmlChar *t = xmlNodeGetContent(n);
	if (!t)
		return HIE_ENOMEM;
	const char *s = (const char *)t;
	size_t len = strlen(s);
	while (len && is_xml_space(s[len - 1]))
		len--;
	while (len && is_xml_space(*s)) {
		s++;
		len--;
	}
	hie_err_t err = HIE_OK;
	if (len > max) {
		err = HIE_ETOOBIG;
	} else {
		*out = strndup(s, len);
		if (!*out)
			err = HIE_ENOMEM;
	}
	xmlFree(t);
	return err;
}

static bool attr_is_true(const xmlNode *n, const char *ns, const char *name, bool *valid)
{
	xmlChar *v = xmlGetNsProp(n, BAD_CAST name, BAD_CAST ns);
	*valid = true;
	if (!v)
		return false;
	const char *s = (const char *)v;
	size_t len = strlen(s);
	while (len && is_xml_space(s[len - 1]))
		len--;
	while (len && is_xml_space(*s)) {
		s++;
		len--;
	}
	bool t = (len == 4 && memcmp(s, "true", 4) == 0) || (len == 1 && *s == '1');
	bool f = (len == 5 && memcmp(s, "false", 5) == 0) || (len == 1 && *s == '0');
	*valid = t || f;
	xmlFree(v);
	return t;
}

static bool understood(const xmlNode *h)
{
	static const char *const wsa[] = { "Action", "MessageID", "To", "ReplyTo", "FaultTo", "From", "RelatesTo" };
	for (size_t i = 0; i < sizeof(wsa) / sizeof(wsa[0]); i++)
		if (hie_xml_is(h, HIE_WSA_NS, wsa[i]))
			return true;
	return hie_xml_is(h, HIE_WSSE_NS, "Security");
}

/* SOAP 1.2 Part 1 §2.4, §2.6: mustUnderstand applies to blocks targeted at us (no role, next, ultimateReceiver). */
static hie_err_t check_must_understand(xmlNode *header, struct hie_soap_fault *f)
{
	xmlNode *h;
	HIE_XML_FOREACH(h, header, NULL, NULL) {
		bool valid;
		bool mu = attr_is_true(h, HIE_SOAP12_NS, "mustUnderstand", &valid);
		if (!valid) {
			hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, NULL, "invalid env:mustUnderstand value");
			return HIE_EPARSE;
		}
		if (!mu || understood(h))
			continue;
		xmlChar *role = xmlGetNsProp(h, BAD_CAST "role", BAD_CAST HIE_SOAP12_NS);
		bool ours = !role || xmlStrEqual(role, BAD_CAST SOAP12_ROLE_NEXT) ||
			    xmlStrEqual(role, BAD_CAST SOAP12_ROLE_ULTIMATE);
		xmlFree(role);
		if (!ours)
			continue;
		hie_soap_fault_set(f, HIE_SOAP_FAULT_MUST_UNDERSTAND, NULL,
				   "header block not understood");
		copy_utf8(f->nu_ns, sizeof(f->nu_ns), h->ns && h->ns->href ? (const char *)h->ns->href : "");
		copy_utf8(f->nu_local, sizeof(f->nu_local), (const char *)h->name);
		return HIE_EUNSUPPORTED;
	}
	return HIE_OK;
}

static hie_err_t wsa_set(struct msg_impl *m, xmlNode *h, const char **slot, const char *what, size_t max,
			 struct hie_soap_fault *f)
{
	if (*slot) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, "wsa:InvalidAddressingHeader",
				   "more than one wsa:%s header", what);
		return HIE_EPARSE;
	}
	char *s;
	hie_err_t err = node_text(h, max, &s);
	if (err == HIE_ETOOBIG)
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, "wsa:InvalidAddressingHeader", "wsa:%s too long", what);
	if (err)
		return err;
	return msg_keep(m, s, slot);
}

/* The wsa:Address of an endpoint reference (ReplyTo, FaultTo) must be anonymous: we answer synchronously. */
static hie_err_t wsa_epr(struct msg_impl *m, xmlNode *h, const char **slot, const char *what, size_t max,
			 struct hie_soap_fault *f)
{
	xmlNode *a = hie_xml_child(h, HIE_WSA_NS, "Address");
	if (!a) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, "wsa:InvalidAddressingHeader",
				   "wsa:%s without wsa:Address", what);
		return HIE_EPARSE;
	}
	hie_err_t err = wsa_set(m, a, slot, what, max, f);
	if (err)
		return err;
	if (strcmp(*slot, HIE_WSA_ANONYMOUS) != 0) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, "wsa:OnlyAnonymousAddressSupported",
				   "wsa:%s must be the anonymous address", what);
		return HIE_EUNSUPPORTED;
	}
	return HIE_OK;
}

static hie_err_t read_wsa(struct msg_impl *m, xmlNode *header, size_t max, struct hie_soap_fault *f)
{
	struct hie_wsa *w = &m->pub.wsa;
	hie_err_t err = HIE_OK;
	xmlNode *h;
	HIE_XML_FOREACH(h, header, NULL, NULL) {
		if (hie_xml_is(h, HIE_WSSE_NS, "Security")) {
			if (!m->pub.security)
				m->pub.security = h;
			continue;
		}
		if (!h->ns || !xmlStrEqual(h->ns->href, BAD_CAST HIE_WSA_NS))
			continue;
		const char *name = (const char *)h->name;
		if (strcmp(name, "Action") == 0)
			err = wsa_set(m, h, &w->action, name, max, f);
		else if (strcmp(name, "MessageID") == 0)
			err = wsa_set(m, h, &w->message_id, name, max, f);
		else if (strcmp(name, "To") == 0)
			err = wsa_set(m, h, &w->to, name, max, f);
		else if (strcmp(name, "RelatesTo") == 0 && !w->relates_to)
			err = wsa_set(m, h, &w->relates_to, name, max, f); /* 0..n; the first is the reply one */
		else if (strcmp(name, "ReplyTo") == 0)
			err = wsa_epr(m, h, &w->reply_to, name, max, f);
		else if (strcmp(name, "FaultTo") == 0)
			err = wsa_epr(m, h, &m->fault_to, name, max, f);
		if (err)
			return err;
		if (w->message_id && !f->message_id[0] && strlen(w->message_id) < sizeof(f->message_id))
			copy_utf8(f->message_id, sizeof(f->message_id), w->message_id);
	}
	return HIE_OK;
}

/*
 * The Content-Type action (SOAP 1.2 Part 2 §7.1.4; for MTOM also start-info and the root part's type):
 * every one present must agree, and agree with wsa:Action (WS-A SOAP Binding §6.4.3 ActionMismatch).
 */
static hie_err_t read_ct_action(struct msg_impl *m, const char *ct, struct hie_soap_fault *f)
{
	char *cand[3] = { NULL, NULL, NULL };
	char *start_info = NULL;
	hie_err_t err = ct_param(ct, "action", &cand[0]);
	if (!err && m->pub.mtom)
		err = ct_param(ct, "start-info", &start_info);
	if (!err && start_info)
		err = ct_param(start_info, "action", &cand[1]);
	if (!err && m->pub.mtom && m->pub.mtom->root.content_type)
		err = ct_param(m->pub.mtom->root.content_type, "action", &cand[2]);
	free(start_info);
	const char *first = NULL;
	for (size_t i = 0; !err && i < 3; i++) {
		if (!cand[i])
			continue;
		if (!first) {
			first = cand[i];
		} else if (strcmp(first, cand[i]) != 0) {
			hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, "wsa:ActionMismatch",
					   "action parameters of the Content-Type disagree");
			err = HIE_EPROTO;
		}
	}
	if (!err && first) {
		char *keep = strdup(first);
		err = msg_keep(m, keep, &m->pub.content_type_action);
	}
	for (size_t i = 0; i < 3; i++)
		free(cand[i]);
	if (err)
		return err;

	struct hie_wsa *w = &m->pub.wsa;
	const char *cta = m->pub.content_type_action;
	if (w->action && cta && strcmp(w->action, cta) != 0) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, "wsa:ActionMismatch",
				   "wsa:Action and the Content-Type action differ");
		f->detail_xml = NULL;
		return HIE_EPROTO;
	}
	if (!w->action && cta)
		w->action = cta;
	if (!w->action) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, "wsa:MessageAddressingHeaderRequired",
				   "wsa:Action header required");
		f->detail_xml = "<wsa:ProblemHeaderQName>wsa:Action</wsa:ProblemHeaderQName>";
		return HIE_EPARSE;
	}
	return HIE_OK;
}

/* Envelope, Header, Body (SOAP 1.2 Part 1 §5.1): [Header] Body, nothing after the Body. */
static hie_err_t read_structure(struct msg_impl *m, struct hie_soap_fault *f)
{
	xmlNode *env = xmlDocGetRootElement(m->pub.doc);
	if (!hie_xml_is(env, HIE_SOAP12_NS, "Envelope")) {
		f->soap11 = hie_xml_is(env, HIE_SOAP11_NS, "Envelope");
		hie_soap_fault_set(f, HIE_SOAP_FAULT_VERSION_MISMATCH, NULL, "%s",
				   f->soap11 ? "SOAP 1.1 is not supported; use SOAP 1.2"
					     : "root element is not a SOAP 1.2 env:Envelope");
		return HIE_EPARSE;
	}
	m->pub.envelope = env;
	/* Best effort, so that even a structural fault can carry wsa:RelatesTo. */
	xmlNode *mid = hie_xml_child(hie_xml_child(env, HIE_SOAP12_NS, "Header"), HIE_WSA_NS, "MessageID");
	char *id = NULL;
	if (mid && node_text(mid, sizeof(f->message_id) - 1, &id) == HIE_OK)
		copy_utf8(f->message_id, sizeof(f->message_id), id);
	free(id);
	xmlNode *c = hie_xml_child(env, NULL, NULL);
	if (hie_xml_is(c, HIE_SOAP12_NS, "Header")) {
		m->pub.header = c;
		c = hie_xml_next(c, NULL, NULL);
	}
	if (!hie_xml_is(c, HIE_SOAP12_NS, "Body")) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, NULL, "%s",
				   c ? "unexpected element where env:Body belongs" : "env:Body missing");
		return HIE_EPARSE;
	}
	m->pub.body = c;
	if (hie_xml_next(c, NULL, NULL)) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, NULL, "element after env:Body");
		return HIE_EPARSE;
	}
	m->pub.payload = hie_xml_child(c, NULL, NULL);
	return HIE_OK;
}

static hie_err_t parse_envelope(const char *xml, size_t len, const struct hie_soap_limits *lim,
				struct msg_impl *m, struct hie_soap_fault *f)
{
	struct hie_buf eb;
	hie_buf_init(&eb, 512);
	hie_err_t err = hie_xml_parse(xml, len, &lim->xml, &m->pub.doc, &eb);
	if (err && err != HIE_ENOMEM) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, NULL, "%s",
				   err == HIE_ETOOBIG ? "XML over limits: " : "XML rejected: ");
		reason_append(f, eb.data ? eb.data : "", eb.len);
	}
	hie_buf_free(&eb);
	return err;
}

hie_err_t hie_soap_parse(const char *content_type, const char *body, size_t len,
			 const struct hie_soap_limits *lim_in, struct hie_soap_msg **out, struct hie_soap_fault *fault)
{
	struct hie_soap_fault dummy;
	struct hie_soap_fault *f = fault ? fault : &dummy;
	struct hie_soap_limits lim;
	char mt[128];
	hie_err_t err;
	const char *xml = body;
	size_t xml_len = len;

	memset(f, 0, sizeof(*f));
	*out = NULL;
	resolve_limits(lim_in, &lim);
	hie_soap_fault_set(f, HIE_SOAP_FAULT_RECEIVER, NULL, "internal error");
	struct msg_impl *m = calloc(1, sizeof(*m));
	if (!m)
		return HIE_ENOMEM;
	m->pub.priv = m;

	if (len > lim.max_body) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, NULL, "request too large");
		f->http_status = 413;
		err = HIE_ETOOBIG;
		goto out;
	}
	if (!content_type || hie_mime_media_type(content_type, strlen(content_type), mt, sizeof(mt)) != HIE_OK)
		mt[0] = '\0';
	if (strcmp(mt, "multipart/related") == 0) {
		err = hie_mtom_parse(content_type, body, len, &lim.mime, &m->pub.mtom);
		if (err) {
			if (err != HIE_ENOMEM)
				hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, NULL, "malformed MTOM package (%s)",
						   hie_errname(err));
			goto out;
		}
		xml = m->pub.mtom->root.data;
		xml_len = m->pub.mtom->root.len;
	} else if (strcmp(mt, "application/soap+xml") != 0 && strcmp(mt, "text/xml") != 0 &&
		   strcmp(mt, "application/xml") != 0) {
		hie_soap_fault_set(f, HIE_SOAP_FAULT_SENDER, NULL,
				   "unsupported media type; SOAP 1.2 needs application/soap+xml");
		f->http_status = 415;
		err = HIE_EUNSUPPORTED;
		goto out;
	}
	err = parse_envelope(xml, xml_len, &lim, m, f);
	if (!err)
		err = read_structure(m, f);
	if (!err && m->pub.header)
		err = check_must_understand(m->pub.header, f);
	if (!err && m->pub.header)
		err = read_wsa(m, m->pub.header, lim.max_header_value, f);
	if (!err)
		err = read_ct_action(m, content_type, f);
out:
	if (err) {
		if (err == HIE_ENOMEM)
			hie_soap_fault_set(f, HIE_SOAP_FAULT_RECEIVER, NULL, "out of memory");
		hie_soap_msg_free(&m->pub);
		return err;
	}
	*out = &m->pub;
	return HIE_OK;
}

void hie_soap_msg_free(struct hie_soap_msg *msg)
{
	if (!msg)
		return;
	struct msg_impl *m = msg->priv;
	if (msg->doc)
		xmlFreeDoc(msg->doc);
	if (msg->mtom)
		hie_mtom_free(msg->mtom);
	for (size_t i = 0; i < m->nstrs; i++)
		free(m->strs[i]);
	free(m);
}

hie_err_t hie_soap_binary(const struct hie_soap_msg *msg, const xmlNode *node, const char **data, size_t *len,
			  struct hie_buf *scratch)
{
	*data = NULL;
	*len = 0;
	if (!msg || !node)
		return HIE_EINVAL;
	xmlNode *inc = hie_xml_child(node, HIE_XOP_NS, "Include");
	if (inc) {
		xmlChar *href = xmlGetNoNsProp(inc, BAD_CAST "href");
		if (!href)
			return HIE_EPARSE;
		const struct hie_mtom_part *p =
			msg->mtom ? hie_mtom_find(msg->mtom, (const char *)href, strlen((const char *)href)) : NULL;
		xmlFree(href);
		if (!p)
			return HIE_ENOTFOUND;
		*data = p->data ? p->data : "";
		*len = p->len;
		return HIE_OK;
	}
	xmlChar *t = xmlNodeGetContent(node);
	if (!t)
		return HIE_ENOMEM;
	size_t start = scratch->len;
	hie_err_t err = hie_mime_base64_decode((const char *)t, strlen((const char *)t), scratch);
	xmlFree(t);
	if (err)
		return err;
	*data = scratch->data ? scratch->data + start : "";
	*len = scratch->len - start;
	return HIE_OK;
}

hie_err_t hie_soap_new_uuid_urn(char *out, size_t outlen)
{
	unsigned char r[16];
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
		if (n <= 0)
			return HIE_ESYS;
		got += (size_t)n;
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* RFC 4122 §4.4 version 4 */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	int n = snprintf(out, outlen,
			 "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
			 r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
			 r[15]);
	return n < 0 || (size_t)n >= outlen ? HIE_ETOOBIG : HIE_OK;
}

static hie_err_t add_esc(struct hie_buf *b, const char *s)
{
	return hie_buf_add_xml(b, s, strlen(s));
}

/* Text we put into an HTTP header parameter: printable ASCII, no quote or backslash (no CR/LF injection). */
static bool header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
			return false;
	return true;
}

static hie_err_t build_envelope(struct hie_soap_out *o, struct hie_buf *b)
{
	hie_err_t err = hie_soap_new_uuid_urn(o->message_id, sizeof(o->message_id));
	if (!err)
		err = hie_buf_addstr(b, XML_DECL "<env:Envelope xmlns:env=\"" HIE_SOAP12_NS "\" xmlns:wsa=\"" HIE_WSA_NS
					"\"><env:Header><wsa:Action env:mustUnderstand=\"true\">");
	if (!err)
		err = add_esc(b, o->action);
	if (!err)
		err = hie_buf_addf(b, "</wsa:Action><wsa:MessageID>%s</wsa:MessageID>", o->message_id);
	if (!err && o->relates_to) {
		err = hie_buf_addstr(b, "<wsa:RelatesTo>");
		if (!err)
			err = add_esc(b, o->relates_to);
		if (!err)
			err = hie_buf_addstr(b, "</wsa:RelatesTo>");
	}
	if (!err && o->to) {
		err = hie_buf_addstr(b, "<wsa:To env:mustUnderstand=\"true\">");
		if (!err)
			err = add_esc(b, o->to);
		if (!err)
			err = hie_buf_addstr(b, "</wsa:To>");
	}
	if (!err && o->reply_to_anonymous)
		err = hie_buf_addstr(b, "<wsa:ReplyTo><wsa:Address>" HIE_WSA_ANONYMOUS "</wsa:Address></wsa:ReplyTo>");
	if (!err && o->header_xml)
		err = hie_buf_addstr(b, o->header_xml);
	if (!err)
		err = hie_buf_addstr(b, "</env:Header><env:Body>");
	if (!err && o->body_xml)
		err = hie_buf_add(b, o->body_xml, o->body_len);
	if (!err)
		err = hie_buf_addstr(b, "</env:Body></env:Envelope>");
	return err;
}

hie_err_t hie_soap_build(struct hie_soap_out *o, struct hie_buf *body, struct hie_buf *content_type)
{
	if (!o || !o->action || !header_safe(o->action))
		return HIE_EINVAL;
	if (!o->mtom && o->nparts == 0) {
		hie_err_t err = build_envelope(o, body);
		if (!err)
			err = hie_buf_addf(content_type, "application/soap+xml; charset=UTF-8; action=\"%s\"",
					   o->action);
		return err;
	}
	struct hie_buf env;
	hie_buf_init(&env, body->max);
	hie_err_t err = build_envelope(o, &env);
	if (!err)
		err = hie_mtom_build(env.data, env.len, o->action, o->parts, o->nparts, body, content_type);
	hie_buf_free(&env);
	return err;
}

void hie_soap_reply_init(struct hie_soap_reply *r, size_t max_body)
{
	r->status = 500;
	hie_buf_init(&r->content_type, 4096);
	hie_buf_init(&r->body, max_body ? max_body : DEFAULT_MAX_REPLY);
}

void hie_soap_reply_free(struct hie_soap_reply *r)
{
	hie_buf_free(&r->content_type);
	hie_buf_free(&r->body);
}

static const char *fault_code_name(enum hie_soap_fault_code c)
{
	switch (c) {
	case HIE_SOAP_FAULT_SENDER:
		return "Sender";
	case HIE_SOAP_FAULT_RECEIVER:
		return "Receiver";
	case HIE_SOAP_FAULT_VERSION_MISMATCH:
		return "VersionMismatch";
	case HIE_SOAP_FAULT_MUST_UNDERSTAND:
		return "MustUnderstand";
	case HIE_SOAP_FAULT_DATA_ENCODING_UNKNOWN:
		return "DataEncodingUnknown";
	}
	return "Receiver";
}

static hie_err_t fault_soap11(const struct hie_soap_fault *f, struct hie_soap_reply *r)
{
	hie_err_t err = hie_buf_addstr(&r->body,
		XML_DECL "<s:Envelope xmlns:s=\"" HIE_SOAP11_NS "\"><s:Header><env:Upgrade xmlns:env=\""
		HIE_SOAP12_NS "\"><env:SupportedEnvelope qname=\"ns:Envelope\" xmlns:ns=\"" HIE_SOAP12_NS
		"\"/></env:Upgrade></s:Header><s:Body><s:Fault><faultcode>s:VersionMismatch</faultcode><faultstring>");
	if (!err)
		err = add_esc(&r->body, f->reason);
	if (!err)
		err = hie_buf_addstr(&r->body, "</faultstring></s:Fault></s:Body></s:Envelope>");
	if (!err)
		err = hie_buf_addstr(&r->content_type, "text/xml; charset=UTF-8");
	return err;
}

/* The env:Subcode element; the QName's prefix is declared when it is not env or wsa. */
static hie_err_t fault_subcode(const struct hie_soap_fault *f, struct hie_buf *b)
{
	const char *colon = strchr(f->subcode, ':');
	hie_err_t err = hie_buf_addstr(b, "<env:Subcode><env:Value");
	if (!err && colon && f->subcode_ns && strncmp(f->subcode, "wsa:", 4) != 0 &&
	    strncmp(f->subcode, "env:", 4) != 0) {
		err = hie_buf_addstr(b, " xmlns:");
		if (!err)
			err = hie_buf_add_xml(b, f->subcode, (size_t)(colon - f->subcode));
		if (!err)
			err = hie_buf_addstr(b, "=\"");
		if (!err)
			err = add_esc(b, f->subcode_ns);
		if (!err)
			err = hie_buf_addstr(b, "\"");
	}
	if (!err)
		err = hie_buf_addstr(b, ">");
	if (!err)
		err = add_esc(b, f->subcode);
	if (!err)
		err = hie_buf_addstr(b, "</env:Value></env:Subcode>");
	return err;
}

static hie_err_t fault_headers(const struct hie_soap_fault *f, struct hie_buf *b)
{
	hie_err_t err = HIE_OK;
	if (f->code == HIE_SOAP_FAULT_MUST_UNDERSTAND && f->nu_local[0]) {
		/* SOAP 1.2 Part 1 §5.4.8: env:NotUnderstood names the block by QName. */
		err = hie_buf_addstr(b, "<env:NotUnderstood qname=\"nu:");
		if (!err)
			err = add_esc(b, f->nu_local);
		if (!err)
			err = hie_buf_addstr(b, "\" xmlns:nu=\"");
		if (!err)
			err = add_esc(b, f->nu_ns);
		if (!err)
			err = hie_buf_addstr(b, "\"/>");
	}
	if (!err && f->code == HIE_SOAP_FAULT_VERSION_MISMATCH)
		err = hie_buf_addstr(b, "<env:Upgrade><env:SupportedEnvelope qname=\"env:Envelope\"/></env:Upgrade>");
	return err;
}

hie_err_t hie_soap_fault_build(const struct hie_soap_fault *f, const char *relates_to, struct hie_soap_reply *r)
{
	char mid[64];
	struct hie_buf *b = &r->body;
	hie_buf_reset(&r->body);
	hie_buf_reset(&r->content_type);
	r->status = f->http_status ? f->http_status : 500;
	if (f->code == HIE_SOAP_FAULT_VERSION_MISMATCH && f->soap11)
		return fault_soap11(f, r);

	hie_err_t err = hie_soap_new_uuid_urn(mid, sizeof(mid));
	if (!err)
		err = hie_buf_addf(b, XML_DECL "<env:Envelope xmlns:env=\"%s\" xmlns:wsa=\"%s\"><env:Header>"
				   "<wsa:Action env:mustUnderstand=\"true\">%s</wsa:Action>"
				   "<wsa:MessageID>%s</wsa:MessageID>",
				   HIE_SOAP12_NS, HIE_WSA_NS, HIE_WSA_FAULT_ACTION, mid);
	if (!err && relates_to && relates_to[0]) {
		err = hie_buf_addstr(b, "<wsa:RelatesTo>");
		if (!err)
			err = add_esc(b, relates_to);
		if (!err)
			err = hie_buf_addstr(b, "</wsa:RelatesTo>");
	}
	if (!err)
		err = fault_headers(f, b);
	if (!err)
		err = hie_buf_addf(b, "</env:Header><env:Body><env:Fault><env:Code><env:Value>env:%s</env:Value>",
				   fault_code_name(f->code));
	if (!err && f->subcode)
		err = fault_subcode(f, b);
	if (!err)
		err = hie_buf_addstr(b, "</env:Code><env:Reason><env:Text xml:lang=\"en\">");
	if (!err)
		err = add_esc(b, f->reason[0] ? f->reason : fault_code_name(f->code));
	if (!err)
		err = hie_buf_addstr(b, "</env:Text></env:Reason>");
	if (!err && f->detail_xml) {
		err = hie_buf_addstr(b, "<env:Detail>");
		if (!err)
			err = hie_buf_addstr(b, f->detail_xml);
		if (!err)
			err = hie_buf_addstr(b, "</env:Detail>");
	}
	if (!err)
		err = hie_buf_addstr(b, "</env:Fault></env:Body></env:Envelope>");
	if (!err)
		err = hie_buf_addstr(&r->content_type, "application/soap+xml; charset=UTF-8; action=\""
				     HIE_WSA_FAULT_ACTION "\"");
	return err;
}

/* ---- dispatch ---- */

struct route {
	char *path;
	char *action; /* NULL = any */
	hie_soap_handler_fn fn;
	void *arg;
};

struct hie_soap_router {
	struct hie_soap_limits lim;
	struct route *routes;
	size_t nroutes;
};

hie_err_t hie_soap_router_new(const struct hie_soap_limits *lim, struct hie_soap_router **out)
{
	struct hie_soap_router *r = calloc(1, sizeof(*r));
	*out = NULL;
	if (!r)
		return HIE_ENOMEM;
	resolve_limits(lim, &r->lim);
	*out = r;
	return HIE_OK;
}

void hie_soap_router_free(struct hie_soap_router *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nroutes; i++) {
		free(r->routes[i].path);
		free(r->routes[i].action);
	}
	free(r->routes);
	free(r);
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

hie_err_t hie_soap_route(struct hie_soap_router *r, const char *path, const char *action,
			 hie_soap_handler_fn fn, void *arg)
{
	if (!r || !path || !fn)
		return HIE_EINVAL;
	for (size_t i = 0; i < r->nroutes; i++)
		if (strcmp(r->routes[i].path, path) == 0 && str_eq(r->routes[i].action, action))
			return HIE_EEXIST;
	struct route *nr = realloc(r->routes, (r->nroutes + 1) * sizeof(*nr));
	if (!nr)
		return HIE_ENOMEM;
	r->routes = nr;
	struct route *rt = &nr[r->nroutes];
	rt->path = strdup(path);
	rt->action = action ? strdup(action) : NULL;
	rt->fn = fn;
	rt->arg = arg;
	if (!rt->path || (action && !rt->action)) {
		free(rt->path);
		free(rt->action);
		return HIE_ENOMEM;
	}
	r->nroutes++;
	return HIE_OK;
}

/* Exact (path, action) first, then the path's catch-all. *known says whether the path exists at all. */
static const struct route *find_route(const struct hie_soap_router *r, const char *path, const char *action,
				      bool *known)
{
	const struct route *any = NULL;
	*known = false;
	for (size_t i = 0; i < r->nroutes; i++) {
		const struct route *rt = &r->routes[i];
		if (strcmp(rt->path, path) != 0)
			continue;
		*known = true;
		if (!rt->action)
			any = rt;
		else if (action && strcmp(rt->action, action) == 0)
			return rt;
	}
	return any;
}

const char *hie_soap_http_header(const struct hie_soap_call_ctx *call, const char *name)
{
	if (!call || !name)
		return NULL;
	for (size_t i = 0; i < call->nheaders; i++)
		if (call->headers[i].name && strcasecmp(call->headers[i].name, name) == 0)
			return call->headers[i].value;
	return NULL;
}

static void log_fault(const char *path, const struct hie_soap_msg *msg, const struct hie_soap_fault *f,
		      const struct hie_soap_call_ctx *call)
{
	char p[128], a[256], reason[256], peer[64];
	const char *action = msg ? msg->wsa.action : NULL;
	hie_log_printable(p, sizeof(p), path, strlen(path));
	hie_log_printable(a, sizeof(a), action ? action : "-", strlen(action ? action : "-"));
	hie_log_printable(reason, sizeof(reason), f->reason, strlen(f->reason));
	hie_log_printable(peer, sizeof(peer), call && call->peer ? call->peer : "-",
			  strlen(call && call->peer ? call->peer : "-"));
	hie_log(HIE_LOG_INFO, "event=soap.fault path=%s peer=%s action=%s code=%s subcode=%s reason=%s", p, peer,
		a, fault_code_name(f->code), f->subcode ? f->subcode : "-", reason);
}

static bool sender_error(hie_err_t e)
{
	return e == HIE_EPARSE || e == HIE_EPROTO || e == HIE_EINVAL || e == HIE_ETOOBIG || e == HIE_EUNSUPPORTED ||
	       e == HIE_EDENIED || e == HIE_ENOTFOUND;
}

/* Serializes the handler's answer as the reply envelope. */
static hie_err_t reply_body(const struct hie_soap_msg *msg, struct hie_soap_response *resp, struct hie_soap_reply *out)
{
	struct hie_buf xml, action;
	hie_err_t err = HIE_OK;
	hie_buf_init(&xml, out->body.max);
	hie_buf_init(&action, 4096);
	const char *body = resp->body_xml.data;
	size_t body_len = resp->body_xml.len;
	if (resp->body) {
		err = hie_xml_serialize_node(resp->body, &xml);
		body = xml.data;
		body_len = xml.len;
	}
	if (!err && !resp->action)
		err = hie_buf_addf(&action, "%sResponse", msg->wsa.action);
	struct hie_soap_out o = {
		.action = resp->action ? resp->action : hie_buf_str(&action),
		.relates_to = msg->wsa.message_id,
		.body_xml = body,
		.body_len = body_len,
		.parts = resp->parts,
		.nparts = resp->nparts,
		.mtom = resp->mtom,
	};
	hie_buf_reset(&out->body);
	hie_buf_reset(&out->content_type);
	if (!err)
		err = hie_soap_build(&o, &out->body, &out->content_type);
	if (!err)
		out->status = 200;
	hie_buf_free(&xml);
	hie_buf_free(&action);
	return err;
}

static hie_err_t call_handler(const struct route *rt, struct hie_soap_msg *msg, struct hie_soap_reply *out,
			      struct hie_soap_fault *f)
{
	struct hie_soap_response resp;
	memset(&resp, 0, sizeof(resp));
	hie_buf_init(&resp.body_xml, out->body.max);
	resp.doc = xmlNewDoc(BAD_CAST "1.0");
	if (!resp.doc)
		return HIE_ENOMEM;
	hie_err_t herr = rt->fn(msg, &resp, rt->arg);
	hie_err_t err = HIE_OK;
	if (herr) {
		hie_log(HIE_LOG_WARN, "event=soap.handler error=%s", hie_errname(herr));
		hie_soap_fault_set(f, sender_error(herr) ? HIE_SOAP_FAULT_SENDER : HIE_SOAP_FAULT_RECEIVER, NULL,
				   "%s", sender_error(herr) ? "request could not be processed" : "internal error");
		err = HIE_EPROTO;
	} else if (resp.is_fault) {
		*f = resp.fault;
		/* detail_xml and subcode may point into handler memory released below: build now */
		err = hie_soap_fault_build(f, msg->wsa.message_id, out);
		if (!err)
			log_fault(msg->path, msg, f, msg->call);
	} else {
		err = reply_body(msg, &resp, out);
		if (err == HIE_ETOOBIG || err == HIE_EINVAL) {
			hie_log(HIE_LOG_WARN, "event=soap.reply error=%s", hie_errname(err));
			hie_soap_fault_set(f, HIE_SOAP_FAULT_RECEIVER, NULL, "response could not be built");
			err = HIE_EPROTO;
		}
	}
	if (resp.release)
		resp.release(resp.release_arg);
	hie_buf_free(&resp.body_xml);
	/* A node built in the scratch document but never attached to it is not freed with the document. */
	if (resp.body && resp.body->doc == resp.doc && !resp.body->parent)
		xmlFreeNode(resp.body);
	xmlFreeDoc(resp.doc);
	return err;
}

hie_err_t hie_soap_dispatch(struct hie_soap_router *r, const char *path, const char *content_type,
			    const char *body, size_t len, const struct hie_soap_call_ctx *call,
			    struct hie_soap_reply *out)
{
	struct hie_soap_fault f;
	struct hie_soap_msg *msg = NULL;
	struct hie_buf detail;
	bool known;
	hie_err_t err;

	hie_buf_init(&detail, 2048);
	hie_buf_reset(&out->body);
	hie_buf_reset(&out->content_type);
	if (!path)
		path = "";
	find_route(r, path, NULL, &known);
	if (!known) {
		out->status = 404;
		err = hie_buf_addstr(&out->content_type, "text/plain; charset=UTF-8");
		if (!err)
			err = hie_buf_addstr(&out->body, "no SOAP endpoint here\n");
		goto out;
	}
	err = hie_soap_parse(content_type, body, len, &r->lim, &msg, &f);
	if (err == HIE_ENOMEM)
		goto out;
	if (err) {
		log_fault(path, NULL, &f, call);
		err = hie_soap_fault_build(&f, f.message_id[0] ? f.message_id : NULL, out);
		goto out;
	}
	msg->path = path;
	msg->content_type = content_type;
	msg->call = call;
	const struct route *rt = find_route(r, path, msg->wsa.action, &known);
	if (!rt) {
		/* WS-A SOAP Binding §6.4.4 */
		hie_soap_fault_set(&f, HIE_SOAP_FAULT_SENDER, "wsa:ActionNotSupported",
				   "the action is not supported by this endpoint");
		err = hie_buf_addstr(&detail, "<wsa:ProblemAction><wsa:Action>");
		if (!err)
			err = add_esc(&detail, msg->wsa.action);
		if (!err)
			err = hie_buf_addstr(&detail, "</wsa:Action></wsa:ProblemAction>");
		f.detail_xml = hie_buf_str(&detail);
		log_fault(path, msg, &f, call);
		if (!err)
			err = hie_soap_fault_build(&f, msg->wsa.message_id, out);
		goto out;
	}
	memset(&f, 0, sizeof(f));
	err = call_handler(rt, msg, out, &f);
	if (err == HIE_EPROTO) {
		log_fault(path, msg, &f, call);
		err = hie_soap_fault_build(&f, msg->wsa.message_id, out);
	}
out:
	if (err) {
		hie_log(HIE_LOG_ERR, "event=soap.dispatch error=%s", hie_errname(err));
		out->status = 500;
	}
	hie_soap_msg_free(msg);
	hie_buf_free(&detail);
	return err;
}
