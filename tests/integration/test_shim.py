"""test_shim - librelayshim.so: C conformance cases, and real clients through it.

The conformance cases (tests/shim/run.sh) run with a fake helper; they are
called from here so that `make check` runs them, natively, under helgrind and
with ThreadSanitizer.

The real clients speak SMTP to localhost:25, 127.0.0.1:25 or [::1]:25 with
LD_PRELOAD set and nothing listening there; the shim starts the real
`sendmail -bs`, which relays to the Postfix fixture; every message is
asserted at the capture sink behind Postfix.
"""

import os
import shutil
import subprocess
import uuid

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "shim", "librelayshim.so")
SENDMAIL = os.path.join(BUILD, "sendmail", "sendmail")
SENDER = "app@example.com"
RCPT = "someone@example.net"


def run_conformance(*args):
    env = dict(os.environ, BUILD=os.environ.get("BUILD", "build"))
    r = subprocess.run(["sh", os.path.join(TOP, "tests", "shim", "run.sh"), *args],
                       cwd=TOP, env=env, capture_output=True, text=True, timeout=600)
    return r


def test_conformance_cases_pass_under_ld_preload():
    r = run_conformance()
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout.splitlines()[-1], r.stdout


def test_spawning_cases_pass_with_the_posix_spawn_fallback():
    # RELAYSHIM_SPAWN=posix: the path taken when clone() is refused (seccomp).
    r = run_conformance("--posix-spawn")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="musl-tools not installed")
def test_conformance_cases_pass_with_musl():
    # Alpine images build the shim against musl: all cases, built with musl-gcc.
    r = run_conformance("--musl")
    assert r.returncode == 0, r.stdout + r.stderr


def test_conformance_cases_fail_without_the_shim():
    # Every case that needs the shim must fail without it; the "untouched"
    # cases (which check that the shim changes nothing) and the two that drive
    # the helper's accept step by hand pass either way.
    r = run_conformance("--no-shim")
    passes_alone = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("--")]
    assert sorted(passes_alone) == ["errno_untouched_on_failures", "helper_gives_up_when_abandoned",
                                    "helper_intercepts_nothing", "helper_serves_only_its_peer",
                                    "intercept_empty",
                                    "other_targets_untouched", "udp_untouched",
                                    "unix_untouched"], r.stdout


@pytest.mark.parametrize("spec", [
    "127.0.0.1:25 [::1]:25", "127.0.0.1:2525,[::1]:2525", "127.0.0.1", "[::1]", "::1",
    "[::ffff:127.0.0.1]:25", "", "localhost:25",
])
def test_every_intercept_form_is_valid_configuration(spec, tmp_path):
    # The helper inherits RELAYSHIM_INTERCEPT: a form the shim accepts but
    # sendmail's configuration rejects would make every helper exit 78.
    conf = tmp_path / "c.conf"
    conf.write_text("[relay]\nhost = 127.0.0.1:1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYSHIM_")}
    env.update(RELAYSHIM_CONFIG=str(conf), RELAYSHIM_INTERCEPT=spec)
    r = subprocess.run([SENDMAIL, "--config-check"], env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_library_exports_connect_only_and_loads_on_old_glibc():
    # A preloaded object whose symbol versions the C library lacks stops the
    # application from starting: nothing newer than glibc 2.17 may be needed.
    r = subprocess.run(["objdump", "-T", SHIM], capture_output=True, text=True, check=True)
    versions, exported = set(), []
    for line in r.stdout.splitlines():
        f = line.split()
        if "GLIBC_" in line:
            versions.add(line[line.index("GLIBC_") + 6:].split(")")[0].split()[0])
        if len(f) >= 7 and f[2] != "*UND*" and " DF " in line and f[3] == ".text":
            exported.append(f[-1])
    newest = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    assert tuple(int(x) for x in newest.split(".")) <= (2, 17), sorted(versions)
    assert exported == ["connect"], exported


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_threads_case_is_clean_under_helgrind():
    if "libasan" in preload():
        pytest.skip("valgrind cannot run an ASan build (make SAN=1)")
    r = run_conformance("--helgrind")
    assert r.returncode == 0, r.stdout + r.stderr


def test_threads_case_is_clean_under_thread_sanitizer():
    r = run_conformance("--tsan")
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------
# Real clients through the shim and the real sendmail -bs, to Postfix.


@pytest.fixture
def shim_env(relay, tmp_path):
    """Environment of an application container: the shim preloaded, nothing on :25."""
    conf = tmp_path / "relayshim.conf"
    conf.write_text("[relay]\nhost = 127.0.0.1:%d\n"
                    "[rewrite]\ndomain = example.com\n"
                    "[queue]\nmode = never\n"
                    "[log]\ntarget = none\n" % relay.plain_port)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYSHIM_") and k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=preload(), RELAYSHIM_SENDMAIL=SENDMAIL, RELAYSHIM_CONFIG=str(conf))
    if "libasan" in env["LD_PRELOAD"]:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def preload():
    """LD_PRELOAD value for the shim; an ASan build (make SAN=1) needs the runtime first."""
    ldd = subprocess.run(["ldd", SHIM], capture_output=True, text=True).stdout
    if "libasan" not in ldd:
        return SHIM
    cc = os.environ.get("CC", "cc")
    runtime = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    return runtime + ":" + SHIM


def token():
    return "shim-" + uuid.uuid4().hex[:12]


def delivered(relay, tok, n=1):
    """The captured message(s) carrying tok in their data."""
    msgs = relay.capture.wait_for(n, timeout=20)
    mine = [m for m in msgs if tok.encode() in m.data]
    assert len(mine) == n, [m.data[:200] for m in msgs]
    for m in mine:
        assert m.mail_from == SENDER
        assert m.rcpt_tos == [RCPT]
    return mine


def run(cmd, env, **kw):
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=60, **kw)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r


PY_SMTPLIB = r"""
import smtplib, sys
host, tok = sys.argv[1], sys.argv[2]
s = smtplib.SMTP(host, 25, timeout=20)
s.sendmail("%s", ["%s"], "Subject: %%s\r\n\r\nvia smtplib to %%s\r\n" %% (tok, host))
s.quit()
""" % (SENDER, RCPT)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_python_smtplib(relay, shim_env, host):
    tok = token()
    run(["/usr/bin/python3", "-c", PY_SMTPLIB, host, tok], shim_env)
    m = delivered(relay, tok)[0]
    assert b"Subject: " + tok.encode() in m.data


def test_python_smtplib_with_the_posix_spawn_fallback(relay, shim_env):
    # sendmail's side of RELAYSHIM_SHIM_ACCEPT=1: fork, report the pid, serve.
    tok = token()
    run(["/usr/bin/python3", "-c", PY_SMTPLIB, "127.0.0.1", tok],
        dict(shim_env, RELAYSHIM_SPAWN="posix"))
    delivered(relay, tok)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_connects_reuse_one_pair_of_clone_stacks(relay, shim_env, tmp_path):
    # Mapping the clone() stacks afresh per connect() cost page faults, and
    # unmapping them a TLB flush, in the application's connect() (the bench's
    # shim row). After the first session the pair is kept: five sessions, one
    # stack mapping, no unmapping.
    tok = token()
    code = r"""
import smtplib, sys
for i in range(5):
    s = smtplib.SMTP("127.0.0.1", 25, timeout=20)
    s.sendmail("%s", ["%s"], "Subject: %%s %%d\r\n\r\nbody\r\n" %% (sys.argv[1], i))
    s.quit()
""" % (SENDER, RCPT)
    trace = tmp_path / "trace"
    run(["strace", "-qq", "-e", "trace=mmap,munmap", "-o", str(trace),
         "/usr/bin/python3", "-c", code, tok], shim_env)
    delivered(relay, tok, n=5)
    calls = trace.read_text().splitlines()
    maps = [c for c in calls if "MAP_STACK" in c]
    assert len(maps) == 1, maps
    addr = maps[0].rsplit("= ", 1)[1].strip()
    assert not [c for c in calls if c.startswith("munmap(" + addr + ",")], calls


def test_python_smtplib_two_transactions_one_session(relay, shim_env):
    tok = token()
    code = r"""
import smtplib, sys
s = smtplib.SMTP("localhost", 25, timeout=20)
for i in range(2):
    s.sendmail("%s", ["%s"], "Subject: %%s %%d\r\n\r\nbody\r\n" %% (sys.argv[1], i))
s.quit()
""" % (SENDER, RCPT)
    run(["/usr/bin/python3", "-c", code, tok], shim_env)
    delivered(relay, tok, n=2)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_smtp_url(relay, shim_env, tmp_path):
    if "libasan" in shim_env["LD_PRELOAD"]:
        pytest.skip("curl deadlocks at start-up with libasan preloaded, shim or not")
    tok = token()
    msg = tmp_path / "msg.txt"
    # curl sends the file as it is: bare LF, no headers of its own.
    msg.write_bytes(b"Subject: " + tok.encode() + b"\n\nvia curl\n")
    run(["curl", "-sS", "--max-time", "30", "smtp://127.0.0.1:25", "--mail-from", SENDER,
         "--mail-rcpt", RCPT, "--upload-file", str(msg)], shim_env)
    m = delivered(relay, tok)[0]
    assert b"via curl\r\n" in m.data


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_pipeline(relay, shim_env):
    # swaks (IO::Socket::INET6) uses the re-connect idiom and does not fall back
    # from ::1 to 127.0.0.1; --pipeline sends MAIL/RCPT/DATA in one write.
    tok = token()
    run(["swaks", "--pipeline", "--server", "localhost", "--port", "25", "--from", SENDER,
         "--to", RCPT, "--header", "Subject: " + tok, "--body", "via swaks", "--timeout", "20"],
        shim_env)
    delivered(relay, tok)


def test_perl_net_smtp(relay, shim_env):
    tok = token()
    code = r"""
use Net::SMTP;
my $s = Net::SMTP->new("localhost", Port => 25, Timeout => 20) or die "connect: $@";
$s->mail('%s') or die "MAIL";
$s->to('%s') or die "RCPT";
$s->data() or die "DATA";
$s->datasend("Subject: $ARGV[0]\n\nvia Net::SMTP\n");
$s->dataend() or die "dot";
$s->quit;
""" % (SENDER, RCPT)
    run(["perl", "-e", code, tok], shim_env)
    delivered(relay, tok)


def skip_php_under_asan(env):
    if "libasan" in env["LD_PRELOAD"]:
        pytest.skip("PHP dlopen()s opcache with RTLD_DEEPBIND, which ASan refuses")


PHP_FSOCKOPEN = r"""
$tok = $argv[1];
$f = fsockopen("127.0.0.1", 25, $errno, $errstr, 20) or die("fsockopen: $errstr\n");
function reply($f, $want) {
    do { $l = fgets($f); if ($l === false) die("EOF waiting for $want\n"); } while ($l[3] == '-');
    if (substr($l, 0, 3) != $want) die("want $want, got $l");
}
reply($f, "220");
fwrite($f, "EHLO php\r\n"); reply($f, "250");
fwrite($f, "MAIL FROM:<%s>\r\n"); reply($f, "250");
fwrite($f, "RCPT TO:<%s>\r\n"); reply($f, "250");
fwrite($f, "DATA\r\n"); reply($f, "354");
fwrite($f, "Subject: $tok\r\n\r\nvia fsockopen\r\n.\r\n"); reply($f, "250");
fwrite($f, "QUIT\r\n"); reply($f, "221");
""" % (SENDER, RCPT)


@pytest.mark.skipif(shutil.which("php") is None, reason="php-cli not installed")
def test_php_fsockopen(relay, shim_env):
    skip_php_under_asan(shim_env)
    tok = token()
    run(["php", "-r", PHP_FSOCKOPEN, tok], shim_env)
    delivered(relay, tok)


PHP_SYMFONY = r"""
require "/usr/share/php/Symfony/Component/Mailer/autoload.php";
require "/usr/share/php/Symfony/Component/Mime/autoload.php";
use Symfony\Component\Mailer\Transport;
use Symfony\Component\Mailer\Mailer;
use Symfony\Component\Mime\Email;
$mailer = new Mailer(Transport::fromDsn("smtp://localhost:25"));
$mailer->send((new Email())->from("%s")->to("%s")->subject($argv[1])->text("via Symfony"));
""" % (SENDER, RCPT)


@pytest.mark.skipif(not os.path.exists("/usr/share/php/Symfony/Component/Mailer/autoload.php"),
                    reason="php-symfony-mailer not installed")
def test_php_symfony_mailer_smtp(relay, shim_env):
    skip_php_under_asan(shim_env)
    # Symfony Mailer's SMTP transport (the PHP stream client, ::1 first for localhost).
    tok = token()
    run(["php", "-r", PHP_SYMFONY, tok], shim_env)
    delivered(relay, tok)


NODE_NET = r"""
const net = require("net");
const tok = process.argv[1];
// Node >= 17 resolves localhost to ::1 first and does not fall back.
const s = net.connect({host: "localhost", port: 25, noDelay: true});
const steps = ["EHLO node\r\n", "MAIL FROM:<%s>\r\n", "RCPT TO:<%s>\r\n", "DATA\r\n",
               "Subject: " + tok + "\r\n\r\nvia node net\r\n.\r\n", "QUIT\r\n"];
let buf = "";
s.setEncoding("utf8");
s.on("data", d => {
  buf += d;
  let lines = buf.split("\r\n"); buf = lines.pop();
  for (const l of lines) {
    if (l[3] === "-") continue;
    if (!/^[23]/.test(l)) { console.error(l); process.exit(1); }
    const next = steps.shift();
    if (next) s.write(next); else s.end();
  }
});
s.on("error", e => { console.error(e.message); process.exit(1); });
""" % (SENDER, RCPT)


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_node_net_localhost(relay, shim_env):
    tok = token()
    run(["node", "-e", NODE_NET, tok], shim_env)
    delivered(relay, tok)


NODEMAILER = r"""
const nodemailer = require("nodemailer");
// Defaults as an application has them: localhost:25, pipelining, opportunistic
// STARTTLS (relayshim never offers it), and no QUIT wait after the last 250.
const t = nodemailer.createTransport({host: "localhost", port: 25, secure: false});
t.sendMail({from: "%s", to: "%s", subject: process.argv[1], text: "via nodemailer"})
  .then(() => process.exit(0), e => { console.error(e.message); process.exit(1); });
""" % (SENDER, RCPT)


@pytest.mark.skipif(not os.path.isdir("/usr/share/nodejs/nodemailer"),
                    reason="node-nodemailer not installed")
def test_nodemailer_smtp(relay, shim_env):
    tok = token()
    env = dict(shim_env, NODE_PATH="/usr/share/nodejs")
    run(["node", "-e", NODEMAILER, tok], env)
    delivered(relay, tok)


PHPMAILER = r"""
require "/usr/share/php/libphp-phpmailer/autoload.php";
$m = new PHPMailer\PHPMailer\PHPMailer(true);
$m->isSMTP();
$m->Host = "localhost";
$m->Port = 25;
$m->SMTPAutoTLS = true;
$m->setFrom("%s");
$m->addAddress("%s");
$m->Subject = $argv[1];
$m->Body = "via PHPMailer";
$m->send();
""" % (SENDER, RCPT)


@pytest.mark.skipif(not os.path.exists("/usr/share/php/libphp-phpmailer/autoload.php"),
                    reason="libphp-phpmailer not installed")
def test_phpmailer_smtp(relay, shim_env):
    skip_php_under_asan(shim_env)
    tok = token()
    run(["php", "-r", PHPMAILER, tok], shim_env)
    delivered(relay, tok)


JAVA_CLIENT = r"""
import java.io.*;
import java.net.*;
import java.nio.ByteBuffer;
import java.nio.channels.*;
import java.nio.charset.StandardCharsets;

public class ShimClient {
    // java.net.Socket: an AF_INET6 socket with ::ffff:127.0.0.1 for "127.0.0.1",
    // setTcpNoDelay after connect (a descriptor-swapping shim breaks both).
    static void plain(String tok) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", 25), 20000);
            s.setTcpNoDelay(true);
            s.setSoTimeout(20000);
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            Writer out = new OutputStreamWriter(s.getOutputStream(), StandardCharsets.US_ASCII);
            String[] steps = {null, "EHLO java\r\n", "MAIL FROM:<%s>\r\n", "RCPT TO:<%s>\r\n", "DATA\r\n",
                              "Subject: " + tok + " socket\r\n\r\nvia java.net.Socket\r\n.\r\n", "QUIT\r\n"};
            for (String step : steps) {
                if (step != null) { out.write(step); out.flush(); }
                String l;
                do { l = in.readLine(); if (l == null) throw new IOException("EOF"); } while (l.charAt(3) == '-');
                if (l.charAt(0) != '2' && l.charAt(0) != '3') throw new IOException(l);
            }
        }
    }

    // NIO, the way Netty/Vert.x do it: non-blocking, registered with a selector
    // before connect(), finishConnect() on OP_CONNECT.
    static void nio(String tok) throws IOException {
        Selector sel = Selector.open();
        SocketChannel ch = SocketChannel.open();
        ch.configureBlocking(false);
        SelectionKey key = ch.register(sel, SelectionKey.OP_CONNECT);
        ch.connect(new InetSocketAddress("localhost", 25));
        if (sel.select(20000) == 0 || !key.isConnectable() || !ch.finishConnect())
            throw new IOException("not connected");
        key.interestOps(SelectionKey.OP_READ);
        String[] steps = {"EHLO nio\r\n", "MAIL FROM:<%s>\r\n", "RCPT TO:<%s>\r\n", "DATA\r\n",
                          "Subject: " + tok + " nio\r\n\r\nvia NIO\r\n.\r\n", "QUIT\r\n", null};
        StringBuilder buf = new StringBuilder();
        ByteBuffer bb = ByteBuffer.allocate(4096);
        int step = 0;
        while (step < steps.length) {
            sel.selectedKeys().clear();
            if (sel.select(20000) == 0) throw new IOException("timeout");
            bb.clear();
            if (ch.read(bb) < 0) throw new IOException("EOF");
            buf.append(new String(bb.array(), 0, bb.position(), StandardCharsets.US_ASCII));
            int nl;
            while ((nl = buf.indexOf("\r\n")) >= 0) {
                String l = buf.substring(0, nl);
                buf.delete(0, nl + 2);
                if (l.charAt(3) == '-') continue;
                if (l.charAt(0) != '2' && l.charAt(0) != '3') throw new IOException(l);
                String next = steps[step++];
                if (next == null) break;
                ch.write(ByteBuffer.wrap(next.getBytes(StandardCharsets.US_ASCII)));
            }
        }
        ch.close();
    }

    public static void main(String[] a) throws IOException {
        plain(a[0]);
        nio(a[0]);
    }
}
""" % (SENDER, RCPT, SENDER, RCPT)


@pytest.mark.skipif(shutil.which("java") is None, reason="java not installed")
def test_java_socket_and_nio(relay, shim_env, tmp_path):
    if "libasan" in shim_env["LD_PRELOAD"]:
        pytest.skip("the JVM does not start with libasan preloaded")
    tok = token()
    src = tmp_path / "ShimClient.java"
    src.write_text(JAVA_CLIENT)
    run(["java", str(src), tok], shim_env, cwd=str(tmp_path))
    mine = delivered(relay, tok, n=2)
    assert sorted(b"socket" in m.data for m in mine) == [False, True]


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp not installed")
def test_msmtp_as_an_smtp_client(relay, shim_env, tmp_path):
    if "libasan" in shim_env["LD_PRELOAD"]:
        pytest.skip("msmtp hangs at start-up with libasan preloaded, shim or not")
    tok = token()
    r = subprocess.run(["msmtp", "--host=localhost", "--port=25", "--tls=off", "--auth=off",
                        "--from=" + SENDER, RCPT],
                       input=("Subject: %s\n\nvia msmtp\n" % tok).encode(), env=shim_env,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    delivered(relay, tok)


def test_intercepted_connect_leaves_no_child(relay, shim_env):
    # An application that sends and then lists its own children: none left.
    tok = token()
    code = PY_SMTPLIB + r"""
import os, time
time.sleep(0.2)
def ppid(p):
    try:
        return open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None
kids = [p for p in os.listdir("/proc") if p.isdigit() and ppid(p) == str(os.getpid())]
assert not kids, kids
"""
    run(["/usr/bin/python3", "-c", code, "127.0.0.1", tok], shim_env)
    delivered(relay, tok)
