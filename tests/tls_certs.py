"""Test certificates for DICOM TLS, made with the ``openssl`` command (Debian package openssl,
installed by ./dev): a CA, the SCP's certificate (for 127.0.0.1), a client certificate signed by
the CA, and a self-signed client certificate the CA never signed."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def _signed(name: str, subject: str, ext: str, directory: Path) -> tuple[Path, Path]:
    key, csr, cert = (directory / f"{name}.{s}" for s in ("key", "csr", "crt"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
             subject, cwd=directory)
    (directory / f"{name}.ext").write_text(ext, encoding="ascii")
    _openssl("x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", cert, "-days", "2", "-sha256", "-extfile",
             f"{name}.ext", cwd=directory)
    return cert, key


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-sha256", "-subj", "/CN=igrt test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    server = _signed("server", "/CN=igrt", "subjectAltName=IP:127.0.0.1\n"
                     "extendedKeyUsage=serverAuth\n", directory)
    client = _signed("client", "/CN=LINAC", "extendedKeyUsage=clientAuth\n", directory)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out",
             "rogue.crt", "-days", "2", "-sha256", "-subj", "/CN=LINAC", cwd=directory)
    return Certificates(ca=directory / "ca.crt", server_cert=server[0], server_key=server[1],
                        client_cert=client[0], client_key=client[1],
                        rogue_cert=directory / "rogue.crt", rogue_key=directory / "rogue.key")
