"""HTTPS and mutual TLS on the real daemon, with certificates from certs/make-demo-certs.sh: a partner with a
certificate from the trusted CA gets in, a client without one or with one from another CA does not, and a client
that does not trust the node's CA refuses the node."""
import os
import ssl
import subprocess
import urllib.error
import urllib.request

from harness import Node, SRC, main


def make_certs(dirpath):
    subprocess.run([os.path.join(SRC, "certs", "make-demo-certs.sh"), dirpath], check=True, capture_output=True)


def get(node, certs, client=None, trust="ca.pem"):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, trust))
    if client:
        ctx.load_cert_chain(os.path.join(certs, client + ".pem"), os.path.join(certs, client + ".key"))
    url = "https://localhost:%d/healthz" % node.http_port
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return r.status


def refused(fn):
    try:
        status = fn()
    except (ssl.SSLError, urllib.error.URLError, ConnectionError, OSError):
        return True
    return status == 403


def test_https_with_required_client_certificate():
    n = Node()
    certs = os.path.join(n.dir, "certs")
    make_certs(certs)
    n.env.update({
        "HIENODE_HTTP_TLS_CERT": os.path.join(certs, "server.pem"),
        "HIENODE_HTTP_TLS_KEY": os.path.join(certs, "server.key"),
        "HIENODE_HTTP_TLS_CLIENT_CA": os.path.join(certs, "ca.pem"),
        "HIENODE_HTTP_TLS_CLIENT_REQUIRED": "true",
    })
    try:
        n.wait_healthy = lambda timeout=90: None  # plain-HTTP health probe cannot work: probe over TLS below
        n.start()
        import time
        deadline = time.time() + 90
        while True:
            try:
                assert get(n, certs, "partner") == 200
                break
            except (OSError, ssl.SSLError):
                if time.time() > deadline or n.proc.poll() is not None:
                    raise AssertionError("node not healthy over TLS:\n" + n.log_tail())
                time.sleep(0.3)
        assert refused(lambda: get(n, certs, None)), "a client without a certificate got in"
        assert refused(lambda: get(n, certs, "rogue")), "a client with another CA's certificate got in"
        assert refused(lambda: get(n, certs, "partner", trust="rogue-ca.pem")), "the client trusted the wrong CA"
        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


def test_bad_tls_files_stop_startup():
    n = Node(env={"HIENODE_HTTP_TLS_CERT": "/nonexistent/server.pem", "HIENODE_HTTP_TLS_KEY": "/nonexistent/k"})
    try:
        n.start(wait=False)
        rc = n.proc.wait(60)
        assert rc != 0, "the node started with missing TLS files"
        assert "level=error" in n.log()
    finally:
        n.cleanup()


if __name__ == "__main__":
    main([test_https_with_required_client_certificate, test_bad_tls_files_stop_startup])
