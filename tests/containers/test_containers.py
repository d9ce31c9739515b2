"""test_containers - Dockerfile.example's Debian target under a real engine (podman, runc).

Run by `make check-containers` (tools/install-container-deps.sh first: it builds the local
stand-ins for debian:bookworm-slim and php:8.2-fpm-bookworm). Everything runs as the image's
header comment documents it: --init --read-only --tmpfs /run --tmpfs /tmp, a volume for the
spool, and also without the read-only options. Containers use the host network, so the relay
is a CaptureSink on the host's loopback and php-fpm listens on a free loopback port (the one
thing the tests change: a pool file that moves its `listen`).

The order matters and is the file's order: one container ("app") lives through the tests
from test_php_fpm_mail... to test_stop_drains..., which restart it.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

from harness.capture import CaptureSink  # noqa: E402
from harness.faultsrv import FaultServer  # noqa: E402

IMAGE = "localhost/relayshim-test-app:latest"
PHP_BASE = "docker.io/library/php:8.2-fpm-bookworm"
PREFIX = "relayshim-test-%d" % os.getpid()
ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(HERE, "containers.conf"))


def podman(*args, check=True, timeout=120, input=None):
    r = subprocess.run(["podman", "--runtime", "runc"] + list(args), env=ENV, input=input,
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("podman %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                          r.stdout, r.stderr))
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.2)


class Relay:
    """A CaptureSink on one fixed port that can go down and come back."""

    def __init__(self):
        self.port = free_port()
        self.sinks = []
        self.up()

    def up(self):
        self.sinks.append(CaptureSink(port=self.port).start())

    def down(self):
        self.sinks[-1].stop()

    def received(self, rcpt):
        return [m for s in self.sinks for m in s.messages() if rcpt in m.rcpt_tos]

    def wait_for(self, rcpt, timeout=20):
        return wait_until("a message to %s at the relay" % rcpt,
                          lambda: self.received(rcpt), timeout)


def logs(name):
    r = podman("logs", name)
    return r.stdout + r.stderr


def rcpt(kind):
    return "%s-%s@example.com" % (kind, uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def image():
    t0 = time.monotonic()
    podman("build", "--network", "host", "--pull=never", "-f", "Dockerfile.example",
           "--target", "app-debian", "-t", IMAGE, TOP, timeout=900)
    print("image built in %.0fs" % (time.monotonic() - t0))
    return IMAGE


@pytest.fixture(scope="module")
def relay():
    r = Relay()
    yield r
    if not r.sinks[-1].stopping.is_set():
        r.down()


def pool_file(directory):
    """A pool file moving php-fpm to a free loopback port (host network: one per container)."""
    port = free_port()
    pool = directory / "zz-test.conf"
    pool.write_text("[www]\nlisten = 127.0.0.1:%d\n" % port)
    os.chmod(pool, 0o644)
    return port, str(pool)


@pytest.fixture(scope="module")
def fpm_port(tmp_path_factory):
    return pool_file(tmp_path_factory.mktemp("pool"))


def run_args(name, relay, fpm_port, volume, read_only=True):
    port, pool = fpm_port
    args = ["run", "-d", "--name", name, "--network", "host", "--pull=never", "--init",
            "-v", "%s:/var/spool/relayshim" % volume,
            "-v", "%s:/var/www/html:ro" % os.path.join(HERE, "www"),
            "-v", "%s:/usr/local/etc/php-fpm.d/zz-test.conf:ro" % pool,
            "-v", "%s:/etc/cron.d/relayshim-test:ro" % os.path.join(HERE, "cron.d",
                                                                   "relayshim-test"),
            "-e", "RELAYSHIM_RELAY=127.0.0.1:%d" % relay.port]
    if read_only:
        args += ["--read-only", "--tmpfs", "/run", "--tmpfs", "/tmp"]
    return args + [IMAGE]


def wait_ready(name, port):
    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state != "running":
                raise AssertionError("container %s is %s:\n%s" % (name, state, logs(name)))
            return False
    wait_until("php-fpm of %s" % name, listening, 30)


@pytest.fixture(scope="module")
def app(image, relay, fpm_port):
    name, volume = PREFIX + "-app", PREFIX + "-spool"
    podman(*run_args(name, relay, fpm_port, volume))
    try:
        wait_ready(name, fpm_port[0])
        yield name
    finally:
        print(logs(name))
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def fcgi_get(port, script, query):
    env = {"PATH": "/usr/bin:/bin", "REQUEST_METHOD": "GET", "QUERY_STRING": query,
           "SCRIPT_FILENAME": "/var/www/html/" + script, "SCRIPT_NAME": "/" + script,
           "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
    r = subprocess.run(["cgi-fcgi", "-bind", "-connect", "127.0.0.1:%d" % port], env=env,
                       capture_output=True, text=True, timeout=30)
    return r.stdout


def exec_www(name, *cmd, env=()):
    args = ["exec", "-u", "www-data"]
    for e in env:
        args += ["-e", e]
    return podman(*(args + [name] + list(cmd)), check=False, timeout=60)


def queue_status(name):
    r = podman("exec", name, "mailq", "--status", check=False)
    return r.stdout.strip(), r.returncode


# ---- the image --------------------------------------------------------------


def test_image_adds_at_most_1mb_over_the_php_base(image):
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    base = int(podman("image", "inspect", "--format", "{{.Size}}", PHP_BASE).stdout)
    added = size - base
    print("relayshim image: %d bytes added over %s" % (added, PHP_BASE))
    os.makedirs(os.path.join(TOP, "build"), exist_ok=True)
    with open(os.path.join(TOP, "build", "container-image-size"), "w") as f:
        f.write("%d\n" % added)
    assert added <= 1000 * 1000


def test_image_ships_one_stripped_binary_without_libiniparser(image):
    r = podman("run", "--rm", "--network", "host", "--pull=never", "--entrypoint", "sh", image,
               "-c", "ldd /usr/sbin/sendmail; readlink /usr/lib/sendmail /usr/bin/mailq; "
               "dpkg -l libiniparser1 2>&1 | tail -n 1; "
               "od -A n -t x1 -j 0 -N 4 /usr/sbin/sendmail; "
               "LC_ALL=C grep -c debug_info /usr/sbin/sendmail || :")
    out = r.stdout
    assert "iniparser" not in out.split("../sbin/sendmail")[0]
    assert out.count("../sbin/sendmail") == 2
    assert "no packages found" in out or "un " in out
    assert out.strip().endswith("0")


# ---- one container, read-only, as documented ---------------------------------


def test_php_fpm_mail_is_delivered_and_logged(app, relay, fpm_port):
    to = rcpt("fpm")
    assert fcgi_get(fpm_port[0], "mail.php", "to=%s&marker=m1" % to).rstrip().endswith("sent")
    relay.wait_for(to)
    # The worker ran as www-data: its line reaches the log through the entrypoint's relay.
    wait_until("the delivery to %s in podman logs" % to, lambda: to in logs(app), 10)


def test_php_cli_mail_is_delivered_and_logged(app, relay):
    to = rcpt("cli")
    r = exec_www(app, "php", "-r", "exit(mail('%s', 'cli', 'from php -r') ? 0 : 1);" % to)
    assert r.returncode == 0, r.stderr
    relay.wait_for(to)
    wait_until("the delivery to %s in podman logs" % to, lambda: to in logs(app), 10)


def test_php_smtp_to_localhost_25_goes_through_the_shim(app, relay):
    to = rcpt("smtp")
    r = exec_www(app, "php", "/var/www/html/smtp.php", to, "m3")
    assert r.returncode == 0 and "sent" in r.stdout, r.stdout + r.stderr
    relay.wait_for(to)
    wait_until("the delivery to %s in podman logs" % to, lambda: to in logs(app), 10)


def test_queue_worker_delivery_reaches_the_log(app, relay):
    # Relay down: www-data's mail is queued and its detached worker retries (every
    # second here). Its delivery must show in the container log although the worker
    # is www-data and has no way to /proc/1/fd/1.
    to = rcpt("worker")
    relay.down()
    try:
        r = exec_www(app, "php", "-r", "exit(mail('%s', 'worker', 'queued') ? 0 : 1);" % to,
                     env=["RELAYSHIM_RETRY_BASE=1"])
        assert r.returncode == 0, r.stderr
        assert queue_status(app)[0].startswith("queue: 1 message"), queue_status(app)
    finally:
        relay.up()
    relay.wait_for(to, timeout=30)
    text = wait_until("the worker's delivery in podman logs",
                      lambda: [l for l in logs(app).splitlines() if to in l], 10)
    assert len(text) >= 2, text  # queued, then delivered
    assert queue_status(app) == ("queue: 0 messages, oldest 0s, 0 failed", 0)


def test_cron_job_output_is_mailed(app, relay):
    # The job runs every minute as www-data; cron mails its output with sendmail.
    msgs = relay.wait_for("cron-output@example.com", timeout=75)
    assert b"cron-job-output-marker" in msgs[0].data
    assert "cron-output@example.com" in logs(app)


def test_mail_queued_while_relay_down_goes_out_after_restart(app, relay):
    to = rcpt("restart")
    relay.down()
    r = exec_www(app, "php", "-r", "exit(mail('%s', 'restart', 'queued') ? 0 : 1);" % to)
    assert r.returncode == 0, r.stderr
    assert queue_status(app)[1] == 0 and queue_status(app)[0].startswith("queue: 1 message")
    t0 = time.monotonic()
    podman("stop", app, timeout=60)
    # docker stop's 10 s: the drain gave up within its deadline and said what is left.
    assert time.monotonic() - t0 < 10
    assert re.search(r"relayshim: 1 messages? left in the queue", logs(app)), logs(app)
    # Nothing was lost in the stop: the message waits on the volume.
    assert not relay.received(to)
    relay.up()
    podman("start", app)
    # No manual -q: the entrypoint's flush at start sends what the volume kept.
    relay.wait_for(to, timeout=20)


def test_stop_drains_the_queue_within_its_deadline(app, relay, fpm_port):
    wait_ready(app, fpm_port[0])
    to = rcpt("drain")
    relay.down()
    try:
        r = exec_www(app, "php", "-r", "exit(mail('%s', 'drain', 'queued') ? 0 : 1);" % to)
        assert r.returncode == 0, r.stderr
        assert queue_status(app)[0].startswith("queue: 1 message")
    finally:
        relay.up()
    # The worker would retry in 30 s or more; the stop comes first and drains.
    left_before = logs(app).count("left in the queue")
    t0 = time.monotonic()
    podman("stop", app, timeout=60)
    assert time.monotonic() - t0 < 10
    assert relay.received(to), logs(app)
    assert logs(app).count("left in the queue") == left_before
    podman("start", app)
    wait_ready(app, fpm_port[0])
    assert queue_status(app) == ("queue: 0 messages, oldest 0s, 0 failed", 0)


# ---- without --read-only and the tmpfs mounts --------------------------------


def test_runs_without_read_only_and_tmpfs(image, relay, tmp_path):
    name, volume = PREFIX + "-rw", PREFIX + "-rw-spool"
    fpm_port = pool_file(tmp_path)
    podman(*run_args(name, relay, fpm_port, volume, read_only=False))
    try:
        wait_ready(name, fpm_port[0])
        to = rcpt("rw")
        assert fcgi_get(fpm_port[0], "mail.php", "to=%s&marker=rw" % to).rstrip().endswith(
            "sent")
        relay.wait_for(to)
        wait_until("the delivery to %s in podman logs" % to, lambda: to in logs(name), 10)
        ps = podman("exec", name, "sh", "-c", "ps -eo user,comm 2>/dev/null || "
                    "for p in /proc/[0-9]*; do echo $(stat -c %U $p) $(cat $p/comm); done")
        assert re.search(r"^root\s+cron", ps.stdout, re.M), ps.stdout
        assert re.search(r"^www-data\s+php-fpm", ps.stdout, re.M), ps.stdout
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def test_entrypoint_not_root_on_fresh_tmpfs_says_why(image, relay):
    r = podman("run", "--rm", "--network", "host", "--pull=never", "--read-only",
               "--tmpfs", "/run", "--user", "www-data",
               "-e", "RELAYSHIM_RELAY=127.0.0.1:%d" % relay.port, image, "true", check=False)
    assert r.returncode == 73
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create /run/relayshim" in lines[0], r.stderr


# ---- the compose example and the Kubernetes manifests ------------------------


def test_compose_example_runs_under_podman_compose(image, tmp_path):
    # docker-compose.example.yml as shipped, on the compose project's own bridge network
    # (CNI), plus an override for this machine only: the image built above (so no second
    # build) and the relay on the host side of that bridge. boky/postfix cannot be pulled
    # here, so a placeholder stands in for that service. (podman-compose 1.0.3 cannot
    # combine network_mode: host with its project network.)
    shutil.copy(os.path.join(TOP, "docker-compose.example.yml"), tmp_path)
    (tmp_path / "mail.env").write_text("ALLOWED_SENDER_DOMAINS=example.com\n")
    project = PREFIX.replace("-", "_") + "_compose"
    network = project + "_default"
    podman("network", "create", network)
    gateway = podman("network", "inspect", network, "--format",
                     "{{range .Subnets}}{{.Gateway}}{{end}}").stdout.strip()
    port = free_port()
    (tmp_path / "override.yml").write_text(
        "services:\n"
        "  app:\n"
        "    image: %s\n"
        "    environment:\n"
        "      RELAYSHIM_RELAY: \"%s:%d\"\n"
        "  postfix:\n"
        "    image: docker.io/library/debian:bookworm-slim\n"
        "    command: [\"sleep\", \"infinity\"]\n" % (IMAGE, gateway, port))
    compose = ["podman-compose", "-p", project, "-f", str(tmp_path / "docker-compose.example.yml"),
               "-f", str(tmp_path / "override.yml")]

    def run(*args):
        return subprocess.run(compose + list(args), env=ENV, cwd=tmp_path, capture_output=True,
                              text=True, timeout=180)
    sink = None
    r = run("up", "-d")
    try:
        assert r.returncode == 0 and "exit code: 1" not in r.stdout, r.stdout + r.stderr
        name = project + "_app_1"
        wait_until("the compose app running", lambda: podman(
            "inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "running", 30)
        # The bridge exists now that a container is on it: the relay listens on its host side.
        sink = CaptureSink(host=gateway, port=port).start()
        inspect = podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name).stdout
        assert inspect.strip() == "true"
        to = rcpt("compose")
        r = exec_www(name, "php", "-r", "exit(mail('%s', 'compose', 'x') ? 0 : 1);" % to)
        assert r.returncode == 0, r.stderr
        wait_until("the compose app's message", lambda: [
            m for m in sink.messages() if to in m.rcpt_tos], 20)
        wait_until("the delivery to %s in podman logs" % to, lambda: to in logs(name), 10)
    finally:
        if sink:
            sink.stop()
        down = run("down", "-v")
        podman("volume", "rm", "-f", project + "_relayshim-spool", check=False)
        podman("network", "rm", "-f", network, check=False)
        assert down.returncode == 0, down.stdout + down.stderr


def test_kubernetes_app_manifest_plays(image, tmp_path):
    # contrib/kubernetes/app.yaml under `podman kube play`, changed only where this machine
    # differs from a cluster: the relay is a server on the host side of a bridge network
    # (no boky/postfix image here, no cluster DNS for "postfix"), without TLS (so AUTH over
    # plain text is allowed explicitly), and the claim and secret get names of this test run.
    # podman 4.3 does not create Secrets from YAML: the Secret document is given to
    # `podman secret create`, as its kube play expects.
    with open(os.path.join(TOP, "contrib/kubernetes/app.yaml")) as f:
        docs = f.read().split("\n---\n")
    secret = [d for d in docs if "kind: Secret" in d]
    assert len(secret) == 1
    text = "\n---\n".join(d for d in docs if "kind: Secret" not in d)
    network = PREFIX + "-kube"
    podman("network", "create", network)
    gateway = podman("network", "inspect", network, "--format",
                     "{{range .Subnets}}{{.Gateway}}{{end}}").stdout.strip()
    port = free_port()
    pvc, secret_name = PREFIX + "-pvc", PREFIX + "-secret"
    for old, new in [("secretName: relayshim-secret", "secretName: " + secret_name),
                     ('RELAYSHIM_RELAY: "postfix:587"', 'RELAYSHIM_RELAY: "%s:%d"' % (gateway, port)),
                     ('RELAYSHIM_TLS: "starttls"', 'RELAYSHIM_TLS: "none"\n'
                      '  RELAYSHIM_AUTH_INSECURE: "yes"'),
                     ("claimName: relayshim-spool", "claimName: " + pvc),
                     ("name: relayshim-spool\nspec", "name: %s\nspec" % pvc)]:
        assert old in text, old
        text = text.replace(old, new)
    manifest = tmp_path / "app.yaml"
    manifest.write_text(text)
    # podman 4.3 reads a Secret's data, not its stringData, and writes each value into the
    # volume as it is, without base64 decoding: the stringData values go there.
    doc = yaml.safe_load(secret[0])
    doc["data"] = doc.pop("stringData")
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(doc))
    podman("secret", "create", secret_name, str(tmp_path / "secret.yaml"))
    podman("tag", image, "localhost/myapp:latest")
    name, server = "app-pod-0-app", None  # podman's name: pod of replica 0, container "app"
    r = podman("kube", "play", "--network", network, str(manifest), check=False, timeout=120)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert podman("container", "exists", name, check=False).returncode == 0, podman(
            "ps", "-a").stdout
        wait_until("the entrypoint's configuration", lambda: podman(
            "exec", name, "test", "-s", "/run/relayshim/relayshim.conf",
            check=False).returncode == 0, 30)
        # The bridge exists now: the relay (with AUTH) listens on its host side.
        server = FaultServer({"auth": {"mechanisms": ["PLAIN", "LOGIN"],
                                       "users": {"app@example.com": "change-me"}}},
                             host=gateway, port=port).start()
        to = rcpt("kube")
        r = exec_www(name, "php", "-r", "exit(mail('%s', 'kube', 'x') ? 0 : 1);" % to)
        assert r.returncode == 0, r.stderr
        msg = wait_until("a message at the AUTH server",
                         lambda: [m for m in server.messages() if to in m.rcpt_tos], 20)
        # The password came from the Secret, through RELAYSHIM_PASSWORD_FILE.
        assert msg[0].auth_user == "app@example.com"
        assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}",
                      name).stdout.strip() == "true"
        # The probe's command, as the kubelet would run it.
        probe = podman("exec", name, "mailq", "--status", "--max-age=1h", "--max-count=100",
                       check=False)
        assert probe.returncode == 0 and probe.stdout.startswith("queue: 0 messages"), probe
        # The preStop command, as the kubelet would run it.
        drain = podman("exec", name, "sendmail", "-q", "--deadline=20s", check=False)
        assert drain.returncode == 0, drain.stdout + drain.stderr
    finally:
        if podman("container", "exists", name, check=False).returncode == 0:
            print(logs(name))
        if server:
            server.stop()
        podman("kube", "down", str(manifest), check=False)
        # kube play made volumes for the claim and for the secret.
        podman("volume", "rm", "-f", pvc, secret_name, check=False)
        podman("secret", "rm", secret_name, check=False)
        podman("untag", "localhost/myapp:latest", "localhost/myapp:latest", check=False)
        podman("network", "rm", "-f", network, check=False)


def test_entrypoint_read_only_without_tmpfs_says_why(image, relay):
    # Docker's --read-only alone leaves /run read-only (podman adds a tmpfs unless told not to).
    r = podman("run", "--rm", "--network", "host", "--pull=never", "--read-only",
               "--read-only-tmpfs=false", "-e", "RELAYSHIM_RELAY=127.0.0.1:%d" % relay.port,
               image, "true", check=False)
    assert r.returncode == 73
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "cannot create /run/relayshim: Read-only file system" in lines[0]
    assert "--tmpfs /run" in lines[0]
