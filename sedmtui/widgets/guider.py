"""The guider (acquisition) view: the stack around the IFU, the IFU outline and the target."""

from __future__ import annotations

import numpy as np

from sedmtui.data import GuiderData
from sedmtui.finder import FinderData
from sedmtui.maprender import MARKER_STYLES, Marker, circle_cells, compose_image, image_grid, lut
from sedmtui.widgets.canvas import HalfBlockCanvas, Painting

IFU_RGB = (0, 200, 255)
"""Colour of the IFU outline."""


def target_glyph(grid, target: tuple[float, float] | None) -> dict[tuple[int, int], Marker]:
    """The target's ``×`` at its cell of ``grid`` (an :class:`ImageGrid`), if it falls on it.

    Parameters
    ----------
    grid : ImageGrid
        The image's cells.
    target : tuple of float or None
        The target in image pixels ``(x, y)``.
    """
    if target is None:
        return {}
    cell = grid.cell_of(*target)
    if cell is None:
        return {}
    glyph, rgb = MARKER_STYLES["target"]
    return {(cell[0], cell[1]): Marker(target[0], target[1], glyph, rgb)}


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
        self.finder: FinderData | None = None
        self.showing_finder = False
        self._limits = (0.0, 1.0)

    def set_guider(self, guider: GuiderData | None, finder: FinderData | None = None,
                   show_finder: bool | None = None) -> None:
        """Show a cut-out (None clears the view), keeping the exposure's finder chart for
        :meth:`toggle`; ``show_finder`` None shows the chart only when there is no cut-out."""
        self.guider, self.finder = guider, finder
        self.showing_finder = (guider is None) if show_finder is None else show_finder
        self.showing_finder = self.showing_finder and finder is not None
        self._set_limits()
        self.update_picture(full=True)

    def toggle(self) -> bool:
        """Switch between the guider cut-out and the finder chart; False when there is no chart."""
        if self.finder is None:
            return False
        self.showing_finder = not self.showing_finder
        self._set_limits()
        self.update_picture(full=True)
        return True

    def _set_limits(self) -> None:
        img = self.finder.image if self.showing_finder and self.finder is not None else \
            (self.guider.image if self.guider is not None else None)
        if img is None:
            return
        v = img[np.isfinite(img)]
        if v.size:
            lo, hi = np.percentile(v, [20.0, 99.7] if not self.showing_finder else [1.0, 99.5])
            self._limits = (float(lo), float(hi if hi > lo else lo + 1.0))

    def paint(self, cols: int, rows: int) -> Painting | None:
        if self.showing_finder and self.finder is not None:
            return self._paint_finder(cols, rows)
        g = self.guider
        if g is None:
            return None
        grid = image_grid(g.image.shape, cols, rows)
        rgb, inside = compose_image(g.image, grid, lut("grey"), *self._limits)
        glyphs = {cell: Marker(0, 0, "·", IFU_RGB) for cell in circle_cells(grid, g.ifu[0], g.ifu[1], g.ifu_radius_px)}
        glyphs.update(target_glyph(grid, g.target))
        return Painting(rgb, inside, glyphs)

    def _paint_finder(self, cols: int, rows: int) -> Painting:
        f = self.finder
        grid = image_grid(f.image.shape, cols, rows)
        rgb, inside = compose_image(f.image, grid, lut("grey"), *self._limits, stretch="linear")
        return Painting(rgb, inside, target_glyph(grid, f.target))

    def title(self) -> str:
        """The pane's title for what it shows."""
        if self.showing_finder and self.finder is not None:
            return f"finder {self.finder.file} · {self.finder.orientation}" + (" · target ×" if self.finder.target else "")
        return "guider: IFU · target ×" + (" · n finder" if self.finder is not None else "")


__all__ = ["GuiderView", "target_glyph"]
