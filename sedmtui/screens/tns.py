"""``T`` on a target: ask for the TNS name (and the type), then file a ``tns_report`` request.

The engine sends the classification report only behind its ``[tns] enabled`` switch (sandbox by
default) and refuses a spectrum above quality 2; the request's status line says what it did.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from engine.io.inputs import TNS_NAME
from sedmtui.safe import clean, text

PREFIX = re.compile(r"^\s*(?:SN|AT|TNS)?\s*", re.IGNORECASE)


def tns_name(value: str) -> str | None:
    """``2026abc`` from what an observer types (``SN 2026abc``, ``AT2026abc``, ``2026ABC``);
    ``None`` when it is not a TNS name.

    Parameters
    ----------
    value : str
        The typed name.
    """
    name = PREFIX.sub("", value or "").strip()
    name = name[:4] + name[4:].lower()
    return name if TNS_NAME.match(name) else None


def suggested_type(row: dict) -> str:
    """The TNS type of the target's SNID answer (``SN Ia``), '' when it is not classified."""
    from engine.delivery.tns import tns_type

    return tns_type(row["snid_type"], row.get("snid_subtype")) if row.get("snid_type") else ""


class TnsScreen(ModalScreen[dict | None]):
    """TNS name and type of a classification report; dismisses with the request's params or None."""

    DEFAULT_CSS = """
    TnsScreen {
        align: center middle;
        background: $background 60%;
    }
    TnsScreen > Vertical {
        width: 80;
        max-width: 95%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    TnsScreen #tns-title {
        text-style: bold;
        margin-bottom: 1;
    }
    TnsScreen #tns-error {
        color: $error;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "cancel", id="tns.cancel")]

    def __init__(self, row: dict) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        obs = clean(self.row.get("obs_id")).replace("_", ":")
        with Vertical():
            yield Static(text(f"TNS classification report of {obs} {clean(self.row.get('object'))}"), id="tns-title")
            yield Static(text("The engine sends it only when [tns] is enabled (sandbox unless configured "
                              "otherwise) and checks TNS's reply; the request's status says what happened.",
                              multiline=True))
            yield Input(placeholder="TNS name, e.g. 2026abc", id="tns-name")
            yield Input(value=suggested_type(self.row), placeholder="type, e.g. SN Ia (empty: the SNID type)",
                        id="tns-type")
            yield Static(id="tns-error")
            yield Static(Text.assemble(("enter", "bold"), ": send the request    ", ("esc", "bold"), ": cancel"))

    def on_mount(self) -> None:
        self.query_one("#tns-name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = tns_name(self.query_one("#tns-name", Input).value)
        if name is None:
            self.query_one("#tns-error", Static).update(text("not a TNS name: four digits and 2-4 letters (2026abc)"))
            self.query_one("#tns-name", Input).focus()
            return
        if event.input.id == "tns-name":
            self.query_one("#tns-type", Input).focus()
            return
        kind = clean(self.query_one("#tns-type", Input).value).strip()
        self.dismiss({"tns_name": name, "type": kind or None})

    def action_cancel(self) -> None:
        """Close without a request."""
        self.dismiss(None)


__all__ = ["TnsScreen", "suggested_type", "tns_name"]
