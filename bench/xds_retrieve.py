#!/usr/bin/env python3
"""Benchmark 3 — ITI-43 Retrieve Document Set throughput of one 1 MB document against the bare SELECT.

Setup:   one document of BENCH_RET_SIZE bytes (1 MiB, random bytes: incompressible, like a PDF) provided once with
         ITI-41 as MTOM on /xds/repository; if this build does not answer ITI-41, the row is inserted straight into
         repo_documents (printed).
Figure:  ITI-43 (plain SOAP 1.2 request; MTOM reply) for that document, BENCH_RET_N retrieves in all, from 1 and from
         2 client processes on persistent connections: retrieves/s and MB/s (1 MB = 10^6 bytes of document).
         The first reply is checked byte for byte; every reply must carry a body at least the document's size.
Ceiling: `SELECT content FROM repo_documents WHERE unique_id = ...` for the same bytes in binary, as
         `COPY (SELECT ...) TO STDOUT (FORMAT binary)` through psql into /dev/null, same count, 1 and 2 psql
         sessions (pgbench cannot ask for binary results; text output would hex-encode 2 MB per retrieve).
Goal:    figure >= 50 % of the ceiling.
Env: BENCH_RET_N (2000; quick 300), BENCH_RET_SIZE (1048576), BENCH_ROUNDS (5; quick 1: ceiling and HTTP
     alternate, the medians are compared), BENCH_PERF=1.
"""
import hashlib
import http.client
import multiprocessing as mp
import os
import re
import subprocess
import tempfile
import time
import uuid

import common
from common import xds

N = common.knob("BENCH_RET_N", 2000, 300)
SIZE = common.knob("BENCH_RET_SIZE", 1048576, 1048576)
ROUNDS = common.knob("BENCH_ROUNDS", 5, 1)
REPO = "1.3.6.1.4.1.21367.13.20.1000.1"  # [repository] unique_id default
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
XDSB = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
PATIENT = xds.pid("BENCH-RET")


def mtom(envelope, parts, action):
    """(body, content-type) of an MTOM/XOP package: root part the envelope, then (cid, bytes) parts."""
    boundary = "MIMEBoundary_" + uuid.uuid4().hex
    out = [("--%s\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
            "Content-Transfer-Encoding: binary\r\nContent-ID: <root.message@bench>\r\n\r\n" % boundary).encode(),
           envelope.encode()]
    for cid, data in parts:
        out.append(("\r\n--%s\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
                    "Content-ID: <%s>\r\n\r\n" % (boundary, cid)).encode())
        out.append(data)
    out.append(("\r\n--%s--\r\n" % boundary).encode())
    ctype = ('multipart/related; boundary="%s"; type="application/xop+xml"; start="<root.message@bench>";'
             ' start-info="application/soap+xml"; action="%s"' % (boundary, action))
    return b"".join(out), ctype


def provide(n, uid, content):
    """ITI-41 with the document as an MTOM part; True when the repository stored it."""
    sub = xds.submission(PATIENT, [("Document01", uid, content, {"mime": "application/pdf", "with_hash": False})])
    body = ('<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb="%s">%s<xdsb:Document id="Document01">'
            '<xop:Include xmlns:xop="%s" href="cid:doc1@bench"/></xdsb:Document>'
            '</xdsb:ProvideAndRegisterDocumentSetRequest>' % (XDSB, sub, XOP))
    data, ctype = mtom(xds.soap(ITI41, body, to="http://localhost/xds/repository"), [("doc1@bench", content)], ITI41)
    conn = http.client.HTTPConnection("127.0.0.1", n.http_port, timeout=120)
    conn.request("POST", "/xds/repository", body=data, headers={"Content-Type": ctype})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    if r.status == 200 and b"ResponseStatusType:Success" in raw:
        return True
    print("ITI-41 not available (HTTP %d): %s" % (r.status, raw[:300]))
    return False


def request(uid):
    body = ('<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="%s"><xdsb:DocumentRequest>'
            '<xdsb:RepositoryUniqueId>%s</xdsb:RepositoryUniqueId><xdsb:DocumentUniqueId>%s</xdsb:DocumentUniqueId>'
            '</xdsb:DocumentRequest></xdsb:RetrieveDocumentSetRequest>' % (XDSB, REPO, uid))
    return xds.soap(ITI43, body, to="http://localhost/xds/repository").encode()


HEADERS = {"Content-Type": 'application/soap+xml; charset=UTF-8; action="%s"' % ITI43}


def check_reply(status, headers, data, content):
    """None when the MTOM reply carries exactly `content` as its document part, else the reason."""
    ctype = headers.get("content-type", "")
    if status != 200 or "multipart/related" not in ctype or b"ResponseStatusType:Success" not in data:
        return "HTTP %d %s: %s" % (status, ctype, data[:400])
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    for part in data.split(b"--" + m.group(1).encode()):
        head, _, payload = part.partition(b"\r\n\r\n")
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        if len(payload) == len(content):
            return None if payload == content else "document part differs"
    return "no part of %d bytes in the reply" % len(content)


def worker(port, count, body, size, start_evt, q):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    bad, nbytes = 0, 0
    start_evt.wait()
    t_cpu = time.process_time()
    for _ in range(count):
        conn.request("POST", "/xds/repository", body=body, headers=HEADERS)
        r = conn.getresponse()
        data = r.read()
        nbytes += len(data)
        if r.status != 200 or len(data) < size:
            bad += 1
    q.put({"bad": bad, "bytes": nbytes, "cpu": time.process_time() - t_cpu})
    conn.close()


def run_http(n, clients, body, meter=None):
    ctx = mp.get_context("fork")
    q, start_evt = ctx.Queue(), ctx.Event()
    counts = [N // clients + (1 if i < N % clients else 0) for i in range(clients)]
    procs = [ctx.Process(target=worker, args=(n.http_port, c, body, SIZE, start_evt, q)) for c in counts]
    for p in procs:
        p.start()
    time.sleep(0.5)
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


BARE = "SELECT content FROM repo_documents WHERE unique_id = '%s'"
# The statement registry_repository_retrieve.c runs (fetch()), with the request's values: printed for comparison.
NODE_SQL = ("SELECT unique_id, mime_type, size::text, CASE WHEN total <= 134217728 THEN content END FROM"
            " (SELECT unique_id, mime_type, size, content, sum(size) OVER (ORDER BY unique_id COLLATE \"C\") AS total"
            " FROM repo_documents WHERE unique_id = ANY('{%s}'::text[]) AND repository_unique_id = '" + REPO + "') d"
            " ORDER BY unique_id COLLATE \"C\"")


def run_sql(n, clients, uid, query=BARE):
    """Wall seconds for N binary COPYs of the query's result split over `clients` psql sessions."""
    stmt = "COPY (%s) TO STDOUT (FORMAT binary);\n" % (query % uid)
    files, procs = [], []
    for i in range(clients):
        count = N // clients + (1 if i < N % clients else 0)
        f = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
        f.write("\\o /dev/null\n" + stmt * count)
        f.close()
        files.append(f.name)
    argv = [common.PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1"] + common.pg_args(n)
    t0 = time.perf_counter()
    for f in files:
        procs.append(subprocess.Popen(argv + ["-f", f], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    for f in files:
        os.unlink(f)
    if any(p.returncode for p in procs):
        raise RuntimeError("psql COPY failed: %s" % errs)
    return wall


def main():
    print("== ITI-43 retrieve throughput: %d retrieves of %d bytes, quick=%s, load %s"
          % (N, SIZE, common.QUICK, common.loadavg()), flush=True)
    n = common.node("bench-retrieve")
    try:
        n.sql("INSERT INTO patients (oid, id) VALUES ('%s', 'BENCH-RET')" % xds.PID_OID)
        content = os.urandom(SIZE)
        uid = "1.2.840.99999.43.%d" % int(time.time())
        how = "ITI-41 (MTOM)"
        if not provide(n, uid, content):
            how = "direct INSERT into repo_documents (ITI-41 not available)"
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
                f.write("INSERT INTO repo_documents (unique_id, repository_unique_id, mime_type, hash, size, content)"
                        " VALUES ('%s', '%s', 'application/pdf', '%s', %d, decode('%s', 'hex'));\n"
                        % (uid, REPO, hashlib.sha1(content).hexdigest(), SIZE, content.hex()))
            try:
                common.psql(n, file=f.name)
            finally:
                os.unlink(f.name)
        stored = n.sql("SELECT size, octet_length(content), pg_column_size(content) FROM repo_documents"
                       " WHERE unique_id = '%s'" % uid)[0]
        print("document provided by %s; size %s, stored %s bytes (on disk %s)" % (how, *stored))
        body = request(uid)
        c = http.client.HTTPConnection("127.0.0.1", n.http_port, timeout=60)
        c.request("POST", "/xds/repository", body=body, headers=HEADERS)
        r = c.getresponse()
        data = r.read()
        why = check_reply(r.status, dict((k.lower(), v) for k, v in r.getheaders()), data, content)
        c.close()
        if why:
            print("ITI-43 not usable: %s" % why)
        else:
            print("ITI-43 reply: %d bytes for a %d-byte document (%s)" % (
                len(data), SIZE, r.getheader("Transfer-Encoding") or "Content-Length"))
        run_sql(n, 1, uid, NODE_SQL)
        cpu = common.CpuMeter(n).start()
        wall_node_sql = run_sql(n, 1, uid, NODE_SQL)
        cpu.stop()
        print("for comparison, the node's own retrieve statement (window sum over sizes) as binary COPY, 1 session:"
              " %.0f/s, %.0f MB/s; %s" % (N / wall_node_sql, N / wall_node_sql * SIZE / 1e6, cpu.line()))
        for clients in (1, 2):
            label = "ITI-43 retrieve 1 MB (%d client%s%s)" % (clients, "s" if clients > 1 else "",
                                                            ", median of %d" % ROUNDS if ROUNDS > 1 else "")
            run_sql(n, clients, uid)  # warm: the document's TOAST pages in shared buffers / page cache
            if not why:
                run_http(n, clients, body)
            ceils, figs = [], []
            for rnd in range(1, ROUNDS + 1):
                # The ceiling, then HTTP: alternating rounds, so that load from elsewhere hits both alike.
                cpu = common.CpuMeter(n).start()
                wall_sql = run_sql(n, clients, uid)
                cpu.stop()
                ceils.append(N / wall_sql)
                print("round %d SQL ceiling, %d session(s): %d COPYs in %.2fs = %.0f/s, %.0f MB/s; %s" % (
                    rnd, clients, N, wall_sql, N / wall_sql, N / wall_sql * SIZE / 1e6, cpu.line()))
                if why:
                    continue
                common.pgss_reset(n)
                cpu = common.CpuMeter(n)
                with common.Perf("iti43-%d" % clients, enabled=rnd == 1):
                    wall, res = run_http(n, clients, body, cpu)
                bad = sum(x["bad"] for x in res)
                ccpu = sum(x["cpu"] for x in res)
                figs.append(N / wall)
                print("round %d HTTP, %d client(s): %d retrieves in %.2fs = %.0f/s, %.0f MB/s of document (%.0f MB/s"
                      " on the wire); bad replies %d; client %.2f ms CPU per retrieve" % (
                          rnd, clients, N, wall, N / wall, N / wall * SIZE / 1e6,
                          sum(x["bytes"] for x in res) / wall / 1e6, bad, ccpu / N * 1e3))
                print("  " + cpu.line(extra_client=ccpu))
                if rnd == 1:
                    print("pg_stat_statements during the HTTP run:\n" + common.pgss_top(n, 3))
                if bad:
                    raise SystemExit("bad replies: figures not valid")
            ceil_rps = common.median(ceils)
            ceiling = "%.0f MB/s, %.0f/s (binary COPY)" % (ceil_rps * SIZE / 1e6, ceil_rps)
            if why:
                common.report(label, "not available (ITI-43 not in this build)", ceiling, "-", ">= 50 %", None)
                continue
            rps = common.median(figs)
            ratio = rps / ceil_rps
            common.report(label, "%.0f MB/s, %.0f/s" % (rps * SIZE / 1e6, rps), ceiling,
                          "%.1f %%" % (ratio * 100), ">= 50 %", ratio >= 0.5)
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    main()
