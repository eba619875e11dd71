"""Integration harness: starts the real hienode daemon on loopback with its own state directory and embedded
PostgreSQL, talks to it over real sockets, and fails the test if the node's log holds a panic, a sanitizer
report or a level=alert line (nginx-tests checks its error log the same way).

Only the Python standard library is used. HIENODE_BIN names the binary under test.
"""
import http.client
import os
import re
import shutil
import signal
import ssl
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.environ.get("HIENODE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build-test", "hienode")
SRC = os.environ.get("HIENODE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

BAD_LOG = re.compile(r"level=panic|level=alert|ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                     r"runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


_GIVEN = set()


def free_port():
    """A loopback port free now and not handed out before by this process (the kernel may offer the same
    ephemeral port to two consecutive binds once the first socket is closed: a node's listeners would clash)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


class Node:
    """One hienode process with its own state directory and ports."""

    def __init__(self, name="node", env=None, config=None):
        self.name = name
        # Short path: the embedded cluster's Unix socket must fit in 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="hn-", dir="/tmp")
        os.chmod(self.dir, 0o755)  # the node drops to an unprivileged user when started as root
        self.state = os.path.join(self.dir, "state")
        self.log_path = os.path.join(self.dir, "node.log")
        self.http_port = free_port()
        self.mllp_port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "HIENODE_NODE_STATE_DIR": self.state,
            "HIENODE_HTTP_LISTEN": "127.0.0.1:%d" % self.http_port,
            "HIENODE_SMTP_LISTEN": "127.0.0.1:%d" % free_port(),
            "HIENODE_SUBMISSION_LISTEN": "127.0.0.1:%d" % free_port(),
            "HIENODE_MLLP_LISTEN": "127.0.0.1:%d" % self.mllp_port,
            "HIENODE_LOG_LEVEL": "debug",
            "HIENODE_NODE_SHUTDOWN_TIMEOUT": "10s",
        })
        self.env.update(env or {})
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.dir, "hienode.conf")
            with open(self.config_path, "w") as f:
                f.write(config)
        self.proc = None
        self.logf = None

    def argv(self, *args):
        a = [BIN]
        if self.config_path:
            a += ["-c", self.config_path]
        return a + list(args)

    def run(self, *args, timeout=120):
        """Runs a one-shot subcommand; returns CompletedProcess with text output."""
        return subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, wait=True, timeout=90):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv("serve"), env=self.env, stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %s during start-up:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            try:
                status, _, _ = self.http("GET", "/healthz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("%s not healthy after %ss:\n%s" % (self.name, timeout, self.log_tail()))

    def http(self, method, path, body=None, headers=None, timeout=30):
        if self.env.get("HIENODE_HTTP_TLS_CERT"):
            # HTTPS node: verified against self.tls_ca when a test sets it (else only for the health probe).
            ca = getattr(self, "tls_ca", None)
            ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
            c = http.client.HTTPSConnection("127.0.0.1", self.http_port, timeout=timeout, context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()

    def sql(self, query, timeout=60):
        """Runs SQL on the node's embedded cluster with psql; returns the rows as lists of text values."""
        psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
        r = subprocess.run([psql, "-X", "-q", "-A", "-t", "-F", "\t", "-h", os.path.join(self.state, "pg", "run"),
                            "-U", "hienode", "-d", "hienode", "-v", "ON_ERROR_STOP=1", "-c", query],
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, "psql failed: %s" % r.stderr
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals the node and waits; returns its exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not stop within %ss after %s" % (self.name, timeout, sig))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def check_log(self):
        bad = [l for l in self.log().splitlines() if BAD_LOG.search(l)]
        if bad:
            raise AssertionError("%s log has %d bad line(s):\n%s\n--- tail:\n%s" % (
                self.name, len(bad), "\n".join(bad[:20]), self.log_tail()))

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.state, "pg", "data", "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (FileNotFoundError, ValueError):
            return None

    def cleanup(self):
        """Stops the node and its embedded PostgreSQL whatever state they are in, then removes the directory."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pid = self.postmaster_pid()
        if pid and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown of a postmaster left behind
            except OSError:
                pass
            wait_gone(pid, 20)
        if self.logf:
            self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def main(tests):
    """Runs test functions in order; prints one line each and 'N passed, N failed'; exit status 1 on failure."""
    if not os.path.exists(BIN):
        print("hienode binary not found at %s" % BIN)
        sys.exit(1)
    passed = failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            passed += 1
            print("ok   %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
