"""XDS.b request builders shared by the integration tests and benchmarks (stdlib only).

submission() builds an ebRIM 3.0 lcm:SubmitObjectsRequest with one SubmissionSet, any number of DocumentEntries
(every required attribute, realistic codes) and the HasMember associations, plus optional extra associations
(RPLC, APND, ...) to documents registered before. soap() wraps a body in a SOAP 1.2 envelope with WS-Addressing;
post() sends it and returns (HTTP status, parsed XML root or None, raw body).
"""
import base64
import email
import email.policy
import hashlib
import http.client
import itertools
import os
import re
import uuid
import xml.etree.ElementTree as ET

NS = {
    "soap": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0",
    "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
    "lcm": "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0",
    "query": "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0",
    "xdsb": "urn:ihe:iti:xds-b:2007",
}
ITI42 = "urn:ihe:iti:2007:RegisterDocumentSet-b"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
PID_OID = "1.3.6.1.4.1.21367.13.20.3000"

_counter = itertools.count(1)
_run = "%d.%d" % (os.getpid(), int.from_bytes(os.urandom(3), "big"))


def new_uid():
    """A fresh OID-form uniqueId, unique across runs."""
    return "1.3.6.1.4.1.21367.2026.%s.%d" % (_run, next(_counter))


def pid(local):
    return "%s^^^&%s&ISO" % (local, PID_OID)


def _esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def _slot(name, *values):
    return '<rim:Slot name="%s"><rim:ValueList>%s</rim:ValueList></rim:Slot>' % (
        _esc(name), "".join("<rim:Value>%s</rim:Value>" % _esc(v) for v in values))


def _name(text):
    return '<rim:Name><rim:LocalizedString value="%s"/></rim:Name>' % _esc(text)


def _code(obj, scheme, code, coding_scheme, display):
    return ('<rim:Classification classificationScheme="%s" classifiedObject="%s" id="%s" nodeRepresentation="%s">'
            '%s%s</rim:Classification>' % (scheme, obj, "urn:uuid:" + str(uuid.uuid4()), _esc(code),
                                           _slot("codingScheme", coding_scheme), _name(display)))


def _extid(obj, scheme, value, name):
    return ('<rim:ExternalIdentifier id="%s" identificationScheme="%s" registryObject="%s" value="%s">%s'
            '</rim:ExternalIdentifier>' % ("urn:uuid:" + str(uuid.uuid4()), scheme, obj, _esc(value), _name(name)))


def document_entry(eid, patient, uid, content=b"hello", mime="text/xml", class_code="34133-9",
                   type_code="18842-5", creation="20261122083000", author="^Welby^Marcus^^^Dr^MD",
                   event_codes=(), repo="1.3.6.1.4.1.21367.13.20.1000.1", with_hash=True):
    slots = [_slot("creationTime", creation), _slot("languageCode", "en-US"),
             _slot("serviceStartTime", "20261120"), _slot("serviceStopTime", "20261121"),
             _slot("sourcePatientId", "MRN-7^^^&1.2.840.113619.6.197&ISO"),
             _slot("sourcePatientInfo", "PID-3|MRN-7^^^&1.2.840.113619.6.197&ISO", "PID-5|Doe^Jane^^^",
                   "PID-7|19700101", "PID-8|F")]
    if with_hash:
        slots += [_slot("hash", hashlib.sha1(content).hexdigest()), _slot("size", str(len(content))),
                  _slot("repositoryUniqueId", repo)]
    author_cls = ('<rim:Classification classificationScheme="urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"'
                  ' classifiedObject="%s" id="%s" nodeRepresentation="">%s%s%s</rim:Classification>'
                  % (eid, "urn:uuid:" + str(uuid.uuid4()), _slot("authorPerson", author),
                     _slot("authorInstitution", "Springfield General^^^^^^^^^1.2.3.4.5.6"),
                     _slot("authorSpecialty", "Cardiology")))
    codes = [
        author_cls,
        _code(eid, "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a", class_code, "2.16.840.1.113883.6.1",
              "Summarization of episode note"),
        _code(eid, "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", "N", "2.16.840.1.113883.5.25", "Normal"),
        _code(eid, "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
              "urn:hl7-org:sdwg:ccda-structuredBody:2.1", "1.3.6.1.4.1.19376.1.2.3", "C-CDA R2.1"),
        _code(eid, "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", "22232009", "2.16.840.1.113883.6.96",
              "Hospital"),
        _code(eid, "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead", "394579002", "2.16.840.1.113883.6.96",
              "Cardiology"),
        _code(eid, "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", type_code, "2.16.840.1.113883.6.1",
              "Discharge summary"),
    ]
    for code, scheme in event_codes:
        codes.append(_code(eid, "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4", code, scheme, code))
    return ('<rim:ExtrinsicObject id="%s" mimeType="%s" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">'
            '%s%s%s%s%s</rim:ExtrinsicObject>'
            % (eid, mime, "".join(slots), _name("Discharge summary"), "".join(codes),
               _extid(eid, "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427", patient, "XDSDocumentEntry.patientId"),
               _extid(eid, "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab", uid, "XDSDocumentEntry.uniqueId")))


def submission_set(patient, uid, ss_id="SubmissionSet01"):
    return ('<rim:RegistryPackage id="%s">%s%s%s%s%s%s</rim:RegistryPackage>'
            '<rim:Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"'
            ' classifiedObject="%s" id="%s"/>'
            % (ss_id, _slot("submissionTime", "20261122083100"), _name("Discharge"),
               '<rim:Classification classificationScheme="urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"'
               ' classifiedObject="%s" id="%s" nodeRepresentation="">%s</rim:Classification>'
               % (ss_id, "urn:uuid:" + str(uuid.uuid4()), _slot("authorPerson", "^Welby^Marcus^^^Dr^MD")),
               _code(ss_id, "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500", "18842-5", "2.16.840.1.113883.6.1",
                     "Discharge summary"),
               _extid(ss_id, "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", uid, "XDSSubmissionSet.uniqueId"),
               _extid(ss_id, "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", "1.3.6.1.4.1.21367.2026.99",
                      "XDSSubmissionSet.sourceId")
               + _extid(ss_id, "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446", patient,
                        "XDSSubmissionSet.patientId"),
               ss_id, "urn:uuid:" + str(uuid.uuid4())))


def folder(fid, patient, uid, code="Referrals"):
    return ('<rim:RegistryPackage id="%s">%s%s%s%s</rim:RegistryPackage>'
            '<rim:Classification classificationNode="urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"'
            ' classifiedObject="%s" id="%s"/>'
            % (fid, _name("Folder " + code),
               _code(fid, "urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5", code, "1.3.6.1.4.1.21367.100.1", code),
               _extid(fid, "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a", uid, "XDSFolder.uniqueId"),
               _extid(fid, "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a", patient, "XDSFolder.patientId"),
               fid, "urn:uuid:" + str(uuid.uuid4())))


def association(aid, atype, source, target, ss_status=None):
    slot = _slot("SubmissionSetStatus", ss_status) if ss_status else ""
    return ('<rim:Association associationType="%s" id="%s" sourceObject="%s" targetObject="%s">%s</rim:Association>'
            % (atype, aid, source, target, slot))


HASMEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
APND = "urn:ihe:iti:2007:AssociationType:APND"


def submission(patient, docs, ss_uid=None, extra=""):
    """docs: list of (entry id, uniqueId, content bytes, document_entry kwargs dict)."""
    objs = [document_entry(eid, patient, uid, content, **kw) for eid, uid, content, kw in docs]
    objs.append(submission_set(patient, ss_uid or new_uid()))
    for i, (eid, _, _, _) in enumerate(docs):
        objs.append(association("hm%d" % i, HASMEMBER, "SubmissionSet01", eid, "Original"))
    return ('<lcm:SubmitObjectsRequest xmlns:lcm="%s" xmlns:rim="%s"><rim:RegistryObjectList>%s%s'
            '</rim:RegistryObjectList></lcm:SubmitObjectsRequest>' % (NS["lcm"], NS["rim"], "".join(objs), extra))


def soap(action, body, to="http://localhost/xds/registry"):
    return ('<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="%s" xmlns:wsa="%s"><soap:Header>'
            '<wsa:Action soap:mustUnderstand="true">%s</wsa:Action><wsa:MessageID>urn:uuid:%s</wsa:MessageID>'
            '<wsa:To>%s</wsa:To></soap:Header><soap:Body>%s</soap:Body></soap:Envelope>'
            % (NS["soap"], NS["wsa"], action, uuid.uuid4(), to, body))


def post(port, path, action, body, timeout=30, conn=None):
    """POSTs a SOAP request; returns (status, root element or None, raw body)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = soap(action, body).encode() if isinstance(body, str) else body
    conn.request("POST", path, body=data,
                 headers={"Content-Type": 'application/soap+xml; charset=UTF-8; action="%s"' % action})
    r = conn.getresponse()
    raw = r.read()
    if own:
        conn.close()
    root = None
    m = re.search(rb"<(\w+:)?Envelope[\s\S]*Envelope>", raw)
    if m:
        root = ET.fromstring(m.group(0))
    return r.status, root, raw


def registry_response(root):
    """(status, [(code, context, location)]) of the rs:RegistryResponse in a SOAP reply."""
    rr = root.find(".//rs:RegistryResponse", NS)
    assert rr is not None, ET.tostring(root)[:2000]
    errs = [(e.get("errorCode"), e.get("codeContext"), e.get("location"))
            for e in rr.findall("rs:RegistryErrorList/rs:RegistryError", NS)]
    return rr.get("status"), errs


# ITI-41 / ITI-43 / ITI-18 -----------------------------------------------------------------------------------
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"


def mtom(action, body_xml, parts, to="http://localhost/xds/repository"):
    """(content type, bytes) of an MTOM package: the SOAP envelope and parts {content-id: bytes}."""
    boundary = "MIMEBoundary_" + uuid.uuid4().hex
    root = soap(action, body_xml, to).encode()
    out = [b"--" + boundary.encode(),
           b'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"',
           b"Content-Transfer-Encoding: binary", b"Content-ID: <root.message@hienode.test>", b"", root]
    for cid, data in parts.items():
        out += [b"--" + boundary.encode(), b"Content-Type: application/octet-stream",
                b"Content-Transfer-Encoding: binary", ("Content-ID: <%s>" % cid).encode(), b"", data]
    body = b"\r\n".join(out) + b"\r\n--" + boundary.encode() + b"--\r\n"
    ct = ('multipart/related; boundary="%s"; type="application/xop+xml"; start="<root.message@hienode.test>";'
          ' start-info="application/soap+xml"; action="%s"' % (boundary, action))
    return ct, body


def provide_and_register(patient, docs, ss_uid=None, extra="", inline=False):
    """(content type, body) of an ITI-41 request; docs as for submission(), bytes sent by MTOM or inline."""
    sub = submission(patient, [(e, u, c, dict(kw, with_hash=False)) for e, u, c, kw in docs], ss_uid, extra)
    parts, refs = {}, []
    for i, (eid, _, content, _) in enumerate(docs):
        if inline:
            refs.append('<xdsb:Document id="%s">%s</xdsb:Document>' % (eid, base64.b64encode(content).decode()))
        else:
            cid = "doc%d@hienode.test" % i
            parts[cid] = content
            refs.append('<xdsb:Document id="%s"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include"'
                        ' href="cid:%s"/></xdsb:Document>' % (eid, cid))
    body = ('<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb="%s">%s%s</xdsb:ProvideAndRegisterDocumentSetRequest>'
            % (NS["xdsb"], sub, "".join(refs)))
    if inline:
        return 'application/soap+xml; charset=UTF-8; action="%s"' % ITI41, soap(ITI41, body).encode()
    return mtom(ITI41, body, parts)


def retrieve(repo_uid, doc_uids, home=None):
    reqs = "".join('<xdsb:DocumentRequest>%s<xdsb:RepositoryUniqueId>%s</xdsb:RepositoryUniqueId>'
                   '<xdsb:DocumentUniqueId>%s</xdsb:DocumentUniqueId></xdsb:DocumentRequest>'
                   % ('<xdsb:HomeCommunityId>%s</xdsb:HomeCommunityId>' % home if home else "", repo_uid, u)
                   for u in doc_uids)
    body = '<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="%s">%s</xdsb:RetrieveDocumentSetRequest>' % (NS["xdsb"], reqs)
    return mtom(ITI43, body, {})


def find_documents(patient, return_type="LeafClass", statuses=(APPROVED,), extra_slots=""):
    values = "(%s)" % ",".join("'%s'" % s for s in statuses)
    return ('<query:AdhocQueryRequest xmlns:query="%s" xmlns:rim="%s"><query:ResponseOption returnComposedObjects="true"'
            ' returnType="%s"/><rim:AdhocQuery id="%s">%s%s%s</rim:AdhocQuery></query:AdhocQueryRequest>'
            % (NS["query"], NS["rim"], return_type, FIND_DOCUMENTS,
               _slot("$XDSDocumentEntryPatientId", "'%s'" % patient), _slot("$XDSDocumentEntryStatus", values),
               extra_slots))


def post_raw(port, path, content_type, body, timeout=60):
    """POSTs bytes; returns (status, response content type, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read()
    finally:
        conn.close()


def parse_reply(content_type, body):
    """(envelope root element, {content-id: bytes}) of a SOAP reply, plain or MTOM."""
    if not content_type.lower().startswith("multipart/"):
        return ET.fromstring(body), {}
    msg = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
                                   policy=email.policy.compat32)
    root, attachments = None, {}
    for p in msg.get_payload():
        data = p.get_payload(decode=True)
        cid = (p.get("Content-ID") or "").strip().strip("<>")
        if root is None:
            root = ET.fromstring(data)
        else:
            attachments[cid] = data
    return root, attachments


def document_bytes(root, attachments, doc_uid):
    """The bytes of the DocumentResponse for doc_uid in an ITI-43 reply (MTOM part or inline base64)."""
    for dr in root.iter("{%s}DocumentResponse" % NS["xdsb"]):
        if dr.findtext("xdsb:DocumentUniqueId", namespaces=NS) != doc_uid:
            continue
        d = dr.find("xdsb:Document", NS)
        inc = d.find("{http://www.w3.org/2004/08/xop/include}Include")
        if inc is not None:
            href = inc.get("href")
            return attachments[href[4:] if href.startswith("cid:") else href]
        return base64.b64decode(d.text or "")
    return None
