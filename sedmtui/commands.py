"""The command palette (``:`` or ``ctrl+p``): k9s-style verbs with completion (``:target
04_39_00``, ``:night 20261124``, ``:recover``, ``:report``, ``:final``, ``:pause``, ``:help``,
``:q``) beside Textual's own commands."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from sedmtui.safe import clean, markup
from sedmtui.state import clean_object, quality_severity


def target_label(row: dict) -> str:
    """``04_21_30 ZTF26rugnhyk  Q5 Ia-norm`` for the palette."""
    q = row.get("quality")
    parts = [clean(row["obs_id"]), clean_object(row.get("object"))]
    if q is not None:
        parts.append(f"Q{q}")
    if row.get("snid_type"):
        parts.append(clean(row.get("snid_subtype") or row["snid_type"]))
    return "  ".join(parts)


class TargetProvider(Provider):
    """"Go to <target>" for every exposure of the night, plus a few console commands."""

    def _commands(self) -> list[tuple[str, object, str]]:
        app = self.app
        out = []
        for obs_id, row in sorted(app.targets.items()):
            sev = quality_severity(row.get("quality"))
            help_ = (row.get("quality_reason") or row.get("state") or "") if sev != "ok" else (row.get("state") or "")
            out.append((f":target {target_label(row)}", partial(app.open_target, obs_id), markup(help_)))
        try:
            nights = app.reader.nights()
        except Exception:  # noqa: BLE001 - a busy database: the palette lists the rest
            nights = []
        for night in nights:
            here = " (shown)" if night == app.night else ""
            out.append((f":night {clean(night)}{here}", partial(app.switch_night, night),
                        "show another night of this database"))
        if app.readonly:
            out.append((":report  show the night report", partial(app.open_report, request=False),
                        "report.txt as the engine last wrote it (read-only console)"))
        else:
            out.append((":report  night report: ask the engine and show it", partial(app.open_report, request=True),
                        "report.txt; add a comment and write the final report there"))
            out.append((":final  write the final report (asks first)", app.ask_final_report,
                        "report_final.txt in the night's directory; nothing is sent"))
            for obs_id, row in sorted(app.targets.items()):
                if row.get("quality") == 5:
                    out.append((f":recover {target_label(row)}", partial(app.ask_recover, obs_id),
                                "quality 5 → 1: the brightest object is the target (asks first)"))
        out.append((":pause  pause / resume live updates", app.action_toggle_pause,
                    "the tail keeps reading; a badge counts"))
        out.append((":help  keys that work here", app.action_help, "also ?"))
        out.append((":q  quit the console (asks first)", app.ask_quit, "the engine keeps running"))
        return out

    async def discover(self) -> Hits:
        for title, callback, help_ in self._commands():
            yield DiscoveryHit(Content(title), callback, text=title, help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_ in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, highlight(matcher, title), callback, text=title, help=help_)


def highlight(matcher, title: str) -> Content:
    """``matcher.highlight`` without markup: Textual's parses the title as markup, and titles
    hold object names from FITS headers (``ZTFbad[/nope]`` would raise)."""
    content = Content(title)
    _score, offsets = matcher.fuzzy_search.match(matcher.query, title)
    for offset in offsets:
        if not title[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


__all__ = ["TargetProvider", "target_label"]
