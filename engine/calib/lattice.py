"""Spaxel grid: hexagonal coordinates, sky positions and neighbours of every trace.

Each trace's 7000-A position ``(x_ref, y_ref)`` on the CCD is a node of the lenslet lattice.
Starting from the nominal lattice (pitch, angle, origin), every node gets integer axial
coordinates ``(q, r)``; the lattice basis, origin and a quadratic distortion are then refitted
by linear least squares and the assignment repeated until it is stable. Lenslet ``(0, 0)`` is
the node nearest the nominal origin, so the spaxel frame is the same every night. Sky positions
follow from ``(q, r)`` through the nominal lenslet geometry (pitch 1.155 units of 0.55 arcsec,
rotation 103 degrees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import AlgorithmError
from engine.instrument import sedm

NEIGHBOUR_STEPS = ((1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1))


@dataclass(frozen=True)
class SpaxelGrid:
    """Hexagonal grid of the traces (shape ``(n,)`` arrays unless noted).

    Attributes
    ----------
    q, r : numpy.ndarray
        Axial hexagonal coordinates (int).
    xy : numpy.ndarray
        Shape ``(n, 2)`` spaxel-frame positions [spaxel unit].
    neighbours : numpy.ndarray
        Shape ``(n, 6)`` indices of the six neighbours (-1: none).
    lattice_rms_px : float
        Scatter of the trace positions about the fitted lattice [pixel].
    duplicate : numpy.ndarray
        bool: two traces claimed the same ``(q, r)`` (the one farther from its node).
    """

    q: np.ndarray
    r: np.ndarray
    xy: np.ndarray
    neighbours: np.ndarray
    lattice_rms_px: float
    duplicate: np.ndarray

    def vertices(self) -> np.ndarray:
        """Shape ``(n, 6, 2)`` hexagon outlines [spaxel unit]."""
        return sedm.hexagon_vertices(self.xy)


def _design(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    xn, yn = (p[:, 0] - 1024.0) / 1024.0, (p[:, 1] - 1024.0) / 1024.0
    return np.stack([np.ones_like(xn), q, r, xn * xn, xn * yn, yn * yn, xn**3, yn**3], 1)


def fit_lattice(x_ref: np.ndarray, y_ref: np.ndarray, ok: np.ndarray | None = None) -> SpaxelGrid:
    """Assign ``(q, r)`` to traces at 7000-A positions ``(x_ref, y_ref)`` [pixel].

    Raises
    ------
    AlgorithmError
        The positions do not form the SEDM lattice (scatter above 1 pixel).
    """
    p = np.stack([x_ref, y_ref], 1)
    ok = np.ones(len(p), bool) if ok is None else ok.copy()
    basis = sedm.lattice_basis_px()
    origin = np.array(sedm.CCD_LATTICE_ORIGIN_PX)
    inv = np.linalg.inv(basis)
    qr = np.rint((p - origin) @ inv).astype(int)
    coef = None
    for _ in range(5):
        a = _design(p, qr[:, 0], qr[:, 1])
        coef, *_ = np.linalg.lstsq(a[ok], p[ok], rcond=None)
        # Local basis: the linear terms; distortion: the rest. Re-assign from the model.
        pred = a @ coef
        res = p - pred
        # Move each node by its fractional residual in lattice units.
        local_basis = np.stack([coef[1], coef[2]])
        dqr = res @ np.linalg.inv(local_basis)
        new_qr = qr + np.rint(dqr).astype(int)
        if np.array_equal(new_qr, qr):
            break
        qr = new_qr
    res = p - _design(p, qr[:, 0], qr[:, 1]) @ coef
    rms = float(np.sqrt(np.mean(np.sum(res[ok] ** 2, axis=1))))
    if not np.isfinite(rms) or rms > 1.0:
        raise AlgorithmError(f"trace positions do not fit the lenslet lattice (rms {rms:.2f} px)", {"rms_px": rms})
    # Origin: the node nearest the nominal origin is (0, 0).
    o_qr = np.rint((origin - coef[0]) @ np.linalg.inv(np.stack([coef[1], coef[2]]))).astype(int)
    qr = qr - o_qr
    dist = np.hypot(res[:, 0], res[:, 1])
    key = qr[:, 0] * 100000 + qr[:, 1]
    order = np.lexsort((dist, key))
    dup = np.zeros(len(p), bool)
    dup[order[1:]] = key[order[1:]] == key[order[:-1]]
    q, r = qr[:, 0], qr[:, 1]
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(q, r)) if not dup[i]}
    neighbours = np.array([[index.get((int(a) + dq, int(b) + dr), -1) for dq, dr in NEIGHBOUR_STEPS]
                           for a, b in zip(q, r)], dtype=int)
    return SpaxelGrid(q=q, r=r, xy=sedm.hex_to_spaxel_xy(q, r), neighbours=neighbours, lattice_rms_px=rms,
                      duplicate=dup)
