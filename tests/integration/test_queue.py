"""test_queue - the durable fallback queue through the sendmail binary (relayshim(8) QUEUE).

Drills of the queue's promises, each against the real Postfix relay fixture (conftest's
`relay`) unless it needs a fault the relay cannot produce:

  * outage: the relay address answers nothing (or 451) while 20 processes submit
    200 messages (all exit 0); then the relay comes back on the same address
    (a loopback forwarder to Postfix starts listening there) and the detached
    worker alone delivers every message exactly once;
  * multi-user: root and nobody share one spool; modes, isolation, and who may
    deliver what;
  * full disk (a small tmpfs, and RLIMIT_FSIZE) and a read-only spool;
  * crash points (RELAYSHIM_TEST_CRASH_AT) of the commit protocol and of
    delivery, and a kill while the relay holds back its 250.

Workers started by a test are killed at its end by the pid in their lock file,
and only when that process has the test's spool open.
"""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness.faultsrv import FaultServer  # noqa: E402
from harness.util import free_port, spool_worker_pids, stderr_text as err  # noqa: E402,F401

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SENDMAIL = os.path.join(TOP, os.environ.get("BUILD", "build"), "sendmail", "sendmail")
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the queue drills need root")


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------


class Forwarder:
    """A loopback TCP forwarder: "the relay comes back" on a fixed port.
    accepted counts the connections it took."""

    def __init__(self, port, target_port):
        self.port = port
        self.target = target_port
        self.accepted = 0
        self.sock = None
        self.stopping = threading.Event()
        self.threads = []
        self.conns = []
        self.lock = threading.Lock()

    def start(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(128)
        s.settimeout(0.2)
        self.sock = s
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                t = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        if self.sock:
            self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
        for t in self.threads:
            t.join(5)


class Queue:
    """One test's spool, configuration files and helpers."""

    def __init__(self, base):
        self.base = base
        self.dir = os.path.join(base, "spool")
        self.port = free_port()          # "the relay address": nothing listens yet
        self.forwarder = None
        self.servers = []

    def config(self, mode="fallback", port=None, extra=""):
        path = os.path.join(self.base, "relayshim-%s-%s.conf" % (mode, port or self.port))
        with open(path, "w") as f:
            f.write("[relay]\nhost = 127.0.0.1:%d\ntls = none\ntimeout_connect = 2s\n"
                    "timeout = 10s\n[rewrite]\ndomain = example.com\n"
                    "[queue]\nmode = %s\ndir = %s\n%s[log]\ntarget = stderr\n"
                    % (port or self.port, mode, self.dir, extra))
        os.chmod(path, 0o644)
        return path

    def run(self, args, message=b"", config=None, env=None, user=None, wrap=(),
            timeout=60):
        e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "RELAYSHIM_RETRY_BASE": "0.2"}
        e.update(env or {})
        cmd = [SENDMAIL, "-C", config or self.config()] + list(args)
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                   "--"] + cmd
        cmd = list(wrap) + cmd
        return subprocess.run(cmd, input=message, capture_output=True, env=e,
                              timeout=timeout)

    def send(self, n=0, sender="a@example.com", rcpt="b@example.com", body=b"", **kw):
        msg = (b"From: %s\r\nTo: %s\r\nSubject: queue test %d\r\n\r\nbody %d\r\n"
               % (sender.encode(), rcpt.encode(), n, n)) + body
        return self.run(["-i", "-f", sender, rcpt], message=msg, **kw)

    def relay_back(self, relay):
        self.forwarder = Forwarder(self.port, relay.plain_port).start()

    def entries(self, uid=0, sub="q"):
        d = os.path.join(self.dir, str(uid), sub)
        try:
            return sorted(n for n in os.listdir(d) if "." not in n)
        except FileNotFoundError:
            return []

    def worker_pids(self):
        """Workers holding a lock in this spool (their pid is in the lock file)."""
        return spool_worker_pids(self.dir)

    def wait_workers_gone(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.worker_pids():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def kill_workers(self):
        for pid in self.worker_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait_workers_gone(5)

    def cleanup(self):
        self.kill_workers()
        if self.forwarder:
            self.forwarder.stop()
        for s in self.servers:
            s.stop()


@pytest.fixture
def queue():
    base = tempfile.mkdtemp(prefix="relayshim-queue-")
    os.chmod(base, 0o755)               # nobody must reach its config and spool
    q = Queue(base)
    yield q
    q.cleanup()
    subprocess.run(["umount", "-l", os.path.join(base, "mnt")], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def subjects(msgs):
    out = {}
    for m in msgs:
        for line in m.data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                out[line[9:]] = out.get(line[9:], 0) + 1
    return out


def wait_count(sink, n, timeout):
    """Wait for n messages at the sink; return (messages, seconds waited)."""
    t0 = time.monotonic()
    msgs = sink.wait_for(n, timeout=timeout)
    return msgs, time.monotonic() - t0


# ---------------------------------------------------------------------------
# Modes, -bp and -q
# ---------------------------------------------------------------------------


def test_fallback_queues_on_connect_failure_and_bp_lists_it(queue):
    r = queue.send(1, env={"RELAYSHIM_RETRY_BASE": "60"})
    assert r.returncode == 0, err(r)
    ids = queue.entries()
    assert len(ids) == 1
    queue.kill_workers()
    r = queue.run(["-bp"])
    assert r.returncode == 0, err(r)
    out = r.stdout.decode()
    assert ids[0] in out
    assert "<a@example.com>" in out and "to: <b@example.com>" in out
    assert "attempts: " in out and "Connection refused" in out
    assert "-- 1 message," in out


def test_mailq_name_lists_the_queue(queue):
    queue.send(1, env={"RELAYSHIM_RETRY_BASE": "60"})
    queue.kill_workers()
    link = os.path.join(queue.base, "mailq")
    os.symlink(SENDMAIL, link)
    r = subprocess.run([link, "-C", queue.config()], capture_output=True)
    assert r.returncode == 0, err(r)
    assert b"<a@example.com>" in r.stdout


def test_q_delivers_in_the_foreground_and_reports_by_exit_status(queue, relay):
    queue.send(1, env={"RELAYSHIM_RETRY_BASE": "60"})
    queue.kill_workers()
    r = queue.run(["-q"])
    assert r.returncode == 75, err(r)
    lines = [l for l in err(r).splitlines() if l.strip()]
    assert "1 message(s) remain" in lines[-1]
    queue.relay_back(relay)
    r = queue.run(["-q"])
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(1)
    assert subjects(msgs) == {b"queue test 1": 1}
    assert b"Mail queue is empty" in queue.run(["-bp"]).stdout


def test_never_mode_exits_75_and_queues_nothing(queue):
    r = queue.send(1, config=queue.config(mode="never"))
    assert r.returncode == 75, err(r)
    assert queue.entries() == []


def test_permanent_refusal_is_not_queued(queue):
    srv = FaultServer({"rcpt": "550 5.1.1 no such user"}).start()
    queue.servers.append(srv)
    r = queue.send(1, config=queue.config(port=srv.port))
    assert r.returncode == 67, err(r)
    assert queue.entries() == []


def test_451_is_queued_with_the_relays_text(queue):
    srv = FaultServer({"mail": "451 4.3.0 try again later"}).start()
    queue.servers.append(srv)
    r = queue.send(1, config=queue.config(port=srv.port),
                   env={"RELAYSHIM_RETRY_BASE": "60"})
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    out = queue.run(["-bp"], config=queue.config(port=srv.port)).stdout.decode()
    assert "451 4.3.0 try again later" in out


def test_always_mode_stores_first_and_the_worker_delivers(queue, relay):
    queue.relay_back(relay)
    r = queue.send(1, config=queue.config(mode="always"))
    assert r.returncode == 0, err(r)
    msgs, _ = wait_count(relay.capture, 1, 10)
    assert subjects(msgs) == {b"queue test 1": 1}
    assert queue.wait_workers_gone()
    assert queue.entries() == []


def test_a_successful_delivery_kicks_the_queue(queue, relay):
    queue.send(1, env={"RELAYSHIM_RETRY_BASE": "3600"})   # worker sleeps for long
    assert len(queue.entries()) == 1
    queue.relay_back(relay)
    r = queue.send(2, env={"RELAYSHIM_RETRY_BASE": "3600"})
    assert r.returncode == 0, err(r)
    msgs, _ = wait_count(relay.capture, 2, 10)
    assert subjects(msgs) == {b"queue test 1": 1, b"queue test 2": 1}


# ---------------------------------------------------------------------------
# The outage drills
# ---------------------------------------------------------------------------


def _submit_200(queue, config):
    def batch(k):
        codes = []
        for i in range(10):
            r = queue.send(k * 10 + i, config=config)
            codes.append((r.returncode, err(r)))
        return codes

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = [c for codes in pool.map(batch, range(20)) for c in codes]
    bad = [c for c in results if c[0] != 0]
    assert not bad, bad[:3]


def _drill_recovery(queue, relay):
    assert len(queue.entries()) == 200
    t0 = time.monotonic()
    queue.relay_back(relay)
    # base 0.2 s doubling to a cap of 24 s, jitter < 1.25: the pass after the
    # relay returns starts within one backoff step (<= 30 s), and 200
    # messages over one relay session take a second or two.
    msgs, waited = wait_count(relay.capture, 200, 40)
    time.sleep(1.5)                      # any duplicate would show up now
    msgs = relay.capture.messages()
    counts = subjects(msgs)
    assert len(counts) == 200 and set(counts.values()) == {1}, \
        [k for k, v in counts.items() if v != 1][:5]
    assert queue.entries() == []
    assert queue.wait_workers_gone(15)
    print("recovery: 200 messages at the sink %.2f s after the relay came back"
          % (time.monotonic() - t0 - 1.5))
    return waited


def test_outage_drill_relay_down_200_messages_20_processes(queue, relay):
    _submit_200(queue, queue.config())
    _drill_recovery(queue, relay)


def test_outage_drill_relay_answering_451(queue, relay):
    srv = FaultServer({"mail": "451 4.3.0 busy, try later"}, port=queue.port).start()
    queue.servers.append(srv)
    _submit_200(queue, queue.config())
    srv.stop()
    queue.servers.remove(srv)
    assert srv.messages() == []
    _drill_recovery(queue, relay)


# ---------------------------------------------------------------------------
# Several users, one spool
# ---------------------------------------------------------------------------


def test_multi_user_drill(queue, relay):
    slow = {"RELAYSHIM_RETRY_BASE": "3600"}
    r = queue.send(1, sender="cron@example.com", env=slow)
    assert r.returncode == 0, err(r)
    r = queue.send(2, sender="www@example.com", env=slow, user=NOBODY)
    assert r.returncode == 0, err(r)
    queue.kill_workers()

    # modes: the shared directory like /tmp, each area private
    st = os.stat(queue.dir)
    assert stat.S_IMODE(st.st_mode) == 0o1733 and st.st_uid == 0
    for uid in (0, NOBODY):
        a = os.stat(os.path.join(queue.dir, str(uid)))
        assert stat.S_IMODE(a.st_mode) == 0o700 and a.st_uid == uid
        ids = queue.entries(uid)
        assert len(ids) == 1
        f = os.stat(os.path.join(queue.dir, str(uid), "q", ids[0]))
        assert stat.S_IMODE(f.st_mode) == 0o600 and f.st_uid == uid
    root_entry = os.path.join(queue.dir, "0", "q", queue.entries(0)[0])

    # nobody can neither list the spool nor read root's message
    asnobody = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
    assert subprocess.run(asnobody + ["ls", queue.dir], capture_output=True).returncode != 0
    assert subprocess.run(asnobody + ["cat", root_entry], capture_output=True).returncode != 0

    # each sees its own in -bp; root sees both, with owners
    out = queue.run(["-bp"], user=NOBODY).stdout.decode()
    assert "www@example.com" in out and "cron@example.com" not in out
    out = queue.run(["-bp"]).stdout.decode()
    assert "www@example.com" in out and "cron@example.com" in out
    assert "owner: nobody" in out and "owner: root" in out

    # relay back: nobody's -q delivers its own and nothing else
    queue.relay_back(relay)
    r = queue.run(["-q"], user=NOBODY)
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(1)
    assert subjects(msgs) == {b"queue test 2": 1}
    assert len(queue.entries(0)) == 1

    # root's -q delivers everything, including what nobody queues now
    r = queue.send(3, sender="www@example.com", env=slow, user=NOBODY)
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    # (the relay is up, so that one went straight through; queue one for real)
    queue.forwarder.stop()
    queue.forwarder = None
    r = queue.send(4, sender="www@example.com", env=slow, user=NOBODY)
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    assert len(queue.entries(NOBODY)) == 1
    queue.relay_back(relay)
    r = queue.run(["-q"])
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(4)
    time.sleep(0.5)
    assert subjects(relay.capture.messages()) == {
        b"queue test 1": 1, b"queue test 2": 1, b"queue test 3": 1, b"queue test 4": 1}
    assert queue.entries(0) == [] and queue.entries(NOBODY) == []


def test_an_unprivileged_user_cannot_create_the_spool_in_a_root_directory(queue):
    r = queue.send(1, sender="www@example.com", user=NOBODY)
    assert r.returncode == 73, err(r)
    assert "mode 1733" in err(r).splitlines()[-1]


def test_an_unprivileged_users_worker_delivers_its_messages(queue, relay):
    os.mkdir(queue.dir)                 # as an image build would: root, mode 1733
    os.chmod(queue.dir, 0o1733)
    r = queue.send(1, sender="www@example.com", user=NOBODY)
    assert r.returncode == 0, err(r)
    time.sleep(0.5)
    queue.relay_back(relay)
    msgs, _ = wait_count(relay.capture, 1, 20)
    assert subjects(msgs) == {b"queue test 1": 1}
    assert queue.wait_workers_gone(10)
    assert queue.entries(NOBODY) == []


# ---------------------------------------------------------------------------
# Full disk, file size limit, read-only spool
# ---------------------------------------------------------------------------


def _tmpfs(queue, size):
    mnt = os.path.join(queue.base, "mnt")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=755" % size, "tmpfs", mnt],
                   check=True)
    queue.dir = os.path.join(mnt, "spool")
    return mnt


def test_full_disk_gives_73_and_leaves_no_entry(queue):
    mnt = _tmpfs(queue, "512k")
    r = queue.send(1, env={"RELAYSHIM_RETRY_BASE": "3600"})    # the spool exists now
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    with open(os.path.join(mnt, "filler"), "wb") as f:
        try:
            f.write(b"x" * (1 << 20))
        except OSError:
            pass
    r = queue.send(2, body=b"y" * 200000 + b"\r\n", env={"RELAYSHIM_RETRY_BASE": "3600"})
    assert r.returncode == 73, err(r)
    lines = [l for l in err(r).splitlines() if l.strip()]
    assert "No space left on device" in lines[-1]
    assert len(queue.entries()) == 1                  # the first one, intact
    # A worker retrying the first entry (the relay is down, so it is due)
    # passes its state file through tmp/ for an instant: wait for tmp/ to be
    # empty; whatever the failed submission left there never goes away.
    tmp = os.path.join(queue.dir, "0", "tmp")
    deadline = time.monotonic() + 5
    while os.listdir(tmp) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.listdir(tmp) == []


def test_file_size_limit_gives_73(queue):
    r = queue.send(1, body=b"z" * 50000 + b"\r\n", wrap=["prlimit", "--fsize=20000"],
                   env={"RELAYSHIM_RETRY_BASE": "3600"})
    assert r.returncode == 73, err(r)
    assert "File too large" in err(r)
    assert queue.entries() == []


def test_read_only_spool_falls_back_to_synchronous_delivery(queue, relay):
    mnt = _tmpfs(queue, "1m")
    r = queue.send(1, env={"RELAYSHIM_RETRY_BASE": "3600"})    # creates the spool
    assert r.returncode == 0
    queue.kill_workers()
    queue.run(["-q"])                                           # leave it as it is
    subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
    queue.relay_back(relay)
    # the entry already queued cannot be removed after sending: it stays put
    r = queue.run(["-q"])
    assert r.returncode == 75, err(r)
    assert "cannot remove it afterwards" in err(r)
    # relay up: new mail is delivered synchronously (always mode says it
    # could not queue)
    r = queue.send(2, config=queue.config(mode="always"))
    assert r.returncode == 0, err(r)
    assert "delivering synchronously" in err(r)
    r = queue.send(3)
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(2)
    time.sleep(0.3)
    assert set(subjects(relay.capture.messages())) == {b"queue test 2", b"queue test 3"}
    # relay down: never 0
    queue.forwarder.stop()
    queue.forwarder = None
    r = queue.send(4)
    assert r.returncode in (73, 75), err(r)
    assert "Read-only file system" in err(r)


# ---------------------------------------------------------------------------
# Crash points
# ---------------------------------------------------------------------------

CRASH_STORE_INVISIBLE = ["store-written", "store-fsynced"]
CRASH_STORE_COMPLETE = ["store-renamed", "store-dirsynced"]


@pytest.mark.parametrize("step", CRASH_STORE_INVISIBLE + CRASH_STORE_COMPLETE)
def test_crash_during_commit(queue, relay, step):
    r = queue.send(1, env={"RELAYSHIM_TEST_CRASH_AT": step})
    assert r.returncode == -signal.SIGKILL     # never acknowledged
    queue.relay_back(relay)
    r = queue.run(["-q"])
    assert r.returncode == 0, err(r)
    time.sleep(0.5)
    got = subjects(relay.capture.messages())
    if step in CRASH_STORE_INVISIBLE:
        assert got == {}                       # no half message, ever
        assert b"Mail queue is empty" in queue.run(["-bp"]).stdout
    else:
        assert got == {b"queue test 1": 1}     # complete entry, delivered once


@pytest.mark.parametrize("step,first,total", [
    ("deliver-before", 0, 1),
    ("deliver-after", 1, 2),                   # the documented duplicate window
    ("deliver-removed", 1, 1),
])
def test_crash_during_delivery(queue, relay, step, first, total):
    r = queue.send(1, env={"RELAYSHIM_RETRY_BASE": "3600"})
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    queue.relay_back(relay)
    r = queue.run(["-q"], env={"RELAYSHIM_TEST_CRASH_AT": step})
    assert r.returncode == -signal.SIGKILL
    time.sleep(0.7)
    assert len(relay.capture.messages()) == first
    r = queue.run(["-q"])
    assert r.returncode == 0, err(r)
    time.sleep(0.7)
    assert subjects(relay.capture.messages()) == {b"queue test 1": total}
    assert queue.entries() == []


def test_kill_while_the_relay_holds_back_its_250_keeps_the_message(queue, relay):
    r = queue.send(1, env={"RELAYSHIM_RETRY_BASE": "3600"})
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    srv = FaultServer({"delay": {"eod": 3}}, port=queue.port).start()
    queue.servers.append(srv)
    p = subprocess.Popen([SENDMAIL, "-C", queue.config(), "-q"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(b"\r\n.\r\n" in b"".join(c.reads) for c in srv.connections):
            break
        time.sleep(0.01)
    p.kill()
    p.wait()
    srv.stop()
    queue.servers.remove(srv)
    assert len(queue.entries()) == 1           # not acknowledged: still queued
    queue.relay_back(relay)
    r = queue.run(["-q"])
    assert r.returncode == 0, err(r)
    assert subjects(relay.capture.wait_for(1)) == {b"queue test 1": 1}


# ---------------------------------------------------------------------------
# Giving up: max_age, permanent failures, notices
# ---------------------------------------------------------------------------


def _notices(msgs):
    return [m for m in msgs if m.mail_from == ""]


def test_max_age_moves_to_failed_and_bounces_to_the_sender(queue, relay):
    conf = queue.config(extra="max_age = 1s\nbounce_to = sender\n")
    r = queue.send(1, sender="owner@example.com", config=conf,
                   env={"RELAYSHIM_RETRY_BASE": "3600"})
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    time.sleep(1.5)
    queue.relay_back(relay)
    r = queue.run(["-q"], config=conf)
    assert r.returncode == 0, err(r)
    assert "expired" in err(r)                           # the error-level log line
    failed = queue.entries(sub="failed")
    assert len(failed) == 1
    with open(os.path.join(queue.dir, "0", "failed", failed[0] + ".reason")) as f:
        assert "expired" in f.read()
    msgs = relay.capture.wait_for(1)
    time.sleep(0.5)
    msgs = relay.capture.messages()
    assert len(msgs) == 1                                # the notice, not the original
    notice = msgs[0]
    assert notice.mail_from == "" and notice.rcpt_tos == ["owner@example.com"]
    assert b"Subject: Undelivered Mail Returned to Sender" in notice.data
    assert b"Subject: queue test 1" in notice.data      # the original header is quoted


def test_a_queued_message_refused_for_one_recipient_is_recorded_and_bounced(queue):
    srv = FaultServer({"rcpt": ["250 2.1.5 ok", "550 5.1.1 <nope@example.com>: no such user"]})
    srv.start()
    queue.servers.append(srv)
    down = queue.config(extra="bounce_to = sender\n")
    msg = b"From: s@example.com\r\nSubject: partial\r\n\r\nhi\r\n"
    r = queue.run(["-i", "-f", "s@example.com", "ok@example.com", "nope@example.com"],
                  message=msg, config=down, env={"RELAYSHIM_RETRY_BASE": "3600"})
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    up = queue.config(port=srv.port, extra="bounce_to = sender\n")
    r = queue.run(["-q"], config=up)
    assert r.returncode == 0, err(r)
    msgs = srv.wait_for(2)
    assert msgs[0].rcpt_tos == ["ok@example.com"]
    failed = queue.entries(sub="failed")
    assert len(failed) == 1
    with open(os.path.join(queue.dir, "0", "failed", failed[0] + ".reason")) as f:
        reason = f.read()
    assert "<nope@example.com>" in reason and "550 5.1.1" in reason
    notice = _notices(msgs)
    assert len(notice) == 1 and notice[0].rcpt_tos == ["s@example.com"]
    assert b"nope@example.com" in notice[0].data
    assert queue.entries() == []


def test_root_retrying_a_users_message_leaves_it_usable_for_that_user(queue, relay):
    os.mkdir(queue.dir)
    os.chmod(queue.dir, 0o1733)
    slow = {"RELAYSHIM_RETRY_BASE": "3600"}
    r = queue.send(1, sender="www@example.com", env=slow, user=NOBODY)
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    r = queue.run(["-q"], env=slow)                    # root, relay still down
    assert r.returncode == 75, err(r)
    area = os.path.join(queue.dir, str(NOBODY), "q")
    for name in os.listdir(area):                      # state written by root ...
        assert os.stat(os.path.join(area, name)).st_uid == NOBODY   # ... handed over
    out = queue.run(["-bp"], user=NOBODY).stdout.decode()
    assert "attempts: 0" not in out                    # nobody reads root's record
    assert "Connection refused" in out
    queue.relay_back(relay)
    r = queue.run(["-q"], user=NOBODY)
    assert r.returncode == 0, err(r)
    assert subjects(relay.capture.wait_for(1)) == {b"queue test 1": 1}


# ---------------------------------------------------------------------------
# -bs: the 250 after the final dot follows the durable commit
# ---------------------------------------------------------------------------


def _bs_session(queue, env=None):
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "RELAYSHIM_RETRY_BASE": "0.2"}
    e.update(env or {})
    script = (b"EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
              b"DATA\r\nSubject: queue test bs\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    return subprocess.run([SENDMAIL, "-C", queue.config(), "-bs"], input=script,
                          capture_output=True, env=e, timeout=60)


def test_bs_acknowledges_a_queued_message_and_the_worker_delivers_it(queue, relay):
    r = _bs_session(queue)
    replies = r.stdout.decode().splitlines()
    final = [l for l in replies if l.startswith("250 ") and "queued" in l.lower()]
    assert final, replies
    assert len(queue.entries()) == 1 or relay.capture.messages()
    queue.relay_back(relay)
    msgs, _ = wait_count(relay.capture, 1, 20)
    assert subjects(msgs) == {b"queue test bs": 1}


def test_bs_gives_no_250_when_it_dies_before_the_commit(queue):
    r = _bs_session(queue, env={"RELAYSHIM_TEST_CRASH_AT": "store-fsynced"})
    assert r.returncode == -signal.SIGKILL
    replies = r.stdout.decode().splitlines()
    assert not [l for l in replies if "queued" in l.lower()], replies
    assert queue.entries() == []


def test_synchronous_partial_acceptance_queues_the_deferred_recipients(queue):
    # The relay takes ok@, defers later@ with 451: ok@ gets it now, later@ is queued
    # alone and the worker (kicked by the store) delivers it on the next connection.
    srv = FaultServer([{"rcpt": ["250 2.1.5 ok", "451 4.2.0 <later@example.com>: busy"]},
                       {}])
    srv.start()
    queue.servers.append(srv)
    conf = queue.config(port=srv.port)
    msg = b"From: s@example.com\r\nSubject: partial 4xx\r\n\r\nhi\r\n"
    r = queue.run(["-i", "-f", "s@example.com", "ok@example.com", "later@example.com"],
                  message=msg, config=conf)
    assert r.returncode == 0, err(r)
    assert "1 deferred recipient(s) queued" in err(r)
    msgs = srv.wait_for(2, timeout=20)
    assert msgs[0].rcpt_tos == ["ok@example.com"]
    assert msgs[1].rcpt_tos == ["later@example.com"]
    assert msgs[0].data == msgs[1].data
    assert queue.wait_workers_gone(10)
    assert queue.entries() == []


def test_never_mode_logs_deferred_recipients_without_queueing(queue):
    # Nobody holds later@: exit 75 (relayshim(8), EXIT STATUS), although the
    # caller's retry gives ok@ a second copy.
    srv = FaultServer({"rcpt": ["250 2.1.5 ok", "451 4.2.0 busy"]}).start()
    queue.servers.append(srv)
    msg = b"From: s@example.com\r\nSubject: partial never\r\n\r\nhi\r\n"
    r = queue.run(["-i", "-f", "s@example.com", "ok@example.com", "later@example.com"],
                  message=msg, config=queue.config(mode="never", port=srv.port))
    assert r.returncode == 75, err(r)
    assert "later@example.com" in err(r) and "451 4.2.0 busy" in err(r)
    assert queue.entries() == []
