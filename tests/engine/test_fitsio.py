"""Completeness by FITS size arithmetic and clear errors for bad files."""

import numpy as np
import pytest
from astropy.io import fits

from engine.errors import FrameError
from engine.io.fitsio import check_complete, expected_fits_size, header_value, read_header, read_image


def write(path, shape=(64, 80)):
    fits.PrimaryHDU(np.zeros(shape, dtype=np.uint16), header=fits.Header({"OBJECT": "x"})).writeto(path)
    return path


def test_complete_file(tmp_path):
    p = write(tmp_path / "a.fits")
    assert check_complete(p) == p.stat().st_size == expected_fits_size(p)


def test_truncated_file_is_retryable(tmp_path):
    p = write(tmp_path / "a.fits", (512, 512))
    data = p.read_bytes()
    p.write_bytes(data[: 2880 * 10])
    with pytest.raises(FrameError, match="truncated") as err:
        check_complete(p)
    assert err.value.retryable
    p.write_bytes(data[:1000])
    with pytest.raises(FrameError, match="whole number of FITS blocks"):
        check_complete(p)


def test_not_fits(tmp_path):
    p = tmp_path / "a.fits"
    p.write_bytes(b"x" * 2880)
    with pytest.raises(FrameError, match="not a FITS file") as err:
        check_complete(p)
    assert not err.value.retryable
    with pytest.raises(FrameError, match="unreadable FITS header|cannot read"):
        read_header(p)


def test_missing_keyword_message():
    with pytest.raises(FrameError, match="required header keyword AIRMASS is missing"):
        header_value(fits.Header(), "AIRMASS", required=True, cast=float, what="ifu.fits")
    assert header_value(fits.Header({"AIRMASS": "bad"}), "AIRMASS", default=1.1, cast=float) == 1.1


def test_read_image(tmp_path):
    data, header = read_image(write(tmp_path / "a.fits"))
    assert data.dtype == np.float32 and data.shape == (64, 80) and header["OBJECT"] == "x"
