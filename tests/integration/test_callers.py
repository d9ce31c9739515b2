"""test_callers - every real caller of sendmail, through the real Postfix relay.

Each test feeds sendmail exactly what a real program passes (argv, stdin bytes,
the kind of stdin, the environment, as captured from each program) and asserts on what
the capture sink behind Postfix finally received: envelope and bytes.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from harness.util import header, only_message

DOMAIN = "example.com"


def config(relay, extra=""):
    return (
        "[relay]\nhost = 127.0.0.1:%d\n"
        "[rewrite]\ndomain = %s\n"
        "[queue]\nmode = never\n"
        "[log]\ntarget = none\n%s" % (relay.plain_port, DOMAIN, extra)
    )


def header_block(data):
    return data.split(b"\r\n\r\n", 1)[0]


def body_of(data):
    return data.split(b"\r\n\r\n", 1)[1]


def assert_nothing_delivered(relay):
    time.sleep(1.5)  # Postfix relays asynchronously: give a wrong delivery time to show
    assert relay.capture.messages() == []


def test_php_mail_mixed_line_endings_and_bcc(relay, run_sendmail):
    # PHP mail(): its own To/Subject lines in CRLF, user headers as given (LF),
    # body as given (LF), a final CRLF added by PHP.
    stdin = (b"To: alice@example.org\r\nSubject: Order 42\r\n"
             b"From: shop@example.com\nBcc: audit@example.net\n"
             b"\nHello Alice,\nyour order shipped.\r\n")
    r = run_sendmail(["-t", "-i"], input=stdin, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "shop@example.com"
    assert sorted(m.rcpt_tos) == ["alice@example.org", "audit@example.net"]
    assert header(m.data, "bcc") is None
    assert b"audit@example.net" not in m.data
    assert body_of(m.data) == b"Hello Alice,\r\nyour order shipped.\r\n"
    assert b"\n" not in m.data.replace(b"\r\n", b"")
    assert header(m.data, "message-id") is not None
    assert header(m.data, "date") is not None


def test_php_cli_mail_function(relay, run_sendmail, sendmail_bin, tmp_path):
    # The real PHP: mail() runs sendmail_path through sh.
    conf = tmp_path / "relayshim.conf"
    conf.write_text(config(relay))
    code = ('$ok = mail("bob@example.org", "php subject", "line1\\nline2\\n", '
            '"From: web@example.com\\r\\nBcc: secret@example.net"); exit($ok ? 0 : 3);')
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": str(conf)}
    r = subprocess.run(["php", "-n", "-d", "sendmail_path=%s -t -i" % sendmail_bin, "-r", code],
                       env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    m = only_message(relay)
    assert sorted(m.rcpt_tos) == ["bob@example.org", "secret@example.net"]
    assert header(m.data, "subject") == b"php subject"
    assert header(m.data, "bcc") is None
    # PHP appends a CRLF of its own after the body it was given.
    assert body_of(m.data) == b"line1\r\nline2\r\n\r\n"


def test_php_cli_mail_with_sender_parameter(relay, sendmail_bin, tmp_path):
    conf = tmp_path / "relayshim.conf"
    conf.write_text(config(relay))
    code = 'exit(mail("bob@example.org", "s", "b", "", "-fbounce@example.com") ? 0 : 3);'
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": str(conf)}
    r = subprocess.run(["php", "-n", "-d", "sendmail_path=%s -t -i" % sendmail_bin, "-r", code],
                       env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    m = only_message(relay)
    assert m.mail_from == "bounce@example.com"
    assert m.rcpt_tos == ["bob@example.org"]


def test_phpmailer_repeated_flags(relay, run_sendmail):
    stdin = (b"Date: Tue, 1 Oct 2024 10:00:00 +0000\r\nTo: carol@example.org\r\n"
             b"From: App <app@example.com>\r\nSubject: hi\r\nMessage-ID: <abc@example.com>\r\n"
             b"\r\nbody\r\n")
    r = run_sendmail(["-t", "-i", "-oi", "-fapp@example.com", "-t"], input=stdin,
                     config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "app@example.com"
    assert m.rcpt_tos == ["carol@example.org"]
    assert header(m.data, "message-id") == b"<abc@example.com>"
    assert header(m.data, "date") == b"Tue, 1 Oct 2024 10:00:00 +0000"


def test_cronie_t_and_sender_root(relay, run_sendmail):
    stdin = b"From: root\nTo: root\nSubject: cronie\n\nout\n"
    r = run_sendmail(["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"],
                     input=stdin, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "root@example.com"
    assert m.rcpt_tos == ["root@example.com"]
    assert header(m.data, "to") == b"root@example.com"


def test_mail1_regular_file_stdin_and_closed_stdout_stderr(relay, sendmail_bin, tmp_path):
    # bsd-mailx gives a regular temp file; GNU mailutils closes stdout and stderr.
    conf = tmp_path / "relayshim.conf"
    conf.write_text(config(relay))
    msg = tmp_path / "msg"
    msg.write_bytes(b"To: dave@example.org\nSubject: from mail(1)\n\nhi dave\n")
    script = 'exec >&- 2>&- <"%s"; exec "%s" -i -t' % (msg, sendmail_bin)
    r = subprocess.run(["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin",
                       "RELAYSHIM_CONFIG": str(conf)}, timeout=60)
    assert r.returncode == 0
    m = only_message(relay)
    assert m.rcpt_tos == ["dave@example.org"]
    assert body_of(m.data) == b"hi dave\r\n"


def test_git_send_email_recipients_without_double_dash(relay, run_sendmail):
    stdin = (b"From: Dev <dev@example.com>\nTo: list@example.org\nCc: r2@example.org\n"
             b"Subject: [PATCH] fix\nMessage-ID: <patch-1@example.com>\n\n---\n diff\n")
    r = run_sendmail(["-i", "list@example.org", "r2@example.org"], input=stdin,
                     config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.mail_from == "dev@example.com"
    assert sorted(m.rcpt_tos) == ["list@example.org", "r2@example.org"]
    assert body_of(m.data) == b"---\r\n diff\r\n"


def test_nodemailer_socket_stdin_and_bcc_stripped_without_t(relay, sendmail_bin, tmp_path):
    # nodemailer spawns sendmail with a socketpair as stdin, keeps the Bcc header
    # and passes every recipient as an argument ("sendmail strips it").
    conf = tmp_path / "relayshim.conf"
    conf.write_text(config(relay))
    a, b = socket.socketpair()
    p = subprocess.Popen([sendmail_bin, "-i", "-f", "node@example.com", "to@example.org",
                          "hidden@example.net"], stdin=b, stderr=subprocess.PIPE,
                         env={"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": str(conf)})
    b.close()
    a.sendall(b"From: node@example.com\r\nTo: to@example.org\r\nBcc: hidden@example.net\r\n"
              b"Subject: node\r\n\r\nbody line\n")
    a.shutdown(socket.SHUT_WR)
    _, err = p.communicate(timeout=60)
    a.close()
    assert p.returncode == 0, err
    m = only_message(relay)
    assert sorted(m.rcpt_tos) == ["hidden@example.net", "to@example.org"]
    assert header(m.data, "bcc") is None
    assert b"hidden@example.net" not in m.data


def test_fail2ban_no_i_and_no_final_newline(relay, run_sendmail):
    stdin = b"Subject: [Fail2Ban] sshd: banned 1.2.3.4\nFrom: Fail2Ban <f2b@example.com>\nTo: root\n\nHi,\nbanned.\nRegards,\nFail2Ban"
    r = run_sendmail(["-f", "f2b@example.com", "root"], input=stdin, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.rcpt_tos == ["root@example.com"]
    assert body_of(m.data) == b"Hi,\r\nbanned.\r\nRegards,\r\nFail2Ban\r\n"


def test_lone_dot_ends_input_without_i(relay, run_sendmail):
    stdin = b"Subject: logwatch\n\nreport\n.\nnot part of the message\n"
    r = run_sendmail(["ops@example.org"], input=stdin, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert body_of(m.data) == b"report\r\n"


def test_symfony_dot_stuffed_without_i(relay, run_sendmail):
    # Symfony dot-stuffs when its command has no -i: "..x" must arrive as ".x".
    stdin = b"Subject: s\n\n.leading dot\n..\n"
    r = run_sendmail(["-t", "ops@example.org"], input=stdin, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert body_of(m.data) == b"leading dot\r\n.\r\n" or body_of(m.data) == b".leading dot\r\n.\r\n"


def test_lone_dot_is_data_with_i(relay, run_sendmail):
    stdin = b"Subject: dots\n\na\n.\n..b\n"
    r = run_sendmail(["-i", "ops@example.org"], input=stdin, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert body_of(m.data) == b"a\r\n.\r\n..b\r\n"


def test_mutt_dsn_options_reach_the_relay(relay, run_sendmail):
    stdin = b"From: me@example.com\nTo: you@example.org\nSubject: dsn\n\nx\n"
    r = run_sendmail(["-oem", "-oi", "-f", "me@example.com", "-N", "failure,delay", "-R", "hdrs",
                      "-V", "env-id-1", "--", "you@example.org"], input=stdin,
                     config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert m.rcpt_tos == ["you@example.org"]
    opts = " ".join(m.mail_options + [o for l in m.rcpt_options for o in l]).upper()
    assert "RET=HDRS" in opts
    assert "ENVID=ENV-ID-1" in opts
    assert "NOTIFY=FAILURE,DELAY" in opts


def test_mbox_from_line_dropped(relay, run_sendmail):
    stdin = b"From root@box Mon Jan  1 00:00:00 2024\nSubject: mbox\n\nbody\n"
    r = run_sendmail(["-i", "ops@example.org"], input=stdin, config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert b"From root@box" not in m.data
    assert header(m.data, "subject") == b"mbox"


def test_message_without_headers(relay, run_sendmail):
    r = run_sendmail(["-i", "ops@example.org"], input=b"just a body\n", config=config(relay))
    assert r.returncode == 0, r.stderr
    m = only_message(relay)
    assert body_of(m.data) == b"just a body\r\n"
    assert header(m.data, "from") is not None


# --- bad input: the right exit status, one line, nothing sent ---------------

def test_line_break_in_sender_is_refused_and_nothing_sent(relay, run_sendmail):
    r = run_sendmail(["-f", "a@example.com\nBcc: victim@example.org", "ops@example.org"],
                     input=b"Subject: x\n\ny\n", config=config(relay))
    assert r.returncode == 65
    assert len(r.stderr.strip().splitlines()) == 1
    assert_nothing_delivered(relay)


def test_line_break_in_full_name_is_refused(relay, run_sendmail):
    r = run_sendmail(["-F", "Evil\r\nBcc: victim@example.org", "ops@example.org"],
                     input=b"x\n", config=config(relay))
    assert r.returncode == 65
    assert_nothing_delivered(relay)


def test_no_recipients_is_usage_error(relay, run_sendmail):
    r = run_sendmail([], input=b"Subject: x\n\ny\n", config=config(relay))
    assert r.returncode == 64
    assert b"recipient" in r.stderr


def test_t_without_any_recipient_header_is_usage_error(relay, run_sendmail):
    r = run_sendmail(["-t"], input=b"Subject: x\n\ny\n", config=config(relay))
    assert r.returncode == 64
    assert b"recipient" in r.stderr


def test_unknown_option_is_usage_error(run_sendmail):
    r = run_sendmail(["-X", "a@example.org"], input=b"")
    assert r.returncode == 64
    assert b"-X" in r.stderr


def test_no_relay_configured_is_config_error(run_sendmail):
    r = run_sendmail(["a@example.org"], input=b"x\n", config="[queue]\nmode = never\n")
    assert r.returncode == 78
    assert b"relay" in r.stderr


def test_missing_explicit_config_file_is_config_error(run_sendmail):
    r = run_sendmail(["-C", "/nonexistent/relayshim.conf", "a@example.org"], input=b"x\n")
    assert r.returncode == 78
    assert b"/nonexistent/relayshim.conf" in r.stderr


def test_nul_bytes_and_long_lines(relay, run_sendmail):
    long_line = b"x" * 100000
    stdin = b"Subject: odd\n\nnul\x00byte\n" + long_line + b"\nend\n"
    r = run_sendmail(["-i", "ops@example.org"], input=stdin, config=config(relay))
    # Postfix accepts long lines (it folds them); what matters: no crash, a clear outcome.
    assert r.returncode in (0, 65, 69), r.stderr
    if r.returncode == 0:
        m = only_message(relay)
        assert b"end\r\n" in body_of(m.data)
    else:
        assert len(r.stderr.strip().splitlines()) >= 1


def test_fifty_megabyte_message_streams(relay, sendmail_bin, tmp_path):
    conf = tmp_path / "relayshim.conf"
    conf.write_text(config(relay))
    big = tmp_path / "big"
    line = b"y" * 76 + b"\n"
    nlines = 50 * 1000 * 1000 // (len(line) + 1)  # 50 MB on the wire (CRLF)
    with open(big, "wb") as f:
        f.write(b"Subject: big\n\n")
        f.write(line * nlines)
    with open(big, "rb") as stdin:
        r = subprocess.run(["/usr/bin/time", "-f", "%M", sendmail_bin, "-i", "ops@example.org"],
                           stdin=stdin, capture_output=True, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": str(conf)})
    assert r.returncode == 0, r.stderr
    peak_kb = int(r.stderr.strip().splitlines()[-1])
    # The body is spilled to a file and streamed: memory stays far below the size. A
    # budget, asserted for the normal build only, as in `make bench`: a sanitizer build
    # (BUILD=build-san) carries shadow memory whose size depends on the machine.
    if not os.environ.get("BUILD", "build").rstrip("/").endswith("-san"):
        assert peak_kb < 16 * 1024, peak_kb
    m = relay.capture.wait_for(1, timeout=60)[0]
    assert len(body_of(m.data)) == nlines * (len(line) + 1)
