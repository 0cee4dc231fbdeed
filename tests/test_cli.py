"""services.cli, run as the real ``igrt`` console script: --version, logging options after the
sub-command, usage errors (exit 2, a sentence naming the argument), demo with the service down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from scp_client import make_config
from storescp import free_port

from igrt.config import config_to_toml
from igrt.dicom.identity import software_version
from phantoms.generator import write_planning_set

IGRT = str(Path(sys.executable).with_name("igrt"))


def igrt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IGRT, *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_planning_set(tmp_path_factory.mktemp("cli") / "plan", size="small").directory


def test_version() -> None:
    done = igrt("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"igrt {software_version()}")


@pytest.mark.parametrize("options", [["-v"], ["--log-level", "debug"]])
def test_log_options_after_the_sub_command(tmp_path: Path, options: list[str]) -> None:
    done = igrt("register", "--planning", str(tmp_path / "none"), "--cbct", str(tmp_path),
                *options)
    assert done.returncode == 2  # parsed: the usage check ran, not argparse's error
    assert "unrecognized arguments" not in done.stderr


def test_log_level_after_the_sub_command_is_applied(plan_dir: Path, tmp_path: Path) -> None:
    quiet = igrt("register", "--planning", str(plan_dir), "--cbct", str(plan_dir),
                 "--log-level", "error")
    loud = igrt("-v", "register", "--planning", str(plan_dir), "--cbct", str(tmp_path / "x"))
    assert quiet.returncode == loud.returncode == 2
    assert " INFO " not in quiet.stderr
    assert loud.stderr.strip().endswith("no such directory")


@pytest.mark.parametrize(("case", "expected"), [
    ("missing planning", "--planning {missing}: no such directory"),
    ("missing cbct", "--cbct {missing}: no such directory"),
    ("empty cbct", "--cbct {empty} holds no DICOM file igrt reads"),
    ("empty planning", "--planning {empty} holds no DICOM file igrt reads"),
    ("same", "--planning and --cbct both name {plan}"),
])
def test_usage_errors_exit_2_naming_the_argument(plan_dir: Path, tmp_path: Path, case: str,
                                                 expected: str) -> None:
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not DICOM")
    planning, cbct = {
        "missing planning": (missing, plan_dir), "missing cbct": (plan_dir, missing),
        "empty cbct": (plan_dir, empty), "empty planning": (empty, plan_dir),
        "same": (plan_dir, plan_dir)}[case]
    done = igrt("register", "--planning", str(planning), "--cbct", str(cbct))
    assert done.returncode == 2
    assert done.stdout == ""
    assert expected.format(missing=missing, empty=empty, plan=plan_dir) in done.stderr
    assert "Traceback" not in done.stderr


def test_swapped_directories_are_named(plan_dir: Path, tmp_path: Path) -> None:
    cbct_only = tmp_path / "cbct"
    cbct_only.mkdir()
    for ct in sorted(plan_dir.glob("CT.*"))[:3]:
        (cbct_only / ct.name).write_bytes(ct.read_bytes())
    done = igrt("register", "--planning", str(cbct_only), "--cbct", str(plan_dir))
    assert done.returncode == 2
    assert "are --planning and --cbct swapped?" in done.stderr


def test_demo_with_the_service_down_says_so(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "state")
    config = tmp_path / "igrt.toml"
    text = config_to_toml(cfg).replace(f"port = {cfg.dicom.port}\n", f"port = {free_port()}\n", 1)
    config.write_text(text)
    done = igrt("demo", "--config", str(config))
    assert done.returncode == 1
    assert "no igrt service answers at IGRT@127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr and "pynetdicom" not in done.stderr


@pytest.mark.parametrize(("environment", "huge"), [({}, "False"),
                                                   ({"NUMPY_MADVISE_HUGEPAGE": "1"}, "True")],
                         ids=["default", "the-operator-asks-for-them"])
def test_numpy_arrays_get_small_pages(environment: dict[str, str], huge: str) -> None:
    """Every command runs with NumPy's huge-page advice off (a fresh CBCT volume faulted in
    0.3 s with it), unless the operator's environment sets it."""
    code = ("import contextlib\nfrom services.cli import main\n"
            "with contextlib.suppress(SystemExit):\n    main(['register'])\n"
            "from services.cli import madvise_hugepage_setter\n"
            "print(madvise_hugepage_setter()(True))\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, **environment}, check=False, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == huge, done.stderr


def test_register_called_in_process_returns_its_status(tmp_path: Path) -> None:
    """Only the ``igrt`` program leaves without the interpreter's teardown; ``main`` called by
    another program returns the status, with argv given or taken from ``sys.argv``."""
    args = ["register", "--planning", str(tmp_path / "none"), "--cbct", str(tmp_path)]
    code = ("import sys\nfrom services.cli import main\n"
            f"print('given', main({args!r}), flush=True)\n"
            f"sys.argv = ['igrt', *{args!r}]\n"
            "print('from sys.argv', main(), flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.stdout.splitlines() == ["given 2", "from sys.argv 2"], done.stderr
    assert done.returncode == 0


def test_the_register_program_prints_its_whole_message_then_leaves(plan_dir: Path,
                                                                   tmp_path: Path) -> None:
    """The quick exit flushes first: the ``failed`` message (a copy of the planning set given
    as the CBCT: its CT is taken for the CBCT, so no planning CT is left) arrives whole, with
    exit status 1."""
    import json
    import shutil

    cbct = tmp_path / "cbct"
    shutil.copytree(plan_dir, cbct)
    # block-buffered, as on a pipe by default: an exit that skipped the flush would lose it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([IGRT, "register", "--planning", str(plan_dir), "--cbct", str(cbct)],
                          capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 1, done.stderr
    assert done.stdout.endswith("}\n")
    message = json.loads(done.stdout)
    assert message["status"] == "failed"
    assert message["reasons"][0].startswith("no_planning_ct:"), message["reasons"]
