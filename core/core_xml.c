/*
 * core_xml.c — safe XML parsing, look-ups and serialization on libxml2. See core_xml.h.
 *
 * How the parser is made safe (ARCHITECTURE.md "Security baseline"):
 *  - a process-wide deny-all external entity loader, installed once (pthread_once) with xmlInitParser();
 *  - options XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR | XML_PARSE_NOWARNING only: no NOENT
 *    (entities are never substituted), no DTDLOAD/DTDATTR/DTDVALID, no XINCLUDE, no HUGE (libxml2 keeps its
 *    own limits on names, text nodes and depth 256);
 *  - the SAX internalSubset callback of our private parser context stops the parser as soon as
 *    "<!DOCTYPE name ..." has been read, before "[" — entity declarations are never parsed, so billion
 *    laughs and XXE cannot expand; a DOCTYPE is also refused after the fact (intSubset/extSubset) as a
 *    second line;
 *  - startElementNs is wrapped to enforce the depth and element-count caps while parsing (the tree never
 *    grows past them);
 *  - errors go to a structured handler on the parser context (sax->serror), never to the global handlers,
 *    so threads do not see each other's errors and nothing reaches stderr.
 * XML_PARSE_NOCDATA merges CDATA sections into text nodes so handlers see one kind of text.
 */
#include "core/core_xml.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "core/core_log.h"

const struct hie_xml_limits hie_xml_default_limits = {
	.max_bytes = HIE_XML_DEFAULT_MAX_BYTES,
	.max_depth = HIE_XML_DEFAULT_MAX_DEPTH,
	.max_elements = HIE_XML_DEFAULT_MAX_ELEMENTS,
};

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* Nothing outside the input is ever read: not files, not the network, not catalogs. */
static xmlParserInputPtr deny_entity_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	(void)url;
	(void)id;
	(void)ctxt;
	return NULL;
}

static void xml_init_once(void)
{
	xmlInitParser();
	xmlSetExternalEntityLoader(deny_entity_loader);
}

void hie_xml_init(void)
{
	pthread_once(&xml_once, xml_init_once);
}

struct parse_state {
	unsigned max_depth;
	size_t max_elements;
	unsigned depth;
	size_t elements;
	hie_err_t err;       /* our own reason to stop, or ENOMEM from libxml2 */
	struct hie_buf *errbuf;
	int have_msg;
	startElementNsSAX2Func sax_start;
	endElementNsSAX2Func sax_end;
	bool root_only;      /* hie_xml_root_is: stop at the root element's start tag */
	bool root_seen;
};

static void set_msg(struct parse_state *st, const char *msg, int line)
{
	if (st->have_msg || !st->errbuf)
		return;
	st->have_msg = 1;
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
		n--;
	if (line > 0)
		(void)hie_buf_addf(st->errbuf, "line %d: ", line);
	(void)hie_buf_add(st->errbuf, msg, n);
}

static void stop(xmlParserCtxtPtr ctxt, struct parse_state *st, hie_err_t err, const char *msg)
{
	if (!st->err)
		st->err = err;
	set_msg(st, msg, xmlSAX2GetLineNumber(ctxt));
	xmlStopParser(ctxt);
}

static void on_error(void *ud, xmlErrorPtr e)
{
	xmlParserCtxtPtr ctxt = ud;
	struct parse_state *st = ctxt ? ctxt->_private : NULL;
	if (!st || !e || e->level < XML_ERR_ERROR)
		return;
	if (e->code == XML_ERR_NO_MEMORY && !st->err)
		st->err = HIE_ENOMEM;
	set_msg(st, e->message ? e->message : "XML error", e->line);
}

/* SOAP 1.2 Part 1 §5: a SOAP message must not contain a DTD; we refuse DTDs everywhere. */
static void on_doctype(void *ud, const xmlChar *name, const xmlChar *ext_id, const xmlChar *sys_id)
{
	xmlParserCtxtPtr ctxt = ud;
	(void)name;
	(void)ext_id;
	(void)sys_id;
	stop(ctxt, ctxt->_private, HIE_EPARSE, "document type declaration (DOCTYPE) not allowed");
}

static void on_entity_decl(void *ud, const xmlChar *name, int type, const xmlChar *public_id,
			   const xmlChar *system_id, xmlChar *content)
{
	xmlParserCtxtPtr ctxt = ud;
	(void)name;
	(void)type;
	(void)public_id;
	(void)system_id;
	(void)content;
	stop(ctxt, ctxt->_private, HIE_EPARSE, "entity declaration not allowed");
}

static void on_start(void *ud, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
		     int nb_namespaces, const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
		     const xmlChar **attributes)
{
	xmlParserCtxtPtr ctxt = ud;
	struct parse_state *st = ctxt->_private;
	if (++st->depth > st->max_depth) {
		stop(ctxt, st, HIE_ETOOBIG, "element nesting too deep");
		return;
	}
	if (++st->elements > st->max_elements) {
		stop(ctxt, st, HIE_ETOOBIG, "too many elements");
		return;
	}
	st->sax_start(ud, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes, nb_defaulted,
		      attributes);
	if (st->root_only) {
		st->root_seen = true;
		xmlStopParser(ctxt);
	}
}

static void on_end(void *ud, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
	xmlParserCtxtPtr ctxt = ud;
	struct parse_state *st = ctxt->_private;
	if (st->depth)
		st->depth--;
	st->sax_end(ud, localname, prefix, uri);
}

static hie_err_t parse(const char *data, size_t len, const struct hie_xml_limits *lim, xmlDoc **out,
		       struct hie_buf *errbuf, bool root_only)
{
	hie_err_t err = HIE_OK;
	xmlParserCtxtPtr ctxt = NULL;
	xmlDocPtr doc = NULL;
	struct parse_state st = { .root_only = root_only };

	*out = NULL;
	hie_xml_init();
	if (!lim)
		lim = &hie_xml_default_limits;
	size_t max_bytes = lim->max_bytes ? lim->max_bytes : HIE_XML_DEFAULT_MAX_BYTES;
	st.max_depth = lim->max_depth ? lim->max_depth : HIE_XML_DEFAULT_MAX_DEPTH;
	st.max_elements = lim->max_elements ? lim->max_elements : HIE_XML_DEFAULT_MAX_ELEMENTS;
	st.errbuf = errbuf;
	if (len > max_bytes || len > INT_MAX) {
		set_msg(&st, "document too large", 0);
		return HIE_ETOOBIG;
	}
	if (len == 0 || !data) {
		set_msg(&st, "empty document", 0);
		return HIE_EPARSE;
	}

	ctxt = xmlNewParserCtxt();
	if (!ctxt || !ctxt->sax) {
		err = HIE_ENOMEM;
		goto out;
	}
	ctxt->_private = &st;
	st.sax_start = ctxt->sax->startElementNs;
	st.sax_end = ctxt->sax->endElementNs;
	if (!st.sax_start || !st.sax_end)
		hie_panic("event=xml.init error=no_sax2_handlers"); /* xmlNewParserCtxt always sets them */
	ctxt->sax->startElementNs = on_start;
	ctxt->sax->endElementNs = on_end;
	ctxt->sax->internalSubset = on_doctype;
	ctxt->sax->externalSubset = on_doctype;
	ctxt->sax->entityDecl = on_entity_decl;
	ctxt->sax->serror = on_error;
	ctxt->sax->error = NULL;
	ctxt->sax->warning = NULL;
	ctxt->sax->initialized = XML_SAX2_MAGIC;

	doc = xmlCtxtReadMemory(ctxt, data, (int)len, NULL, NULL,
				XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (st.err) {
		err = st.err;
		goto out;
	}
	if (root_only) {
		/* Stopped on purpose at the root's start tag: only what came before it was checked. */
		err = doc && st.root_seen && !doc->intSubset && !doc->extSubset ? HIE_OK : HIE_EPARSE;
		if (!err) {
			*out = doc;
			doc = NULL;
		}
		goto out;
	}
	/* Namespace errors (an unbound prefix) only clear nsWellFormed; SOAP needs namespace-well-formed XML. */
	if (!doc || !ctxt->wellFormed || !ctxt->nsWellFormed) {
		set_msg(&st, "XML not well-formed", 0);
		err = HIE_EPARSE;
		goto out;
	}
	if (doc->intSubset || doc->extSubset) {
		set_msg(&st, "document type declaration (DOCTYPE) not allowed", 0);
		err = HIE_EPARSE;
		goto out;
	}
	if (!xmlDocGetRootElement(doc)) {
		set_msg(&st, "no root element", 0);
		err = HIE_EPARSE;
		goto out;
	}
	*out = doc;
	doc = NULL;
out:
	if (doc)
		xmlFreeDoc(doc);
	if (ctxt) {
		ctxt->_private = NULL;
		xmlFreeParserCtxt(ctxt);
	}
	return err;
}

hie_err_t hie_xml_parse(const char *data, size_t len, const struct hie_xml_limits *lim, xmlDoc **out,
			struct hie_buf *errbuf)
{
	return parse(data, len, lim, out, errbuf, false);
}

bool hie_xml_root_is(const char *data, size_t len, const char *ns_uri, const char *local)
{
	xmlDoc *doc = NULL;
	if (parse(data, len, NULL, &doc, NULL, true) != HIE_OK)
		return false;
	bool yes = hie_xml_is(xmlDocGetRootElement(doc), ns_uri, local);
	xmlFreeDoc(doc);
	return yes;
}

bool hie_xml_is(const xmlNode *n, const char *ns_uri, const char *local)
{
	if (!n || n->type != XML_ELEMENT_NODE)
		return false;
	if (!local)
		return true;
	if (!xmlStrEqual(n->name, BAD_CAST local))
		return false;
	if (!ns_uri)
		return !n->ns || !n->ns->href;
	return n->ns && xmlStrEqual(n->ns->href, BAD_CAST ns_uri);
}

xmlNode *hie_xml_child(const xmlNode *parent, const char *ns_uri, const char *local)
{
	if (!parent)
		return NULL;
	for (xmlNode *c = parent->children; c; c = c->next)
		if (hie_xml_is(c, ns_uri, local))
			return c;
	return NULL;
}

xmlNode *hie_xml_next(const xmlNode *n, const char *ns_uri, const char *local)
{
	if (!n)
		return NULL;
	for (xmlNode *c = n->next; c; c = c->next)
		if (hie_xml_is(c, ns_uri, local))
			return c;
	return NULL;
}

static hie_err_t add_xml_string(struct hie_buf *out, xmlChar *s)
{
	if (!s)
		return HIE_ENOMEM;
	hie_err_t err = hie_buf_addstr(out, (const char *)s);
	xmlFree(s);
	return err;
}

hie_err_t hie_xml_text(const xmlNode *n, struct hie_buf *out)
{
	if (!n)
		return HIE_EINVAL;
	return add_xml_string(out, xmlNodeGetContent(n));
}

static xmlChar *get_attr(const xmlNode *n, const char *ns_uri, const char *name)
{
	if (!n || n->type != XML_ELEMENT_NODE)
		return NULL;
	if (ns_uri)
		return xmlGetNsProp(n, BAD_CAST name, BAD_CAST ns_uri);
	return xmlGetNoNsProp(n, BAD_CAST name);
}

hie_err_t hie_xml_attr(const xmlNode *n, const char *ns_uri, const char *name, struct hie_buf *out)
{
	xmlChar *v = get_attr(n, ns_uri, name);
	if (!v)
		return HIE_ENOTFOUND;
	return add_xml_string(out, v);
}

bool hie_xml_has_attr(const xmlNode *n, const char *ns_uri, const char *name)
{
	if (!n || n->type != XML_ELEMENT_NODE)
		return false;
	return xmlHasNsProp(n, BAD_CAST name, ns_uri ? BAD_CAST ns_uri : NULL) != NULL;
}

static void xpath_quiet(void *ud, xmlErrorPtr e)
{
	(void)ud;
	(void)e;
}

static hie_err_t xpath_eval(xmlDoc *doc, xmlNode *ctx, const char *expr, const struct hie_xml_ns *ns,
			    xmlXPathObjectPtr *out)
{
	hie_err_t err = HIE_OK;
	*out = NULL;
	hie_xml_init();
	if (!doc || !expr)
		return HIE_EINVAL;
	xmlXPathContextPtr xp = xmlXPathNewContext(doc);
	if (!xp)
		return HIE_ENOMEM;
	xp->error = xpath_quiet;
	xp->userData = NULL;
	if (ctx)
		xp->node = ctx;
	for (const struct hie_xml_ns *p = ns; p && p->prefix; p++) {
		if (xmlXPathRegisterNs(xp, BAD_CAST p->prefix, BAD_CAST p->uri) != 0) {
			err = HIE_ENOMEM;
			goto out;
		}
	}
	*out = xmlXPathEvalExpression(BAD_CAST expr, xp);
	if (!*out)
		err = HIE_EINVAL;
out:
	xmlXPathFreeContext(xp);
	return err;
}

hie_err_t hie_xml_xpath(xmlDoc *doc, xmlNode *ctx, const char *expr, const struct hie_xml_ns *ns,
			struct hie_xml_nodes *out)
{
	xmlXPathObjectPtr obj;
	out->nodes = NULL;
	out->n = 0;
	out->priv = NULL;
	hie_err_t err = xpath_eval(doc, ctx, expr, ns, &obj);
	if (err)
		return err;
	if (obj->type != XPATH_NODESET) {
		xmlXPathFreeObject(obj);
		return HIE_EINVAL;
	}
	out->priv = obj;
	if (obj->nodesetval && obj->nodesetval->nodeNr > 0) {
		out->nodes = obj->nodesetval->nodeTab;
		out->n = (size_t)obj->nodesetval->nodeNr;
	}
	return HIE_OK;
}

void hie_xml_nodes_free(struct hie_xml_nodes *nodes)
{
	if (!nodes)
		return;
	if (nodes->priv)
		xmlXPathFreeObject(nodes->priv);
	nodes->priv = NULL;
	nodes->nodes = NULL;
	nodes->n = 0;
}

hie_err_t hie_xml_xpath_text(xmlDoc *doc, xmlNode *ctx, const char *expr, const struct hie_xml_ns *ns,
			     struct hie_buf *out)
{
	xmlXPathObjectPtr obj;
	hie_err_t err = xpath_eval(doc, ctx, expr, ns, &obj);
	if (err)
		return err;
	if (obj->type == XPATH_NODESET) {
		if (!obj->nodesetval || obj->nodesetval->nodeNr <= 0)
			err = HIE_ENOTFOUND;
		else
			err = add_xml_string(out, xmlNodeGetContent(obj->nodesetval->nodeTab[0]));
	} else {
		err = add_xml_string(out, xmlXPathCastToString(obj));
	}
	xmlXPathFreeObject(obj);
	return err;
}

hie_err_t hie_xml_xpath_attr(xmlDoc *doc, xmlNode *ctx, const char *expr, const struct hie_xml_ns *ns,
			     const char *attr_ns, const char *attr, struct hie_buf *out)
{
	struct hie_xml_nodes nodes;
	hie_err_t err = hie_xml_xpath(doc, ctx, expr, ns, &nodes);
	if (err)
		return err;
	err = HIE_ENOTFOUND;
	for (size_t i = 0; i < nodes.n; i++) {
		if (nodes.nodes[i]->type == XML_ELEMENT_NODE) {
			err = hie_xml_attr(nodes.nodes[i], attr_ns, attr, out);
			break;
		}
	}
	hie_xml_nodes_free(&nodes);
	return err;
}

struct save_io {
	struct hie_buf *out;
	hie_err_t err;
};

/*
 * Past the cap we swallow the rest and remember the error: returning -1 would make libxml2 report an I/O
 * error through its global handler (stderr), which we never want.
 */
static int save_write(void *ctx, const char *buf, int len)
{
	struct save_io *io = ctx;
	if (len < 0)
		return -1;
	if (!io->err)
		io->err = hie_buf_add(io->out, buf, (size_t)len);
	return len;
}

static int save_close(void *ctx)
{
	(void)ctx;
	return 0;
}

static hie_err_t save(xmlDoc *doc, xmlNode *node, int options, struct hie_buf *out)
{
	struct save_io io = { .out = out, .err = HIE_OK };
	hie_xml_init();
	xmlSaveCtxtPtr s = xmlSaveToIO(save_write, save_close, &io, "UTF-8", options);
	if (!s)
		return HIE_ENOMEM;
	long r = doc ? xmlSaveDoc(s, doc) : xmlSaveTree(s, node);
	int rc = xmlSaveClose(s);
	if (io.err)
		return io.err;
	if (r < 0 || rc < 0)
		return HIE_ENOMEM;
	return HIE_OK;
}

hie_err_t hie_xml_serialize_node(const xmlNode *node, struct hie_buf *out)
{
	if (!node)
		return HIE_EINVAL;
	xmlNode *n = (xmlNode *)node;
	if (!n->parent || n->parent->type != XML_ELEMENT_NODE)
		return save(NULL, n, XML_SAVE_NO_DECL | XML_SAVE_AS_XML, out);
	/*
	 * A copy into a fresh document declares on its root every namespace the subtree uses that was
	 * declared on an ancestor (xmlStaticCopyNode), so the text is well-formed on its own.
	 */
	xmlDocPtr tmp = xmlNewDoc(BAD_CAST "1.0");
	if (!tmp)
		return HIE_ENOMEM;
	hie_err_t err;
	xmlNodePtr copy = xmlDocCopyNode(n, tmp, 1);
	if (!copy) {
		err = HIE_ENOMEM;
		goto out;
	}
	xmlDocSetRootElement(tmp, copy);
	err = save(NULL, copy, XML_SAVE_NO_DECL | XML_SAVE_AS_XML, out);
out:
	xmlFreeDoc(tmp);
	return err;
}

hie_err_t hie_xml_serialize_doc(xmlDoc *doc, bool with_decl, struct hie_buf *out)
{
	if (!doc)
		return HIE_EINVAL;
	return save(doc, NULL, XML_SAVE_AS_XML | (with_decl ? 0 : XML_SAVE_NO_DECL), out);
}
