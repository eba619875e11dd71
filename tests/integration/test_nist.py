"""NIST XDS testkit conformance (issue 3): starts a node, replays the reg and rep collections of the NIST testkit
against it with tests/conformance/nist_runner.py, and fails when a test listed in
tests/conformance/expected_pass.txt does not pass (a regression). Tests passing beyond the list are printed, not
failures. Skips (passes) when the testkit corpus is not on disk."""
import os
import subprocess
import sys

from harness import BIN, SRC, Node, main

RUNNER = os.path.join(SRC, "tests", "conformance", "nist_runner.py")
EXPECTED = os.path.join(SRC, "tests", "conformance", "expected_pass.txt")
TESTKIT = os.environ.get("NIST_TESTKIT") or "/work/shared/corpus/nist-toolkit/toolkitx/testkit"


def test_nist_reg_rep_collections():
    if not os.path.isdir(os.path.join(TESTKIT, "tests")):
        print("NIST testkit not found at %s; skipped" % TESTKIT)
        return
    n = Node("nist")
    try:
        n.start()
        argv = [sys.executable, RUNNER, "--url", "http://127.0.0.1:%d" % n.http_port, "--testkit", TESTKIT,
                "--hienode", os.path.abspath(BIN), "--collections", "reg,rep", "--expected", EXPECTED,
                "--timeout", "30"]
        if n.config_path:
            argv += ["--hienode-config", n.config_path]
        # The runner registers its patient ids with `hienode patient add`, which must reach this node's cluster:
        # it runs with the node's environment.
        r = subprocess.run(argv, env=n.env, capture_output=True, text=True, timeout=240)
        print(r.stdout[-20000:])
        if r.stderr.strip():
            print(r.stderr[-5000:])
        assert r.returncode == 0, "NIST conformance regressions (exit %d):\n%s" % (
            r.returncode, "\n".join(l for l in r.stdout.splitlines() if l.startswith(("REGRESSIONS", "tests:"))))
        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


if __name__ == "__main__":
    main([test_nist_reg_rep_collections])
