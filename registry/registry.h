/*
 * registry.h — the XDS.b registry and repository module's public door.
 *
 * The module's configuration keys, its database migrations, its SOAP transactions (registry_routes), and the
 * patient identity index that the registry checks (XDSUnknownPatientId) and that the ITI-8 feed (notify/ over
 * MLLP) and `hienode patient` maintain.
 */
#ifndef HIENODE_REGISTRY_H
#define HIENODE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "core/core_config.h"
#include "core/core_db.h"
#include "core/core_err.h"
#include "core/core_soap.h"

extern const struct hie_cfg_key registry_config_keys[];
extern const size_t registry_config_nkeys;

/* Schema of the module (module name "registry"); node/ applies it after core's. */
extern const struct hie_db_migration registry_migrations[];
extern const size_t registry_migrations_count;

/* Transactions ------------------------------------------------------------------------------------------- */

/*
 * What the SOAP transactions of the module share. The node fills it from the configuration with
 * registry_service_init() before serving and sets `pool` once the database is open (routes may be added
 * before that; no request is served before).
 */
/*
 * [bridge]: metadata values a document received over Direct does not carry, for registry_import. Codes are
 * "code^^scheme" or "code^^scheme^display". An empty member (as after memset) means the built-in default,
 * which is also the key's default (REGISTRY_BRIDGE_DEF_*).
 */
#define REGISTRY_BRIDGE_DEF_SOURCE_ID "1.3.6.1.4.1.21367.13.20.1000.2"
#define REGISTRY_BRIDGE_DEF_HCFT "35971002^^2.16.840.1.113883.6.96^Ambulatory care site"
#define REGISTRY_BRIDGE_DEF_PRACTICE "394802001^^2.16.840.1.113883.6.96^General medicine"
#define REGISTRY_BRIDGE_DEF_TYPE "34133-9^^2.16.840.1.113883.6.1^Summary of episode note"
#define REGISTRY_BRIDGE_DEF_CONF "N^^2.16.840.1.113883.5.25^normal"
#define REGISTRY_BRIDGE_DEF_LANGUAGE "en-US"
struct registry_bridge_cfg {
	char source_id[65];              /* [bridge] source_id: SubmissionSet sourceId (an OID) */
	char hcft_code[256];             /* [bridge] healthcare_facility_type_code */
	char practice_code[256];         /* [bridge] practice_setting_code */
	char class_code[256];            /* [bridge] class_code ("" = the CDA's document code) */
	char type_code[256];             /* [bridge] type_code: when neither metadata nor a CDA gives one */
	char confidentiality_code[256];  /* [bridge] confidentiality_code: idem */
	char language_code[36];          /* [bridge] language_code: idem */
};
/* Fills b from the [bridge] keys (registry_import.c). */
void registry_bridge_config(struct registry_bridge_cfg *b, const struct hie_cfg *cfg);

struct registry_service {
	struct hie_db_pool *pool;
	size_t max_query_results;     /* [registry] max_query_results */
	char repository_uid[65];      /* [repository] unique_id */
	struct registry_bridge_cfg bridge; /* [bridge] (registry_bridge_config; zeroed = defaults) */
};
void registry_service_init(struct registry_service *svc, const struct hie_cfg *cfg);

/*
 * Adds the module's transactions to the SOAP router: ITI-42, ITI-18, ITI-57, ITI-62 on /xds/registry and
 * ITI-41, ITI-43 on /xds/repository. svc must outlive the router. HIE_ENOMEM, HIE_EEXIST.
 */
hie_err_t registry_routes(struct hie_soap_router *router, struct registry_service *svc);

/* Import (the push-to-pull bridge) ----------------------------------------------------------------------- */

/*
 * One document that arrived by other means than ITI-41 (a Direct message: as a plain C-CDA attachment, or
 * inside an XDM package with its METADATA.xml), to be registered in this node's registry and stored in its
 * repository exactly as an ITI-41 would (registry_import.c; same validation, same transaction).
 */
struct registry_import {
	const unsigned char *data;   /* the document */
	size_t len;
	const char *mime_type;       /* "text/xml", "application/pdf", ... */
	const char *metadata;        /* XDM METADATA.xml (ebRS 3.0 or 2.1 SubmitObjectsRequest) or NULL */
	size_t metadata_len;
	const char *entry_id;        /* with metadata: the ExtrinsicObject id describing this document */
	const char *source;          /* who sent it (a Direct address), for the SubmissionSet author */
};
enum registry_import_outcome {
	REGISTRY_IMPORT_REGISTERED,  /* stored (or already stored with the same bytes: idempotent) */
	REGISTRY_IMPORT_PARKED,      /* cannot be registered without an operator (unknown patient, ...) */
	REGISTRY_IMPORT_REFUSED,     /* the registry refused it (an IHE error code in reason) */
};
struct registry_import_result {
	enum registry_import_outcome outcome;
	char unique_id[129];         /* the DocumentEntry uniqueId (registered) */
	char reason[200];            /* parked / refused: short, no patient data */
};
/*
 * Patient resolution, in order: the metadata's patientId when it is known to the patient index (merged ids
 * followed); its sourcePatientId; the CDA's recordTarget/patientRole/id values (root = assigning authority OID,
 * extension = id); then the CDA's demographics (family, given, birth date, gender) when exactly one patient of
 * the index matches. Without a match: PARKED "no patient matched". Without metadata the DocumentEntry is made
 * from the CDA header (ClinicalDocument id, code, title, effectiveTime, confidentialityCode, languageCode,
 * templateId → formatCode, author); a non-CDA document without metadata is PARKED.
 * HIE_OK with res filled; an error (HIE_EDB, HIE_EBUSY, HIE_ENOMEM) means: try again later.
 */
hie_err_t registry_import(struct registry_service *svc, const struct registry_import *in,
			  struct registry_import_result *res);

/* Patient identity index --------------------------------------------------------------------------------- */

/*
 * A patient identifier is an HL7 CX value with an ISO assigning authority: "ID^^^&OID&ISO" (the form XDS
 * uses in patientId). registry_pid_parse() checks it and splits it; the canonical text form is rebuilt by
 * registry_pid_format(). Limits: id 1..64 bytes of printable ASCII without ^ & ~ \ |, OID 1..64 bytes of
 * digits and dots.
 */
struct registry_pid {
	char id[65];
	char oid[65];
};
hie_err_t registry_pid_parse(const char *cx, size_t len, struct registry_pid *out); /* HIE_EINVAL */
void registry_pid_format(const struct registry_pid *pid, char *out, size_t outlen);  /* "id^^^&oid&ISO" */
/* Room for the canonical text form and its NUL (64 + 4 + 64 + 4 + 1). */
#define REGISTRY_PID_TEXT_MAX 137

/* Demographics kept for federated patient discovery (XCPD). Empty strings = unknown. Never logged. */
struct registry_patient {
	struct registry_pid pid;
	char family[128];
	char given[128];
	char birth_date[9];   /* YYYYMMDD, or "" */
	char gender[2];       /* "M", "F", "O", "U" or "" */
	char street[256];
	char city[128];
	char state[64];
	char postal_code[32];
	char country[64];
	bool merged;          /* replaced by another id through a merge (A40) */
	struct registry_pid merged_into;
};

/*
 * Creates the patient or updates its demographics, inside the caller's transaction `tx` (the ITI-8 ACK
 * and the CLI commit after it). *created (may be NULL) tells which. HIE_EINVAL for bad fields.
 * On update, a field left empty keeps its stored value (as an HL7 v2 field that is not sent means "no
 * change"); p->merged and p->merged_into are ignored (only a merge sets them), so a merged id stays merged.
 */
hie_err_t registry_patient_upsert(PGconn *tx, const struct registry_patient *p, bool *created);

/*
 * The checks upsert applies, for callers that want to say which field is wrong before touching the database:
 * pid as registry_pid_parse() accepts it; text fields NUL-terminated in their arrays, valid UTF-8 without
 * control characters; birth_date "" or a real YYYYMMDD date (year 1000..9999); gender "", M, F, O or U.
 * HIE_EINVAL with *bad_field (may be NULL) = the struct member's name ("pid", "family", "birth_date", ...), a
 * static string.
 */
hie_err_t registry_patient_validate(const struct registry_patient *p, const char **bad_field);

/*
 * Merge (ADT A40): `old_pid` is retired into `survivor` (created if unknown). Afterwards lookups of the old id
 * report merged = true and merged_into = survivor. Inside the caller's transaction. Idempotent.
 */
hie_err_t registry_patient_merge(PGconn *tx, const struct registry_pid *survivor, const struct registry_pid *old_pid);

/* Looks a patient up; HIE_ENOTFOUND when unknown. */
hie_err_t registry_patient_get(PGconn *conn, const struct registry_pid *pid, struct registry_patient *out);

/* True when the id is known and not merged away (what the registry checks for XDSUnknownPatientId). */
hie_err_t registry_patient_known(PGconn *conn, const struct registry_pid *pid, bool *known);

/* Calls fn for each patient in id order, at most `limit` (0 = all). */
typedef void (*registry_patient_fn)(const struct registry_patient *p, void *arg);
hie_err_t registry_patient_list(PGconn *conn, size_t limit, registry_patient_fn fn, void *arg);

#endif
