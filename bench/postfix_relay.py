"""postfix_relay - run the test harness's private Postfix relay for the benchmark.

SYNOPSIS
    PYTHONPATH=tests /usr/bin/python3 bench/postfix_relay.py INFO_FILE

DESCRIPTION
    Starts harness.pki.PKI and harness.postfix.PostfixRelay (STARTTLS +
    SASL AUTH on the submission port), writes one line of shell-readable
    assignments to INFO_FILE (PF_SUBMISSION, PF_CA, PF_USER, PF_PASSWORD,
    PF_HOSTNAME) once the relay answers, then waits until SIGTERM or SIGINT
    and stops the relay (Postfix and its capture sink) before exiting.
    bench/run.sh uses it for the STARTTLS+AUTH round-trip row.

DIAGNOSTICS
    When the harness is missing or the relay does not start, writes
    "PF_ERROR='reason'" to INFO_FILE and exits 1.
"""

import os
import shlex
import signal
import sys


def write_info(path, pairs):
    with open(path + ".tmp", "w") as f:
        f.write(" ".join("%s=%s" % (k, shlex.quote(str(v))) for k, v in pairs) + "\n")
    # Renamed into place so run.sh never reads half a line.
    os.rename(path + ".tmp", path)


def main():
    info = sys.argv[1]
    stop = []

    def on_signal(signum, frame):
        stop.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pki = relay = None
    try:
        try:
            from harness.pki import PKI
            from harness.postfix import PostfixRelay
            pki = PKI.create()
            # STARTTLS also on the plain port: the STARTTLS-without-AUTH row.
            relay = PostfixRelay(pki, plain_starttls=True)
            relay.start()
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # any reason: the row says it
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            write_info(info, [("PF_ERROR", reason[:200])])
            return 1
        user, password = next(iter(relay.users.items()))
        write_info(info, [("PF_SUBMISSION", relay.submission_port), ("PF_CA", relay.ca_file),
                          ("PF_PLAIN", relay.plain_port),
                          ("PF_USER", user), ("PF_PASSWORD", password),
                          ("PF_HOSTNAME", relay.tls_hostname)])
        while not stop:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if relay is not None:
            relay.stop()
        if pki is not None:
            pki.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
