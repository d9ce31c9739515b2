"""test_shim_setuid - the shim inside set-user-ID, set-group-ID and file-capability programs.

Listed in /etc/ld.so.preload, the shim is loaded into every dynamically linked
program, set-user-ID ones included (the kernel marks those AT_SECURE, and the
dynamic loader ignores LD_PRELOAD there, but not /etc/ld.so.preload). Their
environment is the unprivileged caller's. The shim must then not intercept at
all: RELAYSHIM_SENDMAIL would otherwise name a program of the caller's choice,
started with the privileged program's rights.

Each test runs in a private mount and network namespace (unshare -mn):
/etc is covered by an overlay whose ld.so.preload lists the shim under test,
a tmpfs without nosuid holds the set-user-ID, set-group-ID and
file-capability copies of build/tests/tools/setuid_connect, and the loopback interface is up with
nothing listening on port 25. Nothing of the machine's /etc changes. The
program runs as a real unprivileged user (prefix rss) created for the test,
with RELAYSHIM_SENDMAIL pointing at an "attacker" program that records the
credentials it was started with.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "shim", "librelayshim.so")
TOOL = os.path.join(BUILD, "tests", "tools", "setuid_connect")

# Records the credentials of whatever the shim started as RELAYSHIM_SENDMAIL.
# Python, not sh: dash and bash reset the effective uid to the real one when
# they differ, which would hide exactly what this test looks for.
ATTACKER = """#!/usr/bin/python3
import os
with open(%r, "a") as f:
    f.write("%%s %%d %%d %%d %%d\\n" %% (os.environ.get("RELAYSHIM_ATTACK_LABEL", "?"),
            os.getuid(), os.geteuid(), os.getgid(), os.getegid()))
"""

# Runs inside `unshare -mn`: $1 work dir, $2 uid, $3 gid, $4 preload lines,
# then the program's environment as NAME=VALUE words.
NAMESPACE = r"""
set -eu
work=$1 uid=$2 gid=$3 preload=$4
shift 4
ip link set lo up
mount -t tmpfs -o mode=0755 rss-suid "$work/ns"
mkdir "$work/ns/upper" "$work/ns/work" "$work/ns/bin"
printf '%s\n' "$preload" >"$work/ns/upper/ld.so.preload"
chmod 644 "$work/ns/upper/ld.so.preload"
mount -t overlay rss-etc -o "lowerdir=/etc,upperdir=$work/ns/upper,workdir=$work/ns/work" /etc
cp "$work/setuid_connect" "$work/ns/bin/plain"
cp "$work/setuid_connect" "$work/ns/bin/setuid"
cp "$work/setuid_connect" "$work/ns/bin/setgid"
cp "$work/setuid_connect" "$work/ns/bin/setcap"
chown 0:0 "$work/ns/bin/setuid" "$work/ns/bin/setgid"
chmod 4755 "$work/ns/bin/setuid"
chmod 2755 "$work/ns/bin/setgid"
chmod 755 "$work/ns/bin/plain" "$work/ns/bin/setcap"
setcap cap_net_bind_service+ep "$work/ns/bin/setcap"
for prog in plain setuid setgid setcap; do
    echo "== $prog"
    setpriv --reuid="$uid" --regid="$gid" --clear-groups -- \
        env -i RELAYSHIM_ATTACK_LABEL="$prog" "$@" "$work/ns/bin/$prog"
done
"""


def preload_lines():
    """The shim, after the ASan runtime for a sanitizer build (make SAN=1)."""
    ldd = subprocess.run(["ldd", SHIM], capture_output=True, text=True).stdout
    if "libasan" not in ldd:
        return [SHIM]
    cc = os.environ.get("CC", "cc")
    runtime = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    return [runtime, SHIM]


@pytest.fixture
def rss_user():
    """A real unprivileged user and group, removed afterwards."""
    name = "rss" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def workdir():
    """World-traversable (the user runs programs from it), outside pytest's 0700 tmp."""
    d = tempfile.mkdtemp(prefix="rss-setuid-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_in_namespace(work, user, env):
    """Run the plain, set-user-ID, set-group-ID and setcap copies; return (stdout, records)."""
    for path in (SHIM, TOOL):
        if not os.access(path, os.R_OK):
            pytest.fail("%s missing (run make all %s first)" % (path, os.path.relpath(TOOL, TOP)))
    os.mkdir(os.path.join(work, "ns"))
    out_dir = os.path.join(work, "out")
    os.mkdir(out_dir)
    os.chmod(out_dir, 0o777)
    records = os.path.join(out_dir, "records")
    attacker = os.path.join(work, "attacker")
    with open(attacker, "w") as f:
        f.write(ATTACKER % records)
    os.chmod(attacker, 0o755)
    shutil.copy(TOOL, os.path.join(work, "setuid_connect"))
    words = ["%s=%s" % kv for kv in sorted(dict(env, RELAYSHIM_SENDMAIL=attacker).items())]
    r = subprocess.run(["unshare", "-m", "-n", "--propagation", "private", "sh", "-c", NAMESPACE,
                        "sh", work, str(user.pw_uid), str(user.pw_gid),
                        "\n".join(preload_lines())] + words,
                       capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr
    got = {}
    if os.path.exists(records):
        for line in open(records):
            label, *ids = line.split()
            got.setdefault(label, []).append([int(x) for x in ids])
    return r.stdout, got


def sections(stdout):
    """{"plain": [lines], "setuid": [...], ...} from the namespace script."""
    out, cur = {}, None
    for line in stdout.splitlines():
        if line.startswith("== "):
            cur = line[3:]
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


HOSTILE_ENV = {
    # Everything the shim reads, set by the unprivileged caller.
    "RELAYSHIM_INTERCEPT": "127.0.0.1:25",
    "RELAYSHIM_SPAWN": "",
    "RELAYSHIM_CONFIG": "/nonexistent/attacker.conf",
    "PATH": "/usr/bin:/bin",
    "ASAN_OPTIONS": "detect_leaks=0",
}


def test_a_setuid_program_never_runs_the_callers_sendmail(rss_user, workdir):
    stdout, records = run_in_namespace(workdir, rss_user, HOSTILE_ENV)
    out = sections(stdout)
    uid, gid = rss_user.pw_uid, rss_user.pw_gid
    # The copies really ran with raised rights (a nosuid mount would void the test).
    assert out["setuid"][0] == "ids %d 0 %d %d" % (uid, gid, gid), stdout
    assert out["setgid"][0] == "ids %d %d %d 0" % (uid, uid, gid), stdout
    assert out["setcap"][0] == "ids %d %d %d %d" % (uid, uid, gid, gid), stdout
    assert out["setcap"][1] == "capeff %016x" % (1 << 10), stdout  # CAP_NET_BIND_SERVICE
    # No program of the caller's ran with the privileged program's rights...
    for label in ("setuid", "setgid", "setcap"):
        assert label not in records, ("the shim started the caller's program", label,
                                      records, stdout)
        # ...because nothing was intercepted: the kernel answered (nothing on :25 here).
        assert out[label][2:] == ["connect failed: Connection refused"], stdout


def test_an_ordinary_program_of_the_same_user_is_still_served(rss_user, workdir):
    # The same program without the set-ID bit: the user's own environment is
    # trusted as before, and the helper runs with the user's own rights.
    stdout, records = run_in_namespace(workdir, rss_user, HOSTILE_ENV)
    out = sections(stdout)
    uid, gid = rss_user.pw_uid, rss_user.pw_gid
    assert out["plain"] == ["ids %d %d %d %d" % (uid, uid, gid, gid), "capeff %016x" % 0,
                            "connect ok", "peer done"], stdout
    assert records.get("plain") == [[uid, uid, gid, gid]], (records, stdout)
