"""Painting the target screen's PSF panels and spectrum (a mixin, to keep each file short)."""

from __future__ import annotations

from sedmtui.data import brightest_range, fitted_bounds, product_note, psf_panels, spectrum_note, wavelength_ranges
from sedmtui.maprender import View, robust_limits, symmetric_limits
from sedmtui.review import shown_extraction
from sedmtui.safe import text
from sedmtui.widgets.spaxel_map import SpaxelMap
from sedmtui.widgets.spectrum import COLORS, SpectrumPlot, Trace


class TargetPanels:
    """PSF data/model/residual and the spectrum of :class:`sedmtui.screens.target.TargetScreen`."""

    def _range(self) -> tuple[str, float, float]:
        """The map's wavelength range: ``(label, lo, hi)`` [Angstrom]."""
        ranges = wavelength_ranges(self._shown_psf())
        return ranges[self.range_index % len(ranges)]

    def _map_values(self):
        label, lo, hi = self._range()
        self._map_vals = self.data.cube.slice_mean(lo, hi)
        return label, self._map_vals

    def _shown_psf(self):
        ext = shown_extraction(self.data)
        return ext.psf if ext is not None else None

    def _show_psf(self) -> None:
        pane = self.query_one("#psf-pane")
        maps = [self.query_one(f"#psf-{k}", SpaxelMap) for k in ("data", "model", "resid")]
        psf, cube = self._shown_psf(), self.data.cube
        if psf is None or cube is None:
            for m in maps:
                m.set_data(None, None)
            ext = shown_extraction(self.data)
            pane.border_title = text("PSF: " + (product_note(self.data, ext.row.get("psf_file"), "PSF product")
                                                if ext is not None else "no extraction"))
            return
        lo, hi = brightest_range(psf)
        data, model, resid = psf_panels(cube, psf, lo, hi)
        cx, cy, hw = fitted_bounds(cube, psf.fitted)
        lims = robust_limits(data)
        for m, values, limits in zip(maps, (data, model, resid), (lims, lims, symmetric_limits(resid))):
            m.set_view(View(cx, cy, hw))
            m.set_data(cube.layout, values, limits)
        tag = shown_extraction(self.data).row.get("tag")
        pane.border_title = text(f"PSF {tag} {0.5 * (lo + hi):.0f} Å: data · model · residual")

    def _show_spectrum(self) -> None:
        d = self.data
        traces, tmpl = [], None
        cur, cand = d.current, d.candidate
        if cand is not None and cand.spectrum is not None:
            if cur is not None and cur.spectrum is not None:
                traces.append(Trace(f"{cur.row['tag']} (current)", cur.spectrum, COLORS["old"], band=False))
            traces.append(Trace(f"{cand.row['tag']} (new)", cand.spectrum, COLORS["new"]))
            src = cand
        elif cur is not None and cur.spectrum is not None:
            traces.append(Trace(str(cur.row["tag"]), cur.spectrum, COLORS["current"]))
            src = cur
        else:
            src = None
        if src is not None and src.spectrum.template is not None and src.classification:
            tmpl = dict(src.spectrum.template, label=f"{src.classification.get('template')} (SNID)")
        shown = cand if cand is not None else cur
        plot = self.query_one(SpectrumPlot)
        reason = shown.row.get("quality_reason") or "" if shown is not None else ""
        plot.show(traces, tmpl, message=spectrum_note(d, shown), reason=reason)
        plot.border_title = text("spectrum: " + (" vs ".join(t.label for t in traces) if traces else "none"))


__all__ = ["TargetPanels"]
