"""Spaxel grid: the lenslet lattice measured from the trace positions themselves.

Each trace's 7000-A position ``(x_ref, y_ref)`` on the CCD is a node of the lenslet lattice.
Nothing here needs the nominal lattice to the pixel:

1. **Basis.** The nearest-neighbour vectors of all nodes give the pitch (their median length)
   and the orientation (their angles folded modulo 60 degrees). Of the six equivalent axes
   the one within ``CCD_LATTICE_ANGLE_TOLERANCE_DEG`` of the nominal ``q`` axis is ``q``.
2. **Labels.** Axial coordinates ``(q, r)`` are grown outward from the central node, each
   step predicted from the node it starts at (so a smooth distortion of many pixels across
   the field never accumulates), then refined against a cubic model of the CCD position as a
   function of ``(q, r)`` fitted by linear least squares. Nodes farther than
   ``REJECT_PX`` (or 5 robust sigmas) from the model are rejected one by one: spurious or
   broken traces never move the lattice, and never abort the night.
3. **Frame.** Lenslet ``(0, 0)`` is the node imaged nearest the detector's reference point
   ``sedm.CCD_LATTICE_ORIGIN_PX``: the spaxel frame is referenced to the detector (as pysedm's
   is, to the trace nearest the centroid), and the guider's IFU-centre table is measured on the
   sky for that lenslet. How far the node lies from the reference point is recorded.

Sky positions follow from ``(q, r)`` through the nominal lenslet geometry (pitch 1.155
units of 0.55 arcsec, rotation 103 degrees).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from engine.errors import AlgorithmError
from engine.instrument import sedm

NEIGHBOUR_STEPS = ((1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1))
REJECT_PX = 1.5
"""A node farther than this from the lattice model is not a lenslet image [pixel]."""
MATCH_FRACTION = 0.3
"""A grown step finds its node within this fraction of the pitch."""


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
        Scatter of the accepted trace positions about the fitted lattice [pixel].
    duplicate : numpy.ndarray
        bool: not a lenslet of its own (two traces claimed the same ``(q, r)``: the one farther
        from its node; or the trace is off the lattice, see ``rejected``).
    rejected : numpy.ndarray, optional
        bool: the trace's position is not a node of the lattice (spurious or broken trace).
    pitch_px, angle_deg : float
        Measured lattice pitch [pixel] and ``q``-axis angle from the CCD ``x`` axis [degree].
    origin_px : tuple of float
        CCD position of lenslet ``(0, 0)`` at 7000 A (the node nearest the reference point).
    """

    q: np.ndarray
    r: np.ndarray
    xy: np.ndarray
    neighbours: np.ndarray
    lattice_rms_px: float
    duplicate: np.ndarray
    rejected: np.ndarray | None = None
    pitch_px: float = float("nan")
    angle_deg: float = float("nan")
    origin_px: tuple[float, float] = (float("nan"), float("nan"))

    def vertices(self) -> np.ndarray:
        """Shape ``(n, 6, 2)`` hexagon outlines [spaxel unit]."""
        return sedm.hexagon_vertices(self.xy)


# ---------------------------------------------------------------------------------- basis
def basis_from_angle(pitch_px: float, angle_deg: float) -> np.ndarray:
    """Shape ``(2, 2)`` basis: rows are the CCD steps of ``q`` and ``r`` [pixel]."""
    return sedm.lattice_basis_px(pitch_px, angle_deg)


def measure_basis(points: np.ndarray) -> tuple[float, float]:
    """Pitch and ``q``-axis angle of a hexagonal point lattice.

    Parameters
    ----------
    points : numpy.ndarray
        Shape ``(n, 2)`` node positions [pixel]; a few missing or spurious nodes are harmless.

    Returns
    -------
    pitch_px : float
        Median nearest-neighbour distance [pixel].
    angle_deg : float
        Orientation of the ``q`` axis [degree], the one of the six lattice directions within
        ``CCD_LATTICE_ANGLE_TOLERANCE_DEG`` of the nominal.

    Raises
    ------
    AlgorithmError
        Too few nodes, or a pitch outside ``CCD_LATTICE_PITCH_RANGE_PX``.
    """
    if len(points) < 20:
        raise AlgorithmError(f"only {len(points)} trace positions: cannot measure the lenslet lattice",
                             {"n_nodes": len(points)})
    dist, idx = cKDTree(points).query(points, k=7)
    pitch0 = float(np.median(dist[:, 1]))
    vec = points[idx[:, 1:]] - points[:, None, :]
    length = dist[:, 1:]
    near = np.abs(length / pitch0 - 1.0) < 0.15
    pitch = float(np.median(length[near]))
    lo, hi = sedm.CCD_LATTICE_PITCH_RANGE_PX
    if not lo <= pitch <= hi:
        raise AlgorithmError(
            f"the traces form a lattice of pitch {pitch:.1f} px, expected {lo:.0f}-{hi:.0f} px "
            f"(nominal {sedm.CCD_LATTICE_PITCH_PX:.0f} px)", {"pitch_px": pitch})
    ang = np.arctan2(vec[..., 1], vec[..., 0])[near]
    folded = float(np.angle(np.mean(np.exp(6j * ang)))) / 6.0
    nominal = math.radians(sedm.CCD_LATTICE_ANGLE_DEG)
    k = round((nominal - folded) / (math.pi / 3.0))
    angle = math.degrees(folded + k * math.pi / 3.0)
    return pitch, angle


# --------------------------------------------------------------------------------- labels
def grow_labels(points: np.ndarray, basis: np.ndarray, seed: int) -> np.ndarray:
    """Axial labels grown from node ``seed`` (label ``(0, 0)``) through nearest-neighbour steps.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 2)`` int labels; ``INT_MIN`` rows were not reached.
    """
    n = len(points)
    tree = cKDTree(points)
    labels = np.full((n, 2), np.iinfo(np.int64).min, dtype=np.int64)
    labels[seed] = 0
    steps = np.array(NEIGHBOUR_STEPS)
    step_px = steps @ basis
    tol = MATCH_FRACTION * float(np.linalg.norm(basis[0]))
    queue = deque([seed])
    while queue:
        i = queue.popleft()
        _dist, j = tree.query(points[i] + step_px, k=1, distance_upper_bound=tol)
        for s, jj in zip(steps, j):
            if jj < n and labels[jj, 0] == np.iinfo(np.int64).min:
                labels[jj] = labels[i] + s
                queue.append(int(jj))
    return labels


def _design(qr: np.ndarray) -> np.ndarray:
    """Cubic polynomial terms of ``(q, r)`` (scaled by 1/30), shape ``(n, 10)``."""
    q, r = qr[:, 0] / 30.0, qr[:, 1] / 30.0
    return np.stack([np.ones_like(q), q, r, q * q, q * r, r * r, q**3, q * q * r, q * r * r, r**3], 1)


def fit_positions(points: np.ndarray, qr: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cubic model ``position(q, r)`` fitted to the ``use`` nodes with iterative rejection.

    Returns
    -------
    coef : numpy.ndarray
        Shape ``(10, 2)``.
    kept : numpy.ndarray
        bool ``(n,)``: nodes within ``REJECT_PX`` (and 5 robust sigmas) of the model.
    """
    keep = use.copy()
    a = _design(qr.astype(float))
    coef = np.zeros((10, 2))
    for _ in range(10):
        if keep.sum() < 30:
            break
        coef, *_ = np.linalg.lstsq(a[keep], points[keep], rcond=None)
        dist = np.hypot(*(points - a @ coef).T)
        sigma = 1.4826 * np.median(dist[keep])
        new = use & (dist < min(REJECT_PX, max(5.0 * sigma, 0.2)))
        if np.array_equal(new, keep):
            break
        keep = new
    return coef, keep


def relabel(points: np.ndarray, qr: np.ndarray, coef: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Labels moved by the rounded residual of every node against the model (lattice units)."""
    res = points - _design(qr.astype(float)) @ coef
    return qr + np.rint(res @ np.linalg.inv(basis)).astype(np.int64)


# ---------------------------------------------------------------------------------- recipe
def fit_lattice(
    x_ref: np.ndarray, y_ref: np.ndarray, ok: np.ndarray | None = None
) -> SpaxelGrid:
    """Assign ``(q, r)`` to traces at 7000-A positions ``(x_ref, y_ref)`` [pixel].

    Parameters
    ----------
    x_ref, y_ref : numpy.ndarray
        Shape ``(n,)`` trace positions at 7000 A [pixel] (NaN: unknown).
    ok : numpy.ndarray, optional
        bool ``(n,)``: positions good enough to define the lattice (others are labelled from it).

    Raises
    ------
    AlgorithmError
        The positions do not form a hexagonal lattice (with what was measured).
    """
    p = np.stack([x_ref, y_ref], 1).astype(float)
    finite = np.all(np.isfinite(p), 1)
    ok = finite if ok is None else (ok & finite)
    idx_ok = np.flatnonzero(ok)
    pitch, angle = measure_basis(p[idx_ok])
    basis = basis_from_angle(pitch, angle)
    centre = np.median(p[idx_ok], 0)
    seed = idx_ok[int(np.argmin(np.hypot(*(p[idx_ok] - centre).T)))]
    labels = np.zeros((len(p), 2), np.int64)
    labels[finite] = grow_labels(p[finite], basis, int(np.flatnonzero(np.flatnonzero(finite) == seed)[0]))
    reached = finite.copy()
    reached[finite] = labels[finite, 0] != np.iinfo(np.int64).min
    labels[~reached] = 0
    if (reached & ok).sum() < 0.5 * ok.sum():
        raise AlgorithmError(
            f"only {(reached & ok).sum()} of {ok.sum()} traces could be linked into a lattice "
            f"(pitch {pitch:.1f} px, angle {angle:.1f} deg)", {"pitch_px": pitch, "angle_deg": angle})
    use = reached & ok
    for _ in range(4):
        coef, kept = fit_positions(p, labels, use)
        new = labels.copy()
        new[finite] = relabel(p[finite], labels[finite], coef, basis)
        if np.array_equal(new, labels):
            break
        labels, use = new, finite & ok
    coef, kept = fit_positions(p, labels, finite & ok)
    res = np.where(finite[:, None], p - _design(labels.astype(float)) @ coef, np.inf)
    dist = np.hypot(res[:, 0], res[:, 1])
    accepted = finite & (dist < REJECT_PX)
    rms = float(np.sqrt(np.mean(dist[kept] ** 2))) if kept.any() else float("nan")
    if not np.isfinite(rms) or kept.sum() < 0.8 * ok.sum():
        raise AlgorithmError(
            f"trace positions do not fit a hexagonal lattice: {kept.sum()} of {ok.sum()} within "
            f"{REJECT_PX} px (rms {rms:.2f} px; measured pitch {pitch:.1f} px, angle {angle:.1f} deg; "
            f"nominal {sedm.CCD_LATTICE_PITCH_PX:.0f} px, {sedm.CCD_LATTICE_ANGLE_DEG:.1f} deg)",
            {"rms_px": rms, "pitch_px": pitch, "angle_deg": angle, "n_kept": int(kept.sum())})
    c = _nearest_label(np.array(sedm.CCD_LATTICE_ORIGIN_PX), coef, basis, labels[kept])
    origin = _design(np.array([c], float))[0] @ coef
    labels = labels - np.array(c)
    return _grid(labels, dist, accepted, rms, pitch, angle, (float(origin[0]), float(origin[1])))


def _nearest_label(xy: np.ndarray, coef: np.ndarray, basis: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """Label of the lattice node imaged nearest CCD position ``xy`` (Euclidean distance on the
    detector: fractional axial coordinates from Newton on the cubic model, then the nearest of
    the surrounding nodes; rounding ``q`` and ``r`` separately is not the nearest node of a
    hexagonal lattice)."""
    qr = labels[np.argmin(np.hypot(*(_design(labels.astype(float)) @ coef - xy).T))].astype(float)
    inv = np.linalg.inv(basis)
    for _ in range(5):
        qr = qr + (xy - _design(qr[None])[0] @ coef) @ inv
    base = np.floor(qr)
    cand = base[None, :] + np.array([[a, b] for a in (-1, 0, 1, 2) for b in (-1, 0, 1, 2)], float)
    dist = np.hypot(*(_design(cand) @ coef - xy).T)
    best = cand[int(np.argmin(dist))].astype(int)
    return int(best[0]), int(best[1])


def _grid(labels: np.ndarray, dist: np.ndarray, accepted: np.ndarray, rms: float, pitch: float, angle: float,
          origin: tuple[float, float]) -> SpaxelGrid:
    n = len(labels)
    key = labels[:, 0] * 100000 + labels[:, 1]
    order = np.lexsort((np.where(accepted, dist, np.inf), key))
    dup = np.zeros(n, bool)
    dup[order[1:]] = key[order[1:]] == key[order[:-1]]
    dup |= ~accepted
    q, r = labels[:, 0], labels[:, 1]
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(q, r)) if not dup[i]}
    neighbours = np.array([[index.get((int(a) + dq, int(b) + dr), -1) for dq, dr in NEIGHBOUR_STEPS]
                           for a, b in zip(q, r)], dtype=int).reshape(n, 6)
    return SpaxelGrid(q=q, r=r, xy=sedm.hex_to_spaxel_xy(q, r), neighbours=neighbours, lattice_rms_px=rms,
                      duplicate=dup, rejected=~accepted, pitch_px=pitch, angle_deg=angle, origin_px=origin)
