"""Direct receiving rules (STANDARDS.md §1 "Receiving", "Notifications") against the real node: one node is the
HISP of a.test (alice@a.test); bob@b.test (an outside HISP, played by `openssl cms` and swaks; b.test routed to an
SMTP sink) sends every row of the negative matrix. Each refused row: SMTP says 250 (the verdict comes from
processing), the message is quarantined with a reason naming the rule, nothing reaches alice's mailbox, no MDN is
queued or reaches the sink, `hienode status` shows it and /metrics counts it. Accepted rows (a good signer beside a
bad one in both orders, RSA-OAEP SHA-1 and SHA-256, PKCS#1 v1.5, AES-192/256-CBC, AES-GCM) are delivered with a
processed MDN. Also: RCPT to an unknown local address or a foreign domain → 550; a recipient without certificate →
one DSN; an MDN that never comes → exactly one timeout DSN, and a late MDN after it adds no second notice."""
import os
import re
import time

import direct
from direct import Cleanup, SmtpSink, build, make_pki, node_env, run_ok, setup_hisp, smtp_port, swaks_ok, wait_until
from harness import Node, main

ME, PEER = "alice@a.test", "bob@b.test"


class Ctx:
    """One node for the whole file (set up by the first test that needs it, stopped at the end)."""
    c = None
    error = None

    @classmethod
    def get(cls):
        if cls.error is not None:
            raise AssertionError("the shared node could not be set up: %s" % cls.error)
        if cls.c is None:
            c = Cleanup()
            try:
                cls.work = c.tmpdir()
                cls.pki = make_pki(cls.work, serve=True)  # CRL distribution points served (revoked signer)
                c.add(cls.pki)
                cls.sink = c.add(SmtpSink())
                cls.dns = c.add(direct.DnsStub())  # knows no name: discovery finds nothing, at once
                cls.node = c.add(Node("direct-neg", env=node_env({"HIENODE_DIRECT_MDN_TIMEOUT": "3s"}, dns=cls.dns)))
                cls.node.start()
                setup_hisp(cls.node, cls.pki, "a.test", [(ME, "alice")], partners=[(PEER, "bob")],
                           routes={"b.test": cls.sink.port})
                time.sleep(2.5)  # key and anchor caches look for changed rows at most every 2 s
            except BaseException as e:
                cls.error = e
                c.__exit__(None, None, None)
                raise
            cls.c = c
            cls.quarantined = []   # message ids refused
            cls.accepted = []      # message ids delivered (an MDN each)
        return cls

    @classmethod
    def close(cls):
        if cls.c is not None:
            try:
                cls.node.check_log()
            finally:
                cls.c.__exit__(None, None, None)
                cls.c = None


def detail(x):
    return lambda: "inbound: %r\noutbound: %r\n%s" % (direct.inbound(x.node), direct.outbound(x.node),
                                                     x.node.log_tail(40))


def send(x, m, mail_from=PEER, rcpts=(ME,)):
    swaks_ok(smtp_port(x.node), mail_from, list(rcpts), m.raw, x.work)
    n = len(direct.inbound(x.node))

    def done():
        rows = direct.inbound(x.node)
        return rows[-1] if len(rows) >= n and rows[-1]["state"] != "received" else None
    return wait_until(done, what="the message processed", detail=detail(x))


def mdns_queued_for(x, message_id):
    """MDNs the node queued that name message_id (hisp_outbound kind mdn, plain text before signing)."""
    return x.node.sql("SELECT id FROM hisp_outbound WHERE kind = 'mdn' AND position(%s in"
                      " convert_from(raw, 'UTF8')) > 0" % direct.q(message_id))


def expect_quarantine(x, m, rule, **kw):
    """rule: regex the reason must match."""
    row = send(x, m, **kw)
    print("  inbound %d: %s, reason %r" % (row["id"], row["state"], row["reason"]))
    assert row["state"] == "quarantined", row
    assert re.search(rule, row["reason"], re.I), "reason %r does not name the rule /%s/" % (row["reason"], rule)
    assert not [i for i in direct.mailbox(x.node, ME) if i["message_id"] == m.message_id], direct.mailbox(x.node, ME)
    assert mdns_queued_for(x, m.message_id) == [], "an MDN was queued for a quarantined message"
    x.quarantined.append(m.message_id)
    status = run_ok(x.node, "status")
    assert re.search(r"(?i)quarantin", status), status
    assert row["reason"] in status or m.message_id in status or ("%d" % row["id"]) in status, \
        "status does not show the quarantined message %d (%s):\n%s" % (row["id"], row["reason"], status)
    text = direct.metrics(x.node)
    q = direct.metric_sum(text, r'^hienode_direct_messages\{(?=.*what="inbound")(?=.*state="quarantined")')
    if q is None:
        q = direct.metric_sum(text, r"(?i)quarantin")
    assert q is not None, "no quarantine count on /metrics:\n%s" % text[-2000:]
    in_db = int(x.node.sql("SELECT count(*) FROM hisp_inbound WHERE state = 'quarantined'")[0][0])
    assert q == in_db and in_db >= len(x.quarantined), (q, in_db, len(x.quarantined))
    return row


def expect_accepted(x, m, **kw):
    row = send(x, m, **kw)
    assert row["state"] == "delivered", row
    items = [i for i in direct.mailbox(x.node, ME) if i["message_id"] == m.message_id]
    assert len(items) == 1 and items[0]["kind"] == "message", items
    assert direct.mailbox_get(x.node, ME, items[0]["id"]) == m.inner
    x.accepted.append(m.message_id)

    def mdn_at_sink():
        for s, content in opened(x):
            if m.message_id.encode() in content and re.search(rb"(?i)disposition:[^\r\n]*processed", content):
                return s
        return None
    s = wait_until(mdn_at_sink, what="the processed MDN at the sink", detail=detail(x))
    assert s["mail_from"].lower() in (ME, "") and s["rcpts"] == [PEER], s
    return row


def opened(x):
    """The sink's messages with their content decrypted by bob's key and verified (each opened once)."""
    if not hasattr(x, "opened_cache"):
        x.opened_cache = []
    cache = x.opened_cache
    snap = x.sink.snapshot()
    for s in snap[len(cache):]:
        cache.append((s, direct.open_direct(x.pki, x.work, s["data"], "bob")[1]))
    return list(cache)


def msg(x, **kw):
    frm = kw.pop("frm", PEER)
    to = kw.pop("to", ME)
    return build(x.pki, x.work, frm, to, **kw)


# --- refused rows ------------------------------------------------------------------------------------------

def test_3des():
    x = Ctx.get()
    expect_quarantine(x, msg(x, cipher="des3"), r"cipher.*(des|ede).*not allowed")


def test_digest_sha1():
    x = Ctx.get()
    expect_quarantine(x, msg(x, md="sha1"), r"sha-?1")


def test_digest_md5():
    x = Ctx.get()
    expect_quarantine(x, msg(x, md="md5"), r"md5")


def test_signer_rsa1024():
    x = Ctx.get()
    expect_quarantine(x, msg(x, signers=["bob-rsa1024"]), r"1024|rsa|key size|bits")


def test_signer_expired():
    x = Ctx.get()
    expect_quarantine(x, msg(x, signers=["bob-expired"]), r"expired|validity|not valid")


def test_signer_untrusted():
    x = Ctx.get()
    expect_quarantine(x, msg(x, signers=["bob-untrusted"]), r"trust|anchor|chain|issuer")


def test_signer_revoked():
    x = Ctx.get()
    hits = len(x.pki.web.hits)
    expect_quarantine(x, msg(x, signers=["bob-revoked"]), r"revoked")
    assert any(h.endswith("/ca.crl") for h in x.pki.web.hits[hits:]) or \
        x.node.sql("SELECT count(*) FROM hisp_crl_cache")[0][0] != "0", x.pki.web.hits


def test_signer_sha1_certificate():
    x = Ctx.get()
    expect_quarantine(x, msg(x, signers=["bob-sha1"]), r"sha-?1")


def test_tampered():
    x = Ctx.get()
    expect_quarantine(x, msg(x, tamper=True), r"signature|verif|digest")


def test_unsigned():
    x = Ctx.get()
    expect_quarantine(x, msg(x, signed=False), r"not signed|unsigned|signed")


def test_signed_not_encrypted():
    x = Ctx.get()
    expect_quarantine(x, msg(x, encrypted=False), r"not encrypted|unencrypted|encrypt")


def test_wrong_binding_certificate():
    """bob@b.test signing with a certificate for mallory@b.test."""
    x = Ctx.get()
    expect_quarantine(x, msg(x, signers=["bob-wrongaddr"]), r"bound|binding|address|sender")


def test_wrong_binding_other_sender():
    """From dave@c.test signed with bob's (valid, trusted) certificate."""
    x = Ctx.get()
    expect_quarantine(x, msg(x, frm="dave@c.test", signers=["bob"]), r"bound|binding|address|sender",
                      mail_from="dave@c.test")


def test_binding_subject_dn_only():
    """The subject DN e-mail field does not bind (no subjectAltName)."""
    x = Ctx.get()
    expect_quarantine(x, msg(x, signers=["bob-dnonly"]), r"bound|binding|address|sender|subjectaltname")


def test_rcpt_not_in_to_cc():
    """RCPT TO alice, while the message's To names another a.test address (encrypted to alice)."""
    x = Ctx.get()
    expect_quarantine(x, msg(x, to="carol@a.test", recips=["alice"]), r"rcpt|recipient|to/cc|not in")


def test_bcc_header():
    x = Ctx.get()
    expect_quarantine(x, msg(x, bcc=["eve@a.test"]), r"bcc")


def test_mdn_to_local_user():
    """An MDN (for a message we never sent) addressed to alice: no MDN back, nothing quarantined for content."""
    x = Ctx.get()
    inner, mid = direct.mdn_message(PEER, ME, "never-sent-%d@a.test" % os.getpid())
    m = build(x.pki, x.work, PEER, ME, inner=inner, message_id=mid)
    before = [r for r in direct.outbound(x.node) if r["kind"] == "mdn"]
    row = send(x, m)
    assert row["state"] in ("notice", "delivered"), row
    assert mdns_queued_for(x, mid) == [], "an MDN was queued for an MDN"
    assert [r for r in direct.outbound(x.node) if r["kind"] == "mdn"] == before, direct.outbound(x.node)
    print("  MDN to a local user: state %s reason %r" % (row["state"], row["reason"]))


# --- accepted rows -----------------------------------------------------------------------------------------

def test_good_and_bad_signer():
    x = Ctx.get()
    expect_accepted(x, msg(x, signers=["bob", "bob-untrusted"]))
    expect_accepted(x, msg(x, signers=["bob-untrusted", "bob"]))


def test_key_transports():
    x = Ctx.get()
    for kt in ("oaep-sha1", "oaep-sha256", "pkcs1"):
        expect_accepted(x, msg(x, kt=kt, subject="key transport %s" % kt))


def test_ciphers():
    x = Ctx.get()
    for cipher in ("aes192", "aes256", "aes128-gcm", "aes256-gcm"):
        expect_accepted(x, msg(x, cipher=cipher, subject="cipher %s" % cipher))


def test_sink_saw_only_accepted_mdns():
    """Every MDN that reached the sink is for an accepted message, one each."""
    x = Ctx.get()
    wait_until(lambda: all(r["state"] == "sent" for r in direct.outbound(x.node) if r["kind"] == "mdn"),
               what="queued MDNs sent", detail=detail(x))
    seen = []
    for s, content in opened(x):
        mm = re.search(rb"(?im)^Original-Message-ID:\s*<?([^>\r\n]+)>?", content)
        if mm:
            seen.append(mm.group(1).decode())
    for q in x.quarantined:
        assert q not in seen, "an MDN for quarantined %s reached the sink" % q
    assert sorted(seen) == sorted(x.accepted), (seen, x.accepted)


# --- SMTP, discovery, timeout ------------------------------------------------------------------------------

def test_rcpt_unknown_local_address():
    x = Ctx.get()
    m = msg(x, to="nosuchuser@a.test", recips=["alice"])
    r = direct.smtp_send(smtp_port(x.node), PEER, ["nosuchuser@a.test"], m.raw)
    assert r["rcpt"]["nosuchuser@a.test"] == 550 and r["data"] is None, r
    r = direct.smtp_send(smtp_port(x.node), PEER, ["someone@elsewhere.test"], m.raw)
    assert r["rcpt"]["someone@elsewhere.test"] >= 550, r
    # Mixed: the known one is accepted, the unknown refused, the message stored for the known one only.
    m2 = msg(x)
    before = len(direct.inbound(x.node))
    r = direct.smtp_send(smtp_port(x.node), PEER, [ME, "nosuchuser@a.test"], m2.raw)
    assert r["rcpt"] == {ME: 250, "nosuchuser@a.test": 550} and r["data"] == 250, r
    rows = wait_until(lambda: len(direct.inbound(x.node)) > before and direct.inbound(x.node), detail=detail(x))
    assert rows[-1]["rcpts"] == [ME], rows[-1]
    x.accepted.append(m2.message_id)
    wait_until(lambda: direct.inbound(x.node)[-1]["state"] == "delivered", what="mixed-RCPT message delivered",
               detail=detail(x))


def test_recipient_without_certificate():
    """nobody@c.test: no certificate anywhere (imported none; DNS answers NXDOMAIN for every CERT, SRV and MX
    name) → the recipient fails at once with one DSN to alice."""
    x = Ctx.get()
    bodyf = os.path.join(x.work, "nocert.txt")
    with open(bodyf, "w") as f:
        f.write("no certificate for you\n")
    before_sink = len(x.sink.snapshot())
    out = run_ok(x.node, "send", "--from", ME, "--to", "nobody@c.test", "--subject", "no cert", "--body", bodyf)
    mid = out.strip().splitlines()[-1].strip().strip("<>")
    rc = wait_until(lambda: [r for r in direct.outbound(x.node) if r["message_id"] == mid and r["state"] == "failed"],
                    what="nobody@c.test failed", detail=detail(x))
    assert rc[0]["address"] == "nobody@c.test", rc
    dsns = wait_until(lambda: [i for i in direct.mailbox(x.node, ME, "dsn")
                               if mid.encode() in direct.mailbox_get(x.node, ME, i["id"])],
                      what="a DSN for %s in alice's mailbox" % mid, detail=detail(x))
    assert len(dsns) == 1, dsns
    assert not [s for s in x.sink.snapshot()[before_sink:] if "nobody@c.test" in s["rcpts"]]
    assert any(name.endswith("c.test") for name, _ in x.dns.queries), x.dns.queries
    assert "MDN timeout" not in rc[0]["reason"], rc  # failed for want of a certificate, not by the deadline
    x.nocert_mid = mid


def notices_for(x, mid):
    return [i for i in direct.mailbox(x.node, ME) if i["kind"] in ("mdn", "dsn")
            and mid.encode() in direct.mailbox_get(x.node, ME, i["id"])]


def test_mdn_timeout_and_late_mdn():
    """mdn_timeout 3s, the sink never answers: exactly one timeout DSN; a late processed MDN adds nothing."""
    x = Ctx.get()
    bodyf = os.path.join(x.work, "timeout.txt")
    with open(bodyf, "w") as f:
        f.write("nobody will answer\n")
    out = run_ok(x.node, "send", "--from", ME, "--to", PEER, "--subject", "will time out", "--body", bodyf)
    mid = out.strip().splitlines()[-1].strip().strip("<>")
    wait_until(lambda: [r for r in direct.outbound(x.node) if r["message_id"] == mid and r["state"] != "pending"],
               what="the message handed to the sink", detail=detail(x))
    rc = wait_until(lambda: [r for r in direct.outbound(x.node) if r["message_id"] == mid and r["state"] == "timeout"],
                    what="the recipient timed out", detail=detail(x))
    assert rc[0]["notified"], rc
    dsn = wait_until(lambda: notices_for(x, mid), what="the timeout DSN", detail=detail(x))
    assert len(dsn) == 1 and dsn[0]["kind"] == "dsn", dsn
    # The late MDN: processed, from bob, for mid.
    inner, nmid = direct.mdn_message(PEER, ME, mid)
    late = build(x.pki, x.work, PEER, ME, inner=inner, message_id=nmid)
    row = send(x, late)
    assert row["state"] in ("notice", "delivered"), row
    assert mdns_queued_for(x, nmid) == [], "an MDN was queued for an MDN"
    assert len(notices_for(x, mid)) == 1, notices_for(x, mid)
    assert [r["state"] for r in direct.outbound(x.node) if r["message_id"] == mid] == ["timeout"]
    # The message without certificate (failed at once) got no second notice from its own timeout either.
    if getattr(x, "nocert_mid", None):
        assert len(notices_for(x, x.nocert_mid)) == 1, notices_for(x, x.nocert_mid)


if __name__ == "__main__":
    try:
        main([test_3des, test_digest_sha1, test_digest_md5, test_signer_rsa1024, test_signer_expired,
              test_signer_untrusted, test_signer_revoked, test_signer_sha1_certificate, test_tampered,
              test_unsigned, test_signed_not_encrypted, test_wrong_binding_certificate,
              test_wrong_binding_other_sender, test_binding_subject_dn_only, test_rcpt_not_in_to_cc,
              test_bcc_header, test_mdn_to_local_user, test_good_and_bad_signer, test_key_transports,
              test_ciphers, test_rcpt_unknown_local_address, test_recipient_without_certificate,
              test_mdn_timeout_and_late_mdn, test_sink_saw_only_accepted_mdns])
    finally:
        Ctx.close()
