"""ITI-42 Register Document Set-b against the running daemon: success only after commit, the database-side
rules (unknown patient, resubmission by uniqueId/hash/size, duplicate SubmissionSet uniqueId, RPLC deprecating
the original, associations to deprecated documents, patient mismatch), atomicity (a failing submission stores
nothing), concurrent registrations of one uniqueId, and SOAP-level refusals."""
import threading

import xds
from harness import Node, main

PID_A = xds.pid("REG-A")
PID_B = xds.pid("REG-B")


def register(n, body, conn=None):
    status, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI42, body, conn=conn)
    assert status == 200, (status, raw[:2000])
    return xds.registry_response(root)


def codes(errs):
    return [e[0] for e in errs]


def count(n, table, where="true"):
    return int(n.sql("SELECT count(*) FROM %s WHERE %s" % (table, where))[0][0])


def doc(eid, uid, content, **kw):
    return (eid, uid, content, kw)


def test_register_rules():
    n = Node("register")
    try:
        n.start()
        uid1 = xds.new_uid()
        body = xds.submission(PID_A, [doc("Document01", uid1, b"<ClinicalDocument>one</ClinicalDocument>")])

        # Unknown patient: refused, nothing stored.
        st, errs = register(n, body)
        assert st == xds.FAILURE and codes(errs) == ["XDSUnknownPatientId"], errs
        assert "REG-A" in errs[0][1], errs
        assert count(n, "reg_documents") == 0

        for p in (PID_A, PID_B):
            r = n.run("patient", "add", "--id", p, "--family", "Doe", "--given", "Jane")
            assert r.returncode == 0, r.stderr

        st, errs = register(n, body)
        assert st == xds.SUCCESS and errs == [], errs
        rows = n.sql("SELECT uuid, status, patient_id, class_code, hash, size, creation_time, author_persons"
                     " FROM reg_documents WHERE unique_id = '%s'" % uid1)
        assert len(rows) == 1, rows
        uuid1, status, patient, class_code, hsh, size, ctime, authors = rows[0]
        assert uuid1.startswith("urn:uuid:") and status == xds.APPROVED and patient == PID_A, rows
        assert class_code == "34133-9^^2.16.840.1.113883.6.1" and ctime == "20261122083000", rows
        assert authors == "{^Welby^Marcus^^^Dr^MD}" and size == "40", rows
        assert count(n, "reg_packages", "kind = 'SubmissionSet'") == 1
        assert count(n, "reg_associations") == 1
        assert count(n, "reg_extra") == 1  # the SubmissionSet's top-level classification
        xml = n.sql("SELECT xml FROM reg_documents WHERE uuid = '%s'" % uuid1)[0][0]
        assert 'status=' not in xml and 'lid="%s"' % uuid1 in xml, xml[:400]

        # The same request again (a client retrying after a lost response): success, nothing stored twice.
        st, errs = register(n, body)
        assert st == xds.SUCCESS and errs == [], errs
        assert count(n, "reg_documents") == 1 and count(n, "reg_packages") == 1

        # The same document in a new SubmissionSet (another submitter's copy, NIST 12004): a second entry.
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", uid1,
                                                          b"<ClinicalDocument>one</ClinicalDocument>")]))
        assert st == xds.SUCCESS and errs == [], errs
        assert count(n, "reg_documents", "unique_id = '%s'" % uid1) == 2 and count(n, "reg_packages") == 2

        # Same uniqueId, other bytes: XDSNonIdenticalHash; same hash, other size: XDSNonIdenticalSize.
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", uid1, b"<ClinicalDocument>TWO</ClinicalDocument>")]))
        assert st == xds.FAILURE and codes(errs) == ["XDSNonIdenticalHash"], errs
        body_size = xds.submission(PID_A, [doc("Document01", uid1, b"<ClinicalDocument>one</ClinicalDocument>")])
        body_size = body_size.replace('<rim:Value>40</rim:Value>', '<rim:Value>41</rim:Value>')
        st, errs = register(n, body_size)
        assert st == xds.FAILURE and codes(errs) == ["XDSNonIdenticalSize"], errs

        # A SubmissionSet uniqueId registered before, with a new document: XDSDuplicateUniqueIdInRegistry.
        ss_uid = n.sql("SELECT unique_id FROM reg_packages ORDER BY seq LIMIT 1")[0][0]
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"x")], ss_uid=ss_uid))
        assert st == xds.FAILURE and codes(errs) == ["XDSDuplicateUniqueIdInRegistry"], errs

        # Atomicity: two documents, the second's uniqueId clashes by hash -> nothing of the submission stored.
        before = count(n, "reg_documents"), count(n, "reg_packages"), count(n, "reg_associations")
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"fresh"),
                                                      doc("Document02", uid1, b"different bytes")]))
        assert st == xds.FAILURE and codes(errs) == ["XDSNonIdenticalHash"], errs
        assert (count(n, "reg_documents"), count(n, "reg_packages"), count(n, "reg_associations")) == before

        # RPLC: the replacement is registered and the original deprecated.
        uid2 = xds.new_uid()
        rplc = xds.association("rplc", xds.RPLC, "Document01", uuid1)
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", uid2, b"v2")], extra=rplc))
        assert st == xds.SUCCESS, errs
        assert n.sql("SELECT status FROM reg_documents WHERE uuid = '%s'" % uuid1)[0][0] == xds.DEPRECATED
        assert n.sql("SELECT status FROM reg_documents WHERE unique_id = '%s'" % uid2)[0][0] == xds.APPROVED

        # APND to the deprecated original: XDSRegistryDeprecatedDocumentError, nothing stored.
        apnd = xds.association("apnd", xds.APND, "Document01", uuid1)
        uid3 = xds.new_uid()
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", uid3, b"addendum")], extra=apnd))
        assert st == xds.FAILURE and codes(errs) == ["XDSRegistryDeprecatedDocumentError"], errs
        assert count(n, "reg_documents", "unique_id = '%s'" % uid3) == 0

        # RPLC of another patient's document: XDSPatientIdDoesNotMatch.
        uuid2 = n.sql("SELECT uuid FROM reg_documents WHERE unique_id = '%s'" % uid2)[0][0]
        rplc_b = xds.association("rplc", xds.RPLC, "Document01", uuid2)
        st, errs = register(n, xds.submission(PID_B, [doc("Document01", xds.new_uid(), b"b")], extra=rplc_b))
        assert st == xds.FAILURE and codes(errs) == ["XDSPatientIdDoesNotMatch"], errs

        # RPLC of a document that does not exist: XDSRegistryMetadataError naming it.
        ghost = "urn:uuid:00000000-0000-4000-8000-000000000001"
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"c")],
                                              extra=xds.association("rplc", xds.RPLC, "Document01", ghost)))
        assert st == xds.FAILURE and codes(errs) == ["XDSRegistryMetadataError"] and ghost in errs[0][1], errs

        # DB-free rule with codeContext naming the attribute: classCode missing.
        bad = xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"d")])
        bad = bad.replace('classificationScheme="urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"',
                          'classificationScheme="urn:uuid:00000000-8865-4c09-adf7-e362475b143a"')
        st, errs = register(n, bad)
        assert st == xds.FAILURE and "XDSRegistryMetadataError" in codes(errs), errs
        assert any("classCode" in e[1] for e in errs), errs
        # Ids given as urn:uuid: a top-level Classification id used before gets a fresh one (nothing refers to
        # it; the NIST testkit reuses fixed ones); a SubmissionSet id used before is refused, naming it.
        fixed_ss = "urn:uuid:5f0c5d8e-0000-4000-8000-00000000aa01"
        fixed_cls = "urn:uuid:5f0c5d8e-0000-4000-8000-00000000aa02"

        def fixed_ids(body):
            body = body.replace("SubmissionSet01", fixed_ss)
            return body.replace('classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"'
                                ' classifiedObject="%s" id="' % fixed_ss,
                                'classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"'
                                ' classifiedObject="%s" id="%s" x="' % (fixed_ss, fixed_cls))
        st, errs = register(n, fixed_ids(xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"f1")])))
        assert st == xds.SUCCESS, errs
        body = fixed_ids(xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"f2")]))
        body = body.replace(fixed_ss, "urn:uuid:5f0c5d8e-0000-4000-8000-00000000aa03")
        body = body.replace("urn:uuid:5f0c5d8e-0000-4000-8000-00000000aa03\" id=\"%s" % fixed_cls,
                            "urn:uuid:5f0c5d8e-0000-4000-8000-00000000aa03\" id=\"%s" % fixed_cls)
        st, errs = register(n, body)
        assert st == xds.SUCCESS, errs
        assert count(n, "reg_extra", "owner = 'urn:uuid:5f0c5d8e-0000-4000-8000-00000000aa03'") == 1
        st, errs = register(n, fixed_ids(xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"f3")])))
        assert st == xds.FAILURE and codes(errs) == ["XDSRegistryMetadataError"] and fixed_ss in errs[0][1], errs

        # A Folder with a member: the SubmissionSet's HasMember to the Folder needs no SubmissionSetStatus.
        fuid, duid = xds.new_uid(), xds.new_uid()
        extra = (xds.folder("Folder01", PID_A, fuid) + xds.association("hmf", xds.HASMEMBER, "SubmissionSet01", "Folder01")
                 + xds.association("fd1", xds.HASMEMBER, "Folder01", "Document01")
                 + xds.association("hmfd", xds.HASMEMBER, "SubmissionSet01", "fd1"))
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", duid, b"in a folder")], extra=extra))
        assert st == xds.SUCCESS, errs
        frow = n.sql("SELECT uuid, last_update_time FROM reg_packages WHERE kind = 'Folder' AND unique_id = '%s'" % fuid)
        assert len(frow) == 1 and len(frow[0][1]) == 14, frow
        fdoc = n.sql("SELECT uuid FROM reg_documents WHERE unique_id = '%s'" % duid)[0][0]
        # Its replacement joins the folder.
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"replacement")],
                                              extra=xds.association("r2", xds.RPLC, "Document01", fdoc)))
        assert st == xds.SUCCESS, errs
        assert count(n, "reg_associations", "source = '%s' AND type = '%s'" % (frow[0][0], xds.HASMEMBER)) == 2
        # lastUpdateTime is the registry's: in the column and in the returned XML, the same value.
        t, fxml = n.sql("SELECT last_update_time, xml FROM reg_packages WHERE uuid = '%s'" % frow[0][0])[0]
        assert t >= frow[0][1] and fxml.count('name="lastUpdateTime"') == 1, fxml[:600]
        assert ('<rim:Value>%s</rim:Value>' % t) in fxml, (t, fxml[:600])

        # limitedMetadata is for XDR/XDM; the registry refuses it, naming it.
        lim = ('<rim:Classification classificationNode="urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"'
               ' classifiedObject="Document01" id="lim1"/>')
        st, errs = register(n, xds.submission(PID_A, [doc("Document01", xds.new_uid(), b"e")], extra=lim))
        assert st == xds.FAILURE and codes(errs) == ["XDSRegistryMetadataError"], errs
        assert "limitedMetadata" in errs[0][1], errs
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


def test_concurrent_same_uniqueid():
    """Clients register under one uniqueId at once: the same request replayed by four clients is stored once;
    four different SubmissionSets of the same bytes are four entries; eight submissions of two different byte
    strings under a new uniqueId: exactly one byte string wins, every other submission gets XDSNonIdenticalHash."""
    n = Node("register-race")
    try:
        n.start()
        assert n.run("patient", "add", "--id", PID_A).returncode == 0
        uid = xds.new_uid()

        def race(bodies):
            results = [None] * len(bodies)

            def one(i):
                results[i] = register(n, bodies[i])
            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return results

        replay = xds.submission(PID_A, [doc("Document01", uid, b"same bytes")])
        results = race([replay] * 4)
        assert all(st == xds.SUCCESS for st, _ in results), results
        assert count(n, "reg_documents", "unique_id = '%s'" % uid) == 1 and count(n, "reg_packages") == 1

        results = race([xds.submission(PID_A, [doc("Document01", uid, b"same bytes")]) for _ in range(4)])
        assert all(st == xds.SUCCESS for st, _ in results), results
        assert count(n, "reg_documents", "unique_id = '%s'" % uid) == 5 and count(n, "reg_packages") == 5

        uid2 = xds.new_uid()
        results = race([xds.submission(PID_A, [doc("Document01", uid2, b"A" if i % 2 else b"B")]) for i in range(8)])
        ok = [i for i, (st, _) in enumerate(results) if st == xds.SUCCESS]
        assert len(ok) == 4 and len(set(i % 2 for i in ok)) == 1, results
        assert all([e[0] for e in results[i][1]] == ["XDSNonIdenticalHash"] for i in range(8) if i not in ok), results
        assert count(n, "reg_documents", "unique_id = '%s'" % uid2) == 4
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


def test_soap_refusals():
    n = Node("register-soap")
    try:
        n.start()
        # Wrong body element: Sender fault.
        st, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI42, "<foo xmlns='urn:x'/>")
        assert st == 500 and b"Sender" in raw, raw[:500]
        # Empty body.
        st, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI42, "")
        assert st == 500 and b"Sender" in raw, raw[:500]
        # SubmitObjectsRequest in a wrong namespace.
        st, root, raw = xds.post(n.http_port, "/xds/registry", xds.ITI42,
                                 "<SubmitObjectsRequest xmlns='urn:oasis:names:tc:ebxml-regrep:xsd:lcm:2.1'/>")
        assert st == 500 and b"Sender" in raw, raw[:500]
        # No RegistryObjectList: a RegistryResponse with XDSRegistryMetadataError.
        st, errs = register(n, "<lcm:SubmitObjectsRequest xmlns:lcm='%s'/>" % xds.NS["lcm"])
        assert st == xds.FAILURE and codes(errs) == ["XDSRegistryMetadataError"], errs
        # Unknown action on the endpoint.
        st, root, raw = xds.post(n.http_port, "/xds/registry", "urn:ihe:iti:2007:Nonsense", "<x/>")
        assert st == 500 and b"ActionNotSupported" in raw, raw[:500]
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    main([test_register_rules, test_concurrent_same_uniqueid, test_soap_refusals])
