"""Arc-line groups for the wavelength solution.

Every Hg, Cd and Xe line of the packaged list (NIST-checked PypeIt lines with amplitudes, and
the extra lines pysedm lists without amplitudes) between 3560 and 9850 A is used. Lines of one
lamp closer than ``BLEND_PX`` detector pixels (at the measured, else the nominal, dispersion) form a blend group,
fitted with one common shift and free amplitudes. A group is measured when it contains a
line whose catalogue amplitude is at least ``ANCHOR_FRACTION`` of the lamp's brightest: about
20 groups from 3611 to 9165 A (pysedm fits 14 lines from 4048 A; none bluer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import refdata
from engine.instrument import sedm

LAMPS = ("Hg", "Cd", "Xe")
WAVE_RANGE_AA = (3560.0, 9850.0)
BLEND_PX = 2.6
ANCHOR_FRACTION = 0.02


@dataclass(frozen=True)
class LineGroup:
    """A blend of lines of one lamp, fitted together.

    Attributes
    ----------
    lamp : str
    waves : numpy.ndarray
        Vacuum wavelengths of every component [Angstrom].
    amplitudes : numpy.ndarray
        Catalogue amplitudes relative to the lamp's brightest (unknown ones set to 0.03).
    ref_index : int
        Component whose wavelength represents the group in the dispersion fit.
    """

    lamp: str
    waves: np.ndarray
    amplitudes: np.ndarray
    ref_index: int

    @property
    def ref_wave(self) -> float:
        """Wavelength of the representative (brightest catalogued) component [Angstrom]."""
        return float(self.waves[self.ref_index])


def line_groups(wave_range: tuple[float, float] = WAVE_RANGE_AA, shape=None) -> list[LineGroup]:
    """All measurable line groups, sorted by wavelength.

    Parameters
    ----------
    wave_range : tuple of float
        Lines considered [Angstrom].
    shape : callable, optional
        ``shape(wave_aa) -> column`` relative positions of the measured dispersion law; lines
        closer than ``BLEND_PX`` in it form a group (default: the nominal law).
    """
    shape = shape if shape is not None else (lambda w: sedm.nominal_trace_x(w, 0.0))
    groups: list[LineGroup] = []
    for lamp in LAMPS:
        lines = [ln for ln in refdata.arc_lines(lamp) if wave_range[0] <= ln.wave_aa <= wave_range[1]]
        if not lines:
            continue
        top = max(ln.amplitude for ln in refdata.arc_lines(lamp) if np.isfinite(ln.amplitude))
        waves = np.array([ln.wave_aa for ln in lines])
        amps = np.array([ln.amplitude / top if np.isfinite(ln.amplitude) else 0.03 for ln in lines])
        listed = np.array([ln.listed for ln in lines])
        x = shape(waves)
        cuts = np.flatnonzero(np.abs(np.diff(x)) > BLEND_PX) + 1
        for idx in np.split(np.arange(waves.size), cuts):
            anchors = idx[listed[idx] & (amps[idx] >= ANCHOR_FRACTION)]
            if anchors.size == 0:
                continue
            ref = int(np.argmax(np.where(listed[idx], amps[idx], -1.0)))
            groups.append(LineGroup(lamp, waves[idx], amps[idx], ref))
    return sorted(groups, key=lambda g: g.ref_wave)
