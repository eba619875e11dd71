/*
 * hisp_xdr_int.h — private to the XDR Document Recipient (hisp_xdr_in.c, hisp_xdr_meta.c, hisp_xdr_resp.c) and
 * its tests: the database-free reading of an ITI-41 request (metadata, Direct addressing headers, documents) and the
 * RegistryResponse writer.
 */
#ifndef HIENODE_HISP_XDR_INT_H
#define HIENODE_HISP_XDR_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_soap.h"
#include "hisp/hisp_edge.h"

#define HISP_NS_LCM3 "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
#define HISP_NS_RIM3 "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
#define HISP_NS_RS3 "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
#define HISP_NS_XDSB "urn:ihe:iti:xds-b:2007"

#define HISP_XDR_MAX_RCPTS 100
#define HISP_XDR_MAX_ERRORS 20
#define HISP_XDR_ADDR_MAX 255      /* a normalized Direct address and its NUL */

/* The IHE error codes we answer with (ITI TF-3 Table 4.2.4.1-2, row P of TransactionDefinedErrorCodes). */
#define XDR_ERR_METADATA "XDSRepositoryMetadataError"
#define XDR_ERR_MISSING_DOC "XDSMissingDocument"
#define XDR_ERR_MISSING_META "XDSMissingDocumentMetadata"
#define XDR_ERR_CONTENT "InvalidDocumentContent"
#define XDR_ERR_RESOURCES "XDSRepositoryOutOfResources"
#define XDR_ERR_BUSY "XDSRepositoryBusy"
#define XDR_ERR_INTERNAL "XDSRepositoryError"
#define XDR_WARN_FOLDER "PartialFolderContentNotProcessed"
#define XDR_WARN_REPLACE "PartialReplaceContentNotProcessed"
#define XDR_WARN_APPEND "PartialAppendContentNotProcessed"
#define XDR_WARN_XFRM "PartialTransformNotProcessed"
#define XDR_WARN_XFRM_RPLC "PartialTransformReplaceNotProcessed"

/* One rs:RegistryError. */
struct hisp_xdr_error {
	const char *code;          /* one of the XDR_* strings above (static) */
	bool warning;
	char context[320];         /* codeContext: plain text, escaped when written */
	char location[160];        /* location: the object concerned, or "" */
};
struct hisp_xdr_errors {
	struct hisp_xdr_error v[HISP_XDR_MAX_ERRORS];
	size_t n;
	size_t nerrors;            /* of severity Error (also those past the array) */
};

/* Adds an error (warning = false) or warning; the (HISP_XDR_MAX_ERRORS + 1)th and later are only counted. */
void hisp_xdr_error_add(struct hisp_xdr_errors *e, const char *code, bool warning, const char *location,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "Success", "PartialSuccess" (warnings only) or "Failure" (any error). */
const char *hisp_xdr_status(const struct hisp_xdr_errors *e);

/* Appends the rs:RegistryResponse for e to out. HIE_ETOOBIG (out's cap). */
hie_err_t hisp_xdr_response_xml(const struct hisp_xdr_errors *e, struct hie_buf *out);

/* What a request asks for, read without the database. */
struct hisp_xdr_sub {
	const xmlNode *sor;                     /* lcm:SubmitObjectsRequest, in the request's document */
	char ss_unique_id[256];                 /* XDSSubmissionSet.uniqueId */
	char title[256];                        /* the SubmissionSet's Name (first LocalizedString), "" when none */
	char from[HISP_XDR_ADDR_MAX];           /* direct:from, else the author's authorTelecommunication */
	bool from_header;                       /* from came from direct:from */
	char (*to)[HISP_XDR_ADDR_MAX];          /* direct:to headers, else intendedRecipient XTNs; deduplicated */
	size_t nto;
	bool to_header;
	char metadata_level[16];                /* "minimal", "XDS" or "" */
	struct hisp_xdm_doc *docs;              /* one per xdsb:Document that has its ExtrinsicObject */
	size_t ndocs;
	size_t nobjects;                        /* ExtrinsicObjects in the metadata */
	struct hie_buf scratch;                 /* inline (base64) document bytes */
	void *priv;                             /* owned strings */
};

/*
 * Reads req (an ITI-41 as dispatched to /xdr) into s (zeroed by the caller). inline_max caps the decoded
 * inline documents. Problems the peer can fix by changing the metadata or the documents become entries of
 * e (then s is incomplete and only good for hisp_xdr_sub_free); a request that is not an ITI-41 at all
 * (no xdsb:ProvideAndRegisterDocumentSetRequest) is HIE_EPARSE with a reason in why. HIE_ENOMEM.
 * Free s with hisp_xdr_sub_free in every case.
 */
hie_err_t hisp_xdr_read(const struct hie_soap_msg *req, size_t inline_max, struct hisp_xdr_sub *s,
			struct hisp_xdr_errors *e, char *why, size_t whylen);
void hisp_xdr_sub_free(struct hisp_xdr_sub *s);

/*
 * The Message-ID (without <>) of the Direct message made from a submission: "<sha256 hex of the
 * SubmissionSet uniqueId, LF, sender>@host", so that a replayed request is the same message.
 */
hie_err_t hisp_xdr_message_id(const char *ss_unique_id, const char *sender, const char *host, char *out,
			      size_t outlen);

#endif
