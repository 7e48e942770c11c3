"""The astrometry.net backend with the real ``solve-field`` (skipped where it is not installed).

An index is built from the injected field's own reference catalogue with
``build-astrometry-index`` (quads of 4-8 arcmin: the 12.9-arcmin Rainbow Camera field), and the
configuration file handed over with ``solve_field_config``. Tolerances: those of the built-in
solver on the same jitter-free frames (``test_locate.test_injected_field_is_recovered_exactly``).
"""

import math
import shutil
import subprocess
from pathlib import Path

import pytest
from astropy.io import fits

from engine.astrometry import locate_target
from engine.astrometry.options import AstrometryOptions
from engine.instrument.sky import sky_to_standard
from tests.engine.astrometry.helpers import inject_field

pytestmark = pytest.mark.skipif(
    not (shutil.which("solve-field") and shutil.which("build-astrometry-index")),
    reason="astrometry.net is not installed (Debian: apt-get install astrometry.net)",
)

INDEX_PRESETS = (2, 3)
"""``build-astrometry-index -P``: quads of 4-5.6 and 5.6-8 arcmin."""


def _index_config(catalog_fits: Path, out: Path) -> Path:
    """Index files of ``catalog_fits`` (columns ra, dec, mag) and a config file naming them."""
    out.mkdir()
    for preset in INDEX_PRESETS:
        subprocess.run(
            ["build-astrometry-index", "-i", str(catalog_fits), "-o", str(out / f"index-{preset}.fits"),
             "-P", str(preset), "-E", "-S", "mag", "-A", "ra", "-D", "dec", "-I", f"9900{preset}"],
            check=True, capture_output=True,
        )
    cfg = out / "astrometry.cfg"
    cfg.write_text(f"add_path {out}\nautoindex\ninparallel\n")
    return cfg


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("solvefield")
    f = inject_field(root, pointing_error_arcsec=(12.0, -9.0), rotation_deg=0.9)
    cfg = _index_config(f.catalog_dir / "refcat_inject.fits", root / "index")
    return f, cfg


def test_solve_field_locates_the_target_as_the_builtin_solver_does(field):
    f, cfg = field
    options = AstrometryOptions(solve_field_config=str(cfg), solve_field_cpulimit_s=30.0)
    loc = locate_target(f.ifu_header, f.guider_paths, f.catalog_dir, f.night, backend="solve-field",
                        config=options)
    assert loc.ok, loc.reason
    assert loc.backend == "solve-field" and loc.n_matched >= 10
    assert math.hypot(loc.x - f.position[0], loc.y - f.position[1]) <= 0.03
    assert math.hypot(*sky_to_standard(*loc.ifu_radec, *f.ifu_radec)) <= 0.02
    builtin = locate_target(f.ifu_header, f.guider_paths, f.catalog_dir, f.night)
    assert math.hypot(loc.x - builtin.x, loc.y - builtin.y) <= 0.03


def test_solve_field_asked_for_the_wrong_parity_finds_nothing_and_says_so(field):
    f, cfg = field
    options = AstrometryOptions(solve_field_config=str(cfg), parity="pos")
    loc = locate_target(f.ifu_header, f.guider_paths, f.catalog_dir, f.night, backend="solve-field",
                        config=options)
    assert not loc.ok and "solve-field found no solution" in loc.reason


def test_a_missing_index_is_a_reason_not_a_crash(field, tmp_path):
    f, _ = field
    empty = tmp_path / "empty.cfg"
    empty.write_text(f"add_path {tmp_path}\nautoindex\n")
    loc = locate_target(f.ifu_header, f.guider_paths, f.catalog_dir, f.night, backend="solve-field",
                        config=AstrometryOptions(solve_field_config=str(empty)))
    assert not loc.ok and "solve-field" in loc.reason
    assert fits.getheader(f.guider_paths[0])  # the frames are untouched


def test_a_configuration_file_that_does_not_exist_is_said_clearly(field, tmp_path):
    f, _ = field
    options = AstrometryOptions(solve_field_config=str(tmp_path / "nowhere.cfg"))
    loc = locate_target(f.ifu_header, f.guider_paths, f.catalog_dir, f.night, backend="solve-field",
                        config=options)
    assert not loc.ok and "nowhere.cfg does not exist" in loc.reason
