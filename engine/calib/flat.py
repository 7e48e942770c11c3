"""Per-spaxel throughput (the "3D flat") from the dome cube.

The dome lights every lenslet equally, so at each wavelength a spaxel's dome flux divided by
the median over spaxels is its relative throughput. ``achromatic`` is the mean of that ratio
over 5000-8500 A (pysedm's definition). ``chromatic`` is a quadratic in wavelength fitted to
the ratio over 3800-9200 A, so colour differences between lenslets are corrected too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.instrument import sedm

ACHROMATIC_RANGE_AA = (5000.0, 8500.0)
CHROMATIC_RANGE_AA = (3800.0, 9200.0)


@dataclass(frozen=True)
class Flat:
    """Relative throughput of every spaxel.

    Attributes
    ----------
    achromatic : numpy.ndarray
        Shape ``(n,)``: mean throughput over 5000-8500 A relative to the median spaxel.
    chromatic : numpy.ndarray
        Shape ``(n, n_wave)``: throughput at each cube wavelength (quadratic fit).
    coef : numpy.ndarray
        Shape ``(n, 3)``: the quadratic in ``(lambda - 6500) / 3000``.
    ok : numpy.ndarray
        bool: enough dome signal.
    """

    achromatic: np.ndarray
    chromatic: np.ndarray
    coef: np.ndarray
    ok: np.ndarray

    def stats(self, usable: np.ndarray | None = None) -> dict:
        """Night statistics of the achromatic flat (over ``usable`` spaxels)."""
        sel = self.ok if usable is None else self.ok & usable
        a = self.achromatic[sel]
        return {"flat_n": int(sel.sum()), "flat_min": float(np.min(a)), "flat_max": float(np.max(a)),
                "flat_std": float(np.std(a)), "flat_median": float(np.median(a))}


def flat_from_dome(dome_cube: np.ndarray, usable: np.ndarray, wave: np.ndarray = sedm.CUBE_WAVE_AA) -> Flat:
    """Flat from the dome cube.

    Parameters
    ----------
    dome_cube : numpy.ndarray
        Shape ``(n, n_wave)`` dome flux [e-/A].
    usable : numpy.ndarray
        Shape ``(n,)`` spaxels used for the reference median.
    """
    ref = np.nanmedian(dome_cube[usable], axis=0)
    ratio = dome_cube / np.where(ref > 0, ref, np.nan)[None, :]
    sel = (wave >= ACHROMATIC_RANGE_AA[0]) & (wave <= ACHROMATIC_RANGE_AA[1])
    achro = np.nanmean(ratio[:, sel], axis=1)
    achro = achro / np.nanmedian(achro[usable])
    u = (wave - 6500.0) / 3000.0
    csel = (wave >= CHROMATIC_RANGE_AA[0]) & (wave <= CHROMATIC_RANGE_AA[1])
    basis = np.stack([np.ones_like(u), u, u * u], 1)
    good = np.isfinite(ratio) & csel[None, :]
    w = good.astype(float)
    y = np.where(good, ratio, 0.0)
    ata = np.einsum("nw,wp,wq->npq", w, basis, basis) + np.eye(3)[None] * 1e-9
    atb = np.einsum("nw,wp,nw->np", w, basis, y)
    coef = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
    chrom = coef @ basis.T
    norm = np.nanmedian(chrom[usable][:, sel].mean(axis=1))
    coef, chrom = coef / norm, chrom / norm
    ok = np.isfinite(achro) & (good.sum(1) > 20) & (achro > 0.2)
    return Flat(achromatic=np.where(ok, achro, np.nan), chromatic=np.where(ok[:, None], chrom, np.nan), coef=coef, ok=ok)
