"""Star detection cuts and the reference catalogue."""

import numpy as np
import pytest
from astropy.table import Table

from engine.astrometry.catalog import angular_distance_deg, load_catalog, select_field
from engine.astrometry.detect import detect_stars
from engine.errors import ConfigError


def _gauss(shape, x0, y0, flux, sx, sy=None):
    sy = sx if sy is None else sy
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (
        flux
        / (2 * np.pi * sx * sy)
        * np.exp(-0.5 * (((xx - x0) / sx) ** 2 + ((yy - y0) / sy) ** 2))
    )


def test_detection_recovers_centroids_and_drops_saturated_and_elongated():
    rng = np.random.default_rng(0)
    shape = (256, 256)
    image = np.full(shape, 800.0)
    stars = [(40.3, 50.7, 4e4), (180.6, 60.2, 2e4), (90.1, 200.4, 1e4), (200.8, 190.3, 6e4)]
    for x, y, f in stars:
        image += _gauss(shape, x, y, f, 2.0)
    image += _gauss(shape, 128.0, 128.0, 5e6, 2.0)  # saturates
    image += _gauss(shape, 60.0, 140.0, 4e4, 6.0, 1.5)  # elongated (a trail)
    image = rng.normal(image, np.sqrt(image) + 5.0)
    image = np.minimum(image, 65535.0).astype(np.float32)
    before = image.copy()
    det = detect_stars(image, back_size_px=32)
    assert (image == before).all()
    assert det.n == 4 and det.n_saturated == 1 and det.n_elongated == 1
    truth = np.array([s[:2] for s in sorted(stars, key=lambda s: -s[2])])
    np.testing.assert_allclose(det.xy, truth, atol=0.2)  # faintest star: S/N ~ 40, sigma ~ 0.07 px
    assert (np.diff(det.flux) <= 0).all()


def test_empty_image_has_no_detections():
    image = np.random.default_rng(1).normal(500.0, 10.0, (128, 128)).astype(np.float32)
    assert detect_stars(image, back_size_px=32).n == 0


def test_catalogue_loads_every_file_without_duplicates(tmp_path):
    Table({"RA": [10.0, 10.1, 10.5], "Dec": [20.0, 20.05, 20.0], "MAG": [15.0, 14.0, 12.0]}).write(
        tmp_path / "a.fits"
    )
    Table({"ra": [10.0, 10.02], "dec": [20.0, 20.01], "mag": [15.0, 16.0]}).write(
        tmp_path / "b.fits"
    )
    (tmp_path / "broken.fits").write_bytes(b"garbage")
    cat = load_catalog(tmp_path)
    assert cat.n == 4 and len(cat.sources) == 2
    fld = select_field(cat, 10.0, 20.0, 0.2)
    assert fld.mag.tolist() == [14.0, 15.0, 16.0]  # brightest first, 10.5 deg star out of radius
    assert select_field(cat, 10.0, 20.0, 0.2, mag_limit=15.0).n == 2


def test_catalogue_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_catalog(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no readable reference catalogue"):
        load_catalog(tmp_path)


def test_angular_distance():
    assert angular_distance_deg(0.0, 89.0, 180.0, 89.0) == pytest.approx(2.0)
    assert angular_distance_deg(359.9, 0.0, 0.1, 0.0) == pytest.approx(0.2)
