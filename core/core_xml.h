/*
 * core_xml.h — safe XML on libxml2: parsing of untrusted bytes, namespace-aware look-ups, serialization.
 *
 * Parsing (hie_xml_parse) never loads anything from outside the input: a deny-all external entity loader is
 * installed once per process, the parser runs with XML_PARSE_NONET and without NOENT, DTDLOAD, DTDATTR,
 * XINCLUDE or HUGE, and any document type declaration is refused by the parser the moment it is seen, before
 * an internal subset (and so any entity declaration) is read: billion laughs and XXE never expand. Caps:
 * input size (checked before parsing), element nesting depth and element count (checked as elements open).
 * Errors are collected per call, never written to stderr.
 *   HIE_ETOOBIG  input, depth or element count over the limit
 *   HIE_EPARSE   not well-formed, or a DOCTYPE
 *   HIE_ENOMEM   allocation failed
 *
 * Look-ups: by (namespace URI, local name) on children without XPath (hot paths), or by XPath with a table
 * of prefix → namespace registrations. Serialization of a node (namespaces declared on ancestors are
 * re-declared) or of a document into a capped hie_buf.
 *
 * The libxml2 types (xmlDoc, xmlNode) are part of this interface: handlers read and build trees with them.
 */
#ifndef HIENODE_CORE_XML_H
#define HIENODE_CORE_XML_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "core/core_buf.h"
#include "core/core_err.h"

struct hie_xml_limits {
	size_t max_bytes;     /* input size; 0 = the default */
	unsigned max_depth;   /* element nesting; 0 = the default. libxml2 itself stops at 256 */
	size_t max_elements;  /* elements in the document; 0 = the default */
};

/* Defaults: 32 MiB, depth 64, 1,000,000 elements. */
#define HIE_XML_DEFAULT_MAX_BYTES (32u * 1024u * 1024u)
#define HIE_XML_DEFAULT_MAX_DEPTH 64u
#define HIE_XML_DEFAULT_MAX_ELEMENTS 1000000u
extern const struct hie_xml_limits hie_xml_default_limits;

/* Prefix → namespace registration for XPath; tables end with { NULL, NULL }. */
struct hie_xml_ns {
	const char *prefix;
	const char *uri;
};

/*
 * Initialises libxml2 and installs the deny-all entity loader. Idempotent and thread-safe (pthread_once);
 * every function here calls it, so calling it explicitly is only needed before other libxml2 use.
 */
void hie_xml_init(void);

/*
 * Parses data[0..len) into *out (caller frees with xmlFreeDoc). lim NULL = defaults. errbuf (may be NULL)
 * receives one line describing the first error (our own or libxml2's; it may quote peer text, so pass it
 * through hie_log_printable before logging). Errors: see the file header.
 */
hie_err_t hie_xml_parse(const char *data, size_t len, const struct hie_xml_limits *lim, xmlDoc **out,
			struct hie_buf *errbuf);

/*
 * True when the document's root element is (ns_uri, local), reading only as far as the root's start tag (with
 * the same safe options; a DOCTYPE before it is refused): a cheap sniff of what a document is. It says nothing
 * about whether the rest is well-formed: parse it with hie_xml_parse before using it.
 */
bool hie_xml_root_is(const char *data, size_t len, const char *ns_uri, const char *local);

/* True when n is an element with this local name in this namespace (ns_uri NULL = no namespace). */
bool hie_xml_is(const xmlNode *n, const char *ns_uri, const char *local);

/* First element child of parent with (ns_uri, local); local NULL = any element. NULL when none. */
xmlNode *hie_xml_child(const xmlNode *parent, const char *ns_uri, const char *local);
/* Next element sibling after n with (ns_uri, local); local NULL = any element. NULL when none. */
xmlNode *hie_xml_next(const xmlNode *n, const char *ns_uri, const char *local);
/* Iterates the element children of parent that match (ns_uri, local). */
#define HIE_XML_FOREACH(var, parent, ns_uri, local)                                                          \
	for ((var) = hie_xml_child((parent), (ns_uri), (local)); (var);                                      \
	     (var) = hie_xml_next((var), (ns_uri), (local)))

/* Appends the text content of n (all descendant text) to out. */
hie_err_t hie_xml_text(const xmlNode *n, struct hie_buf *out);
/* Appends the value of attribute (ns_uri, name) of element n (ns_uri NULL = unqualified). HIE_ENOTFOUND. */
hie_err_t hie_xml_attr(const xmlNode *n, const char *ns_uri, const char *name, struct hie_buf *out);
/* The attribute value pointer-free check: true when present. */
bool hie_xml_has_attr(const xmlNode *n, const char *ns_uri, const char *name);

/* Result of an XPath evaluation: nodes[0..n) point into the document; free with hie_xml_nodes_free. */
struct hie_xml_nodes {
	xmlNode **nodes;
	size_t n;
	void *priv;
};

/*
 * Evaluates expr with ctx as the context node (NULL = the document) and the given namespace table (may be
 * NULL). A result that is not a node-set (count(), string()) is HIE_EINVAL; an empty node-set is HIE_OK
 * with n = 0. A malformed expression is HIE_EINVAL (our bug, not the peer's). The caller frees *out.
 */
hie_err_t hie_xml_xpath(xmlDoc *doc, xmlNode *ctx, const char *expr, const struct hie_xml_ns *ns,
			struct hie_xml_nodes *out);
void hie_xml_nodes_free(struct hie_xml_nodes *nodes);

/*
 * Appends the string value of expr to out: the text of the first node of a node-set (an attribute's value
 * for @attr), or the string value of a string/number/boolean result. HIE_ENOTFOUND for an empty node-set.
 */
hie_err_t hie_xml_xpath_text(xmlDoc *doc, xmlNode *ctx, const char *expr, const struct hie_xml_ns *ns,
			     struct hie_buf *out);
/* Appends attribute (attr_ns, attr) of the first element matched by expr. HIE_ENOTFOUND when either is absent. */
hie_err_t hie_xml_xpath_attr(xmlDoc *doc, xmlNode *ctx, const char *expr, const struct hie_xml_ns *ns,
			     const char *attr_ns, const char *attr, struct hie_buf *out);

/*
 * Appends node (an element and its subtree) to out as UTF-8 XML without a declaration. Namespaces the subtree
 * uses that are declared on ancestors are declared on the emitted element, so the text stands alone.
 * HIE_ETOOBIG when out's cap is reached.
 */
hie_err_t hie_xml_serialize_node(const xmlNode *node, struct hie_buf *out);
/* Appends the whole document; with_decl adds <?xml version="1.0" encoding="UTF-8"?>. */
hie_err_t hie_xml_serialize_doc(xmlDoc *doc, bool with_decl, struct hie_buf *out);

#endif
