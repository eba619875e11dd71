"""Metadata life cycle against the running daemon: ITI-57 Update Document Set (a new DocumentEntry version by lid
and PreviousVersion deprecates the old one; a stale PreviousVersion, a changed uniqueId or patient are refused;
UpdateAvailabilityStatus) and ITI-62 Remove Metadata (unknown ids, references left behind, SubmissionSets left
empty, then a clean removal)."""
import xds
from harness import Node, main

ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
ITI62 = "urn:ihe:iti:2010:DeleteDocumentSet"
UPDATE_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
PID_A = xds.pid("LC-A")
PID_B = xds.pid("LC-B")


def call(n, action, body):
    status, root, raw = xds.post(n.http_port, "/xds/registry", action, body)
    assert status == 200, (status, raw[:2000])
    st, errs = xds.registry_response(root)
    return st, [e[0] for e in errs], errs


def new_version(patient, lid, uid, content, prev):
    body = xds.submission(patient, [("Document01", uid, content, {})])
    body = body.replace('<rim:ExtrinsicObject id="Document01"', '<rim:ExtrinsicObject id="Document01" lid="%s"' % lid)
    return body.replace('<rim:Slot name="SubmissionSetStatus">',
                        '<rim:Slot name="PreviousVersion"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList>'
                        '</rim:Slot><rim:Slot name="SubmissionSetStatus">' % prev)


def status_update(patient, target, orig, new):
    assoc = ('<rim:Association associationType="%s" id="up1" sourceObject="SubmissionSet01" targetObject="%s">'
             '<rim:Slot name="OriginalStatus"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>'
             '<rim:Slot name="NewStatus"><rim:ValueList><rim:Value>%s</rim:Value></rim:ValueList></rim:Slot>'
             '</rim:Association>' % (UPDATE_STATUS, target, orig, new))
    return xds.submission(patient, [], extra=assoc)


def remove(ids):
    return ('<lcm:RemoveObjectsRequest xmlns:lcm="%s" xmlns:rim="%s"><rim:ObjectRefList>%s</rim:ObjectRefList>'
            '</lcm:RemoveObjectsRequest>' % (xds.NS["lcm"], xds.NS["rim"],
                                             "".join('<rim:ObjectRef id="%s"/>' % i for i in ids)))


def test_update_document_set():
    n = Node("lifecycle-57")
    try:
        n.start()
        for p in (PID_A, PID_B):
            assert n.run("patient", "add", "--id", p).returncode == 0
        uid = xds.new_uid()
        st, codes, errs = call(n, xds.ITI42, xds.submission(PID_A, [("Document01", uid, b"v1", {})]))
        assert st == xds.SUCCESS, errs
        uuid1 = n.sql("SELECT uuid FROM reg_documents WHERE unique_id = '%s'" % uid)[0][0]
        assert 'versionName="1"' in n.sql("SELECT xml FROM reg_documents WHERE uuid = '%s'" % uuid1)[0][0]

        # A new version: same uniqueId, lid = the original's, PreviousVersion 1.
        st, codes, errs = call(n, ITI57, new_version(PID_A, uuid1, uid, b"v1", 1))
        assert st == xds.SUCCESS, errs
        rows = n.sql("SELECT uuid, version, status, lid FROM reg_documents WHERE unique_id = '%s' ORDER BY version"
                     % uid)
        assert [(r[1], r[2], r[3]) for r in rows] == [("1", xds.DEPRECATED, uuid1), ("2", xds.APPROVED, uuid1)], rows
        uuid2 = rows[1][0]
        assert 'versionName="2"' in n.sql("SELECT xml FROM reg_documents WHERE uuid = '%s'" % uuid2)[0][0]

        # Stale PreviousVersion, another uniqueId, another patient, an unknown lid: refused, nothing stored.
        st, codes, errs = call(n, ITI57, new_version(PID_A, uuid1, uid, b"v1", 1))
        assert st == xds.FAILURE and codes == ["XDSMetadataVersionError"], errs
        st, codes, errs = call(n, ITI57, new_version(PID_A, uuid1, xds.new_uid(), b"v1", 2))
        assert st == xds.FAILURE and codes == ["XDSMetadataIdentifierError"], errs
        st, codes, errs = call(n, ITI57, new_version(PID_B, uuid1, uid, b"v1", 2))
        assert st == xds.FAILURE and codes == ["XDSPatientIDReconciliationError"], errs
        ghost = "urn:uuid:00000000-0000-4000-8000-00000000abcd"
        st, codes, errs = call(n, ITI57, new_version(PID_A, ghost, uid, b"v1", 1))
        assert st == xds.FAILURE and codes == ["XDSMetadataUpdateError"], errs
        assert len(n.sql("SELECT 1 FROM reg_documents WHERE unique_id = '%s'" % uid)) == 2

        # UpdateAvailabilityStatus: a wrong OriginalStatus is refused, the right one deprecates.
        st, codes, errs = call(n, ITI57, status_update(PID_A, uuid2, xds.DEPRECATED, xds.APPROVED))
        assert st == xds.FAILURE and codes == ["XDSMetadataUpdateError"], errs
        st, codes, errs = call(n, ITI57, status_update(PID_A, uuid2, xds.APPROVED, xds.DEPRECATED))
        assert st == xds.SUCCESS, errs
        assert n.sql("SELECT status FROM reg_documents WHERE uuid = '%s'" % uuid2)[0][0] == xds.DEPRECATED
        # ITI-42 does not accept the update association types.
        st, codes, errs = call(n, xds.ITI42, status_update(PID_A, uuid2, xds.DEPRECATED, xds.APPROVED))
        assert st == xds.FAILURE and "XDSRegistryMetadataError" in codes, errs
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


def test_remove_metadata():
    n = Node("lifecycle-62")
    try:
        n.start()
        assert n.run("patient", "add", "--id", PID_A).returncode == 0
        uid = xds.new_uid()
        st, codes, errs = call(n, xds.ITI42, xds.submission(PID_A, [("Document01", uid, b"to remove", {})]))
        assert st == xds.SUCCESS, errs
        de = n.sql("SELECT uuid FROM reg_documents WHERE unique_id = '%s'" % uid)[0][0]
        ss = n.sql("SELECT uuid FROM reg_packages")[0][0]
        hm = n.sql("SELECT uuid FROM reg_associations")[0][0]

        st, codes, errs = call(n, ITI62, remove(["urn:uuid:00000000-0000-4000-8000-000000000077"]))
        assert st == xds.FAILURE and codes == ["UnresolvedReferenceException"], errs
        st, codes, errs = call(n, ITI62, remove([ss]))
        assert st == xds.FAILURE and codes == ["ReferencesExistException"] and hm in errs[0][1], errs
        st, codes, errs = call(n, ITI62, remove([de, hm]))
        assert st == xds.FAILURE and codes == ["XDSUnreferencedObjectException"], errs
        st, codes, errs = call(n, ITI62, remove([]))
        assert st == xds.FAILURE, errs
        assert len(n.sql("SELECT 1 FROM reg_documents")) == 1
        st, codes, errs = call(n, ITI62, remove([ss, de, hm]))
        assert st == xds.SUCCESS, errs
        for table in ("reg_documents", "reg_packages", "reg_associations", "reg_extra"):
            assert n.sql("SELECT count(*) FROM %s" % table)[0][0] == "0", table
        status, root, raw = xds.post(n.http_port, "/xds/registry", ITI62, "<x xmlns='urn:y'/>")
        assert status == 500 and b"Sender" in raw, raw[:500]
        n.check_log()
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    main([test_update_document_set, test_remove_metadata])
