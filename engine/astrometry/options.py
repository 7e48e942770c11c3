"""Options of the guider astrometry (detection, catalogue, built-in solver, astrometry.net)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError
from engine.instrument.sedm import GUIDER_PARITY, GUIDER_SCALE_ARCSEC

BACKENDS = ("builtin", "solve-field")
"""Names of the WCS solver backends."""
PARITIES = ("neg", "pos", "both")
"""Image parities (astrometry.net's names): ``neg`` mirrored, ``pos`` not, ``both`` either."""


@dataclass(frozen=True, kw_only=True)
class AstrometryOptions:
    """Every tunable of the guider stack, star detection and WCS solve.

    The defaults suit the Rainbow Camera (2048 x 2048 pixels of 0.378 arcsec, 30-s frames).
    """

    backend: str = "builtin"
    """WCS solver: ``builtin`` or ``solve-field`` (astrometry.net, when installed)."""
    median_stride: int = 2
    """Each frame's scaling median is taken over every ``median_stride``-th row and column."""

    detect_thresh_sigma: float = 5.0
    """Detection threshold in units of the global background rms."""
    detect_minarea: int = 5
    """Minimum number of connected pixels of a detection [pixel]."""
    back_size_px: int = 64
    """Mesh size of the background model [pixel]."""
    saturation_adu: float = 60000.0
    """A source whose brightest stack pixel reaches this is dropped [ADU]."""
    max_elongation: float = 1.6
    """Sources with ``a/b`` above this are dropped (blends, trails, cosmic-ray streaks)."""
    min_flux_radius_px: float = 0.7
    """Sources with a half-light radius below this are dropped (hot pixels, cosmics) [pixel]."""
    max_stars: int = 400
    """At most this many (brightest) detections are kept."""

    catalog_radius_deg: float = 0.2
    """Catalogue stars are selected within this radius of the pointing [degree]."""
    catalog_mag_limit: float = 21.0
    """Catalogue stars fainter than this are ignored [AB mag]."""

    scale_arcsec: float = GUIDER_SCALE_ARCSEC
    """Nominal guider pixel scale of the initial guess [arcsec/pixel]."""
    scale_range_arcsec: tuple[float, float] = (0.35, 0.41)
    """A solution whose scale falls outside this range is rejected [arcsec/pixel]."""
    parity: str = GUIDER_PARITY
    """Image parity searched by both backends: ``neg`` (the Rainbow Camera), ``pos`` or ``both``
    (the built-in solver then votes with either and keeps the stronger; ``solve-field`` gets no
    ``--parity`` and tries both)."""
    rotation_guess_deg: float = 0.0
    """Rotation of the guider's North-up frame in the initial guess [degree]."""
    rotation_search_deg: float = 2.0
    """Rotations ``guess +- rotation_search_deg`` are tried in the offset vote [degree]."""
    rotation_step_deg: float = 0.25
    """Step of the rotation grid of the vote [degree]."""
    max_offset_px: float = 100.0
    """Largest pointing error searched by the vote (TEL_RA/TEL_DEC vs truth) [pixel]."""
    vote_bin_px: float = 4.0
    """Bin size of the offset histogram [pixel]."""
    n_vote_detections: int = 60
    """Brightest detections that take part in the vote."""
    n_vote_catalog: int = 80
    """Brightest catalogue stars (predicted inside the frame) that take part in the vote."""
    min_vote: int = 5
    """Smallest vote count of an acceptable offset peak."""
    match_radii_px: tuple[float, ...] = (8.0, 4.0, 2.5, 2.5, 2.5)
    """Match radius of each successive match-and-fit iteration [pixel]."""
    clip_sigma: float = 3.0
    """Matches with residuals above ``clip_sigma`` x rms are rejected in each fit."""
    min_matches: int = 6
    """Fewer catalogue matches than this is a failure."""
    min_match_fraction: float = 0.25
    """A solution must match at least this fraction of the stars it should see: the fewer of the
    detections and the catalogue stars it puts on the image. A chance alignment of a handful of
    stars (seen: 6 of 171 detections, rms 0.19 arcsec, on a frame of the wrong parity) fails
    it; true solutions match 90-100 % here."""
    max_rms_arcsec: float = 0.5
    """A fit rms above this is a failure [arcsec]."""

    solve_field_cpulimit_s: float = 5.0
    """CPU limit passed to astrometry.net's ``solve-field`` [second] (SEDM uses 5)."""
    solve_field_radius_deg: float = 0.2
    """Search radius of ``solve-field`` about TEL_RA/TEL_DEC [degree]."""
    solve_field_sip_order: int = 3
    """SIP distortion order of ``solve-field`` (``--tweak-order``)."""
    solve_field_nsigma: float = 12.0
    """Detection threshold of ``solve-field`` (``--nsigma``)."""
    solve_field_config: str = ""
    """astrometry.net configuration file (``--config``: where its index files are); empty:
    the installation's own (``/etc/astrometry.cfg`` on Debian)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"astrometry: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not self.solve_field_cpulimit_s > 0:
            raise ConfigError(f"astrometry: solve_field_cpulimit_s must be > 0, got {self.solve_field_cpulimit_s}")
        if self.median_stride < 1:
            raise ConfigError(f"astrometry: median_stride must be >= 1, got {self.median_stride}")
        if self.detect_thresh_sigma <= 0 or self.detect_minarea < 1:
            raise ConfigError("astrometry: detection threshold and minarea must be positive")
        lo, hi = self.scale_range_arcsec
        if not 0 < lo < self.scale_arcsec < hi:
            raise ConfigError(
                f"astrometry: nominal scale {self.scale_arcsec} outside "
                f"scale_range_arcsec {self.scale_range_arcsec}"
            )
        if self.rotation_step_deg <= 0 or self.rotation_search_deg < 0:
            raise ConfigError(
                "astrometry: rotation_step_deg must be > 0 and rotation_search_deg >= 0"
            )
        if self.vote_bin_px <= 0 or self.max_offset_px <= self.vote_bin_px:
            raise ConfigError("astrometry: need 0 < vote_bin_px < max_offset_px")
        if not self.match_radii_px or min(self.match_radii_px) <= 0:
            raise ConfigError(
                "astrometry: match_radii_px must be a non-empty tuple of positive radii"
            )
        if self.min_matches < 3:
            raise ConfigError(
                "astrometry: min_matches must be >= 3 (the fit has 6 free parameters: CD and CRVAL)"
            )
        if not 0.0 <= self.min_match_fraction <= 1.0:
            raise ConfigError(
                f"astrometry: min_match_fraction must be within 0-1, got {self.min_match_fraction}"
            )
        if self.parity not in PARITIES:
            raise ConfigError(f"astrometry: parity must be neg, pos or both, got {self.parity!r}")
