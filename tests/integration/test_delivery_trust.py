"""test_delivery_trust - what sendmail answers must be true for every recipient.

Two promises, each tested through the sendmail binary:

  * A recipient the relay deferred (4xx) while it took others is either queued
    or the caller hears a temporary failure (exit 75, 4xx in -bs): never exit 0
    or 250 for a recipient nobody holds. The queue is made unwritable the way a
    user meets it: a regular file where the spool directory should be, or an
    unprivileged user (created here, prefix rsb) whose spool cannot be created.
    The log tells each recipient's own status.
  * A tls_fingerprint pin or tls_verify = yes with the default tls = may makes
    TLS mandatory: a relay without STARTTLS, refusing it, or failing the
    handshake is a temporary failure (queued, or exit 75), and no MAIL FROM or
    DATA crosses the wire in plain text. The relay for this case runs on a
    non-loopback address inside a private network namespace (ip netns), as the
    FaultServer command line, whose connection log shows every byte it got.

Relays are FaultServers (tests/harness/faultsrv.py): Postfix cannot be told to
take one recipient and defer the next.
"""

import hashlib
import json
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS_DIR)
from harness.faultsrv import FaultServer  # noqa: E402
from harness.util import kill_spool_workers, one_line, stderr_text as err  # noqa: E402

TOP = os.path.dirname(TESTS_DIR)
SENDMAIL = os.path.join(TOP, os.environ.get("BUILD", "build"), "sendmail", "sendmail")
PARTIAL = {"rcpt": ["250 2.1.5 ok", "451 4.2.0 <later@example.com>: try again"]}
MESSAGE = b"From: s@example.com\r\nSubject: trust\r\n\r\nhello\r\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="users and netns need root")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


class Spool:
    """One test's directory: configuration, log file and (maybe) a spool."""

    def __init__(self, base):
        self.base = base
        self.dir = os.path.join(base, "spool")
        self.log = os.path.join(base, "relayshim.log")
        self.servers = []

    def block(self):
        """A regular file where the spool directory should be: it cannot be created."""
        with open(self.dir, "w") as f:
            f.write("not a directory\n")
        self.dir = os.path.join(self.dir, "spool")

    def config(self, host, mode="fallback", relay=""):
        path = os.path.join(self.base, "relayshim-%d.conf" % len(os.listdir(self.base)))
        with open(path, "w") as f:
            f.write("[relay]\nhost = %s\ntimeout_connect = 2s\ntimeout = 5s\n%s"
                    "[rewrite]\ndomain = example.com\n[queue]\nmode = %s\ndir = %s\n"
                    "[log]\ntarget = %s\n" % (host, relay, mode, self.dir, self.log))
        os.chmod(path, 0o644)
        return path

    def run(self, args, config, message=MESSAGE, user=None, stdin=None):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "RELAYSHIM_RETRY_BASE": "3600"}
        cmd = [SENDMAIL, "-C", config] + list(args)
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                   "--"] + cmd
        return subprocess.run(cmd, input=message if stdin is None else stdin,
                              capture_output=True, env=env, timeout=60)

    def entries(self, uid=0):
        try:
            return sorted(n for n in os.listdir(os.path.join(self.dir, str(uid), "q"))
                          if "." not in n)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def records(self):
        """The delivery records of the log file: {recipient: status}."""
        out = {}
        try:
            text = open(self.log).read()
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            if " to=<" not in line or " status=" not in line:
                continue
            to = line.split(" to=", 1)[1].split(", relay=")[0].split(", delay=")[0]
            status = line.split(" status=", 1)[1].split(" ", 1)[0]
            for addr in to.split(","):
                out.setdefault(addr.strip("<>"), []).append(status)
        return out

    def kill_workers(self):
        """Retry workers started here: their pid is in the area's lock file."""
        kill_spool_workers(self.dir)


@pytest.fixture
def spool():
    base = tempfile.mkdtemp(prefix="relayshim-trust-")
    os.chmod(base, 0o755)
    s = Spool(base)
    yield s
    s.kill_workers()
    for srv in s.servers:
        srv.stop()
    shutil.rmtree(base, ignore_errors=True)


def fault(spool, script):
    srv = FaultServer(script).start()
    spool.servers.append(srv)
    return srv


def bs_replies(r):
    return r.stdout.decode("utf-8", "replace").splitlines()


def bs_script(*rcpts):
    s = b"EHLO client.test\r\nMAIL FROM:<s@example.com>\r\n"
    for rc in rcpts:
        s += b"RCPT TO:<%s>\r\n" % rc.encode()
    return s + b"DATA\r\n" + MESSAGE + b".\r\nQUIT\r\n"


def after_data(replies):
    """The reply to the final dot: the one after the 354."""
    i = next(i for i, l in enumerate(replies) if l.startswith("354"))
    return replies[i + 1]


def fingerprint(kind="valid"):
    from harness.pki import PKI
    pem = open(PKI.shared().cert(kind).cert).read()
    der = ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----"):])
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


# ---------------------------------------------------------------------------
# A partial acceptance whose deferred part cannot be queued
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fallback", "always"])
def test_deferred_recipient_that_cannot_be_queued_is_exit_75(spool, mode):
    spool.block()
    srv = fault(spool, PARTIAL)
    r = spool.run(["-i", "-f", "s@example.com", "ok@example.com", "later@example.com"],
                  spool.config("127.0.0.1:%d" % srv.port, mode=mode))
    assert r.returncode == 75, err(r)
    line = one_line(r)
    assert "later@example.com" in line and "451 4.2.0" in line, line
    assert "could not be queued" in line and "twice" in line, line
    assert [m.rcpt_tos for m in srv.wait_for(1)] == [["ok@example.com"]]
    rec = spool.records()
    assert rec["ok@example.com"] == ["sent"], rec
    assert rec["later@example.com"] == ["deferred"], rec


def test_deferred_recipient_that_cannot_be_queued_is_4xx_in_bs(spool):
    spool.block()
    srv = fault(spool, PARTIAL)
    r = spool.run(["-bs"], spool.config("127.0.0.1:%d" % srv.port), message=None,
                  stdin=bs_script("ok@example.com", "later@example.com"))
    final = after_data(bs_replies(r))
    assert final.startswith("451 "), bs_replies(r)
    assert "later@example.com" in final
    assert [m.rcpt_tos for m in srv.wait_for(1)] == [["ok@example.com"]]
    rec = spool.records()
    assert rec["ok@example.com"] == ["sent"] and rec["later@example.com"] == ["deferred"], rec


def test_unprivileged_user_whose_spool_cannot_be_created_gets_exit_75(spool):
    # The everyday way to meet it: the image did not create the spool, and the
    # application's user may not create it under a root-owned directory.
    name = "rsb%d" % os.getpid()
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        uid = pwd.getpwnam(name).pw_uid
        srv = fault(spool, PARTIAL)
        conf = spool.config("127.0.0.1:%d" % srv.port)
        open(spool.log, "w").close()
        os.chown(spool.log, uid, uid)
        r = spool.run(["-i", "-f", "s@example.com", "ok@example.com", "later@example.com"],
                      conf, user=uid)
        assert r.returncode == 75, err(r)
        assert "Permission denied" in one_line(r)
        assert not os.path.exists(spool.dir)
        assert [m.rcpt_tos for m in srv.wait_for(1)] == [["ok@example.com"]]
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def test_mode_never_partial_deferral_is_exit_75(spool):
    srv = fault(spool, PARTIAL)
    r = spool.run(["-i", "-f", "s@example.com", "ok@example.com", "later@example.com"],
                  spool.config("127.0.0.1:%d" % srv.port, mode="never"))
    assert r.returncode == 75, err(r)
    assert "later@example.com" in one_line(r)
    assert spool.entries() == []
    rec = spool.records()
    assert rec["ok@example.com"] == ["sent"] and rec["later@example.com"] == ["deferred"], rec


def test_queued_deferred_recipient_is_logged_as_queued_not_sent(spool):
    srv = fault(spool, PARTIAL)
    r = spool.run(["-i", "-f", "s@example.com", "ok@example.com", "later@example.com"],
                  spool.config("127.0.0.1:%d" % srv.port))
    assert r.returncode == 0, err(r)
    # The worker the store kicked may deliver later@ at once: its own line comes after.
    rec = spool.records()
    assert rec["ok@example.com"] == ["sent"], rec
    assert rec["later@example.com"][0] == "queued", rec


@pytest.mark.parametrize("mode", ["fallback", "always"])
def test_full_deferral_that_cannot_be_queued_is_never_0_nor_250(spool, mode):
    spool.block()
    srv = fault(spool, {"mail": "451 4.3.0 relay busy"})
    conf = spool.config("127.0.0.1:%d" % srv.port, mode=mode)
    r = spool.run(["-i", "-f", "s@example.com", "ok@example.com"], conf)
    assert r.returncode == 73, err(r)
    assert "could not be queued" in one_line(r)
    assert spool.records()["ok@example.com"] == ["deferred"]
    r = spool.run(["-bs"], conf, message=None, stdin=bs_script("ok@example.com"))
    assert after_data(bs_replies(r))[0] == "4", bs_replies(r)
    assert srv.messages() == []


# ---------------------------------------------------------------------------
# A pin or a verification asked for: TLS or nothing
# ---------------------------------------------------------------------------


class NetnsRelay:
    """A FaultServer on 10.231.N.2 in a private network namespace, reached
    from here over a veth pair (10.231.N.1/30): a relay that is not loopback."""

    PORT = 2525

    def __init__(self, base):
        n = os.getpid() % 250
        self.ns = "rsb-%d" % os.getpid()
        self.veth = "rsb%da" % os.getpid()
        self.peer = "rsb%db" % os.getpid()
        self.local = "10.231.%d.1" % n
        self.addr = "10.231.%d.2" % n
        self.base = base
        self.proc = None
        self.log_file = None

    def sh(self, *cmd):
        subprocess.run(list(cmd), check=True, capture_output=True)

    def setup(self):
        self.sh("ip", "netns", "add", self.ns)
        self.sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", self.peer)
        self.sh("ip", "link", "set", self.peer, "netns", self.ns)
        self.sh("ip", "addr", "add", self.local + "/30", "dev", self.veth)
        self.sh("ip", "link", "set", self.veth, "up")
        self.sh("ip", "netns", "exec", self.ns, "ip", "addr", "add", self.addr + "/30",
                "dev", self.peer)
        self.sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.peer, "up")
        self.sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        return self

    def start(self, script):
        from harness.pki import PKI
        path = os.path.join(self.base, "script-%d.json" % time.monotonic_ns())
        with open(path, "w") as f:
            json.dump(script, f)
        self.log_file = path + ".log"
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "harness.faultsrv",
             "--script", path, "--host", self.addr, "--port", str(self.PORT),
             "--pki", PKI.shared().dir, "--log", self.log_file],
            cwd=TESTS_DIR, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT="), line
        return self

    def stop(self):
        """Stop the server; return its connection log."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)
        self.proc.stdout.close()
        self.proc = None
        with open(self.log_file) as f:
            return json.load(f)

    def teardown(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    @property
    def host(self):
        return "%s:%d" % (self.addr, self.PORT)


@pytest.fixture
def netns_relay(spool):
    r = NetnsRelay(spool.base)
    try:
        yield r.setup()
    finally:
        r.teardown()


def plaintext_envelope(log):
    """Every byte the relay got, over all connections: no transaction may be in it."""
    seen = "".join("".join(c["reads"]) for c in log).upper()
    return [w for w in ("MAIL FROM", "RCPT TO", "DATA\r\n", "SUBJECT: TRUST") if w in seen]


PIN = "tls_fingerprint = %s\n"
NO_STARTTLS = {"capabilities": ["PIPELINING", "8BITMIME"]}


def test_pin_without_starttls_is_queued_never_plaintext(spool, netns_relay):
    netns_relay.start(NO_STARTTLS)
    conf = spool.config(netns_relay.host, relay="tls = may\n" + PIN % fingerprint())
    r = spool.run(["-i", "-f", "s@example.com", "b@example.com"], conf)
    log = netns_relay.stop()
    assert r.returncode == 0, err(r)
    assert len(spool.entries()) == 1
    assert "does not offer STARTTLS, which tls_fingerprint requires" in open(spool.log).read()
    assert len(log) >= 1 and plaintext_envelope(log) == [], log
    assert spool.records()["b@example.com"][0] == "queued"


def test_verify_yes_without_starttls_is_exit_75_in_mode_never(spool, netns_relay):
    netns_relay.start(NO_STARTTLS)
    conf = spool.config(netns_relay.host, mode="never", relay="tls = may\ntls_verify = yes\n")
    r = spool.run(["-i", "-f", "s@example.com", "b@example.com"], conf)
    log = netns_relay.stop()
    assert r.returncode == 75, err(r)
    assert "which tls_verify = yes requires" in one_line(r)
    assert len(log) >= 1 and plaintext_envelope(log) == [], log


def test_pin_with_failing_starttls_handshake_is_exit_75(spool, netns_relay):
    netns_relay.start({"tls": "starttls", "starttls_garbage": "this is no TLS\r\n"})
    conf = spool.config(netns_relay.host, mode="never", relay="tls = may\n" + PIN % fingerprint())
    r = spool.run(["-i", "-f", "s@example.com", "b@example.com"], conf)
    log = netns_relay.stop()
    assert r.returncode == 75, err(r)
    assert "TLS" in one_line(r)
    assert len(log) >= 1 and plaintext_envelope(log) == [], log


def test_pin_with_starttls_refused_is_exit_75(spool, netns_relay):
    netns_relay.start({"tls": "starttls", "starttls": "454 4.7.0 TLS not available"})
    conf = spool.config(netns_relay.host, mode="never", relay="tls = may\n" + PIN % fingerprint())
    r = spool.run(["-i", "-f", "s@example.com", "b@example.com"], conf)
    log = netns_relay.stop()
    assert r.returncode == 75, err(r)
    line = one_line(r)
    assert "refused STARTTLS, which tls_fingerprint requires" in line and "454 4.7.0" in line
    assert len(log) >= 1 and plaintext_envelope(log) == [], log


def test_pin_without_starttls_in_bs_is_4xx(spool, netns_relay):
    netns_relay.start(NO_STARTTLS)
    conf = spool.config(netns_relay.host, mode="never", relay="tls = may\n" + PIN % fingerprint())
    r = spool.run(["-bs"], conf, message=None, stdin=bs_script("b@example.com"))
    log = netns_relay.stop()
    final = after_data(bs_replies(r))
    assert final.startswith("4") and "tls_fingerprint" in final, bs_replies(r)
    assert len(log) >= 1 and plaintext_envelope(log) == [], log


def test_queue_runner_keeps_the_pin(spool, netns_relay):
    # Queued while nothing listens in the namespace; then -q meets a relay
    # without STARTTLS: the entry stays, nothing goes out in plain text.
    conf = spool.config(netns_relay.host, relay="tls = may\n" + PIN % fingerprint())
    r = spool.run(["-i", "-f", "s@example.com", "b@example.com"], conf)
    assert r.returncode == 0, err(r)
    assert len(spool.entries()) == 1
    spool.kill_workers()
    netns_relay.start(NO_STARTTLS)
    r = spool.run(["-q"], conf)
    log = netns_relay.stop()
    assert r.returncode == 75, err(r)
    assert "tls_fingerprint" in err(r)
    assert len(spool.entries()) == 1
    assert len(log) >= 1 and plaintext_envelope(log) == [], log


def test_tls_may_without_pin_still_delivers_in_plaintext(spool, netns_relay):
    # Opportunistic TLS stays what it was: the pin is what makes it mandatory.
    netns_relay.start(NO_STARTTLS)
    conf = spool.config(netns_relay.host, mode="never", relay="tls = may\n")
    r = spool.run(["-i", "-f", "s@example.com", "b@example.com"], conf)
    log = netns_relay.stop()
    assert r.returncode == 0, err(r)
    assert sum(len(c["messages"]) for c in log) == 1
