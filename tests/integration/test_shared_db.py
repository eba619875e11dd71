"""Several nodes on one PostgreSQL (ARCHITECTURE.md: any number of nodes may share one database): node B runs
on node A's cluster through [database] url. Both migrate at once without racing, both are healthy, and the
daily housekeeping job that every node enqueues at start exists once (idempotent producers)."""
import os
import re

from harness import Node, main


def jobs_gauge(node, kind, state):
    status, _, body = node.http("GET", "/metrics")
    assert status == 200
    m = re.search(r'^hienode_jobs\{kind="%s",state="%s"\} (\d+)' % (re.escape(kind), state), body.decode(), re.M)
    return int(m.group(1)) if m else 0


def test_two_nodes_one_database():
    a = Node("a")
    b = None
    try:
        a.start()
        url = "host=%s port=5432 dbname=hienode user=hienode" % os.path.join(a.state, "pg", "run")
        b = Node("b", env={"HIENODE_DATABASE_URL": url})
        b.start()
        assert not os.path.exists(os.path.join(b.state, "pg")), "node b started its own cluster"
        assert a.http("GET", "/healthz")[0] == 200
        assert b.http("GET", "/healthz")[0] == 200
        # Today's sweep ran once (done) and tomorrow's is queued once, whichever node ran it.
        assert jobs_gauge(a, "core.sweep", "queued") == 1
        assert jobs_gauge(b, "core.sweep", "queued") == 1
        r = b.run("status")
        assert r.returncode == 0 and "core.sweep" in r.stdout, r.stdout + r.stderr
        assert b.stop() == 0
        assert a.http("GET", "/healthz")[0] == 200, "stopping node b must not touch node a's cluster"
        assert a.stop() == 0
        a.check_log()
        b.check_log()
    finally:
        if b:
            b.cleanup()
        a.cleanup()


def test_database_down_is_unhealthy_not_fatal():
    a = Node("a")
    b = None
    try:
        a.start()
        url = "host=%s port=5432 dbname=hienode user=hienode" % os.path.join(a.state, "pg", "run")
        b = Node("b", env={"HIENODE_DATABASE_URL": url})
        b.start()
        assert a.stop() == 0  # the shared database goes away under node b
        status, _, _ = b.http("GET", "/healthz")
        assert status == 503, status
        assert b.proc.poll() is None, "node b must keep running and report unhealthy"
        assert b.stop() == 0
    finally:
        if b:
            b.cleanup()
        a.cleanup()


if __name__ == "__main__":
    main([test_two_nodes_one_database, test_database_down_is_unhealthy_not_fatal])
