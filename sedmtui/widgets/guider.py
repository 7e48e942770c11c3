"""The guider (acquisition) view: the stack around the IFU, the IFU outline and the target."""

from __future__ import annotations

import numpy as np

from sedmtui.data import GuiderData
from sedmtui.maprender import MARKER_STYLES, Marker, circle_cells, compose_image, image_grid, lut
from sedmtui.widgets.canvas import HalfBlockCanvas, Painting

IFU_RGB = (0, 200, 255)
"""Colour of the IFU outline."""


class GuiderView(HalfBlockCanvas):
    """Grey half-block image of the guider cut-out (asinh stretch), North up, as the camera
    delivers it (the Rainbow Camera is mirrored: East on the right)."""

    DEFAULT_CSS = """
    GuiderView {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.guider: GuiderData | None = None
        self._limits = (0.0, 1.0)

    def set_guider(self, guider: GuiderData | None) -> None:
        """Show a cut-out (None clears the view)."""
        self.guider = guider
        if guider is not None:
            v = guider.image[np.isfinite(guider.image)]
            if v.size:
                lo, hi = np.percentile(v, [20.0, 99.7])
                self._limits = (float(lo), float(hi if hi > lo else lo + 1.0))
        self.update_picture(full=True)

    def paint(self, cols: int, rows: int) -> Painting | None:
        g = self.guider
        if g is None:
            return None
        grid = image_grid(g.image.shape, cols, rows)
        rgb, inside = compose_image(g.image, grid, lut("grey"), *self._limits)
        glyphs = {cell: Marker(0, 0, "·", IFU_RGB) for cell in circle_cells(grid, g.ifu[0], g.ifu[1], g.ifu_radius_px)}
        if g.target is not None:
            glyph, rgb_t = MARKER_STYLES["target"]
            cell = grid.cell_of(*g.target)
            if cell is not None:
                glyphs[(cell[0], cell[1])] = Marker(g.target[0], g.target[1], glyph, rgb_t)
        return Painting(rgb, inside, glyphs)


__all__ = ["GuiderView"]
