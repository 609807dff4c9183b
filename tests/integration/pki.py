"""A private CA and a server certificate for 127.0.0.1 signed by it, made
with openssl: for the TLS servers of the tests and benchmarks."""

import os
import subprocess
import tempfile


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


def make_pki(d=None):
    """Writes ca.pem, server.pem and server.key into d (a new directory
    when None), readable by every user: the servers and clients under
    test may run as others. Returns their paths and the directory."""
    if d is None:
        d = tempfile.mkdtemp(prefix="dpt-pki-", dir=os.environ.get(
            "DELTAPUSH_TEST_TMPDIR", "/tmp"))
    os.chmod(d, 0o755)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=deltapush test CA", "-keyout", "ca.key",
             "-out", "ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "ext.cnf", "-out", "server.pem", cwd=d)
    for name in ("ca.pem", "server.pem", "server.key"):
        os.chmod(os.path.join(d, name), 0o644)
    return {"dir": d,
            "ca": os.path.join(d, "ca.pem"),
            "cert": os.path.join(d, "server.pem"),
            "key": os.path.join(d, "server.key")}
