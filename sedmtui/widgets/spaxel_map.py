"""The IFU spaxel map: hexagonal spaxels as half-block pixels, with region and markers."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from textual.message import Message

from sedmtui.maprender import (
    Marker,
    Overlay,
    Raster,
    SpaxelLayout,
    View,
    build_raster,
    compose_pixels,
    lut,
    marker_cells,
    quantise,
    robust_limits,
)
from sedmtui.widgets.canvas import HalfBlockCanvas, Painting

ZOOMS: tuple[float, ...] = (27.0, 16.0, 10.0, 6.0)
"""Half widths of the zoom levels [spaxel unit]: the whole IFU down to a few lenslets."""


AUTO_ZOOM_ROWS = 16
"""Maps shorter than this [terminal rows] start zoomed on the target."""
AUTO_ZOOM_HALF_WIDTH = 14.0
"""Half width of that start view [spaxel unit]."""


class SpaxelMap(HalfBlockCanvas):
    """A map of one value per spaxel (cube slice, PSF data/model/residual).

    The pixel -> spaxel lookup (a KD-tree query) is rebuilt only when the size, the view or
    the layout change; a new picture is then a gather and a colour lookup.
    """

    DEFAULT_CSS = """
    SpaxelMap {
        width: 1fr;
        height: 1fr;
    }
    """

    @dataclass
    class Clicked(Message):
        """A spaxel was clicked (mouse is an extra: every edit has a key)."""

        map: SpaxelMap
        x: float
        y: float
        index: int | None

        @property
        def control(self) -> SpaxelMap:
            return self.map

    @dataclass
    class Framed(Message):
        """The pixel -> spaxel frame changed (size, view or layout): axes are redrawn."""

        map: SpaxelMap
        raster: Raster
        cols: int
        rows: int

        @property
        def control(self) -> SpaxelMap:
            return self.map

    def __init__(self, *, table: str = "viridis", nan_outside: bool = False, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.table = table
        self.nan_outside = nan_outside
        self.spaxels: SpaxelLayout | None = None
        self.values: np.ndarray | None = None
        self.limits: tuple[float, float] | None = None
        self.view = View()
        self.overlay = Overlay()
        self.markers: list[Marker] = []
        self._follow: tuple[float, float] | None = None  # centre the size-chosen zoom keeps (follow_size)
        self._levels: np.ndarray | None = None
        self._raster: Raster | None = None
        self._raster_key: tuple | None = None
        self._pixels: tuple[tuple, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ data
    def set_data(self, layout: SpaxelLayout | None, values: np.ndarray | None,
                 limits: tuple[float, float] | None = None, *, table: str | None = None) -> None:
        """Show ``values`` (one per spaxel of ``layout``); ``limits`` default to percentiles."""
        if layout is not self.spaxels:
            self._raster_key = None
        self.spaxels, self.values = layout, values
        if table is not None:
            self.table = table
        if values is not None:
            self.limits = limits or robust_limits(values)
            self._levels = quantise(values, *self.limits, len(lut(self.table)))
        else:
            self._levels = None
        self.update_picture()

    def set_overlay(self, overlay: Overlay) -> None:
        """Region, excluded spaxels and the region cursor."""
        self.overlay = overlay
        self.update_picture()

    def set_markers(self, markers: list[Marker]) -> None:
        """Centroid markers."""
        self.markers = list(markers)
        self.update_picture()

    def set_overlay_and_markers(self, overlay: Overlay, markers: list[Marker]) -> None:
        """Both at once (one repaint). Pass the same ``overlay`` object to keep the pixels:
        then only the marker cells are recomputed (a nudge)."""
        self.overlay, self.markers = overlay, list(markers)
        self.update_picture()

    def set_view(self, view: View) -> None:
        """Centre and zoom."""
        if view != self.view:
            self.view = view
            self.update_picture()

    def follow_size(self, centre: tuple[float, float] | None) -> None:
        """Until the user zooms, a map shorter than :data:`AUTO_ZOOM_ROWS` rows shows the
        :data:`AUTO_ZOOM_HALF_WIDTH` around ``centre`` and a taller one the whole IFU, decided
        again at every resize (the first size a map gets is often not its last: a layout that
        switches to one panel)."""
        self._follow = centre
        self._auto_view()

    def _auto_view(self) -> None:
        centre = self._follow
        if centre is None or self.size.height == 0:
            return
        small = self.size.height < AUTO_ZOOM_ROWS
        self.set_view(View(*centre, AUTO_ZOOM_HALF_WIDTH) if small else View())

    def on_resize(self) -> None:
        self._auto_view()
        super().on_resize()

    def zoom(self, step: int) -> None:
        """Next (``+1``) or previous (``-1``) zoom level, keeping the centre (and from then on
        the size no longer decides the zoom)."""
        self._follow = None
        levels = list(ZOOMS)
        i = min(range(len(levels)), key=lambda k: abs(levels[k] - self.view.half_width))
        i = max(0, min(len(levels) - 1, i + step))
        self.set_view(replace(self.view, half_width=levels[i]))

    # ------------------------------------------------------------------ painting
    def raster(self, cols: int, rows: int) -> Raster | None:
        """The pixel -> spaxel lookup at this size (cached)."""
        if self.spaxels is None:
            return None
        key = (cols, rows, self.view, id(self.spaxels))
        if key != self._raster_key:
            self._raster = build_raster(self.spaxels, cols, rows, self.view)
            self._raster_key = key
            self.post_message(self.Framed(self, self._raster, cols, rows))
        return self._raster

    def paint(self, cols: int, rows: int) -> Painting | None:
        raster = self.raster(cols, rows)
        if raster is None or self._levels is None:
            return None
        key = (self._raster_key, id(self._levels), id(self.overlay), self.table, self.nan_outside)
        if self._pixels is None or self._pixels[0] != key:
            rgb, inside = compose_pixels(raster, self._levels, lut(self.table), self.overlay)
            if self.nan_outside:
                valid = self._levels >= 0
                inside &= valid[np.where(raster.idx >= 0, raster.idx, 0)]
            self._pixels = (key, rgb, inside)
        _key, rgb, inside = self._pixels
        return Painting(rgb, inside, marker_cells(raster, self.markers))

    # ------------------------------------------------------------------ mouse
    def spaxel_at(self, col: int, row: int, half: float = 0.5) -> tuple[float, float, int | None] | None:
        """Spaxel coordinates and index under a cell (``half`` 0 top .. 1 bottom)."""
        cols, rows = self.canvas_size()
        raster = self.raster(cols, rows)
        if raster is None:
            return None
        x, y = raster.to_spaxel(col + 0.5, 2 * row + 2 * half)
        return x, y, self.spaxels.nearest(x, y) if self.spaxels is not None else None

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        hit = self.spaxel_at(offset.x, offset.y)
        if hit is not None:
            self.post_message(self.Clicked(self, hit[0], hit[1], hit[2]))


__all__ = ["ZOOMS", "SpaxelMap"]
