#!/usr/bin/env python3
"""Benchmark 1 — ITI-42 registration throughput against its PostgreSQL ceiling.

Figure:  registrations/s of ITI-42 (1 SubmissionSet + its classification, 1 DocumentEntry with realistic slots
         and codes, 1 HasMember; tests/integration/xds.py builds it) from BENCH_REG_CLIENTS client processes, each
         on one persistent HTTP/1.1 connection, BENCH_REG_N registrations in all (bodies built before timing).
Ceiling: pgbench (-c/-j = clients, -M extended like the node's PQexecParams) on the SAME embedded cluster running
         bench/pgbench/register.sql — the statements registry_register.c/registry_store.c run for such a
         submission, one transaction each, with the XML bytes of a real registration made in this run.
Goal:    figure >= 70 % of the ceiling.
Also printed: latency p50/p99, CPU per party (is the Python client a limit?), pg_stat_statements of both runs.
Env: BENCH_REG_N (2000; quick 300), BENCH_REG_CLIENTS (2), BENCH_REG_PATIENTS (1000), BENCH_ROUNDS (5; quick 1:
     HTTP and pgbench alternate, the medians are compared), BENCH_PERF=1.
"""
import http.client
import multiprocessing as mp
import os
import random
import time

import common
from common import xds

N = common.knob("BENCH_REG_N", 2000, 300)
CLIENTS = common.knob("BENCH_REG_CLIENTS", 2, 2)
NPAT = common.knob("BENCH_REG_PATIENTS", 1000, 100)
ROUNDS = common.knob("BENCH_ROUNDS", 5, 1)
CONTENT = b"<ClinicalDocument>" + b"x" * 30000 + b"</ClinicalDocument>"  # only its hash and size travel
HEADERS = {"Content-Type": 'application/soap+xml; charset=UTF-8; action="%s"' % xds.ITI42}


def patient(i):
    return "BENCH-%d^^^&%s&ISO" % (i, xds.PID_OID)


def body(rng):
    p = patient(rng.randint(1, NPAT))
    sub = xds.submission(p, [("Document01", xds.new_uid(), CONTENT, {})])
    return xds.soap(xds.ITI42, sub).encode()


def worker(port, bodies, start_evt, q):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.connect()
    lat, errors, reconnects = [], 0, 0
    start_evt.wait()
    t_cpu = time.process_time()
    for b in bodies:
        t0 = time.perf_counter()
        if conn.sock is None:
            reconnects += 1
        conn.request("POST", "/xds/registry", body=b, headers=HEADERS)
        r = conn.getresponse()
        data = r.read()
        lat.append((time.perf_counter() - t0) * 1000)
        if r.status != 200 or b"ResponseStatusType:Success" not in data:
            errors += 1
            if errors <= 3:
                print("registration failed: %d %s" % (r.status, data[:600]), flush=True)
    q.put({"lat": lat, "errors": errors, "reconnects": reconnects, "cpu": time.process_time() - t_cpu})
    conn.close()


def run_http(n, bodies, meter=None):
    """Posts the bodies from CLIENTS processes; returns (wall seconds, results of every worker)."""
    ctx = mp.get_context("fork")
    q, start_evt = ctx.Queue(), ctx.Event()
    shares = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    procs = [ctx.Process(target=worker, args=(n.http_port, s, start_evt, q)) for s in shares]
    for p in procs:
        p.start()
    time.sleep(0.5)  # every worker connected and waiting
    if meter:
        meter.start()
    t0 = time.perf_counter()
    start_evt.set()
    res = [q.get() for _ in procs]
    wall = time.perf_counter() - t0
    if meter:
        meter.stop()
    for p in procs:
        p.join()
    return wall, res


def main():
    print("== ITI-42 registration throughput: %d registrations, %d clients, %d patients, quick=%s, load %s"
          % (N, CLIENTS, NPAT, common.QUICK, common.loadavg()), flush=True)
    n = common.node("bench-register")
    try:
        n.sql("INSERT INTO patients (oid, id) SELECT '%s', 'BENCH-' || g FROM generate_series(1, %d) g"
              % (xds.PID_OID, NPAT))
        rng = random.Random(42)
        # One real registration: its stored XML gives the ceiling its bytes.
        st, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI42, body(rng))
        assert st == 200 and xds.registry_response(root) == (xds.SUCCESS, []), raw[:2000]
        xml = {t: n.sql("SELECT xml FROM %s" % t)[0][0]
               for t in ("reg_documents", "reg_packages", "reg_extra", "reg_associations")}
        print("one registration: request %d bytes; stored XML bytes: %s" % (
            len(body(random.Random(1))), ", ".join("%s %d" % (t, len(x.encode())) for t, x in xml.items())))

        warm = [body(rng) for _ in range(max(20, N // 50))]
        rounds = [[body(rng) for _ in range(N)] for _ in range(ROUNDS)]
        run_http(n, warm)  # pool connections opened, caches warm; not counted
        d = n.sql("SELECT status, on_demand::text, mime_type, class_code, type_code, format_code, practice_code,"
                  " hcft_code, conf_codes::text, event_codes::text, author_persons::text, reference_ids::text,"
                  " creation_time, service_start_time, service_stop_time, hash, size, repository_unique_id"
                  " FROM reg_documents")[0]
        k = n.sql("SELECT source_id, submission_time, codes::text FROM reg_packages")[0]
        defines = {"npatients": NPAT, "pidoid": xds.PID_OID, "urnuuid": "urn:uuid:", "status": d[0],
                   "false": d[1][0], "mime": d[2], "classcode": d[3], "typecode": d[4], "formatcode": d[5],
                   "practicecode": d[6], "hcftcode": d[7], "confcodes": d[8], "eventcodes": d[9], "authors": d[10],
                   "refids": d[11], "ctime": d[12], "sstart": d[13], "sstop": d[14], "hash": d[15], "size": d[16],
                   "repo": d[17], "one": 1, "sskind": "SubmissionSet", "sourceid": k[0], "subtime": k[1],
                   "sscodes": k[2], "hasmember": xds.HASMEMBER, "docxml": xml["reg_documents"],
                   "ssxml": xml["reg_packages"], "extraxml": xml["reg_extra"], "assocxml": xml["reg_associations"]}
        rates, tpss = [], []
        for rnd, bodies in enumerate(rounds, 1):
            # HTTP, then the ceiling: alternating rounds, so that load from elsewhere hits both alike.
            verbose = rnd == 1
            common.pgss_reset(n)
            cpu = common.CpuMeter(n)
            with common.Perf("iti42", enabled=verbose):
                wall, res = run_http(n, bodies, cpu)
            lat = [x for r in res for x in r["lat"]]
            errors = sum(r["errors"] for r in res)
            client_cpu = sum(r["cpu"] for r in res)
            rate = N / wall
            print("round %d HTTP: %d registrations in %.2fs = %.1f/s; latency p50 %.2f ms p99 %.2f ms; errors %d;"
                  " reconnects %d" % (rnd, N, wall, rate, common.percentile(lat, 50), common.percentile(lat, 99),
                                      errors, sum(r["reconnects"] for r in res)))
            print("  client cost: %.0f us CPU per registration in the request loop (%.2f cores over the run)" % (
                client_cpu / N * 1e6, client_cpu / wall))
            print("  " + cpu.line(extra_client=client_cpu))
            if verbose:
                print("pg_stat_statements during the HTTP run:\n" + common.pgss_top(n))
            common.pgss_reset(n)
            cpu = common.CpuMeter(n).start()
            pb = common.pgbench(n, os.path.join(common.HERE, "pgbench", "register.sql"), CLIENTS, N // CLIENTS,
                                defines)
            cpu.stop()
            print("round %d pgbench: %d transactions, %.1f tx/s, latency avg %.2f ms, failed %d" % (
                rnd, pb["processed"], pb["tps"], pb["latency_ms"], pb["failed"]))
            print("  " + cpu.line())
            if verbose:
                print("pg_stat_statements during the pgbench run:\n" + common.pgss_top(n))
            if errors or pb["failed"] or pb["processed"] != (N // CLIENTS) * CLIENTS:
                raise SystemExit("errors in the run: figures not valid")
            rates.append(rate)
            tpss.append(pb["tps"])
        stored = int(n.sql("SELECT count(*) FROM reg_documents")[0][0])
        print("rows in reg_documents at the end: %d (expected %d)" % (stored, 1 + len(warm) + N * ROUNDS * 2))
        rate, tps = common.median(rates), common.median(tpss)
        ratio = rate / tps
        common.report("ITI-42 register (%d clients, %d reg.%s)" % (
                          CLIENTS, N, " x %d rounds, median" % ROUNDS if ROUNDS > 1 else ""),
                      "%.0f reg/s" % rate, "%.0f tx/s (pgbench, same SQL)" % tps, "%.1f %%" % (ratio * 100),
                      ">= 70 %", ratio >= 0.70)
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    main()
