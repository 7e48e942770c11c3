"""SNID's statistics over the correlated templates (``getzt``/``rankfrac`` in SNID 5.0).

Templates are ordered by decreasing rlap (stable, as SNID's insertion sort). A match is
"good" when ``rlap >= rlapmin`` and ``|z - zinit| < zfilter``, "bad" when only the first
holds. The median redshift and age (age flag 0 only) and their standard deviations, and the
fraction of each main type, are taken over the good matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.classify.templates import MAIN_TYPES


def snid_median(values: np.ndarray) -> float:
    """SNID's ``amedian``: the middle value, mean of the two middle ones for even counts
    (0 for an empty buffer)."""
    v = np.asarray(values, dtype=float)
    return float(np.median(v)) if v.size else 0.0


def snid_stddev(values: np.ndarray) -> float:
    """Sample standard deviation (0 for fewer than two values)."""
    v = np.asarray(values, dtype=float)
    return float(np.std(v, ddof=1)) if v.size > 1 else 0.0


def vote_redshift(z: np.ndarray, rlap: np.ndarray) -> float:
    """SNID's initial redshift: median of ``z`` repeated 1x (rlap > 4), 3x (> 5), 5x (> 6).

    Parameters
    ----------
    z, rlap : numpy.ndarray
        Shape ``(n,)`` redshifts and rlap values of the first-pass peaks.

    Returns
    -------
    float
        0 when no peak has rlap > 4.
    """
    weight = (rlap > 4).astype(int) + 2 * (rlap > 5) + 2 * (rlap > 6)
    return snid_median(np.repeat(np.asarray(z, dtype=float), weight))


@dataclass(frozen=True)
class MatchStatistics:
    """Ranked matches and summary statistics.

    Attributes
    ----------
    order : numpy.ndarray
        Indices into the correlated set, by decreasing rlap.
    grade : numpy.ndarray
        Per correlated template (original order): ``good``, ``bad`` or ``cut``.
    zmed, zsdev, agem, agesdev : float
        Median and standard deviation of the good redshifts and ages (age flag 0).
    fractions : dict
        Main type -> fraction of good matches.
    n_good, n_bad : int
    """

    order: np.ndarray
    grade: np.ndarray
    zmed: float
    zsdev: float
    agem: float
    agesdev: float
    fractions: dict[str, float]
    n_good: int
    n_bad: int


def match_statistics(rlap: np.ndarray, z: np.ndarray, age: np.ndarray, age_flag: np.ndarray,
                     main_type: np.ndarray, *, zinit: float, rlapmin: float,
                     zfilter: float) -> MatchStatistics:
    """Rank the correlated templates and compute SNID's good-match statistics.

    Parameters
    ----------
    rlap, z, age : numpy.ndarray
        Shape ``(n,)`` per correlated template epoch.
    age_flag : numpy.ndarray
        Shape ``(n,)`` int.
    main_type : numpy.ndarray
        Shape ``(n,)`` str.
    zinit : float
        Redshift the templates were trimmed at.
    rlapmin, zfilter : float
        Good-match thresholds.

    Returns
    -------
    MatchStatistics
    """
    order = np.argsort(-np.asarray(rlap, dtype=float), kind="stable")
    above = rlap >= rlapmin
    near = np.abs(z - zinit) < zfilter
    good = above & near
    grade = np.where(good, "good", np.where(above, "bad", "cut"))
    n_good = int(good.sum())
    zg = z[good]
    ag = age[good & (age_flag == 0)]
    fractions = {t: (float((main_type[good] == t).sum()) / n_good if n_good else 0.0)
                 for t in MAIN_TYPES}
    return MatchStatistics(order=order, grade=grade, zmed=snid_median(zg),
                           zsdev=snid_stddev(zg), agem=snid_median(ag),
                           agesdev=snid_stddev(ag), fractions=fractions, n_good=n_good,
                           n_bad=int((above & ~near).sum()))
