"""The Direct edge end to end (issue 5, "How it is judged"): a referral goes from a practice's mail client (swaks:
STARTTLS + AUTH on the submission port) through hienode A to hienode B, lands in an EHR through the mailbox API
(the real curl command over HTTPS) or through XDR forwarding, the dispatched MDN returns to the practice, and the
same document is findable by an XDS FindDocuments at B and retrieved with identical bytes (push-to-pull bridge).
Also: an XDR submission built from the NIST testkit becomes a Direct message whose XDM `openssl cms` decrypts and
`unzip` lists; the edge's refusals (AUTH before STARTTLS, wrong password, sending as an address not granted, XDR
with a missing document, XDM with bad XHTML)."""
import base64
import http.server
import io
import json
import os
import re
import smtplib
import ssl
import subprocess
import threading
import time
import zipfile

import direct
import edge
from direct import Cleanup, SmtpSink, make_pki, node_env, run_ok, setup_hisp, smtp_port, wait_until
from harness import Node, main

CDA = os.path.join(edge.XDR_DATA, "CCDA_Ambulatory_full_metadata", "CCDA_Ambulatory.xml")


def settle():
    """The key and anchor caches of a running node look for changed rows at most every 2 s."""
    time.sleep(2.5)


def two_nodes(c, work, pki, tls, b_env=None):
    """A = a.test (alice, the practice: submission with STARTTLS), B = b.test (bob, the EHR's address: HTTPS for
    the mailbox API and XDS). Each routes the other's domain to it."""
    env = {"HIENODE_DIRECT_SMTP_TLS": "none"}
    a = c.add(Node("edge-a", env=node_env(dict(env, **edge.submission_env(tls), **edge.https_env(tls)))))
    b = c.add(Node("edge-b", env=node_env(dict(env, **edge.https_env(tls), **(b_env or {})))))
    a.tls_ca = b.tls_ca = tls["ca"]
    a.start()
    b.start()
    setup_hisp(a, pki, "a.test", [("alice@a.test", "alice")], partners=[("bob@b.test", "bob")],
               routes={"b.test": smtp_port(b)})
    setup_hisp(b, pki, "b.test", [("bob@b.test", "bob")], partners=[("alice@a.test", "alice")],
               routes={"a.test": smtp_port(a)})
    edge.user_add(a, "alice@a.test")
    edge.user_add(b, "bob@b.test")
    return a, b


def submit_referral(a, subject="Referral"):
    """The practice's mail client: swaks STARTTLS + AUTH LOGIN, a referral with the C-CDA attached."""
    rc, t = edge.swaks_submit(a, "alice@a.test", edge.PASSWORD, "alice@a.test", "bob@b.test", subject=subject,
                              attach=CDA)
    r = edge.replies(t)
    assert rc == 0 and any(x.startswith("235") for x in r) and re.match(r"250", r[-2] if len(r) > 1 else ""), \
        "submission: rc %d\n%s" % (rc, "\n".join(r[-12:]))
    rows = wait_until(lambda: [x for x in direct.outbound(a) if x["kind"] == "message"],
                      what="the submitted message in A's outbound", detail=lambda: a.log_tail(30))
    return rows[-1]["message_id"]


def dispatched_at_a(a, mid, detail):
    """A's tracking of bob reaches dispatched, and the dispatched MDN (with the extension field) is in alice's
    mailbox on A."""
    wait_until(lambda: [r for r in direct.outbound(a) if r["message_id"] == mid and r["state"] == "dispatched"],
               what="bob dispatched at A", detail=detail)

    def mdn():
        for m in direct.mailbox(a, "alice@a.test", "mdn"):
            body = direct.mailbox_get(a, "alice@a.test", m["id"])
            if mid.encode() in body and re.search(rb"(?i)disposition:[^\r\n]*dispatched", body):
                return [body]
        return []
    got = wait_until(mdn, what="the dispatched MDN in alice's mailbox", detail=detail)[0]
    assert re.search(rb"(?im)^X-DIRECT-FINAL-DESTINATION-DELIVERY", got), got[:1500]


def bridged(b, detail):
    rows = wait_until(lambda: [r for r in b.sql("SELECT state, coalesce(unique_id, ''), coalesce(reason, '')"
                                                 " FROM hisp_bridge_docs ORDER BY id") if r[0] != "pending"],
                      what="the bridge's outcome at B", detail=detail)
    return rows


def test_referral_mail_client_to_ehr_by_mailbox_api():
    """The judged story through the mailbox API."""
    with Cleanup() as c:
        work = c.tmpdir()
        pki = make_pki(work)
        tls = edge.tls_material(os.path.join(work, "tls"))
        a, b = two_nodes(c, work, pki, tls)
        run_ok(b, "patient", "add", "--id", edge.CDA_PATIENT, *edge.CDA_DEMOGRAPHICS)
        run_ok(b, "bridge", "add", "b.test")
        settle()
        detail = lambda: "A:\n%s\nB:\n%s" % (a.log_tail(30), b.log_tail(30))  # noqa: E731
        with open(CDA, "rb") as f:
            cda = f.read()

        mid = submit_referral(a)
        # A signs, encrypts and delivers to B; B decrypts, verifies and puts it in bob's mailbox.
        items = wait_until(lambda: [i for i in direct.mailbox(b, "bob@b.test", "message") if i["message_id"] == mid],
                           what="the referral in bob's mailbox at B", detail=detail)
        wait_until(lambda: [r for r in direct.outbound(a) if r["message_id"] == mid and r["state"] == "processed"],
                   what="bob processed at A", detail=detail)

        # The EHR pulls it with curl over HTTPS.
        st, listing, _ = edge.curl(b, tls["ca"], "bob@b.test", edge.PASSWORD, "GET",
                                   "/edge/v1/messages?address=bob@b.test")
        assert st == 200, (st, listing)
        mine = [m for m in listing["messages"] if m.get("message_id") == mid]
        assert len(mine) == 1 and mine[0]["id"] == items[0]["id"] and not mine[0]["acked"], listing
        assert mine[0]["from"].lower().endswith("alice@a.test"), mine
        st, msg, _ = edge.curl(b, tls["ca"], "bob@b.test", edge.PASSWORD, "GET", "/edge/v1/messages/%d" % mine[0]["id"])
        assert st == 200, (st, msg)
        atts = [p for p in msg["parts"] if p.get("filename") == "referral.xml"]
        assert len(atts) == 1 and base64.b64decode(atts[0]["content_base64"]) == cda, [
            (p.get("filename"), p.get("content_type"), p.get("size")) for p in msg["parts"]]
        assert msg["headers"]["subject"] == "Referral", msg["headers"]
        st, ack, _ = edge.curl(b, tls["ca"], "bob@b.test", edge.PASSWORD, "POST",
                               "/edge/v1/messages/%d/ack" % mine[0]["id"], data="")
        assert st == 200 and ack.get("mdn") == "dispatched", (st, ack)
        st, listing, _ = edge.curl(b, tls["ca"], "bob@b.test", edge.PASSWORD, "GET",
                                   "/edge/v1/messages?address=bob@b.test")
        assert st == 200 and not [m for m in listing["messages"] if m.get("message_id") == mid], listing

        # The dispatched MDN returns to the practice.
        dispatched_at_a(a, mid, detail)

        # Push-to-pull: the same document is registered at B, found by FindDocuments, retrieved byte for byte.
        rows = bridged(b, detail)
        assert [r[0] for r in rows] == ["registered"], rows
        found = wait_until(lambda: edge.find_documents(b, tls["ca"], edge.CDA_PATIENT),
                           what="FindDocuments at B", detail=detail)
        assert len(found) == 1 and found[0][0] == rows[0][1], (found, rows)
        assert edge.retrieve(b, tls["ca"], found[0][1], found[0][0]) == cda
        a.check_log()
        b.check_log()


class _XdrEhr(http.server.BaseHTTPRequestHandler):
    """An EHR's XDR endpoint over HTTPS: keeps what it receives, answers a RegistryResponse Success."""
    received = []

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        _XdrEhr.received.append((self.headers.get("Content-Type", ""), body))
        resp = ('<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
                'xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header>'
                '<wsa:Action>urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse</wsa:Action></soap:Header>'
                '<soap:Body><rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" '
                'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/></soap:Body>'
                '</soap:Envelope>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/soap+xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)


def xdr_ehr(c, tls):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _XdrEhr)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls["cert"], tls["key"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    class Stop:
        def stop(self):
            srv.shutdown()
            srv.server_close()
    c.add(Stop())
    _XdrEhr.received = []
    return srv.server_address[1]


def mtom_parts(ctype, body):
    import email
    import email.policy
    msg = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body,
                                   policy=email.policy.compat32)
    return [p.get_payload(decode=True) for p in msg.get_payload()]


def test_referral_to_ehr_by_xdr_forwarding():
    """The judged story through XDR: B forwards what arrives for bob to the EHR's XDR endpoint (HTTPS, verified
    against the test CA); the EHR's Success acknowledges it and the dispatched MDN returns to the practice."""
    with Cleanup() as c:
        work = c.tmpdir()
        pki = make_pki(work)
        tls = edge.tls_material(os.path.join(work, "tls"))
        a, b = two_nodes(c, work, pki, tls, b_env={"HIENODE_EDGE_XDR_CA": os.path.join(work, "tls", "ca.pem")})
        port = xdr_ehr(c, tls)
        run_ok(b, "forward", "set", "bob@b.test", "xdr", "https://localhost:%d/xdr" % port, "--metadata", "minimal")
        settle()
        detail = lambda: "A:\n%s\nB:\n%s" % (a.log_tail(30), b.log_tail(30))  # noqa: E731
        with open(CDA, "rb") as f:
            cda = f.read()
        mid = submit_referral(a, subject="Referral by XDR")
        wait_until(lambda: _XdrEhr.received, what="an ITI-41 at the EHR's XDR endpoint", detail=detail)
        ctype, body = _XdrEhr.received[0]
        assert ctype.lower().startswith("multipart/related") and "application/xop+xml" in ctype, ctype
        parts = mtom_parts(ctype, body)
        assert b"ProvideAndRegisterDocumentSetRequest" in parts[0] and b"alice@a.test" in parts[0], parts[0][:2000]
        assert cda in parts[1:], [len(p) for p in parts]
        dispatched_at_a(a, mid, detail)
        st = b.sql("SELECT state FROM hisp_forward_state")
        assert st == [["delivered"]], st
        a.check_log()
        b.check_log()


def test_xdr_submission_becomes_direct_with_xdm():
    """An XDR submission built from the NIST testkit (CCDA_Ambulatory_full_metadata) posted to A's /xdr becomes a
    Direct message to dave@c.test (a loopback SMTP sink) whose XDM attachment `openssl cms` decrypts and `unzip`
    lists; the same request again is the same message; a request without its document is refused with
    XDSMissingDocument and sends nothing."""
    with Cleanup() as c:
        work = c.tmpdir()
        pki = make_pki(work)
        tls = edge.tls_material(os.path.join(work, "tls"))
        sink = c.add(SmtpSink())
        a = c.add(Node("edge-xdr", env=node_env(dict({"HIENODE_DIRECT_SMTP_TLS": "none"}, **edge.https_env(tls)))))
        a.start()
        setup_hisp(a, pki, "a.test", [("alice@a.test", "alice")], partners=[("dave@c.test", "dave")],
                   routes={"c.test": sink.port})
        edge.user_add(a, "alice@a.test")
        settle()
        ctype, body, doc = edge.xdr_request("CCDA_Ambulatory_full_metadata", "CCDA_Ambulatory.xml", "alice@a.test",
                                            ["dave@c.test"])
        st, rr, raw = edge.post_xdr(a, tls["ca"], "alice@a.test", edge.PASSWORD, ctype, body)
        assert st == 200 and rr and rr[0].endswith(":Success"), (st, rr, raw[:2000])
        msgs = sink.wait_count(1, what="the XDR message at the sink", detail=lambda: a.log_tail(40))
        _, content = direct.open_direct(pki, work, msgs[0]["data"], "dave")
        inner = direct.unwrap(content)
        zips = [p for p in inner.walk() if p.get_content_type() in ("application/zip", "application/octet-stream")]
        assert len(zips) == 1, [p.get_content_type() for p in inner.walk()]
        zpath = os.path.join(work, "xdm.zip")
        with open(zpath, "wb") as f:
            f.write(zips[0].get_payload(decode=True))
        listing = subprocess.run(["unzip", "-l", zpath], capture_output=True, text=True, check=True).stdout
        for name in ("IHE_XDM/SUBSET01/METADATA.xml", "INDEX.HTM", "README.TXT"):
            assert name in listing, listing
        with zipfile.ZipFile(zpath) as z:
            docs = [n for n in z.namelist() if n.startswith("IHE_XDM/SUBSET01/") and not n.endswith("METADATA.xml")]
            assert len(docs) == 1 and z.read(docs[0]) == doc, docs
            meta = z.read("IHE_XDM/SUBSET01/METADATA.xml").decode()
            assert os.path.basename(docs[0]) in meta, meta[:2000]
        # A replay (the client lost the response) is the same message: Success, nothing new sent.
        st, rr, raw = edge.post_xdr(a, tls["ca"], "alice@a.test", edge.PASSWORD, ctype, body)
        assert st == 200 and rr[0].endswith(":Success"), (st, rr, raw[:2000])
        assert len([r for r in direct.outbound(a) if r["kind"] == "message"]) == 1, direct.outbound(a)
        # Missing document: Failure with XDSMissingDocument, nothing queued.
        ctype, body, _ = edge.xdr_request("CCDA_Ambulatory_minimal_metadata", "CCDA_Ambulatory.xml", "alice@a.test",
                                          ["dave@c.test"], drop_document=True)
        st, rr, raw = edge.post_xdr(a, tls["ca"], "alice@a.test", edge.PASSWORD, ctype, body)
        assert rr and rr[0].endswith(":Failure") and [e for e in rr[1] if e[0] == "XDSMissingDocument"], (st, rr)
        assert len([r for r in direct.outbound(a) if r["kind"] == "message"]) == 1, direct.outbound(a)
        # Wrong password: no SOAP processing at all.
        st, rr, raw = edge.post_xdr(a, tls["ca"], "alice@a.test", "wrong password!", ctype, body)
        assert st == 401, (st, raw[:500])
        a.check_log()


def test_submission_refusals():
    """AUTH before STARTTLS, a wrong password, sending as an address not granted: refused at SMTP, nothing
    queued; repeated failures lock the client address out."""
    with Cleanup() as c:
        work = c.tmpdir()
        pki = make_pki(work)
        tls = edge.tls_material(os.path.join(work, "tls"))
        a = c.add(Node("edge-sub", env=node_env(dict({"HIENODE_EDGE_AUTH_MAX_FAILURES": "3"},
                                                     **edge.submission_env(tls)))))
        a.start()
        setup_hisp(a, pki, "a.test", [("alice@a.test", "alice")], partners=[("bob@b.test", "bob")])
        run_ok(a, "domain", "address", "add", "carol@a.test")
        edge.user_add(a, "alice@a.test")
        # AUTH before STARTTLS: not advertised (swaks gives up), and refused when sent anyway.
        rc, t = edge.swaks_submit(a, "alice@a.test", edge.PASSWORD, "alice@a.test", "bob@b.test", tls=False)
        assert rc != 0 and "did not advertise" in t, t[-1500:]
        s = smtplib.SMTP("127.0.0.1", edge.submission_port(a), local_hostname="practice.test", timeout=30)
        try:
            s.ehlo()
            cred = base64.b64encode(b"\0alice@a.test\0" + edge.PASSWORD.encode()).decode()
            code, text = s.docmd("AUTH", "PLAIN " + cred)
            assert code == 538, (code, text)
            code, text = s.docmd("MAIL", "FROM:<alice@a.test>")
            assert code == 530, (code, text)
        finally:
            s.close()
        # Sending as an address not granted (carol@a.test is local, but not alice's).
        rc, t = edge.swaks_submit(a, "alice@a.test", edge.PASSWORD, "carol@a.test", "bob@b.test")
        assert rc != 0 and any(x.startswith("550") for x in edge.replies(t)), t[-1500:]
        # Wrong password: 535, then locked out (454) after [edge] auth_max_failures.
        codes = []
        for _ in range(4):
            rc, t = edge.swaks_submit(a, "alice@a.test", "not the password", "alice@a.test", "bob@b.test")
            codes.append([x[:3] for x in edge.replies(t) if x[:1] in "45"][:1])
        assert codes[0] == ["535"] and codes[-1] == ["454"], codes
        assert not [r for r in direct.outbound(a) if r["kind"] == "message"], direct.outbound(a)
        a.check_log()


def bad_xdm_zip():
    """An XDM package whose INDEX.HTM is not well-formed XHTML (everything else in order)."""
    with open(CDA, "rb") as f:
        doc = f.read()
    import hashlib
    meta = ('<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" '
            'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:RegistryObjectList>'
            '<rim:ExtrinsicObject id="Document01" mimeType="text/xml" '
            'objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">'
            '<rim:Slot name="URI"><rim:ValueList><rim:Value>DOC0001.XML</rim:Value></rim:ValueList></rim:Slot>'
            '<rim:Slot name="hash"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>'
            '<rim:Slot name="size"><rim:ValueList><rim:Value>%d</rim:Value></rim:ValueList></rim:Slot>'
            '<rim:ExternalIdentifier id="ei1" registryObject="Document01" '
            'identificationScheme="urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab" value="2.25.4242">'
            '<rim:Name><rim:LocalizedString value="XDSDocumentEntry.uniqueId"/></rim:Name></rim:ExternalIdentifier>'
            '</rim:ExtrinsicObject></rim:RegistryObjectList></lcm:SubmitObjectsRequest>'
            % (hashlib.sha1(doc).hexdigest(), len(doc)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("INDEX.HTM", "<html><body><p>unclosed <b>tags</body>")
        z.writestr("README.TXT", "test package\r\n")
        z.writestr("IHE_XDM/SUBSET01/METADATA.xml", meta)
        z.writestr("IHE_XDM/SUBSET01/DOC0001.XML", doc)
    return buf.getvalue()


def test_xdm_with_bad_xhtml():
    """A Direct message carrying an XDM whose INDEX.HTM is not XHTML: delivered (the S/MIME rules hold), but the
    mailbox API reports the package invalid with the reason, and the bridge parks it for an operator (listed by
    `hienode status`), never registers it."""
    with Cleanup() as c:
        work = c.tmpdir()
        pki = make_pki(work)
        tls = edge.tls_material(os.path.join(work, "tls"))
        sink = c.add(SmtpSink())
        b = c.add(Node("edge-badxdm", env=node_env(dict({"HIENODE_DIRECT_SMTP_TLS": "none"}, **edge.https_env(tls)))))
        b.tls_ca = tls["ca"]
        b.start()
        setup_hisp(b, pki, "b.test", [("bob@b.test", "bob")], partners=[("dave@c.test", "dave")],
                   routes={"c.test": sink.port})
        edge.user_add(b, "bob@b.test")
        run_ok(b, "patient", "add", "--id", edge.CDA_PATIENT, *edge.CDA_DEMOGRAPHICS)
        run_ok(b, "bridge", "add", "bob@b.test")
        settle()
        z = base64.encodebytes(bad_xdm_zip()).replace(b"\n", b"\r\n")
        boundary = "xdm-boundary-1"
        body = ("--%s\r\nContent-Type: text/plain\r\n\r\nXDM attached.\r\n--%s\r\nContent-Type: application/zip; "
                "name=xdm.zip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
                "filename=xdm.zip\r\n\r\n" % (boundary, boundary)).encode() + z + ("\r\n--%s--\r\n" % boundary).encode()
        inner, mid = direct.inner_message("dave@c.test", "bob@b.test", "XDM", body,
                                          content_type='multipart/mixed; boundary="%s"' % boundary)
        m = direct.build(pki, work, "dave@c.test", "bob@b.test", inner=inner, message_id=mid)
        direct.swaks_ok(smtp_port(b), "dave@c.test", "bob@b.test", m.raw, work)
        detail = lambda: b.log_tail(40)  # noqa: E731
        items = wait_until(lambda: direct.mailbox(b, "bob@b.test", "message"), what="the XDM message delivered",
                           detail=detail)
        st, msg, _ = edge.curl(b, tls["ca"], "bob@b.test", edge.PASSWORD, "GET", "/edge/v1/messages/%d" % items[0]["id"])
        assert st == 200 and len(msg["xdm"]) == 1, (st, msg)
        x = msg["xdm"][0]
        assert x["valid"] is False and "INDEX.HTM" in x["error"] and "XHTML" in x["error"], x
        rows = bridged(b, detail)
        assert [r[0] for r in rows] == ["parked"] and "INDEX.HTM" in rows[0][2], rows
        out = run_ok(b, "status")
        assert "INDEX.HTM" in out, out[-3000:]
        assert edge.find_documents(b, tls["ca"], edge.CDA_PATIENT) == []
        b.check_log()


if __name__ == "__main__":
    main([test_referral_mail_client_to_ehr_by_mailbox_api, test_referral_to_ehr_by_xdr_forwarding,
          test_xdr_submission_becomes_direct_with_xdm, test_submission_refusals, test_xdm_with_bad_xhtml])
