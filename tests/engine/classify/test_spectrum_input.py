"""Reading SEDM text/FITS spectra and plain columns."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from engine.classify.spectrum_input import SpectrumReadError, read_spectrum

from .conftest import SPECTRA_DIR


def test_real_sedm_txt_third_column_is_variance():
    path = next((SPECTRA_DIR / "II").glob("*.txt"))
    wave, flux, err, header = read_spectrum(path)
    raw = np.loadtxt(path)
    assert wave.size == 214 and np.allclose(flux, raw[:, 1])
    assert np.allclose(err, np.sqrt(raw[:, 2]))
    assert header["OBJECT"].startswith("ZTF") and header["QUALITY"] == "0"


def test_columns_line_says_error(tmp_path):
    p = tmp_path / "ours.txt"
    p.write_text("# OBJECT: ZTF24abcdefg\n# COLUMNS: wavelength flux flux_err\n"
                 "4000 1.0 0.1\n4010 2.0 0.2\n4020 3.0 0.3\n")
    w, f, e, h = read_spectrum(p)
    assert e.tolist() == [0.1, 0.2, 0.3] and h["COLUMNS"] == "wavelength flux flux_err"


def test_plain_columns(tmp_path):
    p = tmp_path / "two.dat"
    p.write_text("4000 1.0\n4010 2.0\n")
    w, f, e, h = read_spectrum(p)
    assert e is None and w.tolist() == [4000.0, 4010.0] and h == {}
    p3 = tmp_path / "three.dat"
    p3.write_text("4000 1.0 0.5\n4010 2.0 0.5\n")
    assert read_spectrum(p3)[2].tolist() == [0.5, 0.5]


def test_sedm_fits_primary_with_variance(tmp_path):
    flux = np.linspace(1, 2, 214)
    hdr = fits.Header({"CRVAL1": 3776.7, "CDELT1": 25.57, "CRPIX1": 1, "OBJECT": "ZTF1"})
    hdul = fits.HDUList([fits.PrimaryHDU(flux, hdr), fits.ImageHDU(np.full(214, 4.0),
                                                                   name="VARIANCE")])
    p = tmp_path / "spec.fits"
    hdul.writeto(p)
    w, f, e, h = read_spectrum(p)
    assert w[0] == pytest.approx(3776.7) and w[1] == pytest.approx(3802.27)
    assert np.allclose(f, flux) and np.allclose(e, 2.0) and h["OBJECT"] == "ZTF1"


def test_fits_table(tmp_path):
    cols = fits.ColDefs([fits.Column("WAVE", "D", array=np.array([4000.0, 4010.0])),
                         fits.Column("FLUX", "D", array=np.array([1.0, 2.0])),
                         fits.Column("ERR", "D", array=np.array([0.1, 0.2]))])
    p = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(p)
    w, f, e, _ = read_spectrum(p)
    assert w.tolist() == [4000.0, 4010.0] and e.tolist() == [0.1, 0.2]


@pytest.mark.parametrize("content, match", [("# only a header\n", "no numeric"),
                                            ("hello world\n", "no numeric")])
def test_unreadable(tmp_path, content, match):
    p = tmp_path / "bad.txt"
    p.write_text(content)
    with pytest.raises(SpectrumReadError, match=match):
        read_spectrum(p)
    with pytest.raises(SpectrumReadError, match="no such file"):
        read_spectrum(tmp_path / "missing.txt")
    q = tmp_path / "bad.fits"
    q.write_bytes(b"SIMPLE  = garbage")
    with pytest.raises(SpectrumReadError, match="bad.fits"):
        read_spectrum(q)
