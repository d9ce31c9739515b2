"""test_smtpd_trust - what a hostile SMTP client or local user can do to -bs, -bd and the shim.

Every case runs the real sendmail against the private Postfix relay and asserts at
the capture sink behind it (what the relay really forwarded):

    smuggling       a body with bare-LF line ends that hides "\\n.\\nMAIL FROM:<ceo@...>
                    RCPT TO:<victim@...> DATA ..." reaches the relay as ONE message,
                    through `sendmail -bs` and through the shim with curl (which
                    sends a file's bare LFs as they are and does not dot-stuff them);
                    only <CR><LF>.<CR><LF> ends DATA (smtpd.h)
    header grammar  "BCC : hidden@..." (obsolete space before the colon, RFC 5322
                    4.5.8) with -t: the Bcc line is a header field, hidden@ gets the
                    mail and nobody sees the line
    -bd fairness    one unprivileged local user (created here, prefix rsd) opens
                    100 idle connections: it gets SMTPD_DAEMON_CLIENT_CHILDREN (20)
                    sessions, another user and root still get 220 and deliver
    junk commands   a NOOP loop ends with 421 after SMTPD_JUNK_MAX (100) commands
"""

import json
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time

import pytest

from harness.util import free_port

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "shim", "librelayshim.so")
SENDMAIL = os.path.join(BUILD, "sendmail", "sendmail")

SMUGGLED = (b"MAIL FROM:<ceo@example.com>\nRCPT TO:<victim@example.org>\nDATA\n"
            b"From: ceo@example.com\nSubject: smuggled\n\nwire the money\n")


def conf_text(relay, extra=""):
    return ("[relay]\nhost = 127.0.0.1:%d\n[rewrite]\ndomain = example.com\n"
            "[queue]\nmode = never\n[log]\ntarget = stderr\n%s" % (relay.plain_port, extra))


def write_conf(tmp_path, relay):
    path = tmp_path / "trust.conf"
    path.write_text(conf_text(relay))
    os.chmod(path, 0o644)  # the unprivileged test users read it too
    os.chmod(tmp_path, 0o755)
    return str(path)


def bs_session(conf, stream, timeout=60):
    """Run `sendmail -bs` on a socketpair, send stream, return (reply codes, raw)."""
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([SENDMAIL, "-bs"], stdin=theirs, stdout=theirs, stderr=subprocess.PIPE,
                         env={"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": conf})
    theirs.close()
    ours.sendall(stream)
    ours.settimeout(timeout)
    raw = b""
    while True:
        chunk = ours.recv(65536)
        if not chunk:
            break
        raw += chunk
    ours.close()
    p.communicate(timeout=timeout)
    codes = [l[:3].decode() for l in raw.split(b"\r\n") if len(l) >= 4 and l[3:4] == b" "]
    return codes, raw


def settled(relay, n):
    """The relay's forwarded messages once its queue is empty (at least n expected)."""
    relay.capture.wait_for(n, timeout=20)
    relay.wait_idle(timeout=10)
    time.sleep(0.3)  # the capture sink records after its 250: let the last one land
    return relay.capture.messages()


def assert_one_unsmuggled_message(msgs, sender):
    assert [m.mail_from for m in msgs] == [sender], [(m.mail_from, m.rcpt_tos) for m in msgs]
    assert "victim@example.org" not in msgs[0].rcpt_tos
    data = msgs[0].data
    # The would-be commands are body text of the one message, the dot line kept as a dot.
    assert b"\r\nMAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n" in data
    assert b"wire the money\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")


# ---------------------------------------------------------------------------
# Item: SMTP smuggling through -bs and the shim
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dot", [b"\n.\n", b"\r\n.\n", b"\n.\r\n"],
                         ids=["lf-dot-lf", "crlf-dot-lf", "lf-dot-crlf"])
def test_bs_smuggled_transaction_reaches_the_relay_as_one_message(relay, tmp_path, dot):
    conf = write_conf(tmp_path, relay)
    stream = (b"EHLO app\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<user@example.org>\r\n"
              b"DATA\r\nFrom: app@example.com\nSubject: invoice\n\nyour invoice" + dot +
              SMUGGLED + b".\n\r\n.\r\nQUIT\r\n")
    codes, raw = bs_session(conf, stream)
    # 220, EHLO, MAIL, RCPT, 354, one 250 for the one message, 221.
    assert codes == ["220", "250", "250", "250", "354", "250", "221"], raw
    msgs = settled(relay, 1)
    assert_one_unsmuggled_message(msgs, "app@example.com")
    assert msgs[0].rcpt_tos == ["user@example.org"]
    # The lone dots arrived as content: the relay got them dot-stuffed.
    assert b"\r\n.\r\nMAIL FROM:<ceo@example.com>" in msgs[0].data


def skip_if_sanitized_shim():
    if "libasan" in subprocess.run(["ldd", SHIM], capture_output=True, text=True).stdout:
        pytest.skip("curl deadlocks at start-up with libasan preloaded, shim or not")


@pytest.fixture
def shim_env(relay, tmp_path):
    conf = write_conf(tmp_path, relay)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYSHIM_") and k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=SHIM, RELAYSHIM_SENDMAIL=SENDMAIL, RELAYSHIM_CONFIG=conf)
    return env


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_shim_curl_smuggled_transaction_reaches_the_relay_as_one_message(relay, shim_env,
                                                                         tmp_path):
    skip_if_sanitized_shim()
    body = tmp_path / "invoice.txt"
    # What an application writes when part of the body is attacker-controlled.
    body.write_bytes(b"From: app@example.com\nSubject: invoice\n\nyour invoice\n.\n" +
                     SMUGGLED + b".\n")
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "smtp://127.0.0.1:25",
                        "--mail-from", "app@example.com", "--mail-rcpt", "user@example.org",
                        "--upload-file", str(body)],
                       env=shim_env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msgs = settled(relay, 1)
    assert_one_unsmuggled_message(msgs, "app@example.com")
    assert msgs[0].rcpt_tos == ["user@example.org"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_shim_curl_plain_bare_lf_message_still_works(relay, shim_env, tmp_path):
    skip_if_sanitized_shim()
    body = tmp_path / "plain.txt"
    body.write_bytes(b"Subject: plain curl\n\nline one\n..leading dot\nlast\n")
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "smtp://127.0.0.1:25",
                        "--mail-from", "app@example.com", "--mail-rcpt", "user@example.org",
                        "--upload-file", str(body)],
                       env=shim_env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msgs = settled(relay, 1)
    assert len(msgs) == 1
    assert b"Subject: plain curl\r\n" in msgs[0].data
    # curl does not stuff after a bare LF; transparency takes one dot, as Postfix does.
    assert b"\r\n\r\nline one\r\n.leading dot\r\nlast\r\n" in msgs[0].data


# ---------------------------------------------------------------------------
# Item: one header grammar - "BCC : x" with -t
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bcc", [b"BCC : hidden@example.org", b"bcc\t:hidden@example.org",
                                 b"Bcc  \t : hidden@example.org"],
                         ids=["space", "tab", "spaces-and-tab"])
def test_t_bcc_with_space_before_the_colon_is_stripped_and_delivered(relay, run_sendmail,
                                                                     bcc):
    msg = (b"From: app@example.com\nTo: b@example.org\n" + bcc + b"\nSubject: obs bcc\n"
           b"\nbody text\n")
    r = run_sendmail(["-t", "-i"], input=msg, config=conf_text(relay))
    assert r.returncode == 0, r.stderr
    msgs = settled(relay, 1)
    assert len(msgs) == 1, [(m.mail_from, m.rcpt_tos) for m in msgs]
    assert sorted(msgs[0].rcpt_tos) == ["b@example.org", "hidden@example.org"]
    data = msgs[0].data
    assert b"hidden@example.org" not in data
    assert not re.search(rb"(?im)^bcc[ \t]*:", data), data
    # The header did not end early: Subject is a header field, the body is the body.
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"\r\nSubject: obs bcc" in head
    assert rest == b"body text\r\n"


# ---------------------------------------------------------------------------
# Item: -bd fairness and the junk-command limit
# ---------------------------------------------------------------------------

HOLDER = r"""
import json, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks, got = [], {}
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        code = s.recv(512)[:3].decode() or "EOF"
    except OSError as e:
        code = type(e).__name__
    got[code] = got.get(code, 0) + 1
    socks.append(s)
print(json.dumps(got), flush=True)
sys.stdin.read()  # hold every connection until the test is done
"""

SENDER_AS_USER = r"""
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("other@example.com", ["rcpt@example.org"],
               "Subject: from another user\r\n\r\nstill served\r\n")
"""


@pytest.fixture
def rsd_users():
    names = ["rsdidle", "rsdother"]
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", name], check=True, capture_output=True)
    yield {name: pwd.getpwnam(name).pw_uid for name in names}
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)


def as_user(uid, argv, **kw):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % pwd.getpwuid(uid).pw_gid,
            "--clear-groups", "--"] + argv


@pytest.fixture
def daemon(relay, tmp_path):
    port = free_port()
    conf = write_conf(tmp_path, relay)
    p = subprocess.Popen([SENDMAIL, "-bd"],
                         env={"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": conf,
                              "RELAYSHIM_INTERCEPT": "127.0.0.1:%d" % port},
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
    yield p
    if p.poll() is None:
        p.terminate()
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()


def test_bd_one_user_with_100_idle_connections_does_not_starve_the_others(relay, daemon,
                                                                         rsd_users):
    holder = subprocess.Popen(as_user(rsd_users["rsdidle"],
                                      [sys.executable, "-c", HOLDER, str(daemon.port), "100"]),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        line = holder.stdout.readline()
        assert line, holder.stderr.read()
        got = json.loads(line)
        # SMTPD_DAEMON_CLIENT_CHILDREN sessions for this uid, the rest refused at once.
        assert got == {"220": 20, "421": 80}, got
        # Another unprivileged user is still served and delivers.
        r = subprocess.run(as_user(rsd_users["rsdother"],
                                   [sys.executable, "-c", SENDER_AS_USER, str(daemon.port)]),
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        # And root.
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=20) as s:
            s.sendmail("root@example.com", ["rcpt@example.org"],
                       "Subject: from root\r\n\r\nstill served\r\n")
        msgs = settled(relay, 2)
        assert sorted(m.mail_from for m in msgs) == ["other@example.com", "root@example.com"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    daemon.terminate()
    _, err = daemon.communicate(timeout=30)
    assert b"uid %d already has 20 sessions" % rsd_users["rsdidle"] in err, err[-2000:]


def test_bs_noop_loop_ends_with_421_after_the_junk_limit(relay, tmp_path):
    conf = write_conf(tmp_path, relay)
    codes, raw = bs_session(conf, b"EHLO loop\r\n" + b"NOOP\r\n" * 150 + b"QUIT\r\n")
    # EHLO and 99 NOOPs are the 100 commands allowed without a message; then 421.
    assert codes == ["220"] + ["250"] * 100 + ["421"], raw[-300:]
    assert raw.endswith(b"421 4.7.0 " + raw.split(b" ")[1] +
                        b" Error: too many commands without a message\r\n"), raw[-300:]


def test_bd_noop_loop_ends_with_421_after_the_junk_limit(daemon):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as s:
        s.sendall(b"EHLO loop\r\n" + b"NOOP\r\n" * 150)
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    codes = [l[:3] for l in raw.split(b"\r\n") if len(l) >= 4 and l[3:4] == b" "]
    assert codes == [b"220"] + [b"250"] * 100 + [b"421"], raw[-300:]
