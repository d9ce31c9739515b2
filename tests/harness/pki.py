"""pki - a throwaway certificate authority for the tests, made with the openssl CLI.

SYNOPSIS
    from harness.pki import PKI
    pki = PKI.create()            # or PKI.create("/some/dir")
    pki = PKI.shared()            # the one PKI of this process (the pytest
                                  # fixture and FaultServer's default use it)
    pki.ca_file                   # PEM of the CA (trust anchor for clients)
    pki.server.cert, .key         # SAN relay.test, localhost, 127.0.0.1, ::1
    pki.expired                   # same names, validity ended in 2020
    pki.wrong_name                # SAN DNS:wrong.test only
    pki.self_signed               # same names as server, not issued by the CA
    pki.client                    # client certificate (clientAuth) for mutual TLS
    pki.cert("expired")           # by kind name; pki.KINDS lists them
    pki.cleanup()

DESCRIPTION
    Everything is generated once into a fresh directory (the test session
    caches one PKI). Server certificates share one key: the kinds differ in
    what a verifying client must notice, not in the key. Keys are ECDSA P-256:
    RSA key generation cost 2-4 s per PKI on a loaded 2-core machine, P-256
    takes milliseconds, and every client under test (OpenSSL, Python, swaks
    via Net::SSLeay, curl, PHP) and Postfix accept it.

DIAGNOSTICS
    A failing openssl command raises RuntimeError with its stderr.
"""

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass

from harness import TMP_PREFIX

TLS_HOSTNAME = "relay.test"
_shared = None
_shared_lock = threading.Lock()
SERVER_SAN = "DNS:relay.test, DNS:localhost, IP:127.0.0.1, IP:::1"

_CA_CONFIG = """\
[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
certificate = {dir}/ca.crt
private_key = {dir}/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {server_san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ wrong_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass
class Cert:
    """One certificate with its private key (PEM file paths)."""

    kind: str
    cert: str
    key: str


class PKI:
    """The CA and every certificate kind the tests choose from."""

    KINDS = ("valid", "expired", "wrong_name", "self_signed", "client")

    def __init__(self, directory, owned):
        self.dir = directory
        self._owned = owned
        self.ca_file = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        self.tls_hostname = TLS_HOSTNAME
        key = os.path.join(directory, "server.key")
        self.server = Cert("valid", os.path.join(directory, "server.crt"), key)
        self.expired = Cert("expired", os.path.join(directory, "expired.crt"), key)
        self.wrong_name = Cert("wrong_name", os.path.join(directory, "wrong_name.crt"), key)
        self.self_signed = Cert("self_signed", os.path.join(directory, "self_signed.crt"), key)
        self.client = Cert("client", os.path.join(directory, "client.crt"),
                           os.path.join(directory, "client.key"))

    # create - generate a complete PKI in directory (a fresh temp dir by default)
    @classmethod
    def create(cls, directory=None):
        owned = directory is None
        if owned:
            directory = tempfile.mkdtemp(prefix=TMP_PREFIX + "pki-")
        os.makedirs(os.path.join(directory, "newcerts"), exist_ok=True)
        # Postfix daemons and test clients running as other users read these.
        os.chmod(directory, 0o755)
        if owned:
            # reap.sh removes the directory once this process is gone.
            with open(os.path.join(directory, "owner.pid"), "w") as f:
                f.write("%d\n" % os.getpid())
        pki = cls(directory, owned)
        try:
            pki._generate()
        except BaseException:
            if owned:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return pki

    # shared - one PKI per process, made on first use and removed at exit
    @classmethod
    def shared(cls):
        global _shared
        with _shared_lock:
            if _shared is None:
                _shared = cls.create()
                atexit.register(_shared.cleanup)
            return _shared

    # cert - the Cert of a kind name ("valid", "expired", ...)
    def cert(self, kind):
        return {"valid": self.server, "server": self.server, "expired": self.expired,
                "wrong_name": self.wrong_name, "self_signed": self.self_signed,
                "client": self.client}[kind]

    # cleanup - remove the directory if this object created it
    def cleanup(self):
        if self._owned:
            shutil.rmtree(self.dir, ignore_errors=True)

    # _openssl - run one openssl command in the PKI directory
    def _openssl(self, *args):
        proc = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError("openssl %s failed: %s"
                               % (" ".join(args[:2]), proc.stderr.decode(errors="replace")))

    # _generate - the CA, the shared server key, and one certificate per kind
    def _generate(self):
        d = self.dir
        cnf = os.path.join(d, "ca.cnf")
        with open(cnf, "w") as f:
            f.write(_CA_CONFIG.format(dir=d, server_san=SERVER_SAN))
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")

        self._openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", self.ca_key, "-out", self.ca_file, "-days", "3650",
                      "-subj", "/CN=relayshim test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", self.server.key)
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", self.client.key)

        def issue(cert, key, cn, ext, dates):
            csr = cert.cert + ".csr"
            self._openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr)
            self._openssl("ca", "-batch", "-notext", "-config", cnf, "-extensions", ext,
                          "-in", csr, "-out", cert.cert, *dates)
            os.unlink(csr)

        valid = ["-days", "3650"]
        issue(self.server, self.server.key, TLS_HOSTNAME, "server_ext", valid)
        issue(self.expired, self.server.key, TLS_HOSTNAME, "server_ext",
              ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"])
        issue(self.wrong_name, self.server.key, "wrong.test", "wrong_ext", valid)
        issue(self.client, self.client.key, "client.test", "client_ext", valid)
        self._openssl("req", "-x509", "-new", "-key", self.server.key,
                      "-out", self.self_signed.cert, "-days", "3650",
                      "-subj", "/CN=" + TLS_HOSTNAME,
                      "-addext", "subjectAltName=" + SERVER_SAN,
                      "-addext", "basicConstraints=critical,CA:FALSE",
                      "-addext", "extendedKeyUsage=serverAuth")
        for name in os.listdir(d):
            path = os.path.join(d, name)
            if os.path.isfile(path):
                os.chmod(path, 0o644)
