"""Pure raster, colour and overlay functions behind the console's half-block maps.

Nothing here imports Textual or Rich: the widgets in :mod:`sedmtui.widgets` turn the arrays
computed here into styled terminal cells. Conventions:

* A *raster* maps terminal pixels to spaxels. A terminal cell of ``(col, row)`` holds two
  pixels, ``(col, 2*row)`` on top and ``(col, 2*row + 1)`` below (the ``▀`` half block), so a
  pixel is roughly square.
* Spaxel coordinates are the engine's (0.55 arcsec units, +x right, +y up = North); pixel
  rows grow downwards.
* Colour tables (LUTs) are ``(256, 3)`` ``uint8`` arrays; a colour *level* is an index into one,
  ``-1`` means "no value" (NaN) and ``-2`` "outside the footprint" (terminal background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engine.instrument import sedm

NO_VALUE = -1
"""Colour level of a spaxel without a finite value."""
OUTSIDE = -2
"""Colour level of a pixel outside every spaxel (terminal background)."""

_VIRIDIS_33 = (
    (68, 1, 84), (71, 13, 96), (72, 24, 106), (72, 35, 116), (71, 45, 123), (69, 55, 129), (66, 64, 134),
    (62, 73, 137), (59, 82, 139), (55, 91, 141), (51, 99, 141), (47, 107, 142), (44, 114, 142), (41, 122, 142),
    (38, 130, 142), (35, 137, 142), (33, 145, 140), (31, 152, 139), (31, 160, 136), (34, 167, 133),
    (40, 174, 128), (50, 182, 122), (63, 188, 115), (78, 195, 107), (94, 201, 98), (112, 207, 87),
    (132, 212, 75), (152, 216, 62), (173, 220, 48), (194, 223, 35), (216, 226, 25), (236, 229, 27),
    (253, 231, 37),
)
"""matplotlib's viridis sampled at 33 evenly spaced points (sRGB 0-255)."""

_RDBU_17 = (
    (5, 48, 97), (23, 82, 144), (42, 113, 178), (63, 142, 192), (107, 172, 209), (155, 201, 224),
    (194, 221, 236), (224, 236, 243), (247, 246, 246), (251, 229, 216), (251, 204, 180), (245, 170, 137),
    (228, 128, 102), (208, 85, 72), (186, 40, 50), (147, 14, 38), (103, 0, 31),
)
"""matplotlib's RdBu_r (blue = negative, red = positive) at 17 points, for residuals."""

NO_VALUE_RGB: tuple[int, int, int] = (60, 60, 60)
"""Colour of a spaxel without a finite value."""


def _interpolate_lut(anchors: tuple[tuple[int, int, int], ...], n: int) -> np.ndarray:
    a = np.asarray(anchors, dtype=float)
    t = np.linspace(0.0, 1.0, a.shape[0])
    u = np.linspace(0.0, 1.0, n)
    out = np.stack([np.interp(u, t, a[:, k]) for k in range(3)], axis=1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def lut(name: str, n: int = 256) -> np.ndarray:
    """A colour table.

    Parameters
    ----------
    name : {"viridis", "diverging", "grey"}
        Perceptual sequential (viridis, interpolated from 33 anchors: no matplotlib import),
        diverging blue-white-red for residuals, or linear grey for guider images.
    n : int
        Number of levels.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 3)`` ``uint8`` (read-only).
    """
    if name == "viridis":
        table = _interpolate_lut(_VIRIDIS_33, n)
    elif name == "diverging":
        table = _interpolate_lut(_RDBU_17, n)
    elif name == "grey":
        g = np.rint(np.linspace(0, 255, n)).astype(np.uint8)
        table = np.stack([g, g, g], axis=1)
    else:
        raise ValueError(f"unknown colour table {name!r}")
    table.flags.writeable = False
    return table


def robust_limits(values: np.ndarray, lo_pct: float = 2.0, hi_pct: float = 99.5) -> tuple[float, float]:
    """Display limits from percentiles of the finite values (``(0, 1)`` if there are none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    return float(lo), float(hi)


def symmetric_limits(values: np.ndarray, pct: float = 99.0) -> tuple[float, float]:
    """Limits ``(-a, a)`` around zero, for residual maps."""
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    a = float(np.percentile(v, pct)) if v.size else 1.0
    return -(a or 1.0), (a or 1.0)


def quantise(values: np.ndarray, lo: float, hi: float, n: int = 256, *, stretch: str = "linear") -> np.ndarray:
    """Colour levels ``0..n-1`` of ``values`` between ``lo`` and ``hi`` (``NO_VALUE`` for NaN).

    Parameters
    ----------
    stretch : {"linear", "asinh"}
        ``asinh`` brings faint structure up (guider images, faint targets).
    """
    v = np.asarray(values, dtype=float)
    span = (hi - lo) or 1.0
    with np.errstate(invalid="ignore"):
        t = np.clip((v - lo) / span, 0.0, 1.0)
        if stretch == "asinh":
            t = np.arcsinh(10.0 * t) / math.asinh(10.0)
    levels = np.where(np.isfinite(v), np.rint(t * (n - 1)), NO_VALUE)
    return levels.astype(np.int16)


# --------------------------------------------------------------------------------------------- raster
@dataclass(frozen=True)
class View:
    """The part of the spaxel plane a map shows.

    Attributes
    ----------
    cx, cy : float
        Centre [spaxel unit].
    half_width : float
        Half of the shorter side of the map [spaxel unit].
    """

    cx: float = 0.0
    cy: float = 0.0
    half_width: float = 27.0


@dataclass(frozen=True)
class Raster:
    """Pixel -> spaxel lookup of a map of ``n_cols`` x ``n_rows`` cells.

    Attributes
    ----------
    idx : numpy.ndarray
        Shape ``(2*n_rows, n_cols)``: index of the spaxel under each pixel, ``-1`` outside.
    x0, y0 : float
        Spaxel coordinates of the top-left corner of pixel ``(0, 0)``.
    scale : float
        Pixels per spaxel unit.
    """

    idx: np.ndarray
    x0: float
    y0: float
    scale: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_pixel_rows, n_cols)``."""
        return self.idx.shape  # type: ignore[return-value]

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Fractional pixel ``(col, prow)`` of spaxel coordinates ``(x, y)``."""
        return (x - self.x0) * self.scale, (self.y0 - y) * self.scale

    def to_spaxel(self, col: float, prow: float) -> tuple[float, float]:
        """Spaxel coordinates of fractional pixel position ``(col, prow)``."""
        return self.x0 + col / self.scale, self.y0 - prow / self.scale

    def cell_of(self, x: float, y: float) -> tuple[int, int, int] | None:
        """``(col, row, half)`` of the terminal cell holding ``(x, y)`` (half 0 top, 1 bottom)."""
        c, p = self.to_pixel(x, y)
        col, prow = int(math.floor(c)), int(math.floor(p))
        ny, nx = self.shape
        if not (0 <= col < nx and 0 <= prow < ny):
            return None
        return col, prow // 2, prow % 2


class SpaxelLayout:
    """Spaxel centres and their KD-tree (built on first use, then kept with the layout).

    Parameters
    ----------
    xy : numpy.ndarray
        Shape ``(n_spax, 2)`` spaxel centres [spaxel unit].
    """

    def __init__(self, xy: np.ndarray) -> None:
        self.xy = np.asarray(xy, dtype=float)
        self._tree = None

    @property
    def tree(self):
        """``scipy.spatial.cKDTree`` of the centres."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.xy)
        return self._tree

    def nearest(self, x: float, y: float, max_dist: float = sedm.LENSLET_PITCH_UNITS) -> int | None:
        """Index of the spaxel nearest ``(x, y)``, or None farther than ``max_dist``."""
        dist, i = self.tree.query([x, y])
        return int(i) if dist <= max_dist else None


def build_raster(layout: SpaxelLayout, n_cols: int, n_rows: int, view: View = View(),
                 max_dist: float = sedm.HEX_CIRCUMRADIUS_UNITS) -> Raster:
    """Nearest-spaxel lookup of every pixel of a map, with ``scipy.spatial.cKDTree``.

    On the hexagonal lenslet lattice the nearest-centre (Voronoi) cells are the hexagons, so
    the map shows hexagonal spaxels at any zoom. Pixels farther than ``max_dist`` from every
    centre are outside the footprint (``-1``).

    Parameters
    ----------
    layout : SpaxelLayout
        The spaxel centres (and their tree, built once per layout).
    n_cols, n_rows : int
        Map size in terminal cells (``2*n_rows`` pixel rows).
    view : View
        What part of the plane to show; the shorter side spans ``2*half_width``.
    """
    n_cols, n_rows = max(1, int(n_cols)), max(1, int(n_rows))
    ny, nx = 2 * n_rows, n_cols
    scale = min(nx, ny) / (2.0 * view.half_width)
    x0 = view.cx - nx / (2.0 * scale)
    y0 = view.cy + ny / (2.0 * scale)
    cols = x0 + (np.arange(nx) + 0.5) / scale
    rows = y0 - (np.arange(ny) + 0.5) / scale
    px, py = np.meshgrid(cols, rows)
    dist, idx = layout.tree.query(np.stack([px.ravel(), py.ravel()], 1))
    # a pixel coarser than a lenslet still belongs to its nearest spaxel
    limit = max(max_dist, 0.75 / scale)
    idx = np.where(dist <= limit, idx, -1).reshape(ny, nx).astype(np.int32)
    return Raster(idx=idx, x0=float(x0), y0=float(y0), scale=float(scale))


@dataclass(frozen=True)
class ImageGrid:
    """Nearest-neighbour sampling of an image ``(ny, nx)`` on a ``n_cols x 2*n_rows`` pixel map.

    The aspect ratio is kept and image row 0 is drawn at the bottom (FITS orientation).

    Attributes
    ----------
    iy : numpy.ndarray
        ``(2*n_rows,)`` image row of each map pixel row (``-1`` beyond the image).
    ix : numpy.ndarray
        ``(n_cols,)`` image column of each map column (``-1`` beyond the image).
    scale : float
        Map pixels per image pixel.
    ox, oy : float
        Map-pixel offset of the image's left and top edges.
    ny : int
        Image rows.
    """

    iy: np.ndarray
    ix: np.ndarray
    scale: float
    ox: float
    oy: float
    ny: int

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Map pixel ``(col, prow)`` of image position ``(x, y)`` (0-based, x = column)."""
        return self.ox + (x + 0.5) * self.scale, self.oy + (self.ny - 0.5 - y) * self.scale

    def cell_of(self, x: float, y: float) -> tuple[int, int, int] | None:
        """``(col, row, half)`` of the terminal cell showing image position ``(x, y)``."""
        c, p = self.to_pixel(x, y)
        col, prow = int(math.floor(c)), int(math.floor(p))
        if not (0 <= col < self.ix.size and 0 <= prow < self.iy.size):
            return None
        return col, prow // 2, prow % 2


def image_grid(shape: tuple[int, int], n_cols: int, n_rows: int) -> ImageGrid:
    """The :class:`ImageGrid` of an image of ``shape`` on a map of ``n_cols x n_rows`` cells."""
    ny, nx = shape
    py, px = 2 * max(1, n_rows), max(1, n_cols)
    scale = min(px / nx, py / ny)
    ox = (px - nx * scale) / 2.0
    oy = (py - ny * scale) / 2.0
    ix = np.floor((np.arange(px) + 0.5 - ox) / scale).astype(int)
    iy = np.floor((np.arange(py) + 0.5 - oy) / scale).astype(int)
    ix[(ix < 0) | (ix >= nx)] = -1
    iy[(iy < 0) | (iy >= ny)] = -1
    iy = np.where(iy >= 0, ny - 1 - iy, -1)
    return ImageGrid(iy=iy, ix=ix, scale=float(scale), ox=float(ox), oy=float(oy), ny=int(ny))


# --------------------------------------------------------------------------------------------- pixels
@dataclass(frozen=True)
class Overlay:
    """What is drawn over the spaxel values.

    Attributes
    ----------
    region : numpy.ndarray or None
        ``(n_spax,)`` bool: spaxels in the extraction region; the others are dimmed.
    excluded : numpy.ndarray or None
        ``(n_spax,)`` bool: spaxels excluded by hand (drawn in ``EXCLUDED_RGB``).
    cursor : int or None
        Spaxel index under the region-mode cursor (drawn in ``CURSOR_RGB``).
    dim : float
        Brightness of spaxels outside the region (0-1).
    """

    region: np.ndarray | None = None
    excluded: np.ndarray | None = None
    cursor: int | None = None
    dim: float = 0.45


EXCLUDED_RGB = np.array([255, 40, 140], dtype=np.uint8)
"""Colour of a spaxel excluded by hand (magenta: no viridis level looks like it)."""
CURSOR_RGB = np.array([255, 255, 255], dtype=np.uint8)
"""Colour of the spaxel under the region cursor."""
CURSOR_EXCLUDED_RGB = np.array([255, 170, 215], dtype=np.uint8)
"""The cursor on an excluded spaxel (pale magenta: the exclusion stays visible under it)."""


def compose_pixels(raster: Raster, levels: np.ndarray, table: np.ndarray, overlay: Overlay = Overlay()
                   ) -> tuple[np.ndarray, np.ndarray]:
    """RGB colour of every pixel.

    Parameters
    ----------
    raster : Raster
        The pixel -> spaxel lookup.
    levels : numpy.ndarray
        ``(n_spax,)`` colour levels (``NO_VALUE`` for NaN).
    table : numpy.ndarray
        The LUT.
    overlay : Overlay
        Region dimming, excluded spaxels and the cursor.

    Returns
    -------
    rgb : numpy.ndarray
        ``(ny, nx, 3)`` ``uint8``.
    inside : numpy.ndarray
        ``(ny, nx)`` bool, False where no spaxel is (terminal background).
    """
    n = levels.shape[0]
    spax_rgb = np.where((levels >= 0)[:, None], table[np.clip(levels, 0, len(table) - 1)],
                        np.asarray(NO_VALUE_RGB, dtype=np.uint8)).astype(np.float32)
    if overlay.region is not None:
        spax_rgb[~overlay.region] *= overlay.dim
    spax_rgb = np.rint(spax_rgb).astype(np.uint8)
    if overlay.excluded is not None:
        spax_rgb[overlay.excluded] = EXCLUDED_RGB
    if overlay.cursor is not None and 0 <= overlay.cursor < n:
        on_excluded = overlay.excluded is not None and bool(overlay.excluded[overlay.cursor])
        spax_rgb[overlay.cursor] = CURSOR_EXCLUDED_RGB if on_excluded else CURSOR_RGB
    inside = raster.idx >= 0
    rgb = spax_rgb[np.where(inside, raster.idx, 0)]
    rgb[~inside] = 0
    return rgb, inside


def compose_image(image: np.ndarray, grid: ImageGrid, table: np.ndarray, lo: float, hi: float,
                  *, stretch: str = "asinh") -> tuple[np.ndarray, np.ndarray]:
    """RGB of an image sampled on a :class:`ImageGrid`."""
    iy, ix = grid.iy, grid.ix
    sub = np.full((iy.size, ix.size), np.nan, dtype=float)
    oky, okx = iy >= 0, ix >= 0
    sub[np.ix_(oky, okx)] = image[np.ix_(iy[oky], ix[okx])]
    levels = quantise(sub, lo, hi, len(table), stretch=stretch)
    inside = levels >= 0
    rgb = table[np.clip(levels, 0, len(table) - 1)]
    rgb[~inside] = 0
    return rgb, inside


# --------------------------------------------------------------------------------------------- markers
@dataclass(frozen=True)
class Marker:
    """A glyph drawn at a spaxel-plane (or image) position.

    Attributes
    ----------
    x, y : float
        Position (spaxel units on spaxel maps, image pixels on images).
    glyph : str
        One character: ``×`` astrometry, ``○`` brightest, ``+`` manual, ``●`` fitted.
    rgb : tuple of int
        Glyph colour.
    """

    x: float
    y: float
    glyph: str
    rgb: tuple[int, int, int]


MARKER_STYLES: dict[str, tuple[str, tuple[int, int, int]]] = {
    "astrom": ("×", (255, 64, 64)),
    "brightest": ("○", (255, 140, 0)),
    "manual": ("+", (255, 255, 255)),
    "fitted": ("●", (0, 230, 255)),
    "target": ("×", (255, 64, 64)),
    "spike": ("!", (255, 230, 0)),
}
"""Glyph and colour of each marker kind (the verify figure's symbols)."""


def marker_cells(grid: Raster | ImageGrid, markers: list[Marker]) -> dict[tuple[int, int], Marker]:
    """Cell ``(col, row)`` of each marker that falls on the map; later markers win a shared cell."""
    out: dict[tuple[int, int], Marker] = {}
    for m in markers:
        cell = grid.cell_of(m.x, m.y)
        if cell is not None:
            out[(cell[0], cell[1])] = m
    return out


def circle_cells(grid: Raster | ImageGrid, x: float, y: float, radius: float, n: int = 96) -> set[tuple[int, int]]:
    """Cells crossed by a circle (drawn as a dotted outline, e.g. the IFU on the guider view)."""
    cells = set()
    for t in np.linspace(0.0, 2 * math.pi, n, endpoint=False):
        cell = grid.cell_of(x + radius * math.cos(t), y + radius * math.sin(t))
        if cell is not None:
            cells.add((cell[0], cell[1]))
    return cells


def half_block_row(rgb: np.ndarray, inside: np.ndarray, row: int) -> list[tuple[str, tuple | None, tuple | None]]:
    """``(char, fg, bg)`` of every cell of a terminal row (pure form of the widgets' strips).

    ``▀`` with fg = top pixel and bg = bottom pixel; ``▄`` when only the bottom pixel is inside;
    a space on the terminal background when neither is.
    """
    top_rgb, bot_rgb = rgb[2 * row], rgb[2 * row + 1]
    top_in, bot_in = inside[2 * row], inside[2 * row + 1]
    out = []
    for c in range(rgb.shape[1]):
        t = tuple(int(v) for v in top_rgb[c]) if top_in[c] else None
        b = tuple(int(v) for v in bot_rgb[c]) if bot_in[c] else None
        if t is None and b is None:
            out.append((" ", None, None))
        elif t is None:
            out.append(("▄", b, None))
        else:
            out.append(("▀", t, b))
    return out


def changed_rows(old: np.ndarray | None, new: np.ndarray) -> list[int]:
    """Terminal rows whose pixels differ between two ``(ny, nx, ...)`` pixel arrays."""
    if old is None or old.shape != new.shape:
        return list(range(new.shape[0] // 2))
    diff = np.any((old != new).reshape(old.shape[0], -1), axis=1)
    rows = diff[0::2] | diff[1::2]
    return [int(r) for r in np.flatnonzero(rows)]


AXIS_WIDTH = 4
"""Columns of the y axis left of a spaxel map (``-20┤``)."""


def tick_values(lo: float, hi: float, cells_per_unit: float, min_cells: float) -> list[float]:
    """Round values in ``[lo, hi]`` at least ``min_cells`` apart on screen (steps 1, 2, 5, 10...)."""
    step = next((s for s in (0.5, 1, 2, 5, 10, 20, 50) if s * cells_per_unit >= min_cells), 100.0)
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 6) for k in range(int((hi - first) / step) + 1)]


def map_axes(raster: Raster, n_cols: int, n_rows: int) -> tuple[str, list[str]]:
    """The axes of a spaxel map in the frame ``redex X Y`` takes: x to the right, y up.

    Returns the x axis line (``AXIS_WIDTH`` blank columns, then labels under their column) and
    the ``n_rows`` y-axis cells (a label and ``┤`` on the row of a tick, ``│`` elsewhere).
    """
    x_lo, y_hi = raster.to_spaxel(0.0, 0.0)
    x_hi, y_lo = raster.to_spaxel(float(n_cols), 2.0 * n_rows)
    line = [" "] * (AXIS_WIDTH + n_cols + 3)
    for v in tick_values(x_lo, x_hi, raster.scale, 6.0):
        col = int(math.floor((v - raster.x0) * raster.scale))
        label = f"{v:g}"
        start = AXIS_WIDTH + col - (len(label) - 1) // 2
        if 0 <= start and start + len(label) <= len(line) \
                and all(c == " " for c in line[max(0, start - 1):start + len(label) + 1]):
            line[start:start + len(label)] = list(label)
    x_line = "".join(line).rstrip()
    if len(x_line) + 4 <= AXIS_WIDTH + n_cols:
        x_line = x_line.ljust(AXIS_WIDTH + n_cols - 3) + " x→"
    y_cells = [" " * (AXIS_WIDTH - 1) + "│"] * n_rows
    for v in tick_values(y_lo, y_hi, raster.scale / 2.0, 2.0):
        row = int(math.floor((raster.y0 - v) * raster.scale)) // 2
        if 0 <= row < n_rows:
            y_cells[row] = f"{v:g}"[-(AXIS_WIDTH - 1):].rjust(AXIS_WIDTH - 1) + "┤"
    if n_rows and y_cells[0].endswith("│"):
        y_cells[0] = "  y│"
    return x_line, y_cells


__all__ = [
    "AXIS_WIDTH",
    "MARKER_STYLES",
    "NO_VALUE",
    "OUTSIDE",
    "ImageGrid",
    "Marker",
    "Overlay",
    "Raster",
    "SpaxelLayout",
    "View",
    "build_raster",
    "changed_rows",
    "circle_cells",
    "compose_image",
    "compose_pixels",
    "half_block_row",
    "image_grid",
    "lut",
    "map_axes",
    "marker_cells",
    "quantise",
    "robust_limits",
    "symmetric_limits",
    "tick_values",
]
