"""Quality figures and statistics files of the night's calibration.

``YYYYMMDD_wavesolution_dispersionmap.png`` (line-residual nMAD per spaxel on the hexagonal
grid), ``YYYYMMDD_flat3d.png`` (achromatic flat), ``YYYYMMDD_wavesolution_stats.txt`` and
``YYYYMMDD_dome_stats.txt`` (SEDM's file names and keys).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.calib.products import NightCalibration
from engine.calib.tracefind import TraceFit
from engine.instrument import sedm


def _hex_map(ax, cal: NightCalibration, values: np.ndarray, title: str, label: str, cmap: str, lims=None):
    from matplotlib.collections import PolyCollection

    u = cal.usable & np.isfinite(values)
    verts = cal.grid.vertices()[u]
    lo, hi = lims or np.nanpercentile(values[u], [0.5, 99.5])
    coll = PolyCollection(verts, array=values[u], cmap=cmap, edgecolors="none")
    coll.set_clim(lo, hi)
    ax.add_collection(coll)
    ax.set_xlim(-30, 30)
    ax.set_ylim(-30, 30)
    ax.set_aspect("equal")
    ax.set_xlabel("x [spaxel, 0.55\"]")
    ax.set_ylabel("y [spaxel]")
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(coll, ax=ax, label=label, shrink=0.85)
    mean, std = np.nanmean(values[u]), np.nanstd(values[u])
    out = u & (np.abs(values - mean) > 5 * std)
    for k in np.flatnonzero(out)[:20]:
        ax.annotate(str(k), cal.grid.xy[k], fontsize=5, color="red")


def write_qa(cal: NightCalibration, out: Path, meas=None, used=None) -> dict[str, str]:
    """Write the figures and statistics files; return ``{name: path}``.

    Parameters
    ----------
    cal : NightCalibration
        The night's calibration.
    out : Path
        The night's reduction directory.
    meas, used : optional
        The arc-line measurements and which of them the wavelength solution kept.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    night = cal.night
    paths = {}
    s = cal.stats
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    _hex_map(ax, cal, cal.wave.nmad_aa, f"{night} wavelength solution: line nMAD per spaxel\n"
             f"NSpax {s.get('nspax')}  median RMS {s.get('wave_rms_median_aa', np.nan):.2f} A  "
             f"blue RMS {s.get('wave_blue_rms_median_aa', np.nan):.2f} A", "nMAD [A]", "viridis")
    p = out / f"{night}_wavesolution_dispersionmap.png"
    fig.tight_layout()
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths["dispersionmap"] = str(p)
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    _hex_map(ax, cal, cal.flat.achromatic, f"{night} flat (5000-8500 A)  std {100 * s.get('flat_std', np.nan):.2f} %",
             "relative throughput", "magma")
    p = out / f"{night}_flat3d.png"
    fig.tight_layout()
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths["flat3d"] = str(p)
    p = out / f"{night}_wavesolution_stats.txt"
    p.write_text(
        f"NSpax: {s.get('nspax')}\n"
        f"MinRMS: {s.get('wave_rms_min_aa', np.nan):.3f}\nAvgRMS: {s.get('wave_rms_avg_aa', np.nan):.3f}\n"
        f"MaxRMS: {s.get('wave_rms_max_aa', np.nan):.3f}\n"
        f"MinMAD: {s.get('wave_nmad_min_aa', np.nan):.3f}\nAvgMAD: {s.get('wave_nmad_avg_aa', np.nan):.3f}\n"
        f"MaxMAD: {s.get('wave_nmad_max_aa', np.nan):.3f}\n"
        f"MedianBlueRMS(<4048A): {s.get('wave_blue_rms_median_aa', np.nan):.3f}\n"
        f"MedianLines: {s.get('wave_n_lines_median', np.nan):.0f}\nFlagged: {s.get('wave_flagged')}\n"
    )
    paths["wavesolution_stats"] = str(p)
    p = out / f"{night}_dome_stats.txt"
    p.write_text(
        f"NSpax: {s.get('nspax')}\nTracesFound: {s.get('n_traces_found')}\n"
        f"MinWid: {s.get('width_min_px', np.nan):.3f}\nAvgWid: {s.get('width_avg_px', np.nan):.3f}\n"
        f"MaxWid: {s.get('width_max_px', np.nan):.3f}\nFlatStd: {s.get('flat_std', np.nan):.4f}\n"
    )
    paths["dome_stats"] = str(p)
    return paths


def _nanmedian(values, mask) -> float | None:
    """Median of the finite ``values[mask]``, or None (no values, or a solution without them)."""
    if values is None:
        return None
    v = np.asarray(values)[mask]
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def night_stats(cal: NightCalibration, tf: TraceFit, grid) -> dict:
    """The figures recorded for a night (SEDM names where they exist)."""
    u = cal.usable
    w = cal.wave
    sig = tf.sigma_at(tf.x_mid[:, None])[:, 0]
    s = {
        "nspax": int(u.sum()),
        "n_traces_found": int(tf.n),
        "trace_rms_px": float(np.nanmedian(tf.rms[u])),
        "width_min_px": float(np.nanmin(sig[u])), "width_avg_px": float(np.nanmean(sig[u])),
        "width_max_px": float(np.nanmax(sig[u])),
        "lattice_rms_px": float(grid.lattice_rms_px),
        "lattice_pitch_px": float(grid.pitch_px), "lattice_angle_deg": float(grid.angle_deg),
        "lattice_x0_px": float(grid.origin_px[0]), "lattice_y0_px": float(grid.origin_px[1]),
        "lattice_rejected": int(np.count_nonzero(grid.rejected)) if grid.rejected is not None else 0,
        "wave_law_scale": float(np.nanmedian(cal.wave.coef[u, 1]) / sedm.DISPERSION_D_PX),
        "wave_rms_min_aa": float(np.nanmin(w.rms_aa[u])), "wave_rms_avg_aa": float(np.nanmean(w.rms_aa[u])),
        "wave_rms_max_aa": float(np.nanmax(w.rms_aa[u])),
        "wave_rms_median_aa": float(np.nanmedian(w.rms_aa[u])),
        "wave_nmad_min_aa": float(np.nanmin(w.nmad_aa[u])), "wave_nmad_avg_aa": float(np.nanmean(w.nmad_aa[u])),
        "wave_nmad_max_aa": float(np.nanmax(w.nmad_aa[u])),
        "wave_blue_rms_median_aa": float(np.nanmedian(w.blue_rms_aa[u])),
        "wave_n_lines_median": float(np.median(w.n_lines[u])),
        "wave_model_chi2_median": _nanmedian(w.model_chi2, u),
        "lsf_sigma_median_px": _nanmedian(w.lsf_sigma, u),
        "wave_flagged": int((w.flagged & u).sum()),
    }
    s.update(cal.flat.stats(u))
    return s
