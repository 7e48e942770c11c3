"""Outside text made safe to show (Textual-free): the console's one helper for it.

Object names come from FITS headers, event messages and request errors from the engine and
other consoles, reports from files: none of it is the console's own. Shown as Rich or Textual
markup, ``ZTFbad[/nope]`` raises ``MarkupError`` and ``[@click=app.quit]...`` becomes a live
link; written to the terminal, ``\\x1b]0;...`` retitles the window and ``\\x1b[2J`` clears it.

So outside text is shown only through these functions:

* :func:`clean` removes terminal escape sequences and control characters (every string
  shown goes through it);
* :func:`text` wraps the cleaned string in a :class:`rich.text.Text`, which is never parsed
  as markup (tables, titles, dialogs, the log);
* :func:`markup` escapes the cleaned string for the few APIs that only take markup strings
  (the command palette's help line).
"""

from __future__ import annotations

import re

from rich.text import Text

_ESCAPE_SEQ = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"      # OSC ... BEL / ST (window title, hyperlinks, clipboard)
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"            # DCS, PM, APC, SOS strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]?"                 # CSI (cursor, erase, colours)
    r"|\x9b[0-?]*[ -/]*[@-~]?"                   # 8-bit CSI
    r"|\x1b[ -/]*[0-~]?"                         # other ESC sequences, or a lone ESC
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
"""C0/C1 controls (tab and newline handled apart), DEL, zero-width and bidi overrides."""


def clean(value: object, *, multiline: bool = False) -> str:
    """``value`` as a string without escape sequences or control characters.

    Parameters
    ----------
    value : object
        Anything (``None`` gives ``""``).
    multiline : bool
        Keep newlines (report text, dialog bodies); otherwise newlines and tabs become spaces.
    """
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    if s.isprintable() and "\x1b" not in s:  # the common case: nothing to do
        return s
    s = _ESCAPE_SEQ.sub("", s)
    s = s.replace("\r\n", "\n").replace("\t", " ")
    if not multiline:
        s = s.replace("\n", " ").replace("\r", " ")
    return _CONTROLS.sub("", s.replace("\r", ""))


def text(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Cleaned ``value`` as a :class:`~rich.text.Text` (never parsed as markup)."""
    return Text(clean(value, multiline=multiline), style=style)


def markup(value: object) -> str:
    """Cleaned ``value`` escaped for a Textual API that parses markup (every ``[`` escaped;
    Rich's ``escape`` also doubles a trailing backslash, which Textual then shows twice)."""
    return clean(value).replace("[", "\\[")


__all__ = ["clean", "markup", "text"]
