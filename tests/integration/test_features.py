"""test_features - staging redirect, mirror copy, forced Sender and Maildir capture.

Redirect, always_bcc and the forced Sender are checked against the real Postfix
relay: what its capture sink receives is what the next hop would get. Capture
mode is checked by running the real clients (PHP mail(), a cron-style -t, the
Symfony -bs dialogue, smtplib through the shim) into a Maildir that Python's
mailbox module then reads back, as a mail reader would.
"""

import mailbox
import os
import shutil
import subprocess
import uuid

import pytest

from harness.util import headers, only_message

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
SENDMAIL = os.path.join(TOP, BUILD, "sendmail", "sendmail")
SHIM = os.path.join(TOP, BUILD, "shim", "librelayshim.so")


def config(relay, extra=""):
    return ("[relay]\nhost = 127.0.0.1:%d\n"
            "[rewrite]\ndomain = example.com\n%s\n"
            "[queue]\nmode = never\n"
            "[log]\ntarget = none\n" % (relay.plain_port, extra))


def values(data, name):
    return [v for n, v in headers(data) if n == name.lower()]


STAGING_MAIL = (b"From: shop@example.com\n"
                b"To: Alice <alice@customer.example>, bob\n"
                b"Cc: carol@customer.example\n"
                b"Bcc: hidden@customer.example\n"
                b"Subject: your order\n"
                b"\n"
                b"Dear customer\n")


# ---------------------------------------------------------------------------
# redirect_to


def test_redirect_replaces_every_recipient_and_names_only_the_visible_ones(relay, run_sendmail):
    r = run_sendmail(["-t", "-i"], STAGING_MAIL,
                     config=config(relay, "redirect_to = qa@example.com, dev@example.com"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert sorted(m.rcpt_tos) == ["dev@example.com", "qa@example.com"]
    shown = values(m.data, "x-original-to")
    assert shown == [b"alice@customer.example, bob@example.com, carol@customer.example"
                     b" (1 undisclosed)"]
    # Headers otherwise as without the redirect: To and Cc untouched, Bcc gone.
    assert values(m.data, "to") == [b"Alice <alice@customer.example>, bob@example.com"]
    assert values(m.data, "cc") == [b"carol@customer.example"]
    assert values(m.data, "bcc") == []
    assert b"hidden@customer.example" not in m.data


def test_redirect_show_blind_names_the_bcc_recipients_too(relay, run_sendmail):
    r = run_sendmail(["-t", "-i"], STAGING_MAIL,
                     config=config(relay, "redirect_to = qa@example.com\n"
                                          "redirect_show_blind = yes"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.rcpt_tos == ["qa@example.com"]
    assert values(m.data, "x-original-to") == [
        b"alice@customer.example, bob@example.com, carol@customer.example,"
        b" hidden@customer.example"]


def test_redirect_applies_after_aliases_and_to_command_line_recipients(relay, run_sendmail):
    conf = config(relay, "redirect_to = qa@example.com") + "[aliases]\nroot = ops@customer.example\n"
    r = run_sendmail(["-i", "root", "dave@customer.example"],
                     b"To: root\nSubject: cron\n\nout\n", config=conf)
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.rcpt_tos == ["qa@example.com"]
    # root (alias of ops@) is in To:, dave was only on the command line: blind.
    assert values(m.data, "x-original-to") == [b"ops@customer.example (1 undisclosed)"]


def test_redirect_replaces_an_x_original_to_the_application_wrote(relay, run_sendmail):
    mail = b"To: a@customer.example\nX-Original-To: ceo@customer.example\nSubject: s\n\nb\n"
    r = run_sendmail(["-t", "-i"], mail, config=config(relay, "redirect_to = qa@example.com"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert values(m.data, "x-original-to") == [b"a@customer.example"]


def test_redirect_in_bs_mode(relay, run_sendmail):
    # Symfony's sendmail transport: -bs, envelope in MAIL/RCPT, Bcc not in the header.
    dialogue = (b"EHLO app\r\n"
                b"MAIL FROM:<shop@example.com>\r\n"
                b"RCPT TO:<alice@customer.example>\r\n"
                b"RCPT TO:<hidden@customer.example>\r\n"
                b"DATA\r\n"
                b"From: shop@example.com\r\nTo: alice@customer.example\r\nSubject: bs\r\n\r\n"
                b"hi\r\n.\r\nQUIT\r\n")
    r = run_sendmail(["-bs"], dialogue, config=config(relay, "redirect_to = qa@example.com"))
    assert r.returncode == 0, r.stderr
    assert b"\r\n250 " in r.stdout
    m = only_message(relay)
    assert m.rcpt_tos == ["qa@example.com"]
    assert values(m.data, "x-original-to") == [b"alice@customer.example (1 undisclosed)"]


def test_redirect_through_the_shim(relay, tmp_path):
    conf = tmp_path / "shim.conf"
    conf.write_text(config(relay, "redirect_to = qa@example.com"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYSHIM_") and k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=preload(), RELAYSHIM_SENDMAIL=SENDMAIL, RELAYSHIM_CONFIG=str(conf),
               ASAN_OPTIONS="detect_leaks=0")
    code = ("import smtplib\n"
            "s = smtplib.SMTP('127.0.0.1', 25, timeout=20)\n"
            "s.sendmail('shop@example.com', ['alice@customer.example'],"
            " 'To: alice@customer.example\\r\\nSubject: shim\\r\\n\\r\\nhi\\r\\n')\n"
            "s.quit()\n")
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.rcpt_tos == ["qa@example.com"]
    assert values(m.data, "x-original-to") == [b"alice@customer.example"]


def preload():
    ldd = subprocess.run(["ldd", SHIM], capture_output=True, text=True).stdout
    if "libasan" not in ldd:
        return SHIM
    runtime = subprocess.run([os.environ.get("CC", "cc"), "-print-file-name=libasan.so"],
                             capture_output=True, text=True).stdout.strip()
    return runtime + ":" + SHIM


def test_redirect_target_must_be_an_address(run_sendmail):
    r = run_sendmail(["--config-check"], env={"RELAYSHIM_RELAY": "127.0.0.1",
                                              "RELAYSHIM_REDIRECT_TO": "qa@example.com <x>"})
    assert r.returncode == 78, r.stderr
    assert b"redirect_to" in r.stderr


# ---------------------------------------------------------------------------
# always_bcc and the forced Sender


def test_always_bcc_adds_one_envelope_recipient_and_no_header(relay, run_sendmail):
    r = run_sendmail(["-i", "alice@customer.example", "archive@example.com"],
                     b"To: alice@customer.example\nSubject: s\n\nb\n",
                     config=config(relay, "always_bcc = archive@example.com"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    # Already a recipient: not added twice.
    assert sorted(m.rcpt_tos) == ["alice@customer.example", "archive@example.com"]
    relay.capture.clear()
    r = run_sendmail(["-t", "-i"], STAGING_MAIL,
                     config=config(relay, "always_bcc = archive"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert "archive@example.com" in m.rcpt_tos
    assert len(m.rcpt_tos) == 5
    assert b"archive" not in m.data


def test_always_bcc_after_redirect_keeps_the_mirror_copy(relay, run_sendmail):
    r = run_sendmail(["-t", "-i"], STAGING_MAIL,
                     config=config(relay, "redirect_to = qa@example.com\n"
                                          "always_bcc = archive@example.com"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert sorted(m.rcpt_tos) == ["archive@example.com", "qa@example.com"]


def test_forced_from_also_forces_sender_and_resent_sender(relay, run_sendmail):
    mail = (b"From: App <app@internal.example>\n"
            b"Sender: app@internal.example\n"
            b"Resent-Sender: Bot <bot@internal.example>\n"
            b"Resent-To: alice@customer.example\n"
            b"To: alice@customer.example\nSubject: s\n\nb\n")
    r = run_sendmail(["-t", "-i"], mail, config=config(relay, "from = login@example.com"))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "login@example.com"
    assert values(m.data, "from") == [b"App <login@example.com>"]
    assert values(m.data, "sender") == [b"login@example.com"]
    assert values(m.data, "resent-sender") == [b"Bot <login@example.com>"]


def test_without_forced_from_sender_is_left_alone(relay, run_sendmail):
    mail = b"From: a@example.com\nSender: b@example.com\nTo: c@customer.example\n\nb\n"
    r = run_sendmail(["-t", "-i"], mail, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert values(m.data, "sender") == [b"b@example.com"]


# ---------------------------------------------------------------------------
# Capture into a Maildir


def capture_config(maildir, extra="", spool=None):
    return ("[relay]\nhost = maildir:%s\n"
            "[rewrite]\ndomain = example.com\n%s\n"
            "[queue]\nmode = fallback\ndir = %s\n"
            "[log]\ntarget = stderr\n" % (maildir, extra, spool or maildir + ".spool"))


def read_maildir(path, n):
    box = mailbox.Maildir(str(path), factory=None, create=False)
    msgs = list(box)
    assert len(msgs) == n, [m["Subject"] for m in msgs]
    return msgs


def test_capture_php_mail_cron_symfony_and_smtplib_into_one_maildir(tmp_path):
    if shutil.which("php") is None:
        pytest.fail("php-cli missing: tools/install-deps.sh installs it")
    md = tmp_path / "Maildir"
    conf = tmp_path / "relayshim.conf"
    conf.write_text(capture_config(str(md)))
    base = {"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": str(conf)}
    tok = uuid.uuid4().hex[:8]

    # PHP mail(): -t -i through sh, with a Bcc.
    code = ('exit(mail("bob@customer.example", "php %s", "line1\\n", '
            '"From: web@example.com\\r\\nBcc: secret@customer.example") ? 0 : 3);' % tok)
    r = subprocess.run(["php", "-n", "-d", "sendmail_path=%s -t -i" % SENDMAIL, "-r", code],
                       env=base, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    # cron (Debian): -FCronDaemon -odi -oem -oi -t, bare root.
    r = subprocess.run([SENDMAIL, "-FCronDaemon", "-odi", "-oem", "-oi", "-t"],
                       input=b"From: root\nTo: root\nSubject: cron %s\n\nout\n" % tok.encode(),
                       env=base, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # Symfony's sendmail transport: -bs.
    r = subprocess.run([SENDMAIL, "-bs"], env=base, capture_output=True, timeout=60, input=(
        b"EHLO app\r\nMAIL FROM:<shop@example.com>\r\nRCPT TO:<alice@customer.example>\r\n"
        b"DATA\r\nSubject: symfony %s\r\n\r\nhi\r\n..dot\r\n.\r\nQUIT\r\n" % tok.encode()))
    assert r.returncode == 0, r.stderr
    # smtplib through the shim.
    env = dict(base, LD_PRELOAD=preload(), RELAYSHIM_SENDMAIL=SENDMAIL,
               ASAN_OPTIONS="detect_leaks=0")
    code = ("import smtplib\n"
            "s = smtplib.SMTP('localhost', 25, timeout=20)\n"
            "s.sendmail('app@example.com', ['dora@customer.example'],"
            " 'Subject: shim %s\\r\\n\\r\\nvia the shim\\r\\n')\n"
            "s.quit()\n" % tok)
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr

    msgs = {m["Subject"].split()[0]: m for m in read_maildir(md, 4)}
    php = msgs["php"]
    assert php["Return-Path"] == "<web@example.com>"
    assert php["Envelope-to"].replace("\n\t", " ") == "bob@customer.example, secret@customer.example"
    assert php["Bcc"] is None
    assert php.get_payload() == "line1\n\n"
    cron = msgs["cron"]
    assert cron["Return-Path"] == "<root@example.com>"
    assert cron["Envelope-to"] == "root@example.com"
    assert cron["To"] == "root@example.com"
    sym = msgs["symfony"]
    assert sym["Envelope-to"] == "alice@customer.example"
    assert sym.get_payload() == "hi\n.dot\n"
    shim = msgs["shim"]
    assert shim["Return-Path"] == "<app@example.com>"
    assert shim["Envelope-to"] == "dora@customer.example"
    for m in msgs.values():
        assert m["Received"] and "(relayshim)" in m["Received"]
    # Nothing was left for a queue: capture is a delivery.
    assert not os.path.exists(str(md) + ".spool") or not any(
        f for _, _, files in os.walk(str(md) + ".spool") for f in files)


def test_capture_logs_like_a_delivery_and_keeps_policy(tmp_path, run_sendmail):
    md = tmp_path / "Maildir"
    conf = capture_config(str(md), "") + "[policy]\nallowed_sender_domains = example.com\n"
    r = run_sendmail(["-i", "-f", "app@example.com", "bob@customer.example"], b"Subject: ok\n\nb\n",
                     config=conf)
    assert r.returncode == 0, r.stderr
    assert b"relay=maildir:" in r.stderr and b"status=sent" in r.stderr
    assert b"captured as" in r.stderr
    r = run_sendmail(["-i", "-f", "app@evil.example", "bob@customer.example"],
                     b"Subject: no\n\nb\n", config=conf)
    assert r.returncode == 77, r.stderr
    read_maildir(md, 1)


def test_capture_into_an_unwritable_maildir_queues_and_says_so(tmp_path, run_sendmail):
    md = tmp_path / "Maildir"
    md.write_text("a file where the Maildir should be")
    spool = tmp_path / "spool"
    conf = capture_config(str(md / "inner"), spool=str(spool))
    r = run_sendmail(["-i", "bob@customer.example"], b"Subject: q\n\nb\n", config=conf)
    # Temporary failure: queued (fallback), exit 0, the reason in the log.
    assert r.returncode == 0, r.stderr
    assert b"cannot create the directory" in r.stderr
    assert b"queued" in r.stderr
    queued = [f for _, _, files in os.walk(spool) for f in files]
    assert queued, "nothing in the spool"


def test_capture_relay_check_and_config_round_trip(tmp_path, run_sendmail):
    md = tmp_path / "Maildir"
    conf = capture_config(str(md))
    r = run_sendmail(["--relay-check"], config=conf)
    assert r.returncode == 0, r.stderr
    assert b"maildir:" in r.stdout + r.stderr
    r = run_sendmail(["--write-config"], config=conf)
    assert r.returncode == 0, r.stderr
    assert b"host = maildir:%s\n" % str(md).encode() in r.stdout
    r = run_sendmail(["--config-check"], env={"RELAYSHIM_RELAY": "maildir:relative/path"})
    assert r.returncode == 78
    assert b"maildir:/absolute/path" in r.stderr
