"""``igrt keys``: create the CURVE certificates in the layout ``[zmq.curve]`` expects
(CONTRACT §10), with ``zmq.auth``'s certificate files::

    DIR/server.key_secret          the server's secret certificate   -> server_secret_key
    DIR/server.key                 its public certificate            -> give to every client
    DIR/clients/NAME.key           a reader's public certificate     -> clients_dir
    DIR/control_clients/NAME.key   a control client's public cert.   -> control_clients_dir
    DIR/client_secrets/NAME.key_secret   that client's secret certificate: move it to the
                                   client machine (igrt listen --client-key), then delete it here

An existing server certificate is kept (clients already hold its public key); an existing client
name is refused, so a key in use is never replaced by accident. Secret files are mode 0600.
Prints the ``[zmq.curve]`` table to paste into the room's configuration.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import zmq.auth

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def create_keys(directory: Path, *, readers: list[str], controllers: list[str],
                out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Create the server certificate (if absent) and one certificate per client name; returns
    the exit status (0, or 2 for a usage error)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    directory = directory.absolute()
    names = [*readers, *controllers]
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if bad:
        print(f"igrt keys: {bad[0]!r} is not a usable client name (letters, digits, '_', '-', "
              "'.', at most 64)", file=err)
        return 2
    if len(set(names)) != len(names):
        print("igrt keys: each client name may be given once", file=err)
        return 2
    clients, control, secrets = (directory / "clients", directory / "control_clients",
                                 directory / "client_secrets")
    taken = [n for n in names if (clients / f"{n}.key").exists()
             or (control / f"{n}.key").exists()]
    if taken:
        print(f"igrt keys: a client named {taken[0]!r} already exists in {directory}; choose "
              "another name or delete its certificate first", file=err)
        return 2
    for sub in (directory, clients, control, secrets):
        sub.mkdir(parents=True, exist_ok=True)
    secrets.chmod(0o700)
    if not (directory / "server.key_secret").exists():
        _create(directory, "server")
        print(f"created the server certificate {directory / 'server.key_secret'}", file=out)
    for name, target in [*((n, clients) for n in readers), *((n, control) for n in controllers)]:
        public, secret = _create(secrets, name)
        shutil.move(public, target / public.name)
        kind = "control client" if target is control else "reader"
        print(f"created {kind} {name}: {target / public.name} (give {secret} to the client)",
              file=out)
    print("\n[zmq.curve]", file=out)
    print(f'server_secret_key = "{directory / "server.key_secret"}"', file=out)
    print(f'clients_dir = "{clients}"', file=out)
    print(f'control_clients_dir = "{control}"', file=out)
    return 0


def _create(directory: Path, name: str) -> tuple[Path, Path]:
    """``zmq.auth.create_certificates`` in a private temporary directory, then moved into place
    with the secret file at mode 0600."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        public_tmp, secret_tmp = (Path(p) for p in zmq.auth.create_certificates(tmp, name))
        os.chmod(secret_tmp, 0o600)
        public, secret = directory / public_tmp.name, directory / secret_tmp.name
        os.replace(secret_tmp, secret)
        os.replace(public_tmp, public)
    return public, secret
