"""The night console: one App, a night screen, a target screen, a report screen.

The App owns the database access: a reader for the main thread, a thread that tails the
engine's commits (``PRAGMA data_version`` polled every ``poll_s``), thread workers that read
products, and the only write a console makes: request rows (none with ``--readonly``).
"""

from __future__ import annotations

import datetime as dt
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.worker import get_current_worker

from engine.state.reader import StateReader
from engine.timeutil import utc_now
from sedmtui.commands import TargetProvider
from sedmtui.data import ProductCache, load_target
from sedmtui.messages import StateChanged, TargetLoaded
from sedmtui.readonly import WRITE_ACTIONS
from sedmtui.safe import clean
from sedmtui.settings import ConsoleSettings
from sedmtui.state import Delta, Tail, load_snapshot
from sedmtui.widgets.header import NightHeader, header_text


class NightApp(App):
    """The SEDM night console.

    Parameters
    ----------
    db_path : Path
        State database.
    night : str
        UT night shown.
    redux_root : Path
        Reduction root (products of a night are in ``<redux_root>/<night>/``).
    settings : ConsoleSettings
        Poll period, keymap.
    readonly : bool
        Open the database read-only; hide and disable every key that would write.
    fit_radius : float
        The engine's default extraction-region radius [spaxel unit].
    clock : callable, optional
        Returns the current UTC datetime (tests inject a fixed clock).
    """

    CSS_PATH = "styles.tcss"
    TITLE = "sedmtui"
    COMMANDS = App.COMMANDS | {TargetProvider}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("question_mark", "help", "help", id="app.help"),
        Binding("colon", "command_palette", "commands", id="app.commands", show=False),
        Binding("p", "toggle_pause", "pause", id="app.pause"),
    ]

    def __init__(self, *, db_path: Path, night: str, redux_root: Path, settings: ConsoleSettings | None = None,
                 readonly: bool = False, fit_radius: float = 10.0, clock: Callable[[], dt.datetime] | None = None,
                 reader: StateReader | None = None) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.night = night
        self.redux_root = Path(redux_root)
        self.settings = settings or ConsoleSettings()
        self.readonly = readonly
        self.fit_radius = fit_radius
        self.clock = clock or utc_now
        self.reader = reader or StateReader(self.db_path, readonly=readonly)
        self.writer_conn: sqlite3.Connection | None = None
        self.cache = ProductCache()
        self.snapshot = load_snapshot(self.reader, night)
        self.engine = dict(self.snapshot.engine)
        self.calibration = dict(self.snapshot.calibration)
        self.targets: dict[str, dict] = {r["obs_id"]: r for r in self.snapshot.targets}
        self.warnings = dict(self.snapshot.warnings)
        self.paused = False
        self.pending: list[Delta] = []
        self._stop = threading.Event()
        self._watch: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._load_seq = 0

    # ------------------------------------------------------------------ lifecycle
    def on_mount(self) -> None:
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
        from sedmtui.screens.night import NightScreen

        self.push_screen(NightScreen())
        self._arm_clock()
        self.tail_state()

    def on_unmount(self) -> None:
        self._stop.set()
        if self.writer_conn is not None:
            self.writer_conn.close()

    def _arm_clock(self) -> None:
        """Re-arm at the next minute: the header shows UT to the minute (an idle console is silent)."""
        now = self.clock()
        self.set_timer(60.05 - now.second - now.microsecond / 1e6, self._tick)

    def _tick(self) -> None:
        self.refresh_headers()
        self._arm_clock()

    # ------------------------------------------------------------------ tailing
    @work(thread=True, exclusive=True, group="tail", exit_on_error=False, name="tail")
    def tail_state(self) -> None:
        """Poll for commits; post what changed. Sleeps between polls (never spins)."""
        worker = get_current_worker()
        reader = StateReader(self.db_path, readonly=self.readonly)
        tail = Tail(reader, self.night, self.snapshot.last_event_id, self.engine)
        try:
            while not worker.is_cancelled and not self._stop.is_set():
                while True:
                    try:
                        tail.watch_request(self._watch.get_nowait())
                    except queue.Empty:
                        break
                try:
                    delta = tail.poll()
                except sqlite3.Error as exc:  # database busy or replaced: try again later
                    self.call_from_thread(self.tell, f"state database: {exc}", severity="warning")
                    self._stop.wait(2.0)
                    continue
                if delta is not None:
                    self.post_message(StateChanged(delta))
                self._stop.wait(self.settings.poll_s)
        finally:
            reader.close()

    def on_state_changed(self, message: StateChanged) -> None:
        delta = message.delta
        if delta.night and delta.night != self.night:  # read just before :night switched
            return
        if self.paused:
            if delta.requests:
                self._dispatch(Delta(requests=delta.requests))
                delta.requests = {}
            if delta:
                self.pending.append(delta)
            self.refresh_headers()
            return
        self.apply_delta(delta)

    def apply_delta(self, delta: Delta) -> None:
        """Apply a delta to the App's state and every screen."""
        if delta.engine is not None:
            self.engine = delta.engine
        if delta.calibration is not None:
            self.calibration = delta.calibration
        if delta.warnings is not None:
            self.warnings = delta.warnings
        self.targets.update(delta.targets)
        self._dispatch(delta)
        self.refresh_headers()

    def _dispatch(self, delta: Delta) -> None:
        with self.batch_update():
            for screen in list(self.screen_stack):
                handler = getattr(screen, "apply_delta", None)
                if handler is not None:
                    self._deliver(handler, delta)

    def _deliver(self, handler: Callable, arg) -> None:
        """Call a screen's handler. Once the app is exiting, a thread's answer can arrive
        after the screen's widgets were removed: that is dropped, not raised."""
        try:
            handler(arg)
        except NoMatches:
            if self.return_code is None:
                raise

    # ------------------------------------------------------------------ header
    def header(self):
        """The header text (night, clock, engine, calibration, pause badge)."""
        pending = sum(len(d.events) for d in self.pending)
        return header_text(self.night, self.clock().strftime("%H:%M"), self.engine, self.calibration,
                           paused=self.paused, pending=pending, readonly=self.readonly, warnings=self.warnings)

    def refresh_headers(self) -> None:
        """Update the header of every screen (a no-op where the text did not change)."""
        text = self.header()
        for screen in self.screen_stack:
            for h in screen.query(NightHeader):
                h.show(text)

    # ------------------------------------------------------------------ actions
    def action_toggle_pause(self) -> None:
        """Freeze the screens (the tail keeps reading); resume applies what arrived."""
        self.paused = not self.paused
        if not self.paused:
            pending, self.pending = self.pending, []
            for delta in pending:
                self.apply_delta(delta)
        self.refresh_headers()
        self.tell("live updates paused: p resumes" if self.paused else "live updates resumed", timeout=2)

    def action_help(self) -> None:
        """Show the keys that work here."""
        from sedmtui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen, keymap_source=self.settings.source, readonly=self.readonly))

    def copy(self, text: str, what: str) -> None:
        """Copy to the local clipboard through the terminal (OSC 52: works over SSH)."""
        text = clean(text)
        self.copy_to_clipboard(text)
        self.tell(f"copied {what}: {text}", timeout=3)

    def tell(self, message: str, *, severity: str = "information", timeout: float | None = None) -> None:
        """A notification of outside text: cleaned and never parsed as markup (see :mod:`sedmtui.safe`)."""
        self.notify(clean(message, multiline=True), severity=severity, timeout=timeout, markup=False)

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Save an SVG of the screen (the palette's *Screenshot*) and say where.

        Textual saves into the platform's downloads directory, which a reduction host
        usually lacks ("Failed to save screenshot"): use the first writable of
        ``$SEDMTUI_SCREENSHOT_DIR``, the downloads directory, the working directory, home, /tmp.
        """
        import os
        import tempfile

        from platformdirs import user_downloads_path  # the directory Textual would use
        from textual._files import generate_datetime_filename

        candidates = [path, os.environ.get("SEDMTUI_SCREENSHOT_DIR"), user_downloads_path(), Path.cwd(), Path.home(),
                      tempfile.gettempdir()]
        name = filename or generate_datetime_filename(self.title, ".svg", time_format)
        errors = []
        for d in candidates:
            if not d or not Path(d).is_dir() or not os.access(d, os.W_OK):
                continue
            try:
                saved = self.save_screenshot(name, str(d))
            except OSError as exc:
                errors.append(f"{d}: {exc}")
                continue
            self.tell(f"screenshot saved: {saved}", timeout=6)
            return None
        self.tell("screenshot not saved: no writable directory" + (f" ({'; '.join(errors)})" if errors else ""),
                  severity="error", timeout=8)
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.readonly and action in WRITE_ACTIONS:
            return False
        return True

    # ------------------------------------------------------------------ requests
    def submit(self, kind: str, obs_id: str | None, params: dict) -> int | None:
        """File a request (the console's only write); None if refused here."""
        from engine.errors import RequestError
        from engine.state.db import connect
        from engine.state.requests import submit_request

        if self.readonly:
            self.tell("read-only console: no request can be filed", severity="warning")
            return None
        try:
            if self.writer_conn is None:
                self.writer_conn = connect(self.db_path)
            rid = submit_request(self.writer_conn, kind, night=self.night, target=obs_id, params=params)
        except (RequestError, sqlite3.Error) as exc:
            self.tell(f"request refused: {exc}", severity="error", timeout=8)
            return None
        self._watch.put(rid)
        return rid

    # ------------------------------------------------------------------ products
    def load_products(self, obs_id: str, purpose: str = "target") -> int:
        """Read an exposure's products in a thread; a ``TargetLoaded`` message follows."""
        self._load_seq += 1
        self._load(obs_id, purpose, self._load_seq)
        return self._load_seq

    @work(thread=True, group="load", exit_on_error=False)
    def _load(self, obs_id: str, purpose: str, seq: int) -> None:
        data, error = None, ""
        try:
            reader = StateReader(self.db_path, readonly=self.readonly)
            try:
                data = load_target(reader, self.redux_root, self.night, obs_id, self.cache,
                                   with_guider=purpose == "target")
            finally:
                reader.close()
        except Exception as exc:  # noqa: BLE001 - a bad row or product is shown, never raised
            error = f"cannot read {obs_id}: {type(exc).__name__}: {exc}"
        self.post_message(TargetLoaded(obs_id, data, purpose, seq, error))

    def on_target_loaded(self, message: TargetLoaded) -> None:
        for screen in reversed(self.screen_stack):
            handler = getattr(screen, "target_loaded", None)
            if handler is not None:
                self._deliver(handler, message)

    def open_target(self, obs_id: str) -> None:
        """Open the target screen of an exposure."""
        from sedmtui.screens.target import TargetScreen

        if obs_id not in self.targets:
            self.tell(f"no exposure {obs_id}", severity="warning")
            return
        if isinstance(self.screen, TargetScreen):
            self.pop_screen()
        self.push_screen(TargetScreen(obs_id))

    def switch_night(self, night: str) -> None:
        """Show another night of the database (the palette's ``:night YYYYMMDD``)."""
        from sedmtui.screens.night import NightScreen

        if night == self.night:
            self.tell(f"night {night} is the one shown", timeout=3)
            return
        try:
            snapshot = load_snapshot(self.reader, night)
        except sqlite3.Error as exc:
            self.tell(f"cannot read night {night}: {exc}", severity="error", timeout=8)
            return
        self.night, self.snapshot = night, snapshot
        self.engine, self.calibration = dict(snapshot.engine), dict(snapshot.calibration)
        self.targets = {r["obs_id"]: r for r in snapshot.targets}
        self.warnings, self.pending = dict(snapshot.warnings), []
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(NightScreen())
        self.tail_state()  # exclusive: the previous night's tail stops
        self.refresh_headers()
        self.tell(f"night {night}: {len(self.targets)} exposures", timeout=3)

    def ask_quit(self) -> None:
        """Quit after a confirmation (the palette's ``:q``; the engine keeps running)."""
        from sedmtui.screens.confirm import ConfirmScreen

        def done(ok: bool | None) -> None:
            if ok:
                self.exit(0)

        self.push_screen(ConfirmScreen("Quit the console?", "The engine keeps running; open sedmtui again any time.",
                                       yes="quit"), done)

    def ask_recover(self, obs_id: str) -> None:
        """Recover a quality-5 exposure after a confirmation (the palette's ``:recover``)."""
        from sedmtui.screens.confirm import confirm_recover

        row = self.targets.get(obs_id)
        if row is not None:
            confirm_recover(self, row)

    def ask_final_report(self) -> None:
        """Open the report screen and ask to write the final report (the palette's ``:final``)."""
        self.open_report(request=False, final=True)

    def open_report(self, *, request: bool, final: bool = False) -> None:
        """Open the report screen (optionally asking the engine for a fresh report)."""
        from sedmtui.screens.report import ReportScreen

        if isinstance(self.screen, ReportScreen):
            if final and not self.readonly:
                self.screen.action_final_report()
            return
        self.push_screen(ReportScreen(request=request and not self.readonly, final=final and not self.readonly))


__all__ = ["WRITE_ACTIONS", "NightApp", "utc_now"]
