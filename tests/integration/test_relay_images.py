"""The relay images as they really are: relayshim in front of boky/postfix and
juanluisbaptiste/postfix, with one env file shared by both containers.

Each relay here is a private Postfix (harness.postfix.PostfixRelay: its own
config, queue and data directories) configured with the postconf settings the
image's own generator writes for that env file. The generators are not run
(they edit /etc/postfix and exec Postfix in the foreground); boky_params() and
juanluis_params() reproduce what they write, read from the images' scripts:

    juanluisbaptiste/docker-postfix run.sh: myhostname = SERVER_HOSTNAME;
        mydomain = DOMAIN or the last two labels of SERVER_HOSTNAME (awk);
        myorigin = $mydomain; mydestination = DESTINATION or localhost;
        always_add_missing_headers = ALWAYS_ADD_MISSING_HEADERS or no;
        mynetworks = 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 + SMTP_NETWORKS;
        SMTP_HEADER_TAG: header_checks regexp with
            /^MIME-Version:/i PREPEND RelayTag: TAG
            /^Content-Transfer-Encoding:/i PREPEND RelayTag: TAG
        MESSAGE_SIZE_LIMIT: message_size_limit; smtpd restrictions: Postfix's
        defaults (smtpd_relay_restrictions ends in defer_unauth_destination).
    bokysan/docker-postfix scripts/functions.sh: mydestination and
        relay_domains empty; header_size_limit 4096000; smtpd_delay_reject and
        smtpd_helo_required yes; client restrictions permit_mynetworks,
        permit_sasl_authenticated, reject; helo restrictions permit_mynetworks,
        reject_invalid_helo_hostname, permit; sender restrictions
        permit_mynetworks, reject; mynetworks 127.0.0.0/8, 10.0.0.0/8,
        172.16.0.0/12, 192.168.0.0/16; message_size_limit from
        MESSAGE_SIZE_LIMIT / POSTFIX_message_size_limit (0); with
        ALLOWED_SENDER_DOMAINS: an access map "domain OK" per word (lmdb in the
        image, texthash here: same lookups), smtpd_recipient_restrictions
        reject_non_fqdn_recipient, reject_unknown_recipient_domain,
        check_sender_access, reject, and smtpd_relay_restrictions permit.

Where the client's network matters, the client runs in a network namespace of
the test's own (ClientNet: netns "rsg<pid>" and a veth pair), like an app
container on the relay's Docker network: from 172.31.N.2 (inside both images'
default mynetworks, a Docker bridge address) or from 198.18.N.2 (outside them).
Postfix listens on the host end of the pair, so it sees that address, and
treats the client as remote (no header rewriting for it: Postfix's
local_header_rewrite_clients default) as the relay container would.

"Image alone" is a well-formed client (smtplib, run in the same namespace)
submitting the message directly to that Postfix; relayshim's delivered message
and verdict are compared with it.

The names of the relay's recipients use address literals ([198.18.0.9]):
boky/postfix's reject_unknown_recipient_domain needs DNS, which the test
machine does not have (that case, 450 4.1.2, is a test of its own).
"""

import json
import os
import subprocess
import textwrap
import time

import pytest

from harness.postfix import PostfixRelay

BUILD = os.environ.get("BUILD", "build")
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENDMAIL = os.path.join(TOP, BUILD, "sendmail", "sendmail")
RCPT = "ops@[198.18.0.9]"   # a recipient whose domain needs no DNS (see the module comment)


# ---- the client's network -------------------------------------------------

class ClientNet:
    """A network namespace with a veth pair to the host: the app container."""

    def __init__(self):
        n = os.getpid() % 200 + 20
        self.ns = "rsg%d" % os.getpid()
        self.host_if = "rsgh%d" % (os.getpid() % 100000)
        self.peer_if = "rsgc%d" % (os.getpid() % 100000)
        self.inside_host, self.inside_client = "172.31.%d.1" % n, "172.31.%d.2" % n
        self.outside_host, self.outside_client = "198.18.%d.1" % n, "198.18.%d.2" % n
        self.inside_net, self.outside_net = "172.31.%d.0/24" % n, "198.18.%d.0/24" % n

    def _ip(self, *args, ns=False):
        cmd = (["ip", "netns", "exec", self.ns, "ip"] if ns else ["ip"]) + list(args)
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self):
        self.stop()
        subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
        self._ip("link", "set", self.peer_if, "netns", self.ns)
        for addr in (self.inside_host, self.outside_host):
            self._ip("addr", "add", addr + "/24", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        for addr in (self.inside_client, self.outside_client):
            self._ip("addr", "add", addr + "/24", "dev", self.peer_if, ns=True)
        self._ip("link", "set", self.peer_if, "up", ns=True)
        self._ip("link", "set", "lo", "up", ns=True)
        return self

    def stop(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    def run(self, argv, **kw):
        return subprocess.run(["ip", "netns", "exec", self.ns] + argv, **kw)


@pytest.fixture(scope="module")
def net():
    n = ClientNet().start()
    yield n
    n.stop()


# ---- the images' generated configuration ------------------------------------

def juanluis_params(env, net):
    """postconf settings juanluisbaptiste/postfix's run.sh writes for env."""
    server = env["SERVER_HOSTNAME"]
    domain = env.get("DOMAIN") or ".".join(server.split(".")[-2:])
    nets = "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"
    for item in env.get("SMTP_NETWORKS", "").replace(",", " ").split():
        nets += ", " + item
    params = {
        "myhostname": server,
        "mydomain": domain,
        "mydestination": env.get("DESTINATION", "localhost"),
        "myorigin": "$mydomain",
        "always_add_missing_headers": env.get("ALWAYS_ADD_MISSING_HEADERS", "no"),
        "mynetworks": nets,
        # Postfix's defaults, which the image does not change (the harness does).
        "smtpd_relay_restrictions":
            "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
        "local_header_rewrite_clients": "permit_inet_interfaces",
        "message_size_limit": env.get("MESSAGE_SIZE_LIMIT", "10240000"),
    }
    files = {}
    if env.get("SMTP_HEADER_TAG"):
        params["header_checks"] = "regexp:$config_directory/header_checks"
        files["header_checks"] = ("/^MIME-Version:/i PREPEND RelayTag: %s\n"
                                  "/^Content-Transfer-Encoding:/i PREPEND RelayTag: %s\n"
                                  % (env["SMTP_HEADER_TAG"], env["SMTP_HEADER_TAG"]))
    return params, files


def boky_params(env, net):
    """postconf settings boky/postfix's scripts write for env."""
    size = env.get("MESSAGE_SIZE_LIMIT") or env.get("POSTFIX_message_size_limit") or "0"
    params = {
        "myhostname": "a1b2c3d4e5f6",   # POSTFIX_myhostname default: $HOSTNAME
        "mydestination": "",
        "relay_domains": "",
        "header_size_limit": "4096000",
        "message_size_limit": size,
        "smtpd_delay_reject": "yes",
        "smtpd_helo_required": "yes",
        "smtpd_client_restrictions": "permit_mynetworks,permit_sasl_authenticated,reject",
        "smtpd_helo_restrictions": "permit_mynetworks,reject_invalid_helo_hostname,permit",
        "smtpd_sender_restrictions": "permit_mynetworks,reject",
        "mynetworks": env.get("POSTFIX_mynetworks",
                              "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"),
        "smtpd_relay_restrictions":
            "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
        "local_header_rewrite_clients": "permit_inet_interfaces",
    }
    files = {}
    domains = env.get("ALLOWED_SENDER_DOMAINS", "").split()
    if domains:
        files["allowed_senders"] = "".join("%s\tOK\n" % d for d in domains)
        params["smtpd_recipient_restrictions"] = (
            "reject_non_fqdn_recipient, reject_unknown_recipient_domain, "
            "check_sender_access texthash:$config_directory/allowed_senders, reject")
        params["smtpd_relay_restrictions"] = "permit"
    elif not env.get("ALLOW_EMPTY_SENDER_DOMAINS"):
        raise AssertionError("boky/postfix does not start without ALLOWED_SENDER_DOMAINS "
                             "or ALLOW_EMPTY_SENDER_DOMAINS")
    if env.get("MASQUERADED_DOMAINS"):
        params["masquerade_domains"] = env["MASQUERADED_DOMAINS"]
        params["local_header_rewrite_clients"] = "static:all"
    return params, files


@pytest.fixture
def image_relay(pki, net):
    """image_relay("juanluis" | "boky", env) -> a started PostfixRelay with that config."""
    started = []

    def make(image, env):
        params, files = (juanluis_params if image == "juanluis" else boky_params)(env, net)
        params["inet_interfaces"] = "127.0.0.1, %s, %s" % (net.inside_host, net.outside_host)
        params["inet_protocols"] = "ipv4"
        size = int(params.pop("message_size_limit"))
        r = PostfixRelay(pki, message_size_limit=size, extra_params=params, extra_files=files)
        started.append(r)
        return r.start()

    yield make
    for r in started:
        r.stop()


# ---- the two clients ----------------------------------------------------------

def relayshim(net, relay, args, message, env, tmp_path, inside=True, queue="never"):
    """Run sendmail in the client namespace with the shared env file env."""
    host = net.inside_host if inside else net.outside_host
    full = {"PATH": "/usr/bin:/bin", "RELAYSHIM_RELAY": "%s:%d" % (host, relay.plain_port),
            "RELAYSHIM_TLS": "none", "RELAYSHIM_QUEUE": queue,
            "RELAYSHIM_QUEUE_DIR": str(tmp_path / "spool"),
            "RELAYSHIM_LOG": str(tmp_path / "relayshim.log"), "LOG_FORMAT": "json",
            "RELAYSHIM_CONFIG": str(tmp_path / "none.conf")}
    (tmp_path / "none.conf").write_text("")
    full.update(env)
    return net.run([SENDMAIL] + args, input=message, env=full, capture_output=True,
                   timeout=60)


ALONE = textwrap.dedent("""\
    import json, smtplib, sys
    host, port, sender, rcpts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    data = sys.stdin.buffer.read()
    s = smtplib.SMTP(host, port, local_hostname="app.example.com", timeout=30)
    try:
        refused = s.sendmail(sender, rcpts, data)
        print(json.dumps({"ok": True, "refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
    except smtplib.SMTPRecipientsRefused as e:
        print(json.dumps({"ok": False, "code": list(e.recipients.values())[0][0],
                          "text": list(e.recipients.values())[0][1].decode()}))
    except smtplib.SMTPResponseException as e:
        print(json.dumps({"ok": False, "code": e.smtp_code, "text": e.smtp_error.decode()}))
    finally:
        try:
            s.quit()
        except Exception:
            pass
""")


def image_alone(net, relay, sender, rcpts, message, inside=True):
    """The same message from a well-formed client (smtplib) straight to the relay."""
    host = net.inside_host if inside else net.outside_host
    data = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    r = net.run(["/usr/bin/python3", "-c", ALONE, host, str(relay.plain_port), sender] + rcpts,
                input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def delivered(relay, n=1):
    assert relay.capture.wait_for(n, timeout=10), relay.log_text()[-3000:]
    return relay.capture.messages()


def header_lines(data):
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    out = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + "\r\n" + line)
        else:
            name, _, value = line.partition(":")
            out.append((name, value.strip()))
    return out


def log_records(tmp_path):
    path = tmp_path / "relayshim.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]



def errors(tmp_path):
    return [r for r in log_records(tmp_path) if r.get("level") == "error"]


def mailq(net, tmp_path):
    r = relayshim_cmd(net, ["-bp"], tmp_path)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def relayshim_cmd(net, args, tmp_path, env=None):
    full = {"PATH": "/usr/bin:/bin", "RELAYSHIM_RELAY": "127.0.0.1:1", "RELAYSHIM_TLS": "none",
            "RELAYSHIM_QUEUE_DIR": str(tmp_path / "spool"),
            "RELAYSHIM_LOG": str(tmp_path / "relayshim.log"), "LOG_FORMAT": "json",
            "RELAYSHIM_CONFIG": str(tmp_path / "none.conf")}
    (tmp_path / "none.conf").write_text("")
    full.update(env or {})
    return net.run([SENDMAIL] + args, env=full, capture_output=True, timeout=60)


# ---- 1. bare names with juanluisbaptiste/postfix ------------------------------

CRON = (b"From: root (Cron Daemon)\nTo: root\nCc: root\n"
        b"Subject: Cron <root@app> run-parts /etc/cron.daily\n\nall done\n")


def test_bare_names_get_the_mydomain_of_server_hostname_like_the_image(image_relay, net,
                                                                        tmp_path):
    # One env file: SERVER_HOSTNAME is the relay's; no RELAYSHIM_DOMAIN, no
    # ALLOWED_SENDER_DOMAINS. The image qualifies bare names with $mydomain
    # (last two labels: example.com), not with the app container's name.
    env = {"SERVER_HOSTNAME": "mail.example.com", "SMTP_SERVER": "smtp.upstream.test"}
    relay = image_relay("juanluis", env)
    alone = image_alone(net, relay, "root", ["root"], CRON)
    assert alone["ok"], alone
    want = delivered(relay)[0]
    relay.capture.clear()
    assert (want.mail_from, want.rcpt_tos) == ("root@example.com", ["root@example.com"])

    r = relayshim(net, relay, ["-FCronDaemon", "-i", "-oem", "root"], CRON, env, tmp_path)
    assert r.returncode == 0, r.stderr
    got = delivered(relay)[0]
    assert (got.mail_from, got.rcpt_tos) == (want.mail_from, want.rcpt_tos)
    h = dict((n.lower(), v) for n, v in header_lines(got.data))
    # Where the image alone leaves a remote client's header bare ("Cc: root"),
    # relayshim qualifies it, with the image's domain (kept on purpose).
    assert dict((n.lower(), v) for n, v in header_lines(want.data))["cc"] == "root"
    assert h["cc"] == "root@example.com"
    assert h["to"] == "root@example.com"
    assert h["from"].startswith("root@example.com")
    assert h["message-id"].endswith("@example.com>"), h["message-id"]
    host = os.uname().nodename
    for name in ("from", "to", "cc", "message-id"):
        assert host not in h[name], (name, h[name])


# ---- 2. RelayTag ---------------------------------------------------------------

TAGGED = (b"From: App <app@example.com>\nTo: " + RCPT.encode() + b"\n"
          b"Subject: tagged\nDate: Mon, 07 Dec 2026 10:00:00 +0000\n"
          b"Message-ID: <tag-1@example.com>\nMIME-Version: 1.0\n"
          b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
          b"\nhello\n")


def test_relay_tag_appears_as_often_as_with_the_image_alone(image_relay, net, tmp_path):
    env = {"SERVER_HOSTNAME": "mail.example.com", "SMTP_HEADER_TAG": "app1"}
    relay = image_relay("juanluis", env)
    alone = image_alone(net, relay, "app@example.com", [RCPT], TAGGED)
    assert alone["ok"], alone
    want = delivered(relay)[0]
    relay.capture.clear()
    r = relayshim(net, relay, ["-i", RCPT], TAGGED, env, tmp_path)
    assert r.returncode == 0, r.stderr
    got = delivered(relay)[0]

    def fields(m):
        return [(n, v) for n, v in header_lines(m.data) if n.lower() != "received"]

    assert [v for n, v in fields(want) if n == "RelayTag"] == ["app1", "app1"]
    assert fields(got) == fields(want)


# ---- 3. size: what the relay would refuse is refused up front -------------------

def sized(total):
    """A message of exactly total wire bytes, 76-byte lines (base64 style)."""
    head = ("From: app@example.com\r\nTo: %s\r\nSubject: big\r\n"
            "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <big@example.com>\r\n"
            "\r\n" % RCPT).encode()
    line = b"x" * 76 + b"\r\n"
    body = line * ((total - len(head)) // len(line))
    rest = total - len(head) - len(body)
    if rest:
        body += b"y" * (rest - 2) + b"\r\n"
    assert len(head + body) == total
    return head + body


SIZE_ENV = {"SERVER_HOSTNAME": "mail.example.com", "MESSAGE_SIZE_LIMIT": "100000",
            "RELAYSHIM_RECEIVED": "no"}


@pytest.mark.parametrize("queue", ["never", "always"])
def test_a_message_the_relay_counts_as_too_big_is_refused_before_sending(image_relay, net,
                                                                         tmp_path, queue):
    # 99600 wire bytes: under MESSAGE_SIZE_LIMIT as bytes on the wire, over it
    # as Postfix counts its queue file (measured limit: 99139 for this shape).
    relay = image_relay("juanluis", SIZE_ENV)
    msg = sized(99600)
    alone = image_alone(net, relay, "app@example.com", [RCPT], msg)
    assert not alone["ok"] and alone["code"] == 552, alone
    before = relay.log_text().count("too big")

    r = relayshim(net, relay, ["-i", RCPT], msg, SIZE_ENV, tmp_path, queue=queue)
    assert r.returncode == 65, (r.returncode, r.stderr)
    line = r.stderr.decode().strip()
    assert "\n" not in line and "as the relay counts it" in line and "max_size 100000" in line
    # Refused before anything was sent: the relay never had to say 552.
    assert relay.log_text().count("too big") == before
    assert not (tmp_path / "spool").exists() or "Mail queue is empty" in mailq(net, tmp_path)


def test_the_relays_size_alone_is_also_counted_as_the_relay_counts(image_relay, net, tmp_path):
    # The app's env does not carry MESSAGE_SIZE_LIMIT: only the relay's SIZE.
    relay = image_relay("juanluis", SIZE_ENV)
    env = {"SERVER_HOSTNAME": "mail.example.com", "RELAYSHIM_RECEIVED": "no"}
    r = relayshim(net, relay, ["-i", RCPT], sized(99600), env, tmp_path)
    assert r.returncode == 65, r.stderr
    assert b"(SIZE)" in r.stderr and b"as the relay counts it" in r.stderr
    assert "too big" not in relay.log_text()


def test_queue_always_without_a_size_of_its_own_reports_the_refusal(image_relay, net,
                                                                    tmp_path):
    # Mode always, and the app does not know the limit: the message is queued
    # (exit 0, the caller has gone when the relay's size is learnt); the worker
    # then refuses it itself, and that reaches the log at error level and mailq.
    relay = image_relay("juanluis", SIZE_ENV)
    env = {"SERVER_HOSTNAME": "mail.example.com", "RELAYSHIM_RECEIVED": "no"}
    r = relayshim(net, relay, ["-i", RCPT], sized(99600), env, tmp_path, queue="always")
    assert r.returncode == 0, r.stderr
    # The worker moves the entry to failed/ and logs the refusal: two steps, so
    # wait for both (mailq may show the first before the log line is written).
    deadline = time.monotonic() + 15
    while not ("given up on" in mailq(net, tmp_path)
               and any("(SIZE)" in json.dumps(e) for e in errors(tmp_path))):
        assert time.monotonic() < deadline, (mailq(net, tmp_path), log_records(tmp_path))
        time.sleep(0.1)
    assert "too big" not in relay.log_text()


def test_a_message_well_under_the_limit_passes_as_with_the_image_alone(image_relay, net,
                                                                       tmp_path):
    relay = image_relay("juanluis", SIZE_ENV)
    msg = sized(96000)
    assert image_alone(net, relay, "app@example.com", [RCPT], msg)["ok"]
    delivered(relay)
    relay.capture.clear()
    r = relayshim(net, relay, ["-i", RCPT], msg, SIZE_ENV, tmp_path)
    assert r.returncode == 0, r.stderr
    assert delivered(relay)[0].data.endswith(msg)   # after the relay's Received


# ---- 4. ALLOW_EMPTY_SENDER_DOMAINS ----------------------------------------------------

NULL_MSG = b"From: MAILER-DAEMON@example.com\nTo: " + RCPT.encode() + b"\nSubject: bounce\n\nx\n"


def test_allow_empty_sender_domains_does_not_send_the_null_sender_to_boky(image_relay, net,
                                                                          tmp_path):
    env = {"ALLOWED_SENDER_DOMAINS": "example.com", "ALLOW_EMPTY_SENDER_DOMAINS": "true"}
    relay = image_relay("boky", env)
    alone = image_alone(net, relay, "", [RCPT], NULL_MSG)
    assert not alone["ok"] and alone["code"] == 554, alone
    assert "Access denied" in alone["text"]
    connects = relay.log_text().count("connect from")

    r = relayshim(net, relay, ["-i", "-f", "<>", RCPT], NULL_MSG, env, tmp_path)
    assert r.returncode == 77, (r.returncode, r.stderr)
    assert b"null sender" in r.stderr and b"allow_null_sender" in r.stderr
    assert relay.log_text().count("connect from") == connects


def test_null_sender_goes_through_when_boky_has_no_list(image_relay, net, tmp_path):
    env = {"ALLOW_EMPTY_SENDER_DOMAINS": "true"}
    relay = image_relay("boky", env)
    assert image_alone(net, relay, "", [RCPT], NULL_MSG)["ok"]
    assert delivered(relay)[0].mail_from == ""
    relay.capture.clear()
    r = relayshim(net, relay, ["-i", "-f", "<>", RCPT], NULL_MSG, env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert delivered(relay)[0].mail_from == ""


# ---- 5. deferrals that are the relay's configuration --------------------------------

@pytest.mark.parametrize("case", ["mynetworks", "dns"])
def test_configuration_deferral_is_an_error_once_and_marked_in_mailq(image_relay, net,
                                                                     tmp_path, case):
    if case == "mynetworks":
        # juanluisbaptiste/postfix from an address outside its default networks.
        env = {"SERVER_HOSTNAME": "mail.example.com"}
        relay = image_relay("juanluis", env)
        rcpt, inside, reply = RCPT, False, "454 4.7.1"
    else:
        # boky/postfix without DNS: reject_unknown_recipient_domain defers.
        env = {"ALLOWED_SENDER_DOMAINS": "example.com"}
        relay = image_relay("boky", env)
        rcpt, inside, reply = "ops@example.net", True, "450 4.1.2"
    msg = b"From: app@example.com\nTo: %s\nSubject: deferred\n\nx\n" % rcpt.encode()
    alone = image_alone(net, relay, "app@example.com", [rcpt], msg, inside=inside)
    assert not alone["ok"] and str(alone["code"]) == reply[:3], alone

    r = relayshim(net, relay, ["-i", rcpt], msg, dict(env, RELAYSHIM_RETRY_BASE="3600"),
                  tmp_path, inside=inside, queue="fallback")
    assert r.returncode == 0, r.stderr
    errs = errors(tmp_path)
    assert len(errs) == 1, log_records(tmp_path)
    text = json.dumps(errs[0])
    assert reply in text and case in text, text
    q = mailq(net, tmp_path)
    assert "!relay-config:%s" % case in q, q

    # A retry that meets the same refusal is not a new error.
    host = net.outside_host if not inside else net.inside_host
    r = relayshim_cmd(net, ["-q"], tmp_path,
                      {"RELAYSHIM_RELAY": "%s:%d" % (host, relay.plain_port)})
    assert r.returncode != 0
    assert len(errors(tmp_path)) == 1, log_records(tmp_path)
    assert "!relay-config:%s" % case in mailq(net, tmp_path)


# ---- 6. --relay-check --------------------------------------------------------------------

def relay_check(net, relay, env, tmp_path, args=(), inside=True):
    host = net.inside_host if inside else net.outside_host
    return relayshim_cmd(net, ["--relay-check"] + list(args), tmp_path,
                         dict(env, RELAYSHIM_RELAY="%s:%d" % (host, relay.plain_port)))


def verdict(r):
    lines = [l for l in r.stdout.decode().splitlines() if "policy:" in l]
    assert len(lines) == 1, r.stdout
    return lines[0].strip()


def test_relay_check_accepts_the_effective_sender(image_relay, net, tmp_path):
    env = {"SERVER_HOSTNAME": "mail.example.com"}
    relay = image_relay("juanluis", env)
    r = relay_check(net, relay, env, tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    # Default recipient: the effective sender itself (root, qualified like mail).
    assert verdict(r) == ("policy: OK: the relay would take mail from <root@example.com> "
                          "to <root@example.com> (nothing sent)")
    assert relay.capture.messages() == []


def test_relay_check_names_relay_access_denied(image_relay, net, tmp_path):
    env = {"SERVER_HOSTNAME": "mail.example.com"}
    relay = image_relay("juanluis", env)
    r = relay_check(net, relay, env, tmp_path, inside=False)
    assert r.returncode == 69, (r.stdout, r.stderr)
    v = verdict(r)
    assert "relay access denied" in v and "454 4.7.1" in v and "mynetworks" in v, v
    err = r.stderr.decode().strip()
    assert "\n" not in err and "relay access denied" in err


def test_relay_check_names_a_refused_sender(image_relay, net, tmp_path):
    # The relay's list says example.com; the app's env (not shared) has its own domain.
    relay = image_relay("boky", {"ALLOWED_SENDER_DOMAINS": "example.com"})
    env = {"RELAYSHIM_DOMAIN": "other.example.org"}
    r = relay_check(net, relay, env, tmp_path, [RCPT])
    assert r.returncode == 77, (r.stdout, r.stderr)
    v = verdict(r)
    assert "sender rejected" in v and "ALLOWED_SENDER_DOMAINS" in v and "554 5.7.1" in v, v


def test_relay_check_names_a_size_refusal(image_relay, net, tmp_path):
    relay = image_relay("juanluis", SIZE_ENV)
    env = {"SERVER_HOSTNAME": "mail.example.com", "MESSAGE_SIZE_LIMIT": "10M"}
    r = relay_check(net, relay, env, tmp_path)
    assert r.returncode == 65, (r.stdout, r.stderr)
    assert "size refused" in verdict(r) and "MESSAGE_SIZE_LIMIT" in verdict(r)


def test_relay_check_names_a_domain_the_relay_cannot_resolve(image_relay, net, tmp_path):
    # boky/postfix checks the recipient's domain in DNS; the test machine has none.
    env = {"ALLOWED_SENDER_DOMAINS": "example.com"}
    relay = image_relay("boky", env)
    r = relay_check(net, relay, env, tmp_path)
    assert r.returncode == 68, (r.stdout, r.stderr)
    v = verdict(r)
    assert "domain not found" in v and "450 4.1.2 <root@example.com>" in v and "DNS" in v, v
