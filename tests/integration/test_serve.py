"""The daemon's life: start on the embedded PostgreSQL, /healthz and /metrics, graceful stop on SIGTERM, restart
after kill -9 (a postmaster left running; a stale postmaster.pid), several nodes side by side, body caps."""
import os
import re
import signal
import socket
import time

from harness import Node, main, pid_alive, wait_gone


def test_start_health_metrics_stop():
    n = Node()
    try:
        n.start()
        status, headers, body = n.http("GET", "/healthz")
        assert status == 200, (status, body)
        status, _, _ = n.http("GET", "/no/such/endpoint")
        assert status == 404
        status, headers, body = n.http("GET", "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain"), headers
        text = body.decode()
        assert re.search(r'^hienode_http_requests_total\{[^}]*endpoint="/healthz"[^}]*status="200"[^}]*\} [1-9]',
                         text, re.M), text[:2000]
        assert "hienode_http_request_duration_seconds_bucket" in text
        assert "hienode_db_pool_connections" in text, text[:3000]
        assert "hienode_jobs" in text, text[:3000]
        pg = n.postmaster_pid()
        assert pg and pid_alive(pg)
        if os.geteuid() == 0:
            # Started as root: the node and its cluster run as the unprivileged [node] user.
            for pid in (n.proc.pid, pg):
                with open("/proc/%d/status" % pid) as f:
                    uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
                assert "0" not in uids, (pid, uids)
            assert "event=start.drop user=hienode" in n.log()
        rc = n.stop(signal.SIGTERM)
        assert rc == 0, (rc, n.log_tail())
        assert wait_gone(pg, 5), "embedded PostgreSQL still running after the node stopped"
        log = n.log()
        assert "event=stop" in log, n.log_tail()
        for line in log.splitlines():
            if line.startswith("ts="):
                assert re.match(r"^ts=\S+ level=(debug|info|notice|warn|error) ", line), line
        n.check_log()
    finally:
        n.cleanup()


def test_restart_after_kill9_with_postmaster_running():
    n = Node()
    try:
        n.start()
        pg = n.postmaster_pid()
        n.proc.kill()
        n.proc.wait()
        assert pid_alive(pg), "the postmaster is expected to outlive a SIGKILLed node"
        n.start()  # comes back: reuses or restarts the cluster left running
        status, _, _ = n.http("GET", "/healthz")
        assert status == 200
        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


def test_restart_after_stale_pid_file():
    n = Node()
    try:
        n.start()
        pg = n.postmaster_pid()
        n.proc.kill()
        n.proc.wait()
        os.kill(pg, signal.SIGKILL)  # the whole machine "crashed": postmaster.pid is left behind, stale
        assert wait_gone(pg, 10)
        time.sleep(0.5)
        assert os.path.exists(os.path.join(n.state, "pg", "data", "postmaster.pid"))
        n.start()
        assert n.http("GET", "/healthz")[0] == 200
        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


def test_two_nodes_side_by_side():
    a, b = Node("a"), Node("b")
    try:
        a.start()
        b.start()
        assert a.http("GET", "/healthz")[0] == 200
        assert b.http("GET", "/healthz")[0] == 200
        assert a.postmaster_pid() != b.postmaster_pid()
        assert a.stop() == 0 and b.stop() == 0
        a.check_log()
        b.check_log()
    finally:
        a.cleanup()
        b.cleanup()


def test_body_cap_and_slow_client():
    n = Node(env={"HIENODE_HTTP_MAX_BODY": "64k", "HIENODE_HTTP_REQUEST_TIMEOUT": "3s",
                  "HIENODE_HTTP_IDLE_TIMEOUT": "2s"})
    try:
        n.start()
        status, _, _ = n.http("POST", "/xds/registry", body=b"x" * (64 * 1024 + 1),
                              headers={"Content-Type": "application/soap+xml"})
        assert status == 413, status
        # A 50 MB Content-Length is refused without the body being sent.
        s = socket.create_connection(("127.0.0.1", n.http_port), timeout=10)
        s.sendall(b"POST /xds/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml\r\n"
                  b"Content-Length: 52428800\r\n\r\n")
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
        s.close()
        # One byte per second: the connection is closed by the node, the client cannot hold it.
        s = socket.create_connection(("127.0.0.1", n.http_port), timeout=60)
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        closed = False
        start = time.time()
        for ch in req:
            try:
                s.send(bytes([ch]))
            except OSError:
                closed = True
                break
            s.settimeout(1.0)
            try:
                if s.recv(1024) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
            if time.time() - start > 40:
                break
        s.close()
        assert closed, "slow client was never cut off"
        assert n.http("GET", "/healthz")[0] == 200
        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


def test_migrate_and_status_commands():
    n = Node()
    try:
        r = n.run("migrate")
        assert r.returncode == 0, r.stdout + r.stderr
        r = n.run("migrate")  # idempotent
        assert r.returncode == 0, r.stdout + r.stderr
        r = n.run("status")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "jobs" in r.stdout, r.stdout
        pg = n.postmaster_pid()
        assert not pg or not pid_alive(pg), "one-shot commands must stop the cluster they started"
        n.start()
        r = n.run("status")  # while the node runs, on the same cluster
        assert r.returncode == 0, r.stdout + r.stderr
        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


if __name__ == "__main__":
    main([test_start_health_metrics_stop, test_restart_after_kill9_with_postmaster_running,
          test_restart_after_stale_pid_file, test_two_nodes_side_by_side, test_body_cap_and_slow_client,
          test_migrate_and_status_commands])
