"""The pipeline's contracts: every stage implements the Stage protocol, tasks pickle small, the
recipes read in one short file each."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

from engine.config import Config, load_config
from engine.pipeline.tasks import (
    CalibrationFrames,
    CalibrationTask,
    ExposureTask,
    ExtractionRequest,
    FluxcalCandidate,
    RecalibrationTask,
    ReextractionTask,
)

REPO = Path(__file__).resolve().parents[2]


def _exposure() -> ExposureTask:
    config = load_config(None, env={"SEDMTUI_CLASSIFY_AVOID": "sn1991bg"})
    return ExposureTask(raw="/raw/20261124/ifu20261124_05_01_30.fits", night="20261124", obs_id="05_01_30",
                        kind="science", out_dir="/redux/20261124", cal_dir="/redux/20261124", cal_night="20261124",
                        catalog_dir="/raw/catalog", config=config,
                        fluxcal=(FluxcalCandidate("/redux/20261124/fluxcal_x.fits", 61000.1, "20261124"),),
                        job_key="science:20261124:05_01_30")


def test_every_stage_implements_the_protocol():
    from engine.delivery.service import DeliveryService
    from engine.pipeline.delivery_stage import DeliveryStage
    from engine.pipeline.registry import build_stages
    from engine.pipeline.stage import Stage

    stages = [*build_stages(Config()), DeliveryStage(DeliveryService.__new__(DeliveryService))]
    assert [s.name for s in stages] == ["calibration", "science", "requests", "delivery"]
    hooks = [name for name, _ in inspect.getmembers(Stage, inspect.isfunction) if not name.startswith("_")]
    assert set(hooks) >= {"plan", "on_submit", "progress", "record", "failed", "busy", "tick", "request_handlers"}
    for stage in stages:
        assert isinstance(stage, Stage), stage
        for hook in hooks:
            assert callable(getattr(type(stage), hook, None)), f"{stage.name} lacks {hook}"


def test_tasks_pickle_small_and_carry_the_typed_config():
    exposure = _exposure()
    reextraction = ReextractionTask(exposure=exposure, cube_file="e3d_x.fits",
                                    request=ExtractionRequest(tag="redo120000", centroid=(1.0, -2.0)))
    frames = CalibrationFrames.from_lists({"biases": {"1.0": ["b1", "b2"]}, "domes": ["d"],
                                           "arcs": {"Hg": ["h"], "Cd": ["c"], "Xe": ["x"]}})
    for task in (exposure, reextraction, RecalibrationTask(reextraction, "spec_x_notfluxcal.fits"),
                 CalibrationTask("20261124", frames, "/redux/20261124", exposure.config)):
        blob = pickle.dumps(task)
        assert len(blob) < 8000, (type(task).__name__, len(blob))  # a Dask worker receives it
        back = pickle.loads(blob)
        assert back == task
    assert pickle.loads(pickle.dumps(exposure)).config.classify.avoid == ("sn1991bg",)


def test_recipes_read_in_one_short_file_each():
    for name in ("calibration", "exposure"):
        n = len((REPO / "engine" / "pipeline" / "recipes" / f"{name}.py").read_text().splitlines())
        assert n < 150, f"recipes/{name}.py has {n} lines"


def test_extraction_writes_no_file():
    source = (REPO / "engine" / "science" / "extract.py").read_text()
    for writer in ("write_", "open(", "writeto", "unlink", "mkdir"):
        assert writer not in source, writer


def _undocumented(package: Path) -> list[str]:
    """Public module-level functions of two or more arguments without a numpydoc ``Parameters``."""
    import ast

    out = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            if len(node.args.args) + len(node.args.kwonlyargs) < 2:
                continue
            if "Parameters\n" not in (ast.get_docstring(node) or ""):
                out.append(f"{path.relative_to(REPO)}:{node.name}")
    return out


UNDOCUMENTED_BUDGET = 166
"""Public engine functions still without a ``Parameters`` section (issue 16 left them; lower
this as they get one, never raise it)."""


def test_public_functions_have_numpydoc_parameters():
    assert _undocumented(REPO / "engine" / "pipeline") == []
    missing = _undocumented(REPO / "engine")
    assert len(missing) <= UNDOCUMENTED_BUDGET, "\n".join(missing[-20:])
