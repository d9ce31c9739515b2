"""Fixtures for relayshim's integration tests (pytest, run with /usr/bin/python3).

    pki             session: throwaway CA and certificates (harness.pki.PKI)
    relay           a private Postfix relay (harness.postfix.PostfixRelay),
                    started once per session; its capture is cleared before
                    each test that uses it (after Postfix's queue drained).
                    relay.plain_port, .submission_port,
                    .smtps_port, .ca_file, .tls_hostname, .users,
                    .capture.wait_for(n), .sendmail_config(listener)
    make_relay      factory for an extra relay with options (size limit,
                    sender policy, extra main.cf parameters), stopped after
                    the test: make_relay(allowed_sender_domains=["example.com"])
    fault_server    factory: fault_server(script_or_scripts, host=..., pki=...)
                    returns a started harness.faultsrv.FaultServer; all are
                    stopped after the test
    sendmail_bin    absolute path of $BUILD/sendmail/sendmail (BUILD default build)
    run_sendmail    run_sendmail(args, input=b"", env=None, config=None,
                    timeout=30) -> subprocess.CompletedProcess (bytes)

A missing sendmail binary fails the test that needs it; nothing is skipped.
"""

import os
import signal
import subprocess
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_DIR = os.path.dirname(TESTS_DIR)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from harness.faultsrv import FaultServer  # noqa: E402
from harness.pki import PKI  # noqa: E402
from harness.postfix import PostfixRelay  # noqa: E402
from harness.util import kill_workers_under  # noqa: E402


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test(request):
    """A test whose mail stays queued leaves a queue worker behind, retrying
    into a tmp_path that is gone; kill the workers holding files under the
    test's tmp_path once it ends."""
    # Asked for before the test runs, so tmp_path is torn down after us.
    path = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if path is not None:
        kill_workers_under(path)


def pytest_configure(config):
    # SIGTERM (CI timeouts, `kill`) becomes KeyboardInterrupt so fixture
    # teardown still stops Postfix and the servers.
    def _term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, _term)


@pytest.fixture(scope="session")
def pki():
    # The process-wide PKI: a FaultServer built without pki= uses the same CA.
    return PKI.shared()


@pytest.fixture(scope="session")
def _session_relay(pki):
    relay = PostfixRelay(pki)
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture
def relay(_session_relay):
    # Mail a previous test left in Postfix's queue would otherwise reach
    # this test's capture.
    _session_relay.wait_idle()
    _session_relay.capture.clear()
    yield _session_relay


@pytest.fixture
def make_relay(pki):
    started = []

    def make(**options):
        r = PostfixRelay(pki, **options)
        started.append(r)
        return r.start()

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def fault_server(pki):
    started = []

    def make(scripts=None, host="127.0.0.1", **kw):
        kw.setdefault("pki", pki)
        srv = FaultServer(scripts, host=host, **kw)
        started.append(srv)
        return srv.start()

    yield make
    errors = []
    for srv in started:
        try:
            srv.stop()
        except RuntimeError as e:
            errors.append(str(e))
        errors.extend(srv.errors)
    if errors:
        pytest.fail("; ".join(errors))


@pytest.fixture(scope="session")
def sendmail_bin():
    build = os.environ.get("BUILD", "build")
    return os.path.abspath(os.path.join(TOP_DIR, build, "sendmail", "sendmail"))


@pytest.fixture
def run_sendmail(sendmail_bin, tmp_path):
    def run(args, input=b"", env=None, config=None, timeout=30):
        if not os.access(sendmail_bin, os.X_OK):
            pytest.fail("sendmail binary missing: %s (run make first)" % sendmail_bin)
        full_env = {"PATH": "/usr/bin:/bin"}
        if config is not None:
            path = tmp_path / ("relayshim-%d.conf" % len(list(tmp_path.iterdir())))
            path.write_text(config)
            os.chmod(path, 0o600)
            full_env["RELAYSHIM_CONFIG"] = str(path)
        full_env.update(env or {})
        if isinstance(input, str):
            input = input.encode()
        return subprocess.run([sendmail_bin] + list(args), input=input, env=full_env,
                              capture_output=True, timeout=timeout)
    return run
