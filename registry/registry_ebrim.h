/*
 * registry_ebrim.h — the ebRIM 3.0 submission model of XDS.b (lcm:SubmitObjectsRequest), no database.
 *
 * registry_ebrim_parse() copies the request element into a private document and reads every registry
 * object of rim:RegistryObjectList into a tree of struct registry_ebrim_obj (generic ebRIM fields: id, lid,
 * home, status, objectType, Name, Description, VersionInfo, Slots, nested Classifications and
 * ExternalIdentifiers, and the kind-specific attributes). Nothing is dropped: each object keeps its element
 * (obj->node) and registry_ebrim_obj_xml() serializes it as it stands, unknown children included, so that a
 * stored object is returned exactly as it was registered.
 *
 * On top of the generic tree, registry_ebrim_parse() builds the XDS views: DocumentEntries (with the
 * denormalized query fields), SubmissionSets/Folders and Associations. Classifications and
 * ExternalIdentifiers count for an object whether nested in it or top-level and pointing at it.
 *
 * registry_ebrim_assign_ids() replaces every symbolic id (one that is not urn:uuid:...) and every missing id
 * by a fresh urn:uuid, consistently in the model, in the references (sourceObject, targetObject,
 * classifiedObject, registryObject) and in the XML; the views are rebuilt.
 *
 * Errors: HIE_EPARSE (not a SubmitObjectsRequest, no RegistryObjectList), HIE_ETOOBIG (object/value caps),
 * HIE_ENOMEM. A well-formed request with bad XDS metadata parses fine: registry_validate judges it.
 */
#ifndef HIENODE_REGISTRY_EBRIM_H
#define HIENODE_REGISTRY_EBRIM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "core/core_xml.h"

#define REGISTRY_NS_LCM "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
#define REGISTRY_NS_RIM "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
#define REGISTRY_NS_RS "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
#define REGISTRY_NS_XML "http://www.w3.org/XML/1998/namespace"

/* XDS metadata identifiers (ITI TF-3 4.2.5). */
#define REGISTRY_UUID_SS_NODE "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
#define REGISTRY_UUID_FOLDER_NODE "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"
#define REGISTRY_UUID_DE_STABLE "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
#define REGISTRY_UUID_DE_ONDEMAND "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
#define REGISTRY_UUID_DE_PATIENTID "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
#define REGISTRY_UUID_DE_UNIQUEID "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
#define REGISTRY_UUID_SS_PATIENTID "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
#define REGISTRY_UUID_SS_UNIQUEID "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
#define REGISTRY_UUID_SS_SOURCEID "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
#define REGISTRY_UUID_FOLDER_PATIENTID "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a"
#define REGISTRY_UUID_FOLDER_UNIQUEID "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a"
#define REGISTRY_UUID_DE_CLASSCODE "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
#define REGISTRY_UUID_DE_CONFCODE "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
#define REGISTRY_UUID_DE_EVENTCODE "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
#define REGISTRY_UUID_DE_FORMATCODE "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
#define REGISTRY_UUID_DE_HCFTCODE "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
#define REGISTRY_UUID_DE_PRACTICECODE "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
#define REGISTRY_UUID_DE_TYPECODE "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
#define REGISTRY_UUID_DE_AUTHOR "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
#define REGISTRY_UUID_SS_AUTHOR "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
#define REGISTRY_UUID_SS_CONTENTTYPE "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
#define REGISTRY_UUID_FOLDER_CODELIST "urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5"

/* Caps on what one submission may hold (beyond core_xml's own caps). */
#define REGISTRY_EBRIM_MAX_OBJECTS 20000u   /* registry objects, nested ones included */
#define REGISTRY_EBRIM_MAX_VALUES 10000u    /* values of one slot */
#define REGISTRY_EBRIM_MAX_ARENA (256u * 1024u * 1024u)

enum registry_ebrim_kind {
	REGISTRY_EBRIM_OTHER = 0,       /* an element we do not model (kept in the XML) */
	REGISTRY_EBRIM_EXTRINSIC,       /* rim:ExtrinsicObject */
	REGISTRY_EBRIM_PACKAGE,         /* rim:RegistryPackage */
	REGISTRY_EBRIM_ASSOCIATION,     /* rim:Association */
	REGISTRY_EBRIM_CLASSIFICATION,  /* rim:Classification */
	REGISTRY_EBRIM_EXTID,           /* rim:ExternalIdentifier */
	REGISTRY_EBRIM_OBJECTREF,       /* rim:ObjectRef */
};

/* rim:LocalizedString. lang/charset NULL when absent; value "" when absent. */
struct registry_ebrim_lstring {
	const char *lang;
	const char *charset;
	const char *value;
};

/* rim:Slot: values in document order. */
struct registry_ebrim_slot {
	const char *name;
	const char *slot_type;   /* NULL when absent */
	const char **values;
	size_t nvalues;
};

/*
 * One registry object. Strings are NUL-terminated and owned by the submission; NULL = attribute absent.
 * For a nested Classification/ExternalIdentifier, `parent` is the enclosing object.
 */
struct registry_ebrim_obj {
	enum registry_ebrim_kind kind;
	xmlNode *node;                  /* the element in the submission's private document */
	struct registry_ebrim_obj *parent;
	const char *id, *lid, *home, *status, *object_type;
	struct registry_ebrim_lstring *name;
	size_t nname;
	struct registry_ebrim_lstring *description;
	size_t ndescription;
	const char *version_name;       /* rim:VersionInfo/@versionName */
	const char *version_comment;    /* rim:VersionInfo/@comment */
	struct registry_ebrim_slot *slots;
	size_t nslots;
	struct registry_ebrim_obj *classifications;  /* nested rim:Classification */
	size_t nclassifications;
	struct registry_ebrim_obj *extids;           /* nested rim:ExternalIdentifier */
	size_t nextids;
	/* ExtrinsicObject */
	const char *mime_type, *is_opaque;
	/* Association */
	const char *assoc_type, *source, *target;
	/* Classification */
	const char *classified_object, *scheme, *node_id, *node_repr;
	/* ExternalIdentifier */
	const char *registry_object, *id_scheme, *value;
};

/* A coded value: Classification nodeRepresentation + codingScheme slot + Name. */
struct registry_ebrim_code {
	const char *code;
	const char *scheme;    /* NULL when the codingScheme slot is absent */
	const char *display;   /* first LocalizedString value; NULL when no Name */
	const struct registry_ebrim_obj *cls;
};

/* Denormalized view of a DocumentEntry. Pointers into the model; NULL = absent. */
struct registry_ebrim_doc {
	struct registry_ebrim_obj *obj;       /* entryUUID = obj->id, status = obj->status, mimeType = obj->mime_type */
	bool on_demand;                       /* objectType is the on-demand type */
	const char *unique_id, *patient_id;
	const char *source_patient_id, *creation_time, *service_start_time, *service_stop_time;
	const char *hash, *size, *language_code, *repository_unique_id;
	const struct registry_ebrim_code *class_code, *type_code, *format_code, *practice_code, *hcft_code;
	struct registry_ebrim_code *conf_codes;
	size_t nconf_codes;
	struct registry_ebrim_code *event_codes;
	size_t nevent_codes;
	const char **author_persons;
	size_t nauthor_persons;
	struct registry_ebrim_code *codes;    /* storage for all of the above code fields */
	size_t ncodes;
};

enum registry_ebrim_pkg_kind { REGISTRY_PKG_UNKNOWN = 0, REGISTRY_PKG_SUBMISSION_SET, REGISTRY_PKG_FOLDER };

/* View of a RegistryPackage. */
struct registry_ebrim_pkg {
	struct registry_ebrim_obj *obj;
	enum registry_ebrim_pkg_kind kind;
	bool kind_conflict;                   /* classified both as SubmissionSet and Folder */
	const char *unique_id, *patient_id;
	const char *source_id, *submission_time;       /* SubmissionSet */
	struct registry_ebrim_code *codes;             /* SS contentTypeCode / Folder codeList */
	size_t ncodes;
	const char **author_persons;
	size_t nauthor_persons;
};

/* View of an Association. */
struct registry_ebrim_assoc {
	struct registry_ebrim_obj *obj;      /* type/source/target: obj->assoc_type, obj->source, obj->target */
	const char *ss_status;               /* first value of the SubmissionSetStatus slot, NULL when absent */
};

struct registry_ebrim_arena;

struct registry_ebrim_submission {
	xmlDoc *doc;                          /* private copy of the request */
	xmlNode *request;                     /* lcm:SubmitObjectsRequest in doc */
	struct registry_ebrim_obj *objs;      /* top-level objects in document order */
	size_t nobjs;
	struct registry_ebrim_doc *docs;
	size_t ndocs;
	struct registry_ebrim_pkg *pkgs;      /* all RegistryPackages */
	size_t npkgs;
	struct registry_ebrim_pkg *ss;        /* the first SubmissionSet, NULL when none */
	size_t nss;                           /* how many SubmissionSets */
	struct registry_ebrim_assoc *assocs;
	size_t nassocs;
	size_t nobjects_total;                /* nested objects included */
	/* Private: indexes built with the views, and the arena. */
	struct registry_ebrim_obj **by_ref;   /* top-level Classifications/ExternalIdentifiers by referenced id */
	size_t nby_ref;
	struct registry_ebrim_obj **by_id;    /* top-level objects with an id, by id */
	size_t nby_id;
	struct registry_ebrim_arena *arena;
};

/*
 * Parses `request` (an lcm:SubmitObjectsRequest element, e.g. msg->payload of ITI-42, or the child of
 * xdsb:ProvideAndRegisterDocumentSetRequest). The element is copied: the source document may be freed
 * afterwards. *out is freed with registry_ebrim_free. Errors: see the file header.
 */
hie_err_t registry_ebrim_parse(const xmlNode *request, struct registry_ebrim_submission **out);
void registry_ebrim_free(struct registry_ebrim_submission *s);

/* Appends the object's current XML (assigned ids included) to out. HIE_ETOOBIG at out's cap. */
hie_err_t registry_ebrim_obj_xml(const struct registry_ebrim_obj *o, struct hie_buf *out);

/* Slot named `name` of o, or NULL. */
const struct registry_ebrim_slot *registry_ebrim_slot(const struct registry_ebrim_obj *o, const char *name);
/* Number of top-level objects with this id (0 when none); *first (may be NULL) gets the first one. */
size_t registry_ebrim_find(const struct registry_ebrim_submission *s, const char *id,
			   const struct registry_ebrim_obj **first);
/* True for "urn:uuid:" followed by a well-formed 36-character UUID. */
bool registry_ebrim_is_uuid(const char *id);
/* Association type with its namespace prefix removed ("HasMember", "RPLC", ...); "" for NULL. */
const char *registry_ebrim_assoc_short(const char *type);

/*
 * Calls fn(obj, arg) for every Classification (when want_cls) or ExternalIdentifier (otherwise) that applies
 * to o: nested ones first, then top-level ones whose classifiedObject/registryObject is o->id.
 */
typedef void (*registry_ebrim_each_fn)(const struct registry_ebrim_obj *c, void *arg);
void registry_ebrim_each(const struct registry_ebrim_submission *s, const struct registry_ebrim_obj *o,
			 bool want_cls, registry_ebrim_each_fn fn, void *arg);

/* UUID generator for registry_ebrim_assign_ids: writes "urn:uuid:..." (NUL-terminated) into out. */
typedef hie_err_t (*registry_ebrim_uuid_fn)(char *out, size_t outlen, void *arg);

/*
 * Gives every object whose id is symbolic or missing a fresh urn:uuid (gen NULL = hie_soap_new_uuid_urn),
 * and rewrites every reference to a replaced symbolic id. Ids already in urn:uuid form are kept; a
 * reference to a symbolic id that names no object of the submission is left as it is (registry_validate
 * reports it). The XML is updated too and the views are rebuilt (view pointers taken before are invalid).
 * *nassigned (may be NULL) = objects that got a new id. HIE_ENOMEM, HIE_ESYS (no randomness), HIE_EINVAL
 * (the generator produced something that is not a urn:uuid).
 */
hie_err_t registry_ebrim_assign_ids(struct registry_ebrim_submission *s, registry_ebrim_uuid_fn gen, void *arg,
				    size_t *nassigned);

/* Internal to the module (registry_ebrim.c ↔ registry_ebrim_ids.c). */
const char *registry_ebrim_strdup(struct registry_ebrim_submission *s, const char *str);
void *registry_ebrim_alloc(struct registry_ebrim_submission *s, size_t n, size_t size); /* zeroed; NULL for n 0 */
hie_err_t registry_ebrim_arena_error(const struct registry_ebrim_submission *s);
hie_err_t registry_ebrim_build_views(struct registry_ebrim_submission *s);

/*
 * Editing (registry_ebrim_edit.c). Sets the rim:Slot `name` of o to the single value `value`: an existing slot
 * of that name is replaced (its other values and any further slots of the same name go), otherwise a new
 * rim:Slot is added after o's last slot (before its Name etc. when it has none, as the ebRIM 3.0 schema
 * orders them). Both the XML (o->node, so registry_ebrim_obj_xml shows it) and the model (o->slots) change;
 * the views are kept current: the slot-derived fields of o's DocumentEntry / SubmissionSet / Association
 * view are updated in place (hash, size, repositoryUniqueId, ...), and for any other object the views are
 * rebuilt (view pointers taken before are then invalid). Strings are copied.
 * HIE_EINVAL (no name, no value, o not an object of s with an element), HIE_ENOMEM, HIE_ETOOBIG (arena cap);
 * after any other error than HIE_EINVAL the submission may be inconsistent: free it, do not use it.
 */
hie_err_t registry_ebrim_set_slot(struct registry_ebrim_submission *s, struct registry_ebrim_obj *o, const char *name,
				  const char *value);

#endif
