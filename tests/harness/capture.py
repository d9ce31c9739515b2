"""capture - the capture sink: a well-behaved SMTP server that keeps every message.

SYNOPSIS
    from harness.capture import CaptureSink
    with CaptureSink(spool_dir="/tmp/x") as sink:     # spool_dir optional
        ... relay to 127.0.0.1:sink.port ...
        msgs = sink.wait_for(1, timeout=10)
        msgs[0].mail_from, .rcpt_tos, .mail_options, .rcpt_options, .data
        sink.messages(); sink.clear()

DESCRIPTION
    The Postfix relay fixture delivers everything here, so tests can assert on
    what finally arrived. It is the FaultServer (harness.faultsrv) with its
    default, accepting script: advertising PIPELINING, SIZE, 8BITMIME,
    SMTPUTF8, DSN and ENHANCEDSTATUSCODES. DSN matters: Postfix forwards
    NOTIFY/ORCPT/RET/ENVID only to a next hop that offers DSN, and tests of
    sendmail -N/-R/-V look for them here. (aiosmtpd was not used because it
    neither offers DSN nor keeps the case of MAIL parameters.)

    .data is byte-exact as received after DATA: dot-unstuffed, CRLF kept,
    without the terminating dot line. MAIL FROM is without angle brackets
    ("" for the null sender); parameters keep their case.

    With spool_dir, each accepted message is also written as NNNN.eml (the
    data) and NNNN.json (envelope and parameters), so `make demo` can print
    them. clear() forgets the messages in memory only.
"""

import json
import os
import threading

from harness.faultsrv import FaultServer


class CaptureSink(FaultServer):
    """Accept everything on loopback; record and optionally spool it."""

    def __init__(self, host="127.0.0.1", port=0, spool_dir=None, size_limit=None):
        script = {}
        caps = ["PIPELINING", "SIZE %d" % (size_limit or 104857600), "8BITMIME",
                "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES"]
        script["capabilities"] = caps
        if size_limit:
            script["size_limit"] = size_limit
        super().__init__(script, host=host, port=port, hostname="sink.test")
        self.spool_dir = spool_dir
        self._seq = 0
        self._spool_lock = threading.Lock()
        if spool_dir:
            os.makedirs(spool_dir, exist_ok=True)

    def message_accepted(self, msg):
        if self.spool_dir:
            with self._spool_lock:
                self._seq += 1
                base = os.path.join(self.spool_dir, "%04d" % self._seq)
            with open(base + ".eml.tmp", "wb") as f:
                f.write(msg.data)
            envelope = {"mail_from": msg.mail_from, "mail_options": msg.mail_options,
                        "rcpt_tos": msg.rcpt_tos, "rcpt_options": msg.rcpt_options,
                        "size": len(msg.data)}
            with open(base + ".json", "w") as f:
                json.dump(envelope, f, indent=2, ensure_ascii=False)
                f.write("\n")
            # The .eml appears last and complete, so a reader polling for it
            # never sees half a message.
            os.rename(base + ".eml.tmp", base + ".eml")
        super().message_accepted(msg)
