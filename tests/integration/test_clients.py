"""test_clients - the real-client matrix, sendmail side.

Libraries that run /usr/sbin/sendmail themselves, each with its own real code from
Debian's packages, each message asserted at the Postfix fixture's capture:
PHPMailer (isSendmail: "-t -i -oi -f<sender> -t"), nodemailer's sendmail transport
(a socketpair as stdin, the Bcc header kept for us to strip, "-i -f X -- r1 r2"),
and a replay of Debian cron's exact invocation with its minimal environment.
The rest of the matrix lives next to the feature it exercises: PHP mail() and the
other command-line callers in test_callers.py, Symfony sendmail://default (-bs) in
test_bs.py, SMTP clients through the shim (smtplib, curl, swaks, Perl Net::SMTP,
PHPMailer SMTP, Symfony SMTP, nodemailer SMTP) in test_shim.py.
"""

import os
import subprocess
import uuid

PHPMAILER_AUTOLOAD = "/usr/share/php/libphp-phpmailer/autoload.php"


def config_file(tmp_path, relay):
    conf = tmp_path / "relayshim.conf"
    conf.write_text("[relay]\nhost = 127.0.0.1:%d\n[rewrite]\ndomain = example.com\n"
                    "[queue]\nmode = never\n[log]\ntarget = none\n" % relay.plain_port)
    return str(conf)


def one_message(relay, token):
    msgs = relay.capture.wait_for(1, timeout=15)
    assert len(msgs) == 1
    assert token.encode() in msgs[0].data
    return msgs[0]


def test_phpmailer_sendmail_mode(relay, sendmail_bin, tmp_path):
    assert os.path.exists(PHPMAILER_AUTOLOAD), "libphp-phpmailer is installed by install-deps"
    token = uuid.uuid4().hex
    code = r"""
require "%s";
$m = new PHPMailer\PHPMailer\PHPMailer(true);
$m->isSendmail();
$m->Sendmail = "%s";
$m->setFrom("app@example.com", "App");
$m->addAddress("alice@example.org");
$m->addBCC("audit@example.net");
$m->Subject = "%s";
$m->Body = "line one\nline two\n.\nafter a dot";
$m->send();
""" % (PHPMAILER_AUTOLOAD, sendmail_bin, token)
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": config_file(tmp_path, relay)}
    r = subprocess.run(["php", "-r", code], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = one_message(relay, token)
    assert m.mail_from == "app@example.com"
    assert sorted(m.rcpt_tos) == ["alice@example.org", "audit@example.net"]
    head, body = m.data.split(b"\r\n\r\n", 1)
    assert b"\r\nBcc:" not in b"\r\n" + head
    # PHPMailer calls us with -i/-oi: the lone dot is data.
    assert b"\r\n.\r\nafter a dot" in body


NODEMAILER_SENDMAIL = r"""
const nodemailer = require("nodemailer");
const t = nodemailer.createTransport({sendmail: true, path: process.argv[1], newline: "unix"});
t.sendMail({from: "node@example.com", to: "bob@example.org", bcc: "hidden@example.net",
            subject: process.argv[2], text: "via nodemailer's sendmail transport"})
  .then(() => process.exit(0), e => { console.error(e.message); process.exit(1); });
"""


def test_nodemailer_sendmail_transport(relay, sendmail_bin, tmp_path):
    assert os.path.isdir("/usr/share/nodejs/nodemailer"), "node-nodemailer is installed"
    token = uuid.uuid4().hex
    env = {"PATH": "/usr/bin:/bin", "NODE_PATH": "/usr/share/nodejs",
           "RELAYSHIM_CONFIG": config_file(tmp_path, relay)}
    r = subprocess.run(["node", "-e", NODEMAILER_SENDMAIL, sendmail_bin, token], env=env,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = one_message(relay, token)
    assert m.mail_from == "node@example.com"
    assert sorted(m.rcpt_tos) == ["bob@example.org", "hidden@example.net"]
    # nodemailer leaves the Bcc header in for sendmail to strip.
    assert b"hidden@example.net" not in m.data


def test_debian_cron_exact_invocation_with_cron_environment(relay, sendmail_bin, tmp_path):
    # What Debian cron 3.0pl1 does for MAILTO=ops@example.org,second@example.org:
    # execle("/usr/sbin/sendmail", "sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem",
    # mailto, NULL) with the crontab's environment: no RELAYSHIM_* at all, so the
    # configuration comes from /etc/relayshim.conf alone. A private mount namespace puts
    # our file there without touching the machine's.
    conf = config_file(tmp_path, relay)
    token = uuid.uuid4().hex
    stdin = ("From: root (Cron Daemon)\nTo: ops@example.org,second@example.org\n"
             "Subject: Cron <root@app> /usr/local/bin/job %s\nMIME-Version: 1.0\n"
             "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
             "X-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\n"
             "X-Cron-Env: <PATH=/usr/bin:/bin>\nX-Cron-Env: <LOGNAME=root>\n\n"
             "job output\n" % token).encode()
    target = "/etc/relayshim.conf"
    created = not os.path.exists(target)
    if created:
        open(target, "a").close()  # a bind mount needs a file to cover; empty is harmless
    try:
        script = ('mount --bind "$1" /etc/relayshim.conf && exec env -i SHELL=/bin/sh '
                  'HOME=/root PATH=/usr/bin:/bin LOGNAME=root "$2" -FCronDaemon -i '
                  '-B8BITMIME -oem ops@example.org,second@example.org')
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                            "sh", conf, sendmail_bin], input=stdin, capture_output=True,
                           timeout=60, cwd="/")
    finally:
        if created:
            os.unlink(target)
    assert r.returncode == 0, r.stderr
    m = one_message(relay, token)
    assert m.mail_from == "root@example.com"
    assert sorted(m.rcpt_tos) == ["ops@example.org", "second@example.org"]
    assert b"From: root@example.com (Cron Daemon)" in m.data
