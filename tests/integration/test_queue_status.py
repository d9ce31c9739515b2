"""test_queue_status - container lifecycle commands: probes and the shutdown drain.

    mailq --status [--max-age=DUR] [--max-count=N]   one line, exit 0 / 1 / 64
    mailq --json                                     the queue as one JSON object
    sendmail -q --deadline=DUR                       a flush that ends in time
    [log] format = json                              lines carry host and uid

Mail is queued with the relay address dead (nothing listens), then looked at
or flushed against the real Postfix relay fixture or a FaultServer on that
same address (hostile replies, a relay that stalls at the final dot).
Workers the submissions start are killed (by the pid in their lock file,
only when that process has this test's spool open) so that each command
under test is the only one touching the queue.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from harness.util import free_port, kill_spool_workers

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SENDMAIL = os.path.join(TOP, os.environ.get("BUILD", "build"), "sendmail", "sendmail")
NOBODY = 65534
LEFT_LINE = re.compile(r"^relayshim: (\d+) messages left in the queue, oldest (\d+)(s|m|h|d)$")
STATUS_LINE = re.compile(r"^queue: (\d+) messages, oldest (\d+)(s|m|h|d), (\d+) failed$")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a second user)")


class Spool:
    """One test's spool and configurations."""

    def __init__(self, base):
        self.base = base
        self.dir = os.path.join(base, "spool")
        self.port = free_port()           # the relay address: nothing listens yet
        self.mailq = os.path.join(base, "mailq")
        os.symlink(SENDMAIL, self.mailq)
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o1733)        # as images create it: every user may queue

    def config(self, port=None, extra=""):
        port = port or self.port
        path = os.path.join(self.base, "relayshim-%d-%d.conf" % (port, abs(hash(extra))))
        with open(path, "w") as f:
            f.write("[relay]\nhost = 127.0.0.1:%d\ntls = none\ntimeout_connect = 2s\n"
                    "timeout = 60s\n[rewrite]\ndomain = example.com\n"
                    "[queue]\ndir = %s\n%s" % (port, self.dir, extra))
        os.chmod(path, 0o644)
        return path

    def run(self, args, config=None, user=None, message=b"", prog=SENDMAIL, timeout=60):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "RELAYSHIM_RETRY_BASE": "60"}
        cmd = [prog, "-C", config or self.config()] + list(args)
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                   "--"] + cmd
        return subprocess.run(cmd, input=message, capture_output=True, env=env,
                              timeout=timeout)

    def mailq_cmd(self, args, **kw):
        return self.run(args, prog=self.mailq, **kw)

    def queue(self, n, rcpts=("b@example.com",), user=None, tag="status"):
        """n messages, each queued because the relay address is dead."""
        for i in range(n):
            msg = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: %s %d\r\n\r\n"
                   b"body %d\r\n" % (tag.encode(), i, i))
            r = self.run(["-i", "-f", "a@example.com"] + list(rcpts), message=msg, user=user)
            assert r.returncode == 0, r.stderr
        self.kill_workers()

    def entries(self, uid=0, sub="q"):
        try:
            return sorted(n for n in os.listdir(os.path.join(self.dir, str(uid), sub))
                          if "." not in n)
        except FileNotFoundError:
            return []

    def kill_workers(self):
        kill_spool_workers(self.dir)


@pytest.fixture
def spool():
    base = tempfile.mkdtemp(prefix="relayshim-qstatus-")
    os.chmod(base, 0o755)                 # nobody must reach the config and the spool
    s = Spool(base)
    yield s
    s.kill_workers()
    shutil.rmtree(base, ignore_errors=True)


def text(b):
    return b.decode("utf-8", "replace")


def stderr_lines(r):
    return [l for l in text(r.stderr).splitlines() if l.strip()]


# ---------------------------------------------------------------------------
# mailq --status
# ---------------------------------------------------------------------------


def test_status_of_an_empty_queue_is_healthy(spool):
    r = spool.mailq_cmd(["--status", "--max-age=1h", "--max-count=0"])
    assert r.returncode == 0, r.stderr
    assert text(r.stdout) == "queue: 0 messages, oldest 0s, 0 failed\n"
    assert r.stderr == b""


def test_status_counts_and_thresholds_decide_the_exit_status(spool):
    spool.queue(3)
    r = spool.mailq_cmd(["--status"])
    assert r.returncode == 0, r.stderr
    m = STATUS_LINE.match(text(r.stdout).rstrip("\n"))
    assert m and m.group(1) == "3" and m.group(4) == "0", r.stdout
    assert text(r.stdout).count("\n") == 1

    # Within every threshold: healthy.
    r = spool.mailq_cmd(["--status", "--max-age=1h", "--max-count=3"])
    assert r.returncode == 0, r.stderr
    # One message too many.
    r = spool.mailq_cmd(["--status", "--max-count=2"])
    assert r.returncode == 1
    assert STATUS_LINE.match(text(r.stdout).rstrip("\n"))
    assert stderr_lines(r) == ["sendmail: queue unhealthy: 3 messages queued, "
                               "more than --max-count 2"]
    # Older than allowed (0: anything queued at all is too old).
    r = spool.mailq_cmd(["--status", "--max-age=0"])
    assert r.returncode == 1
    assert len(stderr_lines(r)) == 1 and "more than --max-age 0s" in text(r.stderr)
    # The same through sendmail -bp --status, and a threshold alone.
    r = spool.run(["-bp", "--status", "--max-count=2"])
    assert r.returncode == 1 and STATUS_LINE.match(text(r.stdout).rstrip("\n"))
    r = spool.mailq_cmd(["--max-count=2"])
    assert r.returncode == 1 and STATUS_LINE.match(text(r.stdout).rstrip("\n"))


@pytest.mark.parametrize("args", [["--status", "--max-age=soon"], ["--max-count=-1"],
                                  ["--status", "--max-age"], ["--json", "--max-age=1.5h"]])
def test_bad_threshold_is_a_usage_error(spool, args):
    r = spool.mailq_cmd(args)
    assert r.returncode == 64
    lines = stderr_lines(r)
    assert lines[0].startswith("sendmail: --max-") and args[-1] in lines[0]
    assert lines[1].startswith("usage:")
    assert r.stdout == b""


def test_failed_entries_are_counted(spool, fault_server):
    spool.queue(2)
    fault_server({"rcpt": "550 5.1.1 no such user"}, port=spool.port)
    r = spool.run(["-q"])
    assert r.returncode == 0, r.stderr
    r = spool.mailq_cmd(["--status"])
    assert text(r.stdout) == "queue: 0 messages, oldest 0s, 2 failed\n"
    assert json.loads(spool.mailq_cmd(["--json"]).stdout)["failed"] == 2


# ---------------------------------------------------------------------------
# mailq --json
# ---------------------------------------------------------------------------


HOSTILE = (b'451 4.3.0 "quoted" back\\slash \x1b[31mred\x1b[0m \x01\x7f '
           b'\xff\xfe latin-1 \xe9t\xe9 {"count": 0}\r\n')


def test_json_has_totals_and_every_entry_even_with_a_hostile_reply(spool, fault_server):
    spool.queue(2, rcpts=("b@example.com", "c@example.com"))
    # The relay comes back answering every MAIL with a hostile 451.
    srv = fault_server({"mail": HOSTILE}, port=spool.port)
    r = spool.run(["-q"])
    assert r.returncode == 75
    assert srv.connection_count >= 1
    r = spool.mailq_cmd(["--json"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.decode("utf-8"))       # strict UTF-8, strict JSON
    assert doc["count"] == 2 and doc["failed"] == 0
    assert doc["healthy"] is True and doc["problems"] == []
    assert isinstance(doc["oldest_age_seconds"], int) and doc["oldest_age_seconds"] >= 0
    assert doc["bytes"] == sum(e["size"] for e in doc["entries"]) > 0
    assert sorted(e["id"] for e in doc["entries"]) == spool.entries()
    for e in doc["entries"]:
        assert e["uid"] == 0 and e["user"] == "root"
        assert e["attempts"] >= 1                    # -q tried it
        assert e["next_attempt_seconds"] > 0
        assert e["sender"] == "a@example.com" and e["recipients"] == 2
        assert e["corrupt"] is False
        assert "451 4.3.0" in e["last_reply"]
        assert '"quoted" back\\slash' in e["last_reply"]
        assert '{"count": 0}' in e["last_reply"]
        # No raw control character survives; bytes that are not UTF-8 are U+FFFD
        # or were escaped by the client.
        assert not any(ord(c) < 0x20 or ord(c) == 0x7f for c in e["last_reply"])
    # Thresholds work with --json too: exit status, healthy, problems.
    r = spool.mailq_cmd(["--json", "--max-count=1"])
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["healthy"] is False
    assert doc["problems"] == ["2 messages queued, more than --max-count 1"]
    r = spool.mailq_cmd(["--json", "--status", "--max-count=5"])
    assert r.returncode == 0 and json.loads(r.stdout)["healthy"] is True


def test_json_shows_a_user_only_their_own_entries_and_root_all(spool):
    spool.queue(1)
    spool.queue(2, user=NOBODY)
    r = spool.mailq_cmd(["--json"], user=NOBODY)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["count"] == 2
    assert {e["uid"] for e in doc["entries"]} == {NOBODY}
    assert {e["user"] for e in doc["entries"]} == {"nobody"}
    r = spool.mailq_cmd(["--status"], user=NOBODY)
    assert STATUS_LINE.match(text(r.stdout).rstrip("\n")).group(1) == "2"
    doc = json.loads(spool.mailq_cmd(["--json"]).stdout)
    assert doc["count"] == 3
    assert sorted(e["uid"] for e in doc["entries"]) == [0, NOBODY, NOBODY]


def test_a_fifo_planted_in_a_users_queue_does_not_hang_roots_probe(spool):
    spool.queue(1)
    spool.queue(1, user=NOBODY)
    # What nobody could do in their own area: a FIFO named like an entry.
    fifo = os.path.join(spool.dir, str(NOBODY), "q", "0000FIFO")
    os.mkfifo(fifo, 0o600)
    os.chown(fifo, NOBODY, NOBODY)
    r = spool.mailq_cmd(["--json"], timeout=10)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["count"] == 2
    assert "0000FIFO" not in [e["id"] for e in doc["entries"]]
    r = spool.mailq_cmd(["--status"], timeout=10)
    assert STATUS_LINE.match(text(r.stdout).rstrip("\n")).group(1) == "2"
    # Whatever the flush itself trips over, -q --deadline returns in time.
    t0 = time.monotonic()
    spool.run(["--version"])
    start_cost = time.monotonic() - t0
    t0 = time.monotonic()
    r = spool.run(["-q", "--deadline=2s"], timeout=10)
    took = time.monotonic() - t0
    assert r.returncode == 75
    assert took <= 2.0 + start_cost, (took, start_cost)
    assert LEFT_LINE.match(stderr_lines(r)[-1]).group(1) == "2"


# ---------------------------------------------------------------------------
# sendmail -q --deadline
# ---------------------------------------------------------------------------


def test_deadline_with_a_working_relay_drains_and_exits_0(spool, relay):
    spool.queue(5, tag="drain")
    t0 = time.monotonic()
    r = spool.run(["-q", "--deadline=8s"], config=spool.config(port=relay.plain_port))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "relayshim:" not in text(r.stderr)
    assert took < 8
    msgs = relay.capture.wait_for(5)
    subjects = sorted(l for m in msgs for l in m.data.split(b"\r\n")
                      if l.startswith(b"Subject: drain"))
    assert subjects == [b"Subject: drain %d" % i for i in range(5)]
    assert spool.entries() == []
    assert text(spool.mailq_cmd(["--status"]).stdout).startswith("queue: 0 messages,")


def test_deadline_with_a_stalled_relay_returns_75_in_time(spool, fault_server):
    spool.queue(3)
    # The relay takes the data and never answers the final dot (timeout = 60s).
    srv = fault_server({"delay": {"eod": 120}}, port=spool.port)
    # What starting the program costs here (much more under ASan): not the flush's.
    t0 = time.monotonic()
    spool.run(["--version"])
    start_cost = time.monotonic() - t0
    t0 = time.monotonic()
    r = spool.run(["-q", "--deadline=3s"])
    took = time.monotonic() - t0
    assert r.returncode == 75, r.stderr
    assert took <= 3.0 + start_cost, (took, start_cost)
    assert took >= 2.0, took                         # it did try until near the end
    last = stderr_lines(r)[-1]
    m = LEFT_LINE.match(last)
    assert m, last
    assert m.group(1) == "3"
    assert [l for l in stderr_lines(r) if l.startswith("relayshim:")] == [last]
    assert srv.connection_count == 1
    # Nothing lost: every message is still queued, intact.
    assert len(spool.entries()) == 3
    doc = json.loads(spool.mailq_cmd(["--json"]).stdout)
    assert doc["count"] == 3
    # The cut wait is recorded as what it was, not as the configured 300 s.
    cut = re.compile(r"timed out after [0-2]\.\d{3} s waiting for the reply to the end of data")
    assert any(cut.search(e["last_reply"]) for e in doc["entries"]), doc


def test_deadline_with_the_relay_down_returns_75_at_once(spool):
    spool.queue(2)
    t0 = time.monotonic()
    r = spool.run(["-q", "--deadline=8s"])
    assert r.returncode == 75
    assert time.monotonic() - t0 < 2
    assert LEFT_LINE.match(stderr_lines(r)[-1]).group(1) == "2"


def test_deadline_as_a_user_flushes_only_their_own_area(spool, relay):
    spool.queue(1)
    spool.queue(1, user=NOBODY)
    r = spool.run(["-q", "--deadline=8s"], config=spool.config(port=relay.plain_port),
                  user=NOBODY)
    assert r.returncode == 0, r.stderr
    relay.capture.wait_for(1)
    assert spool.entries(uid=NOBODY) == []
    assert len(spool.entries(uid=0)) == 1


@pytest.mark.parametrize("args", [["-q", "--deadline=soon"], ["-q", "--deadline=0"],
                                  ["--deadline=8s", "a@example.com"]])
def test_bad_deadline_is_a_usage_error(spool, args):
    r = spool.run(args)
    assert r.returncode == 64
    assert stderr_lines(r)[0].startswith("sendmail: --deadline")


# ---------------------------------------------------------------------------
# JSON logs: host and uid
# ---------------------------------------------------------------------------


def test_json_log_lines_carry_host_and_the_submitting_uid(spool, relay):
    log = os.path.join(spool.base, "log.json")
    extra = "[log]\nformat = json\ntarget = %s\n" % log
    open(log, "w").close()
    os.chmod(log, 0o666)
    # nobody's message is queued (relay dead), then root's -q delivers it.
    msg = b"From: a@example.com\r\nSubject: uid\r\n\r\nbody\r\n"
    r = spool.run(["-i", "b@example.com"], config=spool.config(extra=extra), user=NOBODY,
                  message=msg)
    assert r.returncode == 0, r.stderr
    spool.kill_workers()
    r = spool.run(["-q"], config=spool.config(port=relay.plain_port, extra=extra))
    assert r.returncode == 0, r.stderr
    relay.capture.wait_for(1)
    lines = [json.loads(l) for l in open(log, encoding="utf-8") if l.strip()]
    assert lines
    host = socket.gethostname()
    assert all(l["host"] == host for l in lines)
    queued = [l for l in lines if l.get("status") == "queued"]
    sent = [l for l in lines if l.get("status") == "sent"]
    assert queued and queued[0]["uid"] == NOBODY
    # Delivered by root's -q, logged as nobody's: the submitter, not the deliverer.
    assert sent and sent[0]["uid"] == NOBODY
