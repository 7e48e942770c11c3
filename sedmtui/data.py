"""Reading an extraction's products for the console (Textual-free; astropy imported lazily).

:func:`load_target` gathers, for one exposure, the cube (spaxel values), the PSF product, the
spectrum (with its template), the guider cut-out and the header facts of the current
extraction and of the newest re-extraction waiting for accept/reject. It runs in a thread
worker; results are cached by file path and modification time.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.instrument import sedm
from sedmtui.deliveries import deliveries_of, delivery_facts
from sedmtui.finder import FinderData, finder_candidates, read_finder, sky_degrees
from sedmtui.maprender import SpaxelLayout
from sedmtui.spikes import NO_SPIKES, Spikes, find_spikes
from sedmtui.state import _num

DEFAULT_RANGE: tuple[float, float] = (5000.0, 7000.0)
"""Wavelength range of the spaxel map by default (as the verification figure) [Angstrom]."""

TELLURIC_BANDS_AA: tuple[tuple[float, float], ...] = (
    (6860.0, 6960.0), (7590.0, 7700.0), (8100.0, 8350.0), (8950.0, 9250.0))
"""Telluric bands marked on spectra (the verification figure's, ``engine.science.verify``)."""


@dataclass
class CubeData:
    """The spaxel spectra of an exposure."""

    wave: np.ndarray
    flux: np.ndarray
    """``(n_spax, n_wave)``."""
    spaxel_id: np.ndarray
    layout: SpaxelLayout
    var: np.ndarray | None = None
    """``(n_spax, n_wave)`` variance, if the cube has one."""
    _spikes: Spikes | None = field(default=None, repr=False, compare=False)

    def spikes(self) -> Spikes:
        """The spaxels holding a cosmic-ray-like spike (:func:`sedmtui.spikes.find_spikes`;
        found on first use, ~25 ms for a 1,250 x 220 cube)."""
        if self._spikes is None:
            try:
                self._spikes = find_spikes(self.wave, self.flux, self.var, self.xy)
            except (ValueError, IndexError):  # a malformed cube: no marks rather than a crash
                self._spikes = NO_SPIKES
        return self._spikes

    @property
    def xy(self) -> np.ndarray:
        """``(n_spax, 2)`` positions [spaxel unit]."""
        return self.layout.xy

    def slice_mean(self, lo: float, hi: float) -> np.ndarray:
        """Mean flux of every spaxel over ``[lo, hi]`` [Angstrom]."""
        sel = (self.wave >= lo) & (self.wave <= hi)
        with np.errstate(invalid="ignore"), _quiet():
            return np.nanmean(self.flux[:, sel], axis=1)

    def spaxel_snr(self, index: int, lo: float, hi: float) -> float:
        """S/N of one spaxel's flux summed over ``[lo, hi]`` [Angstrom] (NaN without variance)."""
        if self.var is None or not 0 <= index < len(self.flux):
            return float("nan")
        sel = (self.wave >= lo) & (self.wave <= hi)
        f, v = np.asarray(self.flux[index, sel], float), np.asarray(self.var[index, sel], float)
        ok = np.isfinite(f) & np.isfinite(v) & (v > 0)
        if not ok.any():
            return float("nan")
        return float(f[ok].sum() / np.sqrt(v[ok].sum()))


@dataclass
class PsfData:
    """The PSF product of an extraction."""

    model: np.ndarray
    """``(n_spax, n_wave)``, NaN outside the fit."""
    fitted: np.ndarray
    excluded: np.ndarray
    metaslices: dict[str, np.ndarray]
    cards: dict


@dataclass
class SpectrumData:
    """A delivered spectrum."""

    wave: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    header: dict
    template: dict | None
    unit: str = ""


@dataclass
class GuiderData:
    """A cut-out of the guider stack around the IFU."""

    image: np.ndarray
    ifu: tuple[float, float]
    """IFU centre in cut-out pixels ``(x, y)`` (0-based, x = column)."""
    target: tuple[float, float] | None
    ifu_radius_px: float
    ok: bool
    file: str


@dataclass
class ExtractionData:
    """One extraction attempt and its products."""

    row: dict
    classification: dict | None
    spectrum: SpectrumData | None
    psf: PsfData | None


@dataclass
class TargetData:
    """Everything the target screen shows for one exposure."""

    target: dict
    observation: dict
    cube: CubeData | None
    current: ExtractionData | None
    candidate: ExtractionData | None
    guider: GuiderData | None
    errors: list[str] = field(default_factory=list)
    finder: FinderData | None = None
    finder_note: str = ""
    """Why there is no finder chart (where it was looked for), or why it could not be read."""


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


class ProductCache:
    """A small LRU of products keyed by ``(path, mtime)``."""

    def __init__(self, size: int = 24) -> None:
        import threading

        self.size = size
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, loader):
        """The product at ``path``, loaded with ``loader(path)`` when not cached or changed.

        Thread-safe: loads run in thread workers.
        """
        key = (str(path), os.stat(path).st_mtime_ns)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        value = loader(path)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


# --------------------------------------------------------------------------------------------- readers
def read_cube_data(path: Path) -> CubeData:
    """An ``e3d_`` cube."""
    from engine.science.cube import read_cube

    cube, _hdr = read_cube(path)
    xy = np.asarray(cube.xy, float)
    bad = ~np.isfinite(xy).all(axis=1) if xy.ndim == 2 else np.ones(1, bool)
    if xy.ndim != 2 or xy.shape[1] != 2 or bad.any() or np.shape(cube.flux)[0] != xy.shape[0]:
        msg = (f"{int(bad.sum())} of {len(bad)} spaxel positions are not finite" if bad.any()
               else f"{np.shape(cube.flux)} flux for {xy.shape} positions")
        raise ValueError(msg)
    var = getattr(cube, "var", None)
    if var is not None and np.shape(var) != np.shape(cube.flux):
        var = None
    return CubeData(wave=np.asarray(cube.wave, float), flux=cube.flux, spaxel_id=np.asarray(cube.spaxel_id),
                    layout=SpaxelLayout(cube.xy), var=var)


def read_psf(path: Path) -> PsfData:
    """A ``psf_`` product."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        model = np.asarray(hdul[0].data, dtype=np.float32).T
        sp = hdul["SPAXELS"].data
        ms = hdul["METASLICES"].data
        cards = {k: hdul[0].header[k] for k in hdul[0].header if k.startswith(("PSF",))}
        return PsfData(model=model, fitted=np.asarray(sp["fitted"], bool), excluded=np.asarray(sp["excluded"], bool),
                       metaslices={c: np.asarray(ms[c], float) for c in ms.columns.names}, cards=cards)


def read_spectrum(path: Path) -> SpectrumData:
    """A ``spec_`` FITS spectrum (flux, 1-sigma error, template, header cards)."""
    from engine.science.products import read_spectrum_fits

    wave, flux, var, hdr, tmpl = read_spectrum_fits(path)
    err = np.sqrt(np.where(var > 0, var, np.nan))
    header = {k: hdr[k] for k in hdr if k and k not in ("COMMENT", "HISTORY")}
    return SpectrumData(wave=wave, flux=flux, err=err, header=header, template=tmpl, unit=str(hdr.get("BUNIT", "")))


def read_guider(path: Path, half: int = 72) -> GuiderData:
    """The guider stack cut to ``2*half`` pixels around the IFU centre."""
    from engine.astrometry.product import read_guider_view

    g = read_guider_view(path)
    img = g["image"]
    cx, cy = g["ifu"]
    x0, y0 = int(round(cx)) - half, int(round(cy)) - half
    xs0, ys0 = max(0, x0), max(0, y0)
    xs1, ys1 = min(img.shape[1], x0 + 2 * half), min(img.shape[0], y0 + 2 * half)
    cut = np.full((2 * half, 2 * half), np.nan, dtype=np.float32)
    cut[ys0 - y0:ys1 - y0, xs0 - x0:xs1 - x0] = img[ys0:ys1, xs0:xs1]
    target = (g["target"][0] - x0, g["target"][1] - y0) if g["target"] is not None else None
    radius = sedm.MLA_RADIUS_UNITS * sedm.SPAXEL_UNIT_ARCSEC / sedm.GUIDER_SCALE_ARCSEC
    return GuiderData(image=cut, ifu=(cx - x0, cy - y0), target=target, ifu_radius_px=radius, ok=bool(g["ok"]),
                      file=g["file"])


# --------------------------------------------------------------------------------------------- assembly
def _extraction(reader, night_dir: Path, row: dict | None, cache: ProductCache, errors: list[str]) -> ExtractionData | None:
    if row is None:
        return None
    spectrum = _product(night_dir, row.get("spec_fits"), read_spectrum, cache, errors)
    psf = _product(night_dir, row.get("psf_file"), read_psf, cache, errors)
    return ExtractionData(row=row, classification=reader.classification(row["id"]), spectrum=spectrum, psf=psf)


def _product(night_dir: Path, name: str | None, loader, cache: ProductCache, errors: list[str]):
    """A product read with ``loader``, or None with the reason appended to ``errors``.

    Any failure counts (a missing, truncated or foreign file raises whatever astropy raises):
    the console says which file and why instead of stopping.
    """
    if not name:
        return None
    path = night_dir / name
    try:
        return cache.get(path, loader)
    except FileNotFoundError:
        errors.append(f"{name}: missing")
    except Exception as exc:  # noqa: BLE001 - see the docstring
        errors.append(f"{name}: unreadable ({type(exc).__name__}: {exc})")
    return None


def load_target(reader, redux_root: Path, night: str, obs_id: str, cache: ProductCache,
                *, with_guider: bool = True) -> TargetData | None:
    """Read one exposure's state rows and products.

    Parameters
    ----------
    reader : engine.state.reader.StateReader
        A reader owned by the calling thread.
    redux_root : Path
        Reduction root (products are in ``<redux_root>/<night>/``).
    night, obs_id : str
        The exposure.
    cache : ProductCache
        Product cache shared by the console's loads.
    """
    target = reader.target(night, obs_id)
    obs = reader.observation(night, obs_id)
    if target is None or obs is None:
        return None
    target = {**target, "deliveries": deliveries_of(reader, night, obs_id)}
    night_dir = Path(redux_root) / night
    errors: list[str] = []
    cube = _product(night_dir, obs.get("cube_file"), read_cube_data, cache, errors)
    rows = reader.extractions(night, obs_id)
    current = next((r for r in rows if r["id"] == obs.get("current_extraction_id")), None)
    cand_row = next((r for r in reversed(rows) if r["status"] == "candidate"), None)
    guider = None
    gfile = guider_file(rows, obs)
    if with_guider and gfile and (night_dir / gfile).exists():
        guider = _product(night_dir, gfile, read_guider, cache, errors)
    exts = [_extraction(reader, night_dir, r, cache, errors) for r in (current, cand_row)]
    for ext in exts:
        _check_psf(cube, ext, errors)
    finder, finder_note = (load_finder(reader, night_dir, night, obs, cache) if with_guider else (None, ""))
    return TargetData(target=target, observation=obs, cube=cube, current=exts[0], candidate=exts[1], guider=guider,
                      errors=errors, finder=finder, finder_note=finder_note)


def load_finder(reader, night_dir: Path, night: str, obs: dict, cache: ProductCache) -> tuple[FinderData | None, str]:
    """The exposure's finder chart (:mod:`sedmtui.finder`), or ``None`` and why.

    Parameters
    ----------
    reader : engine.state.reader.StateReader
        A reader owned by the calling thread.
    night_dir : Path
        The night's reduction directory.
    night : str
        The night.
    obs : dict
        The ``observations`` row (object, coordinates).
    cache : ProductCache
        Product cache shared by the console's loads.
    """
    dirs = [night_dir / "finders"]
    raw = (reader.night(night) or {}).get("raw_dir")
    if raw:
        dirs.append(Path(raw) / "finders")
    files = finder_candidates(dirs, obs.get("object") or "")
    if not files:
        return None, f"no finder chart for {obs.get('object') or '?'} in {' or '.join(str(d) for d in dirs)}"
    ra, dec = sky_degrees(obs.get("ra"), obs.get("dec"))
    try:
        return cache.get(files[0], lambda p: read_finder(p, ra, dec)), ""
    except Exception as exc:  # noqa: BLE001 - an unreadable chart is reported, never raised
        return None, f"{files[0].name}: {type(exc).__name__}: {exc}"


def _check_psf(cube: CubeData | None, ext: ExtractionData | None, errors: list[str]) -> None:
    """Drop a PSF product that does not fit the cube (another lattice or wavelength grid): the
    maps index one with the other."""
    if cube is None or ext is None or ext.psf is None:
        return
    psf, n_spax, n_wave = ext.psf, cube.flux.shape[0], cube.wave.size
    shapes = (psf.model.shape, psf.fitted.shape, psf.excluded.shape)
    if psf.model.shape != (n_spax, n_wave) or psf.fitted.shape != (n_spax,) or psf.excluded.shape != (n_spax,):
        errors.append(f"{ext.row.get('psf_file')}: unreadable (does not match the cube: {shapes} for "
                      f"{n_spax} spaxels x {n_wave} wavelengths)")
        ext.psf = None


def guider_file(rows: list[dict], obs: dict) -> str | None:
    """The exposure's guider stack: named in the robot extraction's facts (re-extractions do not
    repeat it), else the SEDM name ``guider_crr_b_<raw file>``."""
    for r in rows:
        name = row_facts(r).get("guider_file")
        if name:
            return str(name)
    return f"guider_crr_b_{obs['file']}" if obs.get("file") else None


def manual_moved(row: dict) -> tuple[float, float] | None:
    """``(moved, allowed)`` of an extraction at a hand-set centroid: how far the PSF fit moved
    from it and how far it was allowed to [spaxel unit]; None for other extractions."""
    if (row or {}).get("srcpos") != "manual":
        return None
    f = row_facts(row)
    moved, allowed = f.get("centroid_moved"), f.get("centroid_radius")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (moved, allowed)):
        return None
    return float(moved), float(allowed)


def row_facts(row: dict | None) -> dict:
    """An extraction row's ``facts_json`` as a dict (``{}`` when absent or not a JSON object)."""
    raw = (row or {}).get("facts_json")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def product_note(data: TargetData | None, name: str | None, what: str) -> str:
    """``cube missing`` / ``cube unreadable (...)`` / ``no cube yet (reducing: cube)``: why a
    product is not shown."""
    if data is None:
        return f"no {what}: exposure not loaded"
    if name:
        for err in data.errors:
            if err.startswith(f"{name}:"):
                return f"{what} {err[len(name) + 2:]}: {name}"
        return f"{what} not shown ({name})"
    obs = data.observation
    return f"no {what} yet ({obs.get('state') or '?'})" if obs.get("state") != "done" else f"no {what}"


def spectrum_note(data: TargetData, ext: ExtractionData | None) -> str:
    """Why an exposure shows no spectrum, in words (the plot's title)."""
    obs = data.observation
    if ext is None:
        stage = obs.get("stage") or ""
        state = obs.get("state") or "?"
        if obs.get("error"):
            return f"no extraction: {state}: {obs['error']}"
        return f"no extraction yet ({state}{': ' + stage if stage and stage != state else ''})"
    name = ext.row.get("spec_fits")
    if not name:
        q = ext.row.get("quality")
        why = ext.row.get("quality_reason") or ""
        return f"no spectrum file in extraction {ext.row.get('tag')}" + (f" (Q{q} {why})".rstrip() if q is not None else "")
    for err in data.errors:
        if err.startswith(f"{name}:"):
            return f"spectrum {err}"
    return f"no spectrum ({name})"


# --------------------------------------------------------------------------------------------- derived
def wavelength_ranges(psf: PsfData | None) -> list[tuple[str, float, float]]:
    """Map wavelength ranges: 5000-7000 Å, the whole range, then each PSF metaslice."""
    out = [("5000–7000 Å", *DEFAULT_RANGE), ("3800–9200 Å", 3800.0, 9200.0)]
    if psf is not None and "wave" in psf.metaslices:
        w = np.asarray(psf.metaslices["wave"])
        if w.size > 1:
            half = 0.5 * float(np.median(np.diff(w)))
            out += [(f"{c - half:.0f}–{c + half:.0f} Å", float(c - half), float(c + half)) for c in w]
    return out


def psf_panels(cube: CubeData, psf: PsfData, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data, model and residual of the fitted spaxels over ``[lo, hi]`` (NaN elsewhere)."""
    sel = (cube.wave >= lo) & (cube.wave <= hi)
    with np.errstate(invalid="ignore"), _quiet():
        data = np.nanmean(cube.flux[:, sel], axis=1)
        model = np.nanmean(psf.model[:, sel], axis=1)
    data = np.where(psf.fitted, data, np.nan)
    model = np.where(psf.fitted, model, np.nan)
    return data, model, data - model


def brightest_range(psf: PsfData | None) -> tuple[float, float]:
    """The metaslice with the largest PSF amplitude (the verify figure's PSF panel)."""
    if psf is None or "amplitude" not in psf.metaslices or psf.metaslices["wave"].size < 2:
        return DEFAULT_RANGE
    w = psf.metaslices["wave"]
    k = int(np.nanargmax(psf.metaslices["amplitude"]))
    half = 0.5 * float(np.median(np.diff(w)))
    return float(w[k] - half), float(w[k] + half)


def fitted_bounds(cube: CubeData, fitted: np.ndarray, pad: float = 1.5) -> tuple[float, float, float]:
    """``(cx, cy, half_width)`` of a view framing the fitted spaxels [spaxel unit]."""
    if fitted is None or not fitted.any():
        return 0.0, 0.0, 12.0
    xy = cube.xy[fitted]
    lo, hi = xy.min(0), xy.max(0)
    c = 0.5 * (lo + hi)
    return float(c[0]), float(c[1]), float(max(hi - lo) / 2 + pad)


def markers_of(row: dict | None) -> dict[str, tuple[float, float]]:
    """The extraction's positions: astrometry, brightest spaxel, manual guess, fitted centroid."""
    if row is None:
        return {}
    out = {}
    for key, (cx, cy) in {"astrom": ("astrom_x", "astrom_y"), "brightest": ("bright_x", "bright_y"),
                          "fitted": ("centroid_x", "centroid_y")}.items():
        if row.get(cx) is not None and row.get(cy) is not None:
            out[key] = (float(row[cx]), float(row[cy]))
    if row.get("srcpos") == "manual" and row.get("guess_x") is not None:
        out["manual"] = (float(row["guess_x"]), float(row["guess_y"]))
    return out


def facts(data: TargetData, ext: ExtractionData | None = None) -> list[tuple[str, str, str | None]]:
    """``(label, value, severity)`` lines of the facts panel."""
    ext = ext or data.current
    obs, t = data.observation, data.target
    out: list[tuple[str, str, str | None]] = [("missing" if e.endswith(": missing") else "unreadable", e, "bad")
                                              for e in data.errors]
    if ext is None:
        out.insert(0, ("state", f"{obs.get('state')} · {obs.get('stage') or ''}", "dim"))
        if obs.get("error"):
            out.insert(1, ("error", str(obs["error"]), "bad"))
        return out
    r = ext.row
    h = ext.spectrum.header if ext.spectrum else {}
    q = r.get("quality")
    sev = None if q is None else ("ok" if q <= 2 else ("warn" if q == 5 else "bad"))
    out.append(("quality", f"Q{q} {r.get('quality_reason') or ''}", sev))
    out.append(("SRCPOS", {"astrom": "astrom (guider WCS)", "auto": "auto (brightest spaxel)",
                           "manual": "manual (observer)"}.get(r.get("srcpos") or "", str(r.get("srcpos"))), None))
    if r.get("centroid_x") is not None:
        out.append(("centroid", f"({_num(r['centroid_x'], '+.2f')}, {_num(r.get('centroid_y'), '+.2f')}) fitted at 7000 Å",
                    None))
    moved = manual_moved(r)
    if moved is not None:
        dist, allowed = moved
        out.append(("hand-set", f"({_num(r.get('guess_x'), '+.2f')}, {_num(r.get('guess_y'), '+.2f')}) · the fit moved "
                    f"{_num(dist, '.2f')} (allowed {_num(allowed, '.2f')})", "bad" if dist > allowed else None))
    if r.get("psf_fwhm_arcsec") is not None:
        out.append(("PSF FWHM", f"{_num(r['psf_fwhm_arcsec'], '.2f')}″  ell {_num(r.get('psf_ell') or 0, '.2f')}", None))
    if r.get("adr_pa") is not None:
        chi2 = r.get("adr_chi2")
        out.append(("ADR", f"PA {_num(r['adr_pa'], '.0f')}°  X {_num(r.get('adr_airmass') or 0, '.2f')}  χ² {_num(chi2, '.2f')}",
                    "warn" if chi2 and chi2 > 5 else None))
    if r.get("fluxcal"):
        dt = r.get("calsrc_dt_h")
        std = standard_of(r.get("calsrc") or "")
        out.append(("fluxcal", f"{std}  Δt {_num(dt, '.1f')} h" if dt is not None else std, None))
    else:
        note = row_facts(r).get("fluxcal_note") or h.get("FLUXNOTE", "")
        out.append(("fluxcal", f"none: {note}" if note else "none", "warn"))
    cls = ext.classification
    if cls and cls.get("type"):
        out.append(("SNID", f"{type_label(cls)}  z {_num(cls.get('z'), '.3f')}  rlap {_num(cls.get('rlap'), '.1f')}  "
                            f"{cls.get('template') or ''}",
                    None))
    else:
        why = str(row_facts(r).get("classification") or "not classified")
        out.append(("SNID", f"none: {why}", "warn" if "template" in why or "failed" in why else None))
    if r.get("s2n") is not None:
        out.append(("S/N", _num(r['s2n'], ".0f"), None))
    out.append(("airmass", f"{_num(t.get('airmass'), '.2f')}  exp {_num(t.get('exptime'), '.0f')} s", None))
    out.append(("extraction", f"{r.get('tag')} ({r.get('status')}) by {r.get('reducer') or 'auto'}", None))
    out += delivery_facts([d for d in t.get("deliveries") or [] if d.get("extraction_id") in (None, r.get("id"))])
    return out


def standard_of(calsrc: str) -> str:
    """``STD-BD+25d4655 03:02:00 (20261124)`` from a sensitivity file name."""
    import re

    m = re.search(r"ifu(\d{8})_(\d\d)_(\d\d)_(\d\d)_(.+?)(?:\.fits)?$", calsrc)
    if m is None:
        return calsrc or "?"
    return f"{m.group(5)} {m.group(2)}:{m.group(3)}:{m.group(4)} ({m.group(1)})"


def type_label(cls: dict) -> str:
    """``Ia-norm`` from a classification row."""
    t, sub = cls.get("type") or "", cls.get("subtype") or ""
    return f"{t}-{sub}" if sub and not sub.startswith(t) else (sub or t)


__all__ = [
    "DEFAULT_RANGE",
    "TELLURIC_BANDS_AA",
    "CubeData",
    "ExtractionData",
    "GuiderData",
    "ProductCache",
    "PsfData",
    "SpectrumData",
    "TargetData",
    "brightest_range",
    "facts",
    "fitted_bounds",
    "load_target",
    "markers_of",
    "psf_panels",
    "type_label",
    "wavelength_ranges",
]
