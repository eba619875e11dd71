"""Mailbox API benchmark (issue 5): how fast an EHR pulls its messages over HTTPS.

A node with HTTPS (certs/make-demo-certs.sh), one edge user, BENCH_EDGE_MSGS messages in its mailbox, each a
plain Direct message with a text body and the 78 KB C-CDA of the NIST testkit attached (base64). 2 client
processes on persistent HTTPS connections with Basic auth:

- figure:  GET /edge/v1/messages/ID — the message as JSON: headers, parts split and decoded, the C-CDA in base64
- ceiling: GET /edge/v1/messages/ID/raw of the same items, same clients, same run — the same authentication,
           database read and TLS, without the MIME split and the JSON (what the API adds is what is measured)
- also:    GET /edge/v1/messages?address=… (a list of 100) and /healthz requests/s, for reference.

Sizes: BENCH_EDGE_MSGS (default 200, quick 40), BENCH_EDGE_ROUNDS (fetches per client, default 600, quick 100).
"""
import base64
import http.client
import multiprocessing as mp
import os
import ssl
import subprocess
import sys
import tempfile
import time

import common

MSGS = common.knob("BENCH_EDGE_MSGS", 200, 40)
ROUNDS = common.knob("BENCH_EDGE_ROUNDS", 600, 100)
CLIENTS = 2
PASSWORD = "bench password 0123456789"
CDA = os.path.join(os.path.dirname(common.SRC), "shared", "corpus", "nist-toolkit", "toolkitx", "testkit",
                   "testdata-xdr", "CCDA_Ambulatory_full_metadata", "CCDA_Ambulatory.xml")


def message(i, cda):
    att = base64.encodebytes(cda).replace(b"\n", b"\r\n")
    return (("From: alice@a.test\r\nTo: bob@b.test\r\nSubject: Referral %d\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
             "Message-ID: <bench-%d@a.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
             "--b1\r\nContent-Type: text/plain\r\n\r\nPlease see the referral.\r\n--b1\r\nContent-Type: application/xml;"
             " name=referral.xml\r\nContent-Disposition: attachment; filename=referral.xml\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n" % (i, i)).encode() + att + b"\r\n--b1--\r\n")


def client(port, ca, paths, rounds, q):
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=ctx)
    auth = "Basic " + base64.b64encode(("bob@b.test:" + PASSWORD).encode()).decode()
    nbytes = 0
    t0 = time.monotonic()
    for i in range(rounds):
        conn.request("GET", paths[i % len(paths)], headers={"Authorization": auth})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            q.put(("error", r.status, body[:200]))
            return
        nbytes += len(body)
    q.put(("ok", time.monotonic() - t0, nbytes))


def phase(port, ca, paths, rounds):
    q = mp.Queue()
    ps = [mp.Process(target=client, args=(port, ca, paths[k::CLIENTS] or paths, rounds, q)) for k in range(CLIENTS)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    wall = time.monotonic() - t0
    bad = [r for r in res if r[0] != "ok"]
    if bad:
        raise SystemExit("edge_api: request failed: %r" % (bad[0],))
    return CLIENTS * rounds / wall, sum(r[2] for r in res) / wall / 1e6


def main():
    with open(CDA, "rb") as f:
        cda = f.read()
    tls = tempfile.mkdtemp(prefix="bench-tls-", dir="/tmp")
    subprocess.run([os.path.join(common.SRC, "certs", "make-demo-certs.sh"), tls, "localhost"], check=True,
                   capture_output=True)
    n = common.harness.Node("bench-edge", env={
        "HIENODE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "notice"),
        "HIENODE_HTTP_TLS_CERT": os.path.join(tls, "server.pem"),
        "HIENODE_HTTP_TLS_KEY": os.path.join(tls, "server.key")})
    ca = os.path.join(tls, "ca.pem")
    try:
        n.start()
        for args in (["domain", "add", "b.test"], ["domain", "address", "add", "bob@b.test"]):
            r = n.run(*args)
            assert r.returncode == 0, r.stderr
        r = subprocess.run(n.argv("user", "add", "bob@b.test"), env=n.env, input=PASSWORD + "\n",
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        # The mailbox, written directly (what the receive job stores: the decrypted message).
        sql = os.path.join(n.dir, "mailbox.sql")
        with open(sql, "w") as f:
            f.write("COPY hisp_mailbox (address, kind, message_id, content) FROM STDIN;\n")
            for i in range(MSGS):
                f.write("bob@b.test\tmessage\tbench-%d@a.test\t\\\\x%s\n" % (i, message(i, cda).hex()))
            f.write("\\.\n")
        common.psql(n, file=sql)
        ids = [int(x[0]) for x in n.sql("SELECT id FROM hisp_mailbox ORDER BY id")]
        size = len(message(0, cda))
        print("== edge_api: %d messages of %d bytes in bob's mailbox, %d clients x %d requests" % (
            MSGS, size, CLIENTS, ROUNDS), flush=True)
        phase(n.http_port, ca, ["/edge/v1/messages/%d" % i for i in ids], 20)  # warm-up (and credentials cache)
        fetch, fetch_mb = phase(n.http_port, ca, ["/edge/v1/messages/%d" % i for i in ids], ROUNDS)
        raw, raw_mb = phase(n.http_port, ca, ["/edge/v1/messages/%d/raw" % i for i in ids], ROUNDS)
        lst, _ = phase(n.http_port, ca, ["/edge/v1/messages?address=bob@b.test&all=1"], max(ROUNDS // 4, 20))
        health, _ = phase(n.http_port, ca, ["/healthz"], ROUNDS)
        print("fetch (JSON, parts decoded, base64): %.0f/s (%.1f MB/s out)" % (fetch, fetch_mb))
        print("raw (same items, no JSON):           %.0f/s (%.1f MB/s out)" % (raw, raw_mb))
        print("list of 100:                         %.0f/s" % lst)
        print("/healthz over the same TLS:          %.0f/s" % health)
        ratio = fetch / raw
        common.report("mailbox API fetch, 2 HTTPS clients, %d KB message with a C-CDA" % (size // 1024),
                      "%.0f msg/s" % fetch, "%.0f/s raw fetch of the same items" % raw, "%.1f %%" % (100 * ratio),
                      "≥ 50 %", ratio >= 0.5, "list %.0f/s, healthz %.0f/s" % (lst, health))
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    sys.exit(main())
