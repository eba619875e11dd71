"""Shared plumbing of the Direct (HISP) integration tests and benchmark (Python 3 stdlib + the openssl, swaks
and postfix commands).

- Pki / make_pki():      the test PKI of tests/fixtures/direct/mkpki.sh in a temp directory; with serve=True a
                         threaded http.server over OUTDIR/www on a free port is started first and its URL given to
                         mkpki.sh as BASE_URL (CRL distribution points, AIA caIssuers).
- setup_hisp():          makes a node the HISP of a domain (domain add, domain address add, cert import with key,
                         trust add of the anchors, both directions) and optionally routes / partner certificates.
- build():               a Direct message made with `openssl cms` as an outside HISP would: the RFC 5322 message
                         wrapped as message/rfc822, signed (detached multipart/signed), encrypted to the recipient
                         certificates, outer routing headers in front. Every knob of the negative matrix is an
                         argument (cipher, key transport, digest, signers, tampering, unsigned, unencrypted, Bcc).
- mdn_message():         an MDN (multipart/report; disposition-notification) to wrap with build(inner=...).
- open_direct():         decrypts and verifies with `openssl cms` what the node sent (a sink captured it).
- swaks() / smtp_send(): SMTP clients: the swaks command (as the issue asks for the interop case) and smtplib
                         (per-command reply codes, e.g. RCPT 550).
- SmtpSink:              a tiny threaded SMTP server that records MAIL FROM, RCPTs and DATA; stands for a remote
                         HISP that receives our messages and MDNs and never answers.
- DnsStub:               a DNS server (UDP+TCP) that answers NXDOMAIN to everything: "no certificate anywhere".
- Postfix:               a real Postfix relay on a loopback port with its own config/queue directories, relaying the
                         test domains to given loopback ports (transport_maps).
- wait_until() and node queries (inbound, mailbox, outbound recipients, jobs).
"""
import email
import email.policy
import email.utils
import functools
import http.server
import os
import re
import shutil
import signal
import smtplib
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import uuid

import harness

SRC = harness.SRC
MKPKI = os.path.join(SRC, "tests", "fixtures", "direct", "mkpki.sh")
CORPUS = os.path.abspath(os.path.join(SRC, "..", "shared", "corpus", "direct-ri", "src", "test", "resources"))
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

# Generous deadlines: the test build runs with sanitizers on 2 shared cores.
DEADLINE = float(os.environ.get("HIENODE_DIRECT_DEADLINE", "90"))


# --- waiting -----------------------------------------------------------------------------------------------

def wait_until(fn, timeout=DEADLINE, interval=0.2, what="condition", detail=None):
    """Calls fn until it returns something truthy (returned); AssertionError after timeout. detail(): text added
    to the failure (e.g. the node's log tail)."""
    deadline = time.time() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.time() >= deadline:
            extra = ""
            if detail:
                try:
                    extra = "\n" + detail()
                except Exception as e:  # diagnostics must not hide the timeout
                    extra = "\n(detail failed: %s)" % e
            raise AssertionError("timed out after %.0fs waiting for %s (last: %r)%s" % (timeout, what, last, extra))
        time.sleep(interval)


# --- PKI ---------------------------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        self.server.hits.append(self.path)


class WebServer:
    """http.server over a directory on a free loopback port, in a thread. hits: paths requested."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.hits = []
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self):
        return self.httpd.hits

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Pki:
    """The files of mkpki.sh in dir: path('bob') = dir/bob.pem, path('bob', 'key'), path('ca', 'der')."""

    def __init__(self, directory, web=None):
        self.dir = directory
        self.web = web

    def path(self, name, ext="pem"):
        return os.path.join(self.dir, "%s.%s" % (name, ext))

    def stop(self):
        if self.web:
            self.web.stop()
            self.web = None


def make_pki(parent, serve=False):
    """Runs mkpki.sh into parent/pki (with serve: behind a WebServer on parent/pki/www, URL in the certs)."""
    d = os.path.join(parent, "pki")
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    web = WebServer(os.path.join(d, "www")) if serve else None
    try:
        argv = ["bash", MKPKI, d] + ([web.url] if web else [])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            log = ""
            try:
                with open(os.path.join(d, "mkpki.log")) as f:
                    log = f.read()[-3000:]
            except OSError:
                pass
            raise AssertionError("mkpki.sh failed (%d): %s\n%s" % (r.returncode, r.stderr, log))
    except BaseException:
        if web:
            web.stop()
        raise
    return Pki(d, web)


# --- openssl cms -------------------------------------------------------------------------------------------

def openssl(*args, stdin=None, check=True):
    r = subprocess.run([OPENSSL] + list(args), input=stdin, capture_output=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("openssl %s failed (%d): %s" % (" ".join(args), r.returncode,
                                                              r.stderr.decode("utf-8", "replace")))
    return r


def crlf(data):
    """Every line ending CRLF (bare LF and bare CR become CRLF)."""
    if isinstance(data, str):
        data = data.encode()
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def new_message_id(domain):
    return "%s@%s" % (uuid.uuid4().hex, domain)


def rfc_date():
    return email.utils.formatdate(localtime=False, usegmt=True)


def inner_message(frm, to, subject, body, cc=(), bcc=(), message_id=None, headers=(),
                  content_type="text/plain; charset=us-ascii", want_final=False):
    """A plain RFC 5322 message (CRLF). to/cc/bcc: lists. Returns (bytes, message_id without <>)."""
    if isinstance(to, str):
        to = [to]
    mid = message_id or new_message_id(frm.split("@", 1)[1])
    h = ["From: %s" % frm, "To: %s" % ", ".join(to)]
    if cc:
        h.append("Cc: %s" % ", ".join(cc))
    if bcc:
        h.append("Bcc: %s" % ", ".join(bcc))
    h += ["Subject: %s" % subject, "Date: %s" % rfc_date(), "Message-ID: <%s>" % mid, "MIME-Version: 1.0"]
    if want_final:
        h.append("Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true")
    h += list(headers)
    h.append("Content-Type: %s" % content_type)
    if isinstance(body, str):
        body = body.encode()
    return crlf("\r\n".join(h).encode() + b"\r\n\r\n" + body), mid


def mdn_message(frm, to, original_message_id, disposition="processed", final_recipient=None, message_id=None):
    """An MDN (RFC 3798) from frm (the recipient who reports) to to (the original sender). Returns (bytes, id)."""
    mid = message_id or new_message_id(frm.split("@", 1)[1])
    b = "mdn-%s" % uuid.uuid4().hex[:12]
    text = ("From: %s\r\nTo: %s\r\nSubject: Processed: test\r\nDate: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=\"%s\"\r\n\r\n"
            "--%s\r\nContent-Type: text/plain\r\n\r\nYour message was %s.\r\n"
            "--%s\r\nContent-Type: message/disposition-notification\r\n\r\n"
            "Reporting-UA: %s; interop-test\r\nOriginal-Recipient: rfc822;%s\r\nFinal-Recipient: rfc822;%s\r\n"
            "Original-Message-ID: <%s>\r\nDisposition: automatic-action/MDN-sent-automatically;%s\r\n\r\n"
            "--%s--\r\n") % (frm, to, rfc_date(), mid, b, b, disposition, b, frm.split("@", 1)[1],
                             final_recipient or frm, final_recipient or frm, original_message_id, disposition, b)
    return text.encode(), mid


CIPHERS = {"aes128": "-aes128", "aes192": "-aes192", "aes256": "-aes256", "aes128-gcm": "-aes-128-gcm",
           "aes256-gcm": "-aes-256-gcm", "des3": "-des3"}
KEY_TRANSPORTS = {"pkcs1": [], "oaep-sha1": ["-keyopt", "rsa_padding_mode:oaep"],
                  "oaep-sha256": ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256",
                                  "-keyopt", "rsa_mgf1_md:sha256"]}


class Msg:
    """A built message: raw (what goes over SMTP), inner (the RFC 5322 message that was signed), message_id,
    signed (the multipart/signed entity, or None)."""

    def __init__(self, raw, inner, message_id, signed):
        self.raw, self.inner, self.message_id, self.signed = raw, inner, message_id, signed

    def write(self, directory, name=None):
        p = os.path.join(directory, name or ("msg-%s.eml" % uuid.uuid4().hex[:8]))
        with open(p, "wb") as f:
            f.write(self.raw)
        return p


def _tmp(workdir, data, suffix):
    fd, p = tempfile.mkstemp(dir=workdir, suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return p


def sign(pki, workdir, content, signers, md="sha256", detached=True):
    """openssl cms -sign of content (bytes, taken as-is: -binary) by signers (pki names, or (pem, key) pairs).
    Detached gives multipart/signed (Direct); otherwise application/pkcs7-mime signed-data. CRLF output."""
    inp = _tmp(workdir, content, ".in")
    out = inp + ".signed"
    argv = ["cms", "-sign", "-binary", "-crlfeol", "-md", md, "-in", inp, "-out", out]
    if not detached:
        argv.append("-nodetach")
    for s in signers:
        pem, key = (pki.path(s), pki.path(s, "key")) if isinstance(s, str) else s
        argv += ["-signer", pem, "-inkey", key]
    openssl(*argv)
    with open(out, "rb") as f:
        return f.read()


def encrypt(pki, workdir, entity, recips, cipher="aes128", kt="oaep-sha256"):
    """openssl cms -encrypt of entity to recips (pki names or pem paths). CRLF output (MIME entity)."""
    inp = _tmp(workdir, entity, ".in")
    out = inp + ".enc"
    argv = ["cms", "-encrypt", "-binary", "-crlfeol", CIPHERS[cipher], "-in", inp, "-out", out]
    for r in recips:
        argv += ["-recip", r if os.path.sep in r else pki.path(r)] + KEY_TRANSPORTS[kt]
    openssl(*argv)
    with open(out, "rb") as f:
        return f.read()


def outer(entity, frm, to, subject, message_id, cc=(), bcc=(), headers=()):
    """Routing headers in front of a MIME entity (whose own headers start with MIME-Version/Content-*)."""
    if isinstance(to, str):
        to = [to]
    h = ["From: %s" % frm, "To: %s" % ", ".join(to)]
    if cc:
        h.append("Cc: %s" % ", ".join(cc))
    if bcc:
        h.append("Bcc: %s" % ", ".join(bcc))
    h += ["Subject: %s" % subject, "Date: %s" % rfc_date(), "Message-ID: <%s>" % message_id] + list(headers)
    entity = crlf(entity)
    if not entity.lower().startswith(b"mime-version"):
        h.append("MIME-Version: 1.0")
    return "\r\n".join(h).encode() + b"\r\n" + entity


def build(pki, workdir, frm, to, cc=(), bcc=(), subject="Direct interop test", body=None, inner=None,
          message_id=None, signers=None, md="sha256", cipher="aes128", kt="oaep-sha256", recips=None,
          wrap=True, tamper=False, signed=True, encrypted=True, outer_from=None, want_final=False):
    """A Direct message as another HISP would send it. Defaults: signed by the pki cert named like frm's local
    part, encrypted (AES-128-CBC, RSA-OAEP-SHA256) to the certs named like each To/Cc local part.
    signers: pki names or (pem, key) pairs, in SignerInfo order. recips: pki names or pem paths.
    inner: a ready RFC 5322 message (bytes) instead of composing one (then message_id must be given or is
    read from it). tamper: a byte of the signed content changes between signing and encrypting. signed=False:
    the plain (wrapped) message is encrypted. encrypted=False: the multipart/signed is sent as is."""
    to = [to] if isinstance(to, str) else list(to)
    if inner is None:
        if body is None:
            body = "Hello from %s.\r\nThis line is the TAMPER-ME marker.\r\n" % frm
        inner, message_id = inner_message(frm, to, subject, body, cc=cc, bcc=bcc, message_id=message_id,
                                          want_final=want_final)
    elif message_id is None:
        m = re.search(rb"(?im)^Message-ID:\s*<([^>]+)>", inner)
        message_id = m.group(1).decode() if m else new_message_id(frm.split("@", 1)[1])
    content = (b"Content-Type: message/rfc822\r\n\r\n" + inner) if wrap else inner
    entity = content
    signed_entity = None
    if signed:
        signed_entity = sign(pki, workdir, content, signers or [frm.split("@", 1)[0]], md=md)
        entity = signed_entity
        if tamper:
            if b"TAMPER-ME" in entity:
                entity = entity.replace(b"TAMPER-ME", b"TAMPERED!", 1)
            else:
                i = entity.find(b"\r\n\r\n", entity.find(b"message/rfc822")) + 10
                entity = entity[:i] + bytes([entity[i] ^ 1]) + entity[i + 1:]
    if encrypted:
        if recips is None:
            recips = [a.split("@", 1)[0] for a in list(to) + list(cc)]
        entity = encrypt(pki, workdir, entity, recips, cipher=cipher, kt=kt)
    raw = outer(entity, outer_from or frm, to, subject, message_id, cc=cc, bcc=bcc)
    return Msg(raw, inner, message_id, signed_entity)


def open_direct(pki, workdir, raw, name, ca="ca"):
    """Decrypts raw (a whole message) with pki name's key and verifies the signature against pki ca with
    `openssl cms`. Returns (decrypted multipart/signed entity, signed content as bytes). AssertionError on any
    failure, naming the step."""
    p = _tmp(workdir, raw, ".eml")
    dec = p + ".dec"
    r = openssl("cms", "-decrypt", "-recip", pki.path(name), "-inkey", pki.path(name, "key"), "-in", p,
                "-out", dec, check=False)
    assert r.returncode == 0, "openssl cms -decrypt with %s's key failed: %s" % (name, r.stderr.decode())
    content = dec + ".content"
    # Not -binary: openssl's multipart reader in binary mode keeps the CR of the CRLF that precedes the
    # boundary (RFC 2046 gives it to the delimiter), so CRLF-only messages would not verify. Text mode
    # canonicalizes to CRLF, which changes nothing in content that is CRLF already.
    r = openssl("cms", "-verify", "-CAfile", pki.path(ca), "-in", dec, "-out", content, check=False)
    assert r.returncode == 0, "openssl cms -verify -CAfile %s failed: %s" % (ca, r.stderr.decode())
    with open(dec, "rb") as f, open(content, "rb") as g:
        return f.read(), g.read()


def unwrap(content):
    """The inner RFC 5322 message of a signed content: the body of a message/rfc822 entity, or content itself.
    Returns an email.message.Message."""
    m = email.message_from_bytes(content, policy=email.policy.compat32)
    if m.get_content_type() == "message/rfc822":
        return m.get_payload(0)
    return m


def header_params(entity, header="Content-Type"):
    """Lower-cased parameters of a header of a MIME entity's top level (e.g. micalg)."""
    m = email.message_from_bytes(entity, policy=email.policy.compat32)
    return {k.lower(): v for k, v in (m.get_params(header=header) or [])}, m


# --- SMTP clients ------------------------------------------------------------------------------------------

def swaks(port, mail_from, rcpts, data, workdir=None, timeout=120):
    """Sends data (bytes, or a file path) with swaks. Returns (exit code, transcript). Exit 0 = 250 after DATA."""
    if not isinstance(data, bytes):
        with open(data, "rb") as f:
            data = f.read()
    # swaks ends DATA with CRLF "." CRLF after the file's last byte (and dot-stuffs): without the message's
    # final CRLF in the file, the server receives exactly data. Its token replacement (%NAME%) never matches
    # base64 or the headers built here.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    path = _tmp(workdir or tempfile.gettempdir(), data, ".eml")
    argv = [SWAKS, "--server", "127.0.0.1:%d" % port, "--from", mail_from, "--helo", "interop.test",
            "--data", "@" + path, "--timeout", "60"]
    for r in ([rcpts] if isinstance(rcpts, str) else rcpts):
        argv += ["--to", r]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def swaks_ok(port, mail_from, rcpts, data, workdir=None):
    """swaks that must end with 250 after DATA; returns the transcript."""
    rc, t = swaks(port, mail_from, rcpts, data, workdir)
    lines = [l for l in t.splitlines() if l.startswith("<-") or l.startswith("<**")]
    assert rc == 0 and any(re.match(r"<-\s+250 .*queued", l) or re.match(r"<-\s+250 2\.0\.0", l)
                           for l in lines), "swaks: rc %d\n%s" % (rc, "\n".join(lines[-12:]))
    return t


def smtp_send(port, mail_from, rcpts, data, timeout=60):
    """smtplib, command by command: returns {'mail': code, 'rcpt': {addr: code}, 'data': code or None,
    'data_text': reply}. DATA is only sent when at least one RCPT got 250."""
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="interop.test", timeout=timeout)
    out = {"mail": None, "rcpt": {}, "data": None, "data_text": b""}
    try:
        s.ehlo()
        out["mail"] = s.mail(mail_from)[0]
        for r in ([rcpts] if isinstance(rcpts, str) else rcpts):
            out["rcpt"][r] = s.rcpt(r)[0]
        if any(c == 250 for c in out["rcpt"].values()):
            code, text = s.data(data)
            out["data"], out["data_text"] = code, text
        else:
            s.rset()
        s.quit()
    finally:
        s.close()
    return out


# --- SMTP sink ---------------------------------------------------------------------------------------------

class _SinkHandler(socketserver.StreamRequestHandler):
    timeout = 120

    def setup(self):
        # Replies to pipelined commands are separate small writes: without NODELAY the second waits for the
        # client's delayed ACK (~40 ms), which a real MTA does not add.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        self.reply("220 sink.test ESMTP interop sink")
        env = {"helo": "", "mail_from": None, "rcpts": []}
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.decode("latin-1").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            arg = cmd[len(verb):].strip()
            if verb in ("EHLO", "HELO"):
                env["helo"] = arg
                if verb == "EHLO":
                    self.reply("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 209715200")
                else:
                    self.reply("250 sink.test")
            elif verb == "MAIL":
                m = re.match(r"(?i)FROM:\s*<([^>]*)>", arg)
                env["mail_from"], env["rcpts"] = (m.group(1) if m else arg), []
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                m = re.match(r"(?i)TO:\s*<([^>]*)>", arg)
                addr = m.group(1) if m else arg
                code = sink.rcpt_code(addr)
                if code == 250:
                    env["rcpts"].append(addr)
                self.reply("%d %s" % (code, "2.1.5 Ok" if code == 250 else "5.1.1 refused by the sink"))
            elif verb == "DATA":
                if not env["rcpts"]:
                    self.reply("554 5.5.1 no valid recipients")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l:
                        return
                    if l in (b".\r\n", b".\n"):
                        break
                    if l.startswith(b".."):
                        l = l[1:]
                    chunks.append(l)
                data = b"".join(chunks)
                with sink.cond:
                    sink.messages.append({"helo": env["helo"], "mail_from": env["mail_from"],
                                          "rcpts": list(env["rcpts"]), "data": data, "time": time.time()})
                    n = len(sink.messages)
                    sink.cond.notify_all()
                self.reply("250 2.0.0 Ok: queued as S%d" % n)
                env["mail_from"], env["rcpts"] = None, []
            elif verb == "RSET":
                env["mail_from"], env["rcpts"] = None, []
                self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 command not implemented")


class _SinkServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpSink:
    """An SMTP server on a free loopback port that accepts everything and records it in messages (list of dicts
    helo, mail_from, rcpts, data). refuse: addresses answered 550 at RCPT."""

    def __init__(self, refuse=()):
        self.messages = []
        self.cond = threading.Condition()
        self.refuse = set(a.lower() for a in refuse)
        self.server = _SinkServer(("127.0.0.1", 0), _SinkHandler)
        self.server.sink = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def rcpt_code(self, addr):
        return 550 if addr.lower() in self.refuse else 250

    def snapshot(self):
        with self.cond:
            return list(self.messages)

    def wait_count(self, n, timeout=DEADLINE, what="messages at the sink", detail=None):
        return wait_until(lambda: len(self.messages) >= n and self.snapshot(), timeout, what=what, detail=detail)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- DNS stub ----------------------------------------------------------------------------------------------

class _DnsUdp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = self.server.stub.answer(data)
        if reply:
            sock.sendto(reply, self.client_address)


class _DnsTcp(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            hdr = self.rfile.read(2)
            if len(hdr) < 2:
                return
            data = self.rfile.read(int.from_bytes(hdr, "big"))
            reply = self.server.stub.answer(data)
            if not reply:
                return
            self.wfile.write(len(reply).to_bytes(2, "big") + reply)


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class DnsStub:
    """A DNS server on a loopback port (UDP and TCP, same number) that knows no names: every query is answered
    NXDOMAIN (authoritative). Discovery then finds no certificate, no LDAP server, no MX — at once, without the
    timeouts of an unreachable server. queries: (name, type) seen."""

    def __init__(self):
        self.queries = []
        for _ in range(20):
            self.udp = _UdpServer(("127.0.0.1", 0), _DnsUdp)
            self.port = self.udp.server_address[1]
            try:
                self.tcp = _TcpServer(("127.0.0.1", self.port), _DnsTcp)
                break
            except OSError:
                self.udp.server_close()
        else:
            raise AssertionError("no port free for UDP and TCP")
        for srv in (self.udp, self.tcp):
            srv.stub = self
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addr = "127.0.0.1:%d" % self.port

    def answer(self, q):
        if len(q) < 12:
            return None
        qd = int.from_bytes(q[4:6], "big")
        i, labels = 12, []
        if qd >= 1:
            while i < len(q) and q[i] != 0:
                n = q[i]
                labels.append(q[i + 1:i + 1 + n].decode("latin-1"))
                i += 1 + n
            i += 1
            qtype = int.from_bytes(q[i:i + 2], "big") if i + 2 <= len(q) else 0
            self.queries.append((".".join(labels), qtype))
            i += 4
        flags = int.from_bytes(q[2:4], "big")
        rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | 3  # QR AA RD RA NXDOMAIN
        return q[0:2] + rflags.to_bytes(2, "big") + (1 if qd else 0).to_bytes(2, "big") + b"\0" * 6 + q[12:i]

    def stop(self):
        for srv in (self.udp, self.tcp):
            srv.shutdown()
            srv.server_close()


# --- Postfix -----------------------------------------------------------------------------------------------

_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A real Postfix relay on 127.0.0.1:<free port> in its own directory (config, queue, data, maillog).
    transports: {domain: port} — mail for each domain goes to smtp:[127.0.0.1]:port. Needs root (the master
    runs as root, the daemons as the postfix user). start()/stop()/cleanup(); log() is the maillog."""

    def __init__(self, transports, name="relay"):
        self.dir = tempfile.mkdtemp(prefix="pf-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        for d in (self.conf, self.queue, self.data):
            os.makedirs(d)
        shutil.chown(self.data, "postfix")
        self.port = harness.free_port()
        self.started = False
        domains = sorted(transports)
        with open(os.path.join(self.conf, "transport"), "w") as f:
            for d in domains:
                f.write("%s smtp:[127.0.0.1]:%d\n" % (d, transports[d]))
        main_cf = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "%s.relay.test" % name,
            "mydomain": "relay.test",
            "myorigin": "relay.test",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": " ".join(domains),
            "transport_maps": "texthash:%s" % os.path.join(self.conf, "transport"),
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "message_size_limit": "209715200",
            "smtputf8_enable": "no",
            "biff": "no",
            # Quick retries: a node restarted in a test is reached again soon.
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "10s",
        }
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in main_cf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(_MASTER_CF.format(port=self.port))

    def _postfix(self, *args, timeout=60):
        # postfix prints fatal errors only to a terminal (else to syslog): the maillog has them once it runs.
        return subprocess.run([POSTFIX, "-c", self.conf] + list(args), capture_output=True, text=True,
                              timeout=timeout)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout=60):
        r = self._postfix("start")
        if r.returncode != 0:
            chk = self._postfix("check")
            raise AssertionError("postfix start failed (%d): %s %s\ncheck: %s %s\nmaillog:\n%s" % (
                r.returncode, r.stdout, r.stderr, chk.stdout, chk.stderr, self.log()[-3000:]))
        self.started = True

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return True
            except OSError:
                return False
        wait_until(listening, timeout, what="postfix listening on %d" % self.port, detail=lambda: self.log()[-3000:])
        return self

    def flush(self):
        self._postfix("flush")

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if not self.started:
            return
        pid = self.master_pid()
        self._postfix("stop")
        if pid and not harness.wait_gone(pid, 20):
            try:
                os.kill(pid, signal.SIGKILL)  # our own master only, by its pid
            except OSError:
                pass
            harness.wait_gone(pid, 10)
        self.started = False

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- node set-up and queries -------------------------------------------------------------------------------

def run_ok(node, *args):
    """Runs a one-shot subcommand that must exit 0; returns its stdout."""
    r = node.run(*args)
    assert r.returncode == 0, "hienode %s: exit %d\nstdout: %s\nstderr: %s" % (
        " ".join(args), r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    return r.stdout


def node_env(extra=None, dns=None):
    """Environment for a Direct test node: DNS pointed at dns (a DnsStub: every name unknown) or, without it, at a
    closed loopback port (no lookup leaves the machine; discovery fails as a transient error and is retried),
    short DNS timeout, quick job polling."""
    env = {
        "HIENODE_DIRECT_DNS_SERVER": dns.addr if dns else "127.0.0.1:%d" % harness.free_port(),
        "HIENODE_DIRECT_DNS_TIMEOUT": "1s",
        "HIENODE_DIRECT_HOSTNAME": "hisp.test",
        "HIENODE_JOBS_POLL_INTERVAL": "200ms",
        "HIENODE_DIRECT_SMTP_TIMEOUT": "30s",
    }
    env.update(extra or {})
    return env


def smtp_port(node):
    return int(node.env["HIENODE_SMTP_LISTEN"].rsplit(":", 1)[1])


def setup_hisp(node, pki, domain, users, anchors=("ca",), partners=(), routes=None, usage="both"):
    """Makes node the HISP of domain: users = [(address, pki name)] imported with their keys; anchors (pki
    names) trusted both directions; partners = [(address, pki name)] imported without key (found by
    discovery first); routes = {domain: port} on 127.0.0.1."""
    run_ok(node, "domain", "add", domain)
    for addr, name in users:
        run_ok(node, "domain", "address", "add", addr)
        run_ok(node, "cert", "import", "--address", addr, "--cert", pki.path(name), "--key", pki.path(name, "key"),
               "--usage", usage)
    for a in anchors:
        run_ok(node, "trust", "add", "--domain", domain, "--anchor", a if os.path.sep in a else pki.path(a),
               "--direction", "both")
    for addr, name in partners:
        run_ok(node, "cert", "import", "--address", addr, "--cert", name if os.path.sep in name else pki.path(name))
    for d, port in (routes or {}).items():
        run_ok(node, "route", "add", d, "127.0.0.1:%d" % port)


def q(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def inbound(node):
    """hisp_inbound rows: dicts id, state, reason, message_id, mail_from, rcpts."""
    rows = node.sql("SELECT id, state, coalesce(reason, ''), coalesce(message_id, ''), mail_from,"
                    " array_to_string(rcpt_to, ',') FROM hisp_inbound ORDER BY id")
    return [{"id": int(r[0]), "state": r[1], "reason": r[2], "message_id": r[3], "mail_from": r[4],
             "rcpts": r[5].split(",") if r[5] else []} for r in rows]


def wait_inbound_final(node, count=1, timeout=DEADLINE):
    """Waits until at least count inbound rows exist and none is still 'received'; returns all rows."""
    def done():
        rows = inbound(node)
        return rows if len(rows) >= count and all(r["state"] != "received" for r in rows) else None
    return wait_until(done, timeout, what="%d inbound message(s) processed" % count,
                      detail=lambda: "inbound: %r\njobs: %r\n%s" % (inbound(node), jobs(node), node.log_tail(40)))


def mailbox(node, address=None, kind=None):
    """hisp_mailbox rows: dicts id, address, kind, message_id, size."""
    where = []
    if address:
        where.append("address = %s" % q(address.lower()))
    if kind:
        where.append("kind = %s" % q(kind))
    rows = node.sql("SELECT id, address, kind, coalesce(message_id, ''), length(content) FROM hisp_mailbox%s"
                    " ORDER BY id" % ((" WHERE " + " AND ".join(where)) if where else ""))
    return [{"id": int(r[0]), "address": r[1], "kind": r[2], "message_id": r[3], "size": int(r[4])} for r in rows]


def mailbox_cli(node, address):
    """`hienode mailbox list ADDR` parsed: one line per item, `id kind received size message-id acked`, as
    key=value pairs (id=… kind=… received=… size=… message_id=… acked=…) or as bare columns (then the first
    two and last three fields are taken from the ends: received may hold spaces)."""
    out = run_ok(node, "mailbox", "list", address)
    items = []
    for line in out.splitlines():
        kv = dict(re.findall(r"([a-z_]+)=(\S*)", line))
        if "id" in kv and kv["id"].isdigit():
            items.append({"id": int(kv["id"]), "kind": kv.get("kind"), "size": kv.get("size"),
                          "message_id": kv.get("message_id", "").strip("<>"), "acked": kv.get("acked"),
                          "line": line})
            continue
        f = line.split()
        if len(f) < 5 or not f[0].isdigit():
            continue
        items.append({"id": int(f[0]), "kind": f[1], "size": f[-3], "message_id": f[-2].strip("<>"),
                      "acked": f[-1], "line": line})
    return items


def mailbox_get(node, address, item_id):
    r = subprocess.run(node.argv("mailbox", "get", address, str(item_id)), env=node.env, capture_output=True,
                       timeout=120)
    assert r.returncode == 0, "mailbox get %s %s: %d %s" % (address, item_id, r.returncode, r.stderr[-2000:])
    return r.stdout


def outbound(node):
    """hisp_outbound + hisp_outbound_rcpt rows: dicts id, message_id, kind, sender, address, state, reason,
    notified."""
    rows = node.sql("SELECT o.id, o.message_id, o.kind, o.sender, r.address, r.state, coalesce(r.reason, ''),"
                    " r.notified FROM hisp_outbound o JOIN hisp_outbound_rcpt r ON r.outbound_id = o.id"
                    " ORDER BY o.id, r.address")
    return [{"id": int(r[0]), "message_id": r[1], "kind": r[2], "sender": r[3], "address": r[4], "state": r[5],
             "reason": r[6], "notified": r[7] == "t"} for r in rows]


def jobs(node, kind=None):
    rows = node.sql("SELECT id, kind, state, attempts, coalesce(last_error, '') FROM jobs%s ORDER BY id" % (
        " WHERE kind = %s" % q(kind) if kind else ""))
    return [{"id": int(r[0]), "kind": r[1], "state": r[2], "attempts": int(r[3]), "error": r[4]} for r in rows]


def metrics(node):
    """GET /metrics as text."""
    status, _, body = node.http("GET", "/metrics")
    assert status == 200, status
    return body.decode("utf-8", "replace")


def metric_sum(text, pattern):
    """Sum of the samples whose metric name matches pattern (regex on the name), None when none."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and re.search(pattern, m.group(1) + (m.group(2) or "")):
            try:
                total += float(m.group(3))
                seen = True
            except ValueError:
                pass
    return total if seen else None


class Cleanup:
    """Collects things to stop (nodes, sinks, web servers, Postfix, directories) and stops them all in reverse
    order, even when one of them fails; use as `with Cleanup() as c: n = c.add(Node(...))`."""

    def __init__(self):
        self.items = []

    def add(self, obj):
        self.items.append(obj)
        return obj

    def tmpdir(self, prefix="dt-"):
        d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.items.append(d)
        return d

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        errors = []
        for obj in reversed(self.items):
            try:
                if isinstance(obj, str):
                    shutil.rmtree(obj, ignore_errors=True)
                elif isinstance(obj, (harness.Node, Postfix)):
                    obj.cleanup()
                else:
                    obj.stop()
            except Exception as e:
                errors.append(e)
        if errors and exc[0] is None:
            raise errors[0]
        return False
