"""Science reduction of one exposure: cube, target position, PSF extraction, flux calibration."""
