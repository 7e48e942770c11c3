"""A yes/no modal that says exactly what will happen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from sedmtui.safe import clean, text


class ConfirmScreen(ModalScreen[bool]):
    """``y``/``enter`` confirms, ``n``/``esc`` cancels; dismisses with the answer."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    ConfirmScreen > Vertical {
        width: 92;
        max-width: 95%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen #confirm-title {
        text-style: bold;
        margin-bottom: 1;
    }
    ConfirmScreen #confirm-keys {
        margin-top: 1;
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "yes", id="confirm.yes"),
        Binding("enter", "answer(True)", "yes", show=False, id="confirm.enter"),
        Binding("n", "answer(False)", "no", id="confirm.no"),
        Binding("escape", "answer(False)", "cancel", show=False, id="confirm.cancel"),
    ]

    def __init__(self, title: str, body: str | Text, *, yes: str = "yes") -> None:
        super().__init__()
        # the texts name objects, files and extractions: shown as Text, never parsed as markup
        self.title_text = title if isinstance(title, Text) else text(title)
        self.body = body if isinstance(body, Text) else text(body, multiline=True)
        self.yes = clean(yes)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="confirm-title")
            yield Static(self.body, id="confirm-body")
            keys = Text.assemble(("y", "bold"), f" / enter: {self.yes}    ", ("n", "bold"), " / esc: cancel")
            yield Static(keys, id="confirm-keys")

    def action_answer(self, value: bool) -> None:
        """Close with the answer."""
        self.dismiss(value)


def confirm_recover(app, row: dict, on_filed=None) -> None:
    """Ask, then file a ``recover`` request for a quality-5 exposure.

    Parameters
    ----------
    app : NightApp
        The console.
    row : dict
        The exposure's ``targets`` row.
    on_filed : callable, optional
        Called with the request id once filed.
    """
    from sedmtui.review import recover_text

    if row.get("quality") != 5:
        app.tell(f"{row['obs_id']} is quality {row.get('quality')}: only quality 5 can be recovered",
                   severity="warning")
        return
    ext = app.reader.extraction(row["extraction_id"]) if row.get("extraction_id") else None
    title, body = recover_text(row, ext)

    def done(ok: bool | None) -> None:
        if ok:
            rid = app.submit("recover", row["obs_id"], {})
            if rid is not None and on_filed is not None:
                on_filed(rid)

    app.push_screen(ConfirmScreen(title, body, yes="recover"), done)
