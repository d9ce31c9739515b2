"""test_rewrite - rewriting and policy through a real Postfix relay configured like boky/postfix.

The relay has boky/postfix's sender check (ALLOWED_SENDER_DOMAINS=example.com:
smtpd_recipient_restrictions = check_sender_access <allowed domains>, reject), so
mail whose envelope sender is not in example.com (or a subdomain) is refused at
RCPT with "554 5.7.1 ... Access denied". Each case is run twice: with relayshim's
rewriting configured (the relay accepts) and without it (the relay's own 554
reaches the caller), which shows the rewriting is what makes the difference.

The last tests show that the configuration file alone, under `env -i` (cron,
php-fpm clear_env), gives the same result as the same settings in the
environment.
"""

import os
import socket
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from harness.pki import PKI  # noqa: E402
from harness.postfix import PostfixRelay  # noqa: E402
from harness.util import header, headers, only_message  # noqa: E402

TOP = os.path.dirname(TESTS)
SENDMAIL = os.path.join(TOP, os.environ.get("BUILD", "build"), "sendmail", "sendmail")
HOSTNAME = socket.gethostname()
DOMAIN = "example.com"


@pytest.fixture(scope="module")
def boky_relay():
    pki = PKI.create()
    relay = PostfixRelay(pki, allowed_sender_domains=[DOMAIN])
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()
        pki.cleanup()


@pytest.fixture
def relay(boky_relay):
    boky_relay.capture.clear()
    return boky_relay


def base_config(relay):
    # No [rewrite] domain: it defaults to the host name (relayshim.conf(5)), which is
    # what "rewriting switched off" means for a container.
    return ("[relay]\nhost = 127.0.0.1:%d\n"
            "[queue]\nmode = never\n"
            "[log]\ntarget = none\n" % relay.plain_port)


def rewriting_config(relay, extra=""):
    return base_config(relay) + "[rewrite]\ndomain = %s\n%s" % (DOMAIN, extra)


def sendmail(tmp_path, args, stdin=b"", config="", env=None):
    conf = tmp_path / "relayshim.conf"
    conf.write_text(config)
    conf.chmod(0o600)
    return subprocess.run([SENDMAIL, "-C", str(conf)] + args, input=stdin,
                          capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"} if env is None else env)


def assert_relay_refused(r, relay):
    assert r.returncode in (67, 69), (r.returncode, r.stderr)
    assert b"554" in r.stderr and b"Access denied" in r.stderr, r.stderr
    assert relay.capture.messages() == []


CRON_MAIL = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@%s> run-parts\n"
             b"Auto-Submitted: auto-generated\n\nbackup done\n" % HOSTNAME.encode())


def test_bare_root_from_cron_is_accepted_after_rewriting(relay, tmp_path):
    # Debian cron: -FCronDaemon -i -B8BITMIME -oem <MAILTO>, no -f; MAILTO=root.
    conf = rewriting_config(relay, "[aliases]\nroot = ops@example.org\n")
    r = sendmail(tmp_path, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], CRON_MAIL, conf)
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "root@example.com"
    assert m.rcpt_tos == ["ops@example.org"]
    assert header(m.data, "from") == b"root@example.com (Cron Daemon)"
    assert header(m.data, "to") == b"root@example.com"


def test_bare_root_is_refused_by_the_relay_without_rewriting(relay, tmp_path):
    r = sendmail(tmp_path, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "ops@example.org"],
                 CRON_MAIL, base_config(relay))
    assert_relay_refused(r, relay)


def test_www_data_at_container_id_is_accepted_after_rewriting(relay, tmp_path):
    # GNU mail and many PHP setups pass -f user@<container hostname>.
    stdin = b"From: www-data@%s\nTo: app-owner@example.org\nSubject: x\n\nhi\n" % HOSTNAME.encode()
    r = sendmail(tmp_path, ["-i", "-t", "-f", "www-data@" + HOSTNAME], stdin,
                 rewriting_config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "www-data@example.com"
    assert header(m.data, "from") == b"www-data@example.com"


def test_www_data_at_container_id_is_refused_without_rewriting(relay, tmp_path):
    stdin = b"From: www-data@%s\nTo: app-owner@example.org\nSubject: x\n\nhi\n" % HOSTNAME.encode()
    r = sendmail(tmp_path, ["-i", "-t", "-f", "www-data@" + HOSTNAME], stdin, base_config(relay))
    assert_relay_refused(r, relay)


def test_senders_map_gives_www_data_an_allowed_address(relay, tmp_path):
    stdin = b"To: a@example.org\nSubject: x\n\nhi\n"
    r = sendmail(tmp_path, ["-i", "-t", "-f", "www-data@localhost"], stdin,
                 rewriting_config(relay, "[senders]\nwww-data = noreply@example.com\n"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "noreply@example.com"


def test_masquerading_strips_subdomains_of_sender_not_envelope_recipients(relay, tmp_path):
    stdin = (b"From: App <app@web1.example.com>\nReply-To: help@support.example.com\n"
             b"To: dev@team.example.com\nSubject: masq\n\nx\n")
    conf = rewriting_config(relay, "masquerade_domains = example.com\n")
    r = sendmail(tmp_path, ["-i", "-t"], stdin, conf)
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "app@example.com"
    assert m.rcpt_tos == ["dev@team.example.com"]
    assert header(m.data, "from") == b"App <app@example.com>"
    assert header(m.data, "reply-to") == b"help@example.com"
    assert header(m.data, "to") == b"dev@example.com"


def test_overwrite_from_makes_any_sender_acceptable(relay, tmp_path):
    stdin = b"From: \"Shop\" <shop@3f2a1b9c0d1e>\nTo: a@example.org\nSubject: x\n\nhi\n"
    r = sendmail(tmp_path, ["-i", "-t", "-f", "whoever@elsewhere.test"], stdin,
                 base_config(relay) + "[rewrite]\nfrom = noreply@example.com\n")
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "noreply@example.com"
    assert header(m.data, "from") == b"Shop <noreply@example.com>"


def test_repaired_headers_reach_the_relay(relay, tmp_path):
    # A bare message like logwatch or a shell script sends, with a Bcc and a
    # Content-Length that must not travel.
    stdin = b"To: a@example.org\nBcc: b@example.org\nContent-Length: 3\n\nhi\n"
    conf = rewriting_config(relay, "header_tag = app1\n")
    r = sendmail(tmp_path, ["-t"], stdin, conf)
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert sorted(m.rcpt_tos) == ["a@example.org", "b@example.org"]
    names = [n for n, _ in headers(m.data)]
    assert names.count("relaytag") == 1
    assert header(m.data, "relaytag") == b"app1"
    assert "bcc" not in names and "content-length" not in names
    assert header(m.data, "message-id").endswith(b"@example.com>")
    assert header(m.data, "date") is not None
    assert header(m.data, "from") == b"root@example.com" or os.getuid() != 0
    assert any(n == "received" and b"(relayshim)" in v for n, v in headers(m.data))


def test_client_side_policy_refuses_before_connecting(relay, tmp_path):
    stdin = b"To: a@example.org\nSubject: x\n\nhi\n"
    conf = rewriting_config(relay) + "[policy]\nallowed_sender_domains = example.com\n"
    r = sendmail(tmp_path, ["-i", "-t", "-f", "app@example.net"], stdin, conf)
    assert r.returncode == 77, r.stderr
    assert b"sender <app@example.net> is not in allowed_sender_domains (example.com)" in r.stderr
    assert relay.capture.messages() == []


def test_max_size_refuses_before_anything_is_sent(relay, tmp_path):
    stdin = b"To: a@example.org\nSubject: x\n\n" + b"x" * 2000 + b"\n"
    conf = rewriting_config(relay) + "[policy]\nmax_size = 1000\n"
    r = sendmail(tmp_path, ["-i", "-t"], stdin, conf)
    assert r.returncode == 65, r.stderr
    assert b"more than max_size 1000" in r.stderr
    assert relay.capture.messages() == []


# ---- configuration: the file alone under env -i equals the environment ----------

FILE_SETTINGS = """\
[rewrite]
domain = example.com
masquerade_domains = example.com
header_tag = tagged
[aliases]
root = ops@example.org, dev@example.org
[senders]
root = cron@example.com
"""

ENV_SETTINGS = {
    "RELAYSHIM_DOMAIN": "example.com",
    "MASQUERADED_DOMAINS": "example.com",
    "RELAYSHIM_HEADER_TAG": "tagged",
    "RELAYSHIM_ALIASES": "root=ops@example.org,dev@example.org",
    "RELAYSHIM_SENDERS": "root=cron@example.com",
}

CONFIG_MAIL = (b"From: root (Cron Daemon)\nTo: root\nCc: someone@host.example.com\n"
               b"Subject: same either way\n\nbody\n")


def comparable(m):
    """Envelope and the header fields that do not vary per run."""
    varying = {"received", "date", "message-id"}
    return (m.mail_from, sorted(m.rcpt_tos),
            [(n, v) for n, v in headers(m.data) if n not in varying],
            m.data.split(b"\r\n\r\n", 1)[1])


def test_config_file_alone_under_env_i_equals_the_environment(relay, tmp_path):
    file_dir = tmp_path / "file"
    env_dir = tmp_path / "env"
    file_dir.mkdir()
    env_dir.mkdir()
    r = sendmail(file_dir, ["-i", "-t"], CONFIG_MAIL, base_config(relay) + FILE_SETTINGS, env={})
    assert r.returncode == 0, r.stderr
    from_file = only_message(relay)
    relay.capture.clear()

    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_RELAY": "127.0.0.1:%d" % relay.plain_port,
           "RELAYSHIM_QUEUE": "never", "RELAYSHIM_LOG": "none"}
    env.update(ENV_SETTINGS)
    r = sendmail(env_dir, ["-i", "-t"], CONFIG_MAIL, "", env=env)
    assert r.returncode == 0, r.stderr
    from_env = only_message(relay)

    if os.getuid() == 0:
        assert from_file.mail_from == "cron@example.com"
        assert header(from_file.data, "from") == b"cron@example.com (Cron Daemon)"
    assert sorted(from_file.rcpt_tos) == ["dev@example.org", "ops@example.org",
                                         "someone@host.example.com"]
    assert header(from_file.data, "cc") == b"someone@example.com"
    assert header(from_file.data, "relaytag") == b"tagged"
    assert comparable(from_file) == comparable(from_env)


def test_allowed_sender_domains_from_the_environment_matches_the_file(relay, tmp_path):
    stdin = b"To: a@example.org\nSubject: x\n\nhi\n"
    (tmp_path / "f").mkdir()
    (tmp_path / "e").mkdir()
    by_file = sendmail(tmp_path / "f", ["-i", "-t", "-f", "app@example.net"], stdin,
                       rewriting_config(relay) + "[policy]\nallowed_sender_domains = example.com\n",
                       env={})
    env = {"RELAYSHIM_RELAY": "127.0.0.1:%d" % relay.plain_port, "RELAYSHIM_QUEUE": "never",
           "RELAYSHIM_LOG": "none", "RELAYSHIM_DOMAIN": DOMAIN,
           "ALLOWED_SENDER_DOMAINS": "example.com"}
    by_env = sendmail(tmp_path / "e", ["-i", "-t", "-f", "app@example.net"], stdin, "", env=env)
    assert by_file.returncode == by_env.returncode == 77
    assert by_file.stderr == by_env.stderr
    assert relay.capture.messages() == []
