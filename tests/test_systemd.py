"""The systemd unit: what it promises, ``systemd-analyze verify`` and the security exposure."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "igrt@.service"
IP_DROP_IN = UNIT.with_name("ip-allow.conf")
EXEC_START = "/opt/igrt/venv/bin/igrt serve --config /etc/igrt/%i.toml"
MAX_EXPOSURE = 1.5  # issue 10: the hardened unit stays at most 1.5
OVERALL_RE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path is not None, "systemd-analyze is missing: run ./dev setup (Debian package systemd)"
    return path


def _parse(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value assigned (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: keep each setting on one line"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"line {number}: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _verify(unit_text: str, tmp_path: Path) -> str:
    """Run ``systemd-analyze verify`` on the unit with ExecStart pointed at a real executable
    (verify checks that it exists); returns everything it printed ('' = clean)."""
    stub = tmp_path / "bin" / "igrt"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    assert "ExecStart=/opt/igrt/venv/bin/igrt " in unit_text
    text = unit_text.replace("ExecStart=/opt/igrt/venv/bin/igrt ", f"ExecStart={stub} ")
    unit = tmp_path / "units" / "igrt@.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (f"exit status {done.returncode}\n" if done.returncode else "") + (
        done.stdout + done.stderr
    ).strip()


def _exposure(unit_text: str, tmp_path: Path) -> tuple[float, int]:
    """The overall exposure ``systemd-analyze security --offline`` rates the unit with, and the
    exit status of the same check with ``--threshold`` at MAX_EXPOSURE."""
    unit = tmp_path / "igrt@.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(unit_text, encoding="utf-8")
    command = [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    match = OVERALL_RE.search(done.stdout)
    assert match is not None, f"no overall exposure in:\n{done.stdout}\n{done.stderr}"
    threshold = f"--threshold={round(MAX_EXPOSURE * 10)}"  # the option counts in tenths
    gate = subprocess.run(
        [*command, threshold], capture_output=True, text=True, timeout=60, check=False
    )
    return float(match[1]), gate.returncode


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert _verify(UNIT.read_text(encoding="utf-8"), tmp_path) == ""


def test_unit_exposure_is_at_most_1_5(tmp_path: Path) -> None:
    exposure, gate = _exposure(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert exposure <= MAX_EXPOSURE
    assert gate == 0


def _with_drop_in(unit_text: str, drop_in_text: str) -> str:
    """The unit as systemd sees it with the drop-in's [Service] lines (they only add here)."""
    lines = [line for line in drop_in_text.splitlines()
             if line.strip() and not line.startswith(("#", "[Service]"))]
    return unit_text.replace("[Service]\n", "[Service]\n" + "\n".join(lines) + "\n", 1)


def test_the_ip_allow_drop_in_verifies_and_lowers_the_exposure(tmp_path: Path) -> None:
    unit = UNIT.read_text(encoding="utf-8")
    combined = _with_drop_in(unit, IP_DROP_IN.read_text(encoding="utf-8"))
    settings = _parse(combined)["Service"]
    assert settings["IPAddressDeny"] == ["any"]
    assert settings["IPAddressAllow"][0].startswith("localhost ")
    assert _verify(combined, tmp_path / "verify") == ""
    alone, _ = _exposure(unit, tmp_path / "alone")
    with_ip, gate = _exposure(combined, tmp_path / "with-ip")
    assert with_ip < alone <= MAX_EXPOSURE and gate == 0


@pytest.mark.parametrize(
    ("bad_line", "complaint"),
    [
        pytest.param("FooBar=1", "Unknown key", id="unknown-key"),
        pytest.param("ProtectSystem=sometimes", "protect system", id="bad-value"),
        pytest.param("Type=notifyx", "service type", id="bad-type"),
    ],
)
def test_verify_check_catches_a_broken_unit(bad_line: str, complaint: str, tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8").replace("[Service]\n", f"[Service]\n{bad_line}\n")
    assert complaint in _verify(text, tmp_path)


def test_exposure_check_fails_an_unhardened_unit(tmp_path: Path) -> None:
    sections = _parse(UNIT.read_text(encoding="utf-8"))
    keep = ("Type", "ExecStart", "User", "Group", "StateDirectory")
    service = [f"{k}={v}" for k, values in sections["Service"].items() if k in keep for v in values]
    text = "[Unit]\nDescription=igrt\n\n[Service]\n" + "\n".join(service) + "\n"
    exposure, gate = _exposure(text, tmp_path)
    assert exposure > MAX_EXPOSURE
    assert gate != 0


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        pytest.param("Service", "Type", ["notify"], id="type-notify"),
        pytest.param("Service", "NotifyAccess", ["main"], id="notify-main"),
        pytest.param("Service", "ExecStart", [EXEC_START], id="exec-start"),
        pytest.param("Service", "WatchdogSec", ["30s"], id="watchdog"),
        pytest.param("Service", "Restart", ["on-failure"], id="restart"),
        pytest.param("Service", "RestartPreventExitStatus", ["2"], id="no-restart-on-config"),
        pytest.param("Service", "User", ["igrt"], id="user"),
        pytest.param("Service", "Group", ["igrt"], id="group"),
        pytest.param("Service", "StateDirectory", ["igrt/%i"], id="state-dir"),
        pytest.param("Service", "ProtectSystem", ["strict"], id="protect-system"),
        pytest.param("Service", "ProtectHome", ["yes"], id="protect-home"),
        pytest.param("Service", "PrivateTmp", ["yes"], id="private-tmp"),
        pytest.param("Service", "PrivateDevices", ["yes"], id="private-devices"),
        pytest.param("Service", "NoNewPrivileges", ["yes"], id="no-new-privileges"),
        pytest.param("Service", "CapabilityBoundingSet", [""], id="no-capabilities"),
        pytest.param(
            "Service",
            "RestrictAddressFamilies",
            ["AF_INET AF_INET6 AF_UNIX"],
            id="address-families",
        ),
        pytest.param("Service", "ReadWritePaths", None, id="writes-only-state"),
        pytest.param("Service", "DynamicUser", None, id="static-user"),
        pytest.param("Unit", "AssertPathExists", ["/etc/igrt/%i.toml"], id="config-exists"),
        pytest.param("Install", "WantedBy", ["multi-user.target"], id="wanted-by"),
    ],
)
def test_unit_settings(section: str, key: str, expected: list[str] | None) -> None:
    sections = _parse(UNIT.read_text(encoding="utf-8"))
    assert sections[section].get(key) == expected
