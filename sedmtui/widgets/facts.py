"""The facts panel: quality and why, SRCPOS, centroid, PSF, ADR, flux calibration, SNID."""

from __future__ import annotations

from rich.table import Table
from textual.widgets import Static

from sedmtui.safe import text
from sedmtui.widgets.header import SEVERITY_STYLES


def facts_table(rows: list[tuple[str, str, str | None]]) -> Table:
    """A two-column grid of ``(label, value, severity)``."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="grey62", no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    for label, value, sev in rows:
        table.add_row(text(label), text(value, SEVERITY_STYLES.get(sev or "", "")))
    return table


class FactsPanel(Static):
    """Header facts of the shown extraction."""

    DEFAULT_CSS = """
    FactsPanel {
        height: auto;
        width: 1fr;
    }
    """

    def show(self, rows: list[tuple[str, str, str | None]]) -> None:
        """Replace the facts."""
        self.update(facts_table(rows))
