"""test_smtp_client - the SMTP client against the fault server and the real Postfix relay.

Every failure class of the relay connection gets one test: the exit status
(relayshim(8) EXIT STATUS) and the
one stderr line are asserted each time. Pipelining and the write pattern are
asserted from the fault server's read log (one recv per client write on
loopback). The Postfix tests cover each TLS level and each SASL mechanism the
fixture offers.
"""

import base64
import hashlib
import socket
import ssl
import time

import pytest

from harness.util import free_port as closed_port, stderr_text as err_of


MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\n\r\nHello.\r\n.dot line\r\n"


@pytest.fixture
def fault(fault_server):
    """fault(script, **kw) -> a started FaultServer (conftest's fault_server)."""
    def make(script=None, **kw):
        return fault_server(script if script is not None else {}, **kw)
    return make


def cfg(*hosts, **relay):
    """An INI configuration for hosts (host:port strings) and [relay] keys."""
    lines = ["[relay]", "host = " + ", ".join(hosts)]
    relay.setdefault("timeout", "2s")
    relay.setdefault("timeout_connect", "1s")
    relay.setdefault("tls", "none")
    for k, v in relay.items():
        lines.append("%s = %s" % (k, v))
    lines += ["[rewrite]", "domain = example.com", "[queue]", "mode = never",
              "[log]", "target = none"]
    return "\n".join(lines) + "\n"


def at(srv):
    return "127.0.0.1:%d" % srv.port


def send(run_sendmail, config, rcpts=("b@example.com",), message=MESSAGE, args=()):
    return run_sendmail(list(args) + ["-i", "-f", "a@example.com"] + list(rcpts),
                        input=message, config=config)


def one_line_error(r):
    """Non-zero exits print exactly one line on stderr (relayshim(8) EXIT STATUS)."""
    lines = [l for l in err_of(r).splitlines() if l.strip()]
    assert len(lines) == 1, err_of(r)
    return lines[0]


def commands(srv, i=0):
    return srv.connections[i].commands


# ---------------------------------------------------------------------------
# The happy path and the write pattern
# ---------------------------------------------------------------------------


def test_plain_delivery_is_pipelined_in_four_round_trips(fault, run_sendmail):
    srv = fault({})
    r = send(run_sendmail, cfg(at(srv)), rcpts=["b@example.com", "c@example.com"])
    assert r.returncode == 0, err_of(r)
    msgs = srv.wait_for(1)
    assert msgs[0].rcpt_tos == ["b@example.com", "c@example.com"]
    assert msgs[0].mail_from == "a@example.com"
    # The message is recorded at the final dot; the QUIT may still be in flight.
    reads = srv.wait_for_connections(1)[0].reads
    # EHLO alone; MAIL + both RCPTs + DATA in one write; message + dot in one
    # write; QUIT (not waited for).
    assert reads[0].startswith(b"EHLO ")
    envelope = reads[1]
    assert envelope.startswith(b"MAIL FROM:<a@example.com>")
    assert envelope.count(b"RCPT TO:") == 2 and envelope.endswith(b"DATA\r\n")
    assert reads[2].endswith(b"\r\n.\r\n")
    assert b"\r\n..dot line\r\n" in reads[2]
    assert reads[3:] == [b"QUIT\r\n"]
    assert msgs[0].data.endswith(b"Hello.\r\n.dot line\r\n")


def test_without_pipelining_one_command_per_write(fault, run_sendmail):
    srv = fault({"capabilities": ["8BITMIME"]})
    r = send(run_sendmail, cfg(at(srv)), rcpts=["b@example.com", "c@example.com"])
    assert r.returncode == 0, err_of(r)
    srv.wait_for(1)
    reads = srv.connections[0].reads
    assert reads[1].startswith(b"MAIL FROM:") and reads[1].count(b"\r\n") == 1
    assert reads[2].startswith(b"RCPT TO:<b@") and reads[3].startswith(b"RCPT TO:<c@")
    assert reads[4] == b"DATA\r\n"


def test_size_and_dsn_parameters(fault, run_sendmail):
    # 8-bit bytes and BODY=8BITMIME: test_adversarial.py::test_invalid_utf8_passes_byte_for_byte.
    srv = fault({})
    body = b"From: a@example.com\r\nSubject: x\r\n\r\nGruesse\r\n"
    r = run_sendmail(["-i", "-f", "a@example.com", "-N", "failure,delay", "-R", "hdrs",
                      "-V", "id+1=x", "b@example.com"], input=body, config=cfg(at(srv)))
    assert r.returncode == 0, err_of(r)
    m = srv.wait_for(1)[0]
    opts = " ".join(m.mail_options)
    assert "BODY=" not in opts  # 7-bit: the relay offers 8BITMIME, nothing asks for it
    assert "RET=HDRS" in opts
    assert "ENVID=id+2B1+3Dx" in opts
    assert any(o.startswith("SIZE=") for o in m.mail_options)
    assert m.rcpt_options == [["NOTIFY=FAILURE,DELAY"]]


def test_dsn_not_offered_is_silently_ignored(fault, run_sendmail):
    srv = fault({"capabilities": ["PIPELINING", "8BITMIME"]})
    r = send(run_sendmail, cfg(at(srv)), args=["-N", "never"])
    assert r.returncode == 0, err_of(r)
    m = srv.wait_for(1)[0]
    assert m.rcpt_options == [[]] and not any("RET=" in o for o in m.mail_options)


def test_large_message_streamed_and_dot_stuffed(fault, run_sendmail):
    srv = fault({})
    line = b"." + b"x" * 98 + b"\r\n"
    big = b"From: a@example.com\r\nSubject: big\r\n\r\n" + line * 30000   # ~3 MB
    r = send(run_sendmail, cfg(at(srv)), message=big)
    assert r.returncode == 0, err_of(r)
    m = srv.wait_for(1, timeout=20)[0]
    assert m.data.endswith(line * 3)
    assert m.data.count(b"\r\n.x") == 30000


def test_final_dot_reply_may_take_longer_than_timeout(fault, run_sendmail):
    # timeout = 1s, the end-of-data reply comes after 2 s: allowed (5x timeout).
    srv = fault({"delay": {"eod": 2}})
    r = send(run_sendmail, cfg(at(srv), timeout="1s"))
    assert r.returncode == 0, err_of(r)


def test_verbose_prints_dialogue_without_secrets(fault, run_sendmail):
    srv = fault({"auth": {"mechanisms": ["PLAIN"], "users": {"u": "s3cret-pw"}}})
    r = send(run_sendmail, cfg(at(srv), username="u", password="s3cret-pw"), args=["-v"])
    assert r.returncode == 0, err_of(r)
    e = err_of(r)
    assert "C: EHLO " in e and "S: 250" in e
    assert "C: AUTH PLAIN <auth data hidden>" in e
    assert "bytes of message>" in e and "Hello." not in e
    assert "s3cret-pw" not in e
    assert base64.b64encode(b"\0u\0s3cret-pw").decode() not in e


# ---------------------------------------------------------------------------
# Failure classes: exit status and the one stderr line
# ---------------------------------------------------------------------------


def test_connect_refused(run_sendmail):
    port = closed_port()
    r = send(run_sendmail, cfg("127.0.0.1:%d" % port))
    assert r.returncode == 75
    assert "relay 127.0.0.1:%d: cannot connect to 127.0.0.1:%d: Connection refused" % (
        port, port) in one_line_error(r)


def test_connect_timeout(run_sendmail):
    # A listener with a full accept queue: Linux drops further SYNs, so the
    # connect hangs - a real connect timeout on loopback.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(c)
        time.sleep(0.2)
        t = time.monotonic()
        r = send(run_sendmail, cfg("127.0.0.1:%d" % port, timeout_connect="1s"))
        assert r.returncode == 75
        assert time.monotonic() - t < 5
        assert "cannot connect to 127.0.0.1:%d: timed out after 1000 ms" % port in one_line_error(r)
    finally:
        for c in fillers:
            c.close()
        lsock.close()


def test_greeting_never_comes(fault, run_sendmail):
    srv = fault({"greeting": None})
    t = time.monotonic()
    r = send(run_sendmail, cfg(at(srv), timeout="1s"))
    assert r.returncode == 75
    assert time.monotonic() - t < 5
    assert "relay %s: timed out after 1.000 s waiting for the greeting" % at(srv) in one_line_error(r)


def test_trickling_relay_cannot_stretch_the_timeout(fault, run_sendmail):
    # One byte every 0.2 s: bytes keep coming, but the deadline is absolute.
    srv = fault({"trickle": {"greeting": 0.2}})
    t = time.monotonic()
    r = send(run_sendmail, cfg(at(srv), timeout="1s"))
    assert r.returncode == 75
    assert time.monotonic() - t < 4
    assert "timed out after 1.000 s waiting for the greeting" in one_line_error(r)


def test_split_replies_are_reassembled(fault, run_sendmail):
    srv = fault({"trickle": {"ehlo": 0.001, "rcpt": 0.001}})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)


def test_greeting_421(fault, run_sendmail):
    srv = fault({"greeting": "421 4.3.2 Service shutting down"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 75
    assert ("relay %s refused the connection at greeting: 421 4.3.2 Service shutting down"
            % at(srv)) in one_line_error(r)


def test_greeting_554(fault, run_sendmail):
    srv = fault({"greeting": "554 5.3.2 No service"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 69
    assert "refused the connection at greeting: 554 5.3.2 No service" in one_line_error(r)


def test_ehlo_4xx(fault, run_sendmail):
    srv = fault({"ehlo": "421 4.7.0 Try again later"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 75
    assert "relay %s refused EHLO: 421 4.7.0 Try again later" % at(srv) in one_line_error(r)


def test_ehlo_5xx_falls_back_to_helo(fault, run_sendmail):
    srv = fault({"ehlo": "502 5.5.2 Command not recognized", "helo": "250 fault.test"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 0, err_of(r)
    assert any(c.upper().startswith("HELO ") for c in commands(srv))
    assert srv.wait_for(1)


def test_ehlo_and_helo_5xx(fault, run_sendmail):
    srv = fault({"ehlo": "550 5.7.1 Go away", "helo": "550 5.7.1 Go away"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 69
    assert "relay %s refused EHLO and HELO: 550 5.7.1 Go away" % at(srv) in one_line_error(r)


def test_mail_5xx(fault, run_sendmail):
    srv = fault({"mail": "550 5.7.1 <a@example.com>: Sender rejected"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 69
    assert one_line_error(r) == (
        "sendmail: relay %s refused the sender at MAIL FROM: 550 5.7.1 <a@example.com>: "
        "Sender rejected" % at(srv))


def test_mail_4xx(fault, run_sendmail):
    srv = fault({"mail": "451 4.3.0 Temporary lookup failure"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 75
    assert "refused the sender at MAIL FROM: 451 4.3.0 Temporary lookup failure" in one_line_error(r)


def test_rcpt_some_refused_delivers_to_the_rest(fault, run_sendmail):
    srv = fault({"rcpt": ["250 2.1.5 Ok", "550 5.1.1 <c@example.com>: User unknown"]})
    r = send(run_sendmail, cfg(at(srv)), rcpts=["b@example.com", "c@example.com"])
    assert r.returncode == 0, err_of(r)
    m = srv.wait_for(1)[0]
    assert m.rcpt_tos == ["b@example.com"]


def test_rcpt_all_5xx(fault, run_sendmail):
    srv = fault({"rcpt": "550 5.1.1 User unknown"})
    r = send(run_sendmail, cfg(at(srv)), rcpts=["b@example.com", "c@example.com"])
    assert r.returncode == 67
    line = one_line_error(r)
    assert "relay %s refused every recipient: <b@example.com>: 550 5.1.1 User unknown; " \
           "<c@example.com>: 550 5.1.1 User unknown" % at(srv) in line
    assert not srv.connections[0].messages or not srv.connections[0].messages[0].accepted


def test_rcpt_all_refused_with_a_4xx_is_temporary(fault, run_sendmail):
    srv = fault({"rcpt": ["550 5.1.1 User unknown", "450 4.2.0 Mailbox busy"]})
    r = send(run_sendmail, cfg(at(srv)), rcpts=["b@example.com", "c@example.com"])
    assert r.returncode == 75
    assert "refused every recipient" in one_line_error(r)


def test_data_5xx(fault, run_sendmail):
    srv = fault({"data": "554 5.5.1 Error: no valid recipients"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 69
    assert "relay %s refused DATA: 554 5.5.1 Error: no valid recipients" % at(srv) in one_line_error(r)


def test_data_4xx(fault, run_sendmail):
    srv = fault({"data": "451 4.3.0 Try later"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 75
    assert "refused DATA: 451 4.3.0 Try later" in one_line_error(r)


def test_end_of_data_5xx(fault, run_sendmail):
    srv = fault({"eod": "554 5.7.1 Message rejected as spam"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 69
    assert ("relay %s refused the message at end of data: 554 5.7.1 Message rejected as spam"
            % at(srv)) in one_line_error(r)


def test_end_of_data_4xx(fault, run_sendmail):
    srv = fault({"eod": "451 4.3.0 Queue file write error"})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 75
    assert "deferred the message at end of data: 451 4.3.0 Queue file write error" in one_line_error(r)


def test_drop_mid_data(fault, run_sendmail):
    srv = fault({"drop_data_after": 1000})
    big = b"From: a@example.com\r\nSubject: big\r\n\r\n" + b"y" * 78 + b"\r\n" * 1
    big += (b"z" * 78 + b"\r\n") * 20000
    r = send(run_sendmail, cfg(at(srv)), message=big)
    assert r.returncode == 75
    line = one_line_error(r)
    assert "relay %s:" % at(srv) in line
    assert "connection closed by the relay" in line or "Connection reset" in line


def test_size_smaller_than_message_refused_before_mail(fault, run_sendmail):
    srv = fault({"capabilities": ["PIPELINING", "SIZE 50", "8BITMIME"]})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 65
    assert "accepts at most 50 bytes (SIZE)" in one_line_error(r)
    assert not any(c.upper().startswith("MAIL") for c in commands(srv))


def test_smtputf8_needed_but_missing(fault, run_sendmail):
    srv = fault({"capabilities": ["PIPELINING", "8BITMIME"]})
    r = send(run_sendmail, cfg(at(srv)), rcpts=["jörg@example.com"])
    assert r.returncode == 65
    assert "does not offer SMTPUTF8" in one_line_error(r)
    assert not any(c.upper().startswith("MAIL") for c in commands(srv))


def test_smtputf8_used_when_offered(fault, run_sendmail):
    srv = fault({})
    r = send(run_sendmail, cfg(at(srv)), rcpts=["jörg@example.com"])
    assert r.returncode == 0, err_of(r)
    m = srv.wait_for(1)[0]
    assert "SMTPUTF8" in [o.upper() for o in m.mail_options]


# ---------------------------------------------------------------------------
# Failover
# ---------------------------------------------------------------------------


def test_failover_when_first_relay_refuses_connections(fault, run_sendmail):
    srv = fault({})
    r = send(run_sendmail, cfg("127.0.0.1:%d" % closed_port(), at(srv)))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)


def test_failover_on_temporary_failure(fault, run_sendmail):
    first = fault({"greeting": "421 4.3.2 busy"})
    second = fault({})
    r = send(run_sendmail, cfg(at(first), at(second)))
    assert r.returncode == 0, err_of(r)
    assert second.wait_for(1)


def test_no_failover_on_permanent_failure(fault, run_sendmail):
    first = fault({"mail": "550 5.7.1 Sender rejected"})
    second = fault({})
    r = send(run_sendmail, cfg(at(first), at(second)))
    assert r.returncode == 69
    assert "relay %s refused the sender" % at(first) in one_line_error(r)
    assert second.connection_count == 0


def test_all_relays_down_reports_the_last(fault, run_sendmail):
    p1, p2 = closed_port(), closed_port()
    r = send(run_sendmail, cfg("127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2))
    assert r.returncode == 75
    assert "127.0.0.1:%d" % p2 in one_line_error(r)


# ---------------------------------------------------------------------------
# TLS against the fault server
# ---------------------------------------------------------------------------


def test_starttls_verified(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "valid"}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="starttls", tls_ca_file=pki.ca_file))
    assert r.returncode == 0, err_of(r)
    m = srv.wait_for(1)[0]
    assert m.tls
    assert srv.connections[0].plaintext_after_starttls == b""


def test_starttls_verified_by_host_name_trying_each_address(fault, pki, run_sendmail):
    # "localhost" may resolve to ::1 first, where nothing listens: the next
    # address is tried; the certificate is checked against the name (SNI too).
    srv = fault({"tls": "starttls", "cert": "valid"}, pki=pki)
    r = send(run_sendmail, cfg("localhost:%d" % srv.port, tls="starttls",
                               tls_ca_file=pki.ca_file))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)[0].tls


def test_wrong_name_by_host_name(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "wrong_name"}, pki=pki)
    r = send(run_sendmail, cfg("localhost:%d" % srv.port, tls="starttls",
                               tls_ca_file=pki.ca_file))
    assert r.returncode == 75
    assert "host name mismatch: certificate is not valid for localhost" in one_line_error(r)


def test_starttls_refused(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "valid", "starttls": "454 4.7.0 TLS not available"},
                pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="starttls", tls_ca_file=pki.ca_file))
    assert r.returncode == 75
    assert "relay %s refused STARTTLS: 454 4.7.0 TLS not available" % at(srv) in one_line_error(r)


def test_starttls_refused_with_may_continues_in_plain_text(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "valid", "starttls": "454 4.7.0 TLS not available"},
                pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="may"))
    assert r.returncode == 0, err_of(r)
    assert not srv.wait_for(1)[0].tls


def test_starttls_required_but_not_offered(fault, run_sendmail):
    srv = fault({})
    r = send(run_sendmail, cfg(at(srv), tls="starttls"))
    assert r.returncode == 75
    assert "does not offer STARTTLS, which tls = starttls requires" in one_line_error(r)


def test_may_uses_starttls_without_verification(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "self_signed"}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="may"))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)[0].tls


def test_implicit_tls(fault, pki, run_sendmail):
    srv = fault({"tls": "implicit", "cert": "valid"}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="tls", tls_ca_file=pki.ca_file))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)[0].tls


@pytest.mark.parametrize("kind,reason", [
    ("expired", "certificate has expired"),
    ("wrong_name", "host name mismatch: certificate is not valid for 127.0.0.1"),
    ("self_signed", "self-signed certificate"),
])
def test_bad_certificate(fault, pki, run_sendmail, kind, reason):
    srv = fault({"tls": "starttls", "cert": kind}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="starttls", tls_ca_file=pki.ca_file))
    assert r.returncode == 75
    line = one_line_error(r)
    assert "relay %s: TLS certificate of the relay not accepted: %s" % (at(srv), reason) in line
    assert not srv.connections[0].messages


def test_unknown_ca_with_the_system_store(fault, pki, run_sendmail):
    srv = fault({"tls": "implicit", "cert": "valid"}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="tls"))
    assert r.returncode == 75
    assert "TLS certificate of the relay not accepted: unknown CA" in one_line_error(r)


def test_client_certificate(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "valid", "tls_client_ca": True}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="starttls", tls_ca_file=pki.ca_file,
                               tls_cert_file=pki.client.cert, tls_key_file=pki.client.key))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)[0].tls
    assert srv.connections[0].client_cert_subject


def test_tls_min_version_1_3(fault, pki, run_sendmail):
    srv = fault({"tls": "implicit", "cert": "valid"}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="tls", tls_ca_file=pki.ca_file,
                               tls_min_version="1.3"), args=["-v"])
    assert r.returncode == 0, err_of(r)
    assert "-- TLS: TLSv1.3" in err_of(r)


def _fingerprint(pki, kind):
    pem = open(pki.cert(kind).cert).read()
    der = ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----"):])
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


def test_fingerprint_pin_replaces_chain_verification(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "self_signed"}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="starttls",
                               tls_fingerprint=_fingerprint(pki, "self_signed")))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)[0].tls


def test_fingerprint_mismatch(fault, pki, run_sendmail):
    srv = fault({"tls": "starttls", "cert": "valid"}, pki=pki)
    r = send(run_sendmail, cfg(at(srv), tls="starttls", tls_ca_file=pki.ca_file,
                               tls_fingerprint=_fingerprint(pki, "self_signed")))
    assert r.returncode == 75
    assert "fingerprint mismatch" in one_line_error(r)


# ---------------------------------------------------------------------------
# AUTH against the fault server
# ---------------------------------------------------------------------------


def test_auth_failure(fault, run_sendmail):
    srv = fault({"auth": {"mechanisms": ["PLAIN", "LOGIN"], "users": {"u": "right"}}})
    r = send(run_sendmail, cfg(at(srv), username="u", password="wrong-pw"))
    assert r.returncode == 69
    line = one_line_error(r)
    assert "relay %s: authentication failed as u (relay said: 535" % at(srv) in line
    assert "wrong-pw" not in line


def test_auth_not_offered_but_username_set(fault, run_sendmail):
    srv = fault({})
    r = send(run_sendmail, cfg(at(srv), username="u", password="p"))
    assert r.returncode == 69
    assert "does not offer AUTH, but a username is set" in one_line_error(r)


def test_auth_mechanisms_restricts_the_choice(fault, run_sendmail):
    srv = fault({"auth": {"mechanisms": ["PLAIN", "LOGIN", "CRAM-MD5"], "users": {"u": "p"}}})
    r = send(run_sendmail, cfg(at(srv), username="u", password="p", auth_mechanisms="LOGIN"))
    assert r.returncode == 0, err_of(r)
    assert srv.connections[0].auth[0]["mechanism"] == "LOGIN"


def test_xoauth2_token_reread_from_password_file(fault, run_sendmail, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("token-one\n")
    srv = fault({"auth": {"mechanisms": ["XOAUTH2"],
                          "xoauth2": {"user": "me@example.com", "token": "token-one"}}})
    config = cfg(at(srv), username="me@example.com", password_file=str(tok),
                 auth_mechanisms="XOAUTH2")
    r = send(run_sendmail, config)
    assert r.returncode == 0, err_of(r)
    assert srv.connections[0].auth[0]["ok"]
    # An external refresher rotates the token: the next run must use the new one.
    tok.write_text("token-two\n")
    r = send(run_sendmail, config)
    assert r.returncode == 69
    assert "authentication failed as me@example.com" in one_line_error(r)
    assert "token-two" not in err_of(r)


# ---------------------------------------------------------------------------
# The real Postfix relay
# ---------------------------------------------------------------------------


def pf_cfg(relay, port, **kw):
    return cfg("127.0.0.1:%d" % port, **kw)


def delivered(relay, n=1):
    msgs = relay.capture.wait_for(n, timeout=15)
    assert len(msgs) == n, msgs
    return msgs[-1]


@pytest.fixture
def pf(relay):
    """The Postfix relay with an empty capture sink."""
    relay.capture.clear()
    return relay


def test_postfix_plain(pf, run_sendmail):
    r = send(run_sendmail, pf_cfg(pf, pf.plain_port))
    assert r.returncode == 0, err_of(r)
    m = delivered(pf)
    assert m.mail_from == "a@example.com" and m.rcpt_tos == ["b@example.com"]
    assert m.data.endswith(b"Hello.\r\n.dot line\r\n")


def test_postfix_may(pf, run_sendmail):
    r = send(run_sendmail, pf_cfg(pf, pf.plain_port, tls="may"))
    assert r.returncode == 0, err_of(r)
    delivered(pf)


def test_postfix_starttls_verified(pf, run_sendmail):
    user, pw = next(iter(pf.users.items()))
    r = send(run_sendmail, pf_cfg(pf, pf.submission_port, tls="starttls",
                                  tls_ca_file=pf.ca_file, username=user, password=pw))
    assert r.returncode == 0, err_of(r)
    delivered(pf)


def test_postfix_implicit_tls(pf, run_sendmail):
    user, pw = next(iter(pf.users.items()))
    r = send(run_sendmail, pf_cfg(pf, pf.smtps_port, tls="tls",
                                  tls_ca_file=pf.ca_file, username=user, password=pw))
    assert r.returncode == 0, err_of(r)
    delivered(pf)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1",
                                  "SCRAM-SHA-256"])
def test_postfix_sasl_mechanism(pf, run_sendmail, mech):
    user, pw = next(iter(pf.users.items()))
    r = send(run_sendmail, pf_cfg(pf, pf.submission_port, tls="starttls",
                                  tls_ca_file=pf.ca_file, username=user, password=pw,
                                  auth_mechanisms=mech), args=["-v"])
    assert r.returncode == 0, err_of(r)
    assert "C: AUTH %s <auth data hidden>" % mech in err_of(r)
    assert pw not in err_of(r)
    delivered(pf)


def test_postfix_wrong_password(pf, run_sendmail):
    user = next(iter(pf.users))
    r = send(run_sendmail, pf_cfg(pf, pf.submission_port, tls="starttls",
                                  tls_ca_file=pf.ca_file, username=user, password="nope"))
    assert r.returncode == 69
    assert "authentication failed as %s (relay said: 535" % user in one_line_error(r)


def test_postfix_relay_check(pf, run_sendmail):
    user, pw = next(iter(pf.users.items()))
    r = run_sendmail(["--relay-check"], config=pf_cfg(
        pf, pf.submission_port, tls="starttls", tls_ca_file=pf.ca_file,
        username=user, password=pw))
    out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
    assert r.returncode == 0, err_of(r) + out
    assert "certificate verified" in out
    assert "AUTH" in out and "accepted" in out
    assert pw not in out


# ---------------------------------------------------------------------------
# One relay session for several transactions (-bs)
# ---------------------------------------------------------------------------


def test_bs_session_reuses_the_relay_connection(fault, run_sendmail):
    srv = fault({})
    msg = b"Subject: x\r\n\r\nbody\r\n.\r\n"
    script = (b"EHLO client\r\n"
              b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" + msg +
              b"MAIL FROM:<a@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n" + msg +
              b"QUIT\r\n")
    r = run_sendmail(["-bs"], input=script, config=cfg(at(srv)))
    out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
    assert r.returncode == 0, err_of(r) + out
    msgs = srv.wait_for(2)
    assert [m.rcpt_tos for m in msgs] == [["b@example.com"], ["c@example.com"]]
    assert srv.connection_count == 1
    cmds = [c.split()[0].upper() for c in commands(srv) if c]
    # Each transaction ended with the reply to its final dot: no RSET needed.
    assert cmds.count("EHLO") == 1 and "RSET" not in cmds


def test_bs_session_resets_after_a_failed_transaction(fault, run_sendmail):
    srv = fault({"rcpt": ["550 5.1.1 User unknown", "250 2.1.5 Ok"]})
    msg = b"Subject: x\r\n\r\nbody\r\n.\r\n"
    script = (b"EHLO client\r\n"
              b"MAIL FROM:<a@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n" + msg +
              b"MAIL FROM:<a@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n" + msg +
              b"QUIT\r\n")
    r = run_sendmail(["-bs"], input=script, config=cfg(at(srv)))
    out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
    msgs = srv.wait_for(1)
    assert [m.rcpt_tos for m in msgs] == [["c@example.com"]], out
    assert srv.connection_count == 1
    cmds = [c.split()[0].upper() for c in commands(srv) if c]
    assert cmds.count("RSET") == 1
    assert cmds.index("RSET") > cmds.index("RCPT")


def test_relay_size_refusal_at_mail_is_a_data_error(fault, run_sendmail):
    # SIZE advertised without a number: the relay itself refuses at MAIL (552 5.3.4).
    srv = fault({"capabilities": ["PIPELINING", "SIZE"], "size_limit": 50})
    r = send(run_sendmail, cfg(at(srv)))
    assert r.returncode == 65
    assert "refused the sender at MAIL FROM: 552 5.3.4" in one_line_error(r)


def test_ipv6_relay_address(fault, run_sendmail):
    try:
        srv = fault({}, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    r = send(run_sendmail, cfg("[::1]:%d" % srv.port))
    assert r.returncode == 0, err_of(r)
    assert srv.wait_for(1)


def test_relay_check_reports_a_failure(fault, run_sendmail):
    srv = fault({"ehlo": "554 5.7.1 No", "helo": "554 5.7.1 No"})
    r = run_sendmail(["--relay-check"], config=cfg(at(srv)))
    out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
    assert r.returncode == 69
    assert "refused EHLO and HELO: 554 5.7.1 No" in out + err_of(r)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "unpipelined"])
@pytest.mark.parametrize("rset_reply", ["421 4.3.2 Service shutting down",
                                        "451 4.3.0 Try again later",
                                        "500 5.5.2 Error: command not recognized"])
def test_bs_refused_rset_defers_and_reconnects(fault, run_sendmail, pipelining, rset_reply):
    # The first transaction is left unfinished (its only RCPT refused), so the
    # second begins with RSET, which the relay refuses. Pipelined or not, the
    # second message must be deferred (4xx naming the RSET reply) and not
    # handed to a relay still holding the old transaction; the third goes out
    # on a fresh connection.
    caps = ["SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES"]
    if pipelining:
        caps.insert(0, "PIPELINING")
    srv = fault([{"capabilities": caps, "rcpt": "550 5.1.1 User unknown", "rset": rset_reply},
                 {"capabilities": caps}])
    msg = b"Subject: x\r\n\r\nbody\r\n.\r\n"
    script = (b"EHLO client\r\n"
              b"MAIL FROM:<a@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n" + msg +
              b"MAIL FROM:<a@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n" + msg +
              b"MAIL FROM:<a@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n" + msg +
              b"QUIT\r\n")
    r = run_sendmail(["-bs"], input=script, config=cfg(at(srv)))
    out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
    # The reply after each final dot (the line after each 354), in order.
    lines = out.splitlines()
    eods = [lines[i + 1] for i, l in enumerate(lines) if l.startswith("354")]
    assert len(eods) == 3, out
    assert eods[0].startswith("5"), out
    assert eods[1].startswith("4") and "refused RSET: " + rset_reply.split()[0] in eods[1], out
    assert eods[2].startswith("250"), out
    msgs = srv.wait_for(1)
    assert [m.rcpt_tos for m in msgs] == [["d@example.com"]], out
    assert [m.connection for m in msgs] == [1], out
    assert srv.connection_count == 2
    first = [c.split()[0].upper() for c in commands(srv) if c]
    assert first.count("RSET") == 1 and "QUIT" not in first


@pytest.mark.parametrize("script,status,text", [
    ({"mail": "550 5.7.1 Sender rejected"}, 69, "refused the sender at MAIL FROM: 550 5.7.1"),
    ({"mail": "451 4.3.0 Try later"}, 75, "refused the sender at MAIL FROM: 451 4.3.0"),
    ({"rcpt": "550 5.1.1 User unknown"}, 67, "refused every recipient: <b@example.com>: 550"),
    ({"rcpt": ["550 5.1.1 User unknown", "250 2.1.5 Ok"], "data": "554 5.5.1 No"}, 69,
     "refused DATA: 554 5.5.1 No"),
], ids=["mail-5xx", "mail-4xx", "rcpt-all-5xx", "data-5xx"])
def test_envelope_refusals_judged_alike_pipelined_or_not(fault, run_sendmail, script, status,
                                                         text):
    # One loop judges the envelope's replies: the exit status and the line are
    # the same with and without PIPELINING; without it, no command the
    # refusal made pointless is sent (no RCPT after a refused sender, no DATA
    # without a recipient).
    lines = []
    for caps in (["PIPELINING", "8BITMIME"], ["8BITMIME"]):
        srv = fault(dict(script, capabilities=caps))
        r = send(run_sendmail, cfg(at(srv)), rcpts=["b@example.com", "c@example.com"])
        assert r.returncode == status, err_of(r)
        line = one_line_error(r)
        assert text in line
        lines.append(line.replace(at(srv), "RELAY"))
        srv.wait_for_connections(1)
        assert not any(m.accepted for m in srv.connections[0].messages)
        if caps == ["8BITMIME"]:
            verbs = [c.split()[0].upper() for c in commands(srv) if c]
            if "mail" in script:
                assert "RCPT" not in verbs and "DATA" not in verbs
            elif "data" not in script:
                assert "DATA" not in verbs
    assert lines[0] == lines[1]
