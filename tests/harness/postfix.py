"""postfix - a private Postfix relay on loopback, relaying everything to a capture sink.

SYNOPSIS
    from harness.postfix import PostfixRelay
    with PostfixRelay(pki) as relay:          # or relay.start() ... relay.stop()
        relay.plain_port        # no AUTH, relays for 127.0.0.0/8 and ::1
        relay.submission_port   # STARTTLS + SASL AUTH required (port 587 style)
        relay.smtps_port        # implicit TLS + SASL AUTH required (port 465 style)
        relay.ca_file, relay.tls_hostname ("relay.test"), relay.users {name: pw}
        relay.capture           # the CaptureSink (harness.capture) behind it
        relay.capture.wait_for(1)
        relay.log_text()        # Postfix's own log, for failure messages

    PostfixRelay(pki, users=None, message_size_limit=52428800,
                 extra_params={"smtpd_sender_restrictions": "..."},
                 extra_files={"sender_access": "bad.test REJECT\\n"},
                 allowed_sender_domains=["example.com"], plain_starttls=False,
                 spool_dir=None)

DESCRIPTION
    A complete private instance: its own config_directory, queue_directory
    and data_directory under /tmp/relayshim-test-postfix-*, started with
    `postfix -c DIR start` and stopped with `postfix -c DIR stop` (then any
    process left in the instance is killed). /etc/postfix and a system
    Postfix are never touched; only the meta files Debian ships there
    (postfix-files, postfix-script) are read, as for any instance.

    main.cf starts empty and is written with one `postconf -c DIR -e`,
    maillog_file first: without syslog, Postfix refuses to start unless
    maillog_file is set (and under maillog_file_prefixes). master.cf is
    written whole, with chroot off for every service.

    SASL: Cyrus with auxprop/sasldb; mechanisms PLAIN LOGIN CRAM-MD5
    DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256. Users are created in realm
    relay.test and smtpd_sasl_local_domain is relay.test, so clients log in
    with the plain name ("alice"); "alice@relay.test" works too.
    AUTH is offered only on the two TLS listeners, only after TLS
    (smtpd_tls_auth_only), and there mynetworks is not trusted: an
    unauthenticated client is refused at RCPT with 554.

    extra_params are added to main.cf last (so they win); "$config_directory"
    in them names this instance's config dir, where extra_files are written
    (use texthash: maps, which need no postmap). allowed_sender_domains mimics
    boky/postfix's ALLOWED_SENDER_DOMAINS: any other sender domain gets
    "554 5.7.1 ... Access denied" at RCPT.

    Like every Postfix since the SMTP smuggling fixes, cleanup replaces a
    stray CR or LF inside a line with a space (cleanup_replace_stray_cr_lf):
    to see lone CR bytes as a client sent them, use a FaultServer.

    The relay forwards all mail to [127.0.0.1]:<capture port> without TLS,
    with short queue timers, so a message normally reaches the capture sink
    within a fraction of a second.

DIAGNOSTICS
    start() raises RuntimeError with Postfix's log when Postfix does not come
    up or a listener does not answer within 10 s; nothing is left running.
"""

import atexit
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import TMP_PREFIX
from harness.capture import CaptureSink

DEFAULT_USERS = {"alice": "alice-secret-1", "bob": "bob-Secret:2"}
SASL_REALM = "relay.test"
MECHANISMS = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"

_MASTER_CF = """\
# Private relayshim test instance; chroot is off everywhere so that no
# copy of /etc files into the queue directory is needed.
{plain:<10} inet  n       -       n       -       -       smtpd
{sub:<10} inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{smtps:<10} inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def ipv6_loopback_usable():
    """True when ::1 can be bound (containers often run without IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_ports(n, ipv6):
    """n distinct TCP ports free on 127.0.0.1 (and ::1 when ipv6)."""
    ports, held = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if ipv6:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                held.append(s6)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s6.bind(("::1", port))
                except OSError:
                    continue
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def instance_pids(prefix="/tmp/" + TMP_PREFIX):
    """PIDs of every process whose MAIL_CONFIG lies under prefix (our instances)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        for var in env:
            if var.startswith(b"MAIL_CONFIG=" + prefix.encode()):
                found.append(int(name))
                break
    return found


class PostfixRelay:
    """One private Postfix instance plus its capture sink; see the module comment."""

    def __init__(self, pki, users=None, message_size_limit=52428800, extra_params=None,
                 extra_files=None, allowed_sender_domains=None, plain_starttls=False,
                 spool_dir=None):
        self.pki = pki
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.message_size_limit = message_size_limit
        self.extra_params = dict(extra_params or {})
        self.extra_files = dict(extra_files or {})
        self.allowed_sender_domains = allowed_sender_domains
        self.plain_starttls = plain_starttls
        self.spool_dir = spool_dir
        self.ca_file = pki.ca_file
        self.tls_hostname = pki.tls_hostname
        self.host = "127.0.0.1"
        self.ipv6 = ipv6_loopback_usable()
        self.dir = None
        self.capture = None
        self.plain_port = self.submission_port = self.smtps_port = None
        self.startup_seconds = None

    # ---- paths ------------------------------------------------------------

    @property
    def conf_dir(self):
        return os.path.join(self.dir, "conf")

    @property
    def log_file(self):
        return os.path.join(self.dir, "log", "postfix.log")

    def log_text(self):
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def queued(self, queues=("maildrop", "incoming", "active", "deferred", "hold")):
        """Queue IDs of messages Postfix still holds (empty once all were relayed)."""
        ids = []
        for q in queues:
            for _root, _dirs, files in os.walk(os.path.join(self.dir, "queue", q)):
                ids.extend(files)
        return ids

    def wait_idle(self, timeout=5):
        """Wait until nothing is queued, so a test does not see the last one's mail.

        Returns True when idle. Deferred mail would be retried to the sink
        later, so it counts as busy too.
        """
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def sendmail_config(self, listener="plain", user="alice", extra=""):
        """relayshim INI text (relayshim.conf(5) keys) aimed at one listener.

        listener: "plain" (tls = none), "submission" (tls = starttls) or
        "smtps" (tls = tls); the TLS ones verify against the test CA and log
        in as user. extra is appended verbatim (more sections or keys).
        """
        port = {"plain": self.plain_port, "submission": self.submission_port,
                "smtps": self.smtps_port}[listener]
        lines = ["[relay]", "host = %s:%d" % (self.host, port)]
        if listener == "plain":
            lines.append("tls = none")
        else:
            lines += ["tls = %s" % ("starttls" if listener == "submission" else "tls"),
                      "tls_ca_file = %s" % self.ca_file,
                      "username = %s" % user, "password = %s" % self.users[user]]
        return "\n".join(lines) + "\n" + extra

    # ---- lifecycle ----------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        """Start the sink and Postfix; return once every listener answers.

        The free ports are picked before Postfix binds them, so another
        process may take one in between: then start over with new ports.
        """
        t0 = time.monotonic()
        for attempt in range(3):
            try:
                self._start_once()
                break
            except _PortTaken:
                if attempt == 2:
                    raise RuntimeError("postfix could not bind its ports three times")
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start_once(self):
        self.dir = tempfile.mkdtemp(prefix=TMP_PREFIX + "postfix-")
        _live.add(self)
        try:
            os.chmod(self.dir, 0o755)
            # reap.sh treats an instance whose owner process is gone as a
            # leftover; a live owner's instance belongs to a running session.
            with open(os.path.join(self.dir, "owner.pid"), "w") as f:
                f.write("%d\n" % os.getpid())
            self.capture = CaptureSink(spool_dir=self.spool_dir).start()
            self._configure()
            proc = self._postfix("start", check=False)
            if proc.returncode != 0:
                text = proc.stderr.decode(errors="replace") + self.log_text()
                if "already in use" in text:
                    raise _PortTaken()
                raise RuntimeError("postfix start failed (exit %d): %s"
                                   % (proc.returncode, text))
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stop Postfix, kill leftovers, stop the sink, remove the directory."""
        _live.discard(self)
        if self.dir is None:
            return
        try:
            if os.path.exists(os.path.join(self.dir, "queue", "pid", "master.pid")):
                self._postfix("stop", check=False)
        finally:
            self._kill_leftovers()
            if self.capture is not None:
                self.capture.stop()
                self.capture = None
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ---- internals ------------------------------------------------------------

    def _postfix(self, action, check=True):
        proc = subprocess.run(["postfix", "-c", self.conf_dir, action],
                              capture_output=True, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError("postfix %s failed (exit %d): %s\n--- log:\n%s"
                               % (action, proc.returncode,
                                  proc.stderr.decode(errors="replace"), self.log_text()))
        return proc

    def _kill_leftovers(self):
        pids = instance_pids(self.dir)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists("/proc/%d" % p)
                    and not _is_zombie(p)]
            time.sleep(0.01)

    def _configure(self):
        d = self.dir
        for sub in ("conf", "queue", "data", "log", "conf/sasl"):
            os.mkdir(os.path.join(d, sub))
            os.chmod(os.path.join(d, sub), 0o755)
        uid = pwd.getpwnam("postfix").pw_uid
        gid = grp.getgrnam("postfix").gr_gid
        if os.geteuid() == 0:
            os.chown(os.path.join(d, "data"), uid, gid)
        self.plain_port, self.submission_port, self.smtps_port = free_ports(3, self.ipv6)

        conf = self.conf_dir
        open(os.path.join(conf, "main.cf"), "w").close()
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write(_MASTER_CF.format(plain=self.plain_port, sub=self.submission_port,
                                      smtps=self.smtps_port))
        for name, content in self.extra_files.items():
            with open(os.path.join(conf, name), "w") as f:
                f.write(content)

        # Debian's Postfix looks for smtpd.conf in $config_directory/sasl
        # whatever cyrus_sasl_config_path says; keep both pointing there.
        sasl = os.path.join(conf, "sasl")
        sasldb = os.path.join(sasl, "sasldb2")
        with open(os.path.join(sasl, "smtpd.conf"), "w") as f:
            f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                    "sasldb_path: %s\nmech_list: %s\n" % (sasldb, MECHANISMS))
        for user, password in self.users.items():
            subprocess.run(["saslpasswd2", "-f", sasldb, "-p", "-c", "-u", SASL_REALM, user],
                           input=password.encode(), check=True, capture_output=True)
        if os.path.exists(sasldb):
            if os.geteuid() == 0:
                os.chown(sasldb, 0, gid)
            os.chmod(sasldb, 0o640)

        restrictions = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
        params = [
            # First, or postfix check/start fail without a word (no syslog here).
            ("maillog_file", self.log_file),
            ("maillog_file_prefixes", d),
            ("compatibility_level", "3.6"),
            ("queue_directory", os.path.join(d, "queue")),
            ("data_directory", os.path.join(d, "data")),
            ("myhostname", "relay.test"),
            ("mydomain", "relay.test"),
            ("myorigin", "relay.test"),
            ("mydestination", ""),
            ("relay_domains", ""),
            ("local_recipient_maps", ""),
            ("local_transport", "error:local delivery is disabled"),
            ("alias_maps", ""),
            ("alias_database", ""),
            ("biff", "no"),
            ("inet_interfaces", "127.0.0.1, [::1]" if self.ipv6 else "127.0.0.1"),
            ("inet_protocols", "all" if self.ipv6 else "ipv4"),
            ("mynetworks", "127.0.0.0/8, [::1]/128" if self.ipv6 else "127.0.0.0/8"),
            ("smtpd_relay_restrictions", restrictions),
            ("relayhost", "[127.0.0.1]:%d" % self.capture.port),
            ("smtp_tls_security_level", "none"),
            ("smtp_dns_support_level", "disabled"),
            ("smtpd_peername_lookup", "no"),
            ("smtpd_error_sleep_time", "0"),
            ("in_flow_delay", "0"),
            ("queue_run_delay", "1s"),
            ("minimal_backoff_time", "1s"),
            ("maximal_backoff_time", "2s"),
            ("delay_warning_time", "0"),
            ("message_size_limit", str(self.message_size_limit)),
            ("smtputf8_enable", "yes"),
            ("smtpd_banner", "$myhostname ESMTP relayshim test relay"),
            ("smtpd_tls_cert_file", self.pki.server.cert),
            ("smtpd_tls_key_file", self.pki.server.key),
            ("smtpd_tls_security_level", "may" if self.plain_starttls else "none"),
            ("smtpd_tls_loglevel", "1"),
            ("smtpd_sasl_type", "cyrus"),
            ("cyrus_sasl_config_path", sasl),
            ("smtpd_sasl_path", "smtpd"),
            ("smtpd_sasl_local_domain", SASL_REALM),
            ("smtpd_sasl_auth_enable", "no"),
            ("smtpd_sasl_security_options", "noanonymous"),
            ("smtpd_sasl_tls_security_options", "noanonymous"),
        ]
        if self.allowed_sender_domains is not None:
            with open(os.path.join(conf, "allowed_senders"), "w") as f:
                for dom in self.allowed_sender_domains:
                    f.write("%s OK\n" % dom)
            params.append(("smtpd_recipient_restrictions",
                           "check_sender_access texthash:$config_directory/allowed_senders, "
                           "reject"))
        params.extend(self.extra_params.items())
        proc = subprocess.run(["postconf", "-c", conf, "-e"]
                              + ["%s=%s" % kv for kv in params], capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError("postconf failed: %s" % proc.stderr.decode(errors="replace"))
        # Postfix re-reads a configuration file, 300 ms apart, until its mtime
        # is more than a second old (it might still be being edited): backdate
        # ours, or every postfix command here waits about 2 s.
        past = time.time() - 60
        for name in os.listdir(conf):
            if os.path.isfile(os.path.join(conf, name)):
                os.utime(os.path.join(conf, name), (past, past))
        self._make_queue()

    def _make_queue(self):
        """Create the queue directories as post-install would, then skip its checks.

        `postfix start` otherwise runs post-install create-missing and
        postsuper (about 2.5 s, dozens of postconf runs); with the layout made
        here and queue/quick-start present it starts master at once, exactly as
        after `postfix quick-stop`.
        """
        q = os.path.join(self.dir, "queue")
        uid = pwd.getpwnam("postfix").pw_uid
        postdrop = grp.getgrnam("postdrop").gr_gid
        root = os.geteuid() == 0
        for sub in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                    "incoming", "private", "saved", "trace", "maildrop", "public", "pid"):
            path = os.path.join(q, sub)
            os.mkdir(path)
            mode, owner, group = 0o700, uid, -1
            if sub == "maildrop":
                mode, group = 0o730, postdrop
            elif sub == "public":
                mode, group = 0o710, postdrop
            elif sub == "pid":
                mode, owner = 0o755, -1
            if root:
                os.chown(path, owner, group)
            os.chmod(path, mode)
        open(os.path.join(q, "quick-start"), "w").close()

    def _wait_listening(self):
        """Return once every listener answers; TLS-on-connect ones accept a handshake."""
        deadline = time.monotonic() + 10
        pending = [self.plain_port, self.submission_port]
        while pending:
            port = pending[0]
            try:
                with socket.create_connection((self.host, port), timeout=1) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        pending.pop(0)
                        continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("postfix listener %d did not answer\n--- log:\n%s"
                                   % (port, self.log_text()))
            time.sleep(0.02)
        # The smtps port is spawned by the same master as the others; once
        # they answer it listens too (master binds every inet socket at start).
        with socket.create_connection((self.host, self.smtps_port), timeout=5):
            pass


class _PortTaken(Exception):
    """Postfix could not bind a port picked as free a moment earlier."""


# Instances this process started and has not stopped: stopped at exit even
# when a test run is interrupted before its fixtures' teardown.
_live = set()


@atexit.register
def _stop_all():
    for relay in list(_live):
        try:
            relay.stop()
        except Exception:
            pass


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
