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


def confirm_retry_delivery(app, max_lines: int = 12) -> None:
    """List the night's failed deliveries, ask, then file one ``deliver_retry`` request for them.

    The engine re-queues exactly those rows; each is checked against the destination before it
    is sent again (nothing is stored twice).

    Parameters
    ----------
    app : NightApp
        The console.
    max_lines : int
        Failed rows listed by name (the rest are counted).
    """
    from engine.delivery.status import SHORT, ledger_rows

    failed = [r for r in ledger_rows(app.reader.query, app.night) if r["state"] == "failed" and not r.get("dry_run")]
    if not failed:
        app.tell("no failed delivery in this night", timeout=3)
        return
    lines = [f"#{r['id']} {(r.get('obs_id') or 'night').replace('_', ':')} "
             f"{SHORT.get(r['destination'], r['destination'])}: {clean(r.get('last_error') or 'failed')[:90]}"
             for r in failed[:max_lines]]
    if len(failed) > max_lines:
        lines.append(f"… and {len(failed) - max_lines} more")
    body = ("The engine queues these again; each one is checked against its destination before it is sent, "
            "so nothing is stored twice.\n" + "\n".join(lines))
    ids = [int(r["id"]) for r in failed]

    def done(ok: bool | None) -> None:
        if ok:
            app.submit("deliver_retry", None, {"ids": ids})

    n = len(failed)
    app.push_screen(ConfirmScreen(f"Retry {n} failed deliver{'y' if n == 1 else 'ies'}?", body, yes="retry"), done)

