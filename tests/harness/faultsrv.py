"""faultsrv - a scriptable, fault-injecting SMTP server for the tests.

SYNOPSIS
    from harness.faultsrv import FaultServer
    with FaultServer({"rcpt": ["250 ok", "550 5.1.1 no such user"]}) as srv:
        ... connect a client to srv.host, srv.port ...
        srv.wait_for(1)                      # accepted messages
        srv.connections[0].reads             # bytes of every recv(), in order

    with FaultServer([{"greeting": "421 4.3.2 busy"}, {}]) as srv:
        ... first connection gets 421, every later one the default script ...

    PYTHONPATH=tests /usr/bin/python3 -m harness.faultsrv --script s.json [--port N]
        [--host ::1] [--pki DIR] [--log out.json]
    prints "PORT=<n>" when listening, runs until SIGINT/SIGTERM, then writes the
    connection log as JSON (to --log, or stdout).

DESCRIPTION
    A threaded server (one thread per connection) on loopback. Each connection
    follows a script: a dict, or a list of dicts for successive connections
    (the i-th connection gets the i-th script, the last one repeats).

    Stages: connect, greeting, ehlo, helo, starttls, auth, mail, rcpt, data,
    eod (the reply after the final dot), rset, noop, vrfy, quit, unknown.

    Script keys (all optional):
      <stage>: reply      replaces the default reply of that stage. A reply is
                          a string (lines separated by "\\n" make a multi-line
                          reply, CRLF is added), or a dict {"reply": str,
                          "delay": s, "trickle": s, "drop": "before"|"after"}.
                          A list of replies: the i-th occurrence of the stage on
                          the connection gets the i-th, the last one repeats
                          (so "rcpt": [a, b] answers the first RCPT with a and
                          every later one with b; counted per connection).
      greeting: None      the greeting never comes: the server only records
                          what the client sends, and never answers.
      capabilities: [..]  EHLO keywords after the host line. Default:
                          PIPELINING, SIZE 52428800, 8BITMIME, SMTPUTF8, DSN,
                          ENHANCEDSTATUSCODES. "AUTH <mechs>" and "STARTTLS"
                          are appended when auth / tls=starttls are scripted
                          and the list does not name them.
      capabilities_after_tls: [..]   after STARTTLS (default: the same minus
                          STARTTLS).
      delay: {stage: s}   sleep before that stage's reply (every occurrence).
      trickle: s | {stage: s}  send replies one byte at a time, s apart.
      drop: {stage: "before"|"after"}  close the connection instead of / right
                          after replying. drop {"connect": ...} closes at once.
      drop_data_after: n  close the connection once n bytes of message data
                          (after the 354) have arrived.
      tls: "starttls" | "implicit"   cert: "valid" | "expired" | "wrong_name"
                          | "self_signed" (from pki=, default PKI.shared());
                          tls_client_ca: true to request and verify a client
                          certificate (mutual TLS).
      starttls_garbage: str|bytes    after "220" to STARTTLS, send these bytes
                          instead of a TLS handshake, then close.
      auth_reply: reply   the reply to AUTH (whatever the credentials), since
                          "auth" itself is the AUTH configuration.
      auth: {"mechanisms": ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"],
             "users": {"name": "password"}   (absent: accept any credentials),
             "xoauth2": {"user": "...", "token": "..."}}
                          PLAIN, LOGIN and XOAUTH2 accept an initial response or
                          ask with 334; a failed XOAUTH2 gets Gmail's 334 JSON
                          challenge, then 535 after the client's empty line.
                          CRAM-MD5 checks the digest against "users". Other
                          advertised mechanisms are refused with 504.
      size_limit: n       enforce SIZE: MAIL SIZE= and the data length (552).
      hostname: str       the name in greeting and EHLO (default fault.test).

    Records, per connection (srv.connections[i], a Connection): reads (bytes
    of each recv, TLS payload after the handshake; tls_read_index says where
    TLS began), commands (str lines), auth (dicts: mechanism, payloads, user,
    secret, ok), messages (Message: mail_from, mail_options, rcpt_tos,
    rcpt_options, data (dot-unstuffed, CRLF kept, without the final dot
    line), raw_data (as on the wire), accepted), tls, tls_error,
    client_cert_subject, plaintext_after_starttls, closed_by ("client",
    "server", "stop"). srv.connection_count counts accepted connections;
    srv.errors lists tracebacks of harness bugs (empty in a good run).

    FaultServer(scripts=None, host="127.0.0.1", port=0, pki=None,
    hostname="fault.test"): host may be a list ("127.0.0.1", "::1": one port
    on both). srv.messages() accepted messages; srv.wait_for(n, timeout=10)
    waits for n of them and returns all; srv.wait_for_connections(n) waits
    until n connections came and all are closed; srv.clear(); srv.log() the
    connection log as JSON-compatible data.

    Without a scripted reply the server answers like a plain Postfix: 503 for
    RCPT before MAIL, 554 for DATA without an accepted recipient, 502 for an
    unknown verb; a 421 reply is followed by closing the connection.

DIAGNOSTICS
    stop() joins every thread; a thread that does not finish within 5 s
    raises RuntimeError (the test, not a later one, must fail).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, asdict

STAGES = ("connect", "greeting", "ehlo", "helo", "starttls", "auth", "mail", "rcpt",
          "data", "eod", "rset", "noop", "vrfy", "quit", "unknown")

DEFAULT_CAPABILITIES = ["PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "DSN",
                        "ENHANCEDSTATUSCODES"]

# A command line longer than this is answered with 500 and dropped; far above
# RFC 5321's 512 so that clients are never cut short by the harness itself.
MAX_LINE = 1 << 20


class Drop(Exception):
    """The script (or the client) ended the connection."""


@dataclass
class Message:
    """One DATA transaction as the server saw it."""

    mail_from: str
    mail_options: list
    rcpt_tos: list
    rcpt_options: list
    data: bytes = b""
    raw_data: bytes = b""
    accepted: bool = False
    connection: int = 0
    tls: bool = False
    auth_user: str = None
    helo: str = None

    def as_json(self):
        d = asdict(self)
        d["data"] = self.data.decode("utf-8", "surrogateescape")
        d["raw_data"] = self.raw_data.decode("utf-8", "surrogateescape")
        return d


@dataclass
class Connection:
    """Everything recorded about one client connection."""

    index: int
    peer: tuple
    reads: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    auth: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    tls: bool = False
    tls_read_index: int = None
    tls_error: str = None
    client_cert_subject: str = None
    plaintext_after_starttls: bytes = b""
    closed_by: str = None

    def as_json(self):
        return {
            "index": self.index, "peer": list(self.peer),
            "reads": [r.decode("utf-8", "surrogateescape") for r in self.reads],
            "commands": self.commands,
            "auth": [{k: (v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v)
                      for k, v in a.items() if k != "payloads"} for a in self.auth],
            "messages": [m.as_json() for m in self.messages],
            "tls": self.tls, "tls_error": self.tls_error,
            "client_cert_subject": self.client_cert_subject,
            "closed_by": self.closed_by,
        }


def _reply_bytes(text):
    """CRLF-terminated bytes of a reply given with "\\n" between lines."""
    if isinstance(text, bytes):
        return text
    lines = text.replace("\r\n", "\n").split("\n")
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


def _reply_code(text):
    m = re.match(rb"(\d{3})", _reply_bytes(text).splitlines()[-1] if text else b"")
    return int(m.group(1)) if m else 0


def _parse_path(arg):
    """Split 'FROM:<a@b> PARAM=x' into ('a@b', ['PARAM=x']); case of params kept."""
    arg = arg.lstrip()
    if arg.startswith("<"):
        end = arg.find(">")
        if end < 0:
            return None, []
        return arg[1:end], arg[end + 1:].split()
    parts = arg.split()
    if not parts:
        return None, []
    return parts[0], parts[1:]


class _Session:
    """The state machine of one connection, run in its own thread."""

    def __init__(self, server, sock, conn, script):
        self.srv = server
        self.sock = sock
        self.conn = conn
        self.script = script
        self.buf = b""
        self.occurrences = {}
        self.helo = None
        self.auth_user = None
        self.txn = None
        self.rcpt_index = 0

    # ---- I/O -----------------------------------------------------------

    def _recv(self):
        try:
            data = self.sock.recv(65536)
        except (OSError, ValueError) as e:
            if self.srv.stopping.is_set():
                self.conn.closed_by = "stop"
            raise Drop(str(e))
        if not data:
            if self.conn.closed_by is None:
                self.conn.closed_by = "stop" if self.srv.stopping.is_set() else "client"
            raise Drop("eof")
        self.conn.reads.append(data)
        return data

    def _readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > MAX_LINE:
                self.buf = b""
                self._send(b"500 5.5.2 Line too long\r\n", 0)
                continue
            self.buf += self._recv()

    def _send(self, data, trickle):
        try:
            if trickle:
                for i in range(len(data)):
                    self.sock.sendall(data[i:i + 1])
                    if self.srv.stopping.wait(trickle):
                        raise Drop("stop")
            else:
                self.sock.sendall(data)
        except (OSError, ValueError) as e:
            raise Drop(str(e))

    def _close(self, who):
        if self.conn.closed_by is None:
            self.conn.closed_by = who
        raise Drop(who)

    # ---- scripted replies ---------------------------------------------

    def _spec(self, stage):
        """The reply spec for this occurrence of stage (a dict), or None."""
        n = self.occurrences.get(stage, 0)
        self.occurrences[stage] = n + 1
        # "auth" names the AUTH configuration, so its reply is "auth_reply".
        spec = self.script.get("auth_reply" if stage == "auth" else stage)
        if isinstance(spec, list):
            spec = spec[min(n, len(spec) - 1)] if spec else None
        if spec is None:
            return {}
        if isinstance(spec, (str, bytes)):
            return {"reply": spec}
        return dict(spec)

    def reply(self, stage, default):
        """Send the scripted (or default) reply for stage; return its code."""
        spec = self._spec(stage)
        text = spec.get("reply", default)
        delay = spec.get("delay", self.script.get("delay", {}).get(stage, 0))
        trickle = spec.get("trickle")
        if trickle is None:
            t = self.script.get("trickle", 0)
            trickle = t.get(stage, 0) if isinstance(t, dict) else t
        drop = spec.get("drop", self.script.get("drop", {}).get(stage))
        if drop == "before":
            self._close("server")
        if delay and self.srv.stopping.wait(delay):
            self._close("stop")
        self._send(_reply_bytes(text), trickle)
        code = _reply_code(text)
        # 421 means the server closes the channel (RFC 5321 3.8).
        if drop == "after" or code == 421:
            self._close("server")
        return code

    def capabilities(self):
        key = "capabilities_after_tls" if self.conn.tls else "capabilities"
        caps = self.script.get(key)
        if caps is None:
            caps = list(self.script.get("capabilities", DEFAULT_CAPABILITIES))
            if self.conn.tls:
                caps = [c for c in caps if c.upper() != "STARTTLS"]
        caps = list(caps)
        names = [c.split()[0].upper() for c in caps if c.split()]
        auth = self.script.get("auth")
        if auth is not None and "AUTH" not in names:
            caps.append("AUTH " + " ".join(auth.get("mechanisms", ["PLAIN", "LOGIN"])))
        if (self.script.get("tls") == "starttls" and not self.conn.tls
                and "STARTTLS" not in names and key == "capabilities"):
            caps.append("STARTTLS")
        return caps

    def offered_mechanisms(self):
        for c in self.capabilities():
            words = c.split()
            if words and words[0].upper() == "AUTH":
                return [w.upper() for w in words[1:]]
        return []

    def size_limit(self):
        if "size_limit" in self.script:
            return self.script["size_limit"]
        return None

    # ---- the session --------------------------------------------------

    def run(self):
        host = self.script.get("hostname", self.srv.hostname)
        self.hostname = host
        self.reply_connect()
        if self.script.get("tls") == "implicit":
            self.start_tls()
        if "greeting" in self.script and self.script["greeting"] is None:
            while True:
                self._recv()
        self.reply("greeting", "220 %s ESMTP relayshim test server" % host)
        while True:
            line = self._readline()
            self.command(line)

    def reply_connect(self):
        drop = self.script.get("drop", {}).get("connect")
        delay = self.script.get("delay", {}).get("connect", 0)
        if delay and self.srv.stopping.wait(delay):
            self._close("stop")
        if drop:
            self._close("server")

    def command(self, raw):
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        self.conn.commands.append(line)
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        handler = getattr(self, "cmd_" + verb, None)
        if handler is None:
            self.reply("unknown", "502 5.5.2 Error: command not recognized")
            return
        handler(arg)

    def cmd_EHLO(self, arg):
        lines = [self.hostname] + self.capabilities()
        text = "\n".join(("250-" if i < len(lines) - 1 else "250 ") + l
                         for i, l in enumerate(lines))
        if self.reply("ehlo", text) // 100 == 2:
            self.helo = arg
            self.txn = None

    def cmd_HELO(self, arg):
        if self.reply("helo", "250 " + self.hostname) // 100 == 2:
            self.helo = arg
            self.txn = None

    def cmd_NOOP(self, arg):
        self.reply("noop", "250 2.0.0 Ok")

    def cmd_VRFY(self, arg):
        self.reply("vrfy", "252 2.0.0 Cannot VRFY user")

    def cmd_RSET(self, arg):
        if self.reply("rset", "250 2.0.0 Ok") // 100 == 2:
            self.txn = None

    def cmd_QUIT(self, arg):
        self.reply("quit", "221 2.0.0 Bye")
        self._close("server")

    def cmd_STARTTLS(self, arg):
        if self.conn.tls or "STARTTLS" not in [c.upper() for c in self.capabilities()]:
            default = "454 4.7.0 TLS not available"
        else:
            default = "220 2.0.0 Ready to start TLS"
        if self.reply("starttls", default) != 220:
            return
        # Bytes the client sent after STARTTLS before the handshake are a
        # STARTTLS injection hazard (CVE-2011-0411 class): record, then discard.
        self.conn.plaintext_after_starttls = self.buf
        self.buf = b""
        garbage = self.script.get("starttls_garbage")
        if garbage is not None:
            if isinstance(garbage, str):
                garbage = garbage.encode("latin-1")
            self._send(garbage, 0)
            self._close("server")
        self.start_tls()
        self.helo = None
        self.auth_user = None
        self.txn = None

    def start_tls(self):
        ctx = self.srv.tls_context(self.script)
        try:
            self.sock.settimeout(10)
            tls = ctx.wrap_socket(self.sock, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError, ValueError) as e:
            self.conn.tls_error = str(e)
            self._close("client" if not self.srv.stopping.is_set() else "stop")
        self.sock = tls
        self.srv.replace_socket(self.conn, tls)
        self.conn.tls = True
        self.conn.tls_read_index = len(self.conn.reads)
        peer = tls.getpeercert()
        if peer:
            for rdn in peer.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        self.conn.client_cert_subject = v

    # ---- AUTH ---------------------------------------------------------

    def _auth_line(self, challenge):
        """Send a 334 challenge (bytes, base64-encoded here) and read the answer."""
        self._send(b"334 " + base64.b64encode(challenge) + b"\r\n", 0)
        answer = self._readline().rstrip(b"\r\n")
        self.conn.commands.append(answer.decode("utf-8", "surrogateescape"))
        return answer

    def cmd_AUTH(self, arg):
        words = arg.split()
        cfg = self.script.get("auth")
        if cfg is None or not words:
            self.reply("auth", "503 5.5.1 Error: authentication not enabled"
                       if cfg is None else "501 5.5.4 Syntax: AUTH mechanism")
            return
        if self.auth_user is not None:
            self.reply("auth", "503 5.5.1 Error: already authenticated")
            return
        mech = words[0].upper()
        initial = words[1] if len(words) > 1 else None
        record = {"mechanism": mech, "payloads": [], "user": None, "secret": None,
                  "ok": False}
        self.conn.auth.append(record)
        if mech not in self.offered_mechanisms():
            self.reply("auth", "504 5.5.4 Unrecognized authentication type")
            return

        def answer(challenge=b""):
            if initial is not None and not record["payloads"]:
                data = initial.encode()
            else:
                data = self._auth_line(challenge)
            if data == b"*":
                raise _AuthAborted()
            if data == b"=":
                data = b""
            try:
                decoded = base64.b64decode(data, validate=True)
            except ValueError:
                raise _AuthAborted("501 5.5.2 Error: base64 decoding failed")
            record["payloads"].append(decoded)
            return decoded

        users = cfg.get("users")
        ok = False
        try:
            if mech == "PLAIN":
                parts = answer().split(b"\0")
                if len(parts) == 3:
                    record["user"], record["secret"] = (
                        parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace"))
                ok = len(parts) == 3 and self._check(users, record["user"], record["secret"])
            elif mech == "LOGIN":
                record["user"] = answer(b"Username:").decode("utf-8", "replace")
                initial = None
                record["secret"] = answer(b"Password:").decode("utf-8", "replace")
                ok = self._check(users, record["user"], record["secret"])
            elif mech == "CRAM-MD5":
                initial = None
                challenge = ("<%d.%d@%s>" % (os.getpid(), time.time_ns(), self.hostname)).encode()
                resp = answer(challenge).decode("utf-8", "replace")
                user, _, digest = resp.rpartition(" ")
                record["user"], record["secret"] = user, digest
                if users is None:
                    ok = True
                elif user in users:
                    want = hmac.new(users[user].encode(), challenge, hashlib.md5).hexdigest()
                    ok = hmac.compare_digest(want, digest.lower())
            elif mech == "XOAUTH2":
                payload = answer()
                m = re.fullmatch(rb"user=([^\x01]*)\x01auth=Bearer ([^\x01]*)\x01\x01", payload)
                if m:
                    record["user"] = m.group(1).decode("utf-8", "replace")
                    record["secret"] = m.group(2).decode("utf-8", "replace")
                want = cfg.get("xoauth2")
                ok = bool(m) and (want is None or (record["user"] == want.get("user", record["user"])
                                                   and record["secret"] == want.get("token")))
                if not ok:
                    # Gmail's behaviour: a JSON error as a 334 challenge; the
                    # client must answer with an empty line to get the 535.
                    err = json.dumps({"status": "401", "schemes": "Bearer",
                                      "scope": "https://mail.google.com/"}).encode()
                    initial = None
                    self._auth_line(err)
            else:
                # Advertised but not implemented here (e.g. SCRAM): refuse
                # clearly so a test sees why.
                self.reply("auth", "504 5.5.4 Mechanism not implemented by the test server")
                return
        except _AuthAborted as e:
            self.reply("auth", e.reply)
            return
        record["ok"] = ok
        if ok:
            code = self.reply("auth", "235 2.7.0 Authentication successful")
        else:
            code = self.reply("auth", "535 5.7.8 Error: authentication failed")
        if code == 235:
            self.auth_user = record["user"] or ""

    @staticmethod
    def _check(users, user, secret):
        if users is None:
            return True
        return user in users and users[user] == secret

    # ---- mail transaction ----------------------------------------------

    def cmd_MAIL(self, arg):
        if not arg.upper().startswith("FROM:"):
            self.reply("mail", "501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        addr, params = _parse_path(arg[5:])
        default = "250 2.1.0 Ok"
        limit = self.size_limit()
        if addr is None:
            default = "501 5.1.7 Bad sender address syntax"
        elif self.txn is not None:
            default = "503 5.5.1 Error: nested MAIL command"
        elif limit:
            for p in params:
                if p.upper().startswith("SIZE=") and p[5:].isdigit() and int(p[5:]) > limit:
                    default = "552 5.3.4 Message size exceeds fixed limit"
        if self.reply("mail", default) // 100 == 2:
            self.txn = Message(addr, params, [], [], connection=self.conn.index,
                               tls=self.conn.tls, auth_user=self.auth_user, helo=self.helo)

    def cmd_RCPT(self, arg):
        if not arg.upper().startswith("TO:"):
            self.reply("rcpt", "501 5.5.4 Syntax: RCPT TO:<address>")
            return
        addr, params = _parse_path(arg[3:])
        if self.txn is None:
            default = "503 5.5.1 Error: need MAIL command"
        elif not addr:
            default = "501 5.1.3 Bad recipient address syntax"
        else:
            default = "250 2.1.5 Ok"
        if self.reply("rcpt", default) // 100 == 2 and self.txn is not None:
            self.txn.rcpt_tos.append(addr)
            self.txn.rcpt_options.append(params)

    def cmd_DATA(self, arg):
        if self.txn is None:
            default = "503 5.5.1 Error: need RCPT command"
        elif not self.txn.rcpt_tos:
            default = "554 5.5.1 Error: no valid recipients"
        else:
            default = "354 End data with <CR><LF>.<CR><LF>"
        if self.reply("data", default) != 354:
            return
        txn = self.txn or Message(None, [], [], [], connection=self.conn.index)
        raw = self._read_data()
        txn.raw_data = raw
        txn.data = re.sub(rb"(\A|\r\n)\.", rb"\1", raw)
        self.conn.messages.append(txn)
        self.txn = None
        limit = self.size_limit()
        default = "250 2.0.0 Ok: queued as %d.%d" % (self.conn.index, len(self.conn.messages))
        if limit and len(txn.data) > limit:
            default = "552 5.3.4 Message size exceeds fixed limit"
        code = self.reply("eod", default)
        txn.accepted = code // 100 == 2
        if txn.accepted:
            self.srv.message_accepted(txn)

    def _read_data(self):
        """Read up to the terminating CRLF.CRLF; return the data before it."""
        drop_after = self.script.get("drop_data_after")
        # A virtual CRLF in front lets an empty message (".\r\n" right away)
        # match the same terminator as every other one.
        buf = bytearray(b"\r\n")
        buf += self.buf
        self.buf = b""
        start = 0
        while True:
            # Checked first: a client that wrote the whole message at once
            # must still lose the connection once n bytes are in.
            if drop_after is not None and len(buf) - 2 >= drop_after:
                self._close("server")
            i = buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                self.buf = bytes(buf[i + 5:])
                return bytes(buf[2:i + 2]) if i > 0 else b""
            start = max(0, len(buf) - 4)
            buf += self._recv()


class _AuthAborted(Exception):
    def __init__(self, reply="501 5.7.0 Authentication aborted"):
        super().__init__(reply)
        self.reply = reply


class FaultServer:
    """A scripted SMTP server on loopback; see the module comment."""

    def __init__(self, scripts=None, host="127.0.0.1", port=0, pki=None,
                 hostname="fault.test"):
        if scripts is None:
            scripts = [{}]
        elif isinstance(scripts, dict):
            scripts = [scripts]
        for s in scripts:
            unknown = set(s) - set(STAGES) - {"auth_reply",
                "capabilities", "capabilities_after_tls", "delay", "trickle", "drop",
                "drop_data_after", "tls", "cert", "tls_client_ca", "starttls_garbage",
                "auth", "size_limit", "hostname"}
            if unknown:
                raise ValueError("unknown script keys: %s" % sorted(unknown))
        self.scripts = list(scripts)
        self.hosts = [host] if isinstance(host, str) else list(host)
        self.host = self.hosts[0]
        self.port = port
        self.pki = pki
        self.hostname = hostname
        # Unexpected exceptions in connection threads: harness bugs, which
        # must not pass for client behaviour (the pytest fixture fails on them).
        self.errors = []
        self.connections = []
        self.stopping = threading.Event()
        self._lock = threading.Condition()
        self._accepted = []
        self._listeners = []
        self._threads = []
        self._socks = {}
        self._contexts = {}
        self._acceptor = None

    # ---- lifecycle ------------------------------------------------------

    def start(self):
        try:
            for h in self.hosts:
                fam = socket.AF_INET6 if ":" in h else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                self._listeners.append(s)
                s.bind((h, self.port))
                s.listen(64)
                self.port = s.getsockname()[1]
        except BaseException:
            for s in self._listeners:
                s.close()
            self._listeners = []
            raise
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultsrv-accept",
                                          daemon=True)
        self._acceptor.start()
        return self

    def stop(self):
        self.stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(5)
        for s in self._listeners:
            s.close()
        self._listeners = []
        with self._lock:
            socks = list(self._socks.values())
        for s in socks:
            try:
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass
        stuck = []
        for t in self._threads:
            t.join(5)
            if t.is_alive():
                stuck.append(t.name)
        if self._acceptor is not None and self._acceptor.is_alive():
            stuck.append(self._acceptor.name)
        if stuck:
            raise RuntimeError("fault server threads did not stop: %s" % stuck)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- results --------------------------------------------------------

    @property
    def connection_count(self):
        with self._lock:
            return len(self.connections)

    def messages(self):
        """Accepted messages (2xx after the final dot), in order of acceptance."""
        with self._lock:
            return list(self._accepted)

    def wait_for(self, n, timeout=10):
        """Wait until at least n messages were accepted; return them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._accepted) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("expected %d message(s), got %d within %ss"
                                         % (n, len(self._accepted), timeout))
                self._lock.wait(left)
            return list(self._accepted)

    def wait_for_connections(self, n, timeout=10):
        """Wait until n connections were accepted and all of them closed."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                done = (len(self.connections) >= n
                        and all(c.closed_by is not None for c in self.connections))
            if done:
                return list(self.connections)
            if time.monotonic() > deadline:
                raise AssertionError("expected %d finished connection(s), got %d"
                                     % (n, len(self.connections)))
            time.sleep(0.01)

    def clear(self):
        with self._lock:
            self._accepted.clear()

    def log(self):
        """The whole connection log as JSON-compatible data."""
        with self._lock:
            return [c.as_json() for c in self.connections]

    # ---- internals ------------------------------------------------------

    def message_accepted(self, msg):
        with self._lock:
            self._accepted.append(msg)
            self._lock.notify_all()

    def replace_socket(self, conn, sock):
        with self._lock:
            self._socks[conn.index] = sock

    def tls_context(self, script):
        kind = script.get("cert", "valid")
        client_ca = bool(script.get("tls_client_ca"))
        key = (kind, client_ca)
        if key not in self._contexts:
            if self.pki is None:
                from harness.pki import PKI
                self.pki = PKI.shared()
            cert = self.pki.cert(kind)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert.cert, cert.key)
            if client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.pki.ca_file)
            self._contexts[key] = ctx
        return self._contexts[key]

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                ready, _, _ = select.select(self._listeners, [], [], 0.05)
            except (OSError, ValueError):
                return
            for ls in ready:
                try:
                    sock, peer = ls.accept()
                except OSError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._lock:
                    index = len(self.connections)
                    conn = Connection(index, peer)
                    self.connections.append(conn)
                    self._socks[index] = sock
                script = self.scripts[min(index, len(self.scripts) - 1)]
                t = threading.Thread(target=self._serve, args=(sock, conn, script),
                                     name="faultsrv-conn-%d" % index, daemon=True)
                self._threads.append(t)
                t.start()

    def _serve(self, sock, conn, script):
        session = _Session(self, sock, conn, script)
        try:
            session.run()
        except Drop:
            pass
        except Exception:  # a harness bug must be visible
            conn.closed_by = conn.closed_by or "server"
            text = "connection %d: %s" % (conn.index, traceback.format_exc())
            self.errors.append(text)
            sys.stderr.write("faultsrv: harness error in " + text)
        finally:
            if conn.closed_by is None:
                conn.closed_by = "server"
            s = session.sock
            try:
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
            with self._lock:
                self._socks.pop(conn.index, None)


# main - the command-line entry point (see SYNOPSIS)
def main(argv=None):
    ap = argparse.ArgumentParser(prog="harness.faultsrv")
    ap.add_argument("--script", required=True, help="JSON file: a script or a list of scripts")
    ap.add_argument("--host", action="append", help="listen address (repeatable)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--pki", help="directory of an existing harness PKI")
    ap.add_argument("--log", help="write the connection log here as JSON")
    args = ap.parse_args(argv)
    with open(args.script) as f:
        scripts = json.load(f)
    from harness.pki import PKI
    pki = None
    if args.pki:
        pki = PKI(args.pki, False)
    elif any(s.get("tls") for s in (scripts if isinstance(scripts, list) else [scripts])):
        pki = PKI.create()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    srv = FaultServer(scripts, host=args.host or ["127.0.0.1"], port=args.port, pki=pki)
    try:
        with srv:
            print("PORT=%d" % srv.port, flush=True)
            if pki is not None:
                print("CA_FILE=%s" % pki.ca_file, flush=True)
            while not done.wait(0.2):
                pass
        out = json.dumps(srv.log(), indent=2)
        if args.log:
            with open(args.log, "w") as f:
                f.write(out)
        else:
            print(out)
    finally:
        if pki is not None:
            pki.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
