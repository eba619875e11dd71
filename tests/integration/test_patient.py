"""`hienode patient add|list|show` on the node's embedded cluster: with the node stopped (the command starts the
cluster and stops it again), then while the node runs (the command uses the running cluster and leaves it up),
and bad arguments refused with exit status 2 and a message naming the flag, before the database is touched."""
import os

from harness import BAD_LOG, Node, main, pid_alive

ID1 = "MRN-1001^^^&1.2.840.113619.6.197&ISO"
ID2 = "A7^^^&1.2.840.113619.6.197&ISO"
ID3 = "MRN-1001^^^&2.16.840.1.113883.3.72&ISO"


def ok(r):
    assert r.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr)
    assert not BAD_LOG.search(r.stderr), r.stderr
    return r.stdout


def list_lines(node, *args):
    return [l for l in ok(node.run("patient", "list", *args)).splitlines() if l]


def show(node, pid):
    out = ok(node.run("patient", "show", "--id", pid))
    return dict(line.split(None, 1) if " " in line.strip() else (line.strip(), "")
                for line in out.splitlines() if line.strip())


def postmaster_alive(node):
    pid = node.postmaster_pid()
    return bool(pid) and pid_alive(pid)


def test_patient_commands_stopped_then_running():
    n = Node("patient")
    try:
        # Node stopped: each command starts the embedded cluster and stops it again.
        out = ok(n.run("patient", "add", "--id", ID1, "--family", "O'Brien", "--given", "Mary Ann",
                       "--birth-date", "19800229", "--gender", "F", "--street", "1 Main St", "--city", "Springfield",
                       "--state", "IL", "--postal-code", "62701", "--country", "USA"))
        assert out.strip() == "created " + ID1, out
        assert not postmaster_alive(n), "a one-shot command left the cluster it started running"
        out = ok(n.run("patient", "add", "--id=" + ID1, "--given=Mary"))
        assert out.strip() == "updated " + ID1, out

        lines = list_lines(n)
        assert lines == [ID1 + "\tactive\tO'Brien, Mary\t19800229"], lines
        s = show(n, ID1)
        assert s["id"] == ID1 and s["state"] == "active", s
        assert s["family"] == "O'Brien" and s["given"] == "Mary", s  # --given replaced, the rest kept
        assert s["birth-date"] == "19800229" and s["gender"] == "F" and s["postal-code"] == "62701", s
        assert s["city"] == "Springfield" and s["street"] == "1 Main St", s
        assert not postmaster_alive(n)

        # Node running: same cluster, same data; the command leaves the cluster up.
        n.start()
        pm = n.postmaster_pid()
        assert pm and pid_alive(pm)
        assert list_lines(n) == [ID1 + "\tactive\tO'Brien, Mary\t19800229"]
        out = ok(n.run("patient", "add", "--id", ID2, "--family", "Robert'); DROP TABLE patients;--"))
        assert out.strip() == "created " + ID2, out
        ok(n.run("patient", "add", "--id", ID3))
        assert n.postmaster_pid() == pm and pid_alive(pm), "the command stopped the running node's cluster"
        assert n.http("GET", "/healthz")[0] == 200

        lines = list_lines(n)
        assert lines == [ID2 + "\tactive\tRobert'); DROP TABLE patients;--\t-",
                         ID1 + "\tactive\tO'Brien, Mary\t19800229",
                         ID3 + "\tactive\t-\t-"], lines
        assert list_lines(n, "--limit", "1") == [ID2 + "\tactive\tRobert'); DROP TABLE patients;--\t-"]
        assert len(list_lines(n, "--limit=2")) == 2
        assert show(n, ID2)["family"] == "Robert'); DROP TABLE patients;--"

        r = n.run("patient", "show", "--id", "nobody^^^&1.2.3&ISO")
        assert r.returncode == 1 and "unknown patient id nobody^^^&1.2.3&ISO" in r.stderr, r.stderr

        assert n.stop() == 0
        n.check_log()
        # Stopped again: the data is still there.
        assert len(list_lines(n)) == 3
        assert not postmaster_alive(n)
    finally:
        n.cleanup()


def test_patient_bad_arguments():
    n = Node("patient-bad")
    try:
        cases = [
            (["add", "--id", "123^^^&1.2.3"], "--id"),                  # no &ISO
            (["add", "--id", "123^^^&1.2.3&DNS"], "--id"),
            (["add", "--id", "123^^^&1.2.x&ISO"], "--id"),
            (["add", "--id", "12 3^^^&1.2.3&ISO"], "--id"),
            (["add", "--id", "123^^^&1.2.3&ISO^"], "--id"),
            (["add", "--id", ""], "--id"),
            (["add", "--family", "Smith"], "--id"),                     # --id missing
            (["add", "--id", ID1, "--birth-date", "19800230"], "--birth-date"),
            (["add", "--id", ID1, "--birth-date", "1980-01-01"], "--birth-date"),
            (["add", "--id", ID1, "--birth-date", "198001"], "--birth-date"),
            (["add", "--id", ID1, "--gender", "X"], "--gender"),
            (["add", "--id", ID1, "--gender", "MF"], "--gender"),
            (["add", "--id", ID1, "--family", "Smith\nlevel=alert"], "--family"),
            (["add", "--id", ID1, "--city", "x" * 200], "--city"),
            (["add", "--id", ID1, "--family"], "--family"),              # no value
            (["add", "--id", ID1, "--family", "A", "--family", "B"], "--family"),
            (["add", "--id", ID1, "--colour", "blue"], "--colour"),
            (["add", "--id", ID1, "--limit", "3"], "--limit"),
            (["list", "--limit", "-1"], "--limit"),
            (["list", "--limit", "ten"], "--limit"),
            (["list", "--id", ID1], "--id"),
            (["show"], "--id"),
            (["show", "--id", "123"], "--id"),
        ]
        for args, flag in cases:
            r = n.run("patient", *args)
            assert r.returncode == 2, "%r: exit %d\n%s%s" % (args, r.returncode, r.stdout, r.stderr)
            assert flag in r.stderr, "%r: message does not name %s: %r" % (args, flag, r.stderr)
            assert r.stdout == "", (args, r.stdout)
        for args in (["frobnicate"], []):
            r = n.run("patient", *args)
            assert r.returncode == 2 and "usage: hienode patient" in r.stderr, (args, r.stderr)
        # Refused before the database was touched: no cluster was ever created.
        assert not os.path.exists(os.path.join(n.state, "pg")), "a refused command started the database"
    finally:
        n.cleanup()


if __name__ == "__main__":
    main([test_patient_commands_stopped_then_running, test_patient_bad_arguments])
