"""test_log_fifo - a log target that is a FIFO (the container entrypoint's log relay).

The entrypoint makes RELAYSHIM_LOG a FIFO and copies it to the container log. If its
reader is gone, opening the FIFO for writing would block for ever; a delivery must
never wait on its log."""

import os
import subprocess
import threading


def test_fifo_without_reader_does_not_block_delivery(tmp_path, run_sendmail, relay):
    fifo = tmp_path / "log"
    os.mkfifo(fifo, 0o622)
    r = run_sendmail(["-i", "fifo@example.com"], input=b"Subject: fifo\n\nx\n",
                     config=relay.sendmail_config("plain"),
                     env={"RELAYSHIM_LOG": str(fifo), "RELAYSHIM_QUEUE_DIR": str(tmp_path / "q")},
                     timeout=20)
    assert r.returncode == 0, r.stderr
    # The line went to stderr instead, with one warning naming the FIFO.
    assert b"cannot open log file %s" % str(fifo).encode() in r.stderr
    assert b"fifo@example.com" in r.stderr
    relay.capture.wait_for(1, timeout=10)


def test_fifo_with_reader_gets_the_delivery_line(tmp_path, run_sendmail, relay):
    fifo = tmp_path / "log"
    os.mkfifo(fifo, 0o622)
    got = []
    # Read and write, as the entrypoint does: the FIFO always has a reader.
    fd = os.open(fifo, os.O_RDWR)
    reader = threading.Thread(target=lambda: got.append(os.read(fd, 65536)))
    reader.start()
    try:
        r = run_sendmail(["-i", "fifo2@example.com"], input=b"Subject: fifo\n\nx\n",
                         config=relay.sendmail_config("plain"),
                         env={"RELAYSHIM_LOG": str(fifo),
                              "RELAYSHIM_QUEUE_DIR": str(tmp_path / "q")},
                         timeout=20)
        assert r.returncode == 0, r.stderr
        reader.join(10)
    finally:
        os.close(fd)
    assert not reader.is_alive()
    assert b"fifo2@example.com" in got[0]
    assert b"cannot open" not in r.stderr
