/*
 * registry_schema.c — the registry module's numbered migrations (module "registry"), applied by node/ after
 * core's through hie_db_migrate().
 *
 *   1  patient index: table patients, one row per (assigning authority OID, id), demographics kept for XCPD
 *      matching, and the merge pointer of ADT A40.
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
};
const size_t registry_migrations_count = sizeof registry_migrations / sizeof registry_migrations[0];
