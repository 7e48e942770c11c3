"""The ordered list of stages that make up the night pipeline."""

from __future__ import annotations

from engine.config import Config
from engine.pipeline.stage import Stage


def build_stages(config: Config) -> list[Stage]:
    """Calibration, then science (standards before the science that needs them), then requests."""
    wanted = {s.strip() for s in config.engine.stages.split(",") if s.strip()}
    from engine.pipeline.calibration import CalibrationStage
    from engine.pipeline.requests_stage import RequestStage
    from engine.pipeline.science import ScienceStage

    stages: list[Stage] = [CalibrationStage(), ScienceStage(), RequestStage()]
    return [s for s in stages if "all" in wanted or s.name in wanted]
