"""util - small helpers the integration tests share.

Each was once copied from one test file into the next; a fix to one copy
(a timeout, a decode) then missed the others. Import them from here:

    from harness.util import free_port, one_line

    stderr_text(r)          a CompletedProcess's stderr as text (bytes or text)
    one_line(r)             its only non-empty stderr line; asserts there is one
                            (relayshim(8): a failure says one line)
    free_port(ipv6=False)   a TCP port nothing listens on, on 127.0.0.1 (and on
                            ::1 too with ipv6=True); also a port that refuses
    headers(data)           unfolded header fields of a message, as
                            (lower-case str name, bytes value) pairs
    header(data, name)      the first value of field name (any case), or None
    only_message(relay, timeout=20)
                            the one message a relay's capture received; asserts
                            exactly one arrived
    spool_worker_pids(dir)  retry workers of the spool dir: the pid in each
                            area's lock file, if that process has the spool open
    kill_spool_workers(dir, timeout=5)
                            SIGKILL them and wait until they are gone (or zombies)
"""

import os
import signal
import socket
import time


def stderr_text(r):
    e = r.stderr
    return e.decode("utf-8", "replace") if isinstance(e, bytes) else e


def one_line(r):
    lines = [line for line in stderr_text(r).splitlines() if line.strip()]
    assert len(lines) == 1, stderr_text(r)
    return lines[0]


def free_port(ipv6=False):
    """A port free on 127.0.0.1 (and on ::1 with ipv6): bound once, released.

    Nothing listens on it afterwards, so it also serves as a port that refuses
    connections, until something else happens to take it."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            if not ipv6:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind(("::1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port on both loopbacks")


def headers(data):
    """Unfolded header fields as (lower-case name, value) pairs."""
    fields = []
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line.strip())
        elif b":" in line:
            name, value = line.split(b":", 1)
            fields.append((name.strip().lower().decode(), value.strip()))
    return fields


def header(data, name):
    values = [v for n, v in headers(data) if n == name.lower()]
    return values[0] if values else None


def only_message(relay, timeout=20):
    msgs = relay.capture.wait_for(1, timeout=timeout)
    assert len(msgs) == 1, [(m.mail_from, m.rcpt_tos) for m in msgs]
    return msgs[0]


def _has_open_under(pid, path):
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(path):
                return True
    except OSError:
        pass
    return False


def spool_worker_pids(spool_dir):
    """Workers of this spool. A pid in a lock file is checked against what it
    has open: a stale lock's pid may by now belong to an unrelated process."""
    if not os.path.isdir(spool_dir):
        return []
    pids = []
    for area in os.listdir(spool_dir):
        try:
            with open(os.path.join(spool_dir, area, "lock")) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid and _has_open_under(pid, spool_dir):
            pids.append(pid)
    return pids


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            # The state follows the command name, which may contain spaces.
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _kill_and_wait(pids, timeout):
    """SIGKILL pids and wait (up to timeout s) until each is gone or a zombie."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.01)


def kill_spool_workers(spool_dir, timeout=5):
    _kill_and_wait(spool_worker_pids(spool_dir), timeout)


def kill_workers_under(path, timeout=5):
    """Kill every queue worker that holds a file under path open (a test's
    tmp_path: its spool goes with it, the worker must too). Found through
    /proc, whatever spool layout or user the test used."""
    path = str(path)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if not f.read().startswith(b"sendmail: queue worker"):
                    continue
        except OSError:
            continue
        if _has_open_under(int(d), path):
            pids.append(int(d))
    _kill_and_wait(pids, timeout)
    return pids
