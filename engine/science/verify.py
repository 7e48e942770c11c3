"""The verification figure of an extraction (``verify_...png``), as SEDM observers know it.

Top left: the spaxel map (5000-7000 A) with the fitted spaxels outlined, excluded spaxels
crossed, and the centroids (astrometry x, brightest spaxel o, manual +, fitted dot). Top right:
the guider stack around the IFU with the target marked. Bottom left: PSF data, model and
residual of the brightest metaslice. Bottom right: the spectrum with its error band, the best
classification template and the telluric bands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.instrument import sedm

TELLURIC_BANDS_AA = ((6860.0, 6960.0), (7590.0, 7700.0), (8100.0, 8350.0), (8950.0, 9250.0))


def _hexes(ax, xy, values, cmap, lims, outline=None, title=""):
    from matplotlib.collections import PolyCollection

    verts = sedm.hexagon_vertices(xy)
    coll = PolyCollection(verts, array=np.nan_to_num(values, nan=lims[0]), cmap=cmap, edgecolors="none")
    coll.set_clim(*lims)
    ax.add_collection(coll)
    if outline is not None and outline.any():
        ax.add_collection(PolyCollection(verts[outline], facecolors="none", edgecolors="white", linewidths=0.4))
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)


def write_verify(path: str | Path, *, title: str, xy: np.ndarray, image: np.ndarray, fit_mask: np.ndarray,
                 excluded: np.ndarray, markers: dict, psf_panels: tuple | None, wave: np.ndarray, flux: np.ndarray,
                 err: np.ndarray, template: dict | None, guider: dict | None, flux_unit: str) -> None:
    """Write the figure.

    Parameters
    ----------
    markers : dict
        ``{"astrom": (x, y) | None, "brightest": ..., "manual": ..., "fitted": ...}``.
    psf_panels : tuple or None
        ``(spaxel mask, data, model, wavelength)`` of one metaslice.
    guider : dict or None
        ``{"image": 2-D array, "target": (x, y), "ifu": (x, y)}`` in guider pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 8.2))
    gs = fig.add_gridspec(2, 6, height_ratios=[1.15, 1.0], hspace=0.3, wspace=0.35)
    _spaxel_panel(fig.add_subplot(gs[0, 0:3]), xy, image, fit_mask, excluded, markers)
    _guider_panel(fig.add_subplot(gs[0, 3:6]), guider)
    if psf_panels is not None:
        _psf_panels([fig.add_subplot(gs[1, j]) for j in range(3)], xy, psf_panels, markers.get("fitted"))
    _spectrum_panel(fig.add_subplot(gs[1, 3:6]), wave, flux, err, template, flux_unit)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _spaxel_panel(ax, xy: np.ndarray, image: np.ndarray, fit_mask: np.ndarray, excluded: np.ndarray,
                  markers: dict) -> None:
    """The 5000-7000 A spaxel map with the fitted spaxels, the excluded ones and the positions."""
    finite = image[np.isfinite(image)]
    lims = np.percentile(finite, [2, 99.5]) if finite.size else (0, 1)
    _hexes(ax, xy, image, "viridis", lims, outline=fit_mask, title="spaxels 5000-7000 A (outlined: fitted)")
    for k in np.flatnonzero(excluded):
        ax.plot(*xy[k], "x", color="red", ms=4, mew=0.8)
    style = {"astrom": ("x", "red", "astrometry"), "brightest": ("o", "orange", "brightest"),
             "manual": ("+", "white", "manual"), "fitted": (".", "cyan", "fitted (7000 A)")}
    for key, (m, c, label) in style.items():
        pos = markers.get(key)
        if pos is not None and np.all(np.isfinite(pos)):
            ax.plot(pos[0], pos[1], m, color=c, ms=10 if m != "." else 6, mew=1.6, mfc="none" if m == "o" else c,
                    label=label)
    ax.legend(fontsize=6, loc="lower right")
    ax.set_xlim(-28, 28)
    ax.set_ylim(-28, 28)


def _guider_panel(axg, guider: dict | None) -> None:
    """The guider stack around the IFU, with the IFU's outline and the target."""
    import matplotlib.pyplot as plt

    if guider is not None and guider.get("image") is not None:
        img = guider["image"]
        cx, cy = guider["ifu"]
        half = 120
        y0, x0 = int(max(cy - half, 0)), int(max(cx - half, 0))
        cut = img[y0 : int(cy + half), x0 : int(cx + half)]
        lo, hi = np.percentile(cut, [5, 99.7])
        axg.imshow(cut, origin="lower", cmap="gray_r", vmin=lo, vmax=hi,
                   extent=(x0, x0 + cut.shape[1], y0, y0 + cut.shape[0]))
        if guider.get("target") is not None:
            tx, ty = guider["target"]
            axg.plot(tx, ty, "+", color="red", ms=18, mew=1.2)
        circ = plt.Circle((cx, cy), sedm.MLA_RADIUS_UNITS * sedm.SPAXEL_UNIT_ARCSEC / sedm.GUIDER_SCALE_ARCSEC,
                          fill=False, color="tab:blue", lw=0.8)
        axg.add_patch(circ)
        axg.set_title("guider stack: IFU (circle), target (+)", fontsize=8)
    else:
        axg.text(0.5, 0.5, "no guider image", ha="center", va="center", transform=axg.transAxes)
    axg.tick_params(labelsize=6)


def _psf_panels(axes, xy: np.ndarray, psf_panels: tuple, fitted) -> None:
    """Data, model and residual of one metaslice around the fitted position."""
    sel, data, model, w = psf_panels
    lims = np.nanpercentile(data[sel], [2, 99.5]) if np.any(sel) else (0, 1)
    resid = data - model
    for a, (vals, name) in zip(axes, ((data, "data"), (model, "model"), (resid, "residual"))):
        lim = lims if name != "residual" else (-0.2 * lims[1], 0.2 * lims[1])
        _hexes(a, xy[sel], vals[sel], "viridis" if name != "residual" else "RdBu_r", lim,
               title=f"PSF {name} {w:.0f} A")
        if fitted is not None:
            a.set_xlim(fitted[0] - 11, fitted[0] + 11)
            a.set_ylim(fitted[1] - 11, fitted[1] + 11)


def _spectrum_panel(axs, wave: np.ndarray, flux: np.ndarray, err: np.ndarray, template: dict | None,
                    flux_unit: str) -> None:
    """The spectrum with its error band, the best template and the telluric bands."""
    ok = np.isfinite(flux)
    axs.fill_between(wave, flux - err, flux + err, color="0.8", lw=0)
    axs.plot(wave, flux, color="k", lw=0.8, label="spectrum")
    if template is not None and ok.any():
        t = np.asarray(template["flux"])
        if np.any(np.isfinite(t)):
            scale = np.nanmedian(flux[ok]) / np.nanmedian(t[np.isfinite(t)]) if np.nanmedian(t) else 1.0
            axs.plot(template["wave"], t * scale, color="tab:red", lw=0.8, label=template.get("label", "template"))
    for lo, hi in TELLURIC_BANDS_AA:
        axs.axvspan(lo, hi, color="tab:blue", alpha=0.08, lw=0)
    axs.set_xlabel("wavelength [A]", fontsize=7)
    axs.set_ylabel(flux_unit, fontsize=7)
    axs.tick_params(labelsize=6)
    axs.legend(fontsize=6)
