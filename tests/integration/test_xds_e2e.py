"""The XDS.b story end to end, as a client that is not hienode sees it: the patient arrives by ITI-8 over MLLP,
a C-CDA is provided and registered by MTOM (ITI-41), found with FindDocuments in both return types (ITI-18),
retrieved byte for byte (ITI-43), replaced (RPLC) — after which the original is Deprecated and only the
replacement is Approved — and a retrieve of a missing document among found ones is a PartialSuccess."""
import os
import socket

import xds
from harness import Node, main

SB, EB = b"\x0b", b"\x1c\r"
LOCAL_ID = "E2E-%d" % os.getpid()
PID = xds.pid(LOCAL_ID)
REPO = "1.3.6.1.4.1.21367.13.20.1000.1"  # [repository] unique_id default


def feed_patient(n):
    msg = ("MSH|^~\\&|EHR|GENHOSP|HIE|HIE|20261122080000||ADT^A04^ADT_A01|E2E-1|P|2.5.1\r"
           "EVN||20261122080000\r"
           "PID|1||%s^^^&%s&ISO||Doe^Jane||19700101|F|||1 Main St^^Springfield^IL^62701^USA\r"
           "PV1|1|O\r" % (LOCAL_ID, xds.PID_OID))
    s = socket.create_connection(("127.0.0.1", n.mllp_port), timeout=30)
    try:
        s.sendall(SB + msg.encode() + EB)
        buf = b""
        while not buf.endswith(EB):
            chunk = s.recv(4096)
            assert chunk, buf
            buf += chunk
    finally:
        s.close()
    assert b"MSA|AA|E2E-1" in buf, buf


def ccda(title, size=200000):
    head = ('<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>%s</title>'
            % title).encode()
    body = (b"<component><section><text>" + os.urandom(size // 2).hex().encode() + b"</text></section></component>")
    return head + body + b"</ClinicalDocument>"


def provide(n, docs, extra=""):
    ct, body = xds.provide_and_register(PID, docs, extra=extra)
    status, rct, raw = xds.post_raw(n.http_port, "/xds/repository", ct, body)
    assert status == 200, (status, raw[:2000])
    root, _ = xds.parse_reply(rct, raw)
    return xds.registry_response(root)


def query(n, return_type, statuses):
    status, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI18,
                                 xds.find_documents(PID, return_type, statuses))
    assert status == 200, (status, raw[:2000])
    resp = root.find(".//query:AdhocQueryResponse", xds.NS)
    assert resp is not None, raw[:2000]
    return resp


def leaf_entries(resp):
    out = {}
    for eo in resp.iter("{%s}ExtrinsicObject" % xds.NS["rim"]):
        uid = None
        for ei in eo.findall("rim:ExternalIdentifier", xds.NS):
            if ei.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab":
                uid = ei.get("value")
        slots = {s.get("name"): [v.text for v in s.findall("rim:ValueList/rim:Value", xds.NS)]
                 for s in eo.findall("rim:Slot", xds.NS)}
        out[uid] = (eo.get("id"), eo.get("status"), slots)
    return out


def test_xds_story():
    n = Node("xds-e2e")
    try:
        n.start()
        feed_patient(n)

        doc1, uid1 = ccda("Discharge summary"), xds.new_uid()
        st, errs = provide(n, [("Document01", uid1, doc1, {"mime": "text/xml"})])
        assert st == xds.SUCCESS and errs == [], errs

        leaf = leaf_entries(query(n, "LeafClass", [xds.APPROVED]))
        assert list(leaf) == [uid1], leaf
        entry_uuid, status, slots = leaf[uid1]
        assert status == xds.APPROVED, leaf
        import hashlib
        assert slots["hash"] == [hashlib.sha1(doc1).hexdigest()] and slots["size"] == [str(len(doc1))], slots
        assert slots["repositoryUniqueId"] == [REPO], slots
        refs = query(n, "ObjectRef", [xds.APPROVED]).findall(".//rim:ObjectRef", xds.NS)
        assert [r.get("id") for r in refs] == [entry_uuid], [r.get("id") for r in refs]

        ct, body = xds.retrieve(REPO, [uid1])
        status, rct, raw = xds.post_raw(n.http_port, "/xds/repository", ct, body)
        assert status == 200 and rct.startswith("multipart/related"), (status, rct, raw[:500])
        root, parts = xds.parse_reply(rct, raw)
        assert xds.document_bytes(root, parts, uid1) == doc1

        # RPLC: the replacement registered, the original deprecated.
        doc2, uid2 = ccda("Discharge summary (corrected)"), xds.new_uid()
        st, errs = provide(n, [("Document01", uid2, doc2, {})],
                           extra=xds.association("rplc", xds.RPLC, "Document01", entry_uuid))
        assert st == xds.SUCCESS, errs
        approved = leaf_entries(query(n, "LeafClass", [xds.APPROVED]))
        deprecated = leaf_entries(query(n, "LeafClass", [xds.DEPRECATED]))
        assert list(approved) == [uid2] and list(deprecated) == [uid1], (approved, deprecated)
        both = leaf_entries(query(n, "LeafClass", [xds.APPROVED, xds.DEPRECATED]))
        assert sorted(both) == sorted([uid1, uid2]), both

        # Two found and one missing: PartialSuccess with XDSDocumentUniqueIdError; both found documents exact.
        missing = xds.new_uid()
        ct, body = xds.retrieve(REPO, [uid1, missing, uid2])
        status, rct, raw = xds.post_raw(n.http_port, "/xds/repository", ct, body)
        root, parts = xds.parse_reply(rct, raw)
        st, errs = xds.registry_response(root)
        assert st == "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess", (st, errs)
        assert [e[0] for e in errs] == ["XDSDocumentUniqueIdError"] and missing in (errs[0][1] + (errs[0][2] or "")), errs
        assert xds.document_bytes(root, parts, uid1) == doc1 and xds.document_bytes(root, parts, uid2) == doc2
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    main([test_xds_story])
