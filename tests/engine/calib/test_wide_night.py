"""A wide instrument draw calibrated from its own frames, against its truth.

Seed 1 of the wide priors is the densest lattice they allow (pitch 40.3 px, q axis 25.2 deg,
the array's centre ~100 px from nominal), a dispersion 6 % below nominal with a law of another
form, dead and hot columns, hot pixels and a bleeding column. What the engine must get right
here without any nominal constant to the pixel: every usable trace found and labelled (the
lattice), no failure. The accuracy bounds are today's figures on this draw with a margin, not
the targets (issue 14: 0.03 px, 0.3 A, 0.3 %): the sweep benchmark reports their distribution.
"""

import json
import sys

import pytest
from astropy.table import Table

from engine.calib.products import NightCalibration
from engine.pipeline.recipes.calibration import calibrate_night
from engine.pipeline.tasks import CalibrationFrames, CalibrationTask
from tests.conftest import MINI_NIGHT, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from calibration import compare, select_frames


@pytest.fixture(scope="module")
def wide(wide_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("wide-cal")
    frames = CalibrationFrames.from_lists(select_frames(wide_raw, MINI_NIGHT))
    result = calibrate_night(CalibrationTask(MINI_NIGHT, frames, str(out)))
    cal = NightCalibration.load(out, MINI_NIGHT)
    tr = Table.read(wide_raw / MINI_NIGHT / "truth" / "traces.fits", hdu="TRACES")
    draw = json.loads((wide_raw / MINI_NIGHT / "truth.json").read_text())["instrument_draw"]
    return result, compare(cal, tr), draw


def test_geometry_measured_from_the_frames(wide):
    result, figures, draw = wide
    stats = result["stats"]
    assert result["status"] == "ok"
    assert abs(stats["lattice_pitch_px"] / draw["pitch_px"] - 1) < 0.005
    assert abs(stats["lattice_angle_deg"] - draw["angle_deg"]) < 0.2
    assert abs(stats["wave_law_scale"] / draw["dispersion"]["scale"] - 1) < 0.02
    # every usable trace found and given its true (q, r); at most a handful at the region's edge
    assert figures["n_missing"] <= 2 and figures["n_spurious"] <= 2
    assert figures["n_traces"] > 1500


def test_accuracy_on_the_densest_lattice(wide):
    """Measured on this draw: trace bias -0.011 px, scatter 0.021 px, lambda 0.11 / 0.14 A,
    flat 0.74 % (before the profile fits converged: -0.078 px, 0.047 px, 0.14 / 0.15 A, 1.6 %).
    Bounds: the issue's targets for the centres and wavelengths, twice today's flat."""
    _, figures, _ = wide
    assert abs(figures["trace_bias_px"]) < 0.03 and figures["trace_scatter_px"] < 0.05
    assert figures["wave_median_abs_err_aa"] < 0.3 and figures["wave_blue_median_abs_err_aa"] < 1.0
    assert figures["flat_rms_pct"] < 1.5
