"""The demo's pieces: the time-ordered feed of a raw night, the engine command, the environment."""

from __future__ import annotations

import os
from pathlib import Path

from sedmtui.demo import REPO, demo_environment, engine_command
from sedmtui.feeder import Feeder, feed_plan, place
from tests.conftest import MINI_NIGHT


def test_feed_plan_calibrations_first_then_one_exposure_at_a_time(mini_raw):
    steps = feed_plan(mini_raw, MINI_NIGHT)
    assert steps[0].label == "calibrations"
    cal = {f.name for f in steps[0].files}
    assert all(n.startswith("ifu") for n in cal) and any(f.parent.name < MINI_NIGHT for f in steps[0].files)
    exposures = [s for s in steps if s.label.startswith("exposure")]
    assert [s.label[-8:] for s in exposures] == sorted(s.label[-8:] for s in exposures)
    assert exposures[0].label.endswith("03_02_00")  # the standard comes first in time
    for s in exposures:
        names = [f.name for f in s.files]
        ifu = [n for n in names if n.startswith("ifu")]
        assert ifu[0].endswith(s.label[-8:] + ".fits")
        assert all(n.startswith("rc") for n in names[:names.index(ifu[0])])  # guider frames before the IFU frame
    every = [f for s in steps for f in s.files]
    assert len(every) == len(set(every)) == len(list(mini_raw.glob("2026112[34]/*.fits")))


def test_feeder_places_complete_files_in_order(mini_raw, tmp_path):
    steps = feed_plan(mini_raw, MINI_NIGHT)[:2]
    seen = []
    feeder = Feeder(mini_raw, tmp_path, steps, interval_s=0.01, on_step=lambda s: seen.append(s.label))
    feeder.run()
    assert seen == [s.label for s in steps]
    for f in steps[1].files:
        assert (tmp_path / f).stat().st_size == (mini_raw / f).stat().st_size
    assert not list(tmp_path.rglob(".*.part"))


def test_place_is_atomic_and_overwrites(tmp_path):
    src = tmp_path / "a.fits"
    src.write_bytes(b"x" * 2880)
    dst = tmp_path / "raw" / "20261124" / "a.fits"
    place(src, dst)
    place(src, dst)
    assert dst.read_bytes() == src.read_bytes() and os.listdir(dst.parent) == ["a.fits"]


def test_engine_command_and_environment():
    cmd = engine_command(Path("/r"), Path("/x"), "20261124", once=True)
    assert cmd[1:4] == ["-m", "sedmtui", "--batch"] and cmd[-1] == "--once" and "--night" in cmd
    env = demo_environment({"SEDMTUI_CONFIG": "/etc/x.toml"})
    assert "SEDMTUI_CONFIG" not in env
    shared = REPO.parent / "shared" / "snid-templates-2.0"
    if shared.is_dir():
        assert env["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] == str(shared)
    assert demo_environment({"SEDMTUI_CLASSIFY_TEMPLATES_DIR": "/t"})["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] == "/t"
