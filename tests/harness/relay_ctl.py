#!/usr/bin/python3
"""relay_ctl - start and stop the test Postfix relay from a shell (for `make demo`).

SYNOPSIS
    /usr/bin/python3 tests/harness/relay_ctl.py start DIR [--owner PID]
    . DIR/env            # RELAY_HOST, RELAY_PLAIN_PORT, RELAY_SUBMISSION_PORT,
                         # RELAY_SMTPS_PORT, RELAY_CA_FILE, RELAY_TLS_HOSTNAME,
                         # RELAY_USER, RELAY_PASSWORD, CAPTURE_DIR, RELAY_LOG,
                         # RELAY_CTL_PID
    /usr/bin/python3 tests/harness/relay_ctl.py wait DIR N [TIMEOUT]
    /usr/bin/python3 tests/harness/relay_ctl.py stop DIR

DESCRIPTION
    start runs a detached background process ("serve") that creates a PKI in
    DIR/pki, starts a PostfixRelay whose capture sink writes every accepted
    message to DIR/capture as NNNN.eml (exact data) and NNNN.json (envelope),
    and writes DIR/env (shell variable assignments). start returns only once
    Postfix answers on every listener and DIR/env exists; exit 1 with the
    reason otherwise (nothing left running). With --owner PID, the relay also
    stops by itself once process PID is gone (a test run killed mid-test, or
    `make demo` interrupted: pass the shell's $$).

    wait returns once DIR/capture holds N messages (exit 1 after TIMEOUT
    seconds, default 20).

    stop sends SIGTERM to the serve process, which stops Postfix and the sink
    and removes DIR/env; after 15 s it is killed together with every process
    of its Postfix instance.
"""

import os
import shlex
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.pki import PKI  # noqa: E402
from harness.postfix import PostfixRelay, instance_pids  # noqa: E402


# serve - the background process: run the relay until SIGTERM/SIGINT
def serve(d, owner=None):
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    pki = PKI.create(os.path.join(d, "pki"))
    relay = PostfixRelay(pki, spool_dir=os.path.join(d, "capture"))
    try:
        relay.start()
        user = sorted(relay.users)[0]
        values = {
            "RELAY_HOST": relay.host,
            "RELAY_PLAIN_PORT": relay.plain_port,
            "RELAY_SUBMISSION_PORT": relay.submission_port,
            "RELAY_SMTPS_PORT": relay.smtps_port,
            "RELAY_CA_FILE": relay.ca_file,
            "RELAY_TLS_HOSTNAME": relay.tls_hostname,
            "RELAY_USER": user,
            "RELAY_PASSWORD": relay.users[user],
            "CAPTURE_DIR": os.path.join(d, "capture"),
            "RELAY_LOG": relay.log_file,
            "RELAY_CTL_PID": os.getpid(),
        }
        tmp = os.path.join(d, "env.tmp")
        with open(tmp, "w") as f:
            for k, v in values.items():
                f.write("%s=%s\n" % (k, shlex.quote(str(v))))
        os.rename(tmp, os.path.join(d, "env"))
        while not done.wait(0.2):
            if owner and not _alive(owner):
                break
    finally:
        relay.stop()
        try:
            os.unlink(os.path.join(d, "env"))
        except FileNotFoundError:
            pass
    return 0


# start - launch serve detached and wait until it is ready
def start(d, owner=None):
    os.makedirs(d, exist_ok=True)
    env_file = os.path.join(d, "env")
    if os.path.exists(env_file):
        print("relay_ctl: %s already holds a running relay (stop it first)" % d,
              file=sys.stderr)
        return 1
    log = open(os.path.join(d, "serve.log"), "wb")
    cmd = [sys.executable, os.path.abspath(__file__), "serve", d]
    if owner:
        cmd += ["--owner", str(owner)]
    proc = subprocess.Popen(cmd,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(env_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with open(os.path.join(d, "serve.log"), errors="replace") as f:
                sys.stderr.write("relay_ctl: the relay did not start:\n" + f.read())
            return 1
        time.sleep(0.02)
    with open(os.path.join(d, "pid"), "w") as f:
        f.write("%d\n" % proc.pid)
    return 0


# wait - until DIR/capture holds n messages
def wait(d, n, timeout=20.0):
    cap = os.path.join(d, "capture")
    deadline = time.monotonic() + timeout
    while True:
        count = len([f for f in os.listdir(cap) if f.endswith(".eml")]) \
            if os.path.isdir(cap) else 0
        if count >= n:
            return 0
        if time.monotonic() > deadline:
            print("relay_ctl: %d of %d messages captured after %ss" % (count, n, timeout),
                  file=sys.stderr)
            return 1
        time.sleep(0.02)


# stop - terminate serve, then make sure nothing of it is left
def stop(d):
    try:
        with open(os.path.join(d, "pid")) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        print("relay_ctl: no relay started in %s" % d, file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    rc = 0
    if _alive(pid):
        print("relay_ctl: serve process %d did not stop; killing it" % pid, file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
        rc = 1
    for p in instance_pids():
        try:
            with open("/proc/%d/environ" % p, "rb") as f:
                mine = b"relayshim-test-" in f.read() and _instance_owner(p) == pid
        except OSError:
            mine = False
        if mine:
            os.kill(p, signal.SIGKILL)
            rc = 1
    os.unlink(os.path.join(d, "pid"))
    return rc


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _instance_owner(pid):
    """The owner.pid of the Postfix instance process pid belongs to."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        for var in f.read().split(b"\0"):
            if var.startswith(b"MAIL_CONFIG="):
                conf = var[len(b"MAIL_CONFIG="):].decode()
                try:
                    with open(os.path.join(os.path.dirname(conf), "owner.pid")) as o:
                        return int(o.read())
                except (OSError, ValueError):
                    return None
    return None


def main(argv):
    usage = ("usage: relay_ctl.py start|serve DIR [--owner PID] | stop DIR"
             " | wait DIR N [TIMEOUT]")
    if len(argv) < 3:
        print(usage, file=sys.stderr)
        return 64
    cmd, d = argv[1], os.path.abspath(argv[2])
    owner = None
    if cmd in ("start", "serve") and len(argv) == 5 and argv[3] == "--owner":
        owner = int(argv[4])
    elif cmd in ("start", "serve", "stop") and len(argv) != 3:
        print(usage, file=sys.stderr)
        return 64
    if cmd == "start":
        return start(d, owner)
    if cmd == "stop":
        return stop(d)
    if cmd == "serve":
        return serve(d, owner)
    if cmd == "wait" and len(argv) >= 4:
        return wait(d, int(argv[3]), float(argv[4]) if len(argv) > 4 else 20.0)
    print(usage, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
