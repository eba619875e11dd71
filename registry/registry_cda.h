/*
 * registry_cda.h — the header of an HL7 CDA R2 document read into the fields an XDS DocumentEntry needs
 * (module-internal; used by registry_import.c for the push-to-pull bridge).
 *
 * registry_cda_read() parses the bytes with core_xml's safe parser (no DOCTYPE, no network, caps) and reads
 * ClinicalDocument (urn:hl7-org:v3) header elements only: id, code, title, effectiveTime, confidentialityCode,
 * languageCode, templateIds (→ formatCode), documentationOf/serviceEvent/effectiveTime, the first authors'
 * assignedPerson names, and recordTarget/patientRole (ids and demographics). Times are converted to UTC DTM
 * text (YYYYMMDD[hh[mm[ss]]]) as XDS wants them. Values that do not fit their fields, or do not parse, are
 * left empty: the caller fills what is missing from its defaults.
 *
 * Errors: HIE_EPARSE (not well-formed, a DOCTYPE, or the root is not urn:hl7-org:v3 ClinicalDocument),
 * HIE_ETOOBIG (over the size/depth/element caps), HIE_ENOMEM.
 */
#ifndef HIENODE_REGISTRY_CDA_H
#define HIENODE_REGISTRY_CDA_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_err.h"

#define REGISTRY_CDA_NS "urn:hl7-org:v3"
#define REGISTRY_CDA_MAX_BYTES (64u * 1024u * 1024u)
#define REGISTRY_CDA_MAX_PIDS 8
#define REGISTRY_CDA_MAX_AUTHORS 4

/* formatCode scheme of the IHE/HL7 format codes (ITI TF-3 4.2.3.2.9). */
#define REGISTRY_CDA_FORMAT_SCHEME "1.3.6.1.4.1.19376.1.2.3"

struct registry_cda_code {
	char code[128];
	char scheme[128];
	char display[256];
};

struct registry_cda_ii {
	char root[128];
	char extension[128];   /* "" when absent */
};

struct registry_cda {
	struct registry_cda_ii id;             /* ClinicalDocument/id */
	struct registry_cda_code code;         /* document type (LOINC) */
	char title[256];
	char effective_time[15];               /* UTC DTM, "" when absent or malformed */
	struct registry_cda_code confidentiality;
	char language_code[36];
	struct registry_cda_code format;       /* from the templateIds and the body kind */
	char service_start[15], service_stop[15];
	char authors[REGISTRY_CDA_MAX_AUTHORS][256]; /* XCN "^Family^Given^^^Prefix" */
	size_t nauthors;
	struct registry_cda_ii pids[REGISTRY_CDA_MAX_PIDS];   /* recordTarget/patientRole/id */
	size_t npids;
	/* Demographics of recordTarget/patientRole/patient (never logged). */
	char family[128];
	char given[128];
	char birth_date[9];                    /* YYYYMMDD prefix of birthTime, "" when absent */
	char gender[2];                        /* administrativeGenderCode/@code when M, F or UN→U; else "" */
};

/* Reads the header of data[0..len). *out is fully overwritten. Errors: see the file header. */
hie_err_t registry_cda_read(const void *data, size_t len, struct registry_cda *out);

/*
 * Converts an HL7 V3 TS ("YYYY[MM[DD[hh[mm[ss[.f+]]]]]][+|-ZZzz]") to a UTC XDS DTM: fractional seconds are
 * dropped, a time zone offset is applied when the value has at least the hour (the result keeps the input's
 * precision, and has minutes when the offset has). A value without an offset is taken as it is (XDS says
 * UTC; the sender did not say otherwise). false (out = "") when ts is not such a value.
 */
bool registry_cda_ts_to_dtm(const char *ts, char out[15]);

#endif
