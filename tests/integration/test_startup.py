"""test_startup - what every sendmail start costs before the first SMTP byte.

Each message and each connection through the shim starts sendmail once, so its
start-up is on every caller's path (bench/README.md, rows 1, 2 and 6). These
tests pin down the work that was taken out of it, with counts that do not
depend on the machine's load: system calls seen by strace, and instructions
counted by callgrind.
"""

import os
import shutil
import subprocess

import pytest

SANITIZED = os.environ.get("BUILD", "build").rstrip("/").endswith("-san")

CONFIG = (
    "[relay]\nhost = 127.0.0.1:2525\ntls = none\n"
    "[rewrite]\ndomain = example.com\n"
    "[queue]\nmode = never\n"
    "[log]\ntarget = none\n"
)


def environment(conf):
    """An application's environment: ~60 variables, few of them ours."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "RELAYSHIM_CONFIG": str(conf)}
    for i in range(56):
        env["APP_SETTING_%02d" % i] = "value-%d" % i
    return env


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
@pytest.mark.skipif(SANITIZED, reason="instruction counts hold for the normal build only")
def test_reading_the_configuration_stays_cheap(sendmail_bin, tmp_path):
    # config_load() looks every known key up in the file and in the
    # environment. Done key by key (a formatted name and a dictionary lookup
    # per key, a scan of the whole environment per variable name) it cost
    # ~275 000 instructions with this file and environment; one pass over the
    # file's entries and a first-byte test per environment entry, ~100 000.
    conf = tmp_path / "relayshim.conf"
    conf.write_text(CONFIG)
    conf.chmod(0o600)
    out = tmp_path / "callgrind.out"
    r = subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=config_load",
                        "--callgrind-out-file=%s" % out, sendmail_bin, "--config-check"],
                       capture_output=True, text=True, timeout=120, env=environment(conf))
    assert r.returncode == 0, r.stderr
    totals = [line for line in out.read_text().splitlines()
              if line.startswith(("totals:", "summary:"))]
    assert totals, "no totals in the callgrind output"
    instructions = int(totals[-1].split()[1])
    assert instructions < 160000, "config_load: %d instructions" % instructions
