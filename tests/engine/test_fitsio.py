"""Completeness by FITS size arithmetic and clear errors for bad files."""

import numpy as np
import pytest
from astropy.io import fits

from engine.errors import FrameError
from engine.io.fitsio import check_complete, expected_fits_size, header_value, read_header, read_image, write_atomic


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


def test_write_atomic_keeps_values_and_fits_comments(tmp_path, recwarn):
    """Long comments are shortened, long values continue, nothing is lost or warned about."""
    header = fits.Header()
    header["CALSRC"] = ("fluxcal_auto_robot_lstep1__crr_b_ifu20261124_05_41_30_STD-G191B2B.fits", "sensitivity file")
    header["OBJECT"] = ("ZTF26abcdefg [A]", "target name " + "x" * 80)
    header["AIRMASS"] = (1.23456789, "airmass at mid-exposure " + "y" * 80)
    header["HIERARCH SEDM LONG NAME"] = (2.5, "z" * 90)
    path = write_atomic(fits.PrimaryHDU(np.arange(4.0), header=header), tmp_path / "spec.fits")
    assert not [w for w in recwarn if issubclass(w.category, fits.verify.VerifyWarning) and "truncated" in str(w.message)]
    assert not list(tmp_path.glob(".*.part"))
    back = fits.getheader(path)
    assert back["CALSRC"] == header["CALSRC"]
    assert back["OBJECT"] == "ZTF26abcdefg [A]" and back.comments["OBJECT"].startswith("target name x")
    assert back["AIRMASS"] == 1.23456789
    assert all(len(card.image) == 80 for card in back.cards if card.keyword != "CALSRC")
