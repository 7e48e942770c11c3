"""The spectrum plot (plotext, braille): flux, 1-sigma band, telluric bands, SNID template,
and after a re-extraction the new spectrum over the old one."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from textual_plotext import PlotextPlot

from sedmtui.data import TELLURIC_BANDS_AA, SpectrumData


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


def flux_scale(values: np.ndarray) -> tuple[float, int]:
    """``(factor, exponent)`` so that ``values / factor`` is of order one (``factor = 10**exponent``)."""
    v = np.abs(np.asarray(values, float))
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return 1.0, 0
    e = int(math.floor(math.log10(float(np.percentile(v, 90)))))
    return 10.0 ** e, e


def y_limits(traces: list[Trace], factor: float) -> tuple[float, float]:
    """Plot limits from the 1st-99.5th percentiles of every trace (robust to spikes)."""
    vals = np.concatenate([t.spectrum.flux / factor for t in traces]) if traces else np.zeros(1)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [1.0, 99.5])
    pad = 0.08 * (hi - lo or 1.0)
    return float(min(0.0, lo - pad)), float(hi + pad)


class SpectrumPlot(PlotextPlot):
    """Spectra of one exposure; replotted only when the data change."""

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

    def show(self, traces: list[Trace], template: dict | None = None, *, message: str = "no spectrum") -> None:
        """Draw ``traces`` (the last on top) and the template of the first."""
        self.traces, self.template, self.message = traces, template, message
        self._replot()
        self.refresh()

    def _replot(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.canvas_color("default")
        plt.axes_color("default")
        plt.ticks_color((150, 150, 150))
        if not self.traces:
            plt.title(self.message)
            return
        factor, exp = flux_scale(self.traces[-1].spectrum.flux)
        lo, hi = y_limits(self.traces, factor)
        w0 = min(float(t.spectrum.wave[0]) for t in self.traces)
        w1 = max(float(t.spectrum.wave[-1]) for t in self.traces)
        for blo, bhi in TELLURIC_BANDS_AA:
            if bhi > w0 and blo < w1:
                plt.rectangle([blo, bhi], [lo, hi], color=COLORS["telluric"], fill=True, marker="░")
        for t in self.traces:
            s = t.spectrum
            if t.band:
                ok = np.isfinite(s.flux) & np.isfinite(s.err)
                plt.plot(s.wave[ok], (s.flux[ok] + s.err[ok]) / factor, color=COLORS["band"], marker="braille")
                plt.plot(s.wave[ok], (s.flux[ok] - s.err[ok]) / factor, color=COLORS["band"], marker="braille")
        if self.template is not None:
            tw, tf = np.asarray(self.template["wave"]), np.asarray(self.template["flux"]) / factor
            ok = np.isfinite(tf)
            plt.plot(tw[ok], tf[ok], color=COLORS["template"], marker="braille", label=self.template.get("label", "template"))
        for t in self.traces:
            s = t.spectrum
            ok = np.isfinite(s.flux)
            plt.plot(s.wave[ok], s.flux[ok] / factor, color=t.color, marker="braille", label=t.label)
        plt.xlim(w0, w1)
        plt.ylim(lo, hi)
        unit = self.traces[-1].spectrum.unit or "flux"
        plt.ylabel(f"1e{exp} {unit}" if exp else unit)


__all__ = ["COLORS", "SpectrumPlot", "Trace", "flux_scale", "y_limits"]
