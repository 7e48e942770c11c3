"""The spectrum plot (plotext, braille): flux, 1-sigma band, telluric bands, SNID template,
and after a re-extraction the new spectrum over the old one.

Products are not trusted: a spectrum can be all NaN (a target off the IFU is never fitted),
empty, or hold non-finite wavelengths. :func:`finite_points` is the one guard: a trace with
fewer than two finite points is not drawn and the plot says why ("no finite flux: ...");
plotext never sees an empty series (it raises ``IndexError`` on one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from textual_plotext import PlotextPlot

from sedmtui.data import TELLURIC_BANDS_AA, SpectrumData
from sedmtui.safe import clean, text


@dataclass(frozen=True)
class Trace:
    """One spectrum to draw."""

    label: str
    spectrum: SpectrumData
    color: tuple[int, int, int]
    band: bool = True
    """Draw the 1-sigma band."""


COLORS = {"current": (230, 230, 230), "old": (120, 120, 120), "new": (0, 210, 255), "band": (90, 90, 110),
          "template": (255, 80, 80), "telluric": (55, 65, 95)}
"""Trace colours: current/new spectrum, superseded one, error band, template, telluric bands."""


def finite_points(wave, flux) -> tuple[np.ndarray, np.ndarray, str]:
    """``(wave, flux, why)`` of the finite points of a series, sorted by wavelength.

    ``why`` is empty when at least two points can be drawn, else what is wrong with the series
    (``"all 2041 flux values are NaN"``, ``"empty spectrum"``...).
    """
    try:
        w = np.asarray(wave, dtype=float).ravel()
        f = np.asarray(flux, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        return np.zeros(0), np.zeros(0), f"unreadable values ({exc})"
    if w.size != f.size:
        return np.zeros(0), np.zeros(0), f"{w.size} wavelengths for {f.size} flux values"
    if f.size == 0:
        return w, f, "empty spectrum"
    ok = np.isfinite(w) & np.isfinite(f)
    n = int(ok.sum())
    if n < 2:
        bad_f = int((~np.isfinite(f)).sum())
        if bad_f == f.size:
            return w[:0], f[:0], f"all {f.size} flux values are NaN" if np.isnan(f).all() else \
                f"all {f.size} flux values are non-finite"
        if not np.isfinite(w).any():
            return w[:0], f[:0], "no finite wavelength"
        return w[:0], f[:0], f"{n} finite point{'s' if n != 1 else ''} of {f.size}"
    order = np.argsort(w[ok], kind="stable")
    return w[ok][order], f[ok][order], ""


def flux_scale(values: np.ndarray) -> tuple[float, int]:
    """``(factor, exponent)`` so that ``values / factor`` is of order one (``factor = 10**exponent``)."""
    v = np.abs(np.asarray(values, float))
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return 1.0, 0
    e = int(math.floor(math.log10(float(np.percentile(v, 90)))))
    return 10.0 ** e, e


TICK_STEPS_AA = (250.0, 500.0, 1000.0, 2000.0, 2500.0, 5000.0)
"""Candidate spacings of the wavelength ticks [Angstrom] (round numbers only)."""
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
UNIT_NAMES = {"erg/s/A/cm^2": "erg s⁻¹ cm⁻² Å⁻¹", "erg/s/cm^2/A": "erg s⁻¹ cm⁻² Å⁻¹", "electron/s/A": "e⁻ s⁻¹ Å⁻¹"}
"""Product units as a reader writes them."""


def wave_ticks(w0: float, w1: float, n_cols: int, min_cols: int = 10) -> list[float]:
    """Round wavelengths to label along ``[w0, w1]`` [Angstrom]: the smallest spacing of
    :data:`TICK_STEPS_AA` that leaves at least ``min_cols`` columns per label on a ``n_cols``-wide plot."""
    n_max = max(2, n_cols // min_cols)
    for step in TICK_STEPS_AA:
        ticks = np.arange(math.ceil(w0 / step) * step, w1 + 1e-6, step)
        if ticks.size <= n_max:
            return [float(t) for t in ticks]
    return [float(t) for t in np.arange(math.ceil(w0 / TICK_STEPS_AA[-1]) * TICK_STEPS_AA[-1], w1 + 1e-6,
                                        TICK_STEPS_AA[-1])]


def flux_label(unit: str, exponent: int) -> str:
    """``×10⁻¹⁶ erg s⁻¹ cm⁻² Å⁻¹`` from a product's unit and the plot's scale exponent."""
    name = UNIT_NAMES.get(unit, unit or "flux")
    return f"×10{str(exponent).translate(SUPERSCRIPT)} {name}" if exponent else name


def drawable(w: np.ndarray, f: np.ndarray, lo: float, hi: float, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """A series as plotext should get it: clipped to a band around ``[lo, hi]`` and reduced to
    a min/max envelope of at most ``2 * n_cols`` points when longer.

    plotext joins consecutive points by interpolating every canvas pixel between them: a point
    far outside the limits (an error band of 1e30 at a dead end of the spectrum) makes it build
    billions of points and the console runs out of memory. Clipping keeps the line's direction
    on screen; the envelope keeps spikes visible at a fraction of the cost.
    """
    span = (hi - lo) or 1.0
    f = np.clip(f, lo - span, hi + span)
    if n_cols <= 0 or w.size <= 2 * n_cols:
        return w, f
    edges = np.linspace(0, w.size, n_cols + 1).astype(int)
    starts = edges[:-1][np.diff(edges) > 0]
    bounds = list(zip(starts.tolist(), starts[1:].tolist() + [w.size]))
    imin = np.array([a + int(np.argmin(f[a:b])) for a, b in bounds])
    imax = np.array([a + int(np.argmax(f[a:b])) for a, b in bounds])
    first = imin <= imax  # keep the points in wavelength order within a column
    ia = np.where(first, imin, imax)
    ib = np.where(first, imax, imin)
    idx = np.stack([ia, ib], axis=1).ravel()
    return w[idx], f[idx]


def y_limits(traces: list[Trace], factor: float) -> tuple[float, float]:
    """Plot limits from the 1st-99.5th percentiles of every trace (robust to spikes)."""
    vals = np.concatenate([np.asarray(t.spectrum.flux, float).ravel() / factor for t in traces]) if traces \
        else np.zeros(1)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [1.0, 99.5])
    pad = 0.08 * (hi - lo or 1.0)
    return float(min(0.0, lo - pad)), float(hi + pad)


class SpectrumPlot(PlotextPlot):
    """Spectra of one exposure; replotted only when the data change.

    Traces without two finite points are left out and named in the title; with none left the
    plot is only the title, ``no finite flux: <reason>``.
    """

    DEFAULT_CSS = """
    SpectrumPlot {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.traces: list[Trace] = []
        self.template: dict | None = None
        self.message = "no spectrum"
        self.reason = ""
        self.missing: list[str] = []
        """What could not be drawn, one phrase per trace (``robot: all 2041 flux values are NaN``)."""

    def show(self, traces: list[Trace], template: dict | None = None, *, message: str = "no spectrum",
             reason: str = "") -> None:
        """Draw ``traces`` (the last on top) and the template of the first.

        Parameters
        ----------
        message : str
            Title when there is no trace at all.
        reason : str
            Why the data may be empty (the extraction's quality reason), added to the title
            when no trace has finite flux.
        """
        self.message = clean(message)
        self.reason = clean(reason)
        self.traces, self.missing = [], []
        for t in traces:
            _w, _f, why = finite_points(t.spectrum.wave, t.spectrum.flux)
            if why:
                self.missing.append(f"{clean(t.label)}: {why}")
            else:
                self.traces.append(t)
        self.template = template
        try:
            self._replot()
        except Exception as exc:  # noqa: BLE001 - a product plotext cannot draw must not stop the console
            self.traces, self.template = [], None
            self.missing.append(f"cannot plot: {clean(exc)}")
            self._replot()
        self.refresh()

    def title_text(self) -> str:
        """The plot's title: what is missing, or nothing."""
        if not self.traces:
            if not self.missing:
                return self.message
            return f"no finite flux: {'; '.join(self.missing)}" + (f" ({self.reason})" if self.reason else "")
        return "not drawn: " + "; ".join(self.missing) if self.missing else ""

    def _replot(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.canvas_color("default")
        plt.axes_color("default")
        plt.ticks_color((150, 150, 150))
        title = self.title_text()
        if title:
            plt.title(title)
        if not self.traces:
            return
        series = [finite_points(t.spectrum.wave, t.spectrum.flux)[:2] for t in self.traces]
        factor, exp = flux_scale(series[-1][1])
        lo, hi = y_limits(self.traces, factor)
        w0 = min(float(w[0]) for w, _f in series)
        w1 = max(float(w[-1]) for w, _f in series)
        if w1 <= w0:
            w1 = w0 + 1.0
        cols = max(20, int(self.size.width) or 100)

        def draw(w, f, **kw) -> None:
            dw, df = drawable(np.asarray(w, float), np.asarray(f, float) / factor, lo, hi, cols)
            plt.plot(dw, df, marker="braille", **kw)

        for blo, bhi in TELLURIC_BANDS_AA:
            if bhi > w0 and blo < w1:
                plt.rectangle([blo, bhi], [lo, hi], color=COLORS["telluric"], fill=True, marker="░")
        for t in self.traces:
            s = t.spectrum
            if t.band and np.shape(s.err) == np.shape(s.flux):
                for sign in (1.0, -1.0):
                    bw, bf, why = finite_points(s.wave, np.asarray(s.flux, float) + sign * np.asarray(s.err, float))
                    if not why:
                        draw(bw, bf, color=COLORS["band"])
        if self.template is not None:
            tw, tf, why = finite_points(self.template.get("wave", ()), self.template.get("flux", ()))
            if not why:
                draw(tw, tf, color=COLORS["template"], label=clean(self.template.get("label", "template")))
        for t, (w, f) in zip(self.traces, series):
            draw(w, f, color=t.color, label=clean(t.label))
        plt.xlim(w0, w1)
        plt.ylim(lo, hi)
        self._xrange = (w0, w1)
        self._set_ticks()
        plt.ylabel(flux_label(clean(self.traces[-1].spectrum.unit), exp))

    def _set_ticks(self) -> None:
        """Round wavelength labels for the plot's current width (the last one with its unit)."""
        w0, w1 = getattr(self, "_xrange", (0.0, 0.0))
        ticks = wave_ticks(w0, w1, max(20, int(self.size.width) - 12)) if w1 > w0 else []
        if ticks:
            self.plt.xticks(ticks, [f"{t:.0f}" + (" Å" if i == len(ticks) - 1 else "") for i, t in enumerate(ticks)])

    def render(self):
        """The plot; with nothing to draw, the reason as wrapped text (plotext drops a title
        wider than the plot); the title alone if plotext fails on these data (never raises)."""
        if not self.traces:
            return text(self.title_text() or self.message, "grey62" if not self.missing else "bold #ffaf00")
        try:
            self._set_ticks()  # for the width it is drawn at (the first plot may precede the layout)
            return super().render()
        except Exception as exc:  # noqa: BLE001 - see show()
            return text(f"{self.title_text() or 'spectrum'} (cannot plot: {exc})", "grey50")


__all__ = ["COLORS", "SpectrumPlot", "Trace", "drawable", "finite_points", "flux_label", "flux_scale", "wave_ticks",
           "y_limits"]
