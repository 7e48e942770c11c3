"""The live target table: one row per exposure, keyed by ``HH_MM_SS``, updated cell by cell."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from sedmtui.safe import text
from sedmtui.state import COLUMNS, Cell, compile_filter, diff_cells, format_target, row_text
from sedmtui.widgets.header import SEVERITY_STYLES

SORTS: tuple[tuple[str, str], ...] = (("ut", "time"), ("q", "quality"), ("object", "object"), ("type", "type"),
                                      ("s2n", "S/N"))
"""Sort keys cycled by ``s``: column key and label."""

DESCENDING = frozenset({"q", "s2n"})
"""Sort keys ordered highest first."""


def cell_renderable(cell: Cell) -> Text:
    """A table cell, coloured by its severity tag.

    Always a ``Text``: a ``str`` cell would be parsed as markup by the DataTable, and cells
    hold header values (``OBJECT``) and engine text (see :mod:`sedmtui.safe`).
    """
    value, tag = cell
    return text(value, SEVERITY_STYLES.get(tag or "", ""))


def _sort_value(key: str, cells: dict[str, Cell]):
    text = cells[key][0]
    if key in ("q", "s2n"):
        try:
            return (0, -float(text))
        except ValueError:
            return (1, 0.0)
    return (0, text)


class TargetTable(DataTable):
    """Exposures of the night. Live deltas go through :meth:`apply` (``update_cell`` only)."""

    BINDINGS = [
        Binding("enter", "select_cursor", "open", id="night.open", key_display="⏎"),
        Binding("j", "cursor_down", "down", show=False, id="night.down"),
        Binding("k", "cursor_up", "up", show=False, id="night.up"),
        Binding("g", "first", "first", show=False, id="night.first"),
        Binding("G", "last", "last", show=False, id="night.last"),
    ]

    DEFAULT_CSS = """
    TargetTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, level: int = 2) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.level = level
        self.rows_data: dict[str, dict] = {}
        self.cells: dict[str, dict[str, Cell]] = {}
        self.candidates: dict[str, int] = {}
        self.pattern = ""
        self._match = compile_filter("")
        self.sort_index = 0

    @property
    def columns_shown(self):
        """The columns of the current detail level (0 at 80 columns .. 2 at full width)."""
        return [c for c in COLUMNS if c.level <= self.level <= c.max_level]

    # ------------------------------------------------------------------ building
    def load(self, rows: list[dict], candidates: dict[str, int]) -> None:
        """First fill (or a rebuild after a filter, sort or width change)."""
        for r in rows:
            self.rows_data[r["obs_id"]] = r
        self.candidates.update(candidates)
        self.rebuild()

    def rebuild(self) -> None:
        """Clear and refill from the rows held (user actions only: filter, width change)."""
        keep = self.selected_key()
        self.clear(columns=True)
        for c in self.columns_shown:
            sortable = any(c.key == key for key, _label in SORTS)  # room for the arrow
            self.add_column(self._label(c), key=c.key, width=max(c.width, len(c.label) + sortable))
        self.cells.clear()
        for obs_id in sorted(self.rows_data):
            self._add(obs_id)
        self._resort()
        if keep is not None and keep in self.cells:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def _add(self, obs_id: str) -> None:
        row = self.rows_data[obs_id]
        if not self._match(row_text(row)):
            return
        cells = format_target(row, self.candidates.get(obs_id, 0))
        self.cells[obs_id] = cells
        self.add_row(*(cell_renderable(cells[c.key]) for c in self.columns_shown), key=obs_id)

    # ------------------------------------------------------------------ live deltas
    def apply(self, rows: dict[str, dict], candidates: dict[str, int]) -> int:
        """Apply changed rows; returns the number of cells written. New rows are appended."""
        written = 0
        self.candidates.update(candidates)
        shown = {c.key for c in self.columns_shown}
        added = False
        for obs_id, row in rows.items():
            self.rows_data[obs_id] = row
            if obs_id not in self.cells:
                before = len(self.cells)
                self._add(obs_id)
                added |= len(self.cells) > before
                continue
            new = format_target(row, self.candidates.get(obs_id, 0))
            for key, cell in diff_cells(self.cells[obs_id], new):
                if key in shown:
                    self.update_cell(obs_id, key, cell_renderable(cell))
                    written += 1
            self.cells[obs_id] = new
        if added and self.sort_index:
            self._resort()
        return written

    # ------------------------------------------------------------------ filter and sort
    def set_filter(self, pattern: str) -> None:
        """Show only rows matching a regex (``!`` inverts); raises ``re.error`` if invalid."""
        self._match = compile_filter(pattern)
        self.pattern = pattern
        self.rebuild()

    def cycle_sort(self) -> str:
        """Next sort key; returns its label. The sort column's header shows an arrow."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        for c in self.columns_shown:
            column = self.columns.get(c.key)  # type: ignore[call-overload] - ColumnKey compares equal to its str
            if column is not None:
                column.label = Text(self._label(c))
        self._resort()
        self.refresh()
        return SORTS[self.sort_index][1]

    def _label(self, column) -> str:
        """A column header, with ``▲``/``▼`` on the sort column (S/N and Q sort highest first)."""
        key = SORTS[self.sort_index][0]
        if column.key != key:
            return column.label
        return f"{column.label}{'▼' if key in DESCENDING else '▲'}"

    def _resort(self) -> None:
        if not self.cells:
            return
        key = SORTS[self.sort_index][0]
        order = {k: (_sort_value(key, self.cells[k]), k) for k in self.cells}
        self.sort("ut", key=lambda ut: order.get(str(ut).replace(":", "_"), ((2, 0.0), "")))

    def action_first(self) -> None:
        """Cursor to the first row."""
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last(self) -> None:
        """Cursor to the last row."""
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    # ------------------------------------------------------------------ selection
    def selected_key(self) -> str | None:
        """``HH_MM_SS`` of the row under the cursor."""
        if self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - empty or moving table
            return None

    def select(self, obs_id: str) -> bool:
        """Move the cursor to an exposure; False if it is filtered out."""
        if obs_id not in self.cells:
            return False
        self.move_cursor(row=self.get_row_index(obs_id), animate=False)
        return True


__all__ = ["SORTS", "TargetTable", "cell_renderable"]
