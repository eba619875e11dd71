"""Helpers for the Direct edge tests (issue 5): TLS material, edge users, swaks with STARTTLS + AUTH, the mailbox
API through the real `curl` command, XDR requests from the NIST testkit, XDS queries over HTTPS."""
import base64
import http.client
import json
import os
import re
import ssl
import subprocess
import uuid

import direct
import harness
import xds

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(os.path.dirname(SRC), "shared", "corpus")
XDR_DATA = os.path.join(CORPUS, "nist-toolkit", "toolkitx", "testkit", "testdata-xdr")
PASSWORD = "correct horse battery staple"
# The CDA's patient (recordTarget/patientRole/id root 2.16.840.1.113883.4.6, extension 1) in B's patient index.
CDA_PATIENT = "1^^^&2.16.840.1.113883.4.6&ISO"
CDA_DEMOGRAPHICS = ["--family", "Jones", "--given", "Isabella", "--birth-date", "19470501", "--gender", "F"]


def tls_material(directory):
    """The demo CA and a server certificate for localhost / 127.0.0.1 (certs/make-demo-certs.sh)."""
    subprocess.run([os.path.join(SRC, "certs", "make-demo-certs.sh"), directory, "localhost"], check=True,
                   capture_output=True, timeout=120)
    # CA bundles are read by the node after it dropped to its unprivileged user (libcurl opens them per request).
    os.chmod(os.path.dirname(directory), 0o711)
    os.chmod(directory, 0o755)
    os.chmod(os.path.join(directory, "ca.pem"), 0o644)
    # The node drops to an unprivileged user but reads key files before; the tests' tools read them as root.
    return {"ca": os.path.join(directory, "ca.pem"), "cert": os.path.join(directory, "server.pem"),
            "key": os.path.join(directory, "server.key")}


def https_env(tls):
    return {"HIENODE_HTTP_TLS_CERT": tls["cert"], "HIENODE_HTTP_TLS_KEY": tls["key"]}


def submission_env(tls):
    return {"HIENODE_SUBMISSION_TLS_CERT": tls["cert"], "HIENODE_SUBMISSION_TLS_KEY": tls["key"]}


def submission_port(node):
    return int(node.env["HIENODE_SUBMISSION_LISTEN"].rsplit(":", 1)[1])


def user_add(node, name, password=PASSWORD, grants=()):
    """`hienode user add NAME` with the password on stdin (not a terminal), then grants."""
    r = subprocess.run(node.argv("user", "add", name), env=node.env, input=password + "\n", capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, "user add: %d %s %s" % (r.returncode, r.stdout, r.stderr)
    for g in grants:
        direct.run_ok(node, "user", "grant", name, g)


def swaks_submit(node, user, password, mail_from, to, subject="Referral", body="Please see the attached referral.",
                 attach=None, attach_type="application/xml", attach_name="referral.xml", tls=True, auth="LOGIN",
                 headers=(), timeout=120):
    """swaks against the submission port. Returns (exit code, transcript)."""
    argv = [direct.SWAKS, "--server", "127.0.0.1:%d" % submission_port(node), "--helo", "practice.test",
            "--from", mail_from, "--h-Subject", subject, "--body", body, "--timeout", "60"]
    for t in ([to] if isinstance(to, str) else to):
        argv += ["--to", t]
    if tls:
        argv += ["--tls"]
    if auth:
        argv += ["--auth", auth, "--auth-user", user, "--auth-password", password]
    for h in headers:
        argv += ["--add-header", h]
    if attach:
        argv += ["--attach-type", attach_type, "--attach-name", attach_name, "--attach", "@" + attach]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def replies(transcript):
    """The server's reply lines of a swaks transcript."""
    return [l[3:].strip() for l in transcript.splitlines()
            if l.startswith("<-") or l.startswith("<**") or l.startswith("<~")]


def curl(node, ca, user, password, method, path, data=None):
    """The mailbox API through the real curl command: (HTTP status, parsed JSON or raw bytes, headers text)."""
    argv = ["curl", "-s", "-S", "--cacert", ca, "-u", "%s:%s" % (user, password), "-X", method,
            "-D", "-", "-o", "-", "--max-time", "60", "https://localhost:%d%s" % (node.http_port, path)]
    argv[-1] = argv[-1].replace("localhost", "127.0.0.1")
    if data is not None:
        argv[argv.index("-X") + 2:argv.index("-X") + 2] = ["--data-binary", data]
    r = subprocess.run(argv, capture_output=True, timeout=90)
    assert r.returncode == 0, "curl %s %s: %d %s" % (method, path, r.returncode, r.stderr.decode(errors="replace"))
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"application/json" in head.lower():
        return status, json.loads(body.decode()), head.decode(errors="replace")
    return status, body, head.decode(errors="replace")


def https_conn(node, ca, timeout=60):
    return http.client.HTTPSConnection("127.0.0.1", node.http_port, timeout=timeout,
                                       context=ssl.create_default_context(cafile=ca))


def find_documents(node, ca, patient):
    """FindDocuments (LeafClass) at node over HTTPS: [(uniqueId, repositoryUniqueId)]."""
    conn = https_conn(node, ca)
    try:
        status, root, raw = xds.post(node.http_port, "/xds/registry", xds.ITI18, xds.find_documents(patient),
                                     conn=conn)
    finally:
        conn.close()
    assert status == 200 and root is not None, (status, raw[:2000])
    out = []
    for eo in root.iter("{%s}ExtrinsicObject" % xds.NS["rim"]):
        uid = repo = None
        for ei in eo.findall("rim:ExternalIdentifier", xds.NS):
            if ei.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab":
                uid = ei.get("value")
        for sl in eo.findall("rim:Slot", xds.NS):
            if sl.get("name") == "repositoryUniqueId":
                repo = sl.find("rim:ValueList/rim:Value", xds.NS).text
        out.append((uid, repo))
    return out


def retrieve(node, ca, repo_uid, doc_uid):
    """ITI-43 at node over HTTPS: the document's bytes."""
    ctype, data = xds.retrieve(repo_uid, [doc_uid])
    conn = https_conn(node, ca)
    try:
        conn.request("POST", "/xds/repository", body=data, headers={"Content-Type": ctype})
        r = conn.getresponse()
        raw = r.read()
        rct = r.getheader("Content-Type") or ""
    finally:
        conn.close()
    assert r.status == 200, (r.status, raw[:2000])
    root, atts = xds.parse_reply(rct, raw)
    return xds.document_bytes(root, atts, doc_uid)


def xdr_request(case, doc_file, direct_from, direct_to, drop_document=False):
    """An ITI-41 (MTOM) for the XDR Document Recipient from a NIST testdata-xdr case (ebRS 2.1 metadata converted
    to 3.0 by the conformance runner's converter), addressed with direct:from / direct:to SOAP headers.
    Returns (content type, body bytes, document bytes)."""
    import sys
    sys.path.insert(0, os.path.join(SRC, "tests", "conformance"))
    import nist_runner  # noqa: E402  (stdlib-only converter of the NIST testkit's ebRIM 2.1 metadata)
    d = os.path.join(XDR_DATA, case, "submit_doc")
    with open(os.path.join(d, "single_doc.xml"), "rb") as f:
        meta21 = f.read()
    with open(os.path.join(d, doc_file), "rb") as f:
        doc = f.read()
    import xml.etree.ElementTree as ET
    sor = nist_runner.serialize(nist_runner.to_v3(ET.fromstring(meta21))[0])
    docs = "" if drop_document else (
        '<xdsb:Document id="Document01"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
        'href="cid:doc1@hienode.test"/></xdsb:Document>')
    body = '<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb="urn:ihe:iti:xds-b:2007">%s%s' \
           '</xdsb:ProvideAndRegisterDocumentSetRequest>' % (sor, docs)
    hdr = ('<direct:metadata-level xmlns:direct="urn:direct:addressing">XDS</direct:metadata-level>'
           '<direct:addressBlock xmlns:direct="urn:direct:addressing"><direct:from>%s</direct:from>%s'
           '</direct:addressBlock>') % (direct_from, "".join("<direct:to>%s</direct:to>" % t for t in direct_to))
    env = ('<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
           'xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header>'
           '<wsa:Action soap:mustUnderstand="true">urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b</wsa:Action>'
           '<wsa:MessageID>urn:uuid:%s</wsa:MessageID><wsa:To>https://localhost/xdr</wsa:To>%s</soap:Header>'
           '<soap:Body>%s</soap:Body></soap:Envelope>') % (uuid.uuid4(), hdr, body)
    boundary = "MIMEBoundary_" + uuid.uuid4().hex
    parts = [("<root@hienode.test>", 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
              env.encode())]
    if not drop_document:
        parts.append(("<doc1@hienode.test>", "text/xml", doc))
    out = b""
    for cid, ct, data in parts:
        out += ("--%s\r\nContent-Type: %s\r\nContent-Transfer-Encoding: binary\r\nContent-ID: %s\r\n\r\n" % (
            boundary, ct, cid)).encode() + data + b"\r\n"
    out += ("--%s--\r\n" % boundary).encode()
    ctype = ('multipart/related; boundary="%s"; type="application/xop+xml"; start="<root@hienode.test>"; '
             'start-info="application/soap+xml"; action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"'
             % boundary)
    return ctype, out, doc


def post_xdr(node, ca, user, password, ctype, body):
    """POSTs an XDR request over HTTPS with Basic auth: (HTTP status, (registry status, errors) or None, raw)."""
    conn = https_conn(node, ca)
    try:
        auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        conn.request("POST", "/xdr", body=body, headers={"Content-Type": ctype, "Authorization": "Basic " + auth})
        r = conn.getresponse()
        raw = r.read()
        rct = r.getheader("Content-Type") or ""
    finally:
        conn.close()
    m = re.search(rb"<(\w+:)?Envelope[\s\S]*Envelope>", raw)
    if not m:
        return r.status, None, raw
    root, _ = xds.parse_reply(rct, raw)
    if root.find(".//{%s}RegistryResponse" % xds.NS["rs"]) is None:
        return r.status, None, raw
    return r.status, xds.registry_response(root), raw


__all__ = ["harness"]
