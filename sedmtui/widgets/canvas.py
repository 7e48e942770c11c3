"""A Line-API widget drawing a pixel image with half blocks (``▀``), plus glyph overlays.

Subclasses implement :meth:`HalfBlockCanvas.paint`, which returns the pixel colours and the
glyphs for a size. The canvas keeps one :class:`~textual.strip.Strip` per row and, when the
picture changes, compares the new pixels with the old ones and refreshes only the rows that
differ: a centroid nudge repaints two rows, not the widget (a few kB over SSH).
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from sedmtui.maprender import Marker, changed_rows


class Painting:
    """What a canvas shows at one size.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(2*rows, cols, 3)`` uint8 pixel colours.
    inside : numpy.ndarray
        ``(2*rows, cols)`` bool; False shows the widget background.
    glyphs : dict
        ``{(col, row): Marker}`` characters drawn over cells.
    """

    __slots__ = ("glyphs", "inside", "rgb")

    def __init__(self, rgb: np.ndarray, inside: np.ndarray, glyphs: dict[tuple[int, int], Marker] | None = None):
        self.rgb, self.inside, self.glyphs = rgb, inside, glyphs or {}


class HalfBlockCanvas(Widget):
    """Base class of the spaxel map, the PSF panels and the guider view."""

    DEFAULT_CSS = """
    HalfBlockCanvas {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._painting: Painting | None = None
        self._painted_size: tuple[int, int] | None = None
        self._strips: dict[int, Strip] = {}
        self._styles: dict[tuple, Style] = {}
        self._fixed_size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ subclass hook
    def paint(self, cols: int, rows: int) -> Painting | None:
        """The picture at ``cols x rows`` cells (None: nothing to show)."""
        return None

    # ------------------------------------------------------------------ size and invalidation
    def canvas_size(self) -> tuple[int, int]:
        """``(cols, rows)`` drawn: the widget's content size, or the size set for tests."""
        if self._fixed_size is not None:
            return self._fixed_size
        return self.size.width, self.size.height

    def set_canvas_size(self, cols: int, rows: int) -> None:
        """Draw at a fixed size (tests render lines without an app)."""
        self._fixed_size = (cols, rows)
        self.update_picture(full=True)

    def update_picture(self, *, full: bool = False) -> None:
        """Repaint after a change of data or overlays; refresh only the rows that changed."""
        cols, rows = self.canvas_size()
        if cols <= 0 or rows <= 0:
            self._painting, self._painted_size = None, None
            self._strips.clear()
            return
        old = self._painting
        new = self.paint(cols, rows)
        self._painting, self._painted_size = new, (cols, rows)
        if full or old is None or new is None or old.rgb.shape != new.rgb.shape:
            self._strips.clear()
            if self.is_attached:
                self.refresh()
            return
        rows_changed = set(changed_rows(old.rgb, new.rgb)) | set(changed_rows(
            old.inside[..., None].astype(np.uint8), new.inside[..., None].astype(np.uint8)))
        for (_c, r), _m in set(old.glyphs.items()) ^ set(new.glyphs.items()):
            rows_changed.add(r)
        for r in rows_changed:
            self._strips.pop(r, None)
            if self.is_attached:
                self.refresh(Region(0, r, cols, 1))

    def on_resize(self) -> None:
        self.update_picture(full=True)

    # ------------------------------------------------------------------ rendering
    def _style(self, fg: tuple | None, bg: tuple | None, bold: bool = False) -> Style:
        key = (fg, bg, bold)
        style = self._styles.get(key)
        if style is None:
            style = Style(color=None if fg is None else f"rgb({fg[0]},{fg[1]},{fg[2]})",
                          bgcolor=None if bg is None else f"rgb({bg[0]},{bg[1]},{bg[2]})", bold=bold)
            self._styles[key] = style
        return style

    def _base_style(self) -> Style:
        try:
            return self.rich_style
        except Exception:  # noqa: BLE001 - not mounted (line tests): plain style
            return Style()

    def render_line(self, y: int) -> Strip:
        """One terminal row of the picture (cached until the row changes)."""
        cols, rows = self.canvas_size()
        if self._painted_size != (cols, rows):
            self.update_picture(full=True)
        strip = self._strips.get(y)
        if strip is not None:
            return strip
        base = self._base_style()
        p = self._painting
        if p is None or y >= p.rgb.shape[0] // 2:
            return Strip.blank(cols, base)
        segments = self._row_segments(p, y, base)
        strip = Strip(segments, cols).simplify()
        self._strips[y] = strip
        return strip

    def _row_segments(self, p: Painting, y: int, base: Style) -> list[Segment]:
        top, bot = p.rgb[2 * y].tolist(), p.rgb[2 * y + 1].tolist()
        tin, bin_ = p.inside[2 * y].tolist(), p.inside[2 * y + 1].tolist()
        bg0 = tuple(base.bgcolor.get_truecolor()) if base.bgcolor is not None else None
        segs: list[Segment] = []
        for c in range(len(top)):
            glyph = p.glyphs.get((c, y))
            t = tuple(top[c]) if tin[c] else None
            b = tuple(bot[c]) if bin_[c] else None
            if glyph is not None:
                bg = tuple((np.add(t, b) // 2).tolist()) if (t and b) else (t or b or bg0)
                segs.append(Segment(glyph.glyph, self._style(glyph.rgb, bg, True)))
            elif t is None and b is None:
                segs.append(Segment(" ", base))
            elif t is None:
                segs.append(Segment("▄", self._style(b, bg0)))
            else:
                segs.append(Segment("▀", self._style(t, b if b is not None else bg0)))
        return segs


__all__ = ["HalfBlockCanvas", "Painting"]
