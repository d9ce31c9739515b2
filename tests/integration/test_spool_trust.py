"""test_spool_trust - a shared spool with a hostile local user in it.

The spool is shared the way the documentation describes it (mode 1733, one
area per user). The tests create two real unprivileged users, `rsqatk` (the
attacker) and `rsqwww` (a victim, like www-data), and remove them at the end.
What the attacker plants - FIFOs, directories, sparse "poison" entries,
hand-written entries, squatter directories - is made by the attacker itself
(through setpriv) wherever the kernel lets it; root's `sendmail -q`, `-bp`
and the detached worker must finish in bounded time (every call has a
timeout) and deliver root's own message to the Postfix relay fixture while
the attacker's things are present.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_queue import Queue, err, subjects  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create users")

ATTACKER = "rsqatk"
VICTIM = "rsqwww"
SLOW = {"RELAYSHIM_RETRY_BASE": "60"}     # a worker that sleeps: the test drives


# ---------------------------------------------------------------------------
# Users, spool, helpers
# ---------------------------------------------------------------------------


def _userdel(name):
    subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture(scope="module")
def users():
    made = {}
    for name in (ATTACKER, VICTIM):
        _userdel(name)
        subprocess.run(["useradd", "--system", "--no-create-home", "--no-user-group",
                        "--gid", "nogroup", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        made[name] = pwd.getpwnam(name).pw_uid
    yield made
    for name in made:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        _userdel(name)


@pytest.fixture
def spool(users):
    """A fresh 1733 spool on a small tmpfs (readdir lists newest first there)."""
    base = tempfile.mkdtemp(prefix="relayshim-trust-")
    os.chmod(base, 0o755)
    mnt = os.path.join(base, "mnt")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", mnt],
                   check=True)
    q = Queue(base)
    q.dir = os.path.join(mnt, "spool")
    os.mkdir(q.dir)
    os.chmod(q.dir, 0o1733)
    q.users = users
    yield q
    q.cleanup()
    subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def as_user(uid, argv, data=None, timeout=20):
    cmd = ["setpriv", "--reuid=%d" % uid, "--regid=65534", "--clear-groups", "--"] + argv
    return subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=True)


def attacker_area(q):
    """The attacker makes its own area by hand, as the code would."""
    uid = q.users[ATTACKER]
    area = os.path.join(q.dir, str(uid))
    as_user(uid, ["mkdir", "-m", "700", area, area + "/q", area + "/tmp", area + "/failed"])
    return uid, area


def entry(sender, rcpts, header, body=b"", header_len=None, body_len=None, created=None):
    """The text of a queue entry as relayshim writes it (sendmail/spool_entry.c)."""
    env = ["relayshim-spool 1", "created %.6f" % (created or time.time()), "sender " + sender]
    env += ["rcpt " + r for r in rcpts]
    env += ["smtputf8 0", "8bit 0", "nul 0", "longest 80",
            "header %d" % (len(header) if header_len is None else header_len),
            "body %d" % (len(body) if body_len is None else body_len), "", ""]
    return "\n".join(env).encode() + header + b"\r\n" + body


def plant(q, uid, name, data):
    path = os.path.join(q.dir, str(uid), "q", name)
    as_user(uid, ["sh", "-c", 'cat > "$1"', "sh", path], data=data)
    return path


def root_message_queued(q, n=1, **kw):
    """root submits while the relay is down: exit 0, queued; its worker is stopped."""
    r = q.send(n, env=SLOW, **kw)
    assert r.returncode == 0, err(r)
    assert len(q.entries(0)) >= 1
    q.kill_workers()


def relayshim_trace(data):
    """The Received field relayshim wrote (the relay adds its own above it)."""
    fields = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ").split(b"\r\n")
    return [f for f in fields if f.lower().startswith(b"received:") and b"(relayshim)" in f]


# ---------------------------------------------------------------------------
# Item 1: a FIFO never stalls -q, -bp or the worker
# ---------------------------------------------------------------------------


def _plant_fifos(q):
    uid, area = attacker_area(q)
    as_user(uid, ["mkfifo", "-m", "600", area + "/q/AAAAFIFO"])
    # A valid entry whose state file is a FIFO, and a FIFO for its failure record.
    plant(q, uid, "AAAAGOOD", entry("www@example.com", ["x@example.com"],
                                    b"Subject: attacker fine\r\n", b"hi\r\n"))
    as_user(uid, ["mkfifo", "-m", "600", area + "/q/AAAAGOOD.st"])
    as_user(uid, ["mkfifo", "-m", "600", area + "/failed/AAAAFIFO.reason"])
    return uid


def test_a_fifo_in_another_area_stalls_neither_bp_nor_q(spool, relay):
    root_message_queued(spool)
    _plant_fifos(spool)
    r = spool.run(["-bp"], timeout=20)
    assert r.returncode == 0, err(r)
    assert b"<a@example.com>" in r.stdout
    spool.relay_back(relay)
    r = spool.run(["-q"], timeout=60)
    msgs = relay.capture.wait_for(2, timeout=20)
    assert subjects(msgs) == {b"queue test 1": 1, b"attacker fine": 1}
    assert spool.entries(0) == []
    assert "not plain files" in err(r)


def test_a_fifo_in_another_area_does_not_stall_the_worker(spool, relay):
    _plant_fifos(spool)
    r = spool.send(1, env={"RELAYSHIM_RETRY_BASE": "0.2"})
    assert r.returncode == 0, err(r)
    spool.relay_back(relay)
    msgs = relay.capture.wait_for(2, timeout=30)
    assert subjects(msgs) == {b"queue test 1": 1, b"attacker fine": 1}
    # Root's worker is done with root's area and the attacker's: it exits.
    assert spool.wait_workers_gone(20), "the worker did not exit"


def test_a_lock_held_by_another_user_stalls_neither_q_nor_the_worker(spool, relay):
    root_message_queued(spool)
    uid, area = attacker_area(spool)
    path = plant(spool, uid, "AAAALOCKED", entry("www@example.com", ["x@example.com"],
                                                  b"Subject: locked\r\n", b"hi\r\n"))
    holder = subprocess.Popen(["setpriv", "--reuid=%d" % uid, "--regid=65534",
                               "--clear-groups", "--", "flock", path, "sleep", "120"])
    try:
        time.sleep(0.5)                        # flock(1) has taken the lock
        spool.relay_back(relay)
        r = spool.run(["-q"], timeout=60)
        msgs = relay.capture.wait_for(1, timeout=20)
        assert subjects(msgs).get(b"queue test 1") == 1
        assert spool.entries(0) == []
        # The worker does not stay around polling the attacker's lock either.
        r = spool.send(2, env={"RELAYSHIM_RETRY_BASE": "0.2"})
        assert r.returncode == 0, err(r)
        relay.capture.wait_for(2, timeout=20)
        assert spool.wait_workers_gone(20), "the worker stayed for the locked entry"
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------
# Item 2: a directory in q/ never makes the worker spin
# ---------------------------------------------------------------------------


def test_a_directory_in_another_area_does_not_make_the_worker_spin(spool, relay):
    uid, area = attacker_area(spool)
    as_user(uid, ["mkdir", "-m", "700", area + "/q/AAAADIR"])
    r = spool.send(1, env={"RELAYSHIM_RETRY_BASE": "0.2"})
    assert r.returncode == 0, err(r)
    spool.relay_back(relay)
    msgs = relay.capture.wait_for(1, timeout=30)
    assert subjects(msgs).get(b"queue test 1") == 1
    assert spool.wait_workers_gone(20), "the worker did not exit"
    reason = area + "/failed/AAAADIR.reason"
    assert not os.path.exists(reason) or os.path.getsize(reason) < 4096


# ---------------------------------------------------------------------------
# Item 3: poison entries do not end the pass before root's mail
# ---------------------------------------------------------------------------


def test_poison_entries_in_another_area_do_not_keep_roots_mail_queued(spool, relay):
    root_message_queued(spool)
    uid, area = attacker_area(spool)          # made after root's: listed first
    for i in range(5):
        name = "AAAAPOISON%d" % i
        path = plant(spool, uid, name, entry("www@example.com", ["x@example.com"], b"",
                                               header_len=100 << 20, body_len=0)
                     [:-2])
        text_len = os.path.getsize(path)
        # Sparse: the file is as long as its envelope claims, no block used.
        as_user(uid, ["truncate", "-s", str(text_len + (100 << 20) + 2), path])
    spool.relay_back(relay)
    r = spool.run(["-q"], timeout=60)
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(1, timeout=20)
    assert subjects(msgs).get(b"queue test 1") == 1
    assert spool.entries(0) == []


# ---------------------------------------------------------------------------
# Item 4: an entry is delivered only as its area's owner could have sent it
# ---------------------------------------------------------------------------

POLICY = "[policy]\nallowed_sender_domains = example.com\nmax_size = 20000\n"
FORGED = (b"Received: from root (uid 0)\r\n\tby somehost (relayshim) id FORGED;\r\n"
          b"\tMon, 7 Dec 2026 10:00:00 +0000\r\n")


def test_a_hand_written_entry_with_a_foreign_sender_is_refused_at_delivery(spool, relay):
    config = spool.config(extra=POLICY)
    root_message_queued(spool, config=config)
    uid, area = attacker_area(spool)
    plant(spool, uid, "AAAAFOREIGN",
          entry("ceo@evil.test", ["victim@example.com"],
                FORGED + b"From: ceo@evil.test\r\nSubject: forged sender\r\n", b"pay\r\n"))
    spool.relay_back(relay)
    r = spool.run(["-q"], config=config, timeout=60)
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(1, timeout=20)
    time.sleep(1)                              # give a wrong second message time to show
    got = subjects(relay.capture.messages())
    assert got.get(b"queue test 1") == 1
    assert b"forged sender" not in got
    assert os.path.exists(area + "/failed/AAAAFOREIGN")
    with open(area + "/failed/AAAAFOREIGN.reason") as f:
        assert "allowed_sender_domains" in f.read()


def test_a_hand_written_entry_over_max_size_is_refused_at_delivery(spool, relay):
    config = spool.config(extra=POLICY)
    uid, area = attacker_area(spool)
    plant(spool, uid, "AAAABIG", entry("www@example.com", ["victim@example.com"],
                                       b"Subject: too big\r\n", b"x" * 40000 + b"\r\n"))
    spool.relay_back(relay)
    r = spool.run(["-q"], config=config, timeout=60)
    assert r.returncode == 0, err(r)
    time.sleep(1)
    assert b"too big" not in subjects(relay.capture.messages())
    with open(area + "/failed/AAAABIG.reason") as f:
        assert "max_size" in f.read()


def test_a_null_sender_entry_of_another_user_is_left_to_its_owner(spool, relay):
    # A failure notice that user's own worker queued: root's policy
    # (allow_null_sender = no) would refuse the null sender and lose it.
    config = spool.config(extra=POLICY)
    uid, area = attacker_area(spool)
    plant(spool, uid, "AAAANOTICE", entry("", ["victim@example.com"],
                                          b"Subject: a notice\r\n", b"bounce\r\n"))
    spool.relay_back(relay)
    r = spool.run(["-q"], config=config, timeout=60)
    assert r.returncode == 75, err(r)          # honestly: it is still queued
    time.sleep(1)
    assert b"a notice" not in subjects(relay.capture.messages())
    assert os.path.exists(area + "/q/AAAANOTICE")
    assert not os.path.exists(area + "/failed/AAAANOTICE")


def test_the_trace_of_a_hand_written_entry_names_the_areas_owner(spool, relay):
    uid, area = attacker_area(spool)
    plant(spool, uid, "AAAATRACE",
          entry("www@example.com", ["victim@example.com"],
                FORGED + b"From: www@example.com\r\nBcc: hidden@example.com\r\n"
                b"Subject: forged trace\r\n", b"hello\r\n"))
    spool.relay_back(relay)
    r = spool.run(["-q"], timeout=60)
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(1, timeout=20)
    data = msgs[0].data
    traces = relayshim_trace(data)
    assert traces, data
    assert traces[0].startswith(b"Received: from %s (uid %d)" % (ATTACKER.encode(), uid))
    assert not any(b"from root (uid 0)" in t for t in traces), traces
    assert b"\r\nBcc:" not in data.split(b"\r\n\r\n", 1)[0]


# ---------------------------------------------------------------------------
# Item 5: squatter directories cost their victims nothing
# ---------------------------------------------------------------------------


def test_squatted_area_names_do_not_stop_root_or_another_user_queueing(spool, relay):
    atk, www = spool.users[ATTACKER], spool.users[VICTIM]
    for victim in (0, www):
        path = os.path.join(spool.dir, str(victim))
        as_user(atk, ["mkdir", "-m", "777", path, path + "/q", path + "/tmp",
                      path + "/failed"])
    r = spool.send(1, env=SLOW)
    assert r.returncode == 0, err(r)
    r = spool.send(2, sender="www@example.com", env=SLOW, user=www)
    assert r.returncode == 0, err(r)
    spool.kill_workers()
    # Nothing of either landed in the squatter's directories.
    for victim in (0, www):
        q = os.path.join(spool.dir, str(victim), "q")
        assert not os.path.isdir(q) or os.stat(q).st_uid != atk or os.listdir(q) == []
    spool.relay_back(relay)
    r = spool.run(["-q"], timeout=60)
    assert r.returncode == 0, err(r)
    msgs = relay.capture.wait_for(2, timeout=20)
    assert subjects(msgs) == {b"queue test 1": 1, b"queue test 2": 1}


# ---------------------------------------------------------------------------
# Item 6: a spool top that others control is refused with one line
# ---------------------------------------------------------------------------


def test_a_spool_top_owned_by_another_user_is_refused(spool):
    os.chown(spool.dir, spool.users[ATTACKER], -1)
    r = spool.send(1, env=SLOW)
    assert r.returncode == 73, err(r)
    lines = [l for l in err(r).splitlines() if l.startswith("sendmail:")]
    assert len(lines) == 1 and "owned by uid %d" % spool.users[ATTACKER] in lines[0], err(r)
    assert os.listdir(spool.dir) == []
    r = spool.run(["-bp"], timeout=20)
    assert r.returncode == 73 and "owned by uid" in err(r), err(r)


def test_a_spool_top_writable_by_others_without_the_sticky_bit_is_refused(spool):
    os.chmod(spool.dir, 0o777)
    r = spool.send(1, env=SLOW)
    assert r.returncode == 73, err(r)
    assert "sticky" in err(r)
    assert os.listdir(spool.dir) == []


# ---------------------------------------------------------------------------
# Item 12: the worker does not show the submission's argv
# ---------------------------------------------------------------------------


def test_the_worker_does_not_show_the_submissions_command_line(spool):
    r = spool.run(["-i", "-f", "secret-sender@example.com", "secret-rcpt@example.com"],
                  message=b"Subject: argv\r\n\r\nx\r\n", env=SLOW)
    assert r.returncode == 0, err(r)
    pids = spool.worker_pids()
    assert len(pids) == 1
    with open("/proc/%d/cmdline" % pids[0], "rb") as f:
        cmdline = f.read()
    assert b"secret" not in cmdline, cmdline
    assert b"queue worker" in cmdline, cmdline
