"""test_bs - sendmail -bs and -bd with real clients, against Postfix and the fault server.

-bs: swaks --pipe, Python smtplib over a socketpair (the way nodemailer's
spawn gives sockets as stdin/stdout), and the real Symfony Mailer
SendmailTransport (PHP, Debian's php-symfony-mailer) - each message asserted
at the capture sink behind the Postfix relay. The fault server plays the
relay for the 4xx/5xx mapping and counts relay connections to prove that one
session reuses one relay connection.

-bd: the daemon on a free loopback port (both families when ::1 exists),
served to smtplib, curl and a statically linked C client (gcc -static), then
stopped with SIGTERM.
"""

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness.faultsrv import FaultServer  # noqa: E402
from harness.util import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_config(tmp_path, relay_port, extra=""):
    path = tmp_path / "relayshim.conf"
    path.write_text("[relay]\nhost = 127.0.0.1:%d\n"
                    "[rewrite]\ndomain = example.com\n"
                    "[queue]\nmode = never\n"
                    "[log]\ntarget = stderr\n%s" % (relay_port, extra))
    return str(path)


def bs_env(conf, **extra):
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": conf}
    env.update(extra)
    return env


class _PipePair:
    """The socket methods smtplib uses, over the two pipes of a child process."""

    def __init__(self, proc):
        self.proc = proc

    def sendall(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def makefile(self, mode):
        return self.proc.stdout

    def close(self):
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class PipeSMTP(smtplib.SMTP):
    """smtplib talking to `sendmail -bs` over two pipes (Symfony, swaks --pipe)
    or one socketpair (nodemailer's spawn) instead of TCP."""

    def __init__(self, argv, env, transport="socketpair"):
        self._argv = argv
        self._env = env
        self._transport = transport
        self.proc = None
        super().__init__()

    def connect(self, host="localhost", port=0, source_address=None):
        if self._transport == "pipes":
            self.proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=self._env, bufsize=0)
            self.sock = _PipePair(self.proc)
        else:
            ours, theirs = socket.socketpair()
            self.proc = subprocess.Popen(self._argv, stdin=theirs, stdout=theirs,
                                         stderr=subprocess.PIPE, env=self._env)
            theirs.close()
            self.sock = ours
        self.file = None
        return self.getreply()

    def finish(self, timeout=15):
        """Wait for sendmail to exit; return (status, stderr)."""
        if self._transport == "pipes":
            _PipePair(self.proc).close()
            self.proc.stdin = self.proc.stdout = None
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError("sendmail -bs did not exit: %r" % err)
        return self.proc.returncode, err


def open_bs(sendmail_bin, conf, transport="socketpair"):
    s = PipeSMTP([sendmail_bin, "-bs"], bs_env(conf), transport)
    code, greeting = s.connect()
    assert code == 220, greeting
    return s


def message(subject, body="hello\r\n", sender="app@example.com", to="rcpt@example.org"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n%s" % (sender, to, subject, body)).encode()


# ---------------------------------------------------------------- -bs / Postfix

def test_swaks_pipe_bs(relay, sendmail_bin, tmp_path):
    conf = write_config(tmp_path, relay.plain_port)
    r = subprocess.run(["swaks", "--pipe", "%s -bs" % sendmail_bin,
                        "--from", "app@example.com", "--to", "rcpt@example.org",
                        "--header", "Subject: swaks pipe", "--body", "via swaks"],
                       env=bs_env(conf), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"<-  250 2.0.0" in r.stdout
    m = relay.capture.wait_for(1, timeout=15)[0]
    assert m.mail_from == "app@example.com"
    assert m.rcpt_tos == ["rcpt@example.org"]
    assert b"Subject: swaks pipe" in m.data
    assert b"via swaks" in m.data


def test_final_reply_carries_the_relay_queue_id_once(sendmail_bin, tmp_path):
    # "250 2.0.0 Ok: queued as X" from the relay, not "250 2.0.0 Ok: 250 2.0.0 Ok: ...".
    with FaultServer({"eod": "250 2.0.0 Ok: queued as 4FAKEID"}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        s.ehlo("localhost")
        s.mail("app@example.com")
        s.rcpt("rcpt@example.org")
        code, text = s.data(message("queue id"))
        s.quit()
        s.finish()
    assert code == 250
    assert b"queued as 4FAKEID" in text
    assert text.count(b"250") == 0 and text.count(b"2.0.0") == 1, text


def test_swaks_pipeline_bs(relay, sendmail_bin, tmp_path):
    conf = write_config(tmp_path, relay.plain_port)
    r = subprocess.run(["swaks", "--pipeline", "--pipe", "%s -bs" % sendmail_bin,
                        "--from", "app@example.com", "--to", "a@example.org,b@example.org",
                        "--header", "Subject: swaks pipeline"],
                       env=bs_env(conf), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = relay.capture.wait_for(1, timeout=15)[0]
    assert sorted(m.rcpt_tos) == ["a@example.org", "b@example.org"]
    assert b"Subject: swaks pipeline" in m.data


@pytest.mark.parametrize("transport", ["pipes", "socketpair"])
def test_smtplib_two_messages_in_one_session(relay, sendmail_bin, tmp_path, transport):
    s = open_bs(sendmail_bin, write_config(tmp_path, relay.plain_port), transport)
    s.ehlo("localhost")
    assert s.has_extn("pipelining") and s.has_extn("size") and not s.has_extn("starttls")
    s.sendmail("django@example.com", ["one@example.org"], message("first"))
    s.sendmail("django@example.com", ["two@example.org", "three@example.org"],
               message("second", "8-bit: \u00e9t\u00e9\r\n"))
    s.quit()
    rc, err = s.finish()
    assert rc == 0, err
    msgs = relay.capture.wait_for(2, timeout=15)
    by_subject = {b"first" if b"Subject: first" in m.data else b"second": m for m in msgs}
    assert by_subject[b"first"].rcpt_tos == ["one@example.org"]
    assert sorted(by_subject[b"second"].rcpt_tos) == ["three@example.org", "two@example.org"]


def test_nodemailer_style_pipelined_and_closed_without_quit(relay, sendmail_bin, tmp_path):
    conf = write_config(tmp_path, relay.plain_port)
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([sendmail_bin, "-bs"], stdin=theirs, stdout=theirs,
                         stderr=subprocess.PIPE, env=bs_env(conf))
    theirs.close()
    f = ours.makefile("rb")
    assert f.readline().startswith(b"220 ")
    ours.sendall(b"EHLO [127.0.0.1]\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    ours.sendall(b"MAIL FROM:<node@example.com>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n")
    assert [f.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
    ours.sendall(message("nodemailer") + b".\r\n")
    assert f.readline().startswith(b"250 ")
    f.close()
    ours.close()
    _, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    m = relay.capture.wait_for(1, timeout=15)[0]
    assert m.mail_from == "node@example.com"
    assert b"Subject: nodemailer" in m.data


def test_curl_style_bare_lf_without_headers(relay, sendmail_bin, tmp_path):
    s = open_bs(sendmail_bin, write_config(tmp_path, relay.plain_port))
    s.ehlo("smartd-msg.txt")
    s.mail("curl@example.com", ["SIZE=30"])
    s.rcpt("ops@example.org")
    # smtplib.data() would fix the line endings; send the raw bytes as curl does.
    code, _ = s.docmd("DATA")
    assert code == 354
    s.send(b"no headers here\nsecond line\n\r\n.\r\n")
    code, text = s.getreply()
    assert code == 250, text
    s.quit()
    assert s.finish()[0] == 0
    m = relay.capture.wait_for(1, timeout=15)[0]
    assert b"\r\n\r\nno headers here\r\nsecond line\r\n" in m.data
    assert b"\n" not in m.data.replace(b"\r\n", b"")


def test_smtplib_login_is_accepted_and_starttls_never_offered(relay, sendmail_bin, tmp_path):
    # An application configured with a password must still work ([smtpd] auth = accept).
    s = open_bs(sendmail_bin, write_config(tmp_path, relay.plain_port))
    s.ehlo("localhost")
    assert "PLAIN" in s.esmtp_features.get("auth", "")
    with pytest.raises(smtplib.SMTPNotSupportedError):
        s.starttls()
    code, _ = s.docmd("STARTTLS")
    assert code == 502
    s.login("appuser", "any password")
    s.sendmail("app@example.com", ["rcpt@example.org"], message("after auth"))
    s.quit()
    assert s.finish()[0] == 0
    assert b"Subject: after auth" in relay.capture.wait_for(1, timeout=15)[0].data


def test_auth_off_is_not_advertised(relay, sendmail_bin, tmp_path):
    conf = write_config(tmp_path, relay.plain_port)
    s = PipeSMTP([sendmail_bin, "-bs"], bs_env(conf, RELAYSHIM_SMTPD_AUTH="off"))
    s.connect()
    s.ehlo("localhost")
    assert not s.has_extn("auth")
    with pytest.raises(smtplib.SMTPNotSupportedError):
        s.login("appuser", "pw")
    s.quit()
    s.finish()


SYMFONY = r"""
require '/usr/share/php/Symfony/Component/Mailer/autoload.php';
require '/usr/share/php/Symfony/Component/Mime/autoload.php';
use Symfony\Component\Mailer\Mailer;
use Symfony\Component\Mailer\Transport\SendmailTransport;
use Symfony\Component\Mime\Email;

$mailer = new Mailer(new SendmailTransport($argv[1] . ' -bs'));
for ($i = 1; $i <= 3; $i++) {
    $mailer->send((new Email())
        ->from('app@example.com')
        ->to('rcpt@example.org')
        ->bcc('hidden@example.org')
        ->subject("symfony $i")
        ->text("first line\n.\nlast line $i"));
}
echo "sent\n";
"""


def test_symfony_sendmail_transport_bs(relay, sendmail_bin, tmp_path):
    # The real thing: HELO, three messages in one -bs process without RSET,
    # dot-stuffed data, Bcc only in RCPT.
    conf = write_config(tmp_path, relay.plain_port)
    script = tmp_path / "symfony.php"
    script.write_text("<?php\n" + SYMFONY)
    r = subprocess.run(["php", str(script), sendmail_bin], env=bs_env(conf),
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout == b"sent\n", r.stdout + r.stderr
    msgs = relay.capture.wait_for(3, timeout=15)
    assert len(msgs) == 3
    for m in msgs:
        assert m.mail_from == "app@example.com"
        assert sorted(m.rcpt_tos) == ["hidden@example.org", "rcpt@example.org"]
        assert b"hidden@example.org" not in m.data
        assert b"first line\r\n.\r\nlast line" in m.data


# ---------------------------------------------------------------- -bs / fault server

def test_relay_4xx_reaches_the_client_with_its_text(sendmail_bin, tmp_path):
    with FaultServer({"eod": "451 4.7.1 Greylisted, try again in 5 minutes"}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("app@example.com", ["rcpt@example.org"], message("grey"))
        assert e.value.smtp_code == 451
        assert b"4.7.1 Greylisted, try again in 5 minutes" in e.value.smtp_error
        s.quit()
        assert s.finish()[0] == 0


def test_relay_5xx_reaches_the_client_with_its_text(sendmail_bin, tmp_path):
    with FaultServer({"eod": "554 5.7.1 Message rejected by content policy"}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("app@example.com", ["rcpt@example.org"], message("spam"))
        assert e.value.smtp_code == 554
        assert b"5.7.1 Message rejected by content policy" in e.value.smtp_error
        s.quit()
        s.finish()


def test_every_recipient_refused_by_the_relay_is_a_5xx(sendmail_bin, tmp_path):
    with FaultServer({"rcpt": "550 5.1.1 <nobody@example.org>: Recipient address rejected"}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("app@example.com", ["nobody@example.org"], message("nobody"))
        assert e.value.smtp_code // 100 == 5
        assert b"Recipient address rejected" in e.value.smtp_error
        s.quit()
        s.finish()


def test_relay_down_is_a_4xx_never_a_250(sendmail_bin, tmp_path):
    with FaultServer({}) as srv:
        port = srv.port
    s = open_bs(sendmail_bin, write_config(tmp_path, port))
    with pytest.raises(smtplib.SMTPResponseException) as e:
        s.sendmail("app@example.com", ["rcpt@example.org"], message("down"))
    assert e.value.smtp_code // 100 == 4
    s.close()
    s.finish()


def test_one_relay_connection_serves_the_whole_session(sendmail_bin, tmp_path):
    with FaultServer({}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        s.ehlo("localhost")
        for i in range(5):
            s.sendmail("app@example.com", ["rcpt%d@example.org" % i], message("reuse %d" % i))
        s.quit()
        assert s.finish()[0] == 0
        msgs = srv.wait_for(5)
        srv.wait_for_connections(1)
        assert srv.connection_count == 1
    assert [m.rcpt_tos for m in msgs] == [["rcpt%d@example.org" % i] for i in range(5)]


def test_relay_session_is_set_up_while_the_client_answers_the_greeting(sendmail_bin, tmp_path):
    # The relay's greeting and EHLO round trips overlap the client's turn
    # after our greeting, instead of following its EHLO: the relay has seen
    # our EHLO before the client has said anything. That session then
    # carries the message, and the first EHLO's DSN comes from it.
    with FaultServer({}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        deadline = time.monotonic() + 10
        while not any(c.commands and c.commands[0].upper().startswith("EHLO")
                      for c in list(srv.connections)):
            assert time.monotonic() < deadline, "no relay session before the client's EHLO"
            time.sleep(0.01)
        s.ehlo("localhost")
        assert s.has_extn("dsn")
        s.sendmail("app@example.com", ["rcpt@example.org"], message("early"))
        s.quit()
        assert s.finish()[0] == 0
        srv.wait_for(1)
        srv.wait_for_connections(1)
        assert srv.connection_count == 1


def test_a_temporary_error_drops_the_relay_session_and_the_next_message_reconnects(
        sendmail_bin, tmp_path):
    # The first connection would take the second message (its second end of
    # data is a 250), but after a 4xx the session's state is uncertain: it
    # is closed and the next message goes over a new connection.
    scripts = [{"eod": ["451 4.3.0 Try again later", "250 2.0.0 Ok: queued as OLD"]},
               {"eod": "250 2.0.0 Ok: queued as NEW"}]
    with FaultServer(scripts) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        s.ehlo("localhost")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("app@example.com", ["first@example.org"], message("first"))
        assert e.value.smtp_code == 451
        s.sendmail("app@example.com", ["second@example.org"], message("second"))
        s.quit()
        assert s.finish()[0] == 0
        srv.wait_for(1)
        srv.wait_for_connections(2)
        first, second = srv.connections
        assert [m.rcpt_tos for m in first.messages] == [["first@example.org"]]
        assert [m.rcpt_tos for m in second.messages if m.accepted] == [["second@example.org"]]
        assert srv.connection_count == 2


def test_dsn_advertised_only_when_the_relay_has_it(sendmail_bin, tmp_path):
    with FaultServer({"capabilities": ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        s.ehlo("localhost")
        assert not s.has_extn("dsn")
        s.quit()
        s.finish()
    with FaultServer({}) as srv:
        s = open_bs(sendmail_bin, write_config(tmp_path, srv.port))
        s.ehlo("localhost")
        assert s.has_extn("dsn")
        s.sendmail("app@example.com", ["rcpt@example.org"], message("dsn"),
                   mail_options=["RET=HDRS", "ENVID=abc"], rcpt_options=["NOTIFY=FAILURE,DELAY"])
        s.quit()
        s.finish()
        m = srv.wait_for(1)[0]
        assert "RET=HDRS" in m.mail_options and "ENVID=abc" in m.mail_options
        assert "NOTIFY=FAILURE,DELAY" in m.rcpt_options[0]


# ---------------------------------------------------------------- -bd

def ipv6_usable():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def daemon(relay, sendmail_bin, tmp_path):
    """sendmail -bd on a free port of 127.0.0.1 (and ::1); stopped with SIGTERM."""
    v6 = ipv6_usable()
    port = free_port(v6)
    conf = write_config(tmp_path, relay.plain_port)
    spec = "127.0.0.1:%d" % port + (" [::1]:%d" % port if v6 else "")
    p = subprocess.Popen([sendmail_bin, "-bd"], env=bs_env(conf, RELAYSHIM_INTERCEPT=spec),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                raise AssertionError("sendmail -bd did not listen: %r" % p.communicate()[1])
            time.sleep(0.05)
    p.port = port
    p.v6 = v6
    yield p
    if p.poll() is None:
        p.kill()
        p.wait()


def stop_daemon(p):
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("sendmail -bd ignored SIGTERM")
    return p.returncode, err


def test_bd_serves_smtplib_on_both_families_and_stops_on_sigterm(daemon, relay):
    hosts = ["127.0.0.1"] + (["::1"] if daemon.v6 else [])
    for host in hosts:
        with smtplib.SMTP(host, daemon.port, timeout=30) as s:
            s.sendmail("go@example.com", ["rcpt@example.org"], message("bd %s" % host))
    msgs = relay.capture.wait_for(len(hosts), timeout=15)
    for host in hosts:
        assert any(("Subject: bd %s" % host).encode() in m.data for m in msgs)
    rc, err = stop_daemon(daemon)
    assert rc == 0, err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=2).close()


def test_bd_serves_a_statically_linked_client(daemon, relay, tmp_path):
    exe = tmp_path / "static_client"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(exe),
                    os.path.join(ROOT, "tests/tools/static_client.c")], check=True)
    assert b"statically linked" in subprocess.run(["file", "-b", str(exe)],
                                                  capture_output=True).stdout
    r = subprocess.run([str(exe), "127.0.0.1", str(daemon.port), "go@example.com",
                        "rcpt@example.org", "from a static binary"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = relay.capture.wait_for(1, timeout=15)[0]
    assert m.mail_from == "go@example.com"
    assert b"Subject: from a static binary" in m.data
    assert stop_daemon(daemon)[0] == 0


def test_bd_serves_curl_with_bare_lf(daemon, relay, tmp_path):
    body = tmp_path / "smartd-msg.txt"
    body.write_bytes(b"Subject: curl\n\nbare LF line\n")
    r = subprocess.run(["curl", "-sS", "smtp://127.0.0.1:%d" % daemon.port,
                        "--mail-from", "curl@example.com", "--mail-rcpt", "ops@example.org",
                        "-T", str(body)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = relay.capture.wait_for(1, timeout=15)[0]
    assert b"Subject: curl\r\n" in m.data
    assert b"\r\n\r\nbare LF line\r\n" in m.data
    assert stop_daemon(daemon)[0] == 0


def test_bd_parallel_sessions(daemon, relay):
    socks = [smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) for _ in range(8)]
    for i, s in enumerate(socks):
        s.sendmail("go@example.com", ["rcpt@example.org"], message("parallel %d" % i))
    for s in socks:
        s.quit()
    assert len(relay.capture.wait_for(8, timeout=30)) >= 8
    assert stop_daemon(daemon)[0] == 0


def test_bd_refuses_a_non_loopback_endpoint(relay, sendmail_bin, tmp_path):
    conf = write_config(tmp_path, relay.plain_port)
    r = subprocess.run([sendmail_bin, "-bd"],
                       env=bs_env(conf, RELAYSHIM_INTERCEPT="0.0.0.0:2525"),
                       capture_output=True, timeout=30)
    assert r.returncode == 78, r.stderr
    assert b"not a loopback address" in r.stderr


def test_size_refusal_after_rewriting_is_552(sendmail_bin, tmp_path):
    # The client's 60 bytes pass the server's own max_size check; the Received, Date,
    # Message-ID and From headers that rewriting adds push the message over it:
    # the refusal is the size class 552 5.3.4, not a generic 554.
    conf = tmp_path / "c.conf"
    conf.write_text("[relay]\nhost = 127.0.0.1:1\n[policy]\nmax_size = 200\n"
                    "[queue]\nmode = never\n[log]\ntarget = none\n")
    session = (b"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
               b"Subject: big\r\n\r\n" + b"0123456789" * 4 + b"\r\n.\r\nQUIT\r\n")
    r = subprocess.run([sendmail_bin, "-bs"], input=session, capture_output=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": str(conf)})
    replies = r.stdout.decode().split("\r\n")
    final = [l for l in replies if l[:3] in ("250", "552", "554") and "more than max_size" in l]
    assert final and final[0].startswith("552 5.3.4 "), replies
