-- The statements one ITI-42 (1 SubmissionSet with its top-level Classification, 1 DocumentEntry, 1 HasMember)
-- runs on the registry's connection, with the node's SQL text and parameters, in registry_register.c /
-- registry_store.c order, as one transaction:
--   patient known?  lock the DocumentEntry uniqueIds (advisory)  DocumentEntry uniqueId registered?
--   SubmissionSet uniqueId registered?  (check_new_ids runs no statement: every id of this submission is
--   symbolic, so fresh)  then the INSERTs into
--   reg_documents, reg_packages, reg_extra (ON CONFLICT DO NOTHING), reg_associations.
-- Keep in step with the node: xds_register.py prints pg_stat_statements for both runs; they must list the same
-- statements with the same call counts (plus the one \gset SELECT below, which makes this run's fresh ids).
-- -D variables from xds_register.py: the XML and column values of a real registration made in the same run
-- (docxml, ssxml, extraxml, assocxml, status, hash, size, repo, codes, times, ...), npatients, pidoid.
-- Every value the node binds as a parameter is a parameter here too (pgbench -M extended = PQexecParams);
-- values containing ':' must come through -D (in extended mode pgbench takes ':name' inside a literal for a
-- variable).
\set p random(1, :npatients)
\set r random(1, 9000000000000000000)
SELECT 'BENCH-' || :p::text AS pid, 'BENCH-' || :p::text || '^^^&' || :pidoid::text || '&ISO' AS pidtext, '2.25.' || :client_id::text || '.' || :r::text || '.1' AS docuid, '2.25.' || :client_id::text || '.' || :r::text || '.2' AS ssuid, du, su, cu, au, '{"' || du || '"}' AS uids, '{"' || du || '","' || su || '","' || au || '"}' AS ids FROM (SELECT :urnuuid::text || gen_random_uuid() AS du, :urnuuid::text || gen_random_uuid() AS su, :urnuuid::text || gen_random_uuid() AS cu, :urnuuid::text || gen_random_uuid() AS au) x \gset
BEGIN;
SELECT merged_into_oid IS NULL FROM patients WHERE oid = :pidoid AND id = :pid;
SELECT pg_advisory_xact_lock(hashtextextended('xds.uid' || ':' || u, 0)) FROM (SELECT DISTINCT u FROM unnest(:uids::text[]) u ORDER BY u) s;
SELECT uuid, hash, size::text, patient_id FROM reg_documents WHERE unique_id = :docuid ORDER BY version DESC LIMIT 1;
SELECT 1 FROM reg_packages WHERE kind = :sskind AND unique_id = :ssuid LIMIT 1;
INSERT INTO reg_documents (uuid, lid, status, on_demand, patient_id, unique_id, mime_type, class_code, type_code, format_code, practice_code, hcft_code, conf_codes, event_codes, author_persons, reference_ids, creation_time, service_start_time, service_stop_time, hash, size, repository_unique_id, xml, version) VALUES (:du, :du, :status, :false, :pidtext, :docuid, :mime, :classcode, :typecode, :formatcode, :practicecode, :hcftcode, :confcodes::text[], :eventcodes::text[], :authors::text[], :refids::text[], :ctime, :sstart, :sstop, lower(:hash), :size::bigint, :repo, :docxml, :one::integer);
INSERT INTO reg_packages (uuid, lid, kind, status, patient_id, unique_id, source_id, submission_time, last_update_time, codes, author_persons, xml, version) VALUES (:su, :su, :sskind, :status, :pidtext, :ssuid, :sourceid, :subtime, NULL, :sscodes::text[], :authors::text[], :ssxml, :one::integer);
INSERT INTO reg_extra (uuid, owner, xml) VALUES (:cu, :su, :extraxml) ON CONFLICT (uuid) DO NOTHING;
INSERT INTO reg_associations (uuid, lid, type, source, target, status, xml) VALUES (:au, :au, :hasmember, :su, :du, :status, :assocxml);
COMMIT;
