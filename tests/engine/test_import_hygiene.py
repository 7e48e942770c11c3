"""The engine and the batch entry point must never load Textual or Rich."""

import subprocess
import sys
from pathlib import Path

CODE = r"""
import sys
import engine, engine.cli, engine.pipeline.engine, engine.pipeline.registry, engine.state.reader
import engine.synth.night
from engine.cli import dispatch
cmd, ns = dispatch(["--batch", "--night", "20261124", "--once"])
assert cmd == "batch"
import sedmtui.__main__
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
print(",".join(bad))
"""


def test_engine_imports_neither_textual_nor_rich():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine imported: {out.stdout.strip()}"


def test_batch_help_runs_without_textual():
    code = (
        "import sys, contextlib, io\n"
        "from sedmtui.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--batch', '--help'])\n    except SystemExit:\n        pass\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('textual','rich')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_console_starts_without_scipy_or_sqlite_utils():
    """scipy.ndimage and scipy.spatial took 240 ms of the console's start, sqlite-utils 110 ms (the
    first-frame target is 0.5 s): what needs them (spike marks; the engine's writer) imports them
    when used."""
    code = ("import sys, sedmtui.app; print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', "
            "'sqlite_utils')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "[]", out.stdout[:300]
