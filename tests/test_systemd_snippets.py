"""systemd/igrt.sysusers.conf and igrt.tmpfiles.conf, applied by the real systemd-sysusers and
systemd-tmpfiles to a scratch root: the user, the group and the directories the unit expects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"


def _run(tool: str, root: Path, *args: str) -> None:
    path = shutil.which(tool)
    assert path is not None, f"{tool} is missing: run ./dev setup (Debian package systemd)"
    done = subprocess.run([path, f"--root={root}", *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "ignoring" not in done.stderr.lower() and "failed" not in done.stderr.lower(), \
        done.stderr


def test_snippets_make_the_user_and_the_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name, sub in (("igrt.sysusers.conf", "sysusers.d"), ("igrt.tmpfiles.conf", "tmpfiles.d")):
        target = root / "usr" / "lib" / sub / "igrt.conf"
        target.parent.mkdir(parents=True)
        shutil.copy(SYSTEMD / name, target)
    (root / "etc").mkdir()
    _run("systemd-sysusers", root)
    passwd = {line.split(":")[0]: line.split(":") for line in
              (root / "etc" / "passwd").read_text().splitlines()}
    group = {line.split(":")[0]: line.split(":") for line in
             (root / "etc" / "group").read_text().splitlines()}
    user = passwd["igrt"]
    assert (user[5], user[6]) == ("/var/lib/igrt", "/usr/sbin/nologin")
    assert int(user[2]) < 1000  # a system user
    assert user[3] == group["igrt"][2]  # its own group
    _run("systemd-tmpfiles", root, "--create")
    for path, uid, mode in ((root / "var" / "lib" / "igrt", int(user[2]), 0o750),
                            (root / "etc" / "igrt", 0, 0o750)):
        st = path.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, int(user[3]), mode), path


def test_unit_documentation_installs_the_snippets_instead_of_useradd() -> None:
    text = (SYSTEMD / "README.md").read_text()
    assert "useradd" not in text
    assert "sysusers.d/igrt.conf" in text and "tmpfiles.d/igrt.conf" in text
