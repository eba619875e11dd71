/*
 * hisp_xdm_int.h — private to the XDM files (hisp_xdm.c, hisp_xdm_build.c, hisp_xdm_read.c, hisp_xdm_meta.c)
 * and their tests: the names of the package layout, the ebRIM identifiers, and small metadata helpers shared by
 * the builder and the reader. Metadata helpers work on ebRIM 3.0 and 2.1 alike (the same element names in two
 * namespaces); `rim` is the namespace URI of the document's rim elements.
 */
#ifndef HIENODE_HISP_XDM_INT_H
#define HIENODE_HISP_XDM_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "core/core_buf.h"
#include "core/core_err.h"

#define XDM_NS_LCM3 "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
#define XDM_NS_RIM3 "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
#define XDM_NS_RS21 "urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1"
#define XDM_NS_RIM21 "urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1"
#define XDM_NS_XHTML "http://www.w3.org/1999/xhtml"

/* ITI TF-1 16 (XDM media): the layout at the root of the zip. */
#define XDM_DIR "IHE_XDM"
#define XDM_SUBSET "SUBSET01"
#define XDM_METADATA "METADATA.xml"
#define XDM_INDEX "INDEX.HTM"
#define XDM_README "README.TXT"
#define XDM_PRODUCT "hienode"

/* ebRIM identifiers (ITI TF-3 4.2.5). */
#define XDM_UUID_DOC_ENTRY "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"         /* DocumentEntry objectType */
#define XDM_UUID_DOC_UNIQUEID "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"      /* DocumentEntry.uniqueId */
#define XDM_UUID_SS "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"                /* SubmissionSet node */
#define XDM_UUID_SS_AUTHOR "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"         /* SubmissionSet.author */
#define XDM_UUID_SS_UNIQUEID "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"       /* SubmissionSet.uniqueId */
#define XDM_UUID_SS_SOURCEID "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"       /* SubmissionSet.sourceId */
#define XDM_UUID_SS_LIMITED "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707"        /* SubmissionSet.limitedMetadata */
#define XDM_UUID_DOC_LIMITED "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"       /* DocumentEntry.limitedMetadata */
#define XDM_HAS_MEMBER "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"

/* The rim namespace of a SubmitObjectsRequest element (3.0 lcm: or 2.1 rs:); NULL when sor is neither. */
const char *hisp_xdm_rim_ns(const xmlNode *sor);

/*
 * The ExtrinsicObjects under root in document order: up to max of them into v (may be NULL with max 0);
 * returns how many there are in all (callers compare with max to detect too many).
 */
size_t hisp_xdm_extrinsics(xmlNode *root, const char *rim, xmlNode **v, size_t max);

/* The ExtrinsicObject whose id is id; NULL when none. */
xmlNode *hisp_xdm_find_extrinsic(xmlNode *root, const char *rim, const char *id);

/* Appends the first Value of obj's Slot `name` to out. HIE_ENOTFOUND when there is no such slot or value. */
hie_err_t hisp_xdm_slot(const xmlNode *obj, const char *rim, const char *name, struct hie_buf *out);

/*
 * Appends the DocumentEntry's URI: the single Value of the URI slot, or the values of the long form
 * ("1|part", "2|part", ... concatenated in their order, ITI TF-3 4.2.3.2.24). HIE_ENOTFOUND, HIE_EPARSE.
 */
hie_err_t hisp_xdm_uri(const xmlNode *eo, const char *rim, struct hie_buf *out);

/* Appends the value of obj's ExternalIdentifier with this identificationScheme. HIE_ENOTFOUND. */
hie_err_t hisp_xdm_external_id(const xmlNode *obj, const char *rim, const char *scheme, struct hie_buf *out);

/*
 * Sets the single-valued slot `name` of obj (in obj's namespace) to value: an existing slot's values are
 * replaced (later duplicates removed), a new slot goes after the last Slot (before Name, Classification... as
 * ebRIM's sequence wants). HIE_ENOMEM.
 */
hie_err_t hisp_xdm_slot_set(xmlNode *obj, const char *name, const char *value);


/* The 8.3 extension for a document of this mime type ("XML", "PDF", "TXT", ..., "BIN"). */
const char *hisp_xdm_ext(const char *mime_type);

#endif
