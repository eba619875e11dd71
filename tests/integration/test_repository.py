"""The XDS.b repository on the real daemon: ITI-41 Provide and Register by MTOM (a multipart/related body built
here byte by byte) and inline base64, ITI-43 Retrieve of the same bytes (the MTOM reply parsed here), a 1 MB
document, PartialSuccess for a missing document, oversized inline documents (a clean 413 or SOAP fault, the
node stays healthy), an unknown action and a missing body answered with faults, and a log that holds neither
document content nor the patient id.

The metadata is the NIST testkit's ReposAcceptanceTest-1113 submission (two DocumentEntries and a SubmissionSet);
its uniqueIds are replaced per submission."""
import os
import re
import socket
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

from harness import SRC, Node, main

TESTKIT = os.path.join(SRC, "..", "shared", "corpus", "nist-toolkit", "toolkitx", "testkit", "tests",
                       "ReposAcceptanceTest-1113", "SubmitTwoDocs", "two_doc.xml")
PID_ID = "P0924175725.3"
PID = PID_ID + "^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
REPO_UID = "1.2.840.555.7.1"
ACT_PNR = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACT_RET = "urn:ihe:iti:2007:RetrieveDocumentSet"
NS = {"env": "http://www.w3.org/2003/05/soap-envelope", "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
      "xdsb": "urn:ihe:iti:xds-b:2007", "xop": "http://www.w3.org/2004/08/xop/include"}
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
SECRET_TEXT = b"Clinical note: the patient's secret diagnosis, never to be logged."

N = None
COUNTER = [0]


def fresh_uid():
    COUNTER[0] += 1
    return "1.2.840.555.%d.%d" % (int(time.time()), COUNTER[0])


def metadata(uid1, uid2):
    """The testkit's xdsb:ProvideAndRegisterDocumentSetRequest, without its end tag, with fresh uniqueIds."""
    with open(TESTKIT, encoding="utf-8") as f:
        xml = f.read()
    xml = xml[xml.index("<xdsb:ProvideAndRegisterDocumentSetRequest"):
              xml.index("</xdsb:ProvideAndRegisterDocumentSetRequest>")]
    xml = xml.replace("1.2.42.20180925.1.777.200", uid1).replace("1.2.42.20180925.2.777.200", uid2)
    xml = xml.replace("1.2.42.20180925.1.777.100", fresh_uid())
    # The SubmissionSet's classification has a fixed urn:uuid id: a second registration of it would collide.
    return xml.replace("urn:uuid:6a8bc363-ade9-41d0-a76e-e83d25ad9b23", "urn:uuid:%s" % uuid.uuid4())


def envelope(action, body_xml):
    return ('<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:wsa="http://www.w3.org/2005/08/addressing"><env:Header>'
            '<wsa:Action env:mustUnderstand="1">%s</wsa:Action><wsa:MessageID>urn:uuid:%s</wsa:MessageID>'
            '<wsa:To>http://127.0.0.1/xds/repository</wsa:To></env:Header><env:Body>%s</env:Body></env:Envelope>'
            % (action, uuid.uuid4(), body_xml)).encode()


def pnr_mtom(uid1, uid2, doc1, doc2):
    """(content_type, body) of an MTOM ITI-41 with doc1/doc2 as binary parts."""
    boundary = "MIMEBoundary_" + uuid.uuid4().hex
    cids = ["%s@doc.hienode.test" % uuid.uuid4().hex for _ in range(2)]
    payload = metadata(uid1, uid2)
    for doc_id, cid in zip(("myDocId1", "myDocId2"), cids):
        payload += ('<xdsb:Document id="%s"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
                    'href="cid:%s"/></xdsb:Document>' % (doc_id, urllib.parse.quote(cid, safe="")))
    payload += "</xdsb:ProvideAndRegisterDocumentSetRequest>"
    body = (b"--" + boundary.encode() + b"\r\nContent-Type: application/xop+xml; charset=UTF-8; "
            b'type="application/soap+xml"\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <root@hienode.test>'
            b"\r\n\r\n" + envelope(ACT_PNR, payload))
    for cid, data in zip(cids, (doc1, doc2)):
        body += (b"\r\n--" + boundary.encode() + b"\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Transfer-Encoding: binary\r\nContent-ID: <" + cid.encode() + b">\r\n\r\n" + data)
    body += b"\r\n--" + boundary.encode() + b"--\r\n"
    ct = ('multipart/related; boundary="%s"; type="application/xop+xml"; start="<root@hienode.test>"; '
          'start-info="application/soap+xml"; action="%s"' % (boundary, ACT_PNR))
    return ct, body


def pnr_inline(uid1, uid2, doc1, doc2):
    import base64
    payload = metadata(uid1, uid2)
    for doc_id, data in (("myDocId1", doc1), ("myDocId2", doc2)):
        payload += '<xdsb:Document id="%s">%s</xdsb:Document>' % (doc_id, base64.b64encode(data).decode())
    payload += "</xdsb:ProvideAndRegisterDocumentSetRequest>"
    return 'application/soap+xml; charset=UTF-8; action="%s"' % ACT_PNR, envelope(ACT_PNR, payload)


def retrieve_request(items):
    x = '<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="urn:ihe:iti:xds-b:2007">'
    for repo, uid in items:
        x += ("<xdsb:DocumentRequest><xdsb:RepositoryUniqueId>%s</xdsb:RepositoryUniqueId>"
              "<xdsb:DocumentUniqueId>%s</xdsb:DocumentUniqueId></xdsb:DocumentRequest>" % (repo, uid))
    x += "</xdsb:RetrieveDocumentSetRequest>"
    return 'application/soap+xml; charset=UTF-8; action="%s"' % ACT_RET, envelope(ACT_RET, x)


def ct_param(ct, name):
    m = re.search(r';\s*%s="?([^";]+)"?' % re.escape(name), ct, re.I)
    return m.group(1) if m else None


def parse_multipart(ct, body):
    """{content-id: bytes} plus the root part (the one named by start, else the first)."""
    boundary = ct_param(ct, "boundary")
    assert boundary, ct
    delim = b"--" + boundary.encode()
    assert body.count(delim + b"--") == 1, "no closing delimiter"
    chunks = body.split(b"\r\n" + delim)
    first = chunks[0]
    assert first.startswith(delim) or (delim in first), first[:100]
    first = first[first.index(delim) + len(delim):]
    chunks = [first] + chunks[1:]
    parts, order = {}, []
    for c in chunks:
        if c.startswith(b"--"):
            break  # closing delimiter
        assert c.startswith(b"\r\n"), c[:50]
        head, _, data = c[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        cid = headers.get("content-id", "").strip("<>")
        parts[cid] = data
        order.append(cid)
    start = (ct_param(ct, "start") or "").strip("<>")
    root = parts[start] if start else parts[order[0]]
    return root, parts


def soap(ct, body):
    status, headers, reply = N.http("POST", "/xds/repository", body=body, headers={"Content-Type": ct}, timeout=120)
    rct = headers.get("content-type", "")
    if rct.lower().startswith("multipart/related"):
        root, parts = parse_multipart(rct, reply)
    else:
        root, parts = reply, {}
    return status, rct, ET.fromstring(root), parts


def registry_response(doc):
    body = doc.find("env:Body", NS)
    rr = body.find("rs:RegistryResponse", NS)
    if rr is None:
        rr = body.find("xdsb:RetrieveDocumentSetResponse/rs:RegistryResponse", NS)
    assert rr is not None, ET.tostring(doc)[:2000]
    errors = [(e.get("errorCode"), e.get("codeContext")) for e in rr.findall("rs:RegistryErrorList/rs:RegistryError", NS)]
    return rr.get("status"), errors


def documents(doc, parts):
    """{uniqueId: (mimeType, bytes)} of a retrieve reply; every Document must be an xop:Include."""
    out = {}
    for dr in doc.findall("env:Body/xdsb:RetrieveDocumentSetResponse/xdsb:DocumentResponse", NS):
        inc = dr.find("xdsb:Document/xop:Include", NS)
        assert inc is not None, "a Document not sent as xop:Include"
        href = inc.get("href")
        assert href.startswith("cid:"), href
        cid = urllib.parse.unquote(href[4:])
        out[dr.findtext("xdsb:DocumentUniqueId", namespaces=NS)] = (dr.findtext("xdsb:mimeType", namespaces=NS),
                                                                    parts[cid])
    return out


def fault(doc):
    f = doc.find("env:Body/env:Fault", NS)
    assert f is not None, ET.tostring(doc)[:1000]
    return f.findtext("env:Code/env:Value", namespaces=NS)


def provide_and_check(build, doc1, doc2):
    uid1, uid2 = fresh_uid(), fresh_uid()
    ct, body = build(uid1, uid2, doc1, doc2)
    status, rct, reply, _ = soap(ct, body)
    st, errors = registry_response(reply)
    assert status == 200 and st == SUCCESS, (status, st, errors)
    return uid1, uid2, rct


def retrieve(items):
    ct, body = retrieve_request(items)
    status, rct, reply, parts = soap(ct, body)
    assert status == 200, (status, ET.tostring(reply)[:1000])
    assert rct.lower().startswith("multipart/related"), rct  # ITI-43 replies are MTOM
    st, errors = registry_response(reply)
    return st, errors, documents(reply, parts)


def test_start():
    global N
    assert os.path.exists(TESTKIT), "NIST testkit not found at " + TESTKIT
    N = Node("repository", env={"HIENODE_REPOSITORY_UNIQUE_ID": REPO_UID})
    N.start()
    r = N.run("patient", "add", "--id", PID)
    assert r.returncode == 0, r.stderr


def test_mtom_provide_and_retrieve():
    doc1 = bytes(range(256)) * 40 + b"\x00\r\n--not-a-boundary\r\n" + SECRET_TEXT
    doc2 = SECRET_TEXT + b"\n"
    uid1, uid2, rct = provide_and_check(pnr_mtom, doc1, doc2)
    assert rct.lower().startswith("multipart/related"), rct  # MTOM request, MTOM reply
    st, errors, docs = retrieve([(REPO_UID, uid1), (REPO_UID, uid2)])
    assert st == SUCCESS and not errors, (st, errors)
    assert docs[uid1] == ("text/plain", doc1)
    assert docs[uid2] == ("text/plain", doc2)


def test_one_megabyte_mtom():
    doc1 = os.urandom(1024 * 1024)
    uid1, uid2, _ = provide_and_check(pnr_mtom, doc1, b"small")
    st, errors, docs = retrieve([(REPO_UID, uid1)])
    assert st == SUCCESS, (st, errors)
    assert docs[uid1][1] == doc1


def test_inline_provide_and_retrieve():
    doc1 = os.urandom(100 * 1024)
    uid1, uid2, rct = provide_and_check(pnr_inline, doc1, SECRET_TEXT)
    assert rct.lower().startswith("application/soap+xml"), rct
    st, errors, docs = retrieve([(REPO_UID, uid2), (REPO_UID, uid1)])
    assert st == SUCCESS, (st, errors)
    assert docs[uid1][1] == doc1 and docs[uid2][1] == SECRET_TEXT


def test_resubmission_and_partial_retrieve():
    uid1, uid2 = fresh_uid(), fresh_uid()
    for build in (pnr_mtom, pnr_inline):  # the same submission twice: the second is a no-op success
        ct, body = build(uid1, uid2, b"one", b"two")
        status, _, reply, _ = soap(ct, body)
        assert registry_response(reply)[0] == SUCCESS
    st, errors, docs = retrieve([(REPO_UID, uid1), (REPO_UID, "1.2.840.555.404"), ("1.9.9.9", uid2)])
    assert st == PARTIAL, (st, errors)
    codes = sorted(c for c, _ in errors)
    assert codes == ["XDSDocumentUniqueIdError", "XDSUnknownRepositoryId"], errors
    assert any("1.2.840.555.404" in ctx for c, ctx in errors if c == "XDSDocumentUniqueIdError"), errors
    assert list(docs) == [uid1] and docs[uid1][1] == b"one"
    st, errors, docs = retrieve([(REPO_UID, "1.2.840.555.404")])
    assert st == FAILURE and not docs, (st, errors)


def test_wrong_hash_refused():
    uid1, uid2 = fresh_uid(), fresh_uid()
    ct, body = pnr_mtom(uid1, uid2, b"one", b"two")
    body = body.replace(b'<rim:Slot name="creationTime">',
                        b'<rim:Slot name="hash"><rim:ValueList><rim:Value>0000000000000000000000000000000000000000'
                        b'</rim:Value></rim:ValueList></rim:Slot><rim:Slot name="creationTime">', 1)
    status, _, reply, _ = soap(ct, body)
    st, errors = registry_response(reply)
    assert st == FAILURE and errors and errors[0][0] == "XDSRepositoryMetadataError", (st, errors)
    assert "hash" in errors[0][1], errors
    st, errors, docs = retrieve([(REPO_UID, uid1)])
    assert st == FAILURE and not docs  # nothing was stored


def raw_post(path, ct, body, wait_first=2.0):
    """POST over a raw socket: headers first; a reply that comes before the body (413 on Content-Length) is
    read then; otherwise the body is sent and the reply read. Returns the status line's code."""
    s = socket.create_connection(("127.0.0.1", N.http_port), timeout=120)
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                   "Connection: close\r\n\r\n" % (path, ct, len(body))).encode())
        s.settimeout(wait_first)
        reply = b""
        try:
            reply = s.recv(65536)
        except socket.timeout:
            pass
        if not reply:
            s.settimeout(120)
            s.sendall(body)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
        assert m, reply[:200]
        return int(m.group(1)), reply
    finally:
        s.close()


def test_oversized_inline_documents():
    # 50 MB inline: the base64 envelope (~67 MB) is over [http] max_body (64M): 413 from its Content-Length.
    ct, body = pnr_inline(fresh_uid(), fresh_uid(), b"\x5a" * (50 * 1024 * 1024), b"x")
    code, _ = raw_post("/xds/repository", ct, body)
    assert code == 413, code
    del body
    # 40 MB inline (~53 MB body, under the HTTP cap): the XML parser's cap refuses it with a SOAP fault.
    ct, body = pnr_inline(fresh_uid(), fresh_uid(), b"\x5a" * (40 * 1024 * 1024), b"x")
    code, reply = raw_post("/xds/repository", ct, body, wait_first=0.5)
    assert code in (413, 500), code
    assert b"Fault" in reply, reply[:500]
    del body
    assert N.http("GET", "/healthz")[0] == 200
    assert N.proc.poll() is None, "the node died"


def test_unknown_action_and_missing_body():
    act = "urn:ihe:iti:2007:NoSuchTransaction"
    status, _, reply, _ = soap('application/soap+xml; action="%s"' % act, envelope(act, ""))
    assert status == 500 and fault(reply) == "env:Sender", status
    assert b"ActionNotSupported" in ET.tostring(reply)
    # an empty env:Body, for each transaction of the endpoint
    for act in (ACT_PNR, ACT_RET):
        status, _, reply, _ = soap('application/soap+xml; action="%s"' % act, envelope(act, ""))
        assert status == 500 and fault(reply) == "env:Sender", (act, status)
    # no HTTP body at all
    status, _, body = N.http("POST", "/xds/repository", body=b"",
                             headers={"Content-Type": 'application/soap+xml; action="%s"' % ACT_PNR})
    assert status in (400, 500) and b"Fault" in body, (status, body[:300])
    assert N.http("GET", "/healthz")[0] == 200


def test_stop_and_log():
    assert N.stop() == 0
    N.check_log()
    log = N.log()
    assert "event=registry.iti41" in log and "event=registry.iti43" in log
    assert SECRET_TEXT.decode()[:20] not in log, "document content in the log"
    assert PID_ID not in log, "patient id in the log"


if __name__ == "__main__":
    try:
        main([test_start, test_mtom_provide_and_retrieve, test_one_megabyte_mtom, test_inline_provide_and_retrieve,
              test_resubmission_and_partial_retrieve, test_wrong_hash_refused, test_oversized_inline_documents,
              test_unknown_action_and_missing_body, test_stop_and_log])
    finally:
        if N:
            N.cleanup()
