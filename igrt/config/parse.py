"""Service configuration: one TOML file, read once into frozen dataclasses, validated here only
(the network sections in :mod:`igrt.config.network`).

``load_config(path)`` reads the file with :mod:`tomllib`; ``parse_config(data)`` turns the parsed
tables into a :class:`Config` or raises :class:`~igrt.core.errors.ConfigError` with a message that
names the full dotted key (``dicom.port``, ``dicom.peers[1].role``,
``registration.roi_size_mm[2]``), what is wrong and what is allowed. Missing keys take the
built-in defaults, which are complete and safe (loopback only); a ``[[dicom.peers]]`` array in the
file replaces the default peer list as a whole.

The state directory is resolved here (not created): ``[storage] dir`` if given (absolute),
else ``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``), else
``$XDG_STATE_HOME/igrt/<room>``, else ``~/.local/state/igrt/<room>``.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from igrt.config import model, network
from igrt.config.values import (
    ROOM_RE,
    Section,
    check_ae_title,
    check_host,
    check_listen,
    check_number,
    check_roi_name,
    describe,
    toml_value,
)
from igrt.core.errors import ConfigError
from igrt.core.nominal import CbctIsocenter

logger = logging.getLogger(__name__)


# --- public API ----------------------------------------------------------------------------------
def default_config(*, environ: Mapping[str, str] | None = None) -> model.Config:
    """The built-in configuration: loopback only, peers LINAC (imaging) and TPS (planning)."""
    return parse_config({}, environ=environ)


def load_config(path: Path | None, *, environ: Mapping[str, str] | None = None) -> model.Config:
    """Read and validate a TOML file; ``None`` gives :func:`default_config`."""
    if path is None:
        return default_config(environ=environ)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(f"configuration file {path} cannot be read: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"configuration file {path} is not UTF-8 text (byte {exc.start}); TOML must be UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror}") from None
    try:
        return parse_config(data, environ=environ)
    except ConfigError as exc:
        raise ConfigError(f"configuration file {path}: {exc.message}") from None


def parse_config(data: Mapping[str, Any], *,
                 environ: Mapping[str, str] | None = None) -> model.Config:
    """Validate parsed TOML tables (missing keys take defaults) and build the
    :class:`~igrt.config.model.Config`."""
    env = os.environ if environ is None else environ
    root = Section(data, "", model.Config)
    room = root.string("room", model.DEFAULT_ROOM)
    if not ROOM_RE.fullmatch(room):
        raise ConfigError(
            f"room: {room!r} is not a valid room name; use 1 to 32 letters, digits, '_' or '-'"
        )
    return model.Config(
        room=room,
        dicom=network.parse_dicom(root.section("dicom", model.DicomConfig)),
        zmq=network.parse_zmq(root.section("zmq", model.ZmqConfig)),
        storage=_parse_storage(root.section("storage", model.StorageConfig), env, room),
        couch=_parse_couch(root.section("couch", model.CouchConfig)),
        registration=_parse_registration(root.section("registration", model.RegistrationConfig)),
        review=_parse_review(root.section("review", model.ReviewConfig)),
        ui=_parse_ui(root.section("ui", model.UiConfig)),
        record=_parse_record(root.section("record", model.RecordConfig)),
        qa=_parse_qa(root.section("qa", model.QaConfig)),
    )


def default_state_dir(environ: Mapping[str, str], room: str) -> Path:
    """Where the store lives when ``[storage] dir`` is empty (see the module docstring)."""
    state = environ.get("STATE_DIRECTORY", "")
    if state:
        # systemd joins several StateDirectory= entries with ':'; the first is ours.
        first = Path(state.split(":")[0])
        if first.is_absolute():
            return first
        logger.warning("ignoring $STATE_DIRECTORY=%r: not an absolute path", state)
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore relative paths
        return Path(xdg) / "igrt" / room
    home = environ.get("HOME", "")
    base = Path(home) if home and Path(home).is_absolute() else Path.home()
    return base / ".local" / "state" / "igrt" / room


def config_to_toml(cfg: model.Config) -> str:
    """A TOML document that :func:`parse_config` reads back to ``cfg`` (storage dir explicit)."""
    reg = cfg.registration
    tls, curve = cfg.dicom.tls, cfg.zmq.curve
    tables: list[tuple[str, dict[str, object]]] = [
        ("", {"room": cfg.room}),
        ("[dicom]", {k: v for k, v in vars(cfg.dicom).items()
                     if k not in ("peers", "limits", "tls")}),
        ("[dicom.limits]", vars(cfg.dicom.limits)),
        *([("[dicom.tls]", _without_none(vars(tls)))] if tls is not None else []),
        *(("[[dicom.peers]]", _without_none(vars(p))) for p in cfg.dicom.peers),
        ("[zmq]", {k: v for k, v in vars(cfg.zmq).items() if k != "curve"}),
        *([("[zmq.curve]", _without_none(vars(curve)))] if curve is not None else []),
        ("[storage]", {**vars(cfg.storage), "dir": str(cfg.storage.dir)}),
        ("[couch]", vars(cfg.couch)),
        (
            "[registration]",
            {
                **vars(reg),
                "cross_check": reg.cross_check or "none",
                "roi_structure": reg.roi_structure or "",
            },
        ),
        ("[review]", vars(cfg.review)),
        ("[ui]", {**vars(cfg.ui), "operators_file": str(cfg.ui.operators_file or "")}),
        ("[record]", {k: v for k, v in vars(cfg.record).items() if k != "destinations"}),
        *(("[[record.destinations]]", vars(d)) for d in cfg.record.destinations),
        ("[qa]", vars(cfg.qa)),
    ]
    lines: list[str] = []
    for header, values in tables:
        lines += [header] if header else []
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def _without_none(values: dict[str, object]) -> dict[str, object]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if v is not None}


# --- sections ------------------------------------------------------------------------------------
def _parse_storage(t: Section, env: Mapping[str, str], room: str) -> model.StorageConfig:
    raw = t.string("dir", "")
    keep_days = t.integer("keep_days", 0, model.KEEP_DAYS_MAX, note="(0 = keep everything)")
    warning_mb = t.integer("free_space_warning_mb", 0, model.FREE_SPACE_WARNING_MAX_MB,
                           note="(0 = no warning)")
    if not raw:
        return model.StorageConfig(dir=default_state_dir(env, room), keep_days=keep_days,
                                   free_space_warning_mb=warning_mb)
    path = Path(raw)
    if "\0" in raw or not path.is_absolute():
        raise ConfigError(
            f"storage.dir: {raw!r} is not an absolute path; give an absolute path such as "
            f"/var/lib/igrt/{room}, or leave it empty to use the default state directory"
        )
    state = env.get("STATE_DIRECTORY", "")
    if state and Path(state.split(":")[0]) != path:
        logger.warning(
            "storage.dir %s overrides $STATE_DIRECTORY %s; under the systemd unit's "
            "ProtectSystem=strict it must also be listed in ReadWritePaths=",
            path,
            state,
        )
    return model.StorageConfig(dir=path, keep_days=keep_days, free_space_warning_mb=warning_mb)


def _parse_couch(t: Section) -> model.CouchConfig:
    dof = t.integer("dof", min(model.COUCH_DOFS), max(model.COUCH_DOFS))
    if dof not in model.COUCH_DOFS:
        raise ConfigError(
            f"couch.dof: {dof} is not a couch type; allowed 6 (all axes), "
            f"4 (translations + rotation about the vertical axis) or 3 (translations only)"
        )
    return model.CouchConfig(dof=dof)


def _parse_registration(t: Section) -> model.RegistrationConfig:
    engine = t.enum("engine", model.EngineName)
    cross_check = _cross_check(t, engine)
    roi_structure = t.string("roi_structure", "")
    check_roi_name(roi_structure, t.key("roi_structure"))
    return model.RegistrationConfig(
        cbct_isocenter=t.enum("cbct_isocenter", CbctIsocenter),
        engine=engine,
        cross_check=cross_check,
        cross_check_tolerance_mm=t.positive("cross_check_tolerance_mm",
                                            model.CHECK_TOLERANCE_MAX_MM),
        cross_check_tolerance_deg=t.positive("cross_check_tolerance_deg",
                                             model.CHECK_TOLERANCE_MAX_DEG),
        roi_size_mm=_roi_size(t),
        roi_structure=roi_structure or None,
        perturbation_check=t.boolean("perturbation_check"),
        perturbation_tolerance_mm=t.positive("perturbation_tolerance_mm",
                                             model.CHECK_TOLERANCE_MAX_MM),
        perturbation_tolerance_deg=t.positive(
            "perturbation_tolerance_deg", model.CHECK_TOLERANCE_MAX_DEG
        ),
        match_score_min=t.number("match_score_min", 0.0, 1.0),
        ambiguity_margin=t.number("ambiguity_margin", 0.0, 1.0),
        fov_fraction_min=t.number("fov_fraction_min", 0.25, 1.0),
        longitudinal_coverage_min=t.number("longitudinal_coverage_min", 0.0, 1.0),
        seed=t.integer("seed", 0, model.SEED_MAX),
        planning_cache_mb=t.integer("planning_cache_mb", model.PLANNING_CACHE_MIN_MB,
                                    model.PLANNING_CACHE_MAX_MB),
    )


def _cross_check(t: Section, engine: model.EngineName) -> model.EngineName | None:
    value = t.string("cross_check", "none")
    if value == "none":
        return None
    other = t.enum("cross_check", model.EngineName, extra=("none",))
    if other is engine:
        alternative = next(e for e in model.EngineName if e is not engine)
        raise ConfigError(
            f"{t.key('cross_check')}: {value!r} is also registration.engine, and the same engine "
            f"run twice cannot disagree; use {alternative.value!r} or 'none'"
        )
    return other


def _roi_size(t: Section) -> tuple[float, float, float]:
    key, value = t.key("roi_size_mm"), t.get("roi_size_mm")
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ConfigError(
            f"{key}: expected an array of 3 numbers (x, y, z extents in mm), got {describe(value)}"
        )
    x, y, z = (check_number(v, f"{key}[{i}]", model.ROI_MIN_MM, model.ROI_MAX_MM)
               for i, v in enumerate(value))
    return (x, y, z)


def _parse_ui(t: Section) -> model.UiConfig:
    listen = t.string("listen")
    check_listen(listen, t.key("listen"))
    raw = t.string("operators_file", "")
    operators = None
    if raw:
        if "\0" in raw or not Path(raw).is_absolute():
            raise ConfigError(f"{t.key('operators_file')}: {raw!r} is not an absolute path; "
                              "give the path of the operators file, e.g. /etc/igrt/operators.toml")
        operators = Path(raw)
    base_url = t.string("base_url")
    if base_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base_url):
        raise ConfigError(f"{t.key('base_url')}: {base_url!r} is not an http(s) URL such as "
                          "http://igrt-tb1.radonc.example:8765")
    return model.UiConfig(listen=listen, operators_file=operators, base_url=base_url.rstrip("/"))
def _parse_record(t: Section) -> model.RecordConfig:
    calling = t.string("calling_ae_title")
    check_ae_title(calling, t.key("calling_ae_title"))
    initial_s = t.number("retry_initial_s", model.RETRY_MIN_S, model.RETRY_MAX_S)
    max_s = t.number("retry_max_s", model.RETRY_MIN_S, model.RETRY_MAX_S)
    if max_s < initial_s:
        raise ConfigError(
            f"{t.key('retry_max_s')}: {max_s:g} is less than record.retry_initial_s "
            f"({initial_s:g}); the back-off grows from the first up to the largest interval")
    return model.RecordConfig(
        destinations=_parse_destinations(t.data.get("destinations", [])),
        calling_ae_title=calling,
        retry_initial_s=initial_s,
        retry_max_s=max_s,
        alarm_after_s=t.number("alarm_after_s", model.ALARM_MIN_S, model.ALARM_MAX_S),
        timeout_s=t.number("timeout_s", model.RECORD_TIMEOUT_MIN_S, model.RECORD_TIMEOUT_MAX_S),
    )


def _parse_destinations(value: Any) -> tuple[model.Destination, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            f"record.destinations: expected an array of tables ([[record.destinations]] "
            f"sections), got {describe(value)}")
    out: list[model.Destination] = []
    first_use: dict[str, str] = {}
    for i, item in enumerate(value):
        t = Section(item, f"record.destinations[{i}]", model.Destination,
                    title="[[record.destinations]]")
        for name in ("ae_title", "host", "port"):
            if name not in t.data:
                raise ConfigError(
                    f"{t.key(name)}: missing; every [[record.destinations]] table needs it")
        ae_title = t.string("ae_title")
        check_ae_title(ae_title, t.key("ae_title"))
        if ae_title in first_use:
            raise ConfigError(
                f"{t.key('ae_title')}: {ae_title!r} is already used by {first_use[ae_title]}; "
                "each destination AE title may appear once (deliveries are tracked by it)")
        first_use[ae_title] = t.key("ae_title")
        host = t.string("host")
        check_host(host, t.key("host"))
        out.append(model.Destination(ae_title, host, t.integer("port", 1, model.PORT_MAX)))
    return tuple(out)


def _parse_review(t: Section) -> model.ReviewConfig:
    return model.ReviewConfig(
        max_translation_mm=t.positive("max_translation_mm", model.REVIEW_MAX_MM),
        max_rotation_deg=t.positive("max_rotation_deg", model.REVIEW_MAX_DEG),
    )


def _parse_qa(t: Section) -> model.QaConfig:
    return model.QaConfig(
        tolerance_mm=t.positive("tolerance_mm", model.QA_TOLERANCE_MAX_MM),
        tolerance_deg=t.positive("tolerance_deg", model.QA_TOLERANCE_MAX_DEG),
        declaration_valid_h=t.positive("declaration_valid_h", model.QA_DECLARATION_MAX_H),
    )
