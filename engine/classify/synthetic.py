"""Synthetic spectra made from SNID templates at a known redshift (inject-and-recover tests)."""

from __future__ import annotations

import numpy as np

from engine.classify.prepare import log_grid_wave
from engine.classify.templates import TemplateLibrary

SEDM_WAVE_START_AA = 3776.7
"""First wavelength of a delivered SEDM spectrum [Angstrom]."""
SEDM_WAVE_STEP_AA = 25.5708
"""SEDM sampling [Angstrom]."""
SEDM_N_SAMPLES = 214
"""Samples of a delivered SEDM spectrum."""


def sedm_wave_grid() -> np.ndarray:
    """The delivered SEDM wavelength grid, shape ``(214,)`` [Angstrom]."""
    return SEDM_WAVE_START_AA + SEDM_WAVE_STEP_AA * np.arange(SEDM_N_SAMPLES)


def template_row(library: TemplateLibrary, name: str, age: float = 0.0) -> int:
    """Row of template ``name`` whose epoch is closest to ``age`` [days].

    Raises
    ------
    KeyError
        If the library has no template of that name.
    """
    rows = np.flatnonzero(library.name == name)
    if rows.size == 0:
        raise KeyError(name)
    return int(rows[np.argmin(np.abs(library.age[rows] - age))])


def inject_template(library: TemplateLibrary, row: int, z: float, *,
                    wave: np.ndarray | None = None, snr: float = 30.0,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    """A noisy spectrum of template epoch ``row`` redshifted to ``z``.

    The flattened template is multiplied back onto a smooth blue continuum
    (``F_lambda ~ lambda^-1.5``), redshifted, interpolated onto ``wave`` and given Gaussian
    noise of constant S/N.

    Parameters
    ----------
    library : TemplateLibrary
    row : int
        Template epoch.
    z : float
        Redshift.
    wave : numpy.ndarray or None
        Shape ``(n,)`` output wavelengths [Angstrom]; default the SEDM grid.
    snr : float
        Signal-to-noise per sample.
    rng : numpy.random.Generator or None
        Noise generator (``np.random.default_rng(0)`` if None).

    Returns
    -------
    tuple of numpy.ndarray
        ``(wave, flux, err)``, each shape ``(n,)``; flux in arbitrary F_lambda units.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    wave = sedm_wave_grid() if wave is None else np.asarray(wave, dtype=float)
    rest = log_grid_wave()
    flat = library.flux[row].astype(float)
    lo, hi = int(library.lo[row]), int(library.hi[row])
    flat[:lo] = 0.0
    flat[hi + 1:] = 0.0
    cont = (rest / 5000.0) ** -1.5
    obs = np.interp(wave / (1.0 + z), rest, (flat + 1.0) * cont) * 1e-16
    err = np.abs(obs) / snr
    return wave, obs + rng.normal(0.0, 1.0, wave.size) * err, err
