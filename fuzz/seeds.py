#!/usr/bin/python3
"""seeds.py - build the seed corpora in fuzz/corpus/<target>/ from the fixtures in tests/.

Messages come from the Python integration tests (bytes and str literals that look like
a message: a header line and a line break) and from the Check tests' string literals; SMTP
sessions from the -bs tests (the client side of each test function, concatenated); relay
replies from test_smtp.c and the fault server; configurations from conf/ and test_config.c.
Each target's option bytes are prefixed (see the target's manual comment). Run from the
top of the tree: /usr/bin/python3 fuzz/seeds.py. Re-running replaces the corpora; the
committed corpora were then minimised with each target's -merge=1 (see fuzz/README).
"""

import ast
import hashlib
import os
import re
import shutil
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(TOP, "fuzz", "corpus")
C_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
MAX_SEED = 64 * 1024


def c_unescape(s):
    """Decode a C string literal body (hex, octal and the usual escapes)."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        i += 1
        if i >= len(s):
            break
        e = s[i]
        simple = {"n": 10, "r": 13, "t": 9, "0": 0, "\\": 92, '"': 34, "'": 39, "a": 7, "b": 8,
                  "f": 12, "v": 11, "?": 63}
        if e == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", s[i + 1:])
            out.append(int(m.group(0), 16) if m else 0)
            i += 1 + (len(m.group(0)) if m else 0)
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", s[i:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += len(m.group(0))
        else:
            out.append(simple.get(e, ord(e) & 0xFF))
            i += 1
    return bytes(out)


def c_literals(path):
    """String literals of a C file; adjacent literals are joined like the compiler does."""
    text = open(path, encoding="utf-8", errors="replace").read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for stmt in re.split(r"[;{}]", text):
        parts = [c_unescape(m.group(1)) for m in C_STRING.finditer(stmt)]
        out.extend(p for p in parts if p)
        joined = b"".join(parts)
        if len(parts) > 1 and joined:
            out.append(joined)
    return out


def py_literals(path):
    """bytes and str constants of a Python file."""
    try:
        tree = ast.parse(open(path, encoding="utf-8").read())
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, str):
                v = v.encode("utf-8", "surrogateescape")
            if isinstance(v, bytes) and v:
                out.append(v)
    return out


def looks_like_message(b):
    return b"\n" in b and re.search(rb"^[!-9;-~]+:", b, re.M) is not None


def looks_like_session(b):
    return re.search(rb"(?i)^(ehlo|helo|mail from|rcpt to|data)", b, re.M) is not None


def write(target, prefixes, seeds):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    n = 0
    for s in seeds:
        for p in prefixes:
            data = (p + s)[:MAX_SEED]
            name = hashlib.sha1(data).hexdigest()
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            n += 1
    print(f"{target}: {len(os.listdir(d))} seeds")


def main():
    t = lambda *p: os.path.join(TOP, "tests", *p)
    py = []
    for name in sorted(os.listdir(t("integration"))):
        if name.endswith(".py"):
            py.extend(py_literals(t("integration", name)))
    messages = [b for b in py if looks_like_message(b)]
    for name in ("test_input.c", "test_header.c", "test_rewrite.c", "test_smtpd.c"):
        messages.extend(b for b in c_literals(t("unit", name)) if looks_like_message(b))
    messages = sorted(set(messages))

    sessions = [b for b in py if looks_like_session(b)]
    sessions += [b for b in c_literals(t("unit", "test_smtpd.c")) if looks_like_session(b)]
    sessions.append(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
                    b"Subject: s\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n")
    sessions.append(b"EHLO x\r\nMAIL FROM:<a@b> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<c@d> "
                    b"NOTIFY=SUCCESS ORCPT=rfc822;c@d\r\nDATA\r\nA: b\n\nx\n.\n\r.\r\nQUIT\r\n")
    sessions = sorted(set(sessions))

    addresses = c_literals(t("unit", "test_address.c"))
    addresses += [b for b in c_literals(t("unit", "test_rewrite.c")) if b"@" in b and len(b) < 300]
    addresses = sorted(set(addresses))

    replies = [b for b in c_literals(t("unit", "test_smtp.c")) if re.match(rb"[2-5]\d\d", b)]
    replies += [b for b in py_literals(t("harness", "faultsrv.py")) if re.match(rb"[2-5]\d\d", b)]
    replies.append(b"220 relay ESMTP\r\n250-relay\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                   b"250-STARTTLS\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n250-AUTH=PLAIN\r\n"
                   b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n")
    replies = sorted(set(replies))

    configs = [open(os.path.join(TOP, "conf", "relayshim.conf"), "rb").read()]
    configs += [b for b in c_literals(t("unit", "test_config.c")) if b"[" in b or b"=" in b]
    configs = sorted(set(configs))

    write("fuzz_input", [b"\x00", b"\x01", b"\x02"], messages)
    write("fuzz_header", [b"\x00", b"\x05\x03\x00\x02\x04\x01\x05\x02\x03\x08\x01\x00\x04\x00\x02"],
          [m.split(b"\r\n\r\n")[0].split(b"\n\n")[0] + b"\r\n" for m in messages])
    write("fuzz_rewrite", [b"\x00\x00", b"\x81\xff", b"\x01\x0e", b"\xe5\x5a"], messages)
    write("fuzz_address", [b""], addresses)
    write("fuzz_smtp_reply", [b"\x00", b"\x03"], replies)
    write("fuzz_smtpd", [b"\x01", b"\x22", b"\x06"], sessions)
    write("fuzz_config", [b""], configs)
    argvs = [b"-t\0-i", b"-f\0a@example.com\0-F\0Full Name\0--\0x@example.org",
             b"-bs", b"-oi\0-odi\0-f<>\0root", b"mailq", b"-qRexample.com\0-v",
             b"-N\0success,failure\0-R\0hdrs\0-V\0id1\0-r\0<a@b>\0c@d,e@f",
             b"-tif\0a@b", b"--config-check\0-C\0/etc/relayshim.conf", b"-bv\0root",
             b"-B\x008BITMIME\0-L\0tag\0-h\x0017\0-O\0x=y\0-e\0q\0-G\0-U\0a@b"]
    write("fuzz_cmdline", [b""], argvs)


if __name__ == "__main__":
    sys.exit(main())
