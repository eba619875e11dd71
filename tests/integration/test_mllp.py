"""ITI-8 over MLLP against the real daemon: A01 answered AA and visible with `hienode patient show/list`, A08
update, pipelined messages answered in order, AE/AR with ERR, bytes before the start block discarded, a frame
over [mllp] max_message_size answered AR on a connection that stays usable, the connection limit, a client that
trickles one byte a second cut off by the frame deadline, and kill -9 right after an AA: the patient survives."""
import signal
import socket
import threading
import time

from harness import Node, main

SB, EB = b"\x0b", b"\x1c\r"
OID = "1.2.840.114350.1.13"


def msh(trigger, ctrl, app="EHR", fac="GENHOSP"):
    return "MSH|^~\\&|%s|%s|HIE|HIE|20260101120000||ADT^%s^ADT_A01|%s|P|2.5.1\r" % (app, fac, trigger, ctrl)


def a01(ctrl, pid, family, trigger="A01", given="Ann"):
    return (msh(trigger, ctrl) + "EVN||20260101120000\r" +
            "PID|1||%s^^^&%s&ISO||%s^%s||19800229|F|||1 Main St^^Springfield^IL^62701^USA\r" % (
                pid, OID, family, given) + "PV1|1|I\r")


def connect(n, timeout=30):
    s = socket.create_connection(("127.0.0.1", n.mllp_port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_ack(s):
    """Reads one framed message; returns its segments as lists of fields."""
    buf = b""
    while not buf.endswith(EB):
        chunk = s.recv(1)
        if not chunk:
            raise AssertionError("connection closed before an ACK; got %r" % buf)
        buf += chunk
    assert buf.startswith(SB), buf
    text = buf[1:-2].decode()
    return [seg.split("|") for seg in text.split("\r") if seg]


def seg(ack, name):
    for s in ack:
        if s[0] == name:
            return s
    return None


def send(s, msg):
    s.sendall(SB + msg.encode() + EB)
    return read_ack(s)


def check_ack(ack, code, ctrl=None, err=None):
    assert seg(ack, "MSH") is not None and seg(ack, "MSH")[8].startswith("ACK"), ack
    msa = seg(ack, "MSA")
    assert msa[1] == code, ack
    if ctrl is not None:
        assert msa[2] == ctrl, ack
    if err is not None:
        e = seg(ack, "ERR")
        assert e is not None and e[3].split("^")[0] == str(err), ack
        assert e[4] == "E", ack
    elif code == "AA":
        assert seg(ack, "ERR") is None, ack


def show(n, pid):
    r = n.run("patient", "show", "--id", "%s^^^&%s&ISO" % (pid, OID))
    if r.returncode != 0:
        return None
    return dict(line.split(None, 1) if " " in line.strip() else (line.strip(), "")
                for line in r.stdout.splitlines() if line.strip())


def slow_client(n, result):
    """Sends a start block and then one byte a second; records whether the server cut it off."""
    s = connect(n, timeout=5)
    try:
        s.sendall(SB + b"MSH|^~\\&|")
        for _ in range(200):
            time.sleep(1)
            try:
                s.sendall(b"A")
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        result["cut"] = True
                        return
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
            except OSError:
                result["cut"] = True
                return
        result["cut"] = False
    finally:
        s.close()


def test_feed():
    n = Node("mllp", env={"HIENODE_MLLP_MAX_MESSAGE_SIZE": "2048", "HIENODE_MLLP_MAX_CONNECTIONS": "4",
                           "HIENODE_MLLP_FRAME_TIMEOUT": "4s"})
    try:
        n.start()
        slow = {}
        t = threading.Thread(target=slow_client, args=(n, slow))
        t.start()
        time.sleep(0.5)

        # Connection limit (4): the slow client holds one; three more fill it; the next is closed at once.
        held = [connect(n) for _ in range(3)]
        time.sleep(0.5)
        extra = connect(n)
        try:
            got = extra.recv(1)
        except ConnectionResetError:
            got = b""
        assert got == b"", "a connection over max_connections was served"
        extra.close()
        check_ack(send(held[0], a01("C0", "P0", "Zero")), "AA", "C0")
        for h in held:
            h.close()


        s = connect(n)
        check_ack(send(s, a01("C1", "P1", "Doe")), "AA", "C1")
        p = show(n, "P1")
        assert p and p["family"] == "Doe" and p["birth-date"] == "19800229" and p["city"] == "Springfield", p
        listed = n.run("patient", "list").stdout
        assert "P1^^^&%s&ISO" % OID in listed, listed

        # A08 on the same connection updates; a duplicate control id with other data is not applied.
        check_ack(send(s, a01("C2", "P1", "Doe-Smith", trigger="A08")), "AA", "C2")
        assert show(n, "P1")["family"] == "Doe-Smith"
        check_ack(send(s, a01("C2", "P1", "Changed", trigger="A08")), "AA", "C2")
        assert show(n, "P1")["family"] == "Doe-Smith"

        # Pipelined: three messages in one write, three ACKs in order.
        s.sendall(b"".join(SB + m.encode() + EB for m in (
            a01("C3", "P3", "Three"), msh("A01", "C4") + "PID|1\r", a01("C5", "P5", "Five"))))
        check_ack(read_ack(s), "AA", "C3")
        check_ack(read_ack(s), "AE", "C4", err=101)
        check_ack(read_ack(s), "AA", "C5")

        # AR for other message types and unknown events; bytes before the start block are discarded.
        check_ack(send(s, "MSH|^~\\&|LAB|F|HIE|HIE|2026||ORU^R01^ORU_R01|O1|P|2.5.1\rOBX|1\r"), "AR", "O1", err=200)
        check_ack(send(s, msh("A99", "C6")), "AR", "C6", err=201)
        s.sendall(b"noise\r\n" + SB + a01("C7", "P7", "Seven").encode() + EB)
        check_ack(read_ack(s), "AA", "C7")
        check_ack(send(s, "not hl7 at all"), "AR", "", err=100)

        # Over the cap: AR, the rest of the frame is skipped, and the connection goes on.
        big = a01("C8", "P8", "Big") + "NTE|1||" + "x" * 4000 + "\r"
        ack = send(s, big)
        check_ack(ack, "AR", err=207)
        check_ack(send(s, a01("C9", "P9", "Nine")), "AA", "C9")
        assert show(n, "P8") is None
        s.close()

        t.join(300)
        assert slow.get("cut") is True, "a client trickling one byte a second was not cut off: %r" % slow
        assert "event=mllp.end" in n.log() and "reason=ETIMEOUT" in n.log(), n.log_tail()
        assert n.stop() == 0
        n.check_log()
        assert "Doe" not in n.log(), "patient data in the log"
    finally:
        n.cleanup()


def test_kill9_after_aa():
    n = Node("mllp-crash")
    try:
        n.start()
        s = connect(n)
        check_ack(send(s, a01("K1", "K1", "Durable")), "AA", "K1")
        n.proc.send_signal(signal.SIGKILL)  # right after the AA: it was committed before it was sent
        n.proc.wait()
        s.close()
        n.start()
        p = show(n, "K1")
        assert p and p["family"] == "Durable", p
        # The sender's retransmission after the crash is a duplicate: acknowledged, not applied again.
        s = connect(n)
        check_ack(send(s, a01("K1", "K1", "Again")), "AA", "K1")
        assert show(n, "K1")["family"] == "Durable"
        s.close()
        assert n.stop() == 0
        n.check_log()
    finally:
        n.cleanup()


if __name__ == "__main__":
    main([test_feed, test_kill9_after_aa])
