"""``sedmtui status|report|redex`` (engine/commands.py) and the console's start-up checks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from engine.cli import dispatch
from engine.commands import run_redex, run_report, run_status, targets_table
from engine.errors import ConfigError
from sedmtui.launch import build_app, terminal_environment
from sedmtui.settings import console_settings
from tests.conftest import REPO
from tests.sedmtui.fakeengine import FakeEngine, request_rows


def ns_for(night, argv: list[str]):
    extra = ["--timeout", "20"] if argv[0] == "redex" else []
    cmd, ns = dispatch([*argv, *extra, "--redux-root", str(night.redux), "--raw-root", str(night.raw)])
    return cmd, ns


def test_status_prints_engine_calibration_and_targets(night, capsys):
    _, ns = ns_for(night, ["status"])
    assert run_status(ns) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("engine: stopped")
    assert "calibration ok (ideal set) · λ rms 0.31 Å · 1417 spaxels · flat std 4.3 %" in out[1]
    assert out[2].split()[:4] == ["UT", "object", "kind", "exp"]
    row = next(line for line in out if line.startswith("04:21:30"))
    assert " 5 " in row and "Ia-norm" in row and "guider astrometry failed" in row
    assert len([line for line in out if line[:2].isdigit()]) == 6


def test_targets_table_empty_and_candidates():
    assert targets_table([]).startswith("UT")


def test_redex_without_engine_says_so_and_files_nothing(night, capsys):
    _, ns = ns_for(night, ["redex", "04_21_30", "1.0", "2.0"])
    assert run_redex(ns) == 3
    err = capsys.readouterr().err
    assert "no live engine" in err and "nothing was filed" in err and "--no-wait" in err
    assert request_rows(night.db) == []
    _, ns = ns_for(night, ["redex", "04_21_30", "--no-wait"])
    assert run_redex(ns) == 0
    assert [r["kind"] for r in request_rows(night.db)] == ["reextract"]


def test_redex_usage_errors(night, capsys):
    _, ns = ns_for(night, ["redex", "99_00_00"])
    assert run_redex(ns) == 2
    _, ns = ns_for(night, ["redex", "04_21_30", "1.0"])
    assert run_redex(ns) == 2
    _, ns = ns_for(night, ["redex", "04_21_30", "--accept"])
    assert run_redex(ns) == 2
    assert "no re-extraction waiting" in capsys.readouterr().err


def test_redex_reextract_then_accept_with_an_engine(night, capsys):
    with FakeEngine(night):
        _, ns = ns_for(night, ["redex", "04_21_30", "-3.5", "3.2", "--lstep", "2"])
        assert run_redex(ns) == 0
        out = capsys.readouterr().out
        assert "re-extraction ready: redo100001" in out and "Q1" in out
        assert "new spectrum: " in out and "spec_auto_redo100001_lstep1__" in out
        assert "sedmtui redex 04_21_30 --accept" in out
        _, ns = ns_for(night, ["redex", "04_21_30", "--accept"])
        assert run_redex(ns) == 0
        assert "accepted: redo100001" in capsys.readouterr().out
        _, ns = ns_for(night, ["redex", "04_21_30", "40", "0"])
        assert run_redex(ns) == 1
        assert "outside the IFU" in capsys.readouterr().err
    rows = request_rows(night.db)
    assert [(r["kind"], r["status"]) for r in rows] == [("reextract", "done"), ("accept", "done"),
                                                         ("reextract", "failed")]
    assert rows[0]["params"] == {"centroid": [-3.5, 3.2], "region": None, "lstep": 2}


def test_redex_recover_and_reject(night, capsys):
    with FakeEngine(night):
        _, ns = ns_for(night, ["redex", "04_21_30"])
        assert run_redex(ns) == 0
        _, ns = ns_for(night, ["redex", "04_21_30", "--reject"])
        assert run_redex(ns) == 0
        assert "rejected extraction" in capsys.readouterr().out
        _, ns = ns_for(night, ["redex", "04_21_30", "--recover"])
        assert run_redex(ns) == 0
        assert "quality 5 -> 1" in capsys.readouterr().out


def test_report_print_no_engine_and_with_engine(night, capsys):
    _, ns = ns_for(night, ["report", "--print"])
    assert run_report(ns) == 2
    _, ns = ns_for(night, ["report"])
    assert run_report(ns) == 3
    assert "no live engine" in capsys.readouterr().err
    with FakeEngine(night):
        _, ns = ns_for(night, ["report", "--final", "--comment", "clear, seeing 1.2"])
        assert run_report(ns) == 0
    out = capsys.readouterr().out
    assert "FINAL REPORT" in out and "clear, seeing 1.2" in out
    _, ns = ns_for(night, ["report", "--print"])
    assert run_report(ns) == 0
    assert "ZTF26ccccccc" in capsys.readouterr().out
    _, ns = ns_for(night, ["report"])
    assert run_report(ns) == 3
    assert "sedmtui report --print" in capsys.readouterr().err


def test_console_config_table_keymap_and_engine_config(tmp_path, night):
    cfg = tmp_path / "sedmtui.toml"
    cfg.write_text(f'[paths]\nredux_root = "{night.redux}"\n\n[console]\npoll_s = 0.5\n\n'
                   '[console.keymap]\n"target.accept" = "A"\n')
    _, ns = dispatch(["--config", str(cfg)])
    app = build_app(ns)
    assert app.settings.poll_s == 0.5 and app.settings.keymap == {"target.accept": "A"}
    assert app.settings.source == str(cfg) and app.redux_root == night.redux
    with pytest.raises(ConfigError):
        console_settings({"polls": 1})


def test_console_refuses_missing_and_newer_databases(tmp_path, night, capsys):
    _, ns = dispatch(["--redux-root", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit):
        build_app(ns)
    assert "no state database" in capsys.readouterr().err
    conn = sqlite3.connect(night.db)
    with conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES "
                     "('sedmtui_state', 'm999_future', 'x')")
    conn.close()
    _, ns = dispatch(["--redux-root", str(night.redux)])
    with pytest.raises(SystemExit) as exc:
        build_app(ns)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "newer schema" in err and "Upgrade sedmtui" in err


def test_colors_map_to_textual_environment():
    assert terminal_environment("256", {})["TEXTUAL_COLOR_SYSTEM"] == "256"
    assert terminal_environment("16", {})["TEXTUAL_COLOR_SYSTEM"] == "standard"
    assert "TEXTUAL_COLOR_SYSTEM" not in terminal_environment("auto", {})
    assert terminal_environment("auto", {})["TEXTUAL_ANIMATIONS"] == "none"


def test_redex_flags_and_commands_stay_textual_free():
    code = ("import sys\nfrom sedmtui.__main__ import main\n"
            "from engine.cli import dispatch\n"
            "cmd, ns = dispatch(['redex', '04_21_30', '--accept', '--extraction', '9'])\n"
            "assert cmd == 'redex' and ns.accept and ns.extraction == 9\n"
            "cmd, ns = dispatch(['--demo', '--demo-full'])\nassert ns.demo_full\n"
            "import engine.commands\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == ""


def test_a_signal_to_noise_that_rounds_to_zero_never_prints_as_minus_zero():
    from engine.commands import _whole

    assert [_whole(v) for v in (-0.3, 0.2, -1.6, 12.5, None)] == ["0", "0", "-2", "12", "-"]
