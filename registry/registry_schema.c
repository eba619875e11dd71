/*
 * registry_schema.c — the registry module's numbered migrations (module "registry"), applied by node/ after
 * core's through hie_db_migrate().
 *
 *   1  patient index: table patients, one row per (assigning authority OID, id), demographics kept for XCPD
 *      matching, and the merge pointer of ADT A40.
 *   2  registry and repository storage. Every registry object keeps the XML it was registered with (minus its
 *      status attribute, which lives in a column and is put back when the object is returned, so a status
 *      change never rewrites XML). Beside the XML, each kind has the denormalised columns its stored queries
 *      filter on, so FindDocuments is one index scan on (patient_id) — no generic attribute table:
 *        reg_documents     DocumentEntries: codes as 'code^^scheme' text (arrays for the multi-valued ones),
 *                          times as the DTM text (lexical order of DTM text is order at the precision given),
 *                          author persons, referenceIdList values, hash/size/repositoryUniqueId
 *        reg_packages      SubmissionSets and Folders (uniqueId, patientId, sourceId, times, codes, authors)
 *        reg_associations  every Association (type, source, target)
 *        reg_extra         the other top-level objects of a submission (a Classification or
 *                          ExternalIdentifier standing beside the object it applies to, `owner`), returned
 *                          with their owner
 *        repo_documents    the repository's document bytes (stored uncompressed out of line: retrieval
 *                          streams them; C-CDA gains little from pglz and PDFs nothing)
 *      `seq` orders results by registration. Versions (ITI-57) share lid and uniqueId.
 *   3  (unique_id, version) no longer unique: the same document (uniqueId, hash, size) may be registered by
 *      several submitters, each DocumentEntry kept (NIST 12004); concurrent registrations of one uniqueId are
 *      serialized by an advisory lock in registry_register.c instead.
 *
 * The CHECK constraints repeat the rules of registry_pid_parse() and registry_patient_validate() so that a
 * row written by any other path (an operator's psql, a later bug) cannot break what the code relies on.
 */
#include "registry/registry.h"

const struct hie_db_migration registry_migrations[] = {
	{"registry", 1, "patient index",
	 "CREATE TABLE patients ("
	 " oid text NOT NULL CHECK (octet_length(oid) BETWEEN 1 AND 64 AND oid ~ '^[0-2](\\.(0|[1-9][0-9]*))*$'),"
	 " id text NOT NULL CHECK (octet_length(id) BETWEEN 1 AND 64 AND id ~ '^[!-~]+$' AND id !~ '[\\^&~\\\\|]'),"
	 " family text NOT NULL DEFAULT '' CHECK (octet_length(family) < 128),"
	 " given text NOT NULL DEFAULT '' CHECK (octet_length(given) < 128),"
	 " birth_date date,"
	 " gender text NOT NULL DEFAULT '' CHECK (gender IN ('', 'M', 'F', 'O', 'U')),"
	 " street text NOT NULL DEFAULT '' CHECK (octet_length(street) < 256),"
	 " city text NOT NULL DEFAULT '' CHECK (octet_length(city) < 128),"
	 " state text NOT NULL DEFAULT '' CHECK (octet_length(state) < 64),"
	 " postal_code text NOT NULL DEFAULT '' CHECK (octet_length(postal_code) < 32),"
	 " country text NOT NULL DEFAULT '' CHECK (octet_length(country) < 64),"
	 " merged_into_oid text,"
	 " merged_into_id text,"
	 " created_at timestamptz NOT NULL DEFAULT now(),"
	 " updated_at timestamptz NOT NULL DEFAULT now(),"
	 " CONSTRAINT patients_oid_id UNIQUE (oid, id),"
	 " CONSTRAINT patients_merge_pair CHECK ((merged_into_oid IS NULL) = (merged_into_id IS NULL)),"
	 " CONSTRAINT patients_merge_not_self CHECK (merged_into_oid IS NULL OR"
	 "  (merged_into_oid, merged_into_id) <> (oid, id)));"
	 /* XCPD (ITI-55) matches on family name and birth date first, then given name and gender. */
	 "CREATE INDEX patients_family_birth ON patients (lower(family), birth_date);"
	 "CREATE INDEX patients_birth_date ON patients (birth_date);"
	 /* A merge re-points the ids already merged into the retired one (keeps every chain one step long). */
	 "CREATE INDEX patients_merged_into ON patients (merged_into_oid, merged_into_id)"
	 " WHERE merged_into_oid IS NOT NULL;"},
	{"registry", 2, "registry and repository storage",
	 "CREATE TABLE reg_documents ("
	 " seq bigserial NOT NULL,"
	 " uuid text PRIMARY KEY,"
	 " lid text NOT NULL,"
	 " version integer NOT NULL DEFAULT 1 CHECK (version >= 1),"
	 " status text NOT NULL,"
	 " on_demand boolean NOT NULL DEFAULT false,"
	 " patient_id text NOT NULL,"
	 " unique_id text NOT NULL,"
	 " mime_type text NOT NULL,"
	 " class_code text, type_code text, format_code text, practice_code text, hcft_code text,"
	 " conf_codes text[] NOT NULL DEFAULT '{}',"
	 " event_codes text[] NOT NULL DEFAULT '{}',"
	 " author_persons text[] NOT NULL DEFAULT '{}',"
	 " reference_ids text[] NOT NULL DEFAULT '{}',"
	 " creation_time text, service_start_time text, service_stop_time text,"
	 " hash text, size bigint, repository_unique_id text,"
	 " xml text NOT NULL);"
	 "CREATE UNIQUE INDEX reg_documents_uid ON reg_documents (unique_id, version);"
	 "CREATE INDEX reg_documents_patient ON reg_documents (patient_id, status);"
	 "CREATE INDEX reg_documents_lid ON reg_documents (lid);"
	 "CREATE TABLE reg_packages ("
	 " seq bigserial NOT NULL,"
	 " uuid text PRIMARY KEY,"
	 " lid text NOT NULL,"
	 " version integer NOT NULL DEFAULT 1 CHECK (version >= 1),"
	 " kind text NOT NULL CHECK (kind IN ('SubmissionSet', 'Folder')),"
	 " status text NOT NULL,"
	 " patient_id text NOT NULL,"
	 " unique_id text NOT NULL,"
	 " source_id text,"
	 " submission_time text,"
	 " last_update_time text,"
	 " codes text[] NOT NULL DEFAULT '{}',"
	 " author_persons text[] NOT NULL DEFAULT '{}',"
	 " xml text NOT NULL);"
	 "CREATE UNIQUE INDEX reg_packages_uid ON reg_packages (kind, unique_id, version);"
	 "CREATE INDEX reg_packages_patient ON reg_packages (patient_id, kind, status);"
	 "CREATE INDEX reg_packages_lid ON reg_packages (lid);"
	 "CREATE TABLE reg_associations ("
	 " seq bigserial NOT NULL,"
	 " uuid text PRIMARY KEY,"
	 " lid text NOT NULL,"
	 " version integer NOT NULL DEFAULT 1 CHECK (version >= 1),"
	 " type text NOT NULL,"
	 " source text NOT NULL,"
	 " target text NOT NULL,"
	 " status text NOT NULL,"
	 " xml text NOT NULL);"
	 "CREATE INDEX reg_associations_source ON reg_associations (source);"
	 "CREATE INDEX reg_associations_target ON reg_associations (target);"
	 "CREATE TABLE reg_extra ("
	 " seq bigserial NOT NULL,"
	 " uuid text PRIMARY KEY,"
	 " owner text,"
	 " xml text NOT NULL);"
	 "CREATE INDEX reg_extra_owner ON reg_extra (owner);"
	 "CREATE TABLE repo_documents ("
	 " unique_id text PRIMARY KEY,"
	 " repository_unique_id text NOT NULL,"
	 " mime_type text NOT NULL,"
	 " hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{40}$'),"
	 " size bigint NOT NULL CHECK (size >= 0),"
	 " content bytea NOT NULL,"
	 " created_at timestamptz NOT NULL DEFAULT now());"
	 "ALTER TABLE repo_documents ALTER COLUMN content SET STORAGE EXTERNAL;"},
	{"registry", 3, "one uniqueId may have several DocumentEntries",
	 "DROP INDEX reg_documents_uid;"
	 "CREATE INDEX reg_documents_uid ON reg_documents (unique_id, version);"},
};
const size_t registry_migrations_count = sizeof registry_migrations / sizeof registry_migrations[0];
