"""The wide instrument draw: any SEDM the priors of :mod:`engine.synth.priors` allow.

A draw builds, in order:

1. the lattice (pitch, angle, CCD position of the array's centre) of the lenslets of the finite
   microlens array (SEDM's 52 x 45, ``sedm.in_mla``); the spaxel frame's lenslet ``(0, 0)`` is
   the one imaged nearest ``sedm.CCD_LATTICE_ORIGIN_PX`` (the detector's reference point);
2. the prism law ``x = x_ref + D t + C t^2 + E t^3 + F t^4`` (``t = lambda**-0.5 - 7000**-0.5``)
   with ``D`` scaled and ``C, E, F`` multiplied by factors of either sign, so that its form
   differs from the nominal ``D t``;
3. a smooth quadratic + cubic field distortion ``f(x, y)`` of the lenslet images; every trace
   is tilted, curved and stretched with it (``d f_y/dx``, ``d2 f_y/dx2``, ``d f_x/dx``), which
   keeps neighbouring traces parallel;
4. the mean trace slope, within the room the distortion leaves under ``|dy/dx| <= 0.02``;

and is redrawn until it passes the trace-separation rule
(:func:`engine.synth.priors.min_trace_y_separation`). Widths, LSF and throughput follow. The
separation is then measured on the drawn traces themselves (distortion, curvature and lenslet
jitter included, :func:`measured_min_trace_separation`) and the whole draw is made again if it is
below :data:`engine.synth.priors.TRACE_SEPARATION_MEASURED_MIN_PX`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from engine.instrument import sedm
from engine.synth import priors as pr
from engine.synth.instrument import REF_T, TrueInstrument

P = pr.PRIORS
SCALE_PX = 1024.0
"""Normalisation of field coordinates: ``x_n = (x - centre) / 1024``."""
TILT_MAX = 0.02
"""Largest trace slope anywhere in the field."""
DISTORTION_TILT_MAX = 0.012
"""Largest slope the field distortion alone may give a trace (the rest is the mean slope)."""
NOMINAL_C, NOMINAL_E, NOMINAL_F = 2.0e5, 8.0e6, 6.0e7
"""Nominal higher-order dispersion coefficients (those of the nominal draw)."""
MAX_ATTEMPTS = 5000
ATTEMPTS_PER_PITCH = 400
MAX_BUILDS = 50
MLA_HALF_SIZE_UNITS: float = 0.5 * 45 * sedm.LENSLET_PITCH_UNITS
"""Half the array's width [spaxel unit]: the vignetting radius."""

PIN_KEYS: tuple[str, ...] = ("pitch_px", "angle_deg", "origin_px", "disp_scale", "disp_c_factor",
                             "disp_e_factor", "disp_f_factor", "distortion_px", "tilt_mean")
"""Quantities a caller may set instead of drawing (``origin_px`` is an ``(x, y)`` pair)."""


def _t(wave_aa: float | np.ndarray) -> np.ndarray:
    return np.asarray(wave_aa, dtype=float) ** -0.5 - REF_T


def _law(coeffs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``D t + C t^2 + E t^3 + F t^4`` for coefficient rows ``(..., 4)`` and ``t`` [pixel]."""
    d, c, e, f = (coeffs[..., k : k + 1] for k in range(4))
    return d * t + c * t**2 + e * t**3 + f * t**4


def _terms(xn: np.ndarray, yn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distortion terms, their ``d/dx_n`` and ``d2/dx_n2``; each shape ``(n, 7)``."""
    z = np.zeros_like(xn)
    val = np.stack([xn**2, xn * yn, yn**2, xn**3, xn**2 * yn, xn * yn**2, yn**3], -1)
    dx = np.stack([2 * xn, yn, z, 3 * xn**2, 2 * xn * yn, yn**2, z], -1)
    dxx = np.stack([2 + z, z, z, 6 * xn, 2 * yn, z, z], -1)
    return val, dx, dxx


def _normalised(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Field coordinates ``(x_n, y_n)`` of CCD positions ``(n, 2)`` (0 at the detector centre)."""
    cx0, cy0 = pr.DETECTOR_CENTRE_PX
    return (pos[:, 0] - cx0) / SCALE_PX, (pos[:, 1] - cy0) / SCALE_PX


def _lattice(pitch: float, angle: float, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lenslets ``(q, r)`` of the outline and their undistorted CCD positions ``(n, 2)``."""
    n = 40
    qq, rr = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    qq, rr = qq.ravel(), rr.ravel()
    keep = pr.inside_mla_outline(qq, rr)
    qq, rr = qq[keep], rr[keep]
    basis = sedm.lattice_basis_px(pitch, angle)
    return qq, rr, origin + qq[:, None] * basis[0] + rr[:, None] * basis[1]


def _draw_geometry(rng: np.random.Generator, pitch: float, pin: dict) -> dict:
    """One candidate lattice + dispersion + distortion + slope draw at ``pitch`` (before the rule)."""
    g: dict = {"pitch_px": pitch, "angle_deg": pin.get("angle_deg", P["angle_deg"].draw(rng))}
    origin = np.array([P["origin_x_px"].draw(rng), P["origin_y_px"].draw(rng)])
    g["origin_px"] = np.array(pin.get("origin_px", origin), dtype=float)
    g["disp_scale"] = pin.get("disp_scale", P["disp_scale"].draw(rng))
    g["disp_factors"] = [pin.get(k, P[k].draw(rng)) for k in ("disp_c_factor", "disp_e_factor", "disp_f_factor")]
    g["disp"] = np.array([sedm.DISPERSION_D_PX * g["disp_scale"], NOMINAL_C * g["disp_factors"][0],
                          NOMINAL_E * g["disp_factors"][1], NOMINAL_F * g["disp_factors"][2]])
    q, r, pos0 = _lattice(g["pitch_px"], g["angle_deg"], g["origin_px"])
    near = (pos0[:, 0] > -300) & (pos0[:, 0] < 2350) & (pos0[:, 1] > -20) & (pos0[:, 1] < 2070)
    xn, yn = _normalised(pos0[near])
    val, dval, _ = _terms(xn, yn)
    coef = rng.normal(0.0, 1.0, (2, 7))
    amp = pin.get("distortion_px", P["distortion_px"].draw(rng))
    o_val = _terms(*_normalised(g["origin_px"][None, :]))[0]
    disp_xy = (val - o_val) @ coef.T
    coef *= amp / max(np.hypot(*disp_xy.T).max(), 1e-9)
    slope = np.abs(dval @ coef[1]).max() / SCALE_PX
    if slope > DISTORTION_TILT_MAX:
        coef[1] *= DISTORTION_TILT_MAX / slope
        slope = DISTORTION_TILT_MAX
    g["distortion_coeffs"] = coef
    g["distortion_max_px"] = float(np.hypot(*((val - o_val) @ coef.T).T).max())
    g["distortion_max_slope"] = float(slope)
    room = TILT_MAX - slope
    g["tilt_mean"] = float(pin.get("tilt_mean", rng.uniform(-room, room)))
    g["curv_mean"] = P["curv_per_px"].draw(rng)
    ends = _law(g["disp"][None, :], _t(np.array([3700.0, 9300.0])))[0]
    g["trace_length_px"] = float(ends[0] - ends[1])
    t_span = _t(np.linspace(3500.0, 10000.0, 50))
    c = g["disp"]
    slope_law = c[0] + 2 * c[1] * t_span + 3 * c[2] * t_span**2 + 4 * c[3] * t_span**3
    g["monotonic"] = bool(np.all(slope_law > 0.5 * c[0]))
    return g


def _draw_accepted_geometry(rng: np.random.Generator, pin: dict | None = None) -> dict:
    """Draw geometries until one passes the trace-separation rule; record the attempts.

    The pitch is drawn first and kept for up to ``ATTEMPTS_PER_PITCH`` draws of the rest, so that
    its distribution stays near uniform (a small pitch needs a short trace and a narrow angle
    window; a pitch with no allowed draw after that many attempts is redrawn). Quantities in
    ``pin`` (keys :data:`PIN_KEYS`) are set, not drawn.
    """
    pin = check_pin(pin)
    pitch = pin.get("pitch_px", P["pitch_px"].draw(rng))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt % ATTEMPTS_PER_PITCH == 0:
            pitch = pin.get("pitch_px", P["pitch_px"].draw(rng))
        g = _draw_geometry(rng, pitch, pin)
        sep, vec = pr.min_trace_y_separation(
            g["pitch_px"], g["angle_deg"], g["tilt_mean"], g["trace_length_px"] * pr.TRACE_LENGTH_MARGIN
        )
        if g["monotonic"] and sep >= pr.TRACE_SEPARATION_MIN_PX:
            g["min_trace_y_separation_px"] = sep
            g["separation_vector_px"] = vec
            g["attempts"] = attempt
            return g
    raise ValueError(f"no draw with {pin} passes the trace-separation rule (min |v_y - tilt v_x| >= "
                     f"{pr.TRACE_SEPARATION_MIN_PX} px over lattice vectors with |v_x| < the trace length)")


def check_pin(pin: dict | None) -> dict:
    """``pin`` as a dict of known keys (``ValueError`` for an unknown one)."""
    pin = dict(pin or {})
    unknown = set(pin) - set(PIN_KEYS)
    if unknown:
        raise ValueError(f"cannot pin {sorted(unknown)}: known keys are {', '.join(PIN_KEYS)}")
    return pin


def draw_wide_instrument(rng: np.random.Generator, pin: dict | None = None) -> TrueInstrument:
    """Draw a night's instrument from the wide priors (:data:`engine.synth.priors.WIDE_PRIORS`).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random number.
    pin : dict, optional
        Quantities to set instead of drawing (keys :data:`PIN_KEYS`, e.g. ``{"pitch_px": 60.0,
        "angle_deg": 40.0}`` for a case at the edge of the priors). The trace-separation rule still
        holds: ``ValueError`` when the pinned values leave no allowed draw.

    Returns
    -------
    TrueInstrument
        The lenslets of the outline whose trace touches the detector; ``draw`` holds every drawn
        parameter (``truth.json``'s ``instrument_draw``).
    """
    for attempt in range(1, MAX_BUILDS + 1):  # noqa: B007 - the count is recorded after the loop
        g = _draw_accepted_geometry(rng, pin)
        ins = _build(rng, g)
        measured = measured_min_trace_separation(ins)
        if measured >= pr.TRACE_SEPARATION_MEASURED_MIN_PX:
            break
    else:
        raise ValueError(f"no draw with {pin} keeps the drawn traces {pr.TRACE_SEPARATION_MEASURED_MIN_PX} px apart")
    pixel_flat = (1.0 + rng.normal(0.0, ins.draw["throughput"]["pixel_flat_rms"], sedm.CCD_SHAPE)).astype(np.float32)
    ins.draw["builds"] = attempt
    ins.draw["measured_min_trace_y_separation_px"] = measured
    ins.draw["pinned"] = {k: (list(v) if isinstance(v, (tuple, list, np.ndarray)) else v)
                          for k, v in check_pin(pin).items()}
    return replace(ins, pixel_flat=pixel_flat)


def _build(rng: np.random.Generator, g: dict) -> TrueInstrument:
    """The traces of an accepted geometry ``g`` (``pixel_flat`` left empty)."""
    q, r, pos0 = _lattice(g["pitch_px"], g["angle_deg"], g["origin_px"])
    xn0, yn0 = _normalised(pos0)
    val, dval, ddval = _terms(xn0, yn0)
    o_val = _terms(*_normalised(g["origin_px"][None, :]))[0]
    coef = g["distortion_coeffs"]
    jitter = P["lenslet_jitter_px"].draw(rng)
    pos = pos0 + (val - o_val) @ coef.T + rng.normal(0.0, jitter, pos0.shape)
    x_ref, y_ref = pos[:, 0], pos[:, 1]
    n_all = q.size
    # Dispersion: the distortion's stretch along x, a smooth field term, tiny per-lenslet scatter.
    field_d = P["disp_field_rms"].draw(rng)
    c_grad = P["disp_c_gradient"].draw(rng)
    stretch = (dval @ coef[0]) / SCALE_PX
    lin = rng.normal(0.0, field_d, 2)
    scale = 1.0 + stretch + lin[0] * xn0 + lin[1] * yn0 + rng.normal(0.0, 2e-4, n_all)
    disp = np.empty((n_all, 4))
    disp[:, 0] = g["disp"][0] * scale
    disp[:, 1] = g["disp"][1] * (1.0 + c_grad * xn0 + rng.normal(0.0, 0.01, n_all))
    disp[:, 2] = g["disp"][2] * (1.0 + 0.05 * yn0)
    disp[:, 3] = g["disp"][3]
    tilt = g["tilt_mean"] + (dval @ coef[1]) / SCALE_PX + rng.normal(0.0, 1e-4, n_all)
    curv = g["curv_mean"] + 0.5 * (ddval @ coef[1]) / SCALE_PX**2
    # Keep lenslets whose 3550-9800 A trace touches the detector.
    ends = x_ref[:, None] + _law(disp, _t(np.array(sedm.TRACE_LAMBDA_RANGE_AA)))
    ny, nx = sedm.CCD_SHAPE
    on = (ends[:, 0] > -5) & (ends[:, 1] < nx + 5) & (y_ref > -6) & (y_ref < ny + 6)
    q, r, x_ref, y_ref, disp, tilt, curv = q[on], r[on], x_ref[on], y_ref[on], disp[on], tilt[on], curv[on]
    xn, yn = xn0[on], yn0[on]
    n = q.size
    rn2 = np.minimum(xn**2 + yn**2, 1.0)  # field terms reach their edge value at the detector edge
    widths = {k: P[k].draw(rng) for k in ("sigma_y_px", "sigma_field", "sigma_gradient", "sigma_chroma",
                                           "lsf_sigma_px", "lsf_field")}
    sigma_y = widths["sigma_y_px"] * (1.0 + widths["sigma_field"] * rn2 + widths["sigma_gradient"] * xn
                                      + rng.normal(0.0, 0.02, n))
    sigma_chroma = widths["sigma_chroma"] + 0.02 * xn
    lsf = widths["lsf_sigma_px"] * (1.0 + widths["lsf_field"] * rn2)
    # Throughput: vignetting over the array, a tilt, lenslet-to-lenslet scatter, chromatic slopes.
    rho = np.hypot(*sedm.hex_to_spaxel_xy(q, r).T) / MLA_HALF_SIZE_UNITS
    # The spaxel frame: lenslet (0, 0) is the one imaged nearest the detector's reference point.
    k0 = int(np.argmin(np.hypot(x_ref - sedm.CCD_LATTICE_ORIGIN_PX[0], y_ref - sedm.CCD_LATTICE_ORIGIN_PX[1])))
    centre_label = [-int(q[k0]), -int(r[k0])]
    q, r = q - q[k0], r - r[k0]
    sky_xy = sedm.hex_to_spaxel_xy(q, r)
    thr = {k: P[k].draw(rng) for k in ("flat_scatter", "vignetting", "flat_chroma_scatter", "pixel_flat_rms")}
    grad = rng.uniform(P["flat_gradient"].lo, P["flat_gradient"].hi, 2)
    flat = (1.0 - thr["vignetting"] * rho**2) * (1.0 + grad[0] * xn + grad[1] * yn)
    flat = flat * (1.0 + rng.normal(0.0, thr["flat_scatter"], n))
    flat_chroma = rng.normal(0.0, thr["flat_chroma_scatter"], n) + 0.01 * xn
    usable = _usable(x_ref, y_ref, disp, tilt, curv)
    norm = np.median(flat[usable]) if usable.any() else np.median(flat)
    draw = _record(g, jitter, field_d, c_grad, lin, widths, thr, grad, tilt, sigma_y, n, int(usable.sum()))
    draw["mla_centre_lenslet"] = centre_label
    return TrueInstrument(
        q=q, r=r, sky_xy=sky_xy, x_ref=x_ref, y_ref=y_ref, disp=disp, tilt=tilt, curv=curv,
        sigma_y=sigma_y, sigma_chroma=sigma_chroma, lsf_sigma=lsf, flat=flat / norm,
        flat_chroma=flat_chroma, usable=usable, pixel_flat=np.empty(0, np.float32), draw=draw,
    )


def _usable(x_ref: np.ndarray, y_ref: np.ndarray, disp: np.ndarray, tilt: np.ndarray, curv: np.ndarray) -> np.ndarray:
    """True where both ends (3700, 9300 A) of the trace lie inside ``sedm.inside_usable_region``."""
    dx = _law(disp, _t(np.array([sedm.CUBE_WAVE_AA[0], sedm.CUBE_WAVE_AA[-1]])))
    xe = x_ref[:, None] + dx
    ye = y_ref[:, None] + tilt[:, None] * dx + curv[:, None] * dx**2
    return np.all(sedm.inside_usable_region(xe, ye), axis=1)


def _record(g: dict, jitter: float, field_d: float, c_grad: float, lin: np.ndarray, widths: dict, thr: dict,
            grad: np.ndarray, tilt: np.ndarray, sigma_y: np.ndarray, n: int, n_usable: int) -> dict:
    """The draw as a JSON-ready dict."""
    coef = g["distortion_coeffs"]
    return {
        "priors": "wide",
        "attempts": g["attempts"],
        "pitch_px": g["pitch_px"],
        "angle_deg": g["angle_deg"],
        "origin_px": [float(v) for v in g["origin_px"]],
        "lattice_basis_px": sedm.lattice_basis_px(g["pitch_px"], g["angle_deg"]).tolist(),
        "trace_length_px": g["trace_length_px"],
        "min_trace_y_separation_px": g["min_trace_y_separation_px"],
        "separation_vector_px": [float(v) for v in g["separation_vector_px"]],
        "separation_rule": f"min |v_y - tilt v_x| over lattice vectors with |v_x| < {pr.TRACE_LENGTH_MARGIN} x "
                           f"trace_length_px must be >= {pr.TRACE_SEPARATION_MIN_PX} px",
        "distortion": {
            "terms": ["xn^2", "xn yn", "yn^2", "xn^3", "xn^2 yn", "xn yn^2", "yn^3"],
            "coeffs_x_px": coef[0].tolist(), "coeffs_y_px": coef[1].tolist(),
            "normalisation": "xn = (x - 1023.5) / 1024, yn = (y - 1023.5) / 1024 of the undistorted lattice; "
                             "the value at the origin is subtracted (the array centre stays at origin_px)",
            "max_px": g["distortion_max_px"], "max_slope": g["distortion_max_slope"],
        },
        "lenslet_jitter_px": jitter,
        "dispersion": {
            "scale": g["disp_scale"], "coeffs_centre": g["disp"].tolist(),
            "c_e_f_factors": list(g["disp_factors"]),
            "field_linear": lin.tolist(), "c_gradient": c_grad, "field_rms": field_d,
            "form": "x = x_ref + D t + C t^2 + E t^3 + F t^4, t = lambda^-0.5 - 7000^-0.5; D scales as "
                    "1 + d f_x/dx + field_linear . (xn, yn)",
        },
        "tilt_mean": g["tilt_mean"], "tilt_range": [float(tilt.min()), float(tilt.max())],
        "curv_mean_per_px": g["curv_mean"],
        "widths": widths,
        "sigma_y_range_px": [float(sigma_y.min()), float(sigma_y.max())],
        "throughput": {**thr, "gradient": grad.tolist()},
        "mla_outline": pr.mla_outline(),
        "n_lenslets_on_detector": n,
        "n_traces_usable": n_usable,
        "usable_rule": "both ends (3700, 9300 A) of the trace inside sedm.inside_usable_region",
        "frame_rule": "lenslet (0, 0) of the spaxel frame is the one imaged nearest CCD_LATTICE_ORIGIN_PX; "
                      "mla_centre_lenslet is the array centre's label in that frame",
    }


def measured_min_trace_separation(ins: TrueInstrument, wave_range_aa: tuple[float, float] = (3700.0, 9300.0)) -> float:
    """Least ``y`` distance between two drawn traces where their ``x`` extents overlap [pixel].

    Measured on the traces themselves (distortion, slopes, curvature and jitter included), over
    the overlap of their ``wave_range_aa`` spans, sampled every ~8 px.
    """
    from scipy.spatial import cKDTree

    ends = ins.x_of_wave(np.array(wave_range_aa[::-1]))
    length = float(np.max(ends[:, 1] - ends[:, 0]))
    pts = np.column_stack([ins.x_ref, ins.y_ref])
    pairs = cKDTree(pts).query_pairs(length + 20.0, output_type="ndarray")
    pairs = pairs[np.abs(ins.y_ref[pairs[:, 0]] - ins.y_ref[pairs[:, 1]]) < 40.0]
    i, j = pairs[:, 0], pairs[:, 1]
    lo = np.maximum(ends[i, 0], ends[j, 0])
    hi = np.minimum(ends[i, 1], ends[j, 1])
    ok = hi > lo
    i, j, lo, hi = i[ok], j[ok], lo[ok], hi[ok]
    f = np.linspace(0.0, 1.0, 33)[None, :]
    x = lo[:, None] + (hi - lo)[:, None] * f

    def y_at(k):
        dx = x - ins.x_ref[k][:, None]
        return ins.y_ref[k][:, None] + ins.tilt[k][:, None] * dx + ins.curv[k][:, None] * dx**2

    return float(np.abs(y_at(i) - y_at(j)).min()) if i.size else math.inf
