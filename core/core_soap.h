/*
 * core_soap.h — SOAP 1.2 messages with WS-Addressing 1.0 and MTOM/XOP, and a dispatcher by endpoint+action.
 *
 * Parsing (hie_soap_parse): the HTTP Content-Type selects plain SOAP (application/soap+xml; text/xml and
 * application/xml are tolerated) or MTOM (multipart/related, through core_mtom). The envelope is parsed with
 * core_xml (no DTD, capped). Checks, in the order SOAP 1.2 Part 1 §2.6 asks: the envelope namespace
 * (SOAP 1.1 or another → VersionMismatch), Header/Body structure (→ Sender), mustUnderstand headers we do not
 * understand (→ MustUnderstand; we understand WS-Addressing headers and wsse:Security, which is handed to
 * handlers), then WS-Addressing: Action, MessageID, To, ReplyTo, RelatesTo; the action is also read from the
 * Content-Type `action` parameter (and, for MTOM, from `start-info` and the root part); any that differs
 * from wsa:Action → Sender/wsa:ActionMismatch. A failed parse fills a struct hie_soap_fault that
 * hie_soap_fault_build() turns into the reply.
 *
 * Building (hie_soap_build): a SOAP 1.2 envelope with wsa:Action, a fresh wsa:MessageID (urn:uuid:…),
 * optional wsa:RelatesTo / wsa:To / wsa:ReplyTo, extra header blocks and the body given as XML text, plain or
 * MTOM. Used for replies and for requests we send. Faults: hie_soap_fault_build().
 *
 * Dispatch: hie_soap_route() registers a handler per (endpoint path, action); hie_soap_dispatch() parses,
 * routes, calls the handler and always produces a reply (HTTP status, Content-Type, body) — a fault for
 * anything the peer got wrong. Routes are added before serving; dispatch only reads the router, so it is
 * safe from many threads at once. HTTP status: 200 for a reply, 500 for every SOAP fault (SOAP 1.2 Part 2
 * §7.5.2.2 allows 400 for Sender; we use 500 consistently, as IHE peers expect), 415 for a media type that
 * is not SOAP, 404 for an unknown endpoint.
 */
#ifndef HIENODE_CORE_SOAP_H
#define HIENODE_CORE_SOAP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_mime.h"
#include "core/core_mtom.h"
#include "core/core_xml.h"

#define HIE_SOAP12_NS "http://www.w3.org/2003/05/soap-envelope"
#define HIE_SOAP11_NS "http://schemas.xmlsoap.org/soap/envelope/"
#define HIE_WSA_NS "http://www.w3.org/2005/08/addressing"
#define HIE_WSA_ANONYMOUS "http://www.w3.org/2005/08/addressing/anonymous"
#define HIE_WSA_FAULT_ACTION "http://www.w3.org/2005/08/addressing/soap/fault"
#define HIE_XOP_NS "http://www.w3.org/2004/08/xop/include"
#define HIE_WSSE_NS "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

struct hie_soap_limits {
	size_t max_body;              /* whole HTTP body (MTOM parts included); 0 = 64 MiB */
	struct hie_xml_limits xml;    /* the envelope; zeros = core_xml defaults */
	struct hie_mime_limits mime;  /* MTOM package; all zero = hie_mime_default_limits */
	size_t max_header_value;      /* a WS-A header's text; 0 = 4096 bytes */
};

/* WS-Addressing message information headers; NUL-terminated, trimmed, owned by the message; NULL = absent. */
struct hie_wsa {
	const char *action;
	const char *message_id;
	const char *to;
	const char *reply_to;   /* the wsa:Address inside wsa:ReplyTo */
	const char *relates_to;
};

/* Raw HTTP header, as the server hands it over (not owned by us). */
struct hie_soap_http_header {
	const char *name;
	const char *value;
};

/* What the caller knows about the HTTP request besides its body. All members may be NULL/0. */
struct hie_soap_call_ctx {
	const struct hie_soap_http_header *headers;
	size_t nheaders;
	void *user;        /* opaque per-request pointer, e.g. the verified TLS client certificate */
	const char *peer;  /* remote address for logs */
};

/* A parsed SOAP message (request or response). */
struct hie_soap_msg {
	xmlDoc *doc;
	xmlNode *envelope;
	xmlNode *header;       /* env:Header or NULL */
	xmlNode *body;         /* env:Body */
	xmlNode *payload;      /* first element child of env:Body; NULL when the Body is empty */
	xmlNode *security;     /* first wsse:Security header block or NULL */
	struct hie_wsa wsa;
	const char *content_type_action; /* action from the Content-Type (or MTOM root part); NULL when none */
	struct hie_mtom *mtom;           /* MTOM package or NULL for plain SOAP */
	/* Set by hie_soap_dispatch for handlers; NULL after a bare hie_soap_parse. */
	const char *path;
	const char *content_type;
	const struct hie_soap_call_ctx *call;
	void *priv;
};

enum hie_soap_fault_code {
	HIE_SOAP_FAULT_SENDER = 0,
	HIE_SOAP_FAULT_RECEIVER,
	HIE_SOAP_FAULT_VERSION_MISMATCH,
	HIE_SOAP_FAULT_MUST_UNDERSTAND,
	HIE_SOAP_FAULT_DATA_ENCODING_UNKNOWN,
};

struct hie_soap_fault {
	enum hie_soap_fault_code code;
	/*
	 * Optional env:Subcode/env:Value, a QName "prefix:local". Prefixes "wsa" and "env" are always bound;
	 * any other prefix needs subcode_ns (declared on the Value element). Strings must outlive the build.
	 */
	const char *subcode;
	const char *subcode_ns;
	char reason[256];          /* env:Reason/env:Text (xml:lang="en"); plain text, escaped when built */
	const char *detail_xml;    /* optional env:Detail content, well-formed XML text, inserted verbatim */
	/* MustUnderstand: the header block not understood (env:NotUnderstood), filled by hie_soap_parse. */
	char nu_ns[256];
	char nu_local[128];
	bool soap11;               /* VersionMismatch for a SOAP 1.1 envelope: answered as SOAP 1.1 (Part 1 App. A) */
	int http_status;           /* 0 = 500; hie_soap_parse sets 415 for a non-SOAP media type, 413 for size */
	char message_id[256];      /* the request's wsa:MessageID when it was read before the failure, else "" */
};

/* Fills f (reason formatted like printf). subcode/subcode_ns are kept as pointers. */
void hie_soap_fault_set(struct hie_soap_fault *f, enum hie_soap_fault_code code, const char *subcode,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Parses a request (or a response we received). On success *out is the message (free with
 * hie_soap_msg_free); it points into body, which must outlive it. On failure *out is NULL, fault (if not
 * NULL) says what to answer, and the return value is HIE_EPARSE (malformed, DOCTYPE, not SOAP 1.2,
 * structure, WS-A), HIE_ETOOBIG (a cap), HIE_EUNSUPPORTED (media type, mustUnderstand), HIE_EPROTO
 * (action mismatch) or HIE_ENOMEM. lim NULL = defaults.
 */
hie_err_t hie_soap_parse(const char *content_type, const char *body, size_t len,
			 const struct hie_soap_limits *lim, struct hie_soap_msg **out, struct hie_soap_fault *fault);
void hie_soap_msg_free(struct hie_soap_msg *msg);

/*
 * The bytes of a base64Binary element that is sent either inline (base64 text, decoded into scratch, which
 * caps the size) or as <xop:Include href="cid:..."/> (then *data points into the MTOM part: no copy).
 * An inline value is appended to scratch, so *data is valid until scratch is next changed; an MTOM value is
 * valid while msg lives.
 * HIE_ENOTFOUND for a cid that names no part (or xop:Include in a plain message), HIE_EPARSE for bad base64
 * or a malformed xop:Include, HIE_ETOOBIG when scratch's cap is hit.
 */
hie_err_t hie_soap_binary(const struct hie_soap_msg *msg, const xmlNode *node, const char **data, size_t *len,
			  struct hie_buf *scratch);

/* What to put in an outgoing envelope. */
struct hie_soap_out {
	const char *action;        /* wsa:Action (required) */
	const char *relates_to;    /* wsa:RelatesTo or NULL */
	const char *to;            /* wsa:To or NULL */
	bool reply_to_anonymous;   /* adds wsa:ReplyTo with the anonymous address (requests) */
	const char *header_xml;    /* extra header blocks (e.g. wsse:Security), verbatim, or NULL */
	const char *body_xml;      /* env:Body content, verbatim well-formed XML (may be NULL = empty body) */
	size_t body_len;
	const struct hie_mtom_out_part *parts; /* MTOM attachments, referenced from body_xml by xop:Include */
	size_t nparts;
	bool mtom;                 /* force MTOM even with no parts (ITI-43 replies) */
	char message_id[64];       /* out: the generated wsa:MessageID ("urn:uuid:...") */
};

/*
 * Writes the envelope (or the MTOM package holding it) into body, and the HTTP Content-Type into
 * content_type (both appended; caps come from the buffers). HIE_EINVAL without an action; HIE_ETOOBIG; HIE_ENOMEM.
 * Action, To and RelatesTo are escaped; body_xml and header_xml are not (the caller built them).
 */
hie_err_t hie_soap_build(struct hie_soap_out *o, struct hie_buf *body, struct hie_buf *content_type);

/*
 * The reply of hie_soap_dispatch. Init before use, free after; body and content_type belong to it.
 */
struct hie_soap_reply {
	int status;                 /* HTTP status */
	struct hie_buf content_type;
	struct hie_buf body;
};
/* max_body caps the reply body (0 = 256 MiB). */
void hie_soap_reply_init(struct hie_soap_reply *r, size_t max_body);
void hie_soap_reply_free(struct hie_soap_reply *r);

/*
 * Builds a fault reply: SOAP 1.2 envelope with wsa:Action = the WS-A fault action, wsa:RelatesTo when
 * relates_to is not NULL, env:Fault; status f->http_status or 500. A SOAP 1.1 VersionMismatch is answered in
 * SOAP 1.1 (text/xml) with an env:Upgrade header, as SOAP 1.2 Part 1 Appendix A asks. Replaces r's content.
 */
hie_err_t hie_soap_fault_build(const struct hie_soap_fault *f, const char *relates_to, struct hie_soap_reply *r);

/*
 * What a handler produces. Dispatch zeroes it, sets `doc` (an empty document the handler may build its
 * body element in; freed by dispatch) and initialises body_xml, then calls the handler.
 */
struct hie_soap_response {
	xmlDoc *doc;               /* scratch document for building `body`; owned by dispatch */
	xmlNode *body;             /* the env:Body child, from any document (serialized after the call); a node
				    * of `doc` is freed by dispatch, one of another document stays the handler's */
	struct hie_buf body_xml;   /* or: the env:Body content as XML text (used when body is NULL) */
	const char *action;        /* reply wsa:Action; NULL = request action + "Response" */
	const struct hie_mtom_out_part *parts; /* attachments: reply is MTOM when nparts > 0 or mtom */
	size_t nparts;
	bool mtom;
	bool is_fault;             /* reply with `fault` instead of a body */
	struct hie_soap_fault fault;
	void (*release)(void *arg); /* called after the reply is built (frees parts' data, …); may be NULL */
	void *release_arg;
};

/*
 * A handler. Return HIE_OK with resp->body, resp->body_xml or resp->is_fault set. Any error return becomes a
 * fault: HIE_EPARSE, HIE_EPROTO, HIE_EINVAL, HIE_ETOOBIG, HIE_EUNSUPPORTED, HIE_EDENIED, HIE_ENOTFOUND (e.g. an
 * xop:Include naming no part) → Sender; others →
 * Receiver, with a generic reason (internal details are for the log, not the peer). The request and
 * everything it points to are valid only during the call.
 */
typedef hie_err_t (*hie_soap_handler_fn)(const struct hie_soap_msg *req, struct hie_soap_response *resp,
					  void *arg);

struct hie_soap_router;

/* lim NULL = defaults; the limits are copied. Free with hie_soap_router_free. */
hie_err_t hie_soap_router_new(const struct hie_soap_limits *lim, struct hie_soap_router **out);
void hie_soap_router_free(struct hie_soap_router *r);

/*
 * Registers fn for (path, action); action NULL = every action on that path not otherwise routed. Strings
 * are copied. HIE_EEXIST for a duplicate, HIE_ENOMEM. Not thread-safe: call before serving.
 */
hie_err_t hie_soap_route(struct hie_soap_router *r, const char *path, const char *action,
			 hie_soap_handler_fn fn, void *arg);

/*
 * Handles one HTTP request: parse, route by path and action (unknown action on a known path → Sender
 * fault wsa:ActionNotSupported; unknown path → 404), call the handler, build the reply into out (which
 * the caller has initialised with hie_soap_reply_init). Returns HIE_OK whenever out holds a reply to send
 * (success or fault); an error only when no reply could be built (HIE_ENOMEM): then answer a bare 500.
 * call may be NULL.
 */
hie_err_t hie_soap_dispatch(struct hie_soap_router *r, const char *path, const char *content_type,
			    const char *body, size_t len, const struct hie_soap_call_ctx *call,
			    struct hie_soap_reply *out);

/* Value of an HTTP request header from call (case-insensitive name); NULL when absent. */
const char *hie_soap_http_header(const struct hie_soap_call_ctx *call, const char *name);

/* Writes a fresh "urn:uuid:<v4 uuid>" into out (at least 46 bytes). HIE_ESYS if no randomness. */
hie_err_t hie_soap_new_uuid_urn(char *out, size_t outlen);

#endif
