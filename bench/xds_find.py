#!/usr/bin/env python3
"""Benchmark 2 — ITI-18 FindDocuments latency at scale against the bare SQL.

Data:    BENCH_FIND_DOCS DocumentEntries (1,000,000) over BENCH_FIND_PATIENTS patients (100,000), bulk-loaded
         with INSERT ... SELECT generate_series straight into reg_documents (+ patients, + one reg_extra row per
         document owned by its SubmissionSet, as a registration leaves it), every column valued like a real
         registration and the XML of a real ITI-42 made in this run with uuid, patientId and uniqueId substituted;
         one entry in 20 Deprecated (see approved()); then VACUUM ANALYZE. Document g belongs to patient g mod P, so a patient's
         entries are spread over the heap like entries registered over years. The load time is printed.
Figure:  ITI-18 FindDocuments ($XDSDocumentEntryPatientId, $XDSDocumentEntryStatus Approved) over HTTP, 1 client
         on a persistent connection, BENCH_FIND_Q queries for random patients, LeafClass and ObjectRef:
         p50/p99 ms.
Ceiling: the SQL registry_query_exec.c runs for that request (BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE
         READ, READ ONLY; the reg_documents SELECT; for LeafClass the reg_extra SELECT of the found uuids;
         COMMIT) through psql (\\timing per statement, results to /dev/null) for the SAME patients: p50/p99 ms
         of the sum per request.
Goal:    p99 <= 5 ms.
Env: BENCH_FIND_DOCS, BENCH_FIND_PATIENTS, BENCH_FIND_Q (3000; quick 20000 docs / 2000 patients / 500),
     BENCH_FIND_LOADERS (parallel psql sessions of the load, 2).
"""
import hashlib
import http.client
import os
import random
import re
import subprocess
import tempfile
import threading
import time

import common
from common import xds

NDOCS = common.knob("BENCH_FIND_DOCS", 1000000, 20000)
NPAT = common.knob("BENCH_FIND_PATIENTS", 100000, 2000)
NQ = common.knob("BENCH_FIND_Q", 3000, 500)
LOADERS = common.knob("BENCH_FIND_LOADERS", 2, 2)
CHUNK = 50000
FIND = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
REPO = "1.3.6.1.4.1.21367.13.20.1000.1"
MAX_RESULTS = 1000  # [registry] max_query_results default: LeafClass asks LIMIT max+1
OBJREF_MAX = 100000  # REGISTRY_SQ_OBJREF_MAX


def pid(k):
    return "F%s^^^&%s&ISO" % (k, xds.PID_OID)


def doc_uuid(g, tag=""):
    h = hashlib.md5(("%d%s" % (g, tag)).encode()).hexdigest()
    return "urn:uuid:%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def approved(g):
    """One entry in 20 is Deprecated: for half of the patients one of their ten (the j-th with (k + j) % 20 == 7)."""
    return (g % NPAT + g // NPAT) % 20 != 7


def dollar(s):
    assert "$tpl$" not in s
    return "$tpl$" + s + "$tpl$"


def template(n):
    """Registers one real DocumentEntry and returns its stored XML split around uuid / patient / uniqueId as a SQL
    concatenation expression over g (the row number), and the SubmissionSet classification's XML likewise."""
    n.sql("INSERT INTO patients (oid, id) VALUES ('%s', 'FTPLX')" % xds.PID_OID)
    uid = "1.2.840.99999.77.123456789"
    st, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI42,
                             xds.submission(pid("TPLX"), [
                                 ("Document01", uid, b"<ClinicalDocument>" + b"x" * 30000 + b"</ClinicalDocument>",
                                  {})]))
    assert st == 200 and xds.registry_response(root) == (xds.SUCCESS, []), raw[:2000]
    uuid, xml = n.sql("SELECT uuid, xml FROM reg_documents WHERE unique_id = '%s'" % uid)[0]
    ss, extra = n.sql("SELECT owner, xml FROM reg_extra")[0]
    n.sql("DELETE FROM reg_associations; DELETE FROM reg_extra; DELETE FROM reg_packages; DELETE FROM reg_documents;"
          " DELETE FROM patients")
    size = len(xml.encode())
    parts = re.split("(%s|FTPLX|%s)" % (re.escape(uuid), re.escape(uid)), xml)
    expr = []
    for p in parts:
        if p == uuid:
            expr.append("u")
        elif p == "FTPLX":
            expr.append("('F' || (g %% %d))" % NPAT)
        elif p == uid:
            expr.append("uid")
        elif p:
            expr.append(dollar(p))
    eparts = re.split("(%s)" % re.escape(ss), extra)
    eexpr = " || ".join("s" if p == ss else dollar(p) for p in eparts if p)
    return " || ".join(expr), size, eexpr, len(extra.encode())


def load(n):
    doc_expr, doc_size, extra_expr, extra_size = template(n)
    print("template: DocumentEntry XML %d bytes, SubmissionSet classification XML %d bytes" % (doc_size, extra_size))
    t0 = time.time()
    common.psql(n, "INSERT INTO patients (oid, id) SELECT '%s', 'F' || k FROM generate_series(0, %d) k"
                % (xds.PID_OID, NPAT - 1))
    chunks = [(lo, min(lo + CHUNK, NDOCS) - 1) for lo in range(0, NDOCS, CHUNK)]
    sql = ("INSERT INTO reg_documents (uuid, lid, status, patient_id, unique_id, mime_type, class_code, type_code,"
           " format_code, practice_code, hcft_code, conf_codes, event_codes, author_persons, creation_time,"
           " service_start_time, service_stop_time, hash, size, repository_unique_id, xml)"
           " SELECT u, u, CASE WHEN (g %% %d + g / %d) %% 20 = 7 THEN '%s' ELSE '%s' END, 'F' || (g %% %d) || '^^^&%s&ISO', uid,"
           " 'text/xml', (ARRAY['34133-9','11488-4','18842-5','57133-1','60591-5'])[1 + g %% 5] || '^^2.16.840.1.113883.6.1',"
           " (ARRAY['18842-5','34117-2','11506-3'])[1 + g %% 3] || '^^2.16.840.1.113883.6.1',"
           " 'urn:hl7-org:sdwg:ccda-structuredBody:2.1^^1.3.6.1.4.1.19376.1.2.3', '394579002^^2.16.840.1.113883.6.96',"
           " '22232009^^2.16.840.1.113883.6.96', '{N^^2.16.840.1.113883.5.25}', '{}', '{^Welby^Marcus^^^Dr^MD}',"
           " to_char(t, 'YYYYMMDDHH24MISS'), to_char(t, 'YYYYMMDD'), to_char(t + interval '1 day', 'YYYYMMDD'),"
           " md5(g::text || 'h') || '00000000', 10000 + g %% 50000, '%s', %s"
           " FROM (SELECT g, 'urn:uuid:' || md5(g::text)::uuid AS u, '1.2.840.99999.7.' || g AS uid,"
           " timestamp '2012-01-01' + g * interval '4 min' AS t FROM generate_series(@LO@, @HI@) g) s;"
           "INSERT INTO reg_extra (uuid, owner, xml) SELECT 'urn:uuid:' || md5(g::text || 'c')::uuid, s, %s"
           " FROM (SELECT g, 'urn:uuid:' || md5(g::text || 's')::uuid AS s FROM generate_series(@LO@, @HI@) g) x"
           % (NPAT, NPAT, xds.DEPRECATED, xds.APPROVED, NPAT, xds.PID_OID, REPO, doc_expr, extra_expr))
    lock = threading.Lock()
    todo = list(chunks)
    errors = []

    def loader():
        while True:
            with lock:
                if not todo or errors:
                    return
                lo, hi = todo.pop(0)
            try:
                common.psql(n, sql.replace("@LO@", str(lo)).replace("@HI@", str(hi)))
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)
                return
            with lock:
                done = len(chunks) - len(todo)
            print("  loaded rows %d..%d (%d/%d chunks, %.0fs)" % (lo, hi, done, len(chunks), time.time() - t0),
                  flush=True)

    threads = [threading.Thread(target=loader) for _ in range(LOADERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    t_ins = time.time() - t0
    common.psql(n, "VACUUM ANALYZE patients, reg_documents, reg_extra")
    t_all = time.time() - t0
    sizes = common.psql(n, "SELECT pg_size_pretty(pg_total_relation_size('reg_documents')),"
                           " pg_size_pretty(pg_total_relation_size('reg_extra')), count(*) FROM reg_documents").strip()
    print("load: %d DocumentEntries over %d patients in %.1fs (inserts %.1fs, VACUUM ANALYZE %.1fs);"
          " reg_documents|reg_extra|rows = %s" % (NDOCS, NPAT, t_all, t_ins, t_all - t_ins, sizes), flush=True)
    return t_all


def sql_requests(ks, leaf):
    """The statements of registry_query_exec.c for FindDocuments of patients ks (one psql script)."""
    out = ["\\o /dev/null", "\\timing on"]
    cols = "d.uuid, d.patient_id, d.status, d.xml" if leaf else "d.uuid, d.patient_id, d.status, NULL"
    for k in ks:
        out.append("BEGIN;")
        out.append("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;")
        out.append("SELECT %s FROM reg_documents d WHERE d.patient_id = '%s' AND d.status = ANY('{%s}'::text[])"
                   " ORDER BY d.seq LIMIT %d;" % (cols, pid(k), xds.APPROVED, (MAX_RESULTS if leaf else OBJREF_MAX) + 1))
        if leaf:
            ids = [doc_uuid(g) for g in range(k, NDOCS, NPAT) if approved(g)]
            out.append("SELECT owner, xml FROM reg_extra WHERE owner = ANY('{%s}'::text[]) ORDER BY seq;" % ",".join(ids))
        out.append("COMMIT;")
    return "\n".join(out) + "\n", 5 if leaf else 4


def run_sql(n, ks, leaf):
    script, per = sql_requests(ks, leaf)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    try:
        out = common.psql(n, file=f.name)
    finally:
        os.unlink(f.name)
    times = [float(m) for m in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)]
    assert len(times) == len(ks) * per, (len(times), len(ks), out[:500])
    per_req = [sum(times[i:i + per]) for i in range(0, len(times), per)]
    main_stmt = times[2::per]
    return per_req, main_stmt


def adhoc(k, leaf):
    p = pid(k).replace("&", "&amp;")
    return ('<query:AdhocQueryRequest xmlns:query="%s" xmlns:rim="%s"><query:ResponseOption returnComposedObjects="true"'
            ' returnType="%s"/><rim:AdhocQuery id="%s">'
            '<rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList><rim:Value>\'%s\'</rim:Value></rim:ValueList></rim:Slot>'
            '<rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList><rim:Value>(\'%s\')</rim:Value></rim:ValueList></rim:Slot>'
            '</rim:AdhocQuery></query:AdhocQueryRequest>'
            % (xds.NS["query"], xds.NS["rim"], "LeafClass" if leaf else "ObjectRef", FIND, p, xds.APPROVED))


def expected(k):
    return sum(1 for g in range(k, NDOCS, NPAT) if approved(g))


def run_http(n, ks, leaf):
    """Returns latencies (ms) or None when ITI-18 is not implemented by this build."""
    headers = {"Content-Type": 'application/soap+xml; charset=UTF-8; action="%s"' % xds.ITI18}
    bodies = [xds.soap(xds.ITI18, adhoc(k, leaf)).encode() for k in ks]
    conn = http.client.HTTPConnection("127.0.0.1", n.http_port, timeout=60)
    tag = b"<rim:ExtrinsicObject" if leaf else b"<rim:ObjectRef"
    lat = []
    for i, (k, b) in enumerate(zip(ks, bodies)):
        t0 = time.perf_counter()
        conn.request("POST", "/xds/registry", body=b, headers=headers)
        r = conn.getresponse()
        data = r.read()
        lat.append((time.perf_counter() - t0) * 1000)
        ok = r.status == 200 and b"ResponseStatusType:Success" in data
        if i == 0 and not ok:
            print("ITI-18 answered %d: %s" % (r.status, data[:400]))
            return None
        if not ok or (i < 50 and data.count(tag) != expected(k)):
            raise SystemExit("ITI-18 for patient %d: status %d, %d objects, expected %d:\n%s" % (
                k, r.status, data.count(tag), expected(k), data[:1500]))
    conn.close()
    return lat


def http_floor(n, count=500):
    """p50 of GET /healthz on one persistent connection: the Python client + HTTP round trip alone."""
    conn = http.client.HTTPConnection("127.0.0.1", n.http_port, timeout=60)
    lat = []
    for _ in range(count):
        t0 = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        lat.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return common.percentile(lat, 50)


def fmt(lat):
    return common.percentile(lat, 50), common.percentile(lat, 99)


def main():
    print("== ITI-18 FindDocuments latency: %d DocumentEntries, %d patients, %d queries, quick=%s, load %s"
          % (NDOCS, NPAT, NQ, common.QUICK, common.loadavg()), flush=True)
    n = common.node("bench-find", pg_settings={"max_wal_size": "8GB", "checkpoint_timeout": "30min"})
    try:
        t_load = load(n)
        common.report("FindDocuments data load", "%.0f s" % t_load, "-", "-",
                      "%d docs / %d patients" % (NDOCS, NPAT), None)
        rng = random.Random(18)
        for leaf in (True, False):
            kind = "LeafClass" if leaf else "ObjectRef"
            ks = [rng.randrange(NPAT) for _ in range(NQ)]
            # Both measured passes run on pages touched once before: SQL (warm), HTTP, SQL.
            run_sql(n, ks, leaf)
            available = run_http(n, ks[:20], leaf) is not None
            if available:
                common.pgss_reset(n)
                cpu = common.CpuMeter(n).start()
                with common.Perf("iti18-" + kind):
                    lat = run_http(n, ks, leaf)
                cpu.stop()
                pgss = common.pgss_top(n, 6)
            sql_lat, main_lat = run_sql(n, ks, leaf)
            s50, s99 = fmt(sql_lat)
            print("SQL ceiling %s: per request p50 %.3f ms p99 %.3f ms (the reg_documents SELECT alone: p50 %.3f"
                  " p99 %.3f)" % (kind, s50, s99, *fmt(main_lat)), flush=True)
            if not available:
                common.report("ITI-18 FindDocuments %s p50 / p99" % kind, "not available (ITI-18 not in this build)",
                              "%.2f / %.2f ms (SQL)" % (s50, s99), "-", "p99 <= 5 ms", None)
                continue
            h50, h99 = fmt(lat)
            print("HTTP floor (GET /healthz, same client, p50): %.3f ms" % http_floor(n))
            print("HTTP %s: %d queries, p50 %.3f ms p99 %.3f ms, mean %.3f ms, max %.3f ms" % (
                kind, len(lat), h50, h99, sum(lat) / len(lat), max(lat)))
            print(cpu.line())
            print("pg_stat_statements during the HTTP run:\n" + pgss)
            common.report("ITI-18 FindDocuments %s p50 / p99" % kind, "%.2f / %.2f ms" % (h50, h99),
                          "%.2f / %.2f ms (SQL)" % (s50, s99), "x%.1f / x%.1f" % (h50 / s50, h99 / s99),
                          "p99 <= 5 ms", h99 <= 5.0)
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    main()
