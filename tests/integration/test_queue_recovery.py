"""test_queue_recovery - the queue after a long outage, and draining a backlog (relayshim(8) QUEUE).

  * a worker whose backoff an outage drove to its cap (RELAYSHIM_TEST_OUTAGE_ROUNDS stands
    in for the hours) delivers within one look at the relay (the probe period, retry
    base x [2/3, 4/3)) after the relay returns, not after the capped backoff;
  * a message the relay itself deferred (451) keeps its own backoff when the relay returns,
    while the messages queued because the relay could not be reached go out;
  * sendmail -q drains a backlog larger than an area's turn over one relay connection, and
    two -q runs draining at once deliver every message exactly once;
  * one worker per area when the log goes to a file (the worker's lock survives);
  * queueing behind a large backlog does not stat every entry.

Real Postfix relay (conftest's `relay`) behind a loopback forwarder that "comes back" on the
configured address; FaultServer for the 451.
"""

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness.faultsrv import FaultServer  # noqa: E402
from test_queue import Forwarder, err, queue, subjects, wait_count  # noqa: E402,F401,F811

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the queue drills need root")

# Retry base 1 s: the worker looks at a relay that is down every 0.67-1.33 s; the
# backoff's cap is 120 s (x0.75-1.25 jitter), so a worker at the cap waits >= 90 s.
FAST = {"RELAYSHIM_RETRY_BASE": "1", "RELAYSHIM_TEST_OUTAGE_ROUNDS": "8"}


def state_of(queue, entry):
    """The key/value lines of q/ENTRY.st (empty when it has none)."""
    try:
        with open(os.path.join(queue.dir, "0", "q", entry + ".st")) as f:
            return dict(line.rstrip("\n").split(" ", 1) for line in f if " " in line)
    except FileNotFoundError:
        return {}


def wait_tried(queue, entries, timeout=20):
    """Until the worker has tried one of entries (it has a state file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(state_of(queue, e) for e in entries):
            return True
        time.sleep(0.05)
    return False


def attempts(queue):
    return sum(int(state_of(queue, e).get("attempts", 0)) for e in queue.entries())


def test_the_worker_recovers_within_the_probe_period_after_a_backoff_at_its_cap(queue, relay):
    # The relay is down: five messages queue. Their workers go; a sixth message starts
    # the one worker that stays, without a kick (a kicked pass retries everything, and a
    # kick noticed after the relay's return would hide the wait).
    for i in range(5):
        r = queue.send(i, env=FAST)
        assert r.returncode == 0, err(r)
    queue.kill_workers()
    before = attempts(queue)
    r = queue.send(5, env=FAST)
    assert r.returncode == 0, err(r)
    assert len(queue.entries()) == 6
    # Its first pass fails on three entries in a row and ends; the outage having lasted
    # "hours", its backoff is at the cap.
    deadline = time.monotonic() + 20
    while attempts(queue) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert attempts(queue) >= before + 3
    assert queue.worker_pids()
    t0 = time.monotonic()
    queue.relay_back(relay)
    msgs, waited = wait_count(relay.capture, 6, 15)
    assert len(msgs) == 6, "only %d of 6 delivered 15 s after the relay returned" % len(msgs)
    # One look at the relay (<= 1.33 s) and one pass; slack for a loaded machine.
    assert waited < 8, waited
    time.sleep(0.5)
    assert subjects(relay.capture.messages()) == {b"queue test %d" % i: 1 for i in range(6)}
    assert queue.entries() == []
    assert queue.wait_workers_gone(10)
    print("recovered %.2f s after the relay's return" % (time.monotonic() - t0))


def test_a_message_the_relay_deferred_keeps_its_backoff_when_the_relay_returns(queue, relay):
    # The relay answers but defers one message (451) eight times: its own backoff is
    # 90-150 s.
    srv = FaultServer({"mail": "451 4.3.0 mailbox busy"}, port=queue.port).start()
    queue.servers.append(srv)
    r = queue.send(100, env={"RELAYSHIM_RETRY_BASE": "1"})
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    for _ in range(8):
        queue.run(["-q"], env={"RELAYSHIM_RETRY_BASE": "1"})
    deferred = queue.entries()
    assert len(deferred) == 1
    st = state_of(queue, deferred[0])
    assert int(st["attempts"]) >= 8 and "mailbox%20busy" in st["error"], st
    assert float(st["next_try"]) - time.time() > 60, st
    srv.stop()
    queue.servers.remove(srv)
    # Then the relay goes away: a message queues because it cannot be reached. (One: a
    # second submission would kick the worker, and a kicked pass retries everything.)
    r = queue.send(1, env=FAST)
    assert r.returncode == 0, err(r)
    fresh = [e for e in queue.entries() if e not in deferred]
    assert len(fresh) == 1
    assert wait_tried(queue, fresh)
    assert state_of(queue, deferred[0])["next_try"] == st["next_try"]
    queue.relay_back(relay)
    msgs, waited = wait_count(relay.capture, 1, 15)
    assert len(msgs) == 1 and waited < 8, (len(msgs), waited)
    time.sleep(2)                        # several of the worker's looks later
    assert subjects(relay.capture.messages()) == {b"queue test 1": 1}
    assert queue.entries() == deferred
    assert state_of(queue, deferred[0])["next_try"] == st["next_try"]


def test_a_backlog_drains_over_one_connection_and_exactly_once(queue, relay):
    slow = {"RELAYSHIM_RETRY_BASE": "3600"}

    def fill(first):
        """451 messages (more than two areas' turns of 200), 15 senders at once."""
        def batch(k):
            out = []
            for i in range(30):
                r = queue.send(first + k * 30 + i, env=slow, config=cfg)
                out.append(r.returncode if r.returncode == 0 else (r.returncode, err(r)))
            return out

        r = queue.send(first + 450, env=slow, config=cfg)   # the spool exists before the crowd comes
        assert r.returncode == 0, err(r)
        with ThreadPoolExecutor(max_workers=15) as pool:
            codes = [c for cs in pool.map(batch, range(15)) for c in cs]
        assert codes == [0] * 450
        queue.kill_workers()
        assert len(queue.entries()) == 451

    cfg = queue.config()
    fill(0)
    fwd = Forwarder(queue.port, relay.plain_port).start()
    queue.forwarder = fwd
    r = queue.run(["-q"], env=slow, config=cfg, timeout=120)
    assert r.returncode == 0, err(r)
    assert fwd.accepted == 1, fwd.accepted
    msgs, _ = wait_count(relay.capture, 451, 60)
    assert len(msgs) == 451
    # Two runs draining at once (cron's -q meeting another): each entry goes once.
    fwd.stop()
    fill(1000)
    queue.forwarder = Forwarder(queue.port, relay.plain_port).start()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: queue.run(["-q"], env=slow, config=cfg, timeout=120), range(2)))
    assert [x.returncode for x in runs] == [0, 0], [err(x) for x in runs]
    msgs, _ = wait_count(relay.capture, 902, 60)
    time.sleep(1)
    counts = subjects(relay.capture.messages())
    assert len(counts) == 902 and set(counts.values()) == {1}, \
        [k for k, v in counts.items() if v != 1][:5]
    assert queue.entries() == []


def spool_holders(queue):
    """Processes with a descriptor in the test's spool: its workers."""
    pids = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)).startswith(queue.dir + "/"):
                    pids.add(int(pid))
                    break
        except OSError:
            continue
    return pids


def test_one_worker_per_area_when_logging_to_a_file(queue):
    # The log file is opened before the worker is started, and may hold the descriptor
    # the worker keeps its lock on: the lock must survive, or every submission during an
    # outage starts one more worker (and each connects when the relay returns).
    log = os.path.join(queue.base, "log")
    cfg = queue.config().replace(".conf", "-log.conf")
    with open(queue.config()) as f:
        text = f.read().replace("target = stderr", "target = %s" % log)
    with open(cfg, "w") as f:
        f.write(text)
    for i in range(4):
        r = queue.send(i, config=cfg, env={"RELAYSHIM_RETRY_BASE": "60"})
        assert r.returncode == 0, err(r)
    assert len(queue.entries()) == 4
    holders = spool_holders(queue)
    try:
        assert len(holders) == 1, holders
    finally:
        for pid in holders:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def test_queueing_behind_a_large_backlog_does_not_read_the_whole_queue(queue):
    # Every submission that queues asks whether anything is queued (to start or kick the
    # worker). Behind 2000 entries that must not stat all of them: 10 000 submissions
    # during an outage would cost 10^8 stat calls.
    slow = {"RELAYSHIM_RETRY_BASE": "3600"}
    r = queue.send(0, env=slow)
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    (first,) = queue.entries()
    q = os.path.join(queue.dir, "0", "q")
    # The backlog: copies of that real entry under ids of the same shape.
    for i in range(2000):
        shutil.copy2(os.path.join(q, first), os.path.join(q, "%s%05d" % (first[:7], i)))
    assert len(queue.entries()) == 2001
    out = os.path.join(queue.base, "strace.out")
    # (LeakSanitizer cannot run under ptrace: off for this run of a SAN build.)
    r = queue.send(1, env=dict(slow, ASAN_OPTIONS="detect_leaks=0"),
                   wrap=("strace", "-c", "-U", "name,calls", "-o", out))
    assert r.returncode == 0, err(r)
    queue.kill_workers()
    calls = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                calls[parts[0]] = int(parts[1])
    stats = calls.get("newfstatat", 0) + calls.get("fstatat64", 0) + calls.get("statx", 0)
    assert stats < 200, calls
    assert len(queue.entries()) == 2002
