"""The observer's pending edit of an extraction: centroid, region and lstep (Textual-free).

An :class:`EditState` is immutable; every key press makes a new one. It mirrors the engine's
rules (``engine.science.position.fit_region``) so that the region drawn in the console is the
region the engine will fit, and it turns itself into the ``reextract`` request parameters
documented in :mod:`engine.state.requests`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from engine.instrument import sedm

CENTROID_RADIUS = 0.5
"""How far the engine's PSF fit may move from a centroid set here [spaxel unit] (the request's
``centroid_radius``): farther, the fit ran to another source and is flagged quality 4."""

LSTEPS: tuple[int, ...] = (1, 2, 3, 4, 5)
"""Valid ``lstep`` values (slices per forced fit)."""

_DIRECTIONS = {"right": 0.0, "up": 90.0, "left": 180.0, "down": 270.0}


def hex_step(direction: str, *, fine: bool = False) -> tuple[float, float]:
    """Centroid step for an arrow key [spaxel unit], along x or y of the frame ``redex X Y``
    takes and the map's axes show (not along the tilted lenslet lattice).

    A plain step is one spaxel unit, a fine step a quarter of one.

    Parameters
    ----------
    direction : {"left", "right", "up", "down"}
    fine : bool
        Quarter step.
    """
    a = math.radians(_DIRECTIONS[direction])
    size = 0.25 if fine else 1.0
    return round(size * math.cos(a), 6), round(size * math.sin(a), 6)


@dataclass(frozen=True)
class EditState:
    """A pending re-extraction.

    Attributes
    ----------
    guess : tuple of float
        Where the engine starts without a manual centroid (the current extraction's
        ``guess_x/y``): the default region is centred there.
    default_radius : float
        The engine's default region radius (``science.fit_radius``) [spaxel unit].
    centroid : tuple of float or None
        Manual centroid, if the observer moved it.
    radius : float or None
        Region radius if changed with ``[``/``]``.
    excluded : frozenset of int
        Spaxel ids (``Cube.spaxel_id``) removed from the region (cosmic rays...).
    added : frozenset of int
        Spaxel ids added outside the circle.
    lstep : int
        Slices per forced fit.
    """

    guess: tuple[float, float]
    default_radius: float = 10.0
    centroid: tuple[float, float] | None = None
    radius: float | None = None
    excluded: frozenset[int] = field(default_factory=frozenset)
    added: frozenset[int] = field(default_factory=frozenset)
    lstep: int = 1

    # ---------------------------------------------------------------- queries
    @property
    def position(self) -> tuple[float, float]:
        """The centre of the region: the manual centroid, else the engine's guess."""
        return self.centroid if self.centroid is not None else self.guess

    @property
    def effective_radius(self) -> float:
        """Region radius in use [spaxel unit]."""
        return self.radius if self.radius is not None else self.default_radius

    @property
    def region_changed(self) -> bool:
        """True when the region differs from the engine's default one."""
        return self.radius is not None or bool(self.excluded) or bool(self.added)

    @property
    def dirty(self) -> bool:
        """True when there is anything to re-extract with."""
        return self.centroid is not None or self.region_changed or self.lstep != 1

    def region_mask(self, xy: np.ndarray, spaxel_id: np.ndarray) -> np.ndarray:
        """Spaxels the engine will fit (``(n_spax,)`` bool), as ``fit_region`` computes them."""
        dist = np.hypot(*(np.asarray(xy, dtype=float) - np.asarray(self.position)).T)
        mask = dist <= self.effective_radius
        if self.added:
            mask |= np.isin(spaxel_id, list(self.added))
        if self.excluded:
            mask &= ~np.isin(spaxel_id, list(self.excluded))
        return mask

    def excluded_mask(self, spaxel_id: np.ndarray) -> np.ndarray:
        """Spaxels excluded by hand (``(n_spax,)`` bool)."""
        return np.isin(spaxel_id, list(self.excluded)) if self.excluded else np.zeros(len(spaxel_id), bool)

    def params(self, xy: np.ndarray | None = None, spaxel_id: np.ndarray | None = None) -> dict:
        """``reextract`` request parameters.

        The region is sent as ``{"radius", "exclude"}`` when only the circle and exclusions
        changed, or as the explicit ``{"include": [ids]}`` list when spaxels were added
        outside the circle (which needs ``xy`` and ``spaxel_id``).
        """
        out: dict = {"centroid": None if self.centroid is None else [round(self.centroid[0], 4),
                                                                       round(self.centroid[1], 4)],
                     "region": None, "lstep": int(self.lstep)}
        if self.centroid is not None:
            out["centroid_radius"] = CENTROID_RADIUS
        if self.added:
            if xy is None or spaxel_id is None:
                raise ValueError("spaxel positions are needed to send an explicit region")
            mask = self.region_mask(xy, spaxel_id)
            out["region"] = {"include": sorted(int(i) for i in np.asarray(spaxel_id)[mask])}
        elif self.region_changed:
            region: dict = {}
            if self.radius is not None:
                region["radius"] = round(float(self.radius), 3)
            if self.excluded:
                region["exclude"] = sorted(int(i) for i in self.excluded)
            out["region"] = region
        return out

    def describe(self) -> str:
        """One line for the status bar."""
        parts = []
        if self.centroid is not None:
            parts.append(f"centroid ({self.guess[0]:+.2f}, {self.guess[1]:+.2f}) → "
                         f"({self.centroid[0]:+.2f}, {self.centroid[1]:+.2f}) ±{CENTROID_RADIUS:g}")
        else:
            parts.append(f"centroid as extracted ({self.guess[0]:+.2f}, {self.guess[1]:+.2f})")
        region = f"region r={self.effective_radius:.1f}"
        if self.excluded:
            region += f" −{len(self.excluded)} spaxel{'s' if len(self.excluded) > 1 else ''}"
        if self.added:
            region += f" +{len(self.added)}"
        parts.append(region)
        parts.append(f"lstep {self.lstep}")
        return " · ".join(parts)

    # ---------------------------------------------------------------- edits
    def nudge(self, direction: str, *, fine: bool = False) -> EditState:
        """Move the centroid one spaxel unit (or a quarter) along x or y."""
        dx, dy = hex_step(direction, fine=fine)
        x, y = self.position
        return replace(self, centroid=(round(x + dx, 4), round(y + dy, 4)))

    def set_centroid(self, x: float, y: float) -> EditState:
        """Put the centroid at ``(x, y)``."""
        return replace(self, centroid=(round(float(x), 4), round(float(y), 4)))

    def grow(self, step: float = 1.0) -> EditState:
        """Change the circle's radius by ``step`` (at least one lenslet)."""
        r = max(sedm.LENSLET_PITCH_UNITS, self.effective_radius + step)
        return replace(self, radius=round(r, 3))

    def toggle(self, spaxel: int, inside_circle: bool) -> EditState:
        """Toggle one spaxel (by id) in or out of the region."""
        if spaxel in self.excluded:
            return replace(self, excluded=self.excluded - {spaxel})
        if spaxel in self.added:
            return replace(self, added=self.added - {spaxel})
        if inside_circle:
            return replace(self, excluded=self.excluded | {spaxel})
        return replace(self, added=self.added | {spaxel})

    def next_lstep(self) -> EditState:
        """Cycle ``lstep`` through 1-5."""
        i = LSTEPS.index(self.lstep) if self.lstep in LSTEPS else 0
        return replace(self, lstep=LSTEPS[(i + 1) % len(LSTEPS)])

    def reset_region(self) -> EditState:
        """Back to the engine's automatic region."""
        return replace(self, radius=None, excluded=frozenset(), added=frozenset())

    def reset(self) -> EditState:
        """Back to no edit at all."""
        return EditState(guess=self.guess, default_radius=self.default_radius)


def inside_ifu(x: float, y: float) -> bool:
    """True when ``(x, y)`` is within the IFU radius the engine accepts for a centroid."""
    return math.hypot(x, y) <= sedm.MLA_RADIUS_UNITS


__all__ = ["CENTROID_RADIUS", "LSTEPS", "EditState", "hex_step", "inside_ifu"]
