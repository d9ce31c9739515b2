"""test_deploy - Dockerfile.example, the compose example and the entrypoint, proven
without a Docker engine: the paths the Dockerfile copies exist after `make install`,
the entrypoint turns an environment into a file that cron's empty environment accepts,
and the compose file is the YAML we say it is."""

import os
import re
import stat
import subprocess

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def staging(tmp_path):
    root = tmp_path / "root"
    subprocess.run(["make", "-s", "install", "DESTDIR=%s" % root, "PREFIX=/usr"], cwd=TOP,
                   check=True, capture_output=True, timeout=300)
    return root


def test_make_install_creates_the_spec_layout(tmp_path):
    root = staging(tmp_path)
    sbin = root / "usr/sbin/sendmail"
    assert sbin.is_file() and os.access(sbin, os.X_OK)
    assert os.readlink(root / "usr/lib/sendmail") == "../sbin/sendmail"
    assert os.readlink(root / "usr/bin/mailq") == "../sbin/sendmail"
    assert (root / "usr/lib/sendmail").resolve() == sbin.resolve()
    assert (root / "usr/lib/relayshim/librelayshim.so").is_file()
    conf = root / "etc/relayshim.conf"
    assert conf.is_file()
    # World-readable so www-data's php can read it; it holds no secret (sendmail warns
    # when a password sits in a file others can read).
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644
    assert not re.search(r"^\s*password\s*=\s*\S", conf.read_text(), re.M)
    assert (root / "usr/share/man/man8/relayshim.8").is_file()
    assert (root / "usr/share/man/man5/relayshim.conf.5").is_file()
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert found == sorted([
        "etc/relayshim.conf", "usr/bin/mailq", "usr/lib/relayshim/librelayshim.so",
        "usr/lib/sendmail", "usr/sbin/sendmail", "usr/share/man/man5/relayshim.conf.5",
        "usr/share/man/man8/relayshim.8"])


def test_installed_mailq_symlink_lists_the_queue(tmp_path):
    root = staging(tmp_path)
    spool = tmp_path / "spool"
    (tmp_path / "mailq.conf").write_text("[relay]\nhost = 127.0.0.1:1\n")
    r = subprocess.run([str(root / "usr/bin/mailq")], capture_output=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "RELAYSHIM_QUEUE_DIR": str(spool),
                            "RELAYSHIM_CONFIG": str(tmp_path / "mailq.conf")})
    assert r.returncode == 0, r.stderr
    assert b"empty" in r.stdout.lower()


def test_every_path_the_dockerfile_copies_exists(tmp_path):
    root = staging(tmp_path)
    text = open(os.path.join(TOP, "Dockerfile.example")).read()
    staged = re.findall(r"^COPY --from=\S+ /staging(/\S+) ", text, re.M)
    assert staged
    for path in staged:
        assert os.path.lexists(str(root) + path), path
    # Debian: all of /staging/usr in one layer, the two links made in the image (a COPY
    # of a link copies the binary) and removed from the staging tree before.
    assert "COPY --from=build-debian /staging/usr/ /usr/" in text
    assert "rm /staging/usr/lib/sendmail /staging/usr/bin/mailq" in text
    assert "ln -s ../sbin/sendmail /usr/lib/sendmail" in text
    assert "ln -s ../sbin/sendmail /usr/bin/mailq" in text
    assert "strip --strip-unneeded /staging/usr/sbin/sendmail" in text
    local = re.findall(r"^COPY (?!--from)(\S+) \S+$", text, re.M)
    for path in local:
        if path != ".":
            assert os.path.exists(os.path.join(TOP, path)), path
    assert "app-debian" in text and "app-alpine" in text
    assert "LD_PRELOAD=/usr/lib/relayshim/librelayshim.so" in text
    assert "sendmail_path" in text
    assert "RELAYSHIM_LOG=/run/relayshim/log" in text
    # iniparser is linked statically: its runtime package is not installed.
    app_packages = text.split("AS app-debian")[1].split("COPY")[0]
    assert "libiniparser1" not in app_packages and "cron" in app_packages


def test_entrypoint_snapshots_environment_for_cron(tmp_path, sendmail_bin):
    out = tmp_path / "run" / "relayshim.conf"
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_SENDMAIL_BIN": sendmail_bin,
           "RELAYSHIM_CONFIG_OUT": str(out), "RELAYSHIM_RELAY": "postfix:587",
           "ALLOWED_SENDER_DOMAINS": "example.com", "RELAYSHIM_PASSWORD": "s3cret",
           "RELAYSHIM_USERNAME": "app", "RELAYSHIM_CONFIG": "/nonexistent-is-not-read",
           "RELAYSHIM_QUEUE_DIR": str(tmp_path / "q")}
    # The entrypoint must not depend on a config file existing yet.
    env.pop("RELAYSHIM_CONFIG")
    r = subprocess.run(["sh", os.path.join(TOP, "contrib/docker-entrypoint.sh"), "true"],
                       env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) & 0o007 == 0
    # cron's view: an empty environment and only the file.
    r = subprocess.run([sendmail_bin, "--config-check"], capture_output=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "RELAYSHIM_CONFIG": str(out)})
    assert r.returncode == 0, r.stderr
    assert b"postfix:587" in r.stdout
    assert b"example.com" in r.stdout
    assert b"s3cret" not in r.stdout


def test_entrypoint_creates_the_directory_its_link_points_into(tmp_path, sendmail_bin):
    # The image's /etc/relayshim.conf links to /run/relayshim/relayshim.conf, and a fresh
    # tmpfs /run has no relayshim directory yet.
    link = tmp_path / "etc" / "relayshim.conf"
    link.parent.mkdir()
    target = tmp_path / "run" / "relayshim" / "relayshim.conf"
    os.symlink(target, link)
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_SENDMAIL_BIN": sendmail_bin,
           "RELAYSHIM_CONFIG_OUT": str(link), "RELAYSHIM_RELAY": "postfix:587",
           "RELAYSHIM_QUEUE_DIR": str(tmp_path / "q")}
    r = subprocess.run(["sh", os.path.join(TOP, "contrib/docker-entrypoint.sh"), "true"],
                       env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"postfix:587" in target.read_bytes()


def test_entrypoint_relays_log_lines_of_every_process_to_its_stdout(tmp_path, sendmail_bin,
                                                                   relay):
    # RELAYSHIM_LOG in the configuration directory: the entrypoint makes it a FIFO that
    # any user may write and copies it to its own stdout (the container log).
    run = tmp_path / "run"
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_SENDMAIL_BIN": sendmail_bin,
           "RELAYSHIM_CONFIG_OUT": str(run / "relayshim.conf"),
           "RELAYSHIM_LOG": str(run / "log"), "RELAYSHIM_QUEUE_DIR": str(tmp_path / "q"),
           "RELAYSHIM_RELAY": "%s:%d" % (relay.host, relay.plain_port), "RELAYSHIM_TLS": "none"}
    script = "printf 'Subject: fifo\\n\\nx\\n' | %s -i fifo-relay@example.com" % sendmail_bin
    r = subprocess.run(["sh", os.path.join(TOP, "contrib/docker-entrypoint.sh"),
                        "sh", "-c", script], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(run / "log").st_mode)
    assert stat.S_IMODE(os.stat(run / "log").st_mode) == 0o622
    assert b"to=<fifo-relay@example.com>" in r.stdout, (r.stdout, r.stderr)
    relay.capture.wait_for(1, timeout=10)


def test_entrypoint_refuses_a_bad_environment(tmp_path, sendmail_bin):
    out = tmp_path / "relayshim.conf"
    env = {"PATH": "/usr/bin:/bin", "RELAYSHIM_SENDMAIL_BIN": sendmail_bin,
           "RELAYSHIM_CONFIG_OUT": str(out), "RELAYSHIM_RELAY": "postfix:587",
           "RELAYSHIM_TLS": "sometimes", "RELAYSHIM_QUEUE_DIR": str(tmp_path / "q")}
    r = subprocess.run(["sh", os.path.join(TOP, "contrib/docker-entrypoint.sh"), "true"],
                       env=env, capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"RELAYSHIM_TLS" in r.stderr or b"tls" in r.stderr


def test_compose_example_is_valid_yaml_with_app_and_relay():
    with open(os.path.join(TOP, "docker-compose.example.yml")) as f:
        doc = yaml.safe_load(f)
    services = doc["services"]
    assert set(services) == {"app", "postfix"}
    assert services["postfix"]["image"] == "boky/postfix"
    assert services["app"]["env_file"] == services["postfix"]["env_file"]
    assert services["app"]["environment"]["RELAYSHIM_RELAY"] == "postfix:587"
    assert services["app"]["build"]["dockerfile"] == "Dockerfile.example"
    assert "relayshim-spool:/var/spool/relayshim" in services["app"]["volumes"]
    assert services["app"]["read_only"] is True


def test_readme_quick_start_delivers(tmp_path, relay):
    # The three lines of the README's quick start, as a new user types them, with two
    # substitutions: the install goes to a staging root (not this machine's /usr) and
    # the relay is the local Postfix fixture instead of the postfix container; an empty
    # config file and queue mode never keep this machine's /etc and /var/spool out of it.
    readme = open(os.path.join(TOP, "README.md")).read()
    block = readme.split("## Quick start in a container", 1)[1].split("```sh\n", 1)[1]
    lines = [l.split("#")[0].strip() for l in block.split("```", 1)[0].splitlines()]
    lines = [l for l in lines if l]
    assert len(lines) == 3, lines
    install, export, send = lines
    assert install == "make && make install PREFIX=/usr"
    assert export == "export RELAYSHIM_RELAY=postfix:587"
    root = tmp_path / "root"
    subprocess.run(install.replace("PREFIX=/usr", "PREFIX=/usr DESTDIR=%s" % root),
                   shell=True, cwd=TOP, check=True, capture_output=True, timeout=300)
    env = {"PATH": "%s/usr/sbin:/usr/bin:/bin" % root,
           "RELAYSHIM_RELAY": "127.0.0.1:%d" % relay.plain_port,
           "RELAYSHIM_QUEUE": "never", "RELAYSHIM_CONFIG": str(tmp_path / "none.conf")}
    (tmp_path / "none.conf").write_text("")
    r = subprocess.run(send, shell=True, env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = relay.capture.wait_for(1, timeout=15)[0]
    assert m.rcpt_tos == ["you@example.com"]
    assert b"Subject: hello" in m.data and b"from relayshim" in m.data
