"""relayshim test harness.

Modules:
  pki       throwaway CA and certificates (openssl CLI), cached per session
  smtpsrv   the threaded SMTP server core shared by the two servers below
  capture   capture sink: well-behaved SMTP server storing messages byte-exact
  faultsrv  scriptable fault-injecting SMTP server (FaultServer)
  postfix   private Postfix relay instance (PostfixRelay) relaying to a capture sink
  relay_ctl command line over PostfixRelay for `make demo`

Everything listens on loopback only and is stopped by its context manager;
tests/harness/reap.sh checks that nothing outlived a test run.
"""

# Every private Postfix instance and every temporary directory of the
# harness lives under a directory whose name starts with this prefix, so
# reap.sh can find what a crashed run left behind.
TMP_PREFIX = "relayshim-test-"
