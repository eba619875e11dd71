"""ITI-18 Registry Stored Query against the running daemon: a patient added with the CLI, two documents registered
with ITI-42 over HTTP, then FindDocuments (LeafClass and ObjectRef, status and event-code filters), GetDocuments
across two patients (XDSResultNotSinglePatient for LeafClass only), GetSubmissionSetAndContents, parameter
errors answered in the AdhocQueryResponse, and a body that is not an AdhocQueryRequest answered with a fault."""
import xml.etree.ElementTree as ET

import xds
from harness import Node, main

PID_A = xds.pid("SQ-A")
PID_B = xds.pid("SQ-B")
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
GET_SS_AND_CONTENTS = "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;")


def adhoc(qid, rt, *slots):
    """slots: (name, [raw Value texts])."""
    body = "".join('<rim:Slot name="%s"><rim:ValueList>%s</rim:ValueList></rim:Slot>'
                   % (name, "".join("<rim:Value>%s</rim:Value>" % esc(v) for v in values)) for name, values in slots)
    return ('<query:AdhocQueryRequest xmlns:query="%s" xmlns:rim="%s"><query:ResponseOption returnComposedObjects='
            '"true" returnType="%s"/><rim:AdhocQuery id="%s">%s</rim:AdhocQuery></query:AdhocQueryRequest>'
            % (xds.NS["query"], xds.NS["rim"], rt, qid, body))


def query(n, body):
    status, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI18, body)
    assert status == 200, (status, raw[:2000])
    action = root.find(".//wsa:Action", xds.NS)
    assert action is not None and action.text.strip() == xds.ITI18 + "Response", raw[:1000]
    resp = root.find(".//query:AdhocQueryResponse", xds.NS)
    assert resp is not None, raw[:2000]
    errs = [e.get("errorCode") for e in resp.findall("rs:RegistryErrorList/rs:RegistryError", xds.NS)]
    objs = list(resp.find("rim:RegistryObjectList", xds.NS))
    return resp.get("status"), errs, objs


def register(n, body):
    status, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI42, body)
    assert status == 200, (status, raw[:2000])
    st, errs = xds.registry_response(root)
    assert st == xds.SUCCESS, errs


def tag(e):
    return e.tag.split("}")[1]


def find_docs(n, rt, pid=PID_A, *extra):
    return query(n, adhoc(FIND_DOCUMENTS, rt, ("$XDSDocumentEntryPatientId", ["'%s'" % pid]),
                          ("$XDSDocumentEntryStatus", ["('%s')" % xds.APPROVED]), *extra))


def test_stored_queries():
    n = Node("query")
    try:
        for p in (PID_A, PID_B):
            r = n.run("patient", "add", "--id", p)
            assert r.returncode == 0, r.stderr
        n.start()
        uid1, uid2, uidb = xds.new_uid(), xds.new_uid(), xds.new_uid()
        ss_uid = xds.new_uid()
        register(n, xds.submission(PID_A, [
            ("Document01", uid1, b"<ClinicalDocument>one</ClinicalDocument>",
             {"event_codes": [("E1", "1.2.3"), ("E2", "1.2.3")]}),
            ("Document02", uid2, b"<ClinicalDocument>two</ClinicalDocument>", {"event_codes": [("E1", "1.2.3")]}),
        ], ss_uid=ss_uid))
        register(n, xds.submission(PID_B, [("Document01", uidb, b"<ClinicalDocument>b</ClinicalDocument>", {})]))

        # FindDocuments, ObjectRef: two references, nothing else.
        st, errs, objs = find_docs(n, "ObjectRef")
        assert st == xds.SUCCESS and not errs, errs
        assert [tag(o) for o in objs] == ["ObjectRef", "ObjectRef"], [tag(o) for o in objs]
        ids = sorted(o.get("id") for o in objs)
        assert all(i.startswith("urn:uuid:") for i in ids), ids

        # LeafClass: the same two ExtrinsicObjects, with status, uniqueIds as registered.
        st, errs, objs = find_docs(n, "LeafClass")
        assert st == xds.SUCCESS and not errs, errs
        eos = [o for o in objs if tag(o) == "ExtrinsicObject"]
        assert sorted(o.get("id") for o in eos) == ids
        assert all(o.get("status") == xds.APPROVED for o in eos)
        uids = sorted(e.get("value") for o in eos for e in o.findall("rim:ExternalIdentifier", xds.NS)
                      if e.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab")
        assert uids == sorted([uid1, uid2]), uids

        # Event codes: one slot ORs, two slots AND.
        st, errs, objs = find_docs(n, "ObjectRef", PID_A, ("$XDSDocumentEntryEventCodeList", ["('E1^^1.2.3')"]),
                                   ("$XDSDocumentEntryEventCodeList", ["('E2^^1.2.3')"]))
        assert st == xds.SUCCESS and len(objs) == 1, (errs, len(objs))
        st, errs, objs = find_docs(n, "ObjectRef", PID_A, ("$XDSDocumentEntryEventCodeList",
                                                          ["('E1^^1.2.3','E2^^1.2.3')"]))
        assert len(objs) == 2
        st, errs, objs = find_docs(n, "ObjectRef", PID_A, ("$XDSDocumentEntryStatus",
                                                          ["('%s')" % xds.DEPRECATED]))
        assert st == xds.FAILURE and errs == ["XDSStoredQueryParamNumber"], errs  # Status given twice
        st, errs, objs = query(n, adhoc(FIND_DOCUMENTS, "ObjectRef",
                                        ("$XDSDocumentEntryPatientId", ["'%s'" % PID_A]),
                                        ("$XDSDocumentEntryStatus", ["('%s')" % xds.DEPRECATED])))
        assert st == xds.SUCCESS and objs == [], errs

        # GetDocuments across two patients: LeafClass refused, ObjectRef fine.
        st, errs, objs = find_docs(n, "ObjectRef", PID_B)
        assert len(objs) == 1
        both = "('%s','%s')" % (ids[0], objs[0].get("id"))
        st, errs, objs = query(n, adhoc(GET_DOCUMENTS, "LeafClass", ("$XDSDocumentEntryEntryUUID", [both])))
        assert st == xds.FAILURE and errs == ["XDSResultNotSinglePatient"] and objs == [], errs
        st, errs, objs = query(n, adhoc(GET_DOCUMENTS, "ObjectRef", ("$XDSDocumentEntryEntryUUID", [both])))
        assert st == xds.SUCCESS and len(objs) == 2, errs
        st, errs, objs = query(n, adhoc(GET_DOCUMENTS, "LeafClass", ("$XDSDocumentEntryUniqueId", ["('%s')" % uid2])))
        assert st == xds.SUCCESS and [tag(o) for o in objs if tag(o) == "ExtrinsicObject"] == ["ExtrinsicObject"]

        # GetSubmissionSetAndContents by uniqueId: the set, both documents, the HasMember associations.
        st, errs, objs = query(n, adhoc(GET_SS_AND_CONTENTS, "LeafClass",
                                        ("$XDSSubmissionSetUniqueId", ["'%s'" % ss_uid])))
        kinds = sorted(tag(o) for o in objs if tag(o) in ("RegistryPackage", "ExtrinsicObject", "Association"))
        assert st == xds.SUCCESS and kinds == ["Association", "Association", "ExtrinsicObject", "ExtrinsicObject",
                                               "RegistryPackage"], (errs, kinds)

        # Errors in the response, not faults.
        st, errs, objs = query(n, adhoc("urn:uuid:00000000-0000-0000-0000-000000000000", "LeafClass"))
        assert st == xds.FAILURE and errs == ["XDSUnknownStoredQuery"], errs
        st, errs, objs = query(n, adhoc(FIND_DOCUMENTS, "ObjectRef",
                                        ("$XDSDocumentEntryStatus", ["('%s')" % xds.APPROVED])))
        assert st == xds.FAILURE and errs == ["XDSStoredQueryParamNumber"], errs
        st, errs, objs = find_docs(n, "ObjectRef", PID_A, ("$XDSDocumentEntryClassCode", ["('nocode')"]))
        assert st == xds.FAILURE and errs == ["XDSRegistryError"], errs

        # Not an AdhocQueryRequest: a Sender fault.
        status, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI18,
                                     "<query:Other xmlns:query='%s'/>" % xds.NS["query"])
        assert status == 500 and b"Sender" in raw, (status, raw[:500])

        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


if __name__ == "__main__":
    main([test_stored_queries])
