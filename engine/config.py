"""Configuration: a TOML file, then environment variables, then command-line flags.

Every setting has a documented default. The file is ``sedmtui.toml`` (path from ``--config``
or ``SEDMTUI_CONFIG``); each table maps onto one frozen dataclass below::

    [paths]
    raw_root = "/data/sedmdrp/raw"
    redux_root = "/data/sedmdrp/redux"

    [watch]
    force_polling = "auto"

    [classify]
    templates_dir = "/opt/snid/templates-2.0"

Environment overrides: ``SEDMTUI_<FIELD>`` for the ``[paths]`` table (``SEDMTUI_RAW_ROOT``,
``SEDMTUI_REDUX_ROOT``, ``SEDMTUI_DB``) and ``SEDMTUI_<TABLE>_<FIELD>`` for the others
(``SEDMTUI_WATCH_FORCE_POLLING``, ``SEDMTUI_CLASSIFY_TEMPLATES_DIR``, ...).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from engine.astrometry.options import AstrometryOptions
from engine.classify.options import SnidOptions
from engine.delivery.settings import (
    SECTIONS as DELIVERY_SECTIONS,
)
from engine.delivery.settings import (
    DeliverySettings,
    FritzSettings,
    ReportSettings,
    SlackSettings,
    SmtpSettings,
    TnsSettings,
    secret_names,
)
from engine.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class PathsConfig:
    """Where raw frames are read and products and state are written."""

    raw_root: str = "raw"
    """Directory holding one sub-directory of raw frames per UT night ``YYYYMMDD``."""
    redux_root: str = "redux"
    """Directory receiving one sub-directory of products per UT night."""
    db: str = ""
    """State database; empty means ``<redux_root>/sedm.db``."""

    @property
    def db_path(self) -> Path:
        """Resolved path of the state database."""
        return Path(self.db) if self.db else Path(self.redux_root) / "sedm.db"


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    """How the raw directory is watched and when a file counts as complete."""

    force_polling: str = "auto"
    """``auto`` (poll on NFS/CIFS mounts), ``true`` or ``false``."""
    poll_delay_ms: int = 500
    """Polling period when polling is used [ms]."""
    sweep_s: float = 1.0
    """Period of the sweep that promotes stable files [s]."""
    stable_s: float = 2.0
    """A file is complete once its size and mtime were unchanged for this long [s]."""
    rescan_s: float = 180.0
    """Period of the full directory rescan that catches lost events [s]."""
    retry_backoff_s: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)
    """Waits before re-reading a truncated or corrupt file [s]; the last repeats."""
    max_retries: int = 8
    """Give up on a corrupt file after this many attempts (it stays recorded as failed)."""

    def __post_init__(self) -> None:
        if str(self.force_polling).lower() not in {"auto", "true", "false"}:
            raise ConfigError(f"watch.force_polling must be auto, true or false, not {self.force_polling!r}")


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """The engine loop."""

    workers: int = 2
    """Frames reduced concurrently (process pool size); 0 or 1 reduces in the main process."""
    heartbeat_s: float = 2.0
    """Heartbeat period of the writer lease [s]."""
    lease_timeout_s: float = 30.0
    """A lease whose heartbeat is older than this may be taken over [s]."""
    idle_poll_s: float = 0.5
    """Wait between loop iterations when idle [s]."""
    twilight_ut_hour: float = 2.5
    """UT hour after which a minimal calibration set is used if the ideal one is incomplete."""
    fallback_max_age_days: int = 30
    """Oldest night whose calibration products may be used as a fallback [day]."""
    stages: str = "all"
    """Stages to run: ``all`` or a comma list of ``calibration, science, requests`` (``none`` = ingest only;
    without ``requests`` no console request is served)."""


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig(SnidOptions):
    """The built-in SNID-compatible classifier: SNID's own options (:class:`SnidOptions`, with
    their defaults and checks: ``wmin``, ``rlapmin``, ``avoid`` = template-name substrings, ...)
    and what only the engine needs."""

    templates_dir: str = ""
    """Directory of SNID ``.lnw`` templates; empty disables classification (said at start-up)."""
    use_external_snid: bool = False
    """Also run an external ``snid`` executable found on PATH and record its answer."""


@dataclass(frozen=True, kw_only=True)
class AstrometryConfig(AstrometryOptions):
    """Target position from the guider frames: the solver's own options
    (:class:`AstrometryOptions`: ``backend``, ``parity``, ``solve_field_*``, detection and vote
    tunables) and the reference catalogue."""

    catalog_dir: str = ""
    """Reference star catalogue directory (FITS tables ra, dec, mag); empty: ``<raw_root>/catalog``."""


@dataclass(frozen=True, kw_only=True)
class ScienceConfig:
    """Science reduction of each exposure."""

    flat: str = "chromatic"
    """Per-spaxel flat applied to cubes: ``chromatic``, ``achromatic`` or ``none``."""
    fit_radius: float = 10.0
    """Spaxels within this distance of the centroid guess are fitted [spaxel unit]."""
    n_metaslices_science: int = 6
    n_metaslices_standard: int = 7
    write_debiased: bool = True
    """Write ``b_ifu...fits`` (bias-subtracted, before cosmic-ray cleaning)."""
    fluxcal_max_age_days: int = 30
    """Oldest sensitivity (from an earlier night) used when the night has no standard yet [day]."""
    verify_figure: bool = True
    """Write the ``verify_...png`` figure of every extraction."""

    def __post_init__(self) -> None:
        if self.flat not in ("chromatic", "achromatic", "none"):
            raise ConfigError(f"science.flat must be chromatic, achromatic or none, not {self.flat!r}")


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole resolved configuration."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    astrometry: AstrometryConfig = field(default_factory=AstrometryConfig)
    science: ScienceConfig = field(default_factory=ScienceConfig)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    fritz: FritzSettings = field(default_factory=FritzSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    tns: TnsSettings = field(default_factory=TnsSettings)

    def catalog_dir(self) -> str:
        """Resolved reference-catalogue directory."""
        return self.astrometry.catalog_dir or str(Path(self.paths.raw_root) / "catalog")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for provenance records); secret settings read ``***`` when set."""
        out = dataclasses.asdict(self)
        for section, cls in _SECTIONS.items():
            for name in secret_names(cls):
                out[section][name] = mask(out[section][name])
        return out


_SECTIONS: dict[str, type] = {
    "paths": PathsConfig,
    "watch": WatchConfig,
    "engine": EngineConfig,
    "classify": ClassifyConfig,
    "astrometry": AstrometryConfig,
    "science": ScienceConfig,
    **DELIVERY_SECTIONS,
}


def mask(value: Any) -> str:
    """A secret as shown anywhere: ``***`` when set, empty when not."""
    return "***" if value else ""


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """``value`` (from TOML, the environment or a flag) as a field of type ``typ``.

    Handles ``bool`` (``1/true/yes/on``, ``0/false/no/off``), ``int``, ``float``, ``str``,
    ``X | None`` (``""`` or ``none``: ``None``) and ``tuple[X, ...]`` (a list, or a string of
    comma- or space-separated items).
    """
    args = [a for a in get_args(typ) if a is not type(None)]
    if get_origin(typ) in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return _coerce(value, args[0], where)
    if get_origin(typ) is tuple:
        items = [v for v in value.replace(",", " ").split() if v] if isinstance(value, str) else list(value)
        return tuple(_coerce(v, args[0] if args else str, where) for v in items)
    try:
        if typ is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in {"1", "true", "yes", "on"}:
                    return True
                if low in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            return bool(value)
        if typ in (int, float):
            return typ(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        msg = f"configuration value {where} = {value!r} is not a valid {getattr(typ, '__name__', typ)}"
        raise ConfigError(msg) from exc


def _env_name(section: str, name: str) -> str:
    return f"SEDMTUI_{name.upper()}" if section == "paths" else f"SEDMTUI_{section.upper()}_{name.upper()}"


FOREIGN_TABLES = ("console", "cluster")
"""Tables of the configuration file that belong to the console (its keymap) or to ``sedmtui reprocess``'s
cluster (:mod:`engine.reprocess.cluster`), not the engine (so never in a product's provenance)."""


def config_file_path(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The configuration file in use: ``path``, else ``$SEDMTUI_CONFIG``, else ``./sedmtui.toml`` if it exists."""
    env = os.environ if env is None else env
    if path is None:
        path = env.get("SEDMTUI_CONFIG") or ("sedmtui.toml" if Path("sedmtui.toml").is_file() else None)
    return None if path is None else Path(path)


def read_config_file(path: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    """The tables of a TOML configuration file (``{}`` for ``None``).

    Raises
    ------
    ConfigError
        The file does not exist or is not valid TOML.
    """
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc


def load_config(
    path: str | os.PathLike | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Resolve the configuration: defaults < TOML file < environment < ``overrides``.

    Parameters
    ----------
    path : path-like, optional
        TOML file. ``None`` uses ``$SEDMTUI_CONFIG`` if set, else ``./sedmtui.toml`` if it
        exists, else defaults only.
    env : mapping, optional
        Environment (defaults to ``os.environ``).
    overrides : mapping, optional
        ``{table: {field: value}}`` from command-line flags; ``None`` values are ignored.

    Raises
    ------
    ConfigError
        Unreadable file, unknown table or key, or a value of the wrong type.
    """
    env = os.environ if env is None else env
    path = config_file_path(path, env)
    data = {k: v for k, v in read_config_file(path).items() if k not in FOREIGN_TABLES}
    _check_private(path, data)
    data = _merge_secrets_file(data, env)
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"unknown table(s) {sorted(unknown)} in {path}; known: {sorted(_SECTIONS)}")
    built = {}
    for section, cls in _SECTIONS.items():
        hints = get_type_hints(cls)
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        table = data.get(section, {})
        bad = set(table) - names
        if bad:
            raise ConfigError(f"unknown key(s) {sorted(bad)} in [{section}] of {path}; known: {sorted(names)}")
        for name in names:
            where = f"{section}.{name}"
            if name in table:
                values[name] = _coerce(table[name], hints[name], where)
            env_value = env.get(_env_name(section, name))
            if env_value is not None:
                values[name] = _coerce(env_value, hints[name], _env_name(section, name))
            over = (overrides or {}).get(section, {}).get(name)
            if over is not None:
                values[name] = _coerce(over, hints[name], f"--{name.replace('_', '-')}")
        built[section] = cls(**values)
    return Config(**built)


def _secrets_in(data: Mapping[str, Any]) -> list[str]:
    """``section.key`` of every secret setting given a non-empty value in ``data``."""
    return [f"{section}.{name}" for section, cls in _SECTIONS.items() for name in secret_names(cls)
            if isinstance(data.get(section), Mapping) and data[section].get(name)]


def _check_private(path: Path | None, data: Mapping[str, Any]) -> None:
    """A file that holds a secret must be readable by its owner only.

    Raises
    ------
    ConfigError
        ``path`` holds a secret and its group or others may read it.
    """
    held = _secrets_in(data)
    if path is None or not held:
        return
    mode = Path(path).stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{path} holds {', '.join(held)} but is readable by others (mode {mode:o}): run `chmod 600 {path}`, "
            "or move the secret to its environment variable or to delivery.secrets_file")


def _merge_secrets_file(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``data`` with the secrets of ``delivery.secrets_file`` (only secret keys are read from it)."""
    path = env.get("SEDMTUI_DELIVERY_SECRETS_FILE") or (data.get("delivery") or {}).get("secrets_file")
    if not path:
        return data
    secrets = read_config_file(path)
    _check_private(Path(path), secrets)
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for section, table in secrets.items():
        cls = _SECTIONS.get(section)
        allowed = secret_names(cls) if cls else ()
        bad = set(table) - set(allowed) if isinstance(table, Mapping) else {section}
        if bad:
            raise ConfigError(f"{path} may hold only secret settings; [{section}] {sorted(bad)} is not one "
                              f"(secrets: {', '.join(_all_secret_keys())})")
        merged.setdefault(section, {}).update(table)
    return merged


def _all_secret_keys() -> list[str]:
    return [f"{section}.{name}" for section, cls in _SECTIONS.items() for name in secret_names(cls)]


def resolve_config(flags: Any) -> Config:
    """The configuration of a parsed command line (its ``--config`` and path flags).

    Parameters
    ----------
    flags : argparse.Namespace or any object
        Attributes ``config``, ``raw_root``, ``redux_root``, ``db`` and ``workers`` are used
        where present (``None`` or missing: not given).
    """
    overrides = {"paths": {"raw_root": getattr(flags, "raw_root", None), "redux_root": getattr(flags, "redux_root", None),
                           "db": getattr(flags, "db", None)},
                 "engine": {"workers": getattr(flags, "workers", None)}}
    return load_config(getattr(flags, "config", None), overrides=overrides)


def describe_settings() -> str:
    """Human-readable list of every setting, its default and its environment variable."""
    lines = []
    for section, cls in _SECTIONS.items():
        lines.append(f"[{section}]")
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if f.metadata.get("secret"):
                lines.append(f"  {f.name} = {mask(default)!r}   (secret: env {_env_name(section, f.name)} "
                             "or delivery.secrets_file; never shown)")
                continue
            lines.append(f"  {f.name} = {default!r}   (env {_env_name(section, f.name)})")
    return "\n".join(lines)
