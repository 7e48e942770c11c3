"""The night's calibration as one object, and its FITS products (schema-versioned, no pickles).

Files in the night directory::

    YYYYMMDD_traces.fits         trace centres/widths (dome), extraction windows, usable flag
    YYYYMMDD_spaxels.fits        hexagonal grid: q, r, sky x/y, neighbours, hexagon outlines
    YYYYMMDD_wavesolution.fits   per-trace x(lambda) coefficients and line statistics
    YYYYMMDD_flat.fits           achromatic and chromatic per-spaxel throughput

Each has a ``PROVENANCE`` extension (inputs with SHA-256, configuration) and header cards
``SCHEMA``, ``SCHVER``, ``ENGVER``, ``CALNIGHT``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from engine.calib.extraction import ExtractionOperator, TraceGeometry, build_operator
from engine.calib.flat import Flat
from engine.calib.lattice import SpaxelGrid
from engine.calib.resample import Rebinner, build_rebinner
from engine.calib.tracefind import TraceFit
from engine.calib.wavesol import WaveSolution
from engine.errors import CalibrationNotFoundError
from engine.instrument import sedm
from engine.io.fitsio import write_atomic
from engine.provenance import Provenance

SCHEMA_VERSION = 1
EXTRACT_RANGE_AA = (3600.0, 9450.0)
"""Wavelengths covered by a trace's extraction window [Angstrom]."""
PRODUCTS = ("traces", "spaxels", "wavesolution", "flat")


def product_path(directory: str | os.PathLike, night: str, kind: str) -> Path:
    """``<directory>/<night>_<kind>.fits``.

    Parameters
    ----------
    directory : path-like
        The calibration night's reduction directory.
    night : str
        The calibration night ``YYYYMMDD``.
    kind : str
        ``traces``, ``wavesolution``, ``spaxels`` or ``flat``.
    """
    return Path(directory) / f"{night}_{kind}.fits"


@dataclass
class NightCalibration:
    """Everything a frame's reduction needs from the night's calibration.

    Attributes
    ----------
    night : str
        Night whose frames made these products.
    traces : TraceFit
    wave : WaveSolution
    grid : SpaxelGrid
    flat : Flat
    x0 : numpy.ndarray
        Shape ``(n,)`` first column of each extraction window.
    n_cols : int
        Window length.
    col_ok : numpy.ndarray
        Shape ``(n, n_cols)`` columns of the window inside ``EXTRACT_RANGE_AA``.
    usable : numpy.ndarray
        Shape ``(n,)`` traces used for cubes (usable region, solved, unique lattice node).
    stats : dict
        Night statistics (trace, wavelength and flat figures).
    """

    night: str
    traces: TraceFit
    wave: WaveSolution
    grid: SpaxelGrid
    flat: Flat
    x0: np.ndarray
    n_cols: int
    col_ok: np.ndarray
    usable: np.ndarray
    stats: dict = field(default_factory=dict)
    extraction_norm: np.ndarray | None = None
    """Shape ``(n, n_cols)`` flux-normalisation of the extraction (from the dome)."""
    _operators: dict = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Number of traces."""
        return int(self.x0.size)

    def geometry(self) -> TraceGeometry:
        """Extraction geometry of all traces."""
        cols = self.x0[:, None] + np.arange(self.n_cols)[None, :]
        return TraceGeometry(x0=self.x0, n_cols=self.n_cols, y_centre=self.traces.y_at(cols),
                             sigma=self.traces.sigma_at(cols), col_ok=self.col_ok)

    def operator(self, dj: float = 0.0) -> ExtractionOperator:
        """Extraction operator at a j-shift (cached per shift, rounded to 0.001 px)."""
        key = round(float(dj), 3)
        if key not in self._operators:
            if len(self._operators) > 4:
                self._operators.clear()
            base = self._operators.get(0.0)
            self._operators[key] = (base.shifted(key) if base is not None and key
                                    else build_operator(self.geometry(), dj=key).with_norm(self.extraction_norm))
        return self._operators[key]

    def column_wave_edges(self, di: float = 0.0) -> np.ndarray:
        """Shape ``(n, n_cols + 1)``: wavelength at the column edges for an i-shift ``di``."""
        edges = self.x0[:, None] + np.arange(self.n_cols + 1)[None, :] - 0.5 - di
        ok = np.concatenate([self.col_ok, self.col_ok[:, -1:]], axis=1) | np.concatenate(
            [self.col_ok[:, :1], self.col_ok], axis=1)
        w = self.wave.wave_of_x(edges)
        return np.where(ok & self.wave.ok[:, None], w, np.nan)

    def rebinner(self, di: float = 0.0) -> Rebinner:
        """Resampler to the cube grid for an i-shift ``di``."""
        return build_rebinner(self.column_wave_edges(di))

    # ------------------------------------------------------------------------------- I/O
    def save(self, directory: str | os.PathLike, provenance: Provenance) -> dict[str, str]:
        """Write the four products; return ``{kind: path}``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ids = np.arange(self.n)
        tables = {
            "traces": Table({
                "id": ids, "x_lo": self.traces.x_lo, "x_hi": self.traces.x_hi, "x_mid": self.traces.x_mid,
                "ycoef": self.traces.ycoef, "scoef": self.traces.scoef, "amplitude": self.traces.amplitude,
                "rms": self.traces.rms, "complete": self.traces.complete, "usable": self.usable, "x0": self.x0,
                "col_ok": self.col_ok.astype(np.uint8),
                "norm": (self.extraction_norm if self.extraction_norm is not None
                         else np.ones(self.col_ok.shape, np.float32)),
            }),
            "spaxels": Table({
                "id": ids, "q": self.grid.q, "r": self.grid.r, "x": self.grid.xy[:, 0], "y": self.grid.xy[:, 1],
                "neighbours": self.grid.neighbours, "vertices": self.grid.vertices(), "duplicate": self.grid.duplicate,
                "usable": self.usable,
            }),
            "wavesolution": Table({
                "id": ids, "coef": self.wave.coef, "ok": self.wave.ok, "flagged": self.wave.flagged,
                "n_lines": self.wave.n_lines, "rms_aa": self.wave.rms_aa, "nmad_aa": self.wave.nmad_aa,
                "blue_rms_aa": self.wave.blue_rms_aa,
                "lsf_sigma": (self.wave.lsf_sigma if self.wave.lsf_sigma is not None
                              else np.full(len(self.wave.ok), np.nan)),
            }),
            "flat": Table({
                "id": ids, "achromatic": self.flat.achromatic, "coef": self.flat.coef, "ok": self.flat.ok,
                "chromatic": self.flat.chromatic,
            }),
        }
        out = {}
        for kind, table in tables.items():
            prim = fits.PrimaryHDU()
            provenance.stamp(prim.header)
            prim.header["SCHEMA"] = (f"sedmtui.{kind}", "product schema")
            prim.header["SCHVER"] = (SCHEMA_VERSION, "product schema version")
            prim.header["CALNIGHT"] = (self.night, "night whose frames made this product")
            prim.header["NCOLS"] = (self.n_cols, "extraction window length [pixel]")
            for key, value in _stats_cards(self.stats, kind).items():
                prim.header[key] = value
            hdu = fits.table_to_hdu(table)
            hdu.name = kind.upper()
            path = product_path(directory, self.night, kind)
            write_atomic(fits.HDUList([prim, hdu, provenance.hdu()]), path)
            out[kind] = str(path)
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike, night: str) -> NightCalibration:
        """Read the four products of ``night`` from ``directory``.

        Raises
        ------
        CalibrationNotFoundError
            A product is missing or has an unknown schema version.
        """
        t = {}
        for kind in PRODUCTS:
            path = product_path(directory, night, kind)
            if not path.exists():
                raise CalibrationNotFoundError(f"calibration product {path} is missing")
            with fits.open(path) as hdul:
                version = hdul[0].header.get("SCHVER")
                if version != SCHEMA_VERSION:
                    raise CalibrationNotFoundError(f"{path.name}: schema version {version}, expected {SCHEMA_VERSION}")
                t[kind] = Table(hdul[1].data)
                if kind == "traces":
                    n_cols = int(hdul[0].header["NCOLS"])
                    stats = {k.lower(): v for k, v in hdul[0].header.items()
                             if k.startswith(("WAVE", "TRAC", "FLAT", "NSPAX", "LATTICE", "LSF", "WIDTH", "N_TRACES"))}
        tr, sp, wv, fl = t["traces"], t["spaxels"], t["wavesolution"], t["flat"]
        traces = TraceFit(
            x_lo=np.asarray(tr["x_lo"]), x_hi=np.asarray(tr["x_hi"]), ycoef=np.asarray(tr["ycoef"]),
            scoef=np.asarray(tr["scoef"]), x_mid=np.asarray(tr["x_mid"]), amplitude=np.asarray(tr["amplitude"]),
            rms=np.asarray(tr["rms"]), complete=np.asarray(tr["complete"], bool),
        )
        wave = WaveSolution(
            coef=np.asarray(wv["coef"], float), ok=np.asarray(wv["ok"], bool), flagged=np.asarray(wv["flagged"], bool),
            n_lines=np.asarray(wv["n_lines"]), rms_aa=np.asarray(wv["rms_aa"]), nmad_aa=np.asarray(wv["nmad_aa"]),
            blue_rms_aa=np.asarray(wv["blue_rms_aa"]),
            lsf_sigma=np.asarray(wv["lsf_sigma"], float) if "lsf_sigma" in wv.colnames else None,
        )
        xy = np.stack([np.asarray(sp["x"]), np.asarray(sp["y"])], 1)
        grid = SpaxelGrid(q=np.asarray(sp["q"]), r=np.asarray(sp["r"]), xy=xy, neighbours=np.asarray(sp["neighbours"]),
                          lattice_rms_px=float("nan"), duplicate=np.asarray(sp["duplicate"], bool))
        flat = Flat(achromatic=np.asarray(fl["achromatic"]), chromatic=np.asarray(fl["chromatic"]),
                    coef=np.asarray(fl["coef"]), ok=np.asarray(fl["ok"], bool))
        return cls(night=night, traces=traces, wave=wave, grid=grid, flat=flat, x0=np.asarray(tr["x0"]),
                   n_cols=n_cols, col_ok=np.asarray(tr["col_ok"]).astype(bool), usable=np.asarray(tr["usable"], bool),
                   stats=stats, extraction_norm=np.asarray(tr["norm"], np.float32))


def _stats_cards(stats: dict, kind: str) -> dict:
    """Header cards of the night's numeric stats under their full names (``HIERARCH`` cards
    where a name is longer than 8 characters: truncated names collided)."""
    cards = {}
    for key, value in stats.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            continue
        if np.isfinite(value):
            name = key.upper() if len(key) <= 8 else f"HIERARCH {key.upper()}"
            cards[name] = float(value) if isinstance(value, (float, np.floating)) else int(value)
    return cards


@lru_cache(maxsize=2)
def _load_cached(directory: str, night: str, stamp: float) -> NightCalibration:
    return NightCalibration.load(directory, night)


def load_calibration(directory: str | os.PathLike, night: str) -> NightCalibration:
    """Load (memoised per process on the products' modification time).

    Parameters
    ----------
    directory : path-like
        The calibration night's reduction directory.
    night : str
        The calibration night ``YYYYMMDD``.
    """
    stamp = max(product_path(directory, night, k).stat().st_mtime for k in PRODUCTS
                if product_path(directory, night, k).exists()) if Path(directory).exists() else 0.0
    return _load_cached(str(directory), night, stamp)


def extraction_windows(
    traces: TraceFit, wave: WaveSolution, wave_range=EXTRACT_RANGE_AA, clip=None
) -> tuple[np.ndarray, int, np.ndarray]:
    """Per-trace windows covering ``wave_range``: start columns, common length, column mask.

    ``clip(lo, hi) -> (lo, hi)`` may shorten windows (e.g. against traces of the same row).
    """
    x_red = wave.x_of_wave(np.array([wave_range[1]]))[:, 0]
    x_blue = wave.x_of_wave(np.array([wave_range[0]]))[:, 0]
    lo = np.floor(np.where(wave.ok, x_red, traces.x_lo)).astype(int) - 1
    hi = np.ceil(np.where(wave.ok, x_blue, traces.x_hi)).astype(int) + 1
    if clip is not None:
        lo, hi = clip(lo, hi)
    n_cols = int(np.max(hi - lo)) + 1
    cols = lo[:, None] + np.arange(n_cols)[None, :]
    col_ok = (cols <= hi[:, None]) & (cols >= 0) & (cols < sedm.CCD_SHAPE[1])
    return lo, n_cols, col_ok
