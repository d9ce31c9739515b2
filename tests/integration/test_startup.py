"""test_startup - what every sendmail start costs before the first SMTP byte.

Each message and each connection through the shim starts sendmail once, so its
start-up is on every caller's path (bench/README.md, rows 1, 2 and 6). These
tests pin down the work that was taken out of it, with counts that do not
depend on the machine's load: system calls seen by strace, and instructions
counted by callgrind.
"""

import os
import re
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
    if SANITIZED:
        # LeakSanitizer cannot run under ptrace (the strace tests).
        env["ASAN_OPTIONS"] = "detect_leaks=0"
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


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_a_small_message_reads_with_small_buffers(relay, sendmail_bin, tmp_path):
    # On this VM a first touch of a heap page costs ~10 us. A 64 KB stdin
    # buffer, a 32 KB reply buffer and a 64 KB body buffer each touched one
    # page more (malloc writes the top chunk's header past their end) for a
    # message of a few hundred bytes: 4 KB first reads, a body-sized buffer.
    conf = tmp_path / "relayshim.conf"
    conf.write_text(relay.sendmail_config("plain", extra="[rewrite]\ndomain = example.com\n"
                                          "[queue]\nmode = never\n[log]\ntarget = none\n"))
    conf.chmod(0o600)
    trace = tmp_path / "trace"
    r = subprocess.run(["strace", "-f", "-e", "trace=read", "-o", str(trace), sendmail_bin, "-i",
                        "rcpt@example.org"], input=b"Subject: small\n\nhello\n",
                       capture_output=True, timeout=60, env=environment(conf))
    assert r.returncode == 0, r.stderr
    reads = [line for line in trace.read_text().splitlines() if " read(" in line]
    stdin = [line for line in reads if " read(0, " in line]
    relay_replies = [line for line in reads if '"220 ' in line or '"250' in line]
    size = re.compile(r", (\d+)\)\s+= ")
    assert stdin and all(size.search(line).group(1) == "4096" for line in stdin), stdin
    assert relay_replies and all(size.search(line).group(1) == "4095"
                                 for line in relay_replies), relay_replies
    assert b"Subject: small" in relay.capture.wait_for(1, timeout=15)[0].data
