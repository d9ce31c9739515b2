"""test_shim_spare - the spare helper (shim/spare.c, sendmail/shim_spare.c).

After an application's second intercepted session the shim starts a spare
`sendmail -bs`, which serves the application's next connections one after
the other. These tests run real applications (python3 smtplib) under the
shim with the real sendmail and the Postfix fixture, and count the helpers
started through a wrapper that logs every exec (RELAYSHIM_SHIM_ACCEPT=2 for
a helper started for one connection, 3 for a spare).

The hostile cases: a process that gave up root, a fork() child, a reused
descriptor number and a changed configuration must never be served by a
spare that no longer matches them.
"""

import os
import subprocess
import time
import uuid

import pytest

from test_shim import RCPT, SENDER, SENDMAIL, preload
# Fixtures: a real unprivileged user; a world-traversable directory (a test may drop to it).
from test_shim_setuid import rss_user, workdir  # noqa: F401

PYTHON = "/usr/bin/python3"


@pytest.fixture
def app_env(relay, workdir):
    """The shim preloaded; RELAYSHIM_SENDMAIL is a wrapper that logs each exec."""
    conf = os.path.join(workdir, "relayshim.conf")
    write_conf(conf, relay, "example.com")
    log = os.path.join(workdir, "execs")
    wrapper = os.path.join(workdir, "sendmail")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\necho "$RELAYSHIM_SHIM_ACCEPT" >>%s\nexec %s "$@"\n' % (log, SENDMAIL))
    os.chmod(wrapper, 0o755)
    open(log, "w").close()
    os.chmod(log, 0o666)
    mark = "m" + uuid.uuid4().hex[:12]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYSHIM_") and k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=preload(), RELAYSHIM_SENDMAIL=wrapper, RELAYSHIM_CONFIG=conf,
               RELAYSHIM_TEST_MARK=mark)
    if "libasan" in env["LD_PRELOAD"]:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    yield Env(env, conf, log, mark)
    for pid in helpers(mark):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


class Env:
    def __init__(self, env, conf, log, mark):
        self.env, self.conf, self.log, self.mark = env, conf, log, mark

    def execs(self):
        """The RELAYSHIM_SHIM_ACCEPT values of the helpers started so far, sorted.

        Sorted: a spare is started right after a helper, and their
        wrappers may log in either order."""
        with open(self.log) as f:
            return sorted(f.read().split())


def write_conf(path, relay, domain):
    with open(path + ".new", "w") as f:
        f.write("[relay]\nhost = 127.0.0.1:%d\n[rewrite]\ndomain = %s\n"
                "[queue]\nmode = never\n[log]\ntarget = stderr\n" % (relay.plain_port, domain))
    os.chmod(path + ".new", 0o644)
    os.rename(path + ".new", path)


def helpers(mark):
    """Pids of the live helper processes (not zombies) started for this test."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                env = f.read()
            with open("/proc/%s/stat" % p) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if ("RELAYSHIM_TEST_MARK=" + mark).encode() in env and state != "Z" and b"-bs" in argv:
            out.append(int(p))
    return out


def wait_until(pred, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def run_app(code, env, *args, check=True):
    r = subprocess.run([PYTHON, "-c", APP_LIB + code, *args], env=env, capture_output=True,
                       text=True, timeout=60)
    if check:
        assert r.returncode == 0, (r.stdout, r.stderr)
    return r


# What every application script starts with: send(tag) is one SMTP session.
APP_LIB = r"""
import os, smtplib, socket, sys, time
def send(tag, sender=%r):
    s = smtplib.SMTP("127.0.0.1", 25, timeout=20)
    s.sendmail(sender, [%r], "Subject: %%s\r\n\r\nbody\r\n" %% tag)
    s.quit()
def helpers_running():
    mark = os.environ["RELAYSHIM_TEST_MARK"].encode()
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and b"RELAYSHIM_TEST_MARK=" + mark in open("/proc/%%s/environ" %% p, "rb").read() \
               and open("/proc/%%s/stat" %% p).read().rsplit(")", 1)[1].split()[0] != "Z" \
               and b"-bs" in open("/proc/%%s/cmdline" %% p, "rb").read().split(b"\0"):
                out.append(int(p))
        except OSError:
            pass
    return sorted(out)
def settle(n=1):
    # The helper of a session ends just after it (a SAN=1 build's after its
    # leak check, which runs a second task): wait until n helpers are left.
    for _ in range(400):
        left = helpers_running()
        if len(left) <= n:
            return left
        time.sleep(0.05)
    return helpers_running()
def gone(pids, timeout=20):
    # True once none of pids is a live helper (a SAN=1 build's leak check
    # at exit takes a while).
    end = time.time() + timeout
    while any(p in helpers_running() for p in pids) and time.time() < end:
        time.sleep(0.05)
    return not any(p in helpers_running() for p in pids)
def become(uid, gid):
    # What a root master does before it serves as www-data.
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
def hand_over(fd):
    # What a hostile caller would do: hand the spare a listener of its own.
    s = socket.socket(fileno=os.dup(fd))
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    a, b = socket.socketpair()
    socket.send_fds(s, [b"H"], [lst.fileno(), b.fileno()])
    s.settimeout(5)
    return s.recv(1), lst
def spare_fd():
    # The shim's descriptor to its spare: the one SOCK_SEQPACKET socket.
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        kind = s.type
        s.close()
        if kind == socket.SOCK_SEQPACKET:
            return fd
    return None
""" % (SENDER, RCPT)


def delivered(relay, tags, timeout=20):
    """The captured message of each tag, once all of them (and only they) arrived."""
    msgs = relay.capture.wait_for(len(tags), timeout=timeout)
    got = {}
    for tag in tags:
        mine = [m for m in msgs if ("Subject: " + tag + "\r\n").encode() in m.data]
        assert len(mine) == 1, (tag, [m.data[:300] for m in msgs])
        got[tag] = mine[0]
    assert len(msgs) == len(tags), [m.data[:300] for m in msgs]
    return got


def tags(n):
    base = "spare-" + uuid.uuid4().hex[:10]
    return ["%s-%d" % (base, i) for i in range(n)]


def test_sessions_after_the_first_are_served_by_one_spare(relay, app_env):
    t = tags(5)
    code = r"""
seen = []
for i, tag in enumerate(sys.argv[1:]):
    send(tag)
    seen.append(settle(0 if i == 0 else 1))
print(seen)
# No spare after one session (a program that sends one mail pays nothing).
assert seen[0] == [], seen
assert len(seen[1]) == 1 and seen[1] == seen[2] == seen[3] == seen[4], seen
"""
    run_app(code, app_env.env, *t)
    delivered(relay, t)
    # A helper for each of the first two connections, one spare for the three others.
    assert app_env.execs() == ["2", "2", "3"]


def test_the_spare_ends_with_the_application(relay, app_env):
    t = tags(3)
    run_app("for tag in sys.argv[1:]: send(tag)", app_env.env, *t)
    delivered(relay, t)
    assert wait_until(lambda: helpers(app_env.mark) == [], timeout=20), helpers(app_env.mark)


def test_an_idle_spare_ends_and_the_next_connection_is_served(relay, app_env):
    env = dict(app_env.env, RELAYSHIM_SPARE="1")
    t = tags(4)
    code = r"""
send(sys.argv[1])
send(sys.argv[2])
spare = settle()
assert len(spare) == 1
time.sleep(1.5)
assert gone(spare), helpers_running()
send(sys.argv[3])
send(sys.argv[4])
"""
    run_app(code, env, *t)
    delivered(relay, t)
    # After the idle spare had gone: a helper again, and a new spare.
    assert app_env.execs() == ["2", "2", "2", "3", "3"]


def test_no_spare_with_relayshim_spare_0(relay, app_env):
    env = dict(app_env.env, RELAYSHIM_SPARE="0")
    t = tags(3)
    run_app("for tag in sys.argv[1:]: send(tag); assert settle(0) == []", env, *t)
    delivered(relay, t)
    assert app_env.execs() == ["2", "2", "2"]


def test_a_changed_configuration_is_read_by_the_next_session(relay, app_env):
    t = tags(4)
    code = r"""
send(sys.argv[1], sender="app")
send(sys.argv[2], sender="app")
send(sys.argv[3], sender="app")
open(sys.argv[5], "w").write(open(sys.argv[5] + ".next").read())
send(sys.argv[4], sender="app")
"""
    write_conf(app_env.conf + ".next", relay, "example.org")
    run_app(code, app_env.env, *t, app_env.conf)
    got = delivered(relay, t)
    assert [got[tag].mail_from for tag in t] == ["app@example.com"] * 3 + ["app@example.org"]
    # The stale spare refused and ended; a helper and a new spare took over.
    assert app_env.execs() == ["2", "2", "2", "3", "3"]


def test_a_process_that_gave_up_root_is_not_served_by_roots_spare(relay, app_env, rss_user):
    # A root master that switches to www-data (php-fpm, apache) after it sent
    # mail: the spare started as root must never serve the switched process.
    t = tags(3)
    code = r"""
send(sys.argv[1])
send(sys.argv[2])
root_spare = settle()
become(sys.argv[4], sys.argv[5])
send(sys.argv[3])
assert gone(root_spare), (root_spare, helpers_running())
"""
    r = run_app(code, app_env.env, *t, str(rss_user.pw_uid), str(rss_user.pw_gid))
    # The shim itself let the root spare go; it never had to refuse anything.
    assert "refused" not in r.stderr, r.stderr
    got = delivered(relay, t)
    for tag in t[:2]:
        assert b"from root (uid 0)" in got[tag].data
    m = got[t[2]]
    assert ("from %s (uid %d)" % (rss_user.pw_name, rss_user.pw_uid)).encode() in m.data, m.data
    assert app_env.execs() == ["2", "2", "2", "3", "3"]


def test_code_that_gave_up_root_cannot_use_the_spare_socket_itself(relay, app_env, rss_user):
    # The same process, hostile after the switch: it finds the shim's socket to
    # the root spare and hands it a connection of its own. The kernel's
    # credentials on the message tell the spare who sent it: it refuses and
    # ends, and nothing is accepted on the hostile listener.
    t = tags(2)
    code = r"""
send(sys.argv[1])
send(sys.argv[2])
fd = spare_fd()
assert fd is not None
spare = settle()
become(sys.argv[3], sys.argv[4])
answer, lst = hand_over(fd)
print(answer)
assert gone(spare), "the root spare still runs"
lst.settimeout(0.5)
try:
    lst.accept()
    raise SystemExit("the spare accepted on the hostile listener")
except socket.timeout:
    pass
"""
    r = run_app(code, app_env.env, *t, str(rss_user.pw_uid), str(rss_user.pw_gid))
    assert r.stdout.strip().splitlines()[0] == "b'N'", r.stdout
    assert "(uid 0) refused a connection handed over by pid" in r.stderr, r.stderr
    assert "(uid %d)" % rss_user.pw_uid in r.stderr, r.stderr
    delivered(relay, t)


def test_a_forked_child_is_served_by_a_helper_of_its_own(relay, app_env):
    t = tags(4)
    code = r"""
send(sys.argv[1])
send(sys.argv[2])
parent_spare = settle()
pid = os.fork()
if pid == 0:
    # A pre-forked worker: the parent's spare is not its own.
    send(sys.argv[3])
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
send(sys.argv[4])
time.sleep(0.3)
assert all(p in helpers_running() for p in parent_spare), (parent_spare, helpers_running())
"""
    r = run_app(code, app_env.env, *t)
    assert "refused" not in r.stderr, r.stderr
    delivered(relay, t)
    # Parent: two helpers and a spare; child: a helper and a spare of its own.
    assert app_env.execs() == ["2", "2", "2", "3", "3"]


def test_a_forked_child_cannot_hand_connections_to_its_parents_spare(relay, app_env):
    t = tags(2)
    code = r"""
send(sys.argv[1])
send(sys.argv[2])
fd = spare_fd()
pid = os.fork()
if pid == 0:
    os._exit(0 if hand_over(fd)[0] == b"N" else 3)
assert os.waitpid(pid, 0)[1] == 0, "the spare took a connection from another process"
"""
    r = run_app(code, app_env.env, *t)
    assert "refused a connection handed over by pid" in r.stderr, r.stderr
    delivered(relay, t)


def test_two_threads_at_once_are_both_served(relay, app_env):
    t = tags(5)
    code = r"""
import threading
barrier = threading.Barrier(2)
def worker(mine):
    for tag in mine:
        barrier.wait()
        send(tag)
send(sys.argv[1])
settle()
ts = [threading.Thread(target=worker, args=(sys.argv[2::2],)),
      threading.Thread(target=worker, args=(sys.argv[3::2],))]
for x in ts: x.start()
for x in ts: x.join()
"""
    run_app(code, app_env.env, *t[:1], *t[1:])
    delivered(relay, t)


def test_a_reused_descriptor_number_is_not_taken_for_the_spare(relay, app_env, workdir):
    # The application closed the shim's socket and reused its number for a
    # file: the shim notices (another inode), leaves the file alone and
    # serves the connection with a helper of its own.
    t = tags(3)
    victim = os.path.join(workdir, "victim")
    code = r"""
send(sys.argv[1])
send(sys.argv[2])
fd = spare_fd()
os.close(fd)
f = os.open(sys.argv[4], os.O_RDWR | os.O_CREAT, 0o600)
os.dup2(f, fd)
os.write(fd, b"mine")
send(sys.argv[3])
os.fstat(fd)
os.lseek(fd, 0, 0)
assert os.read(fd, 100) == b"mine"
"""
    run_app(code, app_env.env, *t, victim)
    delivered(relay, t)
    with open(victim, "rb") as f:
        assert f.read() == b"mine"
    assert app_env.execs() == ["2", "2", "2", "3", "3"]


def test_a_spare_serves_a_relay_with_starttls_and_auth(relay, app_env):
    # OpenSSL and SASL are loaded on use, in the spare's sessions.
    with open(app_env.conf, "w") as f:
        f.write(relay.sendmail_config("submission", extra="[queue]\nmode = never\n"
                                      "[rewrite]\ndomain = example.com\n"))
    t = tags(3)
    code = r"""
seen = []
for i, tag in enumerate(sys.argv[1:]):
    send(tag)
    seen.append(settle(0 if i == 0 else 1))
assert seen[0] == [] and len(seen[1]) == 1 and seen[1] == seen[2], seen
"""
    run_app(code, app_env.env, *t)
    delivered(relay, t)
    assert app_env.execs() == ["2", "2", "3"]


def test_no_more_spares_after_three_that_served_nothing(relay, app_env):
    # An application that sends less often than a spare waits would start
    # one for nothing after every session: after three unused, no more.
    env = dict(app_env.env, RELAYSHIM_SPARE="1")
    t = tags(5)
    run_app("for tag in sys.argv[1:]: send(tag); time.sleep(1.4)", env, *t)
    delivered(relay, t)
    assert app_env.execs() == ["2"] * 5 + ["3"] * 3
