"""Start the console: colours and terminal environment first, then Textual.

``--colors truecolor|256|16`` is mapped onto Textual's ``TEXTUAL_COLOR_SYSTEM`` before Textual
is imported (it reads the variable at import time). Over SSH ``COLORTERM`` is usually not
forwarded, so ``auto`` leaves Rich's detection (often 256 colours) unless the user set it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

COLOR_SYSTEMS = {"truecolor": "truecolor", "256": "256", "16": "standard"}
"""``--colors`` value -> ``TEXTUAL_COLOR_SYSTEM``."""


def terminal_environment(colors: str, environ: dict | None = None) -> dict[str, str]:
    """Environment variables to set before Textual starts.

    Parameters
    ----------
    colors : {"auto", "truecolor", "256", "16"}
        Colour depth asked on the command line.
    environ : dict, optional
        The current environment (default ``os.environ``); existing values win for ``auto``.
    """
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    if colors in COLOR_SYSTEMS:
        out["TEXTUAL_COLOR_SYSTEM"] = COLOR_SYSTEMS[colors]
    # nothing animates: an idle console sends nothing, a slow link gets fewer frames
    out.setdefault("TEXTUAL_ANIMATIONS", env.get("TEXTUAL_ANIMATIONS", "none"))
    return out


def _fail(msg: str, code: int = 2) -> int:
    print(f"sedmtui: {msg}", file=sys.stderr)
    return code


def resolve_night(reader, night: str | None) -> str:
    """``--night``, else the newest night of the database, else today (UT)."""
    if night:
        return night
    nights = reader.nights()
    if nights:
        return nights[0]
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y%m%d")


def product_root(reader, night: str, db: Path, configured: Path, *, explicit: bool) -> Path:
    """The reduction root whose ``<night>/`` holds the products of the database's night.

    ``--redux-root`` wins when given. Otherwise the database's own directory comes first
    (``sedmtui --db demo-night/redux/sedm.db`` must not read products from the default root),
    then the directory the engine recorded for the night, then the configured root.
    """
    if explicit:
        return configured
    candidates = [db.parent]
    row = reader.night(night) or {}
    if row.get("redux_dir"):
        candidates.append(Path(row["redux_dir"]).parent)
    candidates.append(configured)
    for root in candidates:
        if (root / night).is_dir():
            return root
    return db.parent


def build_app(ns: argparse.Namespace, *, clock=None):
    """The console App for a parsed command line (raises ``SystemExit`` with a message on errors)."""
    from engine.commands import load_config_with_console
    from engine.errors import EngineError, SchemaError
    from engine.state.reader import StateReader
    from sedmtui.settings import console_settings

    try:
        config, table, path = load_config_with_console(ns)
        settings = console_settings(table, path)
    except EngineError as exc:
        raise SystemExit(_fail(str(exc))) from exc
    db = Path(config.paths.db_path)
    if not db.exists():
        hint = ""
        demo = Path(getattr(ns, "demo_dir", None) or "demo-night") / "redux" / "sedm.db"
        if demo.exists() and demo.resolve() != db.resolve():
            hint = f" (the demo's state is {demo}: sedmtui --db {demo})"
        raise SystemExit(_fail(f"no state database at {db}: start the engine (sedmtui --batch) or pass --db / "
                               f"--redux-root{hint}"))
    try:
        reader = StateReader(db, readonly=bool(getattr(ns, "readonly", False)))
    except SchemaError as exc:
        raise SystemExit(_fail(f"{exc}\n(this console cannot read it; nothing was changed)")) from exc
    except Exception as exc:
        raise SystemExit(_fail(f"cannot open {db}: {exc}")) from exc
    night = resolve_night(reader, getattr(ns, "night", None))
    from sedmtui.app import NightApp

    root = product_root(reader, night, db, Path(config.paths.redux_root), explicit=bool(getattr(ns, "redux_root", None)))
    return NightApp(db_path=db, night=night, redux_root=root, settings=settings,
                    readonly=bool(getattr(ns, "readonly", False)), fit_radius=config.science.fit_radius,
                    clock=clock, reader=reader)


def run_console(ns: argparse.Namespace) -> int:
    """``sedmtui``: open the night console."""
    os.environ.update(terminal_environment(getattr(ns, "colors", "auto") or "auto"))
    try:
        app = build_app(ns)
    except SystemExit as exc:
        return int(exc.code or 0)
    app.run(mouse=not getattr(ns, "no_mouse", False))
    return int(app.return_code or 0)


__all__ = ["build_app", "resolve_night", "run_console", "terminal_environment"]
