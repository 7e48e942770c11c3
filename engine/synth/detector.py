"""Detector read-out of the synthetic IFU camera: bias, overscan, gain, noise, cosmic rays.

Two cameras, as in SEDM's history:

* ``pixis`` (until 2023): 2048 x 2048 raw image whose last 3 columns are overscan (not
  trimmed); read speeds 0.1 and 2.0 MHz.
* ``andor`` (since 2023): 8 pre-scan + 2048 image + 8 over-scan columns; header keys
  ``PSCANX0, PSCANX1, OSCANX0, OSCANX1`` give the 0-based half-open column ranges
  ``[PSCANX0, PSCANX1)`` (pre-scan), ``[PSCANX1, OSCANX0)`` (image), ``[OSCANX0, OSCANX1)``
  (over-scan); read speed 1.0 MHz.

Wide draws (:mod:`engine.synth.priors`) add the detector's own defects, the same on every frame
of a night (:class:`Defects`): bad columns (dead, or hot with charge on every read), hot pixels,
one very hot pixel that saturates and bleeds along its column, and structured scattered light
(a smooth 2D pattern scaled by each frame's mean illumination).
"""

from __future__ import annotations

import math
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


# --------------------------------------------------------------------------------------
# Detector defects of the wide draws (the same on every frame of a night)
# --------------------------------------------------------------------------------------
FULL_WELL_E = 150000.0
"""Charge a pixel holds before it bleeds along its column [e-] (saturates every read mode)."""
MAX_BLEED_ROWS = 80
"""Longest bleed trail of the very hot pixel [rows]."""


@dataclass(frozen=True)
class Defects:
    """Cosmetic defects and structured scattered light of the IFU detector.

    Attributes
    ----------
    columns : tuple of dict
        Bad columns: ``x``, rows ``[y0, y1)``, ``kind`` (``"dead"``: signal times ``response``;
        ``"hot"``: plus ``offset_e`` on every read and ``rate_e_s`` of dark current).
    hot_pixels : numpy.ndarray
        Shape ``(n, 3)``: ``x, y, rate`` [pixel, pixel, e-/s].
    bleed : dict
        The very hot pixel ``x, y, rate_e_s``: its charge ``rate x exptime`` fills
        ``ceil(charge / FULL_WELL_E)`` rows (at most ``MAX_BLEED_ROWS``) centred on it.
    scatter_fraction : float
        Structured scattered light = this fraction of the frame's mean illumination x ``scatter``.
    scatter : numpy.ndarray
        Shape ``CCD_SHAPE``, float32, mean 1: the smooth pattern.
    scatter_params : dict
        What the pattern is made of (gradient, blobs).
    """

    columns: tuple[dict, ...]
    hot_pixels: np.ndarray
    bleed: dict
    scatter_fraction: float
    scatter: np.ndarray
    scatter_params: dict

    def bleed_rows(self, exptime_s: float) -> tuple[int, int]:
        """Rows ``[y0, y1)`` saturated by the bleed in an exposure of ``exptime_s``."""
        if exptime_s <= 0:
            return (self.bleed["y"], self.bleed["y"])
        n = min(int(math.ceil(self.bleed["rate_e_s"] * exptime_s / FULL_WELL_E)), MAX_BLEED_ROWS)
        y0 = max(self.bleed["y"] - n // 2, 0)
        return (y0, min(y0 + n, sedm.CCD_SHAPE[0]))

    def record(self) -> dict:
        """JSON-ready description (``truth.json``)."""
        return {
            "bad_columns": [dict(c) for c in self.columns],
            "hot_pixels": {"columns": ["x", "y", "rate_e_s"],
                           "rows": [[int(x), int(y), round(float(r), 2)] for x, y, r in self.hot_pixels]},
            "bleed": dict(self.bleed, full_well_e=FULL_WELL_E, max_rows=MAX_BLEED_ROWS,
                          rule="rows [y - n//2, y - n//2 + n), n = min(ceil(rate exptime / full_well), max_rows), "
                               "saturated (65535 ADU) in every exposed frame"),
            "scattered_light": dict(self.scatter_params, fraction=self.scatter_fraction,
                                    rule="adds fraction x mean(frame electrons) x pattern (mean 1)"),
        }


def _scatter_pattern(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A smooth 2D scattered-light pattern (mean 1) and its parameters."""
    ny, nx = sedm.CCD_SHAPE
    step = 16
    yy, xx = np.mgrid[0:ny:step, 0:nx:step].astype(float) + step / 2 - 0.5
    gx, gy = rng.uniform(-0.4, 0.4, 2)
    pattern = 1.0 + gx * (xx - nx / 2) / nx + gy * (yy - ny / 2) / ny
    blobs = []
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(200, nx - 200), rng.uniform(200, ny - 200)
        s, a = rng.uniform(150, 400), rng.uniform(0.5, 2.0)
        pattern += a * np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / s**2)
        blobs.append({"x": float(cx), "y": float(cy), "sigma_px": float(s), "amplitude": float(a)})
    pattern = np.kron(pattern, np.ones((step, step)))
    pattern /= pattern.mean()
    return pattern.astype(np.float32), {"gradient": [float(gx), float(gy)], "blobs": blobs}


def draw_defects(rng: np.random.Generator, lit_x: tuple[float, float], lit_y: tuple[float, float]) -> Defects:
    """Draw the detector's defects for a night (wide priors).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random number.
    lit_x, lit_y : tuple of float
        Range of CCD columns and rows lit by the lenslet traces [pixel]: the first dead and the
        first hot column, and the bleed, are placed inside it (they cross traces).
    """
    from engine.synth.priors import PRIORS as P

    ny, nx = sedm.CCD_SHAPE
    columns = []
    n_cols = int(rng.integers(int(P["n_bad_columns"].lo), int(P["n_bad_columns"].hi) + 1))
    xs: set[int] = set()
    for k in range(n_cols):
        inside = k < 2
        while True:
            x = int(rng.uniform(*lit_x) if inside else rng.uniform(10, nx - 10))
            if all(abs(x - o) > 3 for o in xs):
                break
        xs.add(x)
        kind = "dead" if k % 2 == 0 else "hot"
        span = rng.uniform()
        if inside or span < 0.4:
            y0, y1 = 0, ny
        elif span < 0.7:
            y0, y1 = int(rng.uniform(0.3, 0.8) * ny), ny
        else:
            y0, y1 = 0, int(rng.uniform(0.2, 0.7) * ny)
        col = {"x": x, "y0": y0, "y1": y1, "kind": kind}
        if kind == "dead":
            col["response"] = round(P["dead_column_response"].draw(rng), 4)
        else:
            col["offset_e"] = round(P["hot_column_offset_e"].draw(rng), 1)
            col["rate_e_s"] = round(float(rng.uniform(0.5, 5.0)), 3)
        columns.append(col)
    n_hot = int(rng.integers(int(P["n_hot_pixels"].lo), int(P["n_hot_pixels"].hi) + 1))
    hot = np.column_stack([rng.integers(0, nx, n_hot), rng.integers(0, ny, n_hot),
                           P["hot_pixel_rate_e_s"].draw(rng, n_hot)]).astype(float)
    while True:
        bx, by = int(rng.uniform(*lit_x)), int(rng.uniform(lit_y[0] + 100, lit_y[1] - 100))
        if all(abs(bx - o) > 3 for o in xs):
            break
    bleed = {"x": bx, "y": by, "rate_e_s": round(P["bleed_rate_e_s"].draw(rng), 1)}
    fraction = P["scatter_fraction"].draw(rng)
    pattern, params = _scatter_pattern(rng)
    return Defects(tuple(columns), hot, bleed, fraction, pattern, params)


def apply_defects(electrons: np.ndarray, exptime_s: float, defects: Defects, *, illuminated: bool) -> np.ndarray:
    """The electron image with the detector's defects (a new float32 array).

    Parameters
    ----------
    electrons : numpy.ndarray
        Shape ``CCD_SHAPE`` electrons before read-out (sky, traces, cosmic rays).
    exptime_s : float
        Exposure time [s] (dark current of hot pixels and columns, the bleed's length).
    defects : Defects
        The night's defects.
    illuminated : bool
        Add the structured scattered light (frames with light on the detector).
    """
    out = np.array(electrons, dtype=np.float32)
    if illuminated:
        out += np.float32(defects.scatter_fraction * float(out.mean())) * defects.scatter
    for c in defects.columns:
        col = out[c["y0"] : c["y1"], c["x"]]
        if c["kind"] == "dead":
            col *= c["response"]
        else:
            col += c["offset_e"] + c["rate_e_s"] * exptime_s
    if exptime_s > 0:
        x, y = defects.hot_pixels[:, 0].astype(int), defects.hot_pixels[:, 1].astype(int)
        np.add.at(out, (y, x), (defects.hot_pixels[:, 2] * exptime_s).astype(np.float32))
        y0, y1 = defects.bleed_rows(exptime_s)
        out[y0:y1, defects.bleed["x"]] = FULL_WELL_E
    return out
