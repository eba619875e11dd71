#!/usr/bin/env python3
"""Benchmark — Direct end to end: messages/s received over SMTP until committed, decrypted, verified, delivered to
the mailbox and their processed MDN queued.

Figure:  BENCH_DIRECT_N Direct messages (a ~100 KB C-CDA attached to a short note, dave@c.test → bob@b.test,
         signed SHA-256 and encrypted AES-128-CBC / RSA-OAEP-SHA256 by `openssl cms`, BENCH_DIRECT_DISTINCT of them
         built before timing and sent in turn) from BENCH_DIRECT_CLIENTS client processes (smtplib, one persistent
         SMTP session each). The clock stops when every message is delivered (hisp_inbound state delivered) AND has
         its MDN row queued (hisp_outbound kind mdn); the MDNs go on to an SMTP sink (c.test's route) in this
         process, so the node also signs/encrypts/sends them while it receives (time until all were sent printed).
Ceilings (measured in the same run):
         - db: pgbench (-c clients) inserting one row per transaction with the bytes of a real message of the run
           (INSERT ... SELECT raw FROM a staging table: the raw message, ~140 KB base64) — the node writes at least
           this and the ~100 KB decrypted content per message, so this is an upper bound;
         - crypto: bench/smime_bench (built in build-bench with -DHIENODE_BENCH=ON when missing): the receive
           primitives of a 100 KB message plus the MDN's RSA sign and two RSA-OAEP encryptions, times the cores.
         The ratio is taken to the lower of the ceilings.
Goal:    >= 300 messages/s.
Env: BENCH_DIRECT_N (2000; quick 200), BENCH_DIRECT_CLIENTS (4), BENCH_DIRECT_DISTINCT (40; quick 10),
     BENCH_DIRECT_DOC_KB (100), BENCH_SMIME_BIN (path of smime_bench), BENCH_PERF=1.
"""
import multiprocessing as mp
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

import common
import harness

sys.path.insert(0, os.path.join(common.SRC, "tests", "integration"))
import direct  # noqa: E402

N = common.knob("BENCH_DIRECT_N", 2000, 200)
CLIENTS = common.knob("BENCH_DIRECT_CLIENTS", 4, 4)
DISTINCT = common.knob("BENCH_DIRECT_DISTINCT", 40, 10)
DOC_KB = common.knob("BENCH_DIRECT_DOC_KB", 100, 100)
GOAL = 300.0


def ccda(i, size):
    """A C-CDA-like XML document of about size bytes (varied text, so it does not compress to nothing)."""
    head = ('<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">\n'
            '<templateId root="2.16.840.1.113883.10.20.22.1.1"/><title>Continuity of Care Document %d</title>\n'
            % i).encode()
    rows = []
    n = 0
    k = 0
    while n < size - 200:
        row = ("<entry><observation classCode=\"OBS\" moodCode=\"EVN\"><code code=\"%d-%d\" "
               "codeSystem=\"2.16.840.1.113883.6.1\"/><value xsi:type=\"PQ\" value=\"%d.%d\" unit=\"mg/dL\"/>"
               "<text>%s</text></observation></entry>\n" % (
                   1000 + k, k % 9, (k * 7919 + i) % 400, k % 10, os.urandom(12).hex())).encode()
        rows.append(row)
        n += len(row)
        k += 1
    return head + b"".join(rows) + b"</ClinicalDocument>\n"


def make_message(args):
    pki_dir, work, i = args
    import base64
    pki = direct.Pki(pki_dir)
    doc = ccda(i, DOC_KB * 1024)
    b = "bench-%d" % i
    body = ("--%s\r\nContent-Type: text/plain\r\n\r\nReferral with the patient's summary attached.\r\n"
            "--%s\r\nContent-Type: application/xml; name=\"ccda-%d.xml\"\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"ccda-%d.xml\"\r\n\r\n" % (b, b, i, i)).encode()
    body += base64.encodebytes(doc).replace(b"\n", b"\r\n") + ("--%s--\r\n" % b).encode()
    inner, mid = direct.inner_message("dave@c.test", ["bob@b.test"], "Bench referral %d" % i, body,
                                      content_type="multipart/mixed; boundary=\"%s\"" % b)
    m = direct.build(pki, work, "dave@c.test", "bob@b.test", inner=inner, message_id=mid)
    return m.raw


def client(port, msgs, start_evt, q):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test", timeout=300)
    s.ehlo()
    errors = 0
    start_evt.wait()
    t_cpu = time.process_time()
    for raw in msgs:
        try:
            refused = s.sendmail("dave@c.test", ["bob@b.test"], raw)
            if refused:
                errors += 1
        except smtplib.SMTPException as e:
            errors += 1
            if errors <= 3:
                print("send failed: %s" % e, flush=True)
    s.quit()
    q.put({"errors": errors, "cpu": time.process_time() - t_cpu})


def counts(n):
    r = n.sql("SELECT (SELECT count(*) FROM hisp_inbound WHERE state = 'delivered'),"
              " (SELECT count(*) FROM hisp_inbound WHERE state = 'quarantined'),"
              " (SELECT count(*) FROM hisp_outbound WHERE kind = 'mdn'),"
              " (SELECT count(*) FROM hisp_outbound o JOIN hisp_outbound_rcpt r ON r.outbound_id = o.id"
              "   WHERE o.kind = 'mdn' AND r.state = 'sent')")[0]
    return [int(x) for x in r]


def run_smtp(n, msgs, total, base):
    """Sends total messages (msgs in turn) from CLIENTS processes; waits until all are delivered with an MDN
    queued. Returns (seconds to delivered+queued, seconds to the last send, client results)."""
    ctx = mp.get_context("fork")
    q, start_evt = ctx.Queue(), ctx.Event()
    seq = [msgs[i % len(msgs)] for i in range(total)]
    procs = [ctx.Process(target=client, args=(direct.smtp_port(n), seq[i::CLIENTS], start_evt, q))
             for i in range(CLIENTS)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    start_evt.set()
    res = [q.get() for _ in procs]
    t_sent = time.perf_counter() - t0
    for p in procs:
        p.join()
    deadline = time.time() + max(600, total / 5)
    while True:
        c = counts(n)
        if c[0] - base[0] + c[1] - base[1] >= total and c[2] - base[2] >= c[0] - base[0]:
            break
        if time.time() > deadline:
            raise SystemExit("not done after the deadline: delivered %d quarantined %d mdn %d of %d\n%s" % (
                c[0] - base[0], c[1] - base[1], c[2] - base[2], total, n.log_tail(30)))
        time.sleep(0.2)
    t_done = time.perf_counter() - t0
    return t_done, t_sent, res, c


def smime_ceiling():
    """Crypto ceiling from bench/smime_bench (helper "smime"; built here in build-bench with -DHIENODE_BENCH=ON
    when missing): per message the receive primitives (RSA-OAEP decrypt, RSA verify, AES-CBC decrypt, SHA-256,
    base64 of a 100 KB message: its receive ceiling) plus the MDN's (RSA sign + 2 RSA-OAEP encrypt; the MDN is
    ~1 KB), on every core. Returns (msgs/s or None, text)."""
    bin_ = os.environ.get("BENCH_SMIME_BIN") or os.path.join(common.SRC, "build-bench", "smime_bench")
    if not os.path.exists(bin_) and not os.environ.get("BENCH_SMIME_BIN"):
        build = os.path.join(common.SRC, "build-bench")
        r = subprocess.run("cmake -S %s -B %s -DCMAKE_BUILD_TYPE=Release -DHIENODE_BENCH=ON && cmake --build %s -j2"
                           " --target smime_bench" % (common.SRC, build, build), shell=True, capture_output=True,
                           text=True, timeout=1200)
        if r.returncode != 0:
            return None, "smime_bench did not build: %s" % (r.stdout + r.stderr)[-600:]
    if not os.path.exists(bin_):
        return None, "smime_bench not found (%s)" % bin_
    r = subprocess.run([bin_, "1" if common.QUICK else "3"], capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    m = re.search(r"(?m)^receive \(hisp_smime_decode\)\s+([0-9.]+)\s+([0-9.]+)", out)
    p = re.search(r"rsa_sign ([0-9.]+)\s+rsa_oaep_encrypt ([0-9.]+)", out)
    if r.returncode != 0 or not m or not p:
        return None, "smime_bench gave no receive figures (rc %d): %s" % (r.returncode, out[-600:])
    decode, ceil_recv = float(m.group(1)), float(m.group(2))
    mdn_us = float(p.group(1)) + 2 * float(p.group(2))
    per_us = 1e6 / ceil_recv + mdn_us
    cores = os.cpu_count() or 1
    rate = cores * 1e6 / per_us
    return rate, ("smime_bench: receive primitives %.0f/s + MDN sign/2 encrypts %.0f us = %.0f us/msg x %d cores;"
                  " hisp_smime_decode itself %.0f/s/core" % (ceil_recv, mdn_us, per_us, cores, decode))


def db_ceiling(n, work, msgs, total):
    """pgbench inserting one real raw message per transaction (CLIENTS clients) on the node's cluster."""
    csv = os.path.join(work, "src.csv")
    with open(csv, "w") as f:
        for i, raw in enumerate(msgs):
            f.write("%d,\\x%s\n" % (i, raw.hex()))
    n.sql("CREATE TABLE bench_src (id int PRIMARY KEY, raw bytea NOT NULL);"
          " CREATE TABLE bench_blob (id bigserial PRIMARY KEY, raw bytea NOT NULL,"
          " created_at timestamptz NOT NULL DEFAULT now())")
    common.psql(n, "\\copy bench_src FROM '%s' (FORMAT csv)" % csv)
    script = os.path.join(work, "insert.sql")
    with open(script, "w") as f:
        f.write("\\set k random(0, %d)\nINSERT INTO bench_blob (raw) SELECT raw FROM bench_src WHERE id = :k;\n"
                % (len(msgs) - 1))
    per = max(1, total // CLIENTS)
    cpu = common.CpuMeter(n).start()
    pb = common.pgbench(n, script, CLIENTS, per)
    cpu.stop()
    n.sql("DROP TABLE bench_blob; DROP TABLE bench_src")
    return pb, cpu


def main():
    print("== Direct end to end: %d messages (%d distinct, ~%d KB document), %d SMTP clients, quick=%s, load %s" % (
        N, DISTINCT, DOC_KB, CLIENTS, common.QUICK, common.loadavg()), flush=True)
    work = tempfile.mkdtemp(prefix="bench-direct-", dir="/tmp")
    sink = n = None
    keep = os.environ.get("BENCH_KEEP_LOG")
    try:
        t = time.time()
        pki = direct.make_pki(work)
        with mp.get_context("fork").Pool(os.cpu_count() or 2) as pool:
            msgs = pool.map(make_message, [(pki.dir, work, i) for i in range(DISTINCT)])
        print("built %d messages with openssl cms in %.1fs: %d bytes each on average" % (
            len(msgs), time.time() - t, sum(map(len, msgs)) // len(msgs)), flush=True)
        sink = direct.SmtpSink()
        n = harness.Node("bench-direct", env=direct.node_env(
            {"HIENODE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "notice")}))
        n.start()
        direct.setup_hisp(n, pki, "b.test", [("bob@b.test", "bob")], partners=[("dave@c.test", "dave")],
                          routes={"c.test": sink.port})
        time.sleep(2.5)  # key and anchor caches

        # Warm-up (connections, caches, JIT of nothing): a few messages, not counted.
        warm = min(20, N)
        run_smtp(n, msgs, warm, counts(n))
        base = counts(n)
        cpu = common.CpuMeter(n)
        cpu.start()
        with common.Perf("direct"):
            t_done, t_sent, res, c = run_smtp(n, msgs, N, base)
        cpu.stop()
        errors = sum(r["errors"] for r in res)
        delivered, quarantined = c[0] - base[0], c[1] - base[1]
        rate = N / t_done
        print("SMTP: %d messages sent in %.2fs (%.0f/s accepted by SMTP); delivered + MDN queued after %.2fs ="
              " %.1f msg/s; errors %d, quarantined %d" % (N, t_sent, N / t_sent, t_done, rate, errors, quarantined))
        print("  " + cpu.line(extra_client=sum(r["cpu"] for r in res)))
        t1 = time.perf_counter()
        direct.wait_until(lambda: counts(n)[3] >= counts(n)[2], timeout=max(600, N / 5), interval=0.5,
                          what="all MDNs sent")
        print("  all MDNs sent %.2fs later; the sink holds %d" % (time.perf_counter() - t1, len(sink.messages)))
        if errors or quarantined or delivered != N:
            raise SystemExit("errors in the run (errors %d, quarantined %d, delivered %d of %d): figures not valid"
                             % (errors, quarantined, delivered, N))

        pb, dbcpu = db_ceiling(n, work, msgs, N)
        print("ceiling db: pgbench %d inserts of one raw message each (%d clients): %.1f tx/s, latency %.2f ms" % (
            pb["processed"], CLIENTS, pb["tps"], pb["latency_ms"]))
        print("  " + dbcpu.line())
        crypto, note = smime_ceiling()
        print("ceiling crypto: %s" % (note if crypto is None else "%.0f msg/s (%s)" % (crypto, note)))
        ceilings = [("db insert", pb["tps"])] + ([("smime_bench x cores", crypto)] if crypto else [])
        name, ceil = min(ceilings, key=lambda x: x[1])
        common.report("Direct e2e (%d clients, %d msgs of %d KB)" % (CLIENTS, N, sum(map(len, msgs)) // len(msgs)
                                                                      // 1024),
                      "%.0f msg/s" % rate, "%.0f msg/s (%s)" % (ceil, name), "%.1f %%" % (rate / ceil * 100),
                      ">= %d msg/s" % GOAL, rate >= GOAL)
        n.check_log()
    finally:
        if n:
            n.stop()
            if keep:
                shutil.copy(n.log_path, keep)
            n.cleanup()
        if sink:
            sink.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
