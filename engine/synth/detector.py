"""Detector read-out of the synthetic IFU camera: bias, overscan, gain, noise, cosmic rays.

Two cameras, as in SEDM's history:

* ``pixis`` (until 2023): 2048 x 2048 raw image whose last 3 columns are overscan (not
  trimmed); read speeds 0.1 and 2.0 MHz.
* ``andor`` (since 2023): 8 pre-scan + 2048 image + 8 over-scan columns; header keys
  ``PSCANX0, PSCANX1, OSCANX0, OSCANX1`` give the 0-based half-open column ranges
  ``[PSCANX0, PSCANX1)`` (pre-scan), ``[PSCANX1, OSCANX0)`` (image), ``[OSCANX0, OSCANX1)``
  (over-scan); read speed 1.0 MHz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.instrument import sedm


@dataclass(frozen=True)
class ReadMode:
    """One camera read speed."""

    camera: str
    adcspeed: float
    gain: float
    """[e-/ADU]"""
    read_noise_e: float
    bias_level_adu: float


READ_MODES: dict[tuple[str, float], ReadMode] = {
    ("pixis", 0.1): ReadMode("pixis", 0.1, 1.8, 4.0, 1020.0),
    ("pixis", 2.0): ReadMode("pixis", 2.0, 1.6, 10.0, 1460.0),
    ("andor", 1.0): ReadMode("andor", 1.0, 0.9, 5.0, 410.0),
}

ANDOR_PRESCAN = 8
ANDOR_OVERSCAN = 8


@dataclass(frozen=True)
class BiasPattern:
    """Fixed bias structure of one read mode for the night [ADU]."""

    columns: np.ndarray
    """Shape ``(nx_raw,)`` column pattern."""
    rows: np.ndarray
    """Shape ``(ny,)`` static row pattern."""


def draw_bias_pattern(mode: ReadMode, rng: np.random.Generator) -> BiasPattern:
    """Static bias structure: a few-ADU column pattern and a row ramp."""
    nx = raw_width(mode.camera)
    ny = sedm.CCD_SHAPE[0]
    columns = rng.normal(0.0, 1.5, nx) + 2.0 * np.sin(np.arange(nx) / 97.0)
    rows = 3.0 * np.linspace(-1, 1, ny) ** 2
    return BiasPattern(columns=columns.astype(np.float32), rows=rows.astype(np.float32))


def raw_width(camera: str) -> int:
    """Width of the raw image [pixel]."""
    return sedm.CCD_SHAPE[1] + (ANDOR_PRESCAN + ANDOR_OVERSCAN if camera == "andor" else 0)


def scan_keywords(camera: str) -> dict[str, int]:
    """Header pre/over-scan keywords of a camera (empty for PIXIS)."""
    if camera != "andor":
        return {}
    nx = sedm.CCD_SHAPE[1]
    return {
        "PSCANX0": 0,
        "PSCANX1": ANDOR_PRESCAN,
        "OSCANX0": ANDOR_PRESCAN + nx,
        "OSCANX1": ANDOR_PRESCAN + nx + ANDOR_OVERSCAN,
    }


def add_cosmic_rays(
    image: np.ndarray, exptime_s: float, rng: np.random.Generator, rate_per_cm2_min: float = 2.5
) -> int:
    """Add cosmic-ray hits (short tracks of 1-8 pixels) in place; return how many."""
    if exptime_s <= 0:
        return 0
    area_cm2 = (sedm.CCD_SHAPE[0] * 13.5e-4) ** 2
    n = rng.poisson(rate_per_cm2_min * area_cm2 * exptime_s / 60.0)
    ny, nx = image.shape
    for _ in range(n):
        length = rng.integers(1, 9)
        ang = rng.uniform(0, np.pi)
        y0, x0 = rng.uniform(0, ny), rng.uniform(0, nx)
        s = np.arange(length)
        ys = np.clip((y0 + s * np.sin(ang)).astype(int), 0, ny - 1)
        xs = np.clip((x0 + s * np.cos(ang)).astype(int), 0, nx - 1)
        image[ys, xs] += rng.uniform(600.0, 9000.0, length)
    return int(n)


def add_cosmic_ray_at(image: np.ndarray, x: float, y: float, electrons: float = 20000.0) -> None:
    """Add a strong compact cosmic ray centred on pixel ``(x, y)`` in place."""
    xi, yi = int(round(x)), int(round(y))
    image[yi, xi] += electrons
    image[yi, xi + 1] += 0.6 * electrons
    image[yi + 1, xi] += 0.4 * electrons


def read_out(
    electrons: np.ndarray, mode: ReadMode, pattern: BiasPattern, rng: np.random.Generator, *, poisson: bool = True
) -> np.ndarray:
    """Digitise an electron image into a raw uint16 frame with bias, overscan and noise.

    Parameters
    ----------
    electrons : numpy.ndarray
        Shape ``CCD_SHAPE`` expected electrons (including sky, dark, cosmic rays).
    mode : ReadMode
        Camera and read speed.
    pattern : BiasPattern
        The read mode's static bias structure.
    rng : numpy.random.Generator
        Noise source.
    poisson : bool
        Draw photon noise (False for bias frames, which have no signal).

    Returns
    -------
    numpy.ndarray
        Raw image, shape ``(2048, raw_width)``, uint16 [ADU].
    """
    ny, nx = sedm.CCD_SHAPE
    signal = rng.poisson(np.clip(electrons, 0, None)).astype(np.float32) if poisson else electrons.astype(np.float32)
    signal += rng.normal(0.0, mode.read_noise_e, signal.shape).astype(np.float32)
    drift = rng.normal(0.0, 2.0) + rng.normal(0.0, 0.3, ny).cumsum() * 0.02  # per-frame row drift [ADU]
    bias_rows = (mode.bias_level_adu + pattern.rows + drift.astype(np.float32))[:, None]
    if mode.camera == "andor":
        raw = np.empty((ny, raw_width("andor")), dtype=np.float32)
        raw[:, ANDOR_PRESCAN : ANDOR_PRESCAN + nx] = signal / mode.gain
        scan_noise = rng.normal(0.0, mode.read_noise_e / mode.gain, (ny, ANDOR_PRESCAN + ANDOR_OVERSCAN))
        raw[:, :ANDOR_PRESCAN] = scan_noise[:, :ANDOR_PRESCAN]
        raw[:, ANDOR_PRESCAN + nx :] = scan_noise[:, ANDOR_PRESCAN:]
        raw += bias_rows + pattern.columns[None, :]
    else:
        raw = signal / mode.gain
        lo, hi = sedm.PIXIS_OVERSCAN_COLUMNS
        raw[:, lo:hi] = rng.normal(0.0, mode.read_noise_e / mode.gain, (ny, hi - lo))
        raw += bias_rows + pattern.columns[None, :]
    return np.clip(np.rint(raw), 0, sedm.SATURATION_ADU).astype(np.uint16)
