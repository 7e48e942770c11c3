"""CCD preprocessing: overscan, bias, gain, trimming, cosmic rays, master frames."""
